// N-API glue of the prepacking family (SPEC §6). The packing ops (packSequences, prepack's fill)
// are host bookkeeping: their `cuda` backend runs the same CPU code (documented in docs/prepack.md).
#include "../include/rk_prepack.h"

#include <string>

#include "args.hpp"

namespace rk_addon {
namespace {

void check_lengths(Args& in, const int32_t* len, size_t n, int64_t cap, const char* name) {
  for (size_t i = 0; i < n; ++i)
    if (len[i] < 0 || (cap >= 0 && len[i] > cap)) in.range(name, "lengths in [0, capacity]");
}

// packSequences(n, lengths, capacity, algorithm, packOf, offsetOf, packLengths[n]) → P
Napi::Value PackSequences(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_pack_args a{};
  a.n = in.size("n");
  a.lengths = in.i32("lengths", a.n);
  double cap = in.size("capacity");
  if (cap < 1 || cap > 2147483647.0) in.range("capacity", "an integer in [1, 2^31 - 1]");
  a.capacity = (int64_t)cap;
  a.algorithm = (int)in.integer("algorithm") == RK_PACK_BFD ? RK_PACK_BFD : RK_PACK_FFD;
  a.pack_of = in.i32_out("packOf", a.n);
  a.offset_of = in.i32_out("offsetOf", a.n);
  a.pack_lengths = in.i32_out("packLengths", a.n);
  check_lengths(in, a.lengths, a.n, a.capacity, "lengths");
  size_t* P = in.host_scratch<size_t>(1);
  a.num_packs = P;
  return in.run(a, kernels(rk_cpu_pack_sequences), [P](Napi::Env env) { return Napi::Number::New(env, (double)*P); });
}

// prepackFill(n, P, L, total, tokens, srcLengths, lengths, packOf, offsetOf, inputIds, positionIds,
//             segmentIds, restore, cuSeqlens, order, held[n], padId, holdLast)
Napi::Value PrepackFill(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_prepack_fill_args a{};
  a.n = in.size("n");
  a.P = in.size("P");
  a.L = in.size("L");
  size_t total = in.size("total");
  size_t PL = mul_sizes(in.env(), a.P, a.L, "P*L");
  if (PL > 2147483647u || total > 2147483647u) in.range("P*L", "at most 2^31 - 1 (int32 indices)");
  if (a.P > a.n) in.range("P", "at most n (every pack holds a sequence)");  // (P-sized scratch)
  a.tokens = in.i32("tokens", total);
  a.src_lengths = in.i32("srcLengths", a.n);
  a.lengths = in.i32("lengths", a.n);
  a.pack_of = in.i32("packOf", a.n);
  a.offset_of = in.i32("offsetOf", a.n);
  a.input_ids = in.i32_out("inputIds", PL);
  a.position_ids = in.i32_out("positionIds", PL);
  a.segment_ids = in.i32_out("segmentIds", PL);
  a.restore = in.i32_out("restore", a.n);
  a.cu_seqlens = in.i32_out("cuSeqlens", a.n + 1);
  a.order = in.i32_out("order", a.n);
  int32_t* held = in.i32_out("held", a.n);  // always given; written only with holdLast
  int64_t pad = in.integer("padId");
  if (pad < INT32_MIN || pad > INT32_MAX) in.range("padId", "an int32");
  a.pad_id = (int32_t)pad;
  a.hold_last = in.boolean("holdLast") ? 1 : 0;
  a.held = a.hold_last ? held : nullptr;
  // Defence in depth: the layout must lie inside the buffers.
  size_t sum = 0;
  for (size_t i = 0; i < a.n; ++i) {
    int32_t s = a.src_lengths[i], l = a.lengths[i];
    if (s < 0 || l < 0 || l > s) in.range("lengths", "0 <= lengths <= srcLengths");
    sum += (size_t)s;
    if (l > 0 && (a.pack_of[i] < 0 || (size_t)a.pack_of[i] >= a.P || a.offset_of[i] < 0 ||
                  (size_t)a.offset_of[i] + (size_t)l > a.L))
      in.range("packOf/offsetOf", "a layout inside [P, L]");
  }
  if (sum != total) in.range("tokens", "the sum of srcLengths elements");
  return in.run(a, kernels(rk_cpu_prepack_fill));
}

// attentionMask(P, L, segmentIds, mask (Uint8Array | Float32Array), format, useCuda)
Napi::Value AttentionMask(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_attention_mask_args a{};
  a.P = in.size("P");
  a.L = in.size("L");
  size_t PL = mul_sizes(in.env(), a.P, a.L, "P*L");
  size_t PLL = mul_sizes(in.env(), PL, a.L, "P*L*L");
  a.segment_ids = in.i32("segmentIds", PL);
  bool isF32 = in.dtype_at(3) == RK_DT_F32;
  void* mask = isF32 ? (void*)in.f32_out("mask", PLL) : (void*)in.u8_out("mask", PLL);
  int format = (int)in.integer("format");
  if (format != (isF32 ? RK_MASK_FORMAT_ADDITIVE : RK_MASK_FORMAT_BOOL)) in.fail_type("mask", "the array type of the format");
  a.mask = mask;
  a.format = format;
  in.use_cuda();
  return in.run(a, RK_KERNELS(attention_mask));
}

// unpack(n, P, L, D, maxLen, packed, packOf, offsetOf, lengths, rows, useCuda)
Napi::Value Unpack(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_unpack_args a{};
  a.n = in.size("n");
  a.P = in.size("P");
  a.L = in.size("L");
  a.D = in.size("D");
  a.max_len = in.size("maxLen");
  size_t PLD = mul_sizes(in.env(), mul_sizes(in.env(), a.P, a.L, "P*L"), a.D, "P*L*D");
  size_t rows = mul_sizes(in.env(), mul_sizes(in.env(), a.n, a.max_len, "n*maxLen"), a.D, "n*maxLen*D");
  a.packed = in.f32("packed", PLD);
  a.pack_of = in.i32("packOf", a.n);
  a.offset_of = in.i32("offsetOf", a.n);
  a.lengths = in.i32("lengths", a.n);
  a.rows = in.f32_out("rows", rows);
  // device layouts are read back for this check (3n int32)
  const int32_t* lengths = in.peek_i32(a.lengths, a.n);
  const int32_t* pack_of = in.peek_i32(a.pack_of, a.n);
  const int32_t* offset_of = in.peek_i32(a.offset_of, a.n);
  for (size_t i = 0; i < a.n; ++i) {
    int32_t l = lengths[i];
    if (l < 0 || (size_t)l > a.max_len) in.range("lengths", "in [0, maxLen]");
    if (l > 0 && (pack_of[i] < 0 || (size_t)pack_of[i] >= a.P || offset_of[i] < 0 ||
                  (size_t)offset_of[i] + (size_t)l > a.L))
      in.range("packOf/offsetOf", "a layout inside [P, L]");
  }
  in.use_cuda();
  return in.run(a, RK_KERNELS(unpack));
}

// packedAttention(P, L, H, Hkv, Dh, dtype, q, k, v, segmentIds, out, scale, useCuda)
//   → { tilesComputed, tilesSkipped }
Napi::Value PackedAttention(const Napi::CallbackInfo& info) {
  Args in(info);
  rk_packed_attention_args a{};
  a.P = in.size("P");
  a.L = in.size("L");
  a.H = in.size("H");
  a.Hkv = in.size("Hkv");
  a.Dh = in.size("Dh");
  a.dtype = (int)in.integer("dtype");
  if (a.dtype != RK_DT_F32 && a.dtype != RK_DT_F16 && a.dtype != RK_DT_BF16) in.range("dtype", "0, 1 or 2");
  if (a.Hkv == 0 || a.H % a.Hkv != 0) in.range("Hkv", "a positive divisor of H");
  size_t PL = mul_sizes(in.env(), a.P, a.L, "P*L");
  size_t nq = mul_sizes(in.env(), mul_sizes(in.env(), PL, a.H, "P*L*H"), a.Dh, "P*L*H*Dh");
  size_t nk = mul_sizes(in.env(), mul_sizes(in.env(), PL, a.Hkv, "P*L*Hkv"), a.Dh, "P*L*Hkv*Dh");
  a.q = in.logits("q", nq, a.dtype);
  a.k = in.logits("k", nk, a.dtype);
  a.v = in.logits("v", nk, a.dtype);
  a.segment_ids = in.i32("segmentIds", PL);
  a.out = in.f32_out("out", nq);
  a.scale = (float)in.finite("scale");
  in.use_cuda();
  // tile statistics: host counters (device calls: not collected, NaN)
  bool counted = !in.cuda_device_call();
  uint64_t* tiles = in.host_scratch<uint64_t>(2);
  a.tiles_computed = counted ? tiles : nullptr;
  a.tiles_skipped = counted ? tiles + 1 : nullptr;
  return in.run(a, RK_KERNELS(packed_attention), [tiles, counted](Napi::Env env) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("tilesComputed", counted ? (double)tiles[0] : NAN);
    r.Set("tilesSkipped", counted ? (double)tiles[1] : NAN);
    return r;
  });
}

}  // namespace

void register_prepack(Napi::Env env, Napi::Object exports) {
  reg(env, exports, "packSequences", PackSequences);
  reg(env, exports, "prepackFill", PrepackFill);
  reg(env, exports, "attentionMask", AttentionMask);
  reg(env, exports, "unpack", Unpack);
  reg(env, exports, "packedAttention", PackedAttention);
}

}  // namespace rk_addon
