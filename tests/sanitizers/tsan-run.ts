/**
 * ThreadSanitizer run (.ci/run, after `npm run build:tsan`): the thread pool and every op of every
 * family under a -fsanitize=thread build of the addon, from several JS threads at once. Plain node
 * (vitest's own process does not run under a preloaded TSan runtime), so the checks are asserted
 * here: results equal the serial ones, bitwise; TSan itself fails the process (exit 66) on a report.
 *   npm run build:tsan
 *   LD_PRELOAD=$(g++ -print-file-name=libtsan.so) TSAN_OPTIONS=ignore_noninstrumented_modules=1 \
 *     RLHF_KERNELS_ADDON=build-tsan/Release/rlhf_kernels.node node --import tsx tests/sanitizers/tsan-run.ts
 * Node and V8 are not instrumented: TSan sees only their calls into intercepted functions (pthread,
 * malloc, memcpy), not the atomics that order them, and reports races inside node's own thread
 * handling (worker messages, V8 platform jobs). ignore_noninstrumented_modules=1 drops interceptor
 * events from uninstrumented modules instead of listing node internals as suppressions; the
 * addon's own accesses stay checked (verified: a race injected into src/cpu/pool.cc is reported).
 */
import * as rk from '../../ts/index.js';
import { asyncEqualsSerial, concurrentEqualsSerial, forceOffload, inWorker, jobs, runJob } from '../fuzz/concurrent.js';

const list = jobs(1);
const t0 = Date.now();
console.log(`tsan: ${rk.addonPath}, ${rk.backends().threads} threads, ${list.length} jobs (${new Set(list.map((j) => j.op)).size} ops)`);
const serial = list.map((j) => runJob(j));
const bad = await concurrentEqualsSerial(list, serial);
// every op's .async form at once, off the JS thread (libuv workers), while a worker thread computes too
const restore = forceOffload();
const busy = inWorker(list.filter((j) => j.dimMax), 1);
bad.push(...(await asyncEqualsSerial(list, serial)));
await busy;
restore();
// the pool resized by one thread while another computes
const big = list.filter((j) => j.dimMax);
await Promise.all([inWorker(big, 2, true), inWorker(big, 1)]);
rk.setThreads(rk.backends().threads);
for (const d of bad.slice(0, 10)) console.log(`MISMATCH ${d}`);
console.log(`tsan: ${bad.length} mismatches, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
process.exitCode = bad.length ? 1 : 0;
