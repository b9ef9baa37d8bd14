#!/usr/bin/env bash
# Runs bench/udp_fec_latency_bench: delivery latency of one message per millisecond at 10% random
# loss and 5 ms of delay each way, udp:// with FEC and without through tools/slip-impair, and TCP
# through the same loss and delay: a netfilter queue rule on lo (scripts/impair-tcp.sh queue)
# hands its packets to tools/slip-impair's slip-nfq-impair (needs root or CAP_NET_ADMIN, else the
# TCP row says why). Results and how to read them: docs/benchmarks.md, "Delivery latency over a
# lossy path".
#   scripts/bench-udp-fec.sh [BUILD_DIR] [udp_fec_latency_bench options...]
# BUILD_DIR defaults to build/release and must hold bench/udp_fec_latency_bench,
# tools/slip-impair/slip-impair and tools/slip-impair/slip-nfq-impair (make bench-udp-fec builds
# them).
set -euo pipefail
cd "$(dirname "$0")/.."

build="build/release"
if [[ $# -gt 0 && "$1" != -* ]]; then
  build="$1"
  shift
fi
bench="$build/bench/udp_fec_latency_bench"
impair="$build/tools/slip-impair/slip-impair"
nfq="$build/tools/slip-impair/slip-nfq-impair"
for f in "$bench" "$impair"; do
  if [[ ! -x "$f" ]]; then
    echo "bench-udp-fec: $f is missing; build it (cmake --build $build --target udp_fec_latency_bench slip-impair)" >&2
    exit 1
  fi
done
[[ -x "$nfq" ]] || echo "bench-udp-fec: $nfq is missing (apt-get install libnetfilter-queue-dev, then build slip-nfq-impair): no TCP row" >&2
command -v nft >/dev/null || echo "bench-udp-fec: nft not found (apt-get install nftables): no TCP row" >&2

# The TCP path's rules live in a table (and iptables chain) of this run's own, removed however the
# run ends; the benchmark stops its queue program by PID itself.
export SLIP_IMPAIR_TABLE="slip_bench_fec_$$"
trap 'scripts/impair-tcp.sh remove >/dev/null 2>&1 || true' EXIT

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')"
echo "# load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bench" --impair "$impair" --nfq-impair "$nfq" --impair-tcp scripts/impair-tcp.sh "$@"
echo "# load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
