/* api/analysis_jobs.c — POST /v1/jobs for the types `analyze` and `pca`.
 *
 * The ids a body names are looked up first (the SAE, and the dataset it
 * names or else the SAE's training dataset) so spec_analysis.c can judge the
 * body against them: unknown ids and mismatched dims are 422 naming the
 * field. The normalised spec is stored with the job, dataset_id and sae_id
 * set (so the dataset cannot be deleted while the job waits), and total_steps
 * = the rows the job will encode (n_samples; the indices for pca; 0 when
 * pca chooses rows by label, which is only known as it runs). */
#include "internal.h"
#include "spec_analysis.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fills refs from the store; -1 after replying 500. */
static int anjobs_refs(api_req *r, const json_t *body, spec_refs *refs)
{
    int64_t sae_id, ds_id;
    store_sae s = { 0 };
    store_dataset d = { 0 };
    memset(refs, 0, sizeof *refs);
    spec_analysis_ids(body, &sae_id, &ds_id);
    int rc = sae_id ? store_sae_get(r->st, sae_id, &s) : STORE_NOTFOUND;
    if (rc == STORE_OK) {
        refs->sae_found = 1;
        refs->sae_dim = s.dim, refs->sae_n_latents = s.n_latents, refs->sae_group_size = s.group_size;
        refs->sae_dataset = s.dataset_id;
        if (!ds_id) ds_id = s.dataset_id;
        store_sae_clear(&s);
    }
    if (rc != STORE_ERROR && ds_id) rc = store_dataset_get(r->st, ds_id, &d);
    if (rc == STORE_ERROR) {
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read the SAE or dataset: %s", store_errmsg(r->st));
        return -1;
    }
    if (rc == STORE_OK && ds_id) {
        refs->dataset_found = 1, refs->dataset_id = d.id, refs->dataset_dim = d.dim;
        refs->dataset_n_rows = d.n_rows, refs->dataset_has_labels = d.has_labels;
        store_dataset_clear(&d);
    }
    return 0;
}

/* Stores spec (stolen) as a queued job and replies 202 with it. */
static enum MHD_Result anjobs_queue(api_req *r, const char *type, json_t *spec, int total)
{
    int64_t sae = json_integer_value(json_object_get(spec, "sae"));
    int64_t ds = json_integer_value(json_object_get(spec, "dataset"));
    char *text = json_dumps(spec, API_JSON_FLAGS);
    json_decref(spec);
    if (!text) return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    int64_t id = 0;
    int rc = store_job_insert(r->st, type, text, ds, sae, total, &id);
    free(text);
    if (rc == STORE_NOTFOUND)
        return api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "dataset", "the SAE or dataset no longer exists");
    store_job j = { 0 };
    if (rc != STORE_OK || store_job_get(r->st, id, &j) != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot queue the job: %s", store_errmsg(r->st));
    json_t *obj = jobs_object(&j);
    store_job_clear(&j);
    char location[64];
    snprintf(location, sizeof location, "/v1/jobs/%lld", (long long)id);
    return api_created(r, MHD_HTTP_ACCEPTED, location, obj);
}

enum MHD_Result anjobs_create_analyze(api_req *r, const json_t *body)
{
    spec_errors errs = { 0 };
    spec_refs refs;
    if (!api_store(r) || anjobs_refs(r, body, &refs)) return MHD_YES;
    json_t *spec = spec_normalize_analyze(body, &refs, r->srv->cfg.max_job_bytes, &errs);
    if (!spec) return api_problem_fields(r, &errs, NULL);
    int total = (int)json_integer_value(json_object_get(spec, "n_samples"));
    return anjobs_queue(r, "analyze", spec, total);
}

enum MHD_Result anjobs_create_pca(api_req *r, const json_t *body)
{
    spec_errors errs = { 0 };
    spec_refs refs;
    if (!api_store(r) || anjobs_refs(r, body, &refs)) return MHD_YES;
    json_t *spec = spec_normalize_pca(body, &refs, &errs);
    if (!spec) return api_problem_fields(r, &errs, NULL);
    int total = (int)json_array_size(json_object_get(json_object_get(spec, "rows"), "indices"));
    return anjobs_queue(r, "pca", spec, total);
}
