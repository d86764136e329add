/**
 * Loading the native addon (explicit path list) and choosing a backend (SPEC §0).
 *
 * Paths tried, in order: `build-cuda/Release/rlhf_kernels.node` (cmake-js, CPU+CUDA: a user's own
 * CUDA build wins), `build/Release/rlhf_kernels.node` (node-gyp, CPU: built from source here), then
 * the prebuild shipped in the package, `prebuilds/<platform>-<arch>/rlhf-kernels[.<libc>].node`
 * (prebuildify, N-API 8), chosen by node-gyp-build's matching rules (platform, arch, libc), the
 * same rules its install-time check used. `RLHF_KERNELS_ADDON` (env) replaces the list. If none
 * loads, every op runs on the `js` backend and one warning says why.
 */
import { existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeInfo {
  simd: string;
  simdDetected: string;
  threads: number;
  cuda: { compiled: boolean; deviceCount: number; error?: string; devices: { name: string; memory: number }[] };
}

/** Functions every build of the addon exports; op families declare their own on top. */
export interface NativeCore {
  info(): NativeInfo;
  setSimd(level: 'avx512' | 'avx2' | 'scalar'): string;
  setThreads(n: number): number;
  copyBandwidth(bytes: number, reps: number): number;
  /** FMA peak in FLOP/s at the current SIMD level with the pool's threads (bench compute roof). */
  fmaPeak(iters: number, reps: number): number;
}

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const req = createRequire(import.meta.url);

/**
 * The prebuild in `prebuilds/` that node-gyp-build picks for this platform, arch and libc, or
 * null (none shipped or none matches). node-gyp-build's resolver looks at `build/Release` first;
 * that path is already in our list, so only an answer under `prebuilds/` is taken from it.
 */
function prebuildPath(): string | null {
  const dir = join(root, 'prebuilds');
  if (!existsSync(dir)) return null;
  try {
    const p = (req('node-gyp-build') as { path(dir: string): string }).path(root);
    return p.startsWith(dir) ? p : null;
  } catch {
    return null; // "No native build was found for platform=... arch=... libc=..."
  }
}

// RLHF_KERNELS_ADDON, when set, is the only path tried (an explicit choice must not silently
// load another build).
const candidates = process.env.RLHF_KERNELS_ADDON
  ? [resolve(process.env.RLHF_KERNELS_ADDON)]
  : [join(root, 'build-cuda', 'Release', 'rlhf_kernels.node'), join(root, 'build', 'Release', 'rlhf_kernels.node')];

/**
 * A CUDA build in `build-cuda/` shadows `build/Release/`: after C++ changes rebuilt only the latter
 * (`npm run build:gyp`), the older CUDA build would still be the one loaded, running old code.
 * Say so once (the newer build is not loaded instead: which build runs stays the documented order).
 */
function warnIfStale(p: string): void {
  if (p !== candidates[0] || process.env.RLHF_KERNELS_ADDON) return;
  try {
    const cpuBuild = candidates[1];
    if (!existsSync(cpuBuild)) return;
    const older = statSync(cpuBuild).mtimeMs - statSync(p).mtimeMs;
    if (older > 60_000)
      process.emitWarning(
        `rlhf-kernels: loading ${p}, which is older than ${cpuBuild} (by ${Math.round(older / 60_000)} min): ` +
          `the C++ sources may have changed since; rebuild it (npm run build:cuda), delete build-cuda/, ` +
          `or choose one with RLHF_KERNELS_ADDON.`,
        { code: 'RLHF_KERNELS_STALE_BUILD' },
      );
  } catch {
    /* a stat failure only loses the hint */
  }
}

function load(): { addon: NativeCore | null; path: string | null; error: string | null } {
  if (process.env.RLHF_KERNELS_NO_NATIVE === '1')
    return { addon: null, path: null, error: 'disabled by RLHF_KERNELS_NO_NATIVE=1' };
  const prebuild = process.env.RLHF_KERNELS_ADDON ? null : prebuildPath();
  const tried = prebuild ? [...candidates, prebuild] : candidates;
  const errors: string[] = [];
  for (const p of tried) {
    if (!existsSync(p)) continue;
    try {
      const addon = req(p) as NativeCore;
      warnIfStale(p);
      return { addon, path: p, error: null };
    } catch (e) {
      errors.push(`${p}: ${(e as Error).message}`);
    }
  }
  return {
    addon: null,
    path: null,
    error: errors.length
      ? `failed to load: ${errors.join('; ')}`
      : process.env.RLHF_KERNELS_ADDON
        ? `not found: RLHF_KERNELS_ADDON=${candidates[0]} does not exist`
        : `not built (tried ${tried.join(', ')}, and no prebuild in ${join(root, 'prebuilds')} matches ` +
        `${process.platform}-${process.arch}); build it from source with: npm run build:gyp ` +
        `(in ${root}; needs a C++17 compiler, make and python3)`,
  };
}

const loaded = load();
/** The loaded addon, or null when only the `js` backend is available. */
export const native: NativeCore | null = loaded.addon;
/** Path of the loaded addon (null if none). */
export const addonPath: string | null = loaded.path;
/** Why the addon is not loaded (null if it is). */
export const nativeLoadError: string | null = loaded.error;

// CI sets RLHF_KERNELS_REQUIRE_NATIVE=1 so that a build that fails to load is an error, not a
// silent run of the js backend.
if (!native && process.env.RLHF_KERNELS_REQUIRE_NATIVE === '1')
  throw new Error(`rlhf-kernels: native addon ${loaded.error} (RLHF_KERNELS_REQUIRE_NATIVE=1)`);
if (!native && process.env.RLHF_KERNELS_NO_NATIVE !== '1') {
  process.emitWarning(`rlhf-kernels: native addon ${loaded.error}; falling back to the slow 'js' backend.`, {
    code: 'RLHF_KERNELS_NO_NATIVE',
  });
}

let cachedInfo: NativeInfo | null = null;
function nativeInfo(): NativeInfo | null {
  if (!native) return null;
  if (!cachedInfo) cachedInfo = native.info();
  return cachedInfo;
}

export interface BackendsInfo {
  cpu: boolean;
  cuda: { available: boolean; devices: { name: string; memory: number }[]; compiled: boolean; reason?: string };
  simd: string;
  /** the best SIMD level this CPU supports (simd may be forced lower by setSimd) */
  simdDetected: string;
  threads: number;
  addonPath: string | null;
}

/** What this build and machine offer (SPEC §0 `backends()`). */
export function backends(): BackendsInfo {
  const info = nativeInfo();
  if (!info) {
    return {
      cpu: false,
      cuda: { available: false, devices: [], compiled: false, reason: `native addon ${nativeLoadError}` },
      simd: 'none',
      simdDetected: 'none',
      threads: 1,
      addonPath: null,
    };
  }
  const available = info.cuda.compiled && info.cuda.deviceCount > 0;
  return {
    cpu: true,
    cuda: {
      available,
      devices: info.cuda.devices,
      compiled: info.cuda.compiled,
      ...(available ? {} : { reason: info.cuda.error ?? 'no CUDA device found' }),
    },
    simd: info.simd,
    simdDetected: info.simdDetected,
    threads: info.threads,
    addonPath,
  };
}

export type Backend = 'auto' | 'cpu' | 'cuda' | 'js';
export type ResolvedBackend = 'js' | 'cpu' | 'cuda';

/**
 * Resolves `options.backend`. `'auto'`: the native CPU backend when the addon is loaded, else
 * `js` (inputs are host typed arrays, so CUDA is used only when asked for). `RLHF_KERNELS_BACKEND`
 * changes what `'auto'` means (used by bench/gpu/run.sh to run the whole test suite on CUDA).
 */
export function resolveBackend(b: unknown, op: string): ResolvedBackend {
  let want = b === undefined ? 'auto' : b;
  if (typeof want !== 'string') throw new TypeError(`${op}: options.backend must be a string`);
  if (want === 'auto' && process.env.RLHF_KERNELS_BACKEND) want = process.env.RLHF_KERNELS_BACKEND;
  switch (want) {
    case 'auto':
      return native ? 'cpu' : 'js';
    case 'js':
      return 'js';
    case 'cpu':
      if (!native) throw new Error(`${op}: backend 'cpu' unavailable: native addon ${nativeLoadError}`);
      return 'cpu';
    case 'cuda': {
      const info = nativeInfo();
      if (!info) throw new Error(`${op}: backend 'cuda' unavailable: native addon ${nativeLoadError}`);
      if (!info.cuda.compiled)
        throw new Error(`${op}: backend 'cuda' unavailable: the addon was built without CUDA (run npm run build:cuda)`);
      if (info.cuda.deviceCount <= 0)
        throw new Error(`${op}: backend 'cuda' unavailable: no CUDA device (${info.cuda.error ?? 'device count is 0'})`);
      return 'cuda';
    }
    default:
      throw new RangeError(`${op}: options.backend must be 'auto' | 'cpu' | 'cuda' | 'js', got '${want}'`);
  }
}

/** Test and bench hooks: force a lower SIMD level, or the thread count, of the CPU kernels. */
export function setSimd(level: 'avx512' | 'avx2' | 'scalar'): string {
  if (!native) throw new Error(`setSimd: native addon ${nativeLoadError}`);
  const r = native.setSimd(level);
  cachedInfo = null;
  return r;
}
export function setThreads(n: number): number {
  if (!native) throw new Error(`setThreads: native addon ${nativeLoadError}`);
  const r = native.setThreads(n);
  cachedInfo = null;
  return r;
}
