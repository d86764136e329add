/**
 * Deterministic prompt-length lists for bench/prepack.bench.ts (run: node --import tsx bench/data/generate.ts).
 * - heavy-tailed.json: log-normal (median 80 tokens, σ = 0.9), clipped to [4, 1024]: the shape of
 *   instruction / QA prompt lengths (most short, a few very long) that makes padding wasteful.
 * - near-uniform.json: uniform in [200, 256]: similar lengths, where packing gains little.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function mulberry32(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const here = dirname(fileURLToPath(import.meta.url));
const n = 1024;
const r1 = mulberry32(20261201);
const heavy = Array.from({ length: n }, () => {
  const u = Math.max(r1(), 1e-12), v = r1();
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  return Math.min(1024, Math.max(4, Math.round(80 * Math.exp(0.9 * z))));
});
const r2 = mulberry32(20261202);
const uniform = Array.from({ length: n }, () => 200 + Math.floor(r2() * 57));
const save = (name: string, description: string, lengths: number[]) =>
  writeFileSync(join(here, `${name}.json`), JSON.stringify({ name, description, seed: name === 'heavy-tailed' ? 20261201 : 20261202, lengths }) + '\n');
save('heavy-tailed', 'log-normal prompt lengths, median 80, sigma 0.9, clipped to [4, 1024]', heavy);
save('near-uniform', 'uniform prompt lengths in [200, 256]', uniform);
