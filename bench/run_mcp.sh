#!/usr/bin/env bash
# MCP client benchmark (bench/README.md, "MCP"): the `echo` tool of server-everything over stdio,
# called CALLS times one after another (µs per call) and CALLS times with 16 calls in flight
# (calls/s), by the official TypeScript SDK (bench/mcp_sdk_bench.mjs) and, once it is built, by
# dagent's MCP client (build/bench_mcp, given CALLS as its argument and in the environment).
# Installs the pinned servers first (scripts/install-mcp-servers.sh). Prints each client's line
#   mcp-bench client=NAME transport=stdio calls=N serial_us_per_call=X inflight16_calls_per_s=Y
# then a Markdown table. Environment: CALLS (2000), BUILD (build folder, default build/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD:-$root/build}"
calls="${CALLS:-2000}"
[[ "$calls" =~ ^[1-9][0-9]*$ ]] || { echo "CALLS must be a positive integer, not '$calls'" >&2; exit 2; }

"$root/scripts/install-mcp-servers.sh"

lines=()
lines+=("$(CALLS="$calls" node "$root/bench/mcp_sdk_bench.mjs" "$calls")")
if [[ -x "$build/bench_mcp" ]]; then
  lines+=("$(CALLS="$calls" "$build/bench_mcp" "$calls" | grep '^mcp-bench ')")
else
  echo "($build/bench_mcp is not built: only the TypeScript SDK ran)" >&2
fi

printf '%s\n' "${lines[@]}"
echo
echo "| client | transport | calls | serial µs/call | calls/s, 16 in flight |"
echo "|---|---|---:|---:|---:|"
for line in "${lines[@]}"; do
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $line"; }
  echo "| $(field client) | $(field transport) | $(field calls) | $(field serial_us_per_call) | $(field inflight16_calls_per_s) |"
done
