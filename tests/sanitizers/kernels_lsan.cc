// LeakSanitizer (+ ASan + UBSan) driver for the CPU kernels, without Node: LSan under node reports
// node's own allocations (and a suppression for node frames would hide ours too, since every call
// from JS has node frames below it), so the kernels (src/cpu, no Node dependency) are linked into
// this plain binary and every rk_cpu_* entry point is called on small and pool-sized inputs, from
// two threads at once, plus the pool's exception path. Built and run by tests/sanitizers/lsan.sh
// (.ci/run); a leak, an out-of-bounds access or UB fails it.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "src/cpu/pool.hpp"
#include "src/include/rk_advantages.h"
#include "src/include/rk_logprobs.h"
#include "src/include/rk_ppo.h"
#include "src/include/rk_preference.h"
#include "src/include/rk_prepack.h"
#include "src/include/rk_rewards.h"
#include "src/include/rk_sampling.h"

namespace {

struct Rng {
  std::mt19937 g;
  explicit Rng(unsigned s) : g(s) {}
  float normal() { return std::normal_distribution<float>(0.f, 1.f)(g); }
  float uni() { return std::uniform_real_distribution<float>(0.f, 0.999f)(g); }
  int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g); }
  std::vector<float> f(size_t n, float scale = 1, float shift = 0) {
    std::vector<float> v(n);
    for (auto& x : v) x = shift + scale * normal();
    return v;
  }
  std::vector<float> u(size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = uni();
    return v;
  }
  std::vector<uint8_t> mask(size_t n) {
    std::vector<uint8_t> m(n);
    for (auto& x : m) x = integer(0, 3) != 0;
    return m;
  }
  std::vector<int32_t> labels(size_t n, size_t V) {
    std::vector<int32_t> l(n);
    for (auto& x : l) x = integer(0, 4) == 0 ? -100 : integer(0, (int)V - 1);
    return l;
  }
  std::vector<float> probs(size_t rows, size_t V) {
    std::vector<float> p(rows * V);
    for (size_t r = 0; r < rows; ++r) {
      float s = 0;
      for (size_t j = 0; j < V; ++j) s += p[r * V + j] = uni();
      for (size_t j = 0; j < V; ++j) p[r * V + j] /= s;
    }
    return p;
  }
};

// One pass over every kernel at sizes (B, T, V).
void every_kernel(unsigned seed, size_t B, size_t T, size_t V) {
  Rng r(seed);
  const size_t n = B * T;
  auto logp = r.f(n, 1, -2), ref = r.f(n, 1, -2), dpo = r.f(n, 1, -2), scores = r.f(B);
  auto m = r.mask(n);
  std::vector<float> out(n), out2(n);
  // rewards
  for (int est = 0; est < 4; ++est) {
    rk_kl_penalty_args a{logp.data(), ref.data(), m.data(), RK_MASK_U8, out.data(), B, T, est, 1, 0.5f};
    rk_cpu_kl_penalty(&a);
  }
  { rk_token_rewards_args a{logp.data(), ref.data(), m.data(), RK_MASK_U8, scores.data(), out.data(), B, T, 0.1f, 2, 1, 3.f}; rk_cpu_token_rewards(&a); }
  { rk_rto_rewards_args a{dpo.data(), ref.data(), logp.data(), m.data(), RK_MASK_U8, scores.data(), out.data(), B, T, 1, 0.1f, 1, 1, 1.f}; rk_cpu_rto_rewards(&a); }
  { rk_implicit_rewards_args a{logp.data(), ref.data(), m.data(), RK_MASK_U8, out.data(), B, T, 0.1f}; rk_cpu_implicit_rewards(&a); }
  // advantages
  { rk_gae_args a{logp.data(), ref.data(), m.data(), RK_MASK_U8, scores.data(), out.data(), out2.data(), B, T, 0.99f, 0.95f}; rk_cpu_gae(&a); }
  { rk_gae_args a{logp.data(), nullptr, m.data(), RK_MASK_U8, nullptr, out.data(), nullptr, B, T, 0.99f, 1.f}; rk_cpu_gae(&a); }
  { double st[3]; rk_whiten_args a{logp.data(), m.data(), RK_MASK_U8, out.data(), n, 1, 1e-8f, st}; rk_cpu_whiten(&a); }
  for (int method = 0; method < 4; ++method) {
    size_t K = T ? T : 1, G = n / K;
    rk_group_adv_args a{logp.data(), ref.data(), out.data(), G, K, method, 1e-6f};
    if (method != 2 || K >= 2) rk_cpu_group_advantages(&a);
  }
  for (int method = 0; method < 3; ++method) {
    std::vector<float> rw(T);
    rk_ensemble_args a{logp.data(), rw.data(), B, T, method, 0.5f, 1};
    if (B >= 2) rk_cpu_ensemble_rewards(&a);
  }
  {
    size_t K = std::min<size_t>(T, 16), G = B;
    auto pr = r.u(G * K * K);
    std::vector<float> rw(G * K);
    rk_win_rate_args a{pr.data(), rw.data(), G, K};
    rk_cpu_win_rate_rewards(&a);
  }
  // logprobs
  for (size_t rows : {B, n / 8 + 1}) {
    auto logits = r.f(rows * V, 2), refl = r.f(rows * V, 2), g = r.f(rows);
    auto lab = r.labels(rows, V);
    std::vector<float> lp(rows), lse(rows), h(rows), gl(rows * V), kl(rows);
    rk_logprobs_args a{logits.data(), RK_DT_F32, lab.data(), rows, V, 1.3f, -100, lp.data(), lse.data(), h.data()};
    rk_cpu_logprobs(&a);
    rk_logprobs_backward_args b{logits.data(), RK_DT_F32, lab.data(), rows, V, g.data(), g.data(), nullptr, 1.3f, -100, gl.data()};
    rk_cpu_logprobs_backward(&b);
    for (int dir = 0; dir < 2; ++dir) {
      rk_vocab_kl_args c{logits.data(), refl.data(), RK_DT_F32, lab.data(), rows, V, 1.f, -100, dir, kl.data()};
      rk_cpu_vocab_kl(&c);
      rk_vocab_kl_backward_args d{logits.data(), refl.data(), RK_DT_F32, nullptr, rows, V, 1.f, -100, dir, g.data(), gl.data()};
      rk_cpu_vocab_kl_backward(&d);
    }
    std::vector<uint16_t> h16(rows * V);
    for (size_t i = 0; i < h16.size(); ++i) h16[i] = (uint16_t)(0x3c00 + r.integer(-2000, 2000));
    rk_logprobs_args e{h16.data(), RK_DT_BF16, lab.data(), rows, V, 1.f, -100, lp.data(), nullptr, nullptr};
    rk_cpu_logprobs(&e);
    rk_geometric_mixture_args gm{logits.data(), RK_DT_F32, h16.data(), RK_DT_F16, rows, V, 0.3f, gl.data()};
    rk_cpu_geometric_mixture(&gm);
  }
  {
    std::vector<float> sum(B);
    std::vector<int32_t> cnt(B);
    rk_sequence_logprobs_args a{logp.data(), m.data(), RK_MASK_U8, B, T, 1, sum.data(), cnt.data()};
    rk_cpu_sequence_logprobs(&a);
  }
  // preference
  for (int type = 0; type < RK_PREF_NTYPES; ++type) {
    auto pc = r.f(B, 1, -3), pr = r.f(B, 1, -3), rc = r.f(B, 1, -3), rr = r.f(B, 1, -3), len = r.u(B), prob = r.u(B), nll = r.u(B);
    for (auto& x : len) x += 1;
    if (type == RK_PREF_ORPO)
      for (size_t i = 0; i < B; ++i) pc[i] = -std::fabs(pc[i]) - 0.1f, pr[i] = -std::fabs(pr[i]) - 0.1f;
    std::vector<float> o[7];
    for (auto& v : o) v.assign(B, 0.f);
    double sc[2];
    rk_preference_loss_args a{};
    a.B = B, a.type = type, a.length_normalize = type == RK_PREF_IPO;
    a.p = rk_pref_params{0.1f, 0.1f, 0.5f, 0.01f, 0.1f, 0.5f};
    a.policy_chosen = pc.data(), a.policy_rejected = pr.data(), a.ref_chosen = rc.data(), a.ref_rejected = rr.data();
    a.chosen_length = len.data(), a.rejected_length = len.data(), a.chosen_nll = nll.data(), a.policy_explore = rc.data();
    a.prev_chosen = rc.data(), a.prev_rejected = rr.data(), a.preference_prob = prob.data();
    a.losses = o[0].data(), a.grad_policy_chosen = o[1].data(), a.grad_policy_rejected = o[2].data(), a.chosen_rewards = o[3].data();
    a.rejected_rewards = o[4].data(), a.margins = o[5].data(), a.grad_extra = o[6].data(), a.scalars = sc;
    rk_cpu_preference_loss(&a);
    // fused, small T and V
    size_t Tf = std::min<size_t>(T, 8), Vf = std::min<size_t>(V, 50), Bf = std::min<size_t>(B, 64), N = 2 * Bf * Tf;
    auto lg = r.f(N * Vf);
    auto lab = r.labels(N, Vf);
    auto mk = r.mask(N);
    auto rl = r.f(2 * Bf, 1, -5);
    std::vector<float> gl(N * Vf);
    rk_fused_preference_args f{};
    f.logits = lg.data(), f.dtype = RK_DT_F32, f.labels = lab.data(), f.mask = mk.data(), f.mask_kind = RK_MASK_U8;
    f.B = Bf, f.T = Tf, f.V = Vf, f.temperature = 1.f, f.ignore_index = -100, f.ref_logp = rl.data(), f.prev_logp = rl.data();
    f.policy_explore = rl.data(), f.preference_prob = prob.data(), f.type = type, f.length_normalize = 0, f.p = a.p;
    f.grad_logits = gl.data(), f.losses = o[0].data(), f.grad_policy_chosen = o[1].data(), f.grad_policy_rejected = o[2].data();
    f.chosen_rewards = o[3].data(), f.rejected_rewards = o[4].data(), f.margins = o[5].data(), f.grad_extra = o[6].data(), f.scalars = sc;
    if (type != RK_PREF_ORPO && type != RK_PREF_SIMPO) rk_cpu_fused_preference_loss(&f);
  }
  {
    rk_apo_reference_args a{logp.data(), ref.data(), out.data(), n, 0.5f};
    rk_cpu_apo_reference(&a);
    size_t K = std::min<size_t>(T ? T : 1, 40), Bl = n / K;
    auto lab = r.f(Bl * K), len = r.u(Bl * K);
    for (auto& x : len) x += 1;
    std::vector<float> losses(Bl), g(Bl * K);
    double sc[2];
    for (int type = 0; type < 3; ++type) {
      rk_listwise_loss_args l{Bl, K, type, 0.5f, 0.1f, logp.data(), ref.data(), lab.data(), len.data(), losses.data(), g.data(), sc};
      rk_cpu_listwise_loss(&l);
    }
  }
  // ppo
  for (int agg = 0; agg < 3; ++agg) {
    double res[3];
    rk_ppo_policy_loss_args a{logp.data(), ref.data(), dpo.data(), ref.data(), m.data(), RK_MASK_U8, out.data(), res, B, T,
                              0.2f, 0.28f, 1, 3.f, 0.1f, 2, agg, 0, 0.0, nullptr};
    rk_cpu_ppo_policy_loss(&a);
    rk_value_loss_args v{logp.data(), ref.data(), dpo.data(), m.data(), RK_MASK_U8, out.data(), res, B, T, 0.2f, agg, 1, 100.0, nullptr};
    rk_cpu_value_loss(&v);
  }
  {
    double res[2];
    std::vector<float> g1(B), g2(B);
    rk_p3o_loss_args a{scores.data(), scores.data(), scores.data(), scores.data(), scores.data(), scores.data(), g1.data(), g2.data(), res, B, 1, 0.2f, 0.2f, 0, 0.0};
    rk_cpu_p3o_loss(&a);
  }
  // prepack
  {
    size_t ns = B, cap = std::max<size_t>(T, 1);
    std::vector<int32_t> len(ns), po(ns), of(ns), pl(ns);
    size_t total = 0;
    for (auto& x : len) total += (size_t)(x = r.integer(0, (int)cap));
    for (int alg = 0; alg < 2; ++alg) {
      size_t P = 0;
      rk_pack_args a{len.data(), ns, (int64_t)cap, alg, po.data(), of.data(), pl.data(), &P};
      rk_cpu_pack_sequences(&a);
      std::vector<int32_t> tok(total, 7), ids(P * cap), pos(P * cap), seg(P * cap), rest(ns), cu(ns + 1), ord(ns), held(ns);
      rk_prepack_fill_args f{tok.data(), len.data(), len.data(), po.data(), of.data(), ns, P, cap, 0, 0, ids.data(), pos.data(), seg.data(),
                             rest.data(), cu.data(), ord.data(), held.data()};
      rk_cpu_prepack_fill(&f);
      size_t Lm = std::min<size_t>(cap, 64), Pm = std::min<size_t>(P, 8);
      std::vector<uint8_t> mk(Pm * Lm * Lm);
      std::vector<int32_t> segm(Pm * Lm, 1);
      rk_attention_mask_args am{segm.data(), Pm, Lm, RK_MASK_FORMAT_BOOL, mk.data()};
      rk_cpu_attention_mask(&am);
      size_t D = 3, maxLen = 0;
      for (auto x : len) maxLen = std::max<size_t>(maxLen, (size_t)x);
      auto packed = r.f(P * cap * D);
      std::vector<float> rows(ns * maxLen * D);
      rk_unpack_args u{packed.data(), po.data(), of.data(), len.data(), ns, P, cap, D, maxLen, rows.data()};
      rk_cpu_unpack(&u);
      size_t H = 2, Hkv = 1, Dh = 8, Pa = std::min<size_t>(P, 4);
      auto q = r.f(Pa * cap * H * Dh), k = r.f(Pa * cap * Hkv * Dh);
      std::vector<float> o(Pa * cap * H * Dh);
      rk_packed_attention_args pa{q.data(), k.data(), k.data(), RK_DT_F32, seg.data(), Pa, cap, H, Hkv, Dh, 0.35f, o.data(), nullptr, nullptr};
      rk_cpu_packed_attention(&pa);
    }
  }
  // sampling
  {
    size_t Bs = std::min<size_t>(B, 256), K = 4, Vs = std::max<size_t>(V, 2);
    std::vector<int32_t> dt(Bs * K), acc(Bs), nt(Bs), st(Bs), len(Bs), sel(Bs * 2);
    for (auto& x : dt) x = r.integer(0, (int)Vs - 1);
    auto q = r.probs(Bs * K, Vs), p = r.probs(Bs * (K + 1), Vs), u = r.u(Bs * (K + 1)), ap = r.u(Bs * K), rw = r.f(Bs * K), uk = r.u(Bs * K * K);
    rk_speculative_verify_args a{dt.data(), q.data(), p.data(), u.data(), Bs, K, Vs, acc.data(), nt.data(), st.data()};
    rk_cpu_speculative_verify(&a);
    rk_spec_dec_stop_args s{ap.data(), Bs, K, 0.3, 1, 20, len.data()};
    rk_cpu_spec_dec_stop(&s);
    rk_rejection_sample_args j{rw.data(), uk.data(), Bs, K, 2, 1.0, sel.data(), st.data()};
    rk_cpu_rejection_sample(&j);
  }
}

__attribute__((noinline)) void leak_on_purpose() {
  std::vector<char>* v = new std::vector<char>(4096, 1);  // never deleted
  char* volatile sink = v->data();
  (void)sink;
}

}  // namespace

int main(int argc, char** argv) {
  // self-test of the setup: `--leak` leaks on purpose, and lsan.sh expects this run to fail
  if (argc > 1 && std::strcmp(argv[1], "--leak") == 0) {
    leak_on_purpose();
    std::printf("kernels_lsan --leak: leaked 4096 bytes on purpose\n");
    return 0;
  }
  // every kernel: small, and large enough for the pool (B·T > 2^17)
  every_kernel(1, 3, 5, 7);
  every_kernel(2, 1, 1, 1);
  every_kernel(3, 520, 300, 33);
  // from two threads at once (one gets the pool, the other runs serially)
  std::thread t([] { every_kernel(4, 400, 400, 17); });
  every_kernel(5, 450, 350, 40);
  t.join();
  // the pool's exception path: a chunk that throws (on a worker or on the caller) is rethrown to
  // the caller after every chunk has finished, and the pool keeps working
  int caught = 0;
  for (int rep = 0; rep < 20; ++rep) {
    std::atomic<size_t> ran{0};
    try {
      rk::parallel_for(1 << 20, 1, [&](size_t b, size_t e) {
        ran += e - b;
        if (b <= (size_t)rep * 40000 && (size_t)rep * 40000 < e) throw std::runtime_error("chunk failed");
      });
    } catch (const std::runtime_error&) {
      ++caught;
    }
    if (ran.load() != (size_t)1 << 20) { std::fprintf(stderr, "pool: %zu of %d items ran\n", ran.load(), 1 << 20); return 1; }
  }
  if (caught != 20) { std::fprintf(stderr, "pool: %d of 20 exceptions reached the caller\n", caught); return 1; }
  every_kernel(6, 300, 300, 9);
  std::printf("kernels_lsan: every kernel at 4 sizes and from 2 threads, 20 pool exceptions rethrown: no leak, no error\n");
  return 0;
}
