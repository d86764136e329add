/** The vectorisable scalar math of src/core/common.hpp (used by every kernel) against float64. */
import { describe, expect, it } from 'vitest';
import { native } from '../ts/native.js';

const cm = native as unknown as { coreMath(fn: string, x: Float32Array): Float32Array } | null;

describe.skipIf(!cm)('core math (src/core/common.hpp)', () => {
  const grid = (lo: number, hi: number, n: number) => Float32Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));
  const relErr = (got: number, want: number) => Math.abs(got - want) / Math.max(Math.abs(want), 1e-300);

  it('expf_ is within 2 ulp of exp on [-87, 88], exact at the edges', () => {
    const x = grid(-87, 88, 200001);
    const y = cm!.coreMath('exp', x);
    let worst = 0;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, relErr(y[i], Math.exp(x[i])));
    expect(worst).toBeLessThan(2.5e-7);
    const s = cm!.coreMath('exp', Float32Array.from([-Infinity, Infinity, NaN, 0, -200, 200, 89, -103]));
    expect(s[0]).toBe(0);
    expect(s[1]).toBe(Infinity);
    expect(Number.isNaN(s[2])).toBe(true);
    expect(s[3]).toBe(1);
    expect(s[4]).toBe(0);
    expect(s[5]).toBe(Infinity);
    expect(s[6]).toBe(Infinity);
    expect(s[7]).toBeLessThan(1e-44);
  });

  it('logf_ is within 2 ulp of log on normal floats, with log(0) = -inf and log(<0) = NaN', () => {
    const x = Float32Array.from({ length: 100000 }, (_, i) => Math.exp(-80 + (160 * i) / 99999));
    const y = cm!.coreMath('log', x);
    let worst = 0;
    for (let i = 0; i < x.length; i++) {
      const w = Math.log(x[i]);
      worst = Math.max(worst, Math.abs(y[i] - w) / Math.max(Math.abs(w), 1));
    }
    expect(worst).toBeLessThan(2.5e-7);
    const s = cm!.coreMath('log', Float32Array.from([0, -1, Infinity, NaN, 1]));
    expect(s[0]).toBe(-Infinity);
    expect(Number.isNaN(s[1])).toBe(true);
    expect(s[2]).toBe(Infinity);
    expect(Number.isNaN(s[3])).toBe(true);
    expect(s[4]).toBe(0);
  });

  it('log1p, softplus and sigmoid are stable for any argument', () => {
    const x = Float32Array.from([-1e4, -100, -20, -1, -1e-6, 0, 1e-6, 1, 20, 100, 1e4, 1e-30]);
    const sp = cm!.coreMath('softplus', x);
    const sg = cm!.coreMath('sigmoid', x);
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      const spRef = Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v)));
      const sgRef = v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v));
      expect(Math.abs(sp[i] - spRef)).toBeLessThanOrEqual(2e-7 * (1 + Math.abs(spRef)));
      expect(Math.abs(sg[i] - sgRef)).toBeLessThanOrEqual(2e-7 * Math.abs(sgRef) + 1e-45);
    }
    const l = cm!.coreMath('log1p', Float32Array.from([1e-10, 1e-5, 0.5, 1, -0.5]));
    [1e-10, 1e-5, 0.5, 1, -0.5].forEach((y, i) => expect(relErr(l[i], Math.log1p(Math.fround(y)))).toBeLessThan(3e-7));
  });
});

/**
 * The per-thread row math of the CUDA logprobs kernels (core/logprobs.hpp lse_push_k / lse_merge /
 * lse_finish / lp_grad), run on the host in the kernels' order, against the float64 js reference:
 * so that the GPU's arithmetic is checked on machines without a GPU too.
 */
const row = native as unknown as {
  coreLogprobsRow(x: Float32Array, label: number, invT: number, G: number, gl: number, ge: number): Float32Array;
} | null;
describe.skipIf(!row)('CUDA row math of logprobs on the host (core/logprobs.hpp)', () => {
  const mulberry = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = Math.imul(seed ^ (seed >>> 15), seed | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  /** float64 log-softmax row: logp[y], lse, entropy, and d/dx of (gl·logp_y + ge·H). */
  function refRow(x: Float32Array, y: number, invT: number, gl: number, ge: number) {
    const z = Array.from(x, (v) => Math.fround(v * invT));
    const m = Math.max(...z);
    const s = z.reduce((a, v) => a + Math.exp(v - m), 0);
    const lse = m + Math.log(s);
    const p = z.map((v) => Math.exp(v - lse));
    const H = -p.reduce((a, pj, j) => a + (pj > 0 ? pj * (z[j] - lse) : 0), 0);
    const grad = p.map((pj, j) => (-pj * (gl + ge * ((pj > 0 ? z[j] - lse : 0) + H)) + (j === y ? gl : 0)) * invT);
    return { logp: z[y] - lse, lse, H, grad };
  }
  it('random rows (odd V, tails, every group size) equal the reference', () => {
    const rnd = mulberry(7);
    for (const V of [1, 2, 3, 5, 7, 31, 64, 129, 1000, 4099]) {
      for (const G of [1, 4, 32]) {
        for (const invT of [1, 1 / 0.7]) {
          const x = Float32Array.from({ length: V }, () => 8 * (rnd() - 0.5));
          const y = Math.floor(rnd() * V);
          const [gl, ge] = [rnd() - 0.5, rnd() - 0.5];
          const got = row!.coreLogprobsRow(x, y, invT, G, gl, ge), want = refRow(x, y, invT, gl, ge);
          const what = `V=${V} G=${G} τ=${1 / invT}`;
          expect(Math.abs(got[0] - want.logp), `${what} logp`).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(want.logp) + 8 * invT));
          expect(Math.abs(got[1] - want.lse), `${what} lse`).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(want.lse)));
          expect(Math.abs(got[2] - want.H), `${what} entropy`).toBeLessThanOrEqual(1e-5 * (1 + Math.log(V) + 8 * invT));
          for (let j = 0; j < V; j++)
            expect(Math.abs(got[3 + j] - want.grad[j]), `${what} grad[${j}]`).toBeLessThanOrEqual(1e-5 * (Math.abs(gl) + Math.abs(ge) * (2 + Math.log(V) + 8 * invT)) * invT);
        }
      }
    }
  });
  it('a NaN anywhere in the row poisons every output and every gradient of the row', () => {
    for (const at of [0, 1, 3, 4, 6]) {
      const x = Float32Array.from([0.5, -1, 2, 0.25, 1, -3, 0]);
      x[at] = NaN;
      for (const ge of [0.5, 0]) {
        const got = row!.coreLogprobsRow(x, 2, 1, 4, 1, ge);
        for (let i = 0; i < got.length; i++) expect(Number.isNaN(got[i]), `NaN at ${at}, ge=${ge}: out[${i}]`).toBe(true);
      }
    }
  });
  it('a row with one finite logit: lse = that logit, entropy 0, logp 0 or −inf, gradient exactly 0', () => {
    for (const V of [1, 7, 40, 4099]) {
      for (const v of [3.5, -1e4, 1e4]) {
        const x = new Float32Array(V).fill(-Infinity);
        const hot = V >> 1;
        x[hot] = v;
        const got = row!.coreLogprobsRow(x, hot, 1, 32, 1, 1);
        expect(Array.from(got.subarray(0, 3)), `V=${V} v=${v}`).toEqual([0, v, 0]);
        expect(got.subarray(3).every((g) => g === 0), `V=${V} v=${v} grad`).toBe(true);
        if (V > 1) expect(row!.coreLogprobsRow(x, (hot + 1) % V, 1, 32, 1, 0)[0]).toBe(-Infinity);
      }
    }
  });
});
