// GPU check and bench of the reward family.
#include "../../cuda/rewards.cuh"
#include "gpu_bench.cuh"

static void check_rewards(rkg::Reporter& r) {
  rkg::Rand g(11);
  char err[512] = {0};
  for (auto [B, T] : {std::pair<size_t, size_t>{1, 1}, {3, 17}, {37, 1031}}) {
    size_t n = B * T;
    auto lp = g.floats(n, -4, 0), rp = g.floats(n, -4, 0), dp = g.floats(n, -4, 0), sc = g.floats(B, -2, 2);
    auto m = g.mask(n, 0.8f);
    std::vector<float> c1(n), c2(n);
    for (int est : {RK_KL_K1, RK_KL_K2, RK_KL_K3, RK_KL_ABS}) {
      rk_kl_penalty_args a{lp.data(), rp.data(), m.data(), RK_MASK_U8, c1.data(), B, T, est, est == RK_KL_K2, 0.5f};
      rk_cpu_kl_penalty(&a);
      a.kl = c2.data();
      r.check.status("klPenalty", rk_cuda_kl_penalty(&a, err, sizeof err), err);
      r.check.close("rewards/klPenalty", c2.data(), c1.data(), n);
      rk_token_rewards_args t{lp.data(), rp.data(), m.data(), RK_MASK_U8, sc.data(), c1.data(), B, T, 0.05f, est, 1, 1.0f};
      rk_cpu_token_rewards(&t);
      t.rewards = c2.data();
      r.check.status("tokenRewards", rk_cuda_token_rewards(&t, err, sizeof err), err);
      r.check.close("rewards/tokenRewards", c2.data(), c1.data(), n);
    }
    rk_rto_rewards_args o{dp.data(), rp.data(), lp.data(), m.data(), RK_MASK_U8, sc.data(), c1.data(), B, T, 0.5f, 0.1f, 1.0f, 1, 0.3f};
    rk_cpu_rto_rewards(&o);
    o.rewards = c2.data();
    r.check.status("rtoRewards", rk_cuda_rto_rewards(&o, err, sizeof err), err);
    r.check.close("rewards/rtoRewards", c2.data(), c1.data(), n);
    rk_implicit_rewards_args im{lp.data(), rp.data(), m.data(), RK_MASK_U8, c1.data(), B, T, 0.1f};
    rk_cpu_implicit_rewards(&im);
    im.rewards = c2.data();
    r.check.status("implicitRewards", rk_cuda_implicit_rewards(&im, err, sizeof err), err);
    r.check.close("rewards/implicitRewards", c2.data(), c1.data(), n);
  }
}

void gpu_bench_rewards(rkg::Reporter& r) {
  check_rewards(r);
  for (auto [B, T] : {std::pair<size_t, size_t>{256, 1024}, {64, 8192}}) {
    size_t n = B * T;
    rkg::Buf<float> logp(n), ref(n), out(n), scores(B);
    rkg::Buf<uint8_t> mask(n);
    rkg::fill_uniform(logp.p, n, -3, 0, 1);
    rkg::fill_uniform(ref.p, n, -3, 0, 2);
    rkg::fill_uniform(scores.p, B, -1, 1, 3);
    rkg::fill_u8(mask.p, n, 1);
    std::string size = std::to_string(B) + "x" + std::to_string(T);
    rk_kl_penalty_args a{logp.p, ref.p, mask.p, RK_MASK_U8, out.p, B, T, RK_KL_K3, 0, 0.f};
    r.add("rewards", "klPenalty(k3)", size, r.time([&] { rk_launch_kl_penalty(a, 0); }), n * 13.0);
    rk_token_rewards_args t{logp.p, ref.p, mask.p, RK_MASK_U8, scores.p, out.p, B, T, 0.05f, RK_KL_K1, 0, 0.f};
    r.add("rewards", "tokenRewards", size, r.time([&] { rk_launch_token_rewards(t, 0); }), n * 13.0 + B * 4.0);
  }
}
