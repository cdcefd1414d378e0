/* spec/spec.c — request bodies to typed configurations and back (spec.h).
 *
 * Pure functions: JSON in, structs and a normalised JSON out, errors as
 * (field, message) pairs with 400 (unknown field, wrong type, missing) or
 * 422 (well-formed but impossible). Parsing fills the structs starting from
 * the defaults (sae_config_default, train_config_default,
 * circles_params_default), then core's own checks (sae_config_check,
 * train_config_check) judge the values, so every range rule lives in core.
 * The normalised JSON is written from the structs, so it shows exactly what
 * will run. The same parser reads a stored spec back for the worker. */
#include "spec.h"
#include "sae_arch.h"
#include "spec_groups.h"
#include <assert.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SPEC_MAX_PLANE_FLOATS ((long long)1 << 27) /* n_circles * 2 * dim: 512 MiB of planes */

static const char *const spec_train_top[] = { "type", "dataset", "sae", "train", "init", NULL };
static const char *const spec_init_keys[] = { "from_sae", NULL };
static const char *const spec_sae_keys[] = { "arch", "n_latents", "group_size", "groups", "sparsity_coef", "k",
                                             "orth_coef", "threshold", "bandwidth", "aux_k_coef",
                                             "aux_k", NULL };
static const char *const spec_train_keys[] = { "steps", "batch_size", "lr", "lr_warmup_steps", "lr_decay",
                                               "sparsity_warmup_steps", "seed", "checkpoint_every",
                                               "eval_every", "eval_rows", "dead_window", "resample_every", "dup_cos", "adam_beta1",
                                               "adam_beta2", "adam_eps", "grad_clip", "normalize_input", NULL };
static const char *const spec_circles_keys[] = { "n_circles", "dim", "p_active", "radius", "seed", NULL };

/* ---- errors ---- */

void spec_error_add(spec_errors *errs, int status, const char *field, const char *fmt, ...)
{
    assert(errs && status >= 400 && status < 600 && field && fmt);
    if (errs->status < 500 && (errs->status != 400 || status >= 500)) errs->status = status;
    if (errs->n >= SPEC_MAX_ERRORS) return;
    snprintf(errs->e[errs->n].field, sizeof errs->e[0].field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errs->e[errs->n].message, sizeof errs->e[0].message, fmt, ap);
    va_end(ap);
    errs->n++;
}

void spec_errors_text(const spec_errors *errs, char *buf, size_t len)
{
    if (errs->n == 0) snprintf(buf, len, "invalid");
    else if (!errs->e[0].field[0]) snprintf(buf, len, "%s", errs->e[0].message);
    else snprintf(buf, len, "%s: %s", errs->e[0].field, errs->e[0].message);
}

json_t *spec_stored(const char *text, spec_errors *errs)
{
    json_error_t jerr;
    json_t *j = json_loads(text ? text : "", 0, &jerr);
    if (!j) {
        spec_error_add(errs, 400, "", "not JSON (%s)", jerr.text);
    } else if (!json_is_object(j)) {
        spec_error_add(errs, 400, "", "not a JSON object");
        json_decref(j);
        j = NULL;
    }
    return j;
}

static const char *spec_path(char *buf, size_t len, const char *prefix, const char *key)
{
    if (prefix && *prefix) snprintf(buf, len, "%s.%s", prefix, key);
    else snprintf(buf, len, "%s", key);
    return buf;
}

/* ---- unknown fields, with a suggestion for typos ---- */

/* Levenshtein distance, capped: anything over 3 answers 4. */
static int spec_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40 || (la > lb ? la - lb : lb - la) > 3) return 4;
    int row[41];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb] > 3 ? 4 : row[lb];
}

static const char *spec_closest(const char *key, const char *const *allowed)
{
    const char *best = NULL;
    int bd = 4;
    for (int i = 0; allowed[i]; i++) {
        int d = spec_distance(key, allowed[i]);
        if (d < bd) bd = d, best = allowed[i];
    }
    return best;
}

int spec_check_fields(const json_t *obj, const char *prefix, const char *const *allowed, spec_errors *errs)
{
    const char *key;
    json_t *v;
    int unknown = 0;
    json_object_foreach((json_t *)obj, key, v) {
        int ok = 0;
        for (int i = 0; allowed[i] && !ok; i++) ok = !strcmp(key, allowed[i]);
        if (ok) continue;
        char path[64];
        const char *near = spec_closest(key, allowed);
        spec_path(path, sizeof path, prefix, key);
        if (near) spec_error_add(errs, 400, path, "unknown field; did you mean '%s'?", near);
        else spec_error_add(errs, 400, path, "unknown field");
        unknown++;
    }
    return unknown;
}

/* ---- typed getters ---- */

int spec_get_int(const json_t *obj, const char *prefix, const char *key, long long min, long long max,
                 long long *out, spec_errors *errs)
{
    json_t *v = json_object_get(obj, key);
    char path[64];
    if (!v) return 0;
    spec_path(path, sizeof path, prefix, key);
    if (!json_is_integer(v)) {
        spec_error_add(errs, 400, path, "must be an integer (without a decimal point)");
        return -1;
    }
    long long x = json_integer_value(v);
    if (x < min || x > max) {
        spec_error_add(errs, 422, path, "must be from %lld to %lld", min, max);
        return -1;
    }
    *out = x;
    return 1;
}

int spec_get_number(const json_t *obj, const char *prefix, const char *key, double min, double max,
                    double *out, spec_errors *errs)
{
    json_t *v = json_object_get(obj, key);
    char path[64];
    if (!v) return 0;
    spec_path(path, sizeof path, prefix, key);
    if (!json_is_number(v)) {
        spec_error_add(errs, 400, path, "must be a number");
        return -1;
    }
    double x = json_number_value(v);
    if (!(x >= min && x <= max)) {
        spec_error_add(errs, 422, path, "must be from %g to %g", min, max);
        return -1;
    }
    *out = x;
    return 1;
}

int spec_get_string(const json_t *obj, const char *prefix, const char *key, const char **out, spec_errors *errs)
{
    json_t *v = json_object_get(obj, key);
    char path[64];
    if (!v) return 0;
    if (!json_is_string(v)) {
        spec_error_add(errs, 400, spec_path(path, sizeof path, prefix, key), "must be a string");
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

json_t *spec_json_float(float f)
{
    if (!isfinite(f)) return json_null();
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    return json_real(strtod(buf, NULL));
}

/* Optional int / float fields straight into struct members. */
static void spec_int_into(const json_t *obj, const char *prefix, const char *key, int *dst, spec_errors *errs)
{
    long long x;
    if (spec_get_int(obj, prefix, key, INT_MIN, INT_MAX, &x, errs) == 1) *dst = (int)x;
}

static void spec_float_into(const json_t *obj, const char *prefix, const char *key, float *dst, spec_errors *errs)
{
    double x;
    if (spec_get_number(obj, prefix, key, -FLT_MAX, FLT_MAX, &x, errs) == 1) *dst = (float)x;
}

/* An object-valued member: NULL if absent, else the object (or NULL after a 400). */
static const json_t *spec_object(const json_t *obj, const char *key, int required, const char *what,
                                 spec_errors *errs)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required) spec_error_add(errs, 400, key, "required: %s", what);
        return NULL;
    }
    if (!json_is_object(v)) {
        spec_error_add(errs, 400, key, "must be an object: %s", what);
        return NULL;
    }
    return v;
}

/* ---- sae ---- */

/* topk/batchtopk's AuxK options: aux_k_coef (a number), aux_k (null = auto, or >= 1). */
static void spec_parse_sae_aux(const json_t *sae, sae_config *sc, spec_errors *errs)
{
    long long x;
    spec_float_into(sae, "sae", "aux_k_coef", &sc->aux_k_coef, errs);
    if (!json_is_null(json_object_get(sae, "aux_k")) && spec_get_int(sae, "sae", "aux_k", 1, INT_MAX, &x, errs) == 1)
        sc->aux_k = (int)x;
}

/* sae.groups (lists; optional, instead of group_size) into a table sc->groups that sc owns until
 * spec_sae_release; n_latents, when absent, is the lists' count. */
static void spec_parse_sae_groups(const json_t *sae, sae_config *sc, spec_errors *errs)
{
    const json_t *v = json_object_get(sae, "groups");
    if (!v || json_is_null(v)) return;
    if (json_object_get(sae, "group_size")) {
        spec_error_add(errs, 422, "sae.group_size", "give groups or group_size, not both");
        return;
    }
    int n_before = errs->n, given = json_object_get(sae, "n_latents") != NULL;
    spec_int_into(sae, "sae", "n_latents", &sc->n_latents, errs);
    if (errs->n != n_before) return;
    if (given && sc->n_latents < 1) {
        spec_error_add(errs, 422, "sae.n_latents", "n_latents must be at least 1 (or leave it out with groups)");
        return;
    }
    sae_groups *t = spec_groups_parse(v, given ? sc->n_latents : 0, errs);
    if (!t) return;
    sc->groups = t, sc->group_size = 0, sc->n_latents = t->n;
}

void spec_sae_release(sae_config *sc)
{
    assert(sc);
    sae_groups_free((sae_groups *)sc->groups); /* spec_parse_sae_groups made it */
    sc->groups = NULL;
}

static void spec_parse_sae(const json_t *sae, sae_config *sc, spec_errors *errs)
{
    const char *arch = NULL;
    long long x;
    spec_check_fields(sae, "sae", spec_sae_keys, errs);
    int rc = spec_get_string(sae, "sae", "arch", &arch, errs);
    if (rc == 0) spec_error_add(errs, 400, "sae.arch", "required: one of %s", sae_arch_names());
    if (rc == 1 && sae_arch_parse(arch, &sc->arch))
        spec_error_add(errs, 422, "sae.arch", "'%.40s' is not an architecture; use one of %s", arch,
                       sae_arch_names());
    spec_parse_sae_groups(sae, sc, errs);
    if (!json_object_get(sae, "n_latents") && !json_object_get(sae, "groups"))
        spec_error_add(errs, 400, "sae.n_latents", "required: the number of latents, e.g. 12800 (or give groups)");
    if (!sc->groups) spec_int_into(sae, "sae", "n_latents", &sc->n_latents, errs);
    if (!sc->groups) spec_int_into(sae, "sae", "group_size", &sc->group_size, errs);
    spec_float_into(sae, "sae", "sparsity_coef", &sc->sparsity_coef, errs);
    spec_float_into(sae, "sae", "orth_coef", &sc->orth_coef, errs);
    spec_float_into(sae, "sae", "threshold", &sc->threshold, errs);
    if (json_object_get(sae, "bandwidth"))
        spec_float_into(sae, "sae", "bandwidth", &sc->bandwidth, errs);
    else
        sc->bandwidth = sae_config_default_bandwidth(sc); /* the arch's, given its threshold */
    spec_parse_sae_aux(sae, sc, errs);
    if (json_is_null(json_object_get(sae, "k"))) return;
    if (spec_get_int(sae, "sae", "k", 1, INT_MAX, &x, errs) == 1) sc->k = (int)x;
}

/* The sae object as stored: group_size, or (a table) groups as lists. */
json_t *spec_sae_json(const sae_config *sc)
{
    json_t *j = json_pack("{s:s,s:i,s:o,s:o,s:o,s:o}", "arch", sae_arch_name(sc->arch), "n_latents", sc->n_latents,
                     "sparsity_coef", spec_json_float(sc->sparsity_coef),
                     "k", sc->k > 0 ? json_integer(sc->k) : json_null(),
                     "orth_coef", spec_json_float(sc->orth_coef), "threshold", spec_json_float(sc->threshold));
    if (j) json_object_set_new(j, sc->groups ? "groups" : "group_size",
                               sc->groups ? sae_groups_to_json(sc->groups) : json_integer(sc->group_size));
    if (j) json_object_set_new(j, "bandwidth", spec_json_float(sc->bandwidth));
    if (j) json_object_set_new(j, "aux_k_coef", spec_json_float(sc->aux_k_coef));
    if (j) json_object_set_new(j, "aux_k", sc->aux_k > 0 ? json_integer(sc->aux_k) : json_null());
    return j;
}

/* ---- train ---- */

static void spec_parse_train_obj(const json_t *t, train_config *tc, spec_errors *errs)
{
    const char *decay = NULL;
    long long seed;
    spec_check_fields(t, "train", spec_train_keys, errs);
    spec_int_into(t, "train", "steps", &tc->steps, errs);
    spec_int_into(t, "train", "batch_size", &tc->batch_size, errs);
    spec_float_into(t, "train", "lr", &tc->lr, errs);
    spec_int_into(t, "train", "lr_warmup_steps", &tc->lr_warmup_steps, errs);
    if (spec_get_string(t, "train", "lr_decay", &decay, errs) == 1 && lr_decay_parse(decay, &tc->decay))
        spec_error_add(errs, 422, "train.lr_decay", "'%.40s' is not a schedule; use none, linear or cosine", decay);
    spec_int_into(t, "train", "sparsity_warmup_steps", &tc->sparsity_warmup_steps, errs);
    if (spec_get_int(t, "train", "seed", 0, LLONG_MAX, &seed, errs) == 1) tc->seed = (uint64_t)seed;
    spec_int_into(t, "train", "checkpoint_every", &tc->checkpoint_every, errs);
    spec_int_into(t, "train", "eval_every", &tc->eval_every, errs);
    spec_int_into(t, "train", "eval_rows", &tc->eval_rows, errs);
    spec_int_into(t, "train", "dead_window", &tc->dead_window, errs);
    spec_int_into(t, "train", "resample_every", &tc->resample_every, errs);
    spec_float_into(t, "train", "dup_cos", &tc->dup_cos, errs);
    spec_float_into(t, "train", "adam_beta1", &tc->adam_beta1, errs);
    spec_float_into(t, "train", "adam_beta2", &tc->adam_beta2, errs);
    spec_float_into(t, "train", "adam_eps", &tc->adam_eps, errs);
    spec_float_into(t, "train", "grad_clip", &tc->grad_clip, errs);
    json_t *norm = json_object_get(t, "normalize_input");
    if (norm && !json_is_boolean(norm)) spec_error_add(errs, 400, "train.normalize_input", "must be true or false");
    else if (norm) tc->normalize_input = json_is_true(norm);
}

static json_t *spec_train_json(const train_config *tc)
{
    return json_pack("{s:i,s:i,s:o,s:i,s:s,s:i,s:I,s:i,s:i,s:i,s:i,s:i,s:o,s:o,s:o,s:o,s:o,s:b}",
                     "steps", tc->steps, "batch_size", tc->batch_size, "lr", spec_json_float(tc->lr),
                     "lr_warmup_steps", tc->lr_warmup_steps, "lr_decay", lr_decay_name(tc->decay),
                     "sparsity_warmup_steps", tc->sparsity_warmup_steps, "seed", (json_int_t)tc->seed,
                     "checkpoint_every", tc->checkpoint_every, "eval_every", tc->eval_every,
                     "eval_rows", tc->eval_rows, "dead_window", tc->dead_window,
                     "resample_every", tc->resample_every, "dup_cos", spec_json_float(tc->dup_cos), "adam_beta1", spec_json_float(tc->adam_beta1), "adam_beta2", spec_json_float(tc->adam_beta2),
                     "adam_eps", spec_json_float(tc->adam_eps), "grad_clip", spec_json_float(tc->grad_clip),
                     "normalize_input", tc->normalize_input);
}

/* Core's range checks, then the memory estimate. Only called when parsing found nothing wrong. */
static void spec_check_train(sae_config *sc, const train_config *tc, int dim, size_t max_bytes, spec_errors *errs)
{
    char field[64], msg[256];
    sc->dim = dim > 0 ? dim : 1;
    if (sae_config_check(sc, field, sizeof field, msg, sizeof msg) && strcmp(field, "sae.dim"))
        spec_error_add(errs, 422, field, "%s", msg);
    if (train_config_check(tc, field, sizeof field, msg, sizeof msg)) spec_error_add(errs, 422, field, "%s", msg);
    else if (train_config_check_for(sc, tc, field, sizeof field, msg, sizeof msg))
        spec_error_add(errs, 422, field, "%s", msg);
    if (errs->n || dim <= 0 || !max_bytes) return;
    size_t need = sae_train_bytes(sc, tc->batch_size);
    if (need > max_bytes)
        spec_error_add(errs, 422, "sae.n_latents", "this job needs about %.2f GiB, more than the %.2f GiB limit "
                       "(max_job_bytes); use fewer latents or a smaller train.batch_size",
                       (double)need / (1 << 30), (double)max_bytes / (1 << 30));
}

/* body.init ({"from_sae": ID}, optional) into *from_sae (0 when absent): an arch whose registry row
 * starts groups from another SAE's decoder rows (subspace) needs groups of 2 for that; listed groups,
 * and every other arch, start from that SAE's weights (train_init_from_params; the same n_latents,
 * checked by the train validator). */
static void spec_parse_init(const json_t *body, const sae_config *sc, int64_t *from_sae, spec_errors *errs)
{
    long long id;
    *from_sae = 0;
    const json_t *init = spec_object(body, "init", 0, "{\"from_sae\": ID}", errs);
    if (!init) return;
    spec_check_fields(init, "init", spec_init_keys, errs);
    int rc = spec_get_int(init, "init", "from_sae", 1, LLONG_MAX, &id, errs);
    if (rc == 0) spec_error_add(errs, 400, "init.from_sae", "required: the id of the SAE whose decoder rows "
                                "start the groups");
    if (rc != 1) return;
    *from_sae = id;
    if (sae_arch_of(sc)->init_from_rows && !sc->groups && sc->group_size != 2)
        spec_error_add(errs, 422, "init.from_sae", "arch '%s' starts from another SAE's decoder rows clustered "
                       "into planes (cluster-then-retrain), which needs group_size 2; remove init or use group_size 2",
                       sae_arch_name(sc->arch));
}

/* The whole train body into sc/tc. */
static void spec_parse_train_body(const json_t *body, int dim, size_t max_bytes, sae_config *sc,
                                  train_config *tc, int64_t *from_sae, spec_errors *errs)
{
    int n_before = errs->n;
    const char *type = NULL;
    long long ds;
    sae_config_default(sc);
    train_config_default(tc);
    spec_check_fields(body, "", spec_train_top, errs);
    int rc = spec_get_string(body, "", "type", &type, errs);
    if (rc == 0) spec_error_add(errs, 400, "type", "required: \"train\"");
    if (rc == 1 && strcmp(type, "train")) spec_error_add(errs, 422, "type", "expected \"train\"");
    if (spec_get_int(body, "", "dataset", 1, LLONG_MAX, &ds, errs) == 0)
        spec_error_add(errs, 400, "dataset", "required: the id of the dataset to train on");
    const json_t *sae = spec_object(body, "sae", 1, "{\"arch\": ..., \"n_latents\": ...}", errs);
    const json_t *train = spec_object(body, "train", 0, "the training settings", errs);
    if (sae) spec_parse_sae(sae, sc, errs);
    if (train) spec_parse_train_obj(train, tc, errs);
    if (errs->n == n_before) spec_check_train(sc, tc, dim, max_bytes, errs);
    if (errs->n == n_before) spec_parse_init(body, sc, from_sae, errs);
}

json_t *spec_normalize_train(const json_t *body, int dim, size_t max_bytes, spec_errors *errs)
{
    sae_config sc;
    train_config tc;
    if (!json_is_object(body)) {
        spec_error_add(errs, 400, "body", "must be a JSON object");
        return NULL;
    }
    int64_t from_sae = 0;
    spec_parse_train_body(body, dim, max_bytes, &sc, &tc, &from_sae, errs);
    json_t *spec = errs->n ? NULL : json_pack("{s:s,s:O,s:o,s:o}", "type", "train", "dataset",
                                              json_object_get(body, "dataset"), "sae", spec_sae_json(&sc),
                                              "train", spec_train_json(&tc));
    if (spec && from_sae) json_object_set_new(spec, "init", json_pack("{s:I}", "from_sae", (json_int_t)from_sae));
    spec_sae_release(&sc);
    return spec;
}

int spec_train_configs(const char *spec_json, int dim, sae_config *sc, train_config *tc, int64_t *init_from_sae,
                       spec_errors *errs)
{
    assert(sc && tc && errs);
    int n_before = errs->n;
    int64_t from_sae = 0;
    json_t *j = spec_stored(spec_json, errs);
    if (!j) return -1;
    spec_parse_train_body(j, dim, 0, sc, tc, &from_sae, errs);
    if (init_from_sae) *init_from_sae = from_sae;
    json_decref(j);
    if (errs->n != n_before) spec_sae_release(sc);
    return errs->n == n_before ? 0 : -1;
}

/* ---- circles ---- */

static void spec_parse_radius(const json_t *params, circles_params *p, spec_errors *errs)
{
    json_t *r = json_object_get(params, "radius");
    if (!r) return;
    if (!json_is_array(r) || json_array_size(r) != 2 || !json_is_number(json_array_get(r, 0)) ||
        !json_is_number(json_array_get(r, 1))) {
        spec_error_add(errs, 400, "params.radius", "must be an array of two numbers [min, max]");
        return;
    }
    double lo = json_number_value(json_array_get(r, 0)), hi = json_number_value(json_array_get(r, 1));
    if (!(lo >= 0 && lo <= hi && hi <= 1e6)) {
        spec_error_add(errs, 422, "params.radius", "needs 0 <= min <= max <= 1e6");
        return;
    }
    p->r_min = (float)lo, p->r_max = (float)hi;
}

static void spec_parse_circles(const json_t *params, circles_params *p, spec_errors *errs)
{
    long long x;
    double d;
    circles_params_default(p);
    if (!params) return;
    if (!json_is_object(params)) {
        spec_error_add(errs, 400, "params", "must be an object");
        return;
    }
    int n_before = errs->n;
    spec_check_fields(params, "params", spec_circles_keys, errs);
    if (spec_get_int(params, "params", "n_circles", 1, 10000000, &x, errs) == 1) p->n_circles = (int)x;
    if (spec_get_int(params, "params", "dim", 1, 1 << 20, &x, errs) == 1) p->dim = (int)x;
    if (spec_get_number(params, "params", "p_active", 0.0, 1.0, &d, errs) == 1) p->p_active = d;
    spec_parse_radius(params, p, errs);
    if (spec_get_int(params, "params", "seed", 0, LLONG_MAX, &x, errs) == 1) p->seed = (uint64_t)x;
    if (errs->n == n_before && (long long)p->n_circles * 2 * p->dim > SPEC_MAX_PLANE_FLOATS)
        spec_error_add(errs, 422, "params.n_circles", "n_circles x dim = %lld is too large; keep it under %lld",
                       (long long)p->n_circles * p->dim, SPEC_MAX_PLANE_FLOATS / 2);
}

json_t *spec_normalize_circles(const json_t *params, spec_errors *errs)
{
    circles_params p;
    spec_parse_circles(params, &p, errs);
    if (errs->n) return NULL;
    return json_pack("{s:i,s:i,s:f,s:[o,o],s:I}", "n_circles", p.n_circles, "dim", p.dim, "p_active", p.p_active,
                     "radius", spec_json_float(p.r_min), spec_json_float(p.r_max), "seed", (json_int_t)p.seed);
}

int spec_circles_params(const char *params_json, circles_params *p, spec_errors *errs)
{
    assert(p && errs);
    int n_before = errs->n;
    json_t *j = spec_stored(params_json, errs);
    if (!j) return -1;
    spec_parse_circles(j, p, errs);
    json_decref(j);
    return errs->n == n_before ? 0 : -1;
}
