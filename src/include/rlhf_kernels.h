/* rlhf-kernels: the public C ABI. One header for every kernel of the package, usable from C99 and
 * C++ without Node: link librlhf_kernels.a or librlhf_kernels.so (built by CMakeLists.txt next to
 * the Node addon; CPU-only when CUDA is not built, in which case every rk_cuda_* function returns
 * 1 with "built without CUDA" in `err`).
 *
 * Every op `<op>` (the list is RK_FOR_EACH_CUDA_OP / RK_FOR_EACH_CPU_ONLY_OP in rk_ops.h, the
 * argument structs are in rk_<family>.h) has:
 *
 *   void rk_cpu_<op>(const rk_<op>_args* a);
 *       Host pointers. Runs on the calling thread plus the package's small CPU thread pool
 *       (RLHF_KERNELS_THREADS); safe to call from several threads at once. Inputs must already
 *       be valid (shapes, index ranges: the TypeScript layer checks them; the C ABI does not).
 *
 *   int rk_cuda_<op>(const rk_<op>_args* a, char* err, size_t errlen);
 *       Host pointers: copies the inputs to the current device (rk_cuda_set_device), runs on the
 *       library's stream of that device, copies the outputs back, waits. 0 on success, else 1
 *       with a message in err.
 *
 *   int rk_cuda_<op>_dev(const rk_<op>_args* a, void* stream, char* err, size_t errlen);
 *       Device pointers (every pointer in `a`, the scalar results `double*` included), all on the
 *       calling thread's current device; the work is queued on `stream` (a cudaStream_t; NULL =
 *       the library's stream of the current device, see rk_cuda_default_stream) and the call
 *       returns without waiting. Scratch memory comes from the library's stream-ordered memory
 *       pool of the device, so repeated calls do not cudaMalloc. Results are ready when the
 *       stream reaches them (cudaStreamSynchronize / events). Ops that the host entry point
 *       checks on the host (listwise K <= 4000, packedAttention Dh <= 2048) check the same here.
 *
 * Conventions shared by all ops: row-major arrays, masks as `const void*` plus `int mask_kind`
 * (RK_MASK_NONE / U8 / F32), logits as `const void*` plus an RK_DT_* dtype code (f16/bf16 as
 * uint16_t bit patterns). */
#ifndef RLHF_KERNELS_H
#define RLHF_KERNELS_H

#include "rk_common.h"
#include "rk_ops.h"
#include "rk_rewards.h"
#include "rk_advantages.h"
#include "rk_logprobs.h"
#include "rk_preference.h"
#include "rk_ppo.h"
#include "rk_prepack.h"
#include "rk_sampling.h"
#include "rk_linear.h"
#include "rk_device.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RK_DECLARE_CUDA_DEV_(op, T) int rk_cuda_##op##_dev(const T* a, void* stream, char* err, size_t errlen);
RK_FOR_EACH_CUDA_OP(RK_DECLARE_CUDA_DEV_)
#undef RK_DECLARE_CUDA_DEV_

/* 1 when the library was built with CUDA, else 0. */
int rk_has_cuda(void);

#ifdef __cplusplus
}
#endif
#endif
