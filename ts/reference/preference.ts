/**
 * `js` backend of the preference family (SPEC §4): float64, equation by equation.
 * Inputs are already validated; arrays are read as numbers (f32 or f64 data).
 */
type Arr = ArrayLike<number>;

export const PREFERENCE_TYPES = ['dpo', 'cdpo', 'rdpo', 'ipo', 'hinge', 'rpo', 'xpo', 'inpo', 'dno', 'orpo', 'simpo'] as const;
export type PreferenceType = (typeof PREFERENCE_TYPES)[number];
export const LISTWISE_TYPES = ['lipo', 'pro', 'pl'] as const;
export type ListwiseType = (typeof LISTWISE_TYPES)[number];

export interface PrefParams {
  beta: number;
  epsilon: number;
  eta: number;
  alpha: number;
  tau: number;
  gamma: number;
}

/** softplus(x) = log(1 + e^x) for any x; −log σ(x) = softplus(−x). */
export const softplus = (x: number) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));
export const sigmoid = (x: number) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x)));
/** log(1 − e^x), x < 0 (Mächler). */
export const log1mexp = (x: number) => (x > -Math.LN2 ? Math.log(-Math.expm1(x)) : Math.log1p(-Math.exp(x)));

export interface PrefEx {
  pc: number; pr: number; rc: number; rr: number;
  /** 1/length of each log-ratio (1 unless ipo lengthNormalize) */
  ilc: number; ilr: number;
  /** chosenNll (rpo, orpo) or policyExplore (xpo) */
  nll: number;
  prevc: number; prevr: number;
  prob: number;
}
export interface PrefRes { loss: number; gc: number; gr: number; gx: number; cr: number; rj: number }

/** One example: the loss, its derivatives (not divided by B) and the reward metrics. */
export function prefExample(type: PreferenceType, x: PrefEx, p: PrefParams): PrefRes {
  const { beta } = p;
  const refFree = type === 'orpo' || type === 'simpo';
  const cr = refFree ? beta * x.pc : beta * (x.pc - x.rc);
  const rj = refFree ? beta * x.pr : beta * (x.pr - x.rr);
  const u = x.pc - x.rc - (x.pr - x.rr);
  const z = beta * u;
  let loss: number, gc: number, gr: number, gx = 0;
  const dz = (dLdz: number) => { gc = beta * dLdz; gr = -beta * dLdz; };
  switch (type) {
    case 'dpo':
    case 'rpo':
    case 'xpo':
      loss = softplus(-z);
      dz(-sigmoid(-z));
      if (type === 'rpo') { loss += p.eta * beta * x.nll; gx = p.eta * beta; }
      if (type === 'xpo') { loss += p.alpha * x.nll; gx = p.alpha; }
      break;
    case 'cdpo':
    case 'dno': {
      const e = type === 'dno' ? 1 - x.prob : p.epsilon;
      loss = (1 - e) * softplus(-z) + e * softplus(z);
      dz(-(1 - e) * sigmoid(-z) + e * sigmoid(z));
      break;
    }
    case 'rdpo': {
      const e = p.epsilon;
      loss = ((1 - e) * softplus(-z) - e * softplus(z)) / (1 - 2 * e);
      dz((-(1 - e) * sigmoid(-z) - e * sigmoid(z)) / (1 - 2 * e));
      break;
    }
    case 'ipo': {
      const up = (x.pc - x.rc) * x.ilc - (x.pr - x.rr) * x.ilr;
      const d = up - 1 / (2 * beta);
      loss = d * d;
      gc = 2 * d * x.ilc;
      gr = -2 * d * x.ilr;
      break;
    }
    case 'hinge': {
      const m = 1 - z;
      loss = Number.isNaN(m) ? NaN : Math.max(0, m);
      dz(Number.isNaN(m) ? NaN : m > 0 ? -1 : 0);
      break;
    }
    case 'inpo': {
      const h = x.pc - x.pr - (p.tau / p.eta) * (x.rc - x.rr) - ((p.eta - p.tau) / p.eta) * (x.prevc - x.prevr);
      const d = h - 1 / (2 * p.eta);
      loss = d * d;
      gc = 2 * d;
      gr = -2 * d;
      break;
    }
    case 'orpo': {
      const odds = x.pc - x.pr - (log1mexp(x.pc) - log1mexp(x.pr));
      const dodds = -beta * sigmoid(-odds);
      loss = beta * softplus(-odds) + x.nll;
      gc = dodds / -Math.expm1(x.pc);
      gr = -dodds / -Math.expm1(x.pr);
      gx = 1;
      break;
    }
    case 'simpo': {
      const y = beta * (x.pc - x.pr) - p.gamma;
      loss = softplus(-y);
      const s = sigmoid(-y);
      gc = -beta * s;
      gr = beta * s;
      break;
    }
  }
  return { loss: loss!, gc: gc!, gr: gr!, gx, cr, rj };
}

export interface PrefArrays {
  pc: Arr; pr: Arr; rc?: Arr; rr?: Arr; lc?: Arr; lr?: Arr; nll?: Arr; prevc?: Arr; prevr?: Arr; prob?: Arr;
}
export interface PrefOuts {
  losses: Float32Array; gc: Float32Array; gr: Float32Array; cr: Float32Array; rj: Float32Array; margins: Float32Array;
  gx?: Float32Array;
}

/** preferenceLoss over B examples; returns [mean loss, accuracy]. Writes per-example outputs. */
export function preferenceLoss(type: PreferenceType, B: number, x: PrefArrays, p: PrefParams, o: PrefOuts): [number, number] {
  let sum = 0, correct = 0, nan = false;
  for (let b = 0; b < B; b++) {
    const r = prefExample(type, {
      pc: x.pc[b], pr: x.pr[b], rc: x.rc ? x.rc[b] : 0, rr: x.rr ? x.rr[b] : 0,
      ilc: x.lc ? 1 / x.lc[b] : 1, ilr: x.lr ? 1 / x.lr[b] : 1,
      nll: x.nll ? x.nll[b] : 0, prevc: x.prevc ? x.prevc[b] : 0, prevr: x.prevr ? x.prevr[b] : 0, prob: x.prob ? x.prob[b] : 0,
    }, p);
    o.losses[b] = r.loss;
    o.gc[b] = r.gc / B;
    o.gr[b] = r.gr / B;
    o.cr[b] = r.cr;
    o.rj[b] = r.rj;
    const m = r.cr - r.rj;
    o.margins[b] = m;
    if (o.gx) o.gx[b] = r.gx / B;
    sum += r.loss;
    if (m > 0) correct++;
    if (Number.isNaN(m)) nan = true;
  }
  return B ? [sum / B, nan ? NaN : correct / B] : [0, 0];
}

/** Accelerated Preference Optimization: (1 + α)·current − α·previous. */
export function apoReference(cur: Arr, prev: Arr, out: Float32Array, alpha: number) {
  for (let i = 0; i < out.length; i++) out[i] = (1 + alpha) * cur[i] - alpha * prev[i];
}

const lse = (v: number[]) => {
  let m = -Infinity;
  for (const x of v) if (x > m || Number.isNaN(x)) m = x;
  if (Number.isNaN(m)) return NaN;
  if (!Number.isFinite(m)) return m;
  let s = 0;
  for (const x of v) s += Math.exp(x - m);
  return m + Math.log(s);
};

/** One listwise row: returns the row loss and writes ∂loss/∂policy (times gscale) into g. */
export function listwiseRow(
  type: ListwiseType, pol: Arr, ref: Arr | undefined, lab: Arr | undefined, len: Arr | undefined,
  K: number, beta: number, sftw: number, gscale: number, g: Float64Array,
): number {
  const s = Array.from({ length: K }, (_, i) => (type === 'pro' ? pol[i] / (len ? len[i] : 1) : beta * (pol[i] - ref![i])));
  let loss = 0;
  g.fill(0);
  if (type === 'lipo') {
    const y = lab!;
    const rank = s.map((si, i) => 1 + s.filter((sj, j) => sj > si || (sj === si && j < i)).length);
    const invD = rank.map((t) => 1 / Math.log2(1 + t));
    const G = Array.from({ length: K }, (_, i) => 2 ** y[i] - 1);
    for (let i = 0; i < K; i++)
      for (let j = 0; j < K; j++) {
        if (!(y[i] > y[j])) continue;
        const d = Math.abs(G[i] - G[j]) * Math.abs(invD[i] - invD[j]);
        loss += d * softplus(s[j] - s[i]);
        const sg = d * sigmoid(s[j] - s[i]);
        g[i] -= sg;
        g[j] += sg;
      }
    for (let i = 0; i < K; i++) g[i] *= beta * gscale;
    return loss;
  }
  const pro = type === 'pro';
  const nk = pro ? Math.max(K - 1, 0) : K;
  const T = (k: number, i: number) => (pro ? lab![k] - lab![i] : 1);
  const gs = new Float64Array(K);
  for (let k = 0; k < nk; k++) {
    let tkk = 1;
    if (pro) { tkk = -Infinity; for (let i = k + 1; i < K; i++) tkk = Math.max(tkk, T(k, i)); }
    const a = [s[k] * tkk];
    for (let i = k + 1; i < K; i++) a.push(s[i] * T(k, i));
    const L = lse(a);
    loss += L - s[k] * tkk;
    gs[k] += tkk * Math.exp(s[k] * tkk - L) - tkk;
    for (let i = k + 1; i < K; i++) gs[i] += T(k, i) * Math.exp(s[i] * T(k, i) - L);
  }
  for (let i = 0; i < K; i++) g[i] = gs[i] * (pro ? 1 / (len ? len[i] : 1) : beta) * gscale;
  if (pro && K > 0) {
    loss += sftw * (K - 1) ** 2 * -pol[0];
    g[0] -= sftw * (K - 1) ** 2 * gscale;
  }
  return loss;
}

/** listwiseLoss over B rows; returns the mean loss. */
export function listwiseLoss(
  type: ListwiseType, B: number, K: number, pol: Arr, ref: Arr | undefined, lab: Arr | undefined, len: Arr | undefined,
  beta: number, sftw: number, losses: Float32Array, grad: Float32Array,
): number {
  const g = new Float64Array(K);
  let sum = 0;
  const sub = (a: Arr | undefined, b: number) => (a ? Array.prototype.slice.call(a, b * K, (b + 1) * K) : undefined);
  for (let b = 0; b < B; b++) {
    const l = listwiseRow(type, sub(pol, b)!, sub(ref, b), sub(lab, b), sub(len, b), K, beta, sftw, 1 / B, g);
    losses[b] = l;
    sum += l;
    for (let i = 0; i < K; i++) grad[b * K + i] = g[i];
  }
  return B ? sum / B : 0;
}

export interface FusedArrays {
  /** logits widened to numbers, [2B·T·V] */
  logits: Arr;
  labels: Int32Array;
  mask?: Arr;
  refLogp?: Arr;
  prevLogp?: Arr;
  explore?: Arr;
  prob?: Arr;
}

/**
 * fusedPreferenceLoss in float64: log-softmax, gather, masked sums (length averages for orpo /
 * simpo), the loss, then gradLogits = dLoss/dSeq_b · (onehot(y) − softmax(z)) / τ on counted tokens.
 */
export function fusedPreferenceLoss(
  type: PreferenceType, B: number, T: number, V: number, x: FusedArrays, p: PrefParams, lengthNormalize: boolean,
  temperature: number, ignoreIndex: number, o: PrefOuts & { gradLogits: Float32Array },
): [number, number] {
  const R = 2 * B;
  const counted = (i: number) => (x.mask === undefined || x.mask[i] !== 0) && x.labels[i] !== ignoreIndex;
  const lse = new Float64Array(R * T);
  const seq = new Float64Array(R), cnt = new Float64Array(R);
  for (let r = 0; r < R; r++) {
    for (let t = 0; t < T; t++) {
      const i = r * T + t;
      if (!counted(i)) continue;
      let m = -Infinity;
      for (let v = 0; v < V; v++) m = Math.max(m, x.logits[i * V + v] / temperature);
      let s = 0;
      for (let v = 0; v < V; v++) s += Math.exp(x.logits[i * V + v] / temperature - m);
      lse[i] = m + Math.log(s);
      seq[r] += x.logits[i * V + x.labels[i]] / temperature - lse[i];
      cnt[r]++;
    }
  }
  const avg = type === 'orpo' || type === 'simpo';
  const val = (r: number) => (avg ? (cnt[r] ? seq[r] / cnt[r] : 0) : seq[r]);
  const inv = (r: number) => (cnt[r] ? 1 / cnt[r] : 0);
  const nll = Float64Array.from({ length: B }, (_, b) => -val(b));
  const [loss, acc] = preferenceLoss(type, B, {
    pc: Float64Array.from({ length: B }, (_, b) => val(b)),
    pr: Float64Array.from({ length: B }, (_, b) => val(B + b)),
    rc: x.refLogp ? Array.prototype.slice.call(x.refLogp, 0, B) : undefined,
    rr: x.refLogp ? Array.prototype.slice.call(x.refLogp, B, R) : undefined,
    // an empty response (no counted token) contributes 0 to the length-normalised ratio
    lc: lengthNormalize ? Float64Array.from({ length: B }, (_, b) => (cnt[b] ? cnt[b] : Infinity)) : undefined,
    lr: lengthNormalize ? Float64Array.from({ length: B }, (_, b) => (cnt[B + b] ? cnt[B + b] : Infinity)) : undefined,
    nll: type === 'xpo' ? x.explore : type === 'rpo' || type === 'orpo' ? nll : undefined,
    prevc: x.prevLogp ? Array.prototype.slice.call(x.prevLogp, 0, B) : undefined,
    prevr: x.prevLogp ? Array.prototype.slice.call(x.prevLogp, B, R) : undefined,
    prob: x.prob,
  }, p, { ...o, gx: o.gx ?? new Float32Array(B) } as PrefOuts);
  // per-sequence gradient in float64 (the per-example outputs above are f32: recompute them)
  const gseq = new Float64Array(R);
  for (let b = 0; b < B; b++) {
    const r = prefExample(type, {
      pc: val(b), pr: val(B + b), rc: x.refLogp ? x.refLogp[b] : 0, rr: x.refLogp ? x.refLogp[B + b] : 0,
      ilc: lengthNormalize ? inv(b) : 1, ilr: lengthNormalize ? inv(B + b) : 1,
      nll: type === 'xpo' ? x.explore![b] : nll[b], prevc: x.prevLogp ? x.prevLogp[b] : 0, prevr: x.prevLogp ? x.prevLogp[B + b] : 0,
      prob: x.prob ? x.prob[b] : 0,
    }, p);
    gseq[b] = (r.gc * (avg ? inv(b) : 1) - (type === 'rpo' ? r.gx : type === 'orpo' ? r.gx * inv(b) : 0)) / B;
    gseq[B + b] = (r.gr * (avg ? inv(B + b) : 1)) / B;
  }
  const g = o.gradLogits;
  for (let r = 0; r < R; r++)
    for (let t = 0; t < T; t++) {
      const i = r * T + t;
      if (!counted(i)) { g.fill(0, i * V, (i + 1) * V); continue; }
      for (let v = 0; v < V; v++) {
        const pv = Math.exp(x.logits[i * V + v] / temperature - lse[i]);
        g[i * V + v] = (gseq[r] * ((v === x.labels[i] ? 1 : 0) - pv)) / temperature;
      }
    }
  return [loss, acc];
}
