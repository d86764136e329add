/**
 * Every public op (SPEC §1–7, plus p3oLoss) as a table row: a generator of small valid inputs
 * (random shapes including empty ones, random dtypes among those accepted), the role of each
 * input (what a mutation may break), and the numeric / enum options it reads. Shared by the
 * property tests (tests/fuzz-api.test.ts), the worker-thread tests and the soak script
 * (bench/soak.ts), so it depends on nothing but the package itself (no vitest).
 */
import * as rk from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { mulberry32 } from '../prng.js';

/** Deterministic PRNG with the helpers the generators need. */
export function rng(seed: number, o: { wide?: number; dimMax?: number } = {}) {
  const wide = o.wide ?? 0;
  let dims = 0;
  const { next, normal } = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
  return {
    next, normal, int,
    bool: (p = 0.5) => next() < p,
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)],
    /**
     * a dimension: 0 now and then, mostly small, sometimes larger (scaled by `size`). With
     * `wide` > 0 the first dimension asked for is `wide` and every later one its minimum (0 or
     * lo): empty tensors next to one wide dimension (native kernels must not loop, allocate or
     * divide by that dimension as if the tensors had elements).
     */
    dim: (size: number, lo = 0) => {
      if (wide > 0) return dims++ === 0 ? wide : lo;
      const u = next();
      if (lo === 0 && u < 0.08) return 0;
      const hi = Math.max(lo + 1, o.dimMax ?? [3, 8, 33, 130][Math.min(3, size)]);
      return int(Math.max(lo, 1), hi);
    },
  };
}
export type Rng = ReturnType<typeof rng>;

/** What an input is, for the mutators: which dtypes it accepts and which values are out of range. */
export type Role =
  | 'float' // f32 / f64
  | 'logits' // f32 / f64 / f16 / bf16
  | 'mask' // u8 / f32
  | 'index' // i32 whose values index something (labels, token ids, layout)
  | 'int' // i32 values (token ids copied through, segment ids)
  | 'length' // f32 / f64 / i32, > 0
  | 'prob'; // float in [0, 1] (checked)

export interface Case {
  inputs: Record<string, Tensor>;
  options: Record<string, unknown>;
}

export interface OpSpec {
  name: string;
  run: (inputs: unknown, options: unknown) => Record<string, unknown>;
  gen: (r: Rng, size: number) => Case;
  /** role of each input (default 'float') */
  roles?: Record<string, Role>;
  /** numeric options read whenever present (in addition to those the case sets) */
  optNums?: string[];
  /** numeric options that may be ±Infinity */
  infinite?: string[];
  /** enum options and one valid value each */
  enums?: Record<string, string>;
  /** an out-of-range value in an 'index' input is always a RangeError (no ignore/mask escape) */
  strictIndex?: string[];
  /**
   * inputs computed from others (logprobsBackward's `lse`): a value mutation of another input
   * drops them, since a stale one is a different, unspecified call (docs/logprobs.md)
   */
  derived?: string[];
  /**
   * inputs whose ±Inf values the op does not define (value mutations use NaN and finite values
   * only): the linear family's hidden states and weights, where a ±Inf weight times a zero dZ is
   * NaN on the native backends and 0 in the reference (reported; SPEC §8 is silent)
   */
  finiteOnly?: string[];
  /** comparison tolerance against the js reference, relative to 1 + max |ref| of each output */
  tol?: number;
}

// ---------------------------------------------------------------------------------------------
// tensor builders

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
export function f32(r: Rng, shape: number[], scale = 1, shift = 0): Tensor<'f32'> {
  return rk.tensor(Float32Array.from({ length: numel(shape) }, () => shift + scale * r.normal()), shape, 'f32');
}
/** a float tensor in f32 or (now and then) f64 */
function fl(r: Rng, shape: number[], scale = 1, shift = 0): Tensor {
  const t = f32(r, shape, scale, shift);
  return r.bool(0.15) ? rk.tensor(Float64Array.from(t.data), shape, 'f64') : t;
}
function uni(r: Rng, shape: number[], lo = 0, hi = 1): Tensor<'f32'> {
  return rk.tensor(Float32Array.from({ length: numel(shape) }, () => Math.fround(lo + (hi - lo) * r.next())), shape, 'f32');
}
function mask(r: Rng, shape: number[]): Tensor {
  const n = numel(shape);
  const empty = r.bool(0.2);
  const vals = Array.from({ length: n }, () => (empty ? 0 : r.bool(0.75) ? 1 : 0));
  return r.bool() ? rk.tensor(Uint8Array.from(vals), shape, 'u8') : rk.tensor(Float32Array.from(vals), shape, 'f32');
}
function i32(shape: number[], f: (i: number) => number): Tensor<'i32'> {
  return rk.tensor(Int32Array.from({ length: numel(shape) }, (_, i) => f(i)), shape, 'i32');
}
function logitsT(r: Rng, shape: number[], dtype: 'f32' | 'f64' | 'f16' | 'bf16', scale = 2): Tensor {
  const x = Array.from({ length: numel(shape) }, () => scale * r.normal());
  if (dtype === 'f16') return rk.tensor(Uint16Array.from(x, rk.floatToF16), shape, 'f16');
  if (dtype === 'bf16') return rk.tensor(Uint16Array.from(x, rk.floatToBf16), shape, 'bf16');
  if (dtype === 'f64') return rk.tensor(Float64Array.from(x), shape, 'f64');
  return rk.tensor(Float32Array.from(x), shape, 'f32');
}
const LOGIT_DTYPES = ['f32', 'f32', 'f64', 'f16', 'bf16'] as const;
/** a probability distribution per row of V (some zeros) */
function probs(r: Rng, rows: number, V: number): Float32Array {
  const p = new Float32Array(rows * V);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < V; j++) s += p[i * V + j] = r.bool(0.2) ? 0 : r.next();
    if (s > 0) for (let j = 0; j < V; j++) p[i * V + j] = p[i * V + j] / s;
  }
  return p;
}
/** rows shaped [N] or [B,T] */
function rows(r: Rng, size: number): number[] {
  return r.bool() ? [r.dim(size)] : [r.dim(size), r.dim(size)];
}
function labelsFor(r: Rng, shape: number[], V: number, ignore = -100): Tensor<'i32'> {
  return i32(shape, () => (V === 0 || r.bool(0.2) ? ignore : r.int(0, V - 1)));
}

// ---------------------------------------------------------------------------------------------
// the table

const PREF_TYPES = ['dpo', 'cdpo', 'rdpo', 'ipo', 'hinge', 'rpo', 'xpo', 'inpo', 'dno', 'orpo', 'simpo'] as const;
function prefOptions(r: Rng, type: string): Record<string, unknown> {
  const o: Record<string, unknown> = { type, beta: Math.fround(0.05 + r.next()) };
  if (type === 'cdpo') o.epsilon = r.next() * 0.5;
  if (type === 'rdpo') o.epsilon = r.next() * 0.4;
  if (type === 'rpo') o.eta = r.next();
  if (type === 'xpo') o.alpha = r.next() * 0.1;
  if (type === 'inpo') { o.eta = 0.2 + r.next(); o.tau = r.next() * 0.2; }
  if (type === 'simpo') o.gamma = r.next();
  if (type === 'ipo' && r.bool()) o.lengthNormalize = true;
  return o;
}
const negAvg = (r: Rng, B: number) => rk.tensor(Float32Array.from({ length: B }, () => -0.3 - Math.abs(r.normal())), [B], 'f32');

function packLayout(r: Rng, size: number) {
  const n = r.dim(size);
  const L = r.int(1, [4, 12, 40, 100][Math.min(3, size)]);
  const lengths = Int32Array.from({ length: n }, () => r.int(0, L));
  const p = rk.packSequences({ lengths: rk.tensor(lengths, [n]) }, { capacity: L, backend: 'js' });
  return { n, L, lengths, packOf: p.packOf, offsetOf: p.offsetOf, P: p.packLengths.shape[0] };
}

/** hidden [...rows, D], weight [V, D] (same dtype; f32/f64 may mix), bias? [V]; temperature, chunk? */
function linearInputs(r: Rng, size: number, rs: number[]) {
  const D = r.dim(size, 1), V = r.dim(size, 1);
  const dt = r.pick(LOGIT_DTYPES);
  const wdt = dt === 'f32' || dt === 'f64' ? r.pick(['f32', 'f64'] as const) : dt;
  const inputs: Record<string, Tensor> = { hidden: logitsT(r, [...rs, D], dt, 0.7), weight: logitsT(r, [V, D], wdt, 0.7) };
  if (r.bool()) inputs.bias = fl(r, [V], 0.5);
  const options: Record<string, unknown> = { temperature: 0.5 + r.next() * 1.5 };
  if (r.bool(0.3)) options.chunk = r.pick([0, 1, 3, 8, 64]);
  return { inputs, options, V };
}
const LINEAR_ROLES: Record<string, Role> = { hidden: 'logits', weight: 'logits', bias: 'logits', labels: 'index' };

export const OPS: OpSpec[] = [
  // §1 token log-probs ------------------------------------------------------------------------
  {
    name: 'logprobs',
    run: (i, o) => rk.logprobs(i as never, o as never) as never,
    gen: (r, size) => {
      const rs = rows(r, size), V = r.dim(size, 1);
      return {
        inputs: { logits: logitsT(r, [...rs, V], r.pick(LOGIT_DTYPES)), labels: labelsFor(r, rs, V) },
        options: { temperature: 0.5 + r.next() * 1.5, ignoreIndex: -100, entropy: r.bool() },
      };
    },
    roles: { logits: 'logits', labels: 'index' },
    strictIndex: ['labels'],
  },
  {
    name: 'logprobsBackward',
    run: (i, o) => rk.logprobsBackward(i as never, o as never) as never,
    gen: (r, size) => {
      const rs = rows(r, size), V = r.dim(size, 1);
      const logits = logitsT(r, [...rs, V], r.pick(LOGIT_DTYPES)), labels = labelsFor(r, rs, V);
      const temperature = 0.5 + r.next() * 1.5;
      const inputs: Record<string, Tensor> = { logits, labels, gradLogp: f32(r, rs) };
      if (r.bool()) inputs.gradEntropy = f32(r, rs);
      else if (r.bool()) inputs.lse = rk.logprobs({ logits, labels }, { temperature, backend: 'js' }).lse;
      return { inputs, options: { temperature, ignoreIndex: -100 } };
    },
    roles: { logits: 'logits', labels: 'index' },
    strictIndex: ['labels'],
    derived: ['lse'],
  },
  ...(['vocabKl', 'vocabKlBackward'] as const).map((name): OpSpec => ({
    name,
    run: (i, o) => (name === 'vocabKl' ? rk.vocabKl(i as never, o as never) : rk.vocabKlBackward(i as never, o as never)) as never,
    gen: (r, size) => {
      const rs = rows(r, size), V = r.dim(size, 1);
      const dt = r.pick(LOGIT_DTYPES);
      const inputs: Record<string, Tensor> = {
        logits: logitsT(r, [...rs, V], dt), refLogits: logitsT(r, [...rs, V], r.bool(0.8) ? dt : r.pick(LOGIT_DTYPES)),
      };
      if (name === 'vocabKlBackward') inputs.gradKl = f32(r, rs);
      if (r.bool()) inputs.labels = labelsFor(r, rs, V);
      return { inputs, options: { direction: r.pick(['reverse', 'forward']), temperature: 0.5 + r.next() * 1.5, ignoreIndex: -100 } };
    },
    roles: { logits: 'logits', refLogits: 'logits', labels: 'index' },
    enums: { direction: 'reverse' },
    strictIndex: ['labels'],
  })),
  {
    name: 'sequenceLogprobs',
    run: (i, o) => rk.sequenceLogprobs(i as never, o as never) as never,
    gen: (r, size) => {
      const s = [r.dim(size), r.dim(size)];
      return { inputs: { logp: fl(r, s, 2, -3), mask: mask(r, s) }, options: { average: r.bool() } };
    },
    roles: { mask: 'mask' },
  },
  // §2 KL penalties and token-wise rewards ----------------------------------------------------
  {
    name: 'klPenalty',
    run: (i, o) => rk.klPenalty(i as never, o as never) as never,
    gen: (r, size) => {
      const s = [r.dim(size), r.dim(size)];
      const inputs: Record<string, Tensor> = { logp: fl(r, s, 1, -2), refLogp: fl(r, s, 1, -2) };
      if (r.bool()) inputs.mask = mask(r, s);
      const options: Record<string, unknown> = { estimator: r.pick(['k1', 'k2', 'k3', 'abs']) };
      if (r.bool()) options.clamp = r.next() * 2;
      return { inputs, options };
    },
    roles: { mask: 'mask' },
    optNums: ['clamp'],
    enums: { estimator: 'k1' },
  },
  {
    name: 'tokenRewards',
    run: (i, o) => rk.tokenRewards(i as never, o as never) as never,
    gen: (r, size) => {
      const s = [r.dim(size), r.dim(size)];
      const options: Record<string, unknown> = { klCoef: r.next() * 0.2, estimator: r.pick(['k1', 'k2', 'k3', 'abs']) };
      if (r.bool()) options.scoreClip = 0.1 + r.next() * 3;
      return { inputs: { logp: fl(r, s, 1, -2), refLogp: fl(r, s, 1, -2), mask: mask(r, s), scores: fl(r, [s[0]], 2) }, options };
    },
    roles: { mask: 'mask' },
    optNums: ['scoreClip'],
    enums: { estimator: 'k1' },
  },
  {
    name: 'rtoRewards',
    run: (i, o) => rk.rtoRewards(i as never, o as never) as never,
    gen: (r, size) => {
      const s = [r.dim(size), r.dim(size)];
      const inputs: Record<string, Tensor> = { dpoLogp: fl(r, s, 1, -2), refLogp: fl(r, s, 1, -2), logp: fl(r, s, 1, -2), mask: mask(r, s) };
      if (r.bool()) inputs.scores = fl(r, [s[0]], 2);
      const options: Record<string, unknown> = { beta1: r.next(), beta2: r.next() * 0.1, beta3: r.next() * 2 };
      if (r.bool()) options.dpoClip = 0.1 + r.next();
      return { inputs, options };
    },
    roles: { mask: 'mask' },
    optNums: ['dpoClip'],
  },
  {
    name: 'implicitRewards',
    run: (i, o) => rk.implicitRewards(i as never, o as never) as never,
    gen: (r, size) => {
      const s = [r.dim(size), r.dim(size)];
      return { inputs: { logp: fl(r, s, 1, -2), refLogp: fl(r, s, 1, -2), mask: mask(r, s) }, options: { beta: r.next() } };
    },
    roles: { mask: 'mask' },
  },
  // §3 advantages -----------------------------------------------------------------------------
  {
    name: 'gae',
    run: (i, o) => rk.gae(i as never, o as never) as never,
    gen: (r, size) => {
      const s = [r.dim(size), r.dim(size)];
      const inputs: Record<string, Tensor> = { rewards: fl(r, s), values: fl(r, s), mask: mask(r, s) };
      if (r.bool()) inputs.lastValues = fl(r, [s[0]]);
      return { inputs, options: { gamma: r.pick([1, r.next()]), lambda: r.pick([1, 0.95, r.next()]) } };
    },
    roles: { mask: 'mask' },
  },
  {
    name: 'discountedReturns',
    run: (i, o) => rk.discountedReturns(i as never, o as never) as never,
    gen: (r, size) => {
      const s = [r.dim(size), r.dim(size)];
      return { inputs: { rewards: fl(r, s), mask: mask(r, s) }, options: { gamma: r.pick([1, 0.99, r.next()]) } };
    },
    roles: { mask: 'mask' },
  },
  {
    name: 'whiten',
    run: (i, o) => rk.whiten(i as never, o as never) as never,
    gen: (r, size) => {
      const s = rows(r, size + 1);
      const inputs: Record<string, Tensor> = { x: fl(r, s, 2, 1) };
      if (r.bool()) inputs.mask = mask(r, s);
      return { inputs, options: { shiftMean: r.bool(0.7), eps: r.pick([1e-8, r.next()]) } };
    },
    roles: { mask: 'mask' },
  },
  {
    name: 'groupAdvantages',
    run: (i, o) => rk.groupAdvantages(i as never, o as never) as never,
    gen: (r, size) => {
      const method = r.pick(['grpo', 'drgrpo', 'rloo', 'remax']);
      const K = r.int(method === 'rloo' ? 2 : 1, [3, 6, 16, 40][Math.min(3, size)]), G = r.dim(size);
      const inputs: Record<string, Tensor> = { scores: fl(r, [G * K], 1) };
      if (method === 'remax') inputs.baselines = fl(r, [G * K]);
      return { inputs, options: { groupSize: K, method, eps: r.pick([1e-6, 0.1]) } };
    },
    enums: { method: 'drgrpo' },
    tol: 1e-3, // (s − mean)/(std + eps) divides by a std that can be small: the f32 mean's rounding is amplified
  },
  {
    name: 'ensembleRewards',
    run: (i, o) => rk.ensembleRewards(i as never, o as never) as never,
    gen: (r, size) => {
      const method = r.pick(['mean', 'min', 'uwo']);
      const E = r.int(1, 6), B = r.dim(size);
      const options: Record<string, unknown> = { method, lambda: r.next() };
      if (method === 'uwo' && E >= 2) options.unbiased = r.bool();
      return { inputs: { scores: fl(r, [E, B], 2) }, options };
    },
    enums: { method: 'mean' },
  },
  {
    name: 'winRateRewards',
    run: (i, o) => rk.winRateRewards(i as never, o as never) as never,
    gen: (r, size) => {
      const G = r.dim(size), K = r.dim(size, 1);
      return { inputs: { preferences: uni(r, [G, K, K]) }, options: {} };
    },
  },
  // §4 preference losses ----------------------------------------------------------------------
  {
    name: 'preferenceLoss',
    run: (i, o) => rk.preferenceLoss(i as never, o as never) as never,
    gen: (r, size) => {
      const type = r.pick(PREF_TYPES), B = r.dim(size + 1);
      const avg = type === 'orpo' || type === 'simpo';
      const lp = () => (avg ? negAvg(r, B) : fl(r, [B], 5, -20));
      const options = prefOptions(r, type);
      const inputs: Record<string, Tensor> = { policyChosen: lp(), policyRejected: lp() };
      if (!avg) { inputs.refChosen = lp(); inputs.refRejected = lp(); }
      if (options.lengthNormalize) {
        inputs.chosenLength = i32([B], () => r.int(1, 50));
        inputs.rejectedLength = rk.tensor(Float32Array.from({ length: B }, () => r.int(1, 50)), [B], 'f32');
      }
      if (type === 'rpo' || type === 'orpo') inputs.chosenNll = rk.tensor(Float32Array.from({ length: B }, () => Math.abs(r.normal()) * 3), [B], 'f32');
      if (type === 'xpo') inputs.policyExplore = fl(r, [B], 5, -20);
      if (type === 'inpo') { inputs.prevChosen = lp(); inputs.prevRejected = lp(); }
      if (type === 'dno') inputs.preferenceProb = uni(r, [B]);
      return { inputs, options };
    },
    roles: { chosenLength: 'length', rejectedLength: 'length', preferenceProb: 'prob' },
    enums: { type: 'dpo' },
  },
  {
    name: 'apoReference',
    run: (i, o) => rk.apoReference(i as never, o as never) as never,
    gen: (r, size) => {
      const s = rows(r, size);
      return { inputs: { current: fl(r, s, 5, -20), previous: fl(r, s, 5, -20) }, options: { alpha: r.next() } };
    },
  },
  {
    name: 'listwiseLoss',
    run: (i, o) => rk.listwiseLoss(i as never, o as never) as never,
    gen: (r, size) => {
      const type = r.pick(['lipo', 'pro', 'pl']);
      const B = r.dim(size), K = r.dim(size, 1);
      const inputs: Record<string, Tensor> = { policy: fl(r, [B, K], 3, -10) };
      const options: Record<string, unknown> = { type, beta: 0.05 + r.next() };
      if (type !== 'pro') inputs.ref = fl(r, [B, K], 3, -10);
      if (type === 'lipo') inputs.labels = rk.tensor(Float32Array.from({ length: B * K }, () => r.int(0, 4)), [B, K], 'f32');
      if (type === 'pro') {
        inputs.labels = fl(r, [B, K]);
        if (r.bool()) inputs.lengths = i32([B, K], () => r.int(1, 30));
        options.sftWeight = r.next();
      }
      return { inputs, options };
    },
    roles: { lengths: 'length' },
    enums: { type: 'lipo' },
    tol: 1e-3, // lipo's Δ_ij weights are |G_i − G_j|·|1/D_i − 1/D_j|, a difference of rank discounts (cancellation)
  },
  {
    name: 'fusedPreferenceLoss',
    run: (i, o) => rk.fusedPreferenceLoss(i as never, o as never) as never,
    gen: (r, size) => {
      const type = r.pick(PREF_TYPES);
      const B = r.dim(size), T = r.dim(size, 1), V = r.dim(size, 1);
      const o = prefOptions(r, type);
      delete o.lengthNormalize;
      if (type === 'ipo' && r.bool()) o.lengthNormalize = true;
      const R = 2 * B;
      const inputs: Record<string, Tensor> = { logits: logitsT(r, [R, T, V], r.pick(LOGIT_DTYPES), 1), labels: labelsFor(r, [R, T], V) };
      if (r.bool()) inputs.mask = mask(r, [R, T]);
      if (type !== 'orpo' && type !== 'simpo') inputs.refLogp = fl(r, [R], 2, -3 * T);
      if (type === 'inpo') inputs.prevLogp = fl(r, [R], 2, -3 * T);
      if (type === 'xpo') inputs.policyExplore = fl(r, [B], 2, -3 * T);
      if (type === 'dno') inputs.preferenceProb = uni(r, [B]);
      return { inputs, options: { ...o, temperature: 0.5 + r.next(), ignoreIndex: -100 } };
    },
    roles: { logits: 'logits', labels: 'index', mask: 'mask', preferenceProb: 'prob' },
    enums: { type: 'dpo' },
    tol: 1e-3,
  },
  // §5 PPO losses -----------------------------------------------------------------------------
  {
    name: 'ppoPolicyLoss',
    run: (i, o) => rk.ppoPolicyLoss(i as never, o as never) as never,
    gen: (r, size) => {
      const s = [r.dim(size), r.dim(size)];
      const logp = f32(r, s, 1, -2);
      const old = rk.tensor(Float32Array.from(logp.data, (x) => x + 0.3 * r.normal()), s, 'f32');
      const inputs: Record<string, Tensor> = { logp, oldLogp: old, advantages: fl(r, s), mask: mask(r, s) };
      const options: Record<string, unknown> = {
        clipLow: r.next() * 0.4, clipHigh: r.next() * 0.5, aggregation: r.pick(['token-mean', 'seq-mean-token-sum', 'seq-mean-token-mean']),
      };
      if (r.bool()) { inputs.refLogp = fl(r, s, 1, -2); options.klCoef = r.next() * 0.2; options.klEstimator = r.pick(['k1', 'k2', 'k3', 'abs']); }
      if (r.bool(0.3)) options.dualClip = 1.5 + r.next() * 3;
      if (r.bool(0.3)) options.normalizer = 1 + r.int(0, 100);
      return { inputs, options };
    },
    roles: { mask: 'mask' },
    optNums: ['dualClip', 'normalizer', 'klCoef'],
    enums: { aggregation: 'token-mean' },
  },
  {
    name: 'valueLoss',
    run: (i, o) => rk.valueLoss(i as never, o as never) as never,
    gen: (r, size) => {
      const s = [r.dim(size), r.dim(size)];
      const options: Record<string, unknown> = { clip: r.pick([0.2, r.next(), Infinity]), aggregation: r.pick(['token-mean', 'seq-mean-token-sum', 'seq-mean-token-mean']) };
      if (r.bool(0.3)) options.normalizer = 1 + r.int(0, 100);
      return { inputs: { values: fl(r, s), oldValues: fl(r, s), returns: fl(r, s), mask: mask(r, s) }, options };
    },
    roles: { mask: 'mask' },
    optNums: ['normalizer'],
    infinite: ['clip'],
    enums: { aggregation: 'token-mean' },
  },
  {
    name: 'p3oLoss',
    run: (i, o) => rk.p3oLoss(i as never, o as never) as never,
    gen: (r, size) => {
      const B = r.dim(size + 1);
      const l1 = f32(r, [B], 3, -10), l2 = f32(r, [B], 3, -10);
      const near = (t: Tensor<'f32'>) => rk.tensor(Float32Array.from(t.data, (x) => x + 0.3 * r.normal()), [B], 'f32');
      const options: Record<string, unknown> = { variant: r.pick(['separate', 'joint']), clip: r.next() * 0.4, clipHigh: r.next() * 0.5 };
      if (r.bool(0.3)) options.normalizer = 1 + r.int(0, 50);
      return { inputs: { logp1: l1, logp2: l2, oldLogp1: near(l1), oldLogp2: near(l2), rewards1: fl(r, [B]), rewards2: fl(r, [B]) }, options };
    },
    optNums: ['normalizer'],
    enums: { variant: 'separate' },
  },
  // §6 prepacking -----------------------------------------------------------------------------
  {
    name: 'packSequences',
    run: (i, o) => rk.packSequences(i as never, o as never) as never,
    gen: (r, size) => {
      const n = r.dim(size + 1), cap = r.int(1, 60);
      return { inputs: { lengths: i32([n], () => r.int(0, cap)) }, options: { capacity: cap, algorithm: r.pick(['ffd', 'bfd']) } };
    },
    roles: { lengths: 'index' },
    enums: { algorithm: 'ffd' },
    strictIndex: ['lengths'],
  },
  {
    name: 'prepack',
    run: (i, o) => rk.prepack(i as never, o as never) as never,
    gen: (r, size) => {
      const n = r.dim(size + 1), cap = r.int(2, 40);
      const lengths = Int32Array.from({ length: n }, () => r.int(0, cap));
      const total = lengths.reduce((a, b) => a + b, 0);
      return {
        inputs: { tokens: i32([total], () => r.int(0, 50000)), lengths: rk.tensor(lengths, [n], 'i32') },
        options: { capacity: cap, algorithm: r.pick(['ffd', 'bfd']), padId: r.pick([0, -1, 7]), holdLast: r.bool() },
      };
    },
    roles: { tokens: 'int', lengths: 'index' },
    enums: { algorithm: 'ffd' },
    strictIndex: ['lengths'],
  },
  {
    name: 'attentionMask',
    run: (i, o) => rk.attentionMask(i as never, o as never) as never,
    gen: (r, size) => {
      const P = r.dim(size), L = r.dim(size);
      return { inputs: { segmentIds: i32([P, L], () => r.int(0, 3)) }, options: { format: r.pick(['bool', 'additive']) } };
    },
    roles: { segmentIds: 'int' },
    enums: { format: 'bool' },
  },
  {
    name: 'unpack',
    run: (i, o) => rk.unpack(i as never, o as never) as never,
    gen: (r, size) => {
      const x = packLayout(r, size);
      const D = r.dim(size, 1);
      return {
        inputs: { packed: fl(r, [x.P + r.int(0, 1), x.L, D]), packOf: x.packOf, offsetOf: x.offsetOf, lengths: rk.tensor(x.lengths, [x.n], 'i32') },
        options: {},
      };
    },
    roles: { packOf: 'index', offsetOf: 'index', lengths: 'index' },
  },
  {
    name: 'packedAttention',
    run: (i, o) => rk.packedAttention(i as never, o as never) as never,
    gen: (r, size) => {
      const P = r.dim(size), L = r.dim(size, 1), Hkv = r.int(1, 2), H = Hkv * r.int(1, 2), Dh = r.int(1, 9);
      const dt = r.pick(['f32', 'f32', 'f64', 'f16', 'bf16'] as const);
      const seg = i32([P, L], () => 0);
      for (let p = 0; p < P; p++) {
        let s = 1, t = 0;
        while (t < L) {
          const len = r.int(1, L);
          if (r.bool(0.2)) break; // padding tail
          for (let j = 0; j < len && t < L; j++, t++) seg.data[p * L + t] = s;
          s++;
        }
      }
      const options: Record<string, unknown> = {};
      if (r.bool(0.3)) options.scale = r.next();
      return {
        inputs: { q: logitsT(r, [P, L, H, Dh], dt, 1), k: logitsT(r, [P, L, Hkv, Dh], dt, 1), v: logitsT(r, [P, L, Hkv, Dh], dt, 1), segmentIds: seg },
        options,
      };
    },
    roles: { q: 'logits', k: 'logits', v: 'logits', segmentIds: 'int' },
    optNums: ['scale'],
  },
  // §7 sampling-side kernels ------------------------------------------------------------------
  {
    name: 'speculativeVerify',
    run: (i, o) => rk.speculativeVerify(i as never, o as never) as never,
    gen: (r, size) => {
      const B = r.dim(size), K = r.dim(size), V = r.dim(size, 1);
      return {
        inputs: {
          draftTokens: i32([B, K], () => r.int(0, V - 1)),
          draftProbs: rk.tensor(probs(r, B * K, V), [B, K, V], 'f32'),
          targetProbs: rk.tensor(probs(r, B * (K + 1), V), [B, K + 1, V], 'f32'),
          uniforms: uni(r, [B, K + 1], 0, 0.999),
        },
        options: {},
      };
    },
    roles: { draftTokens: 'index', uniforms: 'prob' },
    strictIndex: ['draftTokens'],
  },
  {
    name: 'specDecStop',
    run: (i, o) => rk.specDecStop(i as never, o as never) as never,
    gen: (r, size) => {
      const B = r.dim(size), K = r.dim(size);
      const minLength = r.int(0, 4);
      return { inputs: { acceptProbs: uni(r, [B, K], 0.3, 1) }, options: { threshold: r.next(), minLength, maxLength: minLength + r.int(0, 20) } };
    },
    roles: { acceptProbs: 'prob' },
  },
  {
    name: 'geometricMixture',
    run: (i, o) => rk.geometricMixture(i as never, o as never) as never,
    gen: (r, size) => {
      const rs = rows(r, size), V = r.dim(size, 1);
      return {
        inputs: { logits: logitsT(r, [...rs, V], r.pick(LOGIT_DTYPES)), refLogits: logitsT(r, [...rs, V], r.pick(LOGIT_DTYPES)) },
        options: { beta: r.pick([0, 1, r.next()]) },
      };
    },
    roles: { logits: 'logits', refLogits: 'logits' },
  },
  {
    name: 'rejectionSample',
    run: (i, o) => rk.rejectionSample(i as never, o as never) as never,
    gen: (r, size) => {
      const G = r.dim(size), K = r.dim(size, 1);
      return {
        inputs: { rewards: fl(r, [G, K]), uniforms: uni(r, [G, K, K], 0, 0.999) },
        options: { beta: 0.2 + r.next() * 3, numSamples: r.int(1, K) },
      };
    },
    roles: { uniforms: 'prob' },
  },
  // §8 log-probs straight from hidden states ---------------------------------------------------
  {
    name: 'linearLogprobs',
    run: (i, o) => rk.linearLogprobs(i as never, o as never) as never,
    gen: (r, size) => {
      const rs = rows(r, size), x = linearInputs(r, size, rs);
      return { inputs: { ...x.inputs, labels: labelsFor(r, rs, x.V) }, options: { ...x.options, ignoreIndex: -100, entropy: r.bool() } };
    },
    roles: LINEAR_ROLES,
    optNums: ['chunk'],
    strictIndex: ['labels'],
    finiteOnly: ['hidden', 'weight'],
    tol: 1e-3,
  },
  {
    name: 'linearLogprobsBackward',
    run: (i, o) => rk.linearLogprobsBackward(i as never, o as never) as never,
    gen: (r, size) => {
      const rs = rows(r, size), x = linearInputs(r, size, rs);
      const inputs: Record<string, Tensor> = { ...x.inputs, labels: labelsFor(r, rs, x.V), gradLogp: f32(r, rs) };
      if (r.bool()) inputs.gradEntropy = f32(r, rs);
      if (r.bool()) {
        const f = rk.linearLogprobs(inputs as never, { ...x.options, entropy: true, backend: 'js' } as never);
        inputs.lse = f.lse;
        if (inputs.gradEntropy) inputs.entropy = f.entropy!;
      }
      return { inputs, options: { ...x.options, ignoreIndex: -100 } };
    },
    roles: LINEAR_ROLES,
    optNums: ['chunk'],
    strictIndex: ['labels'],
    derived: ['lse', 'entropy'],
    finiteOnly: ['hidden', 'weight'],
    tol: 1e-3,
  },
  {
    name: 'linearPreferenceLoss',
    run: (i, o) => rk.linearPreferenceLoss(i as never, o as never) as never,
    gen: (r, size) => {
      const type = r.pick(PREF_TYPES);
      const B = r.dim(size), T = r.dim(size, 1), R = 2 * B;
      const x = linearInputs(r, size, [R, T]);
      const o = prefOptions(r, type);
      const inputs: Record<string, Tensor> = { ...x.inputs, labels: labelsFor(r, [R, T], x.V) };
      if (r.bool()) inputs.mask = mask(r, [R, T]);
      if (type !== 'orpo' && type !== 'simpo') inputs.refLogp = fl(r, [R], 2, -3 * T);
      if (type === 'inpo') inputs.prevLogp = fl(r, [R], 2, -3 * T);
      if (type === 'xpo') inputs.policyExplore = fl(r, [B], 2, -3 * T);
      if (type === 'dno') inputs.preferenceProb = uni(r, [B]);
      return { inputs, options: { ...o, ...x.options, ignoreIndex: -100 } };
    },
    roles: { ...LINEAR_ROLES, mask: 'mask', preferenceProb: 'prob' },
    optNums: ['chunk'],
    finiteOnly: ['hidden', 'weight'],
    enums: { type: 'dpo' },
    tol: 1e-3,
  },
];

/** Accepted dtypes of each role (SPEC §0). */
export const ROLE_DTYPES: Record<Role, readonly string[]> = {
  float: ['f32', 'f64'],
  logits: ['f32', 'f64', 'f16', 'bf16'],
  mask: ['u8', 'f32'],
  index: ['i32'],
  int: ['i32'],
  length: ['f32', 'f64', 'i32'],
  prob: ['f32', 'f64'],
};
