// GPU bench of the ppo family: device-resident [B,T] inputs, the launchers of cuda/ppo.cuh.
#include "../../cuda/ppo.cuh"
#include "gpu_bench.cuh"

void gpu_bench_ppo(rkg::Reporter& r) {
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
