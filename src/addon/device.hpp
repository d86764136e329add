// Device tensors of the N-API layer: DeviceBuffer (a JS handle to device memory), streams, owned
// host memory for asynchronous calls, and the per-addon-instance state. See docs/device.md.
//
// Memory ownership: a DeviceBuffer holds a shared_ptr to its DevMem; so does every call that uses
// it until the call is done. dispose() (or garbage collection of the handle) drops the handle's
// share; the memory goes back to the device's pool when the last share is dropped, ordered after
// the last stream that used it. The "emulated" device (id −1) is host memory whose calls run the
// CPU kernels: the device code paths of the TypeScript layer, testable without a GPU.
#pragma once
#include <napi.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "../include/rlhf_kernels.h"

namespace rk_addon {

constexpr int kEmulated = -1;  // device id of the emulated device

// dtype codes of device buffers (RK_DT_* of rk_common.h / rk_device.h)
inline size_t dtype_bytes(int dt) {
  switch (dt) {
    case RK_DT_F32: case RK_DT_I32: return 4;
    case RK_DT_F16: case RK_DT_BF16: return 2;
    case RK_DT_F64: return 8;
    case RK_DT_U8: return 1;
    default: return 0;
  }
}
const char* dtype_name(int dt);

// A CUDA stream and its device. owned: created by the user (destroyed with its last holder);
// otherwise a library stream (never destroyed).
struct StreamRef {
  int device = 0;
  void* stream = nullptr;
  bool owned = false;
  ~StreamRef();
};
using StreamPtr = std::shared_ptr<StreamRef>;

// One device allocation (or a block of host memory on the emulated device).
struct DevMem {
  int device = 0;
  void* ptr = nullptr;
  size_t bytes = 0;
  std::mutex m;
  StreamPtr last;  // the stream of the last call that used it (frees are ordered after it)
  ~DevMem();
  StreamPtr last_stream() { std::lock_guard<std::mutex> g(m); return last; }
  void set_last(const StreamPtr& s) { std::lock_guard<std::mutex> g(m); last = s; }
};
using MemPtr = std::shared_ptr<DevMem>;

// Allocates `bytes` on `device` (pool of the device, on `stream`; emulated: host memory filled
// with 0xFF bytes, so that an element an op fails to write reads as NaN / −1 in tests).
MemPtr alloc_mem(int device, size_t bytes, const StreamPtr& stream, std::string* err);

class DeviceBuffer : public Napi::ObjectWrap<DeviceBuffer> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit DeviceBuffer(const Napi::CallbackInfo& info);
  // A new handle on mem (offset/length in elements of dtype dt).
  static Napi::Object Make(Napi::Env env, MemPtr mem, size_t offset_bytes, size_t length, int dt);
  // The DeviceBuffer behind v, or nullptr when v is not one.
  static DeviceBuffer* From(napi_env env, napi_value v);

  MemPtr mem;            // null once disposed
  size_t offset = 0;     // bytes
  size_t length = 0;     // elements
  int dtype = RK_DT_F32;
  int device = 0;
  void* data() const { return static_cast<char*>(mem->ptr) + offset; }
  size_t bytes() const { return length * dtype_bytes(dtype); }

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device); }
  Napi::Value GetLength(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)length); }
  Napi::Value GetDtype(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), dtype); }
  Napi::Value GetDisposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !mem); }
};

class Stream : public Napi::ObjectWrap<Stream> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Stream(const Napi::CallbackInfo& info);
  static Stream* From(napi_env env, napi_value v);
  StreamPtr s;

 private:
  Napi::Value Destroy(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), s ? s->device : -1); }
};

// Host memory owned by the addon, exposed as an external ArrayBuffer: asynchronous calls use it
// in place, because detaching or transferring the ArrayBuffer cannot free it while a call holds
// a reference (refs: one for the JS side until its finalizer runs, one per call in flight).
struct HostBlock {
  void* ptr = nullptr;
  size_t bytes = 0;
  std::atomic<int> refs{1};
  void release() {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      ::operator delete(ptr, std::align_val_t(64));
      delete this;
    }
  }
};
// The HostBlock behind ArrayBuffer ab (not detached), or nullptr.
HostBlock* owned_block(napi_env env, napi_value ab);

// Per addon instance (per worker thread).
struct AddonState {
  Napi::FunctionReference buffer_ctor, stream_ctor;
  bool constructing = false;   // DeviceBuffer/Stream are created by the addon only
  StreamPtr call_stream;       // options.stream of the op being called (null: the device's stream)
  int default_device = 0;      // device of host-input cuda calls and uploads
  size_t async_inline_bytes = 256 * 1024;  // async calls on less array data than this run inline
  std::map<int, StreamPtr> library_streams;
  // Bytes copied between host and device by uploads, downloads and argument checks (tests use
  // them to show that validation reads back only small index arrays).
  double h2d_bytes = 0, d2h_bytes = 0;
  int device_count = -1;       // cached; -1 = not queried
};
AddonState& state(napi_env env);

// The library stream of device d, wrapped (not owned).
StreamPtr library_stream(AddonState& st, int d, std::string* err);
// Number of CUDA devices (0 without CUDA or without a driver).
int cuda_device_count(AddonState& st);

// Copies between host and a DevMem (device or emulated), waiting for completion.
bool copy_from_device(const DevMem& m, void* dst, const void* src, size_t bytes, const StreamPtr& stream, std::string* err);
bool copy_to_device(const DevMem& m, void* dst, const void* src, size_t bytes, const StreamPtr& stream, bool sync, std::string* err);

void register_device(Napi::Env env, Napi::Object exports);

}  // namespace rk_addon
