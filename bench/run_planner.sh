#!/usr/bin/env bash
# Planner benchmark (bench/README.md, "Planner"): a paced 20-step plan from the scripted test
# server, run by the dagent CLI on loopback.
#   A. time from run start to the first step dispatch, with and without planner.stream_plan;
#   B. wall time of plan + execute, parallel (eager) against parallel_execution.enabled: false.
# The plan: 20 `llm` steps in 4 chains of 5 (step k refers to step k-4); each llm call takes
# STEP_MS on the server. Streamed, the plan arrives as 20 chunks CHUNK_MS apart; whole, it arrives
# after the same total time (latency 20 x CHUNK_MS), as a model would need to write it.
# Environment: ROUNDS (5), STEP_MS (100), CHUNK_MS (30). Needs python3 for the JSON plumbing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-$root/build}"
rounds="${ROUNDS:-5}"; step_ms="${STEP_MS:-100}"; chunk_ms="${CHUNK_MS:-30}"
work="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
[[ -x "$build/dagent" && -x "$build/openai_test_server" ]] || { echo "build first: scripts/setup.sh" >&2; exit 1; }

python3 - "$work" "$step_ms" "$chunk_ms" <<'PY'
import json, sys
work, step_ms, chunk_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
steps = []
for k in range(1, 21):
    prompt = f"bench-step {k}" + (f" after $step{k-4}.text" if k > 4 else "")
    steps.append({"id": k, "action": "llm", "parameters": {"prompt": prompt, "max_tokens": 16}})
chunks = [('{"steps": [' if i == 0 else ' ') + json.dumps(s) + (',' if i < 19 else ']}') for i, s in enumerate(steps)]
step_rule = {"contains": "bench-step", "latency_ms": step_ms}
plan_marker = "Write a plan for the goal"
streamed = {"rules": [step_rule, {"contains": plan_marker, "stream_chunks": chunks, "stream_interval_ms": chunk_ms}]}
whole = {"rules": [step_rule, {"contains": plan_marker, "reply": "".join(chunks), "latency_ms": chunk_ms * 20}]}
json.dump(streamed, open(f"{work}/streamed.json", "w"))
json.dump(whole, open(f"{work}/whole.json", "w"))
open(f"{work}/task.yaml", "w").write("goal: run the twenty bench steps\nworkspace: .\n")
PY

start_server() {  # $1 script → prints the port
  "$build/openai_test_server" --port 0 --script "$1" > "$work/port.$2" 2>&1 & pids+=($!)
  for _ in $(seq 50); do grep -q listening "$work/port.$2" 2>/dev/null && break; sleep 0.1; done
  sed 's/.*://' "$work/port.$2" | head -1
}
streamed_port=$(start_server "$work/streamed.json" s)
whole_port=$(start_server "$work/whole.json" w)

run() {  # $1 port, rest: --set options → "first_step_ms planning_ms wall_ms status"
  local port=$1; shift
  (cd "$work" && OPENAI_BASE_URL="http://127.0.0.1:$port/v1" "$build/dagent" run task.yaml --json -q \
     --set planner.intent_analysis=false --set planner.synthesize_answer=false \
     --set performance.parallel_execution.max_parallel_steps=8 \
     --set performance.parallel_execution.max_parallel_llm_calls=8 "$@" 2>/dev/null) |
    python3 -c 'import json,sys; r=json.load(sys.stdin); s=r["steps"]; print(min(x["started_ms"] for x in s), r["metrics"]["planning_ms"], r["metrics"]["wall_ms"], r["status"])'
}

declare -A results
for round in $(seq "$rounds"); do
  results[stream]+="$(run "$streamed_port" --set planner.stream_plan=true)"$'\n'
  results[whole]+="$(run "$whole_port" --set planner.stream_plan=false)"$'\n'
  results[sequential]+="$(run "$whole_port" --set planner.stream_plan=false --set performance.parallel_execution.enabled=false)"$'\n'
  results[stream_seq]+="$(run "$streamed_port" --set planner.stream_plan=true --set performance.parallel_execution.enabled=false)"$'\n'
done

echo "Planner benchmark: 20 llm steps (4 chains of 5, ${step_ms} ms each), plan written over $((20 * chunk_ms)) ms; median of $rounds rounds"
echo
echo "| variant | first step dispatched (ms) | plan complete (ms) | wall (ms) | status |"
echo "|---|---|---|---|---|"
for v in whole stream sequential stream_seq; do
  printf '%s' "${results[$v]}" | python3 -c '
import sys, statistics
rows = [l.split() for l in sys.stdin if l.strip()]
med = lambda i: statistics.median(float(r[i]) for r in rows)
names = {"whole": "whole plan, eager", "stream": "streamed plan, eager (default)",
         "sequential": "whole plan, parallel_execution off", "stream_seq": "streamed plan, parallel_execution off"}
status = "/".join(sorted(set(r[3] for r in rows)))
print(f"| {names[sys.argv[1]]} | {med(0):.1f} | {med(1):.1f} | {med(2):.1f} | {status} |")' "$v"
done
