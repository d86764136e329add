// Row kernels of the logprobs family (logprobs_kernels.inc, dispatched per instruction set) for
// other CPU families that produce logits themselves: the linear family folds each vocabulary chunk
// of the logits it computes into the same online softmax statistics and gradients.
#pragma once
#include <cstddef>

#include "../core/logprobs.hpp"

namespace rk {

// Online softmax statistics (m, s, w) of z[0..n)·inv_t (w only when want_w).
LseStats lp_row_stats(const float* z, size_t n, float inv_t, bool want_w);
// g[j] = −p_j·(gl + ge·(z_j·inv_t − lse + H))·inv_t with p_j = e^{z_j·inv_t − lse}, j < n
// (logprobsBackward without the label's gl·inv_t; ge = NULL: no entropy term).
void lp_row_grad(const float* z, size_t n, float* g, float inv_t, float lse, float gl, const float* ge, float H);

}  // namespace rk
