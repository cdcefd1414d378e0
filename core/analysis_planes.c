/* analysis_planes — the plane a group's decoder rows span.
 *
 * For rows D (s, dim) the right singular vectors come from the small Gram
 * matrix G = D D^T (s, s) in double: G = U diag(sigma^2) U^T, and
 * v_k = D^T u_k / sigma_k. The top two are re-orthonormalised (Gram-Schmidt
 * in double, which only polishes rounding) and given deterministic signs
 * (analysis_sign_fix). A singular value below 1e-6 of the largest counts as
 * zero: its basis row is left zero (e.g. group_size 1, or parallel rows). */
#include "analysis.h"
#include "core_assert.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PLANE_RANK_TOL 1e-6

/* q (dim) = D^T u / sigma, then minus its component along prev (dim, or NULL); returns its norm. */
static double plane_vector(const float *rows, int s, int dim, const double *u, const double *prev, double *q)
{
    assert(rows && u && q && s >= 1 && dim >= 1);
    assert(core_disjoint(q, (size_t)dim * sizeof *q, prev, prev ? (size_t)dim * sizeof *prev : 0));
    memset(q, 0, (size_t)dim * sizeof *q);
    for (int a = 0; a < s; a++)
        for (int d = 0; d < dim; d++)
            q[d] += u[a] * rows[(size_t)a * dim + d];
    if (prev) {
        double dot = 0.0;
        for (int d = 0; d < dim; d++)
            dot += q[d] * prev[d];
        for (int d = 0; d < dim; d++)
            q[d] -= dot * prev[d];
    }
    double nrm = 0.0;
    for (int d = 0; d < dim; d++)
        nrm += q[d] * q[d];
    nrm = sqrt(nrm);
    for (int d = 0; d < dim && nrm > 0.0; d++)
        q[d] /= nrm;
    return nrm;
}

/* Fills basis (2, dim) from the Gram eigenvectors u (s, s); returns its rank. */
static int plane_basis(const float *rows, int s, int dim, const double *sv, const double *u, double *q /* (2, dim) */,
                       float *basis)
{
    assert(rows && sv && u && q && basis && s >= 1 && dim >= 1);
    assert(sv[0] >= 0.0); /* singular values: the square roots of the clamped eigenvalues */
    int rank = 0;
    memset(basis, 0, 2 * (size_t)dim * sizeof *basis);
    for (int k = 0; k < 2 && k < s; k++) {
        if (!(sv[k] > PLANE_RANK_TOL * sv[0]))
            break;
        plane_vector(rows, s, dim, u + (size_t)k * s, k ? q : NULL, q + (size_t)k * dim);
        for (int d = 0; d < dim; d++)
            basis[(size_t)k * dim + d] = (float)q[(size_t)k * dim + d];
        analysis_sign_fix(basis + (size_t)k * dim, dim);
        rank++;
    }
    return rank;
}

int analysis_group_plane(const float *rows, int s, int dim, float *sv, float *basis, float *coords, float *cos)
{
    if (s < 1 || dim < 1)
        return ANALYSIS_EINVAL;
    assert(rows && sv && basis && coords && cos);
    assert(core_disjoint(rows, (size_t)s * dim * sizeof *rows, sv, (size_t)s * sizeof *sv));
    assert(core_disjoint(rows, (size_t)s * dim * sizeof *rows, basis, 2 * (size_t)dim * sizeof *basis));
    assert(core_disjoint(rows, (size_t)s * dim * sizeof *rows, coords, 2 * (size_t)s * sizeof *coords));
    assert(core_disjoint(rows, (size_t)s * dim * sizeof *rows, cos, (size_t)s * s * sizeof *cos));
    assert(core_disjoint(basis, 2 * (size_t)dim * sizeof *basis, coords, 2 * (size_t)s * sizeof *coords));
    double *g = malloc((size_t)s * s * sizeof *g);      /* (s, s) Gram matrix */
    double *u = malloc((size_t)s * s * sizeof *u);      /* (s, s) eigenvectors as rows */
    double *w = malloc((size_t)s * sizeof *w);          /* (s) singular values */
    double *q = malloc(2 * (size_t)dim * sizeof *q);    /* (2, dim) basis in double */
    if (!g || !u || !w || !q) {
        free(g), free(u), free(w), free(q);
        return ANALYSIS_ENOMEM;
    }
    for (int a = 0; a < s; a++)
        for (int b = a; b < s; b++) {
            double dot = 0.0;
            for (int d = 0; d < dim; d++)
                dot += (double)rows[(size_t)a * dim + d] * rows[(size_t)b * dim + d];
            g[(size_t)a * s + b] = g[(size_t)b * s + a] = dot;
        }
    if (analysis_sym_eig(g, s, w, u) != ANALYSIS_OK) {
        free(g), free(u), free(w), free(q);
        return ANALYSIS_ENOMEM;
    }
    for (int k = 0; k < s; k++) {
        w[k] = sqrt(w[k] > 0.0 ? w[k] : 0.0);
        sv[k] = (float)w[k];
    }
    int rank = plane_basis(rows, s, dim, w, u, q, basis);
    assert(0 <= rank && rank <= 2 && rank <= s);
    for (int a = 0; a < s; a++)
        analysis_plane_project(basis, NULL, rows + (size_t)a * dim, 1, dim, coords + 2 * (size_t)a);
    analysis_cosine_matrix(rows, s, dim, cos);
    free(g), free(u), free(w), free(q);
    return rank;
}

void analysis_plane_project(const float *basis, const float *b_dec, const float *x, int B, int dim, float *out)
{
    assert(basis && x && out && B >= 0 && dim >= 1);
    assert(core_disjoint(x, (size_t)B * dim * sizeof *x, out, 2 * (size_t)B * sizeof *out));
    assert(core_disjoint(basis, 2 * (size_t)dim * sizeof *basis, out, 2 * (size_t)B * sizeof *out));
    for (int r = 0; r < B; r++) {
        const float *xr = x + (size_t)r * dim; /* (dim) */
        double u = 0.0, v = 0.0;
        for (int d = 0; d < dim; d++) {
            double c = (double)xr[d] - (b_dec ? b_dec[d] : 0.0f);
            u += c * basis[d];
            v += c * basis[(size_t)dim + d];
        }
        out[2 * (size_t)r] = (float)u;
        out[2 * (size_t)r + 1] = (float)v;
    }
}
