/* test_api_saelens — GET /v1/saes/{id}/saelens.tar and POST /v1/saes (a tar)
 * through a real saed, without SAELens itself (tests/saelens.sh runs the
 * real package).
 *
 * Round trip: tiny relu and jumprelu SAEs (group_size 1) are trained; their
 * saelens.tar holds cfg.json (architecture, d_in, d_sae, metadata.saed) and
 * sae_weights.safetensors; posting it back imports an SAE with job null that
 * encodes the same rows to the same bytes, exports the same weights again,
 * and runs an analyze job, after which its tar also holds
 * sparsity.safetensors. Refusals, each a problem+json that creates nothing
 * (the SAE list, data_dir/saes and the staging directories are checked at
 * the end): a group SAE's export (422), a JSON body (415), bytes that are
 * not a tar, a truncated tar, '..' and absolute paths, links, a folder
 * without weights, two folders, an unknown architecture, a tensor the
 * architecture does not have, a shape that disagrees with cfg.json, a
 * non-float32 dtype (422 naming body), an unknown or mismatched dataset
 * (422 naming dataset) and an unknown query parameter (400). */
#include "check.h"
#include "apitest.h"
#include "tar.h"
#include "tartest.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAR_CT "Content-Type: application/x-tar"

static at_daemon g_d;

typedef struct {
    char *cfg, *weights; /* malloc'd copies of the two files */
    size_t cfg_len, weights_len;
    int has_sparsity;
} folder;

static void folder_free(folder *f)
{
    free(f->cfg);
    free(f->weights);
    memset(f, 0, sizeof *f);
}

static char *dup_bytes(const void *p, size_t n)
{
    char *c = malloc(n + 1);
    if (c) {
        memcpy(c, p, n);
        c[n] = '\0';
    }
    return c;
}

/* GET saelens.tar of sae into f; 1 when it is a tar with both files. */
static int fetch_folder(long long sae, folder *f)
{
    at_resp r = at_http("GET", at_fmt("/v1/saes/%lld/saelens.tar", sae), NULL);
    tar_reader tr;
    tar_entry e;
    char err[256];
    memset(f, 0, sizeof *f);
    CHECK(r.status == 200 && !strcmp(r.ctype, "application/x-tar"), "saelens.tar of %lld: %ld %s", sae, r.status,
          r.ctype);
    tar_reader_init(&tr, r.body, r.len);
    int rc;
    while ((rc = tar_next(&tr, &e, err, sizeof err)) == 1) {
        if (!strcmp(e.path, "cfg.json")) f->cfg = dup_bytes(e.data, e.size), f->cfg_len = e.size;
        if (!strcmp(e.path, "sae_weights.safetensors")) f->weights = dup_bytes(e.data, e.size), f->weights_len = e.size;
        f->has_sparsity |= !strcmp(e.path, "sparsity.safetensors");
    }
    CHECK(rc == 0, "saelens.tar reads back: %s", rc ? err : "");
    at_resp_free(&r);
    return f->cfg && f->weights;
}

/* POST the tar of files f[0..n) to /v1/saes[query]. */
static at_resp post_tar(const tar_file *f, int n, const char *query)
{
    size_t len = tar_archive_size(f, n);
    unsigned char *buf = malloc(len);
    if (!buf || tar_write(f, n, 0, buf, len)) {
        free(buf);
        return (at_resp){ 0 };
    }
    at_resp r = at_http_ex("POST", at_fmt("/v1/saes%s", query), (const char *)buf, len, TAR_CT, 60);
    free(buf);
    return r;
}

static at_resp post_folder(const folder *f, const char *cfg, const char *query)
{
    tar_file t[2] = { { "cfg.json", cfg ? cfg : f->cfg, cfg ? strlen(cfg) : f->cfg_len },
                      { "sae_weights.safetensors", f->weights, f->weights_len } };
    return post_tar(t, 2, query);
}

static long long train(long long ds, const char *sae)
{
    long long id = at_post_id("/v1/jobs", at_fmt("{\"type\":\"train\",\"dataset\":%lld,\"sae\":%s,\"train\":{\"steps\":"
                                                 "150,\"batch_size\":64,\"normalize_input\":true}}", ds, sae), 202);
    json_t *j = id ? at_wait_job(id, "succeeded failed cancelled", 120) : NULL;
    long long s = j ? at_jint(json_object_get(j, "result"), "sae") : 0;
    CHECK(s > 0, "train %s: %s", sae, j ? at_jstr(j, "error") : "timeout");
    json_decref(j);
    return s;
}

static const char *const rows =
    "{\"rows\":[[0.5,-1,2,0,0.25,1,-0.5,3],[1,1,1,1,1,1,1,1],[-2,0.5,0,1.5,0,-1,2,0.75]]}";

static char *encode_text(long long sae)
{
    at_resp r = at_http("POST", at_fmt("/v1/saes/%lld/encode", sae), rows);
    CHECK(r.status == 200, "encode %lld: %ld %.200s", sae, r.status, r.body);
    char *t = dup_bytes(r.body, r.len);
    at_resp_free(&r);
    return t;
}

/* Export, import, the same encodings and weights; returns the imported SAE. */
static long long roundtrip(long long sae, const char *arch, const char *saelens_arch)
{
    folder f, g;
    if (!fetch_folder(sae, &f)) return 0;
    json_t *cfg = json_loadb(f.cfg, f.cfg_len, 0, NULL);
    json_t *meta = json_object_get(cfg, "metadata");
    CHECK(!strcmp(at_jstr(cfg, "architecture"), saelens_arch) && at_jint(cfg, "d_in") == 8 &&
          at_jint(cfg, "d_sae") == 16 && !strcmp(at_jstr(cfg, "normalize_activations"), "none") &&
          at_jint(json_object_get(meta, "saed"), "sae") == sae && !strcmp(at_jstr(meta, "model_name"), "unknown"),
          "%s cfg.json: %.400s", arch, f.cfg);
    json_decref(cfg);
    json_t *o = at_expect_json(post_folder(&f, NULL, ""), 201);
    long long id = at_jint(o, "id");
    json_t *c = json_object_get(o, "config");
    CHECK(json_is_null(json_object_get(o, "job")) && json_is_null(json_object_get(o, "dataset")) &&
          !strcmp(at_jstr(c, "arch"), arch) && at_jint(c, "group_size") == 1 &&
          !strcmp(at_jstr(json_object_get(c, "saelens"), "architecture"), saelens_arch),
          "%s imported: %s", arch, json_dumps(o, JSON_COMPACT));
    json_decref(o);
    char *a = encode_text(sae), *b = encode_text(id);
    CHECK(a && b && !strcmp(a, b), "%s: the imported SAE encodes to the same bytes:\n%s\n%s", arch, a, b);
    free(a), free(b);
    if (fetch_folder(id, &g))
        CHECK(g.weights_len == f.weights_len && !memcmp(g.weights, f.weights, f.weights_len),
              "%s: exporting the import gives the same sae_weights.safetensors", arch);
    folder_free(&f), folder_free(&g);
    return id;
}

/* A tar whose one header is crafted: name and type (size 0). */
static at_resp post_crafted(const char *name, char type)
{
    unsigned char b[512 * 3] = { 0 };
    tartest_header(b, name, type, 0);
    return at_http_ex("POST", "/v1/saes", (const char *)b, sizeof b, TAR_CT, 30);
}

/* cfg.json of f with key set to the JSON value v (malloc'd). */
static char *cfg_with(const folder *f, const char *key, const char *v)
{
    json_t *c = json_loadb(f->cfg, f->cfg_len, 0, NULL);
    json_object_set_new(c, key, json_loads(v, JSON_DECODE_ANY, NULL));
    char *t = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return t;
}

static void refusals(long long relu, long long jump, long long group, long long ds16)
{
    folder f, j;
    if (!fetch_folder(relu, &f) || !fetch_folder(jump, &j)) return;
    AT_BAD("GET", at_fmt("/v1/saes/%lld/saelens.tar", group), NULL, 422, NULL);
    AT_BAD("POST", "/v1/saes", "{\"sae\":1}", 415, NULL);
    at_expect_problem("not a tar", at_http_ex("POST", "/v1/saes", "hello, not a tar", 16, TAR_CT, 30), 422, "body");
    tar_file one[1] = { { "cfg.json", f.cfg, f.cfg_len } };
    at_expect_problem("no weights", post_tar(one, 1, ""), 422, "body");
    tar_file two[4] = { { "a/cfg.json", f.cfg, f.cfg_len }, { "a/sae_weights.safetensors", f.weights, f.weights_len },
                        { "b/cfg.json", f.cfg, f.cfg_len }, { "b/sae_weights.safetensors", f.weights, f.weights_len } };
    at_expect_problem("two folders", post_tar(two, 4, ""), 422, "body");
    at_expect_problem("'..'", post_crafted("../cfg.json", '0'), 422, "body");
    at_expect_problem("absolute", post_crafted("/etc/cfg.json", '0'), 422, "body");
    at_expect_problem("symlink", post_crafted("cfg.json", '2'), 422, "body");
    size_t len = tar_archive_size(two, 2);
    unsigned char *buf = malloc(len);
    if (buf && !tar_write(two, 2, 0, buf, len))
        at_expect_problem("truncated", at_http_ex("POST", "/v1/saes", (const char *)buf, len - 1024 - 700, TAR_CT, 30),
                          422, "body");
    free(buf);
    const struct { const char *key, *value, *what; } bad[] = {
        { "architecture", "\"matryoshka_batchtopk\"", "unknown architecture" },
        { "architecture", "\"topk\"", "topk without k" },
        { "d_in", "9", "d_in disagreeing with W_enc" },
        { "dtype", "\"bfloat16\"", "bfloat16" },
        { "normalize_activations", "\"layer_norm\"", "layer_norm" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *cfg = cfg_with(&f, bad[i].key, bad[i].value);
        at_expect_problem(bad[i].what, post_folder(&f, cfg, ""), 422, "body");
        free(cfg);
    }
    char *std_cfg = cfg_with(&j, "architecture", "\"standard\"");
    at_expect_problem("jumprelu's threshold under standard", post_folder(&j, std_cfg, ""), 422, "body");
    free(std_cfg);
    at_expect_problem("unknown dataset", post_folder(&f, NULL, "?dataset=999"), 422, "dataset");
    at_expect_problem("dataset of another dim", post_folder(&f, NULL, at_fmt("?dataset=%lld", ds16)), 422, "dataset");
    at_expect_problem("unknown query parameter", post_folder(&f, NULL, "?name=x"), 400, NULL);
    folder_free(&f), folder_free(&j);
}

/* Entries of dir whose name starts with prefix. */
static int count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += !strncmp(e->d_name, prefix, strlen(prefix));
    if (d) closedir(d);
    return n;
}

static void imported_analysis(long long id, long long ds)
{
    long long job = at_post_id("/v1/jobs", at_fmt("{\"type\":\"analyze\",\"sae\":%lld,\"dataset\":%lld,\"n_samples\":"
                                                  "500}", id, ds), 202);
    json_t *j = job ? at_wait_job(job, "succeeded failed cancelled", 120) : NULL;
    CHECK(j && !strcmp(at_jstr(j, "state"), "succeeded"), "analyze an imported SAE: %s", j ? at_jstr(j, "error") : "");
    json_decref(j);
    folder f;
    if (fetch_folder(id, &f)) CHECK(f.has_sparsity, "an analysed SAE's tar holds sparsity.safetensors");
    folder_free(&f);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int up = at_daemon_start(&g_d, "saelens", NULL);
    CHECK(up, "daemon answers /v1/health");
    if (!up) {
        at_daemon_show_log(&g_d);
        return check_report();
    }
    long long ds = at_post_id("/v1/datasets", "{\"kind\":\"circles\",\"name\":\"c\",\"params\":{\"n_circles\":4,"
                              "\"dim\":8,\"p_active\":0.3,\"seed\":2}}", 201);
    long long ds16 = at_post_id("/v1/datasets", "{\"kind\":\"circles\",\"name\":\"c16\",\"params\":{\"n_circles\":4,"
                                "\"dim\":16,\"seed\":2}}", 201);
    long long relu = train(ds, "{\"arch\":\"relu\",\"n_latents\":16,\"group_size\":1}");
    long long jump = train(ds, "{\"arch\":\"jumprelu\",\"n_latents\":16,\"group_size\":1,\"threshold\":0.05}");
    long long group = train(ds, "{\"arch\":\"relu\",\"n_latents\":16,\"group_size\":2}");
    long long imp = relu ? roundtrip(relu, "relu", "standard") : 0;
    if (jump) roundtrip(jump, "jumprelu", "jumprelu");
    if (imp) imported_analysis(imp, ds);
    if (relu && jump && group) refusals(relu, jump, group, ds16);
    json_t *list = at_expect_json(at_http("GET", "/v1/saes", NULL), 200);
    CHECK(json_array_size(json_object_get(list, "items")) == 5, "3 trained + 2 imported SAEs, nothing from the refusals");
    json_decref(list);
    CHECK(count_entries(at_fmt("%s/saes", g_d.dir), "import-") == 2, "two import directories, none left by refusals");
    CHECK(count_entries(at_fmt("%s/datasets", g_d.dir), ".staging-") == 0, "no staging directory left");
    CHECK(at_daemon_stop(&g_d), "SIGTERM exits 0");
    if (check_failed) {
        at_daemon_show_log(&g_d);
        fprintf(stderr, "test_api_saelens: data left in %s\n", g_d.dir);
    } else {
        at_daemon_cleanup(&g_d);
    }
    curl_global_cleanup();
    return check_report();
}
