/* train_state — the trainer's state, shared by train.c (the loop),
 * train_update.c (the parameter update) and train_ckpt.c (checkpoints).
 * Private to core/. */
#ifndef SAED_TRAIN_STATE_H
#define SAED_TRAIN_STATE_H
#include "train.h"
#include "sae_engine.h"
#include <string.h>

struct train_state {
    sae_config sc;
    train_config tc;
    data_source src;
    sae_params p;
    float *grad;          /* (n_params) gradient, params layout */
    float *m;             /* (n_params) Adam first moment */
    float *v;             /* (n_params) Adam second moment */
    par_pool *pool;       /* train.threads threads: the products and the element-wise passes */
    sae_engine *engine;   /* the loss and gradient of batch_size rows, on the arch's path */
    unsigned char *fired; /* (n_latents) 1 = fired in the current batch */
    float *x;             /* (batch_size, dim) current rows */
    uint64_t *idx;        /* (batch_size) their row indices */
    int32_t *last_fired;  /* (n_latents) last step (1-based) the latent fired in; 0 never */
    unsigned char *dead;  /* (n_latents) 1 = dead at the current step (AuxK's input); from last_fired */
    int step;             /* steps completed */
    long resampled;       /* latents resampled (train.resample_every) by this trainer object */
    float in_scale;       /* input scale s (train.h); 1 when normalize_input is off */
    /* finite sources */
    int64_t n_train;      /* rows used for training (the rest are held out); -1 endless */
    uint32_t *perm;       /* (n_train) the order of rows in epoch perm_epoch */
    int64_t perm_epoch;   /* -1: perm not filled */
    /* evaluation */
    double sst;           /* eval rows' sum of squares around their mean; < 0 until computed */
    train_metrics last;   /* from the last evaluation */
    int have_last;
    /* throughput since the last evaluation (wall time of steps only) */
    double t_read, t_loss, t_update; /* train_timing */
    double window_s;
    int64_t window_samples;
    char err[256];
};

/* For asserts: the two copies of the SAE's configuration, the trainer's (sc) and the parameters'
 * (p.cfg, copied from it at creation and never written since: a step's threshold travels in its
 * sae_pass), agree in every field; the buffers are there and the size that configuration needs;
 * the step is in range. */
static inline int train_state_ok(const train_state *st)
{
    const sae_config *a = &st->sc, *b = &st->p.cfg;
    return memcmp(a, b, sizeof *a) == 0 && a->dim >= 1 && a->n_latents >= 1 && st->p.buf && st->grad && st->m &&
           st->v && st->last_fired && st->engine && st->x && st->idx && st->fired &&
           st->p.n_params == sae_n_params(a) && st->step >= 0 && st->step <= st->tc.steps &&
           st->tc.batch_size >= 1 && st->src.dim == a->dim && st->in_scale > 0.0f;
}

/* train.resample_every (core/train_resample.c): 1 if the step just completed resamples; then
 * train_resample re-initialises the dead latents and returns how many (-1: out of memory). */
int train_resample_due(const train_state *st);
int train_resample(train_state *st);

/* Projects the decoder rows' gradient onto their tangent spaces; returns the global gradient norm. */
double train_update_norm(train_state *st);
/* Adam at lr on grad * grad_scale, then the decoder rows back to unit norm. */
void train_update_apply(train_state *st, double lr, float grad_scale);

#endif
