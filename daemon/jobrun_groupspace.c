/* jobrun_groupspace — the groupspace job: positions for N items learned from
 * co-occurring sets (core/groupspace.c), snapshots while training, and the
 * groups read off the final positions.
 *
 * Sets: the toy draws fresh sets every step (its statistics, for the
 * jaccard and npmi weights, come from a sample of GROUPSPACE_TOY_STATS sets
 * drawn once, only when a weighting needs them); explicit sets and an analysis's rows (each row's firing
 * latents, from the latent-major firing.bin inverted to rows; empty rows
 * dropped) are a corpus drawn from uniformly, and are their own statistics.
 * lr decays linearly to 0. The run is a pure function of the spec (seeded),
 * so a job requeued at shutdown or after a crash simply runs again.
 *
 * Files in data_dir/jobs/{id}/: positions.npy (N, dim) the final positions,
 * positions-{step}.npy (N, dim) each snapshot, groups.json {"groups":[[i,..],..]}.
 * Metrics (every ~1/200 of the steps): loss = mean L(S) per set over the
 * interval, lr, samples_per_s = sets per second; the SAE fields are null.
 * The result: {"items","dim","snapshots":[steps],"n_groups","group_sizes":
 * {"size":count},"radius":{...},"history":[{step,...}],"truth":{...} (toy)}. */
#include "jobrun.h"
#include "artifacts.h"
#include "files.h"
#include "groupspace.h"
#include "spec_groupspace.h"
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GROUPSPACE_TOY_STATS 20000     /* toy sets sampled for the co-occurrence statistics */
#define GROUPSPACE_POLL_S 0.5          /* progress and the cancel flag at most this often */
#define GROUPSPACE_METRIC_POINTS 200   /* metric points over a run */
#define GROUPSPACE_RADIUS_BINS 20
#define GROUPSPACE_SAMPLED_PAIRS 1000000

typedef struct {
    const jobrun_ctx *ctx;
    spec_groupspace spec;
    groupspace_sets corpus;     /* explicit sets, the analysis's rows, or the toy's statistics sample */
    groupspace_cooc *cooc;      /* NULL for count weights without min_jaccard */
    float *pos;                 /* (N, dim) */
    int32_t *setbuf;            /* (N) */
    int32_t *truth;             /* (N) the toy's pair of each item, else NULL */
    groupspace_work work;
    json_t *history;            /* [{step, ...}] one per snapshot */
    json_t *snapshots;          /* [step, ...] */
    char dir[PATH_MAX];
    char err[512];
} jobrun_groupspace_job;

/* ---- the sets ---- */

/* The analysis's firing pattern (latent-major) turned into rows: each row's firing latents. */
static int jobrun_groupspace_rows(jobrun_groupspace_job *j)
{
    store_sae_analysis a;
    char path[PATH_MAX + 16];
    if (store_sae_analysis_get(j->ctx->st, j->spec.sae, &a) != STORE_OK) {
        snprintf(j->err, sizeof j->err, "SAE %lld has no analysis any more; run an analyze job again",
                 (long long)j->spec.sae);
        return -1;
    }
    snprintf(path, sizeof path, "%s/firing.bin", a.dir ? a.dir : "");
    store_sae_analysis_clear(&a);
    artifacts_table *t;
    if (artifacts_table_open(path, ARTIFACTS_FIRING_MAGIC, sizeof(int32_t), &t, j->err, sizeof j->err)) return -1;
    int64_t rows = (int64_t)artifacts_table_aux(t), total = 0;
    int64_t *ptr = calloc((size_t)rows + 1, sizeof *ptr);
    const int32_t *ids;
    int bad = 0;
    for (int i = 0; ptr && i < j->spec.n_items; i++) {
        int64_t n = artifacts_table_get(t, i, (const void **)&ids);
        for (int64_t e = 0; e < n; e++) {
            bad |= ids[e] < 0 || ids[e] >= rows;
            if (!bad) ptr[ids[e] + 1]++, total++;
        }
    }
    if (bad) {
        snprintf(j->err, sizeof j->err, "SAE %lld's firing pattern names rows the analysis did not have; run the analyze job again", (long long)j->spec.sae);
        free(ptr);
        artifacts_table_close(t);
        return -1;
    }
    int32_t *items = ptr ? malloc((size_t)(total > 0 ? total : 1) * sizeof *items) : NULL;
    int rc = -1;
    if (items) {
        for (int64_t r = 0; r < rows; r++) ptr[r + 1] += ptr[r];
        for (int i = 0; i < j->spec.n_items; i++) { /* latents in increasing order: each row's list stays sorted */
            int64_t n = artifacts_table_get(t, i, (const void **)&ids);
            for (int64_t e = 0; e < n; e++) items[ptr[ids[e]]++] = i;
        }
        for (int64_t r = rows; r > 0; r--) ptr[r] = ptr[r - 1]; /* the fill moved each start to the next row's */
        ptr[0] = 0;
        int64_t kept = 0; /* drop rows where nothing fired: their items are already contiguous, so only
                           * ptr moves down (in place: the write index never passes the read index) */
        for (int64_t r = 0; r < rows; r++)
            if (ptr[r + 1] > ptr[r]) ptr[++kept] = ptr[r + 1];
        int64_t widest = 0;
        for (int64_t r = 0; r < kept; r++) widest = ptr[r + 1] - ptr[r] > widest ? ptr[r + 1] - ptr[r] : widest;
        if (widest > GROUPSPACE_MAX_SET) {
            snprintf(j->err, sizeof j->err, "an analysed row of SAE %lld has %lld firing latents; a set holds at most "
                     "%d: use a sparser SAE", (long long)j->spec.sae, (long long)widest, GROUPSPACE_MAX_SET);
            free(ptr), free(items);
            artifacts_table_close(t);
            return -1;
        }
        rc = groupspace_sets_build(&j->corpus, j->spec.n_items, kept, ptr, items);
        if (rc) snprintf(j->err, sizeof j->err, "the analysis's rows: %s", groupspace_strerror(rc));
        else if (kept == 0) snprintf(j->err, sizeof j->err, "no latent fired on the analysed rows"), rc = -1;
    } else {
        snprintf(j->err, sizeof j->err, "out of memory reading the firing pattern");
    }
    free(ptr);
    free(items);
    artifacts_table_close(t);
    return rc ? -1 : 0;
}

static int jobrun_groupspace_sets(jobrun_groupspace_job *j)
{
    const spec_groupspace *g = &j->spec;
    int rc = 0;
    int stats = g->cfg.weight != GROUPSPACE_WEIGHT_COUNT || g->cfg.min_jaccard > 0;
    if (g->source == SPEC_GROUPSPACE_TOY) {
        if (stats) rc = groupspace_toy_corpus(&j->corpus, g->n_items, g->toy_p, GROUPSPACE_TOY_STATS, g->seed);
        if (!rc && !(j->truth = malloc((size_t)g->n_items * sizeof *j->truth))) rc = GROUPSPACE_ENOMEM;
        for (int i = 0; !rc && i < g->n_items; i++) j->truth[i] = i / 2;
    } else if (g->source == SPEC_GROUPSPACE_EXPLICIT) {
        rc = groupspace_sets_build(&j->corpus, g->n_items, g->n_sets, g->ptr, g->items);
    } else if (jobrun_groupspace_rows(j)) {
        return -1;
    }
    if (!rc && stats) rc = groupspace_cooc_build(&j->corpus, &j->cooc);
    if (rc) snprintf(j->err, sizeof j->err, "the sets: %s", groupspace_strerror(rc));
    return rc ? -1 : 0;
}

/* ---- snapshots ---- */

static int jobrun_groupspace_write(jobrun_groupspace_job *j, const char *name)
{
    char path[PATH_MAX + 64];
    long long shape[2] = { j->spec.n_items, j->spec.cfg.dim };
    snprintf(path, sizeof path, "%s/%s", j->dir, name);
    return files_write_npy_f32(path, j->pos, shape, 2, j->err, sizeof j->err);
}

static json_t *jobrun_groupspace_radius_json(const jobrun_groupspace_job *j, int with_hist)
{
    int64_t hist[GROUPSPACE_RADIUS_BINS];
    groupspace_radius r;
    groupspace_radius_profile(j->pos, j->spec.n_items, j->spec.cfg.dim, GROUPSPACE_RADIUS_BINS, hist, &r);
    json_t *o = json_pack("{s:f,s:f,s:f,s:f,s:f}", "mean", r.mean, "std", r.std, "cv", r.cv, "max", r.max,
                          "inner_frac", r.inner_frac);
    if (with_hist) {
        json_t *h = json_array();
        for (int b = 0; b < GROUPSPACE_RADIUS_BINS; b++) json_array_append_new(h, json_integer(hist[b]));
        json_object_set_new(o, "hist", h);
    }
    return o;
}

static json_t *jobrun_groupspace_truth_json(const jobrun_groupspace_job *j)
{
    groupspace_pairs p;
    rng_t r;
    rng_seed(&r, j->spec.seed, 0x7472757468ULL);
    if (!j->truth || groupspace_pair_stats(j->pos, j->spec.n_items, j->spec.cfg.dim, j->truth, j->spec.cfg.near,
                                           j->spec.cfg.far, GROUPSPACE_SAMPLED_PAIRS, &r, &p))
        return json_null();
    return json_pack("{s:I,s:f,s:I,s:f,s:f}", "true_pairs", (json_int_t)p.true_pairs, "true_near_frac",
                     p.true_pairs ? (double)p.true_near / p.true_pairs : 0.0, "other_pairs",
                     (json_int_t)p.other_pairs, "other_far_frac",
                     p.other_pairs ? (double)p.other_far / p.other_pairs : 0.0, "true_mean_dist", p.true_mean_dist);
}

/* Snapshot at step: its file, and a history entry with the interval's terms. */
static int jobrun_groupspace_snapshot(jobrun_groupspace_job *j, int step, const groupspace_terms *t, int64_t sets)
{
    char name[64];
    snprintf(name, sizeof name, "positions-%d.npy", step);
    if (jobrun_groupspace_write(j, name)) return -1;
    double n = sets > 0 ? (double)sets : 1;
    json_t *h = json_pack("{s:i,s:f,s:f,s:f,s:f,s:o,s:o}", "step", step, "attract", t->attract / n, "repel",
                          t->repel / n, "pairs_far_frac", t->pairs ? (double)t->pairs_far / t->pairs : 0.0,
                          "negs_near_frac", t->negs ? (double)t->negs_near / t->negs : 0.0, "radius",
                          jobrun_groupspace_radius_json(j, 0), "truth", jobrun_groupspace_truth_json(j));
    json_array_append_new(j->history, h);
    json_array_append_new(j->snapshots, json_integer(step));
    return 0;
}

/* ---- training ---- */

/* Progress, a metric point, the cancel flag: 1 cancel, 2 shutdown, 0 go on. */
static int jobrun_groupspace_poll(jobrun_groupspace_job *j, int step, double t0, double *last)
{
    const jobrun_ctx *ctx = j->ctx;
    if (atomic_load(ctx->stopping)) return 2;
    double now = jobrun_now();
    if (now - *last < GROUPSPACE_POLL_S && step < j->spec.steps) return 0;
    *last = now;
    double sps = now > t0 ? (double)step * j->spec.batch / (now - t0) : 0;
    jobrun_progress(ctx, step, sps, sps > 0 ? (double)(j->spec.steps - step) * j->spec.batch / sps : -1);
    int flag = 0;
    return store_job_cancel_requested(ctx->st, ctx->job->id, &flag) == STORE_OK && flag;
}

/* A metric point: loss = the interval's summed L(S) over its sets. */
static void jobrun_groupspace_metric(jobrun_groupspace_job *j, int step, float lr, double loss, int64_t sets,
                                     double sps)
{
    store_metric m = { .step = step, .loss = sets ? loss / (double)sets : NAN, .mse = NAN,
                       .fve = NAN, .l0 = NAN, .l0_groups = NAN, .dead_frac = NAN, .lr = lr, .samples_per_s = sps };
    if (store_metric_append(j->ctx->st, j->ctx->job->id, &m) != STORE_OK)
        jobrun_warn(j->ctx, "metrics not recorded: %s", store_errmsg(j->ctx->st));
}

static void jobrun_groupspace_terms_add(groupspace_terms *dst, const groupspace_terms *t)
{
    dst->attract += t->attract, dst->repel += t->repel, dst->pairs += t->pairs, dst->pairs_far += t->pairs_far;
    dst->negs += t->negs, dst->negs_near += t->negs_near;
}

/* 0 done, 1 cancelled, 2 shutdown, -1 failed. */
static int jobrun_groupspace_train(jobrun_groupspace_job *j)
{
    const spec_groupspace *g = &j->spec;
    groupspace_source src = { g->source == SPEC_GROUPSPACE_TOY ? NULL : &j->corpus, g->toy_p };
    groupspace_terms snap = { 0 };
    int64_t snap_sets = 0, met_sets = 0;
    double met_loss = 0;
    int next_snap = 0, every = g->steps / GROUPSPACE_METRIC_POINTS > 0 ? g->steps / GROUPSPACE_METRIC_POINTS : 1;
    rng_t r;
    rng_seed(&r, g->seed, 0x67726f7570ULL);
    groupspace_init(&g->cfg, &r, j->pos);
    double t0 = jobrun_now(), last = 0, t_met = t0;
    for (int step = 1; step <= g->steps; step++) {
        float lr = g->lr * (1.0f - (float)(step - 1) / (float)g->steps);
        groupspace_terms t = { 0 };
        int rc = groupspace_batch(&g->cfg, j->cooc, &src, j->pos, g->batch, &r, lr, &j->work, j->setbuf, &t);
        if (rc) return snprintf(j->err, sizeof j->err, "training: %s", groupspace_strerror(rc)), -1;
        jobrun_groupspace_terms_add(&snap, &t);
        snap_sets += g->batch, met_sets += g->batch, met_loss += t.attract + t.repel;
        if (step % every == 0 || step == g->steps) {
            double now = jobrun_now();
            jobrun_groupspace_metric(j, step, lr, met_loss, met_sets, now > t_met ? met_sets / (now - t_met) : 0);
            met_loss = 0, met_sets = 0, t_met = now;
        }
        if (next_snap < g->snapshots && step == spec_groupspace_snapshot_step(g, next_snap)) {
            if (jobrun_groupspace_snapshot(j, step, &snap, snap_sets)) return -1;
            memset(&snap, 0, sizeof snap), snap_sets = 0, next_snap++;
        }
        int p = jobrun_groupspace_poll(j, step, t0, &last);
        if (p) return p;
    }
    return 0;
}

/* ---- the result ---- */

static int jobrun_groupspace_save(jobrun_groupspace_job *j)
{
    const spec_groupspace *g = &j->spec;
    int32_t *group = malloc((size_t)g->n_items * sizeof *group);
    int n_groups = 0, rc = group ? groupspace_groups(j->pos, g->n_items, g->cfg.dim, g->link, g->max_group, group,
                                                     &n_groups) : GROUPSPACE_ENOMEM;
    if (rc) {
        free(group);
        return snprintf(j->err, sizeof j->err, "reading the groups off: %s", groupspace_strerror(rc)), -1;
    }
    json_t *groups = json_array(), *sizes = json_object();
    for (int k = 0; k < n_groups; k++) json_array_append_new(groups, json_array());
    for (int i = 0; i < g->n_items; i++) json_array_append_new(json_array_get(groups, (size_t)group[i]), json_integer(i));
    free(group);
    for (int k = 0; k < n_groups; k++) {
        char key[16];
        snprintf(key, sizeof key, "%zu", json_array_size(json_array_get(groups, (size_t)k)));
        json_t *c = json_object_get(sizes, key);
        json_object_set_new(sizes, key, json_integer(c ? json_integer_value(c) + 1 : 1));
    }
    json_t *doc = json_pack("{s:o}", "groups", groups);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL, path[PATH_MAX + 16];
    json_decref(doc);
    snprintf(path, sizeof path, "%s/groups.json", j->dir);
    files_part part = { text, text ? strlen(text) : 0 };
    rc = text && !files_write_atomic(path, &part, 1, j->err, sizeof j->err) ? 0 : -1;
    free(text);
    /* the last snapshot is taken at the final step: its truth is the result's */
    json_t *last = json_array_get(j->history, json_array_size(j->history) - 1);
    json_t *truth = json_object_get(last, "truth");
    json_t *res = json_pack("{s:i,s:i,s:O,s:i,s:o,s:o,s:O,s:O}", "items", g->n_items, "dim", g->cfg.dim, "snapshots",
                            j->snapshots, "n_groups", n_groups, "group_sizes", sizes, "radius",
                            jobrun_groupspace_radius_json(j, 1), "history", j->history, "truth",
                            truth ? truth : json_null());
    char *result = rc ? NULL : json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(res);
    if (!rc && (!result || store_job_succeed(j->ctx->st, j->ctx->job->id, result) != STORE_OK)) {
        snprintf(j->err, sizeof j->err, "cannot record the result: %s", store_errmsg(j->ctx->st));
        rc = -1;
    }
    free(result);
    return rc;
}

/* ---- the job ---- */

static int jobrun_groupspace_setup(jobrun_groupspace_job *j)
{
    spec_errors errs = { 0 };
    if (spec_groupspace_parse(j->ctx->job->spec_json, &j->spec, &errs)) {
        jobrun_spec_error(j->err, sizeof j->err, "the stored job spec", &errs);
        return -1;
    }
    int n = j->spec.n_items;
    j->pos = malloc((size_t)n * (size_t)j->spec.cfg.dim * sizeof *j->pos);
    j->setbuf = malloc((size_t)n * sizeof *j->setbuf);
    j->history = json_array(), j->snapshots = json_array();
    if (!j->pos || !j->setbuf || !j->history || !j->snapshots || groupspace_work_init(&j->work, n))
        return snprintf(j->err, sizeof j->err, "out of memory for %d items", n), -1;
    jobrun_path(j->ctx, NULL, j->dir, sizeof j->dir);
    return jobrun_groupspace_sets(j) || files_mkdirs(j->dir, j->err, sizeof j->err) ? -1 : 0;
}

static void jobrun_groupspace_free(jobrun_groupspace_job *j)
{
    spec_groupspace_free(&j->spec);
    groupspace_sets_free(&j->corpus);
    groupspace_cooc_free(j->cooc);
    groupspace_work_free(&j->work);
    free(j->pos), free(j->setbuf), free(j->truth);
    json_decref(j->history), json_decref(j->snapshots);
}

void jobrun_groupspace(const jobrun_ctx *ctx)
{
    jobrun_groupspace_job *j = calloc(1, sizeof *j);
    if (!j) {
        jobrun_finish(ctx, JOBRUN_FAILED, "out of memory starting the group space");
        return;
    }
    j->ctx = ctx;
    int rc = jobrun_groupspace_setup(j) ? -1 : jobrun_groupspace_train(j);
    if (rc == 0) rc = jobrun_groupspace_write(j, "positions.npy") || jobrun_groupspace_save(j) ? -1 : 0;
    if (rc != 0 && j->dir[0]) files_remove_tree(j->dir);
    if (rc == 2) jobrun_finish(ctx, JOBRUN_REQUEUED, NULL);
    else if (rc == 1) jobrun_finish(ctx, JOBRUN_CANCELLED, NULL);
    else if (rc < 0) jobrun_finish(ctx, JOBRUN_FAILED, j->err);
    jobrun_groupspace_free(j);
    free(j);
}
