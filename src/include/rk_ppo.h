/* C ABI of the PPO family (SPEC §5): ppoPolicyLoss, valueLoss; and p3oLoss (Pairwise PPO). */
#ifndef RK_PPO_H
#define RK_PPO_H
#include "rk_common.h"
#include "rk_rewards.h" /* RK_KL_K1..RK_KL_ABS */
#ifdef __cplusplus
extern "C" {
#endif

/* Aggregation modes (verl / OpenRLHF names). */
#define RK_AGG_TOKEN_MEAN 0          /* Σ ℓm / N,            N = normalizer ?? Σm          */
#define RK_AGG_SEQ_MEAN_TOKEN_SUM 1  /* Σ_b (Σ_t ℓm) / S,     S = normalizer ?? #nonempty rows */
#define RK_AGG_SEQ_MEAN_TOKEN_MEAN 2 /* Σ_b (Σ_t ℓm / Σ_t m) / S                            */

/* No KL term in the policy loss (ref_logp unused). */
#define RK_KL_NONE (-1)

/* P3O variants */
#define RK_P3O_SEPARATE 0 /* V1: each response's ratio clipped on its own */
#define RK_P3O_JOINT 1    /* V2: the joint ratio ρ1/ρ2 clipped            */

typedef struct {
  const float* logp;       /* [B*T] */
  const float* old_logp;   /* [B*T] */
  const float* advantages; /* [B*T] */
  const float* ref_logp;   /* [B*T], read only when kl_estimator != RK_KL_NONE */
  const void* mask;        /* [B*T] or NULL */
  int mask_kind;
  float* grad_logp;        /* [B*T] out: ∂loss/∂logp */
  double* result;          /* [3] out: loss, clipFraction, approxKl */
  size_t B, T;
  float clip_low, clip_high;
  int has_dual_clip;
  float dual_clip;
  float kl_coef;
  int kl_estimator;        /* RK_KL_* or RK_KL_NONE */
  int aggregation;         /* RK_AGG_* */
  int has_normalizer;
  double normalizer;       /* > 0 */
  void* workspace;         /* CUDA launchers only: rk_ppo_workspace_bytes(B, T) device bytes */
} rk_ppo_policy_loss_args;

typedef struct {
  const float* values;     /* [B*T] */
  const float* old_values; /* [B*T] */
  const float* returns;    /* [B*T] */
  const void* mask;
  int mask_kind;
  float* grad_values;      /* [B*T] out */
  double* result;          /* [2] out: loss, clipFraction */
  size_t B, T;
  float clip;              /* ≥ 0, may be +inf */
  int aggregation;
  int has_normalizer;
  double normalizer;
  void* workspace;         /* as above */
} rk_value_loss_args;

typedef struct {
  const float* logp1, *logp2;         /* [B] summed sequence log-probs under π_θ */
  const float* old_logp1, *old_logp2; /* [B] under π_old */
  const float* rewards1, *rewards2;   /* [B] */
  float* grad_logp1, *grad_logp2;     /* [B] out */
  double* result;                     /* [2] out: loss, clipFraction */
  size_t B;
  int variant;                        /* RK_P3O_* */
  float clip_low, clip_high;
  int has_normalizer;
  double normalizer;
} rk_p3o_loss_args;

/* Device scratch needed by the CUDA launchers of ppoPolicyLoss / valueLoss. */
size_t rk_ppo_workspace_bytes(size_t B, size_t T);

void rk_cpu_ppo_policy_loss(const rk_ppo_policy_loss_args* a);
void rk_cpu_value_loss(const rk_value_loss_args* a);
void rk_cpu_p3o_loss(const rk_p3o_loss_args* a);

int rk_cuda_ppo_policy_loss(const rk_ppo_policy_loss_args* a, char* err, size_t errlen);
int rk_cuda_value_loss(const rk_value_loss_args* a, char* err, size_t errlen);
int rk_cuda_p3o_loss(const rk_p3o_loss_args* a, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
