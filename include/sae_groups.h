/* sae_groups — groups of any size (learned groups, issue 14).
 *
 * An SAE's latents are split into groups. The fast, common case is
 * contiguous groups of one size s (sae_config.group_size; group g = latents
 * g*s .. g*s+s-1) and needs no table. Groups of any sizes are a table: the
 * members of group g are mem[off[g] .. off[g+1]), latent ids in the SAE's own
 * numbering (the user's: nothing is renumbered, so decoder row i is latent i
 * whatever its group), and of[i] is latent i's group. Every latent is in
 * exactly one group. sae_config.groups points at such a table (group_size is
 * then 0); the table is immutable once built and owned by whoever built it
 * (sae_params_alloc takes its own copy, so a config copied out of
 * sae_params stays valid while the params live).
 *
 * The accessors below answer for both cases, so code outside the hot loops
 * (analyses, the API, checks) never tests which it has; the pass's hot loops
 * keep the contiguous case as it was and take the table in a branch of
 * their own (core/sae_groups.c has those loops). */
#ifndef SAED_SAE_GROUPS_H
#define SAED_SAE_GROUPS_H
#include "sae.h"
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sae_groups {
    int n;        /* latents */
    int n_groups; /* G */
    int max_size; /* the largest group's size */
    int *off;     /* (G + 1) group g's members start at mem[off[g]] */
    int *mem;     /* (n) latents group by group, ascending within a group */
    int *of;      /* (n) latent -> its group */
} sae_groups;

/* The most latents a table may have, and the most in one group (the pass gathers a group's
 * values into buffers of that many floats on the stack). */
#define SAE_GROUPS_MAX_LATENTS (1 << 24)
#define SAE_GROUPS_MAX_SIZE 256

/* Builds a table of G groups over latents 0 .. n-1 from sizes (G) and members (sum of sizes) listed
 * group by group. Every latent must appear exactly once. NULL with a message that says what to fix
 * in msg (e.g. "latent 7 is in groups 2 and 5"); NULL with "out of memory" likewise. */
sae_groups *sae_groups_create(int n, int G, const int *sizes, const int *members, char *msg, size_t msglen);
sae_groups *sae_groups_copy(const sae_groups *g); /* NULL: out of memory */
void sae_groups_free(sae_groups *g);              /* NULL is fine */
/* A fingerprint of the table (FNV-1a over sizes and members), for checkpoints to agree on. */
uint64_t sae_groups_hash(const sae_groups *g);
/* 1 if the table is contiguous groups of one size (then it is group_size in disguise). */
int sae_groups_equal_sized(const sae_groups *g, int *size);

/* ---- as JSON: [[0,5,9],[1,2],...], members of each group (any order in, ascending out) ---- */

enum { SAE_GROUPS_MALFORMED = 1, SAE_GROUPS_IMPOSSIBLE = 2 };
/* The lists v into *out, a new table over n latents (n 0: as many as the lists hold). 0; or
 * SAE_GROUPS_MALFORMED (not lists of integers) or SAE_GROUPS_IMPOSSIBLE (not a partition of the
 * latents, a group too large) with what to fix in msg; -1 out of memory. */
int sae_groups_from_json(const json_t *v, int n, sae_groups **out, char *msg, size_t msglen);
json_t *sae_groups_to_json(const sae_groups *t); /* NULL: out of memory */

/* ---- a configuration's groups, whichever kind it has (c->groups, or contiguous of group_size) ---- */

int sae_n_groups(const sae_config *c);               /* G */
int sae_group_len(const sae_config *c, int g);       /* group g's size (0 <= g < G) */
int sae_group_member(const sae_config *c, int g, int k); /* its k-th latent (0 <= k < sae_group_len) */
int sae_group_of(const sae_config *c, int i);        /* latent i's group (0 <= i < n) */
int sae_group_max_len(const sae_config *c);          /* the largest group's size */

/* ---- the table's branch of the pass's loops (core/sae_groups.c); p (B, n) row-major arrays ---- */

/* dst (len) = src_row's values at group g's members; sae_groups_scatter the other way. */
void sae_groups_gather(const sae_groups *t, int g, const float *src_row /* (n) */, float *dst /* (len) */);
void sae_groups_scatter(const sae_groups *t, int g, const float *src /* (len) */, float *dst_row /* (n) */);

#endif
