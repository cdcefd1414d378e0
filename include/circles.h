/* circles — the seed's synthetic benchmark: n_circles random ellipses in dim
 * dimensions, in superposition, with ground truth.
 *
 * Circle i has two random unit vectors a_i, b_i (not orthogonalised). A row:
 * each circle is active independently with probability p_active; an active
 * circle draws theta ~ U[0, 2pi) and r ~ U[r_min, r_max]; the row is the sum
 * of r (a_i cos theta + b_i sin theta). Every row is a pure function of
 * (seed, row index): the generator seeds a private stream per row, so any
 * row can be regenerated, rows can be made in any order or in parallel, and
 * the stream never ends. Active circles are drawn by geometric skipping, so
 * a row costs O(active circles * dim), not O(n_circles). */
#ifndef SAED_CIRCLES_H
#define SAED_CIRCLES_H
#include <stdint.h>

typedef struct {
    int n_circles;      /* default 1600 */
    int dim;            /* default 200 */
    double p_active;    /* default 0.002 */
    float r_min, r_max; /* default 1, 1 */
    uint64_t seed;      /* default 1 */
} circles_params;

typedef struct circles circles;

void circles_params_default(circles_params *p);
/* Returns NULL on allocation failure or invalid params. */
circles *circles_create(const circles_params *p);
void circles_free(circles *c);
const circles_params *circles_get_params(const circles *c);
const float *circles_planes(const circles *c); /* (n_circles, 2, dim): [i,0]=a_i, [i,1]=b_i */

/* Fills out (n, dim) with rows idx[0..n), n >= 0. Row indices are 0 .. 2^64 - 2 (the
 * last stream draws the planes). */
void circles_rows(const circles *c, const uint64_t *idx, int n, float *out);
/* Which circles are active in row `row`: writes up to cap circle ids to ids,
 * in increasing order, and returns how many it wrote (ground truth for
 * analyses; cap = n_circles always holds them all). */
int circles_row_active(const circles *c, uint64_t row, int *ids, int cap);

#endif
