/* api/datasets_import.c — POST /v1/datasets with kind "npy" (a .npy file
 * and optional labels under --import-dir) or "idx" (MNIST-style files under
 * --import-dir or /usr/share/datasets).
 *
 * Paths: a relative path is taken from the import directory; both it and
 * the allowed roots go through realpath(), and the result must lie strictly
 * inside a root (prefix plus a '/' boundary), so neither ".." nor a symlink
 * can reach outside. A path that does not exist is told apart from one
 * outside only when it lies lexically inside, so the answers do not reveal
 * which files exist elsewhere. Every refusal is 422 naming the field.
 *
 * Import copies the files into the dataset's own directory (through a
 * staging directory, see datasets_int.h) instead of referencing them in
 * place or hard-linking them: np.save() rewrites a file in place, and a
 * hard link shares the inode, so re-saving the original would change (or
 * truncate, killing the mmap with SIGBUS) the data under a running job.
 * The copy is a reflink where the file system can (instant, no extra space
 * until either side changes), else copy_file_range (in-kernel), else
 * read/write. A .npy is checked before copying (header and exact size, so a
 * wrong file costs nothing), and the copy is then scanned for non-finite
 * values; labels must have one line per row. */
#include "datasets_int.h"
#include "idx.h"
#include "npyfile.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMPORT_COPY_BUF ((size_t)1 << 20)
#define IMPORT_IDX_MAX_BYTES ((off_t)1 << 32) /* an IDX source file larger than this cannot load */

static const char *const import_npy_keys[] = { "kind", "name", "path", "labels", NULL };
static const char *const import_idx_keys[] = { "kind", "name", "images", "labels", "class_names", NULL };

/* A source file, opened. */
typedef struct {
    int fd;      /* -1 when not open */
    off_t size;
} import_src;

/* Why an import failed: the reply's status, field and message. */
typedef struct {
    unsigned status;
    const char *field;
    char msg[768];
} import_err;

__attribute__((format(printf, 4, 5)))
static int import_fail(import_err *e, unsigned status, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->status = status;
    e->field = field;
    return -1;
}

static void import_close(import_src *src)
{
    if (src->fd >= 0) close(src->fd);
    src->fd = -1;
}

/* ---- paths ---- */

/* Lexically normalises an absolute path: drops "." and empty components, and ".." with its parent. */
static void import_normalize(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = in; *p;) {
        while (*p == '/') p++;
        size_t len = strcspn(p, "/");
        if (len == 0) break;
        if (len == 1 && p[0] == '.') {
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (n > 0 && out[n - 1] != '/') n--;
            if (n > 0) n--;
        } else if (n + 1 + len < cap) {
            out[n++] = '/';
            memcpy(out + n, p, len);
            n += len;
        }
        out[n] = '\0';
        p += len;
    }
    if (n == 0) snprintf(out, cap, "/");
}

static int import_inside(const char *path, const char *root)
{
    size_t rl = strlen(root);
    if (rl == 1 && root[0] == '/') return path[0] == '/' && path[1] != '\0';
    return !strncmp(path, root, rl) && path[rl] == '/' && path[rl + 1] != '\0';
}

static int import_inside_any(const char *path, char roots[][PATH_MAX], int n_roots)
{
    for (int i = 0; i < n_roots; i++)
        if (import_inside(path, roots[i])) return 1;
    return 0;
}

/* The allowed roots as real paths: the import directory (if configured and it
 * exists) and, with system, /usr/share/datasets. Returns how many; a
 * configured but missing import directory is an error (-1, msg set). */
static int import_roots(const api_server *s, int system, char roots[2][PATH_MAX], char *msg, size_t msglen)
{
    int n = 0;
    if (s->cfg.import_dir) {
        if (!realpath(s->cfg.import_dir, roots[n])) {
            snprintf(msg, msglen, "the import directory %s cannot be used (%s): create it or restart saed with "
                     "another --import-dir", s->cfg.import_dir, strerror(errno));
            return -1;
        }
        n++;
    }
    if (system && realpath(DATASETS_SYSTEM_DIR, roots[n])) n++;
    return n;
}

/* Resolves `user` (absolute, or relative to roots[0] when relative_ok) to a
 * real path inside one of the roots and opens it as a regular file. 0, or -1
 * with a message for a 422. */
static int import_open(const char *user, char roots[][PATH_MAX], int n_roots, int relative_ok, import_src *src,
                       char *msg, size_t msglen)
{
    char joined[PATH_MAX * 2], lexical[PATH_MAX * 2], real[PATH_MAX];
    if (user[0] != '/' && !relative_ok) {
        snprintf(msg, msglen, "'%.200s' is relative but there is no import directory: give an absolute path under "
                 DATASETS_SYSTEM_DIR " or start saed with --import-dir", user);
        return -1;
    }
    snprintf(joined, sizeof joined, "%s%s%s", user[0] == '/' ? "" : roots[0], user[0] == '/' ? "" : "/", user);
    import_normalize(joined, lexical, sizeof lexical);
    if (!realpath(joined, real)) {
        if (import_inside_any(lexical, roots, n_roots))
            snprintf(msg, msglen, "'%.200s' cannot be opened (%s): check the name", user, strerror(errno));
        else
            snprintf(msg, msglen, "'%.200s' is outside the directories files may be imported from", user);
        return -1;
    }
    if (!import_inside_any(real, roots, n_roots)) {
        snprintf(msg, msglen, "'%.200s' is outside the directories files may be imported from (symlinks and '..' "
                 "must not lead out of them)", user);
        return -1;
    }
    struct stat sb;
    src->fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (src->fd < 0 || fstat(src->fd, &sb) || !S_ISREG(sb.st_mode)) {
        snprintf(msg, msglen, "'%.200s' %s", user, src->fd < 0 ? strerror(errno) : "is not a regular file");
        if (src->fd >= 0) close(src->fd);
        src->fd = -1;
        return -1;
    }
    src->size = sb.st_size;
    return 0;
}

/* ---- copying ---- */

static int import_copy_rw(int src, int dst, off_t from, char *err, size_t errlen)
{
    char *buf = malloc(IMPORT_COPY_BUF); /* (IMPORT_COPY_BUF) */
    if (!buf) { snprintf(err, errlen, "out of memory"); errno = ENOMEM; return -1; }
    int rc = 0, e = 0;
    for (off_t off = from;;) {
        ssize_t n = pread(src, buf, IMPORT_COPY_BUF, off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n < 0) rc = -1, e = errno, snprintf(err, errlen, "reading the file: %s", strerror(errno));
            break;
        }
        for (ssize_t done = 0; done < n && rc == 0;) {
            ssize_t w = write(dst, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) rc = -1, e = errno, snprintf(err, errlen, "writing the copy: %s", strerror(errno));
            else done += w;
        }
        if (rc) break;
        off += n;
    }
    free(buf);
    errno = e;
    return rc;
}

static int import_copy_data(int src, int dst, char *err, size_t errlen)
{
    if (ioctl(dst, FICLONE, src) == 0) return 0;
    loff_t off = 0;
    for (;;) {
        ssize_t n = copy_file_range(src, &off, dst, NULL, (size_t)1 << 30, 0);
        if (n > 0) continue;
        if (n == 0) return 0;
        if (errno == EINTR) continue;
        if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP || errno == EBADF)
            return import_copy_rw(src, dst, off, err, errlen);
        int e = errno;
        snprintf(err, errlen, "copying the file: %s", strerror(e));
        errno = e;
        return -1;
    }
}

/* Copies src into path (created read-only) and fsyncs it. 0, or -1 with err set, errno saying why (path
 * removed). */
static int import_copy(const import_src *src, const char *path, char *err, size_t errlen)
{
    int dst = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (dst < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot create %.300s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    int rc = import_copy_data(src->fd, dst, err, errlen), e = rc ? errno : 0;
    if (rc == 0 && fsync(dst)) rc = -1, e = errno, snprintf(err, errlen, "writing the copy: %s", strerror(e));
    if (close(dst) && rc == 0) rc = -1, e = errno, snprintf(err, errlen, "writing the copy: %s", strerror(e));
    if (rc) unlink(path);
    errno = e;
    return rc;
}

/* ---- request fields ---- */

/* A path field: absent or null -> 0; a non-empty string without NUL bytes -> 1; else -1 with an error. */
static int import_get_path(const json_t *body, const char *key, const char **out, spec_errors *errs)
{
    const json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v) || !json_string_length(v) || strlen(json_string_value(v)) != json_string_length(v) ||
        json_string_length(v) >= PATH_MAX) {
        spec_error_add(errs, 400, key, "must be a non-empty file path");
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

static const char *import_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

/* Validation of the body's shape shared by both kinds: fields, name, required main path. 0, or -1 after replying. */
static int import_parse(api_req *r, const json_t *body, const char *const *keys, const char *main_key,
                        const char **main_path, const char **labels, store_dataset *d)
{
    spec_errors errs = { 0 };
    spec_check_fields(body, "", keys, &errs);
    if (import_get_path(body, main_key, main_path, &errs) == 0)
        spec_error_add(&errs, 400, main_key, "required: the file's path (relative to the import directory)");
    import_get_path(body, "labels", labels, &errs);
    datasets_name(body, *main_path ? import_basename(*main_path) : "import", d->name, sizeof d->name, &errs);
    if (!errs.n) return 0;
    api_problem_fields(r, &errs, NULL);
    return -1;
}

static enum MHD_Result import_reply_error(api_req *r, const import_err *e)
{
    return datasets_problem(r, e->status, e->field, e->msg);
}

/* ---- npy ---- */

/* Header and exact size of the source, before anything is copied. */
static int import_npy_precheck(const import_src *src, npyfile_layout *lay, import_err *e)
{
    size_t want = NPYFILE_HEADER_MAX + 16;
    if ((off_t)want > src->size) want = (size_t)src->size;
    unsigned char *buf = malloc(want ? want : 1); /* (want) the start of the file */
    npyfile_stream *vs = npyfile_stream_new();
    int rc = buf && vs ? 0 : import_fail(e, MHD_HTTP_INTERNAL_SERVER_ERROR, "path", "out of memory");
    ssize_t n = rc ? 0 : pread(src->fd, buf, want, 0);
    if (!rc && n < 0) rc = import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, "path", "cannot read it: %s", strerror(errno));
    char msg[512];
    if (!rc && npyfile_stream_feed(vs, buf, (size_t)n, msg, sizeof msg))
        rc = import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, "path", "%s", msg);
    if (!rc && !npyfile_stream_layout(vs, lay))
        rc = import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, "path", "the file ends inside a .npy header (%lld bytes): "
                         "save the array with np.save(path, arr)", (long long)src->size);
    if (!rc && (uint64_t)src->size != lay->file_bytes)
        rc = import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, "path", "the file has %lld bytes but its header describes "
                         "%lld x %d values (%llu bytes): it is truncated or was not written by np.save",
                         (long long)src->size, (long long)lay->n_rows, lay->dim, (unsigned long long)lay->file_bytes);
    npyfile_stream_free(vs);
    free(buf);
    return rc;
}

/* Copies src into the stage as `file`. */
static int import_stage_copy(const import_src *src, const datasets_stage *stage, const char *file, const char *field,
                             import_err *e)
{
    char path[PATH_MAX + 32], msg[512];
    datasets_stage_file(stage, file, path, sizeof path);
    if (import_copy(src, path, msg, sizeof msg) == 0) return 0;
    if (errno == ENOSPC || errno == EDQUOT) /* as an upload that fills the disk: 507, and what to do */
        return import_fail(e, MHD_HTTP_INSUFFICIENT_STORAGE, field, "the data directory's file system is full (%s): "
                           "free space there (delete datasets or jobs you no longer need), then import again", msg);
    return import_fail(e, MHD_HTTP_INTERNAL_SERVER_ERROR, field, "cannot copy it into the data directory: %s", msg);
}

/* The staged copy of the .npy: opened, scanned for NaN/Inf; its shape into d. */
static int import_npy_judge(const datasets_stage *stage, store_dataset *d, npyfile_layout *lay, import_err *e)
{
    char path[PATH_MAX + 32];
    npyfile *f = NULL;
    datasets_stage_file(stage, DATASETS_NPY_FILE, path, sizeof path);
    char msg[512];
    if (npyfile_open(path, &f, msg, sizeof msg) || npyfile_scan(f, msg, sizeof msg)) {
        npyfile_close(f);
        return import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, "path", "%s", msg);
    }
    *lay = *npyfile_get_layout(f);
    npyfile_close(f);
    d->dim = lay->dim;
    d->n_rows = lay->n_rows;
    return 0;
}

/* The staged labels file: one line per row. */
static int import_labels_judge(const datasets_stage *stage, int64_t n_rows, import_err *e)
{
    char path[PATH_MAX + 32];
    npyfile_labels *l = NULL;
    datasets_stage_file(stage, DATASETS_NPY_LABELS, path, sizeof path);
    char msg[512];
    if (npyfile_labels_open(path, n_rows, &l, msg, sizeof msg))
        return import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, "labels", "%s", msg);
    npyfile_labels_close(l);
    return 0;
}

/* Every step of an npy import into the stage; d filled. 0, or -1 with e set. */
static int import_npy_run(const api_server *s, const char *path, const char *labels, datasets_stage *stage,
                          store_dataset *d, npyfile_layout *lay, import_err *e)
{
    char roots[2][PATH_MAX], msg[512];
    import_src data = { -1, 0 }, lab = { -1, 0 };
    int n = import_roots(s, 0, roots, msg, sizeof msg), rc = 0;
    if (n < 0) return import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, "path", "%s", msg);
    if (import_open(path, roots, n, 1, &data, msg, sizeof msg))
        rc = import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, "path", "%s", msg);
    if (!rc && labels && import_open(labels, roots, n, 1, &lab, msg, sizeof msg))
        rc = import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, "labels", "%s", msg);
    if (!rc) rc = import_npy_precheck(&data, lay, e);
    if (!rc && datasets_stage_open(s, stage, msg, sizeof msg))
        rc = import_fail(e, MHD_HTTP_INTERNAL_SERVER_ERROR, "path", "%s", msg);
    if (!rc) rc = import_stage_copy(&data, stage, DATASETS_NPY_FILE, "path", e);
    if (!rc) rc = import_npy_judge(stage, d, lay, e);
    if (!rc && labels) rc = import_stage_copy(&lab, stage, DATASETS_NPY_LABELS, "labels", e);
    if (!rc && labels) rc = import_labels_judge(stage, d->n_rows, e);
    import_close(&data);
    import_close(&lab);
    return rc;
}

enum MHD_Result datasets_import_npy(api_req *r, const json_t *body)
{
    store_dataset d = { 0 };
    const char *path = NULL, *labels = NULL;
    if (import_parse(r, body, import_npy_keys, "path", &path, &labels, &d)) return MHD_YES;
    if (!r->srv->cfg.import_dir)
        return api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "path", "importing files by path is off: start "
                                 "saed with --import-dir DIR and put the file under DIR, or upload it with POST "
                                 "/v1/datasets?kind=npy&name=NAME");
    datasets_stage stage = { "" };
    npyfile_layout lay;
    import_err e;
    if (import_npy_run(r->srv, path, labels, &stage, &d, &lay, &e)) {
        datasets_stage_discard(&stage);
        return import_reply_error(r, &e);
    }
    json_t *params = json_pack("{s:s,s:s,s:I,s:o}", "file", path, "dtype", lay.elem_size == 2 ? "<f2" : "<f4",
                               "bytes", (json_int_t)lay.file_bytes, "labels_file",
                               labels ? json_string(labels) : json_null());
    snprintf(d.kind, sizeof d.kind, "npy");
    d.path = DATASETS_NPY_FILE;
    d.has_labels = labels != NULL;
    d.params_json = params ? json_dumps(params, API_JSON_FLAGS) : NULL;
    json_decref(params);
    enum MHD_Result ret = d.params_json ? datasets_stage_commit(r, &stage, &d)
                                        : api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    free(d.params_json);
    datasets_stage_discard(&stage);
    return ret;
}

/* ---- idx ---- */

/* The field an idx_load message is about. */
static const char *import_idx_field(const char *msg)
{
    return !strncmp(msg, "labels file", 11) || strstr(msg, "labels file holds") ? "labels" : "images";
}

/* Loads the staged copies (the whole check); the shape into d. */
static int import_idx_judge(const datasets_stage *stage, int with_labels, store_dataset *d, int *rows, int *cols,
                            import_err *e)
{
    char images[PATH_MAX + 32], labels[PATH_MAX + 32];
    idx_dataset *x = NULL;
    datasets_stage_file(stage, DATASETS_IDX_IMAGES, images, sizeof images);
    datasets_stage_file(stage, DATASETS_IDX_LABELS, labels, sizeof labels);
    char msg[512];
    if (idx_load(images, with_labels ? labels : NULL, &x, msg, sizeof msg))
        return import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, import_idx_field(msg), "%s", msg);
    d->n_rows = x->n;
    d->dim = x->dim;
    *rows = x->rows;
    *cols = x->cols;
    idx_free(x);
    if (d->n_rows < 1) return import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, "images", "the images file holds no images");
    return 0;
}

static int import_idx_open(const char *user, char roots[][PATH_MAX], int n, int relative_ok, const char *field,
                           import_src *src, import_err *e)
{
    char msg[512];
    if (import_open(user, roots, n, relative_ok, src, msg, sizeof msg))
        return import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, field, "%s", msg);
    if (src->size > IMPORT_IDX_MAX_BYTES)
        return import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, field, "'%.200s' is larger than an IDX file saed can "
                           "load (4 GiB): convert it to a float16 .npy and import that", user);
    return 0;
}

static int import_idx_run(const api_server *s, const char *images, const char *labels, datasets_stage *stage,
                          store_dataset *d, int *rows, int *cols, import_err *e)
{
    char roots[2][PATH_MAX], msg[512];
    import_src img = { -1, 0 }, lab = { -1, 0 };
    int n = import_roots(s, 1, roots, msg, sizeof msg), rc = 0;
    if (n < 0) return import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, "images", "%s", msg);
    if (n == 0)
        return import_fail(e, MHD_HTTP_UNPROCESSABLE_CONTENT, "images", "there is nowhere to import from: start saed "
                           "with --import-dir DIR (or install dataset-fashion-mnist into " DATASETS_SYSTEM_DIR ")");
    int rel = s->cfg.import_dir != NULL;
    rc = import_idx_open(images, roots, n, rel, "images", &img, e);
    if (!rc && labels) rc = import_idx_open(labels, roots, n, rel, "labels", &lab, e);
    if (!rc && datasets_stage_open(s, stage, msg, sizeof msg))
        rc = import_fail(e, MHD_HTTP_INTERNAL_SERVER_ERROR, "images", "%s", msg);
    if (!rc) rc = import_stage_copy(&img, stage, DATASETS_IDX_IMAGES, "images", e);
    if (!rc && labels) rc = import_stage_copy(&lab, stage, DATASETS_IDX_LABELS, "labels", e);
    if (!rc) rc = import_idx_judge(stage, labels != NULL, d, rows, cols, e);
    import_close(&img);
    import_close(&lab);
    return rc;
}

/* "fashion-mnist" when labels should read as Fashion-MNIST class names: body.class_names, by default when the
 * images path says "fashion". -1 after recording an error. */
static int import_class_names(const json_t *body, const char *images, const char *labels, const char **out,
                              spec_errors *errs)
{
    const json_t *v = json_object_get(body, "class_names");
    int on = labels && strcasestr(images, "fashion") != NULL;
    if (v && !json_is_boolean(v)) {
        spec_error_add(errs, 400, "class_names", "must be true (Fashion-MNIST class names) or false (the digits)");
        return -1;
    }
    if (v) on = json_is_true(v);
    if (on && !labels) {
        spec_error_add(errs, 422, "class_names", "needs a labels file");
        return -1;
    }
    *out = on ? "fashion-mnist" : NULL;
    return 0;
}

enum MHD_Result datasets_import_idx(api_req *r, const json_t *body)
{
    store_dataset d = { 0 };
    const char *images = NULL, *labels = NULL, *names = NULL;
    spec_errors errs = { 0 };
    if (import_parse(r, body, import_idx_keys, "images", &images, &labels, &d)) return MHD_YES;
    if (import_class_names(body, images, labels, &names, &errs)) return api_problem_fields(r, &errs, NULL);
    datasets_stage stage = { "" };
    import_err e;
    int rows = 0, cols = 0;
    if (import_idx_run(r->srv, images, labels, &stage, &d, &rows, &cols, &e)) {
        datasets_stage_discard(&stage);
        return import_reply_error(r, &e);
    }
    json_t *params = json_pack("{s:s,s:o,s:i,s:i,s:o}", "images", images, "labels",
                               labels ? json_string(labels) : json_null(), "rows", rows, "cols", cols,
                               "class_names", names ? json_string(names) : json_null());
    snprintf(d.kind, sizeof d.kind, "idx");
    d.path = DATASETS_IDX_IMAGES;
    d.has_labels = labels != NULL;
    d.params_json = params ? json_dumps(params, API_JSON_FLAGS) : NULL;
    json_decref(params);
    enum MHD_Result ret = d.params_json ? datasets_stage_commit(r, &stage, &d)
                                        : api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    free(d.params_json);
    datasets_stage_discard(&stage);
    return ret;
}
