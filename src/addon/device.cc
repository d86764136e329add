// Device tensors, streams, uploads and downloads, owned host memory (see device.hpp).
#include "device.hpp"

#include "../core/common.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

namespace rk_addon {
namespace {

const napi_type_tag kBufferTag = {0x7c1a3f0e5b2d4c81ULL, 0x9e6f02a4d3b1c7e5ULL};
const napi_type_tag kStreamTag = {0x2b8e4d17c9a05f63ULL, 0x41d7e93a6c08b2f1ULL};
const napi_type_tag kHostTag = {0x5f31c8a9e2470d6bULL, 0xa3c6e1b94f2d8075ULL};

// The native object of a JS object created by one of our classes (checked by its type tag), or nullptr.
template <class T>
T* unwrap_tagged(napi_env env, napi_value v, const napi_type_tag& tag) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_object) return nullptr;
  bool is = false;
  if (napi_check_object_type_tag(env, v, &tag, &is) != napi_ok || !is) return nullptr;
  void* p = nullptr;
  if (napi_unwrap(env, v, &p) != napi_ok) return nullptr;
  return static_cast<T*>(p);
}

[[noreturn]] void throw_error(napi_env env, const std::string& msg) { throw Napi::Error::New(env, msg); }
[[noreturn]] void throw_type(napi_env env, const std::string& msg) { throw Napi::TypeError::New(env, msg); }
[[noreturn]] void throw_range(napi_env env, const std::string& msg) { throw Napi::RangeError::New(env, msg); }

std::string cuda_unavailable(AddonState& st) {
#ifdef RK_WITH_CUDA
  char err[256] = {0};
  int count = 0;
  if (rk_cuda_device_count(&count, err, sizeof err) != 0) return std::string("no CUDA device (") + err + ")";
  (void)st;
  return "no CUDA device";
#else
  (void)st;
  return "the addon was built without CUDA (run npm run build:cuda)";
#endif
}

// Checks a device id: −1 (emulated) or an existing CUDA device.
int check_device(napi_env env, AddonState& st, const Napi::Value& v) {
  if (!v.IsNumber()) throw_type(env, "rlhf-kernels: device must be a number (a CUDA device index, or -1 for the emulated device)");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d != (double)(int)d) throw_range(env, "rlhf-kernels: device must be an integer");
  int dev = (int)d;
  if (dev == kEmulated) return dev;
  int count = cuda_device_count(st);
  if (count <= 0) throw_error(env, "rlhf-kernels: cuda unavailable: " + cuda_unavailable(st));
  if (dev < 0 || dev >= count)
    throw_range(env, "rlhf-kernels: device " + std::to_string(dev) + " does not exist (" + std::to_string(count) + " CUDA devices)");
  return dev;
}

int check_dtype(napi_env env, const Napi::Value& v) {
  if (!v.IsNumber()) throw_type(env, "rlhf-kernels: dtype code must be a number");
  int dt = (int)v.As<Napi::Number>().DoubleValue();
  if (!dtype_bytes(dt) || v.As<Napi::Number>().DoubleValue() != (double)dt) throw_range(env, "rlhf-kernels: unknown dtype code");
  return dt;
}

size_t check_size(napi_env env, const Napi::Value& v, const char* what) {
  if (!v.IsNumber()) throw_type(env, std::string("rlhf-kernels: ") + what + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != (double)(size_t)d || d > 9007199254740991.0)
    throw_range(env, std::string("rlhf-kernels: ") + what + " must be a non-negative integer");
  return (size_t)d;
}

DeviceBuffer& buffer_arg(napi_env env, const Napi::Value& v, const char* what) {
  DeviceBuffer* b = DeviceBuffer::From(env, v);
  if (!b) throw_type(env, std::string("rlhf-kernels: ") + what + " must be a device buffer");
  if (!b->mem) throw_type(env, std::string("rlhf-kernels: ") + what + " was disposed");
  return *b;
}

// The typed array argument: data, byte length, element type.
struct HostView {
  void* data = nullptr;
  size_t bytes = 0;
  napi_typedarray_type type = napi_uint8_array;
};
HostView host_view(napi_env env, const Napi::Value& v, const char* what) {
  bool is = false;
  HostView h;
  size_t len = 0;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &h.type, &len, &h.data, nullptr, nullptr) != napi_ok)
    throw_type(env, std::string("rlhf-kernels: ") + what + " must be a typed array");
  size_t el = 1;
  switch (h.type) {
    case napi_int16_array: case napi_uint16_array: el = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: el = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: el = 8; break;
    default: el = 1;
  }
  h.bytes = len * el;
  return h;
}

// The stream for a new buffer / copy on device d: the call stream when it is on d, else the
// device's library stream.
StreamPtr stream_for(napi_env env, AddonState& st, int d) {
  if (d == kEmulated) return nullptr;
  if (st.call_stream && st.call_stream->device == d) return st.call_stream;
  std::string err;
  StreamPtr s = library_stream(st, d, &err);
  if (!s) throw_error(env, "rlhf-kernels cuda: " + err);
  return s;
}

// Makes stream s wait for the work of the last stream that used m (no host wait).
void wait_for_last(napi_env env, DevMem& m, const StreamPtr& s) {
  StreamPtr last = m.last_stream();
  if (last && last != s && rk_cuda_stream_wait(m.device, s->stream, last->stream, nullptr, 0))
    throw_error(env, "rlhf-kernels cuda: stream wait failed");
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  AddonState& st = state(env);
  int dev = check_device(env, st, info[0]);
  int dt = check_dtype(env, info[1]);
  size_t n = check_size(env, info[2], "length");
  std::string err;
  StreamPtr s = stream_for(env, st, dev);
  MemPtr m = alloc_mem(dev, n * dtype_bytes(dt), s, &err);
  if (!m) throw_error(env, "rlhf-kernels: device allocation failed: " + err);
  return DeviceBuffer::Make(info.Env(), m, 0, n, dt);
}

// devUpload(typedArray, device, dtype) → DeviceBuffer
Napi::Value Upload(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  AddonState& st = state(env);
  HostView h = host_view(env, info[0], "data");
  int dev = check_device(env, st, info[1]);
  int dt = check_dtype(env, info[2]);
  size_t el = dtype_bytes(dt);
  if (h.bytes % el) throw_range(env, "rlhf-kernels: data does not hold whole elements of the dtype");
  StreamPtr s = stream_for(env, st, dev);
  std::string err;
  MemPtr m = alloc_mem(dev, h.bytes, s, &err);
  if (!m || !copy_to_device(*m, m->ptr, h.data, h.bytes, s, false, &err)) throw_error(env, "rlhf-kernels: upload failed: " + err);
  st.h2d_bytes += (double)h.bytes;
  return DeviceBuffer::Make(info.Env(), m, 0, h.bytes / el, dt);
}

// devWrite(buffer, typedArray): host → device into an existing buffer (same byte length).
Napi::Value Write(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  AddonState& st = state(env);
  DeviceBuffer& b = buffer_arg(env, info[0], "buffer");
  HostView h = host_view(env, info[1], "data");
  if (h.bytes != b.bytes()) throw_range(env, "rlhf-kernels: data must have the byte length of the device buffer");
  StreamPtr s = b.device == kEmulated ? nullptr : (b.mem->last_stream() ? b.mem->last_stream() : stream_for(env, st, b.device));
  std::string err;
  if (!copy_to_device(*b.mem, b.data(), h.data, h.bytes, s, false, &err)) throw_error(env, "rlhf-kernels: upload failed: " + err);
  if (s) b.mem->set_last(s);
  st.h2d_bytes += (double)h.bytes;
  return info.Env().Undefined();
}

// devRead(buffer, typedArray): device → host, waiting for the work that writes the buffer.
Napi::Value Read(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  AddonState& st = state(env);
  DeviceBuffer& b = buffer_arg(env, info[0], "buffer");
  HostView h = host_view(env, info[1], "out");
  if (h.bytes != b.bytes()) throw_range(env, "rlhf-kernels: out must have the byte length of the device buffer");
  std::string err;
  StreamPtr s = b.device == kEmulated ? nullptr : (b.mem->last_stream() ? b.mem->last_stream() : stream_for(env, st, b.device));
  if (!copy_from_device(*b.mem, h.data, b.data(), h.bytes, s, &err)) throw_error(env, "rlhf-kernels: download failed: " + err);
  st.d2h_bytes += (double)h.bytes;
  return info.Env().Undefined();
}

// devReadAsync(buffer, typedArray) → Promise: the copy (and the wait for the stream) runs off the
// JS thread into addon memory; the typed array is filled on completion (a detached or resized
// one rejects instead).
class ReadWorker : public Napi::AsyncWorker {
 public:
  ReadWorker(Napi::Env env, DeviceBuffer& b, Napi::Value target, size_t bytes)
      : Napi::AsyncWorker(env, "rlhf-kernels:read"), d_(Napi::Promise::Deferred::New(env)), mem_(b.mem), src_(b.data()),
        bytes_(bytes), tmp_(bytes ? bytes : 1), target_(Napi::Persistent(target.As<Napi::Object>())) {
    if (b.device != kEmulated) stream_ = mem_->last_stream() ? mem_->last_stream() : stream_for(env, state(env), b.device);
  }
  Napi::Promise Promise() { return d_.Promise(); }

 protected:
  void Execute() override {
    std::string err;
    if (!copy_from_device(*mem_, tmp_.data(), src_, bytes_, stream_, &err)) SetError("rlhf-kernels: download failed: " + err);
  }
  void OnOK() override {
    Napi::Env env = Env();
    HostView h;
    bool ok = true;
    try { h = host_view(env, target_.Value(), "out"); } catch (...) { ok = false; }
    if (!ok || h.bytes != bytes_) {
      d_.Reject(Napi::TypeError::New(env, "rlhf-kernels: the target array was detached or resized during the download").Value());
      return;
    }
    if (bytes_) std::memcpy(h.data, tmp_.data(), bytes_);
    state(env).d2h_bytes += (double)bytes_;
    d_.Resolve(env.Undefined());
  }
  void OnError(const Napi::Error& e) override { d_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred d_;
  MemPtr mem_;
  const void* src_;
  size_t bytes_;
  std::vector<char> tmp_;
  StreamPtr stream_;
  Napi::ObjectReference target_;
};

Napi::Value ReadAsync(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  DeviceBuffer& b = buffer_arg(env, info[0], "buffer");
  HostView h = host_view(env, info[1], "out");
  if (h.bytes != b.bytes()) throw_range(env, "rlhf-kernels: out must have the byte length of the device buffer");
  auto* w = new ReadWorker(info.Env(), b, info[1], h.bytes);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// devConvertF32(buffer) → a new f32 buffer (from f64, f16, bf16 or f32).
Napi::Value ConvertF32(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  AddonState& st = state(env);
  DeviceBuffer& b = buffer_arg(env, info[0], "buffer");
  std::string err;
  StreamPtr s = stream_for(env, st, b.device);
  MemPtr m = alloc_mem(b.device, b.length * 4, s, &err);
  if (!m) throw_error(env, "rlhf-kernels: device allocation failed: " + err);
  float* dst = static_cast<float*>(m->ptr);
  if (b.device == kEmulated) {
    const void* src = b.data();
    for (size_t i = 0; i < b.length; ++i) {
      switch (b.dtype) {
        case RK_DT_F64: dst[i] = (float)static_cast<const double*>(src)[i]; break;
        case RK_DT_F32: dst[i] = static_cast<const float*>(src)[i]; break;
        case RK_DT_BF16: dst[i] = rk::bf16_to_float(static_cast<const uint16_t*>(src)[i]); break;
        case RK_DT_F16: dst[i] = rk::f16_to_float(static_cast<const uint16_t*>(src)[i]); break;
        default: throw_type(env, "rlhf-kernels: only float buffers convert to f32");
      }
    }
  } else {
    if (b.dtype == RK_DT_I32 || b.dtype == RK_DT_U8) throw_type(env, "rlhf-kernels: only float buffers convert to f32");
    wait_for_last(env, *b.mem, s);
    char e[256] = {0};
    if (rk_cuda_convert_f32(b.device, b.data(), b.dtype, dst, b.length, s->stream, e, sizeof e))
      throw_error(env, std::string("rlhf-kernels cuda: ") + e);
    m->set_last(s);
    b.mem->set_last(s);
  }
  return DeviceBuffer::Make(info.Env(), m, 0, b.length, RK_DT_F32);
}

// devSlice(buffer, offset, length) → a view (shares the memory).
Napi::Value Slice(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  DeviceBuffer& b = buffer_arg(env, info[0], "buffer");
  size_t off = check_size(env, info[1], "offset"), len = check_size(env, info[2], "length");
  if (off > b.length || len > b.length - off) throw_range(env, "rlhf-kernels: slice out of range");
  return DeviceBuffer::Make(info.Env(), b.mem, b.offset + off * dtype_bytes(b.dtype), len, b.dtype);
}

// devCopy(dst, src): device → device, same byte length and device.
Napi::Value Copy(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  AddonState& st = state(env);
  DeviceBuffer& d = buffer_arg(env, info[0], "dst");
  DeviceBuffer& s = buffer_arg(env, info[1], "src");
  if (d.device != s.device) throw_type(env, "rlhf-kernels: copy between different devices");
  if (d.bytes() != s.bytes()) throw_range(env, "rlhf-kernels: copy of different byte lengths");
  if (d.device == kEmulated) {
    std::memmove(d.data(), s.data(), d.bytes());
    return info.Env().Undefined();
  }
  StreamPtr str = stream_for(env, st, d.device);
  for (DevMem* m : {d.mem.get(), s.mem.get()}) wait_for_last(env, *m, str);
  char e[256] = {0};
  if (rk_cuda_memcpy(d.device, d.data(), s.data(), d.bytes(), RK_COPY_D2D, str->stream, 0, e, sizeof e))
    throw_error(env, std::string("rlhf-kernels cuda: ") + e);
  d.mem->set_last(str);
  s.mem->set_last(str);
  return info.Env().Undefined();
}

Napi::Value NewStream(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  AddonState& st = state(env);
  int dev = check_device(env, st, info[0]);
  if (dev == kEmulated) throw_type(env, "rlhf-kernels: the emulated device has no streams");
  void* raw = nullptr;
  char e[256] = {0};
  if (rk_cuda_stream_create(dev, &raw, e, sizeof e)) throw_error(env, std::string("rlhf-kernels cuda: ") + e);
  auto sp = std::make_shared<StreamRef>();
  sp->device = dev;
  sp->stream = raw;
  sp->owned = true;
  st.constructing = true;
  Napi::Object o = st.stream_ctor.New({});
  st.constructing = false;
  Stream::Unwrap(o)->s = sp;
  return o;
}

// setStream(stream | null): the stream of the next op calls (set around each call by ts/async.ts).
Napi::Value SetStream(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  AddonState& st = state(env);
  if (info[0].IsNull() || info[0].IsUndefined()) { st.call_stream = nullptr; return info.Env().Undefined(); }
  Stream* s = Stream::From(env, info[0]);
  if (!s) throw_type(env, "rlhf-kernels: options.stream must be a stream from cuda.createStream()");
  if (!s->s) throw_type(env, "rlhf-kernels: options.stream was destroyed");
  st.call_stream = s->s;
  return info.Env().Undefined();
}

// devSynchronize(device, stream | null): waits for the stream (default: the device's stream and
// the call stream), on the JS thread.
Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  AddonState& st = state(env);
  int dev = check_device(env, st, info[0]);
  if (dev == kEmulated) return info.Env().Undefined();
  StreamPtr s;
  if (info.Length() > 1 && !info[1].IsNull() && !info[1].IsUndefined()) {
    Stream* so = Stream::From(env, info[1]);
    if (!so || !so->s) throw_type(env, "rlhf-kernels: stream must be a live stream from cuda.createStream()");
    s = so->s;
  } else {
    s = stream_for(env, st, dev);
  }
  char e[256] = {0};
  if (rk_cuda_stream_synchronize(s->device, s->stream, e, sizeof e)) throw_error(env, std::string("rlhf-kernels cuda: ") + e);
  return info.Env().Undefined();
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  AddonState& st = state(env);
  int dev = check_device(env, st, info[0]);
  Napi::Object o = Napi::Object::New(info.Env());
  rk_cuda_memory_stats m{0, 0, 0, 0};
  if (dev != kEmulated) {
    char e[256] = {0};
    if (rk_cuda_memory_stats_get(dev, &m, e, sizeof e)) throw_error(env, std::string("rlhf-kernels cuda: ") + e);
  }
  o.Set("reserved", (double)m.reserved);
  o.Set("used", (double)m.used);
  o.Set("reservedHigh", (double)m.reserved_high);
  o.Set("usedHigh", (double)m.used_high);
  o.Set("hostToDevice", st.h2d_bytes);
  o.Set("deviceToHost", st.d2h_bytes);
  return o;
}

Napi::Value EmptyCache(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  AddonState& st = state(env);
  int dev = check_device(env, st, info[0]);
  char e[256] = {0};
  if (dev != kEmulated && rk_cuda_empty_cache(dev, e, sizeof e)) throw_error(env, std::string("rlhf-kernels cuda: ") + e);
  return info.Env().Undefined();
}

Napi::Value SetDefaultDevice(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  AddonState& st = state(env);
  int dev = check_device(env, st, info[0]);
  if (dev == kEmulated) throw_type(env, "rlhf-kernels: the default device must be a CUDA device");
  st.default_device = dev;
  return info.Env().Undefined();
}

void finalize_host_block(napi_env, void*, void* hint) { static_cast<HostBlock*>(hint)->release(); }

// hostArray(dtype, length) → a zero-filled typed array over addon-owned memory.
Napi::Value HostArray(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int dt = check_dtype(env, info[0]);
  size_t n = check_size(env, info[1], "length");
  size_t bytes = n * dtype_bytes(dt);
  auto* blk = new HostBlock();
  blk->bytes = bytes;
  blk->ptr = ::operator new(bytes ? bytes : 64, std::align_val_t(64));
  std::memset(blk->ptr, 0, bytes);
  napi_value ab;
  if (napi_create_external_arraybuffer(env, blk->ptr, bytes, finalize_host_block, blk, &ab) != napi_ok) {
    // e.g. a V8 sandbox that refuses external memory: a plain ArrayBuffer (async calls copy it)
    blk->release();
    const napi_extended_error_info* ei = nullptr;
    napi_get_last_error_info(env, &ei);
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) { napi_value ex; napi_get_and_clear_last_exception(env, &ex); }
    if (napi_create_arraybuffer(env, bytes, nullptr, &ab) != napi_ok) throw_error(env, "rlhf-kernels: host allocation failed");
  } else {
    if (napi_type_tag_object(env, ab, &kHostTag) != napi_ok || napi_wrap(env, ab, blk, nullptr, nullptr, nullptr) != napi_ok)
      throw_error(env, "rlhf-kernels: host allocation failed");
  }
  napi_typedarray_type t = napi_uint8_array;
  switch (dt) {
    case RK_DT_F32: t = napi_float32_array; break;
    case RK_DT_F64: t = napi_float64_array; break;
    case RK_DT_F16: case RK_DT_BF16: t = napi_uint16_array; break;
    case RK_DT_I32: t = napi_int32_array; break;
    default: t = napi_uint8_array;
  }
  napi_value ta;
  if (napi_create_typedarray(env, t, n, ab, 0, &ta) != napi_ok) throw_error(env, "rlhf-kernels: host allocation failed");
  return Napi::Value(env, ta);
}

Napi::Value SetAsyncInline(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  AddonState& st = state(env);
  size_t prev = st.async_inline_bytes;
  st.async_inline_bytes = check_size(env, info[0], "bytes");
  return Napi::Number::New(info.Env(), (double)prev);
}

}  // namespace

// ---- StreamRef / DevMem / allocation ----

StreamRef::~StreamRef() {
  if (owned && stream) rk_cuda_stream_destroy(device, stream);
}

DevMem::~DevMem() {
  if (!ptr) return;
  if (device == kEmulated) {
    ::operator delete(ptr, std::align_val_t(64));
    return;
  }
  StreamPtr s = last;
  rk_cuda_free_async(device, ptr, s ? s->stream : nullptr);
}

MemPtr alloc_mem(int device, size_t bytes, const StreamPtr& stream, std::string* err) {
  auto m = std::make_shared<DevMem>();
  m->device = device;
  m->bytes = bytes;
  if (device == kEmulated) {
    m->ptr = ::operator new(bytes ? bytes : 64, std::align_val_t(64));
    std::memset(m->ptr, 0xFF, bytes);
    return m;
  }
  char e[256] = {0};
  void* p = nullptr;
  if (rk_cuda_malloc_async(device, bytes, stream ? stream->stream : nullptr, &p, e, sizeof e)) {
    if (err) *err = e;
    return nullptr;
  }
  m->ptr = p;
  m->last = stream;
  return m;
}

bool copy_from_device(const DevMem& m, void* dst, const void* src, size_t bytes, const StreamPtr& stream, std::string* err) {
  if (!bytes) return true;
  if (m.device == kEmulated) {
    std::memcpy(dst, src, bytes);
    return true;
  }
  char e[256] = {0};
  if (rk_cuda_memcpy(m.device, dst, src, bytes, RK_COPY_D2H, stream ? stream->stream : nullptr, 1, e, sizeof e)) {
    if (err) *err = e;
    return false;
  }
  return true;
}

bool copy_to_device(const DevMem& m, void* dst, const void* src, size_t bytes, const StreamPtr& stream, bool sync, std::string* err) {
  if (!bytes) return true;
  if (m.device == kEmulated) {
    std::memcpy(dst, src, bytes);
    return true;
  }
  char e[256] = {0};
  // pageable host memory: the call returns once the source has been read, so the caller may reuse it
  if (rk_cuda_memcpy(m.device, dst, src, bytes, RK_COPY_H2D, stream ? stream->stream : nullptr, sync ? 1 : 0, e, sizeof e)) {
    if (err) *err = e;
    return false;
  }
  return true;
}

const char* dtype_name(int dt) {
  switch (dt) {
    case RK_DT_F32: return "f32";
    case RK_DT_F16: return "f16";
    case RK_DT_BF16: return "bf16";
    case RK_DT_F64: return "f64";
    case RK_DT_I32: return "i32";
    case RK_DT_U8: return "u8";
    default: return "?";
  }
}

StreamPtr library_stream(AddonState& st, int d, std::string* err) {
  auto it = st.library_streams.find(d);
  if (it != st.library_streams.end()) return it->second;
  void* raw = nullptr;
  char e[256] = {0};
  if (rk_cuda_default_stream(d, &raw, e, sizeof e)) {
    if (err) *err = e;
    return nullptr;
  }
  auto sp = std::make_shared<StreamRef>();
  sp->device = d;
  sp->stream = raw;
  sp->owned = false;
  st.library_streams[d] = sp;
  return sp;
}

int cuda_device_count(AddonState& st) {
  if (st.device_count >= 0) return st.device_count;
#ifdef RK_WITH_CUDA
  int count = 0;
  char err[256] = {0};
  if (rk_cuda_device_count(&count, err, sizeof err) != 0) count = 0;
  st.device_count = count;
#else
  st.device_count = 0;
#endif
  return st.device_count;
}

HostBlock* owned_block(napi_env env, napi_value ab) {
  bool tagged = false;
  if (napi_check_object_type_tag(env, ab, &kHostTag, &tagged) != napi_ok || !tagged) return nullptr;
  bool detached = true;
  if (napi_is_detached_arraybuffer(env, ab, &detached) != napi_ok || detached) return nullptr;
  void* p = nullptr;
  if (napi_unwrap(env, ab, &p) != napi_ok) return nullptr;
  return static_cast<HostBlock*>(p);
}

// ---- DeviceBuffer ----

Napi::Function DeviceBuffer::Init(Napi::Env env) {
  return DefineClass(env, "DeviceBuffer",
                     {InstanceMethod<&DeviceBuffer::Dispose>("dispose"),
                      InstanceAccessor<&DeviceBuffer::GetDevice>("device"),
                      InstanceAccessor<&DeviceBuffer::GetLength>("length"),
                      InstanceAccessor<&DeviceBuffer::GetDtype>("dtype"),
                      InstanceAccessor<&DeviceBuffer::GetDisposed>("disposed")});
}

DeviceBuffer::DeviceBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceBuffer>(info) {
  if (!state(info.Env()).constructing) throw Napi::TypeError::New(info.Env(), "rlhf-kernels: device buffers come from cuda.upload() / cuda.empty()");
  napi_type_tag_object(info.Env(), info.This(), &kBufferTag);
}

Napi::Object DeviceBuffer::Make(Napi::Env env, MemPtr mem, size_t offset_bytes, size_t length, int dt) {
  AddonState& st = state(env);
  st.constructing = true;
  Napi::Object o;
  try {
    o = st.buffer_ctor.New({});
  } catch (...) {
    st.constructing = false;
    throw;
  }
  st.constructing = false;
  DeviceBuffer* b = Unwrap(o);
  b->device = mem->device;
  b->mem = std::move(mem);
  b->offset = offset_bytes;
  b->length = length;
  b->dtype = dt;
  return o;
}

DeviceBuffer* DeviceBuffer::From(napi_env env, napi_value v) { return unwrap_tagged<DeviceBuffer>(env, v, kBufferTag); }

Napi::Value DeviceBuffer::Dispose(const Napi::CallbackInfo& info) {
  mem.reset();  // freed when no call in flight holds it any more
  return info.Env().Undefined();
}

// ---- Stream ----

Napi::Function Stream::Init(Napi::Env env) {
  return DefineClass(env, "CudaStream", {InstanceMethod<&Stream::Destroy>("destroy"), InstanceAccessor<&Stream::GetDevice>("device")});
}

Stream::Stream(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Stream>(info) {
  if (!state(info.Env()).constructing) throw Napi::TypeError::New(info.Env(), "rlhf-kernels: streams come from cuda.createStream()");
  napi_type_tag_object(info.Env(), info.This(), &kStreamTag);
}

Stream* Stream::From(napi_env env, napi_value v) { return unwrap_tagged<Stream>(env, v, kStreamTag); }

Napi::Value Stream::Destroy(const Napi::CallbackInfo& info) {
  AddonState& st = state(info.Env());
  if (st.call_stream == s) st.call_stream = nullptr;
  s.reset();  // destroyed when no buffer or call holds it any more
  return info.Env().Undefined();
}

// ---- state ----

AddonState& state(napi_env env) {
  void* p = nullptr;
  napi_get_instance_data(env, &p);
  return *static_cast<AddonState*>(p);
}

void register_device(Napi::Env env, Napi::Object exports) {
  auto* st = new AddonState();
  env.SetInstanceData<AddonState>(st);
  st->buffer_ctor = Napi::Persistent(DeviceBuffer::Init(env));
  st->stream_ctor = Napi::Persistent(Stream::Init(env));
  if (const char* s = std::getenv("RLHF_KERNELS_ASYNC_INLINE_BYTES")) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(s, &end, 10);
    if (end && *end == 0) st->async_inline_bytes = (size_t)v;
  }
  exports.Set("devAlloc", Napi::Function::New(env, Alloc, "devAlloc"));
  exports.Set("devUpload", Napi::Function::New(env, Upload, "devUpload"));
  exports.Set("devWrite", Napi::Function::New(env, Write, "devWrite"));
  exports.Set("devRead", Napi::Function::New(env, Read, "devRead"));
  exports.Set("devReadAsync", Napi::Function::New(env, ReadAsync, "devReadAsync"));
  exports.Set("devConvertF32", Napi::Function::New(env, ConvertF32, "devConvertF32"));
  exports.Set("devSlice", Napi::Function::New(env, Slice, "devSlice"));
  exports.Set("devCopy", Napi::Function::New(env, Copy, "devCopy"));
  exports.Set("devStream", Napi::Function::New(env, NewStream, "devStream"));
  exports.Set("setStream", Napi::Function::New(env, SetStream, "setStream"));
  exports.Set("devSynchronize", Napi::Function::New(env, Synchronize, "devSynchronize"));
  exports.Set("devMemoryStats", Napi::Function::New(env, MemoryStats, "devMemoryStats"));
  exports.Set("devEmptyCache", Napi::Function::New(env, EmptyCache, "devEmptyCache"));
  exports.Set("setDefaultDevice", Napi::Function::New(env, SetDefaultDevice, "setDefaultDevice"));
  exports.Set("hostArray", Napi::Function::New(env, HostArray, "hostArray"));
  exports.Set("setAsyncInline", Napi::Function::New(env, SetAsyncInline, "setAsyncInline"));
}

}  // namespace rk_addon
