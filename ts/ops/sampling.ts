/**
 * Sampling-side kernels (SPEC §7).
 *
 * - `speculativeVerify`: the SpecDec++ / speculative-sampling verification step (accept the draft
 *   while u_i ≤ p(Y_i)/q(Y_i), then draw the next token from the residual or from p_{K+1}).
 * - `specDecStop`: SpecDec++'s adaptive draft length (stop once the predicted probability that
 *   some draft token is rejected exceeds a threshold).
 * - `geometricMixture`: Nash-MD / IPO-MD's regularised policy log_softmax((1−β)·z + β·z_ref).
 * - `rejectionSample`: RSO (Statistical Rejection Sampling) Algorithm 1.
 *
 * Every rule that compares a uniform with a threshold is evaluated in float64 from the (f32)
 * inputs on every backend, so `js`, `cpu` and `cuda` return the same integers for the same inputs.
 */
import { defineOp, opNative, type Gen } from '../async.js';
import type { NativeCore } from '../native.js';
import * as ref from '../reference/sampling.js';
import type { Tensor, AnyTensor, TensorLike } from '../tensor.js';
import type { CommonOptions } from '../validate.js';
import { f32Data, INT, LOGITS, logitsData, OpArgs } from '../validate.js';

type F32 = Float32Array;
type I32 = Int32Array;
interface SamplingNative extends NativeCore {
  speculativeVerify(B: number, K: number, V: number, draftTokens: I32, draftProbs: F32, targetProbs: F32, uniforms: F32,
    accepted: I32, nextToken: I32, cuda: boolean): number;
  specDecStop(B: number, K: number, acceptProbs: F32, length: I32, threshold: number, minLength: number, maxLength: number, cuda: boolean): number;
  geometricMixture(N: number, V: number, logitsDtype: number, logits: F32 | Uint16Array, refDtype: number, refLogits: F32 | Uint16Array,
    logp: F32, beta: number, cuda: boolean): void;
  rejectionSample(G: number, K: number, numSamples: number, rewards: F32, uniforms: F32, selected: I32, beta: number, cuda: boolean): number;
}
const nat = () => opNative<SamplingNative>();

type Out<K extends string> = { out?: Partial<Record<K, AnyTensor>> };

/** Turns a row status code (8·row + RK_SAMPLING_*) into the RangeError it stands for. */
function throwStatus(a: OpArgs, code: number, rowName: string): void {
  if (code < 0) return;
  const row = Math.floor(code / 8), s = code % 8;
  switch (s) {
    case ref.BAD_PROB:
      a.rangeError(`draftProbs / targetProbs of ${rowName} ${row}: every probability the rule reads must be finite and >= 0`);
    case ref.ZERO_MASS:
      a.rangeError(`targetProbs of ${rowName} ${row}: the distribution the next token is drawn from has total mass 0`);
    case ref.BAD_REWARD:
      a.rangeError(`input 'rewards' of ${rowName} ${row} must be finite`);
    case ref.BAD_UNIFORM:
      a.rangeError(`input 'uniforms' of ${rowName} ${row} must lie in [0, 1)`);
    default:
      a.rangeError(`${rowName} ${row}: the uniforms ran out before numSamples were selected`);
  }
}

export interface SpeculativeVerifyInputs {
  /** Y_i, the draft tokens [B,K] (i32, in [0, V)) */
  draftTokens: TensorLike;
  /** q_i, the draft model's distributions [B,K,V] */
  draftProbs: TensorLike;
  /** p_i, the target model's distributions [B,K+1,V] (the last one is p_{K+1}) */
  targetProbs: TensorLike;
  /** u [B,K+1] in [0, 1): u_i for the accept tests, uniforms[b,K] for the next token */
  uniforms: TensorLike;
}

/**
 * SpecDec++ (Huang et al.) base rule = speculative sampling (Leviathan et al. Alg. 1; Chen et
 * al. Alg. 2): accept Y_i while `u_i ≤ p_i(Y_i)/q_i(Y_i)`; at the first rejection n the next token
 * is drawn from `norm(max(p_n − q_n, 0))`, else (all K accepted) from p_{K+1}, by inverse CDF
 * with `uniforms[b,K]`: the smallest t with `u < CDF(t)`.
 *
 * Edge cases: a draft token with p(Y) = 0 is always rejected; one with q(Y) = 0 < p(Y) is always
 * accepted; a residual of total mass 0 falls back to p_n; if rounding leaves u at or above the
 * last CDF value the last token of positive weight is returned. Probabilities the rule reads must
 * be finite and ≥ 0 and the distribution drawn from must have positive mass, else RangeError.
 */
export const speculativeVerify = defineOp('speculativeVerify', function* speculativeVerify(
  inputs: SpeculativeVerifyInputs, options?: CommonOptions & Out<'accepted' | 'nextToken'>,
): Gen<{ accepted: Tensor<'i32'>; nextToken: Tensor<'i32'> }> {
  const a = new OpArgs('speculativeVerify', inputs, options);
  const draftTokens = a.tensor('draftTokens', INT, { rank: 2 });
  const [B, K] = draftTokens.shape as [number, number];
  const targetProbs = a.float('targetProbs', { rank: 3 });
  const V = targetProbs.shape[2];
  a.expectShape(targetProbs, 'targetProbs', [B, K + 1, V]);
  const draftProbs = a.float('draftProbs', { shape: [B, K, V] });
  const uniforms = a.float('uniforms', { shape: [B, K + 1] });
  if (V < 1) a.rangeError(`input 'targetProbs' must have a vocabulary of at least 1 token, got shape [${targetProbs.shape.join(', ')}]`);
  const tok = a.values(draftTokens) as Int32Array; // device: read back (B·K int32) for the check
  for (let i = 0; i < tok.length; i++)
    if (!(tok[i] >= 0 && tok[i] < V)) a.rangeError(`input 'draftTokens' must hold token ids in [0, ${V}), got ${tok[i]} at ${i}`);
  const ud = a.values(uniforms);
  for (let i = 0; i < ud.length; i++)
    // (< 1 after rounding to f32, as the native backends see it)
    if (!(ud[i] >= 0 && Math.fround(ud[i]) < 1)) a.rangeError(`input 'uniforms' must lie in [0, 1), got ${ud[i]} at ${i}`);
  const backend = a.backend();
  const accepted = a.out('accepted', 'i32', [B]);
  const nextToken = a.out('nextToken', 'i32', [B]);
  const code = backend === 'js'
    ? ref.speculativeVerify(tok, draftProbs.data, targetProbs.data, ud, B, K, V, accepted.data, nextToken.data)
    : (yield nat().speculativeVerify(B, K, V, draftTokens.data as Int32Array, f32Data(draftProbs), f32Data(targetProbs), f32Data(uniforms), accepted.data, nextToken.data,
      backend === 'cuda')) as number;
  throwStatus(a, code, 'row');
  return { accepted, nextToken };
});

export interface SpecDecStopInputs {
  /** P̂_i [B,K], the predicted probability that draft token i is accepted, in [0, 1] */
  acceptProbs: TensorLike;
}
export interface SpecDecStopOptions extends CommonOptions, Out<'length'> {
  /** stop once 1 − Π P̂_i exceeds this (in [0, 1], default 0.3) */
  threshold?: number;
  /** never stop before this many tokens (integer ≥ 0, default 2) */
  minLength?: number;
  /** never draft more than this many (integer ≥ minLength, default 20); the result is also ≤ K */
  maxLength?: number;
}

/**
 * SpecDec++ (Huang et al.) stopping rule (the threshold policy of its MDP formulation): `length` = the smallest `k ≥ minLength` with
 * `1 − Π_{i≤k} P̂_i > threshold` (the predicted probability that at least one of the first k draft
 * tokens is rejected), capped at `min(maxLength, K)`. Every P̂ the rule reads must lie in [0, 1]
 * (else RangeError); values after the stopping point are not read.
 */
export const specDecStop = defineOp('specDecStop', function* specDecStop(inputs: SpecDecStopInputs, options?: SpecDecStopOptions): Gen<{ length: Tensor<'i32'> }> {
  const a = new OpArgs('specDecStop', inputs, options);
  const acceptProbs = a.float('acceptProbs', { rank: 2 });
  const [B, K] = acceptProbs.shape as [number, number];
  const threshold = a.num('threshold', { default: 0.3, min: 0, max: 1 });
  const minLength = a.num('minLength', { default: 2, min: 0, max: 2 ** 31 - 1, integer: true });
  const maxLength = a.num('maxLength', { default: 20, min: 0, max: 2 ** 31 - 1, integer: true });
  if (maxLength < minLength) a.rangeError(`option 'maxLength' must be >= minLength (${minLength}), got ${maxLength}`);
  const backend = a.backend();
  const length = a.out('length', 'i32', [B]);
  const bad = backend === 'js'
    ? ref.specDecStop(acceptProbs.data, B, K, threshold, minLength, maxLength, length.data)
    : ((yield nat().specDecStop(B, K, f32Data(acceptProbs), length.data, threshold, minLength, maxLength, backend === 'cuda')) as number);
  if (bad >= 0) a.rangeError(`input 'acceptProbs' of row ${bad} must lie in [0, 1] (every value the rule reads)`);
  return { length };
});

export interface GeometricMixtureInputs {
  /** z, the policy logits [N,V] (or [B,T,V]); f32, f64, f16 or bf16 */
  logits: TensorLike;
  /** z_ref, the reference logits, same shape; f32, f64, f16 or bf16 */
  refLogits: TensorLike;
}
export interface GeometricMixtureOptions extends CommonOptions, Out<'logp'> {
  /** mixture weight β in [0, 1] (default 0.5) */
  beta?: number;
}

/**
 * Nash-MD (Munos et al., "Nash Learning from Human Feedback": the regularised policy π^β_t ∝ π_t^{1−β}·μ^β) and
 * IPO-MD (Calandriello et al., "Human Alignment of LLMs through Online Preference Optimisation"):
 * the geometric mixture of policy and reference, `logp = log_softmax((1−β)·z + β·z_ref)` per row.
 */
export const geometricMixture = defineOp('geometricMixture', function* geometricMixture(inputs: GeometricMixtureInputs, options?: GeometricMixtureOptions): Gen<{ logp: Tensor<'f32'> }> {
  const a = new OpArgs('geometricMixture', inputs, options);
  const logits = a.tensor('logits', LOGITS, { rank: [2, 3] });
  const refLogits = a.tensor('refLogits', LOGITS, { shape: logits.shape });
  const beta = a.num('beta', { default: 0.5, min: 0, max: 1 });
  const V = logits.shape[logits.shape.length - 1];
  const N = V === 0 ? 0 : logits.data.length / V;
  const backend = a.backend();
  const logp = a.out('logp', 'f32', logits.shape);
  if (backend === 'js') ref.geometricMixture(logits.data, logits.dtype, refLogits.data, refLogits.dtype, N, V, beta, logp.data);
  else {
    const z = logitsData(logits), zr = logitsData(refLogits);
    yield nat().geometricMixture(N, V, z.code, z.data, zr.code, zr.data, logp.data, beta, backend === 'cuda');
  }
  return { logp };
});

export interface RejectionSampleInputs {
  /** r [G,K], the reward of each of K candidates per group (finite) */
  rewards: TensorLike;
  /** u [G,K,K] in [0, 1), indexed [group, round, candidate] */
  uniforms: TensorLike;
}
export interface RejectionSampleOptions extends CommonOptions, Out<'selected'> {
  /** β > 0, the KL coefficient of the target policy π_r ∝ π_sft·exp(r/β) */
  beta: number;
  /** how many candidates to select per group, an integer in [1, K] */
  numSamples: number;
}

/**
 * RSO (Liu et al., "Statistical Rejection Sampling Improves Preference Optimization"),
 * Algorithm 1: in round r, with r_max the best reward among the candidates still unselected,
 * candidate c (in index order) is accepted iff `uniforms[g, r, c] < exp((rewards[g,c] − r_max)/β)`;
 * rounds repeat until `numSamples` are selected (stopping as soon as that many are). `selected`
 * lists them in acceptance order. Each round accepts at least the best remaining candidate, so
 * the K rounds of `uniforms` always suffice; `numSamples > K` is a RangeError.
 */
export const rejectionSample = defineOp('rejectionSample', function* rejectionSample(inputs: RejectionSampleInputs, options: RejectionSampleOptions): Gen<{ selected: Tensor<'i32'> }> {
  const a = new OpArgs('rejectionSample', inputs, options);
  const rewards = a.float('rewards', { rank: 2 });
  const [G, K] = rewards.shape as [number, number];
  const uniforms = a.float('uniforms', { shape: [G, K, K] });
  const beta = a.num('beta', { gt: 0 });
  const numSamples = a.num('numSamples', { min: 1, integer: true });
  if (numSamples > K) a.rangeError(`option 'numSamples' must be <= K (${K}), got ${numSamples}`);
  const backend = a.backend();
  const selected = a.out('selected', 'i32', [G, numSamples]);
  const code = backend === 'js'
    ? ref.rejectionSample(rewards.data, uniforms.data, G, K, numSamples, beta, selected.data)
    : ((yield nat().rejectionSample(G, K, numSamples, f32Data(rewards), f32Data(uniforms), selected.data, beta, backend === 'cuda')) as number);
  throwStatus(a, code, 'group');
  return { selected };
});
