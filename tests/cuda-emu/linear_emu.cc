// Host emulation of cuda/linear.cu for machines without a GPU (tests/cuda-emu/run_linear.sh): the
// whole .cu (kernels, launchers, host entry points) is compiled for the CPU with a stand-in runtime
// (fake_cuda/cuda_runtime.h), every CUDA thread a std::thread, __syncthreads a block barrier, and
// the warp-level PTX (ldmatrix / ldmatrix.trans, mma.sync m16n8k16, shuffles, ballots) emulated
// lane by lane from the PTX ISA's fragment layouts. The results are compared with the CPU kernels
// (which npm test checks against the float64 js reference), for both generations of the GEMM
// kernels (v1, the default, and v2, opt-in; both via rk_linear_gemm_select), and v2 against v1 bit for bit (both
// run the same mma / fmaf sequence per output element). cp.async is emulated as on the device: the
// destination is poisoned (0xff: NaN) at issue and the copy lands at the cp.async.wait_group that
// retires its group, so a pipeline that reads a stage before its wait and barrier, or refills a
// stage another warp still reads, produces NaN. ldmatrix / cp.async addresses are checked (16-byte
// aligned, inside the dynamic shared memory) and the bank conflicts of each 8-row ldmatrix phase
// counted (v2 must be conflict free). RK_LINEAR_COVER counts the paths taken; every one of v2's
// must be reached. What this cannot show: timing, and whether the hardware agrees with the
// documented fragment layouts (bench/gpu/linear.cu checks that on a device).
#include <atomic>
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
static size_t g_dyn_bytes = 0;
static std::atomic<int> g_max_conflict{1};  // worst ldmatrix phase since the last reset (ways)
static std::atomic<unsigned long long> g_cover[10];
#define RK_LINEAR_COVER(path) (g_cover[path].fetch_add(1, std::memory_order_relaxed))

[[noreturn]] static void emu_fail(const char* what) {
  fprintf(stderr, "EMULATION ERROR: %s (block %u thread %d)\n", what, blockIdx.x, t_lin);
  exit(3);
}
static void check_smem(const void* p, size_t n, const char* what) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  if (c < g_dyn || c + n > g_dyn + g_dyn_bytes) emu_fail(what);
  if (reinterpret_cast<uintptr_t>(p) % 16) emu_fail(what);
}

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
// std::thread lanes): cp.async poisons its destination at issue and copies at the wait that
// retires its group.
struct PendingCopy { void* dst; const void* src; bool fill; unsigned group; };
thread_local std::vector<PendingCopy> t_pending;
thread_local unsigned t_groups = 0;  // committed groups of this thread
namespace rkmma {
inline unsigned char* dyn_smem() { return g_dyn; }
inline void cp_async16(void* dst, const void* src, bool fill) {
  check_smem(dst, 16, "cp.async destination outside the dynamic shared memory or misaligned");
  if (reinterpret_cast<uintptr_t>(src) % 16) emu_fail("cp.async source not 16-byte aligned");
  memset(dst, 0xff, 16);
  t_pending.push_back({dst, src, fill, t_groups});
}
inline void cp_async_commit() { ++t_groups; }
template <int N> inline void cp_async_wait() {
  std::vector<PendingCopy> keep;
  for (auto& c : t_pending) {
    if (c.group + N < t_groups) {  // all but the newest N committed groups complete
      if (c.fill) memcpy(c.dst, c.src, 16);
      else memset(c.dst, 0, 16);
    } else {
      keep.push_back(c);
    }
  }
  t_pending.swap(keep);
}
// ldmatrix .x4: lanes 8q..8q+7 give the row addresses of matrix q; lane l receives, of matrix q,
// (row l/4, cols 2(l%4), 2(l%4)+1), or with .trans (rows 2(l%4), 2(l%4)+1, col l/4).
inline void ldsm(uint32_t (&r)[4], const void* p, bool trans) {
  check_smem(p, 16, "ldmatrix row outside the dynamic shared memory or misaligned");
  my_slot().p = p;
  warp_bar();
  const int lane = t_lin & 31;
  if (lane == 0)
    for (int q = 0; q < 4; ++q) {  // bank conflicts of the phase of matrix q (8 rows × 16 bytes)
      int count[32] = {};
      for (int k = 0; k < 8; ++k)
        for (int w = 0; w < 4; ++w)
          ++count[((static_cast<const unsigned char*>(lane_slot(8 * q + k).p) - g_dyn) / 4 + w) % 32];
      const int worst = *std::max_element(count, count + 32);
      int cur = g_max_conflict.load();
      while (worst > cur && !g_max_conflict.compare_exchange_weak(cur, worst)) {}
    }
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
  g_dyn_bytes = smem;
  memset(g_dyn, 0xff, (smem + 256) / 256 * 256);  // uninitialised shared memory reads as NaN
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
        if (!t_pending.empty()) emu_fail("cp.async copies still pending at thread exit");
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

// Bit-for-bit equality (v2 against v1: the same mma / fmaf sequence per element).
static void same(const char* what, const std::vector<float>& got, const std::vector<float>& want) {
  ++g_checks;
  size_t bad = 0, first = got.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (memcmp(&got[i], &want[i], 4)) { if (first == got.size()) first = i; ++bad; }
  if (bad) { ++g_fail; printf("FAIL %-44s %zu/%zu differ from v1 (first [%zu]: %g vs %g)\n", what, bad, got.size(), first, (double)got[first], (double)want[first]); }
  else printf("ok   %-44s n=%zu identical to v1\n", what, got.size());
}

// The outputs of one run of the emulated CUDA entry points.
struct Outs { std::vector<float> lp, ls, h, gh[2], gw[2], gb[2], logits; };

static void run_case(size_t N, size_t V, size_t D, int dt, bool bias, size_t chunk, float tau, unsigned seed, bool all_ignored = false) {
  std::mt19937 g(seed);
  Data H = make(g, N * D, 1.0f, dt), W = make(g, V * D, 1.5f / std::sqrt((float)D), dt), Bv = make(g, V, 1.0f, RK_DT_F32);
  std::vector<int32_t> lab(N);
  for (size_t i = 0; i < N; ++i) lab[i] = all_ignored || i % 7 == 3 ? -100 : (int32_t)(g() % V);
  char name[160];
  snprintf(name, sizeof name, "N=%zu V=%zu D=%zu dt=%d bias=%d chunk=%zu%s", N, V, D, dt, (int)bias, chunk, all_ignored ? " all ignored" : "");
  std::vector<float> gl(N), ge(N);
  for (auto& x : gl) x = (float)(g() % 2001) / 1000.0f - 1.0f;
  for (auto& x : ge) x = (float)(g() % 2001) / 1000.0f - 1.0f;
  // the CPU kernels
  Outs c;
  c.lp.resize(N); c.ls.resize(N); c.h.resize(N);
  rk_linear_logprobs_args a{H.p(dt), W.p(dt), bias ? Bv.f.data() : nullptr, dt, lab.data(), N, V, D, chunk, tau, -100, c.lp.data(), c.ls.data(), c.h.data()};
  rk_cpu_linear_logprobs(&a);
  auto bargs = [&](int mode, Outs& o) {
    return rk_linear_logprobs_backward_args{H.p(dt), W.p(dt), bias ? Bv.f.data() : nullptr, dt, lab.data(), N, V, D, chunk, tau, -100,
                                            gl.data(), mode ? ge.data() : nullptr, c.ls.data(), mode ? c.h.data() : nullptr,
                                            o.gh[mode].data(), o.gw[mode].data(), bias ? o.gb[mode].data() : nullptr};
  };
  for (int mode = 0; mode < 2; ++mode) {
    c.gh[mode].resize(N * D); c.gw[mode].resize(V * D); c.gb[mode].resize(V);
    auto b = bargs(mode, c);
    rk_cpu_linear_logprobs_backward(&b);
  }
  c.logits.resize(N * V);
  rk_cpu_linear_logits(H.p(dt), W.p(dt), bias ? Bv.f.data() : nullptr, dt, N, V, D, 0, c.logits.data());
  // the emulated CUDA entry points, v2 then v1 (outputs poisoned with NaN first)
  Outs r[2];
  char err[256] = {0};
  for (int v = 2; v >= 1; --v) {
    Outs& o = r[v - 1];
    rk_linear_gemm_select(v);
    printf("-- %s, GEMM v%d\n", name, v);
    o.lp.assign(N, NAN); o.ls.assign(N, NAN); o.h.assign(N, NAN);
    a.logp = o.lp.data(); a.lse = o.ls.data(); a.entropy = o.h.data();
    if (rk_cuda_linear_logprobs(&a, err, sizeof err)) { ++g_fail; printf("FAIL forward: %s\n", err); return; }
    close("logp", o.lp.data(), c.lp.data(), N);
    close("lse", o.ls.data(), c.ls.data(), N);
    close("entropy", o.h.data(), c.h.data(), N);
    for (int mode = 0; mode < 2; ++mode) {
      o.gh[mode].assign(N * D, NAN); o.gw[mode].assign(V * D, NAN); o.gb[mode].assign(V, NAN);
      auto b = bargs(mode, o);
      if (rk_cuda_linear_logprobs_backward(&b, err, sizeof err)) { ++g_fail; printf("FAIL backward: %s\n", err); return; }
      close(mode ? "gradHidden (entropy)" : "gradHidden", o.gh[mode].data(), c.gh[mode].data(), N * D);
      close(mode ? "gradWeight (entropy)" : "gradWeight", o.gw[mode].data(), c.gw[mode].data(), V * D);
      if (bias) close(mode ? "gradBias (entropy)" : "gradBias", o.gb[mode].data(), c.gb[mode].data(), V);
    }
    o.logits.assign(N * V, NAN);
    if (rk_cuda_linear_logits(H.p(dt), W.p(dt), bias ? Bv.f.data() : nullptr, dt, N, V, D, o.logits.data(), err, sizeof err)) { ++g_fail; printf("FAIL logits: %s\n", err); return; }
    close("logits", o.logits.data(), c.logits.data(), N * V, 2e-5);
  }
  same("v2: logp", r[1].lp, r[0].lp);
  same("v2: lse", r[1].ls, r[0].ls);
  same("v2: entropy", r[1].h, r[0].h);
  for (int mode = 0; mode < 2; ++mode) {
    same(mode ? "v2: gradHidden (entropy)" : "v2: gradHidden", r[1].gh[mode], r[0].gh[mode]);
    same(mode ? "v2: gradWeight (entropy)" : "v2: gradWeight", r[1].gw[mode], r[0].gw[mode]);
    if (bias) same(mode ? "v2: gradBias (entropy)" : "v2: gradBias", r[1].gb[mode], r[0].gb[mode]);
  }
  same("v2: logits", r[1].logits, r[0].logits);
}

int main(int argc, char** argv) {
  int only = 0;  // --case K: only the K-th case (1-based), no path / conflict summary
  for (int i = 1; i + 1 < argc; ++i)
    if (!strcmp(argv[i], "--case")) only = atoi(argv[i + 1]);
  rk_linear_gemm_select(2);
  int k = 0;
  auto pick = [&] { return !only || ++k == only; };
  if (pick()) run_case(1, 7, 7, RK_DT_F32, false, 0, 1.0f, 1);
  if (pick()) run_case(1, 7, 7, RK_DT_BF16, true, 0, 1.0f, 2);
  if (pick()) run_case(9, 300, 40, RK_DT_BF16, true, 128, 0.8f, 3);    // D % 8 == 0: cp.async path; 3 chunks
  if (pick()) run_case(9, 300, 33, RK_DT_F16, false, 128, 1.0f, 4);    // D odd: element-wise loads
  if (pick()) run_case(9, 300, 40, RK_DT_F32, true, 128, 1.0f, 5);
  if (pick()) run_case(150, 130, 64, RK_DT_BF16, true, 0, 1.0f, 6);    // two row tiles, two column tiles (v1), two halves (v2)
  if (pick()) run_case(150, 130, 64, RK_DT_F16, true, 0, 1.0f, 7);
  if (pick()) run_case(4, 50, 8, RK_DT_BF16, true, 0, 1.0f, 8, true);  // every row ignored: no GEMM, outputs 0
  if (pick()) run_case(4, 50, 8, RK_DT_F32, false, 0, 1.0f, 9, true);
  // v2's edges: V = 300 with chunk 256 (a 256-column tile whose second half is partial or absent,
  // a last chunk of 44 columns: row-major rows not a multiple of 8), Na = 60 (planes of 64 rows, 4
  // of them zero), D = 72 (a k tile of 8), two row tiles and D = 136 (3 k tiles), f32 / f16 FFMA
  // with K not a multiple of 16, odd N / V / D.
  if (pick()) run_case(70, 300, 72, RK_DT_BF16, true, 256, 0.9f, 10);
  if (pick()) run_case(70, 300, 72, RK_DT_F16, true, 256, 1.1f, 11);
  if (pick()) run_case(161, 259, 136, RK_DT_BF16, false, 0, 1.0f, 12);
  if (pick()) run_case(33, 129, 37, RK_DT_F32, true, 0, 1.0f, 13);
  if (pick()) run_case(45, 257, 51, RK_DT_BF16, true, 128, 1.0f, 14);  // D odd: v2 element-wise loads everywhere
  if (only) {
    printf("\nemulated CUDA checks (case %d only): %d of %d failed\n", only, g_fail, g_checks);
    return g_fail ? 1 : 0;
  }
  // every path of the v2 loaders (and both kernels of each generation) reached
  const char* paths[10] = {"v1 tensor-core kernel", "v1 FFMA kernel", "v2 tensor-core kernel", "v2 FFMA kernel", "v2 k-major zero chunk",
                           "v2 k-major cp.async", "v2 k-major element-wise", "v2 row-major zero chunk", "v2 row-major cp.async",
                           "v2 row-major element-wise"};
  for (int p = 0; p < 10; ++p) {
    ++g_checks;
    const unsigned long long n = g_cover[p].load();
    if (!n) { ++g_fail; printf("FAIL path never taken: %s\n", paths[p]); }
    else printf("ok   path %-40s taken %llu times\n", paths[p], n);
  }
  ++g_checks;
  printf("%s  worst ldmatrix phase: %d-way bank conflict (v1 padded, v2 swizzled tiles: both must be conflict free)\n",
         g_max_conflict.load() == 1 ? "ok  " : "FAIL", g_max_conflict.load());
  if (g_max_conflict.load() != 1) ++g_fail;
  printf("\nemulated CUDA checks: %d of %d failed\n", g_fail, g_checks);
  return g_fail ? 1 : 0;
}
