// Module init: the backend-info functions and every op family's functions.
#include <napi.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "../core/common.hpp"
#include "../core/logprobs.hpp"
#include "../cpu/pool.hpp"
#include "../cpu/simd.hpp"
#include "args.hpp"
#include "device.hpp"

namespace rk_addon {
namespace {

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("simd", rk::isa_name(rk::isa()));
  o.Set("simdDetected", rk::isa_name(rk::detected_isa()));
  o.Set("threads", rk::num_threads());
  Napi::Object cuda = Napi::Object::New(env);
  Napi::Array devices = Napi::Array::New(env);
#ifdef RK_WITH_CUDA
  cuda.Set("compiled", true);
  int count = 0;
  char err[512] = {0};
  if (rk_cuda_device_count(&count, err, sizeof err) != 0) {
    cuda.Set("error", std::string(err));
    count = 0;
  }
  for (int i = 0; i < count; ++i) {
    char name[256] = {0};
    size_t mem = 0;
    rk_cuda_device_info(i, name, sizeof name, &mem);
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", std::string(name));
    d.Set("memory", (double)mem);
    devices.Set((uint32_t)i, d);
  }
  cuda.Set("deviceCount", count);
#else
  cuda.Set("compiled", false);
  cuda.Set("deviceCount", 0);
  cuda.Set("error", "the addon was built without CUDA (run npm run build:cuda)");
#endif
  cuda.Set("devices", devices);
  o.Set("cuda", cuda);
  return o;
}

Napi::Value SetSimd(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "setSimd: expected 'avx512' | 'avx2' | 'scalar'");
  std::string s = info[0].As<Napi::String>().Utf8Value();
  if (s == "avx512") rk::force_isa(rk::Isa::avx512);
  else if (s == "avx2") rk::force_isa(rk::Isa::avx2);
  else if (s == "scalar") rk::force_isa(rk::Isa::scalar);
  else throw Napi::RangeError::New(info.Env(), "setSimd: expected 'avx512' | 'avx2' | 'scalar'");
  return Napi::String::New(info.Env(), rk::isa_name(rk::isa()));
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t n = a.size("threads");
  if (n < 1 || n > 64) a.range("threads", "an integer in [1, 64]");
  rk::set_num_threads((int)n);
  return Napi::Number::New(info.Env(), rk::num_threads());
}

// Memory-copy bandwidth (bytes read + written per second) over `bytes`-sized buffers with the
// pool's threads, best of `reps`. The bench's yardstick for "fraction of the machine's bandwidth".
Napi::Value CopyBandwidth(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t bytes = a.size("bytes");
  size_t reps = a.size("reps");
  if (bytes < 4096 || bytes > ((size_t)1 << 31)) a.range("bytes", "in [4096, 2^31]");
  if (reps > 1000) a.range("reps", "at most 1000");
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  double best = 1e30;
  for (size_t r = 0; r < reps + 1; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    rk::parallel_for(bytes / 4096, 64, [&](size_t b, size_t e) {
      std::memcpy(dst.data() + b * 4096, src.data() + b * 4096, (e - b) * 4096);
    });
    auto t1 = std::chrono::steady_clock::now();
    double s = std::chrono::duration<double>(t1 - t0).count();
    if (r > 0 && s < best) best = s;  // first pass warms the pages
  }
  return Napi::Number::New(info.Env(), 2.0 * (double)bytes / best);
}

// FMA peak (FLOP/s) at the current SIMD level with the pool's threads: the bench's compute roof.
Napi::Value FmaPeak(const Napi::CallbackInfo& info) {
  Args a(info);
  size_t iters = a.size("iters");
  size_t reps = a.size("reps");
  if (iters < 1 || iters > ((size_t)1 << 30)) a.range("iters", "in [1, 2^30]");
  if (reps < 1 || reps > 1000) a.range("reps", "in [1, 1000]");
  return Napi::Number::New(info.Env(), rk::fma_peak(iters, (int)reps));
}

// Test hook: evaluates one of core/common.hpp's scalar functions elementwise (x → out), so the
// vectorisable exp/log/softplus/sigmoid used by every kernel are checked against libm in tests.
Napi::Value CoreMath(const Napi::CallbackInfo& info) {
  if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "coreMath: fn must be a string");
  std::string fn = info[0].As<Napi::String>().Utf8Value();
  Napi::Value xv = info[1];
  if (!xv.IsTypedArray() || xv.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), "coreMath: x must be a Float32Array");
  Napi::Float32Array x = xv.As<Napi::Float32Array>();
  Napi::Float32Array out = Napi::Float32Array::New(info.Env(), x.ElementLength());
  float (*f)(float) = nullptr;
  if (fn == "exp") f = [](float v) { return rk::expf_(v); };
  else if (fn == "log") f = [](float v) { return rk::logf_(v); };
  else if (fn == "log1p") f = [](float v) { return rk::log1pf_(v); };
  else if (fn == "softplus") f = [](float v) { return rk::softplusf(v); };
  else if (fn == "sigmoid") f = [](float v) { return rk::sigmoidf(v); };
  else throw Napi::RangeError::New(info.Env(), "coreMath: unknown function");
  for (size_t i = 0; i < x.ElementLength(); ++i) out[i] = f(x[i]);
  return out;
}

// Test hook: one logprobs row through the per-thread math of the CUDA kernels (core/logprobs.hpp
// lse_push_k, lse_merge, lse_finish, lp_grad), on the host, in the CUDA kernels' order: G threads
// each push 4-element vectors k ≡ t (mod G) and then the scalar tail, a butterfly merge (as the
// warp shuffles do), then the label's logp, lse, entropy and the row's gradient (the kernels'
// entropy-free gradient when gradEntropy is 0).
// coreLogprobsRow(x: Float32Array, label, invT, G, gradLogp, gradEntropy) →
//   Float32Array [logp, lse, entropy, grad_0 … grad_{V−1}]
Napi::Value CoreLogprobsRow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(env, "coreLogprobsRow: x must be a Float32Array");
  for (int i = 1; i < 6; ++i)
    if (!info[i].IsNumber()) throw Napi::TypeError::New(env, "coreLogprobsRow: numbers expected");
  Napi::Float32Array x = info[0].As<Napi::Float32Array>();
  size_t V = x.ElementLength();
  double yd = info[1].As<Napi::Number>().DoubleValue();
  int G = info[3].As<Napi::Number>().Int32Value();
  if (V == 0 || !(yd >= 0) || yd >= (double)V || yd != (double)(size_t)yd || G < 1 || G > 1024 || (G & (G - 1)))
    throw Napi::RangeError::New(env, "coreLogprobsRow: need V > 0, 0 <= label < V, G a power of two <= 1024");
  size_t y = (size_t)yd;
  float inv_t = info[2].As<Napi::Number>().FloatValue();
  float gl = info[4].As<Napi::Number>().FloatValue(), ge = info[5].As<Napi::Number>().FloatValue();
  const float* p = x.Data();
  std::vector<rk::LseStats> st((size_t)G, rk::lse_empty());
  size_t nv = V / 4;
  for (int t = 0; t < G; ++t) {
    for (size_t k = (size_t)t; k < nv; k += (size_t)G) {
      float z[4];
      for (int i = 0; i < 4; ++i) z[i] = p[4 * k + i] * inv_t;
      rk::lse_push_k<true, 4>(st[(size_t)t], z);
    }
    for (size_t j = 4 * nv + (size_t)t; j < V; j += (size_t)G) {
      float z = p[j] * inv_t;
      rk::lse_push_k<true, 1>(st[(size_t)t], &z);
    }
  }
  for (int off = G / 2; off > 0; off >>= 1) {
    std::vector<rk::LseStats> nx(st);
    for (int t = 0; t < G; ++t) nx[(size_t)t] = rk::lse_merge<true>(st[(size_t)t], st[(size_t)(t ^ off)]);
    st.swap(nx);
  }
  rk::LpOut o = rk::lse_finish(st[0], p[y] * inv_t);
  Napi::Float32Array out = Napi::Float32Array::New(env, 3 + V);
  out[0] = o.logp;
  out[1] = o.lse;
  out[2] = o.entropy;
  for (size_t j = 0; j < V; ++j) {
    float d = p[j] * inv_t - o.lse;
    float g = ge != 0.0f ? rk::lp_grad<true>(d, gl, ge, o.entropy, inv_t) : rk::lp_grad<false>(d, gl, 0.0f, 0.0f, inv_t);
    out[3 + j] = j == y ? g + gl * inv_t : g;
  }
  return out;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  register_device(env, exports);  // first: creates the per-instance state
  reg(env, exports, "coreMath", CoreMath);
  reg(env, exports, "coreLogprobsRow", CoreLogprobsRow);
  reg(env, exports, "info", Info);
  reg(env, exports, "setSimd", SetSimd);
  reg(env, exports, "setThreads", SetThreads);
  reg(env, exports, "copyBandwidth", CopyBandwidth);
  reg(env, exports, "fmaPeak", FmaPeak);
  register_rewards(env, exports);
  register_advantages(env, exports);
  register_logprobs(env, exports);
  register_preference(env, exports);
  register_ppo(env, exports);
  register_prepack(env, exports);
  register_sampling(env, exports);
  register_linear(env, exports);
  return exports;
}

}  // namespace rk_addon

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return rk_addon::Init(env, exports); }
NODE_API_MODULE(rlhf_kernels, InitModule)
