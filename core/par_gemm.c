/* par_gemm — a row-major SGEMM split over a par_pool (design: include/par_gemm.h). */
#include "par_gemm.h"
#include "core_assert.h"
#include <cblas.h>

typedef struct {
    int ta, tb, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
} par_gemm_job;

static void par_gemm_part(void *ctx, int t, int T)
{
    const par_gemm_job *g = ctx;
    CBLAS_TRANSPOSE ta = g->ta ? CblasTrans : CblasNoTrans, tb = g->tb ? CblasTrans : CblasNoTrans;
    size_t lo, hi;
    if (g->M >= g->N) { /* rows [lo, hi) of C: rows of op(A) */
        par_range((size_t)g->M, PAR_GEMM_ALIGN, t, T, &lo, &hi);
        if (hi > lo)
            cblas_sgemm(CblasRowMajor, ta, tb, (int)(hi - lo), g->N, g->K, g->alpha,
                        g->A + (g->ta ? lo : lo * (size_t)g->lda), g->lda, g->B, g->ldb, g->beta,
                        g->C + lo * (size_t)g->ldc, g->ldc);
        return;
    }
    par_range((size_t)g->N, PAR_GEMM_ALIGN, t, T, &lo, &hi); /* columns [lo, hi) of C: of op(B) */
    if (hi > lo)
        cblas_sgemm(CblasRowMajor, ta, tb, g->M, (int)(hi - lo), g->K, g->alpha, g->A, g->lda,
                    g->B + (g->tb ? lo * (size_t)g->ldb : lo), g->ldb, g->beta, g->C + lo, g->ldc);
}

void par_sgemm(par_pool *pool, int transA, int transB, int M, int N, int K, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    par_gemm_job g = {transA, transB, M, N, K, alpha, beta, A, B, C, lda, ldb, ldc};
    assert((transA == 0 || transA == 1) && (transB == 0 || transB == 1));
    assert(M >= 0 && N >= 0 && K >= 0);
    if (M <= 0 || N <= 0)
        return;
    /* BLAS's leading dimensions: A is stored (M, K), or (K, M) transposed; B (K, N) or (N, K); C (M, N). */
    assert(lda >= 1 && lda >= (transA ? M : K));
    assert(ldb >= 1 && ldb >= (transB ? K : N));
    assert(ldc >= 1 && ldc >= N);
    assert(C && (K == 0 || (A && B)));
    assert(core_disjoint(C, ((size_t)(M - 1) * ldc + (size_t)N) * sizeof *C, A,
                         K ? ((size_t)((transA ? K : M) - 1) * lda + (size_t)(transA ? M : K)) * sizeof *A : 0));
    assert(core_disjoint(C, ((size_t)(M - 1) * ldc + (size_t)N) * sizeof *C, B,
                         K ? ((size_t)((transB ? N : K) - 1) * ldb + (size_t)(transB ? K : N)) * sizeof *B : 0));
    par_run(pool, par_gemm_part, &g);
}
