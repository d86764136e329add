/**
 * Benchmarks of the preference family (SPEC §4): preferenceLoss (dpo, ipo, orpo) over B pairs
 * (cache-resident 65536, DRAM-resident, and B = 64 for the per-call overhead), listwiseLoss and
 * apoReference over [B,K], and fusedPreferenceLoss over [2B,T,V] logits (f32 and bf16) next to
 * the unfused pair logprobs + logprobsBackward on the same logits.
 * bytes: inputs read once, outputs written once (preferenceLoss: 4 inputs, 6 outputs per pair).
 * FLOPs per pair: dpo: margin (5), softplus and σ for the loss and gradients (3 transcendentals),
 * rewards (6); ipo: margin and square (12); orpo: two log1p(−e^x), the odds ratio, its σ and the
 * NLL term (5 transcendentals + 14). listwise: per (list, i, j) pair ~ one σ or exp. fused: the
 * log-sum-exp (20) and the gradient (19) per logit.
 */
import * as rk from '../ts/index.js';
import {
  dims,
  on,
  mapInPlace,
  dtypeBytes,
  itemSizes,
  lastOnly,
  logitsOf,
  randn,
  roundUp,
  TRANSCENDENTAL_FLOPS as TX,
  type OpCase,
  type OpSpec,
} from './harness.js';

const family = 'preference';

const pairs = lastOnly((size: string) => {
  const [B] = dims(size, 1, 'B, the number of pairs, e.g. 65536');
  const t = (seed: number, shift = -20) => rk.tensor(mapInPlace(randn(B, seed, 5), (x) => x + shift), [B]);
  return {
    B,
    inp: { policyChosen: t(1), policyRejected: t(2), refChosen: t(3), refRejected: t(4) },
    avg: {
      policyChosen: rk.tensor(mapInPlace(randn(B, 5, 0.3), (x) => -0.1 - Math.abs(x)), [B]),
      policyRejected: rk.tensor(mapInPlace(randn(B, 6, 0.3), (x) => -0.1 - Math.abs(x)), [B]),
      chosenNll: t(7, 5),
    },
    outs: Object.fromEntries(
      ['losses', 'gradPolicyChosen', 'gradPolicyRejected', 'chosenRewards', 'rejectedRewards', 'margins', 'gradChosenNll'].map((k) => [k, rk.zeros([B], 'f32')]),
    ),
  };
});

const prefOp = (type: 'dpo' | 'ipo' | 'orpo', flops: number): OpSpec => ({
  family, op: `preferenceLoss(${type})`, sizes: itemSizes(40, 65536, 65536, ['64']),
  make(size): OpCase {
    const { B, inp, avg, outs } = pairs(size);
    const x = type === 'orpo' ? avg : inp;
    return {
      bytes: B * 40, flops: B * flops,
      note: B <= 64 ? 'per-call overhead (validation, dispatch, N-API, the scalar results)' : undefined,
      out: on((backend) => rk.preferenceLoss(x, { type, beta: 0.1, backend, out: outs })),
      alloc: on((backend) => rk.preferenceLoss(x, { type, beta: 0.1, backend })),
    };
  },
});

const lists = lastOnly((size: string) => {
  const [B, K] = dims(size, 2, 'BxK, e.g. 4096x8');
  const n = B * K;
  return {
    B, K, n,
    policy: rk.tensor(mapInPlace(randn(n, 8, 5), (x) => x - 30), [B, K]),
    ref: rk.tensor(mapInPlace(randn(n, 9, 5), (x) => x - 30), [B, K]),
    labels: rk.tensor(mapInPlace(new Float32Array(n), (_, i) => (i * 7) % 5), [B, K]),
    lo: { losses: rk.zeros([B], 'f32'), gradPolicy: rk.zeros([B, K], 'f32') },
    ro: { reference: rk.zeros([B, K], 'f32') },
  };
});
const listSizes = (bytesPerRow: number, dramSize = true) => (llc: number, dram: number) => {
  let B = 4096;
  while (B > 1 && B * bytesPerRow > llc / 2) B /= 2;
  // listwiseLoss is compute-bound (K² σ/exp terms per list, ~1 s per call at a DRAM size): a larger
  // cache-resident batch instead
  return dramSize ? { cache: `${B}x8`, dram: `${roundUp(dram / bytesPerRow, 4096)}x8` } : { cache: `${B}x8`, other: ['65536x8'] };
};

const fused = lastOnly((key: string) => {
  const [size, dt] = key.split('|') as [string, 'f32' | 'bf16'];
  const [R, T, V] = dims(size, 3, '2BxTxV, e.g. 4x512x32000');
  if (R % 2) throw new RangeError(`size '${size}': the first dimension (2B: chosen then rejected rows) must be even`);
  const N = R * T;
  const gradLogits = rk.zeros([R, T, V], 'f32');
  (gradLogits.data as Float32Array).fill(1); // touch the pages now: the first case must not pay for them
  return {
    R, T, V, N, es: dtypeBytes(dt),
    logits: rk.tensor(logitsOf(randn(N * V, 11, 2), dt), [R, T, V], dt),
    labels: rk.tensor(Int32Array.from({ length: N }, (_, i) => (i * 7919) % V), [R, T]),
    mask: rk.tensor(new Uint8Array(N).fill(1), [R, T]),
    refLogp: rk.tensor(mapInPlace(randn(R, 12, 10), (x) => x - 5000), [R]),
    gradLogits,
    lpOut: { logp: rk.zeros([R, T], 'f32'), lse: rk.zeros([R, T], 'f32') },
    gradLogp: rk.tensor(new Float32Array(N).fill(0.01), [R, T]),
  };
});
const fusedSizes = (llc: number, dram: number) => {
  const V = 32000, T = 512;
  let t = 64;
  while (t > 1 && 2 * t * V * 8 > llc / 2) t /= 2;
  const R = Math.max(2, 2 * Math.ceil(dram / (2 * T * V * 8)));
  return { cache: `2x${t}x${V}`, dram: `${R}x${T}x${V}` };
};

export const ops: OpSpec[] = [
  prefOp('dpo', 11 + 3 * TX),
  prefOp('ipo', 12),
  prefOp('orpo', 14 + 5 * TX),
  ...(['lipo', 'pro', 'pl'] as const).map(
    (type): OpSpec => ({
      family, op: `listwiseLoss(${type})`, sizes: listSizes(8 * 16 + 4, false),
      make(size): OpCase {
        const { B, K, n, policy, ref, labels, lo } = lists(size);
        return {
          bytes: n * 16 + B * 4, flops: B * K * K * (type === 'lipo' ? 10 + 2 * TX : 4 + TX),
          out: on((backend) => rk.listwiseLoss({ policy, ref, labels }, { type, beta: 0.5, sftWeight: 0.1, backend, out: lo })),
          alloc: on((backend) => rk.listwiseLoss({ policy, ref, labels }, { type, beta: 0.5, sftWeight: 0.1, backend })),
        };
      },
    }),
  ),
  {
    family, op: 'apoReference', sizes: listSizes(8 * 12),
    make(size): OpCase {
      const { n, policy: current, ref: previous, ro } = lists(size);
      return {
        bytes: n * 12, flops: n * 3,
        out: on((backend) => rk.apoReference({ current, previous }, { alpha: 0.5, backend, out: ro })),
        alloc: on((backend) => rk.apoReference({ current, previous }, { alpha: 0.5, backend })),
      };
    },
  },
  {
    family, op: 'fusedPreferenceLoss(dpo)', dtypes: ['f32', 'bf16'], defaultDtypes: ['f32', 'bf16'], sizes: fusedSizes,
    make(size, dt): OpCase {
      const I = fused(`${size}|${dt}`);
      const { logits, labels, mask, refLogp, gradLogits } = I;
      return {
        bytes: I.N * I.V * (I.es + 4) + I.N * 5, flops: I.N * I.V * (4 + TX + 3 + TX),
        note: 'the logits are read twice (the loss needs every row before the first gradient)',
        out: on((backend) => rk.fusedPreferenceLoss({ logits, labels, mask, refLogp }, { type: 'dpo', beta: 0.1, backend, out: { gradLogits } }), false),
        alloc: on((backend) => rk.fusedPreferenceLoss({ logits, labels, mask, refLogp }, { type: 'dpo', beta: 0.1, backend }), false),
      };
    },
  },
  {
    family, op: 'fusedPreferenceLoss(unfused pair)', dtypes: ['f32', 'bf16'], defaultDtypes: ['f32', 'bf16'], sizes: fusedSizes,
    make(size, dt): OpCase {
      const I = fused(`${size}|${dt}`);
      const { logits, labels, gradLogits, lpOut, gradLogp } = I;
      return {
        bytes: I.N * I.V * (I.es + 4) + I.N * 5, flops: I.N * I.V * (4 + TX + 3 + TX),
        note: 'logprobs + logprobsBackward on the same logits (the fused op targets ≤ 1.3× this)',
        out: {
          cpu: () => {
            const lp = rk.logprobs({ logits, labels }, { backend: 'cpu', out: lpOut });
            rk.logprobsBackward({ logits, labels, gradLogp, lse: lp.lse }, { backend: 'cpu', out: { gradLogits } });
          },
        },
      };
    },
  },
];
