#!/usr/bin/env bash
# What `make test` runs: the release build's tests, the ASan+UBSan build's tests and fuzzers,
# and the ThreadSanitizer build's concurrency tests (label "tsan"). Ends with one summary line.
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-10}
passed=0
failed=0
phases=()  # "what seconds", printed at the end
phase_start=$SECONDS
phase_done() {
  phases+=("$1 $((SECONDS - phase_start))s")
  phase_start=$SECONDS
}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Runs ctest for a preset and adds its counts to the totals.
run_ctest() {
  local preset=$1
  shift
  echo "== ctest --preset $preset $*"
  ctest --preset "$preset" "$@" 2>&1 | tee "$log"
  local line total bad
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
  if [[ -z "$line" ]]; then
    echo "test-all: ctest --preset $preset ran no test or did not finish"
    failed=$((failed + 1))
    return
  fi
  bad=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
  passed=$((passed + total - bad))
  failed=$((failed + bad))
}

# Builds a preset: everything, or only the targets given after the preset's name.
build() {
  local preset=$1
  shift
  local targets=()
  if [[ $# -gt 0 ]]; then targets=(--target "$@"); fi
  echo "== build $preset $*"
  if ! { cmake --preset "$preset" >/dev/null && cmake --build --preset "$preset" "${targets[@]}"; }; then
    echo "test-all: the $preset build failed"
    failed=$((failed + 1))
    return 1
  fi
}

if build release; then
  phase_done "release-build"
  run_ctest release
  phase_done "release-tests"
fi
if build asan; then
  phase_done "asan-build"
  run_ctest asan
  phase_done "asan-tests"
  echo "== fuzzers, ${FUZZ_SECONDS}s each"
  if scripts/run-fuzzers.sh build/asan "$FUZZ_SECONDS" | tee "$log"; then
    passed=$((passed + $(grep -c '_fuzz: OK' "$log")))
  else
    failed=$((failed + 1))
  fi
  phase_done "fuzzers"
fi
# The ThreadSanitizer build compiles only the test programs labelled "tsan" (and the programs
# they start); ctest -L tsan skips the others, which are not built there.
mapfile -t tsan_targets < <(grep -rhoP 'gtest_discover_tests\(\K\w+(?=[^)\n]*LABELS "tsan")' tests | sort -u)
if build tsan "${tsan_targets[@]}" slipd slip; then
  phase_done "tsan-build"
  run_ctest tsan -L tsan
  phase_done "tsan-tests"
fi

echo
echo "make test: took ${SECONDS}s (${phases[*]})"
echo "make test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
