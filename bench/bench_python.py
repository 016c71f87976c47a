"""The Python side of bench/run_python.sh: the same plans as bench_tool_overhead, from Python.
  --plan trivial: STEPS steps calling a trivial Python tool, sync (worker pool, GIL taken around
    the call) or async (the binding's asyncio loop), chained or independent.
  --plan builtin: 10 write_file then 10 read_file (built-in tools only), run_plan wall per run.
Prints a `json {...}` line like the C++ program."""

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time

import dagent

SCHEMA = {"type": "object", "properties": {"i": {"type": "integer"}}}


def noop(params):
    return {"n": params["i"]}


async def anoop(params):
    return {"n": params["i"]}


def trivial_plan(steps, chained):
    plan = []
    for i in range(1, steps + 1):
        step = {"id": i, "action": "noop", "parameters": {"i": i}}
        if chained and i > 1:
            step["dependencies"] = [i - 1]
        plan.append(step)
    return plan


def builtin_plan():
    writes = [{"id": i, "action": "write_file", "parameters": {"path": f"f{i}.txt", "content": "some text"}}
              for i in range(1, 11)]
    reads = [{"id": 10 + i, "action": "read_file", "parameters": {"path": f"$step{i}.path"}} for i in range(1, 11)]
    return writes + reads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plan", default="trivial", choices=["trivial", "builtin"])
    ap.add_argument("--tool", default="sync", choices=["sync", "async"])
    ap.add_argument("--shape", default="chained", choices=["chained", "independent"])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=10)
    a = ap.parse_args()
    rt = dagent.Runtime.load(None, ["history.enabled=false", "memory.enabled=false", "planner.max_steps=10000",
                                    "performance.parallel_execution.max_parallel_steps=64"])
    rt.register_tool("noop", "returns its parameter", SCHEMA, noop if a.tool == "sync" else anoop)
    builtin = a.plan == "builtin"
    plan = builtin_plan() if builtin else trivial_plan(a.steps, a.shape == "chained")
    calls = 20 if builtin else a.steps
    ws = tempfile.mkdtemp(prefix="bench_python.")
    rt.run_plan(plan, workspace=ws)  # warm-up
    walls = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        result = rt.run_plan(plan, workspace=ws)
        walls.append((time.perf_counter() - t0) * 1000)
        if result["status"] != "succeeded":
            print("run failed:", result["error"], file=sys.stderr)
            return 1
    shutil.rmtree(ws)
    rt.close()
    med = statistics.median(walls)
    print("json " + json.dumps({"side": "python", "plan": a.plan, "tool": "builtin" if builtin else a.tool,
                                "shape": "-" if builtin else a.shape, "steps": calls, "repeat": a.repeat,
                                "median_ms": round(med, 3), "best_ms": round(min(walls), 3),
                                "median_us_per_call": round(med * 1000 / calls, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
