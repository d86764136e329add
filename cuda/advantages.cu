// CUDA kernels of the advantages family (SPEC §3).
//
// gae / discountedReturns: ONE launch each. A block owns a row (grid-stride over rows, so no
// limit from grid dimensions on B) and walks it from the end in chunks of kNT·kIT positions. In a
// chunk, positions are taken in reverse order (s = end − 1 − t) so the backward recurrence is a
// forward scan: every position is an affine map (c, d) of core/advantages.hpp (identity when
// masked, so masked tokens are skipped), composed by a thread-local scan of kIT items, a
// warp-shuffle scan, then a scan of the warp totals in shared memory; the prefix carried from the
// previous chunk (the advantage at the next counted position) is applied last. GAE first runs the
// same block scan with the "last valid wins" operator to get, for each position, the value at
// the next counted position (or lastValues).
//
// whiten: per-thread float64 Welford, combined by Chan's formula in warps and blocks (kernel 1),
// one block combines the block partials (kernel 2), one elementwise pass applies (kernel 3).
#include "../src/core/advantages.hpp"
#include "advantages.cuh"
#include "common.cuh"

namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kNT = 512;  // threads per block (one row per block)
constexpr int kIT = 4;    // positions per thread per chunk
constexpr int kChunk = kNT * kIT;
constexpr int kWarps = kNT / 32;

__device__ __forceinline__ rk::Affine shfl_up(rk::Affine x, int o) {
  return rk::Affine{__shfl_up_sync(kFull, x.c, o), __shfl_up_sync(kFull, x.d, o)};
}
__device__ __forceinline__ rk::Valid shfl_up(rk::Valid x, int o) {
  return rk::Valid{__shfl_up_sync(kFull, x.v, o), __shfl_up_sync(kFull, (int)x.has, o) != 0};
}
// op(a, b): a comes first in scan order (nearer the end of the row).
__device__ __forceinline__ rk::Affine op(rk::Affine a, rk::Affine b) { return rk::affine_then(a, b); }
__device__ __forceinline__ rk::Valid op(rk::Valid a, rk::Valid b) { return rk::valid_then(a, b); }
__device__ __forceinline__ rk::Affine ident(rk::Affine) { return rk::Affine{1.0f, 0.0f}; }
__device__ __forceinline__ rk::Valid ident(rk::Valid) { return rk::Valid{0.0f, false}; }

// Exclusive block scan of one aggregate per thread; *total gets the whole block's aggregate.
template <class T>
__device__ T block_exclusive(T x, T* sm, T* total) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const T id = ident(x);
  T inc = x;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    T y = shfl_up(inc, o);
    if (lane >= o) inc = op(y, inc);
  }
  if (lane == 31) sm[w] = inc;
  __syncthreads();
  if (w == 0) {
    T s = lane < kWarps ? sm[lane] : id;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      T y = shfl_up(s, o);
      if (lane >= o) s = op(y, s);
    }
    if (lane < kWarps) sm[lane] = s;
  }
  __syncthreads();
  T excl = shfl_up(inc, 1);
  if (lane == 0) excl = id;
  T res = w ? op(sm[w - 1], excl) : excl;
  *total = sm[kWarps - 1];
  __syncthreads();  // sm is reused by the next scan
  return res;
}

template <bool VALS>
__global__ void __launch_bounds__(kNT) gae_kernel(rk_gae_args a) {
  __shared__ rk::Affine sm_aff[kWarps];
  __shared__ rk::Valid sm_val[kWarps];
  const long T = (long)a.T;
  const float gamma = a.gamma, gl = VALS ? a.gamma * a.lambda : a.gamma;
  for (size_t row = blockIdx.x; row < a.B; row += gridDim.x) {
    const size_t base = row * a.T;
    float carryA = 0.0f;
    float carryW = VALS && a.last_values ? a.last_values[row] : 0.0f;
    for (long end = T; end > 0; end -= kChunk) {
      float r[kIT], v[kIT];
      bool m[kIT];
#pragma unroll
      for (int k = 0; k < kIT; ++k) {
        long t = end - 1 - (long)(threadIdx.x * kIT + k);
        m[k] = t >= 0 && rkc::mask_at(a.mask, a.mask_kind, base + (size_t)t);
        r[k] = m[k] ? a.rewards[base + (size_t)t] : 0.0f;
        v[k] = VALS && m[k] ? a.values[base + (size_t)t] : 0.0f;
      }
      rk::Affine f[kIT];
      if (VALS) {
        // value at the next counted position (nearer the row end), or the carry
        rk::Valid agg{0.0f, false};
#pragma unroll
        for (int k = 0; k < kIT; ++k) agg = op(agg, rk::Valid{v[k], m[k]});
        rk::Valid total;
        rk::Valid run = op(rk::Valid{carryW, true}, block_exclusive(agg, sm_val, &total));
#pragma unroll
        for (int k = 0; k < kIT; ++k) {
          float nv = run.v;
          run = op(run, rk::Valid{v[k], m[k]});
          float delta = r[k] + gamma * nv - v[k];
          f[k] = m[k] ? rk::Affine{gl, delta} : rk::Affine{1.0f, 0.0f};
        }
        carryW = op(rk::Valid{carryW, true}, total).v;
      } else {
#pragma unroll
        for (int k = 0; k < kIT; ++k) f[k] = m[k] ? rk::Affine{gl, r[k]} : rk::Affine{1.0f, 0.0f};
      }
      rk::Affine agg{1.0f, 0.0f};
#pragma unroll
      for (int k = 0; k < kIT; ++k) agg = op(agg, f[k]);
      rk::Affine total;
      rk::Affine run = block_exclusive(agg, sm_aff, &total);
#pragma unroll
      for (int k = 0; k < kIT; ++k) {
        long t = end - 1 - (long)(threadIdx.x * kIT + k);
        run = op(run, f[k]);
        if (t < 0) continue;
        float A = run.d + run.c * carryA;
        a.advantages[base + (size_t)t] = m[k] ? A : 0.0f;
        if (VALS) a.returns[base + (size_t)t] = m[k] ? A + v[k] : 0.0f;
      }
      carryA = total.d + total.c * carryA;
    }
  }
}

// ---- whiten ----
struct Stat {
  double n, mean, m2;
};
__device__ __forceinline__ Stat chan(Stat a, Stat b) {
  double n = a.n + b.n;
  if (b.n == 0) return a;
  if (a.n == 0) return b;
  double delta = b.mean - a.mean;
  return Stat{n, a.mean + delta * (b.n / n), a.m2 + b.m2 + delta * delta * (a.n * b.n / n)};
}
__device__ __forceinline__ Stat shfl_down(Stat s, int o) {
  return Stat{__shfl_down_sync(kFull, s.n, o), __shfl_down_sync(kFull, s.mean, o), __shfl_down_sync(kFull, s.m2, o)};
}
constexpr int kStatThreads = 256;
constexpr unsigned kStatBlocks = 1024;

__device__ Stat block_chan(Stat s) {
  __shared__ Stat sm[kStatThreads / 32];
  for (int o = 16; o > 0; o >>= 1) s = chan(s, shfl_down(s, o));
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  if (lane == 0) sm[w] = s;
  __syncthreads();
  if (w == 0) {
    s = lane < kStatThreads / 32 ? sm[lane] : Stat{0, 0, 0};
    for (int o = 16; o > 0; o >>= 1) s = chan(s, shfl_down(s, o));
  }
  return s;  // valid in thread 0
}

__global__ void __launch_bounds__(kStatThreads) whiten_partial_kernel(rk_whiten_args a, double* part) {
  Stat s{0, 0, 0};
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < a.n; i += (size_t)gridDim.x * blockDim.x) {
    if (!rkc::mask_at(a.mask, a.mask_kind, i)) continue;
    double x = (double)a.x[i];
    s.n += 1.0;
    double d = x - s.mean;
    s.mean += d / s.n;
    s.m2 += d * (x - s.mean);
  }
  s = block_chan(s);
  if (threadIdx.x == 0) {
    part[3 * blockIdx.x] = s.n;
    part[3 * blockIdx.x + 1] = s.mean;
    part[3 * blockIdx.x + 2] = s.m2;
  }
}

__global__ void __launch_bounds__(kStatThreads) whiten_final_kernel(const double* part, unsigned nparts, double* stats) {
  Stat s{0, 0, 0};
  // each thread combines a contiguous run of partials in order, then the tree (fixed order)
  for (unsigned k = threadIdx.x; k < nparts; k += blockDim.x) s = chan(s, Stat{part[3 * k], part[3 * k + 1], part[3 * k + 2]});
  s = block_chan(s);
  if (threadIdx.x == 0) {
    stats[0] = s.n;
    stats[1] = s.mean;
    stats[2] = s.n >= 2 ? s.m2 / (s.n - 1) : __longlong_as_double(0x7ff8000000000000LL);
  }
}

__global__ void whiten_apply_kernel(rk_whiten_args a) {
  const double* st = a.stats;
  if (st[0] < 2) return;
  const float mu = (float)st[1];
  const float mu_lo = (float)(st[1] - (double)mu);
  const float inv = (float)(1.0 / sqrt(st[2] + (double)a.eps));
  const float add = a.shift_mean ? 0.0f : mu;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < a.n; i += (size_t)gridDim.x * blockDim.x)
    a.y[i] = rk::whiten_apply(rkc::mask_at(a.mask, a.mask_kind, i), a.x[i], mu, mu_lo, inv, add);
}

// ---- groups, ensembles, win rates ----
__device__ __forceinline__ double warp_sum(double x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFull, x, o);
  return x;
}

// One warp per group (grid-stride over groups): float64 sums over the group, then the outputs.
__global__ void group_adv_kernel(rk_group_adv_args a) {
  const size_t K = a.K;
  const unsigned lane = threadIdx.x & 31;
  const size_t warps = (size_t)gridDim.x * (blockDim.x / 32);
  for (size_t g = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) / 32; g < a.G; g += warps) {
    const float* s = a.scores + g * K;
    float* out = a.advantages + g * K;
    if (a.method == RK_GROUP_REMAX) {
      for (size_t k = lane; k < K; k += 32) out[k] = s[k] - a.baselines[g * K + k];
      continue;
    }
    double sum = 0;
    for (size_t k = lane; k < K; k += 32) sum += (double)s[k];
    sum = warp_sum(sum);
    const double mean = sum / (double)K;
    float stdv = 0.0f;
    if (a.method == RK_GROUP_GRPO && K >= 2) {
      double q = 0;
      for (size_t k = lane; k < K; k += 32) { double d = (double)s[k] - mean; q += d * d; }
      q = warp_sum(q);
      stdv = (float)sqrt(q / (double)(K - 1));
    }
    for (size_t k = lane; k < K; k += 32) out[k] = rk::group_adv(a.method, s[k], 0.0f, sum, (float)mean, stdv, K, a.eps);
  }
}

__global__ void ensemble_kernel(rk_ensemble_args a) {
  const size_t E = a.E, B = a.B;
  for (size_t b = blockIdx.x * (size_t)blockDim.x + threadIdx.x; b < B; b += (size_t)gridDim.x * blockDim.x) {
    if (a.method == RK_ENSEMBLE_MIN) {
      float m = a.scores[b];
      for (size_t e = 1; e < E; ++e) m = rk::min_nan(m, a.scores[e * B + b]);
      a.rewards[b] = m;
      continue;
    }
    double s = 0;
    for (size_t e = 0; e < E; ++e) s += (double)a.scores[e * B + b];
    const double mean = s / (double)E;
    if (a.method == RK_ENSEMBLE_MEAN) { a.rewards[b] = (float)mean; continue; }
    double q = 0;
    for (size_t e = 0; e < E; ++e) { double d = (double)a.scores[e * B + b] - mean; q += d * d; }
    a.rewards[b] = (float)(mean - (double)a.lambda * (q / (a.unbiased ? (double)(E - 1) : (double)E)));
  }
}

__global__ void win_rate_kernel(rk_win_rate_args a) {
  const size_t K = a.K, rows = a.G * K;
  const double inv = K > 1 ? 1.0 / (double)(K - 1) : 0.0;
  for (size_t r = blockIdx.x * (size_t)blockDim.x + threadIdx.x; r < rows; r += (size_t)gridDim.x * blockDim.x) {
    const size_t i = r % K;
    const float* p = a.preferences + r * K;
    double s = 0;
    for (size_t j = 0; j < K; ++j)
      if (j != i) s += (double)p[j];
    a.rewards[r] = (float)(s * inv);
  }
}

constexpr unsigned kBlock = 256;
inline unsigned row_grid(size_t rows) {
  size_t g = rows < (size_t)65535 * 8 ? rows : (size_t)65535 * 8;
  return g ? (unsigned)g : 1u;
}

}  // namespace

// Device-pointer launchers (GPU bench, fused callers).
cudaError_t rk_launch_gae(const rk_gae_args& a, cudaStream_t s) {
  if (!a.B || !a.T) return cudaSuccess;
  if (a.values) gae_kernel<true><<<row_grid(a.B), kNT, 0, s>>>(a);
  else gae_kernel<false><<<row_grid(a.B), kNT, 0, s>>>(a);
  return cudaGetLastError();
}

static unsigned whiten_blocks(size_t n) {
  size_t g = (n + kStatThreads - 1) / kStatThreads;
  return g < kStatBlocks ? (g ? (unsigned)g : 1u) : kStatBlocks;
}
size_t rk_whiten_scratch_doubles(size_t n) { return 3 * (size_t)whiten_blocks(n); }

cudaError_t rk_launch_whiten_stats(const rk_whiten_args& a, double* scratch, cudaStream_t s) {
  const unsigned nb = whiten_blocks(a.n);
  whiten_partial_kernel<<<nb, kStatThreads, 0, s>>>(a, scratch);
  whiten_final_kernel<<<1, kStatThreads, 0, s>>>(scratch, nb, a.stats);
  return cudaGetLastError();
}

cudaError_t rk_launch_whiten_apply(const rk_whiten_args& a, cudaStream_t s) {
  if (!a.n) return cudaSuccess;
  whiten_apply_kernel<<<rkc::grid_for(a.n, kBlock), kBlock, 0, s>>>(a);
  return cudaGetLastError();
}

cudaError_t rk_launch_whiten(const rk_whiten_args& a, double* scratch, cudaStream_t s) {
  cudaError_t e = rk_launch_whiten_stats(a, scratch, s);
  if (e != cudaSuccess) return e;
  return rk_launch_whiten_apply(a, s);
}

cudaError_t rk_launch_group_advantages(const rk_group_adv_args& a, cudaStream_t s) {
  if (!a.G || !a.K) return cudaSuccess;
  group_adv_kernel<<<rkc::grid_for(a.G * 32, kBlock), kBlock, 0, s>>>(a);
  return cudaGetLastError();
}

cudaError_t rk_launch_ensemble_rewards(const rk_ensemble_args& a, cudaStream_t s) {
  if (!a.B || !a.E) return cudaSuccess;
  ensemble_kernel<<<rkc::grid_for(a.B, kBlock), kBlock, 0, s>>>(a);
  return cudaGetLastError();
}

cudaError_t rk_launch_win_rate_rewards(const rk_win_rate_args& a, cudaStream_t s) {
  if (!a.G || !a.K) return cudaSuccess;
  win_rate_kernel<<<rkc::grid_for(a.G * a.K, kBlock), kBlock, 0, s>>>(a);
  return cudaGetLastError();
}

// Device-pointer entry points of the C ABI (queued on the stream, no wait).
RKC_DEV_ENTRY(gae, rk_gae_args)
RKC_DEV_ENTRY(group_advantages, rk_group_adv_args)
RKC_DEV_ENTRY(ensemble_rewards, rk_ensemble_args)
RKC_DEV_ENTRY(win_rate_rewards, rk_win_rate_args)

// whiten: stats (3 doubles) is a device pointer; y is written by the apply kernel only when the
// count is >= 2 (it reads the count on the device), so nothing waits on the host.
extern "C" int rk_cuda_whiten_dev(const rk_whiten_args* a, void* stream, char* err, size_t errlen) {
  cudaStream_t s = rkc::stream_of(stream);
  // partials: 24 bytes per 256 elements
  RKC_TRY(rkc::with_scratch(rk_whiten_scratch_doubles(a->n) * sizeof(double), s,
                            [&](void* p) { return rk_launch_whiten(*a, static_cast<double*>(p), s); }));
  return 0;
}

// Host-pointer entry points of the C ABI: stage, run the device entry point, copy back.
extern "C" int rk_cuda_gae(const rk_gae_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_gae_args d = *h;
  size_t n = h->B * h->T;
  RKC_TRY(st.in(h->rewards, n, &d.rewards));
  RKC_TRY(st.in(h->values, n, &d.values));
  RKC_TRY(st.in_bytes(h->mask, n * rkc::mask_bytes(h->mask_kind), &d.mask));
  RKC_TRY(st.in(h->last_values, h->B, &d.last_values));
  RKC_TRY(st.out(h->advantages, n, &d.advantages));
  RKC_TRY(st.out(h->returns, n, &d.returns));
  RKC_RUN_DEV(gae, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_whiten(const rk_whiten_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_whiten_args d = *h;
  RKC_TRY(st.in(h->x, h->n, &d.x));
  RKC_TRY(st.in_bytes(h->mask, h->n * rkc::mask_bytes(h->mask_kind), &d.mask));
  RKC_TRY(st.out(h->stats, 3, &d.stats));
  RKC_TRY(st.scratch(h->n, &d.y));
  RKC_RUN_DEV(whiten, d);
  RKC_TRY(st.finish());
  if (h->stats[0] < 2 || !h->n) return 0;  // nothing written; the wrapper raises
  RKC_TRY(cudaMemcpyAsync(h->y, d.y, h->n * sizeof(float), cudaMemcpyDeviceToHost, st.stream()));
  RKC_TRY(cudaStreamSynchronize(st.stream()));
  return 0;
}

extern "C" int rk_cuda_group_advantages(const rk_group_adv_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_group_adv_args d = *h;
  size_t n = h->G * h->K;
  RKC_TRY(st.in(h->scores, n, &d.scores));
  RKC_TRY(st.in(h->baselines, n, &d.baselines));
  RKC_TRY(st.out(h->advantages, n, &d.advantages));
  RKC_RUN_DEV(group_advantages, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_ensemble_rewards(const rk_ensemble_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_ensemble_args d = *h;
  RKC_TRY(st.in(h->scores, h->E * h->B, &d.scores));
  RKC_TRY(st.out(h->rewards, h->B, &d.rewards));
  RKC_RUN_DEV(ensemble_rewards, d);
  RKC_TRY(st.finish());
  return 0;
}

extern "C" int rk_cuda_win_rate_rewards(const rk_win_rate_args* h, char* err, size_t errlen) {
  rkc::Staging st;
  rk_win_rate_args d = *h;
  RKC_TRY(st.in(h->preferences, h->G * h->K * h->K, &d.preferences));
  RKC_TRY(st.out(h->rewards, h->G * h->K, &d.rewards));
  RKC_RUN_DEV(win_rate_rewards, d);
  RKC_TRY(st.finish());
  return 0;
}
