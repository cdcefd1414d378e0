/* analysis_cosine — decoder-row similarity: every row's top-K neighbours by
 * cosine, near-duplicate pairs, and the largest within-group cosine.
 *
 * Rows are normalised into a copy (a zero row stays zero, so its cosines are
 * 0), then cosines come from one sgemm per block of rows against all rows:
 * the block holds at most COS_BLOCK_FLOATS results, never n x n. Each block
 * row is scanned into a sorted top-K list (analysis_topk_push rejects most
 * candidates with one comparison). */
#include "analysis.h"
#include "core_assert.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#define COS_BLOCK_FLOATS ((size_t)1 << 22) /* 16 MB of cosines per block */

static double row_norm(const float *v, int dim)
{
    double s = 0.0;
    for (int d = 0; d < dim; d++)
        s += (double)v[d] * v[d];
    return sqrt(s);
}

/* u (n, dim) = rows of W scaled to unit norm (zero rows stay zero). */
static void normalize_rows(const float *W, int n, int dim, float *u)
{
    assert(W && u && n >= 1 && dim >= 1);
    assert(core_disjoint(W, (size_t)n * dim * sizeof *W, u, (size_t)n * dim * sizeof *u));
    for (int i = 0; i < n; i++) {
        const float *w = W + (size_t)i * dim;
        double nrm = row_norm(w, dim);
        float inv = nrm > 0.0 ? (float)(1.0 / nrm) : 0.0f;
        for (int d = 0; d < dim; d++)
            u[(size_t)i * dim + d] = w[d] * inv;
    }
}

/* Scans the cosines of row i against all rows (n) into its top-K and the
 * duplicate list. */
static void cos_scan_row(const float *crow, int i, int n, int K, float dup_cos, int32_t *nb_idx,
                         float *nb_cos, int32_t *dups, int64_t dup_cap, int64_t *n_dups)
{
    assert(crow && n_dups && 0 <= i && i < n && K >= 0 && dup_cap >= 0);
    assert(K == 0 || (nb_idx && nb_cos));
    int len = 0;
    for (int j = 0; j < n; j++) {
        if (j == i)
            continue;
        analysis_topk_push(nb_idx, nb_cos, K, &len, j, crow[j]);
        if (j > i && crow[j] > dup_cos) {
            if (dups && *n_dups < dup_cap) {
                dups[2 * *n_dups] = i;
                dups[2 * *n_dups + 1] = j;
            }
            (*n_dups)++;
        }
    }
    for (int k = len; k < K; k++) {
        nb_idx[k] = -1;
        nb_cos[k] = 0.0f;
    }
}

int analysis_decoder_neighbors(const float *W_dec, int n, int dim, int K, float dup_cos, int32_t *nb_idx,
                               float *nb_cos, int32_t *dups, int64_t dup_cap, int64_t *n_dups)
{
    if (n < 1 || dim < 1 || K < 0)
        return ANALYSIS_EINVAL;
    assert(W_dec && dup_cap >= 0);
    assert(K == 0 || (nb_idx && nb_cos));
    int bs = (int)(COS_BLOCK_FLOATS / (size_t)n);
    bs = bs < 1 ? 1 : bs > n ? n : bs;
    float *u = malloc((size_t)n * dim * sizeof *u);  /* (n, dim) unit rows */
    float *cs = malloc((size_t)bs * n * sizeof *cs); /* (bs, n) cosines of a block */
    if (!u || !cs) {
        free(u);
        free(cs);
        return ANALYSIS_ENOMEM;
    }
    normalize_rows(W_dec, n, dim, u);
    int64_t found = 0;
    for (int a = 0; a < n; a += bs) {
        int rows = n - a < bs ? n - a : bs;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, dim, 1.0f, u + (size_t)a * dim, dim, u, dim,
                    0.0f, cs, n);
        for (int r = 0; r < rows; r++)
            cos_scan_row(cs + (size_t)r * n, a + r, n, K, dup_cos, nb_idx + (size_t)(a + r) * K,
                         nb_cos + (size_t)(a + r) * K, dups, dup_cap, &found);
    }
    if (n_dups)
        *n_dups = found;
    free(u);
    free(cs);
    return ANALYSIS_OK;
}

void analysis_cosine_matrix(const float *rows, int m, int dim, float *out)
{
    assert(rows && out && m >= 1 && dim >= 1);
    assert(core_disjoint(rows, (size_t)m * dim * sizeof *rows, out, (size_t)m * m * sizeof *out));
    for (int a = 0; a < m; a++) {
        const float *x = rows + (size_t)a * dim;
        double na = row_norm(x, dim);
        for (int b = a; b < m; b++) {
            const float *y = rows + (size_t)b * dim;
            double nb = row_norm(y, dim), dot = 0.0;
            for (int d = 0; d < dim; d++)
                dot += (double)x[d] * y[d];
            float c = na > 0.0 && nb > 0.0 ? (float)(dot / (na * nb)) : 0.0f;
            out[(size_t)a * m + b] = out[(size_t)b * m + a] = c;
        }
    }
}

int analysis_group_max_cos_groups(const float *W_dec, int n, int dim, const int32_t *goff, int G, float *max_cos)
{
    if (n < 1 || dim < 1 || G < 1 || !analysis_offsets_ok(goff, G, n))
        return ANALYSIS_EINVAL;
    assert(W_dec && max_cos);
    assert(core_disjoint(W_dec, (size_t)n * dim * sizeof *W_dec, max_cos, (size_t)G * sizeof *max_cos));
    int smax = analysis_offsets_max(goff, G);
    float *cm = malloc((size_t)smax * smax * sizeof *cm); /* (s, s) the largest group's */
    if (!cm)
        return ANALYSIS_ENOMEM;
    for (int g = 0; g < G; g++) {
        int s = goff[g + 1] - goff[g];
        analysis_cosine_matrix(W_dec + (size_t)goff[g] * dim, s, dim, cm);
        float best = s > 1 ? -INFINITY : 0.0f;
        for (int a = 0; a < s; a++)
            for (int b = a + 1; b < s; b++)
                best = fmaxf(best, cm[(size_t)a * s + b]);
        max_cos[g] = best;
    }
    free(cm);
    return ANALYSIS_OK;
}

int analysis_group_max_cos(const float *W_dec, int n, int dim, int group_size, float *max_cos)
{
    if (n < 1 || dim < 1 || group_size < 1 || n % group_size)
        return ANALYSIS_EINVAL;
    int32_t *goff = analysis_offsets_equal(n, group_size);
    int rc = goff ? analysis_group_max_cos_groups(W_dec, n, dim, goff, n / group_size, max_cos) : ANALYSIS_ENOMEM;
    free(goff);
    return rc;
}
