// Blocked SGEMM of the linear family: packers, micro-kernels per instruction set, the parallel
// driver and the FMA-peak microbenchmark (see gemm.hpp).
#include "gemm.hpp"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstring>
#include <thread>
#include <vector>

#include "common.hpp"

// GCC 12 warns about _mm512_undefined_ps() inside its own AVX-512 intrinsics (a known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// ---- micro-kernels (gemm_kernel.inc, once per instruction set) ------------------------------------
// AVX-512 12×32: 24 zmm accumulators, per k 2 loads of B + 12 broadcasts of A + 24 FMAs (27 of the
// 32 registers); AVX2+FMA 6×16: 12 ymm accumulators; portable 4×8 (plain arrays, SSE2 code).
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi2")
namespace rk {
namespace gemm {
namespace k512 {
using V = __m512;
constexpr int W = 16;
static inline V zero() { return _mm512_setzero_ps(); }
static inline V load(const float* p) { return _mm512_loadu_ps(p); }
static inline V bcast(const float* p) { return _mm512_set1_ps(*p); }
static inline V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
static inline V add(V a, V b) { return _mm512_add_ps(a, b); }
static inline void store(float* p, V v) { _mm512_storeu_ps(p, v); }
#include "gemm_kernel.inc"
}  // namespace k512
}  // namespace gemm
}  // namespace rk
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,bmi2")
namespace rk {
namespace gemm {
namespace k256 {
using V = __m256;
constexpr int W = 8;
static inline V zero() { return _mm256_setzero_ps(); }
static inline V load(const float* p) { return _mm256_loadu_ps(p); }
static inline V bcast(const float* p) { return _mm256_broadcast_ss(p); }
static inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
static inline V add(V a, V b) { return _mm256_add_ps(a, b); }
static inline void store(float* p, V v) { _mm256_storeu_ps(p, v); }
#include "gemm_kernel.inc"
}  // namespace k256
}  // namespace gemm
}  // namespace rk
#pragma GCC pop_options

namespace rk {
namespace gemm {
namespace kbase {
struct V {
  float l[4];
};
constexpr int W = 4;
static inline V zero() { return V{{0, 0, 0, 0}}; }
static inline V load(const float* p) { V v; memcpy(v.l, p, sizeof v.l); return v; }
static inline V bcast(const float* p) { return V{{*p, *p, *p, *p}}; }
static inline V fma(V a, V b, V c) { for (int i = 0; i < 4; ++i) c.l[i] += a.l[i] * b.l[i]; return c; }
static inline V add(V a, V b) { for (int i = 0; i < 4; ++i) a.l[i] += b.l[i]; return a; }
static inline void store(float* p, V v) { memcpy(p, v.l, sizeof v.l); }
#include "gemm_kernel.inc"
}  // namespace kbase

namespace {

const Kernel kAvx512{12, 32, k512::kern<12, 2, true>, k512::kern<12, 2, false>};
const Kernel kAvx2{6, 16, k256::kern<6, 2, true>, k256::kern<6, 2, false>};
const Kernel kBase{4, 8, kbase::kern<4, 2, true>, kbase::kern<4, 2, false>};

// ---- packing ------------------------------------------------------------------------------

template <int DT> struct Cvt;
template <> struct Cvt<RK_DT_F32> { using T = float; static float f(T x) { return x; } };
template <> struct Cvt<RK_DT_F16> { using T = uint16_t; static float f(T x) { return f16_to_float(x); } };
template <> struct Cvt<RK_DT_BF16> { using T = uint16_t; static float f(T x) { return bf16_to_float(x); } };

template <int DT>
void pack_a_t(const Mat& A, size_t i0, size_t m, size_t k0, size_t kc, int mr, float* __restrict Ap) {
  using T = typename Cvt<DT>::T;
  const T* base = static_cast<const T*>(A.p);
  const size_t panels = (m + mr - 1) / mr;
  if (a_rows(A)) {
    // rows contiguous along k (hidden, dZ): a converting copy of each row into [mr][kKC]
    for (size_t i = 0; i < panels * mr; ++i) {
      float* __restrict dst = Ap + i * kKC;
      if (i >= m) {
        memset(dst, 0, kc * sizeof(float));
        continue;
      }
      const T* __restrict src = base + (A.map ? (size_t)A.map[i0 + i] : i0 + i) * A.rs + k0;
      if (DT == RK_DT_F32) memcpy(dst, src, kc * sizeof(float));
      else
        simd_dispatch([&]() RK_LOOP {  // widening vectorised per ISA (the rows are re-packed per chunk)
          const T* __restrict s = src;
          float* __restrict d = dst;
          for (size_t k = 0; k < kc; ++k) d[k] = Cvt<DT>::f(s[k]);
        });
    }
    return;
  }
  // otherwise [k][mr] panels: for dZᵀ (columns contiguous), mr consecutive values per k
  for (size_t q = 0; q < panels; ++q) {
    float* __restrict dst = Ap + q * kc * mr;
    for (int r = 0; r < mr; ++r) {
      size_t i = q * mr + r;
      if (i >= m) {
        for (size_t k = 0; k < kc; ++k) dst[k * mr + r] = 0.0f;
        continue;
      }
      const T* src = base + (A.map ? (size_t)A.map[i0 + i] : i0 + i) * A.rs + k0 * A.cs;
      for (size_t k = 0; k < kc; ++k) dst[k * mr + r] = Cvt<DT>::f(src[k * A.cs]);
    }
  }
}

template <int DT>
void pack_b_t(const Mat& B, size_t k0, size_t kc, size_t j0, size_t n, int nr, float* __restrict Bp) {
  using T = typename Cvt<DT>::T;
  const T* base = static_cast<const T*>(B.p);
  const size_t panels = (n + nr - 1) / nr;
  for (size_t q = 0; q < panels; ++q) {
    float* __restrict dst = Bp + q * kc * nr;
    const size_t c0 = j0 + q * nr;
    const size_t nb = std::min<size_t>(nr, n - q * nr);
    if (B.cs == 1) {
      // rows of B contiguous along j (W chunk for gradHidden, hidden for gradWeight)
      for (size_t k = 0; k < kc; ++k) {
        size_t row = B.map ? (size_t)B.map[k0 + k] : k0 + k;
        const T* src = base + row * B.rs + c0;
        size_t c = 0;
        for (; c < nb; ++c) dst[k * nr + c] = Cvt<DT>::f(src[c]);
        for (; c < (size_t)nr; ++c) dst[k * nr + c] = 0.0f;
      }
    } else {
      // columns of B contiguous along k (Wᵀ for the logits): read each column, scatter by nr
      for (size_t c = 0; c < (size_t)nr; ++c) {
        if (c >= nb) {
          for (size_t k = 0; k < kc; ++k) dst[k * nr + c] = 0.0f;
          continue;
        }
        const T* src = base + (c0 + c) * B.cs;
        if (!B.map && B.rs == 1)
          for (size_t k = 0; k < kc; ++k) dst[k * nr + c] = Cvt<DT>::f(src[k0 + k]);
        else
          for (size_t k = 0; k < kc; ++k) dst[k * nr + c] = Cvt<DT>::f(src[(B.map ? (size_t)B.map[k0 + k] : k0 + k) * B.rs]);
      }
    }
  }
}

}  // namespace

const Kernel& kernel() {
  switch (isa()) {
    case Isa::avx512: return kAvx512;
    case Isa::avx2: return kAvx2;
    default: return kBase;
  }
}

size_t mc_rows(const Kernel& k) { return k.mr == 12 ? 96 : k.mr == 6 ? 96 : 64; }

size_t a_floats(const Mat& A, size_t m, size_t kc, int mr) { return round_up(m, mr) * (a_rows(A) ? kKC : kc); }

void pack_a(const Mat& A, size_t i0, size_t m, size_t k0, size_t kc, int mr, float* Ap) {
  if (A.dt == RK_DT_F16) pack_a_t<RK_DT_F16>(A, i0, m, k0, kc, mr, Ap);
  else if (A.dt == RK_DT_BF16) pack_a_t<RK_DT_BF16>(A, i0, m, k0, kc, mr, Ap);
  else pack_a_t<RK_DT_F32>(A, i0, m, k0, kc, mr, Ap);
}

void pack_b(const Mat& B, size_t k0, size_t kc, size_t j0, size_t n, int nr, float* Bp) {
  if (B.dt == RK_DT_F16) pack_b_t<RK_DT_F16>(B, k0, kc, j0, n, nr, Bp);
  else if (B.dt == RK_DT_BF16) pack_b_t<RK_DT_BF16>(B, k0, kc, j0, n, nr, Bp);
  else pack_b_t<RK_DT_F32>(B, k0, kc, j0, n, nr, Bp);
}

void macro(const Kernel& K, size_t m, size_t n, size_t kc, bool a_rows, const float* Ap, const float* Bp, float* C, size_t ldc,
           const int32_t* cmap, bool acc) {
  const size_t mr = K.mr, nr = K.nr;
  const size_t a_panel = a_rows ? mr * kKC : kc * mr;
  auto run = a_rows ? K.run_r : K.run_k;
  alignas(64) float tile[16 * 32];
  for (size_t jr = 0; jr < n; jr += nr) {
    const size_t nb = std::min(nr, n - jr);
    const float* b = Bp + (jr / nr) * kc * nr;
    for (size_t ir = 0; ir < m; ir += mr) {
      const size_t mb = std::min(mr, m - ir);
      const float* a = Ap + (ir / mr) * a_panel;
      if (mb == mr && nb == nr && !cmap) {
        run(kc, a, b, C + ir * ldc + jr, ldc, acc);
        continue;
      }
      // edge tile or scattered rows: through the scratch tile
      for (size_t r = 0; r < mb; ++r) {
        const float* src = C + (cmap ? (size_t)cmap[ir + r] : ir + r) * ldc + jr;
        for (size_t c = 0; c < nr; ++c) tile[r * nr + c] = acc && c < nb ? src[c] : 0.0f;
      }
      run(kc, a, b, tile, nr, acc);
      for (size_t r = 0; r < mb; ++r) {
        float* dst = C + (cmap ? (size_t)cmap[ir + r] : ir + r) * ldc + jr;
        memcpy(dst, tile + r * nr, nb * sizeof(float));
      }
    }
  }
}

namespace {
constexpr size_t kNCB = 2048;  // columns of one packed B block in gemm()
}

size_t gemm_scratch_bytes(size_t M, size_t N, size_t K) {
  const Kernel& k = kernel();
  size_t kc = std::min(K, kKC), nc = round_up(std::min(N, kNCB), k.nr), mc = round_up(std::min(M, mc_rows(k)), k.mr);
  return (kc * nc + (size_t)num_threads() * mc * kKC) * sizeof(float);
}

void gemm(const Mat& A, const Mat& B, size_t M, size_t N, size_t K, float* C, size_t ldc, const int32_t* cmap, bool acc) {
  if (M == 0 || N == 0) return;
  auto row = [&](size_t i) { return C + (cmap ? (size_t)cmap[i] : i) * ldc; };
  if (K == 0) {
    if (!acc)
      for (size_t i = 0; i < M; ++i) memset(row(i), 0, N * sizeof(float));
    return;
  }
  const Kernel& Kn = kernel();
  const size_t mr = Kn.mr, nr = Kn.nr, MC = mc_rows(Kn);
  const size_t ncb = round_up(std::min(N, kNCB), nr);
  const size_t kcb = std::min(K, kKC);
  std::vector<float> Bp(kcb * ncb);
  const int threads = num_threads();
  // small products run on the calling thread (the pool's wake-up costs more than they do)
  const bool serial = 2.0 * (double)M * (double)N * (double)K < 4e6;
  for (size_t jc = 0; jc < N; jc += ncb) {
    const size_t nc = std::min(ncb, N - jc);
    const size_t panels = (nc + nr - 1) / nr;
    for (size_t pc = 0; pc < K; pc += kKC) {
      const size_t kc = std::min(kKC, K - pc);
      parallel_for(panels, serial ? panels : 8, [&](size_t q0, size_t q1) {
        pack_b(B, pc, kc, jc + q0 * nr, std::min(nc, q1 * nr) - q0 * nr, (int)nr, Bp.data() + q0 * kc * nr);
      });
      const size_t mblocks = (M + MC - 1) / MC;
      // few row blocks: also split the columns so that every thread has work
      size_t S = mblocks >= 2 * (size_t)threads || serial ? 1 : std::min(panels, (2 * (size_t)threads + mblocks - 1) / mblocks);
      const size_t per = (panels + S - 1) / S;
      S = (panels + per - 1) / per;
      const bool accum = acc || pc > 0;
      parallel_for(mblocks * S, serial ? mblocks * S : 1, [&](size_t t0, size_t t1) {
        std::vector<float> Ap(a_floats(A, std::min(M, MC), kc, (int)mr));
        size_t packed = (size_t)-1;
        for (size_t t = t0; t < t1; ++t) {
          const size_t ib = t / S, s = t % S;
          const size_t i0 = ib * MC, mb = std::min(MC, M - i0);
          if (packed != ib) {
            pack_a(A, i0, mb, pc, kc, (int)mr, Ap.data());
            packed = ib;
          }
          const size_t q0 = s * per, q1 = std::min(panels, q0 + per);
          const size_t c0 = q0 * nr, cn = std::min(nc, q1 * nr) - c0;
          float* cbase = cmap ? C + jc + c0 : C + i0 * ldc + jc + c0;
          macro(Kn, mb, cn, kc, a_rows(A), Ap.data(), Bp.data() + q0 * kc * nr, cbase, ldc, cmap ? cmap + i0 : nullptr, accum);
        }
      });
    }
  }
}

// ---- FMA peak ---------------------------------------------------------------------------------

namespace {

RK_TARGET_AVX512 __attribute__((noinline)) void fma_loop512(long iters) {
  __asm__ volatile(
      "vxorps %%xmm0, %%xmm0, %%xmm0\n\t"
      "vmovaps %%zmm0, %%zmm1\n\t vmovaps %%zmm0, %%zmm2\n\t vmovaps %%zmm0, %%zmm3\n\t vmovaps %%zmm0, %%zmm4\n\t"
      "vmovaps %%zmm0, %%zmm5\n\t vmovaps %%zmm0, %%zmm6\n\t vmovaps %%zmm0, %%zmm7\n\t vmovaps %%zmm0, %%zmm8\n\t"
      "vmovaps %%zmm0, %%zmm9\n\t vmovaps %%zmm0, %%zmm10\n\t vmovaps %%zmm0, %%zmm11\n\t"
      "vmovaps %%zmm0, %%zmm12\n\t vmovaps %%zmm0, %%zmm13\n\t"
      "1:\n\t"
      "vfmadd231ps %%zmm12, %%zmm13, %%zmm0\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm1\n\t"
      "vfmadd231ps %%zmm12, %%zmm13, %%zmm2\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm3\n\t"
      "vfmadd231ps %%zmm12, %%zmm13, %%zmm4\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm5\n\t"
      "vfmadd231ps %%zmm12, %%zmm13, %%zmm6\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm7\n\t"
      "vfmadd231ps %%zmm12, %%zmm13, %%zmm8\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm9\n\t"
      "vfmadd231ps %%zmm12, %%zmm13, %%zmm10\n\t vfmadd231ps %%zmm12, %%zmm13, %%zmm11\n\t"
      "dec %0\n\t jnz 1b\n\t vzeroupper\n\t"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
        "cc");
}

RK_TARGET_AVX2 __attribute__((noinline)) void fma_loop256(long iters) {
  __asm__ volatile(
      "vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
      "vmovaps %%ymm0, %%ymm1\n\t vmovaps %%ymm0, %%ymm2\n\t vmovaps %%ymm0, %%ymm3\n\t vmovaps %%ymm0, %%ymm4\n\t"
      "vmovaps %%ymm0, %%ymm5\n\t vmovaps %%ymm0, %%ymm6\n\t vmovaps %%ymm0, %%ymm7\n\t vmovaps %%ymm0, %%ymm8\n\t"
      "vmovaps %%ymm0, %%ymm9\n\t vmovaps %%ymm0, %%ymm10\n\t vmovaps %%ymm0, %%ymm11\n\t"
      "vmovaps %%ymm0, %%ymm12\n\t vmovaps %%ymm0, %%ymm13\n\t"
      "1:\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm0\n\t vfmadd231ps %%ymm12, %%ymm13, %%ymm1\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm2\n\t vfmadd231ps %%ymm12, %%ymm13, %%ymm3\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm4\n\t vfmadd231ps %%ymm12, %%ymm13, %%ymm5\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm6\n\t vfmadd231ps %%ymm12, %%ymm13, %%ymm7\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm8\n\t vfmadd231ps %%ymm12, %%ymm13, %%ymm9\n\t"
      "vfmadd231ps %%ymm12, %%ymm13, %%ymm10\n\t vfmadd231ps %%ymm12, %%ymm13, %%ymm11\n\t"
      "dec %0\n\t jnz 1b\n\t vzeroupper\n\t"
      : "+r"(iters)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
        "cc");
}

}  // namespace

double fma_peak(int threads, int width, double seconds) {
  bool w512 = width == 512 || (width != 256 && detected_isa() == Isa::avx512);
  if (w512 && detected_isa() != Isa::avx512) return 0.0;
  if (!w512 && detected_isa() == Isa::scalar) return 0.0;
  auto loop = w512 ? fma_loop512 : fma_loop256;
  const double flops_per_iter = 12.0 * (w512 ? 32.0 : 16.0);
  // calibrate on this thread: iterations for `seconds`
  long probe = 1 << 22;
  auto t0 = std::chrono::steady_clock::now();
  loop(probe);
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  long iters = (long)std::max(1.0, probe * seconds / std::max(dt, 1e-9));
  if (threads < 1) threads = 1;
  std::vector<double> secs(threads, 0.0);
  // each thread's own CPU time (not wall time): on a shared machine a descheduled thread does not
  // lower the figure, which is the rate of FMAs per core-second
  auto cpu_now = [] {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
  };
  auto work = [&](int t) {
    double a = cpu_now();
    loop(iters);
    secs[t] = cpu_now() - a;
  };
  std::vector<std::thread> ts;
  for (int t = 1; t < threads; ++t) ts.emplace_back(work, t);
  work(0);
  for (auto& t : ts) t.join();
  double total = 0;
  for (double s : secs) total += flops_per_iter * (double)iters / s;
  return total;
}

}  // namespace gemm
}  // namespace rk
