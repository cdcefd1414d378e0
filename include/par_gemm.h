/* par_gemm — a row-major single-precision GEMM split over a par_pool.
 *
 * The trainer owns its threads (include/par.h): BLAS runs single-threaded
 * inside them (the daemon and make bench call openblas_set_num_threads(1)),
 * so a pass can run a product on a tile and consume the tile while it is in
 * cache on the same core (sae_fast's encoder). Products that are not fused
 * with anything go through par_sgemm, which cuts C into one slab per
 * thread and runs one single-threaded cblas_sgemm per slab.
 *
 * The slabs are rows of C when M >= N, else columns, in pieces of
 * PAR_GEMM_ALIGN, decided from (M, N, T) alone: for a given pool size the
 * split, hence every float of C, is the same on every call. BLAS with more
 * threads still gives the right answer, only slower. */
#ifndef SAED_PAR_GEMM_H
#define SAED_PAR_GEMM_H
#include "par.h"

#define PAR_GEMM_ALIGN 16

/* C (M, N) = alpha op(A) op(B) + beta C, row-major, as cblas_sgemm(CblasRowMajor, ...) with
 * transA/transB 0 (no transpose) or 1 (transpose): op(A) is (M, K), op(B) is (K, N).
 * pool may be NULL (the calling thread alone). M, N, K >= 0; lda, ldb, ldc at least 1 and at least
 * the row length of A, B, C as stored (BLAS's rule); C must not overlap A or B. */
void par_sgemm(par_pool *pool, int transA, int transB, int M, int N, int K, float alpha, const float *A,
               int lda, const float *B, int ldb, float beta, float *C, int ldc);

#endif
