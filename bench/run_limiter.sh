#!/usr/bin/env bash
# Issue 15: the limiter in both modes (rate_limiting.window bucket | rolling) against the test
# server enforcing both models, with a bursty and a steady load. Prints a Markdown table.
#
#   bench/run_limiter.sh [build-dir]
#
# Real time by default: RPM (default 300) per PERIOD_MS (default 60 000 ms); 8 runs, about 8
# minutes. PERIOD_MS=10000 scales every duration to 1/6 (300 calls per 10 s, refilled at 30/s)
# and then also runs the issue's exact case once in real time. One run at a time.
set -euo pipefail
build="${1:-build}"
rpm="${RPM:-300}"
period_ms="${PERIOD_MS:-60000}"
out="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
ninja -C "$build" -j2 openai_test_server bench_limiter >/dev/null

# shellcheck source=bench/test_server.sh
source "$(dirname "${BASH_SOURCE[0]}")/test_server.sh"

run() {  # server-model, window, load, period-ms
  local name="$3-$2-on-$1-$4"
  start_server "$name" --rpm "$rpm" --rate-model "$1" --period-ms "$4"
  "$build/bench_limiter" --load "$3" --port "$PORT" --rpm "$rpm" --period-ms "$4" --window "$2" \
    --server-model "$1" --label "$name" >"$out/$name.log" 2>&1 || true
  kill "$PID" 2>/dev/null || true
  grep -v '^json ' "$out/$name.log" >&2 || true
  grep '^json ' "$out/$name.log" | cut -c6- >"$out/$name.json" || true
  echo "$out/$name.json"
}

rows=()
for server in bucket rolling; do
  for window in bucket rolling; do
    for load in bursty steady; do rows+=("$(run "$server" "$window" "$load" "$period_ms")"); done
  done
done
[[ "$period_ms" == 60000 ]] || rows+=("$(run bucket bucket bursty 60000)")

echo
echo "| server counts | rate_limiting.window | load | calls | period | ideal | wall time | achieved / ideal | 429s |"
echo "|---|---|---|---|---|---|---|---|---|"
for f in "${rows[@]}"; do
  python3 - "$f" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception:
    print(f"| {sys.argv[1]}: no result | | | | | | | | |"); sys.exit()
print(f"| {r['server_model']} | {r['window']} | {r['load']} | {r['ok']}/{r['calls']} | {r['period_s']:.0f} s "
      f"| {r['ideal_s']:.2f} s | {r['elapsed_s']:.2f} s | {100*r['achieved']:.1f} % | {r['r429']} |")
PY
done
