/* test_archs_sub — the subspace SAE (core/sae_subspace.c): the loss against
 * one written out here in double (signed group codes, the top-k or
 * proximal rule, AuxK on signed codes with its target frozen), every
 * parameter's gradient against central finite differences with the
 * selection held fixed (group sizes 1, 2, 3; both rules; orth; AuxK on a
 * forced dead mask), sae_encode against the forward, the decoder's QR
 * retraction (orthonormal groups after init and after every training
 * step), the configuration checks, a short training run on circles with
 * bit-exact resume, and the recovery of circles by subspace
 * (core/analysis_subspace.c) on decoders built by hand. Small shapes; runs
 * in seconds. */
#include "analysis.h"
#include "check.h"
#include "sae_arch.h"
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
    int dim, n, s, B, k;    /* k 0: the proximal rule at threshold thr */
    float thr, coef, orth, aux_coef;
    int with_dead;          /* AuxK on the forced dead mask (training rules) */
} sub_case;

static sae_config config_of(const sub_case *sc)
{
    sae_config c = {.arch = SAE_SUBSPACE, .dim = sc->dim, .n_latents = sc->n, .group_size = sc->s, .k = sc->k,
                    .threshold = sc->thr, .sparsity_coef = sc->coef, .orth_coef = sc->orth,
                    .aux_k_coef = sc->aux_coef};
    return c;
}

/* Dead latents: every group g with g % 3 != 0, and latent 0 alone (its group stays alive for s > 1). */
static void forced_dead(const sae_config *c, unsigned char *dead)
{
    for (int i = 0; i < c->n_latents; i++)
        dead[i] = (i / c->group_size) % 3 != 0 || i == 0;
}

/* ---------------------------------------------------------------- the loss, written out */

static double norm_of(const double *v, int s)
{
    double n2 = 0.0;
    for (int k = 0; k < s; k++)
        n2 += v[k] * v[k];
    return sqrt(n2);
}

/* 1 if g (value v[g]) is among the kk largest of the candidates in cand (m of them; ties: lower index). */
static int in_top(const double *v, const unsigned char *cand, int m, int g, int kk)
{
    int better = 0;
    for (int h = 0; h < m; h++)
        better += cand[h] && (v[h] > v[g] || (v[h] == v[g] && h < g));
    return cand[g] && better < kk;
}

/* What the case computes, in double. */
typedef struct {
    double *pre;           /* (B, n) */
    double *rho;           /* (B, G) */
    unsigned char *keep;   /* (B, G) the rule's groups */
    unsigned char *aux;    /* (B, G) AuxK's groups */
    double *z;             /* (B, n) */
    double mse, penalty, orth, aux_sum;
} brute;

static void brute_free(brute *r)
{
    free(r->pre), free(r->rho), free(r->keep), free(r->aux), free(r->z);
}

/* AuxK's groups of row b: the aux_k dead groups of largest rho. */
static void brute_aux_row(const sae_config *c, const brute *r, int b, const unsigned char *dead)
{
    int s = c->group_size, G = c->n_latents / s;
    unsigned char *cand = malloc((size_t)G);
    for (int g = 0; g < G; g++) {
        cand[g] = 1;
        for (int k = 0; k < s; k++)
            cand[g] &= dead[g * s + k];
    }
    for (int g = 0; g < G; g++)
        r->aux[(size_t)b * G + g] = (unsigned char)in_top(r->rho + (size_t)b * G, cand, G, g, sae_aux_k_groups(c));
    free(cand);
}

/* The forward of p on x (B rows); dead (n) or NULL; e0 (B, dim) AuxK's frozen target. */
static void brute_run(const sae_params *p, const float *x, int B, const unsigned char *dead, const float *e0,
                      brute *r)
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents, s = c->group_size, G = n / s, dim = c->dim;
    unsigned char *all = malloc((size_t)G);
    memset(all, 1, (size_t)G);
    r->pre = calloc((size_t)B * n, sizeof(double)), r->rho = calloc((size_t)B * G, sizeof(double));
    r->keep = calloc((size_t)B * G, 1), r->aux = calloc((size_t)B * G, 1), r->z = calloc((size_t)B * n, sizeof(double));
    r->mse = r->penalty = r->aux_sum = 0.0;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < n; i++) {
            double v = p->v.b_enc[i];
            for (int d = 0; d < dim; d++)
                v += ((double)x[(size_t)b * dim + d] - p->v.b_dec[d]) * p->v.W_enc[(size_t)d * n + i];
            r->pre[(size_t)b * n + i] = v;
        }
        for (int g = 0; g < G; g++)
            r->rho[(size_t)b * G + g] = norm_of(r->pre + (size_t)b * n + g * s, s);
        for (int g = 0; g < G; g++) {
            double rho = r->rho[(size_t)b * G + g];
            int keep = c->k > 0 ? in_top(r->rho + (size_t)b * G, all, G, g, c->k) : rho > c->threshold;
            double f = !keep ? 0.0 : c->k > 0 ? 1.0 : 1.0 - c->threshold / rho;
            r->keep[(size_t)b * G + g] = (unsigned char)keep;
            for (int k = 0; k < s; k++)
                r->z[(size_t)b * n + g * s + k] = f * r->pre[(size_t)b * n + g * s + k];
            r->penalty += keep && c->k == 0 ? rho - c->threshold : 0.0;
        }
        for (int d = 0; d < dim; d++) {
            double xh = p->v.b_dec[d], eh = 0.0;
            for (int i = 0; i < n; i++)
                xh += r->z[(size_t)b * n + i] * p->v.W_dec[(size_t)i * dim + d];
            r->mse += (xh - x[(size_t)b * dim + d]) * (xh - x[(size_t)b * dim + d]);
            if (!dead)
                continue;
            if (d == 0)
                brute_aux_row(c, r, b, dead);
            for (int i = 0; i < n; i++)
                eh += r->aux[(size_t)b * G + i / s] ? r->pre[(size_t)b * n + i] * p->v.W_dec[(size_t)i * dim + d] : 0.0;
            r->aux_sum += (e0[(size_t)b * dim + d] - eh) * (e0[(size_t)b * dim + d] - eh);
        }
    }
    r->orth = 0.0;
    for (int g0 = 0; g0 < n; g0 += s)
        for (int i = g0; i < g0 + s; i++)
            for (int j = g0; j < g0 + s; j++) {
                double dot = 0.0;
                for (int d = 0; d < dim && i != j; d++)
                    dot += (double)p->v.W_dec[(size_t)i * dim + d] * p->v.W_dec[(size_t)j * dim + d];
                r->orth += dot > 0.0 ? dot : 0.0;
            }
    free(all);
}

static double brute_loss(const sae_params *p, const brute *r, int B)
{
    const sae_config *c = &p->cfg;
    return r->mse / B + (c->k == 0 ? (double)c->sparsity_coef * r->penalty / B : 0.0) + (double)c->orth_coef * r->orth +
           (double)c->aux_k_coef * r->aux_sum / B;
}

/* ---------------------------------------------------------------- finite differences */

typedef struct {
    const sub_case *sc;
    sae_params *p;
    const float *x;
    sae_work *w;
    const unsigned char *dead;
    const float *e0;
} fd_ctx;

static size_t fd_pattern_len(const sub_case *sc)
{
    return 2 * (size_t)sc->B * (sc->n / sc->s) + (size_t)sc->n * sc->s;
}

/* The C loss without AuxK plus AuxK with its target frozen at e0; pat: the rule's groups, AuxK's
 * groups, the orth signs. */
static double fd_loss(const fd_ctx *f, unsigned char *pat)
{
    const sub_case *sc = f->sc;
    int BG = sc->B * (sc->n / sc->s);
    double loss = sae_loss_grad_train(f->p, f->x, sc->B, sc->coef, NULL, f->w, NULL, NULL);
    brute r;
    brute_run(f->p, f->x, sc->B, f->dead, f->e0, &r);
    memcpy(pat, r.keep, (size_t)BG);
    memcpy(pat + BG, r.aux, (size_t)BG);
    gradcheck_orth_signs(f->p, 1, pat + 2 * (size_t)BG);
    loss += (double)sc->aux_coef * r.aux_sum / sc->B;
    brute_free(&r);
    return loss;
}

static double fd_loss_cb(void *ctx, unsigned char *pat) { return fd_loss(ctx, pat); }

static void test_fd_case(const sub_case *sc, double *worst_abs)
{
    sae_config c = config_of(sc);
    sae_params p;
    sae_work w;
    char field[64], msg[256];
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) == 0, "%s: config: %s %s", sc->name, field, msg);
    CHECK(sae_params_alloc(&p, &c) == 0 && sae_work_alloc(&w, &c, sc->B) == 0, "alloc");
    float *x = malloc((size_t)sc->B * sc->dim * sizeof(float)), *grad = malloc(p.n_params * sizeof(float));
    float *e0 = malloc((size_t)sc->B * sc->dim * sizeof(float));
    unsigned char *dead = malloc((size_t)sc->n), *pat0 = malloc(fd_pattern_len(sc));
    gradcheck_random_sae(&p, x, sc->B, 23);
    forced_dead(&c, dead);
    fd_ctx f = {sc, &p, x, &w, sc->with_dead ? dead : NULL, e0};
    sae_loss_terms t;
    double loss = sae_loss_grad_train(&p, x, sc->B, sc->coef, f.dead, &w, grad, &t);
    for (size_t k = 0; k < (size_t)sc->B * sc->dim; k++)
        e0[k] = x[k] - w.x_hat[k];
    brute r;
    brute_run(&p, x, sc->B, f.dead, e0, &r);
    CHECK_NEAR(loss, brute_loss(&p, &r, sc->B), 1e-5 * fabs(loss) + 1e-6, "the C loss against the one written here");
    double zdiff = 0.0;
    int negative = 0;
    for (size_t k = 0; k < (size_t)sc->B * sc->n; k++) {
        zdiff = fmax(zdiff, fabs(w.z[k] - r.z[k]));
        negative += w.z[k] < 0.0f;
    }
    CHECK(zdiff < 1e-5, "%s: z against the one written here (max diff %g)", sc->name, zdiff);
    CHECK(negative > 0 && t.l0 > 0.5, "%s: signed codes: %d negative, l0 %g", sc->name, negative, t.l0);
    CHECK(sc->k == 0 || t.l0_groups <= sc->k + 1e-9, "%s: at most k groups per row (%g)", sc->name, t.l0_groups);
    brute_free(&r);
    fd_loss(&f, pat0);
    gradcheck_stats st = {0};
    gradcheck_job job = {sc->name, p.buf, grad, fd_loss_cb, &f, pat0, fd_pattern_len(sc)};
    gradcheck_range(&job, 0, p.n_params, &st);
    CHECK(st.bad == 0, "%s: %d of %d gradients off (worst err/tol %.3g)", sc->name, st.bad, st.checked,
          st.worst_ratio);
    CHECK(st.checked >= (int)(0.8 * p.n_params), "%s: %d checked, %d skipped at kinks", sc->name, st.checked,
          st.skipped);
    printf("gradcheck %-24s %4d params checked, %3d at kinks skipped, worst err/tol %.3f, max abs err %.2e\n",
           sc->name, st.checked, st.skipped, st.worst_ratio, st.worst_abs);
    *worst_abs = fmax(*worst_abs, st.worst_abs);
    sae_params_free(&p);
    sae_work_free(&w);
    free(x), free(grad), free(e0), free(dead), free(pat0);
}

static void test_gradients(void)
{
    static const sub_case cases[] = {
        {"topk s1", 6, 8, 1, 5, 3, 0.0f, 0.5f, 0.0f, 0.0f, 0},
        {"topk s2", 6, 8, 2, 5, 2, 0.0f, 0.5f, 0.0f, 0.0f, 0},
        {"topk s2 orth", 6, 12, 2, 5, 2, 0.0f, 0.5f, 0.6f, 0.0f, 0},
        {"topk s3 orth", 6, 12, 3, 4, 2, 0.0f, 0.0f, 0.3f, 0.0f, 0},
        {"topk s2 auxk", 6, 12, 2, 5, 2, 0.0f, 0.5f, 0.0f, 0.8f, 1},
        {"topk s3 auxk orth", 5, 18, 3, 4, 2, 0.0f, 0.5f, 0.3f, 0.5f, 1},
        {"prox s1", 6, 8, 1, 5, 0, 0.4f, 0.5f, 0.0f, 0.0f, 0},
        {"prox s2", 6, 10, 2, 5, 0, 0.7f, 0.5f, 0.0f, 0.0f, 0},
        {"prox s3 orth", 6, 12, 3, 4, 0, 0.8f, 0.3f, 0.4f, 0.0f, 0},
        {"prox s2 auxk", 6, 12, 2, 5, 0, 0.7f, 0.5f, 0.0f, 0.8f, 1},
    };
    double worst = 0.0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_fd_case(&cases[i], &worst);
    printf("gradcheck all subspace cases: max abs err %.2e\n", worst);
}

/* ---------------------------------------------------------------- inference, decoder, checks */

/* sae_encode (in chunks) equals the forward's inference rule for both rules. */
static void test_encode(void)
{
    for (int rule = 0; rule < 2; rule++) {
        sae_config c = {.arch = SAE_SUBSPACE, .dim = 7, .n_latents = 24, .group_size = 2, .k = rule ? 0 : 3,
                        .threshold = rule ? 0.6f : 0.0f, .sparsity_coef = 0.2f, .aux_k_coef = 0.03125f};
        int B = 300;
        sae_params p;
        sae_work w;
        CHECK(sae_params_alloc(&p, &c) == 0 && sae_work_alloc(&w, &c, B) == 0, "alloc");
        float *x = malloc((size_t)B * 7 * sizeof(float)), *z = malloc((size_t)B * 24 * sizeof(float));
        float *xh = malloc((size_t)B * 7 * sizeof(float));
        gradcheck_random_sae(&p, x, B, 5);
        sae_loss_grad(&p, x, B, 0.2f, &w, NULL, NULL);
        CHECK(sae_encode(&p, NULL, x, B, z, xh) == 0, "encode");
        CHECK(memcmp(z, w.z, (size_t)B * 24 * sizeof(float)) == 0, "rule %d: encode's z is the forward's", rule);
        CHECK(memcmp(xh, w.x_hat, (size_t)B * 7 * sizeof(float)) == 0, "rule %d: and its x_hat", rule);
        sae_params_free(&p);
        sae_work_free(&w);
        free(x), free(z), free(xh);
    }
}

/* max over groups of |D_g D_g^T - I|. */
static double orthonormal_err(const sae_params *p)
{
    int s = p->cfg.group_size, dim = p->cfg.dim;
    double worst = 0.0;
    for (int g0 = 0; g0 < p->cfg.n_latents; g0 += s)
        for (int i = g0; i < g0 + s; i++)
            for (int j = g0; j < g0 + s; j++) {
                double dot = 0.0;
                for (int d = 0; d < dim; d++)
                    dot += (double)p->v.W_dec[(size_t)i * dim + d] * p->v.W_dec[(size_t)j * dim + d];
                worst = fmax(worst, fabs(dot - (i == j)));
            }
    return worst;
}

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
    sae_config ok = {.arch = SAE_SUBSPACE, .dim = 16, .n_latents = 64, .group_size = 2, .k = 4,
                     .sparsity_coef = 0.01f, .aux_k_coef = 0.03125f}, c;
    sae_arch a;
    CHECK(sae_arch_parse("subspace", &a) == 0 && a == SAE_SUBSPACE && !strcmp(sae_arch_name(a), "subspace"),
          "the registry knows subspace by name");
    CHECK(strstr(sae_arch_names(), "subspace") != NULL, "and lists it: %s", sae_arch_names());
    CHECK(sae_config_check(&ok, field, sizeof field, msg, sizeof msg) == 0, "valid topk subspace: %s", msg);
    c = ok, c.k = 0, c.threshold = 0.5f;
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) == 0, "valid prox subspace: %s", msg);
    c = ok, c.k = 0;
    expect_reject(c, "sae.k", "needs k");
    c = ok, c.k = 33;
    expect_reject(c, "sae.k", "more than the 32 groups");
    c = ok, c.threshold = 0.5f;
    expect_reject(c, "sae.threshold", "either k or a threshold");
    c = ok, c.aux_k = 40;
    expect_reject(c, "sae.aux_k", "at most 32");
    CHECK(sae_n_params(&ok) == 2 * 16 * 64 + 64 + 16, "no extra parameters");

    sae_params p;
    c = ok, c.group_size = 4, c.k = 2;
    sae_params_alloc(&p, &c);
    sae_params_init(&p, 9);
    CHECK(orthonormal_err(&p) < 1e-5, "init: each group's decoder rows orthonormal (err %g)", orthonormal_err(&p));
    sae_params_free(&p);
    /* groups of 3 in 2-D: the retraction keeps two orthonormal rows and zeroes the third, no NaN */
    c = ok, c.dim = 2, c.n_latents = 6, c.group_size = 3, c.k = 1, c.aux_k = 0;
    CHECK(sae_params_alloc(&p, &c) == 0, "alloc groups of 3 in 2-D");
    sae_params_init(&p, 3);
    sae_arch_of(&c)->constrain_decoder(&p, 0, 6);
    const float *W = p.v.W_dec; /* (6, 2) */
    int fine = 1;
    for (int g = 0; g < 2; g++) {
        const float *a = W + g * 6, *b = a + 2, *z = a + 4;
        fine &= fabsf(a[0] * a[0] + a[1] * a[1] - 1) < 1e-5f && fabsf(b[0] * b[0] + b[1] * b[1] - 1) < 1e-5f &&
                fabsf(a[0] * b[0] + a[1] * b[1]) < 1e-5f && z[0] == 0.0f && z[1] == 0.0f;
    }
    CHECK(fine, "two orthonormal rows and a zero third row per group");
    sae_params_free(&p);
}

/* ---------------------------------------------------------------- training */

/* A short run on circles per rule: the loss falls, fve > 0.5, every group stays orthonormal, and a
 * run stopped at step 9, checkpointed and resumed ends bit for bit equal to the straight one. */
static void test_train(int rule)
{
    circles_params cp = {20, 12, 0.1, 1.0f, 1.0f, 7};
    circles *circ = circles_create(&cp);
    data_source src;
    datasrc_from_circles(&src, circ);
    sae_config c = {.arch = SAE_SUBSPACE, .dim = 12, .n_latents = 80, .group_size = 2, .k = rule ? 0 : 4,
                    .threshold = rule ? 0.3f : 0.0f, .sparsity_coef = rule ? 0.05f : 0.0f,
                    .aux_k_coef = 0.03125f};
    train_config t;
    trainlog_small_config(&t);
    t.steps = 200, t.lr = 1e-2f, t.sparsity_warmup_steps = 20, t.eval_every = 50, t.dead_window = 50;
    char err[256];
    trainlog ha = {0}, hb = {.stop_at_poll = 10}, hc = {0};
    train_hooks h = trainlog_hooks(&ha);
    train_state *a = train_create(&c, &t, &src, err, sizeof err);
    CHECK(a && train_run(a, &h) == TRAIN_DONE, "rule %d: straight run: %s", rule, a ? train_error(a) : err);
    const train_metrics *m = train_last_metrics(a);
    CHECK(m->fve > 0.5 && ha.evals >= 4, "rule %d: it learns (fve %.3f after %d evaluations)", rule, m->fve,
          ha.evals);
    CHECK(orthonormal_err(train_params(a)) < 1e-5, "rule %d: the groups are orthonormal after training (err %g)",
          rule, orthonormal_err(train_params(a)));
    printf("subspace rule %d on 20 circles: fve %.3f, l0 %.2f (groups %.2f), dead %.2f\n", rule, m->fve, m->l0,
           m->l0_groups, m->dead_frac);
    h = trainlog_hooks(&hb);
    train_state *b = train_create(&c, &t, &src, err, sizeof err), *r = train_create(&c, &t, &src, err, sizeof err);
    CHECK(train_run(b, &h) == TRAIN_INTERRUPTED && train_step_done(b) == 9, "rule %d: stopped at step 9", rule);
    CHECK(train_checkpoint_restore(r, hb.blob, hb.blob_len, err, sizeof err) == 0, "restore: %s", err);
    h = trainlog_hooks(&hc);
    CHECK(train_run(r, &h) == TRAIN_DONE, "rule %d: resumed run", rule);
    size_t la, lr;
    void *ba = trainlog_final_blob(a, &la), *br = trainlog_final_blob(r, &lr);
    CHECK(la == lr && memcmp(ba, br, la) == 0, "rule %d: the resumed run matches bit for bit", rule);
    free(ba), free(br), free(ha.blob), free(hb.blob), free(hc.blob);
    train_free(a), train_free(b), train_free(r);
    circles_free(circ);
}

/* ---------------------------------------------------------------- recovery by subspace */

/* Planes of 4 circles in 10-D and decoders built from them: groups of 2 spanning a plane in any
 * basis (rotated, scaled, not orthogonal) hold it; a group with one row off the plane, or one
 * of rank 1, does not; a group of 3 holding a plane and one more direction does; the histogram
 * counts circles by groups. */
static void test_subspace_recovery(void)
{
    enum { NC = 4, DIM = 10 };
    circles_params cp = {NC, DIM, 0.1, 1.0f, 1.0f, 3};
    circles *circ = circles_create(&cp);
    float q[NC * 2 * DIM], W[12 * DIM]; /* planes (NC, 2, DIM); decoder rows (12, DIM) */
    analysis_orthonormalize_planes(circles_planes(circ), NC, DIM, q);
    /* groups of 2: g0, g1 both span plane 0 (two groups on one circle); g2 spans plane 1 by a
     * skewed basis; g3 = plane 2's first vector and a vector off every plane; g4 = one direction of
     * plane 3 twice (rank 1); g5 spans plane 3 rotated by 30 degrees */
    for (int d = 0; d < DIM; d++) {
        const float *p0 = q, *p1 = q + 2 * DIM, *p2 = q + 4 * DIM, *p3 = q + 6 * DIM;
        W[0 * DIM + d] = p0[d], W[1 * DIM + d] = p0[DIM + d];
        W[2 * DIM + d] = 0.6f * p0[d] + 0.8f * p0[DIM + d], W[3 * DIM + d] = -0.8f * p0[d] + 0.6f * p0[DIM + d];
        W[4 * DIM + d] = 2.0f * p1[d], W[5 * DIM + d] = p1[d] + 0.5f * p1[DIM + d];
        W[6 * DIM + d] = p2[d], W[7 * DIM + d] = d == DIM - 1 ? 1.0f : 0.0f;
        W[8 * DIM + d] = p3[d], W[9 * DIM + d] = -3.0f * p3[d];
        W[10 * DIM + d] = 0.866f * p3[d] + 0.5f * p3[DIM + d], W[11 * DIM + d] = -0.5f * p3[d] + 0.866f * p3[DIM + d];
    }
    analysis_subspace r;
    CHECK(analysis_subspace_run(W, 12, DIM, 2, q, NC, 4, &r) == ANALYSIS_OK, "subspace recovery runs");
    int want_circle[6] = {0, 0, 1, -2, -2, 3}; /* -2: holds nothing */
    for (int g = 0; g < 6; g++)
        CHECK(want_circle[g] == -2 ? r.group_cos[g] < 0.9f : r.group_circle[g] == want_circle[g] && r.group_cos[g] > 0.999f,
              "group %d: circle %d, cosine %.4f (want %d)", g, r.group_circle[g], r.group_cos[g], want_circle[g]);
    CHECK(r.groups_holding == 4 && r.groups_holding_99 == 4, "4 groups hold a circle (%d)", r.groups_holding);
    CHECK(r.hist[0] == 1 && r.hist[1] == 2 && r.hist[2] == 1 && r.circles_one_group == 2 && r.circles_held == 3,
          "histogram: 1 circle with none, 2 with one, 1 with two (got %lld %lld %lld, one %d, held %d)",
          (long long)r.hist[0], (long long)r.hist[1], (long long)r.hist[2], r.circles_one_group, r.circles_held);
    analysis_subspace_free(&r);
    CHECK(analysis_subspace_run(W, 12, DIM, 1, q, NC, 4, &r) == ANALYSIS_OK && r.circles_held == 0 &&
              r.hist[0] == NC, "group size 1: a line holds no plane");
    analysis_subspace_free(&r);
    CHECK(analysis_subspace_run(W, 12, DIM, 3, q, NC, 4, &r) == ANALYSIS_OK, "groups of 3");
    CHECK(r.group_circle[0] == 0 && r.group_cos[0] > 0.999f && r.group_cos[2] < 0.9f,
          "a group of 3 holding plane 0 and one more direction holds it (%d, %.3f); plane 2's first vector with "
          "one off-plane direction and plane 3's line does not (%.3f)", r.group_circle[0], r.group_cos[0],
          r.group_cos[2]);
    analysis_subspace_free(&r);
    circles_free(circ);
}

/* Cluster-then-retrain: rows spread around 12 circles' planes in 40-D (8 rows a circle at random
 * angles, a little noise) and 20 rows off every plane cluster into the 12 planes, each found once
 * (both principal-angle cosines > 0.99); a trainer of arch subspace then starts its first 12 groups
 * from them, and arch relu refuses. */
static void test_cluster_init(void)
{
    enum { NC = 12, DIM = 40, PER = 8, LONE = 20, M = NC * PER + LONE };
    circles_params cp = {NC, DIM, 0.1, 1.0f, 1.0f, 11};
    circles *circ = circles_create(&cp);
    float q[NC * 2 * DIM], rows[M * DIM], bases[64 * 2 * DIM];
    analysis_orthonormalize_planes(circles_planes(circ), NC, DIM, q);
    rng_t r;
    rng_seed(&r, 5, 0);
    for (int i = 0; i < M; i++) {
        double th = 2.0 * M_PI * rng_uniform(&r);
        for (int d = 0; d < DIM; d++) {
            float noise = 0.02f * rng_normal(&r);
            rows[i * DIM + d] = i < NC * PER ? (float)(cos(th) * q[(i / PER) * 2 * DIM + d] +
                                                       sin(th) * q[(i / PER) * 2 * DIM + DIM + d]) + noise
                                             : rng_normal(&r);
        }
    }
    int k = 0;
    CHECK(analysis_subspace_cluster(rows, M, DIM, 2, 0.3f, 3, 64, bases, &k) == ANALYSIS_OK, "clustering runs");
    analysis_subspace sub;
    CHECK(analysis_subspace_run(bases, 2 * k, DIM, 2, q, NC, 4, &sub) == ANALYSIS_OK, "scoring the clusters");
    CHECK(k == NC && sub.circles_one_group_99 == NC, "%d clusters, %d planes found once at cosines >= 0.99", k,
          sub.circles_one_group_99);
    analysis_subspace_free(&sub);

    sae_config c = {.arch = SAE_SUBSPACE, .dim = DIM, .n_latents = 64, .group_size = 2, .k = 2,
                    .aux_k_coef = 0.03125f};
    train_config t;
    trainlog_small_config(&t);
    data_source src;
    datasrc_from_circles(&src, circ);
    char err[256];
    train_state *st = train_create(&c, &t, &src, err, sizeof err);
    int used = st ? train_init_from_rows(st, rows, M, err, sizeof err) : -1;
    CHECK(used == NC, "the trainer's first %d groups start from the planes (%s)", used, used < 0 ? err : "");
    const sae_params *p = train_params(st);
    CHECK(orthonormal_err(p) < 1e-5, "and every group is orthonormal");
    CHECK(analysis_subspace_run(p->v.W_dec, 64, DIM, 2, q, NC, 4, &sub) == ANALYSIS_OK &&
              sub.circles_one_group_99 == NC, "so every circle is held by one group before training (%d)",
          sub.circles_one_group_99);
    analysis_subspace_free(&sub);
    train_free(st);
    c.arch = SAE_RELU, c.k = 0;
    st = train_create(&c, &t, &src, err, sizeof err);
    CHECK(st && train_init_from_rows(st, rows, M, err, sizeof err) == -1 && strstr(err, "subspace"),
          "arch relu refuses: %s", err);
    train_free(st);
    circles_free(circ);
}

/* ---------------------------------------------------------------- duplicate groups */

/* Pairs of groups sharing a direction, by the largest principal-angle cosine of their spans: hand
 * cases at group sizes 2 (closed form) and 3 (power iteration), rows not unit, ids a subset. */
static void test_duplicates_hand(void)
{
    enum { DIM = 8 };
    float W[8 * DIM] = {0}; /* 4 groups of 2 */
    const float h = 0.70710678f;
    W[0 * DIM + 0] = 2.0f, W[1 * DIM + 1] = 1.0f;                     /* g0 = span(e0, e1) */
    W[2 * DIM + 0] = h, W[2 * DIM + 1] = h, W[3 * DIM + 2] = 3.0f;    /* g1 = span(e0 + e1, e2): shares with g0 */
    W[4 * DIM + 3] = 1.0f, W[5 * DIM + 4] = 1.0f;                     /* g2 = span(e3, e4) */
    W[6 * DIM + 4] = 0.6f, W[6 * DIM + 5] = 0.8f, W[7 * DIM + 2] = 1; /* g3 = span(.6 e4 + .8 e5, e2) */
    int32_t all[4] = {0, 1, 2, 3}, some[3] = {0, 2, 3}, pairs[8];
    int64_t np = -1;
    CHECK(analysis_subspace_duplicates(W, DIM, 2, all, 4, 0.9f, pairs, 4, &np) == ANALYSIS_OK && np == 2 &&
              pairs[0] == 0 && pairs[1] == 1 && pairs[2] == 1 && pairs[3] == 3,
          "cut 0.9: (0,1) and (1,3) share a direction (%lld pairs)", (long long)np);
    CHECK(analysis_subspace_duplicates(W, DIM, 2, all, 4, 0.5f, pairs, 4, &np) == ANALYSIS_OK && np == 3 &&
              pairs[4] == 2 && pairs[5] == 3, "cut 0.5: and (2,3) at cosine 0.6 (%lld pairs)", (long long)np);
    CHECK(analysis_subspace_duplicates(W, DIM, 2, all, 4, 0.5f, pairs, 1, &np) == ANALYSIS_OK && np == 3 &&
              pairs[0] == 0 && pairs[1] == 1, "past cap the pairs are counted, not written");
    CHECK(analysis_subspace_duplicates(W, DIM, 2, some, 3, 0.9f, pairs, 4, &np) == ANALYSIS_OK && np == 0,
          "among groups 0, 2, 3 none (%lld)", (long long)np);
    float W3[6 * DIM] = {0}; /* 2 groups of 3: span(e0, e1, e2) and span(e3, e4, .6 e2 + .8 e5) */
    W3[0 * DIM + 0] = 1, W3[1 * DIM + 1] = 1, W3[2 * DIM + 2] = 1;
    W3[3 * DIM + 3] = 1, W3[4 * DIM + 4] = 1, W3[5 * DIM + 2] = 1.2f, W3[5 * DIM + 5] = 1.6f;
    CHECK(analysis_subspace_duplicates(W3, DIM, 3, all, 2, 0.59f, pairs, 4, &np) == ANALYSIS_OK && np == 1 &&
              analysis_subspace_duplicates(W3, DIM, 3, all, 2, 0.61f, pairs, 4, &np) == ANALYSIS_OK && np == 0,
          "groups of 3: the largest cosine is 0.6");
}

/* Pairs of groups of p's decoder whose spans share a direction above cut. */
static int64_t dup_pairs(const sae_params *p, float cut)
{
    int G = p->cfg.n_latents / p->cfg.group_size;
    int32_t *ids = malloc((size_t)G * sizeof(int32_t));
    int64_t np = 0;
    for (int g = 0; g < G; g++)
        ids[g] = g;
    CHECK(analysis_subspace_duplicates(p->v.W_dec, p->cfg.dim, p->cfg.group_size, ids, G, cut, NULL, 0, &np) ==
              ANALYSIS_OK, "duplicate scan");
    free(ids);
    return np;
}

/* train.dup_cos: 24 groups on 4 circles in 8-D end up with several groups in one plane; at the
 * resampling step the run with dup_cos re-initialises more groups than the plain one and leaves fewer
 * duplicate pairs; stopped before or after it and resumed, it ends bit for bit like a straight run;
 * the config rules. */
static void test_dup_revival(void)
{
    circles_params cp = {4, 8, 0.3, 1.0f, 1.0f, 5};
    circles *circ = circles_create(&cp);
    data_source src;
    datasrc_from_circles(&src, circ);
    sae_config c = {.arch = SAE_SUBSPACE, .dim = 8, .n_latents = 48, .group_size = 2, .k = 3,
                    .aux_k_coef = 0.03125f};
    train_config t;
    trainlog_small_config(&t);
    t.steps = 200, t.lr = 1e-2f, t.eval_every = 100, t.dead_window = 20, t.resample_every = 100;
    train_config t0 = t;
    t.dup_cos = 0.95f;
    char err[256];
    trainlog ha = {.stop_at_poll = 101}, hb = {.stop_at_poll = 101};
    train_hooks h = trainlog_hooks(&ha);
    train_state *a = train_create(&c, &t, &src, err, sizeof err), *b = train_create(&c, &t0, &src, err, sizeof err);
    CHECK(a && b && train_run(a, &h) == TRAIN_INTERRUPTED && train_step_done(a) == 100, "dup_cos run to step 100");
    h = trainlog_hooks(&hb);
    CHECK(train_run(b, &h) == TRAIN_INTERRUPTED && train_step_done(b) == 100, "plain run to step 100");
    int64_t da = dup_pairs(train_params(a), 0.95f), db = dup_pairs(train_params(b), 0.95f);
    printf("at the resampling step: plain run %ld resampled, %lld duplicate pairs; dup_cos 0.95: %ld, %lld\n",
           train_resampled(b), (long long)db, train_resampled(a), (long long)da);
    CHECK(db > 0 && train_resampled(a) > train_resampled(b) && da < db,
          "dup_cos revives duplicates: %ld vs %ld resampled, %lld vs %lld pairs", train_resampled(a),
          train_resampled(b), (long long)da, (long long)db);
    CHECK(orthonormal_err(train_params(a)) < 1e-5, "the revived groups are orthonormal");
    free(ha.blob), free(hb.blob);
    train_free(a), train_free(b);
    int stops[2] = {91, 111}; /* before and after the resampling at step 100 */
    CHECK(trainlog_resume_mismatch(&c, &t, &src, stops, 2, err, sizeof err) == 0, "dup_cos: %s", err);
    char field[64], msg[256];
    t.resample_every = 0;
    CHECK(train_config_check_for(&c, &t, field, sizeof field, msg, sizeof msg) == -1 &&
              strcmp(field, "train.dup_cos") == 0 && strstr(msg, "resample_every"), "dup_cos needs resampling: %s", msg);
    t.dup_cos = 1.5f;
    CHECK(train_config_check(&t, field, sizeof field, msg, sizeof msg) == -1 && strcmp(field, "train.dup_cos") == 0,
          "dup_cos above 1: %s", msg);
    circles_free(circ);
}

int main(void)
{
    test_subspace_recovery();
    test_cluster_init();
    test_duplicates_hand();
    test_dup_revival();
    test_gradients();
    test_encode();
    test_config();
    test_train(0);
    test_train(1);
    return check_report();
}
