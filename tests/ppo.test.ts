/** PPO family (SPEC §5) and P3O: native vs the float64 reference, hand cases, gradients, micro-batches, errors. */
import { describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { native } from '../ts/native.js';
import { atEverySimdLevel, expectClose, f32, nativeBackends, poisoned, rng, SHAPES_2D } from './helpers.js';

const AGGS = ['token-mean', 'seq-mean-token-sum', 'seq-mean-token-mean'] as const;
const ESTIMATORS = ['k1', 'k2', 'k3', 'abs'] as const;
type Agg = (typeof AGGS)[number];
const ALL_BACKENDS = ['js', ...nativeBackends()] as const;

function policyInputs(B: number, T: number, seed: number, maskKind: 'u8' | 'f32' = 'u8') {
  const r = rng(seed);
  const n = B * T;
  const logp = r.f32(n, 0.5, -1.5);
  // old within ±0.6 of logp so that ρ spans both sides of the clip range
  const old = Float32Array.from(logp, (l) => l + 0.6 * (2 * r.next() - 1));
  return {
    logp: rk.tensor(logp, [B, T]),
    oldLogp: rk.tensor(old, [B, T]),
    advantages: rk.tensor(r.f32(n, 1), [B, T]),
    refLogp: rk.tensor(Float32Array.from(logp, (l) => l + 0.5 * r.normal()), [B, T]),
    mask: rk.tensor(r.mask(B, T, maskKind), [B, T], maskKind),
  };
}

function valueInputs(B: number, T: number, seed: number, maskKind: 'u8' | 'f32' = 'u8') {
  const r = rng(seed);
  const n = B * T;
  const oldValues = r.f32(n, 1);
  return {
    values: rk.tensor(Float32Array.from(oldValues, (v) => v + 0.5 * r.normal()), [B, T]),
    oldValues: rk.tensor(oldValues, [B, T]),
    returns: rk.tensor(r.f32(n, 1), [B, T]),
    mask: rk.tensor(r.mask(B, T, maskKind), [B, T], maskKind),
  };
}

/** Per-row aggregation weights computed independently of the implementation. */
function weights(mask: ArrayLike<number>, B: number, T: number, agg: Agg, normalizer?: number): number[] {
  const n = Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => (mask[b * T + t] ? 1 : 0) as number).reduce((x, y) => x + y, 0));
  const N = n.reduce((x, y) => x + y, 0), S = n.filter((c) => c > 0).length;
  return n.map((c) => {
    if (agg === 'token-mean') { const d = normalizer ?? N; return d > 0 ? 1 / d : 0; }
    const d = normalizer ?? S;
    if (!(d > 0) || c === 0) return 0;
    return agg === 'seq-mean-token-sum' ? 1 / d : 1 / (d * c);
  });
}

/** SPEC scales for ppoPolicyLoss: per-token |term| with first-order propagation through exp. */
function policyScale(x: ReturnType<typeof policyInputs>, B: number, T: number, o: { aggregation?: Agg; normalizer?: number; klCoef?: number; klEstimator?: string; clipHigh?: number; dualClip?: number }) {
  const w = weights(x.mask.data, B, T, o.aggregation ?? 'token-mean', o.normalizer);
  const lp = x.logp.data, op = x.oldLogp.data, ad = x.advantages.data, rp = x.refLogp.data;
  const grad = new Float64Array(B * T);
  let loss = 0;
  for (let i = 0; i < B * T; i++) {
    if (!x.mask.data[i]) continue;
    const rho = Math.exp(lp[i] - op[i]);
    let s = Math.abs(ad[i]) * Math.max(rho, 1 + (o.clipHigh ?? 0.2), o.dualClip ?? 0) * (2 + Math.abs(lp[i]) + Math.abs(op[i]));
    if (o.klCoef) {
      const d = lp[i] - rp[i], a = Math.abs(lp[i]) + Math.abs(rp[i]);
      s += o.klCoef * (o.klEstimator === 'k3' ? (Math.exp(-d) + 1) * (a + 1) + Math.abs(d) : (Math.abs(d) + 1) * (a + 1));
    }
    const wi = w[Math.floor(i / T)];
    grad[i] = wi * s;
    loss += wi * s;
  }
  return { grad, loss };
}

const ppo = (x: ReturnType<typeof policyInputs>, o: rk.PpoPolicyLossOptions) => rk.ppoPolicyLoss(x, o);

/** Counted tokens whose ratio ρ = e^{logp − oldLogp} is within 1e-6 (relative) of a clip boundary. */
function ambiguousTokens(x: ReturnType<typeof policyInputs>, o: rk.PpoPolicyLossOptions): number[] {
  const lo = 1 - (o.clipLow ?? 0.2), hi = 1 + (o.clipHigh ?? o.clipLow ?? 0.2);
  const bounds = [lo, hi, ...(o.dualClip ? [o.dualClip] : [])];
  const out: number[] = [];
  for (let i = 0; i < x.logp.data.length; i++) {
    if (!x.mask.data[i]) continue;
    const rho = Math.exp(x.logp.data[i] - x.oldLogp.data[i]);
    if (bounds.some((b) => Math.abs(rho - b) <= 1e-6 * b)) out.push(i);
  }
  return out;
}

for (const backend of nativeBackends()) {
  describe(`ppo [${backend}] vs js reference`, () => {
    const OPTS: rk.PpoPolicyLossOptions[] = [
      {},
      { clipLow: 0.1875, clipHigh: 0.28, dualClip: 3 },
      { klCoef: 0.1, klEstimator: 'k3', normalizer: 1000 },
      { clipLow: 0.2, dualClip: 1.5, klCoef: 0.05, klEstimator: 'k2' },
      { klCoef: 0.2, klEstimator: 'k1' },
      { klCoef: 0.2, klEstimator: 'abs', normalizer: 3 },
    ];
    it('ppoPolicyLoss: every aggregation, clip/dual/KL options, mask kinds, many shapes, every SIMD level', () => {
      atEverySimdLevel((level) => {
        for (const [si, [B, T]] of SHAPES_2D.entries()) {
          for (const maskKind of ['u8', 'f32'] as const) {
            const x = policyInputs(B, T, 100 + si, maskKind);
            for (const aggregation of AGGS) {
              for (const [oi, o0] of OPTS.entries()) {
                if (level !== 'avx512' && oi % 2 === 1 && maskKind === 'f32') continue; // keep the runtime down
                const o = { ...o0, aggregation };
                const want = ppo(x, { ...o, backend: 'js' });
                const out = { gradLogp: poisoned([B, T]) };
                const got = ppo(x, { ...o, backend, out });
                expect(got.gradLogp).toBe(out.gradLogp);
                const S = policyScale(x, B, T, o);
                const what = `ppo ${level} ${B}x${T} ${maskKind} ${aggregation} opts#${oi}`;
                expectClose([got.loss], [want.loss], `${what} loss`, { scale: S.loss });
                // Tokens whose ρ lies within rounding of a clip boundary may fall on either side in
                // f32 (the gradient jumps there): their gradient and clip count are not compared.
                const amb = ambiguousTokens(x, o);
                const g = Float64Array.from(got.gradLogp.data), wg = Float64Array.from(want.gradLogp.data);
                for (const i of amb) g[i] = wg[i];
                expectClose(g, wg, `${what} grad`, { scale: S.grad });
                const nTok = Array.from(x.mask.data).filter((m) => m !== 0).length;
                expect(Math.abs(got.clipFraction - want.clipFraction), `${what} clipFraction`).toBeLessThanOrEqual((amb.length + 0.5) / Math.max(nTok, 1) + 5e-6);
                expectClose([got.approxKl], [want.approxKl], `${what} approxKl`, { scale: 2 * want.approxKl + 1 });
              }
            }
          }
        }
      });
    });

    it('valueLoss: every aggregation, clip values, many shapes, every SIMD level', () => {
      atEverySimdLevel((level) => {
        for (const [si, [B, T]] of SHAPES_2D.entries()) {
          for (const maskKind of ['u8', 'f32'] as const) {
            const x = valueInputs(B, T, 300 + si, maskKind);
            for (const aggregation of AGGS) {
              for (const o0 of [{}, { clip: 0.5, normalizer: 17 }, { clip: 0 }, { clip: Infinity }]) {
                const o = { ...o0, aggregation };
                const want = rk.valueLoss(x, { ...o, backend: 'js' });
                const got = rk.valueLoss(x, { ...o, backend, out: { gradValues: poisoned([B, T]) } });
                const w = weights(x.mask.data, B, T, aggregation, (o as any).normalizer);
                const v = x.values.data, vo = x.oldValues.data, R = x.returns.data;
                const gS = Float64Array.from(v, (_, i) => w[Math.floor(i / T)] * (Math.abs(v[i]) + Math.abs(vo[i]) + Math.abs(R[i]) + 1));
                const lS = Array.from(gS).reduce((s, g, i) => s + g * (Math.abs(v[i]) + Math.abs(vo[i]) + Math.abs(R[i]) + 1), 0);
                const what = `value ${level} ${B}x${T} ${maskKind} ${aggregation} ${JSON.stringify(o0)}`;
                expectClose([got.loss], [want.loss], `${what} loss`, { scale: lS });
                expectClose(got.gradValues.data, want.gradValues.data, `${what} grad`, { scale: gS });
                expect(got.clipFraction, what).toBeCloseTo(want.clipFraction, 5);
              }
            }
          }
        }
      });
    });

    it('p3oLoss: both variants, many sizes', () => {
      for (const B of [1, 2, 7, 33, 1000]) {
        const r = rng(B);
        const l1 = r.f32(B, 3, -20), l2 = r.f32(B, 3, -20);
        const x = {
          logp1: f32(l1, [B]), logp2: f32(l2, [B]),
          oldLogp1: f32(Float32Array.from(l1, (v) => v + 0.4 * r.normal()), [B]),
          oldLogp2: f32(Float32Array.from(l2, (v) => v + 0.4 * r.normal()), [B]),
          rewards1: f32(r.f32(B, 1), [B]), rewards2: f32(r.f32(B, 1), [B]),
        };
        for (const variant of ['separate', 'joint'] as const) {
          for (const o of [{}, { clip: 0.1, clipHigh: 0.3, normalizer: 64 }]) {
            const want = rk.p3oLoss(x, { ...o, variant, backend: 'js' });
            const got = rk.p3oLoss(x, { ...o, variant, backend, out: { gradLogp1: poisoned([B]), gradLogp2: poisoned([B]) } });
            const gS = Array.from({ length: B }, (_, b) =>
              (3 * Math.abs(x.rewards1.data[b] - x.rewards2.data[b]) * (2 + Math.abs(l1[b]) + Math.abs(l2[b]) + 40)) / B);
            expectClose([got.loss], [want.loss], `p3o ${variant} B=${B} loss`, { scale: gS.reduce((a, b) => a + b, 0) });
            expectClose(got.gradLogp1.data, want.gradLogp1.data, `p3o ${variant} B=${B} g1`, { scale: gS });
            expectClose(got.gradLogp2.data, want.gradLogp2.data, `p3o ${variant} B=${B} g2`, { scale: gS });
            expect(got.clipFraction).toBeCloseTo(want.clipFraction, 6);
          }
        }
      }
    });

    it('f64 inputs are rounded to f32 once and give the f32 results', () => {
      const x = policyInputs(4, 9, 7);
      const x64 = { ...x, logp: rk.tensor(Float64Array.from(x.logp.data), [4, 9]) };
      const a = ppo(x64, { backend, klCoef: 0.1 });
      const b = ppo(x, { backend, klCoef: 0.1 });
      expect(a.loss).toBe(b.loss);
      expect(Array.from(a.gradLogp.data)).toEqual(Array.from(b.gradLogp.data));
    });

    it('deterministic: repeated calls and different thread counts give bitwise-identical results', () => {
      const x = policyInputs(64, 1031, 5);
      const o = { klCoef: 0.1, dualClip: 3, aggregation: 'seq-mean-token-mean' as const, backend };
      const a = ppo(x, o), b = ppo(x, o);
      const threads = rk.backends().threads;
      rk.setThreads(1);
      let c: rk.PpoPolicyLossResult;
      try { c = ppo(x, o); } finally { rk.setThreads(threads); }
      for (const r of [b, c]) {
        expect(r.loss).toBe(a.loss);
        expect(r.clipFraction).toBe(a.clipFraction);
        expect(r.approxKl).toBe(a.approxKl);
        expect(Array.from(r.gradLogp.data)).toEqual(Array.from(a.gradLogp.data));
      }
    });
  });
}

describe('ppo: hand-computed cases (every backend)', () => {
  // ρ = [1.5, 0.5, 0.5, 1.1, 5, 5], A = [1, 1, -1, -2, -1, 1], clip 0.2, dualClip 3:
  //   t0 A>0, ρ>1.2: clipped -1.2 (grad 0)     t1 A>0, ρ<0.8: unclipped -0.5 (grad -0.5)
  //   t2 A<0, ρ<0.8: clipped 0.8 (grad 0)      t3 inside: unclipped 2.2 (grad 2.2)
  //   t4 A<0, ρ=5: max(5, 1.2) = 5, dual-clipped to 3 (grad 0, not in clipFraction)
  //   t5 A>0, ρ=5: clipped -1.2 (grad 0; dual-clip only acts on A<0)
  const rho = [1.5, 0.5, 0.5, 1.1, 5, 5];
  const logp = f32(rho.map(Math.log), [1, 6]);
  const oldLogp = f32([0, 0, 0, 0, 0, 0], [1, 6]);
  const advantages = f32([1, 1, -1, -2, -1, 1], [1, 6]);
  const mask = rk.tensor(Uint8Array.from([1, 1, 1, 1, 1, 1]), [1, 6]);
  const lp = Array.from(logp.data);
  for (const backend of ALL_BACKENDS) {
    it(`[${backend}] ppoPolicyLoss: clipped, unclipped and dual-clipped tokens, both signs of A`, () => {
      const r = rk.ppoPolicyLoss({ logp, oldLogp, advantages, mask }, { dualClip: 3, backend });
      expectClose([r.loss], [(-1.2 - 0.5 + 0.8 + 2.2 + 3 - 1.2) / 6], 'loss', { scale: 10 });
      expectClose(r.gradLogp.data, [0, -0.5 / 6, 0, 2.2 / 6, 0, 0], 'grad', { scale: 1 });
      expect(r.clipFraction).toBeCloseTo(3 / 6, 12);
      expectClose([r.approxKl], [lp.reduce((s, d) => s + 0.5 * d * d, 0) / 6], 'approxKl');
      // without dual-clip t4 keeps 5 with gradient −Aρ = 5
      const nd = rk.ppoPolicyLoss({ logp, oldLogp, advantages, mask }, { backend });
      expectClose([nd.loss], [(-1.2 - 0.5 + 0.8 + 2.2 + 5 - 1.2) / 6], 'loss (no dual)', { scale: 10 });
      expectClose(nd.gradLogp.data, [0, -0.5 / 6, 0, 2.2 / 6, 5 / 6, 0], 'grad (no dual)', { scale: 1 });
      // asymmetric clip: clipHigh 0.6 puts t0 (ρ = 1.5) inside the range, clipLow 0.6 puts t1, t2 inside
      const as = rk.ppoPolicyLoss({ logp, oldLogp, advantages, mask }, { clipLow: 0.6, clipHigh: 0.6, backend });
      expectClose(as.gradLogp.data, [-1.5 / 6, -0.5 / 6, 0.5 / 6, 2.2 / 6, 5 / 6, 0], 'grad (wide clip)', { scale: 1 });
      expect(as.clipFraction).toBeCloseTo(1 / 6, 12);
      const hi = rk.ppoPolicyLoss({ logp, oldLogp, advantages, mask }, { clipLow: 0.2, clipHigh: 0.6, backend });
      expectClose(hi.gradLogp.data, [-1.5 / 6, -0.5 / 6, 0, 2.2 / 6, 5 / 6, 0], 'grad (clip-higher)', { scale: 1 });
    });

    it(`[${backend}] ppoPolicyLoss: aggregation normalisers and the in-loss KL term`, () => {
      const lp2 = f32([Math.log(1.1), 0, Math.log(0.9), 0, Math.log(1.05), 0], [2, 3]);
      const old2 = f32([0, 0, 0, 0, 0, 0], [2, 3]);
      const adv2 = f32([1, 2, 3, -1, -2, -3], [2, 3]);
      const m2 = rk.tensor(Uint8Array.from([1, 1, 1, 0, 1, 0]), [2, 3]);
      const ell = [-1.1, -2, -2.7, NaN, 2.1, NaN]; // all inside the clip range: ℓ = −Aρ
      const dl = ell; // ∂ℓ/∂logp = −Aρ = ℓ
      const x = { logp: lp2, oldLogp: old2, advantages: adv2, mask: m2 };
      const tm = rk.ppoPolicyLoss(x, { backend });
      expectClose([tm.loss], [(-1.1 - 2 - 2.7 + 2.1) / 4], 'token-mean', { scale: 10 });
      expectClose(tm.gradLogp.data, [dl[0] / 4, dl[1] / 4, dl[2] / 4, 0, dl[4] / 4, 0], 'token-mean grad', { scale: 3 });
      const ss = rk.ppoPolicyLoss(x, { aggregation: 'seq-mean-token-sum', backend });
      expectClose([ss.loss], [(-1.1 - 2 - 2.7 + 2.1) / 2], 'seq-mean-token-sum', { scale: 10 });
      const sm = rk.ppoPolicyLoss(x, { aggregation: 'seq-mean-token-mean', backend });
      expectClose([sm.loss], [((-1.1 - 2 - 2.7) / 3 + 2.1) / 2], 'seq-mean-token-mean', { scale: 10 });
      expectClose(sm.gradLogp.data, [dl[0] / 6, dl[1] / 6, dl[2] / 6, 0, dl[4] / 2, 0], 'seq-mean-token-mean grad', { scale: 3 });
      const nz = rk.ppoPolicyLoss(x, { aggregation: 'seq-mean-token-mean', normalizer: 8, backend });
      expectClose([nz.loss], [((-1.1 - 2 - 2.7) / 3 + 2.1) / 8], 'seq-mean-token-mean normalizer', { scale: 10 });
      // KL: + klCoef·k(logp − ref), gradient klCoef·k'(d)
      const refLogp = f32([-0.5, 0.25, 0, 0, 0.5, 0], [2, 3]);
      for (const est of ESTIMATORS) {
        const r = rk.ppoPolicyLoss({ ...x, refLogp }, { klCoef: 0.5, klEstimator: est, backend });
        const d = [0, 1, 2, 4].map((i) => lp2.data[i] - refLogp.data[i]);
        const k = d.map((v) => (est === 'k1' ? v : est === 'k2' ? v * v / 2 : est === 'k3' ? Math.exp(-v) - 1 + v : Math.abs(v)));
        const kg = d.map((v) => (est === 'k1' ? 1 : est === 'k2' ? v : est === 'k3' ? 1 - Math.exp(-v) : Math.sign(v)));
        expectClose([r.loss], [(-1.1 - 2 - 2.7 + 2.1 + 0.5 * k.reduce((a, b) => a + b, 0)) / 4], `kl ${est}`, { scale: 10 });
        const g = [0, 1, 2, 4].map((i, j) => (dl[i] + 0.5 * kg[j]) / 4);
        expectClose(r.gradLogp.data, [g[0], g[1], g[2], 0, g[3], 0], `kl ${est} grad`, { scale: 3 });
      }
      // klCoef 0 never reads refLogp (NaN there changes nothing)
      const nanRef = f32([NaN, NaN, NaN, NaN, NaN, NaN], [2, 3]);
      expect(rk.ppoPolicyLoss({ ...x, refLogp: nanRef }, { backend }).loss).toBe(tm.loss);
    });

    it(`[${backend}] nothing counted: loss 0, gradient 0, statistics 0 (with and without normalizer)`, () => {
      const x = policyInputs(3, 5, 1);
      const zero = rk.tensor(new Uint8Array(15), [3, 5]);
      for (const aggregation of AGGS) {
        for (const normalizer of [undefined, 10]) {
          const r = rk.ppoPolicyLoss({ ...x, mask: zero }, { aggregation, normalizer, klCoef: 0.1, backend, out: { gradLogp: poisoned([3, 5]) } });
          expect([r.loss, r.clipFraction, r.approxKl]).toEqual([0, 0, 0]);
          expect(Array.from(r.gradLogp.data)).toEqual(new Array(15).fill(0));
          const v = rk.valueLoss({ ...valueInputs(3, 5, 2), mask: zero }, { aggregation, normalizer, backend });
          expect([v.loss, v.clipFraction]).toEqual([0, 0]);
          expect(Array.from(v.gradValues.data)).toEqual(new Array(15).fill(0));
        }
      }
      // empty inputs
      const e = f32([], [0, 4]);
      const r = rk.ppoPolicyLoss({ logp: e, oldLogp: e, advantages: e, mask: rk.tensor(new Uint8Array(0), [0, 4]) }, { backend });
      expect([r.loss, r.clipFraction, r.approxKl]).toEqual([0, 0, 0]);
      const p = rk.p3oLoss({ logp1: f32([], [0]), logp2: f32([], [0]), oldLogp1: f32([], [0]), oldLogp2: f32([], [0]), rewards1: f32([], [0]), rewards2: f32([], [0]) }, { backend });
      expect([p.loss, p.clipFraction]).toEqual([0, 0]);
    });

    it(`[${backend}] clipFraction and approxKl definitions (random inputs, computed here)`, () => {
      const [B, T] = [7, 33];
      const x = policyInputs(B, T, 42);
      for (const o of [{ clipLow: 0.2 }, { clipLow: 0.1, clipHigh: 0.3, dualClip: 2 }]) {
        const r = rk.ppoPolicyLoss(x, { ...o, normalizer: 1e4, backend });
        const lo = 1 - o.clipLow, hi = 1 + ((o as any).clipHigh ?? o.clipLow);
        let n = 0, c = 0, k = 0;
        for (let i = 0; i < B * T; i++) {
          if (!x.mask.data[i]) continue;
          n++;
          const d = x.logp.data[i] - x.oldLogp.data[i], rho = Math.exp(d), A = x.advantages.data[i];
          if (-A * Math.min(Math.max(rho, lo), hi) > -A * rho) c++;
          k += 0.5 * d * d;
        }
        expect(c).toBeGreaterThan(0);
        expect(r.clipFraction).toBeCloseTo(c / n, 12);
        expectClose([r.approxKl], [k / n], 'approxKl', { scale: 2 * k / n });
      }
    });

    it(`[${backend}] NaN at masked positions is never read; NaN in a counted input propagates to that token only`, () => {
      const x = policyInputs(2, 4, 3);
      const m = rk.tensor(Uint8Array.from([1, 0, 1, 1, 1, 1, 0, 1]), [2, 4]);
      const base = rk.ppoPolicyLoss({ ...x, mask: m }, { klCoef: 0.1, backend });
      const bad = (t: rk.Tensor, i: number, v: number) => { const d = Float32Array.from(t.data); d[i] = v; return rk.tensor(d, [2, 4]); };
      for (const name of ['logp', 'oldLogp', 'advantages', 'refLogp'] as const) {
        const r = rk.ppoPolicyLoss({ ...x, mask: m, [name]: bad(x[name], 1, NaN) }, { klCoef: 0.1, backend });
        expect(r.loss).toBe(base.loss);
        expect(Array.from(r.gradLogp.data)).toEqual(Array.from(base.gradLogp.data));
        const s = rk.ppoPolicyLoss({ ...x, mask: m, [name]: bad(x[name], 2, NaN) }, { klCoef: 0.1, backend });
        expect(Number.isNaN(s.loss)).toBe(true);
        expect(Number.isNaN(s.gradLogp.data[2])).toBe(true);
        for (const i of [0, 3, 4, 5, 7]) expect(s.gradLogp.data[i]).toBe(base.gradLogp.data[i]);
      }
      const v = valueInputs(2, 4, 4);
      const vb = rk.valueLoss({ ...v, mask: m }, { aggregation: 'token-mean', backend });
      const vm = rk.valueLoss({ ...v, mask: m, returns: bad(v.returns, 6, Infinity) }, { aggregation: 'token-mean', backend });
      expect(vm.loss).toBe(vb.loss);
    });

    it(`[${backend}] valueLoss: hand-computed clipped and unclipped tokens`, () => {
      // c = 0.5: t0 V=2, Vold=0 → Vc=0.5, R=0: (V−R)² = 4 > 0.25: unclipped, grad V−R = 2
      //          t1 V=2, Vold=0, R=3: (V−R)² = 1 < (0.5−3)² = 6.25: clipped, loss 3.125, grad 0
      //          t2 V=0.25, Vold=0 (inside), R=1: 0.5·0.5625, grad −0.75
      const values = f32([2, 2, 0.25], [1, 3]), oldValues = f32([0, 0, 0], [1, 3]), returns = f32([0, 3, 1], [1, 3]);
      const mask = rk.tensor(Uint8Array.from([1, 1, 1]), [1, 3]);
      const r = rk.valueLoss({ values, oldValues, returns, mask }, { clip: 0.5, aggregation: 'token-mean', backend });
      expectClose([r.loss], [(2 + 3.125 + 0.28125) / 3], 'value loss', { scale: 10 });
      expectClose(r.gradValues.data, [2 / 3, 0, -0.75 / 3], 'value grad', { scale: 2 });
      expect(r.clipFraction).toBeCloseTo(1 / 3, 12);
      const inf = rk.valueLoss({ values, oldValues, returns, mask }, { clip: Infinity, aggregation: 'seq-mean-token-sum', backend });
      expectClose([inf.loss], [2 + 0.5 + 0.28125], 'value loss (no clip)', { scale: 10 });
      expect(inf.clipFraction).toBe(0);
    });

    it(`[${backend}] p3oLoss: hand-computed V1 and V2`, () => {
      // pair 0: r1 − r2 = 2 → A = 1; ρ1 = 1.5, ρ2 = 0.9. pair 1: A = −0.5; ρ1 = 1.1, ρ2 = 1.
      const x = {
        logp1: f32([Math.log(1.5), Math.log(1.1)], [2]), oldLogp1: f32([0, 0], [2]),
        logp2: f32([Math.log(0.9), 0], [2]), oldLogp2: f32([0, 0], [2]),
        rewards1: f32([2, 0], [2]), rewards2: f32([0, 1], [2]),
      };
      // V1: pair 0: max(−1.5, −1.2) = −1.2 (clipped) + max(0.9, 0.9) = 0.9 (grad2 = Aρ2 = 0.9)
      //     pair 1: max(0.55, 0.55) = 0.55 (grad1 = −Aρ1 = 0.55) + max(−0.5, −0.5) = −0.5 (grad2 = −0.5)
      const v1 = rk.p3oLoss(x, { variant: 'separate', backend });
      expectClose([v1.loss], [(-1.2 + 0.9 + 0.55 - 0.5) / 2], 'V1 loss', { scale: 5 });
      expectClose(v1.gradLogp1.data, [0, 0.55 / 2], 'V1 g1', { scale: 1 });
      expectClose(v1.gradLogp2.data, [0.9 / 2, -0.5 / 2], 'V1 g2', { scale: 1 });
      expect(v1.clipFraction).toBeCloseTo(1 / 4, 12);
      // V2: pair 0: ρ = 1.5/0.9 = 1.667 → clipped, −1.2, grads 0. pair 1: ρ = 1.1, A = −0.5: 0.55, g1 = 0.55, g2 = −0.55
      const v2 = rk.p3oLoss(x, { variant: 'joint', backend });
      expectClose([v2.loss], [(-1.2 + 0.55) / 2], 'V2 loss', { scale: 5 });
      expectClose(v2.gradLogp1.data, [0, 0.55 / 2], 'V2 g1', { scale: 1 });
      expectClose(v2.gradLogp2.data, [0, -0.55 / 2], 'V2 g2', { scale: 1 });
      expect(v2.clipFraction).toBeCloseTo(1 / 2, 12);
      // at ρ = 1 both variants are the pairwise policy gradient A·(∇logπ(y1) − ∇logπ(y2))
      const at1 = { ...x, logp1: f32([0, 0], [2]), logp2: f32([0, 0], [2]) };
      for (const variant of ['separate', 'joint'] as const) {
        const r = rk.p3oLoss(at1, { variant, backend });
        expectClose(r.gradLogp1.data, [-1 / 2, 0.5 / 2], `${variant} PPG g1`);
        expectClose(r.gradLogp2.data, [1 / 2, -0.5 / 2], `${variant} PPG g2`);
      }
    });
  }
});

describe('ppo: gradients vs central finite differences (float64, js reference)', () => {
  const h = 1e-6;
  const fd = (f: (v: Float64Array) => number, x: Float64Array, i: number) => {
    const p = Float64Array.from(x), m = Float64Array.from(x);
    p[i] += h; m[i] -= h;
    return (f(p) - f(m)) / (2 * h);
  };
  it('ppoPolicyLoss, every aggregation, dual-clip and KL estimator', () => {
    const [B, T] = [3, 7];
    const r = rng(11);
    const old = Float64Array.from({ length: B * T }, () => r.normal() - 1);
    // ρ values kept ≥ 0.02 away from the kinks 0.8, 1.2 and the dual-clip point 3
    const rhos = [0.5, 0.7, 0.9, 1.0, 1.1, 1.3, 1.6, 2.5, 3.5, 5];
    const lp = Float64Array.from(old, (o, i) => o + Math.log(rhos[i % rhos.length]));
    const adv = Float64Array.from({ length: B * T }, (_, i) => (i % 3 === 0 ? -1 : 1) * (0.3 + r.next()));
    const refLogp = Float64Array.from(lp, (l, i) => l + (i % 2 ? 0.3 : -0.4)); // d ≠ 0 (abs kink)
    const mask = Uint8Array.from({ length: B * T }, (_, i) => (i % 5 === 3 ? 0 : 1));
    const t = (d: Float64Array) => rk.tensor(d, [B, T]);
    for (const aggregation of AGGS) {
      for (const est of ESTIMATORS) {
        for (const dualClip of [undefined, 3]) {
          const o = { aggregation, klCoef: 0.3, klEstimator: est, dualClip, backend: 'js' as const };
          const f = (v: Float64Array) => rk.ppoPolicyLoss({ logp: t(v), oldLogp: t(old), advantages: t(adv), refLogp: t(refLogp), mask: rk.tensor(mask, [B, T]) }, o).loss;
          const g = rk.ppoPolicyLoss({ logp: t(lp), oldLogp: t(old), advantages: t(adv), refLogp: t(refLogp), mask: rk.tensor(mask, [B, T]) }, o).gradLogp.data;
          for (let i = 0; i < B * T; i++) {
            const want = fd(f, lp, i);
            expect(Math.abs(g[i] - want), `${aggregation} ${est} dual=${dualClip} [${i}] ${g[i]} vs ${want}`).toBeLessThan(1e-6 + 1e-5 * Math.abs(want));
          }
        }
      }
    }
  });
  it('valueLoss and p3oLoss', () => {
    const [B, T] = [2, 6];
    const vo = Float64Array.from([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
    const v = Float64Array.from([0.3, 0.7, -0.9, 0.1, 2, -2, 1.1, 0.2, 1.6, 0.95, 3, 1]);
    const R = Float64Array.from([1, 0, -0.2, 0.3, 5, 0, -1, 2, 0, 0.5, 2, 4]);
    const mask = rk.tensor(Uint8Array.from([1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 0]), [B, T]);
    const t = (d: Float64Array) => rk.tensor(d, [B, T]);
    for (const aggregation of AGGS) {
      const f = (x: Float64Array) => rk.valueLoss({ values: t(x), oldValues: t(vo), returns: t(R), mask }, { clip: 0.5, aggregation, backend: 'js' }).loss;
      const g = rk.valueLoss({ values: t(v), oldValues: t(vo), returns: t(R), mask }, { clip: 0.5, aggregation, backend: 'js' }).gradValues.data;
      let nonzero = 0;
      for (let i = 0; i < B * T; i++) {
        const want = fd(f, v, i);
        if (Math.abs(want) > 1e-3) nonzero++;
        expect(Math.abs(g[i] - want), `value ${aggregation} [${i}]`).toBeLessThan(1e-6 + 1e-5 * Math.abs(want));
      }
      expect(nonzero).toBeGreaterThan(4);
    }
    const P = 6;
    const o1 = Float64Array.from({ length: P }, (_, i) => -10 - i), o2 = Float64Array.from({ length: P }, (_, i) => -12 + i);
    const rat = [0.5, 0.9, 1.1, 1.5, 1.05, 0.95];
    const l1 = Float64Array.from(o1, (o, i) => o + Math.log(rat[i])), l2 = Float64Array.from(o2, (o, i) => o + Math.log(rat[(i + 2) % P]));
    const r1 = Float64Array.from([1, -1, 0.5, 2, -0.3, 0]), r2 = Float64Array.from([0, 1, 2, -1, 0.4, 1]);
    const v1 = (a: Float64Array) => rk.tensor(a, [P]);
    for (const variant of ['separate', 'joint'] as const) {
      const run = (a: Float64Array, b: Float64Array) => rk.p3oLoss({ logp1: v1(a), logp2: v1(b), oldLogp1: v1(o1), oldLogp2: v1(o2), rewards1: v1(r1), rewards2: v1(r2) }, { variant, clip: 0.2, backend: 'js' });
      const res = run(l1, l2);
      for (let i = 0; i < P; i++) {
        const w1 = fd((x) => run(x, l2).loss, l1, i), w2 = fd((x) => run(l1, x).loss, l2, i);
        expect(Math.abs(res.gradLogp1.data[i] - w1), `p3o ${variant} g1[${i}]`).toBeLessThan(1e-6 + 1e-5 * Math.abs(w1));
        expect(Math.abs(res.gradLogp2.data[i] - w2), `p3o ${variant} g2[${i}]`).toBeLessThan(1e-6 + 1e-5 * Math.abs(w2));
      }
    }
  });
});

describe('ppo: micro-batches with the global normalizer add up to the whole batch', () => {
  const [B, T] = [12, 37];
  const x = policyInputs(B, T, 77);
  const xv = valueInputs(B, T, 78);
  const cuts = [0, 3, 4, 8, 12]; // includes a 1-row micro-batch
  const rows = (t: rk.Tensor, b0: number, b1: number) => rk.tensor((t.data as Float32Array).slice(b0 * T, b1 * T), [b1 - b0, T], t.dtype);
  const mrows = (t: rk.Tensor, b0: number, b1: number) => rk.tensor((t.data as Uint8Array).slice(b0 * T, b1 * T), [b1 - b0, T], t.dtype);
  let N = 0;
  const rowHas = new Array(B).fill(false);
  for (let i = 0; i < B * T; i++) if (x.mask.data[i]) { N++; rowHas[Math.floor(i / T)] = true; }
  const S = rowHas.filter(Boolean).length;
  for (const backend of ALL_BACKENDS) {
    it(`[${backend}] ppoPolicyLoss and valueLoss, every aggregation`, () => {
      for (const aggregation of AGGS) {
        const normalizer = aggregation === 'token-mean' ? N : S;
        const o = { aggregation, klCoef: 0.1, dualClip: 3, backend };
        const whole = rk.ppoPolicyLoss(x, o);
        const wholeN = rk.ppoPolicyLoss(x, { ...o, normalizer });
        expect(wholeN.loss).toBeCloseTo(whole.loss, 6); // the global normalizer is what the whole batch uses
        let loss = 0;
        const grad: number[] = [];
        for (let k = 0; k + 1 < cuts.length; k++) {
          const [b0, b1] = [cuts[k], cuts[k + 1]];
          const part = { logp: rows(x.logp, b0, b1), oldLogp: rows(x.oldLogp, b0, b1), advantages: rows(x.advantages, b0, b1), refLogp: rows(x.refLogp, b0, b1), mask: mrows(x.mask, b0, b1) };
          const r = rk.ppoPolicyLoss(part, { ...o, normalizer });
          loss += r.loss;
          grad.push(...r.gradLogp.data);
        }
        expectClose([loss], [whole.loss], `ppo ${aggregation} sum of micro-batch losses`, { scale: 10, tol: 1e-6 });
        expect(grad, `ppo ${aggregation} micro-batch gradients`).toEqual(Array.from(whole.gradLogp.data));
        // and without the normalizer, token-mean micro-batches do NOT add up (the bug it fixes)
        if (aggregation !== 'seq-mean-token-sum') {
          let naive = 0;
          for (let k = 0; k + 1 < cuts.length; k++) {
            const [b0, b1] = [cuts[k], cuts[k + 1]];
            naive += rk.ppoPolicyLoss({ logp: rows(x.logp, b0, b1), oldLogp: rows(x.oldLogp, b0, b1), advantages: rows(x.advantages, b0, b1), refLogp: rows(x.refLogp, b0, b1), mask: mrows(x.mask, b0, b1) }, o).loss;
          }
          expect(Math.abs(naive - whole.loss)).toBeGreaterThan(1e-3);
        }
        const vo = { aggregation, clip: 0.3, backend };
        const vw = rk.valueLoss(xv, vo);
        let vl = 0;
        const vg: number[] = [];
        let vN = 0;
        const vHas = new Array(B).fill(false);
        for (let i = 0; i < B * T; i++) if (xv.mask.data[i]) { vN++; vHas[Math.floor(i / T)] = true; }
        for (let k = 0; k + 1 < cuts.length; k++) {
          const [b0, b1] = [cuts[k], cuts[k + 1]];
          const r = rk.valueLoss({ values: rows(xv.values, b0, b1), oldValues: rows(xv.oldValues, b0, b1), returns: rows(xv.returns, b0, b1), mask: mrows(xv.mask, b0, b1) },
            { ...vo, normalizer: aggregation === 'token-mean' ? vN : vHas.filter(Boolean).length });
          vl += r.loss;
          vg.push(...r.gradValues.data);
        }
        expectClose([vl], [vw.loss], `value ${aggregation} micro-batch losses`, { scale: 10, tol: 1e-6 });
        expect(vg).toEqual(Array.from(vw.gradValues.data));
      }
    });
    it(`[${backend}] p3oLoss`, () => {
      const P = 10, r = rng(5);
      const v = (n: number) => f32(r.f32(n, 0.3), [n]);
      const x = { logp1: v(P), logp2: v(P), oldLogp1: v(P), oldLogp2: v(P), rewards1: v(P), rewards2: v(P) };
      const sl = (t: rk.Tensor, a: number, b: number) => f32((t.data as Float32Array).slice(a, b), [b - a]);
      for (const variant of ['separate', 'joint'] as const) {
        const whole = rk.p3oLoss(x, { variant, backend });
        let loss = 0;
        const g1: number[] = [];
        for (const [a, b] of [[0, 4], [4, 5], [5, 10]]) {
          const part = Object.fromEntries(Object.entries(x).map(([k, t]) => [k, sl(t, a, b)])) as any;
          const res = rk.p3oLoss(part, { variant, normalizer: P, backend });
          loss += res.loss;
          g1.push(...res.gradLogp1.data);
        }
        expectClose([loss], [whole.loss], `p3o ${variant}`, { scale: 10, tol: 1e-6 });
        expect(g1).toEqual(Array.from(whole.gradLogp1.data));
      }
    });
  }
});

describe('ppo: errors', () => {
  const x = policyInputs(2, 3, 1);
  const v = valueInputs(2, 3, 2);
  const p = { logp1: f32([1, 2], [2]), logp2: f32([1, 2], [2]), oldLogp1: f32([1, 2], [2]), oldLogp2: f32([1, 2], [2]), rewards1: f32([1, 2], [2]), rewards2: f32([1, 2], [2]) };
  for (const backend of ALL_BACKENDS) {
    it(`[${backend}] documented errors`, () => {
      const P = (o: any, i: any = x) => () => rk.ppoPolicyLoss(i, { ...o, backend });
      expect(P({ dualClip: 1 })).toThrow(RangeError);
      expect(P({ dualClip: 0.5 })).toThrow(RangeError);
      expect(P({ dualClip: NaN })).toThrow(RangeError);
      expect(P({ dualClip: Infinity })).toThrow(RangeError);
      expect(P({ dualClip: '3' })).toThrow(TypeError);
      expect(P({ aggregation: 'seq-sum' })).toThrow(RangeError);
      expect(P({ aggregation: 3 })).toThrow(TypeError);
      expect(P({ clipLow: -0.1 })).toThrow(RangeError);
      expect(P({ clipLow: 1.5 })).toThrow(RangeError);
      expect(P({ clipHigh: -0.1 })).toThrow(RangeError);
      expect(P({ klCoef: -1 })).toThrow(RangeError);
      expect(P({ klCoef: 0.1, klEstimator: 'k5' })).toThrow(RangeError);
      expect(P({ klCoef: 0.1 }, { ...x, refLogp: undefined })).toThrow(/refLogp/);
      expect(P({ klCoef: 0.1 }, { ...x, refLogp: undefined })).toThrow(TypeError);
      expect(P({ normalizer: 0 })).toThrow(RangeError);
      expect(P({ normalizer: -3 })).toThrow(RangeError);
      expect(P({ normalizer: Infinity })).toThrow(RangeError);
      expect(P({}, { ...x, mask: undefined })).toThrow(TypeError);
      expect(P({}, { ...x, oldLogp: undefined })).toThrow(/oldLogp/);
      expect(P({}, { ...x, advantages: f32([1, 2, 3], [1, 3]) })).toThrow(/advantages.*shape/);
      expect(P({}, { ...x, refLogp: f32([1, 2, 3], [1, 3]) })).toThrow(RangeError);
      expect(P({}, { ...x, logp: f32([1, 2, 3], [3]) })).toThrow(/rank 2/);
      expect(P({}, { ...x, mask: rk.tensor(new Int32Array(6), [2, 3]) })).toThrow(TypeError);
      expect(P({ out: { gradLogp: rk.zeros([2, 3], 'f64') } })).toThrow(TypeError);
      expect(P({ out: { gradLogp: rk.zeros([3, 2], 'f32') } })).toThrow(RangeError);
      expect(() => rk.ppoPolicyLoss(x, { backend: 'tpu' as any })).toThrow(RangeError);
      const V = (o: any, i: any = v) => () => rk.valueLoss(i, { ...o, backend });
      expect(V({})).toThrow(TypeError); // aggregation is required
      expect(V({})).toThrow(/aggregation/);
      expect(V({ aggregation: 'mean' })).toThrow(RangeError);
      expect(V({ aggregation: 'token-mean', clip: -1 })).toThrow(RangeError);
      expect(V({ aggregation: 'token-mean', clip: NaN })).toThrow(RangeError);
      expect(V({ aggregation: 'token-mean', normalizer: 0 })).toThrow(RangeError);
      expect(V({ aggregation: 'token-mean' }, { ...v, returns: undefined })).toThrow(TypeError);
      expect(V({ aggregation: 'token-mean' }, { ...v, mask: undefined })).toThrow(TypeError);
      expect(V({ aggregation: 'token-mean' }, { ...v, oldValues: f32([1], [1, 1]) })).toThrow(RangeError);
      const Q = (o: any, i: any = p) => () => rk.p3oLoss(i, { ...o, backend });
      expect(Q({ variant: 'both' })).toThrow(RangeError);
      expect(Q({ clip: 2 })).toThrow(RangeError);
      expect(Q({ normalizer: 0 })).toThrow(RangeError);
      expect(Q({}, { ...p, rewards2: f32([1, 2, 3], [3]) })).toThrow(RangeError);
      expect(Q({}, { ...p, rewards2: undefined })).toThrow(TypeError);
      expect(Q({}, { ...p, logp1: f32([1, 2], [1, 2]) })).toThrow(/rank 1/);
      expect(() => rk.ppoPolicyLoss(null as any)).toThrow(TypeError);
      expect(() => rk.valueLoss(v, 5 as any)).toThrow(TypeError);
    });
  }

  it("backend 'cuda' without a device is an Error that says why", () => {
    if (rk.backends().cuda.available) return;
    expect(() => rk.ppoPolicyLoss(x, { backend: 'cuda' })).toThrow(/cuda/i);
  });

  it('fuzzed arguments never crash the process (wrappers and the native entry points)', () => {
    const r = rng(99);
    const junk = [undefined, null, 0, -1, 1.5, NaN, 'x', {}, [], new Float64Array(3), new Float32Array(0), new Float32Array(6), new Uint8Array(7), new Int32Array(6)];
    const pick = () => junk[r.int(0, junk.length - 1)];
    for (let i = 0; i < 300; i++) {
      const args: any = { logp: r.next() < 0.6 ? x.logp : pick(), oldLogp: r.next() < 0.6 ? x.oldLogp : pick(), advantages: r.next() < 0.6 ? x.advantages : pick(), mask: r.next() < 0.6 ? x.mask : pick(), refLogp: pick(),
        values: r.next() < 0.6 ? v.values : pick(), oldValues: v.oldValues, returns: r.next() < 0.6 ? v.returns : pick(), ...(r.next() < 0.5 ? p : {}) };
      const opts: any = { clipLow: r.next() < 0.5 ? 0.2 : pick(), dualClip: pick(), klCoef: pick(), aggregation: r.next() < 0.5 ? 'token-mean' : pick(), normalizer: pick(), variant: pick(), clip: pick() };
      for (const f of [rk.ppoPolicyLoss, rk.valueLoss, rk.p3oLoss] as any[]) {
        try { f(args, opts); } catch (e) { expect(e).toBeInstanceOf(Error); }
      }
    }
    const nat = native as any;
    if (!nat) return;
    const F = () => new Float32Array(6), F2 = () => new Float32Array(2);
    const goods: Record<string, unknown[]> = {
      ppoPolicyLoss: [2, 3, F(), F(), F(), null, new Uint8Array(6), F(), 0.2, 0.2, NaN, 0, -1, 0, NaN, false, new Float64Array(3)],
      valueLoss: [2, 3, F(), F(), F(), new Uint8Array(6), F(), 0.2, 0, NaN, false, new Float64Array(2)],
      p3oLoss: [2, F2(), F2(), F2(), F2(), F2(), F2(), F2(), F2(), 0, 0.2, 0.2, NaN, false, new Float64Array(2)],
    };
    // the exact good calls work (so the fuzz below exercises the real argument checks)
    for (const [fn, good] of Object.entries(goods)) expect(() => nat[fn](...good)).not.toThrow();
    for (const [fn, good] of Object.entries(goods)) {
      for (let i = 0; i < 300; i++) {
        const a = good.map((g) => (r.next() < 0.15 ? pick() : g));
        if (r.next() < 0.2) a.length = r.int(0, a.length);
        try { nat[fn](...a); } catch (e) { expect(e).toBeInstanceOf(Error); }
      }
    }
  });
});
