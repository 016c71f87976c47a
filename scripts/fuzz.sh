#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.cpp) with clang into build-fuzz/ and runs one target,
# or all of them one after the other, for SECONDS each (default 60) from the seed corpus.
# Usage: scripts/fuzz.sh [TARGET|all] [SECONDS]      e.g. scripts/fuzz.sh sse 600
# The seeds (fuzz/corpus/TARGET) are copied to build-fuzz/corpus/TARGET, which keeps what the
# fuzzer finds between runs; the tree is not modified. Exits non-zero when a target crashed,
# leaked, timed out or ran out of memory, and prints the path of the input that did it.
# JOBS sets the build's parallelism (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(plan reference sse step_stream config recording memory utf8 workspace cached_reply report)
target=${1:-all}
seconds=${2:-60}
if [ "$target" = all ]; then
  targets=("${all_targets[@]}")
elif [ -f "fuzz/fuzz_$target.cpp" ]; then
  targets=("$target")
else
  echo "fuzz: unknown target '$target' (targets: ${all_targets[*]} all)" >&2
  exit 2
fi

packages=(clang libclang-rt-14-dev cmake ninja-build ccache pkg-config libboost1.81-dev libboost-json1.81-dev
          libboost-url1.81-dev libssl-dev libyaml-cpp-dev libsimdjson-dev libfaiss-dev libopenblas-dev libvalijson-dev
          zlib1g-dev libhiredis-dev libsqlite3-dev libcli11-dev)  # CMakeLists finds these for every build
scripts/install-packages.sh "${packages[@]}"

build=build-fuzz
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DDAGENT_FUZZ=ON -DDAGENT_BUILD_TESTS=OFF \
  -DDAGENT_BUILD_BENCH=OFF >/dev/null
ninja -C "$build" -j"${JOBS:-2}" "${targets[@]/#/fuzz_}" >&2

# Inputs longer than these reach no new code: a plan of a few dozen steps, a handful of events.
max_len() {
  case "$1" in
    workspace) echo 256 ;;
    utf8 | reference) echo 4096 ;;
    sse) echo 8192 ;;
    plan | step_stream | config) echo 16384 ;;
    recording | memory | cached_reply | report) echo 65536 ;;
  esac
}

# Leaks inside third-party readers that we cannot fix are listed, with the reason, in fuzz/lsan.supp.
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
failed=()
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  crashes="$build/crashes"
  mkdir -p "$corpus" "$crashes"
  cp -n fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  dict=()
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  log="$build/fuzz-$t.log"
  echo "fuzz: $t for ${seconds}s (log $log)"
  rc=0
  "$build/fuzz_$t" "$corpus" "${dict[@]}" -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=25 \
    -rss_limit_mb=2560 -malloc_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/$t-" \
    >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  progress=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 || true)
  echo "fuzz: $t: ${execs:-?} executions, ${progress:-no coverage line}"
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    grep -E 'invariant violated|ERROR: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY' "$log" | head -5 || true
    artifact=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
    echo "fuzz: $t FAILED (exit $rc); input: ${artifact:-see $log}"
    echo "fuzz: reproduce with $build/fuzz_$t ${artifact:-INPUT}"
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: findings in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: no findings"
