/* api/access.c — which requests a web page on another site could make, refused
 * (API.md *Access*).
 *
 * DNS rebinding: a page on evil.example whose name is made to resolve to
 * 127.0.0.1 can read this daemon's replies with the user's browser, but its
 * requests carry "Host: evil.example". So a request is served only when its
 * Host names the daemon: an IP literal (the address it was reached at),
 * localhost, this machine's host name, the --listen host, or an --allow-host
 * name (e.g. a reverse proxy's); else 421 problem+json.
 *
 * Cross-site writes: a form or fetch from another site can POST (a
 * text/plain body needs no CORS preflight) and the browser sends it, with an
 * Origin header naming that site and Sec-Fetch-Site: cross-site. A write
 * (any method but GET, HEAD, OPTIONS) whose Origin is another authority than
 * its Host, is "null", or that says Sec-Fetch-Site: cross-site is refused
 * with 403. curl sends neither header and is unaffected; the dashboard, same
 * origin, sends a matching Origin.
 *
 * Tokens (--token-file FILE: one per line, "read:" or "write:" before it, no
 * prefix = write; blank and '#' lines skipped): every request then needs
 * "Authorization: Bearer TOKEN" (or, on a GET, ?access_token=TOKEN, which an
 * EventSource can send, RFC 6750 2.3), except GET /v1/health and the
 * dashboard's own files (GET outside /v1/ and /metrics), which hold no data.
 * None or an unknown one: 401 with WWW-Authenticate; a read token on a write:
 * 403. A token is compared with every configured one in time that depends
 * only on the lengths, never stopping at the first differing byte. Without a
 * token file the daemon listens only on loopback (127.0.0.0/8, ::1,
 * localhost): anything else would open the API to the network unguarded. */
#include "internal.h"
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The host part of a Host value ("name", "name:port", "[v6]:port") into out; 0, or -1 if malformed. */
static int access_host_part(const char *host, char *out, size_t n)
{
    const char *end;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        if (!close || (close[1] && close[1] != ':')) return -1;
        host++, end = close;
    } else {
        end = strchr(host, ':');
        if (!end) end = host + strlen(host);
        else if (strchr(end + 1, ':')) return -1;
    }
    size_t len = (size_t)(end - host);
    if (len && host[len - 1] == '.') len--; /* "localhost." is localhost */
    if (!len || len >= n) return -1;
    memcpy(out, host, len);
    out[len] = '\0';
    return 0;
}

/* 1 when name is one of the daemon's own names. */
static int access_host_ok(const api_server *s, const char *name)
{
    unsigned char addr[16];
    char me[256] = "";
    if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1) return 1;
    if (!strcasecmp(name, "localhost") || !strcasecmp(name, s->cfg.host)) return 1;
    if (gethostname(me, sizeof me - 1) == 0 && me[0] && !strcasecmp(name, me)) return 1;
    return api_list_has(s->cfg.allow_hosts, name, 1);
}

/* 1 when origin ("scheme://authority") names the same authority as host (the Host value). */
static int access_same_origin(const char *origin, const char *host)
{
    const char *sep = strstr(origin, "://");
    if (!sep || !host) return 0;
    const char *auth = sep + 3;
    size_t len = strcspn(auth, "/");
    return strlen(host) == len && !strncasecmp(auth, host, len);
}

/* ---- tokens ---- */

#define ACCESS_TOKEN_MAX 256 /* bytes of one token */

struct access_token {
    char token[ACCESS_TOKEN_MAX + 1];
    size_t len;
    int write;               /* 0: read only */
};

/* One line of the token file (trimmed) into t: 1 a token, 0 a blank or comment line, -1 malformed. */
static int access_parse_line(char *line, struct access_token *t)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        line[--n] = '\0';
    while (*line == ' ' || *line == '\t') line++;
    if (!*line || *line == '#') return 0;
    t->write = 1;
    if (!strncmp(line, "read:", 5)) line += 5, t->write = 0;
    else if (!strncmp(line, "write:", 6)) line += 6;
    t->len = strlen(line);
    if (!t->len || t->len > ACCESS_TOKEN_MAX) return -1;
    for (const char *p = line; *p; p++)
        if (*p < 0x21 || *p > 0x7e) return -1;
    memcpy(t->token, line, t->len + 1);
    return 1;
}

static int access_load_tokens(api_server *s, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "--token-file %s: %s", path, strerror(errno));
        return -1;
    }
    char line[ACCESS_TOKEN_MAX + 64];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        struct access_token t;
        lineno++;
        int got = access_parse_line(line, &t);
        if (got < 0) {
            snprintf(err, errlen, "--token-file %s, line %d: a token is 1 to %d printable characters without spaces, "
                     "optionally after read: or write:", path, lineno, ACCESS_TOKEN_MAX);
            rc = -1;
        } else if (got > 0) {
            struct access_token *grown = realloc(s->tokens, (size_t)(s->n_tokens + 1) * sizeof *grown);
            if (!grown) { snprintf(err, errlen, "--token-file: out of memory"); rc = -1; break; }
            s->tokens = grown;
            s->tokens[s->n_tokens++] = t;
        }
    }
    fclose(f);
    if (!rc && s->n_tokens == 0) {
        snprintf(err, errlen, "--token-file %s holds no token; put one per line (e.g. generate one with "
                 "`openssl rand -hex 32`)", path);
        rc = -1;
    }
    return rc;
}

/* 1 when host is a loopback name or address. */
static int access_loopback(const char *host)
{
    unsigned char a[16];
    if (!strcasecmp(host, "localhost")) return 1;
    if (inet_pton(AF_INET, host, a) == 1) return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1) return !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16);
    return 0;
}

int access_setup(api_server *s, char *err, size_t errlen)
{
    assert(s && err);
    if (s->cfg.token_file && s->cfg.token_file[0]) return access_load_tokens(s, s->cfg.token_file, err, errlen);
    if (access_loopback(s->cfg.host)) return 0;
    snprintf(err, errlen, "--listen %s:%d would serve the API to other machines without authentication: give "
             "--token-file FILE (one token per line) too, or listen on 127.0.0.1", s->cfg.host, s->cfg.port);
    return -1;
}

void access_free(api_server *s)
{
    if (!s) return;
    if (s->tokens) memset(s->tokens, 0, (size_t)s->n_tokens * sizeof *s->tokens);
    free(s->tokens);
    s->tokens = NULL, s->n_tokens = 0;
}

/* The configured token equal to (tok, len), or NULL; every token is compared over its whole length. */
static const struct access_token *access_find(const api_server *s, const char *tok, size_t len)
{
    const struct access_token *found = NULL;
    for (int i = 0; i < s->n_tokens; i++) {
        const struct access_token *t = &s->tokens[i];
        unsigned diff = (unsigned)(t->len != len);
        for (size_t k = 0; k < t->len; k++) diff |= (unsigned char)(t->token[k] ^ (k < len ? tok[k] : 0));
        if (!diff && !found) found = t;
    }
    return found;
}

/* 1 when the request needs no token: GET/HEAD of /v1/health or of the dashboard's files. */
static int access_open_path(const api_req *r)
{
    if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD")) return 0;
    if (!strcmp(r->url, "/v1/health")) return 1;
    return strncmp(r->url, "/v1/", 4) && strcmp(r->url, "/v1") && strcmp(r->url, "/metrics");
}

/* The request's token: "Authorization: Bearer X", else on a GET ?access_token=X. */
static const char *access_bearer(const api_req *r)
{
    const char *a = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (a && !strncasecmp(a, "Bearer ", 7)) {
        a += 7;
        while (*a == ' ') a++;
        return a;
    }
    if (a || (strcmp(r->method, "GET") && strcmp(r->method, "HEAD"))) return NULL;
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "access_token");
}

static int access_token_check(api_req *r, int write)
{
    const api_server *s = r->srv;
    if (!s->n_tokens || access_open_path(r)) return 0;
    const char *tok = access_bearer(r);
    const struct access_token *t = tok ? access_find(s, tok, strlen(tok)) : NULL;
    if (!t) {
        api_problem_hdr(r, MHD_HTTP_UNAUTHORIZED, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"saed\"",
                        "%s: send \"Authorization: Bearer TOKEN\" with a token from the daemon's --token-file",
                        tok ? "this token is not one of the daemon's" : "this daemon needs a token");
        return -1;
    }
    if (write && !t->write) {
        api_problem(r, MHD_HTTP_FORBIDDEN, "this token may only read; a %s needs a write token (a line of the "
                    "--token-file without the read: prefix)", r->method);
        return -1;
    }
    return 0;
}

int access_check(api_req *r)
{
    assert(r && r->conn && r->method);
    struct MHD_Connection *c = r->conn;
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    char name[256];
    if (host && (access_host_part(host, name, sizeof name) || !access_host_ok(r->srv, name))) {
        api_problem(r, MHD_HTTP_MISDIRECTED_REQUEST, "Host '%.100s' is not a name of this daemon; reach it by its "
                    "address or localhost, or start it with --allow-host NAME (e.g. a reverse proxy's name)", host);
        return -1;
    }
    int write = strcmp(r->method, "GET") && strcmp(r->method, "HEAD") && strcmp(r->method, "OPTIONS");
    if (!write) return access_token_check(r, 0);
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if ((site && !strcasecmp(site, "cross-site")) || (origin && !access_same_origin(origin, host))) {
        api_problem(r, MHD_HTTP_FORBIDDEN, "a %s from another site's page (Origin '%.100s') is refused: a web page "
                    "must not drive this API from your browser; use the dashboard served by saed, or curl",
                    r->method, origin ? origin : "(none)");
        return -1;
    }
    return access_token_check(r, 1);
}
