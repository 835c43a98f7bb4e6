#!/usr/bin/env bash
# Builds the benchmarks in Release and runs them against a local redis-server they start.
# Usage: bench/run.sh [client|cluster] [options of that benchmark]
#        bench/run.sh proxy [options]   (also builds respite-proxy when the tree has it)
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
  proxy)
    shift
    cmake --build build/release -j "$(nproc)" --target proxy_bench
    if [[ -f apps/respite-proxy/CMakeLists.txt ]]; then
      cmake --build build/release -j "$(nproc)" --target respite-proxy
    fi
    build/release/bench/proxy_bench --proxy build/release/apps/respite-proxy/respite-proxy "$@" ;;
  *) build/release/bench/bench_client "$@" ;;
esac
