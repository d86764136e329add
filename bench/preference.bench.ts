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
  return out;
}
