// N-API glue of the preference family: typed-array views → rk_*_args → CPU or CUDA kernel.
// Signatures: sizes first, then arrays (checked against them), then scalars, then `useCuda`; the
// scalar results (mean loss, accuracy) come back in a trailing Float64Array (a device buffer of
// f64 for device calls).
#include "../include/rk_preference.h"

#include "args.hpp"
#include "preference_args.hpp"

namespace rk_addon {
namespace {

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
  read_pref_outputs(in, a, t == RK_PREF_RPO || t == RK_PREF_XPO || t == RK_PREF_ORPO);
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
  const size_t N = mul_sizes(in.env(), mul_sizes(in.env(), 2, a.B, "2B"), a.T, "2B*T");
  const size_t NV = mul_sizes(in.env(), N, a.V, "2B*T*V");
  a.logits = in.logits("logits", NV, a.dtype);
  read_fused_pref_inputs(in, a);
  a.grad_logits = in.f32_out("gradLogits", NV);
  read_fused_pref_outputs(in, a);
  read_fused_pref_options(in, a);
  if (!(a.temperature > 0) || !std::isfinite(1.0f / a.temperature)) in.range("temperature", "a finite number > 0");
  // labels index the logits: every counted one in [0, V) or ignoreIndex (defence in depth)
  check_labels(in, a.labels, N, a.V, a.ignore_index, a.mask, a.mask_kind);
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
