/* api/datasets_read.c — rows.npy and labels of the file datasets (npy, idx).
 *
 * Rows [offset, offset + limit) are clipped to n_rows (an offset at or past
 * the end answers shape (0, dim)) and always leave as '<f4' (float16 files
 * are widened). npy rows come from the mmapped copy a chunk at a time as the
 * client reads them (a slow client holds ~1 MiB, not the page); idx rows are
 * read from the (maybe gzipped) images file by seeking to the first one, so a
 * page of rows never decompresses into a whole-dataset buffer, and the page
 * is counted in the reply budget while it is sent; pixels are scaled
 * exactly as core/idx.c does (byte * (1/255)), so they equal the trainer's.
 *
 * Labels answer {"items": [strings], "offset", "limit", "total"}: npy labels
 * are the lines of labels.txt; idx labels are the class names (Fashion-MNIST
 * names when the dataset's params say "class_names": "fashion-mnist", else
 * the class number as text); storage's artifacts_labels_* holds those rules
 * for this endpoint and the worker alike. A page stops early rather than
 * exceed DATASETS_LABELS_REPLY_MAX bytes of text. */
#include "datasets_int.h"
#include "artifacts.h"
#include "idx.h"
#include "npyfile.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define DATASETS_LABELS_DEFAULT 1000
#define DATASETS_LABELS_MAX 100000
#define DATASETS_LABELS_REPLY_MAX ((size_t)64 << 20)

/* Allocates the reply for `count` rows; NULL after replying. */
static char *read_alloc(api_req *r, const store_dataset *d, int64_t count, size_t *off, size_t *total)
{
    int64_t shape[2] = { count, d->dim };
    char *buf = api_npy_alloc("<f4", shape, 2, off, total);
    if (!buf) api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory for %lld rows", (long long)count);
    return buf;
}

/* npy rows are read from the mapped file a chunk at a time as the client takes them. */
typedef struct {
    npyfile *f;
    int64_t offset;  /* the page's first row in the file */
    uint64_t *idx;   /* (cap) row indices of one chunk */
    int cap;
} read_npy_page;

static void read_npy_free(void *ctx)
{
    read_npy_page *p = ctx;
    npyfile_close(p->f);
    free(p->idx);
    free(p);
}

static int read_npy_fill(void *ctx, int64_t first, int n, float *out)
{
    read_npy_page *p = ctx;
    if (n > p->cap) {
        uint64_t *idx = realloc(p->idx, (size_t)n * sizeof *idx);
        if (!idx) return -1;
        p->idx = idx, p->cap = n;
    }
    for (int i = 0; i < n; i++) p->idx[i] = (uint64_t)(p->offset + first + i);
    return npyfile_get_rows(p->f, p->idx, n, out); /* (n, dim) */
}

static enum MHD_Result read_rows_npy(api_req *r, const store_dataset *d, int64_t offset, int64_t count)
{
    char path[PATH_MAX], err[512];
    read_npy_page *p = calloc(1, sizeof *p);
    if (!p) return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    datasets_file(r->srv, d, d->path, path, sizeof path);
    if (npyfile_open(path, &p->f, err, sizeof err)) {
        free(p);
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "dataset %lld: %s", (long long)d->id, err);
    }
    p->offset = offset;
    int64_t shape[2] = { count, d->dim };
    return api_send_npy_rows(r, shape, 2, read_npy_fill, p, read_npy_free, 0);
}

/* Reads exactly n bytes from g. 0 or -1. */
static int read_gz(gzFile g, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        unsigned want = n > (1u << 30) ? 1u << 30 : (unsigned)n;
        int k = gzread(g, p, want);
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Rows [offset, offset + count) of an IDX images file as floats (count, dim). 0, or -1 with err. */
static int read_idx_pixels(const char *path, int dim, int64_t offset, int64_t count, float *out, char *err,
                           size_t errlen)
{
    unsigned char head[IDX_HEADER_MAX];
    idx_header h;
    size_t row = (size_t)dim, n = (size_t)count * row;
    unsigned char *raw = malloc(n ? n : 1); /* (count, dim) bytes */
    gzFile g = raw ? gzopen(path, "rb") : NULL;
    int rc = g ? 0 : -1;
    if (!rc) gzbuffer(g, 1u << 17);
    if (!rc && (read_gz(g, head, 4) || idx_parse_header(head, 4, &h, err, errlen) != 1 ||
                read_gz(g, head + 4, h.header_len - 4) || idx_parse_header(head, h.header_len, &h, err, errlen)))
        rc = -1;
    if (!rc && (h.magic != IDX_MAGIC_IMAGES || (uint64_t)h.dims[1] * h.dims[2] != (uint64_t)dim))
        rc = -1;
    if (!rc && gzseek(g, (z_off_t)(h.header_len + (uint64_t)offset * row), SEEK_SET) < 0) rc = -1;
    if (!rc && read_gz(g, raw, n)) rc = -1;
    for (size_t i = 0; !rc && i < n; i++) out[i] = raw[i] * (1.0f / 255.0f);
    if (rc) snprintf(err, errlen, "its images file is unreadable or changed");
    if (g) gzclose_r(g);
    free(raw);
    return rc;
}

static enum MHD_Result read_rows_idx(api_req *r, const store_dataset *d, int64_t offset, int64_t count)
{
    char path[PATH_MAX], err[512];
    size_t off, total;
    datasets_file(r->srv, d, d->path, path, sizeof path);
    char *buf = read_alloc(r, d, count, &off, &total);
    if (!buf) return MHD_YES;
    if (api_reply_reserve(r, total)) { free(buf); return MHD_YES; }
    if (read_idx_pixels(path, d->dim, offset, count, (float *)(void *)(buf + off), err, sizeof err)) {
        free(buf);
        api_reply_release(r->srv, total);
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "dataset %lld: %s", (long long)d->id, err);
    }
    return api_send_held(r, "application/octet-stream", buf, total, total);
}

enum MHD_Result datasets_read_rows(api_req *r, const store_dataset *d, long long offset, int limit)
{
    int64_t count = offset >= d->n_rows ? 0 : d->n_rows - offset;
    if (count > limit) count = limit;
    if (!d->path)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "dataset %lld has no data file", (long long)d->id);
    if (!strcmp(d->kind, "npy")) return read_rows_npy(r, d, offset, count);
    if (!strcmp(d->kind, "idx")) return read_rows_idx(r, d, offset, count);
    return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "dataset %lld has an unknown kind '%s'", (long long)d->id,
                       d->kind);
}

/* ---- labels ---- */

/* Appends the labels [offset, offset + count) to items, read by storage's
 * artifacts_labels_* (the worker's reader too). 0, or -1 with err. */
static int read_labels(api_server *s, const store_dataset *d, int64_t offset, int64_t count, json_t *items,
                       char *err, size_t errlen)
{
    artifacts_labels *l = NULL;
    size_t bytes = 0;
    int rc = artifacts_labels_open(s->cfg.data_dir, d, &l, err, errlen);
    if (rc == 1) snprintf(err, errlen, "a %s dataset has no labels", d->kind);
    if (rc) return -1;
    for (int64_t i = offset; i < offset + count && bytes < DATASETS_LABELS_REPLY_MAX; i++) {
        const char *text;
        size_t len;
        if (artifacts_label(l, i, &text, &len)) break;
        json_t *v = json_stringn(text, len);
        json_array_append_new(items, v ? v : json_null());
        bytes += len + 4;
    }
    artifacts_labels_close(l);
    return 0;
}

enum MHD_Result datasets_read_labels(api_req *r, const store_dataset *d)
{
    long long offset = 0, limit = DATASETS_LABELS_DEFAULT;
    char err[512];
    if (api_query_int(r, "offset", 0, INT64_MAX, &offset) < 0 ||
        api_query_int(r, "limit", 1, DATASETS_LABELS_MAX, &limit) < 0)
        return MHD_YES;
    int64_t count = offset >= d->n_rows ? 0 : d->n_rows - offset;
    if (count > limit) count = limit;
    json_t *items = json_array();
    if (read_labels(r->srv, d, offset, count, items, err, sizeof err)) {
        json_decref(items);
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "dataset %lld labels: %s", (long long)d->id, err);
    }
    return api_send_json(r, MHD_HTTP_OK, json_pack("{s:o,s:I,s:I,s:I}", "items", items, "offset",
                                                   (json_int_t)offset, "limit", (json_int_t)limit,
                                                   "total", (json_int_t)d->n_rows));
}
