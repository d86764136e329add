/* C ABI of the linear family (SPEC §8): token log-probs straight from hidden states,
 * logits = hidden·weightᵀ + bias, computed one vocabulary chunk at a time and folded into an online
 * log-sum-exp, never stored as [N, V]. Inputs are validated by the caller (shapes, labels in
 * [0, V) or ignore_index); kernels do no checking. Rows whose label is ignore_index are never read. */
#ifndef RK_LINEAR_H
#define RK_LINEAR_H
#include "rk_common.h"
#include "rk_preference.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  const void* hidden;      /* [N*D], dtype `dtype` (RK_DT_F32 float, RK_DT_F16 / RK_DT_BF16 uint16_t bits) */
  const void* weight;      /* [V*D], same dtype (the LM head, nn.Linear layout: row j = vocabulary entry j) */
  const float* bias;       /* [V] or NULL */
  int dtype;
  const int32_t* labels;   /* [N], each in [0, V) or == ignore_index */
  size_t N, V, D;          /* V >= 1, D >= 1 */
  size_t chunk;            /* vocabulary columns per chunk; 0 = the backend's default */
  float temperature;       /* > 0: z = (hidden·weightᵀ + bias) / temperature */
  int32_t ignore_index;
  float* logp;             /* [N] out */
  float* lse;              /* [N] out (may be NULL) */
  float* entropy;          /* [N] out, or NULL: not computed */
} rk_linear_logprobs_args;

typedef struct {
  const void* hidden;
  const void* weight;
  const float* bias;       /* [V] or NULL (then grad_bias is not written) */
  int dtype;
  const int32_t* labels;
  size_t N, V, D;
  size_t chunk;
  float temperature;
  int32_t ignore_index;
  const float* grad_logp;     /* [N] */
  const float* grad_entropy;  /* [N] or NULL */
  const float* lse;           /* [N] from the forward, or NULL: recomputed (one more pass) */
  const float* entropy;       /* [N] from the forward; needed with grad_entropy, else recomputed */
  float* grad_hidden;         /* [N*D] out (f32); ignored rows are written as 0 */
  float* grad_weight;         /* [V*D] out (f32) */
  float* grad_bias;           /* [V] out (f32) or NULL */
} rk_linear_logprobs_backward_args;

/* linearPreferenceLoss: fusedPreferenceLoss (rk_preference.h) from hidden states. `f` carries the
 * token-level and loss fields of fusedPreferenceLoss (its logits / grad_logits / dtype fields are
 * unused: hidden, weight, bias and the gradients below take their place; f.V is the vocabulary). */
typedef struct {
  rk_fused_preference_args f;
  const void* hidden;      /* [2B*T*D] */
  const void* weight;      /* [V*D] */
  const float* bias;       /* [V] or NULL */
  int dtype;
  size_t D;
  size_t chunk;
  float* grad_hidden;      /* [2B*T*D] out */
  float* grad_weight;      /* [V*D] out */
  float* grad_bias;        /* [V] out or NULL */
} rk_linear_preference_args;

void rk_cpu_linear_logprobs(const rk_linear_logprobs_args* a);
void rk_cpu_linear_logprobs_backward(const rk_linear_logprobs_backward_args* a);
void rk_cpu_linear_preference_loss(const rk_linear_preference_args* a);
int rk_cuda_linear_logprobs(const rk_linear_logprobs_args* a, char* err, size_t errlen);
int rk_cuda_linear_logprobs_backward(const rk_linear_logprobs_backward_args* a, char* err, size_t errlen);
int rk_cuda_linear_preference_loss(const rk_linear_preference_args* a, char* err, size_t errlen);

/* The product alone, logits[N*V] = hidden·weightᵀ + bias (f32), with the same GEMM and blocking:
 * the yardstick of the benchmarks (fused vs GEMM alone vs GEMM + logprobs). */
void rk_cpu_linear_logits(const void* hidden, const void* weight, const float* bias, int dtype, size_t N, size_t V, size_t D,
                          size_t chunk, float* logits);
int rk_cuda_linear_logits(const void* hidden, const void* weight, const float* bias, int dtype, size_t N, size_t V, size_t D,
                          float* logits, char* err, size_t errlen);

/* Scratch bytes a CPU call allocates beyond its inputs and outputs (the exact sum of its buffers),
 * for `Na` counted rows and the current thread count: forward (backward = 0) or backward (= 1). */
size_t rk_cpu_linear_scratch_bytes(size_t Na, size_t V, size_t D, size_t chunk, int backward);

#ifdef __cplusplus
}
#endif
#endif
