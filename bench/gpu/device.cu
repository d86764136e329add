// GPU checks and timings of device-resident calls (bench/gpu/run.sh; docs/device.md):
//  1. device round trips through the library's memory API (rk_cuda_malloc_async / memcpy /
//     convert_f32 / free_async) for every dtype, and the pool: repeated calls reserve nothing new;
//  2. each family's representative op through its device entry point rk_cuda_<op>_dev on a user
//     stream equals the CPU kernel (the host entry points rk_cuda_<op>, checked for every op by the
//     family files, run the same device entry points on the library stream);
//  3. a table of per-call wall time, host-copied (rk_cuda_<op>: copy in, run, copy back, wait)
//     against device-resident (rk_cuda_<op>_dev + stream sync), at 3 sizes per family.
// Output lines: "check ok|CHECK FAIL device/..." and the rows of "| device-resident |" below.
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "../../src/core/common.hpp"
#include "../../src/include/rlhf_kernels.h"
#include "gpu_bench.cuh"

namespace {

using Clock = std::chrono::steady_clock;

// One pointer field of an args struct: how many bytes, input or output, and how to compare.
template <class A>
struct Field {
  std::function<void*&(A&)> ptr;  // reference to the (const-cast) pointer member
  size_t bytes;
  bool out;
  int kind;  // 0 f32, 1 i32, 2 f64
  const char* name;
};
template <class A, class T>
Field<A> in(const T* A::*m, size_t n, const char* name) {
  return {[m](A& a) -> void*& { return reinterpret_cast<void*&>(const_cast<T*&>(a.*m)); }, n * sizeof(T), false, 0, name};
}
template <class A, class T>
Field<A> in_void(const void* A::*m, size_t bytes, const char* name) {
  return {[m](A& a) -> void*& { return reinterpret_cast<void*&>(const_cast<void*&>(a.*m)); }, bytes, false, 0, name};
}
template <class A, class T>
Field<A> out(T* A::*m, size_t n, int kind, const char* name) {
  return {[m](A& a) -> void*& { return reinterpret_cast<void*&>(a.*m); }, n * sizeof(T), true, kind, name};
}

template <class A>
struct Spec {
  const char* family;
  const char* op;
  std::string size;
  A host;  // inputs point at host data; output pointers are ignored (allocated here)
  std::vector<Field<A>> fields;
  void (*cpu)(const A*);
  int (*cuda)(const A*, char*, size_t);
  int (*dev)(const A*, void*, char*, size_t);
};

double median_us(std::vector<double>& v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Runs one spec: CPU reference, host-copied CUDA, device-resident CUDA on `stream`; checks both
// CUDA results against the CPU one; prints a timing row when `timed`.
template <class A>
void run_spec(rkg::Reporter& r, Spec<A>& s, void* stream, bool timed) {
  char err[512] = {0};
  const size_t nf = s.fields.size();
  std::vector<std::vector<char>> ref(nf), got_host(nf), got_dev(nf);
  // CPU reference
  A c = s.host;
  for (size_t i = 0; i < nf; ++i)
    if (s.fields[i].out) { ref[i].assign(s.fields[i].bytes + 8, 0); s.fields[i].ptr(c) = ref[i].data(); }
  s.cpu(&c);
  // host-copied CUDA
  A h = s.host;
  for (size_t i = 0; i < nf; ++i)
    if (s.fields[i].out) { got_host[i].assign(s.fields[i].bytes + 8, 0); s.fields[i].ptr(h) = got_host[i].data(); }
  r.check.status((std::string("device/") + s.op + " host entry").c_str(), s.cuda(&h, err, sizeof err), err);
  // device-resident
  A d = s.host;
  std::vector<void*> dptr(nf, nullptr);
  for (size_t i = 0; i < nf; ++i) {
    void*& p = s.fields[i].ptr(d);
    if (!s.fields[i].out && !p) continue;  // optional input not given
    RKG_CHECK(rk_cuda_malloc_async(0, s.fields[i].bytes, stream, &dptr[i], err, sizeof err) ? cudaErrorMemoryAllocation : cudaSuccess);
    if (!s.fields[i].out)
      RKG_CHECK(rk_cuda_memcpy(0, dptr[i], p, s.fields[i].bytes, RK_COPY_H2D, stream, 0, err, sizeof err) ? cudaErrorUnknown : cudaSuccess);
    p = dptr[i];
  }
  r.check.status((std::string("device/") + s.op + " device entry").c_str(), s.dev(&d, stream, err, sizeof err), err);
  rk_cuda_stream_synchronize(0, stream, err, sizeof err);
  for (size_t i = 0; i < nf; ++i)
    if (s.fields[i].out) {
      got_dev[i].assign(s.fields[i].bytes + 8, 0);
      rk_cuda_memcpy(0, got_dev[i].data(), dptr[i], s.fields[i].bytes, RK_COPY_D2H, stream, 1, err, sizeof err);
    }
  for (size_t i = 0; i < nf; ++i) {
    if (!s.fields[i].out) continue;
    for (int which = 0; which < 2; ++which) {
      const auto& g = which ? got_dev[i] : got_host[i];
      std::string what = std::string("device/") + s.family + "/" + s.op + " " + s.fields[i].name + (which ? " (device-resident, user stream)" : " (host-copied)");
      size_t n = s.fields[i].bytes;
      if (s.fields[i].kind == 1) {
        r.check.equal_i32(what.c_str(), reinterpret_cast<const int32_t*>(g.data()), reinterpret_cast<const int32_t*>(ref[i].data()), n / 4);
      } else if (s.fields[i].kind == 2) {
        std::vector<float> a(n / 8), b(n / 8);
        for (size_t k = 0; k < n / 8; ++k) {
          a[k] = (float)reinterpret_cast<const double*>(g.data())[k];
          b[k] = (float)reinterpret_cast<const double*>(ref[i].data())[k];
        }
        r.check.close(what.c_str(), a.data(), b.data(), n / 8, 1e-4);
      } else {
        r.check.close(what.c_str(), reinterpret_cast<const float*>(g.data()), reinterpret_cast<const float*>(ref[i].data()), n / 4, 5e-5);
      }
    }
  }
  if (timed) {
    const int reps = r.quick ? 5 : 15;
    std::vector<double> th, td;
    for (int k = 0; k < reps + 1; ++k) {
      auto t0 = Clock::now();
      s.cuda(&h, err, sizeof err);
      auto t1 = Clock::now();
      s.dev(&d, stream, err, sizeof err);
      rk_cuda_stream_synchronize(0, stream, err, sizeof err);
      auto t2 = Clock::now();
      if (k) {  // first pass warms the pool and the staging
        th.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        td.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
      }
    }
    double a = median_us(th), b = median_us(td);
    printf("| device-resident | %-10s | %-22s | %-16s | host-copied %11.1f us | device-resident %10.1f us | %6.1fx |\n", s.family, s.op,
           s.size.c_str(), a, b, a / b);
    fflush(stdout);
  }
  for (void* p : dptr)
    if (p) rk_cuda_free_async(0, p, stream);
  rk_cuda_stream_synchronize(0, stream, err, sizeof err);
}

void round_trips(rkg::Reporter& r, void* stream) {
  char err[512] = {0};
  rkg::Rand g(77);
  for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(4097), size_t(1) << 22}) {
    std::vector<float> x = g.floats(n, -3, 3), y(n + 1, -1.0f);
    std::vector<double> xd(n);
    std::vector<uint16_t> xb(n), xh(n);
    for (size_t i = 0; i < n; ++i) {
      xd[i] = x[i];
      uint32_t u;
      memcpy(&u, &x[i], 4);
      xb[i] = (uint16_t)(u >> 16);
      xh[i] = __half_as_ushort(__float2half(x[i]));
    }
    void *d = nullptr, *o = nullptr;
    int rc = rk_cuda_malloc_async(0, n * 8, stream, &d, err, sizeof err) | rk_cuda_malloc_async(0, n * 4, stream, &o, err, sizeof err);
    r.check.status("device/alloc", rc, err);
    rc = rk_cuda_memcpy(0, d, x.data(), n * 4, RK_COPY_H2D, stream, 0, err, sizeof err) |
         rk_cuda_memcpy(0, y.data(), d, n * 4, RK_COPY_D2H, stream, 1, err, sizeof err);
    r.check.status("device/round trip copies", rc, err);
    r.check.close(("device/round trip f32 n=" + std::to_string(n)).c_str(), y.data(), x.data(), n, 0);
    struct { int dt; const void* src; size_t es; const char* name; } conv[] = {
        {RK_DT_F64, xd.data(), 8, "f64"}, {RK_DT_BF16, xb.data(), 2, "bf16"}, {RK_DT_F16, xh.data(), 2, "f16"}};
    for (auto& cv : conv) {
      std::vector<float> want(n);
      for (size_t i = 0; i < n; ++i)
        want[i] = cv.dt == RK_DT_F64 ? (float)xd[i] : cv.dt == RK_DT_BF16 ? rk::bf16_to_float(xb[i]) : rk::f16_to_float(xh[i]);
      rc = rk_cuda_memcpy(0, d, cv.src, n * cv.es, RK_COPY_H2D, stream, 0, err, sizeof err) |
           rk_cuda_convert_f32(0, d, cv.dt, static_cast<float*>(o), n, stream, err, sizeof err) |
           rk_cuda_memcpy(0, y.data(), o, n * 4, RK_COPY_D2H, stream, 1, err, sizeof err);
      r.check.status("device/convert", rc, err);
      r.check.close((std::string("device/convert ") + cv.name + " → f32 n=" + std::to_string(n)).c_str(), y.data(), want.data(), n, 0);
    }
    rk_cuda_free_async(0, d, stream);
    rk_cuda_free_async(0, o, stream);
  }
  // the pool: after warm-up, repeated allocations of the same sizes reserve nothing new
  rk_cuda_stream_synchronize(0, stream, err, sizeof err);
  auto cycle = [&] {
    for (size_t b : {size_t(100), size_t(1) << 16, size_t(1) << 24}) {
      void* p = nullptr;
      rk_cuda_malloc_async(0, b, stream, &p, err, sizeof err);
      rk_cuda_memset(0, p, 0, b, stream, err, sizeof err);
      rk_cuda_free_async(0, p, stream);
    }
  };
  cycle();
  rk_cuda_stream_synchronize(0, stream, err, sizeof err);
  rk_cuda_memory_stats s0{}, s1{};
  rk_cuda_memory_stats_get(0, &s0, err, sizeof err);
  for (int i = 0; i < 200; ++i) cycle();
  rk_cuda_stream_synchronize(0, stream, err, sizeof err);
  rk_cuda_memory_stats_get(0, &s1, err, sizeof err);
  ++r.check.checks;
  if (s1.reserved_high != s0.reserved_high || s1.reserved != s0.reserved) {
    ++r.check.failures;
    printf("CHECK FAIL device/pool: reserved %zu → %zu (high %zu → %zu) after 600 alloc/free\n", s0.reserved, s1.reserved, s0.reserved_high, s1.reserved_high);
  } else {
    printf("check ok   device/pool: 600 alloc/free cycles reserved nothing new (%zu bytes reserved)\n", s1.reserved);
  }
}

}  // namespace

void gpu_bench_device(rkg::Reporter& r) {
  char err[512] = {0};
  void* stream = nullptr;
  if (rk_cuda_stream_create(0, &stream, err, sizeof err)) {
    ++r.check.checks;
    ++r.check.failures;
    printf("CHECK FAIL device/stream create: %s\n", err);
    return;
  }
  round_trips(r, stream);
  rkg::Rand g(99);
  const bool q = r.quick;
  // (rows, cols) of the three sizes: per-call overhead dominates the first, bandwidth the last
  const size_t BT[3][2] = {{8, 512}, {64, 2048}, {q ? 128u : 512u, 8192}};
  const size_t NV[3][2] = {{16, 32000}, {256, 32000}, {q ? 512u : 2048u, 32000}};
  const size_t PB[3] = {64, 4096, q ? 65536u : 262144u};
  for (int k = 0; k < 3; ++k) {
    const size_t B = BT[k][0], T = BT[k][1], n = B * T;
    const std::string sz = std::to_string(B) + "x" + std::to_string(T);
    std::vector<float> lp = g.floats(n, -2, 0), rl = g.floats(n, -2, 0), adv = g.floats(n, -1, 1), sc = g.floats(B, -1, 1);
    std::vector<uint8_t> m = g.mask(n, 0.8f);
    {  // rewards: klPenalty k3
      Spec<rk_kl_penalty_args> s{"rewards", "klPenalty(k3)", sz, {}, {}, rk_cpu_kl_penalty, rk_cuda_kl_penalty, rk_cuda_kl_penalty_dev};
      s.host.logp = lp.data(); s.host.ref_logp = rl.data(); s.host.mask = m.data(); s.host.mask_kind = RK_MASK_U8;
      s.host.B = B; s.host.T = T; s.host.estimator = RK_KL_K3;
      s.fields = {in(&rk_kl_penalty_args::logp, n, "logp"), in(&rk_kl_penalty_args::ref_logp, n, "refLogp"),
                  in_void<rk_kl_penalty_args, uint8_t>(&rk_kl_penalty_args::mask, n, "mask"), out(&rk_kl_penalty_args::kl, n, 0, "kl")};
      run_spec(r, s, stream, true);
    }
    {  // advantages: gae
      Spec<rk_gae_args> s{"advantages", "gae", sz, {}, {}, rk_cpu_gae, rk_cuda_gae, rk_cuda_gae_dev};
      s.host.rewards = adv.data(); s.host.values = rl.data(); s.host.mask = m.data(); s.host.mask_kind = RK_MASK_U8;
      s.host.B = B; s.host.T = T; s.host.gamma = 0.99f; s.host.lambda = 0.95f;
      s.fields = {in(&rk_gae_args::rewards, n, "rewards"), in(&rk_gae_args::values, n, "values"),
                  in_void<rk_gae_args, uint8_t>(&rk_gae_args::mask, n, "mask"), out(&rk_gae_args::advantages, n, 0, "advantages"),
                  out(&rk_gae_args::returns, n, 0, "returns")};
      run_spec(r, s, stream, true);
    }
    {  // ppo: ppoPolicyLoss (scalar results in f64 device memory)
      Spec<rk_ppo_policy_loss_args> s{"ppo", "ppoPolicyLoss", sz, {}, {}, rk_cpu_ppo_policy_loss, rk_cuda_ppo_policy_loss, rk_cuda_ppo_policy_loss_dev};
      s.host.logp = lp.data(); s.host.old_logp = rl.data(); s.host.advantages = adv.data(); s.host.mask = m.data();
      s.host.mask_kind = RK_MASK_U8; s.host.B = B; s.host.T = T; s.host.clip_low = 0.2f; s.host.clip_high = 0.28f;
      s.host.kl_estimator = RK_KL_NONE; s.host.aggregation = RK_AGG_TOKEN_MEAN;
      s.fields = {in(&rk_ppo_policy_loss_args::logp, n, "logp"), in(&rk_ppo_policy_loss_args::old_logp, n, "oldLogp"),
                  in(&rk_ppo_policy_loss_args::advantages, n, "advantages"),
                  in_void<rk_ppo_policy_loss_args, uint8_t>(&rk_ppo_policy_loss_args::mask, n, "mask"),
                  out(&rk_ppo_policy_loss_args::grad_logp, n, 0, "gradLogp"), out(&rk_ppo_policy_loss_args::result, 3, 2, "loss/clipFraction/approxKl")};
      run_spec(r, s, stream, true);
    }
    {  // prepack: unpack of B sequences of ≤ T/2 tokens from packs of T, D = 64
      const size_t P = (B + 1) / 2, L = T, D = 64, nseq = B, maxLen = T / 2;
      std::vector<float> packed = g.floats(P * L * D, -1, 1);
      std::vector<int32_t> po(nseq), oo(nseq), ln(nseq);
      for (size_t i = 0; i < nseq; ++i) { po[i] = (int32_t)(i / 2); oo[i] = (int32_t)((i % 2) * (T / 2)); ln[i] = (int32_t)(1 + g.next() % maxLen); }
      Spec<rk_unpack_args> s{"prepack", "unpack(D=64)", std::to_string(P) + "x" + std::to_string(L) + "x64", {}, {}, rk_cpu_unpack, rk_cuda_unpack, rk_cuda_unpack_dev};
      s.host.packed = packed.data(); s.host.pack_of = po.data(); s.host.offset_of = oo.data(); s.host.lengths = ln.data();
      s.host.n = nseq; s.host.P = P; s.host.L = L; s.host.D = D; s.host.max_len = maxLen;
      s.fields = {in(&rk_unpack_args::packed, P * L * D, "packed"), in(&rk_unpack_args::pack_of, nseq, "packOf"),
                  in(&rk_unpack_args::offset_of, nseq, "offsetOf"), in(&rk_unpack_args::lengths, nseq, "lengths"),
                  out(&rk_unpack_args::rows, nseq * maxLen * D, 0, "rows")};
      run_spec(r, s, stream, true);
    }
  }
  for (int k = 0; k < 3; ++k) {
    const size_t N = NV[k][0], V = NV[k][1], nv = N * V;
    const std::string sz = std::to_string(N) + "x" + std::to_string(V);
    std::vector<float> z = g.floats(nv, -6, 6), zr = g.floats(nv, -6, 6);
    std::vector<int32_t> lab = g.ints(N, (int32_t)V);
    {  // logprobs (with entropy)
      Spec<rk_logprobs_args> s{"logprobs", "logprobs(+entropy)", sz, {}, {}, rk_cpu_logprobs, rk_cuda_logprobs, rk_cuda_logprobs_dev};
      s.host.logits = z.data(); s.host.dtype = RK_DT_F32; s.host.labels = lab.data(); s.host.N = N; s.host.V = V;
      s.host.temperature = 1.0f; s.host.ignore_index = -100;
      s.fields = {in_void<rk_logprobs_args, float>(&rk_logprobs_args::logits, nv * 4, "logits"), in(&rk_logprobs_args::labels, N, "labels"),
                  out(&rk_logprobs_args::logp, N, 0, "logp"), out(&rk_logprobs_args::lse, N, 0, "lse"), out(&rk_logprobs_args::entropy, N, 0, "entropy")};
      run_spec(r, s, stream, true);
    }
    {  // sampling: geometricMixture
      Spec<rk_geometric_mixture_args> s{"sampling", "geometricMixture", sz, {}, {}, rk_cpu_geometric_mixture, rk_cuda_geometric_mixture, rk_cuda_geometric_mixture_dev};
      s.host.logits = z.data(); s.host.logits_dtype = RK_DT_F32; s.host.ref_logits = zr.data(); s.host.ref_dtype = RK_DT_F32;
      s.host.N = N; s.host.V = V; s.host.beta = 0.25f;
      s.fields = {in_void<rk_geometric_mixture_args, float>(&rk_geometric_mixture_args::logits, nv * 4, "logits"),
                  in_void<rk_geometric_mixture_args, float>(&rk_geometric_mixture_args::ref_logits, nv * 4, "refLogits"),
                  out(&rk_geometric_mixture_args::logp, nv, 0, "logp")};
      run_spec(r, s, stream, true);
    }
  }
  for (int k = 0; k < 3; ++k) {  // preference: preferenceLoss dpo on B examples
    const size_t B = PB[k];
    std::vector<float> pc = g.floats(B, -60, -20), pr = g.floats(B, -60, -20), rc = g.floats(B, -60, -20), rr = g.floats(B, -60, -20);
    Spec<rk_preference_loss_args> s{"preference", "preferenceLoss(dpo)", std::to_string(B), {}, {}, rk_cpu_preference_loss, rk_cuda_preference_loss, rk_cuda_preference_loss_dev};
    s.host.B = B; s.host.type = RK_PREF_DPO; s.host.p.beta = 0.1f;
    s.host.policy_chosen = pc.data(); s.host.policy_rejected = pr.data(); s.host.ref_chosen = rc.data(); s.host.ref_rejected = rr.data();
    using P = rk_preference_loss_args;
    s.fields = {in(&P::policy_chosen, B, "policyChosen"), in(&P::policy_rejected, B, "policyRejected"), in(&P::ref_chosen, B, "refChosen"),
                in(&P::ref_rejected, B, "refRejected"), out(&P::losses, B, 0, "losses"), out(&P::grad_policy_chosen, B, 0, "gradPolicyChosen"),
                out(&P::grad_policy_rejected, B, 0, "gradPolicyRejected"), out(&P::chosen_rewards, B, 0, "chosenRewards"),
                out(&P::rejected_rewards, B, 0, "rejectedRewards"), out(&P::margins, B, 0, "margins"), out(&P::scalars, 2, 2, "loss/accuracy")};
    run_spec(r, s, stream, true);
  }
  rk_cuda_stream_synchronize(0, stream, err, sizeof err);
  rk_cuda_stream_destroy(0, stream);
}
