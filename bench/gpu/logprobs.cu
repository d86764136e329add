// GPU check and bench of the logprobs family: the CUDA entry points against the CPU kernels on
// random inputs (every dtype, short/long rows, the split-V path, ignored rows, −inf logits),
// then device-resident timings at the issue's sizes (bf16 N=16384, V=128256 forward and backward).
#include <cmath>

#include "../../cuda/logprobs.cuh"
#include "gpu_bench.cuh"

namespace {

uint16_t to_bf16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
uint16_t to_f16(float x) {
  __half h = __float2half(x);
  return *reinterpret_cast<uint16_t*>(&h);
}

struct HostLogits {
  std::vector<float> f;
  std::vector<uint16_t> h;
  const void* ptr(int dt) const { return dt == RK_DT_F32 ? (const void*)f.data() : (const void*)h.data(); }
};

HostLogits make_logits(rkg::Rand& g, size_t n, int dt, float scale, size_t V) {
  HostLogits L;
  L.f = g.floats(n, -scale, scale);
  for (size_t i = 0; i < n; i += 97) L.f[i] = -INFINITY;  // padded-vocabulary entries
  if (V > 1)
    for (size_t i = 0; i < n; i += V * 5) L.f[i + 1] = -INFINITY;
  if (dt != RK_DT_F32) {
    L.h.resize(n);
    for (size_t i = 0; i < n; ++i) L.h[i] = dt == RK_DT_BF16 ? to_bf16(L.f[i]) : to_f16(L.f[i]);
  }
  return L;
}

void check_logprobs(rkg::Reporter& r) {
  rkg::Rand g(23);
  char err[512] = {0};
  struct Shape { size_t N, V; };
  for (Shape sh : {Shape{1, 1}, {5, 7}, {33, 1000}, {7, 4099}, {64, 32000}, {2, 152064}, {3, 262147}}) {
    for (int dt : {RK_DT_F32, RK_DT_F16, RK_DT_BF16}) {
      size_t N = sh.N, V = sh.V, n = N * V;
      HostLogits L = make_logits(g, n, dt, dt == RK_DT_F16 ? 30.0f : 50.0f, V);
      HostLogits R = make_logits(g, n, dt, 20.0f, V);
      auto labels = g.ints(N, (int32_t)V);
      for (size_t i = 0; i < N; i += 4) labels[i] = -100;
      for (size_t i = 0; i < N; ++i)
        if (labels[i] != -100 && std::isinf(L.f[i * V + labels[i]])) labels[i] = -100;
      std::vector<float> lp1(N), ls1(N), h1(N), lp2(N), ls2(N), h2(N);
      rk_logprobs_args a{L.ptr(dt), dt, labels.data(), N, V, 0.8f, -100, lp1.data(), ls1.data(), h1.data()};
      rk_cpu_logprobs(&a);
      a.logp = lp2.data(); a.lse = ls2.data(); a.entropy = h2.data();
      r.check.status("logprobs", rk_cuda_logprobs(&a, err, sizeof err), err);
      r.check.close("logprobs/logp", lp2.data(), lp1.data(), N, 1e-4);
      r.check.close("logprobs/lse", ls2.data(), ls1.data(), N, 1e-4);
      r.check.close("logprobs/entropy", h2.data(), h1.data(), N, 1e-4);
      auto gl = g.floats(N, -1, 1), ge = g.floats(N, -1, 1);
      std::vector<float> g1(n), g2(n);
      for (int mode = 0; mode < 3; ++mode) {
        rk_logprobs_backward_args b{L.ptr(dt), dt, labels.data(), N, V, gl.data(), mode == 2 ? ge.data() : nullptr,
                                    mode == 1 ? ls1.data() : nullptr, 0.8f, -100, g1.data()};
        rk_cpu_logprobs_backward(&b);
        b.grad_logits = g2.data();
        r.check.status("logprobsBackward", rk_cuda_logprobs_backward(&b, err, sizeof err), err);
        r.check.close(mode == 0 ? "logprobsBackward" : mode == 1 ? "logprobsBackward(lse)" : "logprobsBackward(entropy)", g2.data(),
                      g1.data(), n, 1e-4);
      }
      if (V > 40000) continue;
      for (int dir : {RK_KL_REVERSE, RK_KL_FORWARD}) {
        std::vector<float> k1(N), k2(N);
        rk_vocab_kl_args k{L.ptr(dt), R.ptr(dt), dt, labels.data(), N, V, 1.25f, -100, dir, k1.data()};
        rk_cpu_vocab_kl(&k);
        k.kl = k2.data();
        r.check.status("vocabKl", rk_cuda_vocab_kl(&k, err, sizeof err), err);
        r.check.close("vocabKl", k2.data(), k1.data(), N, 1e-4);
        auto gk = g.floats(N, -1, 1);
        rk_vocab_kl_backward_args kb{L.ptr(dt), R.ptr(dt), dt, labels.data(), N, V, 1.25f, -100, dir, gk.data(), g1.data()};
        rk_cpu_vocab_kl_backward(&kb);
        kb.grad_logits = g2.data();
        r.check.status("vocabKlBackward", rk_cuda_vocab_kl_backward(&kb, err, sizeof err), err);
        r.check.close("vocabKlBackward", g2.data(), g1.data(), n, 1e-4);
      }
    }
  }
  // many short rows (grid-stride over rows), and sequenceLogprobs
  {
    size_t N = 3000000, V = 3;
    HostLogits L = make_logits(g, N * V, RK_DT_F32, 5.0f, V);
    auto labels = g.ints(N, 3);
    for (size_t i = 0; i < N; ++i)
      if (std::isinf(L.f[i * V + labels[i]])) labels[i] = -100;
    std::vector<float> a1(N), b1(N), a2(N), b2(N);
    rk_logprobs_args a{L.f.data(), RK_DT_F32, labels.data(), N, V, 1.0f, -100, a1.data(), b1.data(), nullptr};
    rk_cpu_logprobs(&a);
    a.logp = a2.data(); a.lse = b2.data();
    r.check.status("logprobs(3M rows)", rk_cuda_logprobs(&a, err, sizeof err), err);
    r.check.close("logprobs/logp (3M rows)", a2.data(), a1.data(), N, 1e-4);
  }
  {
    size_t B = 37, T = 1031;
    auto lp = g.floats(B * T, -5, 0);
    auto m = g.mask(B * T, 0.7f);
    std::vector<float> s1(B), s2(B);
    std::vector<int32_t> c1(B), c2(B);
    for (int avg : {0, 1}) {
      rk_sequence_logprobs_args q{lp.data(), m.data(), RK_MASK_U8, B, T, avg, s1.data(), c1.data()};
      rk_cpu_sequence_logprobs(&q);
      q.sum = s2.data(); q.count = c2.data();
      r.check.status("sequenceLogprobs", rk_cuda_sequence_logprobs(&q, err, sizeof err), err);
      r.check.close("sequenceLogprobs", s2.data(), s1.data(), B, 1e-4);
      r.check.equal_i32("sequenceLogprobs/count", c2.data(), c1.data(), B);
    }
  }
}

}  // namespace

void gpu_bench_logprobs(rkg::Reporter& r) {
  check_logprobs(r);
  struct Case { size_t N, V; int dt; const char* name; };
  for (Case c : {Case{16384, 128256, RK_DT_BF16, "bf16"}, Case{4096, 32000, RK_DT_F32, "f32"}, Case{4, 262144, RK_DT_BF16, "bf16"}}) {
    if (r.quick && c.N == 4096) continue;
    size_t N = c.N, V = c.V, n = N * V, es = c.dt == RK_DT_F32 ? 4 : 2;
    rkg::Buf<uint16_t> h(c.dt == RK_DT_F32 ? 1 : n);
    rkg::Buf<float> f(c.dt == RK_DT_F32 ? n : 1);
    const void* logits = c.dt == RK_DT_F32 ? (const void*)f.p : (const void*)h.p;
    if (c.dt == RK_DT_F32) rkg::fill_uniform(f.p, n, -4, 4, 1);
    else rkg::fill_bf16(h.p, n, -4, 4, 1);
    rkg::Buf<int32_t> labels(N);
    rkg::fill_int(labels.p, N, (int32_t)V, 2);
    rkg::Buf<float> logp(N), lse(N), ent(N), gl(N), ge(N);
    rkg::fill_uniform(gl.p, N, -1, 1, 3);
    rkg::fill_uniform(ge.p, N, -1, 1, 4);
    std::string size = std::to_string(N) + "x" + std::to_string(V) + " " + c.name;
    rk_logprobs_args a{logits, c.dt, labels.p, N, V, 1.0f, -100, logp.p, lse.p, nullptr};
    r.add("logprobs", "logprobs", size, r.time([&] { rk_launch_logprobs(a, 0); }), n * es + N * 12.0);
    rk_logprobs_args ae = a;
    ae.entropy = ent.p;
    r.add("logprobs", "logprobs+entropy", size, r.time([&] { rk_launch_logprobs(ae, 0); }), n * es + N * 16.0);
    if (N * V * 4 > ((size_t)40 << 30)) continue;
    rkg::Buf<float> grad(n);
    rk_logprobs_backward_args b{logits, c.dt, labels.p, N, V, gl.p, nullptr, lse.p, 1.0f, -100, grad.p};
    r.add("logprobs", "logprobsBackward(lse)", size, r.time([&] { rk_launch_logprobs_backward(b, 0); }, 10), n * (es + 4.0) + N * 12.0);
    rk_logprobs_backward_args be = b;
    be.grad_entropy = ge.p;
    r.add("logprobs", "logprobsBackward(entropy)", size, r.time([&] { rk_launch_logprobs_backward(be, 0); }, 10),
          n * (es + 4.0) + N * 16.0);
    if (c.N == 4096) {
      rkg::Buf<float> ref(n), kl(N);
      rkg::fill_uniform(ref.p, n, -4, 4, 5);
      rk_vocab_kl_args k{logits, ref.p, c.dt, labels.p, N, V, 1.0f, -100, RK_KL_REVERSE, kl.p};
      r.add("logprobs", "vocabKl(reverse)", size, r.time([&] { rk_launch_vocab_kl(k, 0); }), n * 8.0 + N * 8.0);
    }
  }
}
