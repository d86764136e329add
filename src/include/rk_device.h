/* rlhf-kernels C ABI: CUDA devices, streams and memory (cuda/device.cu). Used by the Node addon
 * for device tensors, and available to C/C++ callers of the rk_cuda_*_dev entry points.
 * Every function returns 0 on success, else 1 with a message in err (err may be NULL). In a
 * build without CUDA they all fail with "built without CUDA". */
#ifndef RK_DEVICE_H
#define RK_DEVICE_H
#include "rk_common.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Makes `device` the calling thread's current device. */
int rk_cuda_set_device(int device, char* err, size_t errlen);

/* The library's stream of `device` (created on first use, non-blocking, never destroyed):
 * rk_cuda_<op> runs there, and rk_cuda_<op>_dev with stream == NULL. */
int rk_cuda_default_stream(int device, void** stream, char* err, size_t errlen);
int rk_cuda_stream_create(int device, void** stream, char* err, size_t errlen);
int rk_cuda_stream_destroy(int device, void* stream);
int rk_cuda_stream_synchronize(int device, void* stream, char* err, size_t errlen);
/* Makes `waiter` wait for the work queued so far on `waitee` (an event; no host wait). */
int rk_cuda_stream_wait(int device, void* waiter, void* waitee, char* err, size_t errlen);

/* Events, to wait on the host for a point of a stream from another thread. */
int rk_cuda_event_record(int device, void* stream, void** event, char* err, size_t errlen);
int rk_cuda_event_synchronize(void* event, char* err, size_t errlen); /* also destroys it */

/* Stream-ordered memory from the library's pool of `device` (a CUDA memory pool that keeps what it
 * has reserved: after warm-up no call reaches cudaMalloc). The memory may be used on `stream` at
 * once, and on other streams after synchronising with it. rk_cuda_free_async returns it to the
 * pool in the order of `stream`. */
int rk_cuda_malloc_async(int device, size_t bytes, void* stream, void** ptr, char* err, size_t errlen);
int rk_cuda_free_async(int device, void* ptr, void* stream);

#define RK_COPY_H2D 0
#define RK_COPY_D2H 1
#define RK_COPY_D2D 2
/* Copies bytes on `stream`. With sync != 0 the call returns when the copy is done. */
int rk_cuda_memcpy(int device, void* dst, const void* src, size_t bytes, int kind, void* stream, int sync, char* err,
                   size_t errlen);
int rk_cuda_memset(int device, void* dst, int value, size_t bytes, void* stream, char* err, size_t errlen);

/* dtype codes of device tensors (RK_DT_F32 / F16 / BF16 from rk_common.h, and these). */
#define RK_DT_F64 3
#define RK_DT_I32 4
#define RK_DT_U8 5
/* dst[i] = (float)src[i] for src of dtype RK_DT_F64 / F16 / BF16 / F32, on `stream`. */
int rk_cuda_convert_f32(int device, const void* src, int src_dtype, float* dst, size_t n, void* stream, char* err,
                        size_t errlen);

typedef struct {
  size_t reserved;      /* bytes the pool holds from the driver */
  size_t used;          /* bytes handed out */
  size_t reserved_high; /* high-water marks */
  size_t used_high;
} rk_cuda_memory_stats;
int rk_cuda_memory_stats_get(int device, rk_cuda_memory_stats* s, char* err, size_t errlen);
/* Waits for the device, then returns the pool's unused memory to the driver. */
int rk_cuda_empty_cache(int device, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
