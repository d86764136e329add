/** Benchmarks of the reward family (SPEC §2) at B×T = 256×1024 and 64×8192. */
import * as rk from '../ts/index.js';
import { paddedMask, randn, type BenchCase, type BenchOptions } from './harness.js';

export function cases(_opts: BenchOptions): BenchCase[] {
  const out: BenchCase[] = [];
  for (const [B, T] of [[256, 1024], [64, 8192]]) {
    const n = B * T;
    const logp = rk.tensor(randn(n, 1, 0.5), [B, T]);
    const refLogp = rk.tensor(randn(n, 2, 0.5), [B, T]);
    const dpoLogp = rk.tensor(randn(n, 3, 0.5), [B, T]);
    const mask = rk.tensor(paddedMask(B, T), [B, T]);
    const scores = rk.tensor(randn(B, 4), [B]);
    const size = `${B}x${T}`;
    const kl = { kl: rk.zeros([B, T], 'f32') };
    const rw = { rewards: rk.zeros([B, T], 'f32') };
    const on = <T>(f: (backend: 'js' | 'cpu' | 'cuda') => T) => ({ js: () => f('js'), cpu: () => f('cpu') });
    out.push({
      family: 'rewards', op: 'klPenalty(k3)', size, bytes: n * (4 + 4 + 1 + 4),
      run: on((backend) => rk.klPenalty({ logp, refLogp, mask }, { estimator: 'k3', backend, out: kl })),
    });
    out.push({
      family: 'rewards', op: 'tokenRewards', size, bytes: n * (4 + 4 + 1 + 4) + B * 4,
      run: on((backend) => rk.tokenRewards({ logp, refLogp, mask, scores }, { klCoef: 0.05, backend, out: rw })),
    });
    out.push({
      family: 'rewards', op: 'rtoRewards', size, bytes: n * (4 * 3 + 1 + 4) + B * 4,
      run: on((backend) => rk.rtoRewards({ dpoLogp, refLogp, logp, mask, scores }, { beta1: 0.1, beta2: 0.05, backend, out: rw })),
    });
    out.push({
      family: 'rewards', op: 'implicitRewards', size, bytes: n * (4 + 4 + 1 + 4),
      run: on((backend) => rk.implicitRewards({ logp, refLogp, mask }, { beta: 0.1, backend, out: rw })),
    });
  }
  // Per-call overhead: the smallest call (validation, dispatch, N-API, output allocation).
  {
    const logp = rk.tensor(randn(64, 5), [1, 64]);
    const refLogp = rk.tensor(randn(64, 6), [1, 64]);
    const mask = rk.tensor(paddedMask(1, 64), [1, 64]);
    const outBuf = { rewards: rk.zeros([1, 64], 'f32') };
    out.push({
      family: 'rewards', op: 'implicitRewards (per-call overhead)', size: '1x64', bytes: 64 * 13,
      run: {
        js: () => rk.implicitRewards({ logp, refLogp, mask }, { beta: 0.1, backend: 'js', out: outBuf }),
        cpu: () => rk.implicitRewards({ logp, refLogp, mask }, { beta: 0.1, backend: 'cpu', out: outBuf }),
      },
    });
  }
  return out;
}
