/* jobrun — running one claimed job: the runner column of the job-type
 * table (jobtype.h), one runner per row of JOBTYPE_LIST, each in its own file
 * daemon/jobrun_<type>.c: train, analyze, pca and groupspace; daemon/jobrun.c holds the
 * table and what the runners share.
 *
 * The daemon's one error style: a runner records its job's outcome in the
 * store (succeeded with its result, in the transaction that writes it;
 * failed with a readable error, cancelled or requeued at shutdown through
 * jobrun_finish) and never logs. What the operator should see about the
 * run (a resume, a checkpoint, a store write that failed while the job went
 * on) goes into ctx->report, which the worker pool logs when the runner
 * returns; the pool only claims, dispatches and logs. */
#ifndef SAED_JOBRUN_H
#define SAED_JOBRUN_H
#include <stdatomic.h>
#include "jobtype.h"
#include "store.h"

/* What a run leaves for the worker to log (runners never log). */
typedef struct {
    char note[256];              /* one line about the run, e.g. "resumed from step 1200"; "" if none */
    int n_warnings;              /* things that went wrong while the job went on (or in recording its end) */
    char warning[320];           /* the last of them */
    int checkpoints;             /* checkpoints written */
    int checkpoint_step;         /* the step of the last one */
} jobrun_report;

typedef struct {
    store *st;                   /* the worker's own connection */
    const char *data_dir;        /* artifacts under data_dir/jobs/{id}/ */
    const store_job *job;        /* the claimed job (state running) */
    const atomic_int *stopping;  /* set when the daemon shuts down */
    int threads;                 /* the trainer's pool (train.threads) */
    jobrun_report *report;       /* the worker's, zeroed; the runner fills it in */
} jobrun_ctx;

/* How a job ends without a result. */
typedef enum { JOBRUN_FAILED, JOBRUN_CANCELLED, JOBRUN_REQUEUED } jobrun_end;

/* The runners, jobrun_<type> for each row of JOBTYPE_LIST: a row without
 * its runner is a link error. */
#define JOBRUN_DECLARE(name) void jobrun_##name(const jobrun_ctx *ctx);
JOBTYPE_LIST(JOBRUN_DECLARE)
#undef JOBRUN_DECLARE
/* Finds job->type's runner through the table and runs it; a type this
 * version does not run fails the job with a message. */
void jobrun_dispatch(const jobrun_ctx *ctx);
/* Records a job that ends without a result: failed with msg as its error,
 * cancelled, or back in the queue (shutdown). A failed job's checkpoint is
 * removed, and a failure for lack of disk gets what to do added to msg
 * (free space, submit again). A failed write is a warning in the report. */
void jobrun_finish(const jobrun_ctx *ctx, jobrun_end end, const char *msg);
/* The job's progress in the store; a failed write is a warning in the report
 * (the job goes on). */
void jobrun_progress(const jobrun_ctx *ctx, int step, double samples_per_s, double eta_s);
/* The report's note, and a warning (counted; the last one kept). */
void jobrun_note(const jobrun_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jobrun_warn(const jobrun_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "<what> is invalid: <field>: <message>" into err, for a stored spec or
 * dataset params the spec layer refused (errs): the job's failure message. */
void jobrun_spec_error(char *err, size_t n, const char *what, const spec_errors *errs);
/* CLOCK_MONOTONIC in seconds: what runners time progress, ETAs and polls by. */
double jobrun_now(void);
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
