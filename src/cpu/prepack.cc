// CPU kernels of the prepacking family (SPEC §6).
//
// - Packing: first-fit decreasing over a max segment tree of the packs' remaining capacities
//   (leftmost leaf with room ≥ len in O(log n)), best-fit decreasing over an ordered set of
//   (remaining, pack) pairs (smallest remaining ≥ len, ties to the lowest pack). Both O(n log n).
// - prepack's layout fill, attentionMask and unpack: one pass over the output, split over the pool.
// - packedAttention: tiled (query tile × key tile), online softmax, the query heads that share a
//   kv head processed together so each K/V tile is widened to f32 once; key tiles holding no key
//   of a query tile's segments are skipped. Scratch per task is O(tile).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <numeric>
#include <set>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/prepack.hpp"
#include "common.hpp"

namespace rk {
namespace {

void sort_by_length_desc(const int32_t* len, size_t n, std::vector<int32_t>& idx) {
  idx.resize(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return len[a] > len[b]; });
}

void pack_ffd(const rk_pack_args* a, const std::vector<int32_t>& idx, size_t placed, size_t* P) {
  // Leaves are packs in opening order, all starting at `capacity`: the leftmost leaf with room is
  // either an open pack (first fit) or the first unopened one (a new pack).
  size_t size = 1;
  while (size < placed) size <<= 1;
  std::vector<int64_t> t(2 * size, a->capacity);
  size_t used = 0;
  for (size_t k = 0; k < placed; ++k) {
    int32_t i = idx[k];
    int64_t len = a->lengths[i];
    size_t node = 1;
    while (node < size) node = t[2 * node] >= len ? 2 * node : 2 * node + 1;
    size_t pack = node - size;
    a->pack_of[i] = (int32_t)pack;
    a->offset_of[i] = (int32_t)(a->capacity - t[node]);
    t[node] -= len;
    for (node >>= 1; node; node >>= 1) t[node] = std::max(t[2 * node], t[2 * node + 1]);
    if (pack + 1 > used) used = pack + 1;
  }
  for (size_t p = 0; p < used; ++p) a->pack_lengths[p] = (int32_t)(a->capacity - t[size + p]);
  *P = used;
}

void pack_bfd(const rk_pack_args* a, const std::vector<int32_t>& idx, size_t placed, size_t* P) {
  std::set<std::pair<int64_t, int32_t>> open;  // (remaining, pack): fullest-that-fits = lower_bound
  std::vector<int64_t> load;
  for (size_t k = 0; k < placed; ++k) {
    int32_t i = idx[k];
    int64_t len = a->lengths[i];
    auto it = open.lower_bound({len, INT32_MIN});
    int32_t pack;
    if (it == open.end()) {
      pack = (int32_t)load.size();
      load.push_back(0);
    } else {
      pack = it->second;
      open.erase(it);
    }
    a->pack_of[i] = pack;
    a->offset_of[i] = (int32_t)load[pack];
    load[pack] += len;
    int64_t rem = a->capacity - load[pack];
    if (rem > 0) open.insert({rem, pack});
  }
  for (size_t p = 0; p < load.size(); ++p) a->pack_lengths[p] = (int32_t)load[p];
  *P = load.size();
}

// Rows × L elements per chunk of the elementwise passes.
inline size_t row_grain(size_t L) { return std::max<size_t>(1, kElemGrain / std::max<size_t>(L, 1)); }

}  // namespace
}  // namespace rk

extern "C" void rk_cpu_pack_sequences(const rk_pack_args* a) {
  using namespace rk;
  std::vector<int32_t> idx;
  sort_by_length_desc(a->lengths, a->n, idx);
  size_t placed = 0;
  while (placed < a->n && a->lengths[idx[placed]] > 0) ++placed;
  for (size_t k = placed; k < a->n; ++k) a->pack_of[idx[k]] = 0, a->offset_of[idx[k]] = 0;
  size_t P = 0;
  if (placed) {
    if (a->algorithm == RK_PACK_BFD) pack_bfd(a, idx, placed, &P);
    else pack_ffd(a, idx, placed, &P);
  }
  *a->num_packs = P;
}

extern "C" void rk_cpu_prepack_fill(const rk_prepack_fill_args* a) {
  using namespace rk;
  const size_t n = a->n, P = a->P, L = a->L;
  std::vector<int64_t> start(n + 1, 0);
  for (size_t i = 0; i < n; ++i) start[i + 1] = start[i] + a->src_lengths[i];
  // Bucket the non-empty sequences by pack (stable), then by offset within the pack.
  std::vector<size_t> first(P + 1, 0);
  for (size_t i = 0; i < n; ++i)
    if (a->lengths[i] > 0) ++first[(size_t)a->pack_of[i] + 1];
  for (size_t p = 0; p < P; ++p) first[p + 1] += first[p];
  std::vector<int32_t> byPack(first[P]);
  {
    std::vector<size_t> fill(first.begin(), first.end() - 1);
    for (size_t i = 0; i < n; ++i)
      if (a->lengths[i] > 0) byPack[fill[(size_t)a->pack_of[i]]++] = (int32_t)i;
  }
  const int32_t* off = a->offset_of;
  for (size_t p = 0; p < P; ++p)
    std::sort(byPack.begin() + first[p], byPack.begin() + first[p + 1], [&](int32_t x, int32_t y) { return off[x] < off[y]; });
  size_t k = 0;
  int64_t cu = 0;
  a->cu_seqlens[0] = 0;
  for (int32_t i : byPack) {
    a->order[k++] = i;
    cu += a->lengths[i];
    a->cu_seqlens[k] = (int32_t)cu;
  }
  for (size_t i = 0; i < n; ++i)
    if (a->lengths[i] <= 0) a->order[k] = (int32_t)i, a->cu_seqlens[++k] = (int32_t)cu;
  for (size_t i = 0; i < n; ++i) {
    int32_t len = a->lengths[i];
    a->restore[i] = len > 0 ? (int32_t)((size_t)a->pack_of[i] * L + (size_t)a->offset_of[i] + (size_t)len - 1) : -1;
    if (a->held) a->held[i] = a->src_lengths[i] > 0 ? a->tokens[start[i + 1] - 1] : a->pad_id;
  }
  parallel_for(P, row_grain(L), [&](size_t p0, size_t p1) {
    for (size_t p = p0; p < p1; ++p) {
      int32_t* ids = a->input_ids + p * L;
      int32_t* pos = a->position_ids + p * L;
      int32_t* seg = a->segment_ids + p * L;
      std::fill(ids, ids + L, a->pad_id);
      std::fill(pos, pos + L, 0);
      std::fill(seg, seg + L, 0);
      for (size_t r = first[p]; r < first[p + 1]; ++r) {
        int32_t i = byPack[r];
        size_t o = (size_t)a->offset_of[i], len = (size_t)a->lengths[i];
        memcpy(ids + o, a->tokens + start[i], len * sizeof(int32_t));
        for (size_t t = 0; t < len; ++t) pos[o + t] = (int32_t)t;
        std::fill(seg + o, seg + o + len, (int32_t)(r - first[p] + 1));
      }
    }
  });
}

extern "C" void rk_cpu_attention_mask(const rk_attention_mask_args* a) {
  using namespace rk;
  const size_t L = a->L;
  const bool additive = a->format == RK_MASK_FORMAT_ADDITIVE;
  parallel_for(a->P * L, row_grain(L), [&](size_t r0, size_t r1) {
    for (size_t r = r0; r < r1; ++r) {
      const size_t p = r / L, i = r % L;
      const int32_t* seg = a->segment_ids + p * L;
      const int32_t si = seg[i];
      if (additive) {
        float* row = static_cast<float*>(a->mask) + r * L;
        if (si == 0) {
          std::fill(row, row + L, -inf_f());
          continue;
        }
        simd_dispatch([&]() RK_LOOP {
          const int32_t* __restrict s = seg;
          float* __restrict o = row;
          const float ninf = -inf_f();
          const int32_t key = si;
          const size_t nj = i + 1;
          for (size_t j = 0; j < nj; ++j) o[j] = s[j] == key ? 0.0f : ninf;
        });
        std::fill(row + i + 1, row + L, -inf_f());
      } else {
        uint8_t* row = static_cast<uint8_t*>(a->mask) + r * L;
        if (si == 0) {
          memset(row, 0, L);
          continue;
        }
        simd_dispatch([&]() RK_LOOP {
          const int32_t* __restrict s = seg;
          uint8_t* __restrict o = row;
          const int32_t key = si;
          const size_t nj = i + 1;
          for (size_t j = 0; j < nj; ++j) o[j] = s[j] == key ? (uint8_t)1 : (uint8_t)0;
        });
        memset(row + i + 1, 0, L - i - 1);
      }
    }
  });
}

extern "C" void rk_cpu_unpack(const rk_unpack_args* a) {
  using namespace rk;
  const size_t D = a->D, M = a->max_len, L = a->L;
  const size_t rowElems = M * D;
  parallel_for(a->n, row_grain(rowElems), [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      float* dst = a->rows + i * rowElems;
      size_t len = a->lengths[i] > 0 ? (size_t)a->lengths[i] : 0;
      if (M > len) memset(dst, 0, (M - len) * D * sizeof(float));  // (rows may be empty: no memset(NULL, 0, 0))
      if (len)
        memcpy(dst + (M - len) * D, a->packed + ((size_t)a->pack_of[i] * L + (size_t)a->offset_of[i]) * D, len * D * sizeof(float));
    }
  });
}

// ---------------------------------------------------------------------------------------------
// packedAttention

namespace rk {
namespace {

constexpr size_t kBK = 64;  // keys per tile

struct AttnScratch {
  std::vector<float> q, o, kt, v, s, m, l, alpha, krow;
  std::vector<int32_t> rowSeg, rowPos, segs, kseg;
};

// Work item (p, g, query tile): the G query heads of kv head g over rows [i0, i1), folded into
// M = G·(i1 − i0) rows (row r = head hh, position i0 + r % nq). Rows of Q, O and V are padded to
// Dp = Dh rounded up to 16 floats (zeros), so the P·V loop runs on whole vectors.
template <int DT>
void attention_task(const rk_packed_attention_args* a, size_t p, size_t g, size_t i0, size_t i1, AttnScratch& w,
                    uint64_t* computed, uint64_t* skipped) {
  const size_t L = a->L, H = a->H, Hkv = a->Hkv, Dh = a->Dh, G = H / Hkv;
  const size_t Dp = (Dh + 15) & ~(size_t)15;
  const size_t nq = i1 - i0, M = G * nq;
  const int32_t* seg = a->segment_ids + p * L;
  const float scale = a->scale;
  // Distinct non-zero segments of the tile, and the first key any of them can see.
  w.segs.clear();
  for (size_t i = i0; i < i1; ++i)
    if (seg[i] != 0 && std::find(w.segs.begin(), w.segs.end(), seg[i]) == w.segs.end()) w.segs.push_back(seg[i]);
  float* outBase = a->out;
  auto outRow = [&](size_t r) { return outBase + (((p * L) + i0 + r % nq) * H + g * G + r / nq) * Dh; };
  if (w.segs.empty()) {
    for (size_t r = 0; r < M; ++r) memset(outRow(r), 0, Dh * sizeof(float));
    return;
  }
  size_t lo = i0;
  for (size_t j = 0; j < i0; ++j)
    if (std::find(w.segs.begin(), w.segs.end(), seg[j]) != w.segs.end()) { lo = j; break; }
  w.q.assign(M * Dp, 0.0f);
  w.o.assign(M * Dp, 0.0f);
  w.kt.resize(Dh * kBK);
  w.v.assign(kBK * Dp, 0.0f);
  w.s.resize(M * kBK);
  w.m.resize(M);
  w.l.resize(M);
  w.alpha.resize(M);
  w.rowSeg.resize(M);
  w.rowPos.resize(M);
  for (size_t r = 0; r < M; ++r) {
    size_t i = i0 + r % nq, h = g * G + r / nq;
    w.rowSeg[r] = seg[i];
    w.rowPos[r] = (int32_t)i;
    w.m[r] = -inf_f();
    w.l[r] = 0.0f;
    if (seg[i] == 0) continue;
    const size_t base = ((p * L + i) * H + h) * Dh;
    float* qr = w.q.data() + r * Dp;
    for (size_t d = 0; d < Dh; ++d) qr[d] = load_qkv<DT>(a->q, base + d) * scale;
  }
  const size_t kt0 = lo / kBK, kt1 = (i1 - 1) / kBK;
  *skipped += kt0 * G;  // key tiles before the first one the tile's segments can see
  for (size_t kt = kt0; kt <= kt1; ++kt) {
    const size_t j0 = kt * kBK, j1 = std::min(L, j0 + kBK), nk = j1 - j0;
    bool any = false;
    for (size_t j = j0; j < j1 && !any; ++j)
      any = std::find(w.segs.begin(), w.segs.end(), seg[j]) != w.segs.end();
    if (!any) { *skipped += G; continue; }
    *computed += G;
    // K tile transposed (kt[d][j]) and V tile (v[j][d]), widened to f32. Keys that no row of the
    // tile can see (other segments, padding, past the end) are zeros: never read into a result.
    int32_t nonFinite = 0;
    w.kseg.resize(kBK);
    w.krow.resize(Dh);
    for (size_t j = 0; j < kBK; ++j) {
      bool use = j < nk && std::find(w.segs.begin(), w.segs.end(), seg[j0 + j]) != w.segs.end();
      w.kseg[j] = use ? seg[j0 + j] : 0;
      float* vr = w.v.data() + j * Dp;
      if (!use) {
        for (size_t d = 0; d < Dh; ++d) w.kt[d * kBK + j] = 0.0f;
        memset(vr, 0, Dh * sizeof(float));
        continue;
      }
      const size_t base = ((p * L + j0 + j) * Hkv + g) * Dh;
      simd_dispatch([&]() RK_LOOP {
        float* __restrict kr = w.krow.data();
        float* __restrict vo = vr;
        int32_t bad = 0;
        for (size_t d = 0; d < Dh; ++d) {
          kr[d] = load_qkv<DT>(a->k, base + d);
          const float x = load_qkv<DT>(a->v, base + d);
          vo[d] = x;
          bad |= absf(x) < inf_f() ? 0 : 1;
        }
        nonFinite |= bad;
      });
      const float* kr = w.krow.data();
      for (size_t d = 0; d < Dh; ++d) w.kt[d * kBK + j] = kr[d];
    }
    const bool finite = nonFinite == 0;
    // S = Q·Kᵀ, four rows at a time (each K tile row loaded once per four FMAs).
    simd_dispatch([&]() RK_LOOP {
      const float* __restrict Q = w.q.data();
      const float* __restrict K = w.kt.data();
      float* __restrict S = w.s.data();
      size_t r = 0;
      for (; r + 4 <= M; r += 4) {
        float s0[kBK] = {}, s1[kBK] = {}, s2[kBK] = {}, s3[kBK] = {};
        const float* q0 = Q + r * Dp;
        for (size_t d = 0; d < Dh; ++d) {
          const float a0 = q0[d], a1 = q0[Dp + d], a2 = q0[2 * Dp + d], a3 = q0[3 * Dp + d];
          const float* kd = K + d * kBK;
          for (size_t j = 0; j < kBK; ++j) {
            s0[j] += a0 * kd[j];
            s1[j] += a1 * kd[j];
            s2[j] += a2 * kd[j];
            s3[j] += a3 * kd[j];
          }
        }
        for (size_t j = 0; j < kBK; ++j) {
          S[r * kBK + j] = s0[j];
          S[(r + 1) * kBK + j] = s1[j];
          S[(r + 2) * kBK + j] = s2[j];
          S[(r + 3) * kBK + j] = s3[j];
        }
      }
      for (; r < M; ++r) {
        float s0[kBK] = {};
        for (size_t d = 0; d < Dh; ++d) {
          const float a0 = Q[r * Dp + d];
          const float* kd = K + d * kBK;
          for (size_t j = 0; j < kBK; ++j) s0[j] += a0 * kd[j];
        }
        for (size_t j = 0; j < kBK; ++j) S[r * kBK + j] = s0[j];
      }
    });
    // Mask and online softmax per row: S becomes P = e^{s − m'}, alpha = e^{m − m'}. Vector loops
    // over 16-wide lanes (max and sum kept per lane, then folded).
    simd_dispatch([&]() RK_LOOP {
      const int32_t* __restrict ks = w.kseg.data();
      for (size_t r = 0; r < M; ++r) {
        float* __restrict srow = w.s.data() + r * kBK;
        const int32_t sr = w.rowSeg[r];
        const size_t i = (size_t)w.rowPos[r];
        w.alpha[r] = 1.0f;
        if (sr == 0 || j0 > i) { memset(srow, 0, kBK * sizeof(float)); continue; }
        const size_t jmax = std::min(nk, i - j0 + 1);  // keys j0 … j0+jmax−1 are ≤ i
        const float ninf = -inf_f();
        float mx[16];
        int32_t nv[16];
        for (size_t e = 0; e < 16; ++e) mx[e] = ninf, nv[e] = 0;
        for (size_t jb = 0; jb < kBK; jb += 16)
          for (size_t e = 0; e < 16; ++e) {
            const size_t j = jb + e;
            const bool valid = (j < jmax) & (ks[j] == sr);
            const float x = valid ? srow[j] : ninf;
            srow[j] = x;
            mx[e] = maxf(mx[e], x);
            nv[e] += valid ? 1 : 0;
          }
        float mt = ninf;
        int32_t count = 0;
        for (size_t e = 0; e < 16; ++e) mt = maxf(mt, mx[e]), count += nv[e];
        // (a NaN score may be dropped by the max; its e^{NaN − m'} still makes this row NaN)
        if (count == 0) { memset(srow, 0, kBK * sizeof(float)); continue; }
        const float mo = w.m[r];
        const float mn = maxf(mo, mt);
        w.alpha[r] = mo == ninf ? 0.0f : expf_(mo - mn);
        w.m[r] = mn;
        float acc[16];
        for (size_t e = 0; e < 16; ++e) acc[e] = 0.0f;
        for (size_t jb = 0; jb < kBK; jb += 16)
          for (size_t e = 0; e < 16; ++e) {
            const float x = expf_(srow[jb + e] - mn);
            srow[jb + e] = x;
            acc[e] += x;
          }
        float lsum = 0.0f;
        for (size_t e = 0; e < 16; ++e) lsum += acc[e];
        w.l[r] = w.l[r] * w.alpha[r] + lsum;
      }
    });
    // O = alpha·O + P·V. With finite V every masked P entry is an exact 0 times a finite value.
    if (finite) {
      simd_dispatch([&]() RK_LOOP {
        const float* __restrict V = w.v.data();
        const float* __restrict Pm = w.s.data();
        float* __restrict O = w.o.data();
        size_t r = 0;
        // Four rows × W columns of O in registers per pass over the key tile (W = 64 when the
        // padded head size allows: 16 accumulators, 4 V loads + 4 broadcasts per 16 FMAs).
        auto block4 = [&](size_t d0, auto Wc) RK_LOOP {
          constexpr size_t W = decltype(Wc)::value;
          const float* p0 = Pm + r * kBK;
          float c0[W], c1[W], c2[W], c3[W];
          const float al0 = w.alpha[r], al1 = w.alpha[r + 1], al2 = w.alpha[r + 2], al3 = w.alpha[r + 3];
          for (size_t e = 0; e < W; ++e) {
            c0[e] = O[r * Dp + d0 + e] * al0;
            c1[e] = O[(r + 1) * Dp + d0 + e] * al1;
            c2[e] = O[(r + 2) * Dp + d0 + e] * al2;
            c3[e] = O[(r + 3) * Dp + d0 + e] * al3;
          }
          for (size_t j = 0; j < nk; ++j) {
            const float b0 = p0[j], b1 = p0[kBK + j], b2 = p0[2 * kBK + j], b3 = p0[3 * kBK + j];
            const float* vj = V + j * Dp + d0;
            for (size_t e = 0; e < W; ++e) {
              c0[e] += b0 * vj[e];
              c1[e] += b1 * vj[e];
              c2[e] += b2 * vj[e];
              c3[e] += b3 * vj[e];
            }
          }
          for (size_t e = 0; e < W; ++e) {
            O[r * Dp + d0 + e] = c0[e];
            O[(r + 1) * Dp + d0 + e] = c1[e];
            O[(r + 2) * Dp + d0 + e] = c2[e];
            O[(r + 3) * Dp + d0 + e] = c3[e];
          }
        };
        for (; r + 4 <= M; r += 4) {
          size_t d0 = 0;
          for (; d0 + 64 <= Dp; d0 += 64) block4(d0, std::integral_constant<size_t, 64>{});
          for (; d0 < Dp; d0 += 16) block4(d0, std::integral_constant<size_t, 16>{});
        }
        for (; r < M; ++r) {
          const float* p0 = Pm + r * kBK;
          const float al = w.alpha[r];
          for (size_t d = 0; d < Dp; ++d) O[r * Dp + d] *= al;
          for (size_t j = 0; j < nk; ++j) {
            const float b0 = p0[j];
            const float* vj = V + j * Dp;
            for (size_t d = 0; d < Dp; ++d) O[r * Dp + d] += b0 * vj[d];
          }
        }
      });
    } else {
      // A non-finite value in V: only the rows that see it may read it (skip exact-zero weights).
      for (size_t r = 0; r < M; ++r) {
        const float* pr = w.s.data() + r * kBK;
        float* orow = w.o.data() + r * Dp;
        const float al = w.alpha[r];
        for (size_t d = 0; d < Dp; ++d) orow[d] *= al;
        for (size_t j = 0; j < nk; ++j) {
          if (pr[j] == 0.0f) continue;
          const float* vj = w.v.data() + j * Dp;
          for (size_t d = 0; d < Dp; ++d) orow[d] += pr[j] * vj[d];
        }
      }
    }
  }
  for (size_t r = 0; r < M; ++r) {
    float* dst = outRow(r);
    if (w.rowSeg[r] == 0) {
      memset(dst, 0, Dh * sizeof(float));
      continue;
    }
    const float inv = 1.0f / w.l[r];
    const float* o = w.o.data() + r * Dp;
    for (size_t d = 0; d < Dh; ++d) dst[d] = o[d] * inv;
  }
}

template <int DT>
void packed_attention(const rk_packed_attention_args* a) {
  const size_t L = a->L, G = a->H / a->Hkv;
  // Query rows per tile: about 64 folded rows (G heads × nq positions), at least 16 positions.
  size_t BQ = std::max<size_t>(16, std::min<size_t>(64, 64 / std::max<size_t>(G, 1)));
  const size_t nqt = (L + BQ - 1) / BQ;
  const size_t tasks = a->P * a->Hkv * nqt;
  std::atomic<uint64_t> comp{0}, skip{0};
  // Small calls run on the calling thread (waking a worker costs more than the work).
  const double work = (double)a->P * a->H * L * (double)std::min<size_t>(L, 256) * a->Dh;
  const size_t grain = work < (double)(1 << 22) ? tasks : 1;
  parallel_for(tasks, grain, [&](size_t t0, size_t t1) {
    AttnScratch w;
    uint64_t c = 0, s = 0;
    for (size_t t = t0; t < t1; ++t) {
      // Largest query tiles (the most keys) first within each pack/head for better balance.
      size_t qt = nqt - 1 - t % nqt, ph = t / nqt, g = ph % a->Hkv, p = ph / a->Hkv;
      size_t i0 = qt * BQ, i1 = std::min(L, i0 + BQ);
      attention_task<DT>(a, p, g, i0, i1, w, &c, &s);
    }
    comp += c;
    skip += s;
  });
  if (a->tiles_computed) *a->tiles_computed = comp;
  if (a->tiles_skipped) *a->tiles_skipped = skip;
}

}  // namespace
}  // namespace rk

extern "C" void rk_cpu_packed_attention(const rk_packed_attention_args* a) {
  using namespace rk;
  if (a->P * a->L * a->H * a->Dh == 0 || a->Hkv == 0) {
    if (a->out) memset(a->out, 0, a->P * a->L * a->H * a->Dh * sizeof(float));
    if (a->tiles_computed) *a->tiles_computed = 0;
    if (a->tiles_skipped) *a->tiles_skipped = 0;
    return;
  }
  if (a->dtype == RK_DT_F16) packed_attention<RK_DT_F16>(a);
  else if (a->dtype == RK_DT_BF16) packed_attention<RK_DT_BF16>(a);
  else packed_attention<RK_DT_F32>(a);
}
