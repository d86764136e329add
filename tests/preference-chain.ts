/**
 * Shared by the tests of the fused preference losses (fusedPreferenceLoss from logits,
 * linearPreferenceLoss from hidden states): the loss types with test hyper-parameters, and the
 * un-fused composition they must equal — token log-probs (by the caller's forward) →
 * sequenceLogprobs → preferenceLoss → dLoss/dlogp per token → the caller's backward.
 */
import * as rk from '../ts/index.js';
import type { PreferenceType } from '../ts/reference/preference.js';
import { f32 } from './helpers.js';

export const TYPES: PreferenceType[] = ['dpo', 'cdpo', 'rdpo', 'ipo', 'hinge', 'rpo', 'xpo', 'inpo', 'dno', 'orpo', 'simpo'];
export const OPTS: Record<string, Record<string, number | boolean>> = {
  dpo: { beta: 0.1 }, cdpo: { beta: 0.2, epsilon: 0.1 }, rdpo: { beta: 0.3, epsilon: 0.2 }, ipo: { beta: 0.5 },
  ipoLN: { beta: 0.25, lengthNormalize: true }, hinge: { beta: 0.15 }, rpo: { beta: 0.1, eta: 0.5 }, xpo: { beta: 0.1, alpha: 0.01 },
  inpo: { beta: 0.1, tau: 0.05, eta: 0.5 }, dno: { beta: 0.1 }, orpo: { beta: 0.2 }, simpo: { beta: 2, gamma: 0.75 },
};
export const VARIANTS = [...TYPES, 'ipoLN'] as const;
export const typeOf = (v: string) => (v === 'ipoLN' ? 'ipo' : v) as PreferenceType;

type Backend = 'js' | 'cpu' | 'cuda';
/**
 * The composition for variant `v`: `forward(eff)` gives the token log-probs of the effective labels
 * (ignoreIndex where not counted), `backward(eff, gradLogp, fw)` the gradient outputs.
 */
export function prefComposition<F extends { logp: rk.Tensor<'f32'> }, G>(
  v: string, inp: any, o: any, backend: Backend,
  forward: (eff: rk.Tensor) => F, backward: (eff: rk.Tensor, gradLogp: rk.Tensor, fw: F) => G,
) {
  const [R, T] = inp.labels.shape;
  const B = R / 2;
  const ign = o.ignoreIndex ?? -100;
  const t = typeOf(v);
  const avg = t === 'orpo' || t === 'simpo';
  const lab = inp.labels.data as Int32Array, m = inp.mask.data;
  const counted = Uint8Array.from(lab, (y, i) => (m[i] !== 0 && y !== ign ? 1 : 0));
  const eff = rk.tensor(Int32Array.from(lab, (y, i) => (counted[i] ? y : ign)), [R, T]);
  const fw = forward(eff);
  const seq = rk.sequenceLogprobs({ logp: fw.logp, mask: rk.tensor(counted, [R, T]) }, { average: avg, backend });
  const s = seq.sum.data, c = seq.count.data;
  const half = (x: ArrayLike<number>, k: number) => f32(Array.prototype.slice.call(x, k * B, (k + 1) * B), [B]);
  const pin: any = { policyChosen: half(s, 0), policyRejected: half(s, 1) };
  if (inp.refLogp) { pin.refChosen = half(inp.refLogp.data, 0); pin.refRejected = half(inp.refLogp.data, 1); }
  if (v === 'ipoLN') { pin.chosenLength = rk.tensor(Int32Array.from(c.slice(0, B)), [B]); pin.rejectedLength = rk.tensor(Int32Array.from(c.slice(B)), [B]); }
  if (t === 'rpo' || t === 'orpo') pin.chosenNll = f32(Array.from(s.slice(0, B), (x) => -x), [B]);
  if (t === 'inpo') { pin.prevChosen = half(inp.prevLogp.data, 0); pin.prevRejected = half(inp.prevLogp.data, 1); }
  if (t === 'xpo') pin.policyExplore = inp.policyExplore;
  if (t === 'dno') pin.preferenceProb = inp.preferenceProb;
  const pl: any = rk.preferenceLoss(pin, { ...o, backend });
  const dseq = new Float64Array(R);
  for (let b = 0; b < B; b++) {
    dseq[b] = pl.gradPolicyChosen.data[b] * (avg ? 1 / c[b] : 1) - (t === 'rpo' ? pl.gradChosenNll.data[b] : t === 'orpo' ? pl.gradChosenNll.data[b] / c[b] : 0);
    dseq[B + b] = pl.gradPolicyRejected.data[b] * (avg ? 1 / c[B + b] : 1);
  }
  const gradLogp = rk.tensor(Float32Array.from(counted, (k, i) => (k ? dseq[Math.floor(i / T)] : 0)), [R, T]);
  return { ...pl, ...backward(eff, gradLogp, fw) };
}
