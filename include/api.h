/* api — the HTTP/JSON server (libmicrohttpd + jansson).
 *
 * Routes requests to one file per resource (datasets.c, jobs.c, saes.c,
 * health.c, events.c, web.c); every error leaves as application/problem+json.
 * Handlers only read and write SQLite through a pool of store handles and
 * return: they never wait on training. The few that compute on the HTTP
 * thread (encode.c, a group's geometry in groups.c, Jaccard in
 * saes_analysis.c) are bounded per request and answer 422 beyond. Per-request state is freed in the
 * completion callback. The contract is docs/API.md and openapi.json. */
#ifndef SAED_API_H
#define SAED_API_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *host;       /* listen address, e.g. "127.0.0.1" */
    int port;               /* 0 = pick a free port (tests); see api_port() */
    const char *db_path;    /* SQLite file */
    const char *data_dir;   /* artifacts live under it */
    const char *import_dir; /* npy datasets by path must lie under it; NULL = refuse */
    const char *web_dir;    /* static dashboard files served at / */
    const char *openapi_path; /* openapi.json served at /v1/openapi.json */
    size_t max_body;        /* request body cap in bytes (413 beyond) */
    uint64_t max_upload;    /* cap of one streamed upload (.npy, labels) in bytes; 0 = 16 GiB */
    size_t max_job_bytes;   /* memory limit for one job (422 beyond) */
    int threads;            /* MHD's event-loop threads; 0 = 2 */
    const char *allow_hosts; /* more names the Host header may give, comma-separated (--allow-host); NULL none */
    const char *token_file; /* --token-file: bearer tokens, one per line ("read:" / "write:" prefix); NULL = no
                             * tokens, and then only a loopback host may be listened on */
    int max_connections;    /* connections open at once (MHD's limit); 0 = 256. Past 7/8 of it only
                             * GET /v1/health and /metrics are served, anything else is a 503 */
    int max_client_connections; /* per client address (MHD closes more at once); 0 = 96 */
    int idle_timeout_s;     /* a connection silent this long is closed; 0 = 30 */
    size_t max_reply_bytes; /* memory all replies may hold at once while being sent (503 beyond); 0 = 1 GiB */
    const char *version;
} api_config;

typedef struct api_server api_server;

/* Starts serving on its own threads. NULL with err set on failure. */
api_server *api_start(const api_config *cfg, char *err, size_t errlen);
int api_port(const api_server *s);  /* the bound port */
/* Stops accepting and closes every connection, then frees. */
void api_stop(api_server *s);

#endif
