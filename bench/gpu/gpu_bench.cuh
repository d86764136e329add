// GPU benchmark support: device buffers filled on the device, event timing, a reporter that
// prints a row per case and collects JSON. Each family adds bench/gpu/<family>.cu defining
// `void gpu_bench_<family>(rkg::Reporter&)`, called from bench/gpu/main.cu.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

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
};

}  // namespace rkg

