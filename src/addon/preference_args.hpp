// Argument readers shared by the preference family's entry points and linearPreferenceLoss
// (addon/linear.cc): optional/required f32 inputs, the loss hyper-parameters, the type code, and
// the token-level inputs, outputs and options of the fused losses.
#pragma once
#include "../include/rk_preference.h"
#include "args.hpp"

namespace rk_addon {

inline const float* need(Args& in, bool needed, const char* name, size_t n) { return needed ? in.f32(name, n) : in.f32_opt(name, n); }

inline void read_params(Args& in, rk_pref_params* p) {
  p->beta = (float)in.num("beta");
  p->epsilon = (float)in.num("epsilon");
  p->eta = (float)in.num("eta");
  p->alpha = (float)in.num("alpha");
  p->tau = (float)in.num("tau");
  p->gamma = (float)in.num("gamma");
}

inline int pref_type(Args& in) {
  int64_t t = in.integer("type");
  if (t < 0 || t >= RK_PREF_NTYPES) in.range("type", "a preference loss type code");
  return (int)t;
}

// The token-level inputs of fusedPreferenceLoss / linearPreferenceLoss, in their positional order:
// labels, mask|null, refLogp|null, prevLogp|null, policyExplore|null, preferenceProb|null
// (a.B, a.T and a.type already set). The kernels never index with a label outside [0, V) (such a
// counted token gives NaN); the entry points range-check the counted labels too (check_labels).
inline void read_fused_pref_inputs(Args& in, rk_fused_preference_args& a) {
  const size_t B = a.B, R = 2 * B, N = R * a.T;
  const int t = a.type;
  const bool ref_free = t == RK_PREF_ORPO || t == RK_PREF_SIMPO;
  a.labels = in.i32("labels", N);
  a.mask = in.mask("mask", N, &a.mask_kind);
  a.ref_logp = need(in, !ref_free, "refLogp", R);
  a.prev_logp = need(in, t == RK_PREF_INPO, "prevLogp", R);
  a.policy_explore = need(in, t == RK_PREF_XPO, "policyExplore", B);
  a.preference_prob = need(in, t == RK_PREF_DNO, "preferenceProb", B);
}
// The per-example outputs of every preference loss, in their positional order: losses, gc, gr, cr,
// rj, margins, gradExtra|null (required when `extra`).
template <class A>
void read_pref_outputs(Args& in, A& a, bool extra) {
  const size_t B = a.B;
  a.losses = in.f32_out("losses", B);
  a.grad_policy_chosen = in.f32_out("gradPolicyChosen", B);
  a.grad_policy_rejected = in.f32_out("gradPolicyRejected", B);
  a.chosen_rewards = in.f32_out("chosenRewards", B);
  a.rejected_rewards = in.f32_out("rejectedRewards", B);
  a.margins = in.f32_out("margins", B);
  a.grad_extra = extra ? in.f32_out("gradExtra", B) : in.f32_out_opt("gradExtra", B);
}
inline void read_fused_pref_outputs(Args& in, rk_fused_preference_args& a) { read_pref_outputs(in, a, a.type == RK_PREF_XPO); }
// The options: beta, epsilon, eta, alpha, tau, gamma, temperature, ignoreIndex.
inline void read_fused_pref_options(Args& in, rk_fused_preference_args& a) {
  read_params(in, &a.p);
  a.temperature = (float)in.num("temperature");
  int64_t ign = in.integer("ignoreIndex");
  if (ign < INT32_MIN || ign > INT32_MAX) in.range("ignoreIndex", "a 32-bit integer");
  a.ignore_index = (int32_t)ign;
}

}  // namespace rk_addon
