/**
 * Deterministic workloads for the concurrency tests: the same (op, seed, size) list gives the same
 * inputs on every thread, so a worker thread's results can be compared with the main thread's.
 */
import { OPS, rng } from './cases.js';
import { call } from './harness.js';

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
