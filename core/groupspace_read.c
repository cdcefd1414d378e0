/* groupspace_read.c — what the positions say: groups (single-linkage
 * components, large ones halved), pair distances against a known truth, and
 * the radius profile that tells a ring from a disk (include/groupspace.h).
 *
 * Components: items sorted by their first coordinate, each compared with the
 * items after it until that coordinate differs by link or more, and joined
 * by union-find when closer than link. That is O(N log N + close pairs) on
 * spread-out positions; a cloud packed tighter than link everywhere would be
 * O(N^2), so comparisons are capped (GROUPSPACE_ETOOBIG: use a smaller link). */
#include "groupspace.h"
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define GROUPSPACE_MAX_COMPARE ((int64_t)1 << 34)
#define GROUPSPACE_EXACT_PAIRS 4096 /* items up to which pair statistics visit every pair */

static double groupspace_dist2(const float *a, const float *b, int dim)
{
    double s = 0;
    for (int c = 0; c < dim; c++) {
        double d = (double)a[c] - b[c];
        s += d * d;
    }
    return s;
}

/* ---- components ---- */

static int32_t groupspace_find(int32_t *parent, int32_t i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

/* qsort has no context argument: items are sorted as (key, id) pairs instead. */
typedef struct {
    float key;
    int32_t id;
} groupspace_keyed;

static int groupspace_cmp_keyed(const void *a, const void *b)
{
    const groupspace_keyed *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int groupspace_link(const float *pos, int n, int dim, float link, int32_t *parent)
{
    groupspace_keyed *k = malloc((size_t)n * sizeof *k);
    if (!k) return GROUPSPACE_ENOMEM;
    for (int i = 0; i < n; i++) k[i].key = pos[(int64_t)i * dim], k[i].id = i, parent[i] = i;
    qsort(k, (size_t)n, sizeof *k, groupspace_cmp_keyed);
    double l2 = (double)link * link;
    int64_t compared = 0;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n && k[b].key - k[a].key < link; b++) {
            if (++compared > GROUPSPACE_MAX_COMPARE) {
                free(k);
                return GROUPSPACE_ETOOBIG;
            }
            if (groupspace_dist2(pos + (int64_t)k[a].id * dim, pos + (int64_t)k[b].id * dim, dim) >= l2) continue;
            int32_t ra = groupspace_find(parent, k[a].id), rb = groupspace_find(parent, k[b].id);
            if (ra != rb) parent[ra > rb ? ra : rb] = ra < rb ? ra : rb;
        }
    free(k);
    return GROUPSPACE_OK;
}

/* Items ids (n) get group ids from *next on: one if n <= max_size, else the halves along the widest
 * coordinate, recursively. keyed: scratch (n). */
static void groupspace_split(const float *pos, int dim, int32_t *ids, int n, int max_size, groupspace_keyed *keyed,
                             int32_t *group, int *next)
{
    if (n <= max_size) {
        for (int i = 0; i < n; i++) group[ids[i]] = *next;
        (*next)++;
        return;
    }
    int axis = 0;
    float best = -1;
    for (int c = 0; c < dim; c++) {
        float lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < n; i++) {
            float v = pos[(int64_t)ids[i] * dim + c];
            lo = v < lo ? v : lo, hi = v > hi ? v : hi;
        }
        if (hi - lo > best) best = hi - lo, axis = c;
    }
    for (int i = 0; i < n; i++) keyed[i].key = pos[(int64_t)ids[i] * dim + axis], keyed[i].id = ids[i];
    qsort(keyed, (size_t)n, sizeof *keyed, groupspace_cmp_keyed);
    for (int i = 0; i < n; i++) ids[i] = keyed[i].id;
    int half = n / 2;
    groupspace_split(pos, dim, ids, half, max_size, keyed, group, next);
    groupspace_split(pos, dim, ids + half, n - half, max_size, keyed, group, next);
}

int groupspace_groups(const float *pos, int n, int dim, float link, int max_size, int32_t *group, int *n_groups)
{
    assert(pos && group && n_groups && n >= 1 && dim >= 1 && dim <= GROUPSPACE_MAX_DIM && link >= 0);
    assert(max_size >= 1);
    int32_t *parent = malloc((size_t)n * sizeof *parent), *start = calloc((size_t)n + 1, sizeof *start);
    int32_t *ids = malloc((size_t)n * sizeof *ids), *renum = malloc((size_t)n * sizeof *renum);
    groupspace_keyed *keyed = malloc((size_t)n * sizeof *keyed);
    int rc = parent && start && ids && renum && keyed ? groupspace_link(pos, n, dim, link, parent)
                                                      : GROUPSPACE_ENOMEM;
    if (rc == GROUPSPACE_OK) {
        /* bucket the items by component root (counting sort), then split each bucket */
        for (int i = 0; i < n; i++) {
            parent[i] = groupspace_find(parent, i);
            start[parent[i] + 1]++;
        }
        for (int i = 0; i < n; i++) start[i + 1] += start[i];
        for (int i = 0; i < n; i++) ids[start[parent[i]]++] = i; /* parent[i] is now its root */
        int next = 0, from = 0;
        for (int root = 0; root < n; root++) {
            int to = start[root];
            if (to > from) groupspace_split(pos, dim, ids + from, to - from, max_size, keyed, group, &next);
            from = to > from ? to : from;
        }
        for (int g = 0; g < next; g++) renum[g] = -1;
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (renum[group[i]] < 0) renum[group[i]] = k++;
            group[i] = renum[group[i]];
        }
        *n_groups = k;
    }
    free(parent), free(start), free(ids), free(renum), free(keyed);
    return rc;
}

/* ---- pair statistics ---- */

static void groupspace_pair_add(groupspace_pairs *o, int same, double d, float near, float far)
{
    if (same) {
        o->true_pairs++;
        o->true_near += d <= near;
        o->true_mean_dist += d;
    } else {
        o->other_pairs++;
        o->other_far += d >= far;
    }
}

int groupspace_pair_stats(const float *pos, int n, int dim, const int32_t *truth, float near, float far,
                          int64_t max_pairs, rng_t *r, groupspace_pairs *out)
{
    assert(pos && truth && out && n >= 1 && dim >= 1 && dim <= GROUPSPACE_MAX_DIM);
    memset(out, 0, sizeof *out);
    if (n <= GROUPSPACE_EXACT_PAIRS) {
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                groupspace_pair_add(out, truth[i] == truth[j],
                                    sqrt(groupspace_dist2(pos + (int64_t)i * dim, pos + (int64_t)j * dim, dim)),
                                    near, far);
    } else {
        assert(r && max_pairs >= 1);
        /* true pairs exactly (sorted by truth id), other pairs by sampling */
        groupspace_keyed *k = malloc((size_t)n * sizeof *k);
        if (!k) return GROUPSPACE_ENOMEM;
        for (int i = 0; i < n; i++) k[i].key = (float)truth[i], k[i].id = i;
        qsort(k, (size_t)n, sizeof *k, groupspace_cmp_keyed);
        for (int a = 0; a < n; a++)
            for (int b = a + 1; b < n && truth[k[b].id] == truth[k[a].id]; b++)
                groupspace_pair_add(out, 1, sqrt(groupspace_dist2(pos + (int64_t)k[a].id * dim,
                                                                  pos + (int64_t)k[b].id * dim, dim)), near, far);
        free(k);
        for (int64_t s = 0; s < max_pairs; s++) {
            int i = (int)rng_below(r, (uint64_t)n), j = (int)rng_below(r, (uint64_t)n);
            if (i == j || truth[i] == truth[j]) continue;
            groupspace_pair_add(out, 0, sqrt(groupspace_dist2(pos + (int64_t)i * dim, pos + (int64_t)j * dim, dim)),
                                near, far);
        }
    }
    if (out->true_pairs) out->true_mean_dist /= (double)out->true_pairs;
    return GROUPSPACE_OK;
}

/* ---- radius profile ---- */

void groupspace_radius_profile(const float *pos, int n, int dim, int bins, int64_t *hist, groupspace_radius *out)
{
    assert(pos && out && n >= 1 && dim >= 1 && dim <= GROUPSPACE_MAX_DIM && (bins == 0 || hist));
    double c[GROUPSPACE_MAX_DIM] = { 0 }, s = 0, s2 = 0, mx = 0;
    for (int i = 0; i < n; i++)
        for (int d = 0; d < dim; d++) c[d] += pos[(int64_t)i * dim + d] / (double)n;
    for (int i = 0; i < n; i++) {
        double r2 = 0;
        for (int d = 0; d < dim; d++) r2 += (pos[(int64_t)i * dim + d] - c[d]) * (pos[(int64_t)i * dim + d] - c[d]);
        double r = sqrt(r2);
        s += r, s2 += r * r, mx = r > mx ? r : mx;
    }
    memset(out, 0, sizeof *out);
    out->mean = s / n;
    out->std = sqrt(fmax(0, s2 / n - out->mean * out->mean));
    out->cv = out->mean > 0 ? out->std / out->mean : 0;
    out->max = mx;
    if (bins > 0) memset(hist, 0, (size_t)bins * sizeof *hist);
    for (int i = 0; i < n; i++) {
        double r2 = 0;
        for (int d = 0; d < dim; d++) r2 += (pos[(int64_t)i * dim + d] - c[d]) * (pos[(int64_t)i * dim + d] - c[d]);
        double r = sqrt(r2);
        out->inner_frac += r < 0.5 * out->mean;
        if (bins > 0) {
            int b = mx > 0 ? (int)(r / mx * bins) : 0;
            hist[b < bins ? b : bins - 1]++;
        }
    }
    out->inner_frac /= n;
}
