#!/usr/bin/env bash
# The README's main command: builds respite (Release) and runs the demo. Without an address it
# starts a throwaway local redis-server. Usage: scripts/demo.sh [--host H --port P]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/deps.sh"
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/respite-ccache}
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DRESPITE_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc)" --target respite-demo
exec build/release/apps/respite-demo/respite-demo "$@"
