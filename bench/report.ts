/**
 * Reports of a benchmark run: the JSON document (schema `rlhf-kernels-bench/1`, checked by
 * validateReport), the Markdown table, the comparison against an earlier report, and the SVG
 * roofline (arithmetic intensity vs achieved FLOP rate, one point per op, the machine's roofs).
 */
import type { BackendName, Dtype, Outputs, Residency } from './harness.js';
import type { MachineInfo, Roofs, Simd } from './machine.js';

export const SCHEMA = 'rlhf-kernels-bench/1';

export interface Row {
  /** family/op|dtype|size|outputs|backend|simd|threads: what --compare matches on */
  key: string;
  family: string;
  op: string;
  dtype: Dtype;
  size: string;
  residency: Residency;
  outputs: Outputs;
  backend: BackendName;
  /** SIMD level of the cpu backend (null for the others) */
  simd: Simd | null;
  threads: number;
  bytes: number;
  flops: number;
  /** FLOPs per byte (0 for ops without floating-point work) */
  intensity: number;
  /** max(bytes / copy bandwidth, FLOPs / FMA peak) with the roofs of this row */
  floorSeconds: number;
  bound: 'memory' | 'compute';
  medianSeconds: number;
  q1Seconds: number;
  q3Seconds: number;
  minSeconds: number;
  maxSeconds: number;
  samples: number;
  rme: number | null;
  gbPerSecond: number;
  gflopPerSecond: number;
  /** floor / median: 1 = at the floor */
  fractionOfFloor: number;
  speedupOverJs: number | null;
  note?: string;
  extra?: Record<string, number | string>;
}

export interface Report {
  schema: typeof SCHEMA;
  date: string;
  machine: MachineInfo;
  roofs: Roofs;
  config: Record<string, unknown>;
  rows: Row[];
}

export const rowKey = (r: Pick<Row, 'family' | 'op' | 'dtype' | 'size' | 'outputs' | 'backend' | 'simd' | 'threads'>) =>
  `${r.family}/${r.op}|${r.dtype}|${r.size}|${r.outputs}|${r.backend}|${r.simd ?? '-'}|${r.threads}`;

export function residencyOf(bytes: number, llc: number): Residency {
  return bytes <= llc ? 'cache' : bytes >= 4 * llc ? 'dram' : 'mixed';
}

/** The floor of one call: its bytes at the copy roof of its residency, its FLOPs at the FMA peak. */
export function floorOf(bytes: number, flops: number, residency: Residency, roofs: Roofs, simd: Simd, threads: number) {
  const bw = (residency === 'cache' ? roofs.copy.cache : roofs.copy.dram)[threads];
  const peak = roofs.fma[simd]?.[threads];
  const mem = bw ? bytes / bw : 0;
  const comp = peak ? flops / peak : 0;
  return { seconds: Math.max(mem, comp), bound: (mem >= comp ? 'memory' : 'compute') as 'memory' | 'compute' };
}

// ----- validation -------------------------------------------------------------------------

const num = (v: unknown) => typeof v === 'number' && !Number.isNaN(v);
const str = (v: unknown) => typeof v === 'string';

/** Errors of a parsed report (empty when it conforms to rlhf-kernels-bench/1). */
export function validateReport(x: unknown): string[] {
  const e: string[] = [];
  if (!x || typeof x !== 'object') return ['report: not an object'];
  const r = x as Record<string, unknown>;
  if (r.schema !== SCHEMA) e.push(`schema: expected '${SCHEMA}', got ${JSON.stringify(r.schema)}`);
  if (!str(r.date)) e.push('date: expected a string');
  const m = r.machine as Record<string, unknown> | undefined;
  if (!m || typeof m !== 'object') e.push('machine: expected an object');
  else {
    for (const k of ['cpu', 'node', 'platform', 'simdDetected']) if (!str(m[k])) e.push(`machine.${k}: expected a string`);
    for (const k of ['cores', 'threads']) if (!num(m[k])) e.push(`machine.${k}: expected a number`);
    const l = m.llc as Record<string, unknown> | undefined;
    if (!l || !num(l.bytes) || !str(l.source)) e.push('machine.llc: expected { bytes, source, ... }');
  }
  const roofs = r.roofs as Record<string, Record<string, unknown>> | undefined;
  if (!roofs || typeof roofs.copy !== 'object' || typeof roofs.fma !== 'object') e.push('roofs: expected { copy, fma }');
  else {
    for (const k of ['cache', 'dram']) {
      const o = roofs.copy[k] as Record<string, unknown> | undefined;
      if (!o || typeof o !== 'object' || !Object.values(o).every(num)) e.push(`roofs.copy.${k}: expected { threads: bytes/s }`);
    }
    for (const [s, o] of Object.entries(roofs.fma))
      if (!o || typeof o !== 'object' || !Object.values(o as object).every(num)) e.push(`roofs.fma.${s}: expected { threads: FLOP/s }`);
  }
  if (!r.config || typeof r.config !== 'object') e.push('config: expected an object');
  if (!Array.isArray(r.rows)) e.push('rows: expected an array');
  else
    r.rows.forEach((row: Record<string, unknown>, i: number) => {
      const p = `rows[${i}]`;
      if (!row || typeof row !== 'object') return void e.push(`${p}: expected an object`);
      for (const k of ['key', 'family', 'op', 'dtype', 'size', 'residency', 'outputs', 'backend', 'bound'])
        if (!str(row[k])) e.push(`${p}.${k}: expected a string`);
      for (const k of ['threads', 'bytes', 'flops', 'intensity', 'floorSeconds', 'medianSeconds', 'q1Seconds', 'q3Seconds', 'minSeconds', 'maxSeconds', 'samples', 'gbPerSecond', 'gflopPerSecond', 'fractionOfFloor'])
        if (!num(row[k])) e.push(`${p}.${k}: expected a number`);
      if (!['cache', 'mixed', 'dram'].includes(row.residency as string)) e.push(`${p}.residency: expected cache | mixed | dram`);
      if (!['out', 'alloc'].includes(row.outputs as string)) e.push(`${p}.outputs: expected out | alloc`);
      if (row.simd !== null && !str(row.simd)) e.push(`${p}.simd: expected a string or null`);
      if (row.speedupOverJs !== null && !num(row.speedupOverJs)) e.push(`${p}.speedupOverJs: expected a number or null`);
      if (num(row.medianSeconds) && !((row.medianSeconds as number) > 0)) e.push(`${p}.medianSeconds: expected > 0`);
      if (str(row.key) && row.key !== rowKey(row as unknown as Row)) e.push(`${p}.key: does not match the row's fields`);
    });
  return e;
}

/** Parses and validates a report file's text; throws an Error listing what is wrong. */
export function parseReport(text: string, name: string): Report {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (err) {
    throw new Error(`${name}: not JSON (${(err as Error).message})`);
  }
  const errs = validateReport(x);
  if (errs.length) throw new Error(`${name}: not a ${SCHEMA} report:\n  ${errs.slice(0, 8).join('\n  ')}${errs.length > 8 ? `\n  … ${errs.length - 8} more` : ''}`);
  return x as Report;
}

// ----- text -------------------------------------------------------------------------------

export const fmtTime = (s: number) =>
  !Number.isFinite(s) ? '–' : s < 1e-3 ? `${(s * 1e6).toFixed(1)} µs` : s < 1 ? `${(s * 1e3).toFixed(2)} ms` : `${s.toFixed(2)} s`;
const fmtNum = (x: number, d = 1) => (!Number.isFinite(x) ? '–' : x >= 100 ? x.toFixed(0) : x.toFixed(d));
export const backendLabel = (r: Pick<Row, 'backend' | 'simd' | 'threads'>) =>
  r.backend === 'cpu' ? `cpu ${r.simd} ${r.threads}t` : r.backend === 'js' ? 'js' : r.backend;
/** Spread as ± half the interquartile range, in % of the median. */
export const spreadPct = (r: Pick<Row, 'q1Seconds' | 'q3Seconds' | 'medianSeconds'>) => (50 * (r.q3Seconds - r.q1Seconds)) / r.medianSeconds;

export function markdownTable(rows: Row[]): string {
  const lines = [
    '| op | dtype | size | resident | outputs | backend | MB | MFLOP | floor | median | ± | GB/s | GFLOP/s | of floor | bound | × js |',
    '|---|---|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|',
  ];
  for (const r of rows)
    lines.push(
      `| ${r.family}/${r.op} | ${r.dtype} | ${r.size} | ${r.residency} | ${r.outputs} | ${backendLabel(r)} | ${fmtNum(r.bytes / 1e6)} | ${fmtNum(r.flops / 1e6)} | ` +
        `${fmtTime(r.floorSeconds)} | ${fmtTime(r.medianSeconds)} | ${r.samples > 1 ? fmtNum(spreadPct(r)) + '%' : '–'} | ${fmtNum(r.gbPerSecond)} | ` +
        `${fmtNum(r.gflopPerSecond)} | ${(100 * r.fractionOfFloor).toFixed(0)}% | ${r.bound} | ${r.speedupOverJs ? fmtNum(r.speedupOverJs) : '–'} |`,
    );
  return lines.join('\n');
}

/**
 * One line per op, dtype and size: the cpu backend at the run's largest thread count, `out`
 * buffers, with one "median (fraction of floor)" column per SIMD level, then the allocating
 * call, the js reference and the speed-up over it (bench/README.md's table).
 */
export function summaryTable(rows: Row[]): string {
  const cpu = rows.filter((r) => r.backend === 'cpu');
  const threads = cpu.length ? Math.max(...cpu.map((r) => r.threads)) : 1;
  const order: Simd[] = ['avx512', 'avx2', 'baseline'];
  const levels = order.filter((s) => cpu.some((r) => r.simd === s));
  const groups = new Map<string, Row[]>();
  for (const r of rows) {
    const k = `${r.family}/${r.op}|${r.dtype}|${r.size}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(r);
  }
  const cell = (r?: Row) => (r ? `${fmtTime(r.medianSeconds)} (${(100 * r.fractionOfFloor).toFixed(0)}%)` : '–');
  const lines = [
    `| op | dtype | size | resident | MB | MFLOP | floor | ${levels.map((l) => `${l} ${threads}t`).join(' | ')} | bound | alloc | js | × js |`,
    `|---|---|---|---|--:|--:|--:|${levels.map(() => '--:|').join('')}---|--:|--:|--:|`,
  ];
  for (const g of groups.values()) {
    const at = (simd: Simd, outputs: Outputs) => g.find((r) => r.backend === 'cpu' && r.simd === simd && r.threads === threads && r.outputs === outputs);
    const best = levels.map((l) => at(l, 'out')).find(Boolean);
    const alloc = levels.map((l) => at(l, 'alloc')).find(Boolean);
    const js = g.find((r) => r.backend === 'js');
    const r0 = best ?? g[0];
    lines.push(
      `| ${r0.family}/${r0.op} | ${r0.dtype} | ${r0.size} | ${r0.residency} | ${fmtNum(r0.bytes / 1e6)} | ${fmtNum(r0.flops / 1e6)} | ${best ? fmtTime(best.floorSeconds) : '–'} | ` +
        `${levels.map((l) => cell(at(l, 'out'))).join(' | ')} | ${best?.bound ?? '–'} | ${alloc ? fmtTime(alloc.medianSeconds) : '–'} | ` +
        `${js ? fmtTime(js.medianSeconds) : '–'} | ${best?.speedupOverJs ? fmtNum(best.speedupOverJs) : '–'} |`,
    );
  }
  return lines.join('\n');
}

/** One progress/console line per row. */
export function rowLine(r: Row): string {
  return `${r.family}/${r.op} ${r.dtype} ${r.size} (${r.residency}, ${r.outputs}) ${backendLabel(r)}: ${fmtTime(r.medianSeconds)} ±${fmtNum(spreadPct(r))}%, ` +
    `${fmtNum(r.gbPerSecond)} GB/s, ${fmtNum(r.gflopPerSecond)} GFLOP/s, ${(100 * r.fractionOfFloor).toFixed(0)}% of floor (${r.bound})` +
    (r.speedupOverJs ? `, ×${fmtNum(r.speedupOverJs)} vs js` : '');
}

export function roofLines(rep: Pick<Report, 'machine' | 'roofs'>): string[] {
  const { machine: m, roofs } = rep;
  const per = (o: Record<string, number>, unit: number, u: string) =>
    Object.entries(o).map(([t, v]) => `${(v / unit).toFixed(1)} ${u} (${t}t)`).join(', ');
  const fmtB = (b: number) => (b >= 2 ** 20 ? `${+(b / 2 ** 20).toFixed(1)} MiB` : `${+(b / 1024).toFixed(0)} KiB`);
  return [
    `machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.platform}, node ${m.node}, SIMD detected ${m.simdDetected}`,
    `last-level cache: ${fmtB(m.llc.bytes)} (${m.llc.source})${m.llc.measured ? `; copy sweep knee ${fmtB(m.llc.measured)}` : ''}`,
    `copy bandwidth (read + write), DRAM-resident (${fmtB(roofs.copy.dramWorkingSet)}): ${per(roofs.copy.dram, 1e9, 'GB/s')}`,
    `copy bandwidth, cache-resident (${fmtB(roofs.copy.cacheWorkingSet)}): ${per(roofs.copy.cache, 1e9, 'GB/s')}`,
    ...Object.entries(roofs.fma).map(([s, o]) => `FMA peak ${s}: ${per(o as Record<string, number>, 1e9, 'GFLOP/s')}`),
  ];
}

/**
 * The rows furthest from their floor (cpu backend, `out` buffers), lowest fraction first, each op
 * and dtype once. Rows whose floor is under `minFloor` seconds are left out: their time is the
 * per-call overhead.
 */
export function furthest(rows: Row[], n: number, minFloor = 20e-6): Row[] {
  const seen = new Set<string>();
  return rows
    .filter((r) => r.backend === 'cpu' && r.outputs === 'out' && r.floorSeconds >= minFloor)
    .sort((a, b) => a.fractionOfFloor - b.fractionOfFloor)
    .filter((r) => !seen.has(`${r.family}/${r.op}|${r.dtype}`) && !!seen.add(`${r.family}/${r.op}|${r.dtype}`)) // each op once, at its worst size
    .slice(0, n);
}

// ----- compare ----------------------------------------------------------------------------

export interface CompareRow {
  key: string;
  label: string;
  oldSeconds: number;
  newSeconds: number;
  /** new / old median time: > 1 is slower */
  ratio: number;
  regressed: boolean;
}
export interface Comparison {
  rows: CompareRow[];
  onlyOld: string[];
  onlyNew: string[];
  maxRegression: number;
  worst: CompareRow | null;
  failed: boolean;
}

export function compareReports(oldRep: Report, newRep: Report, maxRegression: number): Comparison {
  const old = new Map(oldRep.rows.map((r) => [r.key, r]));
  const rows: CompareRow[] = [];
  const onlyNew: string[] = [];
  for (const r of newRep.rows) {
    const o = old.get(r.key);
    if (!o) {
      onlyNew.push(r.key);
      continue;
    }
    const ratio = r.medianSeconds / o.medianSeconds;
    rows.push({
      key: r.key,
      label: `${r.family}/${r.op} ${r.dtype} ${r.size} ${r.outputs} ${backendLabel(r)}`,
      oldSeconds: o.medianSeconds,
      newSeconds: r.medianSeconds,
      ratio,
      regressed: ratio > maxRegression,
    });
  }
  const seen = new Set(newRep.rows.map((r) => r.key));
  const onlyOld = oldRep.rows.filter((r) => !seen.has(r.key)).map((r) => r.key);
  const worst = rows.reduce<CompareRow | null>((w, r) => (!w || r.ratio > w.ratio ? r : w), null);
  return { rows, onlyOld, onlyNew, maxRegression, worst, failed: rows.some((r) => r.regressed) };
}

export function compareText(c: Comparison): string {
  const lines = ['| row | old | new | new/old |', '|---|--:|--:|--:|'];
  for (const r of c.rows)
    lines.push(`| ${r.label} | ${fmtTime(r.oldSeconds)} | ${fmtTime(r.newSeconds)} | ${r.ratio.toFixed(3)}${r.regressed ? ' **REGRESSION**' : ''} |`);
  if (c.onlyNew.length) lines.push('', `only in the new run: ${c.onlyNew.length} row(s)`);
  if (c.onlyOld.length) lines.push('', `only in the old run: ${c.onlyOld.length} row(s)`);
  lines.push(
    '',
    c.failed
      ? `FAIL: ${c.rows.filter((r) => r.regressed).length} row(s) slower than ${c.maxRegression}× (worst ${c.worst!.label}: ${c.worst!.ratio.toFixed(3)}×)`
      : c.rows.length
        ? `ok: no row slower than ${c.maxRegression}× (worst ${c.worst!.ratio.toFixed(3)}×)`
        : 'nothing to compare: no row of the new run is in the old one',
  );
  return lines.join('\n');
}

// ----- SVG roofline -----------------------------------------------------------------------

export const escapeXml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');

/** One point per op (and dtype) of a panel: the DRAM-resident row when there is one, else the largest. */
export function panelPoints(rows: Row[], simd: Simd): Row[] {
  const cand = rows.filter((r) => r.backend === 'cpu' && r.simd === simd && r.outputs === 'out');
  if (!cand.length) return [];
  const threads = Math.max(...cand.map((r) => r.threads));
  const rank = { dram: 2, mixed: 1, cache: 0 } as const;
  const best = new Map<string, Row>();
  for (const r of cand) {
    if (r.threads !== threads) continue;
    const k = `${r.family}/${r.op}|${r.dtype}`;
    const b = best.get(k);
    if (!b || rank[r.residency] > rank[b.residency] || (rank[r.residency] === rank[b.residency] && r.bytes > b.bytes)) best.set(k, r);
  }
  return [...best.values()];
}

/** The SVG roofline of a report: one panel per SIMD level measured on the cpu backend. */
export function rooflineSvg(rep: Report): string {
  const levels = [...new Set(rep.rows.filter((r) => r.backend === 'cpu' && r.simd).map((r) => r.simd as Simd))];
  const W = 1180, PH = 520, plotW = 620, plotH = 400, left = 70, top = 50;
  const H = 60 + Math.max(1, levels.length) * PH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<title>rlhf-kernels roofline, ${escapeXml(rep.machine.cpu)}, ${escapeXml(rep.date)}</title>`);
  out.push('<rect width="100%" height="100%" fill="#fff"/>');
  out.push(`<text x="20" y="28" font-size="16" font-weight="bold">rlhf-kernels roofline: ${escapeXml(rep.machine.cpu)}, ${rep.machine.cores} cores, LLC ${(rep.machine.llc.bytes / 2 ** 20).toFixed(0)} MiB, ${escapeXml(rep.date.slice(0, 10))}</text>`);
  out.push(`<text x="20" y="46" fill="#555">x: FLOPs per byte moved; y: achieved GFLOP/s. Filled: DRAM-resident size; hollow: cache-resident. Ops with no FLOPs sit on the left edge at their fraction of the memory roof.</text>`);
  levels.forEach((simd, pi) => {
    const pts = panelPoints(rep.rows, simd);
    if (!pts.length) return;
    const threads = pts[0].threads;
    const peak = rep.roofs.fma[simd]?.[threads] ?? NaN;
    const bwD = rep.roofs.copy.dram[threads] ?? NaN, bwC = rep.roofs.copy.cache[threads] ?? NaN;
    const withFlops = pts.filter((p) => p.flops > 0);
    const ridge = peak / bwD;
    let xMin = 2 ** Math.floor(Math.log2(Math.min(peak / bwC / 16, ...withFlops.map((p) => p.intensity))));
    const xMax = 2 ** Math.ceil(Math.log2(Math.max(ridge * 4, ...withFlops.map((p) => p.intensity * 2))));
    if (!(xMin > 0)) xMin = 1 / 64;
    const yOf = (p: Row) => (p.flops > 0 ? p.gflopPerSecond * 1e9 : p.gbPerSecond * 1e9 * xMin);
    const ys = pts.map(yOf).filter((y) => y > 0);
    const yMax = 10 ** Math.ceil(Math.log10(Math.max(peak * 1.5, ...ys)));
    const yMin = 10 ** Math.floor(Math.log10(Math.min(bwD * xMin, ...ys) / 2));
    const oy = 60 + pi * PH + top;
    const X = (x: number) => left + ((Math.log2(x) - Math.log2(xMin)) / (Math.log2(xMax) - Math.log2(xMin))) * plotW;
    const Y = (y: number) => oy + plotH - ((Math.log10(y) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * plotH;
    const f = (v: number) => v.toFixed(1);
    out.push(`<g class="panel" data-simd="${simd}" data-threads="${threads}">`);
    out.push(`<text x="${left}" y="${oy - 12}" font-size="14" font-weight="bold">cpu ${simd}, ${threads} thread${threads > 1 ? 's' : ''}: FMA peak ${(peak / 1e9).toFixed(0)} GFLOP/s, copy ${(bwD / 1e9).toFixed(1)} GB/s (DRAM), ${(bwC / 1e9).toFixed(1)} GB/s (cache)</text>`);
    out.push(`<rect x="${left}" y="${oy}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`);
    for (let e = Math.ceil(Math.log2(xMin)); e <= Math.log2(xMax); e++) {
      const x = X(2 ** e);
      out.push(`<line x1="${f(x)}" y1="${oy}" x2="${f(x)}" y2="${oy + plotH}" stroke="#eee"/>`);
      if (e % 2 === 0 || Math.log2(xMax / xMin) <= 12)
        out.push(`<text x="${f(x)}" y="${oy + plotH + 16}" text-anchor="middle" fill="#444">${e >= 0 ? 2 ** e : `1/${2 ** -e}`}</text>`);
    }
    for (let e = Math.log10(yMin); e <= Math.log10(yMax) + 1e-9; e++) {
      const y = Y(10 ** e);
      out.push(`<line x1="${left}" y1="${f(y)}" x2="${left + plotW}" y2="${f(y)}" stroke="#eee"/>`);
      out.push(`<text x="${left - 6}" y="${f(y + 4)}" text-anchor="end" fill="#444">${10 ** e / 1e9 >= 1 ? (10 ** e / 1e9).toFixed(0) : (10 ** e / 1e9).toPrecision(1)}</text>`);
    }
    out.push(`<text x="${left + plotW / 2}" y="${oy + plotH + 34}" text-anchor="middle">arithmetic intensity (FLOP/byte)</text>`);
    out.push(`<text transform="translate(${left - 48},${oy + plotH / 2}) rotate(-90)" text-anchor="middle">GFLOP/s</text>`);
    // roofs: min(bandwidth × intensity, peak)
    const roof = (bw: number, cls: string, color: string, dash: string) => {
      const xr = Math.min(xMax, peak / bw);
      const x0 = xMin, y0 = bw * xMin;
      const start = y0 < yMin ? yMin / bw : x0;
      out.push(`<path class="roof ${cls}" d="M${f(X(start))},${f(Y(bw * start))} L${f(X(xr))},${f(Y(bw * xr))} L${f(X(xMax))},${f(Y(Math.min(peak, bw * xMax)))}" fill="none" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`);
    };
    roof(bwC, 'roof-cache', '#7aa6d6', '6 4');
    roof(bwD, 'roof-dram', '#1f4e8c', '');
    out.push(`<text x="${f(X(xMax) - 4)}" y="${f(Y(peak) - 6)}" text-anchor="end" fill="#1f4e8c">FMA peak ${(peak / 1e9).toFixed(0)} GFLOP/s</text>`);
    out.push(`<text x="${f(X(xMin) + 6)}" y="${f(Y(bwD * xMin * 1.0) - 8)}" fill="#1f4e8c">DRAM copy ${(bwD / 1e9).toFixed(1)} GB/s</text>`);
    out.push(`<text x="${f(X(xMin) + 6)}" y="${f(Math.max(oy + 12, Y(bwC * xMin) - 8))}" fill="#7aa6d6">cache copy ${(bwC / 1e9).toFixed(1)} GB/s</text>`);
    // points, numbered, with a legend
    const sorted = [...pts].sort((a, b) => a.fractionOfFloor - b.fractionOfFloor);
    sorted.forEach((p, i) => {
      const x = p.flops > 0 ? p.intensity : xMin;
      const y = yOf(p);
      const color = p.fractionOfFloor >= 0.6 ? '#2a9d3a' : p.fractionOfFloor >= 0.3 ? '#e0a100' : '#d1342f';
      const filled = p.residency !== 'cache';
      const tip = `${p.family}/${p.op} ${p.dtype} ${p.size} (${p.residency}): ${fmtTime(p.medianSeconds)}, ${fmtNum(p.gbPerSecond)} GB/s, ${fmtNum(p.gflopPerSecond)} GFLOP/s, ${(100 * p.fractionOfFloor).toFixed(0)}% of floor (${p.bound}-bound)`;
      out.push(`<circle class="point" data-op="${escapeXml(`${p.family}/${p.op}|${p.dtype}`)}" cx="${f(X(x))}" cy="${f(Y(Math.max(y, yMin)))}" r="5" fill="${filled ? color : '#fff'}" stroke="${color}" stroke-width="2"><title>${escapeXml(tip)}</title></circle>`);
      out.push(`<text x="${f(X(x) + 7)}" y="${f(Y(Math.max(y, yMin)) - 5)}" font-size="10" fill="#333">${i + 1}</text>`);
      const ly = oy + 4 + i * Math.min(15, (PH - 70) / sorted.length);
      out.push(`<text x="${left + plotW + 20}" y="${f(ly)}" font-size="${sorted.length > 30 ? 9 : 11}" fill="${color}">${i + 1}. ${escapeXml(`${p.family}/${p.op} ${p.dtype !== 'f32' ? p.dtype + ' ' : ''}${p.size}`)}: ${(100 * p.fractionOfFloor).toFixed(0)}% (${p.bound})</text>`);
    });
    out.push('</g>');
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
