/* sae_sparse — the decoder and both gradients over the kept groups alone
 * (design: include/sae_sparse.h). Threads split rows (collect's output is
 * row-major, so a thread's rows are one run of entries) or latents (after
 * the counting sort), by index alone: for a given pool size the result is
 * deterministic. */
#include "sae_sparse.h"
#include "sae_arch.h"
#include "sae_stage.h"
#include <assert.h>
#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sae_sparse {
    sae_config c;
    int max_rows;
    size_t cap, aux_cap;   /* main entries at most; the residual's at most */
    size_t n_ent, n_aux;   /* entries of the current pass: main ones, then the residual's after them */
    int recording;         /* 1 while the residual runs inside a sparse backward */
    int32_t *row, *lat;    /* (cap + aux_cap) each entry's batch row and latent */
    float *z;              /* (cap) a main entry's code */
    float *d;              /* (cap + aux_cap) its d loss/d pre */
    size_t *row_ptr;       /* (max_rows + 1) row b's main entries: [row_ptr[b], row_ptr[b + 1]) */
    size_t *lat_ptr;       /* (n + 1) after a sort: latent i's entries are order[lat_ptr[i] .. lat_ptr[i + 1]) */
    uint32_t *order;       /* (cap + aux_cap) entry indices sorted by latent */
    float *gencT;          /* (n, dim) latent-major encoder gradient of the latents with entries */
};

/* Everything a parallel part reads. */
typedef struct {
    sae_sparse *s;
    const sae_arch_def *a;
    const sae_params *p;
    const sae_pass *pass;
    sae_work *w;
    int B;
    size_t n_sorted;       /* entries the current sort covers */
    sae_view *g;
} sae_sparse_job;

static size_t sae_sparse_aux_cap(const sae_config *c, int max_rows)
{
    return (size_t)max_rows * (size_t)sae_aux_k_groups(c) * (size_t)c->group_size;
}

size_t sae_sparse_bytes(const sae_config *c, int max_rows)
{
    size_t n = (size_t)c->n_latents, B = (size_t)max_rows;
    size_t cap = (size_t)(SAE_SPARSE_FRAC * (double)B * (double)n) + 1, all = cap + sae_sparse_aux_cap(c, max_rows);
    return all * (2 * sizeof(int32_t) + sizeof(float) + sizeof(uint32_t)) + cap * sizeof(float) +
           (B + 1 + n + 1) * sizeof(size_t) + n * (size_t)c->dim * sizeof(float) + sizeof(sae_sparse);
}

sae_sparse *sae_sparse_create(const sae_config *c, int max_rows)
{
    assert(c && max_rows >= 1);
    sae_sparse *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    size_t n = (size_t)c->n_latents;
    s->c = *c;
    s->max_rows = max_rows;
    s->cap = (size_t)(SAE_SPARSE_FRAC * (double)max_rows * (double)n) + 1;
    s->aux_cap = sae_sparse_aux_cap(c, max_rows);
    size_t all = s->cap + s->aux_cap;
    s->row = malloc(all * sizeof(int32_t));
    s->lat = malloc(all * sizeof(int32_t));
    s->z = malloc(s->cap * sizeof(float));
    s->d = malloc(all * sizeof(float));
    s->row_ptr = malloc(((size_t)max_rows + 1) * sizeof(size_t));
    s->lat_ptr = malloc((n + 1) * sizeof(size_t));
    s->order = malloc(all * sizeof(uint32_t));
    s->gencT = malloc(n * (size_t)c->dim * sizeof(float));
    if (!s->row || !s->lat || !s->z || !s->d || !s->row_ptr || !s->lat_ptr || !s->order || !s->gencT ||
        all > UINT32_MAX) {
        sae_sparse_free(s);
        return NULL;
    }
    return s;
}

void sae_sparse_free(sae_sparse *s)
{
    if (!s)
        return;
    free(s->row), free(s->lat), free(s->z), free(s->d), free(s->row_ptr), free(s->lat_ptr), free(s->order);
    free(s->gencT);
    free(s);
}

/* ---- collect and decode ---- */

int sae_sparse_collect(sae_sparse *s, const sae_config *c, const sae_work *w, int B)
{
    int n = c->n_latents, gs = c->group_size, G = n / gs;
    size_t e = 0;
    assert(s && w && B >= 1 && B <= s->max_rows && c->n_latents == s->c.n_latents && gs == s->c.group_size);
    s->n_ent = s->n_aux = 0;
    s->recording = 0;
    for (int b = 0; b < B; b++) {
        s->row_ptr[b] = e;
        const float *gn = w->gnorm + (size_t)b * G, *zb = w->z + (size_t)b * n; /* (G), (n) */
        for (int g = 0; g < G; g++) {
            if (!(gn[g] > 0.0f))
                continue;
            if (e + (size_t)gs > s->cap)
                return -1;
            for (int k = g * gs; k < (g + 1) * gs; k++, e++)
                s->row[e] = b, s->lat[e] = k, s->z[e] = zb[k];
        }
    }
    s->row_ptr[B] = s->n_ent = e;
    return 0;
}

static void sae_sparse_decode_part(void *ctx, int t, int T)
{
    const sae_sparse_job *j = ctx;
    const sae_sparse *s = j->s;
    const float *W_dec = j->p->v.W_dec, *b_dec = j->p->v.b_dec;
    float *x_hat = j->w->x_hat;
    size_t lo, hi, dim = (size_t)s->c.dim;
    par_range((size_t)j->B, 1, t, T, &lo, &hi);
    for (size_t b = lo; b < hi; b++) {
        float *xh = x_hat + b * dim; /* (dim) */
        memcpy(xh, b_dec, dim * sizeof(float));
        for (size_t e = s->row_ptr[b]; e < s->row_ptr[b + 1]; e++) {
            const float *d_i = W_dec + (size_t)s->lat[e] * dim;
            float z = s->z[e];
            for (size_t k = 0; k < dim; k++)
                xh[k] += z * d_i[k];
        }
    }
}

void sae_sparse_decode(const sae_sparse *s, const sae_params *p, par_pool *pool, int B, float *x_hat)
{
    assert(s && p && x_hat && B >= 1 && B <= s->max_rows);
    sae_work w = {.x_hat = x_hat};
    sae_sparse_job j = {.s = (sae_sparse *)s, .p = p, .w = &w, .B = B};
    par_run(pool, sae_sparse_decode_part, &j);
}

/* ---- the backward ---- */

static float sae_sparse_dot(const float *a, const float *b, int dim)
{
    float acc[8] = {0};
    int d = 0;
    for (; d + 8 <= dim; d += 8)
        for (int k = 0; k < 8; k++)
            acc[k] += a[d + k] * b[d + k];
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; d < dim; d++)
        sum += a[d] * b[d];
    return sum;
}

/* dpre of the thread's rows' kept groups: dz_e = dx_hat[b] . d_i, then the row's group_backward. */
static void sae_sparse_dpre_part(void *ctx, int t, int T)
{
    const sae_sparse_job *j = ctx;
    sae_sparse *s = j->s;
    const sae_config *c = &s->c;
    int gs = c->group_size, dim = c->dim, n = c->n_latents;
    float scale = j->pass->coef / (float)j->B;
    size_t lo, hi;
    par_range((size_t)j->B, 1, t, T, &lo, &hi);
    for (size_t e = s->row_ptr[lo]; e < s->row_ptr[hi]; e += (size_t)gs) { /* one kept group */
        size_t b = (size_t)s->row[e];
        const float *dx = j->w->dx_hat + b * dim; /* (dim) */
        for (int k = 0; k < gs; k++)
            s->d[e + k] = sae_sparse_dot(dx, j->p->v.W_dec + (size_t)s->lat[e + k] * dim, dim);
        size_t off = b * n + (size_t)s->lat[e];
        j->a->group_backward(c, j->pass, scale, j->w->pre + off, s->z + e, s->d + e);
    }
}

/* Counting sort of entries [0, m) by latent into order / lat_ptr. */
static void sae_sparse_sort(sae_sparse *s, size_t m)
{
    size_t n = (size_t)s->c.n_latents, *ptr = s->lat_ptr;
    memset(ptr, 0, (n + 1) * sizeof(size_t));
    for (size_t e = 0; e < m; e++)
        ptr[s->lat[e] + 1]++;
    for (size_t i = 0; i < n; i++)
        ptr[i + 1] += ptr[i];
    for (size_t e = 0; e < m; e++)
        s->order[ptr[s->lat[e]]++] = (uint32_t)e;
    for (size_t i = n; i > 0; i--) /* each ptr[i] walked to the end of latent i's run: shift back */
        ptr[i] = ptr[i - 1];
    ptr[0] = 0;
}

/* g.W_dec[i] = sum over latent i's main entries of z dx_hat[b], for the thread's latents. */
static void sae_sparse_dec_part(void *ctx, int t, int T)
{
    const sae_sparse_job *j = ctx;
    const sae_sparse *s = j->s;
    size_t lo, hi, dim = (size_t)s->c.dim;
    par_range((size_t)s->c.n_latents, 1, t, T, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        float *gd = j->g->W_dec + i * dim; /* (dim), zeroed */
        for (size_t q = s->lat_ptr[i]; q < s->lat_ptr[i + 1]; q++) {
            uint32_t e = s->order[q];
            const float *dx = j->w->dx_hat + (size_t)s->row[e] * dim;
            float z = s->z[e];
            for (size_t k = 0; k < dim; k++)
                gd[k] += z * dx[k];
        }
    }
}

/* gencT[i] = sum dpre xc[b], colsum[i] = sum dpre over all of latent i's entries; then that row of
 * gencT into g.W_enc's column i (latents without entries keep the zeroed gradient). */
static void sae_sparse_enc_part(void *ctx, int t, int T)
{
    const sae_sparse_job *j = ctx;
    const sae_sparse *s = j->s;
    size_t lo, hi, dim = (size_t)s->c.dim, n = (size_t)s->c.n_latents;
    par_range(n, 1, t, T, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        if (s->lat_ptr[i + 1] == s->lat_ptr[i])
            continue;
        float *acc = s->gencT + i * dim, cs = 0.0f; /* (dim) */
        memset(acc, 0, dim * sizeof(float));
        for (size_t q = s->lat_ptr[i]; q < s->lat_ptr[i + 1]; q++) {
            uint32_t e = s->order[q];
            const float *xc = j->w->xc + (size_t)s->row[e] * dim;
            float dp = s->d[e];
            for (size_t k = 0; k < dim; k++)
                acc[k] += dp * xc[k];
            cs += dp;
        }
        for (size_t k = 0; k < dim; k++)
            j->g->W_enc[k * n + i] = acc[k];
        j->g->b_enc[i] = cs;
        j->w->colsum[i] = cs;
    }
}

int sae_sparse_record(sae_sparse *s, int b, int i, float dpre)
{
    if (!s || !s->recording)
        return 0;
    assert(s->n_aux < s->aux_cap && b >= 0 && b < s->max_rows && i >= 0 && i < s->c.n_latents);
    size_t e = s->n_ent + s->n_aux++;
    s->row[e] = b, s->lat[e] = i, s->d[e] = dpre;
    return 1;
}

double sae_sparse_backward(sae_sparse *s, const sae_arch_def *a, const sae_params *p, const float *x, int B,
                           const sae_pass *pass, sae_work *w, float *grad)
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents, dim = c->dim;
    sae_view g;
    assert(s && a && a->group_backward && B >= 1 && B <= s->max_rows && grad && grad != p->buf);
    sae_views(c, grad, &g);
    memset(grad, 0, p->n_params * sizeof(float));
    sae_sparse_job j = {.s = s, .a = a, .p = p, .pass = pass, .w = w, .B = B, .g = &g};
    par_run(w->pool, sae_sparse_dpre_part, &j);
    sae_sparse_sort(s, s->n_ent);
    par_run(w->pool, sae_sparse_dec_part, &j);
    for (int b = 0; b < B; b++) /* g.b_dec = sum of dx_hat, before the residual reuses dx_hat */
        for (int k = 0; k < dim; k++)
            g.b_dec[k] += w->dx_hat[(size_t)b * dim + k];
    if (c->orth_coef > 0.0f)
        sae_stage_orth(c, p->v.W_dec, c->orth_coef, g.W_dec);
    double residual = 0.0;
    s->n_aux = 0;
    if (a->residual) {
        s->recording = 1;
        residual = a->residual(p, pass, x, B, w, &g);
        s->recording = 0;
    }
    sae_sparse_sort(s, s->n_ent + s->n_aux);
    memset(w->colsum, 0, (size_t)n * sizeof(float));
    par_run(w->pool, sae_sparse_enc_part, &j);
    /* d/d b_dec of sum_b dpre_b . ((x_b - b_dec) W_enc) = -W_enc colsum */
    cblas_sgemv(CblasRowMajor, CblasNoTrans, dim, n, -1.0f, p->v.W_enc, n, w->colsum, 1, 1.0f, g.b_dec, 1);
    return residual;
}
