/* reftest — the C side of the PyTorch reference checks (tests/test_ref*.c).
 *
 * reftest_run() makes a mkdtemp root with one directory per case, lets the
 * test write each case into its directory (float32 .npy files through
 * reftest_write_npy, config.txt through reftest_write_text), runs
 * `/usr/bin/python3 tests/SCRIPT DIR...` once over all cases, echoes its
 * output, reads each "case DIR: PASS|FAIL" verdict and removes the files.
 * check.h's counters belong to each test binary, so every outcome (script
 * found, torch importable, root made, each case written, the script started,
 * each verdict, the exit status) goes to the test's own check callback. */
#ifndef SAED_TESTS_REFTEST_H
#define SAED_TESTS_REFTEST_H
#include "sae.h"
#include <stddef.h>
#include <stdint.h>

#define REFTEST_PYTHON "/usr/bin/python3"

typedef struct {
    const char *script;   /* the reference beside tests/reftest.c, e.g. "ref_torch.py" */
    const char *tmp_name; /* the root's name under /tmp, e.g. "saed_test_ref" */
    const void *cases;    /* n_cases structs of case_size bytes, each beginning with its const char *name */
    size_t case_size;
    int n_cases;
    int (*write_case)(int index, const char *dir); /* writes case index into dir; 0 or -1 */
    void (*check)(int ok, const char *what);      /* the test's CHECK(ok, "%s", what) */
} reftest_suite;

/* Writes, runs and checks the whole suite as above. */
void reftest_run(const reftest_suite *s);

/* DIR/NAME.npy: float32 data of shape (ndim 0: a scalar). 0 or -1. */
int reftest_write_npy(const char *dir, const char *name, const float *data, const int64_t *shape, int ndim);

/* Every parameter tensor of p's arch as NAME.npy, and its gradient (grad, n_params) as grad_NAME.npy:
 * W_enc (dim, n), b_enc (n), W_dec (n, dim), b_dec (dim) and the extras (gated: r_mag (n), b_mag (n);
 * jumprelu: log_theta (n/s); batchtopk: threshold (1)). 0 or -1. */
int reftest_write_params(const char *dir, const sae_params *p, const float *grad);

/* One loss pass's tensors: the parameters and their gradient (reftest_write_params), x (B, dim),
 * loss (a scalar), and w's z (B, n) and x_hat (B, dim). 0 or -1. */
int reftest_write_pass(const char *dir, const sae_params *p, const float *grad, const float *x, int B,
                       const sae_work *w, float loss);

/* DIR/NAME with printf-formatted text. 0 or -1. */
int reftest_write_text(const char *dir, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 1 if every dot product of two decoder rows in one group is at least margin from 0 (the orth kink). */
int reftest_orth_clear(const sae_params *p, double margin);

#endif
