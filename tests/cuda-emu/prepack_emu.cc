// Host emulation of packedAttention's FlashAttention-2-style kernel (cuda/prepack.cu, the text
// between "---- fa2 begin" and "---- fa2 end", included verbatim; run.sh cuts it out) on the
// emulated warp primitives of mma_emu.hpp, checked against the CPU kernel (which npm test checks
// against the float64 js reference): f16 and bf16, Dh 64 and 128, 64- and 128-row query tiles,
// odd L, several segments, padding, arbitrary (non-contiguous, negative) segment ids, GQA,
// scales, large logits, NaN/Inf in masked and visible keys; the key-tile counts are checked
// exactly against a direct count, and every output element must be written.
#include "tests/cuda-emu/mma_emu.hpp"

#include <string>

#include "src/core/prepack.hpp"
#include "src/include/rk_prepack.h"

static unsigned long long g_cover[8];
#define RK_FA2_COVER(path) (++g_cover[path])
#include KERNELS_INC

namespace {

uint64_t g_state = 88172645463325252ull;
uint32_t next() {
  g_state ^= g_state << 13;
  g_state ^= g_state >> 7;
  g_state ^= g_state << 17;
  return (uint32_t)(g_state >> 11);
}
float uniform(float lo, float hi) { return lo + (hi - lo) * (next() >> 8) * (1.0f / 16777216.0f); }

template <int DT, int DH, int MT>
void run_fa2(const rk_packed_attention_args& a, unsigned long long* comp, unsigned long long* skip) {
  dim3 grid{(unsigned)((a.L + 64 * MT - 1) / (64 * MT)), (unsigned)a.H, (unsigned)a.P};
  emu::launch(grid, fa2::kThreads, fa2::smem_bytes<DH, MT>(), [&] { fa2::attn_fa2_kernel<DT, DH, MT>(a, comp, skip); });
}

// Key-tile counts of a BM-row query tiling, counted directly from the definition.
void expected_tiles(const std::vector<int32_t>& seg, size_t P, size_t L, size_t H, size_t BM, uint64_t& comp, uint64_t& skip) {
  comp = skip = 0;
  for (size_t p = 0; p < P; ++p)
    for (size_t i0 = 0; i0 < L; i0 += BM) {
      const size_t i1 = std::min(L, i0 + BM);
      std::vector<int32_t> segs;
      for (size_t i = i0; i < i1; ++i)
        if (seg[p * L + i] != 0 && std::find(segs.begin(), segs.end(), seg[p * L + i]) == segs.end()) segs.push_back(seg[p * L + i]);
      if (segs.empty()) continue;
      auto in = [&](int32_t s) { return std::find(segs.begin(), segs.end(), s) != segs.end(); };
      size_t lo = i0;
      for (size_t j = 0; j < i0; ++j)
        if (in(seg[p * L + j])) { lo = j; break; }
      const size_t kt0 = lo / 64, kt1 = (i1 - 1) / 64;
      skip += kt0 * H;
      for (size_t kt = kt0; kt <= kt1; ++kt) {
        bool any = false;
        for (size_t j = kt * 64; j < std::min(L, kt * 64 + 64); ++j) any |= in(seg[p * L + j]);
        (any ? comp : skip) += H;
      }
    }
}

struct Case {
  std::string name;
  size_t P, L, H, Hkv;
  std::vector<int32_t> seg;
  float amp = 2.0f, scale = 0.0f;  // scale 0 → 1/√Dh
  bool nonfinite = false;
};

int g_fails = 0, g_checks = 0;

template <int DT, int DH, int MT>
void run_case(const Case& c) {
  const size_t nq = c.P * c.L * c.H * DH, nk = c.P * c.L * c.Hkv * DH;
  std::vector<uint16_t> q(nq), k(nk), v(nk);
  auto enc = [](float x) { return DT == RK_DT_BF16 ? emu::f32_to_bf16(x) : emu::f32_to_f16(x); };
  for (auto& x : q) x = enc(uniform(-c.amp, c.amp));
  for (auto& x : k) x = enc(uniform(-c.amp, c.amp));
  for (auto& x : v) x = enc(uniform(-1, 1));
  const uint16_t inf = DT == RK_DT_BF16 ? 0x7f80 : 0x7c00, nan = DT == RK_DT_BF16 ? 0x7fc0 : 0x7e00;
  if (c.nonfinite) {
    // (see the segment layout of the "non-finite" case) kv head 0:
    auto kv = [&](size_t j, size_t d) { return (j * c.Hkv + 0) * DH + d; };
    for (size_t d = 0; d < DH; ++d) v[kv(100, d)] = inf;  // seg 2: visible to rows ≥ 100 only
    v[kv(30, 5)] = nan;                                    // seg 1: rows ≥ 30, column 5
    for (size_t d = 0; d < DH; ++d) k[kv(145, d)] = nan, v[kv(146, d)] = nan;  // padding keys
    for (size_t d = 0; d < DH; ++d) q[(147 * c.H + 1) * DH + d] = nan;         // a padding row
    v[kv(70, 3)] = (uint16_t)(inf | 0x8000);  // seg 2: −Inf, rows ≥ 70, column 3
  }
  rk_packed_attention_args a{};
  a.q = q.data(); a.k = k.data(); a.v = v.data(); a.dtype = DT; a.segment_ids = c.seg.data();
  a.P = c.P; a.L = c.L; a.H = c.H; a.Hkv = c.Hkv; a.Dh = DH;
  a.scale = c.scale != 0.0f ? c.scale : 1.0f / std::sqrt((float)DH);
  std::vector<float> want(nq), got(nq, 1e30f);
  a.out = want.data();
  rk_cpu_packed_attention(&a);
  a.out = got.data();
  emu::g_global = {{(const char*)q.data(), (const char*)(q.data() + nq)},
                   {(const char*)k.data(), (const char*)(k.data() + nk)},
                   {(const char*)v.data(), (const char*)(v.data() + nk)}};
  unsigned long long comp = 0, skip = 0;
  run_fa2<DT, DH, MT>(a, &comp, &skip);
  uint64_t ec, es;
  expected_tiles(c.seg, c.P, c.L, c.H, 64 * MT, ec, es);
  size_t bad = 0, first = nq, nans = 0;
  double worst = 0;
  for (size_t i = 0; i < nq; ++i) {
    const double g = got[i], w = want[i];
    const bool ok = w != w ? g != g : (std::isinf(w) ? g == w : std::fabs(g - w) <= 2e-3 * (1 + std::fabs(w)));
    if (!ok && first == nq) first = i;
    bad += !ok;
    nans += w != w;
    if (w == w && !std::isinf(w)) worst = std::max(worst, std::fabs(g - w) / (1 + std::fabs(w)));
  }
  ++g_checks;
  const bool tilesOk = comp == ec && skip == es;
  const char* dn = DT == RK_DT_BF16 ? "bf16" : "f16";
  if (bad || !tilesOk) {
    ++g_fails;
    printf("FAIL %-26s %-4s Dh%-3d rows%-3d: %zu/%zu off (first [%zu] %g vs %g), tiles %llu/%llu (want %llu/%llu)\n", c.name.c_str(), dn,
           DH, 64 * MT, bad, nq, first, first < nq ? got[first] : 0.0, first < nq ? want[first] : 0.0, comp, skip,
           (unsigned long long)ec, (unsigned long long)es);
  } else {
    printf("ok   %-26s %-4s Dh%-3d rows%-3d: worst rel %.2e, %zu NaN matched, tiles %llu computed / %llu skipped\n", c.name.c_str(), dn, DH,
           64 * MT, worst, nans, comp, skip);
  }
  fflush(stdout);
}

template <int DT>
void run_all(const Case& c) {
  run_case<DT, 64, 1>(c);
  run_case<DT, 64, 2>(c);
  run_case<DT, 128, 1>(c);
}

std::vector<int32_t> runs(size_t P, size_t L, size_t maxLen, double padFrac) {
  std::vector<int32_t> s(P * L, 0);
  for (size_t p = 0; p < P; ++p) {
    size_t i = 0;
    int32_t id = 1;
    while (i < L) {
      size_t len = 1 + next() % maxLen;
      if (uniform(0, 1) < padFrac) { i += len; continue; }  // a padding gap
      for (size_t t = 0; t < len && i < L; ++t) s[p * L + i++] = id;
      ++id;
    }
  }
  return s;
}

}  // namespace

// prepack_emu [--quick] [--case SUBSTRING]
int main(int argc, char** argv) {
  bool quick = false;
  const char* only = nullptr;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--quick")) quick = true;
    else if (!strcmp(argv[i], "--case") && i + 1 < argc) only = argv[++i];
  }
  std::vector<Case> cases;
  cases.push_back({"L=1", 1, 1, 1, 1, {1}});
  cases.push_back({"runs+pad L=37 H2/1", 2, 37, 2, 1, runs(2, 37, 12, 0.2)});
  cases.push_back({"runs+pad L=200 H4/2", 1, 200, 4, 2, runs(1, 200, 70, 0.15)});
  {
    Case c{"ids{-1,0,1,2} L=150 H3/1", 1, 150, 3, 1, {}};
    for (size_t i = 0; i < 150; ++i) c.seg.push_back((int32_t)(next() % 4) - 1);
    cases.push_back(c);
  }
  {
    Case c{"one segment L=300 H2/2", 1, 300, 2, 2, std::vector<int32_t>(300, 7)};
    c.amp = 4.0f;  // large logits: the running max moves
    cases.push_back(c);
  }
  {
    // a segment that resumes after 190 keys of another one (key tiles inside [kt0, kt1] skipped),
    // leading padding (all-padding query tiles and warps), negative scale
    Case c{"gaps+lead pad L=330 H2/1", 1, 330, 2, 1, {}};
    for (size_t i = 0; i < 330; ++i) c.seg.push_back(i < 70 ? 0 : i < 80 ? 1 : i < 270 ? 2 : i < 300 ? 1 : 3);
    c.scale = -0.2f;
    cases.push_back(c);
  }
  {
    Case c{"non-finite L=150 H2/1", 1, 150, 2, 1, {}};
    for (size_t i = 0; i < 150; ++i) c.seg.push_back(i < 60 ? 1 : i < 140 ? 2 : 0);
    c.nonfinite = true;
    cases.push_back(c);
  }
  if (quick) cases.resize(3);
  if (only) {
    std::vector<Case> keep;
    for (const Case& c : cases)
      if (c.name.find(only) != std::string::npos) keep.push_back(c);
    cases.swap(keep);
  }
  for (const Case& c : cases) {
    run_all<RK_DT_F16>(c);
    run_all<RK_DT_BF16>(c);
  }
  const char* names[] = {"all-padding block", "key tile skipped", "fully visible tile", "masked tile", "non-finite V tile",
                         "warp idle for a tile"};
  printf("paths taken:");
  bool all = true;
  for (int i = 0; i < 6; ++i) {
    printf(" %s %llu%s", names[i], g_cover[i], i < 5 ? "," : "\n");
    all &= g_cover[i] > 0;
  }
  printf("ldmatrix: %llu emulated, worst bank conflict %d-way per 8-row phase; mma: %llu\n", emu::g_ldsm, emu::g_max_conflict, emu::g_mma);
  if (!quick && !only && !all) {
    printf("EMULATION FAILURES: a kernel path was never taken\n");
    return 1;
  }
  if (emu::g_max_conflict > 1) {
    printf("EMULATION FAILURES: ldmatrix bank conflicts\n");
    return 1;
  }
  printf("%s (%d of %d cases)\n", g_fails ? "EMULATION FAILURES" : "the emulated FA2 kernel agrees with the CPU kernel", g_checks - g_fails,
         g_checks);
  return g_fails != 0;
}
