// What one native op call holds while it runs (docs/device.md): where it runs (host, emulated
// device, CUDA device), the stream, the memory it keeps alive, the snapshots of JS buffers an
// asynchronous call works on, and the scratch it owns. Args (args.hpp) fills it while reading the
// arguments; Args::run executes the kernel now, or hands the state to an AsyncWorker.
#pragma once
#include <napi.h>

#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "device.hpp"

namespace rk_addon {

enum class Where { Host, Emulated, Cuda };

struct CopyBack {
  napi_ref ref;       // the user's typed array
  void* tmp;          // the snapshot the kernel wrote
  size_t bytes;
  const char* name;
};

struct AlignedDelete {
  void operator()(char* p) const { ::operator delete(p, std::align_val_t(64)); }
};
using Owned = std::unique_ptr<char, AlignedDelete>;

struct CallState {
  napi_env env = nullptr;
  Where where = Where::Host;
  int device = 0;             // CUDA device (Where::Cuda), or the device of a host-input cuda call
  bool use_cuda = false;
  StreamPtr stream;           // Where::Cuda
  std::vector<napi_ref> refs;           // JS objects kept alive until the call completes
  std::vector<Owned> owned;             // snapshots and host scratch
  std::vector<CopyBack> copy_back;      // snapshots of output arrays, copied back on completion
  std::vector<HostBlock*> blocks;       // addon-owned host memory used in place
  std::vector<MemPtr> mems;             // device memory of the arguments
  std::vector<MemPtr> dev_scratch;      // device scratch, returned to the pool after the call
  size_t work_bytes = 0;                // bytes of array data (decides inline vs worker)

  CallState() = default;
  CallState(const CallState&) = delete;
  CallState& operator=(const CallState&) = delete;
  CallState(CallState&& o) noexcept
      : env(o.env), where(o.where), device(o.device), use_cuda(o.use_cuda), stream(std::move(o.stream)),
        refs(std::move(o.refs)), owned(std::move(o.owned)), copy_back(std::move(o.copy_back)), blocks(std::move(o.blocks)),
        mems(std::move(o.mems)), dev_scratch(std::move(o.dev_scratch)), work_bytes(o.work_bytes) {
    o.refs.clear();
    o.blocks.clear();
    o.copy_back.clear();
  }
  ~CallState() {
    // JS thread only (Args destructor, or the AsyncWorker after OnOK / OnError)
    for (napi_ref r : refs) napi_delete_reference(env, r);
    for (HostBlock* b : blocks) b->release();
  }

  char* alloc_host(size_t bytes, bool zero) {
    char* p = static_cast<char*>(::operator new(bytes ? bytes : 64, std::align_val_t(64)));
    owned.emplace_back(p);
    if (zero) std::memset(p, 0, bytes);
    return p;
  }

  // The device memory of an argument that contains [p, p + bytes), or nullptr.
  DevMem* mem_of(const void* p, size_t bytes) const {
    const char* c = static_cast<const char*>(p);
    for (const auto* v : {&mems, &dev_scratch})
      for (const MemPtr& m : *v) {
        const char* b = static_cast<const char*>(m->ptr);
        if (c >= b && c + bytes <= b + m->bytes) return m.get();
      }
    return nullptr;
  }

  // Copies bytes of a kernel result at src (device memory for CUDA calls) to host dst, waiting
  // for the work that writes it. "" or an error message.
  std::string fetch(void* dst, const void* src, size_t bytes) {
    if (!bytes || dst == src) return "";
    if (where != Where::Cuda) {
      std::memcpy(dst, src, bytes);
      return "";
    }
    DevMem* m = mem_of(src, bytes);
    if (!m) return "rlhf-kernels: internal error: fetch of unknown device memory";
    std::string err;
    if (!copy_from_device(*m, dst, src, bytes, stream, &err)) return "rlhf-kernels cuda: " + err;
    return "";
  }
};

template <class A>
struct Kernels {
  void (*cpu)(const A*) = nullptr;
  int (*cuda)(const A*, char*, size_t) = nullptr;        // host pointers
  int (*dev)(const A*, void*, char*, size_t) = nullptr;  // device pointers, on a stream
};
template <class A>
Kernels<A> kernels(void (*cpu)(const A*)) {
  Kernels<A> k;
  k.cpu = cpu;
  return k;
}
template <class A>
Kernels<A> kernels(void (*cpu)(const A*), int (*cuda)(const A*, char*, size_t), int (*dev)(const A*, void*, char*, size_t)) {
  Kernels<A> k;
  k.cpu = cpu;
  k.cuda = cuda;
  k.dev = dev;
  return k;
}
// The kernels of op `op`: rk_cpu_<op>, and rk_cuda_<op> / rk_cuda_<op>_dev in CUDA builds.
#ifdef RK_WITH_CUDA
#define RK_KERNELS(op) ::rk_addon::kernels(rk_cpu_##op, rk_cuda_##op, rk_cuda_##op##_dev)
#else
#define RK_KERNELS(op) ::rk_addon::kernels(rk_cpu_##op)
#endif

constexpr const char* kNoCuda =
    "rlhf-kernels: backend 'cuda' unavailable: the addon was built without CUDA (run npm run build:cuda)";

// Queues the kernel for a CUDA-device call on the call's stream (JS thread); host and emulated
// calls run the kernel right here (whichever thread calls this). "" or an error message.
template <class A>
std::string exec_call(const A& a, const Kernels<A>& k, CallState& s) {
  char err[512] = {0};
  switch (s.where) {
    case Where::Host:
      if (!s.use_cuda) {
        k.cpu(&a);
        return "";
      }
      if (!k.cuda) return kNoCuda;
      if (rk_cuda_set_device(s.device, err, sizeof err) || k.cuda(&a, err, sizeof err)) return std::string("rlhf-kernels cuda: ") + err;
      return "";
    case Where::Emulated:
      k.cpu(&a);
      return "";
    case Where::Cuda: {
      if (!k.dev) return "rlhf-kernels: this op has no CUDA kernel for device tensors";
      if (rk_cuda_set_device(s.device, err, sizeof err)) return std::string("rlhf-kernels cuda: ") + err;
      // inputs last written on another stream: this stream waits for that work first
      for (const MemPtr& m : s.mems) {
        StreamPtr last = m->last_stream();
        if (last && last != s.stream && rk_cuda_stream_wait(s.device, s.stream->stream, last->stream, err, sizeof err))
          return std::string("rlhf-kernels cuda: ") + err;
      }
      int rc = k.dev(&a, s.stream->stream, err, sizeof err);
      for (const MemPtr& m : s.mems) m->set_last(s.stream);  // frees and later readers order after this call
      if (rc) return std::string("rlhf-kernels cuda: ") + err;
      return "";
    }
  }
  return "";
}

// Copies the snapshots of output arrays back into the user's arrays (JS thread). Fails when an
// array was detached or resized while the call ran.
inline std::string copy_back(CallState& s) {
  for (const CopyBack& c : s.copy_back) {
    napi_value v;
    napi_typedarray_type t;
    size_t len = 0;
    void* data = nullptr;
    napi_value ab;
    size_t off = 0;
    bool detached = true;
    if (napi_get_reference_value(s.env, c.ref, &v) != napi_ok || !v ||
        napi_get_typedarray_info(s.env, v, &t, &len, &data, &ab, &off) != napi_ok ||
        napi_is_detached_arraybuffer(s.env, ab, &detached) != napi_ok || detached) {
      return std::string("rlhf-kernels: output '") + c.name + "' was detached during the asynchronous call; its result was dropped";
    }
    size_t el = t == napi_float64_array ? 8 : t == napi_uint8_array ? 1 : t == napi_uint16_array ? 2 : 4;
    if (len * el != c.bytes || (c.bytes && !data))
      return std::string("rlhf-kernels: output '") + c.name + "' was resized during the asynchronous call; its result was dropped";
    if (c.bytes) std::memcpy(data, c.tmp, c.bytes);
  }
  return "";
}

// Runs an op's kernel off the JS thread and settles a Promise with post()'s value. For CUDA
// device calls the kernel was already queued on the JS thread (stream order = program order);
// the worker only waits for the event recorded after it.
template <class A, class After, class Post>
class CallJob : public Napi::AsyncWorker {
 public:
  CallJob(Napi::Env env, const A& a, Kernels<A> k, CallState&& s, After after, Post post, void* event)
      : Napi::AsyncWorker(env, "rlhf-kernels:op"), d_(Napi::Promise::Deferred::New(env)), a_(a), k_(k),
        s_(std::move(s)), after_(std::move(after)), post_(std::move(post)), event_(event) {}
  Napi::Promise Promise() { return d_.Promise(); }

 protected:
  void Execute() override {
    std::string err;
    if (event_) {
      char e[512] = {0};
      if (rk_cuda_event_synchronize(event_, e, sizeof e)) err = std::string("rlhf-kernels cuda: ") + e;
      event_ = nullptr;
    } else {
      err = exec_call(a_, k_, s_);
    }
    if (err.empty()) err = after_(s_);
    if (!err.empty()) SetError(err);
  }
  void OnOK() override {
    Napi::Env env = Env();
    std::string err = copy_back(s_);
    if (!err.empty()) {
      d_.Reject(Napi::TypeError::New(env, err).Value());
      return;
    }
    try {
      d_.Resolve(post_(env));
    } catch (const Napi::Error& e) {
      d_.Reject(e.Value());
    } catch (const std::exception& e) {
      d_.Reject(Napi::Error::New(env, e.what()).Value());
    }
  }
  void OnError(const Napi::Error& e) override { d_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred d_;
  A a_;
  Kernels<A> k_;
  CallState s_;
  After after_;
  Post post_;
  void* event_;
};

}  // namespace rk_addon
