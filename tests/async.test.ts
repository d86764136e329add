/**
 * Asynchronous calls (SPEC §0 "Asynchronous calls"): `op.async(inputs, options)` equals the
 * synchronous op for every op, runs off the JavaScript thread (a timer keeps firing during a
 * large CPU op), rejects instead of throwing, and stays memory-safe when JavaScript detaches,
 * transfers or resizes the buffers of a call in flight (docs/device.md: user ArrayBuffers are
 * snapshotted; SharedArrayBuffers and addon-owned hostTensor memory are used in place, the latter
 * kept alive by a reference count).
 */
import { MessageChannel } from 'node:worker_threads';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { addonPath } from '../ts/native.js';
import { rng } from './helpers.js';
import { expectSameValues, hostValues, onDevice, opCases } from './op-cases.js';

const native = rk.backends().cpu;
const t = rk.tensor;
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Forces every .async call to a worker thread (no inline path) while fn runs. */
async function offloaded<T>(fn: () => Promise<T>): Promise<T> {
  const prev = rk.setAsyncInlineBytes(0);
  try {
    return await fn();
  } finally {
    rk.setAsyncInlineBytes(prev);
  }
}

const big = (n: number, f: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => f(i));

describe.skipIf(!native)(`op.async (${addonPath})`, () => {
  afterEach(() => rk.setAsyncInlineBytes(256 * 1024));

  it('every op: .async equals the synchronous call (inline, on a worker, and on the emulated device)', async () => {
    for (const c of opCases(21, 2)) {
      const want = hostValues(c.op(c.inputs, c.options));
      const inline = c.op.async(c.inputs, c.options);
      expect(inline).toBeInstanceOf(Promise);
      expectSameValues(hostValues(await inline), want, `${c.name} (inline)`);
      expectSameValues(hostValues(await offloaded(() => c.op.async(c.inputs, c.options))), want, `${c.name} (worker)`);
      const dev = onDevice(c, 'emulated');
      expectSameValues(hostValues(await offloaded(() => c.op.async(dev, c.options))), want, `${c.name} (emulated device, worker)`);
    }
  });

  it('bad inputs reject the Promise (TypeError / RangeError), never throw synchronously', async () => {
    const calls: [string, () => Promise<unknown>, ErrorConstructor][] = [
      ['no inputs', () => (rk.gae.async as any)(undefined, { gamma: 1, lambda: 1 }), TypeError],
      ['wrong dtype', () => rk.klPenalty.async({ logp: t(new Int32Array(2), [1, 2]) as never, refLogp: t(new Float32Array(2), [1, 2]) }), TypeError],
      ['bad option', () => rk.gae.async({ rewards: t(new Float32Array(2), [1, 2]), values: t(new Float32Array(2), [1, 2]), mask: t(new Uint8Array(2), [1, 2]) }, { gamma: 2, lambda: 1 }), RangeError],
      ['label range', () => rk.logprobs.async({ logits: t(new Float32Array(4), [2, 2]), labels: t(Int32Array.from([0, 5]), [2]) }), RangeError],
      ['whiten count (after the kernel)', () => offloaded(() => rk.whiten.async({ x: t(new Float32Array(3), [3]), mask: t(Uint8Array.from([1, 0, 0]), [3]) })), RangeError],
      ['sampling status (after the kernel)', () => offloaded(() => rk.rejectionSample.async({ rewards: t(Float32Array.from([0, NaN]), [1, 2]), uniforms: t(new Float32Array(4), [1, 2, 2]) }, { beta: 1, numSamples: 1 })), RangeError],
    ];
    for (const [what, call, E] of calls) {
      let p: Promise<unknown> | undefined;
      expect(() => { p = call(); }, what).not.toThrow();
      await expect(p, what).rejects.toBeInstanceOf(E);
    }
  });

  it('a timer keeps firing while a large CPU op runs asynchronously (and not while it runs synchronously)', async () => {
    const N = 2048, V = 32000;
    // addon-owned memory: the worker reads and writes it in place (no snapshot on the JS thread)
    const logits = rk.hostTensor([N, V], 'f32'), refLogits = rk.hostTensor([N, V], 'f32'), out = rk.hostTensor([N, V], 'f32');
    const rows = [3, 4, 5, 6, 7, 8, 9, 10].map((k) => Float32Array.from({ length: V }, (_, j) => ((j * k) % 97) * 0.01));
    for (let i = 0; i < N; i++) {
      logits.data.set(rows[i % 5], i * V);
      refLogits.data.set(rows[5 + (i % 3)], i * V);
    }
    const gradKl = t(new Float32Array(N).fill(1), [N]);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 2);
    try {
      const t0 = performance.now();
      rk.vocabKlBackward({ logits, refLogits, gradKl }, { out: { gradLogits: out } });
      const syncMs = performance.now() - t0;
      expect(ticks, 'no tick can fire during a synchronous call').toBe(0);
      const want = Float32Array.from(out.data.subarray(0, 4 * V));
      out.data.fill(NaN);
      const t1 = performance.now();
      const p = rk.vocabKlBackward.async({ logits, refLogits, gradKl }, { out: { gradLogits: out } });
      const callMs = performance.now() - t1;
      await p;
      const asyncMs = performance.now() - t1;
      expect(callMs, 'the .async call itself returns at once').toBeLessThan(syncMs / 4);
      // a 2 ms interval: at least a quarter of the ticks the call's duration allows (and 3)
      expect(ticks, `ticks during ${asyncMs.toFixed(0)} ms (sync: ${syncMs.toFixed(0)} ms)`).toBeGreaterThanOrEqual(Math.max(3, Math.floor(asyncMs / 8)));
      expectSameValues({ g: Array.from(out.data.subarray(0, 4 * V)) }, { g: Array.from(want) }, 'vocabKlBackward.async');
    } finally {
      clearInterval(timer);
    }
  });

  it('detaching (transfer) or resizing an input during the call is harmless: the call works on a snapshot', async () => {
    const n = 1 << 18;
    const B = 64, T = n / 64;
    const mk = () => ({ logp: big(n, (i) => Math.sin(i) * 0.1), refLogp: big(n, (i) => Math.cos(i) * 0.1) });
    const { logp, refLogp } = mk();
    const want = rk.klPenalty({ logp: t(logp, [B, T]), refLogp: t(refLogp, [B, T]) }, { estimator: 'k3' }).kl.data;
    // transfer (detach) the inputs' buffers while the call is in flight
    const a = mk();
    const p1 = offloaded(() => rk.klPenalty.async({ logp: t(a.logp, [B, T]), refLogp: t(a.refLogp, [B, T]) }, { estimator: 'k3' }));
    const moved = structuredClone(a.logp.buffer, { transfer: [a.logp.buffer] });
    expect(a.logp.byteLength).toBe(0); // detached
    new Float32Array(moved).fill(NaN); // and scribbled over: the call does not see it
    expect(Array.from((await p1).kl.data)).toEqual(Array.from(want));
    // a resizable buffer shrunk to nothing while the call is in flight
    const rab = new (ArrayBuffer as any)(n * 4, { maxByteLength: n * 8 }) as ArrayBuffer & { resize(n: number): void };
    const view = new Float32Array(rab);
    view.set(logp);
    const p2 = offloaded(() => rk.klPenalty.async({ logp: t(view, [B, T]), refLogp: t(refLogp, [B, T]) }, { estimator: 'k3' }));
    rab.resize(0);
    expect(view.length).toBe(0);
    expect(Array.from((await p2).kl.data)).toEqual(Array.from(want));
  });

  it('an output buffer detached during the call rejects the Promise (the result is dropped), never a crash', async () => {
    const n = 1 << 18, B = 64, T = n / 64;
    const x = t(big(n, (i) => i * 1e-6), [B, T]);
    const out = t(new Float32Array(n), [B, T]);
    const p = offloaded(() => rk.klPenalty.async({ logp: x, refLogp: x }, { out: { kl: out } }));
    structuredClone(out.data.buffer, { transfer: [out.data.buffer as ArrayBuffer] });
    await expect(p).rejects.toThrow(/detached during the asynchronous call/);
    // a resizable output shrunk during the call: rejected too
    const rab = new (ArrayBuffer as any)(n * 4, { maxByteLength: n * 4 }) as ArrayBuffer & { resize(n: number): void };
    const o2 = t(new Float32Array(rab), [B, T]);
    const p2 = offloaded(() => rk.klPenalty.async({ logp: x, refLogp: x }, { out: { kl: o2 } }));
    rab.resize(4);
    await expect(p2).rejects.toThrow(/resized during the asynchronous call/);
    // an out buffer left alone gets the result
    const o3 = t(new Float32Array(n).fill(NaN), [B, T]);
    await offloaded(() => rk.klPenalty.async({ logp: x, refLogp: x }, { out: { kl: o3 } }));
    expect(o3.data.every((v) => v === 0)).toBe(true);
  });

  it('hostTensor memory is used in place and outlives a detach + GC of its ArrayBuffer during the call', async () => {
    const N = 256, V = 16000;
    const fill = (x: rk.Tensor<'f32'>, k: number) => { for (let i = 0; i < N * V; i++) x.data[i] = ((i * k) % 101) * 0.02; };
    const want = (() => {
      const a = t(new Float32Array(N * V), [N, V], 'f32'), b = t(new Float32Array(N * V), [N, V], 'f32');
      fill(a, 3);
      fill(b, 7);
      return rk.vocabKl({ logits: a, refLogits: b }).kl.data;
    })();
    for (let rep = 0; rep < 3; rep++) {
      const logits = rk.hostTensor([N, V], 'f32'), refLogits = rk.hostTensor([N, V], 'f32');
      fill(logits, 3);
      fill(refLogits, 7);
      const p = offloaded(() => rk.vocabKl.async({ logits, refLogits }));
      // postMessage / structuredClone leave addon-owned buffers attached (Node copies external
      // buffers); a BYOB stream read does detach one: move the memory into the stream's buffer,
      // drop every JS reference to it, and collect garbage while the call runs
      const { port1, port2 } = new MessageChannel();
      port1.postMessage(logits.data.buffer, [logits.data.buffer as ArrayBuffer]);
      port1.close();
      port2.close();
      expect(logits.data.length).toBe(N * V);
      const rs = new ReadableStream({ type: 'bytes', pull(c) { c.byobRequest!.respond(1); } });
      await rs.getReader({ mode: 'byob' }).read(new Uint8Array(logits.data.buffer));
      expect(logits.data.length).toBe(0);
      for (let i = 0; i < 3; i++) gc();
      expectSameValues({ kl: Array.from((await p).kl.data) }, { kl: Array.from(want) }, 'vocabKl on detached hostTensor');
    }
  });

  it('SharedArrayBuffer inputs are read in place', async () => {
    const n = 1 << 16, B = 16, T = n / 16;
    const sab = new Float32Array(new SharedArrayBuffer(n * 4));
    for (let i = 0; i < n; i++) sab[i] = Math.cos(i) * 0.2;
    const want = rk.klPenalty({ logp: t(sab, [B, T]), refLogp: t(sab, [B, T]) }, { estimator: 'abs' }).kl.data;
    const got = await offloaded(() => rk.klPenalty.async({ logp: t(sab, [B, T]), refLogp: t(sab, [B, T]) }, { estimator: 'abs' }));
    expect(Array.from(got.kl.data)).toEqual(Array.from(want));
  });

  it('many concurrent calls (workers and the main thread sharing the CPU pool) all give the sync results', async () => {
    const cases = opCases(31, 40);
    const want = cases.map((c) => hostValues(c.op(c.inputs, c.options)));
    const N = 512, V = 4000;
    const logits = t(big(N * V, (i) => Math.sin(i)), [N, V]);
    const lpWant = rk.logprobs({ logits, labels: t(Int32Array.from({ length: N }, (_, i) => i), [N]) }).logp.data;
    await offloaded(async () => {
      const pending: Promise<void>[] = [];
      for (let rep = 0; rep < 3; rep++) {
        cases.forEach((c, i) => pending.push(c.op.async(c.inputs, c.options).then((r) => expectSameValues(hostValues(r), want[i], `${c.name} concurrent`))));
        pending.push(rk.logprobs.async({ logits, labels: t(Int32Array.from({ length: N }, (_, i) => i), [N]) }).then((r) =>
          expectSameValues({ l: Array.from(r.logp.data) }, { l: Array.from(lpWant) }, 'big logprobs')));
        // the main thread runs big parallel ops meanwhile
        const s = rk.logprobs({ logits, labels: t(Int32Array.from({ length: N }, (_, i) => i), [N]) });
        expectSameValues({ l: Array.from(s.logp.data) }, { l: Array.from(lpWant) }, 'main-thread logprobs');
      }
      await Promise.all(pending);
    });
  });

  it('works in a worker thread (its own addon instance)', async () => {
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const n = require(workerData.path);
      n.setAsyncInline(0);
      const a = new Float32Array([0.5, -0.25, 1]), b = new Float32Array([0, 0, 0]), out = new Float32Array(3);
      n.klPenaltyAsync(1, 3, a, b, null, out, 0, NaN, false).then(() => parentPort.postMessage(Array.from(out)), (e) => parentPort.postMessage(String(e)));`;
    const w = new Worker(code, { eval: true, workerData: { path: addonPath } });
    const msg = await new Promise((res) => w.once('message', res));
    await w.terminate();
    expect(msg).toEqual([0.5, -0.25, 1]);
  });

  it('the native async entry points refuse junk like the synchronous ones', () => {
    const n = require_native() as unknown as Record<string, (...a: unknown[]) => unknown>;
    const junk = [undefined, null, 1, 'x', {}, [], new Float64Array(3), new Float32Array(0), new Int32Array(3)];
    for (let i = 0; i < 300; i++) {
      const args = Array.from({ length: 11 }, (_, k) => junk[(i * 7 + k * 3) % junk.length]);
      try {
        const p = n.gaeAsync(...args);
        if (p instanceof Promise) p.catch(() => {});
      } catch (e) {
        expect(e).toBeInstanceOf(Error);
      }
    }
  });
});

import { native as nativeAddon } from '../ts/native.js';
function require_native() {
  return nativeAddon;
}
void rng;
