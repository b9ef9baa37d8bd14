#!/usr/bin/env bash
# End-to-end session benchmarks over TCP on 127.0.0.1, each against its floor measured in the same
# run (docs/benchmarks.md, "Sessions over TCP"):
#   1. ping-pong, 16 B, per idle strategy    vs sockperf's TCP ping-pong (and plain sockets)
#   2. one-way throughput, 64 B messages     vs a plain TCP sender doing one write() per message
#   3. head-of-line: 64 B round trips beside 100 MB bulk messages vs the same without bulk
# Builds nothing (`make bench-sessions` builds first). Exits non-zero when a benchmark program
# fails or sockperf is missing; a missed goal is reported as MISSED, not as a failure.
#
#   scripts/bench-sessions.sh                 all three, RUNS=5 repetitions each
#   RUNS=3 scripts/bench-sessions.sh hol      one of them (pingpong, throughput, hol)
#   BUILD_DIR=build/s-release scripts/bench-sessions.sh
set -uo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build/release}
RUNS=${RUNS:-5}
OUT_DIR=${OUT_DIR:-$BUILD_DIR/bench-sessions}
bench="$BUILD_DIR/bench/session_bench"
benchmarks=("$@")
[[ ${#benchmarks[@]} -eq 0 ]] && benchmarks=(pingpong throughput hol)

if [[ ! -x "$bench" ]]; then
  echo "bench-sessions: $bench not found: build first (make bench-sessions, or cmake --build --preset release)" >&2
  exit 1
fi
if ! sockperf_bin=$(command -v sockperf); then
  echo "bench-sessions: sockperf is not installed, and the ping-pong benchmark is read against it." >&2
  echo "bench-sessions: install it with: scripts/install-deps.sh --bench   (Debian package 'sockperf')" >&2
  exit 1
fi
mkdir -p "$OUT_DIR"

# Who else is using the CPUs: on a shared 2-core VM another busy process halves what spinning
# loops can do, so every table is printed with this beside it.
others() {
  ps -eo pcpu=,comm= --sort=-pcpu | awk -v me="session_bench" '$1 >= 10 && $2 != me && $2 != "sockperf" { printf "%s %s%%; ", $2, $1 }'
}

echo "== Sessions over TCP, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r)"
echo "sockperf: $sockperf_bin ($(dpkg-query -W -f='${Version}' sockperf 2>/dev/null || echo '?'))"
echo "runs per benchmark: $RUNS; output also in $OUT_DIR/"
echo "note: with the spin and busy strategies the client and the server each keep one core busy: on"
echo "      this 2-core VM that is both cores, so anything else running disturbs those rows most."
echo

failed=()
for b in "${benchmarks[@]}"; do
  case "$b" in
    pingpong) args=(pingpong --sockperf "$sockperf_bin" --same-cpu-idle spin spin-fixed) ;;
    throughput) args=(throughput) ;;
    hol) args=(hol --also-pinned --baseline) ;;
    *) echo "bench-sessions: unknown benchmark '$b' (pingpong, throughput, hol)" >&2; exit 2 ;;
  esac
  echo "---- $b: load average $(cut -d' ' -f1-3 /proc/loadavg); other busy processes: $(others)"
  "$bench" --runs "$RUNS" "${args[@]}" 2>&1 | tee "$OUT_DIR/$b.txt"
  rc=${PIPESTATUS[0]}
  echo "---- $b done: exit $rc; load average $(cut -d' ' -f1-3 /proc/loadavg); other busy processes: $(others)"
  echo
  [[ $rc -ne 0 ]] && failed+=("$b (exit $rc)")
done

echo "== Goals"
for b in "${benchmarks[@]}"; do
  [[ -f "$OUT_DIR/$b.txt" ]] && grep -E '^- .*(MET|MISSED)' "$OUT_DIR/$b.txt" | sed "s/^/$b: /"
done
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "bench-sessions: FAILED: ${failed[*]}" >&2
  exit 1
fi
