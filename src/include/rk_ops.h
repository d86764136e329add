/* The list of every op of the C ABI, as an X-macro: X(op, args_struct). Each op `op` has
 *   void rk_cpu_<op>(const args_struct* a);                                       (host pointers)
 * and, where it says X_CUDA, also
 *   int  rk_cuda_<op>(const args_struct* a, char* err, size_t errlen);            (host pointers,
 *        copies to the device and back, waits)
 *   int  rk_cuda_<op>_dev(const args_struct* a, void* stream, char* err, size_t errlen);
 *        (device pointers, queued on `stream`, returns without waiting)
 * A new op family adds its lines here and its header to rlhf_kernels.h. */
#ifndef RK_OPS_H
#define RK_OPS_H

/* Ops with CPU and CUDA kernels. */
#define RK_FOR_EACH_CUDA_OP(X)                              \
  X(kl_penalty, rk_kl_penalty_args)                         \
  X(token_rewards, rk_token_rewards_args)                   \
  X(rto_rewards, rk_rto_rewards_args)                       \
  X(implicit_rewards, rk_implicit_rewards_args)             \
  X(gae, rk_gae_args)                                       \
  X(whiten, rk_whiten_args)                                 \
  X(group_advantages, rk_group_adv_args)                    \
  X(ensemble_rewards, rk_ensemble_args)                     \
  X(win_rate_rewards, rk_win_rate_args)                     \
  X(logprobs, rk_logprobs_args)                             \
  X(logprobs_backward, rk_logprobs_backward_args)           \
  X(vocab_kl, rk_vocab_kl_args)                             \
  X(vocab_kl_backward, rk_vocab_kl_backward_args)           \
  X(sequence_logprobs, rk_sequence_logprobs_args)           \
  X(preference_loss, rk_preference_loss_args)               \
  X(apo_reference, rk_apo_reference_args)                   \
  X(listwise_loss, rk_listwise_loss_args)                   \
  X(fused_preference_loss, rk_fused_preference_args)        \
  X(ppo_policy_loss, rk_ppo_policy_loss_args)               \
  X(value_loss, rk_value_loss_args)                         \
  X(p3o_loss, rk_p3o_loss_args)                             \
  X(attention_mask, rk_attention_mask_args)                 \
  X(unpack, rk_unpack_args)                                 \
  X(packed_attention, rk_packed_attention_args)             \
  X(speculative_verify, rk_speculative_verify_args)         \
  X(spec_dec_stop, rk_spec_dec_stop_args)                   \
  X(geometric_mixture, rk_geometric_mixture_args)           \
  X(rejection_sample, rk_rejection_sample_args)            \
  X(linear_logprobs, rk_linear_logprobs_args)               \
  X(linear_logprobs_backward, rk_linear_logprobs_backward_args) \
  X(linear_preference_loss, rk_linear_preference_args)

/* Host bookkeeping ops: CPU only. */
#define RK_FOR_EACH_CPU_ONLY_OP(X)   \
  X(pack_sequences, rk_pack_args)    \
  X(prepack_fill, rk_prepack_fill_args)

#endif
