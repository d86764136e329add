// N-API glue of the reward family: typed-array views → rk_*_args → CPU or CUDA kernel.
// Native signatures put sizes first, then arrays (checked against them), then scalars, then
// the `useCuda` flag; optional scalars are passed as NaN.
#include "../include/rk_rewards.h"

#include "args.hpp"

namespace rk_addon {
namespace {

// klPenalty(B, T, logp, refLogp, mask|null, out, estimator, clamp|NaN, useCuda)
Napi::Value KlPenalty(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_kl_penalty_args a{};
  a.B = in.size("B");
  a.T = in.size("T");
  size_t n = mul_sizes(in.env(), a.B, a.T, "B*T");
  a.logp = in.f32("logp", n);
  a.ref_logp = in.f32("refLogp", n);
  a.mask = in.mask("mask", n, &a.mask_kind);
  a.kl = in.f32_out("kl", n);
  a.estimator = (int)in.integer("estimator");
  double c = in.num("clamp");
  a.has_clamp = !std::isnan(c);
  a.clamp = a.has_clamp ? (float)c : 0.0f;
  in.use_cuda();
  return in.run(a, RK_KERNELS(kl_penalty));
}

// tokenRewards(B, T, logp, refLogp, mask, scores, out, klCoef, estimator, scoreClip|NaN, useCuda)
Napi::Value TokenRewards(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_token_rewards_args a{};
  a.B = in.size("B");
  a.T = in.size("T");
  size_t n = mul_sizes(in.env(), a.B, a.T, "B*T");
  a.logp = in.f32("logp", n);
  a.ref_logp = in.f32("refLogp", n);
  a.mask = in.mask("mask", n, &a.mask_kind);
  if (a.mask_kind == RK_MASK_NONE) in.fail_type("mask", "a Uint8Array or Float32Array");
  a.scores = in.f32("scores", a.B);
  a.rewards = in.f32_out("rewards", n);
  a.kl_coef = (float)in.finite("klCoef");
  a.estimator = (int)in.integer("estimator");
  double c = in.num("scoreClip");
  a.has_score_clip = !std::isnan(c);
  a.score_clip = a.has_score_clip ? (float)c : 0.0f;
  in.use_cuda();
  return in.run(a, RK_KERNELS(token_rewards));
}

// rtoRewards(B, T, dpoLogp, refLogp, logp, mask, scores|null, out, beta1, beta2, beta3, dpoClip|NaN, useCuda)
Napi::Value RtoRewards(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_rto_rewards_args a{};
  a.B = in.size("B");
  a.T = in.size("T");
  size_t n = mul_sizes(in.env(), a.B, a.T, "B*T");
  a.dpo_logp = in.f32("dpoLogp", n);
  a.ref_logp = in.f32("refLogp", n);
  a.logp = in.f32("logp", n);
  a.mask = in.mask("mask", n, &a.mask_kind);
  if (a.mask_kind == RK_MASK_NONE) in.fail_type("mask", "a Uint8Array or Float32Array");
  a.scores = in.f32_opt("scores", a.B);
  a.rewards = in.f32_out("rewards", n);
  a.beta1 = (float)in.finite("beta1");
  a.beta2 = (float)in.finite("beta2");
  a.beta3 = (float)in.finite("beta3");
  double c = in.num("dpoClip");
  a.has_dpo_clip = !std::isnan(c);
  a.dpo_clip = a.has_dpo_clip ? (float)c : 0.0f;
  in.use_cuda();
  return in.run(a, RK_KERNELS(rto_rewards));
}

// implicitRewards(B, T, logp, refLogp, mask, out, beta, useCuda)
Napi::Value ImplicitRewards(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_implicit_rewards_args a{};
  a.B = in.size("B");
  a.T = in.size("T");
  size_t n = mul_sizes(in.env(), a.B, a.T, "B*T");
  a.logp = in.f32("logp", n);
  a.ref_logp = in.f32("refLogp", n);
  a.mask = in.mask("mask", n, &a.mask_kind);
  if (a.mask_kind == RK_MASK_NONE) in.fail_type("mask", "a Uint8Array or Float32Array");
  a.rewards = in.f32_out("rewards", n);
  a.beta = (float)in.finite("beta");
  in.use_cuda();
  return in.run(a, RK_KERNELS(implicit_rewards));
}

}  // namespace

void register_rewards(Napi::Env env, Napi::Object exports) {
  reg(env, exports, "klPenalty", KlPenalty);
  reg(env, exports, "tokenRewards", TokenRewards);
  reg(env, exports, "rtoRewards", RtoRewards);
  reg(env, exports, "implicitRewards", ImplicitRewards);
}

}  // namespace rk_addon
