// N-API glue of the linear family: typed-array views → rk_linear_*_args → CPU or CUDA kernel.
// Sizes first, then arrays (checked against them), then scalars, then `useCuda` (and, for the
// loss, the trailing Float64Array of scalar results). Labels are range-checked here again
// (defence in depth: a label is an index into the weight rows).
#include "../include/rk_linear.h"

#include "../cpu/gemm.hpp"
#include "args.hpp"
#include "preference_args.hpp"

namespace rk_addon {
namespace {

int dtype(Args& in) {
  int64_t dt = in.integer("dtype");
  if (dt != RK_DT_F32 && dt != RK_DT_F16 && dt != RK_DT_BF16) in.range("dtype", "0 (f32), 1 (f16) or 2 (bf16)");
  return (int)dt;
}

size_t chunk(Args& in) {
  size_t c = in.size("chunk");
  if (c > ((size_t)1 << 31)) in.range("chunk", "at most 2^31 (0 = default)");
  return c;
}

struct Sizes {
  size_t N, V, D, ND, VD;
  int dtype;
};

// N, V, D, dtype (V ≥ 1, D ≥ 1)
Sizes sizes(Args& in) {
  Sizes s;
  s.N = in.size("N");
  s.V = in.size("V");
  s.D = in.size("D");
  if (s.V < 1) in.range("V", "at least 1");
  if (s.D < 1) in.range("D", "at least 1");
  s.ND = mul_sizes(in.env(), s.N, s.D, "N*D");
  s.VD = mul_sizes(in.env(), s.V, s.D, "V*D");
  s.dtype = dtype(in);
  return s;
}

// The arguments linearLogprobs and linearLogprobsBackward share, in their positional order: the
// sizes and inputs first (N, V, D, dtype, hidden, weight, bias|null, labels), the options last
// (temperature, ignoreIndex, chunk; then the labels are range-checked).
template <class A>
Sizes head(Args& in, A& a) {
  Sizes s = sizes(in);
  a.N = s.N;
  a.V = s.V;
  a.D = s.D;
  a.dtype = s.dtype;
  a.hidden = in.logits("hidden", s.ND, s.dtype);
  a.weight = in.logits("weight", s.VD, s.dtype);
  a.bias = in.f32_opt("bias", s.V);
  a.labels = in.i32("labels", s.N);
  return s;
}
template <class A>
void tail(Args& in, A& a) {
  a.temperature = temperature(in);
  a.ignore_index = ignore_index(in);
  a.chunk = chunk(in);
  check_labels(in, a.labels, a.N, a.V, a.ignore_index);
}

// linearLogprobs(N, V, D, dtype, hidden, weight, bias|null, labels, logp, lse, entropy|null,
//                temperature, ignoreIndex, chunk, useCuda)
Napi::Value LinearLogprobs(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_linear_logprobs_args a{};
  Sizes s = head(in, a);
  a.logp = in.f32_out("logp", s.N);
  a.lse = in.f32_out("lse", s.N);
  a.entropy = in.f32_out_opt("entropy", s.N);
  tail(in, a);
  in.use_cuda();
  return in.run(a, RK_KERNELS(linear_logprobs));
}

// linearLogprobsBackward(N, V, D, dtype, hidden, weight, bias|null, labels, gradLogp, gradEntropy|null,
//   lse|null, entropy|null, gradHidden, gradWeight, gradBias|null, temperature, ignoreIndex, chunk, useCuda)
Napi::Value LinearLogprobsBackward(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_linear_logprobs_backward_args a{};
  Sizes s = head(in, a);
  a.grad_logp = in.f32("gradLogp", s.N);
  a.grad_entropy = in.f32_opt("gradEntropy", s.N);
  a.lse = in.f32_opt("lse", s.N);
  a.entropy = in.f32_opt("entropy", s.N);
  a.grad_hidden = in.f32_out("gradHidden", s.ND);
  a.grad_weight = in.f32_out("gradWeight", s.VD);
  a.grad_bias = in.f32_out_opt("gradBias", s.V);
  tail(in, a);
  in.use_cuda();
  return in.run(a, RK_KERNELS(linear_logprobs_backward));
}

// linearPreferenceLoss(B, T, V, D, type, lengthNormalize, dtype, hidden, weight, bias|null, labels,
//   mask|null, refLogp|null, prevLogp|null, policyExplore|null, preferenceProb|null, gradHidden,
//   gradWeight, gradBias|null, losses, gc, gr, cr, rj, margins, gradExtra|null, beta, epsilon, eta,
//   alpha, tau, gamma, temperature, ignoreIndex, chunk, useCuda, scalars[2])
Napi::Value LinearPreferenceLoss(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_linear_preference_args a{};
  rk_fused_preference_args& f = a.f;
  f.B = in.size("B");
  f.T = in.size("T");
  f.V = in.size("V");
  a.D = in.size("D");
  if (f.V < 1) in.range("V", "at least 1");
  if (a.D < 1) in.range("D", "at least 1");
  f.type = pref_type(in);
  f.length_normalize = in.boolean("lengthNormalize") ? 1 : 0;
  a.dtype = dtype(in);
  const size_t N = mul_sizes(in.env(), mul_sizes(in.env(), 2, f.B, "2B"), f.T, "2B*T");
  const size_t ND = mul_sizes(in.env(), N, a.D, "2B*T*D"), VD = mul_sizes(in.env(), f.V, a.D, "V*D");
  a.hidden = in.logits("hidden", ND, a.dtype);
  a.weight = in.logits("weight", VD, a.dtype);
  a.bias = in.f32_opt("bias", f.V);
  read_fused_pref_inputs(in, f);
  a.grad_hidden = in.f32_out("gradHidden", ND);
  a.grad_weight = in.f32_out("gradWeight", VD);
  a.grad_bias = in.f32_out_opt("gradBias", f.V);
  read_fused_pref_outputs(in, f);
  read_fused_pref_options(in, f);
  if (!((float)f.temperature > 0) || !std::isfinite(1.0f / f.temperature)) in.range("temperature", "a finite number > 0");
  a.chunk = chunk(in);
  check_labels(in, f.labels, N, f.V, f.ignore_index, f.mask, f.mask_kind);
  in.use_cuda();
  f.scalars = in.f64_out_at(36, 2, "scalars");
  return in.run(a, RK_KERNELS(linear_preference_loss));
}

// linearLogits(N, V, D, dtype, hidden, weight, bias|null, logits, chunk, useCuda): the product alone
// (benchmarks: fused vs GEMM alone vs GEMM + logprobs). Host arrays only.
Napi::Value LinearLogits(const Napi::CallbackInfo& info) {
  Args in(info);
  Sizes s = sizes(in);
  const void* hidden = in.logits("hidden", s.ND, s.dtype);
  const void* weight = in.logits("weight", s.VD, s.dtype);
  const float* bias = in.f32_opt("bias", s.V);
  float* logits = in.f32_out("logits", mul_sizes(in.env(), s.N, s.V, "N*V"));
  size_t c = chunk(in);
  bool cuda = in.use_cuda();
  if (in.device_call()) in.fail_type("hidden", "a host array (linearLogits is a benchmark hook)");
  if (cuda) {
#ifdef RK_WITH_CUDA
    char err[512] = {0};
    if (rk_cuda_linear_logits(hidden, weight, bias, s.dtype, s.N, s.V, s.D, logits, err, sizeof err) != 0)
      throw Napi::Error::New(in.env(), std::string("rlhf-kernels cuda: ") + err);
#else
    throw Napi::Error::New(in.env(), kNoCuda);
#endif
  } else {
    rk_cpu_linear_logits(hidden, weight, bias, s.dtype, s.N, s.V, s.D, c, logits);
  }
  return info.Env().Undefined();
}

// linearScratchBytes(Na, V, D, chunk, backward): bytes a CPU call allocates beyond inputs/outputs.
Napi::Value LinearScratchBytes(const Napi::CallbackInfo& info) {
  Args in(info);
  size_t na = in.size("Na"), v = in.size("V"), d = in.size("D"), c = chunk(in);
  bool bw = in.boolean("backward");
  return Napi::Number::New(info.Env(), (double)rk_cpu_linear_scratch_bytes(na, v, d, c, bw ? 1 : 0));
}

// fmaPeakCpuTime(threads, width, seconds): FLOP/s per thread CPU-second of register-only FMA chains
// (the GEMM's yardstick; the bench's roof, module.cc's fmaPeak, is wall-clock at the pool's threads).
Napi::Value FmaPeakCpuTime(const Napi::CallbackInfo& info) {
  Args in(info);
  size_t t = in.size("threads");
  size_t w = in.size("width");
  double sec = in.finite("seconds");
  if (t < 1 || t > 64) in.range("threads", "in [1, 64]");
  if (w != 0 && w != 256 && w != 512) in.range("width", "0 (best), 256 or 512");
  if (!(sec > 0) || sec > 10) in.range("seconds", "in (0, 10]");
  return Napi::Number::New(info.Env(), rk::gemm::fma_peak((int)t, (int)w, sec));
}

}  // namespace

void register_linear(Napi::Env env, Napi::Object exports) {
  reg(env, exports, "linearLogprobs", LinearLogprobs);
  reg(env, exports, "linearLogprobsBackward", LinearLogprobsBackward);
  reg(env, exports, "linearPreferenceLoss", LinearPreferenceLoss);
  exports.Set("linearLogits", Napi::Function::New(env, LinearLogits, "linearLogits"));
  exports.Set("linearScratchBytes", Napi::Function::New(env, LinearScratchBytes, "linearScratchBytes"));
  exports.Set("fmaPeakCpuTime", Napi::Function::New(env, FmaPeakCpuTime, "fmaPeakCpuTime"));
}

}  // namespace rk_addon
