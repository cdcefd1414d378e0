/* analysis_stats — per-latent statistics accumulated over batches of sparse
 * activations in one pass: rows fired, sum, max, a histogram, and per-group
 * firing counts.
 *
 * Histogram (see analysis.h): latent i's range is [0, hi_i) with hi_i a power
 * of two; a value v >= hi_i doubles hi_i (merging bin pairs 2k, 2k+1 -> k)
 * until v < hi_i. With n_bins a power of two, v * (n_bins / hi_i) is an exact
 * scaling, so floor() of it is the bin a two-pass histogram with the final
 * edges would give, and merging keeps that true (floor(floor(x)/2) =
 * floor(x/2)). The result does not depend on batch order. */
#include "analysis.h"
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int analysis_stats_init(analysis_stats *s, int n, int group_size, int n_bins)
{
    assert(s);
    memset(s, 0, sizeof *s);
    if (n < 1 || group_size < 1 || n % group_size || n_bins < 1 || (n_bins & (n_bins - 1)))
        return ANALYSIS_EINVAL;
    s->n = n;
    s->group_size = group_size;
    s->n_bins = n_bins;
    s->count = calloc((size_t)n, sizeof *s->count);
    s->sum = calloc((size_t)n, sizeof *s->sum);
    s->max = calloc((size_t)n, sizeof *s->max);
    s->hist_hi = calloc((size_t)n, sizeof *s->hist_hi);
    s->hist = calloc((size_t)n * n_bins, sizeof *s->hist);
    s->group_count = calloc((size_t)(n / group_size), sizeof *s->group_count);
    if (!s->count || !s->sum || !s->max || !s->hist_hi || !s->hist || !s->group_count) {
        analysis_stats_free(s);
        return ANALYSIS_ENOMEM;
    }
    return ANALYSIS_OK;
}

void analysis_stats_free(analysis_stats *s)
{
    assert(s);
    free(s->count);
    free(s->sum);
    free(s->max);
    free(s->hist_hi);
    free(s->hist);
    free(s->group_count);
    memset(s, 0, sizeof *s);
}

/* Doubles the histogram range of a latent: bins 2k and 2k+1 become bin k. */
static void stats_double_range(int64_t *h /* (nb) */, int nb, float *hi)
{
    for (int k = 0; k < nb / 2; k++)
        h[k] = h[2 * k] + (nb > 1 ? h[2 * k + 1] : 0);
    for (int k = nb / 2; k < nb && nb > 1; k++)
        h[k] = 0;
    *hi *= 2.0f;
}

static void stats_hist_add(analysis_stats *s, int i, float v)
{
    int64_t *h = s->hist + (size_t)i * s->n_bins; /* (n_bins) */
    float *hi = &s->hist_hi[i];
    if (*hi == 0.0f) {
        int e;
        frexpf(v, &e); /* v = m 2^e, m in [0.5, 1): 2^(e-1) <= v < 2^e */
        *hi = ldexpf(1.0f, e);
    }
    while (v >= *hi)
        stats_double_range(h, s->n_bins, hi);
    double scale = (double)s->n_bins / (double)*hi; /* a power of two: exact */
    int bin = (int)((double)v * scale);
    h[bin < s->n_bins ? bin : s->n_bins - 1]++;
}

int analysis_stats_add(analysis_stats *s, const analysis_csr *z)
{
    assert(s && z);
    assert(s->count && s->hist && s->group_count); /* initialised */
    if (z->n != s->n || (!z->val && z->nnz > 0))
        return ANALYSIS_EINVAL;
    assert(z->rows >= 0 && z->row_ptr);
    assert(z->row_ptr[0] <= z->row_ptr[z->rows]);
    assert(z->val || z->row_ptr[0] == z->row_ptr[z->rows]);
    int gs = s->group_size;
    for (int r = 0; r < z->rows; r++) {
        int last_group = -1;
        for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++) {
            int i = z->idx[e];
            float v = fabsf(z->val[e]); /* the magnitude: codes may be signed (subspace) */
            s->count[i]++;
            s->sum[i] += v;
            if (v > s->max[i])
                s->max[i] = v;
            stats_hist_add(s, i, v);
            if (i / gs != last_group) { /* ids increase, so a group's members are adjacent */
                last_group = i / gs;
                s->group_count[last_group]++;
            }
        }
    }
    s->rows += z->rows;
    return ANALYSIS_OK;
}

void analysis_stats_latent(const analysis_stats *s, int i, analysis_latent_summary *out)
{
    assert(s && out && s->count);
    assert(0 <= i && i < s->n);
    double rows = (double)s->rows;
    out->density = rows > 0 ? (double)s->count[i] / rows : 0.0;
    out->mean_act = rows > 0 ? s->sum[i] / rows : 0.0;
    out->mean_fired = s->count[i] > 0 ? s->sum[i] / (double)s->count[i] : 0.0;
    out->max_act = s->max[i];
}

void analysis_stats_edges(const analysis_stats *s, int i, float *edges)
{
    assert(s && edges && s->hist_hi);
    assert(0 <= i && i < s->n);
    for (int k = 0; k <= s->n_bins; k++)
        edges[k] = s->hist_hi[i] * (float)k / (float)s->n_bins; /* exact: powers of two */
}

double analysis_stats_group_density(const analysis_stats *s, int g)
{
    assert(s && s->group_count);
    assert(0 <= g && g < s->n / s->group_size);
    return s->rows > 0 ? (double)s->group_count[g] / (double)s->rows : 0.0;
}
