/* sae_stage — the shared stages of every architecture's pass (design:
 * core/sae_stage.h). Each forward stage has its backward beside it; the big
 * products are row-major single-precision GEMMs on the pass's pool
 * (include/par_gemm.h). */
#include "sae_stage.h"
#include "par_gemm.h"
#include "sae_groups.h"
#include "sae_sparse.h"
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* out (B, cols) = each row set to v (cols). */
static void sae_stage_broadcast_rows(float *out, const float *v, int B, int cols)
{
    for (int b = 0; b < B; b++)
        memcpy(out + (size_t)b * cols, v, (size_t)cols * sizeof(float));
}

/* out (cols) = sum over rows of m (B, cols). */
static void sae_stage_colsum(const float *m, int B, int cols, float *out)
{
    memset(out, 0, (size_t)cols * sizeof(float));
    for (int b = 0; b < B; b++) {
        const float *row = m + (size_t)b * cols;
        for (int j = 0; j < cols; j++)
            out[j] += row[j];
    }
}

/* ---- encoder ---- */

void sae_stage_encoder_forward(const sae_config *c, par_pool *pool, const sae_view *v, const float *x, int B,
                               float *xc, float *pre)
{
    int n = c->n_latents, dim = c->dim;
    assert(B >= 1 && x && xc && pre && v->W_enc && xc != pre);
    for (int b = 0; b < B; b++)
        for (int d = 0; d < dim; d++)
            xc[(size_t)b * dim + d] = x[(size_t)b * dim + d] - v->b_dec[d];
    sae_stage_broadcast_rows(pre, v->b_enc, B, n);
    par_sgemm(pool, 0, 0, B, n, dim, 1.0f, xc, dim, v->W_enc, n, 1.0f, pre, n);
}

/* dpre (B, n) -> g.W_enc (set), g.b_enc (added to: an arch may put its own term there first),
 * g.b_dec (decremented, as xc = x - b_dec). */
void sae_stage_encoder_backward(const sae_config *c, par_pool *pool, const sae_view *v, const float *xc,
                                const float *dpre, int B, float *colsum, sae_view *g)
{
    int n = c->n_latents, dim = c->dim;
    assert(B >= 1 && xc && dpre && colsum && g && g->W_enc != v->W_enc);
    par_sgemm(pool, 1, 0, dim, n, B, 1.0f, xc, dim, dpre, n, 0.0f, g->W_enc, n);
    sae_stage_colsum(dpre, B, n, colsum);
    for (int j = 0; j < n; j++)
        g->b_enc[j] += colsum[j];
    /* d/d b_dec of sum_b dpre_b . ((x_b - b_dec) W_enc) = -W_enc colsum */
    cblas_sgemv(CblasRowMajor, CblasNoTrans, dim, n, -1.0f, v->W_enc, n, colsum, 1, 1.0f, g->b_dec, 1);
}

/* ---- decoder ---- */

void sae_stage_decoder_forward(const sae_config *c, par_pool *pool, const sae_view *v, const float *z, int B,
                               float *x_hat)
{
    int n = c->n_latents, dim = c->dim;
    assert(B >= 1 && z && x_hat);
    sae_stage_broadcast_rows(x_hat, v->b_dec, B, dim);
    par_sgemm(pool, 0, 0, B, dim, n, 1.0f, z, n, v->W_dec, dim, 1.0f, x_hat, dim);
}

void sae_stage_decoder_backward(const sae_config *c, par_pool *pool, const sae_view *v, const float *z,
                                const float *dx_hat, int B, float *dz, sae_view *g)
{
    int n = c->n_latents, dim = c->dim;
    assert(B >= 1 && z && dx_hat && dz && dz != z && g);
    par_sgemm(pool, 1, 0, n, dim, B, 1.0f, z, n, dx_hat, dim, 0.0f, g->W_dec, dim);
    sae_stage_colsum(dx_hat, B, dim, g->b_dec);
    par_sgemm(pool, 0, 1, B, n, dim, 1.0f, dx_hat, dim, v->W_dec, dim, 0.0f, dz, n);
}

/* ---- losses ---- */

double sae_stage_mse(const float *x, const float *x_hat, int B, int dim, float *dx_hat)
{
    assert(B >= 1 && dim >= 1 && x && x_hat);
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

static float sae_stage_dot(const float *a, const float *b, int dim)
{
    float sum = 0.0f;
    for (int d = 0; d < dim; d++)
        sum += a[d] * b[d];
    return sum;
}

/* The pair (i, j) of decoder rows' term: 2 ReLU(d_i . d_j), and its gradient at coef into gW_dec. */
static double sae_stage_orth_pair(const float *W_dec, int dim, int i, int j, float coef, float *gW_dec)
{
    const float *di = W_dec + (size_t)i * dim, *dj = W_dec + (size_t)j * dim; /* (dim) each */
    float dot = sae_stage_dot(di, dj, dim);
    if (!(dot > 0.0f))
        return 0.0;
    if (gW_dec)
        for (int d = 0; d < dim; d++) {
            gW_dec[(size_t)i * dim + d] += 2.0f * coef * dj[d];
            gW_dec[(size_t)j * dim + d] += 2.0f * coef * di[d];
        }
    return 2.0 * dot; /* (i, j) and (j, i) */
}

double sae_stage_orth(const sae_config *c, const float *W_dec, float coef, float *gW_dec)
{
    assert(W_dec && gW_dec != W_dec);
    double sum = 0.0;
    for (int g = 0; g < sae_n_groups(c); g++) {
        int len = sae_group_len(c, g);
        for (int a = 0; a < len; a++)
            for (int b = a + 1; b < len; b++)
                sum += sae_stage_orth_pair(W_dec, c->dim, sae_group_member(c, g, a), sae_group_member(c, g, b), coef,
                                           gW_dec);
    }
    return sum;
}

double sae_stage_sum_norms(const sae_config *c, const float *gnorm, int B)
{
    double sum = 0.0;
    for (size_t bg = 0; bg < (size_t)B * sae_n_groups(c); bg++)
        sum += gnorm[bg];
    return sum;
}

/* ---- groups ---- */

float sae_stage_relu_norm(const float *pre, int s)
{
    assert(s >= 1);
    if (s == 1)
        return pre[0] > 0.0f ? pre[0] : 0.0f;
    float norm2 = 0.0f;
    for (int k = 0; k < s; k++)
        norm2 += pre[k] > 0.0f ? pre[k] * pre[k] : 0.0f;
    return sqrtf(norm2);
}

float sae_stage_norm(const float *v, int s)
{
    float norm2 = 0.0f;
    assert(s >= 1);
    if (s == 1)
        return fabsf(v[0]);
    for (int k = 0; k < s; k++)
        norm2 += v[k] * v[k];
    return sqrtf(norm2);
}

float sae_stage_relu_group(const float *pre, int s, float *z)
{
    float norm2 = 0.0f;
    assert(s >= 1);
    for (int k = 0; k < s; k++) {
        z[k] = pre[k] > 0.0f ? pre[k] : 0.0f;
        norm2 += z[k] * z[k];
    }
    return s == 1 ? z[0] : sqrtf(norm2);
}

void sae_stage_count_active(const sae_config *c, const float *z, const float *gnorm, int B, sae_loss_terms *t)
{
    size_t active = 0, groups = 0;
    assert(B >= 1 && t);
    for (size_t k = 0; k < (size_t)B * c->n_latents; k++)
        active += z[k] != 0.0f;
    for (size_t bg = 0; bg < (size_t)B * sae_n_groups(c); bg++)
        groups += gnorm[bg] > 0.0f;
    t->l0 = (double)active / B;
    t->l0_groups = (double)groups / B;
}

/* ---- the threshold's straight-through kernel ---- */

int sae_stage_in_window(float tau, float eps, float rho)
{
    return tau > 0.0f && rho > 0.0f && fabsf(rho - tau) < 0.5f * eps;
}

float sae_stage_jump(float tau, float eps, float rho, float dot, float scale)
{
    return sae_stage_in_window(tau, eps, rho) ? (dot + scale * rho) / (eps * rho) : 0.0f;
}

/* ---- selection ---- */

static void sae_stage_swap(float *a, size_t i, size_t j)
{
    float t = a[i];
    a[i] = a[j];
    a[j] = t;
}

static float sae_stage_median3(float a, float b, float c)
{
    if (a > b) {
        float t = a;
        a = b;
        b = t;
    }
    return c <= a ? a : c >= b ? b : c;
}

/* Three-way partitions around an element, so every round shrinks the range and it ends even on
 * NaNs (which then land among the "equal" ones). */
float sae_stage_kth_largest(float *a, size_t m, size_t kk)
{
    assert(a && kk >= 1 && kk <= m);
    size_t lo = 0, hi = m; /* the answer is in a[lo, hi), the kk-th largest there */
    for (;;) {
        if (hi - lo == 1)
            return a[lo];
        float piv = sae_stage_median3(a[lo], a[lo + (hi - lo) / 2], a[hi - 1]);
        size_t gt = lo, i = lo, lt = hi; /* [lo, gt) > piv, [gt, i) == piv, [lt, hi) < piv */
        while (i < lt) {
            if (a[i] > piv)
                sae_stage_swap(a, i++, gt++);
            else if (a[i] < piv)
                sae_stage_swap(a, i, --lt);
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

void sae_stage_drop(const sae_config *c, float *nrm, float *z, size_t q)
{
    nrm[q] = 0.0f;
    if (!c->groups) {
        memset(z + q * c->group_size, 0, (size_t)c->group_size * sizeof(float));
        return;
    }
    size_t G = (size_t)c->groups->n_groups;
    float *row = z + q / G * (size_t)c->n_latents; /* (n) */
    int g = (int)(q % G);
    for (int k = 0; k < sae_group_len(c, g); k++)
        row[sae_group_member(c, g, k)] = 0.0f;
}

#define SAE_STAGE_SMALL_K 32 /* up to this many kept, one pass with an insertion list beats quickselect */

/* The kk (1 .. SAE_STAGE_SMALL_K) largest of v (m) in one pass, ties to the lower index: their indices
 * into top (kk), largest first. Returns how many there are (min(kk, m)). */
static size_t sae_stage_top_small(const float *v, size_t m, size_t kk, size_t *top)
{
    size_t cnt = 0;
    for (size_t g = 0; g < m; g++) {
        float x = v[g];
        if (cnt == kk && !(x > v[top[kk - 1]]))
            continue; /* most candidates stop here */
        size_t p = cnt < kk ? cnt++ : kk - 1;
        while (p > 0 && x > v[top[p - 1]]) {
            top[p] = top[p - 1];
            p--;
        }
        top[p] = g;
    }
    return cnt;
}

void sae_stage_keep_top(const sae_config *c, float *nrm, float *z, size_t m, size_t kk, float *scratch)
{
    assert(c && nrm && z && scratch && kk >= 1);
    if (kk >= m)
        return;
    if (kk <= SAE_STAGE_SMALL_K) {
        size_t top[SAE_STAGE_SMALL_K];
        size_t cnt = sae_stage_top_small(nrm, m, kk, top);
        memset(scratch, 0, m * sizeof(float));
        for (size_t q = 0; q < cnt; q++)
            scratch[top[q]] = 1.0f;
        for (size_t g = 0; g < m; g++)
            if (scratch[g] == 0.0f)
                sae_stage_drop(c, nrm, z, g);
        return;
    }
    memcpy(scratch, nrm, m * sizeof(float));
    float v = sae_stage_kth_largest(scratch, m, kk);
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
            sae_stage_drop(c, nrm, z, g);
    }
}

/* ---- AuxK ---- */

/* a (m, small) sorted ascending, by insertion. */
static void sae_stage_sort_i32(int32_t *a, int m)
{
    for (int i = 1; i < m; i++) {
        int32_t v = a[i];
        int j = i;
        for (; j > 0 && a[j - 1] > v; j--)
            a[j] = a[j - 1];
        a[j] = v;
    }
}

static int sae_stage_group_dead(const sae_config *c, const unsigned char *dead, int g)
{
    for (int k = 0; k < sae_group_len(c, g); k++)
        if (!dead[sae_group_member(c, g, k)])
            return 0;
    return 1;
}

int sae_stage_any_dead_group(const sae_config *c, const unsigned char *dead)
{
    assert(dead);
    for (int g = 0; g < sae_n_groups(c); g++)
        if (sae_stage_group_dead(c, dead, g))
            return 1;
    return 0;
}

/* Group g's code norm for AuxK in a row's pre (n): ||ReLU(pre_g)||, or with signed codes ||pre_g||. */
static float sae_stage_aux_norm(const sae_config *c, const float *pre_b, int g, int signed_codes)
{
    float tmp[SAE_GROUPS_MAX_SIZE];
    int s = sae_group_len(c, g);
    const float *pre_g = pre_b + (size_t)g * s; /* (s) */
    if (c->groups) {
        sae_groups_gather(c->groups, g, pre_b, tmp);
        pre_g = tmp;
    }
    return signed_codes ? sae_stage_norm(pre_g, s) : sae_stage_relu_norm(pre_g, s);
}

/* Latent i's code in AuxK's reconstruction: its pre-activation if it counts (pre > 0, or any
 * with signed codes), else 0. */
static float sae_stage_aux_code(float pre, int signed_codes)
{
    return signed_codes || pre > 0.0f ? pre : 0.0f;
}

/* What one AuxK pass shares across its rows: the dead groups (listed once), their code norms in the
 * current row, a scratch copy for the selection, and the row's picks. */
typedef struct {
    int D, ka;      /* dead groups; groups picked per row (at most ka) */
    int32_t *dg;    /* (G) the dead groups, ascending */
    float *nv;      /* (G) the current row's code norm of each dead group */
    float *tmp;     /* (G) scratch of the selection */
    int32_t *pick;  /* (ka) the row's picked groups, ascending */
    int n_pick;
} sae_stage_aux;

size_t sae_stage_auxk_bytes(const sae_config *c)
{
    size_t G = (size_t)sae_n_groups(c);
    return (3 * G + (size_t)sae_aux_k_groups(c)) * 4;
}

/* Carves w's AuxK scratch (sae_stage_auxk_bytes) into a's lists and lists the dead groups. */
static void sae_stage_aux_open(const sae_config *c, const unsigned char *dead, void *scratch, sae_stage_aux *a)
{
    int G = sae_n_groups(c);
    unsigned char *m = scratch;
    a->ka = sae_aux_k_groups(c);
    a->dg = (int32_t *)m;
    a->nv = (float *)(m + (size_t)G * 4);
    a->tmp = (float *)(m + (size_t)G * 8);
    a->pick = (int32_t *)(m + (size_t)G * 12);
    a->D = 0;
    for (int g = 0; g < G; g++)
        if (sae_stage_group_dead(c, dead, g))
            a->dg[a->D++] = g;
}

/* The row's AuxK groups into a->pick: the ka dead groups of largest code norm (ties: lower index
 * first), or every dead group if there are fewer. */
static void sae_stage_aux_select(const sae_config *c, const float *pre_b, int sg, sae_stage_aux *a)
{
    int above = 0;
    for (int q = 0; q < a->D; q++)
        a->nv[q] = sae_stage_aux_norm(c, pre_b, a->dg[q], sg);
    if (a->ka <= SAE_STAGE_SMALL_K) { /* one pass; the picks back in ascending group order */
        size_t top[SAE_STAGE_SMALL_K];
        a->n_pick = (int)sae_stage_top_small(a->nv, (size_t)a->D, (size_t)a->ka, top);
        for (int q = 0; q < a->n_pick; q++)
            a->pick[q] = a->dg[top[q]];
        sae_stage_sort_i32(a->pick, a->n_pick);
        return;
    }
    float v = -INFINITY;
    if (a->D > a->ka) {
        memcpy(a->tmp, a->nv, (size_t)a->D * sizeof(float));
        v = sae_stage_kth_largest(a->tmp, (size_t)a->D, (size_t)a->ka);
    }
    for (int q = 0; q < a->D; q++)
        above += a->nv[q] > v;
    int ties = above < a->ka ? a->ka - above : 0;
    a->n_pick = 0;
    for (int q = 0; q < a->D; q++) {
        int take = a->nv[q] > v;
        if (!take && a->nv[q] == v && ties > 0) {
            take = 1;
            ties--;
        }
        if (take)
            a->pick[a->n_pick++] = a->dg[q];
    }
}

/* One row's AuxK: returns ||e - e_hat||^2 for e = x_b - x_hat_b, e_hat = sum over the picked groups'
 * latents of their code (sae_stage_aux_code) times d_i; r (dim) is left holding e_hat - e. */
static double sae_stage_aux_row(const sae_params *p, const float *x_b, const float *xh_b, const float *pre_b,
                                const sae_stage_aux *a, int sg, float *r)
{
    const sae_config *c = &p->cfg;
    int dim = c->dim;
    memset(r, 0, (size_t)dim * sizeof(float));
    for (int q = 0; q < a->n_pick; q++)
        for (int k = 0; k < sae_group_len(c, a->pick[q]); k++) {
            int i = sae_group_member(c, a->pick[q], k);
            float code = sae_stage_aux_code(pre_b[i], sg);
            if (code == 0.0f)
                continue;
            const float *d = p->v.W_dec + (size_t)i * dim; /* (dim) */
            for (int j = 0; j < dim; j++)
                r[j] += code * d[j];
        }
    double sum = 0.0;
    for (int j = 0; j < dim; j++) {
        r[j] -= x_b[j] - xh_b[j];
        sum += (double)r[j] * r[j];
    }
    return sum;
}

/* One row's AuxK gradient, daux = scale * r (dim, scaled in place): dpre_b (n) += daux . d_i and
 * gW_dec row i += code_i daux at the picked latents whose code counts (sae_stage_aux_code). */
static void sae_stage_aux_row_backward(const sae_params *p, const float *pre_b, const sae_stage_aux *a, int sg,
                                       float *r, float scale, sae_sparse *sparse, int b, float *dpre_b,
                                       float *gW_dec)
{
    const sae_config *c = &p->cfg;
    int dim = c->dim;
    for (int j = 0; j < dim; j++)
        r[j] *= scale;
    for (int q = 0; q < a->n_pick; q++)
        for (int k = 0; k < sae_group_len(c, a->pick[q]); k++) {
            int i = sae_group_member(c, a->pick[q], k);
            float code = sae_stage_aux_code(pre_b[i], sg);
            if (code == 0.0f)
                continue;
            const float *d = p->v.W_dec + (size_t)i * dim; /* (dim) */
            float *gd = gW_dec + (size_t)i * dim;          /* (dim) */
            float dot = 0.0f;
            for (int j = 0; j < dim; j++) {
                dot += r[j] * d[j];
                gd[j] += code * r[j];
            }
            if (!sae_sparse_record(sparse, b, i, dot))
                dpre_b[i] += dot;
        }
}

double sae_stage_auxk(const sae_params *p, const float *x, int B, const unsigned char *dead, int signed_codes,
                      float coef_aux, sae_work *w, sae_view *g)
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents, dim = c->dim;
    float scale = 2.0f * coef_aux / (float)B;
    double sum = 0.0;
    sae_stage_aux a;
    assert(B >= 1 && B <= w->B && dead && w->aux_scratch);
    sae_stage_aux_open(c, dead, w->aux_scratch, &a);
    for (int b = 0; b < B; b++) {
        const float *pre_b = w->pre + (size_t)b * n;
        float *r = w->dx_hat + (size_t)b * dim;
        sae_stage_aux_select(c, pre_b, signed_codes, &a);
        sum += sae_stage_aux_row(p, x + (size_t)b * dim, w->x_hat + (size_t)b * dim, pre_b, &a, signed_codes, r);
        if (g)
            sae_stage_aux_row_backward(p, pre_b, &a, signed_codes, r, scale, w->sparse, b, w->dz + (size_t)b * n,
                                       g->W_dec);
    }
    return sum;
}
