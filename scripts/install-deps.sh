#!/usr/bin/env bash
# Installs the Debian 12 packages Slipstream needs, and nothing when they are all present.
#   scripts/install-deps.sh          build and test dependencies
#   scripts/install-deps.sh --bench  also the peers the benchmarks compare against
set -euo pipefail

packages=(
  # toolchain
  g++ clang libclang-rt-14-dev cmake ninja-build ccache pkg-config make
  # libraries (Boost 1.81, not Debian's 1.74 default)
  libboost1.81-dev libspdlog-dev libfmt-dev libcli11-dev libisal-dev libssl-dev liblz4-dev libzstd-dev
  libsodium-dev libtomlplusplus-dev
  # RPC code generation (protoc-gen-slipstream)
  protobuf-compiler libprotobuf-dev libprotoc-dev
  # tests and micro-benchmarks (libnats: the NATS gateway's tests use the real NATS C client)
  libgtest-dev libgmock-dev libbenchmark-dev libnats-dev
)
# the dashboard's build (uPlot from npm) and its browser test (playwright-core from npm driving
# Debian's Chromium); a node/npm already on the PATH (e.g. another distribution's) is used as is
packages+=(chromium)
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
if [[ "${1:-}" == "--bench" ]]; then
  # gRPC C++ and its protoc plugin: bench/rpc_bench's peer
  packages+=(sockperf nats-server libgrpc++-dev protobuf-compiler-grpc)
  # scripts/impair-tcp.sh: random loss for TCP on lo (slip-impair covers UDP); loss and delay
  # through a netfilter queue: tools/slip-impair's slip-nfq-impair (libnetfilter-queue-dev), and
  # iptables for kernels without nftables' queue statement
  packages+=(nftables libnetfilter-queue-dev iptables)
  # instruction counts (scripts/bench-metrics-cost.sh, per-message work in docs/benchmarks.md)
  packages+=(valgrind)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
