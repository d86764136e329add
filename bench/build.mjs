// Compiles the benchmark CLI into dist/bench/ (shipped in the package; `bin` rlhf-kernels):
// tsc with bench/tsconfig.build.json into a scratch folder, then bench/*.js moved to dist/bench/
// with the library imports ('../ts/...') pointed at the compiled library ('../...'), and the
// length lists of bench/data/ copied. Run after `tsc -p tsconfig.json` (npm run build:bench).
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const scratch = join(root, 'dist', '.bench-build');
const dest = join(root, 'dist', 'bench');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

rmSync(scratch, { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.build.json')], { stdio: 'inherit' });
rmSync(dest, { recursive: true, force: true });
mkdirSync(join(dest, 'data'), { recursive: true });
let n = 0;
for (const f of readdirSync(join(scratch, 'bench'))) {
  if (!f.endsWith('.js') || f === 'run.js') continue; // run.js: the repository's npm run bench entry
  const js = readFileSync(join(scratch, 'bench', f), 'utf8').replace(/(from\s+|import\()(['"])\.\.\/ts\//g, '$1$2../');
  if (/['"]\.\.\/ts\//.test(js)) throw new Error(`build:bench: ${f} still imports ../ts/`);
  writeFileSync(join(dest, f), js);
  n++;
}
for (const f of readdirSync(join(here, 'data'))) if (f.endsWith('.json')) copyFileSync(join(here, 'data', f), join(dest, 'data', f));
chmodSync(join(dest, 'bin.js'), 0o755);
rmSync(scratch, { recursive: true, force: true });
console.log(`build:bench: ${n} files in dist/bench`);
