/* tar — ustar writer and strict reader (include/tar.h).
 *
 * The writer fills each header field by field (octal numbers NUL-terminated,
 * checksum over the header with its own field as spaces) and copies the data
 * after it. The reader never trusts a header: the checksum is checked first
 * (unsigned sum, or the signed sum old tars wrote), only the size field is
 * parsed as a number (strict octal), every length is checked against the
 * bytes left in the buffer before a pointer is formed, and paths are
 * normalised and refused when they could name something outside the folder.
 * A PAX header's records are parsed exactly ("LEN key=value\n", LEN counting
 * the whole record). */
#include "tar.h"
#include <assert.h>
#include <stdio.h>
#include <string.h>

/* Header field offsets and widths (POSIX ustar). */
enum {
    TAR_NAME = 0, TAR_NAME_LEN = 100, TAR_MODE = 100, TAR_UID = 108, TAR_GID = 116, TAR_SIZE = 124,
    TAR_SIZE_LEN = 12, TAR_MTIME = 136, TAR_CHKSUM = 148, TAR_TYPE = 156, TAR_MAGIC = 257, TAR_VERSION = 263,
    TAR_PREFIX = 345, TAR_PREFIX_LEN = 155
};

static size_t tar_padded(uint64_t size)
{
    return (size_t)((size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK);
}

/* ---- writing ---- */

static int tar_name_ok(const char *name)
{
    assert(name);
    size_t n = strlen(name);
    if (n == 0 || n >= TAR_NAME_LEN || name[0] == '/' || strstr(name, "..")) return 0;
    return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/") == n;
}

size_t tar_archive_size(const tar_file *f, int n)
{
    assert(f || n == 0);
    assert(n >= 0);
    size_t total = 2 * TAR_BLOCK;
    for (int i = 0; i < n; i++) {
        if (f[i].len > SIZE_MAX - TAR_BLOCK) return SIZE_MAX;
        size_t add = TAR_BLOCK + tar_padded(f[i].len);
        if (add > SIZE_MAX - total) return SIZE_MAX;
        total += add;
    }
    return total;
}

/* An octal number into a field of width w, NUL-terminated (w - 1 digits). */
static void tar_octal(unsigned char *field, int w, uint64_t v)
{
    assert(field && w >= 2 && w <= 12);
    char tmp[16];
    snprintf(tmp, sizeof tmp, "%0*llo", w - 1, (unsigned long long)v);
    memcpy(field, tmp, (size_t)w); /* the digits and snprintf's NUL */
}

static unsigned tar_sum(const unsigned char *h, int sign)
{
    assert(h);
    unsigned s = 0;
    for (int i = 0; i < TAR_BLOCK; i++) {
        int c = i >= TAR_CHKSUM && i < TAR_CHKSUM + 8 ? ' ' : sign ? (int)(signed char)h[i] : (int)h[i];
        s += (unsigned)c;
    }
    return s;
}

static void tar_header(unsigned char *h, const tar_file *f, int64_t mtime)
{
    assert(h && f && tar_name_ok(f->name));
    assert(mtime >= 0);
    memset(h, 0, TAR_BLOCK);
    memcpy(h + TAR_NAME, f->name, strlen(f->name));
    tar_octal(h + TAR_MODE, 8, 0644);
    tar_octal(h + TAR_UID, 8, 0);
    tar_octal(h + TAR_GID, 8, 0);
    tar_octal(h + TAR_SIZE, TAR_SIZE_LEN, f->len);
    tar_octal(h + TAR_MTIME, 12, (uint64_t)mtime);
    h[TAR_TYPE] = '0';
    memcpy(h + TAR_MAGIC, "ustar", 6);
    memcpy(h + TAR_VERSION, "00", 2);
    char sum[8];
    snprintf(sum, sizeof sum, "%06o", tar_sum(h, 0) & 0777777u);
    memcpy(h + TAR_CHKSUM, sum, 7); /* six digits and NUL; the eighth byte stays a space */
    h[TAR_CHKSUM + 7] = ' ';
}

int tar_write(const tar_file *f, int n, int64_t mtime, unsigned char *out, size_t out_len)
{
    assert(f || n == 0);
    assert(n >= 0 && mtime >= 0);
    assert(out);
    if (out_len != tar_archive_size(f, n)) return -1;
    for (int i = 0; i < n; i++)
        if (!tar_name_ok(f[i].name) || (f[i].len && !f[i].data)) return -1;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        tar_header(out + off, &f[i], mtime);
        off += TAR_BLOCK;
        if (f[i].len) memcpy(out + off, f[i].data, f[i].len);
        memset(out + off + f[i].len, 0, tar_padded(f[i].len) - f[i].len);
        off += tar_padded(f[i].len);
    }
    memset(out + off, 0, 2 * TAR_BLOCK);
    return 0;
}

/* ---- reading ---- */

static int tar_fail(char *err, size_t errlen, size_t off, const char *what)
{
    assert(err && what);
    snprintf(err, errlen, "the tar archive is not valid at byte %zu: %s", off, what);
    return -1;
}

/* The octal number of a header field (w bytes): optional leading spaces, at least one digit, then
 * only NULs or spaces. 0, or -1 (also for GNU's base-256 form, high bit set). */
static int tar_parse_octal(const unsigned char *field, int w, uint64_t *out)
{
    assert(field && out);
    assert(w >= 1 && w <= TAR_SIZE_LEN);
    int i = 0, digits = 0;
    uint64_t v = 0;
    while (i < w && field[i] == ' ') i++;
    for (; i < w && field[i] >= '0' && field[i] <= '7'; i++, digits++) v = v * 8 + (uint64_t)(field[i] - '0');
    for (; i < w; i++)
        if (field[i] != '\0' && field[i] != ' ') return -1;
    if (!digits) return -1;
    *out = v;
    return 0;
}

static int tar_all_zero(const unsigned char *p, size_t n)
{
    assert(p || n == 0);
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

/* Normalises path p (n bytes) into out: "." components dropped, a trailing "/" marks a directory.
 * 0, or -1 with a message: empty, absolute, "..", "//", control bytes, too long. */
static int tar_clean_path(const char *p, size_t n, char *out, int *is_dir, const char **why)
{
    assert(p && out && is_dir && why);
    size_t w = 0, i = 0;
    *is_dir = n > 0 && p[n - 1] == '/';
    if (n == 0 || p[0] == '/') return *why = n ? "an absolute path; the archive must hold relative paths" : "an empty name", -1;
    while (i < n) {
        size_t end = i;
        while (end < n && p[end] != '/') end++;
        size_t len = end - i;
        if (len == 0 && end < n) return *why = "an empty path component ('//')", -1;
        if (len == 2 && p[i] == '.' && p[i + 1] == '.') return *why = "a '..' component (path traversal)", -1;
        if (len > 0 && !(len == 1 && p[i] == '.')) {
            if (w + (w > 0) + len > TAR_PATH_MAX) return *why = "a path longer than 255 bytes", -1;
            if (w > 0) out[w++] = '/';
            for (size_t k = i; k < end; k++) {
                unsigned char c = (unsigned char)p[k];
                if (c < 0x20 || c == 0x7f) return *why = "a control character in a path", -1;
                out[w++] = (char)c;
            }
        }
        i = end + 1;
    }
    out[w] = '\0';
    return 0;
}

/* PAX records "LEN key=value\n" of data (n bytes): "path" into path (*has_path), "size" into *size
 * (*has_size); other keys are ignored. 0, or -1 with *why. */
typedef struct {
    char path[TAR_PATH_MAX * 2 + 2]; /* raw, cleaned when applied */
    size_t path_len;
    int has_path, has_size;
    uint64_t size;
} tar_pax;

static int tar_pax_record(const char *key, size_t klen, const char *val, size_t vlen, tar_pax *x, const char **why)
{
    assert(key && val && x && why);
    if (klen == 4 && !memcmp(key, "path", 4)) {
        if (vlen >= sizeof x->path) return *why = "a PAX path longer than 511 bytes", -1;
        memcpy(x->path, val, vlen);
        x->path_len = vlen, x->has_path = 1;
    } else if (klen == 4 && !memcmp(key, "size", 4)) {
        uint64_t v = 0;
        if (vlen == 0 || vlen > 19) return *why = "a PAX size that is not a decimal number", -1;
        for (size_t i = 0; i < vlen; i++) {
            if (val[i] < '0' || val[i] > '9') return *why = "a PAX size that is not a decimal number", -1;
            v = v * 10 + (uint64_t)(val[i] - '0');
        }
        x->size = v, x->has_size = 1;
    }
    return 0;
}

static int tar_pax_parse(const unsigned char *d, size_t n, tar_pax *x, const char **why)
{
    assert(d && x && why);
    size_t i = 0;
    while (i < n) {
        size_t len = 0, j = i;
        while (j < n && d[j] >= '0' && d[j] <= '9' && j - i < 7) len = len * 10 + (size_t)(d[j++] - '0');
        if (j == i || j >= n || d[j] != ' ' || len < 5 || len > n - i || d[i + len - 1] != '\n')
            return *why = "a malformed PAX record", -1;
        const char *key = (const char *)d + j + 1, *rec_end = (const char *)d + i + len - 1;
        const char *eq = memchr(key, '=', (size_t)(rec_end - key));
        if (!eq || eq == key) return *why = "a PAX record without 'key='", -1;
        if (tar_pax_record(key, (size_t)(eq - key), eq + 1, (size_t)(rec_end - eq - 1), x, why)) return -1;
        i += len;
    }
    return 0;
}

void tar_reader_init(tar_reader *r, const void *buf, size_t len)
{
    assert(r && (buf || len == 0));
    r->buf = buf;
    r->len = len;
    r->off = 0;
    r->done = 0;
}

/* Checks the header block at r->off: checksum, magic, size. *posix: the magic is POSIX's (its
 * prefix field holds a path). 0, or -1 with *why. */
static int tar_check_header(const unsigned char *h, int *posix, uint64_t *size, const char **why)
{
    assert(h && posix && size && why);
    uint64_t sum;
    if (tar_parse_octal(h + TAR_CHKSUM, 8, &sum) || (sum != tar_sum(h, 0) && sum != (tar_sum(h, 1) & 0777777u)))
        return *why = "a header checksum does not match (not a tar file, or corrupted)", -1;
    *posix = !memcmp(h + TAR_MAGIC, "ustar\0" "00", 8);
    if (!*posix && memcmp(h + TAR_MAGIC, "ustar  \0", 8))
        return *why = "not a ustar header (write the archive with tar(1) or Python's tarfile)", -1;
    if (tar_parse_octal(h + TAR_SIZE, TAR_SIZE_LEN, size)) return *why = "a size field that is not octal", -1;
    return 0;
}

/* The raw path of header h (prefix "/" name for POSIX headers) into out (>= 258 bytes); its length. */
static size_t tar_raw_path(const unsigned char *h, int posix, char *out)
{
    assert(h && out);
    size_t plen = posix ? strnlen((const char *)h + TAR_PREFIX, TAR_PREFIX_LEN) : 0;
    size_t nlen = strnlen((const char *)h + TAR_NAME, TAR_NAME_LEN), w = 0;
    if (plen) {
        memcpy(out, h + TAR_PREFIX, plen);
        w = plen;
        out[w++] = '/';
    }
    memcpy(out + w, h + TAR_NAME, nlen);
    return w + nlen;
}

static const char *tar_type_refusal(unsigned char t)
{
    switch (t) {
    case '1': return "a hard link; the archive must hold regular files only";
    case '2': return "a symbolic link; the archive must hold regular files only";
    case '3': case '4': case '6': return "a device or FIFO; the archive must hold regular files only";
    case 'L': case 'K': return "a GNU long-name entry; use names under 100 bytes or the POSIX (pax) format";
    default: return "an entry type saed does not read; the archive must hold regular files only";
    }
}

/* The end-of-archive block at r->off: the rest of the buffer must be zeros. */
static int tar_end(tar_reader *r, char *err, size_t errlen)
{
    assert(r && err);
    if (!tar_all_zero(r->buf + r->off, r->len - r->off))
        return tar_fail(err, errlen, r->off, "data after the end-of-archive block");
    r->done = 1;
    r->off = r->len;
    return 0;
}

static int tar_is_file(unsigned char type)
{
    return type == '0' || type == '\0' || type == '7'; /* '7': contiguous file, read as a regular one */
}

/* A PAX header's records (data, size bytes) into *pax; a global header's ('g') are checked and
 * ignored. 2 (go on to the next header), or -1. */
static int tar_take_pax(unsigned char type, const unsigned char *data, uint64_t size, size_t off, tar_pax *pax,
                        char *err, size_t errlen)
{
    assert(data && pax && err);
    const char *why = NULL;
    if (size > TAR_PAX_MAX) return tar_fail(err, errlen, off, "a PAX header larger than 64 KiB");
    tar_pax got = *pax;
    if (tar_pax_parse(data, (size_t)size, &got, &why)) return tar_fail(err, errlen, off, why);
    if (type == 'x') *pax = got;
    return 2;
}

/* The entry of header h (at byte off; its data, size bytes) into e, its path from *pax if set. 1, or -1. */
static int tar_fill(const unsigned char *h, int posix, const unsigned char *data, uint64_t size, const tar_pax *pax,
                    size_t off, tar_entry *e, char *err, size_t errlen)
{
    assert(h && data && pax && e && err);
    const char *why = NULL;
    char raw[TAR_PREFIX_LEN + TAR_NAME_LEN + 2];
    unsigned char type = h[TAR_TYPE];
    if (!tar_is_file(type) && type != '5') return tar_fail(err, errlen, off, tar_type_refusal(type));
    size_t n = pax->has_path ? pax->path_len : tar_raw_path(h, posix, raw);
    if (tar_clean_path(pax->has_path ? pax->path : raw, n, e->path, &e->is_dir, &why))
        return tar_fail(err, errlen, off, why);
    e->is_dir = e->is_dir || type == '5';
    if (e->is_dir && size != 0) return tar_fail(err, errlen, off, "a directory entry with data");
    if (!e->is_dir && !e->path[0]) return tar_fail(err, errlen, off, "a file without a name");
    e->data = data;
    e->size = size;
    return 1;
}

/* The header at r->off: 1 an entry in e, 2 a PAX header taken into *pax, 0 the end, -1 an error. */
static int tar_step(tar_reader *r, tar_pax *pax, tar_entry *e, char *err, size_t errlen)
{
    assert(r && pax && e && err);
    const char *why = NULL;
    if (r->len - r->off < TAR_BLOCK)
        return tar_fail(err, errlen, r->off, "the archive ends without its end-of-archive block (truncated?)");
    const unsigned char *h = r->buf + r->off;
    if (tar_all_zero(h, TAR_BLOCK))
        return pax->has_path || pax->has_size ? tar_fail(err, errlen, r->off, "a PAX header with no entry after it")
                                              : tar_end(r, err, errlen);
    int posix;
    uint64_t size;
    if (tar_check_header(h, &posix, &size, &why)) return tar_fail(err, errlen, r->off, why);
    if (pax->has_size && tar_is_file(h[TAR_TYPE])) size = pax->size;
    size_t off = r->off, data_off = off + TAR_BLOCK, left = r->len - data_off;
    if (size > left || tar_padded(size) > left)
        return tar_fail(err, errlen, off, "an entry's data runs past the end of the archive (truncated?)");
    r->off = data_off + tar_padded(size);
    if (h[TAR_TYPE] == 'x' || h[TAR_TYPE] == 'g')
        return tar_take_pax(h[TAR_TYPE], r->buf + data_off, size, data_off, pax, err, errlen);
    return tar_fill(h, posix, r->buf + data_off, size, pax, off, e, err, errlen);
}

int tar_next(tar_reader *r, tar_entry *e, char *err, size_t errlen)
{
    assert(r && e && err);
    assert(r->off <= r->len && (r->buf || r->len == 0));
    tar_pax pax = { .has_path = 0 };
    int rc = 2;
    while (!r->done && rc == 2) rc = tar_step(r, &pax, e, err, errlen);
    return r->done && rc != -1 ? 0 : rc;
}
