/* par_gemm — a row-major SGEMM split over a par_pool (design: include/par_gemm.h). */
#include "par_gemm.h"
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
    if (M <= 0 || N <= 0)
        return;
    par_run(pool, par_gemm_part, &g);
}
