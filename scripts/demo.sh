#!/usr/bin/env bash
# The README's main command: builds respite (Release) and runs the demo: a live migration through
# respite-proxy between two throwaway local redis-servers (apps/respite-demo/migration.cpp).
# Usage: scripts/demo.sh                                  the migration demo
#        scripts/demo.sh --client-tour [--cluster]        the client tour on a throwaway server
#        scripts/demo.sh --host H --port P [--password X] the client tour against your server
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/deps.sh"
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/respite-ccache}
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DRESPITE_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc)" --target respite-demo
exec build/release/apps/respite-demo/respite-demo "$@"
