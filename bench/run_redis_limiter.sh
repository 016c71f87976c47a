#!/usr/bin/env bash
# Issue 16: PROCS (default 4) processes sharing RPM (default 600) against the test server
# enforcing RPM per PERIOD_MS as a refilled bucket: with the shared limiter (one budget in a
# redis-server started here) and with per-process limiters (each told the whole RPM). Demand is
# far above the budget (3 x RPM calls per process, all ready at once); each process stops after
# DURATION_MS (default two periods) and the server's counters are read. "allowed" is what the
# server's bucket admits in the wall time: a full bucket plus the refill. Then the Redis round
# trips (bench_redis). Prints a Markdown table.
#
#   bench/run_redis_limiter.sh [build-dir]       PERIOD_MS=10000 for a 1/6-scale run
set -euo pipefail
build="${1:-build}"
rpm="${RPM:-600}"
period_ms="${PERIOD_MS:-60000}"
duration_ms="${DURATION_MS:-$((2 * period_ms))}"
procs="${PROCS:-4}"
out="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ninja -C "$build" -j2 openai_test_server bench_limiter bench_redis >/dev/null

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port="$(free_port)"
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --daemonize no >"$out/redis.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
redis_url="redis://127.0.0.1:$redis_port"

# shellcheck source=bench/test_server.sh
source "$(dirname "${BASH_SOURCE[0]}")/test_server.sh"

http() { python3 -c 'import sys, urllib.request; r = urllib.request.Request(sys.argv[2], method=sys.argv[1], data=b"" if sys.argv[1] == "POST" else None); print(urllib.request.urlopen(r).read().decode())' "$@"; }

run() {  # name, extra bench_limiter args...
  local name="$1"
  shift
  start_server "$name" --rpm "$rpm" --rate-model bucket --period-ms "$period_ms"
  http POST "http://127.0.0.1:$PORT/_reset" >/dev/null
  redis-cli -p "$redis_port" flushall >/dev/null
  local started
  started=$(date +%s.%N)
  local workers=()
  for i in $(seq "$procs"); do
    "$build/bench_limiter" --load bursty --port "$PORT" --rpm "$rpm" --period-ms "$period_ms" --calls $((3 * rpm)) \
      --duration-ms "$duration_ms" --no-reset --label "$name-$i" "$@" >"$out/$name-$i.log" 2>&1 &
    workers+=("$!")
  done
  for w in "${workers[@]}"; do wait "$w" || true; done
  local ended
  ended=$(date +%s.%N)
  http GET "http://127.0.0.1:$PORT/_stats" >"$out/$name.stats"
  kill "$PID" 2>/dev/null || true
  python3 - "$name" "$out/$name.stats" "$rpm" "$period_ms" "$started" "$ended" <<'PY'
import json, sys
name, stats, rpm, period_ms, started, ended = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
ok = int(stats.get("status", {}).get("200", 0))
r429 = int(stats.get("rate_limited", 0))
wall = ended - started
allowed = rpm + rpm * wall / (period_ms / 1000.0)   # a full bucket, then the refill
print(f"| {name} | {ok} | {allowed:.0f} | {100.0 * ok / allowed:.1f} % | {r429} | {wall:.1f} s |")
PY
}

echo "| limiters ($procs processes, $rpm RPM per $((period_ms / 1000)) s) | accepted | allowed in the wall time | used | 429s | wall time |"
echo "|---|---|---|---|---|---|"
run shared --redis "$redis_url" --expected-processes "$procs"
run per-process
echo
"$build/bench_redis" --redis "$redis_url" --n "${N:-2000}" | grep -v '^json '
