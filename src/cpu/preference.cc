// CPU kernels of the preference family (SPEC §4). preferenceLoss: one vectorised pass over the
// examples (math in core/preference.hpp), then per-chunk reductions of the loss (double lanes) and
// accuracy, in fixed chunks so the result does not depend on the thread count. listwiseLoss: one
// row at a time (K is small), rows split over the pool.
#include "preference_cpu.hpp"

#include <vector>

namespace rk {

namespace {
constexpr size_t kPrefChunk = 4096;     // examples per reduction chunk
constexpr size_t kPrefParallel = 16384; // below this many examples, one thread
constexpr size_t kMaxChunks = 256;

constexpr size_t kBlockLen = 1024;  // examples computed then reduced while in L1

// Computes examples [b0, b1) block by block and adds their losses / accuracy counts to *part.
template <int TY, bool LN>
void pref_range(const rk_preference_loss_args& a, size_t b0, size_t b1, PrefPartial* part) {
  simd_dispatch([&]() RK_LOOP {
    const float* __restrict pc = a.policy_chosen;
    const float* __restrict pr = a.policy_rejected;
    const float* __restrict rc = a.ref_chosen;
    const float* __restrict rr = a.ref_rejected;
    const float* __restrict lc = a.chosen_length;
    const float* __restrict lr = a.rejected_length;
    const float* __restrict nll = TY == RK_PREF_XPO ? a.policy_explore : a.chosen_nll;
    const float* __restrict qc = a.prev_chosen;
    const float* __restrict qr = a.prev_rejected;
    const float* __restrict pp = a.preference_prob;
    float* __restrict lo = a.losses;
    float* __restrict gc = a.grad_policy_chosen;
    float* __restrict gr = a.grad_policy_rejected;
    float* __restrict cr = a.chosen_rewards;
    float* __restrict rj = a.rejected_rewards;
    float* __restrict mg = a.margins;
    float* __restrict gx = a.grad_extra;
    const rk_pref_params p = a.p;
    const float invB = 1.0f / (float)a.B;
    constexpr bool ref_free = TY == RK_PREF_ORPO || TY == RK_PREF_SIMPO;
    constexpr bool has_nll = TY == RK_PREF_RPO || TY == RK_PREF_XPO || TY == RK_PREF_ORPO;
    double loss = 0;
    size_t correct = 0, nan = 0;
    for (size_t s = b0; s < b1; s += kBlockLen) {
      const size_t e = s + kBlockLen < b1 ? s + kBlockLen : b1;
#pragma GCC ivdep
      for (size_t i = s; i < e; ++i) {
        PrefEx x;
        x.pc = pc[i];
        x.pr = pr[i];
        x.rc = ref_free ? 0.0f : rc[i];
        x.rr = ref_free ? 0.0f : rr[i];
        x.ilc = LN ? 1.0f / lc[i] : 1.0f;
        x.ilr = LN ? 1.0f / lr[i] : 1.0f;
        x.nll = has_nll ? nll[i] : 0.0f;
        x.prevc = TY == RK_PREF_INPO ? qc[i] : 0.0f;
        x.prevr = TY == RK_PREF_INPO ? qr[i] : 0.0f;
        x.prob = TY == RK_PREF_DNO ? pp[i] : 0.0f;
        PrefRes r = pref_example<TY>(x, p);
        lo[i] = r.loss;
        gc[i] = r.gc * invB;
        gr[i] = r.gr * invB;
        cr[i] = r.cr;
        rj[i] = r.rj;
        mg[i] = r.cr - r.rj;
        if (has_nll) gx[i] = r.gx * invB;
      }
      // blocked sum: 16 float lanes over ≤ 64 terms each, then double across blocks
      float acc[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
      size_t i = s;
      for (; i + 16 <= e; i += 16)
        for (int j = 0; j < 16; ++j) acc[j] += lo[i + j];
      float tail = 0.0f;
      for (; i < e; ++i) tail += lo[i];
      double bs = tail;
      for (int j = 0; j < 16; ++j) bs += (double)acc[j];
      loss += bs;
      unsigned c = 0, n = 0;
      for (size_t k = s; k < e; ++k) {
        c += mg[k] > 0.0f ? 1u : 0u;
        n += mg[k] != mg[k] ? 1u : 0u;
      }
      correct += c;
      nan += n;
    }
    part->loss = loss;
    part->correct = correct;
    part->nan = nan;
  });
}

}  // namespace

void reduce_losses(const float* losses, const float* margins, size_t b0, size_t b1, PrefPartial* out) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = b0;
  for (; i + 8 <= b1; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += (double)losses[i + j];
  for (; i < b1; ++i) acc[0] += (double)losses[i];
  out->loss = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  out->correct = 0;
  out->nan = 0;
  if (margins) {
    size_t c = 0, n = 0;
    for (size_t k = b0; k < b1; ++k) {
      float m = margins[k];
      c += m > 0.0f ? 1 : 0;
      n += m != m ? 1 : 0;
    }
    out->correct = c;
    out->nan = n;
  }
}

void finish_scalars(const PrefPartial* parts, size_t nparts, size_t B, double* scalars, bool accuracy) {
  double loss = 0;
  size_t correct = 0, nan = 0;
  for (size_t c = 0; c < nparts; ++c) {
    loss += parts[c].loss;
    correct += parts[c].correct;
    nan += parts[c].nan;
  }
  scalars[0] = B ? loss / (double)B : 0.0;
  if (accuracy) scalars[1] = B ? (nan ? (double)NAN : (double)correct / (double)B) : 0.0;
}

void preference_loss_cpu(const rk_preference_loss_args& a) {
  const size_t B = a.B;
  size_t chunk = kPrefChunk;
  if ((B + chunk - 1) / chunk > kMaxChunks) chunk = (B + kMaxChunks - 1) / kMaxChunks;
  const size_t nchunks = B ? (B + chunk - 1) / chunk : 0;
  PrefPartial parts[kMaxChunks];
  const bool ln = a.type == RK_PREF_IPO && a.length_normalize;
  auto body = [&](size_t c0, size_t c1) {
    for (size_t c = c0; c < c1; ++c) {
      size_t b0 = c * chunk, b1 = b0 + chunk < B ? b0 + chunk : B;
      if (ln) pref_range<RK_PREF_IPO, true>(a, b0, b1, &parts[c]);
      else with_pref_type(a.type, [&](auto ty) { pref_range<decltype(ty)::value, false>(a, b0, b1, &parts[c]); });
    }
  };
  size_t grain = (kPrefParallel + chunk - 1) / chunk;
  if (nchunks < grain) body(0, nchunks);
  else parallel_for(nchunks, grain, body);
  finish_scalars(parts, nchunks, B, a.scalars, true);
}

}  // namespace rk

extern "C" void rk_cpu_preference_loss(const rk_preference_loss_args* a) { rk::preference_loss_cpu(*a); }

extern "C" void rk_cpu_apo_reference(const rk_apo_reference_args* a) {
  using namespace rk;
  parallel_for(a->n, kElemGrain, [&](size_t b, size_t e) {
    simd_dispatch([&]() RK_LOOP {
      const float* __restrict cur = a->current;
      const float* __restrict prev = a->previous;
      float* __restrict out = a->reference;
      const float al = a->alpha, w = 1.0f + a->alpha;
      for (size_t i = b; i < e; ++i) out[i] = w * cur[i] - al * prev[i];
    });
  });
}

extern "C" void rk_cpu_listwise_loss(const rk_listwise_loss_args* a) {
  using namespace rk;
  const size_t B = a->B, K = a->K;
  size_t chunk = 1024;
  if ((B + chunk - 1) / chunk > kMaxChunks) chunk = (B + kMaxChunks - 1) / kMaxChunks;
  const size_t nchunks = B ? (B + chunk - 1) / chunk : 0;
  PrefPartial parts[kMaxChunks];
  const float gscale = B ? 1.0f / (float)B : 0.0f;
  auto body = [&](size_t c0, size_t c1) {
    std::vector<float> scratch(3 * (K ? K : 1));
    for (size_t c = c0; c < c1; ++c) {
      size_t b0 = c * chunk, b1 = b0 + chunk < B ? b0 + chunk : B;
      float* sc = scratch.data();
      simd_dispatch([&]() RK_LOOP {
        for (size_t b = b0; b < b1; ++b) {
          size_t o = b * K;
          float l = listwise_row(a->type, a->policy + o, a->ref ? a->ref + o : nullptr, a->labels ? a->labels + o : nullptr,
                                 a->lengths ? a->lengths + o : nullptr, K, a->beta, a->sft_weight, gscale,
                                 a->grad_policy + o, sc, sc + K, sc + 2 * K, 0, 1, [] {});
          a->losses[b] = l;
        }
      });
      reduce_losses(a->losses, nullptr, b0, b1, &parts[c]);
    }
  };
  // Work per row grows as K²; parallel once there is enough of it.
  size_t work_per_chunk = chunk * (K * K + 1);
  size_t grain = work_per_chunk >= (1u << 16) ? 1 : ((1u << 16) + work_per_chunk - 1) / work_per_chunk;
  if (nchunks < 2 || nchunks < grain) body(0, nchunks);
  else parallel_for(nchunks, grain, body);
  finish_scalars(parts, nchunks, B, a->scalars, false);
}
