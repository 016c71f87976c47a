#!/usr/bin/env bash
# Replay benchmark (bench/README.md, "Replay"): a 1 000-step fixed plan of `llm` steps (10 chains of
# 100) is recorded against the scripted test server, then replayed offline with no timing delays
# (--replay-timing instant), with the tools re-run (the llm tool is answered by the replay
# provider) and with --replay-tools. Reports wall time and peak RSS (GNU time), median of ROUNDS.
# Environment: STEPS (1000), ROUNDS (5).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-$root/build}"
steps="${STEPS:-1000}"; rounds="${ROUNDS:-5}"
work="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
[[ -x "$build/dagent" && -x "$build/openai_test_server" ]] || { echo "build first: scripts/setup.sh" >&2; exit 1; }

python3 - "$work" "$steps" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
plan = []
for k in range(1, n + 1):
    prompt = f"bench step {k}" + (f" after $step{k-10}.text" if k > 10 else "")
    plan.append({"id": k, "action": "llm", "parameters": {"prompt": prompt, "max_tokens": 16}})
json.dump(plan, open(f"{work}/plan.json", "w"))
open(f"{work}/task.yaml", "w").write("workspace: .\nplan: plan.json\n")
open(f"{work}/config.yaml", "w").write(
    "performance:\n  parallel_execution: {max_parallel_steps: 16, max_parallel_llm_calls: 16}\n"
    "  rate_limiting: {enabled: false}\nmemory: {enabled: false}\nplanner: {max_steps: 10000}\n")
PY

"$build/openai_test_server" --port 0 > "$work/port" 2>&1 & pids+=($!)
for _ in $(seq 50); do grep -q listening "$work/port" 2>/dev/null && break; sleep 0.1; done
port=$(sed 's/.*://' "$work/port" | head -1)
(cd "$work" && OPENAI_BASE_URL="http://127.0.0.1:$port/v1" OPENAI_API_KEY=bench \
   /usr/bin/time -f "%e %M" -o "$work/record.time" "$build/dagent" run task.yaml -q --record run.jsonl > /dev/null)
echo "recorded: $(wc -l < "$work/run.jsonl") events, $(du -k "$work/run.jsonl" | cut -f1) KiB, live run $(cut -d' ' -f1 "$work/record.time") s, peak RSS $(cut -d' ' -f2 "$work/record.time") KiB"

replay() {  # extra options → "seconds rss_kib"
  (cd "$work" && OPENAI_BASE_URL="http://127.0.0.1:9/v1" /usr/bin/time -f "%e %M" -o "$work/t" \
     "$build/dagent" replay run.jsonl -q --replay-timing instant "$@" > /dev/null) && cat "$work/t"
}
echo
echo "| replay ($steps steps) | wall s (median of $rounds) | peak RSS MiB |"
echo "|---|---|---|"
for variant in tools-rerun replay-tools; do
  rows=""
  for _ in $(seq "$rounds"); do
    if [[ $variant == replay-tools ]]; then rows+="$(replay --replay-tools)"$'\n'; else rows+="$(replay)"$'\n'; fi
  done
  printf '%s' "$rows" | python3 -c '
import sys, statistics
rows = [l.split() for l in sys.stdin if l.strip()]
print(f"| {sys.argv[1]} | {statistics.median(float(r[0]) for r in rows):.3f} | {max(int(r[1]) for r in rows) / 1024:.1f} |")' "$variant"
done
