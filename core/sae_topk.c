/* sae_topk — the topk and batchtopk architectures: group TopK with AuxK
 * (two registry rows, include/sae_arch.h, at the end of this file).
 *
 *   a     = ReLU(pre)                                  (B, n), pre as for relu
 *   ||a_g|| per row and group g (group_size s; s = 1: the latent itself)
 *   topk:      z = a on the k groups of largest ||a_g|| in each row, 0 elsewhere
 *   batchtopk: training:  z = a on the k*B largest ||a_g|| of the whole batch
 *              inference: z = a on the groups with ||a_g|| >= theta (a learnt
 *              scalar, the params' one extra float after b_dec)
 *   loss  = mean_rows ||x_hat - x||^2 + orth_coef * orth
 *           [+ aux_k_coef * mean_rows ||e - e_hat||^2 while training]
 *
 * The sparsity coefficient is not used (k sets the sparsity). Ties in a
 * selection keep the lower index (row-major over the batch for batchtopk),
 * so a selection always holds exactly k (k*B) groups; groups of norm 0 among
 * them stay 0. With s = 1 this is the ordinary TopK/BatchTopK SAE:
 * ReLU(TopK(pre)) keeps the same latents with the same values.
 *
 * AuxK (Gao et al. 2024), training only: a group is dead when all its
 * latents are marked in the trainer's dead mask (no firing for dead_window
 * steps). Per row, the aux_k dead groups of largest ||a_g|| reconstruct the
 * residual e = x - x_hat with e_hat = z_aux W_dec (no bias). e is a constant
 * target (stop-gradient, as in the authors' code), so AuxK moves only the
 * dead latents' encoder inputs and decoder rows (and b_dec through pre). The
 * term is absent (0) when no group is dead.
 *
 * theta (batchtopk) gets no gradient, so Adam leaves it unchanged (its
 * moments stay 0); after each training step the row's train_update moves it
 * to an exponential moving average (decay TOPK_THETA_DECAY) of the batch's
 * smallest kept non-zero group norm, starting at the first batch's value.
 * An untrained theta of 0 keeps every non-zero group.
 *
 * Gradients: the selection is piecewise constant, so within it the loss is
 * the relu SAE's reconstruction loss over the kept latents; the gradient is
 * exact except where the selection changes (ties between norms) and at
 * pre = 0 (ReLU'(0) = 0). The selection and AuxK are shared stages
 * (core/sae_stage.c). Scratch: the forward uses w->dz for the selection
 * (before the backward sets it); AuxK uses w->colsum (before the encoder
 * backward sets it) and w->dx_hat (after the decoder backward has read it;
 * with AuxK it ends holding the AuxK gradient w.r.t. e_hat). */
#include "sae_arch.h"
#include "sae_groups.h"
#include "sae_stage.h"
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define TOPK_THETA_DECAY 0.99f /* batchtopk's threshold EMA: theta += (1 - decay) (batch min - theta) */

/* batchtopk's theta: the one extra float after b_dec. */
static float *topk_theta(const sae_params *p) { return p->v.b_dec + p->cfg.dim; }

/* ---- configuration ---- */

/* k (required, 1 .. G), aux_k (at most G) and threshold (0) against the shape. */
static int topk_check(const sae_config *c, char *field, size_t fl, char *msg, size_t ml)
{
    char text[200];
    int G = sae_n_groups(c);
    if (c->k < 1) {
        snprintf(text, sizeof text, "arch '%s' needs k, the number of groups kept per row, from 1 to %d "
                 "(the SAE's groups)", sae_arch_name(c->arch), G);
        return sae_config_reject(field, fl, msg, ml, "k", text);
    }
    if (c->k > G) {
        snprintf(text, sizeof text, "k %d is more than the %d groups (of its %d latents); use k from 1 to %d",
                 c->k, G, c->n_latents, G);
        return sae_config_reject(field, fl, msg, ml, "k", text);
    }
    if (c->aux_k > G) {
        snprintf(text, sizeof text, "aux_k %d is more than the %d groups; use at most %d, "
                 "or unset it for the default", c->aux_k, G, G);
        return sae_config_reject(field, fl, msg, ml, "aux_k", text);
    }
    if (c->threshold != 0.0f)
        return sae_config_reject(field, fl, msg, ml, "threshold", "threshold is the relu arch's; topk and batchtopk "
                                 "keep k groups (batchtopk learns its own inference threshold), so leave it 0");
    return 0;
}

/* ---- the activation ---- */

/* z (B, n) = ReLU(pre), nrm (B, G) the groups' norms; z may alias pre. */
static void topk_relu_norms(const sae_config *c, const float *pre, int B, float *z, float *nrm)
{
    float tmp[SAE_GROUPS_MAX_SIZE];
    int s = c->group_size, G = sae_n_groups(c);
    size_t n = (size_t)c->n_latents;
    if (!c->groups) {
        for (size_t g = 0; g < (size_t)B * G; g++)
            nrm[g] = sae_stage_relu_group(pre + g * s, s, z + g * s);
        return;
    }
    for (int b = 0; b < B; b++)
        for (int g = 0; g < G; g++) {
            sae_groups_gather(c->groups, g, pre + b * n, tmp);
            nrm[(size_t)b * G + g] = sae_stage_relu_group(tmp, sae_group_len(c, g), tmp);
            sae_groups_scatter(c->groups, g, tmp, z + b * n);
        }
}

/* topk: per row, the k groups of largest norm. pre (B, n) -> z (B, n), gnorm (B, G); z may alias
 * pre; scratch (G). */
static void topk_keep_rows(const sae_config *c, const float *pre, int B, float *z, float *gnorm, float *scratch)
{
    int n = c->n_latents;
    size_t G = (size_t)sae_n_groups(c);
    topk_relu_norms(c, pre, B, z, gnorm);
    for (int b = 0; b < B; b++)
        sae_stage_keep_top(c, gnorm + (size_t)b * G, z + (size_t)b * n, G, (size_t)c->k, scratch);
}

/* batchtopk: training keeps the batch's k*B groups of largest norm (scratch: B*G floats);
 * inference the groups with norm >= theta. Same shapes as topk_keep_rows. */
static void batchtopk_keep(const sae_params *p, const float *pre, int B, int train, float *z, float *gnorm,
                           float *scratch)
{
    const sae_config *c = &p->cfg;
    size_t all = (size_t)B * (size_t)sae_n_groups(c);
    topk_relu_norms(c, pre, B, z, gnorm);
    if (train) {
        sae_stage_keep_top(c, gnorm, z, all, (size_t)c->k * (size_t)B, scratch);
        return;
    }
    float theta = *topk_theta(p);
    for (size_t g = 0; g < all; g++)
        if (!(gnorm[g] >= theta))
            sae_stage_drop(c, gnorm, z, g);
}

/* The penalty reported (not weighted: k sets the sparsity) is sum_g ||z_g||. w->dz (B*n floats)
 * is the selection's scratch. */
static double topk_forward(const sae_params *p, const sae_pass *pass, const float *x, int B, sae_work *w,
                           double *extra)
{
    (void)pass, (void)x, (void)extra;
    topk_keep_rows(&p->cfg, w->pre, B, w->z, w->gnorm, w->dz);
    return sae_stage_sum_norms(&p->cfg, w->gnorm, B);
}

static double batchtopk_forward(const sae_params *p, const sae_pass *pass, const float *x, int B, sae_work *w,
                                double *extra)
{
    (void)x, (void)extra;
    batchtopk_keep(p, w->pre, B, pass->train, w->z, w->gnorm, w->dz);
    return sae_stage_sum_norms(&p->cfg, w->gnorm, B);
}

/* dz (B, n): d loss/d z in, d loss/d pre out: 0 where z is 0 (dropped, or pre <= 0). */
static void topk_backward(const sae_params *p, const sae_pass *pass, int B, sae_work *w, sae_view *g, float *grad)
{
    (void)pass, (void)g, (void)grad;
    for (size_t k = 0; k < (size_t)B * p->cfg.n_latents; k++)
        if (!(w->z[k] > 0.0f))
            w->dz[k] = 0.0f;
}

/* One kept group (sparse codes): d loss/d pre = d loss/d z where z > 0 (kept, pre > 0), else 0. */
static void topk_group_backward(const sae_config *c, const sae_pass *pass, float scale, const float *pre_g,
                                const float *z_g, float *dz_g)
{
    (void)pass, (void)scale, (void)pre_g;
    for (int k = 0; k < c->group_size; k++)
        if (!(z_g[k] > 0.0f))
            dz_g[k] = 0.0f;
}

/* AuxK while training, on the dead groups; weighted by aux_k_coef. */
static double topk_residual(const sae_params *p, const sae_pass *pass, const float *x, int B, sae_work *w,
                            sae_view *g)
{
    const sae_config *c = &p->cfg;
    if (!pass->train || !pass->dead || !(c->aux_k_coef > 0.0f) || !sae_stage_any_dead_group(c, pass->dead))
        return 0.0;
    return (double)c->aux_k_coef * sae_stage_auxk(p, x, B, pass->dead, 0, c->aux_k_coef, w, g);
}

/* ---- inference ---- */

static size_t topk_encode_floats(const sae_config *c, int B)
{
    (void)B;
    return (size_t)sae_n_groups(c); /* one row's selection */
}

static void topk_encode(const sae_params *p, float *z, int B, float *gnorm, float *scratch)
{
    topk_keep_rows(&p->cfg, z, B, z, gnorm, scratch);
}

static void batchtopk_encode(const sae_params *p, float *z, int B, float *gnorm, float *scratch)
{
    batchtopk_keep(p, z, B, 0, z, gnorm, scratch);
}

/* ---- batchtopk's threshold ---- */

static void batchtopk_train_update(sae_params *p, const sae_work *w, int B)
{
    const sae_config *c = &p->cfg;
    float lo = INFINITY; /* the smallest kept non-zero group norm */
    for (size_t g = 0; g < (size_t)B * sae_n_groups(c); g++)
        if (w->gnorm[g] > 0.0f && w->gnorm[g] < lo)
            lo = w->gnorm[g];
    if (!isfinite(lo))
        return;
    float *theta = topk_theta(p);
    *theta = *theta > 0.0f ? *theta + (1.0f - TOPK_THETA_DECAY) * (lo - *theta) : lo;
}

/* k sets the sparsity: sparsity_coef is not used. */
static int topk_uses_sparsity_coef(const sae_config *c)
{
    (void)c;
    return 0;
}

/* SAELens: topk (ReLU of the k largest pre-activations, as ReLU(TopK(pre)) here). */
static const char *topk_saelens_exact(const sae_params *p, float *thr)
{
    (void)p, (void)thr;
    return "topk";
}

/* SAELens: batchtopk's inference keeps ReLU(pre) >= theta, which is jumprelu at the float just below
 * theta (pre > nextafter(theta, -inf) is pre >= theta); an untrained theta <= 0 keeps all of ReLU(pre),
 * which jumprelu does at 0. */
static const char *batchtopk_saelens_exact(const sae_params *p, float *thr)
{
    float theta = *topk_theta(p), t = theta > 0.0f ? nextafterf(theta, -INFINITY) : isnan(theta) ? INFINITY : 0.0f;
    for (int i = 0; i < p->cfg.n_latents; i++) thr[i] = t;
    return "jumprelu";
}

const sae_arch_def sae_arch_topk = {
    .name = "topk",
    .uses_sparsity_coef = topk_uses_sparsity_coef,
    .check = topk_check,
    .any_groups = 1,
    .forward = topk_forward,
    .residual = topk_residual,
    .backward = topk_backward,
    .group_backward = topk_group_backward,
    .encode_floats = topk_encode_floats,
    .encode = topk_encode,
    .saelens_arch = "topk",
    .saelens_topk = 1,
    .saelens_exact = topk_saelens_exact,
};

const sae_arch_def sae_arch_batchtopk = {
    .name = "batchtopk",
    .uses_sparsity_coef = topk_uses_sparsity_coef,
    .check = topk_check,
    .n_extras = 1,
    .extras = {{"threshold", SAE_EXTRA_ONE}},
    .forward = batchtopk_forward,
    .residual = topk_residual,
    .backward = topk_backward,
    .group_backward = topk_group_backward,
    .encode = batchtopk_encode, /* inference keeps groups by theta: no selection scratch */
    .train_update = batchtopk_train_update,
    .saelens_arch = "batchtopk",
    .saelens_topk = 1,
    .saelens_exact = batchtopk_saelens_exact,
};
