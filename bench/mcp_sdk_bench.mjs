// The official MCP TypeScript SDK (@modelcontextprotocol/sdk, pinned in tests/mcp/package.json) as
// the reference client for bench_mcp: Client + StdioClientTransport start server-everything over
// stdio, call its `echo` tool CALLS times one after another (µs per call), then CALLS times with
// 16 calls in flight (calls per second). A warm-up of min(100, CALLS) calls runs first and is not
// counted. Prints one line:
//   mcp-bench client=ts-sdk transport=stdio calls=N serial_us_per_call=X inflight16_calls_per_s=Y
//
// Usage: node bench/mcp_sdk_bench.mjs [CALLS]   (default: env CALLS, else 2000)
// Needs scripts/install-mcp-servers.sh to have run.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const modules = join(root, 'tests', 'mcp');
const server = join(modules, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');
if (!existsSync(server)) {
  console.error('mcp_sdk_bench: run scripts/install-mcp-servers.sh first');
  process.exit(1);
}
// The SDK lives in tests/mcp/node_modules, not beside this script: resolve it from there.
const require = createRequire(join(modules, 'package.json'));
const load = (name) => import(pathToFileURL(require.resolve(name)).href);
const { Client } = await load('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = await load('@modelcontextprotocol/sdk/client/stdio.js');

const calls = Number(process.argv[2] ?? process.env.CALLS ?? 2000);
if (!Number.isInteger(calls) || calls < 1) {
  console.error(`mcp_sdk_bench: CALLS must be a positive integer, not '${process.argv[2] ?? process.env.CALLS}'`);
  process.exit(2);
}
const inflight = 16;

const transport = new StdioClientTransport({
  command: process.execPath,
  args: [server, 'stdio'],
  stderr: 'ignore',
});
const client = new Client({ name: 'dagent-mcp-bench', version: '1.0.0' });
await client.connect(transport);

const echo = { name: 'echo', arguments: { message: 'hello from the benchmark' } };

async function callOnce() {
  const result = await client.callTool(echo);
  if (result.isError || !Array.isArray(result.content) || result.content.length === 0) {
    throw new Error(`echo failed: ${JSON.stringify(result)}`);
  }
}

async function serial(n) {
  for (let i = 0; i < n; i++) await callOnce();
}

async function concurrent(n, width) {
  let issued = 0;
  async function loop() {
    while (issued < n) {
      issued++;
      await callOnce();
    }
  }
  await Promise.all(Array.from({ length: Math.min(width, n) }, loop));
}

await serial(Math.min(100, calls));

let start = process.hrtime.bigint();
await serial(calls);
const serialNs = Number(process.hrtime.bigint() - start);

start = process.hrtime.bigint();
await concurrent(calls, inflight);
const concurrentNs = Number(process.hrtime.bigint() - start);

await client.close();

const serialUs = serialNs / 1000 / calls;
const perSecond = calls / (concurrentNs / 1e9);
console.log(`mcp-bench client=ts-sdk transport=stdio calls=${calls} serial_us_per_call=${serialUs.toFixed(1)} ` +
            `inflight16_calls_per_s=${perSecond.toFixed(0)}`);
