/* gradcheck — what the core's gradient tests share (tests/test_core.c,
 * test_archs_gj.c, test_archs_tk.c, and the random draws of test_ref*.c):
 * normal fills, a random untied SAE with its batch, and the central
 * finite-difference checker.
 *
 * The checker moves one parameter at a time by +-h (h = 1e-2) and asks the
 * test's loss callback for the loss there and the pattern (active latents,
 * selections, positive orth dots) the loss is smooth within; a parameter
 * whose pattern differs from the base point's at either end has a kink in
 * between and is skipped. The rest must satisfy
 * |fd - g| <= 1e-2 max(|fd|, |g|) + 1e-3. It counts, never CHECKs: check.h's
 * counters belong to each test binary, so the test CHECKs the stats. */
#ifndef SAED_TESTS_GRADCHECK_H
#define SAED_TESTS_GRADCHECK_H
#include "rng.h"
#include "sae.h"
#include <stddef.h>

void gradcheck_fill_normal(rng_t *r, float *a, size_t n, float scale);

/* Untied, unnormalised W_enc, b_enc, W_dec, b_dec (scales 0.6, 0.2, 0.5, 0.2) then the batch x (B, dim)
 * of scale xs, drawn from r (arch extras are left to the caller, who may go on drawing from r). */
void gradcheck_random_base(rng_t *r, sae_params *p, float *x, int B, float xs);

/* gradcheck_random_base from stream (seed, 0), with xs 1. */
void gradcheck_random_sae(sae_params *p, float *x, int B, uint64_t seed);

/* Writes (d_i . d_j > 0), the dot in float, for the decoder rows of each group: the pairs i < j, or with
 * all_pairs every ordered pair (i, j), i == j too. Returns how many it wrote. */
size_t gradcheck_orth_signs(const sae_params *p, int all_pairs, unsigned char *pat);

/* The loss at the parameters' current values; fills pat (the caller's pattern length). */
typedef double (*gradcheck_loss_fn)(void *ctx, unsigned char *pat);

typedef struct {
    int checked, skipped, bad;
    double worst_ratio;  /* max err/tol */
    double worst_abs;    /* max |fd - g| */
    double worst_rel;    /* max |fd - g| / max(|fd|, |g|, 1e-2) */
    double worst_rel_fd; /* max |fd - g| / |fd| over |fd| > 1e-2 */
} gradcheck_stats;

typedef struct {
    const char *name;       /* the case, in the lines for the first 5 misses */
    float *buf;             /* (n_params) the parameters, moved and restored in place */
    const float *grad;      /* (n_params) the analytic gradient at the base point */
    gradcheck_loss_fn loss;
    void *ctx;
    const unsigned char *pat0; /* (plen) the base point's pattern */
    size_t plen;
} gradcheck_job;

/* A group table from "0,4,7|1|2,3" (groups split by '|', members by ','; at most 64 groups of 256
 * latents in all) over n latents, or NULL (the reason on stderr). Free with sae_groups_free. */
struct sae_groups *gradcheck_groups(const char *spec, int n);

/* Checks parameters [k0, k1) of job, adding to st. */
void gradcheck_range(const gradcheck_job *job, size_t k0, size_t k1, gradcheck_stats *st);

#endif
