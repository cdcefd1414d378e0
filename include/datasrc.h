/* datasrc — where the trainer gets rows from. One small interface over every
 * dataset kind (circles stream, mmapped .npy, IDX), so the trainer never
 * knows which it has. */
#ifndef SAED_DATASRC_H
#define SAED_DATASRC_H
#include <stdint.h>

typedef struct data_source {
    int dim;           /* row length */
    int64_t n_rows;    /* -1 for an endless stream (circles) */
    void *ctx;         /* owned by whoever built the source */
    /* Fills out (n, dim) with rows idx[0..n). Returns 0, or -1 on failure. */
    int (*get_rows)(void *ctx, const uint64_t *idx, int n, float *out);
} data_source;

/* Wraps a circles generator (which must outlive the source). */
struct circles;
void datasrc_from_circles(data_source *src, const struct circles *c);

#endif
