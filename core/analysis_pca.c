/* analysis_pca — principal components of rows, and the pca job's preparation
 * (the latents that fire most on chosen rows, reconstructions from them).
 *
 * analysis_pca centres X (mean in double) and diagonalises the smaller of the
 * covariance Xc^T Xc (dim <= m, accumulated by dsyrk over chunks of rows, so
 * Xc is never held whole) and the Gram matrix Xc Xc^T (m < dim, where
 * component k = Xc^T u_k normalised). Eigenvalues lambda_k give the explained
 * variance lambda_k / (m - 1) (ddof 1, like numpy.cov and scikit-learn); the
 * total is the trace / (m - 1). Components with lambda_k <= 1e-12 lambda_0
 * are past the rank: zero rows with variance 0.
 *
 * analysis_pca_latents uses that reconstructions from latents L lie in
 * b_dec + span(d_l): with Q (r, dim) an orthonormal basis of the chosen
 * decoder rows (modified Gram-Schmidt in double) and d_l = sum_k B[l][k] q_k,
 * the centred rows are Xc = (Z - mean Z) B Q, so PCA of Y = (Z - mean Z) B
 * (m, r) with components mapped back through Q is the same PCA, exactly, for
 * any dim. */
#include "analysis.h"
#include "core_assert.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PCA_CHUNK_ROWS 1024
#define PCA_RANK_TOL 1e-12  /* eigenvalues below this fraction of the largest are zero */
#define PCA_BASIS_TOL 1e-10 /* decoder rows with less residual are in the span already */

void analysis_pca_free(analysis_pca_result *r)
{
    assert(r);
    free(r->mean);
    free(r->components);
    free(r->variance);
    free(r->ratio);
    free(r->coords);
    memset(r, 0, sizeof *r);
}

static int pca_alloc(analysis_pca_result *r, int m, int dim, int c)
{
    assert(r && m >= 2 && dim >= 1 && c >= 1 && c <= m && c <= dim);
    memset(r, 0, sizeof *r);
    r->m = m;
    r->dim = dim;
    r->c = c;
    r->mean = calloc((size_t)dim, sizeof *r->mean);
    r->components = calloc((size_t)c * dim, sizeof *r->components);
    r->variance = calloc((size_t)c, sizeof *r->variance);
    r->ratio = calloc((size_t)c, sizeof *r->ratio);
    r->coords = calloc((size_t)m * c, sizeof *r->coords);
    if (!r->mean || !r->components || !r->variance || !r->ratio || !r->coords) {
        analysis_pca_free(r);
        return ANALYSIS_ENOMEM;
    }
    return ANALYSIS_OK;
}

/* Stores component k from direction v (dim, double, any length): normalised,
 * signed by analysis_sign_fix. Returns the sign applied to v (+1 or -1), or 0
 * when it is past the rank (a zero component). */
static int pca_set_component(analysis_pca_result *r, int k, double lambda, double lambda0, double *v)
{
    assert(r && r->components && r->variance && v);
    assert(0 <= k && k < r->c && r->m >= 2);
    int dim = r->dim;
    float *out = r->components + (size_t)k * dim;
    double nrm = 0.0;
    for (int d = 0; d < dim; d++)
        nrm += v[d] * v[d];
    nrm = sqrt(nrm);
    if (!(lambda > PCA_RANK_TOL * lambda0) || !(nrm > 0.0))
        return 0;
    for (int d = 0; d < dim; d++) {
        v[d] /= nrm;
        out[d] = (float)v[d];
    }
    int sign = analysis_sign_fix(out, dim);
    for (int d = 0; d < dim; d++)
        v[d] *= sign;
    r->variance[k] = lambda / (r->m - 1);
    return sign;
}

static void pca_ratios(analysis_pca_result *r, double trace)
{
    assert(r && r->ratio && r->m >= 2);
    r->total_variance = trace / (r->m - 1);
    for (int k = 0; k < r->c; k++)
        r->ratio[k] = r->total_variance > 0.0 ? r->variance[k] / r->total_variance : 0.0;
}

/* mean (dim) of X (m, dim) in double; also stored as float in r->mean. */
static void pca_mean(const float *X, int m, int dim, double *mean, analysis_pca_result *r)
{
    assert(X && mean && r && r->mean && m == r->m && dim == r->dim && m >= 1);
    memset(mean, 0, (size_t)dim * sizeof *mean);
    for (int i = 0; i < m; i++)
        for (int d = 0; d < dim; d++)
            mean[d] += X[(size_t)i * dim + d];
    for (int d = 0; d < dim; d++) {
        mean[d] /= m;
        r->mean[d] = (float)mean[d];
    }
}

/* xc (rows, dim) = X[a .. a+rows) - mean, in double. */
static void pca_centre(const float *X, int a, int rows, int dim, const double *mean, double *xc)
{
    assert(X && mean && xc && a >= 0 && rows >= 0 && dim >= 1);
    for (int i = 0; i < rows; i++)
        for (int d = 0; d < dim; d++)
            xc[(size_t)i * dim + d] = X[(size_t)(a + i) * dim + d] - mean[d];
}

/* coords[i][k] = (x_i - mean) . component k, for the components set so far. */
static void pca_coords(const float *X, const double *mean, analysis_pca_result *r)
{
    assert(X && mean && r && r->components && r->coords);
    int dim = r->dim;
    for (int i = 0; i < r->m; i++)
        for (int k = 0; k < r->c; k++) {
            const float *comp = r->components + (size_t)k * dim;
            double s = 0.0;
            for (int d = 0; d < dim; d++)
                s += ((double)X[(size_t)i * dim + d] - mean[d]) * comp[d];
            r->coords[(size_t)i * r->c + k] = (float)s;
        }
}

/* dim <= m: eigenvectors of the covariance are the components. */
static int pca_covariance(const float *X, const double *mean, analysis_pca_result *r)
{
    int m = r->m, dim = r->dim;
    assert(X && mean && dim <= m && dim <= ANALYSIS_EIG_MAX); /* the branch analysis_pca took */
    double *a = calloc((size_t)dim * dim, sizeof *a);            /* (dim, dim) Xc^T Xc */
    double *v = malloc((size_t)dim * dim * sizeof *v);           /* (dim, dim) eigenvectors */
    double *w = malloc((size_t)dim * sizeof *w);                 /* (dim) eigenvalues */
    double *xc = malloc((size_t)PCA_CHUNK_ROWS * dim * sizeof *xc); /* (chunk, dim) */
    if (!a || !v || !w || !xc) {
        free(a), free(v), free(w), free(xc);
        return ANALYSIS_ENOMEM;
    }
    for (int i = 0; i < m; i += PCA_CHUNK_ROWS) {
        int rows = m - i < PCA_CHUNK_ROWS ? m - i : PCA_CHUNK_ROWS;
        pca_centre(X, i, rows, dim, mean, xc);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, dim, rows, 1.0, xc, dim, 1.0, a, dim);
    }
    double trace = 0.0;
    for (int p = 0; p < dim; p++) {
        trace += a[(size_t)p * dim + p];
        for (int q = p + 1; q < dim; q++)
            a[(size_t)q * dim + p] = a[(size_t)p * dim + q];
    }
    int rc = analysis_sym_eig(a, dim, w, v);
    for (int k = 0; k < r->c && !rc; k++)
        pca_set_component(r, k, w[k], w[0], v + (size_t)k * dim);
    pca_ratios(r, trace);
    free(a), free(v), free(w), free(xc);
    return rc;
}

/* m < dim: eigenvectors u of the Gram matrix give components Xc^T u. */
static int pca_gram(const float *X, const double *mean, analysis_pca_result *r)
{
    int m = r->m, dim = r->dim;
    assert(X && mean && m < dim && m <= ANALYSIS_EIG_MAX); /* the branch analysis_pca took */
    double *xc = malloc((size_t)m * dim * sizeof *xc);  /* (m, dim) centred rows */
    double *g = calloc((size_t)m * m, sizeof *g);       /* (m, m) Xc Xc^T */
    double *u = malloc((size_t)m * m * sizeof *u);      /* (m, m) eigenvectors */
    double *w = malloc((size_t)m * sizeof *w);          /* (m) */
    double *v = malloc((size_t)dim * sizeof *v);        /* (dim) one component */
    if (!xc || !g || !u || !w || !v) {
        free(xc), free(g), free(u), free(w), free(v);
        return ANALYSIS_ENOMEM;
    }
    pca_centre(X, 0, m, dim, mean, xc);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, m, dim, 1.0, xc, dim, 0.0, g, m);
    double trace = 0.0;
    for (int p = 0; p < m; p++) {
        trace += g[(size_t)p * m + p];
        for (int q = p + 1; q < m; q++)
            g[(size_t)q * m + p] = g[(size_t)p * m + q];
    }
    int rc = analysis_sym_eig(g, m, w, u);
    for (int k = 0; k < r->c && !rc; k++) {
        cblas_dgemv(CblasRowMajor, CblasTrans, m, dim, 1.0, xc, dim, u + (size_t)k * m, 1, 0.0, v, 1);
        pca_set_component(r, k, w[k], w[0], v);
    }
    pca_ratios(r, trace);
    free(xc), free(g), free(u), free(w), free(v);
    return rc;
}

int analysis_pca(const float *X, int m, int dim, int c, analysis_pca_result *out)
{
    assert(out);
    memset(out, 0, sizeof *out);
    if (m < 2 || dim < 1 || c < 1 || c > m || c > dim)
        return ANALYSIS_EINVAL;
    assert(X);
    if ((m < dim ? m : dim) > ANALYSIS_EIG_MAX)
        return ANALYSIS_ETOOBIG;
    int rc = pca_alloc(out, m, dim, c);
    if (rc)
        return rc;
    double *mean = malloc((size_t)dim * sizeof *mean); /* (dim) */
    if (!mean) {
        analysis_pca_free(out);
        return ANALYSIS_ENOMEM;
    }
    pca_mean(X, m, dim, mean, out);
    rc = dim <= m ? pca_covariance(X, mean, out) : pca_gram(X, mean, out);
    if (!rc)
        pca_coords(X, mean, out);
    free(mean);
    if (rc)
        analysis_pca_free(out);
    return rc;
}

/* ---------------------------------------------------------------- the pca job */

/* pos (n): position of each chosen latent in latents, -1 elsewhere; EINVAL on
 * an id out of range or repeated. */
static int latent_positions(const int32_t *latents, int L, int n, int32_t *pos)
{
    assert(pos && n >= 1 && L >= 0 && (L == 0 || latents));
    for (int i = 0; i < n; i++)
        pos[i] = -1;
    for (int a = 0; a < L; a++) {
        if (latents[a] < 0 || latents[a] >= n || pos[latents[a]] >= 0)
            return ANALYSIS_EINVAL;
        pos[latents[a]] = a;
    }
    return ANALYSIS_OK;
}

int analysis_top_latents(const analysis_csr *z, int L, int32_t *out, double *score)
{
    assert(z);
    if (L < 0 || (!z->val && z->nnz > 0))
        return ANALYSIS_EINVAL;
    if (L == 0)
        return 0;
    assert(out && z->n >= 1 && z->rows >= 0 && z->row_ptr);
    assert(z->row_ptr[0] <= z->row_ptr[z->rows]);
    assert(z->val || z->row_ptr[0] == z->row_ptr[z->rows]);
    double *total = calloc((size_t)z->n, sizeof *total); /* (n) */
    if (!total)
        return ANALYSIS_ENOMEM;
    for (int64_t e = z->row_ptr[0]; e < z->row_ptr[z->rows]; e++)
        total[z->idx[e]] += fabsf(z->val[e]); /* activation magnitude: codes may be signed (subspace) */
    int len = 0;
    for (int i = 0; i < z->n; i++) { /* insertion into the sorted top L; ids ascend, so ties keep lower ids first */
        if (!(total[i] > 0.0) || (len == L && total[i] <= total[out[L - 1]]))
            continue;
        int p = len < L ? len++ : L - 1;
        while (p > 0 && total[out[p - 1]] < total[i]) {
            out[p] = out[p - 1];
            p--;
        }
        out[p] = i;
    }
    assert(0 <= len && len <= L);
    for (int a = 0; a < len && score; a++)
        score[a] = total[out[a]];
    free(total);
    return len;
}

int analysis_reconstruct_latents(const analysis_csr *z, const int32_t *latents, int L, const float *W_dec,
                                 const float *b_dec, int dim, float *x)
{
    assert(z);
    if (L < 0 || dim < 1 || (!z->val && z->nnz > 0))
        return ANALYSIS_EINVAL;
    assert(W_dec && z->n >= 1 && z->rows >= 0 && z->row_ptr && (z->rows == 0 || x));
    assert(z->val || z->row_ptr[0] == z->row_ptr[z->rows]);
    assert(core_disjoint(x, (size_t)z->rows * dim * sizeof *x, W_dec, (size_t)z->n * dim * sizeof *W_dec));
    int32_t *pos = malloc((size_t)z->n * sizeof *pos); /* (n) */
    if (!pos)
        return ANALYSIS_ENOMEM;
    int rc = latent_positions(latents, L, z->n, pos);
    for (int r = 0; r < z->rows && !rc; r++) {
        float *xr = x + (size_t)r * dim; /* (dim) */
        for (int d = 0; d < dim; d++)
            xr[d] = b_dec ? b_dec[d] : 0.0f;
        for (int64_t e = z->row_ptr[r]; e < z->row_ptr[r + 1]; e++)
            if (pos[z->idx[e]] >= 0)
                cblas_saxpy(dim, z->val[e], W_dec + (size_t)z->idx[e] * dim, 1, xr, 1);
    }
    free(pos);
    return rc;
}

/* q (L, dim): orthonormal basis of the chosen decoder rows (modified
 * Gram-Schmidt in double; rows past the rank stay zero); b (L, L): d_a =
 * sum_k b[a][k] q_k. v (dim) is scratch. */
static void latent_basis(const float *W_dec, const int32_t *latents, int L, int dim, double *q, double *b, double *v)
{
    assert(W_dec && latents && q && b && v && L >= 1 && dim >= 1);
    int r = 0;
    for (int a = 0; a < L; a++) {
        const float *d = W_dec + (size_t)latents[a] * dim;
        double n0 = 0.0, nrm = 0.0;
        for (int k = 0; k < dim; k++) {
            v[k] = d[k];
            n0 += v[k] * v[k];
        }
        for (int j = 0; j < r; j++) {
            const double *qj = q + (size_t)j * dim;
            double coef = 0.0;
            for (int k = 0; k < dim; k++)
                coef += v[k] * qj[k];
            for (int k = 0; k < dim; k++)
                v[k] -= coef * qj[k];
            b[(size_t)a * L + j] = coef;
        }
        for (int k = 0; k < dim; k++)
            nrm += v[k] * v[k];
        nrm = sqrt(nrm);
        if (!(nrm > PCA_BASIS_TOL * sqrt(n0)))
            continue;
        for (int k = 0; k < dim; k++)
            q[(size_t)r * dim + k] = v[k] / nrm;
        b[(size_t)a * L + r++] = nrm;
    }
}

/* zc (m, L): the chosen latents' activations, centred; mz (L) their mean. */
static void latent_centred(const analysis_csr *z, const int32_t *pos, int L, double *zc, double *mz)
{
    int m = z->rows;
    assert(pos && zc && mz && L >= 1 && m >= 1);
    assert(z->val || z->row_ptr[0] == z->row_ptr[m]); /* val is NULL only when nothing fired */
    for (int i = 0; i < m; i++)
        for (int64_t e = z->row_ptr[i]; e < z->row_ptr[i + 1]; e++)
            if (pos[z->idx[e]] >= 0)
                zc[(size_t)i * L + pos[z->idx[e]]] = z->val[e];
    for (int a = 0; a < L; a++) {
        double s = 0.0;
        for (int i = 0; i < m; i++)
            s += zc[(size_t)i * L + a];
        mz[a] = s / m;
        for (int i = 0; i < m; i++)
            zc[(size_t)i * L + a] -= mz[a];
    }
}

/* mean (dim) of the reconstructions: sum_a mz[a] d_a + b_dec. */
static void latent_mean(const float *W_dec, const float *b_dec, const int32_t *latents, int L, const double *mz,
                        analysis_pca_result *r)
{
    assert(W_dec && latents && mz && r && r->mean && L >= 1);
    for (int d = 0; d < r->dim; d++) {
        double s = b_dec ? b_dec[d] : 0.0;
        for (int a = 0; a < L; a++)
            s += mz[a] * W_dec[(size_t)latents[a] * r->dim + d];
        r->mean[d] = (float)s;
    }
}

typedef struct {
    int32_t *pos; /* (n) position of each chosen latent, -1 elsewhere */
    double *q;    /* (L, dim) orthonormal basis of the chosen decoder rows */
    double *b;    /* (L, L) decoder rows in that basis */
    double *zc;   /* (m, L) centred activations, then Y = zc b */
    double *y;    /* (m, L) */
    double *a;    /* (L, L) Y^T Y */
    double *vec;  /* (L, L) eigenvectors as rows */
    double *w;    /* (L) eigenvalues */
    double *mz;   /* (L) mean activations */
    double *v;    /* (dim) one component */
} latent_work;

static void latent_work_free(latent_work *lw)
{
    free(lw->pos), free(lw->q), free(lw->b), free(lw->zc), free(lw->y);
    free(lw->a), free(lw->vec), free(lw->w), free(lw->mz), free(lw->v);
}

static int latent_work_alloc(latent_work *lw, int n, int m, int L, int dim)
{
    assert(lw && n >= 1 && m >= 2 && L >= 1 && dim >= 1);
    size_t l = (size_t)L;
    lw->pos = malloc((size_t)n * sizeof *lw->pos);
    lw->q = calloc(l * dim, sizeof *lw->q);
    lw->b = calloc(l * l, sizeof *lw->b);
    lw->zc = calloc((size_t)m * l, sizeof *lw->zc);
    lw->y = malloc((size_t)m * l * sizeof *lw->y);
    lw->a = malloc(l * l * sizeof *lw->a);
    lw->vec = malloc(l * l * sizeof *lw->vec);
    lw->w = malloc(l * sizeof *lw->w);
    lw->mz = malloc(l * sizeof *lw->mz);
    lw->v = malloc((size_t)dim * sizeof *lw->v);
    if (!lw->pos || !lw->q || !lw->b || !lw->zc || !lw->y || !lw->a || !lw->vec || !lw->w || !lw->mz || !lw->v) {
        latent_work_free(lw);
        return ANALYSIS_ENOMEM;
    }
    return ANALYSIS_OK;
}

/* Eigen-decomposes Y^T Y and fills components, variances and coordinates. */
static int latent_solve(latent_work *lw, int m, int L, analysis_pca_result *r)
{
    assert(lw && r && r->components && m == r->m && L >= 1 && L <= ANALYSIS_EIG_MAX);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, L, L, 1.0, lw->zc, L, lw->b, L, 0.0, lw->y, L);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, L, m, 1.0, lw->y, L, lw->y, L, 0.0, lw->a, L);
    double trace = 0.0;
    for (int k = 0; k < L; k++)
        trace += lw->a[(size_t)k * L + k];
    int rc = analysis_sym_eig(lw->a, L, lw->w, lw->vec);
    for (int k = 0; k < r->c && k < L && !rc; k++) {
        const double *e = lw->vec + (size_t)k * L; /* (L) in the q basis */
        cblas_dgemv(CblasRowMajor, CblasTrans, L, r->dim, 1.0, lw->q, r->dim, e, 1, 0.0, lw->v, 1);
        int sign = pca_set_component(r, k, lw->w[k], lw->w[0], lw->v);
        for (int i = 0; i < m && sign; i++) {
            double s = 0.0;
            for (int j = 0; j < L; j++)
                s += lw->y[(size_t)i * L + j] * e[j];
            r->coords[(size_t)i * r->c + k] = (float)(sign * s);
        }
    }
    pca_ratios(r, trace);
    return rc;
}

int analysis_pca_latents(const analysis_csr *z, const int32_t *latents, int L, const float *W_dec,
                         const float *b_dec, int dim, int c, analysis_pca_result *out)
{
    assert(z && out);
    memset(out, 0, sizeof *out);
    int m = z->rows;
    if (L < 1 || dim < 1 || m < 2 || c < 1 || c > m || c > dim || (!z->val && z->nnz > 0))
        return ANALYSIS_EINVAL;
    assert(latents && W_dec && z->n >= 1 && z->row_ptr);
    assert(z->val || z->row_ptr[0] == z->row_ptr[z->rows]);
    if (L > ANALYSIS_EIG_MAX)
        return ANALYSIS_ETOOBIG;
    latent_work lw;
    int rc = latent_work_alloc(&lw, z->n, m, L, dim);
    if (rc)
        return rc;
    rc = latent_positions(latents, L, z->n, lw.pos);
    if (!rc)
        rc = pca_alloc(out, m, dim, c);
    if (!rc) {
        latent_basis(W_dec, latents, L, dim, lw.q, lw.b, lw.v);
        latent_centred(z, lw.pos, L, lw.zc, lw.mz);
        latent_mean(W_dec, b_dec, latents, L, lw.mz, out);
        rc = latent_solve(&lw, m, L, out);
    }
    latent_work_free(&lw);
    if (rc)
        analysis_pca_free(out);
    return rc;
}
