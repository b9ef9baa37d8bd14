#!/usr/bin/env bash
# Runs every libFuzzer target of a build for a fixed time each.
#
#   scripts/run-fuzzers.sh BUILD_DIR SECONDS
#
# BUILD_DIR is a build with SLIP_FUZZ=ON (the `asan` preset: cmake --preset asan && cmake
# --build build/asan). Each target in BUILD_DIR/tests/fuzz runs for SECONDS seconds, FUZZ_JOBS
# at a time (default: the number of cores), on a copy of its seed corpus (tests/fuzz/corpus/<target>) in a temporary
# directory, so the committed corpus never grows. Leak detection is on. Prints one line per
# target and exits non-zero if any target crashed, leaked, hung or could not run; the log and
# the crashing input are then kept and their paths printed.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
build_dir=$1
seconds=$2
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -eq 0 ]]; then
  echo "$0: SECONDS must be a positive integer, got '$seconds'" >&2
  exit 2
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fuzz_dir=$build_dir/tests/fuzz
if [[ ! -d $fuzz_dir ]]; then
  echo "$0: no $fuzz_dir; configure with SLIP_FUZZ=ON (the asan preset) and build first" >&2
  exit 2
fi

targets=()
for bin in "$fuzz_dir"/*_fuzz; do
  [[ -f $bin && -x $bin ]] && targets+=("$bin")
done
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "$0: no fuzz targets (*_fuzz executables) in $fuzz_dir; build them first" >&2
  exit 2
fi

# The value after `key:` on a libFuzzer status line, e.g. field "cov" of "... cov: 946 ft: ...".
field() {
  sed -n "s/.*[[:space:]]$1: \([^[:space:]]*\).*/\1/p" <<<"$2"
}

# Fuzzes one target; prints its result line(s) and returns non-zero on failure.
fuzz_one() {
  local bin=$1 name work seeds seed_count log status last runs rate cov ft corp summary artifacts
  name=$(basename "$bin")
  work=$(mktemp -d "${TMPDIR:-/tmp}/slip-fuzz-$name.XXXXXX")
  mkdir -p "$work/corpus"
  seeds=$repo/tests/fuzz/corpus/$name
  seed_count=0
  if [[ -d $seeds ]]; then
    cp -R "$seeds/." "$work/corpus/"
    seed_count=$(find "$work/corpus" -type f | wc -l)
  fi
  log=$work/log.txt

  status=0
  # -timeout: an input that takes this long counts as a hang (a bug), not as slowness.
  "$bin" "$work/corpus" \
    -max_total_time="$seconds" -detect_leaks=1 -timeout=30 \
    -print_final_stats=1 -artifact_prefix="$work/" >"$log" 2>&1 || status=$?

  last=$(grep -E '(DONE|INITED|NEW|REDUCE|pulse).* cov: ' "$log" | tail -n 1 || true)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(field cov "$last")
  ft=$(field ft "$last")
  corp=$(field corp "$last")
  summary="runs=${runs:-?} exec/s=${rate:-?} cov=${cov:-?} ft=${ft:-?} corpus=${seed_count}->${corp:-?} time=${seconds}s"

  artifacts=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | head -n 5)
  if [[ $status -eq 0 && -z $artifacts && -n $runs ]]; then
    echo "$name: OK   $summary"
    rm -rf "$work"
  else
    echo "$name: FAIL (exit $status) $summary"
    echo "  log: $log"
    grep -m 3 -E '^==[0-9]+==ERROR|^SUMMARY:|deadly signal|runtime error|_fuzz: ' "$log" | sed 's/^/  /' || true
    for a in $artifacts; do echo "  input: $a (reproduce: $bin $a)"; done
    return 1
  fi
}

jobs=${FUZZ_JOBS:-$(nproc)}
results=$(mktemp -d "${TMPDIR:-/tmp}/slip-fuzz-results.XXXXXX")
trap 'rm -rf "$results"' EXIT
pids=()
for i in "${!targets[@]}"; do
  fuzz_one "${targets[$i]}" >"$results/$i" 2>&1 &
  pids+=($!)
  if [[ ${#pids[@]} -ge $jobs ]]; then
    wait "${pids[0]}" || true
    pids=("${pids[@]:1}")
  fi
done
wait || true
# Results in target order; a target failed when its first line says FAIL.
failed=0
for i in "${!targets[@]}"; do
  cat "$results/$i"
  if ! head -n 1 "$results/$i" | grep -q ': OK '; then failed=1; fi
done
exit $failed
