// Device-pointer launchers of the sampling family (for the GPU bench and fused callers).
#pragma once
#include <cuda_runtime.h>

#include "../src/include/rk_sampling.h"

cudaError_t rk_launch_speculative_verify(const rk_speculative_verify_args& a, cudaStream_t s);
cudaError_t rk_launch_spec_dec_stop(const rk_spec_dec_stop_args& a, cudaStream_t s);
cudaError_t rk_launch_geometric_mixture(const rk_geometric_mixture_args& a, cudaStream_t s);
// `taken` is device scratch of G*K bytes.
cudaError_t rk_launch_rejection_sample(const rk_rejection_sample_args& a, uint8_t* taken, cudaStream_t s);
