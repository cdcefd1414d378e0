/* reftest — case directories, .npy writers and one run of a PyTorch
 * reference script for the test_ref* suites (see reftest.h). */
#include "reftest.h"
#include "sae_groups.h"
#include "npy.h"
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_CAP 400

int reftest_write_npy(const char *dir, const char *name, const float *data, const int64_t *shape, int ndim)
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

typedef struct {
    const char *name;
    int64_t shape[2];
    int ndim;
} tensor_spec;

int reftest_write_params(const char *dir, const sae_params *p, const float *grad)
{
    const sae_config *c = &p->cfg;
    int64_t n = c->n_latents, dim = c->dim, G = sae_n_groups(c);
    tensor_spec t[6] = {
        {"W_enc", {dim, n}, 2}, {"b_enc", {n, 0}, 1}, {"W_dec", {n, dim}, 2}, {"b_dec", {dim, 0}, 1},
    };
    size_t nt = 4, off = 0;
    if (c->arch == SAE_GATED) {
        t[nt++] = (tensor_spec){"r_mag", {n, 0}, 1};
        t[nt++] = (tensor_spec){"b_mag", {n, 0}, 1};
    } else if (c->arch == SAE_JUMPRELU) {
        t[nt++] = (tensor_spec){"log_theta", {G, 0}, 1};
    } else if (c->arch == SAE_BATCHTOPK) {
        t[nt++] = (tensor_spec){"threshold", {1, 0}, 1};
    }
    int rc = 0;
    for (size_t i = 0; i < nt; i++) {
        char gname[64];
        snprintf(gname, sizeof gname, "grad_%s", t[i].name);
        rc |= reftest_write_npy(dir, t[i].name, p->buf + off, t[i].shape, t[i].ndim);
        rc |= reftest_write_npy(dir, gname, grad + off, t[i].shape, t[i].ndim);
        off += (size_t)t[i].shape[0] * (t[i].ndim == 2 ? (size_t)t[i].shape[1] : 1);
    }
    return rc || off != p->n_params ? -1 : 0;
}

int reftest_write_text(const char *dir, const char *name, const char *fmt, ...)
{
    char path[512];
    snprintf(path, sizeof path, "%.400s/%.60s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int ok = vfprintf(f, fmt, ap) >= 0;
    va_end(ap);
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

int reftest_orth_clear(const sae_params *p, double margin)
{
    const sae_config *c = &p->cfg;
    int dim = c->dim;
    for (int g = 0; g < sae_n_groups(c); g++)
        for (int a = 0; a < sae_group_len(c, g); a++)
            for (int b = a + 1; b < sae_group_len(c, g); b++) {
                int i = sae_group_member(c, g, a), j = sae_group_member(c, g, b);
                double dot = 0.0;
                for (int d = 0; d < dim; d++)
                    dot += (double)p->v.W_dec[(size_t)i * dim + d] * p->v.W_dec[(size_t)j * dim + d];
                if (fabs(dot) < margin)
                    return 0;
            }
    return 1;
}

static void report(const reftest_suite *s, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(const reftest_suite *s, int ok, const char *fmt, ...)
{
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    s->check(ok, what);
}

static const char *case_name(const reftest_suite *s, int i)
{
    return *(const char *const *)((const char *)s->cases + (size_t)i * s->case_size);
}

/* Every file in dir (the case's own), then dir. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[DIR_CAP + 300];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%.255s", dir, e->d_name);
            unlink(path);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* The verdict a line of the script's output gives case dir: 1 PASS, -1 FAIL, 0 none. */
static int verdict_in(const char *line, const char *dir)
{
    char want[DIR_CAP + 16];
    snprintf(want, sizeof want, "case %s: ", dir);
    if (strncmp(line, want, strlen(want)) != 0)
        return 0;
    return strncmp(line + strlen(want), "PASS", 4) == 0 ? 1 : -1;
}

/* Runs the script over all case dirs (n), echoing its output, and reports each case's verdict. */
static void run_script(const reftest_suite *s, const char *script, char (*dirs)[DIR_CAP])
{
    size_t cap = strlen(script) + 64 + (size_t)s->n_cases * (DIR_CAP + 1);
    char *cmd = malloc(cap);
    int *verdict = calloc((size_t)s->n_cases, sizeof(int)); /* (n_cases) 1 pass, -1 fail, 0 missing */
    int len = snprintf(cmd, cap, "%s %s", REFTEST_PYTHON, script);
    for (int i = 0; i < s->n_cases; i++)
        len += snprintf(cmd + len, cap - (size_t)len, " %s", dirs[i]);
    snprintf(cmd + len, cap - (size_t)len, " 2>&1");
    FILE *p = popen(cmd, "r");
    report(s, p != NULL, "could not start %s", REFTEST_PYTHON);
    char line[1024];
    while (p && fgets(line, sizeof line, p)) {
        fputs(line, stdout);
        for (int i = 0; i < s->n_cases; i++)
            verdict[i] = verdict[i] ? verdict[i] : verdict_in(line, dirs[i]);
    }
    if (p) {
        int status = pclose(p);
        for (int i = 0; i < s->n_cases; i++)
            report(s, verdict[i] == 1, "case %s: %s against the PyTorch reference", case_name(s, i),
                   verdict[i] == 0 ? "no verdict" : verdict[i] > 0 ? "passed" : "FAILED");
        report(s, status == 0, "%s exited with status %d", script, status);
    }
    free(cmd);
    free(verdict);
}

void reftest_run(const reftest_suite *s)
{
    char script[512];
    const char *src = __FILE__, *slash = strrchr(src, '/'); /* the script sits beside this file */
    snprintf(script, sizeof script, "%.*s%s", slash ? (int)(slash - src) + 1 : 0, src, s->script);
    report(s, access(script, R_OK) == 0, "reference script %s not found (run from the repository root)", script);
    int has_torch = system(REFTEST_PYTHON " -c 'import torch, numpy' >/dev/null 2>&1") == 0;
    report(s, has_torch, REFTEST_PYTHON " cannot import torch and numpy: install Debian's python3-torch and "
           "python3-numpy (scripts/deps.sh does)");
    char root[128];
    snprintf(root, sizeof root, "/tmp/%.60s_XXXXXX", s->tmp_name);
    int made = mkdtemp(root) != NULL;
    report(s, made, "mkdtemp %s failed", root);
    if (!made || !has_torch)
        return;
    char(*dirs)[DIR_CAP] = calloc((size_t)s->n_cases, DIR_CAP); /* (n_cases) case directories */
    for (int i = 0; i < s->n_cases; i++) {
        snprintf(dirs[i], DIR_CAP, "%.120s/%.200s", root, case_name(s, i));
        report(s, mkdir(dirs[i], 0700) == 0 && s->write_case(i, dirs[i]) == 0,
               "writing case %s (drawn away from kinks)", case_name(s, i));
    }
    run_script(s, script, dirs);
    for (int i = 0; i < s->n_cases; i++)
        remove_dir(dirs[i]);
    rmdir(root);
    free(dirs);
}

int reftest_write_pass(const char *dir, const sae_params *p, const float *grad, const float *x, int B,
                       const sae_work *w, float loss)
{
    int64_t s_x[2] = {B, p->cfg.dim}, s_z[2] = {B, p->cfg.n_latents};
    return reftest_write_params(dir, p, grad) | reftest_write_npy(dir, "x", x, s_x, 2) |
           reftest_write_npy(dir, "loss", &loss, NULL, 0) | reftest_write_npy(dir, "z", w->z, s_z, 2) |
           reftest_write_npy(dir, "x_hat", w->x_hat, s_x, 2);
}
