/* test_core — unit tests of the numerical core: rng, circles, npy headers,
 * SAE gradients against finite differences, decoder-norm maintenance,
 * schedules, checkpoint resume bit-exactness, a short training run, and
 * configuration checks. Small shapes; runs in seconds. */
#include "check.h"
#include "circles.h"
#include "datasrc.h"
#include "gradcheck.h"
#include "npy.h"
#include "rng.h"
#include "sae.h"
#include "train.h"
#include "trainlog.h"
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- rng */

static void test_rng(void)
{
    rng_t a, b, c;
    rng_seed(&a, 42, 7);
    rng_seed(&b, 42, 7);
    rng_seed(&c, 42, 8);
    int same = 1, differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = rng_next(&a), y = rng_next(&b), z = rng_next(&c);
        same &= x == y;
        differ += x != z;
    }
    CHECK(same, "same (seed, stream) must give the same sequence");
    CHECK(differ == 100, "another stream must differ (%d of 100 differ)", differ);

    rng_t f = a; /* a generator is a value: a copy forks the stream */
    CHECK(rng_next(&f) == rng_next(&a), "a copied generator continues identically");

    double sum = 0.0, sum2 = 0.0, umin = 1.0, umax = 0.0;
    int counts[5] = {0}, N = 20000;
    for (int i = 0; i < N; i++) {
        double u = rng_uniform(&a);
        umin = u < umin ? u : umin;
        umax = u > umax ? u : umax;
        float g = rng_normal(&a);
        sum += g;
        sum2 += (double)g * g;
        counts[rng_below(&a, 5)]++;
    }
    CHECK(umin >= 0.0 && umax < 1.0, "uniform in [0,1): min %g max %g", umin, umax);
    CHECK_NEAR(sum / N, 0.0, 0.03, "normal mean");
    CHECK_NEAR(sum2 / N, 1.0, 0.05, "normal variance");
    for (int k = 0; k < 5; k++)
        CHECK_NEAR(counts[k], N / 5.0, N / 5.0 * 0.06, "rng_below(5) bucket");
}

/* ---------------------------------------------------------------- circles */

/* Squared norm of v (dim) after removing its projection on span(basis[0..m)). */
static double residual_outside_span(const float *v, const float *const *basis, int m, int dim)
{
    double q[16][64], r[64];
    int nq = 0;
    for (int k = 0; k < m && nq < 16; k++) { /* Gram-Schmidt in double */
        double u[64], norm2 = 0.0;
        for (int d = 0; d < dim; d++)
            u[d] = basis[k][d];
        for (int j = 0; j < nq; j++) {
            double dot = 0.0;
            for (int d = 0; d < dim; d++)
                dot += u[d] * q[j][d];
            for (int d = 0; d < dim; d++)
                u[d] -= dot * q[j][d];
        }
        for (int d = 0; d < dim; d++)
            norm2 += u[d] * u[d];
        if (norm2 < 1e-12)
            continue;
        for (int d = 0; d < dim; d++)
            q[nq][d] = u[d] / sqrt(norm2);
        nq++;
    }
    for (int d = 0; d < dim; d++)
        r[d] = v[d];
    for (int j = 0; j < nq; j++) {
        double dot = 0.0;
        for (int d = 0; d < dim; d++)
            dot += r[d] * q[j][d];
        for (int d = 0; d < dim; d++)
            r[d] -= dot * q[j][d];
    }
    double s = 0.0;
    for (int d = 0; d < dim; d++)
        s += r[d] * r[d];
    return s;
}

static void test_circles_planes(const circles *c)
{
    const circles_params *p = circles_get_params(c);
    const float *pl = circles_planes(c);
    double worst = 0.0;
    for (int v = 0; v < 2 * p->n_circles; v++) {
        double n2 = 0.0;
        for (int d = 0; d < p->dim; d++)
            n2 += (double)pl[(size_t)v * p->dim + d] * pl[(size_t)v * p->dim + d];
        worst = fmax(worst, fabs(sqrt(n2) - 1.0));
    }
    CHECK(worst < 1e-5, "plane vectors unit norm (worst deviation %g)", worst);
}

static void test_circles_determinism(const circles *c)
{
    int dim = circles_get_params(c)->dim;
    uint64_t fwd[6] = {0, 1, 2, 1000, 123456789, TRAIN_EVAL_ROW0 + 3};
    uint64_t rev[6] = {TRAIN_EVAL_ROW0 + 3, 123456789, 1000, 2, 1, 0};
    float *a = malloc(6 * dim * sizeof(float)), *b = malloc(6 * dim * sizeof(float));
    float *one = malloc(dim * sizeof(float));
    circles_rows(c, fwd, 6, a);
    circles_rows(c, rev, 6, b);
    int ok = 1;
    for (int k = 0; k < 6; k++) {
        ok &= memcmp(a + k * dim, b + (5 - k) * dim, dim * sizeof(float)) == 0;
        circles_rows(c, &fwd[k], 1, one);
        ok &= memcmp(a + k * dim, one, dim * sizeof(float)) == 0;
    }
    CHECK(ok, "rows are the same in any order and batch");

    circles *again = circles_create(circles_get_params(c));
    circles_rows(again, fwd, 6, b);
    CHECK(memcmp(a, b, 6 * dim * sizeof(float)) == 0, "a second generator with the same seed agrees");
    CHECK(memcmp(circles_planes(c), circles_planes(again),
                 (size_t)circles_get_params(c)->n_circles * 2 * dim * sizeof(float)) == 0, "planes agree");
    circles_free(again);

    data_source src;
    datasrc_from_circles(&src, c);
    CHECK(src.dim == dim && src.n_rows == -1, "circles source: dim %d rows %lld", src.dim, (long long)src.n_rows);
    CHECK(src.get_rows(src.ctx, fwd, 6, b) == 0 && memcmp(a, b, 6 * dim * sizeof(float)) == 0,
          "data source returns the circles rows");
    free(a);
    free(b);
    free(one);
}

/* Every row lies in the span of its active circles' planes; counts follow p. */
static void test_circles_active(const circles *c)
{
    const circles_params *p = circles_get_params(c);
    const float *pl = circles_planes(c);
    int dim = p->dim, ids[64], N = 4000, total = 0, first = 0, last = 0, ok_span = 1, ok_sorted = 1;
    float *row = malloc(dim * sizeof(float));
    for (uint64_t r = 0; r < (uint64_t)N; r++) {
        int m = circles_row_active(c, r, ids, 64);
        const float *basis[16];
        circles_rows(c, &r, 1, row);
        for (int k = 0; k < m && k < 8; k++) {
            basis[2 * k] = pl + (size_t)ids[k] * 2 * dim;
            basis[2 * k + 1] = basis[2 * k] + dim;
            ok_sorted &= k == 0 || ids[k] > ids[k - 1];
        }
        double norm2 = 0.0;
        for (int d = 0; d < dim; d++)
            norm2 += (double)row[d] * row[d];
        if (m <= 8 && 2 * m < dim)
            ok_span &= residual_outside_span(row, basis, 2 * m, dim) <= 1e-8 * (1.0 + norm2);
        if (m == 0)
            ok_span &= norm2 == 0.0;
        else
            ok_span &= norm2 > 0.0; /* r_min > 0 in this test */
        total += m;
        first += m > 0 && ids[0] == 0;
        last += m > 0 && ids[m - 1] == p->n_circles - 1;
    }
    CHECK(ok_span, "each row lies in the span of its active circles' planes (and only those)");
    CHECK(ok_sorted, "active ids are increasing");
    double expect = p->n_circles * p->p_active;
    CHECK_NEAR((double)total / N, expect, 0.05 * expect, "mean active circles per row");
    CHECK_NEAR((double)first / N, p->p_active, 0.025, "P(circle 0 active)");
    CHECK_NEAR((double)last / N, p->p_active, 0.025, "P(last circle active)");
    CHECK(circles_row_active(c, 5, ids, 1) <= 1, "cap is respected");
    free(row);
}

static void test_circles(void)
{
    circles_params p;
    circles_params_default(&p);
    CHECK(p.n_circles == 1600 && p.dim == 200 && p.p_active == 0.002 && p.seed == 1, "circles defaults");
    p.n_circles = 40;
    p.dim = 24;
    p.p_active = 0.08;
    p.r_min = 0.5f;
    p.r_max = 1.5f;
    p.seed = 3;
    circles *c = circles_create(&p);
    CHECK(c != NULL, "circles_create");
    if (!c)
        return;
    test_circles_planes(c);
    test_circles_determinism(c);
    test_circles_active(c);
    circles_free(c);

    circles_params bad = p;
    bad.p_active = 1.5;
    CHECK(circles_create(&bad) == NULL, "p_active > 1 rejected");
    bad = p;
    bad.r_max = 0.1f;
    CHECK(circles_create(&bad) == NULL, "r_max < r_min rejected");
    bad = p;
    bad.dim = 0;
    CHECK(circles_create(&bad) == NULL, "dim 0 rejected");

    p.p_active = 1.0; /* every circle active */
    c = circles_create(&p);
    int ids[64];
    CHECK(c && circles_row_active(c, 9, ids, 64) == p.n_circles, "p_active 1: all active");
    circles_free(c);
    p.p_active = 0.0;
    c = circles_create(&p);
    CHECK(c && circles_row_active(c, 9, ids, 64) == 0, "p_active 0: none active");
    circles_free(c);
}

/* ---------------------------------------------------------------- npy */

static void test_npy_roundtrip(const char *descr, const int64_t *shape, int ndim)
{
    char buf[NPY_HEADER_MAX], err[128];
    size_t n = npy_header(buf, sizeof buf, descr, shape, ndim);
    CHECK(n > 0 && n % 64 == 0 && buf[n - 1] == '\n', "header length %zu multiple of 64 ending in newline", n);
    npy_info info;
    int rc = npy_parse_header(buf, n, &info, err, sizeof err);
    CHECK(rc == 0, "parse own header: %s", rc ? err : "");
    if (rc)
        return;
    int ok = info.ndim == ndim && info.header_len == n && strcmp(info.descr, descr) == 0;
    for (int i = 0; i < ndim; i++)
        ok &= info.shape[i] == shape[i];
    CHECK(ok, "round trip of %s ndim %d", descr, ndim);
}

static void test_npy_reject(const char *text, size_t len, const char *want)
{
    char err[128] = "";
    npy_info info;
    int rc = npy_parse_header(text, len, &info, err, sizeof err);
    CHECK(rc == -1 && strstr(err, want) != NULL, "expected error containing '%s', got rc %d '%s'", want, rc, err);
}

/* A v1.0 file prefix around dict (no padding) into buf; returns its length. */
static size_t make_npy(char *buf, const char *dict)
{
    size_t n = strlen(dict);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)(n + 1);
    buf[9] = 0;
    memcpy(buf + 10, dict, n);
    buf[10 + n] = '\n';
    return n + 11;
}

static void test_npy(void)
{
    int64_t s2[2] = {3, 4}, s1[1] = {5}, s4[4] = {2, 3, 4, 123456789012LL};
    test_npy_roundtrip("<f4", s2, 2);
    test_npy_roundtrip("<i4", s1, 1);
    test_npy_roundtrip("<f2", s4, 4);
    test_npy_roundtrip("<f4", NULL, 0);

    char buf[NPY_HEADER_MAX];
    size_t n = npy_header(buf, sizeof buf, "<f4", s2, 2);
    CHECK(strstr(buf + 10, "'shape': (3, 4)") != NULL, "shape written as numpy does");
    n = npy_header(buf, sizeof buf, "<f4", s1, 1);
    CHECK(strstr(buf + 10, "'shape': (5,)") != NULL, "1-D shape has its comma");
    CHECK(npy_header(buf, 16, "<f4", s2, 2) == 0, "too small a buffer gives 0");

    npy_info info;
    char err[128], h[160];
    size_t hl = make_npy(h, "{'shape': (7, 2), 'fortran_order': False, 'descr': '<f2'}");
    CHECK(npy_parse_header(h, hl, &info, err, sizeof err) == 0 && info.shape[0] == 7 && info.shape[1] == 2 &&
          strcmp(info.descr, "<f2") == 0 && info.header_len == hl, "keys in another order");
    test_npy_reject("hello world", 11, "not a .npy file");
    test_npy_reject(h, 40, "truncated");
    hl = make_npy(h, "{'descr': '<f4', 'fortran_order': True, 'shape': (7, 2), }");
    test_npy_reject(h, hl, "Fortran order");
    hl = make_npy(h, "{'descr': '>f4', 'fortran_order': False, 'shape': (7, 2), }");
    test_npy_reject(h, hl, "big-endian");
    hl = make_npy(h, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,2,3,4,5)}");
    test_npy_reject(h, hl, "more than 4");
    hl = make_npy(h, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 2)}");
    test_npy_reject(h, hl, "non-negative");
    hl = make_npy(h, "{'descr': '<f4', 'shape': (1, 2)}");
    test_npy_reject(h, hl, "needs descr");
    hl = make_npy(h, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), 'x': 1}");
    test_npy_reject(h, hl, "unexpected key");
    hl = make_npy(h, "{'descr': '<f4, 'fortran_order': False, 'shape': (1, 2)}");
    test_npy_reject(h, hl, "malformed");
    hl = make_npy(h, "{}");
    h[6] = 9;
    test_npy_reject(h, hl, "version");
    (void)n;
}

/* ---------------------------------------------------------------- gradients */

typedef struct {
    const char *name;
    int dim, n, s, B;
    float coef, orth, thr; /* thr > 0: bandwidth thr too (a wide window, so it holds groups) */
} grad_case;

/* The sign pattern the loss is smooth within: active latents, positive pre-activations (the
 * surrogate's kinks) and positive orth dots; 2 B n + n s bytes at most. */
static void loss_pattern(const sae_params *p, const sae_work *w, int B, unsigned char *pat)
{
    const sae_config *c = &p->cfg;
    size_t k = 0, nz = (size_t)B * c->n_latents;
    for (; k < nz; k++) {
        pat[k] = w->z[k] > 0.0f;
        pat[nz + k] = w->pre[k] > 0.0f;
    }
    gradcheck_orth_signs(p, 0, pat + 2 * nz);
}

/* The threshold's surrogate, frozen at the base point: per row and group, the group norm rho0 and
 * q0/eps where the group is in the kernel window, else 0 (include/sae.h). */
typedef struct {
    double *rho0; /* (B, G) */
    double *qe;   /* (B, G) q_g / eps in the window, 0 outside */
} jump_frozen;

typedef struct {
    sae_params *p;
    const float *x;
    const grad_case *gc;
    sae_work *w;
    const jump_frozen *jf; /* the surrogate loss; NULL: the true loss */
} grad_ctx;

/* rho_g = ||ReLU(pre_g)|| of row-group bg from w's pre-activations. */
static double group_rho(const sae_work *w, int s, size_t bg)
{
    double r2 = 0.0;
    for (int k = 0; k < s; k++)
        r2 += w->pre[bg * s + k] > 0.0f ? (double)w->pre[bg * s + k] * w->pre[bg * s + k] : 0.0;
    return sqrt(r2);
}

/* Freezes rho0 and q0/eps = (dx_hat . sum_j a_j d_j + c/B rho0) / eps at w's forward pass (the base point). */
static void jump_freeze(const sae_params *p, const float *x, const sae_work *w, int B, float coef, jump_frozen *jf)
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents, s = c->group_size, dim = c->dim, G = n / s;
    for (size_t bg = 0; bg < (size_t)B * G; bg++) {
        size_t b = bg / G;
        double rho = group_rho(w, s, bg), q = coef / (double)B * rho;
        for (int k = 0; k < s; k++) {
            size_t i = (bg % G) * s + k;
            double a = fmax(w->pre[bg * s + k], 0.0);
            for (int d = 0; d < dim && a > 0.0; d++)
                q += a * 2.0 * (w->x_hat[b * dim + d] - x[b * dim + d]) / B * p->v.W_dec[i * dim + d];
        }
        jf->rho0[bg] = rho;
        jf->qe[bg] = rho > 0.0 && fabs(rho - c->threshold) < 0.5 * c->bandwidth ? q / c->bandwidth : 0.0;
    }
}

/* What the surrogate adds to the true loss at w's forward pass: sum over window groups of
 * (q0/eps) (rho - rho0), 0 at the base point, whose gradient is the jump term. */
static double jump_correction(const sae_config *c, const sae_work *w, int B, const jump_frozen *jf)
{
    int s = c->group_size;
    double sum = 0.0;
    for (size_t bg = 0; bg < (size_t)B * (c->n_latents / s); bg++)
        if (jf->qe[bg] != 0.0)
            sum += jf->qe[bg] * (group_rho(w, s, bg) - jf->rho0[bg]);
    return sum;
}

static double grad_loss(void *ctx, unsigned char *pat)
{
    grad_ctx *g = ctx;
    double loss = sae_loss_grad(g->p, g->x, g->gc->B, g->gc->coef, g->w, NULL, NULL);
    if (g->jf)
        loss += jump_correction(&g->p->cfg, g->w, g->gc->B, g->jf);
    loss_pattern(g->p, g->w, g->gc->B, pat);
    return loss;
}

/* threshold > 0: the straight-through gradient is checked above against the surrogate; here the
 * true loss must agree on W_dec, which the jump term does not reach, and disagree somewhere else
 * (so the cases exercise the jump term). */
static void test_grad_true_loss(const grad_case *gc, sae_params *p, const float *x, sae_work *w,
                                const float *grad, const unsigned char *pat0, size_t npat)
{
    grad_ctx ctx = {p, x, gc, w, NULL};
    gradcheck_job job = {gc->name, p->buf, grad, grad_loss, &ctx, pat0, npat};
    gradcheck_stats dec = {0}, all = {0};
    size_t k0 = (size_t)(p->v.W_dec - p->buf), k1 = k0 + (size_t)gc->n * gc->dim;
    gradcheck_range(&job, k0, k1, &dec);
    gradcheck_range(&job, 0, p->n_params, &all);
    CHECK(dec.bad == 0 && dec.checked > 0, "%s: W_dec against the true loss: %d of %d off", gc->name, dec.bad,
          dec.checked);
    CHECK(all.bad > 0, "%s: the true loss's derivative differs from the straight-through gradient somewhere",
          gc->name);
    printf("gradcheck %-18s true loss: W_dec %d checked, all ok; %d of %d params differ (straight-through)\n",
           gc->name, dec.checked, all.bad, all.checked);
}

/* Central differences of every parameter; tolerance |fd - g| <= 1e-2 max(|fd|,|g|) + 1e-3. With a
 * threshold the differences are those of the surrogate (jump_correction), whose gradient
 * sae_loss_grad returns; test_grad_true_loss then compares with the true loss. */
static void test_grad_case(const grad_case *gc)
{
    sae_config c = {.arch = SAE_RELU, .dim = gc->dim, .n_latents = gc->n, .group_size = gc->s,
                    .sparsity_coef = gc->coef, .orth_coef = gc->orth, .threshold = gc->thr, .bandwidth = gc->thr};
    sae_params p;
    sae_work w;
    size_t npat = 2 * (size_t)gc->B * gc->n + (size_t)gc->n * gc->s;
    float *x = malloc((size_t)gc->B * gc->dim * sizeof(float));
    unsigned char *pat0 = calloc(npat, 1); /* (npat) the base point's pattern */
    CHECK(sae_params_alloc(&p, &c) == 0 && sae_work_alloc(&w, &c, gc->B) == 0, "alloc");
    float *grad = malloc(p.n_params * sizeof(float));
    gradcheck_random_sae(&p, x, gc->B, 11);
    sae_loss_terms t;
    sae_loss_grad(&p, x, gc->B, gc->coef, &w, grad, &t);
    loss_pattern(&p, &w, gc->B, pat0);
    CHECK(t.l0 > 0.5 && t.l0 < gc->n - 0.5, "%s: a mix of active and inactive latents (l0 %g)", gc->name, t.l0);
    if (gc->thr > 0.0f) { /* the threshold must zero some groups that the ReLU alone would keep */
        sae_config c0 = c;
        c0.threshold = 0.0f;
        sae_params p0 = p;
        p0.cfg = c0;
        sae_loss_terms t0;
        sae_loss_grad(&p0, x, gc->B, gc->coef, &w, NULL, &t0);
        CHECK(t0.l0_groups > t.l0_groups + 0.5, "%s: threshold zeroes groups (%g -> %g)", gc->name, t0.l0_groups,
              t.l0_groups);
    }
    size_t BG = (size_t)gc->B * (gc->n / gc->s);
    jump_frozen jf = {malloc(BG * sizeof(double)), malloc(BG * sizeof(double))};
    sae_loss_grad(&p, x, gc->B, gc->coef, &w, NULL, NULL); /* w back at the base point */
    jump_freeze(&p, x, &w, gc->B, gc->coef, &jf);
    int window = 0;
    for (size_t bg = 0; bg < BG; bg++)
        window += jf.qe[bg] != 0.0;
    CHECK(gc->thr == 0.0f || window > 0, "%s: %d groups in the threshold's window", gc->name, window);
    grad_ctx ctx = {&p, x, gc, &w, gc->thr > 0.0f ? &jf : NULL};
    gradcheck_job job = {gc->name, p.buf, grad, grad_loss, &ctx, pat0, npat};
    gradcheck_stats st = {0};
    gradcheck_range(&job, 0, p.n_params, &st);
    CHECK(st.bad == 0, "%s: %d of %d gradients off (worst err/tol %.3g)", gc->name, st.bad, st.checked,
          st.worst_ratio);
    CHECK(st.checked >= (int)(0.8 * p.n_params), "%s: %d checked, %d skipped at kinks", gc->name, st.checked,
          st.skipped);
    printf("gradcheck %-18s %4d params checked, %3d at kinks skipped, worst err/tol %.3f\n", gc->name, st.checked,
           st.skipped, st.worst_ratio);
    if (gc->thr > 0.0f)
        test_grad_true_loss(gc, &p, x, &w, grad, pat0, npat);
    free(jf.rho0), free(jf.qe);
    sae_params_free(&p);
    sae_work_free(&w);
    free(grad);
    free(x);
    free(pat0);
}

static void test_gradients(void)
{
    static const grad_case cases[] = {
        {"s1", 6, 8, 1, 5, 0.3f, 0.0f, 0.0f},
        {"s1 thr", 6, 8, 1, 5, 0.3f, 0.0f, 0.25f},
        {"s2", 6, 8, 2, 5, 0.3f, 0.0f, 0.0f},
        {"s2 orth", 6, 8, 2, 5, 0.3f, 0.7f, 0.0f},
        {"s2 orth thr", 6, 8, 2, 5, 0.3f, 0.4f, 1.2f},
        {"s3 orth", 5, 12, 3, 4, 0.2f, 0.3f, 0.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_grad_case(&cases[i]);
}

/* sae_encode agrees with the training forward pass. */
static void test_encode(void)
{
    sae_config c = {.arch = SAE_RELU, .dim = 7, .n_latents = 10, .group_size = 2,
                    .sparsity_coef = 0.1f, .orth_coef = 0.0f, .threshold = 0.3f};
    sae_params p;
    sae_work w;
    int B = 300; /* more than one encode chunk */
    float *x = malloc((size_t)B * 7 * sizeof(float)), *z = malloc((size_t)B * 10 * sizeof(float));
    float *xh = malloc((size_t)B * 7 * sizeof(float));
    sae_params_alloc(&p, &c);
    sae_work_alloc(&w, &c, B);
    gradcheck_random_sae(&p, x, B, 5);
    sae_loss_grad(&p, x, B, 0.1f, &w, NULL, NULL);
    CHECK(sae_encode(&p, NULL, x, B, z, xh) == 0, "encode");
    CHECK(memcmp(z, w.z, (size_t)B * 10 * sizeof(float)) == 0, "encode z matches the training forward");
    CHECK(memcmp(xh, w.x_hat, (size_t)B * 7 * sizeof(float)) == 0, "encode x_hat matches");
    CHECK(sae_train_bytes(&c, 64) > 4 * sae_n_params(&c) * sizeof(float) + sae_work_bytes(&c, 64),
          "train bytes covers params, moments and workspace");
    sae_params_free(&p);
    sae_work_free(&w);
    free(x);
    free(z);
    free(xh);
}

/* ---------------------------------------------------------------- decoder norms */

static void test_decoder_norm(void)
{
    sae_config c = {.arch = SAE_RELU, .dim = 9, .n_latents = 12, .group_size = 2,
                    .sparsity_coef = 0.1f, .orth_coef = 0.2f, .threshold = 0.0f};
    sae_params p;
    sae_params_alloc(&p, &c);
    sae_params_init(&p, 4);
    double worst = 0.0, tied = 0.0;
    for (int i = 0; i < 12; i++) {
        double n2 = 0.0;
        for (int d = 0; d < 9; d++) {
            n2 += (double)p.v.W_dec[i * 9 + d] * p.v.W_dec[i * 9 + d];
            tied = fmax(tied, fabs(0.75f * p.v.W_dec[i * 9 + d] - p.v.W_enc[d * 12 + i]));
        }
        worst = fmax(worst, fabs(n2 - 1.0));
    }
    CHECK(worst < 1e-5 && tied == 0.0, "init: unit decoder rows (%g), W_enc = (dim/n) W_dec^T (%g)", worst, tied);
    CHECK(p.v.b_enc[3] == 0.0f && p.v.b_dec[2] == 0.0f, "init: biases 0");

    float *g = malloc(p.n_params * sizeof(float));
    rng_t r;
    rng_seed(&r, 1, 1);
    gradcheck_fill_normal(&r, g, p.n_params, 1.0f);
    float *before = malloc(p.n_params * sizeof(float));
    memcpy(before, g, p.n_params * sizeof(float));
    sae_project_decoder_grad(&p, g);
    sae_view gv;
    sae_views(&c, g, &gv);
    double par = 0.0;
    for (int i = 0; i < 12; i++) {
        double dot = 0.0;
        for (int d = 0; d < 9; d++)
            dot += (double)gv.W_dec[i * 9 + d] * p.v.W_dec[i * 9 + d];
        par = fmax(par, fabs(dot));
    }
    CHECK(par < 1e-5, "projected decoder gradient is orthogonal to its row (%g)", par);
    CHECK(memcmp(g, before, (size_t)(gv.W_dec - g) * sizeof(float)) == 0, "other gradients untouched");

    for (int i = 0; i < 12 * 9; i++)
        p.v.W_dec[i] *= 1.0f + 0.1f * (float)(i % 7);
    sae_normalize_decoder(&p);
    worst = 0.0;
    for (int i = 0; i < 12; i++) {
        double n2 = 0.0;
        for (int d = 0; d < 9; d++)
            n2 += (double)p.v.W_dec[i * 9 + d] * p.v.W_dec[i * 9 + d];
        worst = fmax(worst, fabs(n2 - 1.0));
    }
    CHECK(worst < 1e-5, "normalize: unit rows (%g)", worst);
    free(g);
    free(before);
    sae_params_free(&p);
}

/* ---------------------------------------------------------------- schedules */

static void test_schedules(void)
{
    train_config t;
    train_config_default(&t);
    CHECK(t.steps == 20000 && t.batch_size == 4096 && t.lr == 1e-3f && t.decay == LR_DECAY_LINEAR &&
          t.eval_rows == 4096 && t.dead_window == 1000, "train defaults");
    t.steps = 100;
    t.lr = 1.0f;
    t.lr_warmup_steps = 10;
    CHECK_NEAR(train_lr_at(&t, 0), 0.1, 1e-12, "warm-up step 0");
    CHECK_NEAR(train_lr_at(&t, 4), 0.5, 1e-12, "warm-up step 4");
    CHECK_NEAR(train_lr_at(&t, 9), 1.0, 1e-12, "warm-up last step");
    CHECK_NEAR(train_lr_at(&t, 10), 1.0, 1e-12, "decay start");
    CHECK_NEAR(train_lr_at(&t, 55), 0.5, 1e-12, "linear halfway");
    CHECK_NEAR(train_lr_at(&t, 99), 1.0 / 90, 1e-12, "linear last step");
    t.decay = LR_DECAY_COSINE;
    CHECK_NEAR(train_lr_at(&t, 55), 0.5, 1e-12, "cosine halfway");
    CHECK_NEAR(train_lr_at(&t, 32.5 > 0 ? 10 + 22 : 0), 0.5 * (1 + cos(M_PI * 22 / 90)), 1e-12, "cosine");
    t.decay = LR_DECAY_NONE;
    CHECK_NEAR(train_lr_at(&t, 99), 1.0, 1e-12, "no decay");
    t.lr_warmup_steps = 0;
    t.decay = LR_DECAY_LINEAR;
    CHECK_NEAR(train_lr_at(&t, 0), 1.0, 1e-12, "no warm-up");

    sae_config c = {.arch = SAE_RELU, .dim = 4, .n_latents = 4, .group_size = 1,
                    .sparsity_coef = 0.5f, .orth_coef = 0.0f, .threshold = 0.0f};
    t.sparsity_warmup_steps = 20;
    CHECK_NEAR(train_sparsity_coef_at(&c, &t, 0), 0.0, 1e-12, "sparsity at 0");
    CHECK_NEAR(train_sparsity_coef_at(&c, &t, 10), 0.25, 1e-7, "sparsity halfway");
    CHECK_NEAR(train_sparsity_coef_at(&c, &t, 20), 0.5, 1e-7, "sparsity after warm-up");
    t.sparsity_warmup_steps = 0;
    CHECK_NEAR(train_sparsity_coef_at(&c, &t, 0), 0.5, 1e-7, "no sparsity warm-up");

    lr_decay d;
    CHECK(lr_decay_parse("cosine", &d) == 0 && d == LR_DECAY_COSINE && lr_decay_parse("exp", &d) == -1,
          "lr_decay_parse");
    CHECK(strcmp(lr_decay_name(LR_DECAY_NONE), "none") == 0, "lr_decay_name");
    sae_arch a;
    CHECK(sae_arch_parse("relu", &a) == 0 && a == SAE_RELU && sae_arch_parse("gated", &a) == 0 &&
          a == SAE_GATED && sae_arch_parse("Relu", &a) == -1, "sae_arch_parse");
    CHECK(strcmp(sae_arch_name(SAE_JUMPRELU), "jumprelu") == 0, "sae_arch_name");
}

/* ---------------------------------------------------------------- training harness */

/* An in-memory finite data source. */
typedef struct {
    int dim;
    const float *rows; /* (n_rows, dim) */
} mem_src;

static int mem_get_rows(void *ctx, const uint64_t *idx, int n, float *out)
{
    mem_src *m = ctx;
    for (int k = 0; k < n; k++)
        memcpy(out + (size_t)k * m->dim, m->rows + idx[k] * m->dim, m->dim * sizeof(float));
    return 0;
}

/* Runs N steps straight, and k steps + checkpoint + restore + the rest; the two must agree bit for bit. */
static void test_resume_with(const char *what, const sae_config *c, const train_config *t, const data_source *src,
                             int k)
{
    char err[256];
    trainlog ha = {0}, hb = {0}, hc = {0};
    train_hooks h = trainlog_hooks(&ha);
    train_state *a = train_create(c, t, src, err, sizeof err);
    CHECK(a && train_run(a, &h) == TRAIN_DONE, "%s: straight run", what);
    hb.stop_at_poll = k + 1;
    hb.stop = TRAIN_SHUTDOWN;
    h = trainlog_hooks(&hb);
    train_state *b = train_create(c, t, src, err, sizeof err);
    train_result rb = train_run(b, &h);
    CHECK(rb == TRAIN_INTERRUPTED && hb.checkpoints == 1 && train_step_done(b) == k,
          "%s: shutdown checkpoints once at step %d (result %d, %d checkpoints)", what, k, rb, hb.checkpoints);
    train_state *r = train_create(c, t, src, err, sizeof err);
    int rc = train_checkpoint_restore(r, hb.blob, hb.blob_len, err, sizeof err);
    CHECK(rc == 0 && train_step_done(r) == k, "%s: restore: %s", what, rc ? err : "ok");
    h = trainlog_hooks(&hc);
    CHECK(train_run(r, &h) == TRAIN_DONE, "%s: resumed run", what);
    size_t la, lr;
    void *ba = trainlog_final_blob(a, &la), *br = trainlog_final_blob(r, &lr);
    CHECK(la == lr && memcmp(ba, br, la) == 0, "%s: resumed run matches the straight run bit for bit", what);
    CHECK(memcmp(train_params(a)->buf, train_params(r)->buf, train_params(a)->n_params * sizeof(float)) == 0,
          "%s: params identical", what);
    free(ba);
    free(br);
    free(ha.blob);
    free(hb.blob);
    free(hc.blob);
    train_free(a);
    train_free(b);
    train_free(r);
}

static void small_configs(sae_config *c, train_config *t, int dim)
{
    *c = (sae_config){.arch = SAE_RELU, .dim = dim, .n_latents = 32, .group_size = 2,
                      .sparsity_coef = 0.05f, .orth_coef = 0.1f, .threshold = 0.0f};
    trainlog_small_config(t);
}

static void test_resume(const circles *circ, const float *rows, int n_rows)
{
    sae_config c;
    train_config t;
    data_source src;
    small_configs(&c, &t, 16);
    datasrc_from_circles(&src, circ);
    test_resume_with("endless", &c, &t, &src, 11);
    mem_src m = {16, rows};
    data_source fin = {16, n_rows, &m, mem_get_rows};
    t.decay = LR_DECAY_COSINE;
    test_resume_with("finite", &c, &t, &fin, 13); /* 250 training rows: epochs turn mid-batch */
}

/* Hooks, cancellation, restore validation and the non-finite guard. */
/* A long evaluation (200000 held-out rows of a stream, batches of 64) polls the stop every 65536 rows:
 * shutdown in the middle of it checkpoints the steps done and stops, cancel stops; neither waits for
 * the evaluation to end, which records nothing. */
static void test_eval_stops(const circles *circ)
{
    sae_config c;
    train_config t;
    data_source src;
    char err[256];
    small_configs(&c, &t, 16);
    t.steps = 3, t.eval_every = 1, t.eval_rows = 200000, t.checkpoint_every = 0;
    datasrc_from_circles(&src, circ);
    for (int cancel = 0; cancel < 2; cancel++) {
        trainlog hl = {.stop_at_poll = 3, .stop = cancel ? TRAIN_CANCEL : TRAIN_SHUTDOWN};
        train_hooks h = trainlog_hooks(&hl);
        train_state *st = train_create(&c, &t, &src, err, sizeof err);
        train_result r = st ? train_run(st, &h) : TRAIN_ERROR;
        CHECK(r == (cancel ? TRAIN_CANCELLED : TRAIN_INTERRUPTED) && train_step_done(st) == 1 && hl.evals == 0 &&
                  hl.checkpoints == !cancel,
              "%s during the first evaluation (the third poll, at its row 131072): result %d, step %d, %d evals, "
              "%d checkpoints", cancel ? "cancel" : "shutdown", (int)r, st ? train_step_done(st) : -1, hl.evals,
              hl.checkpoints);
        free(hl.blob);
        train_free(st);
    }
    t.eval_rows = TRAIN_MAX_EVAL_ROWS + 1;
    char field[64], msg[256];
    CHECK(train_config_check(&t, field, sizeof field, msg, sizeof msg) == -1 && !strcmp(field, "train.eval_rows"),
          "eval_rows above 2^20 is refused: %s", msg);
    t.eval_rows = 4096, t.lr = 2.0f;
    CHECK(train_config_check(&t, field, sizeof field, msg, sizeof msg) == -1 && !strcmp(field, "train.lr"),
          "lr above 1 is refused: %s", msg);
}

static void test_trainer_contract(const circles *circ)
{
    sae_config c;
    train_config t;
    data_source src;
    char err[256];
    small_configs(&c, &t, 16);
    t.checkpoint_every = 10;
    datasrc_from_circles(&src, circ);
    trainlog hl = {0};
    train_hooks h = trainlog_hooks(&hl);
    train_state *st = train_create(&c, &t, &src, err, sizeof err);
    CHECK(train_run(st, &h) == TRAIN_DONE, "run");
    CHECK(hl.evals == 5 && hl.eval_steps[0] == 7 && hl.eval_steps[3] == 28 && hl.eval_steps[4] == 30,
          "evaluations at 7, 14, 21, 28 and the last step (%d evals)", hl.evals);
    CHECK(hl.checkpoints == 2, "checkpoints at 10 and 20 (%d)", hl.checkpoints);
    const train_metrics *m = train_last_metrics(st);
    CHECK(m->step == 30 && m->lr > 0 && m->samples_per_s > 0 && m->dead_frac >= 0 && m->dead_frac <= 1,
          "final metrics: step %d lr %g sps %g dead %g", m->step, m->lr, m->samples_per_s, m->dead_frac);

    char *blob = hl.blob;
    train_config t2 = t;
    t2.lr = 1e-2f;
    train_state *other = train_create(&c, &t2, &src, err, sizeof err);
    CHECK(train_checkpoint_restore(other, blob, hl.blob_len, err, sizeof err) == -1 && strstr(err, "train.lr"),
          "restore names the differing field: %s", err);
    train_free(other);
    blob[hl.blob_len / 2] ^= 1;
    CHECK(train_checkpoint_restore(st, blob, hl.blob_len, err, sizeof err) == -1 && strstr(err, "corrupt"),
          "corrupt blob rejected: %s", err);
    blob[hl.blob_len / 2] ^= 1;
    CHECK(train_checkpoint_restore(st, blob, hl.blob_len - 3, err, sizeof err) == -1, "short blob rejected");
    CHECK(train_checkpoint_restore(st, "not a checkpoint", 16, err, sizeof err) == -1 && strstr(err, "not a"),
          "foreign blob rejected: %s", err);
    CHECK(train_checkpoint_restore(st, blob, hl.blob_len, err, sizeof err) == 0 && train_step_done(st) == 20,
          "own blob restores to step 20");
    train_free(st);
    free(hl.blob);

    trainlog hc = {.stop_at_poll = 4, .stop = TRAIN_CANCEL};
    h = trainlog_hooks(&hc);
    st = train_create(&c, &t, &src, err, sizeof err);
    CHECK(train_run(st, &h) == TRAIN_CANCELLED && hc.checkpoints == 0 && train_step_done(st) == 3,
          "cancel stops between steps without a checkpoint");
    train_free(st);

    t.lr = 1.0f; /* the most train.lr allows, on rows of norm 1e20: their squares overflow */
    t.lr_warmup_steps = 0;
    t.grad_clip = 0.0f;
    circles_params huge_p = {8, 16, 0.3, 1e20f, 1e20f, 3};
    circles *huge = circles_create(&huge_p);
    data_source huge_src;
    datasrc_from_circles(&huge_src, huge);
    st = train_create(&c, &t, &huge_src, err, sizeof err);
    trainlog hn = {0};
    h = trainlog_hooks(&hn);
    CHECK(train_run(st, &h) == TRAIN_ERROR && strstr(train_error(st), "lower train.lr"),
          "non-finite loss stops with advice: %s", train_error(st));
    train_free(st);
    circles_free(huge);
    free(hc.blob);
    free(hn.blob);

    data_source tiny = src;
    tiny.n_rows = 40;
    CHECK(train_create(&c, &t, &tiny, err, sizeof err) == NULL && strstr(err, "train.eval_rows"),
          "too few rows: %s", err);
    tiny.n_rows = -1;
    tiny.dim = 5;
    CHECK(train_create(&c, &t, &tiny, err, sizeof err) == NULL && strstr(err, "sae.dim"), "dim mismatch: %s", err);
}

/* The metrics of a finite source recomputed here from the final parameters. */
static void test_eval_metrics(const float *rows, int n_rows)
{
    sae_config c;
    train_config t;
    char err[256];
    small_configs(&c, &t, 16);
    t.dead_window = 1000;
    mem_src ms = {16, rows};
    data_source src = {16, n_rows, &ms, mem_get_rows};
    train_state *st = train_create(&c, &t, &src, err, sizeof err);
    train_hooks h = {0};
    CHECK(train_run(st, &h) == TRAIN_DONE, "run");
    const train_metrics *m = train_last_metrics(st);
    int R = t.eval_rows;
    const float *ev = rows + (size_t)(n_rows - R) * 16; /* (R, 16) the held-out rows */
    float *z = malloc((size_t)R * 32 * sizeof(float)), *xh = malloc((size_t)R * 16 * sizeof(float));
    sae_encode(train_params(st), NULL, ev, R, z, xh);
    double mean[16] = {0}, sse = 0, sst = 0, l0 = 0;
    for (int k = 0; k < R * 16; k++)
        mean[k % 16] += ev[k] / R;
    for (int k = 0; k < R * 16; k++) {
        sse += (xh[k] - ev[k]) * (double)(xh[k] - ev[k]);
        sst += (ev[k] - mean[k % 16]) * (ev[k] - mean[k % 16]);
    }
    for (int k = 0; k < R * 32; k++)
        l0 += z[k] > 0;
    CHECK_NEAR(m->mse, sse / R, 1e-6 * (1 + sse / R), "eval mse");
    CHECK_NEAR(m->fve, 1 - sse / sst, 1e-6, "eval fve");
    CHECK_NEAR(m->l0, l0 / R, 1e-9, "eval l0");
    CHECK(m->dead_frac == 0.0, "dead_frac is 0 before the window has passed");
    free(z);
    free(xh);
    train_free(st);
}

/* 20 circles in 16-D: a short run must reconstruct well. */
static void test_train_circles(void)
{
    circles_params cp = {20, 16, 0.1, 1.0f, 1.0f, 7};
    circles *circ = circles_create(&cp);
    data_source src;
    datasrc_from_circles(&src, circ);
    sae_config c = {.arch = SAE_RELU, .dim = 16, .n_latents = 80, .group_size = 1,
                    .sparsity_coef = 0.1f, .orth_coef = 0.0f, .threshold = 0.0f};
    train_config t;
    train_config_default(&t);
    t.steps = 1500;
    t.batch_size = 128;
    t.lr = 3e-3f;
    t.lr_warmup_steps = 100;
    t.sparsity_warmup_steps = 300;
    t.eval_every = 500;
    t.eval_rows = 1024;
    t.dead_window = 500;
    char err[256];
    train_state *st = train_create(&c, &t, &src, err, sizeof err);
    train_hooks h = {0};
    CHECK(st && train_run(st, &h) == TRAIN_DONE, "train circles: %s", st ? train_error(st) : err);
    const train_metrics *m = train_last_metrics(st);
    printf("train 20 circles in 16-D: fve %.4f mse %.4f l0 %.2f dead %.3f loss %.4f\n", m->fve, m->mse, m->l0,
           m->dead_frac, m->loss);
    CHECK(m->fve > 0.9, "fve %.4f > 0.9", m->fve);
    CHECK(m->l0 > 0.5 && m->l0 < c.n_latents / 2, "l0 %.2f is below half the width", m->l0);
    double worst = 0;
    const sae_params *p = train_params(st);
    for (int i = 0; i < c.n_latents; i++) {
        double n2 = 0;
        for (int d = 0; d < 16; d++)
            n2 += (double)p->v.W_dec[i * 16 + d] * p->v.W_dec[i * 16 + d];
        worst = fmax(worst, fabs(sqrt(n2) - 1));
    }
    CHECK(worst < 1e-5, "decoder rows stay unit norm through training (%g)", worst);
    train_free(st);
    circles_free(circ);
}

/* relu's threshold ramps up with the sparsity coefficient (include/train.h), and a group SAE with
 * a threshold trains: the groups open at the start (none is stuck below a fixed threshold) and
 * the trained SAE zeroes groups below the full threshold. */
static void test_threshold_warmup(void)
{
    /* 640 latents in 16-D: the tied init's encoder is scaled by 16/640, so the first activations
     * (~0.03) are far below the threshold's window [0.375, 0.625] */
    sae_config c = {.arch = SAE_RELU, .dim = 16, .n_latents = 640, .group_size = 2, .sparsity_coef = 0.3f,
                    .orth_coef = 0.01f, .threshold = 0.5f, .bandwidth = 0.25f};
    train_config t;
    train_config_default(&t);
    t.steps = 1500, t.batch_size = 128, t.lr = 3e-3f, t.lr_warmup_steps = 100, t.sparsity_warmup_steps = 300;
    t.eval_every = 500, t.eval_rows = 1024, t.dead_window = 500;
    CHECK(train_threshold_at(&c, &t, 0) == 0.0 && fabs(train_threshold_at(&c, &t, 150) - 0.25) < 1e-7 &&
          train_threshold_at(&c, &t, 300) == (double)0.5f && train_threshold_at(&c, &t, 1499) == (double)0.5f,
          "relu's threshold ramps 0 -> 0.5 over the sparsity warm-up");
    sae_config j = c;
    j.arch = SAE_JUMPRELU;
    CHECK(train_threshold_at(&j, &t, 0) == (double)0.5f, "jumprelu's threshold (its initial theta) does not ramp");
    circles_params cp = {20, 16, 0.1, 1.0f, 1.0f, 7};
    circles *circ = circles_create(&cp);
    data_source src;
    datasrc_from_circles(&src, circ);
    char err[256];
    train_state *st = train_create(&c, &t, &src, err, sizeof err);
    train_hooks h = {0};
    CHECK(st && train_run(st, &h) == TRAIN_DONE, "train with a threshold: %s", st ? train_error(st) : err);
    const train_metrics *m = train_last_metrics(st);
    printf("threshold 0.5, group size 2, 20 circles in 16-D: fve %.4f l0 %.2f (%.2f groups) dead %.3f\n", m->fve,
           m->l0, m->l0_groups, m->dead_frac);
    CHECK(m->fve > 0.6 && m->l0_groups > 0.5 && m->dead_frac < 0.9, "it trains (fve %.3f, %.2f groups, dead %.3f)",
          m->fve, m->l0_groups, m->dead_frac);
    CHECK(train_params(st)->cfg.threshold == 0.5f, "the trained SAE keeps the full threshold");
    train_free(st);
    t.sparsity_warmup_steps = 0; /* no ramp: the first activations are all below the threshold's window */
    st = train_create(&c, &t, &src, err, sizeof err);
    CHECK(st && train_run(st, &h) == TRAIN_DONE, "train without the ramp");
    m = train_last_metrics(st);
    printf("the same without the ramp: fve %.4f l0 %.2f dead %.3f\n", m->fve, m->l0, m->dead_frac);
    CHECK(m->l0 == 0.0 && m->dead_frac == 1.0, "without the ramp every group stays shut (l0 %.2f)", m->l0);
    train_free(st);
    circles_free(circ);
}

/* train.resample_every: at step 40 the latents dead by then (and only they) are re-initialised as
 * core/train_resample.c says, and a run stopped before or after it and resumed ends bit for bit
 * like a straight one. */
static void test_resample(void)
{
    circles_params cp = {20, 16, 0.1, 1.0f, 1.0f, 7};
    circles *circ = circles_create(&cp);
    data_source src;
    datasrc_from_circles(&src, circ);
    sae_config c = {.arch = SAE_RELU, .dim = 16, .n_latents = 64, .group_size = 2, .sparsity_coef = 3.0f,
                    .orth_coef = 0.01f};
    train_config t;
    trainlog_small_config(&t);
    t.steps = 120, t.lr = 3e-2f, t.sparsity_warmup_steps = 5, t.eval_every = 40, t.dead_window = 10;
    t.resample_every = 40;
    train_config t0 = t;
    t0.resample_every = 0;
    char err[256];
    trainlog ha = {.stop_at_poll = 41}, hb = {.stop_at_poll = 41};
    train_hooks h = trainlog_hooks(&ha);
    train_state *a = train_create(&c, &t, &src, err, sizeof err), *b = train_create(&c, &t0, &src, err, sizeof err);
    CHECK(a && b && train_run(a, &h) == TRAIN_INTERRUPTED && train_step_done(a) == 40, "resample run to step 40");
    h = trainlog_hooks(&hb);
    CHECK(train_run(b, &h) == TRAIN_INTERRUPTED && train_step_done(b) == 40, "plain run to step 40");
    const sae_params *pa = train_params(a), *pb = train_params(b);
    int n = c.n_latents, dim = c.dim, changed = 0, bad = 0;
    double scale = -1.0;
    for (int i = 0; i < n; i++) {
        int same = pa->v.b_enc[i] == pb->v.b_enc[i];
        double dn = 0.0, en = 0.0, dot = 0.0;
        for (int d = 0; d < dim; d++) {
            float da = pa->v.W_dec[i * dim + d], ea = pa->v.W_enc[d * n + i];
            same &= da == pb->v.W_dec[i * dim + d] && ea == pb->v.W_enc[d * n + i];
            dn += (double)da * da, en += (double)ea * ea, dot += (double)da * ea;
        }
        if (same)
            continue;
        changed++;
        if (scale < 0)
            scale = sqrt(en);
        bad += pa->v.b_enc[i] != 0.0f || fabs(dn - 1.0) > 1e-5 || fabs(dot - sqrt(en)) > 1e-5 * sqrt(en) ||
               fabs(sqrt(en) - scale) > 1e-5 * scale;
    }
    CHECK(train_resampled(a) > 0 && changed == train_resampled(a) && bad == 0,
          "resampled %ld latents; %d differ from the plain run, %d not as specified", train_resampled(a), changed, bad);
    printf("resample at step 40: %ld of %d latents, encoder norm %.4f\n", train_resampled(a), n, scale);
    free(ha.blob), free(hb.blob);
    train_free(a), train_free(b);
    /* straight vs stopped at step 30 (before the resample) and 45 (after), each restored and finished */
    int stops[2] = {31, 46};
    CHECK(trainlog_resume_mismatch(&c, &t, &src, stops, 2, err, sizeof err) == 0, "resampling: %s", err);
    circles_free(circ);
}

/* ---------------------------------------------------------------- config checks */

static void expect_sae_reject(sae_config c, const char *want_field, const char *want_msg)
{
    char field[64] = "", msg[256] = "";
    int rc = sae_config_check(&c, field, sizeof field, msg, sizeof msg);
    CHECK(rc == -1 && strcmp(field, want_field) == 0 && strstr(msg, want_msg), "want %s (%s), got rc %d %s: %s",
          want_field, want_msg, rc, field, msg);
}

static void expect_train_reject(train_config t, const char *want_field)
{
    char field[64] = "", msg[256] = "";
    int rc = train_config_check(&t, field, sizeof field, msg, sizeof msg);
    CHECK(rc == -1 && strcmp(field, want_field) == 0 && msg[0], "want %s, got rc %d %s: %s", want_field, rc, field,
          msg);
}

static void test_config_checks(void)
{
    char field[64], msg[256];
    sae_config ok = {.arch = SAE_RELU, .dim = 16, .n_latents = 64, .group_size = 2,
                     .sparsity_coef = 0.01f, .orth_coef = 0.0f, .threshold = 0.0f}, c;
    CHECK(sae_config_check(&ok, field, sizeof field, msg, sizeof msg) == 0, "valid sae config");
    c = ok, c.arch = (sae_arch)99;
    expect_sae_reject(c, "sae.arch", "unknown arch");
    c = ok, c.arch = SAE_TOPK; /* available, but needs k (tests/test_archs_tk.c) */
    expect_sae_reject(c, "sae.k", "'topk' needs k");
    c = ok, c.dim = 0;
    expect_sae_reject(c, "sae.dim", "at least 1");
    c = ok, c.n_latents = 0;
    expect_sae_reject(c, "sae.n_latents", "at least 1");
    c = ok, c.group_size = 0;
    expect_sae_reject(c, "sae.group_size", "at least 1");
    c = ok, c.n_latents = 63;
    expect_sae_reject(c, "sae.n_latents", "use 62 or 64");
    c = ok, c.n_latents = 3, c.group_size = 4, c.dim = 1; /* no multiple below: one suggestion, not "4 or 4" */
    expect_sae_reject(c, "sae.n_latents", "use 4");
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) == -1 && !strstr(msg, " or "), "%s", msg);
    c = ok, c.n_latents = 2147483647, c.dim = 1; /* the next multiple overflows int: only the one below */
    expect_sae_reject(c, "sae.n_latents", "use 2147483646");
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) == -1 && !strstr(msg, " or ") &&
          !strstr(msg, "-2147"), "%s", msg);
    c = ok, c.sparsity_coef = -1.0f;
    expect_sae_reject(c, "sae.sparsity_coef", ">= 0");
    c = ok, c.sparsity_coef = NAN;
    expect_sae_reject(c, "sae.sparsity_coef", "finite");
    c = ok, c.orth_coef = INFINITY;
    expect_sae_reject(c, "sae.orth_coef", "finite");
    c = ok, c.threshold = -0.5f;
    expect_sae_reject(c, "sae.threshold", ">= 0");
    c = ok, c.k = -2;
    expect_sae_reject(c, "sae.k", "k");
    c = ok, c.dim = 1 << 20, c.n_latents = 1 << 14;
    expect_sae_reject(c, "sae.n_latents", "fewer latents");

    train_config tok, t;
    train_config_default(&tok);
    CHECK(train_config_check(&tok, field, sizeof field, msg, sizeof msg) == 0, "valid train config");
    t = tok, t.steps = 0;
    expect_train_reject(t, "train.steps");
    t = tok, t.batch_size = 0;
    expect_train_reject(t, "train.batch_size");
    t = tok, t.lr = 0.0f;
    expect_train_reject(t, "train.lr");
    t = tok, t.lr = NAN;
    expect_train_reject(t, "train.lr");
    t = tok, t.lr_warmup_steps = -1;
    expect_train_reject(t, "train.lr_warmup_steps");
    t = tok, t.decay = (lr_decay)7;
    expect_train_reject(t, "train.lr_decay");
    t = tok, t.sparsity_warmup_steps = -1;
    expect_train_reject(t, "train.sparsity_warmup_steps");
    t = tok, t.checkpoint_every = -1;
    expect_train_reject(t, "train.checkpoint_every");
    t = tok, t.eval_every = 0;
    expect_train_reject(t, "train.eval_every");
    t = tok, t.eval_rows = 0;
    expect_train_reject(t, "train.eval_rows");
    t = tok, t.dead_window = 0;
    expect_train_reject(t, "train.dead_window");
    t = tok, t.adam_beta1 = 1.0f;
    expect_train_reject(t, "train.adam_beta1");
    t = tok, t.adam_beta2 = -0.1f;
    expect_train_reject(t, "train.adam_beta2");
    t = tok, t.adam_eps = 0.0f;
    expect_train_reject(t, "train.adam_eps");
    t = tok, t.grad_clip = -1.0f;
    expect_train_reject(t, "train.grad_clip");
}

int main(void)
{
    test_rng();
    test_circles();
    test_npy();
    test_gradients();
    test_encode();
    test_decoder_norm();
    test_schedules();
    test_config_checks();

    circles_params cp = {20, 16, 0.1, 0.5f, 1.5f, 2};
    circles *circ = circles_create(&cp);
    int n_rows = 300;
    float *rows = malloc((size_t)n_rows * 16 * sizeof(float)); /* (300, 16) a finite dataset */
    uint64_t *idx = malloc(n_rows * sizeof(uint64_t));
    for (int i = 0; i < n_rows; i++)
        idx[i] = 5000 + (uint64_t)i;
    circles_rows(circ, idx, n_rows, rows);
    test_resume(circ, rows, n_rows);
    test_trainer_contract(circ);
    test_eval_stops(circ);
    test_eval_metrics(rows, n_rows);
    test_train_circles();
    test_threshold_warmup();
    test_resample();
    free(rows);
    free(idx);
    circles_free(circ);
    return check_report();
}
