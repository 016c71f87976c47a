#!/usr/bin/env bash
# The cost of Python in dagent (issue 18 part 5; bench/README.md "Python bindings"):
#  1. a trivial tool called by 1 000 steps, chained (one call at a time: µs per call) and
#     independent (one level, 64 at once): C++ on the loop, C++ BlockingTool, Python sync, Python async;
#  2. run_plan of the same plan of built-in tools (10 write_file, 10 read_file) from C++ and Python.
# Usage: bench/run_python.sh   (BUILD=build by default; REPEAT=10, BUILTIN_REPEAT=50)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
repeat=${REPEAT:-10}
builtin_repeat=${BUILTIN_REPEAT:-50}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
ninja -C "$build" -j2 bench_tool_overhead _dagent >&2
export PYTHONPATH="$PWD/$build/python"

rows=()
run() { rows+=("$("$@" | sed -n 's/^json //p')"); }
for shape in chained independent; do
  run "$build/bench_tool_overhead" --plan trivial --tool cpp --shape "$shape" --repeat "$repeat"
  run "$build/bench_tool_overhead" --plan trivial --tool blocking --shape "$shape" --repeat "$repeat"
  run python3 bench/bench_python.py --plan trivial --tool sync --shape "$shape" --repeat "$repeat"
  run python3 bench/bench_python.py --plan trivial --tool async --shape "$shape" --repeat "$repeat"
done
run "$build/bench_tool_overhead" --plan builtin --repeat "$builtin_repeat"
run python3 bench/bench_python.py --plan builtin --repeat "$builtin_repeat"

printf '%s\n' "${rows[@]}" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
print("| side | plan | tool | shape | steps | runs | median ms/run | best ms/run | µs/step (median) |")
print("|---|---|---|---|--:|--:|--:|--:|--:|")
for r in rows:
    print("| %s | %s | %s | %s | %d | %d | %.2f | %.2f | %.1f |" % (r["side"], r["plan"], r["tool"], r["shape"],
          r["steps"], r["repeat"], r["median_ms"], r["best_ms"], r["median_us_per_call"]))
'
