/* test_ref — the relu SAE's loss and gradients against an independent
 * PyTorch float64 autograd reference (tests/ref_torch.py).
 *
 * For each case this builds a small random SAE and batch, computes loss,
 * activations, reconstruction and every parameter gradient in C, and writes
 * them (with config.txt) as .npy files into its own directory under a mkdtemp
 * directory. One run of `/usr/bin/python3 tests/ref_torch.py DIR...` checks
 * every case (max|c - ref| <= 1e-5 + 1e-4 max|ref| per tensor), prints the
 * per-tensor diffs and "case DIR: PASS|FAIL"; each case's verdict and the
 * exit status are CHECKed here. Without torch the test fails, saying so.
 * Cases are drawn so no pre-activation, group norm or orth dot product sits
 * within a margin of its kink, where float32 and float64 could disagree. The
 * _thr cases (bandwidth = threshold) have zeroed and kept groups within the
 * threshold's kernel window, so its jump term (include/sae.h) is exercised. */
#include "check.h"
#include "gradcheck.h"
#include "reftest.h"
#include "rng.h"
#include "sae.h"
#include "sae_groups.h"
#include <stdlib.h>

typedef struct {
    const char *name;
    int dim, n, s, B;
    float coef, orth, thr;
    const char *groups; /* a group table (gradcheck_groups; s is then 0), or NULL */
} ref_case;

static const ref_case ref_cases[] = {
    {"relu_s1", 7, 12, 1, 6, 0.3f, 0.0f, 0.0f, NULL},
    {"relu_s2", 7, 12, 2, 6, 0.3f, 0.0f, 0.0f, NULL},
    {"relu_s2_orth", 7, 12, 2, 6, 0.2f, 0.5f, 0.0f, NULL},
    {"relu_s1_thr", 7, 12, 1, 6, 0.3f, 0.0f, 0.4f, NULL},
    {"relu_s2_orth_thr", 7, 12, 2, 6, 0.2f, 0.3f, 1.0f, NULL},
    {"relu_s3_orth", 6, 12, 3, 5, 0.1f, 0.4f, 0.0f, NULL},
    {"relu_table", 7, 12, 0, 6, 0.3f, 0.0f, 0.0f, "0,4,7|1|2,3|5,6,8,9|10,11"},
    {"relu_table_orth", 7, 12, 0, 6, 0.2f, 0.5f, 0.0f, "11,0,4,7|1|2,3|5,6,8|9,10"},
    {"relu_table_orth_thr", 7, 12, 0, 6, 0.2f, 0.3f, 1.0f, "0,4,7|1|2,3|5,6,8,9|10,11"},
};
#define N_CASES (int)(sizeof ref_cases / sizeof ref_cases[0])

/* 1 if every quantity with a kink is at least `margin` away from it (the threshold and the edges
 * of its kernel window included), and a threshold (if any) has zeroed and kept groups in its
 * window (so the jump term is exercised on both sides). */
static int away_from_kinks(const sae_params *p, const sae_work *w, int B, float margin)
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents, below = 0, above = 0;
    double thr = c->threshold, half = 0.5 * c->bandwidth;
    for (int b = 0; b < B; b++)
        for (int g = 0; g < sae_n_groups(c); g++) {
            double norm2 = 0.0;
            for (int k = 0; k < sae_group_len(c, g); k++) {
                float v = w->pre[(size_t)b * n + sae_group_member(c, g, k)];
                if (fabsf(v) < margin)
                    return 0;
                norm2 += v > 0 ? (double)v * v : 0.0;
            }
            double rho = sqrt(norm2);
            if (thr > 0 && (fabs(rho - thr) < margin || fabs(fabs(rho - thr) - half) < margin))
                return 0;
            below += rho > 0.0 && rho < thr && rho > thr - half;
            above += rho >= thr && rho < thr + half;
        }
    if (thr > 0 && (below == 0 || above == 0))
        return 0;
    return reftest_orth_clear(p, margin);
}

/* group_of.npy (n): each latent's group, as floats (exact for these sizes). 0 or -1. */
static int write_group_of(const char *dir, const sae_params *p)
{
    int n = p->cfg.n_latents;
    float *of = malloc((size_t)n * sizeof(float)); /* (n) */
    if (!of)
        return -1;
    for (int i = 0; i < n; i++)
        of[i] = (float)sae_group_of(&p->cfg, i);
    int64_t shape[1] = {n};
    int rc = reftest_write_npy(dir, "group_of", of, shape, 1);
    free(of);
    return rc;
}

/* Draws the case's SAE and batch (redrawing near kinks), computes, writes dir. Returns 0 or -1. */
static int write_case(int index, const char *dir)
{
    const ref_case *rc = &ref_cases[index];
    sae_config c = {.arch = SAE_RELU, .dim = rc->dim, .n_latents = rc->n, .group_size = rc->s,
                    .sparsity_coef = rc->coef, .orth_coef = rc->orth, .threshold = rc->thr, .bandwidth = rc->thr};
    sae_params p;
    sae_work w;
    sae_groups *t = rc->groups ? gradcheck_groups(rc->groups, rc->n) : NULL;
    c.groups = t;
    int bad = (rc->groups && !t) || sae_params_alloc(&p, &c) != 0;
    sae_groups_free(t); /* the params keep their own copy */
    if (bad || sae_work_alloc(&w, &p.cfg, rc->B) != 0)
        return -1;
    float *x = malloc((size_t)rc->B * rc->dim * sizeof(float));     /* (B, dim) */
    float *grad = malloc(p.n_params * sizeof(float));               /* (n_params) */
    float loss = 0.0f;
    rng_t r;
    rng_seed(&r, 2024, (uint64_t)index);
    for (int attempt = 0; attempt < 1000; attempt++) {
        gradcheck_fill_normal(&r, p.buf, p.n_params, 0.5f);
        gradcheck_fill_normal(&r, x, (size_t)rc->B * rc->dim, 1.0f);
        loss = (float)sae_loss_grad(&p, x, rc->B, rc->coef, &w, grad, NULL);
        if (away_from_kinks(&p, &w, rc->B, 1e-3f))
            break;
    }
    int rcode = reftest_write_pass(dir, &p, grad, x, rc->B, &w, loss);
    rcode |= write_group_of(dir, &p);
    rcode |= reftest_write_text(dir, "config.txt",
                                "group_size %d\ncoef %.9g\north_coef %.9g\nthreshold %.9g\nbandwidth %.9g\n", rc->s,
                                rc->coef, rc->orth, rc->thr, rc->thr);
    sae_params_free(&p);
    sae_work_free(&w);
    free(x);
    free(grad);
    return rcode ? -1 : 0;
}

static void check(int ok, const char *what) { CHECK(ok, "%s", what); }

int main(void)
{
    reftest_suite s = {"ref_torch.py", "saed_test_ref", ref_cases, sizeof ref_cases[0], N_CASES, write_case, check};
    reftest_run(&s);
    return check_report();
}
