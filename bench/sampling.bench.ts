/**
 * Benchmarks of the sampling family (SPEC §7): geometricMixture at N×V = 4096×32000 (f32 and
 * bf16; bandwidth-bound, so GB/s is the figure), speculativeVerify at B=64, K=8, V=32000 and
 * rejectionSample at G=1024, K=16.
 */
import * as rk from '../ts/index.js';
import { randn, type BenchCase, type BenchOptions } from './harness.js';

/** Deterministic uniforms in [0, 1). */
function uniforms(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) / 16777216;
  });
}

/** f32 → bf16 bits (round to nearest even; the values are finite), without per-element allocation. */
function toBf16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
  return out;
}

/** B·rows softmax-like distributions over V (f32), from a few logits scaled by `temp`. */
function dists(rows: number, V: number, seed: number, temp: number): Float32Array {
  const z = randn(rows * V, seed, temp);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity, s = 0;
    for (let j = 0; j < V; j++) m = Math.max(m, z[r * V + j]);
    for (let j = 0; j < V; j++) s += (z[r * V + j] = Math.exp(z[r * V + j] - m));
    for (let j = 0; j < V; j++) z[r * V + j] /= s;
  }
  return z;
}

export function cases(_opts: BenchOptions): BenchCase[] {
  const out: BenchCase[] = [];
  const on = <T>(f: (backend: 'js' | 'cpu' | 'cuda') => T) => ({ js: () => f('js'), cpu: () => f('cpu') });

  {
    const N = 4096, V = 32000, n = N * V;
    const z = randn(n, 1, 2), zr = randn(n, 2, 2);
    const logp = { logp: rk.zeros([N, V], 'f32') };
    const f32 = { logits: rk.tensor(z, [N, V]), refLogits: rk.tensor(zr, [N, V]) };
    out.push({
      family: 'sampling', op: 'geometricMixture(f32)', size: `${N}x${V}`, bytes: n * (4 + 4 + 4),
      run: on((backend) => rk.geometricMixture(f32, { beta: 0.5, backend, out: logp })),
    });
    const bf = { logits: rk.tensor(toBf16(z), [N, V], 'bf16'), refLogits: rk.tensor(toBf16(zr), [N, V], 'bf16') };
    out.push({
      family: 'sampling', op: 'geometricMixture(bf16)', size: `${N}x${V}`, bytes: n * (2 + 2 + 4),
      run: on((backend) => rk.geometricMixture(bf, { beta: 0.5, backend, out: logp })),
    });
  }

  {
    const B = 64, K = 8, V = 32000;
    const q = dists(B * K, V, 3, 2);
    // target = a 50/50 mix of the draft and another distribution: acceptance around 1/2 per token
    const other = dists(B * (K + 1), V, 4, 2);
    const p = new Float32Array(B * (K + 1) * V);
    for (let b = 0; b < B; b++)
      for (let i = 0; i <= K; i++)
        for (let t = 0; t < V; t++) {
          const o = other[(b * (K + 1) + i) * V + t];
          p[(b * (K + 1) + i) * V + t] = i < K ? 0.5 * q[(b * K + i) * V + t] + 0.5 * o : o;
        }
    const tok = Int32Array.from({ length: B * K }, (_, i) => {
      let best = 0; // the draft's most likely token (q(Y) > 0)
      for (let t = 1; t < V; t++) if (q[i * V + t] > q[i * V + best]) best = t;
      return best;
    });
    const inputs = {
      draftTokens: rk.tensor(tok, [B, K], 'i32'), draftProbs: rk.tensor(q, [B, K, V]),
      targetProbs: rk.tensor(p, [B, K + 1, V]), uniforms: rk.tensor(uniforms(B * (K + 1), 5), [B, K + 1]),
    };
    const res = { accepted: rk.zeros([B], 'i32'), nextToken: rk.zeros([B], 'i32') };
    // minimum traffic: tokens, uniforms, the K (p, q) pairs, and the one or two rows drawn from
    out.push({
      family: 'sampling', op: 'speculativeVerify', size: `B${B} K${K} V${V}`, bytes: B * (K * 4 + (K + 1) * 4 + K * 8 + 2 * V * 4 + 8),
      note: 'bytes = the rows the rule must read (≤ 2 of V per row), not the whole [B,K,V] inputs',
      run: on((backend) => rk.speculativeVerify(inputs, { backend, out: res })),
    });
  }

  {
    const G = 1024, K = 16;
    const rewards = rk.tensor(randn(G * K, 6), [G, K]);
    const u = rk.tensor(uniforms(G * K * K, 7), [G, K, K]);
    for (const m of [4, 16]) {
      const sel = { selected: rk.zeros([G, m], 'i32') };
      out.push({
        family: 'sampling', op: `rejectionSample(m=${m})`, size: `G${G} K${K}`, bytes: G * K * 4 * 2 + G * m * 4,
        note: 'bytes = rewards + one round of uniforms + output',
        run: on((backend) => rk.rejectionSample({ rewards, uniforms: u }, { beta: 1, numSamples: m, backend, out: sel })),
      });
    }
  }

  {
    const B = 4096, K = 20;
    const P = rk.tensor(Float32Array.from(uniforms(B * K, 8), (x) => 0.7 + 0.3 * x), [B, K]);
    const len = { length: rk.zeros([B], 'i32') };
    out.push({
      family: 'sampling', op: 'specDecStop', size: `B${B} K${K}`, bytes: B * K * 4 + B * 4,
      run: on((backend) => rk.specDecStop({ acceptProbs: P }, { backend, out: len })),
    });
  }
  return out;
}
