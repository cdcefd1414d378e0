/* config — defaults, config file, flags (in that order of precedence). */
#include "config.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libgen.h>

static const char config_usage[] =
    "usage: saed [options]\n"
    "  --listen HOST:PORT   address to serve on (default 127.0.0.1:8321; port 0 picks a free one)\n"
    "  --allow-host NAME    another name the Host header may give (e.g. a reverse proxy's; repeatable);\n"
    "                       IP addresses, localhost and this machine's name are always served\n"
    "  --token-file FILE    bearer tokens, one per line, \"read:\" before a read-only one; every request\n"
    "                       but GET /v1/health then needs one (without it: loopback addresses only)\n"
    "  --data-dir DIR       database and artifacts (default ./var; saed.db inside)\n"
    "  --workers N          training jobs run in parallel (default 1)\n"
    "  --blas-threads N     threads per worker: its jobs' pool, BLAS single-threaded inside it\n"
    "                       (default cores / workers)\n"
    "  --api-threads N      the HTTP server's event-loop threads (default 2)\n"
    "  --job-nice N         niceness 0-19 of job threads, so the API answers at once while jobs\n"
    "                       use every core (default 10; 0 = same priority as the API)\n"
    "  --import-dir DIR     directory npy datasets may be imported from by path\n"
    "  --web-dir DIR        dashboard files (default: web/ beside the build)\n"
    "  --openapi FILE       openapi.json to serve (default: beside the build)\n"
    "  --max-body BYTES     largest JSON request body (default 1048576)\n"
    "  --max-job-mb MB      memory limit of one job (default 8192)\n"
    "  --max-upload-mb MB   largest uploaded .npy or labels body (default 16384)\n"
    "  --max-connections N  connections open at once (default 256); the last eighth is kept for\n"
    "                       GET /v1/health and /metrics, other requests get 503 there\n"
    "  --max-client-connections N  connections one client address may hold (default 96)\n"
    "  --idle-timeout S     close a connection silent for S seconds, e.g. a half-sent request (default 30)\n"
    "  --max-reply-mb MB    memory all replies being sent may hold at once; 503 beyond (default 1024)\n"
    "  --log-level LEVEL    error | warn | info | debug (default info)\n"
    "  --config FILE        read 'key = value' lines with the option names above\n"
    "  --help, --version\n";

static void config_defaults(saed_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = 8321;
    snprintf(c->data_dir, sizeof c->data_dir, "./var");
    c->workers = 1;
    c->job_nice = 10;
    c->api_threads = 2;
    c->level = LOG_LEVEL_INFO;
    c->max_body = 1 << 20;
    c->max_job_mb = 8192;
    c->max_upload_mb = 16384;
    c->max_connections = 256;
    c->max_client_connections = 96;
    c->idle_timeout_s = 30;
    c->max_reply_mb = 1024;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        const char *dir = dirname(exe);
        snprintf(c->web_dir, sizeof c->web_dir, "%s/../web", dir);
        snprintf(c->openapi_path, sizeof c->openapi_path, "%s/../openapi.json", dir);
    } else {
        snprintf(c->web_dir, sizeof c->web_dir, "./web");
        snprintf(c->openapi_path, sizeof c->openapi_path, "./openapi.json");
    }
}

static int config_int(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

static int config_listen(saed_config *c, const char *v, char *err, size_t errlen)
{
    const char *colon = strrchr(v, ':');
    long port;
    if (!colon || colon == v || (size_t)(colon - v) >= sizeof c->host || config_int(colon + 1, 0, 65535, &port)) {
        snprintf(err, errlen, "--listen wants HOST:PORT (e.g. 127.0.0.1:8321), got '%s'", v);
        return -1;
    }
    memcpy(c->host, v, (size_t)(colon - v));
    c->host[colon - v] = '\0';
    c->port = (int)port;
    return 0;
}

/* --allow-host NAME, repeatable: appended to c->allow_hosts. */
static int config_allow_host(saed_config *c, const char *v, char *err, size_t errlen)
{
    size_t used = strlen(c->allow_hosts);
    if (!*v || strchr(v, ',') || strchr(v, ':') || used + strlen(v) + 2 > sizeof c->allow_hosts) {
        snprintf(err, errlen, "--allow-host wants one host name without a port (e.g. saed.example.org), got '%s'",
                 v);
        return -1;
    }
    snprintf(c->allow_hosts + used, sizeof c->allow_hosts - used, "%s%s", used ? "," : "", v);
    return 0;
}

static int config_path(char *dst, size_t cap, const char *key, const char *v, char *err, size_t errlen)
{
    if (strlen(v) >= cap) { snprintf(err, errlen, "--%s: path too long", key); return -1; }
    snprintf(dst, cap, "%s", v);
    return 0;
}

/* Applies one option (key without dashes). */
static int config_set(saed_config *c, const char *key, const char *v, char *err, size_t errlen)
{
    long x;
    if (!strcmp(key, "listen")) return config_listen(c, v, err, errlen);
    if (!strcmp(key, "allow-host")) return config_allow_host(c, v, err, errlen);
    if (!strcmp(key, "data-dir")) return config_path(c->data_dir, sizeof c->data_dir, key, v, err, errlen);
    if (!strcmp(key, "token-file")) return config_path(c->token_file, sizeof c->token_file, key, v, err, errlen);
    if (!strcmp(key, "import-dir")) return config_path(c->import_dir, sizeof c->import_dir, key, v, err, errlen);
    if (!strcmp(key, "web-dir")) return config_path(c->web_dir, sizeof c->web_dir, key, v, err, errlen);
    if (!strcmp(key, "openapi")) return config_path(c->openapi_path, sizeof c->openapi_path, key, v, err, errlen);
    if (!strcmp(key, "log-level")) {
        if (log_parse_level(v, &c->level) == 0) return 0;
        snprintf(err, errlen, "--log-level wants error, warn, info or debug, got '%s'", v);
        return -1;
    }
    struct { const char *name; long lo, hi; } ints[] = {
        { "workers", 1, 64 }, { "blas-threads", 0, 256 },
        { "max-body", 1024, 1L << 30 }, { "max-job-mb", 1, 1L << 24 },
        { "max-upload-mb", 1, 1L << 30 }, { "job-nice", 0, 19 },
        { "api-threads", 1, 64 }, { "max-connections", 16, 65536 },
        { "max-client-connections", 1, 65536 }, { "idle-timeout", 3, 3600 },
        { "max-reply-mb", 16, 1L << 24 },
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(key, ints[i].name)) continue;
        if (config_int(v, ints[i].lo, ints[i].hi, &x)) {
            snprintf(err, errlen, "--%s wants an integer in [%ld, %ld], got '%s'", key, ints[i].lo, ints[i].hi, v);
            return -1;
        }
        if (i == 0) c->workers = (int)x;
        else if (i == 1) c->blas_threads = (int)x;
        else if (i == 2) c->max_body = (size_t)x;
        else if (i == 3) c->max_job_mb = (size_t)x;
        else if (i == 4) c->max_upload_mb = (size_t)x;
        else if (i == 5) c->job_nice = (int)x;
        else if (i == 6) c->api_threads = (int)x;
        else if (i == 7) c->max_connections = (int)x;
        else if (i == 8) c->max_client_connections = (int)x;
        else if (i == 9) c->idle_timeout_s = (int)x;
        else c->max_reply_mb = (size_t)x;
        return 0;
    }
    snprintf(err, errlen, "unknown option '%s' (see saed --help)", key);
    return -1;
}

static char *config_trim(char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) *--e = '\0';
    return s;
}

static int config_load_file(saed_config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) { snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(errno)); return -1; }
    char line[PATH_MAX + 64], msg[512];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *s = config_trim(line), *eq = strchr(s, '=');
        if (!*s) continue;
        if (!eq) { snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno); rc = -1; break; }
        *eq = '\0';
        if (config_set(c, config_trim(s), config_trim(eq + 1), msg, sizeof msg)) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
            rc = -1;
        }
    }
    fclose(f);
    return rc;
}

/* Finds --config first so that flags override the file wherever they stand. */
static int config_find_file(int argc, char **argv, const char **path, char *err, size_t errlen)
{
    *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config")) continue;
        if (i + 1 >= argc) { snprintf(err, errlen, "--config needs a file name"); return -1; }
        *path = argv[i + 1];
    }
    return 0;
}

int config_parse(saed_config *c, int argc, char **argv, char *out, size_t outlen, char *err, size_t errlen)
{
    const char *file;
    config_defaults(c);
    if (config_find_file(argc, argv, &file, err, errlen)) return -1;
    if (file && config_load_file(c, file, err, errlen)) return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { snprintf(out, outlen, "%s", config_usage); return 1; }
        if (!strcmp(a, "--version")) { snprintf(out, outlen, "saed %s\n", SAED_VERSION); return 1; }
        if (strncmp(a, "--", 2)) { snprintf(err, errlen, "unexpected argument '%s' (see saed --help)", a); return -1; }
        const char *key = a + 2, *eq = strchr(key, '=');
        char name[64];
        const char *val;
        if (eq) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - key), key);
            val = eq + 1;
        } else {
            if (i + 1 >= argc) { snprintf(err, errlen, "%s needs a value (see saed --help)", a); return -1; }
            snprintf(name, sizeof name, "%s", key);
            val = argv[++i];
        }
        if (!strcmp(name, "config")) continue;
        if (config_set(c, name, val, err, errlen)) return -1;
    }
    return 0;
}
