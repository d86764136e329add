/**
 * Device tensors (SPEC §0 "Device tensors"; design in docs/device.md).
 *
 * `cuda.upload(tensor)` copies a host tensor to a GPU and returns a `DeviceTensor` (same shape and
 * dtype). Every op accepts device tensors for all its inputs; it then runs on that device, writes
 * its outputs to new device tensors (or to `options.out` device tensors) and returns scalar
 * results (`loss`, `accuracy`, ...) as `DeviceScalar`s, read only when asked (`item()`). Nothing
 * is copied back unless you call `toHost()`. Memory comes from a per-device pool (after warm-up
 * no call reaches cudaMalloc) and goes back to it on `dispose()`, or when the handle is garbage
 * collected.
 *
 * The emulated device (`{ device: 'emulated' }`, id −1) keeps device tensors in host memory and
 * runs the CPU kernels: the same code paths, usable on machines without a GPU (tests, CI).
 */
import { native, nativeLoadError } from './native.js';
import { numel, toTensor, type DType, type Tensor, type TensorLike, type TypedArray } from './tensor.js';

/** The addon's device buffer handle (src/addon/device.cc). */
export interface NativeDeviceBuffer {
  readonly device: number;
  readonly length: number;
  readonly dtype: number;
  readonly disposed: boolean;
  dispose(): void;
}
/** The addon's stream handle. */
export interface NativeStream {
  readonly device: number;
  destroy(): void;
}

export interface MemoryStats {
  /** bytes the device's pool holds from the driver (0 on the emulated device) */
  reserved: number;
  /** bytes handed out */
  used: number;
  reservedHigh: number;
  usedHigh: number;
  /** bytes copied host → device and device → host by this addon instance so far (uploads,
   * downloads, and the small index arrays read back for validation) */
  hostToDevice: number;
  deviceToHost: number;
}

interface DeviceNative {
  devAlloc(device: number, dtype: number, length: number): NativeDeviceBuffer;
  devUpload(data: TypedArray, device: number, dtype: number): NativeDeviceBuffer;
  devWrite(buf: NativeDeviceBuffer, data: TypedArray): void;
  devRead(buf: NativeDeviceBuffer, out: TypedArray): void;
  devReadAsync(buf: NativeDeviceBuffer, out: TypedArray): Promise<void>;
  devConvertF32(buf: NativeDeviceBuffer): NativeDeviceBuffer;
  devSlice(buf: NativeDeviceBuffer, offset: number, length: number): NativeDeviceBuffer;
  devCopy(dst: NativeDeviceBuffer, src: NativeDeviceBuffer): void;
  devStream(device: number): NativeStream;
  setStream(s: NativeStream | null): void;
  devSynchronize(device: number, s: NativeStream | null): void;
  devMemoryStats(device: number): MemoryStats;
  devEmptyCache(device: number): void;
  setDefaultDevice(device: number): void;
  hostArray(dtype: number, length: number): TypedArray;
}

export const DTYPE_CODE: Record<DType, number> = { f32: 0, f16: 1, bf16: 2, f64: 3, i32: 4, u8: 5 };
const CTOR: Record<DType, new (n: number) => TypedArray> = {
  f32: Float32Array, f64: Float64Array, f16: Uint16Array, bf16: Uint16Array, i32: Int32Array, u8: Uint8Array,
};

/** The addon's device functions, or an Error saying why there are none. */
export function dev(): DeviceNative {
  if (!native) throw new Error(`rlhf-kernels: device tensors unavailable: native addon ${nativeLoadError}`);
  return native as unknown as DeviceNative;
}

/** The emulated device: host memory, CPU kernels, the device code paths. */
export const EMULATED = -1;
export type DeviceId = number | 'emulated';
const deviceIndex = (d: DeviceId | undefined): number => {
  if (d === undefined) return defaultDevice;
  if (d === 'emulated') return EMULATED;
  if (typeof d !== 'number' || !Number.isInteger(d)) throw new TypeError(`rlhf-kernels: device must be an integer or 'emulated', got ${String(d)}`);
  return d;
};
let defaultDevice = 0;

/** A tensor in device memory: the shape and dtype of the host tensor it came from. */
export class DeviceTensor<D extends DType = DType> {
  readonly shape: readonly number[];
  readonly dtype: D;
  /** the addon's handle (pass it to native code only through the ops) */
  readonly buffer: NativeDeviceBuffer;

  /** @internal use cuda.upload / cuda.empty */
  constructor(buffer: NativeDeviceBuffer, shape: readonly number[], dtype: D) {
    this.buffer = buffer;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
  }
  /** @internal the native handle (what the ops pass to the addon in place of a typed array) */
  get data(): NativeDeviceBuffer {
    return this.buffer;
  }
  /** CUDA device index, or −1 for the emulated device */
  get device(): number {
    return this.buffer.device;
  }
  get size(): number {
    return this.buffer.length;
  }
  get disposed(): boolean {
    return this.buffer.disposed;
  }
  /** Copies to a new host tensor, waiting for the work that writes this tensor. */
  toHost(): Tensor<D> {
    this.check();
    const data = new CTOR[this.dtype](this.buffer.length);
    dev().devRead(this.buffer, data);
    return { data, shape: this.shape, dtype: this.dtype } as unknown as Tensor<D>;
  }
  /** toHost() with the wait and the copy off the JavaScript thread. */
  async toHostAsync(): Promise<Tensor<D>> {
    this.check();
    const data = new CTOR[this.dtype](this.buffer.length);
    await dev().devReadAsync(this.buffer, data);
    return { data, shape: this.shape, dtype: this.dtype } as unknown as Tensor<D>;
  }
  /** Returns the memory to the device's pool (after the queued work that uses it). Idempotent. */
  dispose(): void {
    this.buffer.dispose();
  }
  protected check(): void {
    if (this.buffer.disposed) throw new TypeError('rlhf-kernels: the device tensor was disposed');
  }
}

/** A scalar result of an op on device tensors (f64, shape []), read only when asked. */
export class DeviceScalar extends DeviceTensor<'f64'> {
  /** The value (waits for the op). */
  item(): number {
    return this.toHost().data[0];
  }
  async itemAsync(): Promise<number> {
    return (await this.toHostAsync()).data[0];
  }
}

/** A CUDA stream (cuda.createStream); pass it as `options.stream` to run an op on it. */
export class CudaStream {
  /** @internal */
  readonly handle: NativeStream;
  /** @internal */
  constructor(handle: NativeStream) {
    this.handle = handle;
  }
  get device(): number {
    return this.handle.device;
  }
  /** Waits until the work queued on this stream is done. */
  synchronize(): void {
    dev().devSynchronize(this.handle.device, this.handle);
  }
  /** Releases the stream (once its queued work and the tensors last used on it are done). */
  destroy(): void {
    this.handle.destroy();
  }
}

function wrap<D extends DType>(buf: NativeDeviceBuffer, shape: readonly number[], dtype: D): DeviceTensor<D> {
  return new DeviceTensor(buf, shape, dtype);
}

/** @internal new device tensor (uninitialised; the emulated device fills it with 0xFF bytes) */
export function deviceEmpty<D extends DType>(device: number, shape: readonly number[], dtype: D): DeviceTensor<D> {
  return wrap(dev().devAlloc(device, DTYPE_CODE[dtype], numel(shape)), shape, dtype);
}
/** @internal f64 scalar results of an op: one device buffer, read as views */
export function deviceScalars(device: number, n: number): { buffer: NativeDeviceBuffer; scalar(i: number): DeviceScalar } {
  const buffer = dev().devAlloc(device, DTYPE_CODE.f64, n);
  return { buffer, scalar: (i: number) => new DeviceScalar(dev().devSlice(buffer, i, 1), [], 'f64') };
}
/** @internal an f32 copy of a float device tensor (f64 / f16 / bf16) */
export function deviceToF32(t: DeviceTensor): DeviceTensor<'f32'> {
  return wrap(dev().devConvertF32(t.buffer), t.shape, 'f32');
}
/** @internal a host array uploaded into an existing device tensor */
export function deviceWrite(t: DeviceTensor, data: TypedArray): void {
  dev().devWrite(t.buffer, data);
}
/** @internal stream of the op being called (ts/async.ts sets it around each call) */
export function setCallStream(s: CudaStream | null): void {
  dev().setStream(s ? s.handle : null);
}

/** Device tensors, streams and memory (SPEC §0). */
export const cuda = {
  /** the emulated device id (−1) */
  EMULATED,
  /** Copies a host tensor to a device (default: cuda.setDevice's, initially 0). */
  upload<D extends DType>(t: TensorLike | Tensor<D>, opts: { device?: DeviceId } = {}): DeviceTensor<D> {
    if (t instanceof DeviceTensor) throw new TypeError('cuda.upload: the tensor is already on a device');
    const h = toTensor(t, 'cuda.upload') as Tensor<D>;
    return wrap(dev().devUpload(h.data, deviceIndex(opts.device), DTYPE_CODE[h.dtype]), h.shape, h.dtype);
  },
  /** A new device tensor whose contents are unspecified until written. */
  empty<D extends DType>(shape: readonly number[], dtype: D, opts: { device?: DeviceId } = {}): DeviceTensor<D> {
    return deviceEmpty(deviceIndex(opts.device), shape, dtype);
  },
  /** A new zero-filled device tensor. */
  zeros<D extends DType>(shape: readonly number[], dtype: D, opts: { device?: DeviceId } = {}): DeviceTensor<D> {
    const t = deviceEmpty(deviceIndex(opts.device), shape, dtype);
    deviceWrite(t, new CTOR[dtype](numel(shape)));
    return t;
  },
  /** A new stream on a device (ops take it as options.stream; default: the device's own stream). */
  createStream(opts: { device?: number } = {}): CudaStream {
    return new CudaStream(dev().devStream(deviceIndex(opts.device)));
  },
  /** Waits for the device's stream (or the given stream). */
  synchronize(opts: { device?: DeviceId; stream?: CudaStream } = {}): void {
    const d = opts.stream ? opts.stream.device : deviceIndex(opts.device);
    dev().devSynchronize(d, opts.stream ? opts.stream.handle : null);
  },
  /** The default device of uploads and of `backend: 'cuda'` calls on host tensors. */
  setDevice(device: number): void {
    dev().setDefaultDevice(device);
    defaultDevice = device;
  },
  getDevice(): number {
    return defaultDevice;
  },
  /** The device's memory pool, and the bytes copied between host and devices. */
  memoryStats(opts: { device?: DeviceId } = {}): MemoryStats {
    return dev().devMemoryStats(deviceIndex(opts.device));
  },
  /** Waits for the device, then returns the pool's unused memory to the driver. */
  emptyCache(opts: { device?: DeviceId } = {}): void {
    dev().devEmptyCache(deviceIndex(opts.device));
  },
};

/**
 * A zero-filled host tensor in memory owned by the addon. Asynchronous calls (`op.async`) use such
 * tensors (and SharedArrayBuffer-backed ones) in place; other host arrays are copied for the call
 * (docs/device.md, "Asynchronous calls").
 */
export function hostTensor<D extends DType>(shape: readonly number[], dtype: D): Tensor<D> {
  const data = dev().hostArray(DTYPE_CODE[dtype], numel(shape));
  return { data, shape: Object.freeze([...shape]), dtype } as unknown as Tensor<D>;
}
