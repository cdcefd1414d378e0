/* sae_topk — the topk and batchtopk architectures' entry points for the
 * generic SAE code (sae.c checks, sae_grad.c dispatch). Private to core/;
 * the public contract is in include/sae.h. */
#ifndef SAED_SAE_TOPK_H
#define SAED_SAE_TOPK_H
#include "sae.h"

/* 1 for topk and batchtopk. */
int sae_topk_is(const sae_config *c);

/* The AuxK fields (every arch) and, for topk/batchtopk, k, aux_k and
 * threshold against the shape. Same contract as sae_config_check, whose
 * earlier checks (n_latents a multiple of group_size, ...) must have passed. */
int sae_topk_config_check(const sae_config *c, char *field, size_t fieldlen, char *msg, size_t msglen);

/* sae_loss_grad for topk/batchtopk. train: 1 = training rules (batchtopk's
 * batch top-k; AuxK on the latents marked in dead (n), if non-NULL), 0 =
 * inference rules (dead ignored). */
double sae_topk_loss_grad(const sae_params *p, const float *x, int B, int train, const unsigned char *dead,
                          sae_work *w, float *grad, sae_loss_terms *terms);

/* sae_encode for topk/batchtopk (the inference rules). 0 or -1 (out of memory). */
int sae_topk_encode(const sae_params *p, par_pool *pool, const float *x, int B, float *z, float *x_hat);

#endif
