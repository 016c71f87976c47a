#!/usr/bin/env bash
# Builds bench_history and measures the run history's queries with 100 000 runs of 20 steps
# stored (issue 17). Environment: BUILD (default build-bench, Release), RUNS (100000), STEPS (20),
# REPEAT (20), DB (a file in a fresh temp folder, removed afterwards).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-$root/build-bench}"
if [[ ! -f "$build/build.ninja" ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDAGENT_BUILD_TESTS=OFF >/dev/null
fi
ninja -C "$build" -j2 bench_history >/dev/null

dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$build/bench_history" --db "${DB:-$dir/history.db}" --runs "${RUNS:-100000}" --steps "${STEPS:-20}" \
  --repeat "${REPEAT:-20}"
