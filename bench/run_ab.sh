#!/usr/bin/env bash
# The seed's A/B test as a benchmark (bench/README.md, "A/B: every performance flag off, then on
# (issue 15)"): one realistic goal run, every performance flag off, then every flag on, against the
# scripted test server over TLS with remote-like costs. Target: at least 55 % lower latency on.
#
# The run (fixtures in bench/ab/): the goal asks for a weekly report from three notes; the scripted
# model answers the intent call, then the 12-step plan of bench/ab/plan.json (3 read_file in
# parallel, an `llm` summary of each with a `verify` criterion for the LLM judge, 3 memory_add of
# the summaries, a memory_search, a critical `llm` report step with its own judged criterion, a
# write_file of the report), then the llm steps, the verdicts and the answer. Costs on the server:
# CHAT_MS per chat call (streamed or not), EMBED_MS per embedding request, CONNECT_MS per new
# connection (--connect-delay-ms, before the TLS handshake).
#
# Configurations: FLAGS below is the one place that says which keys are the performance flags and
# their value off and on. Every run also gets COMMON. Keys marked `new` are included only when the
# binary knows them (`dagent validate --set KEY=VALUE`); the script prints which were used.
#
# Environment: ROUNDS (3; each round runs off, on[, ablations] once, alternating), CHAT_MS (400),
# EMBED_MS (150), CONNECT_MS (100), PLAN_CHUNK_MS (0: the time the model takes to write each
# further step of the plan: a streamed plan sends one step per chunk this far apart after CHAT_MS, a
# whole plan arrives after CHAT_MS + 11 x PLAN_CHUNK_MS), ABLATION (0; 1 adds "on except one flag" for every flag), RAW (0; 1
# prints every round's numbers), SAVE_DIR (keeps each result JSON there), ONLY (e.g. "on":
# run only these configurations, no A/B verdict), BUILD (build/). Needs python3 and openssl (certificates).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-$root/build}"
rounds="${ROUNDS:-3}"; chat_ms="${CHAT_MS:-400}"; embed_ms="${EMBED_MS:-150}"; connect_ms="${CONNECT_MS:-100}"
plan_chunk_ms="${PLAN_CHUNK_MS:-0}"; ablation="${ABLATION:-0}"
fixtures="$root/bench/ab"

# ---- the configurations: the ONE place to add a key -------------------------------------------
# key | value off | value on | required (must be known to the binary) or new (used only when known)
FLAGS=(
  "performance.connection_pooling.enabled         | false      | true  | required"
  "performance.connection_pooling.warm_connections| false      | true  | new"
  "performance.parallel_execution.enabled         | false      | true  | required"
  "performance.parallel_execution.scheduling      | levels     | eager | required"
  "performance.batch_embeddings.enabled           | false      | true  | required"
  "performance.caching.tool_catalog               | false      | true  | required"
  "performance.caching.prompt_templates           | false      | true  | required"
  "performance.caching.llm_responses              | false      | true  | required"
  "performance.background_tasks.verification      | false      | true  | required"
  "performance.background_tasks.memory_updates    | false      | true  | required"
  "planner.stream_plan                            | false      | true  | required"
  "planner.intent_mode                            | sequential | speculative | new"
)
# Set the same in both: rate limiting stays on, with limits far above this run's load (15 requests
# and about 7 k tokens, reservations included, against 10 000 RPM and 2 M TPM at a 0.9 margin: it
# never waits; metrics.rate_limit_wait_ms is 0).
COMMON=(
  "performance.rate_limiting.enabled=true"
  "performance.rate_limiting.rpm_limit=10000"
  "performance.rate_limiting.tpm_limit=2000000"
)
# planner.intent_mode (branch plan15): sequential (today: the plan call waits for the intent call),
# speculative (both at once; the default there) or folded (one call). Any value but sequential
# takes the intent call off the critical path, and the bound of "on" then leaves it out.

# ---- processes ------------------------------------------------------------------------------
work="$(mktemp -d)"; pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -x "$build/dagent" && -x "$build/openai_test_server" ]] ||
  { echo "run_ab: build first: ninja -C $build dagent openai_test_server" >&2; exit 1; }
command -v python3 >/dev/null || { echo "run_ab: needs python3" >&2; exit 1; }

# Which keys the binary knows: `validate` says "unknown key" for the others. Any other problem
# (a known key with a value it refuses) stops the bench: fix FLAGS.
knows() {  # KEY VALUE → 0 known, 1 unknown
  local out
  if out="$(cd "$work" && "$build/dagent" validate --set "$1=$2" 2>&1)"; then return 0; fi
  grep -q "unknown key" <<<"$out" && return 1
  echo "run_ab: $1=$2 is refused by this binary:" >&2; echo "$out" >&2; exit 1
}
off_sets=(); on_sets=(); used=(); skipped=(); flag_keys=()
intent_off_path=0
for row in "${FLAGS[@]}"; do
  IFS='|' read -r key off on kind <<<"$row"
  key="$(xargs <<<"$key")"; off="$(xargs <<<"$off")"; on="$(xargs <<<"$on")"; kind="$(xargs <<<"$kind")"
  if knows "$key" "$off" && knows "$key" "$on"; then
    off_sets+=("$key=$off"); on_sets+=("$key=$on"); used+=("$key ($off / $on)")
    flag_keys+=("$key")
    [[ "$key" == planner.intent_mode && "$on" != sequential ]] && intent_off_path=1
  elif [[ "$kind" == required ]]; then
    echo "run_ab: this binary does not know $key (a required row of FLAGS)" >&2; exit 1
  else
    skipped+=("$key")
  fi
done
for s in "${COMMON[@]}"; do knows "${s%%=*}" "${s#*=}" || { echo "run_ab: unknown key in COMMON: $s" >&2; exit 1; }; done

# ---- certificates and the server -------------------------------------------------------------
certs="$work/certs"
bash "$root/tests/server/make_certs.sh" "$certs" >/dev/null
python3 "$fixtures/ab.py" script "$fixtures" "$chat_ms" "$embed_ms" "$plan_chunk_ms" > "$work/script.json"

# --parent: the server dies with this script even when it is killed too hard for the trap.
server_args=(--port 0 --tls "$certs/server.pem" "$certs/server.key" --script "$work/script.json" --parent $$)
if "$build/openai_test_server" --help 2>&1 | grep -q -- --connect-delay-ms; then
  server_args+=(--connect-delay-ms "$connect_ms")
  connect_note="$connect_ms ms per new connection (--connect-delay-ms)"
else
  connect_note="NOT MODELLED: this openai_test_server has no --connect-delay-ms, so a new connection costs only the loopback TLS handshake (the bound below counts 0 for it)"
  connect_ms=0
fi
"$build/openai_test_server" "${server_args[@]}" > "$work/server.out" 2>&1 & pids+=($!)
port=""
for _ in $(seq 100); do
  port="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/server.out" 2>/dev/null || true)"
  [[ -n "$port" ]] && break
  kill -0 "${pids[-1]}" 2>/dev/null || break
  sleep 0.05
done
[[ -n "$port" ]] || { echo "run_ab: the test server did not start: $(cat "$work/server.out")" >&2; exit 1; }

# ---- the runs ---------------------------------------------------------------------------------
intent_on_path=$((1 - intent_off_path))

python3 - "$work/configs.json" <<PY
import json, sys
off = """$(printf '%s\n' "${off_sets[@]}")""".split()
on = """$(printf '%s\n' "${on_sets[@]}")""".split()
keys = """$(printf '%s\n' "${flag_keys[@]}")""".split()
configs = [{"name": "off", "sets": off}, {"name": "on", "sets": on}]
if "$ablation" == "1":
    for i, k in enumerate(keys):
        # "on except k": stream_plan needs eager scheduling, so levels also turns stream_plan off
        sets = [s if j != i else off[i] for j, s in enumerate(on)]
        if k == "performance.parallel_execution.scheduling":
            sets = [s if not s.startswith("planner.stream_plan=") else "planner.stream_plan=false" for s in sets]
        configs.append({"name": k.split(".", 1)[1] if k.startswith("performance.") else k, "sets": sets})
json.dump({"configs": configs, "common": """$(printf '%s\n' "${COMMON[@]}")""".split(),
           "rounds": $rounds, "port": $port, "ca": "$certs/ca.pem", "dagent": "$build/dagent",
           "fixtures": "$fixtures", "work": "$work", "chat_ms": $chat_ms, "embed_ms": $embed_ms,
           "connect_ms": $connect_ms, "plan_chunk_ms": $plan_chunk_ms, "intent_on_path": bool($intent_on_path), "raw": "${RAW:-0}" == "1"},
          open(sys.argv[1], "w"), indent=1)
PY

echo "A/B benchmark: a 12-step goal run (bench/ab/plan.json) over TLS against the scripted server;"
echo "costs: $chat_ms ms per chat call, $embed_ms ms per embedding request, $connect_note."
echo "binaries: $build/dagent ($("$build/dagent" --version 2>&1 | head -1)), $build/openai_test_server; bench/ at git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo ?); $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "Performance flags toggled (off / on):"
for u in "${used[@]}"; do echo "  $u"; done
if ((${#skipped[@]})); then
  echo "Not known to this binary, left out: ${skipped[*]}"
fi
echo "Same in both: ${COMMON[*]} (limits far above the load: the limiter never waits)"
echo
python3 "$fixtures/ab.py" bound "$fixtures" "$chat_ms" "$embed_ms" "$connect_ms" "$plan_chunk_ms"
echo
echo "Running $rounds rounds (progress on stderr) ..."
# In the background with a wait, so that a TERM reaches the trap (and stops the runner) at once.
python3 "$fixtures/ab.py" run "$work/configs.json" & pids+=($!)
wait $!
