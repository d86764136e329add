// Device-pointer launchers of the PPO family (for the GPU bench and fused callers). Every pointer
// in the args is a device pointer, `result` included; `workspace` must hold
// rk_ppo_workspace_bytes(B, T) bytes. Results are deterministic (no float atomics: fixed-size
// blocks, fixed grid for a given B×T, fixed-order final combine).
#pragma once
#include <cuda_runtime.h>

#include "../src/include/rk_ppo.h"

cudaError_t rk_launch_ppo_policy_loss(const rk_ppo_policy_loss_args& a, cudaStream_t s);
cudaError_t rk_launch_value_loss(const rk_value_loss_args& a, cudaStream_t s);
cudaError_t rk_launch_p3o_loss(const rk_p3o_loss_args& a, cudaStream_t s);
