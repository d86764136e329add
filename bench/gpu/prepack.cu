// GPU check and bench of the prepacking family: CUDA vs CPU kernels on random inputs; the Prepacking comparison (padded batch vs prepacked bins)
// for packedAttention on device-resident data, f16 packedAttention TFLOP/s on long segments, and
// attentionMask / unpack bandwidth. Length lists: the first 64 prompts of bench/data/*.json,
// regenerated here by the same deterministic generator (bench/data/generate.ts).
#include <algorithm>
#include <tuple>
#include <cmath>
#include <cstring>
#include <vector>

#include "../../cuda/prepack.cuh"
#include "../../src/include/rk_prepack.h"
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

}  // namespace

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
      double t = r.time([&] { rk_launch_packed_attention(a, 0); });
      if (lay == 0) tPad = t;
      const double bytes = rows * L * (H * Dh * 2.0 + 2 * Hkv * Dh * 2.0 + H * Dh * 4.0);
      std::string size = std::string(name) + " " + std::to_string(rows) + "x" + std::to_string(L);
      // FLOPs reported: the useful (causal-within-prompt) work, so the TFLOP/s compare directly
      r.add("prepack", lay == 0 ? "packedAttention f16 padded" : "packedAttention f16 prepacked", size, t, bytes, useful);
      if (lay == 1) printf("  %s: prepacked %.2fx faster than padded (%zu packs vs %zu rows)\n", name, tPad / t, P, len.size());
    }
  }
  // Long segments: one causal segment per pack, f16 and bf16 (tensor cores) and f32 (SIMT).
  for (size_t Dh2 : {64, 128}) {
    const size_t P = 4, L = r.quick ? 4096 : 8192, H2 = 16, Hkv2 = 16;
    Attn A(P, L, H2, Hkv2, Dh2);
    std::vector<int32_t> s(P * L, 1);
    RKG_CHECK(cudaMemcpy(A.seg.p, s.data(), s.size() * 4, cudaMemcpyHostToDevice));
    const double flops = 4.0 * Dh2 * H2 * P * (0.5 * L * (L + 1.0));
    const double bytes = P * L * (H2 * Dh2 * 2.0 * 3 + H2 * Dh2 * 4.0);
    std::string size = std::to_string(P) + "x" + std::to_string(L) + " H16 Dh" + std::to_string(Dh2);
    rk_packed_attention_args a = A.args(RK_DT_F16);
    r.add("prepack", "packedAttention f16 long", size, r.time([&] { rk_launch_packed_attention(a, 0); }, 5), bytes, flops);
    a.dtype = RK_DT_BF16;
    r.add("prepack", "packedAttention bf16 long", size, r.time([&] { rk_launch_packed_attention(a, 0); }, 5), bytes, flops);
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
