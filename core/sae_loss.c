/* sae_loss — one pass of the SAE's loss and gradient, and inference, for
 * every architecture: the shared stages (core/sae_stage.c) around the
 * registry row's hooks (include/sae_arch.h), with the dense scratch of
 * sae_work (the trainer's fast path for the archs that have one is
 * include/sae_fast.h; include/sae_engine.h chooses).
 *
 *   forward:  encoder (xc, pre) -> row.forward (z, gnorm, penalty, extra)
 *             -> decoder (x_hat) -> mse -> orth [-> row.residual]
 *   (a row with sparse codes, group_backward, runs the decoder and the
 *   backward over its kept groups alone, include/sae_sparse.h, unless more
 *   than SAE_SPARSE_FRAC of the batch's latents are kept)
 *   loss:     mse/B + c penalty/B (rows that use c) + orth_coef orth + extra/B
 *   backward: zero grad -> decoder backward (dz, g.W_dec, g.b_dec) -> orth
 *             -> row.backward (dz -> dpre, the row's own terms)
 *             [-> row.residual with g] -> encoder backward (g.W_enc, b_enc, b_dec)
 *
 * This file decides nothing by architecture: it asks the row. */
#include "sae.h"
#include "sae_arch.h"
#include "sae_groups.h"
#include "sae_sparse.h"
#include "sae_stage.h"
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#define SAE_ENCODE_CHUNK 256 /* rows per sae_encode pass */

/* ---- scratch ---- */

/* 1 when the pass may run over kept groups alone (include/sae_sparse.h): the row has sparse codes and
 * the groups are contiguous of one size (a group table takes the dense pass). */
static int sae_loss_sparse(const sae_config *c) { return sae_arch_of(c)->group_backward && !c->groups; }

size_t sae_work_bytes(const sae_config *c, int B)
{
    const sae_arch_def *a = sae_arch_of(c);
    size_t b = (size_t)B, n = (size_t)c->n_latents, d = (size_t)c->dim;
    size_t groups = (size_t)sae_n_groups(c);
    size_t arch = a->scratch_floats ? a->scratch_floats(c, B) : 0;
    size_t sparse = sae_loss_sparse(c) ? sae_sparse_bytes(c, B) : 0, aux = a->residual ? sae_stage_auxk_bytes(c) : 0;
    return (3 * b * d + 3 * b * n + b * groups + n + arch) * sizeof(float) + sparse + aux;
}

int sae_work_alloc(sae_work *w, const sae_config *c, int B)
{
    const sae_arch_def *a = sae_arch_of(c);
    size_t b = (size_t)B, n = (size_t)c->n_latents, d = (size_t)c->dim;
    assert(B >= 1 && (c->group_size >= 1 || c->groups));
    memset(w, 0, sizeof *w);
    w->B = B;
    w->xc = malloc(b * d * sizeof(float));
    w->pre = malloc(b * n * sizeof(float));
    w->z = malloc(b * n * sizeof(float));
    w->dz = malloc(b * n * sizeof(float));
    w->x_hat = malloc(b * d * sizeof(float));
    w->dx_hat = malloc(b * d * sizeof(float));
    w->gnorm = malloc(b * (size_t)sae_n_groups(c) * sizeof(float));
    w->colsum = malloc(n * sizeof(float));
    size_t arch = a->scratch_floats ? a->scratch_floats(c, B) : 0;
    if (arch > 0 && !(w->arch_scratch = malloc(arch * sizeof(float)))) {
        sae_work_free(w);
        return -1;
    }
    if ((sae_loss_sparse(c) && !(w->sparse = sae_sparse_create(c, B))) ||
        (a->residual && !(w->aux_scratch = malloc(sae_stage_auxk_bytes(c))))) {
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
    sae_sparse_free(w->sparse);
    free(w->aux_scratch);
    memset(w, 0, sizeof *w);
}

/* ---- one pass ---- */

/* The backward passes in reverse order; reads what the forward left in w. */
static double sae_loss_backward(const sae_arch_def *a, const sae_params *p, const float *x, int B,
                                const sae_pass *pass, sae_work *w, float *grad)
{
    const sae_config *c = &p->cfg;
    sae_view g;
    double residual = 0.0;
    sae_views(c, grad, &g);
    memset(grad, 0, p->n_params * sizeof(float)); /* arch extras start at 0 too */
    sae_stage_decoder_backward(c, w->pool, &p->v, w->z, w->dx_hat, B, w->dz, &g);
    if (c->orth_coef > 0.0f)
        sae_stage_orth(c, p->v.W_dec, c->orth_coef, g.W_dec);
    a->backward(p, pass, B, w, &g, grad);
    if (a->residual)
        residual = a->residual(p, pass, x, B, w, &g);
    sae_stage_encoder_backward(c, w->pool, &p->v, w->xc, w->dz, B, w->colsum, &g);
    return residual;
}

double sae_loss_grad_pass(const sae_params *p, const float *x, int B, const sae_pass *pass, sae_work *w,
                          float *grad, sae_loss_terms *terms)
{
    const sae_config *c = &p->cfg;
    const sae_arch_def *a = sae_arch_of(c);
    sae_loss_terms t;
    double extra = 0.0; /* the batch's sum of terms with their own weights (gated's auxiliary, AuxK) */
    assert(B >= 1 && B <= w->B && x && pass && w->pre && p->buf);
    assert(!grad || grad != p->buf);
    sae_stage_encoder_forward(c, w->pool, &p->v, x, B, w->xc, w->pre);
    t.sparsity = a->forward(p, pass, x, B, w, &extra) / B;
    int sparse = w->sparse && sae_sparse_collect(w->sparse, c, w, B) == 0; /* else too dense: the dense pass */
    if (sparse)
        sae_sparse_decode(w->sparse, p, w->pool, B, w->x_hat);
    else
        sae_stage_decoder_forward(c, w->pool, &p->v, w->z, B, w->x_hat);
    t.mse = sae_stage_mse(x, w->x_hat, B, c->dim, grad ? w->dx_hat : NULL) / B;
    t.orth = c->orth_coef > 0.0f ? sae_stage_orth(c, p->v.W_dec, 0.0f, NULL) : 0.0;
    sae_stage_count_active(c, w->z, w->gnorm, B, &t);
    if (grad && sparse)
        extra += sae_sparse_backward(w->sparse, a, p, x, B, pass, w, grad);
    else if (grad)
        extra += sae_loss_backward(a, p, x, B, pass, w, grad);
    else if (a->residual)
        extra += a->residual(p, pass, x, B, w, NULL);
    int weighed = !a->uses_sparsity_coef || a->uses_sparsity_coef(c);
    double penalty = weighed ? (double)pass->coef * t.sparsity : 0.0;
    t.loss = t.mse + penalty + (double)c->orth_coef * t.orth + extra / B;
    if (terms)
        *terms = t;
    return t.loss;
}

double sae_loss_grad(const sae_params *p, const float *x, int B, float coef, sae_work *w, float *grad,
                     sae_loss_terms *terms)
{
    sae_pass pass = {.coef = coef, .threshold = p->cfg.threshold, .train = 0, .dead = NULL};
    return sae_loss_grad_pass(p, x, B, &pass, w, grad, terms);
}

double sae_loss_grad_train(const sae_params *p, const float *x, int B, float coef, const unsigned char *dead,
                           sae_work *w, float *grad, sae_loss_terms *terms)
{
    sae_pass pass = {.coef = coef, .threshold = p->cfg.threshold, .train = 1, .dead = dead};
    return sae_loss_grad_pass(p, x, B, &pass, w, grad, terms);
}

void sae_train_update(sae_params *p, const sae_work *w, int B)
{
    const sae_arch_def *a = sae_arch_of(&p->cfg);
    assert(B >= 1 && B <= w->B);
    if (a->train_update)
        a->train_update(p, w, B);
}

/* ---- inference ---- */

int sae_encode(const sae_params *p, par_pool *pool, const float *x, int B, float *z, float *x_hat)
{
    const sae_config *c = &p->cfg;
    const sae_arch_def *a = sae_arch_of(c);
    int n = c->n_latents, dim = c->dim, chunk = B < SAE_ENCODE_CHUNK ? B : SAE_ENCODE_CHUNK;
    assert(B >= 0 && (B == 0 || (x && z)));
    if (chunk < 1)
        chunk = 1;
    size_t extra = a->encode_floats ? a->encode_floats(c, chunk) : 0;
    float *xc = malloc((size_t)chunk * dim * sizeof(float));                 /* (chunk, dim) */
    float *gnorm = malloc((size_t)chunk * sae_n_groups(c) * sizeof(float)); /* (chunk, G) */
    float *scratch = extra ? malloc(extra * sizeof(float)) : NULL;          /* (encode_floats) */
    int rc = xc && gnorm && (!extra || scratch) ? 0 : -1;
    for (int b0 = 0; rc == 0 && b0 < B; b0 += chunk) {
        int m = B - b0 < chunk ? B - b0 : chunk;
        float *zc = z + (size_t)b0 * n; /* (m, n) */
        sae_stage_encoder_forward(c, pool, &p->v, x + (size_t)b0 * dim, m, xc, zc);
        a->encode(p, zc, m, gnorm, scratch);
        if (x_hat)
            sae_stage_decoder_forward(c, pool, &p->v, zc, m, x_hat + (size_t)b0 * dim);
    }
    free(xc);
    free(gnorm);
    free(scratch);
    return rc;
}
