/**
 * PPO losses (SPEC §5) and Pairwise PPO.
 *
 * - `ppoPolicyLoss`: the clipped surrogate of "Proximal Policy Optimization Algorithms" (Schulman et
 *   al. 2017, eq. 7) with separate low/high clip ranges ("DAPO", clip-higher), dual-clip ("Mastering
 *   Complex Control in MOBA Games with Deep Reinforcement Learning", Ye et al. 2020, eq. 5), an
 *   in-loss KL penalty with any of Schulman's estimators, and verl/OpenRLHF's aggregation modes.
 * - `valueLoss`: the clipped value loss (PPO2 baselines; "Secrets of RLHF in Large Language Models
 *   Part I", eq. 8).
 * - `p3oLoss`: "Pairwise Proximal Policy Optimization: Harnessing Relative Feedback for LLM
 *   Alignment" (Wu et al. 2023), the separate-clip (V1) and joint-ratio (V2) objectives.
 *
 * Every gradient is of the returned (aggregated) loss. Pass `normalizer` (the global token count,
 * or row count for the seq-* modes) to make micro-batch losses and gradients add up exactly to the
 * whole batch's.
 */
import { defineOp, opNative, type Gen } from '../async.js';
import type { NativeCore } from '../native.js';
import * as ref from '../reference/ppo.js';
import type { Tensor, AnyTensor, TensorLike } from '../tensor.js';
import { f32Data, f32DataOpt, maskData, OpArgs } from '../validate.js';
import { KL_ESTIMATORS, type KlEstimator } from './rewards.js';
import type { CommonOptions } from '../validate.js';

type F32 = Float32Array;
type F64 = Float64Array;
type MaskArr = Uint8Array | Float32Array | null;
interface PpoNative extends NativeCore {
  ppoPolicyLoss(
    B: number, T: number, logp: F32, oldLogp: F32, adv: F32, refLogp: F32 | null, mask: MaskArr, grad: F32,
    clipLow: number, clipHigh: number, dualClip: number, klCoef: number, klEst: number, agg: number, normalizer: number,
    cuda: boolean, result: F64,
  ): void;
  valueLoss(
    B: number, T: number, values: F32, oldValues: F32, returns: F32, mask: MaskArr, grad: F32,
    clip: number, agg: number, normalizer: number, cuda: boolean, result: F64,
  ): void;
  p3oLoss(
    B: number, l1: F32, l2: F32, o1: F32, o2: F32, r1: F32, r2: F32, g1: F32, g2: F32,
    variant: number, clipLow: number, clipHigh: number, normalizer: number, cuda: boolean, result: F64,
  ): void;
}
const nat = () => opNative<PpoNative>();

export type Aggregation = ref.Aggregation;
export const AGGREGATIONS: readonly Aggregation[] = ['token-mean', 'seq-mean-token-sum', 'seq-mean-token-mean'];
const AGG_CODE: Record<Aggregation, number> = { 'token-mean': 0, 'seq-mean-token-sum': 1, 'seq-mean-token-mean': 2 };
const EST_CODE: Record<KlEstimator, number> = { k1: 0, k2: 1, k3: 2, abs: 3 };
type Out<K extends string> = { out?: Partial<Record<K, AnyTensor>> };

export interface PpoPolicyLossInputs {
  logp: TensorLike;
  oldLogp: TensorLike;
  advantages: TensorLike;
  mask: TensorLike;
  /** needed when klCoef > 0 */
  refLogp?: TensorLike;
}
export interface PpoPolicyLossOptions extends CommonOptions, Out<'gradLogp'> {
  /** ρ is clipped below at 1 − clipLow (in [0, 1]); default 0.2 */
  clipLow?: number;
  /** ρ is clipped above at 1 + clipHigh (≥ 0); default clipLow */
  clipHigh?: number;
  /** dual-clip constant c > 1: for A < 0, ℓ = min(ℓ, −cA) */
  dualClip?: number;
  /** weight of the in-loss KL(π‖π_ref) term (≥ 0); default 0 */
  klCoef?: number;
  /** estimator of the in-loss KL, on d = logp − refLogp; default 'k3' */
  klEstimator?: KlEstimator;
  /** default 'token-mean' */
  aggregation?: Aggregation;
  /** replaces N (token-mean) or S (seq-*) (> 0): the global count, so micro-batches add up */
  normalizer?: number;
}
export interface PpoPolicyLossResult {
  loss: number;
  gradLogp: Tensor<'f32'>;
  clipFraction: number;
  approxKl: number;
}

/**
 * PPO clipped policy loss. `ρ = exp(logp − oldLogp)`, `ℓ = max(−Aρ, −A·clip(ρ, 1−clipLow, 1+clipHigh))`,
 * dual-clip `ℓ = min(ℓ, −cA)` for `A < 0`, plus `klCoef·kl(logp, refLogp)`, aggregated per
 * `aggregation`. `clipFraction`: fraction of counted tokens with `−A·clip(ρ) > −Aρ`; `approxKl`:
 * mean of `½(logp − oldLogp)²` over counted tokens. `gradLogp = ∂loss/∂logp`.
 */
export const ppoPolicyLoss = defineOp('ppoPolicyLoss', function* ppoPolicyLoss(inputs: PpoPolicyLossInputs, options?: PpoPolicyLossOptions): Gen<PpoPolicyLossResult> {
  const a = new OpArgs('ppoPolicyLoss', inputs, options);
  const logp = a.float('logp', { rank: 2 });
  const [B, T] = logp.shape as [number, number];
  const oldLogp = a.float('oldLogp', { shape: logp.shape });
  const advantages = a.float('advantages', { shape: logp.shape });
  const mask = a.mask('mask', { shape: logp.shape });
  const refIn = a.float('refLogp', { optional: true, shape: logp.shape });
  const clipLow = a.num('clipLow', { default: 0.2, min: 0, max: 1 });
  const clipHigh = a.num('clipHigh', { default: clipLow, min: 0 });
  const dualClip = a.num('dualClip', { optional: true, gt: 1 });
  const klCoef = a.num('klCoef', { default: 0, min: 0 });
  const klEstimator = a.oneOf('klEstimator', KL_ESTIMATORS, 'k3');
  const aggregation = a.oneOf('aggregation', AGGREGATIONS, 'token-mean');
  const normalizer = a.num('normalizer', { optional: true, gt: 0 });
  if (klCoef > 0 && !refIn) a.typeError(`missing input 'refLogp' (required when klCoef > 0)`);
  const refLogp = klCoef > 0 ? refIn : undefined;
  const backend = a.backend();
  const gradLogp = a.out('gradLogp', 'f32', logp.shape);
  // nothing counted (B·T = 0): every result is 0, without B-sized scratch (host inputs; the
  // kernels do the same for device ones, whose scalars are DeviceScalars)
  if (B * T === 0 && a.device === undefined) return { loss: 0, gradLogp, clipFraction: 0, approxKl: 0 };
  if (backend === 'js') {
    const r = ref.ppoPolicyLoss(logp.data, oldLogp.data, advantages.data, refLogp?.data, mask.data, gradLogp.data, B, T, {
      clipLow, clipHigh, dualClip, klCoef, klEstimator: refLogp ? klEstimator : undefined, aggregation, normalizer,
    });
    return { ...r, gradLogp };
  }
  const res = a.scalars(3);
  yield nat().ppoPolicyLoss(B, T, f32Data(logp), f32Data(oldLogp), f32Data(advantages), f32DataOpt(refLogp), maskData(mask), gradLogp.data,
    clipLow, clipHigh, dualClip ?? NaN, klCoef, refLogp ? EST_CODE[klEstimator] : -1, AGG_CODE[aggregation], normalizer ?? NaN,
    backend === 'cuda', res.data);
  return { loss: res.get(0), gradLogp, clipFraction: res.get(1), approxKl: res.get(2) };
});

export interface ValueLossInputs { values: TensorLike; oldValues: TensorLike; returns: TensorLike; mask: TensorLike }
export interface ValueLossOptions extends CommonOptions, Out<'gradValues'> {
  /** V is clipped to [Vold − clip, Vold + clip] (≥ 0, Infinity = no clipping); default 0.2 */
  clip?: number;
  /** required: 'token-mean' | 'seq-mean-token-sum' | 'seq-mean-token-mean' */
  aggregation: Aggregation;
  normalizer?: number;
}
export interface ValueLossResult { loss: number; gradValues: Tensor<'f32'>; clipFraction: number }

/**
 * Clipped value loss `½·max((V−R)², (clip(V, Vold−c, Vold+c) − R)²)`, aggregated per `aggregation`;
 * `clipFraction`: fraction of counted tokens where the clipped term is strictly the larger one.
 */
export const valueLoss = defineOp('valueLoss', function* valueLoss(inputs: ValueLossInputs, options: ValueLossOptions): Gen<ValueLossResult> {
  const a = new OpArgs('valueLoss', inputs, options);
  const values = a.float('values', { rank: 2 });
  const [B, T] = values.shape as [number, number];
  const oldValues = a.float('oldValues', { shape: values.shape });
  const returns = a.float('returns', { shape: values.shape });
  const mask = a.mask('mask', { shape: values.shape });
  const clip = a.num('clip', { default: 0.2, min: 0, infinite: true });
  const aggregation = a.oneOf('aggregation', AGGREGATIONS);
  const normalizer = a.num('normalizer', { optional: true, gt: 0 });
  const backend = a.backend();
  const gradValues = a.out('gradValues', 'f32', values.shape);
  if (B * T === 0 && a.device === undefined) return { loss: 0, gradValues, clipFraction: 0 }; // (as in ppoPolicyLoss)
  if (backend === 'js') {
    const r = ref.valueLoss(values.data, oldValues.data, returns.data, mask.data, gradValues.data, B, T, clip, aggregation, normalizer);
    return { ...r, gradValues };
  }
  const res = a.scalars(2);
  yield nat().valueLoss(B, T, f32Data(values), f32Data(oldValues), f32Data(returns), maskData(mask), gradValues.data,
    clip, AGG_CODE[aggregation], normalizer ?? NaN, backend === 'cuda', res.data);
  return { loss: res.get(0), gradValues, clipFraction: res.get(1) };
});

export type P3oVariant = 'separate' | 'joint';
export const P3O_VARIANTS: readonly P3oVariant[] = ['separate', 'joint'];
export interface P3oLossInputs {
  /** [B] summed log-probs of response 1 / 2 under the current policy */
  logp1: TensorLike;
  logp2: TensorLike;
  /** [B] the same under the behaviour (old) policy */
  oldLogp1: TensorLike;
  oldLogp2: TensorLike;
  /** [B] sequence rewards of the two responses */
  rewards1: TensorLike;
  rewards2: TensorLike;
}
export interface P3oLossOptions extends CommonOptions, Out<'gradLogp1' | 'gradLogp2'> {
  /** 'separate' (V1, default) or 'joint' (V2) */
  variant?: P3oVariant;
  /** ratios are clipped to [1 − clip, 1 + clipHigh] (clip in [0, 1]); default 0.2 */
  clip?: number;
  /** default clip */
  clipHigh?: number;
  /** replaces B as the divisor (> 0): the global pair count, so micro-batches add up */
  normalizer?: number;
}
export interface P3oLossResult { loss: number; gradLogp1: Tensor<'f32'>; gradLogp2: Tensor<'f32'>; clipFraction: number }

/**
 * Pairwise PPO (Wu et al. 2023). `A = (r1 − r2)/2`, `ρi = exp(logp_i − oldLogp_i)`.
 * V1 ('separate'): `ℓ = max(−Aρ1, −A·clip(ρ1)) + max(Aρ2, A·clip(ρ2))`;
 * V2 ('joint'): `ℓ = max(−Aρ, −A·clip(ρ))` with `ρ = ρ1/ρ2`; `loss = Σ_b ℓ_b / (normalizer ?? B)`.
 * `clipFraction`: fraction of clipped ratios (2B of them for V1, B for V2).
 */
export const p3oLoss = defineOp('p3oLoss', function* p3oLoss(inputs: P3oLossInputs, options?: P3oLossOptions): Gen<P3oLossResult> {
  const a = new OpArgs('p3oLoss', inputs, options);
  const logp1 = a.float('logp1', { rank: 1 });
  const B = logp1.shape[0];
  const [logp2, oldLogp1, oldLogp2, rewards1, rewards2] = ['logp2', 'oldLogp1', 'oldLogp2', 'rewards1', 'rewards2'].map((n) =>
    a.float(n, { shape: logp1.shape }));
  const variant = a.oneOf('variant', P3O_VARIANTS, 'separate');
  const clipLow = a.num('clip', { default: 0.2, min: 0, max: 1 });
  const clipHigh = a.num('clipHigh', { default: clipLow, min: 0 });
  const normalizer = a.num('normalizer', { optional: true, gt: 0 });
  const backend = a.backend();
  const gradLogp1 = a.out('gradLogp1', 'f32', [B]);
  const gradLogp2 = a.out('gradLogp2', 'f32', [B]);
  if (backend === 'js') {
    const r = ref.p3oLoss(logp1.data, logp2.data, oldLogp1.data, oldLogp2.data, rewards1.data, rewards2.data,
      gradLogp1.data, gradLogp2.data, B, variant, clipLow, clipHigh, normalizer);
    return { loss: r.loss, gradLogp1, gradLogp2, clipFraction: r.clipFraction };
  }
  const res = a.scalars(2);
  yield nat().p3oLoss(B, f32Data(logp1), f32Data(logp2), f32Data(oldLogp1), f32Data(oldLogp2), f32Data(rewards1), f32Data(rewards2),
    gradLogp1.data, gradLogp2.data, variant === 'joint' ? 1 : 0, clipLow, clipHigh, normalizer ?? NaN, backend === 'cuda', res.data);
  return { loss: res.get(0), gradLogp1, gradLogp2, clipFraction: res.get(1) };
});
