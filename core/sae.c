/* sae — configuration, parameter buffer and initialisation of the SAE family.
 *
 * One contiguous float buffer holds every parameter; sae_views() carves it
 * into W_enc (dim, n) | b_enc (n) | W_dec (n, dim) | b_dec (dim) | extras, the
 * same for gradients and Adam moments. The architectures are listed in one
 * table (name, whether it is implemented, how many extra parameters it has);
 * their forward/backward pairs live in sae_grad.c. */
#include "sae.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAE_INIT_STREAM UINT64_C(0x696e6974) /* "init": the decoder's random stream */
#define SAE_MAX_MATRIX (INT64_C(1) << 31)   /* elements of W_enc / W_dec */

static const struct {
    const char *name;
    int available; /* implemented in sae_grad.c */
} sae_archs[] = {
    [SAE_RELU] = {"relu", 1},
    [SAE_GATED] = {"gated", 0},
    [SAE_TOPK] = {"topk", 0},
    [SAE_BATCHTOPK] = {"batchtopk", 0},
    [SAE_JUMPRELU] = {"jumprelu", 0},
};
#define SAE_N_ARCHS ((int)(sizeof sae_archs / sizeof sae_archs[0]))

const char *sae_arch_name(sae_arch a)
{
    return ((int)a >= 0 && (int)a < SAE_N_ARCHS) ? sae_archs[a].name : "unknown";
}

int sae_arch_parse(const char *name, sae_arch *out)
{
    for (int i = 0; i < SAE_N_ARCHS; i++)
        if (strcmp(name, sae_archs[i].name) == 0) {
            *out = (sae_arch)i;
            return 0;
        }
    return -1;
}

static int sae_reject(char *field, size_t fieldlen, char *msg, size_t msglen, const char *name,
                      const char *text)
{
    snprintf(field, fieldlen, "sae.%s", name);
    snprintf(msg, msglen, "%s", text);
    return -1;
}

static int sae_coef_bad(float v) { return !isfinite(v) || v < 0.0f; }

int sae_config_check(const sae_config *c, char *field, size_t fieldlen, char *msg, size_t msglen)
{
    char text[160];
    if ((int)c->arch < 0 || (int)c->arch >= SAE_N_ARCHS)
        return sae_reject(field, fieldlen, msg, msglen, "arch",
                          "unknown arch; use one of relu, gated, topk, batchtopk, jumprelu");
    if (!sae_archs[c->arch].available) {
        snprintf(text, sizeof text, "arch '%s' is not available yet; use 'relu'", sae_archs[c->arch].name);
        return sae_reject(field, fieldlen, msg, msglen, "arch", text);
    }
    if (c->dim < 1)
        return sae_reject(field, fieldlen, msg, msglen, "dim", "dim must be at least 1");
    if (c->n_latents < 1)
        return sae_reject(field, fieldlen, msg, msglen, "n_latents", "n_latents must be at least 1");
    if (c->group_size < 1)
        return sae_reject(field, fieldlen, msg, msglen, "group_size", "group_size must be at least 1");
    if (c->n_latents % c->group_size != 0) {
        int lo = c->n_latents / c->group_size * c->group_size;
        snprintf(text, sizeof text, "n_latents %d is not a multiple of group_size %d; use %d or %d",
                 c->n_latents, c->group_size, lo > 0 ? lo : c->group_size, lo + c->group_size);
        return sae_reject(field, fieldlen, msg, msglen, "n_latents", text);
    }
    if ((int64_t)c->dim * c->n_latents > SAE_MAX_MATRIX)
        return sae_reject(field, fieldlen, msg, msglen, "n_latents",
                          "dim * n_latents exceeds 2^31 weights; use fewer latents");
    if (sae_coef_bad(c->sparsity_coef))
        return sae_reject(field, fieldlen, msg, msglen, "sparsity_coef",
                          "sparsity_coef must be a finite number >= 0 (e.g. 0.01)");
    if (sae_coef_bad(c->orth_coef))
        return sae_reject(field, fieldlen, msg, msglen, "orth_coef", "orth_coef must be a finite number >= 0");
    if (sae_coef_bad(c->threshold))
        return sae_reject(field, fieldlen, msg, msglen, "threshold", "threshold must be a finite number >= 0");
    if (c->k < 0)
        return sae_reject(field, fieldlen, msg, msglen, "k", "k must be at least 1 (or unset)");
    return 0;
}

static size_t sae_n_extra(const sae_config *c)
{
    size_t n = (size_t)c->n_latents;
    switch (c->arch) {
    case SAE_GATED: return 2 * n;                                   /* r_mag, b_mag */
    case SAE_JUMPRELU: return c->group_size > 0 ? n / (size_t)c->group_size : 0; /* log_theta */
    default: return 0;
    }
}

size_t sae_n_params(const sae_config *c)
{
    size_t n = (size_t)c->n_latents, d = (size_t)c->dim;
    return 2 * d * n + n + d + sae_n_extra(c);
}

void sae_views(const sae_config *c, float *buf, sae_view *v)
{
    size_t n = (size_t)c->n_latents, d = (size_t)c->dim;
    v->W_enc = buf;
    v->b_enc = v->W_enc + d * n;
    v->W_dec = v->b_enc + n;
    v->b_dec = v->W_dec + n * d;
}

int sae_params_alloc(sae_params *p, const sae_config *c)
{
    p->cfg = *c;
    p->n_params = sae_n_params(c);
    p->buf = calloc(p->n_params, sizeof(float));
    if (!p->buf)
        return -1;
    sae_views(c, p->buf, &p->v);
    return 0;
}

void sae_params_free(sae_params *p)
{
    free(p->buf);
    p->buf = NULL;
}

/* Tied init. The encoder is W_dec^T scaled by min(1, dim/n): with zero biases
 * about half the latents fire, each with (d_i . x) * scale, so the first
 * reconstruction is about x / 2 instead of n/(2 dim) times x. Unscaled, the
 * first steps of a wide SAE spend themselves shrinking a huge encoder, which
 * scrambles its directions (on 100 circles in 32-D, width 800, no decoder row
 * ever reached a circle's plane; scaled, most do). */
void sae_params_init(sae_params *p, uint64_t seed)
{
    int n = p->cfg.n_latents, dim = p->cfg.dim;
    float scale = n > dim ? (float)dim / (float)n : 1.0f;
    rng_t r;
    rng_seed(&r, seed, SAE_INIT_STREAM);
    memset(p->buf, 0, p->n_params * sizeof(float));
    for (size_t k = 0; k < (size_t)n * dim; k++)
        p->v.W_dec[k] = rng_normal(&r);
    sae_normalize_decoder(p);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < dim; d++)
            p->v.W_enc[(size_t)d * n + i] = scale * p->v.W_dec[(size_t)i * dim + d];
}

void sae_normalize_decoder(sae_params *p)
{
    int dim = p->cfg.dim;
    for (int i = 0; i < p->cfg.n_latents; i++) {
        float *row = p->v.W_dec + (size_t)i * dim; /* (dim) */
        double norm2 = 0.0;
        for (int d = 0; d < dim; d++)
            norm2 += (double)row[d] * row[d];
        if (norm2 > 0.0) {
            float inv = (float)(1.0 / sqrt(norm2));
            for (int d = 0; d < dim; d++)
                row[d] *= inv;
        }
    }
}

size_t sae_work_bytes(const sae_config *c, int B)
{
    size_t b = (size_t)B, n = (size_t)c->n_latents, d = (size_t)c->dim;
    size_t groups = c->group_size > 0 ? n / (size_t)c->group_size : n;
    return (3 * b * d + 3 * b * n + b * groups + n) * sizeof(float);
}

size_t sae_train_bytes(const sae_config *c, int batch_size)
{
    size_t b = (size_t)batch_size, d = (size_t)c->dim, n = (size_t)c->n_latents;
    size_t params = 4 * sae_n_params(c) * sizeof(float); /* params, gradient, Adam m and v */
    size_t batch = b * d * sizeof(float) + b * sizeof(uint64_t);
    size_t dead = n * sizeof(int32_t);
    size_t checkpoint = 3 * sae_n_params(c) * sizeof(float); /* a blob the worker holds while saving */
    return params + sae_work_bytes(c, batch_size) + batch + dead + checkpoint + ((size_t)1 << 20);
}

void sae_project_decoder_grad(const sae_params *p, float *grad)
{
    int dim = p->cfg.dim;
    sae_view g;
    sae_views(&p->cfg, grad, &g);
    for (int i = 0; i < p->cfg.n_latents; i++) {
        const float *d = p->v.W_dec + (size_t)i * dim; /* (dim) */
        float *gd = g.W_dec + (size_t)i * dim;         /* (dim) */
        double dd = 0.0, gdd = 0.0;
        for (int k = 0; k < dim; k++) {
            dd += (double)d[k] * d[k];
            gdd += (double)gd[k] * d[k];
        }
        if (dd > 0.0) {
            float f = (float)(gdd / dd);
            for (int k = 0; k < dim; k++)
                gd[k] -= f * d[k];
        }
    }
}
