#!/usr/bin/env bash
# Runs bench/broker_bench for the NATS gateway: one libnats program against nats-server and
# against slipd's NATS port (slipd --nats-listen), same machine, same run (results and how to
# read them: docs/benchmarks.md, "NATS gateway vs nats-server").
#   scripts/bench-nats.sh [BUILD_DIR] [broker_bench options...]
# BUILD_DIR defaults to build/release. Needs nats-server and libnats-dev (scripts/install-deps.sh --bench).
set -euo pipefail
cd "$(dirname "$0")/.."

build="build/release"
if [[ $# -gt 0 && "$1" != -* ]]; then
  build="$1"
  shift
fi
exec scripts/bench-broker.sh "$build" --targets gateway,nats --workloads tp16,tp128,tp1k,fan128,rr16 "$@"
