/**
 * `js` backend of the sampling family (SPEC §7): float64, rule by rule. Inputs are already
 * validated (shapes, token ids, option ranges); the probability / reward / uniform values that the
 * rules read are checked here, as the native kernels check them, and reported as a status code.
 */
import { f16ToFloat } from '../tensor.js';

type Arr = ArrayLike<number>;

/** Per-row status, as in src/include/rk_sampling.h. */
export const OK = 0;
export const BAD_PROB = 1;
export const ZERO_MASS = 2;
export const BAD_REWARD = 3;
export const BAD_UNIFORM = 4;
export const NO_ROUNDS = 5;

const probOk = (x: number) => x >= 0 && x < Infinity;

/** SpecDec++ base rule: accept Y iff u ≤ p(Y)/q(Y); p(Y) = 0 → reject; q(Y) = 0 < p(Y) → accept. */
export function specAccept(p: number, q: number, u: number): boolean {
  if (!(p > 0)) return false;
  if (!(q > 0)) return true;
  return u <= p / q;
}

/** Smallest t with u·Z < C(t) over weights w (Z = Σw > 0); rounding fallback: last t with w_t > 0. */
export function inverseCdf(w: Arr, u: number): number {
  let Z = 0;
  for (let t = 0; t < w.length; t++) Z += w[t];
  const target = u * Z;
  let c = 0;
  for (let t = 0; t < w.length; t++) {
    c += w[t];
    if (target < c) return t;
  }
  for (let t = w.length - 1; t >= 0; t--) if (w[t] > 0) return t;
  return -1;
}

/**
 * speculativeVerify. Returns -1 when every row is valid, else 8·row + status of the first bad row.
 */
export function speculativeVerify(
  draftTokens: Arr, draftProbs: Arr, targetProbs: Arr, uniforms: Arr, B: number, K: number, V: number,
  accepted: Int32Array, nextToken: Int32Array,
): number {
  let firstBad = -1;
  for (let b = 0; b < B; b++) {
    let status = OK;
    let n = 0;
    for (; n < K; n++) {
      const y = draftTokens[b * K + n];
      const q = draftProbs[(b * K + n) * V + y];
      const p = targetProbs[(b * (K + 1) + n) * V + y];
      if (!probOk(p) || !probOk(q)) { status = BAD_PROB; break; }
      if (!specAccept(p, q, uniforms[b * (K + 1) + n])) break;
    }
    let tok = -1;
    if (status === OK) {
      const pRow = (b * (K + 1) + n) * V;
      const qRow = (b * K + n) * V;
      const w = new Float64Array(V);
      let bad = false, Z = 0;
      for (let t = 0; t < V; t++) {
        const p = targetProbs[pRow + t];
        if (!probOk(p)) bad = true;
        if (n < K) {
          const q = draftProbs[qRow + t];
          if (!probOk(q)) bad = true;
          w[t] = Math.max(p - q, 0);        // residual norm(max(p_n − q_n, 0))
        } else w[t] = p;                    // all K accepted: p_{K+1}
        Z += w[t];
      }
      if (!bad && n < K && !(Z > 0)) {      // residual of zero mass: draw from p_n instead
        Z = 0;
        for (let t = 0; t < V; t++) Z += (w[t] = targetProbs[pRow + t]);
      }
      if (bad) status = BAD_PROB;
      else if (!(Z > 0)) status = ZERO_MASS;
      else tok = inverseCdf(w, uniforms[b * (K + 1) + K]);
    }
    accepted[b] = n;
    nextToken[b] = tok;
    if (status !== OK && firstBad < 0) firstBad = 8 * b + status;
  }
  return firstBad;
}

/**
 * SpecDec++ stopping rule: smallest k ≥ minLength with 1 − Π_{i≤k} P̂_i > threshold, capped at
 * min(maxLength, K). Returns the first row with a P̂ read outside [0, 1], or -1.
 */
export function specDecStop(acceptProbs: Arr, B: number, K: number, threshold: number, minLength: number, maxLength: number, out: Int32Array): number {
  const cap = Math.min(maxLength, K);
  let firstBad = -1;
  for (let b = 0; b < B; b++) {
    let len = cap, prod = 1;
    for (let k = 1; k <= cap; k++) {
      const pk = acceptProbs[b * K + k - 1];
      if (!(pk >= 0 && Math.fround(pk) <= 1)) { len = -1; break; } // only the P̂ read are checked (in f32, as native)
      prod *= pk;
      if (k >= minLength && 1 - prod > threshold) { len = k; break; }
    }
    out[b] = len;
    if (len < 0 && firstBad < 0) firstBad = b;
  }
  return firstBad;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);
const bf16 = (h: number) => ((u32Scratch[0] = h << 16), f32Scratch[0]);
/** Element reader for a logits dtype (f16/bf16 widened exactly, without a whole-tensor copy). */
function reader(data: Arr, dtype: string): (i: number) => number {
  if (dtype === 'bf16') return (i) => bf16(data[i]);
  if (dtype === 'f16') return (i) => f16ToFloat(data[i]);
  return (i) => data[i];
}

/** Nash-MD / IPO-MD: log_softmax((1 − β)·z + β·z_ref) per row of V. */
export function geometricMixture(
  zData: Arr, zDtype: string, zrData: Arr, zrDtype: string, N: number, V: number, beta: number, out: Float32Array,
) {
  const z = reader(zData, zDtype), zr = reader(zrData, zrDtype);
  const h = new Float64Array(V);
  for (let r = 0; r < N; r++) {
    let m = -Infinity;
    for (let j = 0; j < V; j++) {
      h[j] = (1 - beta) * z(r * V + j) + beta * zr(r * V + j);
      m = Math.max(m, h[j]);
    }
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(h[j] - m);
    const lse = m + Math.log(s);
    for (let j = 0; j < V; j++) out[r * V + j] = h[j] - lse;
  }
}

/**
 * RSO Algorithm 1 per group (see core/sampling.hpp). Returns -1 or 8·group + status of the first
 * bad group.
 */
export function rejectionSample(rewards: Arr, uniforms: Arr, G: number, K: number, m: number, beta: number, out: Int32Array): number {
  let firstBad = -1;
  const taken = new Uint8Array(K);
  for (let g = 0; g < G; g++) {
    const status = rsoGroup(rewards, uniforms, g, K, m, beta, out, taken);
    if (status !== OK && firstBad < 0) firstBad = 8 * g + status;
  }
  return firstBad;
}

function rsoGroup(r: Arr, U: Arr, g: number, K: number, m: number, beta: number, out: Int32Array, taken: Uint8Array): number {
  const base = g * m;
  out.fill(-1, base, base + m);
  for (let c = 0; c < K; c++) {
    if (!Number.isFinite(r[g * K + c])) return BAD_REWARD;
    taken[c] = 0;
  }
  let n = 0;
  for (let round = 0; round < K; round++) {
    let rmax = -Infinity;
    for (let c = 0; c < K; c++) if (!taken[c] && r[g * K + c] > rmax) rmax = r[g * K + c];
    for (let c = 0; c < K; c++) {
      if (taken[c]) continue;
      const u = U[(g * K + round) * K + c];
      if (!(u >= 0 && Math.fround(u) < 1)) return BAD_UNIFORM; // (in f32, as the native backends see it)
      if (u < Math.exp((r[g * K + c] - rmax) / beta)) {
        taken[c] = 1;
        out[base + n++] = c;
        if (n === m) return OK;
      }
    }
  }
  return NO_ROUNDS;
}
