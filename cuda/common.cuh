// Helpers shared by the CUDA kernels: error reporting into the C ABI's err buffer, scratch from the
// library's memory pool, and staging of host arrays for the rk_cuda_* entry points (host
// pointers: they stage, run the rk_cuda_*_dev entry point on the library stream, copy back).
// Device-pointer launchers (rk_launch_*) take device pointers and a stream.
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "../src/core/common.hpp"
#include "../src/include/rlhf_kernels.h"

namespace rkc {

inline int report(cudaError_t e, const char* what, char* err, size_t errlen) {
  if (e == cudaSuccess) return 0;
  if (err && errlen) snprintf(err, errlen, "%s: %s", what, cudaGetErrorString(e));
  cudaGetLastError();  // clear a sticky launch error so later calls start clean
  return 1;
}

#define RKC_TRY(expr)                                             \
  do {                                                            \
    cudaError_t rkc_e_ = (expr);                                  \
    if (rkc_e_ != cudaSuccess) return rkc::report(rkc_e_, #expr, err, errlen); \
  } while (0)

// Stream-ordered scratch from the library's memory pool of the current device (cuda/device.cu):
// after warm-up no call reaches cudaMalloc. dev_free returns the block in `stream` order.
cudaStream_t current_stream();  // the library's stream of the current device
cudaError_t dev_alloc(void** p, size_t bytes, cudaStream_t stream);
cudaError_t dev_free(void* p, cudaStream_t stream);
inline cudaStream_t stream_of(void* s) { return s ? static_cast<cudaStream_t>(s) : current_stream(); }
// Runs f(scratch) with `bytes` of pool memory on stream s, returned to the pool after the work.
template <class F>
cudaError_t with_scratch(size_t bytes, cudaStream_t s, F&& f) {
  void* p = nullptr;
  cudaError_t e = dev_alloc(&p, bytes, s);
  if (e != cudaSuccess) return e;
  e = f(p);
  dev_free(p, s);
  return e;
}

// Device copies of a call's host arrays, on the library's stream of the current device. in()
// queues a host → device copy; out() allocates, and finish() copies device → host after the
// work; scratch() is device-only. Everything returns to the pool on destruction.
class Staging {
 public:
  Staging() : s_(current_stream()) {}
  ~Staging() {
    for (void* p : bufs_) dev_free(p, s_);
  }
  cudaStream_t stream() const { return s_; }
  template <class T>
  cudaError_t in(const T* host, size_t n, const T** dev) {
    const void* d = nullptr;
    cudaError_t e = in_bytes(host, n * sizeof(T), &d);
    *dev = static_cast<const T*>(d);
    return e;
  }
  // Untyped variant for masks and logits whose element size depends on a kind code.
  cudaError_t in_bytes(const void* host, size_t bytes, const void** dev) {
    if (!host) { *dev = nullptr; return cudaSuccess; }
    void* d = nullptr;
    cudaError_t e = alloc(bytes, &d);
    if (e != cudaSuccess) return e;
    *dev = d;
    return bytes ? cudaMemcpyAsync(d, host, bytes, cudaMemcpyHostToDevice, s_) : cudaSuccess;
  }
  template <class T>
  cudaError_t out(T* host, size_t n, T** dev) {
    if (!host) { *dev = nullptr; return cudaSuccess; }
    void* d = nullptr;
    cudaError_t e = alloc(n * sizeof(T), &d);
    if (e != cudaSuccess) return e;
    *dev = static_cast<T*>(d);
    outs_.push_back({d, host, n * sizeof(T)});
    return cudaSuccess;
  }
  template <class T>
  cudaError_t scratch(size_t n, T** dev) {
    void* d = nullptr;
    cudaError_t e = alloc(n * sizeof(T), &d);
    *dev = static_cast<T*>(d);
    return e;
  }
  // Surfaces launch errors, copies the outputs back after the work, waits.
  cudaError_t finish() {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    for (auto& o : outs_) {
      if (!o.bytes) continue;
      e = cudaMemcpyAsync(o.host, o.dev, o.bytes, cudaMemcpyDeviceToHost, s_);
      if (e != cudaSuccess) return e;
    }
    return cudaStreamSynchronize(s_);
  }

 private:
  cudaError_t alloc(size_t bytes, void** d) {
    cudaError_t e = dev_alloc(d, bytes, s_);
    if (e == cudaSuccess) bufs_.push_back(*d);
    return e;
  }
  struct Out { void* dev; void* host; size_t bytes; };
  cudaStream_t s_;
  std::vector<void*> bufs_;
  std::vector<Out> outs_;
};

// The device-pointer entry point rk_cuda_<op>_dev of a launcher that needs no scratch.
#define RKC_DEV_ENTRY(op, T)                                                                  \
  extern "C" int rk_cuda_##op##_dev(const T* a, void* stream, char* err, size_t errlen) {    \
    RKC_TRY(rk_launch_##op(*a, rkc::stream_of(stream)));                                      \
    return 0;                                                                                 \
  }
// In a host entry point: runs the device entry point on the staging stream.
#define RKC_RUN_DEV(op, d) \
  do {                     \
    if (rk_cuda_##op##_dev(&(d), st.stream(), err, errlen)) return 1; \
  } while (0)

// Bytes per mask element for a mask kind.
inline size_t mask_bytes(int kind) { return kind == RK_MASK_F32 ? 4 : (kind == RK_MASK_U8 ? 1 : 0); }

// Reads mask element i on the device (kind NONE: counts).
__device__ __forceinline__ bool mask_at(const void* m, int kind, size_t i) {
  if (kind == RK_MASK_U8) return static_cast<const uint8_t*>(m)[i] != 0;
  if (kind == RK_MASK_F32) return static_cast<const float*>(m)[i] != 0.0f;
  return true;
}

// Grid for n elementwise items with a grid-stride loop (no limit from grid dimensions on n).
inline unsigned grid_for(size_t n, unsigned block) {
  size_t g = (n + block - 1) / block;
  if (g > 65535u * 8u) g = 65535u * 8u;
  return g ? (unsigned)g : 1u;
}

}  // namespace rkc
