/* bench_train — one `make bench` measurement per process (so each peak RSS is
 * its own), driven by bench/run.sh.
 *
 *   bench_train --machine                  OpenBLAS's build config and core name
 *   bench_train --gemm N [--threads T]     the bound: median time of the encoder's
 *       dense product, cblas_sgemm of (batch, dim) x (dim, N), and the samples/s
 *       it implies (batch / time)
 *   bench_train --width N --group-size S [options]   steady-state training
 *
 * Training goes through the public API only (train_create / train_run, rows
 * from the circles generator). Without --pretrain the run is W warm-up steps
 * (short lr and sparsity warm-ups) then M measured steps. With --pretrain P
 * (what bench/run.sh uses: at batch 4096 the SAE takes thousands of steps to
 * become sparse) a first trainer runs P steps of --pretrain-batch rows (lr
 * and sparsity warm-ups of P/10 each), then a second one at the measured
 * batch continues from its state (train_warm_start: parameters, Adam moments,
 * step) at the full sparsity coefficient and a constant lr: W = 20 settling
 * steps, then M measured.
 * Step times come from the hooks: on_progress fires right after each step and
 * on_eval right after each evaluation, so step s took
 * t_progress[s] - (t_eval[s-1] if step s-1 was evaluated, else t_progress[s-1]);
 * evaluations (every W steps and at the end) are never inside a measured
 * interval. Reported: median, p10 and p90 of batch / step time over the M
 * steps, L0 and FVE at step W and at the end, and the process's peak RSS.
 *
 * Output: one line of key=value pairs on stdout (bench/run.sh parses it);
 * progress and errors on stderr. */
#include "bench_util.h"
#include "circles.h"
#include "datasrc.h"
#include "rng.h"
#include "sae.h"
#include "train.h"
#include <cblas.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct {
    int width, group_size, batch, dim, n_circles, threads;
    int warmup, steps, warm_lr, warm_sparsity, gemm_reps;
    int pretrain, pretrain_batch; /* steps and batch of the small-batch trainer; 0 = none */
    double p_active, sparsity_coef, orth_coef, lr;
    uint64_t seed;
    const char *state; /* --state FILE: the warm-started trainer, saved once, restored after */
    int prepare_only;  /* --prepare: make the --state file and exit (so the timed run's peak RSS is its own) */
} bt_opts;

/* What the hooks record. */
typedef struct {
    int total, warmup, verbose; /* the last step; timing starts after step warmup */
    double *t_prog; /* (total + 1) time on_progress saw step s end; 0 = not yet */
    double *t_eval; /* (total + 1) time evaluation after step s ended; 0 = none */
    train_metrics warm, end;
    double t_start;
    const train_state *st;  /* for train_get_timing */
    int restored;           /* the pretrained state came from --state */
    train_timing at_warm;   /* when timing starts */
} bt_run;

/* ---- the bound: one dense encoder product ---- */

static void bt_fill_normal(float *a, size_t n, uint64_t stream)
{
    rng_t r;
    rng_seed(&r, 7, stream);
    for (size_t k = 0; k < n; k++)
        a[k] = rng_normal(&r);
}

static int bt_gemm(const bt_opts *o)
{
    int B = o->batch, dim = o->dim, n = o->width, reps = o->gemm_reps;
    float *x = malloc((size_t)B * dim * sizeof *x);   /* (B, dim) */
    float *w = malloc((size_t)dim * n * sizeof *w);   /* (dim, n) */
    float *pre = malloc((size_t)B * n * sizeof *pre); /* (B, n) */
    double *t = malloc((size_t)reps * sizeof *t);     /* (reps) seconds */
    if (!x || !w || !pre || !t) {
        fprintf(stderr, "bench_train: out of memory for the %d x %d x %d product\n", B, dim, n);
        return 1;
    }
    bt_fill_normal(x, (size_t)B * dim, 1);
    bt_fill_normal(w, (size_t)dim * n, 2);
    for (int r = -2; r < reps; r++) { /* two untimed warm-up products */
        double t0 = bench_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, n, dim, 1.0f, x, dim, w, n, 0.0f, pre, n);
        if (r >= 0)
            t[r] = bench_now() - t0;
    }
    double med = bench_quantile(t, reps, 0.5);
    printf("gemm width=%d batch=%d dim=%d threads=%d reps=%d median_s=%.6f gflops=%.1f sps=%.0f\n", n, B, dim,
           o->threads, reps, med, 2.0 * B * dim * n / med / 1e9, B / med);
    free(x), free(w), free(pre), free(t);
    return 0;
}

/* ---- training ---- */

static void bt_on_progress(void *ctx, int step, int total, double sps)
{
    bt_run *r = ctx;
    (void)sps;
    r->t_prog[step] = bench_now();
    if (step == r->warmup && r->st)
        train_get_timing(r->st, &r->at_warm);
    if (r->verbose && (step % 50 == 0 || step == total))
        fprintf(stderr, "  step %d/%d (%.0f s)\n", step, total, r->t_prog[step] - r->t_start);
}

static int bt_on_eval(void *ctx, const train_metrics *m)
{
    bt_run *r = ctx;
    r->t_eval[m->step] = bench_now();
    if (m->step == r->warmup)
        r->warm = *m;
    r->end = *m;
    fprintf(stderr, "  eval at step %d: l0 %.2f, l0_groups %.2f, fve %.3f, loss %.4f\n", m->step, m->l0,
            m->l0_groups, m->fve, m->loss);
    return 0;
}

static void bt_sae_config(const bt_opts *o, sae_config *c)
{
    memset(c, 0, sizeof *c);
    c->arch = SAE_RELU;
    c->dim = o->dim;
    c->n_latents = o->width;
    c->group_size = o->group_size;
    c->sparsity_coef = (float)o->sparsity_coef;
    c->orth_coef = o->group_size > 1 ? (float)o->orth_coef : 0.0f;
}

static void bt_train_config(const bt_opts *o, train_config *t)
{
    train_config_default(t);
    t->steps = o->pretrain + o->warmup + o->steps;
    t->batch_size = o->batch;
    t->lr = (float)o->lr;
    t->lr_warmup_steps = o->pretrain ? 0 : o->warm_lr < o->warmup ? o->warm_lr : o->warmup;
    t->sparsity_warmup_steps = o->pretrain ? 0 : o->warm_sparsity < o->warmup ? o->warm_sparsity : o->warmup;
    t->decay = LR_DECAY_NONE; /* a steady state: the lr stays put while we measure */
    t->eval_every = o->warmup;
    t->seed = o->seed;
    t->threads = o->threads; /* the trainer's pool, as the daemon sizes it */
}

/* The small-batch trainer's configuration. */
static void bt_pretrain_config(const bt_opts *o, train_config *t)
{
    bt_train_config(o, t);
    t->steps = o->pretrain;
    t->batch_size = o->pretrain_batch;
    t->lr_warmup_steps = o->pretrain / 10;
    t->sparsity_warmup_steps = o->pretrain / 10;
    t->eval_every = o->pretrain;
}

/* Samples/s of each measured step into sps (steps). */
static void bt_step_rates(const bt_run *r, int batch, double *sps)
{
    for (int s = r->warmup + 1; s <= r->total; s++) {
        double start = r->t_eval[s - 1] > 0.0 ? r->t_eval[s - 1] : r->t_prog[s - 1];
        sps[s - r->warmup - 1] = batch / (r->t_prog[s] - start);
    }
}

/* Restores st from o->state if that file holds a checkpoint of this configuration; 0 if it did. */
static int bt_state_load(const bt_opts *o, train_state *st)
{
    FILE *fp = o->state ? fopen(o->state, "rb") : NULL;
    if (!fp)
        return -1;
    size_t n = train_checkpoint_size(st);
    void *buf = malloc(n);
    char err[256] = "";
    int rc = buf && fread(buf, 1, n, fp) == n && train_checkpoint_restore(st, buf, n, err, sizeof err) == 0 ? 0 : -1;
    fclose(fp);
    free(buf);
    fprintf(stderr, rc == 0 ? "  restored the pretrained state from %s\n" : "  %s: not usable (%s), pretraining\n",
            o->state, err);
    return rc;
}

static void bt_state_save(const bt_opts *o, const train_state *st)
{
    size_t n = train_checkpoint_size(st);
    void *buf = malloc(n);
    FILE *fp = buf && o->state ? fopen(o->state, "wb") : NULL;
    if (fp) {
        train_checkpoint_write(st, buf);
        if (fwrite(buf, 1, n, fp) != n)
            fprintf(stderr, "bench_train: cannot write %s\n", o->state);
        fclose(fp);
    }
    free(buf);
}

/* Runs the small-batch trainer on src and warm-starts st from it; 0 or 1. */
static int bt_pretrain(const bt_opts *o, const sae_config *sc, const data_source *src, train_state *st)
{
    train_config tc;
    char err[256] = "";
    bt_pretrain_config(o, &tc);
    train_state *pre = train_create(sc, &tc, src, err, sizeof err);
    bt_run r = { .total = tc.steps, .warmup = -1, .verbose = 1 };
    r.t_prog = calloc((size_t)tc.steps + 1, sizeof *r.t_prog);
    r.t_eval = calloc((size_t)tc.steps + 1, sizeof *r.t_eval);
    int rc = 1;
    if (pre && r.t_prog && r.t_eval) {
        fprintf(stderr, "  pretraining: %d steps of %d rows\n", tc.steps, tc.batch_size);
        train_hooks h = { .ctx = &r, .on_eval = bt_on_eval, .on_progress = bt_on_progress };
        r.t_start = bench_now();
        if (train_run(pre, &h) == TRAIN_DONE && train_warm_start(st, pre, err, sizeof err) == 0)
            rc = 0;
        else
            fprintf(stderr, "bench_train: pretraining failed: %s\n", err[0] ? err : train_error(pre));
    } else {
        fprintf(stderr, "bench_train: cannot start pretraining: %s\n", err[0] ? err : "out of memory");
    }
    train_free(pre);
    free(r.t_prog), free(r.t_eval);
    return rc;
}

/* Milliseconds per timed step in each phase: " ms_read=... ms_loss=... ms_gemm=..." into out. */
static void bt_phases(const bt_run *r, int M, char *out, size_t len)
{
    train_timing now;
    train_get_timing(r->st, &now);
    const train_timing *a = &r->at_warm;
    int k = snprintf(out, len, " ms_read=%.1f ms_loss=%.1f ms_update=%.1f", 1e3 * (now.read - a->read) / M,
                     1e3 * (now.loss_grad - a->loss_grad) / M, 1e3 * (now.update - a->update) / M);
    for (int ph = 0; now.has_fast && ph < SAE_FAST_N_PHASES && k > 0 && (size_t)k < len; ph++)
        k += snprintf(out + k, len - (size_t)k, " ms_%s=%.1f", sae_fast_phase_name((sae_fast_phase)ph),
                      1e3 * (now.fast.seconds[ph] - a->fast.seconds[ph]) / M);
}

static void bt_report(const bt_opts *o, const bt_run *r, double *sps)
{
    int M = o->steps;
    char phases[512];
    bt_phases(r, M, phases, sizeof phases);
    double p10 = bench_quantile(sps, M, 0.1), med = bench_quantile(sps, M, 0.5), p90 = bench_quantile(sps, M, 0.9);
    printf("train width=%d gs=%d batch=%d threads=%d pretrain=%d pretrain_batch=%d warmup=%d steps=%d "
           "sparsity_coef=%g orth_coef=%g lr=%g "
           "l0_warm=%.2f l0_end=%.2f l0g_end=%.2f fve_warm=%.3f fve_end=%.3f dead_end=%.4f "
           "sps_median=%.0f sps_p10=%.0f sps_p90=%.0f rss_mb=%.0f restored=%d%s\n",
           o->width, o->group_size, o->batch, o->threads, o->pretrain, o->pretrain ? o->pretrain_batch : 0,
           o->warmup, M, o->sparsity_coef,
           o->group_size > 1 ? o->orth_coef : 0.0, o->lr, r->warm.l0, r->end.l0, r->end.l0_groups, r->warm.fve,
           r->end.fve, r->end.dead_frac, med, p10, p90, bench_peak_rss_mb(), r->restored, phases);
}

/* Runs the configured training; 0 or 1. */
static int bt_run_train(const bt_opts *o, train_state *st, bt_run *r)
{
    train_hooks h = { .ctx = r, .on_eval = bt_on_eval, .on_progress = bt_on_progress };
    r->t_start = bench_now();
    r->st = st;
    train_result res = train_run(st, &h);
    if (res != TRAIN_DONE) {
        fprintf(stderr, "bench_train: training stopped: %s\n", train_error(st));
        return 1;
    }
    double *sps = malloc((size_t)o->steps * sizeof *sps); /* (steps) */
    if (!sps)
        return 1;
    bt_step_rates(r, o->batch, sps);
    bt_report(o, r, sps);
    free(sps);
    return 0;
}

static int bt_train(const bt_opts *o)
{
    circles_params cp;
    circles_params_default(&cp);
    cp.n_circles = o->n_circles, cp.dim = o->dim, cp.p_active = o->p_active;
    circles *gen = circles_create(&cp);
    data_source src;
    sae_config sc;
    train_config tc;
    char err[256] = "";
    bt_sae_config(o, &sc);
    bt_train_config(o, &tc);
    if (gen)
        datasrc_from_circles(&src, gen);
    train_state *st = gen ? train_create(&sc, &tc, &src, err, sizeof err) : NULL;
    bt_run r = { .total = tc.steps, .warmup = o->pretrain + o->warmup, .verbose = 1 };
    r.t_prog = calloc((size_t)tc.steps + 1, sizeof *r.t_prog);
    r.t_eval = calloc((size_t)tc.steps + 1, sizeof *r.t_eval);
    int rc = 1;
    if (!st || !r.t_prog || !r.t_eval)
        fprintf(stderr, "bench_train: cannot start training: %s\n", gen ? err : "circles_create failed");
    else if (o->pretrain == 0 || (r.restored = bt_state_load(o, st) == 0))
        rc = o->prepare_only ? 0 : bt_run_train(o, st, &r);
    else if (bt_pretrain(o, &sc, &src, st) == 0) {
        bt_state_save(o, st);
        rc = o->prepare_only ? 0 : bt_run_train(o, st, &r);
    }
    train_free(st);
    circles_free(gen);
    free(r.t_prog), free(r.t_eval);
    return rc;
}

/* ---- command line ---- */

static const char bt_usage[] =
    "usage: bench_train --machine | --gemm N | --width N --group-size S [options]\n"
    "  --threads T         threads: BLAS's for --gemm, the trainer's pool otherwise (default: the cores)\n"
    "  --batch B           rows per step (default 4096)\n"
    "  --warmup W          warm-up steps before measuring (default 300)\n"
    "  --steps M           measured steps (default 100)\n"
    "  --sparsity C        sparsity_coef (default 0.2)\n"
    "  --orth C            orth_coef for group_size > 1 (default 0.01)\n"
    "  --lr LR             learning rate (default 0.003)\n"
    "  --warm-lr N         lr warm-up steps (default 20)\n"
    "  --warm-sparsity N   sparsity warm-up steps (default 20)\n"
    "  --reps R            timed products for --gemm (default 10)\n"
    "  --pretrain P        first P steps at --pretrain-batch rows, then warm-start (default 0)\n"
    "  --pretrain-batch N  rows per pretraining step (default 512)\n"
    "  --state FILE        with --pretrain: restore the warm-started state from FILE if it is\n"
    "                      one of this configuration, else pretrain and save it there\n"
    "  --prepare           with --state: only make the state file (if it is not usable), then exit\n";

static void bt_defaults(bt_opts *o)
{
    *o = (bt_opts){ .group_size = 1, .batch = 4096, .dim = 200, .n_circles = 1600, .warmup = 300, .steps = 100,
                    .warm_lr = 20, .warm_sparsity = 20, .gemm_reps = 10, .pretrain_batch = 512,
                    .p_active = 0.002, .sparsity_coef = 0.2, .orth_coef = 0.01, .lr = 3e-3, .seed = 0 };
}

/* Sets the option with getopt code `key` from optarg; -1 if it is not a number. */
static int bt_set(bt_opts *o, int key, const char *arg)
{
    char *end;
    double v = strtod(arg, &end);
    if (end == arg || *end)
        return -1;
    switch (key) {
    case 'g': o->width = (int)v; break;
    case 'w': o->width = (int)v; break;
    case 's': o->group_size = (int)v; break;
    case 't': o->threads = (int)v; break;
    case 'b': o->batch = (int)v; break;
    case 'W': o->warmup = (int)v; break;
    case 'M': o->steps = (int)v; break;
    case 'c': o->sparsity_coef = v; break;
    case 'o': o->orth_coef = v; break;
    case 'l': o->lr = v; break;
    case 'L': o->warm_lr = (int)v; break;
    case 'S': o->warm_sparsity = (int)v; break;
    case 'r': o->gemm_reps = (int)v; break;
    case 'P': o->pretrain = (int)v; break;
    case 'p': o->pretrain_batch = (int)v; break;
    default: return -1;
    }
    return 0;
}

static const struct option bt_longopts[] = {
    { "machine", no_argument, 0, 'm' },      { "gemm", required_argument, 0, 'g' },
    { "width", required_argument, 0, 'w' },  { "group-size", required_argument, 0, 's' },
    { "threads", required_argument, 0, 't' }, { "batch", required_argument, 0, 'b' },
    { "warmup", required_argument, 0, 'W' }, { "steps", required_argument, 0, 'M' },
    { "sparsity", required_argument, 0, 'c' }, { "orth", required_argument, 0, 'o' },
    { "lr", required_argument, 0, 'l' },     { "warm-lr", required_argument, 0, 'L' },
    { "warm-sparsity", required_argument, 0, 'S' }, { "reps", required_argument, 0, 'r' },
    { "pretrain", required_argument, 0, 'P' }, { "pretrain-batch", required_argument, 0, 'p' },
    { "state", required_argument, 0, 'F' }, { "prepare", no_argument, 0, 'X' },
    { 0, 0, 0, 0 },
};

/* Parses argv into o and *mode ('m', 'g' or 'w'); 0, or -1 after printing why. */
static int bt_parse(int argc, char **argv, bt_opts *o, int *mode)
{
    int key;
    *mode = 0;
    while ((key = getopt_long(argc, argv, "", bt_longopts, NULL)) != -1) {
        if (key == 'F' || key == 'X') {
            if (key == 'F')
                o->state = optarg;
            else
                o->prepare_only = 1;
            continue;
        }
        if (key == 'm' || key == 'g' || key == 'w')
            *mode = key;
        if (key != 'm' && (key == '?' || bt_set(o, key, optarg) != 0)) {
            fprintf(stderr, "bench_train: bad option or value%s%s\n%s", key == '?' ? "" : ": ",
                    key == '?' ? "" : optarg, bt_usage);
            return -1;
        }
    }
    int bad = !*mode || (*mode != 'm' && o->width < 1) || o->batch < 1 || o->group_size < 1 || o->warmup < 1 ||
              o->steps < 1 || o->gemm_reps < 1 || o->pretrain < 0 || o->pretrain_batch < 1;
    if (!bad && o->pretrain % o->warmup) /* evaluations (every W steps) must fall where timing starts */
        o->pretrain += o->warmup - o->pretrain % o->warmup;
    if (bad)
        fprintf(stderr, "bench_train: need one mode, a width >= 1, and batch, group size, warmup, steps, reps >= 1\n%s",
                bt_usage);
    return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
    bt_opts o;
    int mode;
    bt_defaults(&o);
    if (bt_parse(argc, argv, &o, &mode) != 0)
        return 2;
    if (o.threads <= 0)
        o.threads = openblas_get_num_procs();
    /* The bound is one product on BLAS's threads; training runs BLAS single-threaded inside the
     * trainer's pool of o.threads, as the daemon does (include/par_gemm.h). */
    openblas_set_num_threads(mode == 'g' || mode == 'm' ? o.threads : 1);
    if (mode == 'm') {
        printf("openblas config=\"%s\" corename=%s threads=%d\n", openblas_get_config(), openblas_get_corename(),
               o.threads);
        return 0;
    }
    return mode == 'g' ? bt_gemm(&o) : bt_train(&o);
}
