"""Embedding dagent in Python: register a Python tool and run a plan that uses it beside the
built-in file tools. Usage (after building with DAGENT_PYTHON, the default when pybind11 is found):

    PYTHONPATH=build/python python3 examples/python/word_count.py WORKSPACE [CONFIG]

The plan reads WORKSPACE/notes.txt, counts its words with the Python tool `word_count` (a plain
function, run on dagent's worker pool) and ranks them with `top_words` (an async def, run on the
binding's asyncio loop), then writes WORKSPACE/out/count.json.
"""

import asyncio
import collections
import json
import sys

import dagent

TEXT_SCHEMA = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
               "additionalProperties": False}


def word_count(params):
    return {"words": len(params["text"].split())}


async def top_words(params):
    await asyncio.sleep(0)  # an async tool may await anything: HTTP clients, subprocesses...
    counts = collections.Counter(w.strip(".,;:!?").lower() for w in params["text"].split())
    return {"top": [w for w, _ in counts.most_common(3)]}


def print_event(ev):
    print(f"event step={ev['step_id']} action={ev['action']} status={ev['status']}")


def main():
    if len(sys.argv) < 2:
        print("usage: word_count.py WORKSPACE [CONFIG]", file=sys.stderr)
        return 2
    try:
        rt = dagent.Runtime.load(sys.argv[2] if len(sys.argv) > 2 else None,
                                 overrides=["performance.parallel_execution.max_parallel_steps=4"])
    except dagent.ConfigError as e:
        print("\n".join(e.problems), file=sys.stderr)
        return 2
    with rt:
        rt.register_tool("word_count", "counts the words of a text", TEXT_SCHEMA, word_count)
        rt.register_tool("top_words", "the three most frequent words of a text", TEXT_SCHEMA, top_words)
        plan = [
            {"id": 1, "action": "read_file", "parameters": {"path": "notes.txt"}},
            {"id": 2, "action": "word_count", "parameters": {"text": "$step1.content"}},
            {"id": 3, "action": "top_words", "parameters": {"text": "$step1.content"}},
            {"id": 4, "action": "write_file",
             "parameters": {"path": "out/count.json", "content": "{\"words\": $step2.words, \"top\": $step3.top}"}},
        ]
        try:
            result = rt.run_plan(plan, workspace=sys.argv[1], task_name="python-example", on_event=print_event)
        except dagent.PlanError as e:
            print("\n".join(e.problems), file=sys.stderr)
            return 2
        for s in result["steps"]:
            print(f"step {s['id']} {s['action']}: {s['status']} {json.dumps(s.get('output'))}")
        return 0 if result["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
