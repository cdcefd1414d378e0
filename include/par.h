/* par — a fork-join pool for the trainer's products and element-wise passes.
 *
 * The trainer owns its threads: BLAS runs single-threaded inside them
 * (include/par_gemm.h), so the products are split over the pool like
 * everything between them (the sparse scan, the sparse backward, Adam, the
 * decoder renormalisation), which would otherwise run on one core while the
 * others wait. A par_pool has threads - 1 helper threads that sleep on a
 * condition variable between jobs (they never spin, so they steal no cycles
 * from another pool's or another process's threads);
 * par_run wakes them, runs part 0 on the caller and returns when every part
 * is done. Work is split by the callee from (t, T) alone, so a given T
 * always splits the same way and results are deterministic for a given T.
 * A pool of 1 thread (or a NULL pool) runs everything on the caller.
 * One pool belongs to one trainer; par_run is not reentrant. */
#ifndef SAED_PAR_H
#define SAED_PAR_H
#include <stddef.h>

typedef struct par_pool par_pool;

/* fn(ctx, t, T): part t of T, 0 <= t < T. */
typedef void (*par_fn)(void *ctx, int t, int T);

/* A pool of `threads` (>= 1) threads counting the caller; NULL when threads cannot be started. */
par_pool *par_create(int threads);
void par_free(par_pool *p);
/* Threads of the pool (1 for NULL). */
int par_threads(const par_pool *p);
/* Runs fn for t = 0 .. T-1 (T = par_threads(p)) and waits for all of them. */
void par_run(par_pool *p, par_fn fn, void *ctx);
/* [*lo, *hi): part t of T of the range [0, n), in contiguous pieces of `align` (the last may be short).
 * align >= 1, 0 <= t < T. */
void par_range(size_t n, size_t align, int t, int T, size_t *lo, size_t *hi);

#endif
