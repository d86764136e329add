// Worker thread for tests/concurrency.test.ts: loads the package (its own copy of the addon's
// per-thread state) and runs the jobs it is given `reps` times, posting the outcomes back.
import { parentPort, workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

const m = await tsImport('./concurrent.ts', import.meta.url);
const rk = await tsImport('../../ts/index.ts', import.meta.url);
const { jobs, reps, setThreads } = workerData;
const results = [];
for (let r = 0; r < reps; r++) {
  for (const j of jobs) {
    if (setThreads && r % 2 === 1) rk.setThreads(1 + (j.seed % 3)); // pool size changes while other threads use it
    results.push(m.runJob(j));
  }
}
parentPort.postMessage({ results, addonPath: rk.addonPath });
