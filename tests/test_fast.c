/* test_fast — the blocked sparse/dense relu core (core/sae_fast.c) computes
 * what sae_loss_grad computes (the dense reference that test_core checks
 * against finite differences and test_ref against PyTorch).
 *
 * Each case draws an untied SAE and a batch, shifts b_enc to set how many
 * latents fire, and runs sae_fast on each path (chosen per block, forced
 * dense, forced sparse), with and without the gradient: the loss terms, the
 * latents that fired and every gradient tensor must match the reference.
 * Tolerance: |a - b| <= 2e-5 max|ref| + 1e-6 per tensor (float sums in a
 * different order; the reference adds b_enc before the product, this after).
 * Also par_sgemm (include/par_gemm.h) against one cblas_sgemm: every
 * transpose, both split directions, ragged slabs, beta, on pools of 1-3. */
#include "check.h"
#include "circles.h"
#include "datasrc.h"
#include "gradcheck.h"
#include "par_gemm.h"
#include "rng.h"
#include "sae.h"
#include "sae_arch.h"
#include "sae_fast.h"
#include "train.h"
#include "trainlog.h"
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int dim, n, s, B, block; /* block: latents per block (rounded up to s) */
    float coef, orth, thr, shift; /* shift: added to every b_enc (negative: sparser) */
} fast_case;

static const fast_case fast_cases[] = {
    {"s1 dense", 9, 24, 1, 13, 4, 0.4f, 0.0f, 0.0f, 0.0f},
    {"s1 sparse", 9, 40, 1, 37, 8, 0.4f, 0.0f, 0.0f, -1.2f},
    {"s2 orth", 10, 24, 2, 17, 5, 0.3f, 0.2f, 0.0f, -0.5f},
    {"s2 sparse orth", 12, 64, 2, 50, 16, 0.3f, 0.2f, 0.0f, -1.3f},
    {"s3 orth", 8, 24, 3, 9, 4, 0.2f, 0.4f, 0.0f, -0.3f},
    {"s2 one row", 8, 16, 2, 1, 8, 0.5f, 0.1f, 0.0f, 0.0f},
    {"s1 threshold", 9, 24, 1, 19, 6, 0.3f, 0.0f, 0.4f, -0.2f},
    {"s2 threshold", 10, 32, 2, 23, 7, 0.2f, 0.3f, 0.6f, -0.3f},
};
#define N_FAST_CASES (int)(sizeof fast_cases / sizeof fast_cases[0])

typedef struct {
    double loss;
    sae_loss_terms t;
    float *grad;          /* (n_params) */
    unsigned char *fired; /* (n) */
    int below, above;     /* groups in the threshold's kernel window below it (zeroed) and above it (kept) */
} fast_result;

static double fast_maxabs(const float *a, size_t n)
{
    double m = 0.0;
    for (size_t k = 0; k < n; k++)
        m = fabs(a[k]) > m ? fabs(a[k]) : m;
    return m;
}

/* Every tensor of got's gradient within the tolerance of want's. */
static void fast_check_grad(const sae_params *p, const float *want, const float *got, const char *what)
{
    size_t n = (size_t)p->cfg.n_latents, d = (size_t)p->cfg.dim;
    struct { const char *name; size_t off, len; } parts[] = {
        {"W_enc", 0, d * n}, {"b_enc", d * n, n}, {"W_dec", d * n + n, n * d}, {"b_dec", 2 * d * n + n, d}};
    for (int k = 0; k < 4; k++) {
        double tol = 2e-5 * fast_maxabs(want + parts[k].off, parts[k].len) + 1e-6, worst = 0.0;
        for (size_t j = 0; j < parts[k].len; j++) {
            double e = fabs((double)want[parts[k].off + j] - got[parts[k].off + j]);
            worst = e > worst ? e : worst;
        }
        CHECK(worst <= tol, "%s: grad %s off by %g (tol %g)", what, parts[k].name, worst, tol);
    }
}

static void fast_check_terms(const fast_result *want, const fast_result *got, int n, const char *what)
{
    double tl = 1e-5 * (fabs(want->loss) + 1e-3);
    CHECK_NEAR(got->loss, want->loss, tl, what);
    CHECK_NEAR(got->t.mse, want->t.mse, 1e-5 * (want->t.mse + 1e-3), what);
    CHECK_NEAR(got->t.sparsity, want->t.sparsity, 1e-5 * (want->t.sparsity + 1e-3), what);
    CHECK_NEAR(got->t.orth, want->t.orth, 1e-5 * (want->t.orth + 1e-3), what);
    CHECK(got->t.l0 == want->t.l0 && got->t.l0_groups == want->t.l0_groups, "%s: l0 %g/%g vs %g/%g", what,
          got->t.l0, got->t.l0_groups, want->t.l0, want->t.l0_groups);
    CHECK(memcmp(got->fired, want->fired, (size_t)n) == 0, "%s: the latents that fired", what);
}

/* The inference pass at coefficient coef and p's threshold. */
static sae_pass fast_pass(const sae_params *p, float coef)
{
    return (sae_pass){.coef = coef, .threshold = p->cfg.threshold};
}

/* The reference: sae_loss_grad, fired from z. */
static void fast_reference(const sae_params *p, const float *x, int B, float coef, fast_result *r)
{
    sae_work w;
    int n = p->cfg.n_latents;
    CHECK(sae_work_alloc(&w, &p->cfg, B) == 0, "work alloc");
    r->loss = sae_loss_grad(p, x, B, coef, &w, r->grad, &r->t);
    memset(r->fired, 0, (size_t)n);
    for (size_t k = 0; k < (size_t)B * n; k++)
        r->fired[k % n] |= w.z[k] > 0.0f;
    r->below = r->above = 0;
    for (size_t k = 0; k < (size_t)B * n; k += (size_t)p->cfg.group_size) {
        double norm2 = 0.0, thr = p->cfg.threshold, eps = p->cfg.bandwidth;
        for (int j = 0; j < p->cfg.group_size; j++)
            norm2 += w.pre[k + j] > 0.0f ? (double)w.pre[k + j] * w.pre[k + j] : 0.0;
        r->below += norm2 > 0.0 && sqrt(norm2) < thr && sqrt(norm2) > thr - eps / 2;
        r->above += sqrt(norm2) >= thr && sqrt(norm2) < thr + eps / 2;
    }
    sae_work_free(&w);
}

/* Runs every path of case fc on a pool of `threads`. */
static void fast_run_case_on(const fast_case *fc, par_pool *pool)
{
    sae_config c = {.arch = SAE_RELU, .dim = fc->dim, .n_latents = fc->n, .group_size = fc->s,
                    .sparsity_coef = fc->coef, .orth_coef = fc->orth, .threshold = fc->thr, .bandwidth = fc->thr};
    sae_params p;
    CHECK(sae_params_alloc(&p, &c) == 0, "params alloc");
    float *x = malloc((size_t)fc->B * fc->dim * sizeof(float)); /* (B, dim) */
    gradcheck_random_sae(&p, x, fc->B, 77);
    for (int i = 0; i < fc->n; i++)
        p.v.b_enc[i] += fc->shift;
    fast_result want = {.grad = malloc(p.n_params * sizeof(float)), .fired = malloc((size_t)fc->n)};
    fast_result got = {.grad = malloc(p.n_params * sizeof(float)), .fired = malloc((size_t)fc->n)};
    fast_reference(&p, x, fc->B, fc->coef, &want);
    if (fc->thr > 0.0f)
        CHECK(want.below > 0 && want.above > 0, "%s: the threshold's window holds zeroed (%d) and kept (%d) groups",
              fc->name, want.below, want.above);
    sae_fast *f = sae_fast_create(&c, fc->B, fc->block, pool);
    CHECK(f != NULL, "sae_fast_create");
    const char *paths[] = {"auto", "dense", "sparse", "auto, tiles of 3 rows", "sparse, tiles of 3 rows"};
    for (int run = 0; run < 5; run++) {
        int path = run < 3 ? run : run == 3 ? SAE_PATH_AUTO : SAE_PATH_SPARSE;
        char what[96];
        snprintf(what, sizeof what, "%s, %s path, %d threads", fc->name, paths[run], par_threads(pool));
        if (run == 3) /* several encoder tiles per thread, the last one short */
            CHECK(sae_fast_set_tile_rows(f, fc->B < 3 ? fc->B : 3) == 0 && sae_fast_set_tile_rows(f, fc->B + 1) == -1,
                  "tile rows");
        CHECK(sae_fast_set_path(f, (sae_path)path) == 0, "set path");
        memset(got.fired, 0, (size_t)fc->n);
        sae_pass pass = fast_pass(&p, fc->coef);
        got.loss = sae_fast_loss_grad(f, &p, x, fc->B, &pass, got.grad, got.fired, &got.t);
        fast_check_terms(&want, &got, fc->n, what);
        fast_check_grad(&p, want.grad, got.grad, what);
        memset(got.fired, 0, (size_t)fc->n);
        got.loss = sae_fast_loss_grad(f, &p, x, fc->B, &pass, NULL, got.fired, &got.t);
        fast_check_terms(&want, &got, fc->n, what);
    }
    sae_fast_free(f);
    sae_params_free(&p);
    free(x), free(want.grad), free(want.fired), free(got.grad), free(got.fired);
}

/* AUTO runs a dense batch's blocks dense and a sparse batch's blocks sparse. */
static void fast_check_choice(void)
{
    sae_config c = {.arch = SAE_RELU, .dim = 16, .n_latents = 400, .group_size = 2, .sparsity_coef = 0.1f};
    sae_params p;
    CHECK(sae_params_alloc(&p, &c) == 0, "params alloc");
    float *x = malloc(64 * 16 * sizeof(float)); /* (64, 16) */
    gradcheck_random_sae(&p, x, 64, 5);
    sae_fast *f = sae_fast_create(&c, 64, 16, NULL); /* 25 blocks of 16 latents */
    sae_pass pass = fast_pass(&p, 0.1f);
    sae_fast_loss_grad(f, &p, x, 64, &pass, NULL, NULL, NULL);
    sae_fast_stats s = sae_fast_get_stats(f);
    CHECK(s.dense_blocks == 25 && s.sparse_blocks == 0 && s.density > SAE_FAST_DENSE_ABOVE,
          "a dense batch (density %g) runs dense: %ld dense, %ld sparse blocks", s.density, s.dense_blocks,
          s.sparse_blocks);
    for (int i = 0; i < 400; i++)
        p.v.b_enc[i] -= 8.0f;
    sae_fast_loss_grad(f, &p, x, 64, &pass, NULL, NULL, NULL);
    s = sae_fast_get_stats(f);
    CHECK(s.sparse_blocks == 25 && s.dense_blocks == 25 && s.density <= SAE_FAST_DENSE_ABOVE && s.density > 0.0,
          "a sparse batch (density %g) runs sparse: %ld sparse blocks", s.density, s.sparse_blocks);
    sae_fast_free(f);
    sae_params_free(&p);
    free(x);
}

/* Latents whose first half barely fires and second half fires widely: AUTO mixes sparse and
 * dense blocks in one call and still matches the reference. */
static void fast_check_mixed(par_pool *pool)
{
    sae_config c = {.arch = SAE_RELU, .dim = 16, .n_latents = 400, .group_size = 2, .sparsity_coef = 0.1f,
                    .orth_coef = 0.1f};
    sae_params p;
    CHECK(sae_params_alloc(&p, &c) == 0, "params alloc");
    int B = 64;
    float *x = malloc((size_t)B * 16 * sizeof(float)); /* (64, 16) */
    gradcheck_random_sae(&p, x, B, 9);
    for (int i = 0; i < 200; i++)
        p.v.b_enc[i] -= 4.0f; /* latents 0-199 barely fire, 200-399 fire widely */
    fast_result want = {.grad = malloc(p.n_params * sizeof(float)), .fired = malloc(400)};
    fast_result got = {.grad = malloc(p.n_params * sizeof(float)), .fired = calloc(400, 1)};
    fast_reference(&p, x, B, 0.1f, &want);
    sae_fast *f = sae_fast_create(&c, B, 16, pool);
    sae_pass pass = fast_pass(&p, 0.1f);
    got.loss = sae_fast_loss_grad(f, &p, x, B, &pass, got.grad, got.fired, &got.t);
    sae_fast_stats s = sae_fast_get_stats(f);
    CHECK(s.sparse_blocks > 0 && s.dense_blocks > 0, "a mixed batch runs both paths: %ld sparse, %ld dense blocks",
          s.sparse_blocks, s.dense_blocks);
    fast_check_terms(&want, &got, 400, "mixed batch");
    fast_check_grad(&p, want.grad, got.grad, "mixed batch");
    memset(got.grad, 0x7f, p.n_params * sizeof(float)); /* garbage: every entry must be written */
    got.loss = sae_fast_loss_grad(f, &p, x, B, &pass, got.grad, got.fired, &got.t);
    fast_check_grad(&p, want.grad, got.grad, "mixed batch, second call over garbage");
    sae_fast_free(f);
    sae_params_free(&p);
    free(x), free(want.grad), free(want.fired), free(got.grad), free(got.fired);
}

/* The trainer on a pool of 2 threads (sae_fast's passes and train_update's split): two runs of
 * the same spec end bit for bit equal, and so does one interrupted at step 11, checkpointed,
 * restored into a fresh trainer and finished. The run passes through dense and sparse blocks. */
static void fast_check_train_pool(int group_size)
{
    circles_params cp = {40, 16, 0.08, 1.0f, 1.0f, 3};
    circles *circ = circles_create(&cp);
    data_source src;
    datasrc_from_circles(&src, circ);
    sae_config c = {.arch = SAE_RELU, .dim = 16, .n_latents = 320, .group_size = group_size, .sparsity_coef = 1.0f,
                    .orth_coef = group_size > 1 ? 0.1f : 0.0f};
    train_config t;
    trainlog_small_config(&t);
    t.threads = 2, t.steps = 120, t.lr = 3e-2f, t.sparsity_warmup_steps = 5, t.eval_every = 40;
    char err[256], what[64];
    snprintf(what, sizeof what, "pool of 2, group size %d", group_size);
    trainlog ha = {0}, hb = {.stop_at_poll = 12}, hc = {0}, hd = {0};
    train_hooks h = trainlog_hooks(&ha);
    train_state *a = train_create(&c, &t, &src, err, sizeof err), *d = train_create(&c, &t, &src, err, sizeof err);
    CHECK(a && d && train_run(a, &h) == TRAIN_DONE, "%s: straight run: %s", what, a ? train_error(a) : err);
    h = trainlog_hooks(&hd);
    CHECK(train_run(d, &h) == TRAIN_DONE, "%s: second straight run", what);
    train_timing tm;
    train_get_timing(a, &tm);
    CHECK(tm.has_fast && tm.fast.sparse_blocks > 0 && tm.fast.dense_blocks > 0,
          "%s: the run used both paths (%ld sparse, %ld dense blocks)", what, tm.fast.sparse_blocks,
          tm.fast.dense_blocks);
    h = trainlog_hooks(&hb);
    train_state *b = train_create(&c, &t, &src, err, sizeof err), *r = train_create(&c, &t, &src, err, sizeof err);
    CHECK(train_run(b, &h) == TRAIN_INTERRUPTED && train_step_done(b) == 11, "%s: stopped at step 11", what);
    CHECK(train_checkpoint_restore(r, hb.blob, hb.blob_len, err, sizeof err) == 0, "%s: restore: %s", what, err);
    h = trainlog_hooks(&hc);
    CHECK(train_run(r, &h) == TRAIN_DONE, "%s: resumed run", what);
    size_t la, ld, lr;
    void *ba = trainlog_final_blob(a, &la), *bd = trainlog_final_blob(d, &ld), *br = trainlog_final_blob(r, &lr);
    CHECK(la == ld && memcmp(ba, bd, la) == 0, "%s: two straight runs are equal bit for bit", what);
    CHECK(la == lr && memcmp(ba, br, la) == 0, "%s: the resumed run matches bit for bit", what);
    free(ba), free(bd), free(br), free(ha.blob), free(hb.blob), free(hc.blob), free(hd.blob);
    train_free(a), train_free(b), train_free(d), train_free(r);
    circles_free(circ);
}

/* par_sgemm with (M, N, K), transposes ta/tb, on pool: C within 1e-5 relative of one cblas_sgemm, and
 * bitwise the same on a second call. Leading dimensions exceed the widths (sub-matrices). */
static void fast_check_par_gemm_case(par_pool *pool, int M, int N, int K, int ta, int tb)
{
    int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
    int ar = ta ? K : M, br = tb ? N : K; /* rows of A and B as stored */
    float *A = malloc((size_t)ar * lda * sizeof(float)), *B = malloc((size_t)br * ldb * sizeof(float));
    float *C0 = malloc((size_t)M * ldc * sizeof(float)), *C1 = malloc((size_t)M * ldc * sizeof(float));
    float *C2 = malloc((size_t)M * ldc * sizeof(float));
    rng_t r;
    rng_seed(&r, 3, (uint64_t)(M * 1000 + N));
    for (size_t k = 0; k < (size_t)ar * lda; k++) A[k] = rng_normal(&r);
    for (size_t k = 0; k < (size_t)br * ldb; k++) B[k] = rng_normal(&r);
    for (size_t k = 0; k < (size_t)M * ldc; k++) C0[k] = C1[k] = C2[k] = rng_normal(&r);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 0.5f, A,
                lda, B, ldb, 0.25f, C0, ldc);
    par_sgemm(pool, ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C1, ldc);
    par_sgemm(pool, ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C2, ldc);
    double worst = 0.0, scale = fast_maxabs(C0, (size_t)M * ldc);
    for (size_t k = 0; k < (size_t)M * ldc; k++)
        worst = fabs(C1[k] - C0[k]) > worst ? fabs(C1[k] - C0[k]) : worst;
    CHECK(worst <= 1e-5 * scale, "par_sgemm %dx%dx%d ta %d tb %d, %d threads: max diff %g (scale %g)", M, N, K, ta,
          tb, par_threads(pool), worst, scale);
    CHECK(memcmp(C1, C2, (size_t)M * ldc * sizeof(float)) == 0, "par_sgemm %dx%dx%d: the same bits twice", M, N, K);
    free(A), free(B), free(C0), free(C1), free(C2);
}

static void fast_check_par_gemm(void)
{
    static const int shapes[][3] = {{70, 19, 13}, {19, 70, 13}, {33, 33, 1}, {5, 3, 40}, {1, 50, 7}};
    for (int threads = 1; threads <= 3; threads++) {
        par_pool *pool = threads > 1 ? par_create(threads) : NULL;
        for (int k = 0; k < 5; k++)
            for (int t = 0; t < 4; t++)
                fast_check_par_gemm_case(pool, shapes[k][0], shapes[k][1], shapes[k][2], t & 1, t >> 1);
        par_free(pool);
    }
}

int main(void)
{
    fast_check_par_gemm();
    sae_config relu = {.arch = SAE_RELU}, topk = {.arch = SAE_TOPK};
    CHECK(sae_arch_of(&relu)->fast && !sae_arch_of(&topk)->fast, "the registry sends relu only to sae_fast");
    for (int threads = 1; threads <= 3; threads++) {
        par_pool *pool = threads > 1 ? par_create(threads) : NULL;
        CHECK(threads == 1 || pool != NULL, "par_create(%d)", threads);
        for (int k = 0; k < N_FAST_CASES; k++)
            fast_run_case_on(&fast_cases[k], pool);
        fast_check_mixed(pool);
        par_free(pool);
    }
    fast_check_choice();
    fast_check_train_pool(1);
    fast_check_train_pool(2);
    return check_report();
}
