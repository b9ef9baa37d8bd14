#!/usr/bin/env bash
# What metrics cost slipd, in instructions (valgrind --tool=callgrind counts them repeatably; a
# wall-clock rate on a shared machine moves by more than the difference being measured).
# slipd runs under callgrind with one loop that blocks when idle, `slip bench pubsub` sends N
# 16 B messages through it flat out, and the total instructions slipd executed are printed for
# --metrics off, --metrics on, and --metrics on with the HTTP listener (/metrics, dashboard).
#   scripts/bench-metrics-cost.sh [BUILD_DIR] [MESSAGES]      (defaults: build/release 200000)
# Needs valgrind (scripts/install-deps.sh --bench) and slipd and slip in BUILD_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
n=${2:-200000}
slipd="$build/tools/slipd/slipd"
slip="$build/tools/slip/slip"
for f in "$slipd" "$slip"; do
  [[ -x "$f" ]] || { echo "bench-metrics-cost: $f is missing (cmake --build $build --target slipd slip)" >&2; exit 1; }
done
command -v valgrind >/dev/null || { echo "bench-metrics-cost: valgrind is not installed" >&2; exit 1; }

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $n messages of 16 B"
printf '%-8s %16s %12s %10s\n' mode instructions per_message vs_off
off=0
for mode in off on on+http; do
  d=$(mktemp -d)
  args=(--listen 127.0.0.1:0 --threads 1 --idle block --ready-file "$d/ready" --metrics on)
  [[ $mode == off ]] && args=(--listen 127.0.0.1:0 --threads 1 --idle block --ready-file "$d/ready" --metrics off)
  [[ $mode == on+http ]] && args+=(--http-listen 127.0.0.1:0)
  valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" "$slipd" "${args[@]}" >"$d/slipd.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do [[ -s "$d/ready" ]] && break; sleep 0.1; done
  addr=$(awk 'NR==1 {print $2}' "$d/ready")
  if ! "$slip" bench pubsub --server "$addr" --size 16 --count "$n" >"$d/bench.txt" 2>&1; then
    echo "bench-metrics-cost: slip bench failed ($mode):" >&2
    cat "$d/bench.txt" >&2
    kill -TERM "$pid" || true
    exit 1
  fi
  kill -TERM "$pid"
  wait "$pid" || true
  ir=$(awk '/^summary:/ {print $2; exit}' "$d/cg.out")
  [[ $mode == off ]] && off=$ir
  printf '%-8s %16s %12s %10s\n' "$mode" "$ir" "$((ir / n))" "$(awk -v a="$ir" -v b="$off" 'BEGIN {printf "%.2f%%", (a / b - 1) * 100}')"
  rm -rf "$d"
done
