/* circles — the synthetic circles benchmark.
 *
 * Planes: circle i's a_i and b_i are standard normal vectors normalised to
 * unit length, drawn in order (a_0, b_0, a_1, ...) from the stream
 * rng_seed(seed, CIRCLES_PLANE_STREAM).
 *
 * Rows: row r draws from its own stream rng_seed(seed, r) (rows are
 * 0 .. 2^64-2; the last stream belongs to the planes). The active circles are
 * found by geometric skipping: the gap to the next active circle is
 * floor(log(u) / log(1 - p)) with u uniform in (0, 1], which makes every
 * circle active independently with probability p while costing one draw per
 * active circle. Each active circle then draws theta and r, in that order.
 * circles_rows() and circles_row_active() walk the same sequence of draws
 * (circles_walk), so the ground truth always matches the rows. */
#include "circles.h"
#include "rng.h"
#include "core_assert.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CIRCLES_PLANE_STREAM UINT64_MAX

struct circles {
    circles_params p;
    float *planes; /* (n_circles, 2, dim): [i,0] = a_i, [i,1] = b_i */
    double log_q;  /* log(1 - p_active); 0 when p_active is 0 or 1 */
};

/* The walk over one row's active circles. */
typedef struct {
    const circles *c;
    rng_t r;
    int64_t i; /* current circle, -1 before the first */
} circles_walk;

void circles_params_default(circles_params *p)
{
    assert(p);
    p->n_circles = 1600;
    p->dim = 200;
    p->p_active = 0.002;
    p->r_min = 1.0f;
    p->r_max = 1.0f;
    p->seed = 1;
}

static int circles_params_ok(const circles_params *p)
{
    assert(p);
    if (p->n_circles < 1 || p->dim < 1)
        return 0;
    if (!(p->p_active >= 0.0 && p->p_active <= 1.0)) /* also rejects NaN */
        return 0;
    if (!isfinite(p->r_min) || !isfinite(p->r_max) || p->r_min < 0 || p->r_max < p->r_min)
        return 0;
    return (size_t)p->n_circles * 2 <= SIZE_MAX / sizeof(float) / (size_t)p->dim;
}

/* Fills v (dim) with a random unit vector. */
static void circles_unit_vector(rng_t *r, float *v, int dim)
{
    double norm2;
    assert(r && v && dim >= 1); /* dim 0 would never leave the loop */
    do {
        norm2 = 0.0;
        for (int d = 0; d < dim; d++) {
            v[d] = rng_normal(r);
            norm2 += (double)v[d] * v[d];
        }
    } while (norm2 == 0.0);
    float inv = (float)(1.0 / sqrt(norm2));
    for (int d = 0; d < dim; d++)
        v[d] *= inv;
}

circles *circles_create(const circles_params *p)
{
    assert(p);
    if (!circles_params_ok(p))
        return NULL;
    circles *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->p = *p;
    c->planes = malloc((size_t)p->n_circles * 2 * (size_t)p->dim * sizeof(float));
    if (!c->planes) {
        free(c);
        return NULL;
    }
    rng_t r;
    rng_seed(&r, p->seed, CIRCLES_PLANE_STREAM);
    for (size_t v = 0; v < (size_t)p->n_circles * 2; v++)
        circles_unit_vector(&r, c->planes + v * (size_t)p->dim, p->dim);
    c->log_q = (p->p_active > 0.0 && p->p_active < 1.0) ? log1p(-p->p_active) : 0.0;
    return c;
}

void circles_free(circles *c)
{
    if (!c)
        return;
    free(c->planes);
    free(c);
}

const circles_params *circles_get_params(const circles *c)
{
    assert(c);
    return &c->p;
}

const float *circles_planes(const circles *c)
{
    assert(c && c->planes);
    return c->planes;
}

static void circles_walk_start(circles_walk *w, const circles *c, uint64_t row)
{
    assert(w && c && row != CIRCLES_PLANE_STREAM); /* that stream belongs to the planes */
    w->c = c;
    rng_seed(&w->r, c->p.seed, row);
    w->i = -1;
}

/* Advances to the next active circle: 1 and its id, or 0 when none is left. */
static int circles_walk_next(circles_walk *w, int *id)
{
    const circles_params *p = &w->c->p;
    if (p->p_active <= 0.0)
        return 0;
    int64_t gap = 0;
    if (p->p_active < 1.0) {
        double u = 1.0 - rng_uniform(&w->r); /* (0, 1] */
        double g = floor(log(u) / w->c->log_q);
        gap = g < (double)p->n_circles ? (int64_t)g : p->n_circles;
    }
    w->i += 1 + gap;
    if (w->i >= p->n_circles)
        return 0;
    *id = (int)w->i;
    return 1;
}

/* The active circle's angle and magnitude (always drawn, in this order). */
static void circles_walk_point(circles_walk *w, float *rc, float *rs)
{
    const circles_params *p = &w->c->p;
    double theta = 2.0 * M_PI * rng_uniform(&w->r);
    double mag = p->r_min + (double)(p->r_max - p->r_min) * rng_uniform(&w->r);
    *rc = (float)(mag * cos(theta));
    *rs = (float)(mag * sin(theta));
}

static void circles_row(const circles *c, uint64_t row, float *out)
{
    int dim = c->p.dim, id;
    memset(out, 0, (size_t)dim * sizeof(float));
    circles_walk w;
    circles_walk_start(&w, c, row);
    while (circles_walk_next(&w, &id)) {
        float rc, rs;
        circles_walk_point(&w, &rc, &rs);
        const float *a = c->planes + (size_t)id * 2 * dim; /* (dim) */
        const float *b = a + dim;                          /* (dim) */
        for (int d = 0; d < dim; d++)
            out[d] += rc * a[d] + rs * b[d];
    }
}

void circles_rows(const circles *c, const uint64_t *idx, int n, float *out)
{
    assert(c && n >= 0 && (n == 0 || (idx && out)));
    assert(core_disjoint(out, (size_t)n * (size_t)c->p.dim * sizeof *out, c->planes,
                         (size_t)c->p.n_circles * 2 * (size_t)c->p.dim * sizeof *c->planes));
    for (int k = 0; k < n; k++)
        circles_row(c, idx[k], out + (size_t)k * c->p.dim);
}

int circles_row_active(const circles *c, uint64_t row, int *ids, int cap)
{
    int n = 0, id;
    assert(c && cap >= 0 && (cap == 0 || ids));
    circles_walk w;
    circles_walk_start(&w, c, row);
    while (n < cap && circles_walk_next(&w, &id)) {
        float rc, rs;
        circles_walk_point(&w, &rc, &rs); /* keeps the draws in step with circles_row */
        ids[n++] = id;
    }
    return n;
}
