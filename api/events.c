/* api/events.c — GET /v1/jobs/{id}/events, a Server-Sent Events stream.
 *
 * The reply is an MHD callback response of unknown length (chunked). Its
 * reader runs on one of MHD's few event-loop threads, so it never blocks:
 * it polls the job row through a pooled store handle (taken for the one
 * read, then given back); with nothing to send it suspends its connection
 * and joins the server's list of sleeping streams, and a ticker thread
 * resumes each one EVENTS_POLL_MS later (suspend, list and resume all
 * happen under sse_mu, so a stop never misses a stream). It writes
 *   event: state     data = the job object, whenever the state changes
 *                    (the first poll always sends one);
 *   event: progress  id = step, data = the progress object plus "latest",
 *                    whenever the step moves past the last id sent;
 *   ": keep-alive"   a comment after 15 s without anything else (a third of the
 *                    idle timeout when that is shorter, so MHD never closes a
 *                    quiet stream as idle).
 * A terminal state ends the stream after its state event (progress first,
 * so the last step is never lost). Last-Event-ID (header, or ?last_event_id=
 * for clients that cannot set headers; the query value must be an integer)
 * resumes: progress at or below it is not repeated. Once the server is stopping, every stream is resumed and
 * ends. At most half of max_connections streams are open at once, so idle
 * streams cannot take every connection (and GET /v1/health with it); one
 * more is a 503 with Retry-After, and logged. */
#include "internal.h"
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EVENTS_POLL_MS 200
#define EVENTS_TICK_MS 50
#define EVENTS_KEEPALIVE_MS 15000
#define EVENTS_RETRY_S "5"

typedef struct events_stream {
    api_server *srv;
    struct MHD_Connection *conn;
    struct events_stream *next; /* in srv->sse_sleeping while asleep */
    int asleep;
    double wake_at;             /* CLOCK_MONOTONIC seconds */
    int64_t job_id;
    long long last_step;   /* highest progress id sent (or resumed from) */
    int last_state;        /* -1 before the first state event */
    int done;              /* terminal state sent: end after the buffer drains */
    int idle_ms;           /* since the last output */
    char *out;             /* (cap) pending output, out[pos..len) unsent */
    size_t len, pos, cap;
} events_stream;

static double events_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A keep-alive comment this often while nothing else is sent: MHD counts a suspended stream as idle. */
static int events_keepalive_ms(const api_server *srv)
{
    int third = srv->cfg.idle_timeout_s * 1000 / 3;
    return third < EVENTS_KEEPALIVE_MS ? third : EVENTS_KEEPALIVE_MS;
}

static int events_append(events_stream *s, const char *text, size_t n)
{
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n) cap *= 2;
        char *p = realloc(s->out, cap);
        if (!p) return -1;
        s->out = p, s->cap = cap;
    }
    memcpy(s->out + s->len, text, n);
    s->len += n;
    return 0;
}

/* "event: NAME\nid: ID\ndata: JSON\n\n"; steals data. */
static int events_emit(events_stream *s, const char *name, long long id, json_t *data)
{
    char *text = data ? json_dumps(data, API_JSON_FLAGS) : NULL;
    json_decref(data);
    if (!text) return -1;
    char head[96];
    int n = snprintf(head, sizeof head, "event: %s\nid: %lld\ndata: ", name, id);
    int rc = events_append(s, head, (size_t)n) || events_append(s, text, strlen(text)) ||
             events_append(s, "\n\n", 2);
    free(text);
    return rc ? -1 : 0;
}

static json_t *events_progress_data(const store_job *j)
{
    json_t *obj = jobs_object(j), *p = json_incref(json_object_get(obj, "progress"));
    json_object_set(p, "latest", json_object_get(obj, "latest"));
    json_decref(obj);
    return p;
}

/* One poll: appends whatever is new. -1 on a store error; a deleted job ends the stream. */
static int events_poll(events_stream *s)
{
    char err[256];
    store *st = api_pool_get(s->srv, err, sizeof err);
    if (!st) return -1;
    store_job j = { 0 };
    int rc = store_job_get(st, s->job_id, &j);
    api_pool_put(s->srv, st);
    if (rc == STORE_NOTFOUND) s->done = 1;
    if (rc != STORE_OK) return rc == STORE_NOTFOUND ? 0 : -1;
    int terminal = store_job_state_terminal(j.state), changed = (int)j.state != s->last_state;
    int moved = j.step > s->last_step;
    int fail = 0;
    if (changed && !terminal) fail |= events_emit(s, "state", j.step, jobs_object(&j));
    if (moved) fail |= events_emit(s, "progress", j.step, events_progress_data(&j));
    if (changed && terminal) fail |= events_emit(s, "state", j.step, jobs_object(&j));
    if (moved) s->last_step = j.step;
    s->last_state = (int)j.state;
    s->done = terminal;
    store_job_clear(&j);
    return fail ? -1 : 0;
}

/* Suspends the stream's connection until the ticker wakes it; 0, or -1 if the server is stopping. */
static int events_sleep(events_stream *s)
{
    api_server *srv = s->srv;
    pthread_mutex_lock(&srv->sse_mu);
    int stopping = atomic_load(&srv->stopping);
    if (!stopping) {
        MHD_suspend_connection(s->conn);
        s->asleep = 1;
        s->wake_at = events_now() + EVENTS_POLL_MS / 1000.0;
        s->next = srv->sse_sleeping;
        srv->sse_sleeping = s;
    }
    pthread_mutex_unlock(&srv->sse_mu);
    return stopping ? -1 : 0;
}

static ssize_t events_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    events_stream *s = cls;
    for (;;) {
        if (s->pos < s->len) {
            size_t n = s->len - s->pos < max ? s->len - s->pos : max;
            memcpy(buf, s->out + s->pos, n);
            s->pos += n;
            return (ssize_t)n;
        }
        s->pos = s->len = 0;
        if (s->done || atomic_load(&s->srv->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
        if (events_poll(s)) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (s->len || s->done) { s->idle_ms = 0; continue; }
        if (s->idle_ms >= events_keepalive_ms(s->srv)) {
            s->idle_ms = 0;
            if (events_append(s, ": keep-alive\n\n", 14)) return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        s->idle_ms += EVENTS_POLL_MS;
        return events_sleep(s) ? MHD_CONTENT_READER_END_OF_STREAM : 0; /* MHD calls again once resumed */
    }
}

/* Removes s from the sleeping list if it is there (caller holds sse_mu). */
static void events_unlink(events_stream *s)
{
    for (events_stream **p = &s->srv->sse_sleeping; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    s->asleep = 0;
}

/* Every EVENTS_TICK_MS: resumes the streams whose time has come. */
static void *events_ticker(void *arg)
{
    api_server *srv = arg;
    pthread_mutex_lock(&srv->sse_mu);
    while (!atomic_load(&srv->stopping)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += EVENTS_TICK_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&srv->sse_cv, &srv->sse_mu, &until);
        double now = events_now();
        for (events_stream **p = &srv->sse_sleeping; *p;) {
            events_stream *s = *p;
            if (s->wake_at > now && !atomic_load(&srv->stopping)) {
                p = &s->next;
                continue;
            }
            *p = s->next;
            s->asleep = 0;
            MHD_resume_connection(s->conn);
        }
    }
    pthread_mutex_unlock(&srv->sse_mu);
    return NULL;
}

int events_start(api_server *s, char *err, size_t errlen)
{
    int rc = pthread_create(&s->sse_ticker, NULL, events_ticker, s);
    if (rc) {
        snprintf(err, errlen, "api: cannot start the event-stream ticker: %s", strerror(rc));
        return -1;
    }
    s->sse_started = 1;
    return 0;
}

void events_stop(api_server *s)
{
    if (!s->sse_started) return;
    pthread_mutex_lock(&s->sse_mu);
    pthread_cond_signal(&s->sse_cv); /* `stopping` is set: the ticker resumes everything and exits */
    pthread_mutex_unlock(&s->sse_mu);
    pthread_join(s->sse_ticker, NULL);
    pthread_mutex_lock(&s->sse_mu);
    while (s->sse_sleeping) { /* streams that went to sleep after the ticker's last pass */
        events_stream *e = s->sse_sleeping;
        s->sse_sleeping = e->next;
        e->asleep = 0;
        MHD_resume_connection(e->conn);
    }
    s->sse_started = 0;
    pthread_mutex_unlock(&s->sse_mu);
}

static void events_free(void *cls)
{
    events_stream *s = cls;
    pthread_mutex_lock(&s->srv->sse_mu);
    if (s->asleep) events_unlink(s);
    pthread_mutex_unlock(&s->srv->sse_mu);
    atomic_fetch_sub(&s->srv->sse_open, 1);
    free(s->out);
    free(s);
}

/* Last-Event-ID from the header (what an EventSource sends back), else ?last_event_id=; each must be an
 * integer >= -1 (400 naming it otherwise). *from = -1 when neither is given; -1 after replying. */
static int events_resume_from(api_req *r, long long *from)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
    *from = -1;
    if (api_query_int(r, "last_event_id", -1, INT64_MAX, from) < 0) return -1;
    if (v) {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < -1) {
            api_problem_field(r, MHD_HTTP_BAD_REQUEST, "Last-Event-ID", "Last-Event-ID must be an event id this "
                              "stream sent (an integer from -1), not '%.40s'", v);
            return -1;
        }
        *from = x;
    }
    return 0;
}

enum MHD_Result events_job(api_req *r)
{
    long long from;
    if (events_resume_from(r, &from)) return MHD_YES;
    store *st = api_store(r);
    if (!st) return MHD_YES;
    store_job j = { 0 };
    int rc = store_job_get(st, r->ids[0], &j);
    store_job_clear(&j);
    if (rc == STORE_NOTFOUND)
        return api_problem(r, MHD_HTTP_NOT_FOUND, "job %lld does not exist", (long long)r->ids[0]);
    if (rc != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read job: %s", store_errmsg(st));
    int max = r->srv->cfg.max_connections / 2;
    if (atomic_fetch_add(&r->srv->sse_open, 1) >= max) {
        atomic_fetch_sub(&r->srv->sse_open, 1);
        api_cap_log(r->srv, API_CAP_STREAMS, "%d event streams open, half of --max-connections: answered 503", max);
        return api_problem_busy(r, EVENTS_RETRY_S, "%d event streams are open, the most this daemon serves at once; "
                                "close some (each page watching a job holds one) or poll GET /v1/jobs/%lld instead",
                                max, (long long)r->ids[0]);
    }
    events_stream *s = calloc(1, sizeof *s);
    if (!s) {
        atomic_fetch_sub(&r->srv->sse_open, 1);
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    s->srv = r->srv, s->conn = r->conn, s->job_id = r->ids[0], s->last_state = -1;
    s->last_step = from;
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, events_read, s, events_free);
    if (!resp) { events_free(s); return MHD_NO; }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    return api_queue(r, MHD_HTTP_OK, resp);
}
