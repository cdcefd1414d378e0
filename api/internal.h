/* api/internal.h — what the api sources share and nothing outside sees.
 *
 * server.c owns the MHD daemon, the route table, the store-handle pool and
 * the request counters. A request is an api_req: the route's {id} segments
 * parsed, the body read (capped), and a lazily acquired store handle that is
 * returned to the pool as soon as the handler has queued its response.
 * http.c holds the reply helpers; every reply goes through api_queue() so
 * the status-class counters see it. One file per resource adds handlers:
 * a handler gets the request and returns the MHD result of queueing. */
#ifndef SAED_API_INTERNAL_H
#define SAED_API_INTERNAL_H
#include "api.h"
#include "spec.h"
#include "store.h"
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define API_MAX_IDS 4         /* {id}/{n} segments in one route */
#define API_LIST_DEFAULT 50   /* ?limit= default for lists */
#define API_LIST_MAX 1000     /* ?limit= maximum for lists */
#define API_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

/* The caps a client can run into (server.c, events.c, http.c), and requests libmicrohttpd refused
 * itself (MALFORMED); each is logged through api_cap_log. */
typedef enum { API_CAP_CLIENT, API_CAP_TOTAL, API_CAP_STREAMS, API_CAP_REPLY, API_CAP_MALFORMED, API_CAP_N } api_cap;

struct api_server {
    api_config cfg;                 /* strings point into the strdup'd copies below */
    char *host, *db_path, *data_dir, *import_dir, *web_dir, *openapi_path, *version, *allow_hosts;
    struct MHD_Daemon *mhd;
    int port;                       /* bound port */
    atomic_int stopping;            /* set first thing in api_stop(); SSE streams end on it */
    struct timespec started;        /* CLOCK_MONOTONIC at api_start() */
    pthread_mutex_t pool_mu;        /* guards pool[] */
    store **pool;                   /* (pool_cap) idle store handles, pool_n of them valid */
    int pool_n, pool_cap;
    atomic_ullong by_class[6];      /* responses by status class: [1]=1xx .. [5]=5xx, [0]=other */
    /* SSE streams waiting for news (events.c): suspended connections the ticker resumes */
    pthread_mutex_t sse_mu;         /* guards sse_sleeping and the suspend/resume calls; lives as s */
    pthread_cond_t sse_cv;          /* wakes the ticker at stop */
    struct events_stream *sse_sleeping; /* a list through events_stream.next */
    pthread_t sse_ticker;
    int sse_started;                /* the ticker runs */
    atomic_int sse_open;            /* event streams open (at most API_SSE_MAX, events.c) */
    struct jobs_cache *jobs_cache;  /* GET /v1/jobs/{id} bodies */
    struct access_token *tokens;    /* (n_tokens) from --token-file; NULL = no tokens (access.c) */
    int n_tokens;
    atomic_int conns_open;          /* connections MHD holds now (its connection notifications) */
    atomic_ullong reply_bytes;      /* memory held by replies being made or sent (at most cfg.max_reply_bytes) */
    pthread_mutex_t cap_mu;         /* guards the two below */
    double cap_logged_at[API_CAP_N]; /* CLOCK_MONOTONIC seconds of each cap's last log line; 0 = never */
    long cap_hits[API_CAP_N];       /* hits since that line */
};

/* A streamed request body (uploads, datasets_upload.c): chosen on the first
 * call by datasets_upload_open(); the body's chunks go to feed() instead of
 * the capped in-memory body, and free() runs from the completion callback. */
typedef struct api_sink {
    void (*feed)(struct api_sink *k, const char *data, size_t n);
    void (*free)(struct api_sink *k);
} api_sink;

/* GET /v1/jobs/{id} bodies reused while the row is unchanged (jobs_cache.c). */
typedef struct jobs_cache jobs_cache;
jobs_cache *jobs_cache_create(void);
void jobs_cache_free(jobs_cache *c);
/* A malloc'd copy of the body cached for a row equal to j, or NULL. */
char *jobs_cache_get(jobs_cache *c, const store_job *j);
void jobs_cache_put(jobs_cache *c, const store_job *j, const char *body);

typedef struct api_req {
    api_server *srv;
    struct MHD_Connection *conn;
    const char *method;             /* "GET", ... (HEAD is routed as GET) */
    const char *url;                /* path, already percent-decoded by MHD */
    int64_t ids[API_MAX_IDS];       /* the route's {id}/{n} segments, in order */
    int n_ids;
    char *body;                     /* (body_len + 1) request body, NUL-terminated; NULL if none */
    size_t body_len, body_cap;
    int body_too_large;             /* over max_body: the rest was discarded */
    store *st;                      /* acquired by api_store(), returned after the handler */
    unsigned status;                /* status of the queued response, 0 before */
    api_sink *sink;                 /* streamed body instead of body[], or NULL */
} api_req;

typedef enum MHD_Result (*api_handler)(api_req *r);

/* server.c: store handles. api_store() returns NULL after replying 503. */
store *api_store(api_req *r);
store *api_pool_get(api_server *s, char *err, size_t errlen);
void api_pool_put(api_server *s, store *st);
double api_uptime_s(const api_server *s);

/* http.c: a cap was hit: a warning (fmt, then how often it was hit since the last line) at most once per cap
 * every API_CAP_LOG_S seconds, so a flood cannot flood the log. */
void api_cap_log(api_server *s, api_cap cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* http.c: replies. Every function queues exactly one response; every
 * problem+json reply goes through api_problem* (5xx ones are logged there). */
enum MHD_Result api_queue(api_req *r, unsigned status, struct MHD_Response *resp);
enum MHD_Result api_send_json(api_req *r, unsigned status, json_t *body); /* steals body */
enum MHD_Result api_send_text(api_req *r, unsigned status, const char *content_type, const char *text);
enum MHD_Result api_send_owned_text(api_req *r, unsigned status, const char *content_type, char *text); /* frees text */
/* Takes ownership of buf (malloc'd). */
enum MHD_Result api_send_buffer(api_req *r, unsigned status, const char *content_type, void *buf, size_t len);
enum MHD_Result api_send_file(api_req *r, const char *path, const char *content_type, const char *cache_control);
enum MHD_Result api_problem(api_req *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 1 when name is an entry of the comma-separated list (NULL: empty); nocase: ASCII case ignored. */
int api_list_has(const char *list, const char *name, int nocase);
/* A problem carrying one more response header (e.g. WWW-Authenticate on a 401). */
enum MHD_Result api_problem_hdr(api_req *r, unsigned status, const char *header, const char *value, const char *fmt,
                                ...) __attribute__((format(printf, 5, 6)));
/* 405 naming the methods allowed (Allow: allow). */
enum MHD_Result api_problem_allow(api_req *r, const char *allow);
/* 503 for a full daemon: Retry-After: retry_s and Connection: close (the slot is given back). */
enum MHD_Result api_problem_busy(api_req *r, const char *retry_s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A problem with "errors": [{field, message}]; status from errs. */
enum MHD_Result api_problem_fields(api_req *r, const spec_errors *errs, const char *detail);
/* Host and Origin of the request against the daemon's own names, then its token when there are tokens
 * (api/access.c): 0 when it may be served, else -1 after replying 421, 403 or 401. Called before
 * anything else reads the request. */
int access_check(api_req *r);
/* --token-file into s->tokens (access.c), and the rule that without tokens only a loopback address is
 * listened on. 0, or -1 with err set (the daemon does not start). */
int access_setup(api_server *s, char *err, size_t errlen);
void access_free(api_server *s);
/* 400/422 naming one field. */
enum MHD_Result api_problem_field(api_req *r, unsigned status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
enum MHD_Result api_created(api_req *r, unsigned status, const char *location, json_t *body);

/* The reply-memory budget (--max-reply-mb): whatever a reply holds in memory until MHD has sent it (its
 * buffer, the generator behind streamed rows) is reserved first. 0, or -1 after replying: 503 with
 * Retry-After while other replies hold the budget, 422 when bytes alone is more than all of it. */
int api_reply_reserve(api_req *r, size_t bytes);
void api_reply_release(api_server *s, size_t bytes);
/* 200 with buf (malloc'd, taken) as the body; `held` reserved bytes are released when it has been sent. */
enum MHD_Result api_send_held(api_req *r, const char *content_type, void *buf, size_t len, size_t held);
/* Rows [first, first + n) of a streamed .npy reply into out (n rows of shape[1..] floats). 0 or -1. */
typedef int (*api_rows_fill)(void *ctx, int64_t first, int n, float *out);
/* 200 with a '<f4' .npy of shape made a chunk of rows (about 1 MiB) at a time as the client reads, so a slow
 * client holds one chunk, not the array; ctx (freed by free_ctx at the end, also on failure) and `held`
 * reserved bytes are kept until then. */
enum MHD_Result api_send_npy_rows(api_req *r, const int64_t *shape, int ndim, api_rows_fill fill, void *ctx,
                                  void (*free_ctx)(void *ctx), size_t held);

/* A malloc'd .npy buffer: header for (descr, shape) followed by room for the
 * data; *data_off is where the data starts. NULL if it does not fit in memory. */
char *api_npy_alloc(const char *descr, const int64_t *shape, int ndim, size_t *data_off, size_t *total);

/* Query parameters. 1 = present and valid, 0 = absent (out untouched), or
 * -1 after replying 400 naming the parameter. */
int api_query_int(api_req *r, const char *name, long long min, long long max, long long *out);
/* ?limit=&after= with the list defaults; -1 after replying. */
int api_query_page(api_req *r, int *limit, int64_t *after);

/* The request body as a JSON object. NULL after replying 400 (or 413). */
json_t *api_body_object(api_req *r);
/* Pure: parses buf[0..len) as one JSON object. NULL with a message in detail. */
json_t *api_parse_object(const char *buf, size_t len, char *detail, size_t detaillen);

/* JSON helpers. */
json_t *api_json_num(double v);              /* null for NaN/Inf */
json_t *api_json_time(const char *rfc3339);  /* null for "" */
json_t *api_json_stored(const char *text);   /* parsed stored JSON; null if NULL or unparsable */
json_t *api_list(json_t *items, int more, int64_t last_id); /* {"items", "next"} */

/* The resources. */
enum MHD_Result datasets_list(api_req *r);
enum MHD_Result datasets_create(api_req *r);
enum MHD_Result datasets_get(api_req *r);
enum MHD_Result datasets_delete(api_req *r);
enum MHD_Result datasets_rows(api_req *r);
enum MHD_Result datasets_planes(api_req *r);
enum MHD_Result datasets_labels(api_req *r);
enum MHD_Result datasets_upload_labels(api_req *r);   /* PUT .../labels, streamed */
/* First call of a request: 1 if it is a streamed upload (POST /v1/datasets?kind=,
 * PUT /v1/datasets/{id}/labels) and was taken (r->sink set, or a reply
 * queued at once, e.g. 413 from Content-Length); 0 for an ordinary request. */
int datasets_upload_open(api_req *r);
/* The end of a streamed POST /v1/saes (a tar body): 0 with the staging directory, now the caller's to
 * rename or remove (files_remove_tree), in dir and the staged body in file; or -1 after replying the
 * upload's error (413 over --max-upload-mb, 507 disk full, ...). */
int datasets_upload_take(api_req *r, char *dir, size_t dirlen, char *file, size_t filelen);
/* At start-up: removes staging directories (data_dir/datasets/.staging-*)
 * untouched for an hour, i.e. left by a crash. Best effort. */
void datasets_staging_sweep(const api_server *s);

enum MHD_Result jobs_list(api_req *r);
enum MHD_Result jobs_create(api_req *r);
enum MHD_Result jobs_get(api_req *r);
enum MHD_Result jobs_delete(api_req *r);
enum MHD_Result jobs_cancel(api_req *r);
enum MHD_Result jobs_metrics(api_req *r);
json_t *jobs_object(const store_job *j);      /* the API's job object */
/* Loads job r->ids[0]; replies 404/500 and returns -1 if it cannot. */
int jobs_load(api_req *r, store_job *j);
/* jobs_groupspace.c: a groupspace job's positions and groups */
enum MHD_Result jobs_groupspace_positions(api_req *r);
enum MHD_Result jobs_groupspace_groups(api_req *r);

enum MHD_Result events_job(api_req *r);
/* The ticker that wakes sleeping SSE streams; events_stop resumes them all and joins it
 * (after `stopping` is set, before MHD_stop_daemon). */
int events_start(api_server *s, char *err, size_t errlen);
void events_stop(api_server *s);

enum MHD_Result saes_list(api_req *r);
enum MHD_Result saes_get(api_req *r);
enum MHD_Result saes_decoder(api_req *r);
enum MHD_Result saes_encoder(api_req *r);
enum MHD_Result saes_b_enc(api_req *r);
enum MHD_Result saes_b_dec(api_req *r);
enum MHD_Result saes_safetensors(api_req *r);
enum MHD_Result saes_cfg(api_req *r);
/* api/saes_saelens.c: GET /v1/saes/{id}/saelens.tar and POST /v1/saes (import, a tar body). */
enum MHD_Result saes_saelens_tar(api_req *r);
enum MHD_Result saes_import(api_req *r);
json_t *saes_object(const store_sae *s); /* the API's SAE object (saes.c) */
/* Loads SAE r->ids[0]; replies 404/500 and returns -1 if it cannot (saes.c). */
int saes_load(api_req *r, store_sae *s);

/* Analysis (api/saes_analysis.c, groups.c, encode.c, compare.c, analyses.c). */
enum MHD_Result saes_analysis_get(api_req *r);          /* GET /v1/saes/{id}/analysis */
enum MHD_Result saes_analysis_latents(api_req *r);
enum MHD_Result saes_analysis_latent(api_req *r);
enum MHD_Result saes_analysis_jaccard(api_req *r);
enum MHD_Result saes_analysis_groups(api_req *r);
enum MHD_Result saes_analysis_recovery(api_req *r);
enum MHD_Result groups_get(api_req *r);
enum MHD_Result groups_plane(api_req *r);
enum MHD_Result groups_projection(api_req *r);
enum MHD_Result encode_post(api_req *r);
/* The most rows one POST .../encode may send to an SAE of this shape (its
 * per-request work budget, encode.c); 0 when even reading its weights is
 * over it. */
int encode_max_rows(int n_latents, int dim);
enum MHD_Result compare_get(api_req *r);
enum MHD_Result analyses_get(api_req *r);
enum MHD_Result analyses_points(api_req *r);
enum MHD_Result analyses_components(api_req *r);
enum MHD_Result analyses_mean(api_req *r);
/* SAE r->ids[0] and its latest analysis; -1 after replying 404, or 409
 * ("run an analyze job first") when it has none. a may be NULL (SAE only). */
int saes_analysis_load(api_req *r, store_sae *s, store_sae_analysis *a);
/* ?name=1,2,3: up to cap integers in [min, max] into out; 1 present, 0 absent,
 * -1 after replying (400 syntax or count, 422 out of range). */
int saes_analysis_query_list(api_req *r, const char *name, int64_t min, int64_t max, int cap, int64_t *out, int *n);
json_t *saes_analysis_group_item(const store_group *g); /* {"group","members","density",...} */

enum MHD_Result health_get(api_req *r);
enum MHD_Result health_openapi(api_req *r);
enum MHD_Result health_metrics(api_req *r);

enum MHD_Result web_index(api_req *r);
enum MHD_Result web_static(api_req *r);       /* any GET outside /v1 and /metrics */

#endif
