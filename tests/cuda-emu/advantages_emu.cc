// Host emulation of the CUDA kernels of cuda/advantages.cu, for machines without a GPU: the
// kernels' text is included verbatim (run.sh cuts it out of the .cu), each CUDA thread runs as a
// std::thread, __syncthreads and warp shuffles are std::barrier exchanges. The results are compared
// with the CPU kernels (which npm test checks against the float64 js reference).
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>
#include <random>
#include "src/core/advantages.hpp"
#include "src/include/rk_advantages.h"
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __shared__ static
struct dim3 { unsigned x = 0; };
thread_local dim3 threadIdx;
dim3 blockIdx_g, gridDim, blockDim;
#define blockIdx blockIdx_g
static std::barrier<>* g_block;
static std::vector<std::barrier<>*> g_warp;
static double g_buf[64][32];
void __syncthreads() { g_block->arrive_and_wait(); }
template <class T> T xchg(T v, int src_lane_off, int mode) {
  unsigned lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  g_buf[w][lane] = (double)v;
  g_warp[w]->arrive_and_wait();
  int src = mode == 0 ? (int)lane - src_lane_off : mode == 1 ? (int)lane + src_lane_off : (int)(lane ^ src_lane_off);
  T r = (src < 0 || src > 31) ? v : (T)g_buf[w][src];
  g_warp[w]->arrive_and_wait();
  return r;
}
float __shfl_up_sync(unsigned, float v, int o) { return xchg(v, o, 0); }
int __shfl_up_sync(unsigned, int v, int o) { return xchg(v, o, 0); }
double __shfl_down_sync(unsigned, double v, int o) { return xchg(v, o, 1); }
double __shfl_xor_sync(unsigned, double v, int o) { return xchg(v, o, 2); }
double __longlong_as_double(long long x) { double d; memcpy(&d, &x, 8); return d; }
namespace rkc {
inline bool mask_at(const void* m, int kind, size_t i) {
  if (kind == RK_MASK_U8) return static_cast<const uint8_t*>(m)[i] != 0;
  if (kind == RK_MASK_F32) return static_cast<const float*>(m)[i] != 0.0f;
  return true;
}
}
#include KERNELS_INC

template <class F> void launch(unsigned grid, unsigned block, F f) {
  gridDim.x = grid; blockDim.x = block;
  for (unsigned b = 0; b < grid; ++b) {
    blockIdx_g.x = b;
    std::barrier<> bb(block);
    g_block = &bb;
    std::vector<std::barrier<>*> ws;
    for (unsigned w = 0; w < block / 32; ++w) ws.push_back(new std::barrier<>(32));
    g_warp = ws;
    std::vector<std::thread> th;
    for (unsigned t = 0; t < block; ++t) th.emplace_back([&, t] { threadIdx.x = t; f(); });
    for (auto& t : th) t.join();
    for (auto* w : ws) delete w;
  }
}

int main() {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> U(-1, 1);
  int fails = 0;
  for (auto [B, T] : std::vector<std::pair<size_t, size_t>>{{1, 1}, {3, 17}, {5, 2049}, {2, 5000}}) {
    size_t n = B * T;
    std::vector<float> r(n), v(n), lv(B), a1(n), r1(n), a2(n), r2(n);
    std::vector<uint8_t> m(n);
    for (size_t i = 0; i < n; ++i) { r[i] = U(rng); v[i] = U(rng); m[i] = U(rng) < 0.5f; }
    for (auto& x : lv) x = U(rng);
    if (B > 1) for (size_t t = 0; t < T; ++t) m[T + t] = 0;               // an empty row
    if (T > 4096) for (size_t t = 2900; t < T; ++t) m[t] = 0;             // a fully masked chunk at the end
    for (int vals = 0; vals < 4; ++vals) {
      // (γ, λ) = (0.97, 0.9), then (1, 1): no decay, so carries across chunks matter
      const float gamma = vals < 2 ? 0.97f : 1.0f, lambda = vals < 2 ? 0.9f : 1.0f;
      rk_gae_args a{r.data(), vals & 1 ? v.data() : nullptr, m.data(), RK_MASK_U8, vals & 1 ? lv.data() : nullptr, a1.data(), vals & 1 ? r1.data() : nullptr, B, T, gamma, lambda};
      rk_cpu_gae(&a);
      a.advantages = a2.data(); a.returns = vals & 1 ? r2.data() : nullptr;
      if (vals & 1) launch(2, kNT, [&] { gae_kernel<true>(a); });
      else launch(2, kNT, [&] { gae_kernel<false>(a); });
      double worst = 0;
      for (size_t i = 0; i < n; ++i) {
        worst = std::max(worst, (double)std::fabs(a1[i] - a2[i]) / (1 + std::fabs(a1[i])));
        if (vals & 1) worst = std::max(worst, (double)std::fabs(r1[i] - r2[i]) / (1 + std::fabs(r1[i])));
      }
      printf("%s γ=%g λ=%g B=%zu T=%zu worst rel %.3g\n", vals & 1 ? "gae" : "disc", gamma, lambda, B, T, worst);
      fails += !(worst < 1e-5);
    }
    // whiten
    std::vector<float> x(n), y1(n), y2(n);
    for (auto& e : x) e = 1000 + U(rng);
    std::fill(m.begin(), m.begin() + std::min<size_t>(n, 2), 1);
    double s1[3], part[3 * 1024], s2[3];
    rk_whiten_args w{x.data(), m.data(), RK_MASK_U8, y1.data(), n, 1, 1e-8f, s1};
    rk_cpu_whiten(&w);
    w.y = y2.data(); w.stats = s2;
    size_t g = (n + kStatThreads - 1) / kStatThreads; unsigned nb = g < kStatBlocks ? (g ? (unsigned)g : 1u) : kStatBlocks;
    launch(nb, kStatThreads, [&] { whiten_partial_kernel(w, part); });
    launch(1, kStatThreads, [&] { whiten_final_kernel(part, nb, s2); });
    if (s2[0] >= 2) launch(2, 256, [&] { whiten_apply_kernel(w); });
    double worst = 0;
    if (s1[0] >= 2) for (size_t i = 0; i < n; ++i) worst = std::max(worst, (double)std::fabs(y1[i] - y2[i]));
    printf("whiten n=%zu count %g/%g mean %.9g/%.9g var %.9g/%.9g worst %.3g\n", n, s1[0], s2[0], s1[1], s2[1], s1[2], s2[2], worst);
    fails += s1[0] != s2[0] || !(worst < 1e-4);
  }
  // groups (one warp per group) and the rest
  {
    size_t G = 37, K = 45, n = G * K;
    std::vector<float> s(n), b(n), o1(n), o2(n);
    for (size_t i = 0; i < n; ++i) { s[i] = U(rng); b[i] = U(rng); }
    for (int meth = 0; meth < 4; ++meth) {
      rk_group_adv_args a{s.data(), b.data(), o1.data(), G, K, meth, 1e-6f};
      rk_cpu_group_advantages(&a);
      a.advantages = o2.data();
      launch(3, 256, [&] { group_adv_kernel(a); });
      double worst = 0;
      for (size_t i = 0; i < n; ++i) worst = std::max(worst, (double)std::fabs(o1[i] - o2[i]) / (1 + std::fabs(o1[i])));
      printf("group method %d worst %.3g\n", meth, worst);
      fails += !(worst < 1e-5);
    }
  }
  printf("%s\n", fails ? "EMULATION FAILURES" : "all emulated kernels agree with the CPU kernels");
  return fails != 0;
}
