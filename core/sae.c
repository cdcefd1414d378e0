/* sae — configuration, parameter buffer and initialisation of the SAE family.
 *
 * One contiguous float buffer holds every parameter; sae_views() carves it
 * into W_enc (dim, n) | b_enc (n) | W_dec (n, dim) | b_dec (dim) | extras, the
 * same for gradients and Adam moments. The architectures are listed in one
 * table (name, whether it is implemented, how many extra parameters it has);
 * their forward/backward pairs live in sae_grad.c. */
#include "sae.h"
#include "sae_fast.h"
#include "rng.h"
#include "sae_gj.h"
#include "sae_topk.h"
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
    [SAE_GATED] = {"gated", 1},    /* sae_gated.c */
    [SAE_TOPK] = {"topk", 1},           /* sae_topk.c */
    [SAE_BATCHTOPK] = {"batchtopk", 1}, /* sae_topk.c */
    [SAE_JUMPRELU] = {"jumprelu", 1}, /* sae_jumprelu.c */
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

static int sae_check_gj(const sae_config *c, char *field, size_t fieldlen, char *msg, size_t msglen);

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
    if (sae_check_gj(c, field, fieldlen, msg, msglen) != 0)
        return -1;
    if (sae_topk_config_check(c, field, fieldlen, msg, msglen) != 0) /* aux_k_coef, aux_k; topk/batchtopk's k */
        return -1;
    return 0;
}

/* sae.bandwidth (jumprelu's, and relu's with a threshold) and what sae.threshold means for gated. */
static int sae_check_gj(const sae_config *c, char *field, size_t fieldlen, char *msg, size_t msglen)
{
    int needed = c->arch == SAE_JUMPRELU || (c->arch == SAE_RELU && c->threshold > 0.0f);
    if (!isfinite(c->bandwidth) || c->bandwidth < 0.0f || (needed && c->bandwidth <= 0.0f))
        return sae_reject(field, fieldlen, msg, msglen, "bandwidth",
                          c->arch == SAE_RELU ? "bandwidth must be a finite number > 0 with a threshold (e.g. "
                                                "threshold / 2, the default)"
                                              : "bandwidth must be a finite number > 0 (e.g. 0.001, the default)");
    if (c->arch == SAE_GATED && c->threshold > 0.0f)
        return sae_reject(field, fieldlen, msg, msglen, "threshold",
                          "threshold must be 0 for arch gated: its gate decides which groups are active");
    return 0;
}

static size_t sae_n_extra(const sae_config *c)
{
    size_t n = (size_t)c->n_latents;
    switch (c->arch) {
    case SAE_GATED: return 2 * n;                                   /* r_mag, b_mag */
    case SAE_JUMPRELU: return c->group_size > 0 ? n / (size_t)c->group_size : 0; /* log_theta */
    case SAE_BATCHTOPK: return 1;                                   /* threshold */
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
    sae_gj_init_extras(p);
    for (size_t k = 0; k < (size_t)n * dim; k++)
        p->v.W_dec[k] = rng_normal(&r);
    sae_normalize_decoder(p);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < dim; d++)
            p->v.W_enc[(size_t)d * n + i] = scale * p->v.W_dec[(size_t)i * dim + d];
}

void sae_normalize_decoder_rows(sae_params *p, int i0, int i1)
{
    int dim = p->cfg.dim;
    for (int i = i0; i < i1; i++) {
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

void sae_normalize_decoder(sae_params *p) { sae_normalize_decoder_rows(p, 0, p->cfg.n_latents); }

size_t sae_work_bytes(const sae_config *c, int B)
{
    size_t b = (size_t)B, n = (size_t)c->n_latents, d = (size_t)c->dim;
    size_t groups = c->group_size > 0 ? n / (size_t)c->group_size : n;
    size_t arch = c->group_size > 0 ? sae_gj_scratch_floats(c, B) : 0;
    return (3 * b * d + 3 * b * n + b * groups + n + arch) * sizeof(float);
}

size_t sae_train_bytes(const sae_config *c, int batch_size)
{
    size_t b = (size_t)batch_size, d = (size_t)c->dim, n = (size_t)c->n_latents;
    size_t params = 4 * sae_n_params(c) * sizeof(float); /* params, gradient, Adam m and v */
    size_t batch = b * d * sizeof(float) + b * sizeof(uint64_t);
    size_t dead = n * sizeof(int32_t);
    size_t checkpoint = 3 * sae_n_params(c) * sizeof(float); /* a blob the worker holds while saving */
    size_t work = sae_fast_supports(c) ? sae_fast_bytes(c, batch_size, 1) : sae_work_bytes(c, batch_size);
    return params + work + batch + dead + n + checkpoint + ((size_t)1 << 20);
}

void sae_project_decoder_grad_rows(const sae_params *p, float *grad, int i0, int i1)
{
    int dim = p->cfg.dim;
    sae_view g;
    sae_views(&p->cfg, grad, &g);
    for (int i = i0; i < i1; i++) {
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

void sae_project_decoder_grad(const sae_params *p, float *grad)
{
    sae_project_decoder_grad_rows(p, grad, 0, p->cfg.n_latents);
}

/* ---- named tensors and the input scale ---- */

/* Architecture extras after b_dec, in layout order (see sae_n_extra):
 * per_group 0 = n floats, 1 = n/s floats, 2 = one float. */
static const struct {
    sae_arch arch;
    const char *name;
    int per_group;
} sae_extras[] = {
    {SAE_GATED, "r_mag", 0},
    {SAE_GATED, "b_mag", 0},
    {SAE_JUMPRELU, "log_theta", 1},
    {SAE_BATCHTOPK, "threshold", 2},
};

static void sae_tensor_put(sae_tensor *out, int cap, int *k, const char *name, float *data, int64_t d0, int64_t d1)
{
    if (*k < cap)
        out[*k] = (sae_tensor){name, data, d1 > 0 ? 2 : 1, {d0, d1 > 0 ? d1 : 0}};
    (*k)++;
}

int sae_tensors(const sae_params *p, sae_tensor *out, int cap)
{
    const sae_config *c = &p->cfg;
    int64_t n = c->n_latents, dim = c->dim;
    int k = 0;
    sae_tensor_put(out, cap, &k, "W_enc", p->v.W_enc, dim, n);
    /* gated: b_enc is the gate's bias, which SAELens calls b_gate */
    sae_tensor_put(out, cap, &k, c->arch == SAE_GATED ? "b_gate" : "b_enc", p->v.b_enc, n, 0);
    sae_tensor_put(out, cap, &k, "W_dec", p->v.W_dec, n, dim);
    sae_tensor_put(out, cap, &k, "b_dec", p->v.b_dec, dim, 0);
    float *next = p->v.b_dec + dim; /* the extras, back to back */
    for (size_t i = 0; i < sizeof sae_extras / sizeof sae_extras[0]; i++) {
        if (sae_extras[i].arch != c->arch)
            continue;
        int64_t len = sae_extras[i].per_group == 2 ? 1 : sae_extras[i].per_group ? n / c->group_size : n;
        sae_tensor_put(out, cap, &k, sae_extras[i].name, next, len, 0);
        next += len;
    }
    return k;
}

void sae_fold_input_scale(sae_params *p, float s)
{
    size_t nd = (size_t)p->cfg.n_latents * (size_t)p->cfg.dim;
    for (size_t k = 0; k < nd; k++) {
        p->v.W_enc[k] *= s;
        p->v.W_dec[k] /= s;
    }
    for (int d = 0; d < p->cfg.dim; d++)
        p->v.b_dec[d] /= s;
}
