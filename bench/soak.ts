/**
 * Soak test (not part of npm test): every op, again and again, for N minutes, with random sizes
 * (up to pool-sized inputs), random mutations of the arguments (tests/fuzz/harness.ts) and now and
 * then empty tensors next to a wide dimension. Every call is checked against the js reference
 * (same property as tests/fuzz-api.test.ts). Reports resident memory over time: after warm-up it
 * must not grow (no leak in the addon, the kernels' scratch or the pool).
 *
 *   node --import tsx bench/soak.ts --minutes 10 [--seed 1] [--every 30] [--json out.json]
 *   (node --expose-gc ... collects garbage before each RSS sample, for steadier numbers)
 *
 * Exit code 1 on any mismatch, crash-class error, or RSS growth over 64 MiB between the first
 * and the last sample after warm-up.
 */
import { writeFileSync } from 'node:fs';
import * as rk from '../ts/index.js';
import { OPS, rng } from '../tests/fuzz/cases.js';
import { check, MUTATOR_NAMES } from '../tests/fuzz/harness.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
}
const minutes = arg('minutes', 10);
const seed0 = arg('seed', 1);
const every = arg('every', 30);
const jsonAt = process.argv.indexOf('--json');
const jsonPath = jsonAt > 0 ? process.argv[jsonAt + 1] : null;

const gc = (globalThis as { gc?: () => void }).gc;
const mib = (b: number) => b / 1048576;
const rss = () => {
  gc?.();
  return process.memoryUsage();
};
const levels = (['avx512', 'avx2', 'scalar'] as const).slice(['avx512', 'avx2', 'scalar'].indexOf(rk.backends().simdDetected));

console.log(`soak: ${minutes} min, ${OPS.length} ops, addon ${rk.addonPath}, simd ${levels.join('/')}, ${rk.backends().threads} threads${gc ? ', gc before samples' : ''}`);
const t0 = Date.now();
const end = t0 + minutes * 60_000;
const samples: { s: number; rss: number; heap: number; external: number; calls: number }[] = [];
const perOp = new Map<string, number>();
const failures: string[] = [];
let calls = 0;
let next = t0;
for (let i = 0; Date.now() < end; i++) {
  if (Date.now() >= next) {
    const m = rss();
    samples.push({ s: (Date.now() - t0) / 1000, rss: mib(m.rss), heap: mib(m.heapUsed), external: mib(m.external), calls });
    const x = samples[samples.length - 1];
    console.log(`  ${x.s.toFixed(0).padStart(5)} s  rss ${x.rss.toFixed(1)} MiB  heap ${x.heap.toFixed(1)} MiB  external ${x.external.toFixed(1)} MiB  calls ${calls}  failures ${failures.length}`);
    next += every * 1000;
  }
  const r = rng(seed0 * 1_000_003 + i);
  const spec = OPS[i % OPS.length];
  const u = r.next();
  // mostly valid calls of small and medium sizes; some mutated; some large (pool) and wide-empty
  const mut = u < 0.6 ? 'none' : r.pick(MUTATOR_NAMES);
  const big = r.bool(0.08);
  const c = r.bool(0.03) ? spec.gen(rng(i, { wide: 32768 + (i % 1000) }), 0) : spec.gen(r, big ? 3 : r.int(0, 2));
  const n = Object.values(c.inputs).reduce((a, t) => a + t.data.length, 0);
  if (n > 3_000_000) continue; // (keeps each call, and the js reference, to a few hundred ms)
  rk.setSimd(r.pick(levels));
  try {
    const v = check(spec, c, mut, r, 'cpu');
    if (v.fail) failures.push(`#${i} ${v.fail}`);
  } catch (e) {
    failures.push(`#${i} ${spec.name}/${mut}: harness threw ${(e as Error).stack}`);
  }
  calls++;
  perOp.set(spec.name, (perOp.get(spec.name) ?? 0) + 1);
}
rk.setSimd(levels[0]);
const m = rss();
samples.push({ s: (Date.now() - t0) / 1000, rss: mib(m.rss), heap: mib(m.heapUsed), external: mib(m.external), calls });

// growth: first sample after warm-up (the second) against the last
const base = samples[Math.min(1, samples.length - 1)], last = samples[samples.length - 1];
const peak = Math.max(...samples.map((s) => s.rss));
const growth = last.rss - base.rss;
console.log(`soak: ${calls} calls in ${((Date.now() - t0) / 60000).toFixed(1)} min (${[...perOp.values()].reduce((a, b) => Math.min(a, b), Infinity)}+ per op), ${failures.length} failures`);
console.log(`soak: rss ${samples[0].rss.toFixed(1)} MiB at start, ${base.rss.toFixed(1)} MiB after warm-up, ${last.rss.toFixed(1)} MiB at the end (peak ${peak.toFixed(1)} MiB): growth ${growth.toFixed(1)} MiB`);
for (const f of failures.slice(0, 20)) console.log(`FAIL ${f}`);
if (jsonPath)
  writeFileSync(jsonPath, JSON.stringify({ minutes, seed: seed0, calls, perOp: Object.fromEntries(perOp), failures, samples }, null, 1));
process.exitCode = failures.length || growth > 64 ? 1 : 0;
