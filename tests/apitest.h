/* apitest — shared helpers for the suites that drive a real saed over HTTP
 * (tests/test_api_*.c): start a daemon on a free port with a fresh data
 * directory (extra flags allowed), plain and streamed HTTP requests through
 * libcurl, JSON accessors, job waits, and numpy checks via /usr/bin/python3.
 *
 * The functions in apitest.c never assert. The asserting helpers
 * (at_expect_problem, at_expect_json, AT_BAD) are static inline below, so
 * they count in the including suite's check.h counters; they exist only
 * when check.h was included first. Link with apitest.o and -lcurl. */
#ifndef SAED_APITEST_H
#define SAED_APITEST_H
#include <curl/curl.h>
#include <jansson.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

/* ---- the daemon ---- */

typedef struct {
    char bin[512];  /* $BUILD/saed (BUILD from the environment, default "build") */
    char dir[256];  /* data directory (mkdtemp under /tmp) */
    int port;
    pid_t pid;
} at_daemon;

/* Makes a fresh data dir named /tmp/saed-<tag>-XXXXXX, picks a free port,
 * spawns saed with --listen, --data-dir, --workers 1, --log-level warn and
 * extra_args (NULL-terminated, may be NULL), waits up to 30 s for
 * /v1/health and makes it the target of at_http*. 1 when it answers. */
int at_daemon_start(at_daemon *d, const char *tag, const char *const *extra_args);
/* Re-spawns on the same data dir (a new port) with the same extra args. */
int at_daemon_restart(at_daemon *d);
/* SIGTERM and wait (up to 60 s, then SIGKILL). 1 if it exited with status 0. */
int at_daemon_stop(at_daemon *d);
/* Prints the tail of the daemon's log to stderr. */
void at_daemon_show_log(const at_daemon *d);
/* rm -rf the data dir (call when every check passed). */
void at_daemon_cleanup(const at_daemon *d);

/* ---- HTTP ---- */

typedef struct {
    long status;
    char *body;       /* (len + 1) bytes, NUL-terminated, never NULL after a request */
    size_t len;
    char ctype[128], allow[128], location[128];
    int curl_ok;      /* the transfer completed */
} at_resp;

/* method path [body body_len] [one extra header line] with a timeout. A body
 * is sent as application/json unless header sets Content-Type. */
at_resp at_http_ex(const char *method, const char *path, const char *body, size_t body_len, const char *header,
                   long timeout_s);
/* The same with a NUL-terminated body (or NULL) and a 30 s timeout. */
at_resp at_http(const char *method, const char *path, const char *body);

/* A streamed request body: read() fills buf with up to cap bytes and returns
 * how many (0 at the end). size < 0 sends it chunked (no Content-Length). */
typedef size_t (*at_reader)(void *ctx, char *buf, size_t cap);
at_resp at_http_stream(const char *method, const char *path, const char *content_type, at_reader read, void *ctx,
                       long long size, long timeout_s);

void at_resp_free(at_resp *r);
json_t *at_resp_json(const at_resp *r);        /* NULL if not JSON */
long long at_jint(const json_t *o, const char *key);
const char *at_jstr(const json_t *o, const char *key); /* "" if absent */
/* printf into one of 8 rotating static buffers (for paths). */
const char *at_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- waits and shortcuts ---- */

double at_now_s(void);
void at_sleep_ms(int ms);
json_t *at_get_job(long long id);              /* NULL unless 200 */
/* Waits until the job's state is one of `states` (space-separated); the job or NULL on timeout. */
json_t *at_wait_job(long long id, const char *states, double timeout_s);
/* POSTs a JSON body; the reply's "id" if the status is `want`, else 0 (the
 * status and body are printed to stderr). */
long long at_post_id(const char *path, const char *body, long want);

/* Runs `script` with /usr/bin/python3 (numpy available) in directory dir;
 * its exit status (0 = ok), output to stderr. */
int at_python(const char *dir, const char *script);
/* Writes r's body to dir/name. 0 or -1. */
int at_save_body(const char *dir, const char *name, const at_resp *r);

/* ---- asserting helpers (count in the suite's check.h) ---- */

#ifdef SAED_CHECK_H

static inline int at_has_error_field(const json_t *p, const char *field)
{
    const json_t *e;
    size_t i;
    json_array_foreach(json_object_get(p, "errors"), i, e)
        if (!strcmp(at_jstr(e, "field"), field)) return 1;
    return 0;
}

/* A problem+json reply with this status and (if field) errors[].field; frees r. */
static inline void at_expect_problem_at(int line, const char *what, at_resp r, long status, const char *field)
{
    json_t *p = at_resp_json(&r);
    CHECK(r.status == status, "line %d %s: status %ld, want %ld; body %.300s", line, what, r.status, status,
          r.body);
    CHECK(!strncmp(r.ctype, "application/problem+json", 24), "line %d %s: content type '%s'", line, what,
          r.ctype);
    CHECK(p && json_is_string(json_object_get(p, "type")) && json_is_string(json_object_get(p, "title")) &&
          json_is_string(json_object_get(p, "detail")) && json_integer_value(json_object_get(p, "status")) == status,
          "line %d %s: not a problem object: %.300s", line, what, r.body);
    if (field)
        CHECK(at_has_error_field(p, field), "line %d %s: no errors[].field '%s' in %.400s", line, what, field,
              r.body);
    json_decref(p);
    at_resp_free(&r);
}
#define at_expect_problem(what, r, status, field) at_expect_problem_at(__LINE__, what, r, status, field)

/* A JSON reply with this status; returns it (an empty object if not JSON); frees r. */
static inline json_t *at_expect_json_at(int line, at_resp r, long status)
{
    json_t *j = at_resp_json(&r);
    CHECK(r.status == status, "line %d: status %ld, want %ld; body %.300s", line, r.status, status, r.body);
    CHECK(!strncmp(r.ctype, "application/json", 16), "line %d: content type '%s'", line, r.ctype);
    CHECK(j != NULL, "line %d: body is not JSON: %.200s", line, r.body);
    at_resp_free(&r);
    return j ? j : json_object();
}
#define at_expect_json(r, status) at_expect_json_at(__LINE__, r, status)

/* Sends and expects a problem. */
#define AT_BAD(method, path, body, status, field) do {                              \
    const char *at_bad_path_ = (path);                                              \
    at_expect_problem(at_bad_path_, at_http(method, at_bad_path_, body), status, field); \
} while (0)

#endif /* SAED_CHECK_H */
#endif
