// CUDA kernels of the sampling family (SPEC §7).
//
// speculativeVerify: one block per row (grid-stride over rows). Thread 0 runs the accept loop
//   (K reads); then each thread sums the weights of one contiguous chunk of the vocabulary in
//   double, thread 0 turns the chunk sums into exclusive prefixes (and the total), every thread scans its chunk
//   for the first t with u·Z < C(t), and the smallest such t wins (shared atomicMin).
// geometricMixture: one 1024-thread block per row; for V ≤ 32768 the row's mixture logits stay in
//   registers (32 per thread), so the inputs are read once; block max, block sum of exp(h − max)
//   in double, then h − lse is written. Longer rows re-read the inputs (L2).
// specDecStop, rejectionSample: one thread per row / group running core/sampling.hpp.
#include "../src/core/sampling.hpp"
#include "common.cuh"
#include "sampling.cuh"

namespace {

constexpr unsigned kVerifyBlock = 256;
constexpr unsigned kMixBlock = 1024;
constexpr int kMixItems = 32;

__device__ __forceinline__ double weight_at(const float* P, const float* Q, size_t t) {
  return Q ? rk::smp::residual_w(P[t], Q[t]) : (double)P[t];
}

__global__ void speculative_verify_kernel(rk_speculative_verify_args a) {
  __shared__ double cs[kVerifyBlock];
  __shared__ int s_n, s_status, s_tok;
  const unsigned tid = threadIdx.x, nt = blockDim.x;
  const size_t K = a.K, V = a.V;
  const size_t chunk = (V + nt - 1) / nt;
  for (size_t b = blockIdx.x; b < a.B; b += gridDim.x) {
    const float* q = a.draft_probs + b * K * V;
    const float* p = a.target_probs + b * (K + 1) * V;
    const float* u = a.uniforms + b * (K + 1);
    if (tid == 0) {
      int32_t st = RK_SAMPLING_OK;
      s_n = (int)rk::smp::spec_accept_row(a.draft_tokens + b * K, q, p, u, K, V, &st);
      s_status = st;
      s_tok = 0x7fffffff;
    }
    __syncthreads();
    const size_t n = (size_t)s_n;
    int status = s_status;
    const float* P = p + n * V;
    const float* Q = n < K ? q + n * V : nullptr;
    const size_t t0 = (size_t)tid * chunk, t1 = t0 + chunk < V ? t0 + chunk : V;
    if (status == RK_SAMPLING_OK) {
      for (int pass = 0; pass < 2; ++pass) {
        double s = 0.0;
        int bad = 0;
        for (size_t t = t0; t < t1; ++t) {
          s += weight_at(P, Q, t);
          bad |= (int)!rk::smp::prob_ok(P[t]) | (Q ? (int)!rk::smp::prob_ok(Q[t]) : 0);
        }
        cs[tid] = s;
        bad = __syncthreads_or(bad);
        if (tid == 0) {  // exclusive prefixes of the chunk sums; the total goes in cs[0] for a moment
          double c = 0.0;
          for (unsigned i = 0; i < nt; ++i) { double x = cs[i]; cs[i] = c; c += x; }
          cs[0] = c;  // total, read back below (thread 0's prefix is 0)
        }
        __syncthreads();
        double total = cs[0];
        __syncthreads();
        if (tid == 0) cs[0] = 0.0;
        __syncthreads();
        if (bad) { status = RK_SAMPLING_BAD_PROB; break; }
        if (Q && !(total > 0.0)) { Q = nullptr; continue; }  // residual of zero mass: draw from p_n
        if (!(total > 0.0)) { status = RK_SAMPLING_ZERO_MASS; break; }
        const double target = (double)u[K] * total;
        double c = cs[tid];
        for (size_t t = t0; t < t1; ++t) {  // (w > 0: a chunk that starts past u·Z never offers a zero-weight token)
          double w = weight_at(P, Q, t);
          c += w;
          if (w > 0.0 && target < c) { atomicMin(&s_tok, (int)t); break; }
        }
        break;
      }
    }
    __syncthreads();
    if (tid == 0) {
      int tok = -1;
      if (status == RK_SAMPLING_OK) {
        tok = s_tok != 0x7fffffff ? s_tok : -1;
        if (tok < 0) {  // rounding left u·Z at or above the last CDF value: last token of positive weight
          for (size_t t = V; t-- > 0;)
            if (weight_at(P, Q, t) > 0.0) { tok = (int)t; break; }
        }
      }
      a.accepted[b] = (int32_t)n;
      a.next_token[b] = tok;
      a.status[b] = status;
    }
    __syncthreads();
  }
}

__global__ void spec_dec_stop_kernel(rk_spec_dec_stop_args a) {
  for (size_t b = blockIdx.x * (size_t)blockDim.x + threadIdx.x; b < a.B; b += (size_t)gridDim.x * blockDim.x)
    a.length[b] = rk::smp::spec_dec_stop_row(a.accept_probs + b * a.K, a.K, a.threshold, a.min_length, a.max_length);
}

__global__ void rejection_sample_kernel(rk_rejection_sample_args a, uint8_t* taken) {
  const size_t K = a.K, m = a.num_samples;
  for (size_t g = blockIdx.x * (size_t)blockDim.x + threadIdx.x; g < a.G; g += (size_t)gridDim.x * blockDim.x)
    a.status[g] = rk::smp::rso_group(a.rewards + g * K, a.uniforms + g * K * K, K, m, a.beta, a.selected + g * m, taken + g * K);
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = rk::maxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
// Block-wide reductions (blockDim a multiple of 32); every thread gets the result.
__device__ float block_max(float v, float* sh) {
  v = warp_max(v);
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = sh[0];
  for (unsigned w = 1; w < blockDim.x / 32; ++w) r = rk::maxf(r, sh[w]);
  __syncthreads();
  return r;
}
__device__ double block_sum(double v, double* sh) {
  v = warp_sum(v);
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
  __syncthreads();
  double r = 0.0;
  for (unsigned w = 0; w < blockDim.x / 32; ++w) r += sh[w];
  __syncthreads();
  return r;
}

template <int DZ, int DR>
__device__ __forceinline__ float mix_at(const rk_geometric_mixture_args& a, size_t i) {
  using TZ = typename rk::smp::Ld<DZ>::T;
  using TR = typename rk::smp::Ld<DR>::T;
  return rk::smp::mixture_logit(rk::smp::Ld<DZ>::get(static_cast<const TZ*>(a.logits)[i]),
                                rk::smp::Ld<DR>::get(static_cast<const TR*>(a.ref_logits)[i]), a.beta);
}

template <int DZ, int DR, bool kCached>
__global__ void __launch_bounds__(kMixBlock) geometric_mixture_kernel(rk_geometric_mixture_args a) {
  __shared__ float shf[32];
  __shared__ double shd[32];
  const size_t V = a.V;
  const unsigned tid = threadIdx.x, nt = blockDim.x;
  for (size_t row = blockIdx.x; row < a.N; row += gridDim.x) {
    const size_t base = row * V;
    float h[kCached ? kMixItems : 1];
    float m = -rk::inf_f();
    if (kCached) {
#pragma unroll
      for (int k = 0; k < kMixItems; ++k) {
        size_t j = (size_t)k * nt + tid;
        h[k] = j < V ? mix_at<DZ, DR>(a, base + j) : -rk::inf_f();
        m = rk::maxf(m, h[k]);
      }
    } else {
      for (size_t j = tid; j < V; j += nt) m = rk::maxf(m, mix_at<DZ, DR>(a, base + j));
    }
    m = block_max(m, shf);
    double s = 0.0;
    if (kCached) {
#pragma unroll
      for (int k = 0; k < kMixItems; ++k)
        if ((size_t)k * nt + tid < V) s += (double)rk::expf_(h[k] - m);
    } else {
      for (size_t j = tid; j < V; j += nt) s += (double)rk::expf_(mix_at<DZ, DR>(a, base + j) - m);
    }
    s = block_sum(s, shd);
    const float lse = (float)((double)m + log(s));
    float* o = a.logp + base;
    if (kCached) {
#pragma unroll
      for (int k = 0; k < kMixItems; ++k) {
        size_t j = (size_t)k * nt + tid;
        if (j < V) o[j] = h[k] - lse;
      }
    } else {
      for (size_t j = tid; j < V; j += nt) o[j] = mix_at<DZ, DR>(a, base + j) - lse;
    }
  }
}

unsigned rows_grid(size_t rows) {
  size_t g = rows < 65535u * 8u ? rows : 65535u * 8u;
  return g ? (unsigned)g : 1u;
}

template <int DZ, int DR>
void launch_mix(const rk_geometric_mixture_args& a, cudaStream_t s) {
  unsigned g = rows_grid(a.N);
  if (a.V <= (size_t)kMixBlock * kMixItems) geometric_mixture_kernel<DZ, DR, true><<<g, kMixBlock, 0, s>>>(a);
  else geometric_mixture_kernel<DZ, DR, false><<<g, kMixBlock, 0, s>>>(a);
}
template <int DZ>
void launch_mix_ref(const rk_geometric_mixture_args& a, cudaStream_t s) {
  switch (a.ref_dtype) {
    case RK_DT_BF16: launch_mix<DZ, RK_DT_BF16>(a, s); break;
    case RK_DT_F16: launch_mix<DZ, RK_DT_F16>(a, s); break;
    default: launch_mix<DZ, RK_DT_F32>(a, s); break;
  }
}

size_t logits_bytes(int dtype) { return dtype == RK_DT_F32 ? 4 : 2; }

}  // namespace

cudaError_t rk_launch_speculative_verify(const rk_speculative_verify_args& a, cudaStream_t s) {
  if (!a.B) return cudaSuccess;
  speculative_verify_kernel<<<rows_grid(a.B), kVerifyBlock, 0, s>>>(a);
  return cudaGetLastError();
}

cudaError_t rk_launch_spec_dec_stop(const rk_spec_dec_stop_args& a, cudaStream_t s) {
  if (!a.B) return cudaSuccess;
  spec_dec_stop_kernel<<<rkc::grid_for(a.B, 128), 128, 0, s>>>(a);
  return cudaGetLastError();
}

cudaError_t rk_launch_geometric_mixture(const rk_geometric_mixture_args& a, cudaStream_t s) {
  if (!a.N || !a.V) return cudaSuccess;
  switch (a.logits_dtype) {
    case RK_DT_BF16: launch_mix_ref<RK_DT_BF16>(a, s); break;
    case RK_DT_F16: launch_mix_ref<RK_DT_F16>(a, s); break;
    default: launch_mix_ref<RK_DT_F32>(a, s); break;
  }
  return cudaGetLastError();
}

cudaError_t rk_launch_rejection_sample(const rk_rejection_sample_args& a, uint8_t* taken, cudaStream_t s) {
  if (!a.G) return cudaSuccess;
  rejection_sample_kernel<<<rkc::grid_for(a.G, 128), 128, 0, s>>>(a, taken);
  return cudaGetLastError();
}

// Device-pointer entry points of the C ABI (queued on the stream, no wait).
RKC_DEV_ENTRY(speculative_verify, rk_speculative_verify_args)
RKC_DEV_ENTRY(spec_dec_stop, rk_spec_dec_stop_args)
RKC_DEV_ENTRY(geometric_mixture, rk_geometric_mixture_args)

extern "C" int rk_cuda_rejection_sample_dev(const rk_rejection_sample_args* a, void* stream, char* err, size_t errlen) {
  cudaStream_t s = rkc::stream_of(stream);
  RKC_TRY(rkc::with_scratch(a->G * a->K, s, [&](void* taken) { return rk_launch_rejection_sample(*a, static_cast<uint8_t*>(taken), s); }));
  return 0;
}

// Host-pointer entry points of the C ABI: stage, run the device entry point, copy back.
extern "C" int rk_cuda_speculative_verify(const rk_speculative_verify_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_speculative_verify_args d = *h;
  const size_t B = h->B, K = h->K, V = h->V;
  RKC_TRY(st.in(h->draft_tokens, B * K, &d.draft_tokens));
  RKC_TRY(st.in(h->draft_probs, B * K * V, &d.draft_probs));
  RKC_TRY(st.in(h->target_probs, B * (K + 1) * V, &d.target_probs));
  RKC_TRY(st.in(h->uniforms, B * (K + 1), &d.uniforms));
  RKC_TRY(st.out(h->accepted, B, &d.accepted));
  RKC_TRY(st.out(h->next_token, B, &d.next_token));
  RKC_TRY(st.out(h->status, B, &d.status));
  RKC_RUN_DEV(speculative_verify, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_spec_dec_stop(const rk_spec_dec_stop_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_spec_dec_stop_args d = *h;
  RKC_TRY(st.in(h->accept_probs, h->B * h->K, &d.accept_probs));
  RKC_TRY(st.out(h->length, h->B, &d.length));
  RKC_RUN_DEV(spec_dec_stop, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_geometric_mixture(const rk_geometric_mixture_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_geometric_mixture_args d = *h;
  size_t n = h->N * h->V;
  RKC_TRY(st.in_bytes(h->logits, n * logits_bytes(h->logits_dtype), &d.logits));
  RKC_TRY(st.in_bytes(h->ref_logits, n * logits_bytes(h->ref_dtype), &d.ref_logits));
  RKC_TRY(st.out(h->logp, n, &d.logp));
  RKC_RUN_DEV(geometric_mixture, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_rejection_sample(const rk_rejection_sample_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_rejection_sample_args d = *h;
  const size_t G = h->G, K = h->K;
  RKC_TRY(st.in(h->rewards, G * K, &d.rewards));
  RKC_TRY(st.in(h->uniforms, G * K * K, &d.uniforms));
  RKC_TRY(st.out(h->selected, G * h->num_samples, &d.selected));
  RKC_TRY(st.out(h->status, G, &d.status));
  RKC_RUN_DEV(rejection_sample, d);
  RKC_TRY(st.finish());
  return 0;
}
