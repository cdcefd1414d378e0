/* jobrun — the runner column of the job-type table and the train job.
 *
 * jobrun_dispatch finds a claimed job's type through the spec layer's table
 * (jobtype.h) and calls the runner built for it here from JOBTYPE_LIST.
 * The train job: dataset -> data source, spec -> configs, resume from the
 * last checkpoint if one exists, run the trainer with hooks that write
 * progress, metric points and checkpoints, then export the SAE
 * (jobrun_export.c: .npy, sae.safetensors, cfg.json) and record the
 * outcome. Hooks throttle their SQLite writes (progress every
 * JOBRUN_PROGRESS_S, the cancel flag read every JOBRUN_CANCEL_S), so the
 * training step never waits on the database for long. */
#include "jobrun.h"
#include "jobrun_export.h"
#include "circles.h"
#include "datasrc.h"
#include "files.h"
#include "idx.h"
#include "npyfile.h"
#include "spec.h"
#include "train.h"
#include <assert.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define JOBRUN_PROGRESS_S 0.5
#define JOBRUN_CANCEL_S 0.25

typedef struct {
    const jobrun_ctx *ctx;
    int batch_size;
    double last_progress, last_cancel; /* monotonic seconds */
    char ckpt_path[PATH_MAX];
    char err[512];                     /* why a hook aborted */
} jobrun_train_state;

typedef struct {
    circles *circ;       /* circles datasets */
    npyfile *npy;        /* npy datasets: the mmapped copy in data_dir/datasets/{id}/ */
    idx_dataset *idx;    /* idx datasets: the images, in memory */
    data_source src;
} jobrun_data;

static double jobrun_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void jobrun_spec_error(char *err, size_t n, const char *what, const spec_errors *errs)
{
    char text[400];
    spec_errors_text(errs, text, sizeof text);
    snprintf(err, n, "%s is invalid: %s", what, text);
}

void jobrun_path(const jobrun_ctx *ctx, const char *suffix, char *buf, size_t n)
{
    snprintf(buf, n, "%s/jobs/%lld%s%s", ctx->data_dir, (long long)ctx->job->id, suffix ? "/" : "", suffix ? suffix : "");
}

/* ---- what every runner shares: its end, progress and report ---- */

void jobrun_finish(const jobrun_ctx *ctx, jobrun_end end, const char *msg)
{
    assert(ctx && ctx->report && (end != JOBRUN_FAILED || msg));
    static const char *const what[] = { [JOBRUN_FAILED] = "its failure", [JOBRUN_CANCELLED] = "its cancellation",
                                        [JOBRUN_REQUEUED] = "its return to the queue" };
    int rc = end == JOBRUN_REQUEUED ? store_job_requeue(ctx->st, ctx->job->id)
             : store_job_finish(ctx->st, ctx->job->id, end == JOBRUN_FAILED ? JOB_FAILED : JOB_CANCELLED,
                                end == JOBRUN_FAILED ? msg : NULL);
    if (rc != STORE_OK) jobrun_warn(ctx, "recording %s failed: %s", what[end], store_errmsg(ctx->st));
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

static int jobrun_on_eval(void *arg, const train_metrics *m)
{
    jobrun_train_state *s = arg;
    store_metric p = { .step = m->step, .loss = m->loss, .mse = m->mse, .fve = m->fve, .l0 = m->l0,
                       .l0_groups = m->l0_groups, .dead_frac = m->dead_frac, .lr = m->lr,
                       .samples_per_s = m->samples_per_s };
    if (store_metric_append(s->ctx->st, s->ctx->job->id, &p) != STORE_OK) {
        snprintf(s->err, sizeof s->err, "cannot record metrics: %s", store_errmsg(s->ctx->st));
        return -1;
    }
    return 0;
}

static void jobrun_on_progress(void *arg, int step, int total, double sps)
{
    jobrun_train_state *s = arg;
    double now = jobrun_now();
    if (now - s->last_progress < JOBRUN_PROGRESS_S && step < total) return;
    s->last_progress = now;
    double eta = sps > 0 ? (double)(total - step) * s->batch_size / sps : -1;
    jobrun_progress(s->ctx, step, sps, eta);
}

static int jobrun_on_checkpoint(void *arg, train_state *ts)
{
    jobrun_train_state *s = arg;
    size_t n = train_checkpoint_size(ts);
    void *buf = malloc(n);
    if (!buf) { snprintf(s->err, sizeof s->err, "out of memory writing a checkpoint"); return -1; }
    train_checkpoint_write(ts, buf);
    files_part part = { buf, n };
    int rc = files_write_atomic(s->ckpt_path, &part, 1, s->err, sizeof s->err);
    free(buf);
    if (rc == 0) {
        s->ctx->report->checkpoints++;
        s->ctx->report->checkpoint_step = train_step_done(ts);
    }
    return rc;
}

static train_stop jobrun_should_stop(void *arg)
{
    jobrun_train_state *s = arg;
    if (atomic_load(s->ctx->stopping)) return TRAIN_SHUTDOWN;
    double now = jobrun_now();
    if (now - s->last_cancel < JOBRUN_CANCEL_S) return TRAIN_CONTINUE;
    s->last_cancel = now;
    int flag = 0;
    if (store_job_cancel_requested(s->ctx->st, s->ctx->job->id, &flag) == STORE_OK && flag) return TRAIN_CANCEL;
    return TRAIN_CONTINUE;
}

/* Resumes from data_dir/jobs/{id}/checkpoint.bin when it exists. */
static void jobrun_resume(jobrun_train_state *s, train_state *ts)
{
    void *buf;
    size_t n;
    char err[512];
    int rc = files_read_all(s->ckpt_path, &buf, &n, err, sizeof err);
    if (rc == 1) return;
    if (rc == 0 && train_checkpoint_restore(ts, buf, n, err, sizeof err) == 0)
        jobrun_note(s->ctx, "resumed from step %d", train_step_done(ts));
    else
        jobrun_warn(s->ctx, "checkpoint unusable (%s); started over", err);
    if (rc == 0) free(buf);
}

static json_t *jobrun_num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* Writes the SAE's files (jobrun_export.c), then records the SAE and the job's success in one transaction. */
static int jobrun_export(const jobrun_ctx *ctx, const train_state *ts, char *err, size_t errlen)
{
    const sae_config *c = &train_params(ts)->cfg;
    char dir[PATH_MAX];
    jobrun_path(ctx, "sae", dir, sizeof dir);
    if (files_mkdirs(dir, err, errlen)) return -1;
    json_t *spec = json_loads(ctx->job->spec_json, 0, NULL);
    if (jobrun_export_files(dir, ts, spec, (long long)ctx->job->id, (long long)ctx->job->dataset_id, err, errlen)) {
        json_decref(spec);
        return -1;
    }
    const train_metrics *m = train_last_metrics(ts);
    json_t *metrics = json_pack("{s:o,s:o,s:o,s:o,s:o}", "fve", jobrun_num(m->fve), "mse", jobrun_num(m->mse),
                                "l0", jobrun_num(m->l0), "l0_groups", jobrun_num(m->l0_groups),
                                "dead_frac", jobrun_num(m->dead_frac));
    char *cfg_json = json_dumps(spec ? json_object_get(spec, "sae") : NULL, JSON_COMPACT | JSON_SORT_KEYS);
    char *met_json = json_dumps(metrics, JSON_COMPACT);
    store_sae row = { .job_id = ctx->job->id, .dataset_id = ctx->job->dataset_id, .config_json = cfg_json,
                      .metrics_json = met_json, .dir = dir, .n_latents = c->n_latents, .dim = c->dim,
                      .group_size = c->group_size };
    int64_t sae_id = 0;
    int rc = cfg_json && met_json ? store_job_succeed_with_sae(ctx->st, ctx->job->id, &row, &sae_id) : STORE_ERROR;
    if (rc != STORE_OK) snprintf(err, errlen, "cannot record the finished SAE: %s", store_errmsg(ctx->st));
    free(cfg_json);
    free(met_json);
    json_decref(metrics);
    json_decref(spec);
    return rc == STORE_OK ? 0 : -1;
}

static void jobrun_finish_train(const jobrun_ctx *ctx, jobrun_train_state *s, train_state *ts, train_result r)
{
    char err[512];
    switch (r) {
    case TRAIN_DONE:
        if (jobrun_export(ctx, ts, err, sizeof err)) { jobrun_finish(ctx, JOBRUN_FAILED, err); return; }
        unlink(s->ckpt_path);
        return;
    case TRAIN_CANCELLED:
        jobrun_finish(ctx, JOBRUN_CANCELLED, NULL);
        unlink(s->ckpt_path);
        return;
    case TRAIN_INTERRUPTED:
        jobrun_finish(ctx, JOBRUN_REQUEUED, NULL);
        return;
    case TRAIN_ERROR:
        jobrun_finish(ctx, JOBRUN_FAILED, s->err[0] ? s->err : train_error(ts));
        return;
    }
}

void jobrun_train(const jobrun_ctx *ctx)
{
    char err[512], dir[PATH_MAX];
    jobrun_data data;
    sae_config sc;
    train_config tc;
    if (jobrun_open_data(ctx, &data, err, sizeof err)) { jobrun_finish(ctx, JOBRUN_FAILED, err); return; }
    jobrun_train_state s = { .ctx = ctx };
    train_state *ts = NULL;
    jobrun_path(ctx, NULL, dir, sizeof dir);
    spec_errors errs = { 0 };
    int bad = spec_train_configs(ctx->job->spec_json, data.src.dim, &sc, &tc, &errs);
    if (bad) jobrun_spec_error(err, sizeof err, "the stored job spec", &errs);
    tc.threads = ctx->threads > 0 ? ctx->threads : 1; /* the daemon's setting, not the job's */
    if (bad || files_mkdirs(dir, err, sizeof err) ||
        !(ts = train_create(&sc, &tc, &data.src, err, sizeof err))) {
        jobrun_finish(ctx, JOBRUN_FAILED, err);
        jobrun_close_data(&data);
        return;
    }
    s.batch_size = tc.batch_size;
    jobrun_path(ctx, "checkpoint.bin", s.ckpt_path, sizeof s.ckpt_path);
    jobrun_resume(&s, ts);
    train_hooks hooks = { .ctx = &s, .on_eval = jobrun_on_eval, .on_progress = jobrun_on_progress,
                          .on_checkpoint = jobrun_on_checkpoint, .should_stop = jobrun_should_stop };
    train_result r = train_run(ts, &hooks);
    jobrun_finish_train(ctx, &s, ts, r);
    train_free(ts);
    jobrun_close_data(&data);
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

/* ---- the dataset for the analysis jobs ---- */

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
