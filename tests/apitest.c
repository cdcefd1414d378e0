/* apitest — the non-asserting half of the HTTP test helpers (apitest.h):
 * daemon processes, libcurl requests (whole and streamed bodies), JSON
 * accessors, waits, and running numpy checks through /usr/bin/python3.
 * The target port is the one of the last daemon started (tests run one
 * daemon at a time). */
#include "apitest.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AT_MAX_ARGS 32

static int at_port;                                /* target of at_http* */
static const char *at_extra[AT_MAX_ARGS];          /* extra daemon flags of the last start */

/* ---- time ---- */

double at_now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void at_sleep_ms(int ms)
{
    struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&t, NULL);
}

/* ---- HTTP ---- */

static size_t at_on_body(char *p, size_t sz, size_t n, void *cls)
{
    at_resp *r = cls;
    size_t add = sz * n;
    char *b = realloc(r->body, r->len + add + 1);
    if (!b) return 0;
    memcpy(b + r->len, p, add);
    r->body = b;
    r->len += add;
    b[r->len] = '\0';
    return add;
}

static void at_header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
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

static size_t at_on_header(char *p, size_t sz, size_t n, void *cls)
{
    at_resp *r = cls;
    at_header_value(p, sz * n, "Content-Type", r->ctype, sizeof r->ctype);
    at_header_value(p, sz * n, "Allow", r->allow, sizeof r->allow);
    at_header_value(p, sz * n, "Location", r->location, sizeof r->location);
    return sz * n;
}

static CURL *at_curl(const char *method, const char *path, at_resp *r, long timeout_s)
{
    char url[1200];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", at_port, path);
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, at_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, at_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    return c;
}

static void at_perform(CURL *c, struct curl_slist *h, at_resp *r)
{
    if (h) curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    r->curl_ok = curl_easy_perform(c) == CURLE_OK;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (!r->body) r->body = calloc(1, 1);
}

at_resp at_http_ex(const char *method, const char *path, const char *body, size_t body_len, const char *header,
                   long timeout_s)
{
    at_resp r = { 0 };
    CURL *c = at_curl(method, path, &r, timeout_s);
    if (!c) { r.body = calloc(1, 1); return r; }
    struct curl_slist *h = NULL;
    if (body) {
        if (!header || strncasecmp(header, "Content-Type:", 13))
            h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    if (header) h = curl_slist_append(h, header);
    at_perform(c, h, &r);
    return r;
}

at_resp at_http(const char *method, const char *path, const char *body)
{
    return at_http_ex(method, path, body, body ? strlen(body) : 0, NULL, 30);
}

typedef struct { at_reader read; void *ctx; } at_stream_ctx;

static size_t at_on_read(char *buf, size_t sz, size_t n, void *cls)
{
    at_stream_ctx *s = cls;
    return s->read(s->ctx, buf, sz * n);
}

at_resp at_http_stream(const char *method, const char *path, const char *content_type, at_reader read, void *ctx,
                       long long size, long timeout_s)
{
    at_resp r = { 0 };
    CURL *c = at_curl(method, path, &r, timeout_s);
    if (!c) { r.body = calloc(1, 1); return r; }
    at_stream_ctx s = { read, ctx };
    char ct[200];
    snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
    struct curl_slist *h = curl_slist_append(NULL, ct);
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method); /* UPLOAD means PUT otherwise */
    curl_easy_setopt(c, CURLOPT_READFUNCTION, at_on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &s);
    if (size >= 0) curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
    else h = curl_slist_append(h, "Transfer-Encoding: chunked");
    at_perform(c, h, &r);
    return r;
}

void at_resp_free(at_resp *r)
{
    free(r->body);
    r->body = NULL;
}

json_t *at_resp_json(const at_resp *r)
{
    return r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
}

long long at_jint(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

const char *at_jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

const char *at_fmt(const char *fmt, ...)
{
    static char buf[8][1024];
    static int i;
    char *b = buf[i++ & 7];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof buf[0], fmt, ap);
    va_end(ap);
    return b;
}

/* ---- the daemon ---- */

static int at_free_port(void)
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

static void at_spawn(at_daemon *d)
{
    char listen[64], log[300];
    const char *argv[AT_MAX_ARGS + 12];
    int n = 0;
    snprintf(listen, sizeof listen, "127.0.0.1:%d", d->port);
    snprintf(log, sizeof log, "%s/saed.log", d->dir);
    const char *base[] = { d->bin, "--listen", listen, "--data-dir", d->dir, "--workers", "1", "--log-level",
                           "warn" };
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) argv[n++] = base[i];
    for (int i = 0; i < AT_MAX_ARGS && at_extra[i]; i++) argv[n++] = at_extra[i];
    argv[n] = NULL;
    d->pid = fork();
    if (d->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); close(fd); }
        execv(d->bin, (char *const *)argv);
        _exit(127);
    }
}

static int at_wait_health(double timeout)
{
    for (double t0 = at_now_s(); at_now_s() - t0 < timeout; at_sleep_ms(100)) {
        at_resp r = at_http_ex("GET", "/v1/health", NULL, 0, NULL, 2);
        long st = r.status;
        at_resp_free(&r);
        if (st == 200) return 1;
    }
    return 0;
}

int at_daemon_restart(at_daemon *d)
{
    d->port = at_port = at_free_port();
    at_spawn(d);
    return at_wait_health(30);
}

int at_daemon_start(at_daemon *d, const char *tag, const char *const *extra_args)
{
    const char *build = getenv("BUILD");
    memset(at_extra, 0, sizeof at_extra);
    for (int i = 0; extra_args && extra_args[i] && i < AT_MAX_ARGS - 1; i++) at_extra[i] = extra_args[i];
    snprintf(d->bin, sizeof d->bin, "%s/saed", build && *build ? build : "build");
    snprintf(d->dir, sizeof d->dir, "/tmp/saed-%s-XXXXXX", tag);
    d->pid = 0;
    if (!mkdtemp(d->dir) || access(d->bin, X_OK)) {
        fprintf(stderr, "apitest: cannot run %s (build it with make %s)\n", d->bin, d->bin);
        return 0;
    }
    return at_daemon_restart(d);
}

int at_daemon_stop(at_daemon *d)
{
    if (d->pid <= 0) return 0;
    int st = -1, done = 0;
    kill(d->pid, SIGTERM);
    for (double t0 = at_now_s(); !done && at_now_s() - t0 < 60; at_sleep_ms(50))
        done = waitpid(d->pid, &st, WNOHANG) == d->pid;
    if (!done) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &st, 0);
    }
    d->pid = 0;
    return done && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

void at_daemon_show_log(const at_daemon *d)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "tail -n 30 '%s/saed.log' >&2", d->dir);
    if (system(cmd)) {}
}

void at_daemon_cleanup(const at_daemon *d)
{
    char cmd[600];
    if (strncmp(d->dir, "/tmp/saed-", 10)) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    if (system(cmd)) {}
}

/* ---- waits and shortcuts ---- */

json_t *at_get_job(long long id)
{
    at_resp r = at_http("GET", at_fmt("/v1/jobs/%lld", id), NULL);
    json_t *j = r.status == 200 ? at_resp_json(&r) : NULL;
    at_resp_free(&r);
    return j;
}

json_t *at_wait_job(long long id, const char *states, double timeout_s)
{
    for (double t0 = at_now_s(); at_now_s() - t0 < timeout_s; at_sleep_ms(100)) {
        json_t *j = at_get_job(id);
        if (j && *at_jstr(j, "state") && strstr(states, at_jstr(j, "state"))) return j;
        json_decref(j);
    }
    return NULL;
}

long long at_post_id(const char *path, const char *body, long want)
{
    at_resp r = at_http("POST", path, body);
    json_t *j = at_resp_json(&r);
    long long id = r.status == want && j ? at_jint(j, "id") : 0;
    if (r.status != want) fprintf(stderr, "POST %s: status %ld, want %ld: %.300s\n", path, r.status, want,
                                  r.body ? r.body : "");
    json_decref(j);
    at_resp_free(&r);
    return id;
}

int at_python(const char *dir, const char *script)
{
    char path[400];
    snprintf(path, sizeof path, "%s/check_XXXXXX.py", dir);
    int fd = mkstemps(path, 3);
    if (fd < 0) return -1;
    size_t n = strlen(script);
    int ok = write(fd, script, n) == (ssize_t)n;
    close(fd);
    if (!ok) return -1;
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "cd '%s' && /usr/bin/python3 '%s' 1>&2", dir, path);
    int st = system(cmd);
    unlink(path);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int at_save_body(const char *dir, const char *name, const at_resp *r)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(r->body, 1, r->len, f);
    return fclose(f) == 0 && w == r->len ? 0 : -1;
}
