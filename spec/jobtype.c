/* spec/jobtype.c — the job-type table and its validator column
 * (include/jobtype.h).
 *
 * The table is built from JOBTYPE_LIST, so it cannot disagree with the
 * runner column daemon/jobrun.c builds from the same list. Each validator
 * looks up what the body's ids name (store reads only), hands the body to
 * the pure parsers of spec.c / spec_analysis.c, which judge it against
 * those facts, and fills in the job row's columns:
 *   train    dataset = body.dataset, total_steps = train.steps; a finite
 *            dataset must have more rows than train.eval_rows holds out;
 *   analyze  sae, dataset (default: the SAE's), total_steps = n_samples;
 *   pca      sae, dataset, total_steps = the indices given (0 when rows are
 *            chosen by label: known only as the job runs);
 *   groupspace  sae = sets.from_analysis (0 for toy and explicit sets),
 *            total_steps = steps; the SAE must have an analysis. */
#include "jobtype.h"
#include "sae_arch.h"
#include "spec_analysis.h"
#include "spec_groupspace.h"
#include <assert.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*validate)(store *st, const json_t *body, const jobtype_limits *lim, jobtype_spec *out,
                    spec_errors *errs);
} jobtype_row;

static const jobtype_row jobtype_rows[JOBTYPE_N] = {
#define JOBTYPE_ROW(name) [JOBTYPE_##name] = { #name, jobtype_##name##_validate },
    JOBTYPE_LIST(JOBTYPE_ROW)
#undef JOBTYPE_ROW
};

static const char *const jobtype_later[] = {
#define JOBTYPE_LATER_NAME(name) #name,
    JOBTYPE_LATER_LIST(JOBTYPE_LATER_NAME)
#undef JOBTYPE_LATER_NAME
};

#define JOBTYPE_N_LATER (sizeof jobtype_later / sizeof jobtype_later[0])

/* ---- the table ---- */

int jobtype_find(const char *name)
{
    assert(name);
    for (int i = 0; i < JOBTYPE_N; i++)
        if (!strcmp(jobtype_rows[i].name, name)) return i;
    for (size_t i = 0; i < JOBTYPE_N_LATER; i++)
        if (!strcmp(jobtype_later[i], name)) return JOBTYPE_LATER;
    return JOBTYPE_UNKNOWN;
}

const char *jobtype_name(jobtype_id id)
{
    assert(id >= 0 && id < JOBTYPE_N);
    return jobtype_rows[id].name;
}

/* Every type the API names, runnable then later ones: "train, analyze, pca, groupspace, sweep", the last
 * separated by last_sep. */
static void jobtype_names(char *buf, size_t n, const char *last_sep)
{
    size_t total = JOBTYPE_N + JOBTYPE_N_LATER, len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < total && len < n; i++) {
        const char *name = i < JOBTYPE_N ? jobtype_rows[i].name : jobtype_later[i - JOBTYPE_N];
        const char *sep = i == 0 ? "" : i + 1 == total ? last_sep : ", ";
        len += (size_t)snprintf(buf + len, n - len, "%s%s", sep, name);
    }
}

int jobtype_validate(store *st, const json_t *body, const jobtype_limits *lim, jobtype_spec *out,
                     spec_errors *errs)
{
    assert(st && json_is_object(body) && lim && out && errs);
    char names[128];
    memset(out, 0, sizeof *out);
    json_t *type = json_object_get(body, "type");
    if (!type) {
        jobtype_names(names, sizeof names, ", ");
        spec_error_add(errs, 400, "type", "required: one of %s", names);
        return -1;
    }
    if (!json_is_string(type)) {
        spec_error_add(errs, 400, "type", "must be a string");
        return -1;
    }
    int id = jobtype_find(json_string_value(type));
    if (id == JOBTYPE_LATER) {
        spec_error_add(errs, 422, "type", "type '%s' is not available yet; use 'train'", json_string_value(type));
        return -1;
    }
    if (id == JOBTYPE_UNKNOWN) {
        jobtype_names(names, sizeof names, " or ");
        spec_error_add(errs, 422, "type", "'%.40s' is not a job type; use %s", json_string_value(type), names);
        return -1;
    }
    out->type = (jobtype_id)id;
    return jobtype_rows[id].validate(st, body, lim, out, errs);
}

void jobtype_spec_clear(jobtype_spec *s)
{
    json_decref(s->spec);
    memset(s, 0, sizeof *s);
}

/* ---- train ---- */

/* The dataset body.dataset names into d: 1 found, 0 not (a 422 recorded when the id is valid but
 * unknown; spec.c reports a missing or malformed id), -1 after recording the store's failure (500). */
static int jobtype_dataset(store *st, const json_t *body, store_dataset *d, spec_errors *errs)
{
    json_t *v = json_object_get(body, "dataset");
    if (!json_is_integer(v) || json_integer_value(v) < 1) return 0;
    int rc = store_dataset_get(st, json_integer_value(v), d);
    if (rc == STORE_OK) return 1;
    if (rc == STORE_NOTFOUND) {
        spec_error_add(errs, 422, "dataset", "dataset %lld does not exist; create one with POST /v1/datasets",
                       (long long)json_integer_value(v));
        return 0;
    }
    spec_error_add(errs, 500, "dataset", "cannot read datasets: %s", store_errmsg(st));
    return -1;
}

/* A finite dataset must have more rows than spec.train.eval_rows holds out. 0, or -1 with a 422. */
static int jobtype_eval_rows(const store_dataset *d, const json_t *spec, spec_errors *errs)
{
    int64_t n = d->n_rows;
    json_int_t eval = json_integer_value(json_object_get(json_object_get(spec, "train"), "eval_rows"));
    if (n < 0 || eval < n) return 0;
    spec_error_add(errs, 422, "train.eval_rows", "dataset %lld has %lld rows, and train.eval_rows (%lld) of them "
                   "are held out for evaluation; set train.eval_rows below %lld (e.g. %lld)", (long long)d->id,
                   (long long)n, (long long)eval, (long long)n, (long long)(n / 10 > 0 ? n / 10 : 1));
    return -1;
}

/* The SAE init.from_sae names must exist and read rows of the dataset's dim. 0, or -1 with a 422
 * (500 when the store fails). */
static int jobtype_init_sae(store *st, const json_t *spec, int dim, spec_errors *errs)
{
    json_int_t id = json_integer_value(json_object_get(json_object_get(spec, "init"), "from_sae"));
    store_sae s = { 0 };
    if (!id) return 0;
    int rc = store_sae_get(st, id, &s);
    if (rc == STORE_NOTFOUND)
        spec_error_add(errs, 422, "init.from_sae", "SAE %lld does not exist; GET /v1/saes lists them",
                       (long long)id);
    else if (rc != STORE_OK)
        spec_error_add(errs, 500, "init.from_sae", "cannot read SAEs: %s", store_errmsg(st));
    else if (s.dim != dim)
        spec_error_add(errs, 422, "init.from_sae", "SAE %lld reads rows of %d dimensions and the dataset has %d; "
                       "start from an SAE trained on rows like these", (long long)id, s.dim, dim);
    json_t *sae = json_object_get(spec, "sae");
    sae_arch arch = SAE_RELU;
    sae_arch_parse(json_string_value(json_object_get(sae, "arch")), &arch);
    int n = (int)json_integer_value(json_object_get(sae, "n_latents"));
    int weights = !sae_arch_get(arch)->init_from_rows || json_is_array(json_object_get(sae, "groups"));
    int shape_ok = rc != STORE_OK || s.dim != dim || !weights || s.n_latents == n;
    if (!shape_ok)
        spec_error_add(errs, 422, "init.from_sae", "SAE %lld has %d latents and this one %d; starting from its weights "
                       "needs the same n_latents (or groups listing as many)", (long long)id, s.n_latents, n);
    int ok = rc == STORE_OK && s.dim == dim && shape_ok;
    if (rc == STORE_OK) store_sae_clear(&s);
    return ok ? 0 : -1;
}

/* Finished groupspace job id: 0, or -1 with a 422 (500 when the store fails) saying why not. */
static int jobtype_groupspace_done(store *st, json_int_t id, spec_errors *errs)
{
    store_job j = { 0 };
    int rc = store_job_get(st, id, &j);
    if (rc == STORE_NOTFOUND)
        spec_error_add(errs, 422, "sae.groups.from_job", "job %lld does not exist; GET /v1/jobs lists them",
                       (long long)id);
    else if (rc != STORE_OK)
        spec_error_add(errs, 500, "sae.groups.from_job", "cannot read jobs: %s", store_errmsg(st));
    else if (strcmp(j.type, "groupspace"))
        spec_error_add(errs, 422, "sae.groups.from_job", "job %lld is a %s job; name a groupspace job, whose "
                       "learned groups become the SAE's", (long long)id, j.type);
    else if (j.state != STORE_JOB_SUCCEEDED)
        spec_error_add(errs, 422, "sae.groups.from_job", "groupspace job %lld is %s; its groups exist once it has "
                       "succeeded", (long long)id, store_job_state_name(j.state));
    int ok = rc == STORE_OK && !strcmp(j.type, "groupspace") && j.state == STORE_JOB_SUCCEEDED;
    if (rc == STORE_OK) store_job_clear(&j);
    return ok ? 0 : -1;
}

/* The body with sae.groups {"from_job": ID} replaced by that groupspace job's groups (its groups.json),
 * so the stored spec holds lists; the body itself (a new reference) when it has no such form; NULL
 * after recording an error. */
static json_t *jobtype_resolve_groups(store *st, const json_t *body, const jobtype_limits *lim, spec_errors *errs)
{
    const json_t *g = json_object_get(json_object_get(body, "sae"), "groups");
    if (!json_is_object(g)) return json_incref((json_t *)body);
    json_t *id = json_object_get(g, "from_job");
    if (json_object_size(g) != 1 || !json_is_integer(id) || json_integer_value(id) < 1) {
        spec_error_add(errs, 400, "sae.groups", "must be lists of latent ids or {\"from_job\": ID} naming a "
                       "finished groupspace job");
        return NULL;
    }
    if (!lim->data_dir || jobtype_groupspace_done(st, json_integer_value(id), errs)) return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/jobs/%lld/groups.json", lim->data_dir, (long long)json_integer_value(id));
    json_t *file = json_load_file(path, 0, NULL);
    json_t *lists = json_object_get(file, "groups"), *copy = lists ? json_deep_copy(body) : NULL;
    if (!lists)
        spec_error_add(errs, 422, "sae.groups.from_job", "groupspace job %lld has no readable groups.json; run it "
                       "again", (long long)json_integer_value(id));
    if (copy) json_object_set(json_object_get(copy, "sae"), "groups", lists);
    json_decref(file);
    return copy;
}

int jobtype_train_validate(store *st, const json_t *body, const jobtype_limits *lim, jobtype_spec *out,
                           spec_errors *errs)
{
    assert(st && body && lim && out && errs);
    store_dataset d = { 0 };
    int found = jobtype_dataset(st, body, &d, errs);
    json_t *resolved = found < 0 ? NULL : jobtype_resolve_groups(st, body, lim, errs);
    json_t *spec = !resolved ? NULL : spec_normalize_train(resolved, found ? d.dim : 0, lim->max_job_bytes, errs);
    json_decref(resolved);
    if (spec && (jobtype_eval_rows(&d, spec, errs) || jobtype_init_sae(st, spec, d.dim, errs))) {
        json_decref(spec);
        spec = NULL;
    }
    if (spec) {
        out->spec = spec;
        out->dataset_id = d.id;
        out->total_steps = (int)json_integer_value(json_object_get(json_object_get(spec, "train"), "steps"));
    }
    if (found > 0) store_dataset_clear(&d);
    return spec ? 0 : -1;
}

/* ---- analyze, pca ---- */

/* What the body's ids name, from the store (spec_analysis.h's refs). 0, or -1 after recording the
 * store's failure (500). */
static int jobtype_refs(store *st, const json_t *body, spec_analysis_refs *refs, spec_errors *errs)
{
    int64_t sae_id, ds_id;
    store_sae s = { 0 };
    store_dataset d = { 0 };
    memset(refs, 0, sizeof *refs);
    spec_analysis_ids(body, &sae_id, &ds_id);
    int rc = sae_id ? store_sae_get(st, sae_id, &s) : STORE_NOTFOUND;
    if (rc == STORE_OK) {
        refs->sae_found = 1;
        refs->sae_dim = s.dim, refs->sae_n_latents = s.n_latents, refs->sae_group_size = s.group_size;
        refs->sae_dataset = s.dataset_id;
        if (!ds_id) ds_id = s.dataset_id;
        store_sae_clear(&s);
    }
    if (rc != STORE_ERROR && ds_id) rc = store_dataset_get(st, ds_id, &d);
    if (rc == STORE_ERROR) {
        spec_error_add(errs, 500, "sae", "cannot read the SAE or dataset: %s", store_errmsg(st));
        return -1;
    }
    if (rc == STORE_OK && ds_id) {
        refs->dataset_found = 1, refs->dataset_id = d.id, refs->dataset_dim = d.dim;
        refs->dataset_n_rows = d.n_rows, refs->dataset_has_labels = d.has_labels;
        store_dataset_clear(&d);
    }
    return 0;
}

/* The row columns of a normalised analysis spec (its "sae" and "dataset"). */
static int jobtype_analysis_out(json_t *spec, int total, jobtype_spec *out)
{
    if (!spec) return -1;
    out->spec = spec;
    out->sae_id = json_integer_value(json_object_get(spec, "sae"));
    out->dataset_id = json_integer_value(json_object_get(spec, "dataset"));
    out->total_steps = total;
    return 0;
}

int jobtype_analyze_validate(store *st, const json_t *body, const jobtype_limits *lim, jobtype_spec *out,
                             spec_errors *errs)
{
    assert(st && body && lim && out && errs);
    spec_analysis_refs refs;
    if (jobtype_refs(st, body, &refs, errs)) return -1;
    json_t *spec = spec_analysis_normalize_analyze(body, &refs, lim->max_job_bytes, errs);
    int total = spec ? (int)json_integer_value(json_object_get(spec, "n_samples")) : 0;
    return jobtype_analysis_out(spec, total, out);
}

int jobtype_pca_validate(store *st, const json_t *body, const jobtype_limits *lim, jobtype_spec *out,
                         spec_errors *errs)
{
    assert(st && body && lim && out && errs);
    (void)lim; /* a pca job has no memory estimate yet */
    spec_analysis_refs refs;
    if (jobtype_refs(st, body, &refs, errs)) return -1;
    json_t *spec = spec_analysis_normalize_pca(body, &refs, errs);
    int total = spec ? (int)json_array_size(json_object_get(json_object_get(spec, "rows"), "indices")) : 0;
    return jobtype_analysis_out(spec, total, out);
}

int jobtype_groupspace_validate(store *st, const json_t *body, const jobtype_limits *lim, jobtype_spec *out,
                                spec_errors *errs)
{
    assert(st && body && lim && out && errs);
    (void)lim; /* positions are N x dim floats: bounded by GROUPSPACE_MAX_ITEMS */
    spec_groupspace_refs refs = { 0 };
    int64_t sae = spec_groupspace_sae(body);
    store_sae s = { 0 };
    store_sae_analysis a = { 0 };
    int rc = sae ? store_sae_get(st, sae, &s) : STORE_NOTFOUND;
    if (rc == STORE_OK) {
        refs.sae_found = 1, refs.sae_n_latents = s.n_latents;
        store_sae_clear(&s);
        rc = store_sae_analysis_get(st, sae, &a);
        if (rc == STORE_OK) refs.analysis_found = 1, store_sae_analysis_clear(&a);
    }
    if (rc == STORE_ERROR) {
        spec_error_add(errs, 500, "sets.from_analysis", "cannot read SAE %lld: %s", (long long)sae,
                       store_errmsg(st));
        return -1;
    }
    json_t *spec = spec_groupspace_normalize(body, &refs, errs);
    if (!spec) return -1;
    out->spec = spec;
    out->sae_id = sae;
    out->total_steps = (int)json_integer_value(json_object_get(spec, "steps"));
    return 0;
}
