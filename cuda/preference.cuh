// Device-pointer launchers of the preference family (for the GPU bench and fused callers).
// Every pointer in the args (scalars included) is a device pointer.
#pragma once
#include <cuda_runtime.h>

#include "../src/include/rk_preference.h"

cudaError_t rk_launch_preference_loss(const rk_preference_loss_args& a, cudaStream_t s);
cudaError_t rk_launch_apo_reference(const rk_apo_reference_args& a, cudaStream_t s);
// K ≤ 4000 (three K-float rows of shared memory per block).
cudaError_t rk_launch_listwise_loss(const rk_listwise_loss_args& a, cudaStream_t s);
// fusedPreferenceLoss: rk_launch_logprobs → per-sequence sums → loss → rk_launch_logprobs_backward.
// Scratch (O(2B·T) floats) from cudaMallocAsync on `s`.
cudaError_t rk_launch_fused_preference_loss(const rk_fused_preference_args& a, cudaStream_t s);
// Its steps shared with linearPreferenceLoss (cuda/linear.cu): the effective labels (ignore_index
// where the mask does not count; lab[2B·T]), then from the token log-probs the sequence sums, the
// loss (the outputs of `a`) and dLoss/dlogp per token (glogp[2B·T], 0 where not counted).
cudaError_t rk_launch_fused_pref_labels(const rk_fused_preference_args& a, int32_t* lab, cudaStream_t s);
cudaError_t rk_launch_fused_pref_loss(const rk_fused_preference_args& a, const int32_t* lab, const float* logp, float* glogp,
                                      cudaStream_t s);
