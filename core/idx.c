/* idx — MNIST-style IDX images and labels, gzip or plain, into memory.
 *
 * zlib's gzread reads plain files transparently, so one path serves both.
 * The header parser is a pure function over a byte buffer (fuzzable). The
 * data is read into a buffer that grows as bytes actually arrive (doubling,
 * capped at what the header promises), so a hostile header claiming
 * gigabytes over a tiny file costs nothing; the file must then end exactly
 * where the header says. Pixels become float32 / 255. */
#include "idx.h"
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_READ_MIN (1u << 20)  /* first buffer size */
#define IDX_READ_CHUNK (1u << 30) /* gzread takes an unsigned int */

__attribute__((format(printf, 3, 4)))
static int idx_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ---------------------------------------------------------------- header */

static const char *idx_strerror(int e, char *buf, size_t n)
{
    return strerror_r(e, buf, n); /* the GNU variant: returns the message */
}

static uint32_t idx_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Product of the dims with overflow checks; 0 if it overflows. */
static int idx_data_bytes(const idx_header *h, uint64_t *out)
{
    assert(h && out && (h->ndim == 1 || h->ndim == 3));
    uint64_t n = 1;
    for (int i = 0; i < h->ndim; i++)
        if (__builtin_mul_overflow(n, (uint64_t)h->dims[i], &n))
            return -1;
    *out = n;
    return 0;
}

int idx_parse_header(const void *buf, size_t len, idx_header *out, char *err, size_t errlen)
{
    const unsigned char *b = buf;
    assert((buf || len == 0) && out);
    memset(out, 0, sizeof *out);
    if (len < 4)
        return 1;
    if (b[0] != 0 || b[1] != 0)
        return idx_fail(err, errlen, "not an IDX file (it starts with 0x%02x%02x, not 0x0000): pass the "
                        "MNIST-style -idx3-ubyte / -idx1-ubyte files, gzipped or not", b[0], b[1]);
    if (b[2] != 0x08)
        return idx_fail(err, errlen, "IDX element type 0x%02x is not supported: only unsigned bytes (0x08)", b[2]);
    if (b[3] != 1 && b[3] != 3)
        return idx_fail(err, errlen, "IDX arrays of %d dimensions are not supported: expected images "
                        "(3: n, rows, cols) or labels (1: n)", b[3]);
    out->magic = idx_be32(b);
    out->ndim = b[3];
    out->header_len = 4 + 4 * (size_t)out->ndim;
    if (len < out->header_len)
        return 1;
    for (int i = 0; i < out->ndim; i++) {
        out->dims[i] = idx_be32(b + 4 + 4 * i);
        if (out->dims[i] == 0)
            return idx_fail(err, errlen, "the IDX header has a zero dimension: the file holds no data");
    }
    if (idx_data_bytes(out, &out->data_bytes) != 0)
        return idx_fail(err, errlen, "the IDX header's dimensions are too large");
    assert(out->header_len <= IDX_HEADER_MAX && out->header_len <= len && out->data_bytes >= 1);
    return 0;
}

/* ---------------------------------------------------------------- reading */

typedef struct {
    gzFile g;
    const char *what; /* "images file", "labels file" */
    char *err;
    size_t errlen;
} idx_reader;

static int idx_read_error(idx_reader *r)
{
    assert(r && r->g && r->what);
    char buf[128];
    int zerr = 0;
    const char *msg = gzerror(r->g, &zerr);
    if (zerr == Z_ERRNO)
        return idx_fail(r->err, r->errlen, "%s: read error: %s", r->what, idx_strerror(errno, buf, sizeof buf));
    return idx_fail(r->err, r->errlen, "%s: cannot decompress (%s): the file is damaged; download it again",
                    r->what, msg ? msg : "unknown error");
}

/* Reads up to n bytes into buf; *got how many (short only at end of file). */
static int idx_read(idx_reader *r, void *buf, size_t n, size_t *got)
{
    assert(r && r->g && got && (buf || n == 0));
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < IDX_READ_CHUNK ? n - *got : IDX_READ_CHUNK;
        int k = gzread(r->g, (unsigned char *)buf + *got, (unsigned)want);
        if (k < 0)
            return idx_read_error(r);
        if (k == 0)
            break;
        *got += (size_t)k;
    }
    return 0;
}

/* Reads and checks the header; expect is the magic wanted. */
static int idx_read_header(idx_reader *r, uint32_t expect, idx_header *h)
{
    unsigned char buf[IDX_HEADER_MAX];
    size_t have = 0, got;
    int rc = 1;
    assert(r && h && (expect == IDX_MAGIC_IMAGES || expect == IDX_MAGIC_LABELS));
    for (size_t want = 4; rc == 1; want = h->header_len) {
        assert(have <= want && want <= sizeof buf); /* idx_parse_header asked for at most a whole header */
        if (idx_read(r, buf + have, want - have, &got) != 0)
            return -1;
        have += got;
        if (have < want)
            return idx_fail(r->err, r->errlen, "%s: truncated inside its IDX header: download it again", r->what);
        char msg[256];
        rc = idx_parse_header(buf, have, h, msg, sizeof msg);
        if (rc < 0)
            return idx_fail(r->err, r->errlen, "%s: %s", r->what, msg);
    }
    if (h->magic != expect)
        return idx_fail(r->err, r->errlen, "%s: this is an IDX %s file (magic 0x%08x), expected %s (0x%08x): "
                        "are images and labels swapped?", r->what, h->magic == IDX_MAGIC_IMAGES ? "images" : "labels",
                        h->magic, expect == IDX_MAGIC_IMAGES ? "images" : "labels", expect);
    if (h->data_bytes > (uint64_t)IDX_MAX_PIXELS)
        return idx_fail(r->err, r->errlen, "%s: %llu values are too many to hold in memory: convert to a float16 "
                        ".npy and import that", r->what, (unsigned long long)h->data_bytes);
    return 0;
}

/* Grows *buf (cap bytes) towards need; doubling, at most need. */
static int idx_grow(unsigned char **buf, size_t *cap, size_t need)
{
    assert(buf && cap && *cap < need);
    size_t ncap = *cap ? *cap * 2 : IDX_READ_MIN;
    ncap = ncap < need ? ncap : need;
    unsigned char *nb = realloc(*buf, ncap);
    if (!nb)
        return -1;
    *buf = nb;
    *cap = ncap;
    return 0;
}

/* Reads exactly n data bytes, then checks the file ends there. */
static int idx_read_data(idx_reader *r, size_t n, unsigned char **out)
{
    unsigned char *buf = NULL, extra; /* (n) once complete */
    size_t cap = 0, have = 0, got = 0;
    int rc = 0;
    assert(r && out && n >= 1); /* a parsed header has no zero dimension */
    while (rc == 0 && have < n) {
        if (have == cap && idx_grow(&buf, &cap, n) != 0)
            rc = idx_fail(r->err, r->errlen, "%s: out of memory", r->what);
        else if (idx_read(r, buf + have, cap - have, &got) != 0)
            rc = -1;
        else if (got == 0)
            rc = idx_fail(r->err, r->errlen, "%s: truncated: its header promises %zu bytes of data but it holds "
                          "%zu: download it again", r->what, n, have);
        have += got;
    }
    if (rc == 0 && idx_read(r, &extra, 1, &got) != 0)
        rc = -1;
    else if (rc == 0 && got != 0)
        rc = idx_fail(r->err, r->errlen, "%s: it has data after the %zu bytes its header describes: pass the "
                      "original file", r->what, n);
    if (rc != 0)
        free(buf);
    else
        *out = buf;
    return rc;
}

/* Opens path, reads header and data, closes. */
static int idx_read_file(const char *path, const char *what, uint32_t expect, idx_header *h, unsigned char **data,
                         char *err, size_t errlen)
{
    struct stat st;
    char ebuf[128];
    idx_reader r = {NULL, what, err, errlen};
    assert(path && what && h && data);
    *data = NULL;
    if (stat(path, &st) != 0)
        return idx_fail(err, errlen, "%s: cannot open %s: %s", what, path, idx_strerror(errno, ebuf, sizeof ebuf));
    if (!S_ISREG(st.st_mode))
        return idx_fail(err, errlen, "%s: %s is not a regular file", what, path);
    r.g = gzopen(path, "rb");
    if (!r.g)
        return idx_fail(err, errlen, "%s: cannot open %s: %s", what, path,
                        errno ? idx_strerror(errno, ebuf, sizeof ebuf) : "out of memory");
    gzbuffer(r.g, 1u << 17);
    int rc = idx_read_header(&r, expect, h);
    if (rc == 0)
        rc = idx_read_data(&r, (size_t)h->data_bytes, data);
    gzclose_r(r.g);
    return rc;
}

/* ---------------------------------------------------------------- datasets */

int idx_load_labels(const char *path, uint8_t **labels, int64_t *n, char *err, size_t errlen)
{
    idx_header h;
    assert(path && labels && n);
    if (idx_read_file(path, "labels file", IDX_MAGIC_LABELS, &h, labels, err, errlen) != 0)
        return -1;
    *n = h.dims[0];
    return 0;
}

static int idx_load_images(const char *path, idx_dataset *d, char *err, size_t errlen)
{
    idx_header h;
    unsigned char *raw; /* (n, rows * cols) */
    assert(path && d && !d->pixels);
    if (idx_read_file(path, "images file", IDX_MAGIC_IMAGES, &h, &raw, err, errlen) != 0)
        return -1;
    d->n = h.dims[0];
    d->rows = (int)h.dims[1]; /* the pixel cap keeps every dim below 2^31 */
    d->cols = (int)h.dims[2];
    if ((uint64_t)h.dims[1] * h.dims[2] > INT_MAX) {
        free(raw);
        return idx_fail(err, errlen, "images file: images of %u x %u pixels are too large", h.dims[1], h.dims[2]);
    }
    d->dim = d->rows * d->cols;
    assert(h.ndim == 3 && (uint64_t)d->n * (uint64_t)d->dim == h.data_bytes);
    d->pixels = malloc((size_t)h.data_bytes * sizeof *d->pixels);
    if (!d->pixels) {
        free(raw);
        return idx_fail(err, errlen, "images file: out of memory for %llu pixels", (unsigned long long)h.data_bytes);
    }
    for (size_t i = 0; i < (size_t)h.data_bytes; i++)
        d->pixels[i] = raw[i] * (1.0f / 255.0f);
    free(raw);
    return 0;
}

int idx_load(const char *images_path, const char *labels_path, idx_dataset **out, char *err, size_t errlen)
{
    int64_t n_labels = 0;
    assert(images_path && out);
    idx_dataset *d = calloc(1, sizeof *d);
    *out = NULL;
    if (!d)
        return idx_fail(err, errlen, "out of memory");
    int rc = idx_load_images(images_path, d, err, errlen);
    if (rc == 0 && labels_path)
        rc = idx_load_labels(labels_path, &d->labels, &n_labels, err, errlen);
    if (rc == 0 && labels_path && n_labels != d->n)
        rc = idx_fail(err, errlen, "the images file holds %lld images but the labels file holds %lld labels: "
                      "pass matching files (both train-* or both t10k-*)", (long long)d->n, (long long)n_labels);
    if (rc != 0) {
        idx_free(d);
        return -1;
    }
    *out = d;
    return 0;
}

void idx_free(idx_dataset *d)
{
    if (!d)
        return;
    free(d->pixels);
    free(d->labels);
    free(d);
}

const char *idx_class_name(int label)
{
    static const char *const names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    return label >= 0 && label < 10 ? names[label] : NULL;
}

static int idx_source_rows(void *ctx, const uint64_t *idx, int n, float *out)
{
    const idx_dataset *d = ctx;
    assert(d && d->pixels && n >= 0 && (n == 0 || (idx && out)));
    for (int i = 0; i < n; i++) {
        if (idx[i] >= (uint64_t)d->n)
            return -1;
        memcpy(out + (size_t)i * (size_t)d->dim, d->pixels + idx[i] * (uint64_t)d->dim,
               (size_t)d->dim * sizeof *out);
    }
    return 0;
}

void idx_source(data_source *src, const idx_dataset *d)
{
    assert(src && d && d->pixels && d->dim >= 1);
    src->dim = d->dim;
    src->n_rows = d->n;
    src->ctx = (void *)d; /* only ever read back as const */
    src->get_rows = idx_source_rows;
}
