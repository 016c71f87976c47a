#!/usr/bin/env bash
# Intent off the critical path (bench/README.md, "Planner: intent off the critical path (issue 15)"):
# planning latency and tokens of planner.intent_mode sequential / speculative / folded, with the
# plan whole or streamed, against the scripted test server at CALL_MS per chat call, run by the
# dagent CLI on loopback.
#   allow:   the intent allows the tools the plan call (offered every tool) chose: the plan is kept;
#   discard: the plan call offered every tool uses list_dir, the intent allows only read_file:
#            speculative discards that plan and plans again (the cost of a discard).
# Whole, a plan call answers after CALL_MS; streamed, its 12 SSE events (8 chunks of the plan, role,
# finish, usage, [DONE]) arrive CALL_MS/12 apart, the last at CALL_MS. Tokens are the server's usage (bytes / 4) of
# every chat call of the run, summed by dagent (metrics.prompt_tokens / completion_tokens); a
# streamed call abandoned mid-stream reports no usage, so its prompt is not counted there.
# Environment: ROUNDS (5), CALL_MS (400). Needs python3 for the JSON plumbing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-$root/build}"
rounds="${ROUNDS:-5}"; call_ms="${CALL_MS:-400}"
work="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
[[ -x "$build/dagent" && -x "$build/openai_test_server" ]] || { echo "build first: scripts/setup.sh" >&2; exit 1; }

python3 - "$work" "$call_ms" <<'PY'
import json, sys
work, call_ms = sys.argv[1], int(sys.argv[2])
def plan(actions):
    steps = [{"id": i + 1, "action": a, "parameters": {"path": p}} for i, (a, p) in enumerate(actions)]
    return json.dumps({"intent": "read two files", "steps": steps})  # "intent": read by folded only
reads = plan([("read_file", "a.txt"), ("read_file", "b.txt")])
listing = plan([("list_dir", "."), ("read_file", "a.txt"), ("read_file", "b.txt")])
intent = {"contains": "intent analyser", "latency_ms": call_ms,
          "reply": json.dumps({"intent": "read two files", "tools": ["read_file"]})}
def plan_rule(contains, text, streamed):
    if not streamed:
        return {"contains": contains, "latency_ms": call_ms, "reply": text}
    # 8 content chunks plus the role, finish, usage and [DONE] events: 12 events, the last one
    # CALL_MS after the request, as the whole reply.
    n = 8; size = -(-len(text) // n); gap = call_ms // 12
    return {"contains": contains, "latency_ms": call_ms - 11 * gap, "stream_interval_ms": gap,
            "stream_chunks": [text[i:i + size] for i in range(0, len(text), size)]}
for streamed in (False, True):
    kind = "streamed" if streamed else "whole"
    allow = [intent, plan_rule("Write a plan for the goal", reads, streamed)]
    # The plan call offered every tool is the one whose catalog describes list_dir.
    discard = [intent, plan_rule("- list_dir: ", listing, streamed), plan_rule("Write a plan for the goal", reads, streamed)]
    json.dump({"rules": allow}, open(f"{work}/allow-{kind}.json", "w"))
    json.dump({"rules": discard}, open(f"{work}/discard-{kind}.json", "w"))
open(f"{work}/task.yaml", "w").write("goal: Read a.txt and b.txt\nworkspace: .\n")
open(f"{work}/a.txt", "w").write("alpha\n")
open(f"{work}/b.txt", "w").write("beta\n")
PY

declare -A port
start_server() {  # $1 script name
  "$build/openai_test_server" --port 0 --script "$work/$1.json" > "$work/port.$1" 2>&1 & pids+=($!)
  for _ in $(seq 50); do grep -q listening "$work/port.$1" 2>/dev/null && break; sleep 0.1; done
  port[$1]=$(sed 's/.*://' "$work/port.$1" | head -1)
}
for s in allow-whole allow-streamed discard-whole discard-streamed; do start_server "$s"; done

run() {  # $1 script, rest: --set options → "planning_ms first_step_ms prompt completion calls status"
  local script=$1; shift
  (cd "$work" && OPENAI_BASE_URL="http://127.0.0.1:${port[$script]}/v1" "$build/dagent" run task.yaml --json -q \
     --set planner.synthesize_answer=false --set memory.enabled=false "$@" 2>/dev/null) |
    python3 -c 'import json,sys; r=json.load(sys.stdin); m=r["metrics"]; s=r["steps"]
print(m["planning_ms"], min(x["started_ms"] for x in s) if s else -1, m["prompt_tokens"], m["completion_tokens"], m["llm_calls"], r["status"] + ("/" + "+".join(x["action"] for x in s)))'
}

declare -A results
variants=()
for scenario in allow discard; do
  for kind in whole streamed; do
    for mode in sequential speculative folded; do
      v="$scenario $kind $mode"; variants+=("$v")
      stream=false; [[ $kind == streamed ]] && stream=true
      for _ in $(seq "$rounds"); do
        results[$v]+="$(run "$scenario-$kind" --set planner.intent_mode=$mode --set planner.stream_plan=$stream)"$'\n'
      done
    done
  done
done

echo "Intent off the critical path: ${call_ms} ms per chat call, median of $rounds rounds"
echo
echo "| scenario | plan | intent_mode | planning done (ms) | first step started (ms) | prompt tokens | completion tokens | chat calls | status/steps |"
echo "|---|---|---|---|---|---|---|---|---|"
for v in "${variants[@]}"; do
  printf '%s' "${results[$v]}" | python3 -c '
import sys, statistics
rows = [l.split() for l in sys.stdin if l.strip()]
med = lambda i: statistics.median(float(r[i]) for r in rows)
scenario, kind, mode = sys.argv[1].split()
status = ",".join(sorted(set(r[5] for r in rows)))
print(f"| {scenario} | {kind} | {mode} | {med(0):.0f} | {med(1):.0f} | {med(2):.0f} | {med(3):.0f} | {med(4):.0f} | {status} |")' "$v"
done
