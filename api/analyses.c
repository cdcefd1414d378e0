/* api/analyses.c — results of pca jobs: GET /v1/analyses/{id} and its
 * arrays points.npy (rows, components), components.npy (components, dim) and
 * mean.npy (dim), served as the job wrote them (data_dir/analyses/pca-{job}).
 *
 * The object: {"id","job","sae","dataset","n_rows","components","latents",
 * "explained_variance","explained_variance_ratio","rows","labels",
 * "created_at"}; row k of points.npy is rows[k] (and labels[k], null when
 * the dataset has no labels). */
#include "internal.h"
#include <stdio.h>

/* Loads analysis r->ids[0]; -1 after replying. */
static int analyses_load(api_req *r, store_analysis *a)
{
    store *st = api_store(r);
    if (!st) return -1;
    int rc = store_analysis_get(st, r->ids[0], a);
    if (rc == STORE_OK) return 0;
    if (rc == STORE_NOTFOUND) api_problem(r, MHD_HTTP_NOT_FOUND, "analysis %lld does not exist", (long long)r->ids[0]);
    else api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read analysis %lld: %s", (long long)r->ids[0],
                     store_errmsg(st));
    return -1;
}

enum MHD_Result analyses_get(api_req *r)
{
    store_analysis a;
    if (analyses_load(r, &a)) return MHD_YES;
    json_t *o = json_pack("{s:I,s:o,s:o,s:o,s:i,s:i,s:o,s:o,s:o,s:o,s:o,s:s}", "id", (json_int_t)a.id,
                          "job", a.job_id ? json_integer(a.job_id) : json_null(),
                          "sae", a.sae_id ? json_integer(a.sae_id) : json_null(),
                          "dataset", a.dataset_id ? json_integer(a.dataset_id) : json_null(),
                          "n_rows", a.n_rows, "components", a.n_components,
                          "latents", api_json_stored(a.latents_json),
                          "explained_variance", api_json_stored(a.variance_json),
                          "explained_variance_ratio", api_json_stored(a.ratio_json),
                          "rows", api_json_stored(a.rows_json), "labels", api_json_stored(a.labels_json),
                          "created_at", a.created_at);
    store_analysis_clear(&a);
    return api_send_json(r, MHD_HTTP_OK, o);
}

static enum MHD_Result analyses_file(api_req *r, const char *name)
{
    store_analysis a;
    if (analyses_load(r, &a)) return MHD_YES;
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", a.dir ? a.dir : "", name);
    int ok = a.dir && *a.dir && n > 0 && (size_t)n < sizeof path;
    store_analysis_clear(&a);
    if (!ok) return api_problem(r, MHD_HTTP_NOT_FOUND, "analysis %lld has no files", (long long)r->ids[0]);
    return api_send_file(r, path, "application/octet-stream", "no-cache");
}

enum MHD_Result analyses_points(api_req *r) { return analyses_file(r, "points.npy"); }
enum MHD_Result analyses_components(api_req *r) { return analyses_file(r, "components.npy"); }
enum MHD_Result analyses_mean(api_req *r) { return analyses_file(r, "mean.npy"); }
