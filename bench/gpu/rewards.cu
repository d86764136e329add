// GPU bench of the reward family: device-resident [B,T] inputs.
#include "../../cuda/rewards.cuh"
#include "gpu_bench.cuh"

void gpu_bench_rewards(rkg::Reporter& r) {
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
