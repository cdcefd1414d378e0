/* jobtype — the job types saed runs: one table from a type's name to its
 * validator (spec/jobtype.c) and its runner (daemon/jobrun_<type>.c).
 *
 * JOBTYPE_LIST is the table's rows. This header declares the validator
 * column from it (jobtype_<name>_validate, defined in spec/) and
 * include/jobrun.h the runner column (jobrun_<name>, defined in daemon/), so
 * adding a job type is one row here plus its validator and its runner, and a
 * row missing either is a link error. POST /v1/jobs (api/jobs.c) and the
 * worker (daemon/jobrun.c) both find a type by name through jobtype_find();
 * neither matches type strings itself.
 *
 * A validator judges a request body against what its ids name in the store
 * (a dataset's dim and rows, an SAE's shape) and the daemon's limits, and
 * gives the normalised spec (every default filled in: exactly what will
 * run) plus what the job row needs, or spec_errors: 400 wrong type or
 * unknown field, 422 well-formed but impossible, 500 when reading the store
 * failed. Validators only read the store; the caller inserts the row. */
#ifndef SAED_JOBTYPE_H
#define SAED_JOBTYPE_H
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "spec.h"
#include "store.h"

/* The job types this version runs, in the order messages list them. */
#define JOBTYPE_LIST(X) X(train) X(analyze) X(pca) X(groupspace)
/* Types the contract (API.md) names that this version does not run yet: a
 * request for one is a 422 saying so, not "unknown type". */
#define JOBTYPE_LATER_LIST(X) X(sweep)

typedef enum {
#define JOBTYPE_ID(name) JOBTYPE_##name,
    JOBTYPE_LIST(JOBTYPE_ID)
#undef JOBTYPE_ID
    JOBTYPE_N
} jobtype_id;

/* jobtype_find's answers for names that are not rows of JOBTYPE_LIST. */
enum { JOBTYPE_UNKNOWN = -1, JOBTYPE_LATER = -2 };

typedef struct {
    size_t max_job_bytes;  /* memory limit of one job (422 beyond); 0 = none */
    const char *data_dir;  /* where finished jobs keep their files (a groupspace job's groups.json, which
                            * sae.groups {"from_job": ID} reads); NULL: that form is refused */
} jobtype_limits;

/* A valid job, ready to insert. */
typedef struct {
    jobtype_id type;
    json_t *spec;          /* the normalised spec, owned: jobtype_spec_clear() releases it */
    int64_t dataset_id;    /* the dataset it reads (kept from deletion while the job lives); 0 = none */
    int64_t sae_id;        /* the SAE it reads; 0 = none */
    int total_steps;       /* progress.total_steps; 0 = known only once it runs */
} jobtype_spec;

/* One validator per row: 0 with out filled, or -1 with errs filled. */
#define JOBTYPE_DECLARE(name)                                                                        \
    int jobtype_##name##_validate(store *st, const json_t *body, const jobtype_limits *lim,          \
                                  jobtype_spec *out, spec_errors *errs);
JOBTYPE_LIST(JOBTYPE_DECLARE)
#undef JOBTYPE_DECLARE

/* The id of the type called name (>= 0), or JOBTYPE_LATER, or JOBTYPE_UNKNOWN. */
int jobtype_find(const char *name);
/* The name of a type, e.g. "train". */
const char *jobtype_name(jobtype_id id);
/* A POST /v1/jobs body (a JSON object): its "type" looked up in the table,
 * then that type's validator. 0 with out filled, or -1 with errs filled (a
 * missing or non-string "type" is a 400, an unknown or later one a 422,
 * each naming "type"). */
int jobtype_validate(store *st, const json_t *body, const jobtype_limits *lim, jobtype_spec *out,
                     spec_errors *errs);
void jobtype_spec_clear(jobtype_spec *s);

#endif
