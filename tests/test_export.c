/* test_export — input normalisation and the exported forms of an SAE.
 *
 *  - sae_tensors: the named tensors tile the params buffer for every arch;
 *  - sae_fold_input_scale: encode(raw) through the folded SAE equals
 *    encode(s * raw) through the unfolded one, and x_hat folded = x_hat / s,
 *    for every arch sae_config_check admits (so new archs are covered when
 *    they land), with and without a group threshold;
 *  - safetensors_header: parsed back with jansson (offsets, shapes, padding,
 *    the u64 length), bad names refused;
 *  - train.normalize_input: the scale estimate, its failures and checks,
 *    metrics (mse in raw units, checked against the folded SAE on raw rows),
 *    and resume bit for bit with the scale in the checkpoint. */
#include "check.h"
#include "circles.h"
#include "datasrc.h"
#include "rng.h"
#include "sae.h"
#include "safetensors.h"
#include "train.h"
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- an in-memory finite source ---- */

typedef struct {
    int dim;
    const float *rows; /* (n_rows, dim) */
} mem_src;

static int mem_get_rows(void *ctx, const uint64_t *idx, int n, float *out)
{
    const mem_src *m = ctx;
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * m->dim, m->rows + idx[i] * (size_t)m->dim, (size_t)m->dim * sizeof(float));
    return 0;
}

/* (n, dim) normal values times `scale`, plus an offset per column. */
static float *random_rows(int n, int dim, float scale, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed, 1);
    float *x = malloc((size_t)n * dim * sizeof(float));
    for (size_t k = 0; k < (size_t)n * dim; k++)
        x[k] = scale * (rng_normal(&r) + 0.3f * (float)(k % (size_t)dim));
    return x;
}

static void random_params(sae_params *p, uint64_t seed)
{
    rng_t r;
    sae_params_init(p, seed);
    rng_seed(&r, seed, 2);
    for (int i = 0; i < p->cfg.n_latents; i++)
        p->v.b_enc[i] = 0.2f * rng_normal(&r);
    for (int d = 0; d < p->cfg.dim; d++)
        p->v.b_dec[d] = 0.5f * rng_normal(&r);
    sae_tensor t[SAE_MAX_TENSORS]; /* extras (r_mag, b_mag, log_theta, threshold): small positive values */
    int n = sae_tensors(p, t, SAE_MAX_TENSORS);
    for (int i = 4; i < n; i++)
        for (int64_t k = 0; k < t[i].shape[0]; k++)
            t[i].data[k] = 0.3f * fabsf(rng_normal(&r));
}

/* ---- sae_tensors ---- */

static void test_tensors_tile(void)
{
    for (int a = SAE_RELU; a <= SAE_JUMPRELU; a++) {
        sae_config c = {.arch = (sae_arch)a, .dim = 6, .n_latents = 12, .group_size = 3, .k = 2};
        sae_params p;
        CHECK(sae_params_alloc(&p, &c) == 0, "alloc %s", sae_arch_name(c.arch));
        sae_tensor t[SAE_MAX_TENSORS];
        int n = sae_tensors(&p, t, SAE_MAX_TENSORS);
        CHECK(n >= 4 && n <= SAE_MAX_TENSORS, "%s: %d tensors", sae_arch_name(c.arch), n);
        CHECK(n >= 4 && !strcmp(t[0].name, "W_enc") && t[0].shape[0] == 6 && t[0].shape[1] == 12 &&
              !strcmp(t[1].name, a == SAE_GATED ? "b_gate" : "b_enc") && t[1].ndim == 1 && t[1].shape[0] == 12 &&
              !strcmp(t[2].name, "W_dec") && t[2].shape[0] == 12 && t[2].shape[1] == 6 &&
              !strcmp(t[3].name, "b_dec") && t[3].ndim == 1 && t[3].shape[0] == 6 &&
              t[0].data == p.v.W_enc && t[2].data == p.v.W_dec, "%s: SAELens names, shapes, views",
              sae_arch_name(c.arch));
        const float *next = p.buf;
        for (int i = 0; i < n && i < SAE_MAX_TENSORS; i++) {
            CHECK(t[i].data == next, "%s: %s follows its predecessor", sae_arch_name(c.arch), t[i].name);
            next = t[i].data + safetensors_data_bytes(&t[i], 1) / 4;
        }
        CHECK(next == p.buf + p.n_params, "%s: the tensors cover all %zu params", sae_arch_name(c.arch),
              p.n_params);
        CHECK(sae_tensors(&p, t, 2) == n, "%s: a small cap still counts all", sae_arch_name(c.arch));
        sae_params_free(&p);
    }
}

/* ---- folding ---- */

static double max_rel_diff(const float *a, const float *b, size_t n)
{
    double worst = 0.0;
    for (size_t k = 0; k < n; k++) {
        double d = fabs((double)a[k] - b[k]) / (1.0 + fabs((double)b[k]));
        if (d > worst)
            worst = d;
    }
    return worst;
}

/* encode(s x) through p, encode(x) through p folded by s: same z, x_hat / s. */
static void check_fold(const sae_config *c, float s, const char *what)
{
    enum { B = 40 };
    sae_params p, f;
    sae_params_alloc(&p, c);
    random_params(&p, 5);
    sae_params_alloc(&f, c);
    memcpy(f.buf, p.buf, p.n_params * sizeof(float));
    sae_fold_input_scale(&f, s);
    int n = c->n_latents, dim = c->dim;
    float *raw = random_rows(B, dim, 1.0f / s, 7), *scaled = malloc((size_t)B * dim * sizeof(float));
    for (size_t k = 0; k < (size_t)B * dim; k++)
        scaled[k] = raw[k] * s;
    float *z1 = malloc((size_t)B * n * sizeof(float)), *z2 = malloc((size_t)B * n * sizeof(float));
    float *xh1 = malloc((size_t)B * dim * sizeof(float)), *xh2 = malloc((size_t)B * dim * sizeof(float));
    CHECK(sae_encode(&p, NULL, scaled, B, z1, xh1) == 0 && sae_encode(&f, NULL, raw, B, z2, xh2) == 0, "%s: encode", what);
    size_t active = 0, same_support = 0;
    for (size_t k = 0; k < (size_t)B * n; k++) {
        active += z1[k] > 0.0f;
        same_support += (z1[k] > 0.0f) == (z2[k] > 0.0f);
    }
    for (size_t k = 0; k < (size_t)B * dim; k++)
        xh1[k] /= s;
    CHECK(active > 0 && same_support == (size_t)B * n, "%s: same active latents (%zu active, %zu agree)", what,
          active, same_support);
    CHECK(max_rel_diff(z2, z1, (size_t)B * n) < 1e-5, "%s: z equal (max rel diff %.3g)", what,
          max_rel_diff(z2, z1, (size_t)B * n));
    CHECK(max_rel_diff(xh2, xh1, (size_t)B * dim) < 1e-5, "%s: x_hat folded = x_hat / s (max rel diff %.3g)",
          what, max_rel_diff(xh2, xh1, (size_t)B * dim));
    free(raw), free(scaled), free(z1), free(z2), free(xh1), free(xh2);
    sae_params_free(&p);
    sae_params_free(&f);
}

static void test_fold(void)
{
    char field[64], msg[256], what[96];
    int covered = 0;
    for (int a = SAE_RELU; a <= SAE_JUMPRELU; a++) {
        sae_config c = {.arch = (sae_arch)a, .dim = 10, .n_latents = 24, .group_size = 2, .sparsity_coef = 0.01f,
                        .k = 3, .bandwidth = 0.001f};
        if (sae_config_check(&c, field, sizeof field, msg, sizeof msg) != 0)
            continue; /* not available yet */
        covered++;
        snprintf(what, sizeof what, "fold %s s=0.05", sae_arch_name(c.arch));
        check_fold(&c, 0.05f, what);
        snprintf(what, sizeof what, "fold %s s=7", sae_arch_name(c.arch));
        check_fold(&c, 7.0f, what);
        printf("fold checked for %s\n", sae_arch_name(c.arch));
        c.threshold = 0.3f;
        if (sae_config_check(&c, field, sizeof field, msg, sizeof msg) != 0)
            continue; /* gated takes no threshold */
        snprintf(what, sizeof what, "fold %s s=3 threshold 0.3", sae_arch_name(c.arch));
        check_fold(&c, 3.0f, what);
    }
    CHECK(covered >= 1, "at least relu is available (%d archs)", covered);
}

/* ---- safetensors ---- */

static void test_safetensors_header(void)
{
    float buf[2 * 3 + 2] = {0};
    sae_tensor t[2] = {{"W_x", buf, 2, {2, 3}}, {"b.x", buf + 6, 1, {2, 0}}};
    const char *meta[] = {"format", "pt", NULL};
    size_t len;
    unsigned char *h = safetensors_header(t, 2, meta, &len);
    CHECK(h && len % 8 == 0 && len > 8, "header built, %zu bytes, a multiple of 8", len);
    if (!h)
        return;
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)h[i] << (8 * i);
    CHECK(n == len - 8, "u64 LE length %llu = JSON bytes %zu", (unsigned long long)n, len - 8);
    json_error_t e;
    json_t *j = json_loadb((const char *)h + 8, len - 8, 0, &e);
    CHECK(j != NULL, "header JSON parses: %s", j ? "ok" : e.text);
    json_t *w = json_object_get(j, "W_x"), *b = json_object_get(j, "b.x");
    CHECK(!strcmp(json_string_value(json_object_get(w, "dtype")), "F32") &&
          json_integer_value(json_array_get(json_object_get(w, "shape"), 1)) == 3 &&
          json_integer_value(json_array_get(json_object_get(w, "data_offsets"), 1)) == 24 &&
          json_integer_value(json_array_get(json_object_get(b, "data_offsets"), 0)) == 24 &&
          json_integer_value(json_array_get(json_object_get(b, "data_offsets"), 1)) == 32 &&
          json_array_size(json_object_get(b, "shape")) == 1, "dtype, shapes, back-to-back offsets");
    CHECK(!strcmp(json_string_value(json_object_get(json_object_get(j, "__metadata__"), "format")), "pt"),
          "__metadata__.format");
    CHECK(safetensors_data_bytes(t, 2) == 32, "data bytes");
    json_decref(j);
    free(h);
    t[1].name = "W_x";
    CHECK(safetensors_header(t, 2, NULL, &len) == NULL, "duplicate name refused");
    t[1].name = "b\"x";
    CHECK(safetensors_header(t, 2, NULL, &len) == NULL, "a name needing escapes refused");
    t[1].name = "__metadata__";
    CHECK(safetensors_header(t, 2, NULL, &len) == NULL, "__metadata__ as a name refused");
    h = safetensors_header(t, 0, NULL, &len);
    CHECK(h && len == 16 && !memcmp(h + 8, "{}      ", 8), "no tensors: {} padded");
    free(h);
}

/* safetensors_find reads back what safetensors_header wrote, and refuses
 * malformed entries with a message. */
static void test_safetensors_read(void)
{
    float buf[2 * 3 + 2] = {0};
    sae_tensor t[2] = {{"W_x", buf, 2, {2, 3}}, {"b.x", buf + 6, 1, {2, 0}}};
    size_t len;
    unsigned char *h = safetensors_header(t, 2, NULL, &len);
    uint64_t n = 0;
    char err[256];
    safetensors_entry e;
    CHECK(h && safetensors_json_len(h, &n, err, sizeof err) == 0 && n == len - 8, "json length read back");
    CHECK(h && safetensors_find((const char *)h + 8, n, "b.x", &e, err, sizeof err) == 0 && e.ndim == 1 &&
          e.shape[0] == 2 && e.begin == 24 && e.end == 32, "b.x found: 1-D (2), bytes [24, 32)");
    CHECK(h && safetensors_find((const char *)h + 8, n, "W_x", &e, err, sizeof err) == 0 && e.ndim == 2 &&
          e.shape[1] == 3 && e.begin == 0 && e.end == 24, "W_x found: (2, 3), bytes [0, 24)");
    CHECK(h && safetensors_find((const char *)h + 8, n, "log_theta", &e, err, sizeof err) == 1, "absent: 1");
    free(h);
    static const char *const bad[] = {
        "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2,2],\"data_offsets\":[0,32]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}",
        "{\"a\":3}", "[1]", "{\"a\":",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        CHECK(safetensors_find(bad[i], strlen(bad[i]), "a", &e, err, sizeof err) == -1 && err[0],
              "malformed header %zu refused with a message", i);
    }
    unsigned char zero[8] = {0}, huge[8] = {0, 0, 0, 0, 1, 0, 0, 0};
    CHECK(safetensors_json_len(zero, &n, err, sizeof err) == -1 && safetensors_json_len(huge, &n, err, sizeof err) == -1,
          "json length 0 and 2^32 refused");
}

/* ---- train.normalize_input ---- */

typedef struct {
    void *blob;
    size_t len;
    int stop_at; /* step at which should_stop says shutdown (0 never) */
    int step;
} ck_log;

static int ck_save(void *ctx, train_state *st)
{
    ck_log *l = ctx;
    free(l->blob);
    l->len = train_checkpoint_size(st);
    l->blob = malloc(l->len);
    train_checkpoint_write(st, l->blob);
    return 0;
}

static void ck_progress(void *ctx, int step, int total, double sps)
{
    (void)total, (void)sps;
    ((ck_log *)ctx)->step = step;
}

static train_stop ck_stop(void *ctx)
{
    ck_log *l = ctx;
    return l->stop_at > 0 && l->step >= l->stop_at ? TRAIN_SHUTDOWN : TRAIN_CONTINUE;
}

static void norm_configs(sae_config *c, train_config *t, int dim)
{
    *c = (sae_config){.arch = SAE_RELU, .dim = dim, .n_latents = 32, .group_size = 2, .sparsity_coef = 0.05f};
    train_config_default(t);
    t->steps = 40;
    t->batch_size = 50;
    t->lr = 3e-3f;
    t->lr_warmup_steps = 5;
    t->sparsity_warmup_steps = 10;
    t->eval_every = 9;
    t->eval_rows = 60;
    t->checkpoint_every = 0;
    t->dead_window = 10;
    t->seed = 4;
    t->normalize_input = 1;
}

static void test_scale_estimate(void)
{
    enum { N = 700, DIM = 12 };
    sae_config c;
    train_config t;
    char err[300], field[64], msg[256];
    norm_configs(&c, &t, DIM);
    float *rows = random_rows(N, DIM, 40.0f, 3);
    mem_src m = {DIM, rows};
    data_source src = {DIM, N, &m, mem_get_rows};
    double sum = 0.0; /* fewer than TRAIN_SCALE_ROWS training rows: all of them are the sample */
    for (size_t k = 0; k < (size_t)(N - t.eval_rows) * DIM; k++)
        sum += (double)rows[k] * rows[k];
    double want = sqrt(DIM / (sum / (N - t.eval_rows)));
    train_state *st = train_create(&c, &t, &src, err, sizeof err);
    CHECK(st != NULL, "create with normalize_input: %s", st ? "ok" : err);
    if (st)
        CHECK_NEAR(train_input_scale(st), want, 1e-6 * want, "scale = sqrt(dim / mean ||x||^2) of the training rows");
    train_free(st);
    t.normalize_input = 0;
    st = train_create(&c, &t, &src, err, sizeof err);
    CHECK(st && train_input_scale(st) == 1.0f, "scale 1 when off");
    train_free(st);

    t.normalize_input = 1;
    memset(rows, 0, (size_t)N * DIM * sizeof(float));
    CHECK(train_create(&c, &t, &src, err, sizeof err) == NULL && strstr(err, "train.normalize_input"),
          "all-zero rows refused: %s", err);
    t.normalize_input = 2;
    CHECK(train_config_check(&t, field, sizeof field, msg, sizeof msg) == -1 &&
          !strcmp(field, "train.normalize_input"), "normalize_input must be 0 or 1 (%s)", field);
    free(rows);
}

/* The eval mse is in raw units: the folded SAE on the raw eval rows gives it. */
static void test_metrics_units(void)
{
    enum { N = 600, DIM = 8 };
    sae_config c;
    train_config t;
    char err[300];
    norm_configs(&c, &t, DIM);
    float *rows = random_rows(N, DIM, 25.0f, 11);
    mem_src m = {DIM, rows};
    data_source src = {DIM, N, &m, mem_get_rows};
    train_state *st = train_create(&c, &t, &src, err, sizeof err);
    train_hooks h = {0};
    CHECK(st && train_run(st, &h) == TRAIN_DONE, "normalised run");
    if (!st)
        return;
    float s = train_input_scale(st);
    CHECK(s > 0.0f && s < 0.2f, "rows of norm ~25 sqrt(dim) scale down (s = %g)", (double)s);
    sae_params f;
    sae_params_alloc(&f, &c);
    memcpy(f.buf, train_params(st)->buf, f.n_params * sizeof(float));
    sae_fold_input_scale(&f, s);
    sae_work w;
    sae_work_alloc(&w, &c, t.eval_rows);
    sae_loss_terms terms;
    sae_loss_grad(&f, rows + (size_t)(N - t.eval_rows) * DIM, t.eval_rows, 0.0f, &w, NULL, &terms);
    const train_metrics *met = train_last_metrics(st);
    CHECK(fabs(met->mse - terms.mse) <= 1e-4 * terms.mse, "metrics mse %g = raw-unit mse of the folded SAE %g",
          met->mse, terms.mse);
    CHECK(met->fve > 0.0 && met->fve < 1.0, "fve unit-free in (0, 1): %g", met->fve);
    sae_work_free(&w);
    sae_params_free(&f);
    train_free(st);
    free(rows);
}

/* Straight vs shutdown at k + restore into a fresh trainer + the rest: bitwise equal. */
static void resume_case(const char *what, const sae_config *c, const train_config *t, const data_source *src,
                        int k)
{
    char err[300];
    ck_log la = {0}, lb = {.stop_at = k}, lc = {0};
    train_hooks ha = {.ctx = &la, .on_checkpoint = ck_save, .on_progress = ck_progress, .should_stop = ck_stop};
    train_hooks hb = ha, hc = ha;
    hb.ctx = &lb, hc.ctx = &lc;
    train_state *a = train_create(c, t, src, err, sizeof err), *b = train_create(c, t, src, err, sizeof err);
    CHECK(a && b && train_run(a, &ha) == TRAIN_DONE && train_run(b, &hb) == TRAIN_INTERRUPTED,
          "%s: straight run and interrupted run", what);
    train_config t2 = *t;
    t2.normalize_input = !t->normalize_input;
    train_state *other = train_create(c, &t2, src, err, sizeof err);
    CHECK(other && train_checkpoint_restore(other, lb.blob, lb.len, err, sizeof err) == -1 &&
          strstr(err, "normalize_input"), "%s: restore names normalize_input: %s", what, err);
    train_free(other);
    train_state *r = train_create(c, t, src, err, sizeof err);
    CHECK(r && train_checkpoint_restore(r, lb.blob, lb.len, err, sizeof err) == 0 && train_step_done(r) == k,
          "%s: restore at %d", what, k);
    CHECK(train_run(r, &hc) == TRAIN_DONE, "%s: resumed run", what);
    CHECK(train_input_scale(r) == train_input_scale(a), "%s: same scale", what);
    CHECK(memcmp(train_params(a)->buf, train_params(r)->buf, train_params(a)->n_params * sizeof(float)) == 0,
          "%s: resumed params bitwise equal to the straight run's", what);
    CHECK(train_last_metrics(a)->mse == train_last_metrics(r)->mse, "%s: same final mse", what);
    free(la.blob), free(lb.blob), free(lc.blob);
    train_free(a), train_free(b), train_free(r);
}

static void test_resume_normalized(void)
{
    enum { N = 400, DIM = 16 };
    sae_config c;
    train_config t;
    norm_configs(&c, &t, DIM);
    float *rows = random_rows(N, DIM, 9.0f, 21);
    mem_src m = {DIM, rows};
    data_source fin = {DIM, N, &m, mem_get_rows};
    resume_case("finite, normalised", &c, &t, &fin, 17);
    circles_params cp;
    circles_params_default(&cp);
    cp.n_circles = 30, cp.dim = DIM, cp.p_active = 0.1, cp.r_min = 2.0f, cp.r_max = 5.0f;
    circles *circ = circles_create(&cp);
    data_source src;
    datasrc_from_circles(&src, circ);
    resume_case("endless, normalised", &c, &t, &src, 23);
    t.normalize_input = 0;
    resume_case("endless, raw", &c, &t, &src, 11);
    t.normalize_input = 1;
    char field[64], msg[256], what[64];
    for (int a = SAE_GATED; a <= SAE_JUMPRELU; a++) { /* every other arch's state must be in the checkpoint too */
        sae_config ca = c;
        ca.arch = (sae_arch)a, ca.k = 3, ca.bandwidth = 0.001f, ca.aux_k_coef = 0.03125f; /* AuxK reads dead counters */
        if (sae_config_check(&ca, field, sizeof field, msg, sizeof msg) != 0)
            continue;
        snprintf(what, sizeof what, "%s, endless, normalised", sae_arch_name(ca.arch));
        resume_case(what, &ca, &t, &src, 19);
    }
    circles_free(circ);
    free(rows);
}

int main(void)
{
    test_tensors_tile();
    test_fold();
    test_safetensors_header();
    test_safetensors_read();
    test_scale_estimate();
    test_metrics_units();
    test_resume_normalized();
    return check_report();
}
