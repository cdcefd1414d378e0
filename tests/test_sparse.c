/* test_sparse — the pass over kept groups alone (core/sae_sparse.c) computes
 * what the dense pass computes, for every registry row with sparse codes
 * (topk, batchtopk, subspace's top-k and prox rules): loss terms, x_hat and
 * every gradient tensor, with AuxK on a forced dead mask and orth, on pools
 * of 1 to 3 threads; and a batch too dense for the sparse buffers falls back
 * to the dense pass. The dense pass is the one test_archs_tk, test_archs_sub
 * and the PyTorch references check. Tolerance: |a - b| <= 2e-5 max|ref| +
 * 1e-6 per tensor (float sums in another order). */
#include "check.h"
#include "gradcheck.h"
#include "par.h"
#include "sae.h"
#include "sae_sparse.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    sae_arch arch;
    int dim, n, s, B, k;
    float thr, coef, orth, aux_coef;
    int train, with_dead;
} sp_case;

static const sp_case sp_cases[] = {
    {"topk s1", SAE_TOPK, 9, 128, 1, 23, 3, 0.0f, 0.0f, 0.0f, 0.0f, 1, 0},
    {"topk s2 orth auxk", SAE_TOPK, 9, 128, 2, 23, 2, 0.0f, 0.0f, 0.3f, 0.5f, 1, 1},
    {"batchtopk s2 train auxk", SAE_BATCHTOPK, 8, 128, 2, 17, 2, 0.0f, 0.0f, 0.0f, 0.5f, 1, 1},
    {"batchtopk s1 infer", SAE_BATCHTOPK, 8, 128, 1, 17, 2, 0.0f, 0.0f, 0.0f, 0.0f, 0, 0},
    {"subspace topk s2", SAE_SUBSPACE, 10, 160, 2, 19, 3, 0.0f, 0.0f, 0.0f, 0.0f, 1, 0},
    {"subspace topk s3 orth auxk", SAE_SUBSPACE, 10, 180, 3, 19, 2, 0.0f, 0.0f, 0.2f, 0.7f, 1, 1},
    {"subspace prox s2 auxk", SAE_SUBSPACE, 10, 160, 2, 19, 0, 5.0f, 0.4f, 0.0f, 0.5f, 1, 1},
};
#define N_SP (int)(sizeof sp_cases / sizeof sp_cases[0])

static double sp_maxabs(const float *a, size_t n)
{
    double m = 0.0;
    for (size_t k = 0; k < n; k++)
        m = fmax(m, fabs(a[k]));
    return m;
}

static int sp_close(const float *got, const float *want, size_t n, double *worst)
{
    double tol = 2e-5 * sp_maxabs(want, n) + 1e-6, w = 0.0;
    for (size_t k = 0; k < n; k++)
        w = fmax(w, fabs(got[k] - want[k]));
    *worst = w;
    return w <= tol;
}

/* Every tensor of the gradient (params layout) within tolerance. */
static void sp_check_grad(const sae_params *p, const float *got, const float *want, const char *what)
{
    sae_tensor tg[SAE_MAX_TENSORS], tw[SAE_MAX_TENSORS];
    sae_params pg = *p, pw = *p;
    pg.buf = (float *)got, pw.buf = (float *)want;
    sae_views(&p->cfg, pg.buf, &pg.v);
    sae_views(&p->cfg, pw.buf, &pw.v);
    int m = sae_tensors(&pg, tg, SAE_MAX_TENSORS);
    sae_tensors(&pw, tw, SAE_MAX_TENSORS);
    for (int t = 0; t < m; t++) {
        size_t len = (size_t)tg[t].shape[0] * (size_t)(tg[t].ndim == 2 ? tg[t].shape[1] : 1);
        double worst;
        CHECK(sp_close(tg[t].data, tw[t].data, len, &worst), "%s: grad %s (max diff %g)", what, tg[t].name, worst);
    }
}

static void sp_run(const sp_case *sc, par_pool *pool)
{
    sae_config c = {.arch = sc->arch, .dim = sc->dim, .n_latents = sc->n, .group_size = sc->s, .k = sc->k,
                    .threshold = sc->thr, .sparsity_coef = sc->coef, .orth_coef = sc->orth, .aux_k_coef = sc->aux_coef};
    char what[128], field[64], msg[256];
    snprintf(what, sizeof what, "%s, %d threads", sc->name, par_threads(pool));
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) == 0, "%s: config %s %s", what, field, msg);
    sae_params p;
    sae_work w;
    CHECK(sae_params_alloc(&p, &c) == 0 && sae_work_alloc(&w, &c, sc->B) == 0 && w.sparse, "%s: alloc", what);
    w.pool = pool;
    float *x = malloc((size_t)sc->B * sc->dim * sizeof(float));
    float *g_sp = malloc(p.n_params * sizeof(float)), *g_de = malloc(p.n_params * sizeof(float));
    float *xh = malloc((size_t)sc->B * sc->dim * sizeof(float));
    unsigned char *dead = malloc((size_t)sc->n);
    gradcheck_random_sae(&p, x, sc->B, 31);
    if (sc->arch == SAE_BATCHTOPK)
        p.v.b_dec[sc->dim] = 4.0f; /* the inference threshold: a few groups pass */
    for (int i = 0; i < sc->n; i++)
        dead[i] = (i / sc->s) % 3 != 0;
    sae_pass pass = {.coef = sc->coef, .threshold = sc->thr, .train = sc->train, .dead = sc->with_dead ? dead : NULL};
    sae_loss_terms ts, td;
    double ls = sae_loss_grad_pass(&p, x, sc->B, &pass, &w, g_sp, &ts);
    memcpy(xh, w.x_hat, (size_t)sc->B * sc->dim * sizeof(float));
    CHECK(sae_sparse_collect(w.sparse, &c, &w, sc->B) == 0, "%s: sparse enough for the sparse pass (l0 %g of %d)",
          what, ts.l0, sc->n);
    struct sae_sparse *keep = w.sparse;
    w.sparse = NULL; /* the dense pass */
    double ld = sae_loss_grad_pass(&p, x, sc->B, &pass, &w, g_de, &td);
    w.sparse = keep;
    double worst;
    CHECK(fabs(ls - ld) <= 2e-5 * fabs(ld) + 1e-6, "%s: loss %.9g vs dense %.9g", what, ls, ld);
    CHECK(fabs(ts.mse - td.mse) <= 2e-5 * td.mse + 1e-7 && ts.l0 == td.l0 && ts.l0_groups == td.l0_groups,
          "%s: terms (mse %g vs %g, l0 %g vs %g)", what, ts.mse, td.mse, ts.l0, td.l0);
    CHECK(ts.l0 > 0.5, "%s: latents fire (l0 %g)", what, ts.l0);
    CHECK(sp_close(xh, w.x_hat, (size_t)sc->B * sc->dim, &worst), "%s: x_hat (max diff %g)", what, worst);
    sp_check_grad(&p, g_sp, g_de, what);
    /* the forward alone (evaluation) also runs sparse and agrees */
    double lf = sae_loss_grad_pass(&p, x, sc->B, &pass, &w, NULL, &ts);
    CHECK(fabs(lf - ld) <= 2e-5 * fabs(ld) + 1e-6, "%s: the forward alone %.9g vs %.9g", what, lf, ld);
    sae_params_free(&p);
    sae_work_free(&w);
    free(x), free(g_sp), free(g_de), free(xh), free(dead);
}

/* A prox subspace whose threshold keeps nearly every group: more entries than the sparse buffers hold,
 * so the pass runs dense, and gives the same numbers as with the sparse pass switched off. */
static void sp_dense_fallback(void)
{
    sae_config c = {.arch = SAE_SUBSPACE, .dim = 8, .n_latents = 40, .group_size = 2, .threshold = 0.01f,
                    .sparsity_coef = 0.1f, .aux_k_coef = 0.03125f};
    sae_params p;
    sae_work w;
    CHECK(sae_params_alloc(&p, &c) == 0 && sae_work_alloc(&w, &c, 16) == 0, "alloc");
    float *x = malloc(16 * 8 * sizeof(float)), *g1 = malloc(p.n_params * sizeof(float));
    float *g2 = malloc(p.n_params * sizeof(float));
    gradcheck_random_sae(&p, x, 16, 3);
    sae_pass pass = {.coef = 0.1f, .threshold = 0.01f, .train = 1};
    sae_loss_terms t;
    double l1 = sae_loss_grad_pass(&p, x, 16, &pass, &w, g1, &t);
    CHECK(sae_sparse_collect(w.sparse, &c, &w, 16) == -1 && t.l0 > 0.9 * 40, "too dense to collect (l0 %g)", t.l0);
    struct sae_sparse *keep = w.sparse;
    w.sparse = NULL;
    double l2 = sae_loss_grad_pass(&p, x, 16, &pass, &w, g2, NULL);
    w.sparse = keep;
    CHECK(l1 == l2 && memcmp(g1, g2, p.n_params * sizeof(float)) == 0, "the dense fallback is the dense pass");
    sae_params_free(&p);
    sae_work_free(&w);
    free(x), free(g1), free(g2);
}

int main(void)
{
    for (int threads = 1; threads <= 3; threads++) {
        par_pool *pool = threads > 1 ? par_create(threads) : NULL;
        for (int k = 0; k < N_SP; k++)
            sp_run(&sp_cases[k], pool);
        par_free(pool);
    }
    sp_dense_fallback();
    return check_report();
}
