/* sae_arch — the architecture registry: one row per SAE architecture,
 * holding everything that differs between them.
 *
 * A row is a `const sae_arch_def sae_arch_NAME` defined in the
 * architecture's own file (core/sae_relu.c, sae_gated.c, sae_jumprelu.c,
 * sae_topk.c, sae_batchtopk.c) and listed once in SAE_ARCH_LIST
 * (include/sae.h); core/sae_arch.c makes the table from that list. The rest
 * of the tree asks the row (sae_arch_of) and never compares an arch: the
 * pipeline (core/sae_loss.c) runs the shared stages (core/sae_stage.c,
 * which know no architecture) around the row's forward and backward, the
 * trainer asks whether the blocked sparse core serves it (fast) and whether
 * its threshold ramps, the spec layer validates through sae_config_check,
 * the exporter names tensors and the SAELens architecture from it.
 *
 * The contract of the hooks, for one pass of B rows (sae_pass: coefficient,
 * threshold, training rules):
 *   forward   from w->pre (B, n) (x: (B, dim) the rows): w->z (B, n) and
 *             w->gnorm (B, n/s) = ||z_g|| (0 for groups that are off), and
 *             what the backward needs in w->arch_scratch; w->dz may serve as
 *             scratch. Returns the batch's sum of the penalty c weighs
 *             (unweighted); adds to *extra the batch's sum of loss terms with
 *             their own weight (gated: the auxiliary reconstruction).
 *   residual  (NULL: none) a loss on the reconstruction's residual, AuxK:
 *             called once per pass after the forward (g NULL) or, with a
 *             gradient, after the backward, when it adds its gradient to
 *             w->dz (as d loss/d pre) and g; returns the batch's sum, weighted.
 *   backward  w->dz (B, n): d loss/d z of the reconstruction in, d loss/d
 *             pre out (the penalty's term at scale coef/B included); adds the
 *             gradient of anything else its terms reach to g and the extras'
 *             gradient after b_dec (grad starts zeroed; the shared encoder
 *             backward then *adds* colsum(d pre) to g.b_enc).
 *   encode    inference in place: z (B, n) holds the pre-activations in, the
 *             activations out (the forward's values under inference rules at
 *             sae.threshold); gnorm (B, n/s); scratch: encode_floats(c, B).
 */
#ifndef SAED_SAE_ARCH_H
#define SAED_SAE_ARCH_H
#include "sae.h"

/* How long an extra tensor is. */
typedef enum { SAE_EXTRA_PER_LATENT = 0, SAE_EXTRA_PER_GROUP, SAE_EXTRA_ONE } sae_extra_len;

#define SAE_ARCH_MAX_EXTRAS 2

typedef struct {
    const char *name;          /* the tensor's name in sae.safetensors */
    sae_extra_len len;         /* n, n/s or 1 floats */
} sae_extra;

typedef struct sae_arch_def {
    const char *name;          /* the API's "arch" */
    /* ---- configuration ---- */
    /* 1 when c's loss weighs the penalty by the sparsity coefficient; NULL: always. 0: sparsity_coef
     * and its warm-up are accepted and ignored (topk sets the sparsity with k). */
    int (*uses_sparsity_coef)(const sae_config *c);
    int threshold_ramps;       /* 1: sae.threshold rises with the sparsity warm-up (relu) */
    int any_groups;            /* 1: takes groups of any size (a group table, include/sae_groups.h) */
    int resamples;             /* 1: train.resample_every may be set (archs without AuxK) */
    /* The bandwidth that goes with c when none is given (NULL: 0.001, jumprelu's in the paper). */
    float (*default_bandwidth)(const sae_config *c);
    /* The arch's own rules after sae_config_check's shared ones (NULL: none); same contract. */
    int (*check)(const sae_config *c, char *field, size_t fieldlen, char *msg, size_t msglen);
    /* ---- parameters ---- */
    int n_extras;              /* tensors after b_dec, in layout order */
    sae_extra extras[SAE_ARCH_MAX_EXTRAS];
    void (*init)(sae_params *p); /* the extras' initial values (NULL: zeros) */
    /* Cluster-then-retrain (NULL: not offered): initialises p, already initialised, from another SAE's
     * decoder rows (m, dim); *used gets how many groups it set from them. 0, or -1 when out of memory. */
    int (*init_from_rows)(sae_params *p, const float *rows, int m, int *used);
    /* A warm start from another SAE's weights (train_init_from_params), made to satisfy this arch's
     * decoder constraint (NULL: unit decoder rows, each encoder column and bias scaled to keep the
     * reconstruction). */
    void (*adopt_params)(sae_params *p);
    const char *b_enc_name;    /* b_enc's name in sae.safetensors (NULL: "b_enc") */
    /* ---- the pass (contracts above) ---- */
    size_t (*scratch_floats)(const sae_config *c, int B); /* w->arch_scratch (NULL: none) */
    double (*forward)(const sae_params *p, const sae_pass *pass, const float *x, int B, sae_work *w,
                      double *extra);
    double (*residual)(const sae_params *p, const sae_pass *pass, const float *x, int B, sae_work *w,
                       sae_view *g);
    void (*backward)(const sae_params *p, const sae_pass *pass, int B, sae_work *w, sae_view *g, float *grad);
    /* Sparse codes (NULL: none): z and d loss/d pre are 0 outside the kept groups (gnorm > 0), and this
     * maps one kept group's dz_g (s: d loss/d z in, d loss/d pre out) given its pre_g and z_g (s), the
     * penalty's term at scale c/B included; the pass then runs the decoder and the gradients over the
     * kept groups alone (include/sae_sparse.h), computing what forward + backward compute. */
    void (*group_backward)(const sae_config *c, const sae_pass *pass, float scale, const float *pre_g,
                           const float *z_g, float *dz_g);
    size_t (*encode_floats)(const sae_config *c, int B); /* encode's scratch (NULL: none) */
    void (*encode)(const sae_params *p, float *z, int B, float *gnorm, float *scratch);
    /* After a training pass: state learnt without a gradient (NULL: none). */
    void (*train_update)(sae_params *p, const sae_work *w, int B);
    /* The decoder's constraint, restored after each parameter update on decoder rows [i0, i1) (whole
     * groups); NULL: unit rows (sae_normalize_decoder_rows). */
    void (*constrain_decoder)(sae_params *p, int i0, int i1);
    int fast;                  /* 1: the trainer runs it on the blocked sparse core (include/sae_fast.h) */
    /* ---- export (cfg.json, as SAELens reads it) ---- */
    const char *saelens_arch;  /* "standard" (SAELens's ReLU), "gated", "topk", "jumprelu", ... */
    int saelens_topk;          /* 1: activation_fn_str "topk" with activation_fn_kwargs.k */
    /* SAELens's per-latent threshold (n floats into out), for archs that have one; NULL: none. */
    void (*saelens_threshold)(const sae_params *p, float *out);
    /* ---- SAELens's exact equivalent (saelens.tar, core/saelens.c) ----
     * For group_size 1 (groups have none; core/saelens.c refuses them first): the architecture SAELens
     * 6 loads whose inference equals this arch's latent by latent ("standard", "jumprelu", "topk",
     * "gated"), and for "jumprelu" the per-latent threshold thr (n) with ReLU(pre) * (pre > thr) =
     * this arch's z. NULL: none (subspace's signed codes). */
    const char *(*saelens_exact)(const sae_params *p, float *thr);
} sae_arch_def;

/* For a row's check: writes "sae.NAME" into field and text into msg; returns -1. */
int sae_config_reject(char *field, size_t fieldlen, char *msg, size_t msglen, const char *name, const char *text);

/* The row of c's arch; c->arch must be in SAE_ARCH_LIST. */
const sae_arch_def *sae_arch_of(const sae_config *c);
/* The row of a, or NULL outside the list. */
const sae_arch_def *sae_arch_get(sae_arch a);

#endif
