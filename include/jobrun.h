/* jobrun — running one claimed job: the runner column of the job-type
 * table (jobtype.h), one runner per row of JOBTYPE_LIST: train
 * (daemon/jobrun.c), analyze (jobrun_analyze.c) and pca (jobrun_pca.c).
 * A runner records its own outcome in the store (succeeded with its result,
 * failed with a readable error, cancelled, or requeued at shutdown); the
 * worker pool only claims and dispatches. */
#ifndef SAED_JOBRUN_H
#define SAED_JOBRUN_H
#include <stdatomic.h>
#include "jobtype.h"
#include "store.h"

typedef struct {
    store *st;                   /* the worker's own connection */
    const char *data_dir;        /* artifacts under data_dir/jobs/{id}/ */
    const store_job *job;        /* the claimed job (state running) */
    const atomic_int *stopping;  /* set when the daemon shuts down */
    int threads;                 /* the trainer's pool (train.threads) */
} jobrun_ctx;

/* The runners, jobrun_<type> for each row of JOBTYPE_LIST: a row without
 * its runner is a link error. */
#define JOBRUN_DECLARE(name) void jobrun_##name(const jobrun_ctx *ctx);
JOBTYPE_LIST(JOBRUN_DECLARE)
#undef JOBRUN_DECLARE
/* Finds job->type's runner through the table and runs it; a type this
 * version does not run fails the job with a message. */
void jobrun_dispatch(const jobrun_ctx *ctx);
/* "<what> is invalid: <field>: <message>" into err, for a stored spec or
 * dataset params the spec layer refused (errs): the job's failure message. */
void jobrun_spec_error(char *err, size_t n, const char *what, const spec_errors *errs);
/* data_dir/jobs/{id}[/suffix] into buf. */
void jobrun_path(const jobrun_ctx *ctx, const char *suffix, char *buf, size_t n);

/* The job's dataset (job->dataset_id) opened as a data source for any job
 * type, through the same code as training: *src is valid until
 * jobrun_dataset_close(*out). 0, or -1 with err set. */
typedef struct jobrun_dataset jobrun_dataset;
struct data_source;
int jobrun_dataset_open(const jobrun_ctx *ctx, jobrun_dataset **out, struct data_source *src, char *err,
                        size_t errlen);
void jobrun_dataset_close(jobrun_dataset *d);

#endif
