/**
 * `js` backend of the linear family (SPEC §8): float64, equation by equation. Inputs are already
 * validated; f16/bf16 hidden states and weights arrive widened (exactly) to numbers.
 *
 * The logits of one row, x_j = Σ_k h_k·W_jk + b_j, are formed in float64 and handed to the
 * logprobs reference, so linearLogprobs(h, W, b) = logprobs(h·Wᵀ + b) by construction (one row
 * at a time: O(V) memory, ignored rows never read). The backward chains the logprobs reference's
 * ∂/∂logits through the product: gradHidden_i = Σ_j dZ_ij W_j, gradWeight_j = Σ_i dZ_ij h_i,
 * gradBias_j = Σ_i dZ_ij.
 */
import * as lp from './logprobs.js';
import * as pref from './preference.js';

type Arr = ArrayLike<number>;

/** hidden [N×D], weight [V×D], bias [V]? as numbers. */
export interface LinSrc { h: Arr; w: Arr; b?: Arr; N: number; V: number; D: number }

/** out_j = Σ_k h_ik·W_jk + b_j (float64). */
function logitsRow(x: LinSrc, i: number, out: Float64Array): Float64Array {
  const { h, w, b, V, D } = x;
  const hi = i * D;
  for (let j = 0; j < V; j++) {
    let s = b ? b[j] : 0;
    const wj = j * D;
    for (let k = 0; k < D; k++) s += h[hi + k] * w[wj + k];
    out[j] = s;
  }
  return out;
}

export function linearLogprobs(
  x: LinSrc, labels: Int32Array, tau: number, ignore: number, logp: Float32Array, lse: Float32Array, entropy: Float32Array | undefined,
) {
  const z = new Float64Array(x.V);
  const src: lp.Src = { data: z, lut: null };
  for (let r = 0; r < x.N; r++) {
    if (labels[r] === ignore) {
      logp[r] = 0; lse[r] = 0;
      if (entropy) entropy[r] = 0;
      continue;
    }
    logitsRow(x, r, z);
    // one row of the logprobs reference, written in place (float64 outputs stay float64)
    lp.logprobs(src, labels.subarray(r, r + 1), 1, x.V, tau, ignore, logp.subarray(r, r + 1), lse.subarray(r, r + 1), entropy?.subarray(r, r + 1));
  }
}

/** Adds dZ (one row i, V values) into gradHidden row i, gradWeight and gradBias (float64 accumulators). */
function chainRow(x: LinSrc, i: number, dz: Float64Array, gH: Float64Array, gW: Float64Array, gB: Float64Array | undefined) {
  const { h, w, V, D } = x;
  const hi = i * D;
  for (let j = 0; j < V; j++) {
    const g = dz[j];
    if (g === 0) continue;
    const wj = j * D;
    for (let k = 0; k < D; k++) {
      gH[hi + k] += g * w[wj + k];
      gW[wj + k] += g * h[hi + k];
    }
    if (gB) gB[j] += g;
  }
}

/**
 * ∂L/∂hidden, ∂L/∂weight, ∂L/∂bias for L = Σ_i gradLogp_i·logp_i + gradEntropy_i·entropy_i.
 * `lseIn` (from the forward) is used when given and gradEntropy is not (as logprobsBackward).
 */
export function linearLogprobsBackward(
  x: LinSrc, labels: Int32Array, tau: number, ignore: number, gradLogp: Arr, gradEntropy: Arr | undefined, lseIn: Arr | undefined,
  gradHidden: Float32Array, gradWeight: Float32Array, gradBias: Float32Array | undefined,
) {
  const { N, V, D } = x;
  const gH = new Float64Array(N * D), gW = new Float64Array(V * D), gB = gradBias ? new Float64Array(V) : undefined;
  const z = new Float64Array(V), dz = new Float64Array(V);
  const src: lp.Src = { data: z, lut: null };
  const y = new Int32Array(1);
  for (let r = 0; r < N; r++) {
    if (labels[r] === ignore) continue;
    y[0] = labels[r];
    logitsRow(x, r, z);
    lp.logprobsBackward(src, y, 1, V, tau, ignore, [gradLogp[r]], gradEntropy ? [gradEntropy[r]] : undefined,
      lseIn ? [lseIn[r]] : undefined, dz as unknown as Float32Array);
    chainRow(x, r, dz, gH, gW, gB);
  }
  gradHidden.set(gH);
  gradWeight.set(gW);
  if (gradBias && gB) gradBias.set(gB);
}

/**
 * linearPreferenceLoss: the logits of the counted tokens formed in float64, then the
 * fusedPreferenceLoss reference (its gradLogits kept in float64) chained through the product.
 */
export function linearPreferenceLoss(
  type: pref.PreferenceType, B: number, T: number, x: LinSrc, inp: Omit<pref.FusedArrays, 'logits'>, p: pref.PrefParams,
  lengthNormalize: boolean, tau: number, ignore: number,
  o: pref.PrefOuts & { gradHidden: Float32Array; gradWeight: Float32Array; gradBias?: Float32Array },
): [number, number] {
  const { N, V, D } = x;
  const counted = (i: number) => (inp.mask === undefined || inp.mask[i] !== 0) && inp.labels[i] !== ignore;
  const logits = new Float64Array(N * V), gz = new Float64Array(N * V);
  for (let i = 0; i < N; i++) if (counted(i)) logitsRow(x, i, logits.subarray(i * V, (i + 1) * V));
  const res = pref.fusedPreferenceLoss(type, B, T, V, { ...inp, logits }, p, lengthNormalize, tau, ignore,
    { ...o, gradLogits: gz as unknown as Float32Array });
  const gH = new Float64Array(N * D), gW = new Float64Array(V * D), gB = o.gradBias ? new Float64Array(V) : undefined;
  for (let i = 0; i < N; i++) if (counted(i)) chainRow(x, i, gz.subarray(i * V, (i + 1) * V), gH, gW, gB);
  o.gradHidden.set(gH);
  o.gradWeight.set(gW);
  if (o.gradBias && gB) o.gradBias.set(gB);
  return res;
}
