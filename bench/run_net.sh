#!/usr/bin/env bash
# Network benchmarks (bench/README.md, "Network"): builds what they need in Release (build-bench/,
# tests ON for the test server), installs wrk (Debian) and the openai npm SDK if missing, starts
# the scripted test servers on loopback, runs
#   1. the rate-limiter runs (bench_limiter, 4 variants on 4 servers, in the background: they
#      mostly wait on a 60 s window and send a few requests per second),
#   2. the HTTP load comparison on one server: bench_http (dagent's OpenAiClient), wrk and the
#      openai SDK on Node, at each concurrency, plus bench_http with pooling off, then dagent and
#      wrk with the client and the server sharing one CPU,
#   3. the 200-step LLM DAG through the dagent CLI (llm_dag gen/analyze),
# then waits for the limiter runs and prints Markdown tables. About 3 minutes after the build.
# Every server it started is stopped on exit.
#
# Environment: N (bench_http calls per run, at most, default 100000), SDK_N (SDK calls per run,
# default 3000), CONCURRENCY (default "1 8 32 64"), WRK_SECONDS (wrk's -d, and bench_http's time
# bound, default 2), ROUNDS (default 5: every client runs once per round at every C, interleaved;
# the median round is shown), NO_POOL_N (2000), PIN (1: pin server and client to separate CPUs),
# SHARED_CONCURRENCY ("1 64") and SHARED_ROUNDS (3) for the runs on one shared CPU,
# LIMITER_WINDOWS (60 s windows per limiter run, default 2), DAG_STEPS (200), DAG_REPEAT (3),
# SEED (1), SERVER_THREADS (1).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-bench"
n="${N:-100000}"
sdk_n="${SDK_N:-3000}"
concurrency="${CONCURRENCY:-1 8 32 64}"
wrk_seconds="${WRK_SECONDS:-2}"
rounds="${ROUNDS:-5}"
no_pool_n="${NO_POOL_N:-2000}"
limiter_windows="${LIMITER_WINDOWS:-2}"
dag_steps="${DAG_STEPS:-200}"
dag_repeat="${DAG_REPEAT:-3}"
seed="${SEED:-1}"
export SERVER_THREADS="${SERVER_THREADS:-1}"  # start_server (test_server.sh) reads it

# ---- build and tools ------------------------------------------------------------------------

if [[ ! -f "$build/build.ninja" ]] || grep -q '^DAGENT_BUILD_TESTS:BOOL=OFF' "$build/CMakeCache.txt" 2>/dev/null; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDAGENT_BUILD_TESTS=ON >/dev/null
fi
ninja -C "$build" bench_http bench_limiter llm_dag dagent openai_test_server >/dev/null

if ! command -v wrk >/dev/null; then
  sudo_cmd=""
  [[ "$(id -u)" != 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get install -y wrk >/dev/null 2>&1 || { $sudo_cmd apt-get update >/dev/null && $sudo_cmd apt-get install -y wrk >/dev/null; }
fi
if [[ ! -f "$root/bench/node_sdk/node_modules/openai/package.json" ]]; then
  (cd "$root/bench/node_sdk" && npm ci --no-audit --no-fund >/dev/null 2>&1)
fi

# ---- processes ------------------------------------------------------------------------------

out="$(mktemp -d)"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# CPU placement. With taskset and 2+ CPUs, the HTTP load runs pin the server to CPU 0 and the
# client to CPU 1, so every client gets one core of its own next to the server's. Unpinned, the
# kernel sometimes keeps the two on one CPU and sometimes not, and the rates flip between two
# modes (about 40 k and about 85 k req/s for dagent). PIN=0 turns pinning off.
server_pin=()
client_pin=()
shared_pin=()
if [[ "${PIN:-1}" != 0 ]] && command -v taskset >/dev/null && (($(nproc) >= 2)); then
  server_pin=(taskset -c 0)
  client_pin=(taskset -c 1)
  shared_pin=(taskset -c 1)
fi

# shellcheck source=bench/test_server.sh
source "$(dirname "${BASH_SOURCE[0]}")/test_server.sh"

# start_pinned [--pin|--pin-shared] NAME ARGS...: start_server on CPU 0 with --pin, on CPU 1 with
# --pin-shared (when pinning is on).
start_pinned() {
  local server_launch=()
  if [[ "$1" == --pin ]]; then
    server_launch=("${server_pin[@]}")
    shift
  elif [[ "$1" == --pin-shared ]]; then
    server_launch=("${shared_pin[@]}")
    shift
  fi
  start_server "$@"
}

# field JSON KEY: the value of KEY in a flat JSON line.
field() { sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1" | head -1; }
num() { printf "%.${2}f" "$1"; }
# server_cpu PID: utime + stime of PID in clock ticks.
server_cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
ticks="$(getconf CLK_TCK)"
ctl() { curl -fsS --max-time 5 "$@"; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
start=$SECONDS

# ---- 1. limiter (background) ----------------------------------------------------------------

rpm=600
tpm=60000
limiter_runs=(
  "A|TPM binds (200 tokens/request), usage = declared|--declared-tokens 200 --reply matched"
  "B|RPM binds (60 tokens/request), usage = declared|--declared-tokens 60 --reply matched"
  "C|TPM binds (200 tokens/request), server's default reply: usage < declared|--declared-tokens 200 --reply echo"
  "D|as A, through the sliding-window gate prototype, client limiter off|--declared-tokens 200 --reply matched --gate window --limiter off"
)
limiter_pids=()
for spec in "${limiter_runs[@]}"; do
  IFS='|' read -r label _ extra <<<"$spec"
  start_pinned "limiter-$label" --rpm "$rpm" --tpm "$tpm"
  # shellcheck disable=SC2086
  "$build/bench_limiter" --port "$PORT" --server-pid "$PID" --rpm "$rpm" --tpm "$tpm" --concurrency 16 \
    --windows "$limiter_windows" --label "$label" $extra >"$out/limiter-$label.log" 2>&1 &
  limiter_pids+=("$!")
  pids+=("$!")
done

# ---- 2. HTTP load: dagent, wrk, openai SDK ---------------------------------------------------

start_pinned --pin http
http_port="$PORT"
http_pid="$PID"
body="$("$build/bench_http" --print-body)"
url="http://127.0.0.1:$http_port"

# run_wrk C: one wrk run; prints a flat JSON line with the server's view added.
run_wrk() {
  local c="$1" cpu0 cpu1 line stats conns wrk_cpu
  ctl -X POST "$url/_reset" >/dev/null
  cpu0="$(server_cpu "$http_pid")"
  if [[ -x /usr/bin/time ]]; then
    BODY="$body" "${client_pin[@]}" /usr/bin/time -f "wrkcpu %U %S" -o "$out/wrk-$c.time" \
      wrk -t1 -c "$c" -d "${wrk_seconds}s" -s "$root/bench/wrk_chat.lua" "$url/v1/chat/completions" >"$out/wrk-$c.log"
  else  # no /usr/bin/time (Debian package "time"): wrk's CPU is not measured
    BODY="$body" "${client_pin[@]}" wrk -t1 -c "$c" -d "${wrk_seconds}s" -s "$root/bench/wrk_chat.lua" "$url/v1/chat/completions" >"$out/wrk-$c.log"
    echo "wrkcpu 0 0" >"$out/wrk-$c.time"
  fi
  cpu1="$(server_cpu "$http_pid")"
  line="$(grep '^wrkjson ' "$out/wrk-$c.log" | cut -c9-)"
  stats="$(ctl "$url/_stats")"
  conns="$(field "$stats" connections_accepted)"
  wrk_cpu="$(awk '/^wrkcpu/ {print $2 + $3}' "$out/wrk-$c.time")"
  echo "${line%\}},\"server_cpu_s\":$(awk -v a="$cpu0" -v b="$cpu1" -v t="$ticks" 'BEGIN {print (b - a) / t}'),\"client_cpu_s\":$wrk_cpu,\"connections_server\":$conns}"
}

# run_sdk C: one SDK run; same.
run_sdk() {
  local c="$1" cpu0 cpu1 line stats conns
  ctl -X POST "$url/_reset" >/dev/null
  cpu0="$(server_cpu "$http_pid")"
  (cd "$root/bench/node_sdk" && "${client_pin[@]}" node bench.mjs --base-url "$url/v1" --requests "$sdk_n" --concurrency "$c" \
    --body "$body" --max-seconds 10) >"$out/sdk-$c.log"
  cpu1="$(server_cpu "$http_pid")"
  line="$(grep '^nodejson ' "$out/sdk-$c.log" | cut -c10-)"
  stats="$(ctl "$url/_stats")"
  conns="$(field "$stats" connections_accepted)"
  echo "${line%\}},\"server_cpu_s\":$(awk -v a="$cpu0" -v b="$cpu1" -v t="$ticks" 'BEGIN {print (b - a) / t}'),\"connections_server\":$conns}"
}

run_dagent() {
  "${client_pin[@]}" "$build/bench_http" --port "$http_port" --server-pid "$http_pid" --requests "$1" --concurrency "$2" \
    --pooling "$3" --max-seconds "$wrk_seconds" >"$out/dagent-$2-$3.log"
  grep '^json ' "$out/dagent-$2-$3.log" | cut -c6-
}

# Rounds interleave the three clients, so that a change in the machine's background load hits
# all of them alike; the tables show the median round of each.
for round in $(seq "$rounds"); do
  for c in $concurrency; do
    run_dagent "$n" "$c" on >"$out/dagent-$c-r$round.json"
    run_wrk "$c" >"$out/wrk-$c-r$round.json"
    run_sdk "$c" >"$out/sdk-$c-r$round.json"
    echo "round $round, C=$c: dagent $(num "$(field "$(cat "$out/dagent-$c-r$round.json")" rps)" 0) req/s, wrk $(num "$(field "$(cat "$out/wrk-$c-r$round.json")" rps)" 0) req/s, SDK $(num "$(field "$(cat "$out/sdk-$c-r$round.json")" rps)" 0) req/s" >&2
  done
done
# median CLIENT C: the JSON line of the round with the median req/s; all rounds' req/s in $out/CLIENT-C.rounds.
median() {
  local client="$1" c="$2" f
  for f in "$out/$client-$c"-r*.json; do echo "$(field "$(cat "$f")" rps) $f"; done | sort -g >"$out/$client-$c.sorted"
  awk '{printf "%s%.0f", (NR > 1 ? " / " : ""), $1}' "$out/$client-$c.sorted" >"$out/$client-$c.rounds"
  cat "$(sed -n "$(( ($(wc -l <"$out/$client-$c.sorted") + 1) / 2 ))p" "$out/$client-$c.sorted" | cut -d' ' -f2)"
}
for c in $concurrency; do
  for client in dagent wrk sdk; do median "$client" "$c" >"$out/$client-$c.json"; done
done
for c in 1 8; do run_dagent "$no_pool_n" "$c" off >"$out/dagent-nopool-$c.json"; done

# The client's own cost: client and server share one CPU, so the rate is 1 / (client CPU +
# server CPU per request). dagent and wrk only (the SDK is two orders of magnitude away).
shared_c="${SHARED_CONCURRENCY:-1 64}"
shared_rounds="${SHARED_ROUNDS:-3}"
if ((${#shared_pin[@]})); then
  start_pinned --pin-shared http-shared
  http_port="$PORT"
  http_pid="$PID"
  url="http://127.0.0.1:$http_port"
  client_pin=("${shared_pin[@]}")
  for round in $(seq "$shared_rounds"); do
    for c in $shared_c; do
      run_dagent "$n" "$c" on >"$out/shared_dagent-$c-r$round.json"
      run_wrk "$c" >"$out/shared_wrk-$c-r$round.json"
    done
  done
  for c in $shared_c; do
    for client in shared_dagent shared_wrk; do median "$client" "$c" >"$out/$client-$c.json"; done
  done
fi

# ---- 3. LLM DAG through the CLI --------------------------------------------------------------

dag="$out/dag"
"$build/llm_dag" gen --dir "$dag" --steps "$dag_steps" --seed "$seed" --min-latency 20 --max-latency 80 >&2
start_server dag --script "$dag/script.json"
for r in $(seq "$dag_repeat"); do
  (cd "$dag" && OPENAI_BASE_URL="http://127.0.0.1:$PORT/v1" OPENAI_API_KEY=sk-bench \
    "$build/dagent" run task.yaml --json -q \
      --set performance.parallel_execution.max_parallel_steps=64 \
      --set performance.parallel_execution.max_parallel_llm_calls=64 \
      --set performance.rate_limiting.rpm_limit=1000000 \
      --set performance.rate_limiting.tpm_limit=1000000000 \
      --set planner.synthesize_answer=false \
      --set planner.max_steps=10000 \
      --set memory.enabled=false >"$out/dag-result-$r.json") || true
  "$build/llm_dag" analyze --dir "$dag" --result "$out/dag-result-$r.json" >"$out/dag-$r.log" || true
  grep '^json ' "$out/dag-$r.log" | cut -c6- >"$out/dag-$r.json"
  grep -v '^json ' "$out/dag-$r.log" >&2
done

# ---- wait for the limiter --------------------------------------------------------------------

echo "waiting for the limiter runs ($((limiter_windows * 60)) s from their start)..." >&2
for pid in "${limiter_pids[@]}"; do wait "$pid" || true; done
for spec in "${limiter_runs[@]}"; do
  IFS='|' read -r label _ _ <<<"$spec"
  grep -v '^json ' "$out/limiter-$label.log" >&2 || true
  grep '^json ' "$out/limiter-$label.log" | cut -c6- >"$out/limiter-$label.json" || true
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); took $((SECONDS - start)) s" >&2

# ---- tables ----------------------------------------------------------------------------------

sdk_version="$(node -p "require('$root/bench/node_sdk/node_modules/openai/package.json').version")"
echo
echo "### HTTP load: closed loop, one test server (--threads $SERVER_THREADS), same body, plain HTTP keep-alive$( ((${#server_pin[@]})) && echo ", server on CPU 0, client on CPU 1")"
echo
echo "dagent: \`bench_http\`, $n calls or ${wrk_seconds} s per run, whichever comes first, rate limiting off. wrk: \`-t1 -c C -d ${wrk_seconds}s\`. SDK: openai $sdk_version on Node $(node --version), $sdk_n calls per run, maxRetries 0. $rounds interleaved rounds; each row is the client's median round (by req/s), and the rounds column lists all of them."
echo
echo "| C | client | requests | req/s (median) | req/s of the rounds | client CPU µs/req | client CPU (cores) | server CPU µs/req | p50 µs | p99 µs | connections (client / server) | dagent ÷ wrk | dagent ÷ SDK |"
echo "|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|"
for c in $concurrency; do
  d="$(cat "$out/dagent-$c.json")"
  w="$(cat "$out/wrk-$c.json")"
  s="$(cat "$out/sdk-$c.json")"
  d_rps="$(field "$d" rps)"
  w_rps="$(field "$w" rps)"
  s_rps="$(field "$s" rps)"
  ratio_w="$(awk -v a="$d_rps" -v b="$w_rps" 'BEGIN {printf "%.2f", a / b}')"
  ratio_s="$(awk -v a="$d_rps" -v b="$s_rps" 'BEGIN {printf "%.1f", a / b}')"
  per() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a * 1e6 / b}'; }
  util() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
  echo "| $c | dagent | $(field "$d" requests) | $(num "$d_rps" 0) | $(cat "$out/dagent-$c.rounds") | $(num "$(field "$d" client_cpu_us_per_req)" 1) | $(num "$(field "$d" client_cpu_util)" 2) | $(num "$(field "$d" server_cpu_us_per_req)" 1) | $(field "$d" p50_us) | $(field "$d" p99_us) | $(field "$d" connections_client) / $(field "$d" connections_server) | $ratio_w | $ratio_s |"
  echo "| $c | wrk | $(field "$w" requests) | $(num "$w_rps" 0) | $(cat "$out/wrk-$c.rounds") | $(per "$(field "$w" client_cpu_s)" "$(field "$w" requests)") | $(util "$(field "$w" client_cpu_s)" "$(field "$w" seconds)") | $(per "$(field "$w" server_cpu_s)" "$(field "$w" requests)") | $(field "$w" p50_us) | $(field "$w" p99_us) | – / $(field "$w" connections_server) | | |"
  echo "| $c | openai SDK | $(field "$s" requests) | $(num "$s_rps" 0) | $(cat "$out/sdk-$c.rounds") | $(num "$(field "$s" client_cpu_us_per_req)" 1) | $(num "$(field "$s" client_cpu_util)" 2) | $(per "$(field "$s" server_cpu_s)" "$(field "$s" requests)") | $(field "$s" p50_us) | $(field "$s" p99_us) | – / $(field "$s" connections_server) | | |"
done

if ((${#shared_pin[@]})); then
  echo
  echo "### Client cost: client and server pinned to one CPU (rate = 1 / (client + server CPU per request))"
  echo
  echo "$shared_rounds interleaved rounds, median round shown; same runs as above otherwise."
  echo
  echo "| C | client | req/s (median) | req/s of the rounds | client CPU µs/req | server CPU µs/req | dagent ÷ wrk |"
  echo "|---:|---|---:|---|---:|---:|---:|"
  for c in $shared_c; do
    d="$(cat "$out/shared_dagent-$c.json")"
    w="$(cat "$out/shared_wrk-$c.json")"
    ratio_w="$(awk -v a="$(field "$d" rps)" -v b="$(field "$w" rps)" 'BEGIN {printf "%.2f", a / b}')"
    echo "| $c | dagent | $(num "$(field "$d" rps)" 0) | $(cat "$out/shared_dagent-$c.rounds") | $(num "$(field "$d" client_cpu_us_per_req)" 1) | $(num "$(field "$d" server_cpu_us_per_req)" 1) | $ratio_w |"
    echo "| $c | wrk | $(num "$(field "$w" rps)" 0) | $(cat "$out/shared_wrk-$c.rounds") | $(awk -v a="$(field "$w" client_cpu_s)" -v b="$(field "$w" requests)" 'BEGIN {printf "%.1f", a * 1e6 / b}') | $(awk -v a="$(field "$w" server_cpu_s)" -v b="$(field "$w" requests)" 'BEGIN {printf "%.1f", a * 1e6 / b}') | |"
  done
fi

echo
echo "### Connection reuse (target: connections opened per 10 000 requests ≤ max_connections = 100)"
echo
echo "| pooling | C | requests | req/s | client CPU µs/req | connections (client / server) | per 10 000 requests | target |"
echo "|---|---:|---:|---:|---:|---|---:|---|"
for c in $concurrency; do
  d="$(cat "$out/dagent-$c.json")"
  per10k="$(field "$d" connections_per_10k)"
  verdict="$(awk -v x="$per10k" 'BEGIN {print (x <= 100) ? "met" : "missed"}')"
  echo "| on | $c | $(field "$d" requests) | $(num "$(field "$d" rps)" 0) | $(num "$(field "$d" client_cpu_us_per_req)" 1) | $(field "$d" connections_client) / $(field "$d" connections_server) | $(num "$per10k" 1) | $verdict |"
done
for c in 1 8; do
  d="$(cat "$out/dagent-nopool-$c.json")"
  echo "| off | $c | $(field "$d" requests) | $(num "$(field "$d" rps)" 0) | $(num "$(field "$d" client_cpu_us_per_req)" 1) | $(field "$d" connections_client) / $(field "$d" connections_server) | $(num "$(field "$d" connections_per_10k)" 0) | (contrast) |"
done

echo
echo "### Rate limiter: --rpm $rpm --tpm $tpm on the server, rpm_limit/tpm_limit the same on the client, safety_margin 1.0, 16 callers, max_retries 0"
echo
echo "| run | what | tokens/request (server / client estimate / usage) | binding | window 1: accepted, tokens | window 1 utilization | window 1 429s | window 2: accepted | window 2 utilization | window 2 429s | 429s while draining | target (≥ 98 %, no 429) |"
echo "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"
for spec in "${limiter_runs[@]}"; do
  IFS='|' read -r label what _ <<<"$spec"
  l="$(cat "$out/limiter-$label.json" 2>/dev/null || true)"
  if [[ -z "$l" ]]; then
    echo "| $label | $what | (no result) | | | | | | | | | |"
    continue
  fi
  w2a="–" w2u="–" w2r="–"
  if [[ -n "$(field "$l" w2_accepted)" ]]; then
    w2a="$(field "$l" w2_accepted)"
    w2u="$(awk -v u="$(field "$l" w2_util)" 'BEGIN {printf "%.1f %%", 100 * u}')"
    w2r="$(field "$l" w2_r429)"
  fi
  u1="$(field "$l" w1_util)"
  r1="$(field "$l" w1_r429)"
  total429="$(field "$l" r429_total)"
  verdict="$(awk -v u="$u1" -v r="$total429" 'BEGIN {print (u >= 0.98 && r == 0) ? "met" : "missed"}')"
  echo "| $label | $what | $(field "$l" server_declared_tokens) / $(field "$l" client_estimate_tokens) / $(field "$l" probe_usage) | $(field "$l" binding) | $(field "$l" w1_accepted), $(field "$l" w1_tokens) | $(awk -v u="$u1" 'BEGIN {printf "%.1f %%", 100 * u}') | $r1 | $w2a | $w2u | $w2r | $(field "$l" r429_after_windows) | $verdict |"
done

echo
echo "### LLM DAG through the CLI: $dag_steps llm steps, 20–80 ms each (server rule per step), max_parallel_steps = max_parallel_llm_calls = 64 (target ≤ 1.05 ×)"
echo
echo "| run | levels | weighted critical path ms | makespan ms | makespan / CP | final chain: steps, latency ms, ready delay ms, step overhead ms | mean overhead per step ms | connections | max concurrent steps | target |"
echo "|---:|---:|---:|---:|---:|---|---:|---:|---:|---|"
for r in $(seq "$dag_repeat"); do
  g="$(cat "$out/dag-$r.json")"
  if [[ -z "$g" ]]; then
    echo "| $r | (failed: see stderr) | | | | | | | | |"
    continue
  fi
  ratio="$(field "$g" ratio)"
  verdict="$(awk -v x="$ratio" -v f="$(field "$g" failed)" 'BEGIN {print (x <= 1.05 && f == 0) ? "met" : "missed"}')"
  echo "| $r | $(field "$g" levels) | $(num "$(field "$g" critical_path_ms)" 1) | $(num "$(field "$g" makespan_ms)" 1) | $(num "$ratio" 4) | $(field "$g" chain_steps), $(num "$(field "$g" chain_latency_ms)" 1), $(num "$(field "$g" ready_delay_ms)" 1), $(num "$(field "$g" step_overhead_ms)" 1) | $(num "$(field "$g" mean_step_overhead_ms)" 3) | $(field "$g" connections_opened) | $(field "$g" max_concurrent_steps) | $verdict |"
done
