// GPU check and bench of the prepacking family: CUDA vs CPU kernels on random inputs; the Prepacking comparison (padded batch vs prepacked bins)
// for packedAttention on device-resident data, f16 packedAttention TFLOP/s on long segments, and
// attentionMask / unpack bandwidth. Length lists: the first 64 prompts of bench/data/*.json,
// regenerated here by the same deterministic generator (bench/data/generate.ts).
#include <algorithm>
#include <tuple>
#include <cmath>
#include <cstring>
#include <vector>

#include "../../src/include/rk_prepack.h"  // (before common.cuh, which uses rk_common.h's names)
#include "../../cuda/common.cuh"
#include "../../cuda/prepack.cuh"
#include "gpu_bench.cuh"

namespace {

uint32_t mulberry(uint32_t& s) {
  s += 0x6d2b79f5u;
  uint32_t t = s;
  t = (t ^ (t >> 15)) * (t | 1u);
  t ^= t + (t ^ (t >> 7)) * (t | 61u);
  return t ^ (t >> 14);
}
double u01(uint32_t& s) { return mulberry(s) / 4294967296.0; }

std::vector<int32_t> heavy_tailed(size_t n) {
  uint32_t s = 20261201u;
  std::vector<int32_t> v(n);
  for (auto& x : v) {
    double u = std::max(u01(s), 1e-12), w = u01(s);
    double z = std::sqrt(-2 * std::log(u)) * std::cos(2 * M_PI * w);
    x = (int32_t)std::min(1024.0, std::max(4.0, std::round(80 * std::exp(0.9 * z))));
  }
  return v;
}
std::vector<int32_t> near_uniform(size_t n) {
  uint32_t s = 20261202u;
  std::vector<int32_t> v(n);
  for (auto& x : v) x = 200 + (int32_t)std::floor(u01(s) * 57);
  return v;
}

// Segment ids of the padded layout (every row one segment of length Lmax) and of the FFD packing.
void layouts(const std::vector<int32_t>& len, size_t L, std::vector<int32_t>& padded, std::vector<int32_t>& packed, size_t& P) {
  const size_t n = len.size();
  padded.assign(n * L, 1);
  // plain first-fit decreasing (the bench binary links only the CUDA sources; same layout as
  // rk_cpu_pack_sequences)
  std::vector<int32_t> pack_of(n), off(n), loads;
  std::vector<size_t> ord(n);
  for (size_t i = 0; i < n; ++i) ord[i] = i;
  std::stable_sort(ord.begin(), ord.end(), [&](size_t x, size_t y) { return len[x] > len[y]; });
  for (size_t i : ord) {
    size_t p = 0;
    while (p < loads.size() && loads[p] + len[i] > (int32_t)L) ++p;
    if (p == loads.size()) loads.push_back(0);
    pack_of[i] = (int32_t)p;
    off[i] = loads[p];
    loads[p] += len[i];
  }
  P = loads.size();
  packed.assign(P * L, 0);
  std::vector<int32_t> segNo(P, 0);
  // placement order = offset order within a pack
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](size_t x, size_t y) { return pack_of[x] != pack_of[y] ? pack_of[x] < pack_of[y] : off[x] < off[y]; });
  for (size_t i : idx) {
    int32_t s = ++segNo[pack_of[i]];
    for (int32_t t = 0; t < len[i]; ++t) packed[pack_of[i] * L + off[i] + t] = s;
  }
}

double useful_flops(const std::vector<int32_t>& len, size_t H, size_t Dh) {
  double pairs = 0;
  for (int32_t l : len) pairs += 0.5 * l * (l + 1.0);
  return 4.0 * Dh * H * pairs;
}

struct Attn {
  size_t P, L, H, Hkv, Dh;
  rkg::Buf<uint16_t> q, k, v;
  rkg::Buf<float> out;
  rkg::Buf<int32_t> seg;
  Attn(size_t P_, size_t L_, size_t H_, size_t Hkv_, size_t Dh_)
      : P(P_), L(L_), H(H_), Hkv(Hkv_), Dh(Dh_), q(P_ * L_ * H_ * Dh_), k(P_ * L_ * Hkv_ * Dh_), v(P_ * L_ * Hkv_ * Dh_),
        out(P_ * L_ * H_ * Dh_), seg(P_ * L_) {
    rkg::fill_f16(q.p, q.n, -1, 1, 11);
    rkg::fill_f16(k.p, k.n, -1, 1, 12);
    rkg::fill_f16(v.p, v.n, -1, 1, 13);
  }
  rk_packed_attention_args args(int dtype) {
    rk_packed_attention_args a{};
    a.q = q.p; a.k = k.p; a.v = v.p; a.dtype = dtype; a.segment_ids = seg.p;
    a.P = P; a.L = L; a.H = H; a.Hkv = Hkv; a.Dh = Dh; a.scale = 1.0f / std::sqrt((float)Dh); a.out = out.p;
    return a;
  }
};

// packedAttention through one explicit kernel (rk_launch_packed_attention_with) on host arrays,
// with its key-tile counts; returns the CUDA status.
cudaError_t attention_with(const rk_packed_attention_args& h, int kernel, uint64_t counts[2]) {
  rkc::Staging st;
  rk_packed_attention_args d = h;
  const size_t es = h.dtype == RK_DT_F32 ? 4 : 2;
  const size_t nq = h.P * h.L * h.H * h.Dh, nk = h.P * h.L * h.Hkv * h.Dh;
  cudaError_t e;
  uint64_t* dc = nullptr;
  if ((e = st.in_bytes(h.q, nq * es, &d.q)) || (e = st.in_bytes(h.k, nk * es, &d.k)) || (e = st.in_bytes(h.v, nk * es, &d.v)) ||
      (e = st.in(h.segment_ids, h.P * h.L, &d.segment_ids)) || (e = st.out(h.out, nq, &d.out)) || (e = st.out(counts, 2, &dc)) ||
      (e = cudaMemset(dc, 0, 2 * sizeof(uint64_t))))
    return e;
  d.tiles_computed = dc;
  d.tiles_skipped = dc + 1;
  if ((e = rk_launch_packed_attention_with(d, 0, kernel))) return e;
  return st.finish();
}

// Key-tile counts of a kernel with BM-row query tiles and 64-key tiles, from the definition: per
// query tile and head, tiles before the first key its segments can see and tiles holding no key of
// its segments are skipped, the others computed; all-padding query tiles count nothing.
void expected_tiles(const int32_t* seg, size_t P, size_t L, size_t H, size_t BM, uint64_t counts[2]) {
  counts[0] = counts[1] = 0;
  for (size_t p = 0; p < P; ++p)
    for (size_t i0 = 0; i0 < L; i0 += BM) {
      const size_t i1 = std::min(L, i0 + BM);
      std::vector<int32_t> segs;
      for (size_t i = i0; i < i1; ++i)
        if (seg[p * L + i] && std::find(segs.begin(), segs.end(), seg[p * L + i]) == segs.end()) segs.push_back(seg[p * L + i]);
      if (segs.empty()) continue;
      auto in = [&](int32_t x) { return std::find(segs.begin(), segs.end(), x) != segs.end(); };
      size_t lo = i0;
      for (size_t j = 0; j < i0; ++j)
        if (in(seg[p * L + j])) { lo = j; break; }
      counts[1] += lo / 64 * H;
      for (size_t kt = lo / 64; kt <= (i1 - 1) / 64; ++kt) {
        bool any = false;
        for (size_t j = kt * 64; j < std::min(L, kt * 64 + 64); ++j) any = any || in(seg[p * L + j]);
        counts[any ? 0 : 1] += H;
      }
    }
}

struct AttnKernel {
  int id;
  const char* name;
  size_t rows(size_t Dh) const { return id == RK_ATTN_WMMA || id == RK_ATTN_FA2_M64 || Dh == 128 ? 64 : 128; }
};
const AttnKernel kAttnKernels[] = {{RK_ATTN_FA2, "fa2"}, {RK_ATTN_FA2_M64, "fa2-64"}, {RK_ATTN_WMMA, "wmma"}};

}  // namespace

// The tensor-core packedAttention kernels (FA2 with 128 and 64 query rows, WMMA) against the CPU
// kernel on f16/bf16, Dh 64/128: prepack-style runs with padding, arbitrary ids (negative ones
// too), one long segment, a segment resuming after another (skipped key tiles inside the range),
// large logits, negative scale, and NaN/±Inf in masked and visible keys (NaN must match NaN).
// Also the key-tile counts against a direct count for each kernel's query tile.
static void check_attention_kernels(rkg::Reporter& r) {
  rkg::Rand g(62);
  struct Case { const char* name; size_t P, L, H, Hkv; std::vector<int32_t> seg; float amp, scale; bool nonfinite; };
  std::vector<Case> cases;
  {
    Case c{"runs", 3, 300, 4, 2, {}, 2, 0, false};
    for (size_t p = 0; p < c.P; ++p) {
      size_t i = 0;
      for (int32_t id = 1; i < c.L; ++id) {
        const size_t len = 1 + g.next() % 90;
        const bool pad = g.uniform(0, 1) < 0.15f;
        for (size_t t = 0; t < len && i < c.L; ++t, ++i) c.seg.push_back(pad ? 0 : id);
      }
    }
    cases.push_back(c);
  }
  {
    Case c{"ids -1..2", 2, 150, 3, 1, {}, 2, 0, false};
    for (size_t i = 0; i < c.P * c.L; ++i) c.seg.push_back((int32_t)(g.next() % 4) - 1);
    cases.push_back(c);
  }
  cases.push_back({"one segment, amp 4", 1, 1000, 8, 2, std::vector<int32_t>(1000, 5), 4, 0, false});
  {
    Case c{"gaps, lead pad, scale -0.2", 1, 330, 2, 1, {}, 2, -0.2f, false};
    for (size_t i = 0; i < c.L; ++i) c.seg.push_back(i < 70 ? 0 : i < 80 ? 1 : i < 270 ? 2 : i < 300 ? 1 : 3);
    cases.push_back(c);
  }
  {
    Case c{"non-finite", 1, 150, 2, 1, {}, 2, 0, true};
    for (size_t i = 0; i < c.L; ++i) c.seg.push_back(i < 60 ? 1 : i < 140 ? 2 : 0);
    cases.push_back(c);
  }
  for (const Case& c : cases)
    for (size_t Dh : {64, 128})
      for (int dt : {RK_DT_F16, RK_DT_BF16}) {
        const size_t nq = c.P * c.L * c.H * Dh, nk = c.P * c.L * c.Hkv * Dh;
        auto enc = [&](float x) {
          uint32_t u;
          memcpy(&u, &x, 4);
          return dt == RK_DT_BF16 ? (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16) : __half_as_ushort(__float2half_rn(x));
        };
        std::vector<uint16_t> q(nq), k(nk), v(nk);
        for (auto& x : q) x = enc(g.uniform(-c.amp, c.amp));
        for (auto& x : k) x = enc(g.uniform(-c.amp, c.amp));
        for (auto& x : v) x = enc(g.uniform(-1, 1));
        if (c.nonfinite) {  // kv head 0 (Hkv = 1); rows/keys as in tests/cuda-emu/prepack_emu.cc
          const uint16_t inf = dt == RK_DT_BF16 ? 0x7f80 : 0x7c00, nan = dt == RK_DT_BF16 ? 0x7fc0 : 0x7e00;
          for (size_t d = 0; d < Dh; ++d) {
            v[100 * Dh + d] = inf;  // segment 2: seen by rows ≥ 100 only
            k[145 * Dh + d] = nan;  // padding keys
            v[146 * Dh + d] = nan;
            q[(147 * c.H + 1) * Dh + d] = nan;  // a padding row
          }
          v[30 * Dh + 5] = nan;                       // segment 1: rows ≥ 30, column 5
          v[70 * Dh + 3] = (uint16_t)(inf | 0x8000);  // segment 2: −Inf, rows ≥ 70, column 3
        }
        rk_packed_attention_args a{};
        a.q = q.data(); a.k = k.data(); a.v = v.data(); a.dtype = dt; a.segment_ids = c.seg.data();
        a.P = c.P; a.L = c.L; a.H = c.H; a.Hkv = c.Hkv; a.Dh = Dh;
        a.scale = c.scale != 0 ? c.scale : 1.0f / std::sqrt((float)Dh);
        std::vector<float> want(nq);
        a.out = want.data();
        rk_cpu_packed_attention(&a);
        for (const AttnKernel& ker : kAttnKernels) {
          std::vector<float> got(nq, 1e30f);  // every element must be written
          a.out = got.data();
          uint64_t counts[2] = {0, 0}, expect[2];
          const cudaError_t e = attention_with(a, ker.id, counts);
          const std::string what = std::string("prepack/packedAttention (") + ker.name + ") " + (dt == RK_DT_F16 ? "f16" : "bf16") +
                                   " Dh" + std::to_string(Dh) + " " + c.name;
          r.check.status(what.c_str(), e != cudaSuccess, cudaGetErrorString(e));
          if (e != cudaSuccess) { cudaGetLastError(); continue; }
          r.check.close(what.c_str(), got.data(), want.data(), nq, 2e-3);
          expected_tiles(c.seg.data(), c.P, c.L, c.H, ker.rows(Dh), expect);
          const int32_t gc[2] = {(int32_t)counts[0], (int32_t)counts[1]}, ec[2] = {(int32_t)expect[0], (int32_t)expect[1]};
          r.check.equal_i32((what + " tiles").c_str(), gc, ec, 2);
        }
      }
}

// CUDA entry points (host pointers) against the CPU kernels on random inputs.
static void check_prepack(rkg::Reporter& r) {
  rkg::Rand g(61);
  char err[512] = {0};
  // Segment ids: prepack-style contiguous runs plus padding, and arbitrary (non-contiguous) ids.
  auto runs = [&](size_t P, size_t L) {
    std::vector<int32_t> s(P * L, 0);
    for (size_t p = 0; p < P; ++p) {
      size_t i = 0;
      int32_t id = 1;
      while (i < L) {
        size_t len = 1 + g.next() % (L / 3 + 1);
        if (g.uniform(0, 1) < 0.15f) break;  // the rest is padding
        for (size_t t = 0; t < len && i < L; ++t) s[p * L + i++] = id;
        ++id;
      }
    }
    return s;
  };
  for (auto [P, L] : {std::pair<size_t, size_t>{1, 1}, {2, 37}, {3, 128}, {2, 300}}) {
    for (int arbitrary = 0; arbitrary < 2; ++arbitrary) {
      std::vector<int32_t> seg = arbitrary ? g.ints(P * L, 4) : runs(P, L);
      const std::string tag = std::string(arbitrary ? " ids" : " runs") + " L=" + std::to_string(L);
      for (int fmt : {RK_MASK_FORMAT_BOOL, RK_MASK_FORMAT_ADDITIVE}) {
        const size_t n = P * L * L;
        std::vector<float> f1(n), f2(n);
        std::vector<uint8_t> u1(n), u2(n);
        rk_attention_mask_args a{seg.data(), P, L, fmt, fmt ? (void*)f1.data() : (void*)u1.data()};
        rk_cpu_attention_mask(&a);
        a.mask = fmt ? (void*)f2.data() : (void*)u2.data();
        r.check.status("attentionMask", rk_cuda_attention_mask(&a, err, sizeof err), err);
        if (fmt) r.check.close(("prepack/attentionMask additive" + tag).c_str(), f2.data(), f1.data(), n, 0);
        else {
          std::vector<int32_t> i1(u1.begin(), u1.end()), i2(u2.begin(), u2.end());
          r.check.equal_i32(("prepack/attentionMask bool" + tag).c_str(), i2.data(), i1.data(), n);
        }
      }
      // packedAttention: f32 (SIMT) on several head sizes and GQA ratios; f16/bf16 (tensor cores)
      struct Shape { size_t H, Hkv, Dh; };
      for (Shape sh : {Shape{1, 1, 1}, Shape{4, 2, 8}, Shape{4, 1, 64}, Shape{2, 2, 130}, Shape{8, 2, 64}, Shape{4, 4, 128}, Shape{2, 1, 300}}) {
        const size_t nq = P * L * sh.H * sh.Dh, nk = P * L * sh.Hkv * sh.Dh;
        for (int dt : {RK_DT_F32, RK_DT_F16, RK_DT_BF16}) {
          if (dt != RK_DT_F32 && sh.Dh != 64 && sh.Dh != 128 && sh.Dh != 8) continue;
          auto qf = g.floats(nq, -2, 2), kf = g.floats(nk, -2, 2), vf = g.floats(nk, -1, 1);
          std::vector<uint16_t> q16(nq), k16(nk), v16(nk);
          auto enc = [&](const std::vector<float>& x, std::vector<uint16_t>& y) {
            for (size_t i = 0; i < x.size(); ++i) {
              uint32_t u;
              memcpy(&u, &x[i], 4);
              if (dt == RK_DT_BF16) y[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
              else y[i] = __half_as_ushort(__float2half_rn(x[i]));
            }
          };
          if (dt != RK_DT_F32) enc(qf, q16), enc(kf, k16), enc(vf, v16);
          std::vector<float> o1(nq), o2(nq);
          rk_packed_attention_args a{};
          a.q = dt == RK_DT_F32 ? (const void*)qf.data() : q16.data();
          a.k = dt == RK_DT_F32 ? (const void*)kf.data() : k16.data();
          a.v = dt == RK_DT_F32 ? (const void*)vf.data() : v16.data();
          a.dtype = dt;
          a.segment_ids = seg.data();
          a.P = P; a.L = L; a.H = sh.H; a.Hkv = sh.Hkv; a.Dh = sh.Dh;
          a.scale = 1.0f / std::sqrt((float)sh.Dh);
          a.out = o1.data();
          rk_cpu_packed_attention(&a);
          a.out = o2.data();
          r.check.status("packedAttention", rk_cuda_packed_attention(&a, err, sizeof err), err);
          const char* dn = dt == RK_DT_F32 ? "f32" : dt == RK_DT_F16 ? "f16" : "bf16";
          std::string what = "prepack/packedAttention " + std::string(dn) + " H" + std::to_string(sh.H) + "/" +
                             std::to_string(sh.Hkv) + " Dh" + std::to_string(sh.Dh) + tag;
          // f16/bf16 on tensor cores round P to 16 bits (bf16: hi + lo): 2e-3 relative
          r.check.close(what.c_str(), o2.data(), o1.data(), nq, dt == RK_DT_F32 ? 2e-5 : 2e-3);
          if (dt != RK_DT_F32 && (sh.Dh == 64 || sh.Dh == 128))  // the default is fa2: the others too
            for (const AttnKernel& ker : kAttnKernels) {
              if (ker.id == RK_ATTN_FA2) continue;
              uint64_t counts[2];
              std::fill(o2.begin(), o2.end(), 1e30f);
              const cudaError_t e = attention_with(a, ker.id, counts);
              r.check.status("packedAttention", e != cudaSuccess, cudaGetErrorString(e));
              r.check.close((what + " (" + ker.name + ")").c_str(), o2.data(), o1.data(), nq, 2e-3);
            }
        }
      }
    }
  }
  // unpack
  for (auto [n, L, D] : {std::tuple<size_t, size_t, size_t>{1, 1, 1}, {7, 40, 3}, {64, 256, 130}}) {
    std::vector<int32_t> len(n), pack_of(n), off(n), loads;
    for (auto& l : len) l = (int32_t)(g.next() % (L + 1));
    for (size_t i = 0; i < n; ++i) {  // next fit: enough for a valid layout
      if (loads.empty() || loads.back() + len[i] > (int32_t)L) loads.push_back(0);
      pack_of[i] = (int32_t)loads.size() - 1;
      off[i] = loads.back();
      loads.back() += len[i];
    }
    const size_t P = loads.size();
    size_t maxLen = 0;
    for (auto l : len) maxLen = std::max(maxLen, (size_t)l);
    auto packed = g.floats(P * L * D, -3, 3);
    std::vector<float> r1(n * maxLen * D), r2(r1.size());
    rk_unpack_args a{packed.data(), pack_of.data(), off.data(), len.data(), n, P, L, D, maxLen, r1.data()};
    rk_cpu_unpack(&a);
    a.rows = r2.data();
    r.check.status("unpack", rk_cuda_unpack(&a, err, sizeof err), err);
    r.check.close(("prepack/unpack n=" + std::to_string(n)).c_str(), r2.data(), r1.data(), r1.size(), 0);
  }
}

void gpu_bench_prepack(rkg::Reporter& r) {
  check_prepack(r);
  check_attention_kernels(r);
  const size_t H = 8, Hkv = 2, Dh = 64;
  for (int which = 0; which < 2; ++which) {
    std::vector<int32_t> len = which == 0 ? heavy_tailed(64) : near_uniform(64);
    const char* name = which == 0 ? "heavy-tailed" : "near-uniform";
    size_t L = 0;
    for (int32_t l : len) L = std::max(L, (size_t)l);
    std::vector<int32_t> padded, packed;
    size_t P = 0;
    layouts(len, L, padded, packed, P);
    const double useful = useful_flops(len, H, Dh);
    double tPad = 0;
    for (int lay = 0; lay < 2; ++lay) {
      const size_t rows = lay == 0 ? len.size() : P;
      Attn A(rows, L, H, Hkv, Dh);
      const auto& s = lay == 0 ? padded : packed;
      RKG_CHECK(cudaMemcpy(A.seg.p, s.data(), s.size() * 4, cudaMemcpyHostToDevice));
      rk_packed_attention_args a = A.args(RK_DT_F16);
      const double bytes = rows * L * (H * Dh * 2.0 + 2 * Hkv * Dh * 2.0 + H * Dh * 4.0);
      std::string size = std::string(name) + " " + std::to_string(rows) + "x" + std::to_string(L);
      double tk[3] = {0, 0, 0};
      for (int ki = 0; ki < 3; ++ki) {  // FA2 (128-row tiles at Dh 64), FA2 with 64-row tiles, WMMA
        const AttnKernel& ker = kAttnKernels[ki];
        tk[ki] = r.time([&] { rk_launch_packed_attention_with(a, 0, ker.id); });
        // FLOPs reported: the useful (causal-within-prompt) work, so the TFLOP/s compare directly
        const std::string op = std::string(lay == 0 ? "packedAttention f16 padded" : "packedAttention f16 prepacked") + " (" + ker.name + ")";
        r.add("prepack", op.c_str(), size, tk[ki], bytes, useful);
      }
      printf("  %s %s: fa2 %.2fx, fa2-64 %.2fx the speed of wmma\n", name, lay == 0 ? "padded" : "prepacked", tk[2] / tk[0], tk[2] / tk[1]);
      if (lay == 0) tPad = tk[0];
      if (lay == 1) printf("  %s: prepacked %.2fx faster than padded (fa2; %zu packs vs %zu rows)\n", name, tPad / tk[0], P, len.size());
    }
  }
  // Long segments: one causal segment per pack, f16 and bf16, each tensor-core kernel.
  for (size_t Dh2 : {64, 128}) {
    const size_t P = 4, L = r.quick ? 4096 : 8192, H2 = 16, Hkv2 = 16;
    Attn A(P, L, H2, Hkv2, Dh2);
    std::vector<int32_t> s(P * L, 1);
    RKG_CHECK(cudaMemcpy(A.seg.p, s.data(), s.size() * 4, cudaMemcpyHostToDevice));
    const double flops = 4.0 * Dh2 * H2 * P * (0.5 * L * (L + 1.0));
    const double bytes = P * L * (H2 * Dh2 * 2.0 * 3 + H2 * Dh2 * 4.0);
    std::string size = std::to_string(P) + "x" + std::to_string(L) + " H16 Dh" + std::to_string(Dh2);
    for (int dt : {RK_DT_F16, RK_DT_BF16}) {
      rk_packed_attention_args a = A.args(dt);
      double tk[3] = {0, 0, 0};
      for (int ki = 0; ki < 3; ++ki) {  // FA2 (default tile), FA2 with 64-row tiles (Dh 64 only), WMMA
        const AttnKernel& ker = kAttnKernels[ki];
        if (ker.id == RK_ATTN_FA2_M64 && Dh2 != 64) continue;
        tk[ki] = r.time([&] { rk_launch_packed_attention_with(a, 0, ker.id); }, 5);
        const std::string op = std::string(dt == RK_DT_F16 ? "packedAttention f16 long" : "packedAttention bf16 long") + " (" + ker.name + ")";
        r.add("prepack", op.c_str(), size, tk[ki], bytes, flops);
      }
      printf("  long %s Dh%zu: fa2 %.2fx the speed of wmma\n", dt == RK_DT_F16 ? "f16" : "bf16", Dh2, tk[2] / tk[0]);
    }
  }
  // attentionMask (bool) and unpack on a prepacked heavy-tailed batch of 1024 prompts.
  {
    std::vector<int32_t> len = heavy_tailed(1024);
    std::vector<int32_t> padded, packed;
    size_t P = 0, L = 1024;
    layouts(len, L, padded, packed, P);
    rkg::Buf<int32_t> seg(P * L);
    RKG_CHECK(cudaMemcpy(seg.p, packed.data(), packed.size() * 4, cudaMemcpyHostToDevice));
    rkg::Buf<uint8_t> mask(P * L * L);
    rk_attention_mask_args m{seg.p, P, L, RK_MASK_FORMAT_BOOL, mask.p};
    r.add("prepack", "attentionMask (bool)", std::to_string(P) + "x1024x1024", r.time([&] { rk_launch_attention_mask(m, 0); }),
          P * L * L + P * L * 4.0);
  }
}
