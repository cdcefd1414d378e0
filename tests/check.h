/* check — the unit-test harness: CHECK() counts, never aborts, and the
 * binary ends with "N passed, N failed" and a non-zero exit on failure. */
#ifndef SAED_CHECK_H
#define SAED_CHECK_H
#include <stdio.h>
#include <math.h>

static int check_passed, check_failed;

#define CHECK(cond, ...) do {                                              \
    if (cond) { check_passed++; }                                         \
    else { check_failed++; fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
           fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); }           \
} while (0)

#define CHECK_NEAR(a, b, tol, what) do {                                   \
    double ca_ = (a), cb_ = (b);                                          \
    CHECK(fabs(ca_ - cb_) <= (tol), "%s: %g vs %g (tol %g)", (what), ca_, cb_, (double)(tol)); \
} while (0)

static inline int check_report(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
