/* api/web.c — the dashboard: static files from web_dir.
 *
 * GET / serves index.html; any other GET outside /v1 and /metrics maps to a
 * file under web_dir. Paths are checked before touching the disk: only
 * [A-Za-z0-9._-/] characters, no empty, "." or ".." segment, so nothing
 * outside web_dir can be named. Content-Type comes from the extension.
 * Everything is sent with no-cache: the dashboard is ES modules whose names
 * carry no content hash, and a browser that kept some modules from before an
 * upgrade and fetched others after it would run a mix of two versions. */
#include "internal.h"
#include <stdio.h>
#include <string.h>

static const struct { const char *ext, *type; } web_types[] = {
    { ".html", "text/html; charset=utf-8" },
    { ".js", "text/javascript; charset=utf-8" },
    { ".mjs", "text/javascript; charset=utf-8" },
    { ".css", "text/css; charset=utf-8" },
    { ".json", "application/json" },
    { ".svg", "image/svg+xml" },
    { ".png", "image/png" },
    { ".ico", "image/x-icon" },
    { ".txt", "text/plain; charset=utf-8" },
    { ".map", "application/json" },
    { ".woff2", "font/woff2" },
};

static const char *web_content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof web_types / sizeof web_types[0]; i++)
            if (!strcmp(dot, web_types[i].ext)) return web_types[i].type;
    return "application/octet-stream";
}

/* 1 if url (starting with '/') names a file inside web_dir. */
static int web_path_ok(const char *url)
{
    for (const char *c = url; *c; c++) {
        int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                 *c == '.' || *c == '_' || *c == '-' || *c == '/';
        if (!ok) return 0;
    }
    for (const char *seg = url; *seg == '/'; ) {
        seg++;
        size_t len = strcspn(seg, "/");
        if (len == 0 || (len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.')) return 0;
        seg += len;
    }
    return 1;
}

static enum MHD_Result web_send(api_req *r, const char *rel)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s%s", r->srv->cfg.web_dir, rel);
    if (n < 0 || (size_t)n >= sizeof path || !web_path_ok(rel))
        return api_problem(r, MHD_HTTP_NOT_FOUND, "no resource at %s", r->url);
    const char *type = web_content_type(rel);
    return api_send_file(r, path, type, "no-cache");
}

enum MHD_Result web_index(api_req *r) { return web_send(r, "/index.html"); }

enum MHD_Result web_static(api_req *r) { return web_send(r, r->url); }
