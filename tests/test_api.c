/* test_api — drives a real saed over HTTP (libcurl) and checks the REST
 * contract of docs/API.md end to end.
 *
 * It starts $BUILD/saed (BUILD from the environment, default "build") as a
 * child on a free port with a fresh data directory, waits for /v1/health,
 * then walks every endpoint: the conventions (problem+json with the right
 * errors[].field for malformed JSON, wrong types, unknown fields, unknown
 * ids, wrong methods, impossible sizes, oversized bodies, bad limits),
 * datasets, a short training job end to end (SSE, metrics, the SAE and its
 * .npy weights checked by /usr/bin/python3 with numpy), cancel and delete
 * rules, a second daemon on a taken port exiting 1, recovery after kill -9,
 * and a clean SIGTERM that requeues the running job. Nothing asserts on
 * timing; waits have generous timeouts. */
#include "check.h"
#include "apitest.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ---- helpers over the API ---- */

/* Waits until the job has done at least `step` steps; returns its step, or -1. */
static long long wait_step(long long id, long long step, double timeout)
{
    for (double t0 = at_now_s(); at_now_s() - t0 < timeout; at_sleep_ms(100)) {
        json_t *j = at_get_job(id);
        long long s = j ? at_jint(json_object_get(j, "progress"), "step") : -1;
        json_decref(j);
        if (s >= step) return s;
    }
    return -1;
}

static long long post_id(const char *path, const char *body, long want)
{
    at_resp r = at_http("POST", path, body);
    long st = r.status;
    json_t *j = at_resp_json(&r);
    CHECK(st == want, "POST %s: status %ld, want %ld: %.300s", path, st, want, r.body);
    at_resp_free(&r);
    long long id = j ? at_jint(j, "id") : 0;
    json_decref(j);
    return id;
}

static long long submit_train(long long dataset, int steps, int batch, int checkpoint_every)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"n_latents\":64,\"group_size\":2,"
             "\"sparsity_coef\":0.0003},\"train\":{\"steps\":%d,\"batch_size\":%d,\"lr\":0.003,\"lr_warmup_steps\":20,"
             "\"sparsity_warmup_steps\":50,\"eval_every\":50,\"eval_rows\":512,\"checkpoint_every\":%d}}",
             dataset, steps, batch, checkpoint_every);
    return post_id("/v1/jobs", body, 202);
}

/* ---- the conventions ---- */

static void test_daemon_endpoints(void)
{
    json_t *h = at_expect_json(at_http("GET", "/v1/health", NULL), 200);
    CHECK(!strcmp(at_jstr(h, "status"), "ok"), "health status");
    CHECK(json_is_string(json_object_get(h, "version")), "health version");
    CHECK(json_is_number(json_object_get(h, "uptime_s")), "health uptime_s");
    json_t *jobs = json_object_get(h, "jobs");
    CHECK(json_is_integer(json_object_get(jobs, "queued")) && json_is_integer(json_object_get(jobs, "running")),
          "health jobs counts");
    json_decref(h);

    json_t *o = at_expect_json(at_http("GET", "/v1/openapi.json", NULL), 200);
    CHECK(!strncmp(at_jstr(o, "openapi"), "3.1", 3), "openapi version '%s'", at_jstr(o, "openapi"));
    json_t *paths = json_object_get(o, "paths");
    const char *must[] = { "/v1/health", "/v1/datasets", "/v1/datasets/{id}/rows.npy", "/v1/jobs",
                           "/v1/jobs/{id}/events",
                           "/v1/jobs/{id}/metrics", "/v1/saes/{id}/decoder.npy", "/metrics" };
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        CHECK(json_object_get(paths, must[i]) != NULL, "openapi lacks %s", must[i]);
    json_decref(o);

    at_resp r = at_http("GET", "/", NULL);
    CHECK(r.status == 200 && !strncmp(r.ctype, "text/html", 9), "GET / -> %ld %s", r.status, r.ctype);
    at_resp_free(&r);
    r = at_http("HEAD", "/v1/health", NULL);
    CHECK(r.status == 200 && r.len == 0, "HEAD /v1/health -> %ld, %zu bytes", r.status, r.len);
    at_resp_free(&r);
    r = at_http("OPTIONS", "/v1/jobs", NULL);
    CHECK(r.status == 204 && strstr(r.allow, "POST"), "OPTIONS /v1/jobs -> %ld Allow '%s'", r.status, r.allow);
    at_resp_free(&r);
}

static void test_prometheus(void)
{
    at_resp r = at_http("GET", "/metrics", NULL);
    CHECK(r.status == 200 && !strncmp(r.ctype, "text/plain", 10), "/metrics -> %ld %s", r.status, r.ctype);
    CHECK(strstr(r.body, "saed_http_requests_total{code=\"2xx\"}") != NULL, "requests by class");
    CHECK(strstr(r.body, "saed_http_requests_total{code=\"4xx\"}") != NULL, "4xx counted");
    CHECK(strstr(r.body, "saed_jobs{state=\"queued\"}") && strstr(r.body, "saed_jobs{state=\"succeeded\"} "),
          "jobs by state");
    CHECK(strstr(r.body, "saed_training_samples_per_second ") != NULL, "samples/s gauge");
    const char *s = strstr(r.body, "saed_jobs{state=\"succeeded\"} ");
    CHECK(s && atoi(s + strlen("saed_jobs{state=\"succeeded\"} ")) >= 1, "a succeeded job is counted");
    at_resp_free(&r);
}

static void test_conventions(void)
{
    AT_BAD("GET", "/v1/nope", NULL, 404, NULL);
    AT_BAD("GET", "/nope.js", NULL, 404, NULL);
    AT_BAD("GET", "/../etc/passwd", NULL, 404, NULL);
    AT_BAD("GET", "/v1/jobs/abc", NULL, 404, NULL);
    AT_BAD("GET", "/v1/jobs/0", NULL, 404, NULL);
    AT_BAD("GET", "/v1/jobs/999999", NULL, 404, NULL);
    AT_BAD("GET", "/v1/datasets/999999", NULL, 404, NULL);
    AT_BAD("GET", "/v1/saes/999999", NULL, 404, NULL);
    AT_BAD("GET", "/v1/saes/999999/decoder.npy", NULL, 404, NULL);
    AT_BAD("POST", "/v1/jobs/999999/cancel", NULL, 404, NULL);
    AT_BAD("DELETE", "/v1/jobs/999999", NULL, 404, NULL);
    AT_BAD("GET", "/v1/jobs/999999/metrics", NULL, 404, NULL);
    AT_BAD("GET", "/v1/jobs/999999/events", NULL, 404, NULL);
    at_resp r = at_http("DELETE", "/v1/health", NULL);
    CHECK(strstr(r.allow, "GET") != NULL, "405 Allow '%s'", r.allow);
    at_expect_problem("DELETE /v1/health", r, 405, NULL);
    r = at_http("PUT", "/v1/jobs", "{}");
    CHECK(strstr(r.allow, "GET") && strstr(r.allow, "POST"), "405 Allow '%s'", r.allow);
    at_expect_problem("PUT /v1/jobs", r, 405, NULL);
    r = at_http("POST", "/v1/jobs/1", "{}");
    CHECK(strstr(r.allow, "DELETE") != NULL, "405 Allow '%s'", r.allow);
    at_expect_problem("POST /v1/jobs/1", r, 405, NULL);
    AT_BAD("GET", "/v1/jobs/1/cancel", NULL, 405, NULL);
    AT_BAD("POST", "/", "{}", 405, NULL);
    AT_BAD("GET", "/v1/jobs?limit=0", NULL, 400, "limit");
    AT_BAD("GET", "/v1/jobs?limit=1001", NULL, 400, "limit");
    AT_BAD("GET", "/v1/datasets?limit=abc", NULL, 400, "limit");
    AT_BAD("GET", "/v1/datasets?limit=1&limit=2", NULL, 400, "limit"); /* which one? refused, not the first taken */
    AT_BAD("GET", "/v1/saes?after=-1", NULL, 400, "after");
    AT_BAD("GET", "/v1/jobs?state=done", NULL, 400, "state");

    size_t big = (size_t)2 << 20;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    huge[0] = '{', huge[big - 1] = '}';
    at_expect_problem("oversized body", at_http_ex("POST", "/v1/datasets", huge, big, NULL, 30), 413, NULL);
    at_expect_problem("oversized job", at_http_ex("POST", "/v1/jobs", huge, big, NULL, 30), 413, NULL);
    free(huge);
}

/* ---- datasets ---- */

static void test_dataset_validation(void)
{
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"circles\"", 400, NULL);
    AT_BAD("POST", "/v1/datasets", "", 400, NULL);
    AT_BAD("POST", "/v1/datasets", "[1,2]", 400, NULL);
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"kind\":\"npy\"}", 400, NULL);
    AT_BAD("POST", "/v1/datasets", "{\"name\":\"x\"}", 400, "kind");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":7}", 400, "kind");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"nme\":\"x\"}", 400, "nme");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"dims\":8}}", 400, "params.dims");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"n_circles\":\"20\"}}", 400, "params.n_circles");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"n_circles\":2.5}}", 400, "params.n_circles");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":[]}", 400, "params");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"radius\":1}}", 400, "params.radius");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"n_circles\":0}}", 422, "params.n_circles");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"p_active\":1.5}}", 422, "params.p_active");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"radius\":[2,1]}}", 422, "params.radius");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"n_circles\":10000000,\"dim\":1000000}}", 422,
        "params.n_circles");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"name\":\"\"}", 422, "name");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"a.npy\"}", 422, "path"); /* no --import-dir */
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"idx\"}", 400, "images");
    AT_BAD("POST", "/v1/datasets", "{\"kind\":\"parquet\"}", 422, "kind");
}

static void test_dataset_defaults(void)
{
    at_resp r = at_http("POST", "/v1/datasets", "{\"kind\":\"circles\"}");
    char loc[128];
    snprintf(loc, sizeof loc, "%s", r.location);
    json_t *d = at_expect_json(r, 201);
    long long id = at_jint(d, "id");
    CHECK(id > 0 && !strcmp(loc, at_fmt("/v1/datasets/%lld", id)), "Location '%s' for id %lld", loc, id);
    json_t *p = json_object_get(d, "params");
    CHECK(at_jint(p, "n_circles") == 1600 && at_jint(p, "dim") == 200 && at_jint(p, "seed") == 1, "circles defaults");
    CHECK_NEAR(json_number_value(json_object_get(p, "p_active")), 0.002, 1e-12, "p_active default");
    CHECK(json_array_size(json_object_get(p, "radius")) == 2, "radius default");
    CHECK(at_jint(d, "dim") == 200 && json_is_null(json_object_get(d, "n_rows")), "dim 200, n_rows null");
    CHECK(json_is_false(json_object_get(d, "has_labels")), "no labels");
    CHECK(!strcmp(at_jstr(d, "kind"), "circles") && json_is_string(json_object_get(d, "created_at")), "kind, created_at");
    json_decref(d);
    d = at_expect_json(at_http("GET", at_fmt("/v1/datasets/%lld", id), NULL), 200);
    CHECK(at_jint(d, "id") == id, "GET dataset");
    json_decref(d);
    at_resp del = at_http("DELETE", at_fmt("/v1/datasets/%lld", id), NULL);
    CHECK(del.status == 204, "DELETE unused dataset -> %ld", del.status);
    at_resp_free(&del);
    AT_BAD("GET", at_fmt("/v1/datasets/%lld", id), NULL, 404, NULL);
    AT_BAD("DELETE", at_fmt("/v1/datasets/%lld", id), NULL, 404, NULL);
}

static void test_dataset_list(void)
{
    long long other = post_id("/v1/datasets", "{\"kind\":\"circles\",\"name\":\"second\",\"params\":{\"dim\":8}}", 201);
    json_t *l = at_expect_json(at_http("GET", "/v1/datasets?limit=1", NULL), 200);
    CHECK(json_array_size(json_object_get(l, "items")) == 1, "limit=1 gives one item");
    json_t *next = json_object_get(l, "next");
    CHECK(json_is_integer(next), "next set when more remain");
    long long after = json_integer_value(next);
    json_decref(l);
    l = at_expect_json(at_http("GET", at_fmt("/v1/datasets?limit=1&after=%lld", after), NULL), 200);
    json_t *item = json_array_get(json_object_get(l, "items"), 0);
    CHECK(item && at_jint(item, "id") > after, "after pages forward");
    json_decref(l);
    l = at_expect_json(at_http("GET", "/v1/datasets", NULL), 200);
    CHECK(json_array_size(json_object_get(l, "items")) >= 2 && json_is_null(json_object_get(l, "next")),
          "full list, next null");
    json_decref(l);
    at_resp r = at_http("DELETE", at_fmt("/v1/datasets/%lld", other), NULL);
    CHECK(r.status == 204, "delete second dataset -> %ld", r.status);
    at_resp_free(&r);
}

/* GET path -> 200 octet-stream saved as dir/name. */
static void fetch_npy(const char *dir, const char *path, const char *name)
{
    at_resp r = at_http("GET", path, NULL);
    CHECK(r.status == 200 && !strcmp(r.ctype, "application/octet-stream") && r.len > 10 &&
          !memcmp(r.body, "\x93NUMPY", 6),
          "GET %s -> %ld %s (%zu bytes)", path, r.status, r.ctype, r.len);
    at_save_body(dir, name, &r);
    at_resp_free(&r);
}

static void test_dataset_arrays(long long ds, const char *dir)
{
    fetch_npy(dir, at_fmt("/v1/datasets/%lld/rows.npy?offset=0&limit=5", ds), "rows5.npy");
    fetch_npy(dir, at_fmt("/v1/datasets/%lld/rows.npy?offset=2&limit=3", ds), "rows3.npy");
    fetch_npy(dir, at_fmt("/v1/datasets/%lld/planes.npy", ds), "planes.npy");
    AT_BAD("GET", at_fmt("/v1/datasets/%lld/rows.npy?limit=0", ds), NULL, 400, "limit");
    AT_BAD("GET", at_fmt("/v1/datasets/%lld/rows.npy?limit=100001", ds), NULL, 400, "limit");
    AT_BAD("GET", at_fmt("/v1/datasets/%lld/rows.npy?offset=-3", ds), NULL, 400, "offset");
    AT_BAD("GET", at_fmt("/v1/datasets/%lld/rows.npy?offset=x", ds), NULL, 400, "offset");
    AT_BAD("GET", "/v1/datasets/999999/rows.npy", NULL, 404, NULL);
    at_resp r = at_http("GET", at_fmt("/v1/datasets/%lld/labels", ds), NULL);
    CHECK(strstr(r.body, "no labels") != NULL, "labels problem says so: %.200s", r.body);
    at_expect_problem("labels of circles", r, 404, NULL);
}

/* ---- jobs: validation ---- */

static void test_job_validation(long long ds)
{
    char b[1024];
#define JOB(sae, train) (snprintf(b, sizeof b, "{\"type\":\"train\",\"dataset\":%lld,\"sae\":%s%s%s}", ds, sae, \
                                  *(train) ? ",\"train\":" : "", train), b)
    AT_BAD("POST", "/v1/jobs", "{\"type\":\"train\",", 400, NULL);
    AT_BAD("POST", "/v1/jobs", "\"train\"", 400, NULL);
    AT_BAD("POST", "/v1/jobs", "{\"dataset\":1}", 400, "type");
    AT_BAD("POST", "/v1/jobs", "{\"type\":\"analyze\",\"sae\":1,\"dataset\":1}", 422, "sae"); /* no SAE yet */
    AT_BAD("POST", "/v1/jobs", "{\"type\":\"dance\"}", 422, "type");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64}", "{\"lr_warmup_step\":10}"), 400,
        "train.lr_warmup_step");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64,\"groupsize\":2}", ""), 400, "sae.groupsize");
    snprintf(b, sizeof b, "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"n_latents\":64},"
             "\"priority\":1}", ds);
    AT_BAD("POST", "/v1/jobs", b, 400, "priority");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":\"64\"}", ""), 400, "sae.n_latents");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64.5}", ""), 400, "sae.n_latents");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64}", "{\"lr\":\"fast\"}"), 400, "train.lr");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64}", "[]"), 400, "train");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\"}", ""), 400, "sae.n_latents");
    AT_BAD("POST", "/v1/jobs", JOB("{\"n_latents\":64}", ""), 400, "sae.arch");
    snprintf(b, sizeof b, "{\"type\":\"train\",\"dataset\":%lld}", ds);
    AT_BAD("POST", "/v1/jobs", b, 400, "sae");
    snprintf(b, sizeof b, "{\"type\":\"train\",\"dataset\":\"%lld\",\"sae\":{\"arch\":\"relu\",\"n_latents\":64}}", ds);
    AT_BAD("POST", "/v1/jobs", b, 400, "dataset");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":63,\"group_size\":2}", ""), 422, "sae.n_latents");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64,\"group_size\":0}", ""), 422, "sae.group_size");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64,\"sparsity_coef\":-1}", ""), 422,
        "sae.sparsity_coef");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"swish\",\"n_latents\":64}", ""), 422, "sae.arch");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64}", "{\"lr_decay\":\"exp\"}"), 422,
        "train.lr_decay");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64}", "{\"steps\":0}"), 422, "train.steps");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64}", "{\"steps\":99999999999}"), 422,
        "train.steps");
    AT_BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":100000000}", ""), 422, "sae.n_latents");
    AT_BAD("POST", "/v1/jobs", "{\"type\":\"train\",\"dataset\":999999,\"sae\":{\"arch\":\"relu\",\"n_latents\":64}}",
        422, "dataset");
#undef JOB
}

/* The stored spec has every default filled in. */
static void check_normalized_spec(json_t *job)
{
    json_t *spec = json_object_get(job, "spec"), *sae = json_object_get(spec, "sae");
    json_t *tr = json_object_get(spec, "train");
    CHECK(!strcmp(at_jstr(spec, "type"), "train") && json_is_integer(json_object_get(spec, "dataset")),
          "spec type/dataset");
    CHECK(at_jint(sae, "group_size") == 2 && json_is_null(json_object_get(sae, "k")) &&
          json_is_number(json_object_get(sae, "orth_coef")) && json_is_number(json_object_get(sae, "threshold")),
          "sae defaults filled");
    CHECK_NEAR(json_number_value(json_object_get(tr, "adam_beta1")), 0.9, 1e-12, "adam_beta1 default (exact decimal)");
    CHECK_NEAR(json_number_value(json_object_get(tr, "adam_eps")), 1e-8, 1e-20, "adam_eps default");
    CHECK(at_jint(tr, "eval_rows") == 512 && at_jint(tr, "dead_window") == 1000 &&
          json_is_integer(json_object_get(tr, "resample_every")) && at_jint(tr, "resample_every") == 0 &&
          !strcmp(at_jstr(tr, "lr_decay"), "linear") &&
          json_is_integer(json_object_get(tr, "seed")) && json_is_number(json_object_get(tr, "grad_clip")),
          "train defaults filled");
}

/* ---- jobs: end to end ---- */

typedef struct { int progress, states; char last_event[32], last_data[4096]; long long last_progress_id; } sse_t;

static void sse_parse(const char *text, sse_t *s)
{
    memset(s, 0, sizeof *s);
    s->last_progress_id = -1;
    for (const char *ev = text; ev && *ev; ) {
        const char *end = strstr(ev, "\n\n");
        size_t n = end ? (size_t)(end - ev) : strlen(ev);
        char block[8192];
        snprintf(block, sizeof block, "%.*s", (int)(n < sizeof block ? n : sizeof block - 1), ev);
        char *name = strstr(block, "event: "), *data = strstr(block, "data: "), *id = strstr(block, "id: ");
        if (name) {
            char *nl = strchr(name, '\n');
            snprintf(s->last_event, sizeof s->last_event, "%.*s", (int)((nl ? nl : name + strlen(name)) - name - 7),
                     name + 7);
            if (data) snprintf(s->last_data, sizeof s->last_data, "%s", data + 6);
            if (!strcmp(s->last_event, "progress")) s->progress++, s->last_progress_id = id ? atoll(id + 4) : -1;
            if (!strcmp(s->last_event, "state")) s->states++;
        }
        ev = end ? end + 2 : NULL;
    }
}

static void check_metrics(long long job, double *sps)
{
    static const char *const k[] = { "step", "loss", "mse", "fve", "l0", "l0_groups", "dead_frac", "lr",
                                      "samples_per_s" };
    json_t *m = at_expect_json(at_http("GET", at_fmt("/v1/jobs/%lld/metrics", job), NULL), 200);
    size_t n = json_array_size(json_object_get(m, "step"));
    CHECK(n >= 2, "metrics has %zu points", n);
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        CHECK(json_array_size(json_object_get(m, k[i])) == n, "metrics %s has the same length", k[i]);
    double fve = json_number_value(json_array_get(json_object_get(m, "fve"), n - 1));
    CHECK(fve > 0.5, "final fve %g > 0.5", fve);
    printf("small SAE: final fve %.3f after %zu evaluations\n", fve, n);
    *sps = json_number_value(json_array_get(json_object_get(m, "samples_per_s"), n - 1));
    long long last = json_integer_value(json_array_get(json_object_get(m, "step"), n - 1));
    json_decref(m);
    m = at_expect_json(at_http("GET", at_fmt("/v1/jobs/%lld/metrics?since_step=%lld", job, last), NULL), 200);
    CHECK(json_array_size(json_object_get(m, "step")) == 0 && json_array_size(json_object_get(m, "fve")) == 0,
          "since_step=last gives empty arrays");
    json_decref(m);
    AT_BAD("GET", at_fmt("/v1/jobs/%lld/metrics?since_step=x", job), NULL, 400, "since_step");
}

static void check_sae(long long sae, long long job, long long ds, const char *dir)
{
    json_t *s = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld", sae), NULL), 200);
    CHECK(at_jint(s, "job") == job && at_jint(s, "dataset") == ds, "SAE names its job and dataset");
    CHECK(at_jint(s, "n_latents") == 64 && at_jint(s, "dim") == 16 && at_jint(s, "group_size") == 2, "SAE shape");
    CHECK(json_is_object(json_object_get(s, "config")), "SAE config");
    CHECK(json_is_number(json_object_get(json_object_get(s, "metrics"), "fve")), "SAE metrics.fve");
    json_decref(s);
    json_t *l = at_expect_json(at_http("GET", "/v1/saes", NULL), 200);
    CHECK(json_array_size(json_object_get(l, "items")) >= 1, "SAE list");
    json_decref(l);
    fetch_npy(dir, at_fmt("/v1/saes/%lld/decoder.npy", sae), "decoder.npy");
    fetch_npy(dir, at_fmt("/v1/saes/%lld/encoder.npy", sae), "encoder.npy");
    fetch_npy(dir, at_fmt("/v1/saes/%lld/b_enc.npy", sae), "b_enc.npy");
    fetch_npy(dir, at_fmt("/v1/saes/%lld/b_dec.npy", sae), "b_dec.npy");
}

/* numpy reads every array back; each check prints "name ok" or "name FAIL ...". */
static void check_arrays_with_numpy(const char *dir)
{
    static const char script[] =
        "import numpy as np, sys, os\n"
        "d = sys.argv[1]\n"
        "L = lambda n: np.load(os.path.join(d, n))\n"
        "def c(name, ok, info=''):\n"
        "    print(name, 'ok' if ok else 'FAIL ' + str(info))\n"
        "dec, enc, be, bd = L('decoder.npy'), L('encoder.npy'), L('b_enc.npy'), L('b_dec.npy')\n"
        "c('decoder', dec.dtype == np.float32 and dec.shape == (64, 16), (dec.dtype, dec.shape))\n"
        "c('decoder_unit', np.allclose(np.linalg.norm(dec, axis=1), 1, atol=1e-3), np.linalg.norm(dec, axis=1)[:4])\n"
        "c('encoder', enc.dtype == np.float32 and enc.shape == (16, 64), enc.shape)\n"
        "c('b_enc', be.shape == (64,), be.shape)\n"
        "c('b_dec', bd.shape == (16,), bd.shape)\n"
        "c('finite', all(np.isfinite(a).all() for a in (dec, enc, be, bd)))\n"
        "p = L('planes.npy')\n"
        "c('planes', p.dtype == np.float32 and p.shape == (20, 2, 16), p.shape)\n"
        "c('planes_unit', np.allclose(np.linalg.norm(p, axis=2), 1, atol=1e-4))\n"
        "r5, r3 = L('rows5.npy'), L('rows3.npy')\n"
        "c('rows', r5.dtype == np.float32 and r5.shape == (5, 16) and r3.shape == (3, 16), (r5.shape, r3.shape))\n"
        "c('rows_pure', np.array_equal(r5[2:5], r3))\n";
    char path[512], cmd[1024], line[256];
    snprintf(path, sizeof path, "%s/check.py", dir);
    FILE *f = fopen(path, "w");
    if (f) { fputs(script, f); fclose(f); }
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s 2>&1", path, dir);
    FILE *p = popen(cmd, "r");
    int seen = 0;
    while (p && fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        CHECK(strstr(line, " ok") != NULL, "numpy: %s", line);
        seen++;
    }
    CHECK(p && pclose(p) == 0 && seen == 10, "numpy script ran all 10 checks (%d)", seen);
}

/* Trains a small SAE to completion, following it over SSE. Returns the job id; *sae_out its SAE. */
static long long test_train_end_to_end(long long ds, const char *dir, long long *sae_out, double *sps)
{
    long long job = submit_train(ds, 400, 64, 100);
    json_t *j = at_get_job(job);
    CHECK(j && (!strcmp(at_jstr(j, "state"), "queued") || !strcmp(at_jstr(j, "state"), "running") ||
                !strcmp(at_jstr(j, "state"), "succeeded")), "new job state '%s'", j ? at_jstr(j, "state") : "?");
    if (j) check_normalized_spec(j);
    json_decref(j);

    at_resp ev = at_http_ex("GET", at_fmt("/v1/jobs/%lld/events", job), NULL, 0, NULL, 120);
    sse_t s;
    sse_parse(ev.body, &s);
    CHECK(ev.status == 200 && !strncmp(ev.ctype, "text/event-stream", 17), "events -> %ld %s", ev.status, ev.ctype);
    CHECK(s.progress >= 1 && s.states >= 1, "SSE: %d progress, %d state events", s.progress, s.states);
    CHECK(!strcmp(s.last_event, "state") && strstr(s.last_data, "\"succeeded\""), "SSE ends with the terminal state "
          "(%s %.200s)", s.last_event, s.last_data);
    at_resp_free(&ev);

    j = at_wait_job(job, "succeeded failed cancelled", 120);
    CHECK(j && !strcmp(at_jstr(j, "state"), "succeeded"), "job succeeded (%s: %s)", j ? at_jstr(j, "state") : "timeout",
          j ? at_jstr(j, "error") : "");
    json_t *prog = json_object_get(j, "progress");
    CHECK(at_jint(prog, "step") == 400 && at_jint(prog, "total_steps") == 400, "progress at the end");
    CHECK_NEAR(json_number_value(json_object_get(prog, "fraction")), 1.0, 1e-9, "fraction 1");
    CHECK(json_is_number(json_object_get(json_object_get(j, "latest"), "fve")), "latest has fve");
    CHECK(json_is_string(json_object_get(j, "started_at")) && json_is_string(json_object_get(j, "finished_at")),
          "start and finish times");
    CHECK(json_is_null(json_object_get(j, "error")), "no error");
    *sae_out = at_jint(json_object_get(j, "result"), "sae");
    CHECK(*sae_out > 0, "result.sae");
    json_decref(j);

    /* resuming after the last step repeats no progress */
    ev = at_http_ex("GET", at_fmt("/v1/jobs/%lld/events", job), NULL, 0, "Last-Event-ID: 400", 30);
    sse_parse(ev.body, &s);
    CHECK(s.progress == 0 && s.states == 1, "resume: %d progress, %d state", s.progress, s.states);
    at_resp_free(&ev);

    check_metrics(job, sps);
    check_sae(*sae_out, job, ds, dir);
    return job;
}

/* ---- cancel and delete ---- */

static void test_cancel_delete(long long ds, long long done_job, long long sae)
{
    long long run = submit_train(ds, 2000000, 64, 0), queued = submit_train(ds, 2000000, 64, 0);
    json_t *j = at_wait_job(run, "running", 60);
    CHECK(j != NULL, "long job starts running");
    json_decref(j);
    j = at_get_job(queued);
    CHECK(j && !strcmp(at_jstr(j, "state"), "queued"), "second job waits (one worker)");
    json_decref(j);
    AT_BAD("DELETE", at_fmt("/v1/jobs/%lld", run), NULL, 409, NULL);
    AT_BAD("DELETE", at_fmt("/v1/jobs/%lld", queued), NULL, 409, NULL);
    AT_BAD("DELETE", at_fmt("/v1/datasets/%lld", ds), NULL, 409, NULL);

    json_t *c = at_expect_json(at_http("POST", at_fmt("/v1/jobs/%lld/cancel", queued), NULL), 202);
    CHECK(!strcmp(at_jstr(c, "state"), "cancelled"), "a queued job is cancelled at once (%s)", at_jstr(c, "state"));
    json_decref(c);
    c = at_expect_json(at_http("POST", at_fmt("/v1/jobs/%lld/cancel", run), NULL), 202);
    json_decref(c);
    j = at_wait_job(run, "cancelled failed succeeded", 15);
    CHECK(j && !strcmp(at_jstr(j, "state"), "cancelled"), "running job cancelled (%s)", j ? at_jstr(j, "state") : "timeout");
    json_decref(j);
    AT_BAD("POST", at_fmt("/v1/jobs/%lld/cancel", run), NULL, 409, NULL);

    json_t *l = at_expect_json(at_http("GET", "/v1/jobs?state=cancelled", NULL), 200);
    CHECK(json_array_size(json_object_get(l, "items")) == 2, "?state=cancelled lists both");
    json_decref(l);
    l = at_expect_json(at_http("GET", "/v1/jobs?limit=1", NULL), 200);
    CHECK(json_array_size(json_object_get(l, "items")) == 1 && json_is_integer(json_object_get(l, "next")),
          "jobs page");
    json_decref(l);

    long long gone[] = { run, queued, done_job };
    for (int i = 0; i < 3; i++) {
        at_resp r = at_http("DELETE", at_fmt("/v1/jobs/%lld", gone[i]), NULL);
        CHECK(r.status == 204, "DELETE terminal job %lld -> %ld", gone[i], r.status);
        at_resp_free(&r);
        AT_BAD("GET", at_fmt("/v1/jobs/%lld", gone[i]), NULL, 404, NULL);
    }
    at_resp r = at_http("GET", at_fmt("/v1/saes/%lld/decoder.npy", sae), NULL);
    CHECK(r.status == 200, "the SAE outlives its deleted job (%ld)", r.status);
    at_resp_free(&r);
}

/* ---- crash recovery and SIGTERM ---- */

static int wait_exit(pid_t pid, double timeout, int *status)
{
    for (double t0 = at_now_s(); at_now_s() - t0 < timeout; at_sleep_ms(50))
        if (waitpid(pid, status, WNOHANG) == pid) return 1;
    return 0;
}

/* A second saed on a port already taken exits 1 with a message, instead of hanging at start-up. */
static void test_port_taken(const at_daemon *d)
{
    char dir[300], listen[64];
    snprintf(dir, sizeof dir, "%s/second", d->dir);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", d->port);
    mkdir(dir, 0755);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        execl(d->bin, d->bin, "--listen", listen, "--data-dir", dir, "--log-level", "error", (char *)NULL);
        _exit(127);
    }
    int st = -1, exited = pid > 0 && wait_exit(pid, 30, &st);
    CHECK(exited && WIFEXITED(st) && WEXITSTATUS(st) == 1, "a second saed on port %d exits 1 (status %d)", d->port,
          st);
    if (pid > 0 && !exited) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
}

static void test_kill9(at_daemon *d, long long ds, int steps)
{
    long long job = submit_train(ds, steps, 64, steps / 10);
    long long past = wait_step(job, steps / 10 * 3 / 2, 120); /* a checkpoint exists */
    CHECK(past > 0, "job runs past its first checkpoint before the kill");
    kill(d->pid, SIGKILL);
    int st;
    CHECK(wait_exit(d->pid, 10, &st), "daemon died");
    CHECK(at_daemon_restart(d), "daemon restarts on the same data dir");
    json_t *j = at_get_job(job);
    printf("kill -9 at step %lld of %d; after restart: %s at step %lld\n", past, steps, j ? at_jstr(j, "state") : "?",
           j ? at_jint(json_object_get(j, "progress"), "step") : -1);
    CHECK(j && (!strcmp(at_jstr(j, "state"), "queued") || !strcmp(at_jstr(j, "state"), "running") ||
                !strcmp(at_jstr(j, "state"), "succeeded")), "job came back (%s)", j ? at_jstr(j, "state") : "missing");
    json_decref(j);
    j = at_wait_job(job, "succeeded failed cancelled", 180);
    CHECK(j && !strcmp(at_jstr(j, "state"), "succeeded"), "job finishes after the crash (%s %s)",
          j ? at_jstr(j, "state") : "timeout", j ? at_jstr(j, "error") : "");
    json_decref(j);
    json_t *m = at_expect_json(at_http("GET", at_fmt("/v1/jobs/%lld/metrics", job), NULL), 200);
    json_t *steps_seen = json_object_get(m, "step"); /* (n) */
    size_t bad = 0, n = json_array_size(steps_seen);
    for (size_t i = 1; i < n; i++)
        bad += json_integer_value(json_array_get(steps_seen, i)) <=
               json_integer_value(json_array_get(steps_seen, i - 1));
    CHECK(n > 0 && bad == 0, "metric steps strictly increase across the crash (%zu of %zu out of order)", bad, n);
    json_decref(m);
}

static void test_sigterm(at_daemon *d, long long ds)
{
    long long job = submit_train(ds, 2000000, 64, 1000);
    long long before = wait_step(job, 500, 120);
    CHECK(before > 0, "job running before SIGTERM");
    kill(d->pid, SIGTERM);
    int st = -1;
    CHECK(wait_exit(d->pid, 60, &st), "daemon exits on SIGTERM");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0 (status %d)", st);
    CHECK(at_daemon_restart(d), "daemon restarts after SIGTERM");
    json_t *j = at_get_job(job);
    CHECK(j && (!strcmp(at_jstr(j, "state"), "queued") || !strcmp(at_jstr(j, "state"), "running")),
          "SIGTERM requeued the job (%s)", j ? at_jstr(j, "state") : "missing");
    CHECK(j && at_jint(json_object_get(j, "progress"), "step") >= before, "the requeued job keeps its progress "
          "(%lld, was %lld)", j ? at_jint(json_object_get(j, "progress"), "step") : -1, before);
    json_decref(j);
    at_resp r = at_http("POST", at_fmt("/v1/jobs/%lld/cancel", job), NULL);
    at_resp_free(&r);
    j = at_wait_job(job, "cancelled", 15);
    CHECK(j != NULL, "requeued job cancels");
    json_decref(j);
}

/* ---- main ---- */

int main(void)
{
    at_daemon d = { 0 };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int up = at_daemon_start(&d, "test-api", NULL);
    CHECK(up, "daemon answers /v1/health");
    if (!up) {
        at_daemon_show_log(&d);
        if (d.pid > 0) kill(d.pid, SIGKILL);
        return check_report();
    }
    char arrays[300];
    snprintf(arrays, sizeof arrays, "%s/arrays", d.dir);
    mkdir(arrays, 0755);

    test_daemon_endpoints();
    test_conventions();
    test_dataset_validation();
    test_dataset_defaults();
    long long ds = post_id("/v1/datasets", "{\"kind\":\"circles\",\"name\":\"tiny\",\"params\":{\"n_circles\":20,"
                           "\"dim\":16,\"p_active\":0.1,\"radius\":[0.5,1.5],\"seed\":3}}", 201);
    test_dataset_list();
    test_dataset_arrays(ds, arrays);
    test_job_validation(ds);
    long long sae = 0;
    double sps = 0;
    long long job = test_train_end_to_end(ds, arrays, &sae, &sps);
    check_arrays_with_numpy(arrays);
    test_prometheus();
    test_cancel_delete(ds, job, sae);
    int steps = sps > 0 ? (int)(sps / 64 * 5) : 20000; /* about 5 s of work */
    test_port_taken(&d);
    test_kill9(&d, ds, steps < 2000 ? 2000 : steps > 2000000 ? 2000000 : steps);
    test_sigterm(&d, ds);

    kill(d.pid, SIGTERM);
    int st = -1;
    CHECK(wait_exit(d.pid, 60, &st) && WIFEXITED(st) && WEXITSTATUS(st) == 0, "final SIGTERM exits 0");
    if (check_failed) {
        at_daemon_show_log(&d);
        fprintf(stderr, "test_api: data left in %s\n", d.dir);
    } else {
        at_daemon_cleanup(&d);
    }
    curl_global_cleanup();
    return check_report();
}
