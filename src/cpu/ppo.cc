// CPU kernels of the PPO family (SPEC §5) and P3O.
//
// ppoPolicyLoss / valueLoss: a cheap pre-pass counts each row's mask (needed for the weights of
// the gradient before the main sweep); then ONE fused sweep per row computes the per-token loss,
// its gradient (written scaled by the aggregation weight), the loss term and ½(logp − old)² into
// two 1024-token stack buffers (L1) that are summed in 32 lanes (vectorised, no -ffast-math needed)
// and folded into f64 row sums, and the clip count as an integer reduction. Rows are split over the pool; the row sums are
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

constexpr size_t kBlock = 1024;

// Sum of buf[0, len) (len ≤ kBlock): 32 float lanes, each the in-order sum of every 32nd term
// (at most 32 terms: error ≤ 31 ulp of Σ|x|, usually far less), a vertical loop that vectorises
// without -ffast-math; then the lanes pairwise. The same lanes and order at every SIMD level, so
// the results do not depend on the ISA either. (A pairwise sum of the whole block did three
// memory passes per level over the buffer: ~15% of the sweep at AVX2.)
RK_LOOP inline float block_sum(const float* __restrict buf, size_t len) {
  constexpr size_t L = 32;
  float acc[L];
  for (size_t l = 0; l < L; ++l) acc[l] = 0.0f;
  size_t j = 0;
  for (; j + L <= len; j += L)
    for (size_t l = 0; l < L; ++l) acc[l] += buf[j + l];
  for (size_t l = 0; j + l < len; ++l) acc[l] += buf[j + l];
  for (size_t h = L / 2; h >= 1; h >>= 1)
    for (size_t l = 0; l < h; ++l) acc[l] += acc[l + h];
  return acc[0];
}

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

// The fused sweep over one block of a row (pointers already offset to the block; the mask is
// indexed from m0): loss term, gradient, clip indicator and ½(logp − old)² per token. A function
// with __restrict parameters rather than a lambda body, so that GCC vectorises it without
// runtime alias checks.
template <int E, class M>
RK_LOOP inline uint32_t policy_sweep(const float* __restrict lp, const float* __restrict op, const float* __restrict ad,
                                     const float* __restrict rp, const M& mask, size_t m0, float* __restrict gr,
                                     float* __restrict tl, float* __restrict tk, size_t len, float w, float lo, float hi,
                                     bool has_dual, float dual, float coef) {
  uint32_t nc = 0;  // clipped tokens: an integer reduction, which vectorises as is
  for (size_t j = 0; j < len; ++j) {
    LossTerm r = ppo_clip_term(lp[j], op[j], ad[j], lo, hi, has_dual, dual);
    float l = r.loss, g = r.grad;
    if (E != RK_KL_NONE) {
      float d = lp[j] - rp[j];
      l += coef * kl_estimate<E == RK_KL_NONE ? RK_KL_K1 : E>(d);
      g += coef * kl_grad<E == RK_KL_NONE ? RK_KL_K1 : E>(d);
    }
    const bool m = mask[m0 + j];
    const float dd = lp[j] - op[j];
    gr[j] = m ? w * g : 0.0f;
    tl[j] = m ? l : 0.0f;
    nc += (m && r.clipped) ? 1u : 0u;
    tk[j] = m ? 0.5f * dd * dd : 0.0f;
  }
  return nc;
}

template <class M>
RK_LOOP inline uint32_t value_sweep(const float* __restrict vp, const float* __restrict op, const float* __restrict rp,
                                    const M& mask, size_t m0, float* __restrict gr, float* __restrict tl, size_t len,
                                    float w, float c) {
  uint32_t nc = 0;
  for (size_t j = 0; j < len; ++j) {
    LossTerm r = value_term(vp[j], op[j], rp[j], c);
    const bool m = mask[m0 + j];
    gr[j] = m ? w * r.grad : 0.0f;
    tl[j] = m ? r.loss : 0.0f;
    nc += (m && r.clipped) ? 1u : 0u;
  }
  return nc;
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
  // nothing counted: every result is 0 (and no per-row scratch for B rows of nothing)
  if (B * T == 0) { a->result[0] = a->result[1] = a->result[2] = 0.0; return; }
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
          alignas(64) float tl[kBlock], tk[kBlock];
          for (size_t b = b0; b < b1; ++b) {
            const float w = (float)agg_weight(a->aggregation, cnt[b], N, S, a->has_normalizer, a->normalizer);
            double sl = 0, sc = 0, sk = 0;
            const size_t base = b * T;
            for (size_t t0 = 0; t0 < T; t0 += kBlock) {
              const size_t len = T - t0 < kBlock ? T - t0 : kBlock;
              const size_t k0 = base + t0;
              sc += policy_sweep<E>(lp + k0, op + k0, ad + k0, rp ? rp + k0 : nullptr, mask, k0, gr + k0, tl, tk, len, w, lo,
                                    hi, has_dual, dual, coef);
              sl += block_sum(tl, len);
              sk += block_sum(tk, len);
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
  if (B * T == 0) { a->result[0] = a->result[1] = 0.0; return; }  // (as in ppo_policy_loss)
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
        alignas(64) float tl[kBlock];
        for (size_t b = b0; b < b1; ++b) {
          const float w = (float)agg_weight(a->aggregation, cnt[b], N, S, a->has_normalizer, a->normalizer);
          double sl = 0, sc = 0;
          const size_t base = b * T;
          for (size_t t0 = 0; t0 < T; t0 += kBlock) {
            const size_t len = T - t0 < kBlock ? T - t0 : kBlock;
            const size_t k0 = base + t0;
            sc += value_sweep(vp + k0, op + k0, rp + k0, mask, k0, gr + k0, tl, len, w, c);
            sl += block_sum(tl, len);
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

namespace rk {
namespace {
// One P3O pass over [0, B): gradients, each pair's loss and clip count (V = RK_P3O_*).
template <int V>
RK_LOOP inline void p3o_pass(const float* __restrict l1, const float* __restrict l2, const float* __restrict o1,
                             const float* __restrict o2, const float* __restrict r1, const float* __restrict r2,
                             float* __restrict g1, float* __restrict g2, float* __restrict lv, float* __restrict cv,
                             size_t B, float w, float lo, float hi) {
  for (size_t b = 0; b < B; ++b) {
    const float A = 0.5f * (r1[b] - r2[b]);
    if (V == RK_P3O_JOINT) {
      // V2: ρ = π(y1)π_old(y2) / (π_old(y1)π(y2)), ℓ = max(−Aρ, −A·clip(ρ))
      const float lr = (l1[b] - o1[b]) - (l2[b] - o2[b]);
      LossTerm r = ppo_clip_term(lr, 0.0f, A, lo, hi, false, 0.0f);
      lv[b] = r.loss;
      cv[b] = r.clipped ? 1.0f : 0.0f;
      g1[b] = w * r.grad;
      g2[b] = -(w * r.grad);
    } else {
      // V1: ℓ = max(−Aρ1, −A·clip(ρ1)) + max(Aρ2, A·clip(ρ2))
      LossTerm t1 = ppo_clip_term(l1[b], o1[b], A, lo, hi, false, 0.0f);
      LossTerm t2 = ppo_clip_term(l2[b], o2[b], -A, lo, hi, false, 0.0f);
      lv[b] = t1.loss + t2.loss;
      cv[b] = (t1.clipped ? 0.5f : 0.0f) + (t2.clipped ? 0.5f : 0.0f);
      g1[b] = w * t1.grad;
      g2[b] = w * t2.grad;
    }
  }
}
}  // namespace
}  // namespace rk

// P3O (Pairwise PPO, Wu et al. 2023): one element per prompt. Blocks of 1024 pairs split over
// the pool: one vectorised pass per block writes the gradients and each pair's loss and clip count
// into stack buffers (no B-sized temporaries: on a small VM the page faults of fresh ones cost
// more than the pass), summed in f64 per block; the block sums are added in block order, so the
// result does not depend on the thread count.
extern "C" void rk_cpu_p3o_loss(const rk_p3o_loss_args* a) {
  using namespace rk;
  const size_t B = a->B;
  const double denom = a->has_normalizer ? a->normalizer : (double)B;
  const float w = denom > 0 ? (float)(1.0 / denom) : 0.0f;
  const float lo = 1.0f - a->clip_low, hi = 1.0f + a->clip_high;
  const size_t nb = (B + kBlock - 1) / kBlock;
  std::vector<double> part(2 * nb);
  parallel_for(nb, kElemGrain / kBlock, [&](size_t k0, size_t k1) {
    float lv[kBlock], cv[kBlock];
    for (size_t k = k0; k < k1; ++k) {
      const size_t b0 = k * kBlock, n = B - b0 < kBlock ? B - b0 : kBlock;
      simd_dispatch([&]() RK_LOOP {
        if (a->variant == RK_P3O_JOINT)
          p3o_pass<RK_P3O_JOINT>(a->logp1 + b0, a->logp2 + b0, a->old_logp1 + b0, a->old_logp2 + b0, a->rewards1 + b0,
                                 a->rewards2 + b0, a->grad_logp1 + b0, a->grad_logp2 + b0, lv, cv, n, w, lo, hi);
        else
          p3o_pass<RK_P3O_SEPARATE>(a->logp1 + b0, a->logp2 + b0, a->old_logp1 + b0, a->old_logp2 + b0, a->rewards1 + b0,
                                    a->rewards2 + b0, a->grad_logp1 + b0, a->grad_logp2 + b0, lv, cv, n, w, lo, hi);
      });
      double l = 0, c = 0;
      for (size_t j = 0; j < n; ++j) {
        l += lv[j];
        c += cv[j];
      }
      part[2 * k] = l;
      part[2 * k + 1] = c;
    }
  });
  double loss = 0, clip = 0;
  for (size_t k = 0; k < nb; ++k) {
    loss += part[2 * k];
    clip += part[2 * k + 1];
  }
  a->result[0] = denom > 0 ? loss / denom : 0.0;
  a->result[1] = B ? clip / (double)B : 0.0;
}
