// Device-pointer launchers of the prepacking family (for the GPU bench and fused callers).
// packSequences / prepack's layout fill are host bookkeeping and have no device launcher.
#pragma once
#include <cuda_runtime.h>

#include "../src/include/rk_prepack.h"

cudaError_t rk_launch_attention_mask(const rk_attention_mask_args& a, cudaStream_t s);
cudaError_t rk_launch_unpack(const rk_unpack_args& a, cudaStream_t s);
// tiles_computed / tiles_skipped, when non-null, are device counters (zeroed by the caller) that
// the kernel adds its key-tile counts to.
cudaError_t rk_launch_packed_attention(const rk_packed_attention_args& a, cudaStream_t s);
