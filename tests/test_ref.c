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
 * within a margin of its kink, where float32 and float64 could disagree. */
#include "check.h"
#include "npy.h"
#include "rng.h"
#include "sae.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"

typedef struct {
    const char *name;
    int dim, n, s, B;
    float coef, orth, thr;
} ref_case;

static const ref_case ref_cases[] = {
    {"relu_s1", 7, 12, 1, 6, 0.3f, 0.0f, 0.0f},
    {"relu_s2", 7, 12, 2, 6, 0.3f, 0.0f, 0.0f},
    {"relu_s2_orth", 7, 12, 2, 6, 0.2f, 0.5f, 0.0f},
    {"relu_s1_thr", 7, 12, 1, 6, 0.3f, 0.0f, 0.4f},
    {"relu_s2_orth_thr", 7, 12, 2, 6, 0.2f, 0.3f, 1.0f},
    {"relu_s3_orth", 6, 12, 3, 5, 0.1f, 0.4f, 0.0f},
};
#define N_CASES (int)(sizeof ref_cases / sizeof ref_cases[0])

static const char *ref_files[] = {"config.txt", "W_enc.npy", "b_enc.npy", "W_dec.npy", "b_dec.npy",
                                  "x.npy", "loss.npy", "z.npy", "x_hat.npy", "grad_W_enc.npy",
                                  "grad_b_enc.npy", "grad_W_dec.npy", "grad_b_dec.npy"};

static int write_npy(const char *dir, const char *name, const float *data, const int64_t *shape, int ndim)
{
    char path[512], hdr[NPY_HEADER_MAX];
    size_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= (size_t)shape[i];
    snprintf(path, sizeof path, "%.400s/%.60s.npy", dir, name);
    size_t hl = npy_header(hdr, sizeof hdr, "<f4", shape, ndim);
    FILE *f = fopen(path, "wb");
    if (!f || hl == 0)
        return -1;
    int ok = fwrite(hdr, 1, hl, f) == hl && fwrite(data, sizeof(float), count, f) == count;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void fill_normal(rng_t *r, float *a, size_t n, float scale)
{
    for (size_t k = 0; k < n; k++)
        a[k] = scale * rng_normal(r);
}

/* 1 if every quantity with a kink is at least `margin` away from it, and a
 * threshold (if any) zeroes at least one group the ReLU alone would keep. */
static int away_from_kinks(const sae_params *p, const sae_work *w, int B, float margin)
{
    const sae_config *c = &p->cfg;
    int n = c->n_latents, s = c->group_size, dim = c->dim, zeroed = 0;
    for (int b = 0; b < B; b++)
        for (int g0 = 0; g0 < n; g0 += s) {
            double norm2 = 0.0;
            for (int i = g0; i < g0 + s; i++) {
                float v = w->pre[(size_t)b * n + i];
                if (fabsf(v) < margin)
                    return 0;
                norm2 += v > 0 ? (double)v * v : 0.0;
            }
            if (c->threshold > 0 && fabs(sqrt(norm2) - c->threshold) < margin)
                return 0;
            zeroed += norm2 > 0.0 && sqrt(norm2) < c->threshold;
        }
    if (c->threshold > 0 && zeroed == 0)
        return 0;
    for (int g0 = 0; g0 < n; g0 += s)
        for (int i = g0; i < g0 + s; i++)
            for (int j = i + 1; j < g0 + s; j++) {
                double dot = 0.0;
                for (int d = 0; d < dim; d++)
                    dot += (double)p->v.W_dec[(size_t)i * dim + d] * p->v.W_dec[(size_t)j * dim + d];
                if (fabs(dot) < margin)
                    return 0;
            }
    return 1;
}

/* Draws the case's SAE and batch (redrawing near kinks), computes, writes dir. Returns 0 or -1. */
static int write_case(const ref_case *rc, int index, const char *dir)
{
    sae_config c = {.arch = SAE_RELU, .dim = rc->dim, .n_latents = rc->n, .group_size = rc->s,
                    .sparsity_coef = rc->coef, .orth_coef = rc->orth, .threshold = rc->thr};
    sae_params p;
    sae_work w;
    if (sae_params_alloc(&p, &c) != 0 || sae_work_alloc(&w, &c, rc->B) != 0)
        return -1;
    float *x = malloc((size_t)rc->B * rc->dim * sizeof(float));     /* (B, dim) */
    float *grad = malloc(p.n_params * sizeof(float));               /* (n_params) */
    float loss = 0.0f;
    rng_t r;
    rng_seed(&r, 2024, (uint64_t)index);
    for (int attempt = 0; attempt < 1000; attempt++) {
        fill_normal(&r, p.buf, p.n_params, 0.5f);
        fill_normal(&r, x, (size_t)rc->B * rc->dim, 1.0f);
        loss = (float)sae_loss_grad(&p, x, rc->B, rc->coef, &w, grad, NULL);
        if (away_from_kinks(&p, &w, rc->B, 1e-3f))
            break;
    }
    sae_view g;
    sae_views(&c, grad, &g);
    int64_t s_enc[2] = {rc->dim, rc->n}, s_dec[2] = {rc->n, rc->dim}, s_n[1] = {rc->n}, s_d[1] = {rc->dim};
    int64_t s_x[2] = {rc->B, rc->dim}, s_z[2] = {rc->B, rc->n};
    int rcode = write_npy(dir, "W_enc", p.v.W_enc, s_enc, 2) | write_npy(dir, "b_enc", p.v.b_enc, s_n, 1) |
                write_npy(dir, "W_dec", p.v.W_dec, s_dec, 2) | write_npy(dir, "b_dec", p.v.b_dec, s_d, 1) |
                write_npy(dir, "x", x, s_x, 2) | write_npy(dir, "loss", &loss, NULL, 0) |
                write_npy(dir, "z", w.z, s_z, 2) | write_npy(dir, "x_hat", w.x_hat, s_x, 2) |
                write_npy(dir, "grad_W_enc", g.W_enc, s_enc, 2) | write_npy(dir, "grad_b_enc", g.b_enc, s_n, 1) |
                write_npy(dir, "grad_W_dec", g.W_dec, s_dec, 2) | write_npy(dir, "grad_b_dec", g.b_dec, s_d, 1);
    char path[512];
    snprintf(path, sizeof path, "%.400s/config.txt", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "group_size %d\ncoef %.9g\north_coef %.9g\nthreshold %.9g\n", rc->s, rc->coef, rc->orth,
                rc->thr);
        rcode |= fclose(f);
    } else {
        rcode = -1;
    }
    sae_params_free(&p);
    sae_work_free(&w);
    free(x);
    free(grad);
    return rcode ? -1 : 0;
}

static void remove_case(const char *dir)
{
    char path[512];
    for (size_t i = 0; i < sizeof ref_files / sizeof ref_files[0]; i++) {
        snprintf(path, sizeof path, "%.400s/%.60s", dir, ref_files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* tests/ref_torch.py beside this source file. */
static void script_path(char *out, size_t cap)
{
    const char *src = __FILE__, *slash = strrchr(src, '/');
    int dirlen = slash ? (int)(slash - src) + 1 : 0;
    snprintf(out, cap, "%.*sref_torch.py", dirlen, src);
}

/* Runs the reference over all case dirs, echoing its output, and CHECKs each case's verdict. */
static void run_reference(const char *script, char dirs[][400], int n)
{
    char cmd[8192];
    int len = snprintf(cmd, sizeof cmd, "%s %s", PYTHON, script);
    for (int i = 0; i < n; i++)
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %s", dirs[i]);
    snprintf(cmd + len, sizeof cmd - (size_t)len, " 2>&1");
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL, "could not start %s", PYTHON);
    if (!p)
        return;
    int verdict[N_CASES] = {0}; /* 1 pass, -1 fail, 0 missing */
    char line[1024];
    while (fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        for (int i = 0; i < n; i++) {
            char want[512];
            snprintf(want, sizeof want, "case %.400s: ", dirs[i]);
            if (strncmp(line, want, strlen(want)) == 0)
                verdict[i] = strncmp(line + strlen(want), "PASS", 4) == 0 ? 1 : -1;
        }
    }
    int status = pclose(p);
    for (int i = 0; i < n; i++)
        CHECK(verdict[i] == 1, "case %s: %s against the PyTorch reference", ref_cases[i].name,
              verdict[i] == 0 ? "no verdict" : "FAILED");
    CHECK(status == 0, "%s exited with status %d", script, status);
}

int main(void)
{
    char script[512];
    script_path(script, sizeof script);
    CHECK(access(script, R_OK) == 0, "reference script %s not found (run from the repository root)", script);
    int has_torch = system(PYTHON " -c 'import torch, numpy' >/dev/null 2>&1") == 0;
    CHECK(has_torch, PYTHON " cannot import torch and numpy: install Debian's python3-torch and python3-numpy "
          "(scripts/deps.sh does)");
    char tmpl[] = "/tmp/saed_test_ref_XXXXXX";
    char *root = mkdtemp(tmpl);
    CHECK(root != NULL, "mkdtemp failed");
    if (!root || !has_torch)
        return check_report();
    char dirs[N_CASES][400];
    for (int i = 0; i < N_CASES; i++) {
        snprintf(dirs[i], sizeof dirs[i], "%.300s/%.60s", root, ref_cases[i].name);
        CHECK(mkdir(dirs[i], 0700) == 0 && write_case(&ref_cases[i], i, dirs[i]) == 0, "writing case %s",
              ref_cases[i].name);
    }
    run_reference(script, dirs, N_CASES);
    for (int i = 0; i < N_CASES; i++)
        remove_case(dirs[i]);
    rmdir(root);
    return check_report();
}
