// Masks as SIMD lane masks, and the masked float64 sum + count shared by whiten's block
// statistics (advantages.cc) and sequenceLogprobs (logprobs.cc). The mask types are those of
// core/common.hpp (MaskNone, MaskU8: nonzero byte counts, MaskF32: nonzero float counts).
#pragma once
#include <immintrin.h>
#include <string.h>

#include "common.hpp"

// GCC 12 warns about the _mm512_undefined_* placeholders inside its own intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace rk {

// ---- AVX-512: 16 lanes ----
RK_TARGET_AVX512 inline __mmask16 mask16(const MaskNone&, size_t) { return 0xFFFF; }
RK_TARGET_AVX512 inline __mmask16 mask16(const MaskU8& m, size_t i) {
  __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(m.p + i));
  return _mm_test_epi8_mask(b, b);
}
RK_TARGET_AVX512 inline __mmask16 mask16(const MaskF32& m, size_t i) {
  return _mm512_cmp_ps_mask(_mm512_loadu_ps(m.p + i), _mm512_setzero_ps(), _CMP_NEQ_UQ);
}
RK_TARGET_AVX512 inline __m512d lo_pd(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
RK_TARGET_AVX512 inline __m512d hi_pd(__m512 v) {
  return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

// ---- AVX2: 8 lanes, a mask is all-ones lanes ----
RK_TARGET_AVX2 inline __m256 mask8(const MaskNone&, size_t) { return _mm256_castsi256_ps(_mm256_set1_epi32(-1)); }
RK_TARGET_AVX2 inline __m256 mask8(const MaskU8& m, size_t i) {
  long long bits;
  memcpy(&bits, m.p + i, 8);
  __m256i w = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bits));
  return _mm256_castsi256_ps(_mm256_xor_si256(_mm256_cmpeq_epi32(w, _mm256_setzero_si256()), _mm256_set1_epi32(-1)));
}
RK_TARGET_AVX2 inline __m256 mask8(const MaskF32& m, size_t i) {
  return _mm256_cmp_ps(_mm256_loadu_ps(m.p + i), _mm256_setzero_ps(), _CMP_NEQ_UQ);
}
RK_TARGET_AVX2 inline __m256d lo_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_castps256_ps128(v)); }
RK_TARGET_AVX2 inline __m256d hi_pd(__m256 v) { return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)); }
RK_TARGET_AVX2 inline double hsum_pd(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// Σ x[i] (float64) and the count over counted i in [b, e). Masked-out elements are never added
// (a NaN there does not reach the sum). `vend` receives the end of the vectorised part.
struct MaskedSum {
  double sum;
  size_t count, vend;
};

template <class M>
RK_TARGET_AVX512 __attribute__((noinline)) MaskedSum masked_sum_avx512(const float* __restrict x, const M& mask, size_t b, size_t e) {
  // 4 float64 accumulators (two registers of 16 floats per step) to cover the add latency
  __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
  size_t cnt = 0, i = b;
  for (; i + 32 <= e; i += 32) {
    __mmask16 k0 = mask16(mask, i), k1 = mask16(mask, i + 16);
    __m512 v0 = _mm512_maskz_loadu_ps(k0, x + i), v1 = _mm512_maskz_loadu_ps(k1, x + i + 16);
    s0 = _mm512_add_pd(s0, lo_pd(v0));
    s1 = _mm512_add_pd(s1, hi_pd(v0));
    s2 = _mm512_add_pd(s2, lo_pd(v1));
    s3 = _mm512_add_pd(s3, hi_pd(v1));
    cnt += (size_t)__builtin_popcount((unsigned)k0 | ((unsigned)k1 << 16));
  }
  double S = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
  const size_t vend = i;
  for (; i < e; ++i)
    if (mask[i]) { S += (double)x[i]; ++cnt; }
  return MaskedSum{S, cnt, vend};
}

template <class M>
RK_TARGET_AVX2 __attribute__((noinline)) MaskedSum masked_sum_avx2(const float* __restrict x, const M& mask, size_t b, size_t e) {
  __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
  size_t cnt = 0, i = b;
  for (; i + 16 <= e; i += 16) {
    __m256 k0 = mask8(mask, i), k1 = mask8(mask, i + 8);
    __m256 v0 = _mm256_and_ps(k0, _mm256_loadu_ps(x + i)), v1 = _mm256_and_ps(k1, _mm256_loadu_ps(x + i + 8));
    s0 = _mm256_add_pd(s0, lo_pd(v0));
    s1 = _mm256_add_pd(s1, hi_pd(v0));
    s2 = _mm256_add_pd(s2, lo_pd(v1));
    s3 = _mm256_add_pd(s3, hi_pd(v1));
    cnt += (size_t)__builtin_popcount((unsigned)_mm256_movemask_ps(k0) | ((unsigned)_mm256_movemask_ps(k1) << 8));
  }
  double S = hsum_pd(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
  const size_t vend = i;
  for (; i < e; ++i)
    if (mask[i]) { S += (double)x[i]; ++cnt; }
  return MaskedSum{S, cnt, vend};
}

// Portable form: 4 accumulators.
template <class M>
inline MaskedSum masked_sum_scalar(const float* __restrict x, const M& mask, size_t b, size_t e) {
  double s[4] = {0, 0, 0, 0};
  size_t cnt = 0;
  for (size_t i = b; i < e; ++i) {
    bool m = mask[i];
    s[i & 3] += m ? (double)x[i] : 0.0;
    cnt += m ? 1 : 0;
  }
  return MaskedSum{(s[0] + s[1]) + (s[2] + s[3]), cnt, b};
}

template <class M>
inline MaskedSum masked_sum(const float* x, const M& mask, size_t b, size_t e) {
  switch (isa()) {
    case Isa::avx512: return masked_sum_avx512(x, mask, b, e);
    case Isa::avx2: return masked_sum_avx2(x, mask, b, e);
    default: return masked_sum_scalar(x, mask, b, e);
  }
}

}  // namespace rk
