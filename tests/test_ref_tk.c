/* test_ref_tk — the topk and batchtopk SAEs' loss and gradients against an
 * independent PyTorch float64 autograd reference (tests/ref_torch_tk.py).
 *
 * For each case this builds a small random SAE and batch, computes in C the
 * loss (training rules with sae_loss_grad_train, AuxK on a forced dead mask;
 * or batchtopk's inference rule with sae_loss_grad and a set threshold),
 * activations, reconstruction and every parameter gradient, and writes them
 * with config.txt as .npy files into the case's directory under a mkdtemp
 * directory. One run of `/usr/bin/python3 tests/ref_torch_tk.py DIR...`
 * checks every case (max|c - ref| <= 1e-5 + 1e-4 max|ref| per tensor);
 * each case's verdict and the exit status are CHECKed here. Cases are drawn
 * so that no pre-activation, selection boundary (k-th against (k+1)-th
 * norm, AuxK's likewise, batchtopk's threshold) or orth dot product sits
 * within a margin of its kink, where float32 and float64 could disagree. */
#include "check.h"
#include "gradcheck.h"
#include "reftest.h"
#include "rng.h"
#include "sae.h"
#include <stdlib.h>
#include <string.h>
#define MARGIN 1e-3

typedef struct {
    const char *name;
    sae_arch arch;
    int dim, n, s, B, k;
    int train;        /* 1: training rules (sae_loss_grad_train); 0: inference (sae_loss_grad) */
    float orth, aux_coef;
    int aux_k;        /* 0: auto */
    int with_dead;    /* AuxK on the forced dead mask */
    float theta;      /* batchtopk inference */
} ref_case;

static const ref_case ref_cases[] = {
    {"topk_s1", SAE_TOPK, 7, 12, 1, 6, 3, 1, 0.0f, 0.0f, 0, 0, 0.0f},
    {"topk_s2_orth", SAE_TOPK, 7, 12, 2, 6, 2, 1, 0.3f, 0.0f, 0, 0, 0.0f},
    {"topk_s1_auxk", SAE_TOPK, 7, 12, 1, 6, 3, 1, 0.0f, 0.7f, 3, 1, 0.0f},
    {"topk_s2_auxk_orth", SAE_TOPK, 7, 16, 2, 6, 2, 1, 0.2f, 0.7f, 2, 1, 0.0f},
    {"topk_s3_auxk", SAE_TOPK, 6, 18, 3, 5, 2, 1, 0.0f, 0.5f, 0, 1, 0.0f},
    {"batchtopk_s1", SAE_BATCHTOPK, 7, 12, 1, 6, 3, 1, 0.0f, 0.0f, 0, 0, 0.0f},
    {"batchtopk_s1_auxk", SAE_BATCHTOPK, 7, 12, 1, 6, 2, 1, 0.0f, 0.7f, 4, 1, 0.0f},
    {"batchtopk_s2_auxk_orth", SAE_BATCHTOPK, 7, 16, 2, 6, 2, 1, 0.3f, 0.7f, 2, 1, 0.0f},
    {"batchtopk_s2_infer", SAE_BATCHTOPK, 7, 12, 2, 6, 2, 0, 0.0f, 0.0f, 0, 0, 0.8f},
    {"batchtopk_s1_infer_orth", SAE_BATCHTOPK, 7, 12, 1, 6, 2, 0, 0.2f, 0.0f, 0, 0, 0.4f},
};
#define N_CASES (int)(sizeof ref_cases / sizeof ref_cases[0])

/* Dead latents: every group g with g % 3 != 0, and latent 0 alone (its group stays alive for s > 1). */
static void forced_dead(const sae_config *c, float *dead)
{
    for (int i = 0; i < c->n_latents; i++)
        dead[i] = (i / c->group_size) % 3 != 0 || i == 0 ? 1.0f : 0.0f;
}

/* ---- margins ---- */

static double group_norm(const float *pre, int s)
{
    double n2 = 0.0;
    for (int k = 0; k < s; k++)
        n2 += pre[k] > 0.0f ? (double)pre[k] * pre[k] : 0.0;
    return sqrt(n2);
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* 1 if the kk-th and (kk+1)-th largest of v (m, reordered) are apart by the margin (or the latter is 0). */
static int gap_ok(double *v, int m, int kk)
{
    if (kk >= m)
        return 1;
    qsort(v, (size_t)m, sizeof(double), cmp_desc);
    return v[kk] == 0.0 || v[kk - 1] - v[kk] > MARGIN;
}

/* Selection margins: the main rule's boundary, and AuxK's in every row. */
static int selection_ok(const sae_config *c, const ref_case *rc, const float *pre, const float *dead)
{
    int s = c->group_size, G = c->n_latents / s, B = rc->B, ok = 1, any_dropped = 0, any_kept = 0;
    double *v = malloc((size_t)B * G * sizeof(double));
    for (int g = 0; g < B * G; g++)
        v[g] = group_norm(pre + (size_t)g * s, s);
    if (c->arch == SAE_BATCHTOPK && !rc->train) {
        for (int g = 0; g < B * G; g++) {
            ok &= v[g] == 0.0 || fabs(v[g] - rc->theta) > MARGIN;
            any_dropped += v[g] > 0.0 && v[g] < rc->theta;
            any_kept += v[g] >= rc->theta;
        }
        ok &= any_dropped > 0 && any_kept > 0;
    } else if (c->arch == SAE_BATCHTOPK) {
        ok &= gap_ok(v, B * G, c->k * B);
    } else {
        for (int b = 0; b < B; b++)
            ok &= gap_ok(v + (size_t)b * G, G, c->k);
    }
    for (int b = 0; ok && rc->with_dead && b < B; b++) {
        int D = 0;
        for (int g = 0; g < G; g++) {
            int all = 1;
            for (int k = 0; k < s; k++)
                all &= dead[g * s + k] != 0.0f;
            if (all)
                v[D++] = group_norm(pre + (size_t)b * c->n_latents + (size_t)g * s, s);
        }
        ok &= gap_ok(v, D, sae_aux_k_groups(c));
    }
    free(v);
    return ok;
}

/* 1 if every quantity with a kink is at least MARGIN away from it. */
static int away_from_kinks(const sae_params *p, const ref_case *rc, const sae_work *w, const float *dead)
{
    const sae_config *c = &p->cfg;
    for (size_t i = 0; i < (size_t)rc->B * c->n_latents; i++)
        if (fabsf(w->pre[i]) < MARGIN)
            return 0;
    return reftest_orth_clear(p, MARGIN) && selection_ok(c, rc, w->pre, dead);
}

/* ---- one case ---- */

typedef struct {
    sae_params p;
    sae_work w;
    float *x, *grad, *dead;
    float loss;
} case_run;

/* Draws the case's SAE and batch (redrawing near kinks) and computes. 0 or -1. */
static int run_case(const ref_case *rc, int index, case_run *cr)
{
    sae_config c = {.arch = rc->arch, .dim = rc->dim, .n_latents = rc->n, .group_size = rc->s, .k = rc->k,
                    .sparsity_coef = 0.5f, .orth_coef = rc->orth, .aux_k_coef = rc->aux_coef, .aux_k = rc->aux_k};
    if (sae_params_alloc(&cr->p, &c) != 0 || sae_work_alloc(&cr->w, &c, rc->B) != 0)
        return -1;
    cr->x = malloc((size_t)rc->B * rc->dim * sizeof(float));
    cr->grad = malloc(cr->p.n_params * sizeof(float));
    cr->dead = malloc((size_t)rc->n * sizeof(float));
    unsigned char *mask = malloc((size_t)rc->n);
    forced_dead(&c, cr->dead);
    for (int i = 0; i < rc->n; i++)
        mask[i] = rc->with_dead && cr->dead[i] != 0.0f;
    rng_t r;
    rng_seed(&r, 4049, (uint64_t)index);
    int found = 0;
    for (int attempt = 0; attempt < 1000 && !found; attempt++) {
        gradcheck_fill_normal(&r, cr->p.buf, cr->p.n_params, 0.5f);
        if (c.arch == SAE_BATCHTOPK)
            cr->p.buf[cr->p.n_params - 1] = rc->theta;
        gradcheck_fill_normal(&r, cr->x, (size_t)rc->B * rc->dim, 1.0f);
        cr->loss = (float)(rc->train ? sae_loss_grad_train(&cr->p, cr->x, rc->B, 0.5f, rc->with_dead ? mask : NULL,
                                                           &cr->w, cr->grad, NULL)
                                     : sae_loss_grad(&cr->p, cr->x, rc->B, 0.5f, &cr->w, cr->grad, NULL));
        found = away_from_kinks(&cr->p, rc, &cr->w, cr->dead);
    }
    free(mask);
    if (!rc->with_dead)
        memset(cr->dead, 0, (size_t)rc->n * sizeof(float));
    return found ? 0 : -1;
}

static int write_case(int index, const char *dir)
{
    const ref_case *rc = &ref_cases[index];
    case_run cr = {0};
    int rcode = run_case(rc, index, &cr);
    int64_t s_n[1] = {rc->n};
    if (rcode == 0)
        rcode = reftest_write_pass(dir, &cr.p, cr.grad, cr.x, rc->B, &cr.w, cr.loss) |
                reftest_write_npy(dir, "dead", cr.dead, s_n, 1) |
                reftest_write_text(dir, "config.txt",
                                   "arch %s\ngroup_size %d\nk %d\naux_k %d\naux_k_coef %.9g\north_coef %.9g\n"
                                   "train %d\n", sae_arch_name(rc->arch), rc->s, rc->k, sae_aux_k_groups(&cr.p.cfg),
                                   rc->aux_coef, rc->orth, rc->train);
    sae_params_free(&cr.p);
    sae_work_free(&cr.w);
    free(cr.x);
    free(cr.grad);
    free(cr.dead);
    return rcode ? -1 : 0;
}

static void check(int ok, const char *what) { CHECK(ok, "%s", what); }

int main(void)
{
    reftest_suite s = {"ref_torch_tk.py", "saed_test_ref_tk", ref_cases, sizeof ref_cases[0], N_CASES, write_case,
                       check};
    reftest_run(&s);
    return check_report();
}
