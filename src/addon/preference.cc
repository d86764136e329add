// N-API glue of the preference family: typed-array views → rk_*_args → CPU or CUDA kernel.
// Signatures: sizes first, then arrays (checked against them), then scalars, then `useCuda`; the
// scalar results (mean loss, accuracy) come back in a trailing Float64Array (a device buffer of
// f64 for device calls).
#include "../include/rk_preference.h"

#include "args.hpp"

namespace rk_addon {
namespace {

const float* need(Args& in, bool needed, const char* name, size_t n) { return needed ? in.f32(name, n) : in.f32_opt(name, n); }

void read_params(Args& in, rk_pref_params* p) {
  p->beta = (float)in.num("beta");
  p->epsilon = (float)in.num("epsilon");
  p->eta = (float)in.num("eta");
  p->alpha = (float)in.num("alpha");
  p->tau = (float)in.num("tau");
  p->gamma = (float)in.num("gamma");
}

int pref_type(Args& in) {
  int64_t t = in.integer("type");
  if (t < 0 || t >= RK_PREF_NTYPES) in.range("type", "a preference loss type code");
  return (int)t;
}

// preferenceLoss(B, type, lengthNormalize, pc, pr, rc|null, rr|null, lc|null, lr|null, nll|null,
//   explore|null, prevChosen|null, prevRejected|null, prob|null, losses, gc, gr, cr, rj, margins,
//   gradExtra|null, beta, epsilon, eta, alpha, tau, gamma, useCuda, scalars[2])
Napi::Value PreferenceLoss(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_preference_loss_args a{};
  a.B = in.size("B");
  a.type = pref_type(in);
  a.length_normalize = in.boolean("lengthNormalize") ? 1 : 0;
  const size_t B = a.B;
  const int t = a.type;
  const bool ref_free = t == RK_PREF_ORPO || t == RK_PREF_SIMPO;
  const bool ln = t == RK_PREF_IPO && a.length_normalize;
  a.policy_chosen = in.f32("policyChosen", B);
  a.policy_rejected = in.f32("policyRejected", B);
  a.ref_chosen = need(in, !ref_free, "refChosen", B);
  a.ref_rejected = need(in, !ref_free, "refRejected", B);
  a.chosen_length = need(in, ln, "chosenLength", B);
  a.rejected_length = need(in, ln, "rejectedLength", B);
  a.chosen_nll = need(in, t == RK_PREF_RPO || t == RK_PREF_ORPO, "chosenNll", B);
  a.policy_explore = need(in, t == RK_PREF_XPO, "policyExplore", B);
  a.prev_chosen = need(in, t == RK_PREF_INPO, "prevChosen", B);
  a.prev_rejected = need(in, t == RK_PREF_INPO, "prevRejected", B);
  a.preference_prob = need(in, t == RK_PREF_DNO, "preferenceProb", B);
  a.losses = in.f32_out("losses", B);
  a.grad_policy_chosen = in.f32_out("gradPolicyChosen", B);
  a.grad_policy_rejected = in.f32_out("gradPolicyRejected", B);
  a.chosen_rewards = in.f32_out("chosenRewards", B);
  a.rejected_rewards = in.f32_out("rejectedRewards", B);
  a.margins = in.f32_out("margins", B);
  const bool extra = t == RK_PREF_RPO || t == RK_PREF_XPO || t == RK_PREF_ORPO;
  a.grad_extra = extra ? in.f32_out("gradExtra", B) : in.f32_out_opt("gradExtra", B);
  read_params(in, &a.p);
  in.use_cuda();
  a.scalars = in.f64_out_at(28, 2, "scalars");
  return in.run(a, RK_KERNELS(preference_loss));
}

// apoReference(n, current, previous, out, alpha, useCuda)
Napi::Value ApoReference(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_apo_reference_args a{};
  a.n = in.size("n");
  a.current = in.f32("current", a.n);
  a.previous = in.f32("previous", a.n);
  a.reference = in.f32_out("reference", a.n);
  a.alpha = (float)in.num("alpha");
  in.use_cuda();
  return in.run(a, RK_KERNELS(apo_reference));
}

// listwiseLoss(B, K, type, policy, ref|null, labels|null, lengths|null, losses, gradPolicy, beta,
//   sftWeight, useCuda, scalars[1])
Napi::Value ListwiseLoss(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_listwise_loss_args a{};
  a.B = in.size("B");
  a.K = in.size("K");
  size_t n = mul_sizes(in.env(), a.B, a.K, "B*K");
  int64_t t = in.integer("type");
  if (t < RK_LIST_LIPO || t > RK_LIST_PL) in.range("type", "a listwise loss type code");
  a.type = (int)t;
  a.policy = in.f32("policy", n);
  a.ref = need(in, a.type != RK_LIST_PRO, "ref", n);
  a.labels = need(in, a.type != RK_LIST_PL, "labels", n);
  a.lengths = in.f32_opt("lengths", n);
  a.losses = in.f32_out("losses", a.B);
  a.grad_policy = in.f32_out("gradPolicy", n);
  a.beta = (float)in.num("beta");
  a.sft_weight = (float)in.num("sftWeight");
  in.use_cuda();
  a.scalars = in.f64_out_at(12, 2, "scalars");
  return in.run(a, RK_KERNELS(listwise_loss));
}

// fusedPreferenceLoss(B, T, V, type, lengthNormalize, dtype, logits, labels, mask|null, refLogp|null,
//   prevLogp|null, policyExplore|null, preferenceProb|null, gradLogits, losses, gc, gr, cr, rj,
//   margins, gradExtra|null, beta, epsilon, eta, alpha, tau, gamma, temperature, ignoreIndex,
//   useCuda, scalars[2])
Napi::Value FusedPreferenceLoss(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_fused_preference_args a{};
  a.B = in.size("B");
  a.T = in.size("T");
  a.V = in.size("V");
  a.type = pref_type(in);
  a.length_normalize = in.boolean("lengthNormalize") ? 1 : 0;
  a.dtype = (int)in.integer("dtype");
  const size_t B = a.B, R = mul_sizes(in.env(), 2, B, "2B"), N = mul_sizes(in.env(), R, a.T, "2B*T");
  const size_t NV = mul_sizes(in.env(), N, a.V, "2B*T*V");
  const int t = a.type;
  const bool ref_free = t == RK_PREF_ORPO || t == RK_PREF_SIMPO;
  a.logits = in.logits("logits", NV, a.dtype);
  a.labels = in.i32("labels", N);
  a.mask = in.mask("mask", N, &a.mask_kind);
  a.ref_logp = need(in, !ref_free, "refLogp", R);
  a.prev_logp = need(in, t == RK_PREF_INPO, "prevLogp", R);
  a.policy_explore = need(in, t == RK_PREF_XPO, "policyExplore", B);
  a.preference_prob = need(in, t == RK_PREF_DNO, "preferenceProb", B);
  a.grad_logits = in.f32_out("gradLogits", NV);
  a.losses = in.f32_out("losses", B);
  a.grad_policy_chosen = in.f32_out("gradPolicyChosen", B);
  a.grad_policy_rejected = in.f32_out("gradPolicyRejected", B);
  a.chosen_rewards = in.f32_out("chosenRewards", B);
  a.rejected_rewards = in.f32_out("rejectedRewards", B);
  a.margins = in.f32_out("margins", B);
  a.grad_extra = t == RK_PREF_XPO ? in.f32_out("gradExtra", B) : in.f32_out_opt("gradExtra", B);
  read_params(in, &a.p);
  a.temperature = (float)in.num("temperature");
  int64_t ign = in.integer("ignoreIndex");
  if (ign < INT32_MIN || ign > INT32_MAX) in.range("ignoreIndex", "a 32-bit integer");
  a.ignore_index = (int32_t)ign;
  if (!(a.temperature > 0) || !std::isfinite(1.0f / a.temperature)) in.range("temperature", "a finite number > 0");
  // Labels are indices into the logits: each counted one must be in [0, V) or ignoreIndex (the
  // mask decides what counts). Device arguments are read back; host labels and masks another
  // thread could write were copied by Args.
  {
    const int32_t* lab = in.peek_i32(a.labels, N);
    const size_t mb = a.mask_kind == RK_MASK_U8 ? 1 : 4;
    const void* m = a.mask_kind == RK_MASK_NONE ? nullptr : in.peek(a.mask, N * mb);
    for (size_t i = 0; i < N; ++i) {
      const int32_t y = lab[i];
      const bool counted = !m || (mb == 1 ? static_cast<const uint8_t*>(m)[i] != 0 : static_cast<const float*>(m)[i] != 0.0f);
      if (counted && y != a.ignore_index && (y < 0 || (size_t)y >= a.V)) in.range("labels", "in [0, V) or ignoreIndex where counted");
    }
  }
  in.use_cuda();
  a.scalars = in.f64_out_at(30, 2, "scalars");
  return in.run(a, RK_KERNELS(fused_preference_loss));
}

}  // namespace

void register_preference(Napi::Env env, Napi::Object exports) {
  reg(env, exports, "preferenceLoss", PreferenceLoss);
  reg(env, exports, "apoReference", ApoReference);
  reg(env, exports, "listwiseLoss", ListwiseLoss);
  reg(env, exports, "fusedPreferenceLoss", FusedPreferenceLoss);
}

}  // namespace rk_addon
