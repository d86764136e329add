// N-API glue of the logprobs family: typed-array views → rk_*_args → CPU or CUDA kernel.
// Sizes first, then arrays (checked against them), then scalars, then `useCuda`.
// Labels are range-checked here again (defence in depth: a label is an index into the logits).
#include "../include/rk_logprobs.h"

#include "args.hpp"

namespace rk_addon {
namespace {

struct Common {
  size_t N, V, NV;
  int dtype;
};

Common sizes(Args& in) {
  Common c;
  c.N = in.size("N");
  c.V = in.size("V");
  c.NV = mul_sizes(in.env(), c.N, c.V, "N*V");
  int64_t dt = in.integer("dtype");
  if (dt != RK_DT_F32 && dt != RK_DT_F16 && dt != RK_DT_BF16) in.range("dtype", "0 (f32), 1 (f16) or 2 (bf16)");
  c.dtype = (int)dt;
  return c;
}

// logprobs(N, V, dtype, logits, labels, logp, lse, entropy|null, temperature, ignoreIndex, useCuda)
Napi::Value Logprobs(const Napi::CallbackInfo& info) {
  Args in(info);
  Common c = sizes(in);
  rk_logprobs_args a{};
  a.N = c.N;
  a.V = c.V;
  a.dtype = c.dtype;
  a.logits = in.logits("logits", c.NV, c.dtype);
  a.labels = in.i32("labels", c.N);
  a.logp = in.f32_out("logp", c.N);
  a.lse = in.f32_out("lse", c.N);
  a.entropy = in.f32_out_opt("entropy", c.N);
  a.temperature = temperature(in);
  a.ignore_index = ignore_index(in);
  check_labels(in, a.labels, c.N, c.V, a.ignore_index);
  in.use_cuda();
  return in.run(a, RK_KERNELS(logprobs));
}

// logprobsBackward(N, V, dtype, logits, labels, gradLogp, gradEntropy|null, lse|null, gradLogits,
//                  temperature, ignoreIndex, useCuda)
Napi::Value LogprobsBackward(const Napi::CallbackInfo& info) {
  Args in(info);
  Common c = sizes(in);
  rk_logprobs_backward_args a{};
  a.N = c.N;
  a.V = c.V;
  a.dtype = c.dtype;
  a.logits = in.logits("logits", c.NV, c.dtype);
  a.labels = in.i32("labels", c.N);
  a.grad_logp = in.f32("gradLogp", c.N);
  a.grad_entropy = in.f32_opt("gradEntropy", c.N);
  a.lse = in.f32_opt("lse", c.N);
  a.grad_logits = in.f32_out("gradLogits", c.NV);
  a.temperature = temperature(in);
  a.ignore_index = ignore_index(in);
  check_labels(in, a.labels, c.N, c.V, a.ignore_index);
  in.use_cuda();
  return in.run(a, RK_KERNELS(logprobs_backward));
}

int direction(Args& in) {
  int64_t d = in.integer("direction");
  if (d != RK_KL_REVERSE && d != RK_KL_FORWARD) in.range("direction", "0 (reverse) or 1 (forward)");
  return (int)d;
}

// The arguments vocabKl and vocabKlBackward share, read in their positional order: the sizes,
// both logits tensors and the optional labels first (kl_head), the options last (kl_tail).
template <class A>
Common kl_head(Args& in, A& a) {
  Common c = sizes(in);
  a.N = c.N;
  a.V = c.V;
  a.dtype = c.dtype;
  a.logits = in.logits("logits", c.NV, c.dtype);
  a.ref_logits = in.logits("refLogits", c.NV, c.dtype);
  bool has = in.boolean("hasLabels");
  const int32_t* labels = in.i32("labels", has ? c.N : 0);
  a.labels = has ? labels : nullptr;
  return c;
}
template <class A>
void kl_tail(Args& in, const Common& c, A& a) {
  a.temperature = temperature(in);
  a.ignore_index = ignore_index(in);
  a.direction = direction(in);
  if (a.labels) check_labels(in, a.labels, c.N, c.V, a.ignore_index);
}

// vocabKl(N, V, dtype, logits, refLogits, hasLabels, labels, kl, temperature, ignoreIndex, direction, useCuda)
// (labels: an Int32Array of N elements, or of 0 when hasLabels is false)
Napi::Value VocabKl(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_vocab_kl_args a{};
  Common c = kl_head(in, a);
  a.kl = in.f32_out("kl", c.N);
  kl_tail(in, c, a);
  in.use_cuda();
  return in.run(a, RK_KERNELS(vocab_kl));
}

// vocabKlBackward(N, V, dtype, logits, refLogits, hasLabels, labels, gradKl, gradLogits, temperature,
//                 ignoreIndex, direction, useCuda)
Napi::Value VocabKlBackward(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_vocab_kl_backward_args a{};
  Common c = kl_head(in, a);
  a.grad_kl = in.f32("gradKl", c.N);
  a.grad_logits = in.f32_out("gradLogits", c.NV);
  kl_tail(in, c, a);
  in.use_cuda();
  return in.run(a, RK_KERNELS(vocab_kl_backward));
}

// sequenceLogprobs(B, T, logp, mask, sum, count, average, useCuda)
Napi::Value SequenceLogprobs(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_sequence_logprobs_args a{};
  a.B = in.size("B");
  a.T = in.size("T");
  size_t n = mul_sizes(in.env(), a.B, a.T, "B*T");
  a.logp = in.f32("logp", n);
  a.mask = in.mask("mask", n, &a.mask_kind);
  if (a.mask_kind == RK_MASK_NONE) in.fail_type("mask", "a Uint8Array or Float32Array");
  a.sum = in.f32_out("sum", a.B);
  a.count = in.i32_out("count", a.B);
  a.average = in.boolean("average") ? 1 : 0;
  in.use_cuda();
  return in.run(a, RK_KERNELS(sequence_logprobs));
}

}  // namespace

void register_logprobs(Napi::Env env, Napi::Object exports) {
  reg(env, exports, "logprobs", Logprobs);
  reg(env, exports, "logprobsBackward", LogprobsBackward);
  reg(env, exports, "vocabKl", VocabKl);
  reg(env, exports, "vocabKlBackward", VocabKlBackward);
  reg(env, exports, "sequenceLogprobs", SequenceLogprobs);
}

}  // namespace rk_addon
