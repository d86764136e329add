/**
 * `js` backend of the PPO family (SPEC §5) and P3O: float64, equation by equation.
 * Inputs are already validated; arrays are read as numbers (f32 or f64 data).
 */
import { klEstimate, type KlEstimator } from './rewards.js';

type Arr = ArrayLike<number>;
type Mask = ArrayLike<number> | undefined;
const on = (m: Mask, i: number) => m === undefined || m[i] !== 0;

export type Aggregation = 'token-mean' | 'seq-mean-token-sum' | 'seq-mean-token-mean';

/** ∂kl/∂logp of klEstimate(logp − ref). */
export function klGrad(d: number, estimator: KlEstimator): number {
  switch (estimator) {
    case 'k1':
      return 1;
    case 'k2':
      return d;
    case 'k3':
      return 1 - Math.exp(-d);
    case 'abs':
      return d > 0 ? 1 : d < 0 ? -1 : d * 0;
  }
}

const clip = (x: number, lo: number, hi: number) => (x < lo ? lo : x > hi ? hi : x);

/** PPO clipped surrogate as a loss, with optional dual-clip: {loss, grad wrt logp, clipped}. */
export function ppoTerm(logp: number, old: number, A: number, lo: number, hi: number, dual: number | undefined) {
  const r = Math.exp(logp - old);
  const u = -A * r;
  const c = -A * clip(r, lo, hi);
  const clipped = c > u;
  let loss = clipped ? c : u;
  let grad = clipped ? 0 : u;
  if (dual !== undefined && A < 0 && -dual * A < loss) {
    loss = -dual * A;
    grad = 0;
  }
  return { loss, grad, clipped };
}

/** Per-row weights of the aggregation (0 for a row with nothing counted), and the counts. */
export function aggWeights(mask: Mask, B: number, T: number, aggregation: Aggregation, normalizer: number | undefined) {
  const nRow = new Float64Array(B);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) if (on(mask, b * T + t)) nRow[b]++;
  let N = 0, S = 0;
  for (let b = 0; b < B; b++) {
    N += nRow[b];
    if (nRow[b] > 0) S++;
  }
  const w = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    if (aggregation === 'token-mean') {
      const d = normalizer ?? N;
      w[b] = d > 0 ? 1 / d : 0;
    } else {
      const d = normalizer ?? S;
      w[b] = d > 0 && nRow[b] > 0 ? (aggregation === 'seq-mean-token-sum' ? 1 / d : 1 / (d * nRow[b])) : 0;
    }
  }
  return { w, N };
}

export interface PpoRefOptions {
  clipLow: number;
  clipHigh: number;
  dualClip: number | undefined;
  klCoef: number;
  klEstimator: KlEstimator | undefined; // undefined: no KL term
  aggregation: Aggregation;
  normalizer: number | undefined;
}

export function ppoPolicyLoss(
  logp: Arr, oldLogp: Arr, adv: Arr, refLogp: Arr | undefined, mask: Mask, grad: Float32Array, B: number, T: number, o: PpoRefOptions,
) {
  const { w, N } = aggWeights(mask, B, T, o.aggregation, o.normalizer);
  const lo = 1 - o.clipLow, hi = 1 + o.clipHigh;
  let loss = 0, clipped = 0, kl = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      if (!on(mask, i)) { grad[i] = 0; continue; }
      const r = ppoTerm(logp[i], oldLogp[i], adv[i], lo, hi, o.dualClip);
      let l = r.loss, g = r.grad;
      if (o.klEstimator !== undefined && refLogp) {
        const d = logp[i] - refLogp[i];
        l += o.klCoef * klEstimate(d, o.klEstimator);
        g += o.klCoef * klGrad(d, o.klEstimator);
      }
      loss += w[b] * l;
      grad[i] = w[b] * g;
      if (r.clipped) clipped++;
      const dd = logp[i] - oldLogp[i];
      kl += 0.5 * dd * dd;
    }
  }
  return { loss, clipFraction: N > 0 ? clipped / N : 0, approxKl: N > 0 ? kl / N : 0 };
}

export function valueLoss(
  values: Arr, oldValues: Arr, returns: Arr, mask: Mask, grad: Float32Array, B: number, T: number,
  c: number, aggregation: Aggregation, normalizer: number | undefined,
) {
  const { w, N } = aggWeights(mask, B, T, aggregation, normalizer);
  let loss = 0, clipped = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      if (!on(mask, i)) { grad[i] = 0; continue; }
      const v = values[i], R = returns[i];
      const vc = clip(v, oldValues[i] - c, oldValues[i] + c);
      const l1 = (v - R) ** 2, l2 = (vc - R) ** 2;
      const isClipped = l2 > l1;
      loss += w[b] * 0.5 * (isClipped ? l2 : l1);
      grad[i] = isClipped ? 0 : w[b] * (v - R);
      if (isClipped) clipped++;
    }
  }
  return { loss, clipFraction: N > 0 ? clipped / N : 0 };
}

export function p3oLoss(
  logp1: Arr, logp2: Arr, old1: Arr, old2: Arr, r1: Arr, r2: Arr, g1: Float32Array, g2: Float32Array, B: number,
  variant: 'separate' | 'joint', clipLow: number, clipHigh: number, normalizer: number | undefined,
) {
  const d = normalizer ?? B;
  const w = d > 0 ? 1 / d : 0;
  const lo = 1 - clipLow, hi = 1 + clipHigh;
  let loss = 0, clipped = 0;
  for (let b = 0; b < B; b++) {
    const A = (r1[b] - r2[b]) / 2;
    if (variant === 'joint') {
      const t = ppoTerm((logp1[b] - old1[b]) - (logp2[b] - old2[b]), 0, A, lo, hi, undefined);
      loss += t.loss;
      g1[b] = w * t.grad;
      g2[b] = -w * t.grad;
      if (t.clipped) clipped++;
    } else {
      const t1 = ppoTerm(logp1[b], old1[b], A, lo, hi, undefined);
      const t2 = ppoTerm(logp2[b], old2[b], -A, lo, hi, undefined);
      loss += t1.loss + t2.loss;
      g1[b] = w * t1.grad;
      g2[b] = w * t2.grad;
      clipped += (t1.clipped ? 0.5 : 0) + (t2.clipped ? 0.5 : 0);
    }
  }
  return { loss: w * loss, clipFraction: B > 0 ? clipped / B : 0 };
}
