// N-API glue of the advantages family: typed-array views → rk_*_args → CPU or CUDA kernel.
// Native signatures put sizes first, then arrays (checked against them), then scalars, then
// the `useCuda` flag; optional arrays are null.
#include "../include/rk_advantages.h"

#include "args.hpp"

namespace rk_addon {
namespace {

// gae(B, T, rewards, values, mask, lastValues|null, advantages, returns, gamma, lambda, useCuda)
Napi::Value Gae(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_gae_args a{};
  a.B = in.size("B");
  a.T = in.size("T");
  size_t n = mul_sizes(in.env(), a.B, a.T, "B*T");
  a.rewards = in.f32("rewards", n);
  a.values = in.f32("values", n);
  a.mask = in.mask("mask", n, &a.mask_kind);
  a.last_values = in.f32_opt("lastValues", a.B);
  a.advantages = in.f32_out("advantages", n);
  a.returns = in.f32_out("returns", n);
  a.gamma = (float)in.finite("gamma");
  a.lambda = (float)in.finite("lambda");
  if (in.use_cuda()) RK_CUDA_CALL(in.env(), rk_cuda_gae, &a);
  else rk_cpu_gae(&a);
  return info.Env().Undefined();
}

// discountedReturns(B, T, rewards, mask, returns, gamma, useCuda)
Napi::Value DiscountedReturns(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_gae_args a{};
  a.B = in.size("B");
  a.T = in.size("T");
  size_t n = mul_sizes(in.env(), a.B, a.T, "B*T");
  a.rewards = in.f32("rewards", n);
  a.values = nullptr;
  a.mask = in.mask("mask", n, &a.mask_kind);
  a.advantages = in.f32_out("returns", n);
  a.returns = nullptr;
  a.gamma = (float)in.finite("gamma");
  a.lambda = 1.0f;
  if (in.use_cuda()) RK_CUDA_CALL(in.env(), rk_cuda_gae, &a);
  else rk_cpu_gae(&a);
  return info.Env().Undefined();
}

// whiten(n, x, mask|null, y, shiftMean, eps, useCuda) → [count, mean, variance]; y is written
// only when count ≥ 2 (the wrapper raises otherwise).
Napi::Value Whiten(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_whiten_args a{};
  a.n = in.size("n");
  a.x = in.f32("x", a.n);
  a.mask = in.mask("mask", a.n, &a.mask_kind);
  a.y = in.f32_out("y", a.n);
  a.shift_mean = in.boolean("shiftMean") ? 1 : 0;
  double eps = in.finite("eps");
  if (eps < 0) in.range("eps", "a finite number >= 0");
  a.eps = (float)eps;
  double stats[3] = {0, 0, 0};
  a.stats = stats;
  if (in.use_cuda()) RK_CUDA_CALL(in.env(), rk_cuda_whiten, &a);
  else rk_cpu_whiten(&a);
  Napi::Array r = Napi::Array::New(info.Env(), 3);
  for (uint32_t i = 0; i < 3; ++i) r.Set(i, Napi::Number::New(info.Env(), stats[i]));
  return r;
}

// groupAdvantages(G, K, scores, baselines|null, advantages, method, eps, useCuda)
Napi::Value GroupAdvantages(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_group_adv_args a{};
  a.G = in.size("G");
  a.K = in.size("K");
  size_t n = mul_sizes(in.env(), a.G, a.K, "G*K");
  a.scores = in.f32("scores", n);
  a.baselines = in.f32_opt("baselines", n);
  a.advantages = in.f32_out("advantages", n);
  int64_t m = in.integer("method");
  if (m < RK_GROUP_GRPO || m > RK_GROUP_REMAX) in.range("method", "a method code 0..3");
  a.method = (int)m;
  if (a.method == RK_GROUP_REMAX && !a.baselines) in.fail_type("baselines", "a Float32Array (method remax)");
  if (a.method == RK_GROUP_RLOO && a.G > 0 && a.K < 2) in.range("K", "at least 2 for rloo");
  double eps = in.finite("eps");
  a.eps = (float)eps;
  if (in.use_cuda()) RK_CUDA_CALL(in.env(), rk_cuda_group_advantages, &a);
  else rk_cpu_group_advantages(&a);
  return info.Env().Undefined();
}

// ensembleRewards(E, B, scores, rewards, method, lambda, unbiased, useCuda)
Napi::Value EnsembleRewards(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_ensemble_args a{};
  a.E = in.size("E");
  a.B = in.size("B");
  size_t n = mul_sizes(in.env(), a.E, a.B, "E*B");
  if (a.E < 1 && a.B > 0) in.range("E", "at least 1");
  a.scores = in.f32("scores", n);
  a.rewards = in.f32_out("rewards", a.B);
  int64_t m = in.integer("method");
  if (m < RK_ENSEMBLE_MEAN || m > RK_ENSEMBLE_UWO) in.range("method", "a method code 0..2");
  a.method = (int)m;
  a.lambda = (float)in.finite("lambda");
  a.unbiased = in.boolean("unbiased") ? 1 : 0;
  if (a.method == RK_ENSEMBLE_UWO && a.unbiased && a.E < 2) in.range("E", "at least 2 for the unbiased variance");
  if (in.use_cuda()) RK_CUDA_CALL(in.env(), rk_cuda_ensemble_rewards, &a);
  else rk_cpu_ensemble_rewards(&a);
  return info.Env().Undefined();
}

// winRateRewards(G, K, preferences, rewards, useCuda)
Napi::Value WinRateRewards(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_win_rate_args a{};
  a.G = in.size("G");
  a.K = in.size("K");
  size_t gk = mul_sizes(in.env(), a.G, a.K, "G*K");
  size_t n = mul_sizes(in.env(), gk, a.K, "G*K*K");
  a.preferences = in.f32("preferences", n);
  a.rewards = in.f32_out("rewards", gk);
  if (in.use_cuda()) RK_CUDA_CALL(in.env(), rk_cuda_win_rate_rewards, &a);
  else rk_cpu_win_rate_rewards(&a);
  return info.Env().Undefined();
}

}  // namespace

void register_advantages(Napi::Env env, Napi::Object exports) {
  exports.Set("gae", Napi::Function::New(env, Gae, "gae"));
  exports.Set("discountedReturns", Napi::Function::New(env, DiscountedReturns, "discountedReturns"));
  exports.Set("whiten", Napi::Function::New(env, Whiten, "whiten"));
  exports.Set("groupAdvantages", Napi::Function::New(env, GroupAdvantages, "groupAdvantages"));
  exports.Set("ensembleRewards", Napi::Function::New(env, EnsembleRewards, "ensembleRewards"));
  exports.Set("winRateRewards", Napi::Function::New(env, WinRateRewards, "winRateRewards"));
}

}  // namespace rk_addon
