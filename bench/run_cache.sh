#!/usr/bin/env bash
# Issue 16: response cache hit latency, L1 (this process's LRU) against L2 (Redis), through
# CachingProvider for a small reply, a large compressed one and a 1536-float embedding
# (bench_cache), against a redis-server started here on a free loopback port with no
# persistence. RUNS (default 3) runs of N (default 5000) hits per case.
#
#   bench/run_cache.sh [build-dir]
set -euo pipefail
build="${1:-build}"
runs="${RUNS:-3}"
n="${N:-5000}"
out="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ninja -C "$build" -j2 bench_cache >/dev/null

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port="$(free_port)"
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --daemonize no >"$out/redis.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done

echo "redis-server $(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$runs"); do
  redis-cli -p "$redis_port" flushall >/dev/null
  echo "run $i:"
  "$build/bench_cache" --redis "redis://127.0.0.1:$redis_port" --n "$n" | tee "$out/run-$i.log" | grep -v '^json '
done
