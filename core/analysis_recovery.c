/* analysis_recovery — how well an SAE's decoder recovers the ground-truth
 * circles of a circles dataset, and how well it reconstructs each circle.
 *
 * Each plane (a_i, b_i) is orthonormalised to (q0, q1); a decoder row d keeps
 * ||proj(d)|| / ||d|| = sqrt((d.q0)^2 + (d.q1)^2) / ||d|| of its norm in it.
 * All row-plane products come from sgemm over blocks of decoder rows (aligned
 * to whole groups, so each group's mean fraction per circle is summed in the
 * same block) against the (2 nc, dim) stacked bases; fractions and sums are
 * double. Circle FVE builds T points on each circle at r = 1 and batches
 * several circles into one call of the caller's encode function. */
#include "analysis.h"
#include "sae.h"
#include "core_assert.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REC_BLOCK_FLOATS ((size_t)1 << 20) /* row-plane products per block */
#define FVE_ROWS_PER_CALL 4096

void analysis_orthonormalize_planes(const float *planes, int nc, int dim, float *q)
{
    assert(planes && q && nc >= 0 && dim >= 1);
    assert(core_disjoint(planes, (size_t)nc * 2 * dim * sizeof *planes, q, (size_t)nc * 2 * dim * sizeof *q));
    for (int i = 0; i < nc; i++) {
        const float *a = planes + (size_t)i * 2 * dim, *b = a + dim; /* (dim) each */
        double na = 0.0, ab = 0.0, nr = 0.0, nb = 0.0;
        for (int d = 0; d < dim; d++)
            na += (double)a[d] * a[d];
        na = sqrt(na);
        for (int d = 0; d < dim; d++)
            ab += (double)b[d] * (na > 0.0 ? a[d] / na : 0.0);
        float *q0 = q + (size_t)i * 2 * dim, *q1 = q0 + dim;
        for (int d = 0; d < dim; d++) {
            double u = na > 0.0 ? a[d] / na : 0.0, r = b[d] - ab * u;
            q0[d] = (float)u;
            nr += r * r;
            nb += (double)b[d] * b[d];
        }
        nr = sqrt(nr);
        int keep = nr > 1e-6 * sqrt(nb);
        for (int d = 0; d < dim; d++)
            q1[d] = keep ? (float)((b[d] - ab * (na > 0.0 ? a[d] / na : 0.0)) / nr) : 0.0f;
    }
}

static int recovery_alloc(analysis_recovery *r, int n, int nc, int G, int max_k)
{
    assert(r && n >= 1 && nc >= 1 && G >= 1 && G <= n && max_k >= 0);
    memset(r, 0, sizeof *r);
    r->n = n;
    r->n_circles = nc;
    r->n_groups = G;
    r->max_k = max_k;
    r->row_circle = calloc((size_t)n, sizeof *r->row_circle);
    r->row_frac = calloc((size_t)n, sizeof *r->row_frac);
    r->circle_rows = calloc((size_t)nc, sizeof *r->circle_rows);
    r->per_plane_hist = calloc((size_t)max_k + 1, sizeof *r->per_plane_hist);
    r->group_circle = calloc((size_t)G, sizeof *r->group_circle);
    r->group_fit = calloc((size_t)G, sizeof *r->group_fit);
    if (!r->row_circle || !r->row_frac || !r->circle_rows || !r->per_plane_hist || !r->group_circle ||
        !r->group_fit) {
        analysis_recovery_free(r);
        return ANALYSIS_ENOMEM;
    }
    return ANALYSIS_OK;
}

void analysis_recovery_free(analysis_recovery *r)
{
    free(r->row_circle);
    free(r->row_frac);
    free(r->circle_rows);
    free(r->per_plane_hist);
    free(r->group_circle);
    free(r->group_fit);
    memset(r, 0, sizeof *r);
}

/* Row i's best circle from its projections p (2 nc); adds its fractions to gsum (nc). */
static void recovery_row(const float *p, const float *d, int dim, int nc, analysis_recovery *r, int i, double *gsum)
{
    assert(p && d && gsum && dim >= 1 && nc == r->n_circles && 0 <= i && i < r->n);
    double nrm = 0.0;
    for (int k = 0; k < dim; k++)
        nrm += (double)d[k] * d[k];
    nrm = sqrt(nrm);
    int best = 0;
    double best_f = -1.0;
    for (int c = 0; c < nc; c++) {
        double u = p[2 * c], v = p[2 * c + 1];
        double f = nrm > 0.0 ? sqrt(u * u + v * v) / nrm : 0.0;
        gsum[c] += f;
        if (f > best_f) {
            best_f = f;
            best = c;
        }
    }
    r->row_circle[i] = best;
    r->row_frac[i] = (float)best_f;
}

/* Best circle of group g (s members) from the members' fraction sums gsum (nc). */
static void recovery_group(analysis_recovery *r, int g, const double *gsum, int nc, int s)
{
    assert(gsum && nc == r->n_circles && s >= 1 && 0 <= g && g < r->n_groups);
    int best = 0;
    for (int c = 1; c < nc; c++)
        if (gsum[c] > gsum[best])
            best = c;
    r->group_circle[g] = best;
    r->group_fit[g] = (float)(gsum[best] / s);
}

/* The end g1 > g0 of the block that starts at group g0: whole groups of at most bs rows, or g0's
 * group alone if it is larger (bs is at least the largest group). */
static int recovery_block_end(const int32_t *goff, int G, int g0, int bs)
{
    int g1 = g0 + 1;
    while (g1 < G && goff[g1 + 1] - goff[g0] <= bs)
        g1++;
    return g1;
}

/* Fills the per-row and per-group fields by blocks of whole groups (rows goff[g] .. goff[g+1]-1). */
static int recovery_fractions(const float *W_dec, int dim, const int32_t *goff, const float *q, int nc,
                              analysis_recovery *r)
{
    assert(W_dec && q && r && r->row_circle && r->group_circle);
    assert(nc == r->n_circles && dim >= 1 && goff[r->n_groups] == r->n);
    int G = r->n_groups, smax = analysis_offsets_max(goff, G);
    int bs = (int)(REC_BLOCK_FLOATS / (2 * (size_t)nc));
    bs = bs < smax ? smax : bs; /* blocks of whole groups, so a group's sums are made in one block */
    float *p = malloc((size_t)bs * 2 * nc * sizeof *p); /* (bs, 2 nc) projections */
    double *gsum = malloc((size_t)nc * sizeof *gsum);   /* (nc) the group's fraction sums */
    if (!p || !gsum) {
        free(p);
        free(gsum);
        return ANALYSIS_ENOMEM;
    }
    for (int g0 = 0, g1; g0 < G; g0 = g1) {
        g1 = recovery_block_end(goff, G, g0, bs);
        int a = goff[g0], rows = goff[g1] - a;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, 2 * nc, dim, 1.0f, W_dec + (size_t)a * dim, dim,
                    q, dim, 0.0f, p, 2 * nc);
        for (int g = g0; g < g1; g++) {
            memset(gsum, 0, (size_t)nc * sizeof *gsum);
            for (int i = goff[g]; i < goff[g + 1]; i++)
                recovery_row(p + (size_t)(i - a) * 2 * nc, W_dec + (size_t)i * dim, dim, nc, r, i, gsum);
            recovery_group(r, g, gsum, nc, goff[g + 1] - goff[g]);
        }
    }
    free(p);
    free(gsum);
    return ANALYSIS_OK;
}

/* Counts, histogram and circles found from the per-row fields. */
static int recovery_count(analysis_recovery *r, const int32_t *goff, const unsigned char *alive, double min_frac)
{
    assert(r && r->row_circle && r->row_frac && r->circle_rows && r->per_plane_hist);
    assert(r->rows_counted == 0 && r->rows_inplane == 0 && r->circles_found == 0); /* counted once */
    int n = r->n, nc = r->n_circles;
    unsigned char *by_group = calloc((size_t)nc, 1); /* (nc) found by a whole group */
    if (!by_group)
        return ANALYSIS_ENOMEM;
    for (int i = 0; i < n; i++) {
        if (alive && !alive[i])
            continue;
        r->rows_counted++;
        if (r->row_frac[i] >= min_frac) {
            r->rows_inplane++;
            r->circle_rows[r->row_circle[i]]++;
        }
    }
    for (int g = 0; g < r->n_groups; g++) {
        int ok = 1, c = r->row_circle[goff[g]];
        for (int i = goff[g]; i < goff[g + 1]; i++)
            ok &= (!alive || alive[i]) && r->row_frac[i] >= min_frac && r->row_circle[i] == c;
        by_group[c] |= (unsigned char)ok;
    }
    for (int c = 0; c < nc; c++) {
        int k = r->circle_rows[c];
        r->per_plane_hist[k < r->max_k ? k : r->max_k]++;
        r->circles_found += k > 0;
        r->circles_found_groups += by_group[c];
    }
    assert(r->rows_inplane <= r->rows_counted && r->rows_counted <= n);
    assert(r->circles_found <= nc && r->circles_found_groups <= r->circles_found);
    r->inplane_frac = r->rows_counted > 0 ? (double)r->rows_inplane / r->rows_counted : 0.0;
    free(by_group);
    return ANALYSIS_OK;
}

int analysis_recovery_run(const float *W_dec, int n, int dim, int group_size, const float *planes, int nc,
                          const unsigned char *alive, double min_frac, int max_k, analysis_recovery *out)
{
    assert(out);
    memset(out, 0, sizeof *out);
    if (n < 1 || dim < 1 || nc < 1 || group_size < 1 || n % group_size || max_k < 0)
        return ANALYSIS_EINVAL;
    int32_t *goff = analysis_offsets_equal(n, group_size);
    if (!goff)
        return ANALYSIS_ENOMEM;
    int rc = analysis_recovery_run_groups(W_dec, n, dim, goff, n / group_size, planes, nc, alive, min_frac, max_k,
                                          out);
    out->group_size = group_size;
    free(goff);
    return rc;
}

int analysis_recovery_run_groups(const float *W_dec, int n, int dim, const int32_t *goff, int G, const float *planes,
                                 int nc, const unsigned char *alive, double min_frac, int max_k,
                                 analysis_recovery *out)
{
    assert(out);
    memset(out, 0, sizeof *out);
    if (n < 1 || dim < 1 || nc < 1 || !analysis_offsets_ok(goff, G, n) || max_k < 0)
        return ANALYSIS_EINVAL;
    assert(W_dec && planes);
    int rc = recovery_alloc(out, n, nc, G, max_k);
    if (rc)
        return rc;
    float *q = malloc((size_t)nc * 2 * dim * sizeof *q); /* (nc, 2, dim) orthonormal planes */
    if (!q) {
        analysis_recovery_free(out);
        return ANALYSIS_ENOMEM;
    }
    analysis_orthonormalize_planes(planes, nc, dim, q);
    rc = recovery_fractions(W_dec, dim, goff, q, nc, out);
    if (!rc)
        rc = recovery_count(out, goff, alive, min_frac);
    free(q);
    if (rc)
        analysis_recovery_free(out);
    return rc;
}

/* ---------------------------------------------------------------- circle FVE */

int analysis_sae_encode(void *ctx, const float *x, int rows, float *x_hat)
{
    const sae_params *p = ctx;
    assert(p && p->buf && x && x_hat && rows >= 1);
    float *z = malloc((size_t)rows * p->cfg.n_latents * sizeof *z); /* (rows, n) */
    if (!z)
        return -1;
    int rc = sae_encode(p, NULL, x, rows, z, x_hat);
    free(z);
    return rc;
}

/* FVE of one circle's T points x (T, dim) and their reconstructions xh (T, dim). */
static double fve_of(const float *x, const float *xh, int T, int dim)
{
    assert(x && xh && T >= 1 && dim >= 1);
    double sse = 0.0, sst = 0.0;
    for (int d = 0; d < dim; d++) {
        double mean = 0.0;
        for (int t = 0; t < T; t++)
            mean += x[(size_t)t * dim + d];
        mean /= T;
        for (int t = 0; t < T; t++) {
            double e = (double)xh[(size_t)t * dim + d] - x[(size_t)t * dim + d];
            double c = x[(size_t)t * dim + d] - mean;
            sse += e * e;
            sst += c * c;
        }
    }
    return sst > 0.0 ? 1.0 - sse / sst : 0.0;
}

/* x (T, dim): the points of circle (a, b) at r = 1. */
static void circle_points(const float *a, const float *b, int T, int dim, float *x)
{
    assert(a && b && x && T >= 1 && dim >= 1);
    for (int t = 0; t < T; t++) {
        double th = 2.0 * M_PI * t / T, c = cos(th), s = sin(th);
        for (int d = 0; d < dim; d++)
            x[(size_t)t * dim + d] = (float)(c * a[d] + s * b[d]);
    }
}

int analysis_circle_fve(const float *planes, int nc, int dim, int T, analysis_encode_fn fn, void *ctx, float *fve)
{
    if (nc < 0 || dim < 1 || T < 2)
        return ANALYSIS_EINVAL;
    assert(fn && (nc == 0 || (planes && fve)));
    int per_call = FVE_ROWS_PER_CALL / T > 0 ? FVE_ROWS_PER_CALL / T : 1;
    size_t cap = (size_t)per_call * T * dim;
    float *x = malloc(cap * sizeof *x);  /* (per_call * T, dim) */
    float *xh = malloc(cap * sizeof *xh); /* (per_call * T, dim) */
    int rc = x && xh ? ANALYSIS_OK : ANALYSIS_ENOMEM;
    for (int c0 = 0; c0 < nc && !rc; c0 += per_call) {
        int m = nc - c0 < per_call ? nc - c0 : per_call;
        for (int k = 0; k < m; k++) {
            const float *a = planes + (size_t)(c0 + k) * 2 * dim;
            circle_points(a, a + dim, T, dim, x + (size_t)k * T * dim);
        }
        if (fn(ctx, x, m * T, xh) != 0) {
            rc = ANALYSIS_ECALLBACK;
            break;
        }
        for (int k = 0; k < m && !rc; k++) {
            double f = fve_of(x + (size_t)k * T * dim, xh + (size_t)k * T * dim, T, dim);
            fve[c0 + k] = (float)f;
            rc = isfinite(f) ? ANALYSIS_OK : ANALYSIS_ECALLBACK; /* a NaN reconstruction */
        }
    }
    free(x);
    free(xh);
    return rc;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int analysis_fve_summary(const float *fve, int nc, int n_bins, double *median, double *p10, int64_t *hist)
{
    if (nc < 0 || n_bins < 1)
        return ANALYSIS_EINVAL;
    assert(median && p10 && hist && (nc == 0 || fve));
    float *v = malloc((size_t)(nc > 0 ? nc : 1) * sizeof *v); /* (nc) sorted copy */
    if (!v)
        return ANALYSIS_ENOMEM;
    memcpy(v, fve, (size_t)nc * sizeof *v);
    qsort(v, (size_t)nc, sizeof *v, cmp_float);
    *median = nc > 0 ? analysis_quantile_sorted(v, nc, 0.5) : 0.0; /* the quantile needs n >= 1 */
    *p10 = nc > 0 ? analysis_quantile_sorted(v, nc, 0.1) : 0.0;
    memset(hist, 0, (size_t)n_bins * sizeof *hist);
    for (int i = 0; i < nc; i++) {
        double b = floor((double)v[i] * n_bins);
        int bin = !(b > 0.0) ? 0 : b >= n_bins ? n_bins - 1 : (int)b;
        hist[bin]++;
    }
    free(v);
    return ANALYSIS_OK;
}
