/**
 * Property-based tests (fast-check) of every op through the public API (SPEC §0 "Errors"): random
 * valid inputs, each broken or re-formed one way at a time (tests/fuzz/harness.ts MUTATORS), must
 * give the js reference's result (SPEC precision) or throw the documented TypeError / RangeError
 * — the same class as the js backend, with a message naming the op — and must neither write
 * outside `out` buffers (poisoned guard regions) nor into their inputs. A native crash ends the
 * run ("Worker exited unexpectedly").
 *
 * RLHF_KERNELS_FUZZ_RUNS sets the cases per op (default 100; nightly / soak: thousands) and
 * RLHF_KERNELS_FUZZ_SEED the fast-check seed (default fixed, so CI is reproducible).
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { OPS, rng } from './fuzz/cases.js';
import { forceOffload } from './fuzz/concurrent.js';
import { call, callAsync, check, compare, MUTATORS, MUTATOR_NAMES, outcomeClass, roundedForJs } from './fuzz/harness.js';
import { nativeBackends, simdLevels } from './helpers.js';

const RUNS = Number(process.env.RLHF_KERNELS_FUZZ_RUNS ?? 100);
const SEED = Number(process.env.RLHF_KERNELS_FUZZ_SEED ?? 20261204);
const backends = nativeBackends();
const levels = simdLevels();
const tally = new Map<string, Record<string, number>>();

describe.skipIf(!backends.length)(`fuzz: every op through the API (${rk.addonPath}; ${RUNS} cases per op, seed ${SEED})`, () => {
  afterAll(() => {
    if (levels.length) rk.setSimd(levels[0]);
    const rows = [...tally].map(([op, t]) => `${op.padEnd(22)} ${Object.entries(t).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    console.log(`fuzz-api: ${OPS.length} ops, outcomes per op\n${rows.join('\n')}`);
  });

  for (const backend of backends)
    for (const spec of OPS) {
      it(`${spec.name} (${backend})`, () => {
        const t: Record<string, number> = {};
        fc.assert(
          fc.property(
            fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 0, max: 2 }), fc.constantFrom(...MUTATOR_NAMES),
            (seed, size, mut) => {
              const r = rng(seed);
              const c = spec.gen(r, size);
              if (backend === 'cpu' && levels.length) rk.setSimd(r.pick(levels)); // every SIMD path sees the cases
              const v = check(spec, c, mut, r, backend);
              t[v.cls] = (t[v.cls] ?? 0) + 1;
              if (v.fail) throw new Error(v.fail);
            },
          ),
          { numRuns: RUNS, seed: SEED + spec.name.length },
        );
        tally.set(`${spec.name} (${backend})`, t);
        // not vacuous: valid calls ran and both documented error classes were produced
        expect(t.ok ?? 0, `${spec.name}: valid results`).toBeGreaterThan(0);
        expect(t.TypeError ?? 0, `${spec.name}: TypeErrors`).toBeGreaterThan(0);
        expect(t.RangeError ?? 0, `${spec.name}: RangeErrors`).toBeGreaterThan(0);
      });
    }

  // The `.async` form of every op (forced off the JS thread) settles exactly as the sync one:
  // the same error class, or bitwise the same results.
  for (const spec of OPS)
    it(`${spec.name}.async = ${spec.name} (cpu)`, async () => {
      const restore = forceOffload();
      try {
        await fc.assert(
          fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 0, max: 2 }), fc.constantFrom(...MUTATOR_NAMES),
            async (seed, size, mut) => {
              const r = rng(seed);
              const c = spec.gen(r, size);
              const m = MUTATORS[mut](spec, c, r, call(spec, roundedForJs(c), 'js'));
              if (!m) return;
              const sync = call(spec, m.c, 'cpu');
              const asy = await callAsync(spec, m.c, 'cpu');
              const where = `${spec.name} / ${m.what}`;
              if (outcomeClass(asy) !== outcomeClass(sync))
                throw new Error(`${where}: async ${outcomeClass(asy)}${asy.ok ? '' : ` (${(asy.error as Error).message})`}, sync ${outcomeClass(sync)}`);
              if (asy.ok && sync.ok) {
                const d = compare(asy.result, sync.result, 0);
                if (d) throw new Error(`${where}: ${d}`);
              }
            }),
          { numRuns: Math.ceil(RUNS / 4), seed: SEED + 7 * spec.name.length },
        );
      } finally {
        restore();
      }
    });

  // Empty tensors next to one wide dimension (above the kernels' row-split thresholds): no
  // division by the empty dimension, no scratch sized by the wide one, the reference's result.
  it('empty tensors next to a wide dimension (every op)', () => {
    for (const spec of OPS)
      for (let s = 0; s < 2; s++) {
        const c = spec.gen(rng(s, { wide: 32768 + 7 * s }), 0);
        if (Object.values(c.inputs).reduce((n, t) => n + t.data.length, 0) > 1000) continue; // (the wide dimension is not the empty one's partner: too slow for js)
        const want = call(spec, roundedForJs(c), 'js');
        for (const backend of backends) {
          const got = call(spec, c, backend);
          expect(outcomeClass(got), `${spec.name} (${backend}) seed ${s}`).toBe(outcomeClass(want));
          if (got.ok && want.ok) expect(compare(got.result, want.result, spec.tol ?? 1e-4), `${spec.name} seed ${s}`).toBeNull();
        }
      }
  });

  it('a crash-class regression: logits [0, 40000] (N = 0 rows, a wide V) once divided by N', () => {
    const r = rk.logprobs({ logits: rk.tensor(new Float32Array(0), [0, 40000]), labels: rk.tensor(new Int32Array(0), [0]) });
    expect(r.logp.shape).toEqual([0]);
  });
});
