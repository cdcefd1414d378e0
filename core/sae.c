/* sae — configuration, parameter buffer and initialisation of the SAE family.
 *
 * One contiguous float buffer holds every parameter; sae_views() carves it
 * into W_enc (dim, n) | b_enc (n) | W_dec (n, dim) | b_dec (dim) | extras, the
 * same for gradients and Adam moments. The defaults and the checks shared by
 * every architecture are here; what an architecture adds (its extras and
 * their initial values, its own rules) comes from its registry row
 * (include/sae_arch.h). The pass itself is core/sae_loss.c. */
#include "sae.h"
#include "sae_arch.h"
#include "sae_engine.h"
#include "sae_groups.h"
#include "rng.h"
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAE_INIT_STREAM UINT64_C(0x696e6974) /* "init": the decoder's random stream */
#define SAE_MAX_MATRIX (INT64_C(1) << 31)   /* elements of W_enc / W_dec */
#define SAE_DEFAULT_BANDWIDTH 0.001f        /* jumprelu's kernel width in the paper; a row may choose another */

/* ---- configuration ---- */

void sae_config_default(sae_config *c)
{
    assert(c);
    memset(c, 0, sizeof *c);
    c->arch = SAE_RELU;
    c->group_size = 2;
    c->sparsity_coef = 0.01f;
    c->orth_coef = 0.0f;
    c->threshold = 0.0f;
    c->k = 0;
    c->aux_k_coef = 0.03125f; /* topk/batchtopk: AuxK weight 1/32 (Gao et al. 2024) */
    c->aux_k = 0;             /* topk/batchtopk: auto (sae_aux_k_groups) */
    c->bandwidth = sae_config_default_bandwidth(c);
}

float sae_config_default_bandwidth(const sae_config *c)
{
    const sae_arch_def *a = sae_arch_get(c->arch);
    return a && a->default_bandwidth ? a->default_bandwidth(c) : SAE_DEFAULT_BANDWIDTH;
}

int sae_aux_k_groups(const sae_config *c)
{
    int G = sae_n_groups(c), a = (int)((int64_t)c->dim / 2 * G / c->n_latents); /* dim/2 latents' worth */
    assert(G >= 1);
    if (c->aux_k > 0)
        return c->aux_k < G ? c->aux_k : G;
    return a < 1 ? 1 : a > G ? G : a;
}

int sae_config_reject(char *field, size_t fieldlen, char *msg, size_t msglen, const char *name, const char *text)
{
    assert(field && msg && name && text);
    snprintf(field, fieldlen, "sae.%s", name);
    snprintf(msg, msglen, "%s", text);
    return -1;
}

static int sae_coef_bad(float v) { return !isfinite(v) || v < 0.0f; }

/* A group table: over n_latents latents, for an arch that takes one (the table checked itself when built). */
static int sae_check_table(const sae_config *c, char *field, size_t fl, char *msg, size_t ml)
{
    char text[200];
    if (c->groups->n != c->n_latents) {
        snprintf(text, sizeof text, "the groups hold %d latents but n_latents is %d; give n_latents %d (or leave it "
                 "out)", c->groups->n, c->n_latents, c->groups->n);
        return sae_config_reject(field, fl, msg, ml, "n_latents", text);
    }
    if (c->group_size != 0)
        return sae_config_reject(field, fl, msg, ml, "group_size", "give groups or group_size, not both");
    if (!sae_arch_of(c)->any_groups) {
        snprintf(text, sizeof text, "arch '%s' takes equal groups only (group_size); groups of any size work with "
                 "arch relu, topk, batchtopk and subspace", sae_arch_name(c->arch));
        return sae_config_reject(field, fl, msg, ml, "groups", text);
    }
    return 0;
}

/* The shape: dim, n_latents, group_size and what they must satisfy together. */
static int sae_check_shape(const sae_config *c, char *field, size_t fl, char *msg, size_t ml)
{
    char text[160];
    if (c->dim < 1)
        return sae_config_reject(field, fl, msg, ml, "dim", "dim must be at least 1");
    if (c->n_latents < 1)
        return sae_config_reject(field, fl, msg, ml, "n_latents", "n_latents must be at least 1");
    if (c->groups)
        return sae_check_table(c, field, fl, msg, ml);
    if (c->group_size < 1)
        return sae_config_reject(field, fl, msg, ml, "group_size", "group_size must be at least 1");
    if (c->n_latents % c->group_size != 0) {
        int64_t lo = (int64_t)c->n_latents / c->group_size * c->group_size, hi = lo + c->group_size;
        if (lo > 0 && hi <= INT32_MAX)
            snprintf(text, sizeof text, "n_latents %d is not a multiple of group_size %d; use %lld or %lld",
                     c->n_latents, c->group_size, (long long)lo, (long long)hi);
        else
            snprintf(text, sizeof text, "n_latents %d is not a multiple of group_size %d; use %lld", c->n_latents,
                     c->group_size, (long long)(lo > 0 ? lo : hi));
        return sae_config_reject(field, fl, msg, ml, "n_latents", text);
    }
    return 0;
}

/* The numbers every arch reads or carries: each finite and >= 0 (k, aux_k: >= 0). */
static int sae_check_values(const sae_config *c, char *field, size_t fl, char *msg, size_t ml)
{
    if (sae_coef_bad(c->sparsity_coef))
        return sae_config_reject(field, fl, msg, ml, "sparsity_coef",
                                 "sparsity_coef must be a finite number >= 0 (e.g. 0.01)");
    if (sae_coef_bad(c->orth_coef))
        return sae_config_reject(field, fl, msg, ml, "orth_coef", "orth_coef must be a finite number >= 0");
    if (sae_coef_bad(c->threshold))
        return sae_config_reject(field, fl, msg, ml, "threshold", "threshold must be a finite number >= 0");
    if (c->k < 0)
        return sae_config_reject(field, fl, msg, ml, "k", "k must be at least 1 (or unset)");
    if (sae_coef_bad(c->bandwidth))
        return sae_config_reject(field, fl, msg, ml, "bandwidth",
                                 "bandwidth must be a finite number > 0 (e.g. 0.001, the default)");
    if (sae_coef_bad(c->aux_k_coef))
        return sae_config_reject(field, fl, msg, ml, "aux_k_coef",
                          "aux_k_coef must be a finite number >= 0 (default 0.03125 = 1/32; 0 turns AuxK off)");
    if (c->aux_k < 0)
        return sae_config_reject(field, fl, msg, ml, "aux_k", "aux_k must be at least 1 (or unset for the default)");
    return 0;
}

int sae_config_check(const sae_config *c, char *field, size_t fieldlen, char *msg, size_t msglen)
{
    char text[200];
    assert(c && field && msg && fieldlen > 0 && msglen > 0);
    const sae_arch_def *a = sae_arch_get(c->arch);
    if (!a) {
        snprintf(text, sizeof text, "unknown arch; use one of %s", sae_arch_names());
        return sae_config_reject(field, fieldlen, msg, msglen, "arch", text);
    }
    if (sae_check_shape(c, field, fieldlen, msg, msglen) || sae_check_values(c, field, fieldlen, msg, msglen))
        return -1;
    if ((int64_t)c->dim * c->n_latents > SAE_MAX_MATRIX)
        return sae_config_reject(field, fieldlen, msg, msglen, "n_latents",
                                 "dim * n_latents exceeds 2^31 weights; use fewer latents");
    return a->check ? a->check(c, field, fieldlen, msg, msglen) : 0;
}

/* ---- the buffer ---- */

/* Floats of one extra tensor. */
static size_t sae_extra_floats(const sae_config *c, sae_extra_len len)
{
    size_t n = (size_t)c->n_latents;
    return len == SAE_EXTRA_ONE ? 1 : len == SAE_EXTRA_PER_GROUP ? (size_t)sae_n_groups(c) : n;
}

size_t sae_n_params(const sae_config *c)
{
    const sae_arch_def *a = sae_arch_of(c);
    size_t n = (size_t)c->n_latents, d = (size_t)c->dim, extra = 0;
    assert(c->group_size >= 1 || c->groups);
    for (int i = 0; i < a->n_extras; i++)
        extra += sae_extra_floats(c, a->extras[i].len);
    return 2 * d * n + n + d + extra;
}

void sae_views(const sae_config *c, float *buf, sae_view *v)
{
    size_t n = (size_t)c->n_latents, d = (size_t)c->dim;
    assert(buf && v);
    v->W_enc = buf;
    v->b_enc = v->W_enc + d * n;
    v->W_dec = v->b_enc + n;
    v->b_dec = v->W_dec + n * d;
}

int sae_params_alloc(sae_params *p, const sae_config *c)
{
    assert(p && c && c->dim >= 1 && c->n_latents >= 1 && (c->group_size >= 1 || c->groups));
    p->cfg = *c;
    p->own_groups = NULL;
    p->n_params = sae_n_params(c);
    p->buf = calloc(p->n_params, sizeof(float));
    if (c->groups && p->buf && !(p->own_groups = sae_groups_copy(c->groups))) {
        free(p->buf);
        p->buf = NULL;
    }
    if (!p->buf)
        return -1;
    p->cfg.groups = p->own_groups;
    sae_views(c, p->buf, &p->v);
    return 0;
}

void sae_params_free(sae_params *p)
{
    free(p->buf);
    p->buf = NULL;
    sae_groups_free(p->own_groups);
    p->own_groups = NULL;
    p->cfg.groups = NULL;
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
    const sae_arch_def *a = sae_arch_of(&p->cfg);
    float scale = n > dim ? (float)dim / (float)n : 1.0f;
    rng_t r;
    assert(p->buf && p->n_params == sae_n_params(&p->cfg));
    rng_seed(&r, seed, SAE_INIT_STREAM);
    memset(p->buf, 0, p->n_params * sizeof(float));
    if (a->init)
        a->init(p);
    for (size_t k = 0; k < (size_t)n * dim; k++)
        p->v.W_dec[k] = rng_normal(&r);
    if (a->constrain_decoder)
        a->constrain_decoder(p, 0, n);
    else
        sae_normalize_decoder(p);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < dim; d++)
            p->v.W_enc[(size_t)d * n + i] = scale * p->v.W_dec[(size_t)i * dim + d];
}

void sae_normalize_decoder_rows(sae_params *p, int i0, int i1)
{
    int dim = p->cfg.dim;
    assert(0 <= i0 && i0 <= i1 && i1 <= p->cfg.n_latents);
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

size_t sae_train_bytes(const sae_config *c, int batch_size)
{
    size_t b = (size_t)batch_size, d = (size_t)c->dim, n = (size_t)c->n_latents;
    size_t params = 4 * sae_n_params(c) * sizeof(float); /* params, gradient, Adam m and v */
    size_t batch = b * d * sizeof(float) + b * sizeof(uint64_t);
    size_t dead = n * sizeof(int32_t);
    size_t checkpoint = 3 * sae_n_params(c) * sizeof(float); /* a blob the worker holds while saving */
    size_t work = sae_engine_bytes(c, batch_size, 1);
    return params + work + batch + dead + n + checkpoint + ((size_t)1 << 20);
}

void sae_project_decoder_grad_rows(const sae_params *p, float *grad, int i0, int i1)
{
    int dim = p->cfg.dim;
    sae_view g;
    assert(grad && grad != p->buf && 0 <= i0 && i0 <= i1 && i1 <= p->cfg.n_latents);
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

static void sae_tensor_put(sae_tensor *out, int cap, int *k, const char *name, float *data, int64_t d0, int64_t d1)
{
    if (*k < cap)
        out[*k] = (sae_tensor){name, data, d1 > 0 ? 2 : 1, {d0, d1 > 0 ? d1 : 0}};
    (*k)++;
}

int sae_tensors(const sae_params *p, sae_tensor *out, int cap)
{
    const sae_config *c = &p->cfg;
    const sae_arch_def *a = sae_arch_of(c);
    int64_t n = c->n_latents, dim = c->dim;
    int k = 0;
    assert(cap >= 0 && (cap == 0 || out));
    sae_tensor_put(out, cap, &k, "W_enc", p->v.W_enc, dim, n);
    sae_tensor_put(out, cap, &k, a->b_enc_name ? a->b_enc_name : "b_enc", p->v.b_enc, n, 0);
    sae_tensor_put(out, cap, &k, "W_dec", p->v.W_dec, n, dim);
    sae_tensor_put(out, cap, &k, "b_dec", p->v.b_dec, dim, 0);
    float *next = p->v.b_dec + dim; /* the extras, back to back */
    for (int i = 0; i < a->n_extras; i++) {
        int64_t len = (int64_t)sae_extra_floats(c, a->extras[i].len);
        sae_tensor_put(out, cap, &k, a->extras[i].name, next, len, 0);
        next += len;
    }
    return k;
}

void sae_fold_input_scale(sae_params *p, float s)
{
    size_t nd = (size_t)p->cfg.n_latents * (size_t)p->cfg.dim;
    assert(s > 0.0f && isfinite(s));
    for (size_t k = 0; k < nd; k++) {
        p->v.W_enc[k] *= s;
        p->v.W_dec[k] /= s;
    }
    for (int d = 0; d < p->cfg.dim; d++)
        p->v.b_dec[d] /= s;
}
