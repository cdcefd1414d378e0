/* api/jobs.c — /v1/jobs: submit, list, get, cancel, delete, metric series.
 *
 * Submitting knows no job type: the spec layer's table (jobtype.h) finds
 * the body's type and validates it against the store, and this file stores
 * the normalised spec (every default filled in) in state queued with the
 * columns the validator gave (dataset, SAE, total steps); a worker claims it
 * from SQLite. Deleting a terminal job removes its rows and its checkpoints
 * under data_dir/jobs/{id}, never the SAE it produced. */
#include "internal.h"
#include "jobtype.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the job object ---- */

static json_t *jobs_progress(const store_job *j)
{
    json_t *fraction = j->total_steps > 0 ? api_json_num((double)j->step / j->total_steps) : json_null();
    json_t *sps = j->samples_per_s > 0 ? api_json_num(j->samples_per_s) : json_null();
    json_t *eta = json_null();
    if (j->state == STORE_JOB_SUCCEEDED) eta = json_real(0.0);
    else if (j->state == STORE_JOB_RUNNING && j->eta_s >= 0) eta = api_json_num(j->eta_s);
    return json_pack("{s:i,s:i,s:o,s:o,s:o}", "step", j->step, "total_steps", j->total_steps, "fraction", fraction,
                     "samples_per_s", sps, "eta_s", eta);
}

json_t *jobs_object(const store_job *j)
{
    json_t *latest = api_json_stored(j->latest_json);
    if (!json_is_object(latest)) {
        json_decref(latest);
        latest = json_object();
    }
    return json_pack("{s:I,s:s,s:s,s:s,s:o,s:o,s:o,s:o,s:o,s:o,s:o}", "id", (json_int_t)j->id, "type", j->type,
                     "state", store_job_state_name(j->state), "created_at", j->created_at,
                     "started_at", api_json_time(j->started_at), "finished_at", api_json_time(j->finished_at),
                     "spec", api_json_stored(j->spec_json), "progress", jobs_progress(j), "latest", latest,
                     "result", api_json_stored(j->result_json),
                     "error", j->error ? json_string(j->error) : json_null());
}

int jobs_load(api_req *r, store_job *j)
{
    store *st = api_store(r);
    if (!st) return -1;
    int rc = store_job_get(st, r->ids[0], j);
    if (rc == STORE_OK) return 0;
    if (rc == STORE_NOTFOUND) api_problem(r, MHD_HTTP_NOT_FOUND, "job %lld does not exist", (long long)r->ids[0]);
    else api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read job %lld: %s", (long long)r->ids[0],
                     store_errmsg(st));
    return -1;
}

static enum MHD_Result jobs_reply(api_req *r, unsigned status, int64_t id, int created)
{
    store_job j = { 0 };
    int rc = store_job_get(r->st, id, &j);
    if (rc != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read job %lld back: %s", (long long)id,
                           store_errmsg(r->st));
    json_t *obj = jobs_object(&j);
    store_job_clear(&j);
    if (!created) return api_send_json(r, status, obj);
    char location[64];
    snprintf(location, sizeof location, "/v1/jobs/%lld", (long long)id);
    return api_created(r, status, location, obj);
}

/* ---- POST /v1/jobs ---- */

/* Inserts a validated job as queued and replies 202 with it. */
static enum MHD_Result jobs_insert(api_req *r, const jobtype_spec *js)
{
    char *text = json_dumps(js->spec, API_JSON_FLAGS);
    if (!text) return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    int64_t id = 0;
    int rc = store_job_insert(r->st, jobtype_name(js->type), text, js->dataset_id, js->sae_id, js->total_steps,
                              &id);
    free(text);
    if (rc == STORE_NOTFOUND && js->sae_id)
        return api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "dataset", "the SAE or dataset no longer exists");
    if (rc == STORE_NOTFOUND)
        return api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "dataset", "dataset %lld does not exist",
                                 (long long)js->dataset_id);
    if (rc != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot queue the job: %s", store_errmsg(r->st));
    return jobs_reply(r, MHD_HTTP_ACCEPTED, id, 1);
}

enum MHD_Result jobs_create(api_req *r)
{
    spec_errors errs = { 0 };
    jobtype_spec js = { 0 };
    jobtype_limits lim = { .max_job_bytes = r->srv->cfg.max_job_bytes, .data_dir = r->srv->cfg.data_dir };
    json_t *body = api_body_object(r);
    if (!body) return MHD_YES;
    enum MHD_Result ret = MHD_YES;
    if (!api_store(r)) {} /* replied 503 */
    else if (jobtype_validate(r->st, body, &lim, &js, &errs)) ret = api_problem_fields(r, &errs, NULL);
    else ret = jobs_insert(r, &js);
    jobtype_spec_clear(&js);
    json_decref(body);
    return ret;
}

/* ---- GET /v1/jobs, /v1/jobs/{id} ---- */

enum MHD_Result jobs_list(api_req *r)
{
    int limit, n = 0, filter = -1;
    int64_t after;
    if (api_query_page(r, &limit, &after)) return MHD_YES;
    const char *state = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "state");
    store_job_state js;
    if (state && store_job_state_parse(state, &js))
        return api_problem_field(r, MHD_HTTP_BAD_REQUEST, "state",
                                 "?state= must be queued, running, succeeded, failed or cancelled");
    if (state) filter = (int)js;
    store *st = api_store(r);
    if (!st) return MHD_YES;
    store_job *items = NULL;
    if (store_job_list(st, filter, after, limit + 1, &items, &n) != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot list jobs: %s", store_errmsg(st));
    json_t *arr = json_array();
    for (int i = 0; i < n && i < limit; i++) json_array_append_new(arr, jobs_object(&items[i]));
    int more = n > limit;
    int64_t last = more ? items[limit - 1].id : 0;
    store_job_list_free(items, n);
    return api_send_json(r, MHD_HTTP_OK, api_list(arr, more, last));
}

enum MHD_Result jobs_get(api_req *r)
{
    store_job j = { 0 };
    if (jobs_load(r, &j)) return MHD_YES;
    char *text = jobs_cache_get(r->srv->jobs_cache, &j);
    if (!text) {
        json_t *obj = jobs_object(&j);
        text = obj ? json_dumps(obj, API_JSON_FLAGS) : NULL;
        json_decref(obj);
        if (text) jobs_cache_put(r->srv->jobs_cache, &j, text);
    }
    store_job_clear(&j);
    if (!text) return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory while writing the reply");
    return api_send_owned_text(r, MHD_HTTP_OK, "application/json", text);
}

/* ---- cancel, delete ---- */

enum MHD_Result jobs_cancel(api_req *r)
{
    store *st = api_store(r);
    if (!st) return MHD_YES;
    int rc = store_job_request_cancel(st, r->ids[0]);
    if (rc == STORE_NOTFOUND)
        return api_problem(r, MHD_HTTP_NOT_FOUND, "job %lld does not exist", (long long)r->ids[0]);
    if (rc == STORE_CONFLICT)
        return api_problem(r, MHD_HTTP_CONFLICT, "job %lld has already finished; only queued or running jobs "
                           "can be cancelled", (long long)r->ids[0]);
    if (rc != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot cancel: %s", store_errmsg(st));
    return jobs_reply(r, MHD_HTTP_ACCEPTED, r->ids[0], 0);
}

/* Removes the files a job leaves in data_dir/jobs/{id}/ (checkpoint*, a groupspace job's positions*.npy and
 * groups.json) and the directory if that leaves it empty (a train job's SAE lives on in sae/). */
static void jobs_remove_files(const char *data_dir, int64_t id)
{
    char dir[4096], path[4096 + 256];
    snprintf(dir, sizeof dir, "%s/jobs/%lld", data_dir, (long long)id);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "checkpoint", 10) && strncmp(e->d_name, "positions", 9) &&
            strcmp(e->d_name, "groups.json"))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir); /* fails, harmlessly, if anything else is still there */
}

enum MHD_Result jobs_delete(api_req *r)
{
    store_job j = { 0 };
    if (jobs_load(r, &j)) return MHD_YES;
    store_job_state s = j.state;
    store_job_clear(&j);
    if (!store_job_state_terminal(s))
        return api_problem(r, MHD_HTTP_CONFLICT, "job %lld is %s; cancel it (POST /v1/jobs/%lld/cancel) and delete "
                           "it once it has stopped", (long long)r->ids[0], store_job_state_name(s),
                           (long long)r->ids[0]);
    int rc = store_job_delete(r->st, r->ids[0]);
    if (rc == STORE_CONFLICT)
        return api_problem(r, MHD_HTTP_CONFLICT, "job %lld is not finished", (long long)r->ids[0]);
    if (rc == STORE_NOTFOUND)
        return api_problem(r, MHD_HTTP_NOT_FOUND, "job %lld does not exist", (long long)r->ids[0]);
    if (rc != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot delete: %s", store_errmsg(r->st));
    jobs_remove_files(r->srv->cfg.data_dir, r->ids[0]);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    return api_queue(r, MHD_HTTP_NO_CONTENT, resp);
}

/* ---- GET /v1/jobs/{id}/metrics?since_step=N ---- */

enum MHD_Result jobs_metrics(api_req *r)
{
    static const char *const names[] = { "step", "loss", "mse", "fve", "l0", "l0_groups", "dead_frac", "lr",
                                         "samples_per_s" };
    long long since = -1;
    if (api_query_int(r, "since_step", -1, INT32_MAX, &since) < 0) return MHD_YES;
    store_job j = { 0 };
    if (jobs_load(r, &j)) return MHD_YES;
    store_job_clear(&j);
    store_metric *m = NULL;
    int n = 0;
    if (store_metric_since(r->st, r->ids[0], (int)since, &m, &n) != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read metrics: %s", store_errmsg(r->st));
    json_t *cols[9], *out = json_object();
    for (int c = 0; c < 9; c++) cols[c] = json_array();
    for (int i = 0; i < n; i++) {
        const double v[8] = { m[i].loss, m[i].mse, m[i].fve, m[i].l0, m[i].l0_groups, m[i].dead_frac, m[i].lr,
                              m[i].samples_per_s };
        json_array_append_new(cols[0], json_integer(m[i].step));
        for (int c = 1; c < 9; c++) json_array_append_new(cols[c], api_json_num(v[c - 1]));
    }
    for (int c = 0; c < 9; c++) json_object_set_new(out, names[c], cols[c]);
    free(m);
    return api_send_json(r, MHD_HTTP_OK, out);
}
