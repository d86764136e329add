/* C ABI of the prepacking family (SPEC §6): packSequences, prepack, attentionMask, unpack,
 * packedAttention. */
#ifndef RK_PREPACK_H
#define RK_PREPACK_H
#include "rk_common.h"
#ifdef __cplusplus
extern "C" {
#endif

#define RK_PACK_FFD 0
#define RK_PACK_BFD 1

/* Bin-packing of n lengths (each in [0, capacity], validated by the caller) into packs of at most
 * `capacity` tokens. Sequences are placed longest first (ties by input index); FFD puts each into
 * the first pack that fits it, BFD into the fullest pack that fits it (ties: lowest pack index);
 * a sequence is appended to its pack. Zero-length sequences get pack 0, offset 0. O(n log n). */
typedef struct {
  const int32_t* lengths; /* [n] */
  size_t n;
  int64_t capacity;       /* >= 1 */
  int algorithm;          /* RK_PACK_FFD / RK_PACK_BFD */
  int32_t* pack_of;       /* [n] out */
  int32_t* offset_of;     /* [n] out */
  int32_t* pack_lengths;  /* [n] out: the first *num_packs entries are the pack loads */
  size_t* num_packs;      /* out */
} rk_pack_args;

/* The packed layout of prepack for a given placement (packOf/offsetOf of `lengths`, which are the
 * lengths actually packed: after holdLast). Validated by the caller: pack_of in [0, P), offsets +
 * lengths <= L, sequences of one pack not overlapping. Empty sequences come last in `order`. */
typedef struct {
  const int32_t* tokens;       /* [sum of src_lengths] */
  const int32_t* src_lengths;  /* [n] the input lengths (tokens layout) */
  const int32_t* lengths;      /* [n] packed lengths (src − 1 with holdLast, floored at 0) */
  const int32_t* pack_of;      /* [n] */
  const int32_t* offset_of;    /* [n] */
  size_t n, P, L;
  int32_t pad_id;
  int hold_last;
  int32_t* input_ids;    /* [P*L] out */
  int32_t* position_ids; /* [P*L] out */
  int32_t* segment_ids;  /* [P*L] out */
  int32_t* restore;      /* [n] out */
  int32_t* cu_seqlens;   /* [n+1] out */
  int32_t* order;        /* [n] out */
  int32_t* held;         /* [n] out, or NULL (holdLast only) */
} rk_prepack_fill_args;

#define RK_MASK_FORMAT_BOOL 0
#define RK_MASK_FORMAT_ADDITIVE 1

/* mask[p,i,j] = (seg[p,i] == seg[p,j] != 0 && j <= i): u8 1/0 or f32 0/−inf. */
typedef struct {
  const int32_t* segment_ids; /* [P*L] */
  size_t P, L;
  int format;
  void* mask;                 /* [P*L*L] out: uint8_t or float */
} rk_attention_mask_args;

/* rows[i, maxLen − len_i + t, :] = packed[pack_of_i, offset_of_i + t, :] for t < len_i, else 0. */
typedef struct {
  const float* packed;      /* [P*L*D] */
  const int32_t* pack_of;   /* [n] */
  const int32_t* offset_of; /* [n] */
  const int32_t* lengths;   /* [n] */
  size_t n, P, L, D, max_len;
  float* rows;              /* [n*max_len*D] out */
} rk_unpack_args;

/* out[p,i,h,:] = Σ_j softmax_j(scale·q[p,i,h]·k[p,j,g]) v[p,j,g] over j ≤ i with
 * seg[p,j] == seg[p,i] != 0, g = h / (H/Hkv); rows with seg 0 are zeros. */
typedef struct {
  const void* q;              /* [P*L*H*Dh]   dtype RK_DT_F32 (float) or RK_DT_F16/BF16 (uint16 bits) */
  const void* k;              /* [P*L*Hkv*Dh] */
  const void* v;              /* [P*L*Hkv*Dh] */
  int dtype;
  const int32_t* segment_ids; /* [P*L] */
  size_t P, L, H, Hkv, Dh;
  float scale;
  float* out;                 /* [P*L*H*Dh] out (f32) */
  /* Statistics (may be NULL): key tiles computed / skipped by the kernel (CPU: 64×64 tiles). */
  uint64_t* tiles_computed;
  uint64_t* tiles_skipped;
} rk_packed_attention_args;

void rk_cpu_pack_sequences(const rk_pack_args* a);
void rk_cpu_prepack_fill(const rk_prepack_fill_args* a);
void rk_cpu_attention_mask(const rk_attention_mask_args* a);
void rk_cpu_unpack(const rk_unpack_args* a);
void rk_cpu_packed_attention(const rk_packed_attention_args* a);

int rk_cuda_attention_mask(const rk_attention_mask_args* a, char* err, size_t errlen);
int rk_cuda_unpack(const rk_unpack_args* a, char* err, size_t errlen);
int rk_cuda_packed_attention(const rk_packed_attention_args* a, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
