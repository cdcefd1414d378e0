/* safetensors — the header of a .safetensors file (the format SAELens and
 * Hugging Face save tensors in), for writers that then append the data.
 *
 * File layout: u64 little-endian N | N bytes of UTF-8 JSON | data. The JSON
 * maps each tensor name to {"dtype","shape","data_offsets":[begin,end]}
 * (byte offsets into the data, which starts right after the header), plus an
 * optional "__metadata__" object of string values. The JSON is padded with
 * spaces so the data starts at a multiple of 8 bytes. Pure: no I/O. */
#ifndef SAED_SAFETENSORS_H
#define SAED_SAFETENSORS_H
#include <stddef.h>
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

#endif
