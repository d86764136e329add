/**
 * Benchmarks of the preference family (SPEC §4): preferenceLoss at B = 64 (per-call overhead: the
 * per-example work is tiny) and B = 65536 (throughput), listwiseLoss and apoReference.
 */
import * as rk from '../ts/index.js';
import { randn, type BenchCase, type BenchOptions } from './harness.js';

const on = <T>(f: (backend: 'js' | 'cpu' | 'cuda') => T) => ({ js: () => f('js'), cpu: () => f('cpu') });

export function cases(_opts: BenchOptions): BenchCase[] {
  const out: BenchCase[] = [];
  for (const B of [64, 65536]) {
    const t = (seed: number, shift = -20) => rk.tensor(Float32Array.from(randn(B, seed, 5), (x) => x + shift), [B]);
    const inp = { policyChosen: t(1), policyRejected: t(2), refChosen: t(3), refRejected: t(4) };
    const avg = { policyChosen: rk.tensor(Float32Array.from(randn(B, 5, 0.3), (x) => -0.1 - Math.abs(x)), [B]),
      policyRejected: rk.tensor(Float32Array.from(randn(B, 6, 0.3), (x) => -0.1 - Math.abs(x)), [B]), chosenNll: t(7, 5) };
    const outs = Object.fromEntries(['losses', 'gradPolicyChosen', 'gradPolicyRejected', 'chosenRewards', 'rejectedRewards', 'margins', 'gradChosenNll']
      .map((k) => [k, rk.zeros([B], 'f32')]));
    const size = `B=${B}`;
    const note = B === 64 ? 'per-call overhead' : 'throughput';
    // read 4 inputs, write 6 outputs
    out.push({ family: 'preference', op: `preferenceLoss(dpo) ${note}`, size, bytes: B * 4 * 10,
      run: on((backend) => rk.preferenceLoss(inp, { type: 'dpo', beta: 0.1, backend, out: outs })) });
    out.push({ family: 'preference', op: `preferenceLoss(dpo, new outputs) ${note}`, size, bytes: B * 4 * 10,
      run: on((backend) => rk.preferenceLoss(inp, { type: 'dpo', beta: 0.1, backend })) });
    out.push({ family: 'preference', op: `preferenceLoss(ipo) ${note}`, size, bytes: B * 4 * 10,
      run: on((backend) => rk.preferenceLoss(inp, { type: 'ipo', beta: 0.1, backend, out: outs })) });
    out.push({ family: 'preference', op: `preferenceLoss(orpo) ${note}`, size, bytes: B * 4 * 10,
      run: on((backend) => rk.preferenceLoss(avg, { type: 'orpo', beta: 0.1, backend, out: outs })) });
  }
  {
    const B = 4096, K = 8, n = B * K;
    const policy = rk.tensor(Float32Array.from(randn(n, 8, 5), (x) => x - 30), [B, K]);
    const ref = rk.tensor(Float32Array.from(randn(n, 9, 5), (x) => x - 30), [B, K]);
    const labels = rk.tensor(Float32Array.from({ length: n }, (_, i) => (i * 7) % 5), [B, K]);
    const lo = { losses: rk.zeros([B], 'f32'), gradPolicy: rk.zeros([B, K], 'f32') };
    for (const type of ['lipo', 'pro', 'pl'] as const)
      out.push({ family: 'preference', op: `listwiseLoss(${type})`, size: `${B}x${K}`, bytes: n * 4 * 4 + B * 4,
        run: on((backend) => rk.listwiseLoss({ policy, ref, labels }, { type, beta: 0.5, sftWeight: 0.1, backend, out: lo })) });
    const current = policy, previous = ref, ro = { reference: rk.zeros([B, K], 'f32') };
    out.push({ family: 'preference', op: 'apoReference', size: `${B}x${K}`, bytes: n * 12,
      run: on((backend) => rk.apoReference({ current, previous }, { alpha: 0.5, backend, out: ro })) });
  }
  // fusedPreferenceLoss at 2B = 16, T = 512, V = 32000 (CPU), next to one logprobs forward plus one
  // logprobsBackward on the same logits: the target is fused ≤ 1.3× that pair.
  {
    const R = 16, T = 512, V = 32000, N = R * T;
    const lg = randn(N * V, 11, 2);
    const f32Logits = rk.tensor(lg, [R, T, V]);
    const bf16Logits = rk.tensor(Uint16Array.from({ length: N * V }, (_, i) => rk.floatToBf16(lg[i])), [R, T, V], 'bf16');
    const labels = rk.tensor(Int32Array.from({ length: N }, (_, i) => (i * 7919) % V), [R, T]);
    const mask = rk.tensor(new Uint8Array(N).fill(1), [R, T]);
    const refLogp = rk.tensor(Float32Array.from(randn(R, 12, 10), (x) => x - 5000), [R]);
    const gradLogits = rk.zeros([R, T, V], 'f32');
    (gradLogits.data as Float32Array).fill(1); // touch the pages now, so the first case measured does not pay for them
    const lpOut = { logp: rk.zeros([R, T], 'f32'), lse: rk.zeros([R, T], 'f32') };
    const gradLogp = rk.tensor(new Float32Array(N).fill(0.01), [R, T]);
    for (const [tag, logits, esz] of [['f32', f32Logits, 4], ['bf16', bf16Logits, 2]] as const) {
      const size = `${R}x${T}x${V} ${tag}`;
      out.push({ family: 'preference', op: 'fusedPreferenceLoss(dpo)', size, bytes: N * V * (2 * esz + 4),
        note: 'logits read twice, gradLogits written once',
        run: { cpu: () => rk.fusedPreferenceLoss({ logits, labels, mask, refLogp }, { type: 'dpo', beta: 0.1, backend: 'cpu', out: { gradLogits } }) } });
      out.push({ family: 'preference', op: 'logprobs + logprobsBackward (fused target / 1.3)', size, bytes: N * V * (2 * esz + 4),
        run: { cpu: () => {
          const lp = rk.logprobs({ logits, labels }, { backend: 'cpu', out: lpOut });
          rk.logprobsBackward({ logits, labels, gradLogp, lse: lp.lse }, { backend: 'cpu', out: { gradLogits } });
        } } });
    }
  }
  return out;
}
