#include "simd.hpp"

#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "pool.hpp"

namespace rk {
namespace {
Isa detect() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
  return Isa::scalar;
}
Isa initial_force() {
  const char* s = std::getenv("RLHF_KERNELS_SIMD");
  if (!s) return Isa::avx512;
  if (!std::strcmp(s, "scalar")) return Isa::scalar;
  if (!std::strcmp(s, "avx2")) return Isa::avx2;
  return Isa::avx512;
}
const Isa g_detected = detect();
std::atomic<int> g_forced{(int)initial_force()};
}  // namespace

Isa detected_isa() { return g_detected; }
Isa isa() {
  int f = g_forced.load(std::memory_order_relaxed);
  return (int)g_detected < f ? g_detected : (Isa)f;
}
void force_isa(Isa i) { g_forced.store((int)i, std::memory_order_relaxed); }
const char* isa_name(Isa i) {
  switch (i) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "scalar";
  }
}


// FMA throughput probe (see simd.hpp). K independent accumulator chains per thread, so that the
// FMA latency (4 to 5 cycles) times the number of FMA pipes (2) is covered; a·m + c with
// m < 1 converges, so no value overflows or turns subnormal. The sum of the chains is written to
// a volatile sink so the compiler keeps every call.
namespace {
constexpr float kM = 0.99999f, kC = 1e-3f;
RK_TARGET_AVX512 __attribute__((noinline)) void fma_loop_avx512(size_t iters, volatile float* out) {
  constexpr int K = 16;
  __m512 a[K];
  const __m512 m = _mm512_set1_ps(kM), c = _mm512_set1_ps(kC);
  for (int k = 0; k < K; ++k) a[k] = _mm512_set1_ps((float)k);
  for (size_t i = 0; i < iters; ++i)
    for (int k = 0; k < K; ++k) a[k] = _mm512_fmadd_ps(a[k], m, c);
  __m512 s = a[0];
  for (int k = 1; k < K; ++k) s = _mm512_add_ps(s, a[k]);
  *out = _mm512_reduce_add_ps(s);  // a side effect: the call is not pure, so it is not hoisted
}
RK_TARGET_AVX2 __attribute__((noinline)) void fma_loop_avx2(size_t iters, volatile float* out) {
  constexpr int K = 12;  // 16 ymm registers: 12 chains + the two constants
  __m256 a[K];
  const __m256 m = _mm256_set1_ps(kM), c = _mm256_set1_ps(kC);
  for (int k = 0; k < K; ++k) a[k] = _mm256_set1_ps((float)k);
  for (size_t i = 0; i < iters; ++i)
    for (int k = 0; k < K; ++k) a[k] = _mm256_fmadd_ps(a[k], m, c);
  __m256 s = a[0];
  for (int k = 1; k < K; ++k) s = _mm256_add_ps(s, a[k]);
  float o[8];
  _mm256_storeu_ps(o, s);
  *out = o[0] + o[1] + o[2] + o[3] + o[4] + o[5] + o[6] + o[7];
}
// Baseline x86-64 (SSE2, no FMA): a·m + c as a multiply and a dependent add, 2 FLOPs per lane.
__attribute__((noinline)) void fma_loop_base(size_t iters, volatile float* out) {
  typedef float v4 __attribute__((vector_size(16)));
  constexpr int K = 12;
  v4 a[K];
  const v4 m = {kM, kM, kM, kM}, c = {kC, kC, kC, kC};
  for (int k = 0; k < K; ++k) a[k] = v4{(float)k, (float)k, (float)k, (float)k};
  for (size_t i = 0; i < iters; ++i)
    for (int k = 0; k < K; ++k) a[k] = a[k] * m + c;
  v4 s = a[0];
  for (int k = 1; k < K; ++k) s += a[k];
  *out = s[0] + s[1] + s[2] + s[3];
}
}  // namespace

double fma_peak(size_t iters, int reps) {
  const Isa level = isa();
  const int lanes = level == Isa::avx512 ? 16 : level == Isa::avx2 ? 8 : 4;
  const int chains = level == Isa::avx512 ? 16 : 12;
  const size_t items = (size_t)num_threads() * 64;  // many small chunks: a late worker costs little
  double best = 1e30;
  for (int r = 0; r < reps + 1; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    parallel_for(items, 1, [&](size_t b, size_t e) {
      volatile float sink = 0.0f;
      for (size_t k = b; k < e; ++k) {
        if (level == Isa::avx512) fma_loop_avx512(iters, &sink);
        else if (level == Isa::avx2) fma_loop_avx2(iters, &sink);
        else fma_loop_base(iters, &sink);
      }
    });
    double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0 && t < best) best = t;  // the first pass wakes the workers and the clocks
  }
  return 2.0 * (double)lanes * chains * (double)iters * (double)items / best;
}

}  // namespace rk
