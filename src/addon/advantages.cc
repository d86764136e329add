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
  in.use_cuda();
  return in.run(a, RK_KERNELS(gae));
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
  in.use_cuda();
  return in.run(a, RK_KERNELS(gae));
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
  double* stats = in.host_scratch<double>(3);
  in.use_cuda();
  a.stats = in.scratch<double>(3);  // device memory for device calls: fetched after the kernel
  const double* dstats = a.stats;
  return in.run(a, RK_KERNELS(whiten), [stats, dstats](CallState& c) { return c.fetch(stats, dstats, 3 * sizeof(double)); },
                [stats](Napi::Env env) {
                  Napi::Array r = Napi::Array::New(env, 3);
                  for (uint32_t i = 0; i < 3; ++i) r.Set(i, Napi::Number::New(env, stats[i]));
                  return r;
                });
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
  in.use_cuda();
  return in.run(a, RK_KERNELS(group_advantages));
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
  in.use_cuda();
  return in.run(a, RK_KERNELS(ensemble_rewards));
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
  in.use_cuda();
  return in.run(a, RK_KERNELS(win_rate_rewards));
}

}  // namespace

void register_advantages(Napi::Env env, Napi::Object exports) {
  reg(env, exports, "gae", Gae);
  reg(env, exports, "discountedReturns", DiscountedReturns);
  reg(env, exports, "whiten", Whiten);
  reg(env, exports, "groupAdvantages", GroupAdvantages);
  reg(env, exports, "ensembleRewards", EnsembleRewards);
  reg(env, exports, "winRateRewards", WinRateRewards);
}

}  // namespace rk_addon
