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
 * architecture extras (gated: r_mag (n), b_mag (n); jumprelu: log_theta (n/s);
 * batchtopk: threshold (1), learnt without gradient, see sae_train_update). */
#ifndef SAED_SAE_H
#define SAED_SAE_H
#include <stddef.h>
#include <stdint.h>
#include "par.h"

typedef enum { SAE_RELU = 0, SAE_GATED, SAE_TOPK, SAE_BATCHTOPK, SAE_JUMPRELU } sae_arch;

typedef struct {
    sae_arch arch;
    int dim;             /* input width */
    int n_latents;       /* n, a multiple of group_size */
    int group_size;      /* s >= 1; default 2 in the API, 1 = ordinary SAE */
    float sparsity_coef; /* c at the end of warm-up; default 0.01 */
    float orth_coef;     /* weight of the within-group orthogonality penalty; default 0 */
    float threshold;     /* relu: groups with ||z_g|| below it are zeroed, with JumpReLU's
                          * straight-through gradient (see sae_loss_grad below); default 0 */
    int k;               /* topk/batchtopk: groups kept per row; 0 = unset */
    float bandwidth;     /* width eps of the rectangle kernel of the straight-through pseudo-derivatives:
                          * jumprelu's (of theta; API default 0.001) and relu's with threshold > 0 (of
                          * rho_g; API default threshold / 2); must be > 0 for those, >= 0 (unused)
                          * otherwise */
    float aux_k_coef;    /* topk/batchtopk: weight of the AuxK loss; default 1/32 in the API; 0 = off */
    int aux_k;           /* topk/batchtopk: dead groups AuxK uses per row; 0 = auto (sae_aux_k_groups) */
} sae_config;

/* The gated and jumprelu archs (full definitions: core/sae_gated.c, core/sae_jumprelu.c).
 *  gated: W_enc/b_enc are W_gate/b_gate, extras r_mag, b_mag; pi_gate = W_enc^T (x - b_dec) + b_enc,
 *    pi_mag = exp(r_mag) * (W_enc^T (x - b_dec)) + b_mag; group g's gate is open when
 *    ||ReLU(pi_gate_g)||_2 > 0 (some gate pre-activation positive); z = open * ReLU(pi_mag);
 *    loss = mse + c sum_g ||ReLU(pi_gate_g)||_2 + ||x - (ReLU(pi_gate) W_dec + b_dec)||^2 with W_dec
 *    and b_dec frozen in that last (auxiliary) term. threshold must be 0.
 *  jumprelu: extra log_theta (n/s), theta = exp(log_theta); rho_g = ||ReLU(pre_g)||_2, or max(pre_g)
 *    when no pre is positive (rho = pre for group_size 1); z_g = ReLU(pre_g) H(rho_g - theta_g);
 *    loss = mse + c sum_g H(rho_g - theta_g) (L0 over groups); theta gets straight-through
 *    pseudo-derivatives with a rectangle kernel of width bandwidth. threshold > 0 sets the
 *    initial theta (0: 0.001).
 *  Both: group_size 1 is the published SAE exactly; sae_encode applies the same rule;
 *  sae_loss_terms.sparsity is the unweighted penalty above and loss includes gated's auxiliary term. */

/* The topk and batchtopk archs (full definitions: core/sae_topk.c), after Gao et al. 2024 and
 * Bussmann et al. 2024, with k counting groups. a = ReLU(pre), rho_g = ||a_g||_2 (a itself for
 * group_size 1); z = a on the kept groups, 0 elsewhere:
 *  topk: per row, the k groups of largest rho (training and inference alike).
 *  batchtopk: training: the k*B groups of largest rho in the whole batch; inference (sae_encode,
 *    sae_loss_grad): the groups with rho >= theta, theta the extra "threshold" float, an EMA
 *    (decay 0.99) of each training batch's smallest kept non-zero rho (sae_train_update); 0 until
 *    the first step, which keeps every non-zero group.
 *  Ties keep the lower index; k is required (1 .. n/s). loss = mse + orth_coef * orth, and while
 *  training (sae_loss_grad_train with a dead mask) + aux_k_coef * mean_rows ||e - e_hat||^2: AuxK,
 *  where per row the aux_k dead groups (all latents dead) of largest rho give e_hat = z_aux W_dec
 *  and e = x - x_hat is a constant target (stop-gradient); 0 when no group is dead. sparsity_coef
 *  and its warm-up are not used (sae_loss_terms.sparsity still reports sum_g rho of z); threshold
 *  must be 0. group_size 1 is the ordinary TopK / BatchTopK SAE exactly. */

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
 * Gradients are exact for the loss above (but for the threshold's straight-through
 * term), with these choices:
 *  - d||z_g||/dz_g = z_g / ||z_g||, and 0 when ||z_g|| = 0 (group_size 1: 1 where
 *    z > 0, else 0, the L1 subgradient);
 *  - ReLU'(0) = 0;
 *  - threshold tau > 0 (relu): with a = ReLU(pre) and rho_g = ||a_g|| (a_i for
 *    group_size 1), z_g = H(rho_g - tau) a_g: a group below the threshold is set
 *    to 0 (gnorm 0), in training and at inference (sae_encode). The step H gets
 *    JumpReLU's straight-through pseudo-derivative (Rajamanoharan et al. 2024),
 *    a rectangle kernel of width eps = bandwidth, taken with respect to rho (the
 *    threshold itself is fixed): dH/drho := [|rho - tau| < eps/2] / eps. So
 *      d loss/d pre_i = [z_i > 0] (dx_hat . d_i + (c/B) z_i / rho_g)
 *                     + [pre_i > 0] [|rho_g - tau| < eps/2] (q_g / eps) a_i / rho_g,
 *      q_g = dx_hat . (sum_j a_j d_j) + (c/B) rho_g,
 *    q_g being d loss/d H at the forward's reconstruction (dx_hat = 2 (x_hat -
 *    x) / B): what switching the group on costs (> 0) or saves (< 0). The first
 *    line is the exact gradient (0 for zeroed groups); the second, only for
 *    groups within eps/2 of the threshold on either side, pushes a group across
 *    the threshold when that lowers the loss. It is the exact gradient of the
 *    loss plus sum_{b,g in the window} stop_gradient(q_g / eps) (rho_g - rho_g0),
 *    rho_g0 the forward's value (tests/test_core.c checks it so). Nothing reaches
 *    W_dec from zeroed groups (their z is 0). A learnt threshold is `jumprelu`.
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
    float *arch_scratch; /* gated (n + 2Bn + B dim), jumprelu (n/s); NULL for other archs (core/sae_gj.h) */
    par_pool *pool; /* not owned: threads for the products (par_sgemm); NULL after sae_work_alloc = the caller's */
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

/* A training step's loss: sae_loss_grad under the training rules. Differs only for topk/batchtopk:
 * batchtopk keeps the batch's k*B largest groups (sae_loss_grad uses the learnt threshold), and
 * dead (n; 1 = the latent has not fired for dead_window steps; NULL = none) feeds AuxK (above). */
double sae_loss_grad_train(const sae_params *p, const float *x, int B, float coef, const unsigned char *dead,
                           sae_work *w, float *grad, sae_loss_terms *terms);
/* After a training step's sae_loss_grad_train on B rows (w as it left it), updates the state that
 * is learnt without a gradient: batchtopk's threshold. Nothing for other archs. Call once per step. */
void sae_train_update(sae_params *p, const sae_work *w, int B);
/* AuxK's groups per row: aux_k, or if 0, min(n/s, max(1, (dim/2)/s)) (Gao et al.: dim/2 latents). */
int sae_aux_k_groups(const sae_config *c);

/* ---- Named tensors (export) and the input scale ---- */

/* One named tensor of a params buffer, for writers (sae.safetensors) and
 * readers. Names follow SAELens: W_enc (dim, n), W_dec (n, dim), b_enc (n),
 * b_dec (dim) (gated: b_enc is b_gate, as in SAELens); architecture extras
 * come after them under their own names.
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
