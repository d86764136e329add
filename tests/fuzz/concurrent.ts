/**
 * Deterministic workloads for the concurrency tests: the same (op, seed, size) list gives the same
 * inputs on every thread, so a worker thread's results can be compared with the main thread's.
 */
import * as rk from '../../ts/index.js';
import { native } from '../../ts/native.js';
import { OPS, rng } from './cases.js';
import { call, callAsync } from './harness.js';

export interface Job { op: string; seed: number; size: number; dimMax?: number }

/** Small cases of every op, plus cases large enough for the thread pool (> 2^17 elements). */
export function jobs(seeds: number): Job[] {
  const out: Job[] = [];
  for (const spec of OPS) for (let s = 0; s < seeds; s++) out.push({ op: spec.name, seed: 1000 + s, size: s % 3 });
  for (const op of ['klPenalty', 'gae', 'whiten', 'ppoPolicyLoss', 'valueLoss', 'sequenceLogprobs', 'apoReference', 'tokenRewards', 'discountedReturns'])
    out.push({ op, seed: 7, size: 3, dimMax: 600 });
  for (const op of ['logprobs', 'logprobsBackward', 'vocabKl', 'vocabKlBackward', 'geometricMixture', 'packedAttention'])
    out.push({ op, seed: 11, size: 3, dimMax: 90 });
  return out;
}

/** Runs one job on `backend`; returns the outcome as plain data (tensors as typed arrays). */
export function runJob(j: Job, backend = 'cpu'): unknown {
  const spec = OPS.find((o) => o.name === j.op)!;
  const c = spec.gen(rng(j.seed, { dimMax: j.dimMax }), j.size);
  const o = call(spec, c, backend);
  if (!o.ok) return { error: (o.error as Error).constructor.name, message: (o.error as Error).message };
  return Object.fromEntries(Object.entries(o.result).map(([k, v]) => [k, v && typeof v === 'object' && 'data' in v ? (v as { data: unknown }).data : v]));
}

/**
 * Sends every `.async` call off the JS thread, whatever its size (the package's threshold and the
 * addon's own); returns a function that restores both.
 */
export function forceOffload(): () => void {
  const nat = native as unknown as { setAsyncInline?: (b: number) => number } | null;
  const js = rk.setAsyncInlineBytes(0);
  const addon = nat?.setAsyncInline ? nat.setAsyncInline(0) : -1;
  return () => {
    rk.setAsyncInlineBytes(js);
    if (addon >= 0) nat!.setAsyncInline!(addon);
  };
}

/** runJob through the op's `.async` form. */
export async function runJobAsync(j: Job, backend = 'cpu'): Promise<unknown> {
  const spec = OPS.find((o) => o.name === j.op)!;
  const c = spec.gen(rng(j.seed, { dimMax: j.dimMax }), j.size);
  const o = await callAsync(spec, c, backend);
  if (!o.ok) return { error: (o.error as Error).constructor.name, message: (o.error as Error).message };
  return Object.fromEntries(Object.entries(o.result).map(([k, v]) => [k, v && typeof v === 'object' && 'data' in v ? (v as { data: unknown }).data : v]));
}

/**
 * Every job's `.async` form started at once (kernels on libuv's threads, all competing for the
 * pool) against the serial results, bitwise. Returns the differences found.
 */
export async function asyncEqualsSerial(list: Job[], serial: unknown[]): Promise<string[]> {
  const got = await Promise.all(list.map((j) => runJobAsync(j)));
  return list.map((j, i) => diff(got[i], serial[i], `async ${j.op}#${j.seed}`)).filter((d): d is string => d !== null);
}

/** First difference between two job outcomes (bitwise: NaN payloads aside), or null. */
export function diff(a: unknown, b: unknown, where: string): string | null {
  const A = a as Record<string, unknown>, B = b as Record<string, unknown>;
  for (const k of new Set([...Object.keys(A), ...Object.keys(B)])) {
    const x = A[k], y = B[k];
    if (ArrayBuffer.isView(x) && ArrayBuffer.isView(y)) {
      const p = x as unknown as ArrayLike<number>, q = y as unknown as ArrayLike<number>;
      if (p.length !== q.length) return `${where}.${k}: length ${p.length} vs ${q.length}`;
      for (let i = 0; i < p.length; i++) if (!Object.is(p[i], q[i]) && !(Number.isNaN(p[i]) && Number.isNaN(q[i]))) return `${where}.${k}[${i}]: ${p[i]} vs ${q[i]}`;
    } else if (!Object.is(x, y) && !(Number.isNaN(x) && Number.isNaN(y))) return `${where}.${k}: ${String(x)} vs ${String(y)}`;
  }
  return null;
}

/**
 * Runs `js` in a worker thread (tests/fuzz/worker.mjs: its own instance of the package and the
 * addon) `reps` times; with `setThreads`, every other pass changes the pool's thread count.
 */
export async function inWorker(js: Job[], reps: number, setThreads = false): Promise<{ results: unknown[]; addonPath: string }> {
  const { Worker } = await import('node:worker_threads');
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./worker.mjs', import.meta.url), { workerData: { jobs: js, reps, setThreads } });
    w.once('message', (m) => {
      resolve(m);
      void w.terminate();
    });
    w.once('error', reject);
    w.once('exit', (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)));
  });
}

/**
 * The main concurrency property: every job run from 3 worker threads (each in its own order) and
 * from this thread at once gives the serial results, bitwise. Returns the differences found.
 */
export async function concurrentEqualsSerial(list: Job[], serial: unknown[]): Promise<string[]> {
  const orders = [list, [...list].reverse(), list.map((_, i) => list[(i * 7) % list.length])];
  const pending = orders.map((o) => inWorker(o, 1));
  const here = list.map((j) => runJob(j)); // this thread competes for the pool meanwhile
  const done = await Promise.all(pending);
  const out: string[] = [];
  list.forEach((j, i) => {
    const d = diff(here[i], serial[i], `main ${j.op}#${j.seed}`);
    if (d) out.push(d);
  });
  done.forEach((d, w) =>
    orders[w].forEach((j, i) => {
      const e = diff(d.results[i], serial[list.indexOf(j)], `worker ${w} ${j.op}#${j.seed}`);
      if (e) out.push(e);
    }));
  return out;
}
