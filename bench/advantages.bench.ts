/**
 * Benchmarks of the advantages family (SPEC §3): the token ops at B×T = 256×1024 and 64×8192,
 * groupAdvantages at G·K = 65536 (K = 8 and K = 64), ensembleRewards at E = 4 × B = 65536,
 * winRateRewards at G = 4096, K = 8. `bytes` = inputs read once + outputs written once.
 */
import * as rk from '../ts/index.js';
import { paddedMask, randn, type BenchCase, type BenchOptions } from './harness.js';

export function cases(_opts: BenchOptions): BenchCase[] {
  const out: BenchCase[] = [];
  const on = <T>(f: (backend: 'js' | 'cpu' | 'cuda') => T) => ({ js: () => f('js'), cpu: () => f('cpu') });
  for (const [B, T] of [[256, 1024], [64, 8192]]) {
    const n = B * T;
    const rewards = rk.tensor(randn(n, 11, 0.5), [B, T]);
    const values = rk.tensor(randn(n, 12, 1), [B, T]);
    const mask = rk.tensor(paddedMask(B, T), [B, T]);
    const lastValues = rk.tensor(randn(B, 13), [B]);
    const size = `${B}x${T}`;
    const gaeOut = { advantages: rk.zeros([B, T], 'f32'), returns: rk.zeros([B, T], 'f32') };
    out.push({
      family: 'advantages', op: 'gae', size, bytes: n * (4 + 4 + 1 + 4 + 4) + B * 4,
      run: on((backend) => rk.gae({ rewards, values, mask, lastValues }, { gamma: 0.99, lambda: 0.95, backend, out: gaeOut })),
    });
    const ret = { returns: rk.zeros([B, T], 'f32') };
    out.push({
      family: 'advantages', op: 'discountedReturns', size, bytes: n * (4 + 1 + 4),
      run: on((backend) => rk.discountedReturns({ rewards, mask }, { gamma: 0.99, backend, out: ret })),
    });
    const y = { y: rk.zeros([B, T], 'f32') };
    out.push({
      family: 'advantages', op: 'whiten', size, bytes: n * (4 + 1 + 4),
      run: on((backend) => rk.whiten({ x: values, mask }, { backend, out: y })),
    });
  }
  for (const K of [8, 64]) {
    const n = 65536, G = n / K;
    const scores = rk.tensor(randn(n, 21), [n]);
    const baselines = rk.tensor(randn(n, 22), [n]);
    const adv = { advantages: rk.zeros([n], 'f32') };
    for (const method of ['grpo', 'rloo'] as const)
      out.push({
        family: 'advantages', op: `groupAdvantages(${method})`, size: `${G}x${K}`, bytes: n * 8,
        run: on((backend) => rk.groupAdvantages({ scores }, { groupSize: K, method, backend, out: adv })),
      });
    if (K === 8)
      out.push({
        family: 'advantages', op: 'groupAdvantages(remax)', size: `${G}x${K}`, bytes: n * 12,
        run: on((backend) => rk.groupAdvantages({ scores, baselines }, { groupSize: K, method: 'remax', backend, out: adv })),
      });
  }
  {
    const E = 4, B = 65536;
    const scores = rk.tensor(randn(E * B, 31), [E, B]);
    const rw = { rewards: rk.zeros([B], 'f32') };
    for (const method of ['mean', 'min', 'uwo'] as const)
      out.push({
        family: 'advantages', op: `ensembleRewards(${method})`, size: `${E}x${B}`, bytes: (E + 1) * B * 4,
        run: on((backend) => rk.ensembleRewards({ scores }, { method, backend, out: rw })),
      });
  }
  {
    const G = 4096, K = 8;
    const preferences = rk.tensor(randn(G * K * K, 41), [G, K, K]);
    const rw = { rewards: rk.zeros([G * K], 'f32') };
    out.push({
      family: 'advantages', op: 'winRateRewards', size: `${G}x${K}x${K}`, bytes: (G * K * K + G * K) * 4,
      run: on((backend) => rk.winRateRewards({ preferences }, { backend, out: rw })),
    });
  }
  return out;
}
