/* worker — the fixed pool of threads that claim jobs from SQLite and run them.
 *
 * Each worker owns a store handle, polls SQLite for queued jobs (every
 * WORKER_POLL_MS; the API only writes job rows, it never talks to workers),
 * and runs one job at a time through its runner (jobrun.h), logging what
 * the runner reports when it returns: the daemon's only log lines besides
 * main's. Cancellation is read from the job
 * row between steps; shutdown checkpoints the running job and requeues it.
 * Artifacts: data_dir/jobs/{id}/checkpoint.bin while training,
 * data_dir/jobs/{id}/sae/{decoder,encoder,b_enc,b_dec}.npy when it succeeds. */
#ifndef SAED_WORKER_H
#define SAED_WORKER_H
#include <stddef.h>

#define WORKER_POLL_MS 200

typedef struct {
    const char *db_path;
    const char *data_dir;
    int n_workers;        /* >= 1 */
    int threads;          /* >= 1: a trainer's pool per worker (and BLAS's threads) */
    int nice;             /* 0-19: each worker thread's niceness (its pool threads inherit it) */
} worker_config;

typedef struct worker_pool worker_pool;

worker_pool *worker_pool_start(const worker_config *cfg, char *err, size_t errlen);
/* Asks running jobs to checkpoint and requeue, joins the threads, frees. */
void worker_pool_stop(worker_pool *p);

#endif
