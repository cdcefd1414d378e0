/* sae_jumprelu — the JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping
 * ahead: improving reconstruction fidelity with JumpReLU sparse
 * autoencoders"), with one learnt threshold per group.
 *
 * Extra parameter log_theta (n/s); theta = exp(log_theta) > 0. With
 * r = ReLU(pre) and the group's signed norm
 *   rho_g = ||r_g||_2 if some pre in the group is > 0, else max_k pre_gk
 * (continuous, and rho = pre for group_size 1):
 *   z_g  = r_g * H(rho_g - theta_g)                      (H(0) = 0: open iff rho > theta)
 *   loss = mean_rows [ ||x_hat - x||^2 + c sum_g H(rho_g - theta_g) ] + orth
 * so the penalty is the L0 norm over groups. The pre-activations get the
 * ordinary derivative (dz/dpre = H * ReLU', the step passes nothing: no
 * straight-through estimate for pre, as in the paper); theta gets the
 * paper's pseudo-derivatives with the rectangle kernel K(u) = 1[|u| < 1/2]
 * of bandwidth eps = sae.bandwidth:
 *   d H(rho - theta)/d theta := -(1/eps) K((rho - theta)/eps)
 *   d z_g/d theta           := -(theta/eps) K((rho - theta)/eps) dir_g
 * where dir_g is the direction the group opens along: r_g/||r_g||, or the
 * unit vector of the group's largest pre-activation when none is positive
 * (possible only when theta < eps/2). For group_size 1 dir = 1 and all of
 * this is the paper's JumpReLU exactly. log_theta's gradient is theta times
 * theta's. The L0 pseudo-derivative is exactly the central difference of the
 * penalty in theta with step eps/2. Inference (sae_encode) uses the same z.
 * The initial theta is sae.threshold, or JUMPRELU_THETA0 if that is 0.
 * The registry row is at the end; SAELens's per-latent threshold is each
 * latent's group's theta. */
#include "sae_arch.h"
#include "sae_stage.h"
#include <math.h>

#define JUMPRELU_THETA0 0.001f /* the initial theta when sae.threshold is 0 (the paper's) */

/* The extra log_theta (n/s) of a buffer in the params layout (v: its views). */
static float *jumprelu_log_theta(const sae_config *c, const sae_view *v) { return v->b_dec + c->dim; }

/* w->arch_scratch, and encode's scratch: theta (n/s). */
static size_t jumprelu_scratch_floats(const sae_config *c, int B)
{
    (void)B;
    return (size_t)(c->n_latents / c->group_size);
}

static void jumprelu_init(sae_params *p)
{
    float *log_theta = jumprelu_log_theta(&p->cfg, &p->v); /* (n/s) */
    float theta0 = p->cfg.threshold > 0.0f ? p->cfg.threshold : JUMPRELU_THETA0;
    for (int g = 0; g < p->cfg.n_latents / p->cfg.group_size; g++)
        log_theta[g] = logf(theta0);
}

/* theta (n/s) = exp(log_theta). */
static void jumprelu_theta(const sae_params *p, float *theta)
{
    const float *log_theta = jumprelu_log_theta(&p->cfg, &p->v); /* (n/s) */
    for (int g = 0; g < p->cfg.n_latents / p->cfg.group_size; g++)
        theta[g] = expf(log_theta[g]);
}

/* The signed norm rho of one group's pre (s); *argmax: its largest pre's index. */
static float jumprelu_rho(const float *pre, int s, int *argmax)
{
    *argmax = 0;
    if (s == 1)
        return pre[0];
    for (int k = 1; k < s; k++)
        if (pre[k] > pre[*argmax])
            *argmax = k;
    float norm = sae_stage_relu_norm(pre, s);
    return norm > 0.0f ? norm : pre[*argmax];
}

/* One row-group: z_g (s) from pre_g (s); returns ||z_g|| (0 if closed). pre and z may alias. */
static float jumprelu_group(int s, float theta, const float *pre, float *z)
{
    int argmax;
    float rho = jumprelu_rho(pre, s, &argmax);
    int open = rho > theta;
    for (int k = 0; k < s; k++)
        z[k] = open && pre[k] > 0.0f ? pre[k] : 0.0f;
    return open ? rho : 0.0f;
}

static double jumprelu_forward(const sae_params *p, const sae_pass *pass, const float *x, int B, sae_work *w,
                               double *extra)
{
    (void)pass, (void)x, (void)extra;
    int s = p->cfg.group_size, G = p->cfg.n_latents / s;
    float *theta = w->arch_scratch; /* (G) */
    jumprelu_theta(p, theta);
    double l0 = 0.0;
    for (size_t bg = 0; bg < (size_t)B * G; bg++) {
        w->gnorm[bg] = jumprelu_group(s, theta[bg % G], w->pre + bg * s, w->z + bg * s);
        l0 += w->gnorm[bg] > 0.0f;
    }
    return l0;
}

/* dz_g . dir_g: the reconstruction's rate of change as the group opens (see the top). */
static float jumprelu_dir_dot(const float *pre, const float *dz, int s, float rho, int argmax)
{
    if (s == 1)
        return dz[0];
    if (!(rho > 0.0f))
        return dz[argmax];
    float dot = 0.0f;
    for (int k = 0; k < s; k++)
        dot += pre[k] > 0.0f ? dz[k] * pre[k] : 0.0f;
    return dot / rho;
}

static void jumprelu_backward(const sae_params *p, const sae_pass *pass, int B, sae_work *w, sae_view *g,
                              float *grad)
{
    const sae_config *c = &p->cfg;
    int s = c->group_size, G = c->n_latents / s;
    const float *theta = w->arch_scratch; /* (G) from the forward */
    float eps = c->bandwidth, l0_slope = pass->coef / ((float)B * eps);
    float *g_lt = jumprelu_log_theta(c, g); /* (G) d loss/d theta, then d loss/d log_theta */
    (void)grad;
    for (size_t bg = 0; bg < (size_t)B * G; bg++) {
        int g = (int)(bg % G), argmax;
        const float *pre = w->pre + bg * s;
        float *dz = w->dz + bg * s;
        float rho = jumprelu_rho(pre, s, &argmax), th = theta[g];
        if (fabsf(rho - th) < 0.5f * eps)
            g_lt[g] -= th / eps * jumprelu_dir_dot(pre, dz, s, rho, argmax) + l0_slope;
        int open = rho > th;
        for (int k = 0; k < s; k++)
            dz[k] = open && pre[k] > 0.0f ? dz[k] : 0.0f;
    }
    for (int g = 0; g < G; g++)
        g_lt[g] *= theta[g];
}

static void jumprelu_encode(const sae_params *p, float *z, int B, float *gnorm, float *theta)
{
    int s = p->cfg.group_size, G = p->cfg.n_latents / s;
    jumprelu_theta(p, theta);
    for (size_t bg = 0; bg < (size_t)B * G; bg++)
        gnorm[bg] = jumprelu_group(s, theta[bg % G], z + bg * s, z + bg * s);
}

static int jumprelu_check(const sae_config *c, char *field, size_t fl, char *msg, size_t ml)
{
    if (!(c->bandwidth > 0.0f))
        return sae_config_reject(field, fl, msg, ml, "bandwidth",
                                 "bandwidth must be a finite number > 0 (e.g. 0.001, the default)");
    return 0;
}

/* SAELens's per-latent threshold (n): theta of each latent's group. */
static void jumprelu_saelens_threshold(const sae_params *p, float *out)
{
    const float *log_theta = jumprelu_log_theta(&p->cfg, &p->v); /* (n/s) */
    for (int i = 0; i < p->cfg.n_latents; i++)
        out[i] = expf(log_theta[i / p->cfg.group_size]);
}

/* SAELens: jumprelu with each latent's theta (open iff pre > theta in both). */
static const char *jumprelu_saelens_exact(const sae_params *p, float *thr)
{
    jumprelu_saelens_threshold(p, thr);
    return "jumprelu";
}

const sae_arch_def sae_arch_jumprelu = {
    .name = "jumprelu",
    .check = jumprelu_check,
    .n_extras = 1,
    .extras = {{"log_theta", SAE_EXTRA_PER_GROUP}},
    .init = jumprelu_init,
    .scratch_floats = jumprelu_scratch_floats,
    .forward = jumprelu_forward,
    .backward = jumprelu_backward,
    .encode_floats = jumprelu_scratch_floats,
    .encode = jumprelu_encode,
    .saelens_arch = "jumprelu",
    .saelens_threshold = jumprelu_saelens_threshold,
    .saelens_exact = jumprelu_saelens_exact,
};
