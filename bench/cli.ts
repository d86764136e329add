/**
 * The benchmark CLI: `npm run bench -- [options]` in the repository, `npx rlhf-kernels bench
 * [options]` where the package is installed. See USAGE, and bench/README.md for what the columns mean.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as rk from '../ts/index.js';
import {
  measure,
  specsFromCases,
  type BackendName,
  type BenchCase,
  type BenchOptions,
  type Call,
  type Dtype,
  type OpCase,
  type OpSpec,
  type Outputs,
} from './harness.js';
import { fmtBytes, llcInfo, machineInfo, measureRoofs, parseBytes, SIMD_LEVELS, withCpu, type LlcInfo, type Roofs, type Simd } from './machine.js';
import {
  compareReports,
  compareText,
  floorOf,
  furthest,
  markdownTable,
  summaryTable,
  parseReport,
  residencyOf,
  roofLines,
  rooflineSvg,
  rowKey,
  rowLine,
  SCHEMA,
  backendLabel,
  type Report,
  type Row,
} from './report.js';

const here = dirname(fileURLToPath(import.meta.url));
/** Running from the TypeScript sources (the repository) rather than the compiled package. */
const fromSource = import.meta.url.endsWith('.ts');
/** Default DRAM-resident sizes move at least this many times the LLC (the DRAM copy roof is measured at the same working set; ≥ 4× counts as DRAM-resident). */
export const DRAM_FACTOR = 8;
const FAMILY_ORDER = ['logprobs', 'rewards', 'advantages', 'preference', 'ppo', 'prepack', 'sampling', 'linear'];

export const USAGE = `rlhf-kernels bench: microbenchmarks of the rlhf-kernels ops against this machine's floor

usage: rlhf-kernels bench [options]        (in the repository: npm run bench -- [options])

selection (lists are comma-separated; flags may repeat):
  --op NAMES            ops to run; a base name selects every variant (vocabKl → vocabKl(reverse), vocabKl(forward))
  --family NAMES        op families (logprobs, rewards, advantages, preference, ppo, prepack, sampling, ...)
  --size SIZES          explicit sizes, e.g. 64x8192 or 4096x32000 (default: each op's cache- and DRAM-resident sizes)
  --residency KINDS     which default sizes: cache, dram (default both; the DRAM size moves ≥ 8x the last-level cache)
  --dtype DTYPES        f32, bf16, f16 (default: each op's default dtypes)
  --backend NAMES       cpu, js, cuda (default cpu,js)
  --threads COUNTS      CPU thread counts, e.g. 1,2 (default: the pool's size)
  --simd LEVELS         avx512, avx2, baseline, or all (default all levels this CPU has), as RLHF_KERNELS_SIMD forces
  --outputs KINDS       out (preallocated out buffers), alloc (fresh outputs) (default both, alloc below DRAM-resident
                        sizes only; alloc rows use the first --simd level)
  --peers               also the naive JS of each equation (js backend) and onnxruntime-node for log-softmax + gather, when installed
measurement:
  --time SECONDS        benchmark.js time per row (default 0.3, --quick 0.15)
  --quick               shorter runs and smaller roof buffers
  --js-max-seconds S    record a single js call when it takes longer than this, skip js where one would take 3x this (default 1)
  --llc SIZE            last-level cache size (default: read from the OS, checked with a copy sweep), e.g. 32MiB
output:
  --json                print the report (schema ${SCHEMA}) on stdout instead of the table
  --name NAME           results file name (default cpu-latest for a full default run, else run-<date>)
  --out DIR             results directory (default bench/results in the repository, ./rlhf-kernels-bench otherwise)
  --no-readme           do not rewrite the table in bench/README.md (a full default run in the repository does)
  --no-progress         no progress bar
comparison:
  --compare OLD.json    print new/old median time per row and fail past --max-regression
  --against NEW.json    compare two saved reports without measuring
  --max-regression R    ratio of median times that fails the run (default 1.25)
other:
  --list                list the ops with their dtypes and default sizes
  --help

exit status: 0 ok, 1 a row slower than --max-regression, 2 bad arguments or unreadable reports.`;

export class UsageError extends Error {}

export interface Config {
  ops: string[];
  families: string[];
  sizes: string[];
  residency: ('cache' | 'dram')[];
  dtypes: Dtype[] | null;
  backends: BackendName[];
  threads: number[] | null;
  simd: Simd[] | null;
  outputs: Outputs[];
  /** --outputs given: alloc rows also at DRAM-resident sizes (by default only below them) */
  outputsExplicit: boolean;
  peers: boolean;
  time: number;
  quick: boolean;
  jsMaxSeconds: number;
  json: boolean;
  name: string | null;
  outDir: string | null;
  readme: boolean;
  progress: boolean;
  compare: string | null;
  against: string | null;
  maxRegression: number;
  llc: number | null;
  list: boolean;
  help: boolean;
  /** no selection flag given: the "main job" that refreshes bench/README.md */
  isDefault: boolean;
}

const FLAGS_WITH_VALUE = new Set(['op', 'family', 'size', 'residency', 'dtype', 'backend', 'threads', 'simd', 'outputs', 'time', 'js-max-seconds', 'name', 'out', 'compare', 'against', 'max-regression', 'llc']);
const BOOLEAN_FLAGS = new Set(['peers', 'quick', 'json', 'no-readme', 'no-progress', 'list', 'help', 'one-thread']);
const SELECTION = ['op', 'family', 'size', 'residency', 'dtype', 'backend', 'threads', 'simd', 'outputs', 'peers', 'one-thread'];

function oneOf<T extends string>(flag: string, v: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(v)) throw new UsageError(`--${flag}: '${v}' is not one of ${allowed.join(', ')}`);
  return v as T;
}
function positive(flag: string, v: string, integer = false): number {
  const x = Number(v);
  if (!(x > 0) || !Number.isFinite(x) || (integer && !Number.isInteger(x))) throw new UsageError(`--${flag}: expected a positive ${integer ? 'integer' : 'number'}, got '${v}'`);
  return x;
}

/** Parses the CLI arguments (after `bench`). Throws UsageError on anything it does not understand. */
export function parseArgs(argv: string[]): Config {
  const vals = new Map<string, string[]>();
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h') {
      seen.add('help');
      continue;
    }
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument '${a}' (options start with --)`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq);
    if (FLAGS_WITH_VALUE.has(name)) {
      const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined || (eq < 0 && v.startsWith('--'))) throw new UsageError(`--${name} needs a value`);
      if (v === '') throw new UsageError(`--${name} needs a value`);
      vals.set(name, [...(vals.get(name) ?? []), ...v.split(',').map((s) => s.trim()).filter(Boolean)]);
    } else if (BOOLEAN_FLAGS.has(name)) {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
    } else throw new UsageError(`unknown option --${name} (see --help)`);
    seen.add(name);
  }
  const list = (k: string) => vals.get(k) ?? [];
  const single = (k: string) => {
    const l = list(k);
    if (l.length > 1) throw new UsageError(`--${k} takes one value`);
    return l[0] ?? null;
  };
  const quick = seen.has('quick');
  let simd: Simd[] | null = null;
  if (vals.has('simd')) {
    const l = list('simd').map((s) => (s === 'scalar' ? 'baseline' : s));
    simd = l.includes('all') ? [...SIMD_LEVELS] : [...new Set(l.map((s) => oneOf('simd', s, SIMD_LEVELS)))];
  }
  let threads: number[] | null = vals.has('threads') ? [...new Set(list('threads').map((t) => positive('threads', t, true)))] : null;
  if (threads && threads.some((t) => t > 64)) throw new UsageError('--threads: at most 64');
  if (seen.has('one-thread')) threads = [...new Set([...(threads ?? [rk.backends().threads]), 1])];
  const backends = vals.has('backend') ? [...new Set(list('backend').map((b) => oneOf('backend', b, ['cpu', 'js', 'cuda'] as const)))] : (['cpu', 'js'] as BackendName[]);
  if (seen.has('peers')) for (const b of ['js', 'ort'] as const) if (!backends.includes(b)) backends.push(b);
  const llcS = single('llc');
  const llc = llcS === null ? null : parseBytes(llcS);
  if (llc !== null && !(llc >= 4096)) throw new UsageError(`--llc: expected a size such as 32MiB, got '${llcS}'`);
  const compare = single('compare'), against = single('against');
  if (against && !compare) throw new UsageError('--against needs --compare OLD.json');
  for (const s of list('size')) if (!/^[\w.=×x ]+$/.test(s)) throw new UsageError(`--size: '${s}' is not a size such as 64x8192`);
  return {
    ops: list('op'),
    families: list('family'),
    sizes: list('size'),
    residency: vals.has('residency') ? [...new Set(list('residency').map((r) => oneOf('residency', r, ['cache', 'dram'] as const)))] : ['cache', 'dram'],
    dtypes: vals.has('dtype') ? [...new Set(list('dtype').map((d) => oneOf('dtype', d, ['f32', 'bf16', 'f16'] as const)))] : null,
    backends,
    threads,
    simd,
    outputs: vals.has('outputs') ? [...new Set(list('outputs').map((o) => oneOf('outputs', o, ['out', 'alloc'] as const)))] : ['out', 'alloc'],
    outputsExplicit: vals.has('outputs'),
    peers: seen.has('peers'),
    time: vals.has('time') ? positive('time', single('time')!) : quick ? 0.15 : 0.3,
    quick,
    jsMaxSeconds: vals.has('js-max-seconds') ? positive('js-max-seconds', single('js-max-seconds')!) : quick ? 0.5 : 1,
    json: seen.has('json'),
    name: single('name'),
    outDir: single('out'),
    readme: !seen.has('no-readme'),
    progress: !seen.has('no-progress'),
    compare,
    against,
    maxRegression: vals.has('max-regression') ? positive('max-regression', single('max-regression')!) : 1.25,
    llc,
    list: seen.has('list'),
    help: seen.has('help'),
    isDefault: !SELECTION.some((k) => seen.has(k)),
  };
}

// ----- families ---------------------------------------------------------------------------

/** Every spec of every `*.bench.ts|js` file next to this one (legacy `cases()` files adapted). */
export async function loadSpecs(families: string[] = []): Promise<OpSpec[]> {
  const ext = fromSource ? '.bench.ts' : '.bench.js';
  const names = readdirSync(here)
    .filter((f) => f.endsWith(ext))
    .map((f) => f.slice(0, -ext.length))
    .sort((a, b) => {
      const ia = FAMILY_ORDER.indexOf(a), ib = FAMILY_ORDER.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
    });
  for (const f of families) if (!names.includes(f)) throw new UsageError(`--family: no family '${f}' (have ${names.join(', ')})`);
  const specs: OpSpec[] = [];
  for (const n of names) {
    if (families.length && !families.includes(n)) continue;
    const mod = (await import(pathToFileURL(join(here, n + ext)).href)) as { ops?: OpSpec[]; cases?: (o: BenchOptions) => BenchCase[] };
    if (mod.ops) specs.push(...mod.ops);
    else if (mod.cases) specs.push(...specsFromCases(mod.cases({ quick: false, oneThread: false, jsMaxSeconds: 2 })));
  }
  return specs;
}

export const baseName = (op: string) => op.replace(/[\s(].*$/, '');
export function selectSpecs(specs: OpSpec[], ops: string[]): OpSpec[] {
  if (!ops.length) return specs;
  const out = specs.filter((s) => ops.some((o) => s.op === o || baseName(s.op) === o));
  const missing = ops.filter((o) => !specs.some((s) => s.op === o || baseName(s.op) === o));
  if (missing.length) throw new UsageError(`--op: no op named ${missing.map((m) => `'${m}'`).join(', ')} (see --list)`);
  return out;
}

// ----- plan -------------------------------------------------------------------------------

export interface PlannedCase {
  spec: OpSpec;
  size: string;
  dtype: Dtype;
  /** position in op order (the table's order); the run order groups cases that share inputs */
  order: number;
}
export interface RunConfig {
  backend: BackendName;
  simd: Simd | null;
  threads: number;
  outputs: Outputs;
}

/** The (op, size, dtype) cases of a run. Explicit sizes go to every op that can parse them. */
export function planCases(specs: OpSpec[], cfg: Pick<Config, 'sizes' | 'residency' | 'dtypes'>, llcBytes: number): PlannedCase[] {
  const out: PlannedCase[] = [];
  for (const spec of specs) {
    const have = spec.dtypes ?? ['f32'];
    const dts = cfg.dtypes ? cfg.dtypes.filter((d) => have.includes(d)) : (spec.defaultDtypes ?? [have[0]]);
    for (const dtype of dts) {
      let sizes: string[];
      if (cfg.sizes.length) sizes = cfg.sizes;
      else {
        const d = spec.sizes(llcBytes, DRAM_FACTOR * llcBytes);
        sizes = [...(cfg.residency.includes('cache') && d.cache ? [d.cache] : []), ...(cfg.residency.includes('dram') && d.dram ? [d.dram] : []), ...(d.other ?? [])];
      }
      for (const size of [...new Set(sizes)]) out.push({ spec, size, dtype, order: out.length });
    }
  }
  // run order: the cases of a family at one size and dtype back to back (they share inputs, and
  // only one set of inputs is alive at a time), groups in order of first appearance
  const group = (c: PlannedCase) => `${c.spec.family}|${c.size}|${c.dtype}`;
  const first = new Map<string, number>();
  for (const c of out) if (!first.has(group(c))) first.set(group(c), first.size);
  return out.map((c, i) => ({ c, i })).sort((a, b) => first.get(group(a.c))! - first.get(group(b.c))! || a.i - b.i).map((x) => x.c);
}

/** The measurements of one case: cpu at every SIMD level × thread count (alloc at the first level), then cuda, js, peers. */
export function planConfigs(cfg: Pick<Config, 'backends' | 'outputs'>, simd: Simd[], threads: number[], c: Pick<OpCase, 'alloc' | 'out' | 'peers'>, cpuThreadsMax: number): RunConfig[] {
  const out: RunConfig[] = [];
  const outputs = cfg.outputs.filter((o) => o === 'out' || c.alloc);
  if (cfg.backends.includes('cpu') && (c.out.cpu || c.alloc?.cpu))
    simd.forEach((s, i) => {
      for (const t of threads)
        for (const o of outputs) if ((o === 'out' || i === 0) && (o === 'out' ? c.out.cpu : c.alloc?.cpu)) out.push({ backend: 'cpu', simd: s, threads: t, outputs: o });
    });
  if (cfg.backends.includes('cuda')) for (const o of outputs) if (o === 'out' ? c.out.cuda : c.alloc?.cuda) out.push({ backend: 'cuda', simd: null, threads: 1, outputs: o });
  if (cfg.backends.includes('js') && (c.out.js || c.alloc?.js)) out.push({ backend: 'js', simd: null, threads: 1, outputs: c.out.js ? 'out' : 'alloc' });
  if (cfg.backends.includes('ort') && c.peers?.ort) out.push({ backend: 'ort', simd: null, threads: cpuThreadsMax, outputs: 'alloc' });
  return out;
}

// ----- progress ---------------------------------------------------------------------------

export class Progress {
  done = 0;
  private t0 = Date.now();
  private tty: boolean;
  constructor(
    public total: number,
    private stream: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean },
    private enabled: boolean,
  ) {
    this.tty = !!stream.isTTY;
  }
  private clock(s: number) {
    const m = Math.floor(s / 60);
    return `${m}:${String(Math.floor(s % 60)).padStart(2, '0')}`;
  }
  bar(label: string) {
    if (!this.enabled || !this.tty) return;
    const w = 24, frac = this.total ? Math.min(1, this.done / this.total) : 0;
    const el = (Date.now() - this.t0) / 1000;
    const eta = this.done ? (el / this.done) * (this.total - this.done) : NaN;
    const cols = (this.stream as NodeJS.WriteStream).columns ?? 120;
    const s = `[${'#'.repeat(Math.round(frac * w)).padEnd(w, '.')}] ${this.done}/${this.total} ${this.clock(el)}${Number.isFinite(eta) ? ` eta ${this.clock(eta)}` : ''} ${label}`;
    this.stream.write(`\r\x1b[K${s.slice(0, cols - 1)}`);
  }
  /** A finished row: printed above the bar on a terminal, as a plain line otherwise. */
  row(line: string) {
    this.done++;
    if (!this.enabled) return;
    this.stream.write(this.tty ? `\r\x1b[K${line}\n` : `[${this.done}/${this.total} ${this.clock((Date.now() - this.t0) / 1000)}] ${line}\n`);
  }
  note(line: string) {
    if (this.enabled) this.stream.write(this.tty ? `\r\x1b[K${line}\n` : `${line}\n`);
  }
  end() {
    if (this.enabled && this.tty) this.stream.write('\r\x1b[K');
  }
}

// ----- run --------------------------------------------------------------------------------

export interface Io {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown; isTTY?: boolean };
  /** tests: replaces the machine probe (LLC and roofs) */
  probe?: (llc: number | null, threads: number[], simd: Simd[], quick: boolean) => Promise<{ llc: LlcInfo; roofs: Roofs }>;
}

async function probe(llc: number | null, threads: number[], simd: Simd[], quick: boolean) {
  const l = llcInfo(llc, quick);
  return { llc: l, roofs: await measureRoofs(l.bytes, threads, simd, quick) };
}

function timestamp() {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

export function defaultOutDir() {
  return fromSource ? join(here, 'results') : resolve(process.cwd(), 'rlhf-kernels-bench');
}

/** Measures one case in every configuration; returns its rows (js speed-ups filled in). */
async function runCase(
  pc: PlannedCase,
  c: OpCase,
  configs: RunConfig[],
  cfg: Config,
  ctx: { llc: number; roofs: Roofs; simd0: Simd; jsRate: Map<string, number> },
  progress: Progress,
): Promise<Row[]> {
  const rateKey = `${pc.spec.family}/${pc.spec.op}|${pc.dtype}`;
  const rows: Row[] = [];
  const residency = residencyOf(c.bytes, ctx.llc);
  for (const rc of configs) {
    const label = `${pc.spec.family}/${pc.spec.op} ${pc.dtype} ${pc.size} ${rc.outputs} ${backendLabel(rc)}`;
    progress.bar(label);
    let fn: Call | null | undefined;
    if (rc.backend === 'ort') fn = await c.peers!.ort!();
    else fn = (rc.outputs === 'out' ? c.out : c.alloc)?.[rc.backend];
    if (rc.backend === 'js' && ctx.jsRate.has(rateKey) && c.bytes / ctx.jsRate.get(rateKey)! > 3 * cfg.jsMaxSeconds) {
      progress.total--;
      progress.note(`  (js skipped for ${pc.spec.family}/${pc.spec.op} ${pc.size}: about ${(c.bytes / ctx.jsRate.get(rateKey)!).toFixed(0)} s per call predicted from a smaller size)`);
      continue;
    }
    if (!fn) {
      progress.total--;
      if (rc.backend === 'ort') progress.note(`  (onnxruntime-node is not installed: skipped the ort peer; npm install onnxruntime-node to add it)`);
      continue;
    }
    const f = fn;
    let t;
    if (rc.backend === 'js') {
      // one call first: a js call of seconds is recorded once, not repeated
      const a = performance.now();
      f();
      const once = (performance.now() - a) / 1000;
      t = once > cfg.jsMaxSeconds ? { samples: [once], median: once, q1: once, q3: once, min: once, max: once, rme: null } : await measure(f, cfg.time);
    } else if (rc.backend === 'cpu') t = await withCpu(rc.simd, rc.threads, () => measure(f, cfg.time));
    else t = await measure(f, cfg.time);
    if (rc.backend === 'js') ctx.jsRate.set(rateKey, c.bytes / t.median);
    const simdForFloor = rc.simd ?? ctx.simd0;
    const fl = floorOf(c.bytes, c.flops, residency, ctx.roofs, simdForFloor, rc.threads);
    const row: Row = {
      key: '',
      family: pc.spec.family,
      op: pc.spec.op,
      dtype: pc.dtype,
      size: pc.size,
      residency,
      outputs: rc.outputs,
      backend: rc.backend,
      simd: rc.simd,
      threads: rc.threads,
      bytes: c.bytes,
      flops: c.flops,
      intensity: c.bytes ? c.flops / c.bytes : 0,
      floorSeconds: fl.seconds,
      bound: fl.bound,
      medianSeconds: t.median,
      q1Seconds: t.q1,
      q3Seconds: t.q3,
      minSeconds: t.min,
      maxSeconds: t.max,
      samples: t.samples.length,
      rme: t.rme,
      gbPerSecond: c.bytes / t.median / 1e9,
      gflopPerSecond: c.flops / t.median / 1e9,
      fractionOfFloor: fl.seconds / t.median,
      speedupOverJs: null,
      ...(c.note ? { note: c.note } : {}),
      ...(c.extra ? { extra: c.extra } : {}),
    };
    row.key = rowKey(row);
    rows.push(row);
  }
  const js = rows.find((r) => r.backend === 'js');
  if (js) for (const r of rows) if (r !== js) r.speedupOverJs = js.medianSeconds / r.medianSeconds;
  for (const r of rows) progress.row(rowLine(r));
  return rows;
}

function readmeBlock(rep: Report, svgName: string): string {
  const far = furthest(rep.rows.filter((r) => r.simd === rep.rows.find((x) => x.backend === 'cpu')?.simd), 8);
  return [
    '<!-- bench:start -->',
    ...roofLines(rep).map((l) => `- ${l}`),
    `- run: \`${String(rep.config.command)}\`, ${rep.date}`,
    '',
    `![roofline](results/${svgName})`,
    '',
    'Furthest from their floor (cpu, best SIMD level, `out` buffers; floors under 20 µs, where the per-call overhead is the time, left out):',
    '',
    ...far.map((r) => `- ${r.family}/${r.op} ${r.dtype} ${r.size} (${r.residency}): ${(100 * r.fractionOfFloor).toFixed(0)}% of a ${r.bound}-bound floor`),
    '',
    'Median time per call (fraction of the floor) per SIMD level; every row of the run, with quartiles, is in the JSON.',
    '',
    summaryTable(rep.rows),
    '<!-- bench:end -->',
  ].join('\n');
}

/** The CLI. Returns the exit status. */
export async function main(argv: string[], io: Io = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  let cfg: Config;
  try {
    cfg = parseArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`rlhf-kernels bench: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (cfg.help) {
    io.stdout.write(USAGE + '\n');
    return 0;
  }
  const readReport = (p: string) => parseReport(readFileSync(p, 'utf8'), p);
  try {
    if (cfg.against) {
      const c = compareReports(readReport(cfg.compare!), readReport(cfg.against), cfg.maxRegression);
      io.stdout.write(compareText(c) + '\n');
      return c.failed ? 1 : 0;
    }
    const old = cfg.compare ? readReport(cfg.compare) : null;
    const specs = selectSpecs(await loadSpecs(cfg.families), cfg.ops);
    const b = rk.backends();
    if (cfg.list) {
      const llc = cfg.llc ?? 32 * 2 ** 20;
      for (const s of specs) {
        const d = s.sizes(llc, DRAM_FACTOR * llc);
        const sizes = [d.cache && `cache ${d.cache}`, d.dram && `dram ${d.dram}`, ...(d.other ?? []), ...(s.explicitSizes ?? []).map((x) => `${x} (only with --size)`)];
        io.stdout.write(`${s.family}/${s.op}  dtypes ${(s.dtypes ?? ['f32']).join(',')}  sizes: ${sizes.filter(Boolean).join(', ')}  (LLC ${fmtBytes(llc)})\n`);
      }
      return 0;
    }
    const warn = (s: string) => io.stderr.write(`rlhf-kernels bench: ${s}\n`);
    let backends = cfg.backends;
    if (!b.cpu && backends.includes('cpu')) {
      warn(`native addon not loaded (${rk.nativeLoadError}): measuring the js backend only`);
      backends = backends.filter((x) => x !== 'cpu');
    }
    if (backends.includes('cuda') && !b.cuda.available) {
      warn(`cuda backend unavailable (${b.cuda.reason}): skipped`);
      backends = backends.filter((x) => x !== 'cuda');
    }
    const detected = b.cpu ? (b.simdDetected === 'scalar' ? 'baseline' : (b.simdDetected as Simd)) : 'baseline';
    const have = SIMD_LEVELS.slice(SIMD_LEVELS.indexOf(detected));
    let simd = (cfg.simd ?? have).filter((s) => have.includes(s));
    for (const s of cfg.simd ?? []) if (!have.includes(s)) warn(`--simd ${s}: this CPU has ${detected} at most: skipped`);
    if (!simd.length) simd = [detected];
    const maxThreads = b.threads;
    const threads = cfg.threads ?? [maxThreads];
    const roofThreads = [...new Set([...threads, ...(backends.includes('js') ? [1] : []), ...(backends.includes('ort') || backends.includes('cuda') ? [maxThreads] : [])])].sort((x, y) => x - y);
    const progressOn = cfg.progress;
    if (progressOn) io.stderr.write('measuring the machine (LLC, copy bandwidth, FMA peak)…\n');
    const { llc, roofs } = await (io.probe ?? probe)(cfg.llc, roofThreads, simd, cfg.quick);
    const machine = machineInfo(llc);
    const head = { machine, roofs };
    if (progressOn) io.stderr.write(roofLines(head).join('\n') + '\n');

    const cases = planCases(specs, cfg, llc.bytes);
    if (cfg.sizes.length) {
      // explicit sizes: keep the cases whose op can parse the size
      for (const s of cfg.sizes) if (!cases.some((c) => c.size === s)) throw new UsageError(`--size ${s}: no selected op`);
    }
    const run = { ...cfg, backends };
    const perCase = (c: Pick<OpCase, 'out' | 'alloc' | 'peers'>) => planConfigs(run, simd, threads, c, maxThreads).length;
    const optimistic = { out: { cpu: () => 0, js: () => 0, cuda: () => 0 }, alloc: { cpu: () => 0, cuda: () => 0 }, peers: {} };
    const progress = new Progress(cases.reduce((n) => n + perCase(optimistic), 0), io.stderr, progressOn);
    const ordered: { r: Row; order: number }[] = [];
    const ctx = { llc: llc.bytes, roofs, simd0: simd[0], jsRate: new Map<string, number>() };
    const skipped: string[] = [];
    for (const pc of cases) {
      progress.bar(`${pc.spec.family}/${pc.spec.op} ${pc.dtype} ${pc.size}: building inputs`);
      let c: OpCase;
      try {
        c = pc.spec.make(pc.size, pc.dtype);
      } catch (e) {
        if (!(e instanceof RangeError)) throw e;
        progress.total -= perCase(optimistic);
        skipped.push(`${pc.spec.family}/${pc.spec.op} ${pc.size}: ${e.message}`);
        continue;
      }
      // fresh DRAM-sized outputs are a page-fault benchmark (seconds per call on a small VM): only on request
      const dramAlloc = cfg.outputsExplicit || residencyOf(c.bytes, llc.bytes) !== 'dram';
      const configs = planConfigs(run, simd, threads, c, maxThreads).filter((r) => r.outputs === 'out' || dramAlloc);
      progress.total += configs.length - perCase(optimistic);
      for (const r of await runCase(pc, c, configs, cfg, ctx, progress)) ordered.push({ r, order: pc.order });
    }
    progress.end();
    const rows = ordered.sort((a, b) => a.order - b.order).map((x) => x.r);
    if (cfg.sizes.length && !rows.length) throw new UsageError(`--size ${cfg.sizes.join(',')}: no selected op takes this size (${skipped.join('; ')})`);

    const report: Report = {
      schema: SCHEMA,
      date: new Date().toISOString(),
      machine,
      roofs,
      config: {
        command: `rlhf-kernels bench ${argv.join(' ')}`.trim(),
        ops: cfg.ops,
        families: cfg.families,
        sizes: cfg.sizes,
        residency: cfg.residency,
        dtypes: cfg.dtypes,
        backends,
        threads,
        simd,
        outputs: cfg.outputs,
        peers: cfg.peers,
        time: cfg.time,
        quick: cfg.quick,
        skipped,
      },
      rows,
    };
    const outDir = cfg.outDir ? resolve(cfg.outDir) : defaultOutDir();
    const name = cfg.name ?? (cfg.isDefault ? 'cpu-latest' : `run-${timestamp()}`);
    mkdirSync(outDir, { recursive: true });
    const jsonPath = join(outDir, `${name}.json`), svgPath = join(outDir, `${name}.svg`);
    writeFileSync(jsonPath, JSON.stringify(report, null, 2) + '\n');
    writeFileSync(svgPath, rooflineSvg(report));
    if (cfg.json) io.stdout.write(JSON.stringify(report, null, 2) + '\n');
    else io.stdout.write(`\n${roofLines(report).join('\n')}\n\n${markdownTable(rows)}\n`);
    const say = (s: string) => (cfg.json ? io.stderr : io.stdout).write(s + '\n');
    for (const s of skipped) say(`skipped: ${s}`);
    say(`\nwrote ${jsonPath}\nwrote ${svgPath}`);
    const readme = join(here, 'README.md');
    if (cfg.isDefault && cfg.readme && fromSource && !cfg.outDir && existsSync(readme)) {
      const text = readFileSync(readme, 'utf8');
      const block = readmeBlock(report, `${name}.svg`);
      const next = /<!-- bench:start -->[\s\S]*<!-- bench:end -->/.test(text) ? text.replace(/<!-- bench:start -->[\s\S]*<!-- bench:end -->/, () => block) : `${text}\n${block}\n`;
      writeFileSync(readme, next);
      say(`updated ${readme}`);
    }
    if (old) {
      const c = compareReports(old, report, cfg.maxRegression);
      say('\n' + compareText(c));
      return c.failed ? 1 : 0;
    }
    return 0;
  } catch (e) {
    if (e instanceof UsageError || (e instanceof Error && /not a rlhf-kernels-bench|not JSON|ENOENT/.test(e.message))) {
      io.stderr.write(`rlhf-kernels bench: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
