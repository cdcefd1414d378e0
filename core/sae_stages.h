/* sae_stages — the shared stages of the SAE's forward/backward pass, defined
 * in sae_grad.c and reused by architectures that run their own pipeline
 * (sae_topk.c). Private to core/. Shapes and contracts as in sae_grad.c;
 * a change of signature there must be made here too (the compiler says so). */
#ifndef SAED_SAE_STAGES_H
#define SAED_SAE_STAGES_H
#include "sae.h"
#include "par.h"

/* The products run on pool (NULL: the calling thread). */
/* xc (B, dim) = x - b_dec; pre (B, n) = xc W_enc + b_enc. */
void sae_encoder_forward(const sae_config *c, par_pool *pool, const sae_view *v, const float *x, int B, float *xc, float *pre);
/* dpre (B, n) -> g.W_enc (set), g.b_enc (added to), g.b_dec (decremented); colsum (n) scratch. */
void sae_encoder_backward(const sae_config *c, par_pool *pool, const sae_view *v, const float *xc, const float *dpre, int B,
                          float *colsum, sae_view *g);
/* x_hat (B, dim) = z W_dec + b_dec. */
void sae_decoder_forward(const sae_config *c, par_pool *pool, const sae_view *v, const float *z, int B, float *x_hat);
/* dx_hat (B, dim) -> g.W_dec, g.b_dec (set) and dz (B, n) (set). */
void sae_decoder_backward(const sae_config *c, par_pool *pool, const sae_view *v, const float *z, const float *dx_hat, int B,
                          float *dz, sae_view *g);
/* Sum over the batch of ||x_hat - x||^2; dx_hat (B, dim) = 2 (x_hat - x) / B if non-NULL. */
double sae_mse_forward_backward(const float *x, const float *x_hat, int B, int dim, float *dx_hat);
/* sum_g sum_{i != j in g} ReLU(d_i . d_j); if gW_dec (n, dim) is non-NULL adds coef * its gradient. */
double sae_orth_forward_backward(const sae_config *c, const float *W_dec, float coef, float *gW_dec);
/* relu's threshold: the jump term q_g / (eps rho_g) of one row's group (include/sae.h), 0 outside
 * the kernel's window or without a threshold; pre, dz (s) its pre-activations and dx_hat . d_i;
 * scale = c / B. */
float sae_relu_jump(const sae_config *c, const float *pre, const float *dz, float scale);
/* The same from rho_g = ||ReLU(pre_g)|| and dot = sum_i ReLU(pre_i) dx_hat . d_i. */
float sae_relu_jump_of(const sae_config *c, float rho, float dot, float scale);
/* 1 if a group of norm rho gets the jump term (threshold > 0, rho > 0, |rho - tau| < eps/2). */
int sae_relu_in_window(const sae_config *c, float rho);
/* t->l0, t->l0_groups from z (B, n) and gnorm (B, n/s). */
void sae_count_active(const sae_config *c, const float *z, const float *gnorm, int B, sae_loss_terms *t);

#endif
