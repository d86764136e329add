/* C ABI of the reward family (SPEC §2): klPenalty, tokenRewards, rtoRewards, implicitRewards. */
#ifndef RK_REWARDS_H
#define RK_REWARDS_H
#include "rk_common.h"
#ifdef __cplusplus
extern "C" {
#endif

/* KL estimators on d = logp − refLogp (Schulman's k1/k2/k3, and |d|). */
#define RK_KL_K1 0
#define RK_KL_K2 1
#define RK_KL_K3 2
#define RK_KL_ABS 3

typedef struct {
  const float* logp;     /* [B*T] */
  const float* ref_logp; /* [B*T] */
  const void* mask;      /* [B*T] or NULL */
  int mask_kind;
  float* kl;             /* [B*T] out */
  size_t B, T;
  int estimator;
  int has_clamp;
  float clamp;
} rk_kl_penalty_args;

typedef struct {
  const float* logp, *ref_logp; /* [B*T] */
  const void* mask;             /* [B*T] (required) */
  int mask_kind;
  const float* scores;          /* [B] */
  float* rewards;               /* [B*T] out */
  size_t B, T;
  float kl_coef;
  int estimator;
  int has_score_clip;
  float score_clip;
} rk_token_rewards_args;

typedef struct {
  const float* dpo_logp, *ref_logp, *logp; /* [B*T] */
  const void* mask;
  int mask_kind;
  const float* scores;                     /* [B] or NULL */
  float* rewards;                          /* [B*T] out */
  size_t B, T;
  float beta1, beta2, beta3;
  int has_dpo_clip;
  float dpo_clip;
} rk_rto_rewards_args;

typedef struct {
  const float* logp, *ref_logp;
  const void* mask;
  int mask_kind;
  float* rewards;
  size_t B, T;
  float beta;
} rk_implicit_rewards_args;

void rk_cpu_kl_penalty(const rk_kl_penalty_args* a);
void rk_cpu_token_rewards(const rk_token_rewards_args* a);
void rk_cpu_rto_rewards(const rk_rto_rewards_args* a);
void rk_cpu_implicit_rewards(const rk_implicit_rewards_args* a);

int rk_cuda_kl_penalty(const rk_kl_penalty_args* a, char* err, size_t errlen);
int rk_cuda_token_rewards(const rk_token_rewards_args* a, char* err, size_t errlen);
int rk_cuda_rto_rewards(const rk_rto_rewards_args* a, char* err, size_t errlen);
int rk_cuda_implicit_rewards(const rk_implicit_rewards_args* a, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
