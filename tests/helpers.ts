/** Shared test utilities: seeded random inputs, SPEC-precision comparison, poisoned outputs. */
import { expect } from 'vitest';
import * as rk from '../ts/index.js';
import { mulberry32 } from './prng.js';

/** Deterministic PRNG (mulberry32) with test-input helpers. */
export function rng(seed: number) {
  const { next, normal } = mulberry32(seed);
  return {
    next,
    normal,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    f32: (n: number, scale = 1, shift = 0) => Float32Array.from({ length: n }, () => shift + scale * normal()),
    uniform: (n: number, lo = 0, hi = 1) => Float32Array.from({ length: n }, () => lo + (hi - lo) * next()),
    /** A [B,T] mask with holes, empty rows, rows with the last token masked, and full rows. */
    mask: (B: number, T: number, kind: 'u8' | 'f32' = 'u8') => {
      const m = kind === 'u8' ? new Uint8Array(B * T) : new Float32Array(B * T);
      for (let b = 0; b < B; b++) {
        const style = b % 5;
        for (let t = 0; t < T; t++) {
          let v = 1;
          if (style === 1) v = 0; // empty row
          else if (style === 2) v = next() < 0.7 ? 1 : 0; // holes
          else if (style === 3) v = t < T - 1 - (b % 3) ? 1 : 0; // right padding, last tokens masked
          else if (style === 4) v = t >= (b % 4) ? 1 : 0; // left padding (prompt)
          m[b * T + t] = v;
        }
      }
      if (B === 1 && T > 1) m[T - 1] = 0; // a single row still has its last token masked
      return m;
    },
  };
}

/** Shapes that exercise edges: length 1, odd sizes, sizes around vector widths and thread splits. */
export const SHAPES_2D: [number, number][] = [
  [1, 1], [1, 7], [3, 1], [2, 5], [5, 17], [7, 33], [16, 64], [3, 1000], [33, 129], [64, 1031], [300, 257],
];

/**
 * SPEC precision: |got − ref| ≤ tol·(1 + S). S defaults to |ref| (single non-summed value); pass
 * the op's own scale for sums. NaN must match NaN and ±Inf must match exactly.
 */
export function expectClose(
  got: ArrayLike<number>, want: ArrayLike<number>, what: string,
  opts: { scale?: ArrayLike<number> | number; tol?: number } = {},
) {
  const tol = opts.tol ?? 1e-5;
  expect(got.length, `${what}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const g = got[i], w = want[i];
    const S = opts.scale === undefined ? Math.abs(w) : typeof opts.scale === 'number' ? opts.scale : opts.scale[i];
    let ok: boolean;
    if (Number.isNaN(w)) ok = Number.isNaN(g);
    else if (!Number.isFinite(w)) ok = g === w;
    else ok = Math.abs(g - w) <= tol * (1 + S);
    if (!ok) expect.fail(`${what}[${i}] = ${g}, expected ${w} (scale ${S}, tol ${tol})`);
  }
}

/** A float output buffer filled with NaN, to prove every element gets written. */
export function poisoned(shape: readonly number[], value = NaN): rk.Tensor<'f32'> {
  const n = shape.reduce((a, b) => a * b, 1);
  return rk.tensor(new Float32Array(n).fill(value), shape, 'f32');
}

export const f32 = (data: ArrayLike<number>, shape: number[]) => rk.tensor(Float32Array.from(data), shape, 'f32');

/** Native backends of this build (cpu always when the addon loads; cuda when a device exists). */
export function nativeBackends(): ('cpu' | 'cuda')[] {
  const b = rk.backends();
  return [...(b.cpu ? (['cpu'] as const) : []), ...(b.cuda.available ? (['cuda'] as const) : [])];
}

/** SIMD levels to run the CPU kernels at on this machine (all that it supports). */
export function simdLevels(): ('avx512' | 'avx2' | 'scalar')[] {
  const d = rk.backends();
  if (!d.cpu) return [];
  const order = ['scalar', 'avx2', 'avx512'] as const;
  const top = order.indexOf(d.simdDetected as (typeof order)[number]);
  return order.slice(0, top + 1).reverse();
}

/** Runs fn at every SIMD level (and restores the best one). */
export function atEverySimdLevel(fn: (level: string) => void) {
  const levels = simdLevels();
  try {
    for (const l of levels) {
      rk.setSimd(l);
      fn(l);
    }
  } finally {
    if (levels.length) rk.setSimd(levels[0]);
  }
}
