/* api/saes.c — /v1/saes: the trained SAEs and their weights (and, in the
 * SAE object, encode_max_rows: the most rows one POST .../encode may send,
 * encode.c's per-request budget).
 *
 * An SAE row is written by the worker in the same transaction that ends its
 * job; its weights are .npy files in store_sae.dir (decoder.npy (n, dim),
 * encoder.npy (dim, n), b_enc.npy (n), b_dec.npy (dim), written with
 * files_write_npy_f32), plus sae.safetensors and cfg.json (the same tensors
 * under SAELens's names, and its config keys), all served as they are,
 * straight from disk.
 * Encoding and the analysis endpoints slot in beside these as new files. */
#include "internal.h"
#include <stdio.h>
#include <string.h>

static json_t *saes_metrics(const char *text)
{
    static const char *const keys[] = { "fve", "mse", "l0", "l0_groups", "dead_frac" };
    json_t *stored = api_json_stored(text), *out = json_object();
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(stored, keys[i]);
        json_object_set_new(out, keys[i], json_is_number(v) ? api_json_num(json_number_value(v)) : json_null());
    }
    json_decref(stored);
    return out;
}

json_t *saes_object(const store_sae *s)
{
    int max_rows = s->n_latents > 0 && s->dim > 0 ? encode_max_rows(s->n_latents, s->dim) : 0;
    json_t *config = api_json_stored(s->config_json);
    size_t n_groups = s->group_size > 0 ? (size_t)(s->n_latents / s->group_size) /* else listed in config */
                                        : json_array_size(json_object_get(config, "groups"));
    return json_pack("{s:I,s:o,s:o,s:o,s:i,s:i,s:i,s:I,s:o,s:s,s:i}", "id", (json_int_t)s->id,
                     "job", s->job_id > 0 ? json_integer(s->job_id) : json_null(), /* null once the job is deleted */
                     "dataset", s->dataset_id > 0 ? json_integer(s->dataset_id) : json_null(), /* none: imported */
                     "config", config, "n_latents", s->n_latents, "dim", s->dim,
                     "group_size", s->group_size, "n_groups", (json_int_t)n_groups,
                     "metrics", saes_metrics(s->metrics_json),
                     "created_at", s->created_at, "encode_max_rows", max_rows);
}

int saes_load(api_req *r, store_sae *s)
{
    store *st = api_store(r);
    if (!st) return -1;
    int rc = store_sae_get(st, r->ids[0], s);
    if (rc == STORE_OK) return 0;
    if (rc == STORE_NOTFOUND) api_problem(r, MHD_HTTP_NOT_FOUND, "SAE %lld does not exist", (long long)r->ids[0]);
    else api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read SAE %lld: %s", (long long)r->ids[0],
                     store_errmsg(st));
    return -1;
}

enum MHD_Result saes_list(api_req *r)
{
    int limit, n = 0;
    int64_t after;
    if (api_query_page(r, &limit, &after)) return MHD_YES;
    store *st = api_store(r);
    if (!st) return MHD_YES;
    store_sae *items = NULL;
    if (store_sae_list(st, after, limit + 1, &items, &n) != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot list SAEs: %s", store_errmsg(st));
    json_t *arr = json_array();
    for (int i = 0; i < n && i < limit; i++) json_array_append_new(arr, saes_object(&items[i]));
    int more = n > limit;
    int64_t last = more ? items[limit - 1].id : 0;
    store_sae_list_free(items, n);
    return api_send_json(r, MHD_HTTP_OK, api_list(arr, more, last));
}

enum MHD_Result saes_get(api_req *r)
{
    store_sae s = { 0 };
    if (saes_load(r, &s)) return MHD_YES;
    json_t *obj = saes_object(&s);
    store_sae_clear(&s);
    return api_send_json(r, MHD_HTTP_OK, obj);
}

static enum MHD_Result saes_file_as(api_req *r, const char *name, const char *content_type)
{
    store_sae s = { 0 };
    if (saes_load(r, &s)) return MHD_YES;
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", s.dir ? s.dir : "", name);
    int has_dir = s.dir && *s.dir;
    store_sae_clear(&s);
    if (!has_dir || n < 0 || (size_t)n >= sizeof path)
        return api_problem(r, MHD_HTTP_NOT_FOUND, "SAE %lld has no weight files", (long long)r->ids[0]);
    return api_send_file(r, path, content_type, "no-cache");
}

static enum MHD_Result saes_file(api_req *r, const char *name)
{
    return saes_file_as(r, name, "application/octet-stream");
}

enum MHD_Result saes_decoder(api_req *r) { return saes_file(r, "decoder.npy"); }
enum MHD_Result saes_encoder(api_req *r) { return saes_file(r, "encoder.npy"); }
enum MHD_Result saes_b_enc(api_req *r) { return saes_file(r, "b_enc.npy"); }
enum MHD_Result saes_b_dec(api_req *r) { return saes_file(r, "b_dec.npy"); }
/* The same weights for SAELens (daemon/jobrun_export.c); SAEs trained before they existed answer 404. */
enum MHD_Result saes_safetensors(api_req *r) { return saes_file(r, "sae.safetensors"); }
enum MHD_Result saes_cfg(api_req *r) { return saes_file_as(r, "cfg.json", "application/json"); }
