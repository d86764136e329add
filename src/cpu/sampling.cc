// CPU kernels of the sampling family (SPEC §7).
//
// speculativeVerify: rows split over the pool; the accept loop reads K pairs p_i(Y_i), q_i(Y_i);
//   the next token is drawn by inverse CDF from one row of V weights: a vectorised pass sums the
//   weights per 256-token block in double (8 lanes), then the block sums are walked to the block
//   holding u·Z and that block is scanned token by token.
// specDecStop, rejectionSample: one sequential routine per row / group (core/sampling.hpp).
// geometricMixture: per row, pass 1 reads both logits once and writes h = (1−β)z + βz_ref into
//   the output; then a lane-wise max, and pass 2 sums exp(h − max) from the (cache-resident) output
//   row in blocks; pass 3 subtracts lse in place.
#include <immintrin.h>

#include <cmath>
#include <vector>

#include "../core/sampling.hpp"
#include "common.hpp"

// GCC 12 warns about the _mm512_undefined_*() placeholders inside its own AVX-512 intrinsics (a
// known false positive, reported where they are inlined), so the warning is off for this file.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace rk {
namespace {

constexpr size_t kBlk = 256;  // tokens per block of the inverse-CDF sums
constexpr int kL = 8;         // double lanes

// Sum of the weights w_t = max(p_t − q_t, 0) (q != nullptr) or p_t over [0, n), in double, and
// whether any p_t (q_t) is NaN, ±Inf or negative. One version per ISA (GCC will not vectorise
// float→double accumulation), each with 8 double lanes.
double block_sum_scalar(const float* p, const float* q, size_t n, int* bad) {
  double acc[kL] = {0, 0, 0, 0, 0, 0, 0, 0};
  int bd = 0;
  for (size_t i = 0; i < n; ++i) {
    acc[i % kL] += q ? smp::residual_w(p[i], q[i]) : (double)p[i];
    bd |= (int)!smp::prob_ok(p[i]) | (q ? (int)!smp::prob_ok(q[i]) : 0);
  }
  *bad |= bd;
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

RK_TARGET_AVX512 double block_sum_avx512(const float* p, const float* q, size_t n, int* bad) {
  __m512d acc = _mm512_setzero_pd();
  const __m512d zero = _mm512_setzero_pd();
  const __m256 zf = _mm256_setzero_ps(), inf = _mm256_set1_ps(inf_f());
  __mmask8 ok = 0xff;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 pv = _mm256_loadu_ps(p + i);
    ok &= _mm256_cmp_ps_mask(pv, zf, _CMP_GE_OQ) & _mm256_cmp_ps_mask(pv, inf, _CMP_LT_OQ);
    __m512d w = _mm512_maskz_cvtps_pd((__mmask8)0xff, pv);
    if (q) {
      __m256 qv = _mm256_loadu_ps(q + i);
      ok &= _mm256_cmp_ps_mask(qv, zf, _CMP_GE_OQ) & _mm256_cmp_ps_mask(qv, inf, _CMP_LT_OQ);
      w = _mm512_max_pd(_mm512_sub_pd(w, _mm512_maskz_cvtps_pd((__mmask8)0xff, qv)), zero);
    }
    acc = _mm512_add_pd(acc, w);
  }
  alignas(64) double l[8];
  _mm512_store_pd(l, acc);
  int bd = ok != 0xff;
  for (; i < n; ++i) {
    l[i % 8] += q ? smp::residual_w(p[i], q[i]) : (double)p[i];
    bd |= (int)!smp::prob_ok(p[i]) | (q ? (int)!smp::prob_ok(q[i]) : 0);
  }
  *bad |= bd;
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

RK_TARGET_AVX2 double block_sum_avx2(const float* p, const float* q, size_t n, int* bad) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
  const __m256d zero = _mm256_setzero_pd();
  const __m256 zf = _mm256_setzero_ps(), inf = _mm256_set1_ps(inf_f());
  __m256 ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 pv = _mm256_loadu_ps(p + i);
    ok = _mm256_and_ps(ok, _mm256_and_ps(_mm256_cmp_ps(pv, zf, _CMP_GE_OQ), _mm256_cmp_ps(pv, inf, _CMP_LT_OQ)));
    __m256d w0 = _mm256_cvtps_pd(_mm256_castps256_ps128(pv));
    __m256d w1 = _mm256_cvtps_pd(_mm256_extractf128_ps(pv, 1));
    if (q) {
      __m256 qv = _mm256_loadu_ps(q + i);
      ok = _mm256_and_ps(ok, _mm256_and_ps(_mm256_cmp_ps(qv, zf, _CMP_GE_OQ), _mm256_cmp_ps(qv, inf, _CMP_LT_OQ)));
      w0 = _mm256_max_pd(_mm256_sub_pd(w0, _mm256_cvtps_pd(_mm256_castps256_ps128(qv))), zero);
      w1 = _mm256_max_pd(_mm256_sub_pd(w1, _mm256_cvtps_pd(_mm256_extractf128_ps(qv, 1))), zero);
    }
    a0 = _mm256_add_pd(a0, w0);
    a1 = _mm256_add_pd(a1, w1);
  }
  alignas(32) double l[8];
  _mm256_store_pd(l, a0);
  _mm256_store_pd(l + 4, a1);
  int bd = _mm256_movemask_ps(ok) != 0xff;
  for (; i < n; ++i) {
    l[i % 8] += q ? smp::residual_w(p[i], q[i]) : (double)p[i];
    bd |= (int)!smp::prob_ok(p[i]) | (q ? (int)!smp::prob_ok(q[i]) : 0);
  }
  *bad |= bd;
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// Block sums (per kBlk tokens) of one row's weights; returns the total, *bad on an invalid value.
double block_sums(const float* P, const float* Q, size_t V, double* blocks, bool* bad) {
  const Isa lv = isa();
  double total = 0.0;
  int bd = 0;
  for (size_t b0 = 0, bi = 0; b0 < V; b0 += kBlk, ++bi) {
    size_t n = b0 + kBlk < V ? kBlk : V - b0;
    const float* q = Q ? Q + b0 : nullptr;
    double s = lv == Isa::avx512 ? block_sum_avx512(P + b0, q, n, &bd)
               : lv == Isa::avx2 ? block_sum_avx2(P + b0, q, n, &bd)
                                 : block_sum_scalar(P + b0, q, n, &bd);
    blocks[bi] = s;
    total += s;
  }
  *bad = bd != 0;
  return total;
}

inline double weight(const float* P, const float* Q, size_t t) { return Q ? smp::residual_w(P[t], Q[t]) : (double)P[t]; }

// Smallest t with u·Z < C(t) (C the cumulative weight). If rounding leaves u·Z at or above the
// last cumulative sum, the last token of positive weight. Requires Z > 0.
int32_t inverse_cdf(const float* P, const float* Q, size_t V, const double* blocks, double total, float u) {
  const double target = (double)u * total;
  const size_t nb = (V + kBlk - 1) / kBlk;
  double cum = 0.0;
  size_t bi = 0;
  while (bi < nb && !(target < cum + blocks[bi])) cum += blocks[bi++];
  for (size_t t = bi * kBlk; t < V; ++t) {
    cum += weight(P, Q, t);
    if (target < cum) return (int32_t)t;
  }
  for (size_t t = V; t-- > 0;)
    if (weight(P, Q, t) > 0.0) return (int32_t)t;
  return -1;
}

}  // namespace
}  // namespace rk

extern "C" void rk_cpu_speculative_verify(const rk_speculative_verify_args* a) {
  using namespace rk;
  const size_t K = a->K, V = a->V;
  parallel_rows(a->B, 2 * V, [&](size_t b0, size_t b1) {
    std::vector<double> blocks((V + kBlk - 1) / kBlk + 1);
    for (size_t b = b0; b < b1; ++b) {
      int32_t status = RK_SAMPLING_OK;
      const float* q = a->draft_probs + b * K * V;
      const float* p = a->target_probs + b * (K + 1) * V;
      const float* u = a->uniforms + b * (K + 1);
      size_t n = smp::spec_accept_row(a->draft_tokens + b * K, q, p, u, K, V, &status);
      int32_t tok = -1;
      if (status == RK_SAMPLING_OK) {
        const float* P = p + n * V;
        const float* Q = n < K ? q + n * V : nullptr;
        bool bad = false;
        double Z = block_sums(P, Q, V, blocks.data(), &bad);
        if (!bad && Q && !(Z > 0.0)) {  // residual of zero mass (p_n ≤ q_n everywhere): draw from p_n
          Q = nullptr;
          Z = block_sums(P, Q, V, blocks.data(), &bad);
        }
        if (bad) status = RK_SAMPLING_BAD_PROB;
        else if (!(Z > 0.0)) status = RK_SAMPLING_ZERO_MASS;
        else tok = inverse_cdf(P, Q, V, blocks.data(), Z, u[K]);
      }
      a->accepted[b] = (int32_t)n;
      a->next_token[b] = tok;
      a->status[b] = status;
    }
  });
}

extern "C" void rk_cpu_spec_dec_stop(const rk_spec_dec_stop_args* a) {
  using namespace rk;
  parallel_for(a->B, a->K ? kElemGrain / a->K + 1 : a->B + 1, [&](size_t b0, size_t b1) {
    for (size_t b = b0; b < b1; ++b)
      a->length[b] = smp::spec_dec_stop_row(a->accept_probs + b * a->K, a->K, a->threshold, a->min_length, a->max_length);
  });
}

extern "C" void rk_cpu_rejection_sample(const rk_rejection_sample_args* a) {
  using namespace rk;
  const size_t K = a->K, m = a->num_samples;
  // ~K·m work per group (a few rounds of K candidates).
  size_t per = K * (m ? m : 1) + 1;
  parallel_for(a->G, kElemGrain / 8 / per + 1, [&](size_t g0, size_t g1) {
    std::vector<uint8_t> taken(K + 1);
    for (size_t g = g0; g < g1; ++g)
      a->status[g] = smp::rso_group(a->rewards + g * K, a->uniforms + g * K * K, K, m, a->beta, a->selected + g * m, taken.data());
  });
}

namespace rk {
namespace {

constexpr int kML = 16;      // float lanes of the mixture passes
constexpr size_t kSBlk = 512;  // elements per f32 partial sum (then accumulated in double)

// Row maxima: GCC does not vectorise a float max reduction without -ffinite-math-only.
float row_max_scalar(const float* o, size_t V) {
  float m = -inf_f();
  for (size_t i = 0; i < V; ++i) m = o[i] > m ? o[i] : m;
  return m;
}
RK_TARGET_AVX512 float row_max_avx512(const float* o, size_t V) {
  __m512 m0 = _mm512_set1_ps(-inf_f()), m1 = m0;
  size_t i = 0;
  for (; i + 32 <= V; i += 32) {
    m0 = _mm512_max_ps(m0, _mm512_loadu_ps(o + i));
    m1 = _mm512_max_ps(m1, _mm512_loadu_ps(o + i + 16));
  }
  float m = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
  for (; i < V; ++i) m = o[i] > m ? o[i] : m;
  return m;
}
RK_TARGET_AVX2 float row_max_avx2(const float* o, size_t V) {
  __m256 m0 = _mm256_set1_ps(-inf_f()), m1 = m0;
  size_t i = 0;
  for (; i + 16 <= V; i += 16) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(o + i));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(o + i + 8));
  }
  alignas(32) float l[8];
  _mm256_store_ps(l, _mm256_max_ps(m0, m1));
  float m = l[0];
  for (int j = 1; j < 8; ++j) m = l[j] > m ? l[j] : m;
  for (; i < V; ++i) m = o[i] > m ? o[i] : m;
  return m;
}

template <int DZ, int DR>
void mixture_rows(const rk_geometric_mixture_args* a, size_t r0, size_t r1) {
  using TZ = typename smp::Ld<DZ>::T;
  using TR = typename smp::Ld<DR>::T;
  const size_t V = a->V;
  const Isa lv = isa();
  simd_dispatch([&]() RK_LOOP {
    const float beta = a->beta;
    for (size_t row = r0; row < r1; ++row) {
      const TZ* __restrict z = static_cast<const TZ*>(a->logits) + row * V;
      const TR* __restrict zr = static_cast<const TR*>(a->ref_logits) + row * V;
      float* __restrict o = a->logp + row * V;
      // pass 1: h → out (one plain loop, so that it vectorises for every dtype pair)
      for (size_t i = 0; i < V; ++i) o[i] = smp::mixture_logit(smp::Ld<DZ>::get(z[i]), smp::Ld<DR>::get(zr[i]), beta);
      // max over the cache-resident row (NaN may be skipped here; it reaches lse through the sum)
      const float m = lv == Isa::avx512 ? row_max_avx512(o, V) : lv == Isa::avx2 ? row_max_avx2(o, V) : row_max_scalar(o, V);
      // pass 2: Σ exp(h − m), f32 lanes per block of kSBlk, blocks in double
      double total = 0.0;
      for (size_t b0 = 0; b0 < V; b0 += kSBlk) {
        size_t e = b0 + kSBlk < V ? b0 + kSBlk : V;
        float s[kML];
        for (int j = 0; j < kML; ++j) s[j] = 0.0f;
        size_t k = b0;
        for (; k + kML <= e; k += kML)
          for (int j = 0; j < kML; ++j) s[j] += expf_(o[k + j] - m);
        for (; k < e; ++k) s[0] += expf_(o[k] - m);
        float bsum = 0.0f;
        for (int j = 0; j < kML; ++j) bsum += s[j];
        total += (double)bsum;
      }
      // pass 3: logp = h − lse
      const float lse = (float)((double)m + std::log(total));
      for (size_t k = 0; k < V; ++k) o[k] = o[k] - lse;
    }
  });
}

template <int DZ>
void mixture_dispatch_ref(const rk_geometric_mixture_args* a, size_t r0, size_t r1) {
  switch (a->ref_dtype) {
    case RK_DT_BF16: mixture_rows<DZ, RK_DT_BF16>(a, r0, r1); break;
    case RK_DT_F16: mixture_rows<DZ, RK_DT_F16>(a, r0, r1); break;
    default: mixture_rows<DZ, RK_DT_F32>(a, r0, r1); break;
  }
}

}  // namespace
}  // namespace rk

extern "C" void rk_cpu_geometric_mixture(const rk_geometric_mixture_args* a) {
  using namespace rk;
  if (!a->V) return;
  parallel_rows(a->N, a->V, [&](size_t r0, size_t r1) {
    switch (a->logits_dtype) {
      case RK_DT_BF16: mixture_dispatch_ref<RK_DT_BF16>(a, r0, r1); break;
      case RK_DT_F16: mixture_dispatch_ref<RK_DT_F16>(a, r0, r1); break;
      default: mixture_dispatch_ref<RK_DT_F32>(a, r0, r1); break;
    }
  });
}
