// Device-pointer launchers of the linear family (SPEC §8), for the GPU bench and fused callers.
// All pointers in the args are device pointers; work is queued on `s`. Each launcher first
// compacts the counted rows on the device and reads their number back (one stream
// synchronisation: the grids and the scratch depend on it); scratch comes from the library's
// stream-ordered pool on `s` (rkc::dev_alloc; rk_linear_cuda_scratch_bytes says how much).
#pragma once
#include <cuda_runtime.h>

#include "../src/include/rk_linear.h"

cudaError_t rk_launch_linear_logprobs(const rk_linear_logprobs_args& a, cudaStream_t s);
cudaError_t rk_launch_linear_logprobs_backward(const rk_linear_logprobs_backward_args& a, cudaStream_t s);
cudaError_t rk_launch_linear_preference_loss(const rk_linear_preference_args& a, cudaStream_t s);
// logits[N*V] = hidden·weightᵀ + bias (f32): the product alone, on the same GEMM kernels.
cudaError_t rk_launch_linear_logits(const void* hidden, const void* weight, const float* bias, int dtype, size_t N, size_t V,
                                    size_t D, float* logits, cudaStream_t s);
// Scratch bytes of a launcher with Na counted rows: forward (backward = 0, entropy or not) or
// backward (1, lse and the entropy given).
size_t rk_linear_cuda_scratch_bytes(size_t N, size_t Na, size_t V, size_t D, int dtype, size_t chunk, int backward);
// The GEMM kernels of the family: version 1 (default) or 2 (the second generation, opt-in until a
// GPU run has verified it; also chosen by the environment variable RK_LINEAR_GEMM=v2, read once).
// Sets it when version is 1 or 2 (the next launches use it) and returns the previous one; any other
// value only returns the current one.
int rk_linear_gemm_select(int version);
