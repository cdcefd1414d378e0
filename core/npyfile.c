/* npyfile — imported .npy activation files, their uploads and their labels.
 *
 * A file is validated whole before use (header through npy_parse_header,
 * then npyfile_check_header, then the exact size), mapped read-only with
 * MAP_SHARED and MADV_RANDOM (the trainer reads shuffled rows; the page cache,
 * not the heap, holds what is hot, so the file may exceed RAM), and rows are
 * copied out with float16 widened to float32 by bit manipulation. Values are
 * read as little-endian bytes through memcpy, so a header of odd length
 * (hostile or old) never causes a misaligned load.
 *
 * The upload validator is a small state machine: it buffers only the header
 * (at most NPYFILE_HEADER_MAX bytes), then counts data bytes and checks every
 * value is finite as it passes, carrying a value split between chunks.
 *
 * Labels are mapped too; a pass checks UTF-8 and counts lines, a second keeps
 * the offset of every NPYFILE_LABELS_STRIDE-th line, so line i costs at most
 * STRIDE-1 memchr hops. */
#include "npyfile.h"
#include "core_assert.h"
#include "utf8.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "npyfile copies '<f4' data as host floats");

#define NPYFILE_PREFIX_MAX 12 /* magic, version, u32 header length (v2/v3) */

struct npyfile {
    npyfile_layout lay;
    const unsigned char *map;  /* (lay.file_bytes) the whole file */
    const unsigned char *data; /* (n_rows, dim) little-endian values, after the header */
};

struct npyfile_stream {
    unsigned char head[NPYFILE_PREFIX_MAX + NPYFILE_HEADER_MAX]; /* (head_len) header bytes so far */
    size_t head_len;
    int have_layout;
    npyfile_layout lay;
    uint64_t data_seen;       /* data bytes fed so far, incl. the carry */
    unsigned char carry[4];   /* (carry_len) the start of a value split between chunks */
    int carry_len;
    int failed;
    char err[320];            /* the sticky error */
};

struct npyfile_labels {
    const unsigned char *map; /* (len) the file, NULL when empty */
    size_t len;
    size_t base;              /* 3 after a UTF-8 byte-order mark, else 0 */
    int64_t n;                /* lines */
    uint64_t *starts;         /* (ceil(n / STRIDE)) offset of line k * STRIDE */
};

__attribute__((format(printf, 3, 4)))
static int npyfile_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int npyfile_fail_errno(char *err, size_t errlen, const char *what)
{
    char buf[128];
    return npyfile_fail(err, errlen, "%s: %s", what, strerror_r(errno, buf, sizeof buf));
}

/* ---------------------------------------------------------------- shapes */

/* Copies a header string into out with anything but printable ASCII as '?',
 * so messages stay valid UTF-8 (they end up in JSON). */
static void npyfile_printable(const char *s, char *out, size_t cap)
{
    assert(s && out && cap >= 1);
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[i] = '\0';
}

static int npyfile_check_dtype(const char *descr, int *elem, char *err, size_t errlen)
{
    assert(descr && elem);
    char d[sizeof ((npy_info *)0)->descr];
    if (!strcmp(descr, "<f4") || !strcmp(descr, "<f2")) {
        *elem = descr[2] - '0';
        return 0;
    }
    npyfile_printable(descr, d, sizeof d);
    if (!strcmp(descr, "<f8"))
        return npyfile_fail(err, errlen, "dtype '<f8' (float64) is not supported: save as float32 "
                            "(np.save(path, arr.astype('<f4')))");
    return npyfile_fail(err, errlen, "dtype '%s' is not supported: save the activations as float32 or "
                        "float16 (np.save(path, arr.astype('<f4')))", d);
}

int npyfile_check_header(const npy_info *info, npyfile_layout *out, char *err, size_t errlen)
{
    assert(info && out);
    memset(out, 0, sizeof *out);
    if (npyfile_check_dtype(info->descr, &out->elem_size, err, errlen) != 0)
        return -1;
    if (info->ndim != 2)
        return npyfile_fail(err, errlen, "the array is %d-D: save a 2-D array (rows, dim), e.g. "
                            "arr.reshape(-1, arr.shape[-1])", info->ndim);
    if (info->shape[0] < 1 || info->shape[1] < 1)
        return npyfile_fail(err, errlen, "the array has shape (%lld, %lld): it needs at least one row "
                            "and one column", (long long)info->shape[0], (long long)info->shape[1]);
    if (info->shape[1] > INT_MAX)
        return npyfile_fail(err, errlen, "rows of %lld values are too long (at most %d)",
                            (long long)info->shape[1], INT_MAX);
    if (info->header_len > NPYFILE_PREFIX_MAX + NPYFILE_HEADER_MAX)
        return npyfile_fail(err, errlen, "the .npy header is larger than %d bytes: re-save with np.save",
                            NPYFILE_HEADER_MAX);
    uint64_t elems, data, total;
    if (__builtin_mul_overflow((uint64_t)info->shape[0], (uint64_t)info->shape[1], &elems) ||
        __builtin_mul_overflow(elems, (uint64_t)out->elem_size, &data) ||
        __builtin_add_overflow(data, (uint64_t)info->header_len, &total) || total > (uint64_t)INT64_MAX ||
        total > (uint64_t)SIZE_MAX)
        return npyfile_fail(err, errlen, "the array's shape is too large to address");
    out->n_rows = info->shape[0];
    out->dim = (int)info->shape[1];
    out->data_bytes = data;
    out->file_bytes = total;
    assert(out->n_rows >= 1 && out->dim >= 1 && (out->elem_size == 2 || out->elem_size == 4));
    assert(out->data_bytes / (uint64_t)out->elem_size / (uint64_t)out->dim == (uint64_t)out->n_rows);
    return 0;
}

/* npy_parse_header, with a hint on what to do added to its bare messages. */
static int npyfile_parse(const void *buf, size_t len, npy_info *info, char *err, size_t errlen)
{
    assert(info);
    char msg[256];
    if (npy_parse_header(buf, len, info, msg, sizeof msg) == 0)
        return 0;
    return npyfile_fail(err, errlen, "%s%s", msg,
                        strstr(msg, "save") ? "" : ": save the array with np.save(path, arr)");
}

float npyfile_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1f) {                 /* inf, or NaN with its payload */
        bits = sign | 0x7f800000u | man << 13;
    } else if (exp != 0) {             /* normal: rebias 15 -> 127 */
        bits = sign | (exp + 112) << 23 | man << 13;
    } else if (man == 0) {             /* signed zero */
        bits = sign;
    } else {                           /* subnormal: normalise the mantissa */
        uint32_t e = 113;
        while (!(man & 0x400u)) {
            man <<= 1;
            e--;
        }
        bits = sign | e << 23 | (man & 0x3ffu) << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* 0 if finite; else 1 for NaN, 2 for +inf, 3 for -inf. p is one value. */
static int npyfile_value_class(const unsigned char *p, int elem)
{
    uint32_t bits, expmask = elem == 4 ? 0x7f800000u : 0x7c00u, manmask = elem == 4 ? 0x7fffffu : 0x3ffu;
    bits = elem == 4 ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
                     : (uint32_t)p[0] | (uint32_t)p[1] << 8;
    if ((bits & expmask) != expmask)
        return 0;
    if (bits & manmask)
        return 1;
    return (p[elem - 1] & 0x80) ? 3 : 2;
}

/* Message for the value at flat index i (class cls). Returns -1. */
static int npyfile_nonfinite_msg(const npyfile_layout *lay, uint64_t i, int cls, uint64_t count, char *err,
                                 size_t errlen)
{
    static const char *const names[4] = {"finite", "NaN", "inf", "-inf"};
    assert(lay && lay->dim >= 1 && cls >= 1 && cls <= 3 && count >= 1);
    assert(i < lay->data_bytes / (uint64_t)lay->elem_size); /* a value of the array */
    char more[64] = "";
    if (count > 1)
        snprintf(more, sizeof more, " (%llu values in all are not finite)", (unsigned long long)count);
    return npyfile_fail(err, errlen, "row %llu, column %llu is %s%s: replace non-finite values "
                        "(np.nan_to_num(arr)) or drop those rows, then import again",
                        (unsigned long long)(i / (uint64_t)lay->dim), (unsigned long long)(i % (uint64_t)lay->dim),
                        names[cls], more);
}

/* ---------------------------------------------------------------- files */

static int npyfile_check_size(const npyfile_layout *lay, uint64_t size, char *err, size_t errlen)
{
    assert(lay && lay->file_bytes > lay->data_bytes); /* a checked layout: a header, then the data */
    if (size < lay->file_bytes)
        return npyfile_fail(err, errlen, "the file is truncated: its header describes %lld x %d values "
                            "(%llu bytes with the header) but it has %llu bytes: copy or save it again",
                            (long long)lay->n_rows, lay->dim, (unsigned long long)lay->file_bytes,
                            (unsigned long long)size);
    if (size > lay->file_bytes)
        return npyfile_fail(err, errlen, "the file has %llu bytes after the array its header describes: "
                            "save it with np.save(path, arr)", (unsigned long long)(size - lay->file_bytes));
    return 0;
}

/* Maps fd's size bytes read-only. */
static int npyfile_map_fd(int fd, size_t size, const unsigned char **map, char *err, size_t errlen)
{
    assert(fd >= 0 && size >= 1 && map); /* mmap refuses a length of 0 */
    void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return npyfile_fail_errno(err, errlen, "cannot map the file");
    *map = m;
    return 0;
}

/* Opens path as a regular file: fd and size. */
static int npyfile_open_regular(const char *path, int *fd, uint64_t *size, char *err, size_t errlen)
{
    struct stat st;
    assert(path && fd && size);
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        return npyfile_fail_errno(err, errlen, "cannot open the file");
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(*fd);
        return npyfile_fail(err, errlen, "not a regular file");
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

static int npyfile_validate_map(npyfile *f, uint64_t size, char *err, size_t errlen)
{
    npy_info info;
    assert(f && f->map && size >= 1);
    if (npyfile_parse(f->map, (size_t)size, &info, err, errlen) != 0)
        return -1;
    if (npyfile_check_header(&info, &f->lay, err, errlen) != 0)
        return -1;
    if (npyfile_check_size(&f->lay, size, err, errlen) != 0)
        return -1;
    f->data = f->map + info.header_len;
    assert(info.header_len + f->lay.data_bytes == size); /* npyfile_check_size: exactly the array */
    return 0;
}

int npyfile_open(const char *path, npyfile **out, char *err, size_t errlen)
{
    int fd;
    uint64_t size;
    assert(path && out);
    *out = NULL;
    if (npyfile_open_regular(path, &fd, &size, err, errlen) != 0)
        return -1;
    if (size == 0 || size > (uint64_t)SIZE_MAX) {
        close(fd);
        return npyfile_fail(err, errlen, size ? "the file is too large to map" : "the file is empty");
    }
    npyfile *f = calloc(1, sizeof *f);
    int rc = f ? npyfile_map_fd(fd, (size_t)size, &f->map, err, errlen)
               : npyfile_fail(err, errlen, "out of memory");
    close(fd);
    if (rc == 0 && npyfile_validate_map(f, size, err, errlen) != 0) {
        munmap((void *)f->map, (size_t)size);
        rc = -1;
    }
    if (rc != 0) {
        free(f);
        return -1;
    }
    madvise((void *)f->map, (size_t)f->lay.file_bytes, MADV_RANDOM);
    *out = f;
    return 0;
}

void npyfile_close(npyfile *f)
{
    if (!f)
        return;
    munmap((void *)f->map, (size_t)f->lay.file_bytes);
    free(f);
}

const npyfile_layout *npyfile_get_layout(const npyfile *f)
{
    assert(f);
    return &f->lay;
}

static void npyfile_row_half(const unsigned char *src, int dim, float *out)
{
    for (int j = 0; j < dim; j++)
        out[j] = npyfile_half_to_float((uint16_t)(src[2 * j] | src[2 * j + 1] << 8));
}

int npyfile_get_rows(const npyfile *f, const uint64_t *idx, int n, float *out)
{
    assert(f && f->data && n >= 0 && (n == 0 || (idx && out)));
    assert(core_disjoint(out, (size_t)n * (size_t)f->lay.dim * sizeof *out, f->map, (size_t)f->lay.file_bytes));
    const int dim = f->lay.dim;
    const size_t row_bytes = (size_t)dim * (size_t)f->lay.elem_size;
    for (int i = 0; i < n; i++) {
        if (idx[i] >= (uint64_t)f->lay.n_rows)
            return -1;
        const unsigned char *src = f->data + idx[i] * row_bytes;
        float *dst = out + (size_t)i * (size_t)dim; /* (dim) */
        if (f->lay.elem_size == 4)
            memcpy(dst, src, row_bytes);
        else
            npyfile_row_half(src, dim, dst);
    }
    return 0;
}

/* Checks n values at p (flat index base..); counts the non-finite ones and
 * remembers the first (its index and class) when *first_cls is still 0. */
static uint64_t npyfile_check_values(const unsigned char *p, uint64_t n, int elem, uint64_t base,
                                     uint64_t *first, int *first_cls)
{
    assert((p || n == 0) && (elem == 2 || elem == 4) && first && first_cls);
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++) {
        int cls = npyfile_value_class(p + i * (uint64_t)elem, elem);
        if (cls && !bad++ && !*first_cls) {
            *first = base + i;
            *first_cls = cls;
        }
    }
    return bad;
}

int npyfile_scan(const npyfile *f, char *err, size_t errlen)
{
    assert(f && f->data);
    uint64_t n = f->lay.data_bytes / (uint64_t)f->lay.elem_size, first = 0;
    int cls = 0;
    madvise((void *)f->map, (size_t)f->lay.file_bytes, MADV_SEQUENTIAL);
    uint64_t bad = npyfile_check_values(f->data, n, f->lay.elem_size, 0, &first, &cls);
    madvise((void *)f->map, (size_t)f->lay.file_bytes, MADV_RANDOM);
    return bad ? npyfile_nonfinite_msg(&f->lay, first, cls, bad, err, errlen) : 0;
}

static int npyfile_source_rows(void *ctx, const uint64_t *idx, int n, float *out)
{
    assert(ctx);
    return npyfile_get_rows((const npyfile *)ctx, idx, n, out);
}

void npyfile_source(data_source *src, const npyfile *f)
{
    assert(src && f);
    src->dim = f->lay.dim;
    src->n_rows = f->lay.n_rows;
    src->ctx = (void *)f; /* only ever read back as const */
    src->get_rows = npyfile_source_rows;
}

/* ---------------------------------------------------------------- uploads */

npyfile_stream *npyfile_stream_new(void)
{
    return calloc(1, sizeof(npyfile_stream));
}

void npyfile_stream_free(npyfile_stream *s)
{
    free(s);
}

__attribute__((format(printf, 2, 3)))
static int npyfile_stream_fail(npyfile_stream *s, const char *fmt, ...)
{
    va_list ap;
    assert(s && fmt);
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    s->failed = 1;
    return -1;
}

/* How many header bytes are needed in all, as far as the bytes so far tell:
 * 1 when head[0..head_len) is the whole header, 0 when *want more are needed
 * (in total), -1 on a malformed prefix. */
static int npyfile_stream_want(npyfile_stream *s, size_t *want)
{
    static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    const unsigned char *h = s->head;
    size_t n = s->head_len < 6 ? s->head_len : 6;
    assert(!s->failed && !s->have_layout && want && s->head_len <= sizeof s->head);
    if (memcmp(h, magic, n) != 0)
        return npyfile_stream_fail(s, "not a .npy file: save the array with np.save(path, arr)");
    *want = 8;
    if (s->head_len < 8)
        return 0;
    if (h[6] < 1 || h[6] > 3)
        return npyfile_stream_fail(s, "unsupported .npy version %d.%d (1.0, 2.0 and 3.0 are read)", h[6], h[7]);
    size_t prefix = h[6] == 1 ? 10 : 12;
    *want = prefix;
    if (s->head_len < prefix)
        return 0;
    size_t hlen = h[6] == 1 ? (size_t)h[8] | (size_t)h[9] << 8
                            : (size_t)h[8] | (size_t)h[9] << 8 | (size_t)h[10] << 16 | (size_t)h[11] << 24;
    if (hlen > NPYFILE_HEADER_MAX)
        return npyfile_stream_fail(s, "the .npy header is larger than %d bytes: re-save with np.save",
                                   NPYFILE_HEADER_MAX);
    *want = prefix + hlen;
    return s->head_len == *want;
}

/* Consumes header bytes from *p; parses the header once complete. */
static int npyfile_stream_head(npyfile_stream *s, const unsigned char **p, size_t *len)
{
    size_t want = 0;
    int r;
    assert(s && p && len && (*p || *len == 0));
    while ((r = npyfile_stream_want(s, &want)) == 0 && *len > 0) {
        assert(s->head_len < want && want <= sizeof s->head); /* the header length was capped */
        size_t take = want - s->head_len < *len ? want - s->head_len : *len;
        memcpy(s->head + s->head_len, *p, take);
        s->head_len += take;
        *p += take;
        *len -= take;
    }
    if (r != 1)
        return r; /* -1, or 0 with everything consumed */
    npy_info info;
    if (npyfile_parse(s->head, s->head_len, &info, s->err, sizeof s->err) != 0 ||
        npyfile_check_header(&info, &s->lay, s->err, sizeof s->err) != 0) {
        s->failed = 1;
        return -1;
    }
    s->have_layout = 1;
    return 0;
}

static int npyfile_stream_nonfinite(npyfile_stream *s, uint64_t i, int cls)
{
    assert(s && s->have_layout && cls >= 1 && cls <= 3);
    npyfile_nonfinite_msg(&s->lay, i, cls, 1, s->err, sizeof s->err);
    s->failed = 1;
    return -1;
}

/* Completes a value split between chunks from p[0..len); returns the bytes used. */
static size_t npyfile_stream_carry(npyfile_stream *s, const unsigned char *p, size_t len)
{
    const int elem = s->lay.elem_size;
    assert(s->have_layout && p && len >= 1 && 0 < s->carry_len && s->carry_len < elem);
    size_t take = (size_t)(elem - s->carry_len) < len ? (size_t)(elem - s->carry_len) : len;
    memcpy(s->carry + s->carry_len, p, take);
    s->carry_len += (int)take;
    s->data_seen += take;
    if (s->carry_len == elem) {
        s->carry_len = 0;
        int cls = npyfile_value_class(s->carry, elem);
        if (cls)
            npyfile_stream_nonfinite(s, s->data_seen / (uint64_t)elem - 1, cls);
    }
    return take;
}

/* Checks the values in p[0..len) of data; len fits what is left. */
static int npyfile_stream_values(npyfile_stream *s, const unsigned char *p, size_t len)
{
    const int elem = s->lay.elem_size;
    assert(s->have_layout && !s->failed && p && len >= 1);
    assert(len <= s->lay.data_bytes - s->data_seen); /* the caller refused more than the header promised */
    if (s->carry_len) {
        size_t used = npyfile_stream_carry(s, p, len);
        if (s->failed)
            return -1;
        p += used;
        len -= used;
        if (s->carry_len)
            return 0; /* the chunk ended inside the carried value: keep it for the next one */
    }
    uint64_t whole = len / (size_t)elem, first = 0;
    int cls = 0;
    if (npyfile_check_values(p, whole, elem, s->data_seen / (uint64_t)elem, &first, &cls))
        return npyfile_stream_nonfinite(s, first, cls);
    size_t rest = len - (size_t)whole * (size_t)elem;
    assert(rest < (size_t)elem && rest <= sizeof s->carry);
    memcpy(s->carry, p + whole * (uint64_t)elem, rest);
    s->carry_len = (int)rest;
    s->data_seen += len;
    return 0;
}

int npyfile_stream_feed(npyfile_stream *s, const void *buf, size_t len, char *err, size_t errlen)
{
    const unsigned char *p = buf;
    assert(s && (buf || len == 0));
    if (!s->failed && !s->have_layout)
        npyfile_stream_head(s, &p, &len);
    if (!s->failed && len > 0) {
        if (len > s->lay.data_bytes - s->data_seen)
            npyfile_stream_fail(s, "the upload is longer than its header says (%lld x %d values, %llu bytes): "
                                "send exactly the file np.save wrote", (long long)s->lay.n_rows, s->lay.dim,
                                (unsigned long long)s->lay.file_bytes);
        else
            npyfile_stream_values(s, p, len);
    }
    return s->failed ? npyfile_fail(err, errlen, "%s", s->err) : 0;
}

int npyfile_stream_layout(const npyfile_stream *s, npyfile_layout *out)
{
    assert(s && out);
    if (!s->have_layout || s->failed)
        return 0;
    *out = s->lay;
    return 1;
}

int npyfile_stream_finish(npyfile_stream *s, npyfile_layout *out, char *err, size_t errlen)
{
    assert(s);
    if (!s->failed && !s->have_layout)
        npyfile_stream_fail(s, "the upload ended inside the .npy header (%zu bytes received): send the whole file",
                            s->head_len);
    if (!s->failed && s->data_seen < s->lay.data_bytes)
        npyfile_stream_fail(s, "the upload is truncated: %llu of the %llu bytes the header describes arrived: "
                            "send the whole file", (unsigned long long)(s->head_len + s->data_seen),
                            (unsigned long long)s->lay.file_bytes);
    if (s->failed)
        return npyfile_fail(err, errlen, "%s", s->err);
    assert(s->data_seen == s->lay.data_bytes && s->carry_len == 0); /* every value was checked */
    if (out)
        *out = s->lay;
    return 0;
}

/* ---------------------------------------------------------------- labels */

/* Validates the text and counts its lines. */
static int npyfile_labels_count_lines(const unsigned char *s, size_t n, int64_t *lines, char *err, size_t errlen)
{
    assert(s && lines); /* n may be 0: a file holding only a byte-order mark */
    int64_t line = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '\n') {
            line++;
            i++;
            continue;
        }
        size_t k = utf8_seq_len(s + i, n - i);
        if (k == 0)
            return npyfile_fail(err, errlen, s[i] ? "line %lld is not valid UTF-8: save the labels as UTF-8 text"
                                                  : "line %lld holds a NUL byte: labels must be plain text",
                                (long long)line + 1);
        i += k;
    }
    *lines = line + (n > 0 && s[n - 1] != '\n');
    return 0;
}

static int npyfile_labels_index(npyfile_labels *l)
{
    assert(l && l->n >= 0 && (l->n == 0 || l->map) && !l->starts);
    l->starts = malloc(((size_t)(l->n / NPYFILE_LABELS_STRIDE) + 1) * sizeof *l->starts);
    if (!l->starts)
        return -1;
    if (l->n == 0)
        return 0; /* an empty file has no mapping */
    const unsigned char *s = l->map + l->base, *end = l->map + l->len;
    for (int64_t i = 0; i < l->n; i++) {
        if (i % NPYFILE_LABELS_STRIDE == 0)
            l->starts[i / NPYFILE_LABELS_STRIDE] = (uint64_t)(s - l->map);
        const unsigned char *nl = memchr(s, '\n', (size_t)(end - s));
        s = nl ? nl + 1 : end;
    }
    return 0;
}

static int npyfile_labels_load(npyfile_labels *l, int64_t n_rows, char *err, size_t errlen)
{
    assert(l && n_rows >= 0 && (l->map || l->len == 0));
    if (l->len >= 3 && !memcmp(l->map, "\xef\xbb\xbf", 3))
        l->base = 3;
    if (l->len > 0 && npyfile_labels_count_lines(l->map + l->base, l->len - l->base, &l->n, err, errlen) != 0)
        return -1;
    if (l->n != n_rows)
        return npyfile_fail(err, errlen, "the labels file has %lld lines but the dataset has %lld rows: "
                            "write exactly one line per row", (long long)l->n, (long long)n_rows);
    return npyfile_labels_index(l) == 0 ? 0 : npyfile_fail(err, errlen, "out of memory");
}

int npyfile_labels_open(const char *path, int64_t n_rows, npyfile_labels **out, char *err, size_t errlen)
{
    int fd;
    uint64_t size;
    assert(path && out && n_rows >= 0);
    *out = NULL;
    if (npyfile_open_regular(path, &fd, &size, err, errlen) != 0)
        return -1;
    npyfile_labels *l = calloc(1, sizeof *l);
    int rc = l ? 0 : npyfile_fail(err, errlen, "out of memory");
    if (rc == 0 && size > (uint64_t)SIZE_MAX)
        rc = npyfile_fail(err, errlen, "the labels file is too large to map");
    if (rc == 0 && size > 0)
        rc = npyfile_map_fd(fd, (size_t)size, &l->map, err, errlen);
    close(fd);
    if (rc == 0) {
        l->len = (size_t)size;
        if (l->map)
            madvise((void *)l->map, l->len, MADV_SEQUENTIAL);
        rc = npyfile_labels_load(l, n_rows, err, errlen);
    }
    if (rc != 0) {
        npyfile_labels_close(l);
        return -1;
    }
    if (l->map)
        madvise((void *)l->map, l->len, MADV_RANDOM);
    *out = l;
    return 0;
}

void npyfile_labels_close(npyfile_labels *l)
{
    if (!l)
        return;
    if (l->map)
        munmap((void *)l->map, l->len);
    free(l->starts);
    free(l);
}

int64_t npyfile_labels_count(const npyfile_labels *l)
{
    assert(l);
    return l->n;
}

int npyfile_labels_get(const npyfile_labels *l, int64_t i, const char **s, size_t *len)
{
    assert(l && s && len);
    if (i < 0 || i >= l->n)
        return -1;
    assert(l->map && l->starts); /* n >= 1: a mapped file and its line index */
    const unsigned char *p = l->map + l->starts[i / NPYFILE_LABELS_STRIDE], *end = l->map + l->len;
    for (int64_t k = i % NPYFILE_LABELS_STRIDE; k > 0; k--)
        p = (const unsigned char *)memchr(p, '\n', (size_t)(end - p)) + 1; /* the line count proves it exists */
    const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = (size_t)((nl ? nl : end) - p);
    if (n > 0 && p[n - 1] == '\r')
        n--;
    *s = (const char *)p;
    *len = n;
    return 0;
}
