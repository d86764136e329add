/**
 * Tensors: a typed array, a shape and a dtype (SPEC §0).
 *
 * `f16` and `bf16` data are raw 16-bit patterns in a `Uint16Array`. onnxruntime-style objects
 * `{ data, dims, type }` are accepted wherever a tensor is.
 */
import type { DeviceTensor } from './device.js';

export type DType = 'f32' | 'f64' | 'f16' | 'bf16' | 'i32' | 'u8';

export interface ArrayOf {
  f32: Float32Array;
  f64: Float64Array;
  f16: Uint16Array;
  bf16: Uint16Array;
  i32: Int32Array;
  u8: Uint8Array;
}
export type TypedArray = ArrayOf[DType];

export interface Tensor<D extends DType = DType> {
  data: ArrayOf[D];
  shape: readonly number[];
  dtype: D;
}

/** An onnxruntime-web/node style tensor. */
export interface OrtLikeTensor {
  data: TypedArray;
  dims: readonly number[];
  type: string;
}

/** A host tensor, ours or onnxruntime-style. */
export type TensorLike = Tensor | OrtLikeTensor;
/** What op inputs and `options.out` accept: host tensors, or device tensors (all of a call on one device). */
export type AnyTensor = TensorLike | DeviceTensor;

const CTOR: { [D in DType]: new (n: number) => ArrayOf[D] } = {
  f32: Float32Array,
  f64: Float64Array,
  f16: Uint16Array,
  bf16: Uint16Array,
  i32: Int32Array,
  u8: Uint8Array,
};

const ORT_TYPES: Record<string, DType> = {
  float32: 'f32',
  float64: 'f64',
  float16: 'f16',
  bfloat16: 'bf16',
  int32: 'i32',
  uint8: 'u8',
  bool: 'u8',
};

function inferDType(data: unknown): DType | undefined {
  if (data instanceof Float32Array) return 'f32';
  if (data instanceof Float64Array) return 'f64';
  if (data instanceof Int32Array) return 'i32';
  if (data instanceof Uint8Array) return 'u8';
  return undefined;
}

function matches(data: unknown, dtype: DType): boolean {
  return data instanceof (CTOR[dtype] as unknown as new () => unknown);
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkShape(shape: unknown, what: string): readonly number[] {
  if (!Array.isArray(shape)) throw new TypeError(`${what}: shape must be an array of non-negative integers`);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isInteger(d) || d < 0 || d > 2 ** 31 - 1)
      throw new RangeError(`${what}: shape entries must be integers in [0, 2^31), got ${String(d)}`);
  }
  return shape as number[];
}

/**
 * Builds and validates a tensor. `data.length` must equal the product of `shape`; `dtype` is
 * inferred from the array type, except that a `Uint16Array` must say `'f16'` or `'bf16'`.
 * A plain number array is copied into the dtype's array type (default `'f32'`).
 */
export function tensor<D extends DType>(data: ArrayOf[D] | ArrayLike<number>, shape: readonly number[], dtype?: D): Tensor<D> {
  const sh = checkShape(shape, 'tensor');
  let dt: DType | undefined = dtype;
  let arr: unknown = data;
  if (dt !== undefined && !(dt in CTOR)) throw new RangeError(`tensor: unknown dtype '${String(dt)}'`);
  if (Array.isArray(data)) {
    dt = dt ?? 'f32';
    const a = new CTOR[dt](data.length);
    for (let i = 0; i < data.length; i++) (a as TypedArray)[i] = data[i] as number;
    arr = a;
  } else if (ArrayBuffer.isView(data)) {
    const inferred = inferDType(data);
    if (dt === undefined) {
      if (data instanceof Uint16Array) throw new TypeError("tensor: a Uint16Array must say dtype 'f16' or 'bf16'");
      if (inferred === undefined) throw new TypeError(`tensor: unsupported array type ${data.constructor.name}`);
      dt = inferred;
    } else if (!matches(data, dt)) {
      throw new TypeError(`tensor: dtype '${dt}' needs a ${CTOR[dt].name}, got ${data.constructor.name}`);
    }
  } else {
    throw new TypeError('tensor: data must be a typed array or an array of numbers');
  }
  const n = numel(sh);
  if ((arr as TypedArray).length !== n)
    throw new RangeError(`tensor: data has ${(arr as TypedArray).length} elements but shape [${sh.join(', ')}] needs ${n}`);
  return { data: arr as ArrayOf[D], shape: Object.freeze([...sh]), dtype: dt as D };
}

/** A new zero-filled tensor. */
export function zeros<D extends DType>(shape: readonly number[], dtype: D): Tensor<D> {
  return { data: new CTOR[dtype](numel(shape)), shape: Object.freeze([...shape]), dtype };
}

/** Converts a Tensor or an onnxruntime-style object to a Tensor (no copy); TypeError otherwise. */
export function toTensor(x: unknown, name: string): Tensor {
  if (x === null || typeof x !== 'object') throw new TypeError(`${name}: expected a tensor, got ${x === null ? 'null' : typeof x}`);
  const o = x as Record<string, unknown>;
  if ('dtype' in o && 'shape' in o) {
    const dt = o.dtype as DType;
    if (typeof dt !== 'string' || !(dt in CTOR)) throw new TypeError(`${name}: unknown dtype '${String(dt)}'`);
    if (!ArrayBuffer.isView(o.data) || !matches(o.data, dt))
      throw new TypeError(`${name}: dtype '${dt}' needs data as a ${CTOR[dt].name}`);
    const sh = checkShape(o.shape, name);
    if ((o.data as TypedArray).length !== numel(sh))
      throw new RangeError(`${name}: data has ${(o.data as TypedArray).length} elements but shape [${sh.join(', ')}] needs ${numel(sh)}`);
    // an empty view may sit on a detached buffer, which copies (Float32Array.from) reject: use a fresh one
    if ((o.data as TypedArray).length === 0) return { data: new CTOR[dt](0), shape: sh, dtype: dt } as Tensor;
    return o as unknown as Tensor;
  }
  if ('dims' in o && 'type' in o) {
    const dt = ORT_TYPES[o.type as string];
    if (!dt) throw new TypeError(`${name}: unsupported tensor type '${String(o.type)}'`);
    if (!ArrayBuffer.isView(o.data) || !matches(o.data, dt))
      throw new TypeError(`${name}: type '${String(o.type)}' needs data as a ${CTOR[dt].name}`);
    const sh = checkShape(Array.from(o.dims as ArrayLike<number>), name);
    if ((o.data as TypedArray).length !== numel(sh))
      throw new RangeError(`${name}: data has ${(o.data as TypedArray).length} elements but dims [${sh.join(', ')}] need ${numel(sh)}`);
    return { data: (o.data as TypedArray).length ? (o.data as TypedArray) : new CTOR[dt](0), shape: sh, dtype: dt } as Tensor;
  }
  throw new TypeError(`${name}: expected a tensor { data, shape, dtype } or { data, dims, type }`);
}

/** bf16 / f16 bit patterns to numbers (exact). */
export function bf16ToFloat(h: number): number {
  const b = new Uint32Array([h << 16]);
  return new Float32Array(b.buffer)[0];
}
export function f16ToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
/** Round-to-nearest-even float → bf16 / f16 bit patterns (for building test inputs). */
export function floatToBf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  if ((u & 0x7f800000) === 0x7f800000 && u & 0x7fffff) return 0x7fc0;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}
export function floatToF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const s = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  let a = Math.abs(x);
  if (a >= 65520) return s | 0x7c00;
  if (a < 2 ** -14) return s | Math.round(a / 2 ** -24); // subnormal (ties: Math.round is fine for tests)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  let m = Math.round((a / 2 ** e - 1) * 1024);
  if (m === 1024) { m = 0; e += 1; }
  if (e > 15) return s | 0x7c00;
  return s | ((e + 15) << 10) | m;
}

/** Widens an f16/bf16 tensor to numbers (js reference), other dtypes as they are. */
export function readFloat(t: Tensor): ArrayLike<number> {
  if (t.dtype !== 'bf16' && t.dtype !== 'f16') return t.data;
  const src = t.data as Uint16Array;
  const out = new Float32Array(src.length); // exact: every f16/bf16 value is an f32 value
  if (t.dtype === 'bf16') {
    new Uint32Array(out.buffer).set(src); // widen the bit patterns, then shift into place
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < u.length; i++) u[i] <<= 16;
  } else {
    const table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = f16ToFloat(h);
    for (let i = 0; i < src.length; i++) out[i] = table[src[i]];
  }
  return out;
}
