/* daemon/jobrun_analyze.h — what the analyze job's two files share:
 * jobrun_analyze.c (set-up, the streaming pass, per-latent results, saving)
 * and jobrun_groups.c (grouping, group statistics, circle recovery,
 * group planes and the projections of the rows where each group fires).
 *
 * Groups: an SAE's own groups (latents g*s .. g*s+s-1, or its table of
 * groups of any size, include/sae_groups.h), or, when the spec asks to
 * cluster an ordinary SAE, the clusters of analysis_cluster_greedy. Either
 * way `order` lists the latents group by group and goff says where each
 * group starts in it, so every group-level function runs on the decoder
 * rows permuted into that order (W_perm), group g being rows goff[g] ..
 * goff[g+1]-1. */
#ifndef SAED_JOBRUN_ANALYZE_H
#define SAED_JOBRUN_ANALYZE_H
#include "analysis.h"
#include "artifacts.h"
#include "circles.h"
#include "datasrc.h"
#include "jobrun.h"
#include "sae.h"
#include "spec_analysis.h"
#include <limits.h>

#define JOBRUN_ANALYZE_PROJ_KEEP ARTIFACTS_PROJ_KEEP
#define JOBRUN_ANALYZE_DUP_CAP 100        /* near-duplicate pairs listed in the summary */
#define JOBRUN_ANALYZE_FVE_POINTS 32      /* points per circle for circle FVE */
#define JOBRUN_ANALYZE_FVE_BINS 10        /* circle FVE histogram bins over [0, 1] */
#define JOBRUN_ANALYZE_ROW_BATCH 1024     /* rows fetched at once */

typedef struct {
    const jobrun_ctx *ctx;
    spec_analysis_analyze spec;
    store_sae sae;
    sae_params p;
    par_pool *pool;            /* ctx->threads threads for the encoder's products */
    jobrun_dataset *ds;
    data_source src;
    circles *circ;             /* ground truth when the dataset is circles, else NULL */
    int n, dim, s, n_groups;   /* latents, width, reported group size (0: groups of any size), groups */
    int max_s;                 /* the largest group's size */
    int64_t rows;              /* samples analysed */
    analysis_stats stats;
    analysis_cooc cooc;
    int32_t *nb_cos_idx;       /* (n, K) decoder-cosine neighbours */
    float *nb_cos;             /* (n, K) */
    int32_t *nb_j_idx;         /* (n, K) Jaccard neighbours */
    float *nb_j;               /* (n, K) */
    int32_t dups[2 * JOBRUN_ANALYZE_DUP_CAP]; /* (JOBRUN_ANALYZE_DUP_CAP, 2) near-duplicate pairs */
    int64_t n_dups;
    int32_t *order;            /* (n) latents group by group: group g = order[goff[g] .. goff[g+1]-1] */
    int32_t *goff;             /* (n_groups + 1) */
    int32_t *group_of;         /* (n) each latent's group */
    float *W_perm;             /* (n, dim) decoder rows in group order */
    double *g_density;         /* (n_groups) fraction of rows where any member fired */
    double *g_jaccard;         /* (n_groups) mean Jaccard over member pairs */
    float *g_maxcos;           /* (n_groups) largest member-pair decoder cosine */
    analysis_recovery rec;     /* circles only (has_rec) */
    analysis_subspace sub;     /* circles and groups of 2 or more: groups scored as subspaces (has_sub) */
    int has_sub;
    int has_rec;
    float *fve;                /* (n_circles) circle FVE */
    int64_t *proj_ptr;         /* (n_groups + 1) */
    artifacts_proj *proj;      /* (proj_ptr[n_groups]) */
    char dir[PATH_MAX];        /* data_dir/analyses/sae-{id}/job-{job} */
    char err[512];
} jobrun_analyze_job;

/* jobrun_groups.c. Each returns 0, or -1 with j->err set. */
int jobrun_groups_form(jobrun_analyze_job *j);
int jobrun_groups_stats(jobrun_analyze_job *j);
int jobrun_groups_recovery(jobrun_analyze_job *j);
int jobrun_groups_projections(jobrun_analyze_job *j);
void jobrun_groups_free(jobrun_analyze_job *j);

#endif
