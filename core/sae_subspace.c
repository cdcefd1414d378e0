/* sae_subspace — groups whose code is the signed vector of their members'
 * pre-activations, switched on or off as a whole by its norm, with each
 * group's decoder rows kept orthonormal: one group can hold a whole s-D
 * feature (a circle's plane), which a group of ReLU latents, confined to a
 * cone of its plane, cannot (independent subspace analysis, Hyvarinen &
 * Hoyer 2000; subspace-aware SAEs, Dalili & Mahdavi 2026). Its registry row
 * (include/sae_arch.h) is at the end.
 *
 *   pre   = (x - b_dec) W_enc + b_enc                 (B, n), the shared encoder
 *   rho_g = ||pre_g||_2                               (B, G), signed codes: no ReLU
 *   topk (sae.k > 0):  z_g = pre_g on the k groups of largest rho in the row
 *                      (ties: lower index), 0 elsewhere; the penalty is not
 *                      weighed (k sets the sparsity), as for arch topk
 *   prox (sae.k = 0):  z_g = (1 - tau / rho_g)_+ pre_g, the group lasso's
 *                      proximal step (block soft-thresholding) at tau = the
 *                      pass's threshold (sae.threshold, ramped with the
 *                      sparsity warm-up); penalty c sum_g ||z_g|| = c sum_g (rho_g - tau)_+
 *   loss  = mse + [c penalty] + orth_coef orth [+ AuxK on signed codes while training]
 *
 * With D_g (s, dim) orthonormal, ||z_g D_g|| = ||z_g||: a point on a circle
 * in D_g's plane costs its radius wherever it lies, so a second group in the
 * same plane cannot lower the cost; the decoder rows of each group are put
 * back on the Stiefel manifold after every update by a QR retraction
 * (modified Gram-Schmidt in double, rows in index order), the trainer's
 * decoder constraint for this row. Gradients: the topk selection is
 * piecewise constant (exact gradient within it); the prox step's Jacobian is
 *   dz_g/dpre_g = (1 - tau/rho) I + (tau / rho^3) pre_g pre_g^T   (rho > tau)
 * and the penalty's gradient (c/B) pre_g / rho_g. A latent fires when its
 * code is non-zero (it may be negative). */
#include "analysis.h"
#include "sae_arch.h"
#include "sae_groups.h"
#include "sae_stage.h"
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration ---- */

/* k in 0 .. G (0: the prox step, which needs a threshold), aux_k at most G. */
static int subspace_check(const sae_config *c, char *field, size_t fl, char *msg, size_t ml)
{
    char text[200];
    int G = sae_n_groups(c);
    if (c->k > G) {
        snprintf(text, sizeof text, "k %d is more than the %d groups (of its %d latents); use k from 1 to %d", c->k,
                 G, c->n_latents, G);
        return sae_config_reject(field, fl, msg, ml, "k", text);
    }
    if (c->k == 0 && !(c->threshold > 0.0f))
        return sae_config_reject(field, fl, msg, ml, "k", "arch 'subspace' needs k (the groups kept per row) or a "
                               "threshold > 0 on the group norm (the group lasso's proximal step)");
    if (c->k > 0 && c->threshold != 0.0f)
        return sae_config_reject(field, fl, msg, ml, "threshold", "give arch 'subspace' either k or a threshold, "
                               "not both; leave threshold 0 with k");
    if (c->aux_k > G) {
        snprintf(text, sizeof text, "aux_k %d is more than the %d groups (n_latents / group_size); use at most %d, "
                 "or unset it for the default", c->aux_k, G, G);
        return sae_config_reject(field, fl, msg, ml, "aux_k", text);
    }
    return 0;
}

/* The prox step weighs the penalty; topk sets the sparsity with k. */
static int subspace_uses_sparsity_coef(const sae_config *c) { return c->k == 0; }

/* ---- the activation ---- */

/* One row-group: z (s) from pre (s) (may alias), returns its gnorm: k > 0 the code itself (the
 * selection follows), else the prox step at tau. */
static float subspace_group(const sae_config *c, float tau, const float *pg, int s, float *zg)
{
    float rho = sae_stage_norm(pg, s);
    float f = c->k > 0 ? 1.0f : rho > tau ? 1.0f - tau / rho : 0.0f;
    for (int k = 0; k < s; k++)
        zg[k] = f * pg[k];
    return c->k > 0 ? rho : f > 0.0f ? rho - tau : 0.0f;
}

/* z (B, n), gnorm (B, G) = ||z_g|| from pre (B, n) (z may alias pre). k > 0: the k groups of largest
 * norm per row, scratch (G); else the prox step at tau. A group table's groups are gathered. */
static void subspace_act(const sae_config *c, float tau, const float *pre, int B, float *z, float *gnorm,
                         float *scratch)
{
    int n = c->n_latents, s = c->group_size;
    size_t G = (size_t)sae_n_groups(c);
    float tmp[SAE_GROUPS_MAX_SIZE];
    for (size_t bg = 0; bg < (size_t)B * G; bg++) {
        if (!c->groups) {
            gnorm[bg] = subspace_group(c, tau, pre + bg * s, s, z + bg * s);
            continue;
        }
        size_t b = bg / G, g = bg % G;
        sae_groups_gather(c->groups, (int)g, pre + b * n, tmp);
        gnorm[bg] = subspace_group(c, tau, tmp, sae_group_len(c, (int)g), tmp);
        sae_groups_scatter(c->groups, (int)g, tmp, z + b * n);
    }
    if (c->k > 0)
        for (int b = 0; b < B; b++)
            sae_stage_keep_top(c, gnorm + (size_t)b * G, z + (size_t)b * n, G, (size_t)c->k, scratch);
}

/* The penalty is sum_g ||z_g||; w->dz is the selection's scratch. */
static double subspace_forward(const sae_params *p, const sae_pass *pass, const float *x, int B, sae_work *w,
                               double *extra)
{
    (void)x, (void)extra;
    subspace_act(&p->cfg, pass->threshold, w->pre, B, w->z, w->gnorm, w->dz);
    return sae_stage_sum_norms(&p->cfg, w->gnorm, B);
}

/* One row-group of the prox step: dz (s) d loss/d z in, d loss/d pre out, with the penalty's
 * term at scale c/B; pre (s). */
static void subspace_prox_backward(const float *pre, int s, float tau, float scale, float *dz)
{
    float rho = sae_stage_norm(pre, s);
    if (!(rho > tau)) {
        memset(dz, 0, (size_t)s * sizeof(float));
        return;
    }
    float dot = 0.0f;
    for (int k = 0; k < s; k++)
        dot += pre[k] * dz[k];
    float f = 1.0f - tau / rho, h = tau * dot / (rho * rho * rho), q = scale / rho;
    for (int k = 0; k < s; k++)
        dz[k] = f * dz[k] + (h + q) * pre[k];
}

/* One row-group's backward: d (s) in and out, pre (s). */
static void subspace_group_back(const sae_config *c, float tau, float scale, float gnorm, const float *pre, int s,
                                float *d)
{
    if (c->k == 0)
        subspace_prox_backward(pre, s, tau, scale, d);
    else if (!(gnorm > 0.0f)) /* not selected */
        memset(d, 0, (size_t)s * sizeof(float));
}

static void subspace_backward(const sae_params *p, const sae_pass *pass, int B, sae_work *w, sae_view *g,
                              float *grad)
{
    const sae_config *c = &p->cfg;
    int s = c->group_size, n = c->n_latents;
    size_t G = (size_t)sae_n_groups(c);
    float scale = pass->coef / (float)B, pg[SAE_GROUPS_MAX_SIZE], d[SAE_GROUPS_MAX_SIZE];
    (void)g, (void)grad;
    for (size_t bg = 0; bg < (size_t)B * G; bg++) {
        if (!c->groups) {
            subspace_group_back(c, pass->threshold, scale, w->gnorm[bg], w->pre + bg * s, s, w->dz + bg * s);
            continue;
        }
        size_t b = bg / G;
        int gi = (int)(bg % G);
        sae_groups_gather(c->groups, gi, w->pre + b * n, pg);
        sae_groups_gather(c->groups, gi, w->dz + b * n, d);
        subspace_group_back(c, pass->threshold, scale, w->gnorm[bg], pg, sae_group_len(c, gi), d);
        sae_groups_scatter(c->groups, gi, d, w->dz + b * n);
    }
}

/* One kept group (sparse codes): top-k passes d loss/d z through; the prox step maps it. */
static void subspace_group_backward(const sae_config *c, const sae_pass *pass, float scale, const float *pre_g,
                                    const float *z_g, float *dz_g)
{
    (void)z_g;
    if (c->k == 0)
        subspace_prox_backward(pre_g, c->group_size, pass->threshold, scale, dz_g);
}

/* AuxK while training, on the dead groups' signed codes; weighted by aux_k_coef. */
static double subspace_residual(const sae_params *p, const sae_pass *pass, const float *x, int B, sae_work *w,
                                sae_view *g)
{
    const sae_config *c = &p->cfg;
    if (!pass->train || !pass->dead || !(c->aux_k_coef > 0.0f) || !sae_stage_any_dead_group(c, pass->dead))
        return 0.0;
    return (double)c->aux_k_coef * sae_stage_auxk(p, x, B, pass->dead, 1, c->aux_k_coef, w, g);
}

/* ---- inference ---- */

static size_t subspace_encode_floats(const sae_config *c, int B)
{
    (void)B;
    return (size_t)sae_n_groups(c); /* one row's selection */
}

static void subspace_encode(const sae_params *p, float *z, int B, float *gnorm, float *scratch)
{
    subspace_act(&p->cfg, p->cfg.threshold, z, B, z, gnorm, scratch);
}

/* ---- the decoder on the Stiefel manifold ---- */

/* row (dim) minus its projections on the rows q[0 .. m) (each (dim), orthonormal); returns its squared
 * norm after. */
static double subspace_project_out(float *row, float *const *q, int m, int dim)
{
    for (int j = 0; j < m; j++) {
        double dot = 0.0;
        for (int d = 0; d < dim; d++)
            dot += (double)row[d] * q[j][d];
        for (int d = 0; d < dim; d++)
            row[d] -= (float)dot * q[j][d];
    }
    double n1 = 0.0;
    for (int d = 0; d < dim; d++)
        n1 += (double)row[d] * row[d];
    return n1;
}

/* row (dim) = the unit axis keeping most of its norm off the rows q[0 .. m) (m < dim, orthonormal), minus
 * its projections on them; returns its squared norm. */
static double subspace_fresh_axis(float *row, float *const *q, int m, int dim)
{
    int best = 0;
    double keep = -1.0;
    for (int axis = 0; axis < dim; axis++) {
        double on = 0.0;
        for (int j = 0; j < m; j++)
            on += (double)q[j][axis] * q[j][axis];
        if (1.0 - on > keep)
            keep = 1.0 - on, best = axis;
    }
    memset(row, 0, (size_t)dim * sizeof(float));
    row[best] = 1.0f;
    return subspace_project_out(row, q, m, dim);
}

/* The group's rows (s pointers to (dim) rows) made orthonormal by modified Gram-Schmidt in order. A row
 * in the span of the ones before it (resampling may give two members one residual) is replaced by the
 * unit axis furthest from it, so the result is always orthonormal (members past the dim-th of a group
 * larger than dim stay 0). */
static void subspace_mgs(float *const *rows, int s, int dim)
{
    for (int k = 0; k < s; k++) {
        float *row = rows[k]; /* (dim); rows[0 .. k) already orthonormal */
        double n0 = 0.0;
        for (int d = 0; d < dim; d++)
            n0 += (double)row[d] * row[d];
        double n1 = subspace_project_out(row, rows, k, dim);
        if (!(n1 > 1e-6 * n0 && n1 > 0.0)) /* the axis furthest from the span (n1 >= (dim - k) / dim) */
            n1 = subspace_fresh_axis(row, rows, k, dim);
        if (!(n1 > 1e-12)) { /* member s > dim: no direction is left; the row stays 0 (a dead latent) */
            memset(row, 0, (size_t)dim * sizeof(float));
            continue;
        }
        float inv = (float)(1.0 / sqrt(n1));
        for (int d = 0; d < dim; d++)
            row[d] *= inv;
    }
}

/* Rows [i0, i1) (whole groups) made orthonormal group by group (subspace_mgs, members in index
 * order); with a group table, every group with a member in [i0, i1). */
static void subspace_orthonormalize(sae_params *p, int i0, int i1)
{
    const sae_config *c = &p->cfg;
    float *rows[SAE_GROUPS_MAX_SIZE];
    assert(0 <= i0 && i0 <= i1 && i1 <= c->n_latents);
    assert(c->groups || (i0 % c->group_size == 0 && i1 % c->group_size == 0));
    int g0 = c->groups ? 0 : i0 / c->group_size, g1 = c->groups ? sae_n_groups(c) : i1 / c->group_size;
    for (int g = g0; g < g1; g++) {
        int s = sae_group_len(c, g), inside = 0;
        for (int k = 0; k < s; k++) {
            int i = sae_group_member(c, g, k);
            rows[k] = p->v.W_dec + (size_t)i * c->dim;
            inside |= i0 <= i && i < i1;
        }
        if (inside)
            subspace_mgs(rows, s, c->dim);
    }
}

/* ---- cluster-then-retrain ---- */

#define SUBSPACE_INIT_MIN_COS 0.3f /* rows of one plane are this close to their neighbours on it */

/* Groups 0, 1, ... from the planes the rows cluster into (analysis_subspace_cluster; group size 2
 * only, else nothing is set; at least 3 rows a plane, the best supported first): each such group's
 * decoder rows become an orthonormal basis of its cluster's span and its encoder columns their
 * transpose, so its code is at once the coordinates of x - b_dec in the plane (not the tied init's
 * dim/n scale: Adam's first steps, of about lr per coordinate whatever the gradient, would rotate a
 * decoder whose codes are still near 0 away from its plane), with b_enc 0; the other groups keep
 * their random init. */
static int subspace_init_from_rows(sae_params *p, const float *rows, int m, int *used)
{
    const sae_config *c = &p->cfg;
    int s = c->group_size, G = c->n_latents / s, dim = c->dim, n = c->n_latents, k = 0;
    float *bases = malloc((size_t)G * s * dim * sizeof(float)); /* (G, s, dim) */
    assert(rows && used && m >= 1);
    *used = 0;
    if (s != 2) { /* planes only: the clustering finds 2-D clusters */
        free(bases);
        return 0;
    }
    if (!bases || analysis_subspace_cluster(rows, m, dim, s, SUBSPACE_INIT_MIN_COS, 3, G, bases, &k) != 0) {
        free(bases);
        return -1;
    }
    memcpy(p->v.W_dec, bases, (size_t)k * s * dim * sizeof(float));
    for (int i = 0; i < k * s; i++) {
        p->v.b_enc[i] = 0.0f;
        for (int d = 0; d < dim; d++)
            p->v.W_enc[(size_t)d * n + i] = p->v.W_dec[(size_t)i * dim + d];
    }
    free(bases);
    *used = k;
    return 0;
}

/* A warm start from another SAE's weights: each group's decoder rows made orthonormal (its span kept
 * when the rows are independent) and its encoder columns their transpose with b_enc 0, so a group's
 * code starts as the coordinates of x - b_dec in its span, as cluster-then-retrain starts. */
static void subspace_adopt_params(sae_params *p)
{
    int n = p->cfg.n_latents, dim = p->cfg.dim;
    subspace_orthonormalize(p, 0, n);
    for (int i = 0; i < n; i++) {
        p->v.b_enc[i] = 0.0f;
        for (int d = 0; d < dim; d++)
            p->v.W_enc[(size_t)d * n + i] = p->v.W_dec[(size_t)i * dim + d];
    }
}

const sae_arch_def sae_arch_subspace = {
    .name = "subspace",
    .uses_sparsity_coef = subspace_uses_sparsity_coef,
    .threshold_ramps = 1,
    .any_groups = 1,
    .resamples = 1,
    .check = subspace_check,
    .init_from_rows = subspace_init_from_rows,
    .adopt_params = subspace_adopt_params,
    .forward = subspace_forward,
    .residual = subspace_residual,
    .backward = subspace_backward,
    .group_backward = subspace_group_backward,
    .encode_floats = subspace_encode_floats,
    .encode = subspace_encode,
    .constrain_decoder = subspace_orthonormalize,
    .saelens_arch = "subspace",
};
