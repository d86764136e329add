#include "simd.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>

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

}  // namespace rk
