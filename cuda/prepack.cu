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

#include "../src/core/prepack.hpp"
#include "common.cuh"
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

__device__ __forceinline__ bool in_set(const int32_t* set, int n, int32_t x) {
  for (int t = 0; t < n; ++t)
    if (set[t] == x) return true;
  return false;
}

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

cudaError_t rk_launch_packed_attention(const rk_packed_attention_args& a, cudaStream_t s) {
  if (a.P * a.L * a.H * a.Dh == 0) return cudaSuccess;
  if (a.Hkv == 0 || a.H % a.Hkv) return cudaErrorInvalidValue;
  if (a.H > 65535 || a.P > 65535) return cudaErrorInvalidConfiguration;
  auto* comp = reinterpret_cast<unsigned long long*>(a.tiles_computed);
  auto* skip = reinterpret_cast<unsigned long long*>(a.tiles_skipped);
  if (!comp || !skip) comp = skip = nullptr;
  // Tensor cores (WMMA on f16/bf16) need sm_80+; older devices take the SIMT kernel.
  static int major = -1;
  if (major < 0) {
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
      major = 0;
  }
  const bool tc = major >= 8;
  if (tc && a.dtype == RK_DT_F16 && a.Dh == 64) return launch_wmma<__half, 64>(a, comp, skip, s);
  if (tc && a.dtype == RK_DT_F16 && a.Dh == 128) return launch_wmma<__half, 128>(a, comp, skip, s);
  if (tc && a.dtype == RK_DT_BF16 && a.Dh == 64) return launch_wmma<__nv_bfloat16, 64>(a, comp, skip, s);
  if (tc && a.dtype == RK_DT_BF16 && a.Dh == 128) return launch_wmma<__nv_bfloat16, 128>(a, comp, skip, s);
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
