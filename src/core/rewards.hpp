// Per-element math of the reward family (SPEC §2), shared by CPU and CUDA.
#pragma once
#include "../include/rk_rewards.h"
#include "common.hpp"

namespace rk {

// KL estimators of KL(π‖π_ref) from one sample y ~ π, d = log π(y) − log π_ref(y)
// (Schulman, "Approximating KL divergence"): k1 = d, k2 = d²/2, k3 = e^{−d} − 1 + d, abs = |d|.
template <int E>
RK_HD float kl_estimate(float d) {
  if (E == RK_KL_K1) return d;
  if (E == RK_KL_K2) return 0.5f * d * d;
  if (E == RK_KL_K3) return expf_(-d) - 1.0f + d;
  return absf(d);
}

// Secrets of RLHF I, eq. 19: r_t = −klCoef·kl_t (+ clipped score at the last counted token).
template <int E>
RK_HD float token_reward(float logp, float ref, float kl_coef) {
  return -kl_coef * kl_estimate<E>(logp - ref);
}

// DPO Meets PPO (RTO), eq. 4.7: r_t = clip(β1·(dpoLogp − refLogp), ±c) − β2·(logp − refLogp)
// (the clip is on the whole first term, as in the authors' code; clip_c = +inf for no clip, which
// keeps the loop free of a loop-invariant branch the vectoriser cannot handle).
RK_HD float rto_reward(float dpo, float ref, float logp, float b1, float b2, float clip_c) {
  float t1 = clampf(b1 * (dpo - ref), -clip_c, clip_c);
  return t1 - b2 * (logp - ref);
}

}  // namespace rk
