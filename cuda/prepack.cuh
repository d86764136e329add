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
// packedAttention with an explicit kernel choice (for the GPU bench, which times and checks them
// all). RK_ATTN_DEFAULT: the RK_ATTN_KERNEL environment variable, read once ("wmma", "simt",
// "fa2-64", "fa2-128"; unset: RK_ATTN_FA2). RK_ATTN_FA2: the FlashAttention-2-style kernel (f16/bf16,
// Dh 64 → 128 query rows per block, Dh 128 → 64); _M64 / _M128 force 64 / 128 rows (Dh = 64 only).
// RK_ATTN_WMMA: the earlier WMMA kernel. Cases a tensor-core kernel does not cover (f32,
// other head sizes, sm < 80, q/k/v not 16-byte aligned) run the SIMT kernel
// whatever the choice.
enum RkAttnKernel : int {
  RK_ATTN_DEFAULT = 0,
  RK_ATTN_FA2 = 1,
  RK_ATTN_FA2_M64 = 2,
  RK_ATTN_FA2_M128 = 3,
  RK_ATTN_WMMA = 4,
  RK_ATTN_SIMT = 5,
};
cudaError_t rk_launch_packed_attention_with(const rk_packed_attention_args& a, cudaStream_t s, int kernel);
