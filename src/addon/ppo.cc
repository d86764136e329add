// N-API glue of the ppo family: typed-array views → rk_*_args → CPU or CUDA kernel. Scalar
// results come back through a Float64Array `result` (a device buffer of f64 for device calls),
// the last argument, after useCuda: read by its fixed index.
#include "../include/rk_ppo.h"

#include "args.hpp"

namespace rk_addon {
namespace {

int aggregation(Args& in) {
  int64_t g = in.integer("aggregation");
  if (g < RK_AGG_TOKEN_MEAN || g > RK_AGG_SEQ_MEAN_TOKEN_MEAN) in.range("aggregation", "an aggregation code 0..2");
  return (int)g;
}
void normalizer(Args& in, int* has, double* v) {
  double d = in.num("normalizer");
  *has = !std::isnan(d);
  if (*has && !(d > 0 && std::isfinite(d))) in.range("normalizer", "a finite number > 0");
  *v = *has ? d : 0.0;
}
// ppoPolicyLoss(B, T, logp, oldLogp, advantages, refLogp|null, mask|null, gradLogp,
//               clipLow, clipHigh, dualClip|NaN, klCoef, klEstimator(-1 none), aggregation, normalizer|NaN, useCuda,
//               result: Float64Array[3] = loss, clipFraction, approxKl)
Napi::Value PpoPolicyLoss(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_ppo_policy_loss_args a{};
  a.B = in.size("B");
  a.T = in.size("T");
  size_t n = mul_sizes(in.env(), a.B, a.T, "B*T");
  a.logp = in.f32("logp", n);
  a.old_logp = in.f32("oldLogp", n);
  a.advantages = in.f32("advantages", n);
  a.ref_logp = in.f32_opt("refLogp", n);
  a.mask = in.mask("mask", n, &a.mask_kind);
  a.grad_logp = in.f32_out("gradLogp", n);
  a.clip_low = (float)in.finite("clipLow");
  a.clip_high = (float)in.finite("clipHigh");
  if (!(a.clip_low >= 0 && a.clip_low <= 1)) in.range("clipLow", "in [0, 1]");
  if (!(a.clip_high >= 0)) in.range("clipHigh", ">= 0");
  double dc = in.num("dualClip");
  a.has_dual_clip = !std::isnan(dc);
  if (a.has_dual_clip && !(dc > 1 && std::isfinite(dc))) in.range("dualClip", "a finite number > 1");
  a.dual_clip = a.has_dual_clip ? (float)dc : 0.0f;
  a.kl_coef = (float)in.finite("klCoef");
  int64_t e = in.integer("klEstimator");
  if (e < RK_KL_NONE || e > RK_KL_ABS) in.range("klEstimator", "an estimator code -1..3");
  a.kl_estimator = (int)e;
  if (a.kl_estimator != RK_KL_NONE && !a.ref_logp) in.fail_type("refLogp", "a Float32Array when klEstimator >= 0");
  a.aggregation = aggregation(in);
  normalizer(in, &a.has_normalizer, &a.normalizer);
  in.use_cuda();
  a.result = in.f64_out_at(16, 3, "result");
  return in.run(a, RK_KERNELS(ppo_policy_loss));
}

// valueLoss(B, T, values, oldValues, returns, mask|null, gradValues, clip, aggregation, normalizer|NaN, useCuda,
//           result: Float64Array[2] = loss, clipFraction)
Napi::Value ValueLoss(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_value_loss_args a{};
  a.B = in.size("B");
  a.T = in.size("T");
  size_t n = mul_sizes(in.env(), a.B, a.T, "B*T");
  a.values = in.f32("values", n);
  a.old_values = in.f32("oldValues", n);
  a.returns = in.f32("returns", n);
  a.mask = in.mask("mask", n, &a.mask_kind);
  a.grad_values = in.f32_out("gradValues", n);
  double c = in.num("clip");
  if (!(c >= 0)) in.range("clip", "a number >= 0");
  a.clip = (float)c;
  a.aggregation = aggregation(in);
  normalizer(in, &a.has_normalizer, &a.normalizer);
  in.use_cuda();
  a.result = in.f64_out_at(11, 2, "result");
  return in.run(a, RK_KERNELS(value_loss));
}

// p3oLoss(B, logp1, logp2, oldLogp1, oldLogp2, rewards1, rewards2, gradLogp1, gradLogp2,
//         variant, clipLow, clipHigh, normalizer|NaN, useCuda, result: Float64Array[2] = loss, clipFraction)
Napi::Value P3oLoss(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_p3o_loss_args a{};
  a.B = in.size("B");
  a.logp1 = in.f32("logp1", a.B);
  a.logp2 = in.f32("logp2", a.B);
  a.old_logp1 = in.f32("oldLogp1", a.B);
  a.old_logp2 = in.f32("oldLogp2", a.B);
  a.rewards1 = in.f32("rewards1", a.B);
  a.rewards2 = in.f32("rewards2", a.B);
  a.grad_logp1 = in.f32_out("gradLogp1", a.B);
  a.grad_logp2 = in.f32_out("gradLogp2", a.B);
  int64_t v = in.integer("variant");
  if (v != RK_P3O_SEPARATE && v != RK_P3O_JOINT) in.range("variant", "0 (separate) or 1 (joint)");
  a.variant = (int)v;
  a.clip_low = (float)in.finite("clipLow");
  a.clip_high = (float)in.finite("clipHigh");
  if (!(a.clip_low >= 0 && a.clip_low <= 1)) in.range("clipLow", "in [0, 1]");
  if (!(a.clip_high >= 0)) in.range("clipHigh", ">= 0");
  normalizer(in, &a.has_normalizer, &a.normalizer);
  in.use_cuda();
  a.result = in.f64_out_at(14, 2, "result");
  return in.run(a, RK_KERNELS(p3o_loss));
}

}  // namespace

void register_ppo(Napi::Env env, Napi::Object exports) {
  reg(env, exports, "ppoPolicyLoss", PpoPolicyLoss);
  reg(env, exports, "valueLoss", ValueLoss);
  reg(env, exports, "p3oLoss", P3oLoss);
}

}  // namespace rk_addon
