/** Benchmarks of the ppo family (SPEC §5) at B×T = 256×1024 and 64×8192 (P3O at B = 4096). */
import * as rk from '../ts/index.js';
import { paddedMask, randn, type BenchCase, type BenchOptions } from './harness.js';

export function cases(_opts: BenchOptions): BenchCase[] {
  const out: BenchCase[] = [];
  const on = <T>(f: (backend: 'js' | 'cpu' | 'cuda') => T) => ({ js: () => f('js'), cpu: () => f('cpu') });
  for (const [B, T] of [[256, 1024], [64, 8192]]) {
    const n = B * T;
    const logp = rk.tensor(randn(n, 1, 0.5), [B, T]);
    const oldLogp = rk.tensor(Float32Array.from(logp.data as Float32Array, (v, i) => v + 0.2 * Math.sin(i)), [B, T]);
    const advantages = rk.tensor(randn(n, 3), [B, T]);
    const refLogp = rk.tensor(randn(n, 4, 0.5), [B, T]);
    const mask = rk.tensor(paddedMask(B, T), [B, T]);
    const size = `${B}x${T}`;
    const g = { gradLogp: rk.zeros([B, T], 'f32') };
    // bytes: logp, oldLogp, advantages (12) + mask (1) read, gradLogp (4) written; + refLogp (4) with KL
    out.push({
      family: 'ppo', op: 'ppoPolicyLoss', size, bytes: n * 17,
      run: on((backend) => rk.ppoPolicyLoss({ logp, oldLogp, advantages, mask }, { clipHigh: 0.28, dualClip: 3, backend, out: g })),
    });
    out.push({
      family: 'ppo', op: 'ppoPolicyLoss(k3,seq-mean-token-mean)', size, bytes: n * 21,
      run: on((backend) => rk.ppoPolicyLoss({ logp, oldLogp, advantages, mask, refLogp },
        { klCoef: 0.05, klEstimator: 'k3', aggregation: 'seq-mean-token-mean', backend, out: g })),
    });
    const gv = { gradValues: rk.zeros([B, T], 'f32') };
    out.push({
      family: 'ppo', op: 'valueLoss', size, bytes: n * 17,
      run: on((backend) => rk.valueLoss({ values: logp, oldValues: oldLogp, returns: advantages, mask }, { clip: 0.2, aggregation: 'token-mean', backend, out: gv })),
    });
  }
  const P = 4096;
  const v = (s: number) => rk.tensor(randn(P, s, 0.3), [P]);
  const px = { logp1: v(5), logp2: v(6), oldLogp1: v(7), oldLogp2: v(8), rewards1: v(9), rewards2: v(10) };
  const pg = { gradLogp1: rk.zeros([P], 'f32'), gradLogp2: rk.zeros([P], 'f32') };
  out.push({
    family: 'ppo', op: 'p3oLoss(joint)', size: `${P}`, bytes: P * 32,
    run: on((backend) => rk.p3oLoss(px, { variant: 'joint', backend, out: pg })),
  });
  // Per-call overhead: the smallest call (validation, dispatch, N-API, the scalar results).
  {
    const t = (s: number) => rk.tensor(randn(64, s, 0.5), [1, 64]);
    const x = { logp: t(11), oldLogp: t(12), advantages: t(13), mask: rk.tensor(paddedMask(1, 64), [1, 64]) };
    const o = { gradLogp: rk.zeros([1, 64], 'f32') };
    out.push({
      family: 'ppo', op: 'ppoPolicyLoss (per-call overhead)', size: '1x64', bytes: 64 * 17,
      run: on((backend) => rk.ppoPolicyLoss(x, { backend, out: o })),
    });
  }
  return out;
}
