/* groupspace.c — sets, the toy, co-occurrence statistics and the SGD step of
 * the group space (include/groupspace.h has the loss and the conventions).
 *
 * Pair counts live in an open-addressing hash table keyed by i << 32 | j
 * (i < j, so the key is never 0, which marks an empty slot), grown at half
 * load: a corpus of rows with ~8 active latents each has ~28 pairs per row,
 * far fewer distinct ones than an N x N matrix would hold. */
#include "groupspace.h"
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *groupspace_strerror(int code)
{
    switch (code) {
    case GROUPSPACE_OK: return "ok";
    case GROUPSPACE_ENOMEM: return "out of memory: use fewer items or sets";
    case GROUPSPACE_EINVAL: return "an item id or a size is out of range";
    case GROUPSPACE_ETOOBIG: return "the sets hold more item pairs than can be counted; use smaller or fewer sets";
    default: return "unknown groupspace error";
    }
}

/* ---- sets ---- */

static int groupspace_cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int groupspace_sets_build(groupspace_sets *out, int n_items, int64_t n_sets, const int64_t *ptr,
                          const int32_t *items)
{
    assert(out && ptr && n_sets >= 0 && ptr[0] == 0);
    memset(out, 0, sizeof *out);
    if (n_items < 1 || n_items > GROUPSPACE_MAX_ITEMS) return GROUPSPACE_EINVAL;
    int64_t total = ptr[n_sets];
    out->ptr = malloc((size_t)(n_sets + 1) * sizeof *out->ptr);
    out->items = malloc((size_t)(total > 0 ? total : 1) * sizeof *out->items);
    if (!out->ptr || !out->items) {
        groupspace_sets_free(out);
        return GROUPSPACE_ENOMEM;
    }
    out->n_items = n_items, out->n_sets = n_sets;
    int64_t len = 0;
    out->ptr[0] = 0;
    for (int64_t s = 0; s < n_sets; s++) {
        int64_t a = ptr[s], b = ptr[s + 1], start = len;
        assert(a <= b);
        for (int64_t e = a; e < b; e++) {
            if (items[e] < 0 || items[e] >= n_items) {
                groupspace_sets_free(out);
                return GROUPSPACE_EINVAL;
            }
            out->items[len++] = items[e];
        }
        qsort(out->items + start, (size_t)(len - start), sizeof(int32_t), groupspace_cmp_i32);
        int64_t w = start;
        for (int64_t e = start; e < len; e++)
            if (e == start || out->items[e] != out->items[w - 1]) out->items[w++] = out->items[e];
        len = w;
        out->ptr[s + 1] = len;
    }
    return GROUPSPACE_OK;
}

void groupspace_sets_free(groupspace_sets *s)
{
    if (!s) return;
    free(s->ptr);
    free(s->items);
    memset(s, 0, sizeof *s);
}

int groupspace_toy_set(rng_t *r, int n_items, double p, int32_t *out)
{
    assert(r && out && n_items >= 2 && n_items % 2 == 0 && p >= 0 && p <= 1);
    int pairs = n_items / 2, n = 0;
    if (p <= 0) {
        int q = (int)rng_below(r, (uint64_t)pairs);
        out[0] = 2 * q, out[1] = 2 * q + 1;
        return 2;
    }
    while (n == 0)
        for (int q = 0; q < pairs; q++)
            if (rng_uniform(r) < p) out[n++] = 2 * q, out[n++] = 2 * q + 1;
    return n;
}

int groupspace_toy_corpus(groupspace_sets *out, int n_items, double p, int64_t n_sets, uint64_t seed)
{
    assert(out && n_sets >= 1);
    memset(out, 0, sizeof *out);
    if (n_items < 2 || n_items % 2 || n_items > GROUPSPACE_MAX_ITEMS) return GROUPSPACE_EINVAL;
    int64_t cap = n_sets * 4;
    int32_t *buf = malloc((size_t)n_items * sizeof *buf);
    out->ptr = malloc((size_t)(n_sets + 1) * sizeof *out->ptr);
    out->items = malloc((size_t)cap * sizeof *out->items);
    if (!buf || !out->ptr || !out->items) goto oom;
    rng_t r;
    rng_seed(&r, seed, 0x70795f636f727075ULL);
    out->n_items = n_items, out->n_sets = n_sets, out->ptr[0] = 0;
    for (int64_t s = 0; s < n_sets; s++) {
        int n = groupspace_toy_set(&r, n_items, p, buf);
        if (out->ptr[s] + n > cap) {
            cap = 2 * cap + n;
            int32_t *grown = realloc(out->items, (size_t)cap * sizeof *grown);
            if (!grown) goto oom;
            out->items = grown;
        }
        memcpy(out->items + out->ptr[s], buf, (size_t)n * sizeof *buf);
        out->ptr[s + 1] = out->ptr[s] + n;
    }
    free(buf);
    return GROUPSPACE_OK;
oom:
    free(buf);
    groupspace_sets_free(out);
    return GROUPSPACE_ENOMEM;
}

/* ---- co-occurrence ---- */

struct groupspace_cooc {
    int n_items;
    int64_t n_sets;     /* M */
    int64_t *count;     /* (N) sets holding item i */
    uint64_t *key;      /* (cap) i << 32 | j, i < j; 0 = empty */
    uint32_t *val;      /* (cap) c_ij */
    int64_t cap, used;  /* cap a power of two */
};

static inline uint64_t groupspace_key(int i, int j)
{
    return i < j ? (uint64_t)i << 32 | (uint32_t)j : (uint64_t)j << 32 | (uint32_t)i;
}

static inline int64_t groupspace_slot(const groupspace_cooc *c, uint64_t key)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ULL;
    int64_t m = c->cap - 1, s = (int64_t)(h >> 17) & m;
    while (c->key[s] && c->key[s] != key) s = (s + 1) & m;
    return s;
}

static int groupspace_cooc_grow(groupspace_cooc *c)
{
    int64_t old_cap = c->cap, cap = old_cap ? 2 * old_cap : 1024;
    uint64_t *old_key = c->key;
    uint32_t *old_val = c->val;
    c->key = calloc((size_t)cap, sizeof *c->key);
    c->val = calloc((size_t)cap, sizeof *c->val);
    if (!c->key || !c->val) {
        free(c->key), free(c->val);
        c->key = old_key, c->val = old_val;
        return GROUPSPACE_ENOMEM;
    }
    c->cap = cap;
    for (int64_t s = 0; s < old_cap; s++)
        if (old_key[s]) {
            int64_t t = groupspace_slot(c, old_key[s]);
            c->key[t] = old_key[s], c->val[t] = old_val[s];
        }
    free(old_key);
    free(old_val);
    return GROUPSPACE_OK;
}

static int groupspace_cooc_add(groupspace_cooc *c, uint64_t key)
{
    if (2 * (c->used + 1) > c->cap) {
        int rc = groupspace_cooc_grow(c);
        if (rc) return rc;
    }
    int64_t s = groupspace_slot(c, key);
    if (!c->key[s]) c->key[s] = key, c->used++;
    c->val[s]++;
    return GROUPSPACE_OK;
}

int groupspace_cooc_build(const groupspace_sets *s, groupspace_cooc **out)
{
    assert(s && out && s->n_items >= 1);
    *out = NULL;
    int64_t pairs = 0;
    for (int64_t k = 0; k < s->n_sets; k++) {
        int64_t n = s->ptr[k + 1] - s->ptr[k];
        pairs += n * (n - 1) / 2;
        if (pairs > GROUPSPACE_MAX_PAIRS) return GROUPSPACE_ETOOBIG;
    }
    groupspace_cooc *c = calloc(1, sizeof *c);
    if (!c || !(c->count = calloc((size_t)s->n_items, sizeof *c->count))) goto oom;
    c->n_items = s->n_items, c->n_sets = s->n_sets;
    for (int64_t k = 0; k < s->n_sets; k++) {
        const int32_t *it = s->items + s->ptr[k];
        int n = (int)(s->ptr[k + 1] - s->ptr[k]);
        for (int a = 0; a < n; a++) {
            c->count[it[a]]++;
            for (int b = a + 1; b < n; b++)
                if (groupspace_cooc_add(c, groupspace_key(it[a], it[b]))) goto oom;
        }
    }
    if (!c->cap && groupspace_cooc_grow(c)) goto oom;
    *out = c;
    return GROUPSPACE_OK;
oom:
    groupspace_cooc_free(c);
    return GROUPSPACE_ENOMEM;
}

void groupspace_cooc_free(groupspace_cooc *c)
{
    if (!c) return;
    free(c->count);
    free(c->key);
    free(c->val);
    free(c);
}

int64_t groupspace_cooc_pair(const groupspace_cooc *c, int i, int j)
{
    assert(c && i >= 0 && j >= 0 && i < c->n_items && j < c->n_items && i != j);
    int64_t s = groupspace_slot(c, groupspace_key(i, j));
    return c->key[s] ? c->val[s] : 0;
}

float groupspace_cooc_jaccard(const groupspace_cooc *c, int i, int j)
{
    int64_t cij = groupspace_cooc_pair(c, i, j), u = c->count[i] + c->count[j] - cij;
    return u > 0 ? (float)((double)cij / (double)u) : 0.0f;
}

float groupspace_cooc_weight(const groupspace_cooc *c, groupspace_weight kind, int i, int j)
{
    if (kind == GROUPSPACE_WEIGHT_COUNT) return 1.0f;
    if (kind == GROUPSPACE_WEIGHT_JACCARD) return groupspace_cooc_jaccard(c, i, j);
    assert(kind == GROUPSPACE_WEIGHT_NPMI);
    double cij = (double)groupspace_cooc_pair(c, i, j), m = (double)c->n_sets;
    if (cij <= 0) return 0.0f;
    if (cij >= m) return 1.0f;
    double pmi = log(cij * m / ((double)c->count[i] * (double)c->count[j]));
    double npmi = pmi / -log(cij / m);
    return npmi > 0 ? (float)(npmi < 1 ? npmi : 1) : 0.0f;
}

/* ---- positions and one step ---- */

void groupspace_init(const groupspace_config *cfg, rng_t *r, float *pos)
{
    assert(cfg && r && pos && cfg->n_items >= 1 && cfg->dim >= 1 && cfg->dim <= GROUPSPACE_MAX_DIM);
    double side = cfg->far * pow((double)cfg->n_items, 1.0 / cfg->dim);
    for (int64_t e = 0; e < (int64_t)cfg->n_items * cfg->dim; e++)
        pos[e] = (float)((rng_uniform(r) - 0.5) * side);
}

int groupspace_work_init(groupspace_work *w, int n_items)
{
    assert(w && n_items >= 1);
    memset(w, 0, sizeof *w);
    w->in_set = calloc((size_t)n_items, 1);
    return w->in_set ? GROUPSPACE_OK : GROUPSPACE_ENOMEM;
}

void groupspace_work_free(groupspace_work *w)
{
    if (!w) return;
    free(w->in_set);
    free(w->neg);
    free(w->g_set);
    free(w->g_neg);
    memset(w, 0, sizeof *w);
}

int groupspace_neg_count(const groupspace_config *cfg, int n)
{
    assert(cfg && n >= 0 && n <= cfg->n_items);
    return cfg->negatives > 0 ? (n < cfg->n_items ? cfg->negatives : 0) : cfg->n_items - n;
}

/* Room for a set of n with m negatives per member. */
static int groupspace_work_fit(groupspace_work *w, int n, int m, int dim)
{
    if (n > w->cap_set) {
        float *g = realloc(w->g_set, (size_t)n * (size_t)dim * sizeof *g);
        if (!g) return GROUPSPACE_ENOMEM;
        w->g_set = g, w->cap_set = n;
    }
    int64_t e = (int64_t)n * m;
    if (e > w->cap_neg) {
        int32_t *neg = realloc(w->neg, (size_t)e * sizeof *neg);
        if (neg) w->neg = neg;
        float *g = realloc(w->g_neg, (size_t)e * (size_t)dim * sizeof *g);
        if (!neg || !g) return GROUPSPACE_ENOMEM;
        w->g_neg = g, w->cap_neg = e;
    }
    return GROUPSPACE_OK;
}

int groupspace_draw_negatives(const groupspace_config *cfg, const int32_t *set, int n, rng_t *r,
                              groupspace_work *w)
{
    assert(cfg && set && r && w && n >= 1 && n <= cfg->n_items);
    int m = groupspace_neg_count(cfg, n);
    if (groupspace_work_fit(w, n, m, cfg->dim)) return GROUPSPACE_ENOMEM;
    for (int a = 0; a < n; a++) {
        assert(set[a] >= 0 && set[a] < cfg->n_items && (a == 0 || set[a] > set[a - 1]));
        w->in_set[set[a]] = 1;
    }
    for (int a = 0; a < n; a++) {
        int32_t *row = w->neg + (int64_t)a * m;
        if (cfg->negatives > 0) {
            for (int t = 0; t < m; t++) {
                int32_t k;
                do k = (int32_t)rng_below(r, (uint64_t)cfg->n_items);
                while (w->in_set[k]);
                row[t] = k;
            }
        } else {
            int t = 0;
            for (int32_t k = 0; k < cfg->n_items; k++)
                if (!w->in_set[k]) row[t++] = k;
        }
    }
    for (int a = 0; a < n; a++) w->in_set[set[a]] = 0;
    return GROUPSPACE_OK;
}

/* |x_a - x_b| and the unit vector (x_a - x_b) / d into u (the first axis at d = 0). */
static float groupspace_dir(const float *xa, const float *xb, int dim, float *u)
{
    double d2 = 0;
    for (int c = 0; c < dim; c++) {
        u[c] = xa[c] - xb[c];
        d2 += (double)u[c] * u[c];
    }
    float d = (float)sqrt(d2);
    if (d > 0) {
        for (int c = 0; c < dim; c++) u[c] /= d;
    } else {
        for (int c = 0; c < dim; c++) u[c] = c == 0;
    }
    return d;
}

void groupspace_loss_grad(const groupspace_config *cfg, const groupspace_cooc *cooc, const float *pos,
                          const int32_t *set, int n, groupspace_work *w, groupspace_terms *t)
{
    assert(cfg && pos && set && w && t && n >= 1 && w->cap_set >= n);
    assert(cooc || (cfg->weight == GROUPSPACE_WEIGHT_COUNT && cfg->min_jaccard <= 0));
    const int D = cfg->dim, m = groupspace_neg_count(cfg, n);
    float u[GROUPSPACE_MAX_DIM];
    memset(w->g_set, 0, (size_t)n * (size_t)D * sizeof(float));
    memset(w->g_neg, 0, (size_t)n * (size_t)m * (size_t)D * sizeof(float));
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++) {
            int i = set[a], j = set[b];
            if (cfg->min_jaccard > 0 && groupspace_cooc_jaccard(cooc, i, j) < cfg->min_jaccard) continue;
            float wij = cooc ? groupspace_cooc_weight(cooc, cfg->weight, i, j) : 1.0f;
            float d = groupspace_dir(pos + (int64_t)i * D, pos + (int64_t)j * D, D, u);
            t->pairs++;
            if (d <= cfg->near || wij <= 0) continue;
            t->pairs_far++;
            t->attract += (double)wij * (d - cfg->near);
            for (int c = 0; c < D; c++) {
                w->g_set[a * D + c] += wij * u[c];
                w->g_set[b * D + c] -= wij * u[c];
            }
        }
    for (int a = 0; a < n; a++)
        for (int q = 0; q < m; q++) {
            int64_t e = (int64_t)a * m + q;
            float d = groupspace_dir(pos + (int64_t)set[a] * D, pos + (int64_t)w->neg[e] * D, D, u);
            t->negs++;
            if (d >= cfg->far) continue;
            t->negs_near++;
            t->repel += (double)cfg->repel * (cfg->far - d);
            for (int c = 0; c < D; c++) {
                w->g_set[a * D + c] -= cfg->repel * u[c];
                w->g_neg[e * D + c] += cfg->repel * u[c];
            }
        }
}

int groupspace_set_step(const groupspace_config *cfg, const groupspace_cooc *cooc, float *pos, const int32_t *set,
                        int n, rng_t *r, float lr, groupspace_work *w, groupspace_terms *t)
{
    assert(lr >= 0);
    int rc = groupspace_draw_negatives(cfg, set, n, r, w);
    if (rc) return rc;
    groupspace_loss_grad(cfg, cooc, pos, set, n, w, t);
    const int D = cfg->dim, m = groupspace_neg_count(cfg, n);
    for (int a = 0; a < n; a++)
        for (int c = 0; c < D; c++) pos[(int64_t)set[a] * D + c] -= lr * w->g_set[a * D + c];
    for (int64_t e = 0; e < (int64_t)n * m; e++)
        for (int c = 0; c < D; c++) pos[(int64_t)w->neg[e] * D + c] -= lr * w->g_neg[e * D + c];
    return GROUPSPACE_OK;
}

int groupspace_batch(const groupspace_config *cfg, const groupspace_cooc *cooc, const groupspace_source *src,
                     float *pos, int batch, rng_t *r, float lr, groupspace_work *w, int32_t *setbuf,
                     groupspace_terms *t)
{
    assert(cfg && src && pos && r && w && setbuf && t && batch >= 1);
    assert(!src->corpus || src->corpus->n_items == cfg->n_items);
    for (int b = 0; b < batch; b++) {
        const int32_t *set = setbuf;
        int n;
        if (src->corpus) {
            int64_t s = (int64_t)rng_below(r, (uint64_t)src->corpus->n_sets);
            set = src->corpus->items + src->corpus->ptr[s];
            n = (int)(src->corpus->ptr[s + 1] - src->corpus->ptr[s]);
        } else {
            n = groupspace_toy_set(r, cfg->n_items, src->toy_p, setbuf);
        }
        if (n == 0) continue;
        int rc = groupspace_set_step(cfg, cooc, pos, set, n, r, lr, w, t);
        if (rc) return rc;
    }
    return GROUPSPACE_OK;
}
