/* sae_engine — the trainer's loss and gradient for any architecture, on the
 * path its registry row chooses (include/sae_arch.h `fast`): the blocked
 * sparse core (include/sae_fast.h) for the rows that have one (and equal
 * contiguous groups: a group table takes the dense pipeline), else the
 * dense pipeline over sae_work (sae_loss_grad_pass). Both compute the same
 * function (tests/test_fast.c), so the trainer (core/train.c) never asks
 * which one runs. One engine serves calls of up to max_rows rows. */
#ifndef SAED_SAE_ENGINE_H
#define SAED_SAE_ENGINE_H
#include "par.h"
#include "sae.h"
#include "sae_fast.h"

typedef struct sae_engine sae_engine;

/* For calls of up to max_rows rows of configuration c; the products and passes run on pool (not
 * owned, may be NULL; must outlive the engine). NULL when out of memory. */
sae_engine *sae_engine_create(const sae_config *c, int max_rows, par_pool *pool);
void sae_engine_free(sae_engine *e);
/* Bytes sae_engine_create(c, max_rows, pool of `threads`) allocates. */
size_t sae_engine_bytes(const sae_config *c, int max_rows, int threads);

/* sae_loss_grad_pass's contract for 1 <= B <= max_rows (p->cfg must be the engine's configuration):
 * returns the loss, sets terms (if non-NULL) and, if grad (n_params) is non-NULL, the gradient.
 * fired (n), if non-NULL, gets 1 for every latent with z > 0 in some row (others untouched). */
double sae_engine_loss_grad(sae_engine *e, const sae_params *p, const float *x, int B, const sae_pass *pass,
                            float *grad, unsigned char *fired, sae_loss_terms *terms);
/* After a training pass with a gradient: the state learnt without one (sae_train_update). */
void sae_engine_train_update(sae_engine *e, sae_params *p, int B);

/* 0: calls add no time to the fast path's phase clocks (evaluations); 1 (the default): they do. */
void sae_engine_set_timing(sae_engine *e, int on);
/* 1 and *out filled when the fast path runs (its phases and block counts), else 0. */
int sae_engine_fast_stats(const sae_engine *e, sae_fast_stats *out);

#endif
