/* store — SQLite persistence: datasets, jobs, metric points, SAEs.
 *
 * One store handle = one SQLite connection; use a handle from one thread at a
 * time (workers own one each; the API keeps a pool). The database runs in WAL
 * mode with a busy timeout; every writing transaction is BEGIN IMMEDIATE. The
 * schema is versioned by PRAGMA user_version and migrated forward on open.
 *
 * Jobs move queued -> running -> succeeded | failed | cancelled. A worker
 * claims the oldest queued job atomically (UPDATE ... RETURNING). At start-up
 * store_requeue_running() puts jobs a crash left running back in the queue.
 * A job that succeeds writes its result (e.g. its SAE row) in the same
 * transaction that ends it, so a finished result is never lost.
 *
 * Strings inside the structs below that are pointers are owned by the struct
 * and freed by the matching *_clear(). Times are RFC 3339 UTC strings; an
 * empty string means "not yet" (null in JSON).
 *
 * Preconditions are asserted (on in the test builds, compiled out by -DNDEBUG
 * in the release build): handles and out-pointers are non-NULL, job states
 * are valid, and the id of a row to change (a job transition, a delete, a
 * metric, a result) is >= 1, since it comes from the router or a claim.
 * Lookups (store_*_get) take any id and answer STORE_NOTFOUND when none
 * matches: 0, the "none" of a reference whose row was deleted, included. */
#ifndef SAED_STORE_H
#define SAED_STORE_H
#include <stddef.h>
#include <stdint.h>

enum { STORE_OK = 0, STORE_NOTFOUND = 1, STORE_CONFLICT = 2, STORE_ERROR = -1 };

typedef struct store store;

typedef enum {
    STORE_JOB_QUEUED = 0, STORE_JOB_RUNNING, STORE_JOB_SUCCEEDED, STORE_JOB_FAILED, STORE_JOB_CANCELLED,
    STORE_JOB_N_STATES
} store_job_state;
const char *store_job_state_name(store_job_state s);               /* "queued", ... */
int store_job_state_parse(const char *name, store_job_state *out); /* 0 or -1 */
int store_job_state_terminal(store_job_state s);

typedef struct {
    int64_t id;
    char name[256];
    char kind[16];      /* "circles" | "npy" | "idx" */
    int dim;
    int64_t n_rows;     /* -1: endless stream */
    char *params_json;  /* kind-specific parameters, a JSON object */
    char *path;         /* data file for npy/idx, NULL for circles */
    int has_labels;
    char created_at[32];
} store_dataset;

typedef struct {
    int64_t id;
    char type[16];        /* "train" | "analyze" | "pca" | "groupspace" */
    store_job_state state;
    char created_at[32], started_at[32], finished_at[32];
    char *spec_json;      /* the normalised request (defaults filled in) */
    char *result_json;    /* NULL until succeeded, e.g. {"sae": 3} */
    char *latest_json;    /* NULL, or the last metrics as a JSON object */
    char *error;          /* NULL unless failed */
    int64_t dataset_id;   /* 0 if none */
    int64_t sae_id;       /* input SAE for analyze/pca; 0 if none */
    int step, total_steps;
    double samples_per_s; /* 0 until known */
    double eta_s;         /* < 0 until known */
    int cancel_requested;
    int attempts;         /* times claimed (> 1 after a requeue) */
} store_job;

typedef struct {
    int step;
    double loss, mse, fve, l0, l0_groups, dead_frac, lr, samples_per_s;
} store_metric;

typedef struct {
    int64_t id;
    int64_t job_id, dataset_id;
    char *config_json;   /* the sae object of the job spec (normalised) */
    char *metrics_json;  /* {"fve","mse","l0","l0_groups","dead_frac"} */
    char *dir;           /* directory holding decoder.npy, encoder.npy, b_enc.npy, b_dec.npy, ... */
    int n_latents, dim, group_size; /* group_size 0: groups of any size, listed in config_json's "groups" */
    char created_at[32];
} store_sae;

/* Opens (creating if needed) and migrates the database. NULL with err set on failure. */
store *store_open(const char *path, char *err, size_t errlen);
void store_close(store *st);
const char *store_errmsg(store *st); /* the last error on this handle (also why a call gave NOTFOUND/CONFLICT) */
int store_schema_version(store *st);

/* Datasets */
int store_dataset_insert(store *st, const store_dataset *d, int64_t *id_out);
int store_dataset_get(store *st, int64_t id, store_dataset *out);
/* Lists ids > after in id order; *out is malloc'd (n entries), free with store_dataset_list_free.
 * limit <= 0 means no limit (the same for the job and SAE lists). */
int store_dataset_list(store *st, int64_t after, int limit, store_dataset **out, int *n);
int store_dataset_set_labels(store *st, int64_t id, int has_labels);
/* STORE_CONFLICT while a queued or running job uses it. */
int store_dataset_delete(store *st, int64_t id);
void store_dataset_clear(store_dataset *d);
void store_dataset_list_free(store_dataset *items, int n);

/* Jobs */
int store_job_insert(store *st, const char *type, const char *spec_json, int64_t dataset_id,
                     int64_t sae_id, int total_steps, int64_t *id_out);
int store_job_get(store *st, int64_t id, store_job *out);
/* state_filter < 0 for all states. */
int store_job_list(store *st, int state_filter, int64_t after, int limit, store_job **out, int *n);
int store_job_count(store *st, store_job_state s, int64_t *n);
/* Claims the oldest queued job: STORE_OK with *out filled, STORE_NOTFOUND if none.
 * started_at is set by the first claim only (a requeued job keeps it); attempts += 1. */
int store_job_claim(store *st, store_job *out);
int store_job_progress(store *st, int64_t id, int step, double samples_per_s, double eta_s);
/* queued -> cancelled at once; running -> cancel_requested = 1; terminal -> STORE_CONFLICT. */
int store_job_request_cancel(store *st, int64_t id);
int store_job_cancel_requested(store *st, int64_t id, int *flag);
/* running -> failed | cancelled. */
int store_job_finish(store *st, int64_t id, store_job_state final_state, const char *error);
/* running -> succeeded with result_json, in one transaction. */
int store_job_succeed(store *st, int64_t id, const char *result_json);
/* running -> succeeded, inserting the SAE row and setting result {"sae": id} in one transaction. */
int store_job_succeed_with_sae(store *st, int64_t job_id, const store_sae *sae, int64_t *sae_id_out);
/* running -> queued (shutdown or crash recovery); keeps step so progress shows where it resumes.
 * A job whose cancel was requested goes to cancelled instead (so is not counted by store_requeue_running). */
int store_job_requeue(store *st, int64_t id);
/* At start-up: every running job back to queued. *n = how many. */
int store_requeue_running(store *st, int *n);
/* Terminal jobs only (STORE_CONFLICT otherwise); removes its metrics too. */
int store_job_delete(store *st, int64_t id);
void store_job_clear(store_job *j);
void store_job_list_free(store_job *items, int n);

/* Metric series */
int store_metric_append(store *st, int64_t job_id, const store_metric *m); /* also sets the job's latest_json */
/* Points with step > since_step, in step order; *out malloc'd (free()). Values stored from
 * non-finite numbers read back as NAN. STORE_NOTFOUND for an unknown job. */
int store_metric_since(store *st, int64_t job_id, int since_step, store_metric **out, int *n);

/* SAEs */
/* Inserts an SAE trained elsewhere (job NULL; dataset_id 0 = none), whose files in sae->dir are complete.
 * STORE_NOTFOUND when its dataset does not exist. */
int store_sae_import(store *st, const store_sae *sae, int64_t *id_out);
int store_sae_get(store *st, int64_t id, store_sae *out);
int store_sae_list(store *st, int64_t after, int limit, store_sae **out, int *n);
void store_sae_clear(store_sae *s);
void store_sae_list_free(store_sae *items, int n);

/* Now as an RFC 3339 UTC string ("2026-11-25T16:26:32Z"), whole seconds. buf >= 32 bytes. */
void store_now(char *buf, size_t n);

/* ---- Analysis results (store_analysis.c) ----
 *
 * One analyze result per SAE: a summary row (sae_analysis), a row per latent
 * (sae_latents) and per group (sae_groups), so sorting and paging are SQL.
 * Saving a new analyze result replaces the SAE's previous one and ends the
 * job as succeeded, in one transaction. PCA results are rows of `analyses`.
 * Stored reals that were not finite read back as NAN. */

enum { STORE_SORT_ID = 0, STORE_SORT_DENSITY, STORE_SORT_JACCARD };

typedef struct {
    int latent, group;
    double density, mean_act, max_act;
    char *hist_json;     /* {"edges":[...],"counts":[...]} */
    char *cos_json;      /* [[j, cos], ...] */
    char *jaccard_json;  /* [[j, J], ...] */
} store_latent;

typedef struct {
    int group;
    char *members_json;  /* [latent, ...] */
    double density, jaccard, max_cos;
    int circle;          /* -1: none (not a circles dataset) */
    double plane_fit;    /* NAN when circle is -1 */
} store_group;

typedef struct {
    int64_t sae_id, job_id, dataset_id;
    int64_t n_samples;     /* rows analysed */
    int group_size;        /* of the groups reported: the SAE's, or the clustering's */
    int n_groups;
    char *cluster_json;    /* NULL, or {"method","group_size","min_similarity"} */
    char *recovery_json;   /* NULL unless the dataset is circles */
    char *summary_json;    /* {"l0", "dead_frac", ...} */
    char *dir;             /* the firing pattern and projection files */
    char created_at[32];
} store_sae_analysis;

typedef struct {
    int64_t id, job_id, sae_id, dataset_id;
    int n_rows, n_components;
    char *latents_json;    /* [latent, ...] */
    char *variance_json;   /* [explained variance, ...] (n_components) */
    char *ratio_json;      /* [explained variance ratio, ...] */
    char *rows_json;       /* [row index, ...] (n_rows) */
    char *labels_json;     /* NULL, or [label, ...] (n_rows) */
    char *dir;             /* components.npy (c, dim), points.npy (rows, c), mean.npy (dim) */
    char created_at[32];
} store_analysis;

/* Replaces SAE a->sae_id's analysis with a, its latents (n_lat) and groups
 * (n_grp), and sets job a->job_id running -> succeeded with result_json, in
 * one transaction. *old_dir (if non-NULL) gets a malloc'd copy of the
 * replaced analysis's dir (NULL if none), for the caller to remove. */
int store_sae_analysis_save(store *st, const store_sae_analysis *a, const store_latent *lat, int n_lat,
                            const store_group *grp, int n_grp, const char *result_json, char **old_dir);
int store_sae_analysis_get(store *st, int64_t sae_id, store_sae_analysis *out); /* NOTFOUND: none yet */
void store_sae_analysis_clear(store_sae_analysis *a);
/* Latents / groups of an SAE in sort order (STORE_SORT_*; density and
 * jaccard descending, ties by index; latents have no jaccard order), after
 * index `after` in that order (after < 0: from the start). *out malloc'd,
 * free with *_list_free. */
int store_sae_latents_list(store *st, int64_t sae_id, int sort, int64_t after, int limit, store_latent **out, int *n);
int store_sae_latent_get(store *st, int64_t sae_id, int latent, store_latent *out);
void store_latent_clear(store_latent *l);
void store_latent_list_free(store_latent *items, int n);
int store_sae_groups_list(store *st, int64_t sae_id, int sort, int64_t after, int limit, store_group **out, int *n);
int store_sae_group_get(store *st, int64_t sae_id, int group, store_group *out);
void store_group_clear(store_group *g);
void store_group_list_free(store_group *items, int n);

/* Inserts a PCA analysis and sets its job running -> succeeded with
 * result {"analysis": id}, in one transaction. */
int store_analysis_insert(store *st, const store_analysis *a, int64_t *id_out);
int store_analysis_get(store *st, int64_t id, store_analysis *out);
void store_analysis_clear(store_analysis *a);

#endif
