/**
 * The call driver of every op (docs/device.md): `defineOp(name, impl)` turns an op written as a
 * generator — validation, output allocation, then `yield nat().<op>(...)` for each native call,
 * then the result — into the synchronous op and its `.async` form.
 *
 * - Sync: the generator runs to completion; each `yield` hands back the native call's value.
 * - Async: the same generator, with `nat()` resolving to the addon's `<op>Async` functions, which
 *   run the kernel off the JavaScript thread (an N-API AsyncWorker) and return a Promise; the
 *   driver awaits it and resumes the generator with its value. Validation errors reject the
 *   Promise. Calls on less array data than `setAsyncInlineBytes()` (default 256 KiB) run inline:
 *   handing them to a worker would cost more than the kernel.
 * - Device tensors: the same code; OpArgs (validate.ts) allocates device outputs, and
 *   `options.stream` is set as the call's stream around each step.
 */
import { native } from './native.js';
import { CudaStream, setCallStream, type DeviceTensor, type DeviceScalar } from './device.js';
import type { DType, Tensor, TensorLike } from './tensor.js';

type AnyFn = (...args: unknown[]) => unknown;

let asyncStep = false;
/** set by OpArgs.backend() during an async step: CUDA calls on host arrays always go to a worker */
let stepUsesCuda = false;
let inlineBytes = Number(process.env.RLHF_KERNELS_ASYNC_INLINE_BYTES ?? 256 * 1024);
if (!Number.isFinite(inlineBytes) || inlineBytes < 0) inlineBytes = 256 * 1024;
let asyncTable: Record<string, AnyFn> | null = null;
/** device tensors created for the op being called (f64 → f32 conversions), disposed after it */
let temps: DeviceTensor[] | null = null;

/** True while an `.async` call's generator step runs (outputs are allocated for a worker). */
export function inAsyncStep(): boolean {
  return asyncStep;
}

/** OpArgs.backend() reports the resolved backend of the call being stepped. */
export function noteBackend(b: string): void {
  if (asyncStep && b === 'cuda') stepUsesCuda = true;
}

/** Registers a device tensor to dispose when the current op call is done. */
export function callTemp<T extends DeviceTensor>(t: T): T {
  (temps ??= []).push(t);
  return t;
}

/** Bytes of array data below which `.async` runs a call inline (returns a settled Promise). */
export function setAsyncInlineBytes(bytes: number): number {
  if (typeof bytes !== 'number' || !(bytes >= 0)) throw new RangeError('setAsyncInlineBytes: bytes must be a number >= 0');
  const prev = inlineBytes;
  inlineBytes = bytes;
  return prev;
}

const ELEM: Record<number, number> = { 0: 4, 1: 2, 2: 2, 3: 8, 4: 4, 5: 1 };
/** Decides inline vs worker from the arguments: CUDA device buffers always go to a worker. */
function offload(args: unknown[]): boolean {
  let bytes = 0;
  for (const a of args) {
    if (a === null || typeof a !== 'object') continue;
    if (ArrayBuffer.isView(a)) bytes += a.byteLength;
    else {
      const b = a as { device?: unknown; dtype?: unknown; length?: unknown };
      if (typeof b.device === 'number' && typeof b.dtype === 'number' && typeof b.length === 'number') {
        if (b.device >= 0) return true;
        bytes += b.length * (ELEM[b.dtype] ?? 1);
      }
    }
  }
  return bytes >= inlineBytes;
}

function buildAsyncTable(): Record<string, AnyFn> {
  const n = native as unknown as Record<string, unknown>;
  const t: Record<string, AnyFn> = {};
  for (const k of Object.keys(n)) {
    const sync = n[k], asy = n[k + 'Async'];
    if (typeof sync === 'function' && typeof asy === 'function') {
      t[k] = (...args: unknown[]) => (stepUsesCuda || offload(args) ? (asy as AnyFn)(...args) : (sync as AnyFn)(...args));
    }
  }
  return t;
}

/**
 * The addon, for an op's native calls: the synchronous functions, or inside an `.async` step the
 * asynchronous ones (which return Promises the driver awaits).
 */
export function opNative<T>(): T {
  if (!asyncStep) return native as T;
  return (asyncTable ??= buildAsyncTable()) as unknown as T;
}

function streamOf(options: unknown): CudaStream | null {
  if (options === null || typeof options !== 'object') return null;
  const s = (options as { stream?: unknown }).stream;
  if (s === undefined || s === null) return null;
  if (!(s instanceof CudaStream)) throw new TypeError('options.stream must be a CudaStream from cuda.createStream()');
  return s;
}

function disposeAll(ts: DeviceTensor[] | null) {
  if (ts) for (const t of ts) t.dispose();
}

const isThenable = (v: unknown): v is PromiseLike<unknown> =>
  v !== null && typeof v === 'object' && typeof (v as { then?: unknown }).then === 'function';

/** Host tensors → device tensors, numbers → device scalars: an op's result on device inputs. */
export type OnDevice<R> = R extends Tensor<infer D>
  ? DeviceTensor<D>
  : R extends number
    ? DeviceScalar
    : R extends readonly unknown[]
      ? R
      : R extends object
        ? { [K in keyof R]: OnDevice<R[K]> }
        : R;
/** The inputs object with every tensor a device tensor. */
export type DeviceInputs<I> = { [K in keyof I]: Extract<I[K], TensorLike> extends never ? I[K] : DeviceTensor | Exclude<I[K], TensorLike> };

/** An op: call it, or `.async(...)` for a Promise computed off the JavaScript thread. */
export interface Op<I, Rest extends unknown[], R> {
  (inputs: I, ...rest: Rest): R;
  (inputs: DeviceInputs<I>, ...rest: Rest): OnDevice<R>;
  async: {
    (inputs: I, ...rest: Rest): Promise<R>;
    (inputs: DeviceInputs<I>, ...rest: Rest): Promise<OnDevice<R>>;
  };
  /** the op's name (as exported) */
  readonly opName: string;
}

/** Drives an op generator synchronously. */
export function runSync<R>(g: Generator<unknown, R, unknown>, options: unknown): R {
  const savedTemps = temps;
  temps = null;
  const stream = streamOf(options);
  if (stream) setCallStream(stream);
  try {
    let r = g.next();
    while (!r.done) r = g.next(r.value);
    return r.value;
  } finally {
    if (stream) setCallStream(null);
    disposeAll(temps);
    temps = savedTemps;
  }
}

async function runAsync<R>(g: Generator<unknown, R, unknown>, options: unknown): Promise<R> {
  const mine: DeviceTensor[] = [];
  const stream = streamOf(options);
  let value: unknown = undefined;
  let usesCuda = false;
  try {
    for (;;) {
      const savedStep = asyncStep, savedTemps = temps, savedCuda = stepUsesCuda;
      asyncStep = true;
      stepUsesCuda = usesCuda;
      temps = mine;
      if (stream) setCallStream(stream);
      let r: IteratorResult<unknown, R>;
      try {
        r = g.next(value);
      } finally {
        if (stream) setCallStream(null);
        usesCuda = stepUsesCuda;
        asyncStep = savedStep;
        temps = savedTemps;
        stepUsesCuda = savedCuda;
      }
      if (r.done) return r.value;
      value = isThenable(r.value) ? await r.value : r.value;
    }
  } finally {
    disposeAll(mine);
  }
}

/**
 * Defines an op from its generator implementation (see the file comment). A new op family
 * writes `export const myOp = defineOp('myOp', function* (inputs: MyInputs, options?: MyOptions)
 * { const a = new OpArgs('myOp', inputs, options); ...; yield nat().myOp(...); return {...}; })`.
 */
export function defineOp<I, Rest extends unknown[], R>(
  name: string,
  impl: (inputs: I, ...rest: Rest) => Generator<unknown, R, unknown>,
): Op<I, Rest, R> {
  const op = function (inputs: I, ...rest: Rest): R {
    return runSync(impl(inputs, ...rest), rest[0]);
  } as unknown as Op<I, Rest, R>;
  const asyncFn = function (inputs: I, ...rest: Rest): Promise<R> {
    let g: Generator<unknown, R, unknown>;
    try {
      g = impl(inputs, ...rest);
    } catch (e) {
      return Promise.reject(e);
    }
    return runAsync(g, rest[0]);
  };
  Object.defineProperty(op, 'name', { value: name });
  Object.defineProperty(op, 'opName', { value: name });
  Object.defineProperty(asyncFn, 'name', { value: `${name}.async` });
  (op as { async: unknown }).async = asyncFn;
  return op;
}

export type { DType };

/** The generator type of an op implementation returning R. */
export type Gen<R> = Generator<unknown, R, unknown>;
