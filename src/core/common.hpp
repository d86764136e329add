// rlhf-kernels: math shared by the CPU (C++) and CUDA kernels.
//
// Everything here is header-only, branch-free where it matters (so GCC's vectoriser turns loops
// over these functions into AVX-512/AVX2 code inside the ISA-specific wrappers of cpu/simd.hpp),
// and usable from device code: RK_HD expands to __host__ __device__ under nvcc.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define RK_HD __host__ __device__ __forceinline__
#define RK_INF __int_as_float(0x7f800000)
#else
#define RK_HD inline __attribute__((always_inline))
#endif

namespace rk {

RK_HD float bits_to_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f; memcpy(&f, &u, 4); return f;
#endif
}
RK_HD uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u; memcpy(&u, &f, 4); return u;
#endif
}
RK_HD float inf_f() { return bits_to_float(0x7f800000u); }
RK_HD float nan_f() { return bits_to_float(0x7fc00000u); }
RK_HD bool is_nan(float x) { return x != x; }

// Comparisons written as selects so that NaN propagates (x > hi is false for NaN) and loops
// vectorise (std::fmin/fmax carry NaN semantics that GCC will not if-convert).
RK_HD float clampf(float x, float lo, float hi) { x = x < lo ? lo : x; return x > hi ? hi : x; }
RK_HD float maxf(float a, float b) { return a > b ? a : b; }
RK_HD float minf(float a, float b) { return a < b ? a : b; }
RK_HD float absf(float x) { return bits_to_float(float_to_bits(x) & 0x7fffffffu); }

// exp(x) in float, relative error < 2 ulp on the whole range (Cephes-style: x = n·ln2 + r,
// |r| ≤ ln2/2, degree-6 polynomial, 2^n by exponent bits). exp(-inf) = 0, exp(+inf) = +inf,
// exp(NaN) = NaN; results below ~1e-38 flush to 0 (far below the SPEC's absolute tolerance).
RK_HD float expf_(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  // Clamp to [-104, 89]: above, 2^n·p overflows to +inf by itself; below, the result is flushed
  // to 0 by the one select at the end (exp(-inf) must be exactly 0). NaN passes through the
  // arithmetic. (One select only: with more, GCC's jump threading defeats the vectoriser.)
  float xc = clampf(x, -104.0f, 89.0f);
  // n = round(x·log2 e) via truncation + fix-up (GCC will not vectorise floorf without
  // -fno-trapping-math).
  float v = xc * 1.44269504088896341f + 0.5f;
  float t = (float)(int32_t)v;
  float n = t > v ? t - 1.0f : t;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n = 2^n1 · 2^n2 with n in [-150, 129], so each factor's exponent field stays in range.
  int32_t ni = (int32_t)n;
  int32_t n1 = ni >> 1, n2 = ni - n1;
  float s1 = bits_to_float((uint32_t)(n1 + 127) << 23);
  float s2 = bits_to_float((uint32_t)(n2 + 127) << 23);
  float y = p * s1 * s2;
  return x < -104.0f ? 0.0f : y;  // NaN fails the test and stays NaN
#endif
}

// log(x) in float, < 2 ulp for normal x > 0 (Cephes logf). log(0) = -inf, log(x<0) = NaN,
// log(+inf) = +inf, log(NaN) = NaN. Subnormal inputs are treated as 0.
RK_HD float logf_(float x) {
#if defined(__CUDA_ARCH__)
  return logf(x);
#else
  uint32_t u = float_to_bits(x);
  int32_t e = (int32_t)((u >> 23) & 0xff) - 126;
  float m = bits_to_float((u & 0x007fffffu) | 0x3f000000u);  // m in [0.5, 1)
  bool small = m < 0.707106781186547524f;
  e = small ? e - 1 : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  float fe = (float)e;
  float y = m * z * p;
  y = y + fe * -2.12194440e-4f;
  y = y - 0.5f * z;
  y = m + y;
  y = y + fe * 0.693359375f;
  y = x < 1.17549435e-38f ? -inf_f() : y;   // 0 and subnormals
  y = x < 0.0f ? nan_f() : y;
  y = x == inf_f() ? x : y;
  return x != x ? x : y;
#endif
}

// log(1 + y) for y ≥ -1, accurate for tiny y (Kahan: log(u)·y/(u−1) with u = 1 + y).
RK_HD float log1pf_(float y) {
  float u = 1.0f + y;
  float d = u - 1.0f;
  float l = logf_(u);
  return d == 0.0f ? y : (u == inf_f() ? u : l * (y / d));
}

// softplus(x) = log(1 + e^x), stable for any x: max(x,0) + log1p(e^{-|x|}). −log σ(x) = softplus(−x).
RK_HD float softplusf(float x) { return maxf(x, 0.0f) + log1pf_(expf_(-absf(x))); }
// σ(x), stable for any x.
RK_HD float sigmoidf(float x) {
  float e = expf_(-absf(x));
  float s = 1.0f / (1.0f + e);
  return x >= 0.0f ? s : e * s;
}

// f16 / bf16 widening (exact).
RK_HD float bf16_to_float(uint16_t h) { return bits_to_float((uint32_t)h << 16); }
RK_HD float f16_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t ex = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  // normal: rebias; subnormal: man·2^-24 computed in float; inf/nan: all-ones exponent.
  float sub = (float)man * 5.9604644775390625e-8f;
  uint32_t normal = sign | ((ex + 112u) << 23) | (man << 13);
  uint32_t special = sign | 0x7f800000u | (man << 13);
  uint32_t bits = ex == 0x1fu ? special : normal;
  float f = bits_to_float(bits);
  float s = bits_to_float(float_to_bits(sub) | sign);
  return ex == 0 ? s : f;
}

// Masks: "nonzero means counts". Kind 0 = no mask (everything counts), 1 = u8, 2 = f32.
enum MaskKind : int { MASK_NONE = 0, MASK_U8 = 1, MASK_F32 = 2 };
struct MaskNone { RK_HD bool operator[](size_t) const { return true; } };
struct MaskU8 { const uint8_t* p; RK_HD bool operator[](size_t i) const { return p[i] != 0; } };
struct MaskF32 { const float* p; RK_HD bool operator[](size_t i) const { return p[i] != 0.0f; } };

}  // namespace rk
