"""Ctrl-C in Python cancels the run underway, then raises KeyboardInterrupt with the partial
result in .result; Python's own SIGINT handler is back afterwards."""

import signal
import textwrap

from conftest import run_python

CHILD = textwrap.dedent("""
    import asyncio, signal, sys, tempfile
    import dagent

    ws = tempfile.mkdtemp()
    rt = dagent.Runtime.load(None, ["history.enabled=false", "memory.enabled=false"])

    async def slow(params):
        print("started", flush=True)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            print("tool cancelled", flush=True)
            raise
        return {}

    rt.register_tool("slow", "sleeps", {"type": "object"}, slow)
    plan = [{"id": 1, "action": "slow", "parameters": {}},
            {"id": 2, "action": "write_file", "parameters": {"path": "after.txt", "content": "x"},
             "dependencies": [1]}]
    try:
        rt.run_plan(plan, workspace=ws)
    except KeyboardInterrupt as e:
        r = e.result
        print("interrupted", r["error"], r["status"], [s["status"] for s in r["steps"]], flush=True)
        again = rt.run_plan([{"id": 1, "action": "write_file", "parameters": {"path": "b.txt", "content": "y"}}],
                            workspace=ws)
        print("second run", again["status"], flush=True)
        print("handler restored", signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)
        raise
    print("not interrupted", flush=True)
""")


def test_ctrl_c_interrupts_the_run_then_raises_keyboard_interrupt():
    child = run_python(CHILD)
    try:
        assert child.stdout.readline() == "started\n"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    lines = out.splitlines()
    assert "interrupted interrupted failed ['failed', 'skipped']" in lines, (out, err)
    assert "second run succeeded" in lines, (out, err)
    assert "handler restored True" in lines, (out, err)
    assert "tool cancelled" in lines, (out, err)
    assert "not interrupted" not in lines
    # Uncaught, the KeyboardInterrupt ends Python as a SIGINT does.
    assert child.returncode == -signal.SIGINT, (child.returncode, err)
    assert "KeyboardInterrupt: run interrupted" in err


def test_without_handle_sigint_python_keeps_its_handler():
    code = textwrap.dedent("""
        import signal, tempfile, dagent
        rt = dagent.Runtime.load(None, ["history.enabled=false", "memory.enabled=false"])
        seen = []
        signal.signal(signal.SIGINT, lambda *a: seen.append("python handler"))
        def poke(params):
            signal.raise_signal(signal.SIGINT)  # from the worker thread: Python's C handler only flags it
            return {}
        rt.register_tool("poke", "", {"type": "object"}, poke)
        r = rt.run_plan([{"id": 1, "action": "poke", "parameters": {}}], workspace=tempfile.mkdtemp(),
                        handle_sigint=False)
        for _ in range(1000):  # a backward jump: Python runs its pending handlers here
            pass
        print(r["status"], r["error"], seen, flush=True)
    """)
    child = run_python(code)
    out, err = child.communicate(timeout=30)
    assert out.strip() == "succeeded None ['python handler']", (out, err)
    assert child.returncode == 0


def test_ctrl_c_fails_a_running_sync_tool_step_and_the_call_waits_for_the_tool():
    # Python code cannot be stopped: the step fails at once and its late result is dropped, but
    # run_plan returns only once the tool's call has returned (here: released by the event of the
    # step's failure).
    code = textwrap.dedent("""
        import tempfile, threading, dagent
        rt = dagent.Runtime.load(None, ["history.enabled=false", "memory.enabled=false"])
        release = threading.Event()
        def stuck(params):
            print("started", flush=True)
            release.wait(30)
            print("tool returned", flush=True)
            return {"late": True}
        def on_event(ev):
            if ev["status"] == "failed":
                print("step failed:", ev["message"], flush=True)
                release.set()
        rt.register_tool("stuck", "", {"type": "object"}, stuck)
        try:
            rt.run_plan([{"id": 1, "action": "stuck", "parameters": {}}], workspace=tempfile.mkdtemp(),
                        on_event=on_event)
        except KeyboardInterrupt as e:
            step = e.result["steps"][0]
            print("run returned", e.result["error"], step["status"], step["output"], flush=True)
        rt.close()
        print("closed", flush=True)
    """)
    child = run_python(code)
    try:
        assert child.stdout.readline() == "started\n"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    lines = out.splitlines()
    assert len(lines) == 4 and lines[0].startswith("step failed: "), (out, err)
    assert lines[1:] == ["tool returned", "run returned interrupted failed None", "closed"], (out, err)
    assert child.returncode == 0, err


def test_ctrl_c_between_runs_is_python_s_again():
    # After a run, SIGINT is Python's: a KeyboardInterrupt in Python code, not a killed process.
    code = textwrap.dedent("""
        import os, signal, tempfile, time, dagent
        rt = dagent.Runtime.load(None, ["history.enabled=false", "memory.enabled=false"])
        for _ in range(20):
            rt.run_plan([{"id": 1, "action": "list_dir", "parameters": {"path": "."}}], workspace=tempfile.mkdtemp())
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000000):
                pass
            print("no interrupt", flush=True)
        except KeyboardInterrupt as e:
            print("python's", hasattr(e, "result"), flush=True)
    """)
    child = run_python(code)
    out, err = child.communicate(timeout=30)
    assert out.splitlines() == ["python's False"], (out, err)
    assert child.returncode == 0
