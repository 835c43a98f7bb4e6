#!/usr/bin/env bash
# Installs the Debian packages respite needs (only those missing). Idempotent and quick when done.
set -euo pipefail

packages=(
  build-essential g++ cmake ninja-build ccache pkg-config
  clang libclang-rt-14-dev            # libFuzzer + sanitizers for the fuzz target
  libasio-dev libspdlog-dev libfmt-dev libssl-dev
  libcli11-dev nlohmann-json3-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  redis-server redis-tools nutcracker
  openssl                             # the tests make their TLS certificates with it
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "respite: installing missing packages: ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo_cmd=(sudo); else
    echo "respite: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
  "${sudo_cmd[@]}" apt-get update
  "${sudo_cmd[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
# The Debian package starts a system redis on 6379; respite's tests and demo start their own.
