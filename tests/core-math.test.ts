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
