/**
 * Token log-probs straight from hidden states (SPEC §8): the LM-head projection
 * `logits = hidden·weightᵀ + bias` fused with the log-softmax and the gather, computed one
 * vocabulary chunk at a time with an online log-sum-exp, so the `[N, V]` logits — the largest
 * tensor of RLHF training — never exist ("Cut Your Losses in Large-Vocabulary Language Models"
 * (Cut Cross-Entropy) §4; Liger Kernel's fused linear cross-entropy).
 *
 * - `linearLogprobs`: `logprobs(hidden·weightᵀ + bias)` (SPEC §1's logp, lse, entropy).
 * - `linearLogprobsBackward`: gradHidden, gradWeight (and gradBias) from gradLogp (and
 *   gradEntropy), recomputing the logits chunk by chunk.
 * - `linearPreferenceLoss`: `fusedPreferenceLoss` (SPEC §4, every type) from hidden states.
 */
import { defineOp, opNative, type Gen } from '../async.js';
import type { NativeCore } from '../native.js';
import * as ref from '../reference/linear.js';
import { readFloat, type AnyTensor, type Tensor, type TensorLike } from '../tensor.js';
import {
  f32Data, f32DataOpt, ignoreIndexOf, LOGITS, logitsData, maskData, OpArgs, readLabels, temperatureOf, widenF32, type CommonOptions,
} from '../validate.js';
import type { FusedPreferenceLossInputs, PreferenceLossResult, PreferenceOptions } from './preference.js';
import { dataFor, fusedOutputs, fusedTokenInputs, TYPE_CODE } from './preference_args.js';

type F32 = Float32Array;
type Half = Float32Array | Uint16Array;
type OptF32 = Float32Array | null;
interface LinearNative extends NativeCore {
  linearLogprobs(N: number, V: number, D: number, dt: number, hidden: Half, weight: Half, bias: OptF32, labels: Int32Array, logp: F32,
    lse: F32, entropy: OptF32, temperature: number, ignoreIndex: number, chunk: number, cuda: boolean): void;
  linearLogprobsBackward(N: number, V: number, D: number, dt: number, hidden: Half, weight: Half, bias: OptF32, labels: Int32Array,
    gradLogp: F32, gradEntropy: OptF32, lse: OptF32, entropy: OptF32, gradHidden: F32, gradWeight: F32, gradBias: OptF32,
    temperature: number, ignoreIndex: number, chunk: number, cuda: boolean): void;
  linearPreferenceLoss(
    B: number, T: number, V: number, D: number, type: number, lengthNormalize: boolean, dt: number, hidden: Half, weight: Half,
    bias: OptF32, labels: Int32Array, mask: Uint8Array | F32 | null, refLogp: OptF32, prevLogp: OptF32, explore: OptF32, prob: OptF32,
    gradHidden: F32, gradWeight: F32, gradBias: OptF32, losses: F32, gc: F32, gr: F32, cr: F32, rj: F32, margins: F32, gx: OptF32,
    beta: number, epsilon: number, eta: number, alpha: number, tau: number, gamma: number, temperature: number, ignoreIndex: number,
    chunk: number, cuda: boolean, scalars: Float64Array,
  ): void;
}
const nat = () => opNative<LinearNative>();
type Out<K extends string> = { out?: Partial<Record<K, AnyTensor>> };

/** Options shared by the linear ops. */
export interface LinearOptions extends CommonOptions {
  /** z = (hidden·weightᵀ + bias) / temperature (> 0; default 1) */
  temperature?: number;
  /** label value of rows to skip (their hidden states are not read; outputs 0); default −100 */
  ignoreIndex?: number;
  /**
   * vocabulary columns computed per pass (native backends; rounded up to the register tile).
   * Memory and speed knob only: default 512 on the CPU (8192 for the CUDA backward's dZ chunk).
   */
  chunk?: number;
}

const HALF = (t: Tensor) => t.dtype === 'f16' || t.dtype === 'bf16';

/**
 * hidden [N,D] or [B,T,D], weight [V,D] (same dtype; f32 and f64 may mix), bias [V]?:
 * the tensors, sizes and the row shape (labels' shape).
 */
function readLinear(a: OpArgs, rank: readonly number[] = [2, 3]) {
  const hidden = a.tensor('hidden', LOGITS, { rank });
  const D = hidden.shape[hidden.shape.length - 1];
  const rows = hidden.shape.slice(0, -1);
  const N = rows.reduce((x, y) => x * y, 1);
  const weight = a.tensor('weight', LOGITS, { rank: 2 });
  const V = weight.shape[0];
  if (weight.shape[1] !== D) a.rangeError(`input 'weight' must have shape [V, ${D}] (D from 'hidden'), got [${weight.shape.join(', ')}]`);
  if (V < 1) a.rangeError(`input 'weight' must have at least one row (V ≥ 1), got shape [${weight.shape.join(', ')}]`);
  if (D < 1) a.rangeError(`input 'hidden' must have a last dimension D ≥ 1, got shape [${hidden.shape.join(', ')}]`);
  if ((HALF(hidden) || HALF(weight)) && hidden.dtype !== weight.dtype)
    a.typeError(`input 'weight' must have the dtype of 'hidden' ('${hidden.dtype}'), got '${weight.dtype}'`);
  const bias = a.tensor('bias', LOGITS, { optional: true, shape: [V] });
  const chunk = a.num('chunk', { default: 0, integer: true, min: 0, max: 2 ** 31 });
  return { hidden, weight, bias, N, V, D, rows, chunk };
}
type Lin = ReturnType<typeof readLinear>;

/** Native views: hidden and weight with one dtype code, bias as f32. */
function nativeLinear(x: Lin) {
  const h = logitsData(x.hidden), w = logitsData(x.weight);
  const bias = x.bias ? widenF32(x.bias) : null;
  return { code: h.code, hidden: h.data, weight: w.data, bias };
}

/** The js reference's view: numbers (f16/bf16 widened exactly). */
const refLinear = (x: Lin): ref.LinSrc =>
  ({ h: readFloat(x.hidden), w: readFloat(x.weight), b: x.bias ? readFloat(x.bias) : undefined, N: x.N, V: x.V, D: x.D });

export interface LinearLogprobsInputs {
  /** [N, D] or [B, T, D] (f32, f64, f16, bf16): the final hidden states */
  hidden: TensorLike;
  /** [V, D] (the dtype of hidden; f32 and f64 may mix): the LM head, row j = vocabulary entry j */
  weight: TensorLike;
  /** [V] (any float dtype; widened to f32) */
  bias?: TensorLike;
  /** [N] or [B, T] i32: next-token ids, each in [0, V) or ignoreIndex */
  labels: TensorLike;
}
export interface LinearLogprobsOptions extends LinearOptions, Out<'logp' | 'lse' | 'entropy'> {
  /** also return the entropy of softmax(z) (default false) */
  entropy?: boolean;
}
export interface LinearLogprobsResult { logp: Tensor<'f32'>; lse: Tensor<'f32'>; entropy?: Tensor<'f32'> }

/**
 * `logprobs(hidden·weightᵀ + bias)` without the logits: `logp = z_y − lse`, `lse = log Σ_j e^{z_j}`
 * and optionally `entropy = lse − Σ_j softmax(z)_j z_j`, `z = (hidden·weightᵀ + bias)/temperature`.
 * Each output is shaped like `labels`; rows whose label is `ignoreIndex` give 0 and their hidden
 * states are not read.
 */
export const linearLogprobs = defineOp('linearLogprobs', function* linearLogprobs(inputs: LinearLogprobsInputs, options?: LinearLogprobsOptions): Gen<LinearLogprobsResult> {
  const a = new OpArgs('linearLogprobs', inputs, options);
  const x = readLinear(a);
  const temperature = temperatureOf(a);
  const ignore = ignoreIndexOf(a);
  const labels = readLabels(a, x.rows, x.V, ignore, false)!;
  const wantH = a.bool('entropy', false);
  const backend = a.backend();
  const logp = a.out('logp', 'f32', x.rows);
  const lse = a.out('lse', 'f32', x.rows);
  const entropy = wantH ? a.out('entropy', 'f32', x.rows) : undefined;
  if (backend === 'js') ref.linearLogprobs(refLinear(x), labels, temperature, ignore, logp.data, lse.data, entropy?.data);
  else {
    const n = nativeLinear(x);
    yield nat().linearLogprobs(x.N, x.V, x.D, n.code, n.hidden, n.weight, n.bias, labels, logp.data, lse.data, entropy?.data ?? null,
      temperature, ignore, x.chunk, backend === 'cuda');
  }
  return entropy ? { logp, lse, entropy } : { logp, lse };
});

export interface LinearLogprobsBackwardInputs extends LinearLogprobsInputs {
  /** ∂L/∂logp, shaped like labels */
  gradLogp: TensorLike;
  /** ∂L/∂entropy, shaped like labels */
  gradEntropy?: TensorLike;
  /** lse from the forward call: without it the native backends run the forward first (one more pass) */
  lse?: TensorLike;
  /** entropy from the forward call: used with gradEntropy (else recomputed along with lse) */
  entropy?: TensorLike;
}
export interface LinearLogprobsBackwardResult { gradHidden: Tensor<'f32'>; gradWeight: Tensor<'f32'>; gradBias?: Tensor<'f32'> }

/**
 * Gradients of `Σ gradLogp·logp + gradEntropy·entropy`: with
 * `dZ_ij = gradLogp_i·(1[j=y_i] − p_ij)/τ − gradEntropy_i·p_ij (z_ij − lse_i + H_i)/τ`,
 * `gradHidden = dZ·weight` (shaped like hidden; ignored rows 0), `gradWeight = dZᵀ·hidden` [V,D],
 * `gradBias = Σ_i dZ_i` [V] (only when `bias` is given). f32.
 */
export const linearLogprobsBackward = defineOp('linearLogprobsBackward', function* linearLogprobsBackward(
  inputs: LinearLogprobsBackwardInputs, options?: LinearOptions & Out<'gradHidden' | 'gradWeight' | 'gradBias'>,
): Gen<LinearLogprobsBackwardResult> {
  const a = new OpArgs('linearLogprobsBackward', inputs, options);
  const x = readLinear(a);
  const temperature = temperatureOf(a);
  const ignore = ignoreIndexOf(a);
  const labels = readLabels(a, x.rows, x.V, ignore, false)!;
  const gradLogp = a.float('gradLogp', { shape: x.rows });
  const gradEntropy = a.float('gradEntropy', { optional: true, shape: x.rows });
  const lse = a.float('lse', { optional: true, shape: x.rows });
  const entropy = a.float('entropy', { optional: true, shape: x.rows });
  const backend = a.backend();
  const gradHidden = a.out('gradHidden', 'f32', x.hidden.shape);
  const gradWeight = a.out('gradWeight', 'f32', [x.V, x.D]);
  const gradBias = x.bias ? a.out('gradBias', 'f32', [x.V]) : undefined;
  if (backend === 'js')
    ref.linearLogprobsBackward(refLinear(x), labels, temperature, ignore, gradLogp.data, gradEntropy?.data, lse?.data, gradHidden.data,
      gradWeight.data, gradBias?.data);
  else {
    const n = nativeLinear(x);
    yield nat().linearLogprobsBackward(x.N, x.V, x.D, n.code, n.hidden, n.weight, n.bias, labels, f32Data(gradLogp),
      f32DataOpt(gradEntropy), f32DataOpt(lse), f32DataOpt(entropy), gradHidden.data, gradWeight.data, gradBias?.data ?? null,
      temperature, ignore, x.chunk, backend === 'cuda');
  }
  return gradBias ? { gradHidden, gradWeight, gradBias } : { gradHidden, gradWeight };
});

export interface LinearPreferenceLossInputs extends Omit<FusedPreferenceLossInputs, 'logits'> {
  /** [2B, T, D]: rows 0..B−1 the chosen responses, B..2B−1 the rejected ones */
  hidden: TensorLike;
  /** [V, D] (the dtype of hidden) */
  weight: TensorLike;
  /** [V] */
  bias?: TensorLike;
}
export interface LinearPreferenceLossOptions extends PreferenceOptions,
  Out<'gradHidden' | 'gradWeight' | 'gradBias' | 'losses' | 'gradPolicyChosen' | 'gradPolicyRejected' | 'chosenRewards' | 'rejectedRewards' | 'margins' | 'gradPolicyExplore'> {
  temperature?: number;
  ignoreIndex?: number;
  chunk?: number;
}
export interface LinearPreferenceLossResult extends PreferenceLossResult {
  /** dLoss/dHidden [2B, T, D] (f32) */
  gradHidden: Tensor<'f32'>;
  /** dLoss/dWeight [V, D] (f32) */
  gradWeight: Tensor<'f32'>;
  /** dLoss/dBias [V] (f32), when bias is given */
  gradBias?: Tensor<'f32'>;
}

/**
 * `fusedPreferenceLoss` from hidden states: `linearLogprobs` of the counted tokens, masked
 * sequence sums, the loss of `type` (every `preferenceLoss` type) and its backward through
 * `linearLogprobsBackward`, never forming the `[2B, T, V]` logits. Returns the loss, the metrics and
 * the gradients of the mean loss with respect to hidden, weight (and bias).
 */
export const linearPreferenceLoss = defineOp('linearPreferenceLoss', function* linearPreferenceLoss(
  inputs: LinearPreferenceLossInputs, options: LinearPreferenceLossOptions,
): Gen<LinearPreferenceLossResult> {
  const a = new OpArgs('linearPreferenceLoss', inputs, options);
  const x = readLinear(a, [3]);
  const [R, T] = x.rows as [number, number];
  if (R % 2 !== 0) a.rangeError(`input 'hidden' must have an even first dimension 2B (chosen rows, then rejected), got ${R}`);
  const B = R / 2;
  const { labels, lab, mask, md, P, refLogp, prevLogp, explore, prob, ignoreIndex } = fusedTokenInputs(a, B, T, x.V);
  const temperature = temperatureOf(a);
  const t = P.type;
  const backend = a.backend();
  const gradHidden = a.out('gradHidden', 'f32', x.hidden.shape);
  const gradWeight = a.out('gradWeight', 'f32', [x.V, x.D]);
  const gradBias = x.bias ? a.out('gradBias', 'f32', [x.V]) : undefined;
  const { losses, gradPolicyChosen, gradPolicyRejected, chosenRewards, rejectedRewards, margins, gx } = fusedOutputs(a, B, t);
  let loss: number, accuracy: number;
  if (backend === 'js') {
    [loss, accuracy] = ref.linearPreferenceLoss(t, B, T, refLinear(x), {
      labels: lab, mask: md, refLogp: dataFor(refLogp, true), prevLogp: dataFor(prevLogp, true),
      explore: dataFor(explore, true), prob: dataFor(prob, true),
    }, P, P.lengthNormalize, temperature, ignoreIndex, {
      losses: losses.data, gc: gradPolicyChosen.data, gr: gradPolicyRejected.data, cr: chosenRewards.data, rj: rejectedRewards.data,
      margins: margins.data, gx: gx?.data, gradHidden: gradHidden.data, gradWeight: gradWeight.data, gradBias: gradBias?.data,
    });
  } else {
    const f = (v: Tensor | undefined) => (v === undefined ? null : f32Data(v));
    const n = nativeLinear(x);
    const sc = a.scalars(2);
    yield nat().linearPreferenceLoss(
      B, T, x.V, x.D, TYPE_CODE[t], P.lengthNormalize, n.code, n.hidden, n.weight, n.bias, labels.data as Int32Array, maskData(mask),
      f(refLogp), f(prevLogp),
      f(explore), f(prob), gradHidden.data, gradWeight.data, gradBias?.data ?? null, losses.data, gradPolicyChosen.data,
      gradPolicyRejected.data, chosenRewards.data, rejectedRewards.data, margins.data, gx ? gx.data : null, P.beta, P.epsilon, P.eta,
      P.alpha, P.tau, P.gamma, temperature, ignoreIndex, x.chunk, backend === 'cuda', sc.data,
    );
    loss = sc.get(0);
    accuracy = sc.get(1);
  }
  const res: LinearPreferenceLossResult = {
    losses, loss, gradPolicyChosen, gradPolicyRejected, chosenRewards, rejectedRewards, margins, accuracy, gradHidden, gradWeight,
  };
  if (gradBias) res.gradBias = gradBias;
  if (gx) res.gradPolicyExplore = gx;
  return res;
});
