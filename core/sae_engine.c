/* sae_engine — the trainer's pass on the path the registry row chooses
 * (design: include/sae_engine.h). */
#include "sae_engine.h"
#include "sae_arch.h"
#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct sae_engine {
    sae_config c;    /* the configuration it was made for (shape and arch; the pass carries the rest) */
    int max_rows;
    sae_fast *fast;  /* the blocked sparse core, when the row has one; else NULL */
    sae_work w;      /* the dense pipeline's scratch for max_rows rows, when fast is NULL; else zeroed */
};

/* The blocked sparse core serves the row's arch for contiguous equal groups; a group table takes the
 * dense pipeline. */
static int sae_engine_is_fast(const sae_config *c) { return sae_arch_of(c)->fast && !c->groups; }

sae_engine *sae_engine_create(const sae_config *c, int max_rows, par_pool *pool)
{
    assert(c && max_rows >= 1);
    sae_engine *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->c = *c;
    e->max_rows = max_rows;
    int rc = sae_engine_is_fast(c) ? ((e->fast = sae_fast_create(c, max_rows, 0, pool)) ? 0 : -1)
                                  : sae_work_alloc(&e->w, c, max_rows);
    if (rc != 0) {
        sae_engine_free(e);
        return NULL;
    }
    e->w.pool = pool;
    return e;
}

void sae_engine_free(sae_engine *e)
{
    if (!e)
        return;
    sae_fast_free(e->fast);
    sae_work_free(&e->w);
    free(e);
}

size_t sae_engine_bytes(const sae_config *c, int max_rows, int threads)
{
    return sae_engine_is_fast(c) ? sae_fast_bytes(c, max_rows, threads) : sae_work_bytes(c, max_rows);
}

/* fired (n) |= [z != 0] over the dense scratch's B rows (codes may be signed). */
static void sae_engine_fired_from_z(const sae_engine *e, int B, unsigned char *fired)
{
    int n = e->c.n_latents;
    for (int b = 0; b < B; b++) {
        const float *z = e->w.z + (size_t)b * n; /* (n) */
        for (int i = 0; i < n; i++)
            fired[i] |= z[i] != 0.0f;
    }
}

double sae_engine_loss_grad(sae_engine *e, const sae_params *p, const float *x, int B, const sae_pass *pass,
                            float *grad, unsigned char *fired, sae_loss_terms *terms)
{
    assert(e && p && x && pass && B >= 1 && B <= e->max_rows);
    assert(p->cfg.arch == e->c.arch && p->cfg.dim == e->c.dim && p->cfg.n_latents == e->c.n_latents &&
           p->cfg.group_size == e->c.group_size);
    if (e->fast)
        return sae_fast_loss_grad(e->fast, p, x, B, pass, grad, fired, terms);
    double loss = sae_loss_grad_pass(p, x, B, pass, &e->w, grad, terms);
    if (fired)
        sae_engine_fired_from_z(e, B, fired);
    return loss;
}

void sae_engine_train_update(sae_engine *e, sae_params *p, int B)
{
    assert(e && p && B >= 1 && B <= e->max_rows);
    if (e->fast) { /* the fast core keeps no sae_work: its rows learn nothing without a gradient */
        assert(!sae_arch_of(&e->c)->train_update);
        return;
    }
    sae_train_update(p, &e->w, B);
}

void sae_engine_set_timing(sae_engine *e, int on)
{
    if (e->fast)
        sae_fast_set_timing(e->fast, on);
}

int sae_engine_fast_stats(const sae_engine *e, sae_fast_stats *out)
{
    if (!e->fast)
        return 0;
    *out = sae_fast_get_stats(e->fast);
    return 1;
}
