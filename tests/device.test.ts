/**
 * Device tensors (SPEC §0 "Device tensors"): every op on device inputs returns device tensors and
 * device scalars equal to the host results. Runs on the emulated device everywhere (host memory,
 * the CPU kernels: the results must be bit-identical to the cpu backend, and every device output
 * element is poisoned with 0xFF bytes before the op so an unwritten element cannot go unnoticed),
 * and on every CUDA device when `backends().cuda.available` (results within 2e-5 of the cpu
 * backend, integers exact).
 */
import { describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { addonPath } from '../ts/native.js';
import { rng } from './helpers.js';
import { expectDeviceShaped, expectSameValues, hostValues, onDevice, opCases } from './op-cases.js';

const native = rk.backends().cpu;
const cudaOk = rk.backends().cuda.available;
const devices: { id: rk.DeviceId; num: number; tol: number }[] = [
  ...(native ? [{ id: 'emulated' as const, num: -1, tol: 0 }] : []),
  ...(cudaOk ? rk.backends().cuda.devices.map((_, i) => ({ id: i, num: i, tol: 2e-5 })) : []),
];
const t = rk.tensor;

describe.skipIf(!native)(`device tensors (${addonPath})`, () => {
  it('cuda.upload / toHost round trips every dtype, with shape and dtype kept', () => {
    for (const d of devices) {
      const r = rng(5);
      const host = [
        t(r.f32(7), [7]), t(Float64Array.from(r.f32(6)), [2, 3]), t(Int32Array.from([1, -2, 3]), [3]),
        t(Uint8Array.from([0, 1, 255]), [1, 3]), t(Uint16Array.from([1, 2, 65535]), [3], 'bf16'), t(Uint16Array.from([9]), [1], 'f16'),
        t(new Float32Array(0), [0, 4]),
      ];
      for (const h of host) {
        const dt = rk.cuda.upload(h, { device: d.id });
        expect(dt.device).toBe(d.num);
        expect(dt.shape).toEqual(h.shape);
        expect(dt.dtype).toBe(h.dtype);
        expect(dt.size).toBe(h.data.length);
        const back = dt.toHost();
        expect(back.data.constructor).toBe(h.data.constructor);
        expect(Array.from(back.data as ArrayLike<number>)).toEqual(Array.from(h.data as ArrayLike<number>));
        dt.dispose();
        expect(dt.disposed).toBe(true);
        dt.dispose(); // idempotent
        expect(() => dt.toHost()).toThrow(TypeError);
      }
      const z = rk.cuda.zeros([2, 2], 'i32', { device: d.id });
      expect(Array.from(z.toHost().data)).toEqual([0, 0, 0, 0]);
    }
  });

  it('toHostAsync and DeviceScalar.itemAsync read off the JavaScript thread', async () => {
    for (const d of devices) {
      const h = t(Float32Array.from([1, 2, 3]), [3]);
      const dt = rk.cuda.upload(h, { device: d.id });
      expect(Array.from((await dt.toHostAsync()).data)).toEqual([1, 2, 3]);
      const loss = rk.preferenceLoss(
        { policyChosen: dt, policyRejected: rk.cuda.upload(t(Float32Array.from([0, 0, 0]), [3]), { device: d.id }), refChosen: dt, refRejected: dt },
        { type: 'dpo', beta: 0.5 });
      expect(loss.loss).toBeInstanceOf(rk.DeviceScalar);
      const want = rk.preferenceLoss({ policyChosen: h, policyRejected: t(new Float32Array(3), [3]), refChosen: h, refRejected: h }, { type: 'dpo', beta: 0.5 }).loss;
      expect(await loss.loss.itemAsync()).toBeCloseTo(want, 6);
      expect(loss.loss.item()).toBeCloseTo(want, 6);
      expect(loss.loss.shape).toEqual([]);
    }
  });

  for (const d of devices) {
    it(`[${d.id}] every op on device inputs equals the cpu backend (device outputs, device scalars)`, () => {
      for (const c of opCases(11)) {
        const host = c.op(c.inputs, { ...c.options, backend: 'cpu' });
        const dIn = onDevice(c, d.id);
        const dev = c.op(dIn, c.options);
        expectDeviceShaped(host, dev, d.num, c.name);
        expectSameValues(hostValues(dev), hostValues(host), `${c.name} [device ${d.id}]`, d.tol);
        // backend 'cuda' / 'auto' explicitly: the same
        const again = c.op(dIn, { ...c.options, backend: 'auto' });
        expectSameValues(hostValues(again), hostValues(host), `${c.name} [auto]`, d.tol);
      }
    });

    it(`[${d.id}] .async on device inputs equals the synchronous device call (queued now, awaited on a worker)`, async () => {
      const prev = rk.setAsyncInlineBytes(0);
      try {
        for (const c of opCases(13)) {
          const dIn = onDevice(c, d.id);
          const want = hostValues(c.op(dIn, c.options));
          const p = c.op.async(dIn, c.options);
          expect(p).toBeInstanceOf(Promise);
          expectSameValues(hostValues(await p), want, `${c.name} .async [device ${d.id}]`, d.tol);
        }
      } finally {
        rk.setAsyncInlineBytes(prev);
      }
    });

    it(`[${d.id}] options.out device tensors are written in place`, () => {
      const r = rng(3);
      const B = 4, T = 9;
      const logp = rk.cuda.upload(t(r.f32(B * T), [B, T]), { device: d.id });
      const refLogp = rk.cuda.upload(t(r.f32(B * T), [B, T]), { device: d.id });
      const out = rk.cuda.empty([B, T], 'f32', { device: d.id });
      const res = rk.klPenalty({ logp, refLogp }, { estimator: 'k2', out: { kl: out } });
      expect(res.kl).toBe(out);
      const want = rk.klPenalty({ logp: logp.toHost(), refLogp: refLogp.toHost() }, { estimator: 'k2' }).kl.data;
      expectSameValues({ kl: Array.from(out.toHost().data) }, { kl: Array.from(want) }, 'out', d.tol);
      // packSequences (host bookkeeping) writes the uploaded results into out device tensors too
      const lengths = rk.cuda.upload(t(Int32Array.from([3, 1, 4]), [3]), { device: d.id });
      const packOf = rk.cuda.empty([3], 'i32', { device: d.id });
      const p = rk.packSequences({ lengths }, { capacity: 4, out: { packOf } });
      expect(p.packOf).toBe(packOf);
      expect(Array.from(packOf.toHost().data)).toEqual(Array.from(rk.packSequences({ lengths: lengths.toHost() }, { capacity: 4 }).packOf.data));
    });

    it(`[${d.id}] bad values in device inputs raise the host errors (checked on read-back copies)`, () => {
      const make = (up: (x: rk.Tensor) => any) => {
      const r = rng(9);
      const N = 4, V = 6;
      const logits = t(r.f32(N * V), [N, V]);
      const badLabels = t(Int32Array.from([0, 6, 1, 2]), [N]);
      const cases: [string, () => unknown][] = [
        ['logprobs labels', () => rk.logprobs({ logits: up(logits), labels: up(badLabels) })],
        ['vocabKl labels', () => rk.vocabKl({ logits: up(logits), refLogits: up(logits), labels: up(badLabels) })],
        ['fused labels', () => rk.fusedPreferenceLoss({ logits: up(t(r.f32(2 * 2 * V), [2, 2, V])), labels: up(t(Int32Array.from([0, 1, 9, 2]), [2, 2])), refLogp: up(t(r.f32(2), [2])) }, { type: 'dpo', beta: 0.1 })],
        ['speculativeVerify tokens', () => rk.speculativeVerify({ draftTokens: up(t(Int32Array.from([7]), [1, 1])), draftProbs: up(t(new Float32Array(V).fill(1 / V), [1, 1, V])), targetProbs: up(t(new Float32Array(2 * V).fill(1 / V), [1, 2, V])), uniforms: up(t(Float32Array.from([0.5, 0.5]), [1, 2])) })],
        ['speculativeVerify uniforms', () => rk.speculativeVerify({ draftTokens: up(t(Int32Array.from([1]), [1, 1])), draftProbs: up(t(new Float32Array(V).fill(1 / V), [1, 1, V])), targetProbs: up(t(new Float32Array(2 * V).fill(1 / V), [1, 2, V])), uniforms: up(t(Float32Array.from([0.5, 1]), [1, 2])) })],
        ['rejectionSample rewards (kernel status)', () => rk.rejectionSample({ rewards: up(t(Float32Array.from([0, NaN]), [1, 2])), uniforms: up(t(new Float32Array(4), [1, 2, 2])) }, { beta: 1, numSamples: 1 })],
        ['specDecStop probs (kernel status)', () => rk.specDecStop({ acceptProbs: up(t(Float32Array.from([0.9, 1.5, 0.9]), [1, 3])) }, { minLength: 3, maxLength: 3 })],
        ['preferenceProb', () => rk.preferenceLoss({ policyChosen: up(t(r.f32(2), [2])), policyRejected: up(t(r.f32(2), [2])), refChosen: up(t(r.f32(2), [2])), refRejected: up(t(r.f32(2), [2])), preferenceProb: up(t(Float32Array.from([0.5, 1.5]), [2])) }, { type: 'dno', beta: 0.1 })],
        ['ipo lengths', () => rk.preferenceLoss({ policyChosen: up(t(r.f32(2), [2])), policyRejected: up(t(r.f32(2), [2])), refChosen: up(t(r.f32(2), [2])), refRejected: up(t(r.f32(2), [2])), chosenLength: up(t(Int32Array.from([3, 0]), [2])), rejectedLength: up(t(Int32Array.from([3, 1]), [2])) }, { type: 'ipo', beta: 0.1, lengthNormalize: true })],
        ['orpo sign', () => rk.preferenceLoss({ policyChosen: up(t(Float32Array.from([-1, 0.5]), [2])), policyRejected: up(t(Float32Array.from([-1, -2]), [2])), chosenNll: up(t(r.f32(2), [2])) }, { type: 'orpo', beta: 0.1 })],
        ['whiten count', () => rk.whiten({ x: up(t(Float32Array.from([1, 2, 3]), [3])), mask: up(t(Uint8Array.from([0, 1, 0]), [3])) })],
        ['unpack layout', () => rk.unpack({ packed: up(t(new Float32Array(2 * 4), [1, 4, 2])), packOf: up(t(Int32Array.from([0]), [1])), offsetOf: up(t(Int32Array.from([2]), [1])), lengths: up(t(Int32Array.from([3]), [1])) })],
        ['prepack capacity', () => rk.prepack({ tokens: up(t(Int32Array.from([1, 2, 3]), [3])), lengths: up(t(Int32Array.from([3]), [1])) }, { capacity: 2 })],
        ['prepack token count', () => rk.prepack({ tokens: up(t(Int32Array.from([1, 2, 3]), [3])), lengths: up(t(Int32Array.from([2]), [1])) }, { capacity: 4 })],
      ];
      return cases;
      };
      const onHost = make((x) => x), onDev = make((x) => rk.cuda.upload(x, { device: d.id }));
      for (let i = 0; i < onHost.length; i++) {
        const [what, hostFn] = onHost[i], devFn = onDev[i][1];
        let hostErr: unknown = null, devErr: unknown = null;
        try { hostFn(); } catch (e) { hostErr = e; }
        try { devFn(); } catch (e) { devErr = e; }
        expect(hostErr, `${what} (host)`).toBeInstanceOf(RangeError);
        expect(devErr, `${what} (device)`).toBeInstanceOf(RangeError);
        expect((devErr as Error).message, what).toBe((hostErr as Error).message);
      }
    });

    it(`[${d.id}] validation reads back only the small index arrays, never the logits`, () => {
      const r = rng(2);
      const N = 64, V = 1000;
      const logits = rk.cuda.upload(t(r.f32(N * V), [N, V]), { device: d.id });
      const labels = rk.cuda.upload(t(Int32Array.from({ length: N }, () => r.int(0, V - 1)), [N]), { device: d.id });
      const before = rk.cuda.memoryStats({ device: d.id });
      const res = rk.logprobs({ logits, labels });
      const after = rk.cuda.memoryStats({ device: d.id });
      const read = after.deviceToHost - before.deviceToHost;
      expect(read).toBeGreaterThanOrEqual(N * 4); // the labels, read back for the range check
      expect(read).toBeLessThanOrEqual(2 * N * 4); // (and once more by the native defensive check on CUDA)
      expect(after.hostToDevice - before.hostToDevice).toBe(0);
      expect(res.logp).toBeInstanceOf(rk.DeviceTensor);
    });
  }

  it('mixing host and device tensors, disposed tensors and wrong backends are TypeErrors', () => {
    const d = devices[0];
    const r = rng(4);
    const a = t(r.f32(6), [2, 3]);
    const da = rk.cuda.upload(a, { device: d.id });
    expect(() => rk.klPenalty({ logp: da, refLogp: a } as never)).toThrow(/mixing host and device/);
    expect(() => rk.klPenalty({ logp: a, refLogp: da } as never)).toThrow(TypeError);
    expect(() => rk.klPenalty({ logp: da, refLogp: da }, { out: { kl: t(new Float32Array(6), [2, 3]) } })).toThrow(/out.kl is a host tensor/);
    expect(() => rk.klPenalty({ logp: a, refLogp: a }, { out: { kl: rk.cuda.empty([2, 3], 'f32', { device: d.id }) } })).toThrow(TypeError);
    expect(() => rk.klPenalty({ logp: da, refLogp: da }, { out: { kl: rk.cuda.empty([3, 2], 'f32', { device: d.id }) } })).toThrow(RangeError);
    expect(() => rk.klPenalty({ logp: da, refLogp: da }, { out: { kl: rk.cuda.empty([2, 3], 'i32', { device: d.id }) } })).toThrow(TypeError);
    for (const backend of ['cpu', 'js'] as const) expect(() => rk.klPenalty({ logp: da, refLogp: da }, { backend })).toThrow(/must be 'auto' or 'cuda'/);
    const gone = rk.cuda.upload(a, { device: d.id });
    gone.dispose();
    expect(() => rk.klPenalty({ logp: da, refLogp: gone })).toThrow(/disposed/);
    expect(() => rk.cuda.upload(da as never)).toThrow(TypeError);
    // the native layer refuses the same things on its own
    const n = rk as unknown as Record<string, unknown>;
    void n;
  });

  it('the native entry points refuse device buffers of the wrong dtype, length or kind, never crash', async () => {
    const { native: nat } = await import('../ts/native.js');
    const n = nat as unknown as Record<string, (...a: unknown[]) => unknown>;
    const d = devices[0];
    const f32b = rk.cuda.upload(t(new Float32Array(6), [6]), { device: d.id }).buffer;
    const i32b = rk.cuda.upload(t(new Int32Array(6), [6]), { device: d.id }).buffer;
    const host = new Float32Array(6);
    // klPenalty(B, T, logp, refLogp, mask, out, estimator, clamp, useCuda)
    expect(() => n.klPenalty(2, 3, f32b, f32b, null, f32b, 0, NaN, false)).toThrow(TypeError); // useCuda false
    expect(() => n.klPenalty(2, 3, f32b, i32b, null, f32b, 0, NaN, true)).toThrow(/dtype f32/);
    expect(() => n.klPenalty(3, 3, f32b, f32b, null, f32b, 0, NaN, true)).toThrow(RangeError);
    expect(() => n.klPenalty(2, 3, f32b, host, null, f32b, 0, NaN, true)).toThrow(/mixing/);
    expect(() => n.klPenalty(2, 3, host, f32b, null, host, 0, NaN, true)).toThrow(/mixing/);
    expect(() => n.packSequences(6, i32b, 4, 0, i32b, i32b, i32b)).toThrow(/host arrays only/);
    expect(() => n.devRead({}, host)).toThrow(TypeError);
    expect(() => n.devAlloc(-7, 0, 4)).toThrow();
    expect(() => n.devAlloc(d.num, 99, 4)).toThrow(RangeError);
    const gone = rk.cuda.upload(t(new Float32Array(6), [6]), { device: d.id });
    gone.dispose();
    expect(() => n.klPenalty(2, 3, gone.buffer, f32b, null, f32b, 0, NaN, true)).toThrow(/disposed/);
    for (let i = 0; i < 200; i++) {
      const junk = [f32b, i32b, host, null, {}, 3, 'x', gone.buffer][i % 8];
      try { n.gae(2, 3, junk, f32b, junk, null, f32b, junk, 0.9, 0.9, true); } catch (e) { expect(e).toBeInstanceOf(Error); }
      try { n.gaeAsync(2, 3, f32b, junk, null, junk, f32b, f32b, 0.9, 0.9, true); } catch (e) { expect(e).toBeInstanceOf(Error); }
    }
  });

  it('without a CUDA device, every CUDA device API throws a clear Error and nothing crashes', () => {
    if (cudaOk) return;
    const a = t(new Float32Array(4), [4]);
    expect(() => rk.cuda.upload(a)).toThrow(/cuda unavailable/);
    expect(() => rk.cuda.upload(a, { device: 0 })).toThrow(Error);
    expect(() => rk.cuda.empty([4], 'f32')).toThrow(/cuda unavailable/);
    expect(() => rk.cuda.createStream()).toThrow(/cuda unavailable/);
    expect(() => rk.cuda.synchronize()).toThrow(/cuda unavailable/);
    expect(() => rk.cuda.memoryStats()).toThrow(/cuda unavailable/);
    expect(() => rk.cuda.setDevice(0)).toThrow(/cuda unavailable/);
    expect(() => rk.cuda.createStream({ device: -1 })).toThrow(TypeError); // the emulated device has no streams
  });

  it.skipIf(!cudaOk)('streams: ops on a user stream, inputs written on another stream are waited for', () => {
    const r = rng(8);
    const s1 = rk.cuda.createStream(), s2 = rk.cuda.createStream();
    const B = 64, T = 4096;
    const x = t(r.f32(B * T), [B, T]), y = t(r.f32(B * T), [B, T]);
    for (let rep = 0; rep < 5; rep++) {
      const dx = rk.cuda.upload(x), dy = rk.cuda.upload(y);
      const kl = rk.klPenalty({ logp: dx, refLogp: dy }, { estimator: 'k3', stream: s1 }).kl; // written on s1
      const rw = rk.implicitRewards({ logp: kl, refLogp: dy, mask: rk.cuda.upload(t(new Uint8Array(B * T).fill(1), [B, T])) }, { beta: 2, stream: s2 }).rewards;
      const want = rk.implicitRewards({ logp: rk.klPenalty({ logp: x, refLogp: y }, { estimator: 'k3' }).kl, refLogp: y, mask: t(new Uint8Array(B * T).fill(1), [B, T]) }, { beta: 2 }).rewards;
      expectSameValues({ r: Array.from(rw.toHost().data) }, { r: Array.from(want.data) }, 'two streams', 2e-5);
      for (const z of [dx, dy, kl, rw]) z.dispose();
    }
    s1.synchronize();
    s1.destroy();
    s2.destroy();
    expect(() => rk.klPenalty({ logp: rk.cuda.upload(x), refLogp: rk.cuda.upload(y) }, { stream: s1 })).toThrow(TypeError);
  });

  it.skipIf(!cudaOk)("backend 'cuda' on host tensors (copied per call), sync and .async, equals the cpu backend", async () => {
    for (const c of opCases(17)) {
      const want = hostValues(c.op(c.inputs, { ...c.options, backend: 'cpu' }));
      expectSameValues(hostValues(c.op(c.inputs, { ...c.options, backend: 'cuda' })), want, `${c.name} [cuda host]`, 2e-5);
      expectSameValues(hostValues(await c.op.async(c.inputs, { ...c.options, backend: 'cuda' })), want, `${c.name} [cuda host .async]`, 2e-5);
    }
  });

  it.skipIf(!cudaOk)('the memory pool: repeated calls reserve no new device memory', () => {
    const r = rng(1);
    const B = 32, T = 2048;
    const x = rk.cuda.upload(t(r.f32(B * T), [B, T])), m = rk.cuda.upload(t(r.mask(B, T), [B, T]));
    const run = () => {
      const res = rk.ppoPolicyLoss({ logp: x, oldLogp: x, advantages: x, mask: m });
      res.loss.item();
      res.gradLogp.dispose();
      res.loss.dispose();
    };
    for (let i = 0; i < 3; i++) run();
    const before = rk.cuda.memoryStats();
    for (let i = 0; i < 50; i++) run();
    const after = rk.cuda.memoryStats();
    expect(after.reserved).toBe(before.reserved);
    expect(after.reservedHigh).toBe(before.reservedHigh);
  });

  it('a device tensor used by an in-flight async call survives dispose() (freed after the call)', async () => {
    const d = devices[0];
    const r = rng(6);
    const B = 64, T = 2048;
    const prev = rk.setAsyncInlineBytes(0);
    try {
      const x = rk.cuda.upload(t(r.f32(B * T), [B, T]), { device: d.id });
      const y = rk.cuda.upload(t(r.f32(B * T), [B, T]), { device: d.id });
      const want = rk.klPenalty({ logp: x.toHost(), refLogp: y.toHost() }, { estimator: 'k3' }).kl;
      const p = rk.klPenalty.async({ logp: x, refLogp: y }, { estimator: 'k3' });
      x.dispose();
      y.dispose();
      const res = await p;
      expectSameValues({ kl: Array.from(res.kl.toHost().data) }, { kl: Array.from(want.data) }, 'after dispose', d.tol);
    } finally {
      rk.setAsyncInlineBytes(prev);
    }
  });
});
