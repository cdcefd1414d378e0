/* api/health.c — the daemon's own endpoints: /v1/health, /v1/openapi.json
 * and /metrics (Prometheus text exposition format 0.0.4).
 *
 * /v1/health also reports the data directory's free disk, and says
 * "degraded" (still 200: the daemon answers) when it is nearly full — less
 * than a twentieth free, or less than 1 GiB when that is smaller — since
 * imports, uploads and jobs will then fail for lack of space.
 *
 * /metrics reports the responses answered by status class (counted in
 * api_queue), the jobs in each state and the training throughput summed
 * over running jobs, all read fresh from SQLite on each scrape. */
#include "internal.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#define HEALTH_DISK_LOW ((uint64_t)1 << 30) /* free bytes below which a large disk counts as nearly full */

/* The data directory's file system: bytes free (to the daemon's user) and in all; 0, or -1 when it cannot
 * be read. */
static int health_disk(const api_server *s, uint64_t *free_b, uint64_t *total_b)
{
    struct statvfs v;
    if (statvfs(s->cfg.data_dir, &v)) return -1;
    *free_b = (uint64_t)v.f_bavail * v.f_frsize;
    *total_b = (uint64_t)v.f_blocks * v.f_frsize;
    return 0;
}

/* Nearly full: less than a twentieth of it free, or less than HEALTH_DISK_LOW when that is smaller. */
static int health_disk_low(uint64_t free_b, uint64_t total_b)
{
    uint64_t low = total_b / 20 < HEALTH_DISK_LOW ? total_b / 20 : HEALTH_DISK_LOW;
    return free_b < low;
}

/* {"free_bytes", "total_bytes", "low"} of the data directory's file system; null when it cannot be read. */
static json_t *health_disk_json(const api_server *s, int *low)
{
    uint64_t free_b, total_b;
    *low = 0;
    if (health_disk(s, &free_b, &total_b)) return json_null();
    *low = health_disk_low(free_b, total_b);
    return json_pack("{s:I,s:I,s:b}", "free_bytes", (json_int_t)free_b, "total_bytes", (json_int_t)total_b, "low",
                     *low);
}

enum MHD_Result health_get(api_req *r)
{
    store *st = api_store(r);
    if (!st) return MHD_YES;
    int64_t queued = 0, running = 0;
    if (store_job_count(st, STORE_JOB_QUEUED, &queued) != STORE_OK ||
        store_job_count(st, STORE_JOB_RUNNING, &running) != STORE_OK)
        return api_problem(r, MHD_HTTP_SERVICE_UNAVAILABLE, "the database does not answer: %s", store_errmsg(st));
    int low;
    json_t *disk = health_disk_json(r->srv, &low);
    return api_send_json(r, MHD_HTTP_OK,
                         json_pack("{s:s,s:s,s:o,s:{s:I,s:I},s:o}", "status", low ? "degraded" : "ok", "version",
                                   r->srv->cfg.version, "uptime_s", api_json_num(api_uptime_s(r->srv)), "jobs",
                                   "queued", (json_int_t)queued, "running", (json_int_t)running, "disk", disk));
}

enum MHD_Result health_openapi(api_req *r)
{
    return api_send_file(r, r->srv->cfg.openapi_path, "application/json", "no-cache");
}

/* A growable text buffer for the exposition. */
typedef struct { char *p; size_t len, cap; int oom; } health_text;

static void health_printf(health_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void health_printf(health_text *t, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || t->oom) return;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 2048;
        while (cap < t->len + (size_t)n + 1) cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) { t->oom = 1; return; }
        t->p = p, t->cap = cap;
    }
    memcpy(t->p + t->len, line, (size_t)n + 1);
    t->len += (size_t)n;
}

static void health_requests(health_text *t, const api_server *s)
{
    static const char *const cls[] = { "other", "1xx", "2xx", "3xx", "4xx", "5xx" };
    health_printf(t, "# HELP saed_http_requests_total HTTP requests answered, by status class.\n");
    health_printf(t, "# TYPE saed_http_requests_total counter\n");
    for (int i = 1; i <= 5; i++)
        health_printf(t, "saed_http_requests_total{code=\"%s\"} %llu\n", cls[i],
                      (unsigned long long)atomic_load(&((api_server *)s)->by_class[i]));
}

/* Jobs by state and summed samples/s; -1 on a store error. */
static int health_jobs(health_text *t, store *st)
{
    health_printf(t, "# HELP saed_jobs Jobs in the database, by state.\n# TYPE saed_jobs gauge\n");
    for (int s = 0; s < STORE_JOB_N_STATES; s++) {
        int64_t n = 0;
        if (store_job_count(st, (store_job_state)s, &n) != STORE_OK) return -1;
        health_printf(t, "saed_jobs{state=\"%s\"} %lld\n", store_job_state_name((store_job_state)s), (long long)n);
    }
    store_job *items = NULL;
    int n = 0;
    double sps = 0;
    if (store_job_list(st, STORE_JOB_RUNNING, 0, API_LIST_MAX, &items, &n) != STORE_OK) return -1;
    for (int i = 0; i < n; i++)
        if (items[i].samples_per_s > 0) sps += items[i].samples_per_s;
    store_job_list_free(items, n);
    health_printf(t, "# HELP saed_training_samples_per_second Training throughput summed over running jobs.\n");
    health_printf(t, "# TYPE saed_training_samples_per_second gauge\nsaed_training_samples_per_second %.6g\n", sps);
    return 0;
}

enum MHD_Result health_metrics(api_req *r)
{
    store *st = api_store(r);
    if (!st) return MHD_YES;
    health_text t = { 0 };
    health_requests(&t, r->srv);
    if (health_jobs(&t, st)) {
        free(t.p);
        return api_problem(r, MHD_HTTP_SERVICE_UNAVAILABLE, "the database does not answer: %s", store_errmsg(st));
    }
    uint64_t free_b, total_b;
    if (!health_disk(r->srv, &free_b, &total_b)) {
        health_printf(&t, "# HELP saed_disk_free_bytes Bytes free on the data directory's file system.\n");
        health_printf(&t, "# TYPE saed_disk_free_bytes gauge\nsaed_disk_free_bytes %llu\n",
                      (unsigned long long)free_b);
    }
    health_printf(&t, "# HELP saed_uptime_seconds Seconds since the daemon started.\n");
    health_printf(&t, "# TYPE saed_uptime_seconds gauge\nsaed_uptime_seconds %.3f\n", api_uptime_s(r->srv));
    if (t.oom || !t.p) {
        free(t.p);
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    return api_send_buffer(r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", t.p, t.len);
}
