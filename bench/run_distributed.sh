#!/usr/bin/env bash
# Issue 16 part 6: a fan-out of ITEMS (default 400) latency-bound steps (the test worker's `sleep`
# tool, MS = 200 ms each) sent by `dagent run --distributed` to 1, 2 and 4 worker processes
# (dagent_test_worker, CONCURRENCY jobs each, default 10) through a redis-server started here.
# Ideal makespan = ceil(ITEMS / (W x CONCURRENCY)) x MS; prints makespan (the for_each step's
# first start to its last finish, from the run's JSON) against it as a Markdown table.
#
#   bench/run_distributed.sh [build-dir]
set -euo pipefail
build="${1:-build}"
items="${ITEMS:-400}"
ms="${MS:-200}"
concurrency="${CONCURRENCY:-10}"
out="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ninja -C "$build" -j2 dagent dagent_test_worker >/dev/null
build="$(cd "$build" && pwd)"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port="$(free_port)"
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --daemonize no >"$out/redis.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done

cat >"$out/config.yaml" <<YAML
redis: {url: "redis://127.0.0.1:$redis_port"}
memory: {enabled: false}
executor: {max_fan_out: $items}
YAML
python3 - "$items" "$ms" >"$out/task.yaml" <<'PY'
import json, sys
items, ms = int(sys.argv[1]), int(sys.argv[2])
step = {"id": 1, "action": "sleep", "for_each": list(range(items)), "parameters": {"ms": ms, "value": "$item"}}
print("workspace: .\nplan: " + json.dumps([step]))
PY

echo "| workers | concurrency each | ideal ms | makespan ms | vs ideal | run wall ms |"
echo "|---|---|---|---|---|---|"
for w in 1 2 4; do
  redis-cli -p "$redis_port" flushall >/dev/null
  wpids=()
  for i in $(seq "$w"); do
    (cd "$out" && exec "$build/dagent_test_worker" config.yaml "w$i" "$concurrency" "$out") >"$out/worker$w-$i.log" 2>&1 &
    wpids+=("$!")
    pids+=("$!")
  done
  for _ in $(seq 200); do
    [[ "$(redis-cli -p "$redis_port" scard dagent:v1:workers)" == "$w" ]] && break
    sleep 0.05
  done
  (cd "$out" && "$build/dagent" run task.yaml --config config.yaml --distributed --json -q) >"$out/run$w.json" 2>"$out/run$w.err"
  python3 - "$out/run$w.json" "$w" "$concurrency" "$items" "$ms" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1]))
w, c, items, ms = map(int, sys.argv[2:])
assert r["status"] == "succeeded", r.get("error")
step = r["steps"][0]
makespan = step["finished_ms"] - step["started_ms"]
ideal = math.ceil(items / (w * c)) * ms
print(f"| {w} | {c} | {ideal} | {makespan:.0f} | {100 * (makespan / ideal - 1):+.1f} % | {r['metrics']['wall_ms']:.0f} |")
PY
  for p in "${wpids[@]}"; do kill -TERM "$p"; done
  for p in "${wpids[@]}"; do wait "$p" || true; done
done
