// GPU check and bench of the ppo family: CUDA entry points vs the CPU kernels on random inputs
// (every estimator, aggregation, mask kind, dual-clip and normalizer on/off; and run-to-run
// bitwise determinism), then device-resident timings of the launchers of cuda/ppo.cuh.
#include <cstring>

#include "../../cuda/ppo.cuh"
#include "gpu_bench.cuh"

static void check_scalars(rkg::Reporter& r, const char* what, const double* got, const double* want, int n) {
  float g[3], w[3];
  for (int i = 0; i < n; ++i) { g[i] = (float)got[i]; w[i] = (float)want[i]; }
  r.check.close(what, g, w, (size_t)n, 2e-5);
}

static void check_ppo(rkg::Reporter& r) {
  rkg::Rand g(23);
  char err[512] = {0};
  for (auto [B, T] : {std::pair<size_t, size_t>{1, 1}, {3, 17}, {37, 1031}, {5, 5000}}) {
    size_t n = B * T;
    auto lp = g.floats(n, -3, 0), adv = g.floats(n, -2, 2), rp = g.floats(n, -3, 0);
    std::vector<float> op(n);
    for (size_t i = 0; i < n; ++i) op[i] = lp[i] + g.uniform(-0.6f, 0.6f);
    auto m8 = g.mask(n, 0.8f);
    if (B > 2) for (size_t t = 0; t < T; ++t) m8[T + t] = 0;  // an empty row
    std::vector<float> mf(n);
    for (size_t i = 0; i < n; ++i) mf[i] = m8[i];
    std::vector<float> g1(n), g2(n), g3(n);
    double r1[3], r2[3], r3[3];
    for (int est : {RK_KL_NONE, RK_KL_K1, RK_KL_K2, RK_KL_K3, RK_KL_ABS}) {
      for (int agg : {RK_AGG_TOKEN_MEAN, RK_AGG_SEQ_MEAN_TOKEN_SUM, RK_AGG_SEQ_MEAN_TOKEN_MEAN}) {
        for (int mk : {RK_MASK_U8, RK_MASK_F32, RK_MASK_NONE}) {
          rk_ppo_policy_loss_args a{};
          a.logp = lp.data(); a.old_logp = op.data(); a.advantages = adv.data(); a.ref_logp = rp.data();
          a.mask = mk == RK_MASK_U8 ? (const void*)m8.data() : mk == RK_MASK_F32 ? (const void*)mf.data() : nullptr;
          a.mask_kind = mk; a.grad_logp = g1.data(); a.result = r1; a.B = B; a.T = T;
          a.clip_low = 0.2f; a.clip_high = 0.28f; a.has_dual_clip = est != RK_KL_K1; a.dual_clip = 3.0f;
          a.kl_coef = est == RK_KL_NONE ? 0.0f : 0.1f; a.kl_estimator = est; a.aggregation = agg;
          a.has_normalizer = est == RK_KL_K2; a.normalizer = 1000.0;
          rk_cpu_ppo_policy_loss(&a);
          a.grad_logp = g2.data(); a.result = r2;
          r.check.status("ppoPolicyLoss", rk_cuda_ppo_policy_loss(&a, err, sizeof err), err);
          r.check.close("ppo/ppoPolicyLoss grad", g2.data(), g1.data(), n);
          check_scalars(r, "ppo/ppoPolicyLoss loss,clipFrac,approxKl", r2, r1, 3);
          if (est == RK_KL_K3 && mk == RK_MASK_U8) {  // deterministic run to run
            a.grad_logp = g3.data(); a.result = r3;
            r.check.status("ppoPolicyLoss", rk_cuda_ppo_policy_loss(&a, err, sizeof err), err);
            r.check.equal_i32("ppo/ppoPolicyLoss rerun bitwise grad", (const int32_t*)g3.data(), (const int32_t*)g2.data(), n);
            r.check.equal_i32("ppo/ppoPolicyLoss rerun bitwise scalars", (const int32_t*)r3, (const int32_t*)r2, 6);
          }
        }
      }
    }
    for (int agg : {RK_AGG_TOKEN_MEAN, RK_AGG_SEQ_MEAN_TOKEN_SUM, RK_AGG_SEQ_MEAN_TOKEN_MEAN}) {
      rk_value_loss_args v{};
      v.values = lp.data(); v.old_values = op.data(); v.returns = rp.data(); v.mask = m8.data(); v.mask_kind = RK_MASK_U8;
      v.grad_values = g1.data(); v.result = r1; v.B = B; v.T = T; v.clip = 0.2f; v.aggregation = agg;
      v.has_normalizer = agg == RK_AGG_SEQ_MEAN_TOKEN_SUM; v.normalizer = 7.0;
      rk_cpu_value_loss(&v);
      v.grad_values = g2.data(); v.result = r2;
      r.check.status("valueLoss", rk_cuda_value_loss(&v, err, sizeof err), err);
      r.check.close("ppo/valueLoss grad", g2.data(), g1.data(), n);
      check_scalars(r, "ppo/valueLoss loss,clipFrac", r2, r1, 2);
    }
  }
  for (size_t B : {1, 7, 3000}) {
    auto l1 = g.floats(B, -30, -10), l2 = g.floats(B, -30, -10), rw1 = g.floats(B, -1, 1), rw2 = g.floats(B, -1, 1);
    std::vector<float> o1(B), o2(B), a1(B), a2(B), b1(B), b2(B);
    for (size_t i = 0; i < B; ++i) { o1[i] = l1[i] + g.uniform(-0.4f, 0.4f); o2[i] = l2[i] + g.uniform(-0.4f, 0.4f); }
    double r1[2], r2[2];
    for (int var : {RK_P3O_SEPARATE, RK_P3O_JOINT}) {
      rk_p3o_loss_args p{l1.data(), l2.data(), o1.data(), o2.data(), rw1.data(), rw2.data(), a1.data(), a2.data(), r1, B, var,
                         0.2f, 0.2f, 0, 0.0};
      rk_cpu_p3o_loss(&p);
      p.grad_logp1 = b1.data(); p.grad_logp2 = b2.data(); p.result = r2;
      r.check.status("p3oLoss", rk_cuda_p3o_loss(&p, err, sizeof err), err);
      r.check.close("ppo/p3oLoss grad1", b1.data(), a1.data(), B);
      r.check.close("ppo/p3oLoss grad2", b2.data(), a2.data(), B);
      check_scalars(r, "ppo/p3oLoss loss,clipFrac", r2, r1, 2);
    }
  }
}

void gpu_bench_ppo(rkg::Reporter& r) {
  check_ppo(r);
  for (auto [B, T] : {std::pair<size_t, size_t>{256, 1024}, {64, 8192}}) {
    size_t n = B * T;
    rkg::Buf<float> logp(n), old(n), adv(n), ref(n), grad(n);
    rkg::Buf<uint8_t> mask(n);
    rkg::Buf<double> result(4);
    rkg::Buf<char> ws(rk_ppo_workspace_bytes(B, T));
    rkg::fill_uniform(logp.p, n, -3, 0, 1);
    rkg::fill_uniform(old.p, n, -3, 0, 2);
    rkg::fill_uniform(adv.p, n, -1, 1, 3);
    rkg::fill_uniform(ref.p, n, -3, 0, 4);
    rkg::fill_u8(mask.p, n, 1);
    std::string size = std::to_string(B) + "x" + std::to_string(T);
    rk_ppo_policy_loss_args a{};
    a.logp = logp.p; a.old_logp = old.p; a.advantages = adv.p; a.ref_logp = ref.p;
    a.mask = mask.p; a.mask_kind = RK_MASK_U8; a.grad_logp = grad.p; a.result = result.p;
    a.B = B; a.T = T; a.clip_low = 0.2f; a.clip_high = 0.28f; a.has_dual_clip = 1; a.dual_clip = 3.0f;
    a.kl_coef = 0; a.kl_estimator = RK_KL_NONE; a.aggregation = RK_AGG_TOKEN_MEAN; a.workspace = ws.p;
    // bytes: logp, oldLogp, advantages read (12), mask (1), gradLogp written (4)
    r.add("ppo", "ppoPolicyLoss", size, r.time([&] { rk_launch_ppo_policy_loss(a, 0); }), n * 17.0);
    rk_ppo_policy_loss_args k = a;
    k.kl_coef = 0.05f; k.kl_estimator = RK_KL_K3; k.aggregation = RK_AGG_SEQ_MEAN_TOKEN_MEAN;
    r.add("ppo", "ppoPolicyLoss(k3,seq-mean)", size, r.time([&] { rk_launch_ppo_policy_loss(k, 0); }), n * 21.0);
    rk_value_loss_args v{};
    v.values = logp.p; v.old_values = old.p; v.returns = adv.p; v.mask = mask.p; v.mask_kind = RK_MASK_U8;
    v.grad_values = grad.p; v.result = result.p; v.B = B; v.T = T; v.clip = 0.2f; v.aggregation = RK_AGG_TOKEN_MEAN;
    v.workspace = ws.p;
    r.add("ppo", "valueLoss", size, r.time([&] { rk_launch_value_loss(v, 0); }), n * 17.0);
  }
}
