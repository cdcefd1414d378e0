/* analysis_subspace — an SAE's groups scored as subspaces against the
 * ground-truth circles' planes: block-sparse recovery is about spans, by
 * principal angles (Eldar, Kuppinger & Bolcskei 2010), not single vectors.
 *
 * Group g's decoder rows D_g (s, dim) get an orthonormal basis Q_g (r, dim)
 * of their span by modified Gram-Schmidt in double (r <= s: dependent rows
 * drop out). With plane i's orthonormal basis P_i (2, dim)
 * (analysis_orthonormalize_planes), the cosines of the principal angles
 * between span(D_g) and plane i are the singular values of M = Q_g P_i^T
 * (r, 2), i.e. the square roots of the eigenvalues of the 2 x 2 matrix
 * M^T M, in closed form. The group holds plane i when the smaller cosine is
 * at least the cut: the plane lies (almost) inside the group's span, so a
 * group of rank < 2 (group_size 1, or collapsed rows) holds none. Each group
 * is scored against its best plane (largest smaller cosine). All M come
 * from sgemm over blocks of whole groups against the stacked (2 nc, dim)
 * bases; sums are double.
 *
 * Duplicate groups (analysis_subspace_duplicates, train.dup_cos): two groups
 * share a direction when the largest principal-angle cosine between their
 * spans, the top singular value of Q_g Q_h^T (s, s), is above a cut; the
 * products come from sgemm over blocks of the listed groups' bases. */
#include "analysis.h"
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SUB_BLOCK_FLOATS ((size_t)1 << 22) /* basis-plane products per block: 16 MiB */

/* q (s, dim) = an orthonormal basis of the span of rows (s, dim), rank first; returns the rank. */
static int analysis_subspace_basis(const float *rows, int s, int dim, float *q)
{
    int r = 0;
    for (int i = 0; i < s; i++) {
        float *out = q + (size_t)r * dim;
        double n0 = 0.0, n1 = 0.0;
        for (int d = 0; d < dim; d++) {
            out[d] = rows[(size_t)i * dim + d];
            n0 += (double)out[d] * out[d];
        }
        for (int j = 0; j < r; j++) {
            const float *b = q + (size_t)j * dim;
            double dot = 0.0;
            for (int d = 0; d < dim; d++)
                dot += (double)out[d] * b[d];
            for (int d = 0; d < dim; d++)
                out[d] -= (float)dot * b[d];
        }
        for (int d = 0; d < dim; d++)
            n1 += (double)out[d] * out[d];
        if (!(n1 > 1e-8 * n0) || !(n0 > 0.0)) /* in the span of the rows before it */
            continue;
        for (int d = 0; d < dim; d++)
            out[d] = (float)(out[d] / sqrt(n1));
        r++;
    }
    memset(q + (size_t)r * dim, 0, (size_t)(s - r) * dim * sizeof(float));
    return r;
}

/* The smaller principal-angle cosine between a group's basis and plane i, from prod (s, 2 nc): the
 * group's basis rows against every plane's two basis vectors. */
static double analysis_subspace_min_cos(const float *prod, int s, int nc, int i)
{
    double a = 0.0, b = 0.0, c = 0.0;
    for (int k = 0; k < s; k++) {
        double u = prod[(size_t)k * 2 * nc + 2 * i], v = prod[(size_t)k * 2 * nc + 2 * i + 1];
        a += u * u, b += u * v, c += v * v;
    }
    double lo = 0.5 * ((a + c) - sqrt((a - c) * (a - c) + 4.0 * b * b));
    return lo > 0.0 ? sqrt(lo) : 0.0;
}

/* Groups [g0, g1) (rows goff[g0] .. goff[g1]-1): their bases into q (block rows), products, and each
 * one's best plane. */
static void analysis_subspace_block(const float *W_dec, int dim, const int32_t *goff, const float *planes, int nc,
                                    int g0, int g1, float *q, float *prod, analysis_subspace *out)
{
    int a = goff[g0], rows = goff[g1] - a;
    for (int g = g0; g < g1; g++)
        analysis_subspace_basis(W_dec + (size_t)goff[g] * dim, goff[g + 1] - goff[g], dim,
                                q + (size_t)(goff[g] - a) * dim);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, 2 * nc, dim, 1.0f, q, dim, planes, dim, 0.0f, prod,
                2 * nc);
    for (int g = g0; g < g1; g++) {
        int s = goff[g + 1] - goff[g];
        const float *pg = prod + (size_t)(goff[g] - a) * 2 * nc; /* (s, 2 nc) */
        double best = -1.0;
        int at = -1;
        for (int i = 0; i < nc; i++) {
            double m = analysis_subspace_min_cos(pg, s, nc, i);
            if (m > best)
                best = m, at = i;
        }
        out->group_circle[g] = at;
        out->group_cos[g] = (float)best;
    }
}

/* hist (max_k + 1): [k] circles held by exactly k groups with cosine >= cut (the last bin: >= max_k);
 * returns the circles held by at least one, and the groups holding one in *groups. count (nc) scratch. */
static int analysis_subspace_hist(const analysis_subspace *r, double cut, int *count, int64_t *hist, int *groups)
{
    int held = 0;
    *groups = 0;
    memset(count, 0, (size_t)r->n_circles * sizeof(int));
    memset(hist, 0, (size_t)(r->max_k + 1) * sizeof(int64_t));
    for (int g = 0; g < r->n_groups; g++)
        if (r->group_circle[g] >= 0 && r->group_cos[g] >= cut)
            count[r->group_circle[g]]++, (*groups)++;
    for (int i = 0; i < r->n_circles; i++) {
        hist[count[i] < r->max_k ? count[i] : r->max_k]++;
        held += count[i] > 0;
    }
    return held;
}

/* The end g1 > g0 of the block that starts at group g0: whole groups of at most rows_cap rows, or g0's
 * group alone if it is larger. */
static int analysis_subspace_block_end(const int32_t *goff, int G, int g0, int rows_cap)
{
    int g1 = g0 + 1;
    while (g1 < G && goff[g1 + 1] - goff[g0] <= rows_cap)
        g1++;
    return g1;
}

int analysis_subspace_run_groups(const float *W_dec, int n, int dim, const int32_t *goff, int G, const float *planes,
                                 int nc, int max_k, analysis_subspace *out)
{
    assert(W_dec && planes && out && n >= 1 && dim >= 1 && nc >= 1 && max_k >= 1);
    assert(analysis_offsets_ok(goff, G, n));
    memset(out, 0, sizeof *out);
    int rows_cap = (int)(SUB_BLOCK_FLOATS / (2 * (size_t)nc)), smax = analysis_offsets_max(goff, G);
    rows_cap = rows_cap < smax ? smax : rows_cap > n ? n : rows_cap;
    out->n_groups = G, out->n_circles = nc, out->max_k = max_k;
    out->group_circle = malloc((size_t)G * sizeof(int));
    out->group_cos = malloc((size_t)G * sizeof(float));
    out->hist = calloc((size_t)max_k + 1, sizeof(int64_t));
    out->hist_99 = calloc((size_t)max_k + 1, sizeof(int64_t));
    float *q = malloc((size_t)rows_cap * dim * sizeof(float));         /* (rows_cap, dim) */
    float *prod = malloc((size_t)rows_cap * 2 * nc * sizeof(float));   /* (rows_cap, 2 nc) */
    int *count = malloc((size_t)nc * sizeof(int));
    if (!out->group_circle || !out->group_cos || !out->hist || !out->hist_99 || !q || !prod || !count) {
        free(q), free(prod), free(count);
        analysis_subspace_free(out);
        return ANALYSIS_ENOMEM;
    }
    for (int g0 = 0, g1; g0 < G; g0 = g1) {
        g1 = analysis_subspace_block_end(goff, G, g0, rows_cap);
        analysis_subspace_block(W_dec, dim, goff, planes, nc, g0, g1, q, prod, out);
    }
    out->circles_held = analysis_subspace_hist(out, ANALYSIS_SUBSPACE_CUT, count, out->hist, &out->groups_holding);
    out->circles_held_99 = analysis_subspace_hist(out, ANALYSIS_SUBSPACE_CUT_99, count, out->hist_99,
                                                  &out->groups_holding_99);
    out->circles_one_group = (int)out->hist[1];
    out->circles_one_group_99 = (int)out->hist_99[1];
    free(q), free(prod), free(count);
    return ANALYSIS_OK;
}

int analysis_subspace_run(const float *W_dec, int n, int dim, int s, const float *planes, int nc, int max_k,
                          analysis_subspace *out)
{
    assert(n >= 1 && s >= 1 && n % s == 0);
    int32_t *goff = analysis_offsets_equal(n, s);
    if (!goff) {
        memset(out, 0, sizeof *out);
        return ANALYSIS_ENOMEM;
    }
    int rc = analysis_subspace_run_groups(W_dec, n, dim, goff, n / s, planes, nc, max_k, out);
    free(goff);
    return rc;
}

void analysis_subspace_free(analysis_subspace *r)
{
    free(r->group_circle), free(r->group_cos), free(r->hist), free(r->hist_99);
    memset(r, 0, sizeof *r);
}

/* ---- clustering rows into planes (cluster-then-retrain) ----
 *
 * Rows of a trained SAE's decoder that lie in one circle's plane are the
 * raw material of one subspace group. Each row's SUB_NEIGHBORS nearest rows
 * by |cos| (at least min_cos; blockwise sgemm of the unit rows) propose
 * planes: row i with each neighbour j spans one (pairs closer than
 * SUB_PARALLEL are skipped: they define no plane), and the plane's support
 * is how many of i, j and i's neighbours keep SUB_KEEP of their norm in it.
 * Planes are then taken by support, most first; a plane becomes a cluster
 * when at least min_rows of its supporting rows are still free, and those
 * rows are its members; its basis is the top two principal directions of
 * the members (uncentred, from their Gram matrix). Rows of one circle
 * support each other's planes, while a chance pair of rows of two circles
 * is supported by nothing else, so it never reaches min_rows >= 3. Planes
 * only (s = 2): the groups of the subspace arch that hold circles. */

#define SUB_NEIGHBORS 16
#define SUB_KEEP 0.95f     /* a row lies in a plane when its projection keeps this much of its norm */
#define SUB_PARALLEL 0.98f /* two rows this close span no plane */

typedef struct {
    int support;
    float c;        /* |cos| of the proposing pair */
    int32_t i, j;
} sub_plane;

static int sub_plane_cmp(const void *a, const void *b)
{
    const sub_plane *x = a, *y = b;
    if (x->support != y->support)
        return x->support < y->support ? 1 : -1;
    if (x->c != y->c)
        return x->c < y->c ? 1 : -1;
    return x->i != y->i ? (x->i < y->i ? -1 : 1) : (x->j < y->j ? -1 : x->j > y->j);
}

/* Each row's neighbours (m, SUB_NEIGHBORS) by |cos| >= min_cos, -1 past the last; u (m, dim) unit rows.
 * 0, or -1 when out of memory. */
static int sub_neighbors(const float *u, int m, int dim, float min_cos, int32_t *nb, float *nbc)
{
    enum { BLK = 256 };
    float *c = malloc((size_t)BLK * m * sizeof(float)); /* (BLK, m) */
    if (!c)
        return -1;
    for (int i0 = 0; i0 < m; i0 += BLK) {
        int rows = m - i0 < BLK ? m - i0 : BLK;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, m, dim, 1.0f, u + (size_t)i0 * dim, dim, u, dim,
                    0.0f, c, m);
        for (int r = 0; r < rows; r++) {
            int i = i0 + r, kept = 0;
            int32_t *ni = nb + (size_t)i * SUB_NEIGHBORS;
            float *nc = nbc + (size_t)i * SUB_NEIGHBORS;
            for (int j = 0; j < m; j++) {
                float v = fabsf(c[(size_t)r * m + j]);
                if (j == i || !(v >= min_cos) || (kept == SUB_NEIGHBORS && v <= nc[kept - 1]))
                    continue;
                int p = kept < SUB_NEIGHBORS ? kept++ : SUB_NEIGHBORS - 1;
                while (p > 0 && nc[p - 1] < v) {
                    ni[p] = ni[p - 1], nc[p] = nc[p - 1];
                    p--;
                }
                ni[p] = j, nc[p] = v;
            }
            for (int k = kept; k < SUB_NEIGHBORS; k++)
                ni[k] = -1, nc[k] = 0.0f;
        }
    }
    free(c);
    return 0;
}

/* q (2, dim) = an orthonormal basis of span(a, b) (unit rows); 0, or -1 if they are (nearly) parallel. */
static int sub_plane_of(const float *a, const float *b, int dim, float *q)
{
    double ab = 0.0, n = 0.0;
    for (int d = 0; d < dim; d++)
        ab += (double)a[d] * b[d];
    if (fabs(ab) >= SUB_PARALLEL)
        return -1;
    for (int d = 0; d < dim; d++) {
        q[d] = a[d];
        q[dim + d] = (float)(b[d] - ab * a[d]);
        n += (double)q[dim + d] * q[dim + d];
    }
    for (int d = 0; d < dim; d++)
        q[dim + d] = (float)(q[dim + d] / sqrt(n));
    return 0;
}

/* 1 if the unit row v keeps SUB_KEEP of its norm in the plane q (2, dim). */
static int sub_in_plane(const float *q, const float *v, int dim)
{
    double x = 0.0, y = 0.0;
    for (int d = 0; d < dim; d++)
        x += (double)q[d] * v[d], y += (double)q[dim + d] * v[d];
    return x * x + y * y >= (double)SUB_KEEP * SUB_KEEP;
}

/* The rows among i, j and i's neighbours that lie in the plane q of (i, j) and are free (taken NULL,
 * or taken[k] == 0), into mem (SUB_NEIGHBORS + 2) if non-NULL; returns their count. */
static int sub_support(const float *u, int dim, const int32_t *nb_i, int i, int j, const float *q,
                       const unsigned char *taken, int32_t *mem)
{
    int cnt = 0;
    for (int k = -2; k < SUB_NEIGHBORS; k++) {
        int r = k == -2 ? i : k == -1 ? j : nb_i[k];
        if (r < 0 || (k >= 0 && r == j) || (taken && taken[r]))
            continue;
        if (k < 0 || sub_in_plane(q, u + (size_t)r * dim, dim)) {
            if (mem)
                mem[cnt] = r;
            cnt++;
        }
    }
    return cnt;
}

/* basis (2, dim) = the top two principal directions of the rows mem (cnt) of u, uncentred. */
static int sub_plane_fit(const float *u, int dim, const int32_t *mem, int cnt, float *basis)
{
    double g[(SUB_NEIGHBORS + 2) * (SUB_NEIGHBORS + 2)], w[SUB_NEIGHBORS + 2], v[(SUB_NEIGHBORS + 2) * (SUB_NEIGHBORS + 2)];
    for (int a = 0; a < cnt; a++)
        for (int b = 0; b < cnt; b++) {
            double dot = 0.0;
            for (int d = 0; d < dim; d++)
                dot += (double)u[(size_t)mem[a] * dim + d] * u[(size_t)mem[b] * dim + d];
            g[a * cnt + b] = dot;
        }
    if (analysis_sym_eig(g, cnt, w, v) != ANALYSIS_OK)
        return -1;
    for (int k = 0; k < 2; k++) { /* direction k = sum_a v[k][a] u_a / sqrt(w[k]) */
        double n = 0.0;
        float *out = basis + (size_t)k * dim;
        for (int d = 0; d < dim; d++) {
            double x = 0.0;
            for (int a = 0; a < cnt; a++)
                x += v[k * cnt + a] * u[(size_t)mem[a] * dim + d];
            out[d] = (float)x;
            n += x * x;
        }
        for (int d = 0; d < dim; d++)
            out[d] = n > 0.0 ? (float)(out[d] / sqrt(n)) : 0.0f;
    }
    return 0;
}

/* Every row's proposed planes with their support, into pl (m * SUB_NEIGHBORS); returns how many. */
static int64_t sub_propose(const float *u, int m, int dim, const int32_t *nb, const float *nbc, sub_plane *pl,
                           float *q)
{
    int64_t np = 0;
    for (int i = 0; i < m; i++)
        for (int k = 0; k < SUB_NEIGHBORS; k++) {
            int j = nb[(size_t)i * SUB_NEIGHBORS + k];
            if (j < 0 || sub_plane_of(u + (size_t)i * dim, u + (size_t)j * dim, dim, q) != 0)
                continue;
            int sup = sub_support(u, dim, nb + (size_t)i * SUB_NEIGHBORS, i, j, q, NULL, NULL);
            pl[np++] = (sub_plane){sup, nbc[(size_t)i * SUB_NEIGHBORS + k], i, j};
        }
    return np;
}

int analysis_subspace_cluster(const float *rows, int m, int dim, int s, float min_cos, int min_rows, int cap,
                              float *bases, int *n_out)
{
    assert(rows && bases && n_out && m >= 1 && dim >= 1 && cap >= 0 && min_rows >= 3 &&
           min_rows <= SUB_NEIGHBORS + 2);
    *n_out = 0;
    if (s != 2)
        return ANALYSIS_EINVAL; /* planes only */
    float *u = malloc((size_t)m * dim * sizeof(float));                   /* (m, dim) unit rows */
    int32_t *nb = malloc((size_t)m * SUB_NEIGHBORS * sizeof *nb);          /* (m, K) neighbours */
    float *nbc = malloc((size_t)m * SUB_NEIGHBORS * sizeof *nbc);          /* (m, K) their |cos| */
    sub_plane *pl = malloc((size_t)m * SUB_NEIGHBORS * sizeof *pl);        /* proposed planes */
    unsigned char *taken = calloc((size_t)m, 1);                           /* (m) rows in a cluster */
    float *q = malloc((size_t)2 * dim * sizeof(float));                    /* (2, dim) */
    int rc = u && nb && nbc && pl && taken && q ? ANALYSIS_OK : ANALYSIS_ENOMEM;
    for (int i = 0; rc == ANALYSIS_OK && i < m; i++) {
        double n2 = 0.0;
        for (int d = 0; d < dim; d++)
            n2 += (double)rows[(size_t)i * dim + d] * rows[(size_t)i * dim + d];
        float inv = n2 > 0.0 ? (float)(1.0 / sqrt(n2)) : 0.0f;
        for (int d = 0; d < dim; d++)
            u[(size_t)i * dim + d] = rows[(size_t)i * dim + d] * inv;
    }
    if (rc == ANALYSIS_OK && sub_neighbors(u, m, dim, min_cos, nb, nbc) != 0)
        rc = ANALYSIS_ENOMEM;
    int64_t np = rc == ANALYSIS_OK ? sub_propose(u, m, dim, nb, nbc, pl, q) : 0;
    qsort(pl, (size_t)np, sizeof *pl, sub_plane_cmp);
    int found = 0;
    for (int64_t t = 0; rc == ANALYSIS_OK && t < np && found < cap && pl[t].support >= min_rows; t++) {
        int32_t mem[SUB_NEIGHBORS + 2];
        int i = pl[t].i, j = pl[t].j;
        if (taken[i] || taken[j] || sub_plane_of(u + (size_t)i * dim, u + (size_t)j * dim, dim, q) != 0)
            continue;
        int cnt = sub_support(u, dim, nb + (size_t)i * SUB_NEIGHBORS, i, j, q, taken, mem);
        if (cnt < min_rows)
            continue;
        if (sub_plane_fit(u, dim, mem, cnt, bases + (size_t)found * 2 * dim) != 0) {
            rc = ANALYSIS_ENOMEM;
            break;
        }
        for (int a = 0; a < cnt; a++)
            taken[mem[a]] = 1;
        found++;
    }
    *n_out = found;
    free(u), free(nb), free(nbc), free(pl), free(taken), free(q);
    return rc;
}

/* ---------------------------------------------------------------- duplicate groups */

/* The largest singular value of m (s, s) row-major: the largest principal-angle cosine between two
 * orthonormal bases whose product it is. Closed form for s <= 2, else power iteration on m^T m. */
static double sub_top_sv(const float *m, int s)
{
    assert(m && s >= 1);
    if (s == 1)
        return fabs(m[0]);
    if (s == 2) {
        double a = (double)m[0] * m[0] + (double)m[2] * m[2], c = (double)m[1] * m[1] + (double)m[3] * m[3];
        double b = (double)m[0] * m[1] + (double)m[2] * m[3];
        return sqrt(0.5 * ((a + c) + sqrt((a - c) * (a - c) + 4.0 * b * b)));
    }
    double v[ANALYSIS_DUP_MAX_S], w[ANALYSIS_DUP_MAX_S], u[ANALYSIS_DUP_MAX_S], lam = 0.0;
    for (int j = 0; j < s; j++)
        v[j] = 1.0 / sqrt((double)s);
    for (int it = 0; it < 50; it++) { /* v <- m^T m v / |.|, from the all-ones start */
        double nn = 0.0;
        for (int i = 0; i < s; i++) {
            u[i] = 0.0;
            for (int j = 0; j < s; j++)
                u[i] += (double)m[i * s + j] * v[j];
        }
        for (int j = 0; j < s; j++) {
            w[j] = 0.0;
            for (int i = 0; i < s; i++)
                w[j] += (double)m[i * s + j] * u[i];
            nn += w[j] * w[j];
        }
        if (!(nn > 0.0))
            return 0.0;
        lam = sqrt(nn);
        for (int j = 0; j < s; j++)
            v[j] = w[j] / lam;
    }
    return sqrt(lam);
}

/* Pairs among the bases q (m, s, dim) of groups ids (m), rows [a0, a1) against all later ones, from
 * prod ((a1 - a0) s, m s) = their products; appends pairs (g, h), g < h by position. */
static void sub_dup_scan(const float *prod, int m, int s, int a0, int a1, const int32_t *ids, float cut,
                         int32_t *pairs, int64_t cap, int64_t *found)
{
    float blk[ANALYSIS_DUP_MAX_S * ANALYSIS_DUP_MAX_S];
    for (int a = a0; a < a1; a++)
        for (int b = a + 1; b < m; b++) {
            for (int i = 0; i < s; i++)
                for (int j = 0; j < s; j++)
                    blk[i * s + j] = prod[((size_t)(a - a0) * s + i) * (size_t)m * s + (size_t)b * s + j];
            if (sub_top_sv(blk, s) <= cut)
                continue;
            if (*found < cap)
                pairs[2 * *found] = ids[a], pairs[2 * *found + 1] = ids[b];
            (*found)++;
        }
}

int analysis_subspace_duplicates(const float *W_dec, int dim, int s, const int32_t *ids, int m, float cut,
                                 int32_t *pairs, int64_t cap, int64_t *n_pairs)
{
    assert(W_dec && dim >= 1 && 1 <= s && s <= ANALYSIS_DUP_MAX_S && m >= 0 && (ids || m == 0));
    assert(0.0f < cut && cut <= 1.0f && cap >= 0 && (pairs || cap == 0) && n_pairs);
    *n_pairs = 0;
    if (m < 2)
        return ANALYSIS_OK;
    size_t ms = (size_t)m * s, per = ms * s; /* product floats per group of the block */
    int blk = (int)(SUB_BLOCK_FLOATS / per > 0 ? SUB_BLOCK_FLOATS / per : 1);
    float *q = malloc(ms * dim * sizeof(float));                          /* (m s, dim) */
    float *prod = malloc((size_t)(blk < m ? blk : m) * per * sizeof(float)); /* (blk s, m s) */
    if (!q || !prod)
        return free(q), free(prod), ANALYSIS_ENOMEM;
    for (int a = 0; a < m; a++)
        analysis_subspace_basis(W_dec + (size_t)ids[a] * s * dim, s, dim, q + (size_t)a * s * dim);
    for (int a0 = 0; a0 < m; a0 += blk) {
        int a1 = a0 + blk < m ? a0 + blk : m;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (a1 - a0) * s, (int)ms, dim, 1.0f,
                    q + (size_t)a0 * s * dim, dim, q, dim, 0.0f, prod, (int)ms);
        sub_dup_scan(prod, m, s, a0, a1, ids, cut, pairs, cap, n_pairs);
    }
    free(q);
    free(prod);
    return ANALYSIS_OK;
}
