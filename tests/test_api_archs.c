/* test_api_archs — every SAE architecture end to end through a real saed.
 *
 * For each of relu, gated, jumprelu, topk, batchtopk and subspace a tiny SAE is trained
 * on a small circles dataset (group_size 2) and on an uploaded .npy dataset
 * (group_size 1, train.normalize_input on, so the exported weights carry a
 * folded input scale). Each job must succeed with a finite fve; a few raw
 * rows go through POST /v1/saes/{id}/encode and numpy recomputes the arch's
 * inference rule from the downloaded sae.safetensors (latents and
 * reconstruction); jumprelu's SAELens "threshold" tensor is checked against
 * log_theta and, at group_size 1, SAELens's rule; an analyze job runs,
 * /groups and /latents answer, and a pca job succeeds. Then the sae
 * validation of each arch (422 naming the field) and the 409 of an SAE
 * whose safetensors file is gone. Nothing asserts on timing. */
#include "check.h"
#include "apitest.h"
#include "npy.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIM 16
#define N_LAT 16
#define N_ENC 6 /* rows encoded per SAE */

static at_daemon g_d;
static char g_work[300]; /* files for numpy */

static const char *const archs[] = { "relu", "gated", "jumprelu", "topk", "batchtopk", "subspace" };

/* numpy: the arch's inference rule from sae.safetensors on x.npy, against enc.json. */
static const char *const py_check =
    "import json, sys, numpy as np\n"
    "arch, s, k, xname = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]\n"
    "b = open('sae.safetensors', 'rb').read()\n"
    "n = int.from_bytes(b[:8], 'little'); h = json.loads(b[8:8 + n])\n"
    "T = {name: np.frombuffer(b[8 + n + e['data_offsets'][0]:8 + n + e['data_offsets'][1]], '<f4')"
    ".reshape(e['shape']) for name, e in h.items() if name != '__metadata__'}\n"
    "x = np.load(xname).astype(np.float64)\n"
    "We, Wd, bd = T['W_enc'], T['W_dec'], T['b_dec']\n"
    "be = T['b_gate'] if arch == 'gated' else T['b_enc']\n"
    "xc = x - bd; lin = xc @ We; pre = lin + be\n"
    "B, nl = pre.shape; G = nl // s\n"
    "a = np.maximum(pre, 0); rho = np.sqrt((a.reshape(B, G, s) ** 2).sum(-1))\n"
    "if arch == 'relu': keep = np.ones((B, G), bool)\n"
    "elif arch == 'gated':\n"
    "    keep = (pre.reshape(B, G, s) > 0).any(-1)\n"
    "    a = np.maximum(np.exp(T['r_mag']) * lin + T['b_mag'], 0)\n"
    "elif arch == 'jumprelu':\n"
    "    r = np.where((pre.reshape(B, G, s) > 0).any(-1), rho, pre.reshape(B, G, s).max(-1))\n"
    "    theta = np.exp(T['log_theta']); keep = r > theta\n"
    "    assert T['threshold'].shape == (nl,), 'SAELens threshold is per latent'\n"
    "    assert np.allclose(T['threshold'], np.repeat(theta, s), rtol=1e-6), 'threshold = exp(log_theta)'\n"
    "    if s == 1:\n"
    "        zl = np.maximum(pre, 0) * (pre > T['threshold'])\n"
    "        assert np.allclose(zl, a * keep, atol=1e-6), 'SAELens jumprelu agrees at group_size 1'\n"
    "elif arch == 'topk':\n"
    "    order = np.argsort(-rho, axis=1, kind='stable')[:, :k]\n"
    "    keep = np.zeros((B, G), bool); np.put_along_axis(keep, order, True, 1)\n"
    "elif arch == 'batchtopk': keep = rho >= T['threshold'][0]\n"
    "elif arch == 'subspace':\n"
    "    a = pre; rho = np.sqrt((pre.reshape(B, G, s) ** 2).sum(-1))\n"
    "    order = np.argsort(-rho, axis=1, kind='stable')[:, :k]\n"
    "    keep = np.zeros((B, G), bool); np.put_along_axis(keep, order, True, 1)\n"
    "    D = Wd.reshape(G, s, -1) * np.linalg.norm(Wd, axis=1).max() ** -1\n"
    "    gram = np.einsum('gik,gjk->gij', D, D)\n"
    "    assert np.abs(gram - np.eye(s)).max() < 1e-4 * max(1, s), 'each group orthonormal (up to the folded scale)'\n"
    "z = (a.reshape(B, G, s) * keep[:, :, None]).reshape(B, nl)\n"
    "xh = z @ Wd + bd\n"
    "r = json.load(open('enc.json'))\n"
    "zs = np.zeros((B, nl))\n"
    "for i, row in enumerate(r['latents']):\n"
    "    for j, v in row: zs[i, j] = v\n"
    "xs = np.array(r['reconstruction'])\n"
    "tol = 1e-4 * (1 + np.abs(xh).max())\n"
    "ez, ex = np.abs(zs - z).max(), np.abs(xs - xh).max()\n"
    "print(f'{arch} s={s}: max |dz| {ez:.2e}, max |dx_hat| {ex:.2e}, l0 {(z != 0).sum(1).mean():.2f}')\n"
    "assert ez < tol and ex < tol, 'encode disagrees with numpy'\n"
    "assert (z != 0).any(), 'some latent fires'\n"
    "assert (z == 0).any(), 'some latent is off, so the rule decided something'\n";

/* Rows 0 .. N_ENC-1 of dataset ds as xname in g_work and as a JSON body. */
static char *encode_body(long long ds, const char *xname)
{
    at_resp r = at_http("GET", at_fmt("/v1/datasets/%lld/rows.npy?offset=0&limit=%d", ds, N_ENC), NULL);
    npy_info info;
    char err[200];
    int ok = r.status == 200 && !npy_parse_header(r.body, r.len, &info, err, sizeof err) && info.ndim == 2 &&
             info.shape[0] == N_ENC && info.shape[1] == DIM && r.len == info.header_len + N_ENC * DIM * 4;
    CHECK(ok, "rows.npy of dataset %lld: status %ld, %zu bytes", ds, r.status, r.len);
    char *body = ok ? malloc(N_ENC * DIM * 32 + 64) : NULL;
    if (body) {
        at_save_body(g_work, xname, &r);
        const float *x = (const float *)(r.body + info.header_len);
        int n = sprintf(body, "{\"rows\":[");
        for (int i = 0; i < N_ENC; i++)
            for (int d = 0; d < DIM; d++)
                n += sprintf(body + n, "%s%.9g%s", d ? "," : (i ? ",[" : "["), x[i * DIM + d], d == DIM - 1 ? "]" : "");
        sprintf(body + n, "]}");
    }
    at_resp_free(&r);
    return body;
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

/* Trains arch on ds; the SAE's id (0 on failure). */
static long long train(const char *arch, long long ds, int s, int normalize, long long *job_out)
{
    char body[800], what[64];
    int topk = !strcmp(arch, "topk") || !strcmp(arch, "batchtopk") || !strcmp(arch, "subspace");
    /* coefficients that make every arch sparse within 400 steps, so its gating rule decides something */
    const char *extra = topk ? ",\"k\":3,\"aux_k_coef\":0.03125,\"aux_k\":2"
                        : !strcmp(arch, "jumprelu") ? ",\"sparsity_coef\":0.05,\"threshold\":0.3,\"bandwidth\":0.002"
                                                    : ",\"sparsity_coef\":0.05";
    snprintf(body, sizeof body,
             "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"%s\",\"n_latents\":%d,\"group_size\":%d"
             "%s},\"train\":{\"steps\":400,\"batch_size\":64,\"lr\":0.003,"
             "\"lr_warmup_steps\":20,\"sparsity_warmup_steps\":50,\"eval_every\":200,\"eval_rows\":256,"
             "\"normalize_input\":%s}}",
             ds, arch, N_LAT, s, extra, normalize ? "true" : "false");
    snprintf(what, sizeof what, "train %s s=%d", arch, s);
    long long job = run_job(body, what);
    json_t *j = at_get_job(job);
    long long sae = j ? at_jint(json_object_get(j, "result"), "sae") : 0;
    json_decref(j);
    CHECK(sae > 0, "%s gave an SAE", what);
    if (job_out) *job_out = job;
    return sae;
}

static void check_fve(long long sae, const char *what)
{
    json_t *o = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld", sae), NULL), 200);
    json_t *fve = json_object_get(json_object_get(o, "metrics"), "fve");
    CHECK(json_is_number(fve) && isfinite(json_number_value(fve)), "%s: finite fve (%s)", what,
          json_is_number(fve) ? "number" : "missing or null");
    if (json_is_number(fve)) printf("%s: fve %.3f\n", what, json_number_value(fve));
    json_decref(o);
}

static void check_encode(long long sae, const char *arch, int s, const char *body, const char *xname)
{
    if (!body) return;
    at_resp r = at_http("POST", at_fmt("/v1/saes/%lld/encode", sae), body);
    CHECK(r.status == 200, "encode %s s=%d: %ld %.300s", arch, s, r.status, r.body);
    at_save_body(g_work, "enc.json", &r);
    at_resp_free(&r);
    at_resp st = at_http("GET", at_fmt("/v1/saes/%lld/sae.safetensors", sae), NULL);
    CHECK(st.status == 200, "sae.safetensors %s: %ld", arch, st.status);
    at_save_body(g_work, "sae.safetensors", &st);
    at_resp_free(&st);
    char script[4200];
    snprintf(script, sizeof script, "import sys\nsys.argv = ['x', '%s', '%d', '3', '%s']\n%s", arch, s, xname, py_check);
    int rc = at_python(g_work, script);
    CHECK(rc == 0, "numpy inference rule for %s s=%d (exit %d; output above)", arch, s, rc);
}

static void check_analyze(long long sae, long long ds, const char *what)
{
    run_job(at_fmt("{\"type\":\"analyze\",\"sae\":%lld,\"dataset\":%lld,\"n_samples\":1000}", sae, ds), what);
    json_t *g = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld/groups?limit=5", sae), NULL), 200);
    json_t *l = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld/latents?limit=5", sae), NULL), 200);
    CHECK(json_array_size(json_object_get(g, "items")) > 0, "%s: /groups lists groups", what);
    CHECK(json_array_size(json_object_get(l, "items")) > 0, "%s: /latents lists latents", what);
    json_decref(g);
    json_decref(l);
    char body[600];
    int n = snprintf(body, sizeof body, "{\"type\":\"pca\",\"sae\":%lld,\"dataset\":%lld,\"rows\":{\"indices\":[", sae, ds);
    for (int i = 0; i < 40; i++) n += snprintf(body + n, sizeof body - n, "%s%d", i ? "," : "", 7 * i);
    snprintf(body + n, sizeof body - n, "]},\"top_latents\":4,\"components\":2}");
    run_job(body, what);
}

static void test_arch(const char *arch, long long circ, long long up, const char *circ_body, const char *up_body)
{
    char what[64];
    long long sae = train(arch, circ, 2, 0, NULL);
    snprintf(what, sizeof what, "%s circles s=2", arch);
    if (sae) {
        check_fve(sae, what);
        check_encode(sae, arch, 2, circ_body, "x_circles.npy");
        check_analyze(sae, circ, what);
    }
    sae = train(arch, up, 1, 1, NULL);
    snprintf(what, sizeof what, "%s npy s=1 normalised", arch);
    if (sae) {
        check_fve(sae, what);
        check_encode(sae, arch, 1, up_body, "x_upload.npy");
        check_analyze(sae, up, what);
    }
}

/* Uploads a 3000 x DIM sparse-sum .npy written by numpy; its dataset id. */
static long long upload_npy(void)
{
    int rc = at_python(g_work, "import numpy as np\n"
                               "g = np.random.default_rng(3); D = g.standard_normal((24, 16))\n"
                               "c = g.random((3000, 24)) * (g.random((3000, 24)) < 0.15)\n"
                               "np.save('acts.npy', (5 * c @ D).astype('<f4'))\n");
    CHECK(rc == 0, "numpy wrote acts.npy");
    FILE *f = fopen(at_fmt("%s/acts.npy", g_work), "rb");
    char *buf = malloc(1 << 20);
    size_t len = f && buf ? fread(buf, 1, 1 << 20, f) : 0;
    if (f) fclose(f);
    json_t *j = at_expect_json(at_http_ex("POST", "/v1/datasets?kind=npy&name=acts", buf, len,
                                          "Content-Type: application/octet-stream", 60), 201);
    free(buf);
    CHECK(at_jint(j, "n_rows") == 3000 && at_jint(j, "dim") == DIM, "uploaded 3000 x %d", DIM);
    long long id = at_jint(j, "id");
    json_decref(j);
    return id;
}

/* openapi's SaeSpec lists every sae field the daemon accepts (additionalProperties is false). */
static void test_openapi(void)
{
    static const char *const fields[] = { "arch", "n_latents", "group_size", "groups", "sparsity_coef", "k", "orth_coef",
                                          "threshold", "bandwidth", "aux_k_coef", "aux_k" };
    json_t *o = at_expect_json(at_http("GET", "/v1/openapi.json", NULL), 200);
    json_t *props = json_object_get(json_object_get(json_object_get(json_object_get(o, "components"), "schemas"),
                                                    "SaeSpec"), "properties");
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        CHECK(json_object_get(props, fields[i]) != NULL, "openapi SaeSpec lists sae.%s", fields[i]);
    CHECK(json_object_size(props) == sizeof fields / sizeof fields[0], "SaeSpec has exactly those %zu fields",
          json_object_size(props));
    json_decref(o);
}

static void test_validation(long long ds)
{
    char b[600];
#define SB(sae) (snprintf(b, sizeof b, "{\"type\":\"train\",\"dataset\":%lld,\"sae\":%s}", ds, sae), b)
    AT_BAD("POST", "/v1/jobs", SB("{\"arch\":\"topk\",\"n_latents\":16}"), 422, "sae.k");
    AT_BAD("POST", "/v1/jobs", SB("{\"arch\":\"batchtopk\",\"n_latents\":16}"), 422, "sae.k");
    AT_BAD("POST", "/v1/jobs", SB("{\"arch\":\"topk\",\"n_latents\":16,\"group_size\":2,\"k\":9}"), 422, "sae.k");
    AT_BAD("POST", "/v1/jobs", SB("{\"arch\":\"batchtopk\",\"n_latents\":16,\"group_size\":1,\"k\":17}"), 422,
           "sae.k");
    AT_BAD("POST", "/v1/jobs", SB("{\"arch\":\"gated\",\"n_latents\":16,\"threshold\":0.1}"), 422, "sae.threshold");
    AT_BAD("POST", "/v1/jobs", SB("{\"arch\":\"subspace\",\"n_latents\":16}"), 422, "sae.k");
    AT_BAD("POST", "/v1/jobs", SB("{\"arch\":\"subspace\",\"n_latents\":16,\"k\":2,\"threshold\":0.5}"), 422,
           "sae.threshold");
    AT_BAD("POST", "/v1/jobs", SB("{\"arch\":\"subspace\",\"n_latents\":16,\"group_size\":2,\"k\":9}"), 422,
           "sae.k");
    AT_BAD("POST", "/v1/jobs", SB("{\"arch\":\"jumprelu\",\"n_latents\":16,\"bandwidth\":0}"), 422, "sae.bandwidth");
    AT_BAD("POST", "/v1/jobs", SB("{\"arch\":\"jumprelu\",\"n_latents\":16,\"bandwidth\":-0.5}"), 422,
           "sae.bandwidth");
    AT_BAD("POST", "/v1/jobs", SB("{\"arch\":\"jumprelu\",\"n_latents\":16,\"bandwith\":0.1}"), 400, "sae.bandwith");
    AT_BAD("POST", "/v1/jobs", SB("{\"arch\":\"relu\",\"n_latents\":16,\"threshold\":0.2,\"bandwidth\":0}"), 422,
           "sae.bandwidth");
    snprintf(b, sizeof b, "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"topk\",\"n_latents\":16,\"k\":2},"
             "\"train\":{\"resample_every\":100}}", ds);
    AT_BAD("POST", "/v1/jobs", b, 422, "train.resample_every");
    snprintf(b, sizeof b, "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"n_latents\":16},"
             "\"train\":{\"resample_every\":-1}}", ds);
    AT_BAD("POST", "/v1/jobs", b, 422, "train.resample_every");
    snprintf(b, sizeof b, "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"subspace\",\"n_latents\":16,"
             "\"k\":2},\"train\":{\"dup_cos\":0.9}}", ds);
    AT_BAD("POST", "/v1/jobs", b, 422, "train.dup_cos"); /* without resample_every */
    snprintf(b, sizeof b, "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"subspace\",\"n_latents\":16,"
             "\"k\":2},\"train\":{\"resample_every\":100,\"dup_cos\":1.5}}", ds);
    AT_BAD("POST", "/v1/jobs", b, 422, "train.dup_cos");
    /* relu with a threshold and no bandwidth: the kernel is threshold / 2 wide */
    json_t *j = at_expect_json(at_http("POST", "/v1/jobs", SB("{\"arch\":\"relu\",\"n_latents\":16,\"threshold\":0.4}")),
                               202);
    json_t *sae = json_object_get(json_object_get(j, "spec"), "sae");
    CHECK(fabs(json_number_value(json_object_get(sae, "bandwidth")) - 0.2) < 1e-6,
          "relu threshold 0.4 without a bandwidth gets 0.2");
    long long id = json_integer_value(json_object_get(j, "id"));
    at_resp r = at_http("POST", at_fmt("/v1/jobs/%lld/cancel", id), NULL);
    at_resp_free(&r);
    json_decref(j);
#undef SB
}

/* An extra-parameter SAE whose sae.safetensors is gone: encode is a 409 saying so, not a 500. */
static void test_missing_extras(long long ds)
{
    long long job = 0, sae = train("batchtopk", ds, 2, 0, &job);
    if (!sae) return;
    const char *path = at_fmt("%s/jobs/%lld/sae/sae.safetensors", g_d.dir, job);
    CHECK(unlink(path) == 0, "removed %s", path);
    at_resp r = at_http("POST", at_fmt("/v1/saes/%lld/encode", sae), "{\"rows\":[[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]]}");
    CHECK(strstr(r.body, "sae.safetensors") != NULL, "the 409 names the missing file: %.300s", r.body);
    at_expect_problem("encode without safetensors", r, 409, NULL);
}

/* numpy: circles of planes.npy held by a group of decoder.npy (groups of 2; both principal-angle
 * cosines >= 0.9), printed and checked against argv[1] as "min" or "max". */
static const char *const py_held =
    "import sys, numpy as np\n"
    "P = np.load('planes.npy').astype(np.float64); W = np.load('decoder.npy').astype(np.float64)\n"
    "Q = [np.linalg.qr(p.T)[0] for p in P]\n"
    "held = set()\n"
    "for g in range(W.shape[0] // 2):\n"
    "    B = np.linalg.qr(W[2 * g:2 * g + 2].T)[0]\n"
    "    for i, q in enumerate(Q):\n"
    "        if np.linalg.svd(B.T @ q, compute_uv=False).min() >= 0.9: held.add(i)\n"
    "print('circles held by a group:', len(held), 'of', len(Q))\n"
    "want, bound = sys.argv[1], int(sys.argv[2])\n"
    "sys.exit(0 if (len(held) >= bound if want == 'min' else len(held) <= bound) else 1)\n";

/* Circles of dataset ds held by SAE sae's groups, checked with numpy: at least (want "min") or at
 * most ("max") bound. */
static void check_held(long long sae, long long ds, const char *want, int bound, const char *what)
{
    at_resp r = at_http("GET", at_fmt("/v1/saes/%lld/decoder.npy", sae), NULL), q = at_http("GET",
                        at_fmt("/v1/datasets/%lld/planes.npy", ds), NULL);
    CHECK(r.status == 200 && q.status == 200, "decoder.npy %ld, planes.npy %ld", r.status, q.status);
    at_save_body(g_work, "decoder.npy", &r);
    at_save_body(g_work, "planes.npy", &q);
    at_resp_free(&r), at_resp_free(&q);
    int rc = at_python(g_work, at_fmt("import sys\nsys.argv = ['x', '%s', '%d']\n%s", want, bound, py_held));
    CHECK(rc == 0, "%s: %s %d circles held by one group (numpy, output above)", what, want, bound);
}

/* Cluster-then-retrain through the API: init.from_sae starts a subspace SAE's groups from the planes
 * a relu SAE's decoder rows cluster into, so before any real training (1 step at lr 1e-7) most of the
 * 8 circles are held by a group, and none without it; the 422s of its rules. */
static void test_init_from_sae(long long ds)
{
    const char *relu = "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"n_latents\":64,"
                       "\"group_size\":1,\"sparsity_coef\":0.3},\"train\":{\"steps\":3000,\"batch_size\":128,"
                       "\"lr\":0.01,\"lr_warmup_steps\":50,\"sparsity_warmup_steps\":300,\"eval_every\":1000,"
                       "\"eval_rows\":256}}";
    long long job = run_job(at_fmt(relu, ds), "relu for the init");
    json_t *j = at_get_job(job);
    long long from = j ? at_jint(json_object_get(j, "result"), "sae") : 0;
    json_decref(j);
    const char *sub = "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"subspace\",\"n_latents\":32,"
                      "\"group_size\":2,\"k\":2},\"train\":{\"steps\":1,\"batch_size\":64,\"lr\":1e-7,"
                      "\"eval_every\":1,\"eval_rows\":256}%s}";
    long long with = 0, without = 0;
    j = (job = run_job(at_fmt(sub, ds, at_fmt(",\"init\":{\"from_sae\":%lld}", from)), "subspace from it")) ?
            at_get_job(job) : NULL;
    with = j ? at_jint(json_object_get(j, "result"), "sae") : 0;
    CHECK(j && at_jint(json_object_get(json_object_get(j, "spec"), "init"), "from_sae") == from,
          "the stored spec keeps init.from_sae");
    json_decref(j);
    j = (job = run_job(at_fmt(sub, ds, ""), "subspace at random")) ? at_get_job(job) : NULL;
    without = j ? at_jint(json_object_get(j, "result"), "sae") : 0;
    CHECK(j && !json_object_get(json_object_get(j, "spec"), "init"), "no init in a spec without one");
    json_decref(j);
    check_held(with, ds, "min", 6, "started from the relu SAE's planes");
    check_held(without, ds, "max", 1, "started at random");
    AT_BAD("POST", "/v1/jobs", at_fmt(sub, ds, ",\"init\":{\"from_sae\":999999}"), 422, "init.from_sae");
    AT_BAD("POST", "/v1/jobs", at_fmt(sub, ds, ",\"init\":{}"), 400, "init.from_sae");
    AT_BAD("POST", "/v1/jobs", at_fmt(sub, ds, ",\"init\":{\"from_sae\":1,\"from\":2}"), 400, "init.from");
    AT_BAD("POST", "/v1/jobs", at_fmt("{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\","
                                       "\"n_latents\":16},\"init\":{\"from_sae\":%lld}}", ds, from),
           422, "init.from_sae");
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int up = at_daemon_start(&g_d, "archs", NULL);
    CHECK(up, "daemon answers /v1/health");
    if (!up) {
        at_daemon_show_log(&g_d);
        return check_report();
    }
    snprintf(g_work, sizeof g_work, "%s/work", g_d.dir);
    mkdir(g_work, 0755);
    long long circ = at_post_id("/v1/datasets", "{\"kind\":\"circles\",\"name\":\"small\",\"params\":{\"n_circles\":8,"
                                "\"dim\":16,\"p_active\":0.15,\"radius\":[1,1],\"seed\":5}}", 201);
    long long npy = upload_npy();
    char *circ_body = encode_body(circ, "x_circles.npy"), *up_body = encode_body(npy, "x_upload.npy");
    test_openapi();
    test_validation(circ);
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        test_arch(archs[i], circ, npy, circ_body, up_body);
    test_missing_extras(circ);
    test_init_from_sae(circ);
    free(circ_body);
    free(up_body);
    CHECK(at_daemon_stop(&g_d), "SIGTERM exits 0");
    if (check_failed) {
        at_daemon_show_log(&g_d);
        fprintf(stderr, "test_api_archs: data left in %s\n", g_d.dir);
    } else {
        at_daemon_cleanup(&g_d);
    }
    curl_global_cleanup();
    return check_report();
}
