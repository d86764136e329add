// Device-pointer launchers of the advantages family (for the GPU bench and fused callers).
#pragma once
#include <cuda_runtime.h>

#include "../src/include/rk_advantages.h"

// gae (a.values != NULL) or discountedReturns (a.values == NULL): ONE launch, a block-wide
// segmented scan per row.
cudaError_t rk_launch_gae(const rk_gae_args& a, cudaStream_t s);
// whiten: a.stats is a device array of 3 doubles {count, mean, variance}; scratch holds
// rk_whiten_scratch_doubles(n) doubles (3 per 256 elements, at most 3072). y is left untouched
// when count < 2.
size_t rk_whiten_scratch_doubles(size_t n);
cudaError_t rk_launch_whiten_stats(const rk_whiten_args& a, double* scratch, cudaStream_t s);
cudaError_t rk_launch_whiten_apply(const rk_whiten_args& a, cudaStream_t s);
cudaError_t rk_launch_whiten(const rk_whiten_args& a, double* scratch, cudaStream_t s);
cudaError_t rk_launch_group_advantages(const rk_group_adv_args& a, cudaStream_t s);
cudaError_t rk_launch_ensemble_rewards(const rk_ensemble_args& a, cudaStream_t s);
cudaError_t rk_launch_win_rate_rewards(const rk_win_rate_args& a, cudaStream_t s);
