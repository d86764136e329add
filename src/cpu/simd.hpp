// Run-time choice of the instruction set for the CPU kernels.
//
// A kernel writes its loop once, as a lambda marked RK_LOOP, and calls simd_dispatch(lambda).
// The lambda is inlined into three wrappers compiled for AVX-512 (F/BW/VL/DQ), AVX2+FMA and the
// x86-64 baseline, so GCC vectorises the same loop for each; the best one the CPU supports is
// called. Loops that the vectoriser cannot handle (reductions over max, dependent recurrences)
// use intrinsics directly inside `if (level() >= Isa::avx512)` blocks in RK_TARGET_* functions.
//
// Rules that keep the loops vectorisable: copy pointers into local __restrict variables inside
// the lambda, use rk::clampf/maxf/minf (selects) rather than std::fmin, and rk::expf_/logf_
// rather than libm.
#pragma once
#include <cstddef>

namespace rk {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

Isa detected_isa();      // what the CPU supports
Isa isa();               // what kernels use: min(detected, forced)
void force_isa(Isa i);   // tests: run the AVX2 and baseline paths on an AVX-512 machine
const char* isa_name(Isa i);

// Measured peak of fused multiply-adds at the current level (isa()) with the pool's threads, in
// FLOP/s (an FMA lane is 2 FLOPs; the baseline level has no FMA and counts a multiply plus an
// add): best of `reps` timed passes of `iters` iterations per chunk. The benchmark's compute roof.
double fma_peak(size_t iters, int reps);

#define RK_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,bmi2")))
#define RK_TARGET_AVX2 __attribute__((target("avx2,fma,f16c,bmi2")))
#define RK_LOOP __attribute__((always_inline))

template <class F> RK_TARGET_AVX512 __attribute__((noinline)) void run_avx512(F& f) { f(); }
template <class F> RK_TARGET_AVX2 __attribute__((noinline)) void run_avx2(F& f) { f(); }
template <class F> __attribute__((noinline)) void run_base(F& f) { f(); }

template <class F> inline void simd_dispatch(F&& f) {
  switch (isa()) {
    case Isa::avx512: run_avx512(f); break;
    case Isa::avx2: run_avx2(f); break;
    default: run_base(f); break;
  }
}

}  // namespace rk
