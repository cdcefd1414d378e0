/* spec_groups — "sae.groups" of a train spec: explicit groups of any sizes,
 * [[0,5,9],[1,2],...] (every latent exactly once), into a group table
 * (include/sae_groups.h) and back. The other form, {"from_job": ID} naming a
 * finished groupspace job, is resolved into lists by the train validator
 * (spec/jobtype.c, which can read that job's groups.json), so stored specs
 * always hold lists. Errors in the spec layer's style (include/spec.h). */
#ifndef SAED_SPEC_GROUPS_H
#define SAED_SPEC_GROUPS_H
#include "sae_groups.h"
#include "spec.h"
#include <jansson.h>

/* Lists v into a new table over n latents (n 0: as many as the lists hold). Returns the table, or
 * NULL after recording an error (400 not lists of integers, 422 not a partition, with the field
 * "sae.groups"). */
sae_groups *spec_groups_parse(const json_t *v, int n, spec_errors *errs);

#endif
