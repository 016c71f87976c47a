// The official openai SDK (npm `openai`, on Node's built-in fetch) as a closed-loop load
// generator, for comparison with bench_http: C concurrent async loops, each awaiting
// client.chat.completions.create(...) one after another until N calls have been issued (or
// --max-seconds have passed). Reports requests/s and the process's CPU per request
// (process.cpuUsage(), user + system) as one line prefixed "nodejson ".
//
// Usage: node bench.mjs --base-url http://127.0.0.1:PORT/v1 [--requests N] [--concurrency C]
//                       [--body JSON] [--max-seconds S]
// --body is the exact body bench_http sends (`bench_http --print-body`); its fields are passed
// to create() in the same order, so the SDK serializes the same bytes.

import OpenAI from 'openai';
import { VERSION } from 'openai/version';

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) throw new Error(`unexpected argument ${argv[i]}`);
    out[argv[i].slice(2)] = argv[i + 1];
    i++;
  }
  return out;
}

const args = parseArgs(process.argv.slice(2));
const baseURL = args['base-url'];
if (!baseURL) {
  console.error('usage: node bench.mjs --base-url URL [--requests N] [--concurrency C] [--body JSON]');
  process.exit(2);
}
const target = Number(args.requests ?? 5000);
const concurrency = Number(args.concurrency ?? 8);
const maxSeconds = Number(args['max-seconds'] ?? 60);
const body = JSON.parse(
  args.body ?? '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}],"max_tokens":16}');

const client = new OpenAI({ baseURL, apiKey: 'sk-bench', maxRetries: 0 });

let issued = 0;
let ok = 0;
let failed = 0;
let firstError = '';
const latencies = [];

async function worker(deadline) {
  while (issued < target && performance.now() < deadline) {
    issued++;
    const start = performance.now();
    try {
      const reply = await client.chat.completions.create(body);
      if (!reply.choices?.length) throw new Error('no choices');
      ok++;
    } catch (e) {
      failed++;
      if (!firstError) firstError = String(e?.message ?? e);
    }
    latencies.push(performance.now() - start);
  }
}

// One call first, outside the measurement: loads the SDK's lazy modules, as the C++ client has
// nothing to load. It opens one connection, which the server counts.
await client.chat.completions.create(body);

const cpu0 = process.cpuUsage();
const t0 = performance.now();
const deadline = t0 + maxSeconds * 1000;
await Promise.all(Array.from({ length: concurrency }, () => worker(deadline)));
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
const done = ok + failed;
latencies.sort((a, b) => a - b);
const pct = (p) => (latencies.length ? latencies[Math.round(p * (latencies.length - 1))] * 1000 : 0);

const out = {
  sdk_version: VERSION,
  node: process.version,
  concurrency,
  requests: done,
  ok,
  failed,
  seconds,
  rps: done / seconds,
  client_cpu_s: cpuSeconds,
  client_cpu_us_per_req: done ? (cpuSeconds * 1e6) / done : 0,
  client_cpu_util: cpuSeconds / seconds,
  p50_us: Math.round(pct(0.5)),
  p99_us: Math.round(pct(0.99)),
  first_error: firstError,
};
console.log(`nodejson ${JSON.stringify(out)}`);
process.exit(failed ? 1 : 0);
