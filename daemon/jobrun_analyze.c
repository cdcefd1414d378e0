/* jobrun_analyze — the analyze job: load the SAE's exported weights, stream
 * the first n_samples rows of the dataset (0 .. n_samples-1) through
 * sae_encode in batches, accumulating latent statistics and the exact firing
 * pattern, then derive neighbours (decoder cosine, Jaccard), groups
 * (jobrun_groups.c), circle recovery for circles datasets, and save.
 *
 * Progress is reported like training: step = rows encoded, total = n_samples
 * (throttled to every JOBRUN_ANALYZE_PROGRESS_S); the cancel flag is read
 * between batches (every JOBRUN_ANALYZE_CANCEL_S) and between the later
 * phases. A shutdown requeues the job, which then starts over (an analysis
 * keeps no checkpoint).
 *
 * Artifacts live in data_dir/analyses/sae-{sae}/job-{job}/: firing.bin (the
 * latent-major firing pattern for GET /jaccard) and projections.bin (per
 * group, the first rows where it fires projected on its plane). The rows are
 * written to the store only after the files, in one transaction that also
 * ends the job; the previous analysis's directory is removed afterwards. */
#include "jobrun_analyze.h"
#include "files.h"
#include "spec.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JOBRUN_ANALYZE_PROGRESS_S 0.5
#define JOBRUN_ANALYZE_CANCEL_S 0.25
#define JOBRUN_ANALYZE_Z_FLOATS ((size_t)1 << 23) /* z buffer of one batch: B * n floats at most */
#define JOBRUN_ANALYZE_JSON (JSON_COMPACT | JSON_REAL_PRECISION(7))

enum { JOBRUN_ANALYZE_DONE = 0, JOBRUN_ANALYZE_CANCEL = 1, JOBRUN_ANALYZE_SHUTDOWN = 2, JOBRUN_ANALYZE_ERROR = -1 };

/* ---- set-up ---- */

/* The ground truth of a circles dataset (j->circ), or nothing for other kinds. */
static int jobrun_analyze_open_circles(jobrun_analyze_job *j)
{
    store_dataset d;
    if (store_dataset_get(j->ctx->st, j->spec.dataset, &d) != STORE_OK) {
        snprintf(j->err, sizeof j->err, "dataset %lld no longer exists", (long long)j->spec.dataset);
        return -1;
    }
    int rc = 0;
    circles_params cp;
    spec_errors errs = { 0 };
    if (!strcmp(d.kind, "circles")) {
        rc = spec_circles_params(d.params_json, &cp, &errs);
        if (rc) jobrun_spec_error(j->err, sizeof j->err, "the dataset's stored params", &errs);
        if (!rc && !(j->circ = circles_create(&cp))) {
            snprintf(j->err, sizeof j->err, "out of memory building the circles' planes");
            rc = -1;
        }
    }
    store_dataset_clear(&d);
    return rc;
}

static int jobrun_analyze_setup(jobrun_analyze_job *j)
{
    const jobrun_ctx *ctx = j->ctx;
    spec_errors errs = { 0 };
    if (spec_analysis_parse_analyze(ctx->job->spec_json, &j->spec, &errs)) {
        jobrun_spec_error(j->err, sizeof j->err, "the stored job spec", &errs);
        return -1;
    }
    if (store_sae_get(ctx->st, j->spec.sae, &j->sae) != STORE_OK) {
        snprintf(j->err, sizeof j->err, "SAE %lld no longer exists", (long long)j->spec.sae);
        return -1;
    }
    if (artifacts_sae_load(&j->sae, &j->p, j->err, sizeof j->err)) return -1;
    if (!(j->pool = par_create(ctx->threads > 0 ? ctx->threads : 1))) {
        snprintf(j->err, sizeof j->err, "cannot start the analysis's threads");
        return -1;
    }
    if (jobrun_dataset_open(ctx, &j->ds, &j->src, j->err, sizeof j->err) || jobrun_analyze_open_circles(j)) return -1;
    j->n = j->sae.n_latents;
    j->dim = j->sae.dim;
    if (j->src.dim != j->dim) {
        snprintf(j->err, sizeof j->err, "the dataset's rows have %d values but the SAE expects %d", j->src.dim, j->dim);
        return -1;
    }
    j->rows = j->spec.n_samples;
    if (j->src.n_rows >= 0 && j->rows > j->src.n_rows) j->rows = j->src.n_rows;
    /* group statistics come from jobrun_groups (any groups), not from the stats' contiguous ones */
    int rc = analysis_stats_init(&j->stats, j->n, 1, ANALYSIS_HIST_BINS);
    if (!rc) rc = analysis_cooc_init(&j->cooc, j->n);
    if (rc) snprintf(j->err, sizeof j->err, "starting the statistics: %s", analysis_strerror(rc));
    snprintf(j->dir, sizeof j->dir, "%s/analyses/sae-%lld/job-%lld", ctx->data_dir, (long long)j->sae.id,
             (long long)ctx->job->id);
    return rc ? -1 : 0;
}

/* ---- the streaming pass ---- */

typedef struct {
    float *x;        /* (B, dim) rows */
    float *z;        /* (B, n) activations */
    uint64_t *idx;   /* (B) row indices */
    analysis_csr csr;
    int B;
    double last_progress, last_cancel, t0;
} jobrun_analyze_stream;

static int jobrun_analyze_poll(jobrun_analyze_job *j, jobrun_analyze_stream *s, int64_t done)
{
    const jobrun_ctx *ctx = j->ctx;
    if (atomic_load(ctx->stopping)) return JOBRUN_ANALYZE_SHUTDOWN;
    double now = jobrun_now();
    if (now - s->last_progress >= JOBRUN_ANALYZE_PROGRESS_S || done == j->rows) {
        double sps = now > s->t0 ? (double)done / (now - s->t0) : 0.0;
        double eta = sps > 0 ? (double)(j->rows - done) / sps : -1;
        s->last_progress = now;
        jobrun_progress(ctx, (int)done, sps, eta);
    }
    if (now - s->last_cancel < JOBRUN_ANALYZE_CANCEL_S) return JOBRUN_ANALYZE_DONE;
    s->last_cancel = now;
    int flag = 0;
    if (store_job_cancel_requested(ctx->st, ctx->job->id, &flag) == STORE_OK && flag) return JOBRUN_ANALYZE_CANCEL;
    return JOBRUN_ANALYZE_DONE;
}

/* One batch of rows [r0, r0 + b): encode and accumulate. */
static int jobrun_analyze_batch(jobrun_analyze_job *j, jobrun_analyze_stream *s, int64_t r0, int b)
{
    for (int k = 0; k < b; k++) s->idx[k] = (uint64_t)(r0 + k);
    if (j->src.get_rows(j->src.ctx, s->idx, b, s->x)) {
        snprintf(j->err, sizeof j->err, "cannot read rows %lld.. of the dataset", (long long)r0);
        return JOBRUN_ANALYZE_ERROR;
    }
    if (sae_encode(&j->p, j->pool, s->x, b, s->z, NULL)) {
        snprintf(j->err, sizeof j->err, "out of memory encoding a batch");
        return JOBRUN_ANALYZE_ERROR;
    }
    int rc = analysis_csr_from_dense(&s->csr, s->z, b, j->n);
    if (!rc) rc = analysis_stats_add(&j->stats, &s->csr);
    if (!rc) rc = analysis_cooc_add(&j->cooc, &s->csr);
    if (rc) snprintf(j->err, sizeof j->err, "accumulating statistics: %s", analysis_strerror(rc));
    return rc ? JOBRUN_ANALYZE_ERROR : JOBRUN_ANALYZE_DONE;
}

static int jobrun_analyze_stream_rows(jobrun_analyze_job *j)
{
    jobrun_analyze_stream s = { .t0 = jobrun_now() };
    size_t B = JOBRUN_ANALYZE_Z_FLOATS / (size_t)j->n;
    s.B = B < 1 ? 1 : B > JOBRUN_ANALYZE_ROW_BATCH ? JOBRUN_ANALYZE_ROW_BATCH : (int)B;
    s.x = malloc((size_t)s.B * j->dim * sizeof *s.x);
    s.z = malloc((size_t)s.B * j->n * sizeof *s.z);
    s.idx = malloc((size_t)s.B * sizeof *s.idx);
    analysis_csr_init(&s.csr);
    int rc = s.x && s.z && s.idx ? JOBRUN_ANALYZE_DONE : JOBRUN_ANALYZE_ERROR;
    if (rc) snprintf(j->err, sizeof j->err, "out of memory for a batch of %d rows", s.B);
    for (int64_t r0 = 0; r0 < j->rows && rc == JOBRUN_ANALYZE_DONE; r0 += s.B) {
        int b = j->rows - r0 < s.B ? (int)(j->rows - r0) : s.B;
        rc = jobrun_analyze_batch(j, &s, r0, b);
        if (rc == JOBRUN_ANALYZE_DONE) rc = jobrun_analyze_poll(j, &s, r0 + b);
    }
    free(s.x), free(s.z), free(s.idx);
    analysis_csr_free(&s.csr);
    return rc;
}

/* ---- neighbours ---- */

static int jobrun_analyze_neighbors(jobrun_analyze_job *j)
{
    size_t nK = (size_t)j->n * j->spec.neighbors;
    j->nb_cos_idx = malloc(nK * sizeof *j->nb_cos_idx);
    j->nb_cos = malloc(nK * sizeof *j->nb_cos);
    j->nb_j_idx = malloc(nK * sizeof *j->nb_j_idx);
    j->nb_j = malloc(nK * sizeof *j->nb_j);
    int rc = j->nb_cos_idx && j->nb_cos && j->nb_j_idx && j->nb_j ? ANALYSIS_OK : ANALYSIS_ENOMEM;
    if (!rc) rc = analysis_cooc_finish(&j->cooc);
    if (!rc) rc = analysis_jaccard_neighbors(&j->cooc, j->spec.neighbors, 1, j->nb_j_idx, j->nb_j, NULL);
    if (!rc) rc = analysis_decoder_neighbors(j->p.v.W_dec, j->n, j->dim, j->spec.neighbors, ANALYSIS_DUP_COS,
                                             j->nb_cos_idx, j->nb_cos, j->dups, JOBRUN_ANALYZE_DUP_CAP, &j->n_dups);
    if (rc) snprintf(j->err, sizeof j->err, "neighbours: %s", analysis_strerror(rc));
    return rc ? -1 : 0;
}

/* ---- results as store rows ---- */

static char *jobrun_analyze_dump(json_t *v)
{
    char *s = v ? json_dumps(v, JOBRUN_ANALYZE_JSON | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    return s;
}

static json_t *jobrun_analyze_num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* [[j, value], ...] of a neighbour list (slots with j < 0 left out). */
static char *jobrun_analyze_neighbors_json(const int32_t *idx, const float *val, int K)
{
    json_t *a = json_array();
    for (int k = 0; k < K; k++)
        if (idx[k] >= 0) json_array_append_new(a, json_pack("[i,o]", idx[k], jobrun_analyze_num(val[k])));
    return jobrun_analyze_dump(a);
}

static char *jobrun_analyze_hist_json(const jobrun_analyze_job *j, int i, float *edges /* (n_bins + 1) */)
{
    int nb = j->stats.n_bins;
    json_t *e = json_array(), *c = json_array();
    analysis_stats_edges(&j->stats, i, edges);
    for (int b = 0; b <= nb; b++) json_array_append_new(e, jobrun_analyze_num(edges[b]));
    for (int b = 0; b < nb; b++) json_array_append_new(c, json_integer(j->stats.hist[(size_t)i * nb + b]));
    return jobrun_analyze_dump(json_pack("{s:o,s:o}", "edges", e, "counts", c));
}

static int jobrun_analyze_latent_store_rows(const jobrun_analyze_job *j, store_latent *lat)
{
    int K = j->spec.neighbors;
    float *edges = malloc(((size_t)j->stats.n_bins + 1) * sizeof *edges);
    if (!edges) return -1;
    for (int i = 0; i < j->n; i++) {
        analysis_latent_summary sm;
        analysis_stats_latent(&j->stats, i, &sm);
        lat[i] = (store_latent){ .latent = i, .group = j->group_of[i], .density = sm.density,
                                 .mean_act = sm.mean_act, .max_act = sm.max_act };
        lat[i].hist_json = jobrun_analyze_hist_json(j, i, edges);
        lat[i].cos_json = jobrun_analyze_neighbors_json(j->nb_cos_idx + (size_t)i * K, j->nb_cos + (size_t)i * K, K);
        lat[i].jaccard_json = jobrun_analyze_neighbors_json(j->nb_j_idx + (size_t)i * K, j->nb_j + (size_t)i * K, K);
        if (!lat[i].hist_json || !lat[i].cos_json || !lat[i].jaccard_json) {
            free(edges);
            return -1;
        }
    }
    free(edges);
    return 0;
}

static int jobrun_analyze_group_store_rows(const jobrun_analyze_job *j, store_group *grp)
{
    for (int g = 0; g < j->n_groups; g++) {
        json_t *m = json_array();
        for (int t = j->goff[g]; t < j->goff[g + 1]; t++) json_array_append_new(m, json_integer(j->order[t]));
        grp[g] = (store_group){ .group = g, .density = j->g_density[g], .jaccard = j->g_jaccard[g],
                                .max_cos = j->g_maxcos[g], .circle = j->has_rec ? j->rec.group_circle[g] : -1,
                                .plane_fit = j->has_rec ? j->rec.group_fit[g] : NAN };
        grp[g].members_json = jobrun_analyze_dump(m);
        if (!grp[g].members_json) return -1;
    }
    return 0;
}

static json_t *jobrun_analyze_summary(const jobrun_analyze_job *j)
{
    double l0 = 0.0, l0g = 0.0;
    int dead = 0, dead_groups = 0;
    for (int i = 0; i < j->n; i++) {
        l0 += (double)j->stats.count[i];
        dead += j->stats.count[i] == 0;
    }
    for (int g = 0; g < j->n_groups; g++) {
        l0g += j->g_density[g];
        dead_groups += j->g_density[g] == 0.0;
    }
    json_t *pairs = json_array();
    for (int64_t k = 0; k < j->n_dups && k < JOBRUN_ANALYZE_DUP_CAP; k++)
        json_array_append_new(pairs, json_pack("[i,i]", j->dups[2 * k], j->dups[2 * k + 1]));
    return json_pack("{s:o,s:o,s:i,s:o,s:i,s:o,s:{s:f,s:I,s:o},s:i,s:i,s:i}", "l0",
                     jobrun_analyze_num(j->rows ? l0 / (double)j->rows : 0.0), "l0_groups", jobrun_analyze_num(l0g),
                     "dead_latents", dead, "dead_frac", jobrun_analyze_num((double)dead / j->n), "dead_groups",
                     dead_groups, "dead_groups_frac", jobrun_analyze_num((double)dead_groups / j->n_groups),
                     "near_duplicates",
                     "threshold", ANALYSIS_DUP_COS, "count", (json_int_t)j->n_dups, "pairs", pairs,
                     "hist_bins", j->stats.n_bins, "neighbors", j->spec.neighbors, "projection_rows",
                     JOBRUN_ANALYZE_PROJ_KEEP);
}

/* Counts hist (max_k + 1) as a JSON array without its trailing zero bins (at least [hist[0]]). */
static json_t *jobrun_analyze_counts_json(const int64_t *hist, int max_k)
{
    json_t *a = json_array();
    int last = 0;
    for (int k = 0; k <= max_k; k++) if (hist[k]) last = k;
    for (int k = 0; k <= last; k++) json_array_append_new(a, json_integer(hist[k]));
    return a;
}

/* The groups scored as subspaces (API.md: a group holds circle i when both principal-angle
 * cosines between its span and the plane are >= 0.9; _99 at 0.99), into rec. */
static void jobrun_analyze_subspace_json(const jobrun_analyze_job *j, json_t *rec)
{
    const analysis_subspace *u = &j->sub;
    json_object_set_new(rec, "groups_per_plane_hist", jobrun_analyze_counts_json(u->hist, u->max_k));
    json_object_set_new(rec, "groups_per_plane_hist_99", jobrun_analyze_counts_json(u->hist_99, u->max_k));
    json_object_set_new(rec, "circles_one_group", json_integer(u->circles_one_group));
    json_object_set_new(rec, "circles_one_group_99", json_integer(u->circles_one_group_99));
    json_object_set_new(rec, "circles_held", json_integer(u->circles_held));
    json_object_set_new(rec, "circles_held_99", json_integer(u->circles_held_99));
    json_object_set_new(rec, "groups_per_held_plane",
                        u->circles_held ? json_real((double)u->groups_holding / u->circles_held) : json_null());
    json_object_set_new(rec, "groups_per_held_plane_99", u->circles_held_99 ?
                        json_real((double)u->groups_holding_99 / u->circles_held_99) : json_null());
    json_object_set_new(rec, "subspace_cos", json_pack("[f,f]", ANALYSIS_SUBSPACE_CUT, ANALYSIS_SUBSPACE_CUT_99));
}

static json_t *jobrun_analyze_recovery_json(const jobrun_analyze_job *j)
{
    int nc = j->rec.n_circles;
    double med = 0, p10 = 0;
    int64_t hist[JOBRUN_ANALYZE_FVE_BINS];
    if (analysis_fve_summary(j->fve, nc, JOBRUN_ANALYZE_FVE_BINS, &med, &p10, hist)) return NULL;
    json_t *pph = jobrun_analyze_counts_json(j->rec.per_plane_hist, j->rec.max_k), *fh = json_array();
    for (int b = 0; b < JOBRUN_ANALYZE_FVE_BINS; b++) json_array_append_new(fh, json_integer(hist[b]));
    json_t *rec = json_pack("{s:i,s:f,s:o,s:o,s:i,s:i,s:i,s:i,s:{s:o,s:o,s:o,s:i}}", "n_circles", nc, "min_frac",
                     ANALYSIS_INPLANE_FRAC, "inplane_frac", jobrun_analyze_num(j->rec.inplane_frac),
                     "per_plane_hist", pph, "circles_found", j->rec.circles_found, "circles_found_groups",
                     j->rec.circles_found_groups,
                     "rows_counted", j->rec.rows_counted, "rows_inplane", j->rec.rows_inplane, "circle_fve",
                     "median", jobrun_analyze_num(med), "p10", jobrun_analyze_num(p10), "hist", fh, "points",
                     JOBRUN_ANALYZE_FVE_POINTS);
    if (rec && j->has_sub) jobrun_analyze_subspace_json(j, rec);
    return rec;
}

/* ---- saving ---- */

static int jobrun_analyze_write_files(jobrun_analyze_job *j)
{
    char path[PATH_MAX + 32];
    if (files_mkdirs(j->dir, j->err, sizeof j->err)) return -1;
    snprintf(path, sizeof path, "%s/firing.bin", j->dir);
    if (artifacts_table_write(path, ARTIFACTS_FIRING_MAGIC, sizeof(int32_t), j->n, j->cooc.col_ptr,
                              j->cooc.col_rows, (uint64_t)j->rows, j->err, sizeof j->err))
        return -1;
    snprintf(path, sizeof path, "%s/projections.bin", j->dir);
    return artifacts_table_write(path, ARTIFACTS_PROJ_MAGIC, sizeof(artifacts_proj), j->n_groups, j->proj_ptr,
                                 j->proj, (uint64_t)j->rows, j->err, sizeof j->err);
}

static json_t *jobrun_analyze_cluster_json(const jobrun_analyze_job *j)
{
    if (j->spec.cluster == SPEC_ANALYSIS_CLUSTER_NONE) return NULL;
    return json_pack("{s:s,s:i,s:o}", "method", j->spec.cluster == SPEC_ANALYSIS_CLUSTER_COSINE ? "cosine" : "jaccard",
                     "group_size", j->s, "min_similarity", jobrun_analyze_num(j->spec.cluster_min_sim));
}

/* The store rows, then the one transaction; 1 if the job was cancelled meanwhile. */
static int jobrun_analyze_save(jobrun_analyze_job *j)
{
    store_latent *lat = calloc((size_t)j->n, sizeof *lat);
    store_group *grp = calloc((size_t)j->n_groups, sizeof *grp);
    store_sae_analysis a = { .sae_id = j->sae.id, .job_id = j->ctx->job->id, .dataset_id = j->spec.dataset,
                             .n_samples = j->rows, .group_size = j->s, .n_groups = j->n_groups, .dir = j->dir };
    a.cluster_json = jobrun_analyze_dump(jobrun_analyze_cluster_json(j));
    a.summary_json = jobrun_analyze_dump(jobrun_analyze_summary(j));
    a.recovery_json = j->has_rec ? jobrun_analyze_dump(jobrun_analyze_recovery_json(j)) : NULL;
    json_t *res = json_pack("{s:I,s:I,s:i}", "sae", (json_int_t)j->sae.id, "n_samples", (json_int_t)j->rows,
                            "groups", j->n_groups);
    if (j->has_rec) json_object_set_new(res, "circles_found", json_integer(j->rec.circles_found));
    char *result = jobrun_analyze_dump(res), *old = NULL;
    int rc = lat && grp && a.summary_json && result && (!j->has_rec || a.recovery_json) ? 0 : -1;
    if (!rc) rc = jobrun_analyze_latent_store_rows(j, lat);
    if (!rc) rc = jobrun_analyze_group_store_rows(j, grp);
    if (rc) snprintf(j->err, sizeof j->err, "out of memory writing the results");
    int src = rc ? STORE_ERROR : store_sae_analysis_save(j->ctx->st, &a, lat, j->n, grp, j->n_groups, result, &old);
    if (!rc && src != STORE_OK) {
        snprintf(j->err, sizeof j->err, "cannot record the analysis: %s", store_errmsg(j->ctx->st));
        rc = src == STORE_CONFLICT ? 1 : -1;
    }
    if (old && strcmp(old, j->dir)) files_remove_tree(old);
    for (int i = 0; lat && i < j->n; i++) store_latent_clear(&lat[i]);
    for (int g = 0; grp && g < j->n_groups; g++) store_group_clear(&grp[g]);
    free(lat), free(grp), free(a.cluster_json), free(a.summary_json), free(a.recovery_json), free(result), free(old);
    return rc;
}

/* ---- the job ---- */

static int jobrun_analyze_cancelled(const jobrun_analyze_job *j)
{
    int flag = 0;
    if (atomic_load(j->ctx->stopping)) return JOBRUN_ANALYZE_SHUTDOWN;
    if (store_job_cancel_requested(j->ctx->st, j->ctx->job->id, &flag) == STORE_OK && flag)
        return JOBRUN_ANALYZE_CANCEL;
    return JOBRUN_ANALYZE_DONE;
}

/* Everything after the streaming pass. */
static int jobrun_analyze_derive(jobrun_analyze_job *j)
{
    int (*const phases[])(jobrun_analyze_job *) = { jobrun_analyze_neighbors, jobrun_groups_form, jobrun_groups_stats,
                                                    jobrun_groups_recovery, jobrun_groups_projections,
                                                    jobrun_analyze_write_files };
    for (size_t k = 0; k < sizeof phases / sizeof phases[0]; k++) {
        int c = jobrun_analyze_cancelled(j);
        if (c != JOBRUN_ANALYZE_DONE) return c;
        if (phases[k](j)) return JOBRUN_ANALYZE_ERROR;
    }
    return JOBRUN_ANALYZE_DONE;
}

static void jobrun_analyze_finish(jobrun_analyze_job *j, int rc)
{
    const jobrun_ctx *ctx = j->ctx;
    if (rc == JOBRUN_ANALYZE_DONE) {
        int s = jobrun_analyze_save(j);
        if (s == 0) return;
        rc = s > 0 ? JOBRUN_ANALYZE_CANCEL : JOBRUN_ANALYZE_ERROR;
    }
    if (rc != JOBRUN_ANALYZE_DONE && j->dir[0]) files_remove_tree(j->dir);
    if (rc == JOBRUN_ANALYZE_SHUTDOWN) jobrun_finish(ctx, JOBRUN_REQUEUED, NULL);
    if (rc == JOBRUN_ANALYZE_CANCEL) jobrun_finish(ctx, JOBRUN_CANCELLED, NULL);
    if (rc == JOBRUN_ANALYZE_ERROR) jobrun_finish(ctx, JOBRUN_FAILED, j->err);
}

static void jobrun_analyze_free(jobrun_analyze_job *j)
{
    jobrun_groups_free(j);
    free(j->nb_cos_idx), free(j->nb_cos), free(j->nb_j_idx), free(j->nb_j);
    analysis_stats_free(&j->stats);
    analysis_cooc_free(&j->cooc);
    circles_free(j->circ);
    jobrun_dataset_close(j->ds);
    sae_params_free(&j->p);
    par_free(j->pool);
    store_sae_clear(&j->sae);
}

void jobrun_analyze(const jobrun_ctx *ctx)
{
    jobrun_analyze_job *j = calloc(1, sizeof *j);
    if (!j) {
        jobrun_finish(ctx, JOBRUN_FAILED, "out of memory starting the analysis");
        return;
    }
    j->ctx = ctx;
    int rc = jobrun_analyze_setup(j) ? JOBRUN_ANALYZE_ERROR : jobrun_analyze_stream_rows(j);
    if (rc == JOBRUN_ANALYZE_DONE) rc = jobrun_analyze_derive(j);
    jobrun_analyze_finish(j, rc);
    jobrun_analyze_free(j);
    free(j);
}
