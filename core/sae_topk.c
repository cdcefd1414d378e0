/* sae_topk — the topk and batchtopk architectures: group TopK with AuxK.
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
 * moments stay 0); after each training step sae_train_update() moves it to
 * an exponential moving average (decay SAE_THETA_DECAY) of the batch's
 * smallest kept non-zero group norm, starting at the first batch's value.
 * An untrained theta of 0 keeps every non-zero group.
 *
 * Gradients: the selection is piecewise constant, so within it the loss is
 * the relu SAE's reconstruction loss over the kept latents; the gradient is
 * exact except where the selection changes (ties between norms) and at
 * pre = 0 (ReLU'(0) = 0). Scratch: the forward uses w->dz for the selection
 * (before the backward sets it); AuxK uses w->colsum (before the encoder
 * backward sets it) and w->dx_hat (after the decoder backward has read it;
 * with AuxK it ends holding the AuxK gradient w.r.t. e_hat). */
#include "sae_topk.h"
#include "sae_stages.h"
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAE_THETA_DECAY 0.99f /* batchtopk's threshold EMA: theta += (1 - decay) (batch min - theta) */
#define SAE_TOPK_CHUNK 256    /* rows per sae_encode pass */

int sae_topk_is(const sae_config *c) { return c->arch == SAE_TOPK || c->arch == SAE_BATCHTOPK; }

int sae_aux_k_groups(const sae_config *c)
{
    int G = c->n_latents / c->group_size, a = c->dim / 2 / c->group_size;
    if (c->aux_k > 0)
        return c->aux_k < G ? c->aux_k : G;
    return a < 1 ? 1 : a > G ? G : a;
}

/* batchtopk's theta: the one extra float after b_dec. */
static float *tk_theta(const sae_params *p) { return p->v.b_dec + p->cfg.dim; }

/* ---- configuration ---- */

static int tk_reject(char *field, size_t fl, char *msg, size_t ml, const char *name, const char *text)
{
    snprintf(field, fl, "sae.%s", name);
    snprintf(msg, ml, "%s", text);
    return -1;
}

int sae_topk_config_check(const sae_config *c, char *field, size_t fl, char *msg, size_t ml)
{
    char text[200];
    int G = c->n_latents / c->group_size;
    if (!isfinite(c->aux_k_coef) || c->aux_k_coef < 0.0f)
        return tk_reject(field, fl, msg, ml, "aux_k_coef",
                         "aux_k_coef must be a finite number >= 0 (default 0.03125 = 1/32; 0 turns AuxK off)");
    if (c->aux_k < 0)
        return tk_reject(field, fl, msg, ml, "aux_k", "aux_k must be at least 1 (or unset for the default)");
    if (!sae_topk_is(c))
        return 0;
    if (c->k < 1) {
        snprintf(text, sizeof text, "arch '%s' needs k, the number of groups kept per row, from 1 to %d "
                 "(n_latents %d / group_size %d)", sae_arch_name(c->arch), G, c->n_latents, c->group_size);
        return tk_reject(field, fl, msg, ml, "k", text);
    }
    if (c->k > G) {
        snprintf(text, sizeof text, "k %d is more than the %d groups (n_latents %d / group_size %d); use k from 1 "
                 "to %d", c->k, G, c->n_latents, c->group_size, G);
        return tk_reject(field, fl, msg, ml, "k", text);
    }
    if (c->aux_k > G) {
        snprintf(text, sizeof text, "aux_k %d is more than the %d groups (n_latents / group_size); use at most %d, "
                 "or unset it for the default", c->aux_k, G, G);
        return tk_reject(field, fl, msg, ml, "aux_k", text);
    }
    if (c->threshold != 0.0f)
        return tk_reject(field, fl, msg, ml, "threshold", "threshold is the relu arch's; topk and batchtopk keep "
                         "k groups (batchtopk learns its own inference threshold), so leave it 0");
    return 0;
}

/* ---- selection ---- */

static void tk_swap(float *a, size_t i, size_t j)
{
    float t = a[i];
    a[i] = a[j];
    a[j] = t;
}

static float tk_median3(float a, float b, float c)
{
    if (a > b) {
        float t = a;
        a = b;
        b = t;
    }
    return c <= a ? a : c >= b ? b : c;
}

/* The kk-th largest (1 <= kk <= m) of a (m), which is reordered. Three-way
 * partitions around an element, so every round shrinks the range and it
 * ends even on NaNs (which then land among the "equal" ones). */
static float tk_kth_largest(float *a, size_t m, size_t kk)
{
    size_t lo = 0, hi = m; /* the answer is in a[lo, hi), the kk-th largest there */
    for (;;) {
        if (hi - lo == 1)
            return a[lo];
        float piv = tk_median3(a[lo], a[lo + (hi - lo) / 2], a[hi - 1]);
        size_t gt = lo, i = lo, lt = hi; /* [lo, gt) > piv, [gt, i) == piv, [lt, hi) < piv */
        while (i < lt) {
            if (a[i] > piv)
                tk_swap(a, i++, gt++);
            else if (a[i] < piv)
                tk_swap(a, i, --lt);
            else
                i++;
        }
        if (kk <= gt - lo) {
            hi = gt;
        } else if (kk <= lt - lo) {
            return piv;
        } else {
            kk -= lt - lo;
            lo = lt;
        }
    }
}

/* ||a_g|| of one group of ReLU(pre) (s floats): the value itself when s = 1. */
static float tk_group_norm(const float *pre, int s)
{
    if (s == 1)
        return pre[0] > 0.0f ? pre[0] : 0.0f;
    float norm2 = 0.0f;
    for (int k = 0; k < s; k++)
        norm2 += pre[k] > 0.0f ? pre[k] * pre[k] : 0.0f;
    return sqrtf(norm2);
}

/* z (rows*G groups of s) = ReLU(pre), nrm (rows*G) their norms; z may alias pre. */
static void tk_relu_norms(const float *pre, size_t groups, int s, float *z, float *nrm)
{
    for (size_t g = 0; g < groups; g++) {
        nrm[g] = tk_group_norm(pre + g * s, s);
        for (int k = 0; k < s; k++)
            z[g * s + k] = pre[g * s + k] > 0.0f ? pre[g * s + k] : 0.0f;
    }
}

static void tk_drop(float *nrm, float *z, size_t g, int s)
{
    nrm[g] = 0.0f;
    memset(z + g * s, 0, (size_t)s * sizeof(float));
}

/* Keeps, of m groups (norms nrm (m), values z (m*s)), the kk of largest norm
 * (ties: lower index first) and zeroes the rest. scratch (m). */
static void tk_keep_top(float *nrm, float *z, size_t m, int s, size_t kk, float *scratch)
{
    if (kk >= m)
        return;
    memcpy(scratch, nrm, m * sizeof(float));
    float v = tk_kth_largest(scratch, m, kk);
    size_t above = 0;
    for (size_t g = 0; g < m; g++)
        above += nrm[g] > v;
    size_t ties = above < kk ? kk - above : 0;
    for (size_t g = 0; g < m; g++) {
        if (nrm[g] > v)
            continue;
        if (nrm[g] == v && ties > 0)
            ties--;
        else
            tk_drop(nrm, z, g, s);
    }
}

/* pre (B, n) -> z (B, n), gnorm (B, G) under the arch's rule (train: the
 * training rule). z may alias pre. scratch: B*G floats for batchtopk while
 * training, G otherwise. */
static void tk_act_forward(const sae_params *p, const float *pre, int B, int train, float *z, float *gnorm,
                           float *scratch)
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents, s = c->group_size;
    size_t G = (size_t)(n / s), all = (size_t)B * G;
    tk_relu_norms(pre, all, s, z, gnorm);
    if (c->arch == SAE_BATCHTOPK && train) {
        tk_keep_top(gnorm, z, all, s, (size_t)c->k * (size_t)B, scratch);
    } else if (c->arch == SAE_BATCHTOPK) {
        float theta = *tk_theta(p);
        for (size_t g = 0; g < all; g++)
            if (!(gnorm[g] >= theta))
                tk_drop(gnorm, z, g, s);
    } else {
        for (int b = 0; b < B; b++)
            tk_keep_top(gnorm + (size_t)b * G, z + (size_t)b * n, G, s, (size_t)c->k, scratch);
    }
}

/* dpre (B, n): d loss/d z in, d loss/d pre out: 0 where z is 0 (dropped, or pre <= 0). */
static void tk_act_backward(const float *z, size_t count, float *dz)
{
    for (size_t k = 0; k < count; k++)
        if (!(z[k] > 0.0f))
            dz[k] = 0.0f;
}

/* ---- AuxK ---- */

static int tk_group_dead(const unsigned char *dead, int g, int s)
{
    for (int k = 0; k < s; k++)
        if (!dead[g * s + k])
            return 0;
    return 1;
}

static int tk_any_dead_group(const sae_config *c, const unsigned char *dead)
{
    for (int g = 0; g < c->n_latents / c->group_size; g++)
        if (tk_group_dead(dead, g, c->group_size))
            return 1;
    return 0;
}

/* Marks in sel (G) the row's AuxK groups (1, else 0): the aux_k dead groups
 * of largest norm of ReLU(pre_b) (ties: lower index first), or all dead
 * groups if there are fewer. The candidates' norms pass through sel first. */
static void tk_aux_select(const sae_config *c, const float *pre_b, const unsigned char *dead, float *sel)
{
    int s = c->group_size, G = c->n_latents / s, D = 0, ka = sae_aux_k_groups(c), above = 0;
    for (int g = 0; g < G; g++)
        if (tk_group_dead(dead, g, s))
            sel[D++] = tk_group_norm(pre_b + (size_t)g * s, s);
    float v = D > ka ? tk_kth_largest(sel, (size_t)D, (size_t)ka) : -INFINITY;
    for (int g = 0; g < G; g++)
        above += tk_group_dead(dead, g, s) && tk_group_norm(pre_b + (size_t)g * s, s) > v;
    int ties = above < ka ? ka - above : 0;
    for (int g = 0; g < G; g++) { /* the candidates' norms are no longer needed */
        float nv = tk_group_dead(dead, g, s) ? tk_group_norm(pre_b + (size_t)g * s, s) : NAN;
        int take = nv > v;
        if (!take && nv == v && ties > 0) {
            take = 1;
            ties--;
        }
        sel[g] = take ? 1.0f : 0.0f;
    }
}

/* One row's AuxK: returns ||e - e_hat||^2 for e = x_b - x_hat_b, e_hat =
 * sum over the selected latents of ReLU(pre) d_i; r (dim) is left holding
 * e_hat - e. sel (G) from tk_aux_select. */
static double tk_aux_row(const sae_params *p, const float *x_b, const float *xh_b, const float *pre_b,
                         const float *sel, float *r)
{
    const sae_config *c = &p->cfg;
    int s = c->group_size, dim = c->dim;
    memset(r, 0, (size_t)dim * sizeof(float));
    for (int i = 0; i < c->n_latents; i++)
        if (sel[i / s] != 0.0f && pre_b[i] > 0.0f) {
            const float *d = p->v.W_dec + (size_t)i * dim; /* (dim) */
            for (int j = 0; j < dim; j++)
                r[j] += pre_b[i] * d[j];
        }
    double sum = 0.0;
    for (int j = 0; j < dim; j++) {
        r[j] -= x_b[j] - xh_b[j];
        sum += (double)r[j] * r[j];
    }
    return sum;
}

/* One row's AuxK gradient, daux = scale * r (dim, scaled in place):
 * dpre_b (n) += daux . d_i and gW_dec row i += ReLU(pre_i) daux at the
 * selected latents with pre > 0. */
static void tk_aux_row_backward(const sae_params *p, const float *pre_b, const float *sel, float *r, float scale,
                                float *dpre_b, float *gW_dec)
{
    const sae_config *c = &p->cfg;
    int s = c->group_size, dim = c->dim;
    for (int j = 0; j < dim; j++)
        r[j] *= scale;
    for (int i = 0; i < c->n_latents; i++) {
        if (sel[i / s] == 0.0f || !(pre_b[i] > 0.0f))
            continue;
        const float *d = p->v.W_dec + (size_t)i * dim; /* (dim) */
        float *gd = gW_dec + (size_t)i * dim;          /* (dim) */
        float dot = 0.0f;
        for (int j = 0; j < dim; j++) {
            dot += r[j] * d[j];
            gd[j] += pre_b[i] * r[j];
        }
        dpre_b[i] += dot;
    }
}

/* Sum over rows of ||e - e_hat||^2; with g non-NULL adds aux_k_coef / B
 * times its gradient (e held constant) to w->dz (as d loss/d pre) and
 * g->W_dec. Scratch: w->colsum (selection), w->dx_hat (rows of r). */
static double tk_aux(const sae_params *p, const float *x, int B, const unsigned char *dead, sae_work *w,
                     sae_view *g)
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents, dim = c->dim;
    float scale = 2.0f * c->aux_k_coef / (float)B;
    double sum = 0.0;
    for (int b = 0; b < B; b++) {
        const float *pre_b = w->pre + (size_t)b * n;
        float *r = w->dx_hat + (size_t)b * dim;
        tk_aux_select(c, pre_b, dead, w->colsum);
        sum += tk_aux_row(p, x + (size_t)b * dim, w->x_hat + (size_t)b * dim, pre_b, w->colsum, r);
        if (g)
            tk_aux_row_backward(p, pre_b, w->colsum, r, scale, w->dz + (size_t)b * n, g->W_dec);
    }
    return sum;
}

/* ---- loss and gradient ---- */

static void tk_terms(const sae_params *p, const float *x, int B, sae_work *w, int want_dx, sae_loss_terms *t)
{
    const sae_config *c = &p->cfg;
    double sparsity = 0.0;
    for (size_t g = 0; g < (size_t)B * (c->n_latents / c->group_size); g++)
        sparsity += w->gnorm[g];
    t->mse = sae_mse_forward_backward(x, w->x_hat, B, c->dim, want_dx ? w->dx_hat : NULL) / B;
    t->sparsity = sparsity / B;
    t->orth = c->orth_coef > 0.0f ? sae_orth_forward_backward(c, p->v.W_dec, 0.0f, NULL) : 0.0;
    sae_count_active(c, w->z, w->gnorm, B, t);
}

double sae_topk_loss_grad(const sae_params *p, const float *x, int B, int train, const unsigned char *dead,
                          sae_work *w, float *grad, sae_loss_terms *terms)
{
    const sae_config *c = &p->cfg;
    sae_loss_terms t;
    int aux = train && dead && c->aux_k_coef > 0.0f && tk_any_dead_group(c, dead);
    double aux_sum = 0.0;
    assert(B >= 1 && B <= w->B);
    sae_encoder_forward(c, w->pool, &p->v, x, B, w->xc, w->pre);
    tk_act_forward(p, w->pre, B, train, w->z, w->gnorm, w->dz);
    sae_decoder_forward(c, w->pool, &p->v, w->z, B, w->x_hat);
    tk_terms(p, x, B, w, grad != NULL, &t);
    if (grad) {
        sae_view g;
        sae_views(c, grad, &g);
        memset(grad, 0, p->n_params * sizeof(float)); /* theta's gradient stays 0 */
        sae_decoder_backward(c, w->pool, &p->v, w->z, w->dx_hat, B, w->dz, &g);
        if (c->orth_coef > 0.0f)
            sae_orth_forward_backward(c, p->v.W_dec, c->orth_coef, g.W_dec);
        tk_act_backward(w->z, (size_t)B * c->n_latents, w->dz);
        if (aux)
            aux_sum = tk_aux(p, x, B, dead, w, &g);
        sae_encoder_backward(c, w->pool, &p->v, w->xc, w->dz, B, w->colsum, &g);
    } else if (aux) {
        aux_sum = tk_aux(p, x, B, dead, w, NULL);
    }
    t.loss = t.mse + (double)c->aux_k_coef * aux_sum / B + (double)c->orth_coef * t.orth;
    if (terms)
        *terms = t;
    return t.loss;
}

double sae_loss_grad_train(const sae_params *p, const float *x, int B, float coef, const unsigned char *dead,
                           sae_work *w, float *grad, sae_loss_terms *terms)
{
    if (!sae_topk_is(&p->cfg))
        return sae_loss_grad(p, x, B, coef, w, grad, terms);
    return sae_topk_loss_grad(p, x, B, 1, dead, w, grad, terms);
}

void sae_train_update(sae_params *p, const sae_work *w, int B)
{
    const sae_config *c = &p->cfg;
    if (c->arch != SAE_BATCHTOPK)
        return;
    float lo = INFINITY; /* the smallest kept non-zero group norm */
    for (size_t g = 0; g < (size_t)B * (c->n_latents / c->group_size); g++)
        if (w->gnorm[g] > 0.0f && w->gnorm[g] < lo)
            lo = w->gnorm[g];
    if (!isfinite(lo))
        return;
    float *theta = tk_theta(p);
    *theta = *theta > 0.0f ? *theta + (1.0f - SAE_THETA_DECAY) * (lo - *theta) : lo;
}

/* ---- inference ---- */

int sae_topk_encode(const sae_params *p, par_pool *pool, const float *x, int B, float *z, float *x_hat)
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents, dim = c->dim, G = n / c->group_size;
    size_t chunk = B < SAE_TOPK_CHUNK ? (size_t)(B > 0 ? B : 1) : SAE_TOPK_CHUNK;
    float *xc = malloc(chunk * dim * sizeof(float));  /* (chunk, dim) */
    float *gnorm = malloc(chunk * G * sizeof(float)); /* (chunk, G) */
    float *scratch = malloc((size_t)G * sizeof(float)); /* (G) */
    int rc = xc && gnorm && scratch ? 0 : -1;
    for (int b0 = 0; rc == 0 && b0 < B; b0 += (int)chunk) {
        int m = B - b0 < (int)chunk ? B - b0 : (int)chunk;
        float *zc = z + (size_t)b0 * n; /* (m, n) */
        sae_encoder_forward(c, pool, &p->v, x + (size_t)b0 * dim, m, xc, zc);
        tk_act_forward(p, zc, m, 0, zc, gnorm, scratch);
        if (x_hat)
            sae_decoder_forward(c, pool, &p->v, zc, m, x_hat + (size_t)b0 * dim);
    }
    free(xc);
    free(gnorm);
    free(scratch);
    return rc;
}
