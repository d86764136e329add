/**
 * Argument handling shared by the preference losses (ops/preference.ts) and the loss straight from
 * hidden states (ops/linear.ts `linearPreferenceLoss`). Internal: not exported from the package.
 */
import * as ref from '../reference/preference.js';
import type { Tensor } from '../tensor.js';
import { f32Data, INT, OpArgs } from '../validate.js';

export type PreferenceType = ref.PreferenceType;
export const PREFERENCE_TYPES: readonly PreferenceType[] = ref.PREFERENCE_TYPES;

/** Type codes of the native ABI (RK_PREF_* in src/include/rk_preference.h). */
export const TYPE_CODE: Record<PreferenceType, number> = {
  dpo: 0, cdpo: 1, rdpo: 2, ipo: 3, hinge: 4, rpo: 5, xpo: 6, inpo: 7, dno: 8, orpo: 9, simpo: 10,
};

/** A float tensor's data for the backend: f32 as is for native (f64 rounded once), numbers for js. */
export const dataFor = (t: Tensor | undefined, js: boolean): ArrayLike<number> | undefined =>
  t === undefined ? undefined : js ? (t.data as ArrayLike<number>) : f32Data(t);

export interface ResolvedParams extends ref.PrefParams {
  type: PreferenceType;
  lengthNormalize: boolean;
}

export function prefParams(a: OpArgs): ResolvedParams {
  const type = a.oneOf('type', PREFERENCE_TYPES);
  const beta = a.num('beta', { gt: 0 });
  let epsilon = 0, eta = 0, alpha = 0, tau = 0, gamma = 0;
  if (type === 'cdpo') epsilon = a.num('epsilon', { min: 0, max: 1 });
  else if (type === 'rdpo') epsilon = a.num('epsilon', { min: 0, lt: 0.5 });
  else if (type === 'rpo') eta = a.num('eta', { default: 0.005, min: 0 });
  else if (type === 'xpo') alpha = a.num('alpha', { default: 1e-5 });
  else if (type === 'inpo') {
    eta = a.num('eta', { gt: 0 });
    tau = a.num('tau', { min: 0 });
  } else if (type === 'simpo') gamma = a.num('gamma', { default: 0.5 });
  const lengthNormalize = type === 'ipo' && a.bool('lengthNormalize', false);
  return { type, beta, epsilon, eta, alpha, tau, gamma, lengthNormalize };
}

/**
 * Per-example output buffers: options.out[name] when given (checked), else views of one new
 * Float32Array (one allocation instead of up to seven: the per-call overhead is what small
 * batches pay). `outB(...)` returns the next buffer.
 */
export function outsB(a: OpArgs, shape: readonly number[], B: number, count: number) {
  const hasOut = a.options.out !== undefined && a.options.out !== null;
  const own = hasOut || a.device !== undefined; // a.out: checked out buffers, device tensors
  // (above ~8K examples one big zeroed block costs more than separate ones: mmap'd, page faults;
  // a.out then also gives large outputs of an .async call addon-owned memory)
  const block = own || B > 8192 ? null : new Float32Array(B * count);
  let k = 0;
  return (name: string): Tensor<'f32'> => {
    if (!block) return a.out(name, 'f32', shape);
    const data = block.subarray(k * B, (k + 1) * B);
    k++;
    return { data, shape, dtype: 'f32' };
  };
}

export function checkProb(a: OpArgs, t: Tensor) {
  const d = a.values(t) as ArrayLike<number>;
  for (let i = 0; i < d.length; i++)
    if (d[i] < 0 || d[i] > 1) a.rangeError(`input 'preferenceProb' must lie in [0, 1], got ${d[i]} at ${i}`);
}

/**
 * The token-level inputs and options of a preference loss from logits or hidden states (rows
 * 0..B−1 chosen, B..2B−1 rejected, T tokens, vocabulary V): labels [2B,T] i32 (in [0, V) or
 * ignoreIndex where the mask counts; device labels and masks are read back to be checked), mask?,
 * the per-type sequence inputs, the loss parameters, temperature and ignoreIndex.
 */
export function fusedTokenInputs(a: OpArgs, B: number, T: number, V: number) {
  const R = 2 * B;
  const labels = a.tensor('labels', INT, { shape: [R, T] });
  const mask = a.mask('mask', { optional: true, shape: [R, T] });
  const P = prefParams(a);
  const t = P.type;
  const refFree = t === 'orpo' || t === 'simpo';
  const refLogp = refFree ? undefined : a.float('refLogp', { shape: [R] });
  const prevLogp = t === 'inpo' ? a.float('prevLogp', { shape: [R] }) : undefined;
  const explore = t === 'xpo' ? a.float('policyExplore', { shape: [B] }) : undefined;
  const prob = t === 'dno' ? a.float('preferenceProb', { shape: [B] }) : undefined;
  if (prob) checkProb(a, prob);
  const temperature = a.num('temperature', { default: 1, gt: 0 });
  const ignoreIndex = a.num('ignoreIndex', { default: -100, integer: true, min: -2147483648, max: 2147483647 });
  const lab = a.values(labels) as Int32Array, md = mask ? a.values(mask) : undefined; // device: read back (2B·T each)
  for (let i = 0; i < lab.length; i++) {
    const y = lab[i];
    if (y !== ignoreIndex && (y < 0 || y >= V) && (md === undefined || md[i] !== 0))
      a.rangeError(`input 'labels' must lie in [0, ${V}) or equal ignoreIndex (${ignoreIndex}) where counted, got ${y} at ${i}`);
  }
  // lab, md: host values (the js reference, the checks); labels, mask: the tensors (native calls)
  return { labels, lab, mask, md: md as ArrayLike<number> | undefined, P, refLogp, prevLogp, explore, prob, temperature, ignoreIndex };
}

/** The per-example outputs of a preference loss from logits or hidden states. */
export function fusedOutputs(a: OpArgs, B: number, type: PreferenceType) {
  const outB = outsB(a, Object.freeze([B]), B, type === 'xpo' ? 7 : 6);
  return {
    losses: outB('losses'),
    gradPolicyChosen: outB('gradPolicyChosen'),
    gradPolicyRejected: outB('gradPolicyRejected'),
    chosenRewards: outB('chosenRewards'),
    rejectedRewards: outB('rejectedRewards'),
    margins: outB('margins'),
    gx: type === 'xpo' ? outB('gradPolicyExplore') : undefined,
  };
}
