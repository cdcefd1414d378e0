/* safetensors — builds a .safetensors header (see include/safetensors.h).
 *
 * The JSON is written with a tiny append-only string builder; every name and
 * metadata string is checked against a character set that needs no JSON
 * escaping, so the output is valid JSON by construction. The reader parses a
 * header with jansson and checks an entry fully (dtype, shape, offsets that
 * span exactly its floats) before anyone reads data through it. */
#include "safetensors.h"
#include <assert.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *buf;  /* (cap) */
    size_t len, cap;
    int oom;
} st_builder;

static void st_add(st_builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void st_add(st_builder *b, const char *fmt, ...)
{
    assert(b && fmt && b->len <= b->cap && (b->buf || b->cap == 0));
    for (int tries = 0; tries < 2 && !b->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int need = vsnprintf(b->buf ? b->buf + b->len : NULL, b->buf ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (need < 0) {
            b->oom = 1;
            return;
        }
        if (b->buf && b->len + (size_t)need < b->cap) {
            b->len += (size_t)need;
            return;
        }
        size_t cap = (b->cap + (size_t)need + 1) * 2;
        char *nb = realloc(b->buf, cap);
        if (!nb) {
            b->oom = 1;
            return;
        }
        b->buf = nb;
        b->cap = cap;
    }
}

static int st_plain(const char *s)
{
    if (!s || !*s || strlen(s) > 200)
        return 0;
    for (; *s; s++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:+-", *s))
            return 0;
    return 1;
}

static size_t st_count(const sae_tensor *t)
{
    assert(t && (t->ndim == 1 || t->ndim == 2) && t->shape[0] >= 0 && (t->ndim == 1 || t->shape[1] >= 0));
    return (size_t)t->shape[0] * (t->ndim == 2 ? (size_t)t->shape[1] : 1);
}

size_t safetensors_data_bytes(const sae_tensor *t, int n)
{
    assert(n >= 0 && (n == 0 || t));
    size_t bytes = 0;
    for (int i = 0; i < n; i++)
        bytes += 4 * st_count(&t[i]);
    return bytes;
}

/* Names plain, unique, not "__metadata__"; metadata strings plain. */
static int st_valid(const sae_tensor *t, int n, const char *const *metadata)
{
    assert(n >= 0 && (n == 0 || t));
    for (int i = 0; i < n; i++) {
        if (!st_plain(t[i].name) || !strcmp(t[i].name, "__metadata__") || t[i].ndim < 1 || t[i].ndim > 2)
            return 0;
        for (int j = 0; j < i; j++)
            if (!strcmp(t[i].name, t[j].name))
                return 0;
    }
    for (int i = 0; metadata && metadata[i]; i += 2)
        if (!st_plain(metadata[i]) || !st_plain(metadata[i + 1]))
            return 0;
    return 1;
}

static void st_json(st_builder *b, const sae_tensor *t, int n, const char *const *metadata)
{
    assert(b && n >= 0 && (n == 0 || t) && st_valid(t, n, metadata)); /* nothing needs escaping */
    st_add(b, "{");
    if (metadata && metadata[0]) {
        st_add(b, "\"__metadata__\":{");
        for (int i = 0; metadata[i]; i += 2)
            st_add(b, "%s\"%s\":\"%s\"", i ? "," : "", metadata[i], metadata[i + 1]);
        st_add(b, "}%s", n ? "," : "");
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t end = off + 4 * st_count(&t[i]);
        st_add(b, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld", i ? "," : "", t[i].name,
               (long long)t[i].shape[0]);
        if (t[i].ndim == 2)
            st_add(b, ",%lld", (long long)t[i].shape[1]);
        st_add(b, "],\"data_offsets\":[%zu,%zu]}", off, end);
        off = end;
    }
    st_add(b, "}");
}

unsigned char *safetensors_header(const sae_tensor *t, int n, const char *const *metadata, size_t *len)
{
    assert(len && n >= 0 && (n == 0 || t));
    *len = 0;
    if (!st_valid(t, n, metadata))
        return NULL;
    st_builder b = {0};
    st_add(&b, "        "); /* room for the u64 length */
    st_json(&b, t, n, metadata);
    while (!b.oom && b.len % 8)
        st_add(&b, " ");
    if (b.oom) {
        free(b.buf);
        return NULL;
    }
    assert(b.len >= 8 && b.len % 8 == 0);
    uint64_t json_len = b.len - 8;
    for (int i = 0; i < 8; i++)
        b.buf[i] = (char)(unsigned char)(json_len >> (8 * i));
    *len = b.len;
    return (unsigned char *)b.buf;
}

/* ---- reading ---- */

int safetensors_json_len(const unsigned char *first8, uint64_t *n, char *err, size_t errlen)
{
    assert(first8 && n && (err || errlen == 0));
    *n = 0;
    for (int i = 0; i < 8; i++)
        *n |= (uint64_t)first8[i] << (8 * i);
    if (*n == 0 || *n > SAFETENSORS_HEADER_MAX) {
        snprintf(err, errlen, "header length %llu is not in 1 .. %u bytes (not a safetensors file?)",
                 (unsigned long long)*n, SAFETENSORS_HEADER_MAX);
        return -1;
    }
    return 0;
}

/* A JSON array of 1 or 2 non-negative integers into out; its length, or -1. */
static int st_ints(const json_t *a, int64_t *out, int min_n, int max_n)
{
    assert(out && 0 <= min_n && min_n <= max_n && max_n <= 2); /* out holds 2 */
    int n = json_is_array(a) ? (int)json_array_size(a) : -1;
    if (n < min_n || n > max_n)
        return -1;
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return -1;
        out[i] = json_integer_value(v);
    }
    return n;
}

/* Checks one tensor's entry and fills e; 0 or -1 with a message. */
static int st_entry(const json_t *t, const char *name, safetensors_entry *e, char *err, size_t errlen)
{
    assert(t && name && e);
    int64_t shape[2] = {0, 0}, off[2];
    const char *dtype = json_string_value(json_object_get(t, "dtype"));
    int nd = st_ints(json_object_get(t, "shape"), shape, 1, 2);
    if (!dtype || strcmp(dtype, "F32") || nd < 0 || st_ints(json_object_get(t, "data_offsets"), off, 2, 2) != 2) {
        snprintf(err, errlen, "tensor '%s' is not an F32 1-D or 2-D tensor with data_offsets", name);
        return -1;
    }
    if (shape[0] > INT32_MAX || shape[1] > INT32_MAX) {
        snprintf(err, errlen, "tensor '%s' has a dimension above 2^31 - 1", name);
        return -1;
    }
    uint64_t count = (uint64_t)shape[0] * (uint64_t)(nd == 2 ? shape[1] : 1);
    if (off[1] < off[0] || (uint64_t)(off[1] - off[0]) != 4 * count) {
        snprintf(err, errlen, "tensor '%s': data_offsets [%lld, %lld] do not span its %llu floats", name,
                 (long long)off[0], (long long)off[1], (unsigned long long)count);
        return -1;
    }
    assert((nd == 1 || nd == 2) && off[0] <= off[1]);
    *e = (safetensors_entry){nd, {shape[0], shape[1]}, (uint64_t)off[0], (uint64_t)off[1]};
    return 0;
}

int safetensors_find(const char *json, size_t json_len, const char *name, safetensors_entry *e, char *err,
                     size_t errlen)
{
    json_error_t je;
    assert((json || json_len == 0) && name && e && (err || errlen == 0));
    json_t *root = json_loadb(json, json_len, 0, &je);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "header is not a JSON object (%s)", root ? "another JSON value" : je.text);
        json_decref(root);
        return -1;
    }
    json_t *t = strcmp(name, "__metadata__") ? json_object_get(root, name) : NULL;
    int rc = t ? st_entry(t, name, e, err, errlen) : 1;
    json_decref(root);
    return rc;
}
