#!/usr/bin/env bash
# Measures `dagent serve` (issue 17): runs/s it sustains for a 10-step fixed plan of llm steps
# against the loopback model server (0 ms latency), and the latency of step events (step finished
# in the service -> SSE event read by the client). Environment: BUILD (default build, with dagent
# and openai_test_server built), RUNS (300), CLIENTS (16: runs in flight), CONCURRENT (16:
# serve.max_concurrent_runs), STEPS (10), HISTORY (true: every run written to the run history).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-$root/build}"
ninja -C "$build" -j2 dagent openai_test_server >/dev/null
out="$(mktemp -d)"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"' EXIT
source "$root/bench/test_server.sh"
start_server model
model_port="$PORT"

steps="${STEPS:-10}"
python3 - "$steps" >"$out/task.json" <<'PY'
import json, sys
n = int(sys.argv[1])
plan = [{"id": i, "action": "llm", "parameters": {"prompt": "Say hello %d" % i, "max_tokens": 16},
         **({"dependencies": [i - 1]} if i > 1 else {})} for i in range(1, n + 1)]
print(json.dumps({"goal": "bench", "plan": plan}))
PY
cat >"$out/config.yaml" <<YAML
history:
  enabled: ${HISTORY:-true}
  path: $out/h.db
memory:
  enabled: false
performance:
  rate_limiting:            # the defaults (10 000 rpm) would pace a run of 10 000+ model calls
    rpm_limit: 1000000000
    tpm_limit: 1000000000000
serve:
  max_concurrent_runs: ${CONCURRENT:-16}
  max_queued_runs: 10000
YAML

(cd "$out" && OPENAI_API_KEY=sk-bench OPENAI_BASE_URL="http://127.0.0.1:$model_port/v1" \
  "$build/dagent" serve --config "$out/config.yaml" --listen 127.0.0.1:0 >"$out/serve.out" 2>"$out/serve.err") &
pids+=("$!")
for _ in $(seq 200); do
  serve_port="$(sed -n 's/^dagent serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out/serve.out" 2>/dev/null || true)"
  [[ -n "$serve_port" ]] && break
  sleep 0.05
done
[[ -n "${serve_port:-}" ]] || { echo "dagent serve did not start: $(cat "$out/serve.err")" >&2; exit 1; }

python3 "$root/bench/serve_client.py" --port "$serve_port" --task "$out/task.json" --runs 20 --clients 4 >/dev/null  # warm-up
python3 "$root/bench/serve_client.py" --port "$serve_port" --task "$out/task.json" --runs "${RUNS:-300}" --clients "${CLIENTS:-16}"
# What the model server answered (warm-up included): every step was a real call, none cached.
echo "model server requests: $(python3 -c 'import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1]))["requests"]["total"])' "http://127.0.0.1:$model_port/_stats")"
if [[ "${HISTORY:-true}" == true ]] && command -v sqlite3 >/dev/null; then
  sleep 0.5  # the history writer is behind the results by a moment
  echo "run wall ms (history): $(sqlite3 "$out/h.db" 'select min(ended_ms-started_ms), max(ended_ms-started_ms), count(*) from runs; select max(finished_ms-started_ms) from steps')"
fi
