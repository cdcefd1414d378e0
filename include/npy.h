/* npy — NumPy .npy format v1.0 headers (pure, no I/O).
 *
 * npy_header() writes the magic, version and the padded dict so that the
 * data that follows is 64-byte aligned; npy_parse_header() reads one back
 * (for imported activation files). Little-endian, C order only. */
#ifndef SAED_NPY_H
#define SAED_NPY_H
#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 4
#define NPY_HEADER_MAX 256

typedef struct {
    char descr[8];              /* "<f4", "<f2", "<i4" */
    int ndim;                   /* number of dimensions, 0..NPY_MAX_DIMS */
    int64_t shape[NPY_MAX_DIMS];
    size_t header_len;          /* bytes before the data */
} npy_info;

/* Writes a v1.0 header for an array of `descr` with `shape` (ndim values; NULL
 * when ndim is 0) into buf (cap bytes; NPY_HEADER_MAX always suffices). Returns
 * its length (a multiple of 64), or 0 if it does not fit in cap or in
 * NPY_HEADER_MAX, or ndim is outside 0..NPY_MAX_DIMS, or descr is longer than
 * npy_info's. */
size_t npy_header(char *buf, size_t cap, const char *descr, const int64_t *shape, int ndim);

/* Parses the header at the start of buf[0..len) (buf may be NULL when len is 0),
 * treating it as hostile: any bytes give 0 or -1, never a read outside it.
 * Returns 0, or -1 with a message in err (errlen bytes; NULL when errlen is 0)
 * (e.g. "not a .npy file", "Fortran order is not supported"). */
int npy_parse_header(const void *buf, size_t len, npy_info *out, char *err, size_t errlen);

#endif
