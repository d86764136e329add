/* C ABI of the advantages family (SPEC §3): gae, whiten, groupAdvantages, discountedReturns,
 * ensembleRewards, winRateRewards. Plain structs of raw pointers + sizes; row-major [B,T]. */
#ifndef RK_ADVANTAGES_H
#define RK_ADVANTAGES_H
#include "rk_common.h"
#ifdef __cplusplus
extern "C" {
#endif

/* GAE over counted tokens (masked tokens skipped, verl multi-turn semantics). Also used for
 * discountedReturns: with values == NULL it computes G_t = r_t + gamma·G_next (lambda, last_values
 * and returns unused; the result goes to `advantages`). */
typedef struct {
  const float* rewards;     /* [B*T] */
  const float* values;      /* [B*T], or NULL for discountedReturns */
  const void* mask;         /* [B*T] or NULL (everything counts) */
  int mask_kind;
  const float* last_values; /* [B] or NULL (0) */
  float* advantages;        /* [B*T] out (discountedReturns: the returns) */
  float* returns;           /* [B*T] out (gae only; may be NULL) */
  size_t B, T;
  float gamma, lambda;
} rk_gae_args;

/* whiten: one global mean and Bessel variance over the counted elements. stats receives
 * {count, mean, variance} (float64); when count < 2 nothing is written to y (the caller raises). */
typedef struct {
  const float* x;  /* [n] */
  const void* mask;
  int mask_kind;
  float* y;        /* [n] out */
  size_t n;
  int shift_mean;
  float eps;
  double* stats;   /* out: {count, mean, variance} */
} rk_whiten_args;

#define RK_GROUP_GRPO 0
#define RK_GROUP_DRGRPO 1
#define RK_GROUP_RLOO 2
#define RK_GROUP_REMAX 3

typedef struct {
  const float* scores;    /* [G*K] */
  const float* baselines; /* [G*K] (remax only) */
  float* advantages;      /* [G*K] out */
  size_t G, K;
  int method;
  float eps;
} rk_group_adv_args;

#define RK_ENSEMBLE_MEAN 0
#define RK_ENSEMBLE_MIN 1
#define RK_ENSEMBLE_UWO 2

typedef struct {
  const float* scores; /* [E*B] */
  float* rewards;      /* [B] out */
  size_t E, B;
  int method;
  float lambda;
  int unbiased;
} rk_ensemble_args;

typedef struct {
  const float* preferences; /* [G*K*K] */
  float* rewards;           /* [G*K] out */
  size_t G, K;
} rk_win_rate_args;

void rk_cpu_gae(const rk_gae_args* a);
void rk_cpu_whiten(const rk_whiten_args* a);
void rk_cpu_group_advantages(const rk_group_adv_args* a);
void rk_cpu_ensemble_rewards(const rk_ensemble_args* a);
void rk_cpu_win_rate_rewards(const rk_win_rate_args* a);

int rk_cuda_gae(const rk_gae_args* a, char* err, size_t errlen);
int rk_cuda_whiten(const rk_whiten_args* a, char* err, size_t errlen);
int rk_cuda_group_advantages(const rk_group_adv_args* a, char* err, size_t errlen);
int rk_cuda_ensemble_rewards(const rk_ensemble_args* a, char* err, size_t errlen);
int rk_cuda_win_rate_rewards(const rk_win_rate_args* a, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
