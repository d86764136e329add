/** Token log-prob family (SPEC §1): native vs the float64 reference, definitions, gradients, errors. */
import { describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { native } from '../ts/native.js';
import * as ref from '../ts/reference/logprobs.js';
import { floatToBf16, floatToF16, readFloat } from '../ts/tensor.js';
import { atEverySimdLevel, expectClose, f32, nativeBackends, poisoned, rng } from './helpers.js';

type R = ReturnType<typeof rng>;
const fin = (v: number) => (Number.isFinite(v) ? Math.abs(v) : 0);
type LDT = 'f32' | 'f16' | 'bf16';

/** [N,V] logits of one dtype: normal·scale, with −inf entries, a row of all −inf but one, and a NaN-free label. */
function makeLogits(r: R, N: number, V: number, scale: number, dtype: LDT, opts: { negInf?: boolean } = {}) {
  const x = r.f32(N * V, scale);
  if (opts.negInf !== false && V > 1) {
    for (let i = 0; i < N * V; i += 11) x[i] = -Infinity; // padded-vocabulary entries
    if (N > 1) { // row 1: all −inf but one
      for (let j = 0; j < V; j++) x[V + j] = -Infinity;
      x[V + (V >> 1)] = scale * 0.5;
    }
  }
  let t: rk.Tensor;
  if (dtype === 'f32') t = rk.tensor(x, [N, V]);
  else t = rk.tensor(Uint16Array.from(x, dtype === 'bf16' ? floatToBf16 : floatToF16), [N, V], dtype);
  return t;
}

/** Labels in [0, V) at finite logits (except one label on a −inf logit), some ignored. */
function makeLabels(r: R, logits: rk.Tensor, ignore = -100): Int32Array {
  const [N, V] = [logits.shape[0], logits.shape[logits.shape.length - 1]];
  const x = readFloat(logits);
  const y = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    let j = r.int(0, V - 1);
    for (let k = 0; k < V && x[i * V + j] === -Infinity; k++) j = (j + 1) % V;
    y[i] = j;
    if (i % 5 === 3) y[i] = ignore;
  }
  if (N > 2 && V > 1) { // a label on a −inf logit: logp = −inf
    for (let j = 0; j < V; j++) if (x[2 * V + j] === -Infinity) { y[2] = j; break; }
  }
  return y;
}

/** Per-row float64 facts for the SPEC scale: decoded z = x/τ, lse, max |z|. */
function rowFacts(logits: rk.Tensor, tau: number) {
  const V = logits.shape[logits.shape.length - 1], N = logits.data.length / Math.max(V, 1);
  const x = readFloat(logits);
  const lse = new Float64Array(N), zmax = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const z = Float64Array.from({ length: V }, (_, j) => x[i * V + j] / tau);
    lse[i] = ref.logSumExp(z);
    let m = 0;
    for (const v of z) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
    zmax[i] = m;
  }
  return { x, lse, zmax, N, V };
}

/** SPEC scales of logp, lse, entropy (first-order, absolute values): S_lse = max|z| + |lse|. */
function fwdScales(logits: rk.Tensor, labels: Int32Array, tau: number) {
  const f = rowFacts(logits, tau);
  const sl = Float64Array.from(f.lse, (l, i) => f.zmax[i] + (Number.isFinite(l) ? Math.abs(l) : 0));
  const sp = Float64Array.from(sl, (s, i) => s + (labels[i] >= 0 ? Math.abs(f.x[i * f.V + labels[i]] / tau) || 0 : 0));
  const sh = Float64Array.from(sl, (s, i) => 2 * s + f.zmax[i]);
  return { sl, sp, sh, f };
}

/** Scale of each gradient element: |g|·(1 + p_j·(1 + |z_j| + S_lse))/τ with |g| = |gl| + |ge|(|z_j|+|lse|+|H|+S). */
function gradScale(logits: rk.Tensor, labels: Int32Array, tau: number, gl: ArrayLike<number>, ge?: ArrayLike<number>) {
  const { sl, f } = fwdScales(logits, labels, tau);
  const out = new Float64Array(f.N * f.V);
  for (let i = 0; i < f.N; i++)
    for (let j = 0; j < f.V; j++) {
      const z = f.x[i * f.V + j] / tau;
      const zf = Number.isFinite(z) ? Math.abs(z) : 0;
      const p = Number.isFinite(f.lse[i]) ? Math.exp(z - f.lse[i]) : 0;
      const g = Math.abs(gl[i]) + (ge ? Math.abs(ge[i]) * (zf + 3 * sl[i]) : 0);
      out[i * f.V + j] = (g * (1 + p * (1 + zf + sl[i]))) / tau;
    }
  return out;
}

const SHAPES: [number, number][] = [
  [1, 1], [4, 1], [1, 7], [3, 7], [5, 17], [9, 33], [17, 129], [6, 1000], [40, 257], [2, 4099], [300, 31], [2000, 7], [7, 32000],
  [3, 152064], [1, 40000],
];

describe('logprobs: float64 reference against the definitions', () => {
  it('hand case: V = 2, p = [1/4, 3/4]', () => {
    const logits = f32([0, Math.log(3), 0, Math.log(3)], [2, 2]);
    const labels = rk.tensor(Int32Array.from([1, 0]), [2]);
    for (const backend of ['js', ...nativeBackends()] as const) {
      const r = rk.logprobs({ logits, labels }, { entropy: true, backend });
      expectClose(r.logp.data, [Math.log(0.75), Math.log(0.25)], `${backend} logp`);
      expectClose(r.lse.data, [Math.log(4), Math.log(4)], `${backend} lse`);
      const H = -(0.25 * Math.log(0.25) + 0.75 * Math.log(0.75));
      expectClose(r.entropy!.data, [H, H], `${backend} entropy`);
      const g = rk.logprobsBackward({ logits, labels, gradLogp: f32([1, 2], [2]) }, { backend }).gradLogits.data;
      expectClose(g, [-0.25, 0.25, 2 * 0.75, -2 * 0.75], `${backend} grad`);
      // KL(p‖q), p = [1/2, 1/2], q = [1/4, 3/4]
      const kl = rk.vocabKl({ logits: f32([0, 0], [1, 2]), refLogits: f32([0, Math.log(3)], [1, 2]) }, { backend }).kl.data[0];
      expect(kl).toBeCloseTo(0.5 * Math.log(2) + 0.5 * Math.log(2 / 3), 6);
      const fkl = rk.vocabKl({ logits: f32([0, 0], [1, 2]), refLogits: f32([0, Math.log(3)], [1, 2]) }, { backend, direction: 'forward' }).kl.data[0];
      expect(fkl).toBeCloseTo(0.25 * Math.log(0.5) + 0.75 * Math.log(1.5), 6);
    }
  });

  it('entropy = −Σ p log p, 0 ≤ H ≤ log V; KL(p‖q) and KL(q‖p) = Σ P log(P/Q) ≥ 0, 0 for equal logits', () => {
    const r = rng(5);
    for (const [N, V] of [[4, 9], [3, 100]] as const) {
      const logits = rk.tensor(r.f32(N * V, 2), [N, V]);
      const refLogits = rk.tensor(r.f32(N * V, 2), [N, V]);
      const labels = rk.tensor(Int32Array.from({ length: N }, () => r.int(0, V - 1)), [N]);
      const tau = 0.7;
      for (const backend of ['js', ...nativeBackends()] as const) {
        const H = rk.logprobs({ logits, labels }, { entropy: true, temperature: tau, backend }).entropy!.data;
        const kr = rk.vocabKl({ logits, refLogits }, { temperature: tau, backend }).kl.data;
        const kf = rk.vocabKl({ logits, refLogits }, { temperature: tau, direction: 'forward', backend }).kl.data;
        const k0 = rk.vocabKl({ logits, refLogits: logits }, { temperature: tau, backend }).kl.data;
        for (let i = 0; i < N; i++) {
          const z = Array.from({ length: V }, (_, j) => logits.data[i * V + j] / tau);
          const w = Array.from({ length: V }, (_, j) => refLogits.data[i * V + j] / tau);
          const sm = (v: number[]) => { const m = Math.max(...v); const e = v.map((x) => Math.exp(x - m)); const s = e.reduce((a, b) => a + b); return e.map((x) => x / s); };
          const p = sm(z), q = sm(w);
          const h = -p.reduce((a, pj) => a + pj * Math.log(pj), 0);
          expect(Math.abs(H[i] - h)).toBeLessThan(1e-5 * (1 + h + 2));
          expect(H[i]).toBeGreaterThanOrEqual(-1e-6);
          expect(H[i]).toBeLessThanOrEqual(Math.log(V) + 1e-5);
          const klpq = p.reduce((a, pj, j) => a + pj * Math.log(pj / q[j]), 0);
          const klqp = q.reduce((a, qj, j) => a + qj * Math.log(qj / p[j]), 0);
          expect(Math.abs(kr[i] - klpq)).toBeLessThan(1e-5 * (1 + 10));
          expect(Math.abs(kf[i] - klqp)).toBeLessThan(1e-5 * (1 + 10));
          expect(kr[i]).toBeGreaterThanOrEqual(-1e-6);
          expect(kf[i]).toBeGreaterThanOrEqual(-1e-6);
          expect(Math.abs(k0[i])).toBeLessThan(1e-6);
        }
      }
    }
  });

  it('analytic gradients equal central finite differences in float64 (logp, entropy, both KL directions)', () => {
    const r = rng(77);
    const N = 3, V = 6, tau = 0.8, h = 1e-5;
    const x = Float64Array.from(r.f32(N * V, 1.5));
    x[4] = -Infinity; // a −inf logit: zero gradient there, no NaN
    const w = Float64Array.from(r.f32(N * V, 1.5));
    const labels = Int32Array.from([2, -100, 5]);
    const gl = Float64Array.from([0.7, -1.1, -0.4]), ge = Float64Array.from([0.3, 0.9, -0.6]), gk = Float64Array.from([0.5, -0.8, 1.2]);
    const src = (d: Float64Array): ref.Src => ({ data: d, lut: null });
    const loss = (d: Float64Array) => {
      const lp = new Float64Array(N), ls = new Float64Array(N), H = new Float64Array(N);
      ref.logprobs(src(d), labels, N, V, tau, -100, lp as any, ls as any, H as any);
      let s = 0;
      for (let i = 0; i < N; i++) s += gl[i] * lp[i] + ge[i] * H[i];
      return s;
    };
    // KL: finite policy logits (a −inf one would make the forward KL +inf), a −inf reference logit
    const xk = Float64Array.from(x, (v) => (Number.isFinite(v) ? v : 0.3));
    w[7] = -Infinity;
    const klLoss = (d: Float64Array, dir: ref.KlDirection) => {
      const k = new Float64Array(N);
      ref.vocabKl(src(d), src(w), labels, N, V, tau, -100, dir, k as any);
      return k.reduce((a, v, i) => a + gk[i] * v, 0);
    };
    const fd = (f: (d: Float64Array) => number, x0 = x) =>
      Float64Array.from({ length: N * V }, (_, i) => {
        if (!Number.isFinite(x0[i])) return 0;
        const a = Float64Array.from(x0), b = Float64Array.from(x0);
        a[i] += h; b[i] -= h;
        return (f(a) - f(b)) / (2 * h);
      });
    const g = new Float64Array(N * V);
    ref.logprobsBackward(src(x), labels, N, V, tau, -100, gl, ge, undefined, g as any);
    const want = fd(loss);
    for (let i = 0; i < N * V; i++) expect(Math.abs(g[i] - want[i]), `logprobs grad[${i}]`).toBeLessThan(1e-6);
    for (const dir of ['reverse', 'forward'] as const) {
      const gkl = new Float64Array(N * V);
      ref.vocabKlBackward(src(xk), src(w), labels, N, V, tau, -100, dir, gk, gkl as any);
      const wk = fd((d) => klLoss(d, dir), xk);
      for (let i = 0; i < N * V; i++) expect(Math.abs(gkl[i] - wk[i]), `${dir} KL grad[${i}]`).toBeLessThan(1e-6);
    }
  });
});

for (const backend of nativeBackends()) {
  describe(`logprobs [${backend}] vs js reference`, () => {
    it('logprobs / logprobsBackward: V in {1, 7, …, 32000, 152064}, many N, ±1e4 logits, −inf rows, f32/f16/bf16, every SIMD level', () => {
      let si = 0;
      atEverySimdLevel((level) => {
        for (const [N, V] of SHAPES) {
          if (level !== 'avx512' && N * V > 200000 && V !== 152064) continue; // the long rows once per level
          for (const dtype of ['f32', 'f16', 'bf16'] as const) {
            if (N * V > 100000 && dtype !== 'f32' && level !== 'avx512') continue;
            const r = rng(1000 + si++);
            const scale = si % 3 === 0 ? 1e4 : si % 3 === 1 ? 3 : 0.5;
            const logits = makeLogits(r, N, V, dtype === 'f16' ? Math.min(scale, 6e3) : scale, dtype);
            const labels = makeLabels(r, logits);
            const lab = rk.tensor(labels, [N]);
            const tau = si % 2 ? 1 : 0.75;
            const what = `${level} ${N}x${V} ${dtype} scale=${scale} τ=${tau}`;
            const want = rk.logprobs({ logits, labels: lab }, { entropy: true, temperature: tau, backend: 'js' });
            const out = { logp: poisoned([N]), lse: poisoned([N]), entropy: poisoned([N]) };
            const got = rk.logprobs({ logits, labels: lab }, { entropy: true, temperature: tau, backend, out });
            expect(got.logp).toBe(out.logp);
            const S = fwdScales(logits, labels, tau);
            expectClose(got.logp.data, want.logp.data, `logp ${what}`, { scale: S.sp });
            expectClose(got.lse.data, want.lse.data, `lse ${what}`, { scale: S.sl });
            expectClose(got.entropy!.data, want.entropy!.data, `entropy ${what}`, { scale: S.sh });
            // without entropy: same logp/lse
            const noH = rk.logprobs({ logits, labels: lab }, { temperature: tau, backend });
            expect(noH.entropy).toBeUndefined();
            expectClose(noH.lse.data, want.lse.data, `lse (no entropy) ${what}`, { scale: S.sl });
            if (N * V > 200000 && level !== 'avx512') continue;
            const gl = rk.tensor(r.f32(N), [N]), ge = rk.tensor(r.f32(N), [N]);
            for (const mode of ['plain', 'lse', 'entropy'] as const) {
              const inp = { logits, labels: lab, gradLogp: gl, ...(mode === 'lse' ? { lse: got.lse } : {}), ...(mode === 'entropy' ? { gradEntropy: ge } : {}) };
              const gw = rk.logprobsBackward(inp, { temperature: tau, backend: 'js' }).gradLogits;
              const gout = { gradLogits: poisoned(logits.shape) };
              const gg = rk.logprobsBackward(inp, { temperature: tau, backend, out: gout }).gradLogits;
              expect(gg).toBe(gout.gradLogits);
              expectClose(gg.data, gw.data, `grad(${mode}) ${what}`, { scale: gradScale(logits, labels, tau, gl.data, mode === 'entropy' ? ge.data : undefined) });
            }
          }
        }
      });
    });

    it('f16/bf16 logits give the f32 results on the decoded values (widened in registers; bit-identical on cpu)', () => {
      atEverySimdLevel((level) => {
        for (const [N, V] of [[3, 7], [5, 1000], [2, 33333]] as const) {
          for (const dtype of ['f16', 'bf16'] as const) {
            const r = rng(N * V);
            const h = makeLogits(r, N, V, 8, dtype);
            const f = rk.tensor(Float32Array.from(readFloat(h)), [N, V]);
            const labels = rk.tensor(makeLabels(r, h), [N]);
            const a = rk.logprobs({ logits: h, labels }, { entropy: true, backend });
            const b = rk.logprobs({ logits: f, labels }, { entropy: true, backend });
            const gl = rk.tensor(r.f32(N), [N]);
            const ga = rk.logprobsBackward({ logits: h, labels, gradLogp: gl }, { backend }).gradLogits.data;
            const gb = rk.logprobsBackward({ logits: f, labels, gradLogp: gl }, { backend }).gradLogits.data;
            if (backend === 'cpu') {
              // the CPU kernels visit a row's elements in the same order for every dtype: bit-identical
              expect(Array.from(a.logp.data), `${level} ${dtype} ${N}x${V}`).toEqual(Array.from(b.logp.data));
              expect(Array.from(a.entropy!.data)).toEqual(Array.from(b.entropy!.data));
              expect(Array.from(ga)).toEqual(Array.from(gb));
            } else {
              // CUDA threads take 8 f16/bf16 or 4 f32 values per 16-byte load, so the summation
              // order (not the widening) differs: equal within rounding of the sums
              expectClose(a.logp.data, b.logp.data, `${dtype} ${N}x${V} logp`, { tol: 2e-6, scale: 30 });
              expectClose(a.entropy!.data, b.entropy!.data, `${dtype} ${N}x${V} entropy`, { tol: 2e-6, scale: 30 });
              expectClose(ga, gb, `${dtype} ${N}x${V} grad`, { tol: 2e-6, scale: 1 });
            }
            const ka = rk.vocabKl({ logits: h, refLogits: h, labels }, { backend }).kl.data;
            expect(Array.from(ka).every((v) => v === 0)).toBe(true);
          }
        }
      });
    });

    it('[B,T,V] shapes, custom ignoreIndex, ignored rows unread, NaN confined to its row', () => {
      const r = rng(3);
      const [B, T, V] = [3, 5, 37];
      const x = r.f32(B * T * V, 2);
      const labels = Int32Array.from({ length: B * T }, () => r.int(0, V - 1));
      labels[4] = -1;
      labels[7] = -1;
      for (let j = 0; j < V; j++) x[4 * V + j] = j % 2 ? NaN : Infinity; // ignored row: never read
      x[9 * V + 3] = NaN; // counted row with a NaN
      const logits = rk.tensor(x, [B, T, V]), lab = rk.tensor(labels, [B, T]);
      for (const level of ['x'] as const) void level;
      const want = rk.logprobs({ logits, labels: lab }, { entropy: true, ignoreIndex: -1, backend: 'js' });
      const got = rk.logprobs({ logits, labels: lab }, { entropy: true, ignoreIndex: -1, backend });
      expect(got.logp.shape).toEqual([B, T]);
      for (const k of ['logp', 'lse', 'entropy'] as const) {
        const g = got[k]!.data;
        expect(g[4]).toBe(0);
        expect(g[7]).toBe(0);
        expect(Number.isNaN(g[9])).toBe(true);
        for (let i = 0; i < B * T; i++) if (i !== 9) expect(Number.isFinite(g[i]), `${k}[${i}]`).toBe(true);
        expectClose(g, want[k]!.data, k, { scale: 30 });
      }
      const gl = rk.tensor(r.f32(B * T), [B, T]);
      const gg = rk.logprobsBackward({ logits, labels: lab, gradLogp: gl }, { ignoreIndex: -1, backend, out: { gradLogits: poisoned([B, T, V]) } }).gradLogits;
      expect(gg.shape).toEqual([B, T, V]);
      for (let j = 0; j < V; j++) {
        expect(gg.data[4 * V + j]).toBe(0);
        expect(Number.isNaN(gg.data[9 * V + j])).toBe(true);
        expect(Number.isFinite(gg.data[8 * V + j])).toBe(true);
      }
      // vocabKl on [B,T,V] with labels marking ignored rows
      const refLogits = rk.tensor(r.f32(B * T * V, 2), [B, T, V]);
      const kl = rk.vocabKl({ logits, refLogits, labels: lab }, { ignoreIndex: -1, backend }).kl;
      expect(kl.shape).toEqual([B, T]);
      expect(kl.data[4]).toBe(0);
      expect(Number.isNaN(kl.data[9])).toBe(true);
    });

    it('rows of all −inf but one: lse = that logit, logp 0 on it and −inf elsewhere, entropy 0, zero gradient', () => {
      atEverySimdLevel((level) => {
        for (const V of [1, 7, 40, 5000, 70000]) {
          const N = 3;
          const x = new Float32Array(N * V).fill(-Infinity);
          const hot = [0, V >> 1, V - 1];
          for (let i = 0; i < N; i++) x[i * V + hot[i]] = [3.5, -1e4, 1e4][i];
          const labels = Int32Array.from([hot[0], V > 1 ? (hot[1] + 1) % V : 0, hot[2]]);
          const logits = rk.tensor(x, [N, V]), lab = rk.tensor(labels, [N]);
          const r = rk.logprobs({ logits, labels: lab }, { entropy: true, backend });
          expect(Array.from(r.lse.data), `${level} V=${V}`).toEqual([3.5, -1e4, 1e4]);
          expect(r.logp.data[0]).toBe(0);
          expect(r.logp.data[1]).toBe(V > 1 ? -Infinity : 0);
          expect(r.logp.data[2]).toBe(0);
          expect(Array.from(r.entropy!.data)).toEqual([0, 0, 0]);
          const g = rk.logprobsBackward({ logits, labels: lab, gradLogp: f32([1, 1, 1], [3]), gradEntropy: f32([1, 1, 1], [3]) }, { backend }).gradLogits.data;
          expect(g.every((v) => v === 0 || Object.is(v, -0))).toBe(V > 1 ? false : true);
          expect(g.every((v) => Number.isFinite(v))).toBe(true);
          expect(g[0]).toBe(0); // label on the one finite logit: (1 − 1)
        }
      });
    });

    it('vocabKl / vocabKlBackward: both directions, labels, temperature, f16/bf16, ±1e4, every SIMD level', () => {
      let si = 0;
      atEverySimdLevel((level) => {
        for (const [N, V] of [[1, 1], [3, 7], [9, 33], [6, 1000], [300, 31], [2, 32000], [3, 70001]] as [number, number][]) {
          for (const dtype of ['f32', 'bf16', 'f16'] as const) {
            if (level !== 'avx512' && N * V > 100000) continue;
            const r = rng(500 + si++);
            const scale = si % 3 === 0 ? 1e4 : 2;
            const logits = makeLogits(r, N, V, dtype === 'f16' ? Math.min(scale, 6e3) : scale, dtype);
            const refLogits = makeLogits(r, N, V, dtype === 'f16' ? Math.min(scale, 6e3) : scale, dtype, { negInf: false });
            const labels = N > 1 ? rk.tensor(makeLabels(r, logits), [N]) : undefined;
            const gk = rk.tensor(r.f32(N), [N]);
            const tau = si % 2 ? 1 : 1.3;
            const fl = rowFacts(logits, tau), fr = rowFacts(refLogits, tau);
            for (const direction of ['reverse', 'forward'] as const) {
              const what = `${level} ${N}x${V} ${dtype} ${direction} scale=${scale}`;
              const o = { direction, temperature: tau };
              const want = rk.vocabKl({ logits, refLogits, labels }, { ...o, backend: 'js' }).kl;
              const got = rk.vocabKl({ logits, refLogits, labels }, { ...o, backend, out: { kl: poisoned([N]) } }).kl;
              const S = Float64Array.from({ length: N }, (_, i) => 4 * (fl.zmax[i] + fr.zmax[i] + Math.abs(fl.lse[i]) + Math.abs(fr.lse[i])) + fin(want.data[i]));
              expectClose(got.data, want.data, `kl ${what}`, { scale: S });
              const gw = rk.vocabKlBackward({ logits, refLogits, labels, gradKl: gk }, { ...o, backend: 'js' }).gradLogits;
              const gg = rk.vocabKlBackward({ logits, refLogits, labels, gradKl: gk }, { ...o, backend, out: { gradLogits: poisoned([N, V]) } }).gradLogits;
              const GS = Float64Array.from({ length: N * V }, (_, k) => {
                const i = Math.floor(k / V);
                const p = Math.exp(fl.x[k] / tau - fl.lse[i]) || 0, q = Math.exp(fr.x[k] / tau - fr.lse[i]) || 0;
                const T = 1 + S[i] + fin(fl.x[k] / tau) + fin(fr.x[k] / tau);
                return (Math.abs(gk.data[i]) / tau) * (p + q) * T * (2 + fin(want.data[i]) + S[i]);
              });
              expectClose(gg.data, gw.data, `kl grad ${what}`, { scale: GS });
            }
          }
        }
      });
    });

    it('reverse KL is +inf where q = 0 and p > 0; a shared −inf entry counts 0', () => {
      const logits = f32([0, 1, 2, 0, 1, -Infinity], [2, 3]);
      const refLogits = f32([0, -Infinity, 2, 0, 1, -Infinity], [2, 3]);
      for (const b of ['js', backend] as const) {
        const kl = rk.vocabKl({ logits, refLogits }, { backend: b }).kl.data;
        expect(kl[0]).toBe(Infinity);
        expect(Math.abs(kl[1])).toBeLessThan(1e-7);
        const fk = rk.vocabKl({ logits, refLogits }, { backend: b, direction: 'forward' }).kl.data;
        expect(Number.isFinite(fk[0])).toBe(true);
        expect(fk[0]).toBeGreaterThan(0);
      }
    });

    it('sequenceLogprobs: masked sums and means, u8/f32 masks, unread masked values', () => {
      const r = rng(9);
      for (const [B, T] of [[1, 1], [4, 7], [33, 129], [5, 5000]] as const) {
        for (const kind of ['u8', 'f32'] as const) {
          const lp = r.f32(B * T, 1, -3);
          const m = r.mask(B, T, kind);
          for (let i = 0; i < B * T; i += 3) if (!m[i]) lp[i] = i % 2 ? NaN : -Infinity;
          const logp = rk.tensor(lp, [B, T]), mask = rk.tensor(m, [B, T], kind);
          for (const average of [false, true]) {
            const w = rk.sequenceLogprobs({ logp, mask }, { average, backend: 'js' });
            const out = { sum: poisoned([B]), count: rk.tensor(new Int32Array(B).fill(-7), [B]) };
            const g = rk.sequenceLogprobs({ logp, mask }, { average, backend, out });
            expect(g.count.dtype).toBe('i32');
            expect(Array.from(g.count.data)).toEqual(Array.from(w.count.data));
            const S = Float64Array.from({ length: B }, (_, b) => {
              let s = 0;
              for (let t = 0; t < T; t++) if (m[b * T + t]) s += Math.abs(lp[b * T + t]);
              return average ? s / Math.max(1, w.count.data[b]) : s;
            });
            expectClose(g.sum.data, w.sum.data, `sequenceLogprobs ${B}x${T} ${kind} avg=${average}`, { scale: S });
          }
        }
      }
    });

    it('threads: 1 and 2 threads give the same results (rows split, V split within a row)', () => {
      const r = rng(31);
      const th = rk.backends().threads;
      for (const [N, V] of [[1, 152064], [3, 70000], [64, 1031]] as const) {
        const logits = makeLogits(r, N, V, 4, 'f32');
        const labels = rk.tensor(makeLabels(r, logits), [N]);
        const res = [1, 2].map((t) => {
          rk.setThreads(t);
          const a = rk.logprobs({ logits, labels }, { entropy: true, backend });
          const refLogits = makeLogits(rng(5), N, V, 4, 'f32', { negInf: false });
          const k = rk.vocabKl({ logits, refLogits }, { backend }).kl;
          return [a.logp.data, a.lse.data, a.entropy!.data, k.data];
        });
        rk.setThreads(th);
        const S = fwdScales(logits, labels.data as Int32Array, 1);
        for (let k = 0; k < 4; k++) expectClose(res[1][k], res[0][k], `threads ${N}x${V} out ${k}`, { scale: Float64Array.from(S.sh, (s) => 2 * s) });
      }
    });
  });
}

describe('logprobs: errors', () => {
  const logits = f32([1, 2, 3, 4, 5, 6], [2, 3]);
  const labels = rk.tensor(Int32Array.from([0, 2]), [2]);
  for (const backend of ['js', ...nativeBackends()] as const) {
    it(`[${backend}] documented errors`, () => {
      expect(() => rk.logprobs({ logits } as any, { backend })).toThrow(TypeError);
      expect(() => rk.logprobs({ labels } as any, { backend })).toThrow(TypeError);
      expect(() => rk.logprobs({ logits, labels: f32([0, 2], [2]) }, { backend })).toThrow(TypeError);
      expect(() => rk.logprobs({ logits: rk.tensor(new Int32Array(6), [2, 3]), labels }, { backend })).toThrow(TypeError);
      expect(() => rk.logprobs({ logits, labels: rk.tensor(Int32Array.from([0, 3]), [2]) }, { backend })).toThrow(/labels\[1\] = 3/);
      expect(() => rk.logprobs({ logits, labels: rk.tensor(Int32Array.from([-1, 0]), [2]) }, { backend })).toThrow(RangeError);
      expect(() => rk.logprobs({ logits, labels: rk.tensor(Int32Array.from([-1, 0]), [2]) }, { backend, ignoreIndex: -1 })).not.toThrow();
      expect(() => rk.logprobs({ logits, labels: rk.tensor(Int32Array.from([0, 1, 2]), [3]) }, { backend })).toThrow(/labels.*shape/);
      expect(() => rk.logprobs({ logits: f32([1, 2, 3], [3]), labels: rk.tensor(Int32Array.from([0]), [1]) }, { backend })).toThrow(/rank 2 or 3/);
      for (const t of [0, -1, NaN, Infinity, 1e-60]) expect(() => rk.logprobs({ logits, labels }, { backend, temperature: t })).toThrow(RangeError);
      expect(() => rk.logprobs({ logits, labels }, { backend, temperature: '1' as any })).toThrow(TypeError);
      expect(() => rk.logprobs({ logits, labels }, { backend, ignoreIndex: 1.5 })).toThrow(RangeError);
      expect(() => rk.logprobs({ logits, labels }, { backend, entropy: 1 as any })).toThrow(TypeError);
      expect(() => rk.logprobs({ logits, labels }, { backend, out: { logp: f32([0, 0, 0], [3]) } })).toThrow(RangeError);
      expect(() => rk.logprobs({ logits, labels }, { backend, out: { lse: rk.tensor(new Int32Array(2), [2]) } })).toThrow(TypeError);
      expect(() => rk.logprobsBackward({ logits, labels } as any, { backend })).toThrow(/gradLogp/);
      expect(() => rk.logprobsBackward({ logits, labels, gradLogp: f32([1], [1]) }, { backend })).toThrow(RangeError);
      expect(() => rk.logprobsBackward({ logits, labels, gradLogp: f32([1, 1], [2]), lse: f32([1], [1]) }, { backend })).toThrow(/lse/);
      expect(() => rk.logprobsBackward({ logits, labels, gradLogp: f32([1, 1], [2]) }, { backend, out: { gradLogits: f32([0, 0], [2]) } })).toThrow(RangeError);
      expect(() => rk.vocabKl({ logits, refLogits: logits }, { backend, direction: 'backward' as any })).toThrow(RangeError);
      expect(() => rk.vocabKl({ logits, refLogits: logits }, { backend, direction: 1 as any })).toThrow(TypeError);
      expect(() => rk.vocabKl({ logits, refLogits: f32([1, 2], [1, 2]) }, { backend })).toThrow(/refLogits.*shape/);
      expect(() => rk.vocabKl({ logits } as any, { backend })).toThrow(TypeError);
      expect(() => rk.vocabKl({ logits, refLogits: logits, labels: rk.tensor(Int32Array.from([0, 9]), [2]) }, { backend })).toThrow(RangeError);
      expect(() => rk.vocabKlBackward({ logits, refLogits: logits } as any, { backend })).toThrow(/gradKl/);
      expect(() => rk.sequenceLogprobs({ logp: logits } as any, { backend })).toThrow(TypeError);
      expect(() => rk.sequenceLogprobs({ logp: logits, mask: rk.tensor(new Uint8Array(2), [2]) }, { backend })).toThrow(RangeError);
      expect(() => rk.sequenceLogprobs({ logp: f32([1], [1]), mask: rk.tensor(new Uint8Array(1), [1]) }, { backend })).toThrow(/rank 2/);
      expect(() => rk.sequenceLogprobs({ logp: logits, mask: rk.tensor(new Uint8Array(6), [2, 3]) }, { backend, average: 'yes' as any })).toThrow(TypeError);
    });
  }

  it('mixed logits dtypes (f32 and bf16) are accepted by vocabKl and agree with js', () => {
    const a = f32([0.5, -1, 2, 0], [1, 4]);
    const b = rk.tensor(Uint16Array.from([0.25, 1, -2, 0.5], floatToBf16), [1, 4], 'bf16');
    const want = rk.vocabKl({ logits: a, refLogits: b }, { backend: 'js' }).kl.data[0];
    for (const backend of nativeBackends()) expect(rk.vocabKl({ logits: a, refLogits: b }, { backend }).kl.data[0]).toBeCloseTo(want, 5);
  });

  it("backend 'cuda' without a device is an Error that says why", () => {
    if (rk.backends().cuda.available) return;
    expect(() => rk.logprobs({ logits, labels }, { backend: 'cuda' })).toThrow(/cuda.*(without CUDA|no CUDA device|not built|addon)/i);
  });

  it('native entry points reject malformed arguments with TypeError/RangeError, never a crash', () => {
    if (!native) return;
    const n = native as any;
    const L = new Float32Array(6), Y = Int32Array.from([0, 2]), o2 = () => new Float32Array(2);
    expect(() => n.logprobs(2, 3, 0, L, Y, o2(), o2(), null, 1, -100, false)).not.toThrow();
    expect(() => n.logprobs(2, 4, 0, L, Y, o2(), o2(), null, 1, -100, false)).toThrow(RangeError); // wrong logits length
    expect(() => n.logprobs(2, 3, 0, L, Int32Array.from([0, 3]), o2(), o2(), null, 1, -100, false)).toThrow(RangeError); // label ≥ V
    expect(() => n.logprobs(2, 3, 0, L, Int32Array.from([0, -5]), o2(), o2(), null, 1, -100, false)).toThrow(RangeError);
    expect(() => n.logprobs(2, 3, 1, L, Y, o2(), o2(), null, 1, -100, false)).toThrow(TypeError); // f16 code with a Float32Array
    expect(() => n.logprobs(2, 3, 7, L, Y, o2(), o2(), null, 1, -100, false)).toThrow(RangeError);
    expect(() => n.logprobs(2, 3, 0, L, Y, o2(), o2(), null, 0, -100, false)).toThrow(RangeError);
    expect(() => n.logprobs(2 ** 40, 2 ** 40, 0, L, Y, o2(), o2(), null, 1, -100, false)).toThrow(RangeError);
    expect(() => n.logprobsBackward(2, 3, 0, L, Y, o2(), null, null, new Float32Array(5), 1, -100, false)).toThrow(RangeError);
    expect(() => n.vocabKl(2, 3, 0, L, L, true, new Int32Array(1), o2(), 1, -100, 0, false)).toThrow(RangeError);
    expect(() => n.vocabKl(2, 3, 0, L, L, false, new Int32Array(0), o2(), 1, -100, 2, false)).toThrow(RangeError);
    expect(() => n.sequenceLogprobs(2, 3, L, null, o2(), new Int32Array(2), false, false)).toThrow(TypeError);
    const r = rng(4);
    const junk = [undefined, null, 0, -1, 1.5, NaN, 2 ** 53, 'x', {}, [], new Float64Array(3), new Float32Array(0), new Uint16Array(6), new Int32Array(2), L];
    for (let i = 0; i < 400; i++) {
      const args = Array.from({ length: 13 }, (_, k) => (r.next() < 0.5 ? [2, 3, 0, L, Y, o2(), o2(), null, 1, -100, 0, false, false][k] : junk[r.int(0, junk.length - 1)]));
      for (const f of ['logprobs', 'logprobsBackward', 'vocabKl', 'vocabKlBackward', 'sequenceLogprobs']) {
        try {
          n[f](...args);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
      }
    }
  });

  it('fuzzed public calls never crash', () => {
    const r = rng(8);
    const junk = [undefined, null, 0, 'x', {}, [], f32([1], [1]), logits, labels, rk.tensor(Int32Array.from([5, -3]), [2]), rk.tensor(new Uint16Array(6), [2, 3], 'bf16')];
    for (let i = 0; i < 300; i++) {
      const pick = () => junk[r.int(0, junk.length - 1)];
      const inp: any = { logits: r.next() < 0.5 ? logits : pick(), labels: r.next() < 0.5 ? labels : pick(), refLogits: pick(), gradLogp: pick(), lse: pick(), gradKl: pick(), logp: pick(), mask: pick() };
      const opts: any = { temperature: r.next() < 0.5 ? 1 : pick(), ignoreIndex: pick(), direction: pick(), entropy: pick(), average: pick() };
      for (const f of [rk.logprobs, rk.logprobsBackward, rk.vocabKl, rk.vocabKlBackward, rk.sequenceLogprobs] as any[]) {
        try {
          f(inp, opts);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
      }
    }
  });
});
