#!/usr/bin/env bash
# Installs dagent's Debian 12 build dependencies (only those missing) and builds it.
# Usage: scripts/setup.sh [--sanitize]   (builds into build/, or build-asan/ with --sanitize)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ cmake ninja-build ccache pkg-config openssl ca-certificates nginx-light
          libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev libssl-dev
          libyaml-cpp-dev libsimdjson-dev libfaiss-dev libopenblas-dev libvalijson-dev catch2)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # Packages such as nginx start their service on install; the tests start their own on
  # loopback, so forbid service starts for the duration of the install.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    guard=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  [ -z "$guard" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

build=build
flags=()
if [ "${1:-}" = "--sanitize" ]; then
  build=build-asan
  flags+=(-DDAGENT_SANITIZE=ON -DDAGENT_BUILD_BENCH=OFF)
fi
cmake -S . -B "$build" -G Ninja "${flags[@]}" >/dev/null
ninja -C "$build" >&2
