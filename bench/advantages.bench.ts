/**
 * Benchmarks of the advantages family (SPEC §3): gae, discountedReturns and whiten over [B,T]
 * tokens (cache-resident 64×8192 and DRAM-resident B×8192), groupAdvantages over G groups of K
 * (K = 8, and K = 64 for grpo), ensembleRewards over E = 4 models, winRateRewards over [G,K,K].
 * bytes: inputs read once (mask: u8) and outputs written once. FLOPs per token: gae δ = r + γV' − V
 * and A = δ + γλA', the select and the return (8); discountedReturns (3); whiten: the masked sums
 * of x and x² and (x − μ)/σ (6). Per item: grpo mean, variance and scaling (5), rloo (3), remax (1),
 * ensemble mean/min (1 per score), uwo (4 per score), win rate (2 per preference).
 */
import * as rk from '../ts/index.js';
import { dims, on, groupSizes, lastOnly, paddedMask, randn, tokenSizes, type OpCase, type OpSpec } from './harness.js';

const family = 'advantages';

const tokens = lastOnly((size: string) => {
  const [B, T] = dims(size, 2, 'BxT, e.g. 64x8192');
  const n = B * T;
  return {
    B, T, n,
    rewards: rk.tensor(randn(n, 11, 0.5), [B, T]),
    values: rk.tensor(randn(n, 12, 1), [B, T]),
    mask: rk.tensor(paddedMask(B, T), [B, T]),
    lastValues: rk.tensor(randn(B, 13), [B]),
    gaeOut: { advantages: rk.zeros([B, T], 'f32'), returns: rk.zeros([B, T], 'f32') },
    ret: { returns: rk.zeros([B, T], 'f32') },
    y: { y: rk.zeros([B, T], 'f32') },
  };
});

const groups = lastOnly((size: string) => {
  const [G, K] = dims(size, 2, 'GxK, e.g. 8192x8');
  const n = G * K;
  return {
    G, K, n,
    scores: rk.tensor(randn(n, 21), [n]),
    baselines: rk.tensor(randn(n, 22), [n]),
    adv: { advantages: rk.zeros([n], 'f32') },
  };
});

const groupOp = (method: 'grpo' | 'rloo' | 'remax', K: number, flops: number): OpSpec => ({
  family, op: `groupAdvantages(${method})`, sizes: groupSizes(K * (method === 'remax' ? 12 : 8), K, 65536 / K),
  make(size): OpCase {
    const { n, K: k, scores, baselines, adv } = groups(size);
    const x = method === 'remax' ? { scores, baselines } : { scores };
    return {
      bytes: n * (method === 'remax' ? 12 : 8), flops: n * flops,
      out: on((backend) => rk.groupAdvantages(x, { groupSize: k, method, backend, out: adv })),
      alloc: on((backend) => rk.groupAdvantages(x, { groupSize: k, method, backend })),
    };
  },
});

export const ops: OpSpec[] = [
  {
    family, op: 'gae', sizes: tokenSizes(17),
    make(size): OpCase {
      const { B, n, rewards, values, mask, lastValues, gaeOut } = tokens(size);
      const x = { rewards, values, mask, lastValues };
      return {
        bytes: n * 17 + B * 4, flops: n * 8,
        out: on((backend) => rk.gae(x, { gamma: 0.99, lambda: 0.95, backend, out: gaeOut })),
        alloc: on((backend) => rk.gae(x, { gamma: 0.99, lambda: 0.95, backend })),
      };
    },
  },
  {
    family, op: 'discountedReturns', sizes: tokenSizes(9),
    make(size): OpCase {
      const { n, rewards, mask, ret } = tokens(size);
      return {
        bytes: n * 9, flops: n * 3,
        out: on((backend) => rk.discountedReturns({ rewards, mask }, { gamma: 0.99, backend, out: ret })),
        alloc: on((backend) => rk.discountedReturns({ rewards, mask }, { gamma: 0.99, backend })),
      };
    },
  },
  {
    family, op: 'whiten', sizes: tokenSizes(9),
    make(size): OpCase {
      const { n, values, mask, y } = tokens(size);
      return {
        bytes: n * 9, flops: n * 6,
        note: 'the statistics need every token before the first output: x and the mask are read twice',
        out: on((backend) => rk.whiten({ x: values, mask }, { backend, out: y })),
        alloc: on((backend) => rk.whiten({ x: values, mask }, { backend })),
      };
    },
  },
  groupOp('grpo', 8, 5),
  groupOp('rloo', 8, 3),
  groupOp('remax', 8, 1),
  { ...groupOp('grpo', 64, 5), op: 'groupAdvantages(grpo, K=64)' },
  ...(['mean', 'min', 'uwo'] as const).map(
    (method): OpSpec => ({
      family, op: `ensembleRewards(${method})`,
      sizes: (llc, dram) => {
        let B = 65536;
        while (B > 1 && 20 * B > llc / 2) B /= 2;
        return { cache: `4x${B}`, dram: `4x${Math.ceil(dram / 20 / 65536) * 65536}` };
      },
      make(size): OpCase {
        const [E, B] = dims(size, 2, 'ExB, e.g. 4x65536');
        const scores = rk.tensor(randn(E * B, 31), [E, B]);
        const rw = { rewards: rk.zeros([B], 'f32') };
        return {
          bytes: (E + 1) * B * 4, flops: E * B * (method === 'uwo' ? 4 : 1),
          out: on((backend) => rk.ensembleRewards({ scores }, { method, backend, out: rw })),
          alloc: on((backend) => rk.ensembleRewards({ scores }, { method, backend })),
        };
      },
    }),
  ),
  {
    family, op: 'winRateRewards', sizes: groupSizes(8 * 8 * 4 + 8 * 4, '8x8', 4096),
    make(size): OpCase {
      const [G, K, K2] = dims(size, 3, 'GxKxK, e.g. 4096x8x8');
      if (K !== K2) throw new RangeError(`size '${size}': expected GxKxK`);
      const preferences = rk.tensor(randn(G * K * K, 41), [G, K, K]);
      const rw = { rewards: rk.zeros([G * K], 'f32') };
      return {
        bytes: (G * K * K + G * K) * 4, flops: 2 * G * K * K,
        out: on((backend) => rk.winRateRewards({ preferences }, { backend, out: rw })),
        alloc: on((backend) => rk.winRateRewards({ preferences }, { backend })),
      };
    },
  },
];
