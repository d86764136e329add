// Row math of the token log-prob family (SPEC §1), shared by the CPU kernels (lane combine,
// V-split merge, portable fallback) and the CUDA kernels (per-thread state, warp/block merge).
//
// Online softmax statistics of a row z_0..z_{V-1} (z = logits / temperature):
//   m = running max, s = Σ e^{z_j − m}, w = Σ e^{z_j − m}·(z_j − m)
// so that lse = m + log s, Σ_j p_j z_j = m + w/s and entropy = lse − Σ p z = log s − w/s.
// When the max moves from m to m' every term is rescaled by e^{m−m'} and (z−m) becomes
// (z−m) + (m−m'), hence s' = e^{m−m'}·s and w' = e^{m−m'}·(w + (m−m')·s).
// Terms with e^{z−m} = 0 (z = −inf, a padded vocabulary) contribute exactly 0 to w: the factor
// (z − m) is clamped to a finite value first, so 0·(−inf) never happens.
#pragma once
#include "../include/rk_logprobs.h"
#include "common.hpp"

namespace rk {

// exp arguments below this are 0 in f32 (e^{-104} < 2^{-149}); also the clamp of (z − m) factors.
constexpr float kLpLo = -104.0f;
// Initial running max: finite (−FLT_MAX), so that z − m is −inf, not NaN, for z = −inf.
constexpr float kLpM0 = -3.40282347e38f;

struct LseStats {
  float m, s, w;
};

RK_HD LseStats lse_empty() { return LseStats{kLpM0, 0.0f, 0.0f}; }

// Adds one value z (scalar online update; used by the portable path and the CUDA threads).
template <bool W>
RK_HD void lse_push(LseStats& st, float z) {
  if (z > st.m) {
    float dm = maxf(st.m - z, kLpLo);  // finite (st.m starts at −FLT_MAX)
    float f = expf_(dm);
    if (W) st.w = f * (st.w + dm * st.s);
    st.s = st.s * f;
    st.m = z;
  }
  float d = z - st.m;  // ≤ 0, −inf for z = −inf, NaN for z = NaN (or m = +inf)
  float dc = d < kLpLo ? kLpLo : d;  // NaN stays NaN
  float e = expf_(dc);
  e = d < kLpLo ? 0.0f : e;
  st.s += e;
  if (W) st.w += e * dc;
}

// Merges two partial statistics (lanes, V-split chunks, CUDA threads). An empty side (s = 0:
// nothing or only −inf seen) is the identity; a NaN anywhere propagates.
template <bool W>
RK_HD LseStats lse_merge(LseStats a, LseStats b) {
  if (a.s == 0.0f) return b;  // empty (or all −inf) side
  if (b.s == 0.0f) return a;
  float M = a.m > b.m ? a.m : b.m;
  float da = maxf(a.m - M, kLpLo), db = maxf(b.m - M, kLpLo);
  da = is_nan(a.m - M) ? a.m - M : da;
  db = is_nan(b.m - M) ? b.m - M : db;
  float fa = expf_(da), fb = expf_(db);
  LseStats r;
  r.m = M;
  r.s = a.s * fa + b.s * fb;
  r.w = W ? fa * (a.w + da * a.s) + fb * (b.w + db * b.s) : 0.0f;
  return r;
}

// Outputs of one row from its statistics and the label's z_y.
struct LpOut {
  float logp, lse, entropy;
};
RK_HD LpOut lse_finish(LseStats st, float zy) {
  float ls = logf_(st.s);
  LpOut o;
  o.lse = st.m + ls;
  o.logp = (zy - st.m) - ls;
  o.entropy = ls - st.w / st.s;
  return o;
}

// vocabKl statistics of a pair of rows a (the distribution the expectation is under) and b:
//   ma, sa = online softmax stats of a; u = Σ e^{a_j − ma}·(a_j − b_j); mb, sb stats of b.
// KL(P_a‖P_b) = u/sa − (ma − mb) − log sa + log sb. Terms with e^{a_j − ma} = 0 contribute 0
// (a shared −inf entry counts 0; b_j = −inf where a_j is finite, i.e. P_a,j > 0, gives +inf, as the
// SPEC says, even where P_a,j underflows in f32). Other terms whose weight underflows count 0.
struct KlStats {
  float ma, sa, u, mb, sb;
};
RK_HD KlStats kl_empty() { return KlStats{kLpM0, 0.0f, 0.0f, kLpM0, 0.0f}; }

// One term e·(a − b): 0 where the weight underflowed, +inf wherever a is finite and b = −inf
// (P_a,j > 0 and P_b,j = 0, however small P_a,j is).
RK_HD float kl_term(float e, float da, float ab) { return ab == inf_f() ? ab : (da < kLpLo ? 0.0f : e * ab); }
// u rescaled by an underflowing weight: its finite terms vanish, an infinite u stays +inf.
RK_HD float kl_scale_u(float u, float f, float dm) { return u == inf_f() ? u : (dm < kLpLo ? 0.0f : u * f); }

RK_HD void kl_push(KlStats& st, float a, float b) {
  if (a > st.ma) {
    float dm = st.ma - a;
    float f = expf_(maxf(dm, kLpLo));
    st.sa *= f;
    st.u = kl_scale_u(st.u, f, dm);
    st.ma = a;
  }
  if (b > st.mb) {
    st.sb *= expf_(maxf(st.mb - b, kLpLo));
    st.mb = b;
  }
  float da = a - st.ma, db = b - st.mb;
  float ea = expf_(da < kLpLo ? kLpLo : da);
  ea = da < kLpLo ? 0.0f : ea;
  float eb = expf_(db < kLpLo ? kLpLo : db);
  eb = db < kLpLo ? 0.0f : eb;
  st.sa += ea;
  st.u += kl_term(ea, da, a - b);
  st.sb += eb;
}

RK_HD KlStats kl_merge(KlStats x, KlStats y) {
  KlStats r;
  // a-side (sa, u share the max ma)
  if (x.sa == 0.0f) { r.ma = y.ma; r.sa = y.sa; r.u = y.u; }
  else if (y.sa == 0.0f) { r.ma = x.ma; r.sa = x.sa; r.u = x.u; }
  else {
    float M = x.ma > y.ma ? x.ma : y.ma;
    float dx = x.ma - M, dy = y.ma - M;
    float fx = expf_(is_nan(dx) ? dx : maxf(dx, kLpLo)), fy = expf_(is_nan(dy) ? dy : maxf(dy, kLpLo));
    r.ma = M;
    r.sa = x.sa * fx + y.sa * fy;
    r.u = kl_scale_u(x.u, fx, dx) + kl_scale_u(y.u, fy, dy);
  }
  if (x.sb == 0.0f) { r.mb = y.mb; r.sb = y.sb; }
  else if (y.sb == 0.0f) { r.mb = x.mb; r.sb = x.sb; }
  else {
    float M = x.mb > y.mb ? x.mb : y.mb;
    float dx = x.mb - M, dy = y.mb - M;
    float fx = expf_(is_nan(dx) ? dx : maxf(dx, kLpLo)), fy = expf_(is_nan(dy) ? dy : maxf(dy, kLpLo));
    r.mb = M;
    r.sb = x.sb * fx + y.sb * fy;
  }
  return r;
}

// KL(P_a‖P_b), plus the two lse values (for the backward).
struct KlOut {
  float kl, lse_a, lse_b;
};
RK_HD KlOut kl_finish(KlStats st) {
  float la = logf_(st.sa), lb = logf_(st.sb);
  KlOut o;
  o.lse_a = st.ma + la;
  o.lse_b = st.mb + lb;
  o.kl = (st.u / st.sa - (st.ma - st.mb)) + (lb - la);
  return o;
}

// vocabKlBackward per logit (w.r.t. the policy logits x, p = softmax(x/τ), q = softmax(r/τ)):
//   reverse: p_j·((log p_j − log q_j) − KL)·g/τ;  forward: (p_j − q_j)·g/τ.
// dx = x_j/τ − lse_p, dr = r_j/τ − lse_q.
RK_HD float kl_grad_reverse(float dx, float dr, float kl, float g_inv_t) {
  float p = expf_(clampf(dx, kLpLo, 88.0f));
  p = dx < kLpLo ? 0.0f : p;
  float v = p * ((dx - dr) - kl) * g_inv_t;
  return dx < kLpLo ? 0.0f : v;
}
RK_HD float kl_grad_forward(float dx, float dr, float g_inv_t) {
  float p = expf_(clampf(dx, kLpLo, 88.0f));
  p = dx < kLpLo ? 0.0f : p;
  float q = expf_(clampf(dr, kLpLo, 88.0f));
  q = dr < kLpLo ? 0.0f : q;
  return (p - q) * g_inv_t;
}


// ---- the pushes and the gradient used by the CUDA kernels (and the portable paths) -----------
// The state stays in natural units: m is the largest z itself, so z − m is exact (the max element
// contributes exactly 1, a row with one finite logit gets lse = that logit and a zero gradient),
// and e^{d} is computed as 2^{d·log2 e} (one FMUL and one ex2 on the GPU; expf_ on the host).
constexpr float kLog2e = 1.44269504088896341f;
RK_HD float exp_nat(float d) {
#if defined(__CUDA_ARCH__)
  return exp2f(d * kLog2e);
#else
  return expf_(d);
#endif
}

// Adds K values z[0..K) (already divided by τ): one rescale for the K values' max. A NaN among
// them makes s NaN (its d is NaN), whatever its position.
template <bool W, int K>
RK_HD void lse_push_k(LseStats& st, const float* z) {
  float bm = z[0];
  for (int k = 1; k < K; ++k) bm = z[k] > bm ? z[k] : bm;
  if (bm > st.m) {
    float dm = maxf(st.m - bm, kLpLo);
    float f = exp_nat(dm);
    if (W) st.w = f * (st.w + dm * st.s);
    st.s *= f;
    st.m = bm;
  }
  for (int k = 0; k < K; ++k) {
    float d = z[k] - st.m;
    float e = exp_nat(d);  // 0 for d = −inf (and below the f32 range), NaN for NaN
    st.s += e;
    if (W) st.w += d < kLpLo ? 0.0f : e * d;
  }
}

// Gradient of one logit (SPEC §1 logprobsBackward), without the label's 1[j=y]/τ term:
//   −p_j·(g_logp + g_ent·(z_j − lse + H)) / τ,  p_j = e^{d}, d = z_j − lse (z_j = x_j/τ rounded
//   as in the forward, so that d is exactly 0 where z_j is the row's only finite logit).
// p_j = 0 where d is −inf (the (d + H) factor is clamped first, so no 0·inf); a NaN d (a NaN in
// the row) stays NaN: the clamps are selects that NaN fails.
template <bool GE>
RK_HD float lp_grad(float d, float gl, float ge, float H, float inv_t) {
  float p = exp_nat(d > 88.0f ? 88.0f : d);
  if (!GE) return -p * gl * inv_t;
  float dc = d < kLpLo ? kLpLo : d;
  return -p * (gl + ge * (dc + H)) * inv_t;
}

}  // namespace rk
