/* rng — small, fast, reproducible random numbers (xoshiro256** seeded by
 * splitmix64). A generator is a value: copy it to fork a stream, store its
 * four words in a checkpoint to resume it bit for bit. rng_seed() derives
 * independent streams from (seed, stream), which is how the circles dataset
 * makes each row a pure function of (seed, row index). */
#ifndef SAED_RNG_H
#define SAED_RNG_H
#include <stdint.h>

typedef struct { uint64_t s[4]; } rng_t;

void rng_seed(rng_t *r, uint64_t seed, uint64_t stream);
uint64_t rng_next(rng_t *r);
double rng_uniform(rng_t *r);         /* [0, 1) with 53 random bits */
float rng_normal(rng_t *r);           /* standard normal (Box-Muller) */
uint64_t rng_below(rng_t *r, uint64_t n); /* uniform in [0, n), n > 0 */

#endif
