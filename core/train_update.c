/* train_update — the parameter update of one step, on the trainer's pool.
 *
 * After the gradient: project each decoder row's gradient onto its row's
 * tangent space, take the global gradient norm (for grad_clip and the
 * non-finite check), then Adam with bias correction and the decoder rows
 * back to unit norm. That is two passes over the parameters instead of
 * five: pass 1 (train_update_norm) projects and sums squares, pass 2
 * (train_update_apply) runs the fused Adam loop, scaling the gradient by
 * the clip factor on the fly, and renormalises each decoder row right
 * after its update, while it is in cache.
 *
 * An arch whose registry row has its own decoder constraint (subspace:
 * orthonormal groups) gets it instead of the renormalisation, one group
 * at a time right after the group's update.
 *
 * Thread t of T owns decoder rows par_range(n, align, t, T) (align: the
 * group size when the arch constrains whole groups, else 1) and a share of the
 * other parameters (everything before W_dec, everything after it), so each
 * pass is race-free and splits the same way for a given T (the norm's
 * per-thread partial sums are added in thread order: deterministic). */
#include "train_state.h"
#include "core_assert.h"
#include "sae_arch.h"
#include <math.h>

typedef struct {
    train_state *st;
    double *part;         /* (T) pass 1: per-thread sums of squares */
    float step_size, inv_sqrt_bc2, b1, b2, eps, scale;
} train_update_job;

/* The thread's pieces: decoder rows [*r0, *r1) and two element ranges of the other parameters. */
static void train_update_split(const train_state *st, int t, int T, size_t *r0, size_t *r1, size_t lo[2],
                               size_t hi[2])
{
    const sae_params *p = &st->p;
    size_t dec0 = (size_t)(p->v.W_dec - p->buf), dec1 = dec0 + (size_t)st->sc.n_latents * st->sc.dim;
    assert(0 <= t && t < T && r0 && r1 && lo && hi);
    assert(p->v.W_dec >= p->buf && dec1 <= p->n_params); /* W_dec is one block inside the buffer */
    size_t align = sae_arch_of(&st->sc)->constrain_decoder && !st->sc.groups ? (size_t)st->sc.group_size : 1;
    par_range((size_t)st->sc.n_latents, align, t, T, r0, r1);
    par_range(dec0, 16, t, T, &lo[0], &hi[0]);
    par_range(p->n_params - dec1, 16, t, T, &lo[1], &hi[1]);
    lo[1] += dec1, hi[1] += dec1;
    assert(hi[0] <= dec0 && dec1 <= lo[1] && hi[1] <= p->n_params); /* the pieces stay off the decoder */
}

/* Sum of squares of a[lo, hi) (8 partial sums, so the loop vectorises). */
static double train_sumsq(const float *a, size_t lo, size_t hi)
{
    double acc[8] = {0};
    assert(a && lo <= hi);
    size_t k = lo;
    for (; k + 8 <= hi; k += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += (double)a[k + j] * a[k + j];
    double sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; k < hi; k++)
        sum += (double)a[k] * a[k];
    return sum;
}

static void train_update_norm_part(void *ctx, int t, int T)
{
    train_update_job *j = ctx;
    train_state *st = j->st;
    size_t r0, r1, lo[2], hi[2];
    train_update_split(st, t, T, &r0, &r1, lo, hi);
    sae_project_decoder_grad_rows(&st->p, st->grad, (int)r0, (int)r1);
    size_t dec0 = (size_t)(st->p.v.W_dec - st->p.buf), dim = (size_t)st->sc.dim;
    double sum = train_sumsq(st->grad, dec0 + r0 * dim, dec0 + r1 * dim);
    for (int k = 0; k < 2; k++)
        sum += train_sumsq(st->grad, lo[k], hi[k]);
    j->part[t] = sum;
}

double train_update_norm(train_state *st)
{
    double part[TRAIN_MAX_THREADS];
    int T = par_threads(st->pool);
    assert(st && train_state_ok(st));
    assert(1 <= T && T <= TRAIN_MAX_THREADS); /* part holds one sum per thread */
    train_update_job j = {.st = st, .part = part};
    par_run(st->pool, train_update_norm_part, &j);
    double sum = 0.0;
    for (int t = 0; t < T; t++)
        sum += part[t];
    return sqrt(sum);
}

/* Adam on parameters [lo, hi). A moment below TRAIN_ADAM_TINY is flushed to 0: a latent that
 * stops firing has a first moment decaying by b1 a step, into denormal floats within ~800
 * steps, and denormal arithmetic is ~100x slower (this loop ran at half speed after 4000 steps
 * of make bench). The flushed value would move its parameter by less than lr * 1e-22. */
#define TRAIN_ADAM_TINY 1e-30f
static void train_adam_range(const train_update_job *j, size_t lo, size_t hi)
{
    train_state *st = j->st;
    float *restrict p = st->p.buf, *restrict g = st->grad, *restrict m = st->m, *restrict v = st->v;
    float b1 = j->b1, b2 = j->b2, eps = j->eps, scale = j->scale, step = j->step_size, ibc2 = j->inv_sqrt_bc2;
    for (size_t k = lo; k < hi; k++) {
        float gk = g[k] * scale;
        float mk = b1 * m[k] + (1.0f - b1) * gk, vk = b2 * v[k] + (1.0f - b2) * gk * gk;
        m[k] = mk = fabsf(mk) < TRAIN_ADAM_TINY ? 0.0f : mk;
        v[k] = vk = vk < TRAIN_ADAM_TINY ? 0.0f : vk;
        p[k] -= step * mk / (sqrtf(vk) * ibc2 + eps);
    }
}

static void train_update_apply_part(void *ctx, int t, int T)
{
    train_update_job *j = ctx;
    train_state *st = j->st;
    size_t r0, r1, lo[2], hi[2];
    train_update_split(st, t, T, &r0, &r1, lo, hi);
    size_t dec0 = (size_t)(st->p.v.W_dec - st->p.buf), dim = (size_t)st->sc.dim;
    void (*constrain)(sae_params *, int, int) = sae_arch_of(&st->sc)->constrain_decoder;
    if (constrain && st->sc.groups) { /* a table's groups are not row ranges: train_update_apply constrains */
        train_adam_range(j, dec0 + r0 * dim, dec0 + r1 * dim);
        constrain = NULL, r0 = r1;
    }
    size_t step = constrain ? (size_t)st->sc.group_size : 1; /* rows updated, then constrained, at a time */
    for (size_t r = r0; r < r1; r += step) {
        train_adam_range(j, dec0 + r * dim, dec0 + (r + step) * dim);
        if (constrain)
            constrain(&st->p, (int)r, (int)(r + step));
        else
            sae_normalize_decoder_rows(&st->p, (int)r, (int)r + 1);
    }
    for (int k = 0; k < 2; k++)
        train_adam_range(j, lo[k], hi[k]);
}

/* For the assert: train_adam_range's restrict pointers are four buffers, parameters, gradient
 * and moments, that do not overlap. */
static inline int train_update_buffers_disjoint(const train_state *st)
{
    size_t b = st->p.n_params * sizeof(float);
    return core_disjoint(st->p.buf, b, st->grad, b) && core_disjoint(st->p.buf, b, st->m, b) &&
           core_disjoint(st->p.buf, b, st->v, b) && core_disjoint(st->grad, b, st->m, b) &&
           core_disjoint(st->grad, b, st->v, b) && core_disjoint(st->m, b, st->v, b);
}

void train_update_apply(train_state *st, double lr, float grad_scale)
{
    assert(st && train_state_ok(st) && st->step >= 0);
    const train_config *t = &st->tc;
    double n = st->step + 1.0;
    /* grad_scale is the clip factor in [0, 1] (0 only when a huge finite norm underflows it) */
    assert(lr >= 0.0 && isfinite(lr) && grad_scale >= 0.0f && grad_scale <= 1.0f);
    /* Adam's bias corrections divide by 1 - beta^n: betas in [0, 1), as train_config_check demands */
    assert(t->adam_beta1 >= 0.0f && t->adam_beta1 < 1.0f && t->adam_beta2 >= 0.0f && t->adam_beta2 < 1.0f);
    assert(train_update_buffers_disjoint(st));
    train_update_job j = {
        .st = st,
        .step_size = (float)(lr / (1.0 - pow(t->adam_beta1, n))),
        .inv_sqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow(t->adam_beta2, n))),
        .b1 = t->adam_beta1, .b2 = t->adam_beta2, .eps = t->adam_eps, .scale = grad_scale,
    };
    par_run(st->pool, train_update_apply_part, &j);
    void (*constrain)(sae_params *, int, int) = sae_arch_of(&st->sc)->constrain_decoder;
    if (constrain && st->sc.groups)
        constrain(&st->p, 0, st->sc.n_latents); /* every group of the table, on this thread */
}
