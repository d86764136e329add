// CUDA kernels of the logprobs family (SPEC §1).
//
// Forward: one thread group per row (a warp for V ≤ 4096, else a 512-thread block), grid-stride
// over rows (no limit from grid dimensions on N). Each thread streams its share of the row with
// 16-byte loads (4 f32 or 8 f16/bf16 values, widened in registers), keeping online-softmax
// statistics in natural units with e^d as one ex2 per logit (core/logprobs.hpp lse_push_k); the group merges them
// with the shared lse_merge and thread 0 writes logp/lse/entropy. Misaligned heads and tails of a
// row are read element by element. Few long rows (N small, V large): a split-V two-phase path —
// partial statistics per (row, piece) into scratch, then one warp per row merges and finishes.
// Backward: a grid-stride pass over (row, tile) with 16-byte loads and stores; lse (and the
// entropy, when its gradient is asked for) come from the forward kernels when not given.
// vocabKl: the same structure with the KlStats of core/logprobs.hpp.
#include <cuda_fp16.h>

#include "../src/core/logprobs.hpp"
#include "common.cuh"
#include "logprobs.cuh"

namespace {

using rk::KlStats;
using rk::LseStats;

// Per dtype: K values per 16-byte load (forward), and V4 = the load of exactly 4 values (the
// backward: every 4 logits read give one float4 of gradient, so a warp's stores are contiguous).
template <int DT> struct Ev;
template <> struct Ev<RK_DT_F32> {
  using T = float;
  using V4 = uint4;
  static constexpr int K = 4;
  __device__ static float at(const T* p, size_t i) { return p[i]; }
  __device__ static void unpack(uint4 v, float* z) {
    z[0] = __uint_as_float(v.x); z[1] = __uint_as_float(v.y); z[2] = __uint_as_float(v.z); z[3] = __uint_as_float(v.w);
  }
  __device__ static void unpack4(uint4 v, float* z) { unpack(v, z); }
};
template <> struct Ev<RK_DT_BF16> {
  using T = uint16_t;
  using V4 = uint2;
  static constexpr int K = 8;
  __device__ static void unpack4(uint2 v, float* z) {
    z[0] = __uint_as_float(v.x << 16); z[1] = __uint_as_float(v.x & 0xffff0000u);
    z[2] = __uint_as_float(v.y << 16); z[3] = __uint_as_float(v.y & 0xffff0000u);
  }
  __device__ static float at(const T* p, size_t i) { return __uint_as_float((uint32_t)p[i] << 16); }
  __device__ static void unpack(uint4 v, float* z) {
    uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      z[2 * i] = __uint_as_float(u[i] << 16);
      z[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
  }
};
template <> struct Ev<RK_DT_F16> {
  using T = uint16_t;
  using V4 = uint2;
  static constexpr int K = 8;
  __device__ static void unpack4(uint2 v, float* z) {
    float2 a = __half22float2(*reinterpret_cast<__half2*>(&v.x)), b = __half22float2(*reinterpret_cast<__half2*>(&v.y));
    z[0] = a.x; z[1] = a.y; z[2] = b.x; z[3] = b.y;
  }
  __device__ static float at(const T* p, size_t i) { return __half2float(__ushort_as_half(p[i])); }
  __device__ static void unpack(uint4 v, float* z) {
    uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      __half2 h = *reinterpret_cast<__half2*>(&u[i]);
      float2 f = __half22float2(h);
      z[2 * i] = f.x;
      z[2 * i + 1] = f.y;
    }
  }
};

// Elements before the first A-byte boundary (at most n).
template <class T, unsigned A = 16>
__device__ __forceinline__ size_t head_of(const T* p, size_t n) {
  size_t h = ((A - ((uintptr_t)p & (A - 1))) & (A - 1)) / sizeof(T);
  return h < n ? h : n;
}

__device__ __forceinline__ LseStats shfl_xor(LseStats s, int off) {
  return LseStats{__shfl_xor_sync(0xffffffffu, s.m, off), __shfl_xor_sync(0xffffffffu, s.s, off),
                  __shfl_xor_sync(0xffffffffu, s.w, off)};
}
__device__ __forceinline__ KlStats shfl_xor(KlStats s, int off) {
  return KlStats{__shfl_xor_sync(0xffffffffu, s.ma, off), __shfl_xor_sync(0xffffffffu, s.sa, off),
                 __shfl_xor_sync(0xffffffffu, s.u, off), __shfl_xor_sync(0xffffffffu, s.mb, off),
                 __shfl_xor_sync(0xffffffffu, s.sb, off)};
}
template <bool W> __device__ __forceinline__ LseStats merge(LseStats a, LseStats b) { return rk::lse_merge<W>(a, b); }
template <bool W> __device__ __forceinline__ KlStats merge(KlStats a, KlStats b) { return rk::kl_merge(a, b); }

// Merge over a group of G threads (G = 32, or a whole block of G threads); result valid in the
// group's thread 0. smem holds G/32 states.
template <bool W, int G, class S>
__device__ S group_reduce(S st, S* smem) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) st = merge<W>(st, shfl_xor(st, off));
  if (G == 32) return st;
  int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
  __syncthreads();  // smem reuse across rows
  if (lane == 0) smem[warp] = st;
  __syncthreads();
  if (warp == 0) {
    constexpr int NW = G / 32;  // a power of two
    st = smem[lane < NW ? lane : 0];
#pragma unroll
    for (int off = NW / 2; off > 0; off >>= 1) st = merge<W>(st, shfl_xor(st, off));
  }
  return st;
}

// Per-thread statistics of p[0..n) (z = x·c, c = 1/τ), thread `t` of a group of G.
template <int DT, bool W, int G>
__device__ LseStats range_stats(const typename Ev<DT>::T* __restrict p, size_t n, float c, int t) {
  using E = Ev<DT>;
  constexpr int K = E::K;
  LseStats st{rk::kLpM0, 0.0f, 0.0f};
  size_t head = head_of(p, n);
  for (size_t j = t; j < head; j += G) {
    float z = E::at(p, j) * c;
    rk::lse_push_k<W, 1>(st, &z);
  }
  const uint4* pv = reinterpret_cast<const uint4*>(p + head);
  size_t nv = (n - head) / K;
  size_t k = t;
  for (; k + 3 * G < nv; k += 4 * G) {
    uint4 v[4];
#pragma unroll
    for (int u = 0; u < 4; ++u) v[u] = __ldg(pv + k + u * G);
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      float z[K];
      E::unpack(v[u], z);
#pragma unroll
      for (int i = 0; i < K; ++i) z[i] *= c;
      rk::lse_push_k<W, K>(st, z);
    }
  }
  for (; k < nv; k += G) {
    float z[K];
    E::unpack(__ldg(pv + k), z);
#pragma unroll
    for (int i = 0; i < K; ++i) z[i] *= c;
    rk::lse_push_k<W, K>(st, z);
  }
  for (size_t j = head + nv * K + t; j < n; j += G) {
    float z = E::at(p, j) * c;
    rk::lse_push_k<W, 1>(st, &z);
  }
  return st;
}

__device__ __forceinline__ bool counted(int32_t y, int32_t ignore, size_t V) { return y != ignore && y >= 0 && (size_t)y < V; }

__device__ __forceinline__ void write_row(const rk_logprobs_args& a, size_t row, const LseStats* st, float zy) {
  if (!st) {
    float v = a.labels[row] == a.ignore_index ? 0.0f : rk::nan_f();
    a.logp[row] = v;
    if (a.lse) a.lse[row] = v;
    if (a.entropy) a.entropy[row] = v;
    return;
  }
  rk::LpOut o = rk::lse_finish(*st, zy);
  a.logp[row] = o.logp;
  if (a.lse) a.lse[row] = o.lse;
  if (a.entropy) a.entropy[row] = o.entropy;
}

// Forward, one group of G threads per row; blockDim.x = max(G, 256) (G = 32: several rows per block).
template <int DT, bool W, int G>
__global__ void __launch_bounds__(G > 256 ? G : 256) lp_fwd_kernel(rk_logprobs_args a) {
  using E = Ev<DT>;
  constexpr int B = G > 256 ? G : 256, RPB = B / G;
  __shared__ LseStats smem[G > 32 ? G / 32 : 1];
  const float inv_t = 1.0f / a.temperature, c = inv_t;
  const typename E::T* base = static_cast<const typename E::T*>(a.logits);
  int t = threadIdx.x % G;
  for (size_t row = (size_t)blockIdx.x * RPB + threadIdx.x / G; row < a.N; row += (size_t)gridDim.x * RPB) {
    int32_t y = a.labels[row];
    if (!counted(y, a.ignore_index, a.V)) {
      if (t == 0) write_row(a, row, nullptr, 0.0f);
      continue;
    }
    const typename E::T* p = base + row * a.V;
    LseStats st = range_stats<DT, W, G>(p, a.V, c, t);
    st = group_reduce<W, G>(st, smem);
    if (t == 0) write_row(a, row, &st, E::at(p, (size_t)y) * inv_t);
  }
}

// Split-V phase 1: partial statistics of (row, piece) items; part[row·P + piece].
template <int DT, bool W>
__global__ void __launch_bounds__(512) lp_partial_kernel(rk_logprobs_args a, size_t P, size_t chunk, LseStats* part) {
  using E = Ev<DT>;
  __shared__ LseStats smem[16];
  const float c = 1.0f / a.temperature;
  const typename E::T* base = static_cast<const typename E::T*>(a.logits);
  for (size_t item = blockIdx.x; item < a.N * P; item += gridDim.x) {
    size_t row = item / P, v0 = (item % P) * chunk, v1 = v0 + chunk < a.V ? v0 + chunk : a.V;
    if (!counted(a.labels[row], a.ignore_index, a.V) || v0 >= v1) {
      if (threadIdx.x == 0) part[item] = LseStats{rk::kLpM0, 0.0f, 0.0f};
      continue;
    }
    LseStats st = range_stats<DT, W, 512>(base + row * a.V + v0, v1 - v0, c, threadIdx.x);
    st = group_reduce<W, 512>(st, smem);
    if (threadIdx.x == 0) part[item] = st;
  }
}

// Split-V phase 2: one warp per row merges its P partials.
template <int DT, bool W>
__global__ void lp_finish_kernel(rk_logprobs_args a, size_t P, const LseStats* part) {
  using E = Ev<DT>;
  const float inv_t = 1.0f / a.temperature;
  int lane = threadIdx.x & 31;
  for (size_t row = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; row < a.N; row += (size_t)gridDim.x * blockDim.x / 32) {
    int32_t y = a.labels[row];
    if (!counted(y, a.ignore_index, a.V)) {
      if (lane == 0) write_row(a, row, nullptr, 0.0f);
      continue;
    }
    LseStats st{rk::kLpM0, 0.0f, 0.0f};
    for (size_t k = lane; k < P; k += 32) st = rk::lse_merge<W>(st, part[row * P + k]);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) st = rk::lse_merge<W>(st, shfl_xor(st, off));
    if (lane == 0) write_row(a, row, &st, E::at(static_cast<const typename E::T*>(a.logits), row * a.V + (size_t)y) * inv_t);
  }
}

int sm_count() {
  static int n = 0;
  if (!n) {
    int dev = 0;
    cudaGetDevice(&dev);
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n <= 0) n = 80;
  }
  return n;
}

// Blocks for `items` work items of `per_block` each; at most `cap` (the kernels loop over the rest).
unsigned grid_cap(size_t items, size_t per_block, size_t cap = (size_t)1 << 20) {
  size_t g = (items + per_block - 1) / per_block;
  if (g > cap) g = cap;
  return g ? (unsigned)g : 1u;
}

// Split plan for few long rows: P pieces of `chunk` elements (P = 1: no split).
struct Split {
  size_t P, chunk;
};
Split split_for(size_t N, size_t V) {
  size_t sms = (size_t)sm_count();
  if (N >= 2 * sms || V < 65536) return {1, V};
  size_t P = (4 * sms + N - 1) / N, most = V / 4096;
  if (P > most) P = most;
  if (P < 2) return {1, V};
  size_t chunk = ((V + P - 1) / P + 255) / 256 * 256;
  return {(V + chunk - 1) / chunk, chunk};
}

template <int DT, bool W>
cudaError_t lp_forward_t(const rk_logprobs_args& a, cudaStream_t s) {
  Split sp = split_for(a.N, a.V);
  if (sp.P > 1) {
    LseStats* part = nullptr;
    cudaError_t e = rkc::dev_alloc(reinterpret_cast<void**>(&part), a.N * sp.P * sizeof(LseStats), s);
    if (e != cudaSuccess) return e;
    lp_partial_kernel<DT, W><<<grid_cap(a.N * sp.P, 1), 512, 0, s>>>(a, sp.P, sp.chunk, part);
    lp_finish_kernel<DT, W><<<grid_cap(a.N * 32, 256), 256, 0, s>>>(a, sp.P, part);
    e = cudaGetLastError();
    rkc::dev_free(part, s);
    return e;
  }
  if (a.V <= 4096) lp_fwd_kernel<DT, W, 32><<<grid_cap(a.N, 8), 256, 0, s>>>(a);
  else lp_fwd_kernel<DT, W, 512><<<grid_cap(a.N, 1), 512, 0, s>>>(a);
  return cudaGetLastError();
}

// ---- backward --------------------------------------------------------------------------------

// 4-value vectors per thread per (row, tile) item: 8 for 16-bit logits (8-byte loads), 4 for f32.
template <int DT> constexpr int bwd_unroll() { return sizeof(typename Ev<DT>::T) == 2 ? 8 : 4; }
template <int DT> constexpr size_t bwd_tile() { return 256 * (size_t)bwd_unroll<DT>(); }

// One (row, tile) item per block iteration: each thread loads U vectors of 4 logits (all loads
// before any store), and writes one float4 of gradient per vector, so a warp's stores cover one
// contiguous 512-byte span. Rows whose logits and gradient have different alignments modulo the
// vector take the element-wise path for the whole row.
template <int DT, bool GE>
__global__ void __launch_bounds__(256) lp_bwd_kernel(rk_logprobs_backward_args a, const float* lse, const float* H, size_t tiles) {
  using E = Ev<DT>;
  using VT = typename E::V4;
  constexpr int U = bwd_unroll<DT>();
  constexpr size_t kTile = bwd_tile<DT>();
  const float inv_t = 1.0f / a.temperature;
  const typename E::T* base = static_cast<const typename E::T*>(a.logits);
  const size_t V = a.V;
  for (size_t item = blockIdx.x; item < a.N * tiles; item += gridDim.x) {
    size_t row = item / tiles, tile = item % tiles;
    const typename E::T* p = base + row * V;
    float* g = a.grad_logits + row * V;
    int32_t y = a.labels[row];
    size_t head = head_of<typename E::T, sizeof(VT)>(p, V);
    bool vec = (((uintptr_t)(g + head)) & 15u) == 0;
    size_t nv = vec ? (V - head) / 4 : 0;
    if (!vec) head = V;
    size_t k0 = tile * kTile, k1 = k0 + kTile < nv ? k0 + kTile : nv;
    bool on = counted(y, a.ignore_index, V);
    float gl = on ? a.grad_logp[row] : 0.0f, ge = GE && on ? a.grad_entropy[row] : 0.0f;
    float l = on ? lse[row] : 0.0f, h = GE && on ? H[row] : 0.0f;
    float fill = y == a.ignore_index ? 0.0f : rk::nan_f();
    auto grad = [&](float x, size_t j) {
      float r = rk::lp_grad<GE>(x * inv_t - l, gl, ge, h, inv_t);
      return j == (size_t)y ? r + gl * inv_t : r;
    };
    if (tile == 0) {  // the unaligned head and the tail, element by element
      for (size_t j = threadIdx.x; j < head; j += blockDim.x) g[j] = on ? grad(E::at(p, j), j) : fill;
      for (size_t j = head + nv * 4 + threadIdx.x; j < V; j += blockDim.x) g[j] = on ? grad(E::at(p, j), j) : fill;
    }
    const VT* pv = reinterpret_cast<const VT*>(p + head);
    float4* gv = reinterpret_cast<float4*>(g + head);
    VT v[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      size_t k = k0 + threadIdx.x + (size_t)u * 256;
      if (on && k < k1) v[u] = __ldg(pv + k);  // ignored rows are not read
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      size_t k = k0 + threadIdx.x + (size_t)u * 256;
      if (k >= k1) break;
      float z[4];
      if (on) {
        E::unpack4(v[u], z);
        size_t j0 = head + k * 4;
#pragma unroll
        for (int i = 0; i < 4; ++i) z[i] = grad(z[i], j0 + i);
      } else {
        z[0] = z[1] = z[2] = z[3] = fill;
      }
      gv[k] = make_float4(z[0], z[1], z[2], z[3]);
    }
  }
}

template <int DT>
cudaError_t lp_backward_t(const rk_logprobs_backward_args& a, cudaStream_t s) {
  const float* lse = a.lse;
  float* scratch = nullptr;
  cudaError_t e;
  if (!lse || a.grad_entropy) {
    e = rkc::dev_alloc(reinterpret_cast<void**>(&scratch), 3 * a.N * sizeof(float) + 16, s);
    if (e != cudaSuccess) return e;
    rk_logprobs_args f{};
    f.logits = a.logits;
    f.dtype = a.dtype;
    f.labels = a.labels;
    f.N = a.N;
    f.V = a.V;
    f.temperature = a.temperature;
    f.ignore_index = a.ignore_index;
    f.logp = scratch;
    f.lse = scratch + a.N;
    f.entropy = a.grad_entropy ? scratch + 2 * a.N : nullptr;
    e = a.grad_entropy ? lp_forward_t<DT, true>(f, s) : lp_forward_t<DT, false>(f, s);
    if (e != cudaSuccess) { rkc::dev_free(scratch, s); return e; }
    lse = f.lse;
  }
  size_t nv = a.V / 4 + 1;
  size_t tiles = (nv + bwd_tile<DT>() - 1) / bwd_tile<DT>();
  unsigned g = grid_cap(a.N * tiles, 1, (size_t)sm_count() * 32);
  if (a.grad_entropy) lp_bwd_kernel<DT, true><<<g, 256, 0, s>>>(a, lse, scratch + 2 * a.N, tiles);
  else lp_bwd_kernel<DT, false><<<g, 256, 0, s>>>(a, lse, nullptr, tiles);
  e = cudaGetLastError();
  if (scratch) rkc::dev_free(scratch, s);
  return e;
}

// ---- vocabKl ---------------------------------------------------------------------------------

// Per-thread KlStats of rows a, b (n elements), thread t of a group of G.
template <int DT, int G>
__device__ KlStats kl_range(const typename Ev<DT>::T* __restrict pa, const typename Ev<DT>::T* __restrict pb, size_t n, float inv_t,
                            int t) {
  using E = Ev<DT>;
  constexpr int K = E::K;
  KlStats st = rk::kl_empty();
  bool vec = ((uintptr_t)pa & 15u) == ((uintptr_t)pb & 15u);
  size_t head = vec ? head_of(pa, n) : n;
  for (size_t j = t; j < head; j += G) rk::kl_push(st, E::at(pa, j) * inv_t, E::at(pb, j) * inv_t);
  const uint4* va = reinterpret_cast<const uint4*>(pa + head);
  const uint4* vb = reinterpret_cast<const uint4*>(pb + head);
  size_t nv = (n - head) / K;
  for (size_t k = t; k < nv; k += G) {
    float za[K], zb[K];
    E::unpack(__ldg(va + k), za);
    E::unpack(__ldg(vb + k), zb);
#pragma unroll
    for (int i = 0; i < K; ++i) rk::kl_push(st, za[i] * inv_t, zb[i] * inv_t);
  }
  for (size_t j = head + nv * K + t; j < n; j += G) rk::kl_push(st, E::at(pa, j) * inv_t, E::at(pb, j) * inv_t);
  return st;
}

// One group per row: writes KL (and, when `stats` is given, {m_p, log s_p, m_q, log s_q, KL} per
// row for the backward). x = the distribution the expectation is under.
template <int DT, int G>
__global__ void __launch_bounds__(G > 256 ? G : 256) kl_fwd_kernel(const void* x, const void* y, const int32_t* labels,
                                                                   int32_t ignore, size_t N, size_t V, float inv_t, float* kl,
                                                                   float* stats) {
  using E = Ev<DT>;
  constexpr int B = G > 256 ? G : 256, RPB = B / G;
  __shared__ KlStats smem[G > 32 ? G / 32 : 1];
  int t = threadIdx.x % G;
  for (size_t row = (size_t)blockIdx.x * RPB + threadIdx.x / G; row < N; row += (size_t)gridDim.x * RPB) {
    bool on = !(labels && labels[row] == ignore);
    if (!on) {
      if (t == 0) {
        if (kl) kl[row] = 0.0f;
        if (stats) for (int i = 0; i < 5; ++i) stats[5 * row + i] = 0.0f;
      }
      continue;
    }
    KlStats st = kl_range<DT, G>(static_cast<const typename E::T*>(x) + row * V, static_cast<const typename E::T*>(y) + row * V, V,
                                 inv_t, t);
    st = group_reduce<true, G>(st, smem);
    if (t == 0) {
      rk::KlOut o = rk::kl_finish(st);
      if (kl) kl[row] = o.kl;
      if (stats) {
        stats[5 * row] = st.ma;
        stats[5 * row + 1] = rk::logf_(st.sa);
        stats[5 * row + 2] = st.mb;
        stats[5 * row + 3] = rk::logf_(st.sb);
        stats[5 * row + 4] = o.kl;
      }
    }
  }
}

template <int DT>
void kl_fwd_launch(const void* x, const void* y, const int32_t* labels, int32_t ignore, size_t N, size_t V, float inv_t, float* kl,
                   float* stats, cudaStream_t s) {
  if (V <= 4096) kl_fwd_kernel<DT, 32><<<grid_cap(N, 8), 256, 0, s>>>(x, y, labels, ignore, N, V, inv_t, kl, stats);
  else kl_fwd_kernel<DT, 512><<<grid_cap(N, 1), 512, 0, s>>>(x, y, labels, ignore, N, V, inv_t, kl, stats);
}

template <int DT, bool REV>
__global__ void kl_bwd_kernel(rk_vocab_kl_backward_args a, const float* stats) {
  using E = Ev<DT>;
  const float inv_t = 1.0f / a.temperature;
  const typename E::T* px = static_cast<const typename E::T*>(a.logits);
  const typename E::T* pr = static_cast<const typename E::T*>(a.ref_logits);
  size_t n = a.N * a.V;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    size_t row = i / a.V;
    if (a.labels && a.labels[row] == a.ignore_index) { a.grad_logits[i] = 0.0f; continue; }
    const float* st = stats + 5 * row;
    float dx = (E::at(px, i) * inv_t - st[0]) - st[1];
    float dr = (E::at(pr, i) * inv_t - st[2]) - st[3];
    float g = a.grad_kl[row] * inv_t;
    a.grad_logits[i] = REV ? rk::kl_grad_reverse(dx, dr, st[4], g) : rk::kl_grad_forward(dx, dr, g);
  }
}

// ---- sequenceLogprobs ------------------------------------------------------------------------

__global__ void seq_kernel(rk_sequence_logprobs_args a) {
  int lane = threadIdx.x & 31;
  for (size_t b = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; b < a.B; b += (size_t)gridDim.x * blockDim.x / 32) {
    float s = 0.0f;
    int c = 0;
    for (size_t t = lane; t < a.T; t += 32) {
      size_t i = b * a.T + t;
      if (rkc::mask_at(a.mask, a.mask_kind, i)) { s += a.logp[i]; ++c; }
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      s += __shfl_xor_sync(0xffffffffu, s, off);
      c += __shfl_xor_sync(0xffffffffu, c, off);
    }
    if (lane == 0) {
      a.sum[b] = a.average ? (c ? s / (float)c : 0.0f) : s;
      a.count[b] = c;
    }
  }
}

template <class F>
cudaError_t by_dtype(int dt, F&& f) {
  switch (dt) {
    case RK_DT_F16: return f(std::integral_constant<int, RK_DT_F16>{});
    case RK_DT_BF16: return f(std::integral_constant<int, RK_DT_BF16>{});
    default: return f(std::integral_constant<int, RK_DT_F32>{});
  }
}

size_t elem_bytes(int dt) { return dt == RK_DT_F32 ? 4 : 2; }

}  // namespace

// ---- device-pointer launchers ----------------------------------------------------------------

cudaError_t rk_launch_logprobs(const rk_logprobs_args& a, cudaStream_t s) {
  if (!a.N) return cudaSuccess;
  return by_dtype(a.dtype, [&](auto dt) {
    constexpr int DT = decltype(dt)::value;
    return a.entropy ? lp_forward_t<DT, true>(a, s) : lp_forward_t<DT, false>(a, s);
  });
}

cudaError_t rk_launch_logprobs_backward(const rk_logprobs_backward_args& a, cudaStream_t s) {
  if (!a.N || !a.V) return cudaSuccess;
  return by_dtype(a.dtype, [&](auto dt) { return lp_backward_t<decltype(dt)::value>(a, s); });
}

cudaError_t rk_launch_vocab_kl(const rk_vocab_kl_args& a, cudaStream_t s) {
  if (!a.N) return cudaSuccess;
  bool rev = a.direction != RK_KL_FORWARD;
  const void* x = rev ? a.logits : a.ref_logits;
  const void* y = rev ? a.ref_logits : a.logits;
  return by_dtype(a.dtype, [&](auto dt) {
    kl_fwd_launch<decltype(dt)::value>(x, y, a.labels, a.ignore_index, a.N, a.V, 1.0f / a.temperature, a.kl, nullptr, s);
    return cudaGetLastError();
  });
}

cudaError_t rk_launch_vocab_kl_backward(const rk_vocab_kl_backward_args& a, cudaStream_t s) {
  if (!a.N || !a.V) return cudaSuccess;
  float* stats = nullptr;
  cudaError_t e = rkc::dev_alloc(reinterpret_cast<void**>(&stats), 5 * a.N * sizeof(float), s);
  if (e != cudaSuccess) return e;
  e = by_dtype(a.dtype, [&](auto dt) {
    constexpr int DT = decltype(dt)::value;
    kl_fwd_launch<DT>(a.logits, a.ref_logits, a.labels, a.ignore_index, a.N, a.V, 1.0f / a.temperature, nullptr, stats, s);
    unsigned g = rkc::grid_for(a.N * a.V, 256);
    if (a.direction != RK_KL_FORWARD) kl_bwd_kernel<DT, true><<<g, 256, 0, s>>>(a, stats);
    else kl_bwd_kernel<DT, false><<<g, 256, 0, s>>>(a, stats);
    return cudaGetLastError();
  });
  rkc::dev_free(stats, s);
  return e;
}

cudaError_t rk_launch_sequence_logprobs(const rk_sequence_logprobs_args& a, cudaStream_t s) {
  if (!a.B) return cudaSuccess;
  seq_kernel<<<rkc::grid_for(a.B * 32, 256), 256, 0, s>>>(a);
  return cudaGetLastError();
}

// ---- host-pointer entry points of the C ABI ----------------------------------------------------

// Device-pointer entry points of the C ABI (queued on the stream, no wait).
RKC_DEV_ENTRY(logprobs, rk_logprobs_args)
RKC_DEV_ENTRY(logprobs_backward, rk_logprobs_backward_args)
RKC_DEV_ENTRY(vocab_kl, rk_vocab_kl_args)
RKC_DEV_ENTRY(vocab_kl_backward, rk_vocab_kl_backward_args)
RKC_DEV_ENTRY(sequence_logprobs, rk_sequence_logprobs_args)

// Host-pointer entry points of the C ABI: stage, run the device entry point, copy back.
extern "C" int rk_cuda_logprobs(const rk_logprobs_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_logprobs_args d = *h;
  RKC_TRY(st.in_bytes(h->logits, h->N * h->V * elem_bytes(h->dtype), &d.logits));
  RKC_TRY(st.in(h->labels, h->N, &d.labels));
  RKC_TRY(st.out(h->logp, h->N, &d.logp));
  RKC_TRY(st.out(h->lse, h->N, &d.lse));
  RKC_TRY(st.out(h->entropy, h->N, &d.entropy));
  RKC_RUN_DEV(logprobs, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_logprobs_backward(const rk_logprobs_backward_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_logprobs_backward_args d = *h;
  RKC_TRY(st.in_bytes(h->logits, h->N * h->V * elem_bytes(h->dtype), &d.logits));
  RKC_TRY(st.in(h->labels, h->N, &d.labels));
  RKC_TRY(st.in(h->grad_logp, h->N, &d.grad_logp));
  RKC_TRY(st.in(h->grad_entropy, h->N, &d.grad_entropy));
  RKC_TRY(st.in(h->lse, h->N, &d.lse));
  RKC_TRY(st.out(h->grad_logits, h->N * h->V, &d.grad_logits));
  RKC_RUN_DEV(logprobs_backward, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_vocab_kl(const rk_vocab_kl_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_vocab_kl_args d = *h;
  size_t bytes = h->N * h->V * elem_bytes(h->dtype);
  RKC_TRY(st.in_bytes(h->logits, bytes, &d.logits));
  RKC_TRY(st.in_bytes(h->ref_logits, bytes, &d.ref_logits));
  RKC_TRY(st.in(h->labels, h->N, &d.labels));
  RKC_TRY(st.out(h->kl, h->N, &d.kl));
  RKC_RUN_DEV(vocab_kl, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_vocab_kl_backward(const rk_vocab_kl_backward_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_vocab_kl_backward_args d = *h;
  size_t bytes = h->N * h->V * elem_bytes(h->dtype);
  RKC_TRY(st.in_bytes(h->logits, bytes, &d.logits));
  RKC_TRY(st.in_bytes(h->ref_logits, bytes, &d.ref_logits));
  RKC_TRY(st.in(h->labels, h->N, &d.labels));
  RKC_TRY(st.in(h->grad_kl, h->N, &d.grad_kl));
  RKC_TRY(st.out(h->grad_logits, h->N * h->V, &d.grad_logits));
  RKC_RUN_DEV(vocab_kl_backward, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_sequence_logprobs(const rk_sequence_logprobs_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_sequence_logprobs_args d = *h;
  size_t n = h->B * h->T;
  RKC_TRY(st.in(h->logp, n, &d.logp));
  RKC_TRY(st.in_bytes(h->mask, n * rkc::mask_bytes(h->mask_kind), &d.mask));
  RKC_TRY(st.out(h->sum, h->B, &d.sum));
  RKC_TRY(st.out(h->count, h->B, &d.count));
  RKC_RUN_DEV(sequence_logprobs, d);
  RKC_TRY(st.finish());
  return 0;
}
