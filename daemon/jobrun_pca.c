/* jobrun_pca — the pca job: the rows chosen (by index, or every row whose
 * label is one of those asked for, up to SPEC_ANALYSIS_PCA_MAX_ROWS, in row
 * order) are encoded in batches into one sparse activation matrix; the top_latents
 * latents with the largest total activation on them are kept, each row is
 * reconstructed from those latents alone (plus b_dec) and PCA runs on the
 * reconstructions (analysis_pca_latents: an L x L problem whatever dim).
 *
 * Files in data_dir/analyses/pca-{job}/: components.npy (c, dim), points.npy
 * (rows, c) (each row's coordinates), mean.npy (dim). The analyses row and
 * the job's success ({"analysis": id}) are one transaction. Progress: step =
 * rows encoded (total = the number of indices; 0, unknown, for labels). */
#include "jobrun.h"
#include "analysis.h"
#include "artifacts.h"
#include "datasrc.h"
#include "files.h"
#include "spec_analysis.h"
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JOBRUN_PCA_BATCH 256
#define JOBRUN_PCA_JSON (JSON_COMPACT | JSON_REAL_PRECISION(9))

typedef struct {
    const jobrun_ctx *ctx;
    spec_analysis_pca spec;
    store_sae sae;
    sae_params p;
    par_pool *pool;           /* ctx->threads threads for the encoder's products */
    jobrun_dataset *ds;
    data_source src;
    artifacts_labels *labels; /* NULL when the dataset has none */
    int64_t *rows;            /* (m) chosen row indices */
    int m;
    analysis_csr z;           /* (m, n) activations of the chosen rows */
    int32_t *latents;         /* (top_latents) chosen latents */
    int n_lat;
    analysis_pca_result res;
    char dir[PATH_MAX];
    char err[512];
} jobrun_pca_job;

/* ---- set-up and rows ---- */

static int jobrun_pca_setup(jobrun_pca_job *j)
{
    const jobrun_ctx *ctx = j->ctx;
    store_dataset d;
    spec_errors errs = { 0 };
    if (spec_analysis_parse_pca(ctx->job->spec_json, &j->spec, &errs)) {
        jobrun_spec_error(j->err, sizeof j->err, "the stored job spec", &errs);
        return -1;
    }
    if (store_sae_get(ctx->st, j->spec.sae, &j->sae) != STORE_OK ||
        store_dataset_get(ctx->st, j->spec.dataset, &d) != STORE_OK) {
        snprintf(j->err, sizeof j->err, "SAE %lld or dataset %lld no longer exists", (long long)j->spec.sae,
                 (long long)j->spec.dataset);
        return -1;
    }
    int rc = artifacts_labels_open(ctx->data_dir, &d, &j->labels, j->err, sizeof j->err);
    store_dataset_clear(&d);
    if (rc < 0 || artifacts_sae_load(&j->sae, &j->p, j->err, sizeof j->err)) return -1;
    if (!(j->pool = par_create(ctx->threads > 0 ? ctx->threads : 1))) {
        snprintf(j->err, sizeof j->err, "cannot start the PCA's threads");
        return -1;
    }
    if (jobrun_dataset_open(ctx, &j->ds, &j->src, j->err, sizeof j->err)) return -1;
    if (j->src.dim != j->sae.dim) {
        snprintf(j->err, sizeof j->err, "the dataset's rows have %d values but the SAE expects %d", j->src.dim,
                 j->sae.dim);
        return -1;
    }
    snprintf(j->dir, sizeof j->dir, "%s/analyses/pca-%lld", ctx->data_dir, (long long)ctx->job->id);
    return 0;
}

static int jobrun_pca_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 1 if (s, len) is one of the sorted labels. */
static int jobrun_pca_label_wanted(char **sorted, int n, const char *s, size_t len)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = strncmp(sorted[mid], s, len);
        if (c == 0 && sorted[mid][len] != '\0') c = 1;
        if (c == 0) return 1;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return 0;
}

static int jobrun_pca_rows_by_label(jobrun_pca_job *j)
{
    if (!j->labels) {
        snprintf(j->err, sizeof j->err, "the dataset has no labels; choose rows with \"indices\"");
        return -1;
    }
    qsort(j->spec.labels, (size_t)j->spec.n_labels, sizeof *j->spec.labels, jobrun_pca_cmp_str);
    j->rows = malloc(SPEC_ANALYSIS_PCA_MAX_ROWS * sizeof *j->rows);
    if (!j->rows) return snprintf(j->err, sizeof j->err, "out of memory choosing rows"), -1;
    int64_t n = artifacts_labels_count(j->labels);
    for (int64_t i = 0; i < n && j->m < SPEC_ANALYSIS_PCA_MAX_ROWS; i++) {
        const char *s;
        size_t len;
        if (!artifacts_label(j->labels, i, &s, &len) &&
            jobrun_pca_label_wanted(j->spec.labels, j->spec.n_labels, s, len))
            j->rows[j->m++] = i;
    }
    if (j->m < 2) {
        snprintf(j->err, sizeof j->err, "only %d rows have the labels asked for; PCA needs at least 2", j->m);
        return -1;
    }
    return 0;
}

static int jobrun_pca_choose_rows(jobrun_pca_job *j)
{
    if (j->spec.labels) return jobrun_pca_rows_by_label(j);
    j->m = j->spec.n_indices;
    j->rows = malloc((size_t)j->m * sizeof *j->rows);
    if (!j->rows) return snprintf(j->err, sizeof j->err, "out of memory choosing rows"), -1;
    for (int i = 0; i < j->m; i++) {
        j->rows[i] = j->spec.indices[i];
        if (j->src.n_rows >= 0 && j->rows[i] >= j->src.n_rows) {
            snprintf(j->err, sizeof j->err, "row %lld is past the dataset's %lld rows", (long long)j->rows[i],
                     (long long)j->src.n_rows);
            return -1;
        }
    }
    return j->m >= j->spec.components ? 0 : (snprintf(j->err, sizeof j->err, "fewer rows than components"), -1);
}

/* ---- encoding ---- */

/* Appends the rows of b (a batch CSR) to z. */
static int jobrun_pca_append(analysis_csr *z, const analysis_csr *b)
{
    int64_t rows = z->rows + b->rows, nnz = z->nnz + b->nnz;
    int64_t *rp = realloc(z->row_ptr, ((size_t)rows + 1) * sizeof *rp);
    if (rp) z->row_ptr = rp;
    int32_t *ix = realloc(z->idx, ((size_t)nnz + 1) * sizeof *ix);
    if (ix) z->idx = ix;
    float *v = realloc(z->val, ((size_t)nnz + 1) * sizeof *v);
    if (v) z->val = v;
    if (!rp || !ix || !v) return -1;
    if (z->rows == 0) z->row_ptr[0] = 0;
    for (int r = 1; r <= b->rows; r++) z->row_ptr[z->rows + r] = z->nnz + b->row_ptr[r];
    memcpy(z->idx + z->nnz, b->idx, (size_t)b->nnz * sizeof *z->idx);
    memcpy(z->val + z->nnz, b->val, (size_t)b->nnz * sizeof *z->val);
    z->rows = (int)rows, z->nnz = nnz, z->cap_rows = rows, z->cap_nnz = nnz + 1;
    return 0;
}

/* Encodes rows [a, a + b) of the chosen rows into z. */
static int jobrun_pca_encode_batch(jobrun_pca_job *j, int a, int b, float *x, float *zd, uint64_t *idx,
                                   analysis_csr *tmp)
{
    for (int k = 0; k < b; k++) idx[k] = (uint64_t)j->rows[a + k];
    if (j->src.get_rows(j->src.ctx, idx, b, x)) return snprintf(j->err, sizeof j->err, "cannot read the rows"), -1;
    if (sae_encode(&j->p, j->pool, x, b, zd, NULL)) return snprintf(j->err, sizeof j->err, "out of memory encoding"), -1;
    if (analysis_csr_from_dense(tmp, zd, b, j->sae.n_latents) || jobrun_pca_append(&j->z, tmp))
        return snprintf(j->err, sizeof j->err, "out of memory keeping the activations"), -1;
    return 0;
}

/* 0 done, 1 cancelled or shutting down, -1 error. */
static int jobrun_pca_encode(jobrun_pca_job *j)
{
    int n = j->sae.n_latents, dim = j->sae.dim;
    float *x = malloc((size_t)JOBRUN_PCA_BATCH * dim * sizeof *x);  /* (JOBRUN_PCA_BATCH, dim) */
    float *zd = malloc((size_t)JOBRUN_PCA_BATCH * n * sizeof *zd);  /* (JOBRUN_PCA_BATCH, n) */
    uint64_t *idx = malloc(JOBRUN_PCA_BATCH * sizeof *idx);         /* (JOBRUN_PCA_BATCH) */
    analysis_csr tmp;
    analysis_csr_init(&tmp);
    analysis_csr_init(&j->z);
    j->z.n = n;
    int rc = x && zd && idx ? 0 : (snprintf(j->err, sizeof j->err, "out of memory for a batch"), -1);
    for (int a = 0; a < j->m && !rc; a += JOBRUN_PCA_BATCH) {
        int flag = 0, b = j->m - a < JOBRUN_PCA_BATCH ? j->m - a : JOBRUN_PCA_BATCH;
        rc = jobrun_pca_encode_batch(j, a, b, x, zd, idx, &tmp);
        if (!rc) jobrun_progress(j->ctx, a + b, 0, -1);
        if (!rc && (atomic_load(j->ctx->stopping) ||
                    (store_job_cancel_requested(j->ctx->st, j->ctx->job->id, &flag) == STORE_OK && flag)))
            rc = 1;
    }
    free(x), free(zd), free(idx);
    analysis_csr_free(&tmp);
    return rc;
}

/* ---- PCA and saving ---- */

static int jobrun_pca_run(jobrun_pca_job *j)
{
    int L = j->spec.top_latents;
    j->latents = malloc((size_t)L * sizeof *j->latents);
    if (!j->latents) return snprintf(j->err, sizeof j->err, "out of memory"), -1;
    int rc = analysis_top_latents(&j->z, L, j->latents, NULL);
    if (rc < 0) return snprintf(j->err, sizeof j->err, "top latents: %s", analysis_strerror(rc)), -1;
    if (rc == 0) return snprintf(j->err, sizeof j->err, "no latent fires on the rows chosen"), -1;
    j->n_lat = rc;
    rc = analysis_pca_latents(&j->z, j->latents, j->n_lat, j->p.v.W_dec, j->p.v.b_dec, j->sae.dim,
                              j->spec.components, &j->res);
    if (rc) snprintf(j->err, sizeof j->err, "PCA: %s", analysis_strerror(rc));
    return rc ? -1 : 0;
}

static int jobrun_pca_write_files(jobrun_pca_job *j)
{
    char path[PATH_MAX + 32];
    long long cshape[2] = { j->res.c, j->sae.dim }, pshape[2] = { j->m, j->res.c }, mshape[1] = { j->sae.dim };
    if (files_mkdirs(j->dir, j->err, sizeof j->err)) return -1;
    snprintf(path, sizeof path, "%s/components.npy", j->dir);
    if (files_write_npy_f32(path, j->res.components, cshape, 2, j->err, sizeof j->err)) return -1;
    snprintf(path, sizeof path, "%s/points.npy", j->dir);
    if (files_write_npy_f32(path, j->res.coords, pshape, 2, j->err, sizeof j->err)) return -1;
    snprintf(path, sizeof path, "%s/mean.npy", j->dir);
    return files_write_npy_f32(path, j->res.mean, mshape, 1, j->err, sizeof j->err);
}

static char *jobrun_pca_dump(json_t *v)
{
    char *s = v ? json_dumps(v, JOBRUN_PCA_JSON | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    return s;
}

/* The label of each chosen row, or NULL when the dataset has none. */
static char *jobrun_pca_labels_json(jobrun_pca_job *j)
{
    if (!j->labels) return NULL;
    json_t *a = json_array();
    for (int i = 0; i < j->m; i++) {
        const char *s;
        size_t len;
        json_array_append_new(a, artifacts_label(j->labels, j->rows[i], &s, &len) ? json_null()
                                                                                  : json_stringn_nocheck(s, len));
    }
    return jobrun_pca_dump(a);
}

static int jobrun_pca_save(jobrun_pca_job *j)
{
    json_t *lat = json_array(), *var = json_array(), *ratio = json_array(), *rows = json_array();
    for (int i = 0; i < j->n_lat; i++) json_array_append_new(lat, json_integer(j->latents[i]));
    for (int c = 0; c < j->res.c; c++) {
        json_array_append_new(var, json_real(j->res.variance[c]));
        json_array_append_new(ratio, json_real(j->res.ratio[c]));
    }
    for (int i = 0; i < j->m; i++) json_array_append_new(rows, json_integer(j->rows[i]));
    store_analysis a = { .job_id = j->ctx->job->id, .sae_id = j->sae.id, .dataset_id = j->spec.dataset,
                         .n_rows = j->m, .n_components = j->res.c, .latents_json = jobrun_pca_dump(lat),
                         .variance_json = jobrun_pca_dump(var), .ratio_json = jobrun_pca_dump(ratio),
                         .rows_json = jobrun_pca_dump(rows),
                         .labels_json = jobrun_pca_labels_json(j), .dir = j->dir };
    int64_t id = 0;
    int rc = a.latents_json && a.variance_json && a.ratio_json && a.rows_json && (!j->labels || a.labels_json)
             ? store_analysis_insert(j->ctx->st, &a, &id) : STORE_ERROR;
    if (rc != STORE_OK) snprintf(j->err, sizeof j->err, "cannot record the analysis: %s", store_errmsg(j->ctx->st));
    free(a.latents_json), free(a.variance_json), free(a.ratio_json), free(a.rows_json), free(a.labels_json);
    return rc == STORE_OK ? 0 : -1;
}

/* ---- the job ---- */

static void jobrun_pca_free(jobrun_pca_job *j)
{
    spec_analysis_pca_free(&j->spec);
    store_sae_clear(&j->sae);
    sae_params_free(&j->p);
    par_free(j->pool);
    jobrun_dataset_close(j->ds);
    artifacts_labels_close(j->labels);
    free(j->rows);
    analysis_csr_free(&j->z);
    free(j->latents);
    analysis_pca_free(&j->res);
}

static void jobrun_pca_finish(jobrun_pca_job *j, int rc)
{
    const jobrun_ctx *ctx = j->ctx;
    if (rc != 0 && j->dir[0]) files_remove_tree(j->dir);
    if (rc > 0 && atomic_load(ctx->stopping)) jobrun_finish(ctx, JOBRUN_REQUEUED, NULL);
    else if (rc > 0) jobrun_finish(ctx, JOBRUN_CANCELLED, NULL);
    else if (rc < 0) jobrun_finish(ctx, JOBRUN_FAILED, j->err);
}

void jobrun_pca(const jobrun_ctx *ctx)
{
    jobrun_pca_job *j = calloc(1, sizeof *j);
    if (!j) {
        jobrun_finish(ctx, JOBRUN_FAILED, "out of memory starting the PCA");
        return;
    }
    j->ctx = ctx;
    analysis_csr_init(&j->z);
    int rc = jobrun_pca_setup(j) || jobrun_pca_choose_rows(j) ? -1 : jobrun_pca_encode(j);
    if (!rc) rc = jobrun_pca_run(j) || jobrun_pca_write_files(j) || jobrun_pca_save(j) ? -1 : 0;
    jobrun_pca_finish(j, rc);
    jobrun_pca_free(j);
    free(j);
}
