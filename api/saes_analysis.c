/* api/saes_analysis.c — an SAE's analyze results: GET /v1/saes/{id}/analysis,
 * /latents, /latents/{i}, /jaccard?latents=, /groups, /recovery.
 *
 * Everything but /jaccard is read from the store rows the analyze job wrote
 * (lists are sorted and paged in SQL). /jaccard maps the job's latent-major
 * firing pattern (firing.bin, see artifacts.h) and intersects the sorted
 * row lists of the latents asked for, so it is exact for any pair without an
 * n x n matrix; the merges run on the HTTP thread, so one request may step
 * through at most SAES_ANALYSIS_JACCARD_BUDGET row ids (a 422 naming
 * "latents" beyond). An SAE that has not been analysed answers 409 with the job
 * to submit. Lists page with ?after=INDEX (the last latent or group of the
 * previous page, in the order asked for); without it they start at the top. */
#include "internal.h"
#include "artifacts.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Row ids one GET /jaccard may merge on the HTTP thread: ~20 ms at the ~900 M ids/s measured. */
#define SAES_ANALYSIS_JACCARD_BUDGET ((int64_t)1 << 24)

/* ---- shared ---- */

int saes_analysis_load(api_req *r, store_sae *s, store_sae_analysis *a)
{
    store *st = api_store(r);
    if (!st) return -1;
    int rc = store_sae_get(st, r->ids[0], s);
    if (rc == STORE_OK && a) {
        rc = store_sae_analysis_get(st, r->ids[0], a);
        if (rc == STORE_NOTFOUND) {
            api_problem(r, MHD_HTTP_CONFLICT, "SAE %lld has no analysis yet; run an analyze job first: POST /v1/jobs "
                        "{\"type\":\"analyze\",\"sae\":%lld,\"dataset\":%lld,\"n_samples\":100000}",
                        (long long)s->id, (long long)s->id, (long long)s->dataset_id);
            store_sae_clear(s);
            return -1;
        }
        if (rc != STORE_OK) store_sae_clear(s);
    }
    if (rc == STORE_OK) return 0;
    if (rc == STORE_NOTFOUND) api_problem(r, MHD_HTTP_NOT_FOUND, "SAE %lld does not exist", (long long)r->ids[0]);
    else api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read SAE %lld: %s", (long long)r->ids[0],
                     store_errmsg(st));
    return -1;
}

int saes_analysis_query_list(api_req *r, const char *name, int64_t min, int64_t max, int cap, int64_t *out, int *n)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name), *p = v;
    *n = 0;
    if (!v) return 0;
    while (*p) {
        char *end = (char *)p;
        long long x = 0;
        errno = 0;
        if (*p >= '0' && *p <= '9') x = strtoll(p, &end, 10);
        if (end == p || errno || (*end && *end != ',') || (*end == ',' && !end[1])) {
            api_problem_field(r, MHD_HTTP_BAD_REQUEST, name, "?%s= must be comma-separated integers, e.g. 1,2,3", name);
            return -1;
        }
        if (*n == cap) {
            api_problem_field(r, MHD_HTTP_BAD_REQUEST, name, "?%s= may list at most %d ids", name, cap);
            return -1;
        }
        if (x < min || x > max) {
            api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, name, "%lld is out of range: use %lld to %lld", x,
                              (long long)min, (long long)max);
            return -1;
        }
        out[(*n)++] = x;
        p = *end ? end + 1 : end;
    }
    if (*n == 0) {
        api_problem_field(r, MHD_HTTP_BAD_REQUEST, name, "?%s= is empty; list ids, e.g. 1,2,3", name);
        return -1;
    }
    return 1;
}

/* ?sort= among names (index = the STORE_SORT_* value); -1 after replying 400. */
static int saes_analysis_sort(api_req *r, const char *const *names, int count)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "sort");
    if (!v) return 0;
    for (int i = 0; i < count; i++)
        if (!strcmp(v, names[i])) return i;
    api_problem_field(r, MHD_HTTP_BAD_REQUEST, "sort", "?sort= must be %s%s%s%s%s", names[0], count > 1 ? " or " : "",
                      count > 1 ? names[1] : "", count > 2 ? " or " : "", count > 2 ? names[2] : "");
    return -1;
}

/* ?limit= and ?after= (an index, absent = from the top); -1 after replying. */
static int saes_analysis_page(api_req *r, int *limit, int64_t *after)
{
    long long l = API_LIST_DEFAULT, a = -1;
    if (api_query_int(r, "limit", 1, API_LIST_MAX, &l) < 0 || api_query_int(r, "after", 0, INT32_MAX, &a) < 0)
        return -1;
    *limit = (int)l;
    *after = a;
    return 0;
}

/* ---- GET /v1/saes/{id}/analysis ---- */

enum MHD_Result saes_analysis_get(api_req *r)
{
    store_sae s;
    store_sae_analysis a;
    if (saes_analysis_load(r, &s, &a)) return MHD_YES;
    json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:i,s:i,s:i,s:o,s:o,s:o,s:s}", "sae", (json_int_t)s.id,
                          "job", (json_int_t)a.job_id, "dataset", (json_int_t)a.dataset_id,
                          "n_samples", (json_int_t)a.n_samples, "n_latents", s.n_latents, "group_size", a.group_size,
                          "n_groups", a.n_groups, "cluster", api_json_stored(a.cluster_json),
                          "summary", api_json_stored(a.summary_json), "recovery", api_json_stored(a.recovery_json),
                          "created_at", a.created_at);
    store_sae_clear(&s);
    store_sae_analysis_clear(&a);
    return api_send_json(r, MHD_HTTP_OK, o);
}

/* ---- latents ---- */

static json_t *saes_analysis_latent_item(const store_latent *l)
{
    return json_pack("{s:i,s:i,s:o,s:o,s:o}", "latent", l->latent, "group", l->group, "density",
                     api_json_num(l->density), "mean_act", api_json_num(l->mean_act), "max_act",
                     api_json_num(l->max_act));
}

enum MHD_Result saes_analysis_latents(api_req *r)
{
    static const char *const sorts[] = { "latent", "density" };
    int limit, n = 0, sort;
    int64_t after;
    store_sae s;
    store_sae_analysis a;
    if (saes_analysis_page(r, &limit, &after) || (sort = saes_analysis_sort(r, sorts, 2)) < 0 ||
        saes_analysis_load(r, &s, &a))
        return MHD_YES;
    store_sae_clear(&s);
    store_sae_analysis_clear(&a);
    store_latent *items = NULL;
    if (store_sae_latents_list(r->st, r->ids[0], sort, after, limit + 1, &items, &n) != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot list latents: %s", store_errmsg(r->st));
    json_t *arr = json_array();
    for (int i = 0; i < n && i < limit; i++) json_array_append_new(arr, saes_analysis_latent_item(&items[i]));
    int more = n > limit;
    int64_t last = more ? items[limit - 1].latent : 0;
    store_latent_list_free(items, n);
    return api_send_json(r, MHD_HTTP_OK, api_list(arr, more, last));
}

enum MHD_Result saes_analysis_latent(api_req *r)
{
    store_sae s;
    store_sae_analysis a;
    if (saes_analysis_load(r, &s, &a)) return MHD_YES;
    int n_latents = s.n_latents;
    store_sae_clear(&s);
    store_sae_analysis_clear(&a);
    if (r->ids[1] >= n_latents)
        return api_problem(r, MHD_HTTP_NOT_FOUND, "latent %lld does not exist: SAE %lld has latents 0 .. %d",
                           (long long)r->ids[1], (long long)r->ids[0], n_latents - 1);
    store_latent l;
    int rc = store_sae_latent_get(r->st, r->ids[0], (int)r->ids[1], &l);
    if (rc == STORE_NOTFOUND) return api_problem(r, MHD_HTTP_NOT_FOUND, "latent %lld was not analysed",
                                                 (long long)r->ids[1]);
    if (rc != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read the latent: %s", store_errmsg(r->st));
    json_t *o = saes_analysis_latent_item(&l);
    json_object_set_new(o, "histogram", api_json_stored(l.hist_json));
    json_object_set_new(o, "neighbors_cos", api_json_stored(l.cos_json));
    json_object_set_new(o, "neighbors_jaccard", api_json_stored(l.jaccard_json));
    store_latent_clear(&l);
    return api_send_json(r, MHD_HTTP_OK, o);
}

/* ---- GET /v1/saes/{id}/jaccard?latents= ---- */

/* Row ids the merges of saes_analysis_jaccard_matrix step through: na + nb for each pair a < b of distinct
 * latents. */
static int64_t saes_analysis_jaccard_work(const artifacts_table *t, const int64_t *lat, int L)
{
    int64_t work = 0;
    for (int a = 0; a < L; a++) {
        const void *p;
        int64_t na = artifacts_table_get(t, lat[a], &p);
        for (int b = a + 1; b < L; b++)
            if (lat[a] != lat[b]) work += na + artifacts_table_get(t, lat[b], &p);
    }
    return work;
}

/* J(lat[a], lat[b]) from the mapped firing pattern into a JSON matrix; the upper triangle is computed and
 * mirrored (J is symmetric). */
static json_t *saes_analysis_jaccard_matrix(const artifacts_table *t, const int64_t *lat, int L)
{
    double *J = malloc((size_t)L * L * sizeof *J); /* (L, L) */
    if (!J) return NULL;
    for (int a = 0; a < L; a++) {
        const void *ra;
        int64_t na = artifacts_table_get(t, lat[a], &ra);
        for (int b = a; b < L; b++) {
            const void *rb;
            int64_t nb = artifacts_table_get(t, lat[b], &rb);
            int64_t both = lat[a] == lat[b] ? na : artifacts_intersect(ra, na, rb, nb);
            int64_t any = na + nb - both;
            J[(size_t)a * L + b] = J[(size_t)b * L + a] = any > 0 ? (double)both / (double)any : 0.0;
        }
    }
    json_t *m = json_array();
    for (int a = 0; a < L; a++) {
        json_t *row = json_array();
        for (int b = 0; b < L; b++) json_array_append_new(row, json_real(J[(size_t)a * L + b]));
        json_array_append_new(m, row);
    }
    free(J);
    return m;
}

enum MHD_Result saes_analysis_jaccard(api_req *r)
{
    int64_t lat[ARTIFACTS_JACCARD_MAX];
    int L = 0;
    char path[4096 + 16], err[512];
    store_sae s;
    store_sae_analysis a;
    if (saes_analysis_load(r, &s, &a)) return MHD_YES;
    int n_latents = s.n_latents;
    snprintf(path, sizeof path, "%s/firing.bin", a.dir ? a.dir : "");
    store_sae_clear(&s);
    store_sae_analysis_clear(&a);
    int q = saes_analysis_query_list(r, "latents", 0, n_latents - 1, ARTIFACTS_JACCARD_MAX, lat, &L);
    if (q < 0) return MHD_YES;
    if (q == 0) return api_problem_field(r, MHD_HTTP_BAD_REQUEST, "latents", "required: ?latents=1,2,3");
    artifacts_table *t;
    if (artifacts_table_open(path, ARTIFACTS_FIRING_MAGIC, sizeof(int32_t), &t, err, sizeof err))
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
    int64_t work = saes_analysis_jaccard_work(t, lat, L);
    if (work > SAES_ANALYSIS_JACCARD_BUDGET) {
        artifacts_table_close(t);
        return api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "latents", "these %d latents' pairs would merge "
                                 "%lld row ids, more than the %lld one request may: ask for fewer latents (or "
                                 "less dense ones) per request", L, (long long)work,
                                 (long long)SAES_ANALYSIS_JACCARD_BUDGET);
    }
    json_t *lats = json_array();
    for (int i = 0; i < L; i++) json_array_append_new(lats, json_integer(lat[i]));
    json_t *o = json_pack("{s:o,s:o,s:I}", "latents", lats, "matrix", saes_analysis_jaccard_matrix(t, lat, L),
                          "n_samples", (json_int_t)artifacts_table_aux(t));
    artifacts_table_close(t);
    return api_send_json(r, MHD_HTTP_OK, o);
}

/* ---- groups ---- */

json_t *saes_analysis_group_item(const store_group *g)
{
    return json_pack("{s:i,s:o,s:o,s:o,s:o,s:o,s:o}", "group", g->group, "members", api_json_stored(g->members_json),
                     "density", api_json_num(g->density), "jaccard", api_json_num(g->jaccard),
                     "max_cos", api_json_num(g->max_cos), "circle", g->circle >= 0 ? json_integer(g->circle)
                     : json_null(), "plane_fit", g->circle >= 0 ? api_json_num(g->plane_fit) : json_null());
}

enum MHD_Result saes_analysis_groups(api_req *r)
{
    static const char *const sorts[] = { "group", "density", "jaccard" };
    int limit, n = 0, sort;
    int64_t after;
    store_sae s;
    store_sae_analysis a;
    if (saes_analysis_page(r, &limit, &after) || (sort = saes_analysis_sort(r, sorts, 3)) < 0 ||
        saes_analysis_load(r, &s, &a))
        return MHD_YES;
    store_sae_clear(&s);
    store_sae_analysis_clear(&a);
    store_group *items = NULL;
    if (store_sae_groups_list(r->st, r->ids[0], sort, after, limit + 1, &items, &n) != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot list groups: %s", store_errmsg(r->st));
    json_t *arr = json_array();
    for (int i = 0; i < n && i < limit; i++) json_array_append_new(arr, saes_analysis_group_item(&items[i]));
    int more = n > limit;
    int64_t last = more ? items[limit - 1].group : 0;
    store_group_list_free(items, n);
    return api_send_json(r, MHD_HTTP_OK, api_list(arr, more, last));
}

/* ---- GET /v1/saes/{id}/recovery ---- */

enum MHD_Result saes_analysis_recovery(api_req *r)
{
    store_sae s;
    store_sae_analysis a;
    if (saes_analysis_load(r, &s, &a)) return MHD_YES;
    json_t *rec = api_json_stored(a.recovery_json);
    enum MHD_Result ret;
    if (!json_is_object(rec)) {
        json_decref(rec);
        ret = api_problem(r, MHD_HTTP_NOT_FOUND, "SAE %lld was analysed on dataset %lld, which is not a circles "
                          "dataset; recovery needs the ground-truth circles (analyze on a circles dataset)",
                          (long long)s.id, (long long)a.dataset_id);
    } else {
        json_object_set_new(rec, "sae", json_integer(s.id));
        json_object_set_new(rec, "job", json_integer(a.job_id));
        json_object_set_new(rec, "dataset", json_integer(a.dataset_id));
        ret = api_send_json(r, MHD_HTTP_OK, rec);
    }
    store_sae_clear(&s);
    store_sae_analysis_clear(&a);
    return ret;
}
