#!/usr/bin/env bash
# Re-records examples/review/recording.jsonl, the recording the README's first command replays.
# The model is the project's scripted OpenAI-compatible test server (tests/server), answering from
# examples/review/server-script.json, so the recording is reproducible and needs no API key.
# Run it after changing prompts, tool descriptions or the example; `scripts/test.sh` checks that
# the bundled recording still replays.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-$root/build}"
example="$root/examples/review"
[[ -x "$build/dagent" && -x "$build/openai_test_server" ]] || { echo "build first: scripts/setup.sh" >&2; exit 1; }
work="$(mktemp -d)"; server_pid=""
cleanup() { [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true; rm -rf "$work" "$example/.dagent"; }
trap cleanup EXIT

"$build/openai_test_server" --port 0 --script "$example/server-script.json" > "$work/port" 2>&1 & server_pid=$!
for _ in $(seq 50); do grep -q listening "$work/port" 2>/dev/null && break; sleep 0.1; done
port=$(sed 's/.*://' "$work/port" | head -1)

rm -rf "$example/.dagent" "$example/out/report.md"
(cd "$root" && OPENAI_BASE_URL="http://127.0.0.1:$port/v1" OPENAI_API_KEY=recorded-from-the-test-server \
  "$build/dagent" run examples/review/task.yaml --config examples/review/config.yaml \
  --record examples/review/recording.jsonl "$@")
echo "recorded $(wc -l < "$example/recording.jsonl") events to examples/review/recording.jsonl" >&2
