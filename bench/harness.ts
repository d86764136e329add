/**
 * Benchmark harness: what a family file declares (OpSpec), input builders, and the timer
 * (benchmark.js for calls shorter than 0.25 s, plain repeated timing above).
 *
 * A family file `bench/<family>.bench.ts` exports `ops: OpSpec[]`. Each spec names one op (or
 * one variant of it, e.g. `vocabKl(forward)`), the dtypes it takes, its default sizes (one whose
 * traffic fits the last-level cache and one at least 4× the LLC, computed from the machine's LLC),
 * and `make(size, dtype)`, which builds the inputs and returns the calls to time with the bytes the
 * call must move and the FLOPs it must do. The CLI (bench/cli.ts) discovers every
 * `*.bench.ts`/`*.bench.js` next to it, so a new family plugs in by adding its file.
 *
 * Older family files that export `cases(opts): BenchCase[]` (fixed sizes, `run` per backend)
 * still work: each case becomes one fixed-size op (FLOPs from `flops` or `extra.flops`).
 */
import Benchmark from 'benchmark';

export type Dtype = 'f32' | 'bf16' | 'f16';
export type Outputs = 'out' | 'alloc';
export type Residency = 'cache' | 'mixed' | 'dram';
/** Backends of the package plus the peers (`ort`: onnxruntime-node). */
export type BackendName = 'cpu' | 'js' | 'cuda' | 'ort';
export type Call = () => unknown;
export type CallSet = Partial<Record<'cpu' | 'js' | 'cuda', Call>>;

/**
 * The calls of one op on each backend of the package: `on((backend) => rk.op(x, { backend, out }))`.
 * js = false leaves the js reference out (where one call would take seconds).
 */
export function on(f: (backend: 'js' | 'cpu' | 'cuda') => unknown, js = true): CallSet {
  const c: CallSet = { cpu: () => f('cpu'), cuda: () => f('cuda') };
  if (js) c.js = () => f('js');
  return c;
}

/** FLOPs counted for one exp, log or log1p: the ~8 FMAs of a vectorised polynomial evaluation. */
export const TRANSCENDENTAL_FLOPS = 16;

export interface OpCase {
  /** bytes one call must move at minimum: every input read once, every output written once */
  bytes: number;
  /** floating-point operations one call must do (+, ×, compare/select: 1; FMA: 2; exp/log: TRANSCENDENTAL_FLOPS) */
  flops: number;
  /** calls writing into preallocated `out` buffers */
  out: CallSet;
  /** calls that allocate fresh outputs (absent: the op has no `out` form worth separating) */
  alloc?: CallSet;
  /** peers outside the package (bench/peers.ts), each a setup returning the call (async allowed), or null when not installed */
  peers?: Partial<Record<'ort', () => Promise<Call | null>>>;
  /** skip the js backend unless asked (one call would take seconds) */
  jsSlow?: boolean;
  note?: string;
  extra?: Record<string, number | string>;
}

export interface OpSpec {
  family: string;
  /** op name; a variant in parentheses (`vocabKl(forward)`) is selected by its base name too */
  op: string;
  /** dtypes of the logits-like inputs the op takes (default ['f32']) */
  dtypes?: Dtype[];
  /** dtypes measured when --dtype is not given (default: the first of dtypes) */
  defaultDtypes?: Dtype[];
  /** default sizes: a cache-resident one and one moving at least `dramBytes` (≥ 4× LLC) */
  sizes(llcBytes: number, dramBytes: number): { cache?: string; dram?: string; other?: string[] };
  /** sizes measured only when --size names them (too slow for the default run); listed by --list */
  explicitSizes?: string[];
  /** inputs and calls at one size; throws RangeError naming the size format when it cannot parse it */
  make(size: string, dtype: Dtype): OpCase;
}

// ----- legacy family format (cases(opts)) -------------------------------------------------

export type BenchBackend = 'js' | 'cpu' | 'cpu1' | 'cuda';
export interface BenchCase {
  family: string;
  op: string;
  size: string;
  bytes: number;
  flops?: number;
  run: Partial<Record<'js' | 'cpu' | 'cuda', () => unknown>>;
  extra?: Record<string, number | string>;
  note?: string;
}
export interface BenchOptions {
  quick: boolean;
  oneThread: boolean;
  jsMaxSeconds: number;
}

/** Adapts a legacy `cases(opts)` module: one fixed-size spec per case. */
export function specsFromCases(cases: BenchCase[]): OpSpec[] {
  return cases.map((c) => {
    const flops = c.flops ?? (c.extra && Number.isFinite(Number(c.extra.flops)) ? Number(c.extra.flops) : 0);
    return {
      family: c.family,
      op: c.op,
      sizes: () => ({ other: [c.size] }),
      make: (size: string) => {
        if (size !== c.size) throw new RangeError(`${c.family}/${c.op}: only size '${c.size}' is available`);
        return { bytes: c.bytes, flops, out: c.run, note: c.note, extra: c.extra };
      },
    };
  });
}

// ----- sizes ------------------------------------------------------------------------------

/** "64x8192" → [64, 8192]; any non-numeric part throws a RangeError naming the expected form. */
export function dims(size: string, n: number, what: string): number[] {
  const parts = size.split(/[x×]/).map((s) => s.trim());
  const v = parts.map(Number);
  if (parts.length !== n || v.some((d) => !Number.isInteger(d) || d < 1))
    throw new RangeError(`size '${size}': expected ${what}`);
  return v;
}

/** Smallest multiple of `step` ≥ max(min, need). */
export function roundUp(need: number, step: number, min = step): number {
  return Math.max(min, Math.ceil(need / step) * step);
}

const resets: (() => void)[] = [];
/**
 * Keeps the inputs of the last key only, across every cache made by lastOnly: building a new
 * entry anywhere drops all others first, so one set of (possibly DRAM-sized) inputs is alive at a
 * time. The CLI orders the cases so that the ops of a family sharing a size run back to back.
 */
export function lastOnly<T>(build: (key: string) => T): (key: string) => T {
  let k: string | null = null;
  let v: T | null = null;
  const reset = () => {
    k = null;
    v = null;
  };
  resets.push(reset);
  return (key) => {
    if (k !== key) {
      for (const r of resets) r();
      v = build(key);
      k = key;
    }
    return v as T;
  };
}

// ----- inputs -----------------------------------------------------------------------------

/** Deterministic pseudo-normal values (sum of two uniforms: mean 0, variance ≈ scale²). */
export function randn(n: number, seed = 1, scale = 1): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = (s >>> 8) / 16777216;
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const v = (s >>> 8) / 16777216;
    a[i] = scale * (u + v - 1) * 2.449;
  }
  return a;
}
/** Deterministic uniforms in [0, 1). */
export function uniforms(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s >>> 8) / 16777216;
  }
  return a;
}
/** a[i] = f(a[i], i) in place (Float32Array.from with a map function is ~10x slower on big arrays). */
export function mapInPlace(a: Float32Array, f: (x: number, i: number) => number): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] = f(a[i], i);
  return a;
}
export function ones(n: number): Uint8Array {
  return new Uint8Array(n).fill(1);
}
/** A [B,T] u8 mask with right padding: row b counts its first T − (b % 7)·T/16 tokens. */
export function paddedMask(B: number, T: number): Uint8Array {
  const m = new Uint8Array(B * T);
  for (let b = 0; b < B; b++) {
    const len = T - Math.floor(((b % 7) * T) / 16);
    m.fill(1, b * T, b * T + len);
  }
  return m;
}
/** f32 → bf16 bit patterns, round to nearest even (finite inputs), without per-element allocation. */
export function toBf16(a: Float32Array): Uint16Array {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length), o = new Uint16Array(a.length);
  for (let i = 0; i < u.length; i++) o[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) & 0xffff;
  return o;
}
/** f32 → f16 bit patterns, round to nearest even (normal range; bench data only). */
export function toF16(a: Float32Array): Uint16Array {
  const u = new Uint32Array(a.buffer, a.byteOffset, a.length), o = new Uint16Array(a.length);
  for (let i = 0; i < u.length; i++) {
    const s = (u[i] >>> 16) & 0x8000, e = ((u[i] >>> 23) & 0xff) - 112, m = u[i] & 0x7fffff;
    let h = e <= 0 ? s : e >= 31 ? s | 0x7c00 : s | (e << 10) | (m >>> 13);
    if (e > 0 && e < 31) {
      const r = m & 0x1fff;
      if (r > 0x1000 || (r === 0x1000 && h & 1)) h++;
    }
    o[i] = h;
  }
  return o;
}
/** Bytes per element of a logits dtype. */
export const dtypeBytes = (dt: Dtype) => (dt === 'f32' ? 4 : 2);
/** The logits array in the requested dtype. */
export function logitsOf(x: Float32Array, dt: Dtype): Float32Array | Uint16Array {
  return dt === 'f32' ? x : dt === 'bf16' ? toBf16(x) : toF16(x);
}

// ----- timing -----------------------------------------------------------------------------

export interface Timing {
  /** seconds per call, one entry per sample (a benchmark.js cycle, or one call when calls are long) */
  samples: number[];
  median: number;
  q1: number;
  q3: number;
  min: number;
  max: number;
  /** benchmark.js relative margin of error (%), null for plain timing */
  rme: number | null;
}

export function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  const p = (sorted.length - 1) * q, i = Math.floor(p), f = p - i;
  return i + 1 < sorted.length ? sorted[i] * (1 - f) + sorted[i + 1] * f : sorted[i];
}

export function summarize(samples: number[], rme: number | null = null): Timing {
  const s = [...samples].sort((a, b) => a - b);
  return { samples, median: quantile(s, 0.5), q1: quantile(s, 0.25), q3: quantile(s, 0.75), min: s[0], max: s[s.length - 1], rme };
}

const now = () => Number(process.hrtime.bigint()) / 1e9;
const isPromise = (v: unknown): v is Promise<unknown> => !!v && typeof (v as Promise<unknown>).then === 'function';

/**
 * Calls fn in batches of ~10 ms until the time per call stops falling (within 10% of the previous
 * batch) or 0.4 s have passed: V8 tiers the validation and wrapper code up only after a few
 * thousand calls (measured: a 10 µs op ran at 160, 30, then 10 µs per call over the first 0.25 s).
 */
function warmUp(fn: Call, once: number) {
  const per = Math.max(1, Math.min(10000, Math.round(0.01 / Math.max(once, 1e-7))));
  const t0 = now();
  let prev = Infinity;
  while (now() - t0 < 0.4) {
    const a = now();
    for (let i = 0; i < per; i++) fn();
    const t = (now() - a) / per;
    if (t > 0.9 * prev) return;
    prev = t;
  }
}

/**
 * Times fn (sync, or async for peers): a warm-up call first; benchmark.js (after warmUp) when one
 * call is short,
 * plain repeated calls (2 to 5, within maxTime) when it is longer than 0.25 s or returns a promise.
 */
export async function measure(fn: Call, maxTime: number): Promise<Timing> {
  const t0 = now();
  const r = fn();
  if (isPromise(r)) await r;
  const first = now() - t0;
  if (first > 0.25 || isPromise(r)) {
    const ts: number[] = [];
    const reps = isPromise(r) ? Math.max(5, Math.min(50, Math.floor(maxTime / Math.max(first, 1e-6)))) : Math.max(2, Math.min(5, Math.floor(maxTime / first)));
    for (let i = 0; i < reps; i++) {
      const a = now();
      const v = fn();
      if (isPromise(v)) await v;
      ts.push(now() - a);
    }
    return summarize(ts);
  }
  // minTime: benchmark.js's default (≥ 50 ms per sample) unless --time asks for less
  if (first < 1e-3) warmUp(fn, first); // (above 1 ms per call the JIT's share is negligible)
  const b = new Benchmark('case', fn, { maxTime, minTime: Math.min(0.05, maxTime / 5), minSamples: 5, initCount: 1 });
  b.run({ async: false });
  if ((b as unknown as { error?: Error }).error) throw (b as unknown as { error: Error }).error;
  const sample = b.stats.sample.length ? b.stats.sample : [b.stats.mean];
  return summarize(sample, b.stats.rme);
}

// ----- default sizes ----------------------------------------------------------------------

export type SizeFn = OpSpec['sizes'];

/**
 * [B,T] token ops moving `bytesPerToken` per token: cache = 64×8192 (halved until it moves at
 * most half the LLC); DRAM = B×8192 with B a multiple of 64 moving at least `dramBytes`.
 */
export function tokenSizes(bytesPerToken: number): SizeFn {
  return (llc, dram) => {
    let B = 64, T = 8192;
    while (B > 1 && B * T * bytesPerToken > llc / 2) B /= 2;
    while (T > 64 && B * T * bytesPerToken > llc / 2) T /= 2;
    return { cache: `${B}x${T}`, dram: `${roundUp(dram / (bytesPerToken * 8192), 64)}x8192` };
  };
}

/**
 * [N,V] logits ops (V = 32000) moving `bytesPerLogit` per logit (f32 figures): cache = N ≤ 256
 * rows moving at most half the LLC; DRAM = at least `minDramRows` rows (the sizes the issues
 * quote) and at least `dramBytes`.
 */
export function vocabSizes(bytesPerLogit: number, minDramRows: number, V = 32000): SizeFn {
  return (llc, dram) => {
    let N = 256;
    while (N > 1 && N * V * bytesPerLogit > llc / 2) N /= 2;
    return { cache: `${N}x${V}`, dram: `${Math.max(minDramRows, roundUp(dram / (bytesPerLogit * V), 256))}x${V}` };
  };
}

/** 1-D ops over B items moving `bytesPerItem` each: cache = `cacheB` (halved to fit), DRAM = a multiple of 65536. */
export function itemSizes(bytesPerItem: number, cacheB: number, step = 65536, extra: string[] = []): SizeFn {
  return (llc, dram) => {
    let B = cacheB;
    while (B > 1 && B * bytesPerItem > llc / 2) B /= 2;
    return { cache: `${B}`, dram: `${roundUp(dram / bytesPerItem, step)}`, other: extra };
  };
}

/** [G,K] grouped ops: cache = cacheG×K, DRAM = G×K with G a multiple of 4096 moving ≥ dramBytes. */
export function groupSizes(bytesPerGroup: number, K: number | string, cacheG: number): SizeFn {
  return (llc, dram) => {
    let G = cacheG;
    while (G > 1 && G * bytesPerGroup > llc / 2) G /= 2;
    return { cache: `${G}x${K}`, dram: `${roundUp(dram / bytesPerGroup, 4096)}x${K}` };
  };
}
