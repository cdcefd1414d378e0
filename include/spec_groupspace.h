/* spec_groupspace — the `groupspace` job body (spec.h's conventions: an
 * unknown field is a 400 naming it, a wrong type 400, an impossible value
 * 422; errors are appended to a spec_errors).
 *
 *   {"type":"groupspace",
 *    "sets": {"toy":{"items":100,"p":0.1}}
 *          | {"items":N,"sets":[[0,1],[2,3],...]}
 *          | {"from_analysis":SAE_ID,"min_jaccard":0.1},
 *    "dim":2,"steps":5000,"batch":16,"lr":0.05,"near":0.1,"far":1.0,
 *    "negatives":8,"repel":1,"weight":"count"|"jaccard"|"npmi",
 *    "link":0.55,"max_group":64,"snapshots":50,"seed":0}
 *
 * The loss and what each knob means: include/groupspace.h. lr decays
 * linearly to 0 over the steps; "link" (default (near + far) / 2) and
 * "max_group" read groups off the final positions; "snapshots" positions
 * are kept while training (evenly spaced, the last at the final step).
 * from_analysis trains on the rows of the SAE's last analyze job, each row's
 * set of firing latents, and only pairs whose Jaccard over those rows is at
 * least min_jaccard attract. negatives 0 (every item outside the set) is
 * allowed up to SPEC_GROUPSPACE_MAX_ALL_NEG items. A set holds at most
 * GROUPSPACE_MAX_SET items (the toy: items x p on average), since one costs
 * |S|^2/2 pairs a step; the snapshots together at most 1 GiB. */
#ifndef SAED_SPEC_GROUPSPACE_H
#define SAED_SPEC_GROUPSPACE_H
#include <stdint.h>
#include <jansson.h>
#include "groupspace.h"
#include "spec.h"

#define SPEC_GROUPSPACE_MAX_STEPS 1000000
#define SPEC_GROUPSPACE_MAX_BATCH 4096
#define SPEC_GROUPSPACE_MAX_SET_ENTRIES 1000000 /* items over all explicit sets */
#define SPEC_GROUPSPACE_MAX_SNAPSHOTS 200
#define SPEC_GROUPSPACE_MAX_SNAPSHOT_BYTES ((int64_t)1 << 30) /* all snapshots' positions on disk */
#define SPEC_GROUPSPACE_MAX_ALL_NEG 4096
#define SPEC_GROUPSPACE_MAX_NEG 1024

enum { SPEC_GROUPSPACE_TOY = 1, SPEC_GROUPSPACE_EXPLICIT, SPEC_GROUPSPACE_ANALYSIS };

/* What the body's ids name, looked up by the caller (from_analysis). */
typedef struct {
    int sae_found, analysis_found;
    int sae_n_latents;
} spec_groupspace_refs;

typedef struct {
    int source;              /* SPEC_GROUPSPACE_* */
    int n_items;
    double toy_p;
    int64_t sae;             /* from_analysis */
    float min_jaccard;
    int64_t n_sets;          /* explicit sets: set s is items[ptr[s] .. ptr[s+1]) */
    int64_t *ptr;            /* (n_sets + 1) or NULL */
    int32_t *items;          /* (ptr[n_sets]) */
    groupspace_config cfg;   /* n_items, dim, near, far, repel, negatives, weight, min_jaccard */
    int steps, batch, snapshots, max_group;
    float lr, link;
    uint64_t seed;
} spec_groupspace;

/* The SAE id of a from_analysis body (0 if absent), for the caller to look up. */
int64_t spec_groupspace_sae(const json_t *body);
/* Validates a body against refs; a new normalised object, or NULL with errs filled. */
json_t *spec_groupspace_normalize(const json_t *body, const spec_groupspace_refs *refs, spec_errors *errs);
/* A stored (normalised) spec back to a struct: 0, or -1 with errs appended to. */
int spec_groupspace_parse(const char *spec_json, spec_groupspace *out, spec_errors *errs);
void spec_groupspace_free(spec_groupspace *g);
/* The steps at which snapshot k of g->snapshots is taken (the last is g->steps). */
int spec_groupspace_snapshot_step(const spec_groupspace *g, int k);

#endif
