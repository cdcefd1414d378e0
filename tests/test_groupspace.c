/* test_groupspace — the group space (core/groupspace*.c): sets, pair
 * counts and their weights against brute force, the loss's gradient against
 * finite differences and against an independent PyTorch reference
 * (tests/ref_groupspace.py), the groups read off positions, and the seed's
 * two toys at the sizes the issue names (100 items): disjoint pairs end
 * within near / beyond far, co-occurring pairs wrap into a ring under raw
 * counts and do not under NPMI weights. */
#include "check.h"
#include "groupspace.h"
#include "reftest.h"
#include <stdlib.h>
#include <string.h>

/* ---- sets and statistics ---- */

static void test_sets(void)
{
    int64_t ptr[4] = { 0, 3, 3, 6 };
    int32_t items[6] = { 4, 1, 4, 2, 0, 2 };
    groupspace_sets s;
    CHECK(groupspace_sets_build(&s, 5, 3, ptr, items) == GROUPSPACE_OK, "build");
    CHECK(s.ptr[1] == 2 && s.items[0] == 1 && s.items[1] == 4, "set 0 sorted, repeat dropped");
    CHECK(s.ptr[2] == 2 && s.ptr[3] == 4 && s.items[2] == 0 && s.items[3] == 2, "empty set kept, set 2 sorted");
    groupspace_sets_free(&s);
    items[2] = 5;
    CHECK(groupspace_sets_build(&s, 5, 3, ptr, items) == GROUPSPACE_EINVAL, "an id past the items is refused");
}

static void test_cooc(void)
{
    groupspace_sets s;
    CHECK(groupspace_toy_corpus(&s, 20, 0.3, 2000, 7) == GROUPSPACE_OK, "toy corpus");
    groupspace_cooc *c;
    CHECK(groupspace_cooc_build(&s, &c) == GROUPSPACE_OK, "cooc");
    int bad = 0;
    for (int i = 0; i < 20; i++)
        for (int j = i + 1; j < 20; j++) {
            int64_t brute = 0, ni = 0, nj = 0;
            for (int64_t k = 0; k < s.n_sets; k++) {
                int hi = 0, hj = 0;
                for (int64_t e = s.ptr[k]; e < s.ptr[k + 1]; e++) hi |= s.items[e] == i, hj |= s.items[e] == j;
                brute += hi && hj, ni += hi, nj += hj;
            }
            bad += groupspace_cooc_pair(c, i, j) != brute || groupspace_cooc_pair(c, j, i) != brute;
            double jac = (double)brute / (double)(ni + nj - brute);
            bad += fabs(groupspace_cooc_jaccard(c, i, j) - jac) > 1e-6;
        }
    CHECK(bad == 0, "pair counts and Jaccard equal brute force (%d differ)", bad);
    /* toy pairs always occur together: NPMI 1, Jaccard 1; other pairs are independent: NPMI ~0 */
    CHECK_NEAR(groupspace_cooc_weight(c, GROUPSPACE_WEIGHT_NPMI, 4, 5), 1.0, 1e-6, "npmi of a true pair");
    CHECK_NEAR(groupspace_cooc_weight(c, GROUPSPACE_WEIGHT_JACCARD, 4, 5), 1.0, 1e-6, "jaccard of a true pair");
    CHECK(groupspace_cooc_weight(c, GROUPSPACE_WEIGHT_NPMI, 4, 7) < 0.1f, "npmi of independent items ~0: %g",
          (double)groupspace_cooc_weight(c, GROUPSPACE_WEIGHT_NPMI, 4, 7));
    CHECK(groupspace_cooc_weight(c, GROUPSPACE_WEIGHT_COUNT, 4, 7) == 1.0f, "count weighs every pair 1");
    groupspace_cooc_free(c);
    groupspace_sets_free(&s);
}

/* ---- the loss and its gradient ---- */

typedef struct {
    const char *name;
    int n_items, dim, negatives;
    groupspace_weight weight;
    float min_jaccard;
} grad_case;

static const grad_case grad_cases[] = {
    { "count_2d", 12, 2, 3, GROUPSPACE_WEIGHT_COUNT, 0 },
    { "npmi_3d", 12, 3, 4, GROUPSPACE_WEIGHT_NPMI, 0 },
    { "jaccard_all_neg", 10, 2, 0, GROUPSPACE_WEIGHT_JACCARD, 0.2f },
};
#define N_GRAD_CASES ((int)(sizeof grad_cases / sizeof grad_cases[0]))

/* One case's numbers: a corpus, one set of it, positions with its negatives drawn, and the C result. */
typedef struct {
    groupspace_config cfg;
    groupspace_sets corpus;
    groupspace_cooc *cooc;
    groupspace_work w;
    float *pos;        /* (N, D) */
    int32_t set[8];
    int n;
    float loss;
    float *grad;       /* (N, D) members' and negatives' gradients scattered */
} grad_run;

static float grad_loss(grad_run *g, groupspace_terms *t)
{
    memset(t, 0, sizeof *t);
    groupspace_loss_grad(&g->cfg, g->cooc, g->pos, g->set, g->n, &g->w, t);
    return (float)(t->attract + t->repel);
}

static int grad_setup(const grad_case *gc, int index, grad_run *g)
{
    memset(g, 0, sizeof *g);
    g->cfg = (groupspace_config){ .n_items = gc->n_items, .dim = gc->dim, .near = 0.3f, .far = 1.5f, .repel = 0.7f,
                                  .negatives = gc->negatives, .weight = gc->weight, .min_jaccard = gc->min_jaccard };
    rng_t r;
    rng_seed(&r, 99, (uint64_t)index);
    if (groupspace_toy_corpus(&g->corpus, gc->n_items, 0.35, 300, 3 + (uint64_t)index) ||
        groupspace_cooc_build(&g->corpus, &g->cooc) || groupspace_work_init(&g->w, gc->n_items))
        return -1;
    int64_t k = 0;
    while (g->corpus.ptr[k + 1] - g->corpus.ptr[k] < 4 || g->corpus.ptr[k + 1] - g->corpus.ptr[k] > 8) k++;
    g->n = (int)(g->corpus.ptr[k + 1] - g->corpus.ptr[k]);
    memcpy(g->set, g->corpus.items + g->corpus.ptr[k], (size_t)g->n * sizeof(int32_t));
    g->pos = malloc((size_t)gc->n_items * gc->dim * sizeof *g->pos);
    g->grad = calloc((size_t)gc->n_items * gc->dim, sizeof *g->grad);
    if (!g->pos || !g->grad || groupspace_draw_negatives(&g->cfg, g->set, g->n, &r, &g->w)) return -1;
    for (int e = 0; e < gc->n_items * gc->dim; e++) g->pos[e] = 1.2f * rng_normal(&r);
    groupspace_terms t;
    g->loss = grad_loss(g, &t);
    int m = groupspace_neg_count(&g->cfg, g->n), D = gc->dim;
    for (int a = 0; a < g->n; a++)
        for (int c = 0; c < D; c++) g->grad[g->set[a] * D + c] += g->w.g_set[a * D + c];
    for (int e = 0; e < g->n * m; e++)
        for (int c = 0; c < D; c++) g->grad[g->w.neg[e] * D + c] += g->w.g_neg[e * D + c];
    return 0;
}

static void grad_free(grad_run *g)
{
    groupspace_sets_free(&g->corpus);
    groupspace_cooc_free(g->cooc);
    groupspace_work_free(&g->w);
    free(g->pos), free(g->grad);
}

/* Central differences of L(S) in double steps; hinges make L piecewise linear, so a coordinate whose
 * step crosses a kink (the two one-sided slopes differ) is skipped and counted. */
static void test_grad_fd(void)
{
    for (int ci = 0; ci < N_GRAD_CASES; ci++) {
        grad_run g;
        CHECK(grad_setup(&grad_cases[ci], ci, &g) == 0, "%s: set-up", grad_cases[ci].name);
        const float h = 1e-3f;
        int checked = 0, bad = 0;
        groupspace_terms t;
        for (int e = 0; e < g.cfg.n_items * g.cfg.dim; e++) {
            float x0 = g.pos[e];
            g.pos[e] = x0 + h;
            double up = grad_loss(&g, &t);
            g.pos[e] = x0 - h;
            double down = grad_loss(&g, &t);
            g.pos[e] = x0;
            double fwd = (up - g.loss) / h, bwd = (g.loss - down) / h;
            if (fabs(fwd - bwd) > 0.05) continue; /* a kink inside the step */
            checked++;
            bad += fabs((up - down) / (2 * h) - g.grad[e]) > 2e-2 * (1 + fabs(g.grad[e]));
        }
        CHECK(bad == 0 && checked > g.cfg.n_items, "%s: gradient vs finite differences: %d of %d coordinates differ",
              grad_cases[ci].name, bad, checked);
        grad_free(&g);
    }
}

/* ---- the PyTorch reference ---- */

static int write_grad_case(int index, const char *dir)
{
    grad_run g;
    int rc = grad_setup(&grad_cases[index], index, &g);
    if (rc) {
        grad_free(&g);
        return -1;
    }
    int m = groupspace_neg_count(&g.cfg, g.n);
    float set[8], *neg = malloc((size_t)(g.n * m > 0 ? g.n * m : 1) * sizeof *neg);
    char *corpus = malloc((size_t)g.corpus.ptr[g.corpus.n_sets] * 4 + (size_t)g.corpus.n_sets + 1), *p = corpus;
    if (!neg || !corpus) rc = -1;
    for (int a = 0; !rc && a < g.n; a++) set[a] = (float)g.set[a];
    for (int e = 0; !rc && e < g.n * m; e++) neg[e] = (float)g.w.neg[e];
    for (int64_t k = 0; !rc && k < g.corpus.n_sets; k++) {
        for (int64_t e = g.corpus.ptr[k]; e < g.corpus.ptr[k + 1]; e++)
            p += sprintf(p, "%s%d", e > g.corpus.ptr[k] ? " " : "", g.corpus.items[e]);
        *p++ = '\n';
    }
    if (!rc) {
        *p = '\0';
        int64_t s_pos[2] = { g.cfg.n_items, g.cfg.dim }, s_set[1] = { g.n }, s_neg[2] = { g.n, m };
        static const char *const weights[] = { "count", "jaccard", "npmi" };
        rc = reftest_write_npy(dir, "pos", g.pos, s_pos, 2) | reftest_write_npy(dir, "grad_pos", g.grad, s_pos, 2) |
             reftest_write_npy(dir, "set", set, s_set, 1) | reftest_write_npy(dir, "neg", neg, s_neg, 2) |
             reftest_write_npy(dir, "loss", &g.loss, NULL, 0) | reftest_write_text(dir, "corpus.txt", "%s", corpus) |
             reftest_write_text(dir, "config.txt", "near %.9g\nfar %.9g\nrepel %.9g\nweight %s\nmin_jaccard %.9g\n",
                                (double)g.cfg.near, (double)g.cfg.far, (double)g.cfg.repel, weights[g.cfg.weight],
                                (double)g.cfg.min_jaccard);
    }
    free(neg), free(corpus);
    grad_free(&g);
    return rc ? -1 : 0;
}

static void ref_check(int ok, const char *what) { CHECK(ok, "%s", what); }

/* ---- groups ---- */

static void test_groups(void)
{
    /* three tight clusters (sizes 3, 2, 1) and a chain: 0..2 near the origin, 3-4 at x=5, 5 alone at x=10 */
    const float pos[12] = { 0, 0, 0.1f, 0, 0.05f, 0.1f, 5, 5, 5.2f, 5, 10, 0 };
    int32_t g[6];
    int n = 0;
    CHECK(groupspace_groups(pos, 6, 2, 0.5f, 64, g, &n) == GROUPSPACE_OK && n == 3, "3 components: %d", n);
    CHECK(g[0] == 0 && g[1] == 0 && g[2] == 0 && g[3] == 1 && g[4] == 1 && g[5] == 2, "members and order");
    CHECK(groupspace_groups(pos, 6, 2, 0.5f, 2, g, &n) == GROUPSPACE_OK && n == 4, "max 2 splits the 3: %d", n);
    int sizes[6] = { 0 };
    for (int i = 0; i < 6; i++) sizes[g[i]]++;
    CHECK(sizes[0] <= 2 && sizes[1] <= 2 && sizes[2] <= 2 && sizes[3] <= 2, "no part over 2");
    CHECK(groupspace_groups(pos, 6, 2, 100, 64, g, &n) == GROUPSPACE_OK && n == 1, "a large link joins all");
    /* 2000 random items in 1-D, linked by gaps below 0.01: components equal a sort-and-scan */
    enum { M = 2000 };
    float *x = malloc(M * sizeof *x);
    int32_t *gg = malloc(M * sizeof *gg);
    rng_t r;
    rng_seed(&r, 5, 0);
    for (int i = 0; i < M; i++) x[i] = (float)rng_uniform(&r) * 10;
    CHECK(groupspace_groups(x, M, 1, 0.01f, M, gg, &n) == GROUPSPACE_OK, "1-D groups");
    int wrong = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < M; j++)
            if (fabsf(x[i] - x[j]) < 0.01f) wrong += gg[i] != gg[j];
    CHECK(wrong == 0, "items closer than link share a group (%d do not)", wrong);
    free(x), free(gg);
}

/* ---- the seed's toys ---- */

typedef struct {
    groupspace_pairs pairs;
    groupspace_radius radius;
    int n_groups;
} toy_result;

static void toy_run(double p, groupspace_weight weight, int steps, toy_result *out)
{
    const int N = 100;
    groupspace_config cfg = { .n_items = N, .dim = 2, .near = 0.1f, .far = 1.0f, .repel = 1, .negatives = 8,
                              .weight = weight };
    groupspace_sets corpus;
    groupspace_cooc *cooc = NULL;
    groupspace_work w;
    float *pos = malloc((size_t)N * 2 * sizeof *pos);
    int32_t buf[100], truth[100], g[100];
    rng_t r;
    rng_seed(&r, 0, 1);
    int ok = groupspace_toy_corpus(&corpus, N, p, 20000, 1) == 0 && groupspace_cooc_build(&corpus, &cooc) == 0 &&
             groupspace_work_init(&w, N) == 0 && pos;
    CHECK(ok, "toy set-up");
    if (!ok) exit(1);
    groupspace_init(&cfg, &r, pos);
    groupspace_source src = { NULL, p };
    for (int s = 0; s < steps; s++) {
        groupspace_terms t = { 0 };
        groupspace_batch(&cfg, cooc, &src, pos, 16, &r, 0.05f * (1 - (float)s / steps), &w, buf, &t);
    }
    for (int i = 0; i < N; i++) truth[i] = i / 2;
    groupspace_pair_stats(pos, N, 2, truth, cfg.near, cfg.far, 0, NULL, &out->pairs);
    groupspace_radius_profile(pos, N, 2, 0, NULL, &out->radius);
    groupspace_groups(pos, N, 2, 0.55f, 64, g, &out->n_groups);
    groupspace_sets_free(&corpus);
    groupspace_cooc_free(cooc);
    groupspace_work_free(&w);
    free(pos);
}

static void test_toys(void)
{
    toy_result d, ring, npmi;
    toy_run(0, GROUPSPACE_WEIGHT_COUNT, 3000, &d);
    double near = (double)d.pairs.true_near / d.pairs.true_pairs, far = (double)d.pairs.other_far / d.pairs.other_pairs;
    CHECK(near >= 0.98 && far >= 0.98 && d.n_groups == 50, "disjoint pairs: %.3f within near, %.4f beyond far, %d "
          "groups", near, far, d.n_groups);
    toy_run(0.1, GROUPSPACE_WEIGHT_COUNT, 5000, &ring);
    printf("co-occurring pairs, count weights: true pairs within near %.3f, others beyond far %.4f, radius cv %.3f, "
           "inner %.2f\n", (double)ring.pairs.true_near / ring.pairs.true_pairs,
           (double)ring.pairs.other_far / ring.pairs.other_pairs, ring.radius.cv, ring.radius.inner_frac);
    CHECK(ring.radius.cv < 0.15 && ring.radius.inner_frac == 0, "the seed's ring: radius cv %.3f, inner %.2f",
          ring.radius.cv, ring.radius.inner_frac);
    toy_run(0.1, GROUPSPACE_WEIGHT_NPMI, 5000, &npmi);
    near = (double)npmi.pairs.true_near / npmi.pairs.true_pairs;
    far = (double)npmi.pairs.other_far / npmi.pairs.other_pairs;
    CHECK(near >= 0.98 && far >= 0.98 && npmi.radius.cv > 0.25, "npmi: %.3f within near, %.4f beyond far, cv %.3f",
          near, far, npmi.radius.cv);
}

int main(void)
{
    test_sets();
    test_cooc();
    test_grad_fd();
    test_groups();
    test_toys();
    reftest_suite s = { "ref_groupspace.py", "saed_test_ref_groupspace", grad_cases, sizeof grad_cases[0],
                        N_GRAD_CASES, write_grad_case, ref_check };
    reftest_run(&s);
    return check_report();
}
