/**
 * `npm run bench`: measures this machine's copy bandwidth, then every family's cases, prints a
 * table, writes bench/results/<name>.json and refreshes the table in bench/README.md.
 *
 *   npm run bench                       # all families, default configuration
 *   npm run bench -- --family logprobs  # one family (repeatable)
 *   npm run bench -- --quick            # shorter runs, smaller copy buffer
 *   npm run bench -- --one-thread       # also the CPU backend on one thread
 *   npm run bench -- --no-readme        # leave bench/README.md alone
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as rk from '../ts/index.js';
import { copyBandwidth, machine, markdownTable, runCases, type BenchCase, type BenchOptions, type CaseResult } from './harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const FAMILIES = ['logprobs', 'rewards', 'advantages', 'preference', 'ppo', 'prepack', 'sampling', 'linear'];

const argv = process.argv.slice(2);
const families = argv.flatMap((a, i) => (a === '--family' ? [argv[i + 1]] : []));
const opts: BenchOptions = {
  quick: argv.includes('--quick'),
  oneThread: argv.includes('--one-thread'),
  jsMaxSeconds: argv.includes('--quick') ? 1 : 3,
};
const name = argv.flatMap((a, i) => (a === '--name' ? [argv[i + 1]] : []))[0] ?? 'cpu-latest';

async function main() {
  if (!rk.backends().cpu) console.warn('native addon not loaded: only the js backend will be measured');
  const m = machine();
  const copy = copyBandwidth(opts.quick);
  console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, node ${m.node}, simd ${m.simd}, threads ${m.threads}`);
  console.log(`copy bandwidth (read+write): ${(copy.all / 1e9).toFixed(1)} GB/s with ${m.threads} threads, ${(copy.one / 1e9).toFixed(1)} GB/s with 1`);
  const results: CaseResult[] = [];
  for (const f of FAMILIES) {
    if (families.length && !families.includes(f)) continue;
    const file = join(here, `${f}.bench.ts`);
    if (!existsSync(file)) continue;
    const mod = (await import(`./${f}.bench.ts`)) as { cases?: (o: BenchOptions) => BenchCase[] };
    if (!mod.cases) continue;
    results.push(...runCases(mod.cases(opts), opts, copy));
  }
  const table = markdownTable(results);
  console.log('\n' + table);
  mkdirSync(join(here, 'results'), { recursive: true });
  const report = { machine: m, copyBandwidth: { allThreads: copy.all, oneThread: copy.one }, options: opts, results };
  const path = join(here, 'results', `${name}.json`);
  writeFileSync(path, JSON.stringify(report, null, 2) + '\n');
  console.log(`\nwrote ${path}`);
  if (!argv.includes('--no-readme') && !families.length) {
    const readme = join(here, 'README.md');
    const header = `Machine: ${m.cpu}, ${m.cores} cores, node ${m.node}, SIMD ${m.simd}, ${m.threads} threads; ` +
      `copy bandwidth ${(copy.all / 1e9).toFixed(1)} GB/s (${m.threads} threads), ${(copy.one / 1e9).toFixed(1)} GB/s (1 thread); ${m.date}.`;
    const block = `<!-- bench:start -->\n${header}\n\n${table}\n<!-- bench:end -->`;
    const text = existsSync(readme) ? readFileSync(readme, 'utf8') : '# Benchmarks\n\n<!-- bench:start -->\n<!-- bench:end -->\n';
    writeFileSync(readme, text.replace(/<!-- bench:start -->[\s\S]*<!-- bench:end -->/, block));
    console.log(`updated ${readme}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
