/* train_resample — dead latents re-initialised from badly reconstructed rows
 * (train.resample_every; for the archs whose registry row allows it: relu, subspace).
 *
 * After step t's update, if resample_every > 0, t % resample_every == 0 and
 * t <= steps / 2 (t counting completed steps), every latent dead at that point
 * (none fired in the last dead_window steps) is re-initialised, in index order:
 *   - a row b of the step's batch is drawn with probability proportional to
 *     ||x_b - x_hat_b||^2 (x_hat by sae_encode, the trained inference rule);
 *   - d_i = r / ||r||, r = x_b - x_hat_b: the direction nothing explains yet;
 *   - W_enc[:, i] = 0.2 * (mean norm of the live latents' encoder columns) * d_i,
 *     b_enc[i] = 0, and the Adam moments of those parameters are zeroed;
 *   - last_fired[i] = t, so it has a whole dead_window to start firing.
 * This is the resampling of Anthropic's "Towards Monosemanticity" (2023) with
 * the residual in place of the input. Latents are resampled one by one, so a
 * dead member of a live group is resampled too; an arch with its own decoder
 * constraint (subspace's orthonormal groups) then gets it back on every
 * group it touched. Everything it reads is in the
 * checkpoint or a function of the step (the batch; the draws come from
 * rng(seed, step)), so a resumed run resamples exactly as an uninterrupted one. */
#include "train_state.h"
#include "analysis.h"
#include "sae_arch.h"
#include "sae_groups.h"
#include "sae_stage.h"
#include "rng.h"
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TRAIN_RESAMPLE_STREAM UINT64_C(0x5245534d504c) /* "RESMPL" */
#define TRAIN_RESAMPLE_CHUNK 256                        /* rows encoded at once */
#define TRAIN_RESAMPLE_ENC_SCALE 0.2f

int train_resample_due(const train_state *st)
{
    assert(st && st->tc.resample_every >= 0 && st->tc.dead_window >= 1);
    int every = st->tc.resample_every, t = st->step;
    return every > 0 && t % every == 0 && t <= st->tc.steps / 2 && t >= st->tc.dead_window;
}

/* Adds to use (G) each group's code norm ||z_g|| over the rows z (m, n). */
static void train_resample_use(const sae_config *c, const float *z, int m, double *use)
{
    float tmp[SAE_GROUPS_MAX_SIZE];
    int n = c->n_latents;
    for (int b = 0; b < m; b++)
        for (int g = 0; g < sae_n_groups(c); g++) {
            const float *zg = z + (size_t)b * n + (size_t)g * c->group_size; /* (s) */
            if (c->groups) {
                sae_groups_gather(c->groups, g, z + (size_t)b * n, tmp);
                zg = tmp;
            }
            use[g] += sae_stage_norm(zg, sae_group_len(c, g));
        }
}

/* res (B, dim) = x_b - x_hat_b and err (B) = ||res_b||^2 for the step's batch, and use (G) = the sum of
 * each group's code norm over it; 0, or -1 when out of memory. */
static int train_resample_residuals(train_state *st, int B, float *res, double *err, double *use)
{
    int n = st->sc.n_latents, dim = st->sc.dim, chunk = B < TRAIN_RESAMPLE_CHUNK ? B : TRAIN_RESAMPLE_CHUNK;
    assert(st->x && res && err && 1 <= B && B <= st->tc.batch_size); /* st->x holds the step's batch */
    float *z = malloc((size_t)chunk * n * sizeof(float));      /* (chunk, n) */
    float *xh = malloc((size_t)chunk * dim * sizeof(float));   /* (chunk, dim) */
    int rc = z && xh ? 0 : -1;
    for (int b0 = 0; rc == 0 && b0 < B; b0 += chunk) {
        int m = B - b0 < chunk ? B - b0 : chunk;
        const float *x = st->x + (size_t)b0 * dim; /* (m, dim) */
        rc = sae_encode(&st->p, st->pool, x, m, z, xh);
        if (rc == 0)
            train_resample_use(&st->sc, z, m, use);
        for (int b = 0; rc == 0 && b < m; b++) {
            float *r = res + (size_t)(b0 + b) * dim; /* (dim) */
            double e2 = 0.0;
            for (int d = 0; d < dim; d++) {
                r[d] = x[(size_t)b * dim + d] - xh[(size_t)b * dim + d];
                e2 += (double)r[d] * r[d];
            }
            err[b0 + b] = e2;
        }
    }
    free(z);
    free(xh);
    return rc;
}

/* Mean norm of the live latents' encoder columns (1 if none is live). */
static float train_resample_enc_norm(const train_state *st, const unsigned char *dead)
{
    assert(dead && train_state_ok(st));
    int n = st->sc.n_latents, dim = st->sc.dim, live = 0;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        if (dead[i])
            continue;
        double s2 = 0.0;
        for (int d = 0; d < dim; d++)
            s2 += (double)st->p.v.W_enc[(size_t)d * n + i] * st->p.v.W_enc[(size_t)d * n + i];
        sum += sqrt(s2);
        live++;
    }
    return live ? (float)(sum / live) : 1.0f;
}

/* A row drawn with probability err[b] / total (total > 0). */
static int train_resample_draw(rng_t *r, const double *err, int B, double total)
{
    assert(r && err && B >= 1 && total > 0.0); /* total may be +inf: residuals of a diverging run */
    double u = rng_uniform(r) * total, acc = 0.0;
    for (int b = 0; b < B; b++) {
        acc += err[b];
        if (u < acc)
            return b;
    }
    return B - 1;
}

/* Latent i from the residual r (dim); the Adam moments of its parameters zeroed. */
static void train_resample_latent(train_state *st, int i, const float *r, float enc_scale)
{
    int n = st->sc.n_latents, dim = st->sc.dim;
    assert(r && 0 <= i && i < n && st->step >= 1);
    float *d_i = st->p.v.W_dec + (size_t)i * dim; /* (dim) */
    double norm2 = 0.0;
    for (int d = 0; d < dim; d++) {
        d_i[d] = r[d];
        norm2 += (double)d_i[d] * d_i[d];
    }
    float inv = norm2 > 0.0 ? (float)(1.0 / sqrt(norm2)) : 0.0f;
    size_t off_enc = (size_t)(st->p.v.W_enc - st->p.buf), off_dec = (size_t)(d_i - st->p.buf);
    size_t off_b = (size_t)(st->p.v.b_enc - st->p.buf) + (size_t)i;
    for (int d = 0; d < dim; d++) {
        d_i[d] *= inv;
        size_t k = off_enc + (size_t)d * n + (size_t)i;
        st->p.buf[k] = enc_scale * d_i[d];
        st->m[k] = st->v[k] = 0.0f;
        st->m[off_dec + (size_t)d] = st->v[off_dec + (size_t)d] = 0.0f;
    }
    st->p.v.b_enc[i] = 0.0f;
    st->m[off_b] = st->v[off_b] = 0.0f;
    st->last_fired[i] = st->step;
}

/* The arch's decoder constraint (subspace: orthonormal groups) on every group with a resampled
 * member, whose new rows are residual directions; nothing for archs with unit rows (already so). */
static void train_resample_constrain(train_state *st, const unsigned char *dead)
{
    void (*constrain)(sae_params *, int, int) = sae_arch_of(&st->sc)->constrain_decoder;
    int s = st->sc.group_size;
    if (constrain && st->sc.groups) { /* a table: every group (the constraint leaves intact ones as they are) */
        constrain(&st->p, 0, st->sc.n_latents);
        return;
    }
    for (int g0 = 0; constrain && g0 < st->sc.n_latents; g0 += s) {
        int touched = 0;
        for (int k = 0; k < s; k++)
            touched |= dead[g0 + k];
        if (touched)
            constrain(&st->p, g0, g0 + s);
    }
}

/* Duplicate groups (train.dup_cos > 0): among the groups with a live member, each pair whose spans'
 * largest principal-angle cosine is above dup_cos (analysis_subspace_duplicates) has its less used
 * group (use (G), ties: the later) marked dead in dead (n), unless one of the two already is; returns
 * the latents so marked, or -1 when out of memory. */
static int train_resample_duplicates(const train_state *st, unsigned char *dead, const double *use)
{
    int n = st->sc.n_latents, s = st->sc.group_size, G = n / s, m = 0, marked = 0;
    assert(dead && use && st->tc.dup_cos > 0.0f && s <= ANALYSIS_DUP_MAX_S);
    int32_t *ids = malloc((size_t)G * sizeof(int32_t)); /* (m <= G) the groups with a live member */
    int64_t cap = (int64_t)G, n_pairs = 0;
    int32_t *pairs = malloc((size_t)cap * 2 * sizeof(int32_t)); /* (cap, 2) */
    int rc = ids && pairs ? 0 : -1;
    for (int g = 0; rc == 0 && g < G; g++) {
        int live = 0;
        for (int k = 0; k < s; k++)
            live |= !dead[g * s + k];
        if (live)
            ids[m++] = g;
    }
    if (rc == 0 && analysis_subspace_duplicates(st->p.v.W_dec, st->sc.dim, s, ids, m, st->tc.dup_cos, pairs, cap,
                                                &n_pairs) != ANALYSIS_OK)
        rc = -1;
    for (int64_t q = 0; rc == 0 && q < (n_pairs < cap ? n_pairs : cap); q++) {
        int g = pairs[2 * q], h = pairs[2 * q + 1];
        if (dead[g * s] || dead[h * s]) /* one of them is revived already (or was dead) */
            continue;
        int loser = use[g] < use[h] ? g : h;
        for (int k = 0; k < s; k++)
            dead[loser * s + k] = 1;
        marked += s;
    }
    free(ids);
    free(pairs);
    return rc == 0 ? marked : -1;
}

int train_resample(train_state *st)
{
    assert(st && train_state_ok(st) && st->x && st->tc.batch_size >= 1);
    assert(train_resample_due(st)); /* train_state.h: called when the step just completed resamples */
    int n = st->sc.n_latents, B = st->tc.batch_size, dim = st->sc.dim, W = st->tc.dead_window, count = 0;
    int G = sae_n_groups(&st->sc);
    unsigned char *dead = malloc((size_t)n); /* (n) */
    float *res = malloc((size_t)B * dim * sizeof(float)); /* (B, dim) */
    double *err = malloc((size_t)B * sizeof(double));     /* (B) */
    double *use = calloc((size_t)G, sizeof(double));      /* (G) */
    int rc = dead && res && err && use ? 0 : -1;
    for (int i = 0; rc == 0 && i < n; i++)
        count += dead[i] = st->last_fired[i] <= st->step - W;
    if (rc == 0 && (count > 0 || st->tc.dup_cos > 0.0f))
        rc = train_resample_residuals(st, B, res, err, use);
    if (rc == 0 && st->tc.dup_cos > 0.0f) {
        int dups = train_resample_duplicates(st, dead, use);
        rc = dups < 0 ? -1 : 0;
        count += dups > 0 ? dups : 0;
    }
    double total = 0.0;
    for (int b = 0; rc == 0 && count > 0 && b < B; b++)
        total += err[b];
    if (rc == 0 && count > 0 && total > 0.0) {
        float enc_scale = TRAIN_RESAMPLE_ENC_SCALE * train_resample_enc_norm(st, dead);
        rng_t r;
        rng_seed(&r, st->tc.seed ^ TRAIN_RESAMPLE_STREAM, (uint64_t)st->step);
        for (int i = 0; i < n; i++)
            if (dead[i])
                train_resample_latent(st, i, res + (size_t)train_resample_draw(&r, err, B, total) * dim, enc_scale);
        train_resample_constrain(st, dead);
    }
    free(dead);
    free(res);
    free(err);
    free(use);
    return rc == 0 ? (total > 0.0 ? count : 0) : -1;
}
