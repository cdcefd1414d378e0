/* test_api_tokens — bearer tokens against a real saed (API.md *Access*):
 * with --token-file, every request but GET /v1/health and the dashboard's
 * files needs "Authorization: Bearer TOKEN" (or ?access_token= on a GET, for
 * EventSource): none or a wrong one is a 401 problem with WWW-Authenticate, a
 * read token on a write a 403 that changes nothing, a write token writes.
 * Without a token file the daemon refuses to listen beyond loopback, and a
 * token file it cannot use stops it from starting, with a message. */
#include "check.h"
#include "apitest.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WRITE_TOKEN "w-4f1c9e0b7d2a"
#define READ_TOKEN "r-88b3a6c1e5f0"
#define AUTH(t) "Authorization: Bearer " t

static at_daemon g_d;
static char g_tokens[256];

static long status_of(at_resp r)
{
    long s = r.status;
    at_resp_free(&r);
    return s;
}

static long long dataset_count(void)
{
    json_t *j = at_expect_json(at_http_ex("GET", "/v1/datasets?limit=1000", NULL, 0, AUTH(READ_TOKEN), 30), 200);
    long long n = (long long)json_array_size(json_object_get(j, "items"));
    json_decref(j);
    return n;
}

static void test_unauthorized(void)
{
    at_resp r = at_http("GET", "/v1/jobs", NULL);
    json_t *p = at_resp_json(&r);
    CHECK(r.status == 401 && !strncmp(r.ctype, "application/problem+json", 24) &&
          strstr(r.body, "Authorization: Bearer"), "no token: 401 problem+json saying what to send: %ld %s",
          r.status, r.body);
    json_decref(p);
    at_resp_free(&r);
    at_expect_problem("a wrong token", at_http_ex("GET", "/v1/datasets", NULL, 0, AUTH("nope"), 30), 401, NULL);
    at_expect_problem("a token one byte short", at_http_ex("GET", "/v1/datasets", NULL, 0,
                                                           "Authorization: Bearer w-4f1c9e0b7d2", 30), 401, NULL);
    at_expect_problem("another scheme", at_http_ex("GET", "/v1/datasets", NULL, 0, "Authorization: Basic eDp5", 30),
                      401, NULL);
    at_expect_problem("/metrics needs one too", at_http("GET", "/metrics", NULL), 401, NULL);
    at_expect_problem("/v1/openapi.json needs one too", at_http("GET", "/v1/openapi.json", NULL), 401, NULL);
    CHECK(status_of(at_http("GET", "/v1/health", NULL)) == 200, "GET /v1/health needs no token");
    CHECK(status_of(at_http("GET", "/", NULL)) == 200, "the dashboard's page needs no token");
    CHECK(status_of(at_http("GET", "/js/app.js", NULL)) == 200, "nor its scripts");
}

static void test_read_write(void)
{
    const char *body = "{\"kind\":\"circles\",\"name\":\"t\",\"params\":{\"n_circles\":2,\"dim\":4}}";
    long long before = dataset_count();
    CHECK(status_of(at_http_ex("GET", "/v1/jobs", NULL, 0, AUTH(READ_TOKEN), 30)) == 200, "a read token reads");
    CHECK(status_of(at_http_ex("GET", "/v1/jobs", NULL, 0, "authorization: bearer " READ_TOKEN, 30)) == 200,
          "header and scheme names are case-insensitive");
    CHECK(status_of(at_http("GET", "/v1/jobs?access_token=" READ_TOKEN, NULL)) == 200, "?access_token= on a GET");
    at_expect_problem("a read token writes", at_http_ex("POST", "/v1/datasets", body, strlen(body), AUTH(READ_TOKEN),
                                                        30), 403, NULL);
    at_expect_problem("?access_token= on a write", at_http("POST", "/v1/datasets?access_token=" WRITE_TOKEN, body),
                      401, NULL);
    at_expect_problem("no token, a write", at_http("POST", "/v1/datasets", body), 401, NULL);
    CHECK(dataset_count() == before, "no refused write created a dataset");
    at_resp r = at_http_ex("POST", "/v1/datasets", body, strlen(body), AUTH(WRITE_TOKEN), 30);
    CHECK(r.status == 201, "a write token writes: %ld %s", r.status, r.body);
    at_resp_free(&r);
    CHECK(dataset_count() == before + 1, "and the dataset is there");
}

/* Runs saed with args; 1 when it exits non-zero within 10 s with `want` in its output. */
static int refuses(const char *args, const char *want)
{
    char cmd[1024], out[4096] = "";
    snprintf(cmd, sizeof cmd, "timeout 10 %s --data-dir %s/refused %s 2>&1", g_d.bin, g_d.dir, args);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    int ok = st != 0 && st != -1 && strstr(out, want) != NULL;
    if (!ok) fprintf(stderr, "saed %s: status %d, output: %s\n", args, st, out);
    return ok;
}

static void test_refusals(void)
{
    CHECK(refuses("--listen 0.0.0.0:0", "--token-file"), "no token file: a non-loopback address is refused");
    CHECK(refuses("--listen 127.0.0.1:0 --token-file /nonexistent/tokens", "/nonexistent/tokens"),
          "a token file that cannot be read stops the start");
    char empty[300], bad[300];
    snprintf(empty, sizeof empty, "%s/empty-tokens", g_d.dir);
    snprintf(bad, sizeof bad, "%s/bad-tokens", g_d.dir);
    FILE *f = fopen(empty, "w");
    if (f) fputs("# nothing\n\n", f), fclose(f);
    f = fopen(bad, "w");
    if (f) fputs("read:has space\n", f), fclose(f);
    CHECK(refuses(at_fmt("--listen 127.0.0.1:0 --token-file %s", empty), "holds no token"), "an empty token file");
    CHECK(refuses(at_fmt("--listen 127.0.0.1:0 --token-file %s", bad), "line 1"), "a malformed token, by line");
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char tdir[] = "/tmp/saed-tokens-XXXXXX";
    CHECK(mkdtemp(tdir) != NULL, "tmp dir");
    snprintf(g_tokens, sizeof g_tokens, "%s/tokens", tdir);
    FILE *f = fopen(g_tokens, "w");
    CHECK(f != NULL, "token file");
    if (f) fputs("# saed tokens\n" WRITE_TOKEN "\n\n  read:" READ_TOKEN "  \n", f), fclose(f);
    const char *const args[] = { "--token-file", g_tokens, NULL };
    int up = at_daemon_start(&g_d, "tokens", args);
    CHECK(up, "daemon answers /v1/health");
    if (up) {
        test_unauthorized();
        test_read_write();
        test_refusals();
        CHECK(at_daemon_stop(&g_d), "SIGTERM exits 0");
    }
    if (check_failed) at_daemon_show_log(&g_d);
    else at_daemon_cleanup(&g_d);
    unlink(g_tokens);
    rmdir(tdir);
    curl_global_cleanup();
    return check_report();
}
