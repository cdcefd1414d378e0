/* files — the data directory's files: atomic writes (temp name, fsync,
 * rename, fsync of the directory), mkdir -p, whole-file reads. Returns
 * errors; never prints. */
#ifndef SAED_FILES_H
#define SAED_FILES_H
#include <stddef.h>

typedef struct { const void *data; size_t len; } files_part;

/* Writes the concatenation of parts to path atomically. 0, or -1 with err set. */
int files_write_atomic(const char *path, const files_part *parts, int n_parts, char *err, size_t errlen);
/* Writes a float32 array as .npy (header + data) atomically. */
int files_write_npy_f32(const char *path, const float *data, const long long *shape, int ndim,
                        char *err, size_t errlen);
int files_mkdirs(const char *path, char *err, size_t errlen);
/* Reads a whole file into a malloc'd buffer. 0, 1 if it does not exist, -1 on error. */
int files_read_all(const char *path, void **data, size_t *len, char *err, size_t errlen);
/* Removes a directory tree (best effort). */
void files_remove_tree(const char *path);

#endif
