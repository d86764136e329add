/* C ABI of the token log-prob family (SPEC §1). Also consumed by fusedPreferenceLoss (SPEC §4),
 * which composes rk_cpu_logprobs → sequence sums → loss → rk_cpu_logprobs_backward (and the CUDA
 * launchers in cuda/logprobs.cuh) so the logits are read twice at most.
 * Fields may be added; the names below are a contract between the two families. */
#ifndef RK_LOGPROBS_H
#define RK_LOGPROBS_H
#include "rk_common.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const void* logits;      /* [N*V], dtype RK_DT_F32 (float) or RK_DT_F16 / RK_DT_BF16 (uint16_t bits) */
  int dtype;
  const int32_t* labels;   /* [N], each in [0, V) or == ignore_index (validated by the caller) */
  size_t N, V;
  float temperature;       /* > 0 */
  int32_t ignore_index;
  float* logp;             /* [N] out */
  float* lse;              /* [N] out (may be NULL) */
  float* entropy;          /* [N] out, or NULL: not computed */
} rk_logprobs_args;

typedef struct {
  const void* logits;
  int dtype;
  const int32_t* labels;
  size_t N, V;
  const float* grad_logp;     /* [N] */
  const float* grad_entropy;  /* [N] or NULL */
  const float* lse;           /* [N] or NULL: recomputed from the logits */
  float temperature;
  int32_t ignore_index;
  float* grad_logits;         /* [N*V] out (f32); ignored rows are written as 0 */
} rk_logprobs_backward_args;

void rk_cpu_logprobs(const rk_logprobs_args* a);
void rk_cpu_logprobs_backward(const rk_logprobs_backward_args* a);
int rk_cuda_logprobs(const rk_logprobs_args* a, char* err, size_t errlen);
int rk_cuda_logprobs_backward(const rk_logprobs_backward_args* a, char* err, size_t errlen);

/* vocabKl (SPEC §1): exact per-token KL over the vocabulary between p = softmax(logits/τ) and
 * q = softmax(ref_logits/τ); both tensors have the same dtype. */
#define RK_KL_REVERSE 0 /* KL(p‖q) */
#define RK_KL_FORWARD 1 /* KL(q‖p) */
typedef struct {
  const void* logits;      /* [N*V] */
  const void* ref_logits;  /* [N*V], same dtype */
  int dtype;
  const int32_t* labels;   /* [N] or NULL: rows whose label == ignore_index give 0 */
  size_t N, V;
  float temperature;
  int32_t ignore_index;
  int direction;           /* RK_KL_REVERSE / RK_KL_FORWARD */
  float* kl;               /* [N] out */
} rk_vocab_kl_args;

typedef struct {
  const void* logits;
  const void* ref_logits;
  int dtype;
  const int32_t* labels;   /* or NULL */
  size_t N, V;
  float temperature;
  int32_t ignore_index;
  int direction;
  const float* grad_kl;    /* [N] */
  float* grad_logits;      /* [N*V] out (f32), w.r.t. logits only */
} rk_vocab_kl_backward_args;

/* sequenceLogprobs: sum_b = Σ_t m·logp (÷ count when average; empty row → 0), count_b = Σ_t m. */
typedef struct {
  const float* logp;       /* [B*T] */
  const void* mask;        /* [B*T] */
  int mask_kind;
  size_t B, T;
  int average;
  float* sum;              /* [B] out */
  int32_t* count;          /* [B] out */
} rk_sequence_logprobs_args;

void rk_cpu_vocab_kl(const rk_vocab_kl_args* a);
void rk_cpu_vocab_kl_backward(const rk_vocab_kl_backward_args* a);
void rk_cpu_sequence_logprobs(const rk_sequence_logprobs_args* a);
int rk_cuda_vocab_kl(const rk_vocab_kl_args* a, char* err, size_t errlen);
int rk_cuda_vocab_kl_backward(const rk_vocab_kl_backward_args* a, char* err, size_t errlen);
int rk_cuda_sequence_logprobs(const rk_sequence_logprobs_args* a, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
