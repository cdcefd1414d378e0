/* sae_groups — groups of any size: the table, its checks, and the accessors
 * that answer for both kinds of groups (design: include/sae_groups.h). */
#include "sae_groups.h"
#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sae_groups_fail(char *msg, size_t msglen, const char *text)
{
    if (msg && msglen)
        snprintf(msg, msglen, "%s", text);
    return -1;
}

static sae_groups *sae_groups_alloc(int n, int G)
{
    sae_groups *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->n = n;
    t->n_groups = G;
    t->off = malloc(((size_t)G + 1) * sizeof(int));
    t->mem = malloc((size_t)n * sizeof(int));
    t->of = malloc((size_t)n * sizeof(int));
    if (!t->off || !t->mem || !t->of) {
        sae_groups_free(t);
        return NULL;
    }
    return t;
}

static int sae_groups_cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Fills t's off, mem (sorted within groups) and of from the lists; -1 with msg on a bad list. */
static int sae_groups_fill(sae_groups *t, const int *sizes, const int *members, char *msg, size_t msglen)
{
    char text[160];
    int pos = 0;
    for (int i = 0; i < t->n; i++)
        t->of[i] = -1;
    t->max_size = 0;
    for (int g = 0; g < t->n_groups; g++) {
        if (sizes[g] < 1)
            return sae_groups_fail(msg, msglen, "every group needs at least one latent (an empty list was given)");
        if (sizes[g] > SAE_GROUPS_MAX_SIZE) {
            snprintf(text, sizeof text, "group %d has %d latents; a group may have at most %d", g, sizes[g],
                     SAE_GROUPS_MAX_SIZE);
            return sae_groups_fail(msg, msglen, text);
        }
        if (sizes[g] > t->n - pos)
            return sae_groups_fail(msg, msglen, "the groups list more latents than n_latents");
        t->off[g] = pos;
        for (int k = 0; k < sizes[g]; k++, pos++) {
            int i = members[pos];
            if (i < 0 || i >= t->n) {
                snprintf(text, sizeof text, "latent %d does not exist: latents are 0 .. %d", i, t->n - 1);
                return sae_groups_fail(msg, msglen, text);
            }
            if (t->of[i] >= 0) {
                snprintf(text, sizeof text, "latent %d is in groups %d and %d; list each latent once", i, t->of[i], g);
                return sae_groups_fail(msg, msglen, text);
            }
            t->of[i] = g;
            t->mem[pos] = i;
        }
        qsort(t->mem + t->off[g], (size_t)sizes[g], sizeof(int), sae_groups_cmp_int);
        if (sizes[g] > t->max_size)
            t->max_size = sizes[g];
    }
    t->off[t->n_groups] = pos;
    for (int i = 0; i < t->n; i++)
        if (t->of[i] < 0) {
            snprintf(text, sizeof text, "latent %d is in no group; list every latent 0 .. %d once (a group of one "
                     "is fine)", i, t->n - 1);
            return sae_groups_fail(msg, msglen, text);
        }
    return 0;
}

sae_groups *sae_groups_create(int n, int G, const int *sizes, const int *members, char *msg, size_t msglen)
{
    assert(n >= 1 && G >= 1 && sizes && members);
    if (n > SAE_GROUPS_MAX_LATENTS || G > n) {
        sae_groups_fail(msg, msglen, G > n ? "more groups than latents" : "too many latents for a group table");
        return NULL;
    }
    sae_groups *t = sae_groups_alloc(n, G);
    if (!t) {
        sae_groups_fail(msg, msglen, "out of memory building the group table");
        return NULL;
    }
    if (sae_groups_fill(t, sizes, members, msg, msglen)) {
        sae_groups_free(t);
        return NULL;
    }
    return t;
}

sae_groups *sae_groups_copy(const sae_groups *g)
{
    assert(g && g->n >= 1 && g->n_groups >= 1);
    sae_groups *t = sae_groups_alloc(g->n, g->n_groups);
    if (!t)
        return NULL;
    t->max_size = g->max_size;
    memcpy(t->off, g->off, ((size_t)g->n_groups + 1) * sizeof(int));
    memcpy(t->mem, g->mem, (size_t)g->n * sizeof(int));
    memcpy(t->of, g->of, (size_t)g->n * sizeof(int));
    return t;
}

void sae_groups_free(sae_groups *g)
{
    if (!g)
        return;
    free(g->off);
    free(g->mem);
    free(g->of);
    free(g);
}

static uint64_t sae_groups_fnv(uint64_t h, uint32_t v)
{
    for (int b = 0; b < 4; b++) {
        h ^= (v >> (8 * b)) & 0xffu;
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

uint64_t sae_groups_hash(const sae_groups *g)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    assert(g);
    h = sae_groups_fnv(h, (uint32_t)g->n_groups);
    for (int k = 0; k <= g->n_groups; k++)
        h = sae_groups_fnv(h, (uint32_t)g->off[k]);
    for (int k = 0; k < g->n; k++)
        h = sae_groups_fnv(h, (uint32_t)g->mem[k]);
    return h;
}

int sae_groups_equal_sized(const sae_groups *g, int *size)
{
    assert(g && size);
    int s = g->off[1] - g->off[0];
    for (int k = 0; k < g->n; k++)
        if (g->mem[k] != k || g->of[k] != k / s)
            return 0;
    *size = s;
    return g->n % s == 0;
}

/* ---- either kind ---- */

int sae_n_groups(const sae_config *c)
{
    assert(c && (c->groups || c->group_size >= 1));
    return c->groups ? c->groups->n_groups : c->n_latents / c->group_size;
}

int sae_group_len(const sae_config *c, int g)
{
    assert(g >= 0 && g < sae_n_groups(c));
    return c->groups ? c->groups->off[g + 1] - c->groups->off[g] : c->group_size;
}

int sae_group_member(const sae_config *c, int g, int k)
{
    assert(k >= 0 && k < sae_group_len(c, g));
    return c->groups ? c->groups->mem[c->groups->off[g] + k] : g * c->group_size + k;
}

int sae_group_of(const sae_config *c, int i)
{
    assert(c && i >= 0 && i < c->n_latents);
    return c->groups ? c->groups->of[i] : i / c->group_size;
}

int sae_group_max_len(const sae_config *c)
{
    assert(c);
    return c->groups ? c->groups->max_size : c->group_size;
}

/* ---- the table's loops ---- */

void sae_groups_gather(const sae_groups *t, int g, const float *src_row, float *dst)
{
    assert(t && g >= 0 && g < t->n_groups && src_row && dst);
    const int *m = t->mem + t->off[g];
    for (int k = 0; k < t->off[g + 1] - t->off[g]; k++)
        dst[k] = src_row[m[k]];
}

void sae_groups_scatter(const sae_groups *t, int g, const float *src, float *dst_row)
{
    assert(t && g >= 0 && g < t->n_groups && src && dst_row);
    const int *m = t->mem + t->off[g];
    for (int k = 0; k < t->off[g + 1] - t->off[g]; k++)
        dst_row[m[k]] = src[k];
}

/* ---- as JSON lists ---- */

/* Counts v's groups and members; 0, or SAE_GROUPS_MALFORMED / SAE_GROUPS_IMPOSSIBLE with msg. */
static int sae_groups_count(const json_t *v, int *G, long long *total, char *msg, size_t msglen)
{
    size_t g, k;
    json_t *list, *id;
    *total = 0;
    if (!json_is_array(v) || json_array_size(v) == 0) {
        snprintf(msg, msglen, "must be a non-empty list of groups, each a list of latent ids, e.g. [[0,5,9],[1,2]]");
        return SAE_GROUPS_MALFORMED;
    }
    json_array_foreach(v, g, list) {
        if (!json_is_array(list)) {
            snprintf(msg, msglen, "group %zu must be a list of latent ids", g);
            return SAE_GROUPS_MALFORMED;
        }
        json_array_foreach(list, k, id) if (!json_is_integer(id)) {
            snprintf(msg, msglen, "group %zu: member %zu must be an integer latent id", g, k);
            return SAE_GROUPS_MALFORMED;
        }
        *total += (long long)json_array_size(list);
        if (*total > SAE_GROUPS_MAX_LATENTS) {
            snprintf(msg, msglen, "the groups list more than %d latents", SAE_GROUPS_MAX_LATENTS);
            return SAE_GROUPS_IMPOSSIBLE;
        }
    }
    *G = (int)json_array_size(v);
    return 0;
}

/* sizes (G) and members (total) out of v, already counted; ids outside int become -1 (refused later). */
static void sae_groups_flatten(const json_t *v, int *sizes, int *members)
{
    size_t g, k;
    json_t *list, *id;
    int pos = 0;
    json_array_foreach(v, g, list) {
        sizes[g] = (int)json_array_size(list);
        json_array_foreach(list, k, id) {
            json_int_t x = json_integer_value(id);
            members[pos++] = x >= 0 && x <= INT_MAX ? (int)x : -1;
        }
    }
}

int sae_groups_from_json(const json_t *v, int n, sae_groups **out, char *msg, size_t msglen)
{
    int G;
    long long total;
    assert(out && msg && n >= 0);
    *out = NULL;
    int rc = sae_groups_count(v, &G, &total, msg, msglen);
    if (rc) return rc;
    int over = n > 0 ? n : (int)total;
    if (G > over) {
        snprintf(msg, msglen, "every group needs at least one latent (an empty list was given)");
        return SAE_GROUPS_IMPOSSIBLE;
    }
    int *sizes = malloc((size_t)G * sizeof(int)), *members = malloc((size_t)(total ? total : 1) * sizeof(int));
    if (sizes && members) {
        sae_groups_flatten(v, sizes, members);
        *out = sae_groups_create(over, G, sizes, members, msg, msglen);
    }
    rc = !sizes || !members ? -1 : *out ? 0 : SAE_GROUPS_IMPOSSIBLE;
    free(sizes);
    free(members);
    return rc;
}

json_t *sae_groups_to_json(const sae_groups *t)
{
    assert(t);
    json_t *out = json_array();
    for (int g = 0; out && g < t->n_groups; g++) {
        json_t *list = json_array();
        for (int k = t->off[g]; list && k < t->off[g + 1]; k++) json_array_append_new(list, json_integer(t->mem[k]));
        if (!list || json_array_append_new(out, list)) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}
