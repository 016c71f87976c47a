#!/usr/bin/env bash
# Warm connections benchmark (bench/README.md, "Warm connections (issue 15)"): the dagent CLI runs
# a goal against the scripted test server over TLS, where every new connection costs CONNECT_MS
# (--connect-delay-ms, a remote provider's TCP + TLS setup) and every chat call LATENCY_MS.
# The plan: step 1 (llm), then WIDTH llm steps that each use it (the widening level), then one
# llm step joining them. Compared: performance.connection_pooling.warm_connections true / false.
# Reported (medians of ROUNDS): wall time; the widening level's span (first start to last end)
# minus one call's latency, i.e. what the level spent on anything but the model: waiting for
# connections; and the connections the server accepted.
# Environment: ROUNDS (5), CONNECT_MS (100), LATENCY_MS (400), WIDTH (4). Needs python3.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-$root/build}"
rounds="${ROUNDS:-5}"; connect_ms="${CONNECT_MS:-100}"; latency_ms="${LATENCY_MS:-400}"; width="${WIDTH:-4}"
work="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
[[ -x "$build/dagent" && -x "$build/openai_test_server" ]] || { echo "build first: scripts/setup.sh" >&2; exit 1; }
bash "$root/tests/server/make_certs.sh" "$work/certs" >/dev/null

python3 - "$work" "$latency_ms" "$width" <<'PY'
import json, sys
work, latency_ms, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
steps = [{"id": 1, "action": "llm", "parameters": {"prompt": "bench-warm first", "max_tokens": 16}}]
for k in range(2, 2 + width):
    steps.append({"id": k, "action": "llm", "parameters": {"prompt": f"bench-warm wide {k} after $step1.text", "max_tokens": 16}})
joined = " ".join(f"$step{k}.text" for k in range(2, 2 + width))
steps.append({"id": 2 + width, "action": "llm", "parameters": {"prompt": "bench-warm join " + joined, "max_tokens": 16}})
script = {"rules": [{"contains": "Write a plan for the goal", "reply": json.dumps({"steps": steps}), "latency_ms": latency_ms},
                    {"contains": "bench-warm", "latency_ms": latency_ms}]}
json.dump(script, open(f"{work}/script.json", "w"))
open(f"{work}/task.yaml", "w").write("goal: run the bench-warm steps\nworkspace: .\n")
PY

# A fresh server per run: its connection counter then counts that run's connections only.
start_server() {  # → sets port and server_pid
  local out="$work/server.out"
  "$build/openai_test_server" --port 0 --tls "$work/certs/server.pem" "$work/certs/server.key" \
    --script "$work/script.json" --connect-delay-ms "$connect_ms" > "$out" 2>&1 &
  server_pid=$!; pids+=($server_pid)
  for _ in $(seq 50); do grep -q listening "$out" 2>/dev/null && break; sleep 0.1; done
  port=$(sed 's/.*://' "$out" | head -1)
}

run() {  # $1 warm_connections → "wall_ms level_wait_ms connections status"
  start_server
  local result
  result=$(cd "$work" && OPENAI_BASE_URL="https://localhost:$port/v1" "$build/dagent" run task.yaml --json -q \
     --set llm.ca_file="$work/certs/ca.pem" \
     --set planner.intent_analysis=false --set planner.synthesize_answer=false --set memory.enabled=false \
     --set performance.parallel_execution.max_parallel_steps=8 \
     --set performance.parallel_execution.max_parallel_llm_calls="$width" \
     --set performance.connection_pooling.warm_connections="$1" 2>/dev/null || true)
  local accepted
  accepted=$(python3 - "$port" <<'PY'
import json, socket, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
with ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), server_hostname="localhost") as s:
    s.sendall(b"GET /_stats HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := s.recv(65536): data += chunk
print(json.loads(data.split(b"\r\n\r\n", 1)[1])["connections_accepted"])
PY
)
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  printf '%s' "$result" | python3 -c '
import json, sys
r = json.load(sys.stdin); latency, width, accepted = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
wide = [s for s in r["steps"] if 2 <= s["id"] <= 1 + width]
span = max(s["finished_ms"] for s in wide) - min(s["started_ms"] for s in wide)
print("%.1f %.1f %s %s" % (r["metrics"]["wall_ms"], span - latency, accepted, r["status"]))' "$latency_ms" "$width" "$accepted"
}

declare -A results
for round in $(seq "$rounds"); do
  run true > "$work/row"; results[on]+="$(cat "$work/row")"$'\n'
  run false > "$work/row"; results[off]+="$(cat "$work/row")"$'\n'
done

echo "Warm connections: TLS, --connect-delay-ms $connect_ms, $latency_ms ms per chat call, plan 1 -> $width -> 1 llm steps; median of $rounds rounds"
echo
echo "| warm_connections | wall (ms) | widening level beyond one call (ms) | connections accepted | status |"
echo "|---|---|---|---|---|"
for v in on off; do
  printf '%s' "${results[$v]}" | python3 -c '
import sys, statistics
rows = [l.split() for l in sys.stdin if l.strip()]
med = lambda i: statistics.median(float(r[i]) for r in rows)
status = "/".join(sorted(set(r[3] for r in rows)))
print(f"| {sys.argv[1]} | {med(0):.1f} | {med(1):.1f} | {med(2):.0f} | {status} |")' "$([[ $v == on ]] && echo 'true (default)' || echo false)"
done
