// Host emulation of cuda/linear.cu for machines without a GPU (tests/cuda-emu/run_linear.sh): the
// whole .cu (kernels, launchers, host entry points) is compiled for the CPU with a stand-in runtime
// (fake_cuda/cuda_runtime.h), every CUDA thread a std::thread, __syncthreads a block barrier, and
// the warp-level PTX (ldmatrix / ldmatrix.trans, mma.sync m16n8k16, shuffles, ballots) emulated
// lane by lane from the PTX ISA's fragment layouts. The results are compared with the CPU kernels
// (which npm test checks against the float64 js reference). What this cannot show: timing, and
// whether the hardware agrees with the documented fragment layouts (bench/gpu/linear.cu checks that
// on a device).
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <cuda_runtime.h>  // tests/cuda-emu/fake_cuda

#include "src/core/logprobs.hpp"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define RK_CUDA_EMU 1
using std::isfinite;
using std::min;

struct Idx { unsigned x = 0, y = 0, z = 0; };
thread_local Idx threadIdx;
thread_local int t_lin;  // linear thread index in the block
Idx blockIdx, gridDim, blockDim;

static std::barrier<>* g_block = nullptr;
static std::vector<std::unique_ptr<std::barrier<>>> g_warp;
struct Slot { const void* p; uint32_t a[4], b[2]; float f[3]; int i; };
static Slot g_slot[1024];
static unsigned char* g_dyn = nullptr;

inline void __syncthreads() { g_block->arrive_and_wait(); }
inline void warp_bar() { g_warp[t_lin >> 5]->arrive_and_wait(); }
inline Slot& my_slot() { return g_slot[t_lin]; }
inline Slot& lane_slot(int lane) { return g_slot[(t_lin & ~31) + lane]; }

inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline unsigned __ballot_sync(unsigned, bool p) {
  my_slot().i = p;
  warp_bar();
  unsigned r = 0;
  for (int l = 0; l < 32; ++l) r |= (unsigned)(lane_slot(l).i != 0) << l;
  warp_bar();
  return r;
}
inline int __shfl_up_sync(unsigned, int v, int o) {
  my_slot().i = v;
  warp_bar();
  int lane = t_lin & 31;
  int r = lane - o >= 0 ? lane_slot(lane - o).i : v;
  warp_bar();
  return r;
}
inline rk::LseStats shfl_xor_st(rk::LseStats s, int off) {
  my_slot().f[0] = s.m; my_slot().f[1] = s.s; my_slot().f[2] = s.w;
  warp_bar();
  const Slot& o = lane_slot((t_lin & 31) ^ off);
  rk::LseStats r{o.f[0], o.f[1], o.f[2]};
  warp_bar();
  return r;
}
// cuda/mma.cuh's primitives, per lane (the same semantics as tests/cuda-emu/mma_emu.hpp's, on
// std::thread lanes): cp.async copies at issue (the pipeline's waits and barriers order it anyway).
namespace rkmma {
inline unsigned char* dyn_smem() { return g_dyn; }
inline void cp_async16(void* dst, const void* src, bool fill) {
  if (fill) memcpy(dst, src, 16);
  else memset(dst, 0, 16);
}
inline void cp_async_commit() {}
template <int N> inline void cp_async_wait() {}
// ldmatrix .x4: lanes 8q..8q+7 give the row addresses of matrix q; lane l receives, of matrix q,
// (row l/4, cols 2(l%4), 2(l%4)+1), or with .trans (rows 2(l%4), 2(l%4)+1, col l/4).
inline void ldsm(uint32_t (&r)[4], const void* p, bool trans) {
  my_slot().p = p;
  warp_bar();
  const int lane = t_lin & 31;
  for (int q = 0; q < 4; ++q) {
    uint16_t lo, hi;
    if (!trans) {
      const uint16_t* row = static_cast<const uint16_t*>(lane_slot(8 * q + lane / 4).p);
      lo = row[2 * (lane % 4)];
      hi = row[2 * (lane % 4) + 1];
    } else {
      lo = static_cast<const uint16_t*>(lane_slot(8 * q + 2 * (lane % 4)).p)[lane / 4];
      hi = static_cast<const uint16_t*>(lane_slot(8 * q + 2 * (lane % 4) + 1).p)[lane / 4];
    }
    r[q] = lo | ((uint32_t)hi << 16);
  }
  warp_bar();
}
inline void ldsm_x4(uint32_t (&r)[4], const void* p) { ldsm(r, p, false); }
inline void ldsm_x4_trans(uint32_t (&r)[4], const void* p) { ldsm(r, p, true); }
// mma.m16n8k16 row.col: A (16×16) a0 (g, 2t..), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..);
// B (16×8) b0 (k 2t.., n g), b1 (k 2t+8.., n g); C/D c0,c1 (g, 2t..), c2,c3 (g+8, 2t..).
template <int DT>
inline void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  memcpy(my_slot().a, a, 16);
  my_slot().b[0] = b0;
  my_slot().b[1] = b1;
  warp_bar();
  auto half = [](uint32_t w, int hi) -> float {
    uint16_t h = hi ? (uint16_t)(w >> 16) : (uint16_t)w;
    return DT == RK_DT_BF16 ? rk::bf16_to_float(h) : rk::f16_to_float(h);
  };
  auto A = [&](int row, int k) { int reg = (row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0); return half(lane_slot((row % 8) * 4 + (k % 8) / 2).a[reg], k & 1); };
  auto B = [&](int k, int n) { return half(lane_slot(n * 4 + (k % 8) / 2).b[k >= 8 ? 1 : 0], k & 1); };
  const int lane = t_lin & 31, g = lane / 4, t = lane % 4;
  float d[4];
  for (int e = 0; e < 4; ++e) {
    int row = g + (e >= 2 ? 8 : 0), col = 2 * t + (e & 1);
    float s = c[e];
    for (int k = 0; k < 16; ++k) s += A(row, k) * B(k, col);
    d[e] = s;
  }
  warp_bar();
  for (int e = 0; e < 4; ++e) c[e] = d[e];
}
}  // namespace rkmma

// cuda/device.cu's pool (host memory here) and the library stream.
namespace rkc {
cudaStream_t current_stream() { return nullptr; }
cudaError_t dev_alloc(void** p, size_t bytes, cudaStream_t) { return cudaMalloc(p, bytes ? bytes : 1); }
cudaError_t dev_free(void* p, cudaStream_t) { free(p); return cudaSuccess; }
}  // namespace rkc

// kernel<<<grid, block, smem, stream>>>(args...) → emu_launch(grid, block, smem, stream, kernel, args...)
template <class K, class... A>
void emu_launch(dim3 g, dim3 b, size_t smem, void*, K kern, A... args) {
  const unsigned n = b.x * b.y;
  gridDim.x = g.x;
  blockDim.x = b.x;
  blockDim.y = b.y;
  g_dyn = static_cast<unsigned char*>(aligned_alloc(256, (smem + 256) / 256 * 256));
  for (unsigned bx = 0; bx < g.x; ++bx) {
    blockIdx.x = bx;
    std::barrier<> block(n);
    g_block = &block;
    g_warp.clear();
    for (unsigned w = 0; w < (n + 31) / 32; ++w) g_warp.emplace_back(new std::barrier<>(std::min(32u, n - 32 * w)));
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < n; ++t)
      ts.emplace_back([&, t] {
        threadIdx.x = t % b.x;
        threadIdx.y = t / b.x;
        t_lin = (int)t;
        kern(args...);
      });
    for (auto& th : ts) th.join();
  }
  free(g_dyn);
}

// linearPreferenceLoss composes the preference family's launchers, not emulated here.
#include "src/include/rk_preference.h"
cudaError_t rk_launch_fused_pref_labels(const rk_fused_preference_args&, int32_t*, cudaStream_t) { return 1; }
cudaError_t rk_launch_fused_pref_loss(const rk_fused_preference_args&, const int32_t*, const float*, float*, cudaStream_t) { return 1; }

#include LINEAR_CU

// ---- checks: emulated CUDA entry points against the CPU kernels ------------------------------------
static int g_fail = 0, g_checks = 0;
static void close(const char* what, const float* got, const float* want, size_t n, double tol = 1e-4) {
  ++g_checks;
  size_t bad = 0, first = n;
  double worst = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) if (std::isfinite(want[i])) scale = std::max(scale, (double)std::fabs(want[i]));
  for (size_t i = 0; i < n; ++i) {
    double g = got[i], w = want[i];
    bool ok = std::isnan(w) ? std::isnan(g) : std::isinf(w) ? g == w : std::fabs(g - w) <= tol * (1 + std::fabs(w) + 0.01 * scale);
    if (!ok) { if (first == n) first = i; ++bad; }
    if (std::isfinite(w)) worst = std::max(worst, std::fabs(g - w) / (1 + std::fabs(w)));
  }
  if (bad) { ++g_fail; printf("FAIL %-44s %zu/%zu off (first [%zu]: %g vs %g)\n", what, bad, n, first, (double)got[first], (double)want[first]); }
  else printf("ok   %-44s n=%zu worst rel %.2e\n", what, n, worst);
}

static uint16_t to16(float x, int dt) {
  uint32_t u; memcpy(&u, &x, 4);
  if (dt == RK_DT_BF16) return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  // f16, round to nearest (normal range only: test data)
  int e = (int)((u >> 23) & 0xff) - 112; uint32_t m = u & 0x7fffff, s = (u >> 16) & 0x8000;
  if (e <= 0) return (uint16_t)s;
  uint32_t h = s | (e << 10) | (m >> 13), r = m & 0x1fff;
  if (r > 0x1000 || (r == 0x1000 && (h & 1))) ++h;
  return (uint16_t)h;
}

struct Data { std::vector<float> f; std::vector<uint16_t> h; const void* p(int dt) const { return dt == RK_DT_F32 ? (const void*)f.data() : h.data(); } };
static Data make(std::mt19937& g, size_t n, float scale, int dt) {
  std::normal_distribution<float> nd(0.0f, scale);
  Data d;
  d.f.resize(n);
  for (auto& x : d.f) x = nd(g);
  if (dt != RK_DT_F32) { d.h.resize(n); for (size_t i = 0; i < n; ++i) d.h[i] = to16(d.f[i], dt); }
  return d;
}

static void run_case(size_t N, size_t V, size_t D, int dt, bool bias, size_t chunk, float tau, unsigned seed) {
  std::mt19937 g(seed);
  Data H = make(g, N * D, 1.0f, dt), W = make(g, V * D, 1.5f / std::sqrt((float)D), dt), Bv = make(g, V, 1.0f, RK_DT_F32);
  std::vector<int32_t> lab(N);
  for (size_t i = 0; i < N; ++i) lab[i] = i % 7 == 3 ? -100 : (int32_t)(g() % V);
  char name[160];
  snprintf(name, sizeof name, "N=%zu V=%zu D=%zu dt=%d bias=%d chunk=%zu", N, V, D, dt, (int)bias, chunk);
  printf("-- %s\n", name);
  std::vector<float> lp1(N), ls1(N), h1(N), lp2(N), ls2(N), h2(N);
  rk_linear_logprobs_args a{H.p(dt), W.p(dt), bias ? Bv.f.data() : nullptr, dt, lab.data(), N, V, D, chunk, tau, -100, lp1.data(), ls1.data(), h1.data()};
  rk_cpu_linear_logprobs(&a);
  a.logp = lp2.data(); a.lse = ls2.data(); a.entropy = h2.data();
  char err[256] = {0};
  if (rk_cuda_linear_logprobs(&a, err, sizeof err)) { ++g_fail; printf("FAIL forward: %s\n", err); return; }
  close("logp", lp2.data(), lp1.data(), N);
  close("lse", ls2.data(), ls1.data(), N);
  close("entropy", h2.data(), h1.data(), N);
  std::vector<float> gl(N), ge(N);
  for (auto& x : gl) x = (float)(g() % 2001) / 1000.0f - 1.0f;
  for (auto& x : ge) x = (float)(g() % 2001) / 1000.0f - 1.0f;
  for (int mode = 0; mode < 2; ++mode) {
    std::vector<float> gh1(N * D), gw1(V * D), gb1(V), gh2(N * D, NAN), gw2(V * D, NAN), gb2(V, NAN);
    rk_linear_logprobs_backward_args b{H.p(dt), W.p(dt), bias ? Bv.f.data() : nullptr, dt, lab.data(), N, V, D, chunk, tau, -100,
                                       gl.data(), mode ? ge.data() : nullptr, ls1.data(), mode ? h1.data() : nullptr, gh1.data(), gw1.data(),
                                       bias ? gb1.data() : nullptr};
    rk_cpu_linear_logprobs_backward(&b);
    b.grad_hidden = gh2.data(); b.grad_weight = gw2.data(); b.grad_bias = bias ? gb2.data() : nullptr;
    if (rk_cuda_linear_logprobs_backward(&b, err, sizeof err)) { ++g_fail; printf("FAIL backward: %s\n", err); return; }
    close(mode ? "gradHidden (entropy)" : "gradHidden", gh2.data(), gh1.data(), N * D);
    close(mode ? "gradWeight (entropy)" : "gradWeight", gw2.data(), gw1.data(), V * D);
    if (bias) close("gradBias", gb2.data(), gb1.data(), V);
  }
  std::vector<float> l1(N * V), l2(N * V, NAN);
  rk_cpu_linear_logits(H.p(dt), W.p(dt), bias ? Bv.f.data() : nullptr, dt, N, V, D, 0, l1.data());
  if (rk_cuda_linear_logits(H.p(dt), W.p(dt), bias ? Bv.f.data() : nullptr, dt, N, V, D, l2.data(), err, sizeof err)) { ++g_fail; printf("FAIL logits: %s\n", err); return; }
  close("logits", l2.data(), l1.data(), N * V, 2e-5);
}

int main() {
  run_case(1, 7, 7, RK_DT_F32, false, 0, 1.0f, 1);
  run_case(1, 7, 7, RK_DT_BF16, true, 0, 1.0f, 2);
  run_case(9, 300, 40, RK_DT_BF16, true, 128, 0.8f, 3);    // D % 8 == 0: cp.async path; 3 chunks
  run_case(9, 300, 33, RK_DT_F16, false, 128, 1.0f, 4);    // D odd: element-wise loads
  run_case(9, 300, 40, RK_DT_F32, true, 128, 1.0f, 5);
  run_case(150, 130, 64, RK_DT_BF16, true, 0, 1.0f, 6);    // two row tiles, two column tiles
  run_case(150, 130, 64, RK_DT_F16, true, 0, 1.0f, 7);
  printf("\nemulated CUDA checks: %d of %d failed\n", g_fail, g_checks);
  return g_fail ? 1 : 0;
}
