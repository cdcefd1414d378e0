/* analysis_eig — eigen-decomposition of small symmetric matrices by cyclic
 * Jacobi rotations in double (OpenBLAS here has no lapacke.h; see analysis.h).
 *
 * Each rotation G (c on the p,q diagonal, s at (p,q), -s at (q,p)) zeroes
 * a_pq: with theta = (a_qq - a_pp) / (2 a_pq), t = tan(phi) is the smaller
 * root of t^2 + 2 t theta - 1 = 0, c = 1/sqrt(1 + t^2), s = t c; then
 * a_pp -= t a_pq, a_qq += t a_pq and columns/rows p, q rotate. Eigenvectors
 * are kept as rows of v (v <- G^T v), so their update is contiguous. Sweeps
 * stop when the off-diagonal mass is below 1e-30 of the total (relative
 * 1e-15), at most 100 sweeps (convergence is quadratic; ~10 are typical).
 * The work is done on a copy with an odd row stride, so walking a column does
 * not map every element to the same cache set (a power-of-two p did, 2.5x
 * slower). */
#include "analysis.h"
#include "core_assert.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EIG_MAX_SWEEPS 100

static double eig_offdiag2(const double *a, int p, size_t ld, double *total)
{
    double off = 0.0, all = 0.0;
    for (int i = 0; i < p; i++)
        for (int j = 0; j < p; j++) {
            double x = a[(size_t)i * ld + j] * a[(size_t)i * ld + j];
            all += x;
            if (i != j)
                off += x;
        }
    *total = all;
    return off;
}

/* Rotates the pair (k, p), (k, q) of rows/columns of a (ld) for k in [k0, k1). */
static void eig_rotate_range(double *a, size_t ld, int p, int q, int k0, int k1, double c, double s)
{
    for (int k = k0; k < k1; k++) {
        double akp = a[(size_t)k * ld + p], akq = a[(size_t)k * ld + q];
        double np_ = c * akp - s * akq, nq = s * akp + c * akq;
        a[(size_t)k * ld + p] = a[(size_t)p * ld + k] = np_;
        a[(size_t)k * ld + q] = a[(size_t)q * ld + k] = nq;
    }
}

/* One rotation zeroing a[p][q] (p < q) of a (n, ld); rotates rows p, q of v (n, n) if non-NULL. */
static void eig_rotate(double *a, int n, size_t ld, int p, int q, double *v)
{
    double apq = a[(size_t)p * ld + q], app = a[(size_t)p * ld + p], aqq = a[(size_t)q * ld + q];
    double theta = (aqq - app) / (2.0 * apq);
    double t = fabs(theta) > 1e100 ? 0.5 / theta
                                   : (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
    double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
    eig_rotate_range(a, ld, p, q, 0, p, c, s);
    eig_rotate_range(a, ld, p, q, p + 1, q, c, s);
    eig_rotate_range(a, ld, p, q, q + 1, n, c, s);
    a[(size_t)p * ld + p] = app - t * apq;
    a[(size_t)q * ld + q] = aqq + t * apq;
    a[(size_t)p * ld + q] = a[(size_t)q * ld + p] = 0.0;
    if (v) {
        double *vp = v + (size_t)p * n, *vq = v + (size_t)q * n; /* (n) rows */
        for (int k = 0; k < n; k++) {
            double x = vp[k], y = vq[k];
            vp[k] = c * x - s * y;
            vq[k] = s * x + c * y;
        }
    }
}

/* Sorts eigenvalues descending, moving the rows of v along. */
static void eig_sort(double *w, int p, double *v)
{
    for (int i = 0; i < p; i++) {
        int best = i;
        for (int j = i + 1; j < p; j++)
            if (w[j] > w[best])
                best = j;
        if (best == i)
            continue;
        double t = w[i];
        w[i] = w[best];
        w[best] = t;
        if (v)
            for (int k = 0; k < p; k++) {
                double x = v[(size_t)i * p + k];
                v[(size_t)i * p + k] = v[(size_t)best * p + k];
                v[(size_t)best * p + k] = x;
            }
    }
}

/* One cyclic sweep over the pairs of b (p, ld). */
static void eig_sweep(double *b, int p, size_t ld, double *v)
{
    for (int i = 0; i < p - 1; i++)
        for (int j = i + 1; j < p; j++) {
            double bij = b[(size_t)i * ld + j];
            double scale = fabs(b[(size_t)i * ld + i]) + fabs(b[(size_t)j * ld + j]);
            if (bij == 0.0)
                continue;
            if (fabs(bij) <= 1e-18 * scale) { /* negligible: drop it */
                b[(size_t)i * ld + j] = b[(size_t)j * ld + i] = 0.0;
                continue;
            }
            eig_rotate(b, p, ld, i, j, v);
        }
}

int analysis_sym_eig(const double *a, int p, double *w, double *v)
{
    assert(a && w && p >= 1);
    assert(core_disjoint(w, (size_t)p * sizeof *w, v, v ? (size_t)p * p * sizeof *v : 0));
    size_t ld = (size_t)p | 1; /* an odd row stride: columns never alias in the cache */
    double *b = malloc((size_t)p * ld * sizeof *b); /* (p, ld) working copy */
    if (!b)
        return ANALYSIS_ENOMEM;
    for (int i = 0; i < p; i++)
        memcpy(b + (size_t)i * ld, a + (size_t)i * p, (size_t)p * sizeof *b);
    if (v) {
        memset(v, 0, (size_t)p * p * sizeof *v);
        for (int i = 0; i < p; i++)
            v[(size_t)i * p + i] = 1.0;
    }
    for (int sweep = 0; sweep < EIG_MAX_SWEEPS; sweep++) {
        double total, off = eig_offdiag2(b, p, ld, &total);
        if (off <= 1e-30 * total || off == 0.0)
            break;
        eig_sweep(b, p, ld, v);
    }
    for (int i = 0; i < p; i++)
        w[i] = b[(size_t)i * ld + i];
    free(b);
    eig_sort(w, p, v);
    return ANALYSIS_OK;
}
