/**
 * The same property on the N-API layer itself, bypassing the TypeScript validation: every native
 * entry point is called with argument lists recorded from valid op calls and then broken one
 * argument at a time (garbage values, wrong typed-array kinds and lengths, detached, shared and
 * aliased buffers, sizes that are negative, fractional, NaN or beyond 2^31 / 2^53, index values
 * out of range, missing and extra arguments). Each call must return or throw a TypeError /
 * RangeError (an Error only for `useCuda` on a build or machine without CUDA); no typed array may
 * be written outside its own elements. A native crash fails the run ("Worker exited unexpectedly").
 */
import { native } from '../../ts/native.js';
import { OPS, type OpSpec, type Rng } from './cases.js';
import { call } from './harness.js';

export type Args = unknown[];
export interface Recorded { fn: string; args: Args }

/** Native argument lists of valid calls of `spec` (recorded by wrapping the addon's functions). */
export function recordNative(spec: OpSpec, inputs: unknown, options: unknown): Recorded[] {
  const nat = native as unknown as Record<string, (...a: unknown[]) => unknown>;
  const rec: Recorded[] = [];
  const saved = new Map<string, (...a: unknown[]) => unknown>();
  for (const [k, f] of Object.entries(nat)) {
    if (typeof f !== 'function') continue;
    saved.set(k, f);
    nat[k] = (...args: unknown[]) => {
      rec.push({ fn: k, args: args.map(copyArg) });
      return f(...args);
    };
  }
  try {
    call(spec, { inputs, options }, 'cpu');
  } finally {
    for (const [k, f] of saved) nat[k] = f;
  }
  return rec.filter((r) => r.fn !== 'info');
}

function copyArg(a: unknown): unknown {
  return ArrayBuffer.isView(a) && !(a instanceof DataView) ? (a as Float32Array).slice() : a;
}

const GUARD_BYTES = 64;
type TA = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array | Int8Array;
type TACtor = { new (b: ArrayBufferLike, off: number, n: number): TA; BYTES_PER_ELEMENT: number; name: string };

/**
 * every typed-array argument moved into a larger buffer with poisoned guard bytes around the
 * span its views cover (views that shared a buffer still share one, at the same relative
 * offsets; a SharedArrayBuffer stays shared)
 */
function guarded(args: Args) {
  const groups = new Map<ArrayBufferLike, { lo: number; hi: number; nb?: ArrayBufferLike }>();
  for (const a of args) {
    if (!isTA(a) || a.buffer.byteLength === 0) continue; // (detached)
    const g = groups.get(a.buffer) ?? { lo: Infinity, hi: -Infinity };
    g.lo = Math.min(g.lo, a.byteOffset);
    g.hi = Math.max(g.hi, a.byteOffset + a.byteLength);
    groups.set(a.buffer, g);
  }
  const checks: (() => string | null)[] = [];
  for (const [old, g] of groups) {
    const len = GUARD_BYTES * 2 + (g.hi - g.lo);
    const nb = old instanceof SharedArrayBuffer ? new SharedArrayBuffer(len) : new ArrayBuffer(len);
    const u = new Uint8Array(nb);
    u.fill(0xc3);
    u.set(new Uint8Array(old, g.lo, g.hi - g.lo), GUARD_BYTES);
    g.nb = nb;
    checks.push(() => {
      for (let j = 0; j < GUARD_BYTES; j++)
        if (u[j] !== 0xc3 || u[len - 1 - j] !== 0xc3) return `a typed array was written outside its elements (guard byte ${j})`;
      return null;
    });
  }
  const out = args.map((a) => {
    if (!isTA(a) || a.buffer.byteLength === 0) return a;
    const g = groups.get(a.buffer)!;
    const C = a.constructor as unknown as TACtor;
    return new C(g.nb!, GUARD_BYTES + a.byteOffset - g.lo, a.length);
  });
  return { args: out, check: () => checks.map((f) => f()).find((x) => x !== null) ?? null };
}

const GARBAGE: unknown[] = [undefined, null, 'x', '3', {}, [], [1, 2], true, false, 1.5, -1, NaN, Infinity, -Infinity, 2 ** 31 + 1,
  2 ** 53, 2 ** 64, -0, 10n, Symbol('s'), () => 0, new DataView(new ArrayBuffer(8)), new ArrayBuffer(16)];
const SIZES = [-1, 0.5, NaN, Infinity, 2 ** 31, 2 ** 31 + 1, 2 ** 32 + 1, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 1e300, -0];
const CTORS: TACtor[] = [Float32Array, Float64Array, Int32Array, Uint8Array, Uint16Array, Int8Array] as unknown as TACtor[];

export type Expect = 'throws' | 'any';
export interface NativeMut { args: Args; what: string; expect: Expect }

const isTA = (a: unknown): a is TA => ArrayBuffer.isView(a) && !(a instanceof DataView);
const tas = (args: Args) => args.map((a, i) => (isTA(a) ? i : -1)).filter((i) => i >= 0);
const nums = (args: Args) => args.map((a, i) => (typeof a === 'number' ? i : -1)).filter((i) => i >= 0);

export const NATIVE_MUTATORS: Record<string, (args: Args, r: Rng) => NativeMut | null> = {
  none: (args) => ({ args, what: 'as recorded', expect: 'any' }),
  garbage: (args, r) => {
    const i = r.int(0, args.length - 1);
    const a = [...args];
    a[i] = r.pick(GARBAGE);
    return { args: a, what: `arg ${i} = ${describe(a[i])}`, expect: 'any' };
  },
  size: (args, r) => {
    const ns = nums(args);
    if (!ns.length) return null;
    const i = r.pick(ns);
    const a = [...args];
    const v = args[i] as number;
    a[i] = r.bool(0.4) ? v + r.pick([1, -1, 7]) : r.pick(SIZES);
    return { args: a, what: `number arg ${i}: ${v} → ${a[i]}`, expect: 'any' };
  },
  wrongKind: (args, r) => {
    const ts = tas(args).filter((i) => (args[i] as TA).length > 0);
    if (!ts.length) return null;
    const i = r.pick(ts);
    const t = args[i] as TA;
    const C = r.pick(CTORS.filter((c) => c !== (t.constructor as unknown)));
    const a = [...args];
    a[i] = new C(new ArrayBuffer(t.length * C.BYTES_PER_ELEMENT), 0, t.length);
    // (a mask may be a Uint8Array or a Float32Array: swapping the two is not an error)
    const maskSwap = (t instanceof Uint8Array || t instanceof Float32Array) && ((C as unknown) === Uint8Array || (C as unknown) === Float32Array);
    return { args: a, what: `arg ${i}: ${t.constructor.name} → ${C.name}`, expect: maskSwap ? 'any' : 'throws' };
  },
  wrongLength: (args, r) => {
    const ts = tas(args);
    if (!ts.length) return null;
    const i = r.pick(ts);
    const t = args[i] as TA;
    const n = Math.max(0, t.length + r.pick([-1, 1, 1000]));
    if (n === t.length) return null;
    const C = t.constructor as unknown as TACtor;
    const a = [...args];
    a[i] = new C(new ArrayBuffer(n * C.BYTES_PER_ELEMENT), 0, n);
    return { args: a, what: `arg ${i}: length ${t.length} → ${n}`, expect: 'throws' };
  },
  detached: (args, r) => {
    const ts = tas(args).filter((i) => (args[i] as TA).length > 0);
    if (!ts.length) return null;
    const i = r.pick(ts);
    const t = (args[i] as TA).slice();
    structuredClone(t.buffer, { transfer: [t.buffer as ArrayBuffer] });
    const a = [...args];
    a[i] = t;
    return { args: a, what: `arg ${i} detached`, expect: 'throws' };
  },
  /** typed arrays in SharedArrayBuffers at offsets: as valid as the originals */
  shared: (args) => ({
    args: args.map((x) => {
      if (!isTA(x)) return x;
      const C = x.constructor as unknown as TACtor;
      const v = new C(new SharedArrayBuffer(x.byteLength + 16), 8, x.length);
      v.set(x as never);
      return v;
    }),
    what: 'shared buffers', expect: 'any',
  }),
  /** an Int32Array argument (labels, token ids, lengths, layout) with a value out of any range */
  badIndex: (args, r) => {
    const ts = tas(args).filter((i) => args[i] instanceof Int32Array && (args[i] as TA).length > 0);
    if (!ts.length) return null;
    const i = r.pick(ts);
    const t = (args[i] as Int32Array).slice();
    const j = r.int(0, t.length - 1);
    t[j] = r.pick([-1, -(2 ** 31), 2 ** 31 - 1, 1 << 24, -100]);
    const a = [...args];
    a[i] = t;
    return { args: a, what: `Int32Array arg ${i}[${j}] = ${t[j]}`, expect: 'any' };
  },
  /** two typed-array arguments of the same kind made to share memory */
  alias: (args, r) => {
    const ts = tas(args).filter((i) => (args[i] as TA).length > 0);
    if (ts.length < 2) return null;
    const i = r.pick(ts), j = r.pick(ts.filter((k) => k !== i));
    const ti = args[i] as TA, tj = args[j] as TA;
    const Ci = ti.constructor as unknown as TACtor, Cj = tj.constructor as unknown as TACtor;
    const buf = new ArrayBuffer(Math.max(ti.byteLength, tj.byteLength) + 64);
    const vi = new Ci(buf, 0, ti.length);
    vi.set(ti as never);
    const a = [...args];
    a[i] = vi;
    a[j] = new Cj(buf, 8 * r.int(0, 1), tj.length);
    return { args: a, what: `args ${i} and ${j} share memory`, expect: 'any' };
  },
  truncated: (args, r) => {
    const k = r.int(1, args.length);
    return { args: args.slice(0, args.length - k), what: `last ${k} args missing`, expect: 'any' };
  },
  extra: (args, r) => ({ args: [...args, ...Array.from({ length: r.int(1, 3) }, () => r.pick(GARBAGE))], what: 'extra args', expect: 'any' }),
};
export const NATIVE_MUTATOR_NAMES = Object.keys(NATIVE_MUTATORS);

function describe(v: unknown): string {
  if (typeof v === 'symbol' || typeof v === 'bigint') return String(v) + (typeof v === 'bigint' ? 'n' : '');
  if (typeof v === 'function') return 'a function';
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  if (v instanceof ArrayBuffer) return 'ArrayBuffer';
  try { return JSON.stringify(v) ?? String(v); } catch { return String(v); }
}

/** Calls native[fn](...args) with guarded buffers; returns a failure description or null. */
export function checkNative(fn: string, m: NativeMut): { fail: string | null; cls: string } {
  const nat = native as unknown as Record<string, (...a: unknown[]) => unknown>;
  const g = guarded(m.args);
  let err: unknown = null;
  try {
    nat[fn](...g.args);
  } catch (e) {
    err = e;
  }
  return verdict(`native ${fn} / ${m.what}`, err, m, g.check);
}

/**
 * The `<fn>Async` variant (an N-API AsyncWorker: arrays pinned or snapshotted, the kernel on a
 * libuv thread): it may throw at once or reject; the same verdict once it has settled.
 */
export async function checkNativeAsync(fn: string, m: NativeMut): Promise<{ fail: string | null; cls: string }> {
  const nat = native as unknown as Record<string, (...a: unknown[]) => unknown>;
  const g = guarded(m.args);
  let err: unknown = null;
  try {
    await nat[`${fn}Async`](...g.args);
  } catch (e) {
    err = e;
  }
  return verdict(`native ${fn}Async / ${m.what}`, err, m, g.check);
}

function verdict(where: string, err: unknown, m: NativeMut, guard: () => string | null): { fail: string | null; cls: string } {
  const cls = err === null ? 'ok' : err instanceof RangeError ? 'RangeError' : err instanceof TypeError ? 'TypeError' : err instanceof Error ? 'Error' : 'non-Error';
  if (cls === 'non-Error') return { fail: `${where}: threw a non-Error ${String(err)}`, cls };
  // a plain Error only for the CUDA path (built without CUDA, or no device)
  if (cls === 'Error' && !/cuda/i.test((err as Error).message)) return { fail: `${where}: threw Error: ${(err as Error).message}`, cls };
  if (m.expect === 'throws' && cls === 'ok') return { fail: `${where}: accepted`, cls };
  const gd = guard();
  if (gd) return { fail: `${where}: ${gd}`, cls };
  return { fail: null, cls };
}

/** The core (non-op) entry points, with argument lists that are valid or nearly so (their arrays may have any length). */
export const CORE_CALLS: Recorded[] = [
  { fn: 'info', args: [] },
  { fn: 'setSimd', args: ['scalar'] },
  { fn: 'setThreads', args: [2] },
  { fn: 'coreMath', args: ['exp', new Float32Array([0, 1, -1])] },
  { fn: 'coreLogprobsRow', args: [new Float32Array([0.5, 1, 2, -1, 3]), 2, 1, 4, 1, 0.5] },
];

export { OPS };
