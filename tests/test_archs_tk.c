/* test_archs_tk — the topk and batchtopk SAEs (core/sae_topk.c): every
 * parameter's gradient against central finite differences with the
 * selection held fixed (group_size 1, 2, 3; batchtopk's training and
 * inference rules; AuxK on a forced dead mask, whose stop-gradient target is
 * frozen here at its value at the base point), the selections against
 * brute-force ones written here (group_size 1 against ReLU(TopK(pre)) of the
 * ordinary SAEs, ties to the lower index), the learnt threshold's update,
 * sae_encode's inference rule, the configuration checks, and the trainer:
 * bit-exact resume with AuxK active and the threshold in the parameters, and
 * a short run on circles per arch. Small shapes; runs in seconds. */
#include "check.h"
#include "circles.h"
#include "datasrc.h"
#include "gradcheck.h"
#include "rng.h"
#include "sae.h"
#include "train.h"
#include "trainlog.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    sae_arch arch;
    int dim, n, s, B, k;
    int train;        /* 1: sae_loss_grad_train (training rules); 0: sae_loss_grad (inference) */
    float orth, aux_coef;
    int aux_k;        /* 0: auto */
    int with_dead;    /* 1: the forced dead mask below feeds AuxK */
    float theta;      /* batchtopk's threshold (inference cases) */
} tk_case;

static float *theta_of(const sae_params *p) { return p->v.b_dec + p->cfg.dim; }

static sae_config config_of(const tk_case *tc)
{
    sae_config c = {.arch = tc->arch, .dim = tc->dim, .n_latents = tc->n, .group_size = tc->s, .k = tc->k,
                    .sparsity_coef = 0.5f, .orth_coef = tc->orth, .aux_k_coef = tc->aux_coef,
                    .aux_k = tc->aux_k};
    return c;
}

/* Dead latents: every group g with g % 3 != 0, and latent 0 alone (its group stays alive for s > 1). */
static void forced_dead(const sae_config *c, unsigned char *dead)
{
    for (int i = 0; i < c->n_latents; i++)
        dead[i] = (i / c->group_size) % 3 != 0 || i == 0;
}

/* ---------------------------------------------------------------- brute force */

static double group_norm(const float *pre, int s)
{
    double n2 = 0.0;
    for (int k = 0; k < s; k++)
        n2 += pre[k] > 0.0f ? (double)pre[k] * pre[k] : 0.0;
    return sqrt(n2);
}

/* 1 if candidate g (norm v[g]) is among the top kk of the m candidates in cand (ties: lower index). */
static int in_top(const double *v, const unsigned char *cand, int m, int g, int kk)
{
    int better = 0;
    for (int h = 0; h < m; h++)
        better += cand[h] && (v[h] > v[g] || (v[h] == v[g] && h < g));
    return cand[g] && better < kk;
}

/* AuxK's groups of each row (B, G) from pre (B, n): the aux_k dead groups of largest norm. */
static void aux_selection(const sae_config *c, const float *pre, int B, const unsigned char *dead,
                          unsigned char *sel)
{
    int s = c->group_size, G = c->n_latents / s, ka = sae_aux_k_groups(c);
    double *v = malloc((size_t)G * sizeof(double));
    unsigned char *cand = malloc((size_t)G);
    for (int b = 0; b < B; b++) {
        for (int g = 0; g < G; g++) {
            v[g] = group_norm(pre + (size_t)b * c->n_latents + g * s, s);
            cand[g] = 1;
            for (int k = 0; k < s; k++)
                cand[g] &= dead[g * s + k];
        }
        for (int g = 0; g < G; g++)
            sel[(size_t)b * G + g] = dead ? (unsigned char)in_top(v, cand, G, g, ka) : 0;
    }
    free(v);
    free(cand);
}

/* mean_b ||e0_b - e_hat_b||^2, e_hat = ReLU(pre) on the selected groups times W_dec; e0 (B, dim) frozen. */
static double aux_value(const sae_params *p, const float *pre, int B, const unsigned char *sel, const float *e0)
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents, s = c->group_size, dim = c->dim, G = n / s;
    double sum = 0.0;
    for (int b = 0; b < B; b++)
        for (int d = 0; d < dim; d++) {
            double eh = 0.0;
            for (int i = 0; i < n; i++) {
                float v = pre[(size_t)b * n + i];
                if (sel[(size_t)b * G + i / s] && v > 0.0f)
                    eh += (double)v * p->v.W_dec[(size_t)i * dim + d];
            }
            double r = e0[(size_t)b * dim + d] - eh;
            sum += r * r;
        }
    return sum / B;
}

/* ---------------------------------------------------------------- finite differences */

typedef struct {
    const tk_case *tc;
    sae_params *p;
    const float *x;
    sae_work *w;
    const unsigned char *dead; /* NULL: no AuxK */
    const float *e0;           /* (B, dim) AuxK's frozen target */
} fd_ctx;

/* The loss whose gradient sae_loss_grad_train computes, AuxK's target frozen at e0; pat gets the pattern
 * the loss is smooth within: z > 0, AuxK's selection, positive orth dots. */
static double fd_loss(const fd_ctx *f, unsigned char *pat)
{
    const tk_case *tc = f->tc;
    const sae_config *c = &f->p->cfg;
    int B = tc->B, n = tc->n, G = n / tc->s;
    double loss = tc->train ? sae_loss_grad_train(f->p, f->x, B, 0.5f, NULL, f->w, NULL, NULL)
                            : sae_loss_grad(f->p, f->x, B, 0.5f, f->w, NULL, NULL);
    size_t k = 0;
    for (; k < (size_t)B * n; k++)
        pat[k] = f->w->z[k] > 0.0f;
    memset(pat + k, 0, (size_t)B * G);
    if (f->dead) {
        aux_selection(c, f->w->pre, B, f->dead, pat + k);
        loss += tc->aux_coef * aux_value(f->p, f->w->pre, B, pat + k, f->e0);
    }
    k += (size_t)B * G;
    gradcheck_orth_signs(f->p, 1, pat + k);
    return loss;
}

static size_t fd_pattern_len(const tk_case *tc)
{
    return (size_t)tc->B * tc->n + (size_t)tc->B * (tc->n / tc->s) + (size_t)tc->n * tc->s;
}

static double fd_loss_cb(void *ctx, unsigned char *pat) { return fd_loss(ctx, pat); }

/* The C loss (with AuxK) at the base point against the one written here: the loss without AuxK plus
 * aux_coef mean_b ||e - e_hat||^2; the AuxK term must be there (some groups selected, a value > 0). */
static void check_base_loss(const fd_ctx *f, double loss, const unsigned char *pat0)
{
    const tk_case *tc = f->tc;
    unsigned char *pat = malloc(fd_pattern_len(tc));
    double base = fd_loss(f, pat);
    CHECK_NEAR(loss, base, 1e-5 * fabs(loss) + 1e-6, "C loss against the reference written here");
    CHECK(memcmp(pat, pat0, fd_pattern_len(tc)) == 0, "%s: the pattern is reproducible", tc->name);
    if (f->dead) {
        const unsigned char *sel = pat0 + (size_t)tc->B * tc->n;
        double aux = aux_value(f->p, f->w->pre, tc->B, sel, f->e0);
        int any = 0;
        for (size_t k = 0; k < (size_t)tc->B * (tc->n / tc->s); k++)
            any += sel[k];
        CHECK(any > 0 && tc->aux_coef * aux > 1e-2, "%s: AuxK selects %d groups, term %g", tc->name, any,
              tc->aux_coef * aux);
    }
    free(pat);
}

static void test_fd_case(const tk_case *tc, double *worst_abs, double *worst_rel)
{
    sae_config c = config_of(tc);
    sae_params p;
    sae_work w;
    CHECK(sae_params_alloc(&p, &c) == 0 && sae_work_alloc(&w, &c, tc->B) == 0, "alloc");
    float *x = malloc((size_t)tc->B * tc->dim * sizeof(float)), *grad = malloc(p.n_params * sizeof(float));
    float *e0 = malloc((size_t)tc->B * tc->dim * sizeof(float));
    unsigned char *dead = malloc((size_t)tc->n), *pat0 = malloc(fd_pattern_len(tc));
    gradcheck_random_sae(&p, x, tc->B, 11);
    if (c.arch == SAE_BATCHTOPK)
        *theta_of(&p) = tc->theta;
    forced_dead(&c, dead);
    fd_ctx f = {tc, &p, x, &w, tc->with_dead ? dead : NULL, e0};
    sae_loss_terms t;
    double loss = tc->train ? sae_loss_grad_train(&p, x, tc->B, 0.5f, f.dead, &w, grad, &t)
                            : sae_loss_grad(&p, x, tc->B, 0.5f, &w, grad, &t);
    for (size_t k = 0; k < (size_t)tc->B * tc->dim; k++)
        e0[k] = x[k] - w.x_hat[k];
    CHECK(t.l0 > 0.5 && (!tc->train && c.arch == SAE_BATCHTOPK ? 1 : t.l0_groups <= tc->k + 1e-9),
          "%s: some latents fire, on average at most k groups per row (l0 %g, l0_groups %g)", tc->name, t.l0,
          t.l0_groups);
    if (c.arch == SAE_BATCHTOPK)
        CHECK(grad[p.n_params - 1] == 0.0f, "%s: the threshold gets no gradient", tc->name);
    fd_loss(&f, pat0);
    check_base_loss(&f, loss, pat0);
    gradcheck_stats st = {0};
    gradcheck_job job = {tc->name, p.buf, grad, fd_loss_cb, &f, pat0, fd_pattern_len(tc)};
    gradcheck_range(&job, 0, p.n_params, &st);
    CHECK(st.bad == 0, "%s: %d of %d gradients off (worst err/tol %.3g)", tc->name, st.bad, st.checked,
          st.worst_ratio);
    CHECK(st.checked >= (int)(0.8 * p.n_params), "%s: %d checked, %d skipped at kinks", tc->name, st.checked,
          st.skipped);
    printf("gradcheck %-20s %4d params checked, %3d at kinks skipped, worst err/tol %.3f, max abs err %.2e, "
           "max rel err %.2e\n", tc->name, st.checked, st.skipped, st.worst_ratio, st.worst_abs, st.worst_rel_fd);
    *worst_abs = fmax(*worst_abs, st.worst_abs);
    *worst_rel = fmax(*worst_rel, st.worst_rel_fd);
    sae_params_free(&p);
    sae_work_free(&w);
    free(x);
    free(grad);
    free(e0);
    free(dead);
    free(pat0);
}

static void test_gradients(void)
{
    static const tk_case cases[] = {
        {"topk s1", SAE_TOPK, 6, 8, 1, 5, 3, 1, 0.0f, 0.0f, 0, 0, 0.0f},
        {"topk s2", SAE_TOPK, 6, 8, 2, 5, 2, 1, 0.0f, 0.0f, 0, 0, 0.0f},
        {"topk s2 orth", SAE_TOPK, 6, 8, 2, 5, 2, 1, 0.7f, 0.0f, 0, 0, 0.0f},
        {"topk s1 auxk", SAE_TOPK, 6, 9, 1, 5, 2, 1, 0.0f, 0.8f, 2, 1, 0.0f},
        {"topk s2 auxk", SAE_TOPK, 6, 12, 2, 5, 2, 1, 0.0f, 0.8f, 1, 1, 0.0f},
        {"topk s3 auxk orth", SAE_TOPK, 5, 18, 3, 4, 2, 1, 0.3f, 0.5f, 0, 1, 0.0f},
        {"batchtopk s1", SAE_BATCHTOPK, 6, 8, 1, 5, 3, 1, 0.0f, 0.0f, 0, 0, 0.0f},
        {"batchtopk s2", SAE_BATCHTOPK, 6, 8, 2, 5, 2, 1, 0.0f, 0.0f, 0, 0, 0.0f},
        {"batchtopk s1 auxk", SAE_BATCHTOPK, 6, 9, 1, 5, 2, 1, 0.0f, 0.8f, 3, 1, 0.0f},
        {"batchtopk s2 auxk orth", SAE_BATCHTOPK, 6, 12, 2, 5, 2, 1, 0.4f, 0.8f, 0, 1, 0.0f},
        {"batchtopk s2 infer", SAE_BATCHTOPK, 6, 8, 2, 5, 2, 0, 0.0f, 0.0f, 0, 0, 0.6f},
        {"batchtopk s1 infer", SAE_BATCHTOPK, 6, 8, 1, 5, 2, 0, 0.2f, 0.0f, 0, 0, 0.3f},
    };
    double worst_abs = 0.0, worst_rel = 0.0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_fd_case(&cases[i], &worst_abs, &worst_rel);
    printf("gradcheck all cases: max abs err %.2e, max rel err (|fd| > 0.01) %.2e\n", worst_abs, worst_rel);
}

/* ---------------------------------------------------------------- selections */

/* Which groups the rule keeps, written out: keep (B, G) from pre (B, n). mode 0: per row the k largest
 * norms; 1: the k*B largest of the batch; 2: norm >= theta. Ties: lower (row-major) index. */
static void brute_keep(const sae_config *c, const float *pre, int B, int mode, float theta, unsigned char *keep)
{
    int s = c->group_size, G = c->n_latents / s;
    size_t all = (size_t)B * G;
    double *v = malloc(all * sizeof(double));
    unsigned char *cand = malloc(all);
    for (size_t g = 0; g < all; g++) {
        v[g] = group_norm(pre + g * s, s);
        cand[g] = 1;
    }
    for (size_t g = 0; g < all; g++) {
        size_t row0 = g / G * G;
        keep[g] = mode == 0 ? (unsigned char)in_top(v + row0, cand + row0, G, (int)(g - row0), c->k)
                  : mode == 1 ? (unsigned char)in_top(v, cand, (int)all, (int)g, c->k * B)
                  : v[g] >= theta;
    }
    free(v);
    free(cand);
}

/* z (B, n) = ReLU(pre) on the kept groups. */
static void brute_z(const sae_config *c, const float *pre, int B, const unsigned char *keep, float *z)
{
    for (size_t i = 0; i < (size_t)B * c->n_latents; i++)
        z[i] = keep[i / c->group_size] && pre[i] > 0.0f ? pre[i] : 0.0f;
}

/* The ordinary SAEs (group_size 1): z = ReLU(TopK(pre)) per row (batch: over the whole batch, k*B). */
static void ordinary_z(const sae_config *c, const float *pre, int B, int batch, float *z)
{
    int n = c->n_latents, m = batch ? B * n : n, kk = batch ? c->k * B : c->k;
    memset(z, 0, (size_t)B * n * sizeof(float));
    for (int r0 = 0; r0 < B * n; r0 += m)
        for (int i = r0; i < r0 + m; i++) {
            int better = 0; /* rank of pre[i] among pre[r0 .. r0+m), ties to the lower index */
            for (int j = r0; j < r0 + m; j++)
                better += pre[j] > pre[i] || (pre[j] == pre[i] && j < i);
            if (better < kk)
                z[i] = pre[i] > 0.0f ? pre[i] : 0.0f;
        }
}

static void test_selection_case(sae_arch arch, int s, int train, float theta, int k)
{
    sae_config c = {.arch = arch, .dim = 7, .n_latents = 24, .group_size = s, .k = k};
    int B = 9, G = 24 / s;
    sae_params p;
    sae_work w;
    CHECK(sae_params_alloc(&p, &c) == 0 && sae_work_alloc(&w, &c, B) == 0, "alloc");
    float *x = malloc((size_t)B * 7 * sizeof(float)), *z = malloc((size_t)B * 24 * sizeof(float));
    unsigned char *keep = malloc((size_t)B * G);
    gradcheck_random_sae(&p, x, B, 100 + (uint64_t)s);
    if (arch == SAE_BATCHTOPK)
        *theta_of(&p) = theta;
    if (train)
        sae_loss_grad_train(&p, x, B, 0.0f, NULL, &w, NULL, NULL);
    else
        sae_loss_grad(&p, x, B, 0.0f, &w, NULL, NULL);
    int mode = arch == SAE_TOPK ? 0 : train ? 1 : 2;
    brute_keep(&c, w.pre, B, mode, theta, keep);
    brute_z(&c, w.pre, B, keep, z);
    CHECK(memcmp(z, w.z, (size_t)B * 24 * sizeof(float)) == 0, "%s s%d %s: z is ReLU(pre) on the kept groups",
          sae_arch_name(arch), s, train ? "train" : "infer");
    if (s == 1 && mode < 2) {
        ordinary_z(&c, w.pre, B, mode == 1, z);
        CHECK(memcmp(z, w.z, (size_t)B * 24 * sizeof(float)) == 0, "%s group_size 1 is ReLU(TopK(pre))",
              sae_arch_name(arch));
    }
    int kept = 0;
    for (int g = 0; g < B * G; g++)
        kept += w.gnorm[g] > 0.0f;
    CHECK(mode == 2 || kept <= c.k * B, "%s s%d: %d non-zero groups, at most k*B", sae_arch_name(arch), s, kept);
    CHECK(mode == 2 || kept >= B, "%s s%d: the draw keeps groups (%d)", sae_arch_name(arch), s, kept);
    sae_params_free(&p);
    sae_work_free(&w);
    free(x);
    free(z);
    free(keep);
}

/* pre = b_enc in every row (W_enc = 0): ties resolve to the lower index, row-major for batchtopk. */
static void test_ties(void)
{
    sae_config c = {.arch = SAE_TOPK, .dim = 3, .n_latents = 6, .group_size = 1, .k = 2};
    sae_params p;
    sae_work w;
    float x[9] = {0};
    sae_params_alloc(&p, &c);
    sae_work_alloc(&w, &c, 3);
    const float b1[6] = {1, 3, 3, 3, 0.5f, 2};
    memcpy(p.v.b_enc, b1, sizeof b1);
    sae_loss_grad(&p, x, 1, 0.0f, &w, NULL, NULL);
    const float want1[6] = {0, 3, 3, 0, 0, 0};
    CHECK(memcmp(w.z, want1, sizeof want1) == 0, "topk ties keep the lower index");
    sae_params_free(&p);
    sae_work_free(&w);

    c = (sae_config){.arch = SAE_BATCHTOPK, .dim = 3, .n_latents = 8, .group_size = 2, .k = 2};
    sae_params_alloc(&p, &c);
    sae_work_alloc(&w, &c, 3);
    const float b2[8] = {3, 4, 4, 3, 0, 5, 1, 1}; /* group norms 5, 5, 5, sqrt 2 */
    memcpy(p.v.b_enc, b2, sizeof b2);
    sae_loss_grad_train(&p, x, 3, 0.0f, NULL, &w, NULL, NULL);
    const float want2[24] = {3, 4, 4, 3, 0, 5, 0, 0, 3, 4, 4, 3, 0, 5, 0, 0}; /* row 2 all 0 */
    CHECK(memcmp(w.z, want2, sizeof want2) == 0, "batchtopk: the 6 of 9 tied groups kept are rows 0 and 1");
    sae_params_free(&p);
    sae_work_free(&w);
}

static void test_selections(void)
{
    for (int s = 1; s <= 3; s++) {
        test_selection_case(SAE_TOPK, s, 1, 0.0f, 3);
        test_selection_case(SAE_TOPK, s, 0, 0.0f, 3);
        test_selection_case(SAE_BATCHTOPK, s, 1, 0.0f, 3);
        test_selection_case(SAE_BATCHTOPK, s, 1, 0.0f, 5); /* 45 groups of the batch: past the one-pass list */
        test_selection_case(SAE_BATCHTOPK, s, 0, 0.5f, 3);
        test_selection_case(SAE_BATCHTOPK, s, 0, 0.0f, 3); /* an untrained threshold keeps every non-zero group */
    }
    test_ties();
}

/* ---------------------------------------------------------------- threshold, encode */

static float min_positive(const float *a, size_t n)
{
    float lo = INFINITY;
    for (size_t k = 0; k < n; k++)
        if (a[k] > 0.0f && a[k] < lo)
            lo = a[k];
    return lo;
}

static void test_threshold_update(void)
{
    sae_config c = {.arch = SAE_BATCHTOPK, .dim = 7, .n_latents = 24, .group_size = 2, .k = 3};
    int B = 10, G = 12;
    sae_params p;
    sae_work w;
    sae_params_alloc(&p, &c);
    sae_work_alloc(&w, &c, B);
    float *x = malloc((size_t)B * 7 * sizeof(float)), *grad = malloc(p.n_params * sizeof(float));
    gradcheck_random_sae(&p, x, B, 21);
    CHECK(*theta_of(&p) == 0.0f, "threshold starts at 0");
    sae_loss_grad_train(&p, x, B, 0.0f, NULL, &w, grad, NULL);
    float m1 = min_positive(w.gnorm, (size_t)B * G);
    sae_train_update(&p, &w, B);
    CHECK(*theta_of(&p) == m1 && m1 > 0.0f, "first update: theta = the batch's smallest kept norm (%g, %g)",
          *theta_of(&p), m1);
    rng_t r;
    rng_seed(&r, 77, 0);
    gradcheck_fill_normal(&r, x, (size_t)B * 7, 1.0f);
    sae_loss_grad_train(&p, x, B, 0.0f, NULL, &w, grad, NULL);
    float m2 = min_positive(w.gnorm, (size_t)B * G);
    sae_train_update(&p, &w, B);
    CHECK_NEAR(*theta_of(&p), m1 + 0.01 * (m2 - m1), 1e-6 * m1, "second update: EMA with decay 0.99");
    CHECK(m2 != m1, "the second batch has another minimum");
    sae_tensor t[SAE_MAX_TENSORS];
    int nt = sae_tensors(&p, t, SAE_MAX_TENSORS);
    CHECK(nt == 5 && strcmp(t[4].name, "threshold") == 0 && t[4].ndim == 1 && t[4].shape[0] == 1 &&
          t[4].data == p.buf + p.n_params - 1, "sae_tensors lists the threshold (1) last, ending the buffer");

    sae_config ct = c;
    ct.arch = SAE_TOPK;
    CHECK(sae_n_params(&c) == sae_n_params(&ct) + 1, "batchtopk has one extra float, topk none");
    sae_params q;
    sae_params_alloc(&q, &ct);
    memcpy(q.buf, p.buf, q.n_params * sizeof(float));
    sae_loss_grad_train(&q, x, B, 0.0f, NULL, &w, grad, NULL);
    sae_train_update(&q, &w, B);
    CHECK(memcmp(q.buf, p.buf, q.n_params * sizeof(float)) == 0, "sae_train_update leaves topk unchanged");
    sae_params_free(&q);
    sae_params_free(&p);
    sae_work_free(&w);
    free(x);
    free(grad);
}

/* sae_encode (chunks of 256 rows) equals the inference forward of sae_loss_grad. */
static void test_encode_case(sae_arch arch, float theta)
{
    sae_config c = {.arch = arch, .dim = 7, .n_latents = 20, .group_size = 2, .k = 3};
    int B = 300;
    sae_params p;
    sae_work w;
    sae_params_alloc(&p, &c);
    sae_work_alloc(&w, &c, B);
    float *x = malloc((size_t)B * 7 * sizeof(float)), *z = malloc((size_t)B * 20 * sizeof(float));
    float *xh = malloc((size_t)B * 7 * sizeof(float));
    gradcheck_random_sae(&p, x, B, 5);
    if (arch == SAE_BATCHTOPK)
        *theta_of(&p) = theta;
    sae_loss_grad(&p, x, B, 0.0f, &w, NULL, NULL);
    CHECK(sae_encode(&p, NULL, x, B, z, xh) == 0, "encode");
    CHECK(memcmp(z, w.z, (size_t)B * 20 * sizeof(float)) == 0, "%s: encode z matches the inference forward",
          sae_arch_name(arch));
    CHECK(memcmp(xh, w.x_hat, (size_t)B * 7 * sizeof(float)) == 0, "%s: encode x_hat matches", sae_arch_name(arch));
    sae_params_free(&p);
    sae_work_free(&w);
    free(x);
    free(z);
    free(xh);
}

/* ---------------------------------------------------------------- configuration */

static void expect_reject(sae_config c, const char *want_field, const char *want_msg)
{
    char field[64] = "", msg[256] = "";
    int rc = sae_config_check(&c, field, sizeof field, msg, sizeof msg);
    CHECK(rc == -1 && strcmp(field, want_field) == 0 && strstr(msg, want_msg), "want %s (%s), got rc %d %s: %s",
          want_field, want_msg, rc, field, msg);
}

static void test_config(void)
{
    char field[64], msg[256];
    sae_config ok = {.arch = SAE_TOPK, .dim = 16, .n_latents = 64, .group_size = 2, .sparsity_coef = 0.01f,
                     .k = 4, .aux_k_coef = 0.03125f}, c;
    CHECK(sae_config_check(&ok, field, sizeof field, msg, sizeof msg) == 0, "valid topk: %s", msg);
    c = ok, c.arch = SAE_BATCHTOPK, c.aux_k = 32;
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) == 0, "valid batchtopk: %s", msg);
    c = ok, c.k = 0;
    expect_reject(c, "sae.k", "needs k, the number of groups kept per row, from 1 to 32");
    c = ok, c.k = 33;
    expect_reject(c, "sae.k", "from 1 to 32");
    c = ok, c.arch = SAE_BATCHTOPK, c.k = 65;
    expect_reject(c, "sae.k", "k 65 is more than the 32 groups");
    c = ok, c.aux_k = 33;
    expect_reject(c, "sae.aux_k", "at most 32");
    c = ok, c.aux_k = -1;
    expect_reject(c, "sae.aux_k", "at least 1");
    c = ok, c.aux_k_coef = -0.5f;
    expect_reject(c, "sae.aux_k_coef", ">= 0");
    c = ok, c.aux_k_coef = NAN;
    expect_reject(c, "sae.aux_k_coef", "finite");
    c = ok, c.threshold = 0.5f;
    expect_reject(c, "sae.threshold", "leave it 0");
    c = ok, c.arch = SAE_RELU, c.aux_k_coef = -1.0f;
    expect_reject(c, "sae.aux_k_coef", ">= 0");
    c = ok, c.arch = SAE_RELU, c.k = 0, c.aux_k = 0;
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) == 0, "relu needs no k: %s", msg);
    c = ok, c.sparsity_coef = 0.0f, c.aux_k_coef = 0.0f;
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) == 0, "topk without sparsity or AuxK");

    c = ok;
    CHECK(sae_aux_k_groups(&c) == 4, "auto aux_k: dim/2 latents = 4 groups (%d)", sae_aux_k_groups(&c));
    c.group_size = 1;
    CHECK(sae_aux_k_groups(&c) == 8, "auto aux_k, s 1: dim/2 = 8 (%d)", sae_aux_k_groups(&c));
    c.dim = 1000;
    CHECK(sae_aux_k_groups(&c) == 64, "auto aux_k is at most the groups (%d)", sae_aux_k_groups(&c));
    c.dim = 1, c.group_size = 4;
    CHECK(sae_aux_k_groups(&c) == 1, "auto aux_k is at least 1 (%d)", sae_aux_k_groups(&c));
    c = ok, c.aux_k = 7;
    CHECK(sae_aux_k_groups(&c) == 7, "explicit aux_k (%d)", sae_aux_k_groups(&c));
}

/* ---------------------------------------------------------------- training */

/* 30 steps straight, and 11 + shutdown checkpoint + restore + the rest: equal bit for bit. A short
 * dead_window makes AuxK active from step 3 on; batchtopk's threshold moves every step. */
static void test_resume_case(const char *what, const sae_config *c, const data_source *src)
{
    train_config t;
    train_config_default(&t);
    t.steps = 30, t.batch_size = 16, t.lr = 3e-3f, t.lr_warmup_steps = 5, t.eval_every = 7, t.eval_rows = 50;
    t.checkpoint_every = 0, t.dead_window = 3, t.seed = 9;
    char err[256];
    trainlog ha = {0}, hb = {.stop_at_poll = 12}, hc = {0};
    train_hooks h = trainlog_hooks(&ha);
    train_state *a = train_create(c, &t, src, err, sizeof err);
    CHECK(a && train_run(a, &h) == TRAIN_DONE, "%s: straight run: %s", what, a ? train_error(a) : err);
    const train_metrics *m = train_last_metrics(a);
    CHECK(m->dead_frac > 0.0, "%s: latents die within the window, so AuxK runs (dead_frac %g)", what, m->dead_frac);
    h = trainlog_hooks(&hb);
    train_state *b = train_create(c, &t, src, err, sizeof err);
    CHECK(train_run(b, &h) == TRAIN_INTERRUPTED && hb.checkpoints == 1 && train_step_done(b) == 11,
          "%s: shutdown checkpoint at step 11", what);
    train_state *r = train_create(c, &t, src, err, sizeof err);
    int rc = train_checkpoint_restore(r, hb.blob, hb.blob_len, err, sizeof err);
    CHECK(rc == 0 && train_step_done(r) == 11, "%s: restore: %s", what, rc ? err : "ok");
    h = trainlog_hooks(&hc);
    CHECK(train_run(r, &h) == TRAIN_DONE, "%s: resumed run", what);
    size_t la, lr;
    void *ba = trainlog_final_blob(a, &la), *br = trainlog_final_blob(r, &lr);
    CHECK(la == lr && memcmp(ba, br, la) == 0, "%s: resumed run matches the straight run bit for bit", what);
    const sae_params *pa = train_params(a);
    if (c->arch == SAE_BATCHTOPK)
        CHECK(*theta_of(pa) > 0.0f && isfinite(*theta_of(pa)) && *theta_of(pa) == *theta_of(train_params(r)),
              "%s: the threshold is learnt and restored (%g)", what, *theta_of(pa));
    free(ba);
    free(br);
    free(ha.blob);
    free(hb.blob);
    free(hc.blob);
    train_free(a);
    train_free(b);
    train_free(r);
}

/* The trainer feeds its dead mask to AuxK: the same run without AuxK ends elsewhere. */
static void test_auxk_wired(const sae_config *c, const data_source *src)
{
    train_config t;
    train_config_default(&t);
    t.steps = 20, t.batch_size = 16, t.lr_warmup_steps = 5, t.eval_every = 10, t.eval_rows = 50, t.dead_window = 3;
    sae_config c0 = *c;
    c0.aux_k_coef = 0.0f;
    char err[256];
    train_hooks h = {0};
    train_state *a = train_create(c, &t, src, err, sizeof err), *b = train_create(&c0, &t, src, err, sizeof err);
    CHECK(a && b && train_run(a, &h) == TRAIN_DONE && train_run(b, &h) == TRAIN_DONE, "runs with and without AuxK");
    size_t np = train_params(a)->n_params;
    CHECK(memcmp(train_params(a)->buf, train_params(b)->buf, np * sizeof(float)) != 0,
          "%s: AuxK changes training once latents are dead", sae_arch_name(c->arch));
    train_free(a);
    train_free(b);
}

static void test_resume(void)
{
    circles_params cp = {20, 16, 0.1, 0.5f, 1.5f, 2};
    circles *circ = circles_create(&cp);
    data_source src;
    datasrc_from_circles(&src, circ);
    sae_config c = {.arch = SAE_TOPK, .dim = 16, .n_latents = 64, .group_size = 2, .k = 2, .aux_k_coef = 0.5f,
                    .sparsity_coef = 0.01f, .orth_coef = 0.1f};
    test_resume_case("topk resume", &c, &src);
    test_auxk_wired(&c, &src);
    c.arch = SAE_BATCHTOPK;
    test_resume_case("batchtopk resume", &c, &src);
    test_auxk_wired(&c, &src);
    circles_free(circ);
}

/* 20 circles in 16-D, 40 groups of 2, k = 4: a short run must reconstruct. */
static void test_smoke_case(sae_arch arch, double max_l0_groups)
{
    circles_params cp = {20, 16, 0.1, 1.0f, 1.0f, 7};
    circles *circ = circles_create(&cp);
    data_source src;
    datasrc_from_circles(&src, circ);
    sae_config c = {.arch = arch, .dim = 16, .n_latents = 80, .group_size = 2, .k = 4, .sparsity_coef = 0.01f,
                    .aux_k_coef = 0.03125f};
    train_config t;
    train_config_default(&t);
    t.steps = 1500, t.batch_size = 128, t.lr = 3e-3f, t.lr_warmup_steps = 100, t.sparsity_warmup_steps = 300;
    t.eval_every = 500, t.eval_rows = 1024, t.dead_window = 200;
    char err[256];
    train_state *st = train_create(&c, &t, &src, err, sizeof err);
    train_hooks h = {0};
    CHECK(st && train_run(st, &h) == TRAIN_DONE, "train %s: %s", sae_arch_name(arch), st ? train_error(st) : err);
    const train_metrics *m = train_last_metrics(st);
    const sae_params *p = train_params(st);
    printf("train %-9s 20 circles in 16-D, k 4 of 40 groups: fve %.4f mse %.4f l0 %.2f l0_groups %.2f dead %.3f",
           sae_arch_name(arch), m->fve, m->mse, m->l0, m->l0_groups, m->dead_frac);
    if (arch == SAE_BATCHTOPK)
        printf(" threshold %.4f", *theta_of(p));
    printf("\n");
    CHECK(m->fve > 0.5, "%s: fve %.4f > 0.5", sae_arch_name(arch), m->fve);
    CHECK(m->l0_groups > 0.5 && m->l0_groups <= max_l0_groups, "%s: l0_groups %.2f in (0.5, %g]",
          sae_arch_name(arch), m->l0_groups, max_l0_groups);
    train_free(st);
    circles_free(circ);
}

int main(void)
{
    test_gradients();
    test_selections();
    test_threshold_update();
    test_encode_case(SAE_TOPK, 0.0f);
    test_encode_case(SAE_BATCHTOPK, 0.7f);
    test_config();
    test_resume();
    test_smoke_case(SAE_TOPK, 4.0);
    /* batchtopk's inference keeps the groups above a learnt threshold: k per row on average, not at most */
    test_smoke_case(SAE_BATCHTOPK, 4.0 * 1.25);
    return check_report();
}
