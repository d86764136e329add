// Per-element / per-row math of the advantages family (SPEC §3), shared by CPU and CUDA.
//
// GAE and discounted returns are backward linear recurrences over the counted tokens of a row.
// Both are written here as scans of affine maps: position t carries the map
//   A ↦ d_t + c_t·A     with (c_t, d_t) = (γλ, δ_t) when t counts and (1, 0) when it does not,
// so a masked token passes the carry through unchanged (it is skipped, not zeroed). Maps compose
// associatively, which is what lets the CPU scan 16 positions per register and CUDA scan a row
// with a whole block. δ_t needs the value at the next counted position ("W", the nearest counted
// V at or after t+1, or lastValues), itself a scan with the "last valid wins" operator.
#pragma once
#include "../include/rk_advantages.h"
#include "common.hpp"

namespace rk {

// Affine map A ↦ d + c·A. compose(later, earlier) applies `later` first (the one nearer the end
// of the row), then `earlier`: earlier(later(A)) = d_e + c_e·(d_l + c_l·A).
struct Affine {
  float c, d;
};
RK_HD Affine affine_then(Affine later, Affine earlier) {
  return Affine{earlier.c * later.c, earlier.d + earlier.c * later.d};
}

// "Last valid wins" element of the W scan: has = some counted position seen, v = its value.
struct Valid {
  float v;
  bool has;
};
RK_HD Valid valid_then(Valid later, Valid earlier) { return earlier.has ? earlier : later; }

// One backward step of GAE at position t (scalar form, used for tails and by the reference-like
// paths): A is the advantage of the next counted position (0 past the end), W the value there
// (lastValues past the end). Writes adv/ret (0 when masked) and updates the carries.
RK_HD void gae_step(bool m, float r, float v, float gamma, float gl, float& A, float& W, float& adv, float& ret) {
  if (m) {
    float delta = r + gamma * W - v;
    A = delta + gl * A;
    W = v;
    adv = A;
    ret = A + v;
  } else {
    adv = 0.0f;
    ret = 0.0f;
  }
}

// One backward step of the discounted return G_t = r_t + γ·G_next over counted tokens.
RK_HD float discounted_step(bool m, float r, float gamma, float& G) {
  if (m) {
    G = r + gamma * G;
    return G;
  }
  return 0.0f;
}

// whiten: y = (x − μ)·inv (+ μ back when !shiftMean), masked → 0. μ comes as the float pair
// mu_hi + mu_lo (mu_hi = f32(μ), mu_lo = f32(μ − mu_hi)): x − mu_hi is exact for x near μ
// (Sterbenz), so a large mean does not leave its f32 rounding error (up to ulp(μ)/2) in y.
RK_HD float whiten_apply(bool m, float x, float mu_hi, float mu_lo, float inv, float add) {
  return m ? ((x - mu_hi) - mu_lo) * inv + add : 0.0f;
}

// Group advantages of one score given its group's float64 sum, mean and unbiased std:
// grpo (s − mean)/(std + eps) (a group of 1 → 0), drgrpo s − mean, rloo s − (sum − s)/(K − 1)
// (leave-one-out mean, in float64 so that it does not cancel), remax s − b.
RK_HD float group_adv(int method, float s, float b, double sum, float mean, float stdv, size_t K, float eps) {
  switch (method) {
    case RK_GROUP_GRPO: return K < 2 ? 0.0f : (s - mean) / (stdv + eps);
    case RK_GROUP_DRGRPO: return s - mean;
    case RK_GROUP_RLOO: return (float)((double)s - (sum - (double)s) / (double)(K - 1));
    default: return s - b;
  }
}

// NaN-propagating minimum (the ensemble's worst case): once a NaN is seen it stays.
RK_HD float min_nan(float acc, float s) { return (s < acc || s != s) ? s : acc; }

}  // namespace rk
