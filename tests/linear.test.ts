/**
 * Linear family (SPEC §8): log-probs straight from hidden states. The float64 reference against
 * the definitions (= logprobs of the materialised logits, finite-difference gradients), native vs
 * the reference on many shapes (D ∈ {1, 7, 64, 4096}, V not a multiple of the chunk, N = 1,
 * ignored rows never read, f32/f16/bf16, every SIMD level, 1 and 2 threads), the preference loss
 * and the PPO composition from hidden states, and the errors.
 */
import { describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import * as lref from '../ts/reference/linear.js';
import * as pref from '../ts/reference/preference.js';
import * as ppoRef from '../ts/reference/ppo.js';
import { floatToBf16, floatToF16, readFloat } from '../ts/tensor.js';
import { atEverySimdLevel, expectClose, f32, nativeBackends, poisoned, rng } from './helpers.js';
import { OPTS, prefComposition, typeOf, VARIANTS } from './preference-chain.js';

type R = ReturnType<typeof rng>;
type DT = 'f32' | 'f16' | 'bf16';
const F64 = (n: number) => new Float64Array(n) as unknown as Float32Array; // float64 outputs of the reference

function half(x: Float32Array, shape: number[], dtype: DT): rk.Tensor {
  if (dtype === 'f32') return rk.tensor(x, shape);
  return rk.tensor(Uint16Array.from(x, dtype === 'bf16' ? floatToBf16 : floatToF16), shape, dtype);
}

/** Random hidden [N,D] (or [B,T,D]), weight [V,D], bias [V], labels with ignored rows. */
function makeCase(r: R, N: number, V: number, D: number, o: { dtype?: DT; bias?: boolean; rows?: number[]; scale?: number; ignore?: number } = {}) {
  const dtype = o.dtype ?? 'f32';
  const scale = o.scale ?? 1;
  const ws = scale / Math.sqrt(D); // logits of order `scale` whatever D is
  const hidden = half(r.f32(N * D, 1), o.rows ? [...o.rows, D] : [N, D], dtype);
  const weight = half(r.f32(V * D, ws * 2), [V, D], dtype);
  const bias = o.bias ? rk.tensor(r.f32(V, scale), [V]) : undefined;
  const ign = o.ignore ?? -100;
  const lab = Int32Array.from({ length: N }, (_, i) => (i % 5 === 3 ? ign : r.int(0, V - 1)));
  const labels = rk.tensor(lab, o.rows ?? [N]);
  return { hidden, weight, bias, labels, N, V, D };
}
type Case = ReturnType<typeof makeCase>;

/** float64 logits x = h·Wᵀ + b, and A = Σ_k |h_k W_jk| + |b_j| (the SPEC's absolute-value sum), both ÷ τ. */
function facts(c: Case, tau: number) {
  const { N, V, D } = c;
  const h = readFloat(c.hidden), w = readFloat(c.weight), b = c.bias?.data;
  const z = new Float64Array(N * V), A = new Float64Array(N * V), lse = new Float64Array(N), amax = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    let m = -Infinity;
    for (let j = 0; j < V; j++) {
      let s = b ? b[j] : 0, a = b ? Math.abs(b[j]) : 0;
      for (let k = 0; k < D; k++) { const p = h[i * D + k] * w[j * D + k]; s += p; a += Math.abs(p); }
      z[i * V + j] = s / tau;
      A[i * V + j] = a / tau;
      m = Math.max(m, s / tau);
      amax[i] = Math.max(amax[i], a / tau);
    }
    let se = 0;
    for (let j = 0; j < V; j++) se += Math.exp(z[i * V + j] - m);
    lse[i] = m + Math.log(se);
  }
  return { z, A, lse, amax, h, w };
}

/** SPEC scales of the forward outputs (first-order, with the product's absolute sums). */
function fwdScales(c: Case, F: ReturnType<typeof facts>) {
  const lab = c.labels.data as Int32Array;
  const sl = Float64Array.from(F.lse, (l, i) => F.amax[i] + Math.abs(l));
  const sp = Float64Array.from(sl, (s, i) => s + (lab[i] >= 0 && lab[i] < c.V ? F.A[i * c.V + lab[i]] : 0));
  const sh = Float64Array.from(sl, (s, i) => 2 * s + F.amax[i]);
  return { sl, sp, sh };
}

/** Per-logit gradient scale (as the logprobs tests) and its propagation through the products. */
function bwdScales(c: Case, F: ReturnType<typeof facts>, tau: number, ignore: number, gl: ArrayLike<number>, ge?: ArrayLike<number>) {
  const { N, V, D } = c;
  const lab = c.labels.data as Int32Array;
  const { sl } = fwdScales(c, F);
  const sH = new Float64Array(N * D), sW = new Float64Array(V * D), sB = new Float64Array(V);
  for (let i = 0; i < N; i++) {
    if (lab[i] === ignore) continue;
    for (let j = 0; j < V; j++) {
      const a = F.A[i * V + j], p = Math.exp(F.z[i * V + j] - F.lse[i]);
      const g = Math.abs(gl[i]) + (ge ? Math.abs(ge[i]) * (a + 3 * sl[i]) : 0);
      const s = (g * (1 + p * (1 + a + sl[i]))) / tau;
      for (let k = 0; k < D; k++) {
        sH[i * D + k] += s * Math.abs(F.w[j * D + k]);
        sW[j * D + k] += s * Math.abs(F.h[i * D + k]);
      }
      sB[j] += s;
    }
  }
  return { sH, sW, sB };
}

describe('linear: float64 reference against the definitions', () => {
  it('linearLogprobs = logprobs of the materialised logits h·Wᵀ + b (every option, [B,T,D] rows)', () => {
    const r = rng(1);
    for (const [N, V, D, rows] of [[1, 1, 1, undefined], [6, 9, 7, [2, 3]], [11, 40, 64, undefined]] as const) {
      for (const bias of [false, true]) {
        const c = makeCase(r, N, V, D, { bias, rows: rows as number[] | undefined, scale: 3 });
        const F = facts(c, 1);
        const logits = rk.tensor(Float32Array.from(F.z), [...c.labels.shape, V]); // f32 logits
        for (const temperature of [1, 0.6]) {
          const want = rk.logprobs({ logits, labels: c.labels }, { entropy: true, temperature, backend: 'js' });
          const got = rk.linearLogprobs(c, { entropy: true, temperature, backend: 'js' });
          expect(got.logp.shape).toEqual(c.labels.shape);
          // the reference's logits are float64: equal up to the f32 rounding of the materialised logits
          const S = fwdScales(c, facts(c, temperature));
          expectClose(got.logp.data, want.logp.data, `logp ${N}x${V}x${D}`, { scale: S.sp, tol: 1e-6 });
          expectClose(got.lse.data, want.lse.data, `lse ${N}x${V}x${D}`, { scale: S.sl, tol: 1e-6 });
          expectClose(got.entropy!.data, want.entropy!.data, `entropy ${N}x${V}x${D}`, { scale: S.sh, tol: 1e-6 });
        }
      }
    }
  });

  it('hand case: D = 1, V = 2, h = 1, W = [0, log 3]: p = [1/4, 3/4]; gradients by hand', () => {
    const hidden = f32([1, 2], [2, 1]), weight = f32([0, Math.log(3)], [2, 1]);
    const labels = rk.tensor(Int32Array.from([1, -100]), [2]);
    for (const backend of ['js', ...nativeBackends()] as const) {
      const r = rk.linearLogprobs({ hidden, weight, labels }, { entropy: true, backend });
      expectClose(r.logp.data, [Math.log(0.75), 0], `${backend} logp`);
      expectClose(r.lse.data, [Math.log(4), 0], `${backend} lse`);
      const H = -(0.25 * Math.log(0.25) + 0.75 * Math.log(0.75));
      expectClose(r.entropy!.data, [H, 0], `${backend} entropy`);
      // dlogp/dlogits = (−1/4, 1/4); gradHidden = Σ_j dZ_j W_j = log(3)/4; gradWeight_j = dZ_j·h = (−1/4, 1/4)
      const g = rk.linearLogprobsBackward({ hidden, weight, labels, gradLogp: f32([1, 5], [2]) }, { backend });
      expectClose(g.gradHidden.data, [Math.log(3) / 4, 0], `${backend} gradHidden`);
      expectClose(g.gradWeight.data, [-0.25, 0.25], `${backend} gradWeight`);
      expect(g.gradBias).toBeUndefined();
    }
  });

  it('analytic gradients equal central finite differences in float64 (logp, entropy, hidden, weight, bias, temperature)', () => {
    const r = rng(77);
    const N = 4, V = 6, D = 3, tau = 0.8, step = 1e-5, ign = -100;
    const h = Float64Array.from(r.f32(N * D, 1)), w = Float64Array.from(r.f32(V * D, 1)), b = Float64Array.from(r.f32(V, 1));
    const labels = Int32Array.from([2, ign, 5, 0]);
    const gl = [0.7, -1.1, -0.4, 0.3], ge = [0.3, 0.9, -0.6, 0.2];
    const loss = (hh: Float64Array, ww: Float64Array, bb: Float64Array) => {
      const lp = F64(N), ls = F64(N), H = F64(N);
      lref.linearLogprobs({ h: hh, w: ww, b: bb, N, V, D }, labels, tau, ign, lp, ls, H);
      let s = 0;
      for (let i = 0; i < N; i++) s += gl[i] * lp[i] + ge[i] * H[i];
      return s;
    };
    const fd = (x: Float64Array, which: 0 | 1 | 2) => Float64Array.from(x, (_, i) => {
      const a = Float64Array.from(x), c = Float64Array.from(x);
      a[i] += step; c[i] -= step;
      const args = (y: Float64Array) => (which === 0 ? loss(y, w, b) : which === 1 ? loss(h, y, b) : loss(h, w, y));
      return (args(a) - args(c)) / (2 * step);
    });
    const gH = F64(N * D), gW = F64(V * D), gB = F64(V);
    lref.linearLogprobsBackward({ h, w, b, N, V, D }, labels, tau, ign, gl, ge, undefined, gH, gW, gB);
    for (const [got, want, name] of [[gH, fd(h, 0), 'hidden'], [gW, fd(w, 1), 'weight'], [gB, fd(b, 2), 'bias']] as const)
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i]), `${name}[${i}]`).toBeLessThan(1e-7);
    for (let k = 0; k < D; k++) expect(gH[1 * D + k]).toBe(0); // the ignored row
  });
});

/** Compares a native forward and backward with the js reference on one case. */
function checkCase(backend: 'cpu' | 'cuda', c: Case, what: string, o: { temperature?: number; chunk?: number; ignore?: number; entropy?: boolean } = {}) {
  const tau = o.temperature ?? 1, ignore = o.ignore ?? -100;
  const opt = { temperature: tau, chunk: o.chunk, ignoreIndex: ignore };
  const entropy = o.entropy ?? true;
  const want = rk.linearLogprobs(c, { ...opt, entropy, backend: 'js' });
  const rows = c.labels.shape;
  const out = { logp: poisoned(rows), lse: poisoned(rows), ...(entropy ? { entropy: poisoned(rows) } : {}) };
  const got = rk.linearLogprobs(c, { ...opt, entropy, backend, out });
  expect(got.logp).toBe(out.logp);
  const F = facts(c, tau);
  const S = fwdScales(c, F);
  expectClose(got.logp.data, want.logp.data, `logp ${what}`, { scale: S.sp });
  expectClose(got.lse.data, want.lse.data, `lse ${what}`, { scale: S.sl });
  if (entropy) expectClose(got.entropy!.data, want.entropy!.data, `entropy ${what}`, { scale: S.sh });
  const r = rng(c.N * 7 + c.V);
  const gradLogp = rk.tensor(r.f32(c.N), rows), gradEntropy = entropy ? rk.tensor(r.f32(c.N), rows) : undefined;
  const inp = { ...c, gradLogp, gradEntropy, lse: got.lse, entropy: got.entropy };
  const gw = rk.linearLogprobsBackward(inp, { ...opt, backend: 'js' });
  const gout = {
    gradHidden: poisoned(c.hidden.shape), gradWeight: poisoned([c.V, c.D]), ...(c.bias ? { gradBias: poisoned([c.V]) } : {}),
  };
  const gg = rk.linearLogprobsBackward(inp, { ...opt, backend, out: gout });
  expect(gg.gradHidden).toBe(gout.gradHidden);
  const B = bwdScales(c, F, tau, ignore, gradLogp.data, gradEntropy?.data);
  expectClose(gg.gradHidden.data, gw.gradHidden.data, `gradHidden ${what}`, { scale: B.sH });
  expectClose(gg.gradWeight.data, gw.gradWeight.data, `gradWeight ${what}`, { scale: B.sW });
  if (c.bias) expectClose(gg.gradBias!.data, gw.gradBias!.data, `gradBias ${what}`, { scale: B.sB });
  else expect(gg.gradBias).toBeUndefined();
  return { got, gg };
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 7, 7], [5, 33, 1], [3, 129, 4096], [4, 1000, 7], [9, 517, 64], [2, 32007, 7], [200, 1001, 64], [5, 2000, 1024],
  [130, 70, 33],
];

for (const backend of nativeBackends()) {
  describe(`linear [${backend}] vs js reference`, () => {
    it('linearLogprobs / linearLogprobsBackward: D ∈ {1, 7, 64, 4096}, V not a multiple of the chunk, N = 1, bias, τ, every SIMD level', () => {
      let si = 0;
      atEverySimdLevel((level) => {
        for (const [N, V, D] of SHAPES) {
          if (level !== 'avx512' && N * V * D > 3e6) continue;
          const r = rng(100 + si++);
          const c = makeCase(r, N, V, D, { bias: si % 2 === 0, scale: si % 3 === 0 ? 20 : 2 });
          const chunk = si % 4 === 1 ? 37 : undefined; // rounded up to the register tile: many chunks, a short last one
          checkCase(backend, c, `${level} ${N}x${V}x${D} chunk=${chunk}`, { temperature: si % 2 ? 1 : 0.7, chunk });
        }
      });
    });

    it('f16/bf16 hidden and weight: the f32 results on the decoded values; within 2e-3 of logprobs on logits materialised in that dtype', () => {
      for (const [N, V, D] of [[3, 7, 5], [6, 1000, 64], [2, 3001, 256]] as const) {
        for (const dtype of ['f16', 'bf16'] as const) {
          const r = rng(N * V + D);
          const c = makeCase(r, N, V, D, { dtype, bias: true, scale: 1 });
          checkCase(backend, c, `${dtype} ${N}x${V}x${D}`);
          // against the all-16-bit pipeline: logits = h·Wᵀ + b rounded to the dtype, then logprobs
          const F = facts(c, 1);
          const logits = half(Float32Array.from(F.z), [N, V], dtype);
          const want = rk.logprobs({ logits, labels: c.labels }, { entropy: true, backend });
          const got = rk.linearLogprobs(c, { entropy: true, backend });
          // logp and lse within 2e-3 relative; the entropy, a p-weighted sum of every logit's
          // 16-bit rounding (2^-9 relative for bf16), within 5e-3
          for (const k of ['logp', 'lse', 'entropy'] as const)
            expectClose(got[k]!.data, want[k]!.data, `${dtype} ${k} vs 16-bit logits`, { tol: k === 'entropy' ? 5e-3 : 2e-3 });
          // f32 copies of the decoded inputs give the same results (widening is exact)
          const c32 = { ...c, hidden: rk.tensor(Float32Array.from(readFloat(c.hidden)), [N, D]), weight: rk.tensor(Float32Array.from(readFloat(c.weight)), [V, D]) };
          const a = rk.linearLogprobs(c, { entropy: true, backend }), b = rk.linearLogprobs(c32, { entropy: true, backend });
          if (backend === 'cpu') expect(Array.from(a.logp.data)).toEqual(Array.from(b.logp.data));
          else expectClose(a.logp.data, b.logp.data, `${dtype} vs f32 copy`, { scale: fwdScales(c, F).sp });
        }
      }
    });

    it('equals logprobs / logprobsBackward on the materialised f32 logits (chained through W and h)', () => {
      const r = rng(5);
      const c = makeCase(r, 40, 777, 96, { bias: true, scale: 4 });
      const F = facts(c, 0.9);
      const logits = rk.tensor(Float32Array.from(F.z, (v) => v * 0.9), [40, 777]);
      const want = rk.logprobs({ logits, labels: c.labels }, { temperature: 0.9, entropy: true, backend });
      const got = rk.linearLogprobs(c, { temperature: 0.9, entropy: true, backend });
      const S = fwdScales(c, F);
      expectClose(got.logp.data, want.logp.data, 'logp', { scale: S.sp });
      expectClose(got.entropy!.data, want.entropy!.data, 'entropy', { scale: S.sh });
      const gradLogp = rk.tensor(r.f32(40), [40]);
      const gz = rk.logprobsBackward({ logits, labels: c.labels, gradLogp, lse: want.lse }, { temperature: 0.9, backend }).gradLogits.data;
      const g = rk.linearLogprobsBackward({ ...c, gradLogp, lse: got.lse }, { temperature: 0.9, backend });
      const w = F.w, h = F.h;
      const gH = new Float64Array(40 * 96), gB = new Float64Array(777);
      for (let i = 0; i < 40; i++) for (let j = 0; j < 777; j++) {
        const d = gz[i * 777 + j];
        gB[j] += d;
        for (let k = 0; k < 96; k++) gH[i * 96 + k] += d * w[j * 96 + k];
      }
      const B = bwdScales(c, F, 0.9, -100, gradLogp.data);
      expectClose(g.gradHidden.data, gH, 'gradHidden = gradLogits·W', { scale: B.sH });
      expectClose(g.gradBias!.data, gB, 'gradBias = Σ_i gradLogits', { scale: B.sB });
      let k = 0;
      for (let j = 0; j < 777; j += 97) for (let d = 0; d < 96; d += 13, k++) {
        let s = 0;
        for (let i = 0; i < 40; i++) s += gz[i * 777 + j] * h[i * 96 + d];
        expectClose([g.gradWeight.data[j * 96 + d]], [s], `gradWeight[${j},${d}] = Σ_i gradLogits·h`, { scale: B.sW[j * 96 + d] });
      }
      expect(k).toBeGreaterThan(0);
    });

    it('ignored rows are never read (NaN/Inf hidden there changes nothing), get 0 and zero gradient; NaN confined to its row', () => {
      const r = rng(9);
      const [Bt, T, V, D] = [3, 5, 300, 40];
      const c = makeCase(r, Bt * T, V, D, { rows: [Bt, T], ignore: -1, bias: true });
      const lab = c.labels.data as Int32Array;
      const hd = c.hidden.data as Float32Array;
      const clean = rk.linearLogprobs(c, { entropy: true, ignoreIndex: -1, backend });
      for (let i = 0; i < Bt * T; i++) if (lab[i] === -1) for (let k = 0; k < D; k++) hd[i * D + k] = k % 2 ? NaN : Infinity;
      hd[2 * D + 5] = NaN; // a counted row with a NaN
      const got = rk.linearLogprobs(c, { entropy: true, ignoreIndex: -1, backend });
      for (const k of ['logp', 'lse', 'entropy'] as const) {
        for (let i = 0; i < Bt * T; i++) {
          if (lab[i] === -1) expect(got[k]!.data[i]).toBe(0);
          else if (i === 2) expect(Number.isNaN(got[k]!.data[i]), `${k}[2]`).toBe(true);
          else expect(got[k]!.data[i], `${k}[${i}]`).toBe(clean[k]!.data[i]);
        }
      }
      hd[2 * D + 5] = 0.5;
      const gradLogp = rk.tensor(r.f32(Bt * T), [Bt, T]);
      const g = rk.linearLogprobsBackward({ ...c, gradLogp }, { ignoreIndex: -1, backend, out: { gradHidden: poisoned(c.hidden.shape) } });
      for (let i = 0; i < Bt * T; i++) {
        const row = g.gradHidden.data.subarray(i * D, (i + 1) * D);
        expect(row.every((v) => (lab[i] === -1 ? v === 0 : Number.isFinite(v))), `gradHidden row ${i}`).toBe(true);
      }
      expect(g.gradWeight.data.every(Number.isFinite)).toBe(true);
      // the same gradients as with the clean hidden states in the ignored rows
      for (let i = 0; i < Bt * T; i++) if (lab[i] === -1) for (let k = 0; k < D; k++) hd[i * D + k] = 0;
      const g0 = rk.linearLogprobsBackward({ ...c, gradLogp }, { ignoreIndex: -1, backend });
      expect(Array.from(g.gradWeight.data)).toEqual(Array.from(g0.gradWeight.data));
      expect(Array.from(g.gradBias!.data)).toEqual(Array.from(g0.gradBias!.data));
    });

    it('all rows ignored: zeros everywhere; N = 0: empty outputs', () => {
      const r = rng(2);
      const c = makeCase(r, 4, 50, 8, { bias: true });
      const labels = rk.tensor(new Int32Array(4).fill(-100), [4]);
      const f = rk.linearLogprobs({ ...c, labels }, { entropy: true, backend });
      expect(Array.from(f.logp.data)).toEqual([0, 0, 0, 0]);
      const g = rk.linearLogprobsBackward({ ...c, labels, gradLogp: f32([1, 1, 1, 1], [4]) }, {
        backend, out: { gradHidden: poisoned([4, 8]), gradWeight: poisoned([50, 8]), gradBias: poisoned([50]) },
      });
      for (const t of [g.gradHidden, g.gradWeight, g.gradBias!]) expect(t.data.every((v) => v === 0)).toBe(true);
      const e = makeCase(r, 0, 5, 3);
      expect(rk.linearLogprobs(e, { backend }).logp.data.length).toBe(0);
      const ge = rk.linearLogprobsBackward({ ...e, gradLogp: rk.tensor(new Float32Array(0), [0]) }, { backend });
      expect(ge.gradWeight.data.every((v) => v === 0)).toBe(true);
    });

    it('lse / entropy omitted in the backward: recomputed, same gradients; chunk sizes and threads do not change results', () => {
      const r = rng(12);
      const c = makeCase(r, 150, 1500, 48, { bias: true, scale: 3 });
      const fw = rk.linearLogprobs(c, { entropy: true, backend });
      const gradLogp = rk.tensor(r.f32(150), [150]), gradEntropy = rk.tensor(r.f32(150), [150]);
      const full = rk.linearLogprobsBackward({ ...c, gradLogp, gradEntropy, lse: fw.lse, entropy: fw.entropy }, { backend });
      const F = facts(c, 1);
      const S = fwdScales(c, F), B = bwdScales(c, F, 1, -100, gradLogp.data, gradEntropy.data);
      const th = rk.backends().threads;
      const variants: [string, () => rk.LinearLogprobsBackwardResult][] = [
        ['recomputed', () => rk.linearLogprobsBackward({ ...c, gradLogp, gradEntropy }, { backend })],
        ['chunk 32', () => rk.linearLogprobsBackward({ ...c, gradLogp, gradEntropy, lse: fw.lse, entropy: fw.entropy }, { chunk: 32, backend })],
        ['chunk 4096', () => rk.linearLogprobsBackward({ ...c, gradLogp, gradEntropy, lse: fw.lse, entropy: fw.entropy }, { chunk: 4096, backend })],
        ['1 thread', () => { rk.setThreads(1); try { return rk.linearLogprobsBackward({ ...c, gradLogp, gradEntropy, lse: fw.lse, entropy: fw.entropy }, { backend }); } finally { rk.setThreads(th); } }],
      ];
      for (const [name, run] of variants) {
        const g = run();
        expectClose(g.gradHidden.data, full.gradHidden.data, `${name} gradHidden`, { scale: B.sH });
        expectClose(g.gradWeight.data, full.gradWeight.data, `${name} gradWeight`, { scale: B.sW });
        expectClose(g.gradBias!.data, full.gradBias!.data, `${name} gradBias`, { scale: B.sB });
      }
      for (const chunk of [1, 100, 1499, 1500, 100000]) {
        const f = rk.linearLogprobs(c, { entropy: true, chunk, backend });
        expectClose(f.logp.data, fw.logp.data, `chunk ${chunk} logp`, { scale: S.sp });
        expectClose(f.entropy!.data, fw.entropy!.data, `chunk ${chunk} entropy`, { scale: S.sh });
      }
      rk.setThreads(1);
      try {
        const f1 = rk.linearLogprobs(c, { entropy: true, backend });
        expectClose(f1.lse.data, fw.lse.data, '1 thread lse', { scale: S.sl });
      } finally {
        rk.setThreads(th);
      }
    });

    it('−inf bias entries (a padded vocabulary) count 0; a label there gives −inf', () => {
      const r = rng(4);
      const c = makeCase(r, 6, 80, 16, { bias: true });
      const b = c.bias!.data as Float32Array;
      for (let j = 60; j < 80; j++) b[j] = -Infinity;
      const lab = c.labels.data as Int32Array;
      for (let i = 0; i < 6; i++) if (lab[i] >= 60) lab[i] = i;
      lab[0] = 70;
      const want = rk.linearLogprobs(c, { entropy: true, backend: 'js' });
      const got = rk.linearLogprobs(c, { entropy: true, backend });
      expect(got.logp.data[0]).toBe(-Infinity);
      const S = fwdScales(c, facts(c, 1));
      expectClose(got.lse.data, want.lse.data, 'lse', { scale: S.sl });
      expectClose(got.entropy!.data, want.entropy!.data, 'entropy', { scale: S.sh });
      const g = rk.linearLogprobsBackward({ ...c, labels: rk.tensor(Int32Array.from(lab, (y, i) => (i === 0 ? 1 : y)), [6]), gradLogp: f32([1, 1, 1, 1, 1, 1], [6]) }, { backend });
      expect(g.gradHidden.data.every(Number.isFinite)).toBe(true);
      for (let j = 60; j < 80; j++) expect(g.gradBias!.data[j]).toBe(0);
    });
  });
}

// ---- linearPreferenceLoss ----------------------------------------------------------------------

const PER = ['losses', 'gradPolicyChosen', 'gradPolicyRejected', 'chosenRewards', 'rejectedRewards', 'margins', 'gradPolicyExplore'] as const;

/** hidden [2B,T,D], weight, bias, labels, a mask with holes (every row keeps a counted token), per-type inputs. */
function prefCase(v: string, B: number, T: number, V: number, D: number, seed: number, dtype: DT = 'f32') {
  const r = rng(seed);
  const R = 2 * B, N = R * T;
  const mask = r.mask(R, T);
  const labels = Int32Array.from({ length: N }, () => r.int(0, V - 1));
  for (let i = 0; i < N; i++) if (!mask[i] && r.next() < 0.3) labels[i] = -7; // never validated or read
  for (let row = 0; row < R; row++) { mask[row * T] = 1; labels[row * T] = row % V; }
  const hd = r.f32(N * D, 1);
  for (let i = 0; i < N; i++) if (!mask[i]) hd[i * D] = NaN; // uncounted tokens: never read
  const t = typeOf(v);
  const avg = t === 'orpo' || t === 'simpo';
  const inp: any = {
    hidden: half(hd, [R, T, D], dtype), weight: half(r.f32(V * D, 2 / Math.sqrt(D)), [V, D], dtype), bias: rk.tensor(r.f32(V, 1), [V]),
    labels: rk.tensor(labels, [R, T]), mask: rk.tensor(mask, [R, T]),
  };
  if (!avg) inp.refLogp = rk.tensor(r.f32(R, 3, -T * Math.log(V)), [R]);
  if (t === 'inpo') inp.prevLogp = rk.tensor(r.f32(R, 3, -T * Math.log(V)), [R]);
  if (t === 'xpo') inp.policyExplore = rk.tensor(r.f32(B, 3, -30), [B]);
  if (t === 'dno') inp.preferenceProb = rk.tensor(r.uniform(B), [B]);
  return inp;
}

/** The composition linearLogprobs → sequenceLogprobs → preferenceLoss → linearLogprobsBackward. */
function composition(v: string, inp: any, o: any, backend: 'js' | 'cpu' | 'cuda') {
  const lin = (labels: rk.Tensor) => ({ hidden: inp.hidden, weight: inp.weight, bias: inp.bias, labels });
  return prefComposition(v, inp, o, backend,
    (labels) => rk.linearLogprobs(lin(labels), { temperature: o.temperature, backend }),
    (labels, gradLogp, fw) => rk.linearLogprobsBackward({ ...lin(labels), gradLogp, lse: fw.lse }, { temperature: o.temperature, backend }));
}

function comparePref(got: any, want: any, what: string, tol: number) {
  for (const k of PER) {
    if (want[k] === undefined) { expect(got[k], `${what} ${k}`).toBeUndefined(); continue; }
    const sc = Math.max(...Array.from(want[k].data as Float32Array, Math.abs));
    expectClose(got[k].data, want[k].data, `${what} ${k}`, { tol, scale: sc });
  }
  for (const k of ['gradHidden', 'gradWeight', 'gradBias']) {
    const sc = Math.max(1e-30, ...Array.from(want[k].data as Float32Array, Math.abs));
    // |Δ| ≤ tol·(largest gradient element): rounding of sums whose terms are of that size
    expectClose(Array.from(got[k].data as Float32Array, (x) => x / sc), Array.from(want[k].data as Float32Array, (x) => x / sc), `${what} ${k}`, { tol, scale: 0 });
  }
  expectClose([got.loss], [want.loss], `${what} loss`, { tol });
  expect(got.accuracy, `${what} accuracy`).toBe(want.accuracy);
}

describe('linearPreferenceLoss: float64 reference', () => {
  it('finite differences of the mean loss w.r.t. hidden, weight and bias (dpo, orpo, ipo + lengthNormalize)', () => {
    for (const v of ['dpo', 'orpo', 'ipoLN']) {
      const B = 2, T = 3, V = 5, D = 3, step = 1e-6;
      const inp = prefCase(v, B, T, V, D, 17);
      const x = { h: Float64Array.from(inp.hidden.data, (d: number) => (Number.isNaN(d) ? 0 : d)), w: Float64Array.from(inp.weight.data), b: Float64Array.from(inp.bias.data), N: 2 * B * T, V, D };
      const t = typeOf(v);
      const P = { beta: 0.1, epsilon: 0, eta: 0, alpha: 0, tau: 0, gamma: 0, ...OPTS[v] } as pref.PrefParams;
      const arrays = { labels: inp.labels.data, mask: inp.mask.data, refLogp: inp.refLogp?.data };
      const outs = () => ({
        losses: F64(B), gc: F64(B), gr: F64(B), cr: F64(B), rj: F64(B), margins: F64(B), gx: F64(B),
        gradHidden: F64(x.N * D), gradWeight: F64(V * D), gradBias: F64(V),
      });
      const lossAt = (h: Float64Array, w: Float64Array, b: Float64Array) =>
        lref.linearPreferenceLoss(t, B, T, { ...x, h, w, b }, arrays, P, v === 'ipoLN', 1, -100, outs())[0];
      const o = outs();
      lref.linearPreferenceLoss(t, B, T, x, arrays, P, v === 'ipoLN', 1, -100, o);
      for (const [arr, g, name] of [[x.h, o.gradHidden, 'hidden'], [x.w, o.gradWeight, 'weight'], [x.b, o.gradBias, 'bias']] as const) {
        for (let i = 0; i < arr.length; i++) {
          const a = Float64Array.from(arr), c = Float64Array.from(arr);
          a[i] += step; c[i] -= step;
          const f = (y: Float64Array) => (name === 'hidden' ? lossAt(y, x.w, x.b) : name === 'weight' ? lossAt(x.h, y, x.b) : lossAt(x.h, x.w, y));
          const fd = (f(a) - f(c)) / (2 * step);
          expect(Math.abs(g[i] - fd), `${v} ${name}[${i}]: ${g[i]} vs ${fd}`).toBeLessThan(1e-6 * (1 + Math.abs(fd)));
        }
      }
    }
  });
});

for (const backend of nativeBackends()) {
  describe(`linearPreferenceLoss [${backend}]`, () => {
    it('equals the composition linearLogprobs → sequenceLogprobs → preferenceLoss → linearLogprobsBackward (every type)', () => {
      for (const [si, [B, T, V, D]] of ([[1, 1, 5, 3], [1, 7, 33, 16], [3, 5, 300, 64], [2, 9, 1031, 40]] as const).entries()) {
        for (const v of VARIANTS) {
          const inp = prefCase(v, B, T, V, D, 300 + si * 31 + v.length);
          const o = { ...OPTS[v], type: typeOf(v), temperature: si === 2 ? 0.7 : 1 };
          const want = composition(v, inp, o, backend);
          const got = rk.linearPreferenceLoss(inp, { ...o, backend } as any);
          comparePref(got, want, `${B}x${T}x${V}x${D} ${v}`, 1e-5);
        }
      }
    });

    it('native vs js reference: every type, f16/bf16 inputs, poisoned outputs, every SIMD level', () => {
      atEverySimdLevel((level) => {
        for (const [si, [B, T, V, D, dtype]] of ([[1, 3, 7, 5, 'f32'], [2, 4, 64, 33, 'bf16'], [2, 3, 257, 8, 'f16']] as const).entries()) {
          for (const v of VARIANTS) {
            if (level !== 'avx512' && v !== 'dpo' && v !== 'orpo') continue;
            const inp = prefCase(v, B, T, V, D, 900 + si * 13 + v.length, dtype);
            const o = { ...OPTS[v], type: typeOf(v) };
            const want = rk.linearPreferenceLoss(inp, { ...o, backend: 'js' } as any);
            const out = { gradHidden: poisoned(inp.hidden.shape), gradWeight: poisoned([V, D]), gradBias: poisoned([V]), losses: poisoned([B]) };
            const got = rk.linearPreferenceLoss(inp, { ...o, backend, out } as any);
            expect(got.gradHidden).toBe(out.gradHidden);
            comparePref(got, want, `${level} ${B}x${T}x${V}x${D} ${dtype} ${v}`, 2e-5);
            const lab = inp.labels.data, m = inp.mask.data;
            for (let i = 0; i < lab.length; i++)
              if (!m[i]) expect(got.gradHidden.data.subarray(i * D, (i + 1) * D).every((g: number) => g === 0), `uncounted row ${i}`).toBe(true);
          }
        }
      });
    });
  });
}

// ---- PPO from hidden states ---------------------------------------------------------------------

describe('ppoPolicyLoss from hidden states: linearLogprobs → ppoPolicyLoss → linearLogprobsBackward', () => {
  const B = 3, T = 4, V = 37, D = 6, N = B * T;
  const r = rng(21);
  const c = makeCase(r, N, V, D, { rows: [B, T], bias: true, scale: 2 });
  const mask = rk.tensor(r.mask(B, T), [B, T]);
  const lab = c.labels.data as Int32Array;
  for (let i = 0; i < N; i++) if (lab[i] === -100) (mask.data as Uint8Array)[i] = 0; // the prompt / padding tokens
  const oldLogp = rk.tensor(r.f32(N, 0.3, -3), [B, T]);
  const advantages = rk.tensor(r.f32(N, 1), [B, T]);
  const po = { clipLow: 0.2, clipHigh: 0.28, dualClip: 3 };

  it('float64: the chained gradient equals finite differences of the PPO loss w.r.t. hidden and weight', () => {
    const x = { h: Float64Array.from(readFloat(c.hidden)), w: Float64Array.from(readFloat(c.weight)), b: Float64Array.from(c.bias!.data), N, V, D };
    const m = mask.data as Uint8Array;
    const lossOf = (h: Float64Array, w: Float64Array) => {
      const lp = F64(N), ls = F64(N);
      lref.linearLogprobs({ ...x, h, w }, lab, 1, -100, lp, ls, undefined);
      const g = F64(N);
      return ppoRef.ppoPolicyLoss(lp, oldLogp.data, advantages.data, undefined, m, g, B, T, { ...po, klCoef: 0, klEstimator: undefined, aggregation: 'token-mean', normalizer: undefined }).loss;
    };
    const lp = F64(N), ls = F64(N), gl = F64(N);
    lref.linearLogprobs(x, lab, 1, -100, lp, ls, undefined);
    ppoRef.ppoPolicyLoss(lp, oldLogp.data, advantages.data, undefined, m, gl, B, T, { ...po, klCoef: 0, klEstimator: undefined, aggregation: 'token-mean', normalizer: undefined });
    const gH = F64(N * D), gW = F64(V * D);
    lref.linearLogprobsBackward(x, lab, 1, -100, gl, undefined, ls, gH, gW, undefined);
    const step = 1e-6;
    for (const [arr, g, which] of [[x.h, gH, 0], [x.w, gW, 1]] as const) {
      for (let i = 0; i < arr.length; i += 3) {
        const a = Float64Array.from(arr), b = Float64Array.from(arr);
        a[i] += step; b[i] -= step;
        const fd = which === 0 ? (lossOf(a, x.w) - lossOf(b, x.w)) / (2 * step) : (lossOf(x.h, a) - lossOf(x.h, b)) / (2 * step);
        expect(Math.abs(g[i] - fd), `${which ? 'weight' : 'hidden'}[${i}]`).toBeLessThan(1e-6 * (1 + Math.abs(fd)));
      }
    }
  });

  for (const backend of nativeBackends()) {
    it(`[${backend}] the native composition equals the js one`, () => {
      const run = (be: 'js' | 'cpu' | 'cuda') => {
        const f = rk.linearLogprobs(c, { backend: be });
        const p = rk.ppoPolicyLoss({ logp: f.logp, oldLogp, advantages, mask }, { ...po, backend: be });
        return { p, g: rk.linearLogprobsBackward({ ...c, gradLogp: p.gradLogp, lse: f.lse }, { backend: be }) };
      };
      const want = run('js'), got = run(backend);
      expectClose([got.p.loss], [want.p.loss], 'loss', { scale: 10 });
      const F = facts(c, 1);
      const S = bwdScales(c, F, 1, -100, want.p.gradLogp.data);
      expectClose(got.g.gradHidden.data, want.g.gradHidden.data, 'gradHidden', { scale: Float64Array.from(S.sH, (s) => 10 * s) });
      expectClose(got.g.gradWeight.data, want.g.gradWeight.data, 'gradWeight', { scale: Float64Array.from(S.sW, (s) => 10 * s) });
    });
  }
});

// ---- errors ---------------------------------------------------------------------------------------

describe('linear: errors', () => {
  const r = rng(3);
  const c = makeCase(r, 4, 10, 3, { bias: true });
  for (const backend of ['js', ...nativeBackends()] as const) {
    it(`[${backend}] documented errors`, () => {
      const L = (i: any, o: any = {}) => () => rk.linearLogprobs(i, { backend, ...o });
      expect(L({ ...c, hidden: undefined })).toThrow(TypeError);
      expect(L({ ...c, weight: undefined })).toThrow(/missing input 'weight'/);
      expect(L({ ...c, labels: undefined })).toThrow(TypeError);
      expect(L({ ...c, hidden: rk.tensor(new Int32Array(12), [4, 3]) })).toThrow(TypeError);
      expect(L({ ...c, weight: rk.tensor(new Uint16Array(30), [10, 3], 'bf16') })).toThrow(/dtype of 'hidden'/);
      expect(L({ ...c, weight: rk.tensor(new Float32Array(40), [10, 4]) })).toThrow(RangeError);
      expect(L({ ...c, weight: rk.tensor(new Float32Array(0), [0, 3]) })).toThrow(RangeError);
      expect(L({ ...c, hidden: rk.tensor(new Float32Array(0), [4, 0]), weight: rk.tensor(new Float32Array(0), [10, 0]) })).toThrow(RangeError);
      expect(L({ ...c, hidden: rk.tensor(new Float32Array(12), [12]) })).toThrow(RangeError);
      expect(L({ ...c, bias: rk.tensor(new Float32Array(9), [9]) })).toThrow(RangeError);
      expect(L({ ...c, labels: rk.tensor(Int32Array.from([0, 1, 10, 2]), [4]) })).toThrow(/labels\[2\] = 10/);
      expect(L({ ...c, labels: rk.tensor(Int32Array.from([0, 1, -5, 2]), [4]) })).toThrow(RangeError);
      expect(L({ ...c, labels: rk.tensor(Int32Array.from([0, 1, 2]), [3]) })).toThrow(RangeError);
      expect(L(c, { temperature: 0 })).toThrow(RangeError);
      expect(L(c, { temperature: 1e-46 })).toThrow(RangeError);
      expect(L(c, { temperature: NaN })).toThrow(RangeError);
      expect(L(c, { chunk: -1 })).toThrow(RangeError);
      expect(L(c, { chunk: 1.5 })).toThrow(RangeError);
      expect(L(c, { chunk: '8' })).toThrow(TypeError);
      expect(L(c, { ignoreIndex: 0.5 })).toThrow(RangeError);
      expect(L(c, { out: { logp: rk.tensor(new Float64Array(4), [4]) } })).toThrow(TypeError);
      const gl = rk.tensor(new Float32Array(4), [4]);
      const G = (i: any, o: any = {}) => () => rk.linearLogprobsBackward(i, { backend, ...o });
      expect(G({ ...c })).toThrow(/missing input 'gradLogp'/);
      expect(G({ ...c, gradLogp: rk.tensor(new Float32Array(3), [3]) })).toThrow(RangeError);
      expect(G({ ...c, gradLogp: gl, lse: rk.tensor(new Float32Array(5), [5]) })).toThrow(RangeError);
      expect(G({ ...c, gradLogp: gl }, { out: { gradWeight: rk.tensor(new Float32Array(30), [3, 10]) } })).toThrow(RangeError);
      const P = (i: any, o: any = {}) => () => rk.linearPreferenceLoss(i, { type: 'dpo', beta: 0.1, backend, ...o });
      const inp = prefCase('dpo', 1, 2, 10, 3, 5);
      expect(P({ ...inp, hidden: rk.tensor(new Float32Array(9), [3, 1, 3]) })).toThrow(RangeError);
      expect(P({ ...inp, hidden: rk.tensor(new Float32Array(12), [4, 3]) })).toThrow(RangeError);
      expect(P({ ...inp, refLogp: undefined })).toThrow(TypeError);
      expect(P(inp, { type: 'nope' })).toThrow(RangeError);
      expect(P(inp, { beta: -1 })).toThrow(RangeError);
      expect(P({ ...inp, labels: rk.tensor(Int32Array.from([0, 11, 1, 1]), [2, 2]) })).toThrow(RangeError);
      expect(rk.linearPreferenceLoss(inp, { type: 'dpo', beta: 0.1, backend }).gradHidden.shape).toEqual([2, 2, 3]);
    });
  }
  it('backend cuda where none exists: Error saying why', () => {
    if (rk.backends().cuda.available) return;
    expect(() => rk.linearLogprobs(c, { backend: 'cuda' })).toThrow(/cuda/i);
  });
});
