"""examples/python/word_count.py runs end to end: read_file -> Python tools -> write_file."""

import json
import sys

from conftest import SOURCE_DIR, run_python


def test_python_example(tmp_path):
    (tmp_path / "notes.txt").write_text("the cat saw the dog and the dog saw the cat")
    example = SOURCE_DIR / "examples" / "python" / "word_count.py"
    child = run_python(f"import runpy, sys; sys.argv = [{str(example)!r}, {str(tmp_path)!r}]; "
                       f"sys.exit(runpy.run_path({str(example)!r}, run_name='__main__'))")
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, (out, err)
    written = json.loads((tmp_path / "out" / "count.json").read_text())
    assert written == {"words": 11, "top": ["the", "cat", "saw"]}
    assert "step 2 word_count: succeeded" in out
    assert "event step=3 action=top_words status=succeeded" in out
