/* C ABI of the sampling family (SPEC §7): speculativeVerify, specDecStop, geometricMixture,
 * rejectionSample. */
#ifndef RK_SAMPLING_H
#define RK_SAMPLING_H
#include "rk_common.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Per-row status written by speculativeVerify / rejectionSample (the values the rule reads are
 * checked by the kernel itself: checking whole [B,K,V] tensors up front would cost more than the op). */
#define RK_SAMPLING_OK 0
#define RK_SAMPLING_BAD_PROB 1    /* a probability read is NaN, ±Inf or negative */
#define RK_SAMPLING_ZERO_MASS 2   /* the distribution to sample from has total mass 0 */
#define RK_SAMPLING_BAD_REWARD 3  /* rejectionSample: a reward is not finite */
#define RK_SAMPLING_BAD_UNIFORM 4 /* rejectionSample: a uniform read is outside [0, 1) */
#define RK_SAMPLING_NO_ROUNDS 5   /* rejectionSample: uniforms ran out (cannot happen with valid inputs) */

typedef struct {
  const int32_t* draft_tokens; /* [B*K], each in [0, V) (checked by the caller) */
  const float* draft_probs;    /* [B*K*V]   q_i */
  const float* target_probs;   /* [B*(K+1)*V] p_i */
  const float* uniforms;       /* [B*(K+1)], each in [0, 1) */
  size_t B, K, V;
  int32_t* accepted;           /* [B] out */
  int32_t* next_token;         /* [B] out (-1 where status != OK) */
  int32_t* status;             /* [B] out, RK_SAMPLING_* */
} rk_speculative_verify_args;

typedef struct {
  const float* accept_probs;   /* [B*K] */
  size_t B, K;
  double threshold;            /* in [0, 1] */
  size_t min_length, max_length;
  int32_t* length;             /* [B] out; -1 where a P̂ read is outside [0, 1] */
} rk_spec_dec_stop_args;

typedef struct {
  const void* logits;          /* [N*V], dtype RK_DT_* */
  int logits_dtype;
  const void* ref_logits;      /* [N*V], dtype RK_DT_* */
  int ref_dtype;
  size_t N, V;
  float beta;                  /* in [0, 1] */
  float* logp;                 /* [N*V] out */
} rk_geometric_mixture_args;

typedef struct {
  const float* rewards;        /* [G*K] */
  const float* uniforms;       /* [G*K*K]: [g, round, candidate] */
  size_t G, K, num_samples;    /* 1 <= num_samples <= K */
  double beta;                 /* > 0 */
  int32_t* selected;           /* [G*num_samples] out */
  int32_t* status;             /* [G] out, RK_SAMPLING_* */
} rk_rejection_sample_args;

void rk_cpu_speculative_verify(const rk_speculative_verify_args* a);
void rk_cpu_spec_dec_stop(const rk_spec_dec_stop_args* a);
void rk_cpu_geometric_mixture(const rk_geometric_mixture_args* a);
void rk_cpu_rejection_sample(const rk_rejection_sample_args* a);

int rk_cuda_speculative_verify(const rk_speculative_verify_args* a, char* err, size_t errlen);
int rk_cuda_spec_dec_stop(const rk_spec_dec_stop_args* a, char* err, size_t errlen);
int rk_cuda_geometric_mixture(const rk_geometric_mixture_args* a, char* err, size_t errlen);
int rk_cuda_rejection_sample(const rk_rejection_sample_args* a, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
