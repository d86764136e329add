// CUDA kernels of the PPO family (SPEC §5) and P3O.
//
// ppoPolicyLoss / valueLoss, four launches, all on one stream:
//   1. row_counts: one block per row counts the mask (integer block reduction);
//   2. totals: one block sums the counts into N (tokens) and S (non-empty rows), integers;
//   3. token_kernel (THE fused kernel for the token losses): fixed tiles of kTile tokens of one
//      row per block iteration; each thread computes ℓ, ∂ℓ, the clip indicator and ½(logp−old)²,
//      writes the weighted gradient, and accumulates w·ℓ, ½d² (f64) and the clip count; a block
//      reduction writes one partial per block;
//   4. finalize: one block combines the partials in a fixed tree order and writes the scalars.
// The grid depends only on B×T, and no float atomics are used, so results are bitwise
// reproducible run to run.
#include "../src/core/ppo.hpp"
#include "common.cuh"
#include "ppo.cuh"

namespace {

constexpr unsigned kThreads = 256;
constexpr size_t kTile = 2048;  // tokens of one row per block iteration (8 per thread)

struct Workspace {
  uint32_t* cnt;                 // [B]
  unsigned long long* tot;       // [2]: N, S
  double* partials;              // [kPpoMaxBlocks * 4]
};
Workspace carve(void* ws, size_t B) {
  char* p = static_cast<char*>(ws);
  Workspace w;
  w.cnt = reinterpret_cast<uint32_t*>(p);
  size_t off = ((B * 4 + 7) / 8) * 8;
  w.tot = reinterpret_cast<unsigned long long*>(p + off);
  w.partials = reinterpret_cast<double*>(p + off + 16);
  return w;
}

// Block-wide sum (fixed order: warp shuffles, then warp 0 over the warp sums). All threads get it.
template <class V>
__device__ V block_sum(V v, V* sh) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  unsigned lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  __syncthreads();
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  unsigned nw = (blockDim.x + 31) / 32;
  v = threadIdx.x < nw ? sh[threadIdx.x] : V(0);
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if (threadIdx.x == 0) sh[0] = v;
  __syncthreads();
  v = sh[0];
  __syncthreads();
  return v;
}

__global__ void row_counts_kernel(const void* mask, int kind, size_t B, size_t T, uint32_t* cnt) {
  __shared__ unsigned sh[32];
  for (size_t b = blockIdx.x; b < B; b += gridDim.x) {
    unsigned c = 0;
    for (size_t t = threadIdx.x; t < T; t += blockDim.x) c += rkc::mask_at(mask, kind, b * T + t) ? 1u : 0u;
    c = block_sum(c, sh);
    if (threadIdx.x == 0) cnt[b] = c;
  }
}

__global__ void totals_kernel(const uint32_t* cnt, size_t B, unsigned long long* tot) {
  __shared__ unsigned long long sh[32];
  unsigned long long n = 0, s = 0;
  for (size_t b = threadIdx.x; b < B; b += blockDim.x) {
    n += cnt[b];
    s += cnt[b] ? 1ull : 0ull;
  }
  n = block_sum(n, sh);
  s = block_sum(s, sh);
  if (threadIdx.x == 0) { tot[0] = n; tot[1] = s; }
}

struct Term {
  float loss, grad, akl;
  bool clipped;
};

template <int E>
struct PolicyOp {
  const float *lp, *op, *ad, *rp;
  float lo, hi, dual, coef;
  bool has_dual;
  __device__ Term operator()(size_t i) const {
    float l = lp[i], o = op[i];
    rk::LossTerm r = rk::ppo_clip_term(l, o, ad[i], lo, hi, has_dual, dual);
    float loss = r.loss, g = r.grad;
    if (E != RK_KL_NONE) {
      float d = l - rp[i];
      loss += coef * rk::kl_estimate<E == RK_KL_NONE ? RK_KL_K1 : E>(d);
      g += coef * rk::kl_grad<E == RK_KL_NONE ? RK_KL_K1 : E>(d);
    }
    float dd = l - o;
    return {loss, g, 0.5f * dd * dd, r.clipped};
  }
};

struct ValueOp {
  const float *vp, *op, *rp;
  float c;
  __device__ Term operator()(size_t i) const {
    rk::LossTerm r = rk::value_term(vp[i], op[i], rp[i], c);
    return {r.loss, r.grad, 0.0f, r.clipped};
  }
};

struct Agg {
  int aggregation, has_norm;
  double norm;
};

template <class Op>
__global__ void __launch_bounds__(kThreads) token_kernel(Op f, const void* mask, int kind, size_t B, size_t T, Agg g,
                                                         const uint32_t* cnt, const unsigned long long* tot, float* grad,
                                                         double* partials) {
  __shared__ double shd[32];
  const double N = (double)tot[0], S = (double)tot[1];
  const size_t tiles = (T + kTile - 1) / kTile, jobs = B * tiles;
  double sl = 0, sk = 0, sc = 0;
  for (size_t j = blockIdx.x; j < jobs; j += gridDim.x) {
    const size_t b = j / tiles, t0 = (j - b * tiles) * kTile;
    const size_t t1 = t0 + kTile < T ? t0 + kTile : T;
    const double wd = rk::agg_weight(g.aggregation, (double)cnt[b], N, S, g.has_norm, g.norm);
    const float w = (float)wd;
    float tl = 0, tk = 0, tc = 0;  // ≤ 8 terms per thread per tile
    for (size_t t = t0 + threadIdx.x; t < t1; t += blockDim.x) {
      const size_t i = b * T + t;
      const bool m = rkc::mask_at(mask, kind, i);
      if (m) {
        Term r = f(i);
        grad[i] = w * r.grad;
        tl += r.loss;
        tk += r.akl;
        tc += r.clipped ? 1.0f : 0.0f;
      } else {
        grad[i] = 0.0f;
      }
    }
    sl += wd * (double)tl;
    sk += (double)tk;
    sc += (double)tc;
  }
  sl = block_sum(sl, shd);
  sk = block_sum(sk, shd);
  sc = block_sum(sc, shd);
  if (threadIdx.x == 0) {
    partials[blockIdx.x * 4 + 0] = sl;
    partials[blockIdx.x * 4 + 1] = sc;
    partials[blockIdx.x * 4 + 2] = sk;
  }
}

// result[0] = loss, result[1] = clip / N, result[2] = ½d² / N (written only when nres == 3).
__global__ void finalize_kernel(const double* partials, unsigned nblocks, const unsigned long long* tot, double* result,
                                int nres) {
  __shared__ double sh[32];
  double l = 0, c = 0, k = 0;
  for (unsigned i = threadIdx.x; i < nblocks; i += blockDim.x) {
    l += partials[i * 4 + 0];
    c += partials[i * 4 + 1];
    k += partials[i * 4 + 2];
  }
  l = block_sum(l, sh);
  c = block_sum(c, sh);
  k = block_sum(k, sh);
  if (threadIdx.x == 0) {
    double N = (double)tot[0];
    result[0] = l;
    result[1] = N > 0 ? c / N : 0.0;
    if (nres == 3) result[2] = N > 0 ? k / N : 0.0;
  }
}

template <class Op>
cudaError_t launch_tokens(const Op& f, const void* mask, int kind, size_t B, size_t T, Agg g, float* grad, double* result,
                          int nres, void* ws, cudaStream_t s) {
  if (!B || !T) return cudaMemsetAsync(result, 0, sizeof(double) * nres, s);
  Workspace w = carve(ws, B);
  unsigned rows = (unsigned)(B < 65535u * 8u ? B : 65535u * 8u);
  row_counts_kernel<<<rows, kThreads, 0, s>>>(mask, kind, B, T, w.cnt);
  totals_kernel<<<1, 1024, 0, s>>>(w.cnt, B, w.tot);
  size_t jobs = B * ((T + kTile - 1) / kTile);
  unsigned blocks = (unsigned)(jobs < rk::kPpoMaxBlocks ? jobs : rk::kPpoMaxBlocks);
  token_kernel<<<blocks, kThreads, 0, s>>>(f, mask, kind, B, T, g, w.cnt, w.tot, grad, w.partials);
  finalize_kernel<<<1, 1024, 0, s>>>(w.partials, blocks, w.tot, result, nres);
  return cudaGetLastError();
}

__global__ void p3o_kernel(rk_p3o_loss_args a, double* partials) {
  __shared__ double sh[32];
  const double denom = a.has_normalizer ? a.normalizer : (double)a.B;
  const float w = denom > 0 ? (float)(1.0 / denom) : 0.0f;
  const float lo = 1.0f - a.clip_low, hi = 1.0f + a.clip_high;
  double l = 0, c = 0;
  for (size_t b = threadIdx.x; b < a.B; b += blockDim.x) {
    const float A = 0.5f * (a.rewards1[b] - a.rewards2[b]);
    if (a.variant == RK_P3O_JOINT) {
      float lr = (a.logp1[b] - a.old_logp1[b]) - (a.logp2[b] - a.old_logp2[b]);
      rk::LossTerm r = rk::ppo_clip_term(lr, 0.0f, A, lo, hi, false, 0.0f);
      l += r.loss;
      c += r.clipped ? 1.0 : 0.0;
      a.grad_logp1[b] = w * r.grad;
      a.grad_logp2[b] = -(w * r.grad);
    } else {
      rk::LossTerm r1 = rk::ppo_clip_term(a.logp1[b], a.old_logp1[b], A, lo, hi, false, 0.0f);
      rk::LossTerm r2 = rk::ppo_clip_term(a.logp2[b], a.old_logp2[b], -A, lo, hi, false, 0.0f);
      l += (double)r1.loss + (double)r2.loss;
      c += (r1.clipped ? 0.5 : 0.0) + (r2.clipped ? 0.5 : 0.0);
      a.grad_logp1[b] = w * r1.grad;
      a.grad_logp2[b] = w * r2.grad;
    }
  }
  l = block_sum(l, sh);
  c = block_sum(c, sh);
  if (threadIdx.x == 0) {
    a.result[0] = denom > 0 ? l / denom : 0.0;
    a.result[1] = a.B ? c / (double)a.B : 0.0;
  }
  (void)partials;
}

template <int E>
cudaError_t launch_policy(const rk_ppo_policy_loss_args& a, cudaStream_t s) {
  PolicyOp<E> f{a.logp, a.old_logp, a.advantages, a.ref_logp, 1.0f - a.clip_low, 1.0f + a.clip_high, a.dual_clip, a.kl_coef,
                a.has_dual_clip != 0};
  return launch_tokens(f, a.mask, a.mask_kind, a.B, a.T, Agg{a.aggregation, a.has_normalizer, a.normalizer}, a.grad_logp,
                       a.result, 3, a.workspace, s);
}

}  // namespace

extern "C" size_t rk_ppo_workspace_bytes(size_t B, size_t T) { return rk::ppo_workspace_bytes(B, T); }

cudaError_t rk_launch_ppo_policy_loss(const rk_ppo_policy_loss_args& a, cudaStream_t s) {
  switch (a.kl_estimator) {
    case RK_KL_K1: return launch_policy<RK_KL_K1>(a, s);
    case RK_KL_K2: return launch_policy<RK_KL_K2>(a, s);
    case RK_KL_K3: return launch_policy<RK_KL_K3>(a, s);
    case RK_KL_ABS: return launch_policy<RK_KL_ABS>(a, s);
    default: return launch_policy<RK_KL_NONE>(a, s);
  }
}

cudaError_t rk_launch_value_loss(const rk_value_loss_args& a, cudaStream_t s) {
  ValueOp f{a.values, a.old_values, a.returns, a.clip};
  return launch_tokens(f, a.mask, a.mask_kind, a.B, a.T, Agg{a.aggregation, a.has_normalizer, a.normalizer}, a.grad_values,
                       a.result, 2, a.workspace, s);
}

cudaError_t rk_launch_p3o_loss(const rk_p3o_loss_args& a, cudaStream_t s) {
  p3o_kernel<<<1, 1024, 0, s>>>(a, nullptr);
  return cudaGetLastError();
}

// Device-pointer entry points of the C ABI (queued on the stream, no wait); the workspace comes
// from the library's pool when a->workspace is NULL.
template <class A, cudaError_t (*Launch)(const A&, cudaStream_t)>
static int ppo_dev(const A* a, void* stream, char* err, size_t errlen) {
  cudaStream_t s = rkc::stream_of(stream);
  if (a->workspace) RKC_TRY(Launch(*a, s));
  else
    RKC_TRY(rkc::with_scratch(rk::ppo_workspace_bytes(a->B, a->T), s, [&](void* ws) {
      A d = *a;
      d.workspace = ws;
      return Launch(d, s);
    }));
  return 0;
}
extern "C" int rk_cuda_ppo_policy_loss_dev(const rk_ppo_policy_loss_args* a, void* stream, char* err, size_t errlen) {
  return ppo_dev<rk_ppo_policy_loss_args, rk_launch_ppo_policy_loss>(a, stream, err, errlen);
}
extern "C" int rk_cuda_value_loss_dev(const rk_value_loss_args* a, void* stream, char* err, size_t errlen) {
  return ppo_dev<rk_value_loss_args, rk_launch_value_loss>(a, stream, err, errlen);
}
RKC_DEV_ENTRY(p3o_loss, rk_p3o_loss_args)

// Host-pointer entry points of the C ABI: stage, run the device entry point, copy back.
extern "C" int rk_cuda_ppo_policy_loss(const rk_ppo_policy_loss_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_ppo_policy_loss_args d = *h;
  size_t n = h->B * h->T;
  RKC_TRY(st.in(h->logp, n, &d.logp));
  RKC_TRY(st.in(h->old_logp, n, &d.old_logp));
  RKC_TRY(st.in(h->advantages, n, &d.advantages));
  RKC_TRY(st.in(h->kl_estimator != RK_KL_NONE ? h->ref_logp : nullptr, n, &d.ref_logp));
  RKC_TRY(st.in_bytes(h->mask, n * rkc::mask_bytes(h->mask_kind), &d.mask));
  RKC_TRY(st.out(h->grad_logp, n, &d.grad_logp));
  RKC_TRY(st.out(h->result, 3, &d.result));
  d.workspace = nullptr;
  RKC_RUN_DEV(ppo_policy_loss, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_value_loss(const rk_value_loss_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_value_loss_args d = *h;
  size_t n = h->B * h->T;
  RKC_TRY(st.in(h->values, n, &d.values));
  RKC_TRY(st.in(h->old_values, n, &d.old_values));
  RKC_TRY(st.in(h->returns, n, &d.returns));
  RKC_TRY(st.in_bytes(h->mask, n * rkc::mask_bytes(h->mask_kind), &d.mask));
  RKC_TRY(st.out(h->grad_values, n, &d.grad_values));
  RKC_TRY(st.out(h->result, 2, &d.result));
  d.workspace = nullptr;
  RKC_RUN_DEV(value_loss, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_p3o_loss(const rk_p3o_loss_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_p3o_loss_args d = *h;
  size_t n = h->B;
  RKC_TRY(st.in(h->logp1, n, &d.logp1));
  RKC_TRY(st.in(h->logp2, n, &d.logp2));
  RKC_TRY(st.in(h->old_logp1, n, &d.old_logp1));
  RKC_TRY(st.in(h->old_logp2, n, &d.old_logp2));
  RKC_TRY(st.in(h->rewards1, n, &d.rewards1));
  RKC_TRY(st.in(h->rewards2, n, &d.rewards2));
  RKC_TRY(st.out(h->grad_logp1, n, &d.grad_logp1));
  RKC_TRY(st.out(h->grad_logp2, n, &d.grad_logp2));
  RKC_TRY(st.out(h->result, 2, &d.result));
  RKC_RUN_DEV(p3o_loss, d);
  RKC_TRY(st.finish());
  return 0;
}
