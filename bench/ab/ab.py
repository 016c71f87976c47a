#!/usr/bin/env python3
"""Engine of bench/run_ab.sh (bench/README.md, "A/B: every performance flag off, then on").

  ab.py script  DIR CHAT_MS EMBED_MS PLAN_CHUNK_MS > script.json   the test server's script
  ab.py bound   DIR CHAT_MS EMBED_MS CONNECT_MS                    the critical-path bound (text)
  ab.py run     CONFIGS.json                                       the rounds, then the tables

DIR holds plan.json (the plan the scripted model writes), replies.json (every other scripted
reply) and notes/ (the workspace's input files). Every chat rule carries CHAT_MS of latency
(streamed or not) and every embedding request EMBED_MS; the connection cost is the server's
--connect-delay-ms.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

GOAL = ("Summarize this week's service notes under notes/ into a weekly operations report with the "
        "open items, keep each summary in memory, and write the report to out/weekly-report.md")

# Substrings of the request bodies that tell the calls apart (prompts/*.txt, src/executor/llm_judge.cpp).
JUDGE = "check a step's result against criteria"
INTENT = "intent analyser of dagent"
PLAN = "Write a plan for the goal"
ANSWER = "final answer of dagent"


def load(folder):
    plan = json.load(open(os.path.join(folder, "plan.json")))
    replies = json.load(open(os.path.join(folder, "replies.json")))
    return plan["steps"], replies


def make_script(folder, chat_ms, embed_ms, plan_chunk_ms):
    steps, replies = load(folder)
    chat = "/v1/chat/completions"
    # The plan as one chunk per step, so a streamed plan arrives step by step (PLAN_CHUNK_MS apart);
    # a whole reply is their concatenation.
    chunks = [('{"steps": [' if i == 0 else " ") + json.dumps(s) + ("," if i < len(steps) - 1 else "]}")
              for i, s in enumerate(steps)]
    rules = [
        # First: a judge's request quotes the step output, which may hold any other marker.
        {"comment": "LLM judge", "path": chat, "contains": JUDGE, "latency_ms": chat_ms, "reply": replies["verdict"]},
        {"comment": "intent", "path": chat, "contains": INTENT, "latency_ms": chat_ms, "reply": replies["intent"]},
        {"comment": "answer", "path": chat, "contains": ANSWER, "latency_ms": chat_ms, "reply": replies["answer"]},
        {"comment": "report step", "path": chat, "contains": "[ab-report]", "latency_ms": chat_ms, "reply": replies["report"]},
    ]
    for name, text in replies["summaries"].items():
        rules.append({"comment": f"summary step ({name})", "path": chat, "contains": f"[ab-summary {name}]",
                      "latency_ms": chat_ms, "reply": text})
    # The plan: streamed, CHAT_MS then one chunk per step PLAN_CHUNK_MS apart; whole, the same total
    # time (the model needs it to write the plan either way). The only streamed request left once the
    # rules above had their turn is the plan call (a rule has one `contains`).
    rules.append({"comment": "plan, streamed", "path": chat, "contains": '"stream":true', "latency_ms": chat_ms,
                  "stream_chunks": chunks, "stream_interval_ms": plan_chunk_ms})
    rules.append({"comment": "plan, whole", "path": chat, "contains": PLAN,
                  "latency_ms": chat_ms + (len(chunks) - 1) * plan_chunk_ms, "reply": "".join(chunks)})
    # Anything else (a repair or replan call: the bench then fails on its call count) still costs a chat call.
    rules.append({"comment": "unexpected chat call", "path": chat, "latency_ms": chat_ms})
    rules.append({"comment": "embeddings", "path": "/v1/embeddings", "latency_ms": embed_ms})
    json.dump({"rules": rules}, sys.stdout, indent=1)
    print()


# ---- the bound ------------------------------------------------------------------------------

def deps_of(step, ids):
    """Explicit dependencies plus every $stepN the parameters mention (as the planner reads them)."""
    import re
    found = set(step.get("dependencies", []))
    for m in re.finditer(r"(?<!\$)\$step(\d+)", json.dumps(step.get("parameters", {}))):
        found.add(int(m.group(1)))
    return sorted(d for d in found if d in ids)


def calls_of(step):
    """The model round trips a step makes: ('chat'|'embed', what)."""
    a = step["action"]
    if a == "llm":
        return [("chat", "llm")]
    if a in ("memory_add", "memory_search"):
        return [("embed", a)]
    return []


def judged(step):
    v = step.get("verify")
    texts = [v] if isinstance(v, str) else [x for x in v if isinstance(x, str)] if isinstance(v, list) else []
    return bool(texts)


def bound(folder, chat_ms, embed_ms, connect_ms, intent_on_path=True, plan_chunk_ms=0):
    """Longest chain of round trips with everything on: one connection setup, the planning calls,
    the longest dependency chain through the DAG (a step costs its own call; the judge of a
    `critical` step gates its dependents, the other judges run beside them), the answer call.
    Returns (total_ms, [(label, ms)], serial_ms, serial_parts)."""
    steps, _ = load(folder)
    ids = {s["id"] for s in steps}
    by_id = {s["id"]: s for s in steps}
    cost = {"chat": chat_ms, "embed": embed_ms}

    order = {st["id"]: k for k, st in enumerate(steps)}
    finish, chain = {}, {}   # earliest time the dependents may start, and the chain that gets there
    done_at = {}             # when the step and any judge of it are over (for the end of execution)

    def visit(i):
        if i in finish:
            return
        s = by_id[i]
        start, via = 0, []
        arrival = order[i] * plan_chunk_ms   # a streamed plan's step i is known this long after its first chunk
        if arrival > 0:
            start, via = arrival, [(f"plan streamed until step {i} arrives", arrival)]
        for d in deps_of(s, ids):
            visit(d)
            if finish[d] > start:
                start, via = finish[d], chain[d]
        own = sum(cost[k] for k, _ in calls_of(s))
        label = f"step {i} {s['action']}"
        end = start + own
        steps_chain = via + [(label, own)]
        done_at[i] = (end, steps_chain)
        if judged(s) and s.get("critical"):   # the verdict gates the dependents
            end += chat_ms
            steps_chain = steps_chain + [(f"judge of critical step {i}", chat_ms)]
            done_at[i] = (end, steps_chain)
        elif judged(s):                       # the verdict runs beside the dependents
            done_at[i] = (end + chat_ms, steps_chain + [(f"judge of step {i} (beside its dependents)", chat_ms)])
        finish[i], chain[i] = end, steps_chain

    for s in steps:
        visit(s["id"])
    exec_ms, exec_chain = max(done_at.values(), key=lambda x: x[0])
    parts = [("connection setup (TCP + TLS), once", connect_ms)]
    if intent_on_path:
        parts.append(("intent call", chat_ms))
    parts.append(("plan call", chat_ms))
    parts += exec_chain
    parts.append(("answer call", chat_ms))
    total = sum(ms for _, ms in parts)
    # The same chain as segments the result JSON measures: planning, each step (with the judge
    # that gates it), the tail after the last step (the answer).
    segments = [("planning: " + " + ".join(label for label, ms in parts[:len(parts) - len(exec_chain) - 1]),
                 sum(ms for _, ms in parts[:len(parts) - len(exec_chain) - 1]), "planning")]
    for label, ms in exec_chain:
        if label.startswith("plan streamed"):   # measured: the run start to that step's start
            segments[0] = (segments[0][0] + " + " + label, segments[0][1] + ms, ("start", int(label.split()[4])))
        elif label.startswith("step "):
            segments.append([label, ms, int(label.split()[1])])
        else:   # a judge: measured inside its step's duration when it gates, else beside the chain
            segments[-1][0] += " + " + label
            segments[-1][1] += ms
    segments.append(("after the last step: the answer call", chat_ms, "tail"))
    bound.segments = segments

    # What the run costs with every flag off: every call one after another, each on a new connection.
    serial = [("intent call", connect_ms + chat_ms), ("plan call", connect_ms + chat_ms + (len(steps) - 1) * plan_chunk_ms)]
    for s in steps:
        for kind, what in calls_of(s):
            serial.append((f"step {s['id']} {what}", connect_ms + cost[kind]))
        if judged(s):
            serial.append((f"judge of step {s['id']}", connect_ms + chat_ms))
    serial.append(("answer call", connect_ms + chat_ms))
    return total, parts, sum(ms for _, ms in serial), serial


def print_bound(folder, chat_ms, embed_ms, connect_ms, plan_chunk_ms=0):
    for intent_on_path in (True, False):
        total, parts, serial, serial_parts = bound(folder, chat_ms, embed_ms, connect_ms, intent_on_path, plan_chunk_ms)
        title = "intent call on the path" if intent_on_path else "intent call off the path"
        print(f"critical-path bound, everything on ({title}): {total} ms = " +
              " + ".join(f"{ms} {label}" for label, ms in parts if ms))
    print(f"every call in series, each on a new connection (the cost model of 'off'): {serial} ms "
          f"({len(serial_parts)} calls x (connection + call))")


# ---- the runs -------------------------------------------------------------------------------

CURRENT = [None]   # the dagent process running now, stopped with us (run_ab.sh's trap sends TERM)


def on_term(signum, frame):
    if CURRENT[0] and CURRENT[0].poll() is None:
        CURRENT[0].kill()
    sys.exit(128 + signum)


def run_once(cfg, name, sets):
    """One goal run in a fresh workspace; returns a row of timings (exits on any failure)."""
    ws = tempfile.mkdtemp(prefix=f"ab-{name}-", dir=cfg["work"])
    shutil.copytree(os.path.join(cfg["fixtures"], "notes"), os.path.join(ws, "notes"))
    with open(os.path.join(ws, "task.yaml"), "w") as f:
        f.write(f"goal: {json.dumps(GOAL)}\nworkspace: .\n")
    argv = [cfg["dagent"], "run", "task.yaml", "--json", "-q", "--set", f"llm.ca_file={cfg['ca']}"]
    for s in cfg["common"] + sets:
        argv += ["--set", s]
    env = dict(os.environ, OPENAI_BASE_URL=f"https://127.0.0.1:{cfg['port']}/v1", OPENAI_API_KEY="ab-bench-key-not-a-secret")
    env.pop("SSL_CERT_FILE", None)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    CURRENT[0] = p
    first = p.stdout.read(1)           # the result JSON is printed when the run is over
    t_result = time.monotonic()
    rest = p.stdout.read()
    err = p.stderr.read()
    rc = p.wait()
    t_exit = time.monotonic()
    out = (first + rest).decode()
    try:
        r = json.loads(out)
    except ValueError:
        sys.exit(f"run_ab: {name}: dagent exited {rc} without a result\n--- stderr\n{err.decode()[-3000:]}")
    problems = []
    if rc != 0:
        problems.append(f"exit code {rc}")
    if r.get("status") != "succeeded":
        problems.append(f"status {r.get('status')}: {r.get('error')}")
    for s in r.get("steps", []):
        if s["status"] != "succeeded" or s["verification"]["status"] not in ("passed", "not_requested"):
            problems.append(f"step {s['id']}: {s['status']} {s.get('error')} verdict {s['verification']}")
    if len(r.get("steps", [])) != cfg["plan_steps"]:
        problems.append(f"{len(r.get('steps', []))} steps ran, the plan has {cfg['plan_steps']}")
    if not r.get("answer"):
        problems.append("no answer")
    m = r["metrics"]
    expected = cfg["chat_calls"] - (1 if "planner.intent_mode=folded" in sets else 0)
    if m["llm_calls"] != expected:   # a repair, a replan, a speculative plan made again: worth knowing
        print(f"run_ab: note: {name} made {m['llm_calls']} chat calls, {expected} expected", file=sys.stderr)
    if m.get("rate_limit_wait_ms", 0) > 0:   # the limits are meant to be far above the load
        print(f"run_ab: note: {name} waited {m['rate_limit_wait_ms']} ms on the rate limiter", file=sys.stderr)
    if problems:
        sys.exit(f"run_ab: {name} failed: " + "; ".join(problems) + f"\n--- stderr\n{err.decode()[-3000:]}")
    if os.environ.get("SAVE_DIR"):   # keep every result JSON (and the server-side view below) for a closer look
        os.makedirs(os.environ["SAVE_DIR"], exist_ok=True)
        cfg["saved"] = cfg.get("saved", 0) + 1
        with open(os.path.join(os.environ["SAVE_DIR"], f"{cfg['saved']:03}-{name}.json"), "w") as f:
            json.dump(r, f, indent=1)
    steps = r["steps"]
    last_step = max(s["finished_ms"] for s in steps)
    first_start = min(s["started_ms"] for s in steps)
    shutil.rmtree(ws, ignore_errors=True)
    return {
        "result_ms": (t_result - t0) * 1000.0,   # command start to the result on stdout
        "exit_ms": (t_exit - t0) * 1000.0,       # ... to the process exit (background memory updates)
        "wall_ms": m["wall_ms"],                 # the result's own wall time
        "planning_ms": m["planning_ms"],
        "first_step_ms": first_start,
        "execution_ms": last_step - m["planning_ms"],
        "tail_ms": m["wall_ms"] - last_step,
        "connections": m["connections_opened"],
        "embedding_calls": m["embedding_calls"],
        "chat_calls": m["llm_calls"],
        "step_ms": {s["id"]: s["finished_ms"] - s["started_ms"] for s in steps},
        "step_t": {s["id"]: (s["started_ms"], s["finished_ms"]) for s in steps},
    }


def print_measured_chain(cfg, rows, chat_ms, embed_ms):
    """The chain the median 'on' run actually waited on: from the step that finished last, back
    through the dependency that finished last each time (it may differ from the bound's chain)."""
    steps, _ = load(cfg["fixtures"])
    ids = {s["id"] for s in steps}
    by_id = {s["id"]: s for s in steps}
    run = sorted(rows, key=lambda r: r["result_ms"])[len(rows) // 2]
    t = run["step_t"]
    chain, cur = [], max(t, key=lambda i: t[i][1])
    while cur is not None:
        chain.append(cur)
        deps = deps_of(by_id[cur], ids)
        cur = max(deps, key=lambda d: t[d][1]) if deps else None
    chain.reverse()
    cost = {"chat": chat_ms, "embed": embed_ms}
    print()
    print(f"The chain the median 'on' run waited on (time to result {run['result_ms']:.0f} ms), from the last step back through")
    print("the dependency that finished last:")
    print()
    print("| link | starts at (ms) | waited after its dependency (ms) | took (ms) | model (ms) | over (ms) |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| planning (run start to a valid plan) | 0 | | {run['planning_ms']:.0f} | | |")
    prev_end = None
    for i in chain:
        s = by_id[i]
        model = sum(cost[k] for k, _ in calls_of(s)) + (chat_ms if judged(s) and s.get("critical") else 0)
        start, end = t[i]
        wait = f"{start - prev_end:.0f}" if prev_end is not None else ""   # the first link starts when the plan holds it
        label = f"step {i} {s['action']}" + (" + its critical judge" if judged(s) and s.get("critical") else "")
        print(f"| {label} | {start:.0f} | {wait} | {end - start:.0f} | {model} | {end - start - model:+.0f} |")
        prev_end = end
    print(f"| after the last step (answer call) | {prev_end:.0f} | | {run['tail_ms']:.0f} | {chat_ms} | {run['tail_ms'] - chat_ms:+.0f} |")
    print(f"| process start-up and printing (time to result - wall_ms) | | | {run['result_ms'] - run['wall_ms']:.0f} | 0 | |")


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def run(configs_path):
    cfg = json.load(open(configs_path))
    steps, _ = load(cfg["fixtures"])
    cfg["plan_steps"] = len(steps)
    # intent + plan + answer + one per llm step + one judge per judged step
    cfg["chat_calls"] = 3 + sum(1 for s in steps if s["action"] == "llm") + sum(1 for s in steps if judged(s))
    if os.environ.get("ONLY"):   # e.g. ONLY=on: a look at some configurations, no A/B verdict
        keep = os.environ["ONLY"].split(",")
        cfg["configs"] = [c for c in cfg["configs"] if c["name"] in keep]
    names = [c["name"] for c in cfg["configs"]]
    rows = {n: [] for n in names}
    for rnd in range(cfg["rounds"]):
        for c in cfg["configs"]:   # alternating: off, on, (ablations), off, on, ...
            row = run_once(cfg, c["name"], c["sets"])
            rows[c["name"]].append(row)
            print(f"  round {rnd + 1} {c['name']:<28} result {row['result_ms']:7.0f} ms  exit {row['exit_ms']:7.0f} ms  "
                  f"wall_ms {row['wall_ms']:7.0f}  planning {row['planning_ms']:6.0f}  connections {row['connections']}",
                  file=sys.stderr, flush=True)

    chat, embed, connect = cfg["chat_ms"], cfg["embed_ms"], cfg["connect_ms"]
    on_bound, on_parts, serial, _ = bound(cfg["fixtures"], chat, embed, connect, cfg["intent_on_path"], cfg["plan_chunk_ms"])
    off = rows.get("off") or rows.get("on")
    on = rows.get("on") or off
    if not on:
        sys.exit("run_ab: ONLY must keep off or on")
    off_ms, on_ms = med(off, "result_ms"), med(on, "result_ms")
    lower = 100.0 * (1 - on_ms / off_ms)
    print()
    print(f"### A/B result: median of {cfg['rounds']} rounds, alternating (time = command start to the result on stdout)")
    print()
    print("| configuration | time to result (ms) | process exit (ms) | result wall_ms | planning | first step | execution | after last step | connections | chat / embedding calls | model of the run (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in cfg["configs"]:
        rs = rows[c["name"]]
        model = serial if c["name"] == "off" else on_bound if c["name"] == "on" else None  # noqa
        model_text = (f"{model} (all in series)" if c["name"] == "off" else f"{model} (critical-path bound)") if model else ""
        print(f"| {c['name']} | {med(rs, 'result_ms'):.0f} | {med(rs, 'exit_ms'):.0f} | {med(rs, 'wall_ms'):.0f} | "
              f"{med(rs, 'planning_ms'):.0f} | {med(rs, 'first_step_ms'):.0f} | {med(rs, 'execution_ms'):.0f} | "
              f"{med(rs, 'tail_ms'):.0f} | {med(rs, 'connections'):.0f} | {rs[0]['chat_calls']} / {rs[0]['embedding_calls']} | {model_text} |")
    print()
    verdict = "met" if lower >= 55.0 else "NOT met"
    if "off" in rows and "on" in rows:
        print(f"**{lower:.1f} % lower latency** with every flag on ({off_ms:.0f} ms → {on_ms:.0f} ms; target ≥ 55 %: {verdict}).")
        print(f"On is {on_ms - on_bound:+.0f} ms from its critical-path bound of {on_bound} ms "
              f"({on_ms / on_bound:.2f}x); off is {off_ms - serial:+.0f} ms from its all-in-series model of {serial} ms.")
    else:
        print(f"ONLY={os.environ.get('ONLY')}: no A/B verdict (it needs both off and on).")
    print(f"The best possible with these costs: {100.0 * (1 - on_bound / serial):.1f} % lower (bound against the series model).")
    print()
    print("Critical-path bound of 'on': " + " + ".join(f"{ms} {label}" for label, ms in on_parts if ms) + f" = {on_bound} ms")
    bound(cfg["fixtures"], chat, embed, connect, cfg["intent_on_path"], cfg["plan_chunk_ms"])
    print()
    print("Where 'on' spends its time along the bound's chain (medians; a step's time runs from its start to its end,")
    print("a gating judge included; what is left is process start-up and the waits between the links):")
    print()
    print("| link | model (ms) | measured (ms) | over (ms) |")
    print("|---|---:|---:|---:|")
    total_model = total_measured = 0.0
    for label, model_ms, key in bound.segments:
        if key == "planning":
            got = med(on, "planning_ms")
        elif isinstance(key, tuple):
            got = statistics.median(r["step_t"][key[1]][0] for r in on)
        elif key == "tail":
            got = med(on, "tail_ms")
        else:
            got = statistics.median(r["step_ms"][key] for r in on)
        total_model += model_ms
        total_measured += got
        print(f"| {label} | {model_ms} | {got:.0f} | {got - model_ms:+.0f} |")
    rest = on_ms - total_measured
    print(f"| the rest: process start-up, result printing, waits between links | 0 | {rest:.0f} | {rest:+.0f} |")
    print(f"| **total (time to result)** | **{total_model:.0f}** | **{on_ms:.0f}** | **{on_ms - total_model:+.0f}** |")
    print_measured_chain(cfg, on, chat, embed)
    abl = [c for c in cfg["configs"] if c["name"] not in ("off", "on")]
    if abl:
        print()
        print("### Ablation: every flag on except one (median time to result)")
        print()
        print("| turned off | time to result (ms) | vs all on (ms) | connections | planning (ms) |")
        print("|---|---:|---:|---:|---:|")
        for c in abl:
            rs = rows[c["name"]]
            print(f"| {c['name']} | {med(rs, 'result_ms'):.0f} | {med(rs, 'result_ms') - on_ms:+.0f} | "
                  f"{med(rs, 'connections'):.0f} | {med(rs, 'planning_ms'):.0f} |")
    if cfg.get("raw"):
        print()
        print("Raw rows (ms): " + json.dumps({n: [{k: round(v, 1) for k, v in r.items() if not isinstance(v, dict)}
                                                 for r in rows[n]] for n in names}))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "script":
        make_script(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "bound":
        print_bound(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]) if len(sys.argv) > 6 else 0)
    elif cmd == "run":
        import signal
        signal.signal(signal.SIGTERM, on_term)
        run(sys.argv[2])
    else:
        sys.exit(__doc__)
