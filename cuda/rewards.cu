// CUDA kernels of the reward family (SPEC §2). Elementwise grid-stride loops over B·T; the
// score of tokenRewards / rtoRewards is added by one thread per row after a backward scan for the
// row's last counted token (a second tiny kernel, so the elementwise pass stays coalesced).
#include "../src/core/rewards.hpp"
#include "rewards.cuh"
#include "common.cuh"

namespace {

template <int E>
__global__ void kl_penalty_kernel(rk_kl_penalty_args a) {
  size_t n = a.B * a.T;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float k = rk::kl_estimate<E>(a.logp[i] - a.ref_logp[i]);
    if (a.has_clamp) k = rk::clampf(k, -a.clamp, a.clamp);
    a.kl[i] = rkc::mask_at(a.mask, a.mask_kind, i) ? k : 0.0f;
  }
}

template <int E>
__global__ void token_rewards_kernel(rk_token_rewards_args a) {
  size_t n = a.B * a.T;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    a.rewards[i] = rkc::mask_at(a.mask, a.mask_kind, i) ? rk::token_reward<E>(a.logp[i], a.ref_logp[i], a.kl_coef) : 0.0f;
}

// One warp per row: finds the last counted position (ballot over 32-wide windows from the end).
__device__ long last_counted_warp(const void* mask, int kind, size_t base, size_t T) {
  unsigned lane = threadIdx.x & 31;
  for (long start = ((long)T - 1) / 32 * 32; start >= 0; start -= 32) {
    long t = start + lane;
    bool c = t < (long)T && rkc::mask_at(mask, kind, base + (size_t)t);
    unsigned bal = __ballot_sync(0xffffffffu, c);
    if (bal) return start + 31 - __clz(bal);
  }
  return -1;
}

__global__ void add_scores_kernel(float* rewards, const void* mask, int kind, const float* scores, size_t B, size_t T,
                                  float scale, int has_clip, float clip) {
  size_t row = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
  if (row >= B) return;
  long last = last_counted_warp(mask, kind, row * T, T);
  if ((threadIdx.x & 31) == 0 && last >= 0) {
    float s = scores[row];
    if (has_clip) s = rk::clampf(s, -clip, clip);
    rewards[row * T + (size_t)last] += scale * s;
  }
}

__global__ void rto_rewards_kernel(rk_rto_rewards_args a) {
  size_t n = a.B * a.T;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    a.rewards[i] = rkc::mask_at(a.mask, a.mask_kind, i)
                       ? rk::rto_reward(a.dpo_logp[i], a.ref_logp[i], a.logp[i], a.beta1, a.beta2, a.has_dpo_clip ? a.dpo_clip : rk::inf_f())
                       : 0.0f;
}

__global__ void implicit_rewards_kernel(rk_implicit_rewards_args a) {
  size_t n = a.B * a.T;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    a.rewards[i] = rkc::mask_at(a.mask, a.mask_kind, i) ? a.beta * (a.logp[i] - a.ref_logp[i]) : 0.0f;
}

constexpr unsigned kBlock = 256;

void add_scores(float* rewards, const void* mask, int kind, const float* scores, size_t B, size_t T, float scale,
                int has_clip, float clip, cudaStream_t s) {
  if (!B || !T) return;
  size_t threads = B * 32;
  add_scores_kernel<<<rkc::grid_for(threads, kBlock), kBlock, 0, s>>>(rewards, mask, kind, scores, B, T, scale, has_clip, clip);
}

}  // namespace

// Device-pointer launchers (GPU bench, fused callers).
cudaError_t rk_launch_kl_penalty(const rk_kl_penalty_args& a, cudaStream_t s) {
  size_t n = a.B * a.T;
  if (!n) return cudaSuccess;
  unsigned g = rkc::grid_for(n, kBlock);
  switch (a.estimator) {
    case RK_KL_K2: kl_penalty_kernel<RK_KL_K2><<<g, kBlock, 0, s>>>(a); break;
    case RK_KL_K3: kl_penalty_kernel<RK_KL_K3><<<g, kBlock, 0, s>>>(a); break;
    case RK_KL_ABS: kl_penalty_kernel<RK_KL_ABS><<<g, kBlock, 0, s>>>(a); break;
    default: kl_penalty_kernel<RK_KL_K1><<<g, kBlock, 0, s>>>(a); break;
  }
  return cudaGetLastError();
}

cudaError_t rk_launch_token_rewards(const rk_token_rewards_args& a, cudaStream_t s) {
  size_t n = a.B * a.T;
  if (!n) return cudaSuccess;
  unsigned g = rkc::grid_for(n, kBlock);
  switch (a.estimator) {
    case RK_KL_K2: token_rewards_kernel<RK_KL_K2><<<g, kBlock, 0, s>>>(a); break;
    case RK_KL_K3: token_rewards_kernel<RK_KL_K3><<<g, kBlock, 0, s>>>(a); break;
    case RK_KL_ABS: token_rewards_kernel<RK_KL_ABS><<<g, kBlock, 0, s>>>(a); break;
    default: token_rewards_kernel<RK_KL_K1><<<g, kBlock, 0, s>>>(a); break;
  }
  add_scores(a.rewards, a.mask, a.mask_kind, a.scores, a.B, a.T, 1.0f, a.has_score_clip, a.score_clip, s);
  return cudaGetLastError();
}

cudaError_t rk_launch_rto_rewards(const rk_rto_rewards_args& a, cudaStream_t s) {
  size_t n = a.B * a.T;
  if (!n) return cudaSuccess;
  rto_rewards_kernel<<<rkc::grid_for(n, kBlock), kBlock, 0, s>>>(a);
  if (a.scores) add_scores(a.rewards, a.mask, a.mask_kind, a.scores, a.B, a.T, a.beta3, 0, 0.0f, s);
  return cudaGetLastError();
}

cudaError_t rk_launch_implicit_rewards(const rk_implicit_rewards_args& a, cudaStream_t s) {
  size_t n = a.B * a.T;
  if (!n) return cudaSuccess;
  implicit_rewards_kernel<<<rkc::grid_for(n, kBlock), kBlock, 0, s>>>(a);
  return cudaGetLastError();
}

// Device-pointer entry points of the C ABI (queued on the stream, no wait).
RKC_DEV_ENTRY(kl_penalty, rk_kl_penalty_args)
RKC_DEV_ENTRY(token_rewards, rk_token_rewards_args)
RKC_DEV_ENTRY(rto_rewards, rk_rto_rewards_args)
RKC_DEV_ENTRY(implicit_rewards, rk_implicit_rewards_args)

// Host-pointer entry points of the C ABI: stage, run the device entry point, copy back.
extern "C" int rk_cuda_kl_penalty(const rk_kl_penalty_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_kl_penalty_args d = *h;
  size_t n = h->B * h->T;
  RKC_TRY(st.in(h->logp, n, &d.logp));
  RKC_TRY(st.in(h->ref_logp, n, &d.ref_logp));
  RKC_TRY(st.in_bytes(h->mask, n * rkc::mask_bytes(h->mask_kind), &d.mask));
  RKC_TRY(st.out(h->kl, n, &d.kl));
  RKC_RUN_DEV(kl_penalty, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_token_rewards(const rk_token_rewards_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_token_rewards_args d = *h;
  size_t n = h->B * h->T;
  RKC_TRY(st.in(h->logp, n, &d.logp));
  RKC_TRY(st.in(h->ref_logp, n, &d.ref_logp));
  RKC_TRY(st.in_bytes(h->mask, n * rkc::mask_bytes(h->mask_kind), &d.mask));
  RKC_TRY(st.in(h->scores, h->B, &d.scores));
  RKC_TRY(st.out(h->rewards, n, &d.rewards));
  RKC_RUN_DEV(token_rewards, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_rto_rewards(const rk_rto_rewards_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_rto_rewards_args d = *h;
  size_t n = h->B * h->T;
  RKC_TRY(st.in(h->dpo_logp, n, &d.dpo_logp));
  RKC_TRY(st.in(h->ref_logp, n, &d.ref_logp));
  RKC_TRY(st.in(h->logp, n, &d.logp));
  RKC_TRY(st.in_bytes(h->mask, n * rkc::mask_bytes(h->mask_kind), &d.mask));
  RKC_TRY(st.in(h->scores, h->B, &d.scores));
  RKC_TRY(st.out(h->rewards, n, &d.rewards));
  RKC_RUN_DEV(rto_rewards, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_implicit_rewards(const rk_implicit_rewards_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_implicit_rewards_args d = *h;
  size_t n = h->B * h->T;
  RKC_TRY(st.in(h->logp, n, &d.logp));
  RKC_TRY(st.in(h->ref_logp, n, &d.ref_logp));
  RKC_TRY(st.in_bytes(h->mask, n * rkc::mask_bytes(h->mask_kind), &d.mask));
  RKC_TRY(st.out(h->rewards, n, &d.rewards));
  RKC_RUN_DEV(implicit_rewards, d);
  RKC_TRY(st.finish());
  return 0;
}
