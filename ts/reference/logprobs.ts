/**
 * `js` backend of the token log-prob family (SPEC §1): float64, equation by equation.
 * Inputs are already validated. f16/bf16 logits are widened (exactly) one row at a time, so no
 * float copy of the whole tensor is made.
 */
import { bf16ToFloat, f16ToFloat, type Tensor } from '../tensor.js';

type Arr = ArrayLike<number>;

let F16: Float32Array | null = null;
let BF16: Float32Array | null = null;
/** Logits as the reference reads them: raw data plus, for f16/bf16, an exact widening table. */
export interface Src { data: Arr; lut: Float32Array | null }
export function source(t: Tensor): Src {
  if (t.dtype === 'f16') return { data: t.data, lut: (F16 ??= Float32Array.from({ length: 65536 }, (_, h) => f16ToFloat(h))) };
  if (t.dtype === 'bf16') return { data: t.data, lut: (BF16 ??= Float32Array.from({ length: 65536 }, (_, h) => bf16ToFloat(h))) };
  return { data: t.data, lut: null };
}

/** Widened row r (V values) divided by the temperature. */
function row(x: Src, r: number, V: number, tau: number, out: Float64Array): Float64Array {
  const base = r * V, d = x.data, lut = x.lut;
  if (lut) for (let j = 0; j < V; j++) out[j] = lut[d[base + j]] / tau;
  else for (let j = 0; j < V; j++) out[j] = d[base + j] / tau;
  return out;
}

/** log Σ exp(z) (max-shifted); −inf for an empty or all −inf row; NaN if any z is NaN. */
export function logSumExp(z: Float64Array): number {
  let m = -Infinity;
  for (let j = 0; j < z.length; j++) {
    if (Number.isNaN(z[j])) return NaN;
    if (z[j] > m) m = z[j];
  }
  if (m === -Infinity) return -Infinity;
  if (m === Infinity) return NaN; // ∞ − ∞ inside the shifted sum
  let s = 0;
  for (let j = 0; j < z.length; j++) s += Math.exp(z[j] - m);
  return m + Math.log(s);
}

/** entropy = lse − Σ softmax(z)_j·z_j, with p_j·z_j = 0 where p_j = 0. */
function entropyOf(z: Float64Array, lse: number): number {
  let s = 0;
  for (let j = 0; j < z.length; j++) {
    const p = Math.exp(z[j] - lse);
    if (p !== 0) s += p * z[j];
  }
  return lse - s;
}

export function logprobs(
  logits: Src, labels: Int32Array, N: number, V: number, tau: number, ignore: number,
  logp: Float32Array, lse: Float32Array, entropy: Float32Array | undefined,
) {
  const z = new Float64Array(V);
  for (let r = 0; r < N; r++) {
    const y = labels[r];
    if (y === ignore) {
      logp[r] = 0; lse[r] = 0;
      if (entropy) entropy[r] = 0;
      continue;
    }
    row(logits, r, V, tau, z);
    const l = logSumExp(z);
    lse[r] = l;
    logp[r] = z[y] - l;
    if (entropy) entropy[r] = Number.isNaN(l) ? NaN : entropyOf(z, l);
  }
}

/**
 * ∂logp/∂logits_j = (1[j=y] − p_j)/τ; ∂entropy/∂logits_j = −p_j (z_j − lse + entropy)/τ.
 * `lseIn` (from the forward) is used when given; the entropy is recomputed when gradEntropy is.
 */
export function logprobsBackward(
  logits: Src, labels: Int32Array, N: number, V: number, tau: number, ignore: number,
  gradLogp: Arr, gradEntropy: Arr | undefined, lseIn: Arr | undefined, grad: Float32Array,
) {
  const z = new Float64Array(V);
  for (let r = 0; r < N; r++) {
    const y = labels[r], base = r * V;
    if (y === ignore) {
      grad.fill(0, base, base + V);
      continue;
    }
    row(logits, r, V, tau, z);
    const l = lseIn && !gradEntropy ? lseIn[r] : logSumExp(z);
    const H = gradEntropy ? entropyOf(z, l) : 0;
    const gl = gradLogp[r], ge = gradEntropy ? gradEntropy[r] : 0;
    for (let j = 0; j < V; j++) {
      const p = Math.exp(z[j] - l);
      let g = -p * gl;
      if (gradEntropy && p !== 0) g += -p * (z[j] - l + H) * ge;
      if (j === y) g += gl;
      grad[base + j] = g / tau;
    }
  }
}

/** log-softmax of z into out (out_j = z_j − lse). */
function logSoftmax(z: Float64Array, out: Float64Array): void {
  const l = logSumExp(z);
  for (let j = 0; j < z.length; j++) out[j] = z[j] - l;
}

/**
 * KL(P‖Q) = Σ_j P_j (log P_j − log Q_j): terms with P_j = 0 (log P_j = −inf) count 0, and a
 * term with P_j > 0, Q_j = 0 makes it +inf (as the math says, even where P_j underflows).
 */
function klOf(lpP: Float64Array, lpQ: Float64Array): number {
  let s = 0, inf = false;
  for (let j = 0; j < lpP.length; j++) {
    const a = lpP[j], b = lpQ[j];
    if (Number.isNaN(a) || Number.isNaN(b)) return NaN;
    if (a === -Infinity) continue;
    if (b === -Infinity) inf = true;
    else s += Math.exp(a) * (a - b);
  }
  return inf ? Infinity : s;
}

export type KlDirection = 'reverse' | 'forward';

export function vocabKl(
  logits: Src, refLogits: Src, labels: Int32Array | undefined, N: number, V: number, tau: number, ignore: number,
  direction: KlDirection, kl: Float32Array,
) {
  const z = new Float64Array(V), zr = new Float64Array(V), lp = new Float64Array(V), lq = new Float64Array(V);
  for (let r = 0; r < N; r++) {
    if (labels && labels[r] === ignore) { kl[r] = 0; continue; }
    logSoftmax(row(logits, r, V, tau, z), lp);
    logSoftmax(row(refLogits, r, V, tau, zr), lq);
    kl[r] = direction === 'reverse' ? klOf(lp, lq) : klOf(lq, lp);
  }
}

/** reverse: p_j((log p_j − log q_j) − KL)·g/τ; forward: (p_j − q_j)·g/τ. */
export function vocabKlBackward(
  logits: Src, refLogits: Src, labels: Int32Array | undefined, N: number, V: number, tau: number, ignore: number,
  direction: KlDirection, gradKl: Arr, grad: Float32Array,
) {
  const z = new Float64Array(V), zr = new Float64Array(V), lp = new Float64Array(V), lq = new Float64Array(V);
  for (let r = 0; r < N; r++) {
    const base = r * V;
    if (labels && labels[r] === ignore) { grad.fill(0, base, base + V); continue; }
    logSoftmax(row(logits, r, V, tau, z), lp);
    logSoftmax(row(refLogits, r, V, tau, zr), lq);
    const g = gradKl[r] / tau;
    if (direction === 'reverse') {
      const k = klOf(lp, lq);
      for (let j = 0; j < V; j++) {
        const p = Math.exp(lp[j]);
        grad[base + j] = p === 0 ? 0 : p * (lp[j] - lq[j] - k) * g;
      }
    } else {
      for (let j = 0; j < V; j++) grad[base + j] = (Math.exp(lp[j]) - Math.exp(lq[j])) * g;
    }
  }
}

export function sequenceLogprobs(logp: Arr, mask: Arr, B: number, T: number, average: boolean, sum: Float32Array, count: Int32Array) {
  for (let b = 0; b < B; b++) {
    let s = 0, c = 0;
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      if (mask[i] !== 0) { s += logp[i]; c++; }
    }
    sum[b] = average ? (c ? s / c : 0) : s;
    count[b] = c;
  }
}
