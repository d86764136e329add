// Argument reading for the N-API layer: each native entry point takes positional arguments
// (typed arrays, numbers, booleans) already validated by the TypeScript wrapper. These readers
// check them again, cheaply (type and exact length), so that no JS value, however malformed,
// reaches a kernel as a wrong pointer or length: a wrong argument is a TypeError, never a crash.
//
// Wherever a typed array is accepted, a DeviceBuffer (device.hpp) of the matching dtype is too:
// the call then runs on that device (CUDA, or the emulated device) and every array argument must
// live there (mixing host and device arrays is a TypeError). Each op function is registered twice
// (reg()): the synchronous form, and `<name>Async`, whose Args pins the arrays (call.hpp) and
// whose run() returns a Promise. Op functions end with `return in.run(a, RK_KERNELS(op), ...)`,
// which serves every combination (docs/device.md).
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "../include/rk_common.h"
#include "../include/rlhf_kernels.h"
#include "call.hpp"
#include "device.hpp"

namespace rk_addon {

// info.Data() of the asynchronous variants.
inline void* async_marker() {
  static int marker;
  return &marker;
}

inline std::string no_after(CallState&) { return ""; }

class Args {
 public:
  explicit Args(const Napi::CallbackInfo& info) : info_(info), env_(info.Env()), async_(info.Data() == async_marker()) {
    cs_.env = env_;
  }
  Args(const Args&) = delete;
  Args& operator=(const Args&) = delete;
  Napi::Env env() const { return env_; }
  bool async() const { return async_; }
  // The call runs on a device (CUDA or emulated): every array argument seen so far lives there.
  bool device_call() const { return cs_.where != Where::Host; }
  bool cuda_device_call() const { return cs_.where == Where::Cuda; }

  // Inputs (const) and outputs. A host output may not share memory with any other host array
  // argument (RangeError naming both): kernels read inputs after writing outputs, and an index
  // input that was checked must stay as checked. Int32 inputs and masks (labels, token ids,
  // layouts: what decides which memory a kernel touches) that another thread could write during
  // the call (a SharedArrayBuffer; any array used in place by an async call) are copied first.
  const float* f32(const char* name, size_t n) { return typed<float>(name, n, napi_float32_array, "Float32Array", RK_DT_F32, false); }
  float* f32_out(const char* name, size_t n) { return typed<float>(name, n, napi_float32_array, "Float32Array", RK_DT_F32, true); }
  const int32_t* i32(const char* name, size_t n) { return typed<int32_t>(name, n, napi_int32_array, "Int32Array", RK_DT_I32, false, true); }
  int32_t* i32_out(const char* name, size_t n) { return typed<int32_t>(name, n, napi_int32_array, "Int32Array", RK_DT_I32, true); }
  const uint8_t* u8(const char* name, size_t n) { return typed<uint8_t>(name, n, napi_uint8_array, "Uint8Array", RK_DT_U8, false, true); }
  uint8_t* u8_out(const char* name, size_t n) { return typed<uint8_t>(name, n, napi_uint8_array, "Uint8Array", RK_DT_U8, true); }
  // f16/bf16 bit patterns: a Uint16Array, or a device buffer of dtype `dt` (RK_DT_F16 / RK_DT_BF16).
  const uint16_t* u16(const char* name, size_t n, int dt = -1) {
    return typed<uint16_t>(name, n, napi_uint16_array, "Uint16Array", dt, false);
  }
  // A Float64Array of n elements at argument position idx (read out of order: scalar results
  // placed after useCuda), or a device buffer of f64.
  double* f64_out_at(size_t idx, size_t n, const char* name) {
    size_t save = i_;
    i_ = idx;
    double* p = typed<double>(name, n, napi_float64_array, "Float64Array", RK_DT_F64, true);
    i_ = save;
    return p;
  }

  // null/undefined → nullptr, else a Float32Array of n elements.
  const float* f32_opt(const char* name, size_t n) {
    if (is_null()) { ++i_; return nullptr; }
    return f32(name, n);
  }
  float* f32_out_opt(const char* name, size_t n) {
    if (is_null()) { ++i_; return nullptr; }
    return f32_out(name, n);
  }
  // A mask: null/undefined (kind NONE), Uint8Array or Float32Array of n elements (or a device
  // buffer of u8 / f32).
  const void* mask(const char* name, size_t n, int* kind) {
    if (is_null()) { ++i_; *kind = RK_MASK_NONE; return nullptr; }
    int dt = dtype_at(i_);
    if (dt == RK_DT_U8) { *kind = RK_MASK_U8; return u8(name, n); }
    *kind = RK_MASK_F32;
    return typed<float>(name, n, napi_float32_array, "Float32Array", RK_DT_F32, false, true);
  }
  // Logits as f32 (Float32Array) or f16/bf16 (Uint16Array); dtype code given by the caller.
  const void* logits(const char* name, size_t n, int dtype) {
    if (dtype == RK_DT_F32) return f32(name, n);
    if (dtype == RK_DT_F16 || dtype == RK_DT_BF16) return u16(name, n, dtype);
    fail_type(name, "a logits dtype code");
    return nullptr;
  }
  // The dtype code of array argument idx (typed array or device buffer), or −1.
  int dtype_at(size_t idx) const {
    if (idx >= info_.Length()) return -1;
    napi_value v = info_[idx];
    bool is_ta = false;
    if (napi_is_typedarray(env_, v, &is_ta) == napi_ok && is_ta) {
      napi_typedarray_type t;
      size_t len;
      if (napi_get_typedarray_info(env_, v, &t, &len, nullptr, nullptr, nullptr) != napi_ok) return -1;
      switch (t) {
        case napi_float32_array: return RK_DT_F32;
        case napi_float64_array: return RK_DT_F64;
        case napi_int32_array: return RK_DT_I32;
        case napi_uint8_array: return RK_DT_U8;
        case napi_uint16_array: return RK_DT_F16;  // f16 or bf16: the caller's dtype code decides
        default: return -1;
      }
    }
    DeviceBuffer* b = DeviceBuffer::From(env_, v);
    return b ? b->dtype : -1;
  }

  double num(const char* name) {
    Napi::Value v = info_[i_++];
    if (!v.IsNumber()) fail_type(name, "a number");
    return v.As<Napi::Number>().DoubleValue();
  }
  double finite(const char* name) {
    double d = num(name);
    if (!std::isfinite(d)) range(name, "a finite number");
    return d;
  }
  // A non-negative integer that fits the sizes used by the kernels (< 2^53, and the product of
  // dimensions is checked by the typed-array lengths).
  size_t size(const char* name) {
    double d = num(name);
    if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0) range(name, "a non-negative integer");
    return (size_t)d;
  }
  int64_t integer(const char* name) {
    double d = num(name);
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9007199254740991.0) range(name, "an integer");
    return (int64_t)d;
  }
  bool boolean(const char* name) {
    Napi::Value v = info_[i_++];
    if (!v.IsBoolean()) fail_type(name, "a boolean");
    return v.As<Napi::Boolean>().Value();
  }
  // The trailing backend selector: false = CPU, true = CUDA (device buffers need true).
  bool use_cuda() {
    if (i_ >= info_.Length() || info_[i_].IsUndefined()) { ++i_; use_cuda_ = false; }
    else use_cuda_ = boolean("useCuda");
    if (device_call() && !use_cuda_) fail_type("useCuda", "true for device buffers");
    return use_cuda_;
  }

  [[noreturn]] void fail_type(const char* name, const char* what) {
    throw Napi::TypeError::New(env_, std::string("rlhf-kernels native: argument '") + name + "' must be " + what);
  }
  [[noreturn]] void range(const char* name, const char* what) {
    throw Napi::RangeError::New(env_, std::string("rlhf-kernels native: argument '") + name + "' must be " + what);
  }

  // Host memory of n zeroed elements owned by the call (lives until post() has run).
  template <class T>
  T* host_scratch(size_t n) {
    return reinterpret_cast<T*>(cs_.alloc_host(n * sizeof(T), true));
  }
  // n elements on the call's device (host memory for host and emulated calls); fetch results
  // with CallState::fetch in an after() step.
  template <class T>
  T* scratch(size_t n) {
    if (cs_.where != Where::Cuda) return host_scratch<T>(n);
    std::string err;
    MemPtr m = alloc_mem(cs_.device, n * sizeof(T), cs_.stream, &err);
    if (!m) throw Napi::Error::New(env_, "rlhf-kernels cuda: scratch allocation failed: " + err);
    cs_.dev_scratch.push_back(m);
    return static_cast<T*>(m->ptr);
  }
  // A host-readable copy of n int32 argument elements at p, for the defensive index checks
  // (CUDA device arguments are read back; host and emulated ones are read in place).
  const int32_t* peek_i32(const int32_t* p, size_t n) { return static_cast<const int32_t*>(peek(p, n * 4)); }
  const void* peek(const void* p, size_t bytes) {
    if (cs_.where != Where::Cuda || !p || !bytes) return p;
    char* h = host_scratch<char>(bytes);
    DevMem* m = cs_.mem_of(p, bytes);
    if (!m) throw Napi::Error::New(env_, "rlhf-kernels: internal error: peek of unknown device memory");
    std::string err;
    StreamPtr s = m->last_stream() ? m->last_stream() : cs_.stream;
    if (!copy_from_device(*m, h, p, bytes, s, &err)) throw Napi::Error::New(env_, "rlhf-kernels cuda: " + err);
    state(env_).d2h_bytes += (double)bytes;
    return h;
  }

  // Runs the op: CPU kernel, CUDA kernel on host arrays (copied to the device and back), or the
  // device kernel on device buffers; synchronously (returns post(env)), or for the Async variant
  // off the JS thread (returns a Promise of post(env); calls on little data run inline and
  // return post(env) directly). after(CallState&) runs right after the kernel on the same thread
  // (fetch device results there); post(env) builds the JS result on the JS thread.
  template <class A, class After, class Post>
  Napi::Value run(const A& a, Kernels<A> k, After after, Post post) {
    prepare(k);
    bool offload = async_ && (cs_.where == Where::Cuda || (cs_.where == Where::Host && use_cuda_) ||
                              cs_.work_bytes >= state(env_).async_inline_bytes);
    if (!offload) {
      std::string err = exec_call(a, k, cs_);
      if (err.empty()) err = after(cs_);
      if (!err.empty()) throw Napi::Error::New(env_, err);
      if (async_) {  // inline: the outputs were snapshotted while reading the arguments
        err = copy_back(cs_);
        if (!err.empty()) throw Napi::TypeError::New(env_, err);
      }
      return post(env_);
    }
    void* event = nullptr;
    if (cs_.where == Where::Cuda) {
      // queue now (stream order = program order); the worker waits for the event
      std::string err = exec_call(a, k, cs_);
      if (!err.empty()) throw Napi::Error::New(env_, err);
      char e[512] = {0};
      if (rk_cuda_event_record(cs_.device, cs_.stream->stream, &event, e, sizeof e))
        throw Napi::Error::New(env_, std::string("rlhf-kernels cuda: ") + e);
    }
    auto* job = new CallJob<A, After, Post>(env_, a, k, std::move(cs_), std::move(after), std::move(post), event);
    Napi::Promise p = job->Promise();
    job->Queue();
    return p;
  }
  template <class A, class Post>
  Napi::Value run(const A& a, Kernels<A> k, Post post) {
    return run(a, k, no_after, std::move(post));
  }
  template <class A>
  Napi::Value run(const A& a, Kernels<A> k) {
    return run(a, k, no_after, [](Napi::Env env) { return env.Undefined(); });
  }

 private:
  bool is_null() const { return i_ >= info_.Length() || info_[i_].IsNull() || info_[i_].IsUndefined(); }

  template <class A>
  void prepare(const Kernels<A>& k) {
    if (cs_.where != Where::Host && !k.dev && !k.cuda && !use_cuda_)
      throw Napi::TypeError::New(env_, "rlhf-kernels: this op takes host arrays only");
    if (cs_.where != Where::Host && !use_cuda_) fail_type("useCuda", "true for device buffers");
    if (cs_.where == Where::Cuda && !k.dev) throw Napi::TypeError::New(env_, "rlhf-kernels: this op takes host arrays only");
    if (cs_.where == Where::Host && use_cuda_) cs_.device = state(env_).default_device;
    cs_.use_cuda = use_cuda_;
  }

  // A host typed array argument joins the call: mixing with device buffers is a TypeError.
  void note_host(const char* name) {
    if (cs_.where != Where::Host)
      throw Napi::TypeError::New(env_, std::string("rlhf-kernels native: argument '") + name +
                                           "' is a host array but other arguments are device buffers (mixing host and device is not allowed)");
    saw_host_ = true;
  }
  void note_device(const char* name, int device) {
    if (saw_host_)
      throw Napi::TypeError::New(env_, std::string("rlhf-kernels native: argument '") + name +
                                           "' is a device buffer but other arguments are host arrays (mixing host and device is not allowed)");
    if (cs_.where == Where::Host) {
      cs_.where = device == kEmulated ? Where::Emulated : Where::Cuda;
      cs_.device = device;
      if (cs_.where == Where::Cuda) {
        AddonState& st = state(env_);
        if (st.call_stream) {
          if (st.call_stream->device != device)
            throw Napi::TypeError::New(env_, "rlhf-kernels: options.stream is on device " + std::to_string(st.call_stream->device) +
                                                 ", the inputs on device " + std::to_string(device));
          cs_.stream = st.call_stream;
        } else {
          std::string err;
          cs_.stream = library_stream(st, device, &err);
          if (!cs_.stream) throw Napi::Error::New(env_, "rlhf-kernels cuda: " + err);
        }
      }
    } else if (cs_.device != device) {
      throw Napi::TypeError::New(env_, std::string("rlhf-kernels native: argument '") + name + "' is on device " +
                                           std::to_string(device) + ", other arguments on device " + std::to_string(cs_.device));
    }
  }

  // An asynchronous call must not read or write JS memory that JS could free while it runs
  // (detach, transfer, resize): SharedArrayBuffers (never detached or shrunk) and addon-owned
  // memory (hostArray: refcounted) are used in place; any other ArrayBuffer is copied now
  // (inputs) or written through a copy that is copied back on completion (outputs).
  void* pin_host(napi_value v, void* data, size_t bytes, bool out, const char* name) {
    napi_value ab = nullptr;
    napi_typedarray_type t;
    size_t len = 0;
    if (napi_get_typedarray_info(env_, v, &t, &len, nullptr, &ab, nullptr) != napi_ok) fail_type(name, "a typed array");
    napi_ref r;
    if (napi_create_reference(env_, v, 1, &r) != napi_ok) throw Napi::Error::New(env_, "rlhf-kernels: cannot pin an argument");
    cs_.refs.push_back(r);
    bool is_ab = false;
    napi_is_arraybuffer(env_, ab, &is_ab);
    if (!is_ab) return data;  // SharedArrayBuffer
    if (HostBlock* b = owned_block(env_, ab)) {
      b->refs.fetch_add(1, std::memory_order_relaxed);
      cs_.blocks.push_back(b);
      return data;
    }
    char* tmp = cs_.alloc_host(bytes, false);
    std::memcpy(tmp, data, bytes);
    if (out) cs_.copy_back.push_back({r, tmp, bytes, name});
    return tmp;
  }

  void* device_arg(napi_value v, const char* name, size_t n, int dt, const char* tname) {
    DeviceBuffer* b = DeviceBuffer::From(env_, v);
    if (!b) fail_type(name, tname);
    if (!b->mem) throw Napi::TypeError::New(env_, std::string("rlhf-kernels native: argument '") + name + "' is a disposed device buffer");
    if (dt < 0 ? (b->dtype != RK_DT_F16 && b->dtype != RK_DT_BF16) : b->dtype != dt)
      throw Napi::TypeError::New(env_, std::string("rlhf-kernels native: argument '") + name + "' must be a " + tname +
                                           " or a device buffer of dtype " + (dt < 0 ? "f16/bf16" : dtype_name(dt)) +
                                           ", got a device buffer of dtype " + dtype_name(b->dtype));
    if (b->length != n)
      throw Napi::RangeError::New(env_, std::string("rlhf-kernels native: argument '") + name + "' must have " +
                                            std::to_string(n) + " elements, got " + std::to_string(b->length));
    note_device(name, b->device);
    cs_.mems.push_back(b->mem);
    if (async_) {
      napi_ref r;
      if (napi_create_reference(env_, v, 1, &r) == napi_ok) cs_.refs.push_back(r);
    }
    return b->data();
  }

  template <class T>
  T* typed(const char* name, size_t n, napi_typedarray_type type, const char* tname, int dt, bool out, bool copy_shared = false) {
    if (i_ >= info_.Length()) fail_type(name, tname);
    napi_value v = info_[i_++];
    bool is_ta = false;
    if (napi_is_typedarray(env_, v, &is_ta) != napi_ok) fail_type(name, tname);
    if (!is_ta) return static_cast<T*>(device_arg(v, name, n, dt, tname));
    napi_typedarray_type t;
    size_t len = 0;
    void* data = nullptr;
    if (napi_get_typedarray_info(env_, v, &t, &len, &data, nullptr, nullptr) != napi_ok || t != type)
      fail_type(name, tname);
    if (len != n)
      throw Napi::RangeError::New(env_, std::string("rlhf-kernels native: argument '") + name + "' must have " +
                                            std::to_string(n) + " elements, got " + std::to_string(len));
    if (n == 0 || data == nullptr) { static T dummy[1]; return dummy; }  // no data: neutral for host/device mixing
    note_host(name);
    const char* b = static_cast<const char*>(data);
    for (size_t k = 0; k < nspans_; ++k)
      if ((out || spans_[k].out) && b < spans_[k].end && spans_[k].begin < b + n * sizeof(T))
        throw Napi::RangeError::New(env_, std::string("rlhf-kernels native: argument '") + name +
                                              "' shares memory with argument '" + spans_[k].name + "'");
    if (nspans_ < kMaxSpans) spans_[nspans_++] = {name, b, b + n * sizeof(T), out};
    cs_.work_bytes += n * sizeof(T);
    void* p = async_ ? pin_host(v, data, n * sizeof(T), out, name) : data;
    if (copy_shared && p == data && (async_ || !plain_buffer(v))) {  // (owned by the call: lives until post())
      char* c = cs_.alloc_host(n * sizeof(T), false);
      std::memcpy(c, data, n * sizeof(T));
      return reinterpret_cast<T*>(c);
    }
    return static_cast<T*>(p);
  }
  // A typed array over a plain ArrayBuffer (not a SharedArrayBuffer: napi_is_arraybuffer is false for those).
  bool plain_buffer(napi_value v) {
    napi_value ab = nullptr;
    bool plain = false;
    if (napi_get_typedarray_info(env_, v, nullptr, nullptr, nullptr, &ab, nullptr) != napi_ok) return false;
    return napi_is_arraybuffer(env_, ab, &plain) == napi_ok && plain;
  }
  struct Span { const char* name; const char* begin; const char* end; bool out; };
  static constexpr size_t kMaxSpans = 48;
  Span spans_[kMaxSpans];
  size_t nspans_ = 0;

  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  bool async_;
  bool use_cuda_ = false;
  bool saw_host_ = false;
  size_t i_ = 0;
  CallState cs_;
};

// Multiplies sizes, throwing RangeError on overflow of 2^53.
inline size_t mul_sizes(Napi::Env env, size_t a, size_t b, const char* what) {
  if (a != 0 && b > (size_t)9007199254740991ULL / a)
    throw Napi::RangeError::New(env, std::string("rlhf-kernels native: ") + what + " is too large");
  return a * b;
}

// Options and labels shared by the logits families (logprobs, linear): temperature > 0 with a
// finite f32 reciprocal; ignoreIndex a 32-bit integer; each label in [0, V) or ignoreIndex
// (where the optional mask counts).
inline float temperature(Args& in) {
  double t = in.finite("temperature");
  if (!(t > 0) || !((float)t > 0) || !std::isfinite(1.0f / (float)t)) in.range("temperature", "a finite number > 0");
  return (float)t;
}
inline int32_t ignore_index(Args& in) {
  int64_t v = in.integer("ignoreIndex");
  if (v < INT32_MIN || v > INT32_MAX) in.range("ignoreIndex", "a 32-bit integer");
  return (int32_t)v;
}
inline void check_labels(Args& in, const int32_t* labels_arg, size_t N, size_t V, int32_t ignore, const void* mask = nullptr,
                         int kind = RK_MASK_NONE) {
  const int32_t* labels = in.peek_i32(labels_arg, N);  // device labels and masks are read back
  if (kind != RK_MASK_NONE) mask = in.peek(mask, N * (kind == RK_MASK_U8 ? 1 : 4));
  for (size_t i = 0; i < N; ++i) {
    int32_t y = labels[i];
    bool on = kind == RK_MASK_U8 ? static_cast<const uint8_t*>(mask)[i] != 0
                                 : kind == RK_MASK_F32 ? static_cast<const float*>(mask)[i] != 0.0f : true;
    if (on && y != ignore && (y < 0 || (size_t)y >= V)) in.range("labels", "in [0, V) or equal to ignoreIndex");
  }
}

// Registers op function fn as `name` (synchronous) and `<name>Async` (returns a Promise).
inline void reg(Napi::Env env, Napi::Object exports, const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
  exports.Set(name, Napi::Function::New(env, fn, name));
  std::string an = std::string(name) + "Async";
  exports.Set(an, Napi::Function::New(env, fn, an.c_str(), async_marker()));
}

// Each op family registers its functions here (addon/<family>.cc).
using Registrar = void (*)(Napi::Env, Napi::Object);
void register_rewards(Napi::Env, Napi::Object);
void register_advantages(Napi::Env, Napi::Object);
void register_logprobs(Napi::Env, Napi::Object);
void register_preference(Napi::Env, Napi::Object);
void register_ppo(Napi::Env, Napi::Object);
void register_prepack(Napi::Env, Napi::Object);
void register_sampling(Napi::Env, Napi::Object);
void register_linear(Napi::Env, Napi::Object);

}  // namespace rk_addon
