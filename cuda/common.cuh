// Helpers shared by the CUDA kernels: error reporting into the C ABI's err buffer, and staging of
// host arrays for the rk_cuda_* entry points (which take host pointers: the JS API hands us
// typed arrays). Device-resident launchers (launch_*) take device pointers and a stream; the GPU
// bench calls those directly.
#pragma once
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "../src/core/common.hpp"

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

// Device copies of a call's host arrays. in() copies host → device now; out() allocates and
// copies device → host in finish(); scratch() is device-only. Everything is freed on destruction.
class Staging {
 public:
  ~Staging() {
    for (void* p : bufs_) cudaFree(p);
  }
  template <class T>
  cudaError_t in(const T* host, size_t n, const T** dev) {
    if (!host) { *dev = nullptr; return cudaSuccess; }
    void* d = nullptr;
    cudaError_t e = alloc(n * sizeof(T), &d);
    if (e != cudaSuccess) return e;
    *dev = static_cast<const T*>(d);
    return n ? cudaMemcpy(d, host, n * sizeof(T), cudaMemcpyHostToDevice) : cudaSuccess;
  }
  // Untyped variant for masks and logits whose element size depends on a kind code.
  cudaError_t in_bytes(const void* host, size_t bytes, const void** dev) {
    if (!host) { *dev = nullptr; return cudaSuccess; }
    void* d = nullptr;
    cudaError_t e = alloc(bytes, &d);
    if (e != cudaSuccess) return e;
    *dev = d;
    return bytes ? cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice) : cudaSuccess;
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
  // Waits for the work, surfaces launch/kernel errors, copies outputs back.
  cudaError_t finish(cudaStream_t s = 0) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    e = cudaStreamSynchronize(s);
    if (e != cudaSuccess) return e;
    for (auto& o : outs_) {
      if (!o.bytes) continue;
      e = cudaMemcpy(o.host, o.dev, o.bytes, cudaMemcpyDeviceToHost);
      if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
  }

 private:
  cudaError_t alloc(size_t bytes, void** d) {
    cudaError_t e = cudaMalloc(d, bytes ? bytes : 4);
    if (e == cudaSuccess) bufs_.push_back(*d);
    return e;
  }
  struct Out { void* dev; void* host; size_t bytes; };
  std::vector<void*> bufs_;
  std::vector<Out> outs_;
};

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
