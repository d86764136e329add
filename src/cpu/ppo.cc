// CPU kernels of the PPO family (SPEC §5) and P3O.
//
// ppoPolicyLoss / valueLoss: a cheap pre-pass counts each row's mask (needed for the weights of
// the gradient before the main sweep); then ONE fused sweep per row computes the per-token loss,
// its gradient (written scaled by the aggregation weight), the clip indicator and ½(logp − old)²,
// reducing the three sums in 16 float lanes per 1024-token block (so the loop vectorises without
// -ffast-math), each block folded into f64 row sums. Rows are split over the pool; the row sums are
// combined afterwards serially in row order, so results do not depend on the thread split.
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../core/ppo.hpp"
#include "common.hpp"

namespace rk {
namespace {

template <class F>
void with_kl(int e, F&& f) {
  switch (e) {
    case RK_KL_K1: f(std::integral_constant<int, RK_KL_K1>{}); break;
    case RK_KL_K2: f(std::integral_constant<int, RK_KL_K2>{}); break;
    case RK_KL_K3: f(std::integral_constant<int, RK_KL_K3>{}); break;
    case RK_KL_ABS: f(std::integral_constant<int, RK_KL_ABS>{}); break;
    default: f(std::integral_constant<int, RK_KL_NONE>{}); break;
  }
}

constexpr size_t kLanes = 16;
constexpr size_t kBlock = 1024;

// Counted tokens per row, and the totals N (tokens) and S (rows with at least one).
template <class M>
void count_rows(const M& mask, size_t B, size_t T, std::vector<uint32_t>& cnt, double& N, double& S) {
  if (std::is_same<M, MaskNone>::value) {
    for (size_t b = 0; b < B; ++b) cnt[b] = (uint32_t)T;
  } else {
    uint32_t* c = cnt.data();
    parallel_rows(B, T, [&](size_t b0, size_t b1) {
      simd_dispatch([&]() RK_LOOP {
        for (size_t b = b0; b < b1; ++b) {
          uint32_t s = 0;
          const size_t base = b * T;
          for (size_t t = 0; t < T; ++t) s += mask[base + t] ? 1u : 0u;
          c[b] = s;
        }
      });
    });
  }
  double n = 0, s = 0;
  for (size_t b = 0; b < B; ++b) {
    n += cnt[b];
    s += cnt[b] ? 1.0 : 0.0;
  }
  N = n;
  S = s;
}

struct RowSums {
  std::vector<double> loss, clip, kl;
  explicit RowSums(size_t B) : loss(B), clip(B), kl(B) {}
};

}  // namespace
}  // namespace rk

extern "C" void rk_cpu_ppo_policy_loss(const rk_ppo_policy_loss_args* a) {
  using namespace rk;
  const size_t B = a->B, T = a->T;
  std::vector<uint32_t> cnt(B);
  RowSums rs(B);
  double N = 0, S = 0;
  with_mask(a->mask_kind, a->mask, [&](auto mask) {
    count_rows(mask, B, T, cnt, N, S);
    with_kl(a->kl_estimator, [&](auto est) {
      constexpr int E = decltype(est)::value;
      parallel_rows(B, T, [&](size_t b0, size_t b1) {
        simd_dispatch([&]() RK_LOOP {
          const float* __restrict lp = a->logp;
          const float* __restrict op = a->old_logp;
          const float* __restrict ad = a->advantages;
          const float* __restrict rp = a->ref_logp;
          float* __restrict gr = a->grad_logp;
          const float lo = 1.0f - a->clip_low, hi = 1.0f + a->clip_high;
          const bool has_dual = a->has_dual_clip != 0;
          const float dual = a->dual_clip, coef = a->kl_coef;
          for (size_t b = b0; b < b1; ++b) {
            const float w = (float)agg_weight(a->aggregation, cnt[b], N, S, a->has_normalizer, a->normalizer);
            double sl = 0, sc = 0, sk = 0;
            const size_t base = b * T;
            for (size_t t0 = 0; t0 < T; t0 += kBlock) {
              const size_t e = base + (T - t0 < kBlock ? T : t0 + kBlock);
              float al[kLanes] = {}, ac[kLanes] = {}, ak[kLanes] = {};
              auto tok = [&](size_t k, size_t j) RK_LOOP {
                LossTerm r = ppo_clip_term(lp[k], op[k], ad[k], lo, hi, has_dual, dual);
                float l = r.loss, g = r.grad;
                if (E != RK_KL_NONE) {
                  float d = lp[k] - rp[k];
                  l += coef * kl_estimate<E == RK_KL_NONE ? RK_KL_K1 : E>(d);
                  g += coef * kl_grad<E == RK_KL_NONE ? RK_KL_K1 : E>(d);
                }
                const bool m = mask[k];
                const float dd = lp[k] - op[k];
                gr[k] = m ? w * g : 0.0f;
                al[j] += m ? l : 0.0f;
                ac[j] += (m && r.clipped) ? 1.0f : 0.0f;
                ak[j] += m ? 0.5f * dd * dd : 0.0f;
              };
              size_t k = base + t0;
              for (; k + kLanes <= e; k += kLanes)
                for (size_t j = 0; j < kLanes; ++j) tok(k + j, j);
              for (size_t j = 0; k < e; ++k, ++j) tok(k, j);
              float fl = 0, fc = 0, fk = 0;
              for (size_t j = 0; j < kLanes; ++j) {
                fl += al[j];
                fc += ac[j];
                fk += ak[j];
              }
              sl += fl;
              sc += fc;
              sk += fk;
            }
            rs.loss[b] = sl;
            rs.clip[b] = sc;
            rs.kl[b] = sk;
          }
        });
      });
    });
  });
  double loss = 0, clip = 0, kl = 0;
  for (size_t b = 0; b < B; ++b) {
    loss += agg_weight(a->aggregation, cnt[b], N, S, a->has_normalizer, a->normalizer) * rs.loss[b];
    clip += rs.clip[b];
    kl += rs.kl[b];
  }
  a->result[0] = loss;
  a->result[1] = N > 0 ? clip / N : 0.0;
  a->result[2] = N > 0 ? kl / N : 0.0;
}

extern "C" void rk_cpu_value_loss(const rk_value_loss_args* a) {
  using namespace rk;
  const size_t B = a->B, T = a->T;
  std::vector<uint32_t> cnt(B);
  RowSums rs(B);
  double N = 0, S = 0;
  with_mask(a->mask_kind, a->mask, [&](auto mask) {
    count_rows(mask, B, T, cnt, N, S);
    parallel_rows(B, T, [&](size_t b0, size_t b1) {
      simd_dispatch([&]() RK_LOOP {
        const float* __restrict vp = a->values;
        const float* __restrict op = a->old_values;
        const float* __restrict rp = a->returns;
        float* __restrict gr = a->grad_values;
        const float c = a->clip;
        for (size_t b = b0; b < b1; ++b) {
          const float w = (float)agg_weight(a->aggregation, cnt[b], N, S, a->has_normalizer, a->normalizer);
          double sl = 0, sc = 0;
          const size_t base = b * T;
          for (size_t t0 = 0; t0 < T; t0 += kBlock) {
            const size_t e = base + (T - t0 < kBlock ? T : t0 + kBlock);
            float al[kLanes] = {}, ac[kLanes] = {};
            auto tok = [&](size_t k, size_t j) RK_LOOP {
              LossTerm r = value_term(vp[k], op[k], rp[k], c);
              const bool m = mask[k];
              gr[k] = m ? w * r.grad : 0.0f;
              al[j] += m ? r.loss : 0.0f;
              ac[j] += (m && r.clipped) ? 1.0f : 0.0f;
            };
            size_t k = base + t0;
            for (; k + kLanes <= e; k += kLanes)
              for (size_t j = 0; j < kLanes; ++j) tok(k + j, j);
            for (size_t j = 0; k < e; ++k, ++j) tok(k, j);
            float fl = 0, fc = 0;
            for (size_t j = 0; j < kLanes; ++j) {
              fl += al[j];
              fc += ac[j];
            }
            sl += fl;
            sc += fc;
          }
          rs.loss[b] = sl;
          rs.clip[b] = sc;
        }
      });
    });
  });
  double loss = 0, clip = 0;
  for (size_t b = 0; b < B; ++b) {
    loss += agg_weight(a->aggregation, cnt[b], N, S, a->has_normalizer, a->normalizer) * rs.loss[b];
    clip += rs.clip[b];
  }
  a->result[0] = loss;
  a->result[1] = N > 0 ? clip / N : 0.0;
}

// P3O (Pairwise PPO, Wu et al. 2023): one element per prompt, so a plain serial loop in f64 sums.
extern "C" void rk_cpu_p3o_loss(const rk_p3o_loss_args* a) {
  using namespace rk;
  const size_t B = a->B;
  const double denom = a->has_normalizer ? a->normalizer : (double)B;
  const float w = denom > 0 ? (float)(1.0 / denom) : 0.0f;
  const float lo = 1.0f - a->clip_low, hi = 1.0f + a->clip_high;
  double loss = 0, clip = 0;
  for (size_t b = 0; b < B; ++b) {
    const float A = 0.5f * (a->rewards1[b] - a->rewards2[b]);
    if (a->variant == RK_P3O_JOINT) {
      // V2: ρ = π(y1)π_old(y2) / (π_old(y1)π(y2)), ℓ = max(−Aρ, −A·clip(ρ))
      float lr = (a->logp1[b] - a->old_logp1[b]) - (a->logp2[b] - a->old_logp2[b]);
      LossTerm r = ppo_clip_term(lr, 0.0f, A, lo, hi, false, 0.0f);
      loss += r.loss;
      clip += r.clipped ? 1.0 : 0.0;
      a->grad_logp1[b] = w * r.grad;
      a->grad_logp2[b] = -(w * r.grad);
    } else {
      // V1: ℓ = max(−Aρ1, −A·clip(ρ1)) + max(Aρ2, A·clip(ρ2))
      LossTerm r1 = ppo_clip_term(a->logp1[b], a->old_logp1[b], A, lo, hi, false, 0.0f);
      LossTerm r2 = ppo_clip_term(a->logp2[b], a->old_logp2[b], -A, lo, hi, false, 0.0f);
      loss += (double)r1.loss + (double)r2.loss;
      clip += (r1.clipped ? 0.5 : 0.0) + (r2.clipped ? 0.5 : 0.0);
      a->grad_logp1[b] = w * r1.grad;
      a->grad_logp2[b] = w * r2.grad;
    }
  }
  a->result[0] = denom > 0 ? loss / denom : 0.0;
  a->result[1] = B ? clip / (double)B : 0.0;
}
