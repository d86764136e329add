/**
 * Benchmarks of the token log-prob family (SPEC §1): logprobs (f32/bf16/f16, ± entropy),
 * logprobsBackward, vocabKl, vocabKlBackward and sequenceLogprobs, at a cache-resident and a
 * DRAM-resident size (V = 32000; the DRAM size is at least the 4096×32000, or 2048×32000
 * for the two-tensor vocabKl), plus few long rows (V split within rows) and many short rows.
 *
 * bytes: the logits read once (both tensors for vocabKl), the gradient written once, labels and
 * the [N] outputs. FLOPs per logit: the online log-sum-exp is a max, a fused scale-and-subtract,
 * an exp and an add (20, with exp = TRANSCENDENTAL_FLOPS); the entropy adds an FMA (22); the
 * gradient is a subtract, an exp and a multiply (19); vocabKl is two log-sum-exps plus
 * Σ p·(a − b) (43); its backward adds p, q and the product (25 more).
 */
import * as rk from '../ts/index.js';
import { peerLogSoftmaxGather } from './peers.js';
import {
  dims,
  on,
  dtypeBytes,
  lastOnly,
  logitsOf,
  paddedMask,
  randn,
  tokenSizes,
  TRANSCENDENTAL_FLOPS as TX,
  vocabSizes,
  type Dtype,
  type OpCase,
  type OpSpec,
} from './harness.js';

const family = 'logprobs';
const LSE = 4 + TX; // max, fmsub (2), exp, add

/** Inputs of one [N,V] size and dtype (kept until the next size or dtype). */
const lpInputs = lastOnly((key: string) => {
  const [size, dt] = key.split('|') as [string, Dtype];
  const [N, V] = dims(size, 2, 'NxV, e.g. 4096x32000');
  const n = N * V;
  const x = randn(n, 11, 3);
  const logits = rk.tensor(logitsOf(x, dt), [N, V], dt);
  const labels = rk.tensor(Int32Array.from({ length: N }, (_, i) => (i * 7919) % V), [N]);
  const outs = { logp: rk.zeros([N], 'f32'), lse: rk.zeros([N], 'f32'), entropy: rk.zeros([N], 'f32') };
  rk.logprobs({ logits, labels }, { out: outs }); // lse for the backward
  return {
    N, V, n, es: dtypeBytes(dt), logits, labels, outs, raw: dt === 'f32' ? x : null,
    grad: { gradLogits: rk.zeros([N, V], 'f32') },
    gradLogp: rk.tensor(randn(N, 12), [N]),
    gradEntropy: rk.tensor(randn(N, 13), [N]),
  };
});

const klInputs = lastOnly((key: string) => {
  const [size, dt] = key.split('|') as [string, Dtype];
  const [N, V] = dims(size, 2, 'NxV, e.g. 2048x32000');
  const n = N * V;
  return {
    N, V, n, es: dtypeBytes(dt),
    logits: rk.tensor(logitsOf(randn(n, 31, 3), dt), [N, V], dt),
    refLogits: rk.tensor(logitsOf(randn(n, 32, 3), dt), [N, V], dt),
    gradKl: rk.tensor(randn(N, 33), [N]),
    kl: { kl: rk.zeros([N], 'f32') },
    grad: { gradLogits: rk.zeros([N, V], 'f32') },
  };
});

const lpSizes = (bpl: number) => {
  const base = vocabSizes(bpl, 4096);
  return (llc: number, dram: number) => ({ ...base(llc, dram), other: ['4x152064', '65536x128'] });
};

export const ops: OpSpec[] = [
  {
    family, op: 'logprobs', dtypes: ['f32', 'bf16', 'f16'], defaultDtypes: ['f32', 'bf16'], sizes: lpSizes(4),
    make(size, dt): OpCase {
      const I = lpInputs(`${size}|${dt}`);
      const { logits, labels, outs } = I;
      return {
        bytes: I.n * I.es + I.N * 12, flops: I.n * LSE,
        out: on((backend) => rk.logprobs({ logits, labels }, { backend, out: { logp: outs.logp, lse: outs.lse } })),
        alloc: on((backend) => rk.logprobs({ logits, labels }, { backend })),
        peers: I.raw ? { ort: () => peerLogSoftmaxGather(I.raw!, I.labels.data as Int32Array, I.N, I.V) } : undefined,
      };
    },
  },
  {
    family, op: 'logprobs+entropy', sizes: vocabSizes(4, 4096),
    make(size, dt): OpCase {
      const I = lpInputs(`${size}|${dt}`);
      const { logits, labels, outs } = I;
      return {
        bytes: I.n * I.es + I.N * 16, flops: I.n * (LSE + 2),
        out: on((backend) => rk.logprobs({ logits, labels }, { entropy: true, backend, out: outs }), false),
        alloc: on((backend) => rk.logprobs({ logits, labels }, { entropy: true, backend }), false),
      };
    },
  },
  {
    family, op: 'logprobsBackward(lse)', dtypes: ['f32', 'bf16', 'f16'], defaultDtypes: ['f32', 'bf16'], sizes: vocabSizes(8, 4096),
    make(size, dt): OpCase {
      const I = lpInputs(`${size}|${dt}`);
      const { logits, labels, gradLogp } = I, lse = I.outs.lse;
      return {
        bytes: I.n * (I.es + 4) + I.N * 12, flops: I.n * (3 + TX),
        out: on((backend) => rk.logprobsBackward({ logits, labels, gradLogp, lse }, { backend, out: I.grad }), dt === 'f32'),
        alloc: on((backend) => rk.logprobsBackward({ logits, labels, gradLogp, lse }, { backend }), false),
      };
    },
  },
  {
    family, op: 'logprobsBackward(entropy)', sizes: vocabSizes(8, 4096),
    make(size, dt): OpCase {
      const I = lpInputs(`${size}|${dt}`);
      const { logits, labels, gradLogp, gradEntropy } = I;
      return {
        bytes: I.n * (I.es + 4) + I.N * 16, flops: I.n * (LSE + 2 + 6 + TX),
        note: 'recomputes lse and the entropy: the logits are read twice',
        out: on((backend) => rk.logprobsBackward({ logits, labels, gradLogp, gradEntropy }, { backend, out: I.grad }), false),
      };
    },
  },
  {
    family, op: 'logprobs+logprobsBackward', sizes: vocabSizes(8, 4096),
    make(size, dt): OpCase {
      const I = lpInputs(`${size}|${dt}`);
      const { logits, labels, gradLogp, outs } = I;
      return {
        bytes: I.n * (I.es + 4) + I.N * 16, flops: I.n * (LSE + 3 + TX),
        note: 'forward then backward with its lse (the logits are read twice): compare the logprobs row (target ≤ 0.55× of this)',
        out: on((backend) => {
          const o = rk.logprobs({ logits, labels }, { backend, out: { logp: outs.logp, lse: outs.lse } });
          return rk.logprobsBackward({ logits, labels, gradLogp, lse: o.lse }, { backend, out: I.grad });
        }, false),
      };
    },
  },
  ...(['reverse', 'forward'] as const).map(
    (direction): OpSpec => ({
      family, op: `vocabKl(${direction})`, dtypes: ['f32', 'bf16', 'f16'], sizes: vocabSizes(8, 2048),
      make(size, dt): OpCase {
        const I = klInputs(`${size}|${dt}`);
        const { logits, refLogits } = I;
        return {
          bytes: 2 * I.n * I.es + I.N * 4, flops: I.n * (2 * LSE + 3),
          out: on((backend) => rk.vocabKl({ logits, refLogits }, { direction, backend, out: I.kl }), direction === 'reverse' && dt === 'f32'),
          alloc: on((backend) => rk.vocabKl({ logits, refLogits }, { direction, backend }), false),
        };
      },
    }),
  ),
  {
    family, op: 'vocabKlBackward(reverse)', dtypes: ['f32', 'bf16', 'f16'], sizes: vocabSizes(12, 2048),
    make(size, dt): OpCase {
      const I = klInputs(`${size}|${dt}`);
      const { logits, refLogits, gradKl } = I;
      return {
        bytes: I.n * (2 * I.es + 4) + I.N * 8, flops: I.n * (2 * LSE + 3 + 9 + TX),
        note: 'two passes over both tensors (statistics, then the gradient)',
        out: on((backend) => rk.vocabKlBackward({ logits, refLogits, gradKl }, { backend, out: I.grad }), false),
        alloc: on((backend) => rk.vocabKlBackward({ logits, refLogits, gradKl }, { backend }), false),
      };
    },
  },
  {
    family, op: 'sequenceLogprobs', sizes: tokenSizes(5),
    make(size): OpCase {
      const [B, T] = dims(size, 2, 'BxT, e.g. 64x8192');
      const logp = rk.tensor(randn(B * T, 41, 1), [B, T]);
      const mask = rk.tensor(paddedMask(B, T), [B, T]);
      const o = { sum: rk.zeros([B], 'f32'), count: rk.zeros([B], 'i32') };
      return {
        bytes: B * T * 5 + B * 8, flops: 2 * B * T,
        out: on((backend) => rk.sequenceLogprobs({ logp, mask }, { backend, out: o })),
        alloc: on((backend) => rk.sequenceLogprobs({ logp, mask }, { backend })),
      };
    },
  },
];
