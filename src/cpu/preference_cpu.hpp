// Internal helpers of the preference family's CPU kernels (shared with the fused op).
#pragma once
#include <cmath>
#include <type_traits>

#include "../core/preference.hpp"
#include "common.hpp"

namespace rk {

struct PrefPartial {
  double loss;
  size_t correct, nan;
};
// Sums losses[b0,b1) in double lanes; counts margins > 0 and NaN margins (margins may be NULL).
void reduce_losses(const float* losses, const float* margins, size_t b0, size_t b1, PrefPartial* out);
// scalars[0] = mean loss; scalars[1] = accuracy (NaN if any margin is NaN) when `accuracy`.
void finish_scalars(const PrefPartial* parts, size_t nparts, size_t B, double* scalars, bool accuracy);
// preferenceLoss on the CPU (also the loss step of the fused op).
void preference_loss_cpu(const rk_preference_loss_args& a);
// Steps of fusedPreferenceLoss shared with linearPreferenceLoss: the effective labels
// (ignore_index where the mask does not count, lab[2B·T]), then from the token log-probs the
// sequence sums, the loss (outputs of `a`) and dLoss/dlogp per token (glogp[2B·T], 0 where not counted).
void fused_pref_labels(const rk_fused_preference_args& a, int32_t* lab);
void fused_pref_loss(const rk_fused_preference_args* a, const int32_t* lab, const float* logp, float* glogp);

}  // namespace rk
