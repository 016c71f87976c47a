#!/usr/bin/env bash
# Installs dagent's Debian 12 build dependencies (only those missing) and builds it.
# Usage: scripts/setup.sh [--sanitize]   (builds into build/, or build-asan/ with --sanitize)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(g++ cmake ninja-build ccache pkg-config openssl ca-certificates nginx-light
          libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev libssl-dev
          libyaml-cpp-dev libsimdjson-dev libfaiss-dev libopenblas-dev libvalijson-dev catch2
          libhiredis-dev redis-server  # redis-server: the tests start their own (issue 16)
          zlib1g-dev                   # compresses large values of the shared response cache
          libsqlite3-dev               # the run history (issue 17)
          libcli11-dev                 # the command line's parser (src/cli/options.cpp only)
          pybind11-dev                 # the Python bindings (issue 18, DAGENT_PYTHON)
          python3-dev                  # the headers the Python extension is built against
          python3-pytest               # the Python binding tests (tests/python, CTest label python)
          dpkg-dev                     # cpack -G DEB: dpkg-shlibdeps finds the .deb's Depends (issue 18)
          file                         # cpack's shlibdeps step finds the ELF files with it
          chromium)                    # headless, renders `dagent report` pages in the [browser] test
scripts/install-packages.sh "${packages[@]}"

build=build
flags=()
if [ "${1:-}" = "--sanitize" ]; then
  build=build-asan
  flags+=(-DDAGENT_SANITIZE=ON -DDAGENT_BUILD_BENCH=OFF)
fi
cmake -S . -B "$build" -G Ninja "${flags[@]}" >/dev/null
ninja -C "$build" >&2
