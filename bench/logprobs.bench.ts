/**
 * Benchmarks of the token log-prob family (SPEC §1), at the sizes:
 * - forward at N=4096, V=32000 (f32, f16, bf16; ± entropy): target ≥ 60% of copy bandwidth, ≥ 15× js;
 * - backward with lse given, and forward+backward (target: forward ≤ 0.55× of forward+backward);
 * - few long rows (N=4, V=152064: V split within rows), many short rows (N=65536, V=128);
 * - vocabKl and vocabKlBackward at N=2048, V=32000; sequenceLogprobs at 64×8192.
 * `bytes` is the minimum traffic: the logits read once (twice for vocabKl: two tensors), the
 * gradient written once, plus labels and [N] outputs.
 */
import * as rk from '../ts/index.js';
import { paddedMask, randn, type BenchCase, type BenchOptions } from './harness.js';

/** Round-to-nearest-even f32 → bf16 / f16 bit patterns, in place-free loops (the tensor.ts
 * helpers allocate per call, too slow for 131M values). f16: normals only (bench data). */
function toBf16(a: Float32Array): Uint16Array {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length), o = new Uint16Array(a.length);
  for (let i = 0; i < u.length; i++) o[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) & 0xffff;
  return o;
}
function toF16(a: Float32Array): Uint16Array {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length), o = new Uint16Array(a.length);
  for (let i = 0; i < u.length; i++) {
    const s = (u[i] >>> 16) & 0x8000, e = ((u[i] >>> 23) & 0xff) - 112, m = u[i] & 0x7fffff;
    let h = e <= 0 ? s : e >= 31 ? s | 0x7c00 : s | (e << 10) | (m >>> 13);
    if (e > 0 && e < 31) { const r = m & 0x1fff; if (r > 0x1000 || (r === 0x1000 && h & 1)) h++; }
    o[i] = h;
  }
  return o;
}

export function cases(_opts: BenchOptions): BenchCase[] {
  const out: BenchCase[] = [];
  const family = 'logprobs';
  const on = <T>(f: (backend: 'js' | 'cpu' | 'cuda') => T, js = true) =>
    js ? { js: () => f('js'), cpu: () => f('cpu') } : { cpu: () => f('cpu') };

  {
    const N = 4096, V = 32000, n = N * V;
    const x = randn(n, 11, 3);
    const f32 = rk.tensor(x, [N, V]);
    const bf16 = rk.tensor(toBf16(x), [N, V], 'bf16');
    const f16 = rk.tensor(toF16(x), [N, V], 'f16');
    const labels = rk.tensor(Int32Array.from({ length: N }, (_, i) => (i * 7919) % V), [N]);
    const outs = { logp: rk.zeros([N], 'f32'), lse: rk.zeros([N], 'f32'), entropy: rk.zeros([N], 'f32') };
    const grad = { gradLogits: rk.zeros([N, V], 'f32') };
    const gradLogp = rk.tensor(randn(N, 12), [N]);
    const gradEntropy = rk.tensor(randn(N, 13), [N]);
    const size = `${N}x${V}`;
    const small = N * 4 + N * 8;
    rk.logprobs({ logits: f32, labels }, { out: outs }); // lse for the backward cases
    for (const [dt, logits, es] of [['f32', f32, 4], ['bf16', bf16, 2], ['f16', f16, 2]] as const) {
      out.push({
        family, op: `logprobs ${dt}`, size, bytes: n * es + small,
        run: on((backend) => rk.logprobs({ logits, labels }, { backend, out: outs }), dt === 'f32'),
      });
    }
    out.push({
      family, op: 'logprobs+entropy f32', size, bytes: n * 4 + small + N * 4,
      run: on((backend) => rk.logprobs({ logits: f32, labels }, { entropy: true, backend, out: outs }), false),
    });
    out.push({
      family, op: 'logprobsBackward(lse) f32', size, bytes: n * 8 + small,
      run: on((backend) => rk.logprobsBackward({ logits: f32, labels, gradLogp, lse: outs.lse }, { backend, out: grad })),
    });
    out.push({
      family, op: 'logprobsBackward(lse) bf16', size, bytes: n * 6 + small,
      run: on((backend) => rk.logprobsBackward({ logits: bf16, labels, gradLogp, lse: outs.lse }, { backend, out: grad }), false),
    });
    out.push({
      family, op: 'logprobsBackward(entropy) f32', size, bytes: n * 8 + small + N * 4,
      note: 'recomputes lse and the entropy (one extra read of the logits)',
      run: on((backend) => rk.logprobsBackward({ logits: f32, labels, gradLogp, gradEntropy }, { backend, out: grad }), false),
    });
    out.push({
      family, op: 'logprobs fwd+bwd f32', size, bytes: n * 12 + small,
      note: 'logprobs then logprobsBackward with its lse: compare the forward row (target ≤ 0.55× of this)',
      run: on((backend) => {
        const o = rk.logprobs({ logits: f32, labels }, { backend, out: outs });
        return rk.logprobsBackward({ logits: f32, labels, gradLogp, lse: o.lse }, { backend, out: grad });
      }, false),
    });
  }

  {
    const N = 4, V = 152064, n = N * V;
    const logits = rk.tensor(randn(n, 21, 3), [N, V]);
    const labels = rk.tensor(Int32Array.from([5, 77, 1000, 150000]), [N]);
    const outs = { logp: rk.zeros([N], 'f32'), lse: rk.zeros([N], 'f32') };
    out.push({
      family, op: 'logprobs f32 (V split)', size: `${N}x${V}`, bytes: n * 4 + N * 12,
      run: on((backend) => rk.logprobs({ logits, labels }, { backend, out: outs })),
    });
  }

  {
    const N = 65536, V = 128, n = N * V;
    const logits = rk.tensor(randn(n, 22, 3), [N, V]);
    const labels = rk.tensor(Int32Array.from({ length: N }, (_, i) => (i * 31) % V), [N]);
    const outs = { logp: rk.zeros([N], 'f32'), lse: rk.zeros([N], 'f32') };
    out.push({
      family, op: 'logprobs f32 (short rows)', size: `${N}x${V}`, bytes: n * 4 + N * 12,
      run: on((backend) => rk.logprobs({ logits, labels }, { backend, out: outs })),
    });
  }

  {
    const N = 2048, V = 32000, n = N * V;
    const logits = rk.tensor(randn(n, 31, 3), [N, V]);
    const refLogits = rk.tensor(randn(n, 32, 3), [N, V]);
    const gradKl = rk.tensor(randn(N, 33), [N]);
    const kl = { kl: rk.zeros([N], 'f32') };
    const grad = { gradLogits: rk.zeros([N, V], 'f32') };
    const size = `${N}x${V}`;
    for (const direction of ['reverse', 'forward'] as const) {
      out.push({
        family, op: `vocabKl(${direction}) f32`, size, bytes: n * 8 + N * 4,
        run: on((backend) => rk.vocabKl({ logits, refLogits }, { direction, backend, out: kl }), direction === 'reverse'),
      });
    }
    out.push({
      family, op: 'vocabKlBackward(reverse) f32', size, bytes: n * 12 + N * 4,
      note: 'two passes over both tensors (statistics, then the gradient)',
      run: on((backend) => rk.vocabKlBackward({ logits, refLogits, gradKl }, { backend, out: grad }), false),
    });
  }

  {
    const B = 64, T = 8192;
    const logp = rk.tensor(randn(B * T, 41, 1), [B, T]);
    const mask = rk.tensor(paddedMask(B, T), [B, T]);
    const o = { sum: rk.zeros([B], 'f32'), count: rk.zeros([B], 'i32') };
    out.push({
      family, op: 'sequenceLogprobs', size: `${B}x${T}`, bytes: B * T * 5 + B * 8,
      run: on((backend) => rk.sequenceLogprobs({ logp, mask }, { backend, out: o })),
    });
  }
  return out;
}
