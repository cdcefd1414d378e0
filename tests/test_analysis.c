/* test_analysis — the analysis numerics (include/analysis.h).
 *
 * Hand-computed tiny cases first (CSR, top-K order, quantiles, eigen-solver,
 * Jaccard of 3 latents over 4 rows, histogram doubling, a plane, recovery of
 * 4 rows in 2 planes, clustering). Then random data: the inputs and the C
 * results go as .npy files to a mkdtemp directory and
 * `/usr/bin/python3 tests/ref_analysis.py DIR` recomputes every quantity with
 * NumPy, printing one "CHECK name max_diff tol ok|FAIL" line per quantity,
 * each of which becomes a CHECK here. Last, a scaling smoke run (12800
 * latents, 20000 rows, 10 active per row) that only has to finish. */
#include "analysis.h"
#include "check.h"
#include "npy.h"
#include "rng.h"
#include "sae.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- hand cases */

static void test_csr(void)
{
    float z[3 * 4] = {0, 1.5f, 0, 2, -1, 0, NAN, 0, 0.25f, 0.5f, 0.75f, 1};
    analysis_csr c;
    analysis_csr_init(&c);
    CHECK(analysis_csr_from_dense(&c, z, 3, 4) == 0, "csr build");
    CHECK(c.rows == 3 && c.n == 4 && c.nnz == 7, "csr shape rows %d nnz %lld", c.rows, (long long)c.nnz);
    CHECK(c.row_ptr[1] == 2 && c.row_ptr[2] == 3 && c.row_ptr[3] == 7,
          "row_ptr (a negative code fires, a subspace code may be signed; NaN does not)");
    CHECK(c.idx[0] == 1 && c.idx[1] == 3 && c.idx[2] == 0 && c.val[2] == -1.0f && c.idx[6] == 3 &&
          c.val[1] == 2.0f, "idx/val");
    CHECK(analysis_csr_from_dense(&c, z + 8, 1, 4) == 0 && c.rows == 1 && c.nnz == 4, "csr rebuilt in place");
    analysis_csr_free(&c);
    CHECK(analysis_csr_from_dense(&c, z, 0, 4) == 0 && c.rows == 0 && c.row_ptr[0] == 0, "empty batch");
    int32_t top[1];
    CHECK(analysis_top_latents(&c, 0, top, NULL) == 0 && analysis_top_latents(&c, 1, top, NULL) == 0,
          "no latents from no rows");
    analysis_csr_free(&c);
}

static void test_topk_quantile(void)
{
    int32_t idx[3];
    float val[3];
    int len = 0;
    int32_t js[6] = {5, 2, 9, 1, 7, 3};
    float vs[6] = {0.5f, 0.9f, 0.5f, 0.1f, 0.9f, 0.95f};
    for (int k = 0; k < 6; k++)
        analysis_topk_push(idx, val, 3, &len, js[k], vs[k]);
    CHECK(len == 3 && idx[0] == 3 && idx[1] == 2 && idx[2] == 7, "top-3 by value then index: %d %d %d", idx[0], idx[1],
          idx[2]);
    float s[4] = {1, 2, 3, 4};
    CHECK_NEAR(analysis_quantile_sorted(s, 4, 0.5), 2.5, 1e-12, "median of 1..4");
    CHECK_NEAR(analysis_quantile_sorted(s, 4, 0.1), 1.3, 1e-6, "p10 of 1..4");
    float v[3] = {0.2f, -0.7f, 0.7f};
    CHECK(analysis_sign_fix(v, 3) == -1 && v[1] == 0.7f && v[0] == -0.2f, "sign: first largest |x| made positive");
    CHECK(analysis_strerror(ANALYSIS_ENOMEM)[0] != '\0', "error message");
}

static void test_eig(void)
{
    double a[9] = {2, 1, 0, 1, 2, 0, 0, 0, 5}, w[3], v[9];
    analysis_sym_eig(a, 3, w, v);
    CHECK_NEAR(w[0], 5.0, 1e-12, "eig 0");
    CHECK_NEAR(w[1], 3.0, 1e-12, "eig 1");
    CHECK_NEAR(w[2], 1.0, 1e-12, "eig 2");
    CHECK_NEAR(fabs(v[2]), 1.0, 1e-12, "eigenvector of 5 is e2");
    CHECK_NEAR(fabs(v[3] + v[4]) / sqrt(2.0), 1.0, 1e-12, "eigenvector of 3 is (1,1)/sqrt2");
    CHECK_NEAR(v[6] + v[7], 0.0, 1e-12, "eigenvector of 1 is (1,-1)/sqrt2");
}

/* rows: {0,1} {0} {1,2} {0,1,2}: counts 3 3 2; |0&1| = 2, |0&2| = 1, |1&2| = 2. */
static void test_jaccard_hand(void)
{
    float z[4 * 3] = {1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1};
    analysis_csr c;
    analysis_cooc co;
    analysis_csr_init(&c);
    CHECK(analysis_cooc_init(&co, 3) == 0, "cooc init");
    analysis_csr_from_dense(&c, z, 2, 3); /* two batches */
    analysis_cooc_add(&co, &c);
    analysis_csr_from_dense(&c, z + 6, 2, 3);
    analysis_cooc_add(&co, &c);
    CHECK(analysis_cooc_finish(&co) == 0 && co.rows == 4 && co.count[2] == 2, "cooc finish");
    CHECK_NEAR(analysis_jaccard_pair(&co, 0, 1), 0.5, 1e-12, "J(0,1) = 2/4");
    CHECK_NEAR(analysis_jaccard_pair(&co, 0, 2), 0.25, 1e-12, "J(0,2) = 1/4");
    CHECK_NEAR(analysis_jaccard_pair(&co, 2, 1), 2.0 / 3.0, 1e-12, "J(2,1) = 2/3");
    float row[3], m[4], gj[1];
    analysis_jaccard_row(&co, 2, row);
    CHECK(fabsf(row[0] - 0.25f) < 1e-7f && fabsf(row[1] - 2.0f / 3) < 1e-7f && row[2] == 1.0f, "row of latent 2");
    int32_t l2[2] = {1, 2}, nb[6];
    analysis_jaccard_matrix(&co, l2, 2, m);
    CHECK(m[0] == 1.0f && fabsf(m[1] - 2.0f / 3) < 1e-7f && m[1] == m[2], "matrix for latents 1,2");
    float nj[6];
    CHECK(analysis_jaccard_neighbors(&co, 2, 3, nb, nj, gj) == 0, "neighbours");
    CHECK(nb[0] == 1 && nb[1] == 2 && nb[4] == 1 && nb[5] == 0, "top-2 of 0 is 1,2; of 2 is 1,0");
    CHECK_NEAR(gj[0], (0.5 + 0.25 + 2.0 / 3.0) / 3.0, 1e-6, "group of 3: mean pairwise J");
    CHECK(analysis_jaccard_neighbors(&co, 2, 2, nb, nj, gj) == ANALYSIS_EINVAL, "3 latents do not split in pairs");
    int32_t bad[2] = {0, 3};
    CHECK(analysis_jaccard_matrix(&co, bad, 2, m) == ANALYSIS_EINVAL, "latent out of range");
    CHECK(analysis_cooc_add(&co, &c) == ANALYSIS_EINVAL, "no adding after finish");
    analysis_cooc_free(&co);
    analysis_csr_free(&c);
}

static void test_stats_hand(void)
{
    /* latent 0 sees 0.3, then 1.5 (range doubles 0.5 -> 1 -> 2), then 0.7: bins of 1/16 */
    float z[3 * 2] = {0.3f, 0, 1.5f, 1, 0.7f, 0};
    analysis_stats s;
    analysis_csr c;
    analysis_csr_init(&c);
    CHECK(analysis_stats_init(&s, 2, 1, 24) == ANALYSIS_EINVAL, "bins must be a power of two");
    CHECK(analysis_stats_init(&s, 2, 2, 32) == 0, "stats init");
    for (int r = 0; r < 3; r++) {
        analysis_csr_from_dense(&c, z + 2 * r, 1, 2);
        analysis_stats_add(&s, &c);
    }
    analysis_latent_summary ls;
    analysis_stats_latent(&s, 0, &ls);
    CHECK_NEAR(ls.density, 1.0, 0, "density");
    CHECK_NEAR(ls.mean_act, 2.5 / 3, 1e-6, "mean over all rows");
    CHECK(ls.max_act == 1.5f && s.hist_hi[0] == 2.0f, "max 1.5, hi 2");
    CHECK(s.hist[4] == 1 && s.hist[11] == 1 && s.hist[24] == 1, "bins 4, 11, 24");
    analysis_stats_latent(&s, 1, &ls);
    CHECK_NEAR(ls.mean_fired, 1.0, 0, "mean over firing rows");
    CHECK_NEAR(ls.mean_act, 1.0 / 3, 1e-9, "mean over all rows (latent 1)");
    CHECK(s.hist_hi[1] == 2.0f && s.hist[32 + 16] == 1, "1.0 is in [1, 1.0625) of [0, 2)");
    CHECK_NEAR(analysis_stats_group_density(&s, 0), 1.0, 0, "group density");
    float e[33];
    analysis_stats_edges(&s, 0, e);
    CHECK(e[0] == 0.0f && e[1] == 0.0625f && e[32] == 2.0f, "edges");
    analysis_stats_free(&s);
    analysis_csr_free(&c);
}

static void test_plane_hand(void)
{
    float rows[2 * 3] = {1, 0, 0, 0.6f, 0.8f, 0}, sv[2], basis[6], coords[4], cos[4], pr[2];
    CHECK(analysis_group_plane(rows, 2, 3, sv, basis, coords, cos) == 2, "rank 2");
    CHECK_NEAR(sv[0], sqrt(1.6), 1e-6, "sv0");
    CHECK_NEAR(sv[1], sqrt(0.4), 1e-6, "sv1");
    CHECK(fabsf(basis[2]) < 1e-7f && fabsf(basis[5]) < 1e-7f, "basis in the xy plane");
    CHECK_NEAR(hypot(coords[2], coords[3]), 1.0, 1e-6, "member 1 keeps its norm");
    CHECK_NEAR(cos[1], 0.6, 1e-6, "member cosine");
    float x[3] = {1.6f, 0.8f, 5}, b[3] = {1, 0, 0};
    analysis_plane_project(basis, b, x, 1, 3, pr);
    CHECK_NEAR(hypot(pr[0], pr[1]), 1.0, 1e-6, "projection after subtracting b_dec");
    CHECK(analysis_group_plane(rows, 1, 3, sv, basis, coords, cos) == 1 && basis[3] == 0.0f, "one row: rank 1");
}

/* planes: 0 = (e0, e1), 1 = (e2, (e2+e3)/sqrt2). rows: e0; (e0 + 0.05 e2) (0.99875 in 0);
 * (e2+e3)/sqrt2; (e1 + 0.2 e3) (0.9806 in 0, 0.196 in 1). */
static void test_recovery_hand(void)
{
    float pl[2 * 2 * 4] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, (float)M_SQRT1_2, (float)M_SQRT1_2};
    float a = 1.0f / sqrtf(1.0025f), b2 = 1.0f / sqrtf(1.04f);
    float w[4 * 4] = {1, 0, 0, 0, a, 0, 0.05f * a, 0, 0, 0, (float)M_SQRT1_2, (float)M_SQRT1_2, 0, b2, 0, 0.2f * b2};
    analysis_recovery r;
    CHECK(analysis_recovery_run(w, 4, 4, 2, pl, 2, NULL, ANALYSIS_INPLANE_FRAC, 3, &r) == 0, "recovery");
    CHECK(r.row_circle[1] == 0 && r.row_circle[2] == 1 && r.row_circle[3] == 0, "best circles");
    CHECK_NEAR(r.row_frac[1], a, 1e-6, "kept fraction is a norm ratio");
    CHECK(r.circle_rows[0] == 2 && r.circle_rows[1] == 1 && r.rows_inplane == 3, "rows per plane");
    CHECK(r.per_plane_hist[0] == 0 && r.per_plane_hist[1] == 1 && r.per_plane_hist[2] == 1, "per-plane histogram");
    CHECK(r.circles_found == 2 && r.circles_found_groups == 1, "found %d, by groups %d", r.circles_found,
          r.circles_found_groups);
    CHECK_NEAR(r.inplane_frac, 0.75, 1e-12, "inplane_frac");
    CHECK(r.group_circle[1] == 1, "group 1 fits circle 1");
    CHECK_NEAR(r.group_fit[1], (1.0 + 0.2 * b2) / 2, 1e-6, "group 1 fit");
    analysis_recovery_free(&r);
    unsigned char alive[4] = {1, 0, 1, 1};
    analysis_recovery_run(w, 4, 4, 2, pl, 2, alive, ANALYSIS_INPLANE_FRAC, 1, &r);
    CHECK(r.rows_counted == 3 && r.circle_rows[0] == 1 && r.circles_found_groups == 0, "dead rows left out");
    CHECK(r.per_plane_hist[0] == 0 && r.per_plane_hist[1] == 2, "last bin is k or more");
    analysis_recovery_free(&r);
}

static void test_cluster_hand(void)
{
    int32_t nb[4 * 2] = {1, 2, 0, 3, 3, 0, 2, 1}, order[6];
    float sim[4 * 2] = {0.9f, 0.5f, 0.9f, 0.2f, 0.8f, 0.5f, 0.8f, 0.2f};
    CHECK(analysis_cluster_greedy(4, 2, 2, nb, sim, 0.0f, order) == 0, "cluster");
    CHECK(order[0] == 0 && order[1] == 1 && order[2] == 2 && order[3] == 3, "pairs {0,1} {2,3}");
    int32_t nb2[4] = {1, 2, 1, -1};
    float sim2[4] = {0.9f, 0.95f, 0.1f, 0};
    CHECK(analysis_cluster_greedy(4, 2, 1, nb2, sim2, 0.0f, order) == 0, "cluster greedy conflict");
    CHECK(order[0] == 1 && order[1] == 2 && order[2] == 0 && order[3] == 3, "1-2 first, then leftovers: %d %d %d %d",
          order[0], order[1], order[2], order[3]);
    /* s = 3 over a chain 0-1 (0.9), 1-2 (0.8), 3-4 (0.7), 2-3 (0.6), 4-5 (0.1) */
    int32_t nb3[6] = {1, 2, 1, 4, 5, 4};
    float sim3[6] = {0.9f, 0.8f, 0.6f, 0.7f, 0.1f, 0.1f};
    analysis_cluster_greedy(6, 3, 1, nb3, sim3, 0.0f, order);
    CHECK(order[0] == 0 && order[1] == 1 && order[2] == 2 && order[3] == 3 && order[4] == 4 && order[5] == 5,
          "s=3 chain");
}

/* 20 planted pairs of near-parallel decoder rows at random positions: cosine
 * neighbours, then greedy pairing, must put each pair in one group. */
static void test_cluster_planted(void)
{
    enum { P = 20, N = 2 * P, DIM = 24, K = 3 };
    float W[N * DIM], base[P * DIM], nc[N * K];
    int32_t perm[N], nb[N * K], order[N];
    rng_t g;
    rng_seed(&g, 11, 0);
    for (int k = 0; k < P * DIM; k++)
        base[k] = rng_normal(&g);
    for (int i = 0; i < N; i++)
        perm[i] = i;
    for (int i = N - 1; i > 0; i--) { /* shuffle: row perm[i] is a copy of base i / 2 */
        int j = (int)rng_below(&g, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < N; i++)
        for (int d = 0; d < DIM; d++)
            W[perm[i] * DIM + d] = base[(i / 2) * DIM + d] + 0.05f * rng_normal(&g);
    CHECK(analysis_decoder_neighbors(W, N, DIM, K, 0.99f, nb, nc, NULL, 0, NULL) == 0, "neighbours");
    CHECK(analysis_cluster_greedy(N, 2, K, nb, nc, 0.0f, order) == 0, "cluster");
    int ok = 1;
    int32_t pair_of[N];
    for (int i = 0; i < N; i++)
        pair_of[perm[i]] = i / 2;
    for (int gi = 0; gi < P; gi++)
        ok &= pair_of[order[2 * gi]] == pair_of[order[2 * gi + 1]];
    CHECK(ok, "every planted pair recovered as a group");
}

/* ---------------------------------------------------------------- .npy output */

typedef struct {
    char path[64];      /* mkdtemp directory */
    char names[128][32]; /* files written, removed at the end */
    int n;
} npy_dir;

static void save(npy_dir *d, const char *name, const char *descr, size_t elem, const void *data,
                 const int64_t *shape, int ndim)
{
    char hdr[NPY_HEADER_MAX], path[128];
    size_t hl = npy_header(hdr, sizeof hdr, descr, shape, ndim), count = 1;
    for (int k = 0; k < ndim; k++)
        count *= (size_t)shape[k];
    snprintf(path, sizeof path, "%s/%s.npy", d->path, name);
    FILE *f = fopen(path, "wb");
    int ok = f && hl && fwrite(hdr, 1, hl, f) == hl && fwrite(data, elem, count, f) == count;
    if (f)
        ok &= fclose(f) == 0;
    CHECK(ok, "writing %s", path);
    if (d->n < 128)
        snprintf(d->names[d->n++], sizeof d->names[0], "%s.npy", name);
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__}), (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t))
#define SAVE_F4(d, name, data, ...) save(d, name, "<f4", 4, data, SHAPE(__VA_ARGS__))
#define SAVE_F8(d, name, data, ...) save(d, name, "<f8", 8, data, SHAPE(__VA_ARGS__))
#define SAVE_I4(d, name, data, ...) save(d, name, "<i4", 4, data, SHAPE(__VA_ARGS__))
#define SAVE_I8(d, name, data, ...) save(d, name, "<i8", 8, data, SHAPE(__VA_ARGS__))

/* tests/ref_analysis.py from the working directory (the repo root under
 * `make test`), else beside this binary's build/tests/. */
static void reference_script(char *out, size_t cap)
{
    char exe[512];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    snprintf(out, cap, "tests/ref_analysis.py");
    if (access(out, R_OK) == 0 || n <= 0)
        return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, cap, "%s/../../tests/ref_analysis.py", exe);
}

/* Runs the NumPy reference; each "CHECK name diff tol ok" line is a CHECK. */
static void run_reference(npy_dir *d)
{
    char cmd[1024], line[512], script[600];
    reference_script(script, sizeof script);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s 2>&1", script, d->path);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL, "popen %s", cmd);
    if (!p)
        return;
    int lines = 0;
    while (fgets(line, sizeof line, p)) {
        char name[64], status[16];
        double diff, tol;
        fputs(line, stdout); /* the max diff of every quantity goes to the log */
        if (sscanf(line, "CHECK %63s %lf %lf %15s", name, &diff, &tol, status) == 4) {
            lines++;
            CHECK(strcmp(status, "ok") == 0, "NumPy reference: %s max diff %g > tol %g", name, diff, tol);
        }
    }
    int st = pclose(p);
    CHECK(st == 0, "ref_analysis.py exit status %d", st);
    CHECK(lines >= 40, "the reference checked %d quantities", lines);
    printf("NumPy reference: %d quantities compared\n", lines);
}

static void npy_dir_remove(npy_dir *d)
{
    char path[128];
    for (int k = 0; k < d->n; k++) {
        snprintf(path, sizeof path, "%s/%s", d->path, d->names[k]);
        unlink(path);
    }
    CHECK(rmdir(d->path) == 0, "removing %s", d->path);
}

/* ---------------------------------------------------------------- random data vs NumPy */

#define RN 40   /* latents */
#define RB 600  /* rows */
#define RS 4    /* group size */
#define RK 6    /* neighbours */
#define RDIM 12 /* decoder width */

/* z (RB, RN): latent i fires with its own rate (latent 7 never), odd latents
 * follow their even partner half the time; a few negative and NaN entries. */
static void make_activations(rng_t *g, float *z)
{
    for (int r = 0; r < RB; r++)
        for (int i = 0; i < RN; i++) {
            double p = i == 7 ? 0.0 : 0.02 + 0.25 * ((i * 7) % RN) / RN;
            int on = rng_uniform(g) < p || (i % 2 && z[(size_t)r * RN + i - 1] > 0 && rng_uniform(g) < 0.5);
            double u = rng_uniform(g);
            z[(size_t)r * RN + i] = on ? (float)((0.05 + 3 * u * u) * (1 + i % 3)) : (u < 0.02 ? -0.5f : 0.0f);
        }
    z[3 * RN + 5] = NAN;
}

static void check_stats_jaccard(npy_dir *d, const float *z)
{
    analysis_stats st;
    analysis_cooc co;
    analysis_csr c;
    analysis_csr_init(&c);
    CHECK(analysis_stats_init(&st, RN, RS, 16) == 0 && analysis_cooc_init(&co, RN) == 0, "init");
    for (int r0 = 0; r0 < RB; r0 += 200) { /* three batches */
        analysis_csr_from_dense(&c, z + (size_t)r0 * RN, 200, RN);
        CHECK(analysis_stats_add(&st, &c) == 0 && analysis_cooc_add(&co, &c) == 0, "add batch");
    }
    CHECK(analysis_cooc_finish(&co) == 0, "finish");
    static int32_t nb[RN * RK];
    static float nj[RN * RK], jrows[RN * RN], gj[RN / RS], jm[9];
    CHECK(analysis_jaccard_neighbors(&co, RK, RS, nb, nj, gj) == 0, "neighbours");
    for (int i = 0; i < RN; i++)
        analysis_jaccard_row(&co, i, jrows + (size_t)i * RN);
    int32_t req[3] = {3, 0, 7};
    analysis_jaccard_matrix(&co, req, 3, jm);
    double gd[RN / RS];
    for (int g = 0; g < RN / RS; g++)
        gd[g] = analysis_stats_group_density(&st, g);
    SAVE_F4(d, "z", z, RB, RN);
    SAVE_I8(d, "st_count", st.count, RN);
    SAVE_F8(d, "st_sum", st.sum, RN);
    SAVE_F4(d, "st_max", st.max, RN);
    SAVE_F4(d, "st_hi", st.hist_hi, RN);
    SAVE_I8(d, "st_hist", st.hist, RN, 16);
    SAVE_F8(d, "st_group_density", gd, RN / RS);
    SAVE_I4(d, "jac_nb_idx", nb, RN, RK);
    SAVE_F4(d, "jac_nb_j", nj, RN, RK);
    SAVE_F4(d, "jac_group", gj, RN / RS);
    SAVE_F4(d, "jac_rows", jrows, RN, RN);
    SAVE_I4(d, "jac_req", req, 3);
    SAVE_F4(d, "jac_matrix", jm, 3, 3);
    analysis_stats_free(&st);
    analysis_cooc_free(&co);
    analysis_csr_free(&c);
}

/* W (RN, RDIM): random rows, row 9 a near copy of row 5, row 13 zero. */
static void make_decoder(rng_t *g, float *W)
{
    for (int k = 0; k < RN * RDIM; k++)
        W[k] = rng_normal(g);
    for (int k = 0; k < RDIM; k++) {
        W[9 * RDIM + k] = 2.0f * W[5 * RDIM + k] + 0.01f * rng_normal(g);
        W[13 * RDIM + k] = 0.0f;
    }
}

static void check_cosine_planes(npy_dir *d, rng_t *g, const float *W)
{
    static int32_t nb[RN * RK], dups[8 * 2];
    static float nc[RN * RK], gmax[RN / RS];
    int64_t ndup = 0;
    CHECK(analysis_decoder_neighbors(W, RN, RDIM, RK, ANALYSIS_DUP_COS, nb, nc, dups, 8, &ndup) == 0, "cos nb");
    CHECK(ndup >= 1 && ndup <= 8, "near-duplicates found: %lld", (long long)ndup);
    CHECK(analysis_group_max_cos(W, RN, RDIM, RS, gmax) == 0, "group max cos");
    float sv[RS], basis[2 * RDIM], coords[RS * 2], cm[RS * RS], x[30 * RDIM], b[RDIM], proj[30 * 2];
    const float *grp = W + 2 * RS * RDIM; /* group 2 */
    CHECK(analysis_group_plane(grp, RS, RDIM, sv, basis, coords, cm) == 2, "group plane");
    for (int k = 0; k < 30 * RDIM; k++)
        x[k] = rng_normal(g);
    for (int k = 0; k < RDIM; k++)
        b[k] = 0.3f * rng_normal(g);
    analysis_plane_project(basis, b, x, 30, RDIM, proj);
    SAVE_F4(d, "W", W, RN, RDIM);
    SAVE_I4(d, "cos_nb_idx", nb, RN, RK);
    SAVE_F4(d, "cos_nb_cos", nc, RN, RK);
    SAVE_I4(d, "cos_dups", dups, ndup, 2);
    SAVE_F4(d, "cos_group_max", gmax, RN / RS);
    SAVE_F4(d, "pl_sv", sv, RS);
    SAVE_F4(d, "pl_basis", basis, 2, RDIM);
    SAVE_F4(d, "pl_coords", coords, RS, 2);
    SAVE_F4(d, "pl_cos", cm, RS, RS);
    SAVE_F4(d, "pl_x", x, 30, RDIM);
    SAVE_F4(d, "pl_b", b, RDIM);
    SAVE_F4(d, "pl_proj", proj, 30, 2);
}

#define NC 10   /* circles */
#define CDIM 16 /* their width */
#define CN 48   /* decoder rows */
#define CH 24   /* latents of the FVE test's SAE */

/* v (CDIM) = cos(phi) (cos t q0 + sin t q1) + sin(phi) e, e a random unit vector orthogonal to plane q. */
static void near_plane(rng_t *g, const float *q, double phi, float *v)
{
    double e[CDIM], t = 2 * M_PI * rng_uniform(g), a = 0, b = 0, n = 0;
    for (int k = 0; k < CDIM; k++) {
        e[k] = rng_normal(g);
        a += e[k] * q[k];
        b += e[k] * q[CDIM + k];
    }
    for (int k = 0; k < CDIM; k++) {
        e[k] -= a * q[k] + b * q[CDIM + k];
        n += e[k] * e[k];
    }
    for (int k = 0; k < CDIM; k++)
        v[k] = (float)(cos(phi) * (cos(t) * q[k] + sin(t) * q[CDIM + k]) + sin(phi) * e[k] / sqrt(n));
}

/* Rows in planes 0 (x2), 1, 2 (x4), 3 (x5), near plane 4 (0.995 and 0.985 kept), 5 (dead); the rest random. */
static void make_recovery_rows(rng_t *g, const float *q, float *W, unsigned char *alive)
{
    static const int plane_of[16] = {0, 0, 1, -1, 2, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 5};
    for (int i = 0; i < CN; i++) {
        alive[i] = i != 15;
        int p = i < 16 ? plane_of[i] : -1;
        double phi = i == 13 ? acos(0.995) : i == 14 ? acos(0.985) : 0.0;
        if (p >= 0)
            near_plane(g, q + (size_t)p * 2 * CDIM, phi, W + (size_t)i * CDIM);
        else
            for (int k = 0; k < CDIM; k++)
                W[(size_t)i * CDIM + k] = rng_normal(g);
    }
    for (int k = 0; k < CDIM; k++)
        W[2 * CDIM + k] *= 3.0f; /* fractions do not depend on the norm */
}

typedef struct {
    const float *W_enc; /* (CDIM, CH) */
    const float *b_enc; /* (CH) */
    const float *W_dec; /* (CH, CDIM) */
    const float *b_dec; /* (CDIM) */
} relu_sae;

/* A plain ReLU SAE, the FVE callback NumPy can recompute. */
static int relu_sae_encode(void *ctx, const float *x, int rows, float *x_hat)
{
    const relu_sae *s = ctx;
    for (int r = 0; r < rows; r++) {
        double out[CDIM];
        for (int d = 0; d < CDIM; d++)
            out[d] = s->b_dec[d];
        for (int h = 0; h < CH; h++) {
            double pre = s->b_enc[h];
            for (int d = 0; d < CDIM; d++)
                pre += ((double)x[(size_t)r * CDIM + d] - s->b_dec[d]) * s->W_enc[(size_t)d * CH + h];
            for (int d = 0; d < CDIM && pre > 0; d++)
                out[d] += pre * s->W_dec[(size_t)h * CDIM + d];
        }
        for (int d = 0; d < CDIM; d++)
            x_hat[(size_t)r * CDIM + d] = (float)out[d];
    }
    return 0;
}

static void check_fve(npy_dir *d, rng_t *g, const float *planes, const float *q)
{
    static float we[CDIM * CH], be[CH], wd[CH * CDIM], bd[CDIM], fve[NC];
    for (int h = 0; h < CH; h++) { /* 4 directions in each of circles 0..5 */
        const float *qc = q + (size_t)(h / 4) * 2 * CDIM;
        double t = M_PI / 2 * (h % 4);
        for (int k = 0; k < CDIM; k++) {
            wd[(size_t)h * CDIM + k] = (float)(cos(t) * qc[k] + sin(t) * qc[CDIM + k]);
            we[(size_t)k * CH + h] = wd[(size_t)h * CDIM + k];
        }
        be[h] = -0.1f;
    }
    for (int k = 0; k < CDIM; k++)
        bd[k] = 0.05f * rng_normal(g);
    relu_sae s = {we, be, wd, bd};
    CHECK(analysis_circle_fve(planes, NC, CDIM, 64, relu_sae_encode, &s, fve) == 0, "circle fve");
    double med, p10, summ[2];
    int64_t hist[10];
    CHECK(analysis_fve_summary(fve, NC, 10, &med, &p10, hist) == 0, "fve summary");
    summ[0] = med;
    summ[1] = p10;
    SAVE_F4(d, "fve_W_enc", we, CDIM, CH);
    SAVE_F4(d, "fve_b_enc", be, CH);
    SAVE_F4(d, "fve_W_dec", wd, CH, CDIM);
    SAVE_F4(d, "fve_b_dec", bd, CDIM);
    SAVE_F4(d, "fve", fve, NC);
    SAVE_F8(d, "fve_summary", summ, 2);
    SAVE_I8(d, "fve_hist", hist, 10);
}

static void check_recovery(npy_dir *d, rng_t *g)
{
    static float planes[NC * 2 * CDIM], q[NC * 2 * CDIM], W[CN * CDIM];
    static unsigned char alive[CN];
    for (int k = 0; k < NC * 2 * CDIM; k++)
        planes[k] = rng_normal(g) / sqrtf(CDIM);
    analysis_orthonormalize_planes(planes, NC, CDIM, q);
    make_recovery_rows(g, q, W, alive);
    analysis_recovery r;
    CHECK(analysis_recovery_run(W, CN, CDIM, 2, planes, NC, alive, ANALYSIS_INPLANE_FRAC, 4, &r) == 0, "recovery");
    CHECK(r.circles_found == 5 && r.per_plane_hist[4] == 2, "found %d circles", r.circles_found);
    int32_t alive_i[CN];
    for (int i = 0; i < CN; i++)
        alive_i[i] = alive[i];
    double sc[4] = {r.circles_found, r.circles_found_groups, r.inplane_frac, r.rows_counted};
    SAVE_F4(d, "rec_planes", planes, NC, 2, CDIM);
    SAVE_F4(d, "rec_W", W, CN, CDIM);
    SAVE_I4(d, "rec_alive", alive_i, CN);
    SAVE_I4(d, "rec_row_circle", r.row_circle, CN);
    SAVE_F4(d, "rec_row_frac", r.row_frac, CN);
    SAVE_I4(d, "rec_circle_rows", r.circle_rows, NC);
    SAVE_I8(d, "rec_hist", r.per_plane_hist, 5);
    SAVE_F8(d, "rec_scalars", sc, 4);
    SAVE_I4(d, "rec_group_circle", r.group_circle, CN / 2);
    SAVE_F4(d, "rec_group_fit", r.group_fit, CN / 2);
    analysis_recovery_free(&r);
    check_fve(d, g, planes, q);
}

static void save_pca(npy_dir *d, const char *tag, const analysis_pca_result *p)
{
    char name[32];
    double tot = p->total_variance;
    snprintf(name, sizeof name, "%s_mean", tag);
    SAVE_F4(d, name, p->mean, p->dim);
    snprintf(name, sizeof name, "%s_comp", tag);
    SAVE_F4(d, name, p->components, p->c, p->dim);
    snprintf(name, sizeof name, "%s_var", tag);
    SAVE_F8(d, name, p->variance, p->c);
    snprintf(name, sizeof name, "%s_ratio", tag);
    SAVE_F8(d, name, p->ratio, p->c);
    snprintf(name, sizeof name, "%s_total", tag);
    SAVE_F8(d, name, &tot, 1);
    snprintf(name, sizeof name, "%s_coords", tag);
    SAVE_F4(d, name, p->coords, p->m, p->c);
}

/* X (m, dim) = G diag(scale) M + 3, M a random orthogonal matrix (Gram-Schmidt), scale_k = 6 / (1 + k). */
static void make_pca_rows(rng_t *g, int m, int dim, float *X)
{
    double *M = malloc((size_t)dim * dim * sizeof *M);
    for (int a = 0; a < dim; a++) {
        double *v = M + (size_t)a * dim, n = 0;
        for (int k = 0; k < dim; k++)
            v[k] = rng_normal(g);
        for (int b = 0; b < a; b++) {
            double dot = 0;
            for (int k = 0; k < dim; k++)
                dot += v[k] * M[(size_t)b * dim + k];
            for (int k = 0; k < dim; k++)
                v[k] -= dot * M[(size_t)b * dim + k];
        }
        for (int k = 0; k < dim; k++)
            n += v[k] * v[k];
        for (int k = 0; k < dim; k++)
            v[k] /= sqrt(n);
    }
    for (int i = 0; i < m; i++) {
        double gi[64]; /* dim <= 64 */
        for (int a = 0; a < dim; a++)
            gi[a] = rng_normal(g) * 6.0 / (1 + a);
        for (int k = 0; k < dim; k++) {
            double s = 3.0;
            for (int a = 0; a < dim; a++)
                s += gi[a] * M[(size_t)a * dim + k];
            X[(size_t)i * dim + k] = (float)s;
        }
    }
    free(M);
}

static void check_pca(npy_dir *d, rng_t *g)
{
    static float X1[80 * RDIM], X2[10 * 30];
    analysis_pca_result p;
    make_pca_rows(g, 80, RDIM, X1); /* covariance route */
    CHECK(analysis_pca(X1, 80, RDIM, 4, &p) == 0, "pca (covariance)");
    SAVE_F4(d, "pca1_X", X1, 80, RDIM);
    save_pca(d, "pca1", &p);
    analysis_pca_free(&p);
    make_pca_rows(g, 10, 30, X2); /* Gram route */
    CHECK(analysis_pca(X2, 10, 30, 3, &p) == 0, "pca (Gram)");
    SAVE_F4(d, "pca2_X", X2, 10, 30);
    save_pca(d, "pca2", &p);
    analysis_pca_free(&p);
    CHECK(analysis_pca(X2, 10, 30, 11, &p) == ANALYSIS_EINVAL, "more components than rows");
}

#define PL 6 /* top latents */
#define PM 50 /* rows */

static void check_pca_latents(npy_dir *d, const float *z, const float *W, const float *b)
{
    analysis_csr c;
    analysis_csr_init(&c);
    analysis_csr_from_dense(&c, z, PM, RN);
    int32_t top[PL];
    double score[PL];
    static float X[PM * RDIM];
    CHECK(analysis_top_latents(&c, PL, top, score) == PL, "top latents");
    CHECK(analysis_reconstruct_latents(&c, top, PL, W, b, RDIM, X) == 0, "reconstruct");
    analysis_pca_result p, q;
    CHECK(analysis_pca_latents(&c, top, PL, W, b, RDIM, 3, &p) == 0, "pca over latents");
    CHECK(analysis_pca(X, PM, RDIM, 3, &q) == 0, "pca of the reconstructions");
    double dc = 0, dv = 0;
    for (int k = 0; k < 3 * RDIM; k++)
        dc = fmax(dc, fabs(p.components[k] - q.components[k]));
    for (int k = 0; k < 3; k++)
        dv = fmax(dv, fabs(p.variance[k] - q.variance[k]) / q.variance[0]);
    CHECK(dc < 1e-4 && dv < 1e-5, "latent route = direct route: components %g, variance %g", dc, dv);
    SAVE_I4(d, "pl_top", top, PL);
    SAVE_F8(d, "pl_score", score, PL);
    SAVE_F4(d, "pl_recon", X, PM, RDIM);
    save_pca(d, "pcal", &p);
    analysis_pca_free(&p);
    analysis_pca_free(&q);
    int32_t dupl[2] = {top[0], top[0]};
    CHECK(analysis_pca_latents(&c, dupl, 2, W, b, RDIM, 1, &q) == ANALYSIS_EINVAL, "repeated latent refused");
    analysis_csr_free(&c);
}

/* A random symmetric (indefinite) matrix and one with a repeated eigenvalue. */
static void check_eig(npy_dir *d, rng_t *g)
{
    enum { P = 40 };
    static double a[2][P * P], w[2][P], v[2][P * P];
    for (int i = 0; i < P; i++)
        for (int j = 0; j <= i; j++)
            a[0][i * P + j] = a[0][j * P + i] = rng_normal(g);
    for (int i = 0; i < P; i++) /* H diag(1, 1, 1, 2, 3, ...) H, H = I - 2 u u^T with u = (1, ..., 1) / sqrt(P) */
        for (int j = 0; j < P; j++) {
            double s = 0.0;
            for (int k = 0; k < P; k++)
                s += ((i == k) - 2.0 / P) * (k < 3 ? 1.0 : k - 1.0) * ((k == j) - 2.0 / P);
            a[1][i * P + j] = s;
        }
    for (int k = 0; k < 2; k++)
        CHECK(analysis_sym_eig(a[k], P, w[k], v[k]) == 0, "eig %d", k);
    SAVE_F8(d, "eig_a", a, 2, P, P);
    SAVE_F8(d, "eig_w", w, 2, P);
    SAVE_F8(d, "eig_v", v, 2, P, P);
}

static void test_against_numpy(void)
{
    npy_dir d = {.path = "/tmp/test_analysis.XXXXXX"};
    if (!mkdtemp(d.path)) {
        CHECK(0, "mkdtemp %s", d.path);
        return;
    }
    rng_t g;
    rng_seed(&g, 2024, 1);
    static float z[RB * RN], W[RN * RDIM];
    make_activations(&g, z);
    make_decoder(&g, W);
    check_eig(&d, &g);
    check_stats_jaccard(&d, z);
    check_cosine_planes(&d, &g, W);
    check_recovery(&d, &g);
    check_pca(&d, &g);
    float b[RDIM];
    for (int k = 0; k < RDIM; k++)
        b[k] = 0.1f * rng_normal(&g);
    SAVE_F4(&d, "pl_bdec", b, RDIM);
    check_pca_latents(&d, z, W, b);
    run_reference(&d);
    npy_dir_remove(&d);
}

/* ---------------------------------------------------------------- SAE callback */

static void test_sae_callback(void)
{
    sae_config cfg = {.arch = SAE_RELU, .dim = 8, .n_latents = 16, .group_size = 2};
    sae_params p;
    if (sae_params_alloc(&p, &cfg) != 0) {
        CHECK(0, "sae_params_alloc");
        return;
    }
    sae_params_init(&p, 5);
    float x[3 * 8], a[3 * 8], b[3 * 8], z[3 * 16];
    rng_t g;
    rng_seed(&g, 9, 0);
    for (int k = 0; k < 24; k++)
        x[k] = rng_normal(&g);
    CHECK(analysis_sae_encode(&p, x, 3, a) == 0 && sae_encode(&p, NULL, x, 3, z, b) == 0, "encode");
    CHECK(memcmp(a, b, sizeof a) == 0, "the callback reconstructs as sae_encode does");
    float planes[2 * 2 * 8] = {0}, fve[2];
    for (int k = 0; k < 32; k++)
        planes[k] = rng_normal(&g) / sqrtf(8);
    CHECK(analysis_circle_fve(planes, 2, 8, 16, analysis_sae_encode, &p, fve) == 0 && isfinite(fve[0]),
          "circle FVE through an SAE");
    sae_params_free(&p);
}

/* ---------------------------------------------------------------- scaling smoke run */

/* 12800 latents, 20000 rows, 10 distinct active latents per row. */
static void test_scaling(void)
{
    enum { N = 12800, R = 20000, A = 10, K = 16 };
    analysis_csr c;
    analysis_csr_init(&c);
    c.row_ptr = malloc((R + 1) * sizeof *c.row_ptr);
    c.idx = malloc((size_t)R * A * sizeof *c.idx);
    c.val = malloc((size_t)R * A * sizeof *c.val);
    rng_t g;
    rng_seed(&g, 77, 0);
    c.n = N;
    c.rows = R;
    c.row_ptr[0] = 0;
    for (int r = 0; r < R; r++) {
        int32_t *ix = c.idx + (size_t)r * A;
        for (int k = 0; k < A; k++) { /* distinct, sorted by insertion */
            int32_t j;
            int dup;
            do {
                j = (int32_t)rng_below(&g, N);
                dup = 0;
                for (int t = 0; t < k; t++)
                    dup |= ix[t] == j;
            } while (dup);
            int t = k;
            while (t > 0 && ix[t - 1] > j) {
                ix[t] = ix[t - 1];
                t--;
            }
            ix[t] = j;
            c.val[(size_t)r * A + k] = (float)rng_uniform(&g) + 0.01f;
        }
        c.row_ptr[r + 1] = (int64_t)(r + 1) * A;
    }
    c.nnz = (int64_t)R * A;
    analysis_stats st;
    analysis_cooc co;
    int32_t *nb = malloc((size_t)N * K * sizeof *nb);
    float *nj = malloc((size_t)N * K * sizeof *nj), *gj = malloc(N / 2 * sizeof *gj);
    int ok = analysis_stats_init(&st, N, 2, ANALYSIS_HIST_BINS) == 0 && analysis_cooc_init(&co, N) == 0;
    ok = ok && analysis_stats_add(&st, &c) == 0 && analysis_cooc_add(&co, &c) == 0 && analysis_cooc_finish(&co) == 0;
    ok = ok && analysis_jaccard_neighbors(&co, K, 2, nb, nj, gj) == 0;
    CHECK(ok, "12800 latents x 20000 rows: stats and Jaccard ran");
    CHECK(co.nnz == (int64_t)R * A && st.rows == R, "all entries seen");
    double worst = 0.0; /* the sweep against the merge-based pair count, an independent path */
    for (int i = 0; i < 200 && ok; i++) {
        for (int k = 0; k < K && nb[i * K + k] >= 0; k++)
            worst = fmax(worst, fabs(nj[i * K + k] - analysis_jaccard_pair(&co, i, nb[i * K + k])));
        if (i % 2 == 0)
            worst = fmax(worst, fabs(gj[i / 2] - analysis_jaccard_pair(&co, i, i + 1)));
    }
    CHECK(worst < 1e-6, "neighbour and group J agree with pairwise counts (worst %g)", worst);
    analysis_stats_free(&st);
    analysis_cooc_free(&co);
    free(nb), free(nj), free(gj);
    analysis_csr_free(&c);
}

int main(void)
{
    test_csr();
    test_topk_quantile();
    test_eig();
    test_jaccard_hand();
    test_stats_hand();
    test_plane_hand();
    test_recovery_hand();
    test_cluster_hand();
    test_cluster_planted();
    test_against_numpy();
    test_sae_callback();
    test_scaling();
    return check_report();
}
