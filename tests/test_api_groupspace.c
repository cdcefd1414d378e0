/* test_api_groupspace — the groupspace job against a real saed (API.md
 * "Learned groups"): the seed's two toys through the API (the done-when of
 * issue 14: disjoint pairs >= 98 % within near and >= 98 % of other pairs
 * beyond far; co-occurring pairs wrap into a ring under raw counts, and do
 * not under NPMI weights), explicit sets, sets from an analysed SAE's
 * firing rows, the positions (final and snapshots) read back with NumPy,
 * the groups, and the errors: bad bodies change nothing, a train job has no
 * positions, unfinished jobs say 409, a deleted job's files go. Then the
 * loop the seed proposed: a group SAE trained on the learned groups
 * (sae.groups {"from_job": ID}, uneven sizes), analysed, its groups served
 * with the learned members, encoded, exported; and explicit groups' errors. */
#include "check.h"
#include "apitest.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static at_daemon g_d;

static json_t *run_job(const char *body, const char *what)
{
    long long id = at_post_id("/v1/jobs", body, 202);
    json_t *j = id ? at_wait_job(id, "succeeded failed cancelled", 120) : NULL;
    CHECK(j && !strcmp(at_jstr(j, "state"), "succeeded"), "%s job %lld: %s %s", what, id,
          j ? at_jstr(j, "state") : "timeout", j ? at_jstr(j, "error") : "");
    return j ? j : json_object();
}

static double num(const json_t *o, const char *a, const char *b)
{
    const json_t *v = json_object_get(o, a);
    if (b) v = json_object_get(v, b);
    return json_number_value(v);
}

/* ---- the seed's toys ---- */

static void test_disjoint(void)
{
    json_t *j = run_job("{\"type\":\"groupspace\",\"sets\":{\"toy\":{\"items\":100,\"p\":0}},\"steps\":3000,"
                        "\"snapshots\":10}", "disjoint toy");
    long long id = at_jint(j, "id");
    json_t *res = json_object_get(j, "result");
    double near = num(res, "truth", "true_near_frac"), far = num(res, "truth", "other_far_frac");
    printf("disjoint pairs: %.3f of true pairs within near, %.4f of other pairs beyond far, %lld groups\n", near, far,
           at_jint(res, "n_groups"));
    CHECK(near >= 0.98 && far >= 0.98, "disjoint pairs: %.3f within near, %.4f beyond far", near, far);
    CHECK(at_jint(res, "n_groups") == 50 && json_integer_value(json_object_get(json_object_get(res, "group_sizes"),
                                                                               "2")) == 50, "50 groups of 2");
    json_t *snaps = json_object_get(res, "snapshots");
    CHECK(json_array_size(snaps) == 10 && json_integer_value(json_array_get(snaps, 9)) == 3000 &&
          json_array_size(json_object_get(res, "history")) == 10, "10 snapshots, the last at 3000");
    json_t *g = at_expect_json(at_http("GET", at_fmt("/v1/jobs/%lld/groups", id), NULL), 200);
    json_t *groups = json_object_get(g, "groups"), *grp;
    size_t i;
    int pairs_ok = json_array_size(groups) == 50;
    json_array_foreach(groups, i, grp) {
        long long a = json_integer_value(json_array_get(grp, 0)), b = json_integer_value(json_array_get(grp, 1));
        pairs_ok &= json_array_size(grp) == 2 && a % 2 == 0 && b == a + 1;
    }
    CHECK(pairs_ok, "every group is a true pair (2q, 2q+1)");
    json_decref(g);
    /* the final positions and a snapshot, read with NumPy */
    char dir[] = "/tmp/saed-gs-npy-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "tmp dir");
    at_resp r = at_http("GET", at_fmt("/v1/jobs/%lld/positions.npy", id), NULL);
    CHECK(r.status == 200 && at_save_body(dir, "pos.npy", &r) == 0, "positions.npy: %ld", r.status);
    at_resp_free(&r);
    r = at_http("GET", at_fmt("/v1/jobs/%lld/positions.npy?step=300", id), NULL);
    CHECK(r.status == 200 && at_save_body(dir, "snap.npy", &r) == 0, "positions.npy?step=300: %ld", r.status);
    at_resp_free(&r);
    CHECK(at_python(dir, "import numpy as np\n"
                         "p = np.load('pos.npy'); s = np.load('snap.npy')\n"
                         "assert p.shape == (100, 2) and p.dtype == np.float32 and s.shape == (100, 2)\n"
                         "d = np.linalg.norm(p[0::2] - p[1::2], axis=1)\n"
                         "assert (d <= 0.1).mean() >= 0.98, d.max()\n"
                         "assert not np.allclose(p, s)\n") == 0, "NumPy reads the positions; pairs within near");
    at_expect_problem("a step with no snapshot", at_http("GET", at_fmt("/v1/jobs/%lld/positions.npy?step=7", id),
                                                         NULL), 404, "step");
    at_expect_problem("step not a number", at_http("GET", at_fmt("/v1/jobs/%lld/positions.npy?step=x", id), NULL),
                      400, "step");
    json_decref(j);
    /* deleting the job removes its files */
    at_resp d = at_http("DELETE", at_fmt("/v1/jobs/%lld", id), NULL);
    CHECK(d.status == 204, "DELETE: %ld", d.status);
    at_resp_free(&d);
    CHECK(access(at_fmt("%s/jobs/%lld", g_d.dir, id), F_OK) != 0, "the job's directory is gone");
    at_expect_problem("positions of a deleted job", at_http("GET", at_fmt("/v1/jobs/%lld/positions.npy", id), NULL),
                      404, NULL);
    if (!check_failed) {
        unlink(at_fmt("%s/pos.npy", dir)), unlink(at_fmt("%s/snap.npy", dir));
        rmdir(dir);
    }
}

static void test_ring(void)
{
    json_t *c = run_job("{\"type\":\"groupspace\",\"sets\":{\"toy\":{\"items\":100,\"p\":0.1}},\"steps\":5000,"
                        "\"weight\":\"count\"}", "co-occurring toy, count");
    json_t *n = run_job("{\"type\":\"groupspace\",\"sets\":{\"toy\":{\"items\":100,\"p\":0.1}},\"steps\":5000,"
                        "\"weight\":\"npmi\"}", "co-occurring toy, npmi");
    json_t *rc = json_object_get(c, "result"), *rn = json_object_get(n, "result");
    printf("co-occurring pairs: count weights: near %.3f far %.4f radius cv %.3f inner %.2f; npmi: near %.3f "
           "far %.4f cv %.3f inner %.2f\n", num(rc, "truth", "true_near_frac"), num(rc, "truth", "other_far_frac"),
           num(rc, "radius", "cv"), num(rc, "radius", "inner_frac"), num(rn, "truth", "true_near_frac"),
           num(rn, "truth", "other_far_frac"), num(rn, "radius", "cv"), num(rn, "radius", "inner_frac"));
    CHECK(num(rc, "radius", "cv") < 0.15 && num(rc, "radius", "inner_frac") < 0.02,
          "count weights: the seed's ring (radius cv %.3f)", num(rc, "radius", "cv"));
    CHECK(num(rn, "truth", "true_near_frac") >= 0.98 && num(rn, "truth", "other_far_frac") >= 0.98 &&
          num(rn, "radius", "cv") > 0.25, "npmi weights: pairs apart, no ring");
    json_decref(c), json_decref(n);
}

/* ---- explicit sets and an analysis's rows ---- */

static void test_explicit(void)
{
    json_t *j = run_job("{\"type\":\"groupspace\",\"sets\":{\"items\":7,\"sets\":[[0,1],[2,3,4],[5]]},"
                        "\"steps\":400,\"snapshots\":4,\"seed\":3}", "explicit sets");
    json_t *g = at_expect_json(at_http("GET", at_fmt("/v1/jobs/%lld/groups", at_jint(j, "id")), NULL), 200);
    char *text = json_dumps(json_object_get(g, "groups"), JSON_COMPACT);
    CHECK(text && !strcmp(text, "[[0,1],[2,3,4],[5],[6]]"), "groups of any size, every item once: %s", text);
    free(text);
    json_decref(g), json_decref(j);
}

/* The groupspace job over an analysed SAE's latents, for the loop below; 0 if it failed. */
static long long g_gs_job, g_gs_ds, g_gs_sae;

static void test_from_analysis(void)
{
    long long ds = at_post_id("/v1/datasets", "{\"kind\":\"circles\",\"name\":\"gs\",\"params\":{\"n_circles\":8,"
                              "\"dim\":16,\"seed\":2,\"p_active\":0.05}}", 201);
    json_t *t = run_job(at_fmt("{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"n_latents\":32,"
                               "\"group_size\":1,\"sparsity_coef\":0.01},\"train\":{\"steps\":600,\"batch_size\":128,"
                               "\"lr\":0.003,\"eval_every\":300,\"eval_rows\":256}}", ds), "train");
    long long sae = at_jint(json_object_get(t, "result"), "sae");
    json_decref(t);
    g_gs_ds = ds, g_gs_sae = sae;
    at_expect_problem("SAE without analysis", at_http("POST", "/v1/jobs", at_fmt("{\"type\":\"groupspace\",\"sets\":"
                      "{\"from_analysis\":%lld}}", sae)), 422, "sets.from_analysis");
    json_decref(run_job(at_fmt("{\"type\":\"analyze\",\"sae\":%lld,\"n_samples\":4000}", sae), "analyze"));
    at_expect_problem("items given for an SAE", at_http("POST", "/v1/jobs", at_fmt("{\"type\":\"groupspace\",\"sets\":"
                      "{\"from_analysis\":%lld,\"items\":5}}", sae)), 422, "sets.items");
    json_t *j = run_job(at_fmt("{\"type\":\"groupspace\",\"sets\":{\"from_analysis\":%lld,\"min_jaccard\":0.05},"
                               "\"steps\":500,\"weight\":\"npmi\"}", sae), "groupspace from an analysis");
    json_t *res = json_object_get(j, "result");
    CHECK(at_jint(res, "items") == 32 && json_is_null(json_object_get(res, "truth")), "32 items, no truth");
    CHECK(at_jint(json_object_get(j, "spec"), "sae") == 0 &&
          at_jint(json_object_get(json_object_get(j, "spec"), "sets"), "from_analysis") == sae,
          "the normalised spec names the SAE");
    json_t *g = at_expect_json(at_http("GET", at_fmt("/v1/jobs/%lld/groups", at_jint(j, "id")), NULL), 200);
    int seen[32] = { 0 }, total = 0;
    json_t *grp, *e;
    size_t i, k;
    json_array_foreach(json_object_get(g, "groups"), i, grp) json_array_foreach(grp, k, e) {
        long long v = json_integer_value(e);
        if (v >= 0 && v < 32) seen[v]++;
        total++;
    }
    int once = total == 32;
    for (int l = 0; l < 32; l++) once &= seen[l] == 1;
    CHECK(once, "every latent in exactly one group (%d entries)", total);
    g_gs_job = once ? at_jint(j, "id") : 0;
    /* metrics: the loss curve, SAE fields null */
    json_t *m = at_expect_json(at_http("GET", at_fmt("/v1/jobs/%lld/metrics", at_jint(j, "id")), NULL), 200);
    CHECK(json_array_size(json_object_get(m, "loss")) > 10 &&
          json_is_null(json_array_get(json_object_get(m, "fve"), 0)), "metrics: a loss curve, fve null");
    json_decref(m), json_decref(g), json_decref(j);
}

/* ---- the loop: a group SAE on the learned groups ---- */

static long long job_count(void)
{
    json_t *j = at_expect_json(at_http("GET", "/v1/jobs?limit=1000", NULL), 200);
    long long n = (long long)json_array_size(json_object_get(j, "items"));
    json_decref(j);
    return n;
}

/* The groups of GET path as compact JSON text (caller frees), members as given. */
static char *groups_text(const char *path, const char *key)
{
    json_t *g = at_expect_json(at_http("GET", path, NULL), 200);
    char *text = json_dumps(json_object_get(g, key), JSON_COMPACT);
    json_decref(g);
    return text;
}

/* The SAE's analysed groups' members, as [[...],...] text (caller frees). */
static char *sae_group_members(long long sae)
{
    json_t *g = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld/groups?limit=1000", sae), NULL), 200);
    json_t *out = json_array(), *item;
    size_t i;
    json_array_foreach(json_object_get(g, "items"), i, item)
        json_array_append(out, json_object_get(item, "members"));
    char *text = json_dumps(out, JSON_COMPACT);
    json_decref(out), json_decref(g);
    return text;
}

static void test_learned_loop(void)
{
    if (!g_gs_job) return; /* test_from_analysis failed and said so */
    char *learned = groups_text(at_fmt("/v1/jobs/%lld/groups", g_gs_job), "groups");
    json_t *t = run_job(at_fmt("{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"groups\":"
                               "{\"from_job\":%lld},\"sparsity_coef\":0.01,\"orth_coef\":0.1},\"train\":{"
                               "\"steps\":400,\"batch_size\":128,\"lr\":0.003,\"eval_every\":200,\"eval_rows\":256},"
                               "\"init\":{\"from_sae\":%lld}}", g_gs_ds, g_gs_job, g_gs_sae),
                        "retrain the analysed SAE on its learned groups");
    char *stored = json_dumps(json_object_get(json_object_get(json_object_get(t, "spec"), "sae"), "groups"),
                              JSON_COMPACT);
    CHECK(stored && learned && !strcmp(stored, learned), "the stored spec lists the learned groups: %s", stored);
    long long sae = at_jint(json_object_get(t, "result"), "sae");
    json_t *s = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld", sae), NULL), 200);
    json_t *lists = json_loads(learned ? learned : "[]", 0, NULL);
    CHECK(at_jint(s, "n_latents") == 32 && at_jint(s, "group_size") == 0 &&
              at_jint(s, "n_groups") == (long long)json_array_size(lists),
          "the SAE: 32 latents in %lld listed groups", at_jint(s, "n_groups"));
    json_decref(run_job(at_fmt("{\"type\":\"analyze\",\"sae\":%lld,\"n_samples\":4000}", sae), "analyze it"));
    char *members = sae_group_members(sae);
    CHECK(members && learned && !strcmp(members, learned), "its groups are the learned ones: %s", members);
    json_t *rec = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld/recovery", sae), NULL), 200);
    CHECK(json_is_array(json_object_get(rec, "groups_per_plane_hist")), "recovery scores the uneven groups");
    json_t *enc = at_expect_json(at_http("POST", at_fmt("/v1/saes/%lld/encode", sae),
                                         "{\"rows\":[[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]]}"), 200);
    CHECK(json_array_size(json_object_get(enc, "reconstruction")) == 1, "encode");
    json_t *cfg = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld/cfg.json", sae), NULL), 200);
    char *cfg_groups = json_dumps(json_object_get(cfg, "groups"), JSON_COMPACT);
    CHECK(cfg_groups && learned && !strcmp(cfg_groups, learned), "cfg.json lists the groups");
    at_expect_problem("SAELens cannot compute listed groups",
                      at_http("GET", at_fmt("/v1/saes/%lld/saelens.tar", sae), NULL), 422, NULL);
    printf("loop: a relu SAE on %zu learned groups of 32 latents: fve %.3f\n", json_array_size(lists),
           json_number_value(json_object_get(json_object_get(s, "metrics"), "fve")));
    free(cfg_groups), free(members), free(stored), free(learned);
    json_decref(cfg), json_decref(enc), json_decref(rec), json_decref(lists), json_decref(s), json_decref(t);
}

static void test_groups_errors(void)
{
    long long before = job_count(), ds = g_gs_ds ? g_gs_ds : 1;
    const char *train = "{\"type\":\"train\",\"dataset\":%lld,\"sae\":%s}";
    static const struct { const char *sae; long status; const char *field; } bad[] = {
        { "{\"arch\":\"relu\",\"groups\":[[0,1],[1,2]]}", 422, "sae.groups" },
        { "{\"arch\":\"relu\",\"groups\":[[0,1],[3]]}", 422, "sae.groups" },
        { "{\"arch\":\"relu\",\"groups\":[[0,\"1\"]]}", 400, "sae.groups" },
        { "{\"arch\":\"relu\",\"groups\":[]}", 400, "sae.groups" },
        { "{\"arch\":\"relu\",\"groups\":[[0],[]]}", 422, "sae.groups" },
        { "{\"arch\":\"relu\",\"groups\":[[0,1]],\"group_size\":2}", 422, "sae.group_size" },
        { "{\"arch\":\"relu\",\"groups\":[[0,1]],\"n_latents\":3}", 422, "sae.groups" },
        { "{\"arch\":\"gated\",\"groups\":[[0,1],[2]]}", 422, "sae.groups" },
        { "{\"arch\":\"topk\",\"groups\":[[0,1],[2]],\"k\":3}", 422, "sae.k" },
        { "{\"arch\":\"relu\",\"groups\":{\"from_job\":999999}}", 422, "sae.groups.from_job" },
        { "{\"arch\":\"relu\",\"groups\":{\"from_job\":1}}", 422, "sae.groups.from_job" },
        { "{\"arch\":\"relu\",\"groups\":{\"from_job\":\"1\"}}", 400, "sae.groups" },
        { "{\"arch\":\"relu\",\"groups\":{\"job\":1}}", 400, "sae.groups" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        at_expect_problem(bad[i].sae, at_http("POST", "/v1/jobs", at_fmt(train, ds, bad[i].sae)), bad[i].status,
                          bad[i].field);
    long long after = job_count();
    CHECK(after == before, "refused train bodies create no job (%lld -> %lld)", before, after);
}

/* ---- errors ---- */


static void test_errors(void)
{
    long long before = job_count();
    static const struct { const char *body; long status; const char *field; } bad[] = {
        { "{\"type\":\"groupspace\"}", 400, "sets" },
        { "{\"type\":\"groupspace\",\"sets\":{\"toy\":{}},\"stepz\":3}", 400, "stepz" },
        { "{\"type\":\"groupspace\",\"sets\":{\"toy\":{\"items\":9}}}", 422, "sets.toy.items" },
        { "{\"type\":\"groupspace\",\"sets\":{\"toy\":{\"p\":2}}}", 422, "sets.toy.p" },
        { "{\"type\":\"groupspace\",\"sets\":{\"toy\":{},\"sets\":[[0]],\"items\":3}}", 422, "sets" },
        { "{\"type\":\"groupspace\",\"sets\":{\"items\":3,\"sets\":[[0,3]]}}", 422, "sets.sets" },
        { "{\"type\":\"groupspace\",\"sets\":{\"items\":3,\"sets\":[[0,\"1\"]]}}", 400, "sets.sets" },
        { "{\"type\":\"groupspace\",\"sets\":{\"sets\":[[0,1]]}}", 400, "sets.items" },
        { "{\"type\":\"groupspace\",\"sets\":{\"items\":3,\"sets\":[]}}", 422, "sets.sets" },
        { "{\"type\":\"groupspace\",\"sets\":{\"from_analysis\":999999}}", 422, "sets.from_analysis" },
        { "{\"type\":\"groupspace\",\"sets\":{\"toy\":{}},\"near\":1,\"far\":0.5}", 422, "near" },
        { "{\"type\":\"groupspace\",\"sets\":{\"toy\":{}},\"weight\":\"pmi\"}", 422, "weight" },
        { "{\"type\":\"groupspace\",\"sets\":{\"toy\":{}},\"dim\":0}", 422, "dim" },
        { "{\"type\":\"groupspace\",\"sets\":{\"toy\":{\"items\":10000}},\"negatives\":0}", 422, "negatives" },
        { "{\"type\":\"groupspace\",\"sets\":{\"toy\":{}},\"min_jaccard\":0.1}", 400, "min_jaccard" },
        { "{\"type\":\"groupspace\",\"sets\":{\"toy\":{},\"min_jaccard\":0.1}}", 422, "sets.min_jaccard" },
        { "{\"type\":\"groupspace\",\"sets\":{\"toy\":{\"items\":1048574,\"p\":0.1}}}", 422, "sets.toy.p" },
        { "{\"type\":\"groupspace\",\"sets\":{\"toy\":{\"items\":1048574,\"p\":0}},\"snapshots\":200}", 422,
          "snapshots" },
        { "{\"type\":\"groupspace\",\"steps\":10.0,\"sets\":{\"toy\":{\"items\":10.5}}}", 400, "sets.toy.items" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        at_expect_problem(bad[i].body, at_http("POST", "/v1/jobs", bad[i].body), bad[i].status, bad[i].field);
    char *big = malloc(16384);
    size_t n = (size_t)sprintf(big, "{\"type\":\"groupspace\",\"sets\":{\"items\":2000,\"sets\":[[");
    for (int i = 0; i < 1025; i++) n += (size_t)sprintf(big + n, "%s%d", i ? "," : "", i);
    sprintf(big + n, "]]}}");
    at_expect_problem("a set of 1025 items", at_http("POST", "/v1/jobs", big), 422, "sets.sets");
    free(big);
    CHECK(job_count() == before, "no bad body made a job");
    /* a train job has no positions; a queued groupspace job has none yet */
    long long ds = at_post_id("/v1/datasets", "{\"kind\":\"circles\",\"name\":\"e\",\"params\":{\"n_circles\":2,"
                              "\"dim\":4}}", 201);
    json_t *t = run_job(at_fmt("{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"n_latents\":8},"
                               "\"train\":{\"steps\":20,\"batch_size\":32,\"eval_rows\":64}}", ds), "train");
    at_expect_problem("positions of a train job", at_http("GET", at_fmt("/v1/jobs/%lld/positions.npy",
                                                                        at_jint(t, "id")), NULL), 404, NULL);
    at_expect_problem("groups of a train job", at_http("GET", at_fmt("/v1/jobs/%lld/groups", at_jint(t, "id")), NULL),
                      404, NULL);
    json_decref(t);
    long long slow = at_post_id("/v1/jobs", "{\"type\":\"groupspace\",\"sets\":{\"toy\":{\"items\":2000}},"
                                "\"steps\":1000000}", 202);
    json_t *run = at_wait_job(slow, "running", 30);
    at_expect_problem("groups of a running job", at_http("GET", at_fmt("/v1/jobs/%lld/groups", slow), NULL), 409,
                      NULL);
    at_expect_problem("final positions of a running job", at_http("GET", at_fmt("/v1/jobs/%lld/positions.npy", slow),
                                                                  NULL), 409, NULL);
    at_resp c = at_http("POST", at_fmt("/v1/jobs/%lld/cancel", slow), NULL);
    CHECK(c.status == 202, "cancel: %ld", c.status);
    at_resp_free(&c);
    json_t *end = at_wait_job(slow, "cancelled succeeded failed", 30);
    CHECK(end && !strcmp(at_jstr(end, "state"), "cancelled"), "the groupspace job stops when cancelled");
    json_decref(run), json_decref(end);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int up = at_daemon_start(&g_d, "groupspace", NULL);
    CHECK(up, "daemon answers /v1/health");
    if (up) {
        test_errors();
        test_disjoint();
        test_ring();
        test_explicit();
        test_from_analysis();
        test_learned_loop();
        test_groups_errors();
        CHECK(at_daemon_stop(&g_d), "SIGTERM exits 0");
    }
    if (check_failed) at_daemon_show_log(&g_d);
    else at_daemon_cleanup(&g_d);
    curl_global_cleanup();
    return check_report();
}
