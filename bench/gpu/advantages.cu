// GPU bench of the advantages family: device-resident inputs at the issue's sizes.
#include "../../cuda/advantages.cuh"
#include "gpu_bench.cuh"

void gpu_bench_advantages(rkg::Reporter& r) {
  for (auto [B, T] : {std::pair<size_t, size_t>{256, 1024}, {64, 8192}}) {
    size_t n = B * T;
    rkg::Buf<float> rew(n), val(n), adv(n), ret(n), lv(B), y(n);
    rkg::Buf<uint8_t> mask(n);
    rkg::Buf<double> stats(3), scratch(rk_whiten_scratch_doubles());
    rkg::fill_uniform(rew.p, n, -1, 1, 1);
    rkg::fill_uniform(val.p, n, -1, 1, 2);
    rkg::fill_uniform(lv.p, B, -1, 1, 3);
    rkg::fill_u8(mask.p, n, 1);
    std::string size = std::to_string(B) + "x" + std::to_string(T);
    rk_gae_args g{rew.p, val.p, mask.p, RK_MASK_U8, lv.p, adv.p, ret.p, B, T, 0.99f, 0.95f};
    r.add("advantages", "gae", size, r.time([&] { rk_launch_gae(g, 0); }), n * 17.0 + B * 4.0);
    rk_gae_args d{rew.p, nullptr, mask.p, RK_MASK_U8, nullptr, adv.p, nullptr, B, T, 0.99f, 1.0f};
    r.add("advantages", "discountedReturns", size, r.time([&] { rk_launch_gae(d, 0); }), n * 9.0);
    rk_whiten_args w{val.p, mask.p, RK_MASK_U8, y.p, n, 1, 1e-8f, stats.p};
    r.add("advantages", "whiten", size, r.time([&] { rk_launch_whiten(w, scratch.p, 0); }), n * 9.0);
  }
  {
    size_t n = 65536, K = 8, G = n / K;
    rkg::Buf<float> s(n), b(n), o(n);
    rkg::fill_uniform(s.p, n, -1, 1, 4);
    rkg::fill_uniform(b.p, n, -1, 1, 5);
    rk_group_adv_args a{s.p, b.p, o.p, G, K, RK_GROUP_GRPO, 1e-6f};
    r.add("advantages", "groupAdvantages(grpo)", "8192x8", r.time([&] { rk_launch_group_advantages(a, 0); }), n * 8.0);
  }
  {
    size_t E = 4, B = 65536;
    rkg::Buf<float> s(E * B), o(B);
    rkg::fill_uniform(s.p, E * B, -1, 1, 6);
    rk_ensemble_args a{s.p, o.p, E, B, RK_ENSEMBLE_UWO, 0.5f, 0};
    r.add("advantages", "ensembleRewards(uwo)", "4x65536", r.time([&] { rk_launch_ensemble_rewards(a, 0); }), (E + 1) * B * 4.0);
  }
  {
    size_t G = 4096, K = 8;
    rkg::Buf<float> p(G * K * K), o(G * K);
    rkg::fill_uniform(p.p, G * K * K, 0, 1, 7);
    rk_win_rate_args a{p.p, o.p, G, K};
    r.add("advantages", "winRateRewards", "4096x8x8", r.time([&] { rk_launch_win_rate_rewards(a, 0); }), (G * K * K + G * K) * 4.0);
  }
}
