#!/usr/bin/env bash
# Installs the pinned MCP servers (and the TypeScript SDK client for the benchmark) that the tests
# and benchmarks run, into tests/mcp/node_modules with `npm ci` (tests/mcp/package-lock.json).
# Installs Node.js and npm from Debian first when the machine has none. Re-runs only when the
# lockfile changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null && command -v npm >/dev/null || scripts/install-packages.sh nodejs npm
dir=tests/mcp
stamp="$dir/node_modules/.dagent-lock.sha256"
want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$dir/node_modules/.bin/mcp-server-everything" ]; then
  exit 0
fi
echo "install-mcp-servers: npm ci in $dir" >&2
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
echo "$want" > "$stamp"
