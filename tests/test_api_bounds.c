/* test_api_bounds — the numerics the API runs on its own HTTP threads are
 * bounded, against a real saed: POST /v1/saes/{id}/encode (a budget of
 * weights read plus multiply-adds per request, shown on the SAE object as
 * encode_max_rows), GET /v1/saes/{id}/groups/{g} and its plane.npy (at most
 * 64 members, members x dim bounded) and GET /v1/saes/{id}/jaccard (row ids
 * merged per request). Each bound answers a problem+json 422 naming the
 * field and the number allowed, and a request within it still answers.
 *
 * Three SAEs on one circles dataset of dim 64: a wide one (4096 latents,
 * so encode_max_rows binds well below the 1024-row cap; its threshold is so
 * high that no latent fires, so the reply stays small), a dense one with 2
 * groups of 128 (too large for the geometry; its latents fire on most rows,
 * so a long ?latents= list is over the Jaccard budget and many rows over
 * the values one encode reply may hold) and one with 2 groups of 64 (the
 * largest geometry allowed). Nothing asserts on timing. */
#include "check.h"
#include "apitest.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIM 64
#define WIDE 4096          /* latents of the wide SAE */
#define ENCODE_CAP 1024    /* rows per request whatever the SAE (encode.c's ENCODE_MAX_ROWS) */
#define NO_FIRE "\"threshold\":1000" /* a relu SAE in which no latent ever fires */

static at_daemon g_d;

static long long run_job(const char *body, const char *what)
{
    long long id = at_post_id("/v1/jobs", body, 202);
    json_t *j = id ? at_wait_job(id, "succeeded failed cancelled", 300) : NULL;
    CHECK(j && !strcmp(at_jstr(j, "state"), "succeeded"), "%s job %lld: %s %s", what, id,
          j ? at_jstr(j, "state") : "timeout", j ? at_jstr(j, "error") : "");
    json_decref(j);
    return id;
}

/* Trains a relu SAE on dataset ds (extra: more sae fields, or "") and returns its id. */
static long long train(long long ds, int n_latents, int group_size, double sparsity, const char *extra, int steps)
{
    char body[700];
    snprintf(body, sizeof body,
             "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"n_latents\":%d,\"group_size\":%d,"
             "\"sparsity_coef\":%g%s%s},\"train\":{\"steps\":%d,\"batch_size\":64,\"lr\":0.003,"
             "\"lr_warmup_steps\":10,\"sparsity_warmup_steps\":10,\"eval_every\":%d,\"eval_rows\":256}}",
             ds, n_latents, group_size, sparsity, *extra ? "," : "", extra, steps, steps);
    long long job = run_job(body, "train");
    json_t *j = at_get_job(job);
    long long sae = j ? at_jint(json_object_get(j, "result"), "sae") : 0;
    json_decref(j);
    CHECK(sae > 0, "training gave an SAE (%d latents in groups of %d)", n_latents, group_size);
    return sae;
}

static void analyze(long long sae, int n_samples)
{
    run_job(at_fmt("{\"type\":\"analyze\",\"sae\":%lld,\"n_samples\":%d}", sae, n_samples), "analyze");
}

/* {"rows": [rows of DIM numbers]} */
static char *rows_body(int rows)
{
    size_t cap = (size_t)rows * DIM * 8 + 32, len = 0;
    char *b = malloc(cap);
    len += (size_t)snprintf(b + len, cap - len, "{\"rows\":[");
    for (int i = 0; i < rows; i++) {
        len += (size_t)snprintf(b + len, cap - len, "%s[", i ? "," : "");
        for (int d = 0; d < DIM; d++) len += (size_t)snprintf(b + len, cap - len, "%s%.2f", d ? "," : "",
                                                              0.01 * ((i + d) % 13));
        len += (size_t)snprintf(b + len, cap - len, "]");
    }
    snprintf(b + len, cap - len, "]}");
    return b;
}

/* POST .../encode with n rows: the status; when 200, the reply's rows of latents and the latents that fired. */
static long encode(long long sae, int rows, size_t *n_out, size_t *fired)
{
    char *body = rows_body(rows);
    at_resp r = at_http("POST", at_fmt("/v1/saes/%lld/encode", sae), body);
    free(body);
    long status = r.status;
    json_t *j = status == 200 ? at_resp_json(&r) : NULL, *lat = json_object_get(j, "latents"), *row;
    size_t i;
    *n_out = json_array_size(lat);
    *fired = 0;
    json_array_foreach(lat, i, row) *fired += json_array_size(row);
    json_decref(j);
    at_resp_free(&r);
    return status;
}

/* ---- encode ---- */

static long long max_rows(long long sae)
{
    json_t *s = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld", sae), NULL), 200);
    long long max = at_jint(s, "encode_max_rows");
    json_decref(s);
    return max;
}

static void test_encode_bound(long long wide, long long small)
{
    long long max = max_rows(wide), small_max = max_rows(small);
    CHECK(max >= 1 && max < ENCODE_CAP, "a %d-latent SAE's encode_max_rows (%lld) binds below the %d-row cap", WIDE,
          max, ENCODE_CAP);
    CHECK(small_max > max && small_max <= ENCODE_CAP, "a smaller SAE may encode more rows (%lld)", small_max);
    json_t *l = at_expect_json(at_http("GET", "/v1/saes", NULL), 200);
    json_t *item = json_array_get(json_object_get(l, "items"), 0);
    CHECK(json_is_integer(json_object_get(item, "encode_max_rows")), "the SAE list shows encode_max_rows too");
    json_decref(l);
    if (max < 1 || max >= ENCODE_CAP) return;

    size_t n = 0, fired = 0;
    CHECK(encode(wide, 3, &n, &fired) == 200 && n == 3, "a normal request still encodes (3 rows -> %zu)", n);
    CHECK(encode(wide, (int)max, &n, &fired) == 200 && n == (size_t)max,
          "exactly encode_max_rows (%lld) rows encode", max);
    char *body = rows_body((int)max + 1);
    at_resp r = at_http("POST", at_fmt("/v1/saes/%lld/encode", wide), body);
    free(body);
    char want[64];
    snprintf(want, sizeof want, "at most %lld rows per request", max);
    CHECK(strstr(r.body, want) != NULL, "the 422 says the largest row count (%s): %.400s", want, r.body);
    CHECK(strstr(r.body, "analyze job") != NULL, "the 422 points to an analyze job: %.400s", r.body);
    at_expect_problem("encode over the budget", r, 422, "rows");
}

/* An SAE whose latents fire: many rows are over the values one reply may hold, though within the work budget. */
static void test_encode_reply_bound(long long dense)
{
    size_t n = 0, fired = 0;
    long long max = max_rows(dense);
    CHECK(encode(dense, 4, &n, &fired) == 200 && n == 4 && fired > 0, "4 rows encode, firing %zu latents", fired);
    if (fired == 0 || max < 4) return;
    char *body = rows_body((int)max); /* the 4 rows above among them: max x 64 reconstructions + some latents */
    at_resp r = at_http("POST", at_fmt("/v1/saes/%lld/encode", dense), body);
    free(body);
    CHECK(strstr(r.body, "rows like these per request") != NULL, "the 422 says how many such rows fit: %.400s",
          r.body);
    at_expect_problem("a reply over the values cap", r, 422, "rows");
}

/* ---- group geometry ---- */

static void test_group_bound(long long big, long long fits)
{
    json_t *gl = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld/groups", big), NULL), 200);
    json_t *g0 = json_array_get(json_object_get(gl, "items"), 0);
    CHECK(json_array_size(json_object_get(gl, "items")) == 2 && json_array_size(json_object_get(g0, "members")) == 128,
          "the groups list still answers for groups of 128");
    json_decref(gl);
    at_resp r = at_http("GET", at_fmt("/v1/saes/%lld/groups/0", big), NULL);
    CHECK(strstr(r.body, "at most 64 members") != NULL, "the 422 says the group size allowed: %.400s", r.body);
    at_expect_problem("geometry of 128 members", r, 422, "group");
    AT_BAD("GET", at_fmt("/v1/saes/%lld/groups/1/plane.npy", big), NULL, 422, "group");
    json_t *p = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld/groups/0/projection?limit=5", big), NULL), 200);
    CHECK(json_is_array(json_object_get(p, "points")), "the projection (no geometry computed) still answers");
    json_decref(p);

    json_t *g = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld/groups/1", fits), NULL), 200);
    json_t *cos = json_object_get(g, "cosine"), *plane = json_object_get(g, "plane");
    CHECK(json_array_size(json_object_get(g, "members")) == 64 && json_array_size(cos) == 64 &&
          json_array_size(plane) == 2 && json_array_size(json_array_get(plane, 0)) == DIM,
          "a group of 64 members (the bound) still gets its geometry");
    json_decref(g);
    r = at_http("GET", at_fmt("/v1/saes/%lld/groups/0/plane.npy", fits), NULL);
    CHECK(r.status == 200 && r.len > 2 * DIM * 4, "its plane.npy answers (%ld, %zu bytes)", r.status, r.len);
    at_resp_free(&r);
}

/* ---- Jaccard ---- */

static void test_jaccard_bound(long long dense, int n_samples)
{
    json_t *l = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld/latents?sort=density&limit=2", dense), NULL),
                               200);
    json_t *items = json_object_get(l, "items");
    long long a = at_jint(json_array_get(items, 0), "latent"), b = at_jint(json_array_get(items, 1), "latent");
    double rows = (json_number_value(json_object_get(json_array_get(items, 0), "density")) +
                   json_number_value(json_object_get(json_array_get(items, 1), "density"))) * n_samples;
    json_decref(l);
    /* 256 entries alternating a and b: 128 x 128 pairs of distinct latents each merge both row lists. */
    CHECK(128.0 * 128.0 * rows > (double)(1 << 24) * 1.5, "the dense SAE's two densest latents fire on %.0f rows, "
          "enough to go over the budget", rows);
    char q[256 * 12] = "";
    size_t len = 0;
    for (int i = 0; i < 256; i++) len += (size_t)snprintf(q + len, sizeof q - len, "%s%lld", i ? "," : "",
                                                          i % 2 ? b : a);
    at_resp r = at_http("GET", at_fmt("/v1/saes/%lld/jaccard?latents=%s", dense, q), NULL);
    CHECK(strstr(r.body, "fewer latents") != NULL, "the 422 says what to do: %.400s", r.body);
    at_expect_problem("jaccard over the budget", r, 422, "latents");
    json_t *m = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld/jaccard?latents=%lld,%lld,0", dense, a, b),
                                       NULL), 200);
    json_t *mat = json_object_get(m, "matrix");
    CHECK(json_array_size(mat) == 3 && json_number_value(json_array_get(json_array_get(mat, 0), 0)) == 1.0 &&
          json_number_value(json_array_get(json_array_get(mat, 0), 1)) ==
          json_number_value(json_array_get(json_array_get(mat, 1), 0)), "a normal Jaccard request still answers");
    json_decref(m);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int up = at_daemon_start(&g_d, "bounds", NULL);
    CHECK(up, "daemon answers /v1/health");
    if (!up) {
        at_daemon_show_log(&g_d);
        return check_report();
    }
    long long ds = at_post_id("/v1/datasets", "{\"kind\":\"circles\",\"name\":\"d64\",\"params\":{\"n_circles\":16,"
                              "\"dim\":64,\"p_active\":0.2,\"radius\":[1,1],\"seed\":3}}", 201);
    long long wide = train(ds, WIDE, 1, 0.01, NO_FIRE, 20);
    long long dense = train(ds, 256, 128, 0.0, "", 100);
    long long fits = train(ds, 128, 64, 0.001, "", 100);
    analyze(dense, 4000);
    analyze(fits, 1000);
    test_encode_bound(wide, fits);
    test_encode_reply_bound(dense);
    test_group_bound(dense, fits);
    test_jaccard_bound(dense, 4000);
    CHECK(at_daemon_stop(&g_d), "SIGTERM exits 0");
    if (check_failed) {
        at_daemon_show_log(&g_d);
        fprintf(stderr, "test_api_bounds: data left in %s\n", g_d.dir);
    } else {
        at_daemon_cleanup(&g_d);
    }
    curl_global_cleanup();
    return check_report();
}
