// Per-token math of the PPO family (SPEC §5), shared by the CPU and CUDA kernels.
//
// Every function returns the loss term, its derivative with respect to the policy input (logp or
// V) and whether the clipped branch was taken. Ties between the two branches take the unclipped
// one (its gradient); with a strict comparison, a clipped branch is only ever taken outside the
// clip range, where its derivative is 0.
#pragma once
#include "../include/rk_ppo.h"
#include "common.hpp"
#include "rewards.hpp"

namespace rk {

struct LossTerm {
  float loss;
  float grad;
  bool clipped;
};

// ∂/∂logp of kl_estimate<E>(logp − ref) (d = logp − ref): k1 1, k2 d, k3 1 − e^{−d}, abs sign(d).
template <int E>
RK_HD float kl_grad(float d) {
  if (E == RK_KL_K1) return 1.0f;
  if (E == RK_KL_K2) return d;
  if (E == RK_KL_K3) return 1.0f - expf_(-d);
  return d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : d * 0.0f);  // 0 at 0, NaN stays NaN
}

// PPO clipped surrogate (Schulman et al. 2017, eq. 7, as a loss to minimise), with dual-clip
// (Ye et al. 2020, "Mastering Complex Control in MOBA Games with Deep RL", eq. 5):
//   ρ = e^{logp − old}, ℓ = max(−Aρ, −A·clip(ρ, lo, hi)); for A < 0 and dual: ℓ = min(ℓ, −cA).
RK_HD LossTerm ppo_clip_term(float logp, float old, float A, float lo, float hi, bool has_dual, float dual) {
  float r = expf_(logp - old);
  float u = -A * r;
  float c = -A * clampf(r, lo, hi);
  bool clipped = c > u;
  float l = clipped ? c : u;
  float g = clipped ? 0.0f : u;  // ∂(−Aρ)/∂logp = −Aρ
  float dl = -dual * A;
  bool dc = has_dual && A < 0.0f && dl < l;
  l = dc ? dl : l;
  g = dc ? 0.0f : g;
  return {l, g, clipped};
}

// Clipped value loss (PPO2 baselines / Secrets of RLHF I eq. 8):
//   ½·max((V − R)², (clip(V, Vold − c, Vold + c) − R)²).
RK_HD LossTerm value_term(float v, float vold, float R, float c) {
  float vc = clampf(v, vold - c, vold + c);
  float e1 = v - R, e2 = vc - R;
  float l1 = e1 * e1, l2 = e2 * e2;
  bool clipped = l2 > l1;
  return {0.5f * (clipped ? l2 : l1), clipped ? 0.0f : e1, clipped};
}

// Weight of a counted token of a row with n counted tokens, for a global count N (token-mean) or
// row count S (seq-*), either replaced by `normalizer` when given. 0 when nothing is counted.
RK_HD double agg_weight(int aggregation, double n_row, double N, double S, int has_norm, double norm) {
  if (aggregation == RK_AGG_TOKEN_MEAN) {
    double d = has_norm ? norm : N;
    return d > 0.0 ? 1.0 / d : 0.0;
  }
  double d = has_norm ? norm : S;
  if (!(d > 0.0) || !(n_row > 0.0)) return 0.0;
  return aggregation == RK_AGG_SEQ_MEAN_TOKEN_SUM ? 1.0 / d : 1.0 / (d * n_row);
}

// Workspace of the CUDA launchers: row counts (u32[B], rounded to 8 bytes), two u64 totals, and
// kMaxBlocks × 4 doubles of per-block partial sums.
constexpr size_t kPpoMaxBlocks = 1024;
RK_HD size_t ppo_workspace_bytes(size_t B, size_t /*T*/) {
  return ((B * 4 + 7) / 8) * 8 + 16 + kPpoMaxBlocks * 4 * 8;
}

}  // namespace rk
