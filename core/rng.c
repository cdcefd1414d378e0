/* rng — xoshiro256** seeded by splitmix64.
 *
 * rng_seed() turns (seed, stream) into the four state words by running
 * splitmix64 from a starting value that mixes both, so neighbouring seeds or
 * streams give unrelated generators. xoshiro256** (Blackman & Vigna) then
 * produces the numbers. Everything here is a pure function of the state. */
#include "rng.h"
#include <assert.h>
#include <math.h>

static uint64_t rng_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void rng_seed(rng_t *r, uint64_t seed, uint64_t stream)
{
    assert(r);
    uint64_t a = seed, b = stream ^ UINT64_C(0x5851f42d4c957f2d);
    /* One splitmix64 output of each input, combined asymmetrically, is the
     * start of the splitmix64 sequence that fills the state. */
    uint64_t x = rng_splitmix64(&a) ^ rng_rotl(rng_splitmix64(&b), 17);
    for (int i = 0; i < 4; i++)
        r->s[i] = rng_splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1; /* the all-zero state is the one xoshiro cannot leave */
    assert(r->s[0] | r->s[1] | r->s[2] | r->s[3]);
}

uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rng_rotl(s[3], 45);
    return result;
}

double rng_uniform(rng_t *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

float rng_normal(rng_t *r)
{
    /* Box-Muller, one value per call (the generator is a plain value, so it
     * keeps no spare). u1 is in (0, 1] so the log is finite. */
    double u1 = 1.0 - rng_uniform(r);
    double u2 = rng_uniform(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

/* rng_next, rng_uniform and rng_normal run once per number drawn, so they carry no asserts;
 * rng_below does a 64-bit division anyway, and n = 0 would divide by zero. */
uint64_t rng_below(rng_t *r, uint64_t n)
{
    assert(r && n > 0);
    /* Rejection of the short top range keeps the result exactly uniform. */
    uint64_t limit = -n % n; /* 2^64 mod n */
    for (;;) {
        uint64_t x = rng_next(r);
        if (x >= limit)
            return x % n;
    }
}
