/* config — the daemon's settings: defaults, then the config file (--config),
 * then command-line flags, each overriding the last. The file holds
 * "key = value" lines with the flags' names (listen, data-dir, workers, ...);
 * '#' starts a comment. This is the one piece of global configuration. */
#ifndef SAED_CONFIG_H
#define SAED_CONFIG_H
#include <limits.h>
#include <stddef.h>
#include "log.h"

#define SAED_VERSION "0.1.0"

typedef struct {
    char host[256];            /* listen address; default 127.0.0.1 */
    char allow_hosts[1024];    /* --allow-host names (repeatable), comma-separated; "" = none */
    char token_file[PATH_MAX]; /* --token-file: bearer tokens; "" = none (then loopback only) */
    int port;                  /* default 8321; 0 picks a free port */
    char data_dir[PATH_MAX];   /* default ./var; holds saed.db and artifacts */
    char import_dir[PATH_MAX]; /* npy datasets by path must lie under it; "" = none */
    char web_dir[PATH_MAX];    /* dashboard files; default <exe>/../web */
    char openapi_path[PATH_MAX]; /* default <exe>/../openapi.json */
    int workers;               /* default 1 */
    int blas_threads;          /* 0 = cores / workers */
    int api_threads;           /* the HTTP server's event-loop threads; default 2 */
    int job_nice;              /* niceness of job threads (workers, BLAS); default 10, 0 = as the API */
    log_level level;           /* default info */
    size_t max_body;           /* bytes of a JSON request body; default 1 MiB */
    size_t max_job_mb;         /* memory limit of one job; default 8192 */
    size_t max_upload_mb;      /* largest streamed upload (.npy, labels); default 16384 */
    int max_connections;       /* connections open at once; default 256, the last 1/8 kept for health */
    int max_client_connections; /* connections one client address may hold; default 96 */
    int idle_timeout_s;        /* a connection silent this long is closed; default 30 */
    size_t max_reply_mb;       /* memory all replies being sent may hold at once; default 1024 */
} saed_config;

/* Parses argv over the defaults. Returns 0 to run, 1 if --help/--version was
 * handled (text written to `out`), -1 with err set on bad input. */
int config_parse(saed_config *c, int argc, char **argv, char *out, size_t outlen, char *err, size_t errlen);

#endif
