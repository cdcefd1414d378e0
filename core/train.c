/* train — the training loop: batches, Adam, schedules, evaluation.
 *
 * One step t (0-based): read the batch (a function of t, see train.h), loss
 * and gradient of the pass at sparsity coefficient c(t) and threshold tau(t)
 * under the training rules, given the dead latents for AuxK (sae_engine: the
 * arch's registry row picks the blocked sparse core or the dense pipeline),
 * mark latents that fired, update the gradient-free state, then the
 * parameter update (train_update.c): project the decoder rows' gradient onto
 * their tangent space, clip the global norm (optional), Adam with bias
 * correction at lr(t), renormalise the decoder rows. The element-wise passes
 * run on the trainer's pool of train.threads threads (include/par.h).
 * Everything a step reads is in the checkpoint (params, Adam moments,
 * step, dead counters, input scale) or is a pure function of the
 * configuration, so a restored run continues bit for bit. With
 * normalize_input every row read (training and evaluation) is multiplied by
 * the input scale estimated at creation (train.h). The trainer never blocks: the hooks are
 * called between steps. Checkpoints are in train_ckpt.c. */
#include "train_state.h"
#include "analysis.h"
#include "rng.h"
#include "sae_arch.h"
#include "sae_groups.h"
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRAIN_SHUFFLE_SALT UINT64_C(0x53485546464c45) /* "SHUFFLE": seed of the epoch streams */

static double train_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}


/* ---- configuration ---- */

void train_config_default(train_config *t)
{
    assert(t);
    t->steps = 20000;
    t->batch_size = 4096;
    t->lr = 1e-3f;
    t->lr_warmup_steps = 1000;
    t->decay = LR_DECAY_LINEAR;
    t->sparsity_warmup_steps = 1000;
    t->seed = 0;
    t->checkpoint_every = 1000;
    t->eval_every = 100;
    t->eval_rows = 4096;
    t->dead_window = 1000;
    t->adam_beta1 = 0.9f;
    t->adam_beta2 = 0.999f;
    t->adam_eps = 1e-8f;
    t->grad_clip = 0.0f;
    t->normalize_input = 0;
    t->resample_every = 0;
    t->dup_cos = 0.0f;
    t->threads = 1;
}

static const char *const train_decay_names[] = {"none", "linear", "cosine"};

int lr_decay_parse(const char *name, lr_decay *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, train_decay_names[i]) == 0) {
            *out = (lr_decay)i;
            return 0;
        }
    return -1;
}

const char *lr_decay_name(lr_decay d)
{
    return ((int)d >= 0 && (int)d < 3) ? train_decay_names[d] : "unknown";
}

static int train_reject(char *field, size_t fieldlen, char *msg, size_t msglen, const char *name,
                        const char *text)
{
    snprintf(field, fieldlen, "train.%s", name);
    snprintf(msg, msglen, "%s", text);
    return -1;
}

int train_config_check(const train_config *t, char *field, size_t fl, char *msg, size_t ml)
{
    assert(t && field && msg && fl > 0 && ml > 0);
    if (t->steps < 1)
        return train_reject(field, fl, msg, ml, "steps", "steps must be at least 1");
    if (t->batch_size < 1 || t->batch_size > (1 << 20))
        return train_reject(field, fl, msg, ml, "batch_size", "batch_size must be between 1 and 1048576");
    if (!isfinite(t->lr) || t->lr <= 0.0f || t->lr > 1.0f)
        return train_reject(field, fl, msg, ml, "lr", "lr must be a number above 0 and at most 1 (e.g. 0.001; "
                            "Adam moves each weight by about lr a step)");
    if (t->lr_warmup_steps < 0)
        return train_reject(field, fl, msg, ml, "lr_warmup_steps", "lr_warmup_steps must be >= 0");
    if ((int)t->decay < 0 || (int)t->decay > 2)
        return train_reject(field, fl, msg, ml, "lr_decay", "lr_decay must be none, linear or cosine");
    if (t->sparsity_warmup_steps < 0)
        return train_reject(field, fl, msg, ml, "sparsity_warmup_steps", "sparsity_warmup_steps must be >= 0");
    if (t->checkpoint_every < 0)
        return train_reject(field, fl, msg, ml, "checkpoint_every", "checkpoint_every must be >= 0 (0 = never)");
    if (t->eval_every < 1)
        return train_reject(field, fl, msg, ml, "eval_every", "eval_every must be at least 1");
    if (t->eval_rows < 1 || t->eval_rows > TRAIN_MAX_EVAL_ROWS)
        return train_reject(field, fl, msg, ml, "eval_rows", "eval_rows must be between 1 and 1048576");
    if (t->dead_window < 1)
        return train_reject(field, fl, msg, ml, "dead_window", "dead_window must be at least 1");
    if (!(t->adam_beta1 >= 0.0f && t->adam_beta1 < 1.0f))
        return train_reject(field, fl, msg, ml, "adam_beta1", "adam_beta1 must be in [0, 1) (e.g. 0.9)");
    if (!(t->adam_beta2 >= 0.0f && t->adam_beta2 < 1.0f))
        return train_reject(field, fl, msg, ml, "adam_beta2", "adam_beta2 must be in [0, 1) (e.g. 0.999)");
    if (!isfinite(t->adam_eps) || t->adam_eps <= 0.0f)
        return train_reject(field, fl, msg, ml, "adam_eps", "adam_eps must be a finite number > 0 (e.g. 1e-8)");
    if (!isfinite(t->grad_clip) || t->grad_clip < 0.0f)
        return train_reject(field, fl, msg, ml, "grad_clip", "grad_clip must be a finite number >= 0 (0 = off)");
    if (t->threads < 1 || t->threads > TRAIN_MAX_THREADS)
        return train_reject(field, fl, msg, ml, "threads", "threads must be between 1 and 64");
    if (t->normalize_input != 0 && t->normalize_input != 1)
        return train_reject(field, fl, msg, ml, "normalize_input", "normalize_input must be true or false");
    if (t->resample_every < 0)
        return train_reject(field, fl, msg, ml, "resample_every", "resample_every must be >= 0 (0 = off)");
    if (!(t->dup_cos >= 0.0f && t->dup_cos <= 1.0f))
        return train_reject(field, fl, msg, ml, "dup_cos", "dup_cos must be in [0, 1] (0 = off; e.g. 0.95)");
    return 0;
}

int train_config_check_for(const sae_config *c, const train_config *t, char *field, size_t fl, char *msg,
                           size_t ml)
{
    char text[200];
    assert(c && t && field && msg);
    if (t->resample_every > 0 && !sae_arch_of(c)->resamples) {
        snprintf(text, sizeof text, "resample_every is not available for arch '%s' (it is relu's and "
                 "subspace's; topk and batchtopk revive dead groups with AuxK); set it to 0",
                 sae_arch_name(c->arch));
        return train_reject(field, fl, msg, ml, "resample_every", text);
    }
    if (t->dup_cos > 0.0f && t->resample_every == 0)
        return train_reject(field, fl, msg, ml, "dup_cos", "dup_cos revives duplicate groups when dead ones are "
                            "resampled; set train.resample_every too (e.g. 2000), or dup_cos 0");
    if (t->dup_cos > 0.0f && c->groups)
        return train_reject(field, fl, msg, ml, "dup_cos", "dup_cos works on equal groups (group_size), not on "
                            "listed groups; set it to 0");
    if (t->dup_cos > 0.0f && c->group_size > ANALYSIS_DUP_MAX_S) {
        snprintf(text, sizeof text, "dup_cos works on groups of at most %d latents (group_size is %d); set it to 0",
                 ANALYSIS_DUP_MAX_S, c->group_size);
        return train_reject(field, fl, msg, ml, "dup_cos", text);
    }
    return 0;
}

/* ---- schedules ---- */

double train_lr_at(const train_config *t, int step)
{
    int W = t->lr_warmup_steps;
    assert(step >= 0 && W >= 0 && t->steps >= 1);
    if (step < W)
        return (double)t->lr * (step + 1) / W;
    if (t->steps <= W)
        return t->lr;
    double f = (double)(step - W) / (t->steps - W);
    switch (t->decay) {
    case LR_DECAY_LINEAR: return t->lr * (1.0 - f);
    case LR_DECAY_COSINE: return t->lr * 0.5 * (1.0 + cos(M_PI * f));
    default: return t->lr;
    }
}

double train_sparsity_coef_at(const sae_config *c, const train_config *t, int step)
{
    assert(step >= 0 && t->sparsity_warmup_steps >= 0);
    if (step >= t->sparsity_warmup_steps)
        return c->sparsity_coef;
    return (double)c->sparsity_coef * step / t->sparsity_warmup_steps;
}

double train_threshold_at(const sae_config *c, const train_config *t, int step)
{
    assert(step >= 0 && t->sparsity_warmup_steps >= 0);
    if (!sae_arch_of(c)->threshold_ramps || step >= t->sparsity_warmup_steps)
        return c->threshold;
    return (double)c->threshold * step / t->sparsity_warmup_steps;
}

/* The pass of step t: c(t), tau(t); train: the training rules with the dead mask. */
static sae_pass train_pass_at(const train_state *st, int t, int train, const unsigned char *dead)
{
    return (sae_pass){.coef = (float)train_sparsity_coef_at(&st->sc, &st->tc, t),
                      .threshold = (float)train_threshold_at(&st->sc, &st->tc, t), .train = train, .dead = dead};
}

/* ---- creation ---- */

static int train_fail(train_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int train_fail(train_state *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, sizeof st->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* Checks the configurations against each other and the source; 0 or -1 with err. */
static int train_create_check(const sae_config *c, const train_config *t, const data_source *src, char *err,
                              size_t errlen)
{
    char field[64], msg[256];
    if (sae_config_check(c, field, sizeof field, msg, sizeof msg) != 0 ||
        train_config_check(t, field, sizeof field, msg, sizeof msg) != 0 ||
        train_config_check_for(c, t, field, sizeof field, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "%s: %s", field, msg);
        return -1;
    }
    if (!src->get_rows) {
        snprintf(err, errlen, "the data source has no row reader");
        return -1;
    }
    if (src->dim != c->dim) {
        snprintf(err, errlen, "the dataset has dim %d but sae.dim is %d; set sae.dim to %d", src->dim, c->dim,
                 src->dim);
        return -1;
    }
    if (src->n_rows >= 0 && src->n_rows <= t->eval_rows) {
        snprintf(err, errlen, "the dataset has %lld rows, not more than train.eval_rows (%d) held out; "
                 "lower train.eval_rows", (long long)src->n_rows, t->eval_rows);
        return -1;
    }
    if (src->n_rows - t->eval_rows > (int64_t)UINT32_MAX) {
        snprintf(err, errlen, "the dataset has more than 2^32 training rows; use a smaller file");
        return -1;
    }
    return 0;
}

static int train_alloc(train_state *st)
{
    const sae_config *c = &st->sc;
    size_t np = sae_n_params(c), B = (size_t)st->tc.batch_size;
    if (sae_params_alloc(&st->p, c) != 0)
        return -1;
    st->sc.groups = st->p.cfg.groups; /* the params' copy of a group table: the caller's may go */
    if (!(st->pool = par_create(st->tc.threads)) ||
        !(st->engine = sae_engine_create(c, st->tc.batch_size, st->pool)))
        return -1;
    st->fired = calloc((size_t)c->n_latents, 1);
    st->grad = calloc(np, sizeof(float));
    st->m = calloc(np, sizeof(float));
    st->v = calloc(np, sizeof(float));
    st->x = malloc(B * (size_t)c->dim * sizeof(float));
    st->idx = malloc(B * sizeof(uint64_t));
    st->last_fired = calloc((size_t)c->n_latents, sizeof(int32_t));
    st->dead = calloc((size_t)c->n_latents, 1);
    if (st->n_train >= 0)
        st->perm = malloc((size_t)st->n_train * sizeof(uint32_t));
    if (!st->grad || !st->m || !st->v || !st->x || !st->idx || !st->last_fired || !st->dead || !st->fired ||
        (st->n_train >= 0 && !st->perm))
        return -1;
    return 0;
}

static int train_read_raw(train_state *st, int n);

/* st->in_scale = sqrt(dim / mean ||x||^2) over min(TRAIN_SCALE_ROWS, n_train)
 * rows spread evenly over the training rows (rows 0.. of an endless source). */
static int train_estimate_scale(train_state *st)
{
    int dim = st->sc.dim, B = st->tc.batch_size;
    int64_t N = st->n_train >= 0 && st->n_train < TRAIN_SCALE_ROWS ? st->n_train : TRAIN_SCALE_ROWS;
    double sum = 0.0;
    for (int64_t i0 = 0; i0 < N; i0 += B) {
        int n = N - i0 < B ? (int)(N - i0) : B;
        for (int k = 0; k < n; k++) {
            uint64_t i = (uint64_t)(i0 + k);
            st->idx[k] = st->n_train < 0 ? i : i * (uint64_t)st->n_train / (uint64_t)N;
        }
        if (train_read_raw(st, n) != 0)
            return -1;
        for (size_t k = 0; k < (size_t)n * dim; k++)
            sum += (double)st->x[k] * st->x[k];
    }
    double s = sqrt(dim / (sum / (double)N));
    if (!(sum > 0.0) || !isfinite(s) || !((float)s > 0.0f) || !isfinite((float)s))
        return train_fail(st, "train.normalize_input: the %lld sampled rows have a mean squared norm of %g, which "
                          "cannot be scaled to %d; set train.normalize_input to false", (long long)N,
                          sum / (double)N, dim);
    st->in_scale = (float)s;
    return 0;
}

train_state *train_create(const sae_config *c, const train_config *t, const data_source *src, char *err,
                          size_t errlen)
{
    assert(c && t && src && err && errlen > 0);
    if (train_create_check(c, t, src, err, errlen) != 0)
        return NULL;
    train_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    st->sc = *c;
    st->tc = *t;
    st->src = *src;
    st->n_train = src->n_rows >= 0 ? src->n_rows - t->eval_rows : -1;
    st->perm_epoch = -1;
    st->sst = -1.0;
    st->in_scale = 1.0f;
    if (train_alloc(st) != 0) {
        snprintf(err, errlen, "out of memory: the job needs about %zu MiB; lower sae.n_latents or train.batch_size",
                 sae_train_bytes(c, t->batch_size) >> 20);
        train_free(st);
        return NULL;
    }
    if (t->normalize_input && train_estimate_scale(st) != 0) {
        snprintf(err, errlen, "%s", st->err);
        train_free(st);
        return NULL;
    }
    sae_params_init(&st->p, t->seed);
    assert(train_state_ok(st));
    return st;
}

void train_free(train_state *st)
{
    if (!st)
        return;
    sae_params_free(&st->p);
    sae_engine_free(st->engine);
    par_free(st->pool);
    free(st->fired);
    free(st->grad);
    free(st->m);
    free(st->v);
    free(st->x);
    free(st->idx);
    free(st->last_fired);
    free(st->dead);
    free(st->perm);
    free(st);
}

/* ---- data ---- */

/* Fills st->perm with epoch e's order of the training rows (Fisher-Yates). */
static void train_shuffle(train_state *st, int64_t epoch)
{
    rng_t r;
    rng_seed(&r, st->tc.seed ^ TRAIN_SHUFFLE_SALT, (uint64_t)epoch);
    for (int64_t i = 0; i < st->n_train; i++)
        st->perm[i] = (uint32_t)i;
    for (int64_t i = st->n_train - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(&r, (uint64_t)i + 1);
        uint32_t tmp = st->perm[i];
        st->perm[i] = st->perm[j];
        st->perm[j] = tmp;
    }
    st->perm_epoch = epoch;
}

/* The row indices of step t's batch into st->idx. */
static void train_batch_rows(train_state *st, int t)
{
    assert(t >= 0 && (st->n_train < 0 || (st->n_train > 0 && st->perm)));
    uint64_t B = (uint64_t)st->tc.batch_size, pos = (uint64_t)t * B;
    for (uint64_t k = 0; k < B; k++, pos++) {
        if (st->n_train < 0) {
            st->idx[k] = pos;
            continue;
        }
        int64_t epoch = (int64_t)(pos / (uint64_t)st->n_train);
        if (epoch != st->perm_epoch)
            train_shuffle(st, epoch);
        st->idx[k] = st->perm[pos % (uint64_t)st->n_train];
    }
}

/* Held-out row i (0 .. eval_rows-1). */
static uint64_t train_eval_row(const train_state *st, int i)
{
    return st->n_train < 0 ? TRAIN_EVAL_ROW0 + (uint64_t)i : (uint64_t)st->n_train + (uint64_t)i;
}

/* Rows st->idx[0..n) into st->x as they are in the dataset. */
static int train_read_raw(train_state *st, int n)
{
    assert(n >= 1 && n <= st->tc.batch_size);
    if (st->src.get_rows(st->src.ctx, st->idx, n, st->x) != 0)
        return train_fail(st, "reading rows from the dataset failed; check that its file is still readable");
    return 0;
}

/* The same, scaled by the input scale when normalize_input is on: every row the trainer sees. */
static int train_read(train_state *st, int n)
{
    if (train_read_raw(st, n) != 0)
        return -1;
    if (st->tc.normalize_input)
        for (size_t k = 0; k < (size_t)n * st->sc.dim; k++)
            st->x[k] *= st->in_scale;
    return 0;
}

/* ---- one step ---- */

static void train_mark_fired(train_state *st)
{
    int32_t now = st->step + 1;
    for (int i = 0; i < st->sc.n_latents; i++)
        if (st->fired[i])
            st->last_fired[i] = now;
}

/* The latents dead before this step (the rule of dead_frac: none fired in the
 * last dead_window steps) into st->dead; NULL while step < dead_window. */
static const unsigned char *train_dead_mask(train_state *st)
{
    int W = st->tc.dead_window;
    if (st->step < W)
        return NULL;
    for (int i = 0; i < st->sc.n_latents; i++)
        st->dead[i] = st->last_fired[i] <= st->step - W;
    return st->dead;
}

static int train_nonfinite(train_state *st, const char *what, double lr)
{
    return train_fail(st, "the %s became non-finite at step %d (lr %g); lower train.lr (e.g. to %g) "
                      "or set train.grad_clip (e.g. 1)", what, st->step + 1, lr, (double)st->tc.lr / 10);
}

static int train_step(train_state *st)
{
    int t = st->step, B = st->tc.batch_size;
    assert(train_state_ok(st) && t < st->tc.steps);
    double lr = train_lr_at(&st->tc, t);
    double t0 = train_now(), t1;
    train_batch_rows(st, t);
    if (train_read(st, B) != 0)
        return -1;
    st->t_read += (t1 = train_now()) - t0;
    sae_pass pass = train_pass_at(st, t, 1, train_dead_mask(st));
    memset(st->fired, 0, (size_t)st->sc.n_latents);
    double loss = sae_engine_loss_grad(st->engine, &st->p, st->x, B, &pass, st->grad, st->fired, NULL);
    sae_engine_train_update(st->engine, &st->p, B); /* e.g. batchtopk's threshold */
    st->t_loss += (t0 = train_now()) - t1;
    if (!isfinite(loss))
        return train_nonfinite(st, "loss", lr);
    train_mark_fired(st);
    double norm = train_update_norm(st); /* after projecting the decoder rows' gradient */
    if (!isfinite(norm))
        return train_nonfinite(st, "gradient", lr);
    float clip = st->tc.grad_clip > 0.0f && norm > st->tc.grad_clip ? (float)(st->tc.grad_clip / norm) : 1.0f;
    train_update_apply(st, lr, clip);
    st->t_update += train_now() - t0;
    st->step++;
    if (train_resample_due(st)) {
        int k = train_resample(st);
        if (k < 0)
            return train_fail(st, "out of memory resampling dead latents");
        st->resampled += k;
    }
    return 0;
}

/* ---- evaluation ---- */

/* Reads held-out rows [i0, i0+n) into st->x. */
static int train_read_eval(train_state *st, int i0, int n)
{
    assert(i0 >= 0 && n >= 1 && i0 + n <= st->tc.eval_rows);
    for (int k = 0; k < n; k++)
        st->idx[k] = train_eval_row(st, i0 + k);
    return train_read(st, n);
}

/* The stop the hooks ask for, polled between steps, and in an evaluation before each batch that
 * starts at least TRAIN_EVAL_POLL_ROWS rows after the last poll (the default 4096 rows never poll). */
#define TRAIN_EVAL_POLL_ROWS 65536

static train_stop train_poll(const train_hooks *h)
{
    return h && h->should_stop ? h->should_stop(h->ctx) : TRAIN_CONTINUE;
}

/* In an evaluation: polls when rows (since the last poll, reset then) reach TRAIN_EVAL_POLL_ROWS. */
static train_stop train_eval_poll(const train_hooks *h, int64_t *rows)
{
    if (*rows < TRAIN_EVAL_POLL_ROWS)
        return TRAIN_CONTINUE;
    *rows = 0;
    return train_poll(h);
}

/* The eval rows' sum of squares around their mean, once (it never changes). 0, -1 on failure, 1 when
 * the hooks asked to stop (*stop). */
static int train_eval_sst(train_state *st, const train_hooks *h, train_stop *stop)
{
    int dim = st->sc.dim, R = st->tc.eval_rows, B = st->tc.batch_size;
    double *mean = calloc((size_t)dim, sizeof(double)); /* (dim) */
    if (!mean)
        return train_fail(st, "out of memory");
    double sst = 0.0;
    int64_t since = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i0 = 0; i0 < R; i0 += B, since += B) {
            int n = R - i0 < B ? R - i0 : B;
            if ((*stop = train_eval_poll(h, &since)) != TRAIN_CONTINUE) {
                free(mean);
                return 1;
            }
            if (train_read_eval(st, i0, n) != 0) {
                free(mean);
                return -1;
            }
            for (size_t k = 0; k < (size_t)n * dim; k++) {
                double xv = st->x[k];
                if (pass == 0)
                    mean[k % dim] += xv / R;
                else
                    sst += (xv - mean[k % dim]) * (xv - mean[k % dim]);
            }
        }
    free(mean);
    st->sst = sst;
    return 0;
}

static double train_dead_frac(const train_state *st)
{
    int W = st->tc.dead_window, n = st->sc.n_latents, dead = 0;
    if (st->step < W)
        return 0.0;
    for (int i = 0; i < n; i++)
        dead += st->last_fired[i] <= st->step - W;
    return (double)dead / n;
}

/* The held-out metrics into m: 0, -1 on failure, 1 when the hooks asked to stop (*stop) between two
 * of its batches (a long evaluation answers cancel and shutdown like the steps do). */
static int train_evaluate(train_state *st, train_metrics *m, const train_hooks *h, train_stop *stop)
{
    int R = st->tc.eval_rows, B = st->tc.batch_size, t = st->step > 0 ? st->step - 1 : 0;
    sae_pass pass = train_pass_at(st, t, 0, NULL); /* the last step's c and tau, inference rules */
    assert(train_state_ok(st) && m && stop);
    int rc = st->sst < 0.0 ? train_eval_sst(st, h, stop) : 0;
    if (rc != 0)
        return rc;
    double loss = 0.0, sse = 0.0, l0 = 0.0, l0g = 0.0;
    int64_t since = 0;
    sae_engine_set_timing(st->engine, 0); /* train_timing counts training steps only */
    for (int i0 = 0; i0 < R && rc == 0; i0 += B, since += B) {
        int n = R - i0 < B ? R - i0 : B;
        sae_loss_terms terms;
        if ((*stop = train_eval_poll(h, &since)) != TRAIN_CONTINUE) {
            rc = 1;
            break;
        }
        rc = train_read_eval(st, i0, n);
        if (rc != 0)
            break;
        sae_engine_loss_grad(st->engine, &st->p, st->x, n, &pass, NULL, NULL, &terms);
        loss += terms.loss * n;
        sse += terms.mse * n;
        l0 += terms.l0 * n;
        l0g += terms.l0_groups * n;
    }
    sae_engine_set_timing(st->engine, 1);
    if (rc != 0)
        return rc;
    memset(m, 0, sizeof *m);
    m->step = st->step;
    m->loss = loss / R;
    m->mse = sse / R / ((double)st->in_scale * st->in_scale); /* raw units (train.h) */
    m->fve = st->sst > 0.0 ? 1.0 - sse / st->sst : 0.0;
    m->l0 = l0 / R;
    m->l0_groups = l0g / R;
    m->dead_frac = train_dead_frac(st);
    m->lr = train_lr_at(&st->tc, t);
    m->samples_per_s = st->window_s > 0.0 ? (double)st->window_samples / st->window_s : 0.0;
    if (!isfinite(m->loss) || !isfinite(m->fve))
        return train_nonfinite(st, "evaluation loss", m->lr);
    return 0;
}

/* ---- the loop ---- */

/* Evaluates, reports, and starts a new throughput window: 0, -1 on failure, 1 on a stop (*stop). */
static int train_eval_report(train_state *st, const train_hooks *h, train_stop *stop)
{
    int rc = train_evaluate(st, &st->last, h, stop);
    if (rc != 0)
        return rc;
    st->have_last = 1;
    st->window_s = 0.0;
    st->window_samples = 0;
    if (h->on_eval && h->on_eval(h->ctx, &st->last) != 0)
        return train_fail(st, "stopped at step %d: recording the metrics failed", st->step);
    return 0;
}

/* One step and the hooks that follow it: 0, -1 on failure, 1 when the evaluation was stopped (*stop). */
static int train_step_hooks(train_state *st, const train_hooks *h, train_stop *stop)
{
    double t0 = train_now();
    if (train_step(st) != 0)
        return -1;
    st->window_s += train_now() - t0;
    st->window_samples += st->tc.batch_size;
    int s = st->step, total = st->tc.steps;
    if (h->on_progress)
        h->on_progress(h->ctx, s, total,
                       st->window_s > 0.0 ? (double)st->window_samples / st->window_s : 0.0);
    if (s % st->tc.eval_every == 0 || s == total) {
        int rc = train_eval_report(st, h, stop);
        if (rc != 0)
            return rc;
    }
    if (st->tc.checkpoint_every > 0 && s % st->tc.checkpoint_every == 0 && s < total && h->on_checkpoint &&
        h->on_checkpoint(h->ctx, st) != 0)
        return train_fail(st, "stopped at step %d: saving the checkpoint failed", s);
    return 0;
}

/* What a stop asked for between steps or evaluation batches becomes: cancelled, or interrupted
 * after a checkpoint of the steps done. */
static train_result train_stopped(train_state *st, const train_hooks *h, train_stop stop)
{
    if (stop == TRAIN_CANCEL)
        return TRAIN_CANCELLED;
    if (h->on_checkpoint && h->on_checkpoint(h->ctx, st) != 0) {
        train_fail(st, "saving the checkpoint at shutdown failed (step %d)", st->step);
        return TRAIN_ERROR;
    }
    return TRAIN_INTERRUPTED;
}

train_result train_run(train_state *st, const train_hooks *h)
{
    assert(train_state_ok(st) && h);
    st->err[0] = '\0';
    st->window_s = 0.0;
    st->window_samples = 0;
    train_stop stop = TRAIN_CONTINUE;
    int rc = 0;
    while (st->step < st->tc.steps && rc == 0) {
        if ((stop = train_poll(h)) != TRAIN_CONTINUE)
            return train_stopped(st, h, stop);
        rc = train_step_hooks(st, h, &stop);
    }
    if (rc == 0 && !(st->have_last && st->last.step == st->step))
        rc = train_eval_report(st, h, &stop);
    return rc < 0 ? TRAIN_ERROR : rc > 0 ? train_stopped(st, h, stop) : TRAIN_DONE;
}

const char *train_error(const train_state *st) { return st->err; }
int train_warm_start(train_state *st, const train_state *from, char *err, size_t errlen)
{
    const sae_config *a = &st->sc, *b = &from->sc;
    if (a->arch != b->arch || a->dim != b->dim || a->n_latents != b->n_latents || a->group_size != b->group_size ||
        !a->groups != !b->groups || (a->groups && sae_groups_hash(a->groups) != sae_groups_hash(b->groups)) ||
        st->p.n_params != from->p.n_params || st->in_scale != from->in_scale) {
        snprintf(err, errlen, "a warm start needs the same SAE shape (arch, dim, n_latents, groups) and "
                 "input scale");
        return -1;
    }
    if (from->step >= st->tc.steps) {
        snprintf(err, errlen, "a warm start at step %d needs train.steps above it, not %d", from->step,
                 st->tc.steps);
        return -1;
    }
    size_t np = st->p.n_params;
    assert(train_state_ok(st) && train_state_ok(from) && np == from->p.n_params);
    memcpy(st->p.buf, from->p.buf, np * sizeof(float));
    memcpy(st->m, from->m, np * sizeof(float));
    memcpy(st->v, from->v, np * sizeof(float));
    memcpy(st->last_fired, from->last_fired, (size_t)st->sc.n_latents * sizeof(int32_t));
    st->step = from->step;
    return 0;
}

int train_init_from_rows(train_state *st, const float *rows, int m, char *err, size_t errlen)
{
    const sae_arch_def *a = sae_arch_of(&st->sc);
    int used = 0;
    assert(train_state_ok(st) && rows && m >= 1 && err);
    if (!a->init_from_rows) {
        snprintf(err, errlen, "arch '%s' cannot start from another SAE's decoder; use arch subspace",
                 sae_arch_name(st->sc.arch));
        return -1;
    }
    if (st->step != 0) {
        snprintf(err, errlen, "the trainer is at step %d; an initialisation applies to a fresh one", st->step);
        return -1;
    }
    if (a->init_from_rows(&st->p, rows, m, &used) != 0) {
        snprintf(err, errlen, "out of memory clustering %d decoder rows", m);
        return -1;
    }
    return used;
}

/* Decoder row i to unit norm with encoder column i and b_enc[i] scaled by its norm, so the ReLU
 * codes scale the other way and d_i z_i is unchanged. */
static void train_unit_rows_keep(sae_params *p)
{
    int n = p->cfg.n_latents, dim = p->cfg.dim;
    for (int i = 0; i < n; i++) {
        float *d = p->v.W_dec + (size_t)i * dim; /* (dim) */
        double nrm = 0.0;
        for (int k = 0; k < dim; k++)
            nrm += (double)d[k] * d[k];
        nrm = sqrt(nrm);
        if (!(nrm > 0.0))
            continue;
        for (int k = 0; k < dim; k++) {
            d[k] = (float)(d[k] / nrm);
            p->v.W_enc[(size_t)k * n + i] *= (float)nrm;
        }
        p->v.b_enc[i] *= (float)nrm;
    }
}

int train_init_from_params(train_state *st, const sae_params *src, char *err, size_t errlen)
{
    const sae_config *c = &st->sc;
    assert(train_state_ok(st) && src && src->buf && err);
    if (src->cfg.dim != c->dim || src->cfg.n_latents != c->n_latents) {
        snprintf(err, errlen, "starting from another SAE's weights needs its shape: it has %d latents of %d dims, "
                 "this SAE %d of %d", src->cfg.n_latents, src->cfg.dim, c->n_latents, c->dim);
        return -1;
    }
    if (st->step != 0) {
        snprintf(err, errlen, "the trainer is at step %d; an initialisation applies to a fresh one", st->step);
        return -1;
    }
    size_t nd = (size_t)c->n_latents * c->dim;
    memcpy(st->p.v.W_enc, src->v.W_enc, nd * sizeof(float));
    memcpy(st->p.v.W_dec, src->v.W_dec, nd * sizeof(float));
    memcpy(st->p.v.b_enc, src->v.b_enc, (size_t)c->n_latents * sizeof(float));
    memcpy(st->p.v.b_dec, src->v.b_dec, (size_t)c->dim * sizeof(float));
    sae_fold_input_scale(&st->p, 1.0f / st->in_scale); /* raw rows (as stored) to this trainer's scaled rows */
    void (*adopt)(sae_params *) = sae_arch_of(c)->adopt_params;
    if (adopt)
        adopt(&st->p);
    else
        train_unit_rows_keep(&st->p);
    return 0;
}

void train_get_timing(const train_state *st, train_timing *out)
{
    *out = (train_timing){.read = st->t_read, .loss_grad = st->t_loss, .update = st->t_update};
    out->has_fast = sae_engine_fast_stats(st->engine, &out->fast);
}

long train_resampled(const train_state *st) { return st->resampled; }

int train_step_done(const train_state *st) { return st->step; }
const sae_params *train_params(const train_state *st) { return &st->p; }
float train_input_scale(const train_state *st) { return st->in_scale; }
const train_metrics *train_last_metrics(const train_state *st) { return &st->last; }
