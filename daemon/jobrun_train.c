/* jobrun_train — the train job: dataset -> data source (jobrun_dataset_open),
 * spec -> configs, resume from the last checkpoint if one exists, run the
 * trainer with hooks that write progress, metric points and checkpoints,
 * then export the SAE (jobrun_export.c: .npy, sae.safetensors, cfg.json)
 * and record the outcome. Hooks throttle their SQLite writes (progress every
 * JOBRUN_TRAIN_PROGRESS_S, the cancel flag read every JOBRUN_TRAIN_CANCEL_S),
 * so the training step never waits on the database for long. */
#include "jobrun.h"
#include "sae_arch.h"
#include "jobrun_export.h"
#include "artifacts.h"
#include "datasrc.h"
#include "files.h"
#include "spec.h"
#include "train.h"
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define JOBRUN_TRAIN_PROGRESS_S 0.5
#define JOBRUN_TRAIN_CANCEL_S 0.25

typedef struct {
    const jobrun_ctx *ctx;
    int batch_size;
    double last_progress, last_cancel; /* monotonic seconds */
    char ckpt_path[PATH_MAX];
    char err[512];                     /* why a hook aborted */
} jobrun_train_state;

static int jobrun_train_on_eval(void *arg, const train_metrics *m)
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

static void jobrun_train_on_progress(void *arg, int step, int total, double sps)
{
    jobrun_train_state *s = arg;
    double now = jobrun_now();
    if (now - s->last_progress < JOBRUN_TRAIN_PROGRESS_S && step < total) return;
    s->last_progress = now;
    double eta = sps > 0 ? (double)(total - step) * s->batch_size / sps : -1;
    jobrun_progress(s->ctx, step, sps, eta);
}

static int jobrun_train_on_checkpoint(void *arg, train_state *ts)
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

static train_stop jobrun_train_should_stop(void *arg)
{
    jobrun_train_state *s = arg;
    if (atomic_load(s->ctx->stopping)) return TRAIN_SHUTDOWN;
    double now = jobrun_now();
    if (now - s->last_cancel < JOBRUN_TRAIN_CANCEL_S) return TRAIN_CONTINUE;
    s->last_cancel = now;
    int flag = 0;
    if (store_job_cancel_requested(s->ctx->st, s->ctx->job->id, &flag) == STORE_OK && flag) return TRAIN_CANCEL;
    return TRAIN_CONTINUE;
}

/* Resumes from data_dir/jobs/{id}/checkpoint.bin when it exists. */
static void jobrun_train_resume(jobrun_train_state *s, train_state *ts)
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

/* spec init.from_sae: a run at step 0 of an arch that clusters decoder rows (subspace) starts its
 * groups from the planes SAE from_sae's rows cluster into (train_init_from_rows); any other arch
 * starts from that SAE's weights (train_init_from_params). A resumed run has them in its checkpoint.
 * 0, or -1 with err set. */
static int jobrun_train_init(const jobrun_ctx *ctx, train_state *ts, int64_t from_sae, char *err, size_t errlen)
{
    store_sae s = { 0 };
    sae_params p;
    if (!from_sae || train_step_done(ts) > 0) return 0;
    int rc = store_sae_get(ctx->st, from_sae, &s);
    if (rc != STORE_OK) {
        snprintf(err, errlen, "init.from_sae: SAE %lld %s", (long long)from_sae,
                 rc == STORE_NOTFOUND ? "was deleted before this job ran; submit it again with another SAE"
                                      : "cannot be read");
        return -1;
    }
    rc = artifacts_sae_load(&s, &p, err, errlen);
    store_sae_clear(&s);
    if (rc) return -1;
    int dim = train_params(ts)->cfg.dim;
    if (p.cfg.dim != dim) { /* checked when the job was submitted; the files say otherwise now */
        snprintf(err, errlen, "init.from_sae: SAE %lld reads rows of %d dimensions, this job's dataset %d",
                 (long long)from_sae, p.cfg.dim, dim);
        sae_params_free(&p);
        return -1;
    }
    const sae_config *c = &train_params(ts)->cfg;
    if (!sae_arch_of(c)->init_from_rows || c->groups) { /* a warm start from its weights */
        int rc2 = train_init_from_params(ts, &p, err, errlen);
        sae_params_free(&p);
        if (!rc2) jobrun_note(ctx, "starts from SAE %lld's weights", (long long)from_sae);
        return rc2;
    }
    int used = train_init_from_rows(ts, p.v.W_dec, p.cfg.n_latents, err, errlen);
    sae_params_free(&p);
    if (used < 0) return -1;
    jobrun_note(ctx, "%d groups start from the planes of SAE %lld's decoder rows", used, (long long)from_sae);
    return 0;
}

static json_t *jobrun_train_num(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* Writes the SAE's files (jobrun_train_export.c), then records the SAE and the job's success in one transaction. */
static int jobrun_train_export(const jobrun_ctx *ctx, const train_state *ts, char *err, size_t errlen)
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
    json_t *metrics = json_pack("{s:o,s:o,s:o,s:o,s:o}", "fve", jobrun_train_num(m->fve), "mse",
                                jobrun_train_num(m->mse), "l0", jobrun_train_num(m->l0), "l0_groups",
                                jobrun_train_num(m->l0_groups), "dead_frac", jobrun_train_num(m->dead_frac));
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

static void jobrun_train_finish(const jobrun_ctx *ctx, jobrun_train_state *s, train_state *ts, train_result r)
{
    char err[512];
    switch (r) {
    case TRAIN_DONE:
        if (jobrun_train_export(ctx, ts, err, sizeof err)) { jobrun_finish(ctx, JOBRUN_FAILED, err); return; }
        unlink(s->ckpt_path);
        return;
    case TRAIN_CANCELLED:
        jobrun_finish(ctx, JOBRUN_CANCELLED, NULL);
        unlink(s->ckpt_path);
        return;
    case TRAIN_INTERRUPTED:
        jobrun_finish(ctx, JOBRUN_REQUEUED, NULL);
        return;
    case TRAIN_ERROR: /* jobrun_finish removes the checkpoint of a failed job */
        jobrun_finish(ctx, JOBRUN_FAILED, s->err[0] ? s->err : train_error(ts));
        return;
    }
}

void jobrun_train(const jobrun_ctx *ctx)
{
    char err[512], dir[PATH_MAX];
    jobrun_dataset *ds = NULL;
    data_source src;
    sae_config sc;
    train_config tc;
    if (jobrun_dataset_open(ctx, &ds, &src, err, sizeof err)) { jobrun_finish(ctx, JOBRUN_FAILED, err); return; }
    jobrun_train_state s = { .ctx = ctx };
    train_state *ts = NULL;
    jobrun_path(ctx, NULL, dir, sizeof dir);
    spec_errors errs = { 0 };
    int64_t from_sae = 0;
    int bad = spec_train_configs(ctx->job->spec_json, src.dim, &sc, &tc, &from_sae, &errs);
    if (bad) jobrun_spec_error(err, sizeof err, "the stored job spec", &errs);
    tc.threads = ctx->threads > 0 ? ctx->threads : 1; /* the daemon's setting, not the job's */
    if (!bad && !files_mkdirs(dir, err, sizeof err)) ts = train_create(&sc, &tc, &src, err, sizeof err);
    if (!bad) spec_sae_release(&sc); /* the trainer keeps its own copy of a group table */
    if (!ts) {
        jobrun_finish(ctx, JOBRUN_FAILED, err);
        jobrun_dataset_close(ds);
        return;
    }
    s.batch_size = tc.batch_size;
    jobrun_path(ctx, "checkpoint.bin", s.ckpt_path, sizeof s.ckpt_path);
    jobrun_train_resume(&s, ts);
    if (jobrun_train_init(ctx, ts, from_sae, err, sizeof err)) {
        jobrun_finish(ctx, JOBRUN_FAILED, err);
        train_free(ts);
        jobrun_dataset_close(ds);
        return;
    }
    train_hooks hooks = { .ctx = &s, .on_eval = jobrun_train_on_eval, .on_progress = jobrun_train_on_progress,
                          .on_checkpoint = jobrun_train_on_checkpoint, .should_stop = jobrun_train_should_stop };
    train_result r = train_run(ts, &hooks);
    jobrun_train_finish(ctx, &s, ts, r);
    train_free(ts);
    jobrun_dataset_close(ds);
}
