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

static const char *ref_files[] = {"config.txt", "W_enc.npy", "b_enc.npy", "W_dec.npy", "b_dec.npy", "r_mag.npy",
                                  "b_mag.npy", "log_theta.npy", "x.npy", "loss.npy", "z.npy", "x_hat.npy",
                                  "grad_W_enc.npy", "grad_b_enc.npy", "grad_W_dec.npy", "grad_b_dec.npy",
                                  "grad_r_mag.npy", "grad_b_mag.npy", "grad_log_theta.npy"};

static int write_npy(const char *dir, const char *name, const float *data, const int64_t *shape, int ndim)
{
    char path[512], hdr[NPY_HEADER_MAX];
    size_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= (size_t)shape[i];
    snprintf(path, sizeof path, "%.400s/%.60s.npy", dir, name);
    size_t hl = npy_header(hdr, sizeof hdr, "<f4", shape, ndim);
    FILE *f = fopen(path, "wb");
    if (!f || hl == 0) {
        if (f)
            fclose(f);
        return -1;
    }
    int ok = fwrite(hdr, 1, hl, f) == hl && fwrite(data, sizeof(float), count, f) == count;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static void fill_normal(rng_t *r, float *a, size_t n, float scale)
{
    for (size_t k = 0; k < n; k++)
        a[k] = scale * rng_normal(r);
}

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
    int s = c->group_size, dim = c->dim;
    for (int g0 = 0; g0 < c->n_latents; g0 += s)
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

/* The parameter tensors (and their gradients' views) of p's arch, written as NAME.npy and grad_NAME.npy. */
static int write_params(const char *dir, const sae_params *p, const float *grad)
{
    const sae_config *c = &p->cfg;
    int64_t n = c->n_latents, dim = c->dim, G = n / c->group_size;
    struct { const char *name; size_t off; int64_t shape[2]; int ndim; } t[] = {
        {"W_enc", 0, {dim, n}, 2}, {"b_enc", 0, {n, 0}, 1}, {"W_dec", 0, {n, dim}, 2}, {"b_dec", 0, {dim, 0}, 1},
        {"r_mag", 0, {n, 0}, 1},   {"b_mag", 0, {n, 0}, 1}, {"log_theta", 0, {G, 0}, 1},
    };
    size_t off = 0, nt = c->arch == SAE_GATED ? 6 : 7;
    int rc = 0;
    for (size_t i = 0; i < nt; i++) {
        if (c->arch == SAE_JUMPRELU && (i == 4 || i == 5))
            continue;
        char gname[64];
        snprintf(gname, sizeof gname, "grad_%s", t[i].name);
        rc |= write_npy(dir, t[i].name, p->buf + off, t[i].shape, t[i].ndim);
        rc |= write_npy(dir, gname, grad + off, t[i].shape, t[i].ndim);
        off += (size_t)t[i].shape[0] * (t[i].ndim == 2 ? (size_t)t[i].shape[1] : 1);
    }
    return rc || off != p->n_params ? -1 : 0;
}

static int write_config(const char *dir, const ref_case *rc)
{
    char path[512];
    snprintf(path, sizeof path, "%.400s/config.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "arch %d\ngroup_size %d\ncoef %.9g\north_coef %.9g\nbandwidth %.9g\n", (int)rc->arch, rc->s,
            rc->coef, rc->orth, rc->bandwidth);
    return fclose(f) == 0 ? 0 : -1;
}

/* Draws the case's SAE and batch (redrawing near kinks), computes, writes dir. Returns 0 or -1. */
static int write_case(const ref_case *rc, int index, const char *dir)
{
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
        fill_normal(&r, p.buf, p.n_params, 0.5f);
        fill_normal(&r, x, (size_t)rc->B * rc->dim, 1.0f);
        loss = (float)sae_loss_grad(&p, x, rc->B, rc->coef, &w, grad, NULL);
        found = away_from_kinks(&p, &w, rc->B, 1e-3f);
    }
    int64_t s_x[2] = {rc->B, rc->dim}, s_z[2] = {rc->B, rc->n};
    int rcode = (found ? 0 : -1) | write_params(dir, &p, grad) | write_npy(dir, "x", x, s_x, 2) |
                write_npy(dir, "loss", &loss, NULL, 0) | write_npy(dir, "z", w.z, s_z, 2) |
                write_npy(dir, "x_hat", w.x_hat, s_x, 2) | write_config(dir, rc);
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

/* tests/ref_torch_gj.py beside this source file. */
static void script_path(char *out, size_t cap)
{
    const char *src = __FILE__, *slash = strrchr(src, '/');
    int dirlen = slash ? (int)(slash - src) + 1 : 0;
    snprintf(out, cap, "%.*sref_torch_gj.py", dirlen, src);
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
    char tmpl[] = "/tmp/saed_test_ref_gj_XXXXXX";
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
