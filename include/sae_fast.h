/* sae_fast — the relu SAE's loss and gradient in blocks of latents, sparse
 * where the batch is sparse: the training core's fast path, for the
 * registry rows that set `fast` (include/sae_arch.h; the trainer reaches it
 * through include/sae_engine.h).
 *
 * The latents are cut into blocks of L (the batch's pre-activations for one
 * block, (B, L), take at most 16 MiB; L = 1024 at batch 4096), so nothing of
 * size (B, n) is allocated. The one dense product no SAE can skip (the
 * encoder's) is fused with what consumes it: each pool thread takes its
 * rows of the block R at a time (a tile (R, L) of at most 512 KiB, R = 128
 * at L = 1024), runs one single-threaded GEMM into the tile and scans it
 * while it is in its core's L2: bias, ReLU, group norms and threshold,
 * collecting the active latents (entries). The product's output never goes
 * to memory. Then each entry's z d_i is added to its row's reconstruction,
 * with the block's decoder rows in L2.
 * If every thread's rows hold at most SAE_FAST_DENSE_ABOVE * rows * L
 * entries the block is sparse; otherwise it is dense and its activations
 * and reconstruction go through GEMMs instead. So the path follows the
 * density measured in each block of each step.
 *
 * The backward pass, once the reconstruction error is known: a dense block
 * recomputes its pre-activations (one more GEMM: cheaper than keeping them)
 * and runs the arithmetic of sae_grad.c as GEMMs; the sparse blocks' entries
 * are counting-sorted by latent and each latent (its decoder row in L1)
 * walks the rows it fired on: dpre = dx . d_i + s, gW_dec[i] = sum z dx,
 * gencT[i] = sum dpre xc, then gencT (latent-major) is transposed into
 * grad's W_enc (dim, n). Blocks partition the latents, so every gradient
 * entry is written exactly once: nothing is zeroed first.
 *
 * Both paths compute the same function as sae_loss_grad (tests/test_fast.c
 * checks each against it, forced and chosen, and a batch that mixes them);
 * only the summation order differs. For a given pool size the result is
 * deterministic (work is split by thread index alone).
 *
 * Threading: everything runs on the pool (include/par.h; NULL meaning the
 * calling thread alone), the products as single-threaded BLAS calls per
 * thread (tiles, or par_sgemm's slabs: include/par_gemm.h). */
#ifndef SAED_SAE_FAST_H
#define SAED_SAE_FAST_H
#include "par.h"
#include "sae.h"

#define SAE_FAST_DENSE_ABOVE 0.05 /* entries / (rows * L) of a block above which it runs dense */

typedef enum { SAE_PATH_AUTO = 0, SAE_PATH_DENSE, SAE_PATH_SPARSE } sae_path;

/* Seconds spent in each phase, summed over calls (a clock read per phase: cheap). */
typedef enum {
    SAE_FAST_T_GEMM,     /* the encoder's tile GEMMs (forward; thread 0's share of the fused pass) */
    SAE_FAST_T_SCAN,     /* the rest of the fused pass: the scans */
    SAE_FAST_T_DECODE,   /* sparse reconstructions */
    SAE_FAST_T_DENSE,    /* dense blocks, forward and backward (GEMMs and passes) */
    SAE_FAST_T_ROWS,     /* xc, the error, b_dec's gradient */
    SAE_FAST_T_SORT,     /* the threshold's jump terms, sorting the entries by latent */
    SAE_FAST_T_LATENTS,  /* the latent-major backward */
    SAE_FAST_T_TRANSPOSE,/* gencT into grad's W_enc */
    SAE_FAST_T_ORTH,     /* the orthogonality term */
    SAE_FAST_N_PHASES
} sae_fast_phase;

typedef struct {
    long dense_blocks;  /* blocks run on the dense path, since creation */
    long sparse_blocks; /* blocks run on the sparse path */
    double density;     /* active latents / (rows * n) in the last call */
    double seconds[SAE_FAST_N_PHASES]; /* since creation */
} sae_fast_stats;

/* The phases' names ("gemm", "scan", ...), for reports. */
const char *sae_fast_phase_name(sae_fast_phase ph);

typedef struct sae_fast sae_fast;

/* Buffers for calls of up to max_rows rows; NULL when out of memory. block 0 picks L as above
 * (any other value is rounded up to a multiple of the group size). pool (not owned, may be
 * NULL) must outlive the object. */
sae_fast *sae_fast_create(const sae_config *c, int max_rows, int block, par_pool *pool);
void sae_fast_free(sae_fast *f);
/* Rows per encoder tile, at most the default (tests: several tiles per thread); 0 or -1. */
int sae_fast_set_tile_rows(sae_fast *f, int rows);
/* Forces a path (tests); SAE_PATH_AUTO (the default) chooses per block by density.
 * Forcing sparse grows the entry lists to max_rows * n; 0, or -1 when out of memory. */
int sae_fast_set_path(sae_fast *f, sae_path path);
sae_fast_stats sae_fast_get_stats(const sae_fast *f);
/* 0: calls add no time to stats.seconds (the trainer's evaluations); 1 (the default): they do. */
void sae_fast_set_timing(sae_fast *f, int on);
/* Bytes sae_fast_create(c, max_rows, 0, pool of `threads`) allocates. */
size_t sae_fast_bytes(const sae_config *c, int max_rows, int threads);

/* The contract of sae_loss_grad_pass for 1 <= B <= max_rows, p's configuration being the one f
 * was made for (the pass carries the threshold of the step): returns the loss, sets terms (if
 * non-NULL) and, if grad (n_params) is non-NULL, the gradient in the params layout. If fired (n)
 * is non-NULL, fired[i] is set to 1 for every latent with z > 0 in some row (others are left as
 * they are). pass->train and pass->dead do not change a relu pass. */
double sae_fast_loss_grad(sae_fast *f, const sae_params *p, const float *x, int B, const sae_pass *pass,
                          float *grad, unsigned char *fired, sae_loss_terms *terms);

#endif
