/* analysis_cluster — the "train normally, then cluster" baseline: group an
 * ordinary SAE's latents into groups of s from their neighbour lists.
 *
 * Algorithm (see analysis.h): every listed pair (i, j) with similarity >=
 * min_sim is an edge; edges are sorted by similarity descending (ties:
 * smaller i, then smaller j) and taken in turn, joining the clusters of i and
 * j (union-find with sizes) when the union has at most s members. For s = 2
 * this is the greedy maximum-weight matching. Then full clusters become
 * groups (by smallest member) and the leftovers, ordered by size descending
 * and smallest member, are laid out member by member and cut into groups of
 * s. Cost: O(nK log(nK)) for the sort, near-linear after. */
#include "analysis.h"
#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float sim;
    int32_t i, j; /* i < j */
} cluster_edge;

static int edge_cmp(const void *pa, const void *pb)
{
    const cluster_edge *a = pa, *b = pb;
    if (a->sim != b->sim)
        return a->sim > b->sim ? -1 : 1;
    if (a->i != b->i)
        return a->i < b->i ? -1 : 1;
    return (a->j > b->j) - (a->j < b->j);
}

static int32_t uf_find(int32_t *parent, int32_t x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]]; /* path halving */
        x = parent[x];
    }
    return x;
}

/* Edges (up to n K) from the neighbour lists; returns how many. */
static size_t cluster_edges(int n, int K, const int32_t *nb_idx, const float *nb_sim, float min_sim,
                            cluster_edge *e)
{
    assert(e && n >= 1 && K >= 0 && (K == 0 || (nb_idx && nb_sim)));
    size_t m = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < K; k++) {
            int32_t j = nb_idx[(size_t)i * K + k];
            float v = nb_sim[(size_t)i * K + k];
            if (j < 0 || j >= n || j == i || !(v >= min_sim))
                continue;
            e[m].sim = v;
            e[m].i = i < j ? i : j;
            e[m].j = i < j ? j : i;
            m++;
        }
    assert(m <= (size_t)n * K);
    return m;
}

/* Lays out the clusters given by root (n) into order (n), as documented. */
static int cluster_layout(int n, int s, const int32_t *root, int32_t *order)
{
    assert(root && order && n >= 1 && s >= 1 && n % s == 0);
    int32_t *id = malloc((size_t)n * sizeof *id);   /* (n) cluster id of each root, by smallest member */
    int32_t *size = calloc((size_t)n, sizeof *size); /* (clusters) */
    int32_t *start = malloc((size_t)(n + 1) * sizeof *start); /* (clusters + 1) */
    int32_t *mem = malloc((size_t)n * sizeof *mem);  /* (n) members grouped by cluster, ascending */
    int32_t *rank = malloc((size_t)n * sizeof *rank); /* (clusters) layout order */
    if (!id || !size || !start || !mem || !rank) {
        free(id), free(size), free(start), free(mem), free(rank);
        return ANALYSIS_ENOMEM;
    }
    int nc = 0;
    for (int i = 0; i < n; i++)
        id[i] = -1;
    for (int i = 0; i < n; i++) {
        int32_t r = root[i];
        if (id[r] < 0)
            id[r] = nc++;
        size[id[r]]++;
    }
    start[0] = 0;
    for (int c = 0; c < nc; c++)
        start[c + 1] = start[c] + size[c];
    for (int c = 0; c < nc; c++)
        size[c] = 0;
    for (int i = 0; i < n; i++) {
        int c = id[root[i]];
        mem[start[c] + size[c]++] = i;
    }
    /* Full clusters first (by smallest member), then the rest by size descending. */
    int m = 0;
    for (int c = 0; c < nc; c++)
        if (size[c] == s)
            rank[m++] = c;
    for (int sz = s - 1; sz >= 1; sz--)
        for (int c = 0; c < nc; c++)
            if (size[c] == sz)
                rank[m++] = c;
    assert(m == nc); /* every cluster has 1 .. s members (the union cap), so each was ranked */
    int o = 0;
    for (int t = 0; t < m; t++)
        for (int k = 0; k < size[rank[t]]; k++)
            order[o++] = mem[start[rank[t]] + k];
    assert(o == n); /* a permutation of 0 .. n-1 */
    free(id), free(size), free(start), free(mem), free(rank);
    return ANALYSIS_OK;
}

int analysis_cluster_greedy(int n, int s, int K, const int32_t *nb_idx, const float *nb_sim, float min_sim,
                            int32_t *order)
{
    if (n < 1 || s < 1 || n % s || K < 0)
        return ANALYSIS_EINVAL;
    assert(order && (K == 0 || (nb_idx && nb_sim)));
    cluster_edge *e = malloc(((size_t)n * K + 1) * sizeof *e); /* (n K) candidate pairs */
    int32_t *parent = malloc((size_t)n * sizeof *parent);      /* (n) union-find */
    int32_t *size = malloc((size_t)n * sizeof *size);          /* (n) cluster sizes at roots */
    if (!e || !parent || !size) {
        free(e), free(parent), free(size);
        return ANALYSIS_ENOMEM;
    }
    size_t m = cluster_edges(n, K, nb_idx, nb_sim, min_sim, e);
    qsort(e, m, sizeof *e, edge_cmp);
    for (int i = 0; i < n; i++) {
        parent[i] = i;
        size[i] = 1;
    }
    for (size_t t = 0; t < m; t++) {
        int32_t a = uf_find(parent, e[t].i), b = uf_find(parent, e[t].j);
        if (a == b || size[a] + size[b] > s)
            continue;
        if (size[a] < size[b] || (size[a] == size[b] && b < a)) {
            int32_t x = a;
            a = b;
            b = x;
        }
        parent[b] = a;
        size[a] += size[b];
    }
    for (int i = 0; i < n; i++)
        parent[i] = uf_find(parent, i);
    int rc = cluster_layout(n, s, parent, order);
    free(e), free(parent), free(size);
    return rc;
}
