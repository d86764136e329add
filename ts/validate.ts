/**
 * Argument checks shared by every op (SPEC §0 "Errors"): all of them run before any native code.
 * A missing input or a wrong type or dtype is a TypeError; a shape that does not fit, an index out
 * of range or a non-finite / out-of-range hyper-parameter is a RangeError. Messages start with the
 * op and name the argument.
 */
import { resolveBackend, type ResolvedBackend } from './native.js';
import { numel, toTensor, type DType, type Tensor } from './tensor.js';

/** Options every op takes (SPEC §0 "Common options"). */
export interface CommonOptions {
  /** 'auto' (default): the native CPU backend when loaded, else 'js' */
  backend?: 'auto' | 'cpu' | 'cuda' | 'js';
}

export const FLOAT: readonly DType[] = ['f32', 'f64'];
export const LOGITS: readonly DType[] = ['f32', 'f64', 'f16', 'bf16'];
export const MASK: readonly DType[] = ['u8', 'f32'];
export const INT: readonly DType[] = ['i32'];

export interface NumSpec {
  default?: number;
  optional?: boolean;
  /** inclusive bounds */
  min?: number;
  max?: number;
  /** exclusive bounds */
  gt?: number;
  lt?: number;
  integer?: boolean;
  /** allow ±Infinity */
  infinite?: boolean;
}

export interface TensorSpec {
  optional?: boolean;
  shape?: readonly number[];
  rank?: number | readonly number[];
}

const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;
const F32_MAX = 3.4028234663852886e38;
const F32_MIN_NORMAL = 1.1754943508222875e-38;

/** Whether two typed-array views share any byte (same buffer, overlapping ranges). */
function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return a.buffer === b.buffer && a.byteLength > 0 && b.byteLength > 0 &&
    a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength;
}

export class OpArgs {
  readonly op: string;
  readonly inputs: Record<string, unknown>;
  readonly options: Record<string, unknown>;
  /** out buffers taken from options.out so far (for the aliasing check) */
  private readonly given: [string, ArrayBufferView][] = [];

  constructor(op: string, inputs: unknown, options: unknown) {
    this.op = op;
    if (inputs === null || typeof inputs !== 'object' || Array.isArray(inputs))
      throw new TypeError(`${op}: inputs must be an object of named tensors`);
    if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options)))
      throw new TypeError(`${op}: options must be an object`);
    this.inputs = inputs as Record<string, unknown>;
    this.options = (options ?? {}) as Record<string, unknown>;
  }

  typeError(msg: string): never {
    throw new TypeError(`${this.op}: ${msg}`);
  }
  rangeError(msg: string): never {
    throw new RangeError(`${this.op}: ${msg}`);
  }

  /** An input tensor of one of `dtypes`, optionally of an exact shape or rank. */
  tensor(name: string, dtypes: readonly DType[], spec: TensorSpec & { optional: true }): Tensor | undefined;
  tensor(name: string, dtypes: readonly DType[], spec?: TensorSpec): Tensor;
  tensor(name: string, dtypes: readonly DType[], spec: TensorSpec = {}): Tensor | undefined {
    const v = this.inputs[name];
    if (v === undefined || v === null) {
      if (spec.optional) return undefined;
      this.typeError(`missing input '${name}'`);
    }
    let t: Tensor;
    try {
      t = toTensor(v, name);
    } catch (e) {
      const E = e instanceof RangeError ? RangeError : TypeError;
      throw new E(`${this.op}: input ${(e as Error).message}`);
    }
    if (!dtypes.includes(t.dtype))
      this.typeError(`input '${name}' must have dtype ${dtypes.map((d) => `'${d}'`).join(' or ')}, got '${t.dtype}'`);
    if (spec.rank !== undefined) {
      const ranks = typeof spec.rank === 'number' ? [spec.rank] : spec.rank;
      if (!ranks.includes(t.shape.length))
        this.rangeError(`input '${name}' must have rank ${ranks.join(' or ')}, got shape ${shapeStr(t.shape)}`);
    }
    if (spec.shape) this.expectShape(t, name, spec.shape);
    return t;
  }

  float(name: string, spec: TensorSpec & { optional: true }): Tensor | undefined;
  float(name: string, spec?: TensorSpec): Tensor;
  float(name: string, spec: TensorSpec = {}): Tensor | undefined {
    return this.tensor(name, FLOAT, spec);
  }
  mask(name: string, spec: TensorSpec & { optional: true }): Tensor | undefined;
  mask(name: string, spec?: TensorSpec): Tensor;
  mask(name: string, spec: TensorSpec = {}): Tensor | undefined {
    return this.tensor(name, MASK, spec);
  }

  expectShape(t: Tensor, name: string, shape: readonly number[]): void {
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      this.rangeError(`input '${name}' must have shape ${shapeStr(shape)}, got ${shapeStr(t.shape)}`);
  }

  /** A numeric option. Non-number → TypeError; NaN, ±Inf (unless allowed) or out of range → RangeError. */
  num(name: string, spec: NumSpec & { optional: true }): number | undefined;
  num(name: string, spec?: NumSpec): number;
  num(name: string, spec: NumSpec = {}): number | undefined {
    let v = this.options[name];
    if (v === undefined) {
      if (spec.default !== undefined) v = spec.default;
      else if (spec.optional) return undefined;
      else this.typeError(`missing option '${name}' (a number)`);
    }
    if (typeof v !== 'number') this.typeError(`option '${name}' must be a number, got ${typeof v}`);
    if (Number.isNaN(v) || (!spec.infinite && !Number.isFinite(v)))
      this.rangeError(`option '${name}' must be a finite number, got ${v}`);
    // The native kernels compute in f32: a finite hyper-parameter must be a normal f32 value (or 0)
    if (Number.isFinite(v) && v !== 0 && !(Math.abs(v) >= F32_MIN_NORMAL && Math.abs(v) <= F32_MAX))
      this.rangeError(`option '${name}' must be 0 or of magnitude in [1.2e-38, 3.4e38] (the f32 range), got ${v}`);
    if (spec.integer && !Number.isInteger(v)) this.rangeError(`option '${name}' must be an integer, got ${v}`);
    if (spec.min !== undefined && v < spec.min) this.rangeError(`option '${name}' must be >= ${spec.min}, got ${v}`);
    if (spec.max !== undefined && v > spec.max) this.rangeError(`option '${name}' must be <= ${spec.max}, got ${v}`);
    if (spec.gt !== undefined && !(v > spec.gt)) this.rangeError(`option '${name}' must be > ${spec.gt}, got ${v}`);
    if (spec.lt !== undefined && !(v < spec.lt)) this.rangeError(`option '${name}' must be < ${spec.lt}, got ${v}`);
    return v;
  }

  bool(name: string, def: boolean): boolean {
    const v = this.options[name];
    if (v === undefined) return def;
    if (typeof v !== 'boolean') this.typeError(`option '${name}' must be a boolean, got ${typeof v}`);
    return v;
  }

  /** A string enum option: non-string → TypeError, unknown string → RangeError. */
  oneOf<S extends string>(name: string, values: readonly S[], def?: S): S {
    const v = this.options[name];
    if (v === undefined) {
      if (def !== undefined) return def;
      this.typeError(`missing option '${name}' (one of ${values.map((s) => `'${s}'`).join(', ')})`);
    }
    if (typeof v !== 'string') this.typeError(`option '${name}' must be a string, got ${typeof v}`);
    if (!values.includes(v as S))
      this.rangeError(`option '${name}' must be one of ${values.map((s) => `'${s}'`).join(', ')}, got '${v}'`);
    return v as S;
  }

  backend(): ResolvedBackend {
    return resolveBackend(this.options.backend, this.op);
  }

  /**
   * The output buffer `name`: `options.out[name]` when given (wrong dtype → TypeError, wrong shape
   * → RangeError), else a new zero-filled tensor.
   */
  out<D extends DType>(name: string, dtype: D, shape: readonly number[]): Tensor<D> {
    const outs = this.options.out;
    if (outs !== undefined && outs !== null) {
      if (typeof outs !== 'object') this.typeError(`options.out must be an object of tensors`);
      const o = (outs as Record<string, unknown>)[name];
      if (o !== undefined && o !== null) {
        let t: Tensor;
        try {
          t = toTensor(o, `out.${name}`);
        } catch (e) {
          const E = e instanceof RangeError ? RangeError : TypeError;
          throw new E(`${this.op}: ${(e as Error).message}`);
        }
        if (t.dtype !== dtype) this.typeError(`out.${name} must have dtype '${dtype}', got '${t.dtype}'`);
        if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
          this.rangeError(`out.${name} must have shape ${shapeStr(shape)}, got ${shapeStr(t.shape)}`);
        // SPEC §0: an out buffer shares no memory with an input or with another out buffer
        for (const k in this.inputs) {
          const d = (this.inputs[k] as { data?: unknown } | null)?.data;
          if (ArrayBuffer.isView(d) && overlaps(t.data, d)) this.rangeError(`out.${name} shares memory with input '${k}'`);
        }
        for (const [k, d] of this.given) if (overlaps(t.data, d)) this.rangeError(`out.${name} shares memory with out.${k}`);
        this.given.push([name, t.data]);
        return t as Tensor<D>;
      }
    }
    const Ctor = { f32: Float32Array, f64: Float64Array, f16: Uint16Array, bf16: Uint16Array, i32: Int32Array, u8: Uint8Array }[dtype];
    return { data: new Ctor(numel(shape)), shape: Object.freeze([...shape]), dtype } as unknown as Tensor<D>;
  }
}

/** Float data for a native call: f32 as is, f64 rounded to f32 once (SPEC §0). */
export function f32Data(t: Tensor): Float32Array {
  if (t.dtype === 'f32') return t.data as Float32Array;
  return Float32Array.from(t.data as Float64Array);
}
/** Optional variant. */
export function f32DataOpt(t: Tensor | undefined): Float32Array | null {
  return t ? f32Data(t) : null;
}
/** Mask data for a native call (u8 or f32 as is), null when absent. */
export function maskData(t: Tensor | undefined): Uint8Array | Float32Array | null {
  return t ? (t.data as Uint8Array | Float32Array) : null;
}
/** Logits for a native call: data plus dtype code (0 f32, 1 f16, 2 bf16); f64 rounded to f32. */
export function logitsData(t: Tensor): { data: Float32Array | Uint16Array; code: number } {
  if (t.dtype === 'f16') return { data: t.data as Uint16Array, code: 1 };
  if (t.dtype === 'bf16') return { data: t.data as Uint16Array, code: 2 };
  return { data: f32Data(t), code: 0 };
}

/** Counted-ness of element i of a mask (undefined mask: everything counts). Reference backend helper. */
export function counts(mask: Tensor | undefined, i: number): boolean {
  return mask === undefined || mask.data[i] !== 0;
}
