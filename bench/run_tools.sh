#!/usr/bin/env bash
# File tools benchmark (bench/README.md, "File tools sandbox"): read_file, write_file, list_dir and
# search_files per call, with the kernel sandbox (openat2 beneath the workspace descriptor) and with
# the userspace walk it falls back to where openat2 is missing. Environment: FILES (2000), REPEAT (5).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-$root/build}"
[[ -x "$build/bench_tools" ]] || { echo "build first: scripts/setup.sh" >&2; exit 1; }
exec "$build/bench_tools" "${FILES:-2000}" "${REPEAT:-5}"
