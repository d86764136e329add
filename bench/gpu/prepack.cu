// GPU bench of the prepacking family: the Prepacking comparison (padded batch vs prepacked bins)
// for packedAttention on device-resident data, f16 packedAttention TFLOP/s on long segments, and
// attentionMask / unpack bandwidth. Length lists: the first 64 prompts of bench/data/*.json,
// regenerated here by the same deterministic generator (bench/data/generate.ts).
#include <algorithm>
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

void gpu_bench_prepack(rkg::Reporter& r) {
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
