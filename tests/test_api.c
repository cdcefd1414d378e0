/* test_api — drives a real saed over HTTP (libcurl) and checks the REST
 * contract of ../shared/API.md end to end.
 *
 * It starts $BUILD/saed (BUILD from the environment, default "build") as a
 * child on a free port with a fresh data directory, waits for /v1/health,
 * then walks every endpoint: the conventions (problem+json with the right
 * errors[].field for malformed JSON, wrong types, unknown fields, unknown
 * ids, wrong methods, impossible sizes, oversized bodies, bad limits),
 * datasets, a short training job end to end (SSE, metrics, the SAE and its
 * .npy weights checked by /usr/bin/python3 with numpy), cancel and delete
 * rules, recovery after kill -9, and a clean SIGTERM that requeues the
 * running job. Nothing asserts on timing; waits have generous timeouts. */
#include "check.h"
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

/* ---- the daemon ---- */

typedef struct {
    char bin[512];     /* $BUILD/saed */
    char dir[256];     /* data directory (mkdtemp) */
    int port;
    pid_t pid;
} daemon_t;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

static void daemon_spawn(daemon_t *d)
{
    char listen[64], log[300];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", d->port);
    snprintf(log, sizeof log, "%s/saed.log", d->dir);
    d->pid = fork();
    if (d->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
        execl(d->bin, d->bin, "--listen", listen, "--data-dir", d->dir, "--workers", "1", "--log-level", "warn",
              (char *)NULL);
        _exit(127);
    }
}

/* ---- HTTP ---- */

typedef struct {
    long status;
    char *body;       /* NUL-terminated */
    size_t len;
    char ctype[128], allow[128], location[128];
    int curl_ok;
} resp_t;

static size_t on_body(char *p, size_t sz, size_t n, void *cls)
{
    resp_t *r = cls;
    size_t add = sz * n;
    char *b = realloc(r->body, r->len + add + 1);
    if (!b) return 0;
    memcpy(b + r->len, p, add);
    r->body = b;
    r->len += add;
    b[r->len] = '\0';
    return add;
}

static void header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (n <= nl + 1 || strncasecmp(line, name, nl) || line[nl] != ':') return;
    const char *v = line + nl + 1;
    while (*v == ' ') v++;
    size_t vl = (size_t)(line + n - v);
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n')) vl--;
    if (vl >= cap) vl = cap - 1;
    memcpy(out, v, vl);
    out[vl] = '\0';
}

static size_t on_header(char *p, size_t sz, size_t n, void *cls)
{
    resp_t *r = cls;
    header_value(p, sz * n, "Content-Type", r->ctype, sizeof r->ctype);
    header_value(p, sz * n, "Allow", r->allow, sizeof r->allow);
    header_value(p, sz * n, "Location", r->location, sizeof r->location);
    return sz * n;
}

static int g_port;

/* method path [body [extra header]] -> resp (free with resp_free). */
static resp_t http_ex(const char *method, const char *path, const char *body, size_t body_len,
                      const char *header, long timeout_s)
{
    resp_t r = { 0 };
    char url[1024];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", g_port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    if (header) h = curl_slist_append(h, header);
    if (h) curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    r.curl_ok = curl_easy_perform(c) == CURLE_OK;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r.body) r.body = calloc(1, 1);
    return r;
}

static resp_t http(const char *method, const char *path, const char *body)
{
    return http_ex(method, path, body, body ? strlen(body) : 0, NULL, 30);
}

static void resp_free(resp_t *r) { free(r->body); r->body = NULL; }

static json_t *resp_json(const resp_t *r) { return json_loadb(r->body, r->len, 0, NULL); }
static long long jint(json_t *o, const char *key) { return json_integer_value(json_object_get(o, key)); }
static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Formats a path. */
static const char *P(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *P(const char *fmt, ...)
{
    static char buf[4][512];
    static int i;
    char *b = buf[i++ & 3];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, 512, fmt, ap);
    va_end(ap);
    return b;
}

/* ---- assertions ---- */

static int has_error_field(json_t *p, const char *field)
{
    json_t *errs = json_object_get(p, "errors"), *e;
    size_t i;
    json_array_foreach(errs, i, e)
        if (!strcmp(jstr(e, "field"), field)) return 1;
    return 0;
}

/* A problem+json reply with this status and (if field) errors[].field. */
static void expect_problem_at(int line, const char *what, resp_t r, long status, const char *field)
{
    json_t *p = resp_json(&r);
    CHECK(r.status == status, "line %d %s: status %ld, want %ld; body %.300s", line, what, r.status, status, r.body);
    CHECK(!strncmp(r.ctype, "application/problem+json", 24), "line %d %s: content type '%s'", line, what, r.ctype);
    CHECK(p && json_is_string(json_object_get(p, "type")) && json_is_string(json_object_get(p, "title")) &&
          json_integer_value(json_object_get(p, "status")) == status && json_is_string(json_object_get(p, "detail")),
          "line %d %s: not a problem object: %.300s", line, what, r.body);
    if (field) CHECK(has_error_field(p, field), "line %d %s: no errors[].field '%s' in %.400s", line, what, field,
                     r.body);
    json_decref(p);
    resp_free(&r);
}
#define expect_problem(what, r, status, field) expect_problem_at(__LINE__, what, r, status, field)

/* Sends and expects a problem. */
#define BAD(method, path, body, status, field) do {                             \
    const char *bad_path_ = (path);                                             \
    expect_problem(bad_path_, http(method, bad_path_, body), status, field);    \
} while (0)

static json_t *expect_json_at(int line, resp_t r, long status)
{
    json_t *j = resp_json(&r);
    CHECK(r.status == status, "line %d: status %ld, want %ld; body %.300s", line, r.status, status, r.body);
    CHECK(!strncmp(r.ctype, "application/json", 16), "line %d: content type '%s'", line, r.ctype);
    CHECK(j != NULL, "line %d: body is not JSON: %.200s", line, r.body);
    resp_free(&r);
    return j ? j : json_object();
}
#define expect_json(r, status) expect_json_at(__LINE__, r, status)


/* ---- helpers over the API ---- */

static int wait_health(double timeout)
{
    for (double t0 = now_s(); now_s() - t0 < timeout; sleep_ms(100)) {
        resp_t r = http_ex("GET", "/v1/health", NULL, 0, NULL, 2);
        long st = r.status;
        resp_free(&r);
        if (st == 200) return 1;
    }
    return 0;
}

static json_t *get_job(long long id)
{
    resp_t r = http("GET", P("/v1/jobs/%lld", id), NULL);
    json_t *j = r.status == 200 ? resp_json(&r) : NULL;
    resp_free(&r);
    return j;
}

/* Waits until the job's state is one of `states` (space-separated); returns the job or NULL. */
/* Waits until the job has done at least `step` steps; returns its step, or -1. */
static long long wait_step(long long id, long long step, double timeout)
{
    for (double t0 = now_s(); now_s() - t0 < timeout; sleep_ms(100)) {
        json_t *j = get_job(id);
        long long s = j ? jint(json_object_get(j, "progress"), "step") : -1;
        json_decref(j);
        if (s >= step) return s;
    }
    return -1;
}

static json_t *wait_job(long long id, const char *states, double timeout)
{
    for (double t0 = now_s(); now_s() - t0 < timeout; sleep_ms(100)) {
        json_t *j = get_job(id);
        if (j && *jstr(j, "state") && strstr(states, jstr(j, "state"))) return j;
        json_decref(j);
    }
    return NULL;
}

static long long post_id(const char *path, const char *body, long want)
{
    resp_t r = http("POST", path, body);
    long st = r.status;
    json_t *j = resp_json(&r);
    CHECK(st == want, "POST %s: status %ld, want %ld: %.300s", path, st, want, r.body);
    resp_free(&r);
    long long id = j ? jint(j, "id") : 0;
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
    json_t *h = expect_json(http("GET", "/v1/health", NULL), 200);
    CHECK(!strcmp(jstr(h, "status"), "ok"), "health status");
    CHECK(json_is_string(json_object_get(h, "version")), "health version");
    CHECK(json_is_number(json_object_get(h, "uptime_s")), "health uptime_s");
    json_t *jobs = json_object_get(h, "jobs");
    CHECK(json_is_integer(json_object_get(jobs, "queued")) && json_is_integer(json_object_get(jobs, "running")),
          "health jobs counts");
    json_decref(h);

    json_t *o = expect_json(http("GET", "/v1/openapi.json", NULL), 200);
    CHECK(!strncmp(jstr(o, "openapi"), "3.1", 3), "openapi version '%s'", jstr(o, "openapi"));
    json_t *paths = json_object_get(o, "paths");
    const char *must[] = { "/v1/health", "/v1/datasets", "/v1/datasets/{id}/rows.npy", "/v1/jobs",
                           "/v1/jobs/{id}/events",
                           "/v1/jobs/{id}/metrics", "/v1/saes/{id}/decoder.npy", "/metrics" };
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        CHECK(json_object_get(paths, must[i]) != NULL, "openapi lacks %s", must[i]);
    json_decref(o);

    resp_t r = http("GET", "/", NULL);
    CHECK(r.status == 200 && !strncmp(r.ctype, "text/html", 9), "GET / -> %ld %s", r.status, r.ctype);
    resp_free(&r);
    r = http("HEAD", "/v1/health", NULL);
    CHECK(r.status == 200 && r.len == 0, "HEAD /v1/health -> %ld, %zu bytes", r.status, r.len);
    resp_free(&r);
    r = http("OPTIONS", "/v1/jobs", NULL);
    CHECK(r.status == 204 && strstr(r.allow, "POST"), "OPTIONS /v1/jobs -> %ld Allow '%s'", r.status, r.allow);
    resp_free(&r);
}

static void test_prometheus(void)
{
    resp_t r = http("GET", "/metrics", NULL);
    CHECK(r.status == 200 && !strncmp(r.ctype, "text/plain", 10), "/metrics -> %ld %s", r.status, r.ctype);
    CHECK(strstr(r.body, "saed_http_requests_total{code=\"2xx\"}") != NULL, "requests by class");
    CHECK(strstr(r.body, "saed_http_requests_total{code=\"4xx\"}") != NULL, "4xx counted");
    CHECK(strstr(r.body, "saed_jobs{state=\"queued\"}") && strstr(r.body, "saed_jobs{state=\"succeeded\"} "),
          "jobs by state");
    CHECK(strstr(r.body, "saed_training_samples_per_second ") != NULL, "samples/s gauge");
    const char *s = strstr(r.body, "saed_jobs{state=\"succeeded\"} ");
    CHECK(s && atoi(s + strlen("saed_jobs{state=\"succeeded\"} ")) >= 1, "a succeeded job is counted");
    resp_free(&r);
}

static void test_conventions(void)
{
    BAD("GET", "/v1/nope", NULL, 404, NULL);
    BAD("GET", "/nope.js", NULL, 404, NULL);
    BAD("GET", "/../etc/passwd", NULL, 404, NULL);
    BAD("GET", "/v1/jobs/abc", NULL, 404, NULL);
    BAD("GET", "/v1/jobs/0", NULL, 404, NULL);
    BAD("GET", "/v1/jobs/999999", NULL, 404, NULL);
    BAD("GET", "/v1/datasets/999999", NULL, 404, NULL);
    BAD("GET", "/v1/saes/999999", NULL, 404, NULL);
    BAD("GET", "/v1/saes/999999/decoder.npy", NULL, 404, NULL);
    BAD("POST", "/v1/jobs/999999/cancel", NULL, 404, NULL);
    BAD("DELETE", "/v1/jobs/999999", NULL, 404, NULL);
    BAD("GET", "/v1/jobs/999999/metrics", NULL, 404, NULL);
    BAD("GET", "/v1/jobs/999999/events", NULL, 404, NULL);
    resp_t r = http("DELETE", "/v1/health", NULL);
    CHECK(strstr(r.allow, "GET") != NULL, "405 Allow '%s'", r.allow);
    expect_problem("DELETE /v1/health", r, 405, NULL);
    r = http("PUT", "/v1/jobs", "{}");
    CHECK(strstr(r.allow, "GET") && strstr(r.allow, "POST"), "405 Allow '%s'", r.allow);
    expect_problem("PUT /v1/jobs", r, 405, NULL);
    r = http("POST", "/v1/jobs/1", "{}");
    CHECK(strstr(r.allow, "DELETE") != NULL, "405 Allow '%s'", r.allow);
    expect_problem("POST /v1/jobs/1", r, 405, NULL);
    BAD("GET", "/v1/jobs/1/cancel", NULL, 405, NULL);
    BAD("POST", "/", "{}", 405, NULL);
    BAD("GET", "/v1/jobs?limit=0", NULL, 400, "limit");
    BAD("GET", "/v1/jobs?limit=1001", NULL, 400, "limit");
    BAD("GET", "/v1/datasets?limit=abc", NULL, 400, "limit");
    BAD("GET", "/v1/saes?after=-1", NULL, 400, "after");
    BAD("GET", "/v1/jobs?state=done", NULL, 400, "state");

    size_t big = (size_t)2 << 20;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    huge[0] = '{', huge[big - 1] = '}';
    expect_problem("oversized body", http_ex("POST", "/v1/datasets", huge, big, NULL, 30), 413, NULL);
    expect_problem("oversized job", http_ex("POST", "/v1/jobs", huge, big, NULL, 30), 413, NULL);
    free(huge);
}

/* ---- datasets ---- */

static void test_dataset_validation(void)
{
    BAD("POST", "/v1/datasets", "{\"kind\":\"circles\"", 400, NULL);
    BAD("POST", "/v1/datasets", "", 400, NULL);
    BAD("POST", "/v1/datasets", "[1,2]", 400, NULL);
    BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"kind\":\"npy\"}", 400, NULL);
    BAD("POST", "/v1/datasets", "{\"name\":\"x\"}", 400, "kind");
    BAD("POST", "/v1/datasets", "{\"kind\":7}", 400, "kind");
    BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"nme\":\"x\"}", 400, "nme");
    BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"dims\":8}}", 400, "params.dims");
    BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"n_circles\":\"20\"}}", 400, "params.n_circles");
    BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"n_circles\":2.5}}", 400, "params.n_circles");
    BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":[]}", 400, "params");
    BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"radius\":1}}", 400, "params.radius");
    BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"n_circles\":0}}", 422, "params.n_circles");
    BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"p_active\":1.5}}", 422, "params.p_active");
    BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"radius\":[2,1]}}", 422, "params.radius");
    BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"n_circles\":10000000,\"dim\":1000000}}", 422,
        "params.n_circles");
    BAD("POST", "/v1/datasets", "{\"kind\":\"circles\",\"name\":\"\"}", 422, "name");
    BAD("POST", "/v1/datasets", "{\"kind\":\"npy\",\"path\":\"a.npy\"}", 422, "path"); /* no --import-dir */
    BAD("POST", "/v1/datasets", "{\"kind\":\"idx\"}", 400, "images");
    BAD("POST", "/v1/datasets", "{\"kind\":\"parquet\"}", 422, "kind");
}

static void test_dataset_defaults(void)
{
    resp_t r = http("POST", "/v1/datasets", "{\"kind\":\"circles\"}");
    char loc[128];
    snprintf(loc, sizeof loc, "%s", r.location);
    json_t *d = expect_json(r, 201);
    long long id = jint(d, "id");
    CHECK(id > 0 && !strcmp(loc, P("/v1/datasets/%lld", id)), "Location '%s' for id %lld", loc, id);
    json_t *p = json_object_get(d, "params");
    CHECK(jint(p, "n_circles") == 1600 && jint(p, "dim") == 200 && jint(p, "seed") == 1, "circles defaults");
    CHECK_NEAR(json_number_value(json_object_get(p, "p_active")), 0.002, 1e-12, "p_active default");
    CHECK(json_array_size(json_object_get(p, "radius")) == 2, "radius default");
    CHECK(jint(d, "dim") == 200 && json_is_null(json_object_get(d, "n_rows")), "dim 200, n_rows null");
    CHECK(json_is_false(json_object_get(d, "has_labels")), "no labels");
    CHECK(!strcmp(jstr(d, "kind"), "circles") && json_is_string(json_object_get(d, "created_at")), "kind, created_at");
    json_decref(d);
    d = expect_json(http("GET", P("/v1/datasets/%lld", id), NULL), 200);
    CHECK(jint(d, "id") == id, "GET dataset");
    json_decref(d);
    resp_t del = http("DELETE", P("/v1/datasets/%lld", id), NULL);
    CHECK(del.status == 204, "DELETE unused dataset -> %ld", del.status);
    resp_free(&del);
    BAD("GET", P("/v1/datasets/%lld", id), NULL, 404, NULL);
    BAD("DELETE", P("/v1/datasets/%lld", id), NULL, 404, NULL);
}

static void test_dataset_list(void)
{
    long long other = post_id("/v1/datasets", "{\"kind\":\"circles\",\"name\":\"second\",\"params\":{\"dim\":8}}", 201);
    json_t *l = expect_json(http("GET", "/v1/datasets?limit=1", NULL), 200);
    CHECK(json_array_size(json_object_get(l, "items")) == 1, "limit=1 gives one item");
    json_t *next = json_object_get(l, "next");
    CHECK(json_is_integer(next), "next set when more remain");
    long long after = json_integer_value(next);
    json_decref(l);
    l = expect_json(http("GET", P("/v1/datasets?limit=1&after=%lld", after), NULL), 200);
    json_t *item = json_array_get(json_object_get(l, "items"), 0);
    CHECK(item && jint(item, "id") > after, "after pages forward");
    json_decref(l);
    l = expect_json(http("GET", "/v1/datasets", NULL), 200);
    CHECK(json_array_size(json_object_get(l, "items")) >= 2 && json_is_null(json_object_get(l, "next")),
          "full list, next null");
    json_decref(l);
    resp_t r = http("DELETE", P("/v1/datasets/%lld", other), NULL);
    CHECK(r.status == 204, "delete second dataset -> %ld", r.status);
    resp_free(&r);
}

static void save_body(const char *dir, const char *name, const resp_t *r)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f) { fwrite(r->body, 1, r->len, f); fclose(f); }
}

/* GET path -> 200 octet-stream saved as dir/name. */
static void fetch_npy(const char *dir, const char *path, const char *name)
{
    resp_t r = http("GET", path, NULL);
    CHECK(r.status == 200 && !strcmp(r.ctype, "application/octet-stream") && r.len > 10 &&
          !memcmp(r.body, "\x93NUMPY", 6),
          "GET %s -> %ld %s (%zu bytes)", path, r.status, r.ctype, r.len);
    save_body(dir, name, &r);
    resp_free(&r);
}

static void test_dataset_arrays(long long ds, const char *dir)
{
    fetch_npy(dir, P("/v1/datasets/%lld/rows.npy?offset=0&limit=5", ds), "rows5.npy");
    fetch_npy(dir, P("/v1/datasets/%lld/rows.npy?offset=2&limit=3", ds), "rows3.npy");
    fetch_npy(dir, P("/v1/datasets/%lld/planes.npy", ds), "planes.npy");
    BAD("GET", P("/v1/datasets/%lld/rows.npy?limit=0", ds), NULL, 400, "limit");
    BAD("GET", P("/v1/datasets/%lld/rows.npy?limit=100001", ds), NULL, 400, "limit");
    BAD("GET", P("/v1/datasets/%lld/rows.npy?offset=-3", ds), NULL, 400, "offset");
    BAD("GET", P("/v1/datasets/%lld/rows.npy?offset=x", ds), NULL, 400, "offset");
    BAD("GET", "/v1/datasets/999999/rows.npy", NULL, 404, NULL);
    resp_t r = http("GET", P("/v1/datasets/%lld/labels", ds), NULL);
    CHECK(strstr(r.body, "no labels") != NULL, "labels problem says so: %.200s", r.body);
    expect_problem("labels of circles", r, 404, NULL);
}

/* ---- jobs: validation ---- */

static void test_job_validation(long long ds)
{
    char b[1024];
#define JOB(sae, train) (snprintf(b, sizeof b, "{\"type\":\"train\",\"dataset\":%lld,\"sae\":%s%s%s}", ds, sae, \
                                  *(train) ? ",\"train\":" : "", train), b)
    BAD("POST", "/v1/jobs", "{\"type\":\"train\",", 400, NULL);
    BAD("POST", "/v1/jobs", "\"train\"", 400, NULL);
    BAD("POST", "/v1/jobs", "{\"dataset\":1}", 400, "type");
    BAD("POST", "/v1/jobs", "{\"type\":\"analyze\",\"sae\":1,\"dataset\":1}", 422, "sae"); /* no SAE yet */
    BAD("POST", "/v1/jobs", "{\"type\":\"dance\"}", 422, "type");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64}", "{\"lr_warmup_step\":10}"), 400,
        "train.lr_warmup_step");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64,\"groupsize\":2}", ""), 400, "sae.groupsize");
    snprintf(b, sizeof b, "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"n_latents\":64},"
             "\"priority\":1}", ds);
    BAD("POST", "/v1/jobs", b, 400, "priority");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":\"64\"}", ""), 400, "sae.n_latents");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64.5}", ""), 400, "sae.n_latents");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64}", "{\"lr\":\"fast\"}"), 400, "train.lr");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64}", "[]"), 400, "train");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\"}", ""), 400, "sae.n_latents");
    BAD("POST", "/v1/jobs", JOB("{\"n_latents\":64}", ""), 400, "sae.arch");
    snprintf(b, sizeof b, "{\"type\":\"train\",\"dataset\":%lld}", ds);
    BAD("POST", "/v1/jobs", b, 400, "sae");
    snprintf(b, sizeof b, "{\"type\":\"train\",\"dataset\":\"%lld\",\"sae\":{\"arch\":\"relu\",\"n_latents\":64}}", ds);
    BAD("POST", "/v1/jobs", b, 400, "dataset");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":63,\"group_size\":2}", ""), 422, "sae.n_latents");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64,\"group_size\":0}", ""), 422, "sae.group_size");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64,\"sparsity_coef\":-1}", ""), 422,
        "sae.sparsity_coef");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"swish\",\"n_latents\":64}", ""), 422, "sae.arch");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64}", "{\"lr_decay\":\"exp\"}"), 422,
        "train.lr_decay");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64}", "{\"steps\":0}"), 422, "train.steps");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":64}", "{\"steps\":99999999999}"), 422,
        "train.steps");
    BAD("POST", "/v1/jobs", JOB("{\"arch\":\"relu\",\"n_latents\":100000000}", ""), 422, "sae.n_latents");
    BAD("POST", "/v1/jobs", "{\"type\":\"train\",\"dataset\":999999,\"sae\":{\"arch\":\"relu\",\"n_latents\":64}}",
        422, "dataset");
#undef JOB
}

/* The stored spec has every default filled in. */
static void check_normalized_spec(json_t *job)
{
    json_t *spec = json_object_get(job, "spec"), *sae = json_object_get(spec, "sae");
    json_t *tr = json_object_get(spec, "train");
    CHECK(!strcmp(jstr(spec, "type"), "train") && json_is_integer(json_object_get(spec, "dataset")),
          "spec type/dataset");
    CHECK(jint(sae, "group_size") == 2 && json_is_null(json_object_get(sae, "k")) &&
          json_is_number(json_object_get(sae, "orth_coef")) && json_is_number(json_object_get(sae, "threshold")),
          "sae defaults filled");
    CHECK_NEAR(json_number_value(json_object_get(tr, "adam_beta1")), 0.9, 1e-12, "adam_beta1 default (exact decimal)");
    CHECK_NEAR(json_number_value(json_object_get(tr, "adam_eps")), 1e-8, 1e-20, "adam_eps default");
    CHECK(jint(tr, "eval_rows") == 512 && jint(tr, "dead_window") == 1000 && !strcmp(jstr(tr, "lr_decay"), "linear") &&
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
    json_t *m = expect_json(http("GET", P("/v1/jobs/%lld/metrics", job), NULL), 200);
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
    m = expect_json(http("GET", P("/v1/jobs/%lld/metrics?since_step=%lld", job, last), NULL), 200);
    CHECK(json_array_size(json_object_get(m, "step")) == 0 && json_array_size(json_object_get(m, "fve")) == 0,
          "since_step=last gives empty arrays");
    json_decref(m);
    BAD("GET", P("/v1/jobs/%lld/metrics?since_step=x", job), NULL, 400, "since_step");
}

static void check_sae(long long sae, long long job, long long ds, const char *dir)
{
    json_t *s = expect_json(http("GET", P("/v1/saes/%lld", sae), NULL), 200);
    CHECK(jint(s, "job") == job && jint(s, "dataset") == ds, "SAE names its job and dataset");
    CHECK(jint(s, "n_latents") == 64 && jint(s, "dim") == 16 && jint(s, "group_size") == 2, "SAE shape");
    CHECK(json_is_object(json_object_get(s, "config")), "SAE config");
    CHECK(json_is_number(json_object_get(json_object_get(s, "metrics"), "fve")), "SAE metrics.fve");
    json_decref(s);
    json_t *l = expect_json(http("GET", "/v1/saes", NULL), 200);
    CHECK(json_array_size(json_object_get(l, "items")) >= 1, "SAE list");
    json_decref(l);
    fetch_npy(dir, P("/v1/saes/%lld/decoder.npy", sae), "decoder.npy");
    fetch_npy(dir, P("/v1/saes/%lld/encoder.npy", sae), "encoder.npy");
    fetch_npy(dir, P("/v1/saes/%lld/b_enc.npy", sae), "b_enc.npy");
    fetch_npy(dir, P("/v1/saes/%lld/b_dec.npy", sae), "b_dec.npy");
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
    json_t *j = get_job(job);
    CHECK(j && (!strcmp(jstr(j, "state"), "queued") || !strcmp(jstr(j, "state"), "running") ||
                !strcmp(jstr(j, "state"), "succeeded")), "new job state '%s'", j ? jstr(j, "state") : "?");
    if (j) check_normalized_spec(j);
    json_decref(j);

    resp_t ev = http_ex("GET", P("/v1/jobs/%lld/events", job), NULL, 0, NULL, 120);
    sse_t s;
    sse_parse(ev.body, &s);
    CHECK(ev.status == 200 && !strncmp(ev.ctype, "text/event-stream", 17), "events -> %ld %s", ev.status, ev.ctype);
    CHECK(s.progress >= 1 && s.states >= 1, "SSE: %d progress, %d state events", s.progress, s.states);
    CHECK(!strcmp(s.last_event, "state") && strstr(s.last_data, "\"succeeded\""), "SSE ends with the terminal state "
          "(%s %.200s)", s.last_event, s.last_data);
    resp_free(&ev);

    j = wait_job(job, "succeeded failed cancelled", 120);
    CHECK(j && !strcmp(jstr(j, "state"), "succeeded"), "job succeeded (%s: %s)", j ? jstr(j, "state") : "timeout",
          j ? jstr(j, "error") : "");
    json_t *prog = json_object_get(j, "progress");
    CHECK(jint(prog, "step") == 400 && jint(prog, "total_steps") == 400, "progress at the end");
    CHECK_NEAR(json_number_value(json_object_get(prog, "fraction")), 1.0, 1e-9, "fraction 1");
    CHECK(json_is_number(json_object_get(json_object_get(j, "latest"), "fve")), "latest has fve");
    CHECK(json_is_string(json_object_get(j, "started_at")) && json_is_string(json_object_get(j, "finished_at")),
          "start and finish times");
    CHECK(json_is_null(json_object_get(j, "error")), "no error");
    *sae_out = jint(json_object_get(j, "result"), "sae");
    CHECK(*sae_out > 0, "result.sae");
    json_decref(j);

    /* resuming after the last step repeats no progress */
    ev = http_ex("GET", P("/v1/jobs/%lld/events", job), NULL, 0, "Last-Event-ID: 400", 30);
    sse_parse(ev.body, &s);
    CHECK(s.progress == 0 && s.states == 1, "resume: %d progress, %d state", s.progress, s.states);
    resp_free(&ev);

    check_metrics(job, sps);
    check_sae(*sae_out, job, ds, dir);
    return job;
}

/* ---- cancel and delete ---- */

static void test_cancel_delete(long long ds, long long done_job, long long sae)
{
    long long run = submit_train(ds, 2000000, 64, 0), queued = submit_train(ds, 2000000, 64, 0);
    json_t *j = wait_job(run, "running", 60);
    CHECK(j != NULL, "long job starts running");
    json_decref(j);
    j = get_job(queued);
    CHECK(j && !strcmp(jstr(j, "state"), "queued"), "second job waits (one worker)");
    json_decref(j);
    BAD("DELETE", P("/v1/jobs/%lld", run), NULL, 409, NULL);
    BAD("DELETE", P("/v1/jobs/%lld", queued), NULL, 409, NULL);
    BAD("DELETE", P("/v1/datasets/%lld", ds), NULL, 409, NULL);

    json_t *c = expect_json(http("POST", P("/v1/jobs/%lld/cancel", queued), NULL), 202);
    CHECK(!strcmp(jstr(c, "state"), "cancelled"), "a queued job is cancelled at once (%s)", jstr(c, "state"));
    json_decref(c);
    c = expect_json(http("POST", P("/v1/jobs/%lld/cancel", run), NULL), 202);
    json_decref(c);
    j = wait_job(run, "cancelled failed succeeded", 15);
    CHECK(j && !strcmp(jstr(j, "state"), "cancelled"), "running job cancelled (%s)", j ? jstr(j, "state") : "timeout");
    json_decref(j);
    BAD("POST", P("/v1/jobs/%lld/cancel", run), NULL, 409, NULL);

    json_t *l = expect_json(http("GET", "/v1/jobs?state=cancelled", NULL), 200);
    CHECK(json_array_size(json_object_get(l, "items")) == 2, "?state=cancelled lists both");
    json_decref(l);
    l = expect_json(http("GET", "/v1/jobs?limit=1", NULL), 200);
    CHECK(json_array_size(json_object_get(l, "items")) == 1 && json_is_integer(json_object_get(l, "next")),
          "jobs page");
    json_decref(l);

    long long gone[] = { run, queued, done_job };
    for (int i = 0; i < 3; i++) {
        resp_t r = http("DELETE", P("/v1/jobs/%lld", gone[i]), NULL);
        CHECK(r.status == 204, "DELETE terminal job %lld -> %ld", gone[i], r.status);
        resp_free(&r);
        BAD("GET", P("/v1/jobs/%lld", gone[i]), NULL, 404, NULL);
    }
    resp_t r = http("GET", P("/v1/saes/%lld/decoder.npy", sae), NULL);
    CHECK(r.status == 200, "the SAE outlives its deleted job (%ld)", r.status);
    resp_free(&r);
}

/* ---- crash recovery and SIGTERM ---- */

static int wait_exit(pid_t pid, double timeout, int *status)
{
    for (double t0 = now_s(); now_s() - t0 < timeout; sleep_ms(50))
        if (waitpid(pid, status, WNOHANG) == pid) return 1;
    return 0;
}

static int restart(daemon_t *d)
{
    d->port = g_port = free_port();
    daemon_spawn(d);
    return wait_health(30);
}

static void test_kill9(daemon_t *d, long long ds, int steps)
{
    long long job = submit_train(ds, steps, 64, steps / 10);
    long long past = wait_step(job, steps / 10 * 3 / 2, 120); /* a checkpoint exists */
    CHECK(past > 0, "job runs past its first checkpoint before the kill");
    kill(d->pid, SIGKILL);
    int st;
    CHECK(wait_exit(d->pid, 10, &st), "daemon died");
    CHECK(restart(d), "daemon restarts on the same data dir");
    json_t *j = get_job(job);
    printf("kill -9 at step %lld of %d; after restart: %s at step %lld\n", past, steps, j ? jstr(j, "state") : "?",
           j ? jint(json_object_get(j, "progress"), "step") : -1);
    CHECK(j && (!strcmp(jstr(j, "state"), "queued") || !strcmp(jstr(j, "state"), "running") ||
                !strcmp(jstr(j, "state"), "succeeded")), "job came back (%s)", j ? jstr(j, "state") : "missing");
    json_decref(j);
    j = wait_job(job, "succeeded failed cancelled", 180);
    CHECK(j && !strcmp(jstr(j, "state"), "succeeded"), "job finishes after the crash (%s %s)",
          j ? jstr(j, "state") : "timeout", j ? jstr(j, "error") : "");
    json_decref(j);
    json_t *m = expect_json(http("GET", P("/v1/jobs/%lld/metrics", job), NULL), 200);
    json_t *steps_seen = json_object_get(m, "step"); /* (n) */
    size_t bad = 0, n = json_array_size(steps_seen);
    for (size_t i = 1; i < n; i++)
        bad += json_integer_value(json_array_get(steps_seen, i)) <=
               json_integer_value(json_array_get(steps_seen, i - 1));
    CHECK(n > 0 && bad == 0, "metric steps strictly increase across the crash (%zu of %zu out of order)", bad, n);
    json_decref(m);
}

static void test_sigterm(daemon_t *d, long long ds)
{
    long long job = submit_train(ds, 2000000, 64, 1000);
    long long before = wait_step(job, 500, 120);
    CHECK(before > 0, "job running before SIGTERM");
    kill(d->pid, SIGTERM);
    int st = -1;
    CHECK(wait_exit(d->pid, 60, &st), "daemon exits on SIGTERM");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status 0 (status %d)", st);
    CHECK(restart(d), "daemon restarts after SIGTERM");
    json_t *j = get_job(job);
    CHECK(j && (!strcmp(jstr(j, "state"), "queued") || !strcmp(jstr(j, "state"), "running")),
          "SIGTERM requeued the job (%s)", j ? jstr(j, "state") : "missing");
    CHECK(j && jint(json_object_get(j, "progress"), "step") >= before, "the requeued job keeps its progress "
          "(%lld, was %lld)", j ? jint(json_object_get(j, "progress"), "step") : -1, before);
    json_decref(j);
    resp_t r = http("POST", P("/v1/jobs/%lld/cancel", job), NULL);
    resp_free(&r);
    j = wait_job(job, "cancelled", 15);
    CHECK(j != NULL, "requeued job cancels");
    json_decref(j);
}

/* ---- main ---- */

static int start(daemon_t *d)
{
    const char *build = getenv("BUILD");
    snprintf(d->bin, sizeof d->bin, "%s/saed", build && *build ? build : "build");
    snprintf(d->dir, sizeof d->dir, "/tmp/saed-test-api-XXXXXX");
    if (!mkdtemp(d->dir) || access(d->bin, X_OK)) {
        fprintf(stderr, "test_api: cannot run %s (build it with make %s)\n", d->bin, d->bin);
        return 0;
    }
    return restart(d);
}

static void show_log(const daemon_t *d)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "tail -n 30 %s/saed.log >&2", d->dir);
    if (system(cmd)) {}
}

int main(void)
{
    daemon_t d = { 0 };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int up = start(&d);
    CHECK(up, "daemon answers /v1/health");
    if (!up) {
        show_log(&d);
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
    test_kill9(&d, ds, steps < 2000 ? 2000 : steps > 2000000 ? 2000000 : steps);
    test_sigterm(&d, ds);

    kill(d.pid, SIGTERM);
    int st = -1;
    CHECK(wait_exit(d.pid, 60, &st) && WIFEXITED(st) && WEXITSTATUS(st) == 0, "final SIGTERM exits 0");
    if (check_failed) {
        show_log(&d);
        fprintf(stderr, "test_api: data left in %s\n", d.dir);
    } else {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", d.dir);
        if (system(cmd)) {}
    }
    curl_global_cleanup();
    return check_report();
}
