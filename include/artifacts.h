/* artifacts — the analysis files beside the database, shared by the worker
 * (which writes them) and the API (which reads them at request time).
 *
 * - An SAE's weights as the worker exported them (decoder.npy (n, dim),
 *   encoder.npy (dim, n), b_enc.npy (n), b_dec.npy (dim), '<f4') read back
 *   into sae_params, whole or a few decoder rows at a time.
 * - Tables: an offset-indexed file of fixed-size records, entry i holding
 *   records ptr[i] .. ptr[i+1]-1, written atomically and memory-mapped to
 *   read, so a request touches only the pages it needs. Layout
 *   (little-endian): magic (8 bytes) | u32 version 1 | u32 record size |
 *   u64 n entries | u64 total records | u64 aux | i64 ptr[n + 1] | records.
 *   The analyze job writes two: the firing pattern (latent-major: entry i
 *   = the sorted int32 ids of the rows where latent i fired; aux = rows
 *   analysed) and the group projections (entry g = records {i32 row, f32 u,
 *   f32 v} for the first rows where group g fired; aux = rows analysed).
 * Every function that takes err returns -1 on failure with a message there
 * that names the file or the SAE (and what to do, where there is something). */
#ifndef SAED_ARTIFACTS_H
#define SAED_ARTIFACTS_H
#include <stddef.h>
#include <stdint.h>
#include "sae.h"
#include "store.h"

#define ARTIFACTS_FIRING_MAGIC "SAEDFIRE"
#define ARTIFACTS_PROJ_MAGIC "SAEDPROJ"
#define ARTIFACTS_PROJ_KEEP 500 /* projected rows kept per group: the first rows where it fires */
#define ARTIFACTS_JACCARD_MAX 256 /* latents one GET /jaccard may ask for */

typedef struct {
    int32_t row; /* sample index in the dataset */
    float u, v;  /* (x - b_dec) . basis[0], . basis[1] */
} artifacts_proj;

/* ---- .npy weights ---- */

/* Reads rows idx[0..n) (any order, each < n_rows) of the 2-D '<f4' array
 * (n_rows, cols) at path into out (n, cols). */
int artifacts_read_f32_rows(const char *path, int64_t n_rows, int cols, const int32_t *idx, int n, float *out,
                            char *err, size_t errlen);
/* Allocates p and reads the SAE's four weight files from s->dir, and its
 * arch's extra tensors (sae_tensors() after the first four) by name from
 * s->dir/sae.safetensors. The weights are input-scale folded: p takes raw rows. */
int artifacts_sae_load(const store_sae *s, sae_params *p, char *err, size_t errlen);
/* Writes p's weight files into dir (which exists): decoder.npy, encoder.npy, b_enc.npy, b_dec.npy
 * and sae.safetensors (every named tensor), each atomically; what artifacts_sae_load reads. */
int artifacts_sae_write(const char *dir, const sae_params *p, char *err, size_t errlen);
/* s->dir/name into buf; -1 (err set) if the SAE has no directory. */
int artifacts_sae_path(const store_sae *s, const char *name, char *buf, size_t n, char *err, size_t errlen);

/* ---- tables ---- */

typedef struct artifacts_table artifacts_table;

int artifacts_table_write(const char *path, const char *magic, uint32_t rec_size, int64_t n,
                          const int64_t *ptr /* (n + 1) */, const void *recs /* (ptr[n], rec_size bytes) */,
                          uint64_t aux, char *err, size_t errlen);
/* Opens and maps a table, checking magic, record size, file size and that
 * ptr is non-decreasing from 0 to the total. */
int artifacts_table_open(const char *path, const char *magic, uint32_t rec_size, artifacts_table **out,
                         char *err, size_t errlen);
void artifacts_table_close(artifacts_table *t);
uint64_t artifacts_table_aux(const artifacts_table *t);
/* Entry i's records (*recs points into the mapping); returns their count,
 * 0 for i out of range. */
int64_t artifacts_table_get(const artifacts_table *t, int64_t i, const void **recs);

/* ---- dataset labels ---- */

/* A dataset's labels, one string per row: npy datasets keep them in
 * data_dir/datasets/{id}/labels.txt (one UTF-8 line per row), idx datasets
 * in labels.idx (class ids, read as their Fashion-MNIST class names when
 * the dataset's params say "class_names": "fashion-mnist", else as the
 * number), exactly as GET /v1/datasets/{id}/labels gives them. Use a handle
 * from one thread at a time. */
typedef struct artifacts_labels artifacts_labels;
/* 0 with *out, 1 when the dataset has no labels (*out NULL), or -1. */
int artifacts_labels_open(const char *data_dir, const store_dataset *d, artifacts_labels **out, char *err,
                          size_t errlen);
/* Row i's label: *s (not NUL-terminated; valid until the next call on l)
 * and *len. 0, or -1 if i is out of range. */
int artifacts_label(artifacts_labels *l, int64_t i, const char **s, size_t *len);
int64_t artifacts_labels_count(const artifacts_labels *l);
void artifacts_labels_close(artifacts_labels *l);

/* |a and b| for two increasing lists (|a or b| = na + nb - that). */
int64_t artifacts_intersect(const int32_t *a, int64_t na, const int32_t *b, int64_t nb);

#endif
