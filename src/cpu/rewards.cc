// CPU kernels of the reward family (SPEC §2). Elementwise: split over the pool in contiguous
// chunks, each loop vectorised per ISA through simd_dispatch; the per-element math is core/rewards.hpp.
#include "../core/rewards.hpp"

#include "common.hpp"

namespace rk {
namespace {

template <class F>
void with_estimator(int e, F&& f) {
  switch (e) {
    case RK_KL_K2: f(std::integral_constant<int, RK_KL_K2>{}); break;
    case RK_KL_K3: f(std::integral_constant<int, RK_KL_K3>{}); break;
    case RK_KL_ABS: f(std::integral_constant<int, RK_KL_ABS>{}); break;
    default: f(std::integral_constant<int, RK_KL_K1>{}); break;
  }
}

}  // namespace
}  // namespace rk

extern "C" void rk_cpu_kl_penalty(const rk_kl_penalty_args* a) {
  using namespace rk;
  const size_t n = a->B * a->T;
  with_mask(a->mask_kind, a->mask, [&](auto mask) {
    with_estimator(a->estimator, [&](auto est) {
      constexpr int E = decltype(est)::value;
      parallel_for(n, kElemGrain, [&](size_t b, size_t e) {
        simd_dispatch([&]() RK_LOOP {
          const float* __restrict lp = a->logp;
          const float* __restrict rp = a->ref_logp;
          float* __restrict out = a->kl;
          const float c = a->has_clamp ? a->clamp : inf_f();  // clamp to ±inf = no clamp, branch-free
          for (size_t i = b; i < e; ++i) {
            float k = clampf(kl_estimate<E>(lp[i] - rp[i]), -c, c);
            out[i] = mask[i] ? k : 0.0f;
          }
        });
      });
    });
  });
}

extern "C" void rk_cpu_token_rewards(const rk_token_rewards_args* a) {
  using namespace rk;
  const size_t T = a->T;
  with_mask(a->mask_kind, a->mask, [&](auto mask) {
    with_estimator(a->estimator, [&](auto est) {
      constexpr int E = decltype(est)::value;
      parallel_rows(a->B, T, [&](size_t b0, size_t b1) {
        simd_dispatch([&]() RK_LOOP {
          const float* __restrict lp = a->logp;
          const float* __restrict rp = a->ref_logp;
          float* __restrict out = a->rewards;
          const float coef = a->kl_coef;
          for (size_t i = b0 * T; i < b1 * T; ++i) {
            float r = token_reward<E>(lp[i], rp[i], coef);  // computed unconditionally, then selected
            out[i] = mask[i] ? r : 0.0f;
          }
        });
        for (size_t b = b0; b < b1; ++b) {
          long last = last_counted(mask, b * T, T);
          if (last < 0) continue;
          float s = a->scores[b];
          if (a->has_score_clip) s = clampf(s, -a->score_clip, a->score_clip);
          a->rewards[b * T + (size_t)last] += s;
        }
      });
    });
  });
}

extern "C" void rk_cpu_rto_rewards(const rk_rto_rewards_args* a) {
  using namespace rk;
  const size_t T = a->T;
  with_mask(a->mask_kind, a->mask, [&](auto mask) {
    parallel_rows(a->B, T, [&](size_t b0, size_t b1) {
      simd_dispatch([&]() RK_LOOP {
        const float* __restrict dp = a->dpo_logp;
        const float* __restrict rp = a->ref_logp;
        const float* __restrict lp = a->logp;
        float* __restrict out = a->rewards;
        const float b1_ = a->beta1, b2_ = a->beta2, c = a->has_dpo_clip ? a->dpo_clip : inf_f();
        for (size_t i = b0 * T; i < b1 * T; ++i) {
          float r = rto_reward(dp[i], rp[i], lp[i], b1_, b2_, c);
          out[i] = mask[i] ? r : 0.0f;
        }
      });
      if (!a->scores) return;
      for (size_t b = b0; b < b1; ++b) {
        long last = last_counted(mask, b * T, T);
        if (last >= 0) a->rewards[b * T + (size_t)last] += a->beta3 * a->scores[b];
      }
    });
  });
}

extern "C" void rk_cpu_implicit_rewards(const rk_implicit_rewards_args* a) {
  using namespace rk;
  const size_t n = a->B * a->T;
  with_mask(a->mask_kind, a->mask, [&](auto mask) {
    parallel_for(n, kElemGrain, [&](size_t b, size_t e) {
      simd_dispatch([&]() RK_LOOP {
        const float* __restrict lp = a->logp;
        const float* __restrict rp = a->ref_logp;
        float* __restrict out = a->rewards;
        const float beta = a->beta;
        for (size_t i = b; i < e; ++i) out[i] = mask[i] ? beta * (lp[i] - rp[i]) : 0.0f;
      });
    });
  });
}
