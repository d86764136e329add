// GPU check and bench of the preference family: CUDA entry points vs the CPU kernels on random
// inputs (every preferenceLoss type, listwise, apo, fused), then device-resident timings at the
// issue's sizes: preferenceLoss at B = 64 and 65536, fusedPreferenceLoss at 2B = 16, T = 512,
// V = 32000 against the un-fused composition of launchers.
#include "../../cuda/logprobs.cuh"
#include "../../cuda/preference.cuh"
#include <tuple>

#include "gpu_bench.cuh"

// Types with a third gradient (gradChosenNll of rpo/orpo, gradPolicyExplore of xpo).
static bool has_extra(int type) { return type == RK_PREF_RPO || type == RK_PREF_XPO || type == RK_PREF_ORPO; }

static void fill_pref(rk_preference_loss_args& a, int type, std::vector<std::vector<float>>& in, std::vector<std::vector<float>>& out,
                      size_t B, rkg::Rand& g) {
  in.assign(11, {});
  for (int k = 0; k < 4; ++k) in[k] = g.floats(B, -40, -5);
  in[4] = g.floats(B, 1, 50);   // lengths
  in[5] = g.floats(B, 1, 50);
  in[6] = g.floats(B, 0, 30);   // nll / explore
  in[7] = g.floats(B, -40, -5); // prev
  in[8] = g.floats(B, -40, -5);
  in[9] = g.floats(B, 0, 1);    // prob
  if (type == RK_PREF_ORPO || type == RK_PREF_SIMPO) { in[0] = g.floats(B, -3, -0.01f); in[1] = g.floats(B, -3, -0.01f); }
  out.assign(7, std::vector<float>(B));
  a = {};
  a.B = B;
  a.type = type;
  a.length_normalize = type == RK_PREF_IPO && (B % 2);
  a.p = {0.2f, 0.2f, 0.5f, 0.01f, 0.1f, 0.5f};
  a.policy_chosen = in[0].data(); a.policy_rejected = in[1].data(); a.ref_chosen = in[2].data(); a.ref_rejected = in[3].data();
  a.chosen_length = in[4].data(); a.rejected_length = in[5].data(); a.chosen_nll = in[6].data(); a.policy_explore = in[6].data();
  a.prev_chosen = in[7].data(); a.prev_rejected = in[8].data(); a.preference_prob = in[9].data();
  a.losses = out[0].data(); a.grad_policy_chosen = out[1].data(); a.grad_policy_rejected = out[2].data();
  a.chosen_rewards = out[3].data(); a.rejected_rewards = out[4].data(); a.margins = out[5].data();
  a.grad_extra = has_extra(type) ? out[6].data() : nullptr;  // the C ABI: NULL for the other types
}

static void check_preference(rkg::Reporter& r) {
  rkg::Rand g(23);
  char err[512] = {0};
  for (size_t B : {1, 7, 1000, 70001}) {
    for (int type = 0; type < RK_PREF_NTYPES; ++type) {
      rk_preference_loss_args a;
      std::vector<std::vector<float>> in, o1, o2;
      fill_pref(a, type, in, o1, B, g);
      double s1[2], s2[2];
      a.scalars = s1;
      rk_cpu_preference_loss(&a);
      rk_preference_loss_args c = a;
      o2.assign(7, std::vector<float>(B));
      c.losses = o2[0].data(); c.grad_policy_chosen = o2[1].data(); c.grad_policy_rejected = o2[2].data();
      c.chosen_rewards = o2[3].data(); c.rejected_rewards = o2[4].data(); c.margins = o2[5].data();
      c.grad_extra = has_extra(type) ? o2[6].data() : nullptr;
      c.scalars = s2;
      r.check.status("preferenceLoss", rk_cuda_preference_loss(&c, err, sizeof err), err);
      std::string what = "preference/loss type " + std::to_string(type) + " B=" + std::to_string(B);
      for (int k = 0; k < (has_extra(type) ? 7 : 6); ++k) r.check.close((what + " out" + std::to_string(k)).c_str(), o2[k].data(), o1[k].data(), B, 1e-4);
      float l1[2] = {(float)s1[0], (float)s1[1]}, l2[2] = {(float)s2[0], (float)s2[1]};
      r.check.close((what + " loss,acc").c_str(), l2, l1, 2, 1e-5);
    }
  }
  for (auto [B, K] : {std::pair<size_t, size_t>{1, 1}, {5, 4}, {300, 9}, {3, 100}}) {
    for (int type : {RK_LIST_LIPO, RK_LIST_PRO, RK_LIST_PL}) {
      size_t n = B * K;
      auto pol = g.floats(n, -40, -5), ref = g.floats(n, -40, -5), len = g.floats(n, 1, 40);
      auto lab = g.floats(n, 0, 4);
      if (type == RK_LIST_LIPO) for (auto& x : lab) x = std::floor(x);
      std::vector<float> l1(B), l2(B), g1(n), g2(n);
      double s1[2], s2[2];
      rk_listwise_loss_args a{B, K, type, 0.5f, 0.1f, pol.data(), ref.data(), lab.data(), len.data(), l1.data(), g1.data(), s1};
      rk_cpu_listwise_loss(&a);
      rk_listwise_loss_args c = a;
      c.losses = l2.data(); c.grad_policy = g2.data(); c.scalars = s2;
      r.check.status("listwiseLoss", rk_cuda_listwise_loss(&c, err, sizeof err), err);
      std::string what = "preference/listwise type " + std::to_string(type) + " " + std::to_string(B) + "x" + std::to_string(K);
      r.check.close((what + " losses").c_str(), l2.data(), l1.data(), B, 1e-4);
      r.check.close((what + " grad").c_str(), g2.data(), g1.data(), n, 1e-4);
    }
  }
  {
    size_t n = 100003;
    auto cur = g.floats(n, -40, -5), prev = g.floats(n, -40, -5);
    std::vector<float> o1(n), o2(n);
    rk_apo_reference_args a{cur.data(), prev.data(), o1.data(), n, 0.3f};
    rk_cpu_apo_reference(&a);
    a.reference = o2.data();
    r.check.status("apoReference", rk_cuda_apo_reference(&a, err, sizeof err), err);
    r.check.close("preference/apoReference", o2.data(), o1.data(), n, 1e-6);
  }
  for (auto [B, T, V] : {std::tuple<size_t, size_t, size_t>{1, 1, 5}, {2, 33, 1031}, {3, 17, 32000}}) {
    for (int type = 0; type < RK_PREF_NTYPES; ++type) {
      size_t R = 2 * B, N = R * T;
      auto lg = g.floats(N * V, -4, 4);
      auto lab = g.ints(N, (int32_t)V);
      auto m = g.mask(N, 0.8f);
      for (size_t rr = 0; rr < R; ++rr) m[rr * T] = 1;
      for (size_t i = 0; i < N; i += 5) lab[i] = m[i] ? lab[i] : -100;
      auto ref = g.floats(R, -60, -10), prev = g.floats(R, -60, -10), ex = g.floats(B, -40, -5), prob = g.floats(B, 0, 1);
      std::vector<float> gl1(N * V), gl2(N * V);
      std::vector<std::vector<float>> o1(7, std::vector<float>(B)), o2(7, std::vector<float>(B));
      double s1[2], s2[2];
      rk_fused_preference_args a{};
      a.logits = lg.data(); a.dtype = RK_DT_F32; a.labels = lab.data(); a.mask = m.data(); a.mask_kind = RK_MASK_U8;
      a.B = B; a.T = T; a.V = V; a.temperature = 1.0f; a.ignore_index = -100;
      a.ref_logp = ref.data(); a.prev_logp = prev.data(); a.policy_explore = ex.data(); a.preference_prob = prob.data();
      a.type = type; a.length_normalize = type == RK_PREF_IPO; a.p = {0.1f, 0.2f, 0.5f, 0.01f, 0.1f, 0.5f};
      auto set = [&](rk_fused_preference_args& x, std::vector<std::vector<float>>& o, std::vector<float>& gl, double* s) {
        x.grad_logits = gl.data(); x.losses = o[0].data(); x.grad_policy_chosen = o[1].data(); x.grad_policy_rejected = o[2].data();
        x.chosen_rewards = o[3].data(); x.rejected_rewards = o[4].data(); x.margins = o[5].data();
        x.grad_extra = type == RK_PREF_XPO ? o[6].data() : nullptr; x.scalars = s;
      };
      set(a, o1, gl1, s1);
      rk_cpu_fused_preference_loss(&a);
      rk_fused_preference_args c = a;
      set(c, o2, gl2, s2);
      r.check.status("fusedPreferenceLoss", rk_cuda_fused_preference_loss(&c, err, sizeof err), err);
      std::string what = "preference/fused type " + std::to_string(type) + " " + std::to_string(B) + "x" + std::to_string(T) + "x" + std::to_string(V);
      for (int k = 0; k < 6; ++k) r.check.close((what + " out" + std::to_string(k)).c_str(), o2[k].data(), o1[k].data(), B, 1e-4);
      r.check.close((what + " gradLogits").c_str(), gl2.data(), gl1.data(), N * V, 1e-4);
    }
  }
}

void gpu_bench_preference(rkg::Reporter& r) {
  check_preference(r);
  for (size_t B : {64, 65536}) {
    rkg::Buf<float> pc(B), pr(B), rc(B), rr(B), lo(B), gc(B), gr(B), cr(B), rj(B), mg(B);
    rkg::Buf<double> sc(2);
    rkg::fill_uniform(pc.p, B, -60, -40, 1);
    rkg::fill_uniform(pr.p, B, -60, -40, 2);
    rkg::fill_uniform(rc.p, B, -60, -40, 3);
    rkg::fill_uniform(rr.p, B, -60, -40, 4);
    rk_preference_loss_args a{};
    a.B = B; a.type = RK_PREF_DPO; a.p.beta = 0.1f;
    a.policy_chosen = pc.p; a.policy_rejected = pr.p; a.ref_chosen = rc.p; a.ref_rejected = rr.p;
    a.losses = lo.p; a.grad_policy_chosen = gc.p; a.grad_policy_rejected = gr.p; a.chosen_rewards = cr.p; a.rejected_rewards = rj.p;
    a.margins = mg.p; a.scalars = sc.p;
    r.add("preference", "preferenceLoss(dpo)", "B=" + std::to_string(B), r.time([&] { rk_launch_preference_loss(a, 0); }), B * 40.0);
  }
  {
    const size_t B = 8, T = 512, V = 32000, R = 16, N = R * T;
    rkg::Buf<float> logits(N * V), grad(N * V), ref(R), lo(B), gc(B), gr(B), cr(B), rj(B), mg(B), logp(N), lse(N), glogp(N), sum(R);
    rkg::Buf<uint16_t> lbf(N * V);
    rkg::Buf<int32_t> lab(N), cnt(R);
    rkg::Buf<uint8_t> mask(N);
    rkg::Buf<double> sc(2);
    rkg::fill_uniform(logits.p, N * V, -4, 4, 5);
    rkg::fill_bf16(lbf.p, N * V, -4, 4, 6);
    rkg::fill_int(lab.p, N, (int32_t)V, 7);
    rkg::fill_u8(mask.p, N, 1);
    rkg::fill_uniform(ref.p, R, -5000, -4000, 8);
    std::string size = "16x512x32000";
    for (int dt : {RK_DT_F32, RK_DT_BF16}) {
      rk_fused_preference_args a{};
      a.logits = dt == RK_DT_F32 ? (const void*)logits.p : (const void*)lbf.p; a.dtype = dt; a.labels = lab.p; a.mask = mask.p;
      a.mask_kind = RK_MASK_U8; a.B = B; a.T = T; a.V = V; a.temperature = 1.0f; a.ignore_index = -100; a.ref_logp = ref.p;
      a.type = RK_PREF_DPO; a.p.beta = 0.1f; a.grad_logits = grad.p; a.losses = lo.p; a.grad_policy_chosen = gc.p;
      a.grad_policy_rejected = gr.p; a.chosen_rewards = cr.p; a.rejected_rewards = rj.p; a.margins = mg.p; a.scalars = sc.p;
      double bytes = N * V * ((dt == RK_DT_F32 ? 4.0 : 2.0) * 2 + 4.0);
      const char* tag = dt == RK_DT_F32 ? "f32" : "bf16";
      r.add("preference", (std::string("fusedPreferenceLoss(dpo) ") + tag).c_str(), size,
            r.time([&] { rk_launch_fused_preference_loss(a, 0); }, 10), bytes);
      // the un-fused composition of launchers: logprobs → sequenceLogprobs → preferenceLoss → backward
      rk_logprobs_args f{a.logits, dt, lab.p, N, V, 1.0f, -100, logp.p, lse.p, nullptr};
      rk_sequence_logprobs_args q{logp.p, mask.p, RK_MASK_U8, R, T, 0, sum.p, cnt.p};
      rk_preference_loss_args p{};
      p.B = B; p.type = RK_PREF_DPO; p.p.beta = 0.1f; p.policy_chosen = sum.p; p.policy_rejected = sum.p + B; p.ref_chosen = ref.p;
      p.ref_rejected = ref.p + B; p.losses = lo.p; p.grad_policy_chosen = gc.p; p.grad_policy_rejected = gr.p; p.chosen_rewards = cr.p;
      p.rejected_rewards = rj.p; p.margins = mg.p; p.scalars = sc.p;
      rk_logprobs_backward_args bw{a.logits, dt, lab.p, N, V, glogp.p, nullptr, lse.p, 1.0f, -100, grad.p};
      r.add("preference", (std::string("unfused composition ") + tag).c_str(), size, r.time([&] {
        rk_launch_logprobs(f, 0);
        rk_launch_sequence_logprobs(q, 0);
        rk_launch_preference_loss(p, 0);
        // (spreading dSeq over the tokens is one more tiny kernel in a real composition)
        rk_launch_logprobs_backward(bw, 0);
      }, 10), bytes);
    }
  }
}
