/* test_groups — groups of any size (include/sae_groups.h): the table's
 * checks; an SAE over a table that is a renaming of contiguous equal groups
 * computes exactly what the contiguous SAE computes, renamed (loss, codes and
 * every gradient, for relu with orth and a threshold, topk and batchtopk with
 * AuxK on dead groups); every gradient of SAEs over uneven groups (sizes 1 to
 * 4, members scattered) against central finite differences; the trainer over
 * a table (loss falls, warm starts need the same table). The PyTorch reference
 * with uneven groups is tests/test_ref.c's *_table cases. Small shapes. */
#include "check.h"
#include "circles.h"
#include "datasrc.h"
#include "gradcheck.h"
#include "rng.h"
#include "sae.h"
#include "sae_groups.h"
#include "train.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the table */

static void expect_bad(int n, int G, const int *sizes, const int *members, const char *want)
{
    char msg[200] = "";
    sae_groups *t = sae_groups_create(n, G, sizes, members, msg, sizeof msg);
    CHECK(!t && strstr(msg, want), "groups refused with \"%s\" (got \"%s\")", want, msg);
    sae_groups_free(t);
}

static void test_table(void)
{
    char msg[200];
    int sizes[] = {3, 1, 2}, members[] = {5, 0, 2, 4, 1, 3};
    sae_groups *t = sae_groups_create(6, 3, sizes, members, msg, sizeof msg);
    CHECK(t != NULL, "a valid table: %s", msg);
    if (!t)
        return;
    CHECK(t->max_size == 3 && t->off[3] == 6, "max size and offsets");
    CHECK(t->mem[0] == 0 && t->mem[1] == 2 && t->mem[2] == 5, "members sorted within a group");
    CHECK(t->of[4] == 1 && t->of[3] == 2 && t->of[5] == 0, "latent -> group");
    sae_config c = {.arch = SAE_RELU, .dim = 3, .n_latents = 6, .groups = t};
    CHECK(sae_n_groups(&c) == 3 && sae_group_len(&c, 2) == 2 && sae_group_member(&c, 2, 1) == 3 &&
              sae_group_of(&c, 2) == 0 && sae_group_max_len(&c) == 3,
          "the accessors read the table");
    int s;
    CHECK(!sae_groups_equal_sized(t, &s), "an uneven table is not equal groups");
    int sz2[] = {2, 2, 2}, m2[] = {0, 1, 2, 3, 4, 5};
    sae_groups *e = sae_groups_create(6, 3, sz2, m2, msg, sizeof msg);
    CHECK(e && sae_groups_equal_sized(e, &s) && s == 2, "contiguous pairs are group_size 2 in disguise");
    CHECK(e && sae_groups_hash(e) != sae_groups_hash(t), "different tables, different hashes");
    sae_groups *cp = sae_groups_copy(t);
    CHECK(cp && sae_groups_hash(cp) == sae_groups_hash(t), "a copy hashes alike");
    sae_groups_free(cp);
    sae_groups_free(e);
    sae_groups_free(t);
    int dup[] = {0, 1, 2, 1, 3, 4};
    expect_bad(6, 3, sizes, dup, "latent 1 is in groups 0 and 1");
    int miss[] = {0, 1, 2, 3, 4};
    int sz3[] = {3, 1, 1};
    expect_bad(6, 3, sz3, miss, "latent 5 is in no group");
    int out[] = {0, 1, 9, 3, 4, 5};
    expect_bad(6, 3, sizes, out, "latent 9 does not exist");
    int empty[] = {3, 0, 3};
    expect_bad(6, 3, empty, m2, "at least one latent");
    int big = SAE_GROUPS_MAX_SIZE + 1, *all = malloc((size_t)big * sizeof(int));
    for (int i = 0; i < big; i++)
        all[i] = i;
    expect_bad(big, 1, &big, all, "at most 256");
    free(all);
}

static void test_config(void)
{
    sae_groups *t = gradcheck_groups("0,4,7|1|2,3|5,6,8,9", 10);
    char field[64], msg[300];
    sae_config c = {.arch = SAE_RELU, .dim = 6, .n_latents = 10, .groups = t, .sparsity_coef = 0.1f,
                    .bandwidth = 0.001f};
    CHECK(t && sae_config_check(&c, field, sizeof field, msg, sizeof msg) == 0, "relu over a table: %s", msg);
    c.n_latents = 12;
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) != 0 && !strcmp(field, "sae.n_latents") &&
              strstr(msg, "give n_latents 10"),
          "n_latents must match the table: %s", msg);
    c.n_latents = 10, c.group_size = 2;
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) != 0 && !strcmp(field, "sae.group_size"),
          "groups and group_size together are refused: %s", msg);
    c.group_size = 0, c.arch = SAE_GATED;
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) != 0 && !strcmp(field, "sae.groups") &&
              strstr(msg, "relu, topk, batchtopk and subspace"),
          "gated takes equal groups only: %s", msg);
    c.arch = SAE_TOPK, c.k = 5;
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) != 0 && !strcmp(field, "sae.k") &&
              strstr(msg, "4 groups"),
          "k counts the table's groups: %s", msg);
    c.k = 2;
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) == 0, "topk k 2 of 4 groups: %s", msg);
    sae_groups_free(t);
}

/* ---------------------------------------------------------------- renamed equal groups */

typedef struct {
    const char *name;
    sae_arch arch;
    float orth, thr;
    int k, train; /* train: training rules with a dead mask feeding AuxK */
} eq_case;

/* p1 = p0 with latent i renamed perm[i]: W_enc columns, b_enc, W_dec rows; b_dec and extras as is. */
static void rename_params(const sae_params *p0, const int *perm, sae_params *p1)
{
    int n = p0->cfg.n_latents, dim = p0->cfg.dim;
    memcpy(p1->buf, p0->buf, p0->n_params * sizeof(float));
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < dim; d++) {
            p1->v.W_enc[(size_t)d * n + perm[i]] = p0->v.W_enc[(size_t)d * n + i];
            p1->v.W_dec[(size_t)perm[i] * dim + d] = p0->v.W_dec[(size_t)i * dim + d];
        }
        p1->v.b_enc[perm[i]] = p0->v.b_enc[i];
    }
}

/* Largest |a - renamed b| over a (B, n) array whose columns are latents (b's column perm[i] = a's i). */
static double renamed_diff(const float *a, const float *b, int B, int n, const int *perm)
{
    double worst = 0.0;
    for (int r = 0; r < B; r++)
        for (int i = 0; i < n; i++) {
            double d = fabs((double)a[(size_t)r * n + i] - b[(size_t)r * n + perm[i]]);
            worst = d > worst ? d : worst;
        }
    return worst;
}

static void test_renamed_case(const eq_case *ec)
{
    enum { N = 12, DIM = 7, B = 6, S = 2 };
    static const int perm[N] = {7, 2, 10, 0, 5, 11, 3, 8, 1, 9, 4, 6}; /* contiguous latent i -> perm[i] */
    int sizes[N / S], members[N];
    for (int g = 0; g < N / S; g++)
        sizes[g] = S;
    for (int i = 0; i < N; i++)
        members[i] = perm[i]; /* group g = {perm[2g], perm[2g+1]}: contiguous group g renamed */
    char msg[200];
    sae_groups *t = sae_groups_create(N, N / S, sizes, members, msg, sizeof msg);
    sae_config c0 = {.arch = ec->arch, .dim = DIM, .n_latents = N, .group_size = S, .sparsity_coef = 0.3f,
                     .orth_coef = ec->orth, .threshold = ec->thr, .bandwidth = ec->thr > 0 ? ec->thr : 0.001f,
                     .k = ec->k, .aux_k_coef = 0.5f, .aux_k = 2};
    sae_config c1 = c0;
    c1.group_size = 0, c1.groups = t;
    sae_params p0, p1;
    sae_work w0, w1;
    CHECK(t && sae_params_alloc(&p0, &c0) == 0 && sae_params_alloc(&p1, &c1) == 0 &&
              sae_work_alloc(&w0, &c0, B) == 0 && sae_work_alloc(&w1, &c1, B) == 0,
          "%s: alloc", ec->name);
    sae_groups_free(t); /* the params keep their own copy */
    float x[B * DIM], g0[2 * N * DIM + N + DIM + 1], g1[2 * N * DIM + N + DIM + 1], g0r[2 * N * DIM + N + DIM + 1];
    unsigned char dead0[N], dead1[N];
    gradcheck_random_sae(&p0, x, B, 5);
    if (ec->arch == SAE_BATCHTOPK)
        p0.v.b_dec[DIM] = 0.5f; /* theta, for the inference rule */
    rename_params(&p0, perm, &p1);
    for (int i = 0; i < N; i++)
        dead1[perm[i]] = dead0[i] = (i / S) % 3 != 0;
    sae_pass pass = {.coef = 0.3f, .threshold = ec->thr, .train = ec->train, .dead = ec->train ? dead0 : NULL};
    sae_loss_terms t0, t1;
    double l0 = sae_loss_grad_pass(&p0, x, B, &pass, &w0, g0, &t0);
    pass.dead = ec->train ? dead1 : NULL;
    double l1 = sae_loss_grad_pass(&p1, x, B, &pass, &w1, g1, &t1);
    CHECK(fabs(l0 - l1) <= 1e-5 * (1 + fabs(l0)), "%s: loss %.9g vs renamed %.9g", ec->name, l0, l1);
    CHECK(t0.l0_groups == t1.l0_groups && t0.l0 == t1.l0, "%s: the same groups fire", ec->name);
    CHECK(renamed_diff(w0.z, w1.z, B, N, perm) <= 1e-6, "%s: codes renamed", ec->name);
    sae_params gp0 = p0, gp1 = p1, gr = p0; /* views over the gradients */
    sae_views(&c0, g0, &gp0.v), sae_views(&c1, g1, &gp1.v), sae_views(&c0, g0r, &gr.v);
    gp0.buf = g0, gr.buf = g0r;
    rename_params(&gp0, perm, &gr);
    double worst = 0.0;
    for (size_t q = 0; q < p0.n_params; q++)
        worst = fmax(worst, fabs((double)g0r[q] - g1[q]) / (1e-3 + fabs(g0r[q])));
    CHECK(worst <= 1e-4, "%s: every gradient renamed (worst rel %.3g)", ec->name, worst);
    CHECK(t0.orth == 0.0 || fabs(t0.orth - t1.orth) <= 1e-6 * (1 + t0.orth), "%s: orth %g vs %g", ec->name,
          t0.orth, t1.orth);
    printf("renamed %-22s loss %.6f vs %.6f, l0_groups %.2f, grads worst rel %.2g\n", ec->name, l0, l1,
           t0.l0_groups, worst);
    sae_params_free(&p0), sae_params_free(&p1);
    sae_work_free(&w0), sae_work_free(&w1);
}

static void test_renamed(void)
{
    static const eq_case cases[] = {
        {"relu", SAE_RELU, 0.0f, 0.0f, 0, 0},
        {"relu orth", SAE_RELU, 0.6f, 0.0f, 0, 0},
        {"relu orth threshold", SAE_RELU, 0.3f, 0.9f, 0, 0},
        {"topk", SAE_TOPK, 0.0f, 0.0f, 2, 0},
        {"topk auxk", SAE_TOPK, 0.4f, 0.0f, 2, 1},
        {"batchtopk train auxk", SAE_BATCHTOPK, 0.0f, 0.0f, 2, 1},
        {"batchtopk inference", SAE_BATCHTOPK, 0.0f, 0.0f, 2, 0},
        {"subspace topk auxk", SAE_SUBSPACE, 0.0f, 0.0f, 2, 1},
        {"subspace prox", SAE_SUBSPACE, 0.2f, 0.6f, 0, 0},
        {"subspace prox train auxk", SAE_SUBSPACE, 0.0f, 0.6f, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_renamed_case(&cases[i]);
}

/* ---------------------------------------------------------------- uneven groups by finite differences */

typedef struct {
    sae_params *p;
    sae_work *w;
    const float *x;
    int B;
    float coef;
} fd_ctx;

static double fd_loss(void *ctx, unsigned char *pat)
{
    fd_ctx *f = ctx;
    double loss = sae_loss_grad(f->p, f->x, f->B, f->coef, f->w, NULL, NULL);
    size_t nz = (size_t)f->B * f->p->cfg.n_latents;
    for (size_t k = 0; k < nz; k++) {
        pat[k] = f->w->z[k] != 0.0f;
        pat[nz + k] = f->w->pre[k] > 0.0f;
    }
    gradcheck_orth_signs(f->p, 0, pat + 2 * nz);
    return loss;
}

static void test_fd_case(const char *name, sae_arch arch, const char *groups, int n, float orth, int k)
{
    enum { DIM = 6, B = 5 };
    sae_groups *t = gradcheck_groups(groups, n);
    sae_config c = {.arch = arch, .dim = DIM, .n_latents = n, .groups = t, .sparsity_coef = 0.3f,
                    .orth_coef = orth, .k = k, .bandwidth = 0.001f,
                    .threshold = arch == SAE_SUBSPACE && k == 0 ? 0.5f : 0.0f}; /* subspace's prox step */
    sae_params p;
    sae_work w;
    CHECK(t && sae_params_alloc(&p, &c) == 0 && sae_work_alloc(&w, &c, B) == 0, "%s: alloc", name);
    sae_groups_free(t);
    size_t npat = 2 * (size_t)B * n + (size_t)n * n;
    float x[B * DIM], *grad = malloc(p.n_params * sizeof(float));
    unsigned char *pat0 = calloc(npat, 1);
    gradcheck_random_sae(&p, x, B, 17);
    sae_loss_terms lt;
    sae_loss_grad(&p, x, B, 0.3f, &w, grad, &lt);
    fd_ctx f = {&p, &w, x, B, 0.3f};
    fd_loss(&f, pat0);
    CHECK(lt.l0_groups > 0.5 && lt.l0_groups < sae_n_groups(&p.cfg) - 0.5, "%s: some groups on, some off (%g)", name,
          lt.l0_groups);
    gradcheck_job job = {name, p.buf, grad, fd_loss, &f, pat0, npat};
    gradcheck_stats st = {0};
    gradcheck_range(&job, 0, p.n_params, &st);
    CHECK(st.bad == 0 && st.checked >= (int)(0.8 * p.n_params), "%s: %d of %d gradients off (%d skipped)", name,
          st.bad, st.checked, st.skipped);
    printf("gradcheck %-24s %4d params checked, %3d at kinks skipped, worst err/tol %.3f\n", name, st.checked,
           st.skipped, st.worst_ratio);
    sae_params_free(&p);
    sae_work_free(&w);
    free(grad);
    free(pat0);
}

static void test_fd(void)
{
    test_fd_case("relu uneven", SAE_RELU, "0,4,7|1|2,3|5,6,8,9", 10, 0.0f, 0);
    test_fd_case("relu uneven orth", SAE_RELU, "9,0,4|1|2,3|5,6,8,7", 10, 0.5f, 0);
    test_fd_case("topk uneven", SAE_TOPK, "0,4,7|1|2,3|5,6,8,9|10,11", 12, 0.3f, 2);
    test_fd_case("batchtopk uneven (inference)", SAE_BATCHTOPK, "0,4,7|1|2,3|5,6,8,9", 10, 0.0f, 2);
    test_fd_case("subspace uneven topk", SAE_SUBSPACE, "0,4,7|1|2,3|5,6,8,9|10,11", 12, 0.0f, 2);
    test_fd_case("subspace uneven prox", SAE_SUBSPACE, "0,4,7|1|2,3|5,6,8,9", 10, 0.2f, 0);
}

/* ---------------------------------------------------------------- the trainer */

/* Groups of 1, 2 and 3 latents: group g holds g and (g % 3) latents from 24 up; shift moves which
 * groups get the extras (a different table over the same latents). */
static sae_groups *train_table(int shift)
{
    char spec[600] = "";
    int extra = 24;
    for (int g = 0; g < 24; g++) {
        snprintf(spec + strlen(spec), sizeof spec - strlen(spec), "%s%d", g ? "|" : "", g);
        for (int k = 0; k < (g + shift) % 3; k++)
            snprintf(spec + strlen(spec), sizeof spec - strlen(spec), ",%d", extra++);
    }
    return gradcheck_groups(spec, extra);
}

/* A trainer of arch (k groups a row for topk/subspace, 0 else) over table t, 20 circles in 16-D. */
static train_state *train_arch_over(sae_arch arch, int k, sae_groups *t, const data_source *src, int steps)
{
    char err[300];
    sae_config c = {.arch = arch, .dim = 16, .n_latents = t ? t->n : 1, .groups = t, .k = k,
                    .sparsity_coef = 0.01f, .bandwidth = 0.001f, .aux_k_coef = 0.03125f};
    train_config tc;
    train_config_default(&tc);
    tc.steps = steps, tc.batch_size = 128, tc.lr = 3e-3f, tc.lr_warmup_steps = 100;
    tc.sparsity_warmup_steps = 300, tc.eval_every = 500, tc.eval_rows = 1024, tc.dead_window = 200;
    tc.resample_every = 400;
    train_state *st = t ? train_create(&c, &tc, src, err, sizeof err) : NULL;
    CHECK(st != NULL, "train_create (%s) over a table: %s", sae_arch_name(arch), t ? err : "no table");
    return st;
}

static train_state *train_over(sae_groups *t, const data_source *src, int steps)
{
    return train_arch_over(SAE_RELU, 0, t, src, steps);
}

static void test_train(void)
{
    circles_params cp = {20, 16, 0.1, 1.0f, 1.0f, 7};
    circles *circ = circles_create(&cp);
    data_source src;
    datasrc_from_circles(&src, circ);
    sae_groups *t = train_table(0), *other = train_table(1);
    train_state *st = train_over(t, &src, 1500);
    sae_groups_free(t); /* the trainer keeps its own copy */
    train_hooks h = {0};
    if (st && train_run(st, &h) == TRAIN_DONE) {
        const train_metrics *m = train_last_metrics(st);
        printf("train relu over 24 groups of 1-3 latents (48), 20 circles in 16-D: fve %.4f l0 %.2f l0_groups "
               "%.2f dead %.3f\n", m->fve, m->l0, m->l0_groups, m->dead_frac);
        CHECK(m->fve > 0.5 && m->l0_groups > 0.5, "training over a table learns (fve %.4f)", m->fve);
        size_t len = train_checkpoint_size(st);
        void *ck = malloc(len);
        train_checkpoint_write(st, ck);
        sae_groups *again = train_table(0);
        train_state *same = train_over(again, &src, 1500);
        sae_groups_free(again);
        train_state *diff = train_over(other, &src, 1500);
        char err[300] = "";
        CHECK(same && train_checkpoint_restore(same, ck, len, err, sizeof err) == 0, "restore, same table: %s", err);
        CHECK(diff && train_checkpoint_restore(diff, ck, len, err, sizeof err) != 0 && strstr(err, "sae.groups"),
              "a checkpoint does not restore over another table: %s", err);
        train_free(same);
        train_free(diff);
        free(ck);
    } else {
        CHECK(0, "train over a table: %s", st ? train_error(st) : "not created");
    }
    sae_groups_free(other);
    train_free(st);
    circles_free(circ);
}

/* train_init_from_params: a fresh trainer over a table takes an ordinary SAE's weights and reconstructs
 * what it reconstructs (the groups change the penalty, not the function, until it trains). */
static void test_init_from_params(void)
{
    enum { B = 16 };
    circles_params cp = {20, 16, 0.1, 1.0f, 1.0f, 7};
    circles *circ = circles_create(&cp);
    data_source src;
    datasrc_from_circles(&src, circ);
    sae_groups *t = train_table(0);
    sae_config c0 = {.arch = SAE_RELU, .dim = 16, .n_latents = t ? t->n : 1, .group_size = 1,
                     .sparsity_coef = 0.01f, .bandwidth = 0.001f};
    sae_params p0;
    float x[B * 16], xh0[B * 16], xh1[B * 16];
    float *z = malloc((size_t)B * c0.n_latents * sizeof(float));
    CHECK(t && sae_params_alloc(&p0, &c0) == 0, "alloc");
    gradcheck_random_sae(&p0, x, B, 23);
    train_state *st = train_over(t, &src, 100);
    sae_groups_free(t);
    char err[300] = "";
    CHECK(st && train_init_from_params(st, &p0, err, sizeof err) == 0, "init from params: %s", err);
    if (st) {
        sae_encode(&p0, NULL, x, B, z, xh0);
        sae_encode(train_params(st), NULL, x, B, z, xh1);
        double worst = 0.0;
        for (int k = 0; k < B * 16; k++)
            worst = fmax(worst, fabs((double)xh0[k] - xh1[k]));
        CHECK(worst < 1e-4, "the warm-started SAE reconstructs as its source (max diff %.3g)", worst);
        const float *d = train_params(st)->v.W_dec;
        CHECK(fabs(d[0] * d[0] + d[1] * d[1] + d[2] * d[2] + d[3] * d[3] + d[4] * d[4] + d[5] * d[5] + d[6] * d[6] +
                   d[7] * d[7] + d[8] * d[8] + d[9] * d[9] + d[10] * d[10] + d[11] * d[11] + d[12] * d[12] +
                   d[13] * d[13] + d[14] * d[14] + d[15] * d[15] - 1.0) < 1e-5,
              "its decoder rows are unit");
        CHECK(train_init_from_params(st, &p0, err, sizeof err) == 0, "again at step 0");
    }
    sae_config c1 = c0;
    c1.n_latents = 12;
    sae_params p1;
    CHECK(sae_params_alloc(&p1, &c1) == 0, "alloc");
    CHECK(st && train_init_from_params(st, &p1, err, sizeof err) != 0 && strstr(err, "12 latents"),
          "another shape is refused: %s", err);
    sae_params_free(&p1);
    sae_params_free(&p0);
    train_free(st);
    free(z);
    circles_free(circ);
}

/* Largest |D_g D_g^T - I| over the groups of p (each group's decoder rows orthonormal). */
static double worst_orthonormal(const sae_params *p)
{
    const sae_config *c = &p->cfg;
    double worst = 0.0;
    for (int g = 0; g < sae_n_groups(c); g++)
        for (int a = 0; a < sae_group_len(c, g); a++)
            for (int b = 0; b < sae_group_len(c, g); b++) {
                const float *da = p->v.W_dec + (size_t)sae_group_member(c, g, a) * c->dim;
                const float *db = p->v.W_dec + (size_t)sae_group_member(c, g, b) * c->dim;
                double dot = 0.0;
                for (int d = 0; d < c->dim; d++)
                    dot += (double)da[d] * db[d];
                worst = fmax(worst, fabs(dot - (a == b)));
            }
    return worst;
}

/* A subspace SAE over a table: a warm start makes each group orthonormal, training keeps it so (the
 * retraction runs group by group after each update) and learns. */
static void test_train_subspace(void)
{
    circles_params cp = {20, 16, 0.1, 1.0f, 1.0f, 7};
    circles *circ = circles_create(&cp);
    data_source src;
    datasrc_from_circles(&src, circ);
    sae_groups *t = train_table(0);
    char err[300] = "";
    train_state *st = train_arch_over(SAE_SUBSPACE, 4, t, &src, 1500);
    sae_config c0 = {.arch = SAE_RELU, .dim = 16, .n_latents = t ? t->n : 1, .group_size = 1, .bandwidth = 0.001f};
    sae_groups_free(t);
    sae_params p0;
    float x[16];
    CHECK(sae_params_alloc(&p0, &c0) == 0, "alloc");
    gradcheck_random_sae(&p0, x, 1, 31);
    CHECK(st && train_init_from_params(st, &p0, err, sizeof err) == 0 && worst_orthonormal(train_params(st)) < 1e-5,
          "a warm start gives orthonormal groups: %s", err);
    train_hooks h = {0};
    if (st && train_run(st, &h) == TRAIN_DONE) {
        const train_metrics *m = train_last_metrics(st);
        double worst = worst_orthonormal(train_params(st));
        printf("train subspace k 4 over 24 groups of 1-3 latents: fve %.4f l0_groups %.2f dead %.3f, groups "
               "orthonormal to %.2g\n", m->fve, m->l0_groups, m->dead_frac, worst);
        CHECK(m->fve > 0.5 && worst < 1e-4, "subspace over a table learns (fve %.4f) with orthonormal groups (%.2g)",
              m->fve, worst);
    } else {
        CHECK(0, "train subspace over a table: %s", st ? train_error(st) : "not created");
    }
    sae_params_free(&p0);
    train_free(st);
    circles_free(circ);
}

int main(void)
{
    test_table();
    test_config();
    test_renamed();
    test_fd();
    test_train();
    test_init_from_params();
    test_train_subspace();
    return check_report();
}
