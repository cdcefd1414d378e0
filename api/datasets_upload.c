/* api/datasets_upload.c — streamed request bodies: a .npy uploaded with
 * POST /v1/datasets?kind=npy&name=X, the labels of an npy dataset with
 * PUT /v1/datasets/{id}/labels, and an SAE folder as a tar with POST
 * /v1/saes (Content-Type application/x-tar), whose staged file and staging
 * directory api/saes_saelens.c takes over (datasets_upload_take).
 *
 * server.c asks datasets_upload_open() on the first call of every request;
 * for these two it returns a sink, and each chunk of the body goes straight
 * to a file in a fresh staging directory (datasets_int.h) instead of the
 * capped in-memory body, so nothing is ever held whole. A .npy chunk also
 * passes through npyfile_stream_feed, which checks the header and every
 * value as it arrives. The cap is api_config.max_upload (--max-upload-mb),
 * checked against Content-Length at once and against the bytes counted as
 * they arrive (chunked bodies). Byte counts are uint64_t throughout.
 *
 * Errors found early (bad query, unknown dataset, Content-Length over the
 * cap) are answered on the first call; errors in the body are remembered,
 * the staged file is removed at once, the rest of the body is discarded
 * and the error is answered when the body has ended. At the end a good
 * upload is fsynced, and the staging directory becomes datasets/{id}
 * (labels: the file is renamed to datasets/{id}/labels.txt). The sink's
 * free(), run from MHD's completion callback, removes whatever is left. */
#include "datasets_int.h"
#include "npyfile.h"
#include "utf8.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum { UPLOAD_NPY, UPLOAD_LABELS, UPLOAD_SAE };

typedef struct {
    api_sink base;            /* first, so an api_sink * is an upload_sink * */
    int what;                 /* UPLOAD_NPY, UPLOAD_LABELS or UPLOAD_SAE */
    int fd;                   /* the staged file, -1 once closed */
    datasets_stage stage;
    char file[PATH_MAX + 32]; /* stage.dir/data.npy or stage.dir/labels.txt */
    npyfile_stream *vs;       /* the .npy validator (UPLOAD_NPY), else NULL */
    uint64_t bytes, cap;      /* body bytes so far; the limit */
    unsigned status;          /* the first error's status, 0 while all is well */
    char err[768];            /* the first error */
    char name[256];           /* ?name= */
    char file_name[256];      /* ?file= (the original file name, optional) */
    int64_t id;               /* labels: the dataset */
} upload_sink;

static const char *const upload_query_keys[] = { "kind", "name", "file", NULL };

/* ---- the sink ---- */

__attribute__((format(printf, 3, 4)))
static void upload_error(upload_sink *u, unsigned status, const char *fmt, ...)
{
    if (u->status) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->err, sizeof u->err, fmt, ap);
    va_end(ap);
    u->status = status;
    if (u->fd >= 0) close(u->fd);
    u->fd = -1;
    unlink(u->file); /* free the disk now; the body's rest is discarded */
}

static int upload_write(int fd, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

static void upload_feed(api_sink *k, const char *data, size_t n)
{
    upload_sink *u = (upload_sink *)k;
    char msg[512];
    if (u->status) return;
    if ((uint64_t)n > u->cap - u->bytes) {
        upload_error(u, MHD_HTTP_CONTENT_TOO_LARGE, "the upload is larger than the %llu-MiB limit: start saed with a "
                     "larger --max-upload-mb", (unsigned long long)(u->cap >> 20));
        return;
    }
    u->bytes += n;
    if (u->vs && npyfile_stream_feed(u->vs, data, n, msg, sizeof msg)) {
        upload_error(u, MHD_HTTP_UNPROCESSABLE_CONTENT, "%s", msg);
        return;
    }
    if (upload_write(u->fd, data, n))
        upload_error(u, errno == ENOSPC ? MHD_HTTP_INSUFFICIENT_STORAGE : MHD_HTTP_INTERNAL_SERVER_ERROR,
                     "cannot write the upload to the data directory: %s", strerror(errno));
}

static void upload_free(api_sink *k)
{
    upload_sink *u = (upload_sink *)k;
    if (u->fd >= 0) close(u->fd);
    datasets_stage_discard(&u->stage);
    npyfile_stream_free(u->vs);
    free(u);
}

/* fsync + close of the staged file; an error is recorded. */
static void upload_close(upload_sink *u)
{
    if (u->status || u->fd < 0) return;
    int rc = fsync(u->fd);
    if (close(u->fd) != 0) rc = -1;
    u->fd = -1;
    if (rc) upload_error(u, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot write the upload to the data directory: %s",
                         strerror(errno));
}

/* A sink writing to a fresh stage's `file`; NULL after replying. */
static upload_sink *upload_new(api_req *r, int what, const char *file)
{
    char err[512];
    upload_sink *u = calloc(1, sizeof *u);
    if (!u) { api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory"); return NULL; }
    u->base.feed = upload_feed, u->base.free = upload_free;
    u->what = what, u->fd = -1, u->cap = r->srv->cfg.max_upload;
    if (datasets_stage_open(r->srv, &u->stage, err, sizeof err)) {
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
        upload_free(&u->base);
        return NULL;
    }
    datasets_stage_file(&u->stage, file, u->file, sizeof u->file);
    u->fd = open(u->file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (u->fd < 0 || (what == UPLOAD_NPY && !(u->vs = npyfile_stream_new()))) {
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot stage the upload: %s",
                    u->fd < 0 ? strerror(errno) : "out of memory");
        upload_free(&u->base);
        return NULL;
    }
    return u;
}

/* ---- the first call ---- */

/* 1 if Content-Length is over the cap (after replying 413). */
static int upload_too_large(api_req *r)
{
    const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl || strtoull(cl, NULL, 10) <= r->srv->cfg.max_upload) return 0;
    api_problem(r, MHD_HTTP_CONTENT_TOO_LARGE, "the upload (%s bytes) is larger than the %llu-MiB limit: start saed "
                "with a larger --max-upload-mb", cl, (unsigned long long)(r->srv->cfg.max_upload >> 20));
    return 1;
}

typedef struct { const char *unknown; } upload_query;

static enum MHD_Result upload_query_key(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    upload_query *q = cls;
    (void)kind, (void)value;
    for (int i = 0; upload_query_keys[i]; i++)
        if (!strcmp(key, upload_query_keys[i])) return MHD_YES;
    if (!q->unknown) q->unknown = key;
    return MHD_YES;
}

static const char *upload_arg(api_req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

/* POST /v1/datasets?kind=npy&name=X[&file=F] (or any body sent as application/octet-stream): checks the
 * query, then the sink. */
static void upload_open_npy(api_req *r)
{
    upload_query q = { NULL };
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, upload_query_key, &q);
    const char *kind = upload_arg(r, "kind"), *name = upload_arg(r, "name"), *file = upload_arg(r, "file");
    if (q.unknown) {
        api_problem_field(r, MHD_HTTP_BAD_REQUEST, q.unknown, "unknown query parameter '%.60s'; an upload takes "
                          "kind, name and file", q.unknown);
        return;
    }
    if (kind && strcmp(kind, "npy")) {
        api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "kind", "only kind=npy can be uploaded (a .npy file as "
                          "the body); other kinds are created with a JSON body");
        return;
    }
    if (!name) name = "upload";
    if (!*name || strlen(name) > 255 || (file && (!*file || strlen(file) > 255))) {
        api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, *name && strlen(name) <= 255 ? "file" : "name",
                          "must be 1 to 255 bytes long");
        return;
    }
    if (!utf8_valid(name) || (file && !utf8_valid(file))) {
        api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, utf8_valid(name) ? "file" : "name",
                          "must be UTF-8 text (percent-encode its UTF-8 bytes in the query)");
        return;
    }
    if (upload_too_large(r)) return;
    upload_sink *u = upload_new(r, UPLOAD_NPY, DATASETS_NPY_FILE);
    if (!u) return;
    snprintf(u->name, sizeof u->name, "%s", name);
    snprintf(u->file_name, sizeof u->file_name, "%s", file ? file : "");
    r->sink = &u->base;
}

/* The id of /v1/datasets/{id}/labels, or 0 if url is not that. */
static int64_t upload_labels_id(const char *url)
{
    static const char prefix[] = "/v1/datasets/";
    if (strncmp(url, prefix, sizeof prefix - 1)) return 0;
    const char *p = url + sizeof prefix - 1;
    int64_t id = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 18; p++, digits++) id = id * 10 + (*p - '0');
    return digits && !strcmp(p, "/labels") ? id : 0;
}

/* The dataset labels are put on must exist and be an npy dataset: 0, or -1 after replying. */
static int upload_labels_target(api_req *r, int64_t id, store_dataset *d)
{
    store *st = api_store(r);
    if (!st) return -1;
    int rc = store_dataset_get(st, id, d);
    if (rc == STORE_NOTFOUND) {
        api_problem(r, MHD_HTTP_NOT_FOUND, "dataset %lld does not exist", (long long)id);
        return -1;
    }
    if (rc != STORE_OK) {
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read dataset %lld: %s", (long long)id, store_errmsg(st));
        return -1;
    }
    if (strcmp(d->kind, "npy")) {
        api_problem(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "dataset %lld is a %s dataset: only npy datasets take labels "
                    "this way (an idx dataset's labels come from its labels file; circles rows have none)",
                    (long long)id, d->kind);
        store_dataset_clear(d);
        return -1;
    }
    return 0;
}

static void upload_open_labels(api_req *r, int64_t id)
{
    store_dataset d = { 0 };
    int rc = upload_labels_target(r, id, &d);
    store_dataset_clear(&d);
    api_pool_put(r->srv, r->st); /* do not hold a connection for the whole upload */
    r->st = NULL;
    if (rc || upload_too_large(r)) return;
    upload_sink *u = upload_new(r, UPLOAD_LABELS, DATASETS_NPY_LABELS);
    if (!u) return;
    u->id = id;
    r->sink = &u->base;
}

/* 1 when the body is declared a file (application/octet-stream): an upload even without ?kind=npy. */
static int upload_binary(api_req *r)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    return ct && !strncasecmp(ct, "application/octet-stream", 24);
}

/* 1 when the body is declared a tar (application/x-tar). */
static int upload_tar(api_req *r)
{
    const char *ct = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    return ct && !strncasecmp(ct, "application/x-tar", 17) && (!ct[17] || ct[17] == ';' || ct[17] == ' ');
}

/* POST /v1/saes with a tar body: staged like an upload; the route's handler checks the query. */
static void upload_open_sae(api_req *r)
{
    if (upload_too_large(r)) return;
    upload_sink *u = upload_new(r, UPLOAD_SAE, DATASETS_SAE_TAR);
    if (u) r->sink = &u->base;
}

int datasets_upload_open(api_req *r)
{
    int64_t id;
    if (!strcmp(r->method, "POST") && !strcmp(r->url, "/v1/saes") && upload_tar(r))
        upload_open_sae(r);
    else if (!strcmp(r->method, "POST") && !strcmp(r->url, "/v1/datasets") && (upload_arg(r, "kind") || upload_binary(r)))
        upload_open_npy(r);
    else if (!strcmp(r->method, "PUT") && (id = upload_labels_id(r->url)) > 0)
        upload_open_labels(r, id);
    else
        return 0;
    return 1;
}

/* ---- the end of the body ---- */

static enum MHD_Result upload_reply_error(api_req *r, const upload_sink *u)
{
    if (u->status == MHD_HTTP_UNPROCESSABLE_CONTENT)
        return datasets_problem(r, u->status, "body", u->err);
    return api_problem(r, u->status, "%s", u->err);
}

enum MHD_Result datasets_upload_finish(api_req *r)
{
    upload_sink *u = (upload_sink *)r->sink;
    npyfile_layout lay;
    char msg[512];
    if (u->what != UPLOAD_NPY)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "this upload is not a dataset");
    if (!u->status && npyfile_stream_finish(u->vs, &lay, msg, sizeof msg))
        upload_error(u, MHD_HTTP_UNPROCESSABLE_CONTENT, "%s", msg);
    upload_close(u);
    if (u->status) return upload_reply_error(r, u);
    store_dataset d = { .dim = lay.dim, .n_rows = lay.n_rows, .path = DATASETS_NPY_FILE };
    snprintf(d.name, sizeof d.name, "%s", u->name);
    snprintf(d.kind, sizeof d.kind, "npy");
    json_t *params = json_pack("{s:o,s:s,s:I,s:n,s:b}", "file", u->file_name[0] ? json_string(u->file_name)
                               : json_null(), "dtype", lay.elem_size == 2 ? "<f2" : "<f4",
                               "bytes", (json_int_t)lay.file_bytes, "labels_file", "uploaded", 1);
    d.params_json = params ? json_dumps(params, API_JSON_FLAGS) : NULL;
    json_decref(params);
    enum MHD_Result ret = d.params_json ? datasets_stage_commit(r, &u->stage, &d)
                                        : api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    free(d.params_json);
    return ret;
}

/* Moves the validated labels into the dataset's directory and records them. */
static enum MHD_Result upload_labels_commit(api_req *r, upload_sink *u)
{
    char dest[PATH_MAX], dir[PATH_MAX];
    datasets_path(r->srv, u->id, DATASETS_NPY_LABELS, dest, sizeof dest);
    datasets_path(r->srv, u->id, NULL, dir, sizeof dir);
    if (rename(u->file, dest) != 0)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot move the labels into %s: %s", dir,
                           strerror(errno));
    datasets_fsync_dir(dir);
    store *st = api_store(r);
    if (!st) return MHD_YES;
    int rc = store_dataset_set_labels(st, u->id, 1);
    if (rc == STORE_NOTFOUND) unlink(dest); /* deleted meanwhile */
    if (rc == STORE_NOTFOUND) return api_problem(r, MHD_HTTP_NOT_FOUND, "dataset %lld was deleted", (long long)u->id);
    if (rc != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot record the labels: %s", store_errmsg(st));
    store_dataset d = { 0 };
    if (store_dataset_get(st, u->id, &d) != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read dataset %lld back: %s", (long long)u->id,
                           store_errmsg(st));
    json_t *obj = datasets_object(&d);
    store_dataset_clear(&d);
    return api_send_json(r, MHD_HTTP_OK, obj);
}

enum MHD_Result datasets_upload_labels(api_req *r)
{
    upload_sink *u = (upload_sink *)r->sink;
    store_dataset d = { 0 };
    char msg[512];
    if (!u || u->what != UPLOAD_LABELS)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "the labels upload was not set up");
    upload_close(u);
    if (u->status) return upload_reply_error(r, u);
    if (upload_labels_target(r, u->id, &d)) return MHD_YES;
    npyfile_labels *l = NULL;
    int rc = npyfile_labels_open(u->file, d.n_rows, &l, msg, sizeof msg);
    npyfile_labels_close(l);
    store_dataset_clear(&d);
    if (rc) return datasets_problem(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "body", msg);
    return upload_labels_commit(r, u);
}

int datasets_upload_take(api_req *r, char *dir, size_t dirlen, char *file, size_t filelen)
{
    upload_sink *u = (upload_sink *)r->sink;
    if (!u || u->what != UPLOAD_SAE) {
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "the SAE upload was not set up");
        return -1;
    }
    upload_close(u);
    if (u->status) {
        upload_reply_error(r, u);
        return -1;
    }
    snprintf(dir, dirlen, "%s", u->stage.dir);
    snprintf(file, filelen, "%s", u->file);
    u->stage.dir[0] = '\0'; /* the caller's now: upload_free leaves it */
    return 0;
}
