/* spec/spec_groupspace.c — the groupspace job body (include/spec_groupspace.h).
 *
 * One reader (spec_groupspace_read) serves both directions: the validator
 * (refs given) and the worker reading the stored normalised spec back (refs
 * NULL: the ids were checked when the job was created). */
#include "spec_groupspace.h"
#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const spec_groupspace_keys[] = { "type", "sets", "dim", "steps", "batch", "lr", "near", "far",
                                                    "negatives", "repel", "weight", "link", "max_group",
                                                    "snapshots", "seed", NULL };
static const char *const spec_groupspace_set_keys[] = { "toy", "items", "sets", "from_analysis", "min_jaccard",
                                                        NULL };
static const char *const spec_groupspace_toy_keys[] = { "items", "p", NULL };
static const char *const spec_groupspace_weights[] = { "count", "jaccard", "npmi" };

#define SPEC_GROUPSPACE_WHAT "one of {\"toy\":{\"items\":100,\"p\":0.1}}, {\"items\":N,\"sets\":[[0,1],...]} or " \
                             "{\"from_analysis\":SAE_ID,\"min_jaccard\":0.1}"

int64_t spec_groupspace_sae(const json_t *body)
{
    json_t *v = json_object_get(json_object_get(body, "sets"), "from_analysis");
    return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
}

/* ---- the three sources ---- */

static void spec_groupspace_toy(const json_t *toy, spec_groupspace *g, spec_errors *errs)
{
    long long x;
    double p;
    if (!json_is_object(toy)) {
        spec_error_add(errs, 400, "sets.toy", "must be an object: {\"items\":100,\"p\":0.1}");
        return;
    }
    spec_check_fields(toy, "sets.toy", spec_groupspace_toy_keys, errs);
    g->source = SPEC_GROUPSPACE_TOY, g->n_items = 100, g->toy_p = 0.1;
    if (spec_get_int(toy, "sets.toy", "items", 2, GROUPSPACE_MAX_ITEMS, &x, errs) == 1) {
        g->n_items = (int)x;
        if (x % 2) spec_error_add(errs, 422, "sets.toy.items", "must be even: items 2q and 2q+1 are pair q");
    }
    if (spec_get_number(toy, "sets.toy", "p", 0, 1, &p, errs) == 1) g->toy_p = p;
    if (g->n_items * g->toy_p > GROUPSPACE_MAX_SET)
        spec_error_add(errs, 422, "sets.toy.p", "a toy set would hold items x p = %.0f items on average, and a set "
                       "costs |S|^2/2 pairs a step; keep items x p <= %d (p <= %.3g for %d items)",
                       g->n_items * g->toy_p, GROUPSPACE_MAX_SET, (double)GROUPSPACE_MAX_SET / g->n_items, g->n_items);
}

/* One explicit set into g (appended), or -1 after an error. */
static int spec_groupspace_one_set(const json_t *set, size_t s, int n_items, spec_groupspace *g, int64_t *cap,
                                   spec_errors *errs)
{
    size_t i;
    json_t *e;
    if (!json_is_array(set)) {
        spec_error_add(errs, 400, "sets.sets", "item %zu must be an array of item ids", s);
        return -1;
    }
    if (json_array_size(set) > GROUPSPACE_MAX_SET) {
        spec_error_add(errs, 422, "sets.sets", "set %zu has %zu items; a set holds at most %d (it costs |S|^2/2 "
                       "pairs a step): split it", s, json_array_size(set), GROUPSPACE_MAX_SET);
        return -1;
    }
    if (g->ptr[g->n_sets] + (int64_t)json_array_size(set) > SPEC_GROUPSPACE_MAX_SET_ENTRIES) {
        spec_error_add(errs, 422, "sets.sets", "more than %d item ids in all; give fewer or smaller sets",
                       SPEC_GROUPSPACE_MAX_SET_ENTRIES);
        return -1;
    }
    json_array_foreach(set, i, e) {
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) >= n_items) {
            spec_error_add(errs, json_is_integer(e) ? 422 : 400, "sets.sets", "set %zu, item %zu: must be an item id "
                           "from 0 to %d (sets.items - 1)", s, i, n_items - 1);
            return -1;
        }
        if (g->ptr[g->n_sets + 1] == *cap) {
            *cap = *cap * 2 + 64;
            int32_t *grown = realloc(g->items, (size_t)*cap * sizeof *grown);
            if (!grown) {
                spec_error_add(errs, 422, "sets.sets", "out of memory");
                return -1;
            }
            g->items = grown;
        }
        g->items[g->ptr[g->n_sets + 1]++] = (int32_t)json_integer_value(e);
    }
    return 0;
}

static void spec_groupspace_explicit(const json_t *sets, const json_t *items, spec_groupspace *g, spec_errors *errs)
{
    g->source = SPEC_GROUPSPACE_EXPLICIT;
    if (!items) {
        spec_error_add(errs, 400, "sets.items", "required with sets.sets: the number of items");
        return;
    }
    if (!json_is_integer(items)) {
        spec_error_add(errs, 400, "sets.items", "must be an integer");
        return;
    }
    if (json_integer_value(items) < 2 || json_integer_value(items) > GROUPSPACE_MAX_ITEMS) {
        spec_error_add(errs, 422, "sets.items", "must be from 2 to %d", GROUPSPACE_MAX_ITEMS);
        return;
    }
    g->n_items = (int)json_integer_value(items);
    if (!json_is_array(sets) || json_array_size(sets) < 1) {
        spec_error_add(errs, json_is_array(sets) ? 422 : 400, "sets.sets", "must be a non-empty array of sets, "
                       "each an array of item ids: [[0,1],[2,3]]");
        return;
    }
    size_t n = json_array_size(sets), s;
    int64_t cap = 0;
    g->ptr = calloc(n + 1, sizeof *g->ptr);
    if (!g->ptr) {
        spec_error_add(errs, 422, "sets.sets", "out of memory");
        return;
    }
    for (s = 0; s < n; s++) {
        g->ptr[s + 1] = g->ptr[s];
        if (spec_groupspace_one_set(json_array_get(sets, s), s, g->n_items, g, &cap, errs)) return;
        g->n_sets++;
    }
}

static void spec_groupspace_analysis(const json_t *src, const spec_groupspace_refs *refs, spec_groupspace *g,
                                     spec_errors *errs)
{
    long long x;
    double j;
    g->source = SPEC_GROUPSPACE_ANALYSIS, g->min_jaccard = 0.1f;
    if (spec_get_int(src, "sets", "from_analysis", 1, LLONG_MAX, &x, errs) == 1) g->sae = x;
    if (spec_get_number(src, "sets", "min_jaccard", 0, 1, &j, errs) == 1) g->min_jaccard = (float)j;
    if (!refs || !g->sae) {
        g->n_items = (int)json_integer_value(json_object_get(src, "items"));
        return;
    }
    if (!refs->sae_found)
        spec_error_add(errs, 422, "sets.from_analysis", "SAE %lld does not exist; GET /v1/saes lists them",
                       (long long)g->sae);
    else if (!refs->analysis_found)
        spec_error_add(errs, 422, "sets.from_analysis", "SAE %lld has no analysis yet; run an analyze job first: "
                       "POST /v1/jobs {\"type\":\"analyze\",\"sae\":%lld}", (long long)g->sae, (long long)g->sae);
    else g->n_items = refs->sae_n_latents;
    json_t *items = json_object_get(src, "items");
    if (items && refs->sae_found && !(json_is_integer(items) && json_integer_value(items) == refs->sae_n_latents))
        spec_error_add(errs, 422, "sets.items", "the items are SAE %lld's %d latents; leave sets.items out",
                       (long long)g->sae, refs->sae_n_latents);
}

static void spec_groupspace_sets(const json_t *body, const spec_groupspace_refs *refs, spec_groupspace *g,
                                 spec_errors *errs)
{
    json_t *src = json_object_get(body, "sets");
    if (!json_is_object(src)) {
        spec_error_add(errs, 400, "sets", "%s: %s", src ? "must be an object" : "required", SPEC_GROUPSPACE_WHAT);
        return;
    }
    spec_check_fields(src, "sets", spec_groupspace_set_keys, errs);
    json_t *toy = json_object_get(src, "toy"), *sets = json_object_get(src, "sets");
    json_t *an = json_object_get(src, "from_analysis");
    if (!!toy + !!sets + !!an != 1) {
        spec_error_add(errs, !toy && !sets && !an ? 400 : 422, "sets", "give exactly %s", SPEC_GROUPSPACE_WHAT);
        return;
    }
    if (!an && json_object_get(src, "min_jaccard"))
        spec_error_add(errs, 422, "sets.min_jaccard", "only applies with from_analysis");
    if (toy && json_object_get(src, "items"))
        spec_error_add(errs, 422, "sets.items", "the toy's size is sets.toy.items");
    if (toy) spec_groupspace_toy(toy, g, errs);
    else if (sets) spec_groupspace_explicit(sets, json_object_get(src, "items"), g, errs);
    else spec_groupspace_analysis(src, refs, g, errs);
}

/* ---- the rest of the body ---- */

static void spec_groupspace_weight(const json_t *body, spec_groupspace *g, spec_errors *errs)
{
    const char *w;
    if (spec_get_string(body, "", "weight", &w, errs) != 1) return;
    for (int i = 0; i < 3; i++)
        if (!strcmp(w, spec_groupspace_weights[i])) {
            g->cfg.weight = (groupspace_weight)i;
            return;
        }
    spec_error_add(errs, 422, "weight", "'%.40s' is not a weighting; use count (the seed's), jaccard or npmi", w);
}

static void spec_groupspace_geometry(const json_t *body, spec_groupspace *g, spec_errors *errs)
{
    double x;
    if (spec_get_number(body, "", "near", 1e-6, 1e6, &x, errs) == 1) g->cfg.near = (float)x;
    if (spec_get_number(body, "", "far", 1e-6, 1e6, &x, errs) == 1) g->cfg.far = (float)x;
    if (!(g->cfg.near < g->cfg.far))
        spec_error_add(errs, 422, "near", "must be less than far (%g): pairs end within near, others beyond far",
                       (double)g->cfg.far);
    g->link = (g->cfg.near + g->cfg.far) / 2;
    if (spec_get_number(body, "", "link", 0, 1e6, &x, errs) == 1) g->link = (float)x;
    if (spec_get_number(body, "", "lr", 1e-9, 10, &x, errs) == 1) g->lr = (float)x;
    if (spec_get_number(body, "", "repel", 0, 1e3, &x, errs) == 1) g->cfg.repel = (float)x;
}

static void spec_groupspace_read(const json_t *body, const spec_groupspace_refs *refs, spec_groupspace *g,
                                 spec_errors *errs)
{
    long long x;
    memset(g, 0, sizeof *g);
    g->cfg.dim = 2, g->cfg.near = 0.1f, g->cfg.far = 1.0f, g->cfg.repel = 1, g->cfg.negatives = 8;
    g->steps = 5000, g->batch = 16, g->lr = 0.05f, g->snapshots = 50, g->max_group = 64;
    spec_check_fields(body, "", spec_groupspace_keys, errs);
    const char *type = NULL;
    if (spec_get_string(body, "", "type", &type, errs) == 1 && strcmp(type, "groupspace"))
        spec_error_add(errs, 422, "type", "expected \"groupspace\"");
    spec_groupspace_sets(body, refs, g, errs);
    if (spec_get_int(body, "", "dim", 1, GROUPSPACE_MAX_DIM, &x, errs) == 1) g->cfg.dim = (int)x;
    if (spec_get_int(body, "", "steps", 1, SPEC_GROUPSPACE_MAX_STEPS, &x, errs) == 1) g->steps = (int)x;
    if (spec_get_int(body, "", "batch", 1, SPEC_GROUPSPACE_MAX_BATCH, &x, errs) == 1) g->batch = (int)x;
    if (spec_get_int(body, "", "negatives", 0, SPEC_GROUPSPACE_MAX_NEG, &x, errs) == 1) g->cfg.negatives = (int)x;
    if (spec_get_int(body, "", "max_group", 1, 1 << 20, &x, errs) == 1) g->max_group = (int)x;
    if (spec_get_int(body, "", "snapshots", 1, SPEC_GROUPSPACE_MAX_SNAPSHOTS, &x, errs) == 1) g->snapshots = (int)x;
    if (spec_get_int(body, "", "seed", 0, LLONG_MAX, &x, errs) == 1) g->seed = (uint64_t)x;
    if (g->snapshots > g->steps) g->snapshots = g->steps;
    if ((double)g->snapshots * g->n_items * g->cfg.dim * 4 > SPEC_GROUPSPACE_MAX_SNAPSHOT_BYTES)
        spec_error_add(errs, 422, "snapshots", "%d snapshots of %d items x %d dims would take %.0f MiB on disk; keep "
                       "snapshots x items x dim x 4 bytes <= %d MiB (e.g. snapshots %d)", g->snapshots, g->n_items,
                       g->cfg.dim, (double)g->snapshots * g->n_items * g->cfg.dim * 4 / 1048576.0,
                       (int)(SPEC_GROUPSPACE_MAX_SNAPSHOT_BYTES >> 20),
                       (int)(SPEC_GROUPSPACE_MAX_SNAPSHOT_BYTES / ((int64_t)g->n_items * g->cfg.dim * 4)) > 0
                           ? (int)(SPEC_GROUPSPACE_MAX_SNAPSHOT_BYTES / ((int64_t)g->n_items * g->cfg.dim * 4)) : 1);
    spec_groupspace_geometry(body, g, errs);
    spec_groupspace_weight(body, g, errs);
    if (g->cfg.negatives == 0 && g->n_items > SPEC_GROUPSPACE_MAX_ALL_NEG)
        spec_error_add(errs, 422, "negatives", "0 (every item outside the set) is for up to %d items; these sets have "
                       "%d: draw some, e.g. 8", SPEC_GROUPSPACE_MAX_ALL_NEG, g->n_items);
    g->cfg.n_items = g->n_items;
    g->cfg.min_jaccard = g->source == SPEC_GROUPSPACE_ANALYSIS ? g->min_jaccard : 0;
}

/* ---- the normalised spec ---- */

static json_t *spec_groupspace_sets_json(const spec_groupspace *g)
{
    if (g->source == SPEC_GROUPSPACE_TOY)
        return json_pack("{s:{s:i,s:o}}", "toy", "items", g->n_items, "p", json_real(g->toy_p));
    if (g->source == SPEC_GROUPSPACE_ANALYSIS)
        return json_pack("{s:I,s:o,s:i}", "from_analysis", (json_int_t)g->sae, "min_jaccard",
                         spec_json_float(g->min_jaccard), "items", g->n_items);
    json_t *sets = json_array();
    for (int64_t s = 0; s < g->n_sets; s++) {
        json_t *set = json_array();
        for (int64_t e = g->ptr[s]; e < g->ptr[s + 1]; e++) json_array_append_new(set, json_integer(g->items[e]));
        json_array_append_new(sets, set);
    }
    return json_pack("{s:i,s:o}", "items", g->n_items, "sets", sets);
}

static json_t *spec_groupspace_json(const spec_groupspace *g)
{
    return json_pack("{s:s,s:o,s:i,s:i,s:i,s:o,s:o,s:o,s:i,s:o,s:s,s:o,s:i,s:i,s:I}", "type", "groupspace", "sets",
                     spec_groupspace_sets_json(g), "dim", g->cfg.dim, "steps", g->steps, "batch", g->batch, "lr",
                     spec_json_float(g->lr), "near", spec_json_float(g->cfg.near), "far",
                     spec_json_float(g->cfg.far), "negatives", g->cfg.negatives, "repel",
                     spec_json_float(g->cfg.repel), "weight", spec_groupspace_weights[g->cfg.weight], "link",
                     spec_json_float(g->link), "max_group", g->max_group, "snapshots", g->snapshots, "seed",
                     (json_int_t)g->seed);
}

json_t *spec_groupspace_normalize(const json_t *body, const spec_groupspace_refs *refs, spec_errors *errs)
{
    assert(body && refs && errs);
    spec_groupspace g;
    spec_groupspace_read(body, refs, &g, errs);
    json_t *out = errs->n ? NULL : spec_groupspace_json(&g);
    spec_groupspace_free(&g);
    return out;
}

int spec_groupspace_parse(const char *spec_json, spec_groupspace *out, spec_errors *errs)
{
    assert(out && errs);
    int n_before = errs->n;
    memset(out, 0, sizeof *out);
    json_t *j = spec_stored(spec_json, errs);
    if (!j) return -1;
    spec_groupspace_read(j, NULL, out, errs);
    json_decref(j);
    if (errs->n == n_before && out->n_items >= 2) return 0;
    if (errs->n == n_before) spec_error_add(errs, 422, "sets", "the stored spec names no items");
    spec_groupspace_free(out);
    return -1;
}

void spec_groupspace_free(spec_groupspace *g)
{
    free(g->ptr);
    free(g->items);
    g->ptr = NULL, g->items = NULL, g->n_sets = 0;
}

int spec_groupspace_snapshot_step(const spec_groupspace *g, int k)
{
    assert(g && k >= 0 && k < g->snapshots);
    return (int)((int64_t)g->steps * (k + 1) / g->snapshots);
}
