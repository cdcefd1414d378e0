/* api/encode.c — POST /v1/saes/{id}/encode: {"rows": [[...], ...]} in,
 * {"latents": [[[index, value], ...], ...], "reconstruction": [[...], ...]}
 * out.
 *
 * The SAE's exported weights are read from its files per request and run
 * through sae_encode (the trained architecture's inference rule), so the
 * answer is exactly what the weight files give with NumPy. Latents list the
 * firing ones (value > 0) of each row in increasing index order. A request
 * holds at most ENCODE_MAX_ROWS rows of exactly `dim` finite numbers
 * (wrong types 400, wrong lengths or counts 422, each naming rows[i]).
 * Weight files that cannot be loaded (removed, or missing an arch's extra
 * tensors) are a 409 saying so. */
#include "internal.h"
#include "artifacts.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENCODE_MAX_ROWS 1024

static const char *const encode_keys[] = { "rows", NULL };

/* Copies body.rows into x (B, dim); -1 after recording errors. */
static int encode_rows(const json_t *rows, int dim, float *x, spec_errors *errs)
{
    size_t i, k;
    json_t *row, *v;
    char field[32];
    json_array_foreach(rows, i, row) {
        snprintf(field, sizeof field, "rows[%zu]", i);
        if (!json_is_array(row)) {
            spec_error_add(errs, 400, field, "must be an array of %d numbers", dim);
            return -1;
        }
        if ((int)json_array_size(row) != dim) {
            spec_error_add(errs, 422, field, "has %zu values but the SAE's dim is %d", json_array_size(row), dim);
            return -1;
        }
        json_array_foreach(row, k, v) {
            double d = json_number_value(v);
            if (!json_is_number(v) || !isfinite((float)d)) {
                spec_error_add(errs, json_is_number(v) ? 422 : 400, field, "item %zu must be a finite number", k);
                return -1;
            }
            x[i * dim + k] = (float)d;
        }
    }
    return 0;
}

/* The body's rows as x (malloc'd, (B, dim)); NULL after replying. */
static float *encode_parse(api_req *r, const json_t *body, int dim, int *B)
{
    spec_errors errs = { 0 };
    spec_check_fields(body, "", encode_keys, &errs);
    json_t *rows = json_object_get(body, "rows");
    if (!rows) spec_error_add(&errs, 400, "rows", "required: an array of rows, each an array of %d numbers", dim);
    else if (!json_is_array(rows)) spec_error_add(&errs, 400, "rows", "must be an array of rows");
    else if (json_array_size(rows) < 1 || json_array_size(rows) > ENCODE_MAX_ROWS)
        spec_error_add(&errs, 422, "rows", "give from 1 to %d rows per request", ENCODE_MAX_ROWS);
    float *x = errs.n ? NULL : malloc(json_array_size(rows) * (size_t)dim * sizeof *x);
    if (!errs.n && !x) spec_error_add(&errs, 422, "rows", "out of memory");
    if (!errs.n && encode_rows(rows, dim, x, &errs) == 0) {
        *B = (int)json_array_size(rows);
        return x;
    }
    free(x);
    api_problem_fields(r, &errs, NULL);
    return NULL;
}

static json_t *encode_reply(const float *z, const float *xh, int B, int n, int dim)
{
    json_t *lat = json_array(), *rec = json_array();
    for (int b = 0; b < B; b++) {
        json_t *row = json_array(), *xr = json_array();
        for (int i = 0; i < n; i++)
            if (z[(size_t)b * n + i] > 0.0f)
                json_array_append_new(row, json_pack("[i,o]", i, api_json_num(z[(size_t)b * n + i])));
        for (int d = 0; d < dim; d++) json_array_append_new(xr, api_json_num(xh[(size_t)b * dim + d]));
        json_array_append_new(lat, row);
        json_array_append_new(rec, xr);
    }
    return json_pack("{s:o,s:o}", "latents", lat, "reconstruction", rec);
}

enum MHD_Result encode_post(api_req *r)
{
    store_sae s;
    sae_params p;
    char err[512];
    int B = 0;
    if (saes_analysis_load(r, &s, NULL)) return MHD_YES;
    json_t *body = api_body_object(r);
    float *x = body ? encode_parse(r, body, s.dim, &B) : NULL;
    json_decref(body);
    if (!x) {
        store_sae_clear(&s);
        return MHD_YES;
    }
    int rc = artifacts_sae_load(&s, &p, err, sizeof err);
    int n = s.n_latents, dim = s.dim;
    store_sae_clear(&s);
    if (rc) { /* the SAE's files cannot serve it (removed, or exported by an older version): its state, 409 */
        free(x);
        return api_problem(r, MHD_HTTP_CONFLICT, "cannot load the SAE's weights: %s", err);
    }
    float *z = malloc((size_t)B * n * sizeof *z), *xh = malloc((size_t)B * dim * sizeof *xh);
    rc = z && xh ? sae_encode(&p, NULL, x, B, z, xh) : -1;
    json_t *out = rc ? NULL : encode_reply(z, xh, B, n, dim);
    sae_params_free(&p);
    free(x), free(z), free(xh);
    if (!out) return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory encoding %d rows", B);
    return api_send_json(r, MHD_HTTP_OK, out);
}
