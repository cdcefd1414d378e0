/* test_resume — resume proved end to end, and the SAELens export.
 *
 * One daemon, run with --blas-threads 2 throughout (the trainer's pool
 * splits its work, products included, by its thread count, which fixes the
 * float rounding; with the same count every run does the same arithmetic) and
 * --log-level info (so "resumed from step N" is in its log). On a circles
 * dataset of small rows (normalize_input scales them up about 8x):
 *  A  one train job, uninterrupted;
 *  B  the same spec (same seed): kill -9 after its first checkpoint once the
 *     job has passed it, restart on the same data dir, B resumes and ends;
 *  C  the same spec: SIGTERM mid-run (exit status 0), restart, C resumes.
 * B's and C's decoder.npy, encoder.npy, b_enc.npy, b_dec.npy and
 * sae.safetensors must equal A's byte for byte, and their final metrics
 * exactly. Then /usr/bin/python3 reads A's sae.safetensors with a small
 * pure-Python reader (json + numpy.frombuffer), checks it against the .npy
 * files and cfg.json, checks the scale is folded in (decoder norms 1/s,
 * reconstructions of raw dataset rows, the encode endpoint agreeing, mse in
 * raw units). */
#include "check.h"
#include "apitest.h"
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define STEPS 600
#define CKPT_EVERY 100

static const char *train_body(long long ds)
{
    return at_fmt("{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"n_latents\":64,\"group_size\":2,"
                  "\"sparsity_coef\":0.02},\"train\":{\"steps\":%d,\"batch_size\":1024,\"lr\":0.003,"
                  "\"lr_warmup_steps\":50,\"sparsity_warmup_steps\":100,\"seed\":11,\"checkpoint_every\":%d,"
                  "\"eval_every\":25,\"eval_rows\":512,\"dead_window\":200,\"normalize_input\":true}}",
                  ds, STEPS, CKPT_EVERY);
}

/* ---- reading the daemon's files ---- */

static const char *ckpt_path(const at_daemon *d, long long job)
{
    return at_fmt("%s/jobs/%lld/checkpoint.bin", d->dir, job);
}

/* The step a checkpoint holds (core/train_ckpt.c layout: magic 8, u32
 * version, u32 n_fields, n_fields u64, then u64 step); -1 if unreadable. */
static long long ckpt_step(const char *path)
{
    unsigned char b[512];
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = fread(b, 1, sizeof b, f);
    fclose(f);
    if (n < 16 || memcmp(b, "SAEDCKPT", 8)) return -1;
    uint32_t nf = (uint32_t)b[12] | (uint32_t)b[13] << 8 | (uint32_t)b[14] << 16 | (uint32_t)b[15] << 24;
    size_t off = 16 + 8 * (size_t)nf;
    if (off + 8 > n) return -1;
    long long step = 0;
    for (int i = 7; i >= 0; i--) step = step << 8 | b[off + (size_t)i];
    return step;
}

/* The last metric step of a job (metrics are written at every evaluation, unthrottled); -1 on error. */
static long long last_metric_step(long long job)
{
    at_resp r = at_http("GET", at_fmt("/v1/jobs/%lld/metrics", job), NULL);
    json_t *m = r.status == 200 ? at_resp_json(&r) : NULL;
    json_t *steps = json_object_get(m, "step");
    size_t n = json_array_size(steps);
    long long last = n ? json_integer_value(json_array_get(steps, n - 1)) : -1;
    json_decref(m);
    at_resp_free(&r);
    return last;
}

/* Waits for the job's first checkpoint and for training to run past it. The checkpoint's step, or -1. */
static long long wait_past_checkpoint(const at_daemon *d, long long job)
{
    long long k = -1;
    for (double t0 = at_now_s(); at_now_s() - t0 < 120; at_sleep_ms(2)) {
        if (k < 0) k = ckpt_step(ckpt_path(d, job));
        if (k > 0 && last_metric_step(job) > k) return k;
        json_t *j = k > 0 ? NULL : at_get_job(job);
        int over = j && strcmp(at_jstr(j, "state"), "queued") && strcmp(at_jstr(j, "state"), "running");
        json_decref(j);
        if (over) break;
    }
    return -1;
}

/* How many times the log says job `job` resumed. */
static int log_resumes(const at_daemon *d, long long job)
{
    FILE *f = fopen(at_fmt("%s/saed.log", d->dir), "r");
    char line[1200], *want = strdup(at_fmt("job %lld: resumed from step ", job));
    int n = 0;
    while (f && fgets(line, sizeof line, f)) n += strstr(line, want) != NULL;
    if (f) fclose(f);
    free(want);
    return n;
}

static long long wait_sae(long long job)
{
    json_t *j = at_wait_job(job, "succeeded failed cancelled", 180);
    CHECK(j && !strcmp(at_jstr(j, "state"), "succeeded"), "job %lld succeeded (%s: %s)", job,
          j ? at_jstr(j, "state") : "timeout", j ? at_jstr(j, "error") : "");
    long long sae = j ? at_jint(json_object_get(j, "result"), "sae") : 0;
    json_decref(j);
    return sae;
}

/* ---- comparing two SAEs ---- */

static const char *const files[] = { "decoder.npy", "encoder.npy", "b_enc.npy", "b_dec.npy", "sae.safetensors" };

static void compare_saes(const char *what, long long a, long long b)
{
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        at_resp ra = at_http("GET", at_fmt("/v1/saes/%lld/%s", a, files[i]), NULL);
        at_resp rb = at_http("GET", at_fmt("/v1/saes/%lld/%s", b, files[i]), NULL);
        size_t diff = 0;
        for (size_t k = 0; ra.len == rb.len && k < ra.len; k++) diff += ra.body[k] != rb.body[k];
        CHECK(ra.status == 200 && rb.status == 200 && ra.len == rb.len && ra.len > 0 && diff == 0,
              "%s: %s bitwise equal to the uninterrupted run's (%ld/%ld, %zu/%zu bytes, %zu differ)", what, files[i],
              ra.status, rb.status, ra.len, rb.len, diff);
        at_resp_free(&ra);
        at_resp_free(&rb);
    }
    json_t *sa = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld", a), NULL), 200);
    json_t *sb = at_expect_json(at_http("GET", at_fmt("/v1/saes/%lld", b), NULL), 200);
    CHECK(json_equal(json_object_get(sa, "metrics"), json_object_get(sb, "metrics")), "%s: final metrics equal",
          what);
    json_decref(sa);
    json_decref(sb);
}

/* ---- the interruptions ---- */

static void test_kill9(at_daemon *d, long long ds, long long sae_a)
{
    long long job = at_post_id("/v1/jobs", train_body(ds), 202);
    long long k = wait_past_checkpoint(d, job);
    CHECK(k >= CKPT_EVERY, "kill -9: the job wrote a checkpoint (step %lld) and ran past it", k);
    kill(d->pid, SIGKILL);
    int st;
    waitpid(d->pid, &st, 0);
    d->pid = 0;
    long long k_now = ckpt_step(ckpt_path(d, job));
    printf("kill -9 after the checkpoint at step %lld (checkpoint on disk: step %lld)\n", k, k_now);
    CHECK(k_now >= k, "the job had not finished when killed (its checkpoint is still there)");
    CHECK(at_daemon_restart(d), "daemon restarts on the same data dir");
    long long sae_b = wait_sae(job);
    CHECK(log_resumes(d, job) == 1, "job %lld resumed from its checkpoint once (log)", job);
    CHECK(access(ckpt_path(d, job), F_OK) != 0, "the checkpoint is removed once the job succeeds");
    if (sae_b) compare_saes("kill -9", sae_a, sae_b);
}

static void test_sigterm(at_daemon *d, long long ds, long long sae_a)
{
    long long job = at_post_id("/v1/jobs", train_body(ds), 202);
    long long k = wait_past_checkpoint(d, job);
    CHECK(k >= CKPT_EVERY, "SIGTERM: the job wrote a checkpoint (step %lld) and ran past it", k);
    CHECK(at_daemon_stop(d), "SIGTERM: the daemon exits with status 0");
    long long k_now = ckpt_step(ckpt_path(d, job));
    printf("SIGTERM after the checkpoint at step %lld; shutdown checkpoint at step %lld\n", k, k_now);
    CHECK(k_now > k && k_now < STEPS, "SIGTERM wrote a checkpoint mid-run (step %lld)", k_now);
    CHECK(at_daemon_restart(d), "daemon restarts after SIGTERM");
    json_t *j = at_get_job(job);
    CHECK(j && (!strcmp(at_jstr(j, "state"), "queued") || !strcmp(at_jstr(j, "state"), "running") ||
                !strcmp(at_jstr(j, "state"), "succeeded")), "SIGTERM requeued the job (%s)",
          j ? at_jstr(j, "state") : "missing");
    json_decref(j);
    long long sae_c = wait_sae(job);
    CHECK(log_resumes(d, job) == 1, "job %lld resumed once (log)", job);
    if (sae_c) compare_saes("SIGTERM", sae_a, sae_c);
}

/* ---- the export, read by Python ---- */

static const char export_script[] =
    "import json, struct, sys, urllib.request\n"
    "import numpy as np\n"
    "def read_safetensors(path):\n"
    "    b = open(path, 'rb').read()\n"
    "    n = struct.unpack('<Q', b[:8])[0]\n"
    "    header = json.loads(b[8:8 + n].decode('utf-8'))\n"
    "    base = 8 + n\n"
    "    meta = header.pop('__metadata__', None)\n"
    "    out, spans = {}, []\n"
    "    for name, v in header.items():\n"
    "        assert v['dtype'] == 'F32', v\n"
    "        s, e = v['data_offsets']\n"
    "        out[name] = np.frombuffer(b[base + s:base + e], dtype='<f4').reshape(v['shape'])\n"
    "        spans.append((s, e))\n"
    "    spans.sort()\n"
    "    tiled = spans[0][0] == 0 and spans[-1][1] == len(b) - base and \\\n"
    "        all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))\n"
    "    return out, meta, base, tiled\n"
    "fails = 0\n"
    "def c(name, ok, info=''):\n"
    "    global fails\n"
    "    print(name, 'ok' if ok else 'FAIL ' + str(info))\n"
    "    fails += not ok\n"
    "t, meta, base, tiled = read_safetensors('A.safetensors')\n"
    "c('names', sorted(t) == ['W_dec', 'W_enc', 'b_dec', 'b_enc'], sorted(t))\n"
    "c('layout', base % 8 == 0 and tiled and meta == {'format': 'pt'}, (base, tiled, meta))\n"
    "c('shapes', t['W_enc'].shape == (16, 64) and t['W_dec'].shape == (64, 16) and t['b_enc'].shape == (64,)\n"
    "  and t['b_dec'].shape == (16,), {k: v.shape for k, v in t.items()})\n"
    "for name, f in [('W_dec', 'decoder'), ('W_enc', 'encoder'), ('b_enc', 'b_enc'), ('b_dec', 'b_dec')]:\n"
    "    a = np.load('A.%s.npy' % f)\n"
    "    c(name + '_equals_npy', a.dtype == np.float32 and np.array_equal(a, t[name]))\n"
    "cfg = json.load(open('A.cfg.json'))\n"
    "want = {'d_in': 16, 'd_sae': 64, 'architecture': 'standard', 'dtype': 'float32', 'device': 'cpu',\n"
    "        'apply_b_dec_to_input': True, 'normalize_activations': 'none', 'group_size': 2, 'k': None,\n"
    "        'normalize_input': True, 'saed_arch': 'relu', 'threshold': 0.0}\n"
    "c('cfg_keys', all(cfg.get(k, 'absent') == v for k, v in want.items()),\n"
    "  {k: cfg.get(k, 'absent') for k in want})\n"
    "s = cfg['input_scale']\n"
    "c('scale', 3 < s < 30, s)\n"
    "norms = np.linalg.norm(t['W_dec'], axis=1)\n"
    "c('decoder_norms_1_over_s', np.allclose(norms, 1 / s, rtol=1e-3), (norms[:3], 1 / s))\n"
    "x = np.load('rows.npy')\n"
    "z = np.maximum((x - t['b_dec']) @ t['W_enc'] + t['b_enc'], 0)\n"
    "xh = z @ t['W_dec'] + t['b_dec']\n"
    "mse = float(np.mean(np.sum((xh - x) ** 2, axis=1)))\n"
    "fve = 1 - np.sum((xh - x) ** 2) / np.sum((x - x.mean(0)) ** 2)\n"
    "sae = json.load(open('A.sae.json'))['metrics']\n"
    "c('fve_raw_rows', fve > 0.3 and abs(fve - sae['fve']) < 0.15, (fve, sae['fve']))\n"
    "c('mse_raw_units', 0.6 < mse / sae['mse'] < 1.6, (mse, sae['mse'], 'scaled units would be x%g' % (s * s)))\n"
    "print('input_scale %.4g; rows 0..399 through the exported SAE: fve %.4f (metrics %.4f), mse %.4g (metrics %.4g)'\n"
    "      % (s, fve, sae['fve'], mse, sae['mse']))\n"
    "req = json.dumps({'rows': x[:8].tolist()}).encode()\n"
    "r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=req,\n"
    "    headers={'Content-Type': 'application/json'}))\n"
    "enc = json.loads(r.read())\n"
    "rec = np.array(enc['reconstruction'], dtype=np.float64)\n"
    "c('encode_endpoint', np.allclose(rec, xh[:8], rtol=1e-4, atol=1e-6), np.abs(rec - xh[:8]).max())\n"
    "zs = np.zeros((8, 64))\n"
    "for i, row in enumerate(enc['latents']):\n"
    "    for j, v in row:\n"
    "        zs[i, j] = v\n"
    "c('encode_latents', np.allclose(zs, z[:8], rtol=1e-4, atol=1e-6), np.abs(zs - z[:8]).max())\n"
    "sys.exit(1 if fails else 0)\n";

static void fetch(const char *dir, const char *path, const char *name)
{
    at_resp r = at_http("GET", path, NULL);
    CHECK(r.status == 200 && at_save_body(dir, name, &r) == 0, "GET %s -> %ld", path, r.status);
    at_resp_free(&r);
}

static void test_export(const at_daemon *d, long long ds, long long sae)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/export", d->dir);
    mkdir(dir, 0755);
    fetch(dir, at_fmt("/v1/saes/%lld/sae.safetensors", sae), "A.safetensors");
    fetch(dir, at_fmt("/v1/saes/%lld", sae), "A.sae.json");
    static const char *const npy[] = { "decoder", "encoder", "b_enc", "b_dec" };
    for (int i = 0; i < 4; i++) fetch(dir, at_fmt("/v1/saes/%lld/%s.npy", sae, npy[i]), at_fmt("A.%s.npy", npy[i]));
    fetch(dir, at_fmt("/v1/datasets/%lld/rows.npy?offset=0&limit=400", ds), "rows.npy");
    at_resp r = at_http("GET", at_fmt("/v1/saes/%lld/cfg.json", sae), NULL);
    CHECK(r.status == 200 && !strncmp(r.ctype, "application/json", 16), "cfg.json -> %ld %s", r.status, r.ctype);
    CHECK(at_save_body(dir, "A.cfg.json", &r) == 0, "cfg.json saved");
    at_resp_free(&r);
    r = at_http("GET", at_fmt("/v1/saes/%lld/sae.safetensors", sae), NULL);
    CHECK(!strncmp(r.ctype, "application/octet-stream", 24), "safetensors content type %s", r.ctype);
    at_resp_free(&r);
    at_expect_problem("unknown SAE", at_http("GET", "/v1/saes/999999/sae.safetensors", NULL), 404, NULL);
    at_expect_problem("unknown SAE", at_http("GET", "/v1/saes/999999/cfg.json", NULL), 404, NULL);
    char script[sizeof export_script + 400];
    snprintf(script, sizeof script, "import sys; sys.argv = ['x', 'http://127.0.0.1:%d/v1/saes/%lld/encode']\n%s",
             d->port, sae, export_script);
    CHECK(at_python(dir, script) == 0, "python reads sae.safetensors and cfg.json and agrees with saed");
}

/* train.normalize_input: a boolean, echoed in the normalised spec. */
static void test_spec(long long ds, long long job_a)
{
    const char *base = "{\"type\":\"train\",\"dataset\":%lld,\"sae\":{\"arch\":\"relu\",\"n_latents\":64},"
                       "\"train\":{\"%s\":%s}}";
    AT_BAD("POST", "/v1/jobs", at_fmt(base, ds, "normalize_input", "1"), 400, "train.normalize_input");
    AT_BAD("POST", "/v1/jobs", at_fmt(base, ds, "normalize_input", "\"yes\""), 400, "train.normalize_input");
    AT_BAD("POST", "/v1/jobs", at_fmt(base, ds, "normalise_input", "true"), 400, "train.normalise_input");
    json_t *j = at_get_job(job_a);
    json_t *tr = json_object_get(json_object_get(j, "spec"), "train");
    CHECK(json_is_true(json_object_get(tr, "normalize_input")), "the stored spec says normalize_input true");
    json_decref(j);
}

int main(void)
{
    static const char *const flags[] = { "--blas-threads", "2", "--log-level", "info", NULL };
    at_daemon d;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int up = at_daemon_start(&d, "resume", flags);
    CHECK(up, "daemon answers /v1/health");
    if (!up) {
        at_daemon_show_log(&d);
        return check_report();
    }
    long long ds = at_post_id("/v1/datasets", "{\"kind\":\"circles\",\"name\":\"small\",\"params\":{\"n_circles\":24,"
                              "\"dim\":16,\"p_active\":0.1,\"radius\":[0.2,0.5],\"seed\":5}}", 201);
    double t0 = at_now_s();
    long long job_a = at_post_id("/v1/jobs", train_body(ds), 202);
    long long sae_a = wait_sae(job_a);
    printf("uninterrupted run: %.1f s\n", at_now_s() - t0);
    test_spec(ds, job_a);
    if (sae_a) {
        test_export(&d, ds, sae_a);
        test_kill9(&d, ds, sae_a);
        test_sigterm(&d, ds, sae_a);
    }
    CHECK(at_daemon_stop(&d), "final SIGTERM exits 0");
    if (check_failed) {
        at_daemon_show_log(&d);
        fprintf(stderr, "test_resume: data left in %s\n", d.dir);
    } else {
        at_daemon_cleanup(&d);
    }
    curl_global_cleanup();
    return check_report();
}
