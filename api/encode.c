/* api/encode.c — POST /v1/saes/{id}/encode: {"rows": [[...], ...]} in,
 * {"latents": [[[index, value], ...], ...], "reconstruction": [[...], ...]}
 * out.
 *
 * The SAE's exported weights are read from its files per request and run
 * through sae_encode (the trained architecture's inference rule), so the
 * answer is exactly what the weight files give with NumPy. Latents list the
 * firing ones (value != 0: > 0 for ReLU archs, either sign for subspace) of each row in increasing index order. A request
 * holds at most ENCODE_MAX_ROWS rows of exactly `dim` finite numbers
 * (wrong types 400, wrong lengths or counts 422, each naming rows[i]).
 * Weight files that cannot be loaded (removed, or missing an arch's extra
 * tensors) are a 409 saying so.
 *
 * This runs on an HTTP thread, so one request's work is bounded twice, each
 * bound a 422 naming "rows" that says how many rows fit and points to an
 * analyze job:
 *  - before anything is read, the work: reading the weights (2 n dim + n +
 *    dim floats, one unit each) plus encoding and decoding the rows (2 n dim
 *    multiply-adds a row) must fit in ENCODE_BUDGET units, and the
 *    reconstructions (B dim values) in ENCODE_MAX_VALUES; encode_max_rows()
 *    is the largest row count that fits, shown on the SAE object as
 *    "encode_max_rows";
 *  - after encoding, the reply: the firing latents plus the reconstructions
 *    must be at most ENCODE_MAX_VALUES values (an SAE whose latents mostly
 *    fire would otherwise write n values a row).
 * Measured on the shared 2-core machine with the seed's shape (12800 x 200,
 * 20 MB of weights): reading the weights 6-15 ms, encoding the 12 rows the
 * budget allows 4-14 ms, writing 32768 values 10-17 ms. The reply is written
 * as text directly (numbers formatted as jansson's dump with API_JSON_FLAGS
 * writes them), not built as jansson objects, which took ~3 us a value. */
#include "internal.h"
#include "artifacts.h"
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENCODE_MAX_ROWS 1024
#define ENCODE_BUDGET ((int64_t)1 << 26)     /* weight floats read + multiply-adds, per request */
#define ENCODE_MAX_VALUES ((int64_t)1 << 15) /* numbers in one reply: firing latents + reconstructions */
#define ENCODE_REAL_PRECISION 10             /* API_JSON_FLAGS' JSON_REAL_PRECISION */

static const char *const encode_keys[] = { "rows", NULL };

int encode_max_rows(int n_latents, int dim)
{
    assert(n_latents >= 1 && dim >= 1);
    int64_t n = n_latents, d = dim;
    int64_t left = ENCODE_BUDGET - (2 * n * d + n + d); /* after reading the weights */
    int64_t rows = left > 0 ? left / (2 * n * d) : 0;   /* encoder and decoder products */
    if (rows > ENCODE_MAX_VALUES / d) rows = ENCODE_MAX_VALUES / d;
    return rows < ENCODE_MAX_ROWS ? (int)rows : ENCODE_MAX_ROWS;
}

/* 0 if B rows fit the work budget of SAE s, else -1 after replying 422 naming rows. */
static int encode_check_budget(api_req *r, const store_sae *s, int B)
{
    int max = encode_max_rows(s->n_latents, s->dim);
    if (B <= max) return 0;
    if (max == 0)
        api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "rows", "SAE %lld (%d latents x %d dims) is too large "
                          "to encode over HTTP: reading its weights alone exceeds the per-request budget of %lld "
                          "multiply-adds; encode rows with an analyze job (POST /v1/jobs {\"type\":\"analyze\"})",
                          (long long)s->id, s->n_latents, s->dim, (long long)ENCODE_BUDGET);
    else
        api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "rows", "this SAE allows at most %d rows per request "
                          "(%d latents x %d dims, a budget of %lld multiply-adds) and %d were sent: split them over "
                          "several requests, or for many rows use an analyze job or the weights (encoder.npy)", max,
                          s->n_latents, s->dim, (long long)ENCODE_BUDGET, B);
    return -1;
}

/* 0 if the reply for z (B, n) fits ENCODE_MAX_VALUES, else -1 after replying 422 naming rows. */
static int encode_check_reply(api_req *r, const float *z, int B, int n, int dim)
{
    int64_t values = (int64_t)B * dim;
    for (size_t i = 0; i < (size_t)B * n; i++) values += z[i] != 0.0f;
    if (values <= ENCODE_MAX_VALUES) return 0;
    int64_t fit = (int64_t)B * ENCODE_MAX_VALUES / values; /* rows like these that fit */
    api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "rows", "these %d rows fire so many latents that the reply "
                      "would hold %lld values, more than the %lld one reply may: send at most %lld rows like these "
                      "per request, or use an analyze job for many rows", B, (long long)values,
                      (long long)ENCODE_MAX_VALUES, (long long)fit);
    return -1;
}

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

/* ---- the reply, written as text ---- */

typedef struct {
    char *buf;      /* (cap) */
    size_t len, cap;
    int oom;
} encode_text;

static void encode_reserve(encode_text *t, size_t more)
{
    if (t->oom || t->len + more < t->cap) return;
    size_t cap = t->cap ? t->cap : 4096;
    while (cap <= t->len + more) cap *= 2;
    char *b = realloc(t->buf, cap);
    if (!b) { t->oom = 1; return; }
    t->buf = b, t->cap = cap;
}

static void encode_put(encode_text *t, const char *s)
{
    size_t n = strlen(s);
    encode_reserve(t, n + 1);
    if (t->oom) return;
    memcpy(t->buf + t->len, s, n + 1);
    t->len += n;
}

/* v as jansson writes a real with JSON_REAL_PRECISION(10): %.10g, ".0" when it would read as an integer, no
 * '+' or leading zeros in the exponent; null when not finite (api_json_num). */
static void encode_put_real(encode_text *t, double v)
{
    char num[40];
    if (!isfinite(v)) { encode_put(t, "null"); return; }
    int len = snprintf(num, sizeof num - 2, "%.*g", ENCODE_REAL_PRECISION, v);
    char *e = strchr(num, 'e');
    if (!e && !strchr(num, '.')) memcpy(num + len, ".0", 3);
    if (e) {
        char *start = e + 1, *end = start + 1;
        if (*start == '-') start++;
        while (*end == '0') end++;
        if (end != start) memmove(start, end, strlen(end) + 1);
    }
    encode_put(t, num);
}

/* {"latents":[[[i,v],...],...],"reconstruction":[[...],...]} for z (B, n) and xh (B, dim); malloc'd, or NULL. */
static char *encode_reply(const float *z, const float *xh, int B, int n, int dim)
{
    encode_text t = { 0 };
    char idx[24];
    encode_put(&t, "{\"latents\":[");
    for (int b = 0; b < B; b++) {
        encode_put(&t, b ? ",[" : "[");
        for (int i = 0, first = 1; i < n; i++) {
            float v = z[(size_t)b * n + i];
            if (!(v != 0.0f)) continue;
            snprintf(idx, sizeof idx, "%s[%d,", first ? "" : ",", i);
            encode_put(&t, idx);
            encode_put_real(&t, v);
            encode_put(&t, "]");
            first = 0;
        }
        encode_put(&t, "]");
    }
    encode_put(&t, "],\"reconstruction\":[");
    for (int b = 0; b < B; b++) {
        encode_put(&t, b ? ",[" : "[");
        for (int d = 0; d < dim; d++) {
            if (d) encode_put(&t, ",");
            encode_put_real(&t, xh[(size_t)b * dim + d]);
        }
        encode_put(&t, "]");
    }
    encode_put(&t, "]}");
    if (!t.oom) return t.buf;
    free(t.buf);
    return NULL;
}

/* ---- POST ---- */

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
    if (x && encode_check_budget(r, &s, B)) {
        free(x);
        x = NULL;
    }
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
    float *z = malloc((size_t)B * n * sizeof *z), *xh = malloc((size_t)B * dim * sizeof *xh); /* (B, n), (B, dim) */
    rc = z && xh ? sae_encode(&p, NULL, x, B, z, xh) : -1;
    sae_params_free(&p);
    free(x);
    enum MHD_Result ret = MHD_YES;
    char *text = NULL;
    if (rc) ret = api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory encoding %d rows", B);
    else if (encode_check_reply(r, z, B, n, dim)) {} /* replied 422 */
    else if (!(text = encode_reply(z, xh, B, n, dim)))
        ret = api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory writing the reply for %d rows", B);
    else ret = api_send_owned_text(r, MHD_HTTP_OK, "application/json", text);
    free(z), free(xh);
    return ret;
}
