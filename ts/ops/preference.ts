/**
 * Preference losses (SPEC §4), with the gradient of the MEAN loss for every policy input.
 * Papers (title, then the equation or section): see docs/preference.md for every equation.
 *
 * - `preferenceLoss`: DPO ("Direct Preference Optimization: Your Language Model is Secretly a
 *   Reward Model", eq. 7) and its variants: cDPO (label smoothing), rDPO ("Provably Robust DPO:
 *   Aligning Language Models with Noisy Feedback", the de-biased loss), IPO ("A General
 *   Theoretical Paradigm to Understand Learning from Human Preferences", the sampled IPO loss),
 *   hinge (SLiC-HF's calibration loss; RSO's hinge-norm), RPO ("Provably Mitigating
 *   Overoptimization in RLHF"), XPO ("Exploratory Preference Optimization", Alg. 1), INPO
 *   ("Iterative Nash Policy Optimization", its square loss), DNO ("Direct Nash Optimization",
 *   Alg. 1 with soft labels), and the reference-free ORPO ("ORPO: Monolithic Preference
 *   Optimization without Reference Model", the odds-ratio loss) and SimPO ("SimPO: Simple
 *   Preference Optimization with a Reference-Free Reward", eq. 6).
 * - `apoReference`: "Accelerated Preference Optimization" (the extrapolated reference policy).
 * - `listwiseLoss`: LiPO-λ ("LiPO: Listwise Preference Optimization through Learning-to-Rank",
 *   the Lambda-weighted loss), PRO ("Preference Ranking Optimization for Human Alignment"), and
 *   the Plackett-Luce DPO loss (the DPO paper, Appendix A.3).
 * - `fusedPreferenceLoss`: logits → log-softmax → gather → masked sums → loss → gradLogits.
 *
 * Every log-sigmoid is a softplus (−log σ(x) = softplus(−x)), so the losses are finite for any margin.
 */
import { defineOp, opNative, type Gen } from '../async.js';
import type { NativeCore } from '../native.js';
import type { CommonOptions } from '../validate.js';
import * as ref from '../reference/preference.js';
import { readFloat, type Tensor, type AnyTensor, type TensorLike } from '../tensor.js';
import { f32Data, LOGITS, logitsData, maskData, OpArgs, widenF32 } from '../validate.js';
import { checkProb, dataFor, fusedOutputs, fusedTokenInputs, outsB, prefParams, TYPE_CODE } from './preference_args.js';

type F32 = Float32Array;
type OptF32 = Float32Array | null;
interface PreferenceNative extends NativeCore {
  preferenceLoss(
    B: number, type: number, lengthNormalize: boolean, pc: F32, pr: F32, rc: OptF32, rr: OptF32, lc: OptF32, lr: OptF32,
    nll: OptF32, explore: OptF32, prevc: OptF32, prevr: OptF32, prob: OptF32,
    losses: F32, gc: F32, gr: F32, cr: F32, rj: F32, margins: F32, gx: OptF32,
    beta: number, epsilon: number, eta: number, alpha: number, tau: number, gamma: number, cuda: boolean, scalars: Float64Array,
  ): void;
  apoReference(n: number, cur: F32, prev: F32, out: F32, alpha: number, cuda: boolean): void;
  fusedPreferenceLoss(
    B: number, T: number, V: number, type: number, lengthNormalize: boolean, dtype: number, logits: F32 | Uint16Array,
    labels: Int32Array, mask: Uint8Array | Float32Array | null, refLogp: OptF32, prevLogp: OptF32, explore: OptF32, prob: OptF32,
    gradLogits: F32, losses: F32, gc: F32, gr: F32, cr: F32, rj: F32, margins: F32, gx: OptF32,
    beta: number, epsilon: number, eta: number, alpha: number, tau: number, gamma: number, temperature: number, ignoreIndex: number,
    cuda: boolean, scalars: Float64Array,
  ): void;
  listwiseLoss(
    B: number, K: number, type: number, policy: F32, ref: OptF32, labels: OptF32, lengths: OptF32, losses: F32, grad: F32,
    beta: number, sftWeight: number, cuda: boolean, scalars: Float64Array,
  ): void;
}
const nat = () => opNative<PreferenceNative>();

export type PreferenceType = ref.PreferenceType;
export type ListwiseType = ref.ListwiseType;
export const PREFERENCE_TYPES: readonly PreferenceType[] = ref.PREFERENCE_TYPES;
export const LISTWISE_TYPES: readonly ListwiseType[] = ref.LISTWISE_TYPES;
const LIST_CODE: Record<ListwiseType, number> = { lipo: 0, pro: 1, pl: 2 };

type Out<K extends string> = { out?: Partial<Record<K, AnyTensor>> };

/** Lengths as f32 or f64 or i32; each must be > 0. Returned as f32 for native. */
function lengthData(a: OpArgs, name: string, shape: readonly number[], js: boolean): ArrayLike<number> {
  const t = a.tensor(name, ['f32', 'f64', 'i32'], { shape });
  const d = a.values(t) as ArrayLike<number>;
  for (let i = 0; i < d.length; i++) if (d[i] <= 0) a.rangeError(`input '${name}' must be > 0 everywhere, got ${d[i]} at ${i}`);
  if (js) return d;
  if (a.device !== undefined) return t.dtype === 'i32' ? (a.upload(Float32Array.from(d), shape).data as unknown as Float32Array) : widenF32(t);
  return t.dtype === 'f32' ? (d as Float32Array) : Float32Array.from(d);
}

/** Options shared by preferenceLoss and fusedPreferenceLoss. */
export interface PreferenceOptions extends CommonOptions {
  type: PreferenceType;
  /** KL strength β > 0 (also the scale of the reward metrics) */
  beta: number;
  /** cdpo: label smoothing in [0, 1]; rdpo: flip rate in [0, 0.5) (required by those types) */
  epsilon?: number;
  /** rpo: NLL weight η ≥ 0 (default 0.005); inpo: η > 0 (required) */
  eta?: number;
  /** xpo: exploration weight α (default 1e-5) */
  alpha?: number;
  /** inpo: τ ≥ 0 (required) */
  tau?: number;
  /** simpo: target margin γ (default 0.5) */
  gamma?: number;
  /** ipo: divide each log-ratio by its length (inputs chosenLength, rejectedLength) */
  lengthNormalize?: boolean;
}

export interface PreferenceLossInputs {
  /** summed sequence log-probs of the chosen responses under the policy [B] (length-averaged for orpo/simpo) */
  policyChosen: TensorLike;
  policyRejected: TensorLike;
  /** the same under the reference model [B] (not used by orpo / simpo) */
  refChosen?: TensorLike;
  refRejected?: TensorLike;
  /** ipo + lengthNormalize: response lengths [B] (f32 or i32, > 0) */
  chosenLength?: TensorLike;
  rejectedLength?: TensorLike;
  /** rpo: summed NLL of the chosen response; orpo: its length-averaged NLL [B] */
  chosenNll?: TensorLike;
  /** xpo: summed log-prob of the reference model's sample under the policy [B] */
  policyExplore?: TensorLike;
  /** inpo: summed log-probs under the previous iterate π_t [B] */
  prevChosen?: TensorLike;
  prevRejected?: TensorLike;
  /** dno: probability that the chosen response wins, in [0, 1] [B] */
  preferenceProb?: TensorLike;
}

type PrefOutName = 'losses' | 'gradPolicyChosen' | 'gradPolicyRejected' | 'chosenRewards' | 'rejectedRewards' | 'margins' | 'gradChosenNll' | 'gradPolicyExplore';
export interface PreferenceLossOptions extends PreferenceOptions, Out<PrefOutName> {}

export interface PreferenceLossResult {
  losses: Tensor<'f32'>;
  /** mean of `losses` */
  loss: number;
  gradPolicyChosen: Tensor<'f32'>;
  gradPolicyRejected: Tensor<'f32'>;
  /** β(πc − rc) (β·πc for the reference-free types) */
  chosenRewards: Tensor<'f32'>;
  rejectedRewards: Tensor<'f32'>;
  margins: Tensor<'f32'>;
  /** fraction of examples with margin > 0 (NaN if a margin is NaN) */
  accuracy: number;
  /** rpo, orpo */
  gradChosenNll?: Tensor<'f32'>;
  /** xpo */
  gradPolicyExplore?: Tensor<'f32'>;
}

/**
 * Pairwise preference losses on summed sequence log-probs (SPEC §4). With
 * `u = (πc − rc) − (πr − rr)`: dpo `−log σ(βu)`; cdpo `−(1−ε)log σ(βu) − ε log σ(−βu)`; rdpo
 * `[(1−ε)(−log σ(βu)) − ε(−log σ(−βu))]/(1−2ε)`; ipo `(u′ − 1/(2β))²`; hinge `max(0, 1 − βu)`;
 * rpo `−log σ(βu) + ηβ·nll`; xpo `−log σ(βu) + α·explore`; inpo `(h − 1/(2η))²`;
 * dno `−p log σ(βu) − (1−p) log σ(−βu)`; orpo `−β log σ(odds) + nll`; simpo `−log σ(β(πc − πr) − γ)`.
 */
export const preferenceLoss = defineOp('preferenceLoss', function* preferenceLoss(inputs: PreferenceLossInputs, options: PreferenceLossOptions): Gen<PreferenceLossResult> {
  const a = new OpArgs('preferenceLoss', inputs, options);
  const pcT = a.float('policyChosen', { rank: 1 });
  const shape = Object.freeze([pcT.shape[0]]);
  const B = shape[0];
  const prT = a.float('policyRejected', { shape });
  const P = prefParams(a);
  const t = P.type;
  const refFree = t === 'orpo' || t === 'simpo';
  const rcT = refFree ? undefined : a.float('refChosen', { shape });
  const rrT = refFree ? undefined : a.float('refRejected', { shape });
  const nllT = t === 'rpo' || t === 'orpo' ? a.float('chosenNll', { shape }) : undefined;
  const exT = t === 'xpo' ? a.float('policyExplore', { shape }) : undefined;
  const qcT = t === 'inpo' ? a.float('prevChosen', { shape }) : undefined;
  const qrT = t === 'inpo' ? a.float('prevRejected', { shape }) : undefined;
  const probT = t === 'dno' ? a.float('preferenceProb', { shape }) : undefined;
  if (probT) checkProb(a, probT);
  if (t === 'orpo') {
    for (const [n, T] of [['policyChosen', pcT], ['policyRejected', prT]] as const) {
      const d = a.values(T) as ArrayLike<number>;
      for (let i = 0; i < d.length; i++)
        if (d[i] >= 0) a.rangeError(`orpo needs length-averaged log-probs < 0: input '${n}' is ${d[i]} at ${i}`);
    }
  }
  const backend = a.backend();
  const js = backend === 'js';
  const lc = P.lengthNormalize ? lengthData(a, 'chosenLength', shape, js) : undefined;
  const lr = P.lengthNormalize ? lengthData(a, 'rejectedLength', shape, js) : undefined;
  const extraName = t === 'xpo' ? 'gradPolicyExplore' : 'gradChosenNll';
  const hasExtra = t === 'rpo' || t === 'orpo' || t === 'xpo';
  const outB = outsB(a, shape, B, hasExtra ? 7 : 6);
  const losses = outB('losses');
  const gradPolicyChosen = outB('gradPolicyChosen');
  const gradPolicyRejected = outB('gradPolicyRejected');
  const chosenRewards = outB('chosenRewards');
  const rejectedRewards = outB('rejectedRewards');
  const margins = outB('margins');
  const gx = hasExtra ? outB(extraName) : undefined;
  let loss: number, accuracy: number;
  if (js) {
    [loss, accuracy] = ref.preferenceLoss(t, B, {
      pc: pcT.data as ArrayLike<number>, pr: prT.data as ArrayLike<number>, rc: dataFor(rcT, true), rr: dataFor(rrT, true),
      lc, lr, nll: dataFor(nllT ?? exT, true), prevc: dataFor(qcT, true), prevr: dataFor(qrT, true), prob: dataFor(probT, true),
    }, P, {
      losses: losses.data, gc: gradPolicyChosen.data, gr: gradPolicyRejected.data, cr: chosenRewards.data,
      rj: rejectedRewards.data, margins: margins.data, gx: gx?.data,
    });
  } else {
    const f = (x: Tensor | undefined) => (x === undefined ? null : f32Data(x));
    const sc = a.scalars(2);
    yield nat().preferenceLoss(
      B, TYPE_CODE[t], P.lengthNormalize, f32Data(pcT), f32Data(prT), f(rcT), f(rrT), (lc as F32) ?? null, (lr as F32) ?? null,
      f(nllT), f(exT), f(qcT), f(qrT), f(probT), losses.data, gradPolicyChosen.data, gradPolicyRejected.data,
      chosenRewards.data, rejectedRewards.data, margins.data, gx ? gx.data : null,
      P.beta, P.epsilon, P.eta, P.alpha, P.tau, P.gamma, backend === 'cuda', sc.data,
    );
    loss = sc.get(0);
    accuracy = sc.get(1);
  }
  const res: PreferenceLossResult = {
    losses, loss, gradPolicyChosen, gradPolicyRejected, chosenRewards, rejectedRewards, margins, accuracy,
  };
  if (gx) res[extraName] = gx;
  return res;
});

export interface ApoReferenceInputs { current: TensorLike; previous: TensorLike }
export interface ApoReferenceOptions extends CommonOptions, Out<'reference'> {
  /** extrapolation weight α */
  alpha: number;
}

/** Accelerated Preference Optimization's reference log-probs `(1 + α)·current − α·previous` (elementwise, any shape). */
export const apoReference = defineOp('apoReference', function* apoReference(inputs: ApoReferenceInputs, options: ApoReferenceOptions): Gen<{ reference: Tensor<'f32'> }> {
  const a = new OpArgs('apoReference', inputs, options);
  const cur = a.float('current');
  const prev = a.float('previous', { shape: cur.shape });
  const alpha = a.num('alpha');
  const backend = a.backend();
  const reference = a.out('reference', 'f32', cur.shape);
  if (backend === 'js') ref.apoReference(cur.data as ArrayLike<number>, prev.data as ArrayLike<number>, reference.data, alpha);
  else yield nat().apoReference(reference.data.length, f32Data(cur), f32Data(prev), reference.data, alpha, backend === 'cuda');
  return { reference };
});

export interface ListwiseLossInputs {
  /** summed sequence log-probs of K responses per prompt [B,K] (pro, pl: best first) */
  policy: TensorLike;
  /** the same under the reference model [B,K] (lipo, pl; unused by pro) */
  ref?: TensorLike;
  /** lipo: relevance labels ψ; pro: reward scores r [B,K]; unused by pl */
  labels?: TensorLike;
  /** pro: response lengths [B,K] (f32 or i32, > 0; default 1) */
  lengths?: TensorLike;
}
export interface ListwiseLossOptions extends CommonOptions, Out<'losses' | 'gradPolicy'> {
  type: ListwiseType;
  /** β > 0 (lipo, pl; unused by pro, where it may be omitted) */
  beta?: number;
  /** pro: weight of the SFT term on the best response (≥ 0, required) */
  sftWeight?: number;
}

/**
 * Listwise losses over K responses per prompt: LiPO-λ `Σ_{ψi>ψj} Δ_ij softplus(s_j − s_i)`
 * (Δ held constant), PRO's temperature-weighted ranking loss plus its SFT term, and the
 * Plackett-Luce loss `−Σ_k log(e^{s_k} / Σ_{i≥k} e^{s_i})`.
 */
export const listwiseLoss = defineOp('listwiseLoss', function* listwiseLoss(
  inputs: ListwiseLossInputs, options: ListwiseLossOptions,
): Gen<{ losses: Tensor<'f32'>; loss: number; gradPolicy: Tensor<'f32'> }> {
  const a = new OpArgs('listwiseLoss', inputs, options);
  const pol = a.float('policy', { rank: 2 });
  const shape = pol.shape;
  const [B, K] = shape as [number, number];
  const type = a.oneOf('type', LISTWISE_TYPES);
  const pro = type === 'pro';
  const refT = pro ? undefined : a.float('ref', { shape });
  const labT = type === 'pl' ? undefined : a.float('labels', { shape });
  const beta = pro ? (a.num('beta', { optional: true, gt: 0 }) ?? 1) : a.num('beta', { gt: 0 });
  const sftWeight = pro ? a.num('sftWeight', { min: 0 }) : 0;
  const backend = a.backend();
  const js = backend === 'js';
  if (backend === 'cuda' && K > 4000) a.rangeError(`the cuda backend takes lists of at most 4000 items (K = ${K})`);
  const len = pro && a.inputs.lengths !== undefined && a.inputs.lengths !== null ? lengthData(a, 'lengths', shape, js) : undefined;
  const losses = a.out('losses', 'f32', [B]);
  const gradPolicy = a.out('gradPolicy', 'f32', shape);
  let loss: number;
  if (js) {
    loss = ref.listwiseLoss(type, B, K, pol.data as ArrayLike<number>, dataFor(refT, true), dataFor(labT, true), len, beta, sftWeight,
      losses.data, gradPolicy.data);
  } else {
    const f = (x: Tensor | undefined) => (x === undefined ? null : f32Data(x));
    const sc = a.scalars(2);
    yield nat().listwiseLoss(B, K, LIST_CODE[type], f32Data(pol), f(refT), f(labT), (len as F32) ?? null, losses.data, gradPolicy.data,
      beta, sftWeight, backend === 'cuda', sc.data);
    loss = sc.get(0);
  }
  return { losses, loss, gradPolicy };
});

export interface FusedPreferenceLossInputs {
  /** [2B, T, V] (f32, f64, f16, bf16): rows 0..B−1 the chosen responses, B..2B−1 the rejected ones */
  logits: TensorLike;
  /** [2B, T] i32: next-token ids (ignoreIndex = not counted) */
  labels: TensorLike;
  /** [2B, T] u8 or f32: which tokens count (default: all) */
  mask?: TensorLike;
  /** [2B]: summed reference log-probs of the same rows (not used by orpo / simpo) */
  refLogp?: TensorLike;
  /** inpo: [2B] summed log-probs under the previous iterate */
  prevLogp?: TensorLike;
  /** xpo: [B] */
  policyExplore?: TensorLike;
  /** dno: [B] in [0, 1] */
  preferenceProb?: TensorLike;
}
export interface FusedPreferenceLossOptions extends PreferenceOptions,
  Out<'gradLogits' | 'losses' | 'gradPolicyChosen' | 'gradPolicyRejected' | 'chosenRewards' | 'rejectedRewards' | 'margins' | 'gradPolicyExplore'> {
  /** softmax temperature τ > 0 (default 1) */
  temperature?: number;
  /** label value that marks a token as not counted (default −100) */
  ignoreIndex?: number;
}
export interface FusedPreferenceLossResult extends PreferenceLossResult {
  /** dLoss/dLogits [2B, T, V] (f32) */
  gradLogits: Tensor<'f32'>;
}

/**
 * `preferenceLoss` straight from the logits: log-softmax, gather, masked sequence sums (length
 * averages for orpo / simpo; the counted-token counts are ipo's lengths with `lengthNormalize`),
 * the loss and its backward, in one call that reads the logits twice and writes `gradLogits`.
 * For rpo and orpo the chosen NLL is the chosen row's own (−sum, or −mean for orpo), so its
 * gradient flows into `gradLogits`. Equal to logprobs → sequenceLogprobs → preferenceLoss →
 * logprobsBackward.
 */
export const fusedPreferenceLoss = defineOp('fusedPreferenceLoss', function* fusedPreferenceLoss(inputs: FusedPreferenceLossInputs, options: FusedPreferenceLossOptions): Gen<FusedPreferenceLossResult> {
  const a = new OpArgs('fusedPreferenceLoss', inputs, options);
  const logits = a.tensor('logits', LOGITS, { rank: 3 });
  const [R, T, V] = logits.shape as [number, number, number];
  if (R % 2 !== 0) a.rangeError(`input 'logits' must have an even first dimension 2B (chosen rows, then rejected), got ${R}`);
  const B = R / 2;
  const { labels, lab, mask, md, P, refLogp, prevLogp, explore, prob, temperature, ignoreIndex } = fusedTokenInputs(a, B, T, V);
  const t = P.type;
  const backend = a.backend();
  const gradLogits = a.out('gradLogits', 'f32', logits.shape);
  const { losses, gradPolicyChosen, gradPolicyRejected, chosenRewards, rejectedRewards, margins, gx } = fusedOutputs(a, B, t);
  let loss: number, accuracy: number;
  if (backend === 'js') {
    [loss, accuracy] = ref.fusedPreferenceLoss(t, B, T, V, {
      logits: readFloat(logits), labels: lab, mask: md, refLogp: dataFor(refLogp, true),
      prevLogp: dataFor(prevLogp, true), explore: dataFor(explore, true), prob: dataFor(prob, true),
    }, P, P.lengthNormalize, temperature, ignoreIndex, {
      losses: losses.data, gc: gradPolicyChosen.data, gr: gradPolicyRejected.data, cr: chosenRewards.data, rj: rejectedRewards.data,
      margins: margins.data, gx: gx?.data, gradLogits: gradLogits.data,
    });
  } else {
    const f = (x: Tensor | undefined) => (x === undefined ? null : f32Data(x));
    const L = logitsData(logits);
    const sc = a.scalars(2);
    yield nat().fusedPreferenceLoss(
      B, T, V, TYPE_CODE[t], P.lengthNormalize, L.code, L.data, labels.data as Int32Array, maskData(mask), f(refLogp), f(prevLogp), f(explore), f(prob),
      gradLogits.data, losses.data, gradPolicyChosen.data, gradPolicyRejected.data, chosenRewards.data, rejectedRewards.data,
      margins.data, gx ? gx.data : null, P.beta, P.epsilon, P.eta, P.alpha, P.tau, P.gamma, temperature, ignoreIndex,
      backend === 'cuda', sc.data,
    );
    loss = sc.get(0);
    accuracy = sc.get(1);
  }
  const res: FusedPreferenceLossResult = {
    losses, loss, gradPolicyChosen, gradPolicyRejected, chosenRewards, rejectedRewards, margins, accuracy, gradLogits,
  };
  if (gx) res.gradPolicyExplore = gx;
  return res;
});
