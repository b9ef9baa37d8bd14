#!/usr/bin/env bash
# Runs bench/stream_bench: slipd's persistent streams against nats-server's JetStream on
# 127.0.0.1, same machine, same run, the same fsync setting for both (results and how to read
# them: docs/benchmarks.md, "Streams vs nats-server JetStream").
#   scripts/bench-streams.sh [BUILD_DIR] [stream_bench options...]
# BUILD_DIR defaults to build/release and must hold bench/stream_bench and tools/slipd/slipd
# (make bench-streams builds both). Needs nats-server and libnats-dev: scripts/install-deps.sh --bench.
# The servers' data directories go under $TMPDIR (default /tmp): it should be a disk, not tmpfs.
set -euo pipefail
cd "$(dirname "$0")/.."

build="build/release"
if [[ $# -gt 0 && "$1" != -* ]]; then
  build="$1"
  shift
fi
bench="$build/bench/stream_bench"
slipd="$build/tools/slipd/slipd"
for f in "$bench" "$slipd"; do
  if [[ ! -x "$f" ]]; then
    echo "bench-streams: $f is missing; build it (cmake --build $build --target stream_bench slipd)" >&2
    exit 1
  fi
done
if ! command -v nats-server >/dev/null; then
  echo "bench-streams: nats-server is not installed (scripts/install-deps.sh --bench)" >&2
  exit 1
fi

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+dirty')"
echo "# $(nats-server --version), libnats $(dpkg-query -W -f='${Version}' libnats-dev 2>/dev/null || echo '?')"
echo "# load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
rc=0
"$bench" --slipd "$slipd" --runs "${RUNS:-3}" "$@" || rc=$?
echo "# load after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $rc
