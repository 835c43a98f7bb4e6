#!/usr/bin/env bash
# The README's test command: installs what is missing, builds (ASan+UBSan, and the clang fuzz
# tree), and runs every test: unit, integration against real redis-servers, and the fuzz run.
# Ends with ctest's summary line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

"$root/scripts/deps.sh"

jobs=${RESPITE_JOBS:-$(nproc)}
fuzz_seconds=${RESPITE_FUZZ_SECONDS:-60}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/respite-ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# Share the cache across clone paths (CI clones to a new directory each run).
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}

# 1. The fuzz targets (clang 14 + libFuzzer: RESP parsers, HTTP parser, the follower's command
#    merging, JSON log lines), built in their own tree.
CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DRESPITE_FUZZ_ONLY=ON >/dev/null
cmake --build build/fuzz -j "$jobs"

# 2. Where threads meet (client facade, fault proxy, metrics), under ThreadSanitizer.
cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRESPITE_TSAN=ON -DRESPITE_BENCH=OFF \
  >/dev/null
cmake --build build/tsan -j "$jobs" --target threads_client threads_cluster support_selftest unit_obs \
  unit_proxy_replay integration_proxy_replay integration_proxy integration_proxy_edges \
  integration_proxy_cluster
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
for t in tests/integration/client/threads_client tests/integration/cluster/threads_cluster \
         tests/support/support_selftest tests/unit/obs/unit_obs tests/unit/proxy/replay/unit_proxy_replay \
         tests/integration/proxy/replay/integration_proxy_replay; do
  echo "tsan: $t"
  "build/tsan/$t" --gtest_brief=1
done
# The proxy where its threads meet: workers, the follower's thread, backends, mode switches.
echo "tsan: integration_proxy (threaded cases)"
build/tsan/tests/integration/proxy/server/integration_proxy --gtest_brief=1 \
  --gtest_filter='proxy_sessions.many_clients*:proxy_sessions.a_blocked*:proxy_sessions.client_list*:proxy_backend_timeout.*:proxy_modes.a_switch*:proxy_modes.proxy_mode*:proxy_consistency.random_workload*:proxy_consistency.writes_during*:proxy_regressions.*'
# PROXY SYNC and the restart watch: the control thread, the follower and the workers.
echo "tsan: integration_proxy_edges (sync, restarts)"
build/tsan/tests/integration/proxy/server/integration_proxy_edges --gtest_brief=1 \
  --gtest_filter='proxy_sync.*:proxy_restart.*:proxy_state.*'
# Redis Cluster backends: the cluster client's threads (topology refresh, per-node links) meet the
# workers, SYNC/VERIFY's node-by-node scans, the restart watch and the pub/sub shadow's twins.
echo "tsan: integration_proxy_cluster"
build/tsan/tests/integration/proxy/server/integration_proxy_cluster --gtest_brief=1

# 3. Everything else with g++ under ASan+UBSan; the fuzz run is one of its ctest tests.
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DRESPITE_SANITIZE=ON \
  -DRESPITE_FUZZ_BINARY="$root/build/fuzz/fuzz/fuzz_resp" -DRESPITE_FUZZ_SECONDS="$fuzz_seconds" \
  -DRESPITE_FUZZ_HTTP_BINARY="$root/build/fuzz/fuzz/fuzz_http" \
  -DRESPITE_FUZZ_MERGE_BINARY="$root/build/fuzz/fuzz/fuzz_merge" \
  -DRESPITE_FUZZ_JSON_LOG_BINARY="$root/build/fuzz/fuzz/fuzz_json_log" \
  >/dev/null
cmake --build build/asan -j "$jobs"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd build/asan
# The fuzz run (one CPU-bound test) runs beside the others.
ctest --output-on-failure -j "$jobs" --timeout 600 "$@"
