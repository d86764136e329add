/**
 * Benchmark harness: benchmark.js per case and backend, this machine's copy bandwidth as the
 * yardstick, and JSON + Markdown reports. Family suites live in bench/<family>.bench.ts and
 * export `cases(opts)`.
 */
import Benchmark from 'benchmark';
import { cpus, totalmem } from 'node:os';
import * as rk from '../ts/index.js';
import { native } from '../ts/native.js';

export type BenchBackend = 'js' | 'cpu' | 'cpu1' | 'cuda';

export interface BenchCase {
  family: string;
  op: string;
  /** e.g. "256x1024" */
  size: string;
  /** bytes one call must read plus write at minimum (inputs read once, outputs written once) */
  bytes: number;
  /** one call per backend; absent = not measured */
  run: Partial<Record<'js' | 'cpu' | 'cuda', () => unknown>>;
  /** optional extra figures (FLOPs, tiles, ...) copied into the report */
  extra?: Record<string, number | string>;
  note?: string;
}

export interface BenchOptions {
  quick: boolean;
  /** also measure the CPU backend on one thread ('cpu1') */
  oneThread: boolean;
  /** skip the js backend for cases where one call would take longer than this many seconds */
  jsMaxSeconds: number;
}

export interface Measurement {
  backend: BenchBackend;
  medianSeconds: number;
  samples: number;
  rme: number;
  gbPerSecond: number;
  fractionOfCopy: number;
  speedupOverJs?: number;
}

export interface CaseResult {
  family: string;
  op: string;
  size: string;
  bytes: number;
  extra?: Record<string, number | string>;
  note?: string;
  results: Measurement[];
}

export function machine() {
  const info = rk.backends();
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    simd: info.simd,
    threads: info.threads,
    cuda: info.cuda,
    date: new Date().toISOString(),
  };
}

/** Copy bandwidth (bytes read + written per second) with all threads and with one. */
export function copyBandwidth(quick: boolean): { all: number; one: number } {
  if (!native) return { all: NaN, one: NaN };
  const bytes = quick ? 64 << 20 : 256 << 20;
  const threads = rk.backends().threads;
  const all = native.copyBandwidth(bytes, 5);
  rk.setThreads(1);
  const one = native.copyBandwidth(bytes, 5);
  rk.setThreads(threads);
  return { all, one };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Times fn: benchmark.js when one call is short, plain repeated timing when it is long. */
function time(fn: () => unknown, maxTime: number): { median: number; samples: number; rme: number } {
  const t0 = process.hrtime.bigint();
  fn(); // warm-up (and a first estimate)
  const first = Number(process.hrtime.bigint() - t0) / 1e9;
  if (first > 0.25) {
    const ts: number[] = [first];
    const reps = Math.max(2, Math.min(5, Math.floor(maxTime / first)));
    for (let i = 0; i < reps; i++) {
      const a = process.hrtime.bigint();
      fn();
      ts.push(Number(process.hrtime.bigint() - a) / 1e9);
    }
    return { median: median(ts), samples: ts.length, rme: NaN };
  }
  const b = new Benchmark('case', fn, { maxTime, minSamples: 5, initCount: 1 });
  b.run({ async: false });
  const sample = b.stats.sample.length ? b.stats.sample : [b.stats.mean];
  return { median: median(sample), samples: sample.length, rme: b.stats.rme };
}

export function runCases(cases: BenchCase[], opts: BenchOptions, copy: { all: number; one: number }, log = console.log): CaseResult[] {
  const out: CaseResult[] = [];
  const threads = rk.backends().threads;
  const maxTime = opts.quick ? 0.3 : 1;
  for (const c of cases) {
    const results: Measurement[] = [];
    const order: BenchBackend[] = ['cpu', ...(opts.oneThread ? (['cpu1'] as const) : []), 'cuda', 'js'];
    for (const backend of order) {
      const fn = backend === 'cpu1' ? c.run.cpu : c.run[backend];
      if (!fn) continue;
      if (backend === 'js') {
        const cpu = results.find((r) => r.backend === 'cpu');
        // estimate js time from one call before committing to a full measurement
        const a = process.hrtime.bigint();
        fn();
        const once = Number(process.hrtime.bigint() - a) / 1e9;
        if (once > opts.jsMaxSeconds) {
          results.push({ backend, medianSeconds: once, samples: 1, rme: NaN, gbPerSecond: c.bytes / once / 1e9, fractionOfCopy: c.bytes / once / copy.all });
          if (cpu) cpu.speedupOverJs = once / cpu.medianSeconds;
          continue;
        }
      }
      if (backend === 'cpu1') rk.setThreads(1);
      let m;
      try {
        m = time(fn, maxTime);
      } finally {
        if (backend === 'cpu1') rk.setThreads(threads);
      }
      const bw = c.bytes / m.median;
      results.push({
        backend,
        medianSeconds: m.median,
        samples: m.samples,
        rme: m.rme,
        gbPerSecond: bw / 1e9,
        fractionOfCopy: bw / (backend === 'cpu1' ? copy.one : copy.all),
      });
    }
    const js = results.find((r) => r.backend === 'js');
    if (js) for (const r of results) if (r.backend !== 'js') r.speedupOverJs = js.medianSeconds / r.medianSeconds;
    const res: CaseResult = { family: c.family, op: c.op, size: c.size, bytes: c.bytes, extra: c.extra, note: c.note, results };
    out.push(res);
    log(formatRow(res));
  }
  return out;
}

const fmtTime = (s: number) => (s < 1e-3 ? `${(s * 1e6).toFixed(1)} µs` : s < 1 ? `${(s * 1e3).toFixed(2)} ms` : `${s.toFixed(2)} s`);

export function formatRow(r: CaseResult): string {
  const cpu = r.results.find((m) => m.backend === 'cpu');
  const parts = r.results.map((m) => `${m.backend} ${fmtTime(m.medianSeconds)} ${m.gbPerSecond.toFixed(1)} GB/s (${(m.fractionOfCopy * 100).toFixed(0)}%)`);
  const sp = cpu?.speedupOverJs ? ` ×${cpu.speedupOverJs.toFixed(1)} vs js` : '';
  return `${r.family}/${r.op} ${r.size}: ${parts.join(' | ')}${sp}`;
}

export function markdownTable(results: CaseResult[]): string {
  const lines = [
    '| op | size | MB moved | cpu time | cpu GB/s | % of copy | cpu 1-thread GB/s | js time | × js | extra |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of results) {
    const get = (b: BenchBackend) => r.results.find((m) => m.backend === b);
    const cpu = get('cpu'), cpu1 = get('cpu1'), js = get('js');
    const extra = r.extra ? Object.entries(r.extra).map(([k, v]) => `${k}=${v}`).join(', ') : '';
    lines.push(
      `| ${r.family}/${r.op} | ${r.size} | ${(r.bytes / 1e6).toFixed(1)} | ${cpu ? fmtTime(cpu.medianSeconds) : '–'} | ${cpu ? cpu.gbPerSecond.toFixed(1) : '–'} | ${cpu ? (cpu.fractionOfCopy * 100).toFixed(0) + '%' : '–'} | ${cpu1 ? cpu1.gbPerSecond.toFixed(1) : '–'} | ${js ? fmtTime(js.medianSeconds) : '–'} | ${cpu?.speedupOverJs ? cpu.speedupOverJs.toFixed(1) : '–'} | ${extra} |`,
    );
  }
  return lines.join('\n');
}

/** Helpers for building bench inputs. */
export function randn(n: number, seed = 1, scale = 1): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = (s >>> 8) / 16777216;
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const v = (s >>> 8) / 16777216;
    a[i] = scale * (u + v - 1) * 2.449; // sum of two uniforms: mean 0, variance ≈ 1
  }
  return a;
}
export function ones(n: number): Uint8Array {
  return new Uint8Array(n).fill(1);
}
/** A [B,T] u8 mask with right padding: row b counts its first T − (b % 7)·T/16 tokens. */
export function paddedMask(B: number, T: number): Uint8Array {
  const m = new Uint8Array(B * T);
  for (let b = 0; b < B; b++) {
    const len = T - Math.floor(((b % 7) * T) / 16);
    m.fill(1, b * T, b * T + len);
  }
  return m;
}
