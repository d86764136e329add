/**
 * Advantages and returns (SPEC §3).
 *
 * - `gae`: Generalized Advantage Estimation (Schulman et al., "High-Dimensional Continuous Control
 *   Using Generalized Advantage Estimation", eq. 16), masked tokens skipped as in verl's multi-turn
 *   `compute_gae_advantage_return`; with a contiguous mask it is the TRL / OpenRLHF recursion.
 * - `whiten`: batch whitening of advantages (TRL `masked_whiten`): one global mean and Bessel variance.
 * - `groupAdvantages`: GRPO (DeepSeekMath, eq. in §4.1.2 "outcome supervision"), Dr. GRPO
 *   (Understanding R1-Zero-Like Training, eq. 3: no std), RLOO (Back to Basics: Revisiting
 *   REINFORCE-Style Optimization, eq. 5 leave-one-out baseline), ReMax (ReMax, eq. 5: greedy baseline).
 * - `discountedReturns`: REINFORCE returns G_t = r_t + γ·G_{t+1} over counted tokens.
 * - `ensembleRewards`: Reward Model Ensembles Help Mitigate Overoptimization (Coste et al.), eqs. for
 *   mean, worst-case (WCO) and uncertainty-weighted (UWO) optimisation.
 * - `winRateRewards`: A Minimaximalist Approach to RLHF (SPO), the win-rate reward of §3.
 */
import { defineOp, opNative, type Gen } from '../async.js';
import type { NativeCore } from '../native.js';
import * as ref from '../reference/advantages.js';
import type { Tensor, AnyTensor, TensorLike } from '../tensor.js';
import { f32Data, f32DataOpt, maskData, OpArgs, type CommonOptions } from '../validate.js';

type F32 = Float32Array;
type MaskArr = Uint8Array | Float32Array | null;
interface AdvantagesNative extends NativeCore {
  gae(B: number, T: number, rewards: F32, values: F32, mask: MaskArr, lastValues: F32 | null, adv: F32, ret: F32, gamma: number, lambda: number, cuda: boolean): void;
  discountedReturns(B: number, T: number, rewards: F32, mask: MaskArr, out: F32, gamma: number, cuda: boolean): void;
  whiten(n: number, x: F32, mask: MaskArr, y: F32, shiftMean: boolean, eps: number, cuda: boolean): [number, number, number];
  groupAdvantages(G: number, K: number, scores: F32, baselines: F32 | null, out: F32, method: number, eps: number, cuda: boolean): void;
  ensembleRewards(E: number, B: number, scores: F32, out: F32, method: number, lambda: number, unbiased: boolean, cuda: boolean): void;
  winRateRewards(G: number, K: number, preferences: F32, out: F32, cuda: boolean): void;
}
const nat = () => opNative<AdvantagesNative>();

type Out<K extends string> = { out?: Partial<Record<K, AnyTensor>> };

// ---------------------------------------------------------------------------------------------

export interface GaeInputs { rewards: TensorLike; values: TensorLike; mask: TensorLike; lastValues?: TensorLike }
export interface GaeOptions extends CommonOptions, Out<'advantages' | 'returns'> {
  /** discount γ in [0, 1] */
  gamma: number;
  /** GAE λ in [0, 1] */
  lambda: number;
}

/**
 * GAE (Schulman et al. 2016, eq. 16) over the counted tokens of each row: with counted positions
 * `t_1 < … < t_n`, `δ_k = r_{t_k} + γ·V_{t_{k+1}} − V_{t_k}` (`V_{t_{n+1}} = lastValues_b`, default 0),
 * `A_{t_k} = δ_k + γλ·A_{t_{k+1}}`, `returns = A + V`. Masked tokens are skipped (the recursion
 * jumps over them, as in verl's multi-turn GAE), and are 0 in both outputs.
 */
export const gae = defineOp('gae', function* gae(inputs: GaeInputs, options: GaeOptions): Gen<{ advantages: Tensor<'f32'>; returns: Tensor<'f32'> }> {
  const a = new OpArgs('gae', inputs, options);
  const rewards = a.float('rewards', { rank: 2 });
  const [B, T] = rewards.shape as [number, number];
  const values = a.float('values', { shape: rewards.shape });
  const mask = a.mask('mask', { shape: rewards.shape });
  const lastValues = a.float('lastValues', { optional: true, shape: [B] });
  const gamma = a.num('gamma', { min: 0, max: 1 });
  const lambda = a.num('lambda', { min: 0, max: 1 });
  const backend = a.backend();
  const advantages = a.out('advantages', 'f32', rewards.shape);
  const returns = a.out('returns', 'f32', rewards.shape);
  if (advantages.data === returns.data) a.rangeError('out.advantages and out.returns must be different buffers');
  if (backend === 'js') ref.gae(rewards.data, values.data, mask.data, lastValues?.data, advantages.data, returns.data, B, T, gamma, lambda);
  else
    yield nat().gae(B, T, f32Data(rewards), f32Data(values), maskData(mask), f32DataOpt(lastValues), advantages.data, returns.data,
      gamma, lambda, backend === 'cuda');
  return { advantages, returns };
});

// ---------------------------------------------------------------------------------------------

export interface WhitenInputs { x: TensorLike; mask?: TensorLike }
export interface WhitenOptions extends CommonOptions, Out<'y'> {
  /** subtract the mean (default true); false adds it back after scaling */
  shiftMean?: boolean;
  /** added to the variance inside the square root (≥ 0, default 1e-8) */
  eps?: number;
}

/**
 * Whitening (TRL `masked_whiten`): `y = (x − μ)/sqrt(σ² + eps)` (`+ μ` when `!shiftMean`), with μ and
 * the unbiased (Bessel) σ² over all counted elements of the batch; masked positions 0.
 * Fewer than 2 counted elements → RangeError.
 */
export const whiten = defineOp('whiten', function* whiten(inputs: WhitenInputs, options?: WhitenOptions): Gen<{ y: Tensor<'f32'> }> {
  const a = new OpArgs('whiten', inputs, options);
  const x = a.float('x');
  if (x.shape.length < 1) a.rangeError(`input 'x' must have rank >= 1, got a scalar`);
  const mask = a.mask('mask', { optional: true, shape: x.shape });
  const shiftMean = a.bool('shiftMean', true);
  const eps = a.num('eps', { default: 1e-8, min: 0 });
  const backend = a.backend();
  const y = a.out('y', 'f32', x.shape);
  const n = x.data.length;
  const few = (count: number) =>
    a.rangeError(`needs at least 2 counted elements of 'x' for the unbiased variance, got ${count}`);
  if (backend === 'js') {
    const st = ref.whitenStats(x.data, mask?.data);
    if (st.count < 2) few(st.count);
    ref.whiten(x.data, mask?.data, y.data, st.mean, st.variance, shiftMean, eps);
  } else {
    const [count] = (yield nat().whiten(n, f32Data(x), maskData(mask), y.data, shiftMean, eps, backend === 'cuda')) as [number, number, number];
    if (count < 2) few(count);
  }
  return { y };
});

// ---------------------------------------------------------------------------------------------

export type GroupMethod = ref.GroupMethod;
export const GROUP_METHODS: readonly GroupMethod[] = ['grpo', 'drgrpo', 'rloo', 'remax'];
const GROUP_CODE: Record<GroupMethod, number> = { grpo: 0, drgrpo: 1, rloo: 2, remax: 3 };

export interface GroupAdvantagesInputs { scores: TensorLike; baselines?: TensorLike }
export interface GroupAdvantagesOptions extends CommonOptions, Out<'advantages'> {
  /** K, the number of completions per prompt (a positive integer dividing scores.length) */
  groupSize: number;
  method: GroupMethod;
  /** grpo: added to the std (≥ 0, default 1e-6) */
  eps?: number;
}

/**
 * Group-relative advantages over groups of K consecutive scores: `'grpo'` `(s − mean_g)/(std_g + eps)`
 * (unbiased std; a group of 1 → 0), `'drgrpo'` `s − mean_g`, `'rloo'` `s_i − mean_{j≠i} s_j` (K ≥ 2),
 * `'remax'` `s − b` with the greedy-decode `baselines`.
 */
export const groupAdvantages = defineOp('groupAdvantages', function* groupAdvantages(inputs: GroupAdvantagesInputs, options: GroupAdvantagesOptions): Gen<{ advantages: Tensor<'f32'> }> {
  const a = new OpArgs('groupAdvantages', inputs, options);
  const scores = a.float('scores', { rank: 1 });
  const method = a.oneOf('method', GROUP_METHODS);
  const baselines = a.float('baselines', { optional: method !== 'remax', shape: scores.shape });
  const K = a.num('groupSize', { integer: true, min: 1, max: 2 ** 31 - 1 });
  const eps = a.num('eps', { default: 1e-6, min: 0 });
  const n = scores.shape[0];
  if (n % K !== 0) a.rangeError(`input 'scores' has ${n} elements, which do not split into groups of groupSize = ${K}`);
  if (method === 'rloo' && K < 2) a.rangeError(`option 'groupSize' must be >= 2 for method 'rloo' (leave-one-out), got ${K}`);
  const G = n / K;
  const backend = a.backend();
  const advantages = a.out('advantages', 'f32', scores.shape);
  if (backend === 'js') ref.groupAdvantages(scores.data, baselines?.data, advantages.data, G, K, method, eps);
  else
    yield nat().groupAdvantages(G, K, f32Data(scores), method === 'remax' ? f32DataOpt(baselines) : null, advantages.data,
      GROUP_CODE[method], eps, backend === 'cuda');
  return { advantages };
});

// ---------------------------------------------------------------------------------------------

export interface DiscountedReturnsInputs { rewards: TensorLike; mask: TensorLike }
export interface DiscountedReturnsOptions extends CommonOptions, Out<'returns'> {
  /** discount γ in [0, 1] */
  gamma: number;
}

/** REINFORCE / ReMax token returns `G_t = r_t + γ·G_{t+1}` over counted tokens (masked skipped, set to 0). */
export const discountedReturns = defineOp('discountedReturns', function* discountedReturns(inputs: DiscountedReturnsInputs, options: DiscountedReturnsOptions): Gen<{ returns: Tensor<'f32'> }> {
  const a = new OpArgs('discountedReturns', inputs, options);
  const rewards = a.float('rewards', { rank: 2 });
  const [B, T] = rewards.shape as [number, number];
  const mask = a.mask('mask', { shape: rewards.shape });
  const gamma = a.num('gamma', { min: 0, max: 1 });
  const backend = a.backend();
  const returns = a.out('returns', 'f32', rewards.shape);
  if (backend === 'js') ref.discountedReturns(rewards.data, mask.data, returns.data, B, T, gamma);
  else yield nat().discountedReturns(B, T, f32Data(rewards), maskData(mask), returns.data, gamma, backend === 'cuda');
  return { returns };
});

// ---------------------------------------------------------------------------------------------

export type EnsembleMethod = ref.EnsembleMethod;
export const ENSEMBLE_METHODS: readonly EnsembleMethod[] = ['mean', 'min', 'uwo'];
const ENSEMBLE_CODE: Record<EnsembleMethod, number> = { mean: 0, min: 1, uwo: 2 };

export interface EnsembleRewardsInputs { scores: TensorLike }
export interface EnsembleRewardsOptions extends CommonOptions, Out<'rewards'> {
  method: EnsembleMethod;
  /** uwo: weight of the variance penalty (≥ 0, default 0.5) */
  lambda?: number;
  /** uwo: divide the variance by E − 1 instead of E (needs E ≥ 2) */
  unbiased?: boolean;
}

/**
 * Reward-model ensembles (Coste et al.): over the E members of `scores [E,B]`, `'mean'`, `'min'`
 * (worst case) or `'uwo'` `mean − λ·Var` (population variance unless `unbiased`).
 */
export const ensembleRewards = defineOp('ensembleRewards', function* ensembleRewards(inputs: EnsembleRewardsInputs, options: EnsembleRewardsOptions): Gen<{ rewards: Tensor<'f32'> }> {
  const a = new OpArgs('ensembleRewards', inputs, options);
  const scores = a.float('scores', { rank: 2 });
  const [E, B] = scores.shape as [number, number];
  const method = a.oneOf('method', ENSEMBLE_METHODS);
  const lambda = a.num('lambda', { default: 0.5, min: 0 });
  const unbiased = a.bool('unbiased', false);
  if (E < 1) a.rangeError(`input 'scores' must have at least one ensemble member (shape [E, B] with E >= 1), got E = 0`);
  if (method === 'uwo' && unbiased && E < 2) a.rangeError(`'unbiased' variance needs at least 2 ensemble members, got E = ${E}`);
  const backend = a.backend();
  const rewards = a.out('rewards', 'f32', [B]);
  if (backend === 'js') ref.ensembleRewards(scores.data, rewards.data, E, B, method, lambda, unbiased);
  else yield nat().ensembleRewards(E, B, f32Data(scores), rewards.data, ENSEMBLE_CODE[method], lambda, unbiased, backend === 'cuda');
  return { rewards };
});

// ---------------------------------------------------------------------------------------------

export interface WinRateRewardsInputs { preferences: TensorLike }
export type WinRateRewardsOptions = CommonOptions & Out<'rewards'>;

/**
 * SPO (A Minimaximalist Approach to RLHF, §3): `r_i = (1/(K−1)) Σ_{j≠i} P(y_i ≻ y_j)` with
 * `preferences[g,i,j] = P(y_i ≻ y_j)`; the diagonal is never read; K = 1 gives 0 (an empty mean).
 */
export const winRateRewards = defineOp('winRateRewards', function* winRateRewards(inputs: WinRateRewardsInputs, options?: WinRateRewardsOptions): Gen<{ rewards: Tensor<'f32'> }> {
  const a = new OpArgs('winRateRewards', inputs, options);
  const preferences = a.float('preferences', { rank: 3 });
  const [G, K, K2] = preferences.shape as [number, number, number];
  if (K !== K2) a.rangeError(`input 'preferences' must have shape [G, K, K], got [${preferences.shape.join(', ')}]`);
  const backend = a.backend();
  const rewards = a.out('rewards', 'f32', [G * K]);
  if (backend === 'js') ref.winRateRewards(preferences.data, rewards.data, G, K);
  else yield nat().winRateRewards(G, K, f32Data(preferences), rewards.data, backend === 'cuda');
  return { rewards };
});
