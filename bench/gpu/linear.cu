// GPU check and bench of the linear family (SPEC §8): the CUDA entry points against the CPU kernels
// on random inputs (f32 / f16 / bf16, D ∈ {1, 7, 33, 40, 64, 256}, V not a multiple of the 128-column
// tile or of the backward chunk, N = 1, ignored rows, all rows ignored, bias, temperature, the
// preference loss), then device-resident timings at the issue's size: N = 16384, D = 4096,
// V = 128256 bf16 — the fused forward, the GEMM alone (f32 logits), the backward — with TFLOP/s and
// the scratch of each call (the library pool's high-water mark, and our own formula), plus the CPU
// bench's N = 4096, D = 4096, V = 32000 f32 forward. The big forward is also checked against the CPU
// kernels on its first 48 rows. Compare with bench/gpu/torch_baselines.py's `linear` rows.
#include <cmath>

#include "../../cuda/linear.cuh"
#include "../../src/include/rk_device.h"
#include "gpu_bench.cuh"

namespace {

// Family of the timing rows: "linear" for the default GEMM kernels (v1), "linear (GEMM v2)" while
// the second generation's pass runs, so that the two sets of rows stay apart in the report.
const char* g_family = "linear";

uint16_t to16(float x, int dt) {
  if (dt == RK_DT_BF16) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  __half h = __float2half(x);
  return *reinterpret_cast<uint16_t*>(&h);
}

struct Host {
  std::vector<float> f;
  std::vector<uint16_t> h;
  const void* p(int dt) const { return dt == RK_DT_F32 ? (const void*)f.data() : (const void*)h.data(); }
};
Host make(rkg::Rand& g, size_t n, float scale, int dt) {
  Host x;
  x.f = g.floats(n, -scale, scale);
  if (dt != RK_DT_F32) {
    x.h.resize(n);
    for (size_t i = 0; i < n; ++i) x.h[i] = to16(x.f[i], dt);
  }
  return x;
}

const char* dt_name(int dt) { return dt == RK_DT_F32 ? "f32" : dt == RK_DT_F16 ? "f16" : "bf16"; }

void check_case(rkg::Reporter& r, rkg::Rand& g, size_t N, size_t V, size_t D, int dt, bool bias, size_t chunk, float tau, bool all_ignored) {
  char err[512] = {0};
  Host H = make(g, N * D, 2.0f, dt), W = make(g, V * D, 3.0f / std::sqrt((float)D), dt), Bv = make(g, V, 1.0f, RK_DT_F32);
  auto lab = g.ints(N, (int32_t)V);
  for (size_t i = 0; i < N; ++i)
    if (all_ignored || i % 5 == 3) lab[i] = -100;
  std::string what = std::string("linear ") + std::to_string(N) + "x" + std::to_string(V) + "x" + std::to_string(D) + " " + dt_name(dt) +
                     (bias ? " bias" : "") + (chunk ? " chunk=" + std::to_string(chunk) : "");
  std::vector<float> lp1(N), ls1(N), h1(N), lp2(N, NAN), ls2(N, NAN), h2(N, NAN);
  rk_linear_logprobs_args a{H.p(dt), W.p(dt), bias ? Bv.f.data() : nullptr, dt, lab.data(), N, V, D, chunk, tau, -100,
                            lp1.data(), ls1.data(), h1.data()};
  rk_cpu_linear_logprobs(&a);
  a.logp = lp2.data(); a.lse = ls2.data(); a.entropy = h2.data();
  r.check.status((what + " forward").c_str(), rk_cuda_linear_logprobs(&a, err, sizeof err), err);
  r.check.close((what + " logp").c_str(), lp2.data(), lp1.data(), N, 1e-4);
  r.check.close((what + " lse").c_str(), ls2.data(), ls1.data(), N, 1e-4);
  r.check.close((what + " entropy").c_str(), h2.data(), h1.data(), N, 1e-4);
  auto gl = g.floats(N, -1, 1), ge = g.floats(N, -1, 1);
  for (int mode = 0; mode < 3; ++mode) {  // 0: lse given; 1: + entropy gradient; 2: lse recomputed
    std::vector<float> gh1(N * D), gw1(V * D), gb1(V), gh2(N * D, NAN), gw2(V * D, NAN), gb2(V, NAN);
    rk_linear_logprobs_backward_args b{H.p(dt), W.p(dt), bias ? Bv.f.data() : nullptr, dt, lab.data(), N, V, D, chunk, tau, -100,
                                       gl.data(), mode == 1 ? ge.data() : nullptr, mode == 2 ? nullptr : ls1.data(),
                                       mode == 1 ? h1.data() : nullptr, gh1.data(), gw1.data(), bias ? gb1.data() : nullptr};
    rk_cpu_linear_logprobs_backward(&b);
    b.grad_hidden = gh2.data(); b.grad_weight = gw2.data(); b.grad_bias = bias ? gb2.data() : nullptr;
    const char* m = mode == 0 ? " (lse)" : mode == 1 ? " (entropy)" : " (recompute)";
    r.check.status((what + " backward" + m).c_str(), rk_cuda_linear_logprobs_backward(&b, err, sizeof err), err);
    r.check.close((what + " gradHidden" + m).c_str(), gh2.data(), gh1.data(), N * D, 1e-4);
    r.check.close((what + " gradWeight" + m).c_str(), gw2.data(), gw1.data(), V * D, 1e-4);
    if (bias) r.check.close((what + " gradBias" + m).c_str(), gb2.data(), gb1.data(), V, 1e-4);
  }
  if (N * V <= ((size_t)1 << 24)) {
    std::vector<float> l1(N * V), l2(N * V, NAN);
    rk_cpu_linear_logits(H.p(dt), W.p(dt), bias ? Bv.f.data() : nullptr, dt, N, V, D, 0, l1.data());
    r.check.status((what + " logits").c_str(), rk_cuda_linear_logits(H.p(dt), W.p(dt), bias ? Bv.f.data() : nullptr, dt, N, V, D, l2.data(), err, sizeof err), err);
    r.check.close((what + " logits").c_str(), l2.data(), l1.data(), N * V, 1e-5);
  }
}

void check_preference(rkg::Reporter& r, rkg::Rand& g, int type, int dt) {
  char err[512] = {0};
  const size_t B = 2, T = 6, V = 300, D = 64, R = 2 * B, N = R * T;
  Host H = make(g, N * D, 2.0f, dt), W = make(g, V * D, 0.4f, dt), Bv = make(g, V, 1.0f, RK_DT_F32);
  auto lab = g.ints(N, (int32_t)V);
  auto mask = g.mask(N, 0.8f);
  for (size_t row = 0; row < R; ++row) mask[row * T] = 1;
  auto ref = g.floats(R, -60, -20), prev = g.floats(R, -60, -20), explore = g.floats(B, -40, -10), prob = g.floats(B, 0, 1);
  std::vector<std::vector<float>> o1(7, std::vector<float>(B)), o2(7, std::vector<float>(B, NAN));
  std::vector<float> gh1(N * D), gw1(V * D), gb1(V), gh2(N * D, NAN), gw2(V * D, NAN), gb2(V, NAN);
  double s1[2], s2[2];
  rk_linear_preference_args a{};
  rk_fused_preference_args& f = a.f;
  f.labels = lab.data(); f.mask = mask.data(); f.mask_kind = RK_MASK_U8; f.B = B; f.T = T; f.V = V; f.temperature = 0.9f;
  f.ignore_index = -100; f.type = type; f.length_normalize = type == RK_PREF_IPO; f.p = {0.2f, 0.1f, 0.5f, 0.01f, 0.1f, 0.5f};
  const bool ref_free = type == RK_PREF_ORPO || type == RK_PREF_SIMPO;
  f.ref_logp = ref_free ? nullptr : ref.data();
  f.prev_logp = type == RK_PREF_INPO ? prev.data() : nullptr;
  f.policy_explore = type == RK_PREF_XPO ? explore.data() : nullptr;
  f.preference_prob = type == RK_PREF_DNO ? prob.data() : nullptr;
  auto outs = [&](std::vector<std::vector<float>>& o, double* sc) {
    f.losses = o[0].data(); f.grad_policy_chosen = o[1].data(); f.grad_policy_rejected = o[2].data(); f.chosen_rewards = o[3].data();
    f.rejected_rewards = o[4].data(); f.margins = o[5].data(); f.grad_extra = type == RK_PREF_XPO ? o[6].data() : nullptr; f.scalars = sc;
  };
  a.hidden = H.p(dt); a.weight = W.p(dt); a.bias = Bv.f.data(); a.dtype = dt; a.D = D; a.chunk = 128;
  outs(o1, s1);
  a.grad_hidden = gh1.data(); a.grad_weight = gw1.data(); a.grad_bias = gb1.data();
  rk_cpu_linear_preference_loss(&a);
  outs(o2, s2);
  a.grad_hidden = gh2.data(); a.grad_weight = gw2.data(); a.grad_bias = gb2.data();
  std::string what = std::string("linearPreferenceLoss type ") + std::to_string(type) + " " + dt_name(dt);
  r.check.status(what.c_str(), rk_cuda_linear_preference_loss(&a, err, sizeof err), err);
  for (int k = 0; k < (type == RK_PREF_XPO ? 7 : 6); ++k) r.check.close((what + " out" + std::to_string(k)).c_str(), o2[k].data(), o1[k].data(), B, 1e-4);
  float l1[2] = {(float)s1[0], (float)s1[1]}, l2[2] = {(float)s2[0], (float)s2[1]};
  r.check.close((what + " loss,acc").c_str(), l2, l1, 2, 1e-4);
  r.check.close((what + " gradHidden").c_str(), gh2.data(), gh1.data(), N * D, 1e-4);
  r.check.close((what + " gradWeight").c_str(), gw2.data(), gw1.data(), V * D, 1e-4);
  r.check.close((what + " gradBias").c_str(), gb2.data(), gb1.data(), V, 1e-4);
}

// The library pool's high-water mark of used bytes after fn (the launchers' scratch comes from
// that pool, cuda/device.cu; the mark is pool-wide and never lowered, so it shows this call's
// scratch when that is the largest so far: the linear cases run after the other families' small ones).
template <class F>
double pool_peak(F&& fn) {
  RKG_CHECK(cudaDeviceSynchronize());
  fn();
  RKG_CHECK(cudaDeviceSynchronize());
  rk_cuda_memory_stats st{};
  char err[256] = {0};
  if (rk_cuda_memory_stats_get(0, &st, err, sizeof err)) return NAN;
  return (double)st.used_high;
}

void bench_case(rkg::Reporter& r, size_t N, size_t V, size_t D, int dt, bool backward, bool check_rows) {
  const size_t es = dt == RK_DT_F32 ? 4 : 2;
  std::string size = std::to_string(N) + "x" + std::to_string(V) + "x" + std::to_string(D) + " " + dt_name(dt);
  rkg::Buf<char> h(N * D * es), w(V * D * es);
  if (dt == RK_DT_F32) { rkg::fill_uniform((float*)h.p, N * D, -2, 2, 11); rkg::fill_uniform((float*)w.p, V * D, -0.05f, 0.05f, 12); }
  else { rkg::fill_bf16((uint16_t*)h.p, N * D, -2, 2, 11); rkg::fill_bf16((uint16_t*)w.p, V * D, -0.05f, 0.05f, 12); }
  rkg::Buf<int32_t> labels(N);
  rkg::fill_int(labels.p, N, (int32_t)V, 13);
  rkg::Buf<float> logp(N), lse(N), ent(N), gl(N);
  rkg::fill_uniform(gl.p, N, -1, 1, 14);
  RKG_CHECK(cudaDeviceSynchronize());
  const double flops = 2.0 * N * V * D, in_bytes = (double)(N + V) * D * es;
  rk_linear_logprobs_args a{h.p, w.p, nullptr, dt, labels.p, N, V, D, 0, 1.0f, -100, logp.p, lse.p, nullptr};
  const double peak_f = pool_peak([&] { RKG_CHECK(rk_launch_linear_logprobs(a, 0)); });
  const int reps = N * V * D > ((size_t)1 << 40) ? 3 : 5;
  r.add(g_family, "linearLogprobs (fused fwd)", size, r.time([&] { rk_launch_linear_logprobs(a, 0); }, reps), in_bytes, flops);
  printf("linear %s: fused forward scratch: pool high-water mark %.1f MB, own formula %.1f MB (the f32 logits would be %.1f MB; inputs %.1f MB)\n",
         size.c_str(), peak_f / 1e6, rk_linear_cuda_scratch_bytes(N, N, V, D, dt, 0, 0) / 1e6, N * V * 4.0 / 1e6, in_bytes / 1e6);
  if (check_rows) {
    // the first rows against the CPU kernels (host copies of the device inputs)
    const size_t n = 48;
    std::vector<char> hh(n * D * es), hw(V * D * es);
    std::vector<int32_t> hl(n);
    std::vector<float> c1(n), c2(n), g1(n);
    RKG_CHECK(cudaMemcpy(hh.data(), h.p, hh.size(), cudaMemcpyDeviceToHost));
    RKG_CHECK(cudaMemcpy(hw.data(), w.p, hw.size(), cudaMemcpyDeviceToHost));
    RKG_CHECK(cudaMemcpy(hl.data(), labels.p, n * 4, cudaMemcpyDeviceToHost));
    RKG_CHECK(cudaMemcpy(g1.data(), logp.p, n * 4, cudaMemcpyDeviceToHost));
    rk_linear_logprobs_args c{hh.data(), hw.data(), nullptr, dt, hl.data(), n, V, D, 0, 1.0f, -100, c1.data(), c2.data(), nullptr};
    rk_cpu_linear_logprobs(&c);
    r.check.close(("linear big case logp (first 48 rows) " + size).c_str(), g1.data(), c1.data(), n, 1e-4);
  }
  if (dt == RK_DT_BF16) {
    rk_linear_logprobs_args ae = a;
    ae.entropy = ent.p;
    r.add(g_family, "linearLogprobs +entropy", size, r.time([&] { rk_launch_linear_logprobs(ae, 0); }, reps), in_bytes, flops);
  }
  {
    rkg::Buf<float> logits(N * V);
    const double peak_g = pool_peak([&] { RKG_CHECK(rk_launch_linear_logits(h.p, w.p, nullptr, dt, N, V, D, logits.p, 0)); });
    r.add(g_family, "GEMM alone (f32 logits out)", size, r.time([&] { rk_launch_linear_logits(h.p, w.p, nullptr, dt, N, V, D, logits.p, 0); }, reps),
          in_bytes + N * V * 4.0, flops);
    printf("linear %s: GEMM alone: pool high-water mark %.1f MB, + %.1f MB of logits\n", size.c_str(), peak_g / 1e6, N * V * 4.0 / 1e6);
  }
  if (!backward) return;
  rkg::Buf<float> gh(N * D), gw(V * D);
  rk_linear_logprobs_backward_args b{h.p, w.p, nullptr, dt, labels.p, N, V, D, 0, 1.0f, -100, gl.p, nullptr, lse.p, nullptr, gh.p, gw.p, nullptr};
  const double peak_b = pool_peak([&] { RKG_CHECK(rk_launch_linear_logprobs_backward(b, 0)); });
  // recompute + dZ·W + dZᵀ·h; bf16 runs the last two over the hi and lo planes (2× their flops)
  const double bflops = flops * (dt == RK_DT_BF16 ? 5 : 3);
  r.add(g_family, "linearLogprobsBackward (lse)", size, r.time([&] { rk_launch_linear_logprobs_backward(b, 0); }, 2),
        in_bytes + (N + V) * D * 4.0, bflops);
  printf("linear %s: backward scratch: pool high-water mark %.1f MB, own formula %.1f MB; %.0f TFLOP per call\n", size.c_str(),
         peak_b / 1e6, rk_linear_cuda_scratch_bytes(N, N, V, D, dt, 0, 1) / 1e6, bflops / 1e12);
}

}  // namespace

void gpu_bench_linear(rkg::Reporter& r) {
  struct C { size_t N, V, D; int dt; bool bias; size_t chunk; float tau; bool none; };
  static const C cases[] = {
      C{1, 7, 7, RK_DT_F32, false, 0, 1.0f, false},         C{1, 1, 1, RK_DT_BF16, true, 0, 1.0f, false},
      C{4, 50, 8, RK_DT_BF16, true, 0, 1.0f, true},         C{9, 300, 40, RK_DT_BF16, true, 128, 0.8f, false},
      C{9, 300, 33, RK_DT_F16, false, 128, 1.0f, false},    C{37, 1000, 64, RK_DT_F32, true, 256, 0.7f, false},
      C{150, 130, 64, RK_DT_BF16, true, 0, 1.0f, false},    C{300, 5003, 128, RK_DT_BF16, true, 1024, 1.0f, false},
      C{300, 5003, 128, RK_DT_F16, false, 0, 1.0f, false},  C{64, 32000, 256, RK_DT_BF16, true, 0, 1.0f, false},
      C{200, 777, 7, RK_DT_F32, false, 0, 1.3f, false}};
  // Both GEMM generations, the same checks and timings: the default (v1), then the opt-in second
  // generation (v2, RK_LINEAR_GEMM=v2), so one GPU run decides whether v2 may become the default.
  const int was = rk_linear_gemm_select(1);
  for (int gen : {1, 2}) {
    rk_linear_gemm_select(gen);
    g_family = gen == 1 ? "linear" : "linear (GEMM v2)";
    if (gen == 2) std::printf("linear: GEMM v2 (second generation) checks and rows follow\n");
    rkg::Rand g(40 + gen);
    for (const C& c : cases) check_case(r, g, c.N, c.V, c.D, c.dt, c.bias, c.chunk, c.tau, c.none);
    for (int type = 0; type < RK_PREF_NTYPES; ++type) check_preference(r, g, type, type % 2 ? RK_DT_F32 : RK_DT_BF16);
    bench_case(r, 16384, 128256, 4096, RK_DT_BF16, true, true);
    if (!r.quick) bench_case(r, 4096, 32000, 4096, RK_DT_F32, false, false);
  }
  rk_linear_gemm_select(was);
  g_family = "linear";
}
