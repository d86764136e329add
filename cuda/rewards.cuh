// Device-pointer launchers of the reward family (for the GPU bench and fused callers).
#pragma once
#include <cuda_runtime.h>

#include "../src/include/rk_rewards.h"

cudaError_t rk_launch_kl_penalty(const rk_kl_penalty_args& a, cudaStream_t s);
cudaError_t rk_launch_token_rewards(const rk_token_rewards_args& a, cudaStream_t s);
cudaError_t rk_launch_rto_rewards(const rk_rto_rewards_args& a, cudaStream_t s);
cudaError_t rk_launch_implicit_rewards(const rk_implicit_rewards_args& a, cudaStream_t s);
