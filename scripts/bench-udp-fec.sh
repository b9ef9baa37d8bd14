#!/usr/bin/env bash
# Runs bench/udp_fec_latency_bench: delivery latency of one message per millisecond at 10% random
# loss, udp:// with FEC and without through tools/slip-impair, and TCP with the same loss from
# nftables (scripts/impair-tcp.sh; needs root or CAP_NET_ADMIN, else the TCP row says why).
# Results and how to read them: docs/benchmarks.md, "Delivery latency over a lossy path".
#   scripts/bench-udp-fec.sh [BUILD_DIR] [udp_fec_latency_bench options...]
# BUILD_DIR defaults to build/release and must hold bench/udp_fec_latency_bench and
# tools/slip-impair/slip-impair (make bench-udp-fec builds both).
set -euo pipefail
cd "$(dirname "$0")/.."

build="build/release"
if [[ $# -gt 0 && "$1" != -* ]]; then
  build="$1"
  shift
fi
bench="$build/bench/udp_fec_latency_bench"
impair="$build/tools/slip-impair/slip-impair"
for f in "$bench" "$impair"; do
  if [[ ! -x "$f" ]]; then
    echo "bench-udp-fec: $f is missing; build it (cmake --build $build --target udp_fec_latency_bench slip-impair)" >&2
    exit 1
  fi
done
command -v nft >/dev/null || echo "bench-udp-fec: nft not found (apt-get install nftables): no TCP row" >&2

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')"
echo "# load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bench" --impair "$impair" --impair-tcp scripts/impair-tcp.sh "$@"
echo "# load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
