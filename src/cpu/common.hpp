// Helpers shared by the CPU kernels.
#pragma once
#include <cstddef>

#include "../core/common.hpp"
#include "pool.hpp"
#include "simd.hpp"

namespace rk {

// Elements per parallel chunk for elementwise kernels: below this a call runs serially. Measured
// here (2 vCPUs, futex wake-ups): the pool only pays off above ~30 µs of serial work, i.e. ~2^17
// to 2^18 elements of a cheap elementwise op; 2^15 made 64K-element calls ~1.7x slower than serial.
constexpr size_t kElemGrain = 1 << 17;

// Calls f(mask) with the concrete mask type (MaskNone / MaskU8 / MaskF32), so that kernels are
// instantiated per mask type and the per-element test compiles to a vector compare.
template <class F>
inline void with_mask(int kind, const void* p, F&& f) {
  if (kind == MASK_U8) f(MaskU8{static_cast<const uint8_t*>(p)});
  else if (kind == MASK_F32) f(MaskF32{static_cast<const float*>(p)});
  else f(MaskNone{});
}

// Rows of T elements split across the pool, at least ~kElemGrain elements per chunk.
template <class F>
inline void parallel_rows(size_t B, size_t T, F&& f) {
  size_t grain = T >= kElemGrain ? 1 : kElemGrain / (T ? T : 1);
  parallel_for(B, grain, [&](size_t b0, size_t b1) { f(b0, b1); });
}

// Index of the last counted position of row [p, p+T), or -1 (reads the mask from the end).
template <class M>
inline long last_counted(const M& m, size_t base, size_t T) {
  for (size_t t = T; t-- > 0;)
    if (m[base + t]) return (long)t;
  return -1;
}

}  // namespace rk
