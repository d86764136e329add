// CUDA kernels of the prepacking family (SPEC §6).
//
// - attentionMask: output-bound; each thread writes 16 bytes (u8) or 4 floats with one vector
//   store when the row length allows, reading segment ids through the cache.
// - unpack: a grid-stride gather, left-padding with zeros.
// - packedAttention: flash-style (FlashAttention alg. 1): one block per (query tile, head, pack),
//   key tiles staged in shared memory, online softmax, key tiles holding no key of the query
//   tile's segments skipped (and none before the first key those segments can see). f16/bf16 with
//   Dh ∈ {64, 128} run on tensor cores (WMMA 16×16×16, f32 accumulation; bf16 P·V as a hi + lo
//   bf16 split so P keeps ~16 bits); other dtypes / head sizes run a SIMT f32 kernel. Memory beyond
//   q, k, v, out: one tile per block in shared memory.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <cstdlib>
#include <cstring>

#include "../src/core/prepack.hpp"
#include "common.cuh"
#include "mma.cuh"
#include "prepack.cuh"

namespace {

constexpr unsigned kBlock = 256;

// ---------------------------------------------------------------------------------------------
// attentionMask

template <int V>
__global__ void mask_u8_kernel(const int32_t* __restrict__ seg, size_t P, size_t L, uint8_t* __restrict__ out) {
  const size_t nvec = P * L * L / V;
  for (size_t x = blockIdx.x * (size_t)blockDim.x + threadIdx.x; x < nvec; x += (size_t)gridDim.x * blockDim.x) {
    const size_t e = x * V, row = e / L, j0 = e % L, p = row / L, i = row % L;
    const int32_t si = __ldg(seg + row);
    const int32_t* sp = seg + p * L;
    uint8_t b[V];
#pragma unroll
    for (int t = 0; t < V; ++t) b[t] = rk::packed_attends(si, __ldg(sp + j0 + t), i, j0 + t) ? 1 : 0;
    if (V == 16) {
      uint4 w;
      memcpy(&w, b, 16);
      reinterpret_cast<uint4*>(out)[x] = w;
    } else {
#pragma unroll
      for (int t = 0; t < V; ++t) out[e + t] = b[t];
    }
  }
}

template <int V>
__global__ void mask_f32_kernel(const int32_t* __restrict__ seg, size_t P, size_t L, float* __restrict__ out) {
  const size_t nvec = P * L * L / V;
  const float ninf = -RK_INF;
  for (size_t x = blockIdx.x * (size_t)blockDim.x + threadIdx.x; x < nvec; x += (size_t)gridDim.x * blockDim.x) {
    const size_t e = x * V, row = e / L, j0 = e % L, p = row / L, i = row % L;
    const int32_t si = __ldg(seg + row);
    const int32_t* sp = seg + p * L;
    float f[V];
#pragma unroll
    for (int t = 0; t < V; ++t) f[t] = rk::packed_attends(si, __ldg(sp + j0 + t), i, j0 + t) ? 0.0f : ninf;
    if (V == 4) reinterpret_cast<float4*>(out)[x] = make_float4(f[0], f[1], f[2], f[3]);
    else {
#pragma unroll
      for (int t = 0; t < V; ++t) out[e + t] = f[t];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// unpack

__global__ void unpack_kernel(rk_unpack_args a) {
  const size_t M = a.max_len, D = a.D, total = a.n * M * D;
  for (size_t x = blockIdx.x * (size_t)blockDim.x + threadIdx.x; x < total; x += (size_t)gridDim.x * blockDim.x) {
    const size_t d = x % D, t = (x / D) % M, i = x / (D * M);
    const int32_t len = a.lengths[i];
    const size_t pad = M - (size_t)(len > 0 ? len : 0);
    float v = 0.0f;
    if (t >= pad) v = a.packed[((size_t)a.pack_of[i] * a.L + (size_t)a.offset_of[i] + (t - pad)) * D + d];
    a.rows[x] = v;
  }
}

// ---------------------------------------------------------------------------------------------
// packedAttention: shared pieces

__device__ __forceinline__ float load_elem(const void* p, int dt, size_t i) {
  if (dt == RK_DT_F16) return __half2float(__ushort_as_half(static_cast<const uint16_t*>(p)[i]));
  if (dt == RK_DT_BF16) return rk::bf16_to_float(static_cast<const uint16_t*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

using rk::in_set;

// Block prologue: the distinct non-zero segments of rows [i0, i1) (into segs, count returned in
// *nsegs) and the first key position any of them can see (*lo). Every thread returns the same.
__device__ void tile_segments(const int32_t* seg, size_t i0, size_t i1, int32_t* segs, int* nsegs, unsigned* lo) {
  if (threadIdx.x == 0) {
    int n = 0;
    for (size_t i = i0; i < i1; ++i)
      if (seg[i] != 0 && !in_set(segs, n, seg[i])) segs[n++] = seg[i];
    *nsegs = n;
    *lo = (unsigned)i0;
  }
  __syncthreads();
  const int n = *nsegs;
  for (size_t j = threadIdx.x; j < i0; j += blockDim.x)
    if (in_set(segs, n, seg[j])) { atomicMin(lo, (unsigned)j); break; }
  __syncthreads();
}

// ---------------------------------------------------------------------------------------------
// SIMT kernel (any dtype, any Dh): B query rows × B keys per tile, 128 threads.

template <int B>
__global__ void __launch_bounds__(128) attn_simt_kernel(rk_packed_attention_args a, unsigned long long* comp,
                                                         unsigned long long* skip) {
  extern __shared__ float sm[];
  const size_t L = a.L, H = a.H, Hkv = a.Hkv, Dh = a.Dh, G = H / Hkv;
  const size_t qt = blockIdx.x, h = blockIdx.y, p = blockIdx.z, g = h / G;
  const size_t i0 = qt * B, i1 = min(L, i0 + B), nq = i1 - i0;
  const int32_t* seg = a.segment_ids + p * L;
  __shared__ int32_t segs[B], rowSeg[B], keySeg[B];
  __shared__ int nsegs;
  __shared__ unsigned lo;
  __shared__ float mrow[B], lrow[B], arow[B];
  __shared__ int anyKey;
  float* Qs = sm;                  // [B][Dh]
  float* Ks = Qs + B * Dh;         // [B][Dh+1]
  float* Vs = Ks + B * (Dh + 1);   // [B][Dh]
  float* Os = Vs + B * Dh;         // [B][Dh]
  float* Ss = Os + B * Dh;         // [B][B+1]
  tile_segments(seg, i0, i1, segs, &nsegs, &lo);
  const int ns = nsegs;
  const unsigned tid = threadIdx.x;
  auto outp = [&](size_t r) { return a.out + ((p * L + i0 + r) * H + h) * Dh; };
  if (ns == 0) {
    for (size_t x = tid; x < nq * Dh; x += blockDim.x) outp(x / Dh)[x % Dh] = 0.0f;
    return;
  }
  for (size_t r = tid; r < B; r += blockDim.x) {
    rowSeg[r] = r < nq ? seg[i0 + r] : 0;
    mrow[r] = -RK_INF;
    lrow[r] = 0.0f;
  }
  for (size_t x = tid; x < B * Dh; x += blockDim.x) {
    const size_t r = x / Dh, d = x % Dh;
    Qs[x] = r < nq ? load_elem(a.q, a.dtype, ((p * L + i0 + r) * H + h) * Dh + d) * a.scale : 0.0f;
    Os[x] = 0.0f;
  }
  const size_t kt0 = lo / B, kt1 = (i1 - 1) / B;
  if (tid == 0 && comp) atomicAdd(skip, (unsigned long long)kt0);
  __syncthreads();
  for (size_t kt = kt0; kt <= kt1; ++kt) {
    const size_t j0 = kt * B, nk = min((size_t)B, L - j0);
    if (tid == 0) anyKey = 0;
    __syncthreads();
    for (size_t c = tid; c < B; c += blockDim.x) {
      int32_t s = c < nk ? seg[j0 + c] : 0;
      bool use = s != 0 && in_set(segs, ns, s);
      keySeg[c] = use ? s : 0;
      if (use) anyKey = 1;
    }
    __syncthreads();
    const int any = anyKey;
    __syncthreads();  // everyone has read anyKey before thread 0 resets it
    if (!any) {
      if (tid == 0 && comp) atomicAdd(skip, 1ull);
      continue;
    }
    if (tid == 0 && comp) atomicAdd(comp, 1ull);
    for (size_t x = tid; x < B * Dh; x += blockDim.x) {
      const size_t c = x / Dh, d = x % Dh;
      const bool use = keySeg[c] != 0;
      const size_t gi = ((p * L + j0 + c) * Hkv + g) * Dh + d;
      Ks[c * (Dh + 1) + d] = use ? load_elem(a.k, a.dtype, gi) : 0.0f;
      Vs[x] = use ? load_elem(a.v, a.dtype, gi) : 0.0f;
    }
    __syncthreads();
    for (size_t x = tid; x < B * B; x += blockDim.x) {
      const size_t r = x / B, c = x % B;
      float s = 0.0f;
      for (size_t d = 0; d < Dh; ++d) s += Qs[r * Dh + d] * Ks[c * (Dh + 1) + d];
      const bool valid = rowSeg[r] != 0 && keySeg[c] == rowSeg[r] && j0 + c <= i0 + r;
      Ss[r * (B + 1) + c] = valid ? s : -RK_INF;
    }
    __syncthreads();
    // Online softmax: warp w handles rows w, w+4, ...; lane c < B holds column c.
    const unsigned warp = tid / 32, lane = tid % 32;
    for (size_t r = warp; r < B; r += 4) {
      float s = lane < B ? Ss[r * (B + 1) + lane] : -RK_INF;
      float mt = s;
      for (int o = 16; o; o >>= 1) mt = rk::maxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
      const float mo = mrow[r];
      const float mn = rk::maxf(mo, mt);
      float pr = 0.0f, alpha = 1.0f;
      if (mn != -RK_INF) {
        pr = s == -RK_INF ? 0.0f : rk::expf_(s - mn);
        alpha = mo == -RK_INF ? 0.0f : rk::expf_(mo - mn);
      }
      float sum = pr;
      for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if (lane < B) Ss[r * (B + 1) + lane] = pr;
      if (lane == 0) {
        mrow[r] = mn;
        lrow[r] = lrow[r] * alpha + sum;
        arow[r] = alpha;
      }
    }
    __syncthreads();
    for (size_t x = tid; x < B * Dh; x += blockDim.x) {
      const size_t r = x / Dh, d = x % Dh;
      float o = Os[x] * arow[r];
      for (size_t c = 0; c < nk; ++c) {
        const float pc = Ss[r * (B + 1) + c];
        if (pc != 0.0f) o += pc * Vs[c * Dh + d];  // masked keys are never read into a result
      }
      Os[x] = o;
    }
    __syncthreads();
  }
  for (size_t x = tid; x < nq * Dh; x += blockDim.x) {
    const size_t r = x / Dh;
    outp(r)[x % Dh] = rowSeg[r] == 0 ? 0.0f : Os[x] / lrow[r];
  }
}

// ---------------------------------------------------------------------------------------------
// Tensor-core kernel (f16 / bf16, Dh ∈ {64, 128}): 64 query rows × 64 keys per tile, 4 warps,
// each warp owning 16 query rows. S = Q·Kᵀ and O += P·V on WMMA 16×16×16 with f32 accumulators;
// the running O lives in shared memory (f32) so each row can be rescaled by its alpha.

template <class T> struct Wmma;
template <> struct Wmma<__half> {
  static __device__ __forceinline__ __half from(float x) { return __float2half_rn(x); }
  static __device__ __forceinline__ float to(__half x) { return __half2float(x); }
  static __device__ __forceinline__ bool finite_bits(uint16_t b) { return (b & 0x7c00u) != 0x7c00u; }
  static constexpr bool kSplit = false;
};
template <> struct Wmma<__nv_bfloat16> {
  static __device__ __forceinline__ __nv_bfloat16 from(float x) { return __float2bfloat16_rn(x); }
  static __device__ __forceinline__ float to(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __device__ __forceinline__ bool finite_bits(uint16_t b) { return (b & 0x7f80u) != 0x7f80u; }
  static constexpr bool kSplit = true;  // P = hi + lo in bf16: ~16 bits of P
};

constexpr int kTQ = 64, kTK = 64, kSP = kTK + 4, kPP = kTK + 8;

template <int DH>
constexpr size_t wmma_smem_bytes() {
  // Q, K, V tiles (16-bit), S (f32) and O (f32), P hi and lo (16-bit)
  return (size_t)(kTQ * (DH + 8) + 2 * kTK * (DH + 8)) * 2 + (size_t)kTQ * kSP * 4 + (size_t)kTQ * DH * 4 +
         (size_t)2 * kTQ * kPP * 2;
}

template <class T, int DH>
__global__ void __launch_bounds__(128) attn_wmma_kernel(rk_packed_attention_args a, unsigned long long* comp,
                                                         unsigned long long* skip) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  using W = Wmma<T>;
  constexpr int LD = DH + 8;  // 16-bit row stride (keeps 16-byte alignment, spreads banks)
  extern __shared__ __align__(128) unsigned char smraw[];
  T* Qs = reinterpret_cast<T*>(smraw);
  T* Ks = Qs + kTQ * LD;
  T* Vs = Ks + kTK * LD;
  float* Ss = reinterpret_cast<float*>(Vs + kTK * LD);
  float* Os = Ss + kTQ * kSP;
  T* Ph = reinterpret_cast<T*>(Os + kTQ * DH);
  T* Pl = Ph + kTQ * kPP;
  __shared__ int32_t segs[kTQ], rowSeg[kTQ], keySeg[kTK];
  __shared__ int nsegs, anyKey, nonFinite;
  __shared__ unsigned lo;
  __shared__ float mrow[kTQ], lrow[kTQ];
  const size_t L = a.L, H = a.H, Hkv = a.Hkv, G = H / Hkv;
  const size_t qt = blockIdx.x, h = blockIdx.y, p = blockIdx.z, g = h / G;
  const size_t i0 = qt * kTQ, i1 = min(L, i0 + kTQ), nq = i1 - i0;
  const int32_t* seg = a.segment_ids + p * L;
  const uint16_t* q16 = static_cast<const uint16_t*>(a.q);
  const uint16_t* k16 = static_cast<const uint16_t*>(a.k);
  const uint16_t* v16 = static_cast<const uint16_t*>(a.v);
  const unsigned tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  tile_segments(seg, i0, i1, segs, &nsegs, &lo);
  const int ns = nsegs;
  auto outp = [&](size_t r) { return a.out + ((p * L + i0 + r) * H + h) * DH; };
  if (ns == 0) {
    for (size_t x = tid; x < nq * DH; x += blockDim.x) outp(x / DH)[x % DH] = 0.0f;
    return;
  }
  for (int r = tid; r < kTQ; r += blockDim.x) {
    rowSeg[r] = (size_t)r < nq ? seg[i0 + r] : 0;
    mrow[r] = -RK_INF;
    lrow[r] = 0.0f;
  }
  // Q tile: 8 halves (16 bytes) per thread-step; rows past the end are zeros.
  for (int x = tid; x < kTQ * DH / 8; x += blockDim.x) {
    const int r = x / (DH / 8), c8 = x % (DH / 8);
    uint4 w = make_uint4(0, 0, 0, 0);
    if ((size_t)r < nq) w = *reinterpret_cast<const uint4*>(q16 + ((p * L + i0 + r) * H + h) * DH + c8 * 8);
    *reinterpret_cast<uint4*>(Qs + r * LD + c8 * 8) = w;
  }
  for (int x = tid; x < kTQ * DH; x += blockDim.x) Os[x] = 0.0f;
  const size_t kt0 = lo / kTK, kt1 = (i1 - 1) / kTK;
  if (tid == 0 && comp) atomicAdd(skip, (unsigned long long)kt0);
  __syncthreads();
  wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fq[DH / 16];
#pragma unroll
  for (int kk = 0; kk < DH / 16; ++kk) wmma::load_matrix_sync(fq[kk], Qs + warp * 16 * LD + kk * 16, LD);
  for (size_t kt = kt0; kt <= kt1; ++kt) {
    const size_t j0 = kt * kTK, nk = min((size_t)kTK, L - j0);
    if (tid == 0) anyKey = 0, nonFinite = 0;
    __syncthreads();
    for (int c = tid; c < kTK; c += blockDim.x) {
      int32_t s = (size_t)c < nk ? seg[j0 + c] : 0;
      bool use = s != 0 && in_set(segs, ns, s);
      keySeg[c] = use ? s : 0;
      if (use) anyKey = 1;
    }
    __syncthreads();
    const int any = anyKey;
    __syncthreads();  // everyone has read anyKey before thread 0 resets it
    if (!any) {
      if (tid == 0 && comp) atomicAdd(skip, 1ull);
      continue;
    }
    if (tid == 0 && comp) atomicAdd(comp, 1ull);
    bool nf = false;
    for (int x = tid; x < kTK * DH / 8; x += blockDim.x) {
      const int c = x / (DH / 8), c8 = x % (DH / 8);
      uint4 kw = make_uint4(0, 0, 0, 0), vw = make_uint4(0, 0, 0, 0);
      if (keySeg[c] != 0) {
        const size_t gi = ((p * L + j0 + c) * Hkv + g) * DH + c8 * 8;
        kw = *reinterpret_cast<const uint4*>(k16 + gi);
        vw = *reinterpret_cast<const uint4*>(v16 + gi);
        const uint16_t* vb = reinterpret_cast<const uint16_t*>(&vw);
#pragma unroll
        for (int e = 0; e < 8; ++e) nf |= !W::finite_bits(vb[e]);
      }
      *reinterpret_cast<uint4*>(Ks + c * LD + c8 * 8) = kw;
      *reinterpret_cast<uint4*>(Vs + c * LD + c8 * 8) = vw;
    }
    if (nf) nonFinite = 1;
    __syncthreads();
    // S_w = Q_w · Kᵀ (16 × 64 per warp; the warp's Q fragments stay in registers)
    {
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
#pragma unroll
      for (int n = 0; n < kTK / 16; ++n) {
        wmma::fill_fragment(fc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < DH / 16; ++kk) {
          wmma::load_matrix_sync(fb, Ks + n * 16 * LD + kk * 16, LD);
          wmma::mma_sync(fc, fq[kk], fb, fc);
        }
        wmma::store_matrix_sync(Ss + warp * 16 * kSP + n * 16, fc, kSP, wmma::mem_row_major);
      }
    }
    __syncwarp();
    // Mask + online softmax of the warp's 16 rows (lane holds columns lane and lane + 32);
    // the warp's O rows are rescaled by alpha in place.
    for (int rr = 0; rr < 16; ++rr) {
      const int r = warp * 16 + rr;
      const int32_t sr = rowSeg[r];
      const size_t i = i0 + r;
      float s[2], mt = -RK_INF;
#pragma unroll
      for (int u = 0; u < 2; ++u) {
        const int c = lane + 32 * u;
        const bool valid = sr != 0 && keySeg[c] == sr && j0 + c <= i;
        s[u] = valid ? Ss[r * kSP + c] * a.scale : -RK_INF;
        mt = rk::maxf(mt, s[u]);
      }
      for (int o = 16; o; o >>= 1) mt = rk::maxf(mt, __shfl_xor_sync(0xffffffffu, mt, o));
      const float mo = mrow[r];
      const float mn = rk::maxf(mo, mt);
      float alpha = 1.0f, sum = 0.0f;
      float pr[2] = {0.0f, 0.0f};
      if (mn != -RK_INF) {
        alpha = mo == -RK_INF ? 0.0f : __expf(mo - mn);
#pragma unroll
        for (int u = 0; u < 2; ++u) pr[u] = s[u] == -RK_INF ? 0.0f : __expf(s[u] - mn);
      }
#pragma unroll
      for (int u = 0; u < 2; ++u) {
        const int c = lane + 32 * u;
        const T hi = W::from(pr[u]);
        Ph[r * kPP + c] = hi;
        if (W::kSplit) Pl[r * kPP + c] = W::from(pr[u] - W::to(hi));
        Ss[r * kSP + c] = pr[u];
        sum += pr[u];
      }
      for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if (lane == 0) {
        mrow[r] = mn;
        lrow[r] = lrow[r] * alpha + sum;
      }
      for (int d = lane; d < DH; d += 32) Os[r * DH + d] *= alpha;
    }
    __syncwarp();
    if (!nonFinite) {
      // O_w += P_w · V on tensor cores
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fp;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fv;
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> fo;
#pragma unroll
      for (int n = 0; n < DH / 16; ++n) {
        float* op = Os + warp * 16 * DH + n * 16;
        wmma::load_matrix_sync(fo, op, DH, wmma::mem_row_major);
#pragma unroll
        for (int kk = 0; kk < kTK; kk += 16) {
          wmma::load_matrix_sync(fv, Vs + kk * LD + n * 16, LD);
          wmma::load_matrix_sync(fp, Ph + warp * 16 * kPP + kk, kPP);
          wmma::mma_sync(fo, fp, fv, fo);
          if (W::kSplit) {
            wmma::load_matrix_sync(fp, Pl + warp * 16 * kPP + kk, kPP);
            wmma::mma_sync(fo, fp, fv, fo);
          }
        }
        wmma::store_matrix_sync(op, fo, DH, wmma::mem_row_major);
      }
    } else {
      // A non-finite V in this tile: exact f32 weights, skipping zero ones (never read).
      for (int rr = 0; rr < 16; ++rr) {
        const int r = warp * 16 + rr;
        for (int d = lane; d < DH; d += 32) {
          float o = Os[r * DH + d];
          for (int c = 0; c < kTK; ++c) {
            const float pc = Ss[r * kSP + c];
            if (pc != 0.0f) o += pc * W::to(Vs[c * LD + d]);
          }
          Os[r * DH + d] = o;
        }
      }
    }
    __syncthreads();
  }
  for (size_t x = tid; x < nq * DH; x += blockDim.x) {
    const size_t r = x / DH;
    outp(r)[x % DH] = rowSeg[r] == 0 ? 0.0f : Os[r * DH + x % DH] / lrow[r];
  }
#endif
}

// ---------------------------------------------------------------------------------------------
// FlashAttention-2-style kernel (f16 / bf16, Dh ∈ {64, 128}; Dao 2023, alg. 1 with the FA2 work
// split): one block of 4 warps per (query tile, query head, pack); each warp owns 16·MT query
// rows (MT = 1 or 2 m16 tiles) and keeps its Q fragments, S = Q·Kᵀ, P and the running O in
// registers (mma.sync m16n8k16, f32 accumulation, ldmatrix fragments). Key/value tiles of 64 keys
// are double-buffered in shared memory by cp.async: tile t+1 loads while tile t computes. The
// online softmax runs in base 2 on the registers (row max / sum over the 4 lanes of a quad).
// Segment handling per key tile (the same in every warp, from two segment ids per lane and warp
// votes): tiles without a key of the query tile's segments are skipped; keys of other segments
// (and past L) are zero-filled by cp.async, so a NaN/Inf there is never read; masks are applied
// element by element only where a warp's tile is not fully visible (diagonal tiles, segment
// boundaries); a warp skips tiles wholly after its last row. A tile whose (used) V holds a
// non-finite value takes an exact f32 P·V that skips zero weights, as the other kernels do.
// bf16 P·V: P = hi + lo in bf16 (two MMAs, ~16 bits of P), f16: P rounded to f16 (2^-11).
//
// Everything between the "fa2 begin" / "fa2 end" lines is also compiled on the host by
// tests/cuda-emu/run.sh against an emulation of cuda/mma.cuh (run it after changing this code).
// ---- fa2 begin
#ifndef RK_FA2_COVER
#define RK_FA2_COVER(path)  // the host emulation counts the paths taken
#endif
namespace fa2 {

constexpr int kBN = 64;           // keys per tile
constexpr int kThreads = 128;     // 4 warps
constexpr int kScrLd = kBN + 4;   // f32 row stride of the non-finite path's P scratch

// Shared memory: Q tile (reused as 4 warps × 16 × kScrLd f32 of P scratch once Q is in
// registers), then K[2] and V[2] tiles; 16-bit rows of DH + 8 elements (16 bytes of padding
// spread the 8 row addresses of an ldmatrix over all banks).
template <int DH, int MT>
constexpr size_t q_bytes() {
  return (size_t)64 * MT * (DH + 8) * 2 > (size_t)4 * 16 * kScrLd * 4 ? (size_t)64 * MT * (DH + 8) * 2
                                                                        : (size_t)4 * 16 * kScrLd * 4;
}
template <int DH, int MT>
constexpr size_t smem_bytes() {
  return q_bytes<DH, MT>() + (size_t)4 * kBN * (DH + 8) * 2;
}

// One key tile's segment ids as every lane of a warp sees them (computed redundantly per warp).
struct KeyTile {
  int32_t s0, s1;       // segment ids of keys j0 + lane and j0 + 32 + lane (0 past L)
  uint32_t use0, use1;  // bit c: key c (use0) / 32 + c (use1) carries one of the query tile's segments
  int32_t useg;         // segment id of key j0
  bool uniform;         // all 64 keys exist and share the non-zero segment useg
};

__device__ __forceinline__ KeyTile classify(int32_t s0, int32_t s1, const int32_t* segs, int ns) {
  KeyTile t;
  t.s0 = s0;
  t.s1 = s1;
  t.use0 = __ballot_sync(0xffffffffu, s0 != 0 && rk::in_set(segs, ns, s0));
  t.use1 = __ballot_sync(0xffffffffu, s1 != 0 && rk::in_set(segs, ns, s1));
  t.useg = __shfl_sync(0xffffffffu, s0, 0);
  t.uniform = __all_sync(0xffffffffu, s0 == t.useg && s1 == t.useg) && t.useg != 0;
  return t;
}

// Whether a 16-bit dtype-DT pair holds a non-finite value (all-ones exponent).
template <int DT>
__device__ __forceinline__ bool nonfinite2(uint32_t w) {
  constexpr uint32_t e = DT == RK_DT_BF16 ? 0x7f80u : 0x7c00u;
  return (w & e) == e || (w & (e << 16)) == (e << 16);
}

template <int DT, int DH, int MT>
__global__ void __launch_bounds__(kThreads) attn_fa2_kernel(rk_packed_attention_args a, unsigned long long* comp,
                                                            unsigned long long* skip) {
  using namespace rkmma;
  constexpr int BM = 64 * MT;   // query rows per block
  constexpr int LD = DH + 8;    // 16-bit smem row stride
  constexpr int NC = DH / 8;    // 16-byte chunks per row
  constexpr int NB = DH / 8;    // n8 blocks of O per m16 tile
  const float kNinf = -RK_INF;
  unsigned char* sm = dyn_smem();
  uint16_t* Qs = reinterpret_cast<uint16_t*>(sm);
  float* Scr = reinterpret_cast<float*>(sm);
  uint16_t* Ks = reinterpret_cast<uint16_t*>(sm + q_bytes<DH, MT>());  // [2][kBN][LD]
  uint16_t* Vs = Ks + 2 * kBN * LD;                                    // [2][kBN][LD]
  __shared__ int32_t rowSeg[BM], segs[BM];
  __shared__ int nsegs;
  __shared__ unsigned lo;

  const size_t L = a.L, H = a.H, Hkv = a.Hkv, G = H / Hkv;
  const size_t qt = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, p = blockIdx.z, g = h / G;  // longest tiles first
  const size_t i0 = qt * BM, nq = L - i0 < (size_t)BM ? L - i0 : (size_t)BM, i1 = i0 + nq;
  const int32_t* seg = a.segment_ids + p * L;
  const uint16_t* q16 = static_cast<const uint16_t*>(a.q);
  const uint16_t* k16 = static_cast<const uint16_t*>(a.k);
  const uint16_t* v16 = static_cast<const uint16_t*>(a.v);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, gq = lane >> 2, tq = lane & 3;

  // Rows' segments, the tile's distinct segments and the first key any of them can see.
  if (tid == 0) {
    nsegs = 0;
    lo = (unsigned)i0;
  }
  for (int r = tid; r < BM; r += kThreads) rowSeg[r] = (size_t)r < nq ? seg[i0 + r] : 0;
  __syncthreads();
  for (int r = tid; r < (int)nq; r += kThreads) {
    const int32_t s = rowSeg[r];
    bool first = s != 0;
    for (int r2 = r - 1; r2 >= 0 && first; --r2) first = rowSeg[r2] != s;
    if (first) segs[atomicAdd(&nsegs, 1)] = s;
  }
  __syncthreads();
  const int ns = nsegs;
  if (ns == 0) {  // all padding
    RK_FA2_COVER(0);
    for (size_t x = tid; x < nq * (DH / 2); x += kThreads) {
      const size_t r = x / (DH / 2), c = x % (DH / 2);
      reinterpret_cast<float2*>(a.out + ((p * L + i0 + r) * H + h) * DH)[c] = make_float2(0.0f, 0.0f);
    }
    return;
  }
  for (size_t j = tid; j < i0; j += kThreads)
    if (rk::in_set(segs, ns, seg[j])) {
      atomicMin(&lo, (unsigned)j);
      break;
    }
  __syncthreads();
  const size_t kt0 = lo / kBN, kt1 = (i1 - 1) / kBN;

  // This lane's rows (m16 tile m, half hh: row wr0 + 16m + gq + 8hh) and the warp's row range.
  const int wr0 = warp * 16 * MT;
  int32_t rs[MT][2];
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) rs[m][hh] = rowSeg[wr0 + 16 * m + gq + 8 * hh];
  const bool wActive = wr0 < (int)nq;
  const size_t wFirst = i0 + wr0;
  const size_t wLast = i0 + ((size_t)(wr0 + 16 * MT) < nq ? (size_t)(wr0 + 16 * MT) : nq) - 1;
  const int32_t wSeg = rowSeg[wr0];
  bool mine = true, anyRow = false;
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      mine &= (size_t)(wr0 + 16 * m + gq + 8 * hh) < nq && rs[m][hh] == wSeg;
      anyRow |= rs[m][hh] != 0;
    }
  const bool wUniform = __all_sync(0xffffffffu, mine) && wSeg != 0;  // every row of the warp in segment wSeg
  const bool wAny = __any_sync(0xffffffffu, anyRow) && wActive;        // some row of the warp attends

  auto seg_at = [&](size_t j) -> int32_t { return j < L ? seg[j] : 0; };
  // First tile ≥ kt that holds a key of the tile's segments (kt1 + 1 if none); t its segments.
  auto find = [&](size_t kt, KeyTile& t) -> size_t {
    for (; kt <= kt1; ++kt) {
      t = classify(seg_at(kt * kBN + lane), seg_at(kt * kBN + 32 + lane), segs, ns);
      if (t.use0 | t.use1) break;
      RK_FA2_COVER(1);
    }
    return kt;
  };
  auto load_kv = [&](size_t kt, int buf, const KeyTile& t) {
    const size_t j0 = kt * kBN;
#pragma unroll
    for (int u = 0; u < kBN * NC / kThreads; ++u) {
      const int x = tid + u * kThreads, c = x / NC, cc = x % NC;
      const bool use = ((c < 32 ? t.use0 >> c : t.use1 >> (c - 32)) & 1u) != 0;
      const size_t gi = use ? ((p * L + j0 + c) * Hkv + g) * DH + cc * 8 : 0;
      cp_async16(Ks + (buf * kBN + c) * LD + cc * 8, k16 + gi, use);
      cp_async16(Vs + (buf * kBN + c) * LD + cc * 8, v16 + gi, use);
    }
  };

  // Prologue: Q (group 0) and the first key tile (group 1) in flight, the second one classified.
#pragma unroll
  for (int u = 0; u < BM * NC / kThreads; ++u) {
    const int x = tid + u * kThreads, r = x / NC, cc = x % NC;
    const bool in = (size_t)r < nq;
    cp_async16(Qs + r * LD + cc * 8, q16 + (in ? ((p * L + i0 + r) * H + h) * DH + cc * 8 : 0), in);
  }
  cp_async_commit();
  KeyTile cur{}, nxt{};
  size_t kc = find(kt0, cur);
  if (kc <= kt1) load_kv(kc, 0, cur);
  cp_async_commit();
  size_t kn = kc <= kt1 ? find(kc + 1, nxt) : kc;
  cp_async_wait<1>();
  __syncthreads();
  uint32_t qf[MT][DH / 16][4];
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int kk = 0; kk < DH / 16; ++kk) ldsm_x4(qf[m][kk], Qs + (wr0 + 16 * m + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);

  float o[MT][NB][4];
  float mrow[MT][2], lrow[MT][2];
#pragma unroll
  for (int m = 0; m < MT; ++m) {
#pragma unroll
    for (int nb = 0; nb < NB; ++nb)
#pragma unroll
      for (int c = 0; c < 4; ++c) o[m][nb][c] = 0.0f;
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) mrow[m][hh] = kNinf, lrow[m][hh] = 0.0f;
  }
  const float sl2 = a.scale * 1.4426950408889634f;  // scores in base-2 units
  unsigned long long computed = 0;
  int buf = 0;

  while (kc <= kt1) {
    cp_async_wait<0>();
    // This thread's chunks of V (visible to it after the wait): any non-finite value?
    bool bad = false;
#pragma unroll
    for (int u = 0; u < kBN * NC / kThreads; ++u) {
      const int x = tid + u * kThreads;
      const uint4 w = *reinterpret_cast<const uint4*>(Vs + (buf * kBN + x / NC) * LD + (x % NC) * 8);
      bad |= nonfinite2<DT>(w.x) | nonfinite2<DT>(w.y) | nonfinite2<DT>(w.z) | nonfinite2<DT>(w.w);
    }
    const bool nonFinite = __syncthreads_or(bad) != 0;  // also: tile kc visible, buffer buf^1 free
    if (kn <= kt1) load_kv(kn, buf ^ 1, nxt);
    cp_async_commit();
    // Segment ids of the tile after kn, loaded now and classified after this tile's work.
    const size_t kp = kn + 1;
    const int32_t pf0 = kp <= kt1 ? seg_at(kp * kBN + lane) : 0, pf1 = kp <= kt1 ? seg_at(kp * kBN + 32 + lane) : 0;

    const size_t j0 = kc * kBN;
    if (wAny && j0 <= wLast) {
      const uint16_t* Kb = Ks + buf * kBN * LD;
      const uint16_t* Vb = Vs + buf * kBN * LD;
      // S = Q·Kᵀ: 16·MT × 64 per warp; each K fragment pair serves the warp's MT m16 tiles.
      float s[MT][8][4];
#pragma unroll
      for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int nb = 0; nb < 8; ++nb)
#pragma unroll
          for (int c = 0; c < 4; ++c) s[m][nb][c] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < DH / 16; ++kk)
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t b[4];
          ldsm_x4(b, Kb + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
          for (int m = 0; m < MT; ++m) {
            mma16816<DT>(s[m][2 * np], qf[m][kk], b[0], b[1]);
            mma16816<DT>(s[m][2 * np + 1], qf[m][kk], b[2], b[3]);
          }
        }
      // Base-2 scores; the mask only where some (row, key) of the warp's tile may be invisible.
      const bool full = wUniform && cur.uniform && cur.useg == wSeg && j0 + kBN - 1 <= wFirst;
      if (full) {
        RK_FA2_COVER(2);
#pragma unroll
        for (int m = 0; m < MT; ++m)
#pragma unroll
          for (int nb = 0; nb < 8; ++nb)
#pragma unroll
            for (int c = 0; c < 4; ++c) s[m][nb][c] *= sl2;
      } else {
        RK_FA2_COVER(3);
        int32_t ks[8][2];  // segments of this lane's key columns nb·8 + 2tq + e
#pragma unroll
        for (int nb = 0; nb < 8; ++nb)
#pragma unroll
          for (int e = 0; e < 2; ++e) ks[nb][e] = __shfl_sync(0xffffffffu, nb < 4 ? cur.s0 : cur.s1, (nb & 3) * 8 + 2 * tq + e);
#pragma unroll
        for (int m = 0; m < MT; ++m)
#pragma unroll
          for (int hh = 0; hh < 2; ++hh) {
            // keys j0 + col with col ≤ dr are at or before the row (dr clamped to [-1, 64])
            const size_t row = i0 + wr0 + 16 * m + gq + 8 * hh;
            const int dr = row < j0 ? -1 : (row - j0 > (size_t)kBN ? kBN : (int)(row - j0));
#pragma unroll
            for (int nb = 0; nb < 8; ++nb)
#pragma unroll
              for (int e = 0; e < 2; ++e) {
                const int col = nb * 8 + 2 * tq + e;
                const bool valid = rs[m][hh] != 0 && ks[nb][e] == rs[m][hh] && col <= dr;
                s[m][nb][2 * hh + e] = valid ? s[m][nb][2 * hh + e] * sl2 : kNinf;
              }
          }
      }
      // Online softmax per row: m' = max(m, max s), P = 2^{s − m'}, α = 2^{m − m'}, l = α·l + Σ P
      // (l kept per lane, summed over the quad at the end), O = α·O.
#pragma unroll
      for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int hh = 0; hh < 2; ++hh) {
          float mx = kNinf;
#pragma unroll
          for (int nb = 0; nb < 8; ++nb) mx = fmaxf(mx, fmaxf(s[m][nb][2 * hh], s[m][nb][2 * hh + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float mn = fmaxf(mrow[m][hh], mx);
          const float mu = mn == kNinf ? 0.0f : mn;  // no visible key yet: every P is 0
          const float alpha = ex2(mrow[m][hh] - mu);
          mrow[m][hh] = mn;
          float sum = 0.0f;
#pragma unroll
          for (int nb = 0; nb < 8; ++nb)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const float pe = ex2(s[m][nb][2 * hh + e] - mu);
              s[m][nb][2 * hh + e] = pe;
              sum += pe;
            }
          lrow[m][hh] = lrow[m][hh] * alpha + sum;
#pragma unroll
          for (int nb = 0; nb < NB; ++nb) o[m][nb][2 * hh] *= alpha, o[m][nb][2 * hh + 1] *= alpha;
        }
      if (!nonFinite) {
        // O += P·V: P's accumulator fragments are the A fragments of the next MMA.
#pragma unroll
        for (int k2 = 0; k2 < kBN / 16; ++k2) {
          uint32_t pa[MT][4], pl[MT][4];
#pragma unroll
          for (int m = 0; m < MT; ++m) {
#pragma unroll
            for (int i = 0; i < 4; ++i) {
              const float* src = s[m][2 * k2 + (i >> 1)] + 2 * (i & 1);
              pa[m][i] = pack2<DT>(src[0], src[1]);
              if constexpr (DT == RK_DT_BF16)  // the rounding error of hi, rounded: P = hi + lo
                pl[m][i] = pack2<DT>(src[0] - widen<DT>((uint16_t)(pa[m][i] & 0xffffu)), src[1] - widen<DT>((uint16_t)(pa[m][i] >> 16)));
            }
          }
#pragma unroll
          for (int np = 0; np < DH / 16; ++np) {
            uint32_t b[4];
            ldsm_x4_trans(b, Vb + (k2 * 16 + (lane & 15)) * LD + np * 16 + (lane >> 4) * 8);
#pragma unroll
            for (int m = 0; m < MT; ++m) {
              mma16816<DT>(o[m][2 * np], pa[m], b[0], b[1]);
              mma16816<DT>(o[m][2 * np + 1], pa[m], b[2], b[3]);
              if constexpr (DT == RK_DT_BF16) {
                mma16816<DT>(o[m][2 * np], pl[m], b[0], b[1]);
                mma16816<DT>(o[m][2 * np + 1], pl[m], b[2], b[3]);
              }
            }
          }
        }
      } else {
        // A non-finite V in the tile: exact f32 weights through the warp's scratch rows, zero
        // weights skipped (a masked key's Inf/NaN never reaches a row).
        RK_FA2_COVER(4);
        float* sc = Scr + warp * 16 * kScrLd;
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          __syncwarp();
#pragma unroll
          for (int nb = 0; nb < 8; ++nb)
#pragma unroll
            for (int c = 0; c < 4; ++c) sc[(gq + 8 * (c >> 1)) * kScrLd + nb * 8 + 2 * tq + (c & 1)] = s[m][nb][c];
          __syncwarp();
#pragma unroll 1
          for (int j = 0; j < kBN; ++j) {
            const float p0 = sc[gq * kScrLd + j], p1 = sc[(gq + 8) * kScrLd + j];
            const uint16_t* vr = Vb + j * LD + 2 * tq;
#pragma unroll
            for (int nb = 0; nb < NB; ++nb)
#pragma unroll
              for (int e = 0; e < 2; ++e) {
                const float v = widen<DT>(vr[nb * 8 + e]);
                if (p0 != 0.0f) o[m][nb][e] += p0 * v;
                if (p1 != 0.0f) o[m][nb][2 + e] += p1 * v;
              }
          }
        }
        __syncwarp();
      }
    } else {
      RK_FA2_COVER(5);  // nothing for this warp in the tile (after its rows, or padding)
    }
    ++computed;
    kc = kn;
    cur = nxt;
    buf ^= 1;
    if (kc <= kt1) {
      kn = kp;
      if (kp <= kt1) {
        nxt = classify(pf0, pf1, segs, ns);
        if (!(nxt.use0 | nxt.use1)) kn = find(kp + 1, nxt);
      }
    }
  }

  // out = O / l (quad sums of the lanes' l); padding rows are zeros.
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      float l = lrow[m][hh];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const int r = wr0 + 16 * m + gq + 8 * hh;
      if ((size_t)r >= nq) continue;
      float2* dst = reinterpret_cast<float2*>(a.out + ((p * L + i0 + r) * H + h) * DH + 2 * tq);
      const bool pad = rs[m][hh] == 0;
#pragma unroll
      for (int nb = 0; nb < NB; ++nb)
        dst[nb * 4] = pad ? make_float2(0.0f, 0.0f) : make_float2(o[m][nb][2 * hh] / l, o[m][nb][2 * hh + 1] / l);
    }
  if (tid == 0 && comp) {
    atomicAdd(comp, computed);
    atomicAdd(skip, (unsigned long long)(kt1 + 1) - computed);
  }
}

}  // namespace fa2
// ---- fa2 end

template <int B>
cudaError_t launch_simt(const rk_packed_attention_args& a, unsigned long long* comp, unsigned long long* skip, cudaStream_t s) {
  const size_t smem = ((size_t)B * a.Dh * 3 + (size_t)B * (a.Dh + 1) + (size_t)B * (B + 1)) * sizeof(float);
  cudaError_t e = cudaFuncSetAttribute(attn_simt_kernel<B>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (e != cudaSuccess) return e;
  dim3 grid((unsigned)((a.L + B - 1) / B), (unsigned)a.H, (unsigned)a.P);
  attn_simt_kernel<B><<<grid, 128, smem, s>>>(a, comp, skip);
  return cudaGetLastError();
}

template <class T, int DH>
cudaError_t launch_wmma(const rk_packed_attention_args& a, unsigned long long* comp, unsigned long long* skip, cudaStream_t s) {
  const size_t smem = wmma_smem_bytes<DH>();
  cudaError_t e = cudaFuncSetAttribute(attn_wmma_kernel<T, DH>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (e != cudaSuccess) return e;
  dim3 grid((unsigned)((a.L + kTQ - 1) / kTQ), (unsigned)a.H, (unsigned)a.P);
  attn_wmma_kernel<T, DH><<<grid, 128, smem, s>>>(a, comp, skip);
  return cudaGetLastError();
}

}  // namespace

// Device-pointer launchers.
cudaError_t rk_launch_attention_mask(const rk_attention_mask_args& a, cudaStream_t s) {
  const size_t n = a.P * a.L * a.L;
  if (!n) return cudaSuccess;
  const int32_t* seg = a.segment_ids;
  if (a.format == RK_MASK_FORMAT_ADDITIVE) {
    float* out = static_cast<float*>(a.mask);
    if (a.L % 4 == 0) mask_f32_kernel<4><<<rkc::grid_for(n / 4, kBlock), kBlock, 0, s>>>(seg, a.P, a.L, out);
    else mask_f32_kernel<1><<<rkc::grid_for(n, kBlock), kBlock, 0, s>>>(seg, a.P, a.L, out);
  } else {
    uint8_t* out = static_cast<uint8_t*>(a.mask);
    if (a.L % 16 == 0) mask_u8_kernel<16><<<rkc::grid_for(n / 16, kBlock), kBlock, 0, s>>>(seg, a.P, a.L, out);
    else mask_u8_kernel<1><<<rkc::grid_for(n, kBlock), kBlock, 0, s>>>(seg, a.P, a.L, out);
  }
  return cudaGetLastError();
}

cudaError_t rk_launch_unpack(const rk_unpack_args& a, cudaStream_t s) {
  const size_t n = a.n * a.max_len * a.D;
  if (!n) return cudaSuccess;
  unpack_kernel<<<rkc::grid_for(n, kBlock), kBlock, 0, s>>>(a);
  return cudaGetLastError();
}

// RK_ATTN_KERNEL (read once): "wmma" = the WMMA kernel, "fa2-64" / "fa2-128" = the FA2 kernel
// with 64 / 128 query rows per block, "simt" = the SIMT kernel; unset or anything else: the default.
static int attn_kernel_from_env() {
  static const int k = [] {
    const char* e = getenv("RK_ATTN_KERNEL");
    if (!e) return (int)RK_ATTN_FA2;
    if (!strcmp(e, "wmma")) return (int)RK_ATTN_WMMA;
    if (!strcmp(e, "simt")) return (int)RK_ATTN_SIMT;
    if (!strcmp(e, "fa2-64")) return (int)RK_ATTN_FA2_M64;
    if (!strcmp(e, "fa2-128")) return (int)RK_ATTN_FA2_M128;
    return (int)RK_ATTN_FA2;
  }();
  return k;
}

template <int DT, int DH, int MT>
cudaError_t launch_fa2(const rk_packed_attention_args& a, unsigned long long* comp, unsigned long long* skip, cudaStream_t s) {
  const size_t smem = fa2::smem_bytes<DH, MT>();
  cudaError_t e = cudaFuncSetAttribute(fa2::attn_fa2_kernel<DT, DH, MT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (e != cudaSuccess) return e;
  const size_t nqt = (a.L + 64 * MT - 1) / (64 * MT);
  if (nqt > 0x7fffffffu) return cudaErrorInvalidConfiguration;
  dim3 grid((unsigned)nqt, (unsigned)a.H, (unsigned)a.P);
  fa2::attn_fa2_kernel<DT, DH, MT><<<grid, fa2::kThreads, smem, s>>>(a, comp, skip);
  return cudaGetLastError();
}

cudaError_t rk_launch_packed_attention(const rk_packed_attention_args& a, cudaStream_t s) {
  return rk_launch_packed_attention_with(a, s, RK_ATTN_DEFAULT);
}

cudaError_t rk_launch_packed_attention_with(const rk_packed_attention_args& a, cudaStream_t s, int kernel) {
  if (a.P * a.L * a.H * a.Dh == 0) return cudaSuccess;
  if (a.Hkv == 0 || a.H % a.Hkv) return cudaErrorInvalidValue;
  if (a.H > 65535 || a.P > 65535) return cudaErrorInvalidConfiguration;
  auto* comp = reinterpret_cast<unsigned long long*>(a.tiles_computed);
  auto* skip = reinterpret_cast<unsigned long long*>(a.tiles_skipped);
  if (!comp || !skip) comp = skip = nullptr;
  if (kernel == RK_ATTN_DEFAULT) kernel = attn_kernel_from_env();
  // Tensor cores (mma.sync / WMMA on f16/bf16) need sm_80+ and 16-byte aligned q, k, v (16-byte
  // tile loads); the FA2 kernel also stores float2. Everything else takes the SIMT kernel.
  static int major = -1;
  if (major < 0) {
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
      major = 0;
  }
  auto aligned = [](const void* x, uintptr_t n) { return (reinterpret_cast<uintptr_t>(x) & (n - 1)) == 0; };
  const bool f16 = a.dtype == RK_DT_F16, bf16 = a.dtype == RK_DT_BF16;
  const bool tc = major >= 8 && (f16 || bf16) && (a.Dh == 64 || a.Dh == 128) && aligned(a.q, 16) && aligned(a.k, 16) &&
                  aligned(a.v, 16) && kernel != RK_ATTN_SIMT;
  if (tc && kernel != RK_ATTN_WMMA && aligned(a.out, 8)) {
    // 128 query rows per block for Dh = 64 (the K/V tile serves two m16 tiles per warp); 64 rows for
    // Dh = 128 (O, S and Q of 32 rows would not fit in the registers).
    const bool m128 = a.Dh == 64 && kernel != RK_ATTN_FA2_M64;
    if (f16 && a.Dh == 64) return m128 ? launch_fa2<RK_DT_F16, 64, 2>(a, comp, skip, s) : launch_fa2<RK_DT_F16, 64, 1>(a, comp, skip, s);
    if (bf16 && a.Dh == 64) return m128 ? launch_fa2<RK_DT_BF16, 64, 2>(a, comp, skip, s) : launch_fa2<RK_DT_BF16, 64, 1>(a, comp, skip, s);
    if (f16) return launch_fa2<RK_DT_F16, 128, 1>(a, comp, skip, s);
    return launch_fa2<RK_DT_BF16, 128, 1>(a, comp, skip, s);
  }
  if (tc && f16 && a.Dh == 64) return launch_wmma<__half, 64>(a, comp, skip, s);
  if (tc && f16 && a.Dh == 128) return launch_wmma<__half, 128>(a, comp, skip, s);
  if (tc && bf16 && a.Dh == 64) return launch_wmma<__nv_bfloat16, 64>(a, comp, skip, s);
  if (tc && bf16 && a.Dh == 128) return launch_wmma<__nv_bfloat16, 128>(a, comp, skip, s);
  if (a.Dh <= 128) return launch_simt<32>(a, comp, skip, s);
  if (a.Dh <= 384) return launch_simt<16>(a, comp, skip, s);
  if (a.Dh <= 1024) return launch_simt<8>(a, comp, skip, s);
  if (a.Dh <= 2048) return launch_simt<4>(a, comp, skip, s);
  return cudaErrorInvalidValue;
}

// Device-pointer entry points of the C ABI (queued on the stream, no wait).
RKC_DEV_ENTRY(attention_mask, rk_attention_mask_args)
RKC_DEV_ENTRY(unpack, rk_unpack_args)
// tiles_computed / tiles_skipped: device counters (added to; zero them first) or NULL.
extern "C" int rk_cuda_packed_attention_dev(const rk_packed_attention_args* a, void* stream, char* err, size_t errlen) {
  if (a->Dh > 2048) {
    if (err && errlen) snprintf(err, errlen, "packedAttention: head size Dh = %zu > 2048 is not supported by the CUDA backend", a->Dh);
    return 1;
  }
  if (a->H > 65535 || a->P > 65535) {
    if (err && errlen) snprintf(err, errlen, "packedAttention: H and P must be at most 65535 on the CUDA backend");
    return 1;
  }
  RKC_TRY(rk_launch_packed_attention(*a, rkc::stream_of(stream)));
  return 0;
}

// Host-pointer entry points of the C ABI: stage, run the device entry point, copy back.
extern "C" int rk_cuda_attention_mask(const rk_attention_mask_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_attention_mask_args d = *h;
  const size_t PL = h->P * h->L;
  RKC_TRY(st.in(h->segment_ids, PL, &d.segment_ids));
  const size_t bytes = PL * h->L * (h->format == RK_MASK_FORMAT_ADDITIVE ? 4 : 1);
  uint8_t* dm = nullptr;
  RKC_TRY(st.out(static_cast<uint8_t*>(h->mask), bytes, &dm));
  d.mask = dm;
  RKC_RUN_DEV(attention_mask, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_unpack(const rk_unpack_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_unpack_args d = *h;
  RKC_TRY(st.in(h->packed, h->P * h->L * h->D, &d.packed));
  RKC_TRY(st.in(h->pack_of, h->n, &d.pack_of));
  RKC_TRY(st.in(h->offset_of, h->n, &d.offset_of));
  RKC_TRY(st.in(h->lengths, h->n, &d.lengths));
  RKC_TRY(st.out(h->rows, h->n * h->max_len * h->D, &d.rows));
  RKC_RUN_DEV(unpack, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_packed_attention(const rk_packed_attention_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_packed_attention_args d = *h;
  const size_t es = h->dtype == RK_DT_F32 ? 4 : 2;
  const size_t nq = h->P * h->L * h->H * h->Dh, nk = h->P * h->L * h->Hkv * h->Dh;
  RKC_TRY(st.in_bytes(h->q, nq * es, &d.q));
  RKC_TRY(st.in_bytes(h->k, nk * es, &d.k));
  RKC_TRY(st.in_bytes(h->v, nk * es, &d.v));
  RKC_TRY(st.in(h->segment_ids, h->P * h->L, &d.segment_ids));
  RKC_TRY(st.out(h->out, nq, &d.out));
  uint64_t counts[2] = {0, 0};
  uint64_t* dc = nullptr;
  RKC_TRY(st.out(counts, 2, &dc));
  RKC_TRY(cudaMemsetAsync(dc, 0, sizeof counts, st.stream()));
  d.tiles_computed = dc;
  d.tiles_skipped = dc + 1;
  RKC_RUN_DEV(packed_attention, d);
  RKC_TRY(st.finish());
  if (h->tiles_computed) *h->tiles_computed = counts[0];
  if (h->tiles_skipped) *h->tiles_skipped = counts[1];
  return 0;
}
