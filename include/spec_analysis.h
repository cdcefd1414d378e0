/* spec_analysis — the `analyze` and `pca` job bodies (spec.h's conventions:
 * an unknown field is a 400 naming it, a wrong type 400, an impossible value
 * 422; errors are appended to a spec_errors).
 *
 *   {"type":"analyze","sae":3,"dataset":1,"n_samples":100000,"neighbors":10,
 *    "cluster":{"method":"cosine"|"jaccard","group_size":2,"min_similarity":0}}
 *   {"type":"pca","sae":3,"dataset":5,"rows":{"labels":[...]} | {"indices":[...]},
 *    "top_latents":25,"components":5}
 *
 * "dataset" defaults to the dataset the SAE was trained on. The validators
 * (spec/jobtype.c) check a body against what its ids name
 * (spec_analysis_refs, filled from the store) and the API stores the
 * normalised spec; the worker reads it back with spec_analysis_parse_analyze
 * / spec_analysis_parse_pca (refs are not checked again). Every name here
 * carries the file's prefix, spec_analysis_ (SPEC_ANALYSIS_ for constants). */
#ifndef SAED_SPEC_ANALYSIS_H
#define SAED_SPEC_ANALYSIS_H
#include <stdint.h>
#include <jansson.h>
#include "spec.h"

#define SPEC_ANALYSIS_DEFAULT_SAMPLES 100000
#define SPEC_ANALYSIS_MAX_SAMPLES 10000000 /* rows are int32 in the firing file; progress is an int */
#define SPEC_ANALYSIS_DEFAULT_NEIGHBORS 10
#define SPEC_ANALYSIS_MAX_NEIGHBORS 100
#define SPEC_ANALYSIS_CLUSTER_MAX_GROUP 64
#define SPEC_ANALYSIS_PCA_MAX_ROWS 50000   /* rows chosen by index, or the first rows matching the labels */
#define SPEC_ANALYSIS_PCA_MAX_LABELS 1000
#define SPEC_ANALYSIS_PCA_MAX_LATENTS 512  /* ANALYSIS_EIG_MAX */
#define SPEC_ANALYSIS_PCA_DEFAULT_LATENTS 25
#define SPEC_ANALYSIS_PCA_DEFAULT_COMPONENTS 5

enum { SPEC_ANALYSIS_CLUSTER_NONE = 0, SPEC_ANALYSIS_CLUSTER_COSINE, SPEC_ANALYSIS_CLUSTER_JACCARD };

/* What the ids of a body name, looked up by the caller. */
typedef struct {
    int sae_found;          /* 0: the SAE id does not exist (or was not given) */
    int sae_dim, sae_n_latents, sae_group_size;
    int64_t sae_dataset;    /* the SAE's training dataset (0 if deleted): the default "dataset" */
    int dataset_found;
    int64_t dataset_id;
    int dataset_dim;
    int64_t dataset_n_rows; /* -1: endless */
    int dataset_has_labels;
} spec_analysis_refs;

typedef struct {
    int64_t sae, dataset;
    int64_t n_samples;
    int neighbors;          /* K of each latent's neighbour lists */
    int cluster;            /* SPEC_ANALYSIS_CLUSTER_* */
    int cluster_group_size;
    float cluster_min_sim;
} spec_analysis_analyze;

typedef struct {
    int64_t sae, dataset;
    int64_t *indices;       /* (n_indices) or NULL */
    int n_indices;
    char **labels;          /* (n_labels) or NULL */
    int n_labels;
    int top_latents, components;
} spec_analysis_pca;

/* The ids a body names ("sae", "dataset"; 0 if absent or not a positive
 * integer), so the caller can look them up before validating. */
void spec_analysis_ids(const json_t *body, int64_t *sae, int64_t *dataset);

/* Validate a body against refs; a new normalised object, or NULL with errs
 * filled. max_bytes: the memory limit for the job (0 = none). */
json_t *spec_analysis_normalize_analyze(const json_t *body, const spec_analysis_refs *refs, size_t max_bytes,
                                        spec_errors *errs);
json_t *spec_analysis_normalize_pca(const json_t *body, const spec_analysis_refs *refs, spec_errors *errs);

/* Stored (normalised) specs back to structs: 0, or -1 with errs appended to
 * (spec_train_configs' convention). */
int spec_analysis_parse_analyze(const char *spec_json, spec_analysis_analyze *out, spec_errors *errs);
int spec_analysis_parse_pca(const char *spec_json, spec_analysis_pca *out, spec_errors *errs);
void spec_analysis_pca_free(spec_analysis_pca *p);

#endif
