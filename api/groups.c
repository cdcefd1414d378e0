/* api/groups.c — one group of an analysed SAE: GET /v1/saes/{id}/groups/{g}
 * (its stored statistics plus its geometry), /groups/{g}/plane.npy (2, dim)
 * and /groups/{g}/projection (the rows where it fires, on its plane).
 *
 * The geometry is computed per request, on the HTTP thread, from the
 * members' decoder rows alone (read with pread from decoder.npy;
 * analysis_group_plane is an s x s eigenproblem): singular values, the
 * orthonormal basis of the top-2 right singular vectors, each member's
 * coordinates in it and the member cosine matrix. It is cheap only for
 * small groups, so it is bounded: at most GROUPS_GEOMETRY_MAX_MEMBERS
 * members (the largest clustering group, so every clustered analysis fits;
 * the Jacobi solver grows as s^3: ~6 ms at 64) and members x dim at most
 * GROUPS_GEOMETRY_MAX_FLOATS (the decoder rows read; the Gram, cosine and
 * basis passes grow as s^2 dim and s dim: ~20 ms at 64 x 2048 measured on
 * the 2-core machine). A larger group is a 422 naming "group", before
 * anything is read. The projection is the analyze job's: it kept, per group,
 * the first ARTIFACTS_PROJ_KEEP rows (in dataset order) where any member
 * fired, with (x - b_dec) projected on the same basis; labels are read from
 * the dataset when it has them. */
#include "internal.h"
#include "analysis.h"
#include "artifacts.h"
#include "spec_analysis.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUPS_PROJ_DEFAULT 200
#define GROUPS_GEOMETRY_MAX_MEMBERS SPEC_ANALYSIS_CLUSTER_MAX_GROUP /* 64 */
#define GROUPS_GEOMETRY_MAX_FLOATS ((int64_t)1 << 17)               /* members x dim: 512 KiB of rows */

typedef struct {
    store_sae sae;
    store_sae_analysis an;
    store_group g;
    int s, dim;
    int32_t *members;  /* (s) */
    float *rows;       /* (s, dim) the members' decoder rows */
    float *sv;         /* (s) singular values */
    float *basis;      /* (2, dim) */
    float *coords;     /* (s, 2) */
    float *cos;        /* (s, s) */
} groups_geo;

static void groups_free(groups_geo *q)
{
    store_sae_clear(&q->sae);
    store_sae_analysis_clear(&q->an);
    store_group_clear(&q->g);
    free(q->members), free(q->rows), free(q->sv), free(q->basis), free(q->coords), free(q->cos);
}

/* The SAE, its analysis and group r->ids[1]; -1 after replying. */
static int groups_load(api_req *r, groups_geo *q)
{
    memset(q, 0, sizeof *q);
    if (saes_analysis_load(r, &q->sae, &q->an)) return -1;
    if (r->ids[1] >= q->an.n_groups) {
        api_problem(r, MHD_HTTP_NOT_FOUND, "group %lld does not exist: SAE %lld has groups 0 .. %d",
                    (long long)r->ids[1], (long long)r->ids[0], q->an.n_groups - 1);
        return -1;
    }
    int rc = store_sae_group_get(r->st, r->ids[0], (int)r->ids[1], &q->g);
    if (rc != STORE_OK) {
        api_problem(r, rc == STORE_NOTFOUND ? MHD_HTTP_NOT_FOUND : MHD_HTTP_INTERNAL_SERVER_ERROR,
                    "cannot read group %lld: %s", (long long)r->ids[1], store_errmsg(r->st));
        return -1;
    }
    json_t *m = api_json_stored(q->g.members_json); /* any size: the SAE's groups may be uneven */
    q->s = (int)json_array_size(m);
    json_decref(m);
    q->dim = q->sae.dim;
    return 0;
}

/* 0 if the group's geometry is cheap enough to compute here, else -1 after replying 422. */
static int groups_check_bound(api_req *r, const groups_geo *q)
{
    int64_t s = q->s;
    if (s <= GROUPS_GEOMETRY_MAX_MEMBERS && s * q->dim <= GROUPS_GEOMETRY_MAX_FLOATS) return 0;
    api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "group", "group %d has %d members of %d dims; its geometry "
                      "is computed on request only for groups of at most %d members with members x dim <= %lld: "
                      "see its statistics in the groups list, or compute it from decoder.npy", q->g.group, q->s,
                      q->dim, GROUPS_GEOMETRY_MAX_MEMBERS, (long long)GROUPS_GEOMETRY_MAX_FLOATS);
    return -1;
}

/* The members' rows and the plane; -1 after replying. */
static int groups_geometry(api_req *r, groups_geo *q)
{
    char path[4096], err[512];
    if (groups_check_bound(r, q)) return -1;
    json_t *m = api_json_stored(q->g.members_json);
    size_t s = json_array_size(m);
    q->members = malloc((s ? s : 1) * sizeof *q->members);
    for (size_t i = 0; q->members && i < s; i++) q->members[i] = (int32_t)json_integer_value(json_array_get(m, i));
    json_decref(m);
    q->rows = malloc(s * q->dim * sizeof *q->rows + 1);
    q->sv = malloc(s * sizeof *q->sv + 1);
    q->basis = malloc(2 * (size_t)q->dim * sizeof *q->basis);
    q->coords = malloc(s * 2 * sizeof *q->coords + 1);
    q->cos = malloc(s * s * sizeof *q->cos + 1);
    if (!q->members || !q->rows || !q->sv || !q->basis || !q->coords || !q->cos || (int)s != q->s) {
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "group %d: out of memory or a malformed member list", q->g.group);
        return -1;
    }
    if (artifacts_sae_path(&q->sae, "decoder.npy", path, sizeof path, err, sizeof err) ||
        artifacts_read_f32_rows(path, q->sae.n_latents, q->dim, q->members, q->s, q->rows, err, sizeof err)) {
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
        return -1;
    }
    int rc = analysis_group_plane(q->rows, q->s, q->dim, q->sv, q->basis, q->coords, q->cos);
    if (rc < 0) {
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "group plane: %s", analysis_strerror(rc));
        return -1;
    }
    return 0;
}

static json_t *groups_matrix(const float *a, int rows, int cols)
{
    json_t *m = json_array();
    for (int i = 0; i < rows; i++) {
        json_t *row = json_array();
        for (int k = 0; k < cols; k++) json_array_append_new(row, api_json_num(a[(size_t)i * cols + k]));
        json_array_append_new(m, row);
    }
    return m;
}

enum MHD_Result groups_get(api_req *r)
{
    groups_geo q;
    if (groups_load(r, &q) || groups_geometry(r, &q)) {
        groups_free(&q);
        return MHD_YES;
    }
    json_t *o = saes_analysis_group_item(&q.g);
    json_t *sv = json_array();
    for (int i = 0; i < q.s; i++) json_array_append_new(sv, api_json_num(q.sv[i]));
    json_object_set_new(o, "cosine", groups_matrix(q.cos, q.s, q.s));
    json_object_set_new(o, "singular_values", sv);
    json_object_set_new(o, "plane", groups_matrix(q.basis, 2, q.dim));
    json_object_set_new(o, "coords", groups_matrix(q.coords, q.s, 2));
    groups_free(&q);
    return api_send_json(r, MHD_HTTP_OK, o);
}

enum MHD_Result groups_plane(api_req *r)
{
    groups_geo q;
    if (groups_load(r, &q) || groups_geometry(r, &q)) {
        groups_free(&q);
        return MHD_YES;
    }
    int64_t shape[2] = { 2, q.dim };
    size_t off, total;
    char *buf = api_npy_alloc("<f4", shape, 2, &off, &total);
    if (buf) memcpy(buf + off, q.basis, 2 * (size_t)q.dim * sizeof *q.basis);
    groups_free(&q);
    if (!buf) return api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return api_send_buffer(r, MHD_HTTP_OK, "application/octet-stream", buf, total);
}

/* ---- projection ---- */

/* The labels of rows recs[0..n) of dataset ds, or null when it has none; NULL after replying. */
static json_t *groups_labels(api_req *r, int64_t ds, const artifacts_proj *recs, int64_t n)
{
    store_dataset d;
    char err[512];
    artifacts_labels *l = NULL;
    int rc = store_dataset_get(r->st, ds, &d);
    if (rc == STORE_NOTFOUND) return json_null();
    rc = rc == STORE_OK ? artifacts_labels_open(r->srv->cfg.data_dir, &d, &l, err, sizeof err) : -2;
    if (rc == -2) snprintf(err, sizeof err, "%s", store_errmsg(r->st));
    else store_dataset_clear(&d);
    if (rc < 0) {
        api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot read the dataset's labels: %s", err);
        return NULL;
    }
    if (rc == 1) return json_null();
    json_t *a = json_array();
    for (int64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        json_array_append_new(a, artifacts_label(l, recs[i].row, &s, &len) ? json_null()
                                                                            : json_stringn_nocheck(s, len));
    }
    artifacts_labels_close(l);
    return a;
}

static enum MHD_Result groups_projection_reply(api_req *r, const groups_geo *q, const artifacts_table *t,
                                               long long limit)
{
    const void *p;
    int64_t n = artifacts_table_get(t, q->g.group, &p);
    const artifacts_proj *recs = p; /* (n) */
    n = n < limit ? n : limit;
    json_t *labels = groups_labels(r, q->an.dataset_id, recs, n);
    if (!labels) return MHD_YES;
    json_t *pts = json_array(), *rows = json_array();
    for (int64_t i = 0; i < n; i++) {
        json_array_append_new(pts, json_pack("[o,o]", api_json_num(recs[i].u), api_json_num(recs[i].v)));
        json_array_append_new(rows, json_integer(recs[i].row));
    }
    return api_send_json(r, MHD_HTTP_OK, json_pack("{s:i,s:I,s:I,s:o,s:o,s:o}", "group", q->g.group, "dataset",
                                                   (json_int_t)q->an.dataset_id, "n_samples",
                                                   (json_int_t)artifacts_table_aux(t), "rows", rows, "points", pts,
                                                   "labels", labels));
}

enum MHD_Result groups_projection(api_req *r)
{
    long long limit = GROUPS_PROJ_DEFAULT, ds = 0;
    char path[4096 + 32], err[512];
    groups_geo q;
    if (api_query_int(r, "limit", 1, ARTIFACTS_PROJ_KEEP, &limit) < 0 ||
        api_query_int(r, "dataset", 1, INT64_MAX, &ds) < 0)
        return MHD_YES;
    if (groups_load(r, &q)) {
        groups_free(&q);
        return MHD_YES;
    }
    enum MHD_Result ret = MHD_YES;
    artifacts_table *t = NULL;
    snprintf(path, sizeof path, "%s/projections.bin", q.an.dir ? q.an.dir : "");
    if (ds && ds != q.an.dataset_id)
        ret = api_problem_field(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "dataset", "SAE %lld was analysed on dataset "
                                "%lld; to project rows of dataset %lld run an analyze job on it: POST /v1/jobs "
                                "{\"type\":\"analyze\",\"sae\":%lld,\"dataset\":%lld}", (long long)q.sae.id,
                                (long long)q.an.dataset_id, ds, (long long)q.sae.id, ds);
    else if (artifacts_table_open(path, ARTIFACTS_PROJ_MAGIC, sizeof(artifacts_proj), &t, err, sizeof err))
        ret = api_problem(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err);
    else
        ret = groups_projection_reply(r, &q, t, limit);
    artifacts_table_close(t);
    groups_free(&q);
    return ret;
}
