// Per-element math of the prepacking family (SPEC §6), shared by the CPU and CUDA kernels.
#pragma once
#include "../include/rk_prepack.h"
#include "common.hpp"

namespace rk {

// Attention-mask predicate (SPEC §6): query i may attend key j of the same pack iff both carry
// the same non-zero segment id and j ≤ i (block-diagonal causal mask of Prepacking §3).
RK_HD bool packed_attends(int32_t seg_i, int32_t seg_j, size_t i, size_t j) {
  return seg_i != 0 && seg_i == seg_j && j <= i;
}

// Whether segment id x is one of the n ids in set (a query tile's distinct segments: a few).
RK_HD bool in_set(const int32_t* set, int n, int32_t x) {
  for (int t = 0; t < n; ++t)
    if (set[t] == x) return true;
  return false;
}

// One element of q/k/v widened to f32 (dtype RK_DT_F32 / RK_DT_F16 / RK_DT_BF16).
template <int DT>
RK_HD float load_qkv(const void* p, size_t i) {
  if (DT == RK_DT_F16) return f16_to_float(static_cast<const uint16_t*>(p)[i]);
  if (DT == RK_DT_BF16) return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

}  // namespace rk
