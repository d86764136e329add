// A blocked single-precision GEMM of our own for the linear family (SPEC §8): packed panels and
// register-tile micro-kernels (AVX-512 12×32, AVX2+FMA 6×16, portable 4×16), in the BLIS loop
// structure (Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication", §4–6):
//
//   C(i,j) (+)= Σ_k A(i,k)·B(k,j)
//
// A and B are read through `Mat` views (any strides, an optional row-index map, f32/f16/bf16
// elements widened to f32 while packing), so one driver serves every product of the family:
// logits = hidden·Wᵀ (forward and recompute), gradWeight = dZᵀ·hidden, gradHidden = dZ·W.
// Packing: A into MR-row panels [k][MR], B into NR-column panels [k][NR], zero-padded to whole
// tiles; the micro-kernel keeps an MR×NR tile of C in registers for a whole KC block.
#pragma once
#include <cstddef>
#include <cstdint>

#include "../include/rk_common.h"

namespace rk {
namespace gemm {

// Element (r, c) of a logical matrix: p[(map ? map[r] : r)·rs + c·cs], of dtype dt (RK_DT_*).
struct Mat {
  const void* p;
  int dt;
  size_t rs, cs;
  const int32_t* map;
};

// The micro-kernel of one instruction set: mr × nr register tile.
//   run_r(kc, Ap, Bp, C, ldc, acc): C[r·ldc + c] = (acc ? C[..] : 0) + Σ_k Ap[r·KC + k]·Bp[k·nr + c]
//   run_k: the same with Ap[k·mr + r]
//   for r < mr, c < nr (a whole tile; callers pass a scratch tile at the edges).
// Two layouts of the A panel: row-major [mr][KC] when A's rows are contiguous along k (hidden,
// dZ: packing is a converting copy of each row), k-major [kc][mr] otherwise (dZᵀ).
struct Kernel {
  int mr, nr;
  void (*run_r)(size_t kc, const float* Ap, const float* Bp, float* C, size_t ldc, bool acc);
  void (*run_k)(size_t kc, const float* Ap, const float* Bp, float* C, size_t ldc, bool acc);
};
const Kernel& kernel();  // for rk::isa()

// Blocking (elements): KC = depth of one packed block; MC = rows of A per packed block.
constexpr size_t kKC = 256;
size_t mc_rows(const Kernel& k);  // a multiple of k.mr

inline size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

// Packs rows [i0, i0+m) × depth [k0, k0+kc) of A (M×K) into ceil(m/mr) panels (rows beyond m
// are zeros): row-major [mr][KC] when A.cs == 1, else k-major [kc][mr]. a_floats: the size.
void pack_a(const Mat& A, size_t i0, size_t m, size_t k0, size_t kc, int mr, float* Ap);
size_t a_floats(const Mat& A, size_t m, size_t kc, int mr);
inline bool a_rows(const Mat& A) { return A.cs == 1; }
// Packs depth [k0, k0+kc) × columns [j0, j0+n) of B (K×N) into ceil(n/nr) panels of kc·nr floats
// (columns beyond n are zeros).
void pack_b(const Mat& B, size_t k0, size_t kc, size_t j0, size_t n, int nr, float* Bp);

// One packed block product: C (m×n, rows at C + row(i)·ldc with row(i) = cmap ? cmap[i] : i,
// columns at + j) (+)= Ap (m×kc) · Bp (kc×n). Edge tiles go through a scratch tile.
void macro(const Kernel& K, size_t m, size_t n, size_t kc, bool a_rows, const float* Ap, const float* Bp, float* C, size_t ldc,
           const int32_t* cmap, bool acc);

// The whole product, parallel over the pool: C (M×N; row i at C + (cmap ? cmap[i] : i)·ldc)
// (+)= A (M×K) · B (K×N). acc = false overwrites C (K = 0 then writes zeros). Scratch: one packed
// B block (KC × min(N, 2048) floats) plus, per thread, one packed A block (MC × KC floats).
void gemm(const Mat& A, const Mat& B, size_t M, size_t N, size_t K, float* C, size_t ldc, const int32_t* cmap, bool acc);
// Scratch bytes of gemm() for these sizes and the current thread count.
size_t gemm_scratch_bytes(size_t M, size_t N, size_t K);

// FMA throughput microbenchmark: `threads` threads, each running 12 independent chains of
// register-only fused multiply-adds (AVX-512 when available, else AVX2; `width` 512 or 256 forces
// one) for about `seconds`. Returns FLOP/s (2 per lane per FMA) summed over the threads, each
// thread's rate taken over its own CPU time (so a shared machine does not lower it).
double fma_peak(int threads, int width, double seconds);

}  // namespace gemm
}  // namespace rk
