/* sae — the sparse autoencoder: configuration, parameters, forward/backward.
 *
 *   z     = act(W_enc^T (x - b_dec) + b_enc)      (B, n)
 *   x_hat = W_dec^T z + b_dec                      (B, dim)
 *   loss  = mean_batch [ sum_dims (x_hat - x)^2 + c * penalty(z) ] + arch terms
 *           + orth_coef * sum_groups sum_{i != j in g} ReLU(d_i . d_j)
 *
 * Latents are split into contiguous groups of group_size (group g = latents
 * g*s .. g*s+s-1), or, with a group table (include/sae_groups.h; group_size
 * then 0), into groups of any sizes and members. act and penalty are the architecture's (relu: ReLU and
 * sum_groups ||z_g||_2, the L1 norm for group_size 1); each architecture is
 * one row of the registry (include/sae_arch.h), defined in its own file and
 * listed once in SAE_ARCH_LIST below; nothing else in the tree decides
 * between architectures. Decoder rows d_i = W_dec[i,:] are kept at unit norm
 * by the trainer.
 *
 * All parameters live in one contiguous float buffer; sae_views() lays named
 * views over any buffer of sae_n_params() floats, so gradients and Adam
 * moments share the layout and the optimiser update is one loop.
 * Layout: W_enc (dim, n) | b_enc (n) | W_dec (n, dim) | b_dec (dim), then the
 * architecture's extras (its registry row lists them: gated r_mag (n),
 * b_mag (n); jumprelu log_theta (n/s); batchtopk threshold (1), learnt
 * without gradient, see sae_train_update). */
#ifndef SAED_SAE_H
#define SAED_SAE_H
#include <stddef.h>
#include <stdint.h>
#include "par.h"

/* Every architecture, once: SAE_ARCH_LIST(X) expands X(ID, name) per row, which gives the enum
 * value SAE_ID (stored in checkpoints: new rows go at the end), the API's name, and the row of the
 * registry (include/sae_arch.h: a `const sae_arch_def sae_arch_name` defined in the file named
 * beside it). Adding an architecture is one line here and that one file. */
#define SAE_ARCH_LIST(X)                                                                                    \
    X(RELU, relu)           /* core/sae_relu.c: ReLU, L1 of L2 over groups, optional threshold */          \
    X(GATED, gated)         /* core/sae_gated.c */                                                          \
    X(TOPK, topk)           /* core/sae_topk.c */                                                           \
    X(BATCHTOPK, batchtopk) /* core/sae_batchtopk.c */                                                      \
    X(JUMPRELU, jumprelu)   /* core/sae_jumprelu.c */                                                       \
    X(SUBSPACE, subspace)   /* core/sae_subspace.c: signed group codes, orthonormal group decoders */

#define SAE_ARCH_ENUM_ROW(ID, name) SAE_##ID,
typedef enum { SAE_ARCH_LIST(SAE_ARCH_ENUM_ROW) SAE_N_ARCHS } sae_arch;
#undef SAE_ARCH_ENUM_ROW

struct sae_groups;

typedef struct {
    sae_arch arch;
    int dim;             /* input width */
    int n_latents;       /* n, a multiple of group_size */
    int group_size;      /* s >= 1; default 2, 1 = ordinary SAE; 0 with groups */
    const struct sae_groups *groups; /* NULL: contiguous groups of group_size; else groups of any sizes
                          * (include/sae_groups.h), not owned: sae_params_alloc copies it */
    float sparsity_coef; /* c at the end of warm-up; default 0.01 */
    float orth_coef;     /* weight of the within-group orthogonality penalty; default 0 */
    float threshold;     /* relu: groups with ||z_g|| below it are zeroed, with JumpReLU's
                          * straight-through gradient (core/sae_relu.c); jumprelu: the initial
                          * theta; default 0 */
    int k;               /* topk/batchtopk: groups kept per row; 0 = unset */
    float bandwidth;     /* width eps of the rectangle kernel of the straight-through pseudo-derivatives:
                          * jumprelu's (of theta) and relu's with threshold > 0 (of rho_g); must be > 0
                          * for those, >= 0 (unused) otherwise; default sae_config_default_bandwidth() */
    float aux_k_coef;    /* topk/batchtopk: weight of the AuxK loss; default 1/32; 0 = off */
    int aux_k;           /* topk/batchtopk: dead groups AuxK uses per row; 0 = auto (sae_aux_k_groups) */
} sae_config;

typedef struct {
    float *W_enc; /* (dim, n) */
    float *b_enc; /* (n) */
    float *W_dec; /* (n, dim) */
    float *b_dec; /* (dim) */
} sae_view;

typedef struct {
    sae_config cfg;      /* cfg.groups points at own_groups when there is a table */
    struct sae_groups *own_groups; /* the params' copy of the group table, or NULL */
    size_t n_params; /* floats in buf */
    float *buf;      /* (n_params) */
    sae_view v;      /* views into buf */
} sae_params;

const char *sae_arch_name(sae_arch a);          /* "relu", ...; "unknown" outside the list */
int sae_arch_parse(const char *name, sae_arch *out); /* 0 or -1 */
/* "relu, gated, topk, batchtopk, jumprelu": every name, for messages. */
const char *sae_arch_names(void);

/* The defaults of every field but arch (relu), dim and n_latents (0: the caller's): group_size 2,
 * sparsity_coef 0.01, orth_coef 0, threshold 0, k 0 (unset), aux_k_coef 1/32, aux_k 0 (auto) and
 * bandwidth sae_config_default_bandwidth() of that. Set arch and threshold first and call
 * sae_config_default_bandwidth() again if the caller does not give a bandwidth. */
void sae_config_default(sae_config *c);
/* The bandwidth that goes with c's arch and threshold when none is given (its registry row's
 * choice): relu with a threshold threshold / 2 (a window of +-threshold/4), else 0.001 (jumprelu's,
 * from the paper). */
float sae_config_default_bandwidth(const sae_config *c);

/* Checks a configuration. Returns 0, or -1 with the offending field's API name
 * (e.g. "sae.n_latents") in field and a message saying what to do in msg. */
int sae_config_check(const sae_config *c, char *field, size_t fieldlen, char *msg, size_t msglen);

size_t sae_n_params(const sae_config *c);
void sae_views(const sae_config *c, float *buf, sae_view *v);

/* Allocates parameters (zeroed). Returns 0 or -1 (out of memory). */
int sae_params_alloc(sae_params *p, const sae_config *c);
void sae_params_free(sae_params *p);
/* Tied initialisation: random unit decoder rows (or the arch's decoder constraint: subspace's
 * orthonormal groups), W_enc = W_dec^T * min(1, dim/n),
 * biases 0 (the scale keeps the first reconstructions at the data's scale), then the
 * architecture's extras (its registry row). */
void sae_params_init(sae_params *p, uint64_t seed);
/* Rescales every decoder row to unit norm; _rows: rows [i0, i1) only. */
void sae_normalize_decoder(sae_params *p);
void sae_normalize_decoder_rows(sae_params *p, int i0, int i1);
/* Removes from each decoder row's gradient (grad: sae_n_params floats, the
 * params layout) its component along that row, so a step moves along the
 * unit sphere to first order; _rows: rows [i0, i1) only. */
void sae_project_decoder_grad(const sae_params *p, float *grad);
void sae_project_decoder_grad_rows(const sae_params *p, float *grad, int i0, int i1);

/* Inference: z (B, n) for x (B, dim); x_hat (B, dim) if non-NULL. Uses the
 * trained architecture's inference rule; the products run on pool (NULL: the
 * calling thread; include/par_gemm.h). Returns 0 or -1 (out of memory). */
int sae_encode(const sae_params *p, par_pool *pool, const float *x, int B, float *z, float *x_hat);

/* Bytes a training job of this shape needs (params, grads, Adam moments, batch
 * activations), for the API's 422 "too large for the memory limit". */
size_t sae_train_bytes(const sae_config *c, int batch_size);

/* ---- Loss and gradients of one batch (the trainer's and the tests' entry) ----
 *
 * Gradients are exact for the loss (but for the straight-through terms of a
 * threshold, which each architecture's file derives), with these choices:
 *  - d||z_g||/dz_g = z_g / ||z_g||, and 0 when ||z_g|| = 0 (group_size 1: 1 where
 *    z > 0, else 0, the L1 subgradient);
 *  - ReLU'(0) = 0;
 *  - orth: the sum runs over ordered pairs, so each unordered pair counts
 *    twice; d/dd_i = 2 orth_coef sum_{j != i in g, d_i.d_j > 0} d_j. It is not
 *    divided by the batch size.
 * The decoder-norm constraint is the trainer's job: these are gradients with
 * respect to the raw parameters. */

/* What one pass of the loss differs in besides parameters and rows. */
typedef struct {
    float coef;                /* c: the sparsity coefficient (the trainer's c(t)) */
    float threshold;           /* relu's group threshold for this pass: sae.threshold, or during the
                                * sparsity warm-up the trainer's ramp (train_threshold_at) */
    int train;                 /* 1: the training rules (batchtopk's batch top-k; AuxK on dead) */
    const unsigned char *dead; /* (n) 1 = the latent is dead (AuxK's input), or NULL: none */
} sae_pass;

typedef struct {
    int B;          /* rows the buffers hold */
    float *xc;      /* (B, dim) x - b_dec */
    float *pre;     /* (B, n) encoder pre-activations */
    float *z;       /* (B, n) activations */
    float *dz;      /* (B, n) d loss/d z, then d loss/d pre; the arch's forward may use it as scratch */
    float *x_hat;   /* (B, dim) reconstructions */
    float *dx_hat;  /* (B, dim) d loss/d x_hat */
    float *gnorm;   /* (B, G) group norms (G = sae_n_groups) ||z_g|| (0 for groups that are off) */
    float *colsum;  /* (n) column sums of d loss/d pre */
    float *arch_scratch; /* (the registry row's scratch_floats) or NULL */
    struct sae_sparse *sparse; /* the pass over kept groups alone (include/sae_sparse.h), for rows with
                                * group_backward; NULL: dense passes only */
    void *aux_scratch; /* AuxK's lists (sae_stage_auxk_bytes), for rows with a residual; else NULL */
    par_pool *pool; /* not owned: threads for the products (par_sgemm); NULL after sae_work_alloc = the caller's */
} sae_work;

typedef struct {
    double loss;     /* the loss above, with the coef passed in */
    double mse;      /* mean over rows of sum over dims of (x_hat - x)^2 */
    double sparsity; /* mean over rows of the arch's penalty, unweighted (relu: sum_groups ||z_g||) */
    double orth;     /* sum_groups sum_{i != j} ReLU(d_i . d_j) (not weighted; 0 if orth_coef is 0) */
    double l0;       /* mean over rows of active latents */
    double l0_groups;/* mean over rows of active groups */
} sae_loss_terms;

size_t sae_work_bytes(const sae_config *c, int B);
int sae_work_alloc(sae_work *w, const sae_config *c, int B); /* 0 or -1 (out of memory) */
void sae_work_free(sae_work *w);

/* Loss of the batch x (B, dim), 1 <= B <= w->B, under pass. If grad is non-NULL
 * (sae_n_params floats, the params layout) it is overwritten with d loss/d
 * params. Afterwards w->z holds the activations and w->x_hat the
 * reconstructions. terms may be NULL. Returns the loss. */
double sae_loss_grad_pass(const sae_params *p, const float *x, int B, const sae_pass *pass, sae_work *w,
                          float *grad, sae_loss_terms *terms);
/* The same at coefficient coef and sae.threshold: inference rules (sae_loss_grad), or training
 * rules with dead (n, or NULL) feeding AuxK (sae_loss_grad_train). */
double sae_loss_grad(const sae_params *p, const float *x, int B, float coef, sae_work *w, float *grad,
                     sae_loss_terms *terms);
double sae_loss_grad_train(const sae_params *p, const float *x, int B, float coef, const unsigned char *dead,
                           sae_work *w, float *grad, sae_loss_terms *terms);
/* After a training pass on B rows (w as it left it), updates the state that is learnt without a
 * gradient (the registry row's train_update: batchtopk's threshold). Call once per step. */
void sae_train_update(sae_params *p, const sae_work *w, int B);
/* AuxK's groups per row: aux_k, or if 0, min(n/s, max(1, (dim/2)/s)) (Gao et al.: dim/2 latents). */
int sae_aux_k_groups(const sae_config *c);

/* ---- Named tensors (export) and the input scale ---- */

/* One named tensor of a params buffer, for writers (sae.safetensors) and
 * readers. Names follow SAELens: W_enc (dim, n), W_dec (n, dim), b_enc (n),
 * b_dec (dim) (the registry row may rename b_enc: gated's is b_gate, as in
 * SAELens); architecture extras come after them under their own names.
 * The tensors tile the buffer: in layout order, back to back, covering all
 * sae_n_params() floats (tests check this for every arch). */
typedef struct {
    const char *name;  /* static string */
    float *data;       /* (shape) into the params buffer */
    int ndim;          /* 1 or 2 */
    int64_t shape[2];  /* shape[1] unused when ndim is 1 */
} sae_tensor;

#define SAE_MAX_TENSORS 8

/* Fills out[0 .. min(count, cap)) and returns count, the number of tensors
 * of p's architecture (so a caller with too small a cap can tell). */
int sae_tensors(const sae_params *p, sae_tensor *out, int cap);

/* Folds an input scale into the weights. A model trained on scaled rows
 * s*x (train.normalize_input) becomes one that takes raw rows x and
 * reconstructs raw rows:
 *   W_enc *= s, W_dec /= s, b_dec /= s; b_enc and every extra unchanged.
 * Then W_enc'^T (x - b_dec') = W_enc^T (s x - b_dec): the pre-activations,
 * hence z, are exactly those of the scaled model (so thresholds on z or
 * pre, e.g. sae.threshold, jumprelu's theta, batchtopk's threshold, gated's
 * gate, need no change), and x_hat' = W_dec'^T z + b_dec' = x_hat / s. This
 * is the form SAELens writes (fold_activation_norm_scaling_factor); decoder
 * rows then have norm 1/s, not 1. It holds for any architecture whose
 * pre-activations are all affine in W_enc^T (x - b_dec); an architecture
 * with another input matrix must scale it here too. s must be > 0. */
void sae_fold_input_scale(sae_params *p, float s);

#endif
