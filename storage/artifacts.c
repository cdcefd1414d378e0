/* artifacts — reading an SAE's .npy weights back, and the offset-indexed
 * table files of the analyze job (see include/artifacts.h for the layout).
 *
 * Weights are read with pread at the offsets the .npy header gives, so a
 * request that needs two decoder rows reads two rows, not the matrix.
 * Tables are written with files_write_atomic (header, offsets and records as
 * three parts) and mapped read-only; open checks everything a reader relies
 * on (magic, record size, exact file size, monotone offsets), so a truncated
 * or foreign file is an error, never an out-of-bounds read. An arch's extra
 * parameters (sae_tensors() beyond the four .npy arrays: gated r_mag/b_mag,
 * jumprelu log_theta, batchtopk threshold) come from sae.safetensors by name. */
#include "artifacts.h"
#include "files.h"
#include "idx.h"
#include "npy.h"
#include "npyfile.h"
#include "sae_groups.h"
#include "safetensors.h"
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "artifacts reads little-endian files with host loads and needs a little-endian host"
#endif

#define ARTIFACTS_VERSION 1u
#define ARTIFACTS_HDR_BYTES 40
#define ARTIFACTS_NPY_HDR_MAX 4096

struct artifacts_table {
    const unsigned char *map; /* (size) the whole file */
    size_t size;
    uint32_t rec_size;
    int64_t n;
    uint64_t total, aux;
    const int64_t *ptr;       /* (n + 1) into map */
    const unsigned char *recs;/* (total, rec_size) into map */
};

/* ---- .npy ---- */

static int artifacts_fail(char *err, size_t errlen, const char *path, const char *what)
{
    assert(err && path && what);
    snprintf(err, errlen, "%s: %s", path, what);
    return -1;
}

/* Opens path and parses its .npy header; fd and info out. */
static int artifacts_npy_open(const char *path, int *fd, npy_info *info, char *err, size_t errlen)
{
    assert(path && fd && info);
    assert(err);
    unsigned char hdr[ARTIFACTS_NPY_HDR_MAX];
    char msg[256];
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        snprintf(msg, sizeof msg, "cannot open (%s); the SAE's files may have been removed", strerror(errno));
        return artifacts_fail(err, errlen, path, msg);
    }
    ssize_t got = pread(*fd, hdr, sizeof hdr, 0);
    if (got < 0 || npy_parse_header(hdr, (size_t)got, info, msg, sizeof msg)) {
        close(*fd);
        *fd = -1;
        return artifacts_fail(err, errlen, path, got < 0 ? strerror(errno) : msg);
    }
    if (strcmp(info->descr, "<f4")) {
        close(*fd);
        *fd = -1;
        return artifacts_fail(err, errlen, path, "not a '<f4' array");
    }
    return 0;
}

static int artifacts_pread_all(int fd, void *buf, size_t len, off_t off)
{
    assert(fd >= 0);
    assert(buf || len == 0);
    assert(off >= 0);
    char *p = buf;
    while (len > 0) {
        ssize_t r = pread(fd, p, len, off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        p += r, len -= (size_t)r, off += r;
    }
    return 0;
}

/* Reads the '<f4' C-order array at path into out, which must have exactly
 * shape (ndim dims). */
static int artifacts_read_f32(const char *path, int ndim, const int64_t *shape, float *out, char *err, size_t errlen)
{
    assert(path);
    assert(ndim >= 1 && ndim <= NPY_MAX_DIMS && shape);
    assert(out && err);
    int fd;
    npy_info info;
    if (artifacts_npy_open(path, &fd, &info, err, errlen)) return -1;
    size_t count = 1;
    int ok = info.ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) {
        ok = info.shape[i] == shape[i];
        count *= (size_t)shape[i];
    }
    int rc = ok ? artifacts_pread_all(fd, out, count * sizeof *out, (off_t)info.header_len) : -1;
    close(fd);
    if (!ok) return artifacts_fail(err, errlen, path, "has a different shape than its SAE record says");
    if (rc) return artifacts_fail(err, errlen, path, "is shorter than its header says (truncated?)");
    return 0;
}

int artifacts_read_f32_rows(const char *path, int64_t n_rows, int cols, const int32_t *idx, int n, float *out,
                            char *err, size_t errlen)
{
    assert(path);
    assert(n_rows >= 0 && cols >= 1);
    assert(n >= 0 && (idx || n == 0) && (out || n == 0));
    assert(err);
    int fd;
    npy_info info;
    if (artifacts_npy_open(path, &fd, &info, err, errlen)) return -1;
    int rc = info.ndim == 2 && info.shape[0] == n_rows && info.shape[1] == cols ? 0 : -1;
    if (rc) {
        close(fd);
        return artifacts_fail(err, errlen, path, "has a different shape than its SAE record says");
    }
    size_t row_bytes = (size_t)cols * sizeof *out;
    for (int i = 0; i < n && !rc; i++) {
        if (idx[i] < 0 || idx[i] >= n_rows) rc = -2;
        else rc = artifacts_pread_all(fd, out + (size_t)i * cols, row_bytes,
                                      (off_t)(info.header_len + (size_t)idx[i] * row_bytes));
    }
    close(fd);
    if (rc == -2) return artifacts_fail(err, errlen, path, "row index out of range");
    if (rc) return artifacts_fail(err, errlen, path, "is shorter than its header says (truncated?)");
    return 0;
}

/* ---- SAE weights ---- */

int artifacts_sae_path(const store_sae *s, const char *name, char *buf, size_t n, char *err, size_t errlen)
{
    assert(s && name);
    assert(buf && n > 0);
    assert(err);
    if (!s->dir || !*s->dir) {
        snprintf(err, errlen, "SAE %lld has no weight files", (long long)s->id);
        return -1;
    }
    int len = snprintf(buf, n, "%s/%s", s->dir, name);
    if (len < 0 || (size_t)len >= n) {
        snprintf(err, errlen, "SAE %lld: its directory path is too long", (long long)s->id);
        return -1;
    }
    return 0;
}

/* The sae_config of a stored SAE (arch, k, threshold and a group table from its config_json;
 * shape and group_size from the row). A table (group_size 0) is the caller's to free with
 * sae_groups_free((sae_groups *)cfg->groups). */
static int artifacts_sae_config(const store_sae *s, sae_config *cfg, char *err, size_t errlen)
{
    assert(s && cfg);
    assert(err);
    char msg[200] = "";
    sae_groups *t = NULL;
    memset(cfg, 0, sizeof *cfg);
    json_t *j = json_loads(s->config_json ? s->config_json : "{}", 0, NULL);
    const char *arch = json_string_value(json_object_get(j, "arch"));
    json_t *k = json_object_get(j, "k"), *th = json_object_get(j, "threshold");
    int rc = arch && !sae_arch_parse(arch, &cfg->arch) ? 0 : -1;
    if (rc) snprintf(err, errlen, "SAE %lld: its stored configuration names no known arch", (long long)s->id);
    if (!rc && s->group_size == 0 && sae_groups_from_json(json_object_get(j, "groups"), s->n_latents, &t, msg,
                                                          sizeof msg)) {
        snprintf(err, errlen, "SAE %lld: its stored groups are unreadable (%s)", (long long)s->id, msg);
        rc = -1;
    }
    cfg->k = json_is_integer(k) ? (int)json_integer_value(k) : 0;
    cfg->threshold = json_is_number(th) ? (float)json_number_value(th) : 0.0f;
    json_decref(j);
    cfg->dim = s->dim;
    cfg->n_latents = s->n_latents;
    cfg->group_size = s->group_size;
    cfg->groups = t;
    return rc;
}

/* Reads tensor t (an arch extra) from the open sae.safetensors fd, whose
 * header JSON (json_len bytes) is json; file_size bounds the data. */
static int artifacts_st_tensor(int fd, const char *json, uint64_t json_len, off_t file_size, const sae_tensor *t,
                               const char *path, char *err, size_t errlen)
{
    assert(fd >= 0 && json);
    assert(t && t->data && t->ndim >= 1 && t->ndim <= 2);
    assert(path && err);
    safetensors_entry e;
    char msg[300];
    int rc = safetensors_find(json, json_len, t->name, &e, msg, sizeof msg);
    if (rc == 1) snprintf(msg, sizeof msg, "has no tensor '%s'; re-run the training job to export it", t->name);
    if (rc) return artifacts_fail(err, errlen, path, msg);
    if (e.ndim != t->ndim || e.shape[0] != t->shape[0] || (t->ndim == 2 && e.shape[1] != t->shape[1])) {
        snprintf(msg, sizeof msg, "tensor '%s' has a different shape than its SAE record says", t->name);
        return artifacts_fail(err, errlen, path, msg);
    }
    uint64_t off = 8 + json_len + e.begin;
    if (off + (e.end - e.begin) > (uint64_t)file_size ||
        artifacts_pread_all(fd, t->data, (size_t)(e.end - e.begin), (off_t)off))
        return artifacts_fail(err, errlen, path, "is shorter than its header says (truncated?)");
    return 0;
}

/* The arch's extra tensors (after the four .npy ones) from s->dir/sae.safetensors. */
static int artifacts_sae_extras(const store_sae *s, sae_params *p, char *err, size_t errlen)
{
    assert(s && p);
    assert(err);
    sae_tensor t[SAE_MAX_TENSORS];
    int nt = sae_tensors(p, t, SAE_MAX_TENSORS);
    if (nt <= 4) return 0;
    char path[4096], msg[300];
    unsigned char first8[8];
    uint64_t json_len;
    struct stat st;
    if (artifacts_sae_path(s, "sae.safetensors", path, sizeof path, err, errlen)) return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(msg, sizeof msg, "cannot open (%s); this SAE's arch keeps extra parameters there", strerror(errno));
        return artifacts_fail(err, errlen, path, msg);
    }
    int rc = fstat(fd, &st) || artifacts_pread_all(fd, first8, 8, 0) ? -1 : 0;
    if (rc) artifacts_fail(err, errlen, path, "cannot read its header (truncated?)");
    else if (safetensors_json_len(first8, &json_len, msg, sizeof msg)) rc = artifacts_fail(err, errlen, path, msg);
    char *json = rc ? NULL : malloc(json_len);
    if (!rc && (!json || artifacts_pread_all(fd, json, json_len, 8)))
        rc = artifacts_fail(err, errlen, path, json ? "is shorter than its header says (truncated?)" : "out of memory");
    for (int i = 4; !rc && i < nt && i < SAE_MAX_TENSORS; i++)
        rc = artifacts_st_tensor(fd, json, json_len, st.st_size, &t[i], path, err, errlen);
    free(json);
    close(fd);
    return rc;
}

/* The files hold the weights with the input scale already folded in
 * (jobrun_export), so the loaded SAE takes raw dataset rows; the extras are
 * unchanged by the fold and are read as they were trained. */
int artifacts_sae_load(const store_sae *s, sae_params *p, char *err, size_t errlen)
{
    assert(s && p);
    assert(err);
    sae_config cfg;
    memset(p, 0, sizeof *p);
    if (artifacts_sae_config(s, &cfg, err, errlen)) return -1;
    int rc = sae_params_alloc(p, &cfg); /* takes its own copy of a group table */
    sae_groups_free((sae_groups *)cfg.groups);
    if (rc) {
        snprintf(err, errlen, "SAE %lld: out of memory loading its weights", (long long)s->id);
        return -1;
    }
    const struct { const char *name; float *dst; int64_t shape[2]; int ndim; } w[] = {
        { "encoder.npy", p->v.W_enc, { cfg.dim, cfg.n_latents }, 2 },
        { "b_enc.npy", p->v.b_enc, { cfg.n_latents, 0 }, 1 },
        { "decoder.npy", p->v.W_dec, { cfg.n_latents, cfg.dim }, 2 },
        { "b_dec.npy", p->v.b_dec, { cfg.dim, 0 }, 1 },
    };
    char path[4096];
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        if (artifacts_sae_path(s, w[i].name, path, sizeof path, err, errlen) ||
            artifacts_read_f32(path, w[i].ndim, w[i].shape, w[i].dst, err, errlen)) {
            sae_params_free(p);
            return -1;
        }
    }
    if (artifacts_sae_extras(s, p, err, errlen)) {
        sae_params_free(p);
        return -1;
    }
    return 0;
}

/* ---- tables ---- */

int artifacts_table_write(const char *path, const char *magic, uint32_t rec_size, int64_t n, const int64_t *ptr,
                          const void *recs, uint64_t aux, char *err, size_t errlen)
{
    assert(path && err);
    assert(magic && strlen(magic) == 8);
    assert(rec_size > 0);
    assert(n >= 0 && ptr && ptr[0] == 0 && ptr[n] >= 0);
    assert(recs || ptr[n] == 0);
    unsigned char hdr[ARTIFACTS_HDR_BYTES] = { 0 };
    uint32_t version = ARTIFACTS_VERSION;
    uint64_t un = (uint64_t)n, total = (uint64_t)ptr[n];
    memcpy(hdr, magic, 8);
    memcpy(hdr + 8, &version, 4);
    memcpy(hdr + 12, &rec_size, 4);
    memcpy(hdr + 16, &un, 8);
    memcpy(hdr + 24, &total, 8);
    memcpy(hdr + 32, &aux, 8);
    files_part parts[3] = { { hdr, sizeof hdr }, { ptr, (size_t)(n + 1) * sizeof *ptr },
                            { recs, (size_t)total * rec_size } };
    return files_write_atomic(path, parts, 3, err, errlen);
}

/* Checks the mapped header and offsets of t. */
static int artifacts_table_check(artifacts_table *t, const char *magic, uint32_t rec_size)
{
    assert(t && t->map);
    assert(magic && strlen(magic) == 8);
    assert(rec_size > 0);
    uint32_t version, rs;
    uint64_t n;
    if (t->size < ARTIFACTS_HDR_BYTES || memcmp(t->map, magic, 8)) return -1;
    memcpy(&version, t->map + 8, 4);
    memcpy(&rs, t->map + 12, 4);
    memcpy(&n, t->map + 16, 8);
    memcpy(&t->total, t->map + 24, 8);
    memcpy(&t->aux, t->map + 32, 8);
    if (version != ARTIFACTS_VERSION || rs != rec_size || n > (1ull << 40) || t->total > (1ull << 48)) return -1;
    size_t want = ARTIFACTS_HDR_BYTES + (size_t)(n + 1) * 8 + (size_t)t->total * rec_size;
    if (want != t->size) return -1;
    t->n = (int64_t)n;
    t->rec_size = rec_size;
    t->ptr = (const int64_t *)(const void *)(t->map + ARTIFACTS_HDR_BYTES);
    t->recs = t->map + ARTIFACTS_HDR_BYTES + (size_t)(n + 1) * 8;
    if (t->ptr[0] != 0 || (uint64_t)t->ptr[n] != t->total) return -1;
    for (uint64_t i = 0; i < n; i++)
        if (t->ptr[i + 1] < t->ptr[i]) return -1;
    return 0;
}

int artifacts_table_open(const char *path, const char *magic, uint32_t rec_size, artifacts_table **out,
                         char *err, size_t errlen)
{
    assert(path && out && err);
    assert(magic && strlen(magic) == 8);
    assert(rec_size > 0);
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb)) {
        if (fd >= 0) close(fd);
        snprintf(err, errlen, "%s: cannot open (%s); run the analyze job again", path, strerror(errno));
        return -1;
    }
    artifacts_table *t = calloc(1, sizeof *t);
    void *map = t && sb.st_size > 0 ? mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    close(fd);
    if (!t || map == MAP_FAILED) {
        free(t);
        snprintf(err, errlen, "%s: cannot map (%s)", path, sb.st_size > 0 ? strerror(errno) : "empty file");
        return -1;
    }
    t->map = map;
    t->size = (size_t)sb.st_size;
    if (artifacts_table_check(t, magic, rec_size)) {
        artifacts_table_close(t);
        snprintf(err, errlen, "%s: not a valid analysis file (truncated or from another version); run the analyze "
                 "job again", path);
        return -1;
    }
    *out = t;
    return 0;
}

void artifacts_table_close(artifacts_table *t)
{
    if (!t) return;
    munmap((void *)t->map, t->size);
    free(t);
}

uint64_t artifacts_table_aux(const artifacts_table *t)
{
    assert(t);
    return t->aux;
}

int64_t artifacts_table_get(const artifacts_table *t, int64_t i, const void **recs)
{
    assert(t && recs);
    if (i < 0 || i >= t->n) {
        *recs = NULL;
        return 0;
    }
    *recs = t->recs + (size_t)t->ptr[i] * t->rec_size;
    return t->ptr[i + 1] - t->ptr[i];
}

int64_t artifacts_intersect(const int32_t *a, int64_t na, const int32_t *b, int64_t nb)
{
    assert(na >= 0 && (a || na == 0));
    assert(nb >= 0 && (b || nb == 0));
    int64_t i = 0, j = 0, k = 0;
    while (i < na && j < nb) {
        if (a[i] < b[j]) i++;
        else if (a[i] > b[j]) j++;
        else k++, i++, j++;
    }
    return k;
}

/* ---- dataset labels ---- */

struct artifacts_labels {
    npyfile_labels *text; /* npy datasets */
    uint8_t *ids;         /* (n) idx datasets' class ids */
    int names;            /* idx: params.class_names is "fashion-mnist" */
    int64_t n;
    char buf[16];         /* an idx label as its number */
};

static int artifacts_labels_idx(artifacts_labels *l, const char *path, const store_dataset *d, char *err,
                                size_t errlen)
{
    assert(l && path && d);
    assert(err);
    if (idx_load_labels(path, &l->ids, &l->n, err, errlen)) return -1;
    json_t *params = json_loads(d->params_json ? d->params_json : "{}", 0, NULL);
    const char *names = json_string_value(json_object_get(params, "class_names"));
    l->names = names && !strcmp(names, "fashion-mnist");
    json_decref(params);
    if (d->n_rows >= 0 && l->n < d->n_rows) {
        snprintf(err, errlen, "%s: %lld labels for %lld rows", path, (long long)l->n, (long long)d->n_rows);
        return -1;
    }
    return 0;
}

int artifacts_labels_open(const char *data_dir, const store_dataset *d, artifacts_labels **out, char *err,
                          size_t errlen)
{
    assert(data_dir && d && out);
    assert(err);
    char path[4096];
    *out = NULL;
    int is_npy = !strcmp(d->kind, "npy"), is_idx = !strcmp(d->kind, "idx");
    if (!d->has_labels || (!is_npy && !is_idx)) return 1;
    snprintf(path, sizeof path, "%s/datasets/%lld/%s", data_dir, (long long)d->id, is_npy ? "labels.txt" : "labels.idx");
    artifacts_labels *l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory opening the labels of dataset %lld", (long long)d->id);
        return -1;
    }
    int rc = is_npy ? npyfile_labels_open(path, d->n_rows, &l->text, err, errlen)
                    : artifacts_labels_idx(l, path, d, err, errlen);
    if (rc) {
        artifacts_labels_close(l);
        return -1;
    }
    if (is_npy) l->n = npyfile_labels_count(l->text);
    *out = l;
    return 0;
}

int artifacts_label(artifacts_labels *l, int64_t i, const char **s, size_t *len)
{
    assert(l && s && len);
    if (i < 0 || i >= l->n) return -1;
    if (l->text) return npyfile_labels_get(l->text, i, s, len);
    const char *name = l->names ? idx_class_name(l->ids[i]) : NULL;
    if (!name) {
        snprintf(l->buf, sizeof l->buf, "%d", l->ids[i]);
        name = l->buf;
    }
    *s = name;
    *len = strlen(name);
    return 0;
}

int64_t artifacts_labels_count(const artifacts_labels *l)
{
    assert(l);
    return l->n;
}

void artifacts_labels_close(artifacts_labels *l)
{
    if (!l) return;
    npyfile_labels_close(l->text);
    free(l->ids);
    free(l);
}
