/* analysis_sparse — the shared pieces of the analysis module: sparse rows
 * (CSR) built from dense activations, error messages, sorted top-K lists,
 * quantiles and the deterministic sign convention.
 *
 * The CSR keeps its buffers between batches (capacity grows by doubling) so a
 * job can rebuild it per batch without reallocating. */
#include "analysis.h"
#include "core_assert.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *analysis_strerror(int code)
{
    switch (code) {
    case ANALYSIS_OK: return "ok";
    case ANALYSIS_ENOMEM: return "out of memory: analyse fewer samples or latents, or raise the memory limit";
    case ANALYSIS_EINVAL: return "argument out of range: check the latents, groups, rows and counts requested";
    case ANALYSIS_ETOOBIG:
        return "eigenproblem too large: use at most 512 rows or top_latents, or PCA over chosen latents";
    case ANALYSIS_ECALLBACK: return "the encode callback failed (out of memory?): retry with a smaller batch";
    default: return "unknown analysis error";
    }
}

void analysis_csr_init(analysis_csr *c)
{
    assert(c);
    memset(c, 0, sizeof *c);
}

void analysis_csr_free(analysis_csr *c)
{
    assert(c);
    free(c->row_ptr);
    free(c->idx);
    free(c->val);
    analysis_csr_init(c);
}

/* Grows c to hold rows rows and nnz entries (contents kept). */
static int csr_reserve(analysis_csr *c, int64_t rows, int64_t nnz)
{
    assert(c && rows >= 0 && nnz >= 0);
    assert(c->cap_rows >= 0 && c->cap_nnz >= 0);
    if (rows > c->cap_rows || !c->row_ptr) {
        int64_t *p = realloc(c->row_ptr, (size_t)(rows + 1) * sizeof *p);
        if (!p)
            return ANALYSIS_ENOMEM;
        c->row_ptr = p;
        c->cap_rows = rows;
    }
    if (nnz > c->cap_nnz) {
        int64_t cap = c->cap_nnz > 0 ? c->cap_nnz : 1024;
        while (cap < nnz)
            cap *= 2;
        int32_t *i = realloc(c->idx, (size_t)cap * sizeof *i);
        if (!i)
            return ANALYSIS_ENOMEM;
        c->idx = i;
        float *v = realloc(c->val, (size_t)cap * sizeof *v);
        if (!v)
            return ANALYSIS_ENOMEM;
        c->val = v;
        c->cap_nnz = cap;
    }
    return ANALYSIS_OK;
}

/* A latent fires when its code is non-zero: > 0 for the ReLU archs, either sign for subspace. */
static int fires(float v) { return v != 0.0f && isfinite(v); }

int analysis_csr_from_dense(analysis_csr *c, const float *z, int B, int n)
{
    assert(c);
    if (B < 0 || n < 1)
        return ANALYSIS_EINVAL;
    assert(z || B == 0);
    int64_t nnz = 0;
    for (size_t k = 0; k < (size_t)B * (size_t)n; k++)
        nnz += fires(z[k]);
    int rc = csr_reserve(c, B, nnz);
    if (rc)
        return rc;
    c->n = n;
    c->rows = B;
    c->nnz = 0;
    c->row_ptr[0] = 0;
    for (int r = 0; r < B; r++) {
        const float *zr = z + (size_t)r * n; /* (n) */
        for (int i = 0; i < n; i++)
            if (fires(zr[i])) {
                c->idx[c->nnz] = i;
                c->val[c->nnz++] = zr[i];
            }
        c->row_ptr[r + 1] = c->nnz;
    }
    assert(c->nnz == nnz && c->nnz <= c->cap_nnz); /* the two passes agree on what fires */
    return ANALYSIS_OK;
}

void analysis_topk_push(int32_t *idx, float *val, int K, int *len, int32_t j, float v)
{
    int m = *len;
    if (K < 1)
        return;
    if (m == K && (v < val[K - 1] || (v == val[K - 1] && j > idx[K - 1])))
        return;
    /* Called once per candidate in the neighbour scans: the asserts sit after the one-comparison
     * rejection that most candidates take, on the insertion path. */
    assert(idx && val && 0 <= m && m <= K);
    int pos = m < K ? m : K - 1;
    while (pos > 0 && (val[pos - 1] < v || (val[pos - 1] == v && idx[pos - 1] > j))) {
        idx[pos] = idx[pos - 1];
        val[pos] = val[pos - 1];
        pos--;
    }
    idx[pos] = j;
    val[pos] = v;
    if (m < K)
        *len = m + 1;
}

double analysis_quantile_sorted(const float *v, int n, double q)
{
    assert(v && n >= 1);
    assert(q >= 0.0 && q <= 1.0);
    if (n < 1)
        return 0.0;
    double pos = q * (n - 1);
    int lo = (int)floor(pos);
    if (lo < 0)
        lo = 0;
    if (lo >= n - 1)
        return v[n - 1];
    double f = pos - lo;
    return v[lo] + f * ((double)v[lo + 1] - v[lo]);
}

int analysis_sign_fix(float *v, int dim)
{
    assert(v && dim >= 1);
    int best = 0;
    for (int d = 1; d < dim; d++)
        if (fabsf(v[d]) > fabsf(v[best]))
            best = d;
    if (dim < 1 || !(v[best] < 0.0f))
        return 1;
    for (int d = 0; d < dim; d++)
        v[d] = -v[d];
    return -1;
}
