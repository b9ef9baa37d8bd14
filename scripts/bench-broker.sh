#!/usr/bin/env bash
# Runs bench/broker_bench: slipd against nats-server on 127.0.0.1, same machine, same run
# (results and how to read them: docs/benchmarks.md, "Broker vs nats-server").
#   scripts/bench-broker.sh [BUILD_DIR] [broker_bench options...]
# BUILD_DIR defaults to build/release and must hold bench/broker_bench and tools/slipd/slipd
# (make bench-broker builds both). Needs nats-server and libnats-dev: scripts/install-deps.sh --bench.
set -euo pipefail
cd "$(dirname "$0")/.."

build="build/release"
if [[ $# -gt 0 && "$1" != -* ]]; then
  build="$1"
  shift
fi
bench="$build/bench/broker_bench"
slipd="$build/tools/slipd/slipd"
for f in "$bench" "$slipd"; do
  if [[ ! -x "$f" ]]; then
    echo "bench-broker: $f is missing; build it (cmake --build $build --target broker_bench slipd)" >&2
    exit 1
  fi
done
if ! command -v nats-server >/dev/null; then
  echo "bench-broker: nats-server is not installed (scripts/install-deps.sh --bench)" >&2
  exit 1
fi

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')"
echo "# $(nats-server --version), libnats $(dpkg-query -W -f='${Version}' libnats-dev 2>/dev/null || echo '?')"
echo "# load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
exec "$bench" --slipd "$slipd" --runs 3 "$@"
