// Math of the linear family (SPEC §8), shared by the CPU and CUDA kernels.
//
// logits z_ij = (h_i·W_j + b_j)/τ are produced one vocabulary chunk at a time by a GEMM and folded,
// chunk by chunk, into the online softmax statistics of core/logprobs.hpp (LseStats: running max,
// Σe^{z−m}, Σe^{z−m}(z−m); lse_merge across chunks, lse_finish at the end), so
// linearLogprobs(h, W, b) = logprobs(h·Wᵀ + b) without the [N, V] logits ("Cut Your Losses in
// Large-Vocabulary Language Models" (Cut Cross-Entropy), §4; Liger Kernel's fused linear
// cross-entropy). The backward recomputes each chunk of z and forms
//   dZ_ij = ∂L/∂logit_ij = gl_i·(1[j=y_i] − p_ij)/τ − ge_i·p_ij·(z_ij − lse_i + H_i)/τ,  p = e^{z − lse}
// (SPEC §1 logprobsBackward), then gradHidden += dZ·W_chunk, gradWeight_chunk = dZᵀ·h,
// gradBias_chunk = Σ_i dZ_ij.
#pragma once
#include "../include/rk_linear.h"
#include "logprobs.hpp"

namespace rk {

// Default vocabulary chunk (columns of logits per GEMM pass). CPU: each thread's logits block is
// 96 × chunk floats (L2) and the packed weight chunk D × chunk floats (L3); the backward keeps
// dZ for Na × chunk. CUDA: the backward's dZ chunk (the forward works in 128-column tiles).
constexpr size_t kLinearChunkCpu = 512;
constexpr size_t kLinearChunkCuda = 8192;

// dZ of one logit: z = logit/τ (bias included), `label` whether j = y; GE: with the entropy term.
template <bool GE>
RK_HD float linear_dz(float z, bool label, float lse, float gl, float ge, float H, float inv_t) {
  return lp_grad<GE>(z - lse, gl, ge, H, inv_t) + (label ? gl * inv_t : 0.0f);
}

}  // namespace rk
