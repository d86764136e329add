/**
 * Benchmarks of the sampling family (SPEC §7): geometricMixture over [N,V] logits (f32, bf16;
 * cache-resident and DRAM-resident), speculativeVerify at B = 64, K = 8, V = 32000,
 * rejectionSample at G = 1024, K = 16 and specDecStop over [B,K].
 * bytes: geometricMixture reads both logits and writes the f32 log-probs; speculativeVerify the
 * rows the rule must read (at most 2 of V per draft position), not the whole [B,K,V] inputs;
 * rejectionSample the rewards, one round of uniforms and the output. FLOPs: geometricMixture per
 * logit the mix (3) and a log-softmax (22); speculativeVerify min/ratio per position and the
 * residual row (3 per element read); rejectionSample an exp, a compare per candidate per draw;
 * specDecStop a product and a compare per position.
 */
import * as rk from '../ts/index.js';
import {
  dims,
  on,
  mapInPlace,
  dtypeBytes,
  logitsOf,
  randn,
  roundUp,
  TRANSCENDENTAL_FLOPS as TX,
  uniforms,
  vocabSizes,
  type OpCase,
  type OpSpec,
} from './harness.js';

const family = 'sampling';

/** rows softmax-like distributions over V (f32). */
function dists(rows: number, V: number, seed: number, temp: number): Float32Array {
  const z = randn(rows * V, seed, temp);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity, s = 0;
    for (let j = 0; j < V; j++) m = Math.max(m, z[r * V + j]);
    for (let j = 0; j < V; j++) s += z[r * V + j] = Math.exp(z[r * V + j] - m);
    for (let j = 0; j < V; j++) z[r * V + j] /= s;
  }
  return z;
}

export const ops: OpSpec[] = [
  {
    family, op: 'geometricMixture', dtypes: ['f32', 'bf16'], defaultDtypes: ['f32', 'bf16'],
    sizes: (llc, dram) => ({ ...vocabSizes(12, 1024)(llc, dram) }),
    make(size, dt): OpCase {
      const [N, V] = dims(size, 2, 'NxV, e.g. 4096x32000');
      const n = N * V, es = dtypeBytes(dt);
      const x = { logits: rk.tensor(logitsOf(randn(n, 1, 2), dt), [N, V], dt), refLogits: rk.tensor(logitsOf(randn(n, 2, 2), dt), [N, V], dt) };
      const logp = { logp: rk.zeros([N, V], 'f32') };
      return {
        bytes: n * (2 * es + 4), flops: n * (3 + 6 + TX),
        out: on((backend) => rk.geometricMixture(x, { beta: 0.5, backend, out: logp })),
        alloc: on((backend) => rk.geometricMixture(x, { beta: 0.5, backend })),
      };
    },
  },
  {
    family, op: 'speculativeVerify', sizes: () => ({ other: ['64x8x32000'] }),
    make(size): OpCase {
      const [B, K, V] = dims(size, 3, 'BxKxV, e.g. 64x8x32000');
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
      const bytes = B * (K * 4 + (K + 1) * 4 + K * 8 + 2 * V * 4 + 8);
      return {
        bytes, flops: B * (K * 4 + 2 * V * 3),
        note: 'bytes = the rows the rule must read (≤ 2 of V per row), not the whole [B,K,V] inputs',
        out: on((backend) => rk.speculativeVerify(inputs, { backend, out: res })),
        alloc: on((backend) => rk.speculativeVerify(inputs, { backend })),
      };
    },
  },
  ...[4, 16].map(
    (m): OpSpec => ({
      family, op: `rejectionSample(m=${m})`, sizes: () => ({ other: ['1024x16'] }),
      make(size): OpCase {
        const [G, K] = dims(size, 2, 'GxK, e.g. 1024x16');
        const rewards = rk.tensor(randn(G * K, 6), [G, K]);
        const u = rk.tensor(uniforms(G * K * K, 7), [G, K, K]);
        const sel = { selected: rk.zeros([G, m], 'i32') };
        return {
          bytes: G * K * 4 * 2 + G * m * 4, flops: G * K * (TX + 2 * m),
          note: 'bytes = rewards + one round of uniforms + output',
          out: on((backend) => rk.rejectionSample({ rewards, uniforms: u }, { beta: 1, numSamples: m, backend, out: sel })),
          alloc: on((backend) => rk.rejectionSample({ rewards, uniforms: u }, { beta: 1, numSamples: m, backend })),
        };
      },
    }),
  ),
  {
    family, op: 'specDecStop',
    sizes: (llc, dram) => {
      let B = 4096;
      while (B > 1 && B * 84 > llc / 2) B /= 2;
      return { cache: `${B}x20`, dram: `${roundUp(dram / 84, 65536)}x20` };
    },
    make(size): OpCase {
      const [B, K] = dims(size, 2, 'BxK, e.g. 4096x20');
      const P = rk.tensor(mapInPlace(uniforms(B * K, 8), (x) => 0.7 + 0.3 * x), [B, K]);
      const len = { length: rk.zeros([B], 'i32') };
      return {
        bytes: B * K * 4 + B * 4, flops: B * K * 2,
        out: on((backend) => rk.specDecStop({ acceptProbs: P }, { backend, out: len })),
        alloc: on((backend) => rk.specDecStop({ acceptProbs: P }, { backend })),
      };
    },
  },
];
