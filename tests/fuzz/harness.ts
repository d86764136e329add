/**
 * The property behind the fuzz tests: one op call on a (possibly mutated) case either returns a
 * result equal to the js reference or throws the documented TypeError / RangeError, the same
 * class as the js backend; it never writes outside `out` buffers (guard regions around them stay
 * intact) nor into its inputs. No vitest here: the soak script and the worker-thread tests use it.
 */
import * as rk from '../../ts/index.js';
import type { Tensor } from '../../ts/index.js';
import { ROLE_DTYPES, type Case, type OpSpec, type Rng, type Role } from './cases.js';

export type Outcome = { ok: true; result: Record<string, unknown> } | { ok: false; error: unknown };

export function call(spec: OpSpec, c: Case | { inputs: unknown; options: unknown }, backend: string): Outcome {
  try {
    // (a mutation that sets options.backend itself keeps it)
    const o = c.options as Record<string, unknown> | undefined | null;
    const opts = o === undefined ? { backend } : o === null || typeof o !== 'object' || 'backend' in o ? o : { ...o, backend };
    return { ok: true, result: spec.run(c.inputs, opts) };
  } catch (error) {
    return { ok: false, error };
  }
}

/** The op's `.async` form (same options); settles to the same kind of Outcome. */
export async function callAsync(spec: OpSpec, c: Case | { inputs: unknown; options: unknown }, backend: string): Promise<Outcome> {
  const o = c.options as Record<string, unknown> | undefined | null;
  const opts = o === undefined ? { backend } : o === null || typeof o !== 'object' || 'backend' in o ? o : { ...o, backend };
  try {
    const fn = (rk as unknown as Record<string, { async: (i: unknown, o: unknown) => Promise<Record<string, unknown>> }>)[spec.name];
    return { ok: true, result: await fn.async(c.inputs, opts) };
  } catch (error) {
    return { ok: false, error };
  }
}

const errClass = (e: unknown) => (e instanceof RangeError ? 'RangeError' : e instanceof TypeError ? 'TypeError' : e instanceof Error ? `Error(${e.message})` : `non-Error ${String(e)}`);
export const outcomeClass = (o: Outcome) => (o.ok ? 'ok' : errClass(o.error));

function isTensor(x: unknown): x is Tensor {
  return !!x && typeof x === 'object' && ArrayBuffer.isView((x as Tensor).data) && Array.isArray((x as Tensor).shape);
}

/** The js reference sees exactly what a native backend sees: f64 inputs rounded to f32 (SPEC §0). */
export function roundedForJs(c: Case): Case {
  const inputs: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(c.inputs)) {
    if (isTensor(t) && t.dtype === 'f64' && t.data instanceof Float64Array && t.data.buffer.byteLength > 0)
      inputs[k] = { ...t, data: Float64Array.from(t.data, Math.fround) } as Tensor;
    else inputs[k] = t;
  }
  return { inputs, options: c.options };
}

/**
 * Max |got − want| relative to 1 + max |want| per output (NaN must match NaN, ±Inf exactly; integer
 * outputs exactly). Returns a description of the first mismatch, or null.
 */
export function compare(got: Record<string, unknown>, want: Record<string, unknown>, tol: number, loose = false): string | null {
  const nf = (a: number, b: number) => loose && !Number.isFinite(b) && !Number.isFinite(a);
  const keys = new Set([...Object.keys(got), ...Object.keys(want)]);
  for (const k of keys) {
    const g = got[k], w = want[k];
    if (isTensor(w)) {
      if (!isTensor(g)) return `${k}: missing tensor`;
      if (g.dtype !== w.dtype || g.shape.join() !== w.shape.join()) return `${k}: ${g.dtype}[${g.shape}] vs ${w.dtype}[${w.shape}]`;
      const exact = w.dtype === 'i32' || w.dtype === 'u8';
      let S = 0;
      for (let i = 0; i < w.data.length; i++) if (Number.isFinite(w.data[i])) S = Math.max(S, Math.abs(w.data[i]));
      for (let i = 0; i < w.data.length; i++) {
        const a = g.data[i], b = w.data[i];
        const ok = exact ? a === b : nf(a, b) || (Number.isNaN(b) ? Number.isNaN(a) : !Number.isFinite(b) ? a === b : Math.abs(a - b) <= tol * (1 + S));
        if (!ok) return `${k}[${i}] = ${a}, reference ${b} (tol ${tol}·(1 + ${S}))`;
      }
    } else if (typeof w === 'number') {
      if (typeof g !== 'number') return `${k}: not a number`;
      // (a scalar beyond the f32 range may be ±Inf natively: the per-example values it averages are f32)
      const ok = nf(g, w) || Number.isNaN(w) ? Number.isNaN(g) || nf(g, w) : !Number.isFinite(w) ? g === w
        : Math.abs(g - w) <= tol * (1 + Math.abs(w)) || (!Number.isFinite(Math.fround(w)) && g === Math.fround(w));
      if (!ok) return `${k} = ${g}, reference ${w}`;
    } else if (w !== undefined || g !== undefined) {
      if (isTensor(g)) return `${k}: unexpected tensor`;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// guarded out buffers and untouched inputs

const GUARD = 16; // elements on each side
const POISON = { f32: NaN, i32: -0x5a5a5a5b, u8: 0xa5 } as Record<string, number>;

/** out buffers (one per tensor of `ref`) that are views into a larger poisoned buffer. */
export function guardedOuts(ref: Record<string, unknown>, shared = false) {
  const outs: Record<string, Tensor> = {};
  const checks: (() => string | null)[] = [];
  for (const [k, t] of Object.entries(ref)) {
    if (!isTensor(t)) continue;
    const n = t.data.length;
    const Ctor = t.data.constructor as unknown as { new (b: ArrayBufferLike, o: number, n: number): Tensor['data']; BYTES_PER_ELEMENT: number };
    const bytes = (n + 2 * GUARD) * Ctor.BYTES_PER_ELEMENT;
    const buf = shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes);
    const all = new Ctor(buf, 0, n + 2 * GUARD);
    all.fill(POISON[t.dtype] ?? 0xa5);
    const view = new Ctor(buf, GUARD * Ctor.BYTES_PER_ELEMENT, n);
    outs[k] = { data: view, shape: t.shape, dtype: t.dtype } as Tensor;
    const snapshot = new Uint8Array(buf.slice(0));
    checks.push(() => {
      const now = new Uint8Array(buf);
      const gb = GUARD * Ctor.BYTES_PER_ELEMENT, end = gb + n * Ctor.BYTES_PER_ELEMENT;
      for (let i = 0; i < now.length; i++) if ((i < gb || i >= end) && now[i] !== snapshot[i]) return `out.${k}: byte ${i - gb} (outside the buffer) was written`;
      return null;
    });
  }
  return { outs, check: () => checks.map((f) => f()).find((x) => x !== null) ?? null };
}

/** Byte snapshot of every input array; check() reports an input that changed. */
export function inputSnapshot(inputs: unknown) {
  const snaps: [string, ArrayBufferView, Uint8Array][] = [];
  if (inputs && typeof inputs === 'object')
    for (const [k, t] of Object.entries(inputs as Record<string, unknown>)) {
      const d = (t as { data?: unknown } | null)?.data;
      if (ArrayBuffer.isView(d) && d.buffer.byteLength > 0) snaps.push([k, d, new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice()]);
    }
  return () => {
    for (const [k, d, s] of snaps) {
      if (d.byteLength !== s.length) continue; // detached by a mutation
      const now = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
      for (let i = 0; i < s.length; i++) if (now[i] !== s[i]) return `input '${k}' byte ${i} was modified`;
    }
    return null;
  };
}

// ---------------------------------------------------------------------------------------------
// mutators: each breaks (or changes the form of) one thing; `expect` is the documented outcome
// ('any' = whatever the js backend does, which the native one must match)

export type Expect = 'TypeError' | 'RangeError' | 'any';
export interface Mutated {
  c: { inputs: unknown; options: unknown };
  expect: Expect;
  what: string;
  /**
   * how results are compared with the reference: 'strict' (SPEC precision, NaN ↔ NaN), 'nonfinite'
   * (an input made ±Inf: where the reference is non-finite the native result must be non-finite,
   * ±Inf·0 vs ±Inf·tiny being a matter of rounding), 'class' (a hyper-parameter beyond 1e6 makes
   * the f32 equations ill-conditioned: same outcome class only)
   */
  values?: 'strict' | 'nonfinite' | 'class';
}

const clone = (c: Case): Case => ({ inputs: { ...c.inputs }, options: { ...c.options } });
const CTORS: Record<string, new (n: number) => Tensor['data']> = { f32: Float32Array, f64: Float64Array, i32: Int32Array, u8: Uint8Array, f16: Uint16Array, bf16: Uint16Array };

function detach(buf: ArrayBuffer) {
  structuredClone(buf, { transfer: [buf] });
}

/** a copy of `d` as a view into a larger buffer at byte offset `byteOff` (a multiple of the element size) */
function offsetCopy(d: Tensor['data'], byteOff: number, shared: boolean): Tensor['data'] {
  const Ctor = d.constructor as unknown as { new (b: ArrayBufferLike, o: number, n: number): Tensor['data']; BYTES_PER_ELEMENT: number };
  const buf = shared ? new SharedArrayBuffer(byteOff + d.byteLength + 8) : new ArrayBuffer(byteOff + d.byteLength + 8);
  const v = new Ctor(buf, byteOff, d.length);
  v.set(d as never);
  new Uint8Array(buf, 0, byteOff).fill(0xee);
  return v;
}

export type Mutator = (spec: OpSpec, c: Case, r: Rng, ref: Outcome) => Mutated | null;

const inputNames = (c: Case) => Object.keys(c.inputs);
const roleOf = (spec: OpSpec, k: string): Role => spec.roles?.[k] ?? 'float';
const numOpts = (spec: OpSpec, c: Case) => [...new Set([...Object.keys(c.options).filter((k) => typeof c.options[k] === 'number'), ...(spec.optNums ?? [])])];

export const MUTATORS: Record<string, Mutator> = {
  /** the valid case as generated */
  none: (_s, c) => ({ c, expect: 'any', what: 'valid' }),
  /** inputs or options not objects */
  notObjects: (_s, c, r) => r.pick([
    { c: { inputs: null, options: c.options }, expect: 'TypeError' as Expect, what: 'inputs null' },
    { c: { inputs: [c.inputs], options: c.options }, expect: 'TypeError' as Expect, what: 'inputs an array' },
    { c: { inputs: c.inputs, options: 5 }, expect: 'TypeError' as Expect, what: 'options a number' },
  ]),
  /** a required or optional input removed */
  dropInput: (_s, c, r) => {
    const k = r.pick(inputNames(c));
    const m = clone(c);
    delete m.inputs[k];
    return { c: m, expect: 'any', what: `without '${k}'` };
  },
  /** an input's data of a dtype its role does not accept */
  wrongDtype: (spec, c, r) => {
    const k = r.pick(inputNames(c));
    const ok = ROLE_DTYPES[roleOf(spec, k)];
    const bad = (['f32', 'f64', 'i32', 'u8', 'f16'] as const).filter((d) => !ok.includes(d));
    const d = r.pick(bad);
    const t = c.inputs[k];
    const m = clone(c);
    const data = new CTORS[d](t.data.length);
    for (let i = 0; i < data.length; i++) data[i] = Number(t.data[i]) || 0;
    m.inputs[k] = { data, shape: t.shape, dtype: d } as Tensor;
    return { c: m, expect: 'TypeError', what: `'${k}' as ${d}` };
  },
  /** data whose length does not match the shape */
  lengthMismatch: (_s, c, r) => {
    const k = r.pick(inputNames(c));
    const t = c.inputs[k];
    const n = Math.max(0, t.data.length + r.pick([-1, 1, 7]));
    if (n === t.data.length) return null;
    const data = new (t.data.constructor as new (n: number) => Tensor['data'])(n);
    const m = clone(c);
    m.inputs[k] = { data, shape: t.shape, dtype: t.dtype } as Tensor;
    return { c: m, expect: 'RangeError', what: `'${k}' with ${n} elements for shape [${t.shape}]` };
  },
  /** a shape entry that is not a size, or sizes whose product exceeds 2^31 elements */
  badShape: (_s, c, r) => {
    const k = r.pick(inputNames(c));
    const t = c.inputs[k];
    const m = clone(c);
    const v = r.pick([-1, 1.5, NaN, Infinity, 2 ** 31, 2 ** 31 + 1, 2 ** 53, -0.5]);
    const shape = t.shape.length ? [...t.shape] : [1];
    const huge = r.bool(0.3);
    if (huge) {
      // dimensions each < 2^31 whose product is > 2^31 elements (far more than the data has)
      m.inputs[k] = { data: t.data, shape: [...t.shape.slice(0, -2), 65536, 65537], dtype: t.dtype } as Tensor;
      return { c: m, expect: 'RangeError', what: `'${k}' with shape [.., 65536, 65537]` };
    }
    shape[r.int(0, shape.length - 1)] = v;
    m.inputs[k] = { data: t.data, shape, dtype: t.dtype } as Tensor;
    return { c: m, expect: 'RangeError', what: `'${k}' with shape [${shape}]` };
  },
  /** a consistent tensor whose shape does not fit the others */
  shapeOff: (_s, c, r) => {
    const k = r.pick(inputNames(c));
    const t = c.inputs[k];
    if (!t.shape.length) return null;
    const shape = [...t.shape];
    const j = r.int(0, shape.length - 1);
    shape[j] = shape[j] + r.pick([1, -1]);
    if (shape[j] < 0) return null;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new (t.data.constructor as new (n: number) => Tensor['data'])(n);
    data.set(t.data.subarray(0, n) as never);
    const m = clone(c);
    m.inputs[k] = { data, shape, dtype: t.dtype } as Tensor;
    return { c: m, expect: 'any', what: `'${k}' reshaped to [${shape}]` };
  },
  /** a numeric option NaN, ±Inf, a string, huge, tiny, negative or fractional */
  badNumber: (spec, c, r) => {
    const names = numOpts(spec, c);
    if (!names.length) return null;
    const k = r.pick(names);
    const v = r.pick([NaN, Infinity, -Infinity, '1', true, 1e39, -1e39, 1e30, 1e-45, -1, 0, 0.5, -0, 2 ** 31, 2 ** 53] as const);
    const m = clone(c);
    m.options[k] = v;
    const expect: Expect = typeof v === 'string' || typeof v === 'boolean' ? 'TypeError'
      : Number.isNaN(v) ? 'RangeError'
      : !Number.isFinite(v) && !spec.infinite?.includes(k) ? 'RangeError' : 'any';
    return { c: m, expect, what: `option ${k} = ${String(v)}`, values: typeof v === 'number' && Math.abs(v) > 1e6 ? 'class' : 'strict' };
  },
  /** an enum option with an unknown string, or not a string */
  badEnum: (spec, c, r) => {
    const names = Object.keys(spec.enums ?? {});
    const m = clone(c);
    if (!names.length || r.bool(0.3)) {
      m.options.backend = r.pick(['gpu', 5, '']);
      return { c: m, expect: typeof m.options.backend === 'string' ? 'RangeError' : 'TypeError', what: `backend ${String(m.options.backend)}` };
    }
    const k = r.pick(names);
    m.options[k] = r.pick(['nope', 7, 'K1', '']);
    return { c: m, expect: typeof m.options[k] === 'string' ? 'RangeError' : 'TypeError', what: `option ${k} = ${String(m.options[k])}` };
  },
  /** a value out of range in an index input (a label, a token id, a length, a layout entry) */
  badIndex: (spec, c, r) => {
    const names = inputNames(c).filter((k) => roleOf(spec, k) === 'index' && c.inputs[k].data.length > 0);
    if (!names.length) return null;
    const k = r.pick(names);
    const t = c.inputs[k];
    const data = Int32Array.from(t.data as Int32Array);
    const i = r.int(0, data.length - 1);
    data[i] = r.pick([-1, -(2 ** 31), 2 ** 31 - 1, 1 << 20, -101]);
    const m = clone(c);
    m.inputs[k] = rk.tensor(data, t.shape, 'i32');
    return { c: m, expect: spec.strictIndex?.includes(k) ? 'RangeError' : 'any', what: `'${k}'[${i}] = ${data[i]}` };
  },
  /** NaN / ±Inf / out-of-range values in a float input (propagate or RangeError, as js does) */
  badValues: (spec, c, r) => {
    const names = inputNames(c).filter((k) => ['float', 'prob', 'length', 'logits'].includes(roleOf(spec, k)) &&
      c.inputs[k].data.length > 0 && !spec.derived?.includes(k));
    if (!names.length) return null;
    const k = r.pick(names);
    const t = c.inputs[k];
    if (t.dtype === 'f16' || t.dtype === 'bf16' || t.dtype === 'i32') return null;
    const data = (t.data as Float32Array).slice();
    const i = r.int(0, data.length - 1);
    data[i] = r.pick(spec.finiteOnly?.includes(k) ? [NaN, -1, 2] : [NaN, Infinity, -Infinity, -1, 2]);
    const m = clone(c);
    m.inputs[k] = { data, shape: t.shape, dtype: t.dtype } as Tensor;
    for (const d of spec.derived ?? []) delete m.inputs[d];
    return { c: m, expect: 'any', what: `'${k}'[${i}] = ${data[i]}`, values: Number.isFinite(data[i]) || Number.isNaN(data[i]) ? 'strict' : 'nonfinite' };
  },
  /** an input whose ArrayBuffer was transferred away (detached: length 0) */
  detached: (_s, c, r) => {
    const k = r.pick(inputNames(c));
    const t = c.inputs[k];
    const m = clone(c);
    const data = t.data.slice() as Tensor['data'];
    detach(data.buffer as ArrayBuffer);
    m.inputs[k] = { data, shape: t.shape, dtype: t.dtype } as Tensor;
    return { c: m, expect: t.data.length > 0 ? 'RangeError' : 'any', what: `'${k}' detached` };
  },
  /** inputs as views into SharedArrayBuffers, at byte offsets (odd ones for u8 masks) */
  sharedAndOffset: (_s, c, r) => {
    const m = clone(c);
    for (const k of inputNames(c)) {
      const t = c.inputs[k];
      const el = t.data.BYTES_PER_ELEMENT;
      const off = el === 1 ? r.pick([1, 3, 5]) : el * r.int(1, 3);
      m.inputs[k] = { data: offsetCopy(t.data, off, r.bool()), shape: t.shape, dtype: t.dtype } as Tensor;
    }
    return { c: m, expect: 'any', what: 'shared / offset views' };
  },
  /** other accepted forms: onnxruntime-style tensors, f64 data (rounded to f32 on entry) */
  otherForms: (spec, c, r) => {
    const m = clone(c);
    const ORT: Record<string, string> = { f32: 'float32', f64: 'float64', i32: 'int32', u8: 'uint8', f16: 'float16', bf16: 'bfloat16' };
    for (const k of inputNames(c)) {
      const t = c.inputs[k];
      if (t.dtype === 'f32' && ROLE_DTYPES[roleOf(spec, k)].includes('f64') && r.bool()) {
        m.inputs[k] = rk.tensor(Float64Array.from(t.data), t.shape, 'f64');
      } else if (r.bool()) m.inputs[k] = { data: t.data, dims: t.shape, type: ORT[t.dtype] } as never;
    }
    return { c: m, expect: 'any', what: 'ort-style / f64 inputs' };
  },
  /** data that is not a typed array of an accepted kind: a DataView, a plain array, a Uint8ClampedArray */
  notTypedArray: (_s, c, r) => {
    const k = r.pick(inputNames(c));
    const t = c.inputs[k];
    const m = clone(c);
    const kind = r.int(0, 3);
    const data = kind === 0 ? new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength)
      : kind === 1 ? Array.from(t.data as ArrayLike<number>)
      : kind === 2 ? new Uint8ClampedArray(t.data.length) : 'abc';
    m.inputs[k] = { data, shape: t.shape, dtype: t.dtype } as never;
    return { c: m, expect: 'TypeError', what: `'${k}' data ${kind === 0 ? 'DataView' : kind === 1 ? 'plain array' : kind === 2 ? 'Uint8ClampedArray' : 'string'}` };
  },
  /** an out buffer that overlaps an input, or another out buffer */
  aliasedOut: (_s, c, r, ref) => {
    if (!ref.ok) return null;
    const outsT = Object.entries(ref.result).filter(([, t]) => isTensor(t) && (t as Tensor).data.length > 0) as [string, Tensor][];
    if (!outsT.length) return null;
    const [name, o] = r.pick(outsT);
    const bytes = o.data.byteLength;
    const Ctor = o.data.constructor as unknown as { new (b: ArrayBufferLike, off: number, n: number): Tensor['data']; BYTES_PER_ELEMENT: number };
    const m = clone(c);
    const candidates = inputNames(c).filter((k) => c.inputs[k].data.byteLength > 0);
    const useOut = outsT.length > 1 && (r.bool() || !candidates.length);
    if (useOut) {
      const [other, o2] = r.pick(outsT.filter(([k]) => k !== name));
      const buf = new ArrayBuffer(Math.max(bytes, o2.data.byteLength) + 64);
      const C2 = o2.data.constructor as unknown as { new (b: ArrayBufferLike, off: number, n: number): Tensor['data'] };
      m.options.out = {
        [name]: { data: new Ctor(buf, 0, o.data.length), shape: o.shape, dtype: o.dtype },
        [other]: { data: new C2(buf, 0, o2.data.length), shape: o2.shape, dtype: o2.dtype },
      };
      return { c: m, expect: 'RangeError', what: `out.${name} and out.${other} share memory` };
    }
    if (!candidates.length) return null;
    const k = r.pick(candidates);
    // a copy of the input, placed so that the out buffer overlaps it (same start, or shifted)
    const t = c.inputs[k];
    const shift = r.pick([0, 32, -8]); // bytes: multiples of every element size
    const inOff = Math.max(0, -shift) + 64, outOff = inOff + shift;
    const buf = new ArrayBuffer(inOff + Math.max(t.data.byteLength, bytes) + 256);
    const InC = t.data.constructor as unknown as { new (b: ArrayBufferLike, off: number, n: number): Tensor['data'] };
    const inView = new InC(buf, inOff, t.data.length);
    inView.set(t.data as never);
    if (outOff + bytes <= inOff || outOff >= inOff + t.data.byteLength) return null;
    m.inputs[k] = { data: inView, shape: t.shape, dtype: t.dtype } as Tensor;
    m.options.out = { [name]: { data: new Ctor(buf, outOff, o.data.length), shape: o.shape, dtype: o.dtype } };
    return { c: m, expect: 'RangeError', what: `out.${name} overlaps input '${k}' (shift ${shift} bytes)` };
  },
  /** an out buffer of the wrong dtype or shape */
  badOut: (_s, c, r, ref) => {
    if (!ref.ok) return null;
    const outsT = Object.entries(ref.result).filter(([, t]) => isTensor(t)) as [string, Tensor][];
    if (!outsT.length) return null;
    const [name, o] = r.pick(outsT);
    const m = clone(c);
    if (r.bool()) {
      const d = o.dtype === 'f32' ? 'i32' : 'f32';
      m.options.out = { [name]: { data: new CTORS[d](o.data.length), shape: o.shape, dtype: d } };
      return { c: m, expect: 'TypeError', what: `out.${name} as ${d}` };
    }
    const n = o.data.length + 1;
    m.options.out = { [name]: { data: new CTORS[o.dtype](n), shape: [n], dtype: o.dtype } };
    return { c: m, expect: 'RangeError', what: `out.${name} of shape [${n}]` };
  },
};
export const MUTATOR_NAMES = Object.keys(MUTATORS);

export interface Verdict { fail: string | null; cls: string; what: string }

/**
 * Runs one property case: mutation `mut` of the valid case `c`; the native backend `backend`
 * against the js reference. Returns the failure (or null) and the outcome class.
 */
export function check(spec: OpSpec, c: Case, mut: string, r: Rng, backend: 'cpu' | 'cuda', guards = true): Verdict {
  const base = call(spec, roundedForJs(c), 'js');
  const mm = MUTATORS[mut](spec, c, r, base);
  if (!mm) return { fail: null, cls: 'skipped', what: `${mut} (not applicable)` };
  // (the aliasing mutation is refused before any arithmetic: js must see the very same buffers)
  const jsCase = mut !== 'aliasedOut' && mm.c.inputs && typeof mm.c.inputs === 'object' && !Array.isArray(mm.c.inputs) ? roundedForJs(mm.c as Case) : mm.c;
  const want = call(spec, jsCase, 'js');
  // guarded out buffers on the native call, for a valid result (half the time, shared memory)
  let native = mm.c;
  let guard: (() => string | null) | null = null;
  if (guards && want.ok && mm.c.options && typeof mm.c.options === 'object' && (mm.c.options as Record<string, unknown>).out === undefined && r.bool(0.6)) {
    const g = guardedOuts(want.result, r.bool(0.3));
    native = { inputs: mm.c.inputs, options: { ...(mm.c.options as object), out: g.outs } };
    guard = g.check;
  }
  const untouched = inputSnapshot(native.inputs);
  const got = call(spec, native, backend);
  const where = `${spec.name} / ${mm.what}`;
  const gc = outcomeClass(got), wc = outcomeClass(want);
  const fail = (s: string): Verdict => ({ fail: `${where}: ${s}`, cls: gc, what: mm.what });
  if (!got.ok && !(got.error instanceof TypeError) && !(got.error instanceof RangeError))
    return fail(`threw ${gc}: ${(got.error as Error)?.message}`);
  if (mm.expect !== 'any' && gc !== mm.expect) return fail(`expected ${mm.expect}, got ${gc}${got.ok ? '' : `: ${(got.error as Error).message}`}`);
  if (gc !== wc) return fail(`${backend} gives ${gc}${got.ok ? '' : ` (${(got.error as Error).message})`}, js gives ${wc}${want.ok ? '' : ` (${(want.error as Error).message})`}`);
  if (!got.ok && !(got.error as Error).message.startsWith(`${spec.name}:`)) return fail(`message does not name the op: ${(got.error as Error).message}`);
  if (got.ok && want.ok && mm.values !== 'class') {
    const d = compare(got.result, want.result, spec.tol ?? 1e-4, mm.values === 'nonfinite');
    if (d) return fail(d);
  }
  const u = untouched();
  if (u) return fail(u);
  if (guard) {
    const gd = guard();
    if (gd) return fail(gd);
  }
  return { fail: null, cls: gc, what: mm.what };
}
