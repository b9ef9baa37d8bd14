#!/usr/bin/env bash
# Runs bench/rpc_bench: Slipstream RPC against gRPC C++ on 127.0.0.1, same machine, same run
# (results and how to read them: docs/benchmarks.md, "RPC vs gRPC C++").
#   scripts/bench-rpc.sh [BUILD_DIR] [rpc_bench options...]
# BUILD_DIR defaults to build/release and must hold bench/rpc_bench (make bench-rpc builds it).
# Needs libgrpc++-dev and protobuf-compiler-grpc: scripts/install-deps.sh --bench.
set -euo pipefail
cd "$(dirname "$0")/.."

build="build/release"
if [[ $# -gt 0 && "$1" != -* ]]; then
  build="$1"
  shift
fi
bench="$build/bench/rpc_bench"
if [[ ! -x "$bench" ]]; then
  echo "bench-rpc: $bench is missing; install gRPC (scripts/install-deps.sh --bench), then" >&2
  echo "bench-rpc: cmake --preset release && cmake --build $build --target rpc_bench" >&2
  exit 1
fi

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')"
echo "# gRPC C++ $(dpkg-query -W -f='${Version}' libgrpc++-dev 2>/dev/null || echo '?'), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), kernel $(uname -r)"
echo "# load before the run: $(uptime)"
"$bench" --runs 3 "$@"
echo "# load after the run: $(uptime)"
