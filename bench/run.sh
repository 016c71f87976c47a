#!/usr/bin/env bash
# Builds bench_scheduler (Release, in build-bench/) and runs the scheduler benchmark matrix:
# 1 000 and 10 000 steps × trivial/latency × eager/levels (trivial at max_parallel_steps 64 and
# 5). Every configuration runs in its own process; the 10 000-step ones under /usr/bin/time -v
# when it exists, for an outside view of the peak RSS. Prints Markdown tables.
# Environment: SEED (default 1), TRIVIAL_REPEAT (default 10), LATENCY_REPEAT (default 5).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-bench"
seed="${SEED:-1}"
trivial_repeat="${TRIVIAL_REPEAT:-10}"
latency_repeat="${LATENCY_REPEAT:-5}"

if [[ ! -f "$build/build.ninja" ]]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDAGENT_BUILD_TESTS=OFF >/dev/null
fi
ninja -C "$build" bench_scheduler >/dev/null
bench="$build/bench_scheduler"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# field JSON KEY: the value of KEY in a flat JSON line.
field() { sed -n "s/.*\"$2\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$1"; }
num() { printf "%.${2}f" "$1"; }

# run NAME ARGS...: runs one configuration; leaves its JSON line in $out/NAME.json and, for
# 10 000-step runs, the outside peak RSS (KiB) in $out/NAME.rss.
run() {
  local name="$1"
  shift
  local steps="$2"
  if [[ "$steps" == 10000 && -x /usr/bin/time ]]; then
    /usr/bin/time -v -o "$out/$name.time" "$bench" "$@" >"$out/$name.log"
    sed -n 's/.*Maximum resident set size (kbytes): //p' "$out/$name.time" >"$out/$name.rss"
  else
    "$bench" "$@" >"$out/$name.log"
  fi
  grep '^json ' "$out/$name.log" | cut -c6- >"$out/$name.json"
  grep -v '^json ' "$out/$name.log" >&2
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
start=$SECONDS
for steps in 1000 10000; do
  for sched in eager levels; do
    for p in 64 5; do
      run "trivial-$steps-$sched-$p" --steps "$steps" --mode trivial --scheduling "$sched" --parallel "$p" \
        --repeat "$trivial_repeat" --seed "$seed"
    done
    run "latency-$steps-$sched" --steps "$steps" --mode latency --scheduling "$sched" \
      --repeat "$latency_repeat" --seed "$seed"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); matrix took $((SECONDS - start)) s" >&2

echo
echo "### Trivial tool: scheduling overhead per step (target ≤ 5 µs)"
echo
echo "| steps | scheduling | max_parallel_steps | levels | critical path (steps) | analysis ms (best) | µs/step best | µs/step median | target |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---|"
for steps in 1000 10000; do
  for sched in eager levels; do
    for p in 64 5; do
      j="$(cat "$out/trivial-$steps-$sched-$p.json")"
      b="$(field "$j" us_per_step_best)"
      verdict=$(awk -v x="$b" 'BEGIN { print (x <= 5 ? "met" : "missed") }')
      echo "| $steps | $sched | $p | $(field "$j" levels) | $(field "$j" critical_path_steps) |" \
        "$(num "$(field "$j" analysis_ms_best)" 2) | $(num "$b" 2) | $(num "$(field "$j" us_per_step_median)" 2) | $verdict |"
    done
  done
done

echo
echo "### Latency tool: makespan against the weighted critical path (target: eager ≤ 1.02 ×)"
echo
echo "| steps | scheduling | levels | weighted critical path ms | makespan ms best | makespan ms median | makespan / CP (best) | makespan / CP (median) | max concurrent | target |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"
for steps in 1000 10000; do
  for sched in eager levels; do
    j="$(cat "$out/latency-$steps-$sched.json")"
    r="$(field "$j" makespan_over_cp_median)"
    verdict="(not a target)"
    [[ "$sched" == eager ]] && verdict=$(awk -v x="$r" 'BEGIN { print (x <= 1.02 ? "met" : "missed") }')
    echo "| $steps | $sched | $(field "$j" levels) | $(num "$(field "$j" weighted_critical_path_ms)" 1) |" \
      "$(num "$(field "$j" makespan_ms_best)" 1) | $(num "$(field "$j" makespan_ms_median)" 1) |" \
      "$(num "$(field "$j" makespan_over_cp_best)" 4) | $(num "$r" 4) | $(field "$j" max_concurrent) | $verdict |"
  done
done

echo
echo "### Where the makespan goes (best run; the chain of latest-finishing dependencies ending at the last step)"
echo
echo "| steps | scheduling | chain steps | chain latency ms | ready delay ms | step overhead ms | mean step overhead ms |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for steps in 1000 10000; do
  for sched in eager levels; do
    j="$(cat "$out/latency-$steps-$sched.json")"
    echo "| $steps | $sched | $(field "$j" chain_steps) | $(num "$(field "$j" chain_latency_ms)" 1) |" \
      "$(num "$(field "$j" chain_ready_delay_ms)" 1) | $(num "$(field "$j" chain_step_overhead_ms)" 1) |" \
      "$(num "$(field "$j" mean_step_overhead_ms)" 3) |"
  done
done

echo
echo "### Peak RSS of the 10 000-step runs, one process each (target < 50 MB)"
echo
echo "| configuration | RSS before the runs MB (plan + analysis) | /usr/bin/time max RSS MB | ru_maxrss MB | VmHWM MB | target |"
echo "|---|---:|---:|---:|---:|---|"
for name in trivial-10000-eager-64 trivial-10000-eager-5 trivial-10000-levels-64 trivial-10000-levels-5 \
  latency-10000-eager latency-10000-levels; do
  j="$(cat "$out/$name.json")"
  outside="n/a"
  [[ -s "$out/$name.rss" ]] && outside="$(awk '{ printf "%.1f", $1 / 1024 }' "$out/$name.rss")"
  hwm="$(field "$j" vm_hwm_kb)"
  peak="$hwm"
  [[ -s "$out/$name.rss" ]] && peak="$(awk -v x="$hwm" '{ print ($1 > x ? $1 : x) }' "$out/$name.rss")"
  verdict=$(awk -v x="$peak" 'BEGIN { print (x < 50 * 1024 ? "met" : "missed") }')
  echo "| $name | $(awk -v x="$(field "$j" vm_rss_before_run_kb)" 'BEGIN { printf "%.1f", x / 1024 }') | $outside | $(awk -v x="$(field "$j" ru_maxrss_kb)" 'BEGIN { printf "%.1f", x / 1024 }') |" \
    "$(awk -v x="$hwm" 'BEGIN { printf "%.1f", x / 1024 }') | $verdict |"
done
