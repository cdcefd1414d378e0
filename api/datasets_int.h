/* api/datasets_int.h — what the dataset sources share and the rest of the
 * API does not see: datasets.c (routes, circles, the dataset object),
 * datasets_import.c (npy and idx by path), datasets_upload.c (streamed .npy
 * and labels bodies) and datasets_read.c (rows.npy and labels of files).
 *
 * On disk, an npy or idx dataset owns data_dir/datasets/{id}/: data.npy
 * (+ labels.txt) or images.idx (+ labels.idx, gzip or plain as given). The
 * store's `path` column holds the data file's name inside that directory
 * (not an absolute path), so the data directory can be moved as a whole.
 * New files are written into a staging directory
 * data_dir/datasets/.staging-HOST-PID-XXXXXX, validated there, then the
 * row is inserted and the staging directory renamed to datasets/{id}
 * (datasets_stage_commit); a failure anywhere removes the staging
 * directory, and one whose process died (kill -9) goes at the next start
 * (datasets_staging_sweep). */
#ifndef SAED_API_DATASETS_INT_H
#define SAED_API_DATASETS_INT_H
#include "internal.h"
#include <limits.h>

#define DATASETS_NPY_FILE "data.npy"
#define DATASETS_NPY_LABELS "labels.txt"
#define DATASETS_IDX_IMAGES "images.idx"
#define DATASETS_IDX_LABELS "labels.idx"
#define DATASETS_SAE_TAR "saelens.tar" /* POST /v1/saes: the staged body */
/* IDX files may also come from here (Debian's dataset-* packages): read-only, system-wide. */
#define DATASETS_SYSTEM_DIR "/usr/share/datasets"

typedef struct {
    char dir[PATH_MAX]; /* the staging directory; "" once committed or discarded */
} datasets_stage;

/* The API's dataset object. */
json_t *datasets_object(const store_dataset *d);
/* body.name, or fallback when absent. 0, or -1 with an error recorded. */
int datasets_name(const json_t *body, const char *fallback, char *name, size_t len, spec_errors *errs);
/* data_dir/datasets/{id}[/file] into buf. */
void datasets_path(const api_server *s, int64_t id, const char *file, char *buf, size_t n);
/* The file of dataset d named `file` (DATASETS_*), for npy/idx datasets. */
void datasets_file(const api_server *s, const store_dataset *d, const char *file, char *buf, size_t n);

/* Creates a fresh staging directory. 0, or -1 with err set. */
int datasets_stage_open(const api_server *s, datasets_stage *st, char *err, size_t errlen);
void datasets_stage_file(const datasets_stage *st, const char *file, char *buf, size_t n);
/* Removes the staging directory (if not committed). */
void datasets_stage_discard(datasets_stage *st);
/* Inserts d (path = its data file's name), moves the staging directory to
 * datasets/{id} and replies 201 with the dataset; or replies with the error
 * (the row is removed again if the move fails). */
enum MHD_Result datasets_stage_commit(api_req *r, datasets_stage *st, store_dataset *d);
/* A problem naming field, with the whole of msg in detail (errors[].message is capped at 255 bytes). */
enum MHD_Result datasets_problem(api_req *r, unsigned status, const char *field, const char *msg);
/* fsync of a directory (after a rename into it). 0 or -1. */
int datasets_fsync_dir(const char *dir);

/* datasets_import.c: POST /v1/datasets with kind npy / idx. */
enum MHD_Result datasets_import_npy(api_req *r, const json_t *body);
enum MHD_Result datasets_import_idx(api_req *r, const json_t *body);

/* datasets_upload.c: the end of POST /v1/datasets?kind=npy (r->sink is set). */
enum MHD_Result datasets_upload_finish(api_req *r);

/* datasets_read.c: rows [offset, offset + limit) (clipped to n_rows) as <f4 .npy, and labels. */
enum MHD_Result datasets_read_rows(api_req *r, const store_dataset *d, long long offset, int limit);
enum MHD_Result datasets_read_labels(api_req *r, const store_dataset *d);

#endif
