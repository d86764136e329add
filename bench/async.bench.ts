/**
 * Per-call overhead of the asynchronous form (`op.async`) and of device tensors, on the CPU
 * (target: ≤ 10 µs over the synchronous call). `npm run bench:async [-- --quick]`.
 *
 * For small ops at their smallest useful sizes, each row gives the median time per call of:
 *  - sync: `op(inputs, options)`;
 *  - async inline: `await op.async(...)` one call at a time, below the inline threshold (the
 *    kernel runs on the calling thread and the Promise is settled: the default for calls on
 *    less than 256 KiB of array data);
 *  - async worker: the same with every call handed to a libuv worker (`setAsyncInlineBytes(0)`),
 *    one at a time (latency: includes the thread hop both ways) and 64 in flight (throughput);
 *  - emulated device: the sync call on device tensors of the emulated device (host memory):
 *    the cost of device outputs and device scalars in the TypeScript and N-API layers.
 * Writes bench/results/async-latest.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as rk from '../ts/index.js';
import { cpus } from 'node:os';
import { randn } from './harness.js';

/** The machine line of the report. */
function machine() {
  const b = rk.backends();
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, threads: b.threads, simd: b.simd };
}

const here = dirname(fileURLToPath(import.meta.url));
const quick = process.argv.includes('--quick');
const t = rk.tensor;

interface Row {
  op: string;
  size: string;
  syncUs: number;
  asyncInlineUs: number;
  asyncWorkerUs: number;
  asyncWorkerPipelinedUs: number;
  emulatedDeviceUs: number;
}

/** Median over `rounds` of the mean time per call of `iters` calls, in µs. */
async function timeIt(fn: () => unknown, iters: number, rounds = quick ? 3 : 7): Promise<number> {
  for (let i = 0; i < Math.min(iters, 200); i++) await fn(); // warm-up
  const res: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) await fn();
    res.push(Number(process.hrtime.bigint() - t0) / 1e3 / iters);
  }
  res.sort((a, b) => a - b);
  return res[Math.floor(res.length / 2)];
}
function timeSync(fn: () => unknown, iters: number, rounds = quick ? 3 : 7): number {
  for (let i = 0; i < Math.min(iters, 200); i++) fn();
  const res: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; i++) fn();
    res.push(Number(process.hrtime.bigint() - t0) / 1e3 / iters);
  }
  res.sort((a, b) => a - b);
  return res[Math.floor(res.length / 2)];
}
async function timePipelined(fn: () => Promise<unknown>, inFlight: number, total: number): Promise<number> {
  const res: number[] = [];
  for (let r = 0; r < (quick ? 3 : 5); r++) {
    const t0 = process.hrtime.bigint();
    for (let done = 0; done < total; done += inFlight) await Promise.all(Array.from({ length: inFlight }, fn));
    res.push(Number(process.hrtime.bigint() - t0) / 1e3 / total);
  }
  res.sort((a, b) => a - b);
  return res[Math.floor(res.length / 2)];
}

interface Case { op: rk.Op<any, any, any>; name: string; size: string; inputs: Record<string, rk.TensorLike>; options?: Record<string, unknown> }

function cases(): Case[] {
  const B = 4, T = 64;
  const m = t(new Uint8Array(B * T).fill(1), [B, T]);
  const x = () => t(randn(B * T, 3, 0.1), [B, T]);
  const N = 8, V = 256;
  return [
    { op: rk.klPenalty, name: 'klPenalty', size: `${B}x${T}`, inputs: { logp: x(), refLogp: x(), mask: m }, options: { estimator: 'k3' } },
    { op: rk.gae, name: 'gae', size: `${B}x${T}`, inputs: { rewards: x(), values: x(), mask: m }, options: { gamma: 1, lambda: 0.95 } },
    { op: rk.ppoPolicyLoss, name: 'ppoPolicyLoss', size: `${B}x${T}`, inputs: { logp: x(), oldLogp: x(), advantages: x(), mask: m } },
    { op: rk.preferenceLoss, name: 'preferenceLoss(dpo)', size: '64', inputs: { policyChosen: t(randn(64, 1), [64]), policyRejected: t(randn(64, 2), [64]), refChosen: t(randn(64, 3), [64]), refRejected: t(randn(64, 4), [64]) }, options: { type: 'dpo', beta: 0.1 } },
    { op: rk.logprobs, name: 'logprobs', size: `${N}x${V}`, inputs: { logits: t(randn(N * V, 5), [N, V]), labels: t(Int32Array.from({ length: N }, (_, i) => i), [N]) } },
  ];
}

async function main() {
  if (!rk.backends().cpu) throw new Error('the native addon is needed for this bench');
  const iters = quick ? 2000 : 20000;
  const rows: Row[] = [];
  for (const c of cases()) {
    const syncUs = timeSync(() => c.op(c.inputs, c.options), iters);
    const asyncInlineUs = await timeIt(() => c.op.async(c.inputs, c.options), iters);
    const prev = rk.setAsyncInlineBytes(0);
    const asyncWorkerUs = await timeIt(() => c.op.async(c.inputs, c.options), Math.floor(iters / 4));
    const asyncWorkerPipelinedUs = await timePipelined(() => c.op.async(c.inputs, c.options), 64, Math.floor(iters / 2));
    rk.setAsyncInlineBytes(prev);
    const dev: Record<string, rk.DeviceTensor> = {};
    for (const [k, v] of Object.entries(c.inputs)) dev[k] = rk.cuda.upload(v, { device: 'emulated' });
    const emulatedDeviceUs = timeSync(() => {
      const r = c.op(dev, c.options) as Record<string, unknown>;
      for (const v of Object.values(r)) if (v instanceof rk.DeviceTensor) v.dispose();
    }, Math.floor(iters / 2));
    rows.push({ op: c.name, size: c.size, syncUs, asyncInlineUs, asyncWorkerUs, asyncWorkerPipelinedUs, emulatedDeviceUs });
  }
  const f = (v: number) => v.toFixed(2).padStart(8);
  const head = '| op | size | sync µs | async inline µs (overhead) | async worker µs, 1 in flight (overhead) | async worker µs, 64 in flight | emulated device µs |';
  const lines = [head, '|---|---|---:|---:|---:|---:|---:|'];
  for (const r of rows) {
    lines.push(`| ${r.op} | ${r.size} | ${f(r.syncUs)} | ${f(r.asyncInlineUs)} (+${(r.asyncInlineUs - r.syncUs).toFixed(2)}) | ` +
      `${f(r.asyncWorkerUs)} (+${(r.asyncWorkerUs - r.syncUs).toFixed(2)}) | ${f(r.asyncWorkerPipelinedUs)} | ${f(r.emulatedDeviceUs)} |`);
  }
  const m = machine();
  console.log(`machine: ${m.cpu}, ${m.cores} cores, node ${m.node}, threads ${m.threads}`);
  console.log(lines.join('\n'));
  mkdirSync(join(here, 'results'), { recursive: true });
  const path = join(here, 'results', 'async-latest.json');
  writeFileSync(path, JSON.stringify({ machine: m, quick, rows }, null, 2) + '\n');
  console.log(`wrote ${path}`);
}

// Only when run as a script: the bench CLI imports every *.bench.ts to collect its ops (this file
// has none), and an import must not run this bench or rewrite its results.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href)
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
