/* jobrun — running one claimed job of each type (train now; analyze, pca,
 * groupspace later). A runner records its own outcome in the store
 * (succeeded with its result, failed with a readable error, cancelled, or
 * requeued at shutdown); the worker pool only claims and dispatches. */
#ifndef SAED_JOBRUN_H
#define SAED_JOBRUN_H
#include <stdatomic.h>
#include "store.h"

typedef struct {
    store *st;                   /* the worker's own connection */
    const char *data_dir;        /* artifacts under data_dir/jobs/{id}/ */
    const store_job *job;        /* the claimed job (state running) */
    const atomic_int *stopping;  /* set when the daemon shuts down */
    int threads;                 /* the trainer's pool (train.threads) */
} jobrun_ctx;

void jobrun_train(const jobrun_ctx *ctx);
/* Dispatches on job->type; an unknown type fails the job with a message. */
void jobrun_dispatch(const jobrun_ctx *ctx);
/* data_dir/jobs/{id}[/suffix] into buf. */
void jobrun_path(const jobrun_ctx *ctx, const char *suffix, char *buf, size_t n);

/* The analysis jobs (daemon/jobrun_analyze.c, daemon/jobrun_pca.c). */
void jobrun_analyze(const jobrun_ctx *ctx);
void jobrun_pca(const jobrun_ctx *ctx);
/* The job's dataset (job->dataset_id) opened as a data source for any job
 * type, through the same code as training: *src is valid until
 * jobrun_dataset_close(*out). 0, or -1 with err set. */
typedef struct jobrun_dataset jobrun_dataset;
struct data_source;
int jobrun_dataset_open(const jobrun_ctx *ctx, jobrun_dataset **out, struct data_source *src, char *err,
                        size_t errlen);
void jobrun_dataset_close(jobrun_dataset *d);

#endif
