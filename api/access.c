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
 * origin, sends a matching Origin. Tokens (--token-file) are not built yet. */
#include "internal.h"
#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
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

/* 1 when name (lower or upper case) is in the comma-separated list. */
static int access_in_list(const char *name, const char *list)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && !strncasecmp(p, name, n)) return 1;
        p = comma ? comma + 1 : NULL;
    }
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
    return access_in_list(name, s->cfg.allow_hosts);
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
    if (!strcmp(r->method, "GET") || !strcmp(r->method, "HEAD") || !strcmp(r->method, "OPTIONS")) return 0;
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if ((site && !strcasecmp(site, "cross-site")) || (origin && !access_same_origin(origin, host))) {
        api_problem(r, MHD_HTTP_FORBIDDEN, "a %s from another site's page (Origin '%.100s') is refused: a web page "
                    "must not drive this API from your browser; use the dashboard served by saed, or curl",
                    r->method, origin ? origin : "(none)");
        return -1;
    }
    return 0;
}
