/**
 * One or more small valid calls of every op (inputs + options), and helpers to run a case on
 * device tensors and compare results. Shared by tests/device.test.ts and tests/async.test.ts: a
 * new op family adds its cases here.
 */
import { expect } from 'vitest';
import * as rk from '../ts/index.js';
import { rng } from './helpers.js';

type R = ReturnType<typeof rng>;
export interface OpCase {
  name: string;
  /** the op (sync form; `.async` on it) */
  op: rk.Op<any, any, any>;
  inputs: Record<string, rk.TensorLike | undefined>;
  options?: Record<string, unknown>;
}

const t = rk.tensor;
const f = (r: R, shape: number[], scale = 1, shift = 0) => t(r.f32(shape.reduce((a, b) => a * b, 1), scale, shift), shape);
const f64 = (r: R, shape: number[]) => t(Float64Array.from(r.f32(shape.reduce((a, b) => a * b, 1))), shape);
const mask = (r: R, B: number, T: number, kind: 'u8' | 'f32' = 'u8') => t(r.mask(B, T, kind), [B, T]);
const ints = (r: R, n: number, lo: number, hi: number, shape = [n]) => t(Int32Array.from({ length: n }, () => r.int(lo, hi)), shape);
const bf16 = (r: R, shape: number[]) =>
  t(Uint16Array.from(r.f32(shape.reduce((a, b) => a * b, 1), 2), (x) => rk.floatToBf16(x)), shape, 'bf16');
const f16 = (r: R, shape: number[]) =>
  t(Uint16Array.from(r.f32(shape.reduce((a, b) => a * b, 1), 2), (x) => rk.floatToF16(x)), shape, 'f16');
const probs = (r: R, rows: number, V: number, shape: number[]) => {
  const p = new Float32Array(rows * V);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < V; j++) s += p[i * V + j] = r.next() + 0.01;
    for (let j = 0; j < V; j++) p[i * V + j] /= s;
  }
  return t(p, shape);
};

/** Every op, at one small size (k scales the sizes: 1 = tiny, larger = more data). */
export function opCases(seed = 1, k = 1): OpCase[] {
  const r = rng(seed);
  const B = 3 * k, T = 17, N = 5 * k, V = 33;
  const labels = (n: number, shape = [n]) => {
    const l = ints(r, n, 0, V - 1, shape);
    (l.data as Int32Array)[1] = -100;
    return l;
  };
  const P = 2, L = 16, H = 4, Hkv = 2, Dh = 8;
  const seg = t(Int32Array.from({ length: P * L }, (_, i) => ((i % L) < 3 ? 1 : (i % L) < 10 ? 2 : (i % L) < 14 ? 3 : 0)), [P, L]);
  const lengthsPack = t(Int32Array.from([5, 0, 3, 7, 2, 6]), [6]);
  return [
    // §2 rewards
    { name: 'klPenalty k3 clamp', op: rk.klPenalty, inputs: { logp: f(r, [B, T]), refLogp: f(r, [B, T]), mask: mask(r, B, T) }, options: { estimator: 'k3', clamp: 1 } },
    { name: 'klPenalty f64 no mask', op: rk.klPenalty, inputs: { logp: f64(r, [B, T]), refLogp: f64(r, [B, T]) } },
    { name: 'tokenRewards', op: rk.tokenRewards, inputs: { logp: f(r, [B, T]), refLogp: f(r, [B, T]), mask: mask(r, B, T, 'f32'), scores: f(r, [B]) }, options: { klCoef: 0.05, scoreClip: 1 } },
    { name: 'rtoRewards', op: rk.rtoRewards, inputs: { dpoLogp: f(r, [B, T]), refLogp: f(r, [B, T]), logp: f(r, [B, T]), mask: mask(r, B, T), scores: f(r, [B]) }, options: { beta1: 0.1, beta2: 0.05, dpoClip: 1 } },
    { name: 'implicitRewards', op: rk.implicitRewards, inputs: { logp: f(r, [B, T]), refLogp: f(r, [B, T]), mask: mask(r, B, T) }, options: { beta: 0.1 } },
    // §3 advantages
    { name: 'gae', op: rk.gae, inputs: { rewards: f(r, [B, T]), values: f(r, [B, T]), mask: mask(r, B, T), lastValues: f(r, [B]) }, options: { gamma: 0.99, lambda: 0.95 } },
    { name: 'whiten', op: rk.whiten, inputs: { x: f(r, [B, T], 2, 1), mask: mask(r, B, T) }, options: { shiftMean: false } },
    { name: 'groupAdvantages grpo', op: rk.groupAdvantages, inputs: { scores: f(r, [4 * B]) }, options: { groupSize: 4, method: 'grpo' } },
    { name: 'groupAdvantages remax', op: rk.groupAdvantages, inputs: { scores: f(r, [4 * B]), baselines: f(r, [4 * B]) }, options: { groupSize: 2, method: 'remax' } },
    { name: 'discountedReturns', op: rk.discountedReturns, inputs: { rewards: f(r, [B, T]), mask: mask(r, B, T) }, options: { gamma: 0.9 } },
    { name: 'ensembleRewards uwo', op: rk.ensembleRewards, inputs: { scores: f(r, [4, B]) }, options: { method: 'uwo', lambda: 0.5 } },
    { name: 'winRateRewards', op: rk.winRateRewards, inputs: { preferences: t(r.uniform(B * 16), [B, 4, 4]) } },
    // §1 logprobs
    { name: 'logprobs f32 entropy', op: rk.logprobs, inputs: { logits: f(r, [N, V], 2), labels: labels(N) }, options: { entropy: true, temperature: 0.7 } },
    { name: 'logprobs bf16 [B,T,V]', op: rk.logprobs, inputs: { logits: bf16(r, [2, 3, V]), labels: labels(6, [2, 3]) } },
    { name: 'logprobs f64', op: rk.logprobs, inputs: { logits: f64(r, [N, V]), labels: labels(N) } },
    { name: 'logprobsBackward', op: rk.logprobsBackward, inputs: { logits: f(r, [N, V], 2), labels: labels(N), gradLogp: f(r, [N]), gradEntropy: f(r, [N]) } },
    { name: 'vocabKl forward f16', op: rk.vocabKl, inputs: { logits: f16(r, [N, V]), refLogits: f16(r, [N, V]), labels: labels(N) }, options: { direction: 'forward' } },
    { name: 'vocabKl mixed dtypes', op: rk.vocabKl, inputs: { logits: f16(r, [N, V]), refLogits: bf16(r, [N, V]) } },
    { name: 'vocabKlBackward', op: rk.vocabKlBackward, inputs: { logits: f(r, [N, V], 2), refLogits: f(r, [N, V], 2), gradKl: f(r, [N]) } },
    { name: 'sequenceLogprobs', op: rk.sequenceLogprobs, inputs: { logp: f(r, [B, T]), mask: mask(r, B, T) }, options: { average: true } },
    // §4 preference
    { name: 'preferenceLoss dpo', op: rk.preferenceLoss, inputs: { policyChosen: f(r, [B]), policyRejected: f(r, [B]), refChosen: f(r, [B]), refRejected: f(r, [B]) }, options: { type: 'dpo', beta: 0.1 } },
    { name: 'preferenceLoss ipo lengths i32', op: rk.preferenceLoss, inputs: { policyChosen: f(r, [B]), policyRejected: f(r, [B]), refChosen: f(r, [B]), refRejected: f(r, [B]), chosenLength: ints(r, B, 1, 9), rejectedLength: ints(r, B, 1, 9) }, options: { type: 'ipo', beta: 0.1, lengthNormalize: true } },
    { name: 'preferenceLoss rpo', op: rk.preferenceLoss, inputs: { policyChosen: f(r, [B]), policyRejected: f(r, [B]), refChosen: f(r, [B]), refRejected: f(r, [B]), chosenNll: f(r, [B]) }, options: { type: 'rpo', beta: 0.1 } },
    { name: 'preferenceLoss dno', op: rk.preferenceLoss, inputs: { policyChosen: f(r, [B]), policyRejected: f(r, [B]), refChosen: f(r, [B]), refRejected: f(r, [B]), preferenceProb: t(r.uniform(B), [B]) }, options: { type: 'dno', beta: 0.1 } },
    { name: 'apoReference', op: rk.apoReference, inputs: { current: f(r, [B, T]), previous: f(r, [B, T]) }, options: { alpha: 0.3 } },
    { name: 'listwiseLoss lipo', op: rk.listwiseLoss, inputs: { policy: f(r, [B, 5]), ref: f(r, [B, 5]), labels: f(r, [B, 5]) }, options: { type: 'lipo', beta: 0.1 } },
    { name: 'listwiseLoss pro lengths', op: rk.listwiseLoss, inputs: { policy: f(r, [B, 5]), labels: f(r, [B, 5]), lengths: t(Float32Array.from({ length: B * 5 }, () => r.int(1, 9)), [B, 5]) }, options: { type: 'pro', sftWeight: 0.1 } },
    { name: 'fusedPreferenceLoss dpo', op: rk.fusedPreferenceLoss, inputs: { logits: f(r, [2 * B, 7, V]), labels: labels(2 * B * 7, [2 * B, 7]), mask: mask(r, 2 * B, 7), refLogp: f(r, [2 * B]) }, options: { type: 'dpo', beta: 0.1 } },
    // §5 ppo
    { name: 'ppoPolicyLoss kl dual', op: rk.ppoPolicyLoss, inputs: { logp: f(r, [B, T], 0.1), oldLogp: f(r, [B, T], 0.1), advantages: f(r, [B, T]), mask: mask(r, B, T), refLogp: f(r, [B, T], 0.1) }, options: { klCoef: 0.1, dualClip: 3, clipHigh: 0.28 } },
    { name: 'valueLoss', op: rk.valueLoss, inputs: { values: f(r, [B, T]), oldValues: f(r, [B, T]), returns: f(r, [B, T]), mask: mask(r, B, T) }, options: { aggregation: 'seq-mean-token-mean' } },
    { name: 'p3oLoss joint', op: rk.p3oLoss, inputs: { logp1: f(r, [B], 0.1), logp2: f(r, [B], 0.1), oldLogp1: f(r, [B], 0.1), oldLogp2: f(r, [B], 0.1), rewards1: f(r, [B]), rewards2: f(r, [B]) }, options: { variant: 'joint' } },
    // §6 prepack
    { name: 'packSequences bfd', op: rk.packSequences, inputs: { lengths: lengthsPack }, options: { capacity: 8, algorithm: 'bfd' } },
    { name: 'prepack holdLast', op: rk.prepack, inputs: { tokens: ints(r, 23, 1, 999), lengths: lengthsPack }, options: { capacity: 8, holdLast: true } },
    { name: 'attentionMask additive', op: rk.attentionMask, inputs: { segmentIds: seg }, options: { format: 'additive' } },
    { name: 'attentionMask bool', op: rk.attentionMask, inputs: { segmentIds: seg } },
    { name: 'unpack', op: rk.unpack, inputs: { packed: f(r, [P, L, 3]), packOf: t(Int32Array.from([0, 1, 0]), [3]), offsetOf: t(Int32Array.from([0, 2, 5]), [3]), lengths: t(Int32Array.from([4, 7, 0]), [3]) } },
    { name: 'packedAttention bf16 gqa', op: rk.packedAttention, inputs: { q: bf16(r, [P, L, H, Dh]), k: bf16(r, [P, L, Hkv, Dh]), v: bf16(r, [P, L, Hkv, Dh]), segmentIds: seg } },
    { name: 'packedAttention f32', op: rk.packedAttention, inputs: { q: f(r, [P, L, H, Dh]), k: f(r, [P, L, H, Dh]), v: f(r, [P, L, H, Dh]), segmentIds: seg } },
    // §7 sampling
    { name: 'speculativeVerify', op: rk.speculativeVerify, inputs: { draftTokens: ints(r, B * 4, 0, V - 1, [B, 4]), draftProbs: probs(r, B * 4, V, [B, 4, V]), targetProbs: probs(r, B * 5, V, [B, 5, V]), uniforms: t(r.uniform(B * 5, 0, 0.999), [B, 5]) } },
    { name: 'specDecStop', op: rk.specDecStop, inputs: { acceptProbs: t(r.uniform(B * 8, 0.5, 1), [B, 8]) }, options: { threshold: 0.5 } },
    { name: 'geometricMixture', op: rk.geometricMixture, inputs: { logits: f(r, [N, V], 2), refLogits: bf16(r, [N, V]) }, options: { beta: 0.25 } },
    { name: 'rejectionSample', op: rk.rejectionSample, inputs: { rewards: f(r, [B, 6]), uniforms: t(r.uniform(B * 36, 0, 0.999), [B, 6, 6]) }, options: { beta: 0.5, numSamples: 3 } },
    // §8 linear (log-probs from hidden states)
    { name: 'linearLogprobs f32 bias entropy', op: rk.linearLogprobs, inputs: { hidden: f(r, [N, 9]), weight: f(r, [V, 9], 0.5), bias: f(r, [V]), labels: labels(N) }, options: { entropy: true, temperature: 0.8 } },
    { name: 'linearLogprobs bf16 [B,T,D]', op: rk.linearLogprobs, inputs: { hidden: bf16(r, [2, 3, 16]), weight: bf16(r, [V, 16]), labels: labels(6, [2, 3]) } },
    { name: 'linearLogprobsBackward', op: rk.linearLogprobsBackward, inputs: { hidden: f(r, [N, 9]), weight: f(r, [V, 9], 0.5), bias: f(r, [V]), labels: labels(N), gradLogp: f(r, [N]), gradEntropy: f(r, [N]) }, options: { chunk: 8 } },
    { name: 'linearPreferenceLoss dpo', op: rk.linearPreferenceLoss, inputs: { hidden: f(r, [2 * B, 7, 9]), weight: f(r, [V, 9], 0.5), labels: labels(2 * B * 7, [2 * B, 7]), mask: mask(r, 2 * B, 7), refLogp: f(r, [2 * B]) }, options: { type: 'dpo', beta: 0.1 } },
  ];
}

/** The case's inputs on a device (undefined stays undefined). */
export function onDevice(c: OpCase, device: rk.DeviceId): Record<string, rk.DeviceTensor | undefined> {
  const out: Record<string, rk.DeviceTensor | undefined> = {};
  for (const [k, v] of Object.entries(c.inputs)) out[k] = v === undefined ? undefined : rk.cuda.upload(v, { device });
  return out;
}

/** A result with device tensors and scalars read back: { field: number[] | number }. */
export function hostValues(res: unknown): Record<string, number[] | number> {
  const out: Record<string, number[] | number> = {};
  for (const [k, v] of Object.entries(res as Record<string, unknown>)) {
    if (v instanceof rk.DeviceScalar) out[k] = v.item();
    else if (v instanceof rk.DeviceTensor) out[k] = Array.from(v.toHost().data as ArrayLike<number>);
    else if (typeof v === 'number') out[k] = v;
    else if (v && typeof v === 'object' && 'data' in v) out[k] = Array.from((v as rk.Tensor).data as ArrayLike<number>);
  }
  return out;
}

/** Checks that a device result has the host result's fields, types (device tensors, scalars) and shapes. */
export function expectDeviceShaped(host: unknown, dev: unknown, device: number, what: string) {
  const h = host as Record<string, unknown>, d = dev as Record<string, unknown>;
  expect(Object.keys(d).sort(), `${what}: fields`).toEqual(Object.keys(h).sort());
  for (const [k, v] of Object.entries(h)) {
    if (typeof v === 'number') {
      expect(d[k], `${what}.${k}`).toBeInstanceOf(rk.DeviceScalar);
    } else if (v && typeof v === 'object' && 'data' in v) {
      const dt = d[k] as rk.DeviceTensor;
      expect(dt, `${what}.${k}`).toBeInstanceOf(rk.DeviceTensor);
      expect(dt.device).toBe(device);
      expect(dt.shape).toEqual((v as rk.Tensor).shape);
      expect(dt.dtype).toBe((v as rk.Tensor).dtype);
    }
  }
}

/** Equal results; tol = 0 means bit-identical (NaN matches NaN). */
export function expectSameValues(got: Record<string, number[] | number>, want: Record<string, number[] | number>, what: string, tol = 0) {
  expect(Object.keys(got).sort(), `${what}: fields`).toEqual(Object.keys(want).sort());
  for (const [k, w] of Object.entries(want)) {
    const g = got[k];
    const gs = typeof g === 'number' ? [g] : g, ws = typeof w === 'number' ? [w] : w;
    expect(gs.length, `${what}.${k} length`).toBe(ws.length);
    for (let i = 0; i < ws.length; i++) {
      const a = gs[i], b = ws[i];
      const ok = Number.isNaN(b) ? Number.isNaN(a) : tol === 0 || !Number.isFinite(b) ? Object.is(a, b) || a === b : Math.abs(a - b) <= tol * (1 + Math.abs(b));
      if (!ok) expect.fail(`${what}.${k}[${i}] = ${a}, expected ${b}${tol ? ` (tol ${tol})` : ''}`);
    }
  }
}
