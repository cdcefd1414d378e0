/* sae_relu — the ReLU SAE with the group penalty (the seed's group SAE; for
 * group_size 1 the ordinary L1 SAE), and an optional fixed threshold on the
 * group norm. Its registry row (include/sae_arch.h).
 *
 *   a = ReLU(pre), rho_g = ||a_g||_2 (a itself for group_size 1)
 *   z_g = H(rho_g - tau) a_g with tau = the pass's threshold (0: z = a)
 *   penalty = sum_g ||z_g||_2
 *
 * A group below the threshold is set to 0 (gnorm 0), in training and at
 * inference. The step H gets JumpReLU's straight-through pseudo-derivative
 * (Rajamanoharan et al. 2024), a rectangle kernel of width eps = bandwidth,
 * taken with respect to rho (the threshold itself is fixed; a learnt one is
 * `jumprelu`): dH/drho := [|rho - tau| < eps/2] / eps. So
 *   d loss/d pre_i = [z_i > 0] (dx_hat . d_i + (c/B) z_i / rho_g)
 *                  + [pre_i > 0] [|rho_g - tau| < eps/2] (q_g / eps) a_i / rho_g,
 *   q_g = dx_hat . (sum_j a_j d_j) + (c/B) rho_g,
 * q_g being d loss/d H at the forward's reconstruction (dx_hat = 2 (x_hat -
 * x) / B): what switching the group on costs (> 0) or saves (< 0). The
 * first line is the exact gradient (0 for zeroed groups); the second, only
 * for groups within eps/2 of the threshold on either side, pushes a group
 * across the threshold when that lowers the loss. It is the exact gradient
 * of the loss plus sum_{b,g in the window} stop_gradient(q_g / eps)
 * (rho_g - rho_g0), rho_g0 the forward's value (tests/test_core.c checks it
 * so). Nothing reaches W_dec from zeroed groups (their z is 0).
 *
 * The threshold ramps with the sparsity warm-up (train_threshold_at), so the
 * pass carries it; the trainer runs this arch on the blocked sparse core
 * (include/sae_fast.h), which computes the same function. */
#include "sae_arch.h"
#include "sae_groups.h"
#include "sae_stage.h"
#include <math.h>
#include <string.h>

/* One group's activation: z (s) from pre (s) (may alias); returns its norm (0 when zeroed). */
static float relu_group(float tau, const float *pre, int s, float *z)
{
    float norm = sae_stage_relu_group(pre, s, z);
    if (tau > 0.0f && norm < tau) {
        memset(z, 0, (size_t)s * sizeof(float));
        norm = 0.0f;
    }
    return norm;
}

/* The same over a group table: each row's groups gathered into tmp (max group size) and back. */
static void relu_forward_table(const sae_config *c, float tau, const float *pre, int B, float *z, float *gnorm)
{
    const sae_groups *t = c->groups;
    float tmp[SAE_GROUPS_MAX_SIZE];
    size_t n = (size_t)c->n_latents;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < t->n_groups; g++) {
            sae_groups_gather(t, g, pre + b * n, tmp);
            gnorm[(size_t)b * t->n_groups + g] = relu_group(tau, tmp, sae_group_len(c, g), tmp);
            sae_groups_scatter(t, g, tmp, z + b * n);
        }
}

static void relu_forward_groups(const sae_config *c, float tau, const float *pre, int B, float *z, float *gnorm)
{
    int s = c->group_size;
    if (c->groups) {
        relu_forward_table(c, tau, pre, B, z, gnorm);
        return;
    }
    for (size_t bg = 0; bg < (size_t)B * (c->n_latents / s); bg++)
        gnorm[bg] = relu_group(tau, pre + bg * s, s, z + bg * s); /* (s) this row's group */
}

static double relu_forward(const sae_params *p, const sae_pass *pass, const float *x, int B, sae_work *w,
                           double *extra)
{
    (void)x, (void)extra;
    relu_forward_groups(&p->cfg, pass->threshold, w->pre, B, w->z, w->gnorm);
    return sae_stage_sum_norms(&p->cfg, w->gnorm, B);
}

/* The jump term of one row's group: pre, dz (s) its pre-activations and dx_hat . d_i. */
static float relu_jump(const sae_config *c, float tau, const float *pre, const float *dz, int s, float scale)
{
    float rho2 = 0.0f, dot = 0.0f;
    for (int k = 0; k < s; k++)
        if (pre[k] > 0.0f)
            rho2 += pre[k] * pre[k], dot += pre[k] * dz[k];
    return sae_stage_jump(tau, c->bandwidth, sqrtf(rho2), dot, scale);
}

/* One row's group (s each): d, the reconstruction gradient in, d loss/d pre out. */
static void relu_group_backward(const sae_config *c, float tau, float scale, float gnorm, const float *pg,
                                const float *zg, int s, float *d)
{
    float jump = relu_jump(c, tau, pg, d, s, scale);
    float f = gnorm > 0.0f ? scale / gnorm : 0.0f;
    for (int k = 0; k < s; k++) {
        float a = pg[k] > 0.0f ? pg[k] : 0.0f;
        d[k] = (zg[k] > 0.0f ? d[k] + f * zg[k] : 0.0f) + jump * a;
    }
}

/* The same over a group table, each row's group gathered into scratch and back. */
static void relu_backward_table(const sae_config *c, float tau, float scale, int B, sae_work *w)
{
    const sae_groups *t = c->groups;
    float pg[SAE_GROUPS_MAX_SIZE], zg[SAE_GROUPS_MAX_SIZE], d[SAE_GROUPS_MAX_SIZE];
    size_t n = (size_t)c->n_latents;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < t->n_groups; g++) {
            sae_groups_gather(t, g, w->pre + b * n, pg);
            sae_groups_gather(t, g, w->z + b * n, zg);
            sae_groups_gather(t, g, w->dz + b * n, d);
            relu_group_backward(c, tau, scale, w->gnorm[(size_t)b * t->n_groups + g], pg, zg, sae_group_len(c, g), d);
            sae_groups_scatter(t, g, d, w->dz + b * n);
        }
}

/* dz (B, n): the reconstruction gradient in; out: [z > 0] (dz + scale z_i / ||z_g||), the exact
 * gradient (0 in zeroed groups), plus the threshold's jump term near the threshold. */
static void relu_backward(const sae_params *p, const sae_pass *pass, int B, sae_work *w, sae_view *g,
                          float *grad)
{
    const sae_config *c = &p->cfg;
    int s = c->group_size;
    float scale = pass->coef / (float)B;
    (void)g, (void)grad;
    if (c->groups) {
        relu_backward_table(c, pass->threshold, scale, B, w);
        return;
    }
    for (size_t bg = 0; bg < (size_t)B * (c->n_latents / s); bg++)
        relu_group_backward(c, pass->threshold, scale, w->gnorm[bg], w->pre + bg * s, w->z + bg * s, s,
                            w->dz + bg * s);
}

static void relu_encode(const sae_params *p, float *z, int B, float *gnorm, float *scratch)
{
    (void)scratch;
    relu_forward_groups(&p->cfg, p->cfg.threshold, z, B, z, gnorm);
}

/* SAELens: standard without a threshold; with one, jumprelu at the float just below it, since relu keeps
 * pre >= threshold and SAELens keeps pre > thr (so pre > nextafter(t, -inf) is exactly pre >= t). */
static const char *relu_saelens_exact(const sae_params *p, float *thr)
{
    float t = p->cfg.threshold;
    if (!(t > 0.0f)) return "standard";
    for (int i = 0; i < p->cfg.n_latents; i++) thr[i] = nextafterf(t, -INFINITY);
    return "jumprelu";
}

/* A threshold's kernel: a window of +-threshold/4 (0.001 without a threshold: the width is then unused). */
static float relu_default_bandwidth(const sae_config *c) { return c->threshold > 0.0f ? c->threshold / 2 : 0.001f; }

static int relu_check(const sae_config *c, char *field, size_t fl, char *msg, size_t ml)
{
    if (c->threshold > 0.0f && !(c->bandwidth > 0.0f))
        return sae_config_reject(field, fl, msg, ml, "bandwidth", "bandwidth must be a finite number > 0 with a "
                                 "threshold (e.g. threshold / 2, the default)");
    return 0;
}

const sae_arch_def sae_arch_relu = {
    .name = "relu",
    .threshold_ramps = 1,
    .any_groups = 1,
    .resamples = 1,
    .default_bandwidth = relu_default_bandwidth,
    .check = relu_check,
    .forward = relu_forward,
    .backward = relu_backward,
    .encode = relu_encode,
    .fast = 1,
    .saelens_arch = "standard",
    .saelens_exact = relu_saelens_exact,
};

