/* sae — the sparse autoencoder: configuration, parameters, forward/backward.
 *
 *   z     = act(W_enc^T (x - b_dec) + b_enc)      (B, n)
 *   x_hat = W_dec^T z + b_dec                      (B, dim)
 *   loss  = mean_batch [ sum_dims (x_hat - x)^2 + c * sum_groups ||z_g||_2 ]
 *           + orth_coef * sum_groups sum_{i != j in g} ReLU(d_i . d_j)
 *
 * Latents are split into contiguous groups of group_size (group g = latents
 * g*s .. g*s+s-1); with group_size 1 the penalty is the L1 norm. Decoder rows
 * d_i = W_dec[i,:] are kept at unit norm by the trainer.
 *
 * All parameters live in one contiguous float buffer; sae_views() lays named
 * views over any buffer of sae_n_params() floats, so gradients and Adam
 * moments share the layout and the optimiser update is one loop.
 * Layout: W_enc (dim, n) | b_enc (n) | W_dec (n, dim) | b_dec (dim), then
 * architecture extras (gated: r_mag (n), b_mag (n); jumprelu: log_theta (n/s)). */
#ifndef SAED_SAE_H
#define SAED_SAE_H
#include <stddef.h>
#include <stdint.h>

typedef enum { SAE_RELU = 0, SAE_GATED, SAE_TOPK, SAE_BATCHTOPK, SAE_JUMPRELU } sae_arch;

typedef struct {
    sae_arch arch;
    int dim;             /* input width */
    int n_latents;       /* n, a multiple of group_size */
    int group_size;      /* s >= 1; default 2 in the API, 1 = ordinary SAE */
    float sparsity_coef; /* c at the end of warm-up; default 0.01 */
    float orth_coef;     /* weight of the within-group orthogonality penalty; default 0 */
    float threshold;     /* groups with ||z_g|| below it are zeroed; default 0 */
    int k;               /* topk/batchtopk: groups kept per row; 0 = unset */
} sae_config;

typedef struct {
    float *W_enc; /* (dim, n) */
    float *b_enc; /* (n) */
    float *W_dec; /* (n, dim) */
    float *b_dec; /* (dim) */
} sae_view;

typedef struct {
    sae_config cfg;
    size_t n_params; /* floats in buf */
    float *buf;      /* (n_params) */
    sae_view v;      /* views into buf */
} sae_params;

const char *sae_arch_name(sae_arch a);          /* "relu", ... */
int sae_arch_parse(const char *name, sae_arch *out); /* 0 or -1 */

/* Checks a configuration. Returns 0, or -1 with the offending field's API name
 * (e.g. "sae.n_latents") in field and a message saying what to do in msg. */
int sae_config_check(const sae_config *c, char *field, size_t fieldlen, char *msg, size_t msglen);

size_t sae_n_params(const sae_config *c);
void sae_views(const sae_config *c, float *buf, sae_view *v);

/* Allocates parameters (zeroed). Returns 0 or -1 (out of memory). */
int sae_params_alloc(sae_params *p, const sae_config *c);
void sae_params_free(sae_params *p);
/* Tied initialisation: random unit decoder rows, W_enc = W_dec^T * min(1, dim/n),
 * biases 0 (the scale keeps the first reconstructions at the data's scale). */
void sae_params_init(sae_params *p, uint64_t seed);
/* Rescales every decoder row to unit norm. */
void sae_normalize_decoder(sae_params *p);
/* Removes from each decoder row's gradient (grad: sae_n_params floats, the
 * params layout) its component along that row, so a step moves along the
 * unit sphere to first order. */
void sae_project_decoder_grad(const sae_params *p, float *grad);

/* Inference: z (B, n) for x (B, dim); x_hat (B, dim) if non-NULL. Uses the
 * trained architecture's inference rule. Returns 0 or -1 (out of memory). */
int sae_encode(const sae_params *p, const float *x, int B, float *z, float *x_hat);

/* Bytes a training job of this shape needs (params, grads, Adam moments, batch
 * activations), for the API's 422 "too large for the memory limit". */
size_t sae_train_bytes(const sae_config *c, int batch_size);

/* ---- Loss and gradients of one batch (the trainer's and the tests' entry) ----
 *
 * Gradients are exact for the loss above, with these choices:
 *  - d||z_g||/dz_g = z_g / ||z_g||, and 0 when ||z_g|| = 0 (group_size 1: 1 where
 *    z > 0, else 0, the L1 subgradient);
 *  - ReLU'(0) = 0;
 *  - threshold > 0: after the ReLU, a group with ||z_g|| < threshold is set to
 *    0. A kept group's gradient is the exact ReLU gradient; a zeroed group gets
 *    none (its latents are locally constant 0). The threshold is a fixed
 *    hyperparameter: it gets no gradient, and the jump at ||z_g|| = threshold
 *    is not differentiated (JumpReLU-style; a learnt threshold is the
 *    `jumprelu` arch's job). The same rule holds at inference (sae_encode).
 *  - orth: the sum runs over ordered pairs, so each unordered pair counts
 *    twice; d/dd_i = 2 orth_coef sum_{j != i in g, d_i.d_j > 0} d_j. It is not
 *    divided by the batch size.
 * The decoder-norm constraint is the trainer's job: these are gradients with
 * respect to the raw parameters. */
typedef struct {
    int B;          /* rows the buffers hold */
    float *xc;      /* (B, dim) x - b_dec */
    float *pre;     /* (B, n) encoder pre-activations */
    float *z;       /* (B, n) activations */
    float *dz;      /* (B, n) d loss/d z, then d loss/d pre */
    float *x_hat;   /* (B, dim) reconstructions */
    float *dx_hat;  /* (B, dim) d loss/d x_hat */
    float *gnorm;   /* (B, n/s) group norms ||z_g|| (0 for zeroed groups) */
    float *colsum;  /* (n) column sums of d loss/d pre */
} sae_work;

typedef struct {
    double loss;     /* the loss above, with the coef passed in */
    double mse;      /* mean over rows of sum over dims of (x_hat - x)^2 */
    double sparsity; /* mean over rows of sum_groups ||z_g|| (not weighted) */
    double orth;     /* sum_groups sum_{i != j} ReLU(d_i . d_j) (not weighted; 0 if orth_coef is 0) */
    double l0;       /* mean over rows of active latents */
    double l0_groups;/* mean over rows of active groups */
} sae_loss_terms;

size_t sae_work_bytes(const sae_config *c, int B);
int sae_work_alloc(sae_work *w, const sae_config *c, int B); /* 0 or -1 (out of memory) */
void sae_work_free(sae_work *w);

/* Loss of the batch x (B, dim), B <= w->B, with sparsity coefficient coef.
 * If grad is non-NULL (sae_n_params floats, the params layout) it is
 * overwritten with d loss/d params. Afterwards w->z holds the activations and
 * w->x_hat the reconstructions. terms may be NULL. Returns the loss. */
double sae_loss_grad(const sae_params *p, const float *x, int B, float coef, sae_work *w,
                     float *grad, sae_loss_terms *terms);

#endif
