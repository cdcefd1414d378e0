/* sae_stage — the stages every architecture's pass is built from (encoder,
 * decoder, reconstruction error, orthogonality, group norms, counting, the
 * threshold's straight-through kernel, top-k selection, AuxK). They know no
 * architecture: what differs between architectures is in their registry
 * rows (include/sae_arch.h), which call these. Private to core/. Shapes
 * beside every argument; n = n_latents, s = group_size, G = sae_n_groups (n / s, or a group table's). */
#ifndef SAED_SAE_STAGE_H
#define SAED_SAE_STAGE_H
#include "sae.h"
#include "par.h"

/* ---- products (on pool; NULL: the calling thread) ---- */

/* xc (B, dim) = x - b_dec; pre (B, n) = xc W_enc + b_enc. */
void sae_stage_encoder_forward(const sae_config *c, par_pool *pool, const sae_view *v, const float *x, int B,
                               float *xc, float *pre);
/* dpre (B, n) -> g.W_enc (set), g.b_enc (added to), g.b_dec (decremented); colsum (n) scratch. */
void sae_stage_encoder_backward(const sae_config *c, par_pool *pool, const sae_view *v, const float *xc,
                                const float *dpre, int B, float *colsum, sae_view *g);
/* x_hat (B, dim) = z W_dec + b_dec. */
void sae_stage_decoder_forward(const sae_config *c, par_pool *pool, const sae_view *v, const float *z, int B,
                               float *x_hat);
/* dx_hat (B, dim) -> g.W_dec, g.b_dec (set) and dz (B, n) (set). */
void sae_stage_decoder_backward(const sae_config *c, par_pool *pool, const sae_view *v, const float *z,
                                const float *dx_hat, int B, float *dz, sae_view *g);

/* ---- losses ---- */

/* Sum over the batch of ||x_hat - x||^2; dx_hat (B, dim) = 2 (x_hat - x) / B if non-NULL. */
double sae_stage_mse(const float *x, const float *x_hat, int B, int dim, float *dx_hat);
/* sum_g sum_{i != j in g} ReLU(d_i . d_j); if gW_dec (n, dim) is non-NULL adds coef * its gradient. */
double sae_stage_orth(const sae_config *c, const float *W_dec, float coef, float *gW_dec);
/* Sum of gnorm (B, G): the batch's sum_g ||z_g||. */
double sae_stage_sum_norms(const sae_config *c, const float *gnorm, int B);

/* ---- groups ---- */

/* ||ReLU(pre_g)||_2 of one group's s pre-activations (for s = 1, ReLU(pre) itself, exactly). */
float sae_stage_relu_norm(const float *pre, int s);
/* ||v||_2 of one group's s values (|v| for s = 1). */
float sae_stage_norm(const float *v, int s);
/* z (s) = ReLU(pre (s)) and returns its norm as sae_stage_relu_norm; z may alias pre. */
float sae_stage_relu_group(const float *pre, int s, float *z);
/* t->l0 (latents with z != 0), t->l0_groups (groups with gnorm > 0) from z (B, n) and gnorm (B, G). */
void sae_stage_count_active(const sae_config *c, const float *z, const float *gnorm, int B, sae_loss_terms *t);

/* ---- a fixed threshold tau on a group's norm rho, with JumpReLU's rectangle kernel of width eps ---- */

/* 1 if a group of norm rho gets the straight-through term: tau > 0, rho > 0, |rho - tau| < eps/2. */
int sae_stage_in_window(float tau, float eps, float rho);
/* The jump term q / (eps rho), q = dot + scale rho, by which each member's ReLU(pre_i) is
 * multiplied; 0 outside the window. dot = sum_i ReLU(pre_i) dx_hat . d_i, scale = c / B. */
float sae_stage_jump(float tau, float eps, float rho, float dot, float scale);

/* ---- top-k selection (ties keep the lower index) ---- */

/* The kk-th largest (1 <= kk <= m) of a (m), which is reordered; ends even on NaNs. */
float sae_stage_kth_largest(float *a, size_t m, size_t kk);
/* Sets the q-th group's norm nrm[q] and its values in z to 0: groups counted row by row from the row
 * z starts (q = row * G + g), each row n values. */
void sae_stage_drop(const sae_config *c, float *nrm, float *z, size_t q);
/* Keeps, of m groups (norms nrm (m), values z: m/G rows of n, counted as in sae_stage_drop), the kk of
 * largest norm and drops the rest. scratch (m). */
void sae_stage_keep_top(const sae_config *c, float *nrm, float *z, size_t m, size_t kk, float *scratch);

/* ---- AuxK (Gao et al. 2024): dead groups reconstruct the residual ---- */

/* 1 if some group has every latent marked in dead (n). */
int sae_stage_any_dead_group(const sae_config *c, const unsigned char *dead);
/* Sum over rows of ||e - e_hat||^2 (unweighted), e = x - x_hat held constant (a stop-gradient),
 * e_hat = the reconstruction by the aux_k dead groups of largest code norm per row
 * (sae_aux_k_groups; all dead groups if fewer): sum over their latents of code_i d_i, the code
 * being ReLU(pre_i) or, with signed_codes, pre_i itself (norms alike).
 * With g non-NULL adds coef_aux / B times the sum's gradient to w->dz (as d loss/d pre; during a
 * sparse backward it is recorded in w->sparse instead) and g->W_dec. Reads w->pre and w->x_hat; scratch: w->colsum (the selection, G) and w->dx_hat (rows of
 * the residual), so with a gradient it must run after the decoder backward. */
double sae_stage_auxk(const sae_params *p, const float *x, int B, const unsigned char *dead, int signed_codes,
                      float coef_aux, sae_work *w, sae_view *g);
/* Bytes of w->aux_scratch sae_stage_auxk uses for configuration c. */
size_t sae_stage_auxk_bytes(const sae_config *c);

#endif
