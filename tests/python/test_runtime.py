"""The Python bindings: load, tools (sync and async), run_plan, events, errors, the GIL."""

import asyncio
import json
import threading

import pytest

import dagent
from conftest import QUIET

SHOUT_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
                "additionalProperties": False}
EMPTY_SCHEMA = {"type": "object", "properties": {}}


def step(result, step_id):
    return next(s for s in result["steps"] if s["id"] == step_id)


def test_load_defaults_and_overrides(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("planner:\n  max_steps: 7\n")
    rt = dagent.Runtime.load(str(config), overrides=QUIET)
    too_long = [{"id": i, "action": "list_dir", "parameters": {"path": "."}} for i in range(1, 9)]
    with pytest.raises(dagent.PlanError) as err:
        rt.plan_json(too_long)
    assert any("7" in p for p in err.value.problems)
    rt.close()
    assert rt.closed
    with pytest.raises(dagent.DagentError, match="closed"):
        rt.plan_json([])
    with dagent.Runtime.load(None, QUIET + ["planner.max_steps=8"]) as rt2:
        assert rt2.plan_json(too_long)["levels"] == [[1, 2, 3, 4, 5, 6, 7, 8]]


def test_config_errors_carry_every_problem(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("planner:\n  max_steps: -1\nnot_a_section: 1\n")
    with pytest.raises(dagent.ConfigError) as err:
        dagent.Runtime.load(config)
    problems = err.value.problems
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"{config}:2: planner.max_steps: must be between 1 and"), problems
    assert problems[1].startswith(f"{config}:3: not_a_section: unknown key"), problems
    assert str(err.value) == err.value.message == "\n".join(problems)
    assert isinstance(err.value, dagent.DagentError)
    with pytest.raises(dagent.ConfigError) as err:
        dagent.Runtime.load("", overrides=["performance.nope=1"])
    assert err.value.problems == ["--set: performance.nope: unknown key"]


def test_run_plan_with_builtin_tools_and_a_sync_python_tool(runtime, workspace):
    (workspace / "in.txt").write_text("hello dagent")
    calls = []

    def shout(params):
        calls.append(threading.current_thread() is threading.main_thread())
        return {"text": params["text"].upper(), "len": len(params["text"])}

    runtime.register_tool("shout", "upper-cases a text", SHOUT_SCHEMA, shout)
    plan = [
        {"id": 1, "action": "read_file", "parameters": {"path": "in.txt"}},
        {"id": 2, "action": "shout", "parameters": {"text": "$step1.content"}},
        {"id": 3, "action": "write_file", "parameters": {"path": "out/loud.txt", "content": "$step2.text"}},
    ]
    result = runtime.run_plan(plan, workspace=workspace)
    assert result["status"] == "succeeded", json.dumps(result, indent=1)
    assert step(result, 2)["output"] == {"text": "HELLO DAGENT", "len": 12}
    assert (workspace / "out" / "loud.txt").read_text() == "HELLO DAGENT"
    assert calls == [False]  # on dagent's worker pool, not the calling thread
    assert result["levels"] == [[1], [2], [3]]


def test_plan_as_json_text_and_inputs(runtime, workspace):
    plan = json.dumps([{"id": 1, "action": "write_file", "parameters": {"path": "x.txt", "content": "$input.word"}}])
    result = runtime.run_plan(plan, {"word": "bonjour"}, workspace)
    assert result["status"] == "succeeded"
    assert (workspace / "x.txt").read_text() == "bonjour"


def test_async_python_tool(runtime, workspace):
    async def slow_echo(params):
        await asyncio.sleep(0)
        return {"echo": params["text"], "loop_thread": threading.current_thread().name}

    runtime.register_tool("slow_echo", "echoes on asyncio", SHOUT_SCHEMA, slow_echo)
    result = runtime.run_plan([{"id": 1, "action": "slow_echo", "parameters": {"text": "é ok"}}], workspace=workspace)
    assert result["status"] == "succeeded"
    assert step(result, 1)["output"] == {"echo": "é ok", "loop_thread": "dagent-asyncio"}


def test_async_tools_of_one_level_run_at_once(runtime, workspace):
    # Each call waits until both have started: the run only succeeds if they overlap.
    arrived = []
    both = {}

    async def meet(params):
        loop = asyncio.get_running_loop()
        event = both.setdefault("event", asyncio.Event())
        arrived.append(params["text"])
        if len(arrived) == 2:
            event.set()
        await asyncio.wait_for(event.wait(), timeout=10)
        return {"met": len(arrived)}

    runtime.register_tool("meet", "waits for its twin", SHOUT_SCHEMA, meet)
    plan = [{"id": 1, "action": "meet", "parameters": {"text": "a"}},
            {"id": 2, "action": "meet", "parameters": {"text": "b"}}]
    result = runtime.run_plan(plan, workspace=workspace)
    assert result["status"] == "succeeded", json.dumps(result, indent=1)
    assert sorted(arrived) == ["a", "b"]


def test_tool_exception_fails_the_step_not_the_call(runtime, workspace):
    def broken(params):
        raise ValueError("no such city: Atlantis")

    async def broken_async(params):
        raise RuntimeError("async went wrong")

    def not_json(params):
        return {"when": object()}

    runtime.register_tool("broken", "raises", EMPTY_SCHEMA, broken)
    runtime.register_tool("broken_async", "raises", EMPTY_SCHEMA, broken_async)
    runtime.register_tool("not_json", "returns an object", EMPTY_SCHEMA, not_json)
    plan = [{"id": 1, "action": "broken", "parameters": {}},
            {"id": 2, "action": "broken_async", "parameters": {}},
            {"id": 3, "action": "not_json", "parameters": {}}]
    result = runtime.run_plan(plan, workspace=workspace)
    assert result["status"] == "failed"
    assert step(result, 1)["status"] == "failed"
    assert "ValueError: no such city: Atlantis" in step(result, 1)["error"]
    assert "RuntimeError: async went wrong" in step(result, 2)["error"]
    assert "result.when: a value of type object has no JSON form" in step(result, 3)["error"]


def test_events_in_order(runtime, workspace):
    events = []
    runtime.register_tool("shout", "upper-cases", SHOUT_SCHEMA, lambda p: {"text": p["text"].upper()})
    plan = [{"id": 1, "action": "write_file", "parameters": {"path": "a.txt", "content": "a"}},
            {"id": 2, "action": "shout", "parameters": {"text": "$step1.path"}}]
    result = runtime.run_plan(plan, workspace=workspace, on_event=events.append)
    assert result["status"] == "succeeded"
    seen = [(e["step_id"], e["action"], e["status"]) for e in events]
    assert seen == [(1, "write_file", "running"), (1, "write_file", "succeeded"),
                    (2, "shout", "running"), (2, "shout", "succeeded")]
    assert [e["attempt"] for e in events if e["status"] == "succeeded"] == [1, 1]
    assert all(e["item"] == -1 and e["message"] == "" for e in events)
    assert [e["at_ms"] for e in events] == sorted(e["at_ms"] for e in events)


def test_observer_exception_is_raised_after_the_run(runtime, workspace):
    def bad_observer(ev):
        raise LookupError("observer broke")

    with pytest.raises(LookupError, match="observer broke"):
        runtime.run_plan([{"id": 1, "action": "list_dir", "parameters": {"path": "."}}], workspace=workspace,
                         on_event=bad_observer)
    # the runtime is usable afterwards
    assert runtime.run_plan([{"id": 1, "action": "list_dir", "parameters": {"path": "."}}],
                            workspace=workspace)["status"] == "succeeded"


def test_invalid_plan_is_a_plan_error_with_problems(runtime, workspace):
    plan = [{"id": 1, "action": "no_such_tool", "parameters": {}},
            {"id": 2, "action": "read_file", "parameters": {"path": "$step9.content"}}]
    with pytest.raises(dagent.PlanError) as err:
        runtime.run_plan(plan, workspace=workspace)
    assert len(err.value.problems) >= 2, err.value.problems
    assert any("no_such_tool" in p for p in err.value.problems)
    assert any("step9" in p or "9" in p for p in err.value.problems)
    with pytest.raises(dagent.PlanError, match="not JSON"):
        runtime.run_plan("[{", workspace=workspace)
    with pytest.raises(dagent.PlanError, match="no JSON form"):
        runtime.run_plan([{"id": 1, "action": "x", "parameters": {"p": {1, 2}}}], workspace=workspace)


def test_register_tool_errors(runtime):
    runtime.register_tool("twice", "", EMPTY_SCHEMA, lambda p: None)
    with pytest.raises(dagent.DagentError):
        runtime.register_tool("twice", "", EMPTY_SCHEMA, lambda p: None)
    with pytest.raises(dagent.DagentError):
        runtime.register_tool("read_file", "", EMPTY_SCHEMA, lambda p: None)
    with pytest.raises(TypeError):
        runtime.register_tool("notcallable", "", EMPTY_SCHEMA, 42)


def test_a_python_thread_runs_while_run_plan_waits(runtime, workspace):
    # Step 1 lets a Python thread go; step 2 waits for that thread to have run. Neither tool holds
    # the GIL while it waits, so this only finishes if run_plan released it on the calling thread.
    go, done = threading.Event(), threading.Event()
    counter = []

    def worker():
        go.wait(10)
        counter.extend(range(1000))
        done.set()

    thread = threading.Thread(target=worker)
    thread.start()
    runtime.register_tool("release", "", EMPTY_SCHEMA, lambda p: go.set())
    runtime.register_tool("await_thread", "", EMPTY_SCHEMA, lambda p: {"done": done.wait(10), "count": len(counter)})
    plan = [{"id": 1, "action": "release", "parameters": {}},
            {"id": 2, "action": "await_thread", "parameters": {}, "dependencies": [1]}]
    result = runtime.run_plan(plan, workspace=workspace)
    thread.join()
    assert step(result, 2)["output"] == {"done": True, "count": 1000}


def test_calling_the_runtime_from_its_own_tool_is_refused(runtime, workspace):
    def reenter(params):
        runtime.plan_json([])
        return "unreachable"

    runtime.register_tool("reenter", "", EMPTY_SCHEMA, reenter)
    result = runtime.run_plan([{"id": 1, "action": "reenter", "parameters": {}}], workspace=workspace)
    assert step(result, 1)["status"] == "failed"
    assert "busy" in step(result, 1)["error"]


def test_run_task_of_a_fixed_plan_task_file(tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "notes.txt").write_text("three little words")
    (tmp_path / "plan.json").write_text(json.dumps([
        {"id": 1, "action": "read_file", "parameters": {"path": "notes.txt"}},
        {"id": 2, "action": "count", "parameters": {"text": "$step1.content"}},
        {"id": 3, "action": "write_file", "parameters": {"path": "count.txt", "content": "$input.label $step2.words"}}]))
    (tmp_path / "task.yaml").write_text("name: counting\ngoal: count words\nworkspace: ws\n"
                                        "inputs:\n  label: words\nplan: plan.json\n")
    with dagent.Runtime.load(None, QUIET) as rt:
        rt.register_tool("count", "counts words", SHOUT_SCHEMA, lambda p: {"words": len(p["text"].split())})
        events = []
        result = rt.run_task(tmp_path / "task.yaml", on_event=events.append)
        assert result["status"] == "succeeded", json.dumps(result, indent=1)
        assert result["task"] == "counting"
        assert (tmp_path / "ws" / "count.txt").read_text() == "words 3"
        assert len(events) == 6
        assert rt.plan_task(str(tmp_path / "task.yaml"))["levels"] == [[1], [2], [3]]
        with pytest.raises(dagent.PlanError) as err:
            rt.run_task(str(tmp_path / "missing.yaml"))
        assert str(err.value).startswith("no task file or configured task named")
