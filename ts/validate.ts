/**
 * Argument checks shared by every op (SPEC §0 "Errors"): all of them run before any native code.
 * A missing input or a wrong type or dtype is a TypeError; a shape that does not fit, an index out
 * of range or a non-finite / out-of-range hyper-parameter is a RangeError. Messages start with the
 * op and name the argument.
 */
import { callTemp, inAsyncStep, noteBackend } from './async.js';
import { cuda, DeviceTensor, deviceEmpty, deviceScalars, deviceToF32, deviceWrite, hostTensor, type CudaStream } from './device.js';
import { native, resolveBackend, type ResolvedBackend } from './native.js';
import { numel, readFloat, tensor, toTensor, type ArrayOf, type DType, type Tensor, type TypedArray } from './tensor.js';

/** Options every op takes (SPEC §0 "Common options"). */
export interface CommonOptions {
  /** 'auto' (default): CUDA for device tensors, else the native CPU backend when loaded, else 'js' */
  backend?: 'auto' | 'cpu' | 'cuda' | 'js';
  /** device tensors: the CUDA stream to run on (default: the device's own stream) */
  stream?: CudaStream;
}

/** Outputs of an `.async` call at least this large are allocated in addon-owned memory, which
 * the worker writes in place (smaller ones are written through a copy). */
const OWNED_OUTPUT_BYTES = 64 * 1024;
const ELEM_BYTES: Record<DType, number> = { f32: 4, f64: 8, f16: 2, bf16: 2, i32: 4, u8: 1 };

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
  /** Device of the device-tensor inputs (−1: emulated), undefined while every input is on the host. */
  device: number | undefined = undefined;
  private host = false;

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
    if (v instanceof DeviceTensor) {
      this.noteDevice(v, `input '${name}'`);
      t = v as unknown as Tensor; // .data is the native handle: read values with values()
    } else {
      try {
        t = toTensor(v, name);
      } catch (e) {
        const E = e instanceof RangeError ? RangeError : TypeError;
        throw new E(`${this.op}: input ${(e as Error).message}`);
      }
      this.noteHost(`input '${name}'`);
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

  /** A device tensor joins the call: all device tensors of a call live on one device. */
  private noteDevice(t: DeviceTensor, what: string): void {
    if (t.disposed) this.typeError(`${what} is a disposed device tensor`);
    if (this.host) this.typeError(`${what} is a device tensor but other tensors of the call are host tensors (mixing host and device tensors is not allowed)`);
    if (this.device === undefined) this.device = t.device;
    else if (this.device !== t.device) this.typeError(`${what} is on device ${t.device}, other inputs on device ${this.device}`);
  }
  private noteHost(what: string): void {
    if (this.device !== undefined) this.typeError(`${what} is a host tensor but other tensors of the call are device tensors (mixing host and device tensors is not allowed)`);
    this.host = true;
  }

  /** Device inputs run on 'cuda' (their device); else options.backend as resolved by native.ts. */
  backend(): ResolvedBackend {
    if (this.device !== undefined) {
      const b = this.options.backend;
      if (b !== undefined && typeof b !== 'string') this.typeError('options.backend must be a string');
      if (b !== undefined && b !== 'auto' && b !== 'cuda')
        this.typeError(`the inputs are device tensors: options.backend must be 'auto' or 'cuda', got '${String(b)}'`);
      noteBackend('cuda');
      return 'cuda';
    }
    const b = resolveBackend(this.options.backend, this.op);
    noteBackend(b);
    return b;
  }

  /** The values of an input for host-side checks: the host data, or a copy read back from the device. */
  values<D extends DType>(t: Tensor<D>): Tensor<D>['data'] {
    return t instanceof DeviceTensor ? (t.toHost() as Tensor<D>).data : t.data;
  }

  /**
   * An output computed on the host whatever the inputs (host bookkeeping ops: packSequences,
   * prepack): a host tensor, which deliver() uploads for device inputs.
   */
  hostOut<D extends DType>(name: string, dtype: D, shape: readonly number[]): Tensor<D> {
    if (this.device === undefined) return this.out(name, dtype, shape);
    return { data: new ({ f32: Float32Array, f64: Float64Array, f16: Uint16Array, bf16: Uint16Array, i32: Int32Array, u8: Uint8Array }[dtype])(numel(shape)), shape: Object.freeze([...shape]), dtype } as unknown as Tensor<D>;
  }
  /** The result of a host bookkeeping op: for device inputs, its hostOut tensors on the device
   * (written into options.out device tensors when given). */
  deliver<R extends object>(res: R): R {
    if (this.device === undefined) return res;
    const r = { ...res } as Record<string, unknown>;
    for (const [k, v] of Object.entries(r)) {
      if (v === undefined || v instanceof DeviceTensor) continue;
      const h = v as Tensor;
      const d = this.out(k, h.dtype, h.shape) as unknown as DeviceTensor;
      deviceWrite(d, h.data);
      r[k] = d;
    }
    return r as R;
  }

  /** A host array on the call's device, for the call only (freed after it). */
  upload<D extends DType>(data: TypedArray, shape: readonly number[], dtype?: D): Tensor<D> {
    const t = tensor(data as ArrayOf[D], shape, dtype);
    return callTemp(cuda.upload(t, { device: this.device })) as unknown as Tensor<D>;
  }

  /**
   * Scalar results (loss, accuracy, ...) written by the native call: a Float64Array, or for
   * device inputs an f64 device buffer whose elements are returned as DeviceScalars.
   */
  scalars(n: number): { data: Float64Array; get(i: number): number } {
    if (this.device === undefined) {
      const data = new Float64Array(n);
      return { data, get: (i) => data[i] };
    }
    const s = deviceScalars(this.device, n);
    return { data: s.buffer as unknown as Float64Array, get: (i) => s.scalar(i) as unknown as number };
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
      if (o instanceof DeviceTensor) {
        if (this.device === undefined) this.typeError(`out.${name} is a device tensor but the inputs are host tensors`);
        if (o.device !== this.device) this.typeError(`out.${name} is on device ${o.device}, the inputs on device ${this.device}`);
        if (o.disposed) this.typeError(`out.${name} is a disposed device tensor`);
        if (o.dtype !== dtype) this.typeError(`out.${name} must have dtype '${dtype}', got '${o.dtype}'`);
        if (o.shape.length !== shape.length || o.shape.some((d, i) => d !== shape[i]))
          this.rangeError(`out.${name} must have shape ${shapeStr(shape)}, got ${shapeStr(o.shape)}`);
        return o as unknown as Tensor<D>;
      }
      if (o !== undefined && o !== null) {
        if (this.device !== undefined) this.typeError(`out.${name} is a host tensor but the inputs are device tensors`);
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
    if (this.device !== undefined) return deviceEmpty(this.device, shape, dtype) as unknown as Tensor<D>;
    if (native && inAsyncStep() && numel(shape) * ELEM_BYTES[dtype] >= OWNED_OUTPUT_BYTES) return hostTensor(shape, dtype);
    const Ctor = { f32: Float32Array, f64: Float64Array, f16: Uint16Array, bf16: Uint16Array, i32: Int32Array, u8: Uint8Array }[dtype];
    return { data: new Ctor(numel(shape)), shape: Object.freeze([...shape]), dtype } as unknown as Tensor<D>;
  }
}

/** `temperature` (default 1): > 0 with a finite f32 reciprocal (the kernels multiply by 1/τ). */
export function temperatureOf(a: OpArgs): number {
  const t = a.num('temperature', { default: 1, gt: 0 });
  const f = Math.fround(t);
  if (!(f > 0) || !Number.isFinite(Math.fround(1 / f))) a.rangeError(`option 'temperature' must be > 0 and representable in f32 (with a finite 1/temperature), got ${t}`);
  return t;
}

/** `ignoreIndex` (default −100): any 32-bit integer. */
export const ignoreIndexOf = (a: OpArgs) => a.num('ignoreIndex', { default: -100, integer: true, min: -(2 ** 31), max: 2 ** 31 - 1 });

/** labels: i32 shaped like the logits' rows; each in [0, V) or ignoreIndex, else RangeError. */
export function readLabels(a: OpArgs, rows: readonly number[], V: number, ignore: number, optional: boolean): Int32Array | undefined {
  const t = optional ? a.tensor('labels', INT, { optional: true, shape: rows }) : a.tensor('labels', INT, { shape: rows });
  if (!t) return undefined;
  const d = a.values(t) as Int32Array; // device labels are read back (N int32) to be checked here
  for (let i = 0; i < d.length; i++) {
    const y = d[i];
    if (y !== ignore && (y < 0 || y >= V))
      a.rangeError(`labels[${i}] = ${y} is out of range: expected an integer in [0, ${V}) or ignoreIndex (${ignore})`);
  }
  return t.data as Int32Array;
}

/** Float data for a native call: f32 as is, f64 rounded to f32 once (SPEC §0); on a device the
 * rounding runs there, into a temporary freed after the call. */
export function f32Data(t: Tensor): Float32Array {
  if (t.dtype === 'f32') return t.data as Float32Array;
  if (t instanceof DeviceTensor) return callTemp(deviceToF32(t)).data as unknown as Float32Array;
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

/** A float tensor (f32/f64/f16/bf16) widened to f32 for a native call: on the device for device
 * tensors (a temporary freed after the call). */
export function widenF32(t: Tensor): Float32Array {
  if (t instanceof DeviceTensor) return t.dtype === 'f32' ? (t.data as unknown as Float32Array) : (callTemp(deviceToF32(t)).data as unknown as Float32Array);
  return t.dtype === 'f32' ? (t.data as Float32Array) : Float32Array.from(readFloat(t));
}

export type { TypedArray };

/** Counted-ness of element i of a mask (undefined mask: everything counts). Reference backend helper. */
export function counts(mask: Tensor | undefined, i: number): boolean {
  return mask === undefined || mask.data[i] !== 0;
}
