// Per-example and per-row math of the preference family (SPEC §4), shared by CPU and CUDA.
// Every log-sigmoid is a softplus (−log σ(x) = softplus(−x)), so no loss overflows for any margin.
#pragma once
#include "../include/rk_preference.h"
#include <type_traits>

#include "common.hpp"

namespace rk {

// softplus(x) and σ(x) from one exp(−|x|).
RK_HD void softplus_sigmoid(float x, float* sp, float* sg) {
  float t = expf_(-absf(x));
  float inv = 1.0f / (1.0f + t);
  *sp = maxf(x, 0.0f) + log1pf_(t);
  *sg = x >= 0.0f ? inv : t * inv;
}

// For x < 0: log(1 − e^x) and 1/(1 − e^x) = −1/expm1(x), sharing one exp (ORPO's odds).
// log(−expm1 x) is accurate to a few ulp of its magnitude everywhere (absolute error < 1e-7 where
// the result is tiny, x ≪ 0), which is what the SPEC's precision rule asks of it.
RK_HD void log1mexp_and_inv(float x, float* l, float* inv) {
  float u = expf_(x);
  float um1 = u - 1.0f;
  float em1 = um1 * (x / logf_(u));  // Kahan's expm1
  em1 = um1 == 0.0f ? x : em1;
  em1 = um1 == -1.0f ? -1.0f : em1;
  *l = logf_(-em1);
  *inv = -1.0f / em1;
}

// One example's inputs. ilc/ilr: 1/length of each log-ratio (1 unless ipo lengthNormalize).
struct PrefEx {
  float pc, pr, rc, rr;
  float ilc, ilr;
  float nll;      // rpo, orpo: chosenNll; xpo: policyExplore
  float prevc, prevr;
  float prob;
};
// One example's results: loss, ∂loss/∂πc, ∂loss/∂πr, ∂loss/∂(nll or explore) (per example, not
// yet divided by B), and the reward metrics.
struct PrefRes {
  float loss, gc, gr, gx, cr, rj;
};

// The DPO-family losses on z = β·u, as (loss, ∂loss/∂z).
template <int TY>
RK_HD void dpo_like(float z, const rk_pref_params& p, float prob, float* loss, float* dz) {
  float spn, sn;
  softplus_sigmoid(-z, &spn, &sn);  // −log σ(z) and −∂/∂z of it
  if (TY == RK_PREF_CDPO || TY == RK_PREF_RDPO || TY == RK_PREF_DNO) {
    // softplus(z) = softplus(−z) + z, σ(z) = 1 − σ(−z): no second exp
    float spp = absf(z) == inf_f() ? maxf(z, 0.0f) : spn + z;  // −log σ(−z) (z = −∞: ∞ − ∞ otherwise)
    float sp = 1.0f - sn;       // ∂spp/∂z
    float e = TY == RK_PREF_DNO ? 1.0f - prob : p.epsilon;
    float w = 1.0f - e;
    if (TY == RK_PREF_RDPO) {
      float inv = 1.0f / (1.0f - 2.0f * e);
      *loss = (w * spn - e * spp) * inv;
      *dz = (-w * sn - e * sp) * inv;
    } else {
      *loss = w * spn + e * spp;
      *dz = -w * sn + e * sp;
    }
  } else {
    *loss = spn;
    *dz = -sn;
  }
}

template <int TY>
RK_HD PrefRes pref_example(const PrefEx& x, const rk_pref_params& p) {
  PrefRes r;
  const float beta = p.beta;
  const bool ref_free = TY == RK_PREF_ORPO || TY == RK_PREF_SIMPO;
  r.cr = ref_free ? beta * x.pc : beta * (x.pc - x.rc);
  r.rj = ref_free ? beta * x.pr : beta * (x.pr - x.rr);
  r.gx = 0.0f;
  if (TY == RK_PREF_IPO) {
    // (u' − 1/(2β))², u' = (πc − rc)/Lc − (πr − rr)/Lr (lengths 1 without lengthNormalize)
    float up = (x.pc - x.rc) * x.ilc - (x.pr - x.rr) * x.ilr;
    float d = up - 0.5f / beta;
    r.loss = d * d;
    r.gc = 2.0f * d * x.ilc;
    r.gr = -2.0f * d * x.ilr;
  } else if (TY == RK_PREF_INPO) {
    float h = (x.pc - x.pr) - (p.tau / p.eta) * (x.rc - x.rr) - ((p.eta - p.tau) / p.eta) * (x.prevc - x.prevr);
    float d = h - 0.5f / p.eta;
    r.loss = d * d;
    r.gc = 2.0f * d;
    r.gr = -2.0f * d;
  } else if (TY == RK_PREF_HINGE) {
    float u = (x.pc - x.rc) - (x.pr - x.rr);
    float m = 1.0f - beta * u;
    bool on = m > 0.0f;
    r.loss = on ? m : (m == m ? 0.0f : m);
    float g = on ? -beta : (m == m ? 0.0f : m);
    r.gc = g;
    r.gr = -g;
  } else if (TY == RK_PREF_ORPO) {
    // odds = log(πc/(1−πc)) − log(πr/(1−πr)) in log space; loss −β log σ(odds) + nll
    float lc, ic, lr, ir;
    log1mexp_and_inv(x.pc, &lc, &ic);
    log1mexp_and_inv(x.pr, &lr, &ir);
    float odds = (x.pc - x.pr) - (lc - lr);
    float sp, sg;
    softplus_sigmoid(-odds, &sp, &sg);
    float dodds = -beta * sg;
    r.loss = beta * sp + x.nll;
    // ∂odds/∂πc = 1/(1 − e^πc)
    r.gc = dodds * ic;
    r.gr = -dodds * ir;
    r.gx = 1.0f;
  } else if (TY == RK_PREF_SIMPO) {
    float z = beta * (x.pc - x.pr) - p.gamma;
    float s;
    softplus_sigmoid(-z, &r.loss, &s);
    r.gc = -beta * s;
    r.gr = beta * s;
  } else {
    float u = (x.pc - x.rc) - (x.pr - x.rr);
    float l, dz;
    dpo_like<TY>(beta * u, p, x.prob, &l, &dz);
    r.loss = l;
    r.gc = beta * dz;
    r.gr = -beta * dz;
    if (TY == RK_PREF_RPO) {
      r.loss = l + p.eta * beta * x.nll;
      r.gx = p.eta * beta;
    } else if (TY == RK_PREF_XPO) {
      r.loss = l + p.alpha * x.nll;
      r.gx = p.alpha;
    }
  }
  return r;
}

// Calls f(integral_constant<int, TY>) for a runtime type code.
template <class F>
inline void with_pref_type(int t, F&& f) {
  switch (t) {
    case RK_PREF_CDPO: f(std::integral_constant<int, RK_PREF_CDPO>{}); break;
    case RK_PREF_RDPO: f(std::integral_constant<int, RK_PREF_RDPO>{}); break;
    case RK_PREF_IPO: f(std::integral_constant<int, RK_PREF_IPO>{}); break;
    case RK_PREF_HINGE: f(std::integral_constant<int, RK_PREF_HINGE>{}); break;
    case RK_PREF_RPO: f(std::integral_constant<int, RK_PREF_RPO>{}); break;
    case RK_PREF_XPO: f(std::integral_constant<int, RK_PREF_XPO>{}); break;
    case RK_PREF_INPO: f(std::integral_constant<int, RK_PREF_INPO>{}); break;
    case RK_PREF_DNO: f(std::integral_constant<int, RK_PREF_DNO>{}); break;
    case RK_PREF_ORPO: f(std::integral_constant<int, RK_PREF_ORPO>{}); break;
    case RK_PREF_SIMPO: f(std::integral_constant<int, RK_PREF_SIMPO>{}); break;
    default: f(std::integral_constant<int, RK_PREF_DPO>{}); break;
  }
}

// ---- listwise (one row of K items) -------------------------------------------------------------
// Written once for a team of `nt` threads with id `tid` (CPU: 1 thread; CUDA: one block per row),
// phases separated by sync(). Scratch: three arrays of K floats (shared memory on CUDA).
// Returns this thread's share of the row's loss; writes g[i] = ∂(row loss)/∂policy_i · gscale.

RK_HD float lw_score(int type, float pol, float ref, float len, float beta) {
  return type == RK_LIST_PRO ? pol / len : beta * (pol - ref);
}

template <class Sync>
RK_HD float listwise_row(int type, const float* pol, const float* ref, const float* lab, const float* len, size_t K,
                         float beta, float sftw, float gscale, float* g, float* s, float* a, float* c, unsigned tid,
                         unsigned nt, Sync sync) {
  for (size_t i = tid; i < K; i += nt)
    s[i] = lw_score(type, pol[i], ref ? ref[i] : 0.0f, len ? len[i] : 1.0f, beta);
  sync();
  float part = 0.0f;
  if (type == RK_LIST_LIPO) {
    // τ_i: 1-based rank of s_i, descending, ties by index. a_i = 1/log2(1 + τ_i), c_i = 2^ψ_i − 1.
    for (size_t i = tid; i < K; i += nt) {
      float si = s[i];
      size_t rank = 1;
      for (size_t j = 0; j < K; ++j) rank += (s[j] > si || (s[j] == si && j < i)) ? 1 : 0;
      a[i] = 0.693147180559945f / log1pf_((float)rank);
      c[i] = expf_(lab[i] * 0.693147180559945f) - 1.0f;
    }
    sync();
    for (size_t i = tid; i < K; i += nt) {
      // branch-free over j (vectorises): i beats j adds Δ·softplus(s_j − s_i) to the loss and
      // −Δ·σ(s_j − s_i) to ∂/∂s_i; j beats i adds Δ·σ(s_i − s_j) = Δ·(1 − σ(s_j − s_i)).
      float gi = 0.0f, li_part = 0.0f;
      const float li = lab[i], si = s[i], ai = a[i], ci = c[i];
      for (size_t j = 0; j < K; ++j) {
        float d = absf(ci - c[j]) * absf(ai - a[j]);
        float sp, sg;
        softplus_sigmoid(s[j] - si, &sp, &sg);
        // selects, not products with 0: a pair that does not count adds nothing even where
        // s_j − s_i is ±∞ or NaN (s = −∞ for a −∞ log-ratio), as in the sum over ψi > ψj
        const bool win = li > lab[j], lose = lab[j] > li;
        li_part += win ? d * sp : 0.0f;
        gi += (lose ? d * (1.0f - sg) : 0.0f) - (win ? d * sg : 0.0f);
      }
      part += li_part;
      g[i] = gi * beta * gscale;
    }
  } else {
    // pl: T ≡ 1, k = 0..K−1. pro: T_k^i = r_k − r_i (i > k), T_k^k = max_{i>k} T_k^i, k = 0..K−2.
    // a_k = LSE_{i≥k}(s_i·T_k^i), c_k = T_k^k; row loss Σ_k a_k − s_k·c_k.
    const bool pro = type == RK_LIST_PRO;
    const size_t nk = pro ? (K ? K - 1 : 0) : K;
    for (size_t k = tid; k < nk; k += nt) {
      float tkk = 1.0f;
      if (pro) {
        tkk = lab[k] - lab[k + 1];
        for (size_t i = k + 2; i < K; ++i) tkk = maxf(tkk, lab[k] - lab[i]);
      }
      float m = s[k] * tkk;
      for (size_t i = k + 1; i < K; ++i) m = maxf(m, s[i] * (pro ? lab[k] - lab[i] : 1.0f));
      float m0 = absf(m) == inf_f() ? 0.0f : m;
      float acc = expf_(s[k] * tkk - m0);
      for (size_t i = k + 1; i < K; ++i) acc += expf_(s[i] * (pro ? lab[k] - lab[i] : 1.0f) - m0);
      a[k] = m0 + logf_(acc);
      c[k] = tkk;
      part += a[k] - s[k] * tkk;
    }
    sync();
    for (size_t i = tid; i < K; i += nt) {
      // ∂/∂s_i = Σ_{k ≤ i, k < nk} softmax_k(i)·T_k^i − [i < nk]·T_i^i
      float gi = 0.0f;
      size_t kmax = i < nk ? i : (nk ? nk - 1 : 0);
      if (nk) {
        for (size_t k = 0; k <= kmax; ++k) {
          float t = k == i ? c[k] : (pro ? lab[k] - lab[i] : 1.0f);
          gi += t * expf_(s[i] * t - a[k]);
        }
      }
      if (i < nk) gi -= c[i];
      float ds = pro ? 1.0f / (len ? len[i] : 1.0f) : beta;
      gi *= ds;
      if (pro && i == 0) gi -= sftw * (float)(K - 1) * (float)(K - 1);
      g[i] = gi * gscale;
    }
    if (pro && tid == 0 && K) part += sftw * (float)(K - 1) * (float)(K - 1) * (-pol[0]);
  }
  return part;
}

}  // namespace rk
