// GPU benchmark driver (bench/gpu/run.sh): device info, device-to-device copy bandwidth, then
// each family's cases on device-resident data; writes a JSON report to argv[1].
#include <cstring>

#include "gpu_bench.cuh"

namespace rkg {
namespace {
__device__ uint32_t hash(uint32_t x) {
  x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
  return x;
}
__global__ void k_uniform(float* p, size_t n, float lo, float hi, uint32_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    p[i] = lo + (hi - lo) * (hash((uint32_t)i * 2654435761u ^ seed) >> 8) * (1.0f / 16777216.0f);
}
__global__ void k_bf16(uint16_t* p, size_t n, float lo, float hi, uint32_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float v = lo + (hi - lo) * (hash((uint32_t)i * 2654435761u ^ seed) >> 8) * (1.0f / 16777216.0f);
    p[i] = (uint16_t)(__float_as_uint(v) >> 16);
  }
}
__global__ void k_f16(uint16_t* p, size_t n, float lo, float hi, uint32_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float v = lo + (hi - lo) * (hash((uint32_t)i * 2654435761u ^ seed) >> 8) * (1.0f / 16777216.0f);
    p[i] = __half_as_ushort(__float2half(v));
  }
}
__global__ void k_int(int32_t* p, size_t n, int32_t mod, uint32_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    p[i] = (int32_t)(hash((uint32_t)i * 2654435761u ^ seed) % (uint32_t)mod);
}
}  // namespace
void fill_uniform(float* p, size_t n, float lo, float hi, uint32_t seed) { k_uniform<<<1024, 256>>>(p, n, lo, hi, seed); }
void fill_bf16(uint16_t* p, size_t n, float lo, float hi, uint32_t seed) { k_bf16<<<1024, 256>>>(p, n, lo, hi, seed); }
void fill_f16(uint16_t* p, size_t n, float lo, float hi, uint32_t seed) { k_f16<<<1024, 256>>>(p, n, lo, hi, seed); }
void fill_int(int32_t* p, size_t n, int32_t mod, uint32_t seed) { k_int<<<1024, 256>>>(p, n, mod, seed); }
void fill_u8(uint8_t* p, size_t n, uint8_t value) { cudaMemset(p, value, n); }
}  // namespace rkg

// Families (weak: a family without a GPU bench file simply has no cases).
#define RKG_FAMILY(name) __attribute__((weak)) void gpu_bench_##name(rkg::Reporter&);
RKG_FAMILY(logprobs)
RKG_FAMILY(rewards)
RKG_FAMILY(advantages)
RKG_FAMILY(preference)
RKG_FAMILY(ppo)
RKG_FAMILY(prepack)
RKG_FAMILY(sampling)
RKG_FAMILY(linear)
RKG_FAMILY(device)

// rk_gpu_bench [results.json] [--quick] [--probe]
//   --probe: print the device and exit (run.sh checks that a binary built elsewhere runs here).
int main(int argc, char** argv) {
  int dev = 0;
  cudaDeviceProp prop;
  RKG_CHECK(cudaGetDeviceProperties(&prop, dev));
  printf("device: %s, %.1f GiB, %d SMs, cc %d.%d\n", prop.name, prop.totalGlobalMem / 1073741824.0, prop.multiProcessorCount,
         prop.major, prop.minor);
  rkg::Reporter r;
  const char* json = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--probe")) return 0;
    if (!strcmp(argv[i], "--quick")) r.quick = true;
    else json = argv[i];
  }
  {
    size_t bytes = (size_t)1 << 30;
    rkg::Buf<char> a(bytes), b(bytes);
    RKG_CHECK(cudaMemset(a.p, 1, bytes));
    double s = r.time([&] { cudaMemcpyAsync(b.p, a.p, bytes, cudaMemcpyDeviceToDevice); }, 10);
    r.copy_bandwidth = 2.0 * bytes / s;
    printf("device-to-device copy: %.0f GB/s (read + write)\n", r.copy_bandwidth / 1e9);
  }
  printf("| family     | op                           | size               |       time    |   bandwidth   |  of copy      |\n");
  void (*fams[])(rkg::Reporter&) = {gpu_bench_logprobs, gpu_bench_rewards, gpu_bench_advantages, gpu_bench_preference,
                                    gpu_bench_ppo, gpu_bench_prepack, gpu_bench_sampling, gpu_bench_linear, gpu_bench_device};
  for (auto f : fams)
    if (f) f(r);
  if (json) {
    FILE* out = fopen(json, "w");
    if (out) {
      fprintf(out, "{\n  \"device\": \"%s\",\n  \"memoryBytes\": %zu,\n  \"copyBandwidth\": %.0f,\n  \"checks\": %d,\n  \"checkFailures\": %d,\n  \"results\": [\n", prop.name,
              prop.totalGlobalMem, r.copy_bandwidth, r.check.checks, r.check.failures);
      for (size_t i = 0; i < r.rows.size(); ++i) {
        auto& w = r.rows[i];
        fprintf(out, "    {\"family\": \"%s\", \"op\": \"%s\", \"size\": \"%s\", \"seconds\": %.9g, \"bytes\": %.0f, \"flops\": %.0f}%s\n",
                w.family.c_str(), w.op.c_str(), w.size.c_str(), w.seconds, w.bytes, w.flops, i + 1 < r.rows.size() ? "," : "");
      }
      fprintf(out, "  ]\n}\n");
      fclose(out);
    }
  }
  printf("\nGPU checks: %d of %d failed\n", r.check.failures, r.check.checks);
  return r.check.failures ? 2 : 0;
}
