// fusedPreferenceLoss on the CPU (SPEC §4): logits → loss and gradLogits, composed from the
// logprobs family's C ABI so the logits are read exactly twice:
//   1. rk_cpu_logprobs: logp and lse per token row (uncounted rows get ignore_index, so their
//      logits are never read and their gradient is written as 0);
//   2. masked per-sequence sums (double), the preference loss and its per-sequence gradient
//      dLoss/dSeq_b (preference_loss_cpu, the same code as preferenceLoss);
//   3. rk_cpu_logprobs_backward with gradLogp_bt = dLoss/dSeq_b on counted tokens and the lse of
//      step 1, which writes gradLogits in one pass.
// Temporaries are O(2B·T) floats; nothing of size [N, V] besides gradLogits. The labels of step 1
// and step 2 (fused_pref_labels, fused_pref_loss) are shared with linearPreferenceLoss (cpu/linear.cc).
#include <vector>

#include "../include/rk_logprobs.h"
#include "preference_cpu.hpp"

namespace rk {
namespace {

template <class M>
void effective_labels(const rk_fused_preference_args& a, const M& mask, int32_t* lab, size_t N) {
  const int32_t ign = a.ignore_index;
  for (size_t i = 0; i < N; ++i) lab[i] = mask[i] ? a.labels[i] : ign;
}

}  // namespace

void fused_pref_labels(const rk_fused_preference_args& a, int32_t* lab) {
  const size_t N = 2 * a.B * a.T;
  with_mask(a.mask_kind, a.mask, [&](auto m) { effective_labels(a, m, lab, N); });
}

void fused_pref_loss(const rk_fused_preference_args* a, const int32_t* lab, const float* logp, float* glogp) {
  const size_t B = a->B, T = a->T, R = 2 * B;
  const int type = a->type;
  const bool avg = type == RK_PREF_ORPO || type == RK_PREF_SIMPO;
  // sequence values: sums (or length averages for orpo / simpo) and counts
  std::vector<float> seq(R), len(R), inv(R);
  for (size_t r = 0; r < R; ++r) {
    double s = 0;
    size_t c = 0;
    for (size_t t = 0; t < T; ++t) {
      size_t i = r * T + t;
      bool on = lab[i] != a->ignore_index;
      s += on ? (double)logp[i] : 0.0;
      c += on ? 1 : 0;
    }
    inv[r] = c ? 1.0f / (float)c : 0.0f;
    seq[r] = avg ? (c ? (float)(s / (double)c) : 0.0f) : (float)s;
    len[r] = c ? (float)c : inf_f();  // ipo lengthNormalize: an empty response contributes 0
  }
  std::vector<float> nll(B), gnll(B);
  if (type == RK_PREF_RPO || type == RK_PREF_ORPO)
    for (size_t b = 0; b < B; ++b) nll[b] = -seq[b];  // rpo: summed NLL; orpo: mean NLL of the chosen response

  rk_preference_loss_args p{};
  p.B = B;
  p.type = type;
  p.length_normalize = a->length_normalize;
  p.p = a->p;
  p.policy_chosen = seq.data();
  p.policy_rejected = seq.data() + B;
  p.ref_chosen = a->ref_logp;
  p.ref_rejected = a->ref_logp ? a->ref_logp + B : nullptr;
  p.chosen_length = len.data();
  p.rejected_length = len.data() + B;
  p.chosen_nll = nll.data();
  p.policy_explore = a->policy_explore;
  p.prev_chosen = a->prev_logp;
  p.prev_rejected = a->prev_logp ? a->prev_logp + B : nullptr;
  p.preference_prob = a->preference_prob;
  p.losses = a->losses;
  p.grad_policy_chosen = a->grad_policy_chosen;
  p.grad_policy_rejected = a->grad_policy_rejected;
  p.chosen_rewards = a->chosen_rewards;
  p.rejected_rewards = a->rejected_rewards;
  p.margins = a->margins;
  p.grad_extra = type == RK_PREF_XPO ? a->grad_extra : gnll.data();
  p.scalars = a->scalars;
  preference_loss_cpu(p);

  // dLoss/dSeq per row, spread over its counted tokens
  for (size_t r = 0; r < R; ++r) {
    const bool chosen = r < B;
    const size_t b = chosen ? r : r - B;
    float g = chosen ? a->grad_policy_chosen[b] : a->grad_policy_rejected[b];
    if (avg) g *= inv[r];
    if (chosen && type == RK_PREF_RPO) g -= gnll[b];
    if (chosen && type == RK_PREF_ORPO) g -= gnll[b] * inv[r];
    for (size_t t = 0; t < T; ++t) {
      size_t i = r * T + t;
      glogp[i] = lab[i] != a->ignore_index ? g : 0.0f;
    }
  }
}

}  // namespace rk

extern "C" void rk_cpu_fused_preference_loss(const rk_fused_preference_args* a) {
  using namespace rk;
  const size_t B = a->B, T = a->T, V = a->V, R = 2 * B, N = R * T;
  std::vector<int32_t> lab(N);
  fused_pref_labels(*a, lab.data());
  std::vector<float> logp(N), lse(N);
  rk_logprobs_args f{};
  f.logits = a->logits;
  f.dtype = a->dtype;
  f.labels = lab.data();
  f.N = N;
  f.V = V;
  f.temperature = a->temperature;
  f.ignore_index = a->ignore_index;
  f.logp = logp.data();
  f.lse = lse.data();
  f.entropy = nullptr;
  rk_cpu_logprobs(&f);
  std::vector<float> glogp(N);
  fused_pref_loss(a, lab.data(), logp.data(), glogp.data());
  rk_logprobs_backward_args bw{};
  bw.logits = a->logits;
  bw.dtype = a->dtype;
  bw.labels = lab.data();
  bw.N = N;
  bw.V = V;
  bw.grad_logp = glogp.data();
  bw.grad_entropy = nullptr;
  bw.lse = lse.data();
  bw.temperature = a->temperature;
  bw.ignore_index = a->ignore_index;
  bw.grad_logits = a->grad_logits;
  rk_cpu_logprobs_backward(&bw);
}
