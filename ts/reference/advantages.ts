/**
 * `js` backend of the advantages family (SPEC §3): float64, equation by equation.
 * Inputs are already validated; arrays are read as numbers (f32 or f64 data).
 */
type Arr = ArrayLike<number>;
type Mask = ArrayLike<number> | undefined;
const on = (m: Mask, i: number) => m === undefined || m[i] !== 0;

/**
 * GAE over counted tokens (verl multi-turn: masked tokens skipped). Per row, with counted
 * positions t_1 < … < t_n: δ_k = r_{t_k} + γ·V_{t_{k+1}} − V_{t_k} (V_{t_{n+1}} = lastValues_b or 0),
 * A_{t_k} = δ_k + γλ·A_{t_{k+1}} (A_{t_{n+1}} = 0), returns = A + V; masked positions 0.
 */
export function gae(
  rewards: Arr, values: Arr, mask: Mask, lastValues: Arr | undefined, adv: Float32Array, ret: Float32Array,
  B: number, T: number, gamma: number, lambda: number,
) {
  for (let b = 0; b < B; b++) {
    let nextV = lastValues ? lastValues[b] : 0;
    let nextA = 0;
    for (let t = T - 1; t >= 0; t--) {
      const i = b * T + t;
      if (!on(mask, i)) { adv[i] = 0; ret[i] = 0; continue; }
      const delta = rewards[i] + gamma * nextV - values[i];
      nextA = delta + gamma * lambda * nextA;
      nextV = values[i];
      adv[i] = nextA;
      ret[i] = nextA + values[i];
    }
  }
}

/** G_t = r_t + γ·G_{next counted}, masked tokens skipped and set to 0. */
export function discountedReturns(rewards: Arr, mask: Mask, out: Float32Array, B: number, T: number, gamma: number) {
  for (let b = 0; b < B; b++) {
    let G = 0;
    for (let t = T - 1; t >= 0; t--) {
      const i = b * T + t;
      if (!on(mask, i)) { out[i] = 0; continue; }
      G = rewards[i] + gamma * G;
      out[i] = G;
    }
  }
}

/** Two-pass float64 mean and Bessel variance over the counted elements. */
export function whitenStats(x: Arr, mask: Mask): { count: number; mean: number; variance: number } {
  let n = 0, s = 0;
  for (let i = 0; i < x.length; i++) if (on(mask, i)) { n++; s += x[i]; }
  const mean = n ? s / n : NaN;
  let q = 0;
  for (let i = 0; i < x.length; i++) if (on(mask, i)) { const d = x[i] - mean; q += d * d; }
  return { count: n, mean, variance: n >= 2 ? q / (n - 1) : NaN };
}

export function whiten(x: Arr, mask: Mask, y: Float32Array, mean: number, variance: number, shiftMean: boolean, eps: number) {
  const inv = 1 / Math.sqrt(variance + eps);
  for (let i = 0; i < x.length; i++) y[i] = on(mask, i) ? (x[i] - mean) * inv + (shiftMean ? 0 : mean) : 0;
}

export type GroupMethod = 'grpo' | 'drgrpo' | 'rloo' | 'remax';

export function groupAdvantages(scores: Arr, baselines: Arr | undefined, out: Float32Array, G: number, K: number, method: GroupMethod, eps: number) {
  for (let g = 0; g < G; g++) {
    const o = g * K;
    if (method === 'remax') {
      for (let k = 0; k < K; k++) out[o + k] = scores[o + k] - baselines![o + k];
      continue;
    }
    let sum = 0;
    for (let k = 0; k < K; k++) sum += scores[o + k];
    const mean = sum / K;
    if (method === 'drgrpo') {
      for (let k = 0; k < K; k++) out[o + k] = scores[o + k] - mean;
    } else if (method === 'rloo') {
      for (let k = 0; k < K; k++) out[o + k] = scores[o + k] - (sum - scores[o + k]) / (K - 1);
    } else {
      if (K < 2) { for (let k = 0; k < K; k++) out[o + k] = 0; continue; }
      let q = 0;
      for (let k = 0; k < K; k++) { const d = scores[o + k] - mean; q += d * d; }
      const std = Math.sqrt(q / (K - 1));
      for (let k = 0; k < K; k++) out[o + k] = (scores[o + k] - mean) / (std + eps);
    }
  }
}

export type EnsembleMethod = 'mean' | 'min' | 'uwo';

export function ensembleRewards(scores: Arr, out: Float32Array, E: number, B: number, method: EnsembleMethod, lambda: number, unbiased: boolean) {
  for (let b = 0; b < B; b++) {
    if (method === 'min') {
      let m = scores[b];
      for (let e = 1; e < E; e++) { const s = scores[e * B + b]; if (s < m || Number.isNaN(s)) m = s; }
      out[b] = m;
      continue;
    }
    let s = 0;
    for (let e = 0; e < E; e++) s += scores[e * B + b];
    const mean = s / E;
    if (method === 'mean') { out[b] = mean; continue; }
    let q = 0;
    for (let e = 0; e < E; e++) { const d = scores[e * B + b] - mean; q += d * d; }
    out[b] = mean - lambda * (q / (unbiased ? E - 1 : E));
  }
}

/** SPO: r_i = (1/(K−1)) Σ_{j≠i} P[g,i,j]; the diagonal is never read; K = 1 → 0. */
export function winRateRewards(p: Arr, out: Float32Array, G: number, K: number) {
  for (let g = 0; g < G; g++)
    for (let i = 0; i < K; i++) {
      let s = 0;
      for (let j = 0; j < K; j++) if (j !== i) s += p[(g * K + i) * K + j];
      out[g * K + i] = K > 1 ? s / (K - 1) : 0;
    }
}
