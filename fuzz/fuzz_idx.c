/* fuzz_idx — MNIST-style IDX headers and files (plain or gzip).
 *
 * Checked: idx_parse_header asks for more bytes (1) on every proper prefix
 * of a header it accepts and gives the same verdict on any longer buffer;
 * an accepted header's sizes add up; idx_load / idx_load_labels over the
 * input as a file either fail with a message or load exactly what the
 * header says. A third run splits the input into an images file and a
 * labels file (the first two bytes say where) and loads the pair. */
#include "fuzzutil.h"
#include "idx.h"
#include <stdlib.h>
#include <string.h>

static void fuzz_idx_header(const uint8_t *data, size_t len)
{
    idx_header h, p;
    char err[256];
    int rc = idx_parse_header(data, len, &h, err, sizeof err);
    if (rc != 0)
        return;
    FUZZ_REQUIRE(h.ndim == 1 || h.ndim == 3);
    FUZZ_REQUIRE(h.magic == IDX_MAGIC_IMAGES || h.magic == IDX_MAGIC_LABELS);
    FUZZ_REQUIRE(h.header_len == 4 + 4 * (size_t)h.ndim && h.header_len <= len);
    uint64_t bytes = 1;
    for (int i = 0; i < h.ndim; i++)
        bytes *= h.dims[i];
    FUZZ_REQUIRE(bytes == h.data_bytes);
    for (size_t k = 0; k < h.header_len; k++)
        FUZZ_REQUIRE(idx_parse_header(data, k, &p, err, sizeof err) == 1);
    FUZZ_REQUIRE(idx_parse_header(data, h.header_len, &p, err, sizeof err) == 0);
    FUZZ_REQUIRE(!memcmp(&p, &h, sizeof h));
}

static void fuzz_idx_files(const uint8_t *img, size_t img_len, const uint8_t *lab, size_t lab_len)
{
    fuzzutil_file fi, fl;
    idx_dataset *d;
    char err[512];
    if (fuzzutil_file_make(&fi, img, img_len) != 0)
        return;
    if (fuzzutil_file_make(&fl, lab, lab_len) != 0) {
        fuzzutil_file_drop(&fi);
        return;
    }
    if (idx_load(fi.path, fl.path, &d, err, sizeof err) == 0) {
        FUZZ_REQUIRE(d->n >= 1 && d->dim == d->rows * d->cols && d->labels != NULL);
        for (int64_t i = 0; i < d->n * d->dim; i++)
            FUZZ_REQUIRE(d->pixels[i] >= 0.0f && d->pixels[i] <= 1.0f);
        idx_free(d);
    } else {
        FUZZ_REQUIRE(d == NULL && err[0] != '\0');
    }
    fuzzutil_file_drop(&fl);
    fuzzutil_file_drop(&fi);
}

static void fuzz_idx_whole(const uint8_t *data, size_t len)
{
    fuzzutil_file f;
    idx_dataset *d;
    uint8_t *labels;
    int64_t n;
    char err[512];
    if (fuzzutil_file_make(&f, data, len) != 0)
        return;
    if (idx_load(f.path, NULL, &d, err, sizeof err) == 0) {
        FUZZ_REQUIRE(d->n >= 1 && d->rows >= 1 && d->cols >= 1 && d->labels == NULL);
        if (data[0] != 0x1f) /* not gzip: header and data fill the file exactly */
            FUZZ_REQUIRE((uint64_t)d->n * (uint64_t)d->dim + 16 == len);
        idx_free(d);
    }
    if (idx_load_labels(f.path, &labels, &n, err, sizeof err) == 0) {
        FUZZ_REQUIRE(n >= 1);
        free(labels);
    }
    fuzzutil_file_drop(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    fuzz_idx_header(data, len);
    fuzz_idx_whole(data, len);
    if (len >= 2) {
        size_t split = ((size_t)data[0] | (size_t)data[1] << 8) % (len - 1);
        fuzz_idx_files(data + 2, split, data + 2 + split, len - 2 - split);
    }
    return 0;
}
