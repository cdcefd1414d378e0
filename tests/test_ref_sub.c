/* test_ref_sub — the subspace SAE's loss and gradients against an
 * independent PyTorch float64 autograd reference (tests/ref_torch_sub.py).
 *
 * For each case this builds a small random SAE and batch, computes in C the
 * loss under the training rules (sae_loss_grad_train; AuxK on a forced dead
 * mask), activations, reconstruction and every parameter gradient, and
 * writes them with config.txt as .npy files into the case's directory under
 * a mkdtemp directory. One run of `/usr/bin/python3 tests/ref_torch_sub.py
 * DIR...` checks every case (max|c - ref| <= 1e-5 + 1e-4 max|ref| per
 * tensor); each verdict and the exit status are CHECKed here. Cases are
 * drawn so that no selection boundary (k-th against (k+1)-th norm, AuxK's
 * likewise), group norm against the proximal threshold, or orth dot product
 * sits within a margin of its kink. */
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
    int dim, n, s, B, k;
    float thr, orth, aux_coef;
    int with_dead;
} ref_case;

static const ref_case ref_cases[] = {
    {"topk_s1", 7, 12, 1, 6, 3, 0.0f, 0.0f, 0.0f, 0},
    {"topk_s2_orth", 7, 12, 2, 6, 2, 0.0f, 0.3f, 0.0f, 0},
    {"topk_s2_auxk", 7, 16, 2, 6, 2, 0.0f, 0.0f, 0.7f, 1},
    {"topk_s3_auxk_orth", 6, 18, 3, 5, 2, 0.0f, 0.2f, 0.5f, 1},
    {"prox_s1", 7, 12, 1, 6, 0, 0.5f, 0.0f, 0.0f, 0},
    {"prox_s2_orth", 7, 12, 2, 6, 0, 0.9f, 0.3f, 0.0f, 0},
    {"prox_s3_auxk", 6, 18, 3, 5, 0, 1.0f, 0.0f, 0.6f, 1},
};
#define N_CASES (int)(sizeof ref_cases / sizeof ref_cases[0])

static void forced_dead(const sae_config *c, float *dead)
{
    for (int i = 0; i < c->n_latents; i++)
        dead[i] = (i / c->group_size) % 3 != 0 || i == 0 ? 1.0f : 0.0f;
}

static double signed_norm(const float *pre, int s)
{
    double n2 = 0.0;
    for (int k = 0; k < s; k++)
        n2 += (double)pre[k] * pre[k];
    return sqrt(n2);
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* 1 if the kk-th and (kk+1)-th largest of v (m, reordered) are apart by the margin. */
static int gap_ok(double *v, int m, int kk)
{
    if (kk >= m)
        return 1;
    qsort(v, (size_t)m, sizeof(double), cmp_desc);
    return v[kk - 1] - v[kk] > MARGIN;
}

/* Every kink at least MARGIN away: selections (rule and AuxK), norms against tau, orth dots. */
static int away_from_kinks(const sae_params *p, const ref_case *rc, const float *pre, const float *dead)
{
    const sae_config *c = &p->cfg;
    int s = c->group_size, G = c->n_latents / s, ok = reftest_orth_clear(p, MARGIN), on = 0;
    double *v = malloc((size_t)G * sizeof(double));
    for (int b = 0; ok && b < rc->B; b++) {
        const float *pb = pre + (size_t)b * c->n_latents;
        for (int g = 0; g < G; g++) {
            v[g] = signed_norm(pb + (size_t)g * s, s);
            ok &= rc->k > 0 || fabs(v[g] - rc->thr) > MARGIN;
            on += rc->k == 0 && v[g] > rc->thr;
        }
        if (rc->k > 0)
            ok &= gap_ok(v, G, rc->k);
        int D = 0;
        for (int g = 0; rc->with_dead && g < G; g++) {
            int all = 1;
            for (int k = 0; k < s; k++)
                all &= dead[g * s + k] != 0.0f;
            if (all)
                v[D++] = signed_norm(pb + (size_t)g * s, s);
        }
        if (rc->with_dead)
            ok &= gap_ok(v, D, sae_aux_k_groups(c));
    }
    free(v);
    return ok && (rc->k > 0 || (on > 0 && on < rc->B * G));
}

typedef struct {
    sae_params p;
    sae_work w;
    float *x, *grad, *dead;
    float loss;
} case_run;

static int run_case(const ref_case *rc, int index, case_run *cr)
{
    sae_config c = {.arch = SAE_SUBSPACE, .dim = rc->dim, .n_latents = rc->n, .group_size = rc->s, .k = rc->k,
                    .threshold = rc->thr, .sparsity_coef = 0.5f, .orth_coef = rc->orth, .aux_k_coef = rc->aux_coef};
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
    rng_seed(&r, 8093, (uint64_t)index);
    int found = 0;
    for (int attempt = 0; attempt < 1000 && !found; attempt++) {
        gradcheck_fill_normal(&r, cr->p.buf, cr->p.n_params, 0.5f);
        gradcheck_fill_normal(&r, cr->x, (size_t)rc->B * rc->dim, 1.0f);
        cr->loss = (float)sae_loss_grad_train(&cr->p, cr->x, rc->B, 0.5f, rc->with_dead ? mask : NULL, &cr->w,
                                              cr->grad, NULL);
        found = away_from_kinks(&cr->p, rc, cr->w.pre, cr->dead);
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
                                   "group_size %d\nk %d\nthreshold %.9g\nsparsity_coef 0.5\naux_k %d\n"
                                   "aux_k_coef %.9g\north_coef %.9g\n", rc->s, rc->k, rc->thr,
                                   sae_aux_k_groups(&cr.p.cfg), rc->aux_coef, rc->orth);
    sae_params_free(&cr.p);
    sae_work_free(&cr.w);
    free(cr.x), free(cr.grad), free(cr.dead);
    return rcode ? -1 : 0;
}

static void check(int ok, const char *what) { CHECK(ok, "%s", what); }

int main(void)
{
    reftest_suite s = {"ref_torch_sub.py", "saed_test_ref_sub", ref_cases, sizeof ref_cases[0], N_CASES, write_case,
                       check};
    reftest_run(&s);
    return check_report();
}
