/* test_ref_gj — the gated and jumprelu SAEs' loss and gradients against an
 * independent PyTorch float64 autograd reference (tests/ref_torch_gj.py).
 *
 * For each case this builds a small random SAE (with its arch extras) and
 * batch, computes loss, activations, reconstruction and every parameter
 * gradient in C, and writes them (with config.txt) as .npy files into its own
 * directory under a mkdtemp directory. One run of
 * `/usr/bin/python3 tests/ref_torch_gj.py DIR...` checks every case
 * (max|c - ref| <= 1e-5 + 1e-4 max|ref| per tensor; group_size 1 cases also
 * against the published elementwise SAEs), prints the per-tensor diffs and
 * "case DIR: PASS|FAIL"; each verdict and the exit status are CHECKed here.
 * Without torch the test fails, saying so. Cases are drawn so no quantity
 * with a kink (pre- and magnitude activations, group norms against jumprelu's
 * thresholds and kernel window edges, orth dot products) sits within a
 * margin of it, and so jumprelu has open, closed and in-window groups. */
#include "check.h"
#include "gradcheck.h"
#include "reftest.h"
#include "rng.h"
#include "sae.h"
#include <stdlib.h>

typedef struct {
    const char *name;
    sae_arch arch;
    int dim, n, s, B;
    float coef, orth, bandwidth;
} ref_case;

static const ref_case ref_cases[] = {
    {"gated_s1", SAE_GATED, 7, 12, 1, 6, 0.3f, 0.0f, 0.0f},
    {"gated_s2", SAE_GATED, 7, 12, 2, 6, 0.3f, 0.0f, 0.0f},
    {"gated_s2_orth", SAE_GATED, 7, 12, 2, 6, 0.2f, 0.5f, 0.0f},
    {"gated_s3_orth", SAE_GATED, 6, 12, 3, 5, 0.1f, 0.4f, 0.0f},
    {"jumprelu_s1", SAE_JUMPRELU, 7, 12, 1, 6, 0.3f, 0.0f, 0.4f},
    {"jumprelu_s2", SAE_JUMPRELU, 7, 12, 2, 6, 0.3f, 0.0f, 0.4f},
    {"jumprelu_s2_orth", SAE_JUMPRELU, 7, 12, 2, 6, 0.2f, 0.5f, 0.4f},
    {"jumprelu_s3_orth", SAE_JUMPRELU, 6, 12, 3, 5, 0.1f, 0.4f, 0.4f},
};
#define N_CASES (int)(sizeof ref_cases / sizeof ref_cases[0])

static const float *extras_of(const sae_params *p) { return p->v.b_dec + p->cfg.dim; }

/* jumprelu's signed group norm of pre_g (s): ||ReLU(pre_g)||, or max(pre_g) when none is positive. */
static double signed_rho(const float *pre, int s)
{
    double sq = 0.0, mx = pre[0];
    for (int k = 0; k < s; k++) {
        sq += pre[k] > 0 ? (double)pre[k] * pre[k] : 0.0;
        mx = pre[k] > mx ? pre[k] : mx;
    }
    return sq > 0.0 ? sqrt(sq) : mx;
}

/* 1 if every per-(row, latent) and per-(row, group) kink is at least margin away; counts jumprelu's groups. */
static int activations_clear(const sae_params *p, const sae_work *w, int B, float margin, int counts[3])
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents, s = c->group_size;
    const float *e = extras_of(p);
    for (int b = 0; b < B; b++)
        for (int g0 = 0; g0 < n; g0 += s) {
            const float *pre = w->pre + (size_t)b * n + g0;
            for (int k = 0; k < s; k++) {
                int i = g0 + k;
                if (fabsf(pre[k]) < margin)
                    return 0;
                if (c->arch == SAE_GATED && fabs(exp(e[i]) * (pre[k] - p->v.b_enc[i]) + e[n + i]) < margin)
                    return 0;
            }
            if (c->arch != SAE_JUMPRELU)
                continue;
            double rho = signed_rho(pre, s), d = rho - exp(e[g0 / s]);
            if (fabs(d) < margin || fabs(fabs(d) - 0.5 * c->bandwidth) < margin)
                return 0;
            counts[d > 0]++;
            counts[2] += fabs(d) < 0.5 * c->bandwidth;
        }
    return 1;
}

/* 1 if the case is clear of kinks (and jumprelu has open, closed and in-window groups). */
static int away_from_kinks(const sae_params *p, const sae_work *w, int B, float margin)
{
    const sae_config *c = &p->cfg;
    int counts[3] = {0, 0, 0}; /* jumprelu groups: closed, open, in the kernel window */
    if (!activations_clear(p, w, B, margin, counts))
        return 0;
    if (c->arch == SAE_JUMPRELU && (counts[0] < 2 || counts[1] < 2 || counts[2] < 2))
        return 0;
    return reftest_orth_clear(p, margin);
}

/* Draws the case's SAE and batch (redrawing near kinks), computes, writes dir. Returns 0 or -1. */
static int write_case(int index, const char *dir)
{
    const ref_case *rc = &ref_cases[index];
    sae_config c = {.arch = rc->arch, .dim = rc->dim, .n_latents = rc->n, .group_size = rc->s,
                    .sparsity_coef = rc->coef, .orth_coef = rc->orth, .bandwidth = rc->bandwidth};
    sae_params p;
    sae_work w;
    if (sae_params_alloc(&p, &c) != 0 || sae_work_alloc(&w, &c, rc->B) != 0)
        return -1;
    float *x = malloc((size_t)rc->B * rc->dim * sizeof(float)); /* (B, dim) */
    float *grad = malloc(p.n_params * sizeof(float));           /* (n_params) */
    float loss = 0.0f;
    int found = 0;
    rng_t r;
    rng_seed(&r, 2025, (uint64_t)index);
    for (int attempt = 0; attempt < 10000 && !found; attempt++) {
        gradcheck_fill_normal(&r, p.buf, p.n_params, 0.5f);
        gradcheck_fill_normal(&r, x, (size_t)rc->B * rc->dim, 1.0f);
        loss = (float)sae_loss_grad(&p, x, rc->B, rc->coef, &w, grad, NULL);
        found = away_from_kinks(&p, &w, rc->B, 1e-3f);
    }
    int rcode = (found ? 0 : -1) | reftest_write_pass(dir, &p, grad, x, rc->B, &w, loss) |
                reftest_write_text(dir, "config.txt", "arch %d\ngroup_size %d\ncoef %.9g\north_coef %.9g\n"
                                   "bandwidth %.9g\n", (int)rc->arch, rc->s, rc->coef, rc->orth, rc->bandwidth);
    sae_params_free(&p);
    sae_work_free(&w);
    free(x);
    free(grad);
    return rcode ? -1 : 0;
}

static void check(int ok, const char *what) { CHECK(ok, "%s", what); }

int main(void)
{
    reftest_suite s = {"ref_torch_gj.py", "saed_test_ref_gj", ref_cases, sizeof ref_cases[0], N_CASES, write_case,
                       check};
    reftest_run(&s);
    return check_report();
}
