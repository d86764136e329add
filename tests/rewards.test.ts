/** Reward family (SPEC §2): native vs the float64 reference, hand cases, outputs, errors. */
import { describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { atEverySimdLevel, expectClose, f32, nativeBackends, poisoned, rng, SHAPES_2D } from './helpers.js';

const ESTIMATORS = ['k1', 'k2', 'k3', 'abs'] as const;

function inputs(B: number, T: number, seed: number, maskKind: 'u8' | 'f32' = 'u8') {
  const r = rng(seed);
  const n = B * T;
  return {
    logp: rk.tensor(r.f32(n, 1, -2), [B, T]),
    refLogp: rk.tensor(r.f32(n, 1, -2), [B, T]),
    dpoLogp: rk.tensor(r.f32(n, 1, -2), [B, T]),
    mask: rk.tensor(r.mask(B, T, maskKind), [B, T], maskKind),
    scores: rk.tensor(r.f32(B, 3), [B]),
  };
}

/** S for a difference-based estimate: first-order |∂k/∂d|·(|logp| + |ref|) plus |k|. */
function klScale(logp: Float32Array, ref: Float32Array, est: string, mult = 1): Float64Array {
  return Float64Array.from(logp, (l, i) => {
    const d = l - ref[i];
    const a = Math.abs(l) + Math.abs(ref[i]);
    const deriv = est === 'k1' || est === 'abs' ? 1 : est === 'k2' ? Math.abs(d) : Math.abs(1 - Math.exp(-d)) + Math.exp(-d) + 1;
    return mult * (deriv * a + (est === 'k3' ? Math.exp(-d) + 1 + Math.abs(d) : 0));
  });
}

for (const backend of nativeBackends()) {
  describe(`rewards [${backend}] vs js reference`, () => {
    it('klPenalty: every estimator, clamp, mask kinds, many shapes, every SIMD level', () => {
      atEverySimdLevel((level) => {
        for (const [si, [B, T]] of SHAPES_2D.entries()) {
          for (const maskKind of ['u8', 'f32', 'none'] as const) {
            const x = inputs(B, T, 100 + si, maskKind === 'none' ? 'u8' : maskKind);
            const mask = maskKind === 'none' ? undefined : x.mask;
            for (const estimator of ESTIMATORS) {
              for (const clamp of [undefined, 0.5]) {
                const o = { estimator, clamp };
                const want = rk.klPenalty({ logp: x.logp, refLogp: x.refLogp, mask }, { ...o, backend: 'js' }).kl;
                const out = { kl: poisoned([B, T]) };
                const got = rk.klPenalty({ logp: x.logp, refLogp: x.refLogp, mask }, { ...o, backend, out }).kl;
                expect(got).toBe(out.kl);
                expectClose(got.data, want.data, `klPenalty ${level} ${B}x${T} ${maskKind} ${estimator} clamp=${clamp}`, {
                  scale: klScale(x.logp.data as Float32Array, x.refLogp.data as Float32Array, estimator),
                });
              }
            }
          }
        }
      });
    });

    it('tokenRewards, rtoRewards, implicitRewards on many shapes and both mask dtypes', () => {
      atEverySimdLevel((level) => {
        for (const [si, [B, T]] of SHAPES_2D.entries()) {
          for (const maskKind of ['u8', 'f32'] as const) {
            const x = inputs(B, T, 200 + si, maskKind);
            const lp = x.logp.data as Float32Array, rp = x.refLogp.data as Float32Array, dp = x.dpoLogp.data as Float32Array;
            const scoreS = Float64Array.from({ length: B * T }, (_, i) => 3 * Math.abs(x.scores.data[Math.floor(i / T)]));
            for (const estimator of ESTIMATORS) {
              const o = { klCoef: 0.05, estimator, scoreClip: estimator === 'k2' ? 1 : undefined };
              const want = rk.tokenRewards(x, { ...o, backend: 'js' }).rewards;
              const got = rk.tokenRewards(x, { ...o, backend, out: { rewards: poisoned([B, T]) } }).rewards;
              const S = klScale(lp, rp, estimator, 0.05).map((s, i) => s + scoreS[i]);
              expectClose(got.data, want.data, `tokenRewards ${level} ${B}x${T} ${estimator}`, { scale: S });
            }
            for (const o of [{ beta1: 0.5, beta2: 0.1 }, { beta1: 2, beta2: 0.3, beta3: 0.5, dpoClip: 0.75 }]) {
              const want = rk.rtoRewards(x, { ...o, backend: 'js' }).rewards;
              const got = rk.rtoRewards(x, { ...o, backend, out: { rewards: poisoned([B, T]) } }).rewards;
              const S = Float64Array.from(lp, (_, i) => 2 * (Math.abs(dp[i]) + 2 * Math.abs(rp[i]) + Math.abs(lp[i])) + scoreS[i]);
              expectClose(got.data, want.data, `rtoRewards ${level} ${B}x${T}`, { scale: S });
              // without scores
              const w2 = rk.rtoRewards({ ...x, scores: undefined }, { ...o, backend: 'js' }).rewards;
              const g2 = rk.rtoRewards({ ...x, scores: undefined }, { ...o, backend }).rewards;
              expectClose(g2.data, w2.data, `rtoRewards (no scores) ${B}x${T}`, { scale: S });
            }
            const want = rk.implicitRewards(x, { beta: 0.1, backend: 'js' }).rewards;
            const got = rk.implicitRewards(x, { beta: 0.1, backend, out: { rewards: poisoned([B, T]) } }).rewards;
            expectClose(got.data, want.data, `implicitRewards ${B}x${T}`, { scale: klScale(lp, rp, 'k1', 0.1) });
          }
        }
      });
    });

    it('f64 inputs are rounded to f32 once and give the f32 results', () => {
      const x = inputs(4, 9, 7);
      const lp64 = rk.tensor(Float64Array.from(x.logp.data), [4, 9]);
      const a = rk.klPenalty({ logp: lp64, refLogp: x.refLogp, mask: x.mask }, { estimator: 'k3', backend }).kl;
      const b = rk.klPenalty({ logp: x.logp, refLogp: x.refLogp, mask: x.mask }, { estimator: 'k3', backend }).kl;
      expect(Array.from(a.data)).toEqual(Array.from(b.data));
    });
  });
}

describe('rewards: hand-computed cases (every backend)', () => {
  for (const backend of ['js', ...nativeBackends()] as const) {
    it(`[${backend}] tokenRewards puts the clipped score at the last counted token`, () => {
      const logp = f32([-1, -2, -3, -4, -1, -1, -1, -1], [2, 4]);
      const refLogp = f32([-1.5, -2, -2, -4, -1, -1, -1, -1], [2, 4]);
      const mask = rk.tensor(Uint8Array.from([1, 1, 1, 0, 0, 0, 0, 0]), [2, 4]);
      const scores = f32([5, 7], [2]);
      const r = rk.tokenRewards({ logp, refLogp, mask, scores }, { klCoef: 0.1, scoreClip: 2, backend }).rewards;
      // row 0: k1 = d = [0.5, 0, -1]; r = -0.1·d; last counted t=2 gets clip(5, ±2) = 2
      expectClose(r.data, [-0.05, 0, 0.1 + 2, 0, 0, 0, 0, 0], 'tokenRewards');
    });

    it(`[${backend}] rtoRewards term by term (RTO eq. 4.7)`, () => {
      const dpoLogp = f32([-1, -0.5, -2], [1, 3]);
      const refLogp = f32([-1.5, -1, -1], [1, 3]);
      const logp = f32([-1.25, -0.75, -1.5], [1, 3]);
      const mask = rk.tensor(Uint8Array.from([1, 1, 1]), [1, 3]);
      const scores = f32([2], [1]);
      const b1 = 0.5, b2 = 0.25, b3 = 0.5;
      const r = rk.rtoRewards({ dpoLogp, refLogp, logp, mask, scores }, { beta1: b1, beta2: b2, beta3: b3, backend }).rewards;
      const want = [0, 1, 2].map((t) => b1 * (dpoLogp.data[t] - refLogp.data[t]) - b2 * (logp.data[t] - refLogp.data[t]) + (t === 2 ? b3 * 2 : 0));
      expectClose(r.data, want, 'rto');
      // dpoClip clamps the whole first term β1·(dpo − ref): here 0.25, 0.25, −0.5 → clip 0.2
      const c = rk.rtoRewards({ dpoLogp, refLogp, logp, mask }, { beta1: b1, beta2: b2, dpoClip: 0.2, backend }).rewards;
      expectClose(c.data, [0.2 - b2 * 0.25, 0.2 - b2 * 0.25, -0.2 - b2 * -0.5], 'rto clip');
    });

    it(`[${backend}] masked positions are never read: NaN/Inf there change nothing`, () => {
      const logp = f32([NaN, -1, Infinity, -2], [2, 2]);
      const refLogp = f32([-Infinity, -1.5, NaN, -2], [2, 2]);
      const mask = rk.tensor(Uint8Array.from([0, 1, 0, 1]), [2, 2]);
      for (const estimator of ESTIMATORS) {
        const kl = rk.klPenalty({ logp, refLogp, mask }, { estimator, backend }).kl.data;
        expect(kl[0]).toBe(0);
        expect(kl[2]).toBe(0);
        expect(Number.isFinite(kl[1]) && Number.isFinite(kl[3])).toBe(true);
      }
      // and a NaN in a counted input propagates to that element only
      const nanIn = f32([NaN, -1, -1, -2], [2, 2]);
      const kl = rk.klPenalty({ logp: nanIn, refLogp, mask: rk.tensor(Uint8Array.from([1, 1, 0, 1]), [2, 2]) }, { backend }).kl.data;
      expect(Number.isNaN(kl[0])).toBe(true);
      expect(kl[1]).toBeCloseTo(0.5, 6);
    });

    it(`[${backend}] accepts onnxruntime-style tensors`, () => {
      const logp = { data: Float32Array.from([-1, -2]), dims: [1, 2], type: 'float32' };
      const refLogp = { data: Float32Array.from([-1.5, -1]), dims: [1, 2], type: 'float32' };
      const mask = { data: Uint8Array.from([1, 1]), dims: [1, 2], type: 'bool' };
      const kl = rk.klPenalty({ logp, refLogp, mask }, { backend }).kl;
      expectClose(kl.data, [0.5, -1], 'ort');
    });
  }
});

describe('rewards: errors', () => {
  const x = inputs(2, 3, 1);
  for (const backend of ['js', ...nativeBackends()] as const) {
    it(`[${backend}] documented errors`, () => {
      expect(() => rk.klPenalty({ logp: x.logp } as any, { backend })).toThrow(TypeError); // missing refLogp
      expect(() => rk.klPenalty({ logp: x.logp, refLogp: rk.tensor(new Int32Array(6), [2, 3]) }, { backend })).toThrow(TypeError);
      expect(() => rk.klPenalty({ logp: x.logp, refLogp: f32(new Array(8).fill(0), [2, 4]) }, { backend })).toThrow(/refLogp.*shape/);
      expect(() => rk.klPenalty({ logp: x.logp, refLogp: x.refLogp, mask: f32([1, 1], [2]) }, { backend })).toThrow(RangeError);
      expect(() => rk.klPenalty({ logp: x.logp, refLogp: x.refLogp, mask: rk.tensor(new Int32Array(6), [2, 3]) }, { backend })).toThrow(TypeError);
      expect(() => rk.klPenalty({ logp: x.logp, refLogp: x.refLogp }, { estimator: 'k4' as any, backend })).toThrow(RangeError);
      expect(() => rk.klPenalty({ logp: x.logp, refLogp: x.refLogp }, { estimator: 3 as any, backend })).toThrow(TypeError);
      expect(() => rk.klPenalty({ logp: x.logp, refLogp: x.refLogp }, { clamp: -1, backend })).toThrow(RangeError);
      expect(() => rk.klPenalty({ logp: x.logp, refLogp: x.refLogp }, { clamp: NaN, backend })).toThrow(RangeError);
      expect(() => rk.klPenalty({ logp: f32([1, 2, 3], [3]), refLogp: f32([1, 2, 3], [3]) }, { backend })).toThrow(/rank 2/);
      expect(() => rk.tokenRewards(x, { backend } as any)).toThrow(/klCoef/);
      expect(() => rk.tokenRewards(x, { klCoef: Infinity, backend })).toThrow(RangeError);
      expect(() => rk.tokenRewards({ ...x, scores: f32([1, 2, 3], [3]) }, { klCoef: 0.1, backend })).toThrow(/scores/);
      expect(() => rk.tokenRewards({ ...x, mask: undefined } as any, { klCoef: 0.1, backend })).toThrow(TypeError);
      expect(() => rk.tokenRewards(x, { klCoef: 0.1, scoreClip: 0, backend })).toThrow(RangeError);
      expect(() => rk.rtoRewards(x, { beta1: 1, backend } as any)).toThrow(/beta2/);
      expect(() => rk.rtoRewards(x, { beta1: 1, beta2: 1, dpoClip: -2, backend })).toThrow(RangeError);
      expect(() => rk.implicitRewards(x, { backend } as any)).toThrow(/beta/);
      expect(() => rk.implicitRewards(x, { beta: 0.1, backend, out: { rewards: rk.zeros([2, 3], 'f64') } })).toThrow(TypeError);
      expect(() => rk.implicitRewards(x, { beta: 0.1, backend, out: { rewards: rk.zeros([3, 2], 'f32') } })).toThrow(RangeError);
      expect(() => rk.implicitRewards(x, { beta: 0.1, backend: 'tpu' as any })).toThrow(RangeError);
      expect(() => rk.implicitRewards(null as any, { beta: 0.1, backend })).toThrow(TypeError);
      expect(() => rk.implicitRewards(x, 5 as any)).toThrow(TypeError);
    });
  }

  it("backend 'cuda' without a device is an Error that says why", () => {
    if (rk.backends().cuda.available) return;
    expect(() => rk.implicitRewards(x, { beta: 0.1, backend: 'cuda' })).toThrow(/cuda.*(without CUDA|no CUDA device|not built|addon)/i);
  });

  it('fuzzed arguments never crash the process (native arg checks too)', () => {
    const r = rng(99);
    const junk = [undefined, null, 0, -1, 1.5, NaN, 'x', {}, [], new Float64Array(3), new Float32Array(0), new Uint8Array(7), new Int32Array(6)];
    const nat = (rk as any).backends().cpu ? ((globalThis as any).__rkNative ?? null) : null;
    void nat;
    for (let i = 0; i < 300; i++) {
      const pick = () => junk[r.int(0, junk.length - 1)];
      const args: any = { logp: r.next() < 0.5 ? x.logp : pick(), refLogp: r.next() < 0.5 ? x.refLogp : pick(), mask: pick(), scores: pick() };
      const opts: any = { klCoef: r.next() < 0.5 ? 0.1 : pick(), estimator: r.next() < 0.5 ? 'k3' : pick(), clamp: pick(), backend: r.next() < 0.8 ? 'auto' : pick() };
      for (const f of [rk.klPenalty, rk.tokenRewards, rk.implicitRewards] as any[]) {
        try {
          f(args, opts);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
      }
    }
  });
});
