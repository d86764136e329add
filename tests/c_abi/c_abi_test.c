/* The C ABI from C99 (tests/c_abi/run.sh builds it with gcc -std=c99 -Wall -Werror against
 * librlhf_kernels.a and librlhf_kernels.so): one op per family against values computed by hand,
 * and the CUDA half of the ABI failing cleanly (or, with a GPU, one op through the device
 * entry point). Exit status 0 when every check passes. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rlhf_kernels.h"

static int failures = 0, checks = 0;

static void close_to(const char* what, double got, double want, double tol) {
  ++checks;
  if (!(fabs(got - want) <= tol * (1.0 + fabs(want)))) {
    ++failures;
    printf("FAIL %-44s got %.9g, want %.9g\n", what, got, want);
  } else {
    printf("ok   %-44s %.9g\n", what, got);
  }
}

static void equal_int(const char* what, long got, long want) {
  ++checks;
  if (got != want) {
    ++failures;
    printf("FAIL %-44s got %ld, want %ld\n", what, got, want);
  } else {
    printf("ok   %-44s %ld\n", what, got);
  }
}

/* §2: k1 = logp − refLogp on counted tokens, 0 where masked. */
static void test_rewards(void) {
  const float logp[4] = {-1.0f, -0.5f, -2.0f, -0.25f}, ref[4] = {-1.5f, -0.5f, -1.0f, -3.0f};
  const uint8_t mask[4] = {1, 1, 0, 1};
  float kl[4] = {9, 9, 9, 9};
  rk_kl_penalty_args a;
  memset(&a, 0, sizeof a);
  a.logp = logp;
  a.ref_logp = ref;
  a.mask = mask;
  a.mask_kind = RK_MASK_U8;
  a.kl = kl;
  a.B = 2;
  a.T = 2;
  a.estimator = RK_KL_K1;
  rk_cpu_kl_penalty(&a);
  close_to("kl_penalty k1 [0]", kl[0], 0.5, 1e-6);
  close_to("kl_penalty k1 [1]", kl[1], 0.0, 1e-6);
  close_to("kl_penalty k1 [2] (masked)", kl[2], 0.0, 0);
  close_to("kl_penalty k1 [3]", kl[3], 2.75, 1e-6);
}

/* §3: with V = 0, γ = λ = 1, A_t = Σ_{s≥t} r_s; masked tokens skipped. */
static void test_advantages(void) {
  const float r[4] = {1, 2, 3, 4}, v[4] = {0, 0, 0, 0};
  const uint8_t mask[4] = {1, 1, 0, 1};
  float adv[4], ret[4];
  rk_gae_args a;
  memset(&a, 0, sizeof a);
  a.rewards = r;
  a.values = v;
  a.mask = mask;
  a.mask_kind = RK_MASK_U8;
  a.advantages = adv;
  a.returns = ret;
  a.B = 1;
  a.T = 4;
  a.gamma = 1.0f;
  a.lambda = 1.0f;
  rk_cpu_gae(&a);
  close_to("gae A_0 = 1+2+4", adv[0], 7, 1e-6);
  close_to("gae A_1 = 2+4", adv[1], 6, 1e-6);
  close_to("gae A_2 (masked)", adv[2], 0, 0);
  close_to("gae A_3", adv[3], 4, 1e-6);
  close_to("gae returns_0", ret[0], 7, 1e-6);
}

/* §1: logits (0, 0, ln 2): lse = ln 4, logp(label 2) = ln 2 − ln 4 = −ln 2. */
static void test_logprobs(void) {
  const float logits[6] = {0.0f, 0.0f, 0.69314718f, 1.0f, 1.0f, 1.0f};
  const int32_t labels[2] = {2, -100};
  float logp[2] = {9, 9}, lse[2] = {9, 9}, ent[2] = {9, 9};
  rk_logprobs_args a;
  memset(&a, 0, sizeof a);
  a.logits = logits;
  a.dtype = RK_DT_F32;
  a.labels = labels;
  a.N = 2;
  a.V = 3;
  a.temperature = 1.0f;
  a.ignore_index = -100;
  a.logp = logp;
  a.lse = lse;
  a.entropy = ent;
  rk_cpu_logprobs(&a);
  close_to("logprobs logp = -ln 2", logp[0], -0.69314718, 1e-6);
  close_to("logprobs lse = ln 4", lse[0], 1.38629436, 1e-6);
  /* p = (1/4, 1/4, 1/2): H = 2·(1/4)·ln 4 + (1/2)·ln 2 = 1.5 ln 2 */
  close_to("logprobs entropy = 1.5 ln 2", ent[0], 1.03972077, 1e-6);
  close_to("logprobs ignored row", logp[1], 0, 0);
}

/* §4: DPO at u = 0: loss = ln 2, dloss/dπc = −β/2, accuracy 0 (margin 0 is not > 0). */
static void test_preference(void) {
  const float pc[1] = {-3.0f}, pr[1] = {-4.0f}, rc[1] = {-3.0f}, rr[1] = {-4.0f};
  float losses[1], gc[1], gr[1], cr[1], rj[1], margins[1];
  double scalars[2] = {9, 9};
  rk_preference_loss_args a;
  memset(&a, 0, sizeof a);
  a.B = 1;
  a.type = RK_PREF_DPO;
  a.p.beta = 0.1f;
  a.policy_chosen = pc;
  a.policy_rejected = pr;
  a.ref_chosen = rc;
  a.ref_rejected = rr;
  a.losses = losses;
  a.grad_policy_chosen = gc;
  a.grad_policy_rejected = gr;
  a.chosen_rewards = cr;
  a.rejected_rewards = rj;
  a.margins = margins;
  a.scalars = scalars;
  rk_cpu_preference_loss(&a);
  close_to("dpo loss = ln 2", scalars[0], 0.69314718, 1e-6);
  close_to("dpo gradPolicyChosen = -beta/2", gc[0], -0.05, 1e-6);
  close_to("dpo gradPolicyRejected = +beta/2", gr[0], 0.05, 1e-6);
  close_to("dpo accuracy", scalars[1], 0, 0);
}

/* §5: ρ = 1 everywhere: loss = −mean(A) over counted tokens, gradLogp = −A/N, no clipping. */
static void test_ppo(void) {
  const float logp[3] = {-1, -2, -3}, adv[3] = {1.0f, -2.0f, 4.0f};
  const uint8_t mask[3] = {1, 1, 0};
  float grad[3] = {9, 9, 9};
  double res[3] = {9, 9, 9};
  rk_ppo_policy_loss_args a;
  memset(&a, 0, sizeof a);
  a.logp = logp;
  a.old_logp = logp;
  a.advantages = adv;
  a.mask = mask;
  a.mask_kind = RK_MASK_U8;
  a.grad_logp = grad;
  a.result = res;
  a.B = 1;
  a.T = 3;
  a.clip_low = 0.2f;
  a.clip_high = 0.2f;
  a.kl_estimator = RK_KL_NONE;
  a.aggregation = RK_AGG_TOKEN_MEAN;
  rk_cpu_ppo_policy_loss(&a);
  close_to("ppo loss = -(1 - 2)/2", res[0], 0.5, 1e-6);
  close_to("ppo gradLogp[0] = -1/2", grad[0], -0.5, 1e-6);
  close_to("ppo gradLogp[1] = 2/2", grad[1], 1.0, 1e-6);
  close_to("ppo gradLogp[2] (masked)", grad[2], 0, 0);
  close_to("ppo clipFraction", res[1], 0, 0);
}

/* §6: FFD of lengths (3, 2, 2) into packs of 4: {0}, {1, 2}. */
static void test_prepack(void) {
  const int32_t lengths[3] = {3, 2, 2};
  int32_t pack_of[3], offset_of[3], loads[3];
  size_t P = 0;
  rk_pack_args a;
  memset(&a, 0, sizeof a);
  a.lengths = lengths;
  a.n = 3;
  a.capacity = 4;
  a.algorithm = RK_PACK_FFD;
  a.pack_of = pack_of;
  a.offset_of = offset_of;
  a.pack_lengths = loads;
  a.num_packs = &P;
  rk_cpu_pack_sequences(&a);
  equal_int("pack_sequences packs", (long)P, 2);
  equal_int("pack_of[0]", pack_of[0], 0);
  equal_int("pack_of[2]", pack_of[2], 1);
  equal_int("offset_of[2]", offset_of[2], 2);
  equal_int("pack 1 load", loads[1], 4);
}

/* §7: SpecDec++ stop: 1 − Π P̂ > 0.3 first at k = 2 for (0.9, 0.7): 1 − 0.63 = 0.37. */
static void test_sampling(void) {
  const float p[3] = {0.9f, 0.7f, 0.9f};
  int32_t len[1] = {-7};
  rk_spec_dec_stop_args a;
  memset(&a, 0, sizeof a);
  a.accept_probs = p;
  a.B = 1;
  a.K = 3;
  a.threshold = 0.3;
  a.min_length = 1;
  a.max_length = 20;
  a.length = len;
  rk_cpu_spec_dec_stop(&a);
  equal_int("spec_dec_stop length", len[0], 2);
}

/* The CUDA half: without CUDA (or a device) the calls fail with a message and touch nothing; with a
 * device, kl_penalty through the device entry point on a stream equals the CPU result. */
static void test_cuda(void) {
  char err[256] = {0};
  int count = -1;
  int rc = rk_cuda_device_count(&count, err, sizeof err);
  if (!rk_has_cuda() || rc != 0 || count <= 0) {
    equal_int("no CUDA device: device count", count, 0);
    float out[1] = {5};
    const float x[1] = {1};
    rk_kl_penalty_args a;
    memset(&a, 0, sizeof a);
    a.logp = x;
    a.ref_logp = x;
    a.kl = out;
    a.B = 1;
    a.T = 1;
    err[0] = 0;
    equal_int("rk_cuda_kl_penalty fails", rk_cuda_kl_penalty(&a, err, sizeof err), 1);
    equal_int("with a message", err[0] != 0, 1);
    equal_int("rk_cuda_kl_penalty_dev fails", rk_cuda_kl_penalty_dev(&a, NULL, err, sizeof err), 1);
    printf("     (%s)\n", err);
    return;
  }
  const float logp[4] = {-1.0f, -0.5f, -2.0f, -0.25f}, ref[4] = {-1.5f, -0.5f, -1.0f, -3.0f};
  void *dl = NULL, *dr = NULL, *dk = NULL, *stream = NULL;
  float kl[4] = {9, 9, 9, 9};
  rc = rk_cuda_stream_create(0, &stream, err, sizeof err) || rk_cuda_malloc_async(0, 16, stream, &dl, err, sizeof err) ||
       rk_cuda_malloc_async(0, 16, stream, &dr, err, sizeof err) || rk_cuda_malloc_async(0, 16, stream, &dk, err, sizeof err) ||
       rk_cuda_memcpy(0, dl, logp, 16, RK_COPY_H2D, stream, 0, err, sizeof err) ||
       rk_cuda_memcpy(0, dr, ref, 16, RK_COPY_H2D, stream, 0, err, sizeof err);
  equal_int("device setup", rc, 0);
  rk_kl_penalty_args a;
  memset(&a, 0, sizeof a);
  a.logp = (const float*)dl;
  a.ref_logp = (const float*)dr;
  a.kl = (float*)dk;
  a.B = 1;
  a.T = 4;
  a.estimator = RK_KL_K3;
  equal_int("rk_cuda_kl_penalty_dev", rk_cuda_kl_penalty_dev(&a, stream, err, sizeof err), 0);
  equal_int("copy back", rk_cuda_memcpy(0, kl, dk, 16, RK_COPY_D2H, stream, 1, err, sizeof err), 0);
  for (int i = 0; i < 4; ++i) {
    double d = (double)logp[i] - ref[i];
    close_to("k3 on the device", kl[i], exp(-d) - 1 + d, 2e-5);
  }
  rk_cuda_free_async(0, dl, stream);
  rk_cuda_free_async(0, dr, stream);
  rk_cuda_free_async(0, dk, stream);
  rk_cuda_stream_synchronize(0, stream, err, sizeof err);
  rk_cuda_stream_destroy(0, stream);
}

int main(void) {
  test_rewards();
  test_advantages();
  test_logprobs();
  test_preference();
  test_ppo();
  test_prepack();
  test_sampling();
  test_cuda();
  printf("C ABI: %d of %d checks failed (CUDA %s)\n", failures, checks, rk_has_cuda() ? "built" : "not built");
  return failures ? 1 : 0;
}
