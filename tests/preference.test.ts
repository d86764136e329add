/** Preference family (SPEC §4): native vs the float64 reference, hand cases, gradients, errors. */
import { describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { prefExample, listwiseRow, type PreferenceType } from '../ts/reference/preference.js';
import { atEverySimdLevel, expectClose, f32, nativeBackends, poisoned, rng } from './helpers.js';
import { OPTS, prefComposition, TYPES, typeOf, VARIANTS } from './preference-chain.js';


/** Random inputs for a type: summed log-probs (length-averaged < 0 for orpo/simpo). */
function prefInputs(v: string, B: number, seed: number, scale = 5): any {
  const r = rng(seed);
  const t = typeOf(v);
  const avg = t === 'orpo' || t === 'simpo';
  const lp = () => (avg ? Float32Array.from({ length: B }, () => -0.01 - Math.abs(r.normal())) : r.f32(B, scale, -20));
  const inp: Record<string, rk.Tensor> = { policyChosen: rk.tensor(lp(), [B]), policyRejected: rk.tensor(lp(), [B]) };
  if (!avg) { inp.refChosen = rk.tensor(lp(), [B]); inp.refRejected = rk.tensor(lp(), [B]); }
  if (v === 'ipoLN') {
    inp.chosenLength = rk.tensor(Int32Array.from({ length: B }, () => r.int(1, 60)), [B]);
    inp.rejectedLength = rk.tensor(Float32Array.from({ length: B }, () => r.int(1, 60)), [B]);
  }
  if (t === 'rpo' || t === 'orpo') inp.chosenNll = rk.tensor(Float32Array.from({ length: B }, () => Math.abs(r.normal()) * 10), [B]);
  if (t === 'xpo') inp.policyExplore = rk.tensor(r.f32(B, scale, -20), [B]);
  if (t === 'inpo') { inp.prevChosen = rk.tensor(lp(), [B]); inp.prevRejected = rk.tensor(lp(), [B]); }
  if (t === 'dno') {
    const p = r.uniform(B);
    if (B > 2) { p[0] = 0; p[1] = 1; }
    inp.preferenceProb = rk.tensor(p, [B]);
  }
  return inp;
}
const opts = (v: string) => ({ ...OPTS[v], type: typeOf(v) });

const absSum = (inp: Record<string, rk.Tensor>, b: number) =>
  Object.entries(inp).reduce((s, [k, t]) => s + (k.endsWith('Length') || k === 'preferenceProb' ? 0 : Math.abs(t.data[b])), 0);
const PER_EXAMPLE = ['losses', 'gradPolicyChosen', 'gradPolicyRejected', 'chosenRewards', 'rejectedRewards', 'margins', 'gradChosenNll', 'gradPolicyExplore'];

/** SPEC-style scale per example: the inputs' absolute sum through the loss's first-order sensitivity. */
function prefScale(v: string, inp: Record<string, rk.Tensor>, ref: any, name: string, B: number): Float64Array {
  const o = OPTS[v] as any;
  const t = typeOf(v);
  const sens = t === 'ipo' || t === 'inpo' ? 4 * (1 + Math.abs(1 / (2 * (o.eta ?? o.beta)))) : t === 'orpo' ? 4 : 2 * o.beta;
  return Float64Array.from({ length: B }, (_, b) => {
    const A = absSum(inp, b);
    const d = t === 'ipo' || t === 'inpo' ? Math.abs(ref.gradPolicyChosen.data[b]) * B + 1 : 1;
    const base = name === 'losses' ? (sens * A * d + Math.abs(ref.losses.data[b])) : name.startsWith('grad') ? sens * (1 + A) * 1 / B * (t === 'orpo' ? 100 : 1) : o.beta * A;
    return base;
  });
}

function compareAll(v: string, got: any, want: any, inp: Record<string, rk.Tensor>, what: string) {
  const B = inp.policyChosen.shape[0];
  for (const k of PER_EXAMPLE) {
    if (want[k] === undefined) { expect(got[k], `${what} ${k}`).toBeUndefined(); continue; }
    expectClose(got[k].data, want[k].data, `${what} ${k}`, { scale: prefScale(v, inp, want, k, B) });
  }
  const lossScale = B ? prefScale(v, inp, want, 'losses', B).reduce((a, b) => a + b, 0) / B : 0;
  expectClose([got.loss], [want.loss], `${what} loss`, { scale: lossScale });
  expect(got.accuracy, `${what} accuracy`).toBe(want.accuracy);
}

for (const backend of nativeBackends()) {
  describe(`preferenceLoss [${backend}] vs js reference`, () => {
    it('every type on many sizes, every SIMD level, poisoned outputs overwritten', () => {
      atEverySimdLevel((level) => {
        for (const [si, B] of [1, 2, 3, 7, 16, 33, 100, 1000].entries()) {
          for (const v of VARIANTS) {
            const inp = prefInputs(v, B, 1000 + si * 17 + v.length);
            const want = rk.preferenceLoss(inp, { ...opts(v), backend: 'js' } as any);
            const out = Object.fromEntries(PER_EXAMPLE.map((k) => [k, poisoned([B])]));
            const got = rk.preferenceLoss(inp, { ...opts(v), backend, out } as any);
            for (const k of PER_EXAMPLE) if (want[k as keyof typeof want] !== undefined) expect((got as any)[k]).toBe(out[k]);
            compareAll(v, got, want, inp, `${level} B=${B} ${v}`);
          }
        }
      });
    });

    it('large batches split over threads give the reference numbers (B = 70001)', () => {
      for (const v of ['dpo', 'ipoLN', 'orpo', 'dno'] as const) {
        const B = 70001;
        const inp = prefInputs(v, B, 77);
        const want = rk.preferenceLoss(inp, { ...opts(v), backend: 'js' } as any);
        const got = rk.preferenceLoss(inp, { ...opts(v), backend } as any);
        compareAll(v, got, want, inp, `B=${B} ${v}`);
      }
    });

    it('margins of ±1e4: no NaN, no inf, and the reference values', () => {
      for (const v of VARIANTS) {
        const t = typeOf(v);
        if (t === 'orpo') continue; // tested below with its own inputs
        const B = 6;
        const inp = prefInputs(v, B, 5);
        const m = [1e4, -1e4, 3e3, -3e3, 1e4, -1e4];
        const beta = (OPTS[v] as any).beta;
        // πc − πr = ±1e4/β (ref inputs 0) so βu = ±1e4
        inp.policyChosen = f32(m.map((x) => (t === 'simpo' ? -1 : -10 + x / beta / 2)), [B]);
        inp.policyRejected = f32(m.map((x) => (t === 'simpo' ? -1 - x / beta : -10 - x / beta / 2)), [B]);
        if (inp.refChosen) { inp.refChosen = f32(new Array(B).fill(-10), [B]); inp.refRejected = f32(new Array(B).fill(-10), [B]); }
        for (const be of ['js', backend] as const) {
          const r: any = rk.preferenceLoss(inp, { ...opts(v), backend: be } as any);
          for (const k of PER_EXAMPLE) if (r[k]) for (const x of r[k].data) expect(Number.isFinite(x), `${v} ${be} ${k} ${x}`).toBe(true);
          expect(Number.isFinite(r.loss)).toBe(true);
        }
        const want: any = rk.preferenceLoss(inp, { ...opts(v), backend: 'js' } as any);
        const got: any = rk.preferenceLoss(inp, { ...opts(v), backend } as any);
        compareAll(v, got, want, inp, `±1e4 ${v}`);
        if (t === 'dpo') {
          // −log σ(1e4) = 0 (to f32), −log σ(−1e4) = 1e4
          expect(got.losses.data[0]).toBe(0);
          expect(got.losses.data[1]).toBeCloseTo(1e4, 0);
        }
      }
      // orpo: odds far from 0 through log-probs near 0 and far below
      const inp = { policyChosen: f32([-1e-6, -1e4, -1e-7], [3]), policyRejected: f32([-1e4, -1e-6, -1e-7], [3]), chosenNll: f32([1, 1, 1], [3]) };
      const want: any = rk.preferenceLoss(inp, { type: 'orpo', beta: 0.5, backend: 'js' });
      const got: any = rk.preferenceLoss(inp, { type: 'orpo', beta: 0.5, backend });
      for (const k of ['losses', 'gradPolicyChosen', 'gradPolicyRejected']) {
        for (const x of got[k].data) expect(Number.isFinite(x), `orpo ${k}`).toBe(true);
        expectClose(got[k].data, want[k].data, `orpo extreme ${k}`, { tol: 1e-4 });
      }
    });

    it('rdpo with ε = 0 equals dpo (every output)', () => {
      const inp = prefInputs('dpo', 257, 9);
      for (const be of ['js', backend] as const) {
        const a: any = rk.preferenceLoss(inp, { type: 'dpo', beta: 0.3, backend: be });
        const b: any = rk.preferenceLoss(inp, { type: 'rdpo', beta: 0.3, epsilon: 0, backend: be });
        const c: any = rk.preferenceLoss(inp, { type: 'cdpo', beta: 0.3, epsilon: 0, backend: be });
        for (const k of PER_EXAMPLE.slice(0, 6)) {
          expectClose(b[k].data, a[k].data, `rdpo ε=0 ${be} ${k}`, { tol: 1e-6 });
          expectClose(c[k].data, a[k].data, `cdpo ε=0 ${be} ${k}`, { tol: 1e-6 });
        }
        expectClose([b.loss], [a.loss], 'loss', { tol: 1e-6 });
        expect(b.accuracy).toBe(a.accuracy);
      }
    });

    it('NaN in one counted input propagates to that example, the loss and the accuracy only', () => {
      const inp = prefInputs('dpo', 5, 3);
      const pc = Float32Array.from(inp.policyChosen.data as Float32Array);
      pc[2] = NaN;
      const r: any = rk.preferenceLoss({ ...inp, policyChosen: rk.tensor(pc, [5]) }, { type: 'dpo', beta: 0.1, backend });
      for (const k of PER_EXAMPLE.slice(0, 6)) {
        if (k !== 'rejectedRewards') expect(Number.isNaN(r[k].data[2]), k).toBe(true);
        for (const i of [0, 1, 3, 4]) expect(Number.isFinite(r[k].data[i]), k).toBe(true);
      }
      expect(Number.isNaN(r.loss)).toBe(true);
      expect(Number.isNaN(r.accuracy)).toBe(true);
    });

    it('f64 inputs are rounded to f32 once; B = 0 gives loss 0 and accuracy 0', () => {
      const inp = prefInputs('cdpo', 9, 4);
      const i64: any = Object.fromEntries(Object.entries(inp).map(([k, t]: [string, any]) => [k, rk.tensor(Float64Array.from(t.data), [9])]));
      const a: any = rk.preferenceLoss(i64, { ...opts('cdpo'), backend } as any);
      const b: any = rk.preferenceLoss(inp, { ...opts('cdpo'), backend } as any);
      expect(Array.from(a.losses.data)).toEqual(Array.from(b.losses.data));
      expect(a.loss).toBe(b.loss);
      const e = rk.preferenceLoss(prefInputs('dpo', 0, 1), { type: 'dpo', beta: 0.1, backend });
      expect(e.loss).toBe(0);
      expect(e.accuracy).toBe(0);
      expect(e.losses.shape).toEqual([0]);
    });
  });
}

describe('preferenceLoss: hand-computed cases (every backend)', () => {
  // Two examples; u = (πc − rc) − (πr − rr) = 2 and −1. β = 0.5 → βu = 1, −0.5.
  const inp = { policyChosen: f32([-1, -4], [2]), policyRejected: f32([-3, -2], [2]), refChosen: f32([-2, -3], [2]), refRejected: f32([-2, -2], [2]) };
  const sp = (x: number) => Math.log1p(Math.exp(x));
  const sg = (x: number) => 1 / (1 + Math.exp(-x));
  for (const backend of ['js', ...nativeBackends()] as const) {
    it(`[${backend}] dpo, cdpo, rdpo, ipo, hinge, rpo, xpo, dno, inpo, simpo, orpo term by term`, () => {
      // DPO eq. 7: −log σ(βu); ∂/∂πc = −β σ(−βu) / B
      let r: any = rk.preferenceLoss(inp, { type: 'dpo', beta: 0.5, backend });
      expectClose(r.losses.data, [0.31326168751822286, 0.9740769841801067], 'dpo losses');
      expectClose(r.gradPolicyChosen.data, [-0.5 * sg(-1) / 2, -0.5 * sg(0.5) / 2], 'dpo grad');
      expectClose(r.gradPolicyRejected.data, [0.5 * sg(-1) / 2, 0.5 * sg(0.5) / 2], 'dpo gradR');
      expectClose(r.chosenRewards.data, [0.5, -0.5], 'rewards c');
      expectClose(r.rejectedRewards.data, [-0.5, 0], 'rewards r');
      expectClose(r.margins.data, [1, -0.5], 'margins');
      expect(r.accuracy).toBe(0.5);
      expectClose([r.loss], [(0.31326168751822286 + 0.9740769841801067) / 2], 'dpo mean');
      r = rk.preferenceLoss(inp, { type: 'cdpo', beta: 0.5, epsilon: 0.25, backend });
      expectClose(r.losses.data, [0.75 * sp(-1) + 0.25 * sp(1), 0.75 * sp(0.5) + 0.25 * sp(-0.5)], 'cdpo');
      r = rk.preferenceLoss(inp, { type: 'rdpo', beta: 0.5, epsilon: 0.25, backend });
      expectClose(r.losses.data, [-0.18673831248177708, (0.75 * sp(0.5) - 0.25 * sp(-0.5)) / 0.5], 'rdpo');
      expectClose(r.gradPolicyChosen.data, [0.5 * (-0.75 * sg(-1) - 0.25 * sg(1)) / 0.5 / 2, 0.5 * (-0.75 * sg(0.5) - 0.25 * sg(-0.5)) / 0.5 / 2], 'rdpo grad');
      // IPO eq. 17: (u − 1/(2β))² = (2 − 1)², (−1 − 1)²; ∂/∂πc = 2(u − 1/(2β))/B
      r = rk.preferenceLoss(inp, { type: 'ipo', beta: 0.5, backend });
      expectClose(r.losses.data, [1, 4], 'ipo');
      expectClose(r.gradPolicyChosen.data, [1, -2], 'ipo grad');
      // lengthNormalize: u' = (1)/2 − (−1)/4 = 0.75 → (0.75 − 1)² ; lengths as i32
      r = rk.preferenceLoss({ ...inp, chosenLength: rk.tensor(Int32Array.from([2, 1]), [2]), rejectedLength: rk.tensor(Int32Array.from([4, 1]), [2]) },
        { type: 'ipo', beta: 0.5, lengthNormalize: true, backend });
      expectClose(r.losses.data, [0.0625, 4], 'ipo LN');
      expectClose(r.gradPolicyChosen.data, [2 * -0.25 / 2 / 2, -2], 'ipo LN grad c');
      expectClose(r.gradPolicyRejected.data, [-2 * -0.25 / 4 / 2, 2], 'ipo LN grad r');
      // SLiC hinge: max(0, 1 − βu) = 0 and 1.5; gradient −β/B where active
      r = rk.preferenceLoss(inp, { type: 'hinge', beta: 0.5, backend });
      expectClose(r.losses.data, [0, 1.5], 'hinge');
      expectClose(r.gradPolicyChosen.data, [0, -0.25], 'hinge grad');
      // RPO: dpo + η β nll
      r = rk.preferenceLoss({ ...inp, chosenNll: f32([10, 20], [2]) }, { type: 'rpo', beta: 0.5, eta: 0.1, backend });
      expectClose(r.losses.data, [0.31326168751822286 + 0.5, 0.9740769841801067 + 1], 'rpo');
      expectClose(r.gradChosenNll.data, [0.025, 0.025], 'rpo grad nll');
      // XPO: dpo + α·explore (default α = 1e-5)
      r = rk.preferenceLoss({ ...inp, policyExplore: f32([-30, -40], [2]) }, { type: 'xpo', beta: 0.5, backend });
      expectClose(r.losses.data, [0.31326168751822286 - 3e-4, 0.9740769841801067 - 4e-4], 'xpo');
      expectClose(r.gradPolicyExplore.data, [5e-6, 5e-6], 'xpo grad');
      // DNO soft labels: p = 1 is DPO, p = 0 is DPO with the pair swapped
      r = rk.preferenceLoss({ ...inp, preferenceProb: f32([1, 0], [2]) }, { type: 'dno', beta: 0.5, backend });
      expectClose(r.losses.data, [sp(-1), sp(-0.5)], 'dno');
      // INPO eq. 10: h = (πc − πr) − (τ/η)(rc − rr) − ((η−τ)/η)(prevc − prevr)
      r = rk.preferenceLoss({ ...inp, prevChosen: f32([-1.5, -3], [2]), prevRejected: f32([-2.5, -2.5], [2]) },
        { type: 'inpo', beta: 0.5, tau: 0.25, eta: 0.5, backend });
      // row 0: h = 2 − 0.5·0 − 0.5·1 = 1.5 → (1.5 − 1)² ; row 1: h = −2 − 0.5·(−1) − 0.5·(−0.5) = −1.25 → (−2.25)²
      expectClose(r.losses.data, [0.25, 5.0625], 'inpo');
      expectClose(r.gradPolicyChosen.data, [0.5, -2.25], 'inpo grad');
      // SimPO eq. 6: −log σ(β(πc − πr) − γ) with length-averaged inputs; rewards β·π
      const avg = { policyChosen: f32([-0.5, -1], [2]), policyRejected: f32([-1, -0.75], [2]) };
      r = rk.preferenceLoss(avg, { type: 'simpo', beta: 2, gamma: 0.5, backend });
      expectClose(r.losses.data, [sp(-0.5), sp(1)], 'simpo');
      expectClose(r.chosenRewards.data, [-1, -2], 'simpo rewards');
      expectClose(r.gradPolicyChosen.data, [-2 * sg(-0.5) / 2, -2 * sg(1) / 2], 'simpo grad');
      // ORPO eqs. 4–6: odds = log(p/(1−p)) − log(q/(1−q)) with p = e^πc
      r = rk.preferenceLoss({ ...avg, chosenNll: f32([0.5, 1], [2]) }, { type: 'orpo', beta: 0.25, backend });
      const lo = (x: number) => x - Math.log(1 - Math.exp(x));
      const odds = [lo(-0.5) - lo(-1), lo(-1) - lo(-0.75)];
      expectClose(r.losses.data, [0.25 * sp(-odds[0]) + 0.5, 0.25 * sp(-odds[1]) + 1], 'orpo');
      expectClose(r.gradChosenNll.data, [0.5, 0.5], 'orpo grad nll');
      expectClose(r.gradPolicyChosen.data, [-0.25 * sg(-odds[0]) / (1 - Math.exp(-0.5)) / 2, -0.25 * sg(-odds[1]) / (1 - Math.exp(-1)) / 2], 'orpo grad');
    });
  }
});

describe('preference: analytic gradients vs central finite differences (float64 reference)', () => {
  it('preferenceLoss, every type, every input with a gradient', () => {
    const r = rng(11);
    for (const v of VARIANTS) {
      const t = typeOf(v);
      const o = OPTS[v] as any;
      const p = { beta: o.beta, epsilon: o.epsilon ?? 0, eta: o.eta ?? 0.005, alpha: o.alpha ?? 1e-5, tau: o.tau ?? 0, gamma: o.gamma ?? 0.5 };
      for (let trial = 0; trial < 20; trial++) {
        const avg = t === 'orpo' || t === 'simpo';
        const x = {
          pc: avg ? -0.05 - r.next() : -20 + 5 * r.normal(), pr: avg ? -0.05 - r.next() : -20 + 5 * r.normal(),
          rc: -20 + 5 * r.normal(), rr: -20 + 5 * r.normal(), ilc: v === 'ipoLN' ? 1 / r.int(1, 30) : 1, ilr: v === 'ipoLN' ? 1 / r.int(1, 30) : 1,
          nll: 10 * r.next(), prevc: -20 + 5 * r.normal(), prevr: -20 + 5 * r.normal(), prob: r.next(),
        };
        const g = prefExample(t, x, p);
        const h = 1e-5;
        for (const [k, an] of [['pc', g.gc], ['pr', g.gr], ['nll', g.gx]] as const) {
          const lp = prefExample(t, { ...x, [k]: x[k] + h }, p).loss;
          const lm = prefExample(t, { ...x, [k]: x[k] - h }, p).loss;
          const fd = (lp - lm) / (2 * h);
          if (t === 'hinge' && Math.abs(1 - p.beta * (x.pc - x.rc - x.pr + x.rr)) < 1e-3) continue;
          expect(Math.abs(fd - an), `${v} ∂/∂${k}: fd ${fd} vs ${an}`).toBeLessThan(1e-6 * (1 + Math.abs(fd)));
        }
      }
    }
  });

  it('listwiseLoss: lipo (Δ constant), pro, pl', () => {
    const r = rng(12);
    for (const type of ['lipo', 'pro', 'pl'] as const) {
      for (const K of [1, 2, 3, 5, 8]) {
        for (let trial = 0; trial < 5; trial++) {
          const pol = Array.from({ length: K }, () => -10 + 3 * r.normal());
          const refv = Array.from({ length: K }, () => -10 + 3 * r.normal());
          const lab = Array.from({ length: K }, () => (type === 'lipo' ? r.int(0, 3) : 3 * r.normal()));
          const len = Array.from({ length: K }, () => r.int(1, 20));
          const g = new Float64Array(K);
          const f = (pp: number[], gg: Float64Array) => listwiseRow(type, pp, refv, lab, len, K, 0.5, 0.25, 1, gg);
          f(pol, g);
          const h = 1e-6, tmp = new Float64Array(K);
          for (let i = 0; i < K; i++) {
            const pp = [...pol], pm = [...pol];
            pp[i] += h;
            pm[i] -= h;
            const fd = (f(pp, tmp) - f(pm, tmp)) / (2 * h);
            expect(Math.abs(fd - g[i]), `${type} K=${K} ∂/∂policy_${i}: ${fd} vs ${g[i]}`).toBeLessThan(1e-5 * (1 + Math.abs(fd)));
          }
        }
      }
    }
  });
});

/** Random [B,K] listwise inputs. */
function listInputs(B: number, K: number, seed: number, type: string, lengthsI32 = false) {
  const r = rng(seed);
  const n = B * K;
  const labels = type === 'lipo' ? Float32Array.from({ length: n }, () => r.int(0, 4)) : r.f32(n, 2);
  const lengths = lengthsI32 ? Int32Array.from({ length: n }, () => r.int(1, 50)) : Float32Array.from({ length: n }, () => r.int(1, 50));
  return {
    policy: rk.tensor(r.f32(n, 5, -30), [B, K]),
    ref: rk.tensor(r.f32(n, 5, -30), [B, K]),
    labels: rk.tensor(labels, [B, K]),
    lengths: rk.tensor(lengths, [B, K]),
  };
}

for (const backend of nativeBackends()) {
  describe(`listwiseLoss / apoReference [${backend}] vs js reference`, () => {
    it('lipo, pro, pl on many shapes (K = 1 .. 40, B up to 3000)', () => {
      atEverySimdLevel(() => {
        for (const [B, K] of [[1, 1], [1, 2], [3, 3], [7, 5], [16, 8], [5, 17], [64, 4], [2, 40], [3000, 4]] as const) {
          for (const type of ['lipo', 'pro', 'pl'] as const) {
            const x = listInputs(B, K, 300 + B + K, type, B === 7);
            const o = { type, beta: 0.5, sftWeight: 0.1 };
            const want = rk.listwiseLoss(x, { ...o, backend: 'js' });
            const out = { losses: poisoned([B]), gradPolicy: poisoned([B, K]) };
            const got = rk.listwiseLoss(x, { ...o, backend, out });
            expect(got.losses).toBe(out.losses);
            // S: the row's summed |terms| (K² pairs of magnitude ~|s|)
            const S = Float64Array.from({ length: B }, (_, b) => {
              let a = 0;
              for (let i = 0; i < K; i++) a += Math.abs(x.policy.data[b * K + i]) + Math.abs(x.ref.data[b * K + i]);
              return a * K * (type === 'lipo' ? 16 : 4);
            });
            expectClose(got.losses.data, want.losses.data, `${type} ${B}x${K} losses`, { scale: S });
            expectClose(got.gradPolicy.data, want.gradPolicy.data, `${type} ${B}x${K} grad`, { scale: 30 * K / B });
            expectClose([got.loss], [want.loss], `${type} ${B}x${K} loss`, { scale: S.reduce((a, b) => a + b, 0) / B });
          }
        }
      });
    });

    it('lipo with K = 2 is the Δ-weighted DPO pairwise logistic loss (LiPO §4)', () => {
      const B = 50;
      const x = listInputs(B, 2, 41, 'lipo');
      const lab = x.labels.data as Float32Array;
      for (let b = 0; b < B; b++) { lab[2 * b] = 1 + (b % 3); lab[2 * b + 1] = b % 2 ? 0 : lab[2 * b] + 1; }
      const beta = 0.3;
      const got = rk.listwiseLoss(x, { type: 'lipo', beta, backend });
      // as a DPO pair: chosen = the better-labelled item
      const pc: number[] = [], pr: number[] = [], rc: number[] = [], rr: number[] = [], w: number[] = [];
      for (let b = 0; b < B; b++) {
        const [i, j] = lab[2 * b] > lab[2 * b + 1] ? [0, 1] : [1, 0];
        pc.push(x.policy.data[2 * b + i]); pr.push(x.policy.data[2 * b + j]);
        rc.push(x.ref.data[2 * b + i]); rr.push(x.ref.data[2 * b + j]);
        const G = (y: number) => 2 ** y - 1;
        w.push(Math.abs(G(lab[2 * b]) - G(lab[2 * b + 1])) * (1 - 1 / Math.log2(3)));
      }
      const d = rk.preferenceLoss({ policyChosen: f32(pc, [B]), policyRejected: f32(pr, [B]), refChosen: f32(rc, [B]), refRejected: f32(rr, [B]) },
        { type: 'dpo', beta, backend });
      expectClose(got.losses.data, Array.from(d.losses.data, (l, b) => w[b] * l), 'lipo K=2 losses', { scale: 100 });
      for (let b = 0; b < B; b++) {
        const i = lab[2 * b] > lab[2 * b + 1] ? 0 : 1;
        expectClose([got.gradPolicy.data[2 * b + i], got.gradPolicy.data[2 * b + 1 - i]],
          [w[b] * d.gradPolicyChosen.data[b], w[b] * d.gradPolicyRejected.data[b]], `lipo K=2 grad ${b}`, { scale: 1 });
      }
    });

    it('pl with K = 2 is DPO (Bradley-Terry); lipo label ties add nothing', () => {
      const x = listInputs(20, 2, 42, 'pl');
      const got = rk.listwiseLoss(x, { type: 'pl', beta: 0.2, backend });
      const col = (t: rk.Tensor, k: number) => f32(Array.from({ length: 20 }, (_, b) => t.data[2 * b + k]), [20]);
      const d = rk.preferenceLoss({ policyChosen: col(x.policy, 0), policyRejected: col(x.policy, 1), refChosen: col(x.ref, 0), refRejected: col(x.ref, 1) },
        { type: 'dpo', beta: 0.2, backend });
      expectClose(got.losses.data, d.losses.data, 'pl K=2', { scale: 50 });
      const tie = listInputs(4, 3, 43, 'lipo');
      (tie.labels.data as Float32Array).fill(2);
      const t = rk.listwiseLoss(tie, { type: 'lipo', beta: 0.2, backend });
      expect(Array.from(t.losses.data)).toEqual([0, 0, 0, 0]);
      expect(Array.from(t.gradPolicy.data).every((g) => g === 0)).toBe(true);
    });

    it('listwise scores of ±1e4: finite and equal to the reference', () => {
      const pol = f32([0, -2e4, 2e4, -1e4, 1e4, 0, 5, -5], [2, 4]);
      const refT = f32(new Array(8).fill(0), [2, 4]);
      const labels = f32([3, 0, 1, 2, 0, 1, 2, 3], [2, 4]);
      const lengths = f32([1, 2, 4, 8, 1, 1, 1, 1], [2, 4]);
      for (const type of ['lipo', 'pro', 'pl'] as const) {
        const o = { type, beta: 1, sftWeight: 0.1 };
        const want = rk.listwiseLoss({ policy: pol, ref: refT, labels, lengths }, { ...o, backend: 'js' });
        const got = rk.listwiseLoss({ policy: pol, ref: refT, labels, lengths }, { ...o, backend });
        for (const x of [...got.losses.data, ...got.gradPolicy.data]) expect(Number.isFinite(x), `${type} ${x}`).toBe(true);
        expectClose(got.losses.data, want.losses.data, `${type} ±1e4 losses`, { scale: 1e5 });
        expectClose(got.gradPolicy.data, want.gradPolicy.data, `${type} ±1e4 grad`, { scale: 10 });
      }
    });

    it('apoReference on several shapes', () => {
      const r = rng(5);
      for (const shape of [[1], [7], [3, 5], [1000, 33]]) {
        const n = shape.reduce((a, b) => a * b, 1);
        const current = rk.tensor(r.f32(n, 5, -20), shape), previous = rk.tensor(r.f32(n, 5, -20), shape);
        const want = rk.apoReference({ current, previous }, { alpha: 0.3, backend: 'js' }).reference;
        const got = rk.apoReference({ current, previous }, { alpha: 0.3, backend, out: { reference: poisoned(shape) } }).reference;
        expect(got.shape).toEqual(shape);
        const S = Float64Array.from({ length: n }, (_, i) => 1.3 * Math.abs(current.data[i]) + 0.3 * Math.abs(previous.data[i]));
        expectClose(got.data, want.data, `apo ${shape}`, { scale: S });
      }
    });
  });
}

describe('preference: errors', () => {
  const x = prefInputs('dpo', 3, 1);
  for (const backend of ['js', ...nativeBackends()] as const) {
    it(`[${backend}] documented errors`, () => {
      const P = (inp: any, o: any) => () => rk.preferenceLoss(inp, { backend, ...o });
      expect(P(x, { type: 'dpo', beta: 0 })).toThrow(RangeError);
      expect(P(x, { type: 'dpo', beta: -1 })).toThrow(RangeError);
      expect(P(x, { type: 'dpo', beta: NaN })).toThrow(RangeError);
      expect(P(x, { type: 'dpo', beta: Infinity })).toThrow(RangeError);
      expect(P(x, { type: 'dpo' })).toThrow(TypeError);
      expect(P(x, { type: 'dpo', beta: '1' })).toThrow(TypeError);
      expect(P(x, { beta: 0.1 })).toThrow(TypeError);
      expect(P(x, { type: 'kto', beta: 0.1 })).toThrow(RangeError);
      expect(P(x, { type: 3, beta: 0.1 })).toThrow(TypeError);
      expect(P(x, { type: 'rdpo', beta: 0.1, epsilon: 0.5 })).toThrow(RangeError);
      expect(P(x, { type: 'rdpo', beta: 0.1, epsilon: -0.1 })).toThrow(RangeError);
      expect(P(x, { type: 'rdpo', beta: 0.1 })).toThrow(TypeError);
      expect(P(x, { type: 'cdpo', beta: 0.1, epsilon: 1.5 })).toThrow(RangeError);
      expect(P(x, { type: 'inpo', beta: 0.1, tau: 0.1, eta: 0 })).toThrow(RangeError);
      expect(P({ ...x, prevChosen: x.refChosen, prevRejected: x.refRejected }, { type: 'inpo', beta: 0.1, eta: 0.5 })).toThrow(TypeError);
      expect(P(x, { type: 'rpo', beta: 0.1 })).toThrow(TypeError); // no chosenNll
      expect(P(x, { type: 'xpo', beta: 0.1 })).toThrow(TypeError); // no policyExplore
      expect(P(x, { type: 'dno', beta: 0.1 })).toThrow(TypeError); // no preferenceProb
      expect(P({ ...x, preferenceProb: f32([0.5, 1.25, 0], [3]) }, { type: 'dno', beta: 0.1 })).toThrow(RangeError);
      expect(P({ ...x, preferenceProb: f32([0.5, -0.01, 0], [3]) }, { type: 'dno', beta: 0.1 })).toThrow(RangeError);
      expect(P(x, { type: 'ipo', beta: 0.1, lengthNormalize: true })).toThrow(TypeError); // lengths missing
      expect(P({ ...x, chosenLength: f32([1, 0, 2], [3]), rejectedLength: f32([1, 1, 1], [3]) }, { type: 'ipo', beta: 0.1, lengthNormalize: true })).toThrow(RangeError);
      expect(P({ ...x, chosenLength: rk.tensor(Uint8Array.from([1, 1, 1]), [3]), rejectedLength: f32([1, 1, 1], [3]) }, { type: 'ipo', beta: 0.1, lengthNormalize: true })).toThrow(TypeError);
      expect(P(x, { type: 'ipo', beta: 0.1, lengthNormalize: 1 })).toThrow(TypeError);
      expect(P({ ...x, refChosen: undefined }, { type: 'dpo', beta: 0.1 })).toThrow(TypeError);
      expect(P({ ...x, policyRejected: f32([1, 2], [2]) }, { type: 'dpo', beta: 0.1 })).toThrow(/policyRejected.*shape/);
      expect(P({ ...x, policyChosen: f32([1, 2, 3, 4], [2, 2]) }, { type: 'dpo', beta: 0.1 })).toThrow(/rank 1/);
      expect(P({ ...x, refRejected: rk.tensor(Int32Array.from([1, 2, 3]), [3]) }, { type: 'dpo', beta: 0.1 })).toThrow(TypeError);
      expect(P(x, { type: 'dpo', beta: 0.1, out: { losses: rk.zeros([3], 'f64') } })).toThrow(TypeError);
      expect(P(x, { type: 'dpo', beta: 0.1, out: { margins: rk.zeros([4], 'f32') } })).toThrow(RangeError);
      expect(P(x, { type: 'dpo', beta: 0.1, backend: 'tpu' })).toThrow(RangeError);
      expect(() => rk.preferenceLoss(null as any, { type: 'dpo', beta: 0.1 })).toThrow(TypeError);
      // orpo: length-averaged log-probs must be < 0
      const o = { policyChosen: f32([-0.5, 0, -1], [3]), policyRejected: f32([-1, -1, -1], [3]), chosenNll: f32([1, 1, 1], [3]) };
      expect(P(o, { type: 'orpo', beta: 0.1 })).toThrow(RangeError);
      expect(P({ ...o, policyChosen: f32([-0.5, -0.1, -1], [3]), policyRejected: f32([-1, 0.5, -1], [3]) }, { type: 'orpo', beta: 0.1 })).toThrow(RangeError);
      expect(P({ ...o, chosenNll: undefined }, { type: 'orpo', beta: 0.1 })).toThrow(TypeError);
      // listwise
      const l = listInputs(2, 3, 1, 'lipo');
      const L = (inp: any, opt: any) => () => rk.listwiseLoss(inp, { backend, ...opt });
      expect(L(l, { type: 'lipo', beta: 0 })).toThrow(RangeError);
      expect(L(l, { type: 'lipo' })).toThrow(TypeError);
      expect(L(l, { type: 'listmle', beta: 1 })).toThrow(RangeError);
      expect(L({ ...l, labels: undefined }, { type: 'lipo', beta: 1 })).toThrow(TypeError);
      expect(L({ ...l, ref: undefined }, { type: 'pl', beta: 1 })).toThrow(TypeError);
      expect(L({ ...l, ref: f32([1, 2, 3], [3]) }, { type: 'pl', beta: 1 })).toThrow(RangeError);
      expect(L({ ...l, labels: f32([1, 2, 3, 4, 5, 6], [3, 2]) }, { type: 'lipo', beta: 1 })).toThrow(RangeError);
      expect(L({ ...l, policy: f32([1, 2, 3], [3]) }, { type: 'pl', beta: 1 })).toThrow(/rank 2/);
      expect(L(l, { type: 'pro' })).toThrow(TypeError); // sftWeight required
      expect(L(l, { type: 'pro', sftWeight: -1 })).toThrow(RangeError);
      expect(L({ ...l, lengths: f32([1, 2, 0, 1, 1, 1], [2, 3]) }, { type: 'pro', sftWeight: 0 })).toThrow(RangeError);
      expect(L({ ...l, lengths: f32([1, 2, 1], [3]) }, { type: 'pro', sftWeight: 0 })).toThrow(RangeError);
      expect(L(l, { type: 'pro', sftWeight: 0, beta: -1 })).toThrow(RangeError);
      expect(L(l, { type: 'pl', beta: 1, out: { gradPolicy: rk.zeros([3, 2], 'f32') } })).toThrow(RangeError);
      // apo
      expect(() => rk.apoReference({ current: l.policy, previous: l.ref }, { backend } as any)).toThrow(TypeError);
      expect(() => rk.apoReference({ current: l.policy, previous: l.ref }, { alpha: NaN, backend })).toThrow(RangeError);
      expect(() => rk.apoReference({ current: l.policy, previous: f32([1], [1]) }, { alpha: 1, backend })).toThrow(RangeError);
    });
  }

  it('the reference-free types ignore reference inputs; pro ignores ref and beta', () => {
    const a = prefInputs('simpo', 4, 2);
    const r1 = rk.preferenceLoss(a, { type: 'simpo', beta: 2, backend: 'js' });
    const r2 = rk.preferenceLoss({ ...a, refChosen: f32([NaN, NaN, NaN, NaN], [4]), refRejected: f32([1, 2, 3, 4], [4]) }, { type: 'simpo', beta: 2, backend: 'js' });
    expect(Array.from(r2.losses.data)).toEqual(Array.from(r1.losses.data));
    const l = listInputs(2, 3, 1, 'pro');
    const p1 = rk.listwiseLoss(l, { type: 'pro', sftWeight: 0.5 });
    const p2 = rk.listwiseLoss({ ...l, ref: undefined }, { type: 'pro', sftWeight: 0.5, beta: 7 });
    expect(Array.from(p2.losses.data)).toEqual(Array.from(p1.losses.data));
  });

  it("backend 'cuda' without a device is an Error that says why", () => {
    if (rk.backends().cuda.available) return;
    expect(() => rk.preferenceLoss(x, { type: 'dpo', beta: 0.1, backend: 'cuda' })).toThrow(/cuda/i);
    expect(() => rk.listwiseLoss(listInputs(2, 3, 1, 'pl'), { type: 'pl', beta: 0.1, backend: 'cuda' })).toThrow(/cuda/i);
  });

  it('fuzzed arguments never crash the process (native arg checks too)', () => {
    const r = rng(98);
    const junk = [undefined, null, 0, -1, 1.5, NaN, 'x', 'dpo', 'orpo', 'lipo', {}, [], new Float64Array(3), new Float32Array(0),
      new Float32Array(3), new Uint8Array(7), new Int32Array(3), f32([1, 2, 3], [3]), f32([-1, -2], [2]), rk.tensor(Int32Array.from([1, 2, 3]), [3])];
    const pick = () => junk[r.int(0, junk.length - 1)];
    const l = listInputs(2, 3, 1, 'lipo');
    for (let i = 0; i < 400; i++) {
      const inp: any = {};
      for (const k of ['policyChosen', 'policyRejected', 'refChosen', 'refRejected', 'chosenNll', 'policyExplore', 'prevChosen', 'prevRejected',
        'preferenceProb', 'chosenLength', 'rejectedLength'])
        inp[k] = r.next() < 0.6 ? (x as any)[k] ?? f32([-1, -2, -3], [3]) : pick();
      const o: any = { type: r.next() < 0.7 ? TYPES[r.int(0, TYPES.length - 1)] : pick(), beta: r.next() < 0.7 ? 0.1 : pick(),
        epsilon: pick(), eta: pick(), tau: pick(), alpha: pick(), gamma: pick(), lengthNormalize: r.next() < 0.5 ? true : pick(),
        backend: r.next() < 0.8 ? 'auto' : pick(), out: r.next() < 0.2 ? { losses: pick() } : undefined };
      try { rk.preferenceLoss(inp, o); } catch (e) { expect(e).toBeInstanceOf(Error); }
      const li: any = { policy: r.next() < 0.6 ? l.policy : pick(), ref: r.next() < 0.6 ? l.ref : pick(), labels: r.next() < 0.6 ? l.labels : pick(), lengths: pick() };
      const lo: any = { type: r.next() < 0.7 ? ['lipo', 'pro', 'pl'][r.int(0, 2)] : pick(), beta: r.next() < 0.7 ? 0.5 : pick(), sftWeight: pick(), backend: r.next() < 0.8 ? 'auto' : pick() };
      try { rk.listwiseLoss(li, lo); } catch (e) { expect(e).toBeInstanceOf(Error); }
      try { rk.apoReference({ current: pick(), previous: pick() } as any, { alpha: pick() } as any); } catch (e) { expect(e).toBeInstanceOf(Error); }
    }
    // the native entry points themselves, called with junk, throw instead of crashing
    const nat: any = (rk as any).backends().cpu ? require_native() : null;
    if (nat) {
      for (let i = 0; i < 300; i++) {
        const args = Array.from({ length: r.int(0, 30) }, pick);
        for (const f of ['preferenceLoss', 'listwiseLoss', 'apoReference']) {
          try { nat[f](...args); } catch (e) { expect(e).toBeInstanceOf(Error); }
        }
      }
    }
  });
});

import { native } from '../ts/native.js';
function require_native() { return native; }

// ---------------------------------------------------------------------------------------------
// fusedPreferenceLoss
const FUSED_OUT = ['losses', 'gradPolicyChosen', 'gradPolicyRejected', 'chosenRewards', 'rejectedRewards', 'margins', 'gradPolicyExplore'];

/** Random fused inputs: [2B,T,V] logits (NaN/Inf at uncounted positions), labels with ignoreIndex, a mask with holes. */
function fusedInputs(v: string, B: number, T: number, V: number, seed: number, o: { dtype?: 'f32' | 'f16' | 'bf16'; emptyRows?: boolean; ign?: number } = {}) {
  const r = rng(seed);
  const R = 2 * B, N = R * T;
  const ign = o.ign ?? -100;
  const mask = r.mask(R, T);
  if (!o.emptyRows) for (let row = 0; row < R; row++) if (!mask.slice(row * T, (row + 1) * T).some((m) => m)) mask[row * T] = 1;
  const labels = Int32Array.from({ length: N }, () => r.int(0, V - 1));
  for (let i = 0; i < N; i++) {
    if (mask[i] && T > 2 && r.next() < 0.1) labels[i] = ign; // counted by the mask but ignored by the label
    if (!mask[i] && r.next() < 0.3) labels[i] = r.next() < 0.5 ? -7 : V + 3; // never validated or read
  }
  if (!o.emptyRows) for (let row = 0; row < R; row++) {
    const i = row * T;
    if (![...Array(T).keys()].some((t) => mask[i + t] && labels[i + t] !== ign)) { mask[i] = 1; labels[i] = 0; }
  }
  const lg = r.f32(N * V, 2);
  for (let i = 0; i < N; i++) if (!mask[i] || labels[i] === ign) lg[i * V + (i % V)] = i % 2 ? NaN : Infinity;
  const t = typeOf(v);
  const avgT = t === 'orpo' || t === 'simpo';
  let logits: rk.Tensor = rk.tensor(lg, [R, T, V]);
  if (o.dtype === 'f16') logits = rk.tensor(Uint16Array.from(lg, rk.floatToF16), [R, T, V], 'f16');
  if (o.dtype === 'bf16') logits = rk.tensor(Uint16Array.from(lg, rk.floatToBf16), [R, T, V], 'bf16');
  const inp: any = { logits, labels: rk.tensor(labels, [R, T]), mask: rk.tensor(mask, [R, T]) };
  if (!avgT) inp.refLogp = rk.tensor(r.f32(R, 3, -T * Math.log(V)), [R]);
  if (t === 'inpo') inp.prevLogp = rk.tensor(r.f32(R, 3, -T * Math.log(V)), [R]);
  if (t === 'xpo') inp.policyExplore = rk.tensor(r.f32(B, 3, -30), [B]);
  if (t === 'dno') inp.preferenceProb = rk.tensor(r.uniform(B), [B]);
  return inp;
}

/** The un-fused composition: logprobs → sequenceLogprobs → preferenceLoss → logprobsBackward. */
function composition(v: string, inp: any, o: any, backend: 'js' | 'cpu' | 'cuda') {
  const ign = o.ignoreIndex ?? -100;
  return prefComposition(v, inp, o, backend,
    (labels) => rk.logprobs({ logits: inp.logits, labels }, { temperature: o.temperature, ignoreIndex: ign, backend }),
    (labels, gradLogp, fw) => rk.logprobsBackward({ logits: inp.logits, labels, gradLogp, lse: fw.lse }, { temperature: o.temperature, ignoreIndex: ign, backend }));
}

/**
 * SPEC scales for fused outputs, by first-order propagation: S_r = Σ_t (|z_y| + |lse|) over row r's
 * counted tokens (÷ count for orpo / simpo) plus |refLogp_r|; a loss moves by |∂L/∂seq|·S, a
 * gradient by |∂²L/∂seq²|·S (bounded per type), a gradLogits element by that times |1[j=y] − p_j|.
 */
function fusedScales(v: string, inp: any, want: any, o: any) {
  const [R, T, V] = inp.logits.shape;
  const B = R / 2;
  const t = typeOf(v);
  const avg = t === 'orpo' || t === 'simpo';
  const ign = o.ignoreIndex ?? -100, tau = o.temperature ?? 1;
  const L = inp.logits.dtype === 'f32' ? inp.logits.data : rk.readFloat(inp.logits);
  const lab = inp.labels.data, m = inp.mask.data;
  const S = new Float64Array(R), P = new Float64Array(R * T * V);
  for (let r = 0; r < R; r++) {
    let c = 0;
    for (let k = 0; k < T; k++) {
      const i = r * T + k;
      if (!m[i] || lab[i] === ign) continue;
      let mx = -Infinity;
      for (let j = 0; j < V; j++) mx = Math.max(mx, L[i * V + j] / tau);
      let se = 0;
      for (let j = 0; j < V; j++) se += Math.exp(L[i * V + j] / tau - mx);
      const lse = mx + Math.log(se);
      for (let j = 0; j < V; j++) P[i * V + j] = Math.abs((j === lab[i] ? 1 : 0) - Math.exp(L[i * V + j] / tau - lse));
      S[r] += Math.abs(L[i * V + lab[i]] / tau) + Math.abs(lse);
      c++;
    }
    if (avg && c) S[r] /= c;
    if (inp.refLogp) S[r] += Math.abs(inp.refLogp.data[r]);
    if (inp.prevLogp) S[r] += Math.abs(inp.prevLogp.data[r]);
  }
  const beta = (OPTS[v] as any).beta;
  const h2 = t === 'ipo' ? 2 : t === 'inpo' ? 2 * 4 : t === 'orpo' ? 50 : t === 'hinge' ? 0 : beta * beta;
  const Sb = Float64Array.from({ length: B }, (_, b) => S[b] + S[B + b]);
  const dseq = Float64Array.from({ length: R }, (_, r) => Math.abs(r < B ? want.gradPolicyChosen.data[r] : want.gradPolicyRejected.data[r - B]) * B);
  const per = (name: string) => Float64Array.from({ length: B }, (_, b) => {
    if (name === 'losses') return dseq[b] * S[b] + dseq[B + b] * S[B + b] + Math.abs(want.losses.data[b]) + (t === 'rpo' || t === 'orpo' ? S[b] : 0);
    if (name.startsWith('grad')) return (h2 * Sb[b] + (t === 'rpo' || t === 'orpo' ? 1 : 0)) / B + Math.abs(want[name].data[b]);
    return beta * (name === 'margins' ? Sb[b] : name === 'chosenRewards' ? S[b] : S[B + b]);
  });
  const grad = Float64Array.from(P, (p, i) => {
    const r = Math.floor(i / (T * V)), b = r % B;
    return (p * (dseq[r] + h2 * Sb[b] + (t === 'rpo' || t === 'orpo' ? 1 : 0))) / B / tau;
  });
  const loss = per('losses').reduce((x, y) => x + y, 0) / Math.max(B, 1);
  return { per, grad, loss };
}

function compareFused(v: string, got: any, want: any, inp: any, o: any, what: string, tight = false) {
  const sc = fusedScales(v, inp, want, o);
  for (const k of FUSED_OUT) {
    if (want[k] === undefined) continue;
    expectClose(got[k].data, want[k].data, `${what} ${k}`, tight ? { tol: 1e-5 } : { scale: sc.per(k) });
  }
  expectClose(got.gradLogits.data, want.gradLogits.data, `${what} gradLogits`, tight ? { tol: 1e-5 } : { scale: sc.grad });
  expectClose([got.loss], [want.loss], `${what} loss`, tight ? { tol: 1e-5 } : { scale: sc.loss });
  expect(got.accuracy, `${what} accuracy`).toBe(want.accuracy);
}

for (const backend of nativeBackends()) {
  describe(`fusedPreferenceLoss [${backend}]`, () => {
    it('equals the composition logprobs → sequenceLogprobs → preferenceLoss → logprobsBackward (every type)', () => {
      for (const [si, [B, T, V]] of ([[1, 1, 5], [1, 7, 33], [3, 5, 100], [2, 17, 1031]] as const).entries()) {
        for (const v of VARIANTS) {
          const inp = fusedInputs(v, B, T, V, 500 + si * 31 + v.length);
          const o = { ...opts(v), temperature: si === 2 ? 0.7 : 1 };
          const want = composition(v, inp, o, backend);
          const got = rk.fusedPreferenceLoss(inp, { ...o, backend } as any);
          for (const x of got.gradLogits.data) if (!Number.isFinite(x)) expect.fail(`${v} non-finite gradLogits`);
          compareFused(v, got, want, inp, o, `fused vs composition ${B}x${T}x${V} ${v}`, true);
        }
      }
    });

    it('native vs js reference: every type, empty rows, f16/bf16 logits, custom ignoreIndex, every SIMD level', () => {
      atEverySimdLevel((level) => {
        for (const [si, [B, T, V, dtype]] of ([[1, 3, 7, 'f32'], [2, 9, 64, 'bf16'], [3, 4, 300, 'f16'], [2, 6, 2049, 'f32']] as const).entries()) {
          for (const v of VARIANTS) {
            if (level !== 'avx512' && si > 1 && v !== 'dpo' && v !== 'orpo') continue;
            const ign = si === 1 ? -1 : -100;
            // (orpo on an empty response is log 1 − log 0: undefined, so no empty rows there)
            const inp = fusedInputs(v, B, T, V, 700 + si * 13 + v.length, { dtype, emptyRows: v !== 'orpo', ign });
            const o = { ...opts(v), ignoreIndex: ign, temperature: si === 3 ? 1.5 : 1 };
            const want = rk.fusedPreferenceLoss(inp, { ...o, backend: 'js' } as any);
            const out = { gradLogits: poisoned(inp.logits.shape), losses: poisoned([B]), margins: poisoned([B]) };
            const got = rk.fusedPreferenceLoss(inp, { ...o, backend, out } as any);
            expect(got.gradLogits).toBe(out.gradLogits);
            compareFused(v, got, want, inp, o, `${level} ${B}x${T}x${V} ${dtype} ${v}`);
          }
        }
      });
    });

    it('uncounted positions are never read and get zero gradient; rows 0..B−1 are the chosen ones', () => {
      const inp = fusedInputs('dpo', 2, 6, 50, 3);
      const got = rk.fusedPreferenceLoss(inp, { type: 'dpo', beta: 0.5, backend });
      const lab = inp.labels.data, m = inp.mask.data;
      for (let i = 0; i < lab.length; i++) {
        const row = got.gradLogits.data.subarray(i * 50, (i + 1) * 50);
        if (!m[i] || lab[i] === -100) expect(row.every((g) => g === 0), `row ${i}`).toBe(true);
        else {
          // a counted row's gradient sums to 0 (softmax) and has the sign of dLoss/dSeq at the label
          expect(Math.abs(row.reduce((s, g) => s + g, 0))).toBeLessThan(1e-6);
          const b = Math.floor(i / 6);
          const dseq = b < 2 ? got.gradPolicyChosen.data[b] : got.gradPolicyRejected.data[b - 2];
          expect(Math.sign(row[lab[i]])).toBe(Math.sign(dseq));
        }
      }
      expect(got.gradPolicyChosen.data.every((g) => g < 0)).toBe(true);
      expect(got.gradPolicyRejected.data.every((g) => g > 0)).toBe(true);
    });

    it('large vocabulary and threads: 2B = 4, T = 8, V = 32000', () => {
      const inp = fusedInputs('dpo', 2, 8, 32000, 9);
      const want = composition('dpo', inp, { type: 'dpo', beta: 0.1 }, backend);
      const got = rk.fusedPreferenceLoss(inp, { type: 'dpo', beta: 0.1, backend });
      compareFused('dpo', got, want, inp, {}, 'V=32000', true);
    });
  });
}

describe('fusedPreferenceLoss: errors', () => {
  const inp = fusedInputs('dpo', 2, 3, 5, 1);
  for (const backend of ['js', ...nativeBackends()] as const) {
    it(`[${backend}] documented errors`, () => {
      const F = (i: any, o: any) => () => rk.fusedPreferenceLoss(i, { backend, ...o });
      const d = { type: 'dpo', beta: 0.1 };
      expect(F(inp, d)).not.toThrow();
      expect(F({ ...inp, logits: f32(new Array(3 * 3 * 5).fill(0), [3, 3, 5]) }, d)).toThrow(/even/);
      expect(F({ ...inp, logits: f32(new Array(20).fill(0), [4, 5]) }, d)).toThrow(/rank 3/);
      expect(F({ ...inp, labels: rk.tensor(new Int32Array(8), [4, 2]) }, d)).toThrow(RangeError);
      expect(F({ ...inp, labels: f32(new Array(12).fill(0), [4, 3]) }, d)).toThrow(TypeError);
      const bad = Int32Array.from(inp.labels.data);
      const k = Array.from(inp.mask.data).findIndex((m, i) => m && bad[i] !== -100);
      bad[k] = 5;
      expect(F({ ...inp, labels: rk.tensor(bad, [4, 3]) }, d)).toThrow(/labels/);
      bad[k] = -2;
      expect(F({ ...inp, labels: rk.tensor(bad, [4, 3]) }, d)).toThrow(RangeError);
      const bad2 = Int32Array.from(bad, (y) => (y === -100 ? 0 : y));
      expect(F({ ...inp, labels: rk.tensor(bad2, [4, 3]) }, { ...d, ignoreIndex: -2 })).not.toThrow();
      expect(F({ ...inp, mask: rk.tensor(new Int32Array(12), [4, 3]) }, d)).toThrow(TypeError);
      expect(F({ ...inp, refLogp: undefined }, d)).toThrow(TypeError);
      expect(F({ ...inp, refLogp: f32([1, 2], [2]) }, d)).toThrow(RangeError);
      expect(F(inp, { ...d, temperature: 0 })).toThrow(RangeError);
      expect(F(inp, { ...d, ignoreIndex: 0.5 })).toThrow(RangeError);
      expect(F(inp, { ...d, beta: 0 })).toThrow(RangeError);
      expect(F(inp, { type: 'xpo', beta: 0.1 })).toThrow(TypeError);
      expect(F(inp, { type: 'dno', beta: 0.1 })).toThrow(TypeError);
      expect(F({ ...inp, preferenceProb: f32([0.5, 2], [2]) }, { type: 'dno', beta: 0.1 })).toThrow(RangeError);
      expect(F(inp, { type: 'inpo', beta: 0.1, tau: 0.1, eta: 0.5 })).toThrow(TypeError);
      expect(F(inp, { ...d, out: { gradLogits: rk.zeros([4, 3, 4], 'f32') } })).toThrow(RangeError);
      expect(F(inp, { ...d, out: { gradLogits: rk.zeros([4, 3, 5], 'f64') } })).toThrow(TypeError);
      // reference-free types need no refLogp
      expect(F({ ...inp, refLogp: undefined }, { type: 'simpo', beta: 2 })).not.toThrow();
    });
  }

  it('fuzzed arguments never crash the process', () => {
    const r = rng(97);
    const junk = [undefined, null, 0, -1, NaN, 'dpo', {}, [], new Float32Array(3), f32([1, 2], [2]), rk.tensor(new Int32Array(12), [4, 3]),
      f32(new Array(60).fill(0), [4, 3, 5]), rk.tensor(new Uint8Array(12), [4, 3])];
    const pick = () => junk[r.int(0, junk.length - 1)];
    for (let i = 0; i < 300; i++) {
      const x: any = {};
      for (const k of ['logits', 'labels', 'mask', 'refLogp', 'prevLogp', 'policyExplore', 'preferenceProb']) x[k] = r.next() < 0.6 ? inp[k] : pick();
      const o: any = { type: r.next() < 0.7 ? TYPES[r.int(0, TYPES.length - 1)] : pick(), beta: r.next() < 0.7 ? 0.1 : pick(),
        temperature: r.next() < 0.7 ? undefined : pick(), ignoreIndex: r.next() < 0.7 ? undefined : pick(), eta: 0.5, tau: 0.1, epsilon: 0.1 };
      try { rk.fusedPreferenceLoss(x, o); } catch (e) { expect(e).toBeInstanceOf(Error); }
    }
    if (native) for (let i = 0; i < 300; i++) {
      const args = Array.from({ length: r.int(0, 32) }, pick);
      try { (native as any).fusedPreferenceLoss(...args); } catch (e) { expect(e).toBeInstanceOf(Error); }
    }
  });
});
