#!/usr/bin/env bash
# Builds the benchmarks in Release and runs them against a local redis-server they start.
# Usage: bench/run.sh [client|cluster] [options of that benchmark]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/deps.sh"
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/respite-ccache}
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DRESPITE_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc)" --target bench_client bench_cluster
case "${1:-client}" in
  client) shift || true; build/release/bench/bench_client "$@" ;;
  cluster) shift; build/release/bench/bench_cluster "$@" ;;
  *) build/release/bench/bench_client "$@" ;;
esac
