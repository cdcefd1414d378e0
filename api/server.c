/* api/server.c — the libmicrohttpd daemon, routing, request lifecycle and the
 * pool of store handles.
 *
 * MHD runs a small pool of event-loop threads (API_DEFAULT_THREADS, or
 * api_config.threads), each serving many connections, so a burst of clients
 * is answered in order instead of time-sliced across a thread per
 * connection (p99 of GET /v1/jobs/{id} at 64 connections: 60 ms that way).
 * No handler may block for long: an SSE stream with nothing to send
 * suspends its connection and a ticker resumes it (events.c). A request arrives in three kinds of call: the
 * first (headers only) allocates the api_req and refuses a declared body
 * over max_body at once (413); the middle ones append the body, discarding
 * it once over the cap; the last routes it. Uploads (a .npy body, labels)
 * are the exception: datasets_upload_open() claims them on the first call and
 * their chunks stream to a file through r->sink instead (datasets_upload.c).
 * Routing is a table of (pattern, method, handler); a path that matches some
 * pattern but not the method is 405 with Allow, a path that matches none is
 * 404 (or a static dashboard file outside /v1). Store handles come from a mutex-guarded
 * stack, opened lazily, so each request uses one SQLite connection at a time
 * and idle ones are kept for the next. The api_req is freed in MHD's
 * completion callback.
 *
 * Limits, so that no client locks the others out (issue 15, item 1): MHD
 * holds at most max_connections, at most max_client_connections from one
 * address (MHD closes one more at once: it gives no chance to answer), and
 * closes a connection silent for idle_timeout_s (a half-sent request, a
 * slowloris). The last eighth of max_connections is kept for the probes
 * (GET /v1/health, /metrics): past 7/8 open, any other request is a 503
 * problem with Retry-After and Connection: close, counted through MHD's
 * connection notifications. Every cap hit is logged (api_cap_log, http.c:
 * at most once per cap every 10 s, with how often it was hit meanwhile). */
#include "internal.h"
#include "log.h"
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define API_POOL_CAP 16            /* idle store handles kept */
#define API_DEFAULT_THREADS 2      /* MHD's pool of event-loop threads */
#define API_DEFAULT_CONNECTIONS 256        /* MHD's connection limit */
#define API_DEFAULT_CLIENT_CONNECTIONS 96  /* MHD's per-address limit: one client cannot fill the rest */
#define API_DEFAULT_IDLE_S 30              /* MHD's idle timeout (event streams send a keep-alive well inside it) */
#define API_BUSY_RETRY_S "5"
#define API_DEFAULT_MAX_REPLY ((size_t)1 << 30) /* bytes all replies may hold in memory at once */
/* Each connection's memory pool: its read buffer (request line and headers) and what MHD parses out of
 * them, about 56 bytes per query argument. At 64 KiB, 1000 arguments (a 9 KB URL, with curl's headers) exhausted it and the
 * connection hung for the timeout with no reply; 256 KiB (64 MiB at the default connection limit) answers
 * URLs of a few thousand arguments. A URL of ~8000 arguments (63 KB) still exhausts it: MHD can then
 * neither parse nor answer (issue 15, item 6, open). */
#define API_CONNECTION_MEMORY (256 * 1024)
#define API_DEFAULT_MAX_BODY ((size_t)1 << 20)
#define API_DEFAULT_MAX_UPLOAD ((uint64_t)16384 << 20) /* 16 GiB */

typedef struct {
    const char *pattern; /* "/v1/jobs/{id}": {id} is a positive integer, {n} a non-negative one */
    const char *method;
    api_handler fn;
    const char *query;   /* the query parameters it reads, comma-separated; NULL none (any other is a 400) */
} api_route;

static const api_route api_routes[] = {
    { "/", "GET", web_index, NULL },
    { "/metrics", "GET", health_metrics, NULL },
    { "/v1/health", "GET", health_get, NULL },
    { "/v1/openapi.json", "GET", health_openapi, NULL },
    { "/v1/datasets", "GET", datasets_list, "limit,after" },
    { "/v1/datasets", "POST", datasets_create, "kind,name,file" },
    { "/v1/datasets/{id}", "GET", datasets_get, NULL },
    { "/v1/datasets/{id}", "DELETE", datasets_delete, NULL },
    { "/v1/datasets/{id}/rows.npy", "GET", datasets_rows, "offset,limit" },
    { "/v1/datasets/{id}/planes.npy", "GET", datasets_planes, NULL },
    { "/v1/datasets/{id}/labels", "GET", datasets_labels, "offset,limit" },
    { "/v1/datasets/{id}/labels", "PUT", datasets_upload_labels, NULL },
    { "/v1/jobs", "GET", jobs_list, "limit,after,state" },
    { "/v1/jobs", "POST", jobs_create, NULL },
    { "/v1/jobs/{id}", "GET", jobs_get, NULL },
    { "/v1/jobs/{id}", "DELETE", jobs_delete, NULL },
    { "/v1/jobs/{id}/cancel", "POST", jobs_cancel, NULL },
    { "/v1/jobs/{id}/metrics", "GET", jobs_metrics, "since_step" },
    { "/v1/jobs/{id}/events", "GET", events_job, "last_event_id" },
    { "/v1/jobs/{id}/positions.npy", "GET", jobs_groupspace_positions, "step" },
    { "/v1/jobs/{id}/groups", "GET", jobs_groupspace_groups, NULL },
    { "/v1/saes", "GET", saes_list, "limit,after" },
    { "/v1/saes", "POST", saes_import, "dataset" },
    { "/v1/saes/{id}", "GET", saes_get, NULL },
    { "/v1/saes/{id}/decoder.npy", "GET", saes_decoder, NULL },
    { "/v1/saes/{id}/encoder.npy", "GET", saes_encoder, NULL },
    { "/v1/saes/{id}/b_enc.npy", "GET", saes_b_enc, NULL },
    { "/v1/saes/{id}/b_dec.npy", "GET", saes_b_dec, NULL },
    { "/v1/saes/{id}/sae.safetensors", "GET", saes_safetensors, NULL },
    { "/v1/saes/{id}/cfg.json", "GET", saes_cfg, NULL },
    { "/v1/saes/{id}/saelens.tar", "GET", saes_saelens_tar, NULL },
    { "/v1/saes/{id}/encode", "POST", encode_post, NULL },
    { "/v1/saes/{id}/analysis", "GET", saes_analysis_get, NULL },
    { "/v1/saes/{id}/latents", "GET", saes_analysis_latents, "limit,after,sort" },
    { "/v1/saes/{id}/latents/{n}", "GET", saes_analysis_latent, NULL },
    { "/v1/saes/{id}/jaccard", "GET", saes_analysis_jaccard, "latents" },
    { "/v1/saes/{id}/groups", "GET", saes_analysis_groups, "limit,after,sort" },
    { "/v1/saes/{id}/groups/{n}", "GET", groups_get, NULL },
    { "/v1/saes/{id}/groups/{n}/plane.npy", "GET", groups_plane, NULL },
    { "/v1/saes/{id}/groups/{n}/projection", "GET", groups_projection, "dataset,limit" },
    { "/v1/saes/{id}/recovery", "GET", saes_analysis_recovery, NULL },
    { "/v1/compare", "GET", compare_get, "saes" },
    { "/v1/analyses/{id}", "GET", analyses_get, NULL },
    { "/v1/analyses/{id}/points.npy", "GET", analyses_points, NULL },
    { "/v1/analyses/{id}/components.npy", "GET", analyses_components, NULL },
    { "/v1/analyses/{id}/mean.npy", "GET", analyses_mean, NULL },
};

/* ---- store-handle pool ---- */

store *api_pool_get(api_server *s, char *err, size_t errlen)
{
    store *st = NULL;
    pthread_mutex_lock(&s->pool_mu);
    if (s->pool_n > 0) st = s->pool[--s->pool_n];
    pthread_mutex_unlock(&s->pool_mu);
    if (!st) st = store_open(s->db_path, err, errlen);
    return st;
}

void api_pool_put(api_server *s, store *st)
{
    if (!st) return;
    pthread_mutex_lock(&s->pool_mu);
    int kept = s->pool_n < s->pool_cap;
    if (kept) s->pool[s->pool_n++] = st;
    pthread_mutex_unlock(&s->pool_mu);
    if (!kept) store_close(st);
}

store *api_store(api_req *r)
{
    if (r->st) return r->st;
    char err[256];
    r->st = api_pool_get(r->srv, err, sizeof err);
    if (!r->st) /* api_problem logs it, as every 5xx */
        api_problem(r, MHD_HTTP_SERVICE_UNAVAILABLE, "the database cannot be opened (%s); retry later", err);
    return r->st;
}

double api_uptime_s(const api_server *s)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - s->started.tv_sec) + 1e-9 * (double)(now.tv_nsec - s->started.tv_nsec);
}

/* ---- caps (each hit logged through api_cap_log, http.c) ---- */

/* MHD's connection notifications: how many connections it holds. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)conn, (void)socket_context;
    api_server *s = cls;
    atomic_fetch_add(&s->conns_open, code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

/* Past 7/8 of max_connections open only the probes are served: the rest of the room is theirs, so a
 * monitor still learns that the daemon lives while clients hold every other connection. 0 to go on,
 * -1 after replying 503. */
static int server_check_busy(api_req *r)
{
    api_server *s = r->srv;
    int open = atomic_load(&s->conns_open), room = s->cfg.max_connections - s->cfg.max_connections / 8;
    int probe = (!strcmp(r->method, "GET") || !strcmp(r->method, "HEAD")) &&
                (!strcmp(r->url, "/v1/health") || !strcmp(r->url, "/metrics"));
    if (open <= room || probe) return 0;
    api_cap_log(s, API_CAP_TOTAL, "%d connections open, past the %d of --max-connections %d that serve more than "
                "GET /v1/health: answered 503", open, room, s->cfg.max_connections);
    api_problem_busy(r, API_BUSY_RETRY_S, "the daemon holds %d connections, nearly its limit of %d; retry later, "
                     "or close idle connections (each open event stream holds one)", open, s->cfg.max_connections);
    return -1;
}

/* ---- routing ---- */

/* Parses seg[0..len) as a decimal integer >= min (digits only). */
static int route_number(const char *seg, size_t len, int64_t min, int64_t *out)
{
    if (len == 0 || len > 18) return 0;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (seg[i] < '0' || seg[i] > '9') return 0;
        v = v * 10 + (seg[i] - '0');
    }
    if (v < min) return 0;
    *out = v;
    return 1;
}

/* 1 if url matches pattern, with the {id}/{n} values in ids. */
static int route_match(const char *pattern, const char *url, int64_t *ids, int *n_ids)
{
    const char *p = pattern, *u = url;
    int n = 0;
    while (*p && *u) {
        if (*p != '/' || *u != '/') return 0;
        p++, u++;
        size_t pl = strcspn(p, "/"), ul = strcspn(u, "/");
        int is_id = pl == 4 && !memcmp(p, "{id}", 4), is_n = pl == 3 && !memcmp(p, "{n}", 3);
        if (is_id || is_n) {
            if (n == API_MAX_IDS || !route_number(u, ul, is_id ? 1 : 0, &ids[n])) return 0;
            n++;
        } else if (pl != ul || memcmp(p, u, pl)) {
            return 0;
        }
        p += pl, u += ul;
    }
    *n_ids = n;
    return !*p && !*u;
}

static void route_allow_add(char *allow, size_t cap, const char *method)
{
    size_t len = strlen(allow), ml = strlen(method);
    for (const char *a = allow; (a = strstr(a, method)); a += ml)
        if ((a == allow || a[-1] == ' ') && (a[ml] == ',' || a[ml] == '\0')) return;
    snprintf(allow + len, cap - len, "%s%s", len ? ", " : "", method);
}

static int route_is_static(const char *url)
{
    return url[0] == '/' && strncmp(url, "/v1/", 4) && strcmp(url, "/v1") && strcmp(url, "/metrics");
}

static enum MHD_Result route_allow_reply(api_req *r, const char *allow)
{
    if (!strcmp(r->method, "OPTIONS")) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (resp) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
        return api_queue(r, MHD_HTTP_NO_CONTENT, resp);
    }
    return api_problem_allow(r, allow);
}

typedef struct {
    const char *allowed;  /* the route's list */
    int get;              /* access_token is allowed too */
    const char *unknown;  /* the first key outside both */
    const char *repeated; /* the first key given twice */
    const char *seen[16]; /* the keys so far (a route reads at most a few; past 16 one is unknown anyway) */
    int n_seen;
} route_query;

static enum MHD_Result route_query_key(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind, (void)value;
    route_query *q = cls;
    if (q->unknown || q->repeated) return MHD_YES;
    if (!api_list_has(q->allowed, key, 0) && !(q->get && !strcmp(key, "access_token"))) {
        q->unknown = key;
        return MHD_YES;
    }
    for (int i = 0; i < q->n_seen; i++)
        if (!strcmp(q->seen[i], key)) {
            q->repeated = key;
            return MHD_YES;
        }
    if (q->n_seen < (int)(sizeof q->seen / sizeof q->seen[0])) q->seen[q->n_seen++] = key;
    return MHD_YES;
}

/* A query parameter the route does not read is a 400 naming it, as an unknown body field is (a typo must
 * not silently fall back to a default). -1 after replying. */
static int route_check_query(api_req *r, const api_route *rt, const char *method)
{
    route_query q = { rt->query, !strcmp(method, "GET"), NULL, NULL, { NULL }, 0 };
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, route_query_key, &q);
    if (q.repeated) { /* ?limit=1&limit=2: which one was meant? Refused like a typo, not the first one taken */
        api_problem_field(r, MHD_HTTP_BAD_REQUEST, q.repeated, "query parameter '%.60s' given more than once",
                          q.repeated);
        return -1;
    }
    if (!q.unknown) return 0;
    api_problem_field(r, MHD_HTTP_BAD_REQUEST, q.unknown, "unknown query parameter '%.60s'; %s %s takes %s",
                      q.unknown, method, rt->pattern, rt->query ? rt->query : "none");
    return -1;
}

static enum MHD_Result route(api_req *r)
{
    const char *m = strcmp(r->method, "HEAD") ? r->method : "GET";
    char allow[96] = "";
    for (size_t i = 0; i < sizeof api_routes / sizeof api_routes[0]; i++) {
        const api_route *rt = &api_routes[i];
        int64_t ids[API_MAX_IDS];
        int n = 0;
        if (!route_match(rt->pattern, r->url, ids, &n)) continue;
        if (!strcmp(rt->method, m)) {
            if (route_check_query(r, rt, m)) return MHD_YES;
            memcpy(r->ids, ids, sizeof ids);
            r->n_ids = n;
            return rt->fn(r);
        }
        route_allow_add(allow, sizeof allow, rt->method);
        if (!strcmp(rt->method, "GET")) route_allow_add(allow, sizeof allow, "HEAD");
    }
    if (!allow[0] && route_is_static(r->url)) {
        if (!strcmp(m, "GET")) return web_static(r);
        snprintf(allow, sizeof allow, "GET, HEAD");
    }
    if (allow[0]) return route_allow_reply(r, allow);
    return api_problem(r, MHD_HTTP_NOT_FOUND, "no resource at %s; see /v1/openapi.json for the endpoints",
                       r->url);
}

/* ---- request lifecycle ---- */

static void req_append(api_req *r, const char *data, size_t n)
{
    size_t cap = r->srv->cfg.max_body;
    if (r->body_too_large) return;
    if (n > cap || r->body_len > cap - n) {
        r->body_too_large = 1;
        free(r->body);
        r->body = NULL;
        r->body_len = r->body_cap = 0;
        return;
    }
    if (r->body_len + n + 1 > r->body_cap) {
        size_t want = r->body_cap ? r->body_cap : 4096;
        while (want < r->body_len + n + 1) want *= 2;
        if (want > cap + 1) want = cap + 1;
        char *b = realloc(r->body, want);
        if (!b) { r->body_too_large = 1; free(r->body); r->body = NULL; r->body_len = r->body_cap = 0; return; }
        r->body = b;
        r->body_cap = want;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
}

static enum MHD_Result req_too_large(api_req *r)
{
    return api_problem(r, MHD_HTTP_CONTENT_TOO_LARGE, "the request body is larger than the %zu-byte limit (max_body)",
                       r->srv->cfg.max_body);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
    (void)version;
    api_server *s = cls;
    api_req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        r->srv = s, r->conn = conn, r->method = method, r->url = url;
        *con_cls = r;
        if (server_check_busy(r)) return MHD_YES; /* replied 503; the body is discarded */
        if (access_check(r)) return MHD_YES; /* replied 421/403; the body is discarded */
        if (datasets_upload_open(r)) return MHD_YES; /* a streamed upload: its own cap, not max_body */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body) {
            r->body_too_large = 1;
            return req_too_large(r);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (r->status) {} /* replied early: discard */
        else if (r->sink) r->sink->feed(r->sink, upload_data, *upload_data_size);
        else req_append(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->status) return MHD_YES;
    enum MHD_Result ret = r->body_too_large ? req_too_large(r) : route(r);
    if (!r->status) ret = api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "the handler for %s gave no answer", url);
    LOGD("http: %s %s -> %u", method, url, r->status);
    api_pool_put(s, r->st);
    r->st = NULL;
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn, (void)toe;
    api_server *s = cls;
    api_req *r = *con_cls;
    if (!r) return;
    api_pool_put(s, r->st);
    if (r->sink) r->sink->free(r->sink);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

/* msg with each run of HTML tags as one space, in place. */
static void mhd_log_untag(char *msg)
{
    size_t w = 0;
    int in_tag = 0;
    for (size_t i = 0; msg[i]; i++) {
        if (msg[i] == '<' && !in_tag && w && msg[w - 1] != ' ' && msg[w - 1] != '\'') msg[w++] = ' ';
        if (msg[i] == '<') in_tag = 1;
        else if (msg[i] == '>') in_tag = 0;
        else if (!in_tag) msg[w++] = msg[i];
    }
    msg[w] = '\0';
}

/* A request MHD answered itself, before on_access could see it (a malformed Content-Length or chunk size, an
 * HTTP version it does not speak, a request line or headers beyond the connection's memory): MHD 0.9.75
 * sends its own HTML page then and offers no hook to answer instead (README "## The daemon"). It is
 * counted in /metrics and logged, with the page's text. */
static void mhd_log_error_page(api_server *s, char *msg)
{
    const char *code = strstr(msg, "response code is ");
    unsigned status = code ? (unsigned)strtoul(code + 17, NULL, 10) : 0;
    unsigned cls = status / 100;
    atomic_fetch_add(&s->by_class[cls >= 1 && cls <= 5 ? cls : 0], 1);
    mhd_log_untag(msg);
    api_cap_log(s, API_CAP_MALFORMED, "libmicrohttpd answered a malformed request itself, with %u and its own "
                "page: %s", status, msg);
}

/* MHD's own messages are debug lines, but for a connection it refused at a limit (a cap hit) and a request
 * it answered itself. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    api_server *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    if (strstr(msg, "connection limit"))
        api_cap_log(s, API_CAP_CLIENT, "a connection was closed at once: %s (--max-client-connections %d, "
                    "--max-connections %d)", msg, s->cfg.max_client_connections, s->cfg.max_connections);
    else if (!strncmp(msg, "Error processing request", 24))
        mhd_log_error_page(s, msg);
    else
        LOGD("http: %s", msg);
}

/* ---- start / stop ---- */

/* The value of hex digit c, or -1. */
static int unescape_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                                                                    : -1;
}

/* libmicrohttpd's unescaping of the path and the query arguments, in place: %XX decoded, except
 * %00, which stays as the three characters "%00" (decoded, a NUL would end the C string there:
 * "/v1/datasets/159%00/labels" would route as "/v1/datasets/159"). Returns the new length. */
static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls, (void)conn;
    size_t w = 0;
    for (size_t i = 0; s[i]; w++) {
        int hi = s[i] == '%' && s[i + 1] ? unescape_hex(s[i + 1]) : -1;
        int lo = hi >= 0 && s[i + 2] ? unescape_hex(s[i + 2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            s[w] = (char)(hi * 16 + lo);
            i += 3;
        } else {
            s[w] = s[i++];
        }
    }
    s[w] = '\0';
    return w;
}

static char *dup_or(const char *s, const char *fallback)
{
    const char *v = s ? s : fallback;
    return v ? strdup(v) : NULL;
}

static size_t default_max_job_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    if (pages <= 0 || page <= 0) return (size_t)8 << 30;
    return (size_t)pages * (size_t)page / 2;
}

static int server_copy_config(api_server *s, const api_config *cfg)
{
    s->cfg = *cfg;
    s->host = dup_or(cfg->host, "127.0.0.1");
    s->db_path = dup_or(cfg->db_path, NULL);
    s->data_dir = dup_or(cfg->data_dir, ".");
    s->import_dir = dup_or(cfg->import_dir, NULL);
    s->web_dir = dup_or(cfg->web_dir, "web");
    s->openapi_path = dup_or(cfg->openapi_path, "openapi.json");
    s->version = dup_or(cfg->version, "dev");
    s->allow_hosts = dup_or(cfg->allow_hosts, "");
    s->cfg.host = s->host, s->cfg.db_path = s->db_path, s->cfg.data_dir = s->data_dir;
    s->cfg.import_dir = s->import_dir, s->cfg.web_dir = s->web_dir;
    s->cfg.openapi_path = s->openapi_path, s->cfg.version = s->version, s->cfg.allow_hosts = s->allow_hosts;
    if (!s->cfg.max_body) s->cfg.max_body = API_DEFAULT_MAX_BODY;
    if (!s->cfg.max_upload) s->cfg.max_upload = API_DEFAULT_MAX_UPLOAD;
    if (!s->cfg.max_job_bytes) s->cfg.max_job_bytes = default_max_job_bytes();
    if (!s->cfg.max_connections) s->cfg.max_connections = API_DEFAULT_CONNECTIONS;
    if (!s->cfg.max_client_connections) s->cfg.max_client_connections = API_DEFAULT_CLIENT_CONNECTIONS;
    if (!s->cfg.idle_timeout_s) s->cfg.idle_timeout_s = API_DEFAULT_IDLE_S;
    if (!s->cfg.max_reply_bytes) s->cfg.max_reply_bytes = API_DEFAULT_MAX_REPLY;
    return s->host && s->data_dir && s->web_dir && s->openapi_path && s->version && s->allow_hosts;
}

static void server_free(api_server *s)
{
    for (int i = 0; i < s->pool_n; i++) store_close(s->pool[i]);
    free(s->pool);
    pthread_mutex_destroy(&s->pool_mu);
    pthread_mutex_destroy(&s->cap_mu);
    pthread_mutex_destroy(&s->sse_mu);
    pthread_cond_destroy(&s->sse_cv);
    jobs_cache_free(s->jobs_cache);
    access_free(s);
    free(s->host), free(s->db_path), free(s->data_dir), free(s->import_dir);
    free(s->web_dir), free(s->openapi_path), free(s->version), free(s->allow_hosts);
    free(s);
}

/* Resolves host:port into addr. 0, or -1 with err set. */
static int server_resolve(const char *host, int port, struct sockaddr_storage *addr, int *ipv6,
                          char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "cannot resolve listen address '%s': %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *ipv6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

static int server_listen(api_server *s, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    int ipv6 = 0;
    if (server_resolve(s->host, s->cfg.port, &addr, &ipv6, err, errlen)) return -1;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | (ipv6 ? MHD_USE_IPv6 : 0);
    unsigned threads = s->cfg.threads > 0 ? (unsigned)s->cfg.threads : API_DEFAULT_THREADS;
    s->mhd = MHD_start_daemon(flags, (uint16_t)s->cfg.port, NULL, NULL, on_access, s,
                              MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, /* first, or MHD says so */
                              MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_THREAD_POOL_SIZE, threads,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)s->cfg.max_client_connections,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.idle_timeout_s,
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)API_CONNECTION_MEMORY,
                              MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, s,
                              MHD_OPTION_END);
    if (!s->mhd) {
        snprintf(err, errlen, "cannot listen on %s:%d (is another saed or program using the port?)",
                 s->host, s->cfg.port);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : s->cfg.port;
    return 0;
}

api_server *api_start(const api_config *cfg, char *err, size_t errlen)
{
    if (!cfg->db_path) {
        snprintf(err, errlen, "api: no database path given");
        return NULL;
    }
    api_server *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, errlen, "api: out of memory"); return NULL; }
    pthread_mutex_init(&s->pool_mu, NULL);
    pthread_mutex_init(&s->cap_mu, NULL);
    pthread_mutex_init(&s->sse_mu, NULL);
    pthread_cond_init(&s->sse_cv, NULL);
    s->pool_cap = API_POOL_CAP;
    s->pool = calloc((size_t)s->pool_cap, sizeof *s->pool);
    s->jobs_cache = jobs_cache_create();
    if (!s->pool || !s->jobs_cache || !server_copy_config(s, cfg)) {
        snprintf(err, errlen, "api: out of memory");
        server_free(s);
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &s->started);
    if (access_setup(s, err, errlen)) { server_free(s); return NULL; }
    store *st = api_pool_get(s, err, errlen); /* fail now, not at the first request */
    if (!st) { server_free(s); return NULL; }
    api_pool_put(s, st);
    datasets_staging_sweep(s); /* uploads and imports a crash left half-written */
    if (events_start(s, err, errlen)) { server_free(s); return NULL; }
    if (server_listen(s, err, errlen)) {
        atomic_store(&s->stopping, 1); /* the ticker exits only once this is set (events_stop) */
        events_stop(s);
        server_free(s);
        return NULL;
    }
    return s;
}

int api_port(const api_server *s) { return s->port; }

void api_stop(api_server *s)
{
    if (!s) return;
    atomic_store(&s->stopping, 1);
    events_stop(s);          /* sleeping SSE streams wake, see `stopping` and end */
    MHD_stop_daemon(s->mhd); /* joins MHD's threads */
    server_free(s);
}
