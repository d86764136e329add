/**
 * KL penalties and token-wise rewards (SPEC §2).
 *
 * - `klPenalty`: Schulman's k1/k2/k3/abs estimators of KL(π‖π_ref) per token.
 * - `tokenRewards`: Secrets of RLHF I (PPO-max) eq. 19, as in TRL/OpenRLHF.
 * - `rtoRewards`: DPO Meets PPO (RTO) eq. 4.7.
 * - `implicitRewards`: From r to Q*, the per-token implicit reward.
 */
import { defineOp, opNative, type Gen } from '../async.js';
import type { NativeCore } from '../native.js';
import * as ref from '../reference/rewards.js';
import type { Tensor, AnyTensor, TensorLike } from '../tensor.js';
import { f32Data, f32DataOpt, maskData, OpArgs, type CommonOptions } from '../validate.js';

type F32 = Float32Array;
type MaskArr = Uint8Array | Float32Array | null;
interface RewardsNative extends NativeCore {
  klPenalty(B: number, T: number, logp: F32, refLogp: F32, mask: MaskArr, out: F32, est: number, clamp: number, cuda: boolean): void;
  tokenRewards(B: number, T: number, logp: F32, refLogp: F32, mask: MaskArr, scores: F32, out: F32, klCoef: number, est: number, scoreClip: number, cuda: boolean): void;
  rtoRewards(B: number, T: number, dpo: F32, refLogp: F32, logp: F32, mask: MaskArr, scores: F32 | null, out: F32, b1: number, b2: number, b3: number, dpoClip: number, cuda: boolean): void;
  implicitRewards(B: number, T: number, logp: F32, refLogp: F32, mask: MaskArr, out: F32, beta: number, cuda: boolean): void;
}
const nat = () => opNative<RewardsNative>();

export type KlEstimator = ref.KlEstimator;
export const KL_ESTIMATORS: readonly KlEstimator[] = ['k1', 'k2', 'k3', 'abs'];
const EST_CODE: Record<KlEstimator, number> = { k1: 0, k2: 1, k3: 2, abs: 3 };

type Out<K extends string> = { out?: Partial<Record<K, AnyTensor>> };

/** Reads logp [B,T] and the other [B,T] float inputs named in `same`. */
function tokens2d(a: OpArgs, first: string, same: string[]): { B: number; T: number; ts: Tensor[] } {
  const t0 = a.float(first, { rank: 2 });
  const [B, T] = t0.shape as [number, number];
  return { B, T, ts: [t0, ...same.map((n) => a.float(n, { shape: t0.shape }))] };
}

export interface KlPenaltyInputs { logp: TensorLike; refLogp: TensorLike; mask?: TensorLike }
export interface KlPenaltyOptions extends CommonOptions, Out<'kl'> {
  /** 'k1' (default) d, 'k2' d²/2, 'k3' e^{−d} − 1 + d, 'abs' |d|, with d = logp − refLogp */
  estimator?: KlEstimator;
  /** clamp the result to [−clamp, clamp] (≥ 0) */
  clamp?: number;
}

/** Per-token KL estimate `kl_t = k(logp_t − refLogp_t)`, 0 at masked positions. */
export const klPenalty = defineOp('klPenalty', function* klPenalty(inputs: KlPenaltyInputs, options?: KlPenaltyOptions): Gen<{ kl: Tensor<'f32'> }> {
  const a = new OpArgs('klPenalty', inputs, options);
  const { B, T, ts: [logp, refLogp] } = tokens2d(a, 'logp', ['refLogp']);
  const mask = a.mask('mask', { optional: true, shape: logp.shape });
  const estimator = a.oneOf('estimator', KL_ESTIMATORS, 'k1');
  const clamp = a.num('clamp', { optional: true, min: 0 });
  const backend = a.backend();
  const kl = a.out('kl', 'f32', logp.shape);
  if (backend === 'js') ref.klPenalty(logp.data, refLogp.data, mask?.data, kl.data, estimator, clamp);
  else yield nat().klPenalty(B, T, f32Data(logp), f32Data(refLogp), maskData(mask), kl.data, EST_CODE[estimator], clamp ?? NaN, backend === 'cuda');
  return { kl };
});

export interface TokenRewardsInputs { logp: TensorLike; refLogp: TensorLike; mask: TensorLike; scores: TensorLike }
export interface TokenRewardsOptions extends CommonOptions, Out<'rewards'> {
  klCoef: number;
  estimator?: KlEstimator;
  /** clip scores to [−scoreClip, scoreClip] (> 0) before adding them */
  scoreClip?: number;
}

/** `r_t = −klCoef·kl_t` on counted tokens, plus `clip(score_b)` at the row's last counted token. */
export const tokenRewards = defineOp('tokenRewards', function* tokenRewards(inputs: TokenRewardsInputs, options: TokenRewardsOptions): Gen<{ rewards: Tensor<'f32'> }> {
  const a = new OpArgs('tokenRewards', inputs, options);
  const { B, T, ts: [logp, refLogp] } = tokens2d(a, 'logp', ['refLogp']);
  const mask = a.mask('mask', { shape: logp.shape });
  const scores = a.float('scores', { shape: [B] });
  const klCoef = a.num('klCoef');
  const estimator = a.oneOf('estimator', KL_ESTIMATORS, 'k1');
  const scoreClip = a.num('scoreClip', { optional: true, gt: 0 });
  const backend = a.backend();
  const rewards = a.out('rewards', 'f32', logp.shape);
  if (backend === 'js') ref.tokenRewards(logp.data, refLogp.data, mask.data, scores.data, rewards.data, B, T, klCoef, estimator, scoreClip);
  else
    yield nat().tokenRewards(B, T, f32Data(logp), f32Data(refLogp), maskData(mask), f32Data(scores), rewards.data, klCoef,
      EST_CODE[estimator], scoreClip ?? NaN, backend === 'cuda');
  return { rewards };
});

export interface RtoRewardsInputs { dpoLogp: TensorLike; refLogp: TensorLike; logp: TensorLike; mask: TensorLike; scores?: TensorLike }
export interface RtoRewardsOptions extends CommonOptions, Out<'rewards'> {
  beta1: number;
  beta2: number;
  beta3?: number;
  /** clamp the whole DPO term β1·(dpoLogp − refLogp) to [−dpoClip, dpoClip] (> 0), as in the authors' code */
  dpoClip?: number;
}

/** RTO eq. 4.7: `r_t = β1·(dpoLogp_t − refLogp_t) − β2·(logp_t − refLogp_t)`, plus `β3·score_b` at the last counted token. */
export const rtoRewards = defineOp('rtoRewards', function* rtoRewards(inputs: RtoRewardsInputs, options: RtoRewardsOptions): Gen<{ rewards: Tensor<'f32'> }> {
  const a = new OpArgs('rtoRewards', inputs, options);
  const { B, T, ts: [dpoLogp, refLogp, logp] } = tokens2d(a, 'dpoLogp', ['refLogp', 'logp']);
  const mask = a.mask('mask', { shape: dpoLogp.shape });
  const scores = a.float('scores', { optional: true, shape: [B] });
  const beta1 = a.num('beta1');
  const beta2 = a.num('beta2');
  const beta3 = a.num('beta3', { default: 1 });
  const dpoClip = a.num('dpoClip', { optional: true, gt: 0 });
  const backend = a.backend();
  const rewards = a.out('rewards', 'f32', dpoLogp.shape);
  if (backend === 'js')
    ref.rtoRewards(dpoLogp.data, refLogp.data, logp.data, mask.data, scores?.data, rewards.data, B, T, beta1, beta2, beta3, dpoClip);
  else
    yield nat().rtoRewards(B, T, f32Data(dpoLogp), f32Data(refLogp), f32Data(logp), maskData(mask), f32DataOpt(scores), rewards.data,
      beta1, beta2, beta3, dpoClip ?? NaN, backend === 'cuda');
  return { rewards };
});

export interface ImplicitRewardsInputs { logp: TensorLike; refLogp: TensorLike; mask: TensorLike }
export interface ImplicitRewardsOptions extends CommonOptions, Out<'rewards'> {
  beta: number;
}

/** From r to Q*: `β·(logp_t − refLogp_t)` on counted tokens (their sum is DPO's implicit reward). */
export const implicitRewards = defineOp('implicitRewards', function* implicitRewards(inputs: ImplicitRewardsInputs, options: ImplicitRewardsOptions): Gen<{ rewards: Tensor<'f32'> }> {
  const a = new OpArgs('implicitRewards', inputs, options);
  const { B, T, ts: [logp, refLogp] } = tokens2d(a, 'logp', ['refLogp']);
  const mask = a.mask('mask', { shape: logp.shape });
  const beta = a.num('beta');
  const backend = a.backend();
  const rewards = a.out('rewards', 'f32', logp.shape);
  if (backend === 'js') ref.implicitRewards(logp.data, refLogp.data, mask.data, rewards.data, beta);
  else yield nat().implicitRewards(B, T, f32Data(logp), f32Data(refLogp), maskData(mask), rewards.data, beta, backend === 'cuda');
  return { rewards };
});
