// Devices, streams and memory for device tensors and the rk_cuda_*_dev entry points (C ABI in
// src/include/rk_device.h).
//
// Memory: one CUDA memory pool per device (cudaMemPoolCreate) with an unlimited release
// threshold, so memory freed with cudaFreeAsync stays reserved and is handed out again by later
// cudaMallocFromPoolAsync calls: after warm-up, repeated calls of the same sizes never reach
// cudaMalloc. The pool is stream-ordered: a block freed on stream s is reusable on s at once and
// on other streams once the driver knows the free has happened (its default reuse policies).
// Devices without memory-pool support fall back to cudaMalloc / cudaFree (synchronising).
//
// Streams: each device has one library stream (non-blocking, created on first use, never
// destroyed): the default for every call on that device.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <mutex>
#include <vector>

#include "../src/include/rk_device.h"
#include "../src/include/rlhf_kernels.h"
#include "common.cuh"

namespace {

#define RKD_TRY(expr)                                                         \
  do {                                                                        \
    cudaError_t rkd_e_ = (expr);                                              \
    if (rkd_e_ != cudaSuccess) return rkc::report(rkd_e_, #expr, err, errlen); \
  } while (0)

struct DeviceState {
  bool init = false;
  bool pools = false;  // memory pools supported
  cudaMemPool_t pool = nullptr;
  cudaStream_t stream = nullptr;
};

std::mutex g_mu;
std::vector<DeviceState> g_dev;

// Initialises device d's pool and stream (call with d current). Thread-safe.
cudaError_t state_of(int d, DeviceState** out) {
  std::lock_guard<std::mutex> g(g_mu);
  if (d < 0) return cudaErrorInvalidDevice;
  if ((size_t)d >= g_dev.size()) g_dev.resize((size_t)d + 1);
  DeviceState& s = g_dev[(size_t)d];
  if (!s.init) {
    int prev = 0;
    cudaError_t e = cudaGetDevice(&prev);
    if (e != cudaSuccess) return e;
    if (prev != d && (e = cudaSetDevice(d)) != cudaSuccess) return e;
    int supported = 0;
    cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, d);
    if (supported) {
      cudaMemPoolProps props = {};
      props.allocType = cudaMemAllocationTypePinned;
      props.handleTypes = cudaMemHandleTypeNone;
      props.location.type = cudaMemLocationTypeDevice;
      props.location.id = d;
      e = cudaMemPoolCreate(&s.pool, &props);
      if (e == cudaSuccess) {
        uint64_t keep = UINT64_MAX;  // never give reserved memory back on its own
        cudaMemPoolSetAttribute(s.pool, cudaMemPoolAttrReleaseThreshold, &keep);
        s.pools = true;
      } else {
        cudaGetLastError();
        s.pool = nullptr;
      }
    }
    e = cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking);
    if (prev != d) cudaSetDevice(prev);
    if (e != cudaSuccess) return e;
    s.init = true;
  }
  *out = &s;
  return cudaSuccess;
}

cudaError_t current_state(DeviceState** out) {
  int d = 0;
  cudaError_t e = cudaGetDevice(&d);
  if (e != cudaSuccess) return e;
  return state_of(d, out);
}

// Makes d current when it is not (cheap when it already is).
cudaError_t use_device(int d) {
  int cur = -1;
  cudaError_t e = cudaGetDevice(&cur);
  if (e != cudaSuccess) return e;
  return cur == d ? cudaSuccess : cudaSetDevice(d);
}

template <class T>
__global__ void to_f32_kernel(const T* src, float* dst, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dst[i] = (float)src[i];
}
__global__ void bf16_to_f32_kernel(const uint16_t* src, float* dst, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dst[i] = __uint_as_float((uint32_t)src[i] << 16);
}
__global__ void f16_to_f32_kernel(const uint16_t* src, float* dst, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dst[i] = __half2float(__ushort_as_half(src[i]));
}

}  // namespace

// ---- helpers for the kernels' own scratch (common.cuh) ----
namespace rkc {

cudaStream_t current_stream() {
  DeviceState* s = nullptr;
  if (current_state(&s) != cudaSuccess) { cudaGetLastError(); return 0; }
  return s->stream;
}

cudaError_t dev_alloc(void** p, size_t bytes, cudaStream_t stream) {
  DeviceState* s = nullptr;
  cudaError_t e = current_state(&s);
  if (e != cudaSuccess) return e;
  if (bytes == 0) bytes = 4;
  if (!s->pools) return cudaMalloc(p, bytes);
  e = cudaMallocFromPoolAsync(p, bytes, s->pool, stream);
  if (e == cudaErrorMemoryAllocation) {
    // the pool may hold free blocks that other streams have not released yet: trim and retry once
    cudaGetLastError();
    cudaDeviceSynchronize();
    cudaMemPoolTrimTo(s->pool, 0);
    e = cudaMallocFromPoolAsync(p, bytes, s->pool, stream);
  }
  return e;
}

cudaError_t dev_free(void* p, cudaStream_t stream) {
  if (!p) return cudaSuccess;
  DeviceState* s = nullptr;
  cudaError_t e = current_state(&s);
  if (e != cudaSuccess) return e;
  if (!s->pools) return cudaFree(p);
  return cudaFreeAsync(p, stream);
}

}  // namespace rkc

// ---- C ABI ----
extern "C" int rk_has_cuda(void) { return 1; }

extern "C" int rk_cuda_set_device(int device, char* err, size_t errlen) {
  RKD_TRY(use_device(device));
  return 0;
}

extern "C" int rk_cuda_default_stream(int device, void** stream, char* err, size_t errlen) {
  DeviceState* s = nullptr;
  RKD_TRY(state_of(device, &s));
  *stream = s->stream;
  return 0;
}

extern "C" int rk_cuda_stream_create(int device, void** stream, char* err, size_t errlen) {
  RKD_TRY(use_device(device));
  cudaStream_t s = nullptr;
  RKD_TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  *stream = s;
  return 0;
}

extern "C" int rk_cuda_stream_destroy(int device, void* stream) {
  if (!stream || use_device(device) != cudaSuccess) { cudaGetLastError(); return 1; }
  // returns at once; the driver releases the stream when its queued work is done
  if (cudaStreamDestroy((cudaStream_t)stream) != cudaSuccess) { cudaGetLastError(); return 1; }
  return 0;
}

static cudaStream_t stream_or_default(int device, void* stream) {
  if (stream) return (cudaStream_t)stream;
  DeviceState* s = nullptr;
  if (state_of(device, &s) != cudaSuccess) { cudaGetLastError(); return 0; }
  return s->stream;
}

extern "C" int rk_cuda_stream_synchronize(int device, void* stream, char* err, size_t errlen) {
  RKD_TRY(use_device(device));
  RKD_TRY(cudaStreamSynchronize(stream_or_default(device, stream)));
  return 0;
}

extern "C" int rk_cuda_stream_wait(int device, void* waiter, void* waitee, char* err, size_t errlen) {
  RKD_TRY(use_device(device));
  cudaStream_t a = stream_or_default(device, waiter), b = stream_or_default(device, waitee);
  if (a == b) return 0;
  cudaEvent_t ev;
  RKD_TRY(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  cudaError_t e = cudaEventRecord(ev, b);
  if (e == cudaSuccess) e = cudaStreamWaitEvent(a, ev, 0);
  cudaEventDestroy(ev);  // released once the wait has been satisfied
  RKD_TRY(e);
  return 0;
}

extern "C" int rk_cuda_event_record(int device, void* stream, void** event, char* err, size_t errlen) {
  RKD_TRY(use_device(device));
  cudaEvent_t ev;
  RKD_TRY(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
  cudaError_t e = cudaEventRecord(ev, stream_or_default(device, stream));
  if (e != cudaSuccess) { cudaEventDestroy(ev); RKD_TRY(e); }
  *event = ev;
  return 0;
}

extern "C" int rk_cuda_event_synchronize(void* event, char* err, size_t errlen) {
  cudaEvent_t ev = (cudaEvent_t)event;
  cudaError_t e = cudaEventSynchronize(ev);
  cudaEventDestroy(ev);
  RKD_TRY(e);
  return 0;
}

extern "C" int rk_cuda_malloc_async(int device, size_t bytes, void* stream, void** ptr, char* err, size_t errlen) {
  RKD_TRY(use_device(device));
  RKD_TRY(rkc::dev_alloc(ptr, bytes, stream_or_default(device, stream)));
  return 0;
}

extern "C" int rk_cuda_free_async(int device, void* ptr, void* stream) {
  if (!ptr) return 0;
  if (use_device(device) != cudaSuccess || rkc::dev_free(ptr, stream_or_default(device, stream)) != cudaSuccess) {
    cudaGetLastError();
    return 1;
  }
  return 0;
}

extern "C" int rk_cuda_memcpy(int device, void* dst, const void* src, size_t bytes, int kind, void* stream, int sync,
                              char* err, size_t errlen) {
  if (!bytes) return 0;
  RKD_TRY(use_device(device));
  cudaStream_t s = stream_or_default(device, stream);
  cudaMemcpyKind k = kind == RK_COPY_H2D ? cudaMemcpyHostToDevice : kind == RK_COPY_D2H ? cudaMemcpyDeviceToHost
                                                                                        : cudaMemcpyDeviceToDevice;
  RKD_TRY(cudaMemcpyAsync(dst, src, bytes, k, s));
  if (sync) RKD_TRY(cudaStreamSynchronize(s));
  return 0;
}

extern "C" int rk_cuda_memset(int device, void* dst, int value, size_t bytes, void* stream, char* err, size_t errlen) {
  if (!bytes) return 0;
  RKD_TRY(use_device(device));
  RKD_TRY(cudaMemsetAsync(dst, value, bytes, stream_or_default(device, stream)));
  return 0;
}

extern "C" int rk_cuda_convert_f32(int device, const void* src, int src_dtype, float* dst, size_t n, void* stream,
                                   char* err, size_t errlen) {
  if (!n) return 0;
  RKD_TRY(use_device(device));
  cudaStream_t s = stream_or_default(device, stream);
  const unsigned g = rkc::grid_for(n, 256);
  switch (src_dtype) {
    case RK_DT_F64: to_f32_kernel<double><<<g, 256, 0, s>>>(static_cast<const double*>(src), dst, n); break;
    case RK_DT_F32: RKD_TRY(cudaMemcpyAsync(dst, src, n * 4, cudaMemcpyDeviceToDevice, s)); return 0;
    case RK_DT_F16: f16_to_f32_kernel<<<g, 256, 0, s>>>(static_cast<const uint16_t*>(src), dst, n); break;
    case RK_DT_BF16: bf16_to_f32_kernel<<<g, 256, 0, s>>>(static_cast<const uint16_t*>(src), dst, n); break;
    default:
      if (err && errlen) snprintf(err, errlen, "rk_cuda_convert_f32: unsupported dtype code %d", src_dtype);
      return 1;
  }
  RKD_TRY(cudaGetLastError());
  return 0;
}

extern "C" int rk_cuda_memory_stats_get(int device, rk_cuda_memory_stats* out, char* err, size_t errlen) {
  DeviceState* s = nullptr;
  RKD_TRY(state_of(device, &s));
  *out = rk_cuda_memory_stats{0, 0, 0, 0};
  if (!s->pools) return 0;
  uint64_t v = 0;
  RKD_TRY(cudaMemPoolGetAttribute(s->pool, cudaMemPoolAttrReservedMemCurrent, &v)); out->reserved = (size_t)v;
  RKD_TRY(cudaMemPoolGetAttribute(s->pool, cudaMemPoolAttrUsedMemCurrent, &v)); out->used = (size_t)v;
  RKD_TRY(cudaMemPoolGetAttribute(s->pool, cudaMemPoolAttrReservedMemHigh, &v)); out->reserved_high = (size_t)v;
  RKD_TRY(cudaMemPoolGetAttribute(s->pool, cudaMemPoolAttrUsedMemHigh, &v)); out->used_high = (size_t)v;
  return 0;
}

extern "C" int rk_cuda_empty_cache(int device, char* err, size_t errlen) {
  DeviceState* s = nullptr;
  RKD_TRY(state_of(device, &s));
  RKD_TRY(use_device(device));
  RKD_TRY(cudaDeviceSynchronize());
  if (s->pools) RKD_TRY(cudaMemPoolTrimTo(s->pool, 0));
  return 0;
}
