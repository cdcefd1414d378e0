/* jobrun_groups — the group half of the analyze job (see
 * jobrun_analyze.h): which latents form each group (the SAE's own groups or
 * the clustering baseline), each group's density, mean pairwise Jaccard and
 * largest member cosine, circle recovery against the ground-truth planes,
 * and each group's plane with the first JOBRUN_ANALYZE_PROJ_KEEP rows where
 * the group fires projected on it.
 *
 * Group density counts distinct rows over the members' row lists with one
 * stamp per row (each latent is in exactly one group, so the whole pass is
 * O(firing entries)). The rows to project are fetched again from the data
 * source in row order, JOBRUN_ANALYZE_ROW_BATCH distinct rows at a time. */
#include "jobrun_analyze.h"
#include "sae_groups.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int jobrun_groups_nomem(jobrun_analyze_job *j, const char *what)
{
    snprintf(j->err, sizeof j->err, "out of memory (%s); analyse fewer samples or a smaller SAE", what);
    return -1;
}

static int jobrun_groups_core_fail(jobrun_analyze_job *j, const char *what, int rc)
{
    snprintf(j->err, sizeof j->err, "%s: %s", what, analysis_strerror(rc));
    return -1;
}

/* ---- grouping ---- */

/* The SAE's own groups into order and goff: a table's, or contiguous ones of its group_size. */
static void jobrun_groups_own(jobrun_analyze_job *j)
{
    const sae_config *c = &j->p.cfg;
    j->s = c->groups ? 0 : c->group_size;
    j->n_groups = sae_n_groups(c);
    for (int g = 0, k = 0; g < j->n_groups; g++) {
        j->goff[g] = k;
        for (int m = 0; m < sae_group_len(c, g); m++) j->order[k++] = sae_group_member(c, g, m);
    }
    j->goff[j->n_groups] = j->n;
}

int jobrun_groups_form(jobrun_analyze_job *j)
{
    int n = j->n, K = j->spec.neighbors;
    j->order = malloc((size_t)n * sizeof *j->order);
    j->goff = malloc(((size_t)n + 1) * sizeof *j->goff);
    j->group_of = malloc((size_t)n * sizeof *j->group_of);
    j->W_perm = malloc((size_t)n * j->dim * sizeof *j->W_perm);
    if (!j->order || !j->goff || !j->group_of || !j->W_perm) return jobrun_groups_nomem(j, "grouping");
    if (j->spec.cluster == SPEC_ANALYSIS_CLUSTER_NONE) {
        jobrun_groups_own(j);
    } else {
        j->s = j->spec.cluster_group_size;
        int cos = j->spec.cluster == SPEC_ANALYSIS_CLUSTER_COSINE;
        int rc = analysis_cluster_greedy(n, j->s, K, cos ? j->nb_cos_idx : j->nb_j_idx, cos ? j->nb_cos : j->nb_j,
                                         j->spec.cluster_min_sim, j->order);
        if (rc) return jobrun_groups_core_fail(j, "clustering the latents", rc);
        j->n_groups = n / j->s;
        for (int g = 0; g <= j->n_groups; g++) j->goff[g] = g * j->s;
    }
    j->max_s = analysis_offsets_max(j->goff, j->n_groups);
    for (int g = 0; g < j->n_groups; g++)
        for (int k = j->goff[g]; k < j->goff[g + 1]; k++) j->group_of[j->order[k]] = g;
    for (int k = 0; k < n; k++) {
        memcpy(j->W_perm + (size_t)k * j->dim, j->p.v.W_dec + (size_t)j->order[k] * j->dim,
               (size_t)j->dim * sizeof *j->W_perm);
    }
    return 0;
}

/* ---- density, Jaccard, cosine ---- */

/* Rows where any member of group g fired, counted with stamp (rows). */
static int64_t jobrun_groups_rows(const jobrun_analyze_job *j, int g, int32_t *stamp)
{
    int64_t count = 0;
    for (int m = j->goff[g]; m < j->goff[g + 1]; m++) {
        int i = j->order[m];
        for (int64_t t = j->cooc.col_ptr[i]; t < j->cooc.col_ptr[i + 1]; t++) {
            int32_t r = j->cooc.col_rows[t];
            if (stamp[r] != g) stamp[r] = g, count++;
        }
    }
    return count;
}

static double jobrun_groups_jaccard(const jobrun_analyze_job *j, int g)
{
    const int32_t *mem = j->order + j->goff[g]; /* (s) */
    int s = j->goff[g + 1] - j->goff[g];
    double sum = 0.0;
    for (int a = 0; a < s; a++)
        for (int b = a + 1; b < s; b++) sum += analysis_jaccard_pair(&j->cooc, mem[a], mem[b]);
    return s > 1 ? sum / (s * (s - 1) / 2.0) : 0.0;
}

int jobrun_groups_stats(jobrun_analyze_job *j)
{
    int G = j->n_groups;
    j->g_density = malloc((size_t)G * sizeof *j->g_density);
    j->g_jaccard = malloc((size_t)G * sizeof *j->g_jaccard);
    j->g_maxcos = malloc((size_t)G * sizeof *j->g_maxcos);
    int32_t *stamp = malloc((size_t)(j->rows > 0 ? j->rows : 1) * sizeof *stamp); /* (rows) */
    if (!j->g_density || !j->g_jaccard || !j->g_maxcos || !stamp) {
        free(stamp);
        return jobrun_groups_nomem(j, "group statistics");
    }
    for (int64_t r = 0; r < j->rows; r++) stamp[r] = -1;
    for (int g = 0; g < G; g++) {
        int64_t c = jobrun_groups_rows(j, g, stamp);
        j->g_density[g] = j->rows > 0 ? (double)c / (double)j->rows : 0.0;
        j->g_jaccard[g] = jobrun_groups_jaccard(j, g);
    }
    free(stamp);
    int rc = analysis_group_max_cos_groups(j->W_perm, j->n, j->dim, j->goff, G, j->g_maxcos);
    return rc ? jobrun_groups_core_fail(j, "group cosines", rc) : 0;
}

/* ---- circle recovery ---- */

/* Groups scored as subspaces against the planes (analysis_subspace.c): the histogram of groups per
 * circle at both cuts. Every group counts, dead or alive (a dead group holds nothing it uses, but
 * its span is what the decoder offers). */
static int jobrun_groups_subspace(jobrun_analyze_job *j)
{
    int nc = circles_get_params(j->circ)->n_circles;
    float *q = malloc((size_t)nc * 2 * j->dim * sizeof *q); /* (nc, 2, dim) orthonormal planes */
    if (!q) return jobrun_groups_nomem(j, "recovery by subspace");
    analysis_orthonormalize_planes(circles_planes(j->circ), nc, j->dim, q);
    int rc = analysis_subspace_run_groups(j->W_perm, j->n, j->dim, j->goff, j->n_groups, q, nc, j->n_groups, &j->sub);
    free(q);
    if (rc) return jobrun_groups_core_fail(j, "recovery by subspace", rc);
    j->has_sub = 1;
    return 0;
}

int jobrun_groups_recovery(jobrun_analyze_job *j)
{
    if (!j->circ) return 0;
    const circles_params *cp = circles_get_params(j->circ);
    /* No cap: per_plane_hist[k] is exactly k rows (API.md); JSON trims the trailing zeros. */
    int nc = cp->n_circles, max_k = j->n;
    unsigned char *alive = malloc((size_t)j->n); /* (n) in group order */
    j->fve = malloc((size_t)nc * sizeof *j->fve);
    if (!alive || !j->fve) {
        free(alive);
        return jobrun_groups_nomem(j, "circle recovery");
    }
    for (int k = 0; k < j->n; k++) alive[k] = j->stats.count[j->order[k]] > 0;
    int rc = analysis_recovery_run_groups(j->W_perm, j->n, j->dim, j->goff, j->n_groups, circles_planes(j->circ), nc,
                                          alive, ANALYSIS_INPLANE_FRAC, max_k, &j->rec);
    free(alive);
    if (rc) return jobrun_groups_core_fail(j, "circle recovery", rc);
    j->has_rec = 1;
    if (j->max_s >= 2 && (rc = jobrun_groups_subspace(j)) != 0) return rc;
    rc = analysis_circle_fve(circles_planes(j->circ), nc, j->dim, JOBRUN_ANALYZE_FVE_POINTS, analysis_sae_encode, &j->p,
                             j->fve);
    return rc ? jobrun_groups_core_fail(j, "circle FVE", rc) : 0;
}

/* ---- planes and projections ---- */

static int jobrun_groups_cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The first JOBRUN_ANALYZE_PROJ_KEEP rows where group g fires, increasing, into out; returns how many.
 * The union's first K rows are among each member's first K, so only those are merged. */
static int jobrun_groups_first_rows(const jobrun_analyze_job *j, int g, int32_t *buf /* (s K) */,
                                    int32_t *out /* (K) */)
{
    int m = 0, k = 0;
    for (int t = j->goff[g]; t < j->goff[g + 1]; t++) {
        int i = j->order[t];
        int64_t len = j->cooc.col_ptr[i + 1] - j->cooc.col_ptr[i];
        len = len < JOBRUN_ANALYZE_PROJ_KEEP ? len : JOBRUN_ANALYZE_PROJ_KEEP;
        memcpy(buf + m, j->cooc.col_rows + j->cooc.col_ptr[i], (size_t)len * sizeof *buf);
        m += (int)len;
    }
    qsort(buf, (size_t)m, sizeof *buf, jobrun_groups_cmp_i32);
    for (int t = 0; t < m && k < JOBRUN_ANALYZE_PROJ_KEEP; t++)
        if (k == 0 || buf[t] != out[k - 1]) out[k++] = buf[t];
    return k;
}

/* Lays out proj_ptr and each record's row (group-major). */
static int jobrun_groups_proj_rows(jobrun_analyze_job *j)
{
    int G = j->n_groups;
    int32_t *buf = malloc((size_t)j->max_s * JOBRUN_ANALYZE_PROJ_KEEP * sizeof *buf);
    int32_t *first = malloc(JOBRUN_ANALYZE_PROJ_KEEP * sizeof *first);
    j->proj_ptr = calloc((size_t)G + 1, sizeof *j->proj_ptr);
    size_t cap = 0;
    int rc = buf && first && j->proj_ptr ? 0 : -1;
    for (int g = 0; g < G && !rc; g++) {
        int k = jobrun_groups_first_rows(j, g, buf, first);
        j->proj_ptr[g + 1] = j->proj_ptr[g] + k;
        if ((size_t)j->proj_ptr[g + 1] > cap) {
            size_t want = cap ? cap * 2 : 4096;
            while (want < (size_t)j->proj_ptr[g + 1]) want *= 2;
            artifacts_proj *p = realloc(j->proj, want * sizeof *p);
            if (!p) { rc = -1; break; }
            j->proj = p, cap = want;
        }
        for (int t = 0; t < k; t++) j->proj[j->proj_ptr[g] + t].row = first[t];
    }
    free(buf), free(first);
    return rc ? jobrun_groups_nomem(j, "projections") : 0;
}

typedef struct { int32_t row, rec, group; } jobrun_groups_pair;

static int jobrun_groups_cmp_pair(const void *a, const void *b)
{
    const jobrun_groups_pair *x = a, *y = b;
    return x->row != y->row ? (x->row > y->row) - (x->row < y->row) : (x->rec > y->rec) - (x->rec < y->rec);
}

/* Every group's plane basis into basis (G, 2, dim). */
static int jobrun_groups_planes(jobrun_analyze_job *j, float *basis)
{
    int smax = j->max_s;
    float *sv = malloc((size_t)smax * sizeof *sv), *coords = malloc((size_t)smax * 2 * sizeof *coords);
    float *cosm = malloc((size_t)smax * smax * sizeof *cosm);
    int rc = sv && coords && cosm ? 0 : ANALYSIS_ENOMEM;
    for (int g = 0; g < j->n_groups && !rc; g++) {
        int r = analysis_group_plane(j->W_perm + (size_t)j->goff[g] * j->dim, j->goff[g + 1] - j->goff[g], j->dim,
                                     sv, basis + (size_t)g * 2 * j->dim, coords, cosm);
        rc = r < 0 ? r : 0;
    }
    free(sv), free(coords), free(cosm);
    return rc ? jobrun_groups_core_fail(j, "group planes", rc) : 0;
}

/* Fetches the rows of pairs [a, b) (sorted by row, <= JOBRUN_ANALYZE_ROW_BATCH distinct) and projects each. */
static int jobrun_groups_project_span(jobrun_analyze_job *j, const jobrun_groups_pair *pairs, int64_t a, int64_t b,
                                      const float *basis, uint64_t *idx, float *x)
{
    int m = 0;
    for (int64_t t = a; t < b; t++)
        if (m == 0 || idx[m - 1] != (uint64_t)pairs[t].row) idx[m++] = (uint64_t)pairs[t].row;
    if (j->src.get_rows(j->src.ctx, idx, m, x)) {
        snprintf(j->err, sizeof j->err, "cannot read rows of the dataset again for the projections");
        return -1;
    }
    int pos = -1;
    for (int64_t t = a; t < b; t++) {
        if (pos < 0 || idx[pos] != (uint64_t)pairs[t].row) pos++;
        float uv[2];
        analysis_plane_project(basis + (size_t)pairs[t].group * 2 * j->dim, j->p.v.b_dec,
                               x + (size_t)pos * j->dim, 1, j->dim, uv);
        j->proj[pairs[t].rec].u = uv[0];
        j->proj[pairs[t].rec].v = uv[1];
    }
    return 0;
}

/* Pairs (row, record, group) sorted by row. */
static jobrun_groups_pair *jobrun_groups_pairs(const jobrun_analyze_job *j, int64_t P)
{
    jobrun_groups_pair *pairs = malloc((size_t)(P > 0 ? P : 1) * sizeof *pairs);
    if (!pairs) return NULL;
    for (int g = 0; g < j->n_groups; g++)
        for (int64_t t = j->proj_ptr[g]; t < j->proj_ptr[g + 1]; t++)
            pairs[t] = (jobrun_groups_pair){ j->proj[t].row, (int32_t)t, g };
    qsort(pairs, (size_t)P, sizeof *pairs, jobrun_groups_cmp_pair);
    return pairs;
}

int jobrun_groups_projections(jobrun_analyze_job *j)
{
    if (jobrun_groups_proj_rows(j)) return -1;
    int64_t P = j->proj_ptr[j->n_groups];
    float *basis = malloc((size_t)j->n_groups * 2 * j->dim * sizeof *basis); /* (G, 2, dim) */
    float *x = malloc((size_t)JOBRUN_ANALYZE_ROW_BATCH * j->dim * sizeof *x);  /* (JOBRUN_ANALYZE_ROW_BATCH, dim) */
    uint64_t *idx = malloc(JOBRUN_ANALYZE_ROW_BATCH * sizeof *idx);             /* (JOBRUN_ANALYZE_ROW_BATCH) */
    jobrun_groups_pair *pairs = jobrun_groups_pairs(j, P);
    int rc = basis && x && idx && pairs ? jobrun_groups_planes(j, basis) : jobrun_groups_nomem(j, "projections");
    for (int64_t a = 0; a < P && !rc;) {
        int64_t b = a;
        int distinct = 0;
        while (b < P) {
            int is_new = b == a || pairs[b].row != pairs[b - 1].row;
            if (is_new && distinct == JOBRUN_ANALYZE_ROW_BATCH) break;
            distinct += is_new;
            b++;
        }
        rc = jobrun_groups_project_span(j, pairs, a, b, basis, idx, x);
        a = b;
    }
    free(basis), free(x), free(idx), free(pairs);
    return rc;
}

void jobrun_groups_free(jobrun_analyze_job *j)
{
    free(j->order), free(j->goff), free(j->group_of), free(j->W_perm);
    free(j->g_density), free(j->g_jaccard), free(j->g_maxcos);
    if (j->has_rec) analysis_recovery_free(&j->rec);
    if (j->has_sub) analysis_subspace_free(&j->sub);
    free(j->fve), free(j->proj_ptr), free(j->proj);
}
