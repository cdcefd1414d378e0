/* spec — request bodies to typed configurations (spec/spec.c), the bottom
 * of the job-spec contract that api/ and daemon/ share.
 *
 * A job request is validated by its type's validator (jobtype.h), which
 * calls spec_normalize_train() here: every field is checked (an unknown
 * field is an error naming it), defaults are filled in and the normalised
 * spec that is stored with the job comes back. Workers turn that stored
 * spec back into typed configurations with spec_train_configs().
 * Errors are the spec layer's one style: (field, message) pairs with an
 * HTTP status: 400 for wrong types/unknown fields, 422 for well-formed but
 * impossible, 500 when a validator could not read the store. */
#ifndef SAED_SPEC_H
#define SAED_SPEC_H
#include <stddef.h>
#include <jansson.h>
#include "sae.h"
#include "train.h"
#include "circles.h"

#define SPEC_MAX_ERRORS 16

typedef struct {
    int status;           /* 0 if no error, else 400 or 422 (400 wins), or 500 (wins over both); the
                           * API reuses it for one-field problems of any 4xx/5xx status */
    int n;
    struct { char field[64]; char message[256]; } e[SPEC_MAX_ERRORS];
} spec_errors;

void spec_error_add(spec_errors *errs, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Validates a train job body {"type","dataset","sae","train"[,"init"]} against the
 * dataset's dim (dataset existence is the caller's check). Returns a new
 * normalised JSON object, or NULL with errs filled. max_bytes: memory limit. */
json_t *spec_normalize_train(const json_t *body, int dim, size_t max_bytes, spec_errors *errs);
/* Validates circles params (defaults filled in); returns a new object or NULL. */
json_t *spec_normalize_circles(const json_t *params, spec_errors *errs);

/* Notes on the two functions above (additive to the contract):
 * - errs is appended to, so the caller may record its own errors first (e.g.
 *   "dataset" not found, 422); the functions return NULL whenever errs holds
 *   any error when they finish. Zero-initialise errs before the first use.
 * - dim <= 0 means the dimension is unknown (the dataset is missing): checks
 *   that need it (the memory estimate) are skipped. max_bytes 0 = no limit.
 * - sae defaults come from sae_config_default() (group_size 2, API.md's
 *   example; 1 is an ordinary SAE; sparsity_coef 0.01, k null, orth_coef 0,
 *   threshold 0) and an absent bandwidth from sae_config_default_bandwidth(),
 *   train defaults from train_config_default(), circles defaults from
 *   circles_params_default().
 * - topk/batchtopk (core/sae_topk.c): k required (groups kept per row, 1 .. n_latents /
 *   group_size); aux_k_coef 0.03125 (1/32; 0 = no AuxK), aux_k null (auto:
 *   min(n/s, max(1, (dim/2)/s)) groups; else 1 .. n/s); threshold must be 0;
 *   sparsity_coef and sparsity_warmup_steps are accepted and ignored. The
 *   AuxK fields are range-checked for every arch and used by topk/batchtopk.
 * - Floats are written back as the shortest decimal that round-trips to the
 *   float that will run (0.001, not 0.0010000000474974513). */

/* Building blocks, also for the specs of later job types. Each getter returns
 * 1 if the field is present and valid (out written), 0 if absent, -1 after
 * recording an error (400 wrong type, 422 out of [min, max]). Field names in
 * errors are "prefix.key" ("key" when prefix is ""). */
int spec_check_fields(const json_t *obj, const char *prefix, const char *const *allowed, spec_errors *errs);
int spec_get_int(const json_t *obj, const char *prefix, const char *key, long long min, long long max,
                 long long *out, spec_errors *errs);
int spec_get_number(const json_t *obj, const char *prefix, const char *key, double min, double max,
                    double *out, spec_errors *errs);
int spec_get_string(const json_t *obj, const char *prefix, const char *key, const char **out, spec_errors *errs);
json_t *spec_json_float(float f); /* shortest decimal that reads back as f */
/* The normalised "sae" object of a train spec for sc (arch, n_latents, group_size, k, thresholds, ...):
 * what an SAE row's config holds, for SAEs trained here and imported ones alike. */
json_t *spec_sae_json(const sae_config *sc);
/* "field: message" of the first error ("message" when its field is ""),
 * for logs and stored job errors. */
void spec_errors_text(const spec_errors *errs, char *buf, size_t len);
/* Stored JSON text (a job's spec, a dataset's params) parsed as an object;
 * NULL with a 400 (field "") recorded when it is not JSON or not an object. */
json_t *spec_stored(const char *text, spec_errors *errs);

/* Stored (normalised) specs back to typed configurations: 0, or -1 with
 * errs appended to (what the stored text is wrong about; the caller says
 * which text it was). */
/* A train spec's init.from_sae (cluster-then-retrain) into *init_from_sae when not NULL (0: none). */
/* sc->groups (a group table, when the spec lists groups) is the caller's: spec_sae_release() frees it
 * (spec_train_configs frees it itself when it fails). */
int spec_train_configs(const char *spec_json, int dim, sae_config *sc, train_config *tc, int64_t *init_from_sae,
                       spec_errors *errs);
void spec_sae_release(sae_config *sc);
int spec_circles_params(const char *params_json, circles_params *p, spec_errors *errs);

#endif
