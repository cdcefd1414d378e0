/* spec/spec_analysis.c — `analyze` and `pca` job bodies to structs and a
 * normalised JSON (spec_analysis.h).
 *
 * One parser per type fills its struct from the defaults and records errors;
 * with refs it also judges the body against what its ids name (the SAE's
 * shape, the dataset's rows and labels), without refs (the worker reading a
 * stored spec back) it only reads. The normalised JSON is written from the
 * struct, so the stored spec shows exactly what will run. */
#include "spec_analysis.h"
#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const spec_analysis_analyze_keys[] = { "type", "sae", "dataset", "n_samples", "neighbors",
                                                          "cluster", NULL };
static const char *const spec_analysis_cluster_keys[] = { "method", "group_size", "min_similarity", NULL };
static const char *const spec_analysis_pca_keys[] = { "type", "sae", "dataset", "rows", "top_latents",
                                                      "components", NULL };
static const char *const spec_analysis_rows_keys[] = { "labels", "indices", NULL };
static const char *const spec_analysis_cluster_names[] = { [SPEC_ANALYSIS_CLUSTER_COSINE] = "cosine",
                                                           [SPEC_ANALYSIS_CLUSTER_JACCARD] = "jaccard" };

/* ---- shared ---- */

void spec_analysis_ids(const json_t *body, int64_t *sae, int64_t *dataset)
{
    json_t *s = json_object_get(body, "sae"), *d = json_object_get(body, "dataset");
    *sae = json_is_integer(s) && json_integer_value(s) > 0 ? json_integer_value(s) : 0;
    *dataset = json_is_integer(d) && json_integer_value(d) > 0 ? json_integer_value(d) : 0;
}

static void spec_analysis_type(const json_t *body, const char *want, spec_errors *errs)
{
    const char *type = NULL;
    int rc = spec_get_string(body, "", "type", &type, errs);
    if (rc == 0) spec_error_add(errs, 400, "type", "required: \"%s\"", want);
    if (rc == 1 && strcmp(type, want)) spec_error_add(errs, 422, "type", "expected \"%s\"", want);
}

/* "sae" (required) and "dataset" (default: the SAE's); refs checks existence and dims. */
static void spec_analysis_sae_dataset(const json_t *body, const spec_analysis_refs *refs, int64_t *sae,
                                      int64_t *dataset, spec_errors *errs)
{
    long long x;
    int rc = spec_get_int(body, "", "sae", 1, LLONG_MAX, &x, errs);
    if (rc == 0) spec_error_add(errs, 400, "sae", "required: the id of the SAE to analyse");
    *sae = rc == 1 ? x : 0;
    rc = spec_get_int(body, "", "dataset", 1, LLONG_MAX, &x, errs);
    *dataset = rc == 1 ? x : 0;
    if (!refs || !*sae || rc < 0) return;
    if (!refs->sae_found) {
        spec_error_add(errs, 422, "sae", "SAE %lld does not exist; train one with POST /v1/jobs {\"type\":\"train\"}",
                       (long long)*sae);
        return;
    }
    if (rc == 0) *dataset = refs->sae_dataset;
    const char *field = rc == 0 ? "sae" : "dataset";
    if (!*dataset || !refs->dataset_found)
        spec_error_add(errs, 422, field, rc == 0 ? "the SAE's training dataset no longer exists; name a dataset"
                       : "dataset %lld does not exist; create one with POST /v1/datasets", (long long)*dataset);
    else if (refs->dataset_dim != refs->sae_dim)
        spec_error_add(errs, 422, field, "dataset %lld has rows of %d values but SAE %lld expects %d",
                       (long long)*dataset, refs->dataset_dim, (long long)*sae, refs->sae_dim);
}

/* ---- analyze ---- */

static void spec_analysis_parse_cluster(const json_t *c, const spec_analysis_refs *refs, spec_analysis_analyze *a,
                                        spec_errors *errs)
{
    const char *method = NULL;
    long long x;
    double d;
    spec_check_fields(c, "cluster", spec_analysis_cluster_keys, errs);
    int rc = spec_get_string(c, "cluster", "method", &method, errs);
    if (rc == 0) spec_error_add(errs, 400, "cluster.method", "required: \"cosine\" or \"jaccard\"");
    if (rc == 1 && !strcmp(method, "cosine")) a->cluster = SPEC_ANALYSIS_CLUSTER_COSINE;
    else if (rc == 1 && !strcmp(method, "jaccard")) a->cluster = SPEC_ANALYSIS_CLUSTER_JACCARD;
    else if (rc == 1) spec_error_add(errs, 422, "cluster.method", "'%.40s' is not a method; use cosine or jaccard",
                                     method);
    if (spec_get_int(c, "cluster", "group_size", 2, SPEC_ANALYSIS_CLUSTER_MAX_GROUP, &x, errs) == 1)
        a->cluster_group_size = (int)x;
    if (spec_get_number(c, "cluster", "min_similarity", -1.0, 1.0, &d, errs) == 1) a->cluster_min_sim = (float)d;
    if (!refs || !refs->sae_found) return;
    if (refs->sae_group_size != 1)
        spec_error_add(errs, 422, "cluster", "clustering groups the latents of an ordinary SAE (group_size 1); this "
                       "SAE already has groups (%s): leave cluster out",
                       refs->sae_group_size ? "of equal size" : "listed, of any size");
    else if (refs->sae_n_latents % a->cluster_group_size)
        spec_error_add(errs, 422, "cluster.group_size", "must divide the SAE's %d latents", refs->sae_n_latents);
}

/* Rough bytes of an analyze job beyond the firing pattern (whose size depends on l0). */
static size_t spec_analysis_analyze_bytes(const spec_analysis_refs *refs, int K)
{
    size_t n = (size_t)refs->sae_n_latents, dim = (size_t)refs->sae_dim;
    size_t weights = (2 * n * dim + n + dim) * 4, per_latent = 8 + 8 + 4 + 4 + 32 * 8 + 4 * (size_t)K * 8 + 64;
    size_t batch = 1024 * (n + 2 * dim) * 4;
    return weights + n * per_latent + batch;
}

static void spec_analysis_read_analyze(const json_t *body, const spec_analysis_refs *refs, size_t max_bytes,
                                       spec_analysis_analyze *a, spec_errors *errs)
{
    long long x;
    memset(a, 0, sizeof *a);
    a->neighbors = SPEC_ANALYSIS_DEFAULT_NEIGHBORS;
    a->cluster_group_size = 2;
    spec_check_fields(body, "", spec_analysis_analyze_keys, errs);
    spec_analysis_type(body, "analyze", errs);
    spec_analysis_sae_dataset(body, refs, &a->sae, &a->dataset, errs);
    int64_t cap = refs && refs->dataset_found && refs->dataset_n_rows >= 0 ? refs->dataset_n_rows
                                                                            : SPEC_ANALYSIS_MAX_SAMPLES;
    cap = cap < SPEC_ANALYSIS_MAX_SAMPLES ? cap : SPEC_ANALYSIS_MAX_SAMPLES;
    a->n_samples = SPEC_ANALYSIS_DEFAULT_SAMPLES < cap ? SPEC_ANALYSIS_DEFAULT_SAMPLES : cap;
    if (spec_get_int(body, "", "n_samples", 1, SPEC_ANALYSIS_MAX_SAMPLES, &x, errs) == 1) {
        a->n_samples = x;
        if (x > cap) spec_error_add(errs, 422, "n_samples", "the dataset has only %lld rows", (long long)cap);
    }
    if (spec_get_int(body, "", "neighbors", 1, SPEC_ANALYSIS_MAX_NEIGHBORS, &x, errs) == 1) a->neighbors = (int)x;
    json_t *c = json_object_get(body, "cluster");
    if (c && !json_is_null(c) && !json_is_object(c))
        spec_error_add(errs, 400, "cluster", "must be an object {\"method\": \"cosine\", \"group_size\": 2} or null");
    else if (json_is_object(c))
        spec_analysis_parse_cluster(c, refs, a, errs);
    if (refs && refs->sae_found && !errs->n && max_bytes && spec_analysis_analyze_bytes(refs, a->neighbors) > max_bytes)
        spec_error_add(errs, 422, "sae", "analysing this SAE needs more than the %.2f GiB limit (max_job_bytes)",
                       (double)max_bytes / (1 << 30));
}

static json_t *spec_analysis_analyze_json(const spec_analysis_analyze *a)
{
    json_t *cluster = json_null();
    if (a->cluster)
        cluster = json_pack("{s:s,s:i,s:o}", "method", spec_analysis_cluster_names[a->cluster], "group_size",
                            a->cluster_group_size, "min_similarity", spec_json_float(a->cluster_min_sim));
    return json_pack("{s:s,s:I,s:I,s:I,s:i,s:o}", "type", "analyze", "sae", (json_int_t)a->sae, "dataset",
                     (json_int_t)a->dataset, "n_samples", (json_int_t)a->n_samples, "neighbors", a->neighbors,
                     "cluster", cluster);
}

json_t *spec_analysis_normalize_analyze(const json_t *body, const spec_analysis_refs *refs, size_t max_bytes,
                                        spec_errors *errs)
{
    spec_analysis_analyze a;
    spec_analysis_read_analyze(body, refs, max_bytes, &a, errs);
    return errs->n ? NULL : spec_analysis_analyze_json(&a);
}

int spec_analysis_parse_analyze(const char *spec_json, spec_analysis_analyze *out, spec_errors *errs)
{
    assert(out && errs);
    int n_before = errs->n;
    json_t *j = spec_stored(spec_json, errs);
    if (!j) return -1;
    spec_analysis_read_analyze(j, NULL, 0, out, errs);
    json_decref(j);
    return errs->n == n_before ? 0 : -1;
}

/* ---- pca ---- */

static void spec_analysis_parse_indices(const json_t *v, const spec_analysis_refs *refs, spec_analysis_pca *p,
                                        spec_errors *errs)
{
    size_t n = json_array_size(v), i;
    json_t *e;
    if (!json_is_array(v)) {
        spec_error_add(errs, 400, "rows.indices", "must be an array of row indices");
        return;
    }
    if (n < 2 || n > SPEC_ANALYSIS_PCA_MAX_ROWS) {
        spec_error_add(errs, 422, "rows.indices", "give from 2 to %d rows", SPEC_ANALYSIS_PCA_MAX_ROWS);
        return;
    }
    p->indices = malloc(n * sizeof *p->indices);
    if (!p->indices) { spec_error_add(errs, 422, "rows.indices", "out of memory"); return; }
    int64_t max = refs && refs->dataset_found && refs->dataset_n_rows >= 0 ? refs->dataset_n_rows : INT32_MAX;
    json_array_foreach(v, i, e) {
        if (!json_is_integer(e)) {
            spec_error_add(errs, 400, "rows.indices", "item %zu is not an integer", i);
            return;
        }
        if (json_integer_value(e) < 0 || json_integer_value(e) >= max) {
            spec_error_add(errs, 422, "rows.indices", "item %zu (%lld) is not a row: rows are 0 .. %lld", i,
                           (long long)json_integer_value(e), (long long)max - 1);
            return;
        }
        p->indices[p->n_indices++] = json_integer_value(e);
    }
}

static void spec_analysis_parse_labels(const json_t *v, const spec_analysis_refs *refs, spec_analysis_pca *p,
                                       spec_errors *errs)
{
    size_t n = json_array_size(v), i;
    json_t *e;
    if (!json_is_array(v)) {
        spec_error_add(errs, 400, "rows.labels", "must be an array of label strings");
        return;
    }
    if (n < 1 || n > SPEC_ANALYSIS_PCA_MAX_LABELS) {
        spec_error_add(errs, 422, "rows.labels", "give from 1 to %d labels", SPEC_ANALYSIS_PCA_MAX_LABELS);
        return;
    }
    json_array_foreach(v, i, e)
        if (!json_is_string(e)) {
            spec_error_add(errs, 400, "rows.labels", "item %zu is not a string", i);
            return;
        }
    if (refs && refs->dataset_found && !refs->dataset_has_labels) {
        spec_error_add(errs, 422, "rows.labels", "dataset %lld has no labels; choose rows with \"indices\" or add "
                       "labels (PUT /v1/datasets/%lld/labels)", (long long)refs->dataset_id,
                       (long long)refs->dataset_id);
        return;
    }
    p->labels = calloc(n, sizeof *p->labels);
    for (i = 0; p->labels && i < n; i++) {
        p->labels[i] = strdup(json_string_value(json_array_get(v, i)));
        if (!p->labels[i]) break;
        p->n_labels++;
    }
    if (p->n_labels < (int)n) spec_error_add(errs, 422, "rows.labels", "out of memory");
}

static void spec_analysis_parse_rows(const json_t *body, const spec_analysis_refs *refs, spec_analysis_pca *p,
                                     spec_errors *errs)
{
    json_t *rows = json_object_get(body, "rows");
    if (!json_is_object(rows)) {
        spec_error_add(errs, 400, "rows", "%s: {\"labels\": [...]} or {\"indices\": [...]}",
                       rows ? "must be an object" : "required");
        return;
    }
    spec_check_fields(rows, "rows", spec_analysis_rows_keys, errs);
    json_t *labels = json_object_get(rows, "labels"), *indices = json_object_get(rows, "indices");
    if (labels && indices) spec_error_add(errs, 422, "rows", "give labels or indices, not both");
    else if (!labels && !indices) spec_error_add(errs, 400, "rows", "required: \"labels\" or \"indices\"");
    else if (labels) spec_analysis_parse_labels(labels, refs, p, errs);
    else spec_analysis_parse_indices(indices, refs, p, errs);
}

static void spec_analysis_read_pca(const json_t *body, const spec_analysis_refs *refs, spec_analysis_pca *p,
                                   spec_errors *errs)
{
    long long x;
    memset(p, 0, sizeof *p);
    spec_check_fields(body, "", spec_analysis_pca_keys, errs);
    spec_analysis_type(body, "pca", errs);
    spec_analysis_sae_dataset(body, refs, &p->sae, &p->dataset, errs);
    spec_analysis_parse_rows(body, refs, p, errs);
    int n = refs && refs->sae_found ? refs->sae_n_latents : SPEC_ANALYSIS_PCA_MAX_LATENTS;
    int max_l = n < SPEC_ANALYSIS_PCA_MAX_LATENTS ? n : SPEC_ANALYSIS_PCA_MAX_LATENTS;
    p->top_latents = SPEC_ANALYSIS_PCA_DEFAULT_LATENTS < max_l ? SPEC_ANALYSIS_PCA_DEFAULT_LATENTS : max_l;
    if (spec_get_int(body, "", "top_latents", 1, max_l, &x, errs) == 1) p->top_latents = (int)x;
    int dim = refs && refs->sae_found ? refs->sae_dim : INT_MAX;
    int max_c = p->top_latents < dim ? p->top_latents : dim;
    p->components = SPEC_ANALYSIS_PCA_DEFAULT_COMPONENTS < max_c ? SPEC_ANALYSIS_PCA_DEFAULT_COMPONENTS : max_c;
    if (spec_get_int(body, "", "components", 1, INT_MAX, &x, errs) == 1) {
        p->components = (int)x;
        if (x > max_c) spec_error_add(errs, 422, "components", "must be at most top_latents (%d) and the SAE's dim",
                                      max_c);
    }
    if (p->n_indices && p->components > p->n_indices)
        spec_error_add(errs, 422, "components", "must be at most the number of rows (%d)", p->n_indices);
}

static json_t *spec_analysis_pca_json(const spec_analysis_pca *p)
{
    json_t *list = json_array(), *rows;
    for (int i = 0; i < p->n_indices; i++) json_array_append_new(list, json_integer(p->indices[i]));
    for (int i = 0; i < p->n_labels; i++) json_array_append_new(list, json_string(p->labels[i]));
    rows = json_pack("{s:o}", p->labels ? "labels" : "indices", list);
    return json_pack("{s:s,s:I,s:I,s:o,s:i,s:i}", "type", "pca", "sae", (json_int_t)p->sae, "dataset",
                     (json_int_t)p->dataset, "rows", rows, "top_latents", p->top_latents, "components",
                     p->components);
}

json_t *spec_analysis_normalize_pca(const json_t *body, const spec_analysis_refs *refs, spec_errors *errs)
{
    spec_analysis_pca p;
    spec_analysis_read_pca(body, refs, &p, errs);
    json_t *out = errs->n ? NULL : spec_analysis_pca_json(&p);
    spec_analysis_pca_free(&p);
    return out;
}

int spec_analysis_parse_pca(const char *spec_json, spec_analysis_pca *out, spec_errors *errs)
{
    assert(out && errs);
    int n_before = errs->n;
    json_t *j = spec_stored(spec_json, errs);
    if (!j) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    spec_analysis_read_pca(j, NULL, out, errs);
    json_decref(j);
    if (errs->n == n_before) return 0;
    spec_analysis_pca_free(out);
    return -1;
}

void spec_analysis_pca_free(spec_analysis_pca *p)
{
    for (int i = 0; i < p->n_labels; i++) free(p->labels[i]);
    free(p->labels);
    free(p->indices);
    p->labels = NULL;
    p->indices = NULL;
    p->n_labels = p->n_indices = 0;
}
