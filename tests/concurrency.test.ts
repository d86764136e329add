/**
 * Concurrency and re-entrancy. The addon is loaded once per worker thread (per-addon state lives
 * in the env; the CPU thread pool is process-wide and runs a second JS thread's work serially
 * while another holds it, src/cpu/pool.cc). Every op run from several worker_threads at once, and
 * from the main thread meanwhile, must give the results of the same calls made serially —
 * bitwise. The ThreadSanitizer CI step runs this file against a -fsanitize=thread build.
 */
import { describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { asyncEqualsSerial, concurrentEqualsSerial, diff, forceOffload, inWorker, jobs, runJob } from './fuzz/concurrent.js';

const cpu = rk.backends().cpu;
const SANITIZED = process.env.RLHF_KERNELS_SANITIZED === '1';
const JOBS = jobs(1);

describe.skipIf(!cpu)(`concurrency (${rk.addonPath})`, () => {
  const serial = JOBS.map((j) => runJob(j));

  it(`${JOBS.length} jobs (every op; some above the pool's threshold) from 3 worker threads and the main thread at once = serial, bitwise`, async () => {
    // each worker runs the list in a different order, so different ops overlap in time
    expect(await concurrentEqualsSerial(JOBS, serial)).toEqual([]);
  });

  it('every op through .async at once (kernels on libuv threads) while a worker thread computes = serial, bitwise', async () => {
    const restore = forceOffload();
    try {
      const busy = inWorker(JOBS.filter((j) => j.dimMax), 1);
      expect(await asyncEqualsSerial(JOBS, serial)).toEqual([]);
      await busy;
    } finally {
      restore();
    }
  });

  it('setThreads from one worker while others compute: results unchanged in value (SPEC precision)', async () => {
    const big = JOBS.filter((j) => j.dimMax);
    const [a, b] = await Promise.all([inWorker(big, 2, true), inWorker(big, 1)]);
    const threads = rk.backends().threads;
    for (const d of [a, b])
      d.results.forEach((res, i) => {
        const want = serial[JOBS.indexOf(big[i % big.length])] as Record<string, unknown>;
        const got = res as Record<string, unknown>;
        for (const k of Object.keys(want)) {
          if (typeof want[k] === 'string') { expect(got[k]).toBe(want[k]); continue; } // (an error's class and message)
          const x = got[k] as ArrayLike<number> | number, y = want[k] as ArrayLike<number> | number;
          const xs = typeof x === 'number' ? [x] : Array.from(x), ys = typeof y === 'number' ? [y] : Array.from(y);
          expect(xs.length).toBe(ys.length);
          const S = ys.reduce((m, v) => (Number.isFinite(v) ? Math.max(m, Math.abs(v)) : m), 0);
          for (let t = 0; t < ys.length; t++)
            if (!(Number.isNaN(ys[t]) ? Number.isNaN(xs[t]) : Math.abs(xs[t] - ys[t]) <= 1e-5 * (1 + S)))
              expect.fail(`${big[i % big.length].op}.${k}[${t}]: ${xs[t]} vs ${ys[t]}`);
        }
      });
    rk.setThreads(threads); // (the pool is process-wide: restore it)
  });

  it('re-entrant calls: an op called from an input getter, from microtasks and timers, equals the plain call', async () => {
    const spec = JOBS.find((j) => j.op === 'klPenalty' && j.dimMax)!;
    const plain = runJob(spec);
    const logp = rk.tensor(Float32Array.from({ length: 4096 }, (_, i) => -1 - Math.sin(i)), [64, 64]);
    const refLogp = rk.tensor(Float32Array.from({ length: 4096 }, (_, i) => -1 - Math.cos(i)), [64, 64]);
    const want = rk.klPenalty({ logp, refLogp }, { estimator: 'k3' }).kl.data;
    let nested: unknown = null;
    const inputs = {
      get logp() {
        nested = runJob(spec); // a whole op (above the pool threshold) inside this op's validation
        return logp;
      },
      refLogp,
    };
    expect(Array.from(rk.klPenalty(inputs, { estimator: 'k3' }).kl.data)).toEqual(Array.from(want));
    expect(diff(nested, plain, 'nested')).toBeNull();
    const options = { get estimator() { runJob(spec); return 'k3' as const; } };
    expect(Array.from(rk.klPenalty({ logp, refLogp }, options).kl.data)).toEqual(Array.from(want));
    // interleaved from promise callbacks and timers while a worker holds the pool
    const worker = inWorker(JOBS.filter((j) => j.dimMax), 2);
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) =>
      (i % 2 ? Promise.resolve() : new Promise((r) => setImmediate(r))).then(() => runJob(spec))));
    results.forEach((r, i) => expect(diff(r, plain, `async #${i}`)).toBeNull());
    await worker;
  });

  it('a worker thread that exits (its addon instance torn down) leaves the pool working', async () => {
    await inWorker(JOBS.filter((j) => j.dimMax).slice(0, 2), 1);
    const j = JOBS.find((x) => x.op === 'gae' && x.dimMax)!;
    expect(diff(runJob(j), serial[JOBS.indexOf(j)], 'after exit')).toBeNull();
  });
});
