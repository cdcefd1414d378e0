/* idx — MNIST-style IDX files (e.g. Debian's dataset-fashion-mnist under
 * /usr/share/datasets/fashion-mnist/), gzip-compressed or plain.
 *
 * An IDX file is a big-endian header — two zero bytes, a type byte (0x08 =
 * unsigned byte), the number of dimensions, then one u32 per dimension —
 * followed by the data. Images are 0x00000803 (n, rows, cols), labels
 * 0x00000801 (n). Images load into memory as float32 scaled to [0, 1].
 *
 * Functions that can fail return -1 with a message in err that names which
 * file ("images file: ...") and says what to do. */
#ifndef SAED_IDX_H
#define SAED_IDX_H
#include <stddef.h>
#include <stdint.h>
#include "datasrc.h"

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
/* Largest header: magic + 3 dims. */
#define IDX_HEADER_MAX 16
/* Largest image set loaded into memory, in pixels (8 GiB as float32). */
#define IDX_MAX_PIXELS (INT64_C(1) << 31)

typedef struct {
    uint32_t magic;       /* IDX_MAGIC_IMAGES or IDX_MAGIC_LABELS */
    int ndim;             /* 3 or 1 */
    uint32_t dims[3];     /* (n, rows, cols) or (n) */
    size_t header_len;    /* 4 + 4 * ndim */
    uint64_t data_bytes;  /* product of dims */
} idx_header;

/* Parses the header at buf[0..len) (pure; safe on any input; buf may be NULL
 * when len is 0). Accepts the two
 * magics above only. 0, -1 with err set, or 1 if len is too short to tell
 * (feed more bytes). */
int idx_parse_header(const void *buf, size_t len, idx_header *out, char *err, size_t errlen);

typedef struct {
    int64_t n;       /* images */
    int rows, cols;
    int dim;         /* rows * cols */
    float *pixels;   /* (n, dim) in [0, 1] */
    uint8_t *labels; /* (n) class ids, or NULL when loaded without labels */
} idx_dataset;

/* Loads images (and labels unless labels_path is NULL; their counts must
 * match). *out is freed with idx_free. */
int idx_load(const char *images_path, const char *labels_path, idx_dataset **out, char *err, size_t errlen);
void idx_free(idx_dataset *d);

/* Loads a labels file alone: *labels (n) malloc'd. */
int idx_load_labels(const char *path, uint8_t **labels, int64_t *n, char *err, size_t errlen);

/* Fashion-MNIST class names ("T-shirt/top" .. "Ankle boot") for 0..9, else NULL. */
const char *idx_class_name(int label);

/* A data source over d's pixels (d must outlive it). */
void idx_source(data_source *src, const idx_dataset *d);

#endif
