/** Prepacking family (SPEC §6): packing invariants and bounds, layouts, masks, unpack, packed attention. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { native } from '../ts/native.js';
import { packedAttentionImpl } from '../ts/ops/prepack.js';
import { atEverySimdLevel, expectClose, nativeBackends, poisoned, rng } from './helpers.js';
import { checkPackingCase } from './packing-invariants.js';

const i32 = (data: ArrayLike<number>, shape?: number[]) => rk.tensor(Int32Array.from(data), shape ?? [data.length], 'i32');
const BACKENDS = ['js', ...nativeBackends()] as const;

/** Plain O(n·P) FFD/BFD as the conformance README describes it (the reference layout). */
function naivePack(lengths: number[], capacity: number, algorithm: 'ffd' | 'bfd') {
  const n = lengths.length;
  const idx = [...Array(n).keys()].sort((a, b) => lengths[b] - lengths[a] || a - b);
  const loads: number[] = [], packOf = new Array(n).fill(0), offsetOf = new Array(n).fill(0);
  for (const i of idx) {
    const len = lengths[i];
    if (len === 0) continue;
    let best = -1;
    for (let p = 0; p < loads.length; p++) {
      if (loads[p] + len > capacity) continue;
      if (algorithm === 'ffd') { best = p; break; }
      if (best < 0 || loads[p] > loads[best]) best = p;
    }
    if (best < 0) { best = loads.length; loads.push(0); }
    packOf[i] = best;
    offsetOf[i] = loads[best];
    loads[best] += len;
  }
  return { packOf, offsetOf, packLengths: loads };
}

/** Minimum number of bins by exhaustive search (branch and bound; n ≤ 9). */
function optimalBins(lengths: number[], capacity: number): number {
  const xs = lengths.filter((l) => l > 0).sort((a, b) => b - a);
  let best = xs.length;
  const loads: number[] = [];
  const rec = (k: number) => {
    if (loads.length >= best) return;
    if (k === xs.length) { best = loads.length; return; }
    const seen = new Set<number>();
    for (let p = 0; p < loads.length; p++) {
      if (loads[p] + xs[k] > capacity || seen.has(loads[p])) continue;
      seen.add(loads[p]);
      loads[p] += xs[k];
      rec(k + 1);
      loads[p] -= xs[k];
    }
    loads.push(xs[k]);
    rec(k + 1);
    loads.pop();
  };
  rec(0);
  return best;
}

function randomLengths(r: ReturnType<typeof rng>, n: number, capacity: number, zeros = true) {
  return Array.from({ length: n }, () => {
    const u = r.next();
    if (zeros && u < 0.08) return 0;
    if (u < 0.2) return capacity; // exactly full
    return r.int(1, Math.max(1, Math.floor(capacity * (u < 0.6 ? 0.3 : 1))));
  });
}

describe('packSequences', () => {
  for (const backend of BACKENDS) {
    it(`[${backend}] equals the plain reference FFD/BFD layout; every sequence placed once, no pack over capacity`, () => {
      const r = rng(11);
      for (let trial = 0; trial < 120; trial++) {
        const n = trial < 5 ? trial : r.int(1, trial < 60 ? 40 : 400);
        const capacity = [1, 2, 7, 10, 64, 100, 1000][trial % 7];
        const lengths = randomLengths(r, n, capacity);
        for (const algorithm of ['ffd', 'bfd'] as const) {
          const got = rk.packSequences({ lengths: i32(lengths) }, { capacity, algorithm, backend });
          const want = naivePack(lengths, capacity, algorithm);
          expect(Array.from(got.packOf.data), `${algorithm} packOf`).toEqual(want.packOf);
          expect(Array.from(got.offsetOf.data), `${algorithm} offsetOf`).toEqual(want.offsetOf);
          expect(Array.from(got.packLengths.data), `${algorithm} packLengths`).toEqual(want.packLengths);
          // invariants, independently of the reference
          const P = got.packLengths.shape[0];
          const used = new Array(P).fill(0);
          const cells = Array.from({ length: P }, () => new Uint8Array(capacity));
          lengths.forEach((len, i) => {
            if (!len) return;
            const p = got.packOf.data[i], o = got.offsetOf.data[i];
            if (!(p >= 0 && p < P && o >= 0 && o + len <= capacity)) expect.fail(`sequence ${i} outside the packs`);
            for (let t = o; t < o + len; t++) {
              if (cells[p][t]) expect.fail(`sequence ${i} overlaps another in pack ${p}`);
              cells[p][t] = 1;
            }
            used[p] += len;
          });
          expect(used).toEqual(Array.from(got.packLengths.data));
          for (const u of used) expect(u > 0 && u <= capacity).toBe(true);
        }
      }
    });

    it(`[${backend}] FFD and BFD use at most 11/9·OPT + 6/9 packs (OPT by exhaustive search)`, () => {
      const r = rng(12);
      let worseThanOpt = 0;
      for (let trial = 0; trial < 300; trial++) {
        const n = r.int(1, 9);
        const capacity = r.int(5, 30);
        const lengths = Array.from({ length: n }, () => r.int(1, capacity));
        const opt = optimalBins(lengths, capacity);
        for (const algorithm of ['ffd', 'bfd'] as const) {
          const P = rk.packSequences({ lengths: i32(lengths) }, { capacity, algorithm, backend }).packLengths.shape[0];
          expect(P).toBeGreaterThanOrEqual(opt);
          expect(P, `${algorithm} ${lengths} cap ${capacity}: ${P} packs, OPT ${opt}`).toBeLessThanOrEqual((11 / 9) * opt + 6 / 9 + 1e-9);
          if (P > opt) worseThanOpt++;
        }
      }
      // the search is not vacuous: FFD/BFD are sometimes suboptimal on these instances
      expect(worseThanOpt).toBeGreaterThan(0);
    });

    it(`[${backend}] a known instance where FFD and BFD differ`, () => {
      // [4,7,2,4,1] at capacity 10: FFD packs {7,2,1},{4,4}; BFD {7,1} then 2 joins {4,4}
      const f = rk.packSequences({ lengths: i32([4, 7, 2, 4, 1]) }, { capacity: 10, backend });
      expect(Array.from(f.packLengths.data)).toEqual([10, 8]);
      const b = rk.packSequences({ lengths: i32([4, 7, 2, 4, 1]) }, { capacity: 10, algorithm: 'bfd', backend });
      expect(Array.from(b.packLengths.data)).toEqual([8, 10]);
    });

    it(`[${backend}] O(n log n): 200k sequences pack quickly; all zero-length; empty input`, () => {
      const r = rng(13);
      const n = 200_000;
      const lengths = new Int32Array(n);
      for (let i = 0; i < n; i++) lengths[i] = 1 + Math.floor(r.next() ** 3 * 4095);
      for (const algorithm of ['ffd', 'bfd'] as const) {
        let ms = Infinity, res!: rk.PackSequencesResult;
        for (let rep = 0; rep < 3 && ms > 300; rep++) {
          const t0 = performance.now();
          res = rk.packSequences({ lengths: rk.tensor(lengths, [n], 'i32') }, { capacity: 4096, algorithm, backend });
          ms = Math.min(ms, performance.now() - t0);
        }
        // ~50k packs: an O(n·P) first fit is ~10^10 steps (minutes in js, >10 s native); best of 3
        // on a shared machine, not under the sanitizers
        if (!process.env.RLHF_KERNELS_SANITIZED) expect(ms, `${algorithm} took ${ms} ms`).toBeLessThan(backend === 'js' ? 10000 : 5000);
        let total = 0;
        for (let i = 0; i < n; i++) total += lengths[i];
        const P = res.packLengths.shape[0];
        expect(P).toBeGreaterThanOrEqual(Math.ceil(total / 4096));
        expect(P).toBeLessThan(Math.ceil(total / 4096) * 1.1 + 2);
      }
      const z = rk.packSequences({ lengths: i32([0, 0, 0]) }, { capacity: 4, backend });
      expect(z.packLengths.shape).toEqual([0]);
      expect(Array.from(z.packOf.data)).toEqual([0, 0, 0]);
      const e = rk.packSequences({ lengths: i32([]) }, { capacity: 4, backend });
      expect(e.packOf.shape).toEqual([0]);
      expect(e.packLengths.shape).toEqual([0]);
    });
  }
});


/** prepack's outputs for random prompts, checked by the conformance checker against the definition. */
function prepackCase(tokens: number[], lengths: number[], options: Record<string, unknown>, res: any, P: number) {
  const c = {
    op: 'prepack', note: `random n=${lengths.length}`, options,
    inputs: { tokens: { data: tokens }, lengths: { data: lengths } },
    invariants: { packCount: P },
    // the expected layout: the plain reference packing
    expected: {} as Record<string, any>,
  };
  checkPackingCase(c, res, null);
}

describe('prepack', () => {
  for (const backend of BACKENDS) {
    it(`[${backend}] outputs agree with the layout as SPEC §6 defines them (random, holdLast, padId)`, () => {
      const r = rng(21);
      for (let trial = 0; trial < 60; trial++) {
        const n = r.int(0, 30);
        const capacity = [1, 3, 8, 16, 50][trial % 5];
        const holdLast = trial % 3 === 1;
        const lengths = randomLengths(r, n, capacity).map((l) => (holdLast && r.next() < 0.5 ? Math.min(l + 1, capacity + 1) : l));
        const tokens = lengths.flatMap((l) => Array.from({ length: l }, () => r.int(0, 50000)));
        const options = { capacity, algorithm: trial % 2 ? 'bfd' : 'ffd', padId: trial % 4 === 0 ? -7 : 0, holdLast } as const;
        const res = rk.prepack({ tokens: i32(tokens), lengths: i32(lengths) }, { ...options, backend });
        const packed = lengths.map((l) => (holdLast ? Math.max(0, l - 1) : l));
        const want = naivePack(packed, capacity, options.algorithm);
        expect(res.inputIds.shape).toEqual([want.packLengths.length, capacity]);
        prepackCase(tokens, lengths, options, res, want.packLengths.length);
        packed.forEach((l, i) => {
          if (l) expect([res.packOf.data[i], res.offsetOf.data[i]]).toEqual([want.packOf[i], want.offsetOf[i]]);
        });
        if (backend !== 'js') {
          const js = rk.prepack({ tokens: i32(tokens), lengths: i32(lengths) }, { ...options, backend: 'js' });
          for (const k of Object.keys(js) as (keyof typeof js)[]) expect(Array.from(res[k]!.data), k).toEqual(Array.from(js[k]!.data));
        }
      }
    });

    it(`[${backend}] hand case: positions restart, segments 1..m, restore, order, cuSeqlens, held`, () => {
      // lengths 3, 0, 2, 4 at capacity 5: FFD → pack0 {4}, pack1 {3, 2}
      const tokens = [10, 11, 12, 20, 21, 30, 31, 32, 33];
      const res = rk.prepack({ tokens: i32(tokens), lengths: i32([3, 0, 2, 4]) }, { capacity: 5, padId: 9, backend });
      expect(Array.from(res.inputIds.data)).toEqual([30, 31, 32, 33, 9, 10, 11, 12, 20, 21]);
      expect(Array.from(res.positionIds.data)).toEqual([0, 1, 2, 3, 0, 0, 1, 2, 0, 1]);
      expect(Array.from(res.segmentIds.data)).toEqual([1, 1, 1, 1, 0, 1, 1, 1, 2, 2]);
      expect(Array.from(res.restore.data)).toEqual([7, -1, 9, 3]);
      expect(Array.from(res.order.data)).toEqual([3, 0, 2, 1]);
      expect(Array.from(res.cuSeqlens.data)).toEqual([0, 4, 7, 9, 9]);
      expect(res.held).toBeUndefined();
      const h = rk.prepack({ tokens: i32(tokens), lengths: i32([3, 0, 2, 4]) }, { capacity: 3, holdLast: true, backend });
      expect(Array.from(h.held!.data)).toEqual([12, 0, 21, 33]); // empty sequence: padId
      expect(Array.from(h.inputIds.data)).toEqual([30, 31, 32, 10, 11, 20]);
      expect(Array.from(h.restore.data)).toEqual([4, -1, 5, 2]);
    });

    it(`[${backend}] options.out buffers are written in place`, () => {
      const out = { inputIds: i32(new Array(4).fill(-99), [1, 4]), restore: i32([-5, -5]) };
      const res = rk.prepack({ tokens: i32([1, 2, 3]), lengths: i32([1, 2]) }, { capacity: 4, backend, out });
      expect(res.inputIds).toBe(out.inputIds);
      expect(Array.from(out.inputIds.data)).toEqual([2, 3, 1, 0]);
      expect(Array.from(out.restore.data)).toEqual([2, 1]);
    });
  }

  it('errors: SPEC §0 classes', () => {
    const t = i32([1, 2, 3]), l = i32([1, 2]);
    const bad: [() => unknown, ErrorConstructor][] = [
      [() => rk.prepack({ tokens: t, lengths: i32([1, 3]) }, { capacity: 4 }), RangeError], // sum mismatch
      [() => rk.prepack({ tokens: t, lengths: l }, { capacity: 1 }), RangeError], // length 2 > capacity
      [() => rk.prepack({ tokens: t, lengths: l }, { capacity: 1, holdLast: true }), Error], // fits after holdLast: no error (checked below)
      [() => rk.prepack({ tokens: t, lengths: i32([4, -1]) }, { capacity: 8 }), RangeError],
      [() => rk.prepack({ tokens: t, lengths: l } as any, {} as any), TypeError], // capacity missing
      [() => rk.prepack({ tokens: t, lengths: l }, { capacity: 2 ** 31 }), RangeError],
      [() => rk.prepack({ tokens: t, lengths: l }, { capacity: 0 }), RangeError],
      [() => rk.prepack({ tokens: t, lengths: l }, { capacity: 2.5 }), RangeError],
      [() => rk.prepack({ tokens: t, lengths: l }, { capacity: '4' as any }), TypeError],
      [() => rk.prepack({ tokens: t, lengths: l }, { capacity: 4, algorithm: 'nfd' as any }), RangeError],
      [() => rk.prepack({ tokens: t, lengths: l }, { capacity: 4, padId: 2 ** 31 }), RangeError],
      [() => rk.prepack({ tokens: t, lengths: l }, { capacity: 4, holdLast: 1 as any }), TypeError],
      [() => rk.prepack({ tokens: rk.tensor(Float32Array.from([1, 2, 3]), [3]), lengths: l }, { capacity: 4 }), TypeError],
      [() => rk.prepack({ tokens: i32([1, 2, 3], [1, 3]), lengths: l }, { capacity: 4 }), RangeError],
      [() => rk.prepack({ lengths: l } as any, { capacity: 4 }), TypeError],
      [() => rk.packSequences({ lengths: i32([3, 9]) }, { capacity: 8 }), RangeError],
      [() => rk.packSequences({ lengths: i32([3, -1]) }, { capacity: 8 }), RangeError],
      [() => rk.packSequences({ lengths: rk.tensor(Float32Array.from([3]), [1]) }, { capacity: 8 }), TypeError],
      [() => rk.packSequences({ lengths: i32([3], [1, 1]) }, { capacity: 8 }), RangeError],
      [() => rk.packSequences({ lengths: i32([3]) }, { capacity: 8, backend: 'tpu' as any }), RangeError],
    ];
    for (const [k, [f, E]] of bad.entries()) {
      if (k === 2) { expect(f).not.toThrow(); continue; }
      expect(f, `case ${k}`).toThrow(E);
      try { f(); } catch (e) { expect((e as Error).name, `case ${k}`).toBe(E.name); }
    }
  });
});

describe('attentionMask', () => {
  const segCases = (r: ReturnType<typeof rng>) => [
    { P: 1, L: 1, seg: [1] },
    { P: 1, L: 1, seg: [0] },
    { P: 2, L: 6, seg: [1, 1, 2, 2, 2, 0, 1, 2, 3, 0, 0, 0] },
    { P: 3, L: 37, seg: Array.from({ length: 111 }, (_, x) => Math.min(4, Math.floor((x % 37) / 9))) },
    // non-contiguous and arbitrary ids: the definition, not runs
    { P: 2, L: 70, seg: Array.from({ length: 140 }, () => r.int(-2, 3)) },
    { P: 1, L: 257, seg: Array.from({ length: 257 }, (_, x) => (x < 250 ? 1 + Math.floor(x / 100) : 0)) },
  ];
  for (const backend of BACKENDS) {
    it(`[${backend}] equals its definition, bool and additive, poisoned outputs overwritten`, () => {
      atEverySimdLevel((level) => {
        for (const { P, L, seg } of segCases(rng(31))) {
          const s = i32(seg, [P, L]);
          const b = rk.attentionMask({ segmentIds: s }, { backend, out: { mask: rk.tensor(new Uint8Array(P * L * L).fill(7), [P, L, L]) } }).mask;
          const f = rk.attentionMask({ segmentIds: s }, { format: 'additive', backend, out: { mask: poisoned([P, L, L]) } }).mask;
          expect(b.dtype).toBe('u8');
          expect(f.dtype).toBe('f32');
          expect(b.shape).toEqual([P, L, L]);
          for (let p = 0; p < P; p++)
            for (let i = 0; i < L; i++)
              for (let j = 0; j < L; j++) {
                const on = seg[p * L + i] !== 0 && seg[p * L + i] === seg[p * L + j] && j <= i;
                const x = (p * L + i) * L + j;
                if (b.data[x] !== (on ? 1 : 0) || f.data[x] !== (on ? 0 : -Infinity))
                  expect.fail(`${level} P${P} L${L} mask[${p},${i},${j}] = ${b.data[x]}/${f.data[x]}, expected ${on}`);
              }
        }
      });
    });
  }
  it('errors', () => {
    expect(() => rk.attentionMask({ segmentIds: i32([1, 1]) })).toThrow(RangeError); // rank 1
    expect(() => rk.attentionMask({ segmentIds: rk.tensor(Float32Array.from([1]), [1, 1]) })).toThrow(TypeError);
    expect(() => rk.attentionMask({ segmentIds: i32([1], [1, 1]) }, { format: 'float' as any })).toThrow(RangeError);
    expect(() => rk.attentionMask({ segmentIds: i32([1], [1, 1]) }, { format: 'additive', out: { mask: rk.tensor(new Uint8Array(1), [1, 1, 1]) } })).toThrow(TypeError);
  });
});

describe('unpack', () => {
  for (const backend of BACKENDS) {
    it(`[${backend}] inverts prepack: packed per-token features back to the left-padded batch`, () => {
      const r = rng(41);
      for (let trial = 0; trial < 30; trial++) {
        const n = r.int(1, 20), capacity = r.int(1, 40), D = [1, 3, 8][trial % 3];
        const lengths = randomLengths(r, n, capacity);
        const tokens = lengths.flatMap((l) => Array.from({ length: l }, () => r.int(1, 1000)));
        const pk = rk.prepack({ tokens: i32(tokens), lengths: i32(lengths) }, { capacity, algorithm: trial % 2 ? 'bfd' : 'ffd', backend });
        const [P, L] = pk.inputIds.shape;
        // a "hidden state" per packed token: (token id, position, d)
        const feat = (tok: number, pos: number, d: number) => tok + pos / 64 + d / 4096;
        const packed = new Float32Array(P * L * D);
        for (let x = 0; x < P * L; x++) for (let d = 0; d < D; d++) packed[x * D + d] = feat(pk.inputIds.data[x], pk.positionIds.data[x], d);
        const { rows } = rk.unpack(
          { packed: rk.tensor(packed, [P, L, D]), packOf: pk.packOf, offsetOf: pk.offsetOf, lengths: i32(lengths) },
          { backend, out: { rows: poisoned([n, Math.max(0, ...lengths), D]) } },
        );
        const maxLen = Math.max(0, ...lengths);
        expect(rows.shape).toEqual([n, maxLen, D]);
        let s = 0;
        for (let i = 0; i < n; i++) {
          for (let t = 0; t < maxLen; t++)
            for (let d = 0; d < D; d++) {
              const pad = maxLen - lengths[i];
              const want = t < pad ? 0 : Math.fround(feat(tokens[s + t - pad], t - pad, d));
              const got = rows.data[(i * maxLen + t) * D + d];
              if (got !== want) expect.fail(`rows[${i},${t},${d}] = ${got}, expected ${want}`);
            }
          s += lengths[i];
        }
      }
    });

    it(`[${backend}] f64 input, zero-length rows, no sequences`, () => {
      const packed = rk.tensor(Float64Array.from([1, 2, 3, 4, 5, 6]), [1, 3, 2]);
      const r1 = rk.unpack({ packed, packOf: i32([0, 5]), offsetOf: i32([1, 99]), lengths: i32([2, 0]) }, { backend }).rows;
      expect(r1.shape).toEqual([2, 2, 2]);
      expect(Array.from(r1.data)).toEqual([3, 4, 5, 6, 0, 0, 0, 0]);
      const r0 = rk.unpack({ packed, packOf: i32([]), offsetOf: i32([]), lengths: i32([]) }, { backend }).rows;
      expect(r0.shape).toEqual([0, 0, 2]);
    });
  }
  it('errors: layouts outside the packed tensor', () => {
    const packed = rk.tensor(new Float32Array(12), [2, 3, 2]);
    const call = (p: number, o: number, l: number) => () => rk.unpack({ packed, packOf: i32([p]), offsetOf: i32([o]), lengths: i32([l]) });
    expect(call(2, 0, 1)).toThrow(RangeError);
    expect(call(-1, 0, 1)).toThrow(RangeError);
    expect(call(0, 2, 2)).toThrow(RangeError);
    expect(call(0, -1, 1)).toThrow(RangeError);
    expect(call(0, 0, -1)).toThrow(RangeError);
    expect(() => rk.unpack({ packed, packOf: i32([0, 0]), offsetOf: i32([0]), lengths: i32([1]) })).toThrow(RangeError);
    expect(() => rk.unpack({ packed: rk.tensor(new Float32Array(6), [6]), packOf: i32([0]), offsetOf: i32([0]), lengths: i32([1]) })).toThrow(RangeError);
    expect(() => rk.unpack({ packed, packOf: rk.tensor(Float32Array.from([0]), [1]), offsetOf: i32([0]), lengths: i32([1]) })).toThrow(TypeError);
  });
});

// ---------------------------------------------------------------------------------------------

/** Dense causal attention of one prompt [len, H, Dh] (float64), with the SPEC scale S per element. */
function denseCausal(q: Float64Array, k: Float64Array, v: Float64Array, len: number, H: number, Hkv: number, Dh: number, scale: number) {
  const out = new Float64Array(len * H * Dh), S = new Float64Array(len * H * Dh), Sv = new Float64Array(len * H * Dh);
  const G = H / Hkv;
  for (let i = 0; i < len; i++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / G);
      const s: number[] = [], sAbs: number[] = [];
      for (let j = 0; j <= i; j++) {
        let dot = 0, abs = 0;
        for (let d = 0; d < Dh; d++) {
          const x = q[(i * H + h) * Dh + d] * k[(j * Hkv + g) * Dh + d];
          dot += x;
          abs += Math.abs(x);
        }
        s.push(scale * dot);
        sAbs.push(Math.abs(scale) * abs);
      }
      const m = Math.max(...s);
      const p = s.map((x) => Math.exp(x - m));
      const z = p.reduce((a, b) => a + b, 0);
      for (let d = 0; d < Dh; d++) {
        let o = 0;
        for (let j = 0; j <= i; j++) o += (p[j] / z) * v[(j * Hkv + g) * Dh + d];
        let sc = 0, sv = 0;
        for (let j = 0; j <= i; j++) {
          const vj = v[(j * Hkv + g) * Dh + d];
          sc += (p[j] / z) * (Math.abs(vj) + Math.abs(vj - o) * sAbs[j]);
          sv += (p[j] / z) * Math.abs(vj);
        }
        out[(i * H + h) * Dh + d] = o;
        S[(i * H + h) * Dh + d] = sc;
        Sv[(i * H + h) * Dh + d] = sv;
      }
    }
  return { out, S, Sv };
}

type Dt = 'f32' | 'f16' | 'bf16';
function qkvTensor(vals: Float64Array, shape: number[], dt: Dt) {
  if (dt === 'f32') return rk.tensor(Float32Array.from(vals), shape, 'f32');
  const enc = dt === 'f16' ? rk.floatToF16 : rk.floatToBf16;
  return rk.tensor(Uint16Array.from(vals, enc), shape, dt);
}
function widened(t: rk.Tensor): Float64Array {
  if (t.dtype === 'f32') return Float64Array.from(t.data as Float32Array);
  const dec = t.dtype === 'f16' ? rk.f16ToFloat : rk.bf16ToFloat;
  return Float64Array.from(t.data as Uint16Array, dec);
}

/** Random prompts packed with prepack, q/k/v random; returns everything needed to compare per prompt. */
function packedProblem(seed: number, n: number, capacity: number, H: number, Hkv: number, Dh: number, dt: Dt, amp = 1) {
  const r = rng(seed);
  const lengths = randomLengths(r, n, capacity);
  const tokens = lengths.flatMap((l) => Array.from({ length: l }, () => 1));
  const pk = rk.prepack({ tokens: i32(tokens), lengths: i32(lengths) }, { capacity });
  const [P, L] = pk.segmentIds.shape;
  const rnd = (m: number) => Float64Array.from({ length: m }, () => amp * r.normal());
  const q = qkvTensor(rnd(P * L * H * Dh), [P, L, H, Dh], dt);
  const k = qkvTensor(rnd(P * L * Hkv * Dh), [P, L, Hkv, Dh], dt);
  const v = qkvTensor(rnd(P * L * Hkv * Dh), [P, L, Hkv, Dh], dt);
  return { lengths, pk, P, L, q, k, v };
}

/** Compares packed attention with dense attention of each prompt computed separately. */
function comparePerPrompt(x: ReturnType<typeof packedProblem>, out: Float32Array, H: number, Hkv: number, Dh: number, scale: number, tol: { rel?: number }, what: string) {
  const qw = widened(x.q), kw = widened(x.k), vw = widened(x.v);
  const { L } = x;
  const seen = new Uint8Array(x.P * L);
  x.lengths.forEach((len, i) => {
    if (!len) return;
    const base = x.pk.packOf.data[i] * L + x.pk.offsetOf.data[i];
    const sl = (a: Float64Array, h: number) => a.slice(base * h * Dh, (base + len) * h * Dh);
    const d = denseCausal(sl(qw, H), sl(kw, Hkv), sl(vw, Hkv), len, H, Hkv, Dh, scale);
    const got = out.subarray(base * H * Dh, (base + len) * H * Dh);
    if (tol.rel !== undefined) {
      // f16/bf16: 2e-3 relative to the magnitude of the weighted values, Σ p_j |v_j| / Σ p_j
      for (let e = 0; e < got.length; e++)
        if (!(Math.abs(got[e] - d.out[e]) <= tol.rel * (Math.abs(d.out[e]) + d.Sv[e])))
          expect.fail(`${what}: prompt ${i} [${e}] = ${got[e]}, expected ${d.out[e]}`);
    } else expectClose(got, d.out, `${what} prompt ${i}`, { scale: d.S });
    seen.fill(1, base, base + len);
  });
  // padding rows are zeros
  for (let x2 = 0; x2 < x.P * L; x2++)
    if (!seen[x2]) for (let e = 0; e < H * Dh; e++) if (out[x2 * H * Dh + e] !== 0) expect.fail(`${what}: padding row ${x2} not zero`);
}

const ATTN_SHAPES: [number, number, number, number, number][] = [
  // n prompts, capacity, H, Hkv, Dh
  [1, 1, 1, 1, 1],
  [3, 5, 2, 1, 3],
  [6, 17, 4, 2, 8],
  [8, 70, 4, 4, 16],
  [10, 130, 8, 2, 64],
  [5, 200, 6, 3, 65],
  [4, 64, 2, 2, 128],
];

describe('packedAttention', () => {
  for (const backend of BACKENDS) {
    it(`[${backend}] f32 equals per-prompt dense causal attention within SPEC precision (GQA, every SIMD level)`, () => {
      const levels = backend === 'js' ? (fn: (l: string) => void) => fn('js') : atEverySimdLevel;
      levels((level) => {
        for (const [si, [n, cap, H, Hkv, Dh]] of ATTN_SHAPES.entries()) {
          if (backend === 'js' && cap > 100) continue;
          const x = packedProblem(500 + si, n, cap, H, Hkv, Dh, 'f32');
          const scale = si % 2 ? 1 / Math.sqrt(Dh) : 0.7;
          const o = si % 2 ? {} : { scale };
          const { out } = rk.packedAttention({ q: x.q, k: x.k, v: x.v, segmentIds: x.pk.segmentIds }, { ...o, backend, out: { out: poisoned(x.q.shape) } });
          comparePerPrompt(x, out.data, H, Hkv, Dh, scale, {}, `${backend} ${level} shape#${si}`);
        }
      });
    });

    it(`[${backend}] f16 and bf16 inputs (widened exactly) within 2e-3 relative`, () => {
      for (const dt of ['f16', 'bf16'] as const)
        for (const [si, [n, cap, H, Hkv, Dh]] of ATTN_SHAPES.entries()) {
          if (backend === 'js' && cap > 100) continue;
          const x = packedProblem(600 + si, n, cap, H, Hkv, Dh, dt);
          const { out } = rk.packedAttention({ q: x.q, k: x.k, v: x.v, segmentIds: x.pk.segmentIds }, { backend });
          comparePerPrompt(x, out.data, H, Hkv, Dh, 1 / Math.sqrt(Dh), { rel: 2e-3 }, `${backend} ${dt} shape#${si}`);
          if (backend === 'cpu') {
            // on the CPU the widened values go through the f32 kernel: SPEC precision too
            comparePerPrompt(x, out.data, H, Hkv, Dh, 1 / Math.sqrt(Dh), {}, `${backend} ${dt} shape#${si} (SPEC)`);
          }
        }
    });
  }

  for (const backend of nativeBackends()) {
    it(`[${backend}] equals the js reference on arbitrary (non-contiguous) segment ids and large logits`, () => {
      const r = rng(71);
      for (const [P, L, H, Hkv, Dh, amp] of [[2, 67, 4, 2, 8, 1], [1, 150, 2, 1, 16, 6], [3, 33, 3, 1, 5, 0.1]] as const) {
        const seg = i32(Array.from({ length: P * L }, () => r.int(0, 3)), [P, L]);
        const q = rk.tensor(r.f32(P * L * H * Dh, amp), [P, L, H, Dh]);
        const k = rk.tensor(r.f32(P * L * Hkv * Dh, amp), [P, L, Hkv, Dh]);
        const v = rk.tensor(r.f32(P * L * Hkv * Dh), [P, L, Hkv, Dh]);
        const want = rk.packedAttention({ q, k, v, segmentIds: seg }, { backend: 'js' }).out;
        const got = rk.packedAttention({ q, k, v, segmentIds: seg }, { backend }).out;
        // S bounded by |v|max·(1 + 2·scale·Σ|q||k|): a loose, valid SPEC scale here
        let vmax = 0, qk = 0;
        for (const x of v.data as Float32Array) vmax = Math.max(vmax, Math.abs(x));
        for (const x of q.data as Float32Array) qk = Math.max(qk, Math.abs(x));
        let km = 0;
        for (const x of k.data as Float32Array) km = Math.max(km, Math.abs(x));
        expectClose(got.data, want.data, `noncontiguous P${P} L${L}`, { scale: vmax * (1 + 2 * (Dh * qk * km) / Math.sqrt(Dh)) });
      }
    });

    it(`[${backend}] masked keys are never read: NaN/Inf there change nothing; NaN in a counted query propagates`, () => {
      const P = 1, L = 70, H = 2, Hkv = 1, Dh = 4;
      const r = rng(72);
      const segArr = Array.from({ length: L }, (_, i) => (i < 30 ? 1 : i < 66 ? 2 : 0));
      const seg = i32(segArr, [P, L]);
      const q = r.f32(L * H * Dh), k = r.f32(L * Dh), v = r.f32(L * Dh);
      const base = rk.packedAttention({ q: rk.tensor(q, [P, L, H, Dh]), k: rk.tensor(k, [P, L, Hkv, Dh]), v: rk.tensor(v, [P, L, Hkv, Dh]), segmentIds: seg }, { backend }).out.data;
      const k2 = k.slice(), v2 = v.slice(), q2 = q.slice();
      for (let j = 66; j < L; j++) for (let d = 0; d < Dh; d++) { k2[j * Dh + d] = NaN; v2[j * Dh + d] = Infinity; q2[(j * H) * Dh + d] = NaN; }
      const got = rk.packedAttention({ q: rk.tensor(q2, [P, L, H, Dh]), k: rk.tensor(k2, [P, L, Hkv, Dh]), v: rk.tensor(v2, [P, L, Hkv, Dh]), segmentIds: seg }, { backend }).out.data;
      expect(Array.from(got)).toEqual(Array.from(base));
      const q3 = q.slice();
      q3[(40 * H + 1) * Dh] = NaN; // row 40, head 1
      const g3 = rk.packedAttention({ q: rk.tensor(q3, [P, L, H, Dh]), k: rk.tensor(k, [P, L, Hkv, Dh]), v: rk.tensor(v, [P, L, Hkv, Dh]), segmentIds: seg }, { backend }).out.data;
      for (let i = 0; i < L; i++)
        for (let h = 0; h < H; h++) {
          const isNan = Number.isNaN(g3[(i * H + h) * Dh]);
          expect(isNan, `row ${i} head ${h}`).toBe(i === 40 && h === 1);
        }
    });

    it(`[${backend}] f16/bf16 with Dh 64 and 128 (cuda: the tensor-core kernels) equal the js reference: one long segment with large logits; NaN/±Inf in masked keys never read, in visible keys propagated`, () => {
      const r = rng(74);
      const H = 2, Hkv = 1;
      for (const dt of ['f16', 'bf16'] as const)
        for (const Dh of [64, 128])
          for (const layout of ['long', 'non-finite'] as const) {
            const L = layout === 'long' ? 300 : 150;
            // long: one segment (the tiles every row sees whole), 10 padding rows at the end;
            // non-finite: segments 1 (rows 0–59) and 2 (60–139), padding after
            const segArr = Array.from({ length: L }, (_, i) => (layout === 'long' ? (i < 290 ? 7 : 0) : i < 60 ? 1 : i < 140 ? 2 : 0));
            const amp = layout === 'long' ? 2 : 1;
            const q = Float64Array.from({ length: L * H * Dh }, () => amp * r.normal());
            const k = Float64Array.from({ length: L * Hkv * Dh }, () => amp * r.normal());
            const v = Float64Array.from(r.uniform(L * Hkv * Dh, -1, 1));
            if (layout === 'non-finite') {
              for (let d = 0; d < Dh; d++) {
                v[100 * Dh + d] = Infinity; // segment 2: seen by rows ≥ 100 only
                k[145 * Dh + d] = NaN; // padding keys and a padding query row
                v[146 * Dh + d] = NaN;
                q[(147 * H + 1) * Dh + d] = NaN;
              }
              v[30 * Dh + 5] = NaN; // segment 1: rows ≥ 30, column 5
              v[70 * Dh + 3] = -Infinity; // segment 2: rows ≥ 70, column 3 (NaN with the +Inf from row 100)
            }
            const inputs = {
              q: qkvTensor(q, [1, L, H, Dh], dt), k: qkvTensor(k, [1, L, Hkv, Dh], dt), v: qkvTensor(v, [1, L, Hkv, Dh], dt),
              segmentIds: i32(segArr, [1, L]),
            };
            const want = rk.packedAttention(inputs, { backend: 'js' }).out.data;
            const got = rk.packedAttention(inputs, { backend, out: { out: poisoned([1, L, H, Dh], 1e30) } }).out.data;
            // P rounded to 16 bits (f16: 2^-11; bf16 hi + lo): ≤ 2^-11·max|v| ≤ 2e-3·(1 + max|v|)
            expectClose(got, want, `${backend} ${dt} Dh${Dh} ${layout}`, { scale: 1, tol: 2e-3 });
            if (layout === 'non-finite') expect(Array.from(want).filter(Number.isNaN).length).toBe(140);
          }
    });

    it(`[${backend}] skips key tiles outside the segments: packed does far fewer tiles than one long causal segment`, () => {
      const P = 1, L = 1024, H = 2, Hkv = 2, Dh = 8;
      const q = rk.tensor(new Float32Array(P * L * H * Dh), [P, L, H, Dh]);
      const k = rk.tensor(new Float32Array(P * L * Hkv * Dh), [P, L, Hkv, Dh]);
      const one = i32(new Array(L).fill(1), [P, L]);
      const many = i32(Array.from({ length: L }, (_, i) => 1 + Math.floor(i / 64)), [P, L]);
      const a = packedAttentionImpl({ q, k, v: k, segmentIds: one }, { backend }).tiles;
      const b = packedAttentionImpl({ q, k, v: k, segmentIds: many }, { backend }).tiles;
      expect(a.tilesComputed).toBeGreaterThan(4 * b.tilesComputed);
      expect(b.tilesSkipped).toBeGreaterThan(0);
      expect(a.tilesSkipped).toBe(0);
    });
  }

  it('hand case: two one-token segments attend only themselves; padding row zero; GQA head mapping', () => {
    // H = 4, Hkv = 2: heads 0,1 use kv head 0; heads 2,3 kv head 1.
    const q = rk.tensor(Float32Array.from({ length: 3 * 4 * 1 }, (_, i) => i / 10), [1, 3, 4, 1]);
    const k = rk.tensor(Float32Array.from([1, 2, 3, 4, 5, 6]), [1, 3, 2, 1]);
    const v = rk.tensor(Float32Array.from([10, 20, 30, 40, 50, 60]), [1, 3, 2, 1]);
    for (const backend of BACKENDS) {
      const out = rk.packedAttention({ q, k, v, segmentIds: i32([1, 2, 0], [1, 3]) }, { backend }).out.data;
      expect(Array.from(out), backend).toEqual([10, 10, 20, 20, 30, 30, 40, 40, 0, 0, 0, 0]);
      // one segment: row 1 mixes keys 0 and 1 with softmax weights
      const o2 = rk.packedAttention({ q, k, v, segmentIds: i32([1, 1, 1], [1, 3]) }, { backend, scale: 1 }).out.data;
      const w = (qv: number, k0: number, k1: number) => 1 / (1 + Math.exp(qv * (k1 - k0)));
      const h0 = w(0.4, 1, 3), h2 = w(0.6, 2, 4);
      expectClose([o2[4], o2[6]], [h0 * 10 + (1 - h0) * 30, h2 * 20 + (1 - h2) * 40], `${backend} softmax`);
    }
  });

  it('errors', () => {
    const q = rk.tensor(new Float32Array(2 * 3 * 4 * 2), [2, 3, 4, 2]);
    const k = rk.tensor(new Float32Array(2 * 3 * 2 * 2), [2, 3, 2, 2]);
    const seg = i32(new Array(6).fill(1), [2, 3]);
    expect(() => rk.packedAttention({ q, k, v: k, segmentIds: seg })).not.toThrow();
    const k3 = rk.tensor(new Float32Array(2 * 3 * 3 * 2), [2, 3, 3, 2]);
    expect(() => rk.packedAttention({ q, k: k3, v: k3, segmentIds: seg })).toThrow(RangeError); // 3 ∤ 4
    expect(() => rk.packedAttention({ q, k, v: k, segmentIds: i32(new Array(3).fill(1), [1, 3]) })).toThrow(RangeError);
    expect(() => rk.packedAttention({ q, k, v: rk.tensor(new Float32Array(2 * 3 * 2 * 3), [2, 3, 2, 3]), segmentIds: seg })).toThrow(RangeError);
    expect(() => rk.packedAttention({ q, k: rk.tensor(new Uint16Array(24), [2, 3, 2, 2], 'f16'), v: k, segmentIds: seg })).toThrow(TypeError);
    expect(() => rk.packedAttention({ q, k, v: k, segmentIds: rk.tensor(new Float32Array(6), [2, 3]) })).toThrow(TypeError);
    expect(() => rk.packedAttention({ q, k, v: k, segmentIds: seg }, { scale: NaN })).toThrow(RangeError);
    expect(() => rk.packedAttention({ q, k, v: k } as any)).toThrow(TypeError);
    expect(() => rk.packedAttention({ q, k, v: k, segmentIds: seg }, { out: { out: rk.tensor(new Float32Array(3), [3]) } })).toThrow(RangeError);
  });
});

describe('native entry points never crash on junk', () => {
  it.skipIf(!native)('throws TypeError/RangeError for wrong types, lengths and layouts', () => {
    const n = native as any;
    const I = (m: number) => new Int32Array(m), F = (m: number) => new Float32Array(m);
    const junk: (() => unknown)[] = [
      () => n.packSequences(2, I(1), 4, 0, I(2), I(2), I(2)),
      () => n.packSequences(2, I(2), 0, 0, I(2), I(2), I(2)),
      () => n.packSequences(2, Int32Array.from([1, 9]), 4, 0, I(2), I(2), I(2)),
      () => n.packSequences(-1, I(0), 4, 0, I(0), I(0), I(0)),
      () => n.packSequences(2, F(2), 4, 0, I(2), I(2), I(2)),
      () => n.prepackFill(1, 1, 2, 1, I(1), Int32Array.from([1]), Int32Array.from([1]), Int32Array.from([5]), I(1), I(2), I(2), I(2), I(1), I(2), I(1), I(1), 0, false),
      () => n.prepackFill(1, 1, 2, 1, I(1), Int32Array.from([1]), Int32Array.from([2]), I(1), I(1), I(2), I(2), I(2), I(1), I(2), I(1), I(1), 0, false),
      () => n.prepackFill(1, 1, 2, 3, I(3), Int32Array.from([1]), Int32Array.from([1]), I(1), I(1), I(2), I(2), I(2), I(1), I(2), I(1), I(1), 0, false),
      () => n.prepackFill(1, 1, 2, 1, I(1), Int32Array.from([1]), Int32Array.from([1]), I(1), Int32Array.from([2]), I(2), I(2), I(2), I(1), I(2), I(1), I(1), 0, false),
      () => n.prepackFill(1, 2 ** 20, 2 ** 12, 1, I(1), I(1), I(1), I(1), I(1), I(1), I(1), I(1), I(1), I(2), I(1), I(1), 0, false),
      () => n.attentionMask(1, 2, I(2), new Uint8Array(3), 0, false),
      () => n.attentionMask(1, 2, I(2), new Uint8Array(4), 1, false),
      () => n.attentionMask(1, 2, I(2), F(4), 0, false),
      () => n.attentionMask(1, 2, I(2), null, 0, false),
      () => n.unpack(1, 1, 2, 1, 1, F(2), Int32Array.from([1]), I(1), Int32Array.from([1]), F(1), false),
      () => n.unpack(1, 1, 2, 1, 1, F(2), I(1), Int32Array.from([2]), Int32Array.from([1]), F(1), false),
      () => n.unpack(1, 1, 2, 1, 1, F(2), I(1), I(1), Int32Array.from([2]), F(1), false),
      () => n.unpack(1, 1, 2, 1, 1, F(2), I(1), I(1), Int32Array.from([-1]), F(1), false),
      () => n.packedAttention(1, 2, 4, 3, 2, 0, F(16), F(12), F(12), I(2), F(16), 1, false),
      () => n.packedAttention(1, 2, 4, 0, 2, 0, F(16), F(0), F(0), I(2), F(16), 1, false),
      () => n.packedAttention(1, 2, 4, 2, 2, 5, F(16), F(8), F(8), I(2), F(16), 1, false),
      () => n.packedAttention(1, 2, 4, 2, 2, 1, F(16), F(8), F(8), I(2), F(16), 1, false),
      () => n.packedAttention(1, 2, 4, 2, 2, 0, F(16), F(8), F(7), I(2), F(16), 1, false),
      () => n.packedAttention(1, 2, 4, 2, 2, 0, F(16), F(8), F(8), I(2), F(16), NaN, false),
      () => n.packedAttention(1e300, 2, 4, 2, 2, 0, F(16), F(8), F(8), I(2), F(16), 1, false),
    ];
    for (const [i, f] of junk.entries()) {
      let err: unknown;
      try { f(); } catch (e) { err = e; }
      expect(err, `junk call ${i}`).toBeInstanceOf(Error);
      expect(['TypeError', 'RangeError'], `junk call ${i}: ${(err as Error)?.message}`).toContain((err as Error).name);
    }
  });
});

describe('the packing conformance checker can fail', () => {
  const doc = JSON.parse(
    readFileSync(resolve(dirname(fileURLToPath(import.meta.url)), 'conformance', 'prepack.json'), 'utf8'),
  );
  const packing = doc.cases.filter((c: any) => c.invariants);
  const run = (c: any) => {
    const inputs = Object.fromEntries(Object.entries<any>(c.inputs).map(([k, t]) => [k, i32(t.data, t.shape)]));
    return (rk as any)[c.op](inputs, { ...c.options, backend: 'js' });
  };
  const clone = (res: any) =>
    Object.fromEntries(Object.entries<any>(res).map(([k, t]) => [k, { ...t, data: Int32Array.from(t.data), shape: [...t.shape] }]));
  it('accepts the real results and rejects each kind of corruption', () => {
    expect(packing.length).toBeGreaterThanOrEqual(5);
    for (const c of packing) {
      const res = run(c);
      expect(() => checkPackingCase(c, res, doc)).not.toThrow();
      const corrupt: ((r: any) => void)[] = [
        (r) => { r.packOf.data[r.packOf.data.findIndex((_: number, i: number) => c.inputs.lengths.data[i] > 1)] += 1; },
        (r) => { r.offsetOf.data[c.inputs.lengths.data.findIndex((l: number) => l > 1)] += 1; },
        (r) => { delete r.packOf; },
      ];
      if (c.op === 'packSequences') corrupt.push((r) => { r.packLengths.data[0] -= 1; });
      if (c.op === 'prepack') {
        corrupt.push(
          (r) => { r.inputIds.data[0] += 1; },
          (r) => { r.positionIds.data[1] += 1; },
          (r) => { r.segmentIds.data[0] = 7; },
          (r) => { r.restore.data[0] += 1; },
          (r) => { r.cuSeqlens.data[1] += 1; },
          (r) => { const o = r.order.data; [o[0], o[1]] = [o[1], o[0]]; },
          (r) => { r.inputIds.dtype = 'f32'; },
        );
        if (c.options.holdLast) corrupt.push((r) => { r.held.data[0] += 1; });
      }
      for (const [k, f] of corrupt.entries()) {
        const bad = clone(res);
        f(bad);
        expect(() => checkPackingCase(c, bad, doc), `${c.note}: corruption ${k}`).toThrow();
      }
    }
  });
});
