/* api/compare.c — GET /v1/compare?saes=3,4: SAEs side by side, each with its
 * shape, training metrics, and (when it has been analysed) the summary of
 * its latest analysis and its circle recovery. An SAE that has not been
 * analysed is still listed, with "analysis" and "recovery" null, so the
 * comparison can be requested before every analyze job has finished; an
 * unknown id is 404. At most COMPARE_MAX SAEs per request. */
#include "internal.h"
#include <stdio.h>
#include <string.h>

#define COMPARE_MAX 16

static json_t *compare_analysis(const store_sae_analysis *a)
{
    return json_pack("{s:I,s:I,s:I,s:i,s:i,s:o,s:o,s:s}", "job", (json_int_t)a->job_id, "dataset",
                     (json_int_t)a->dataset_id, "n_samples", (json_int_t)a->n_samples, "group_size", a->group_size,
                     "n_groups", a->n_groups, "cluster", api_json_stored(a->cluster_json), "summary",
                     api_json_stored(a->summary_json), "created_at", a->created_at);
}

/* One SAE's entry; NULL after replying. */
static json_t *compare_one(api_req *r, int64_t id)
{
    store_sae s;
    store_sae_analysis a;
    int rc = store_sae_get(r->st, id, &s);
    if (rc != STORE_OK) {
        if (rc == STORE_NOTFOUND) api_problem_field(r, MHD_HTTP_NOT_FOUND, "saes", "SAE %lld does not exist",
                                                    (long long)id);
        else api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read SAE %lld: %s", (long long)id,
                         store_errmsg(r->st));
        return NULL;
    }
    rc = store_sae_analysis_get(r->st, id, &a);
    json_t *o = json_pack("{s:I,s:I,s:i,s:i,s:i,s:o,s:o}", "id", (json_int_t)s.id, "dataset",
                          (json_int_t)s.dataset_id, "n_latents", s.n_latents, "dim", s.dim, "group_size",
                          s.group_size, "config", api_json_stored(s.config_json), "metrics",
                          api_json_stored(s.metrics_json));
    json_object_set_new(o, "analysis", rc == STORE_OK ? compare_analysis(&a) : json_null());
    json_object_set_new(o, "recovery", rc == STORE_OK ? api_json_stored(a.recovery_json) : json_null());
    if (rc == STORE_OK) store_sae_analysis_clear(&a);
    store_sae_clear(&s);
    if (rc == STORE_ERROR) {
        json_decref(o);
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read the analysis of SAE %lld: %s", (long long)id,
                    store_errmsg(r->st));
        return NULL;
    }
    return o;
}

enum MHD_Result compare_get(api_req *r)
{
    int64_t ids[COMPARE_MAX];
    int n = 0;
    int q = saes_analysis_query_list(r, "saes", 1, INT64_MAX, COMPARE_MAX, ids, &n);
    if (q < 0) return MHD_YES;
    if (q == 0) return api_problem_field(r, MHD_HTTP_BAD_REQUEST, "saes", "required: ?saes=3,4");
    if (!api_store(r)) return MHD_YES;
    json_t *list = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = compare_one(r, ids[i]);
        if (!o) {
            json_decref(list);
            return MHD_YES;
        }
        json_array_append_new(list, o);
    }
    return api_send_json(r, MHD_HTTP_OK, json_pack("{s:o}", "saes", list));
}
