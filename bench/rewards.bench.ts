/**
 * Benchmarks of the reward family (SPEC §2): klPenalty (k3), tokenRewards, rtoRewards and
 * implicitRewards over [B,T] tokens, at a cache-resident size (64×8192 when it fits half the LLC)
 * and a DRAM-resident one (B×8192 moving ≥ 4× the LLC), plus implicitRewards at 1×64 (per-call
 * overhead). bytes: the [B,T] inputs read once (mask: u8), the output written once, [B] scores.
 * FLOPs per token: k3 = e^{−d} − 1 + d, clamp, select (7 + exp); tokenRewards (k1): d, ×coef,
 * select (3); rtoRewards: two differences, two scalings, clamp, select (8); implicitRewards:
 * d, ×β, select (3).
 */
import * as rk from '../ts/index.js';
import { dims, on, lastOnly, paddedMask, randn, tokenSizes, TRANSCENDENTAL_FLOPS as TX, type OpCase, type OpSpec } from './harness.js';

const family = 'rewards';

const inputs = lastOnly((size: string) => {
  const [B, T] = dims(size, 2, 'BxT, e.g. 64x8192');
  const n = B * T;
  return {
    B, T, n,
    logp: rk.tensor(randn(n, 1, 0.5), [B, T]),
    refLogp: rk.tensor(randn(n, 2, 0.5), [B, T]),
    dpoLogp: rk.tensor(randn(n, 3, 0.5), [B, T]),
    mask: rk.tensor(paddedMask(B, T), [B, T]),
    scores: rk.tensor(randn(B, 4), [B]),
    kl: { kl: rk.zeros([B, T], 'f32') },
    rw: { rewards: rk.zeros([B, T], 'f32') },
  };
});

export const ops: OpSpec[] = [
  {
    family, op: 'klPenalty(k3)', sizes: tokenSizes(13),
    make(size): OpCase {
      const { n, logp, refLogp, mask, kl } = inputs(size);
      return {
        bytes: n * 13, flops: n * (7 + TX),
        out: on((backend) => rk.klPenalty({ logp, refLogp, mask }, { estimator: 'k3', backend, out: kl })),
        alloc: on((backend) => rk.klPenalty({ logp, refLogp, mask }, { estimator: 'k3', backend })),
      };
    },
  },
  {
    family, op: 'tokenRewards', sizes: tokenSizes(13),
    make(size): OpCase {
      const { B, n, logp, refLogp, mask, scores, rw } = inputs(size);
      return {
        bytes: n * 13 + B * 4, flops: n * 3,
        out: on((backend) => rk.tokenRewards({ logp, refLogp, mask, scores }, { klCoef: 0.05, backend, out: rw })),
        alloc: on((backend) => rk.tokenRewards({ logp, refLogp, mask, scores }, { klCoef: 0.05, backend })),
      };
    },
  },
  {
    family, op: 'rtoRewards', sizes: tokenSizes(17),
    make(size): OpCase {
      const { B, n, logp, refLogp, dpoLogp, mask, scores, rw } = inputs(size);
      return {
        bytes: n * 17 + B * 4, flops: n * 8,
        out: on((backend) => rk.rtoRewards({ dpoLogp, refLogp, logp, mask, scores }, { beta1: 0.1, beta2: 0.05, backend, out: rw })),
        alloc: on((backend) => rk.rtoRewards({ dpoLogp, refLogp, logp, mask, scores }, { beta1: 0.1, beta2: 0.05, backend })),
      };
    },
  },
  {
    family, op: 'implicitRewards',
    sizes: (llc, dram) => ({ ...tokenSizes(13)(llc, dram), other: ['1x64'] }),
    make(size): OpCase {
      const { n, logp, refLogp, mask, rw } = inputs(size);
      return {
        bytes: n * 13, flops: n * 3,
        note: n <= 64 ? 'per-call overhead (validation, dispatch, N-API)' : undefined,
        out: on((backend) => rk.implicitRewards({ logp, refLogp, mask }, { beta: 0.1, backend, out: rw })),
        alloc: on((backend) => rk.implicitRewards({ logp, refLogp, mask }, { beta: 0.1, backend })),
      };
    },
  },
];
