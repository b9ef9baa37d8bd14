#!/usr/bin/env bash
# Sessions over reliable encrypted UDP against sessions over TCP on 127.0.0.1, in the same run
# (docs/benchmarks.md, "Sessions over UDP and TCP"): one-way 64 B messages (msgs/s), one-way
# 1400 B messages (Gbit/s of payload), 64 B round trips (p50/p99/p99.9); medians of RUNS runs and
# the UDP/TCP ratios. Builds nothing (`make bench-udp` builds first). Exits non-zero when the
# benchmark program fails; a missed goal is reported as MISSED, not as a failure.
#
#   scripts/bench-udp.sh                       RUNS=5
#   RUNS=3 scripts/bench-udp.sh --small-count 500000
#   RUNS=5 scripts/bench-udp.sh --udp-max-datagram 1472   Ethernet-sized UDP datagrams
#   BUILD_DIR=build/s-release scripts/bench-udp.sh
set -uo pipefail

cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build/release}
RUNS=${RUNS:-5}
OUT_DIR=${OUT_DIR:-$BUILD_DIR/bench-udp}
bench="$BUILD_DIR/bench/session_bench"

if [[ ! -x "$bench" ]]; then
  echo "bench-udp: $bench not found: build first (make bench-udp, or cmake --build --preset release --target session_bench)" >&2
  exit 1
fi
mkdir -p "$OUT_DIR"

others() {
  ps -eo pcpu=,comm= --sort=-pcpu | awk -v me="session_bench" '$1 >= 10 && $2 != me { printf "%s %s%%; ", $2, $1 }'
}

echo "== Sessions over UDP and TCP, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r)"
echo "runs: $RUNS; output also in $OUT_DIR/udp.txt"
echo "---- load average $(cut -d' ' -f1-3 /proc/loadavg); other busy processes: $(others)"
"$bench" --runs "$RUNS" udp "$@" 2>&1 | tee "$OUT_DIR/udp.txt"
rc=${PIPESTATUS[0]}
echo "---- done: exit $rc; load average $(cut -d' ' -f1-3 /proc/loadavg); other busy processes: $(others)"
exit "$rc"
