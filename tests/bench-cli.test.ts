/**
 * The benchmark CLI (bench/cli.ts): argument parsing, the plan of a run, the JSON report and its
 * schema, --compare (ratios, exit status past --max-regression), the SVG roofline, the progress
 * bar and the onnxruntime peer (a mock, and the real package when it is installed). Fast: the
 * machine probe is replaced, and the measured calls are tiny with a short --time.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as rk from '../ts/index.js';
import { baseName, loadSpecs, main, parseArgs, planCases, planConfigs, Progress, selectSpecs, type Io } from '../bench/cli.js';
import { dims, specsFromCases, summarize, tokenSizes, vocabSizes, type OpCase } from '../bench/harness.js';
import { measureRoofs, parseBytes, type LlcInfo, type Roofs, type Simd } from '../bench/machine.js';
import { loadOrt, logSoftmaxGatherModel, peerLogSoftmaxGather, setOrtLoader, type OrtLike } from '../bench/peers.js';
import { compareReports, floorOf, markdownTable, panelPoints, residencyOf, rooflineSvg, rowKey, SCHEMA, summaryTable, validateReport, type Report, type Row } from '../bench/report.js';

const MiB = 2 ** 20;
const tmp = mkdtempSync(join(tmpdir(), 'rk-bench-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const fakeRoofs: Roofs = {
  copy: { cache: { 1: 80e9, 2: 150e9 }, dram: { 1: 20e9, 2: 30e9 }, cacheWorkingSet: 8 * MiB, dramWorkingSet: 128 * MiB },
  fma: { avx512: { 1: 200e9, 2: 400e9 }, avx2: { 1: 100e9, 2: 200e9 }, baseline: { 1: 40e9, 2: 80e9 } },
};
const fakeProbe: Io['probe'] = async (llc) => ({
  llc: { bytes: llc ?? 32 * MiB, source: 'test', reported: null, reportedSource: null, measured: null } satisfies LlcInfo,
  roofs: fakeRoofs,
});
function capture() {
  let out = '', err = '';
  const io: Io = { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, probe: fakeProbe };
  return { io, out: () => out, err: () => err };
}

/** Minimal XML well-formedness check: balanced tags, quoted attributes, escaped text. */
function checkXml(s: string) {
  const stack: string[] = [];
  const text = (t: string) => {
    if (/</.test(t)) throw new Error(`raw '<' in text: ${t.slice(0, 40)}`);
    if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(t)) throw new Error(`raw '&' in text: ${t.slice(0, 40)}`);
  };
  const re = /<[^>]*>/g;
  let last = 0;
  for (let m; (m = re.exec(s)); ) {
    text(s.slice(last, m.index));
    last = re.lastIndex;
    const tag = m[0];
    const t = /^<(\/)?([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/)?>$/.exec(tag);
    if (!t) throw new Error(`malformed tag ${tag.slice(0, 60)}`);
    const names = [...t[3].matchAll(/([\w:.-]+)="/g)].map((x) => x[1]);
    if (new Set(names).size !== names.length) throw new Error(`duplicate attribute in ${tag.slice(0, 60)}`);
    for (const v of t[3].matchAll(/="([^"]*)"/g)) text(v[1]);
    if (t[1]) {
      if (stack.pop() !== t[2]) throw new Error(`unbalanced </${t[2]}>`);
    } else if (!t[4]) stack.push(t[2]);
  }
  text(s.slice(last));
  if (stack.length) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (!s.trimStart().startsWith('<svg')) throw new Error('not an svg document');
}

function fakeRow(p: Partial<Row>): Row {
  const r: Row = {
    key: '', family: 'fam', op: 'op', dtype: 'f32', size: '64x8192', residency: 'dram', outputs: 'out', backend: 'cpu', simd: 'avx2', threads: 2,
    bytes: 1e8, flops: 1e8, intensity: 1, floorSeconds: 0.004, bound: 'memory', medianSeconds: 0.01, q1Seconds: 0.009, q3Seconds: 0.011,
    minSeconds: 0.009, maxSeconds: 0.012, samples: 9, rme: 1, gbPerSecond: 10, gflopPerSecond: 10, fractionOfFloor: 0.4, speedupOverJs: null, ...p,
  };
  r.key = rowKey(r);
  return r;
}
function fakeReport(rows: Row[]): Report {
  return {
    schema: SCHEMA, date: '2026-01-01T00:00:00.000Z',
    machine: { cpu: 'Test <CPU> & co', cores: 2, memoryGiB: 8, node: 'v20', platform: 'linux-x64', simdDetected: 'avx512', threads: 2, addonPath: null, cuda: false,
      llc: { bytes: 32 * MiB, source: 'test', reported: null, reportedSource: null, measured: null } },
    roofs: fakeRoofs, config: { command: 'test' }, rows,
  };
}

describe('bench CLI: arguments', () => {
  it("parses the issue's example and lists", () => {
    const c = parseArgs(['--op', 'gae', '--size', '64x8192', '--backend', 'cpu,js', '--threads', '1,2']);
    expect(c.ops).toEqual(['gae']);
    expect(c.sizes).toEqual(['64x8192']);
    expect(c.backends).toEqual(['cpu', 'js']);
    expect(c.threads).toEqual([1, 2]);
    expect(c.isDefault).toBe(false);
    expect(c.outputs).toEqual(['out', 'alloc']);
    expect(c.residency).toEqual(['cache', 'dram']);
  });
  it('accepts --flag=value, repeated flags, SIMD aliases and all', () => {
    const c = parseArgs(['--op=gae', '--op', 'whiten,logprobs', '--simd', 'avx512,avx2,scalar', '--dtype=bf16', '--outputs', 'alloc']);
    expect(c.ops).toEqual(['gae', 'whiten', 'logprobs']);
    expect(c.simd).toEqual(['avx512', 'avx2', 'baseline']);
    expect(c.dtypes).toEqual(['bf16']);
    expect(c.outputs).toEqual(['alloc']);
    expect(c.outputsExplicit).toBe(true);
    expect(parseArgs([]).outputsExplicit).toBe(false);
    expect(parseArgs(['--simd', 'all']).simd).toEqual(['avx512', 'avx2', 'baseline']);
    expect(parseArgs(['--simd', 'avx2,avx2']).simd).toEqual(['avx2']);
  });
  it('has defaults for the main job', () => {
    const c = parseArgs([]);
    expect(c.isDefault).toBe(true);
    expect(c.backends).toEqual(['cpu', 'js']);
    expect(c.simd).toBeNull();
    expect(c.threads).toBeNull();
    expect(c.time).toBe(0.3);
    expect(c.maxRegression).toBe(1.25);
    expect(parseArgs(['--quick']).isDefault).toBe(true);
    expect(parseArgs(['--quick']).time).toBeLessThan(0.3);
    expect(parseArgs(['--no-readme']).readme).toBe(false);
  });
  it('--peers adds the js reference and onnxruntime; --one-thread adds 1 thread', () => {
    expect(parseArgs(['--peers']).backends).toEqual(['cpu', 'js', 'ort']);
    expect(parseArgs(['--backend', 'cpu', '--peers']).backends).toEqual(['cpu', 'js', 'ort']);
    expect(parseArgs(['--threads', '2', '--one-thread']).threads).toEqual([2, 1]);
  });
  it('parses sizes in bytes for --llc', () => {
    expect(parseArgs(['--llc', '32MiB']).llc).toBe(32 * MiB);
    expect(parseBytes('32768K')).toBe(32 * MiB);
    expect(parseBytes('8M')).toBe(8 * MiB);
    expect(parseBytes('1048576')).toBe(MiB);
    expect(parseBytes('lots')).toBeNaN();
  });
  it.each([
    [['--frobnicate'], /unknown option --frobnicate/],
    [['gae'], /unexpected argument 'gae'/],
    [['--op'], /--op needs a value/],
    [['--op', '--size', '1x1'], /--op needs a value/],
    [['--simd', 'avx3'], /--simd: 'avx3' is not one of/],
    [['--backend', 'gpu'], /--backend: 'gpu'/],
    [['--threads', '0'], /--threads: expected a positive integer/],
    [['--threads', '1.5'], /--threads: expected a positive integer/],
    [['--threads', '65'], /at most 64/],
    [['--time', '-1'], /--time: expected a positive number/],
    [['--max-regression', 'x'], /--max-regression/],
    [['--dtype', 'f64'], /--dtype: 'f64'/],
    [['--outputs', 'both'], /--outputs/],
    [['--residency', 'l2'], /--residency/],
    [['--against', 'b.json'], /--against needs --compare/],
    [['--llc', 'big'], /--llc/],
    [['--json=yes'], /takes no value/],
    [['--name', 'a', '--name', 'b'], /--name takes one value/],
    [['--size', '64x8192;rm'], /--size/],
  ])('rejects %j', (argv, msg) => {
    expect(() => parseArgs(argv as string[])).toThrow(msg as RegExp);
  });
  it('main() answers bad arguments with status 2 and --help with 0', async () => {
    const a = capture();
    expect(await main(['--simd', 'avx3'], a.io)).toBe(2);
    expect(a.err()).toMatch(/--simd/);
    const b = capture();
    expect(await main(['--help'], b.io)).toBe(0);
    expect(b.out()).toMatch(/--max-regression/);
    const c = capture();
    expect(await main(['--op', 'nosuchop', '--no-progress'], c.io)).toBe(2);
    expect(c.err()).toMatch(/no op named 'nosuchop'/);
  });
});

describe('bench CLI: families and plan', () => {
  it('discovers every family and each spec makes its cache-resident size', async () => {
    const specs = await loadSpecs();
    const fams = new Set(specs.map((s) => s.family));
    for (const f of ['logprobs', 'rewards', 'advantages', 'preference', 'ppo', 'prepack', 'sampling']) expect(fams.has(f)).toBe(true);
    const llc = 32 * MiB;
    for (const s of specs) {
      const d = s.sizes(llc, 4 * llc);
      expect(d.cache || d.dram || d.other?.length || s.explicitSizes?.length, `${s.op} has sizes`).toBeTruthy();
      if (!d.cache) continue;
      const c = s.make(d.cache, (s.dtypes ?? ['f32'])[0]);
      expect(residencyOf(c.bytes, llc), `${s.family}/${s.op} ${d.cache}`).toBe('cache');
      expect(c.bytes).toBeGreaterThan(0);
      expect(c.flops).toBeGreaterThanOrEqual(0);
      expect(c.out.cpu ?? c.out.js, `${s.op} has calls`).toBeTypeOf('function');
    }
  });
  it('token and vocabulary ops get a DRAM size moving at least 4x the LLC', async () => {
    expect(tokenSizes(17)(32 * MiB, 128 * MiB)).toEqual({ cache: '64x8192', dram: '1024x8192' });
    expect(vocabSizes(4, 4096)(32 * MiB, 128 * MiB)).toEqual({ cache: '128x32000', dram: '4096x32000' });
    expect(vocabSizes(4, 1)(512 * MiB, 2048 * MiB).dram).toBe('16896x32000');
    // the token families, made at a small LLC (256 KiB): the DRAM case is really ≥ 4x it
    const llc = 256 * 1024;
    for (const s of await loadSpecs(['rewards', 'advantages', 'ppo'])) {
      const d = s.sizes(llc, 4 * llc);
      if (!d.dram) continue;
      const c = s.make(d.dram, 'f32');
      expect(residencyOf(c.bytes, llc), `${s.family}/${s.op} ${d.dram}`).toBe('dram');
    }
  });
  it('selects ops by name or base name, and rejects unknown ones', async () => {
    const specs = await loadSpecs(['logprobs']);
    expect(selectSpecs(specs, ['vocabKl']).map((s) => s.op)).toEqual(['vocabKl(reverse)', 'vocabKl(forward)']);
    expect(selectSpecs(specs, ['vocabKl(forward)']).map((s) => s.op)).toEqual(['vocabKl(forward)']);
    expect(baseName('logprobsBackward(lse)')).toBe('logprobsBackward');
    expect(() => selectSpecs(specs, ['nope'])).toThrow(/no op named 'nope'/);
    await expect(loadSpecs(['nofamily'])).rejects.toThrow(/no family 'nofamily'/);
  });
  it('plans dtypes and sizes, grouping cases that share inputs', async () => {
    const specs = selectSpecs(await loadSpecs(['logprobs']), ['logprobs', 'logprobs+entropy']);
    const plan = planCases(specs, { sizes: [], residency: ['cache', 'dram'], dtypes: null }, 32 * MiB);
    const desc = plan.map((c) => `${c.spec.op}|${c.dtype}|${c.size}`);
    // logprobs: f32 and bf16 by default (cache, dram, V split, short rows); entropy: f32 only
    expect(desc.filter((d) => d.startsWith('logprobs|'))).toHaveLength(8);
    expect(desc.filter((d) => d.startsWith('logprobs+entropy|'))).toEqual(['logprobs+entropy|f32|128x32000', 'logprobs+entropy|f32|4096x32000']);
    // run order: the two ops at f32 128x32000 back to back
    const i = desc.indexOf('logprobs|f32|128x32000');
    expect(desc[i + 1]).toBe('logprobs+entropy|f32|128x32000');
    // table order is kept in `order`
    expect([...plan].sort((a, b) => a.order - b.order).map((c) => c.spec.op)).toEqual([...Array(8).fill('logprobs'), 'logprobs+entropy', 'logprobs+entropy']);
    const bf = planCases(specs, { sizes: ['64x1000'], residency: ['cache'], dtypes: ['bf16'] }, 32 * MiB);
    expect(bf.map((c) => `${c.spec.op}|${c.dtype}|${c.size}`)).toEqual(['logprobs|bf16|64x1000']);
  });
  it('plans the configurations of a case: SIMD x threads, alloc at the first level, js once, peers', () => {
    const c: Pick<OpCase, 'out' | 'alloc' | 'peers'> = { out: { cpu: () => 0, js: () => 0 }, alloc: { cpu: () => 0 }, peers: { ort: async () => null } };
    const cfg = planConfigs({ backends: ['cpu', 'js'], outputs: ['out', 'alloc'] }, ['avx512', 'avx2'], [1, 2], c, 2);
    expect(cfg.map((r) => `${r.backend}:${r.simd}:${r.threads}:${r.outputs}`)).toEqual([
      'cpu:avx512:1:out', 'cpu:avx512:1:alloc', 'cpu:avx512:2:out', 'cpu:avx512:2:alloc', 'cpu:avx2:1:out', 'cpu:avx2:2:out', 'js:null:1:out',
    ]);
    const peers = planConfigs({ backends: ['cpu', 'js', 'ort'], outputs: ['out'] }, ['avx2'], [2], c, 2);
    expect(peers.map((r) => r.backend)).toEqual(['cpu', 'js', 'ort']);
    const noAlloc = planConfigs({ backends: ['cpu'], outputs: ['alloc'] }, ['avx2'], [2], { out: { cpu: () => 0 } }, 2);
    expect(noAlloc).toEqual([]);
  });
  it('adapts legacy cases() modules (fixed sizes, FLOPs from extra)', () => {
    const [s] = specsFromCases([{ family: 'linear', op: 'linearLogprobs', size: '8x64', bytes: 100, extra: { flops: 1234 }, run: { cpu: () => 1 } }]);
    expect(s.sizes(1, 4)).toEqual({ other: ['8x64'] });
    expect(s.make('8x64', 'f32').flops).toBe(1234);
    expect(() => s.make('9x64', 'f32')).toThrow(RangeError);
    expect(() => dims('64x', 2, 'BxT')).toThrow(/expected BxT/);
    expect(dims('64x8192', 2, 'BxT')).toEqual([64, 8192]);
  });
});

describe('bench CLI: floor, report and schema', () => {
  it('computes the floor from the roofs of the row', () => {
    expect(residencyOf(10 * MiB, 32 * MiB)).toBe('cache');
    expect(residencyOf(64 * MiB, 32 * MiB)).toBe('mixed');
    expect(residencyOf(128 * MiB, 32 * MiB)).toBe('dram');
    const mem = floorOf(30e9, 1e9, 'dram', fakeRoofs, 'avx2', 2);
    expect(mem.bound).toBe('memory');
    expect(mem.seconds).toBeCloseTo(1, 12); // 30 GB at 30 GB/s
    const comp = floorOf(1e6, 400e9, 'cache', fakeRoofs, 'avx512', 2);
    expect(comp.bound).toBe('compute');
    expect(comp.seconds).toBeCloseTo(1, 12);
    expect(floorOf(150e9, 0, 'cache', fakeRoofs, 'avx512', 2).seconds).toBeCloseTo(1, 12);
  });
  // The probe's real roofs call the addon (copyBandwidth, fmaPeak(iters, reps)): a signature that
  // drifts (another export of the same name) must fail here, not at the first `npm run bench`.
  it.skipIf(!rk.backends().cpu)('measures the real roofs through the addon (tiny working sets)', async () => {
    const r = await measureRoofs(256 * 1024, [1], ['baseline'], true);
    expect(r.copy.dram[1]).toBeGreaterThan(1e8);
    expect(r.copy.cache[1]).toBeGreaterThan(1e8);
    expect(r.fma.baseline![1]).toBeGreaterThan(1e8);
  });
  it('summarizes samples into median and quartiles', () => {
    const t = summarize([5, 1, 3, 2, 4]);
    expect([t.median, t.q1, t.q3, t.min, t.max]).toEqual([3, 2, 4, 1, 5]);
  });

  let report: Report;
  let svg = '';
  it('runs a tiny case end to end and writes a report that validates', async () => {
    const cap = capture();
    const args = ['--op', 'gae,implicitRewards', '--size', '4x256', '--backend', 'cpu,js', '--threads', '1,2', '--simd', 'avx2,baseline', '--time', '0.005', '--out', tmp, '--name', 'tiny', '--json', '--no-progress'];
    expect(await main(args, cap.io)).toBe(0);
    report = JSON.parse(cap.out());
    expect(validateReport(report)).toEqual([]);
    expect(JSON.parse(readFileSync(join(tmp, 'tiny.json'), 'utf8'))).toEqual(report);
    svg = readFileSync(join(tmp, 'tiny.svg'), 'utf8');
    const rows = report.rows;
    // per op: cpu avx2 {1,2} × {out, alloc}, cpu baseline {1,2} out, js = 7 rows
    expect(rows.filter((r) => r.op === 'gae')).toHaveLength(7);
    expect(new Set(rows.map((r) => r.key)).size).toBe(rows.length);
    for (const r of rows) {
      expect(r.medianSeconds).toBeGreaterThan(0);
      expect(r.fractionOfFloor).toBeCloseTo(r.floorSeconds / r.medianSeconds, 12);
      expect(r.gbPerSecond).toBeCloseTo(r.bytes / r.medianSeconds / 1e9, 9);
      expect(r.residency).toBe('cache');
      if (r.backend !== 'js') expect(r.speedupOverJs).toBeGreaterThan(0);
    }
    expect(rows.find((r) => r.op === 'gae')!.bytes).toBe(4 * 256 * 17 + 4 * 4);
    expect(report.config).toMatchObject({ simd: ['avx2', 'baseline'], threads: [1, 2] });
  });
  it('measures fresh outputs at DRAM-resident sizes only when --outputs asks', async () => {
    const base = ['--op', 'gae', '--size', '4x256', '--backend', 'cpu', '--threads', '1', '--simd', 'avx2', '--time', '0.005', '--out', tmp, '--json', '--no-progress', '--llc', '4KiB'];
    const a = capture();
    expect(await main(base, a.io)).toBe(0);
    const rowsA = (JSON.parse(a.out()) as Report).rows;
    expect(rowsA.map((r) => `${r.residency}:${r.outputs}`)).toEqual(['dram:out']);
    const b = capture();
    expect(await main([...base, '--outputs', 'out,alloc'], b.io)).toBe(0);
    expect((JSON.parse(b.out()) as Report).rows.map((r) => `${r.residency}:${r.outputs}`)).toEqual(['dram:out', 'dram:alloc']);
  });
  it('rejects reports that do not follow the schema', () => {
    expect(validateReport(null)).toEqual(['report: not an object']);
    const bad = JSON.parse(JSON.stringify(report));
    bad.schema = 'other/1';
    bad.rows[0].medianSeconds = 'fast';
    bad.rows[1].residency = 'L2';
    bad.rows[2].key = 'tampered';
    delete bad.roofs.copy.dram;
    const errs = validateReport(bad).join('\n');
    expect(errs).toMatch(/schema: expected 'rlhf-kernels-bench\/1'/);
    expect(errs).toMatch(/rows\[0\]\.medianSeconds: expected a number/);
    expect(errs).toMatch(/rows\[1\]\.residency/);
    expect(errs).toMatch(/rows\[2\]\.key: does not match/);
    expect(errs).toMatch(/roofs\.copy\.dram/);
  });
  it('writes a well-formed SVG with one point per op in each SIMD panel', () => {
    checkXml(svg);
    const panels = svg.split('<g class="panel"').slice(1);
    expect(panels.map((p) => /data-simd="(\w+)"/.exec(p)![1])).toEqual(['avx2', 'baseline']);
    for (const p of panels) {
      const ops = [...p.matchAll(/<circle class="point" data-op="([^"]+)"/g)].map((m) => m[1]);
      expect(ops.sort()).toEqual(['advantages/gae|f32', 'rewards/implicitRewards|f32']);
      expect(p).toMatch(/class="roof roof-dram"/);
      expect(p).toMatch(/class="roof roof-cache"/);
    }
  });
  it('SVG: one point per op and dtype, DRAM-resident rows preferred, text escaped', () => {
    const rows = [
      fakeRow({ op: 'a', residency: 'cache', size: '1x1' }),
      fakeRow({ op: 'a', residency: 'dram', size: '9x9' }),
      fakeRow({ op: 'a', dtype: 'bf16' }),
      fakeRow({ op: 'b<&>', flops: 0, intensity: 0 }),
      fakeRow({ op: 'a', simd: 'avx512' }),
      fakeRow({ op: 'a', backend: 'js', simd: null, threads: 1 }),
      fakeRow({ op: 'c', outputs: 'alloc' }),
      fakeRow({ op: 'd', threads: 1 }),
    ];
    expect(panelPoints(rows, 'avx2').map((r) => `${r.op}|${r.dtype}|${r.size}`).sort()).toEqual(['a|bf16|64x8192', 'a|f32|9x9', 'b<&>|f32|64x8192']);
    const s = rooflineSvg(fakeReport(rows));
    checkXml(s);
    expect(s.match(/<circle class="point"/g)).toHaveLength(4); // 3 in the avx2 panel, 1 in the avx512 panel
    expect(s).toContain('b&lt;&amp;&gt;');
  });
});

describe('bench CLI: tables', () => {
  it('the full table has a line per row; the summary one per op, dtype and size with a column per SIMD level', () => {
    const rows = [
      fakeRow({ op: 'a', simd: 'avx512', medianSeconds: 0.001, fractionOfFloor: 0.9 }),
      fakeRow({ op: 'a', simd: 'avx2', medianSeconds: 0.002, fractionOfFloor: 0.45 }),
      fakeRow({ op: 'a', simd: 'avx512', outputs: 'alloc', medianSeconds: 0.005 }),
      fakeRow({ op: 'a', simd: 'avx512', threads: 1, medianSeconds: 0.0015 }),
      fakeRow({ op: 'a', backend: 'js', simd: null, threads: 1, medianSeconds: 0.1 }),
      fakeRow({ op: 'b', simd: 'avx2', size: '1x64' }),
    ];
    expect(markdownTable(rows).split('\n')).toHaveLength(2 + rows.length);
    const t = summaryTable(rows).split('\n');
    expect(t[0]).toMatch(/\| avx512 2t \| avx2 2t \|/);
    expect(t).toHaveLength(4);
    expect(t[2]).toMatch(/^\| fam\/a \| f32 \| 64x8192 \| dram \|.*\| 1\.00 ms \(90%\) \| 2\.00 ms \(45%\) \| memory \| 5\.00 ms \| 100\.00 ms \|/);
    expect(t[3]).toMatch(/^\| fam\/b \| f32 \| 1x64 \|.*\| – \| 10\.00 ms \(40%\) \|/);
  });
});

it('lists the ops furthest from their floor once each, leaving per-call-overhead rows out', async () => {
  const { furthest } = await import('../bench/report.js');
  const rows = [
    fakeRow({ op: 'a', size: '1x1', fractionOfFloor: 0.1 }),
    fakeRow({ op: 'a', size: '2x2', fractionOfFloor: 0.05 }),
    fakeRow({ op: 'b', fractionOfFloor: 0.2 }),
    fakeRow({ op: 'tiny', fractionOfFloor: 0.01, floorSeconds: 1e-6 }),
    fakeRow({ op: 'c', fractionOfFloor: 0.01, outputs: 'alloc' }),
  ];
  expect(furthest(rows, 5).map((r) => `${r.op} ${r.size}`)).toEqual(['a 2x2', 'b 64x8192']);
});

describe('bench CLI: --compare', () => {
  const base = [fakeRow({ op: 'a', medianSeconds: 0.01 }), fakeRow({ op: 'b', medianSeconds: 0.02 }), fakeRow({ op: 'gone' })];
  const next = [fakeRow({ op: 'a', medianSeconds: 0.012 }), fakeRow({ op: 'b', medianSeconds: 0.01 }), fakeRow({ op: 'new' })];
  it('prints new/old per row and fails past the ratio', () => {
    const c = compareReports(fakeReport(base), fakeReport(next), 1.1);
    expect(c.rows.map((r) => [r.label.split(' ')[0], +r.ratio.toFixed(3), r.regressed])).toEqual([['fam/a', 1.2, true], ['fam/b', 0.5, false]]);
    expect(c.failed).toBe(true);
    expect(c.worst!.key).toBe(base[0].key);
    expect(c.onlyOld).toEqual([base[2].key]);
    expect(c.onlyNew).toEqual([next[2].key]);
    expect(compareReports(fakeReport(base), fakeReport(next), 1.25).failed).toBe(false);
    // rows differing in SIMD level, threads or outputs are different rows
    const other = [fakeRow({ op: 'a', simd: 'avx512', medianSeconds: 1 }), fakeRow({ op: 'a', threads: 1, medianSeconds: 1 }), fakeRow({ op: 'a', outputs: 'alloc', medianSeconds: 1 })];
    expect(compareReports(fakeReport(base), fakeReport(other), 1.1).rows).toEqual([]);
  });
  it('exits 1 past --max-regression, 0 within, 2 on unreadable reports', async () => {
    const a = join(tmp, 'old.json'), b = join(tmp, 'new.json'), bad = join(tmp, 'bad.json');
    writeFileSync(a, JSON.stringify(fakeReport(base)));
    writeFileSync(b, JSON.stringify(fakeReport(next)));
    writeFileSync(bad, JSON.stringify({ schema: 'nope' }));
    const r1 = capture();
    expect(await main(['--compare', a, '--against', b, '--max-regression', '1.1'], r1.io)).toBe(1);
    expect(r1.out()).toMatch(/1\.200 \*\*REGRESSION\*\*/);
    expect(r1.out()).toMatch(/FAIL: 1 row\(s\) slower than 1\.1×/);
    const r2 = capture();
    expect(await main(['--compare', a, '--against', b, '--max-regression', '1.3'], r2.io)).toBe(0);
    expect(r2.out()).toMatch(/ok: no row slower than 1\.3×/);
    const r3 = capture();
    expect(await main(['--compare', bad, '--against', b], r3.io)).toBe(2);
    expect(r3.err()).toMatch(/not a rlhf-kernels-bench\/1 report/);
    const r4 = capture();
    expect(await main(['--compare', join(tmp, 'missing.json'), '--against', b], r4.io)).toBe(2);
  });
  it('compares a fresh run against a saved one and fails on a slowed-down row', async () => {
    const args = ['--op', 'implicitRewards', '--size', '4x256', '--backend', 'cpu', '--threads', '1', '--simd', 'avx2', '--outputs', 'out', '--time', '0.005', '--out', tmp, '--no-progress'];
    const first = capture();
    expect(await main([...args, '--name', 'base', '--json'], first.io)).toBe(0);
    const old = JSON.parse(first.out()) as Report;
    // pretend the saved run was 100x faster: the fresh one is a regression
    const fast = { ...old, rows: old.rows.map((r) => ({ ...r, medianSeconds: r.medianSeconds / 100 })) };
    writeFileSync(join(tmp, 'fast.json'), JSON.stringify(fast));
    const second = capture();
    expect(await main([...args, '--name', 'again', '--compare', join(tmp, 'fast.json'), '--max-regression', '2'], second.io)).toBe(1);
    expect(second.out()).toMatch(/REGRESSION/);
  });
});

describe('bench CLI: progress and peers', () => {
  it('draws a bar on a terminal and plain lines otherwise', () => {
    let tty = '';
    const p = new Progress(2, { write: (s: string) => (tty += s), isTTY: true }, true);
    p.bar('gae 64x8192');
    p.row('row one');
    p.bar('next');
    p.end();
    expect(tty).toMatch(/\r\x1b\[K\[\.{24}\] 0\/2 0:00 gae 64x8192/);
    expect(tty).toMatch(/row one\n/);
    expect(tty).toMatch(/\[#{12}\.{12}\] 1\/2/);
    let plain = '';
    const q = new Progress(2, { write: (s: string) => (plain += s) }, true);
    q.bar('x');
    q.row('row one');
    expect(plain).toBe('[1/2 0:00] row one\n');
  });

  it('encodes the log-softmax + gather ONNX graph and runs it through the onnxruntime API (mock)', async () => {
    const model = logSoftmaxGatherModel();
    const text = new TextDecoder('latin1').decode(model);
    for (const s of ['LogSoftmax', 'GatherElements', 'logits', 'labels', 'logp', 'axis']) expect(text).toContain(s);
    let fed: Record<string, { type: string; data: unknown; dims: number[] }> = {};
    const mock: OrtLike = {
      InferenceSession: {
        create: async (m: Uint8Array) => {
          expect(m).toEqual(model);
          return { run: async (feeds: Record<string, unknown>) => ((fed = feeds as typeof fed), { logp: { data: new Float32Array(2) } }) };
        },
      },
      Tensor: class {
        constructor(public type: string, public data: unknown, public dims: number[]) {}
      },
    };
    setOrtLoader(async () => mock);
    const logits = new Float32Array(6);
    const call = await peerLogSoftmaxGather(logits, Int32Array.from([2, 0]), 2, 3);
    await call!();
    expect(fed.logits).toMatchObject({ type: 'float32', dims: [2, 3] });
    expect(fed.logits.data).toBe(logits); // zero-copy
    expect(fed.labels).toMatchObject({ type: 'int64', dims: [2, 1] });
    expect([...(fed.labels.data as BigInt64Array)]).toEqual([2n, 0n]);
    // not installed: the peer is skipped with a note, the run succeeds
    setOrtLoader(async () => null);
    expect(await peerLogSoftmaxGather(logits, Int32Array.from([2, 0]), 2, 3)).toBeNull();
    const cap = capture();
    const args = ['--op', 'logprobs', '--size', '4x100', '--dtype', 'f32', '--backend', 'cpu', '--peers', '--simd', 'avx2', '--threads', '1', '--outputs', 'out', '--time', '0.005', '--out', tmp, '--json'];
    expect(await main(args, cap.io)).toBe(0);
    expect(cap.err()).toMatch(/onnxruntime-node is not installed/);
    expect((JSON.parse(cap.out()) as Report).rows.map((r) => r.backend)).toEqual(['cpu', 'js']);
    setOrtLoader(null);
  });

  // Runs only where onnxruntime-node is installed (it is an optional peer, not a dependency).
  it('onnxruntime-node (when installed) computes the same log-probs as the package', async () => {
    const ort = await loadOrt();
    if (!ort) return void console.warn('onnxruntime-node not installed: real-peer check not run (the mock test covers the code path)');
    const N = 5, V = 37;
    const x = Float32Array.from({ length: N * V }, (_, i) => 3 * Math.sin(i * 1.7));
    const labels = Int32Array.from([0, 36, 5, 17, 2]);
    const call = await peerLogSoftmaxGather(x, labels, N, V);
    const out = (await call!()) as Record<string, { data: Float32Array }>;
    const ref = rk.logprobs({ logits: rk.tensor(x, [N, V]), labels: rk.tensor(labels, [N]) }, { backend: 'js' }).logp.data;
    for (let i = 0; i < N; i++) expect(out.logp.data[i]).toBeCloseTo(ref[i], 5);
  });
});

// (the SIMD names the CLI uses and the addon's agree)
it('SIMD levels the CLI names are the ones the addon forces', () => {
  const levels: Simd[] = ['avx512', 'avx2', 'baseline'];
  if (!rk.backends().cpu) return;
  const was = rk.backends().simd as 'avx512' | 'avx2' | 'scalar';
  try {
    for (const l of levels) expect(['avx512', 'avx2', 'scalar']).toContain(rk.setSimd(l === 'baseline' ? 'scalar' : l));
  } finally {
    rk.setSimd(was);
  }
});

it('finds the LLC at the knee of a copy-bandwidth sweep, also when every bandwidth is scaled down', async () => {
  const { llcFromSweep } = await import('../bench/machine.js');
  // measured here on a busy machine (AMD EPYC VM, a 32 MiB L3 slice; the OS reports 508 MiB):
  // one-thread copy GB/s per working set (MiB), noisy at 128 MiB
  const sweep = [[2, 96.4], [4, 94.2], [8, 96.7], [16, 80.8], [32, 52.5], [64, 29.4], [128, 38.6], [256, 20.9], [512, 17.9], [1024, 20.2]];
  const pts = sweep.map(([mib, bw]) => ({ ws: mib * MiB, bw }));
  expect(llcFromSweep(pts)).toBe(32 * MiB);
  expect(llcFromSweep(pts.map((p) => ({ ws: p.ws, bw: p.bw * 0.4 })))).toBe(32 * MiB);
  // other tenants' memory traffic: the DRAM end falls, the cache plateau does not
  expect(llcFromSweep(pts.map((p) => ({ ws: p.ws, bw: p.ws >= 64 * MiB ? p.bw * 0.5 : p.bw })))).toBe(32 * MiB);
  expect(llcFromSweep(pts.map((p) => ({ ws: p.ws, bw: 30 })))).toBeNull();
  expect(llcFromSweep(pts.slice(0, 3))).toBeNull();
});
