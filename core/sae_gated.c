/* sae_gated — the gated SAE (Rajamanoharan et al. 2024, "Improving
 * dictionary learning with gated sparse autoencoders"), with groups.
 *
 * The four standard tensors keep their meaning: W_enc is W_gate, b_enc is
 * b_gate; the extras are r_mag (n) and b_mag (n), so W_mag = W_gate * exp(r_mag)
 * column by column:
 *   pi_gate = (x - b_dec) W_enc + b_enc                 (B, n)  (the shared encoder's pre)
 *   pi_mag  = exp(r_mag) * (pi_gate - b_enc) + b_mag    (B, n)  = (x - b_dec) W_mag + b_mag
 *   open_g  = ||ReLU(pi_gate_g)||_2 > 0, i.e. some gate pre-activation of group g is > 0
 *   z       = open_g * ReLU(pi_mag)                     (B, n)
 *   loss    = mean_rows [ ||x_hat - x||^2 + c sum_g ||ReLU(pi_gate_g)||_2
 *                         + ||x - (ReLU(pi_gate) sg(W_dec) + sg(b_dec))||^2 ] + orth
 * sg() is a stop-gradient: the auxiliary reconstruction trains the gate path
 * only (b_dec still gets its gradient through x - b_dec in pi_gate). The gate
 * is a step and passes no gradient, so the gate path learns from the sparsity
 * and auxiliary terms and the magnitude path (r_mag, b_mag, and W_enc through
 * W_mag) from the reconstruction. group_size 1 is the paper's SAE exactly:
 * open = pi_gate > 0 and the penalty is the L1 norm of ReLU(pi_gate).
 * Inference (sae_encode) uses the same z. sae.threshold must be 0. The
 * registry row is at the end; b_enc is exported as SAELens's b_gate. */
#include "par_gemm.h"
#include "sae_arch.h"
#include "sae_stage.h"
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* w->arch_scratch for B rows: e (n) | mag (B, n) | u (B, n) | res (B, dim). */
typedef struct {
    float *e;   /* (n) exp(r_mag) */
    float *mag; /* (B, n) pi_mag */
    float *u;   /* (B, n) ReLU(pi_gate), then d loss/d u */
    float *res; /* (B, dim) 2/B (x_aux - x), the auxiliary residual */
} gated_scratch;

static gated_scratch gated_scratch_of(const sae_config *c, float *s, int B)
{
    size_t n = (size_t)c->n_latents, b = (size_t)B;
    gated_scratch g = {s, s + n, s + n + b * n, s + n + 2 * b * n};
    return g;
}

static size_t gated_scratch_floats(const sae_config *c, int B)
{
    size_t n = (size_t)c->n_latents;
    return n + 2 * (size_t)B * n + (size_t)B * c->dim;
}

/* The extras r_mag (n), b_mag (n) of a buffer in the params layout (v: its views). */
static float *gated_r_mag(const sae_config *c, const sae_view *v) { return v->b_dec + c->dim; }

/* e (n) = exp(r_mag). */
static void gated_exp(const sae_params *p, float *e)
{
    const float *r_mag = gated_r_mag(&p->cfg, &p->v); /* (n) */
    for (int i = 0; i < p->cfg.n_latents; i++)
        e[i] = expf(r_mag[i]);
}

/* The magnitude pre-activation of latent i from its gate pre-activation. */
static inline float gated_mag(float pre, float e, float b_enc, float b_mag) { return e * (pre - b_enc) + b_mag; }

/* One row-group: z_g (s) from pre_g (s) and the latents' constants (from i0);
 * mag_g (s) if non-NULL. Returns ||z_g||. pre and z may alias. */
static float gated_group(const sae_params *p, const float *e, int i0, const float *pre, float *z, float *mag)
{
    int s = p->cfg.group_size;
    const float *b_mag = gated_r_mag(&p->cfg, &p->v) + p->cfg.n_latents; /* (n) */
    int open = sae_stage_relu_norm(pre, s) > 0.0f;
    float norm2 = 0.0f;
    for (int k = 0; k < s; k++) {
        int i = i0 + k;
        float m = gated_mag(pre[k], e[i], p->v.b_enc[i], b_mag[i]);
        if (mag)
            mag[k] = m;
        z[k] = open && m > 0.0f ? m : 0.0f;
        norm2 += z[k] * z[k];
    }
    return s == 1 ? z[0] : sqrtf(norm2);
}

/* res (B, dim) = 2/B (ReLU(pi_gate) W_dec + b_dec - x); returns the sum of squares before scaling. */
static double gated_aux_forward(const sae_params *p, par_pool *pool, const float *x, int B, const float *u, float *res)
{
    int n = p->cfg.n_latents, dim = p->cfg.dim;
    for (int b = 0; b < B; b++)
        memcpy(res + (size_t)b * dim, p->v.b_dec, (size_t)dim * sizeof(float));
    par_sgemm(pool, 0, 0, B, dim, n, 1.0f, u, n, p->v.W_dec, dim, 1.0f, res, dim);
    double sse = 0.0;
    float scale = 2.0f / (float)B;
    for (size_t k = 0; k < (size_t)B * dim; k++) {
        float r = res[k] - x[k];
        sse += (double)r * r;
        res[k] = scale * r;
    }
    return sse;
}

static double gated_forward(const sae_params *p, const sae_pass *pass, const float *x, int B, sae_work *w,
                            double *extra)
{
    const sae_config *c = &p->cfg;
    (void)pass;
    int n = c->n_latents, s = c->group_size;
    gated_scratch g = gated_scratch_of(c, w->arch_scratch, B);
    gated_exp(p, g.e);
    double sparsity = 0.0;
    for (size_t bg = 0; bg < (size_t)B * (n / s); bg++) {
        size_t k0 = bg * s;
        int i0 = (int)(k0 % (size_t)n);
        sparsity += sae_stage_relu_norm(w->pre + k0, s);
        w->gnorm[bg] = gated_group(p, g.e, i0, w->pre + k0, w->z + k0, g.mag + k0);
    }
    for (size_t k = 0; k < (size_t)B * n; k++)
        g.u[k] = w->pre[k] > 0.0f ? w->pre[k] : 0.0f;
    *extra += gated_aux_forward(p, w->pool, x, B, g.u, g.res);
    return sparsity;
}

/* One row-group's backward. dz_g (s): d loss/d z in, d loss/d pre out; du_g (s): d aux/d u. */
static void gated_group_backward(const sae_params *p, const gated_scratch *sc, size_t k0, float sp_scale,
                                 const float *pre, float *dz, const float *du, float *g_b_enc, float *g_r_mag,
                                 float *g_b_mag)
{
    int s = p->cfg.group_size, n = p->cfg.n_latents, i0 = (int)(k0 % (size_t)n);
    const float *b_mag = gated_r_mag(&p->cfg, &p->v) + n; /* (n) */
    float gate = sae_stage_relu_norm(pre, s);
    for (int k = 0; k < s; k++) {
        int i = i0 + k;
        float m = sc->mag[k0 + k];
        float dmag = gate > 0.0f && m > 0.0f ? dz[k] : 0.0f; /* d loss/d pi_mag */
        g_b_mag[i] += dmag;
        g_r_mag[i] += dmag * (m - b_mag[i]);
        float dm_pre = dmag * sc->e[i];
        g_b_enc[i] -= dm_pre; /* pi_mag holds -e * b_enc: b_gate gets only the gate path */
        float dgate = 0.0f;  /* d loss/d pi_gate: sparsity and auxiliary terms */
        if (pre[k] > 0.0f)
            dgate = du[k] + sp_scale * (s == 1 ? 1.0f : pre[k] / gate);
        dz[k] = dgate + dm_pre;
    }
}

static void gated_backward(const sae_params *p, const sae_pass *pass, int B, sae_work *w, sae_view *g,
                           float *grad)
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents, s = c->group_size, dim = c->dim;
    gated_scratch sc = gated_scratch_of(c, w->arch_scratch, B);
    float *g_r_mag = gated_r_mag(c, g), *g_b_mag = g_r_mag + n; /* (n), (n) */
    (void)grad;
    /* d aux/d u (B, n) = res W_dec^T, over u (no longer needed) */
    par_sgemm(w->pool, 0, 1, B, n, dim, 1.0f, sc.res, dim, p->v.W_dec, dim, 0.0f, sc.u, n);
    float sp_scale = pass->coef / (float)B;
    for (size_t k0 = 0; k0 < (size_t)B * n; k0 += s)
        gated_group_backward(p, &sc, k0, sp_scale, w->pre + k0, w->dz + k0, sc.u + k0, g->b_enc, g_r_mag, g_b_mag);
}

/* scratch (n): exp(r_mag). */
static size_t gated_encode_floats(const sae_config *c, int B)
{
    (void)B;
    return (size_t)c->n_latents;
}

static void gated_encode(const sae_params *p, float *z, int B, float *gnorm, float *e)
{
    int n = p->cfg.n_latents, s = p->cfg.group_size;
    gated_exp(p, e);
    for (size_t bg = 0; bg < (size_t)B * (n / s); bg++) {
        size_t k0 = bg * s;
        gnorm[bg] = gated_group(p, e, (int)(k0 % (size_t)n), z + k0, z + k0, NULL);
    }
}

static int gated_check(const sae_config *c, char *field, size_t fl, char *msg, size_t ml)
{
    if (c->threshold > 0.0f)
        return sae_config_reject(field, fl, msg, ml, "threshold",
                                 "threshold must be 0 for arch gated: its gate decides which groups are active");
    return 0;
}

/* SAELens: gated, with the same gate (pi_gate > 0) and magnitude path (W_enc * exp(r_mag), b_mag). */
static const char *gated_saelens_exact(const sae_params *p, float *thr)
{
    (void)p, (void)thr;
    return "gated";
}

const sae_arch_def sae_arch_gated = {
    .name = "gated",
    .check = gated_check,
    .n_extras = 2,
    .extras = {{"r_mag", SAE_EXTRA_PER_LATENT}, {"b_mag", SAE_EXTRA_PER_LATENT}}, /* initially 0: W_mag = W_gate */
    .b_enc_name = "b_gate",
    .scratch_floats = gated_scratch_floats,
    .forward = gated_forward,
    .backward = gated_backward,
    .encode_floats = gated_encode_floats,
    .encode = gated_encode,
    .saelens_arch = "gated",
    .saelens_exact = gated_saelens_exact,
};
