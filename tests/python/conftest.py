"""Fixtures of the Python binding tests: a runtime that writes nothing outside a temp folder, and
the scripted OpenAI-compatible test server (tests/server) started as a child process."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

import dagent

SOURCE_DIR = pathlib.Path(os.environ.get("DAGENT_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
TEST_SERVER = os.environ.get("DAGENT_TEST_SERVER", "")

# No history file, no memory folder outside the test's tmp_path.
QUIET = ["history.enabled=false", "memory.enabled=false"]


@pytest.fixture
def workspace(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def runtime(tmp_path):
    rt = dagent.Runtime.load(None, QUIET + ["performance.parallel_execution.max_parallel_steps=4"])
    yield rt
    rt.close()


class TestServer:
    """openai_test_server --port 0 with a script; the first stdout line names its port."""

    def __init__(self, script, tmp_path):
        if not TEST_SERVER or not os.access(TEST_SERVER, os.X_OK):
            raise RuntimeError(f"the test server is not built: DAGENT_TEST_SERVER={TEST_SERVER!r}")
        path = tmp_path / "script.json"
        path.write_text(json.dumps(script))
        self.proc = subprocess.Popen([TEST_SERVER, "--port", "0", "--script", str(path), "--parent", str(os.getpid())],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        prefix = "listening on 127.0.0.1:"
        if not line.startswith(prefix):
            self.stop()
            raise RuntimeError(f"the test server did not start: {line!r}")
        self.base_url = f"http://127.0.0.1:{int(line[len(prefix):])}/v1"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def server_factory(tmp_path):
    servers = []

    def start(script):
        servers.append(TestServer(script, tmp_path))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def run_python(code, env_extra=None, **kwargs):
    """Runs `code` in a fresh python3 with the same PYTHONPATH; returns the Popen."""
    env = dict(os.environ, **(env_extra or {}))
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)
