/**
 * Benchmarks of the ppo family (SPEC §5): ppoPolicyLoss (plain, and with the k3 KL and
 * seq-mean-token-mean aggregation) and valueLoss over [B,T] tokens at a cache-resident and a
 * DRAM-resident size, ppoPolicyLoss at 1×64 (per-call overhead), and p3oLoss over P pairs.
 * bytes: logp, oldLogp, advantages (f32) and the u8 mask read once, the gradient written once (+
 * refLogp with the KL). FLOPs per token: the ratio e^{logp − old} (1 + exp), both clipped
 * surrogates, the dual clip, the selects, the sums and the gradient (16); the k3 KL adds an exp
 * and 6; valueLoss (12); p3o (joint) per pair: the log-ratio, A, one exp, the clip and the gradients (15 + exp).
 */
import * as rk from '../ts/index.js';
import { dims, on, mapInPlace, itemSizes, lastOnly, paddedMask, randn, tokenSizes, TRANSCENDENTAL_FLOPS as TX, type OpCase, type OpSpec } from './harness.js';

const family = 'ppo';

const tokens = lastOnly((size: string) => {
  const [B, T] = dims(size, 2, 'BxT, e.g. 64x8192');
  const n = B * T;
  const logp = rk.tensor(randn(n, 1, 0.5), [B, T]);
  return {
    B, T, n, logp,
    oldLogp: rk.tensor(mapInPlace(Float32Array.from(logp.data as Float32Array), (v, i) => v + 0.2 * Math.sin(i)), [B, T]),
    advantages: rk.tensor(randn(n, 3), [B, T]),
    refLogp: rk.tensor(randn(n, 4, 0.5), [B, T]),
    mask: rk.tensor(paddedMask(B, T), [B, T]),
    g: { gradLogp: rk.zeros([B, T], 'f32') },
    gv: { gradValues: rk.zeros([B, T], 'f32') },
  };
});

export const ops: OpSpec[] = [
  {
    family, op: 'ppoPolicyLoss', sizes: (llc, dram) => ({ ...tokenSizes(17)(llc, dram), other: ['1x64'] }),
    make(size): OpCase {
      const { n, logp, oldLogp, advantages, mask, g } = tokens(size);
      const x = { logp, oldLogp, advantages, mask };
      return {
        bytes: n * 17, flops: n * (16 + TX),
        note: n <= 64 ? 'per-call overhead (validation, dispatch, N-API, the scalar results)' : undefined,
        out: on((backend) => rk.ppoPolicyLoss(x, { clipHigh: 0.28, dualClip: 3, backend, out: g })),
        alloc: on((backend) => rk.ppoPolicyLoss(x, { clipHigh: 0.28, dualClip: 3, backend })),
      };
    },
  },
  {
    family, op: 'ppoPolicyLoss(k3,seq-mean-token-mean)', sizes: tokenSizes(21),
    make(size): OpCase {
      const { n, logp, oldLogp, advantages, mask, refLogp, g } = tokens(size);
      const x = { logp, oldLogp, advantages, mask, refLogp };
      const o = { klCoef: 0.05, klEstimator: 'k3', aggregation: 'seq-mean-token-mean' } as const;
      return {
        bytes: n * 21, flops: n * (22 + 2 * TX),
        out: on((backend) => rk.ppoPolicyLoss(x, { ...o, backend, out: g })),
        alloc: on((backend) => rk.ppoPolicyLoss(x, { ...o, backend })),
      };
    },
  },
  {
    family, op: 'valueLoss', sizes: tokenSizes(17),
    make(size): OpCase {
      const { n, logp, oldLogp, advantages, mask, gv } = tokens(size);
      const x = { values: logp, oldValues: oldLogp, returns: advantages, mask };
      return {
        bytes: n * 17, flops: n * 12,
        out: on((backend) => rk.valueLoss(x, { clip: 0.2, aggregation: 'token-mean', backend, out: gv })),
        alloc: on((backend) => rk.valueLoss(x, { clip: 0.2, aggregation: 'token-mean', backend })),
      };
    },
  },
  {
    family, op: 'p3oLoss(joint)', sizes: itemSizes(32, 4096, 65536),
    make(size): OpCase {
      const [P] = dims(size, 1, 'P, the number of pairs, e.g. 4096');
      const v = (s: number) => rk.tensor(randn(P, s, 0.3), [P]);
      const px = { logp1: v(5), logp2: v(6), oldLogp1: v(7), oldLogp2: v(8), rewards1: v(9), rewards2: v(10) };
      const pg = { gradLogp1: rk.zeros([P], 'f32'), gradLogp2: rk.zeros([P], 'f32') };
      return {
        bytes: P * 32, flops: P * (15 + TX),
        out: on((backend) => rk.p3oLoss(px, { variant: 'joint', backend, out: pg })),
        alloc: on((backend) => rk.p3oLoss(px, { variant: 'joint', backend })),
      };
    },
  },
];
