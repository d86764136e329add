/**
 * Benchmarks of the linear family (SPEC §8), at the issue's size N = 4096, D = 4096, V = 32000 f32
 * (~1.07 TFLOP per forward):
 * - the GEMM alone (logits = hidden·Wᵀ, our own kernel, f32 [N, V] written): target ≥ 60% of this
 *   machine's measured FMA peak (register-only FMA chains, `fmaPeakCpuTime`);
 * - linearLogprobs (fused): target ≤ 1.15× the GEMM alone, scratch ≤ N·V·4/8 bytes;
 * - the unfused GEMM + logprobs, linearLogprobs with entropy, bf16 inputs, the backward;
 * - a small case (per-call overhead, and the js reference).
 * `npm run bench -- --family linear` runs the cases in the harness; running this file directly
 * (`node --import tsx bench/linear.bench.ts [--quick]`) also measures the FMA peak, the ratios and
 * the peak resident memory of each call (VmHWM after clearing it, with large allocations mmap'd so
 * that freed scratch leaves the resident set), and writes bench/results/linear-cpu.json.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as rk from '../ts/index.js';
import { native } from '../ts/native.js';
import { randn, type BenchCase, type BenchOptions } from './harness.js';

interface LinearBenchNative {
  linearLogits(N: number, V: number, D: number, dt: number, hidden: Float32Array | Uint16Array, weight: Float32Array | Uint16Array,
    bias: Float32Array | null, logits: Float32Array, chunk: number, cuda: boolean): void;
  linearScratchBytes(Na: number, V: number, D: number, chunk: number, backward: boolean): number;
  fmaPeakCpuTime(threads: number, width: number, seconds: number): number;
}
const nat = () => native as unknown as LinearBenchNative;

function toBf16(a: Float32Array): Uint16Array {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length), o = new Uint16Array(a.length);
  for (let i = 0; i < u.length; i++) o[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) & 0xffff;
  return o;
}

/** The issue's case: hidden [N,D] ~ N(0,1), W [V,D] ~ N(0, 1/D) (logits of order 1), labels, outputs. */
function bigCase(N: number, V: number, D: number) {
  const h = randn(N * D, 71, 1), w = randn(V * D, 72, 1 / Math.sqrt(D));
  const hidden = rk.tensor(h, [N, D]), weight = rk.tensor(w, [V, D]);
  const labels = rk.tensor(Int32Array.from({ length: N }, (_, i) => (i * 7919) % V), [N]);
  const outs = { logp: rk.zeros([N], 'f32'), lse: rk.zeros([N], 'f32'), entropy: rk.zeros([N], 'f32') };
  const logits = rk.zeros([N, V], 'f32');
  logits.data.fill(1); // touch the pages once: the GEMM-alone case then writes, not faults
  return { hidden, weight, labels, outs, logits, N, V, D };
}

export function cases(opts: BenchOptions): BenchCase[] {
  const out: BenchCase[] = [];
  const family = 'linear';
  {
    const N = 64, V = 1000, D = 64;
    const c = { hidden: rk.tensor(randn(N * D, 1), [N, D]), weight: rk.tensor(randn(V * D, 2, 0.125), [V, D]) };
    const labels = rk.tensor(Int32Array.from({ length: N }, (_, i) => (i * 31) % V), [N]);
    const o = { logp: rk.zeros([N], 'f32'), lse: rk.zeros([N], 'f32') };
    out.push({
      family, op: 'linearLogprobs f32 (small)', size: `${N}x${V}x${D}`, bytes: (N + V) * D * 4 + N * 12,
      extra: { flops: 2 * N * V * D },
      run: { js: () => rk.linearLogprobs({ ...c, labels }, { backend: 'js', out: o }), cpu: () => rk.linearLogprobs({ ...c, labels }, { out: o }) },
    });
  }
  if (!native) return out;
  const [N, V, D] = opts.quick ? [1024, 8000, 4096] : [4096, 32000, 4096];
  const b = bigCase(N, V, D);
  const size = `${N}x${V}x${D}`;
  const flops = 2 * N * V * D;
  const inBytes = (N + V) * D * 4;
  const limit = (N * V * 4) / 8;
  const gemm = () => nat().linearLogits(N, V, D, 0, b.hidden.data as Float32Array, b.weight.data as Float32Array, null, b.logits.data, 0, false);
  out.push({ family, op: 'GEMM alone f32 (logits out)', size, bytes: inBytes + N * V * 4, extra: { flops }, run: { cpu: gemm } });
  out.push({
    family, op: 'linearLogprobs f32 (fused)', size, bytes: inBytes + N * 12,
    extra: { flops, scratchBytes: nat().linearScratchBytes(N, V, D, 0, false), scratchLimit: limit },
    run: { cpu: () => rk.linearLogprobs(b, { out: { logp: b.outs.logp, lse: b.outs.lse } }) },
  });
  out.push({
    family, op: 'linearLogprobs+entropy f32', size, bytes: inBytes + N * 16, extra: { flops },
    run: { cpu: () => rk.linearLogprobs(b, { entropy: true, out: b.outs }) },
  });
  out.push({
    family, op: 'unfused GEMM + logprobs f32', size, bytes: inBytes + N * V * 8 + N * 12, extra: { flops, logitsBytes: N * V * 4 },
    run: { cpu: () => { gemm(); return rk.logprobs({ logits: b.logits, labels: b.labels }, { out: { logp: b.outs.logp, lse: b.outs.lse } }); } },
  });
  const hb = rk.tensor(toBf16(b.hidden.data as Float32Array), [N, D], 'bf16'), wb = rk.tensor(toBf16(b.weight.data as Float32Array), [V, D], 'bf16');
  out.push({
    family, op: 'linearLogprobs bf16 (fused)', size, bytes: inBytes / 2 + N * 12, extra: { flops },
    run: { cpu: () => rk.linearLogprobs({ hidden: hb, weight: wb, labels: b.labels }, { out: { logp: b.outs.logp, lse: b.outs.lse } }) },
  });
  const gradLogp = rk.tensor(randn(N, 73), [N]);
  const grads = { gradHidden: rk.zeros([N, D], 'f32'), gradWeight: rk.zeros([V, D], 'f32') };
  grads.gradHidden.data.fill(1);
  grads.gradWeight.data.fill(1); // touch the outputs' pages: the resident-memory figure is then the scratch alone
  out.push({
    family, op: 'linearLogprobsBackward f32 (lse)', size, bytes: inBytes * 2 + N * 8,
    extra: { flops: 3 * flops, scratchBytes: nat().linearScratchBytes(N, V, D, 0, true), scratchLimit: limit },
    note: 'recomputes the logits chunk by chunk, then gradHidden += dZ·W and gradWeight = dZᵀ·h (3 GEMMs)',
    run: { cpu: () => rk.linearLogprobsBackward({ ...b, gradLogp, lse: b.outs.lse }, { out: grads }) },
  });
  return out;
}

// ---- standalone: FMA peak, ratios, peak resident memory ------------------------------------------

function hwm(): number {
  const s = readFileSync('/proc/self/status', 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(s)![1]) * 1024;
}
function rss(): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
}
/** Peak resident bytes above the level before fn (VmHWM reset through /proc/self/clear_refs). */
function peakExtra(fn: () => unknown): number {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    return NaN;
  }
  const before = rss();
  fn();
  return hwm() - before;
}
/** Best wall time of reps calls, and the process CPU time (all threads) of that call. */
function best(fn: () => unknown, reps: number): { wall: number; cpu: number } {
  let t = { wall: Infinity, cpu: Infinity };
  for (let i = 0; i < reps; i++) {
    const c = process.cpuUsage(), a = process.hrtime.bigint();
    fn();
    const wall = Number(process.hrtime.bigint() - a) / 1e9, u = process.cpuUsage(c);
    if (wall < t.wall) t = { wall, cpu: (u.user + u.system) / 1e6 };
  }
  return t;
}

async function main() {
  // large allocations through mmap, so that a call's freed scratch leaves the resident set and the
  // next call's peak (VmHWM) is its own
  if (!process.env.MALLOC_MMAP_THRESHOLD_) {
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
      { stdio: 'inherit', env: { ...process.env, MALLOC_MMAP_THRESHOLD_: '131072' } });
    process.exit(r.status ?? 1);
  }
  const quick = process.argv.includes('--quick');
  if (!native) throw new Error('the native addon is not built');
  const info = rk.backends();
  const peak1 = nat().fmaPeakCpuTime(1, 0, 1), peak2 = nat().fmaPeakCpuTime(info.threads, 0, 1);
  console.log(`FMA peak (${info.simd}, register-only FMA chains, per thread CPU-second): ${(peak1 / 1e9).toFixed(1)} GFLOP/s on 1 thread, ` +
    `${(peak2 / 1e9).toFixed(1)} GFLOP/s on ${info.threads} threads`);
  const cs = cases({ quick, oneThread: false, jsMaxSeconds: 1 });
  const res: Record<string, { seconds: number; cpuSeconds: number; gflops: number; perCoreEfficiency: number; peakExtraBytes: number; extra?: Record<string, number | string> }> = {};
  for (const c of cs) {
    const fn = c.run.cpu!;
    const peak = peakExtra(fn); // (also the warm-up)
    const { wall: s, cpu } = best(fn, 2);
    const fl = Number(c.extra?.flops ?? 0);
    // per-core efficiency: FLOPs per CPU-second of the process against one core's peak (robust to
    // a shared machine, where the wall-clock figure below is not)
    const eff = fl / cpu / peak1;
    res[c.op] = { seconds: s, cpuSeconds: cpu, gflops: fl / s / 1e9, perCoreEfficiency: eff, peakExtraBytes: peak, extra: c.extra };
    console.log(`${c.op} ${c.size}: ${s.toFixed(3)} s (${cpu.toFixed(2)} CPU-s), ${(fl / s / 1e9).toFixed(1)} GFLOP/s = ` +
      `${((fl / s / peak2) * 100).toFixed(0)}% of the ${info.threads}-thread FMA peak (per core-second: ${(eff * 100).toFixed(0)}%), ` +
      `peak extra resident ${(peak / 1e6).toFixed(1)} MB${c.extra?.scratchBytes !== undefined ? `, own scratch ${(Number(c.extra.scratchBytes) / 1e6).toFixed(1)} MB (limit N·V·4/8 = ${(Number(c.extra.scratchLimit) / 1e6).toFixed(1)} MB)` : ''}`);
  }
  const g = res['GEMM alone f32 (logits out)'], f = res['linearLogprobs f32 (fused)'], u = res['unfused GEMM + logprobs f32'];
  if (g && f && u) {
    console.log(`GEMM alone: ${((g.gflops * 1e9 / peak2) * 100).toFixed(0)}% of the FMA peak by wall clock, ${(g.perCoreEfficiency * 100).toFixed(0)}% per core-second (target ≥ 60%)`);
    console.log(`fused / GEMM alone: ${(f.seconds / g.seconds).toFixed(3)}× (target ≤ 1.15×); fused / unfused: ${(f.seconds / u.seconds).toFixed(3)}×`);
  }
  const here = dirname(fileURLToPath(import.meta.url));
  mkdirSync(join(here, 'results'), { recursive: true });
  const path = join(here, 'results', 'linear-cpu.json');
  writeFileSync(path, JSON.stringify({ machine: { simd: info.simd, threads: info.threads }, fmaPeak: { oneThread: peak1, allThreads: peak2 }, quick, results: res }, null, 2) + '\n');
  console.log(`wrote ${path}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main().catch((e) => { console.error(e); process.exit(1); });
