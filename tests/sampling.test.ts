/** Sampling family (SPEC §7): native vs the float64 reference, hand cases, edge cases, errors, fuzz. */
import { describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { native } from '../ts/native.js';
import { atEverySimdLevel, expectClose, f32, nativeBackends, rng, SHAPES_2D } from './helpers.js';

type R = ReturnType<typeof rng>;
const ALL = ['js', ...nativeBackends()] as const;
const i32 = (data: ArrayLike<number>, shape: number[]) => rk.tensor(Int32Array.from(data), shape, 'i32');
const poisonedI32 = (shape: number[], v = -7) => rk.tensor(new Int32Array(shape.reduce((a, b) => a * b, 1)).fill(v), shape, 'i32');

/** A random distribution over V (f32), with some exact zeros when `zeros`. */
function dist(r: R, V: number, zeros: boolean): Float32Array {
  const w = Float64Array.from({ length: V }, () => (zeros && r.next() < 0.3 ? 0 : Math.exp(2 * r.normal())));
  if (w.every((x) => x === 0)) w[r.int(0, V - 1)] = 1;
  const s = w.reduce((a, b) => a + b, 0);
  return Float32Array.from(w, (x) => x / s);
}
function sampleFrom(r: R, p: ArrayLike<number>): number {
  let u = r.next(), c = 0;
  for (let t = 0; t < p.length; t++) if (u < (c += p[t]) ) return t;
  for (let t = p.length - 1; t >= 0; t--) if (p[t] > 0) return t;
  return 0;
}

/** Speculative-decoding inputs: q random, p a mix of q and another distribution (so acceptance varies). */
function specInputs(B: number, K: number, V: number, seed: number): Record<'draftTokens' | 'draftProbs' | 'targetProbs' | 'uniforms', rk.Tensor> {
  const r = rng(seed);
  const q = new Float32Array(B * K * V), p = new Float32Array(B * (K + 1) * V), tok = new Int32Array(B * K);
  for (let b = 0; b < B; b++) {
    const mix = [0, 0.1, 0.5, 0.9, 1][b % 5];
    for (let i = 0; i <= K; i++) {
      const other = dist(r, V, b % 3 === 1);
      if (i < K) {
        const qi = dist(r, V, b % 2 === 1);
        q.set(qi, (b * K + i) * V);
        for (let t = 0; t < V; t++) p[(b * (K + 1) + i) * V + t] = (1 - mix) * qi[t] + mix * other[t];
        tok[b * K + i] = sampleFrom(r, qi);
      } else p.set(other, (b * (K + 1) + K) * V);
    }
  }
  return {
    draftTokens: i32(tok, [B, K]),
    draftProbs: rk.tensor(q, [B, K, V]),
    targetProbs: rk.tensor(p, [B, K + 1, V]),
    uniforms: rk.tensor(r.uniform(B * (K + 1)), [B, K + 1]),
  };
}

const SPEC_SHAPES: [number, number, number][] = [
  [1, 0, 1], [1, 1, 1], [2, 1, 2], [3, 2, 5], [4, 4, 7], [5, 3, 33], [2, 8, 257], [6, 5, 1000], [7, 2, 1031], [3, 3, 4099], [11, 1, 300],
];

for (const backend of nativeBackends()) {
  describe(`sampling [${backend}] vs js reference`, () => {
    it('speculativeVerify: identical integers on many shapes, every SIMD level, poisoned outputs', () => {
      atEverySimdLevel((level) => {
        for (const [si, [B, K, V]] of SPEC_SHAPES.entries()) {
          for (const rep of [0, 1, 2]) {
            const x = specInputs(B, K, V, 1000 + 10 * si + rep);
            if (rep === 2) { // draft tokens anywhere in [0, V): q(Y) = 0 and p(Y) = 0 occur
              const r = rng(si);
              x.draftTokens = i32(Array.from({ length: B * K }, () => r.int(0, V - 1)), [B, K]);
            }
            const want = rk.speculativeVerify(x, { backend: 'js' });
            const out = { accepted: poisonedI32([B]), nextToken: poisonedI32([B]) };
            const got = rk.speculativeVerify(x, { backend, out });
            expect(got.accepted).toBe(out.accepted);
            expect(got.nextToken.dtype).toBe('i32');
            expect(Array.from(got.accepted.data), `${level} ${B}x${K}x${V} accepted`).toEqual(Array.from(want.accepted.data));
            expect(Array.from(got.nextToken.data), `${level} ${B}x${K}x${V} nextToken`).toEqual(Array.from(want.nextToken.data));
            for (const t of got.nextToken.data) expect(t >= 0 && t < V).toBe(true);
          }
        }
      });
    });

    it('speculativeVerify: many uniforms on a single row agree exactly (boundaries included)', () => {
      const r = rng(5);
      const B = 400, K = 2, V = 9;
      const x = specInputs(B, K, V, 77);
      // uniforms on a 1/64 grid hit CDF values of dyadic rows exactly
      const u = Float32Array.from({ length: B * (K + 1) }, () => r.int(0, 63) / 64);
      const p = Float32Array.from({ length: B * (K + 1) * V }, () => r.int(0, 8) / 64);
      const q = Float32Array.from({ length: B * K * V }, () => r.int(0, 8) / 64);
      const xs = { ...x, uniforms: rk.tensor(u, [B, K + 1]), targetProbs: rk.tensor(p, [B, K + 1, V]), draftProbs: rk.tensor(q, [B, K, V]) };
      // rows whose drawn distribution has zero mass raise; make every p row non-zero
      for (let i = 0; i < B * (K + 1); i++) p[i * V + (i % V)] += 1 / 64;
      const want = rk.speculativeVerify(xs, { backend: 'js' });
      const got = rk.speculativeVerify(xs, { backend });
      expect(Array.from(got.accepted.data)).toEqual(Array.from(want.accepted.data));
      expect(Array.from(got.nextToken.data)).toEqual(Array.from(want.nextToken.data));
    });

    it('speculativeVerify: f64 inputs are rounded to f32 once; thread count does not change results', () => {
      const x = specInputs(40, 4, 600, 9);
      const x64 = { ...x, draftProbs: rk.tensor(Float64Array.from(x.draftProbs.data), [40, 4, 600]) };
      const a = rk.speculativeVerify(x64, { backend }), b = rk.speculativeVerify(x, { backend });
      expect(Array.from(a.nextToken.data)).toEqual(Array.from(b.nextToken.data));
      if (backend === 'cpu') {
        const th = rk.backends().threads;
        rk.setThreads(1);
        const c = rk.speculativeVerify(x, { backend });
        rk.setThreads(th);
        expect(Array.from(c.nextToken.data)).toEqual(Array.from(b.nextToken.data));
        expect(Array.from(c.accepted.data)).toEqual(Array.from(b.accepted.data));
      }
    });

    it('specDecStop: identical lengths on random inputs and options', () => {
      const r = rng(3);
      for (const [B, K] of SHAPES_2D) {
        const P = Float32Array.from({ length: B * K }, () => (r.next() < 0.1 ? 1 : r.next() < 0.1 ? 0 : 0.6 + 0.4 * r.next()));
        for (const o of [{}, { threshold: 0, minLength: 0, maxLength: 3 }, { threshold: 1 }, { threshold: 0.5, minLength: 1, maxLength: 1000 }]) {
          const want = rk.specDecStop({ acceptProbs: rk.tensor(P, [B, K]) }, { ...o, backend: 'js' }).length;
          const out = { length: poisonedI32([B]) };
          const got = rk.specDecStop({ acceptProbs: rk.tensor(P, [B, K]) }, { ...o, backend, out }).length;
          expect(got).toBe(out.length);
          expect(Array.from(got.data), `${B}x${K} ${JSON.stringify(o)}`).toEqual(Array.from(want.data));
        }
      }
    });

    it('geometricMixture: every dtype pair, several β, many shapes, every SIMD level', () => {
      atEverySimdLevel((level) => {
        for (const [si, [N, V]] of SHAPES_2D.entries()) {
          const r = rng(400 + si);
          const z = r.f32(N * V, 3), zr = r.f32(N * V, 3, 1);
          const variants: [string, rk.Tensor, rk.Tensor][] = [
            ['f32', rk.tensor(z, [N, V]), rk.tensor(zr, [N, V])],
            ['bf16/f16', rk.tensor(Uint16Array.from(z, rk.floatToBf16), [N, V], 'bf16'), rk.tensor(Uint16Array.from(zr, rk.floatToF16), [N, V], 'f16')],
            ['f16/f32', rk.tensor(Uint16Array.from(z, rk.floatToF16), [N, V], 'f16'), rk.tensor(zr, [N, V])],
            ['f64/bf16', rk.tensor(Float64Array.from(z), [N, V]), rk.tensor(Uint16Array.from(zr, rk.floatToBf16), [N, V], 'bf16')],
          ];
          for (const [name, logits, refLogits] of variants) {
            if (level !== 'avx512' && name !== 'f32' && si % 2) continue; // keep the lower levels quick
            for (const beta of [0, 0.25, 0.5, 1]) {
              const want = rk.geometricMixture({ logits, refLogits }, { beta, backend: 'js' }).logp;
              const out = { logp: rk.tensor(new Float32Array(N * V).fill(NaN), [N, V]) };
              const got = rk.geometricMixture({ logits, refLogits }, { beta, backend, out }).logp;
              expect(got).toBe(out.logp);
              expectClose(got.data, want.data, `geometricMixture ${level} ${name} ${N}x${V} β=${beta}`, { scale: mixScale(logits, refLogits, beta, want) });
            }
          }
        }
      });
    });

    it('geometricMixture: [B,T,V] rows, extreme magnitudes, ±Inf and NaN like the reference', () => {
      const r = rng(8);
      const z = r.f32(2 * 3 * 70, 2000), zr = r.f32(2 * 3 * 70, 2000);
      z[5] = -Infinity; zr[80] = -Infinity; // one −∞ logit: that token gets −∞
      for (let j = 140; j < 210; j++) z[j] = -Infinity; // a whole row of −∞: NaN (undefined softmax)
      z[300] = NaN; // NaN in a counted input: that row only
      const logits = rk.tensor(z, [2, 3, 70]), refLogits = rk.tensor(zr, [2, 3, 70]);
      const want = rk.geometricMixture({ logits, refLogits }, { beta: 0.3, backend: 'js' }).logp;
      const got = rk.geometricMixture({ logits, refLogits }, { beta: 0.3, backend }).logp;
      expect(got.shape).toEqual([2, 3, 70]);
      expectClose(got.data, want.data, 'extremes', { scale: mixScale(logits, refLogits, 0.3, want) });
      expect(got.data[5]).toBe(-Infinity);
      expect(Number.isNaN(got.data[150]) && Number.isNaN(got.data[300]) && Number.isFinite(got.data[0])).toBe(true);
      // +Inf: NaN row (as the reference: exp(∞ − ∞))
      const zi = Float32Array.from({ length: 8 }, (_, j) => (j === 3 ? Infinity : j));
      const gi = rk.geometricMixture({ logits: f32(zi, [1, 8]), refLogits: f32(new Float32Array(8), [1, 8]) }, { backend }).logp;
      const wi = rk.geometricMixture({ logits: f32(zi, [1, 8]), refLogits: f32(new Float32Array(8), [1, 8]) }, { backend: 'js' }).logp;
      expect(Array.from(gi.data, Number.isNaN)).toEqual(Array.from(wi.data, Number.isNaN));
    });

    it('rejectionSample: identical selections on random groups', () => {
      for (const [si, [G, K]] of ([[1, 1], [3, 2], [5, 4], [17, 7], [64, 16], [9, 33], [200, 5]] as [number, number][]).entries()) {
        const r = rng(600 + si);
        const rewards = rk.tensor(r.f32(G * K, 1.5), [G, K]);
        const uniforms = rk.tensor(r.uniform(G * K * K), [G, K, K]);
        for (const m of [1, Math.ceil(K / 2), K]) {
          for (const beta of [0.1, 1, 10]) {
            const want = rk.rejectionSample({ rewards, uniforms }, { beta, numSamples: m, backend: 'js' }).selected;
            const out = { selected: poisonedI32([G, m]) };
            const got = rk.rejectionSample({ rewards, uniforms }, { beta, numSamples: m, backend, out }).selected;
            expect(got).toBe(out.selected);
            expect(Array.from(got.data), `${G}x${K} m=${m} β=${beta}`).toEqual(Array.from(want.data));
          }
        }
      }
    });
  });
}

/** S of log_softmax(h), h = (1−β)z + βz_ref: |h_j| terms plus the softmax-weighted |h| of lse. */
function mixScale(logits: rk.Tensor, refLogits: rk.Tensor, beta: number, want: rk.Tensor): Float64Array {
  const z = rk.readFloat(logits), zr = rk.readFloat(refLogits);
  const V = logits.shape[logits.shape.length - 1], N = z.length / V;
  const S = new Float64Array(z.length);
  for (let n = 0; n < N; n++) {
    let sl = 0;
    for (let j = 0; j < V; j++) {
      const i = n * V + j;
      const p = Math.exp(want.data[i]);
      if (p > 0) sl += p * ((1 - beta) * Math.abs(z[i]) + beta * Math.abs(zr[i]));
    }
    for (let j = 0; j < V; j++) S[n * V + j] = (1 - beta) * Math.abs(z[n * V + j]) + beta * Math.abs(zr[n * V + j]) + sl;
  }
  return S;
}

describe('sampling: hand-computed cases (every backend)', () => {
  for (const backend of ALL) {
    // B=4 rows, K=2, V=4. draftProbs q_i, targetProbs p_i chosen so each row takes one path.
    const q = [
      [[0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]], // row 0: accept all
      [[0.125, 0.125, 0.5, 0.25], [0.25, 0.25, 0.25, 0.25]], // row 1: reject at the first
      [[0.25, 0.25, 0.25, 0.25], [0.5, 0.25, 0.125, 0.125]], // row 2: accept, then reject mid-way
      [[0.5, 0.5, 0, 0], [0.25, 0.25, 0.25, 0.25]], // row 3: q(Y)=0 < p(Y): accepted; then p(Y)=0: rejected
    ];
    const p = [
      [[0.25, 0.25, 0.25, 0.25], [0.5, 0.25, 0.125, 0.125], [0.0, 0.5, 0.25, 0.25]],
      [[0.25, 0.5, 0.125, 0.125], [0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]],
      [[0.25, 0.25, 0.25, 0.25], [0.125, 0.125, 0.25, 0.5], [0.25, 0.25, 0.25, 0.25]],
      [[0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0, 0], [0.25, 0.25, 0.25, 0.25]],
    ];
    const draftTokens = i32([1, 3, 2, 0, 0, 0, 2, 3], [4, 2]);
    const u = [
      [0.99, 0.375, 0.5], // row 0: u0 ≤ 1 (ratio 1), u1 = 0.375 ≤ p/q = 0.125/0.25 = 0.5 → both; p_3 = [0, .5, .25, .25], u=.5 → C = 0,.5,.75 → t=2
      [0.3, 0.1, 0.7], // row 1: Y=2, ratio .125/.5 = .25 < .3 → reject; residual max(p−q,0) = [.125,.375,0,0]/.5, u=.7 → .35 < .5 → t=1
      [0.5, 0.3, 0.2], // row 2: Y0=0 ratio 1 → accept; Y1=0 ratio .125/.5=.25 < .3 → reject; residual [0, 0, .125, .375]/.5: u=.2 → .1 < .125 → t=2
      [0.9, 0.0, 0.5], // row 3: Y0=2 q=0 p=.25 → accept; Y1=3 p=0 → reject even with u=0; residual max(p−q,0) = [.25,.25,0,0]: u=.5 → .25 <.25? no → t=1
    ];
    it(`[${backend}] speculativeVerify: accept all / reject first / reject mid-way / q=0 and p=0 edges`, () => {
      const res = rk.speculativeVerify({
        draftTokens,
        draftProbs: f32(q.flat(2), [4, 2, 4]),
        targetProbs: f32(p.flat(2), [4, 3, 4]),
        uniforms: f32(u.flat(), [4, 3]),
      }, { backend });
      expect(Array.from(res.accepted.data)).toEqual([2, 0, 1, 1]);
      expect(Array.from(res.nextToken.data)).toEqual([2, 1, 2, 1]);
    });

    it(`[${backend}] speculativeVerify: zero-mass residual falls back to p_n; u just below 1 hits the last positive token`, () => {
      // p_0 = q_0 except rounding-free equality: Y=1 has p/q = 1 → accepted at any u < 1. Force a
      // rejection through p(Y)=0 with p ≤ q elsewhere: residual mass 0 → draw from p_0 = [.5,0,.5,0].
      const res = rk.speculativeVerify({
        draftTokens: i32([1], [1, 1]),
        draftProbs: f32([0.5, 0.25, 0.5, 0], [1, 1, 4]),
        targetProbs: f32([0.5, 0, 0.5, 0, 0.25, 0.25, 0.25, 0.25], [1, 2, 4]),
        uniforms: f32([0.1, 0.75], [1, 2]),
      }, { backend });
      expect(Array.from(res.accepted.data)).toEqual([0]);
      expect(Array.from(res.nextToken.data)).toEqual([2]);
      // all accepted, p_{K+1} with trailing zeros and the largest f32 below 1: the last positive token
      const u1 = Math.fround(1 - 2 ** -24);
      const r2 = rk.speculativeVerify({
        draftTokens: i32([0], [1, 1]),
        draftProbs: f32([1, 0, 0], [1, 1, 3]),
        targetProbs: f32([1, 0, 0, 0.3, 0.7, 0], [1, 2, 3]),
        uniforms: f32([0.5, u1], [1, 2]),
      }, { backend });
      expect(Array.from(r2.accepted.data)).toEqual([1]);
      expect(Array.from(r2.nextToken.data)).toEqual([1]);
      // u = 0 picks the first token of positive weight
      const r3 = rk.speculativeVerify({
        draftTokens: i32([0], [1, 1]), draftProbs: f32([1, 0, 0], [1, 1, 3]),
        targetProbs: f32([1, 0, 0, 0, 0, 0.7], [1, 2, 3]), uniforms: f32([0.5, 0], [1, 2]),
      }, { backend });
      expect(Array.from(r3.nextToken.data)).toEqual([2]);
    });

    it(`[${backend}] speculativeVerify: unnormalised rows are normalised; probabilities that are never read are not checked`, () => {
      const res = rk.speculativeVerify({
        draftTokens: i32([0, 1], [1, 2]),
        // position 1 of q and p is never read (rejection at 0): NaN there changes nothing
        draftProbs: f32([2, 1, 1, NaN, NaN, NaN], [1, 2, 3]),
        targetProbs: f32([1, 2, 3, NaN, -1, NaN, Infinity, 0, 0], [1, 3, 3]),
        uniforms: f32([0.9, 0.5, 0.6], [1, 3]),
      }, { backend });
      // ratio 1/2 < .9 → reject; residual max(p − q, 0) = [0, 1, 2], u·Z = 1.8 → C = 0, 1, 3 → t=2
      expect(Array.from(res.accepted.data)).toEqual([0]);
      expect(Array.from(res.nextToken.data)).toEqual([2]);
    });

    it(`[${backend}] speculativeVerify: B = 0 gives empty outputs`, () => {
      const res = rk.speculativeVerify({ draftTokens: i32([], [0, 3]), draftProbs: f32([], [0, 3, 4]), targetProbs: f32([], [0, 4, 4]), uniforms: f32([], [0, 4]) }, { backend });
      expect(res.accepted.shape).toEqual([0]);
      expect(res.nextToken.shape).toEqual([0]);
    });

    it(`[${backend}] speculativeVerify: deterministic given the uniforms`, () => {
      const x = specInputs(16, 3, 50, 21);
      const a = rk.speculativeVerify(x, { backend }), b = rk.speculativeVerify(x, { backend });
      expect(Array.from(a.nextToken.data)).toEqual(Array.from(b.nextToken.data));
      expect(Array.from(a.accepted.data)).toEqual(Array.from(b.accepted.data));
    });

    it(`[${backend}] speculativeVerify: the first emitted token is distributed as p_1 (speculative sampling is exact)`, () => {
      const r = rng(31);
      const V = 5, B = backend === 'js' ? 20000 : 40000;
      const q0 = [0.4, 0.3, 0.1, 0.1, 0.1], p0 = [0.1, 0.2, 0.3, 0.15, 0.25];
      const tok = Int32Array.from({ length: B }, () => sampleFrom(r, q0));
      const dq = new Float32Array(B * V), dp = new Float32Array(B * 2 * V);
      for (let b = 0; b < B; b++) { dq.set(q0, b * V); dp.set(p0, b * 2 * V); dp.set(q0, b * 2 * V + V); }
      const res = rk.speculativeVerify({
        draftTokens: i32(tok, [B, 1]), draftProbs: rk.tensor(dq, [B, 1, V]), targetProbs: rk.tensor(dp, [B, 2, V]),
        uniforms: rk.tensor(r.uniform(2 * B), [B, 2]),
      }, { backend });
      const hist = new Array(V).fill(0);
      for (let b = 0; b < B; b++) hist[res.accepted.data[b] === 1 ? tok[b] : res.nextToken.data[b]]++;
      for (let t = 0; t < V; t++) {
        const sd = Math.sqrt(B * p0[t] * (1 - p0[t]));
        expect(Math.abs(hist[t] - B * p0[t]), `token ${t}: ${hist[t]} vs ${B * p0[t]}`).toBeLessThan(4.5 * sd);
      }
    });

    it(`[${backend}] specDecStop: SpecDec++ rule by hand`, () => {
      const acceptProbs = f32([0.9, 0.9, 0.9, 0.9, 0.5, 0.9, 0.9, 0.9, 1, 1, 1, 1, 0.6, 0.5, 0.1, 0.1], [4, 4]);
      // row 0: 1 − .9^k: .1, .19, .271, .3439 → k=4 (> .3); row 1: k=1 fires (.5) but minLength 2 → 2;
      // row 2: never → min(20, K) = 4; row 3: k=1 .4 → minLength → 2
      expect(Array.from(rk.specDecStop({ acceptProbs }, { backend }).length.data)).toEqual([4, 2, 4, 2]);
      expect(Array.from(rk.specDecStop({ acceptProbs }, { minLength: 0, backend }).length.data)).toEqual([4, 1, 4, 1]);
      expect(Array.from(rk.specDecStop({ acceptProbs }, { maxLength: 3, backend }).length.data)).toEqual([3, 2, 3, 2]);
      expect(Array.from(rk.specDecStop({ acceptProbs }, { threshold: 0, minLength: 0, maxLength: 0, backend }).length.data)).toEqual([0, 0, 0, 0]);
      // threshold 0: fires at the first k ≥ minLength with any rejection probability > 0
      expect(Array.from(rk.specDecStop({ acceptProbs }, { threshold: 0, minLength: 1, backend }).length.data)).toEqual([1, 1, 4, 1]);
      // K = 0
      expect(Array.from(rk.specDecStop({ acceptProbs: f32([], [3, 0]) }, { backend }).length.data)).toEqual([0, 0, 0]);
    });

    it(`[${backend}] geometricMixture: by hand, and the endpoints β = 0 / 1 are the two log-softmaxes`, () => {
      const z = f32([0, Math.log(3)], [1, 2]), zr = f32([Math.log(3), 0], [1, 2]);
      // β = 0.5: h = [ln3/2, ln3/2] → uniform
      expectClose(rk.geometricMixture({ logits: z, refLogits: zr }, { backend }).logp.data, [Math.log(0.5), Math.log(0.5)], 'β=.5');
      expectClose(rk.geometricMixture({ logits: z, refLogits: zr }, { beta: 0, backend }).logp.data, [Math.log(0.25), Math.log(0.75)], 'β=0', { scale: 2 });
      expectClose(rk.geometricMixture({ logits: z, refLogits: zr }, { beta: 1, backend }).logp.data, [Math.log(0.75), Math.log(0.25)], 'β=1', { scale: 2 });
      // V = 1: logp = 0; N = 0: empty
      expect(Array.from(rk.geometricMixture({ logits: f32([5, -3], [2, 1]), refLogits: f32([1, 2], [2, 1]) }, { backend }).logp.data)).toEqual([0, 0]);
      expect(rk.geometricMixture({ logits: f32([], [0, 4]), refLogits: f32([], [0, 4]) }, { backend }).logp.shape).toEqual([0, 4]);
      // every row sums to 1 in probability
      const r = rng(2);
      const lp = rk.geometricMixture({ logits: rk.tensor(r.f32(3 * 700, 4), [3, 700]), refLogits: rk.tensor(r.f32(3 * 700, 4), [3, 700]) }, { beta: 0.7, backend }).logp;
      for (let n = 0; n < 3; n++) {
        let s = 0;
        for (let j = 0; j < 700; j++) s += Math.exp(lp.data[n * 700 + j]);
        expect(Math.abs(s - 1)).toBeLessThan(1e-5);
      }
    });

    it(`[${backend}] rejectionSample: RSO Algorithm 1 by hand, and its limits`, () => {
      // β = 1, rewards [0, ln 0.5, 1]: round 0 r_max = 1: thresholds e^{-1}=.368, .5·e^{-1}=.184, 1
      const rewards = f32([0, Math.log(0.5), 1], [1, 3]);
      const uniforms = f32([
        0.3, 0.2, 0.99, // round 0: c0 .3 < .368 ✓, c1 .2 < .184 ✗, c2 .99 < 1 ✓ → [0, 2]
        0.9, 0.9, 0.9, // round 1: only c1 left, r_max = ln .5 → threshold 1 → ✓
        0.5, 0.5, 0.5,
      ], [1, 3, 3]);
      expect(Array.from(rk.rejectionSample({ rewards, uniforms }, { beta: 1, numSamples: 3, backend }).selected.data)).toEqual([0, 2, 1]);
      expect(Array.from(rk.rejectionSample({ rewards, uniforms }, { beta: 1, numSamples: 1, backend }).selected.data)).toEqual([0]);
      // β → ∞: everything accepted in round 0, index order; β → 0: the rewards in descending order
      const r = rng(4);
      const rw = rk.tensor(r.f32(8, 1), [1, 8]);
      const un = rk.tensor(Float32Array.from({ length: 64 }, () => 0.001 + 0.99 * r.next()), [1, 8, 8]);
      expect(Array.from(rk.rejectionSample({ rewards: rw, uniforms: un }, { beta: 1e30, numSamples: 8, backend }).selected.data)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      const order = Array.from(rw.data.keys()).sort((a, b) => rw.data[b] - rw.data[a]);
      expect(Array.from(rk.rejectionSample({ rewards: rw, uniforms: un }, { beta: 1e-6, numSamples: 8, backend }).selected.data)).toEqual(order);
      // ties at the top are all accepted in the same round; uniforms not read (after the last selection) are not checked
      const tie = rk.rejectionSample({ rewards: f32([2, 2, 0], [1, 3]), uniforms: f32([0.5, 0.5, 0.9, NaN, 7, -1, 1, 1, 1], [1, 3, 3]) },
        { beta: 1, numSamples: 2, backend });
      expect(Array.from(tie.selected.data)).toEqual([0, 1]);
      // G = 0
      expect(rk.rejectionSample({ rewards: f32([], [0, 3]), uniforms: f32([], [0, 3, 3]) }, { beta: 1, numSamples: 2, backend }).selected.shape).toEqual([0, 2]);
    });
  }
});

describe('sampling: errors', () => {
  const x = specInputs(2, 2, 5, 1);
  for (const backend of ALL) {
    it(`[${backend}] documented errors`, () => {
      const sv = (over: any, o: any = {}) => () => rk.speculativeVerify({ ...x, ...over }, { backend, ...o });
      expect(sv({ draftTokens: undefined })).toThrow(TypeError);
      expect(sv({ draftTokens: f32([0, 1, 2, 3], [2, 2]) })).toThrow(TypeError);
      expect(sv({ draftProbs: rk.tensor(new Int32Array(20), [2, 2, 5]) })).toThrow(TypeError);
      expect(sv({ draftTokens: i32([0, 1, 5, 0], [2, 2]) })).toThrow(/draftTokens.*\[0, 5\)/);
      expect(sv({ draftTokens: i32([0, 1, -1, 0], [2, 2]) })).toThrow(RangeError);
      expect(sv({ uniforms: f32([0, 0.5, 1, 0, 0, 0], [2, 3]) })).toThrow(/uniforms.*\[0, 1\)/);
      expect(sv({ uniforms: f32([0, 0.5, NaN, 0, 0, 0], [2, 3]) })).toThrow(RangeError);
      // f64 uniforms are checked as the f32 values the native backends see: 1 − 1e-12 rounds to 1
      expect(sv({ uniforms: rk.tensor(Float64Array.from([0, 0.5, 1 - 1e-12, 0, 0, 0]), [2, 3]) })).toThrow(/uniforms/);
      expect(() => rk.rejectionSample({ rewards: f32([0, 1], [1, 2]), uniforms: rk.tensor(Float64Array.from([1 - 1e-12, 0.5, 0.5, 0.5]), [1, 2, 2]) }, { beta: 1, numSamples: 1, backend })).toThrow(/uniforms/);
      expect(sv({ uniforms: f32([0, 0, 0, 0], [2, 2]) })).toThrow(/uniforms.*shape/);
      expect(sv({ targetProbs: f32(new Array(20).fill(0.2), [2, 2, 5]) })).toThrow(/targetProbs.*shape/);
      expect(sv({ draftProbs: f32(new Array(24).fill(0.2), [2, 2, 6]) })).toThrow(/draftProbs.*shape/);
      expect(sv({ draftTokens: i32([], [2, 0]), draftProbs: f32([], [2, 0, 0]), targetProbs: f32([], [2, 1, 0]), uniforms: f32([0, 0], [2, 1]) })).toThrow(/vocabulary/);
      expect(sv({}, { out: { accepted: rk.zeros([2], 'f32') } })).toThrow(TypeError);
      expect(sv({}, { out: { nextToken: rk.zeros([3], 'i32') } })).toThrow(RangeError);
      // probabilities the rule reads: NaN / negative / Inf, and a drawn distribution of zero mass
      const one = (dp: number[], tp: number[], u = [0.5, 0.5]) => () =>
        rk.speculativeVerify({ draftTokens: i32([0], [1, 1]), draftProbs: f32(dp, [1, 1, 2]), targetProbs: f32(tp, [1, 2, 2]), uniforms: f32(u, [1, 2]) }, { backend });
      expect(one([NaN, 0.5], [0.5, 0.5, 0.5, 0.5])).toThrow(/finite and >= 0/);
      expect(one([0.5, 0.5], [-0.5, 0.5, 0.5, 0.5])).toThrow(/row 0/);
      expect(one([0.5, 0.5], [0.5, 0.5, 0.5, Infinity])).toThrow(RangeError); // all accepted, p_{K+1} has +Inf
      expect(one([0.5, -0.5], [0.25, 0.5, 0.5, 0.5], [0.9, 0.5])).toThrow(RangeError); // rejected, q_n has a negative
      expect(one([0.5, 0.5], [0.5, 0.5, 0, 0])).toThrow(/total mass 0/);
      expect(one([0.5, 0.5], [0, 0, 0.5, 0.5], [0.9, 0.5])).toThrow(/total mass 0/); // residual 0 and p_n = 0
      // specDecStop
      const P = f32([0.5, 0.5, 0.5, 0.5], [2, 2]);
      expect(() => rk.specDecStop({ acceptProbs: P }, { threshold: 1.5, backend })).toThrow(RangeError);
      expect(() => rk.specDecStop({ acceptProbs: P }, { threshold: -0.1, backend })).toThrow(RangeError);
      expect(() => rk.specDecStop({ acceptProbs: P }, { threshold: 'a' as any, backend })).toThrow(TypeError);
      expect(() => rk.specDecStop({ acceptProbs: P }, { minLength: 1.5, backend })).toThrow(/integer/);
      expect(() => rk.specDecStop({ acceptProbs: P }, { minLength: -1, backend })).toThrow(RangeError);
      expect(() => rk.specDecStop({ acceptProbs: P }, { minLength: 5, maxLength: 3, backend })).toThrow(/maxLength/);
      expect(() => rk.specDecStop({ acceptProbs: f32([0.5, 1.5], [1, 2]) }, { backend })).toThrow(/acceptProbs/);
      expect(() => rk.specDecStop({ acceptProbs: f32([0.5, NaN], [1, 2]) }, { backend })).toThrow(/row 0/);
      expect(() => rk.specDecStop({ acceptProbs: f32([0.5, 0.5, 0.5, -0.5], [2, 2]) }, { backend })).toThrow(/row 1/);
      // values after the stopping point are never read
      expect(Array.from(rk.specDecStop({ acceptProbs: f32([0.1, 0.1, NaN, 7], [1, 4]) }, { backend }).length.data)).toEqual([2]);
      expect(() => rk.specDecStop({ acceptProbs: f32([0.5, 0.5], [2]) }, { backend })).toThrow(/rank 2/);
      expect(() => rk.specDecStop({} as any, { backend })).toThrow(TypeError);
      // geometricMixture
      const z = f32([0, 1, 2, 3], [2, 2]);
      expect(() => rk.geometricMixture({ logits: z, refLogits: f32([0, 1], [1, 2]) }, { backend })).toThrow(/refLogits.*shape/);
      expect(() => rk.geometricMixture({ logits: z, refLogits: z }, { beta: 1.5, backend })).toThrow(RangeError);
      expect(() => rk.geometricMixture({ logits: z, refLogits: z }, { beta: NaN, backend })).toThrow(RangeError);
      expect(() => rk.geometricMixture({ logits: z, refLogits: rk.tensor(new Int32Array(4), [2, 2]) }, { backend })).toThrow(TypeError);
      expect(() => rk.geometricMixture({ logits: f32([1], [1]), refLogits: f32([1], [1]) }, { backend })).toThrow(/rank/);
      expect(() => rk.geometricMixture({ logits: z } as any, { backend })).toThrow(TypeError);
      expect(() => rk.geometricMixture({ logits: z, refLogits: z }, { backend, out: { logp: rk.zeros([2, 2], 'f64') } })).toThrow(TypeError);
      // rejectionSample
      const rw = f32([0, 1, 2, 3], [2, 2]), un = f32(new Array(8).fill(0.5), [2, 2, 2]);
      expect(() => rk.rejectionSample({ rewards: rw, uniforms: un }, { numSamples: 1, backend } as any)).toThrow(TypeError);
      expect(() => rk.rejectionSample({ rewards: rw, uniforms: un }, { beta: 1, backend } as any)).toThrow(/numSamples/);
      expect(() => rk.rejectionSample({ rewards: rw, uniforms: un }, { beta: 0, numSamples: 1, backend })).toThrow(RangeError);
      expect(() => rk.rejectionSample({ rewards: rw, uniforms: un }, { beta: 1, numSamples: 3, backend })).toThrow(/<= K/);
      expect(() => rk.rejectionSample({ rewards: rw, uniforms: un }, { beta: 1, numSamples: 0, backend })).toThrow(RangeError);
      expect(() => rk.rejectionSample({ rewards: rw, uniforms: un }, { beta: 1, numSamples: 1.5, backend })).toThrow(RangeError);
      expect(() => rk.rejectionSample({ rewards: rw, uniforms: f32(new Array(4).fill(0.5), [2, 2, 1]) }, { beta: 1, numSamples: 1, backend })).toThrow(/uniforms.*shape/);
      expect(() => rk.rejectionSample({ rewards: f32([0, NaN, 2, 3], [2, 2]), uniforms: un }, { beta: 1, numSamples: 1, backend })).toThrow(/rewards.*group 0/);
      expect(() => rk.rejectionSample({ rewards: rw, uniforms: f32([0.5, 0.5, 0.5, 0.5, 1, 0.5, 0.5, 0.5], [2, 2, 2]) }, { beta: 1, numSamples: 1, backend })).toThrow(/uniforms.*group 1/);
    });
  }

  it("backend 'cuda' without a device is an Error that says why", () => {
    if (rk.backends().cuda.available) return;
    expect(() => rk.specDecStop({ acceptProbs: f32([0.5], [1, 1]) }, { backend: 'cuda' })).toThrow(/cuda.*(without CUDA|no CUDA device|not built|addon)/i);
  });

  it('fuzzed arguments never crash the process (wrappers and the native entry points)', () => {
    const r = rng(99);
    const junk = [undefined, null, 0, -1, 1.5, NaN, 1e300, 'x', {}, [], new Float64Array(3), new Float32Array(0), new Uint8Array(7),
      new Int32Array(6), new Float32Array(12), new Uint16Array(4), i32([9, 9], [1, 2]), f32([1, 2], [1, 2])];
    const pick = () => junk[r.int(0, junk.length - 1)];
    const y = specInputs(2, 2, 3, 4);
    for (let i = 0; i < 300; i++) {
      const keep = (v: unknown) => (r.next() < 0.6 ? v : pick());
      const args: any = {
        draftTokens: keep(y.draftTokens), draftProbs: keep(y.draftProbs), targetProbs: keep(y.targetProbs), uniforms: keep(y.uniforms),
        acceptProbs: keep(f32([0.5, 0.9], [1, 2])), logits: keep(f32([1, 2, 3], [1, 3])), refLogits: keep(f32([1, 2, 3], [1, 3])),
        rewards: keep(f32([1, 2], [1, 2])),
      };
      if (r.next() < 0.3) args.uniforms = keep(f32([0.5, 0.5, 0.5, 0.5], [1, 2, 2]));
      const opts: any = { beta: keep(0.5), numSamples: keep(1), threshold: keep(0.3), minLength: keep(2), maxLength: keep(5),
        backend: r.next() < 0.8 ? 'auto' : pick(), out: r.next() < 0.9 ? undefined : pick() };
      for (const f of [rk.speculativeVerify, rk.specDecStop, rk.geometricMixture, rk.rejectionSample] as any[]) {
        try {
          f(args, opts);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
      }
    }
    if (!native) return;
    const n = native as any;
    const calls: [string, number][] = [['speculativeVerify', 10], ['specDecStop', 8], ['geometricMixture', 9], ['rejectionSample', 8]];
    const small = [0, 1, 2, 3, -1, 2 ** 40, NaN, 0.5];
    for (let i = 0; i < 600; i++) {
      const [name, arity] = calls[i % calls.length];
      const argv = Array.from({ length: arity }, (_, k) =>
        k < 3 && r.next() < 0.7 ? small[r.int(0, small.length - 1)] : r.next() < 0.5 ? pick() : [new Float32Array(6), new Int32Array(3), new Float32Array(12)][r.int(0, 2)]);
      try {
        n[name](...argv);
      } catch (e) {
        expect(e).toBeInstanceOf(Error);
      }
    }
    // a direct call with a token id out of range is refused by the addon itself
    expect(() => n.speculativeVerify(1, 1, 2, Int32Array.from([5]), new Float32Array(2), new Float32Array(4), new Float32Array(2),
      new Int32Array(1), new Int32Array(1), false)).toThrow(RangeError);
    expect(() => n.rejectionSample(1, 2, 3, new Float32Array(2), new Float32Array(4), new Int32Array(3), 1, false)).toThrow(RangeError);
  });
});
