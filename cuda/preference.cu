// CUDA kernels of the preference family (SPEC §4). preferenceLoss: one grid-stride pass over the
// examples (math in src/core/preference.hpp), then one block reduces losses and margins into the
// mean loss and accuracy (double accumulation, deterministic). listwiseLoss: one block per row,
// the row's three scratch vectors in shared memory, the same row routine as the CPU.
#include "../src/core/preference.hpp"
#include "common.cuh"
#include "logprobs.cuh"
#include "preference.cuh"

namespace {

constexpr unsigned kBlock = 256;
constexpr unsigned kReduceBlock = 1024;
constexpr size_t kMaxListK = 4000;  // 3·K floats of dynamic shared memory + the reduction row ≤ 48 KiB

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

// Device-pointer entry points of the C ABI (queued on the stream, no wait).
RKC_DEV_ENTRY(preference_loss, rk_preference_loss_args)
RKC_DEV_ENTRY(apo_reference, rk_apo_reference_args)
RKC_DEV_ENTRY(fused_preference_loss, rk_fused_preference_args)
extern "C" int rk_cuda_listwise_loss_dev(const rk_listwise_loss_args* a, void* stream, char* err, size_t errlen) {
  if (a->K > kMaxListK) {
    if (err && errlen) snprintf(err, errlen, "listwiseLoss: K = %zu exceeds the CUDA limit of %zu items per list", a->K, kMaxListK);
    return 1;
  }
  RKC_TRY(rk_launch_listwise_loss(*a, rkc::stream_of(stream)));
  return 0;
}

// Host-pointer entry points of the C ABI: stage, run the device entry point, copy back.
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
  RKC_RUN_DEV(preference_loss, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_apo_reference(const rk_apo_reference_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_apo_reference_args d = *h;
  RKC_TRY(st.in(h->current, h->n, &d.current));
  RKC_TRY(st.in(h->previous, h->n, &d.previous));
  RKC_TRY(st.out(h->reference, h->n, &d.reference));
  RKC_RUN_DEV(apo_reference, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_listwise_loss(const rk_listwise_loss_args* h, char* err, size_t errlen) {
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
  RKC_RUN_DEV(listwise_loss, d);
  RKC_TRY(st.finish());
  return 0;
}

// ---- fusedPreferenceLoss ---------------------------------------------------------------------

namespace {

__global__ void fused_labels_kernel(const int32_t* labels, const void* mask, int kind, int32_t ign, int32_t* lab, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    lab[i] = rkc::mask_at(mask, kind, i) ? labels[i] : ign;
}

// One warp per sequence row: masked sum of logp (double), count → value (sum or mean), 1/count,
// length (+inf for an empty row) and, for rpo / orpo, the chosen NLL.
__global__ void fused_seq_kernel(const float* logp, const int32_t* lab, int32_t ign, size_t R, size_t T, size_t B, int avg,
                                 int want_nll, float* seq, float* len, float* inv, float* nll) {
  size_t row = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32;
  unsigned lane = threadIdx.x & 31;
  if (row >= R) return;
  double s = 0;
  unsigned long long c = 0;
  for (size_t t = lane; t < T; t += 32) {
    size_t i = row * T + t;
    bool on = lab[i] != ign;
    s += on ? (double)logp[i] : 0.0;
    c += on ? 1 : 0;
  }
  for (int o = 16; o > 0; o >>= 1) {
    s += __shfl_down_sync(0xffffffffu, s, o);
    c += __shfl_down_sync(0xffffffffu, c, o);
  }
  if (lane == 0) {
    float v = avg ? (c ? (float)(s / (double)c) : 0.0f) : (float)s;
    seq[row] = v;
    inv[row] = c ? 1.0f / (float)c : 0.0f;
    len[row] = c ? (float)c : rk::inf_f();
    if (want_nll && row < B) nll[row] = -v;
  }
}

__global__ void fused_grad_logp_kernel(const int32_t* lab, int32_t ign, size_t B, size_t T, int type, const float* gc,
                                       const float* gr, const float* gnll, const float* inv, float* glogp) {
  const size_t n = 2 * B * T;
  const bool avg = type == RK_PREF_ORPO || type == RK_PREF_SIMPO;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    size_t r = i / T;
    bool chosen = r < B;
    size_t b = chosen ? r : r - B;
    float g = chosen ? gc[b] : gr[b];
    if (avg) g *= inv[r];
    if (chosen && type == RK_PREF_RPO) g -= gnll[b];
    if (chosen && type == RK_PREF_ORPO) g -= gnll[b] * inv[r];
    glogp[i] = lab[i] != ign ? g : 0.0f;
  }
}

}  // namespace

cudaError_t rk_launch_fused_pref_labels(const rk_fused_preference_args& a, int32_t* lab, cudaStream_t s) {
  const size_t N = 2 * a.B * a.T;
  if (N) fused_labels_kernel<<<rkc::grid_for(N, kBlock), kBlock, 0, s>>>(a.labels, a.mask, a.mask_kind, a.ignore_index, lab, N);
  return cudaGetLastError();
}

cudaError_t rk_launch_fused_pref_loss(const rk_fused_preference_args& a, const int32_t* lab, const float* logp, float* glogp,
                                      cudaStream_t s) {
  const size_t B = a.B, T = a.T, R = 2 * B, N = R * T;
  const int type = a.type;
  const bool avg = type == RK_PREF_ORPO || type == RK_PREF_SIMPO;
  // scratch: seq/len/inv[R], nll/gnll[B]
  void* ws = nullptr;
  cudaError_t e = rkc::dev_alloc(&ws, (3 * R + 2 * B) * 4 + 16, s);
  if (e != cudaSuccess) return e;
  float* seq = static_cast<float*>(ws);
  float* len = seq + R;
  float* inv = len + R;
  float* nll = inv + R;
  float* gnll = nll + B;
  if (R) fused_seq_kernel<<<rkc::grid_for(R * 32, kBlock), kBlock, 0, s>>>(logp, lab, a.ignore_index, R, T, B, avg ? 1 : 0,
                                                                          type == RK_PREF_RPO || type == RK_PREF_ORPO, seq, len, inv, nll);
  rk_preference_loss_args p{};
  p.B = B;
  p.type = type;
  p.length_normalize = a.length_normalize;
  p.p = a.p;
  p.policy_chosen = seq;
  p.policy_rejected = seq + B;
  p.ref_chosen = a.ref_logp;
  p.ref_rejected = a.ref_logp ? a.ref_logp + B : nullptr;
  p.chosen_length = len;
  p.rejected_length = len + B;
  p.chosen_nll = nll;
  p.policy_explore = a.policy_explore;
  p.prev_chosen = a.prev_logp;
  p.prev_rejected = a.prev_logp ? a.prev_logp + B : nullptr;
  p.preference_prob = a.preference_prob;
  p.losses = a.losses;
  p.grad_policy_chosen = a.grad_policy_chosen;
  p.grad_policy_rejected = a.grad_policy_rejected;
  p.chosen_rewards = a.chosen_rewards;
  p.rejected_rewards = a.rejected_rewards;
  p.margins = a.margins;
  p.grad_extra = type == RK_PREF_XPO ? a.grad_extra : gnll;
  p.scalars = a.scalars;
  if ((e = rk_launch_preference_loss(p, s)) != cudaSuccess) { rkc::dev_free(ws, s); return e; }
  if (N) fused_grad_logp_kernel<<<rkc::grid_for(N, kBlock), kBlock, 0, s>>>(lab, a.ignore_index, B, T, type, a.grad_policy_chosen,
                                                                          a.grad_policy_rejected, gnll, inv, glogp);
  e = rkc::dev_free(ws, s);
  if (e != cudaSuccess) return e;
  return cudaGetLastError();
}

cudaError_t rk_launch_fused_preference_loss(const rk_fused_preference_args& a, cudaStream_t s) {
  const size_t N = 2 * a.B * a.T;
  // scratch: lab[N] (i32), logp[N], lse[N], glogp[N]
  void* ws = nullptr;
  cudaError_t e = rkc::dev_alloc(&ws, 4 * N * 4 + 16, s);
  if (e != cudaSuccess) return e;
  int32_t* lab = static_cast<int32_t*>(ws);
  float* logp = reinterpret_cast<float*>(lab + N);
  float* lse = logp + N;
  float* glogp = lse + N;
  auto fail = [&](cudaError_t err) { rkc::dev_free(ws, s); return err; };
  if ((e = rk_launch_fused_pref_labels(a, lab, s)) != cudaSuccess) return fail(e);
  rk_logprobs_args f{};
  f.logits = a.logits;
  f.dtype = a.dtype;
  f.labels = lab;
  f.N = N;
  f.V = a.V;
  f.temperature = a.temperature;
  f.ignore_index = a.ignore_index;
  f.logp = logp;
  f.lse = lse;
  f.entropy = nullptr;
  if (N && (e = rk_launch_logprobs(f, s)) != cudaSuccess) return fail(e);
  if ((e = rk_launch_fused_pref_loss(a, lab, logp, glogp, s)) != cudaSuccess) return fail(e);
  rk_logprobs_backward_args bw{};
  bw.logits = a.logits;
  bw.dtype = a.dtype;
  bw.labels = lab;
  bw.N = N;
  bw.V = a.V;
  bw.grad_logp = glogp;
  bw.grad_entropy = nullptr;
  bw.lse = lse;
  bw.temperature = a.temperature;
  bw.ignore_index = a.ignore_index;
  bw.grad_logits = a.grad_logits;
  if (N && (e = rk_launch_logprobs_backward(bw, s)) != cudaSuccess) return fail(e);
  e = rkc::dev_free(ws, s);
  if (e != cudaSuccess) return e;
  return cudaGetLastError();
}

extern "C" int rk_cuda_fused_preference_loss(const rk_fused_preference_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_fused_preference_args d = *h;
  const size_t B = h->B, R = 2 * B, N = R * h->T, NV = N * h->V;
  const size_t esz = h->dtype == RK_DT_F32 ? 4 : 2;
  RKC_TRY(st.in_bytes(h->logits, NV * esz, &d.logits));
  RKC_TRY(st.in(h->labels, N, &d.labels));
  RKC_TRY(st.in_bytes(h->mask, N * rkc::mask_bytes(h->mask_kind), &d.mask));
  RKC_TRY(st.in(h->ref_logp, R, &d.ref_logp));
  RKC_TRY(st.in(h->prev_logp, R, &d.prev_logp));
  RKC_TRY(st.in(h->policy_explore, B, &d.policy_explore));
  RKC_TRY(st.in(h->preference_prob, B, &d.preference_prob));
  RKC_TRY(st.out(h->grad_logits, NV, &d.grad_logits));
  RKC_TRY(st.out(h->losses, B, &d.losses));
  RKC_TRY(st.out(h->grad_policy_chosen, B, &d.grad_policy_chosen));
  RKC_TRY(st.out(h->grad_policy_rejected, B, &d.grad_policy_rejected));
  RKC_TRY(st.out(h->chosen_rewards, B, &d.chosen_rewards));
  RKC_TRY(st.out(h->rejected_rewards, B, &d.rejected_rewards));
  RKC_TRY(st.out(h->margins, B, &d.margins));
  RKC_TRY(st.out(h->grad_extra, B, &d.grad_extra));
  RKC_TRY(st.out(h->scalars, 2, &d.scalars));
  RKC_RUN_DEV(fused_preference_loss, d);
  RKC_TRY(st.finish());
  return 0;
}
