// CPU kernels of the linear family (SPEC §8): linearLogprobs, linearLogprobsBackward,
// linearPreferenceLoss, and the product alone (the benchmarks' yardstick).
//
// One pass over the logits (logits_pass) walks the vocabulary in chunks of NC columns:
//   1. pack the chunk's weight rows W[jc, jc+NC) transposed into NR-column panels for every KC
//      block of D (gemm::pack_b; all threads, shared);
//   2. per block of MC counted rows (and, when there are too few row blocks for the threads, per
//      column split of the chunk): pack the rows' hidden states (KC at a time, gemm::pack_a) and
//      multiply on the register-tile micro-kernel into a thread-local logits block Cl (MC × NC
//      floats, L2-resident), then hand Cl to the epilogue;
//   3. after the chunk: the epilogue's chunk-level step (backward: the two weight-side GEMMs).
// Forward epilogue: + bias, then the online softmax statistics of each row's NC logits
// (lp_row_stats, the logprobs family's vectorised row kernel) merged into the row's running state
// (lse_merge), and the label's logit picked up when it falls in the chunk. Backward epilogue:
// dZ = ∂L/∂logits for the chunk (lp_row_grad + the label term) into a dZ buffer [Na × NC];
// then gradBias_chunk = Σ_i dZ, gradWeight[jc..] = dZᵀ·h and gradHidden += dZ·W_chunk (gemm::gemm).
// Rows whose label is ignore_index are left out of every product (never read).
//
// Scratch beyond inputs and outputs (floats; rk_cpu_linear_scratch_bytes computes it exactly):
//   forward  D·NC (packed weight chunk) + T·(MCp·KC + MCp·NC) (per thread: packed rows, logits
//            block) + 6·Na (active-row index, label logit, running state) [+ 3·Na·S split states];
//   backward the same + Na·NC (dZ) + 5·Na (per-row gl, ge, lse, H, label) + the weight-side GEMMs'
//            own scratch (KC·min(D, 2048) + T·MCp·KC).
// With NC = 512, D = 4096, T = 2: ~9.5 MB forward, ~18 MB backward at N = 4096 — O(NC·(N + D)),
// never [N, V].
#include "../core/linear.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common.hpp"
#include "gemm.hpp"
#include "logprobs_cpu.hpp"
#include "preference_cpu.hpp"

namespace rk {
namespace {

using gemm::Mat;
using gemm::round_up;

size_t elem_size(int dt) { return dt == RK_DT_F32 ? 4 : 2; }

inline bool counted(int32_t y, int32_t ignore, size_t V) { return y != ignore && y >= 0 && (size_t)y < V; }

// Rows whose label counts, in order.
std::vector<int32_t> active_rows(const int32_t* labels, size_t N, size_t V, int32_t ignore) {
  std::vector<int32_t> act;
  act.reserve(N);
  for (size_t i = 0; i < N; ++i)
    if (counted(labels[i], ignore, V)) act.push_back((int32_t)i);
  return act;
}

// Shape of one pass over the logits.
struct Pass {
  size_t Na, V, D;
  size_t NC;      // chunk columns (multiple of nr)
  size_t MC;      // rows per block
  size_t mblocks;
  size_t S, per;  // column splits per chunk, panels per split
  bool serial;    // small: everything on the calling thread
  size_t mcp, ldcl;
};

Pass plan(size_t Na, size_t V, size_t D, size_t chunk) {
  const gemm::Kernel& K = gemm::kernel();
  Pass p{};
  p.Na = Na;
  p.V = V;
  p.D = D;
  size_t c = chunk ? chunk : kLinearChunkCpu;
  p.NC = round_up(std::min(c, V), K.nr);
  p.MC = gemm::mc_rows(K);
  p.mblocks = (Na + p.MC - 1) / p.MC;
  const size_t threads = (size_t)num_threads();
  const size_t panels = p.NC / K.nr;
  p.serial = 2.0 * (double)Na * (double)std::min(p.NC, V) * (double)D < 4e6 || threads < 2;
  p.S = p.mblocks >= 2 * threads || p.serial ? 1 : std::min(panels, (2 * threads + p.mblocks - 1) / std::max<size_t>(p.mblocks, 1));
  p.per = (panels + p.S - 1) / p.S;
  p.S = (panels + p.per - 1) / p.per;
  p.mcp = round_up(std::min(Na, p.MC), K.mr);
  p.ldcl = p.per * K.nr;
  return p;
}

size_t pass_threads(const Pass& p) { return p.serial ? 1 : std::min<size_t>(num_threads(), p.mblocks * p.S); }

// Scratch floats of logits_pass itself.
size_t pass_floats(const Pass& p) {
  return p.D * p.NC + pass_threads(p) * (p.mcp * gemm::kKC + p.mcp * p.ldcl);
}

// The chunk loop (see the file comment). H: the counted rows of hidden (Na × D, map = their
// indices); weight [V × D]. epi(i0, mb, s, jc, c0, cn, Cl, ldcl): logits h·W_jᵀ (no bias) of rows
// [i0, i0+mb) of the counted rows and columns jc+c0 .. jc+c0+cn, row r at Cl + r·ldcl.
// done(jc, nc) after each chunk.
template <class Epi, class Done>
void logits_pass(const Pass& P, const Mat& H, const void* weight, int dt, Epi&& epi, Done&& done) {
  const gemm::Kernel& K = gemm::kernel();
  const size_t nr = K.nr, mr = K.mr, D = P.D, V = P.V, NC = P.NC, KC = gemm::kKC;
  std::vector<float> Bp(D * NC);
  const Mat Wt{weight, dt, 1, D, nullptr};  // B(k, j) = W[j·D + k]
  for (size_t jc = 0; jc < V; jc += NC) {
    const size_t nc = std::min(NC, V - jc);
    const size_t panels = (nc + nr - 1) / nr;
    parallel_for(panels, P.serial ? panels : 4, [&](size_t q0, size_t q1) {
      for (size_t pc = 0; pc < D; pc += KC) {
        const size_t kc = std::min(KC, D - pc);
        gemm::pack_b(Wt, pc, kc, jc + q0 * nr, std::min(nc, q1 * nr) - q0 * nr, (int)nr, Bp.data() + pc * NC + q0 * kc * nr);
      }
    });
    const size_t tasks = P.mblocks * P.S;
    parallel_for(tasks, P.serial ? tasks : 1, [&](size_t t0, size_t t1) {
      std::vector<float> Ap(P.mcp * KC), Cl(P.mcp * P.ldcl);
      for (size_t t = t0; t < t1; ++t) {
        const size_t ib = t / P.S, s = t % P.S;
        const size_t q0 = s * P.per;
        if (q0 >= panels) continue;
        const size_t q1 = std::min(panels, q0 + P.per);
        const size_t i0 = ib * P.MC, mb = std::min(P.MC, P.Na - i0), mbp = round_up(mb, mr);
        const size_t c0 = q0 * nr, cn = std::min(nc, q1 * nr) - c0;
        for (size_t pc = 0; pc < D; pc += KC) {
          const size_t kc = std::min(KC, D - pc);
          gemm::pack_a(H, i0, mb, pc, kc, (int)mr, Ap.data());
          gemm::macro(K, mbp, (q1 - q0) * nr, kc, true, Ap.data(), Bp.data() + pc * NC + q0 * kc * nr, Cl.data(), P.ldcl, nullptr, pc > 0);
        }
        epi(i0, mb, s, jc, c0, cn, Cl.data(), P.ldcl);
      }
    });
    done(jc, nc);
  }
}

inline void add_bias(float* z, const float* bias, size_t n) {
  if (!bias) return;
  for (size_t c = 0; c < n; ++c) z[c] += bias[c];
}

// Forward statistics of every counted row: st[i] (merged over the vocabulary) and zy[i] = z_y.
void forward_stats(const rk_linear_logprobs_args& a, const std::vector<int32_t>& act, bool want_w, std::vector<LseStats>& st,
                   std::vector<float>& zy) {
  const size_t Na = act.size();
  st.assign(Na, lse_empty());
  zy.assign(Na, 0.0f);
  if (!Na) return;
  const Pass P = plan(Na, a.V, a.D, a.chunk);
  const float inv_t = 1.0f / a.temperature;
  std::vector<LseStats> part(P.S > 1 ? Na * P.S : 0, lse_empty());
  const Mat H{a.hidden, a.dtype, a.D, 1, act.data()};
  logits_pass(
      P, H, a.weight, a.dtype,
      [&](size_t i0, size_t mb, size_t s, size_t jc, size_t c0, size_t cn, float* Cl, size_t ldc) {
        const size_t j0 = jc + c0;
        for (size_t r = 0; r < mb; ++r) {
          const size_t i = i0 + r;
          float* z = Cl + r * ldc;
          add_bias(z, a.bias ? a.bias + j0 : nullptr, cn);
          LseStats x = lp_row_stats(z, cn, inv_t, want_w);
          const size_t y = (size_t)a.labels[act[i]];
          if (y >= j0 && y < j0 + cn) zy[i] = z[y - j0] * inv_t;
          if (P.S == 1) st[i] = want_w ? lse_merge<true>(st[i], x) : lse_merge<false>(st[i], x);
          else part[i * P.S + s] = x;
        }
      },
      [&](size_t, size_t) {
        if (P.S == 1) return;
        for (size_t i = 0; i < Na; ++i)
          for (size_t s = 0; s < P.S; ++s) {
            LseStats& x = part[i * P.S + s];
            st[i] = want_w ? lse_merge<true>(st[i], x) : lse_merge<false>(st[i], x);
            x = lse_empty();
          }
      });
}

}  // namespace
}  // namespace rk

extern "C" size_t rk_cpu_linear_scratch_bytes(size_t Na, size_t V, size_t D, size_t chunk, int backward) {
  using namespace rk;
  if (!Na || !V) return 0;
  const Pass P = plan(Na, V, D, chunk);
  const size_t shared = D * P.NC;                                                       // packed weight chunk
  const size_t per_thread = pass_threads(P) * (P.mcp * gemm::kKC + P.mcp * P.ldcl);  // packed rows, logits block
  const size_t st = sizeof(LseStats) / sizeof(float);
  if (!backward) return (shared + per_thread + Na * (1 + 1 + st) + (P.S > 1 ? Na * P.S * st : 0)) * sizeof(float);
  // backward (lse, and the entropy when gradEntropy is given, passed in): dZ, per-row scalars, and
  // either the pass's per-thread blocks or the weight-side GEMMs' scratch (never both at once)
  const size_t nc = std::min(P.NC, V);
  const size_t g = std::max(gemm::gemm_scratch_bytes(nc, D, Na), gemm::gemm_scratch_bytes(Na, D, nc));
  return (shared + Na * P.NC + Na * 5) * sizeof(float) + std::max(per_thread * sizeof(float), g);
}

extern "C" void rk_cpu_linear_logprobs(const rk_linear_logprobs_args* a) {
  using namespace rk;
  const std::vector<int32_t> act = active_rows(a->labels, a->N, a->V, a->ignore_index);
  std::vector<LseStats> st;
  std::vector<float> zy;
  forward_stats(*a, act, a->entropy != nullptr, st, zy);
  size_t k = 0;
  for (size_t r = 0; r < a->N; ++r) {
    float logp, lse, h;
    if (k < act.size() && (size_t)act[k] == r) {
      LpOut o = lse_finish(st[k], zy[k]);
      logp = o.logp, lse = o.lse, h = o.entropy;
      ++k;
    } else {
      // ignored row (never read): 0; a label out of range (callers validate): NaN
      logp = lse = h = a->labels[r] == a->ignore_index ? 0.0f : nan_f();
    }
    a->logp[r] = logp;
    if (a->lse) a->lse[r] = lse;
    if (a->entropy) a->entropy[r] = h;
  }
}

extern "C" void rk_cpu_linear_logprobs_backward(const rk_linear_logprobs_backward_args* a) {
  using namespace rk;
  const size_t N = a->N, V = a->V, D = a->D;
  const std::vector<int32_t> act = active_rows(a->labels, N, V, a->ignore_index);
  const size_t Na = act.size();
  // gradHidden accumulates over the chunks; ignored rows stay 0 (a label out of range: NaN)
  parallel_for(N, std::max<size_t>(1, kElemGrain / std::max<size_t>(D, 1)), [&](size_t b, size_t e) {
    for (size_t r = b; r < e; ++r) {
      float v = a->labels[r] == a->ignore_index || counted(a->labels[r], a->ignore_index, V) ? 0.0f : nan_f();
      std::fill(a->grad_hidden + r * D, a->grad_hidden + (r + 1) * D, v);
    }
  });
  if (!Na) {
    memset(a->grad_weight, 0, V * D * sizeof(float));
    if (a->grad_bias) memset(a->grad_bias, 0, V * sizeof(float));
    return;
  }
  // per counted row: gl, ge, lse, H (lse and H from a forward pass when not given)
  std::vector<float> gl(Na), ge(a->grad_entropy ? Na : 0), ls(Na), hh(a->grad_entropy ? Na : 0);
  const bool need_fwd = !a->lse || (a->grad_entropy && !a->entropy);
  std::vector<LseStats> st;
  std::vector<float> zy;
  if (need_fwd) {
    rk_linear_logprobs_args f{a->hidden, a->weight, a->bias, a->dtype, a->labels, N, V, D, a->chunk, a->temperature,
                              a->ignore_index, nullptr, nullptr, nullptr};
    forward_stats(f, act, a->grad_entropy != nullptr, st, zy);
  }
  for (size_t i = 0; i < Na; ++i) {
    const size_t r = (size_t)act[i];
    gl[i] = a->grad_logp[r];
    if (need_fwd) {
      LpOut o = lse_finish(st[i], zy[i]);
      ls[i] = o.lse;
      if (a->grad_entropy) hh[i] = o.entropy;
    } else {
      ls[i] = a->lse[r];
      if (a->grad_entropy) hh[i] = a->entropy[r];
    }
    if (a->grad_entropy) ge[i] = a->grad_entropy[r];
  }
  st.clear();
  st.shrink_to_fit();
  const Pass P = plan(Na, V, D, a->chunk);
  const size_t NC = P.NC;
  const float inv_t = 1.0f / a->temperature;
  std::vector<float> dZ(Na * NC);
  const Mat H{a->hidden, a->dtype, D, 1, act.data()};
  const size_t es = elem_size(a->dtype);
  logits_pass(
      P, H, a->weight, a->dtype,
      [&](size_t i0, size_t mb, size_t, size_t jc, size_t c0, size_t cn, float* Cl, size_t ldc) {
        const size_t j0 = jc + c0;
        for (size_t r = 0; r < mb; ++r) {
          const size_t i = i0 + r;
          float* z = Cl + r * ldc;
          add_bias(z, a->bias ? a->bias + j0 : nullptr, cn);
          float* g = dZ.data() + i * NC + c0;
          lp_row_grad(z, cn, g, inv_t, ls[i], gl[i], a->grad_entropy ? &ge[i] : nullptr, a->grad_entropy ? hh[i] : 0.0f);
          const size_t y = (size_t)a->labels[act[i]];
          if (y >= j0 && y < j0 + cn) g[y - j0] += gl[i] * inv_t;
        }
      },
      [&](size_t jc, size_t nc) {
        if (a->grad_bias) {
          parallel_for(nc, P.serial ? nc : 64, [&](size_t c0, size_t c1) {
            for (size_t c = c0; c < c1; ++c) a->grad_bias[jc + c] = 0.0f;
            for (size_t i = 0; i < Na; ++i) {
              const float* g = dZ.data() + i * NC;
              for (size_t c = c0; c < c1; ++c) a->grad_bias[jc + c] += g[c];
            }
          });
        }
        // gradWeight rows [jc, jc+nc) = dZᵀ (nc × Na) · h (Na × D)
        gemm::gemm(Mat{dZ.data(), RK_DT_F32, 1, NC, nullptr}, Mat{a->hidden, a->dtype, D, 1, act.data()}, nc, D, Na,
                   a->grad_weight + jc * D, D, nullptr, false);
        // gradHidden (counted rows) += dZ (Na × nc) · W[jc..jc+nc) (nc × D)
        gemm::gemm(Mat{dZ.data(), RK_DT_F32, NC, 1, nullptr},
                   Mat{static_cast<const char*>(a->weight) + jc * D * es, a->dtype, D, 1, nullptr}, Na, D, nc, a->grad_hidden, D,
                   act.data(), true);
      });
}

extern "C" void rk_cpu_linear_logits(const void* hidden, const void* weight, const float* bias, int dtype, size_t N, size_t V,
                                     size_t D, size_t chunk, float* logits) {
  using namespace rk;
  if (!N || !V) return;
  const Pass P = plan(N, V, D, chunk);
  const Mat H{hidden, dtype, D, 1, nullptr};
  logits_pass(
      P, H, weight, dtype,
      [&](size_t i0, size_t mb, size_t, size_t jc, size_t c0, size_t cn, float* Cl, size_t ldc) {
        const size_t j0 = jc + c0;
        for (size_t r = 0; r < mb; ++r) {
          float* z = Cl + r * ldc;
          add_bias(z, bias ? bias + j0 : nullptr, cn);
          memcpy(logits + (i0 + r) * V + j0, z, cn * sizeof(float));
        }
      },
      [](size_t, size_t) {});
}

extern "C" void rk_cpu_linear_preference_loss(const rk_linear_preference_args* a) {
  using namespace rk;
  const rk_fused_preference_args& f = a->f;
  const size_t N = 2 * f.B * f.T;
  std::vector<int32_t> lab(N);
  fused_pref_labels(f, lab.data());
  std::vector<float> logp(N), lse(N), glogp(N);
  rk_linear_logprobs_args fw{a->hidden, a->weight, a->bias, a->dtype, lab.data(), N, f.V, a->D, a->chunk, f.temperature,
                             f.ignore_index, logp.data(), lse.data(), nullptr};
  rk_cpu_linear_logprobs(&fw);
  fused_pref_loss(&f, lab.data(), logp.data(), glogp.data());
  rk_linear_logprobs_backward_args bw{a->hidden, a->weight, a->bias, a->dtype, lab.data(), N, f.V, a->D, a->chunk, f.temperature,
                                      f.ignore_index, glogp.data(), nullptr, lse.data(), nullptr, a->grad_hidden, a->grad_weight,
                                      a->grad_bias};
  rk_cpu_linear_logprobs_backward(&bw);
}
