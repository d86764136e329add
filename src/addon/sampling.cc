// N-API glue of the sampling family (SPEC §7). Native signatures: sizes first, then typed arrays
// (checked against them), then scalars, then the `useCuda` flag. speculativeVerify and
// rejectionSample return -1 when every row is valid, else 8·row + status of the first bad row
// (RK_SAMPLING_*), which the TypeScript wrapper turns into a RangeError.
#include "../include/rk_sampling.h"

#include "args.hpp"

namespace rk_addon {
namespace {

double first_bad(const int32_t* status, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (status[i] != RK_SAMPLING_OK) return 8.0 * (double)i + status[i];
  return -1.0;
}

// Runs a sampling op whose kernel writes a per-row status array of n entries (device memory for
// device calls, fetched after the kernel) and returns the first bad row's code.
template <class A>
Napi::Value run_with_status(Args& in, A& a, int32_t** status_field, size_t n, Kernels<A> k) {
  int32_t* host = in.host_scratch<int32_t>(n);
  *status_field = in.scratch<int32_t>(n);
  const int32_t* dev = *status_field;
  return in.run(a, k, [host, dev, n](CallState& c) { return c.fetch(host, dev, n * sizeof(int32_t)); },
                [host, n](Napi::Env env) { return Napi::Number::New(env, first_bad(host, n)); });
}

// speculativeVerify(B, K, V, draftTokens, draftProbs, targetProbs, uniforms, accepted, nextToken, useCuda) → code
Napi::Value SpeculativeVerify(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_speculative_verify_args a{};
  a.B = in.size("B");
  a.K = in.size("K");
  a.V = in.size("V");
  Napi::Env env = in.env();
  if (a.V == 0 || a.V > 2147483647u) in.range("V", "in [1, 2^31)");
  size_t BK = mul_sizes(env, a.B, a.K, "B*K");
  size_t BK1 = mul_sizes(env, a.B, a.K + 1, "B*(K+1)");
  a.draft_tokens = in.i32("draftTokens", BK);
  a.draft_probs = in.f32("draftProbs", mul_sizes(env, BK, a.V, "B*K*V"));
  a.target_probs = in.f32("targetProbs", mul_sizes(env, BK1, a.V, "B*(K+1)*V"));
  a.uniforms = in.f32("uniforms", BK1);
  a.accepted = in.i32_out("accepted", a.B);
  a.next_token = in.i32_out("nextToken", a.B);
  const int32_t* tok = in.peek_i32(a.draft_tokens, BK);
  for (size_t i = 0; i < BK; ++i)
    if (tok[i] < 0 || (size_t)tok[i] >= a.V) in.range("draftTokens", "token ids in [0, V)");
  in.use_cuda();
  return run_with_status(in, a, &a.status, a.B, RK_KERNELS(speculative_verify));
}

// specDecStop(B, K, acceptProbs, length, threshold, minLength, maxLength, useCuda) → first row
// with an invalid P̂ (length −1), or −1
Napi::Value SpecDecStop(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_spec_dec_stop_args a{};
  a.B = in.size("B");
  a.K = in.size("K");
  a.accept_probs = in.f32("acceptProbs", mul_sizes(in.env(), a.B, a.K, "B*K"));
  a.length = in.i32_out("length", a.B);
  a.threshold = in.finite("threshold");
  a.min_length = in.size("minLength");
  a.max_length = in.size("maxLength");
  in.use_cuda();
  int32_t* host = in.host_scratch<int32_t>(a.B);
  const int32_t* len = a.length;
  const size_t B = a.B;
  return in.run(a, RK_KERNELS(spec_dec_stop), [host, len, B](CallState& c) { return c.fetch(host, len, B * sizeof(int32_t)); },
                [host, B](Napi::Env env) {
                  for (size_t b = 0; b < B; ++b)
                    if (host[b] < 0) return Napi::Number::New(env, (double)b);
                  return Napi::Number::New(env, -1.0);
                });
}

// geometricMixture(N, V, logits, logitsDtype, refLogits, refDtype, logp, beta, useCuda): dtype
// codes come before their arrays so the arrays can be checked against them.
Napi::Value GeometricMixture(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_geometric_mixture_args a{};
  a.N = in.size("N");
  a.V = in.size("V");
  size_t n = mul_sizes(in.env(), a.N, a.V, "N*V");
  a.logits_dtype = (int)in.integer("logitsDtype");
  a.logits = in.logits("logits", n, a.logits_dtype);
  a.ref_dtype = (int)in.integer("refDtype");
  a.ref_logits = in.logits("refLogits", n, a.ref_dtype);
  a.logp = in.f32_out("logp", n);
  a.beta = (float)in.finite("beta");
  in.use_cuda();
  return in.run(a, RK_KERNELS(geometric_mixture));
}

// rejectionSample(G, K, numSamples, rewards, uniforms, selected, beta, useCuda) → code
Napi::Value RejectionSample(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_rejection_sample_args a{};
  Napi::Env env = in.env();
  a.G = in.size("G");
  a.K = in.size("K");
  a.num_samples = in.size("numSamples");
  if (a.num_samples < 1 || a.num_samples > a.K) in.range("numSamples", "an integer in [1, K]");
  size_t GK = mul_sizes(env, a.G, a.K, "G*K");
  a.rewards = in.f32("rewards", GK);
  a.uniforms = in.f32("uniforms", mul_sizes(env, GK, a.K, "G*K*K"));
  a.selected = in.i32_out("selected", mul_sizes(env, a.G, a.num_samples, "G*numSamples"));
  a.beta = in.finite("beta");
  if (!(a.beta > 0)) in.range("beta", "> 0");
  in.use_cuda();
  return run_with_status(in, a, &a.status, a.G, RK_KERNELS(rejection_sample));
}

}  // namespace

void register_sampling(Napi::Env env, Napi::Object exports) {
  reg(env, exports, "speculativeVerify", SpeculativeVerify);
  reg(env, exports, "specDecStop", SpecDecStop);
  reg(env, exports, "geometricMixture", GeometricMixture);
  reg(env, exports, "rejectionSample", RejectionSample);
}

}  // namespace rk_addon
