/* api/http.c — the helpers every handler shares: replies (JSON, problem+json,
 * buffers, files, .npy), the request body as JSON with the size cap already
 * applied by server.c, query parameters, and JSON values that can never be
 * NaN or Infinity. Every problem+json reply of the API is made here (the
 * layer's one error style), and a 5xx one is logged here too.
 *
 * Every reply goes through api_queue(), which counts it by status class for
 * /metrics. Replies that hold memory until the client has read them (.npy
 * pages, a circles dataset's planes, JSON over 1 MiB) reserve it first in
 * the server's reply budget (--max-reply-mb; 503 with Retry-After when other
 * replies hold it) and give it back when MHD frees them; .npy rows can be
 * made a ~1 MiB chunk at a time as the client reads (api_send_npy_rows), so
 * a slow client holds a chunk, not the array. A 503 for a full daemon
 * (api_problem_busy) is logged by its caller through api_cap_log (here), at
 * most a line per cap every 10 s. api_parse_object() is pure (bytes in, JSON or
 * message out) so it can be fuzzed on its own. */
#include "internal.h"
#include "log.h"
#include "npy.h"
#include "utf8.h"
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HTTP_REPLY_RETRY_S "2"
#define HTTP_HELD_MIN ((size_t)1 << 20)   /* JSON and text replies at least this large count in the budget */
#define HTTP_CHUNK_BYTES ((size_t)1 << 20) /* rows of a streamed .npy reply made at a time (at least one) */

enum MHD_Result api_queue(api_req *r, unsigned status, struct MHD_Response *resp)
{
    if (!resp) return MHD_NO; /* out of memory: MHD closes the connection */
    unsigned cls = status / 100;
    atomic_fetch_add(&r->srv->by_class[cls >= 1 && cls <= 5 ? cls : 0], 1);
    r->status = status;
    enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static struct MHD_Response *http_text_response(char *text, const char *content_type)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) { free(text); return NULL; }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return resp;
}

/* body (stolen) as content_type text, with one extra header when header is not NULL. */
static enum MHD_Result http_send_dumped(api_req *r, unsigned status, json_t *body, const char *content_type,
                                        const char *header, const char *value)
{
    char *text = body ? json_dumps(body, API_JSON_FLAGS) : NULL;
    json_decref(body);
    if (!text) {
        text = strdup("{\"type\":\"about:blank\",\"title\":\"Internal Server Error\",\"status\":500,"
                      "\"detail\":\"out of memory while writing the reply\"}");
        if (!text) return MHD_NO;
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        content_type = "application/problem+json";
        header = NULL;
    }
    size_t len = strlen(text);
    if (len >= HTTP_HELD_MIN && status == MHD_HTTP_OK && !header) { /* a large list: counted while it is sent */
        if (api_reply_reserve(r, len)) { free(text); return MHD_YES; }
        return api_send_held(r, content_type, text, len, len);
    }
    struct MHD_Response *resp = http_text_response(text, content_type);
    if (resp && header) MHD_add_response_header(resp, header, value);
    return api_queue(r, status, resp);
}

enum MHD_Result api_send_json(api_req *r, unsigned status, json_t *body)
{
    return http_send_dumped(r, status, body, "application/json", NULL, NULL);
}

enum MHD_Result api_created(api_req *r, unsigned status, const char *location, json_t *body)
{
    return http_send_dumped(r, status, body, "application/json", MHD_HTTP_HEADER_LOCATION, location);
}

enum MHD_Result api_send_owned_text(api_req *r, unsigned status, const char *content_type, char *text)
{
    return api_queue(r, status, http_text_response(text, content_type));
}

enum MHD_Result api_send_text(api_req *r, unsigned status, const char *content_type, const char *text)
{
    char *copy = strdup(text);
    if (!copy) return MHD_NO;
    return api_queue(r, status, http_text_response(copy, content_type));
}

enum MHD_Result api_send_buffer(api_req *r, unsigned status, const char *content_type, void *buf, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(len, buf, free);
    if (!resp) { free(buf); return MHD_NO; }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return api_queue(r, status, resp);
}

enum MHD_Result api_send_file(api_req *r, const char *path, const char *content_type, const char *cache_control)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        int e = fd < 0 ? errno : ENOENT;
        if (fd >= 0) close(fd);
        if (e == ENOENT || e == ENOTDIR)
            return api_problem(r, MHD_HTTP_NOT_FOUND, "%s has no file here (it may have been removed)", r->url);
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read the file for %s: %s", r->url,
                           strerror(e));
    }
    struct MHD_Response *resp = MHD_create_response_from_fd64((uint64_t)sb.st_size, fd);
    if (!resp) { close(fd); return MHD_NO; }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cache_control);
    return api_queue(r, MHD_HTTP_OK, resp);
}

/* ---- small shared helpers ---- */

int api_list_has(const char *list, const char *name, int nocase)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && !(nocase ? strncasecmp(p, name, n) : strncmp(p, name, n))) return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* ---- problems (RFC 9457) ---- */

/* A problem object; detail (user text may be in it, cut at a byte count) with every byte that is not
 * well-formed UTF-8 shown as '?', so the reply can always be encoded. */
static json_t *http_problem_object(unsigned status, const char *detail)
{
    const char *title = MHD_get_reason_phrase_for(status);
    char clean[1024];
    snprintf(clean, sizeof clean, "%s", detail);
    utf8_scrub(clean);
    return json_pack("{s:s,s:s,s:i,s:s}", "type", "about:blank", "title", title && *title ? title : "Error",
                     "status", (int)status, "detail", clean);
}

static enum MHD_Result http_send_problem(api_req *r, unsigned status, json_t *p)
{
    return http_send_dumped(r, status, p, "application/problem+json", NULL, NULL);
}

enum MHD_Result api_problem(api_req *r, unsigned status, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (status >= 500) LOGE("%s %s: %u %s", r->method, r->url, status, detail);
    return http_send_problem(r, status, http_problem_object(status, detail));
}

enum MHD_Result api_problem_hdr(api_req *r, unsigned status, const char *header, const char *value, const char *fmt,
                                ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return http_send_dumped(r, status, http_problem_object(status, detail), "application/problem+json", header,
                            value);
}

enum MHD_Result api_problem_busy(api_req *r, const char *retry_s, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    json_t *p = http_problem_object(MHD_HTTP_SERVICE_UNAVAILABLE, detail);
    char *text = p ? json_dumps(p, API_JSON_FLAGS) : NULL;
    json_decref(p);
    struct MHD_Response *resp = text ? http_text_response(text, "application/problem+json") : NULL;
    if (!resp) return MHD_NO; /* out of memory: MHD closes the connection, which is the point anyway */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry_s);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    return api_queue(r, MHD_HTTP_SERVICE_UNAVAILABLE, resp);
}

enum MHD_Result api_problem_allow(api_req *r, const char *allow)
{
    char detail[1024];
    snprintf(detail, sizeof detail, "%s is not allowed on %s; use %s", r->method, r->url, allow);
    json_t *p = http_problem_object(MHD_HTTP_METHOD_NOT_ALLOWED, detail);
    return http_send_dumped(r, MHD_HTTP_METHOD_NOT_ALLOWED, p, "application/problem+json", MHD_HTTP_HEADER_ALLOW,
                            allow);
}

enum MHD_Result api_problem_fields(api_req *r, const spec_errors *errs, const char *detail)
{
    unsigned status = errs->status ? (unsigned)errs->status : MHD_HTTP_BAD_REQUEST;
    char buf[1024];
    if (!detail) {
        if (errs->n > 0)
            snprintf(buf, sizeof buf, "%s: %s%s", errs->e[0].field, errs->e[0].message,
                     errs->n > 1 ? " (and more in errors[])" : "");
        else
            snprintf(buf, sizeof buf, "the request is invalid");
        detail = buf;
    }
    if (status >= 500) LOGE("%s %s: %u %s", r->method, r->url, status, detail);
    json_t *p = http_problem_object(status, detail), *list = json_array();
    for (int i = 0; i < errs->n; i++) {
        char field[sizeof errs->e[0].field], message[sizeof errs->e[0].message];
        snprintf(field, sizeof field, "%s", errs->e[i].field);
        snprintf(message, sizeof message, "%s", errs->e[i].message);
        utf8_scrub(field), utf8_scrub(message);
        json_array_append_new(list, json_pack("{s:s,s:s}", "field", field, "message", message));
    }
    if (p) json_object_set_new(p, "errors", list);
    else json_decref(list);
    return http_send_problem(r, status, p);
}

enum MHD_Result api_problem_field(api_req *r, unsigned status, const char *field, const char *fmt, ...)
{
    spec_errors errs = { 0 };
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    spec_error_add(&errs, (int)status, field, "%s", msg);
    return api_problem_fields(r, &errs, NULL);
}

/* ---- .npy ---- */

char *api_npy_alloc(const char *descr, const int64_t *shape, int ndim, size_t *data_off, size_t *total)
{
    char hdr[NPY_HEADER_MAX];
    size_t hl = npy_header(hdr, sizeof hdr, descr, shape, ndim);
    if (!hl) return NULL;
    size_t bytes = 4; /* <f4 and <i4 only */
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] > 0 && bytes > SIZE_MAX / 2 / (size_t)shape[i])) return NULL;
        bytes *= (size_t)shape[i];
    }
    char *buf = malloc(hl + bytes);
    if (!buf) return NULL;
    memcpy(buf, hdr, hl);
    *data_off = hl;
    *total = hl + bytes;
    return buf;
}

/* ---- caps hit, logged ---- */

#define HTTP_CAP_LOG_S 10.0

static double http_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void api_cap_log(api_server *s, api_cap cap, const char *fmt, ...)
{
    assert(cap >= 0 && cap < API_CAP_N);
    double now = http_now_s();
    pthread_mutex_lock(&s->cap_mu);
    long hits = ++s->cap_hits[cap];
    int due = s->cap_logged_at[cap] == 0 || now - s->cap_logged_at[cap] >= HTTP_CAP_LOG_S;
    if (due) s->cap_logged_at[cap] = now, s->cap_hits[cap] = 0;
    pthread_mutex_unlock(&s->cap_mu);
    if (!due) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    LOGW("http: %s (%ld time(s) since the last such line)", msg, hits);
}

/* ---- the reply-memory budget ---- */

int api_reply_reserve(api_req *r, size_t bytes)
{
    api_server *s = r->srv;
    size_t max = s->cfg.max_reply_bytes;
    if (bytes > max) {
        api_problem(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "this reply needs %zu MiB in memory, more than the whole "
                    "reply budget (--max-reply-mb %zu); ask for a smaller page, or raise --max-reply-mb",
                    bytes >> 20, max >> 20);
        return -1;
    }
    unsigned long long held = atomic_load(&s->reply_bytes);
    do {
        if (held + bytes > max) {
            api_cap_log(s, API_CAP_REPLY, "replies in memory hold %llu MiB of --max-reply-mb %zu: answered 503",
                        held >> 20, max >> 20);
            api_problem_busy(r, HTTP_REPLY_RETRY_S, "replies still being sent hold %llu MiB of the %zu MiB reply "
                             "budget (--max-reply-mb); retry shortly, or ask for a smaller page", held >> 20,
                             max >> 20);
            return -1;
        }
    } while (!atomic_compare_exchange_weak(&s->reply_bytes, &held, held + bytes));
    return 0;
}

void api_reply_release(api_server *s, size_t bytes)
{
    assert(atomic_load(&s->reply_bytes) >= bytes);
    atomic_fetch_sub(&s->reply_bytes, bytes);
}

/* A reply read from memory (a buffer, or rows made a chunk at a time) while `held` bytes of the budget are
 * reserved; they are given back when MHD frees the reply. */
typedef struct {
    api_server *srv;
    size_t held;
    char hdr[NPY_HEADER_MAX];   /* a .npy reply's header; hl = 0 for a plain buffer */
    size_t hl, row_bytes;
    char *chunk;                /* (chunk_rows * row_bytes) rows [chunk_first, chunk_first + chunk_n) */
    int64_t chunk_first, chunk_rows, n_rows;
    int chunk_n;
    api_rows_fill fill;
    void *ctx;
    void (*free_ctx)(void *ctx);
} http_held;

static void http_held_free(void *cls)
{
    http_held *h = cls;
    if (h->free_ctx) h->free_ctx(h->ctx);
    api_reply_release(h->srv, h->held);
    free(h->chunk);
    free(h);
}

/* Makes sure the chunk holds `row`; 0, or -1 when the rows cannot be made. */
static int http_held_row(http_held *h, int64_t row)
{
    if (h->chunk_n > 0 && row >= h->chunk_first && row < h->chunk_first + h->chunk_n) return 0;
    if (!h->fill) return -1; /* a plain buffer is one whole chunk */
    int64_t n = h->n_rows - row < h->chunk_rows ? h->n_rows - row : h->chunk_rows;
    if (h->fill(h->ctx, row, (int)n, (float *)(void *)h->chunk)) return -1;
    h->chunk_first = row, h->chunk_n = (int)n;
    return 0;
}

static ssize_t http_held_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    http_held *h = cls;
    if (pos < h->hl) {
        size_t n = h->hl - pos < max ? h->hl - (size_t)pos : max;
        memcpy(buf, h->hdr + pos, n);
        return (ssize_t)n;
    }
    uint64_t d = pos - h->hl;
    int64_t row = (int64_t)(d / h->row_bytes);
    if (row >= h->n_rows) return MHD_CONTENT_READER_END_OF_STREAM;
    if (http_held_row(h, row)) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t at = (size_t)(d - (uint64_t)h->chunk_first * h->row_bytes), end = (size_t)h->chunk_n * h->row_bytes;
    size_t n = end - at < max ? end - at : max;
    memcpy(buf, h->chunk + at, n);
    return (ssize_t)n;
}

static enum MHD_Result http_held_send(api_req *r, http_held *h, const char *content_type)
{
    uint64_t total = h->hl + (uint64_t)h->n_rows * h->row_bytes;
    struct MHD_Response *resp = MHD_create_response_from_callback(total, 64 * 1024, http_held_read, h,
                                                                  http_held_free);
    if (!resp) { http_held_free(h); return MHD_NO; }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return api_queue(r, MHD_HTTP_OK, resp);
}

enum MHD_Result api_send_held(api_req *r, const char *content_type, void *buf, size_t len, size_t held)
{
    http_held *h = calloc(1, sizeof *h);
    if (!h) { free(buf); api_reply_release(r->srv, held); return MHD_NO; }
    h->srv = r->srv, h->held = held, h->chunk = buf, h->row_bytes = len ? len : 1, h->n_rows = len ? 1 : 0;
    h->chunk_rows = h->chunk_n = 1;
    return http_held_send(r, h, content_type);
}

/* Gives back what a streamed reply that will not be sent holds. */
static void http_rows_drop(api_server *s, http_held *h, void *ctx, void (*free_ctx)(void *ctx), size_t held)
{
    if (h) free(h->chunk);
    free(h);
    if (free_ctx) free_ctx(ctx);
    api_reply_release(s, held);
}

enum MHD_Result api_send_npy_rows(api_req *r, const int64_t *shape, int ndim, api_rows_fill fill, void *ctx,
                                  void (*free_ctx)(void *ctx), size_t held)
{
    assert(ndim >= 1 && fill);
    http_held *h = calloc(1, sizeof *h);
    size_t row_bytes = 4;
    for (int i = 1; i < ndim; i++) row_bytes *= (size_t)shape[i];
    int64_t chunk_rows = (int64_t)(HTTP_CHUNK_BYTES / row_bytes);
    if (chunk_rows < 1) chunk_rows = 1;
    size_t chunk = (size_t)chunk_rows * row_bytes;
    if (api_reply_reserve(r, chunk)) { /* replied 503 */
        http_rows_drop(r->srv, h, ctx, free_ctx, held);
        return MHD_YES;
    }
    held += chunk;
    if (h) h->chunk = malloc(chunk);
    if (h) h->hl = npy_header(h->hdr, sizeof h->hdr, "<f4", shape, ndim);
    if (!h || !h->chunk || !h->hl) {
        http_rows_drop(r->srv, h, ctx, free_ctx, held);
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory for the reply");
    }
    h->srv = r->srv, h->held = held, h->row_bytes = row_bytes, h->n_rows = shape[0], h->chunk_rows = chunk_rows;
    h->fill = fill, h->ctx = ctx, h->free_ctx = free_ctx;
    return http_held_send(r, h, "application/octet-stream");
}

/* ---- query parameters ---- */

int api_query_int(api_req *r, const char *name, long long min, long long max, long long *out)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v) return 0;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    int digits = *v && (isdigit((unsigned char)v[0]) || (v[0] == '-' && isdigit((unsigned char)v[1])));
    if (!digits || errno || *end || x < min || x > max) {
        api_problem_field(r, MHD_HTTP_BAD_REQUEST, name, "?%s= must be an integer from %lld to %lld, not '%.40s'",
                          name, min, max, v);
        return -1;
    }
    *out = x;
    return 1;
}

int api_query_page(api_req *r, int *limit, int64_t *after)
{
    long long l = API_LIST_DEFAULT, a = 0;
    if (api_query_int(r, "limit", 1, API_LIST_MAX, &l) < 0) return -1;
    if (api_query_int(r, "after", 0, INT64_MAX, &a) < 0) return -1;
    *limit = (int)l;
    *after = a;
    return 0;
}

/* ---- request bodies ---- */

/* Every number written with a fraction or exponent whose value is a whole number (1.0, 2e3) becomes an
 * integer, in place and recursively: JSON (and JSON Schema's "integer") does not tell 1.0 from 1, so a
 * field that wants an integer takes either; a field that wants a number takes integers anyway. */
static void http_integral_reals(json_t *j);

/* v as an integer when it is a whole-valued real (new reference), else NULL after converting inside it. */
static json_t *http_integral(json_t *v)
{
    double x = json_is_real(v) ? json_real_value(v) : 0.5;
    if (x == floor(x) && fabs(x) <= 9007199254740992.0) return json_integer((json_int_t)x);
    http_integral_reals(v);
    return NULL;
}

static void http_integral_reals(json_t *j)
{
    const char *key;
    json_t *v, *w;
    size_t i;
    if (json_is_object(j)) {
        json_object_foreach(j, key, v)
            if ((w = http_integral(v))) json_object_set_new(j, key, w);
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v)
            if ((w = http_integral(v))) json_array_set_new(j, i, w);
    }
}

json_t *api_parse_object(const char *buf, size_t len, char *detail, size_t detaillen)
{
    if (!buf || len == 0) {
        snprintf(detail, detaillen, "the request body is empty; send a JSON object");
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        snprintf(detail, detaillen, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        snprintf(detail, detaillen, "the body must be a JSON object ({...})");
        json_decref(j);
        return NULL;
    }
    http_integral_reals(j);
    return j;
}

json_t *api_body_object(api_req *r)
{
    if (r->body_too_large) {
        api_problem(r, MHD_HTTP_CONTENT_TOO_LARGE, "the request body is larger than the %zu-byte limit (max_body)",
                    r->srv->cfg.max_body);
        return NULL;
    }
    char detail[512];
    json_t *j = api_parse_object(r->body, r->body_len, detail, sizeof detail);
    if (!j) api_problem(r, MHD_HTTP_BAD_REQUEST, "%s", detail);
    return j;
}

/* ---- JSON values ---- */

json_t *api_json_num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *api_json_time(const char *t)
{
    return t && *t ? json_string(t) : json_null();
}

json_t *api_json_stored(const char *text)
{
    if (!text) return json_null();
    json_t *j = json_loads(text, 0, NULL);
    return j ? j : json_null();
}

json_t *api_list(json_t *items, int more, int64_t last_id)
{
    return json_pack("{s:o,s:o}", "items", items ? items : json_array(),
                     "next", more ? json_integer(last_id) : json_null());
}
