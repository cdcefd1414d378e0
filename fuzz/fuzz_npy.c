/* fuzz_npy — .npy headers and imported/uploaded activation files.
 *
 * One input is one whole file. Checked: npy_parse_header never reads outside
 * the buffer and reports a header inside it; npyfile_check_header accepts
 * only layouts that add up; a header saed writes for the parsed shape parses
 * back to the same shape; and three readers agree on the verdict: the upload
 * stream fed in one piece, the stream fed in odd-sized chunks, and
 * npyfile_open + npyfile_scan over the same bytes as a file. */
#include "fuzzutil.h"
#include "npy.h"
#include "npyfile.h"
#include <stdlib.h>
#include <string.h>

/* The header parser alone, and the writer round trip. */
static void fuzz_npy_header(const uint8_t *data, size_t len)
{
    npy_info info, back;
    npyfile_layout lay;
    char err[320], hdr[NPY_HEADER_MAX];
    if (npy_parse_header(data, len, &info, err, sizeof err) != 0) {
        FUZZ_REQUIRE(err[0] != '\0');
        return;
    }
    FUZZ_REQUIRE(info.ndim >= 0 && info.ndim <= NPY_MAX_DIMS);
    FUZZ_REQUIRE(info.header_len >= 10 && info.header_len <= len);
    if (npyfile_check_header(&info, &lay, err, sizeof err) == 0) {
        FUZZ_REQUIRE(lay.n_rows >= 1 && lay.dim >= 1 && (lay.elem_size == 2 || lay.elem_size == 4));
        FUZZ_REQUIRE(lay.data_bytes == (uint64_t)lay.n_rows * (uint64_t)lay.dim * (uint64_t)lay.elem_size);
        FUZZ_REQUIRE(lay.file_bytes == lay.data_bytes + info.header_len);
    }
    size_t n = npy_header(hdr, sizeof hdr, info.descr, info.shape, info.ndim);
    if (n == 0)
        return; /* a descr or shape too long for saed's own writer */
    FUZZ_REQUIRE(n % 64 == 0);
    FUZZ_REQUIRE(npy_parse_header(hdr, n, &back, err, sizeof err) == 0);
    FUZZ_REQUIRE(back.ndim == info.ndim && back.header_len == n && !strcmp(back.descr, info.descr));
    FUZZ_REQUIRE(!memcmp(back.shape, info.shape, sizeof info.shape[0] * (size_t)info.ndim));
}

/* The upload stream's verdict (0 or -1), fed in chunks of varying size
 * (chunked = 0: all at once). */
static int fuzz_npy_stream(const uint8_t *data, size_t len, int chunked, npyfile_layout *lay)
{
    char err[320];
    npyfile_stream *s = npyfile_stream_new();
    FUZZ_REQUIRE(s != NULL);
    int rc = 0;
    for (size_t off = 0, i = 0; off < len; i++) {
        size_t take = chunked ? 1 + (size_t)(data[i % len] * 7u + i) % 29 : len;
        take = take < len - off ? take : len - off;
        if (npyfile_stream_feed(s, data + off, take, err, sizeof err) != 0)
            rc = -1;
        off += take;
    }
    int fin = npyfile_stream_finish(s, lay, err, sizeof err);
    FUZZ_REQUIRE(rc == 0 || fin != 0); /* an error is sticky */
    npyfile_stream_free(s);
    return fin;
}

/* The file reader's verdict (0 or -1); reads some rows when it opens. */
static int fuzz_npy_file(const uint8_t *data, size_t len, npyfile_layout *lay)
{
    fuzzutil_file mf;
    char err[320];
    npyfile *f;
    if (fuzzutil_file_make(&mf, data, len) != 0)
        abort();
    int rc = npyfile_open(mf.path, &f, err, sizeof err);
    fuzzutil_file_drop(&mf);
    if (rc != 0)
        return -1;
    *lay = *npyfile_get_layout(f);
    rc = npyfile_scan(f, err, sizeof err);
    if (lay->dim <= 4096) {
        float *row = malloc(2 * sizeof(float) * (size_t)lay->dim); /* (2, dim) */
        uint64_t idx[2] = {(uint64_t)lay->n_rows - 1, 0}, bad = (uint64_t)lay->n_rows;
        FUZZ_REQUIRE(row != NULL);
        FUZZ_REQUIRE(npyfile_get_rows(f, idx, 2, row) == 0);
        FUZZ_REQUIRE(npyfile_get_rows(f, &bad, 1, row) != 0);
        free(row);
    }
    npyfile_close(f);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    npyfile_layout a, b, c;
    fuzz_npy_header(data, len);
    int whole = fuzz_npy_stream(data, len, 0, &a);
    int chunked = fuzz_npy_stream(data, len, 1, &b);
    int file = fuzz_npy_file(data, len, &c);
    FUZZ_REQUIRE(whole == chunked && whole == file);
    if (whole == 0)
        FUZZ_REQUIRE(!memcmp(&a, &b, sizeof a) && !memcmp(&a, &c, sizeof a) && a.file_bytes == len);
    return 0;
}
