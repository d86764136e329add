// GPU benchmark support: device buffers filled on the device, event timing, a reporter that
// prints a row per case and collects JSON. Each family adds bench/gpu/<family>.cu defining
// `void gpu_bench_<family>(rkg::Reporter&)`, called from bench/gpu/main.cu.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace rkg {

#define RKG_CHECK(x)                                                                           \
  do {                                                                                         \
    cudaError_t e_ = (x);                                                                      \
    if (e_ != cudaSuccess) {                                                                   \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_));       \
      exit(1);                                                                                 \
    }                                                                                          \
  } while (0)

// Device allocation freed at scope exit.
template <class T>
struct Buf {
  T* p = nullptr;
  size_t n = 0;
  explicit Buf(size_t n_) : n(n_) { RKG_CHECK(cudaMalloc(&p, (n ? n : 1) * sizeof(T))); }
  ~Buf() { cudaFree(p); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  size_t bytes() const { return n * sizeof(T); }
};

// Fills with deterministic pseudo-random values in [lo, hi) (floats), or [0, mod) (ints).
void fill_uniform(float* p, size_t n, float lo, float hi, uint32_t seed);
void fill_bf16(uint16_t* p, size_t n, float lo, float hi, uint32_t seed);
void fill_f16(uint16_t* p, size_t n, float lo, float hi, uint32_t seed);
void fill_int(int32_t* p, size_t n, int32_t mod, uint32_t seed);
void fill_u8(uint8_t* p, size_t n, uint8_t value);

// Host-side checks: CUDA entry points (rk_cuda_*, host pointers) against the CPU kernels
// (rk_cpu_*, same args struct) on random inputs. The CPU kernels are tested against the float64
// js reference by `npm test`, so agreement here carries that to the GPU.
struct Rand {
  uint64_t s;
  explicit Rand(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint32_t next() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (uint32_t)(s >> 11); }
  float uniform(float lo, float hi) { return lo + (hi - lo) * (next() >> 8) * (1.0f / 16777216.0f); }
  std::vector<float> floats(size_t n, float lo, float hi) { std::vector<float> v(n); for (auto& x : v) x = uniform(lo, hi); return v; }
  std::vector<uint8_t> mask(size_t n, float p_on) { std::vector<uint8_t> v(n); for (auto& x : v) x = uniform(0, 1) < p_on; return v; }
  std::vector<int32_t> ints(size_t n, int32_t mod) { std::vector<int32_t> v(n); for (auto& x : v) x = (int32_t)(next() % (uint32_t)mod); return v; }
};

struct Checker {
  int failures = 0, checks = 0;
  // |a − b| ≤ tol·(1 + |b|) elementwise; NaN must match NaN; ±inf must match exactly.
  void close(const char* what, const float* got, const float* want, size_t n, double tol = 2e-5) {
    ++checks;
    size_t bad = 0, first = n;
    double worst = 0;
    for (size_t i = 0; i < n; ++i) {
      double g = got[i], w = want[i];
      bool ok = (w != w) ? (g != g) : (std::isinf(w) ? g == w : std::fabs(g - w) <= tol * (1 + std::fabs(w)));
      if (!ok) { if (first == n) first = i; ++bad; }
      if (w == w && !std::isinf(w)) worst = std::max(worst, std::fabs(g - w) / (1 + std::fabs(w)));
    }
    if (bad) {
      ++failures;
      printf("CHECK FAIL %-40s %zu/%zu elements off (first [%zu]: %g vs %g)\n", what, bad, n, first, (double)got[first], (double)want[first]);
    } else {
      printf("check ok   %-40s n=%zu worst rel %.2e\n", what, n, worst);
    }
  }
  void equal_i32(const char* what, const int32_t* got, const int32_t* want, size_t n) {
    ++checks;
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) bad += got[i] != want[i];
    if (bad) { ++failures; printf("CHECK FAIL %-40s %zu/%zu ints differ\n", what, bad, n); }
    else printf("check ok   %-40s n=%zu (exact)\n", what, n);
  }
  void status(const char* what, int rc, const char* err) {
    if (rc) { ++failures; printf("CHECK FAIL %-40s cuda error: %s\n", what, err); }
  }
};

struct Row {
  std::string family, op, size;
  double seconds, bytes, flops;
};

class Reporter {
 public:
  double copy_bandwidth = 0;  // device-to-device copy, bytes read + written per second
  bool quick = false;
  // Times fn (which launches work on stream 0) with events: warm-up, then the median of reps.
  template <class F>
  double time(F&& fn, int reps = 20) {
    fn();
    RKG_CHECK(cudaDeviceSynchronize());
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    std::vector<float> ms;
    for (int i = 0; i < reps; ++i) {
      cudaEventRecord(a);
      fn();
      cudaEventRecord(b);
      cudaEventSynchronize(b);
      float t = 0;
      cudaEventElapsedTime(&t, a, b);
      ms.push_back(t);
    }
    RKG_CHECK(cudaGetLastError());
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2] * 1e-3;
  }
  void add(const char* family, const char* op, const std::string& size, double seconds, double bytes, double flops = 0) {
    rows.push_back({family, op, size, seconds, bytes, flops});
    double gbs = bytes / seconds / 1e9;
    printf("| %-10s | %-28s | %-18s | %10.1f us | %8.1f GB/s | %5.1f%% of copy |", family, op, size.c_str(), seconds * 1e6, gbs,
           100.0 * bytes / seconds / copy_bandwidth);
    if (flops > 0) printf(" %8.1f TFLOP/s |", flops / seconds / 1e12);
    printf("\n");
    fflush(stdout);
  }
  std::vector<Row> rows;
  Checker check;
};

}  // namespace rkg

