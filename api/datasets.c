/* api/datasets.c — /v1/datasets: create, list, get, delete, rows.npy,
 * planes.npy, labels; and the staging directories new file datasets go
 * through (datasets_int.h describes the layout on disk).
 *
 * Kinds are a table of (kind, create function): "circles" stores only its
 * normalised parameters (rows are a pure function of seed and index, so
 * rows.npy and planes.npy regenerate them on demand, the planes counted in
 * the reply budget while they live; planes.npy is sent from them a chunk at
 * a time, never copied whole); "npy" and "idx" copy
 * their files into the data directory (datasets_import.c), and a streamed
 * .npy upload (POST ?kind=npy) ends in datasets_upload.c. Row and label
 * reads of file datasets are in datasets_read.c. */
#include "datasets_int.h"
#include "circles.h"
#include "files.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DATASETS_ROWS_DEFAULT 1000
#define DATASETS_ROWS_MAX 100000
#define DATASETS_REPLY_MAX ((size_t)64 << 20) /* bytes of one rows.npy page; a larger ?limit= is cut to it */

static const char *const datasets_circles_top[] = { "kind", "name", "params", NULL };

json_t *datasets_object(const store_dataset *d)
{
    return json_pack("{s:I,s:s,s:s,s:i,s:o,s:o,s:s,s:b}", "id", (json_int_t)d->id, "name", d->name, "kind", d->kind,
                     "dim", d->dim, "n_rows", d->n_rows < 0 ? json_null() : json_integer(d->n_rows),
                     "params", api_json_stored(d->params_json), "created_at", d->created_at,
                     "has_labels", d->has_labels);
}

/* Loads dataset r->ids[0]; replies 404/500 and returns -1 if it cannot. */
static int datasets_load(api_req *r, store_dataset *d)
{
    store *st = api_store(r);
    if (!st) return -1;
    int rc = store_dataset_get(st, r->ids[0], d);
    if (rc == STORE_OK) return 0;
    if (rc == STORE_NOTFOUND)
        api_problem(r, MHD_HTTP_NOT_FOUND, "dataset %lld does not exist", (long long)r->ids[0]);
    else
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read dataset %lld: %s", (long long)r->ids[0],
                    store_errmsg(st));
    return -1;
}

/* ---- POST /v1/datasets ---- */

int datasets_name(const json_t *body, const char *fallback, char *name, size_t len, spec_errors *errs)
{
    const char *v = fallback;
    if (spec_get_string(body, "", "name", &v, errs) < 0) return -1;
    if (!*v || strlen(v) >= len) {
        spec_error_add(errs, 422, "name", "must be 1 to %zu bytes long", len - 1);
        return -1;
    }
    snprintf(name, len, "%s", v);
    return 0;
}

/* 201 with dataset id read back. */
static enum MHD_Result datasets_reply_created(api_req *r, store *st, int64_t id)
{
    store_dataset back = { 0 };
    if (store_dataset_get(st, id, &back) != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read dataset %lld back: %s", (long long)id,
                           store_errmsg(st));
    char location[64];
    snprintf(location, sizeof location, "/v1/datasets/%lld", (long long)id);
    json_t *obj = datasets_object(&back);
    store_dataset_clear(&back);
    return api_created(r, MHD_HTTP_CREATED, location, obj);
}

static enum MHD_Result datasets_insert(api_req *r, store_dataset *d)
{
    store *st = api_store(r);
    if (!st) return MHD_YES;
    int64_t id = 0;
    if (store_dataset_insert(st, d, &id) != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot store the dataset: %s", store_errmsg(st));
    return datasets_reply_created(r, st, id);
}

/* ---- paths and staging ---- */

void datasets_path(const api_server *s, int64_t id, const char *file, char *buf, size_t n)
{
    snprintf(buf, n, "%s/datasets/%lld%s%s", s->cfg.data_dir, (long long)id, file ? "/" : "", file ? file : "");
}

void datasets_file(const api_server *s, const store_dataset *d, const char *file, char *buf, size_t n)
{
    datasets_path(s, d->id, file, buf, n);
}

enum MHD_Result datasets_problem(api_req *r, unsigned status, const char *field, const char *msg)
{
    spec_errors errs = { 0 };
    char detail[1024];
    spec_error_add(&errs, (int)status, field, "%s", msg);
    snprintf(detail, sizeof detail, "%s: %s", field, msg);
    return api_problem_fields(r, &errs, detail);
}

int datasets_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* This machine's name as a staging directory's owner: at most 64 of [A-Za-z0-9.], others as '.'. */
static void datasets_host(char *out, size_t n)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    size_t k = 0;
    for (const char *c = host; *c && k + 1 < n && k < 64; c++)
        out[k++] = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ? *c : '.';
    out[k] = '\0';
}

int datasets_stage_open(const api_server *s, datasets_stage *st, char *err, size_t errlen)
{
    char parent[PATH_MAX], host[72];
    snprintf(parent, sizeof parent, "%s/datasets", s->cfg.data_dir);
    datasets_host(host, sizeof host);
    st->dir[0] = '\0';
    if (files_mkdirs(parent, err, errlen)) return -1;
    if (snprintf(st->dir, sizeof st->dir, "%s/.staging-%s-%ld-XXXXXX", parent, host, (long)getpid()) >=
            (int)sizeof st->dir || !mkdtemp(st->dir)) {
        snprintf(err, errlen, "cannot create a staging directory under %s: %s", parent, strerror(errno));
        st->dir[0] = '\0';
        return -1;
    }
    return 0;
}

void datasets_stage_file(const datasets_stage *st, const char *file, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", st->dir, file);
}

void datasets_stage_discard(datasets_stage *st)
{
    if (st->dir[0]) files_remove_tree(st->dir);
    st->dir[0] = '\0';
}

/* A staging directory is named after its process (".staging-HOST-PID-XXXXXX"); at start-up those
 * of this machine whose process is gone are a crash's and go at once, and any other (another
 * machine's, on a shared data directory, or an older name) once untouched this long. */
#define DATASETS_STALE_S 3600

/* Newest mtime of dir and the files directly in it. */
static time_t datasets_newest(const char *dir)
{
    struct stat sb;
    char path[PATH_MAX * 2 + 300];
    time_t newest = stat(dir, &sb) ? 0 : sb.st_mtime;
    DIR *d = opendir(dir);
    if (!d) return newest;
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!lstat(path, &sb) && sb.st_mtime > newest) newest = sb.st_mtime;
    }
    closedir(d);
    return newest;
}

/* 1 when staging directory name (".staging-HOST-PID-XXXXXX") was made by a process of this machine
 * that no longer runs: it is a crash's, whatever its age. */
static int datasets_owner_gone(const char *name, const char *host)
{
    size_t hl = strlen(host);
    if (strncmp(name + 9, host, hl) || name[9 + hl] != '-') return 0;
    char *end;
    long pid = strtol(name + 10 + hl, &end, 10);
    if (pid <= 0 || *end != '-' || pid == (long)getpid()) return 0;
    return kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

void datasets_staging_sweep(const api_server *s)
{
    char parent[PATH_MAX], dir[PATH_MAX + 300];
    snprintf(parent, sizeof parent, "%s/datasets", s->cfg.data_dir);
    DIR *d = opendir(parent);
    if (!d) return;
    time_t now = time(NULL);
    char host[72];
    datasets_host(host, sizeof host);
    for (struct dirent *e; (e = readdir(d));) {
        if (strncmp(e->d_name, ".staging-", 9)) continue;
        snprintf(dir, sizeof dir, "%s/%s", parent, e->d_name);
        if (datasets_owner_gone(e->d_name, host) || now - datasets_newest(dir) > DATASETS_STALE_S)
            files_remove_tree(dir);
    }
    closedir(d);
}

/* Moves the staging directory to dir (removing a stale one left there by a crash). */
static int datasets_stage_move(datasets_stage *st, const char *dir)
{
    if (rename(st->dir, dir) != 0) {
        if (errno != EEXIST && errno != ENOTEMPTY) return -1;
        files_remove_tree(dir);
        if (rename(st->dir, dir) != 0) return -1;
    }
    st->dir[0] = '\0';
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash) *slash = '\0';
    datasets_fsync_dir(parent); /* best effort: the data files themselves were fsynced */
    return 0;
}

enum MHD_Result datasets_stage_commit(api_req *r, datasets_stage *stage, store_dataset *d)
{
    store *st = api_store(r);
    if (!st) return MHD_YES;
    int64_t id = 0;
    if (store_dataset_insert(st, d, &id) != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot store the dataset: %s", store_errmsg(st));
    char dir[PATH_MAX];
    datasets_path(r->srv, id, NULL, dir, sizeof dir);
    if (datasets_stage_move(stage, dir) != 0) {
        int e = errno;
        store_dataset_delete(st, id);
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot move the dataset's files into %s: %s", dir,
                           strerror(e));
    }
    return datasets_reply_created(r, st, id);
}

static enum MHD_Result datasets_create_circles(api_req *r, const json_t *body)
{
    spec_errors errs = { 0 };
    store_dataset d = { 0 };
    spec_check_fields(body, "", datasets_circles_top, &errs);
    datasets_name(body, "circles", d.name, sizeof d.name, &errs);
    json_t *params = spec_normalize_circles(json_object_get(body, "params"), &errs);
    if (!params) return api_problem_fields(r, &errs, NULL); /* also on the name and field errors above */
    snprintf(d.kind, sizeof d.kind, "circles");
    d.dim = (int)json_integer_value(json_object_get(params, "dim"));
    d.n_rows = -1;
    d.params_json = json_dumps(params, API_JSON_FLAGS);
    json_decref(params);
    if (!d.params_json) return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    enum MHD_Result ret = datasets_insert(r, &d);
    free(d.params_json);
    return ret;
}

static const struct {
    const char *kind;
    enum MHD_Result (*create)(api_req *r, const json_t *body);
} datasets_kinds[] = {
    { "circles", datasets_create_circles },
    { "npy", datasets_import_npy },
    { "idx", datasets_import_idx },
};

enum MHD_Result datasets_create(api_req *r)
{
    if (r->sink) return datasets_upload_finish(r); /* the streamed .npy upload: POST /v1/datasets?kind=npy */
    json_t *body = api_body_object(r);
    if (!body) return MHD_YES;
    json_t *kind = json_object_get(body, "kind");
    enum MHD_Result ret;
    if (!kind) {
        ret = api_problem_field(r, MHD_HTTP_BAD_REQUEST, "kind", "required: one of circles, npy, idx");
    } else if (!json_is_string(kind)) {
        ret = api_problem_field(r, MHD_HTTP_BAD_REQUEST, "kind", "must be a string");
    } else {
        size_t i = 0, n = sizeof datasets_kinds / sizeof datasets_kinds[0];
        while (i < n && strcmp(datasets_kinds[i].kind, json_string_value(kind))) i++;
        if (i < n) ret = datasets_kinds[i].create(r, body);
        else ret = api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "kind",
                                     "'%.40s' is not a dataset kind; use circles, npy or idx",
                                     json_string_value(kind));
    }
    json_decref(body);
    return ret;
}

/* ---- GET, DELETE ---- */

enum MHD_Result datasets_list(api_req *r)
{
    int limit, n = 0;
    int64_t after;
    if (api_query_page(r, &limit, &after)) return MHD_YES;
    store *st = api_store(r);
    if (!st) return MHD_YES;
    store_dataset *items = NULL;
    if (store_dataset_list(st, after, limit + 1, &items, &n) != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot list datasets: %s", store_errmsg(st));
    json_t *arr = json_array();
    for (int i = 0; i < n && i < limit; i++) json_array_append_new(arr, datasets_object(&items[i]));
    int more = n > limit;
    int64_t last = more ? items[limit - 1].id : 0;
    store_dataset_list_free(items, n);
    return api_send_json(r, MHD_HTTP_OK, api_list(arr, more, last));
}

enum MHD_Result datasets_get(api_req *r)
{
    store_dataset d = { 0 };
    if (datasets_load(r, &d)) return MHD_YES;
    json_t *obj = datasets_object(&d);
    store_dataset_clear(&d);
    return api_send_json(r, MHD_HTTP_OK, obj);
}

enum MHD_Result datasets_delete(api_req *r)
{
    store *st = api_store(r);
    if (!st) return MHD_YES;
    int rc = store_dataset_delete(st, r->ids[0]);
    if (rc == STORE_NOTFOUND)
        return api_problem(r, MHD_HTTP_NOT_FOUND, "dataset %lld does not exist", (long long)r->ids[0]);
    if (rc == STORE_CONFLICT)
        return api_problem(r, MHD_HTTP_CONFLICT, "dataset %lld is used by a queued or running job; cancel the job "
                           "first", (long long)r->ids[0]);
    if (rc != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot delete: %s", store_errmsg(st));
    char dir[PATH_MAX];
    datasets_path(r->srv, r->ids[0], NULL, dir, sizeof dir);
    files_remove_tree(dir); /* the files of npy and idx datasets */
    return api_queue(r, MHD_HTTP_NO_CONTENT, MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT));
}

/* ---- arrays ---- */

/* The circles generator of dataset d, its planes reserved in the reply budget (*held bytes, released by
 * the caller); NULL after replying. */
static circles *datasets_circles(api_req *r, const store_dataset *d, size_t *held)
{
    circles_params p;
    spec_errors errs = { 0 };
    char err[400];
    if (spec_circles_params(d->params_json, &p, &errs)) {
        spec_errors_text(&errs, err, sizeof err);
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "dataset %lld: its stored params are invalid: %s",
                    (long long)d->id, err);
        return NULL;
    }
    *held = (size_t)p.n_circles * 2 * (size_t)p.dim * sizeof(float);
    if (api_reply_reserve(r, *held)) return NULL;
    circles *c = circles_create(&p);
    if (!c) {
        api_reply_release(r->srv, *held);
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "dataset %lld: out of memory for its planes",
                    (long long)d->id);
    }
    return c;
}

/* A page of circles rows is made whole (the planes behind it may be far larger than the page, and are
 * freed at once), then sent from the reserved buffer. */
static enum MHD_Result datasets_rows_circles(api_req *r, const store_dataset *d, long long offset, int limit)
{
    int64_t shape[2] = { limit, d->dim };
    size_t off, total, planes;
    char *buf = api_npy_alloc("<f4", shape, 2, &off, &total);
    uint64_t *idx = malloc((size_t)limit * sizeof *idx); /* (limit) row indices */
    if (!buf || !idx || api_reply_reserve(r, total)) {
        free(buf), free(idx);
        return r->status ? MHD_YES : api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    circles *c = datasets_circles(r, d, &planes);
    if (!c) {
        free(buf), free(idx);
        api_reply_release(r->srv, total);
        return MHD_YES;
    }
    for (int i = 0; i < limit; i++) idx[i] = (uint64_t)offset + (uint64_t)i;
    circles_rows(c, idx, limit, (float *)(void *)(buf + off)); /* (limit, dim) */
    circles_free(c);
    api_reply_release(r->srv, planes);
    free(idx);
    return api_send_held(r, "application/octet-stream", buf, total, total);
}

/* planes.npy's circles [first, first + n): each its two planes (2, dim). */
static int datasets_planes_fill(void *ctx, int64_t first, int n, float *out)
{
    const circles *c = ctx;
    size_t row = 2 * (size_t)circles_get_params(c)->dim;
    memcpy(out, circles_planes(c) + (size_t)first * row, (size_t)n * row * sizeof *out);
    return 0;
}

static void datasets_planes_free(void *ctx) { circles_free(ctx); }

enum MHD_Result datasets_rows(api_req *r)
{
    store_dataset d = { 0 };
    if (datasets_load(r, &d)) return MHD_YES;
    long long max_rows = (long long)(DATASETS_REPLY_MAX / ((size_t)d.dim * 4));
    if (max_rows > DATASETS_ROWS_MAX) max_rows = DATASETS_ROWS_MAX;
    if (max_rows < 1) max_rows = 1;
    long long offset = 0, limit = DATASETS_ROWS_DEFAULT;
    enum MHD_Result ret = MHD_YES;
    if (api_query_int(r, "offset", 0, INT64_MAX - DATASETS_ROWS_MAX, &offset) < 0 ||
        api_query_int(r, "limit", 1, DATASETS_ROWS_MAX, &limit) < 0) {
        store_dataset_clear(&d);
        return ret;
    }
    if (limit > max_rows) limit = max_rows; /* wide rows: a page is cut to DATASETS_REPLY_MAX bytes */
    if (!strcmp(d.kind, "circles")) ret = datasets_rows_circles(r, &d, offset, (int)limit);
    else ret = datasets_read_rows(r, &d, offset, (int)limit);
    store_dataset_clear(&d);
    return ret;
}

enum MHD_Result datasets_planes(api_req *r)
{
    store_dataset d = { 0 };
    if (datasets_load(r, &d)) return MHD_YES;
    if (strcmp(d.kind, "circles")) {
        enum MHD_Result ret = api_problem(r, MHD_HTTP_NOT_FOUND, "dataset %lld is a %s dataset; only circles "
                                          "datasets have planes", (long long)d.id, d.kind);
        store_dataset_clear(&d);
        return ret;
    }
    size_t held;
    circles *c = datasets_circles(r, &d, &held);
    store_dataset_clear(&d);
    if (!c) return MHD_YES;
    const circles_params *p = circles_get_params(c);
    int64_t shape[3] = { p->n_circles, 2, p->dim };
    return api_send_npy_rows(r, shape, 3, datasets_planes_fill, c, datasets_planes_free, held); /* no copy */
}

enum MHD_Result datasets_labels(api_req *r)
{
    store_dataset d = { 0 };
    if (datasets_load(r, &d)) return MHD_YES;
    enum MHD_Result ret;
    if (!d.has_labels)
        ret = api_problem(r, MHD_HTTP_NOT_FOUND, "dataset %lld has no labels%s", (long long)d.id,
                          strcmp(d.kind, "circles") ? "" : " (circles datasets never do)");
    else
        ret = datasets_read_labels(r, &d);
    store_dataset_clear(&d);
    return ret;
}
