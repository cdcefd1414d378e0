/* test_archs_gj — the gated and jumprelu SAEs (core/sae_gated.c,
 * core/sae_jumprelu.c): every parameter's gradient against central finite
 * differences (group_size 1, 2 and 3), jumprelu's threshold pseudo-gradient
 * against the central difference of width bandwidth it stands for,
 * group_size 1 against an elementwise implementation of the published SAEs,
 * sae_encode against the training forward, configuration checks, and the
 * trainer with the extra parameters (decoder norms, bit-exact resume, a short
 * run on circles per arch). Small shapes; runs in seconds. */
#include "check.h"
#include "circles.h"
#include "datasrc.h"
#include "gradcheck.h"
#include "rng.h"
#include "sae.h"
#include "train.h"
#include "trainlog.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    sae_arch arch;
    int dim, n, s, B;
    float coef, orth;
    float bandwidth; /* jumprelu */
    float theta0;    /* jumprelu: the thresholds are drawn around it */
} gj_case;

static float *extras_of(const sae_config *c, const sae_view *v) { return v->b_dec + c->dim; }

static sae_config config_of(const gj_case *gc)
{
    sae_config c = {.arch = gc->arch, .dim = gc->dim, .n_latents = gc->n, .group_size = gc->s,
                    .sparsity_coef = gc->coef, .orth_coef = gc->orth, .bandwidth = gc->bandwidth};
    return c;
}

/* Random (untied, unnormalised) parameters with arch extras, and a batch x (B, dim) of scale xs. */
static void random_gj(sae_params *p, float *x, int B, float xs, float theta0, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed, 0);
    const sae_config *c = &p->cfg;
    size_t n = c->n_latents;
    gradcheck_random_base(&r, p, x, B, xs);
    float *e = extras_of(c, &p->v);
    if (c->arch == SAE_GATED) {
        gradcheck_fill_normal(&r, e, n, 0.3f);     /* r_mag */
        gradcheck_fill_normal(&r, e + n, n, 0.2f); /* b_mag */
    } else if (c->arch == SAE_JUMPRELU) {
        for (size_t g = 0; g < n / c->group_size; g++)
            e[g] = logf(theta0) + 0.2f * rng_normal(&r);
    }
}

/* ---------------------------------------------------------------- the loss as differentiated */

/* mean_b ||x - (ReLU(pre) W + bd)||^2 for pre (B, n), W (n, dim), bd (dim). */
static double gated_aux_with(const sae_config *c, const float *pre, const float *x, int B, const float *W,
                             const float *bd)
{
    int n = c->n_latents, dim = c->dim;
    double sum = 0.0;
    for (int b = 0; b < B; b++)
        for (int d = 0; d < dim; d++) {
            double v = bd[d];
            for (int i = 0; i < n; i++) {
                float u = pre[(size_t)b * n + i];
                v += u > 0.0f ? (double)u * W[(size_t)i * dim + d] : 0.0;
            }
            double r = x[(size_t)b * dim + d] - v;
            sum += r * r;
        }
    return sum / B;
}

/* The loss whose gradient sae_loss_grad gives: for gated, the auxiliary term
 * uses the frozen decoder (W0, bd0) whatever the current W_dec, b_dec are. */
static double diff_loss(const sae_params *p, const float *x, int B, float coef, sae_work *w, const float *W0,
                        const float *bd0)
{
    sae_loss_terms t;
    double loss = sae_loss_grad(p, x, B, coef, w, NULL, &t);
    if (p->cfg.arch != SAE_GATED)
        return loss;
    return t.mse + (double)coef * t.sparsity + (double)p->cfg.orth_coef * t.orth +
           gated_aux_with(&p->cfg, w->pre, x, B, W0, bd0);
}

/* ---------------------------------------------------------------- kinks */

static size_t pattern_len(const sae_config *c, int B)
{
    size_t n = c->n_latents;
    return 2 * (size_t)B * n + (size_t)B * (n / c->group_size) + n * c->group_size;
}

/* Everything the loss is smooth within: signs of pre, active latents, open groups, positive orth dots. */
static void pattern(const sae_params *p, const sae_work *w, int B, unsigned char *pat)
{
    const sae_config *c = &p->cfg;
    size_t k = 0, nz = (size_t)B * c->n_latents, ng = nz / c->group_size;
    for (size_t i = 0; i < nz; i++) {
        pat[k++] = w->pre[i] > 0.0f;
        pat[k++] = w->z[i] > 0.0f;
    }
    for (size_t i = 0; i < ng; i++)
        pat[k++] = w->gnorm[i] > 0.0f;
    gradcheck_orth_signs(p, 0, pat + k);
}

/* ---------------------------------------------------------------- finite differences */

typedef struct {
    sae_params *p;
    const float *x;
    int B;
    float coef;
    sae_work *w;
    const float *W0, *bd0; /* (n, dim), (dim) the decoder frozen at the base point */
} fd_ctx;

static double fd_loss(void *ctx, unsigned char *pat)
{
    fd_ctx *f = ctx;
    double loss = diff_loss(f->p, f->x, f->B, f->coef, f->w, f->W0, f->bd0);
    pattern(f->p, f->w, f->B, pat);
    return loss;
}

/* Every parameter in [k0, k1) against central differences; tolerance 1e-2 max(|fd|,|g|) + 1e-3 (test_core's). */
static void fd_range(const char *name, sae_params *p, const float *x, int B, float coef, sae_work *w,
                     const float *grad, size_t k0, size_t k1, const unsigned char *pat0, gradcheck_stats *st)
{
    float *W0 = malloc((size_t)p->cfg.n_latents * p->cfg.dim * sizeof(float)); /* (n, dim) frozen decoder */
    float *bd0 = malloc((size_t)p->cfg.dim * sizeof(float));                    /* (dim) */
    memcpy(W0, p->v.W_dec, (size_t)p->cfg.n_latents * p->cfg.dim * sizeof(float));
    memcpy(bd0, p->v.b_dec, (size_t)p->cfg.dim * sizeof(float));
    fd_ctx f = {p, x, B, coef, w, W0, bd0};
    gradcheck_job job = {name, p->buf, grad, fd_loss, &f, pat0, pattern_len(&p->cfg, B)};
    gradcheck_range(&job, k0, k1, st);
    free(W0);
    free(bd0);
}

/* Draws the case; checks there is a mix of active and inactive latents. Returns 0 or -1. */
static int setup_case(const gj_case *gc, sae_params *p, sae_work *w, float **x, float **grad, uint64_t seed)
{
    sae_config c = config_of(gc);
    *x = malloc((size_t)gc->B * gc->dim * sizeof(float));
    if (sae_params_alloc(p, &c) != 0 || sae_work_alloc(w, &c, gc->B) != 0 || !*x)
        return -1;
    *grad = malloc(p->n_params * sizeof(float));
    random_gj(p, *x, gc->B, 1.0f, gc->theta0, seed);
    return *grad ? 0 : -1;
}

static void free_case(sae_params *p, sae_work *w, float *x, float *grad)
{
    sae_params_free(p);
    sae_work_free(w);
    free(x);
    free(grad);
}

static void test_fd_case(const gj_case *gc)
{
    sae_params p;
    sae_work w;
    float *x, *grad;
    CHECK(setup_case(gc, &p, &w, &x, &grad, 11) == 0, "%s: alloc", gc->name);
    sae_loss_terms t;
    sae_loss_grad(&p, x, gc->B, gc->coef, &w, grad, &t);
    unsigned char *pat0 = calloc(pattern_len(&p.cfg, gc->B), 1);
    pattern(&p, &w, gc->B, pat0);
    CHECK(t.l0 > 0.5 && t.l0 < gc->n - 0.5, "%s: a mix of active and inactive latents (l0 %g)", gc->name, t.l0);
    size_t k_extra = (size_t)(extras_of(&p.cfg, &p.v) - p.buf); /* the extras start here */
    gradcheck_stats std = {0}, ext = {0};
    fd_range(gc->name, &p, x, gc->B, gc->coef, &w, grad, 0, k_extra, pat0, &std);
    if (gc->arch == SAE_GATED) /* jumprelu's log_theta: test_theta_case */
        fd_range(gc->name, &p, x, gc->B, gc->coef, &w, grad, k_extra, p.n_params, pat0, &ext);
    int checked = std.checked + ext.checked, skipped = std.skipped + ext.skipped;
    CHECK(std.bad == 0 && ext.bad == 0, "%s: %d of %d gradients off (worst err/tol %.3g, %.3g)", gc->name,
          std.bad + ext.bad, checked, std.worst_ratio, ext.worst_ratio);
    CHECK(checked >= (int)(0.8 * (gc->arch == SAE_GATED ? p.n_params : k_extra)), "%s: %d checked, %d skipped",
          gc->name, checked, skipped);
    CHECK(gc->arch != SAE_GATED || ext.checked >= (int)(1.6 * gc->n), "%s: extras checked (%d)", gc->name,
          ext.checked);
    if (gc->arch == SAE_GATED)
        printf("gradcheck %-16s %4d params checked, %3d at kinks skipped, worst err/tol %.3f, worst rel err %.2e "
               "(r_mag, b_mag: %.2e)\n", gc->name, checked, skipped, fmax(std.worst_ratio, ext.worst_ratio),
               fmax(std.worst_rel, ext.worst_rel), ext.worst_rel);
    else
        printf("gradcheck %-16s %4d params checked, %3d at kinks skipped, worst err/tol %.3f, worst rel err %.2e "
               "(log_theta: thetacheck)\n", gc->name, checked, skipped, std.worst_ratio, std.worst_rel);
    free(pat0);
    free_case(&p, &w, x, grad);
}

/* ---------------------------------------------------------------- jumprelu's thresholds */

/* Sets group g's theta to th; returns the terms of the batch. */
static sae_loss_terms terms_at_theta(sae_params *p, const float *x, int B, sae_work *w, int g, float th)
{
    sae_loss_terms t;
    float *lt = extras_of(&p->cfg, &p->v), saved = lt[g];
    lt[g] = logf(th);
    sae_loss_grad(p, x, B, 0.0f, w, NULL, &t);
    lt[g] = saved;
    return t;
}

/* max |a - b| / max |b| over G values (0 if b is all 0). */
static double rel_max_diff(const double *a, const double *b, int G)
{
    double diff = 0.0, scale = 0.0;
    for (int g = 0; g < G; g++) {
        diff = fmax(diff, fabs(a[g] - b[g]));
        scale = fmax(scale, fabs(b[g]));
    }
    return scale > 0.0 ? diff / scale : diff;
}

/* The L0 pseudo-gradient is exactly the central difference of the penalty
 * with step eps/2 in theta (times theta, for log_theta); the reconstruction
 * part is the same difference linearised, so it agrees to first order (the
 * jumps' curvature and rho ~ theta within the window make the difference). */
static void test_theta_case(const gj_case *gc)
{
    sae_params p;
    sae_work w;
    float *x, *grad;
    CHECK(setup_case(gc, &p, &w, &x, &grad, 23) == 0, "%s: alloc", gc->name);
    for (size_t k = 0; k < (size_t)gc->B * gc->dim; k++)
        x[k] *= 3.0f; /* a large residual: the reconstruction's jumps are nearly linear in z */
    int G = gc->n / gc->s, windows = 0;
    float *g0 = malloc(p.n_params * sizeof(float));
    sae_loss_grad(&p, x, gc->B, 0.0f, &w, g0, NULL);
    sae_loss_grad(&p, x, gc->B, gc->coef, &w, grad, NULL);
    const float *lt = extras_of(&p.cfg, &p.v), *gl0 = g0 + (lt - p.buf), *glc = grad + (lt - p.buf);
    double eps = gc->bandwidth, fd_l0[64], ps_l0[64], fd_mse[64], ps_mse[64];
    for (int g = 0; g < G; g++) {
        float th = expf(lt[g]);
        sae_loss_terms tp = terms_at_theta(&p, x, gc->B, &w, g, th + 0.5f * (float)eps);
        sae_loss_terms tm = terms_at_theta(&p, x, gc->B, &w, g, th - 0.5f * (float)eps);
        fd_l0[g] = th * (tp.sparsity - tm.sparsity) / eps;
        ps_l0[g] = (glc[g] - gl0[g]) / gc->coef;
        fd_mse[g] = th * (tp.mse - tm.mse) / eps;
        ps_mse[g] = gl0[g];
        windows += fd_l0[g] != 0.0;
    }
    double e_l0 = rel_max_diff(ps_l0, fd_l0, G), e_mse = rel_max_diff(ps_mse, fd_mse, G);
    CHECK(e_l0 < 1e-4, "%s: L0 part of the log_theta gradient vs its difference: rel err %.2e", gc->name, e_l0);
    CHECK(e_mse < 0.1, "%s: reconstruction part vs its difference: rel err %.2e", gc->name, e_mse);
    CHECK(windows >= G - 1, "%s: rows fall in the kernel window of %d of %d groups", gc->name, windows, G);
    printf("thetacheck %-15s %d thresholds: L0 part max err %.2e of max (exact), reconstruction part %.2e "
           "(first order)\n", gc->name, G, e_l0, e_mse);
    free(g0);
    free_case(&p, &w, x, grad);
}

static void test_gradients(void)
{
    static const gj_case fd[] = {
        {"gated s1", SAE_GATED, 6, 8, 1, 5, 0.3f, 0.0f, 0.0f, 0.0f},
        {"gated s2", SAE_GATED, 6, 8, 2, 5, 0.3f, 0.0f, 0.0f, 0.0f},
        {"gated s2 orth", SAE_GATED, 6, 8, 2, 5, 0.3f, 0.5f, 0.0f, 0.0f},
        {"gated s3", SAE_GATED, 5, 12, 3, 4, 0.2f, 0.0f, 0.0f, 0.0f},
        {"jumprelu s1", SAE_JUMPRELU, 6, 8, 1, 5, 0.3f, 0.0f, 0.05f, 0.8f},
        {"jumprelu s2", SAE_JUMPRELU, 6, 8, 2, 5, 0.3f, 0.0f, 0.05f, 1.0f},
        {"jumprelu s2 orth", SAE_JUMPRELU, 6, 8, 2, 5, 0.3f, 0.5f, 0.05f, 1.0f},
        {"jumprelu s3", SAE_JUMPRELU, 5, 12, 3, 4, 0.2f, 0.0f, 0.05f, 1.0f},
    };
    for (size_t i = 0; i < sizeof fd / sizeof fd[0]; i++)
        test_fd_case(&fd[i]);
    static const gj_case th[] = {
        {"jumprelu s1", SAE_JUMPRELU, 6, 8, 1, 4000, 0.3f, 0.0f, 0.06f, 0.3f},
        {"jumprelu s2", SAE_JUMPRELU, 6, 8, 2, 4000, 0.3f, 0.2f, 0.06f, 0.3f},
    };
    for (size_t i = 0; i < sizeof th / sizeof th[0]; i++)
        test_theta_case(&th[i]);
}

/* ---------------------------------------------------------------- group_size 1 = the published SAEs */

/* Elementwise, in double, straight from the papers: pre-activations of row b. */
static void ordinary_pre(const sae_params *p, const float *xb, double *pig, double *pim)
{
    const sae_config *c = &p->cfg;
    const float *e = extras_of(c, &p->v);
    for (int i = 0; i < c->n_latents; i++) {
        double a = 0.0, m = 0.0;
        for (int d = 0; d < c->dim; d++) {
            double xc = (double)xb[d] - p->v.b_dec[d];
            a += xc * p->v.W_enc[(size_t)d * c->n_latents + i];
            if (c->arch == SAE_GATED)
                m += xc * (p->v.W_enc[(size_t)d * c->n_latents + i] * exp((double)e[i]));
        }
        pig[i] = a + p->v.b_enc[i];
        pim[i] = c->arch == SAE_GATED ? m + e[c->n_latents + i] : 0.0;
    }
}

/* ||x - (u W_dec + b_dec)||^2 for u (n). */
static double ordinary_sse(const sae_params *p, const float *xb, const double *u)
{
    double sum = 0.0;
    for (int d = 0; d < p->cfg.dim; d++) {
        double v = p->v.b_dec[d];
        for (int i = 0; i < p->cfg.n_latents; i++)
            v += u[i] * p->v.W_dec[(size_t)i * p->cfg.dim + d];
        sum += (xb[d] - v) * (xb[d] - v);
    }
    return sum;
}

/* Loss of the published SAE (no orth) and its z (B, n). */
static double ordinary_loss(const sae_params *p, const float *x, int B, float coef, double *z)
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents;
    const float *lt = extras_of(c, &p->v);
    double pig[64], pim[64], u[64], loss = 0.0;
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * c->dim;
        double *zb = z + (size_t)b * n, pen = 0.0;
        ordinary_pre(p, xb, pig, pim);
        for (int i = 0; i < n; i++) {
            u[i] = pig[i] > 0.0 ? pig[i] : 0.0;
            if (c->arch == SAE_GATED) {
                zb[i] = pig[i] > 0.0 && pim[i] > 0.0 ? pim[i] : 0.0; /* 1[pi_gate > 0] ReLU(pi_mag) */
                pen += u[i];                                          /* L1 of ReLU(pi_gate) */
            } else {
                double th = exp((double)lt[i]);
                zb[i] = pig[i] > th ? pig[i] : 0.0; /* pre H(pre - theta) */
                pen += pig[i] > th;                 /* L0 */
            }
        }
        loss += ordinary_sse(p, xb, zb) + coef * pen + (c->arch == SAE_GATED ? ordinary_sse(p, xb, u) : 0.0);
    }
    return loss / B;
}

/* jumprelu's d loss/d log_theta (n) by the paper's pseudo-derivatives, elementwise. */
static void ordinary_theta_grad(const sae_params *p, const float *x, int B, float coef, const double *z,
                                double *glt)
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents, dim = c->dim;
    double eps = c->bandwidth, pig[64], pim[64];
    const float *lt = extras_of(c, &p->v);
    memset(glt, 0, (size_t)n * sizeof(double));
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * dim;
        ordinary_pre(p, xb, pig, pim);
        for (int i = 0; i < n; i++) {
            double th = exp((double)lt[i]);
            if (!(fabs((pig[i] - th) / eps) < 0.5))
                continue;
            double dz = 0.0; /* d mse/d z_i = 2/B (x_hat - x) . d_i */
            for (int d = 0; d < dim; d++) {
                double xh = p->v.b_dec[d];
                for (int j = 0; j < n; j++)
                    xh += z[(size_t)b * n + j] * p->v.W_dec[(size_t)j * dim + d];
                dz += 2.0 / B * (xh - xb[d]) * p->v.W_dec[(size_t)i * dim + d];
            }
            glt[i] += th * (-(th / eps) * dz - coef / (B * eps));
        }
    }
}

static void test_ordinary_case(const gj_case *gc)
{
    sae_params p;
    sae_work w;
    float *x, *grad;
    CHECK(setup_case(gc, &p, &w, &x, &grad, 31) == 0, "%s: alloc", gc->name);
    int n = gc->n, B = gc->B;
    double *z = malloc((size_t)B * n * sizeof(double)), glt[64];
    double loss = sae_loss_grad(&p, x, B, gc->coef, &w, grad, NULL);
    double ref = ordinary_loss(&p, x, B, gc->coef, z);
    double zerr = 0.0, gerr = 0.0, gscale = 0.0;
    int zmatch = 1;
    for (size_t k = 0; k < (size_t)B * n; k++) {
        zerr = fmax(zerr, fabs(w.z[k] - z[k]));
        zmatch &= (w.z[k] > 0.0f) == (z[k] > 0.0);
    }
    CHECK_NEAR(loss, ref, 1e-5 * fabs(ref), "group_size 1 loss is the published SAE's");
    CHECK(zmatch && zerr < 1e-5, "%s: z is the published SAE's (same support, max diff %g)", gc->name, zerr);
    if (gc->arch == SAE_JUMPRELU) {
        ordinary_theta_grad(&p, x, B, gc->coef, z, glt);
        const float *g = grad + (extras_of(&p.cfg, &p.v) - p.buf);
        for (int i = 0; i < n; i++) {
            gerr = fmax(gerr, fabs(g[i] - glt[i]));
            gscale = fmax(gscale, fabs(glt[i]));
        }
        CHECK(gscale > 0.0 && gerr <= 1e-5 + 1e-4 * gscale,
              "%s: log_theta gradient is the paper's pseudo-derivative (max diff %g of %g)", gc->name, gerr, gscale);
    }
    printf("ordinary  %-16s loss %.6f vs %.6f, z max diff %.2e", gc->name, loss, ref, zerr);
    if (gc->arch == SAE_JUMPRELU)
        printf(", log_theta grad max diff %.2e of %.2e", gerr, gscale);
    printf("\n");
    free(z);
    free_case(&p, &w, x, grad);
}

static void test_ordinary(void)
{
    static const gj_case cases[] = {
        {"gated s1", SAE_GATED, 7, 10, 1, 40, 0.3f, 0.0f, 0.0f, 0.0f},
        {"jumprelu s1", SAE_JUMPRELU, 7, 10, 1, 400, 0.3f, 0.0f, 0.3f, 0.6f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_ordinary_case(&cases[i]);
}

/* ---------------------------------------------------------------- inference */

/* sae_encode agrees with the training forward bit for bit. */
static void test_encode_case(const gj_case *gc)
{
    sae_params p;
    sae_work w;
    float *x, *grad;
    int B = gc->B, n = gc->n, dim = gc->dim;
    CHECK(setup_case(gc, &p, &w, &x, &grad, 5) == 0, "%s: alloc", gc->name);
    float *z = malloc((size_t)B * n * sizeof(float)), *xh = malloc((size_t)B * dim * sizeof(float));
    sae_loss_terms t;
    sae_loss_grad(&p, x, B, gc->coef, &w, NULL, &t);
    CHECK(sae_encode(&p, NULL, x, B, z, xh) == 0, "%s: encode", gc->name);
    CHECK(memcmp(z, w.z, (size_t)B * n * sizeof(float)) == 0, "%s: encode z matches the training forward", gc->name);
    CHECK(memcmp(xh, w.x_hat, (size_t)B * dim * sizeof(float)) == 0, "%s: encode x_hat matches", gc->name);
    CHECK(t.l0 > 0.5 && t.l0 < n - 0.5 && t.l0_groups <= t.l0, "%s: l0 %g, l0_groups %g", gc->name, t.l0,
          t.l0_groups);
    sae_config relu = p.cfg;
    relu.arch = SAE_RELU;
    size_t extra = gc->arch == SAE_GATED ? (size_t)n + 2 * (size_t)B * n + (size_t)B * dim : (size_t)n / gc->s;
    CHECK(sae_work_bytes(&p.cfg, B) == sae_work_bytes(&relu, B) + extra * sizeof(float),
          "%s: sae_work_bytes counts the arch scratch", gc->name);
    free(z);
    free(xh);
    free_case(&p, &w, x, grad);
}

static void test_encode(void)
{
    static const gj_case cases[] = {
        {"gated s2", SAE_GATED, 7, 10, 2, 300, 0.1f, 0.0f, 0.0f, 0.0f},
        {"jumprelu s2", SAE_JUMPRELU, 7, 10, 2, 300, 0.1f, 0.0f, 0.001f, 1.0f},
        {"jumprelu s1", SAE_JUMPRELU, 7, 10, 1, 300, 0.1f, 0.0f, 0.001f, 0.5f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_encode_case(&cases[i]);
}

/* ---------------------------------------------------------------- configuration */

static void expect_reject(sae_config c, const char *want_field, const char *want_msg)
{
    char field[64] = "", msg[256] = "";
    int rc = sae_config_check(&c, field, sizeof field, msg, sizeof msg);
    CHECK(rc == -1 && strcmp(field, want_field) == 0 && strstr(msg, want_msg), "want %s (%s), got rc %d %s: %s",
          want_field, want_msg, rc, field, msg);
}

static void test_config(void)
{
    char field[64], msg[256];
    sae_config g = {.arch = SAE_GATED, .dim = 16, .n_latents = 64, .group_size = 2, .sparsity_coef = 0.01f,
                    .bandwidth = 0.001f};
    sae_config j = g, c;
    j.arch = SAE_JUMPRELU;
    CHECK(sae_config_check(&g, field, sizeof field, msg, sizeof msg) == 0, "gated is available: %s", msg);
    CHECK(sae_config_check(&j, field, sizeof field, msg, sizeof msg) == 0, "jumprelu is available: %s", msg);
    c = j, c.bandwidth = 0.0f;
    expect_reject(c, "sae.bandwidth", "> 0");
    c = j, c.bandwidth = -1.0f;
    expect_reject(c, "sae.bandwidth", "> 0");
    c = j, c.bandwidth = NAN;
    expect_reject(c, "sae.bandwidth", "finite");
    c = g, c.bandwidth = INFINITY;
    expect_reject(c, "sae.bandwidth", "finite");
    c = g, c.bandwidth = 0.0f; /* unused by gated and relu */
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) == 0, "bandwidth 0 is fine for gated");
    c = g, c.threshold = 0.5f;
    expect_reject(c, "sae.threshold", "gated");
    c = j, c.threshold = 0.5f; /* jumprelu: the initial theta */
    CHECK(sae_config_check(&c, field, sizeof field, msg, sizeof msg) == 0, "threshold sets jumprelu's initial theta");
    c = j, c.n_latents = 63;
    expect_reject(c, "sae.n_latents", "multiple of group_size");

    size_t n = 64, d = 16;
    CHECK(sae_n_params(&g) == 2 * d * n + n + d + 2 * n, "gated has r_mag and b_mag");
    CHECK(sae_n_params(&j) == 2 * d * n + n + d + n / 2, "jumprelu has one log_theta per group");
    sae_params p;
    c = j, c.threshold = 0.25f;
    sae_params_alloc(&p, &c);
    sae_params_init(&p, 3);
    const float *lt = extras_of(&c, &p.v);
    CHECK(fabsf(expf(lt[0]) - 0.25f) < 1e-6f && lt[31] == lt[0], "init: theta = threshold (%g)", expf(lt[0]));
    sae_params_free(&p);
    sae_params_alloc(&p, &j);
    sae_params_init(&p, 3);
    CHECK(fabsf(expf(extras_of(&j, &p.v)[5]) - 0.001f) < 1e-8f, "init: theta = 0.001 by default");
    sae_params_free(&p);
    sae_params_alloc(&p, &g);
    sae_params_init(&p, 3);
    const float *e = extras_of(&g, &p.v);
    CHECK(e[0] == 0.0f && e[2 * n - 1] == 0.0f, "init: r_mag = b_mag = 0, so W_mag = W_gate");
    sae_params_free(&p);
}

/* ---------------------------------------------------------------- the trainer */

/* Max | ||d_i|| - 1 | over decoder rows. */
static double decoder_norm_error(const sae_params *p)
{
    double worst = 0.0;
    for (int i = 0; i < p->cfg.n_latents; i++) {
        double n2 = 0.0;
        for (int d = 0; d < p->cfg.dim; d++)
            n2 += (double)p->v.W_dec[(size_t)i * p->cfg.dim + d] * p->v.W_dec[(size_t)i * p->cfg.dim + d];
        worst = fmax(worst, fabs(sqrt(n2) - 1.0));
    }
    return worst;
}

/* k steps + shutdown checkpoint + restore + the rest must equal a straight run bit for bit. */
static void test_resume_case(const char *what, const sae_config *c, const data_source *src)
{
    train_config t;
    trainlog_small_config(&t);
    char err[256];
    trainlog ha = {0}, hb = {.stop_at_poll = 12}, hc = {0};
    train_hooks h = trainlog_hooks(&ha);
    train_state *a = train_create(c, &t, src, err, sizeof err), *b = NULL, *r = NULL;
    CHECK(a && train_run(a, &h) == TRAIN_DONE, "%s: straight run: %s", what, a ? train_error(a) : err);
    if (!a)
        return;
    h = trainlog_hooks(&hb);
    b = train_create(c, &t, src, err, sizeof err);
    CHECK(train_run(b, &h) == TRAIN_INTERRUPTED && train_step_done(b) == 11 && hb.blob, "%s: shutdown at 11", what);
    r = train_create(c, &t, src, err, sizeof err);
    int rc = hb.blob ? train_checkpoint_restore(r, hb.blob, hb.blob_len, err, sizeof err) : -1;
    CHECK(rc == 0 && train_step_done(r) == 11, "%s: restore: %s", what, rc ? err : "ok");
    h = trainlog_hooks(&hc);
    CHECK(train_run(r, &h) == TRAIN_DONE, "%s: resumed run", what);
    const sae_params *pa = train_params(a), *pr = train_params(r);
    CHECK(memcmp(pa->buf, pr->buf, pa->n_params * sizeof(float)) == 0, "%s: resumed params (extras too) match the "
          "straight run bit for bit", what);
    const float *e = extras_of(&pa->cfg, &pa->v);
    size_t ne = pa->n_params - (size_t)(e - pa->buf);
    int moved = 0;
    for (size_t k = 0; k < ne; k++)
        moved += c->arch == SAE_GATED ? e[k] != 0.0f : e[k] != logf(0.001f);
    CHECK(moved > (int)ne / 2, "%s: the extras train (%d of %zu moved)", what, moved, ne);
    CHECK(decoder_norm_error(pa) < 1e-5, "%s: decoder rows stay unit norm (%g)", what, decoder_norm_error(pa));
    free(ha.blob);
    free(hb.blob);
    free(hc.blob);
    train_free(a);
    train_free(b);
    train_free(r);
}

static void test_resume(void)
{
    circles_params cp = {20, 16, 0.1, 0.5f, 1.5f, 2};
    circles *circ = circles_create(&cp);
    data_source src;
    datasrc_from_circles(&src, circ);
    sae_config g = {.arch = SAE_GATED, .dim = 16, .n_latents = 32, .group_size = 2, .sparsity_coef = 0.05f,
                    .orth_coef = 0.1f, .bandwidth = 0.001f};
    sae_config j = g;
    j.arch = SAE_JUMPRELU;
    j.bandwidth = 0.05f;
    test_resume_case("gated resume", &g, &src);
    test_resume_case("jumprelu resume", &j, &src);
    train_config t;
    trainlog_small_config(&t);
    char err[256];
    trainlog hl = {0};
    train_hooks h = trainlog_hooks(&hl);
    t.checkpoint_every = 10;
    train_state *st = train_create(&j, &t, &src, err, sizeof err);
    train_run(st, &h);
    sae_config j2 = j;
    j2.bandwidth = 0.1f;
    train_state *other = train_create(&j2, &t, &src, err, sizeof err);
    CHECK(train_checkpoint_restore(other, hl.blob, hl.blob_len, err, sizeof err) == -1 && strstr(err, "sae.bandwidth"),
          "restore names a differing bandwidth: %s", err);
    train_free(st);
    train_free(other);
    free(hl.blob);
    circles_free(circ);
}

/* A short run on 20 circles in 16-D per arch: it must reconstruct, sparsely. */
static void test_smoke_case(const char *what, const sae_config *c)
{
    circles_params cp = {20, 16, 0.1, 1.0f, 1.0f, 7};
    circles *circ = circles_create(&cp);
    data_source src;
    datasrc_from_circles(&src, circ);
    train_config t;
    train_config_default(&t);
    t.steps = 1500;
    t.batch_size = 128;
    t.lr = 3e-3f;
    t.lr_warmup_steps = 100;
    t.sparsity_warmup_steps = 300;
    t.eval_every = 500;
    t.eval_rows = 1024;
    t.dead_window = 500;
    char err[256];
    train_state *st = train_create(c, &t, &src, err, sizeof err);
    train_hooks h = {0};
    CHECK(st && train_run(st, &h) == TRAIN_DONE, "%s: %s", what, st ? train_error(st) : err);
    if (st) {
        const train_metrics *m = train_last_metrics(st);
        printf("smoke %-12s 20 circles in 16-D, n %d, s %d: fve %.4f mse %.4f l0 %.2f l0_groups %.2f dead %.3f\n",
               what, c->n_latents, c->group_size, m->fve, m->mse, m->l0, m->l0_groups, m->dead_frac);
        CHECK(m->fve > 0.5, "%s: fve %.4f > 0.5", what, m->fve);
        CHECK(m->l0 > 0.5 && m->l0 < c->n_latents / 3.0, "%s: l0 %.2f below a third of the width", what, m->l0);
        CHECK(decoder_norm_error(train_params(st)) < 1e-5, "%s: decoder rows unit norm", what);
    }
    train_free(st);
    circles_free(circ);
}

static void test_smoke(void)
{
    sae_config c = {.arch = SAE_GATED, .dim = 16, .n_latents = 80, .group_size = 1, .sparsity_coef = 0.3f,
                    .bandwidth = 0.001f};
    test_smoke_case("gated s1", &c);
    c.group_size = 2;
    test_smoke_case("gated s2", &c);
    /* jumprelu: the L0 coefficient weighs a count; theta starts at 0.1 (sae.threshold) and the kernel
     * is 0.05 wide, both on the scale of these rows (norm ~1.4), so 1500 steps are enough to learn it */
    c = (sae_config){.arch = SAE_JUMPRELU, .dim = 16, .n_latents = 80, .group_size = 1, .sparsity_coef = 0.1f,
                     .threshold = 0.1f, .bandwidth = 0.05f};
    test_smoke_case("jumprelu s1", &c);
    c.group_size = 2;
    test_smoke_case("jumprelu s2", &c);
}

int main(void)
{
    test_gradients();
    test_ordinary();
    test_encode();
    test_config();
    test_resume();
    test_smoke();
    return check_report();
}
