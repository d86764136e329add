/** Advantages family (SPEC §3): native vs the float64 reference, hand cases, TRL recursion, errors. */
import { describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { native } from '../ts/native.js';
import { atEverySimdLevel, expectClose, f32, nativeBackends, poisoned, rng, SHAPES_2D } from './helpers.js';

const ALL = ['js', ...nativeBackends()] as const;

function tokens(B: number, T: number, seed: number, maskKind: 'u8' | 'f32' = 'u8') {
  const r = rng(seed);
  const n = B * T;
  return {
    rewards: rk.tensor(r.f32(n, 0.5), [B, T]),
    values: rk.tensor(r.f32(n, 1, 0.25), [B, T]),
    mask: rk.tensor(r.mask(B, T, maskKind), [B, T], maskKind),
    lastValues: rk.tensor(r.f32(B, 1), [B]),
  };
}

/**
 * S of SPEC precision for GAE: the same recursion with every term in absolute value,
 * S_A = (|r| + γ|V_next| + |V|) + γλ·S_A,next; returns add |V|. `values` absent: discounted returns.
 */
function gaeScale(x: ReturnType<typeof tokens>, B: number, T: number, gamma: number, lambda: number, withValues = true) {
  const r = x.rewards.data, v = x.values.data, m = x.mask.data, lv = x.lastValues.data;
  const sa = new Float64Array(B * T), sr = new Float64Array(B * T);
  for (let b = 0; b < B; b++) {
    let A = 0, W = withValues ? Math.abs(lv[b]) : 0;
    for (let t = T - 1; t >= 0; t--) {
      const i = b * T + t;
      if (!m[i]) continue;
      if (withValues) {
        A = Math.abs(r[i]) + gamma * W + Math.abs(v[i]) + gamma * lambda * A;
        W = Math.abs(v[i]);
        sa[i] = A;
        sr[i] = A + Math.abs(v[i]);
      } else {
        A = Math.abs(r[i]) + gamma * A;
        sa[i] = A;
      }
    }
  }
  return { sa, sr };
}

/** The plain TRL / OpenRLHF recursion over the whole row (rewards and values zeroed off the mask). */
function trlGae(r: ArrayLike<number>, v: ArrayLike<number>, m: ArrayLike<number>, B: number, T: number, gamma: number, lambda: number) {
  const adv = new Float64Array(B * T);
  for (let b = 0; b < B; b++) {
    let lastgaelam = 0;
    for (let t = T - 1; t >= 0; t--) {
      const i = b * T + t;
      const nextvalues = t < T - 1 ? v[i + 1] * m[i + 1] : 0;
      const delta = r[i] * m[i] + gamma * nextvalues - v[i] * m[i];
      lastgaelam = delta + gamma * lambda * lastgaelam;
      adv[i] = lastgaelam;
    }
  }
  return adv;
}

for (const backend of nativeBackends()) {
  describe(`advantages [${backend}] vs js reference`, () => {
    it('gae and discountedReturns: many shapes, both mask dtypes, with/without lastValues, every SIMD level', () => {
      atEverySimdLevel((level) => {
        for (const [si, [B, T]] of SHAPES_2D.entries()) {
          for (const maskKind of ['u8', 'f32'] as const) {
            const x = tokens(B, T, 300 + si, maskKind);
            for (const [gamma, lambda] of [[0.99, 0.95], [1, 1], [0.5, 0]] as const) {
              const { sa, sr } = gaeScale(x, B, T, gamma, lambda);
              for (const lastValues of [undefined, x.lastValues]) {
                const inp = { rewards: x.rewards, values: x.values, mask: x.mask, lastValues };
                const want = rk.gae(inp, { gamma, lambda, backend: 'js' });
                const out = { advantages: poisoned([B, T]), returns: poisoned([B, T]) };
                const got = rk.gae(inp, { gamma, lambda, backend, out });
                expect(got.advantages).toBe(out.advantages);
                expect(got.returns).toBe(out.returns);
                const what = `gae ${level} ${B}x${T} ${maskKind} γ=${gamma} λ=${lambda} lv=${!!lastValues}`;
                expectClose(got.advantages.data, want.advantages.data, what + ' adv', { scale: sa });
                expectClose(got.returns.data, want.returns.data, what + ' ret', { scale: sr });
              }
              const { sa: sd } = gaeScale(x, B, T, gamma, lambda, false);
              const want = rk.discountedReturns(x, { gamma, backend: 'js' }).returns;
              const got = rk.discountedReturns(x, { gamma, backend, out: { returns: poisoned([B, T]) } }).returns;
              expectClose(got.data, want.data, `discountedReturns ${level} ${B}x${T} ${maskKind} γ=${gamma}`, { scale: sd });
            }
          }
        }
      });
    });

    it('gae on long rows with random holes (register boundaries, empty and full registers)', () => {
      atEverySimdLevel((level) => {
        const r = rng(77);
        for (const [B, T] of [[2, 4099], [5, 333]] as const) {
          const x = tokens(B, T, 78);
          const m = x.mask.data as Uint8Array;
          // runs of 0..40 masked / counted tokens: whole registers empty or full, and mixed ones
          for (let b = 0; b < B; b++) {
            let t = 0, on = 1;
            while (t < T) {
              const len = r.int(0, 40);
              for (let k = 0; k < len && t < T; k++, t++) m[b * T + t] = on;
              on = 1 - on;
            }
          }
          const { sa, sr } = gaeScale(x, B, T, 0.97, 0.9);
          const want = rk.gae(x, { gamma: 0.97, lambda: 0.9, backend: 'js' });
          const got = rk.gae(x, { gamma: 0.97, lambda: 0.9, backend });
          expectClose(got.advantages.data, want.advantages.data, `gae runs ${level} ${B}x${T}`, { scale: sa });
          expectClose(got.returns.data, want.returns.data, `gae runs ret ${level}`, { scale: sr });
        }
      });
    });

    // Groups of 2..16 take the native 16-groups-per-tile path (templated K = 2, 4, 8, 16; runtime
    // K otherwise); K = 1 and K > 16 the per-group one. G around the tile width and its tail;
    // a group with a NaN and one with a large offset (mean ≫ spread) must stay per-group exact.
    it('groupAdvantages: small groups (tile path), tails, NaN and offset groups, every SIMD level', () => {
      atEverySimdLevel((level) => {
        for (const K of [1, 2, 3, 4, 5, 8, 15, 16, 17]) {
          for (const G of [1, 15, 16, 17, 33, 1000]) {
            const r = rng(900 + 31 * K + G);
            const n = G * K;
            const sd = r.f32(n, 1.5);
            if (G > 2 && K > 1) { // (a group of 1 is 0 whatever its score: no NaN there)
              sd[K] = NaN; // group 1
              for (let k = 0; k < K; k++) sd[2 * K + k] = 1000 + 0.01 * k; // group 2
            }
            const scores = rk.tensor(sd, [n]);
            for (const method of ['grpo', 'drgrpo', 'rloo'] as const) {
              if (method === 'rloo' && K < 2) continue;
              const want = rk.groupAdvantages({ scores }, { groupSize: K, method, backend: 'js' }).advantages;
              const got = rk.groupAdvantages({ scores }, { groupSize: K, method, backend, out: { advantages: poisoned([n]) } }).advantages;
              const S = groupScale(scores.data, scores.data, G, K, method, want.data);
              expectClose(got.data, want.data, `groupAdvantages ${level} ${method} G=${G} K=${K}`, { scale: S });
            }
          }
        }
      });
    });
    it('whiten, groupAdvantages, ensembleRewards, winRateRewards on many shapes', () => {
      atEverySimdLevel((level) => {
        for (const [si, [B, T]] of SHAPES_2D.entries()) {
          if (B * T < 2) continue;
          const r = rng(400 + si);
          const x = rk.tensor(r.f32(B * T, 2, 5), [B, T]);
          for (const maskKind of ['u8', 'f32', 'none'] as const) {
            let mask = maskKind === 'none' ? undefined : rk.tensor(r.mask(B, T, maskKind), [B, T], maskKind);
            if (mask && (mask.data as ArrayLike<number>).length > 0) {
              const md = mask.data as Uint8Array | Float32Array;
              let c = 0;
              for (const v of md) c += v ? 1 : 0;
              if (c < 2) { md[0] = 1; md[md.length - 1] = 1; }
            }
            for (const o of [{}, { shiftMean: false, eps: 0.5 }]) {
              const want = rk.whiten({ x, mask }, { ...o, backend: 'js' }).y;
              const got = rk.whiten({ x, mask }, { ...o, backend, out: { y: poisoned([B, T]) } }).y;
              const st = whitenStats64(x.data, mask?.data);
              const inv = 1 / Math.sqrt(st.variance + ((o as any).eps ?? 1e-8));
              const S = Float64Array.from(x.data, (xi, i) => (Math.abs(xi) + Math.abs(st.mean)) * inv + Math.abs(want.data[i]) + Math.abs(st.mean));
              expectClose(got.data, want.data, `whiten ${level} ${B}x${T} ${maskKind} ${JSON.stringify(o)}`, { scale: S });
            }
          }
          // groups: K from the shape's T (so 1, 5, 17, ...), G = B
          const K = T, G = B, n = G * K;
          const scores = rk.tensor(r.f32(n, 1.5), [n]);
          const baselines = rk.tensor(r.f32(n, 1.5), [n]);
          for (const method of ['grpo', 'drgrpo', 'rloo', 'remax'] as const) {
            if (method === 'rloo' && K < 2) continue;
            const want = rk.groupAdvantages({ scores, baselines }, { groupSize: K, method, backend: 'js' }).advantages;
            const got = rk.groupAdvantages({ scores, baselines }, { groupSize: K, method, backend, out: { advantages: poisoned([n]) } }).advantages;
            const S = groupScale(scores.data, baselines.data, G, K, method, want.data);
            expectClose(got.data, want.data, `groupAdvantages ${level} ${method} G=${G} K=${K}`, { scale: S });
          }
          // ensembles: E = min(B, 9) members over T columns
          const E = Math.min(B, 9);
          const es = rk.tensor(r.f32(E * T, 1, 0.5), [E, T]);
          for (const o of [{ method: 'mean' }, { method: 'min' }, { method: 'uwo' }, { method: 'uwo', lambda: 2, unbiased: E >= 2 }] as const) {
            const want = rk.ensembleRewards({ scores: es }, { ...o, backend: 'js' }).rewards;
            const got = rk.ensembleRewards({ scores: es }, { ...o, backend, out: { rewards: poisoned([T]) } }).rewards;
            const lam = (o as any).lambda ?? 0.5;
            const S = Float64Array.from({ length: T }, (_, b) => {
              let s = 0, q = 0;
              for (let e = 0; e < E; e++) s += Math.abs(es.data[e * T + b]);
              for (let e = 0; e < E; e++) q += (Math.abs(es.data[e * T + b]) + s / E) ** 2;
              return s / E + lam * q / Math.max(1, E - 1);
            });
            expectClose(got.data, want.data, `ensembleRewards ${level} ${JSON.stringify(o)} E=${E} B=${T}`, { scale: S });
          }
          // win rates: G = B groups of K = min(T, 12)
          const KW = Math.min(T, 12);
          const pref = rk.tensor(r.uniform(B * KW * KW), [B, KW, KW]);
          const want = rk.winRateRewards({ preferences: pref }, { backend: 'js' }).rewards;
          const got = rk.winRateRewards({ preferences: pref }, { backend, out: { rewards: poisoned([B * KW]) } }).rewards;
          expectClose(got.data, want.data, `winRateRewards ${level} G=${B} K=${KW}`);
        }
      });
    });

    it('results do not depend on the thread count (whiten statistics are combined in a fixed order)', () => {
      const B = 300, T = 257;
      const x = tokens(B, T, 5);
      const threads = rk.backends().threads;
      try {
        rk.setThreads(1);
        const a = rk.gae(x, { gamma: 0.99, lambda: 0.95, backend });
        const w1 = rk.whiten({ x: x.values, mask: x.mask }, { backend }).y;
        rk.setThreads(Math.max(2, threads));
        const b = rk.gae(x, { gamma: 0.99, lambda: 0.95, backend });
        const w2 = rk.whiten({ x: x.values, mask: x.mask }, { backend }).y;
        expect(Array.from(b.advantages.data)).toEqual(Array.from(a.advantages.data));
        expect(Array.from(w2.data)).toEqual(Array.from(w1.data));
      } finally {
        rk.setThreads(threads);
      }
    });

    it('f64 inputs are rounded to f32 once and give the f32 results', () => {
      const x = tokens(3, 21, 9);
      const r64 = rk.tensor(Float64Array.from(x.rewards.data), [3, 21]);
      const a = rk.gae({ ...x, rewards: r64 }, { gamma: 0.9, lambda: 0.9, backend }).advantages;
      const b = rk.gae(x, { gamma: 0.9, lambda: 0.9, backend }).advantages;
      expect(Array.from(a.data)).toEqual(Array.from(b.data));
    });
  });
}

function whitenStats64(x: ArrayLike<number>, m: ArrayLike<number> | undefined) {
  let n = 0, s = 0;
  for (let i = 0; i < x.length; i++) if (!m || m[i]) { n++; s += x[i]; }
  const mean = s / n;
  let q = 0;
  for (let i = 0; i < x.length; i++) if (!m || m[i]) q += (x[i] - mean) ** 2;
  return { n, mean, variance: q / (n - 1) };
}

function groupScale(s: ArrayLike<number>, bl: ArrayLike<number>, G: number, K: number, method: string, want: ArrayLike<number>) {
  const S = new Float64Array(G * K);
  for (let g = 0; g < G; g++) {
    let sa = 0, sum = 0;
    for (let k = 0; k < K; k++) { sa += Math.abs(s[g * K + k]); sum += s[g * K + k]; }
    const mean = sum / K;
    let q = 0;
    for (let k = 0; k < K; k++) q += (s[g * K + k] - mean) ** 2;
    const std = K > 1 ? Math.sqrt(q / (K - 1)) : 0;
    for (let k = 0; k < K; k++) {
      const i = g * K + k, a = Math.abs(s[i]);
      if (method === 'grpo') S[i] = (a + sa / K) / (std + 1e-6) + Math.abs(want[i]);
      else if (method === 'drgrpo') S[i] = a + sa / K;
      else if (method === 'rloo') S[i] = a + (sa - a) / (K - 1);
      else S[i] = a + Math.abs(bl[i]);
    }
  }
  return S;
}

describe('advantages: hand-computed cases and invariants (every backend)', () => {
  for (const backend of ALL) {
    it(`[${backend}] gae hand example: a hole is skipped, lastValues bootstraps, NaN at masked positions unread`, () => {
      // counted t = 0, 1, 3 (t = 2 masked, NaN there); γ = λ = 0.5 (γλ = 0.25), lastValue 0.5
      // t3: δ = 2 + 0.5·0.5 − 0.25 = 2;            A = 2
      // t1: δ = 0 + 0.5·V3 − 1 = −0.875 (V3, not V2); A = −0.875 + 0.25·2 = −0.375
      // t0: δ = 1 + 0.5·1 − 0.5 = 1;               A = 1 + 0.25·(−0.375) = 0.90625
      // second row: nothing counted → zeros (its lastValue NaN is never read)
      const rewards = f32([1, 0, NaN, 2, NaN, 1, 1, 1], [2, 4]);
      const values = f32([0.5, 1, Infinity, 0.25, 1, 1, NaN, 1], [2, 4]);
      const mask = rk.tensor(Uint8Array.from([1, 1, 0, 1, 0, 0, 0, 0]), [2, 4]);
      const lastValues = f32([0.5, NaN], [2]);
      const { advantages, returns } = rk.gae({ rewards, values, mask, lastValues }, { gamma: 0.5, lambda: 0.5, backend });
      expectClose(advantages.data, [0.90625, -0.375, 0, 2, 0, 0, 0, 0], 'adv', { tol: 1e-6 });
      expectClose(returns.data, [1.40625, 0.625, 0, 2.25, 0, 0, 0, 0], 'ret', { tol: 1e-6 });
      // without lastValues: V after the last counted token is 0 → t3: δ = 2 − 0.25 = 1.75
      const z = rk.gae({ rewards, values, mask }, { gamma: 0.5, lambda: 0.5, backend }).advantages;
      expectClose(z.data.slice(0, 4), [1 + 0.25 * (-0.875 + 0.25 * 1.75), -0.875 + 0.25 * 1.75, 0, 1.75], 'adv no lastValues', { tol: 1e-6 });
    });

    it(`[${backend}] gae with contiguous masks equals the plain TRL/OpenRLHF recursion`, () => {
      const B = 12, T = 70;
      const r = rng(31);
      const x = tokens(B, T, 32);
      const m = x.mask.data as Uint8Array;
      for (let b = 0; b < B; b++) {
        // right padding (b even) or a prompt-then-response block (b odd); row 0 full, row 2 empty
        const start = b % 2 ? r.int(0, 30) : 0;
        const end = b === 0 ? T : b === 2 ? 0 : r.int(start, T);
        for (let t = 0; t < T; t++) m[b * T + t] = t >= start && t < end ? 1 : 0;
      }
      for (const [gamma, lambda] of [[1, 0.95], [0.99, 0.95], [0.9, 1]] as const) {
        const want = trlGae(x.rewards.data, x.values.data, m, B, T, gamma, lambda);
        const got = rk.gae({ ...x, lastValues: undefined }, { gamma, lambda, backend });
        const { sa } = gaeScale(x, B, T, gamma, lambda);
        const wantCounted = Float64Array.from(want, (w, i) => (m[i] ? w : 0));
        expectClose(got.advantages.data, wantCounted, `TRL γ=${gamma} λ=${lambda}`, { scale: sa });
        const ret = Float64Array.from(want, (w, i) => (m[i] ? w + x.values.data[i] : 0));
        expectClose(got.returns.data, ret, `TRL returns`, { scale: Float64Array.from(sa, (s, i) => s + Math.abs(x.values.data[i])) });
      }
    });

    it(`[${backend}] gae: a NaN in a counted input reaches only the positions that depend on it`, () => {
      const T = 40;
      const x = tokens(1, T, 3);
      (x.mask.data as Uint8Array).fill(1);
      (x.rewards.data as Float32Array)[25] = NaN;
      const { advantages, returns } = rk.gae(x, { gamma: 0.9, lambda: 0.9, backend });
      for (let t = 0; t < T; t++) {
        expect(Number.isNaN(advantages.data[t]), `adv[${t}]`).toBe(t <= 25);
        expect(Number.isNaN(returns.data[t]), `ret[${t}]`).toBe(t <= 25);
      }
      const d = rk.discountedReturns(x, { gamma: 0.9, backend }).returns;
      for (let t = 0; t < T; t++) expect(Number.isNaN(d.data[t]), `G[${t}]`).toBe(t <= 25);
    });

    it(`[${backend}] discountedReturns hand example: holes skipped without discount`, () => {
      // counted t = 0, 2, 3; γ = 0.5: G3 = 4, G2 = 2 + 2 = 4, G0 = 1 + 0.5·4 = 3 (t1 skipped, reward there ignored)
      const rewards = f32([1, 100, 2, 4], [1, 4]);
      const mask = rk.tensor(Float32Array.from([1, 0, 1, 1]), [1, 4], 'f32');
      const g = rk.discountedReturns({ rewards, mask }, { gamma: 0.5, backend }).returns;
      expectClose(g.data, [3, 0, 4, 4], 'G');
    });

    it(`[${backend}] whiten vs a two-pass float64 computation on 262144 elements with a large mean`, () => {
      const B = 256, T = 1024, n = B * T;
      const r = rng(1234);
      const x = rk.tensor(r.f32(n, 3, 1000), [B, T]);
      const mask = rk.tensor(r.mask(B, T), [B, T]);
      const st = whitenStats64(x.data, mask.data);
      for (const shiftMean of [true, false]) {
        const y = rk.whiten({ x, mask }, { shiftMean, backend }).y;
        const inv = 1 / Math.sqrt(st.variance + 1e-8);
        const want = Float64Array.from(x.data, (xi, i) => (mask.data[i] ? (xi - st.mean) * inv + (shiftMean ? 0 : st.mean) : 0));
        const S = Float64Array.from(x.data, (xi, i) => (Math.abs(xi) + Math.abs(st.mean)) * inv + Math.abs(want[i]) + (shiftMean ? 0 : st.mean));
        expectClose(y.data, want, `whiten shiftMean=${shiftMean}`, { scale: S });
        // the whitened counted values have mean 0 and variance 1 (checks the Bessel denominator)
        if (shiftMean) {
          let m = 0, q = 0;
          for (let i = 0; i < n; i++) if (mask.data[i]) { m += y.data[i]; q += y.data[i] ** 2; }
          expect(Math.abs(m / st.n)).toBeLessThan(1e-4);
          expect(Math.abs(q / (st.n - 1) - 1)).toBeLessThan(1e-4);
        }
      }
    });

    it(`[${backend}] whiten: mean 3e4 with std 0.5 (naive E[x²] − μ² would cancel), NaN handling`, () => {
      const n = 262144;
      const r = rng(99);
      const x = rk.tensor(r.f32(n, 0.5, 30000), [n]);
      const st = whitenStats64(x.data, undefined);
      const y = rk.whiten({ x }, { backend }).y;
      const inv = 1 / Math.sqrt(st.variance + 1e-8);
      const want = Float64Array.from(x.data, (xi) => (xi - st.mean) * inv);
      expectClose(y.data, want, 'whiten large mean', { scale: Float64Array.from(x.data, (xi, i) => (Math.abs(xi) + st.mean) * inv + Math.abs(want[i])) });
      // and much tighter than SPEC asks: within 5e-5 of the float64 result on every element (the
      // mean's own f32 rounding, up to ulp(3e4)/2 ≈ 1e-3, would give 2e-3 here if left in y)
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(y.data[i] - want[i]));
      expect(worst).toBeLessThan(5e-5);
      // a NaN at a masked position is never read; a counted NaN reaches every counted output
      const xs = f32([1, NaN, 3, 4], [4]);
      const ys = rk.whiten({ x: xs, mask: rk.tensor(Uint8Array.from([1, 0, 1, 1]), [4]) }, { backend }).y;
      expect(Array.from(ys.data).every((v) => Number.isFinite(v))).toBe(true);
      const yn = rk.whiten({ x: xs, mask: rk.tensor(Uint8Array.from([1, 1, 0, 1]), [4]) }, { backend }).y;
      expect([0, 1, 3].every((i) => Number.isNaN(yn.data[i]))).toBe(true);
      expect(yn.data[2]).toBe(0);
    });

    it(`[${backend}] whiten: global (not per-row) statistics, Bessel variance, eps inside the sqrt`, () => {
      const x = f32([1, 2, 3, 10, 20, 30], [2, 3]);
      const mask = rk.tensor(Uint8Array.from([1, 1, 0, 1, 0, 0]), [2, 3]);
      // counted 1, 2, 10: μ = 13/3, Σd² = (10/3)² + (7/3)² + (17/3)² = 438/9, σ² = 438/18
      const mu = 13 / 3, v = 438 / 18;
      const y = rk.whiten({ x, mask }, { eps: 0.25, backend }).y;
      const inv = 1 / Math.sqrt(v + 0.25);
      expectClose(y.data, [(1 - mu) * inv, (2 - mu) * inv, 0, (10 - mu) * inv, 0, 0], 'whiten', { tol: 1e-6 });
      const y2 = rk.whiten({ x: f32([1, 3], [2]) }, { shiftMean: false, eps: 0, backend }).y;
      // μ = 2, σ² = 2 → y = (x − 2)/√2 + 2
      expectClose(y2.data, [2 - 1 / Math.SQRT2, 2 + 1 / Math.SQRT2], 'whiten shiftMean=false', { tol: 1e-6 });
    });

    it(`[${backend}] whiten with fewer than 2 counted elements is a RangeError`, () => {
      const x = f32([1, 2, 3], [1, 3]);
      expect(() => rk.whiten({ x, mask: rk.tensor(Uint8Array.from([0, 1, 0]), [1, 3]) }, { backend })).toThrow(RangeError);
      expect(() => rk.whiten({ x, mask: rk.tensor(Uint8Array.from([0, 0, 0]), [1, 3]) }, { backend })).toThrow(/at least 2/);
      expect(() => rk.whiten({ x: f32([5], [1]) }, { backend })).toThrow(RangeError);
      expect(() => rk.whiten({ x: f32([], [0]) }, { backend })).toThrow(RangeError);
      expect(rk.whiten({ x, mask: rk.tensor(Uint8Array.from([1, 0, 1]), [1, 3]) }, { backend }).y.data[1]).toBe(0);
    });

    it(`[${backend}] groupAdvantages: hand cases and edge cases`, () => {
      const scores = f32([1, 2, 3, 5, 5, 5], [6]);
      // grpo, K = 3: group 0 mean 2, unbiased std 1; group 1 constant → 0
      const g = rk.groupAdvantages({ scores }, { groupSize: 3, method: 'grpo', eps: 0, backend }).advantages;
      expectClose(g.data.slice(0, 3), [-1, 0, 1], 'grpo');
      // eps = 0 on a constant group is the formula's 0/0 (no clamping)
      expect(Number.isNaN(g.data[3])).toBe(true);
      const ge = rk.groupAdvantages({ scores }, { groupSize: 3, method: 'grpo', backend }).advantages;
      expectClose(ge.data, [-1 / (1 + 1e-6), 0, 1 / (1 + 1e-6), 0, 0, 0], 'grpo eps');
      // a group of 1 → 0 (grpo and drgrpo)
      for (const method of ['grpo', 'drgrpo'] as const) {
        const one = rk.groupAdvantages({ scores }, { groupSize: 1, method, backend }).advantages;
        expect(Array.from(one.data)).toEqual([0, 0, 0, 0, 0, 0]);
      }
      const d = rk.groupAdvantages({ scores }, { groupSize: 2, method: 'drgrpo', backend }).advantages;
      expectClose(d.data, [-0.5, 0.5, -1, 1, 0, 0], 'drgrpo');
      // rloo: s_i − mean of the others: [1 − 2.5, 2 − 2, 3 − 1.5]
      const l = rk.groupAdvantages({ scores }, { groupSize: 3, method: 'rloo', backend }).advantages;
      expectClose(l.data, [-1.5, 0, 1.5, 0, 0, 0], 'rloo');
      const l2 = rk.groupAdvantages({ scores: f32([1, 4], [2]) }, { groupSize: 2, method: 'rloo', backend }).advantages;
      expectClose(l2.data, [-3, 3], 'rloo K=2');
      const baselines = f32([0.5, 2, 4, 5, 0, -1], [6]);
      const m = rk.groupAdvantages({ scores, baselines }, { groupSize: 3, method: 'remax', backend }).advantages;
      expectClose(m.data, [0.5, 0, -1, 0, 5, 6], 'remax');
      // empty input: no groups
      expect(rk.groupAdvantages({ scores: f32([], [0]) }, { groupSize: 4, method: 'grpo', backend }).advantages.data.length).toBe(0);
    });

    it(`[${backend}] ensembleRewards: mean, min, uwo population vs unbiased variance`, () => {
      // E = 2 members, B = 3: columns (1, 3), (2, 2), (−1, 5)
      const scores = f32([1, 2, -1, 3, 2, 5], [2, 3]);
      const mean = rk.ensembleRewards({ scores }, { method: 'mean', backend }).rewards;
      expectClose(mean.data, [2, 2, 2], 'mean');
      const min = rk.ensembleRewards({ scores }, { method: 'min', backend }).rewards;
      expectClose(min.data, [1, 2, -1], 'min');
      // population variance: 1, 0, 9; unbiased: 2, 0, 18
      const uwo = rk.ensembleRewards({ scores }, { method: 'uwo', backend }).rewards;
      expectClose(uwo.data, [2 - 0.5, 2, 2 - 4.5], 'uwo');
      const ub = rk.ensembleRewards({ scores }, { method: 'uwo', lambda: 0.25, unbiased: true, backend }).rewards;
      expectClose(ub.data, [2 - 0.5, 2, 2 - 4.5], 'uwo unbiased λ=0.25');
      const ub2 = rk.ensembleRewards({ scores }, { method: 'uwo', unbiased: true, backend }).rewards;
      expectClose(ub2.data, [1, 2, -7], 'uwo unbiased');
      // a NaN member propagates through min too (to its column only)
      const nan = rk.ensembleRewards({ scores: f32([1, 2, NaN, 0], [2, 2]) }, { method: 'min', backend }).rewards;
      expect(Number.isNaN(nan.data[0])).toBe(true);
      expect(nan.data[1]).toBe(0);
      // one member: mean = min = uwo (population variance 0)
      const e1 = rk.ensembleRewards({ scores: f32([4, -2], [1, 2]) }, { method: 'uwo', backend }).rewards;
      expectClose(e1.data, [4, -2], 'E=1');
    });

    it(`[${backend}] winRateRewards: rows are P(y_i ≻ y_j), the diagonal is never read`, () => {
      const P = f32([NaN, 0.2, 0.6, 0.8, 7, 0.5, 0.4, 0.5, Infinity], [1, 3, 3]);
      const r = rk.winRateRewards({ preferences: P }, { backend }).rewards;
      expectClose(r.data, [0.4, 0.65, 0.45], 'winRate');
      const r2 = rk.winRateRewards({ preferences: f32([0.5, 0.9, 0.3, 0.5, 0, 1, 1, 0], [2, 2, 2]) }, { backend }).rewards;
      expectClose(r2.data, [0.9, 0.3, 1, 1], 'K=2');
      const r1 = rk.winRateRewards({ preferences: f32([NaN, 3], [2, 1, 1]) }, { backend }).rewards;
      expect(Array.from(r1.data)).toEqual([0, 0]);
    });
  }
});

describe('advantages: errors', () => {
  const x = tokens(2, 3, 1);
  for (const backend of ALL) {
    it(`[${backend}] documented errors`, () => {
      const o = { gamma: 0.9, lambda: 0.95, backend };
      expect(() => rk.gae({ rewards: x.rewards, values: x.values } as any, o)).toThrow(TypeError); // mask required
      expect(() => rk.gae(x, { lambda: 0.9, backend } as any)).toThrow(/gamma/);
      expect(() => rk.gae(x, { gamma: 0.9, backend } as any)).toThrow(TypeError);
      expect(() => rk.gae(x, { ...o, gamma: 1.5 })).toThrow(RangeError);
      expect(() => rk.gae(x, { ...o, lambda: -0.1 })).toThrow(RangeError);
      expect(() => rk.gae(x, { ...o, gamma: NaN })).toThrow(RangeError);
      expect(() => rk.gae(x, { ...o, gamma: '0.9' as any })).toThrow(TypeError);
      expect(() => rk.gae({ ...x, values: f32([1, 2, 3, 4], [2, 2]) }, o)).toThrow(/values.*shape/);
      expect(() => rk.gae({ ...x, lastValues: f32([1, 2, 3], [3]) }, o)).toThrow(/lastValues/);
      expect(() => rk.gae({ ...x, mask: rk.tensor(new Int32Array(6), [2, 3]) }, o)).toThrow(TypeError);
      expect(() => rk.gae({ ...x, rewards: rk.tensor(new Int32Array(6), [2, 3]) }, o)).toThrow(TypeError);
      expect(() => rk.gae({ ...x, rewards: f32([1, 2, 3, 4, 5, 6], [6]) }, o)).toThrow(/rank 2/);
      expect(() => rk.gae(x, { ...o, out: { advantages: rk.zeros([2, 3], 'f64') } })).toThrow(TypeError);
      expect(() => rk.gae(x, { ...o, out: { returns: rk.zeros([3, 2], 'f32') } })).toThrow(RangeError);
      expect(() => rk.gae(x, { ...o, backend: 'tpu' as any })).toThrow(RangeError);
      expect(() => rk.discountedReturns({ rewards: x.rewards } as any, { gamma: 0.9, backend })).toThrow(TypeError);
      expect(() => rk.discountedReturns(x, { backend } as any)).toThrow(/gamma/);
      expect(() => rk.discountedReturns(x, { gamma: -1, backend })).toThrow(RangeError);
      expect(() => rk.whiten({} as any, { backend })).toThrow(TypeError);
      expect(() => rk.whiten({ x: x.rewards, mask: f32([1, 1], [2]) }, { backend })).toThrow(RangeError);
      expect(() => rk.whiten({ x: x.rewards }, { eps: -1, backend })).toThrow(RangeError);
      expect(() => rk.whiten({ x: x.rewards }, { shiftMean: 1 as any, backend })).toThrow(TypeError);
      const s7 = f32([1, 2, 3, 4, 5, 6, 7], [7]);
      expect(() => rk.groupAdvantages({ scores: s7 }, { groupSize: 3, method: 'drgrpo', backend })).toThrow(RangeError);
      expect(() => rk.groupAdvantages({ scores: s7 }, { groupSize: 1, method: 'rloo', backend })).toThrow(/rloo/);
      expect(() => rk.groupAdvantages({ scores: s7 }, { groupSize: 0, method: 'grpo', backend })).toThrow(RangeError);
      expect(() => rk.groupAdvantages({ scores: s7 }, { groupSize: 1.5, method: 'grpo', backend })).toThrow(RangeError);
      expect(() => rk.groupAdvantages({ scores: s7 }, { method: 'grpo', backend } as any)).toThrow(/groupSize/);
      expect(() => rk.groupAdvantages({ scores: s7 }, { groupSize: 7, method: 'ppo' as any, backend })).toThrow(RangeError);
      expect(() => rk.groupAdvantages({ scores: s7 }, { groupSize: 7, backend } as any)).toThrow(TypeError);
      expect(() => rk.groupAdvantages({ scores: s7 }, { groupSize: 7, method: 'remax', backend })).toThrow(/baselines/);
      expect(() => rk.groupAdvantages({ scores: s7, baselines: f32([1], [1]) }, { groupSize: 7, method: 'remax', backend })).toThrow(RangeError);
      expect(() => rk.groupAdvantages({ scores: s7 }, { groupSize: 7, method: 'grpo', eps: -1, backend })).toThrow(RangeError);
      const e = f32([1, 2, 3, 4], [2, 2]);
      expect(() => rk.ensembleRewards({ scores: e }, { backend } as any)).toThrow(/method/);
      expect(() => rk.ensembleRewards({ scores: e }, { method: 'max' as any, backend })).toThrow(RangeError);
      expect(() => rk.ensembleRewards({ scores: f32([1, 2], [2]) }, { method: 'mean', backend })).toThrow(/rank 2/);
      expect(() => rk.ensembleRewards({ scores: f32([1, 2], [1, 2]) }, { method: 'uwo', unbiased: true, backend })).toThrow(RangeError);
      expect(() => rk.ensembleRewards({ scores: f32([], [0, 2]) }, { method: 'mean', backend })).toThrow(RangeError);
      expect(() => rk.ensembleRewards({ scores: e }, { method: 'uwo', lambda: -1, backend })).toThrow(RangeError);
      expect(() => rk.ensembleRewards({ scores: e }, { method: 'uwo', unbiased: 'yes' as any, backend })).toThrow(TypeError);
      expect(() => rk.winRateRewards({ preferences: f32([1, 2, 3, 4, 5, 6], [1, 2, 3]) }, { backend })).toThrow(RangeError);
      expect(() => rk.winRateRewards({ preferences: f32([1, 2, 3, 4], [2, 2]) }, { backend })).toThrow(/rank 3/);
      expect(() => rk.winRateRewards({} as any, { backend })).toThrow(TypeError);
    });
  }

  it("backend 'cuda' without a device is an Error that says why", () => {
    if (rk.backends().cuda.available) return;
    expect(() => rk.gae(x, { gamma: 0.9, lambda: 0.9, backend: 'cuda' })).toThrow(/cuda/i);
    expect(() => rk.whiten({ x: x.rewards }, { backend: 'cuda' })).toThrow(/cuda/i);
  });

  it('fuzzed arguments never crash the process (wrappers and the native entry points)', () => {
    const r = rng(4242);
    const junk = [undefined, null, 0, -1, 1.5, 3, NaN, Infinity, 'x', true, {}, [], new Float64Array(3), new Float32Array(0),
      new Float32Array(6), new Uint8Array(7), new Uint8Array(6), new Int32Array(6), 2 ** 40];
    const pick = () => junk[r.int(0, junk.length - 1)];
    for (let i = 0; i < 300; i++) {
      const args: any = {
        rewards: r.next() < 0.5 ? x.rewards : pick(), values: r.next() < 0.5 ? x.values : pick(), mask: r.next() < 0.5 ? x.mask : pick(),
        lastValues: pick(), x: r.next() < 0.5 ? x.rewards : pick(), scores: pick(), baselines: pick(), preferences: pick(),
      };
      const opts: any = {
        gamma: r.next() < 0.5 ? 0.9 : pick(), lambda: r.next() < 0.5 ? 0.9 : pick(), groupSize: pick(), method: pick(),
        eps: pick(), shiftMean: pick(), unbiased: pick(), backend: r.next() < 0.8 ? 'auto' : pick(),
      };
      for (const f of [rk.gae, rk.whiten, rk.groupAdvantages, rk.discountedReturns, rk.ensembleRewards, rk.winRateRewards] as any[]) {
        try {
          f(args, opts);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
      }
    }
    if (!native) return;
    const nat = native as any;
    for (let i = 0; i < 400; i++) {
      for (const name of ['gae', 'discountedReturns', 'whiten', 'groupAdvantages', 'ensembleRewards', 'winRateRewards']) {
        const argv = Array.from({ length: r.int(0, 11) }, () => (r.next() < 0.3 ? r.int(0, 6) : pick()));
        argv[argv.length] = false;
        try {
          nat[name](...argv);
        } catch (e) {
          expect(e).toBeInstanceOf(Error);
        }
      }
    }
  });
});
