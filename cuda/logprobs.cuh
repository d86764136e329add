// Device-pointer launchers of the logprobs family (SPEC §1), for the GPU bench and fused callers
// (fusedPreferenceLoss composes rk_launch_logprobs → sums → loss → rk_launch_logprobs_backward).
// All pointers in the args are device pointers; work is queued on `s` (scratch, when a launcher
// needs any, comes from cudaMallocAsync on the same stream).
#pragma once
#include <cuda_runtime.h>

#include "../src/include/rk_logprobs.h"

cudaError_t rk_launch_logprobs(const rk_logprobs_args& a, cudaStream_t s);
cudaError_t rk_launch_logprobs_backward(const rk_logprobs_backward_args& a, cudaStream_t s);
cudaError_t rk_launch_vocab_kl(const rk_vocab_kl_args& a, cudaStream_t s);
cudaError_t rk_launch_vocab_kl_backward(const rk_vocab_kl_backward_args& a, cudaStream_t s);
cudaError_t rk_launch_sequence_logprobs(const rk_sequence_logprobs_args& a, cudaStream_t s);
