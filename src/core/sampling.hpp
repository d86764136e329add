// Per-row math of the sampling family (SPEC §7), shared by the CPU and CUDA kernels.
//
// Decisions that compare a uniform with a threshold (accept / reject, inverse CDF, specDecStop's
// stopping rule, RSO's acceptance) are evaluated in double from the f32 inputs, exactly as the
// float64 `js` reference does, so the integer outputs of every backend agree (not merely within a
// tolerance) on the same inputs. geometricMixture is float math like a log-softmax.
#pragma once
#include <math.h>

#include "../include/rk_sampling.h"
#include "common.hpp"

namespace rk {
namespace smp {

// A probability the rules may read: finite and ≥ 0 (NaN fails both tests).
RK_HD bool prob_ok(float x) { return x >= 0.0f && x < inf_f(); }

// SpecDec++ base rule (= speculative sampling, Leviathan et al. / Chen et al.): accept the draft
// token Y iff u ≤ p(Y)/q(Y). Edge cases: p(Y) = 0 → never accepted (not even at u = 0: the target
// cannot produce Y); q(Y) = 0 < p(Y) → accepted (the ratio is +∞).
RK_HD bool spec_accept(float p, float q, float u) {
  if (!(p > 0.0f)) return false;
  if (!(q > 0.0f)) return true;
  return (double)u <= (double)p / (double)q;
}

// The accept loop of one row: draft i is tested with p_i(Y_i), q_i(Y_i), u_i until the first
// rejection. Returns the number accepted (0..K); sets *status on an invalid probability.
// tok [K], q [K*V], p [K*V] (rows 0..K-1 of the target), u [K].
RK_HD size_t spec_accept_row(const int32_t* tok, const float* q, const float* p, const float* u, size_t K, size_t V,
                             int32_t* status) {
  for (size_t i = 0; i < K; ++i) {
    size_t y = (size_t)tok[i];
    float qi = q[i * V + y], pi = p[i * V + y];
    if (!prob_ok(qi) || !prob_ok(pi)) { *status = RK_SAMPLING_BAD_PROB; return i; }
    if (!spec_accept(pi, qi, u[i])) return i;
  }
  return K;
}

// Weight of token t in the distribution the next token is drawn from: the residual
// max(p − q, 0) (in double, exact for f32 inputs up to one rounding) or p itself (q == nullptr).
RK_HD double residual_w(float p, float q) {
  double d = (double)p - (double)q;
  return d > 0.0 ? d : 0.0;
}

// Nash-MD / IPO-MD geometric mixture logit, before the log-softmax: (1 − β)·z + β·z_ref.
RK_HD float mixture_logit(float z, float zr, float beta) { return (1.0f - beta) * z + beta * zr; }

// Logits loaders per dtype code (widened to f32 before any arithmetic).
template <int DT> struct Ld;
template <> struct Ld<RK_DT_F32> { using T = float; static RK_HD float get(T x) { return x; } };
template <> struct Ld<RK_DT_BF16> { using T = uint16_t; static RK_HD float get(T x) { return bf16_to_float(x); } };
template <> struct Ld<RK_DT_F16> { using T = uint16_t; static RK_HD float get(T x) { return f16_to_float(x); } };

// SpecDec++ stopping rule on one row of predicted acceptance probabilities P̂ [K]: the smallest
// k ≥ minLength (k ≥ 1) with 1 − Π_{i≤k} P̂_i > threshold, capped at min(maxLength, K).
// Returns −1 if a P̂_i it reads is outside [0, 1] (or NaN).
RK_HD int32_t spec_dec_stop_row(const float* P, size_t K, double threshold, size_t min_length, size_t max_length) {
  size_t cap = max_length < K ? max_length : K;
  double prod = 1.0;
  for (size_t k = 1; k <= cap; ++k) {
    float pk = P[k - 1];
    if (!(pk >= 0.0f && pk <= 1.0f)) return -1;
    prod *= (double)pk;
    if (k >= min_length && 1.0 - prod > threshold) return (int32_t)k;
  }
  return (int32_t)cap;
}

// RSO Algorithm 1 (statistical rejection sampling) on one group: rewards r [K], uniforms U [K*K]
// indexed [round, candidate]. Each round fixes r_max over the candidates still unselected, then
// visits them in index order, accepting c iff U[round, c] < exp((r_c − r_max)/β); it stops as soon
// as m are selected. Since U < 1 = exp(0), every round accepts at least the best remaining
// candidate, so m ≤ K rounds always suffice. `taken` is scratch [K]. Returns an RK_SAMPLING_* code;
// entries of sel not filled are −1.
RK_HD int32_t rso_group(const float* r, const float* U, size_t K, size_t m, double beta, int32_t* sel, uint8_t* taken) {
  for (size_t j = 0; j < m; ++j) sel[j] = -1;
  for (size_t c = 0; c < K; ++c) {
    if (!(absf(r[c]) < inf_f())) return RK_SAMPLING_BAD_REWARD;
    taken[c] = 0;
  }
  size_t n = 0;
  for (size_t round = 0; round < K; ++round) {
    float rmax = -inf_f();
    for (size_t c = 0; c < K; ++c)
      if (!taken[c] && r[c] > rmax) rmax = r[c];
    for (size_t c = 0; c < K; ++c) {
      if (taken[c]) continue;
      float u = U[round * K + c];
      if (!(u >= 0.0f && u < 1.0f)) return RK_SAMPLING_BAD_UNIFORM;
      if ((double)u < exp(((double)r[c] - (double)rmax) / beta)) {
        taken[c] = 1;
        sel[n++] = (int32_t)c;
        if (n == m) return RK_SAMPLING_OK;
      }
    }
  }
  return RK_SAMPLING_NO_ROUNDS;
}

}  // namespace smp
}  // namespace rk
