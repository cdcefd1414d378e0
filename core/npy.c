/* npy — NumPy .npy v1.0 header writer and a strict, bounds-checked parser.
 *
 * Layout: "\x93NUMPY", major, minor, header length (u16 LE for v1, u32 LE for
 * v2/v3), then a Python dict literal {'descr': ..., 'fortran_order': ...,
 * 'shape': (...)} padded with spaces and ended by '\n' so the data starts at a
 * multiple of 64 bytes. The parser reads v1, v2 and v3 headers (the dict is the
 * same), treats its input as hostile (it is fed imported files and uploads)
 * and never reads outside buf[0..len). */
#include "npy.h"
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

size_t npy_header(char *buf, size_t cap, const char *descr, const int64_t *shape, int ndim)
{
    char dict[NPY_HEADER_MAX];
    assert(buf && descr && (ndim <= 0 || shape));
    if (ndim < 0 || ndim > NPY_MAX_DIMS || strlen(descr) >= sizeof(((npy_info *)0)->descr))
        return 0;
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < ndim && n > 0 && (size_t)n < sizeof dict; i++)
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld,%s", (long long)shape[i],
                      (ndim > 1 && i < ndim - 1) ? " " : "");
    if (n > 0 && (size_t)n < sizeof dict && ndim > 1)
        n--; /* (2, 3) rather than (2, 3,); a 1-D shape keeps its comma: (5,) */
    if (n <= 0 || (size_t)n >= sizeof dict)
        return 0;
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    size_t body = (size_t)n + 1; /* dict + '\n' */
    size_t total = (10 + body + 63) / 64 * 64;
    if (total > cap || total - 10 > 65535)
        return 0;
    assert(total % 64 == 0 && total - 10 > (size_t)n); /* room for the dict and its '\n' */
    memcpy(buf, npy_magic, 6);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)((total - 10) & 0xff);
    buf[9] = (char)((total - 10) >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', total - 10 - (size_t)n - 1);
    buf[total - 1] = '\n';
    return total;
}

/* A cursor over the header dict. */
typedef struct {
    const char *p, *end;
    char *err;
    size_t errlen;
} npy_cur;

static int npy_fail(npy_cur *c, const char *msg)
{
    assert(c && msg);
    snprintf(c->err, c->errlen, "%s", msg);
    return -1;
}

static void npy_ws(npy_cur *c)
{
    while (c->p < c->end && isspace((unsigned char)*c->p))
        c->p++;
}

static int npy_expect(npy_cur *c, char ch)
{
    npy_ws(c);
    if (c->p >= c->end || *c->p != ch)
        return -1;
    c->p++;
    return 0;
}

/* A quoted string into out (cap bytes incl. NUL). */
static int npy_string(npy_cur *c, char *out, size_t cap)
{
    assert(c && c->p && c->p <= c->end && out && cap >= 1);
    npy_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return npy_fail(c, "malformed .npy header: expected a quoted string");
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (n + 1 >= cap)
            return npy_fail(c, "malformed .npy header: string too long");
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return npy_fail(c, "malformed .npy header: unterminated string");
    c->p++;
    out[n] = '\0';
    return 0;
}

static int npy_word(npy_cur *c, const char *w)
{
    size_t n = strlen(w);
    npy_ws(c);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0)
        return -1;
    c->p += n;
    return 0;
}

static int npy_shape(npy_cur *c, npy_info *out)
{
    assert(c && c->p && c->p <= c->end && out);
    if (npy_expect(c, '(') != 0)
        return npy_fail(c, "malformed .npy header: shape is not a tuple");
    out->ndim = 0;
    for (;;) {
        npy_ws(c);
        if (c->p < c->end && *c->p == ')') {
            c->p++;
            return 0;
        }
        if (c->p >= c->end || !isdigit((unsigned char)*c->p))
            return npy_fail(c, "malformed .npy header: shape must hold non-negative integers");
        if (out->ndim == NPY_MAX_DIMS)
            return npy_fail(c, "arrays of more than 4 dimensions are not supported");
        int64_t v = 0;
        while (c->p < c->end && isdigit((unsigned char)*c->p)) {
            if (v > (INT64_C(1) << 50))
                return npy_fail(c, "malformed .npy header: dimension too large");
            v = v * 10 + (*c->p++ - '0');
        }
        out->shape[out->ndim++] = v;
        npy_ws(c);
        if (c->p < c->end && *c->p == ',')
            c->p++;
        else if (c->p >= c->end || *c->p != ')')
            return npy_fail(c, "malformed .npy header: bad shape tuple");
    }
}

/* One "key: value" entry; sets bit 1/2/4 in *seen for descr/fortran/shape. */
static int npy_entry(npy_cur *c, npy_info *out, int *seen)
{
    assert(c && out && seen);
    char key[32];
    if (npy_string(c, key, sizeof key) != 0)
        return -1;
    if (npy_expect(c, ':') != 0)
        return npy_fail(c, "malformed .npy header: expected ':'");
    if (strcmp(key, "descr") == 0) {
        *seen |= 1;
        return npy_string(c, out->descr, sizeof out->descr);
    }
    if (strcmp(key, "fortran_order") == 0) {
        *seen |= 2;
        if (npy_word(c, "False") == 0)
            return 0;
        if (npy_word(c, "True") == 0)
            return npy_fail(c, "Fortran order is not supported; save with np.ascontiguousarray(a)");
        return npy_fail(c, "malformed .npy header: fortran_order must be True or False");
    }
    if (strcmp(key, "shape") == 0) {
        *seen |= 4;
        return npy_shape(c, out);
    }
    return npy_fail(c, "malformed .npy header: unexpected key");
}

static int npy_dict(npy_cur *c, npy_info *out)
{
    assert(c && c->p && c->p <= c->end && out);
    int seen = 0;
    if (npy_expect(c, '{') != 0)
        return npy_fail(c, "malformed .npy header: expected '{'");
    for (;;) {
        npy_ws(c);
        if (c->p < c->end && *c->p == '}')
            break;
        if (npy_entry(c, out, &seen) != 0)
            return -1;
        npy_ws(c);
        if (c->p < c->end && *c->p == ',')
            c->p++;
        else if (c->p >= c->end || *c->p != '}')
            return npy_fail(c, "malformed .npy header: expected ',' or '}'");
    }
    if (seen != 7)
        return npy_fail(c, "malformed .npy header: needs descr, fortran_order and shape");
    if (out->descr[0] == '>')
        return npy_fail(c, "big-endian arrays are not supported; save with a.astype('<f4')");
    return 0;
}

int npy_parse_header(const void *buf, size_t len, npy_info *out, char *err, size_t errlen)
{
    const unsigned char *b = buf;
    npy_cur c = {0, 0, err, errlen};
    assert((buf || len == 0) && out && (err || errlen == 0));
    memset(out, 0, sizeof *out);
    if (len < 10 || memcmp(b, npy_magic, 6) != 0)
        return npy_fail(&c, "not a .npy file");
    size_t prefix, hlen;
    if (b[6] == 1) {
        prefix = 10;
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
    } else if ((b[6] == 2 || b[6] == 3) && len >= 12) {
        prefix = 12;
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    } else {
        return npy_fail(&c, "unsupported .npy version (1.0, 2.0 and 3.0 are read)");
    }
    if (hlen > len - prefix)
        return npy_fail(&c, "truncated .npy header");
    c.p = (const char *)b + prefix;
    c.end = c.p + hlen;
    if (npy_dict(&c, out) != 0)
        return -1;
    out->header_len = prefix + hlen;
    assert(out->header_len <= len && out->ndim >= 0 && out->ndim <= NPY_MAX_DIMS);
    assert(memchr(out->descr, '\0', sizeof out->descr)); /* npy_string kept it terminated */
    return 0;
}
