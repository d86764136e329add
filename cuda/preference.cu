// CUDA kernels of the preference family (SPEC §4). preferenceLoss: one grid-stride pass over the
// examples (math in src/core/preference.hpp), then one block reduces losses and margins into the
// mean loss and accuracy (double accumulation, deterministic). listwiseLoss: one block per row,
// the row's three scratch vectors in shared memory, the same row routine as the CPU.
#include "../src/core/preference.hpp"
#include "common.cuh"
#include "preference.cuh"

namespace {

constexpr unsigned kBlock = 256;
constexpr unsigned kReduceBlock = 1024;
constexpr size_t kMaxListK = 4096;

template <int TY, bool LN>
__global__ void pref_kernel(rk_preference_loss_args a) {
  const float invB = 1.0f / (float)a.B;
  constexpr bool ref_free = TY == RK_PREF_ORPO || TY == RK_PREF_SIMPO;
  constexpr bool has_nll = TY == RK_PREF_RPO || TY == RK_PREF_XPO || TY == RK_PREF_ORPO;
  const float* nll = TY == RK_PREF_XPO ? a.policy_explore : a.chosen_nll;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < a.B; i += (size_t)gridDim.x * blockDim.x) {
    rk::PrefEx x;
    x.pc = a.policy_chosen[i];
    x.pr = a.policy_rejected[i];
    x.rc = ref_free ? 0.0f : a.ref_chosen[i];
    x.rr = ref_free ? 0.0f : a.ref_rejected[i];
    x.ilc = LN ? 1.0f / a.chosen_length[i] : 1.0f;
    x.ilr = LN ? 1.0f / a.rejected_length[i] : 1.0f;
    x.nll = has_nll ? nll[i] : 0.0f;
    x.prevc = TY == RK_PREF_INPO ? a.prev_chosen[i] : 0.0f;
    x.prevr = TY == RK_PREF_INPO ? a.prev_rejected[i] : 0.0f;
    x.prob = TY == RK_PREF_DNO ? a.preference_prob[i] : 0.0f;
    rk::PrefRes r = rk::pref_example<TY>(x, a.p);
    a.losses[i] = r.loss;
    a.grad_policy_chosen[i] = r.gc * invB;
    a.grad_policy_rejected[i] = r.gr * invB;
    a.chosen_rewards[i] = r.cr;
    a.rejected_rewards[i] = r.rj;
    a.margins[i] = r.cr - r.rj;
    if (has_nll) a.grad_extra[i] = r.gx * invB;
  }
}

// One block: scalars[0] = mean(losses), scalars[1] = accuracy from margins (NaN if a margin is
// NaN); margins NULL → only the mean.
__global__ void reduce_kernel(const float* losses, const float* margins, size_t n, double* scalars) {
  __shared__ double s_loss[kReduceBlock];
  __shared__ unsigned long long s_cnt[kReduceBlock], s_nan[kReduceBlock];
  double l = 0;
  unsigned long long c = 0, nn = 0;
  for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
    l += (double)losses[i];
    if (margins) {
      float m = margins[i];
      c += m > 0.0f;
      nn += m != m;
    }
  }
  s_loss[threadIdx.x] = l;
  s_cnt[threadIdx.x] = c;
  s_nan[threadIdx.x] = nn;
  __syncthreads();
  for (unsigned w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) {
      s_loss[threadIdx.x] += s_loss[threadIdx.x + w];
      s_cnt[threadIdx.x] += s_cnt[threadIdx.x + w];
      s_nan[threadIdx.x] += s_nan[threadIdx.x + w];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    scalars[0] = n ? s_loss[0] / (double)n : 0.0;
    if (margins) scalars[1] = n ? (s_nan[0] ? __longlong_as_double(0x7ff8000000000000ULL) : (double)s_cnt[0] / (double)n) : 0.0;
  }
}

__global__ void apo_kernel(rk_apo_reference_args a) {
  const float w = 1.0f + a.alpha;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < a.n; i += (size_t)gridDim.x * blockDim.x)
    a.reference[i] = w * a.current[i] - a.alpha * a.previous[i];
}

struct BlockSync {
  __host__ __device__ void operator()() const {
#if defined(__CUDA_ARCH__)
    __syncthreads();
#endif
  }
};

constexpr unsigned kListBlock = 64;

__global__ void listwise_kernel(rk_listwise_loss_args a) {
  extern __shared__ float smem[];
  __shared__ float red[kListBlock];
  const size_t K = a.K;
  float* s = smem;
  float* sa = smem + K;
  float* sc = smem + 2 * K;
  const float gscale = 1.0f / (float)a.B;
  for (size_t b = blockIdx.x; b < a.B; b += gridDim.x) {
    size_t o = b * K;
    float part = rk::listwise_row(a.type, a.policy + o, a.ref ? a.ref + o : nullptr, a.labels ? a.labels + o : nullptr,
                                  a.lengths ? a.lengths + o : nullptr, K, a.beta, a.sft_weight, gscale, a.grad_policy + o,
                                  s, sa, sc, threadIdx.x, blockDim.x, BlockSync{});
    red[threadIdx.x] = part;
    __syncthreads();
    for (unsigned w = blockDim.x / 2; w > 0; w >>= 1) {
      if (threadIdx.x < w) red[threadIdx.x] += red[threadIdx.x + w];
      __syncthreads();
    }
    if (threadIdx.x == 0) a.losses[b] = red[0];
    __syncthreads();
  }
}

template <bool LN, int TY>
void launch_pref(const rk_preference_loss_args& a, cudaStream_t s) {
  pref_kernel<TY, LN><<<rkc::grid_for(a.B, kBlock), kBlock, 0, s>>>(a);
}

}  // namespace

cudaError_t rk_launch_preference_loss(const rk_preference_loss_args& a, cudaStream_t s) {
  if (a.B) {
    if (a.type == RK_PREF_IPO && a.length_normalize) launch_pref<true, RK_PREF_IPO>(a, s);
    else rk::with_pref_type(a.type, [&](auto ty) { launch_pref<false, decltype(ty)::value>(a, s); });
  }
  reduce_kernel<<<1, kReduceBlock, 0, s>>>(a.losses, a.margins, a.B, a.scalars);
  return cudaGetLastError();
}

cudaError_t rk_launch_apo_reference(const rk_apo_reference_args& a, cudaStream_t s) {
  if (!a.n) return cudaSuccess;
  apo_kernel<<<rkc::grid_for(a.n, kBlock), kBlock, 0, s>>>(a);
  return cudaGetLastError();
}

cudaError_t rk_launch_listwise_loss(const rk_listwise_loss_args& a, cudaStream_t s) {
  if (a.K > kMaxListK) return cudaErrorInvalidValue;
  if (a.B) {
    size_t g = a.B < 65535u * 8u ? a.B : 65535u * 8u;
    size_t smem = 3 * (a.K ? a.K : 1) * sizeof(float);
    listwise_kernel<<<(unsigned)g, kListBlock, smem, s>>>(a);
  }
  reduce_kernel<<<1, kReduceBlock, 0, s>>>(a.losses, nullptr, a.B, a.scalars);
  return cudaGetLastError();
}

extern "C" int rk_cuda_preference_loss(const rk_preference_loss_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_preference_loss_args d = *h;
  size_t B = h->B;
  RKC_TRY(st.in(h->policy_chosen, B, &d.policy_chosen));
  RKC_TRY(st.in(h->policy_rejected, B, &d.policy_rejected));
  RKC_TRY(st.in(h->ref_chosen, B, &d.ref_chosen));
  RKC_TRY(st.in(h->ref_rejected, B, &d.ref_rejected));
  RKC_TRY(st.in(h->chosen_length, B, &d.chosen_length));
  RKC_TRY(st.in(h->rejected_length, B, &d.rejected_length));
  RKC_TRY(st.in(h->chosen_nll, B, &d.chosen_nll));
  RKC_TRY(st.in(h->policy_explore, B, &d.policy_explore));
  RKC_TRY(st.in(h->prev_chosen, B, &d.prev_chosen));
  RKC_TRY(st.in(h->prev_rejected, B, &d.prev_rejected));
  RKC_TRY(st.in(h->preference_prob, B, &d.preference_prob));
  RKC_TRY(st.out(h->losses, B, &d.losses));
  RKC_TRY(st.out(h->grad_policy_chosen, B, &d.grad_policy_chosen));
  RKC_TRY(st.out(h->grad_policy_rejected, B, &d.grad_policy_rejected));
  RKC_TRY(st.out(h->chosen_rewards, B, &d.chosen_rewards));
  RKC_TRY(st.out(h->rejected_rewards, B, &d.rejected_rewards));
  RKC_TRY(st.out(h->margins, B, &d.margins));
  RKC_TRY(st.out(h->grad_extra, B, &d.grad_extra));
  RKC_TRY(st.out(h->scalars, 2, &d.scalars));
  RKC_TRY(rk_launch_preference_loss(d, 0));
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_apo_reference(const rk_apo_reference_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_apo_reference_args d = *h;
  RKC_TRY(st.in(h->current, h->n, &d.current));
  RKC_TRY(st.in(h->previous, h->n, &d.previous));
  RKC_TRY(st.out(h->reference, h->n, &d.reference));
  RKC_TRY(rk_launch_apo_reference(d, 0));
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_listwise_loss(const rk_listwise_loss_args* h, char* err, size_t errlen) {
  if (h->K > kMaxListK) {
    if (err && errlen) snprintf(err, errlen, "listwiseLoss: K = %zu exceeds the CUDA limit of %zu items per list", h->K, kMaxListK);
    return 1;
  }
  rkc::Staging st;
  rk_listwise_loss_args d = *h;
  size_t n = h->B * h->K;
  RKC_TRY(st.in(h->policy, n, &d.policy));
  RKC_TRY(st.in(h->ref, n, &d.ref));
  RKC_TRY(st.in(h->labels, n, &d.labels));
  RKC_TRY(st.in(h->lengths, n, &d.lengths));
  RKC_TRY(st.out(h->losses, h->B, &d.losses));
  RKC_TRY(st.out(h->grad_policy, n, &d.grad_policy));
  RKC_TRY(st.out(h->scalars, 2, &d.scalars));
  RKC_TRY(rk_launch_listwise_loss(d, 0));
  RKC_TRY(st.finish());
  return 0;
}
