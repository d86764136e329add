/**
 * What the benchmark measures about the machine before the ops: the last-level cache (read from
 * the OS, cross-checked by a copy-bandwidth sweep), the copy bandwidth of cache-resident and
 * DRAM-resident buffers per thread count, and the FMA peak per SIMD level and thread count. The
 * floor of an op is max(bytes / copy bandwidth, FLOPs / FMA peak) with the roofs of its row.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import * as rk from '../ts/index.js';
import { native } from '../ts/native.js';

export type Simd = 'avx512' | 'avx2' | 'baseline';
export const SIMD_LEVELS: Simd[] = ['avx512', 'avx2', 'baseline'];
/** The addon's name of a level ('scalar' is the x86-64 baseline build of each kernel). */
export const addonSimd = (s: Simd): 'avx512' | 'avx2' | 'scalar' => (s === 'baseline' ? 'scalar' : s);
export const fromAddonSimd = (s: string): Simd | 'none' => (s === 'scalar' ? 'baseline' : s === 'avx512' || s === 'avx2' ? s : 'none');

export interface LlcInfo {
  /** the size the benchmark uses to classify residency */
  bytes: number;
  /** where `bytes` comes from */
  source: string;
  /** what the OS reports (sysfs, getconf), null if nothing */
  reported: number | null;
  reportedSource: string | null;
  /** knee of a one-thread copy-bandwidth sweep (working set size), null if not measured */
  measured: number | null;
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  platform: string;
  simdDetected: Simd | 'none';
  threads: number;
  addonPath: string | null;
  cuda: boolean;
  llc: LlcInfo;
}

export interface Roofs {
  /** copy bandwidth, bytes read + written per second, by thread count */
  copy: { cache: Record<string, number>; dram: Record<string, number>; cacheWorkingSet: number; dramWorkingSet: number };
  /** FMA peak in FLOP/s by SIMD level, then thread count */
  fma: Partial<Record<Simd, Record<string, number>>>;
}

/** "32M", "32768K", "33554432", "32 MiB" → bytes; NaN if unreadable. */
export function parseBytes(s: string): number {
  const m = /^\s*([\d.]+)\s*([kmgt]?)(i?b)?\s*$/i.exec(s);
  if (!m) return NaN;
  const mul = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.round(Number(m[1]) * mul);
}

export const fmtBytes = (b: number) =>
  b >= 2 ** 30 ? `${+(b / 2 ** 30).toFixed(1)} GiB` : b >= 2 ** 20 ? `${+(b / 2 ** 20).toFixed(1)} MiB` : `${+(b / 2 ** 10).toFixed(1)} KiB`;

/** Largest cache the OS reports for cpu0: sysfs first, then `getconf`. */
export function reportedLlc(): { bytes: number; source: string } | null {
  const dir = '/sys/devices/system/cpu/cpu0/cache';
  try {
    let best: { level: number; bytes: number } | null = null;
    for (const d of readdirSync(dir)) {
      if (!d.startsWith('index')) continue;
      const rd = (f: string) => readFileSync(`${dir}/${d}/${f}`, 'utf8').trim();
      if (rd('type') === 'Instruction') continue;
      const level = Number(rd('level')), bytes = parseBytes(rd('size'));
      if (Number.isFinite(bytes) && (!best || level > best.level)) best = { level, bytes };
    }
    if (best) return { bytes: best.bytes, source: `sysfs (L${best.level} of cpu0)` };
  } catch {
    /* no sysfs cache directory (some VMs): try getconf */
  }
  try {
    const out = execFileSync('getconf', ['-a'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    for (const lvl of [4, 3, 2]) {
      const m = new RegExp(`^LEVEL${lvl}_CACHE_SIZE\\s+(\\d+)`, 'm').exec(out);
      if (m && Number(m[1]) > 0) return { bytes: Number(m[1]), source: `getconf LEVEL${lvl}_CACHE_SIZE` };
    }
  } catch {
    /* no getconf */
  }
  return null;
}

/**
 * The LLC as a copy sweep sees it (one thread): copy bandwidth at working sets of 2 MiB … 1 GiB;
 * the LLC is the last working set before the bandwidth first falls below half the cache plateau
 * (the best at ≥ 4 MiB), so the estimate does not move when a busy machine scales every bandwidth
 * down; a sweep whose plateau is not 1.5× DRAM (the last two sizes) shows no cache. On VMs the OS often reports the
 * whole socket's L3 while the cores of the VM share one slice of it.
 */
export function measuredLlc(maxWorkingSet: number): number | null {
  if (!native) return null;
  const threads = rk.backends().threads;
  rk.setThreads(1);
  try {
    const pts: { ws: number; bw: number }[] = [];
    for (let b = 1 << 20; 2 * b <= maxWorkingSet; b *= 2) pts.push({ ws: 2 * b, bw: 0 });
    // two passes, the best of each point: a busy machine slows single points, not whole passes
    for (let pass = 0; pass < 2; pass++)
      for (const p of pts) {
        const b = p.ws / 2;
        p.bw = Math.max(p.bw, native.copyBandwidth(b, Math.max(3, Math.min(40, Math.round(2 ** 28 / b)))));
      }
    return llcFromSweep(pts);
  } finally {
    rk.setThreads(threads);
  }
}

/** The knee of a bandwidth sweep (see measuredLlc); null when the sweep is too short or flat. */
export function llcFromSweep(pts: { ws: number; bw: number }[]): number | null {
  if (pts.length < 4) return null;
  const plateau = Math.max(...pts.filter((p) => p.ws >= 4 * 2 ** 20).map((p) => p.bw));
  const dram = Math.min(pts[pts.length - 1].bw, pts[pts.length - 2].bw);
  if (!(plateau > 1.5 * dram)) return null; // no visible cache
  // half the cache plateau: other tenants' memory traffic lowers the DRAM end, not the plateau,
  // and where the LLC-sized working set sits right at the cut the estimate errs low (a smaller
  // cache-resident size, a DRAM size still ≥ 4× the real LLC). The knee is the last size before
  // the first one below the cut (an outlier further out does not move it).
  const cut = plateau / 2;
  let knee: number | null = null;
  for (const p of pts) {
    if (p.bw < cut) break;
    knee = p.ws;
  }
  return knee;
}

/** LLC for the run: an explicit --llc, else the OS's figure checked against the sweep. */
export function llcInfo(explicit: number | null, quick: boolean): LlcInfo {
  const rep = reportedLlc();
  if (explicit) return { bytes: explicit, source: '--llc', reported: rep?.bytes ?? null, reportedSource: rep?.source ?? null, measured: null };
  const cap = Math.min(2 ** 30, Math.max(quick ? 2 ** 28 : 2 ** 29, 4 * (rep?.bytes ?? 0)));
  const meas = measuredLlc(cap);
  let bytes: number, source: string;
  if (rep && meas && meas < rep.bytes / 2) {
    bytes = meas;
    source = `measured (the OS reports ${fmtBytes(rep.bytes)} via ${rep.source}, more than these cores can use)`;
  } else if (rep) {
    bytes = rep.bytes;
    source = rep.source;
  } else if (meas) {
    bytes = meas;
    source = 'measured (copy sweep)';
  } else {
    bytes = 32 * 2 ** 20;
    source = 'assumed (nothing reported or measured)';
  }
  return { bytes, source, reported: rep?.bytes ?? null, reportedSource: rep?.source ?? null, measured: meas };
}

export function machineInfo(llc: LlcInfo): MachineInfo {
  const b = rk.backends();
  return {
    cpu: cpus()[0]?.model?.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    simdDetected: b.cpu ? fromAddonSimd(b.simdDetected) : 'none',
    threads: b.threads,
    addonPath: b.addonPath,
    cuda: b.cuda.available,
    llc,
  };
}

/** Runs fn with the CPU backend at a SIMD level and thread count, restoring both afterwards. */
export async function withCpu<T>(simd: Simd | null, threads: number | null, fn: () => Promise<T> | T): Promise<T> {
  const b = rk.backends();
  const prevSimd = b.simd as 'avx512' | 'avx2' | 'scalar', prevThreads = b.threads;
  if (simd) rk.setSimd(addonSimd(simd));
  if (threads) rk.setThreads(threads);
  try {
    return await fn();
  } finally {
    if (simd) rk.setSimd(prevSimd);
    if (threads) rk.setThreads(prevThreads);
  }
}

/** Copy-bandwidth and FMA roofs for the thread counts and SIMD levels a run uses. */
export async function measureRoofs(llcBytes: number, threads: number[], simd: Simd[], quick: boolean): Promise<Roofs> {
  // DRAM roof at a working set of 8× the LLC (two buffers of 4×), the working set of the default DRAM sizes
  const dramBuf = Math.max(4 * llcBytes, 32 * 2 ** 20);
  const cacheBuf = Math.max(64 * 1024, Math.floor(llcBytes / 8)); // working set LLC/4
  const roofs: Roofs = { copy: { cache: {}, dram: {}, cacheWorkingSet: 2 * cacheBuf, dramWorkingSet: 2 * dramBuf }, fma: {} };
  if (!native) return roofs;
  const nat = native;
  for (const t of threads) {
    await withCpu(null, t, () => {
      roofs.copy.dram[t] = nat.copyBandwidth(dramBuf, quick ? 3 : 5);
      roofs.copy.cache[t] = nat.copyBandwidth(cacheBuf, quick ? 20 : 50);
    });
  }
  for (const s of simd) {
    roofs.fma[s] = {};
    for (const t of threads) await withCpu(s, t, () => void (roofs.fma[s]![t] = nat.fmaPeak(quick ? 5000 : 20000, quick ? 3 : 5)));
  }
  return roofs;
}
