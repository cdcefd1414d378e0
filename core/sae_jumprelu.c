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
 * The initial theta is sae.threshold, or SAE_JUMPRELU_THETA0 if that is 0. */
#include "sae_gj.h"
#include <math.h>
#include <stdlib.h>

/* w->arch_scratch: theta (n/s). */
size_t sae_jumprelu_scratch_floats(const sae_config *c, int B)
{
    (void)B;
    return (size_t)(c->n_latents / c->group_size);
}

void sae_jumprelu_init(sae_params *p)
{
    float *log_theta = sae_gj_extras(&p->cfg, &p->v); /* (n/s) */
    float theta0 = p->cfg.threshold > 0.0f ? p->cfg.threshold : SAE_JUMPRELU_THETA0;
    for (int g = 0; g < p->cfg.n_latents / p->cfg.group_size; g++)
        log_theta[g] = logf(theta0);
}

/* theta (n/s) = exp(log_theta). */
static void jumprelu_theta(const sae_params *p, float *theta)
{
    const float *log_theta = sae_gj_extras(&p->cfg, &p->v); /* (n/s) */
    for (int g = 0; g < p->cfg.n_latents / p->cfg.group_size; g++)
        theta[g] = expf(log_theta[g]);
}

/* The signed norm rho of one group's pre (s); *argmax: its largest pre's index. */
static float jumprelu_rho(const float *pre, int s, int *argmax)
{
    *argmax = 0;
    if (s == 1)
        return pre[0];
    float norm2 = 0.0f;
    for (int k = 0; k < s; k++) {
        norm2 += pre[k] > 0.0f ? pre[k] * pre[k] : 0.0f;
        if (pre[k] > pre[*argmax])
            *argmax = k;
    }
    return norm2 > 0.0f ? sqrtf(norm2) : pre[*argmax];
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

static double jumprelu_forward(const sae_params *p, const float *x, int B, sae_work *w, double *extra)
{
    (void)x;
    int s = p->cfg.group_size, G = p->cfg.n_latents / s;
    float *theta = w->arch_scratch; /* (G) */
    jumprelu_theta(p, theta);
    double l0 = 0.0;
    for (size_t bg = 0; bg < (size_t)B * G; bg++) {
        w->gnorm[bg] = jumprelu_group(s, theta[bg % G], w->pre + bg * s, w->z + bg * s);
        l0 += w->gnorm[bg] > 0.0f;
    }
    *extra = 0.0;
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

static void jumprelu_backward(const sae_params *p, int B, float coef, sae_work *w, float *grad)
{
    const sae_config *c = &p->cfg;
    int s = c->group_size, G = c->n_latents / s;
    const float *theta = w->arch_scratch; /* (G) from the forward */
    float eps = c->bandwidth, l0_slope = coef / ((float)B * eps);
    sae_view gv;
    sae_views(c, grad, &gv);
    float *g_lt = sae_gj_extras(c, &gv); /* (G) d loss/d theta, then d loss/d log_theta */
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

static int jumprelu_encode(const sae_params *p, float *z, int B, float *gnorm)
{
    int s = p->cfg.group_size, G = p->cfg.n_latents / s;
    float *theta = malloc((size_t)G * sizeof(float)); /* (G) */
    if (!theta)
        return -1;
    jumprelu_theta(p, theta);
    for (size_t bg = 0; bg < (size_t)B * G; bg++)
        gnorm[bg] = jumprelu_group(s, theta[bg % G], z + bg * s, z + bg * s);
    free(theta);
    return 0;
}

const sae_gj_ops sae_jumprelu_ops = {jumprelu_forward, jumprelu_backward, jumprelu_encode};
