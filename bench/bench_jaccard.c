/* bench_jaccard — the analysis throughput of `make bench`: exact Jaccard
 * co-activation for N latents over R rows (the target: 12800 latents,
 * 1M rows, under 5 s), driven by bench/run.sh.
 *
 *   bench_jaccard [--latents N] [--rows R] [--l0 L] [--reps K] [--group-size S]
 *                 [--neighbors K] [--seed X]
 *
 * It times, through core's public API (include/analysis.h), the Jaccard work an
 * analyze job does (daemon/jobrun_analyze.c, jobrun_analyze_groups.c):
 *   build    analysis_cooc_init, then analysis_cooc_add of every row in batches
 *            of BJ_BATCH rows (the job's AN_ROW_BATCH)
 *   finish   analysis_cooc_finish (the latent -> rows index)
 *   sweep    analysis_jaccard_neighbors over all latents, K neighbours, group
 *            size 1 and no group means (exactly the job's call)
 *   groups   each group's mean pairwise Jaccard by analysis_jaccard_pair over
 *            the N/S groups of S consecutive latents (the job's group table)
 * Encoding the rows (sae_encode, analysis_csr_from_dense) is not timed: that is
 * the SAE's cost, not the analysis's.
 *
 * The firing pattern is synthetic but shaped like an SAE of width 8x trained on
 * the circles dataset: N/8 features, feature f owning latents 8f .. 8f+7 (eight
 * arcs around its circle). A row draws F distinct active features (F is
 * floor(L/3) or that plus one, so the mean is L/3) from a Zipf distribution,
 * P(rank k) ~ 1 / (k+1)^BJ_ZIPF, over a random permutation of the features (so
 * hot features are not all at low ids). Each active feature sits at a random
 * point on its circle: it fires 2, 3 or 4 (uniform, mean 3) cyclically adjacent
 * latents starting at a random arc. So a row fires ~L latents, neighbours
 * co-fire, and the pairs (8f+2m, 8f+2m+1) that --group-size 2 groups together
 * often fire together. Everything comes from core/rng.h seeded by --seed: one
 * stream per row, so a run is reproducible and the pattern is the same in
 * every repetition.
 *
 * The whole measurement (build, finish, sweep, groups) is repeated K times on a
 * fresh analysis_cooc; each phase's median and the median total are reported.
 * check= is an FNV-1a digest of the neighbour lists and group means of the
 * last repetition (equal across runs when the results are).
 *
 * Output: one line of key=value pairs on stdout; progress and errors on
 * stderr. */
#include "bench_util.h"
#include "analysis.h"
#include "rng.h"
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BJ_ARCS 8        /* latents per feature */
#define BJ_MIN_ARC 2     /* latents an active feature fires: BJ_MIN_ARC .. BJ_MIN_ARC + BJ_SPAN_ARC - 1 */
#define BJ_SPAN_ARC 3
#define BJ_MEAN_ARC 3.0  /* their mean */
#define BJ_ZIPF 0.9      /* feature frequency exponent */
#define BJ_BATCH 1024    /* rows per analysis_cooc_add, like the job's AN_ROW_BATCH */
#define BJ_PHASES 4      /* build, finish, sweep, groups */

typedef struct {
    int latents, rows, reps, group_size, neighbors;
    double l0;
    uint64_t seed;
} bj_opts;

/* The firing pattern's generator. */
typedef struct {
    int n_feat;       /* N / 8 features */
    int32_t *perm;    /* (n_feat) feature of each frequency rank */
    double *cdf;      /* (n_feat) cumulative rank probabilities, last = 1 */
    int feat_lo;      /* features per row: feat_lo, or feat_lo + 1 with probability feat_frac */
    double feat_frac;
} bj_gen;

/* One repetition's phase times and results. */
typedef struct {
    double t[BJ_PHASES]; /* (BJ_PHASES) seconds */
    int32_t *nb_idx;     /* (N, K) */
    float *nb_j;         /* (N, K) */
    double *group_j;     /* (N / S) */
} bj_rep;

/* ---- the synthetic firing pattern ---- */

static void bj_gen_free(bj_gen *g)
{
    free(g->perm), free(g->cdf);
    memset(g, 0, sizeof *g);
}

static int bj_gen_init(bj_gen *g, const bj_opts *o)
{
    memset(g, 0, sizeof *g);
    g->n_feat = o->latents / BJ_ARCS;
    g->perm = malloc((size_t)g->n_feat * sizeof *g->perm);
    g->cdf = malloc((size_t)g->n_feat * sizeof *g->cdf);
    if (!g->perm || !g->cdf) {
        bj_gen_free(g);
        return ANALYSIS_ENOMEM;
    }
    rng_t r;
    rng_seed(&r, o->seed, UINT64_MAX); /* a stream no row uses */
    double sum = 0.0;
    for (int k = 0; k < g->n_feat; k++) {
        g->perm[k] = k;
        g->cdf[k] = (sum += pow(k + 1.0, -BJ_ZIPF));
    }
    for (int k = 0; k < g->n_feat; k++)
        g->cdf[k] /= sum;
    g->cdf[g->n_feat - 1] = 1.0;
    for (int k = g->n_feat - 1; k > 0; k--) { /* Fisher-Yates */
        int m = (int)rng_below(&r, (uint64_t)k + 1);
        int32_t t = g->perm[k];
        g->perm[k] = g->perm[m], g->perm[m] = t;
    }
    double f = o->l0 / BJ_MEAN_ARC;
    g->feat_lo = (int)floor(f);
    g->feat_frac = f - g->feat_lo;
    return ANALYSIS_OK;
}

/* A feature drawn by frequency: the first rank whose cdf exceeds u. */
static int32_t bj_draw_feature(const bj_gen *g, rng_t *r)
{
    double u = rng_uniform(r);
    int lo = 0, hi = g->n_feat - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (g->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return g->perm[lo];
}

static void bj_sort_small(int32_t *v, int n)
{
    for (int a = 1; a < n; a++) {
        int32_t x = v[a];
        int b = a;
        for (; b > 0 && v[b - 1] > x; b--)
            v[b] = v[b - 1];
        v[b] = x;
    }
}

/* Row `row`'s firing latents into out (at most bj_row_cap), increasing; returns how many. */
static int bj_row(const bj_gen *g, uint64_t seed, int row, int32_t *feat /* (feat_lo + 1) */, int32_t *out)
{
    rng_t r;
    rng_seed(&r, seed, (uint64_t)row);
    int nf = g->feat_lo + (rng_uniform(&r) < g->feat_frac), m = 0;
    for (int a = 0; a < nf; a++) {
        int dup;
        do { /* distinct features: redraw a repeat */
            feat[a] = bj_draw_feature(g, &r);
            dup = 0;
            for (int b = 0; b < a; b++)
                dup |= feat[b] == feat[a];
        } while (dup);
        int start = (int)rng_below(&r, BJ_ARCS), len = BJ_MIN_ARC + (int)rng_below(&r, BJ_SPAN_ARC);
        for (int t = 0; t < len; t++)
            out[m++] = feat[a] * BJ_ARCS + (start + t) % BJ_ARCS;
    }
    bj_sort_small(out, m);
    return m;
}

static int bj_row_cap(const bj_gen *g)
{
    return (g->feat_lo + 1) * (BJ_MIN_ARC + BJ_SPAN_ARC - 1);
}

/* Appends one row to z, growing its entries; ANALYSIS_OK or ANALYSIS_ENOMEM. */
static int bj_csr_append(analysis_csr *z, const int32_t *lat, int m)
{
    int64_t nnz = z->row_ptr[z->rows];
    if (nnz + m > z->cap_nnz) {
        int64_t cap = z->cap_nnz > 0 ? 2 * z->cap_nnz : 1 << 20;
        int32_t *p = realloc(z->idx, (size_t)cap * sizeof *p);
        if (!p)
            return ANALYSIS_ENOMEM;
        z->idx = p, z->cap_nnz = cap;
    }
    memcpy(z->idx + nnz, lat, (size_t)m * sizeof *lat);
    z->row_ptr[++z->rows] = nnz + m;
    return ANALYSIS_OK;
}

/* All R rows as one CSR (pattern only, val = NULL). */
static int bj_make_rows(const bj_opts *o, analysis_csr *z)
{
    analysis_csr_init(z);
    bj_gen g;
    int rc = bj_gen_init(&g, o);
    if (rc)
        return rc;
    z->n = o->latents;
    z->row_ptr = malloc((size_t)(o->rows + 1) * sizeof *z->row_ptr); /* (R + 1) */
    int32_t *feat = malloc((size_t)(g.feat_lo + 1) * sizeof *feat);  /* (features per row) */
    int32_t *lat = malloc((size_t)bj_row_cap(&g) * sizeof *lat);     /* (latents per row) */
    rc = z->row_ptr && feat && lat ? ANALYSIS_OK : ANALYSIS_ENOMEM;
    if (!rc) {
        z->cap_rows = o->rows;
        z->row_ptr[0] = 0;
    }
    for (int r = 0; !rc && r < o->rows; r++)
        rc = bj_csr_append(z, lat, bj_row(&g, o->seed, r, feat, lat));
    z->nnz = rc ? 0 : z->row_ptr[z->rows];
    free(feat), free(lat);
    bj_gen_free(&g);
    return rc;
}

/* ---- one measurement ---- */

/* Rows r0 .. r0+B-1 of all as a CSR view (its row_ptr offsets are absolute). */
static analysis_csr bj_batch(const analysis_csr *all, int r0, int B)
{
    analysis_csr v = *all;
    v.rows = B;
    v.row_ptr = all->row_ptr + r0;
    return v;
}

static int bj_build(analysis_cooc *c, const analysis_csr *all)
{
    int rc = analysis_cooc_init(c, all->n);
    for (int r0 = 0; !rc && r0 < all->rows; r0 += BJ_BATCH) {
        int B = all->rows - r0 < BJ_BATCH ? all->rows - r0 : BJ_BATCH;
        analysis_csr v = bj_batch(all, r0, B);
        rc = analysis_cooc_add(c, &v);
    }
    return rc;
}

/* Each group's mean pairwise Jaccard, as jobrun_analyze_groups.c computes it. */
static void bj_groups(const analysis_cooc *c, int s, double *group_j /* (n / s) */)
{
    for (int g = 0; g < c->n / s; g++) {
        double sum = 0.0;
        for (int a = 0; a < s; a++)
            for (int b = a + 1; b < s; b++)
                sum += analysis_jaccard_pair(c, g * s + a, g * s + b);
        group_j[g] = s > 1 ? sum / (s * (s - 1) / 2.0) : 0.0;
    }
}

/* Times the four phases into rep->t; fills rep's results. */
static int bj_measure(const bj_opts *o, const analysis_csr *all, bj_rep *rep)
{
    analysis_cooc c;
    double t0 = bench_now();
    int rc = bj_build(&c, all);
    double t1 = bench_now();
    if (!rc)
        rc = analysis_cooc_finish(&c);
    double t2 = bench_now();
    if (!rc)
        rc = analysis_jaccard_neighbors(&c, o->neighbors, 1, rep->nb_idx, rep->nb_j, NULL);
    double t3 = bench_now();
    if (!rc)
        bj_groups(&c, o->group_size, rep->group_j);
    double t4 = bench_now();
    analysis_cooc_free(&c);
    rep->t[0] = t1 - t0, rep->t[1] = t2 - t1, rep->t[2] = t3 - t2, rep->t[3] = t4 - t3;
    return rc;
}

/* ---- the report ---- */

static uint64_t bj_fnv(uint64_t h, const void *p, size_t len)
{
    const unsigned char *b = p;
    for (size_t k = 0; k < len; k++)
        h = (h ^ b[k]) * UINT64_C(0x100000001b3);
    return h;
}

/* Mean J of each latent's best neighbour (over latents that have one) and the mean group Jaccard. */
static void bj_summary(const bj_opts *o, const bj_rep *rep, double *top1, double *gmean)
{
    double s = 0.0;
    int m = 0, G = o->latents / o->group_size;
    for (int i = 0; i < o->latents && o->neighbors > 0; i++)
        if (rep->nb_idx[(size_t)i * o->neighbors] >= 0)
            s += rep->nb_j[(size_t)i * o->neighbors], m++;
    *top1 = m ? s / m : 0.0;
    s = 0.0;
    for (int g = 0; g < G; g++)
        s += rep->group_j[g];
    *gmean = G ? s / G : 0.0;
}

static void bj_report(const bj_opts *o, const analysis_csr *all, double t[BJ_PHASES][64], double *total,
                      const bj_rep *rep)
{
    size_t nK = (size_t)o->latents * o->neighbors;
    uint64_t h = bj_fnv(UINT64_C(0xcbf29ce484222325), rep->nb_idx, nK * sizeof *rep->nb_idx);
    h = bj_fnv(h, rep->nb_j, nK * sizeof *rep->nb_j);
    h = bj_fnv(h, rep->group_j, (size_t)(o->latents / o->group_size) * sizeof *rep->group_j);
    double top1, gmean, med[BJ_PHASES];
    bj_summary(o, rep, &top1, &gmean);
    for (int p = 0; p < BJ_PHASES; p++)
        med[p] = bench_quantile(t[p], o->reps, 0.5);
    double tot = bench_quantile(total, o->reps, 0.5);
    printf("jaccard latents=%d rows=%d l0=%.1f reps=%d neighbors=%d group_size=%d build_s=%.3f finish_s=%.3f "
           "sweep_s=%.3f groups_s=%.3f total_s_median=%.3f rows_per_s=%.0f top1_j_mean=%.4f group_j_mean=%.4f "
           "rss_mb=%.0f check=%016llx\n",
           o->latents, o->rows, (double)all->nnz / o->rows, o->reps, o->neighbors, o->group_size, med[0], med[1],
           med[2], med[3], tot, o->rows / tot, top1, gmean, bench_peak_rss_mb(), (unsigned long long)h);
}

/* ---- command line ---- */

static const char bj_usage[] =
    "usage: bench_jaccard [options]\n"
    "  --latents N      latents, a multiple of 8 (default 12800)\n"
    "  --rows R         rows (default 1000000)\n"
    "  --l0 L           mean latents firing per row (default 10)\n"
    "  --reps K         repetitions of the whole measurement, median reported (default 3, at most 64)\n"
    "  --group-size S   latents per group for the group Jaccard (default 2)\n"
    "  --neighbors K    neighbours per latent, as the analyze job's \"neighbors\" (default 10)\n"
    "  --seed X         seed of the firing pattern (default 1)\n";

static const struct option bj_longopts[] = {
    { "latents", required_argument, 0, 'n' }, { "rows", required_argument, 0, 'r' },
    { "l0", required_argument, 0, 'l' },      { "reps", required_argument, 0, 'k' },
    { "group-size", required_argument, 0, 's' }, { "neighbors", required_argument, 0, 'K' },
    { "seed", required_argument, 0, 'x' },    { 0, 0, 0, 0 },
};

/* Sets the option with getopt code `key` from arg; -1 if it is not a number. */
static int bj_set(bj_opts *o, int key, const char *arg)
{
    char *end;
    double v = strtod(arg, &end);
    if (end == arg || *end || !(fabs(v) < 2e9))
        return -1;
    switch (key) {
    case 'n': o->latents = (int)v; break;
    case 'r': o->rows = (int)v; break;
    case 'l': o->l0 = v; break;
    case 'k': o->reps = (int)v; break;
    case 's': o->group_size = (int)v; break;
    case 'K': o->neighbors = (int)v; break;
    case 'x': o->seed = (uint64_t)v; break;
    default: return -1;
    }
    return 0;
}

/* Parses argv into o; 0, or -1 after printing why. */
static int bj_parse(int argc, char **argv, bj_opts *o)
{
    *o = (bj_opts){ .latents = 12800, .rows = 1000000, .l0 = 10.0, .reps = 3, .group_size = 2, .neighbors = 10,
                    .seed = 1 };
    int key;
    while ((key = getopt_long(argc, argv, "", bj_longopts, NULL)) != -1)
        if (key == '?' || bj_set(o, key, optarg) != 0) {
            fprintf(stderr, "bench_jaccard: bad option or value%s%s\n%s", key == '?' ? "" : ": ",
                    key == '?' ? "" : optarg, bj_usage);
            return -1;
        }
    int n_feat = o->latents / BJ_ARCS;
    int bad = optind < argc || o->latents < BJ_ARCS || o->latents % BJ_ARCS || o->rows < 1 || o->reps < 1 ||
              o->reps > 64 || o->group_size < 1 || o->latents % o->group_size || o->neighbors < 1 ||
              !(o->l0 >= BJ_MIN_ARC) || o->l0 / BJ_MEAN_ARC > n_feat / 2.0;
    if (bad)
        fprintf(stderr, "bench_jaccard: need latents a multiple of 8 and of the group size, rows, reps (<= 64), "
                        "neighbors >= 1, and 2 <= l0 <= 1.5 * latents / 8\n%s", bj_usage);
    return bad ? -1 : 0;
}

/* Runs the K repetitions and prints the line; 0 or 1. */
static int bj_run(const bj_opts *o, const analysis_csr *all)
{
    size_t nK = (size_t)o->latents * o->neighbors;
    bj_rep rep = { .nb_idx = malloc(nK * sizeof *rep.nb_idx), .nb_j = malloc(nK * sizeof *rep.nb_j),
                   .group_j = malloc((size_t)(o->latents / o->group_size) * sizeof *rep.group_j) };
    double t[BJ_PHASES][64], total[64]; /* (phase, rep), (rep) seconds */
    int rc = rep.nb_idx && rep.nb_j && rep.group_j ? ANALYSIS_OK : ANALYSIS_ENOMEM;
    for (int k = 0; !rc && k < o->reps; k++) {
        rc = bj_measure(o, all, &rep);
        total[k] = 0.0;
        for (int p = 0; p < BJ_PHASES; p++)
            total[k] += t[p][k] = rep.t[p];
        fprintf(stderr, "  rep %d/%d: build %.3f s, finish %.3f s, sweep %.3f s, groups %.3f s, total %.3f s\n",
                k + 1, o->reps, rep.t[0], rep.t[1], rep.t[2], rep.t[3], total[k]);
    }
    if (rc)
        fprintf(stderr, "bench_jaccard: %s\n", analysis_strerror(rc));
    else
        bj_report(o, all, t, total, &rep);
    free(rep.nb_idx), free(rep.nb_j), free(rep.group_j);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    bj_opts o;
    if (bj_parse(argc, argv, &o) != 0)
        return 2;
    analysis_csr all;
    double t0 = bench_now();
    int rc = bj_make_rows(&o, &all);
    if (rc) {
        fprintf(stderr, "bench_jaccard: making the rows: %s\n", analysis_strerror(rc));
        analysis_csr_free(&all);
        return 1;
    }
    fprintf(stderr, "bench_jaccard: %d rows, %lld firing entries (l0 %.2f) generated in %.2f s\n", o.rows,
            (long long)all.nnz, (double)all.nnz / o.rows, bench_now() - t0);
    rc = bj_run(&o, &all);
    analysis_csr_free(&all);
    return rc;
}
