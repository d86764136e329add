/* C ABI of the preference family (SPEC §4): preferenceLoss, apoReference, listwiseLoss and
 * fusedPreferenceLoss. Inputs are validated by the caller (shapes, ranges, required inputs per
 * type); kernels do no checking. Gradients are of the MEAN loss. */
#ifndef RK_PREFERENCE_H
#define RK_PREFERENCE_H
#include "rk_common.h"
#ifdef __cplusplus
extern "C" {
#endif

/* preferenceLoss types */
#define RK_PREF_DPO 0
#define RK_PREF_CDPO 1
#define RK_PREF_RDPO 2
#define RK_PREF_IPO 3
#define RK_PREF_HINGE 4
#define RK_PREF_RPO 5
#define RK_PREF_XPO 6
#define RK_PREF_INPO 7
#define RK_PREF_DNO 8
#define RK_PREF_ORPO 9
#define RK_PREF_SIMPO 10
#define RK_PREF_NTYPES 11

/* listwiseLoss types */
#define RK_LIST_LIPO 0
#define RK_LIST_PRO 1
#define RK_LIST_PL 2

typedef struct {
  float beta;     /* > 0 */
  float epsilon;  /* cdpo label smoothing, rdpo flip rate */
  float eta;      /* rpo NLL weight; inpo η */
  float alpha;    /* xpo exploration weight */
  float tau;      /* inpo τ */
  float gamma;    /* simpo margin */
} rk_pref_params;

typedef struct {
  size_t B;
  int type;              /* RK_PREF_* */
  int length_normalize;  /* ipo only: divide each log-ratio by its length */
  rk_pref_params p;
  const float* policy_chosen;   /* [B] */
  const float* policy_rejected; /* [B] */
  const float* ref_chosen;      /* [B], NULL for orpo / simpo */
  const float* ref_rejected;    /* [B], NULL for orpo / simpo */
  const float* chosen_length;   /* [B] (> 0), ipo + length_normalize only */
  const float* rejected_length; /* [B] */
  const float* chosen_nll;      /* [B] rpo, orpo */
  const float* policy_explore;  /* [B] xpo */
  const float* prev_chosen;     /* [B] inpo */
  const float* prev_rejected;   /* [B] inpo */
  const float* preference_prob; /* [B] dno */
  float* losses;                /* [B] out */
  float* grad_policy_chosen;    /* [B] out */
  float* grad_policy_rejected;  /* [B] out */
  float* chosen_rewards;        /* [B] out */
  float* rejected_rewards;      /* [B] out */
  float* margins;               /* [B] out */
  float* grad_extra;            /* [B] out: gradChosenNll (rpo, orpo) / gradPolicyExplore (xpo); else NULL */
  double* scalars;              /* [2] out: mean loss, accuracy (host memory for rk_cpu/rk_cuda; device for launchers) */
} rk_preference_loss_args;

typedef struct {
  const float* current, *previous; /* [n] */
  float* reference;                /* [n] out */
  size_t n;
  float alpha;
} rk_apo_reference_args;

typedef struct {
  size_t B, K;
  int type;                /* RK_LIST_* */
  float beta, sft_weight;
  const float* policy;     /* [B*K] */
  const float* ref;        /* [B*K], may be NULL for pro */
  const float* labels;     /* [B*K], may be NULL for pl */
  const float* lengths;    /* [B*K] (> 0), pro only; NULL = 1 */
  float* losses;           /* [B] out */
  float* grad_policy;      /* [B*K] out */
  double* scalars;         /* [2] out: mean loss (scalars[1] unused) */
} rk_listwise_loss_args;

typedef struct {
  /* token level: logits [2B*T, V], rows 0..B*T-1 chosen, B*T..2B*T-1 rejected */
  const void* logits;
  int dtype;               /* RK_DT_* */
  const int32_t* labels;   /* [2B*T]; counted positions hold a label in [0, V) or ignore_index */
  const void* mask;        /* [2B*T] */
  int mask_kind;
  size_t B, T, V;
  float temperature;
  int32_t ignore_index;
  const float* ref_logp;        /* [2B] */
  const float* prev_logp;       /* [2B] inpo */
  const float* policy_explore;  /* [B] xpo */
  const float* preference_prob; /* [B] dno */
  int type;
  int length_normalize;
  rk_pref_params p;
  /* outputs */
  float* grad_logits;           /* [2B*T*V] */
  float* losses, *grad_policy_chosen, *grad_policy_rejected, *chosen_rewards, *rejected_rewards, *margins; /* [B] */
  float* grad_extra;            /* [B] gradPolicyExplore (xpo), else NULL */
  double* scalars;              /* [2] mean loss, accuracy */
} rk_fused_preference_args;

void rk_cpu_preference_loss(const rk_preference_loss_args* a);
void rk_cpu_apo_reference(const rk_apo_reference_args* a);
void rk_cpu_listwise_loss(const rk_listwise_loss_args* a);
void rk_cpu_fused_preference_loss(const rk_fused_preference_args* a);

int rk_cuda_preference_loss(const rk_preference_loss_args* a, char* err, size_t errlen);
int rk_cuda_apo_reference(const rk_apo_reference_args* a, char* err, size_t errlen);
int rk_cuda_listwise_loss(const rk_listwise_loss_args* a, char* err, size_t errlen);
int rk_cuda_fused_preference_loss(const rk_fused_preference_args* a, char* err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
