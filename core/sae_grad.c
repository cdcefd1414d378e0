/* sae_grad — the SAE's forward and backward passes, in pairs.
 *
 *   encoder:  xc = x - b_dec; pre = xc W_enc + b_enc            (B, n)
 *   act:      z = act(pre) (per arch; relu: ReLU, then groups with
 *             ||z_g|| < threshold zeroed, JumpReLU's straight-through
 *             pseudo-derivative in the backward pass)          (B, n)
 *   decoder:  x_hat = z W_dec + b_dec                           (B, dim)
 *   loss:     mean_rows [ ||x_hat - x||^2 + c sum_g ||z_g|| ] + orth_coef * orth(W_dec)
 *
 * Each stage has a *_forward and a *_backward; backward passes write the
 * gradient into a buffer in the params layout (sae_views over it). The big
 * products are cblas_sgemm, row-major. A new architecture adds one
 * act_forward/act_backward pair to sae_acts[]; gated and jumprelu, which
 * have their own parameters and loss terms, replace the act and sparsity
 * stages through sae_gj_ops (sae_gj.h); topk and batchtopk run their own
 * pipeline over these stages (sae_topk.c, sae_stages.h). Everything is dense for now;
 * sparse paths over the active latents come later. */
#include "sae.h"
#include "par_gemm.h"
#include "sae_gj.h"
#include "sae_stages.h"
#include "sae_topk.h"
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    /* pre (B, n) -> z (B, n), gnorm (B, n/s); z may alias pre. */
    void (*act_forward)(const sae_config *c, const float *pre, int B, float *z, float *gnorm);
    /* dz (B, n): d loss/d z of the reconstruction in, d loss/d pre out, the sparsity term (scale
     * c/B) included. */
    void (*act_backward)(const sae_config *c, const float *pre, const float *z, const float *gnorm, int B,
                         float scale, float *dz);
} sae_act_ops;

/* ---- relu ---- */

static void relu_act_forward(const sae_config *c, const float *pre, int B, float *z, float *gnorm)
{
    int n = c->n_latents, s = c->group_size, G = n / s;
    for (size_t bg = 0; bg < (size_t)B * G; bg++) {
        const float *p = pre + bg * s; /* (s) this row's group */
        float *zg = z + bg * s;        /* (s) */
        float norm2 = 0.0f;
        for (int k = 0; k < s; k++) {
            zg[k] = p[k] > 0.0f ? p[k] : 0.0f;
            norm2 += zg[k] * zg[k];
        }
        float norm = s == 1 ? zg[0] : sqrtf(norm2);
        if (c->threshold > 0.0f && norm < c->threshold) {
            memset(zg, 0, (size_t)s * sizeof(float));
            norm = 0.0f;
        }
        gnorm[bg] = norm;
    }
}

/* The threshold's jump term of one row's group (include/sae.h): q_g / eps / rho_g, by which each
 * member's a_i is multiplied, or 0 outside the kernel's window. pre, dz (s): the group's
 * pre-activations and reconstruction gradients dx_hat . d_i. */
float sae_relu_jump(const sae_config *c, const float *pre, const float *dz, float scale)
{
    int s = c->group_size;
    float rho2 = 0.0f, dot = 0.0f;
    for (int k = 0; k < s; k++)
        if (pre[k] > 0.0f)
            rho2 += pre[k] * pre[k], dot += pre[k] * dz[k];
    return sae_relu_jump_of(c, sqrtf(rho2), dot, scale);
}

int sae_relu_in_window(const sae_config *c, float rho)
{
    return c->threshold > 0.0f && rho > 0.0f && fabsf(rho - c->threshold) < 0.5f * c->bandwidth;
}

float sae_relu_jump_of(const sae_config *c, float rho, float dot, float scale)
{
    return sae_relu_in_window(c, rho) ? (dot + scale * rho) / (c->bandwidth * rho) : 0.0f;
}

/* dz (B, n): the reconstruction gradient in; out: [z > 0] (dz + scale z_i / ||z_g||), the exact
 * gradient (0 in zeroed groups), plus the threshold's jump term near the threshold. */
static void relu_act_backward(const sae_config *c, const float *pre, const float *z, const float *gnorm, int B,
                              float scale, float *dz)
{
    int s = c->group_size;
    for (size_t bg = 0; bg < (size_t)B * (c->n_latents / s); bg++) {
        const float *p = pre + bg * s, *zg = z + bg * s; /* (s) each */
        float *d = dz + bg * s;                          /* (s) */
        float jump = sae_relu_jump(c, p, d, scale), f = gnorm[bg] > 0.0f ? scale / gnorm[bg] : 0.0f;
        for (int k = 0; k < s; k++) {
            float a = p[k] > 0.0f ? p[k] : 0.0f;
            d[k] = (zg[k] > 0.0f ? d[k] + f * zg[k] : 0.0f) + jump * a;
        }
    }
}

static const sae_act_ops sae_acts[] = {
    [SAE_RELU] = {relu_act_forward, relu_act_backward},
};

static const sae_act_ops *sae_act(const sae_config *c)
{
    return &sae_acts[c->arch]; /* sae_config_check admits only implemented archs */
}

/* ---- helpers ---- */

/* out (B, cols) = each row set to v (cols). */
static void sae_broadcast_rows(float *out, const float *v, int B, int cols)
{
    for (int b = 0; b < B; b++)
        memcpy(out + (size_t)b * cols, v, (size_t)cols * sizeof(float));
}

/* out (cols) = sum over rows of m (B, cols). */
static void sae_colsum(const float *m, int B, int cols, float *out)
{
    memset(out, 0, (size_t)cols * sizeof(float));
    for (int b = 0; b < B; b++) {
        const float *row = m + (size_t)b * cols;
        for (int j = 0; j < cols; j++)
            out[j] += row[j];
    }
}

/* ---- encoder ---- */

void sae_encoder_forward(const sae_config *c, par_pool *pool, const sae_view *v, const float *x, int B,
                         float *xc, float *pre)
{
    int n = c->n_latents, dim = c->dim;
    for (int b = 0; b < B; b++)
        for (int d = 0; d < dim; d++)
            xc[(size_t)b * dim + d] = x[(size_t)b * dim + d] - v->b_dec[d];
    sae_broadcast_rows(pre, v->b_enc, B, n);
    par_sgemm(pool, 0, 0, B, n, dim, 1.0f, xc, dim, v->W_enc, n, 1.0f, pre, n);
}

/* dpre (B, n) -> g.W_enc (set), g.b_enc (added to: gated puts its own term there first),
 * g.b_dec (decremented, as xc = x - b_dec). */
void sae_encoder_backward(const sae_config *c, par_pool *pool, const sae_view *v, const float *xc,
                          const float *dpre, int B, float *colsum, sae_view *g)
{
    int n = c->n_latents, dim = c->dim;
    par_sgemm(pool, 1, 0, dim, n, B, 1.0f, xc, dim, dpre, n, 0.0f, g->W_enc, n);
    sae_colsum(dpre, B, n, colsum);
    for (int j = 0; j < n; j++)
        g->b_enc[j] += colsum[j];
    /* d/d b_dec of sum_b dpre_b . ((x_b - b_dec) W_enc) = -W_enc colsum */
    cblas_sgemv(CblasRowMajor, CblasNoTrans, dim, n, -1.0f, v->W_enc, n, colsum, 1, 1.0f, g->b_dec, 1);
}

/* ---- decoder ---- */

void sae_decoder_forward(const sae_config *c, par_pool *pool, const sae_view *v, const float *z, int B, float *x_hat)
{
    int n = c->n_latents, dim = c->dim;
    sae_broadcast_rows(x_hat, v->b_dec, B, dim);
    par_sgemm(pool, 0, 0, B, dim, n, 1.0f, z, n, v->W_dec, dim, 1.0f, x_hat, dim);
}

/* dx_hat (B, dim) -> g.W_dec, g.b_dec (set) and dz (B, n) (set). */
void sae_decoder_backward(const sae_config *c, par_pool *pool, const sae_view *v, const float *z,
                          const float *dx_hat, int B, float *dz, sae_view *g)
{
    int n = c->n_latents, dim = c->dim;
    par_sgemm(pool, 1, 0, n, dim, B, 1.0f, z, n, dx_hat, dim, 0.0f, g->W_dec, dim);
    sae_colsum(dx_hat, B, dim, g->b_dec);
    par_sgemm(pool, 0, 1, B, n, dim, 1.0f, dx_hat, dim, v->W_dec, dim, 0.0f, dz, n);
}

/* ---- reconstruction error ---- */

/* Returns sum over the batch of ||x_hat - x||^2; dx_hat (B, dim) = 2 (x_hat - x) / B. */
double sae_mse_forward_backward(const float *x, const float *x_hat, int B, int dim, float *dx_hat)
{
    double sse = 0.0;
    float scale = 2.0f / (float)B;
    for (size_t k = 0; k < (size_t)B * dim; k++) {
        float e = x_hat[k] - x[k];
        sse += (double)e * e;
        if (dx_hat)
            dx_hat[k] = scale * e;
    }
    return sse;
}

/* ---- sparsity: sum_g ||z_g|| per row ---- */

static double sae_sparsity_forward(const sae_config *c, const float *gnorm, int B)
{
    double sum = 0.0;
    for (size_t bg = 0; bg < (size_t)B * (c->n_latents / c->group_size); bg++)
        sum += gnorm[bg];
    return sum;
}

/* ---- orthogonality within groups: sum_g sum_{i != j} ReLU(d_i . d_j) ---- */

static float sae_dot(const float *a, const float *b, int dim)
{
    float sum = 0.0f;
    for (int d = 0; d < dim; d++)
        sum += a[d] * b[d];
    return sum;
}

/* Returns the penalty; if gW_dec (n, dim) is non-NULL adds coef * its gradient. */
double sae_orth_forward_backward(const sae_config *c, const float *W_dec, float coef, float *gW_dec)
{
    int s = c->group_size, dim = c->dim;
    double sum = 0.0;
    for (int g0 = 0; g0 < c->n_latents; g0 += s)
        for (int i = g0; i < g0 + s; i++)
            for (int j = i + 1; j < g0 + s; j++) {
                const float *di = W_dec + (size_t)i * dim, *dj = W_dec + (size_t)j * dim;
                float dot = sae_dot(di, dj, dim);
                if (!(dot > 0.0f))
                    continue;
                sum += 2.0 * dot; /* (i, j) and (j, i) */
                if (gW_dec)
                    for (int d = 0; d < dim; d++) {
                        gW_dec[(size_t)i * dim + d] += 2.0f * coef * dj[d];
                        gW_dec[(size_t)j * dim + d] += 2.0f * coef * di[d];
                    }
            }
    return sum;
}

/* ---- counting ---- */

void sae_count_active(const sae_config *c, const float *z, const float *gnorm, int B, sae_loss_terms *t)
{
    size_t active = 0, groups = 0;
    for (size_t k = 0; k < (size_t)B * c->n_latents; k++)
        active += z[k] > 0.0f;
    for (size_t bg = 0; bg < (size_t)B * (c->n_latents / c->group_size); bg++)
        groups += gnorm[bg] > 0.0f;
    t->l0 = (double)active / B;
    t->l0_groups = (double)groups / B;
}

/* ---- public ---- */

int sae_work_alloc(sae_work *w, const sae_config *c, int B)
{
    size_t b = (size_t)B, n = (size_t)c->n_latents, d = (size_t)c->dim;
    memset(w, 0, sizeof *w);
    w->B = B;
    w->xc = malloc(b * d * sizeof(float));
    w->pre = malloc(b * n * sizeof(float));
    w->z = malloc(b * n * sizeof(float));
    w->dz = malloc(b * n * sizeof(float));
    w->x_hat = malloc(b * d * sizeof(float));
    w->dx_hat = malloc(b * d * sizeof(float));
    w->gnorm = malloc(b * (n / (size_t)c->group_size) * sizeof(float));
    w->colsum = malloc(n * sizeof(float));
    size_t arch = sae_gj_scratch_floats(c, B);
    if (arch > 0 && !(w->arch_scratch = malloc(arch * sizeof(float)))) {
        sae_work_free(w);
        return -1;
    }
    if (!w->xc || !w->pre || !w->z || !w->dz || !w->x_hat || !w->dx_hat || !w->gnorm || !w->colsum) {
        sae_work_free(w);
        return -1;
    }
    return 0;
}

void sae_work_free(sae_work *w)
{
    free(w->xc);
    free(w->pre);
    free(w->z);
    free(w->dz);
    free(w->x_hat);
    free(w->dx_hat);
    free(w->gnorm);
    free(w->colsum);
    free(w->arch_scratch);
    memset(w, 0, sizeof *w);
}

/* The backward passes in reverse order; reads what sae_loss_grad's forward left in w. */
static void sae_backward(const sae_params *p, int B, float coef, sae_work *w, float *grad)
{
    const sae_config *c = &p->cfg;
    sae_view g;
    sae_views(c, grad, &g);
    memset(grad, 0, p->n_params * sizeof(float)); /* arch extras start at 0 too */
    sae_decoder_backward(c, w->pool, &p->v, w->z, w->dx_hat, B, w->dz, &g);
    if (c->orth_coef > 0.0f)
        sae_orth_forward_backward(c, p->v.W_dec, c->orth_coef, g.W_dec);
    const sae_gj_ops *gj = sae_gj_ops_for(c);
    if (gj) {
        gj->backward(p, B, coef, w, grad);
    } else {
        sae_act(c)->act_backward(c, w->pre, w->z, w->gnorm, B, coef / (float)B, w->dz);
    }
    sae_encoder_backward(c, w->pool, &p->v, w->xc, w->dz, B, w->colsum, &g);
}

double sae_loss_grad(const sae_params *p, const float *x, int B, float coef, sae_work *w, float *grad,
                     sae_loss_terms *terms)
{
    const sae_config *c = &p->cfg;
    sae_loss_terms t;
    assert(B >= 1 && B <= w->B);
    if (sae_topk_is(c)) /* topk/batchtopk run their own pipeline (sae_topk.c) */
        return sae_topk_loss_grad(p, x, B, 0, NULL, w, grad, terms);
    const sae_gj_ops *gj = sae_gj_ops_for(c);
    double extra = 0.0; /* gated: the auxiliary reconstruction's sum over the batch */
    sae_encoder_forward(c, w->pool, &p->v, x, B, w->xc, w->pre);
    if (gj) {
        t.sparsity = gj->forward(p, x, B, w, &extra) / B;
    } else {
        sae_act(c)->act_forward(c, w->pre, B, w->z, w->gnorm);
        t.sparsity = sae_sparsity_forward(c, w->gnorm, B) / B;
    }
    sae_decoder_forward(c, w->pool, &p->v, w->z, B, w->x_hat);
    t.mse = sae_mse_forward_backward(x, w->x_hat, B, c->dim, grad ? w->dx_hat : NULL) / B;
    t.orth = c->orth_coef > 0.0f ? sae_orth_forward_backward(c, p->v.W_dec, 0.0f, NULL) : 0.0;
    t.loss = t.mse + (double)coef * t.sparsity + (double)c->orth_coef * t.orth + extra / B;
    sae_count_active(c, w->z, w->gnorm, B, &t);
    if (grad)
        sae_backward(p, B, coef, w, grad);
    if (terms)
        *terms = t;
    return t.loss;
}

#define SAE_ENCODE_CHUNK 256

int sae_encode(const sae_params *p, par_pool *pool, const float *x, int B, float *z, float *x_hat)
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents, dim = c->dim, chunk = B < SAE_ENCODE_CHUNK ? B : SAE_ENCODE_CHUNK;
    if (sae_topk_is(c))
        return sae_topk_encode(p, pool, x, B, z, x_hat);
    float *xc = malloc((size_t)(chunk > 0 ? chunk : 1) * dim * sizeof(float));              /* (chunk, dim) */
    float *gnorm = malloc((size_t)(chunk > 0 ? chunk : 1) * (n / c->group_size) * sizeof(float)); /* (chunk, G) */
    if (!xc || !gnorm) {
        free(xc);
        free(gnorm);
        return -1;
    }
    for (int b0 = 0; b0 < B; b0 += chunk) {
        int m = B - b0 < chunk ? B - b0 : chunk;
        float *zc = z + (size_t)b0 * n; /* (m, n) */
        sae_encoder_forward(c, pool, &p->v, x + (size_t)b0 * dim, m, xc, zc);
        if (!sae_gj_ops_for(c))
            sae_act(c)->act_forward(c, zc, m, zc, gnorm);
        else if (sae_gj_ops_for(c)->encode(p, zc, m, gnorm) != 0) {
            free(xc);
            free(gnorm);
            return -1;
        }
        if (x_hat)
            sae_decoder_forward(c, pool, &p->v, zc, m, x_hat + (size_t)b0 * dim);
    }
    free(xc);
    free(gnorm);
    return 0;
}
