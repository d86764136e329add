/**
 * Process-level CUDA failures (SPEC §0 "Errors"): asking for backend 'cuda' where the addon was
 * built without CUDA, or where the runtime finds no device, throws an Error that says why — for
 * every op — and the cpu backend keeps working. On a machine with a device, a CUDA call that fails
 * (a device allocation far beyond the device's memory) is an Error too, and both the device and
 * the cpu backend keep giving correct results afterwards.
 */
import { describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { native } from '../ts/native.js';
import { OPS, rng } from './fuzz/cases.js';
import { call, compare, outcomeClass, roundedForJs } from './fuzz/harness.js';
import { recordNative } from './fuzz/native.js';

const b = rk.backends();
const cpuEqualsJs = (spec: (typeof OPS)[number], c: ReturnType<(typeof OPS)[number]['gen']>) => {
  const got = call(spec, c, 'cpu'), want = call(spec, roundedForJs(c), 'js');
  expect(outcomeClass(got), spec.name).toBe(outcomeClass(want));
  if (got.ok && want.ok) expect(compare(got.result, want.result, spec.tol ?? 1e-4), spec.name).toBeNull();
};

describe(`process-level CUDA errors (${rk.addonPath}; cuda compiled: ${b.cuda.compiled}, available: ${b.cuda.available})`, () => {
  it.skipIf(!b.cpu || b.cuda.available)("backend 'cuda' with no CUDA build or no device: an Error saying why, for every op; cpu keeps working", () => {
    for (const spec of OPS) {
      const c = spec.gen(rng(5), 1);
      const o = call(spec, c, 'cuda');
      expect(o.ok, spec.name).toBe(false);
      const e = o.ok ? null : (o.error as Error);
      expect(e?.constructor, `${spec.name}: a plain Error, not a TypeError/RangeError`).toBe(Error);
      expect(e?.message).toMatch(new RegExp(`^${spec.name}: backend 'cuda' unavailable: `));
      expect(e?.message).toMatch(b.cuda.compiled ? /no CUDA device \(.+\)/ : /built without CUDA \(run npm run build:cuda\)/);
      cpuEqualsJs(spec, c);
    }
    expect(b.cuda.reason, 'backends() says why too').toBeTruthy();
  });

  it.skipIf(!native || b.cuda.available)('the native entry points asked for CUDA (useCuda = true) throw an Error naming CUDA, never crash', () => {
    for (const spec of OPS) {
      const c = spec.gen(rng(9), 1);
      for (const rec of recordNative(spec, c.inputs, c.options)) {
        if (rec.fn === 'packSequences' || rec.fn === 'prepackFill') continue; // (host bookkeeping: no useCuda flag)
        const i = rec.args.lastIndexOf(false); // the trailing useCuda flag (booleans before it are options)
        expect(i, rec.fn).toBeGreaterThan(0);
        const args = [...rec.args];
        args[i] = true;
        let err: unknown = null;
        try {
          (native as unknown as Record<string, (...a: unknown[]) => unknown>)[rec.fn](...args);
        } catch (e) {
          err = e;
        }
        expect(err, `${rec.fn} with useCuda`).toBeInstanceOf(Error);
        expect((err as Error).constructor).toBe(Error);
        expect((err as Error).message).toMatch(/cuda/i);
      }
      cpuEqualsJs(spec, c);
    }
  });

  it.skipIf(!b.cuda.available)('a failing device call (4 TiB of workspace) is an Error; then the device and the cpu still give correct results', () => {
    const spec = OPS.find((o) => o.name === 'ppoPolicyLoss')!;
    const c = spec.gen(rng(21), 2);
    const before = call(spec, c, 'cuda');
    const e = new Float32Array(0);
    let err: unknown = null;
    try {
      // B = 2^40 rows of nothing: the CUDA launcher's per-row workspace (4 bytes a row) cannot be allocated
      (native as unknown as Record<string, (...a: unknown[]) => unknown>).ppoPolicyLoss(2 ** 40, 0, e, e, e, null, null, e,
        0.2, 0.2, NaN, 0, -1, 0, NaN, true, new Float64Array(3));
    } catch (x) {
      err = x;
    }
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/cuda.*(memory|alloc)/i);
    const after = call(spec, c, 'cuda');
    expect(before.ok && after.ok && compare(after.result, before.result, 0)).toBeNull();
    for (const s of OPS) {
      const x = s.gen(rng(22), 1);
      const got = call(s, x, 'cuda'), want = call(s, roundedForJs(x), 'js');
      expect(outcomeClass(got), `${s.name} on cuda after the failure`).toBe(outcomeClass(want));
      if (got.ok && want.ok) expect(compare(got.result, want.result, 1e-3), s.name).toBeNull();
      cpuEqualsJs(s, x);
    }
  });
});
