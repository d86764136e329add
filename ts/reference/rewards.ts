/**
 * `js` backend of the reward family (SPEC §2): float64, equation by equation.
 * Inputs are already validated; arrays are read as numbers (f32 or f64 data).
 */
type Arr = ArrayLike<number>;
type Mask = ArrayLike<number> | undefined;
const on = (m: Mask, i: number) => m === undefined || m[i] !== 0;

export type KlEstimator = 'k1' | 'k2' | 'k3' | 'abs';

/** Schulman's estimators of KL(π‖π_ref) from one sample, d = log π − log π_ref. */
export function klEstimate(d: number, estimator: KlEstimator): number {
  switch (estimator) {
    case 'k1':
      return d;
    case 'k2':
      return 0.5 * d * d;
    case 'k3':
      return Math.exp(-d) - 1 + d;
    case 'abs':
      return Math.abs(d);
  }
}

const clamp = (x: number, c: number) => (x < -c ? -c : x > c ? c : x);

function lastCounted(mask: Mask, base: number, T: number): number {
  for (let t = T - 1; t >= 0; t--) if (on(mask, base + t)) return t;
  return -1;
}

export function klPenalty(logp: Arr, refLogp: Arr, mask: Mask, out: Float32Array, estimator: KlEstimator, c: number | undefined) {
  for (let i = 0; i < out.length; i++) {
    if (!on(mask, i)) { out[i] = 0; continue; }
    const k = klEstimate(logp[i] - refLogp[i], estimator);
    out[i] = c === undefined ? k : clamp(k, c);
  }
}

/** Secrets of RLHF I eq. 19: r_t = −klCoef·kl_t, plus clip(score) at the last counted token. */
export function tokenRewards(
  logp: Arr, refLogp: Arr, mask: Arr, scores: Arr, out: Float32Array, B: number, T: number,
  klCoef: number, estimator: KlEstimator, scoreClip: number | undefined,
) {
  for (let b = 0; b < B; b++) {
    const last = lastCounted(mask, b * T, T);
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      if (!on(mask, i)) { out[i] = 0; continue; }
      let r = -klCoef * klEstimate(logp[i] - refLogp[i], estimator);
      if (t === last) r += scoreClip === undefined ? scores[b] : clamp(scores[b], scoreClip);
      out[i] = r;
    }
  }
}

/** RTO eq. 4.7: r_t = clip(β1·(dpoLogp − refLogp)) − β2·(logp − refLogp), plus β3·score at the last counted token. */
export function rtoRewards(
  dpoLogp: Arr, refLogp: Arr, logp: Arr, mask: Arr, scores: Arr | undefined, out: Float32Array, B: number, T: number,
  beta1: number, beta2: number, beta3: number, dpoClip: number | undefined,
) {
  for (let b = 0; b < B; b++) {
    const last = lastCounted(mask, b * T, T);
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      if (!on(mask, i)) { out[i] = 0; continue; }
      const dpoTerm = beta1 * (dpoLogp[i] - refLogp[i]);
      let r = (dpoClip === undefined ? dpoTerm : clamp(dpoTerm, dpoClip)) - beta2 * (logp[i] - refLogp[i]);
      if (t === last && scores) r += beta3 * scores[b];
      out[i] = r;
    }
  }
}

/** From r to Q*: the per-token implicit reward β·(logp − refLogp). */
export function implicitRewards(logp: Arr, refLogp: Arr, mask: Arr, out: Float32Array, beta: number) {
  for (let i = 0; i < out.length; i++) out[i] = on(mask, i) ? beta * (logp[i] - refLogp[i]) : 0;
}
