// CPU kernels of the token log-prob family (SPEC §1): logprobs, logprobsBackward, vocabKl,
// vocabKlBackward, sequenceLogprobs.
//
// The row kernels (logprobs_kernels.inc) are written once against a small vector interface and
// compiled three times: AVX-512 (16 lanes: vscalefps exp, vcvtph2ps for f16, a 16-bit shift for
// bf16), AVX2+FMA+F16C (8 lanes) and a portable 8-lane baseline; rk::isa() picks one per call.
// Each lane keeps its own online-softmax state (max, Σe^{z−m}, Σe^{z−m}(z−m)); the lanes are
// merged at the end of the row with the shared row math of core/logprobs.hpp. A row is read from
// memory once per pass: the forward is one pass, the backward one pass when lse is given.
// Rows are split over the pool; with fewer rows than threads, each row is cut into pieces whose
// statistics are merged afterwards (the same merge as the lanes').
#include "../core/logprobs.hpp"

#include <immintrin.h>

// GCC 12 warns about _mm512_undefined_ps() inside its own AVX-512 intrinsics (a known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cmath>
#include <cstring>
#include <vector>

#include "common.hpp"
#include "logprobs_cpu.hpp"
#include "masked_simd.hpp"

namespace rk {
namespace {

struct KernelTable {
  LseStats (*lse)(const void* base, int dt, size_t off, size_t n, float inv_t, bool want_w);
  void (*grad)(const void* base, int dt, size_t off, size_t n, float* g, float inv_t, float lse, float gl, const float* ge,
               float H);
  KlStats (*kl)(const void* a, const void* b, int dt, size_t off, size_t n, float inv_t);
  // lse4 = {m_p, log s_p, m_q, log s_q}
  void (*kl_grad)(const void* x, const void* r, int dt, bool rev, size_t off, size_t n, float* g, float inv_t, const float* lse4,
                  float kl, float g_inv_t);
};

}  // namespace
}  // namespace rk

// ---------------------------------------------------------------------------------------------
// AVX-512
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi2")
namespace rk {
namespace lp_avx512 {
using V = __m512;
constexpr int W = 16;
static inline V set1(float x) { return _mm512_set1_ps(x); }
static inline V zero() { return _mm512_setzero_ps(); }
static inline V add(V a, V b) { return _mm512_add_ps(a, b); }
static inline V sub(V a, V b) { return _mm512_sub_ps(a, b); }
static inline V mul(V a, V b) { return _mm512_mul_ps(a, b); }
static inline V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
static inline V fmsub(V a, V b, V c) { return _mm512_fmsub_ps(a, b, c); }
static inline V max(V a, V b) { return _mm512_max_ps(a, b); }
static inline V min(V a, V b) { return _mm512_min_ps(a, b); }
static inline bool any_gt(V a, V b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ) != 0; }
static inline V inf_if_inf(V v, V t) { return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(t, set1(inf_f()), _CMP_EQ_OQ), set1(inf_f())); }
static inline V blend_gt(V a, V b, V x, V y) { return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ), x); }
static inline V zero_lt(V v, V d, float lo) { return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(d, set1(lo), _CMP_LT_OQ), zero()); }
static inline void store(float* p, V v) { _mm512_storeu_ps(p, v); }
static inline float hmax(V v) { return _mm512_reduce_max_ps(v); }
static inline float hsum(V v) { return _mm512_reduce_add_ps(v); }
// Lower clamp of every exp argument: vscalefps underflows to 0 by itself.
constexpr float kExpLo = kLpLo;
// e^d for d in [kLpLo, 88] (or NaN; callers clamp below): d = n·ln2 + r, the degree-6
// polynomial of rk::expf_, 2^n by vscalefps (which underflows to 0 and overflows to +inf).
static inline V exp(V d) {
  V n = _mm512_roundscale_ps(_mm512_mul_ps(d, set1(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  V r = _mm512_fnmadd_ps(n, set1(0.693359375f), d);
  r = _mm512_fnmadd_ps(n, set1(-2.12194440e-4f), r);
  V p = set1(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, set1(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, set1(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, set1(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, set1(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, set1(5.0000001201e-1f));
  p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), set1(1.0f));
  return _mm512_scalef_ps(p, n);
}
template <int DT>
static inline V load(const void* p) {
  if (DT == RK_DT_F32) return _mm512_loadu_ps((const float*)p);
  __m256i h = _mm256_loadu_si256((const __m256i*)p);
  if (DT == RK_DT_F16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
#include "logprobs_kernels.inc"
}  // namespace lp_avx512
}  // namespace rk
#pragma GCC pop_options

// ---------------------------------------------------------------------------------------------
// AVX2 + FMA + F16C
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,bmi2")
namespace rk {
namespace lp_avx2 {
using V = __m256;
constexpr int W = 8;
static inline V set1(float x) { return _mm256_set1_ps(x); }
static inline V zero() { return _mm256_setzero_ps(); }
static inline V add(V a, V b) { return _mm256_add_ps(a, b); }
static inline V sub(V a, V b) { return _mm256_sub_ps(a, b); }
static inline V mul(V a, V b) { return _mm256_mul_ps(a, b); }
static inline V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
static inline V fmsub(V a, V b, V c) { return _mm256_fmsub_ps(a, b, c); }
static inline V max(V a, V b) { return _mm256_max_ps(a, b); }
static inline V min(V a, V b) { return _mm256_min_ps(a, b); }
static inline bool any_gt(V a, V b) { return _mm256_movemask_ps(_mm256_cmp_ps(a, b, _CMP_GT_OQ)) != 0; }
static inline V inf_if_inf(V v, V t) { return _mm256_blendv_ps(v, set1(inf_f()), _mm256_cmp_ps(t, set1(inf_f()), _CMP_EQ_OQ)); }
static inline V blend_gt(V a, V b, V x, V y) { return _mm256_blendv_ps(y, x, _mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
static inline V zero_lt(V v, V d, float lo) { return _mm256_andnot_ps(_mm256_cmp_ps(d, set1(lo), _CMP_LT_OQ), v); }
static inline void store(float* p, V v) { _mm256_storeu_ps(p, v); }
static inline float hmax(V v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
static inline float hsum(V v) {
  __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_add_ps(m, _mm_movehl_ps(m, m));
  m = _mm_add_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}
// Lower clamp of every exp argument (see exp): e^{−88} rounds n to −127, whose scale 2^n is the
// bit pattern 0, so clamped arguments give exactly 0, as e^d < 2^−126 should (flushed).
constexpr float kExpLo = -88.0f;
// e^d for d in [kExpLo, 88.7] or NaN (every caller clamps below with max(set1(kExpLo), d), which
// keeps NaN). 12 operations, 9 of them on the FMA pipes: n = round(d·log2 e) by the 1.5·2^23
// magic number, whose low mantissa bits are then n + 127, shifted into the exponent field of 2^n;
// r = d − n·ln 2 in two parts (Cody–Waite); e^r by a degree-6 minimax polynomial in Horner form
// (≤ 0.75 ulp on |r| ≤ ln2/2 in f32; the degree-7 Cephes form of rk::expf_ costs two more).
static inline V exp(V d) {
  const V magic = set1(12582912.0f + 127.0f);
  V t = _mm256_fmadd_ps(d, set1(1.44269504088896341f), magic);
  V n = _mm256_sub_ps(t, magic);
  V r = _mm256_fnmadd_ps(n, set1(0.693359375f), d);
  r = _mm256_fnmadd_ps(n, set1(-2.12194440e-4f), r);
  V p = set1(1.3893421274e-3f);
  p = _mm256_fmadd_ps(p, r, set1(8.3704162389e-3f));
  p = _mm256_fmadd_ps(p, r, set1(4.1667092592e-2f));
  p = _mm256_fmadd_ps(p, r, set1(1.6666504741e-1f));
  p = _mm256_fmadd_ps(p, r, set1(4.9999997020e-1f));
  p = _mm256_fmadd_ps(p, r, set1(1.0f));
  p = _mm256_fmadd_ps(p, r, set1(1.0f));
  return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23)));
}
template <int DT>
static inline V load(const void* p) {
  if (DT == RK_DT_F32) return _mm256_loadu_ps((const float*)p);
  __m128i h = _mm_loadu_si128((const __m128i*)p);
  if (DT == RK_DT_F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
#include "logprobs_kernels.inc"
}  // namespace lp_avx2
}  // namespace rk
#pragma GCC pop_options

// ---------------------------------------------------------------------------------------------
// Portable baseline: 8 lanes as plain arrays (GCC turns the lane loops into SSE2).
namespace rk {
namespace lp_base {
struct V {
  float l[8];
};
constexpr int W = 8;
#define RK_LANES(expr) \
  V r;                 \
  for (int i = 0; i < 8; ++i) r.l[i] = (expr); \
  return r
static inline V set1(float x) { RK_LANES(x); }
static inline V zero() { RK_LANES(0.0f); }
static inline V add(V a, V b) { RK_LANES(a.l[i] + b.l[i]); }
static inline V sub(V a, V b) { RK_LANES(a.l[i] - b.l[i]); }
static inline V mul(V a, V b) { RK_LANES(a.l[i] * b.l[i]); }
static inline V fmadd(V a, V b, V c) { RK_LANES(a.l[i] * b.l[i] + c.l[i]); }
static inline V fmsub(V a, V b, V c) { RK_LANES(a.l[i] * b.l[i] - c.l[i]); }
static inline V max(V a, V b) { RK_LANES(a.l[i] > b.l[i] ? a.l[i] : b.l[i]); }
static inline V min(V a, V b) { RK_LANES(a.l[i] < b.l[i] ? a.l[i] : b.l[i]); }
static inline V inf_if_inf(V v, V t) { RK_LANES(t.l[i] == inf_f() ? inf_f() : v.l[i]); }
static inline V blend_gt(V a, V b, V x, V y) { RK_LANES(a.l[i] > b.l[i] ? x.l[i] : y.l[i]); }
static inline V zero_lt(V v, V d, float lo) { RK_LANES(d.l[i] < lo ? 0.0f : v.l[i]); }
constexpr float kExpLo = kLpLo;
static inline V exp(V d) { RK_LANES(expf_(d.l[i])); }
#undef RK_LANES
static inline bool any_gt(V a, V b) {
  bool r = false;
  for (int i = 0; i < 8; ++i) r |= a.l[i] > b.l[i];
  return r;
}
static inline void store(float* p, V v) { memcpy(p, v.l, sizeof v.l); }
static inline float hmax(V v) {
  float m = v.l[0];
  for (int i = 1; i < 8; ++i) m = v.l[i] > m ? v.l[i] : m;
  return m;
}
static inline float hsum(V v) { return ((v.l[0] + v.l[1]) + (v.l[2] + v.l[3])) + ((v.l[4] + v.l[5]) + (v.l[6] + v.l[7])); }
template <int DT>
static inline V load(const void* p) {
  V r;
  if (DT == RK_DT_F32) memcpy(r.l, p, sizeof r.l);
  else if (DT == RK_DT_F16) for (int i = 0; i < 8; ++i) r.l[i] = f16_to_float(((const uint16_t*)p)[i]);
  else for (int i = 0; i < 8; ++i) r.l[i] = bf16_to_float(((const uint16_t*)p)[i]);
  return r;
}
#include "logprobs_kernels.inc"
}  // namespace lp_base

namespace {

const KernelTable& table() {
  switch (isa()) {
    case Isa::avx512: return lp_avx512::kTable;
    case Isa::avx2: return lp_avx2::kTable;
    default: return lp_base::kTable;
  }
}

// z = logits[i] / τ for one element (the label's logit).
inline float logit_at(const void* base, int dt, size_t i) {
  if (dt == RK_DT_F16) return f16_to_float(static_cast<const uint16_t*>(base)[i]);
  if (dt == RK_DT_BF16) return bf16_to_float(static_cast<const uint16_t*>(base)[i]);
  return static_cast<const float*>(base)[i];
}

// Row-piece plan: P pieces per row of `chunk` elements (P = 1: whole rows, `grain` rows per task).
struct Plan {
  size_t P, chunk, grain;
};
constexpr size_t kPiece = 16384;   // smallest piece of a split row
constexpr size_t kGrainElems = 32768;
Plan plan(size_t N, size_t V) {
  size_t th = (size_t)num_threads();
  Plan p{1, V, V ? (kGrainElems + V - 1) / V : kGrainElems};
  if (th > 1 && N > 0 && N < 2 * th && V >= 2 * kPiece) {  // (N = 0 with a wide V: no rows, no split)
    size_t want = (4 * th + N - 1) / N;
    size_t most = V / kPiece;
    p.P = want < most ? want : most;
    if (p.P < 1) p.P = 1;
    p.chunk = ((V + p.P - 1) / p.P + 63) / 64 * 64;
    p.P = (V + p.chunk - 1) / p.chunk;
    p.grain = 1;
  }
  return p;
}

inline bool label_ok(int32_t y, size_t V) { return y >= 0 && (size_t)y < V; }

// Forward statistics of every counted row, split as planned; calls fin(row, stats).
template <class Fin>
void lse_rows(const KernelTable& K, const void* logits, int dt, const int32_t* labels, int32_t ignore, size_t N, size_t V,
              float inv_t, bool want_w, Fin&& fin) {
  Plan pl = plan(N, V);
  if (pl.P == 1) {
    parallel_for(N, pl.grain, [&](size_t b, size_t e) {
      for (size_t r = b; r < e; ++r) {
        int32_t y = labels[r];
        if (y == ignore || !label_ok(y, V)) { fin(r, nullptr); continue; }
        LseStats st = K.lse(logits, dt, r * V, V, inv_t, want_w);
        fin(r, &st);
      }
    });
    return;
  }
  std::vector<LseStats> part(N * pl.P, lse_empty());
  parallel_for(N * pl.P, 1, [&](size_t b, size_t e) {
    for (size_t k = b; k < e; ++k) {
      size_t r = k / pl.P, v0 = (k % pl.P) * pl.chunk, v1 = v0 + pl.chunk < V ? v0 + pl.chunk : V;
      int32_t y = labels[r];
      if (y == ignore || !label_ok(y, V) || v0 >= v1) continue;
      part[k] = K.lse(logits, dt, r * V + v0, v1 - v0, inv_t, want_w);
    }
  });
  for (size_t r = 0; r < N; ++r) {
    int32_t y = labels[r];
    if (y == ignore || !label_ok(y, V)) { fin(r, nullptr); continue; }
    LseStats st = part[r * pl.P];
    for (size_t k = 1; k < pl.P; ++k) st = want_w ? lse_merge<true>(st, part[r * pl.P + k]) : lse_merge<false>(st, part[r * pl.P + k]);
    fin(r, &st);
  }
}

// Elementwise pass over row pieces: fn(row, v0, v1).
template <class Fn>
void row_pieces(size_t N, size_t V, Fn&& fn) {
  Plan pl = plan(N, V);
  if (pl.P == 1) {
    parallel_for(N, pl.grain, [&](size_t b, size_t e) {
      for (size_t r = b; r < e; ++r) fn(r, (size_t)0, V);
    });
    return;
  }
  parallel_for(N * pl.P, 1, [&](size_t b, size_t e) {
    for (size_t k = b; k < e; ++k) {
      size_t r = k / pl.P, v0 = (k % pl.P) * pl.chunk, v1 = v0 + pl.chunk < V ? v0 + pl.chunk : V;
      if (v0 < v1) fn(r, v0, v1);
    }
  });
}

// vocabKl statistics of every counted row (a = the distribution the expectation is under).
template <class Fin>
void kl_rows(const KernelTable& K, const void* a, const void* b, int dt, const int32_t* labels, int32_t ignore, size_t N,
             size_t V, float inv_t, Fin&& fin) {
  auto skip = [&](size_t r) { return labels && labels[r] == ignore; };
  Plan pl = plan(N, V);
  if (pl.P == 1) {
    parallel_for(N, pl.grain, [&](size_t s, size_t e) {
      for (size_t r = s; r < e; ++r) {
        if (skip(r)) { fin(r, nullptr); continue; }
        KlStats st = K.kl(a, b, dt, r * V, V, inv_t);
        fin(r, &st);
      }
    });
    return;
  }
  std::vector<KlStats> part(N * pl.P, kl_empty());
  parallel_for(N * pl.P, 1, [&](size_t s, size_t e) {
    for (size_t k = s; k < e; ++k) {
      size_t r = k / pl.P, v0 = (k % pl.P) * pl.chunk, v1 = v0 + pl.chunk < V ? v0 + pl.chunk : V;
      if (skip(r) || v0 >= v1) continue;
      part[k] = K.kl(a, b, dt, r * V + v0, v1 - v0, inv_t);
    }
  });
  for (size_t r = 0; r < N; ++r) {
    if (skip(r)) { fin(r, nullptr); continue; }
    KlStats st = part[r * pl.P];
    for (size_t k = 1; k < pl.P; ++k) st = kl_merge(st, part[r * pl.P + k]);
    fin(r, &st);
  }
}

}  // namespace

LseStats lp_row_stats(const float* z, size_t n, float inv_t, bool want_w) { return table().lse(z, RK_DT_F32, 0, n, inv_t, want_w); }
void lp_row_grad(const float* z, size_t n, float* g, float inv_t, float lse, float gl, const float* ge, float H) {
  table().grad(z, RK_DT_F32, 0, n, g, inv_t, lse, gl, ge, H);
}

}  // namespace rk

extern "C" void rk_cpu_logprobs(const rk_logprobs_args* a) {
  using namespace rk;
  const KernelTable& K = table();
  const size_t V = a->V;
  const float inv_t = 1.0f / a->temperature;
  const bool want_w = a->entropy != nullptr;
  lse_rows(K, a->logits, a->dtype, a->labels, a->ignore_index, a->N, V, inv_t, want_w, [&](size_t r, const LseStats* st) {
    int32_t y = a->labels[r];
    if (!st) {
      // ignored row (never read): 0; a label out of range (callers validate): NaN, no read
      float v = y == a->ignore_index ? 0.0f : nan_f();
      a->logp[r] = v;
      if (a->lse) a->lse[r] = v;
      if (a->entropy) a->entropy[r] = v;
      return;
    }
    LpOut o = lse_finish(*st, logit_at(a->logits, a->dtype, r * V + (size_t)y) * inv_t);
    a->logp[r] = o.logp;
    if (a->lse) a->lse[r] = o.lse;
    if (a->entropy) a->entropy[r] = o.entropy;
  });
}

extern "C" void rk_cpu_logprobs_backward(const rk_logprobs_backward_args* a) {
  using namespace rk;
  const KernelTable& K = table();
  const size_t N = a->N, V = a->V;
  const float inv_t = 1.0f / a->temperature;
  // The gradient of row r over [v0, v1) given its lse (and entropy H).
  auto grad = [&](size_t r, size_t v0, size_t v1, float lse_r, float h_r) {
    float* g = a->grad_logits + r * V;
    int32_t y = a->labels[r];
    if (y == a->ignore_index || !label_ok(y, V)) {
      float v = y == a->ignore_index ? 0.0f : nan_f();
      for (size_t j = v0; j < v1; ++j) g[j] = v;
      return;
    }
    const float gl = a->grad_logp[r];
    K.grad(a->logits, a->dtype, r * V + v0, v1 - v0, g + v0, inv_t, lse_r, gl, a->grad_entropy ? a->grad_entropy + r : nullptr, h_r);
    if ((size_t)y >= v0 && (size_t)y < v1) g[y] += gl * inv_t;
  };
  const bool forward = !a->lse || a->grad_entropy;  // lse (and H) recomputed here
  const Plan pl = plan(N, V);
  if (forward && pl.P == 1) {
    // Whole rows: each row's statistics, then its gradient while the row is still in L2, so the
    // logits are read from memory once (the same values as the two passes below).
    parallel_for(N, pl.grain, [&](size_t b, size_t e) {
      for (size_t r = b; r < e; ++r) {
        const int32_t y = a->labels[r];
        if (y == a->ignore_index || !label_ok(y, V)) { grad(r, 0, V, 0.0f, 0.0f); continue; }
        LseStats st = K.lse(a->logits, a->dtype, r * V, V, inv_t, a->grad_entropy != nullptr);
        LpOut o = lse_finish(st, logit_at(a->logits, a->dtype, r * V + (size_t)y) * inv_t);
        grad(r, 0, V, o.lse, a->grad_entropy ? o.entropy : 0.0f);
      }
    });
    return;
  }
  // Rows split within (few long rows), or lse given: the statistics of every row first.
  std::vector<float> lse_v, h_v;
  const float* lse = a->lse;
  if (forward) {
    std::vector<float> lp(N);
    lse_v.resize(N);
    if (a->grad_entropy) h_v.resize(N);
    rk_logprobs_args f{};
    f.logits = a->logits;
    f.dtype = a->dtype;
    f.labels = a->labels;
    f.N = N;
    f.V = V;
    f.temperature = a->temperature;
    f.ignore_index = a->ignore_index;
    f.logp = lp.data();
    f.lse = lse_v.data();
    f.entropy = a->grad_entropy ? h_v.data() : nullptr;
    rk_cpu_logprobs(&f);
    lse = lse_v.data();
  }
  row_pieces(N, V, [&](size_t r, size_t v0, size_t v1) { grad(r, v0, v1, lse[r], a->grad_entropy ? h_v[r] : 0.0f); });
}

extern "C" void rk_cpu_vocab_kl(const rk_vocab_kl_args* a) {
  using namespace rk;
  const KernelTable& K = table();
  const float inv_t = 1.0f / a->temperature;
  // reverse KL(p‖q): expectation under p (logits); forward KL(q‖p): under q (refLogits)
  const bool rev = a->direction != RK_KL_FORWARD;
  const void* x = rev ? a->logits : a->ref_logits;
  const void* y = rev ? a->ref_logits : a->logits;
  kl_rows(K, x, y, a->dtype, a->labels, a->ignore_index, a->N, a->V, inv_t, [&](size_t r, const KlStats* st) {
    a->kl[r] = st ? kl_finish(*st).kl : 0.0f;
  });
}

extern "C" void rk_cpu_vocab_kl_backward(const rk_vocab_kl_backward_args* a) {
  using namespace rk;
  const KernelTable& K = table();
  const size_t N = a->N, V = a->V;
  const float inv_t = 1.0f / a->temperature;
  const bool rev = a->direction != RK_KL_FORWARD;
  // lse4 = {m_p, log s_p, m_q, log s_q} and the KL of one row's statistics
  auto finish = [](const KlStats& st, float* lse4, float* kl) {
    *kl = kl_finish(st).kl;
    lse4[0] = st.ma;
    lse4[1] = logf_(st.sa);
    lse4[2] = st.mb;
    lse4[3] = logf_(st.sb);
  };
  auto skip = [&](size_t r) { return a->labels && a->labels[r] == a->ignore_index; };
  const Plan pl = plan(N, V);
  if (pl.P == 1) {
    // Whole rows: each row's statistics, then its gradient while both rows are still in L2, so
    // the logits are read from memory once (the same values as the two passes below).
    parallel_for(N, pl.grain, [&](size_t b, size_t e) {
      for (size_t r = b; r < e; ++r) {
        float* g = a->grad_logits + r * V;
        if (skip(r)) {
          memset(g, 0, V * sizeof(float));
          continue;
        }
        float lse4[4], kl;
        finish(K.kl(a->logits, a->ref_logits, a->dtype, r * V, V, inv_t), lse4, &kl);
        K.kl_grad(a->logits, a->ref_logits, a->dtype, rev, r * V, V, g, inv_t, lse4, kl, a->grad_kl[r] * inv_t);
      }
    });
    return;
  }
  // Rows split within (few long rows): the statistics of every row first, then the gradient.
  std::vector<float> lse4(4 * N), kl(N);
  std::vector<unsigned char> on(N);
  kl_rows(K, a->logits, a->ref_logits, a->dtype, a->labels, a->ignore_index, N, V, inv_t, [&](size_t r, const KlStats* st) {
    on[r] = st != nullptr;
    if (st) finish(*st, &lse4[4 * r], &kl[r]);
  });
  row_pieces(N, V, [&](size_t r, size_t v0, size_t v1) {
    float* g = a->grad_logits + r * V;
    if (!on[r]) {
      memset(g + v0, 0, (v1 - v0) * sizeof(float));
      return;
    }
    K.kl_grad(a->logits, a->ref_logits, a->dtype, rev, r * V + v0, v1 - v0, g + v0, inv_t, &lse4[4 * r], kl[r],
              a->grad_kl[r] * inv_t);
  });
}

extern "C" void rk_cpu_sequence_logprobs(const rk_sequence_logprobs_args* a) {
  using namespace rk;
  const size_t T = a->T;
  with_mask(a->mask_kind, a->mask, [&](auto mask) {
    parallel_rows(a->B, T, [&](size_t b0, size_t b1) {
      for (size_t b = b0; b < b1; ++b) {
        // float64 sum and count of the counted tokens (vectorised: masked_simd.hpp)
        const MaskedSum ms = masked_sum(a->logp, mask, b * T, (b + 1) * T);
        double s = ms.sum;
        const int32_t c = (int32_t)ms.count;
        if (a->average) s = c ? s / c : 0.0;
        a->sum[b] = (float)s;
        a->count[b] = c;
      }
    });
  });
}
