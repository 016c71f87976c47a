#!/usr/bin/env bash
# Sets up (dependencies, build) and runs the example task: an inventory of the Markdown notes in
# examples/docs-inventory/docs, written to examples/docs-inventory/out/inventory.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build/dagent run examples/docs-inventory/task.yaml --config config.yaml "$@"
echo "--- examples/docs-inventory/out/inventory.md" >&2
cat examples/docs-inventory/out/inventory.md
