// CUDA kernels of the linear family (SPEC §8): log-probs straight from hidden states.
//
// One GEMM kernel per element type, C[m][n] = Σ_k A(m,k)·B(n,k) over 128×128 output tiles, with a
// pluggable epilogue that reads the finished tile from shared memory:
//   - bf16 / f16: tensor cores (mma.sync m16n8k16, f32 accumulation; ldmatrix / ldmatrix.trans
//     fragments from padded shared-memory tiles, a 3-stage cp.async pipeline, 8 warps of 64×32;
//     the warp primitives of cuda/mma.cuh);
//   - f32: CUDA-core FFMA tiles (each thread 8×8 outputs), so f32 inputs keep f32 products and
//     sums (no TF32 rounding).
// Operands are described by `Opnd` (k-major or row-major storage, a row map for the counted rows,
// k planes for the split dZ), so the same kernels serve all four products of the family.
//
// Forward: rows with a counted label are compacted on the device; tiles of the logits
// hidden·Wᵀ (+ bias, ÷ τ) are folded in the epilogue into per-row online softmax statistics of
// the tile's 128 columns (core/logprobs.hpp lse_push_k, one ex2 per logit), written to a partial
// buffer [Na × ceil(V/128)] (12 bytes per entry: O(N·V/128), not [N, V]); a combine kernel merges
// each row's partials (lse_merge) and finishes logp, lse, entropy with the label's logit.
// Backward, per vocabulary chunk of VC columns (option `chunk`, default 8192):
//   1. recompute the chunk's logits tile by tile; the epilogue forms
//      dZ = ∂L/∂logits (core/linear.hpp linear_dz) into a chunk buffer [Na × VC];
//   2. gradBias_chunk = column sums of dZ; 3. gradWeight[chunk] = dZᵀ·hidden;
//   4. gradHidden += dZ·W[chunk].
// bf16: dZ is stored as two bf16 planes hi + lo (x = hi + lo to 16 significant bits; the lo plane
// is the rounding residual), and steps 3–4 run on the tensor cores over K = 2·(rows or VC) — two
// products per element instead of one, so the gradient keeps ~2^-17 relative precision instead of
// bf16's 2^-9. f16: f16's narrow exponent range would flush small dZ, so dZ stays f32 and steps
// 3–4 run as FFMA tiles (f16 operands widened when loaded). f32: FFMA everywhere.
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "../src/core/linear.hpp"
#include "common.cuh"
#include "linear.cuh"
#include "mma.cuh"
#include "preference.cuh"

#ifndef RK_LINEAR_COVER
#define RK_LINEAR_COVER(path) ((void)0)  // the host emulation (tests/cuda-emu/linear_emu.cc) counts the paths taken
#endif

namespace {

using rk::LseStats;

constexpr int kBM = 128, kBN = 128, kThreads = 256;
constexpr int kBK = 32;     // k tile of the tensor-core kernel (16-bit elements)
constexpr int kStages = 3;  // cp.async pipeline depth
constexpr int kPad = 8;     // 16-bit padding per shared-memory row: conflict-free ldmatrix
constexpr int kTileElems = kBM * (kBK + kPad);  // ≥ kBK·(kBM + kPad), the row-major layout
constexpr int kLdc = kBN + 4;                   // f32 C tile row stride
constexpr int kBKs = 8;                         // k tile of the FFMA kernel
constexpr int kGroupM = 8;                      // tile rasterisation: 8 row tiles per column sweep
constexpr int kNaPad = 64;  // the backward's dZ planes hold round_up(Na, kNaPad) rows: a multiple of every k tile
constexpr size_t kSmemC = (size_t)kBM * kLdc * 4;
constexpr size_t kSmemPipe = (size_t)2 * kStages * kTileElems * 2;
constexpr size_t kSmemTc = kSmemC > kSmemPipe ? kSmemC : kSmemPipe;

// An operand: element (r, k) of a logical (rows × K) matrix, r = the m (A) or n (B) index.
//   k-major (KM): p + plane·pstride + line(r)·ld + kk, line(r) = map ? map[r] : r + lineoff
//   row-major:    p + plane·pstride + line(kk)·ld + r, line(kk) = map ? map[kk] : kk + lineoff
// with plane = k / kmod, kk = k % kmod. It exists when r < rows, k < K and kk < kvalid (else 0).
struct Opnd {
  const void* p;
  long long ld, pstride, lineoff;
  const int32_t* map;
  int rows, kmod, kvalid, K;
  int vec;  // 16-byte loads allowed (alignment checked on the host)
};

// Elements of the FFMA kernel's operands (bf16 always goes through the tensor cores).
template <int DT> struct Elt;
template <> struct Elt<RK_DT_F32> { using T = float; __device__ static float f(T x) { return x; } };
template <> struct Elt<RK_DT_F16> { using T = uint16_t; __device__ static float f(T x) { return rk::f16_to_float(x); } };

__device__ __forceinline__ bool op_ok(const Opnd& o, int r, int k) { return r < o.rows && k < o.K && (k % o.kmod) < o.kvalid; }

template <class T, bool KM>
__device__ __forceinline__ const T* op_ptr(const Opnd& o, int r, int k) {
  const int pl = k / o.kmod, kk = k - pl * o.kmod;
  const T* base = static_cast<const T*>(o.p) + (long long)pl * o.pstride;
  if (KM) return base + (o.map ? (long long)o.map[r] : r + o.lineoff) * o.ld + kk;
  return base + (o.map ? (long long)o.map[kk] : kk + o.lineoff) * o.ld + r;
}

// Tile (m, n) of linear block b (BM × BN tiles): groups of kGroupM row tiles sweep all column
// tiles, so a group's rows of A stay in L2 while B streams past once per group.
template <int BM = kBM, int BN = kBN>
__device__ __forceinline__ void tile_of(unsigned b, int M, int N, int* m0, int* n0) {
  const int num_m = (M + BM - 1) / BM, num_n = (N + BN - 1) / BN;
  const unsigned per = (unsigned)kGroupM * num_n;
  const int first = (int)(b / per) * kGroupM;
  const int gsize = min(num_m - first, kGroupM);
  const int local = (int)(b % per);
  *m0 = (first + local % gsize) * BM;
  *n0 = (local / gsize) * BN;
}

// Warp shuffle of a statistics triple (tests/cuda-emu/linear_emu.cc supplies a host version, as it
// does for cuda/mma.cuh's ldmatrix / mma.sync / cp.async that the kernels below use).
#if !defined(RK_CUDA_EMU)
__device__ __forceinline__ LseStats shfl_xor_st(LseStats s, int off) {
  return LseStats{__shfl_xor_sync(0xffffffffu, s.m, off), __shfl_xor_sync(0xffffffffu, s.s, off),
                  __shfl_xor_sync(0xffffffffu, s.w, off)};
}
#endif

// ---- tensor-core GEMM ----------------------------------------------------------------------------

// Loads the (128 × kBK) tile at (row0, k0) of a 16-bit operand into shared memory: k-major as
// [128][kBK + kPad], row-major as [kBK][128 + kPad]. Whole 16-byte chunks by cp.async; a chunk at
// an edge or a misaligned operand element by element (missing elements are 0).
template <bool KM>
__device__ __forceinline__ void tc_load(uint16_t* sm, const Opnd& o, int row0, int k0, int tid) {
  constexpr int CH = kBM * kBK / 8;
#pragma unroll
  for (int c = tid; c < CH; c += kThreads) {
    int rr, kk;
    uint16_t* dst;
    if (KM) {
      rr = c / (kBK / 8);
      kk = (c % (kBK / 8)) * 8;
      dst = sm + rr * (kBK + kPad) + kk;
    } else {
      kk = c / (kBM / 8);
      rr = (c % (kBM / 8)) * 8;
      dst = sm + kk * (kBM + kPad) + rr;
    }
    const int r = row0 + rr, k = k0 + kk;
    const bool full = KM ? (r < o.rows && k + 8 <= o.K && (k % o.kmod) + 8 <= o.kvalid) : (r + 8 <= o.rows && op_ok(o, r, k));
    if (o.vec && full) {
      rkmma::cp_async16(dst, op_ptr<uint16_t, KM>(o, r, k), true);
    } else {
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const int re = KM ? r : r + e, ke = KM ? k + e : k;
        dst[e] = op_ok(o, re, ke) ? *op_ptr<uint16_t, KM>(o, re, ke) : (uint16_t)0;
      }
    }
  }
}

// A fragments of the warp's four 16-row tiles (rows wm0 + 16·mt) at k16 step ks.
template <bool KM>
__device__ __forceinline__ void frag_a(uint32_t a[4][4], const uint16_t* sm, int wm0, int ks, int lane) {
#pragma unroll
  for (int mt = 0; mt < 4; ++mt) {
    if (KM) {
      rkmma::ldsm_x4(a[mt], sm + (wm0 + mt * 16 + (lane & 15)) * (kBK + kPad) + ks * 16 + (lane >> 4) * 8);
    } else {
      const int q = lane >> 3;
      rkmma::ldsm_x4_trans(a[mt], sm + (ks * 16 + (lane & 7) + (q >> 1) * 8) * (kBM + kPad) + wm0 + mt * 16 + (q & 1) * 8);
    }
  }
}

// B fragments of the warp's four 8-column tiles (columns wn0 + 8·nt) at k16 step ks.
template <bool KM>
__device__ __forceinline__ void frag_b(uint32_t b[4][2], const uint16_t* sm, int wn0, int ks, int lane) {
  const int q = lane >> 3;
#pragma unroll
  for (int np = 0; np < 2; ++np) {
    uint32_t r[4];
    if (KM) rkmma::ldsm_x4(r, sm + (wn0 + np * 16 + (lane & 7) + (q >> 1) * 8) * (kBK + kPad) + ks * 16 + (q & 1) * 8);
    else rkmma::ldsm_x4_trans(r, sm + (ks * 16 + (lane & 7) + (q & 1) * 8) * (kBN + kPad) + wn0 + np * 16 + (q >> 1) * 8);
    b[2 * np][0] = r[0];
    b[2 * np][1] = r[1];
    b[2 * np + 1][0] = r[2];
    b[2 * np + 1][1] = r[3];
  }
}

template <int DT, bool KMA, bool KMB, class Epi>
__global__ void __launch_bounds__(kThreads, 2) tc_gemm(Opnd A, Opnd B, int M, int N, int K, Epi epi) {
  unsigned char* smem_raw = rkmma::dyn_smem();
  uint16_t* sA = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* sB = sA + kStages * kTileElems;
  int m0, n0;
  tile_of(blockIdx.x, M, N, &m0, &n0);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm0 = (warp >> 2) * 64, wn0 = (warp & 3) * 32;
  if (tid == 0) RK_LINEAR_COVER(0);
  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;
  const int ktiles = (K + kBK - 1) / kBK;
#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) {
    if (st < ktiles) {
      tc_load<KMA>(sA + st * kTileElems, A, m0, st * kBK, tid);
      tc_load<KMB>(sB + st * kTileElems, B, n0, st * kBK, tid);
    }
    rkmma::cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    rkmma::cp_async_wait<kStages - 2>();
    __syncthreads();
    const uint16_t* as = sA + (kt % kStages) * kTileElems;
    const uint16_t* bs = sB + (kt % kStages) * kTileElems;
#pragma unroll
    for (int ks = 0; ks < kBK / 16; ++ks) {
      uint32_t af[4][4], bf[4][2];
      frag_a<KMA>(af, as, wm0, ks, lane);
      frag_b<KMB>(bf, bs, wn0, ks, lane);
#pragma unroll
      for (int mt = 0; mt < 4; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) rkmma::mma16816<DT>(acc[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
    }
    const int nx = kt + kStages - 1;
    if (nx < ktiles) {
      tc_load<KMA>(sA + (nx % kStages) * kTileElems, A, m0, nx * kBK, tid);
      tc_load<KMB>(sB + (nx % kStages) * kTileElems, B, n0, nx * kBK, tid);
    }
    rkmma::cp_async_commit();
  }
  rkmma::cp_async_wait<0>();
  __syncthreads();
  // accumulators → the f32 C tile (reusing the pipeline's shared memory)
  float* Cs = reinterpret_cast<float*>(smem_raw);
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int mt = 0; mt < 4; ++mt)
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
      const int row = wm0 + mt * 16 + g, col = wn0 + nt * 8 + 2 * t;
      Cs[row * kLdc + col] = acc[mt][nt][0];
      Cs[row * kLdc + col + 1] = acc[mt][nt][1];
      Cs[(row + 8) * kLdc + col] = acc[mt][nt][2];
      Cs[(row + 8) * kLdc + col + 1] = acc[mt][nt][3];
    }
  __syncthreads();
  epi(Cs, m0, n0, tid);
}

// ---- FFMA GEMM (f32 products and sums; 16-bit operands widened when loaded) -----------------------

template <int DT, bool KM>
__device__ __forceinline__ void simt_load(float (*S)[kBM], const Opnd& o, int row0, int k0, int tid) {
  using T = typename Elt<DT>::T;
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const int idx = tid * 4 + e;
    int rr, kk;
    if (KM) { rr = idx / kBKs; kk = idx % kBKs; }
    else { kk = idx / kBM; rr = idx % kBM; }
    const int r = row0 + rr, k = k0 + kk;
    S[kk][rr] = op_ok(o, r, k) ? Elt<DT>::f(*op_ptr<T, KM>(o, r, k)) : 0.0f;
  }
}

template <int DTA, int DTB, bool KMA, bool KMB, class Epi>
__global__ void __launch_bounds__(kThreads) simt_gemm(Opnd A, Opnd B, int M, int N, int K, Epi epi) {
  unsigned char* smem_raw = rkmma::dyn_smem();
  __shared__ float As[kBKs][kBM], Bs[kBKs][kBN];
  int m0, n0;
  tile_of(blockIdx.x, M, N, &m0, &n0);
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  if (tid == 0) RK_LINEAR_COVER(1);
  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;
  for (int k0 = 0; k0 < K; k0 += kBKs) {
    simt_load<DTA, KMA>(As, A, m0, k0, tid);
    simt_load<DTB, KMB>(Bs, B, n0, k0, tid);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBKs; ++kk) {
      float a[8], b[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) a[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 8; ++j) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
  float* Cs = reinterpret_cast<float*>(smem_raw);
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) Cs[(ty + 16 * i) * kLdc + tx + 16 * j] = acc[i][j];
  __syncthreads();
  epi(Cs, m0, n0, tid);
}

// ---- GEMM kernels, v2 (opt-in: RK_LINEAR_GEMM=v2; checked by the host emulation only until a GPU
// run has checked and timed it against v1, which stays the default) --------------------------------
//
// Same products, same epilogues, same results: every output element is the same sequence of
// mma.sync (k16 steps in increasing k) or fmaf (k in increasing order) as in v1, so v2 and v1 agree
// bit for bit. What changes is how the tiles are fed:
//   - tensor cores: 128×256 output tiles (handed to the epilogue as two 128×128 halves), 8 warps of
//     64×64 (2 × 4): per k16 step a warp issues 8 ldmatrix.x4 for 32 mma (v1: 6 for 16); k tiles of
//     64 in a 3-stage cp.async pipeline with one barrier per k tile (v1: 32, so twice the barriers);
//     XOR-swizzled shared memory (16-byte chunk c of line l at c ^ (l mod 8)) instead of padding, so
//     ldmatrix phases and cp.async stores are bank-conflict free; fragments double-buffered in
//     registers across the 4 k16 steps of a tile; the row offsets of k-major operands (the counted
//     rows' map included) computed once per block into shared memory, and the plane / in-plane k of
//     the k tile advanced incrementally, so a 16-byte copy costs a few integer instructions (v1:
//     divisions and map loads per chunk and k tile).
//   - FFMA: the same 128×128 tiles and 8×8 outputs per thread, but each thread's 8 rows and 8 columns
//     are two runs of 4 (float4 shared-memory reads: 4 per 64 FMA, v1: 16), k tiles of 16 in two
//     shared-memory buffers with the next tile's global loads in registers during the current
//     tile's FMAs (one barrier per k tile, v1: two per 8).
// v2 needs each operand's plane length kmod to be ≥ K or a multiple of the k tile (the launchers
// arrange it: planes of Na_pad = round_up(Na, 64) or VC rows); otherwise run_tc / run_simt take v1.
namespace tc2 {
constexpr int BM = 128, BN = 256, BK = 64, ST = 3, TH = 256;
constexpr int kTileA = BM * BK, kTileB = BN * BK;                            // 16-bit elements per stage
constexpr size_t kPipe = (size_t)ST * (kTileA + kTileB) * 2;                 // 147456 bytes
constexpr size_t kSmem = kPipe + (size_t)(BM + BN) * sizeof(long long);      // + row offsets: 150528
static_assert(kSmemC <= kPipe, "the C tile reuses the pipeline's shared memory");
}  // namespace tc2
namespace ff2 {
constexpr int BK = 16, LD = kBM + 4;  // k tile; row stride of a [BK][128] operand tile (floats)
constexpr size_t kBuf = (size_t)2 * BK * LD;                                  // floats per buffer (A and B)
constexpr size_t kLines = 2 * kBuf * 4;                                       // byte offset of the row offsets
constexpr size_t kSmem = kSmemC > kLines + 2 * kBM * 8 ? kSmemC : kLines + 2 * kBM * 8;
}  // namespace ff2

// The k tile being loaded: its first k, and that k's plane and offset in the plane (advanced by
// kpos_next; exact when kmod ≥ K or kmod is a multiple of the k tile).
struct KPos {
  int k0, pl, kb;
};
__device__ __forceinline__ void kpos_next(KPos& p, int kmod, int bk) {
  p.k0 += bk;
  p.kb += bk;
  if (p.kb >= kmod) {
    p.kb -= kmod;
    ++p.pl;
  }
}

// Element offset of the line of k-major row r (−1: no such row).
__device__ __forceinline__ long long km_line(const Opnd& o, int r) {
  if (r >= o.rows) return -1;
  return (o.map ? (long long)o.map[r] : r + o.lineoff) * o.ld;
}

__device__ __forceinline__ void zero16(void* dst) { *reinterpret_cast<uint4*>(dst) = uint4{0u, 0u, 0u, 0u}; }

// Loads the (R × 64) tile at (row0, p) of a 16-bit operand: k-major as [R][64] (chunk c of row r at
// c ^ (r mod 8)), row-major as [64][R] (chunk c of k line l at c ^ (l mod 8)). Whole 16-byte chunks
// by cp.async; zero chunks (row or k outside) by a store; a chunk at an edge, or any chunk of a
// misaligned operand, element by element.
template <int R, bool KM>
__device__ __forceinline__ void tc2_load(uint16_t* sm, const Opnd& o, const long long* lines, int row0, const KPos& p, int tid) {
  constexpr int BK = tc2::BK;
  const uint16_t* base = static_cast<const uint16_t*>(o.p) + (long long)p.pl * o.pstride;
  if (KM) {
    const int kc = tid & 7, kg = p.k0 + kc * 8, kl = p.kb + kc * 8;
    const bool knone = kg >= o.K || kl >= o.kvalid;
    const bool kfull = o.vec && kg + 8 <= o.K && kl + 8 <= o.kvalid;
#pragma unroll
    for (int i = 0; i < R / 32; ++i) {
      const int rr = (tid >> 3) + 32 * i;
      uint16_t* dst = sm + rr * BK + ((kc ^ (rr & 7)) << 3);
      const long long ln = lines[rr];
      if (ln < 0 || knone) {
        RK_LINEAR_COVER(4);
        zero16(dst);
      } else if (kfull) {
        RK_LINEAR_COVER(5);
        rkmma::cp_async16(dst, base + ln + kl, true);
      } else {
        RK_LINEAR_COVER(6);
#pragma unroll
        for (int e = 0; e < 8; ++e) dst[e] = kg + e < o.K && kl + e < o.kvalid ? base[ln + kl + e] : (uint16_t)0;
      }
    }
  } else {
    constexpr int CPL = R / 8, LPP = tc2::TH / CPL;  // chunks per k line, k lines per pass
    const int rc = tid % CPL, r = row0 + rc * 8;
    const bool rnone = r >= o.rows, rfull = o.vec && r + 8 <= o.rows;
#pragma unroll
    for (int i = 0; i < BK / LPP; ++i) {
      const int l = tid / CPL + LPP * i, kg = p.k0 + l, kl = p.kb + l;
      uint16_t* dst = sm + l * R + ((rc ^ (l & 7)) << 3);
      if (rnone || kg >= o.K || kl >= o.kvalid) {
        RK_LINEAR_COVER(7);
        zero16(dst);
        continue;
      }
      const uint16_t* src = base + (o.map ? (long long)o.map[kl] : kl + o.lineoff) * o.ld + r;
      if (rfull) {
        RK_LINEAR_COVER(8);
        rkmma::cp_async16(dst, src, true);
      } else {
        RK_LINEAR_COVER(9);
#pragma unroll
        for (int e = 0; e < 8; ++e) dst[e] = r + e < o.rows ? src[e] : (uint16_t)0;
      }
    }
  }
}

// A fragments of the warp's four 16-row tiles (rows wm0 + 16·mt) at k16 step ks (swizzled tile).
template <bool KM>
__device__ __forceinline__ void tc2_frag_a(uint32_t (&a)[4][4], const uint16_t* sm, int wm0, int ks, int lane) {
  constexpr int BK = tc2::BK, BM = tc2::BM;
#pragma unroll
  for (int mt = 0; mt < 4; ++mt) {
    if (KM) {
      const int row = wm0 + mt * 16 + (lane & 15), ch = ks * 2 + (lane >> 4);
      rkmma::ldsm_x4(a[mt], sm + row * BK + ((ch ^ (row & 7)) << 3));
    } else {
      const int q = lane >> 3, l = ks * 16 + (lane & 7) + (q >> 1) * 8, ch = (wm0 + mt * 16 + (q & 1) * 8) >> 3;
      rkmma::ldsm_x4_trans(a[mt], sm + l * BM + ((ch ^ (l & 7)) << 3));
    }
  }
}

// B fragments of the warp's eight 8-column tiles (columns wn0 + 8·nt) at k16 step ks.
template <bool KM>
__device__ __forceinline__ void tc2_frag_b(uint32_t (&b)[8][2], const uint16_t* sm, int wn0, int ks, int lane) {
  constexpr int BK = tc2::BK, BN = tc2::BN;
  const int q = lane >> 3;
#pragma unroll
  for (int np = 0; np < 4; ++np) {
    uint32_t r[4];
    if (KM) {
      const int row = wn0 + np * 16 + (lane & 7) + (q >> 1) * 8, ch = ks * 2 + (q & 1);
      rkmma::ldsm_x4(r, sm + row * BK + ((ch ^ (row & 7)) << 3));
    } else {
      const int l = ks * 16 + (lane & 7) + (q & 1) * 8, ch = (wn0 + np * 16 + (q >> 1) * 8) >> 3;
      rkmma::ldsm_x4_trans(r, sm + l * BN + ((ch ^ (l & 7)) << 3));
    }
    b[2 * np][0] = r[0];
    b[2 * np][1] = r[1];
    b[2 * np + 1][0] = r[2];
    b[2 * np + 1][1] = r[3];
  }
}

template <int DT, bool KMA, bool KMB, class Epi>
__global__ void __launch_bounds__(tc2::TH, 1) tc_gemm2(Opnd A, Opnd B, int M, int N, int K, Epi epi) {
  using namespace tc2;
  unsigned char* smem_raw = rkmma::dyn_smem();
  uint16_t* sA = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* sB = sA + ST * kTileA;
  long long* linA = reinterpret_cast<long long*>(smem_raw + kPipe);
  long long* linB = linA + BM;
  int m0, n0;
  tile_of<BM, BN>(blockIdx.x, M, N, &m0, &n0);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  if (tid == 0) RK_LINEAR_COVER(2);
  const int wm0 = (warp >> 2) * 64, wn0 = (warp & 3) * 64;
  if (KMA)
    for (int r = tid; r < BM; r += TH) linA[r] = km_line(A, m0 + r);
  if (KMB)
    for (int r = tid; r < BN; r += TH) linB[r] = km_line(B, n0 + r);
  __syncthreads();
  float acc[4][8][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;
  const int ktiles = (K + BK - 1) / BK;
  KPos pa{0, 0, 0}, pb{0, 0, 0};
#pragma unroll
  for (int st = 0; st < ST - 1; ++st) {
    if (st < ktiles) {
      tc2_load<BM, KMA>(sA + st * kTileA, A, linA, m0, pa, tid);
      tc2_load<BN, KMB>(sB + st * kTileB, B, linB, n0, pb, tid);
      kpos_next(pa, A.kmod, BK);
      kpos_next(pb, B.kmod, BK);
    }
    rkmma::cp_async_commit();
  }
  int rd = 0, wr = ST - 1;  // stage read this k tile, stage loaded this k tile
  for (int kt = 0; kt < ktiles; ++kt) {
    rkmma::cp_async_wait<ST - 2>();  // this thread's copies of tile kt have landed
    __syncthreads();                 // everyone's have; everyone is done with tile kt − 1 (stage wr)
    if (kt + ST - 1 < ktiles) {
      tc2_load<BM, KMA>(sA + wr * kTileA, A, linA, m0, pa, tid);
      tc2_load<BN, KMB>(sB + wr * kTileB, B, linB, n0, pb, tid);
      kpos_next(pa, A.kmod, BK);
      kpos_next(pb, B.kmod, BK);
    }
    rkmma::cp_async_commit();
    wr = wr + 1 == ST ? 0 : wr + 1;
    const uint16_t* as = sA + rd * kTileA;
    const uint16_t* bs = sB + rd * kTileB;
    rd = rd + 1 == ST ? 0 : rd + 1;
    uint32_t af[2][4][4], bf[2][8][2];
    tc2_frag_a<KMA>(af[0], as, wm0, 0, lane);
    tc2_frag_b<KMB>(bf[0], bs, wn0, 0, lane);
#pragma unroll
    for (int ks = 0; ks < BK / 16; ++ks) {
      if (ks + 1 < BK / 16) {
        tc2_frag_a<KMA>(af[(ks + 1) & 1], as, wm0, ks + 1, lane);
        tc2_frag_b<KMB>(bf[(ks + 1) & 1], bs, wn0, ks + 1, lane);
      }
#pragma unroll
      for (int mt = 0; mt < 4; ++mt)
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) rkmma::mma16816<DT>(acc[mt][nt], af[ks & 1][mt], bf[ks & 1][nt][0], bf[ks & 1][nt][1]);
    }
  }
  rkmma::cp_async_wait<0>();
  __syncthreads();
  // the two 128-column halves in turn → the f32 C tile (reusing the pipeline's shared memory) → epi
  float* Cs = reinterpret_cast<float*>(smem_raw);
  const int g = lane >> 2, t = lane & 3;
  for (int h = 0; h < BN / kBN; ++h) {
    if (n0 + h * kBN >= N) break;  // (uniform) no columns in this half
    if (wn0 / kBN == h) {
#pragma unroll
      for (int mt = 0; mt < 4; ++mt)
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          const int row = wm0 + mt * 16 + g, col = wn0 - h * kBN + nt * 8 + 2 * t;
          Cs[row * kLdc + col] = acc[mt][nt][0];
          Cs[row * kLdc + col + 1] = acc[mt][nt][1];
          Cs[(row + 8) * kLdc + col] = acc[mt][nt][2];
          Cs[(row + 8) * kLdc + col + 1] = acc[mt][nt][3];
        }
    }
    __syncthreads();
    epi(Cs, m0, n0 + h * kBN, tid);
    __syncthreads();
  }
}

// FFMA v2: the next k tile's 8 elements per operand and thread, fetched into registers (f32).
//   k-major: k = tid mod 16, rows tid/16 + 16e;  row-major: row = tid mod 128, k lines tid/128 + 2e.
template <int DT, bool KM>
__device__ __forceinline__ void ff2_fetch(float (&v)[8], const Opnd& o, const long long* lines, int row0, const KPos& p, int tid) {
  using T = typename Elt<DT>::T;
  const T* base = static_cast<const T*>(o.p) + (long long)p.pl * o.pstride;
  if (KM) {
    const int kk = tid & 15, kg = p.k0 + kk, kl = p.kb + kk;
    const bool kv = kg < o.K && kl < o.kvalid;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const long long ln = lines[(tid >> 4) + 16 * e];
      v[e] = kv && ln >= 0 ? Elt<DT>::f(base[ln + kl]) : 0.0f;
    }
  } else {
    const int r = row0 + (tid & 127);
    const bool rv = r < o.rows;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int kk = (tid >> 7) + 2 * e, kg = p.k0 + kk, kl = p.kb + kk;
      v[e] = 0.0f;
      if (rv && kg < o.K && kl < o.kvalid) v[e] = Elt<DT>::f(base[(o.map ? (long long)o.map[kl] : kl + o.lineoff) * o.ld + r]);
    }
  }
}
template <bool KM>
__device__ __forceinline__ void ff2_store(float* S, const float (&v)[8], int tid) {
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    if (KM) S[(tid & 15) * ff2::LD + (tid >> 4) + 16 * e] = v[e];
    else S[((tid >> 7) + 2 * e) * ff2::LD + (tid & 127)] = v[e];
  }
}

template <int DTA, int DTB, bool KMA, bool KMB, class Epi>
__global__ void __launch_bounds__(kThreads, 2) simt_gemm2(Opnd A, Opnd B, int M, int N, int K, Epi epi) {
  using namespace ff2;
  unsigned char* smem_raw = rkmma::dyn_smem();
  float* S = reinterpret_cast<float*>(smem_raw);  // buffer b: A at S + b·kBuf, B at S + b·kBuf + BK·LD
  long long* linA = reinterpret_cast<long long*>(smem_raw + kLines);
  long long* linB = linA + kBM;
  int m0, n0;
  tile_of(blockIdx.x, M, N, &m0, &n0);
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  if (tid == 0) RK_LINEAR_COVER(3);
  if (KMA)
    for (int r = tid; r < kBM; r += kThreads) linA[r] = km_line(A, m0 + r);
  if (KMB)
    for (int r = tid; r < kBN; r += kThreads) linB[r] = km_line(B, n0 + r);
  __syncthreads();
  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;
  const int ktiles = (K + BK - 1) / BK;
  KPos pa{0, 0, 0}, pb{0, 0, 0};
  float va[8], vb[8];
  ff2_fetch<DTA, KMA>(va, A, linA, m0, pa, tid);
  ff2_fetch<DTB, KMB>(vb, B, linB, n0, pb, tid);
  ff2_store<KMA>(S, va, tid);
  ff2_store<KMB>(S + BK * LD, vb, tid);
  __syncthreads();
  for (int kt = 0; kt < ktiles; ++kt) {
    const bool more = kt + 1 < ktiles;
    if (more) {
      kpos_next(pa, A.kmod, BK);
      kpos_next(pb, B.kmod, BK);
      ff2_fetch<DTA, KMA>(va, A, linA, m0, pa, tid);
      ff2_fetch<DTB, KMB>(vb, B, linB, n0, pb, tid);
    }
    const float* As = S + (kt & 1) * kBuf;
    const float* Bs = As + BK * LD;
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      const float4 a0 = *reinterpret_cast<const float4*>(As + kk * LD + ty * 4);
      const float4 a1 = *reinterpret_cast<const float4*>(As + kk * LD + 64 + ty * 4);
      const float4 b0 = *reinterpret_cast<const float4*>(Bs + kk * LD + tx * 4);
      const float4 b1 = *reinterpret_cast<const float4*>(Bs + kk * LD + 64 + tx * 4);
      const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    if (more) {
      float* nb = S + ((kt + 1) & 1) * kBuf;
      ff2_store<KMA>(nb, va, tid);
      ff2_store<KMB>(nb + BK * LD, vb, tid);
    }
    __syncthreads();
  }
  float* Cs = reinterpret_cast<float*>(smem_raw);
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) Cs[((i >> 2) * 64 + ty * 4 + (i & 3)) * kLdc + (j >> 2) * 64 + tx * 4 + (j & 3)] = acc[i][j];
  __syncthreads();
  epi(Cs, m0, n0, tid);
}

// ---- epilogues (on the finished 128×128 tile Cs, origin (m0, n0)) ---------------------------------

// Forward: online softmax statistics of each row's 128 logits (two threads per row, 64 columns
// each, core/logprobs.hpp lse_push_k: one ex2 per logit), merged and written as the row's partial
// for this column tile;
// the label's logit when it falls in the tile.
template <bool W>
struct StatsEpi {
  const float* bias;
  const int32_t* rlab;  // label of each counted row
  int Na, V;
  float inv_t;
  LseStats* part;       // [Na × nvb]
  int nvb;
  float* zy;            // [Na]
  __device__ void operator()(const float* Cs, int m0, int n0, int tid) const {
    const int r = tid >> 1, h = tid & 1, i = m0 + r;
    const int ncols = min(kBN, V - n0);
    const float* row = Cs + r * kLdc;
    const int c0 = h * (kBN / 2), c1 = c0 + kBN / 2;
    LseStats nat{rk::kLpM0, 0.0f, 0.0f};
    for (int c = c0; c < c1; c += 8) {
      float z[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const int col = c + e;
        z[e] = col < ncols ? (row[col] + (bias ? bias[n0 + col] : 0.0f)) * inv_t : -rk::inf_f();
      }
      rk::lse_push_k<W, 8>(nat, z);
    }
    nat = rk::lse_merge<W>(nat, shfl_xor_st(nat, 1));  // the row's other half (same warp)
    if (i < Na) {
      if (h == 0) part[(size_t)i * nvb + n0 / kBN] = nat;
      const int y = rlab[i];
      if (y >= n0 + c0 && y < n0 + min(c1, ncols)) zy[i] = (row[y - n0] + (bias ? bias[y] : 0.0f)) * inv_t;
    }
  }
};

__device__ __forceinline__ uint16_t to_bf16(float x) {
  uint32_t u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// Backward step 1: dZ of the chunk's tile (columns jc + n0 ..), into the chunk buffer: one f32
// plane [Na_pad × VC], or (SPLIT, bf16) planes hi and lo with dZ ≈ hi + lo.
template <bool SPLIT>
struct DzEpi {
  const float* bias;
  const int32_t* rlab;
  const float *rlse, *rgl, *rge, *rh;  // per counted row (rge = NULL: no entropy term)
  int Na, V, jc, VC;
  float inv_t;
  void* planes;
  long long plane;                     // elements per plane
  __device__ void operator()(const float* Cs, int m0, int n0, int tid) const {
    for (int idx = tid; idx < kBM * kBN; idx += kThreads) {
      const int r = idx / kBN, c = idx % kBN, i = m0 + r, jl = n0 + c;
      if (i >= Na || jl >= VC) continue;
      const int j = jc + jl;
      float d = 0.0f;
      if (j < V) {
        const float z = (Cs[r * kLdc + c] + (bias ? bias[j] : 0.0f)) * inv_t;
        d = rge ? rk::linear_dz<true>(z, j == rlab[i], rlse[i], rgl[i], rge[i], rh[i], inv_t)
                : rk::linear_dz<false>(z, j == rlab[i], rlse[i], rgl[i], 0.0f, 0.0f, inv_t);
      }
      const size_t o = (size_t)i * VC + jl;
      if (SPLIT) {
        const uint16_t hi = to_bf16(d);
        const float lo = isfinite(d) ? d - rk::bf16_to_float(hi) : 0.0f;
        static_cast<uint16_t*>(planes)[o] = hi;
        static_cast<uint16_t*>(planes)[plane + o] = to_bf16(lo);
      } else {
        static_cast<float*>(planes)[o] = d;
      }
    }
  }
};

// The tile (+ bias) to out[row(i)·ldo + j] (row(i) = rowmap ? rowmap[i] : i), added when acc.
struct StoreEpi {
  float* out;
  long long ldo;
  const int32_t* rowmap;
  int rows, cols;
  const float* bias;
  int acc;
  __device__ void operator()(const float* Cs, int m0, int n0, int tid) const {
    for (int idx = tid; idx < kBM * kBN; idx += kThreads) {
      const int r = idx / kBN, c = idx % kBN, i = m0 + r, j = n0 + c;
      if (i >= rows || j >= cols) continue;
      const float v = Cs[r * kLdc + c] + (bias ? bias[j] : 0.0f);
      float* p = out + (rowmap ? (long long)rowmap[i] : (long long)i) * ldo + j;
      *p = acc ? *p + v : v;
    }
  }
};

// ---- small kernels --------------------------------------------------------------------------------

__device__ __forceinline__ bool counted(int32_t y, int32_t ignore, size_t V) { return y != ignore && y >= 0 && (size_t)y < V; }

// Counted rows in order (one block of 1024 threads): act[k] = row, pos[row] = k or −1, *count = Na.
__global__ void __launch_bounds__(1024) compact_kernel(const int32_t* labels, size_t N, size_t V, int32_t ignore, int32_t* act,
                                                       int32_t* pos, int32_t* count) {
  __shared__ int wsum[32];
  __shared__ int base;
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  if (tid == 0) base = 0;
  __syncthreads();
  for (size_t start = 0; start < N; start += 1024) {
    const size_t i = start + tid;
    const bool f = i < N && counted(labels[i], ignore, V);
    const unsigned bal = __ballot_sync(0xffffffffu, f);
    const int pre = __popc(bal & ((1u << lane) - 1u));
    if (lane == 0) wsum[w] = __popc(bal);
    __syncthreads();
    if (w == 0) {
      int v = wsum[lane];
      for (int o = 1; o < 32; o <<= 1) {
        int n = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += n;
      }
      wsum[lane] = v;  // inclusive
    }
    __syncthreads();
    const int off = base + (w ? wsum[w - 1] : 0) + pre;
    if (i < N) pos[i] = f ? off : -1;
    if (f) act[off] = (int32_t)i;
    __syncthreads();
    if (tid == 0) base += wsum[31];
    __syncthreads();
  }
  if (tid == 0) *count = base;
}

// Per counted row k: label, and for the backward gl, ge, lse, H.
__global__ void gather_rows_kernel(const int32_t* act, int Na, const int32_t* labels, const float* gl, const float* ge,
                                   const float* lse, const float* h, int32_t* rlab, float* rgl, float* rge, float* rlse, float* rh) {
  for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < Na; k += gridDim.x * blockDim.x) {
    const int i = act[k];
    rlab[k] = labels[i];
    if (rgl) rgl[k] = gl[i];
    if (rge) { rge[k] = ge[i]; rh[k] = h[i]; }
    if (rlse) rlse[k] = lse[i];
  }
}

// One warp per row: merges the row's partials, finishes logp / lse / entropy (ignored rows: 0).
template <bool W>
__global__ void combine_kernel(const LseStats* part, int nvb, const float* zy, const int32_t* pos, const int32_t* labels,
                               int32_t ignore, size_t N, float* logp, float* lse, float* ent) {
  const size_t warps = (size_t)gridDim.x * blockDim.x / 32;
  const int lane = threadIdx.x & 31;
  for (size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; row < N; row += warps) {
    const int k = pos[row];
    if (k < 0) {
      if (lane == 0) {
        const float v = labels[row] == ignore ? 0.0f : rk::nan_f();
        logp[row] = v;
        if (lse) lse[row] = v;
        if (ent) ent[row] = v;
      }
      continue;
    }
    LseStats st{rk::kLpM0, 0.0f, 0.0f};
    for (int b = lane; b < nvb; b += 32) st = rk::lse_merge<W>(st, part[(size_t)k * nvb + b]);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) st = rk::lse_merge<W>(st, shfl_xor_st(st, off));
    if (lane == 0) {
      const rk::LpOut o = rk::lse_finish(st, zy[k]);
      logp[row] = o.logp;
      if (lse) lse[row] = o.lse;
      if (ent) ent[row] = o.entropy;
    }
  }
}

// gradBias of a chunk: column sums of dZ over the counted rows (32 columns × 8 row groups per block).
template <bool SPLIT>
__global__ void colsum_kernel(const void* planes, long long plane, int Na, int VC, int nc, float* out) {
  __shared__ float red[8][33];
  const int j = blockIdx.x * 32 + threadIdx.x, y = threadIdx.y;
  float s = 0.0f;
  if (j < nc)
    for (int i = y; i < Na; i += 8) {
      const size_t o = (size_t)i * VC + j;
      s += SPLIT ? rk::bf16_to_float(static_cast<const uint16_t*>(planes)[o]) + rk::bf16_to_float(static_cast<const uint16_t*>(planes)[plane + o])
                 : static_cast<const float*>(planes)[o];
    }
  red[y][threadIdx.x] = s;
  __syncthreads();
  if (y == 0 && j < nc) {
    float t = 0.0f;
    for (int k = 0; k < 8; ++k) t += red[k][threadIdx.x];
    out[j] = t;
  }
}

}  // namespace

// ---- launchers ------------------------------------------------------------------------------------

namespace {

size_t esize(int dt) { return dt == RK_DT_F32 ? 4 : 2; }
size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

// Alignment for 16-byte loads: base, line stride, plane stride and (k-major) plane length.
int vec_ok(const void* p, int dt, long long ld, long long pstride, long long lineoff, int kmod, bool km) {
  const long long v = 16 / (long long)esize(dt);
  if (((uintptr_t)p & 15u) || ld % v || pstride % v || (lineoff * ld) % v) return 0;
  return km && kmod % v ? 0 : 1;
}

// The rows of hidden (map = the counted rows) or of weight (map = NULL, lines from lineoff) as the
// k-major operand of a logits product (K = D).
Opnd rows_op(const void* p, int dt, size_t D, const int32_t* map, long long lineoff, int rows) {
  Opnd o{p, (long long)D, 0, lineoff, map, rows, (int)D, (int)D, (int)D, 0};
  o.vec = vec_ok(p, dt, o.ld, 0, lineoff, o.kmod, true);
  return o;
}

// The GEMM kernels' generation: 1 (default) or 2 (environment RK_LINEAR_GEMM=v2, read once at the
// first launch; rk_linear_gemm_select switches it, for the GPU bench's v1 / v2 rows). v2 becomes the
// default once a GPU run has passed its checks and shown it faster (bench/gpu: "v2" rows).
std::atomic<int>& gemm_version() {
  static std::atomic<int> v{[] {
    const char* e = getenv("RK_LINEAR_GEMM");
    return e && (!strcmp(e, "v2") || !strcmp(e, "2")) ? 2 : 1;
  }()};
  return v;
}

// v2 walks the k tiles with kpos_next: an operand's planes must be ≥ K long or a multiple of the k tile.
bool v2_planes_ok(const Opnd& o, int K, int bk) { return o.kmod >= K || o.kmod % bk == 0; }

// Whether the current device gives a block `bytes` of dynamic shared memory (v2's tensor-core
// kernel needs 147 KB: sm_80 / sm_90 yes, sm_86 / sm_89 no → v1).
bool smem_fits(size_t bytes) {
  int dev = 0, optin = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return (size_t)optin >= bytes;
}

template <int DT, bool KMA, bool KMB, class Epi>
cudaError_t run_tc(const Opnd& A, const Opnd& B, int M, int N, int K, const Epi& epi, cudaStream_t s) {
  if (M <= 0 || N <= 0) return cudaSuccess;
  if (gemm_version() == 2 && v2_planes_ok(A, K, tc2::BK) && v2_planes_ok(B, K, tc2::BK) && smem_fits(tc2::kSmem)) {
    auto kern = tc_gemm2<DT, KMA, KMB, Epi>;
    cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)tc2::kSmem);
    if (e != cudaSuccess) return e;
    const size_t blocks = (size_t)((M + tc2::BM - 1) / tc2::BM) * ((N + tc2::BN - 1) / tc2::BN);
    kern<<<(unsigned)blocks, tc2::TH, tc2::kSmem, s>>>(A, B, M, N, K, epi);
    return cudaGetLastError();
  }
  auto kern = tc_gemm<DT, KMA, KMB, Epi>;
  cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)kSmemTc);
  if (e != cudaSuccess) return e;
  const size_t blocks = (size_t)((M + kBM - 1) / kBM) * ((N + kBN - 1) / kBN);
  kern<<<(unsigned)blocks, kThreads, kSmemTc, s>>>(A, B, M, N, K, epi);
  return cudaGetLastError();
}

template <int DTA, int DTB, bool KMA, bool KMB, class Epi>
cudaError_t run_simt(const Opnd& A, const Opnd& B, int M, int N, int K, const Epi& epi, cudaStream_t s) {
  if (M <= 0 || N <= 0) return cudaSuccess;
  if (gemm_version() == 2 && v2_planes_ok(A, K, ff2::BK) && v2_planes_ok(B, K, ff2::BK)) {
    auto kern = simt_gemm2<DTA, DTB, KMA, KMB, Epi>;
    cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)ff2::kSmem);
    if (e != cudaSuccess) return e;
    const size_t blocks = (size_t)((M + kBM - 1) / kBM) * ((N + kBN - 1) / kBN);
    kern<<<(unsigned)blocks, kThreads, ff2::kSmem, s>>>(A, B, M, N, K, epi);
    return cudaGetLastError();
  }
  auto kern = simt_gemm<DTA, DTB, KMA, KMB, Epi>;
  cudaError_t e = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)kSmemC);
  if (e != cudaSuccess) return e;
  const size_t blocks = (size_t)((M + kBM - 1) / kBM) * ((N + kBN - 1) / kBN);
  kern<<<(unsigned)blocks, kThreads, kSmemC, s>>>(A, B, M, N, K, epi);
  return cudaGetLastError();
}

// A logits product (both operands k-major, of the input dtype): tensor cores for 16-bit, FFMA for f32.
template <class Epi>
cudaError_t run_logits(int dt, const Opnd& A, const Opnd& B, int M, int N, int K, const Epi& epi, cudaStream_t s) {
  if (dt == RK_DT_BF16) return run_tc<RK_DT_BF16, true, true>(A, B, M, N, K, epi, s);
  if (dt == RK_DT_F16) return run_tc<RK_DT_F16, true, true>(A, B, M, N, K, epi, s);
  return run_simt<RK_DT_F32, RK_DT_F32, true, true>(A, B, M, N, K, epi, s);
}

// Scratch from one pool block (rkc::dev_alloc), carved into 256-byte aligned pieces.
struct Arena {
  char* base = nullptr;
  size_t off = 0;
  template <class T>
  T* take(size_t n) {
    size_t b = round_up(off, 256);
    off = b + n * sizeof(T);
    return reinterpret_cast<T*>(base + b);
  }
};
template <class T>
size_t piece(size_t n) { return round_up(n * sizeof(T), 256); }

// Compacts the counted rows; returns Na (synchronises the stream once).
cudaError_t compact(const int32_t* labels, size_t N, size_t V, int32_t ignore, int32_t* act, int32_t* pos, int32_t* cnt, int* Na,
                    cudaStream_t s) {
  compact_kernel<<<1, 1024, 0, s>>>(labels, N, V, ignore, act, pos, cnt);
  int32_t h = 0;
  cudaError_t e = cudaMemcpyAsync(&h, cnt, sizeof h, cudaMemcpyDeviceToHost, s);
  if (e == cudaSuccess) e = cudaStreamSynchronize(s);
  *Na = h;
  return e != cudaSuccess ? e : cudaGetLastError();
}

size_t vc_of(size_t chunk, size_t V) {
  size_t c = chunk ? chunk : rk::kLinearChunkCuda;
  c = c < V ? c : V;
  return round_up(c, kBN);
}

}  // namespace

size_t rk_linear_cuda_scratch_bytes(size_t N, size_t Na, size_t V, size_t D, int dtype, size_t chunk, int backward) {
  (void)D;
  const size_t nvb = (V + kBN - 1) / kBN;
  if (!backward) return 3 * piece<int32_t>(N) + piece<int32_t>(1) + piece<float>(N) + piece<LseStats>(Na * nvb);
  const size_t VC = vc_of(chunk, V), Na_pad = round_up(Na, kNaPad);
  const size_t planes = dtype == RK_DT_BF16 ? 2 * Na_pad * VC * 2 : Na_pad * VC * 4;
  return 2 * piece<int32_t>(N) + piece<int32_t>(1) + piece<int32_t>(Na) + 4 * piece<float>(Na) + round_up(planes, 256);
}

cudaError_t rk_launch_linear_logprobs(const rk_linear_logprobs_args& a, cudaStream_t s) {
  const size_t N = a.N, V = a.V, D = a.D;
  if (!N) return cudaSuccess;
  const int nvb = (int)((V + kBN - 1) / kBN);
  Arena w;
  cudaError_t e = rkc::dev_alloc((void**)&w.base, 3 * piece<int32_t>(N) + piece<int32_t>(1) + piece<float>(N), s);
  if (e != cudaSuccess) return e;
  int32_t* act = w.take<int32_t>(N);
  int32_t* pos = w.take<int32_t>(N);
  int32_t* rlab = w.take<int32_t>(N);
  int32_t* cnt = w.take<int32_t>(1);
  float* zy = w.take<float>(N);
  LseStats* part = nullptr;
  auto done = [&](cudaError_t err) {
    if (part) rkc::dev_free(part, s);
    rkc::dev_free(w.base, s);
    return err != cudaSuccess ? err : cudaGetLastError();
  };
  int Na = 0;
  if ((e = compact(a.labels, N, V, a.ignore_index, act, pos, cnt, &Na, s)) != cudaSuccess) return done(e);
  if (Na > 0) {
    if ((e = rkc::dev_alloc((void**)&part, (size_t)Na * nvb * sizeof(LseStats), s)) != cudaSuccess) { part = nullptr; return done(e); }
    gather_rows_kernel<<<rkc::grid_for(Na, 256), 256, 0, s>>>(act, Na, a.labels, nullptr, nullptr, nullptr, nullptr, rlab, nullptr,
                                                              nullptr, nullptr, nullptr);
    const Opnd A = rows_op(a.hidden, a.dtype, D, act, 0, Na);
    const Opnd B = rows_op(a.weight, a.dtype, D, nullptr, 0, (int)V);
    const float inv_t = 1.0f / a.temperature;
    if (a.entropy) e = run_logits(a.dtype, A, B, Na, (int)V, (int)D, StatsEpi<true>{a.bias, rlab, Na, (int)V, inv_t, part, nvb, zy}, s);
    else e = run_logits(a.dtype, A, B, Na, (int)V, (int)D, StatsEpi<false>{a.bias, rlab, Na, (int)V, inv_t, part, nvb, zy}, s);
    if (e != cudaSuccess) return done(e);
  }
  const unsigned grid = rkc::grid_for(N * 32, 256);
  if (a.entropy) combine_kernel<true><<<grid, 256, 0, s>>>(part, nvb, zy, pos, a.labels, a.ignore_index, N, a.logp, a.lse, a.entropy);
  else combine_kernel<false><<<grid, 256, 0, s>>>(part, nvb, zy, pos, a.labels, a.ignore_index, N, a.logp, a.lse, nullptr);
  return done(cudaSuccess);
}

cudaError_t rk_launch_linear_logprobs_backward(const rk_linear_logprobs_backward_args& a, cudaStream_t s) {
  const size_t N = a.N, V = a.V, D = a.D;
  cudaError_t e;
  if (!N) {
    if ((e = cudaMemsetAsync(a.grad_weight, 0, V * D * 4, s)) != cudaSuccess) return e;
    if (a.grad_bias && (e = cudaMemsetAsync(a.grad_bias, 0, V * 4, s)) != cudaSuccess) return e;
    return cudaSuccess;
  }
  Arena w;
  if ((e = rkc::dev_alloc((void**)&w.base, 2 * piece<int32_t>(N) + piece<int32_t>(1), s)) != cudaSuccess) return e;
  int32_t* act = w.take<int32_t>(N);
  int32_t* pos = w.take<int32_t>(N);
  int32_t* cnt = w.take<int32_t>(1);
  void* rows = nullptr;   // per counted row: rlab, rgl, rge, rlse, rh
  void* planes = nullptr;
  float* fwd = nullptr;   // lse / entropy recomputed when not given
  auto done = [&](cudaError_t err) {
    if (planes) rkc::dev_free(planes, s);
    if (rows) rkc::dev_free(rows, s);
    if (fwd) rkc::dev_free(fwd, s);
    rkc::dev_free(w.base, s);
    return err != cudaSuccess ? err : cudaGetLastError();
  };
  int Na = 0;
  if ((e = compact(a.labels, N, V, a.ignore_index, act, pos, cnt, &Na, s)) != cudaSuccess) return done(e);
  if ((e = cudaMemsetAsync(a.grad_hidden, 0, N * D * 4, s)) != cudaSuccess) return done(e);
  if (!Na) {
    if ((e = cudaMemsetAsync(a.grad_weight, 0, V * D * 4, s)) != cudaSuccess) return done(e);
    if (a.grad_bias && (e = cudaMemsetAsync(a.grad_bias, 0, V * 4, s)) != cudaSuccess) return done(e);
    return done(cudaSuccess);
  }
  const bool ent = a.grad_entropy != nullptr;
  const float* lse = a.lse;
  const float* hh = a.entropy;
  if (!lse || (ent && !hh)) {
    if ((e = rkc::dev_alloc((void**)&fwd, 3 * piece<float>(N), s)) != cudaSuccess) { fwd = nullptr; return done(e); }
    float* lp = fwd;
    float* ls = fwd + piece<float>(N) / 4;
    float* hs = ls + piece<float>(N) / 4;
    rk_linear_logprobs_args f{a.hidden, a.weight, a.bias, a.dtype, a.labels, N, V, D, a.chunk, a.temperature, a.ignore_index, lp, ls,
                              ent ? hs : nullptr};
    if ((e = rk_launch_linear_logprobs(f, s)) != cudaSuccess) return done(e);
    lse = ls;
    hh = hs;
  }
  Arena r;
  if ((e = rkc::dev_alloc((void**)&r.base, piece<int32_t>(Na) + 4 * piece<float>(Na), s)) != cudaSuccess) return done(e);
  rows = r.base;
  int32_t* rlab = r.take<int32_t>(Na);
  float* rgl = r.take<float>(Na);
  float* rge = ent ? r.take<float>(Na) : nullptr;
  float* rh = ent ? r.take<float>(Na) : nullptr;
  float* rlse = r.take<float>(Na);
  gather_rows_kernel<<<rkc::grid_for(Na, 256), 256, 0, s>>>(act, Na, a.labels, a.grad_logp, a.grad_entropy, lse, hh, rlab, rgl, rge,
                                                            rlse, rh);
  const size_t VC = vc_of(a.chunk, V), Na_pad = round_up(Na, kNaPad);
  const bool split = a.dtype == RK_DT_BF16;
  const long long plane = (long long)(Na_pad * VC);
  if ((e = rkc::dev_alloc(&planes, 4 * plane, s)  /* bf16: two 2-byte planes; else one f32 plane */) != cudaSuccess) { planes = nullptr; return done(e); }
  if ((e = cudaMemsetAsync(planes, 0, 4 * plane, s)) != cudaSuccess) return done(e);
  const float inv_t = 1.0f / a.temperature;
  const Opnd H = rows_op(a.hidden, a.dtype, D, act, 0, Na);
  const int KP = (int)(split ? 2 * Na_pad : Na_pad), KV = (int)(split ? 2 * VC : VC);
  for (size_t jc = 0; jc < V; jc += VC) {
    const int nc = (int)(V - jc < VC ? V - jc : VC);
    // 1. dZ of the chunk
    const Opnd Wc = rows_op(a.weight, a.dtype, D, nullptr, (long long)jc, nc);
    if (split)
      e = run_logits(a.dtype, H, Wc, Na, nc, (int)D,
                     DzEpi<true>{a.bias, rlab, rlse, rgl, rge, rh, Na, (int)V, (int)jc, (int)VC, inv_t, planes, plane}, s);
    else
      e = run_logits(a.dtype, H, Wc, Na, nc, (int)D,
                     DzEpi<false>{a.bias, rlab, rlse, rgl, rge, rh, Na, (int)V, (int)jc, (int)VC, inv_t, planes, plane}, s);
    if (e != cudaSuccess) return done(e);
    // 2. gradBias
    if (a.grad_bias) {
      dim3 blk(32, 8);
      if (split) colsum_kernel<true><<<(nc + 31) / 32, blk, 0, s>>>(planes, plane, Na, (int)VC, nc, a.grad_bias + jc);
      else colsum_kernel<false><<<(nc + 31) / 32, blk, 0, s>>>(planes, plane, Na, (int)VC, nc, a.grad_bias + jc);
    }
    // 3. gradWeight[jc..jc+nc) = dZᵀ · hidden: A(j, k) = planes line k, B(d, k) = hidden[act[k mod Na_pad]]
    Opnd Ad{planes, (long long)VC, 0, 0, nullptr, nc, KP, KP, KP, 1};
    Opnd Bd{a.hidden, (long long)D, 0, 0, act, (int)D, (int)Na_pad, Na, KP, 0};
    Bd.vec = vec_ok(a.hidden, a.dtype, Bd.ld, 0, 0, 0, false);
    const StoreEpi sw{a.grad_weight + jc * D, (long long)D, nullptr, nc, (int)D, nullptr, 0};
    // 4. gradHidden (counted rows) += dZ · W[jc..]: A(i, k) = planes (k-major, planes of VC), B(d, k) = W[jc + k mod VC]
    Opnd Ah{planes, (long long)VC, plane, 0, nullptr, Na, (int)VC, (int)VC, KV, 1};
    Opnd Bh{a.weight, (long long)D, 0, (long long)jc, nullptr, (int)D, (int)VC, nc, KV, 0};
    Bh.vec = vec_ok(a.weight, a.dtype, Bh.ld, 0, (long long)jc, 0, false);
    const StoreEpi sh{a.grad_hidden, (long long)D, act, Na, (int)D, nullptr, 1};
    if (split) {
      if ((e = run_tc<RK_DT_BF16, false, false>(Ad, Bd, nc, (int)D, KP, sw, s)) != cudaSuccess) return done(e);
      if ((e = run_tc<RK_DT_BF16, true, false>(Ah, Bh, Na, (int)D, KV, sh, s)) != cudaSuccess) return done(e);
    } else if (a.dtype == RK_DT_F16) {
      if ((e = run_simt<RK_DT_F32, RK_DT_F16, false, false>(Ad, Bd, nc, (int)D, KP, sw, s)) != cudaSuccess) return done(e);
      if ((e = run_simt<RK_DT_F32, RK_DT_F16, true, false>(Ah, Bh, Na, (int)D, KV, sh, s)) != cudaSuccess) return done(e);
    } else {
      if ((e = run_simt<RK_DT_F32, RK_DT_F32, false, false>(Ad, Bd, nc, (int)D, KP, sw, s)) != cudaSuccess) return done(e);
      if ((e = run_simt<RK_DT_F32, RK_DT_F32, true, false>(Ah, Bh, Na, (int)D, KV, sh, s)) != cudaSuccess) return done(e);
    }
  }
  return done(cudaSuccess);
}

int rk_linear_gemm_select(int version) {
  std::atomic<int>& v = gemm_version();
  return version == 1 || version == 2 ? v.exchange(version) : v.load();
}

cudaError_t rk_launch_linear_logits(const void* hidden, const void* weight, const float* bias, int dtype, size_t N, size_t V,
                                    size_t D, float* logits, cudaStream_t s) {
  const Opnd A = rows_op(hidden, dtype, D, nullptr, 0, (int)N);
  const Opnd B = rows_op(weight, dtype, D, nullptr, 0, (int)V);
  return run_logits(dtype, A, B, (int)N, (int)V, (int)D, StoreEpi{logits, (long long)V, nullptr, (int)N, (int)V, bias, 0}, s);
}

cudaError_t rk_launch_linear_preference_loss(const rk_linear_preference_args& a, cudaStream_t s) {
  const rk_fused_preference_args& f = a.f;
  const size_t N = 2 * f.B * f.T;
  void* ws = nullptr;
  cudaError_t e = rkc::dev_alloc(&ws, 4 * piece<float>(N) + 256, s);
  if (e != cudaSuccess) return e;
  Arena w{static_cast<char*>(ws), 0};
  int32_t* lab = w.take<int32_t>(N);
  float* logp = w.take<float>(N);
  float* lse = w.take<float>(N);
  float* glogp = w.take<float>(N);
  auto done = [&](cudaError_t err) {
    rkc::dev_free(ws, s);
    return err != cudaSuccess ? err : cudaGetLastError();
  };
  if ((e = rk_launch_fused_pref_labels(f, lab, s)) != cudaSuccess) return done(e);
  rk_linear_logprobs_args fw{a.hidden, a.weight, a.bias, a.dtype, lab, N, f.V, a.D, a.chunk, f.temperature, f.ignore_index, logp, lse,
                             nullptr};
  if ((e = rk_launch_linear_logprobs(fw, s)) != cudaSuccess) return done(e);
  if ((e = rk_launch_fused_pref_loss(f, lab, logp, glogp, s)) != cudaSuccess) return done(e);
  rk_linear_logprobs_backward_args bw{a.hidden, a.weight, a.bias, a.dtype, lab, N, f.V, a.D, a.chunk, f.temperature, f.ignore_index,
                                      glogp, nullptr, lse, nullptr, a.grad_hidden, a.grad_weight, a.grad_bias};
  return done(rk_launch_linear_logprobs_backward(bw, s));
}

// ---- entry points of the C ABI: device pointers on a stream (_dev); host pointers (stage, run the
// _dev entry point on the staging stream, copy back)

RKC_DEV_ENTRY(linear_logprobs, rk_linear_logprobs_args)
RKC_DEV_ENTRY(linear_logprobs_backward, rk_linear_logprobs_backward_args)
RKC_DEV_ENTRY(linear_preference_loss, rk_linear_preference_args)


extern "C" int rk_cuda_linear_logprobs(const rk_linear_logprobs_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_linear_logprobs_args d = *h;
  const size_t es = esize(h->dtype);
  RKC_TRY(st.in_bytes(h->hidden, h->N * h->D * es, &d.hidden));
  RKC_TRY(st.in_bytes(h->weight, h->V * h->D * es, &d.weight));
  RKC_TRY(st.in(h->bias, h->V, &d.bias));
  RKC_TRY(st.in(h->labels, h->N, &d.labels));
  RKC_TRY(st.out(h->logp, h->N, &d.logp));
  RKC_TRY(st.out(h->lse, h->N, &d.lse));
  RKC_TRY(st.out(h->entropy, h->N, &d.entropy));
  RKC_RUN_DEV(linear_logprobs, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_linear_logprobs_backward(const rk_linear_logprobs_backward_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_linear_logprobs_backward_args d = *h;
  const size_t es = esize(h->dtype);
  RKC_TRY(st.in_bytes(h->hidden, h->N * h->D * es, &d.hidden));
  RKC_TRY(st.in_bytes(h->weight, h->V * h->D * es, &d.weight));
  RKC_TRY(st.in(h->bias, h->V, &d.bias));
  RKC_TRY(st.in(h->labels, h->N, &d.labels));
  RKC_TRY(st.in(h->grad_logp, h->N, &d.grad_logp));
  RKC_TRY(st.in(h->grad_entropy, h->N, &d.grad_entropy));
  RKC_TRY(st.in(h->lse, h->N, &d.lse));
  RKC_TRY(st.in(h->entropy, h->N, &d.entropy));
  RKC_TRY(st.out(h->grad_hidden, h->N * h->D, &d.grad_hidden));
  RKC_TRY(st.out(h->grad_weight, h->V * h->D, &d.grad_weight));
  RKC_TRY(st.out(h->grad_bias, h->V, &d.grad_bias));
  RKC_RUN_DEV(linear_logprobs_backward, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_linear_preference_loss(const rk_linear_preference_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_linear_preference_args d = *h;
  const rk_fused_preference_args& f = h->f;
  const size_t B = f.B, R = 2 * B, N = R * f.T, es = esize(h->dtype);
  RKC_TRY(st.in_bytes(h->hidden, N * h->D * es, &d.hidden));
  RKC_TRY(st.in_bytes(h->weight, f.V * h->D * es, &d.weight));
  RKC_TRY(st.in(h->bias, f.V, &d.bias));
  RKC_TRY(st.in(f.labels, N, &d.f.labels));
  RKC_TRY(st.in_bytes(f.mask, N * rkc::mask_bytes(f.mask_kind), &d.f.mask));
  RKC_TRY(st.in(f.ref_logp, R, &d.f.ref_logp));
  RKC_TRY(st.in(f.prev_logp, R, &d.f.prev_logp));
  RKC_TRY(st.in(f.policy_explore, B, &d.f.policy_explore));
  RKC_TRY(st.in(f.preference_prob, B, &d.f.preference_prob));
  RKC_TRY(st.out(h->grad_hidden, N * h->D, &d.grad_hidden));
  RKC_TRY(st.out(h->grad_weight, f.V * h->D, &d.grad_weight));
  RKC_TRY(st.out(h->grad_bias, f.V, &d.grad_bias));
  RKC_TRY(st.out(f.losses, B, &d.f.losses));
  RKC_TRY(st.out(f.grad_policy_chosen, B, &d.f.grad_policy_chosen));
  RKC_TRY(st.out(f.grad_policy_rejected, B, &d.f.grad_policy_rejected));
  RKC_TRY(st.out(f.chosen_rewards, B, &d.f.chosen_rewards));
  RKC_TRY(st.out(f.rejected_rewards, B, &d.f.rejected_rewards));
  RKC_TRY(st.out(f.margins, B, &d.f.margins));
  RKC_TRY(st.out(f.grad_extra, B, &d.f.grad_extra));
  RKC_TRY(st.out(f.scalars, 2, &d.f.scalars));
  RKC_RUN_DEV(linear_preference_loss, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_linear_logits(const void* hidden, const void* weight, const float* bias, int dtype, size_t N, size_t V, size_t D,
                                     float* logits, char* err, size_t errlen) {
  rkc::Staging st;
  const size_t es = esize(dtype);
  const void* dh = nullptr;
  const void* dw = nullptr;
  const float* db = nullptr;
  float* dl = nullptr;
  RKC_TRY(st.in_bytes(hidden, N * D * es, &dh));
  RKC_TRY(st.in_bytes(weight, V * D * es, &dw));
  RKC_TRY(st.in(bias, V, &db));
  RKC_TRY(st.out(logits, N * V, &dl));
  RKC_TRY(rk_launch_linear_logits(dh, dw, db, dtype, N, V, D, dl, st.stream()));
  RKC_TRY(st.finish());
  return 0;
}
