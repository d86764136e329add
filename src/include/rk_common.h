/* rlhf-kernels C ABI: plain structs of raw pointers and sizes, shared by the N-API layer, the CPU
 * kernels and the CUDA kernels (nvcc never sees napi.h).
 *
 * Conventions for every op:
 *   - `void rk_cpu_<op>(const rk_<op>_args* a)`: runs on the calling thread plus the pool; inputs
 *     were validated by the caller (shapes, ranges), so kernels do no checking.
 *   - `int rk_cuda_<op>(const rk_<op>_args* a, char* err, size_t errlen)`: same arguments, host
 *     pointers; stages to the device, runs, copies back. Returns 0 on success, else writes a
 *     message into err. Compiled only when CUDA is (RK_WITH_CUDA).
 *   - masks: `const void* mask` with `int mask_kind` (RK_MASK_NONE/U8/F32, see core/common.hpp).
 */
#ifndef RK_COMMON_H
#define RK_COMMON_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RK_MASK_NONE 0
#define RK_MASK_U8 1
#define RK_MASK_F32 2

/* logits dtypes */
#define RK_DT_F32 0
#define RK_DT_F16 1
#define RK_DT_BF16 2

/* CUDA runtime info. count < 0 with err set when the runtime cannot be queried. */
int rk_cuda_device_count(int* count, char* err, size_t errlen);
int rk_cuda_device_info(int i, char* name, size_t namelen, size_t* memory_bytes);

#ifdef __cplusplus
}
#endif
#endif
