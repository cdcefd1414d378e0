/* groupspace — learned groups: a position for each of N items in a small
 * D-dimensional space, trained from sets of items that co-occur, and groups
 * read off the positions (the `groupspace` job; API.md "Learned groups").
 * Pure numerics: no I/O, no threads, no hidden state.
 *
 * The loss of one set S (the seed's thresholded attraction and repulsion):
 *
 *   L(S) = sum_{i<j in S} w_ij relu(|x_i - x_j| - near)
 *        + repel * sum_{i in S} sum_{k in N_i} relu(far - |x_i - x_k|)
 *
 * N_i is `negatives` items drawn uniformly from outside S for member i
 * (negatives 0: every item outside S), each with weight `repel`, as
 * word2vec and UMAP do. w_ij weighs a co-occurrence (groupspace_weight):
 * 1 for every co-occurrence (COUNT, the seed's), or how far the pair's
 * co-occurrence exceeds chance, from statistics over a corpus of sets
 * (groupspace_cooc): JACCARD c_ij / (n_i + n_j - c_ij), or NPMI, the
 * normalised pointwise mutual information log(c_ij M / (n_i n_j)) /
 * -log(c_ij / M) clipped at 0 (1 for items that only ever occur together,
 * 0 for independent ones). A pair whose Jaccard is below min_jaccard does
 * not attract at all. Both terms are hinges, so a pair stops moving once it
 * is within near (attraction) or beyond far (repulsion); the gradients are
 * unit vectors, and SGD updates the members of each set in turn with lr,
 * which the caller decays.
 *
 * Groups are read off the positions as single-linkage components at
 * distance `link` (items closer than link, directly or through a chain, are
 * one group); a component larger than max_size is halved along its widest
 * coordinate until every part fits. Every item is in exactly one group.
 *
 * Errors: functions return 0 or a negative GROUPSPACE_E* code
 * (groupspace_strerror says what to do). Preconditions the caller promises
 * (sizes that agree, indices in range) are asserted. */
#ifndef SAED_GROUPSPACE_H
#define SAED_GROUPSPACE_H
#include <stddef.h>
#include <stdint.h>
#include "rng.h"

enum {
    GROUPSPACE_OK = 0,
    GROUPSPACE_ENOMEM = -1,   /* allocation failed */
    GROUPSPACE_EINVAL = -2,   /* an item id out of range, a size out of bounds */
    GROUPSPACE_ETOOBIG = -3,  /* the corpus has more item pairs than GROUPSPACE_MAX_PAIRS */
};
const char *groupspace_strerror(int code);

#define GROUPSPACE_MAX_DIM 16
#define GROUPSPACE_MAX_ITEMS (1 << 20)
#define GROUPSPACE_MAX_PAIRS ((int64_t)1 << 27) /* co-occurring pairs counted in one corpus (sum of |S|^2/2) */
#define GROUPSPACE_MAX_SET 1024 /* items in one set (the toy: on average); a set costs |S|^2 / 2 pairs a step */

typedef enum { GROUPSPACE_WEIGHT_COUNT = 0, GROUPSPACE_WEIGHT_JACCARD, GROUPSPACE_WEIGHT_NPMI } groupspace_weight;

/* A corpus of sets: set s is items[ptr[s] .. ptr[s+1]-1], increasing, each < n_items. */
typedef struct {
    int n_items;
    int64_t n_sets;
    int64_t *ptr;     /* (n_sets + 1) */
    int32_t *items;   /* (ptr[n_sets]) */
} groupspace_sets;

/* Builds sets from a list of lists given as (ptr, items) copies, sorting each set and dropping repeated
 * items; an id outside [0, n_items) is GROUPSPACE_EINVAL. */
int groupspace_sets_build(groupspace_sets *out, int n_items, int64_t n_sets, const int64_t *ptr /* (n_sets+1) */,
                          const int32_t *items /* (ptr[n_sets]) */);
void groupspace_sets_free(groupspace_sets *s);

/* One set of the seed's toy into out (n_items), its size returned: items 2q and 2q+1 form pair q; each
 * pair occurs independently with probability p, and p 0 gives exactly one pair, uniformly. A draw with no
 * pair is redrawn, so sets are never empty. n_items even, >= 2. */
int groupspace_toy_set(rng_t *r, int n_items, double p, int32_t *out);
/* A corpus of n_sets toy sets (the statistics' sample). */
int groupspace_toy_corpus(groupspace_sets *out, int n_items, double p, int64_t n_sets, uint64_t seed);

/* Co-occurrence statistics of a corpus: per-item counts n_i and pair counts c_ij in a hash table. */
typedef struct groupspace_cooc groupspace_cooc;
int groupspace_cooc_build(const groupspace_sets *s, groupspace_cooc **out);
void groupspace_cooc_free(groupspace_cooc *c);
/* c_ij (i != j; order does not matter). */
int64_t groupspace_cooc_pair(const groupspace_cooc *c, int i, int j);
/* The attraction weight of pair (i, j) under kind (COUNT: 1), and its Jaccard. */
float groupspace_cooc_weight(const groupspace_cooc *c, groupspace_weight kind, int i, int j);
float groupspace_cooc_jaccard(const groupspace_cooc *c, int i, int j);

typedef struct {
    int n_items, dim;
    float near, far;
    float repel;        /* weight of each repelled pair */
    int negatives;      /* per member; 0: every item outside the set */
    groupspace_weight weight;
    float min_jaccard;  /* pairs below it do not attract (0: all do) */
} groupspace_config;

/* Positions drawn uniformly in a cube of side far * N^(1/D) (so about one item per far^D of volume). */
void groupspace_init(const groupspace_config *cfg, rng_t *r, float *pos /* (N, D) */);

/* Scratch for one set: its negatives and gradients, grown as needed. */
typedef struct {
    uint8_t *in_set;    /* (N) membership marks, zero between calls */
    int32_t *neg;       /* (n, m) member i's negatives in row i */
    float *g_set;       /* (n, D) */
    float *g_neg;       /* (n * m, D) */
    int64_t cap_neg;    /* entries neg and g_neg hold (n * m) */
    int cap_set;        /* rows g_set holds */
} groupspace_work;
int groupspace_work_init(groupspace_work *w, int n_items);
void groupspace_work_free(groupspace_work *w);

/* The terms of L(S) (for the loss curve and the progress figures). */
typedef struct {
    double attract, repel;  /* the two sums of L(S) */
    int64_t pairs, pairs_far, negs, negs_near; /* attracting pairs and those beyond near; repelled and within far */
} groupspace_terms;

/* m, the negatives per member of a set of n (N - n when cfg->negatives is 0). */
int groupspace_neg_count(const groupspace_config *cfg, int n);
/* Draws each member's negatives for S = set (n, increasing, distinct) into w->neg (n, m): uniform over the
 * items outside S, with replacement (all of them, in order, when cfg->negatives is 0). */
int groupspace_draw_negatives(const groupspace_config *cfg, const int32_t *set, int n, rng_t *r,
                              groupspace_work *w);
/* L(S) with the negatives in w->neg: the terms added to *t and the gradients with respect to the members'
 * positions into w->g_set (n, D) and to the negatives' into w->g_neg (n * m, D). cooc may be NULL when
 * cfg->weight is COUNT and min_jaccard 0. At distance 0 a hinge's gradient is taken along the first axis. */
void groupspace_loss_grad(const groupspace_config *cfg, const groupspace_cooc *cooc, const float *pos /* (N, D) */,
                          const int32_t *set, int n, groupspace_work *w, groupspace_terms *t);
/* One SGD update for one set: draw negatives, loss and gradient, then every position moves by -lr times
 * its gradient. */
int groupspace_set_step(const groupspace_config *cfg, const groupspace_cooc *cooc, float *pos, const int32_t *set,
                        int n, rng_t *r, float lr, groupspace_work *w, groupspace_terms *t);

/* Where training sets come from: drawn uniformly from a corpus, or from the toy (corpus NULL). */
typedef struct {
    const groupspace_sets *corpus;
    double toy_p;       /* the toy's pair probability (groupspace_toy_set) */
} groupspace_source;
/* One training step: batch sets drawn from src, each an SGD update with lr (groupspace_set_step); the
 * terms of all of them added to *t. setbuf: (N) scratch. Empty sets are skipped. */
int groupspace_batch(const groupspace_config *cfg, const groupspace_cooc *cooc, const groupspace_source *src,
                     float *pos /* (N, D) */, int batch, rng_t *r, float lr, groupspace_work *w,
                     int32_t *setbuf /* (N) */, groupspace_terms *t);

/* ---- reading the positions (core/groupspace_read.c) ---- */

/* Single-linkage components at distance link, parts of more than max_size items halved along their widest
 * coordinate: group id per item into group (N), ids 0 .. *n_groups-1 numbered by their smallest item. */
int groupspace_groups(const float *pos /* (N, D) */, int n, int dim, float link, int max_size,
                      int32_t *group /* (N) */, int *n_groups);

/* Pairs against a known grouping truth (N): true pairs (same truth id) within near, other pairs at least
 * far apart. Exact over all pairs when N <= 4096, else over max_pairs sampled pairs from r. */
typedef struct {
    int64_t true_pairs, true_near;
    int64_t other_pairs, other_far;
    double true_mean_dist;   /* mean distance of the true pairs */
} groupspace_pairs;
int groupspace_pair_stats(const float *pos, int n, int dim, const int32_t *truth, float near, float far,
                          int64_t max_pairs, rng_t *r, groupspace_pairs *out);

/* The cloud's radius profile: distances of the items from their centroid. A ring has a small spread
 * (cv = std / mean) and few items near the centre (inner_frac: within half the mean radius); a uniform
 * disk has cv ~0.35 and inner_frac 0.25. hist: counts of radius / max radius in bins equal bins. */
typedef struct {
    double mean, std, cv, max, inner_frac;
} groupspace_radius;
void groupspace_radius_profile(const float *pos, int n, int dim, int bins, int64_t *hist /* (bins) */,
                               groupspace_radius *out);

#endif
