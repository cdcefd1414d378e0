/* test_readers — the real-data readers: .npy activation files (float32 and
 * float16, v1/v2 headers, written by numpy), the half->float conversion over
 * all 65536 bit patterns against numpy, rejections with their messages, the
 * finiteness scan, the upload stream validator in tiny chunks, labels files,
 * IDX images/labels (synthetic plain and gzipped, hostile variants, the real
 * Fashion-MNIST t10k files), and random-input runs of the pure parsers.
 * Fixtures go to a fresh temporary directory, removed at the end. */
#include "check.h"
#include "idx.h"
#include "npy.h"
#include "npyfile.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#define NPY_N 37
#define NPY_DIM 5

/* Writes every numpy fixture and the reference values in one python run. */
static const char fixture_py[] =
    "import sys, gzip, os, numpy as np\n"
    "d = sys.argv[1]\n"
    "i = np.arange(37)[:, None]; j = np.arange(5)[None, :]\n"
    "a = i * 0.5 + j - 3.0\n"
    "np.save(d + '/f4.npy', a.astype('<f4'))\n"
    "np.save(d + '/f2.npy', a.astype('<f2'))\n"
    "with open(d + '/f4v2.npy', 'wb') as f:\n"
    "    np.lib.format.write_array(f, a.astype('<f4'), version=(2, 0))\n"
    "np.save(d + '/f8.npy', a)\n"
    "np.save(d + '/i4.npy', a.astype('<i4'))\n"
    "np.save(d + '/be.npy', a.astype('>f4'))\n"
    "np.save(d + '/fortran.npy', np.asfortranarray(a.astype('<f4')))\n"
    "np.save(d + '/one_d.npy', np.arange(5, dtype='<f4'))\n"
    "np.save(d + '/three_d.npy', np.zeros((2, 3, 4), '<f4'))\n"
    "np.save(d + '/empty.npy', np.zeros((0, 4), '<f4'))\n"
    "b = a.astype('<f4'); b[3, 4] = np.nan; b[7, 1] = np.inf\n"
    "np.save(d + '/nan.npy', b)\n"
    "c = a.astype('<f2'); c[5, 2] = -np.inf\n"
    "np.save(d + '/inf2.npy', c)\n"
    "h = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)\n"
    "h.view(np.uint32).astype('<u4').tofile(d + '/half.bin')\n"
    "fm = '" FASHION_DIR "'\n"
    "if os.path.exists(fm + '/t10k-images-idx3-ubyte.gz'):\n"
    "    x = np.frombuffer(gzip.open(fm + '/t10k-images-idx3-ubyte.gz').read(), np.uint8, offset=16)\n"
    "    y = np.frombuffer(gzip.open(fm + '/t10k-labels-idx1-ubyte.gz').read(), np.uint8, offset=8)\n"
    "    x = x.reshape(-1, 784).astype(np.float64) / 255\n"
    "    with open(d + '/fashion_ref.txt', 'w') as f:\n"
    "        f.write('%d %.9f %.9f %d %d %d\\n' % (len(y), x.sum(), x[1234].sum(), y[0], y[1], y[9999]))\n";

static void path_in(const char *dir, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", dir, name);
}

static int write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

/* Reads a whole file into a malloc'd buffer; NULL on failure. */
static unsigned char *read_bytes(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int make_fixtures(const char *dir)
{
    char script[512], cmd[1200];
    path_in(dir, "fixtures.py", script, sizeof script);
    if (write_bytes(script, fixture_py, sizeof fixture_py - 1) != 0)
        return -1;
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", script, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static uint64_t lcg_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* perm (n): a random permutation of 0..n-1. */
static void shuffle(uint64_t *perm, int n, uint64_t seed)
{
    for (int i = 0; i < n; i++)
        perm[i] = (uint64_t)i;
    for (int i = n - 1; i > 0; i--) {
        int k = (int)(lcg_next(&seed) % (uint64_t)(i + 1));
        uint64_t t = perm[i];
        perm[i] = perm[k];
        perm[k] = t;
    }
}

static int contains(const char *s, const char *sub)
{
    return strstr(s, sub) != NULL;
}

/* ---------------------------------------------------------------- half */

static uint32_t float_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static void test_half(const char *dir)
{
    char path[512];
    size_t len = 0;
    path_in(dir, "half.bin", path, sizeof path);
    unsigned char *tab = read_bytes(path, &len); /* (65536) u32 LE float32 bits from numpy */
    CHECK(tab && len == 65536 * 4, "numpy's half table (%zu bytes)", len);
    if (!tab || len != 65536 * 4) {
        free(tab);
        return;
    }
    int exact = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t want;
        memcpy(&want, tab + 4 * h, 4);
        uint32_t got = float_bits(npyfile_half_to_float((uint16_t)h));
        if (got == want)
            exact++;
        else
            CHECK(0, "half 0x%04x: got 0x%08x, numpy 0x%08x", h, got, want);
    }
    CHECK(exact == 65536, "all 65536 half patterns give numpy's float32 bits, NaN payloads too (%d)", exact);
    CHECK(npyfile_half_to_float(0x3c00) == 1.0f, "0x3c00 is 1");
    CHECK(npyfile_half_to_float(0x0001) == ldexpf(1.0f, -24), "0x0001 is the smallest subnormal");
    CHECK(npyfile_half_to_float(0x7bff) == 65504.0f, "0x7bff is the largest half");
    CHECK(isinf(npyfile_half_to_float(0xfc00)) && npyfile_half_to_float(0xfc00) < 0, "0xfc00 is -inf");
    CHECK(float_bits(npyfile_half_to_float(0x8000)) == 0x80000000u, "0x8000 is -0");
    free(tab);
}

/* ---------------------------------------------------------------- npy files */

static float npy_expected(int i, int j)
{
    return (float)(i * 0.5 + j - 3.0);
}

/* Reads every row of f in a random order, in batches of 7, through a data source. */
static void check_rows(const npyfile *f, const char *what)
{
    data_source src;
    uint64_t perm[NPY_N];
    float out[7 * NPY_DIM]; /* (7, dim) */
    int bad = 0;
    npyfile_source(&src, f);
    CHECK(src.dim == NPY_DIM && src.n_rows == NPY_N, "%s: source shape (%lld, %d)", what, (long long)src.n_rows,
          src.dim);
    shuffle(perm, NPY_N, 42);
    for (int b = 0; b < NPY_N; b += 7) {
        int n = NPY_N - b < 7 ? NPY_N - b : 7;
        CHECK(src.get_rows(src.ctx, perm + b, n, out) == 0, "%s: get_rows", what);
        for (int r = 0; r < n; r++)
            for (int j = 0; j < NPY_DIM; j++)
                bad += out[r * NPY_DIM + j] != npy_expected((int)perm[b + r], j);
    }
    CHECK(bad == 0, "%s: %d values differ from numpy's", what, bad);
    uint64_t past = NPY_N;
    CHECK(npyfile_get_rows(f, &past, 1, out) == -1, "%s: row n_rows is out of range", what);
}

static void test_npy_read(const char *dir)
{
    static const struct { const char *name; int elem; } cases[] = {{"f4.npy", 4}, {"f2.npy", 2}, {"f4v2.npy", 4}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[512], err[320] = "";
        npyfile *f = NULL;
        path_in(dir, cases[c].name, path, sizeof path);
        CHECK(npyfile_open(path, &f, err, sizeof err) == 0, "open %s: %s", cases[c].name, err);
        if (!f)
            continue;
        const npyfile_layout *lay = npyfile_get_layout(f);
        CHECK(lay->n_rows == NPY_N && lay->dim == NPY_DIM && lay->elem_size == cases[c].elem,
              "%s: layout (%lld, %d) elem %d", cases[c].name, (long long)lay->n_rows, lay->dim, lay->elem_size);
        CHECK(lay->data_bytes == (uint64_t)NPY_N * NPY_DIM * (uint64_t)cases[c].elem, "%s: data bytes",
              cases[c].name);
        check_rows(f, cases[c].name);
        CHECK(npyfile_scan(f, err, sizeof err) == 0, "%s: scan of finite data: %s", cases[c].name, err);
        npyfile_close(f);
    }
}

/* Opening dir/name must fail with a message containing want. */
static void expect_open_error(const char *dir, const char *name, const char *want)
{
    char path[512], err[320] = "";
    npyfile *f = NULL;
    path_in(dir, name, path, sizeof path);
    int rc = npyfile_open(path, &f, err, sizeof err);
    CHECK(rc == -1 && f == NULL && contains(err, want), "%s: expected an error with \"%s\", got rc %d \"%s\"",
          name, want, rc, err);
    npyfile_close(f);
}

/* Writes dir/name as the first len bytes of src, plus extra bytes. */
static void write_variant(const char *dir, const char *name, const unsigned char *src, size_t len, size_t extra)
{
    char path[512];
    unsigned char *buf = calloc(len + extra + 1, 1);
    memcpy(buf, src, len);
    path_in(dir, name, path, sizeof path);
    CHECK(write_bytes(path, buf, len + extra) == 0, "write %s", name);
    free(buf);
}

static void test_npy_reject(const char *dir)
{
    char path[512];
    size_t len = 0;
    expect_open_error(dir, "f8.npy", "astype('<f4')");
    expect_open_error(dir, "i4.npy", "dtype '<i4' is not supported");
    expect_open_error(dir, "be.npy", "big-endian");
    expect_open_error(dir, "fortran.npy", "Fortran");
    expect_open_error(dir, "one_d.npy", "1-D");
    expect_open_error(dir, "three_d.npy", "3-D");
    expect_open_error(dir, "empty.npy", "at least one row");
    expect_open_error(dir, "no-such-file.npy", "cannot open");
    expect_open_error(dir, ".", "not a regular file");
    path_in(dir, "f4.npy", path, sizeof path);
    unsigned char *good = read_bytes(path, &len);
    if (!good)
        return;
    write_variant(dir, "short.npy", good, len - 1, 0);
    expect_open_error(dir, "short.npy", "truncated");
    write_variant(dir, "long.npy", good, len, 1);
    expect_open_error(dir, "long.npy", "after the array");
    write_variant(dir, "head.npy", good, 20, 0);
    expect_open_error(dir, "head.npy", "truncated .npy header");
    write_variant(dir, "zero.npy", good, 0, 0);
    expect_open_error(dir, "zero.npy", "empty");
    good[1] = 'X';
    write_variant(dir, "magic.npy", good, len, 0);
    expect_open_error(dir, "magic.npy", "not a .npy file");
    good[1] = 'N';
    memcpy(memchr(good + 10, 'd', 20), "dexxx", 5); /* 'descr' -> 'dexxx' */
    write_variant(dir, "key.npy", good, len, 0);
    expect_open_error(dir, "key.npy", "malformed");
    free(good);
}

/* npyfile_check_header on shapes no file here could carry. */
static void test_check_header(void)
{
    npy_info info = {.descr = "<f2", .ndim = 2, .shape = {INT64_C(1) << 50, INT64_C(1) << 20}, .header_len = 128};
    npyfile_layout lay;
    char err[320] = "";
    CHECK(npyfile_check_header(&info, &lay, err, sizeof err) == -1 && contains(err, "too large to address"),
          "a shape past 2^64 bytes: \"%s\"", err);
    info.shape[1] = INT64_C(1) << 31;
    CHECK(npyfile_check_header(&info, &lay, err, sizeof err) == -1 && contains(err, "too long"),
          "rows longer than an int: \"%s\"", err);
    info.shape[0] = 3;
    info.shape[1] = 1000;
    CHECK(npyfile_check_header(&info, &lay, err, sizeof err) == 0 && lay.data_bytes == 6000 &&
              lay.file_bytes == 6128 && lay.elem_size == 2, "a small float16 layout: %s", err);
    info.header_len = 12 + NPYFILE_HEADER_MAX + 1;
    CHECK(npyfile_check_header(&info, &lay, err, sizeof err) == -1 && contains(err, "larger than"),
          "an oversized header: \"%s\"", err);
}

static void test_scan(const char *dir)
{
    static const struct { const char *name, *want; } cases[] = {
        {"nan.npy", "row 3, column 4 is NaN (2 values in all"}, {"inf2.npy", "row 5, column 2 is -inf"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[512], err[320] = "";
        npyfile *f = NULL;
        path_in(dir, cases[c].name, path, sizeof path);
        CHECK(npyfile_open(path, &f, err, sizeof err) == 0, "open %s (non-finite values open): %s", cases[c].name,
              err);
        if (!f)
            continue;
        err[0] = '\0';
        CHECK(npyfile_scan(f, err, sizeof err) == -1 && contains(err, cases[c].want) && contains(err, "nan_to_num"),
              "%s: scan says \"%s\"", cases[c].name, err);
        npyfile_close(f);
    }
}

/* ---------------------------------------------------------------- uploads */

/* Feeds buf in chunks of `chunk` bytes (the last shorter); the result of
 * finish, with err from the first failure. */
static int stream_all(const unsigned char *buf, size_t len, size_t chunk, npyfile_layout *lay, char *err,
                      size_t errlen)
{
    npyfile_stream *s = npyfile_stream_new();
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0; off += chunk)
        rc = npyfile_stream_feed(s, buf + off, len - off < chunk ? len - off : chunk, err, errlen);
    if (rc == 0)
        rc = npyfile_stream_finish(s, lay, err, errlen);
    else
        CHECK(npyfile_stream_feed(s, buf, 1, err, errlen) == -1, "errors are sticky");
    npyfile_stream_free(s);
    return rc;
}

static unsigned char *fixture(const char *dir, const char *name, size_t *len)
{
    char path[512];
    path_in(dir, name, path, sizeof path);
    unsigned char *b = read_bytes(path, len);
    CHECK(b != NULL, "read fixture %s", name);
    return b;
}

static void test_stream_good(const char *dir)
{
    static const char *const names[] = {"f4.npy", "f2.npy", "f4v2.npy"};
    static const size_t chunks[] = {1, 2, 3, 5, 7, 64, 100, 4096, 1 << 20};
    for (size_t k = 0; k < 3; k++) {
        size_t len;
        unsigned char *b = fixture(dir, names[k], &len);
        if (!b)
            continue;
        for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
            char err[320] = "";
            npyfile_layout lay = {0};
            int rc = stream_all(b, len, chunks[c], &lay, err, sizeof err);
            CHECK(rc == 0 && lay.n_rows == NPY_N && lay.dim == NPY_DIM && lay.file_bytes == len,
                  "%s in chunks of %zu: rc %d \"%s\"", names[k], chunks[c], rc, err);
        }
        npyfile_stream *s = npyfile_stream_new();
        npyfile_layout lay;
        char err[320] = "";
        CHECK(npyfile_stream_feed(s, b, 64, err, sizeof err) == 0 && !npyfile_stream_layout(s, &lay),
              "%s: no layout before the header is complete", names[k]);
        CHECK(npyfile_stream_feed(s, b + 64, 100, err, sizeof err) == 0 && npyfile_stream_layout(s, &lay) &&
                  lay.dim == NPY_DIM, "%s: layout as soon as the header is complete", names[k]);
        npyfile_stream_free(s);
        free(b);
    }
}

/* Streams a variant of a fixture: the first len bytes (+ extra zero bytes). */
static void expect_stream_error(const unsigned char *b, size_t len, size_t extra, size_t chunk, const char *want,
                                const char *what)
{
    char err[320] = "";
    unsigned char *buf = calloc(len + extra + 1, 1);
    memcpy(buf, b, len);
    int rc = stream_all(buf, len + extra, chunk, NULL, err, sizeof err);
    CHECK(rc == -1 && contains(err, want), "%s: expected \"%s\", got rc %d \"%s\"", what, want, rc, err);
    free(buf);
}

static void test_stream_bad(const char *dir)
{
    size_t len, n8, nn, n2;
    unsigned char *b = fixture(dir, "f4.npy", &len), *f8 = fixture(dir, "f8.npy", &n8);
    unsigned char *nan = fixture(dir, "nan.npy", &nn), *inf2 = fixture(dir, "inf2.npy", &n2);
    if (b && f8 && nan && inf2) {
        expect_stream_error(b, len - 1, 0, 7, "truncated", "one byte short");
        expect_stream_error(b, len, 1, 7, "longer than its header", "one byte long");
        expect_stream_error(b, len, 1, len + 1, "longer than its header", "one byte long, one chunk");
        expect_stream_error(b, 50, 0, 3, "inside the .npy header", "cut in the header");
        expect_stream_error(b, 0, 0, 1, "inside the .npy header", "nothing sent");
        expect_stream_error(f8, n8, 0, 3, "astype('<f4')", "float64 upload");
        expect_stream_error(nan, nn, 0, 3, "row 3, column 4 is NaN", "NaN split across chunks");
        expect_stream_error(nan, nn, 0, 4096, "row 3, column 4 is NaN", "NaN in one chunk");
        expect_stream_error(nan, nn, 0, 1, "row 3, column 4 is NaN", "NaN in byte chunks (a value over 4 chunks)");
        expect_stream_error(nan, nn, 0, 2, "row 3, column 4 is NaN", "NaN in 2-byte chunks");
        expect_stream_error(inf2, n2, 0, 1, "row 5, column 2 is -inf", "-inf in byte chunks");
        b[0] = 'x';
        expect_stream_error(b, len, 0, 1, "not a .npy file", "bad magic");
        b[0] = 0x93;
        b[6] = 9;
        expect_stream_error(b, len, 0, 5, "unsupported .npy version", "bad version");
        b[6] = 2;
        memcpy(b + 8, "\x00\x00\x02\x00", 4); /* a v2 header length of 128 KiB */
        expect_stream_error(b, len, 0, 5, "larger than 65536 bytes", "huge header");
        b[6] = 1;
        b[8] = 0x10; /* header length 0x..10: the dict is cut short */
        expect_stream_error(b, len, 0, 5, "malformed", "short header length");
    }
    free(b);
    free(f8);
    free(nan);
    free(inf2);
}

/* ---------------------------------------------------------------- labels */

/* Line i of the labels fixture (expected text, without its ending). */
static void label_text(int i, char *buf, size_t n)
{
    if (i == 10)
        buf[0] = '\0';
    else
        snprintf(buf, n, i % 3 ? "token %d: h\xc3\xa9llo \xe2\x9c\x93" : "%d \xf0\x9f\x98\x80 ctx", i);
}

/* Writes n labels lines; crlf on line 20; the last newline optional. */
static void write_labels(const char *path, int n, int final_newline, const char *prefix)
{
    FILE *f = fopen(path, "wb");
    fputs(prefix, f);
    for (int i = 0; i < n; i++) {
        char t[64];
        label_text(i, t, sizeof t);
        fprintf(f, "%s%s", t, i == n - 1 && !final_newline ? "" : i == 20 ? "\r\n" : "\n");
    }
    fclose(f);
}

static void check_labels(const char *path, int n, const char *what)
{
    char err[320] = "";
    npyfile_labels *l = NULL;
    CHECK(npyfile_labels_open(path, n, &l, err, sizeof err) == 0, "%s: open: %s", what, err);
    if (!l)
        return;
    CHECK(npyfile_labels_count(l) == n, "%s: %lld lines", what, (long long)npyfile_labels_count(l));
    uint64_t perm[100];
    shuffle(perm, n, 7);
    int bad = 0;
    for (int k = 0; k < n; k++) {
        char t[64];
        const char *s;
        size_t len;
        label_text((int)perm[k], t, sizeof t);
        bad += npyfile_labels_get(l, (int64_t)perm[k], &s, &len) != 0 || len != strlen(t) || memcmp(s, t, len);
    }
    CHECK(bad == 0, "%s: %d lines differ", what, bad);
    const char *s;
    size_t len;
    CHECK(npyfile_labels_get(l, n, &s, &len) == -1 && npyfile_labels_get(l, -1, &s, &len) == -1,
          "%s: out-of-range lines are refused", what);
    npyfile_labels_close(l);
}

static void expect_labels_error(const char *path, const void *text, size_t len, int64_t n, const char *want)
{
    char err[320] = "";
    npyfile_labels *l = NULL;
    write_bytes(path, text, len);
    int rc = npyfile_labels_open(path, n, &l, err, sizeof err);
    CHECK(rc == -1 && l == NULL && contains(err, want), "labels: expected \"%s\", got rc %d \"%s\"", want, rc, err);
    npyfile_labels_close(l);
}

static void test_labels(const char *dir)
{
    char path[512], err[320] = "";
    path_in(dir, "labels.txt", path, sizeof path);
    write_labels(path, 100, 1, "");
    check_labels(path, 100, "100 lines");
    write_labels(path, 100, 0, "");
    check_labels(path, 100, "no final newline");
    write_labels(path, 33, 1, "\xef\xbb\xbf");
    check_labels(path, 33, "byte-order mark");
    write_labels(path, 100, 1, "");
    npyfile_labels *l = NULL;
    CHECK(npyfile_labels_open(path, 99, &l, err, sizeof err) == -1 &&
              contains(err, "has 100 lines but the dataset has 99 rows"), "count mismatch: \"%s\"", err);
    expect_labels_error(path, "a\nb\n\xff\n", 6, 3, "line 3 is not valid UTF-8");
    expect_labels_error(path, "\xc0\x80\n", 3, 1, "not valid UTF-8");         /* overlong NUL */
    expect_labels_error(path, "\xed\xa0\x80\n", 4, 1, "not valid UTF-8");     /* surrogate */
    expect_labels_error(path, "ok\n\xe2\x9c", 5, 2, "line 2 is not valid UTF-8"); /* cut sequence */
    expect_labels_error(path, "a\0b\n", 4, 1, "NUL");
    expect_labels_error(path, "", 0, 1, "has 0 lines");
    write_bytes(path, "", 0);
    CHECK(npyfile_labels_open(path, 0, &l, err, sizeof err) == 0 && npyfile_labels_count(l) == 0,
          "an empty file is zero lines: %s", err);
    npyfile_labels_close(l);
    path_in(dir, "missing.txt", path, sizeof path);
    CHECK(npyfile_labels_open(path, 1, &l, err, sizeof err) == -1 && contains(err, "cannot open"),
          "missing labels file: \"%s\"", err);
}

/* ---------------------------------------------------------------- idx */

/* Writes an IDX file: header (magic, dims) then data, gzipped or plain; cut
 * drops that many bytes from the end, extra appends zero bytes. */
static int write_idx(const char *path, int gz, uint32_t magic, const uint32_t *dims, int ndim,
                     const uint8_t *data, size_t len, size_t cut, size_t extra)
{
    unsigned char buf[4096]; /* header + data, small fixtures only */
    size_t n = 0;
    for (int k = 0; k < 4; k++)
        buf[n++] = (unsigned char)(magic >> (24 - 8 * k));
    for (int i = 0; i < ndim; i++)
        for (int k = 0; k < 4; k++)
            buf[n++] = (unsigned char)(dims[i] >> (24 - 8 * k));
    memcpy(buf + n, data, len);
    n += len;
    memset(buf + n, 0, extra);
    n = n + extra - cut;
    gzFile g = gzopen(path, gz ? "wb" : "wbT"); /* T: transparent, i.e. plain */
    if (!g)
        return -1;
    int w = gzwrite(g, buf, (unsigned)n);
    return gzclose(g) == Z_OK && w == (int)n ? 0 : -1;
}

#define SYN_N 6
#define SYN_R 3
#define SYN_C 4

static void syn_data(uint8_t *img, uint8_t *lab)
{
    for (int i = 0; i < SYN_N * SYN_R * SYN_C; i++)
        img[i] = (uint8_t)(i * 37 % 256);
    img[5] = 255;
    img[6] = 0;
    for (int i = 0; i < SYN_N; i++)
        lab[i] = (uint8_t)(9 - i);
}

static void check_syn(const idx_dataset *d, const uint8_t *img, const uint8_t *lab, const char *what)
{
    CHECK(d->n == SYN_N && d->rows == SYN_R && d->cols == SYN_C && d->dim == SYN_R * SYN_C,
          "%s: shape (%lld, %d, %d)", what, (long long)d->n, d->rows, d->cols);
    int bad = 0;
    for (int i = 0; i < SYN_N * SYN_R * SYN_C; i++)
        bad += d->pixels[i] != img[i] * (1.0f / 255.0f);
    CHECK(bad == 0 && d->pixels[5] == 1.0f && d->pixels[6] == 0.0f, "%s: %d pixels differ", what, bad);
    for (int i = 0; i < SYN_N && d->labels; i++)
        bad += d->labels[i] != lab[i];
    CHECK(d->labels && bad == 0, "%s: labels", what);
    data_source src;
    float rows[2 * SYN_R * SYN_C]; /* (2, dim) */
    uint64_t idx[2] = {4, 1}, past = SYN_N;
    idx_source(&src, d);
    CHECK(src.dim == d->dim && src.n_rows == SYN_N && src.get_rows(src.ctx, idx, 2, rows) == 0 &&
              !memcmp(rows, d->pixels + 4 * d->dim, sizeof rows / 2) &&
              !memcmp(rows + d->dim, d->pixels + d->dim, sizeof rows / 2), "%s: data source rows", what);
    CHECK(src.get_rows(src.ctx, &past, 1, rows) == -1, "%s: out-of-range row refused", what);
}

static void test_idx_good(const char *dir)
{
    uint8_t img[SYN_N * SYN_R * SYN_C], lab[SYN_N];
    uint32_t idims[3] = {SYN_N, SYN_R, SYN_C}, ldims[1] = {SYN_N};
    syn_data(img, lab);
    for (int gz = 0; gz < 2; gz++) {
        char ip[512], lp[512], err[320] = "";
        path_in(dir, gz ? "img.gz" : "img.idx", ip, sizeof ip);
        path_in(dir, gz ? "lab.idx" : "lab.gz", lp, sizeof lp); /* mix plain and gzipped */
        CHECK(write_idx(ip, gz, IDX_MAGIC_IMAGES, idims, 3, img, sizeof img, 0, 0) == 0 &&
                  write_idx(lp, !gz, IDX_MAGIC_LABELS, ldims, 1, lab, sizeof lab, 0, 0) == 0, "write IDX fixtures");
        idx_dataset *d = NULL;
        CHECK(idx_load(ip, lp, &d, err, sizeof err) == 0, "load %s + %s: %s", ip, lp, err);
        if (d)
            check_syn(d, img, lab, gz ? "gzipped images" : "plain images");
        idx_free(d);
        CHECK(idx_load(ip, NULL, &d, err, sizeof err) == 0 && d->labels == NULL, "images alone: %s", err);
        idx_free(d);
    }
    CHECK(!strcmp(idx_class_name(0), "T-shirt/top") && !strcmp(idx_class_name(9), "Ankle boot") &&
              !strcmp(idx_class_name(5), "Sandal"), "class names");
    CHECK(idx_class_name(10) == NULL && idx_class_name(-1) == NULL, "no name outside 0..9");
}

/* Loading images ip (+ labels lp) must fail with want in the message. */
static void expect_idx_error(const char *ip, const char *lp, const char *want, const char *what)
{
    char err[320] = "";
    idx_dataset *d = NULL;
    int rc = idx_load(ip, lp, &d, err, sizeof err);
    CHECK(rc == -1 && d == NULL && contains(err, want), "%s: expected \"%s\", got rc %d \"%s\"", what, want, rc, err);
    idx_free(d);
}

static void test_idx_bad_files(const char *dir, int gz)
{
    uint8_t img[SYN_N * SYN_R * SYN_C], lab[SYN_N];
    uint32_t idims[3] = {SYN_N, SYN_R, SYN_C}, ldims[1] = {SYN_N}, l5[1] = {SYN_N - 1};
    uint32_t big[3] = {1000, 1000, 1000}, huge[3] = {65536, 65536, 65536}, zero[3] = {0, 28, 28};
    char ip[512], lp[512], bp[512];
    syn_data(img, lab);
    path_in(dir, "good.img", ip, sizeof ip);
    path_in(dir, "good.lab", lp, sizeof lp);
    path_in(dir, "bad", bp, sizeof bp);
    write_idx(ip, gz, IDX_MAGIC_IMAGES, idims, 3, img, sizeof img, 0, 0);
    write_idx(lp, gz, IDX_MAGIC_LABELS, ldims, 1, lab, sizeof lab, 0, 0);
    expect_idx_error(lp, ip, "images and labels swapped", "swapped");
    write_idx(bp, gz, IDX_MAGIC_IMAGES, idims, 3, img, sizeof img, 1, 0);
    expect_idx_error(bp, lp, "truncated", "one byte short");
    write_idx(bp, gz, IDX_MAGIC_IMAGES, idims, 3, img, sizeof img, 0, 1);
    expect_idx_error(bp, lp, "data after the", "one byte long");
    write_idx(bp, gz, IDX_MAGIC_IMAGES, idims, 3, img, 0, 6, 0);
    expect_idx_error(bp, lp, "inside its IDX header", "cut header");
    write_idx(bp, gz, 0x00000903u, idims, 3, img, sizeof img, 0, 0);
    expect_idx_error(bp, lp, "element type 0x09", "int type");
    write_idx(bp, gz, 0x00000802u, idims, 2, img, sizeof img, 0, 0);
    expect_idx_error(bp, lp, "2 dimensions", "2-D");
    write_idx(bp, gz, 0x08030000u, idims, 3, img, sizeof img, 0, 0);
    expect_idx_error(bp, lp, "not an IDX file", "bad magic");
    write_idx(bp, gz, IDX_MAGIC_LABELS, l5, 1, lab, SYN_N - 1, 0, 0);
    expect_idx_error(ip, bp, "holds 6 images but the labels file holds 5", "count mismatch");
    write_idx(bp, gz, IDX_MAGIC_IMAGES, big, 3, img, sizeof img, 0, 0);
    expect_idx_error(bp, lp, "truncated", "header promising 1e9 pixels over a tiny file");
    write_idx(bp, gz, IDX_MAGIC_IMAGES, huge, 3, img, sizeof img, 0, 0);
    expect_idx_error(bp, lp, "too many to hold", "2^48 pixels");
    write_idx(bp, gz, IDX_MAGIC_IMAGES, zero, 3, img, 0, 0, 0);
    expect_idx_error(bp, lp, "zero dimension", "no images");
    path_in(dir, "nope.gz", bp, sizeof bp);
    expect_idx_error(bp, lp, "images file: cannot open", "missing images");
    expect_idx_error(ip, bp, "labels file: cannot open", "missing labels");
    expect_idx_error(dir, lp, "not a regular file", "a directory");
}

/* A gzip stream cut in the middle, and one with a flipped byte. */
static void test_idx_damaged_gz(const char *dir)
{
    uint8_t img[SYN_N * SYN_R * SYN_C], lab[SYN_N];
    uint32_t idims[3] = {SYN_N, SYN_R, SYN_C};
    char ip[512];
    size_t len;
    syn_data(img, lab);
    path_in(dir, "dmg.gz", ip, sizeof ip);
    write_idx(ip, 1, IDX_MAGIC_IMAGES, idims, 3, img, sizeof img, 0, 0);
    unsigned char *gzb = read_bytes(ip, &len);
    if (!gzb)
        return;
    write_bytes(ip, gzb, len / 2);
    expect_idx_error(ip, NULL, "images file:", "gzip cut in half");
    gzb[len - 6] ^= 0xff; /* inside the CRC-32 trailer */
    write_bytes(ip, gzb, len);
    expect_idx_error(ip, NULL, "cannot decompress", "gzip with a bad CRC");
    free(gzb);
}

/* ---------------------------------------------------------------- fuzz */

/* Random and mutated headers through the pure parsers; the streaming
 * validator and the file reader must agree on every mutated file. */
static void test_fuzz(const char *dir)
{
    uint64_t seed = 12345;
    unsigned char buf[64];
    int crashes = 0, ok = 0;
    for (int it = 0; it < 200000; it++) {
        idx_header h;
        for (size_t k = 0; k < sizeof buf; k++)
            buf[k] = (unsigned char)lcg_next(&seed);
        buf[0] = buf[1] = 0;
        if (it & 1)
            buf[2] = 8;
        int rc = idx_parse_header(buf, lcg_next(&seed) % 17, &h, NULL, 0);
        ok += rc == 0;
        crashes += rc == 0 && h.data_bytes == 0;
    }
    CHECK(crashes == 0 && ok > 0, "idx header fuzz: %d accepted, %d with no data", ok, crashes);
    size_t len;
    unsigned char *good = fixture(dir, "f2.npy", &len);
    if (!good)
        return;
    char path[512];
    path_in(dir, "fuzz.npy", path, sizeof path);
    int disagree = 0, accepted = 0;
    for (int it = 0; it < 400; it++) {
        unsigned char *m = malloc(len);
        memcpy(m, good, len);
        for (int k = 0, flips = 1 + (int)(lcg_next(&seed) % 4); k < flips; k++)
            m[lcg_next(&seed) % 128] = (unsigned char)lcg_next(&seed); /* the header */
        size_t mlen = len - (it % 5 == 0 ? lcg_next(&seed) % len : 0);
        char err[320];
        npyfile *f = NULL;
        int s_rc = stream_all(m, mlen, 1 + lcg_next(&seed) % 50, NULL, err, sizeof err);
        write_bytes(path, m, mlen);
        int f_rc = npyfile_open(path, &f, err, sizeof err);
        if (f_rc == 0)
            f_rc = npyfile_scan(f, err, sizeof err);
        accepted += f_rc == 0;
        disagree += s_rc != f_rc;
        npyfile_close(f);
        free(m);
    }
    CHECK(disagree == 0, "stream and file readers disagree on %d of 400 mutated files (%d accepted)", disagree,
          accepted);
    free(good);
}

/* ---------------------------------------------------------------- fashion */

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_fashion_t10k(const char *dir)
{
    char err[320] = "", ref[512];
    idx_dataset *d = NULL;
    CHECK(idx_load(FASHION_DIR "/t10k-images-idx3-ubyte.gz", FASHION_DIR "/t10k-labels-idx1-ubyte.gz", &d, err,
                   sizeof err) == 0, "load t10k: %s", err);
    if (!d)
        return;
    CHECK(d->n == 10000 && d->rows == 28 && d->cols == 28 && d->dim == 784, "t10k shape (%lld, %d, %d)",
          (long long)d->n, d->rows, d->cols);
    int hist[256] = {0};
    for (int64_t i = 0; i < d->n; i++)
        hist[d->labels[i]]++;
    int classes_ok = 1;
    for (int c = 0; c < 256; c++)
        classes_ok &= hist[c] == (c < 10 ? 1000 : 0);
    CHECK(classes_ok, "1000 images per class (class 0: %d, class 9: %d)", hist[0], hist[9]);
    float lo = 1, hi = 0;
    double sum = 0, row = 0;
    for (size_t i = 0; i < (size_t)d->n * (size_t)d->dim; i++) {
        lo = d->pixels[i] < lo ? d->pixels[i] : lo;
        hi = d->pixels[i] > hi ? d->pixels[i] : hi;
        sum += d->pixels[i];
    }
    for (int j = 0; j < d->dim; j++)
        row += d->pixels[1234 * 784 + j];
    CHECK(lo == 0.0f && hi == 1.0f, "pixels span [0, 1]: [%g, %g]", lo, hi);
    path_in(dir, "fashion_ref.txt", ref, sizeof ref);
    FILE *f = fopen(ref, "r");
    long long n = 0;
    double rsum = 0, rrow = 0;
    int y0 = -1, y1 = -1, ylast = -1;
    CHECK(f && fscanf(f, "%lld %lf %lf %d %d %d", &n, &rsum, &rrow, &y0, &y1, &ylast) == 6, "numpy's reference");
    if (f)
        fclose(f);
    CHECK(n == d->n && d->labels[0] == y0 && d->labels[1] == y1 && d->labels[9999] == ylast,
          "labels agree with numpy (first %d, numpy %d)", d->labels[0], y0);
    CHECK_NEAR(sum, rsum, 1e-6 * rsum, "sum of all pixels vs numpy");
    CHECK_NEAR(row, rrow, 1e-4, "sum of image 1234 vs numpy");
    CHECK(!strcmp(idx_class_name(d->labels[0]), "Ankle boot"), "the first t10k image is an ankle boot");
    idx_free(d);
}

static void test_fashion(const char *dir)
{
    if (!exists(FASHION_DIR "/t10k-images-idx3-ubyte.gz") || !exists(FASHION_DIR "/train-labels-idx1-ubyte.gz")) {
        CHECK(0, "Fashion-MNIST is missing from " FASHION_DIR ": apt-get install dataset-fashion-mnist");
        return;
    }
    test_fashion_t10k(dir);
    uint8_t *labels = NULL;
    int64_t n = 0;
    char err[320] = "";
    CHECK(idx_load_labels(FASHION_DIR "/train-labels-idx1-ubyte.gz", &labels, &n, err, sizeof err) == 0 &&
              n == 60000, "train labels: %lld, %s", (long long)n, err);
    int hist[256] = {0}, ok = 1;
    for (int64_t i = 0; labels && i < n; i++)
        hist[labels[i]]++;
    for (int c = 0; c < 10; c++)
        ok &= hist[c] == 6000;
    CHECK(ok, "6000 training labels per class");
    free(labels);
}

int main(void)
{
    char dir[] = "/tmp/saed-test-readers-XXXXXX", cmd[128];
    if (!mkdtemp(dir)) {
        CHECK(0, "cannot create a temporary directory");
        return check_report();
    }
    CHECK(make_fixtures(dir) == 0, "numpy fixtures (/usr/bin/python3 with numpy)");
    test_half(dir);
    test_npy_read(dir);
    test_npy_reject(dir);
    test_check_header();
    test_scan(dir);
    test_stream_good(dir);
    test_stream_bad(dir);
    test_labels(dir);
    test_idx_good(dir);
    test_idx_bad_files(dir, 0);
    test_idx_bad_files(dir, 1);
    test_idx_damaged_gz(dir);
    test_fuzz(dir);
    test_fashion(dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "note: could not remove %s\n", dir);
    return check_report();
}
