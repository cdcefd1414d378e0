/* test_api_analysis — the analysis API against a real saed: the analyze and
 * pca jobs, every /v1/saes/{id}/... analysis endpoint, /v1/compare,
 * /v1/analyses and POST /v1/saes/{id}/encode.
 *
 * A tiny group SAE (32 latents in groups of 2) is trained on a small circles
 * dataset and an ordinary one (group_size 1) beside it. Before any analysis
 * the endpoints answer 409; then each is checked for its shape and
 * invariants (densities in [0, 1], J(i,i) = 1 and a symmetric matrix that
 * agrees with the stored neighbour lists, group lists sorted and paged
 * consistently, the plane orthonormal and the projections equal to what
 * numpy computes from the downloaded weights and rows, the recovery
 * histogram summing to n_circles), encode is compared with numpy, a pca job
 * by indices is recomputed with numpy, a pca job by labels runs on an
 * uploaded .npy dataset with labels, the clustering baseline groups the
 * ordinary SAE, a second analysis replaces the first, the firing pattern
 * survives a restart, a long analysis is cancelled, and bad inputs answer
 * problem+json 4xx naming the field. Nothing asserts on timing. */
#include "check.h"
#include "apitest.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define N_CIRCLES 8
#define DIM 16
#define N_LAT 32
#define N_SAMPLES 4000

static at_daemon g_d;
static char g_work[300]; /* replies saved for numpy */

/* ---- helpers ---- */

static void fetch(const char *path, const char *name)
{
    at_resp r = at_http("GET", path, NULL);
    CHECK(r.status == 200 && r.len > 0, "GET %s -> %ld: %.200s", path, r.status, r.body);
    at_save_body(g_work, name, &r);
    at_resp_free(&r);
}

static json_t *get_json(const char *path)
{
    return at_expect_json(at_http("GET", path, NULL), 200);
}

static void py(const char *what, const char *script)
{
    int rc = at_python(g_work, script);
    CHECK(rc == 0, "numpy check '%s' failed (exit %d; its output is above)", what, rc);
}

static long long run_job(const char *body, const char *what)
{
    long long id = at_post_id("/v1/jobs", body, 202);
    json_t *j = id ? at_wait_job(id, "succeeded failed cancelled", 120) : NULL;
    CHECK(j && !strcmp(at_jstr(j, "state"), "succeeded"), "%s job %lld: %s %s", what, id,
          j ? at_jstr(j, "state") : "timeout", j ? at_jstr(j, "error") : "");
    json_decref(j);
    return id;
}

static long long train(long long ds, int group_size)
{
    char body[600];
    snprintf(body, sizeof body,
             "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"n_latents\":%d,\"group_size\":%d,"
             "\"sparsity_coef\":0.001},\"train\":{\"steps\":1500,\"batch_size\":128,\"lr\":0.003,"
             "\"lr_warmup_steps\":50,\"sparsity_warmup_steps\":200,\"eval_every\":500,\"eval_rows\":512}}",
             ds, N_LAT, group_size);
    long long job = run_job(body, "train");
    json_t *j = at_get_job(job);
    long long sae = j ? at_jint(json_object_get(j, "result"), "sae") : 0;
    json_decref(j);
    CHECK(sae > 0, "training gave an SAE");
    return sae;
}

/* ---- the contract ---- */

static void test_openapi(void)
{
    static const char *const must[] = {
        "/v1/saes/{id}/encode", "/v1/saes/{id}/analysis", "/v1/saes/{id}/latents", "/v1/saes/{id}/latents/{n}",
        "/v1/saes/{id}/jaccard", "/v1/saes/{id}/groups", "/v1/saes/{id}/groups/{n}",
        "/v1/saes/{id}/groups/{n}/plane.npy", "/v1/saes/{id}/groups/{n}/projection", "/v1/saes/{id}/recovery",
        "/v1/compare", "/v1/analyses/{id}", "/v1/analyses/{id}/points.npy", "/v1/analyses/{id}/components.npy",
        "/v1/analyses/{id}/mean.npy" };
    json_t *o = get_json("/v1/openapi.json");
    json_t *paths = json_object_get(o, "paths"), *schemas = json_object_get(json_object_get(o, "components"), "schemas");
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        CHECK(json_object_get(paths, must[i]) != NULL, "openapi lacks %s", must[i]);
    CHECK(json_object_get(schemas, "AnalyzeJobCreate") && json_object_get(schemas, "PcaJobCreate"),
          "openapi defines the analyze and pca bodies");
    json_decref(o);
}

/* ---- before any analysis ---- */

static void test_before_analysis(long long sae)
{
    const char *paths[] = { "analysis", "latents", "latents/0", "jaccard?latents=0,1", "groups", "groups/0",
                            "groups/0/plane.npy", "groups/0/projection", "recovery" };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        at_resp r = at_http("GET", at_fmt("/v1/saes/%lld/%s", sae, paths[i]), NULL);
        CHECK(strstr(r.body, "run an analyze job first") && strstr(r.body, "POST /v1/jobs"),
              "409 says what to do: %.300s", r.body);
        at_expect_problem(paths[i], r, 409, NULL);
    }
    json_t *c = get_json(at_fmt("/v1/compare?saes=%lld", sae));
    json_t *e = json_array_get(json_object_get(c, "saes"), 0);
    CHECK(e && json_is_null(json_object_get(e, "analysis")) && json_is_null(json_object_get(e, "recovery")),
          "compare lists an unanalysed SAE with null analysis");
    json_decref(c);
    AT_BAD("GET", "/v1/saes/999999/latents", NULL, 404, NULL);
}

static void test_job_validation(long long sae, long long ds, long long ds8)
{
    char b[512];
#define JB(...) (snprintf(b, sizeof b, __VA_ARGS__), b)
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"analyze\",\"sae\":%lld,\"n_sample\":10}", sae), 400, "n_sample");
    AT_BAD("POST", "/v1/jobs", "{\"type\":\"analyze\"}", 400, "sae");
    AT_BAD("POST", "/v1/jobs", "{\"type\":\"analyze\",\"sae\":\"1\"}", 400, "sae");
    AT_BAD("POST", "/v1/jobs", "{\"type\":\"analyze\",\"sae\":999999}", 422, "sae");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"analyze\",\"sae\":%lld,\"dataset\":999999}", sae), 422, "dataset");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"analyze\",\"sae\":%lld,\"dataset\":%lld}", sae, ds8), 422, "dataset");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"analyze\",\"sae\":%lld,\"n_samples\":0}", sae), 422, "n_samples");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"analyze\",\"sae\":%lld,\"n_samples\":1.5}", sae), 400, "n_samples");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"analyze\",\"sae\":%lld,\"cluster\":{\"method\":\"cosine\"}}", sae),
           422, "cluster");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"analyze\",\"sae\":%lld,\"cluster\":{\"method\":\"kmeans\"}}", sae),
           422, "cluster.method");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"analyze\",\"sae\":%lld,\"cluster\":{\"methd\":\"cosine\"}}", sae),
           400, "cluster.methd");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"analyze\",\"sae\":%lld,\"cluster\":3}", sae), 400, "cluster");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"pca\",\"sae\":%lld}", sae), 400, "rows");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"pca\",\"sae\":%lld,\"rows\":{\"indices\":[1,2],\"labels\":[\"a\"]}}",
                                  sae), 422, "rows");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"pca\",\"sae\":%lld,\"rows\":{\"indices\":[1,\"x\"]}}", sae), 400,
           "rows.indices");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"pca\",\"sae\":%lld,\"rows\":{\"indices\":[1]}}", sae), 422,
           "rows.indices");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"pca\",\"sae\":%lld,\"rows\":{\"ids\":[1,2]}}", sae), 400, "rows.ids");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"pca\",\"sae\":%lld,\"dataset\":%lld,\"rows\":{\"labels\":[\"a\"]}}",
                                  sae, ds), 422, "rows.labels");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"pca\",\"sae\":%lld,\"rows\":{\"indices\":[1,2,3]},\"top_latents\":4,"
                                  "\"components\":5}", sae), 422, "components");
    AT_BAD("POST", "/v1/jobs", JB("{\"type\":\"pca\",\"sae\":%lld,\"rows\":{\"indices\":[1,2,3]},\"top_latents\":0}",
                                  sae), 422, "top_latents");
#undef JB
}

/* ---- the analysis endpoints ---- */

static void test_summary(long long sae, long long job)
{
    json_t *a = get_json(at_fmt("/v1/saes/%lld/analysis", sae));
    CHECK(at_jint(a, "job") == job && at_jint(a, "n_samples") == N_SAMPLES, "analysis names its job and samples");
    CHECK(at_jint(a, "group_size") == 2 && at_jint(a, "n_groups") == N_LAT / 2, "analysis groups");
    json_t *s = json_object_get(a, "summary");
    double l0 = json_number_value(json_object_get(s, "l0"));
    CHECK(l0 > 0 && l0 <= N_LAT, "summary l0 %g", l0);
    json_decref(a);
    json_t *j = at_get_job(job);
    json_t *p = json_object_get(j, "progress");
    CHECK(at_jint(p, "step") == N_SAMPLES && at_jint(p, "total_steps") == N_SAMPLES, "progress counts rows");
    CHECK(at_jint(json_object_get(j, "result"), "sae") == sae, "result.sae");
    json_decref(j);
}

/* Pages through a list with limit; returns every item (a new array). */
static json_t *all_pages(const char *base, int limit)
{
    json_t *all = json_array();
    char path[300];
    snprintf(path, sizeof path, "%s%slimit=%d", base, strchr(base, '?') ? "&" : "?", limit);
    for (int pages = 0; pages < 100; pages++) {
        json_t *l = get_json(path);
        json_array_extend(all, json_object_get(l, "items"));
        json_t *next = json_object_get(l, "next");
        if (!json_is_integer(next)) {
            json_decref(l);
            break;
        }
        snprintf(path, sizeof path, "%s%slimit=%d&after=%lld", base, strchr(base, '?') ? "&" : "?", limit,
                 (long long)json_integer_value(next));
        json_decref(l);
    }
    return all;
}

/* Items sorted by key descending (ties by idx ascending). */
static int sorted_desc(json_t *items, const char *key, const char *idx)
{
    for (size_t i = 1; i < json_array_size(items); i++) {
        json_t *a = json_array_get(items, i - 1), *b = json_array_get(items, i);
        double x = json_number_value(json_object_get(a, key)), y = json_number_value(json_object_get(b, key));
        if (x < y || (x == y && at_jint(a, idx) >= at_jint(b, idx))) return 0;
    }
    return 1;
}

static void test_latents(long long sae)
{
    json_t *all = all_pages(at_fmt("/v1/saes/%lld/latents", sae), 7);
    CHECK(json_array_size(all) == N_LAT, "all %d latents paged (%zu)", N_LAT, json_array_size(all));
    size_t i;
    json_t *it;
    int bad = 0;
    json_array_foreach(all, i, it) {
        double d = json_number_value(json_object_get(it, "density"));
        double mean = json_number_value(json_object_get(it, "mean_act")), mx = json_number_value(json_object_get(it, "max_act"));
        bad += at_jint(it, "latent") != (long long)i || at_jint(it, "group") != (long long)i / 2 || !(d >= 0 && d <= 1) ||
               !(mean >= 0 && mean <= mx + 1e-6);
    }
    CHECK(bad == 0, "latents in order, groups i/2, density in [0,1], mean_act <= max_act (%d bad)", bad);
    json_decref(all);
    all = all_pages(at_fmt("/v1/saes/%lld/latents?sort=density", sae), 5);
    CHECK(json_array_size(all) == N_LAT && sorted_desc(all, "density", "latent"), "latents by density, paged");
    json_decref(all);
    json_t *l = get_json(at_fmt("/v1/saes/%lld/latents/3", sae));
    json_t *h = json_object_get(l, "histogram"), *counts = json_object_get(h, "counts");
    long long sum = 0;
    json_array_foreach(counts, i, it) sum += json_integer_value(it);
    double d = json_number_value(json_object_get(l, "density"));
    CHECK(json_array_size(json_object_get(h, "edges")) == json_array_size(counts) + 1, "histogram edges");
    CHECK(llabs(sum - (long long)(d * N_SAMPLES + 0.5)) == 0, "histogram counts %lld = density x samples", sum);
    CHECK(json_array_size(json_object_get(l, "neighbors_cos")) > 0, "cosine neighbours");
    json_decref(l);
    AT_BAD("GET", at_fmt("/v1/saes/%lld/latents/%d", sae, N_LAT), NULL, 404, NULL);
    AT_BAD("GET", at_fmt("/v1/saes/%lld/latents?sort=size", sae), NULL, 400, "sort");
    AT_BAD("GET", at_fmt("/v1/saes/%lld/latents?limit=0", sae), NULL, 400, "limit");
}

/* J from the matrix agrees with latent a's stored Jaccard neighbours. */
static int jaccard_agrees(long long sae, json_t *m, const long long *lat, int L)
{
    int bad = 0;
    for (int a = 0; a < L; a++) {
        json_t *l = get_json(at_fmt("/v1/saes/%lld/latents/%lld", sae, lat[a]));
        size_t i;
        json_t *nb;
        json_array_foreach(json_object_get(l, "neighbors_jaccard"), i, nb) {
            long long j = json_integer_value(json_array_get(nb, 0));
            for (int b = 0; b < L; b++)
                if (lat[b] == j)
                    bad += fabs(json_number_value(json_array_get(nb, 1)) -
                                json_number_value(json_array_get(json_array_get(m, a), b))) > 1e-5;
        }
        json_decref(l);
    }
    return bad;
}

static void test_jaccard(long long sae)
{
    const long long lat[] = { 0, 1, 2, 5, 7, 30 };
    const int L = 6;
    json_t *j = get_json(at_fmt("/v1/saes/%lld/jaccard?latents=0,1,2,5,7,30", sae));
    json_t *m = json_object_get(j, "matrix");
    int bad = json_array_size(m) != (size_t)L;
    for (int a = 0; a < L; a++)
        for (int b = 0; b < L; b++) {
            double x = json_number_value(json_array_get(json_array_get(m, a), b));
            double y = json_number_value(json_array_get(json_array_get(m, b), a));
            bad += !(x >= 0 && x <= 1) || x != y || (a == b && x != 1.0);
        }
    CHECK(bad == 0, "Jaccard matrix symmetric, in [0,1], J(i,i) = 1 (%d bad)", bad);
    CHECK(json_array_size(json_object_get(j, "latents")) == (size_t)L, "latents echoed");
    CHECK(jaccard_agrees(sae, m, lat, L) == 0, "matrix agrees with the stored Jaccard neighbours");
    json_decref(j);
    AT_BAD("GET", at_fmt("/v1/saes/%lld/jaccard", sae), NULL, 400, "latents");
    AT_BAD("GET", at_fmt("/v1/saes/%lld/jaccard?latents=1,x", sae), NULL, 400, "latents");
    AT_BAD("GET", at_fmt("/v1/saes/%lld/jaccard?latents=1,", sae), NULL, 400, "latents");
    AT_BAD("GET", at_fmt("/v1/saes/%lld/jaccard?latents=1,%d", sae, N_LAT), NULL, 422, "latents");
    char many[2000] = "";
    for (int i = 0; i < 257; i++) snprintf(many + strlen(many), sizeof many - strlen(many), "%s%d", i ? "," : "", i % N_LAT);
    AT_BAD("GET", at_fmt("/v1/saes/%lld/jaccard?latents=%s", sae, many), NULL, 400, "latents");
}

static void test_groups(long long sae)
{
    json_t *all = all_pages(at_fmt("/v1/saes/%lld/groups", sae), 3);
    size_t i;
    json_t *g;
    int bad = json_array_size(all) != N_LAT / 2;
    json_array_foreach(all, i, g) {
        json_t *mem = json_object_get(g, "members");
        double d = json_number_value(json_object_get(g, "density")), jc = json_number_value(json_object_get(g, "jaccard"));
        double fit = json_number_value(json_object_get(g, "plane_fit"));
        bad += at_jint(g, "group") != (long long)i || json_integer_value(json_array_get(mem, 0)) != 2 * (long long)i ||
               json_integer_value(json_array_get(mem, 1)) != 2 * (long long)i + 1 || !(d >= 0 && d <= 1) ||
               !(jc >= 0 && jc <= 1) || at_jint(g, "circle") < 0 || at_jint(g, "circle") >= N_CIRCLES ||
               !(fit >= 0 && fit <= 1 + 1e-6);
    }
    CHECK(bad == 0, "groups: contiguous members, values in range, circle and plane_fit (%d bad)", bad);
    json_decref(all);
    json_t *by_d = all_pages(at_fmt("/v1/saes/%lld/groups?sort=density", sae), 4);
    json_t *by_j = all_pages(at_fmt("/v1/saes/%lld/groups?sort=jaccard", sae), 5);
    json_t *one = get_json(at_fmt("/v1/saes/%lld/groups?sort=jaccard&limit=1000", sae));
    CHECK(json_array_size(by_d) == N_LAT / 2 && sorted_desc(by_d, "density", "group"), "groups by density, paged");
    CHECK(json_array_size(by_j) == N_LAT / 2 && sorted_desc(by_j, "jaccard", "group"), "groups by jaccard, paged");
    CHECK(json_equal(by_j, json_object_get(one, "items")), "paging gives the same order as one page");
    json_decref(by_d), json_decref(by_j), json_decref(one);
    AT_BAD("GET", at_fmt("/v1/saes/%lld/groups?sort=size", sae), NULL, 400, "sort");
    AT_BAD("GET", at_fmt("/v1/saes/%lld/groups/%d", sae, N_LAT / 2), NULL, 404, NULL);
}

/* The group's detail, plane and projection, checked by numpy against the weights and rows. */
static void test_group_geometry(long long sae, long long ds)
{
    json_t *g = get_json(at_fmt("/v1/saes/%lld/groups/5", sae));
    json_t *p = get_json(at_fmt("/v1/saes/%lld/groups/5/projection?limit=50", sae));
    CHECK(json_array_size(json_object_get(p, "points")) == json_array_size(json_object_get(p, "rows")) &&
          json_array_size(json_object_get(p, "points")) <= 50 && json_is_null(json_object_get(p, "labels")),
          "projection: points per row, limit, no labels for circles");
    char *gs = json_dumps(g, 0), *ps = json_dumps(p, 0);
    FILE *f = fopen(at_fmt("%s/group.json", g_work), "w");
    if (f) { fputs(gs, f); fclose(f); }
    f = fopen(at_fmt("%s/projection.json", g_work), "w");
    if (f) { fputs(ps, f); fclose(f); }
    free(gs), free(ps);
    json_decref(g), json_decref(p);
    fetch(at_fmt("/v1/saes/%lld/groups/5/plane.npy", sae), "plane.npy");
    fetch(at_fmt("/v1/datasets/%lld/rows.npy?offset=0&limit=%d", ds, N_SAMPLES), "rows.npy");
    py("group geometry",
       "import numpy as np, json\n"
       "g = json.load(open('group.json')); p = json.load(open('projection.json'))\n"
       "D, E, be, bd = (np.load(n) for n in ('decoder.npy', 'encoder.npy', 'b_enc.npy', 'b_dec.npy'))\n"
       "P = np.load('plane.npy'); X = np.load('rows.npy')\n"
       "assert P.shape == (2, 16) and P.dtype == np.float32, P.shape\n"
       "assert np.allclose(P @ P.T, np.eye(2), atol=1e-5), P @ P.T\n"
       "assert np.allclose(P, np.array(g['plane']), atol=1e-6)\n"
       "m = g['members']; R = D[m]\n"
       "sv = np.linalg.svd(R.astype(np.float64), compute_uv=False)\n"
       "assert np.allclose(sv, g['singular_values'], atol=1e-5), (sv, g['singular_values'])\n"
       "assert np.allclose(R @ P.T, np.array(g['coords']), atol=1e-5)\n"
       "U = R / np.linalg.norm(R, axis=1, keepdims=True)\n"
       "assert np.allclose(U @ U.T, np.array(g['cosine']), atol=1e-5)\n"
       "rows = np.array(p['rows']); assert (np.diff(rows) > 0).all()\n"
       "Z = np.maximum((X[rows] - bd) @ E + be, 0)\n"
       "assert (Z[:, m] > -1e-5).any(axis=1).all(), 'the group fires on every projected row'\n"
       "Pre = (X[:rows[-1] + 1].astype(np.float64) - bd) @ E + be\n"
       "sure = np.nonzero((Pre[:, m] > 1e-5).any(axis=1))[0]\n"
       "assert set(sure) <= set(rows), 'every row before the last where the group surely fires is listed'\n"
       "assert np.allclose((X[rows] - bd) @ P.T, np.array(p['points']), atol=1e-4)\n"
       "print('group geometry ok')\n");
    AT_BAD("GET", at_fmt("/v1/saes/%lld/groups/5/projection?limit=0", sae), NULL, 400, "limit");
    AT_BAD("GET", at_fmt("/v1/saes/%lld/groups/5/projection?dataset=999", sae), NULL, 422, "dataset");
}

static void test_recovery(long long sae)
{
    json_t *r = get_json(at_fmt("/v1/saes/%lld/recovery", sae));
    long long sum = 0, fsum = 0;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(r, "per_plane_hist"), i, v) sum += json_integer_value(v);
    json_t *fve = json_object_get(r, "circle_fve");
    json_array_foreach(json_object_get(fve, "hist"), i, v) fsum += json_integer_value(v);
    double frac = json_number_value(json_object_get(r, "inplane_frac"));
    double med = json_number_value(json_object_get(fve, "median")), p10 = json_number_value(json_object_get(fve, "p10"));
    CHECK(sum == N_CIRCLES && fsum == N_CIRCLES, "recovery histograms sum to n_circles (%lld, %lld)", sum, fsum);
    CHECK(frac >= 0 && frac <= 1 && at_jint(r, "circles_found") <= N_CIRCLES, "inplane_frac, circles_found");
    CHECK(p10 <= med && med <= 1, "circle FVE p10 <= median <= 1");
    printf("group SAE: %lld of %d circles found, in-plane fraction %.2f, circle FVE median %.3f\n",
           at_jint(r, "circles_found"), N_CIRCLES, frac, med);
    json_decref(r);
}

/* ---- encode ---- */

static void test_encode(long long sae)
{
    py("rows for encode", "import numpy as np, json\n"
       "json.dump({'rows': np.load('rows.npy')[:5].tolist()}, open('enc_in.json', 'w'))\n");
    FILE *f = fopen(at_fmt("%s/enc_in.json", g_work), "r");
    char body[20000] = "";
    size_t n = f ? fread(body, 1, sizeof body - 1, f) : 0;
    if (f) fclose(f);
    body[n] = '\0';
    at_resp r = at_http("POST", at_fmt("/v1/saes/%lld/encode", sae), body);
    CHECK(r.status == 200, "encode -> %ld %.200s", r.status, r.body);
    at_save_body(g_work, "enc_out.json", &r);
    at_resp_free(&r);
    py("encode round trip",
       "import numpy as np, json\n"
       "D, E, be, bd = (np.load(n) for n in ('decoder.npy', 'encoder.npy', 'b_enc.npy', 'b_dec.npy'))\n"
       "X = np.array(json.load(open('enc_in.json'))['rows'], dtype=np.float32)\n"
       "out = json.load(open('enc_out.json'))\n"
       "Z = np.maximum((X - bd) @ E + be, 0); Xh = Z @ D + bd\n"
       "assert np.allclose(np.array(out['reconstruction']), Xh, atol=1e-4)\n"
       "for b, lat in enumerate(out['latents']):\n"
       "    idx = [i for i, v in lat]; assert idx == sorted(idx), b\n"
       "    assert (Z[b, idx] > -1e-5).all() and set(np.nonzero(Z[b] > 1e-5)[0]) <= set(idx), b\n"
       "    assert np.allclose([v for i, v in lat], Z[b, idx], atol=1e-5)\n"
       "print('encode ok')\n");
    const char *p = at_fmt("/v1/saes/%lld/encode", sae);
    AT_BAD("POST", p, "{}", 400, "rows");
    AT_BAD("POST", p, "{\"rows\":3}", 400, "rows");
    AT_BAD("POST", p, "{\"rows\":[]}", 422, "rows");
    AT_BAD("POST", p, "{\"rows\":[[1,2]]}", 422, "rows[0]");
    AT_BAD("POST", p, "{\"rows\":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],\"x\"]}", 400, "rows[1]");
    AT_BAD("POST", p, "{\"rows\":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\"a\"]]}", 400, "rows[0]");
    AT_BAD("POST", p, "{\"rows\":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]],\"row\":1}", 400, "row");
    AT_BAD("POST", p, "{\"rows\":", 400, NULL);
    AT_BAD("POST", "/v1/saes/999999/encode", "{\"rows\":[[0]]}", 404, NULL);
    AT_BAD("GET", p, NULL, 405, NULL);
    char *many = malloc(1025 * 4 + 32);
    strcpy(many, "{\"rows\":[");
    for (int i = 0; i < 1025; i++) strcat(many, i ? ",[0]" : "[0]");
    strcat(many, "]}");
    AT_BAD("POST", p, many, 422, "rows");
    free(many);
}

/* ---- pca ---- */

static void test_pca_indices(long long sae)
{
    char body[2000];
    int n = snprintf(body, sizeof body, "{\"type\":\"pca\",\"sae\":%lld,\"rows\":{\"indices\":[", sae);
    for (int i = 0; i < 200; i++) n += snprintf(body + n, sizeof body - n, "%s%d", i ? "," : "", 3 * i);
    snprintf(body + n, sizeof body - n, "]},\"top_latents\":6,\"components\":3}");
    long long job = run_job(body, "pca");
    json_t *j = at_get_job(job);
    long long id = at_jint(json_object_get(j, "result"), "analysis");
    json_decref(j);
    CHECK(id > 0, "pca result.analysis");
    json_t *a = get_json(at_fmt("/v1/analyses/%lld", id));
    CHECK(at_jint(a, "job") == job && at_jint(a, "sae") == sae && at_jint(a, "n_rows") == 200, "analysis object");
    CHECK(json_array_size(json_object_get(a, "latents")) == 6 && json_array_size(json_object_get(a,
          "explained_variance")) == 3 && json_is_null(json_object_get(a, "labels")), "latents, variance, labels");
    at_resp r = at_http("GET", at_fmt("/v1/analyses/%lld", id), NULL);
    at_save_body(g_work, "pca.json", &r);
    at_resp_free(&r);
    json_decref(a);
    fetch(at_fmt("/v1/analyses/%lld/points.npy", id), "points.npy");
    fetch(at_fmt("/v1/analyses/%lld/components.npy", id), "components.npy");
    py("pca by indices",
       "import numpy as np, json\n"
       "D, E, be, bd = (np.load(n) for n in ('decoder.npy', 'encoder.npy', 'b_enc.npy', 'b_dec.npy'))\n"
       "a = json.load(open('pca.json')); X = np.load('rows.npy')[a['rows']].astype(np.float64)\n"
       "Z = np.maximum((X - bd) @ E + be, 0)\n"
       "tot = Z.sum(axis=0); L = a['latents']\n"
       "want = sorted(range(len(tot)), key=lambda i: (-tot[i], i))[:len(L)]\n"
       "assert L == want, (L, want)\n"
       "R = Z[:, L] @ D[L] + bd; C = R - R.mean(axis=0)\n"
       "u, s, vt = np.linalg.svd(C, full_matrices=False)\n"
       "var = s[:3] ** 2 / (len(R) - 1)\n"
       "assert np.allclose(var, a['explained_variance'], rtol=1e-3, atol=1e-6), (var, a['explained_variance'])\n"
       "P, Cm = np.load('points.npy'), np.load('components.npy')\n"
       "assert P.shape == (200, 3) and Cm.shape == (3, 16)\n"
       "assert np.allclose(Cm @ Cm.T, np.eye(3), atol=1e-4)\n"
       "assert np.allclose(np.abs(Cm @ vt[:3].T), np.eye(3), atol=1e-3)\n"
       "assert np.allclose(C @ Cm.T, P, atol=1e-3)\n"
       "r = np.array(a['explained_variance_ratio']); assert (r >= 0).all() and r.sum() <= 1 + 1e-6\n"
       "print('pca ok')\n");
    AT_BAD("GET", "/v1/analyses/999999", NULL, 404, NULL);
    AT_BAD("GET", "/v1/analyses/999999/points.npy", NULL, 404, NULL);
}

/* An uploaded .npy dataset with labels: pca by label, and an analysis whose projections carry labels. */
static void test_labels(long long sae)
{
    py("labelled fixture", "import numpy as np\n"
       "X = np.load('rows.npy')[:600]; np.save('lab.npy', X)\n"
       "open('lab.txt', 'w').write(''.join(('even' if i % 2 == 0 else 'odd') + ' ' + str(i % 3) + '\\n'\n"
       "                                    for i in range(600)))\n");
    void *buf = NULL;
    FILE *f = fopen(at_fmt("%s/lab.npy", g_work), "rb");
    size_t n = 0;
    if (f && (buf = malloc(1 << 20))) n = fread(buf, 1, 1 << 20, f);
    if (f) fclose(f);
    at_resp r = at_http_ex("POST", "/v1/datasets?kind=npy&name=lab", buf, n, "Content-Type: application/octet-stream",
                           60);
    json_t *d = at_expect_json(r, 201);
    long long ds = at_jint(d, "id");
    json_decref(d);
    free(buf);
    f = fopen(at_fmt("%s/lab.txt", g_work), "rb");
    char text[20000];
    n = f ? fread(text, 1, sizeof text, f) : 0;
    if (f) fclose(f);
    r = at_http_ex("PUT", at_fmt("/v1/datasets/%lld/labels", ds), text, n, "Content-Type: text/plain", 60);
    CHECK(r.status == 200 || r.status == 204, "PUT labels -> %ld %.200s", r.status, r.body);
    at_resp_free(&r);
    long long job = run_job(at_fmt("{\"type\":\"pca\",\"sae\":%lld,\"dataset\":%lld,\"rows\":{\"labels\":[\"odd 0\","
                                   "\"even 1\"]},\"top_latents\":5,\"components\":2}", sae, ds), "pca by labels");
    json_t *j = at_get_job(job);
    json_t *a = get_json(at_fmt("/v1/analyses/%lld", at_jint(json_object_get(j, "result"), "analysis")));
    json_decref(j);
    json_t *labels = json_object_get(a, "labels"), *rows = json_object_get(a, "rows"), *v;
    size_t i;
    int bad = json_array_size(labels) != 200 || json_array_size(rows) != 200;
    json_array_foreach(rows, i, v) {
        long long row = json_integer_value(v);
        const char *want = row % 2 ? (row % 3 == 0 ? "odd 0" : NULL) : (row % 3 == 1 ? "even 1" : NULL);
        bad += !want || strcmp(json_string_value(json_array_get(labels, i)), want);
    }
    CHECK(bad == 0, "pca by labels chose exactly the rows with those labels (%d bad)", bad);
    json_decref(a);
    run_job(at_fmt("{\"type\":\"analyze\",\"sae\":%lld,\"dataset\":%lld,\"n_samples\":600}", sae, ds),
            "analyze npy");
    json_t *top = get_json(at_fmt("/v1/saes/%lld/groups?sort=density&limit=1", sae));
    long long grp = at_jint(json_array_get(json_object_get(top, "items"), 0), "group");
    json_decref(top);
    json_t *p = get_json(at_fmt("/v1/saes/%lld/groups/%lld/projection?limit=20", sae, grp));
    CHECK(json_array_size(json_object_get(p, "rows")) == 20, "the densest group has 20 projected rows");
    labels = json_object_get(p, "labels");
    bad = json_array_size(labels) != json_array_size(json_object_get(p, "rows"));
    json_array_foreach(json_object_get(p, "rows"), i, v) {
        char want[32];
        long long row = json_integer_value(v);
        snprintf(want, sizeof want, "%s %lld", row % 2 ? "odd" : "even", row % 3);
        bad += strcmp(json_string_value(json_array_get(labels, i)) ? json_string_value(json_array_get(labels, i)) : "",
                      want);
    }
    CHECK(bad == 0, "projection labels are the rows' labels (%d bad)", bad);
    json_decref(p);
    AT_BAD("GET", at_fmt("/v1/saes/%lld/recovery", sae), NULL, 404, NULL);
}

/* ---- clustering, compare, replacing, restart, cancel ---- */

static void test_cluster_compare(long long sae, long long plain)
{
    AT_BAD("POST", "/v1/jobs", at_fmt("{\"type\":\"analyze\",\"sae\":%lld,\"cluster\":{\"method\":\"cosine\","
                                      "\"group_size\":3}}", plain), 422, "cluster.group_size");
    run_job(at_fmt("{\"type\":\"analyze\",\"sae\":%lld,\"n_samples\":%d,\"cluster\":{\"method\":\"cosine\","
                   "\"group_size\":2}}", plain, N_SAMPLES), "analyze with clustering");
    json_t *a = get_json(at_fmt("/v1/saes/%lld/analysis", plain));
    CHECK(at_jint(a, "group_size") == 2 && at_jint(a, "n_groups") == N_LAT / 2 &&
          !strcmp(at_jstr(json_object_get(a, "cluster"), "method"), "cosine"), "clustered analysis");
    json_decref(a);
    json_t *all = all_pages(at_fmt("/v1/saes/%lld/groups", plain), 100);
    int seen[N_LAT] = { 0 }, bad = json_array_size(all) != N_LAT / 2;
    size_t i, k;
    json_t *g, *m;
    json_array_foreach(all, i, g) {
        bad += json_array_size(json_object_get(g, "members")) != 2;
        json_array_foreach(json_object_get(g, "members"), k, m)
            if (json_integer_value(m) >= 0 && json_integer_value(m) < N_LAT) seen[json_integer_value(m)]++;
    }
    for (int t = 0; t < N_LAT; t++) bad += seen[t] != 1;
    CHECK(bad == 0, "clustered groups are pairs covering every latent once (%d bad)", bad);
    json_t *l = get_json(at_fmt("/v1/saes/%lld/latents/0", plain));
    long long grp = at_jint(l, "group");
    json_decref(l);
    json_t *gg = get_json(at_fmt("/v1/saes/%lld/groups/%lld", plain, grp));
    json_t *mem = json_object_get(gg, "members");
    CHECK(json_integer_value(json_array_get(mem, 0)) == 0 || json_integer_value(json_array_get(mem, 1)) == 0,
          "a latent's group lists it");
    json_decref(gg), json_decref(all);

    json_t *c = get_json(at_fmt("/v1/compare?saes=%lld,%lld", sae, plain));
    json_t *s = json_object_get(c, "saes");
    CHECK(json_array_size(s) == 2 && at_jint(json_array_get(s, 0), "id") == sae &&
          at_jint(json_array_get(s, 1), "group_size") == 1, "compare lists both");
    json_t *rec = json_object_get(json_array_get(s, 1), "recovery");
    long long sum = 0;
    json_array_foreach(json_object_get(rec, "per_plane_hist"), i, g) sum += json_integer_value(g);
    CHECK(sum == N_CIRCLES, "compare carries the recovery histogram");
    CHECK(json_is_number(json_object_get(json_object_get(json_array_get(s, 0), "metrics"), "fve")), "metrics");
    json_decref(c);
    AT_BAD("GET", "/v1/compare", NULL, 400, "saes");
    AT_BAD("GET", "/v1/compare?saes=", NULL, 400, "saes");
    AT_BAD("GET", "/v1/compare?saes=a,b", NULL, 400, "saes");
    AT_BAD("GET", at_fmt("/v1/compare?saes=%lld,999999", sae), NULL, 404, "saes");
}

static int count_dirs(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

static void test_replace_restart(long long sae)
{
    long long job = run_job(at_fmt("{\"type\":\"analyze\",\"sae\":%lld,\"n_samples\":%d}", sae, N_SAMPLES / 2),
                            "second analysis");
    json_t *a = get_json(at_fmt("/v1/saes/%lld/analysis", sae));
    CHECK(at_jint(a, "job") == job && at_jint(a, "n_samples") == N_SAMPLES / 2, "the new analysis replaced the old");
    json_decref(a);
    /* The worker removes the old directory right after the transaction that ends the job (a failed commit must
     * leave the old analysis whole), so the job can read as succeeded a moment before: allow that moment. */
    int dirs = 0;
    for (double t0 = at_now_s(); (dirs = count_dirs(at_fmt("%s/analyses/sae-%lld", g_d.dir, sae))) != 1 &&
                                 at_now_s() - t0 < 10; at_sleep_ms(20)) {}
    CHECK(dirs == 1, "the old analysis's files are removed");
    json_t *before = get_json(at_fmt("/v1/saes/%lld/jaccard?latents=0,1,2,3", sae));
    CHECK(at_daemon_stop(&g_d) && at_daemon_restart(&g_d), "daemon stops and restarts");
    json_t *after = get_json(at_fmt("/v1/saes/%lld/jaccard?latents=0,1,2,3", sae));
    CHECK(json_equal(before, after) && at_jint(after, "n_samples") == N_SAMPLES / 2,
          "the firing pattern survives a restart");
    json_decref(before), json_decref(after);
}

static void test_cancel(long long sae)
{
    long long job = at_post_id("/v1/jobs", at_fmt("{\"type\":\"analyze\",\"sae\":%lld,\"n_samples\":10000000}", sae),
                               202);
    int running = 0;
    for (double t0 = at_now_s(); at_now_s() - t0 < 60 && !running; at_sleep_ms(50)) {
        json_t *j = at_get_job(job);
        running = j && at_jint(json_object_get(j, "progress"), "step") > 0;
        json_decref(j);
    }
    CHECK(running, "the long analysis reports progress");
    at_resp r = at_http("POST", at_fmt("/v1/jobs/%lld/cancel", job), NULL);
    at_resp_free(&r);
    json_t *j = at_wait_job(job, "cancelled succeeded failed", 60);
    CHECK(j && !strcmp(at_jstr(j, "state"), "cancelled"), "analysis cancelled (%s)", j ? at_jstr(j, "state") : "timeout");
    json_decref(j);
    json_t *a = get_json(at_fmt("/v1/saes/%lld/analysis", sae));
    CHECK(at_jint(a, "n_samples") == N_SAMPLES / 2, "a cancelled analysis leaves the last one in place");
    json_decref(a);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int up = at_daemon_start(&g_d, "analysis", NULL);
    CHECK(up, "daemon answers /v1/health");
    if (!up) {
        at_daemon_show_log(&g_d);
        return check_report();
    }
    snprintf(g_work, sizeof g_work, "%s/work", g_d.dir);
    mkdir(g_work, 0755);
    long long ds = at_post_id("/v1/datasets", "{\"kind\":\"circles\",\"name\":\"small\",\"params\":{\"n_circles\":8,"
                              "\"dim\":16,\"p_active\":0.15,\"radius\":[1,1],\"seed\":5}}", 201);
    long long ds8 = at_post_id("/v1/datasets", "{\"kind\":\"circles\",\"params\":{\"dim\":8}}", 201);
    long long sae = train(ds, 2), plain = train(ds, 1);
    test_openapi();
    test_before_analysis(sae);
    test_job_validation(sae, ds, ds8);
    long long job = run_job(at_fmt("{\"type\":\"analyze\",\"sae\":%lld,\"dataset\":%lld,\"n_samples\":%d}", sae, ds,
                                   N_SAMPLES), "analyze");
    fetch(at_fmt("/v1/saes/%lld/decoder.npy", sae), "decoder.npy");
    fetch(at_fmt("/v1/saes/%lld/encoder.npy", sae), "encoder.npy");
    fetch(at_fmt("/v1/saes/%lld/b_enc.npy", sae), "b_enc.npy");
    fetch(at_fmt("/v1/saes/%lld/b_dec.npy", sae), "b_dec.npy");
    test_summary(sae, job);
    test_latents(sae);
    test_jaccard(sae);
    test_groups(sae);
    test_group_geometry(sae, ds);
    test_recovery(sae);
    test_encode(sae);
    test_pca_indices(sae);
    test_cluster_compare(sae, plain);
    test_labels(plain);
    test_replace_restart(sae);
    test_cancel(sae);
    CHECK(at_daemon_stop(&g_d), "SIGTERM exits 0");
    if (check_failed) {
        at_daemon_show_log(&g_d);
        fprintf(stderr, "test_api_analysis: data left in %s\n", g_d.dir);
    } else {
        at_daemon_cleanup(&g_d);
    }
    curl_global_cleanup();
    return check_report();
}
