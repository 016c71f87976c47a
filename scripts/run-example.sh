#!/usr/bin/env bash
# Sets up (dependencies, build) and runs the README's main job offline: the review example
# (examples/review) replayed from its bundled recording, with no network and no API key. The
# planner, the parallel tool steps, the verified llm steps, the memory and the streamed answer
# all run; model and embedding answers come from the recording, which scripts/record-example.sh
# made with the project's scripted test server. The report lands in examples/review/out/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build/dagent replay examples/review/recording.jsonl "$@"
echo "--- examples/review/out/report.md" >&2
cat examples/review/out/report.md
