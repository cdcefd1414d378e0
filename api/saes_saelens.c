/* api/saes_saelens.c — SAELens, both ways (API.md "Interoperability").
 *
 * GET /v1/saes/{id}/saelens.tar: the folder SAE.load_from_disk reads, built
 * per request from the SAE's weight files (core/saelens.c: cfg.json,
 * sae_weights.safetensors) and, once analysed, sparsity.safetensors from the
 * stored firing densities; the model keys come from the SAE's dataset's
 * params.metadata when it has one. A flat ustar archive (core/tar.c), held
 * in memory once: extract it into a folder and load that. An SAE without an
 * exact SAELens equivalent (groups, subspace) is a 422 saying why.
 *
 * POST /v1/saes (Content-Type application/x-tar): the body is streamed to a
 * staging directory like a .npy upload (datasets_upload.c, --max-upload-mb),
 * then mapped and read with the strict tar reader: cfg.json and
 * sae_weights.safetensors, at the top level or in one folder (other files,
 * e.g. sparsity.safetensors or runner_cfg.json, are ignored). saelens_import
 * turns them into saed parameters, artifacts_sae_write writes the same files
 * a trained SAE has into the staging directory, which becomes
 * data_dir/saes/import-XXXXXX, and the row is inserted with job null
 * (?dataset=ID links a dataset of the same dim, the default of analyze and
 * pca jobs). Every refusal is a 4xx problem and leaves nothing behind. */
#include "internal.h"
#include "artifacts.h"
#include "files.h"
#include "saelens.h"
#include "tar.h"
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- export ---- */

/* The model keys of SAE s's dataset (its params.metadata), or NULL. */
static json_t *saelens_model_of(store *st, const store_sae *s)
{
    assert(st && s);
    store_dataset d = { 0 };
    json_t *model = NULL;
    if (s->dataset_id > 0 && store_dataset_get(st, s->dataset_id, &d) == STORE_OK) {
        json_t *params = api_json_stored(d.params_json), *m = json_object_get(params, "metadata");
        model = json_is_object(m) ? json_incref(m) : NULL;
        json_decref(params);
    }
    store_dataset_clear(&d);
    return model;
}

/* sparsity.safetensors of an analysed SAE (*buf NULL when not analysed). 0, or -1 (store error / OOM). */
static int saelens_sparsity_of(store *st, const store_sae *s, unsigned char **buf, size_t *len)
{
    assert(st && s && s->n_latents >= 1);
    assert(buf && len);
    store_sae_analysis a = { 0 };
    store_latent *lat = NULL;
    int nl = 0, rc = store_sae_analysis_get(st, s->id, &a);
    store_sae_analysis_clear(&a);
    *buf = NULL;
    if (rc == STORE_NOTFOUND) return 0;
    if (rc != STORE_OK || store_sae_latents_list(st, s->id, STORE_SORT_ID, -1, s->n_latents, &lat, &nl) != STORE_OK)
        return -1;
    double *density = calloc((size_t)s->n_latents, sizeof *density); /* (n) */
    for (int i = 0; density && i < nl; i++)
        if (lat[i].latent >= 0 && lat[i].latent < s->n_latents) density[lat[i].latent] = lat[i].density;
    store_latent_list_free(lat, nl);
    *buf = density ? saelens_sparsity(density, s->n_latents, len) : NULL;
    free(density);
    return *buf ? 0 : -1;
}

/* cfg.json's text for SAE s with SAELens architecture arch (malloc'd), or NULL. */
static char *saelens_cfg_text(api_req *r, const store_sae *s, const sae_params *p, const char *arch)
{
    assert(r && r->st && s && p && arch);
    json_t *model = saelens_model_of(r->st, s);
    json_t *own = json_pack("{s:I,s:o,s:o,s:s,s:o,s:s}", "sae", (json_int_t)s->id,
                            "job", s->job_id > 0 ? json_integer(s->job_id) : json_null(),
                            "dataset", s->dataset_id > 0 ? json_integer(s->dataset_id) : json_null(),
                            "arch", sae_arch_name(p->cfg.arch), "config", api_json_stored(s->config_json),
                            "exported_by", r->srv->version);
    json_t *cfg = own ? saelens_cfg(p, arch, model, own) : NULL;
    char *text = cfg ? json_dumps(cfg, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(model), json_decref(own), json_decref(cfg);
    return text;
}

/* The archive of files f[0..n) as the reply. */
static enum MHD_Result saelens_send_tar(api_req *r, const tar_file *f, int n)
{
    assert(r && f && n >= 1);
    size_t len = tar_archive_size(f, n);
    unsigned char *buf = len != SIZE_MAX ? malloc(len) : NULL;
    if (!buf || tar_write(f, n, (int64_t)time(NULL), buf, len)) {
        free(buf);
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory building saelens.tar");
    }
    return api_send_buffer(r, MHD_HTTP_OK, "application/x-tar", buf, len);
}

/* The folder's files for s (loaded weights p) as the reply. */
static enum MHD_Result saelens_reply(api_req *r, const store_sae *s, const sae_params *p)
{
    assert(r && s && p && p->buf);
    const char *arch;
    unsigned char *w = NULL, *sp = NULL;
    size_t wlen = 0, splen = 0;
    char msg[512];
    int rc = saelens_weights(p, &arch, &w, &wlen, msg, sizeof msg);
    if (rc == 1) return api_problem(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "SAE %lld cannot be exported to SAELens: %s",
                                    (long long)s->id, msg);
    char *cfg = rc ? NULL : saelens_cfg_text(r, s, p, arch);
    if (cfg && saelens_sparsity_of(r->st, s, &sp, &splen)) {
        free(cfg);
        cfg = NULL;
    }
    enum MHD_Result ret;
    if (!cfg) {
        ret = api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot build saelens.tar (out of memory, or the "
                          "database failed: %s)", store_errmsg(r->st));
    } else {
        tar_file f[3] = { { "cfg.json", cfg, strlen(cfg) }, { "sae_weights.safetensors", w, wlen },
                          { "sparsity.safetensors", sp, splen } };
        ret = saelens_send_tar(r, f, sp ? 3 : 2);
    }
    free(cfg), free(w), free(sp);
    return ret;
}

enum MHD_Result saes_saelens_tar(api_req *r)
{
    store_sae s = { 0 };
    sae_params p;
    char err[512];
    if (saes_load(r, &s)) return MHD_YES;
    if (artifacts_sae_load(&s, &p, err, sizeof err)) {
        store_sae_clear(&s);
        return api_problem(r, MHD_HTTP_CONFLICT, "cannot load the SAE's weights: %s", err);
    }
    enum MHD_Result ret = saelens_reply(r, &s, &p);
    sae_params_free(&p);
    store_sae_clear(&s);
    return ret;
}

/* ---- import ---- */

/* The folder in a tar: cfg.json and sae_weights.safetensors, at the top level or in one folder. */
typedef struct {
    const tar_entry *cfg, *weights;
    tar_entry e[2];
    char folder[TAR_PATH_MAX + 1];
} saelens_folder;

/* e's base name if it lies in the folder (set by the first file found), else NULL. */
static const char *saelens_in_folder(saelens_folder *f, const tar_entry *e, int *other_folder)
{
    assert(f && e && !e->is_dir && other_folder);
    const char *slash = strrchr(e->path, '/'), *base = slash ? slash + 1 : e->path;
    size_t dl = slash ? (size_t)(slash - e->path) : 0;
    *other_folder = 0;
    if (strcmp(base, "cfg.json") && strcmp(base, "sae_weights.safetensors")) return NULL;
    if (!f->cfg && !f->weights) {
        memcpy(f->folder, e->path, dl);
        f->folder[dl] = '\0';
    }
    *other_folder = strlen(f->folder) != dl || memcmp(f->folder, e->path, dl);
    return *other_folder ? NULL : base;
}

static int saelens_find(const unsigned char *buf, size_t len, saelens_folder *f, char *msg, size_t msglen)
{
    assert((buf || len == 0) && f && msg);
    tar_reader tr;
    tar_entry e;
    int rc, other = 0;
    memset(f, 0, sizeof *f);
    tar_reader_init(&tr, buf, len);
    while ((rc = tar_next(&tr, &e, msg, msglen)) == 1) {
        const char *base = e.is_dir ? NULL : saelens_in_folder(f, &e, &other);
        if (other) return snprintf(msg, msglen, "the tar holds more than one SAE folder ('%s' and '%s/'); send one",
                                   e.path, f->folder), -1;
        int is_cfg = base && !strcmp(base, "cfg.json");
        if (base && (is_cfg ? f->cfg : f->weights)) return snprintf(msg, msglen, "the tar holds %s twice", e.path), -1;
        if (base) f->e[is_cfg] = e;
        if (base && is_cfg) f->cfg = &f->e[1];
        if (base && !is_cfg) f->weights = &f->e[0];
    }
    if (rc) return -1;
    if (!f->cfg || !f->weights)
        return snprintf(msg, msglen, "the tar has no %s: send the folder SAELens saves (sae.save_model(dir); "
                        "tar -C dir -cf sae.tar .)", f->cfg ? "sae_weights.safetensors" : "cfg.json"), -1;
    return 0;
}

/* Maps the staged tar read-only. 0, or -1 after replying. */
static int saelens_map(api_req *r, const char *file, unsigned char **buf, size_t *len)
{
    assert(r && file && buf && len);
    struct stat sb;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb)) {
        if (fd >= 0) close(fd);
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read the staged upload: %s", strerror(errno));
        return -1;
    }
    *len = (size_t)sb.st_size;
    *buf = *len ? mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    close(fd);
    if (*len && *buf == MAP_FAILED) {
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot map the staged upload: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* The tar's SAE into p and *info. 0, or -1 after replying (422 naming body). */
static int saelens_read_upload(api_req *r, const char *file, sae_params *p, json_t **info)
{
    assert(r && file && p && info);
    unsigned char *buf;
    size_t len;
    saelens_folder f;
    char msg[600];
    if (saelens_map(r, file, &buf, &len)) return -1;
    int rc = saelens_find(buf, len, &f, msg, sizeof msg);
    if (!rc) rc = saelens_import((const char *)f.cfg->data, (size_t)f.cfg->size, f.weights->data,
                                 (size_t)f.weights->size, r->srv->cfg.max_job_bytes, p, info, msg, sizeof msg);
    if (buf) munmap(buf, len);
    if (rc == -2) api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", msg);
    else if (rc) api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "body", "%s", msg);
    return rc ? -1 : 0;
}

/* ?dataset=: 0 (none) or a dataset of dim; -1 after replying. */
static int saelens_dataset(api_req *r, int dim, int64_t *ds)
{
    assert(r && dim >= 1 && ds);
    long long id = 0;
    store_dataset d = { 0 };
    *ds = 0;
    int q = api_query_int(r, "dataset", 1, LLONG_MAX, &id);
    if (q <= 0) return q;
    store *st = api_store(r);
    if (!st) return -1;
    int rc = store_dataset_get(st, id, &d), d_dim = d.dim;
    store_dataset_clear(&d);
    if (rc == STORE_NOTFOUND)
        return api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "dataset", "dataset %lld does not exist", id), -1;
    if (rc != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read datasets: %s", store_errmsg(st)), -1;
    if (d_dim != dim)
        return api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "dataset", "dataset %lld has rows of %d dims, the "
                                 "SAE reads %d (d_in)", id, d_dim, dim), -1;
    *ds = id;
    return 0;
}

/* Moves the staging directory stage to data_dir/saes/import-XXXXXX (its random suffix) into final. */
static int saelens_settle(api_req *r, const char *stage, char *final, size_t n)
{
    assert(r && stage && *stage && final && n > 0);
    char parent[PATH_MAX], err[512];
    const char *suffix = strrchr(stage, '-');
    snprintf(parent, sizeof parent, "%s/saes", r->srv->cfg.data_dir);
    if (files_mkdirs(parent, err, sizeof err))
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err), -1;
    if (snprintf(final, n, "%s/import%s", parent, suffix ? suffix : "-x") >= (int)n || rename(stage, final))
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot move the imported SAE into %s: %s", parent,
                           strerror(errno)), -1;
    return 0;
}

/* Inserts the row of the SAE in dir and replies 201 with it. */
static enum MHD_Result saelens_insert(api_req *r, const sae_params *p, json_t *info, int64_t ds, const char *dir)
{
    assert(r && p && info && ds >= 0 && dir);
    store *st = api_store(r);
    json_t *config = spec_sae_json(&p->cfg);
    if (config) json_object_set(config, "saelens", info);
    char *cfg = config ? json_dumps(config, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(config);
    store_sae row = { .dataset_id = ds, .config_json = cfg, .metrics_json = "{}", .dir = (char *)dir,
                      .n_latents = p->cfg.n_latents, .dim = p->cfg.dim, .group_size = p->cfg.group_size };
    int64_t id = 0;
    int rc = st && cfg ? store_sae_import(st, &row, &id) : STORE_ERROR;
    free(cfg);
    if (!st) return MHD_YES;
    if (rc == STORE_NOTFOUND)
        return api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "dataset", "the dataset was deleted meanwhile");
    store_sae s = { 0 };
    if (rc != STORE_OK || store_sae_get(st, id, &s) != STORE_OK)
        return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot record the imported SAE: %s", store_errmsg(st));
    char location[64];
    snprintf(location, sizeof location, "/v1/saes/%lld", (long long)id);
    json_t *obj = saes_object(&s);
    store_sae_clear(&s);
    return api_created(r, MHD_HTTP_CREATED, location, obj);
}

/* The staged tar (file, in stage) to an SAE; the stage is moved on success (*stage emptied). */
static enum MHD_Result saelens_import_staged(api_req *r, char *stage, const char *file)
{
    assert(r && stage && *stage && file);
    sae_params p;
    json_t *info = NULL;
    int64_t ds;
    char err[512], final[PATH_MAX];
    if (saelens_read_upload(r, file, &p, &info)) return MHD_YES;
    enum MHD_Result ret = MHD_YES;
    unlink(file);
    if (saelens_dataset(r, p.cfg.dim, &ds)) {
        ret = MHD_YES; /* replied */
    } else if (artifacts_sae_write(stage, &p, err, sizeof err)) {
        ret = api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot write the imported SAE: %s", err);
    } else if (!saelens_settle(r, stage, final, sizeof final)) {
        stage[0] = '\0';
        ret = saelens_insert(r, &p, info, ds, final);
        if (r->status != MHD_HTTP_CREATED) files_remove_tree(final);
    }
    json_decref(info);
    sae_params_free(&p);
    return ret;
}

enum MHD_Result saes_import(api_req *r)
{
    char stage[PATH_MAX], file[PATH_MAX + 64];
    if (!r->sink)
        return api_problem(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "POST /v1/saes imports an SAE folder sent as a tar "
                           "with Content-Type: application/x-tar (sae.save_model(dir); tar -C dir -cf sae.tar .; "
                           "curl --data-binary @sae.tar -H 'Content-Type: application/x-tar' .../v1/saes)");
    if (datasets_upload_take(r, stage, sizeof stage, file, sizeof file)) return MHD_YES;
    enum MHD_Result ret = saelens_import_staged(r, stage, file);
    if (stage[0]) files_remove_tree(stage);
    return ret;
}
