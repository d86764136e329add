/**
 * Token log-probs from logits (SPEC §1).
 *
 * - `logprobs`: `logp = z_y − lse`, `lse = log Σ_j exp(z_j)`, `entropy = lse − Σ_j p_j z_j` with
 *   `z = logits / temperature` — the log-softmax-and-gather of every policy-gradient method
 *   (PPO, "Proximal Policy Optimization Algorithms" eq. 7 needs log π(y)), computed in one pass
 *   over the logits without materialising the log-softmax.
 * - `logprobsBackward`: `∂logp/∂logits_j = (1[j=y] − p_j)/τ`, `∂entropy/∂logits_j = −p_j (z_j − lse + H)/τ`.
 * - `vocabKl` / `vocabKlBackward`: the exact full-vocabulary KL between `p = softmax(logits/τ)` and
 *   `q = softmax(refLogits/τ)`: `'reverse'` `KL(p‖q)` (the RLHF penalty, exact instead of sampled),
 *   `'forward'` `KL(q‖p)` (distillation, "A Little Help Goes a Long Way"; SparsePO's `k_t = −KL(q‖p)`).
 * - `sequenceLogprobs`: masked per-sequence sums (or means) of token log-probs (DPO eq. 7's
 *   `log π(y|x) = Σ_t log π(y_t|x, y_<t)`).
 */
import { defineOp, opNative, type Gen } from '../async.js';
import type { NativeCore } from '../native.js';
import * as ref from '../reference/logprobs.js';
import type { Tensor, AnyTensor, TensorLike } from '../tensor.js';
import {
  f32Data, f32DataOpt, ignoreIndexOf, LOGITS, logitsData, maskData, OpArgs, readLabels, temperatureOf, widenF32, type CommonOptions,
} from '../validate.js';

type F32 = Float32Array;
type Logits = Float32Array | Uint16Array;
interface LogprobsNative extends NativeCore {
  logprobs(N: number, V: number, dt: number, logits: Logits, labels: Int32Array, logp: F32, lse: F32, entropy: F32 | null,
    temperature: number, ignoreIndex: number, cuda: boolean): void;
  logprobsBackward(N: number, V: number, dt: number, logits: Logits, labels: Int32Array, gradLogp: F32, gradEntropy: F32 | null,
    lse: F32 | null, gradLogits: F32, temperature: number, ignoreIndex: number, cuda: boolean): void;
  vocabKl(N: number, V: number, dt: number, logits: Logits, refLogits: Logits, hasLabels: boolean, labels: Int32Array, kl: F32,
    temperature: number, ignoreIndex: number, direction: number, cuda: boolean): void;
  vocabKlBackward(N: number, V: number, dt: number, logits: Logits, refLogits: Logits, hasLabels: boolean, labels: Int32Array,
    gradKl: F32, gradLogits: F32, temperature: number, ignoreIndex: number, direction: number, cuda: boolean): void;
  sequenceLogprobs(B: number, T: number, logp: F32, mask: Uint8Array | F32, sum: F32, count: Int32Array, average: boolean, cuda: boolean): void;
}
const nat = () => opNative<LogprobsNative>();
type Out<K extends string> = { out?: Partial<Record<K, AnyTensor>> };

export type KlDirection = ref.KlDirection;
export const KL_DIRECTIONS: readonly KlDirection[] = ['reverse', 'forward'];
const NO_LABELS = new Int32Array(0);

/** logits [N,V] or [B,T,V] (f32/f64/f16/bf16); returns the tensor, N, V and the row shape. */
function readLogits(a: OpArgs, name = 'logits') {
  const logits = a.tensor(name, LOGITS, { rank: [2, 3] });
  const V = logits.shape[logits.shape.length - 1];
  const rows = logits.shape.slice(0, -1);
  const N = rows.reduce((x, y) => x * y, 1);
  return { logits, V, N, rows };
}

export interface LogprobsInputs { logits: TensorLike; labels: TensorLike }
export interface LogprobsOptions extends CommonOptions, Out<'logp' | 'lse' | 'entropy'> {
  /** z = logits / temperature (> 0; default 1), applied on the fly */
  temperature?: number;
  /** label value of rows to skip (not read; outputs 0); default −100 */
  ignoreIndex?: number;
  /** also return the entropy of softmax(z) (default false) */
  entropy?: boolean;
}
export interface LogprobsResult { logp: Tensor<'f32'>; lse: Tensor<'f32'>; entropy?: Tensor<'f32'> }

/**
 * Token log-probs: `logp = z_y − lse`, `lse = log Σ_j e^{z_j}`, and optionally
 * `entropy = lse − Σ_j softmax(z)_j z_j`, with `z = logits / temperature`. Each output is shaped
 * like `labels`. Rows whose label is `ignoreIndex` give 0 and their logits are not read.
 */
export const logprobs = defineOp('logprobs', function* logprobs(inputs: LogprobsInputs, options?: LogprobsOptions): Gen<LogprobsResult> {
  const a = new OpArgs('logprobs', inputs, options);
  const { logits, V, N, rows } = readLogits(a);
  const temperature = temperatureOf(a);
  const ignore = ignoreIndexOf(a);
  const labels = readLabels(a, rows, V, ignore, false)!;
  const wantH = a.bool('entropy', false);
  const backend = a.backend();
  const logp = a.out('logp', 'f32', rows);
  const lse = a.out('lse', 'f32', rows);
  const entropy = wantH ? a.out('entropy', 'f32', rows) : undefined;
  if (backend === 'js') ref.logprobs(ref.source(logits), labels, N, V, temperature, ignore, logp.data, lse.data, entropy?.data);
  else {
    const l = logitsData(logits);
    yield nat().logprobs(N, V, l.code, l.data, labels, logp.data, lse.data, entropy?.data ?? null, temperature, ignore, backend === 'cuda');
  }
  return entropy ? { logp, lse, entropy } : { logp, lse };
});

export interface LogprobsBackwardInputs {
  logits: TensorLike;
  labels: TensorLike;
  /** ∂L/∂logp, shaped like labels */
  gradLogp: TensorLike;
  /** ∂L/∂entropy, shaped like labels */
  gradEntropy?: TensorLike;
  /** lse from the forward call: skips recomputing it (when gradEntropy is absent) */
  lse?: TensorLike;
}
export interface LogprobsBackwardOptions extends CommonOptions, Out<'gradLogits'> {
  temperature?: number;
  ignoreIndex?: number;
}

/**
 * Gradient with respect to the logits: `gradLogp·(1[j=y] − p_j)/τ − gradEntropy·p_j (z_j − lse + H)/τ`
 * (f32, shaped like `logits`); ignored rows get zero gradient.
 */
export const logprobsBackward = defineOp('logprobsBackward', function* logprobsBackward(inputs: LogprobsBackwardInputs, options?: LogprobsBackwardOptions): Gen<{ gradLogits: Tensor<'f32'> }> {
  const a = new OpArgs('logprobsBackward', inputs, options);
  const { logits, V, N, rows } = readLogits(a);
  const temperature = temperatureOf(a);
  const ignore = ignoreIndexOf(a);
  const labels = readLabels(a, rows, V, ignore, false)!;
  const gradLogp = a.float('gradLogp', { shape: rows });
  const gradEntropy = a.float('gradEntropy', { optional: true, shape: rows });
  const lse = a.float('lse', { optional: true, shape: rows });
  const backend = a.backend();
  const gradLogits = a.out('gradLogits', 'f32', logits.shape);
  if (backend === 'js')
    ref.logprobsBackward(ref.source(logits), labels, N, V, temperature, ignore, gradLogp.data, gradEntropy?.data, lse?.data, gradLogits.data);
  else {
    const l = logitsData(logits);
    yield nat().logprobsBackward(N, V, l.code, l.data, labels, f32Data(gradLogp), f32DataOpt(gradEntropy), f32DataOpt(lse), gradLogits.data,
      temperature, ignore, backend === 'cuda');
  }
  return { gradLogits };
});

export interface VocabKlInputs { logits: TensorLike; refLogits: TensorLike; labels?: TensorLike }
export interface VocabKlOptions extends CommonOptions, Out<'kl'> {
  /** 'reverse' (default) KL(p‖q), 'forward' KL(q‖p); p = softmax(logits/τ), q = softmax(refLogits/τ) */
  direction?: KlDirection;
  temperature?: number;
  ignoreIndex?: number;
}

function klInputs(a: OpArgs) {
  const { logits, V, N, rows } = readLogits(a);
  const refLogits = a.tensor('refLogits', LOGITS, { shape: logits.shape });
  const direction = a.oneOf('direction', KL_DIRECTIONS, 'reverse');
  const temperature = temperatureOf(a);
  const ignore = ignoreIndexOf(a);
  const labels = readLabels(a, rows, V, ignore, true);
  return { logits, refLogits, V, N, rows, direction, temperature, ignore, labels };
}

/** Native logits pair: one dtype code for both (a mixed pair is widened to f32 first). */
function nativePair(x: Tensor, y: Tensor) {
  let lx = logitsData(x), ly = logitsData(y);
  if (lx.code !== ly.code) {
    lx = { data: widenF32(x), code: 0 };
    ly = { data: widenF32(y), code: 0 };
  }
  return { lx, ly };
}

/** Exact per-token KL over the whole vocabulary; rows whose label is ignoreIndex give 0. */
export const vocabKl = defineOp('vocabKl', function* vocabKl(inputs: VocabKlInputs, options?: VocabKlOptions): Gen<{ kl: Tensor<'f32'> }> {
  const a = new OpArgs('vocabKl', inputs, options);
  const x = klInputs(a);
  const backend = a.backend();
  const kl = a.out('kl', 'f32', x.rows);
  if (backend === 'js')
    ref.vocabKl(ref.source(x.logits), ref.source(x.refLogits), x.labels, x.N, x.V, x.temperature, x.ignore, x.direction, kl.data);
  else {
    const { lx, ly } = nativePair(x.logits, x.refLogits);
    yield nat().vocabKl(x.N, x.V, lx.code, lx.data, ly.data, !!x.labels, x.labels ?? NO_LABELS, kl.data, x.temperature, x.ignore,
      x.direction === 'reverse' ? 0 : 1, backend === 'cuda');
  }
  return { kl };
});

export interface VocabKlBackwardInputs extends VocabKlInputs { gradKl: TensorLike }

/**
 * Gradient of vocabKl with respect to `logits` only: reverse `p_j((log p_j − log q_j) − KL)·g/τ`,
 * forward `(p_j − q_j)·g/τ`; ignored rows get zero gradient.
 */
export const vocabKlBackward = defineOp('vocabKlBackward', function* vocabKlBackward(inputs: VocabKlBackwardInputs, options?: VocabKlOptions & Out<'gradLogits'>): Gen<{ gradLogits: Tensor<'f32'> }> {
  const a = new OpArgs('vocabKlBackward', inputs, options);
  const x = klInputs(a);
  const gradKl = a.float('gradKl', { shape: x.rows });
  const backend = a.backend();
  const gradLogits = a.out('gradLogits', 'f32', x.logits.shape);
  if (backend === 'js')
    ref.vocabKlBackward(ref.source(x.logits), ref.source(x.refLogits), x.labels, x.N, x.V, x.temperature, x.ignore, x.direction,
      gradKl.data, gradLogits.data);
  else {
    const { lx, ly } = nativePair(x.logits, x.refLogits);
    yield nat().vocabKlBackward(x.N, x.V, lx.code, lx.data, ly.data, !!x.labels, x.labels ?? NO_LABELS, f32Data(gradKl), gradLogits.data,
      x.temperature, x.ignore, x.direction === 'reverse' ? 0 : 1, backend === 'cuda');
  }
  return { gradLogits };
});

export interface SequenceLogprobsInputs { logp: TensorLike; mask: TensorLike }
export interface SequenceLogprobsOptions extends CommonOptions, Out<'sum' | 'count'> {
  /** divide each sum by its count (an empty row gives 0); default false */
  average?: boolean;
}

/** `sum_b = Σ_t m_bt·logp_bt` (÷ `count_b` when `average`), `count_b = Σ_t m_bt` (i32). */
export const sequenceLogprobs = defineOp('sequenceLogprobs', function* sequenceLogprobs(inputs: SequenceLogprobsInputs, options?: SequenceLogprobsOptions): Gen<{ sum: Tensor<'f32'>; count: Tensor<'i32'> }> {
  const a = new OpArgs('sequenceLogprobs', inputs, options);
  const logp = a.float('logp', { rank: 2 });
  const [B, T] = logp.shape as [number, number];
  const mask = a.mask('mask', { shape: logp.shape });
  const average = a.bool('average', false);
  const backend = a.backend();
  const sum = a.out('sum', 'f32', [B]);
  const count = a.out('count', 'i32', [B]);
  if (backend === 'js') ref.sequenceLogprobs(logp.data, mask.data, B, T, average, sum.data, count.data);
  else yield nat().sequenceLogprobs(B, T, f32Data(logp), maskData(mask)!, sum.data, count.data, average, backend === 'cuda');
  return { sum, count };
});
