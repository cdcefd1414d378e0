/* analysis_subspace — an SAE's groups scored as subspaces against the
 * ground-truth circles' planes: block-sparse recovery is about spans, by
 * principal angles (Eldar, Kuppinger & Bolcskei 2010), not single vectors.
 *
 * Group g's decoder rows D_g (s, dim) get an orthonormal basis Q_g (r, dim)
 * of their span by modified Gram-Schmidt in double (r <= s: dependent rows
 * drop out). With plane i's orthonormal basis P_i (2, dim)
 * (analysis_orthonormalize_planes), the cosines of the principal angles
 * between span(D_g) and plane i are the singular values of M = Q_g P_i^T
 * (r, 2), i.e. the square roots of the eigenvalues of the 2 x 2 matrix
 * M^T M, in closed form. The group holds plane i when the smaller cosine is
 * at least the cut: the plane lies (almost) inside the group's span, so a
 * group of rank < 2 (group_size 1, or collapsed rows) holds none. Each group
 * is scored against its best plane (largest smaller cosine). All M come
 * from sgemm over blocks of whole groups against the stacked (2 nc, dim)
 * bases; sums are double. */
#include "analysis.h"
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SUB_BLOCK_FLOATS ((size_t)1 << 22) /* basis-plane products per block: 16 MiB */

/* q (s, dim) = an orthonormal basis of the span of rows (s, dim), rank first; returns the rank. */
static int analysis_subspace_basis(const float *rows, int s, int dim, float *q)
{
    int r = 0;
    for (int i = 0; i < s; i++) {
        float *out = q + (size_t)r * dim;
        double n0 = 0.0, n1 = 0.0;
        for (int d = 0; d < dim; d++) {
            out[d] = rows[(size_t)i * dim + d];
            n0 += (double)out[d] * out[d];
        }
        for (int j = 0; j < r; j++) {
            const float *b = q + (size_t)j * dim;
            double dot = 0.0;
            for (int d = 0; d < dim; d++)
                dot += (double)out[d] * b[d];
            for (int d = 0; d < dim; d++)
                out[d] -= (float)dot * b[d];
        }
        for (int d = 0; d < dim; d++)
            n1 += (double)out[d] * out[d];
        if (!(n1 > 1e-8 * n0) || !(n0 > 0.0)) /* in the span of the rows before it */
            continue;
        for (int d = 0; d < dim; d++)
            out[d] = (float)(out[d] / sqrt(n1));
        r++;
    }
    memset(q + (size_t)r * dim, 0, (size_t)(s - r) * dim * sizeof(float));
    return r;
}

/* The smaller principal-angle cosine between a group's basis and plane i, from prod (s, 2 nc): the
 * group's basis rows against every plane's two basis vectors. */
static double analysis_subspace_min_cos(const float *prod, int s, int nc, int i)
{
    double a = 0.0, b = 0.0, c = 0.0;
    for (int k = 0; k < s; k++) {
        double u = prod[(size_t)k * 2 * nc + 2 * i], v = prod[(size_t)k * 2 * nc + 2 * i + 1];
        a += u * u, b += u * v, c += v * v;
    }
    double lo = 0.5 * ((a + c) - sqrt((a - c) * (a - c) + 4.0 * b * b));
    return lo > 0.0 ? sqrt(lo) : 0.0;
}

/* Groups [g0, g1): their bases into q (block rows), products, and each one's best plane. */
static void analysis_subspace_block(const float *W_dec, int dim, int s, const float *planes, int nc, int g0, int g1,
                                    float *q, float *prod, analysis_subspace *out)
{
    int rows = (g1 - g0) * s;
    for (int g = g0; g < g1; g++)
        analysis_subspace_basis(W_dec + (size_t)g * s * dim, s, dim, q + (size_t)(g - g0) * s * dim);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, 2 * nc, dim, 1.0f, q, dim, planes, dim, 0.0f, prod,
                2 * nc);
    for (int g = g0; g < g1; g++) {
        const float *pg = prod + (size_t)(g - g0) * s * 2 * nc; /* (s, 2 nc) */
        double best = -1.0;
        int at = -1;
        for (int i = 0; i < nc; i++) {
            double m = analysis_subspace_min_cos(pg, s, nc, i);
            if (m > best)
                best = m, at = i;
        }
        out->group_circle[g] = at;
        out->group_cos[g] = (float)best;
    }
}

/* hist (max_k + 1): [k] circles held by exactly k groups with cosine >= cut (the last bin: >= max_k);
 * returns the circles held by at least one. count (nc) scratch. */
static int analysis_subspace_hist(const analysis_subspace *r, double cut, int *count, int64_t *hist)
{
    int held = 0;
    memset(count, 0, (size_t)r->n_circles * sizeof(int));
    memset(hist, 0, (size_t)(r->max_k + 1) * sizeof(int64_t));
    for (int g = 0; g < r->n_groups; g++)
        if (r->group_circle[g] >= 0 && r->group_cos[g] >= cut)
            count[r->group_circle[g]]++;
    for (int i = 0; i < r->n_circles; i++) {
        hist[count[i] < r->max_k ? count[i] : r->max_k]++;
        held += count[i] > 0;
    }
    return held;
}

int analysis_subspace_run(const float *W_dec, int n, int dim, int s, const float *planes, int nc, int max_k,
                          analysis_subspace *out)
{
    assert(W_dec && planes && out && n >= 1 && dim >= 1 && s >= 1 && n % s == 0 && nc >= 1 && max_k >= 1);
    memset(out, 0, sizeof *out);
    int G = n / s;
    size_t per_group = (size_t)s * 2 * nc;
    int block = (int)(SUB_BLOCK_FLOATS / per_group);
    block = block < 1 ? 1 : block > G ? G : block;
    out->n_groups = G, out->n_circles = nc, out->max_k = max_k;
    out->group_circle = malloc((size_t)G * sizeof(int));
    out->group_cos = malloc((size_t)G * sizeof(float));
    out->hist = calloc((size_t)max_k + 1, sizeof(int64_t));
    out->hist_99 = calloc((size_t)max_k + 1, sizeof(int64_t));
    float *q = malloc((size_t)block * s * dim * sizeof(float)); /* (block s, dim) */
    float *prod = malloc((size_t)block * per_group * sizeof(float)); /* (block s, 2 nc) */
    int *count = malloc((size_t)nc * sizeof(int));
    if (!out->group_circle || !out->group_cos || !out->hist || !out->hist_99 || !q || !prod || !count) {
        free(q), free(prod), free(count);
        analysis_subspace_free(out);
        return ANALYSIS_ENOMEM;
    }
    for (int g0 = 0; g0 < G; g0 += block)
        analysis_subspace_block(W_dec, dim, s, planes, nc, g0, g0 + block < G ? g0 + block : G, q, prod, out);
    out->circles_held = analysis_subspace_hist(out, ANALYSIS_SUBSPACE_CUT, count, out->hist);
    out->circles_held_99 = analysis_subspace_hist(out, ANALYSIS_SUBSPACE_CUT_99, count, out->hist_99);
    out->circles_one_group = (int)out->hist[1];
    out->circles_one_group_99 = (int)out->hist_99[1];
    free(q), free(prod), free(count);
    return ANALYSIS_OK;
}

void analysis_subspace_free(analysis_subspace *r)
{
    free(r->group_circle), free(r->group_cos), free(r->hist), free(r->hist_99);
    memset(r, 0, sizeof *r);
}
