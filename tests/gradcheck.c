/* gradcheck — random SAEs and the central finite-difference checker for the
 * core's gradient tests (see gradcheck.h). */
#include "gradcheck.h"
#include "sae_groups.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void gradcheck_fill_normal(rng_t *r, float *a, size_t n, float scale)
{
    for (size_t k = 0; k < n; k++)
        a[k] = scale * rng_normal(r);
}

void gradcheck_random_base(rng_t *r, sae_params *p, float *x, int B, float xs)
{
    const sae_config *c = &p->cfg;
    size_t n = c->n_latents, d = c->dim;
    gradcheck_fill_normal(r, p->v.W_enc, d * n, 0.6f);
    gradcheck_fill_normal(r, p->v.b_enc, n, 0.2f);
    gradcheck_fill_normal(r, p->v.W_dec, n * d, 0.5f);
    gradcheck_fill_normal(r, p->v.b_dec, d, 0.2f);
    gradcheck_fill_normal(r, x, (size_t)B * d, xs);
}

void gradcheck_random_sae(sae_params *p, float *x, int B, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed, 0);
    gradcheck_random_base(&r, p, x, B, 1.0f);
}

size_t gradcheck_orth_signs(const sae_params *p, int all_pairs, unsigned char *pat)
{
    const sae_config *c = &p->cfg;
    size_t k = 0;
    for (int g = 0; g < sae_n_groups(c); g++)
        for (int a = 0; a < sae_group_len(c, g); a++)
            for (int b = all_pairs ? 0 : a + 1; b < sae_group_len(c, g); b++) {
                int i = sae_group_member(c, g, a), j = sae_group_member(c, g, b);
                float dot = 0.0f;
                for (int d = 0; d < c->dim; d++)
                    dot += p->v.W_dec[(size_t)i * c->dim + d] * p->v.W_dec[(size_t)j * c->dim + d];
                pat[k++] = dot > 0.0f;
            }
    return k;
}

/* The central difference of parameter k into *fd; 1 if a kink lies between the two points. */
static int central(const gradcheck_job *job, size_t k, unsigned char *pat, double *fd)
{
    const float h = 1e-2f;
    float saved = job->buf[k];
    job->buf[k] = saved + h;
    double lp = job->loss(job->ctx, pat);
    int kink = memcmp(pat, job->pat0, job->plen) != 0;
    job->buf[k] = saved - h;
    double lm = job->loss(job->ctx, pat);
    kink |= memcmp(pat, job->pat0, job->plen) != 0;
    job->buf[k] = saved;
    *fd = (lp - lm) / (2.0 * h);
    return kink;
}

void gradcheck_range(const gradcheck_job *job, size_t k0, size_t k1, gradcheck_stats *st)
{
    unsigned char *pat = calloc(job->plen ? job->plen : 1, 1); /* (plen) zeroed: a loss may leave a tail unset */
    for (size_t k = k0; k < k1; k++) {
        double fd;
        if (central(job, k, pat, &fd)) {
            st->skipped++;
            continue;
        }
        double g = job->grad[k], err = fabs(fd - g), tol = 1e-2 * fmax(fabs(fd), fabs(g)) + 1e-3;
        st->worst_ratio = fmax(st->worst_ratio, err / tol);
        st->worst_abs = fmax(st->worst_abs, err);
        st->worst_rel = fmax(st->worst_rel, err / fmax(fmax(fabs(fd), fabs(g)), 1e-2));
        if (fabs(fd) > 1e-2)
            st->worst_rel_fd = fmax(st->worst_rel_fd, err / fabs(fd));
        st->checked++;
        if (err > tol && st->bad++ < 5)
            fprintf(stderr, "  %s: param %zu: analytic %.6g, finite difference %.6g\n", job->name, k, g, fd);
    }
    free(pat);
}

sae_groups *gradcheck_groups(const char *spec, int n)
{
    int sizes[64], members[256], G = 0, m = 0;
    char msg[200];
    const char *q = spec;
    sizes[0] = 0;
    while (*q && G < 64 && m < 256) {
        char *end;
        members[m++] = (int)strtol(q, &end, 10);
        sizes[G]++;
        q = end;
        if (*q == '|' || !*q) {
            G++;
            if (G < 64)
                sizes[G] = 0;
        }
        if (*q)
            q++;
    }
    sae_groups *t = sae_groups_create(n, G, sizes, members, msg, sizeof msg);
    if (!t)
        fprintf(stderr, "gradcheck_groups(\"%s\"): %s\n", spec, msg);
    return t;
}
