/* bench_circles — one circles experiment per process, through the core
 * alone (no daemon): train an SAE on the circles benchmark, then score its
 * decoder against the ground truth, for quick iteration on architectures
 * (docs/experiments.md; the documented runs also go through the API).
 *
 *   bench_circles --circles 400 --dim 50 --p 0.008 --width 3200 --arch subspace --gs 2 --k 4
 *                 [--steps N --batch B --lr LR --coef C --thr T --orth O --aux A --threads T --seed S
 *                  --warmup W --eval-every E --decay none|linear|cosine --resample N --dead-window N
 *                  --dup COS --init-relu N --init-coef C --init-width W --max-minutes M]
 *
 * Output (stdout): one line of key=value pairs (fve, l0, l0_groups, dead, the rows in a plane,
 * circles found by rows, circles held by exactly one group at cosines 0.9 and 0.99, circles held
 * at all, samples/s) then the two histograms as "hist_rows k:count ..." and "hist_groups ...".
 * Progress on stderr. */
#include "analysis.h"
#include "circles.h"
#include "datasrc.h"
#include "sae.h"
#include "train.h"
#include <cblas.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    circles_params cp;
    sae_config sc;
    train_config tc;
    double t0;
    int init_steps;      /* --init-relu N: cluster-then-retrain from a relu SAE trained N steps first */
    float init_coef;     /* its sparsity_coef (--init-coef, default 1) */
    int init_width;      /* its width (--init-width, default the SAE's) */
    double max_s;        /* --max-minutes M: stop the main run after M minutes and report it as it is */
} bc_run;

static double bc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bc_on_eval(void *ctx, const train_metrics *m)
{
    bc_run *r = ctx;
    fprintf(stderr, "  step %6d  fve %.4f  l0 %6.2f (groups %6.2f)  dead %.3f  loss %.5f  %.0f samples/s  %.0f s\n",
            m->step, m->fve, m->l0, m->l0_groups, m->dead_frac, m->loss, m->samples_per_s, bc_now() - r->t0);
    return 0;
}

/* Stops the main run once its time budget is spent (the relu pretraining is not limited). */
static train_stop bc_should_stop(void *ctx)
{
    const bc_run *r = ctx;
    return r->max_s > 0 && bc_now() - r->t0 > r->max_s ? TRAIN_CANCEL : TRAIN_CONTINUE;
}

static void bc_defaults(bc_run *r)
{
    r->cp = (circles_params){400, 50, 0.008, 1.0f, 1.0f, 1};
    sae_config_default(&r->sc);
    r->sc.n_latents = 3200;
    train_config_default(&r->tc);
    r->tc.steps = 5000, r->tc.batch_size = 1024, r->tc.lr = 3e-3f, r->tc.eval_every = 500;
    r->init_coef = 1.0f;
}

static int bc_parse(int argc, char **argv, bc_run *r)
{
    static const struct option opts[] = {
        {"circles", 1, 0, 'n'}, {"dim", 1, 0, 'd'}, {"p", 1, 0, 'p'}, {"width", 1, 0, 'w'}, {"arch", 1, 0, 'a'},
        {"gs", 1, 0, 'g'}, {"k", 1, 0, 'k'}, {"steps", 1, 0, 's'}, {"batch", 1, 0, 'b'}, {"lr", 1, 0, 'l'},
        {"coef", 1, 0, 'c'}, {"thr", 1, 0, 't'}, {"orth", 1, 0, 'o'}, {"aux", 1, 0, 'x'}, {"threads", 1, 0, 'T'},
        {"seed", 1, 0, 'S'}, {"warmup", 1, 0, 'W'}, {"eval-every", 1, 0, 'E'}, {"decay", 1, 0, 'D'},
        {"data-seed", 1, 0, 'R'}, {"resample", 1, 0, 'r'}, {"dead-window", 1, 0, 'V'}, {"dup", 1, 0, 'U'}, {"max-minutes", 1, 0, 'M'}, {"init-relu", 1, 0, 'I'},
        {"init-coef", 1, 0, 'J'}, {"init-width", 1, 0, 'K'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'n': r->cp.n_circles = atoi(optarg); break;
        case 'd': r->cp.dim = atoi(optarg); break;
        case 'p': r->cp.p_active = atof(optarg); break;
        case 'w': r->sc.n_latents = atoi(optarg); break;
        case 'a': if (sae_arch_parse(optarg, &r->sc.arch)) return fprintf(stderr, "unknown arch %s\n", optarg), -1; break;
        case 'g': r->sc.group_size = atoi(optarg); break;
        case 'k': r->sc.k = atoi(optarg); break;
        case 's': r->tc.steps = atoi(optarg); break;
        case 'b': r->tc.batch_size = atoi(optarg); break;
        case 'l': r->tc.lr = (float)atof(optarg); break;
        case 'c': r->sc.sparsity_coef = (float)atof(optarg); break;
        case 't': r->sc.threshold = (float)atof(optarg); break;
        case 'o': r->sc.orth_coef = (float)atof(optarg); break;
        case 'x': r->sc.aux_k_coef = (float)atof(optarg); break;
        case 'T': r->tc.threads = atoi(optarg); break;
        case 'S': r->tc.seed = (uint64_t)atoll(optarg); break;
        case 'W': r->tc.lr_warmup_steps = r->tc.sparsity_warmup_steps = atoi(optarg); break;
        case 'E': r->tc.eval_every = atoi(optarg); break;
        case 'D': if (lr_decay_parse(optarg, &r->tc.decay)) return fprintf(stderr, "unknown decay %s\n", optarg), -1; break;
        case 'R': r->cp.seed = (uint64_t)atoll(optarg); break;
        case 'r': r->tc.resample_every = atoi(optarg); break;
        case 'V': r->tc.dead_window = atoi(optarg); break;
        case 'U': r->tc.dup_cos = (float)atof(optarg); break;
        case 'M': r->max_s = 60.0 * atof(optarg); break;
        case 'I': r->init_steps = atoi(optarg); break;
        case 'J': r->init_coef = (float)atof(optarg); break;
        case 'K': r->init_width = atoi(optarg); break;
        default: return -1;
        }
    }
    r->sc.dim = r->cp.dim;
    r->sc.bandwidth = sae_config_default_bandwidth(&r->sc);
    return 0;
}

/* Prints hist (max_k + 1) as " k:count" pairs, non-zero bins only. */
static void bc_print_hist(const char *name, const int64_t *hist, int max_k)
{
    printf("%s", name);
    for (int k = 0; k <= max_k; k++)
        if (hist[k])
            printf(" %d%s:%lld", k, k == max_k ? "+" : "", (long long)hist[k]);
    printf("\n");
}

/* Each circle's best group cosine (the largest smaller principal-angle cosine of a group whose best
 * plane it is; 0 for none) as a histogram of 10 bins of 0.1: how far the circles not held are. */
static void bc_print_best_cos(const analysis_subspace *sub)
{
    float *best = calloc((size_t)sub->n_circles, sizeof(float)); /* (nc) */
    int64_t bins[10] = {0};
    if (!best)
        return;
    for (int g = 0; g < sub->n_groups; g++)
        if (sub->group_circle[g] >= 0 && sub->group_cos[g] > best[sub->group_circle[g]])
            best[sub->group_circle[g]] = sub->group_cos[g];
    for (int i = 0; i < sub->n_circles; i++)
        bins[best[i] >= 1.0f ? 9 : (int)(best[i] * 10.0f)]++;
    printf("circle_best_cos");
    for (int b = 0; b < 10; b++)
        printf(" %.1f:%lld", b / 10.0, (long long)bins[b]);
    printf("\n");
    free(best);
}

static int bc_report(const bc_run *r, const train_state *st, const float *planes)
{
    const sae_params *p = train_params(st);
    const train_metrics *m = train_last_metrics(st);
    int n = r->sc.n_latents, dim = r->sc.dim, nc = r->cp.n_circles, s = r->sc.group_size;
    float *q = malloc((size_t)nc * 2 * dim * sizeof(float)); /* (nc, 2, dim) */
    analysis_recovery rows;
    analysis_subspace sub;
    if (!q)
        return -1;
    analysis_orthonormalize_planes(planes, nc, dim, q);
    if (analysis_recovery_run(p->v.W_dec, n, dim, s, planes, nc, NULL, ANALYSIS_INPLANE_FRAC, 20, &rows) ||
        analysis_subspace_run(p->v.W_dec, n, dim, s, q, nc, 10, &sub)) {
        free(q);
        return -1;
    }
    printf("arch=%s width=%d gs=%d k=%d steps=%d batch=%d fve=%.4f l0=%.2f l0_groups=%.2f dead=%.4f inplane=%.4f "
           "circles_rows=%d one_group=%d one_group_99=%d held=%d held_99=%d sps=%.0f\n",
           sae_arch_name(r->sc.arch), n, s, r->sc.k, r->tc.steps, r->tc.batch_size, m->fve, m->l0, m->l0_groups,
           m->dead_frac, rows.inplane_frac, rows.circles_found, sub.circles_one_group, sub.circles_one_group_99,
           sub.circles_held, sub.circles_held_99, m->samples_per_s);
    bc_print_hist("hist_rows", rows.per_plane_hist, 20);
    bc_print_hist("hist_groups", sub.hist, 10);
    bc_print_hist("hist_groups_99", sub.hist_99, 10);
    bc_print_best_cos(&sub);
    analysis_recovery_free(&rows);
    analysis_subspace_free(&sub);
    free(q);
    return 0;
}

/* Cluster-then-retrain: trains a relu SAE (group size 1) for init_steps, then starts st from its
 * decoder rows. 0, or -1 after printing why. */
static int bc_init_from_relu(bc_run *r, const data_source *src, train_state *st)
{
    sae_config rc;
    train_config rt = r->tc;
    char err[256];
    sae_config_default(&rc);
    rc.dim = r->sc.dim, rc.n_latents = r->init_width > 0 ? r->init_width : r->sc.n_latents, rc.group_size = 1;
    rc.sparsity_coef = r->init_coef;
    rt.steps = r->init_steps, rt.resample_every = 0, rt.dup_cos = 0.0f;
    fprintf(stderr, "relu %d latents, %d steps, sparsity_coef %g, for the initialisation\n", rc.n_latents,
            rt.steps, (double)rc.sparsity_coef);
    train_state *pre = train_create(&rc, &rt, src, err, sizeof err);
    train_hooks h = {.ctx = r, .on_eval = bc_on_eval};
    if (!pre || train_run(pre, &h) != TRAIN_DONE)
        return fprintf(stderr, "bench_circles: the relu SAE: %s\n", pre ? train_error(pre) : err), train_free(pre), -1;
    const sae_params *pp = train_params(pre);
    int used = train_init_from_rows(st, pp->v.W_dec, pp->cfg.n_latents, err, sizeof err);
    train_free(pre);
    if (used < 0)
        return fprintf(stderr, "bench_circles: %s\n", err), -1;
    fprintf(stderr, "%d groups start from planes of the relu SAE's decoder rows\n", used);
    printf("init_groups=%d ", used);
    return 0;
}

int main(int argc, char **argv)
{
    bc_run r;
    char err[256];
    bc_defaults(&r);
    if (bc_parse(argc, argv, &r))
        return 2;
    openblas_set_num_threads(1); /* the trainer's pool runs the products (include/par_gemm.h) */
    circles *circ = circles_create(&r.cp);
    data_source src;
    if (!circ)
        return fprintf(stderr, "cannot make the circles\n"), 1;
    datasrc_from_circles(&src, circ);
    train_state *st = train_create(&r.sc, &r.tc, &src, err, sizeof err);
    if (!st)
        return fprintf(stderr, "bench_circles: %s\n", err), 1;
    train_hooks h = {.ctx = &r, .on_eval = bc_on_eval};
    r.t0 = bc_now();
    if (r.init_steps > 0 && bc_init_from_relu(&r, &src, st) != 0)
        return 1;
    h.should_stop = bc_should_stop;
    r.t0 = bc_now(); /* the budget is the main run's */
    train_result tr = train_run(st, &h);
    if (tr != TRAIN_DONE && tr != TRAIN_CANCELLED)
        return fprintf(stderr, "bench_circles: %s\n", train_error(st)), 1;
    if (tr == TRAIN_CANCELLED)
        printf("stopped_at=%d ", train_step_done(st));
    int rc = bc_report(&r, st, circles_planes(circ));
    train_free(st);
    circles_free(circ);
    return rc ? 1 : 0;
}
