#!/usr/bin/env bash
# Sets up (dependencies, build) and runs the whole test suite with CTest.
# Usage: scripts/test.sh [--sanitize]   (the ASan+UBSan build with --sanitize)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh "$@"
scripts/install-mcp-servers.sh   # the real MCP servers the tests run (pinned, tests/mcp)
build=build
[ "${1:-}" = "--sanitize" ] && build=build-asan
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" --output-on-failure -j2
