/**
 * The N-API layer's own checks, bypassing the TypeScript validation (tests/fuzz/native.ts): every
 * native entry point, called with argument lists recorded from valid op calls and broken one
 * argument at a time, returns or throws TypeError / RangeError (Error only for `useCuda` without
 * CUDA), and writes no typed array outside its elements. A third of the calls go to the
 * `<fn>Async` variant (forced off the JS thread: setAsyncInline(0)), which must settle the same
 * way. RLHF_KERNELS_FUZZ_RUNS scales it.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { native } from '../ts/native.js';
import { OPS, rng } from './fuzz/cases.js';
import { checkNative, checkNativeAsync, CORE_CALLS, NATIVE_MUTATOR_NAMES, NATIVE_MUTATORS, recordNative } from './fuzz/native.js';

const RUNS = 2 * Number(process.env.RLHF_KERNELS_FUZZ_RUNS ?? 100);
const SEED = Number(process.env.RLHF_KERNELS_FUZZ_SEED ?? 20261204);
const tally = new Map<string, Record<string, number>>();

describe.skipIf(!native)(`fuzz: the N-API layer directly (${rk.addonPath}; ${RUNS} recorded calls per op, each mutated)`, () => {
  const simd = rk.backends().simdDetected as 'avx512' | 'avx2' | 'scalar';
  const threads = rk.backends().threads;
  const nat = native as unknown as { setAsyncInline?: (b: number) => number };
  let inline = -1;
  beforeAll(() => {
    if (nat.setAsyncInline) inline = nat.setAsyncInline(0); // every Async call on a libuv worker
  });
  afterAll(() => {
    if (inline >= 0) nat.setAsyncInline!(inline);
    rk.setSimd(simd);
    rk.setThreads(threads);
    const rows = [...tally].map(([fn, t]) => `${fn.padEnd(20)} ${Object.entries(t).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    console.log(`fuzz-native: outcomes per entry point\n${rows.join('\n')}`);
  });

  for (const spec of OPS) {
    it(spec.name, async () => {
      let calls = 0;
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 0, max: 2 }), fc.constantFrom(...NATIVE_MUTATOR_NAMES),
          async (seed, size, mut) => {
            const r = rng(seed);
            const c = spec.gen(r, size);
            for (const rec of recordNative(spec, c.inputs, c.options)) {
              const m = NATIVE_MUTATORS[mut](rec.args, r);
              if (!m) continue;
              const hasAsync = typeof (native as unknown as Record<string, unknown>)[`${rec.fn}Async`] === 'function';
              const v = hasAsync && r.bool(0.33) ? await checkNativeAsync(rec.fn, m) : checkNative(rec.fn, m);
              const t = tally.get(rec.fn) ?? {};
              t[v.cls] = (t[v.cls] ?? 0) + 1;
              tally.set(rec.fn, t);
              calls++;
              if (v.fail) throw new Error(v.fail);
            }
          }),
        { numRuns: RUNS, seed: SEED + spec.name.length },
      );
      expect(calls, `${spec.name}: native calls made`).toBeGreaterThan(RUNS / 4);
    });
  }

  it('the core entry points (info, setSimd, setThreads, coreMath, coreLogprobsRow)', () => {
    for (const rec of CORE_CALLS) {
      if (typeof (native as unknown as Record<string, unknown>)[rec.fn] !== 'function') continue;
      for (let s = 0; s < RUNS; s++)
        for (const mut of NATIVE_MUTATOR_NAMES) {
          const m = NATIVE_MUTATORS[mut](rec.args, rng(s * 131 + mut.length));
          if (!m) continue;
          m.expect = 'any'; // (their arrays may have any length)
          const v = checkNative(rec.fn, m);
          expect(v.fail).toBeNull();
        }
    }
  });

  it('every native entry point with no arguments, or only garbage: TypeError or RangeError', () => {
    const nat = native as unknown as Record<string, (...a: unknown[]) => unknown>;
    for (const [fn, f] of Object.entries(nat)) {
      if (typeof f !== 'function' || fn === 'info' || fn === 'copyBandwidth') continue; // (copyBandwidth allocates what it is asked)
      for (const args of [[], [undefined], [null, null, null], ['a', {}, []], Array(40).fill(1), Array(40).fill(new Float32Array(1))]) {
        try {
          f(...args);
        } catch (e) {
          expect(e instanceof TypeError || e instanceof RangeError || /cuda/i.test((e as Error).message), `${fn}(${args.length} args): ${e}`).toBe(true);
        }
      }
    }
  });
});
