"""Through the scripted test server: ingest and search_memory (its embeddings), and a goal task
(its chat replies) with planning and answer observers."""

import json

import pytest

import dagent


@pytest.fixture
def memory_runtime(tmp_path, server_factory, monkeypatch):
    server = server_factory({"rules": []})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rt = dagent.Runtime.load(None, [f"llm.base_url={server.base_url}", f"memory.path={tmp_path / 'mem'}",
                                    "history.enabled=false"])
    yield rt
    rt.close()


def test_ingest_then_search(memory_runtime, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "rivers.txt").write_text("The river Fnord flows through Quuxville, capital of Zorblandia.")
    (docs / "cakes.txt").write_text("Baking a lemon cake needs flour, sugar, eggs and lemons.")
    progress = []
    report = memory_runtime.ingest([docs], on_progress=progress.append)
    assert report["files_seen"] == 2 and report["files_ingested"] == 2
    assert report["chunks_added"] >= 2
    assert progress and progress[-1]["files_done"] == progress[-1]["files_total"] == 2

    hits = memory_runtime.search_memory("lemon cake flour sugar", k=2)
    assert len(hits) == 2
    assert hits[0]["source"].endswith("cakes.txt")
    assert hits[0]["score"] >= hits[1]["score"]
    assert "lemon" in hits[0]["text"]

    again = memory_runtime.ingest([docs])
    assert again["files_unchanged"] == 2 and again["chunks_added"] == 0


def test_memory_errors_are_exceptions(memory_runtime, tmp_path):
    with pytest.raises(dagent.MemoryStoreError) as err:
        memory_runtime.ingest([tmp_path / "does-not-exist"])
    assert "does-not-exist" in str(err.value)
    assert err.value.problems == [str(err.value)]


def test_unreachable_embeddings_provider(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    # port 9 (discard) on loopback: nothing listens there
    with dagent.Runtime.load(None, ["llm.base_url=http://127.0.0.1:9/v1", f"memory.path={tmp_path / 'mem'}",
                                    "history.enabled=false", "llm.max_retries=0"]) as rt:
        (tmp_path / "a.txt").write_text("some text to embed")
        with pytest.raises(dagent.ProviderUnreachable) as err:
            rt.ingest([tmp_path / "a.txt"])
        assert "127.0.0.1:9" in str(err.value) or "connect" in str(err.value), str(err.value)


def chat_rule(contains, reply):
    return {"path": "/v1/chat/completions", "contains": contains, "reply": reply}


def test_goal_task_plans_with_the_model_and_calls_a_python_tool(tmp_path, server_factory, monkeypatch):
    # The scripted model plans a step of the Python tool, then answers; planning events and the
    # answer reach their observers.
    plan = json.dumps({"steps": [{"id": 1, "action": "capital_of", "parameters": {"country": "Zorblandia"}}]})
    server = server_factory({"rules": [chat_rule("Write a plan for the goal", plan),
                                       chat_rule("final answer of dagent", "The capital is Quuxville.")]})
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    (tmp_path / "ws").mkdir()
    (tmp_path / "config.yaml").write_text(
        "tools:\n  workspace: ws\nplanner:\n  intent_analysis: false\n"
        "tasks:\n  capital:\n    goal: Find the capital of Zorblandia\n")
    with dagent.Runtime.load(tmp_path / "config.yaml",
                             [f"llm.base_url={server.base_url}", "history.enabled=false", "memory.enabled=false"]) as rt:
        rt.register_tool("capital_of", "the capital of a country",
                         {"type": "object", "properties": {"country": {"type": "string"}}, "required": ["country"]},
                         lambda p: {"capital": "Quuxville" if p["country"] == "Zorblandia" else None})
        phases, answer = [], []
        result = rt.run_task("capital", on_planning=phases.append, on_answer=answer.append)
        assert result["status"] == "succeeded", json.dumps(result, indent=1)
        assert result["steps"][0]["output"] == {"capital": "Quuxville"}
        assert result["answer"] == "The capital is Quuxville." == "".join(answer)
        started = [e["phase"] for e in phases if not e["finished"]]
        assert started == ["routing", "catalog", "planning", "answer"], phases
        assert [e["at_ms"] for e in phases] == sorted(e["at_ms"] for e in phases)
