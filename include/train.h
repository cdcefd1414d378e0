/* train — the training loop: Adam, LR and sparsity schedules, evaluation on
 * held-out rows, dead-latent tracking, checkpoints as opaque blobs.
 *
 * The trainer does no I/O and owns only a small pool of train.threads threads,
 * on which both its products (single-threaded BLAS calls, one per thread:
 * include/par_gemm.h) and its element-wise passes run: the caller (a worker)
 * passes a data source and hooks. Training rows for step t are rows
 * [t*B, (t+1)*B) of an endless source, or a per-epoch shuffle of a finite
 * one (shuffle seeded by (seed, epoch)), so the data position is a function
 * of the step and a restart regenerates the same stream. Held-out rows for
 * evaluation come from a disjoint range (row index >= TRAIN_EVAL_ROW0 for an
 * endless source; the last eval_rows rows, excluded from training, for a
 * finite one). */
#ifndef SAED_TRAIN_H
#define SAED_TRAIN_H
#include <stddef.h>
#include <stdint.h>
#include "sae.h"
#include "sae_fast.h"
#include "datasrc.h"

#define TRAIN_EVAL_ROW0 (UINT64_C(1) << 62)

typedef enum { LR_DECAY_NONE = 0, LR_DECAY_LINEAR, LR_DECAY_COSINE } lr_decay;

typedef struct {
    int steps;                 /* default 20000 */
    int batch_size;            /* default 4096 */
    float lr;                  /* default 1e-3 */
    int lr_warmup_steps;       /* default 1000 */
    lr_decay decay;            /* default linear (to 0 at the last step) */
    int sparsity_warmup_steps; /* default 1000: c rises linearly 0 -> sparsity_coef */
    uint64_t seed;             /* default 0: initialisation and shuffling */
    int checkpoint_every;      /* default 1000 steps */
    int eval_every;            /* default 100 steps */
    int eval_rows;             /* default 4096 held-out rows, at most TRAIN_MAX_EVAL_ROWS */
    int dead_window;           /* default 1000 steps: a latent is dead after this many without firing */
    float adam_beta1;          /* default 0.9 */
    float adam_beta2;          /* default 0.999 */
    float adam_eps;            /* default 1e-8 */
    float grad_clip;           /* default 0 = off; else max global gradient L2 norm */
    int normalize_input;       /* default 0; 1: train on s*x, see "Input normalisation" below */
    int resample_every;        /* default 0 = off; archs whose registry row allows it (relu, subspace): every
                                * this many steps, in the first half of training, dead latents are
                                * re-initialised from badly reconstructed rows of the batch
                                * (core/train_resample.c) */
    float dup_cos;             /* default 0 = off; with resample_every: at each resampling, of two groups
                                * whose spans' largest principal-angle cosine is above this (they share
                                * a direction) the less used on the batch is re-initialised too */
    int threads;               /* default 1, at most TRAIN_MAX_THREADS: the pool for the element-wise
                                * passes (not from the API: the daemon sets its threads per worker).
                                * Results are bitwise reproducible for a given value; another value
                                * sums in another order (float rounding) */
} train_config;

#define TRAIN_MAX_THREADS 64
#define TRAIN_MAX_EVAL_ROWS (1 << 20) /* train.eval_rows at most (the evaluation runs every eval_every steps) */

typedef struct {
    int step;            /* steps completed */
    double loss, mse, fve, l0, l0_groups, dead_frac, lr, samples_per_s;
} train_metrics;

typedef enum { TRAIN_CONTINUE = 0, TRAIN_CANCEL = 1, TRAIN_SHUTDOWN = 2 } train_stop;
typedef enum { TRAIN_DONE = 0, TRAIN_CANCELLED = 1, TRAIN_INTERRUPTED = 2, TRAIN_ERROR = -1 } train_result;

typedef struct train_state train_state;

typedef struct {
    void *ctx;
    /* After each evaluation (every eval_every steps and after the last). Non-zero aborts with an error. */
    int (*on_eval)(void *ctx, const train_metrics *m);
    /* After each step; cheap, the callee throttles. */
    void (*on_progress)(void *ctx, int step, int total_steps, double samples_per_s);
    /* Every checkpoint_every steps: the callee saves train_checkpoint(). Non-zero aborts with an error. */
    int (*on_checkpoint)(void *ctx, train_state *st);
    /* Polled between steps, and every 65536 rows of a long evaluation. */
    train_stop (*should_stop)(void *ctx);
} train_hooks;

void train_config_default(train_config *t);
/* Same contract as sae_config_check; fields are named "train.<name>". */
int train_config_check(const train_config *t, char *field, size_t fieldlen, char *msg, size_t msglen);
/* The rules that need both configurations (train.resample_every only for archs whose registry row
 * allows it: relu, subspace); same contract. */
int train_config_check_for(const sae_config *c, const train_config *t, char *field, size_t fieldlen, char *msg,
                           size_t msglen);
int lr_decay_parse(const char *name, lr_decay *out);
const char *lr_decay_name(lr_decay d);

/* The schedules, for step t = 0 .. steps-1 (the t-th update):
 * lr: lr * min(1, (t+1)/lr_warmup_steps), then after warm-up, with
 *     f = (t - W) / (steps - W) in [0, 1): none 1, linear 1 - f, cosine
 *     (1 + cos(pi f)) / 2, so it reaches 0 just after the last step.
 * sparsity: sparsity_coef * min(1, t / sparsity_warmup_steps) (0 at step 0).
 * threshold (archs whose registry row ramps it: relu): sae.threshold on the same ramp, so
 *     training starts with every group open (no group of the first, small activations is stuck
 *     below a fixed threshold, which gives it no gradient) and reaches the full threshold with
 *     the full coefficient; it reaches the loss in the pass (sae_pass.threshold), the SAE's
 *     configuration always holds the full one. Other archs: sae.threshold as it is (jumprelu's
 *     is the initial theta). Evaluation uses the last training step's value; the trained SAE
 *     (sae_encode, the export) the full threshold. */
double train_lr_at(const train_config *t, int step);
double train_sparsity_coef_at(const sae_config *c, const train_config *t, int step);
double train_threshold_at(const sae_config *c, const train_config *t, int step);

/* Creates a trainer with freshly initialised parameters. NULL with err set on failure. */
train_state *train_create(const sae_config *c, const train_config *t, const data_source *src,
                          char *err, size_t errlen);
void train_free(train_state *st);

/* Runs from the current step to t->steps (or until stopped). On TRAIN_ERROR the
 * reason is in train_error(). */
train_result train_run(train_state *st, const train_hooks *hooks);
const char *train_error(const train_state *st);

/* Continues from another trainer's state: parameters, Adam moments, dead-latent counters and
 * step count (so Adam's bias correction carries on), under st's own configuration (another
 * batch size, schedule or coefficients). Needs the same SAE shape (arch, dim, n_latents,
 * group_size) and input scale, and
 * st's train.steps above from's step. 0, or -1 with err set. (make bench: train small
 * batches until the SAE is sparse, then time batch 4096.) */
int train_warm_start(train_state *st, const train_state *from, char *err, size_t errlen);

/* Cluster-then-retrain: a fresh trainer (step 0) of an arch whose registry row offers it (subspace)
 * starts from another SAE's decoder rows (m, dim): the rows are clustered into planes and the groups
 * take them (sae_arch_def.init_from_rows). Returns the groups set from the rows, or -1 with err set. */
int train_init_from_rows(train_state *st, const float *rows, int m, char *err, size_t errlen);

/* A warm start from a trained SAE of the same dim and n_latents (any arch, any groups): a fresh
 * trainer (step 0) takes src's W_enc, b_enc, W_dec and b_dec (as stored: raw rows, unscaled by this
 * trainer's input scale), made to satisfy its arch's decoder constraint (sae_arch_def.adopt_params:
 * by default each decoder row brought to unit norm with its encoder column and bias scaled to keep
 * d_i z_i; subspace: orthonormal groups, encoder tied); its extras keep their initial values.
 * So an SAE can be retrained with other groups, e.g. groups learned from its own co-activations.
 * 0, or -1 with err set. */
int train_init_from_params(train_state *st, const sae_params *src, char *err, size_t errlen);

/* Where the training steps' time went, since creation (a clock read per phase). */
typedef struct {
    double read, loss_grad, update; /* seconds: rows, loss and gradient, the parameter update */
    int has_fast;                   /* 1: loss_grad ran on the blocked sparse core, broken down in fast */
    sae_fast_stats fast;
} train_timing;
void train_get_timing(const train_state *st, train_timing *out);

int train_step_done(const train_state *st);
/* Latents train.resample_every re-initialised, by this trainer object (not counted across a restore). */
long train_resampled(const train_state *st);
const sae_params *train_params(const train_state *st);
/* Final metrics (from the last evaluation); valid after TRAIN_DONE. */
const train_metrics *train_last_metrics(const train_state *st);

/* Input normalisation (train.normalize_input). At creation the trainer
 * reads a fixed sample of training rows (TRAIN_SCALE_ROWS of them, evenly
 * spaced over a finite source's training rows, rows 0.. of an endless one)
 * and sets s = sqrt(dim / mean ||x||^2), so scaled rows s*x have a mean
 * squared norm of dim; every row it trains and evaluates on is then s*x. s is
 * saved in checkpoints (a restored run uses the saved s). The exporter folds
 * s back into the weights (sae_fold_input_scale) so the exported SAE takes
 * raw rows. Metrics: mse is in the raw rows' units (the scaled error / s^2),
 * fve is unit-free, loss is the objective as optimised (scaled units).
 * train_input_scale() is 1 when normalisation is off. */
#define TRAIN_SCALE_ROWS 8192
float train_input_scale(const train_state *st);

/* Checkpoints: a self-describing blob (magic, version, config, step, params,
 * Adam moments, dead-latent counters, input scale). */
size_t train_checkpoint_size(const train_state *st);
void train_checkpoint_write(const train_state *st, void *buf);  /* buf: train_checkpoint_size() bytes */
/* Restores a blob written by the same configuration. 0, or -1 with err set. */
int train_checkpoint_restore(train_state *st, const void *buf, size_t len, char *err, size_t errlen);

#endif
