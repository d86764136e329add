// GPU bench of the sampling family: device-resident inputs at the sizes of bench/sampling.bench.ts.
#include "../../cuda/sampling.cuh"
#include "gpu_bench.cuh"

#include <cstring>
#include <tuple>

namespace {
// Rows of a [rows, V] buffer of uniforms in [0, 1) turned into (unnormalised, positive) weights:
// speculativeVerify normalises the residual itself, and accept ratios stay around 1.
__global__ void k_positive(float* p, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    p[i] = 1e-6f + p[i] * (1.0f / 32000.0f);
}
}  // namespace

// CUDA entry points vs the CPU kernels (same args, host pointers). Integer outputs must be equal.
static void check_sampling(rkg::Reporter& r) {
  rkg::Rand g(21);
  char err[512] = {0};
  for (auto [B, K, V] : {std::tuple<size_t, size_t, size_t>{1, 0, 1}, {3, 2, 5}, {17, 4, 1031}, {9, 8, 32000}, {5, 3, 70001}}) {
    std::vector<float> q = g.floats(B * K * V, 0, 1), p = g.floats(B * (K + 1) * V, 0, 1), u = g.floats(B * (K + 1), 0, 0.999f);
    for (size_t i = 0; i < q.size(); i += 3) q[i] = 0.0f;  // exact zeros in the rows
    std::vector<int32_t> tok = g.ints(B * K, (int32_t)V);
    std::vector<int32_t> a1(B), n1(B), s1(B), a2(B), n2(B), s2(B);
    rk_speculative_verify_args a{tok.data(), q.data(), p.data(), u.data(), B, K, V, a1.data(), n1.data(), s1.data()};
    rk_cpu_speculative_verify(&a);
    a.accepted = a2.data(); a.next_token = n2.data(); a.status = s2.data();
    r.check.status("speculativeVerify", rk_cuda_speculative_verify(&a, err, sizeof err), err);
    r.check.equal_i32("sampling/speculativeVerify accepted", a2.data(), a1.data(), B);
    r.check.equal_i32("sampling/speculativeVerify nextToken", n2.data(), n1.data(), B);
    r.check.equal_i32("sampling/speculativeVerify status", s2.data(), s1.data(), B);
  }
  for (auto [N, V] : {std::pair<size_t, size_t>{1, 1}, {3, 17}, {37, 1031}, {8, 32000}, {4, 40000}}) {
    size_t n = N * V;
    std::vector<float> z = g.floats(n, -8, 8), zr = g.floats(n, -8, 8), c1(n), c2(n);
    std::vector<uint16_t> zb(n);
    for (size_t i = 0; i < n; ++i) { uint32_t bits; memcpy(&bits, &z[i], 4); zb[i] = (uint16_t)(bits >> 16); }
    for (int dz : {RK_DT_F32, RK_DT_BF16}) {
      rk_geometric_mixture_args a{dz == RK_DT_F32 ? (const void*)z.data() : (const void*)zb.data(), dz, zr.data(), RK_DT_F32, N, V, 0.3f, c1.data()};
      rk_cpu_geometric_mixture(&a);
      a.logp = c2.data();
      r.check.status("geometricMixture", rk_cuda_geometric_mixture(&a, err, sizeof err), err);
      r.check.close(dz == RK_DT_F32 ? "sampling/geometricMixture f32" : "sampling/geometricMixture bf16", c2.data(), c1.data(), n, 5e-5);
    }
  }
  for (auto [G, K, m] : {std::tuple<size_t, size_t, size_t>{1, 1, 1}, {7, 5, 3}, {1024, 16, 16}, {33, 40, 7}}) {
    std::vector<float> rw = g.floats(G * K, -2, 2), u = g.floats(G * K * K, 0, 0.999f);
    std::vector<int32_t> s1(G * m), s2(G * m), t1(G), t2(G);
    rk_rejection_sample_args a{rw.data(), u.data(), G, K, m, 0.7, s1.data(), t1.data()};
    rk_cpu_rejection_sample(&a);
    a.selected = s2.data(); a.status = t2.data();
    r.check.status("rejectionSample", rk_cuda_rejection_sample(&a, err, sizeof err), err);
    r.check.equal_i32("sampling/rejectionSample", s2.data(), s1.data(), G * m);
  }
  {
    size_t B = 300, K = 12;
    std::vector<float> P = g.floats(B * K, 0.5f, 1.0f);
    std::vector<int32_t> l1(B), l2(B);
    rk_spec_dec_stop_args a{P.data(), B, K, 0.3, 2, 9, l1.data()};
    rk_cpu_spec_dec_stop(&a);
    a.length = l2.data();
    r.check.status("specDecStop", rk_cuda_spec_dec_stop(&a, err, sizeof err), err);
    r.check.equal_i32("sampling/specDecStop", l2.data(), l1.data(), B);
  }
}

void gpu_bench_sampling(rkg::Reporter& r) {
  check_sampling(r);
  {
    const size_t N = r.quick ? 1024 : 4096, V = 32000, n = N * V;
    rkg::Buf<float> z(n), zr(n), out(n);
    rkg::fill_uniform(z.p, n, -4, 4, 1);
    rkg::fill_uniform(zr.p, n, -4, 4, 2);
    std::string size = std::to_string(N) + "x" + std::to_string(V);
    rk_geometric_mixture_args a{z.p, RK_DT_F32, zr.p, RK_DT_F32, N, V, 0.5f, out.p};
    r.add("sampling", "geometricMixture(f32)", size, r.time([&] { rk_launch_geometric_mixture(a, 0); }), n * 12.0);
    rkg::Buf<uint16_t> zb(n), zrb(n);
    rkg::fill_bf16(zb.p, n, -4, 4, 3);
    rkg::fill_bf16(zrb.p, n, -4, 4, 4);
    rk_geometric_mixture_args b{zb.p, RK_DT_BF16, zrb.p, RK_DT_BF16, N, V, 0.5f, out.p};
    r.add("sampling", "geometricMixture(bf16)", size, r.time([&] { rk_launch_geometric_mixture(b, 0); }), n * 8.0);
    // a vocabulary above the register-cached limit (32768): the re-reading path
    const size_t N2 = N / 4, V2 = 128000, n2 = N2 * V2;
    if (n2 <= n) {
      rk_geometric_mixture_args c{z.p, RK_DT_F32, zr.p, RK_DT_F32, N2, V2, 0.5f, out.p};
      r.add("sampling", "geometricMixture(f32)", std::to_string(N2) + "x" + std::to_string(V2),
            r.time([&] { rk_launch_geometric_mixture(c, 0); }), n2 * 12.0);
    }
  }
  {
    const size_t B = 64, K = 8, V = 32000;
    rkg::Buf<float> q(B * K * V), p(B * (K + 1) * V), u(B * (K + 1));
    rkg::Buf<int32_t> tok(B * K), acc(B), next(B), status(B);
    rkg::fill_uniform(q.p, q.n, 0, 1, 5);
    rkg::fill_uniform(p.p, p.n, 0, 1, 6);
    k_positive<<<1024, 256>>>(q.p, q.n);
    k_positive<<<1024, 256>>>(p.p, p.n);
    rkg::fill_uniform(u.p, u.n, 0, 0.999f, 7);
    rkg::fill_int(tok.p, tok.n, (int32_t)V, 8);
    rk_speculative_verify_args a{tok.p, q.p, p.p, u.p, B, K, V, acc.p, next.p, status.p};
    r.add("sampling", "speculativeVerify", "B64 K8 V32000", r.time([&] { rk_launch_speculative_verify(a, 0); }),
          B * (K * 4.0 + (K + 1) * 4.0 + K * 8.0 + 2.0 * V * 4 + 8));
  }
  {
    const size_t G = 1024, K = 16;
    rkg::Buf<float> rw(G * K), u(G * K * K);
    rkg::Buf<int32_t> sel(G * K), status(G);
    rkg::Buf<uint8_t> taken(G * K);
    rkg::fill_uniform(rw.p, rw.n, -2, 2, 9);
    rkg::fill_uniform(u.p, u.n, 0, 0.999f, 10);
    for (size_t m : {size_t(4), size_t(16)}) {
      rk_rejection_sample_args a{rw.p, u.p, G, K, m, 1.0, sel.p, status.p};
      r.add("sampling", m == 4 ? "rejectionSample(m=4)" : "rejectionSample(m=16)", "G1024 K16",
            r.time([&] { rk_launch_rejection_sample(a, taken.p, 0); }), G * K * 8.0 + G * m * 4.0);
    }
  }
  {
    const size_t B = 4096, K = 20;
    rkg::Buf<float> P(B * K);
    rkg::Buf<int32_t> len(B);
    rkg::fill_uniform(P.p, P.n, 0.7f, 1.0f, 11);
    rk_spec_dec_stop_args a{P.p, B, K, 0.3, 2, 20, len.p};
    r.add("sampling", "specDecStop", "B4096 K20", r.time([&] { rk_launch_spec_dec_stop(a, 0); }), B * K * 4.0 + B * 4.0);
  }
}
