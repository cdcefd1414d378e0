/* safetensors — the header of a .safetensors file (the format SAELens and
 * Hugging Face save tensors in), for writers that then append the data.
 *
 * File layout: u64 little-endian N | N bytes of UTF-8 JSON | data. The JSON
 * maps each tensor name to {"dtype","shape","data_offsets":[begin,end]}
 * (byte offsets into the data, which starts right after the header), plus an
 * optional "__metadata__" object of string values. The JSON is padded with
 * spaces so the data starts at a multiple of 8 bytes. Pure: no I/O.
 * The reader parses the JSON with jansson and finds one tensor by name. */
#ifndef SAED_SAFETENSORS_H
#define SAED_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>
#include "sae.h"

/* The header for t[0..n) stored as "F32", their data back to back in the
 * order given (tensor i holds shape[0] (* shape[1]) floats, little-endian).
 * metadata: NULL, or a NULL-terminated list of key, value, key, value, ...
 * strings for "__metadata__". Names, keys and values may hold only
 * [A-Za-z0-9_.:+-] characters (nothing needs escaping), names must be
 * unique and not "__metadata__". Returns a malloc'd buffer of *len bytes
 * (the 8-byte length included; *len is a multiple of 8), or NULL when a
 * name or value breaks those rules or memory runs out. */
unsigned char *safetensors_header(const sae_tensor *t, int n, const char *const *metadata, size_t *len);

/* Bytes of data the tensors take: 4 * their element count. */
size_t safetensors_data_bytes(const sae_tensor *t, int n);

/* ---- reading (tensors saed wrote, or any F32 file of 1-D/2-D tensors) ---- */

#define SAFETENSORS_HEADER_MAX (1u << 20) /* larger JSON headers are refused */

/* One tensor's entry in a parsed header: data are bytes [begin, end) of the
 * data section, which starts at byte 8 + N of the file. */
typedef struct {
    int ndim;          /* 1 or 2 */
    int64_t shape[2];  /* shape[1] unused (0) when ndim is 1 */
    uint64_t begin, end;
} safetensors_entry;

/* The JSON length N from the file's first 8 bytes (first8). 0, or -1 with a
 * message when N is 0 or above SAFETENSORS_HEADER_MAX. */
int safetensors_json_len(const unsigned char *first8, uint64_t *n, char *err, size_t errlen);
/* Finds tensor name in the header JSON json (json_len bytes, the N bytes
 * after the length). 0 with *e filled; 1 when the file has no such tensor;
 * -1 with a message when the JSON is malformed or the tensor is not an F32
 * 1-D or 2-D tensor whose data_offsets span exactly its elements. Callers
 * still check that end fits in the file. */
int safetensors_find(const char *json, size_t json_len, const char *name, safetensors_entry *e, char *err,
                     size_t errlen);

#endif
