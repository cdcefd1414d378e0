/* jobrun — the runner column of the job-type table, and what every runner
 * shares.
 *
 * jobrun_dispatch finds a claimed job's type through the spec layer's table
 * (jobtype.h) and calls the runner built for it here from JOBTYPE_LIST; each
 * runner lives in its own file, jobrun_<type>.c. Shared: how a job ends
 * without a result (jobrun_finish: a failed job's checkpoint removed, a
 * failure for lack of disk told how to run it again), its progress, the
 * report the worker logs, and the job's dataset opened as a data source
 * (circles regenerated from their stored params, npy memory-mapped, idx read
 * into memory). */
#include "jobrun.h"
#include "circles.h"
#include "datasrc.h"
#include "idx.h"
#include "npyfile.h"
#include "spec.h"
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    circles *circ;       /* circles datasets */
    npyfile *npy;        /* npy datasets: the mmapped copy in data_dir/datasets/{id}/ */
    idx_dataset *idx;    /* idx datasets: the images, in memory */
    data_source src;
} jobrun_data;

void jobrun_spec_error(char *err, size_t n, const char *what, const spec_errors *errs)
{
    char text[400];
    spec_errors_text(errs, text, sizeof text);
    snprintf(err, n, "%s is invalid: %s", what, text);
}

double jobrun_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void jobrun_path(const jobrun_ctx *ctx, const char *suffix, char *buf, size_t n)
{
    snprintf(buf, n, "%s/jobs/%lld%s%s", ctx->data_dir, (long long)ctx->job->id, suffix ? "/" : "", suffix ? suffix : "");
}

/* ---- what every runner shares: its end, progress and report ---- */

/* 1 when msg is a failure for lack of disk (a write's ENOSPC or EDQUOT, SQLite's SQLITE_FULL). */
static int jobrun_no_space(const char *msg)
{
    return strstr(msg, strerror(ENOSPC)) || strstr(msg, strerror(EDQUOT)) || strstr(msg, "database or disk is full");
}

void jobrun_finish(const jobrun_ctx *ctx, jobrun_end end, const char *msg)
{
    assert(ctx && ctx->report && (end != JOBRUN_FAILED || msg));
    static const char *const what[] = { [JOBRUN_FAILED] = "its failure", [JOBRUN_CANCELLED] = "its cancellation",
                                        [JOBRUN_REQUEUED] = "its return to the queue" };
    char text[1024];
    if (end == JOBRUN_FAILED && jobrun_no_space(msg)) { /* not the job's fault: say how to run it again */
        snprintf(text, sizeof text, "%s; the data directory's file system is full: free space there (delete jobs "
                 "or datasets you no longer need; GET /v1/health shows what is free), then submit this job again "
                 "(POST /v1/jobs with its spec)", msg);
        msg = text;
    }
    int rc = end == JOBRUN_REQUEUED ? store_job_requeue(ctx->st, ctx->job->id)
             : store_job_finish(ctx->st, ctx->job->id, end == JOBRUN_FAILED ? STORE_JOB_FAILED : STORE_JOB_CANCELLED,
                                end == JOBRUN_FAILED ? msg : NULL);
    if (rc != STORE_OK) jobrun_warn(ctx, "recording %s failed: %s", what[end], store_errmsg(ctx->st));
    if (end == JOBRUN_FAILED) { /* a failed job is never resumed: its checkpoint would only take disk */
        char path[PATH_MAX];
        jobrun_path(ctx, "checkpoint.bin", path, sizeof path);
        unlink(path);
    }
}

void jobrun_progress(const jobrun_ctx *ctx, int step, double samples_per_s, double eta_s)
{
    assert(ctx && ctx->report && step >= 0);
    if (store_job_progress(ctx->st, ctx->job->id, step, samples_per_s, eta_s) != STORE_OK)
        jobrun_warn(ctx, "progress not recorded: %s", store_errmsg(ctx->st));
}

void jobrun_note(const jobrun_ctx *ctx, const char *fmt, ...)
{
    assert(ctx && ctx->report && fmt);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->report->note, sizeof ctx->report->note, fmt, ap);
    va_end(ap);
}

void jobrun_warn(const jobrun_ctx *ctx, const char *fmt, ...)
{
    assert(ctx && ctx->report && fmt);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->report->warning, sizeof ctx->report->warning, fmt, ap);
    va_end(ap);
    ctx->report->n_warnings++;
}

/* data_dir/datasets/{id}/{ds->path}: where npy and idx datasets keep their data file (api/datasets_int.h). */
static int jobrun_dataset_file(const jobrun_ctx *ctx, const store_dataset *ds, char *buf, size_t n, char *err,
                               size_t errlen)
{
    if (!ds->path || !*ds->path || strchr(ds->path, '/')) {
        snprintf(err, errlen, "dataset %lld has no data file recorded; import it again", (long long)ds->id);
        return -1;
    }
    snprintf(buf, n, "%s/datasets/%lld/%s", ctx->data_dir, (long long)ds->id, ds->path);
    return 0;
}

static int jobrun_open_file_data(const jobrun_ctx *ctx, const store_dataset *ds, jobrun_data *d, char *err,
                                 size_t errlen)
{
    char path[PATH_MAX], msg[512];
    if (jobrun_dataset_file(ctx, ds, path, sizeof path, err, errlen)) return -1;
    int npy = !strcmp(ds->kind, "npy");
    if (npy ? npyfile_open(path, &d->npy, msg, sizeof msg) : idx_load(path, NULL, &d->idx, msg, sizeof msg)) {
        snprintf(err, errlen, "dataset %lld: %s", (long long)ds->id, msg);
        return -1;
    }
    if (npy) npyfile_source(&d->src, d->npy);
    else idx_source(&d->src, d->idx);
    return 0;
}

/* Opens the job's dataset as a data source. 0, or -1 with err set. */
static int jobrun_open_data(const jobrun_ctx *ctx, jobrun_data *d, char *err, size_t errlen)
{
    store_dataset ds;
    memset(d, 0, sizeof *d);
    if (store_dataset_get(ctx->st, ctx->job->dataset_id, &ds) != STORE_OK) {
        snprintf(err, errlen, "dataset %lld no longer exists", (long long)ctx->job->dataset_id);
        return -1;
    }
    int rc = -1;
    if (!strcmp(ds.kind, "circles")) {
        circles_params cp;
        spec_errors errs = { 0 };
        if (spec_circles_params(ds.params_json, &cp, &errs)) {
            jobrun_spec_error(err, errlen, "the dataset's stored params", &errs);
        } else {
            d->circ = circles_create(&cp);
            if (d->circ) { datasrc_from_circles(&d->src, d->circ); rc = 0; }
            else snprintf(err, errlen, "cannot build circles dataset %lld (out of memory?)", (long long)ds.id);
        }
    } else if (!strcmp(ds.kind, "npy") || !strcmp(ds.kind, "idx")) {
        rc = jobrun_open_file_data(ctx, &ds, d, err, errlen);
    } else {
        snprintf(err, errlen, "datasets of kind '%s' cannot be trained on by this version", ds.kind);
    }
    store_dataset_clear(&ds);
    return rc;
}

static void jobrun_close_data(jobrun_data *d)
{
    circles_free(d->circ);
    npyfile_close(d->npy);
    idx_free(d->idx);
}

/* The runner column of the job-type table (jobtype.h), indexed by jobtype_id. */
static void (*const jobrun_runners[JOBTYPE_N])(const jobrun_ctx *ctx) = {
#define JOBRUN_RUNNER(name) [JOBTYPE_##name] = jobrun_##name,
    JOBTYPE_LIST(JOBRUN_RUNNER)
#undef JOBRUN_RUNNER
};

void jobrun_dispatch(const jobrun_ctx *ctx)
{
    char msg[128];
    int id = jobtype_find(ctx->job->type);
    if (id >= 0) { jobrun_runners[id](ctx); return; }
    snprintf(msg, sizeof msg, "job type '%s' is not supported by this version of saed", ctx->job->type);
    jobrun_finish(ctx, JOBRUN_FAILED, msg);
}

/* ---- the dataset, for every job type ---- */

struct jobrun_dataset {
    jobrun_data d;
};

int jobrun_dataset_open(const jobrun_ctx *ctx, jobrun_dataset **out, data_source *src, char *err, size_t errlen)
{
    *out = malloc(sizeof **out);
    if (!*out) {
        snprintf(err, errlen, "out of memory opening dataset %lld", (long long)ctx->job->dataset_id);
        return -1;
    }
    if (jobrun_open_data(ctx, &(*out)->d, err, errlen)) {
        free(*out);
        *out = NULL;
        return -1;
    }
    *src = (*out)->d.src;
    return 0;
}

void jobrun_dataset_close(jobrun_dataset *d)
{
    if (!d) return;
    jobrun_close_data(&d->d);
    free(d);
}
