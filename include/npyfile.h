/* npyfile — imported activation files: a 2-D little-endian float32 ('<f4') or
 * float16 ('<f2') C-order .npy, memory-mapped read-only so it may be larger
 * than RAM, read row by row (float16 converted to float32).
 *
 * Also here: a streaming validator for uploads (bytes in, verdict out, no
 * buffering of the data), the finiteness scan callers run at import, and the
 * optional labels file (one UTF-8 line per row) with random access by line.
 *
 * Every function that can fail returns -1 with a message in err that says
 * what to do; messages do not name the file (the caller prefixes that).
 * Pointer arguments are non-NULL unless a comment allows NULL (err may be
 * NULL when errlen is 0); bad bytes in a file or an upload are errors, never
 * asserts. */
#ifndef SAED_NPYFILE_H
#define SAED_NPYFILE_H
#include <stddef.h>
#include <stdint.h>
#include "datasrc.h"
#include "npy.h"

/* Largest header the readers accept (numpy writes ~128 bytes). */
#define NPYFILE_HEADER_MAX 65536

/* ---------------------------------------------------------------- shapes */

typedef struct {
    int64_t n_rows;      /* >= 1 */
    int dim;             /* >= 1 */
    int elem_size;       /* 4 for '<f4', 2 for '<f2' */
    uint64_t data_bytes; /* n_rows * dim * elem_size */
    uint64_t file_bytes; /* header + data: the exact size the file must have */
} npyfile_layout;

/* Checks a parsed header is one saed imports ('<f4'/'<f2', 2-D, non-empty,
 * dim fits an int, sizes do not overflow) and fills out. Pure. 0 or -1. */
int npyfile_check_header(const npy_info *info, npyfile_layout *out, char *err, size_t errlen);

/* IEEE 754 binary16 -> binary32, exact for every bit pattern (subnormals,
 * infinities, NaN payloads kept). */
float npyfile_half_to_float(uint16_t h);

/* ---------------------------------------------------------------- files */

typedef struct npyfile npyfile;

/* Opens and validates path (header, exact file size) and maps it. */
int npyfile_open(const char *path, npyfile **out, char *err, size_t errlen);
void npyfile_close(npyfile *f);
const npyfile_layout *npyfile_get_layout(const npyfile *f);

/* Fills out (n, dim), n >= 0, with rows idx[0..n) (any order). Thread-safe.
 * 0, or -1 if an index is >= n_rows. */
int npyfile_get_rows(const npyfile *f, const uint64_t *idx, int n, float *out);

/* Reads every value once: 0 if all are finite, else -1 naming the first
 * NaN/Inf (row, column) and how many there are. Run it at import. */
int npyfile_scan(const npyfile *f, char *err, size_t errlen);

/* A data source over f (which must outlive it). */
void npyfile_source(data_source *src, const npyfile *f);

/* ---------------------------------------------------------------- uploads */

typedef struct npyfile_stream npyfile_stream;

/* NULL when out of memory. */
npyfile_stream *npyfile_stream_new(void);
void npyfile_stream_free(npyfile_stream *s);

/* Feeds the next len bytes of an upload (buf may be NULL when len is 0), in any chunking. Parses the header
 * as soon as it is complete, then checks the data as it passes (no more
 * bytes than the header promises; every value finite). 0, or -1 with err
 * set; after an error every later call fails with the same message. */
int npyfile_stream_feed(npyfile_stream *s, const void *buf, size_t len, char *err, size_t errlen);

/* 1 with *out filled once the header has been parsed and accepted, else 0. */
int npyfile_stream_layout(const npyfile_stream *s, npyfile_layout *out);

/* After the last byte: 0 with *out filled if the bytes fed form exactly one
 * valid file, else -1 (e.g. truncated upload). out may be NULL. */
int npyfile_stream_finish(npyfile_stream *s, npyfile_layout *out, char *err, size_t errlen);

/* ---------------------------------------------------------------- labels */

typedef struct npyfile_labels npyfile_labels;

/* Opens a labels file: valid UTF-8, no NUL bytes, exactly n_rows lines (a
 * final newline is optional; "\r\n" endings are accepted). Builds a sparse
 * line index (one offset every NPYFILE_LABELS_STRIDE lines). */
#define NPYFILE_LABELS_STRIDE 32
int npyfile_labels_open(const char *path, int64_t n_rows /* >= 0 */, npyfile_labels **out, char *err,
                        size_t errlen);
void npyfile_labels_close(npyfile_labels *l);
int64_t npyfile_labels_count(const npyfile_labels *l);

/* Line i without its line ending: *s points into the mapping (valid until
 * close, not NUL-terminated), *len its length in bytes. 0, or -1 if i is out
 * of range. */
int npyfile_labels_get(const npyfile_labels *l, int64_t i, const char **s, size_t *len);

#endif
