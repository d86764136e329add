// GPU check and bench of the advantages family: CUDA entry points vs the CPU kernels on random
// inputs (masks with holes, empty rows, rows longer than one 2048-position chunk), then timings on
// device-resident inputs at the issue's sizes.
#include "../../cuda/advantages.cuh"
#include "gpu_bench.cuh"

static void check_advantages(rkg::Reporter& r) {
  rkg::Rand g(23);
  char err[512] = {0};
  for (auto [B, T] : {std::pair<size_t, size_t>{1, 1}, {3, 17}, {37, 1031}, {5, 5000}, {2, 20000}}) {
    size_t n = B * T;
    auto rew = g.floats(n, -1, 1), val = g.floats(n, -1, 1), lv = g.floats(B, -1, 1);
    auto m = g.mask(n, 0.8f);
    for (size_t t = 0; t < T; ++t) m[(B > 1 ? 1 : 0) * T + t] = B > 1 ? 0 : m[t];  // an empty row
    if (T > 4096) for (size_t t = T - 2100; t < T; ++t) m[t] = 0;  // row 0 ends in a fully masked chunk
    std::vector<float> mf(n);
    for (size_t i = 0; i < n; ++i) mf[i] = m[i] ? 1.0f : 0.0f;
    std::vector<float> a1(n), r1(n), a2(n), r2(n);
    for (int kind : {RK_MASK_U8, RK_MASK_F32}) {
      const void* mp = kind == RK_MASK_U8 ? (const void*)m.data() : (const void*)mf.data();
      for (auto [gamma, lambda] : {std::pair<float, float>{0.99f, 0.95f}, {1.0f, 1.0f}}) {
        rk_gae_args a{rew.data(), val.data(), mp, kind, lv.data(), a1.data(), r1.data(), B, T, gamma, lambda};
        rk_cpu_gae(&a);
        a.advantages = a2.data();
        a.returns = r2.data();
        r.check.status("gae", rk_cuda_gae(&a, err, sizeof err), err);
        r.check.close("advantages/gae adv", a2.data(), a1.data(), n, 1e-4);
        r.check.close("advantages/gae returns", r2.data(), r1.data(), n, 1e-4);
        rk_gae_args d{rew.data(), nullptr, mp, kind, nullptr, a1.data(), nullptr, B, T, gamma, 1.0f};
        rk_cpu_gae(&d);
        d.advantages = a2.data();
        r.check.status("discountedReturns", rk_cuda_gae(&d, err, sizeof err), err);
        r.check.close("advantages/discountedReturns", a2.data(), a1.data(), n, 1e-4);
      }
      if (n >= 2) {
        double s1[3], s2[3];
        auto big = g.floats(n, 999, 1001);
        rk_whiten_args w{big.data(), mp, kind, a1.data(), n, 1, 1e-8f, s1};
        rk_cpu_whiten(&w);
        w.y = a2.data();
        w.stats = s2;
        r.check.status("whiten", rk_cuda_whiten(&w, err, sizeof err), err);
        if (s1[0] != s2[0]) { ++r.check.failures; printf("CHECK FAIL whiten count %g vs %g\n", s2[0], s1[0]); }
        if (s1[0] >= 2) r.check.close("advantages/whiten", a2.data(), a1.data(), n, 1e-4);
      }
    }
  }
  for (auto [G, K] : {std::pair<size_t, size_t>{1, 1}, {7, 3}, {300, 8}, {5, 1000}}) {
    size_t n = G * K;
    auto s = g.floats(n, -2, 2), b = g.floats(n, -2, 2);
    std::vector<float> o1(n), o2(n);
    for (int method : {RK_GROUP_GRPO, RK_GROUP_DRGRPO, RK_GROUP_RLOO, RK_GROUP_REMAX}) {
      if (method == RK_GROUP_RLOO && K < 2) continue;
      rk_group_adv_args a{s.data(), b.data(), o1.data(), G, K, method, 1e-6f};
      rk_cpu_group_advantages(&a);
      a.advantages = o2.data();
      r.check.status("groupAdvantages", rk_cuda_group_advantages(&a, err, sizeof err), err);
      r.check.close("advantages/groupAdvantages", o2.data(), o1.data(), n, 5e-5);
    }
    std::vector<float> p = g.floats(n * K, 0, 1), w1(n), w2(n);
    rk_win_rate_args w{p.data(), w1.data(), G, K};
    rk_cpu_win_rate_rewards(&w);
    w.rewards = w2.data();
    r.check.status("winRateRewards", rk_cuda_win_rate_rewards(&w, err, sizeof err), err);
    r.check.close("advantages/winRateRewards", w2.data(), w1.data(), n);
  }
  for (auto [E, B] : {std::pair<size_t, size_t>{1, 5}, {4, 1000}, {9, 777}}) {
    auto s = g.floats(E * B, -2, 2);
    std::vector<float> o1(B), o2(B);
    for (int method : {RK_ENSEMBLE_MEAN, RK_ENSEMBLE_MIN, RK_ENSEMBLE_UWO}) {
      rk_ensemble_args a{s.data(), o1.data(), E, B, method, 0.5f, E > 1};
      rk_cpu_ensemble_rewards(&a);
      a.rewards = o2.data();
      r.check.status("ensembleRewards", rk_cuda_ensemble_rewards(&a, err, sizeof err), err);
      r.check.close("advantages/ensembleRewards", o2.data(), o1.data(), B);
    }
  }
}

void gpu_bench_advantages(rkg::Reporter& r) {
  check_advantages(r);
  for (auto [B, T] : {std::pair<size_t, size_t>{256, 1024}, {64, 8192}}) {
    size_t n = B * T;
    rkg::Buf<float> rew(n), val(n), adv(n), ret(n), lv(B), y(n);
    rkg::Buf<uint8_t> mask(n);
    rkg::Buf<double> stats(3), scratch(rk_whiten_scratch_doubles(n));
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
