/* train_ckpt — checkpoints as self-describing, checksummed blobs.
 *
 * Layout (all little-endian):
 *   "SAEDCKPT"            8 bytes magic
 *   u32 version           TRAIN_CKPT_VERSION
 *   u32 n_fields          then n_fields u64 values: the configuration
 *                         (train_ckpt_fields: ints as two's complement,
 *                         floats as their bits) and the dataset's row count
 *   u64 step              steps completed
 *   u64 n_params
 *   f32 input_scale, u32 0  the scale of normalize_input (1 when off)
 *   f32 params[n_params], adam_m[n_params], adam_v[n_params]
 *   i32 last_fired[n_latents]
 *   u64 FNV-1a 64 of every byte before it
 * Restoring checks every field against the trainer's configuration by name,
 * so a mismatch says which field differs. */
#include "train_state.h"
#include "sae_groups.h"
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define TRAIN_CKPT_VERSION 2u /* 2: train.normalize_input and the input scale */
#define TRAIN_CKPT_MAX_FIELDS 32
static const char train_ckpt_magic[8] = {'S', 'A', 'E', 'D', 'C', 'K', 'P', 'T'};

typedef struct {
    const char *name;
    uint64_t bits;
} train_ckpt_field;

static uint64_t ck_f32bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static uint64_t ck_int(int64_t v) { return (uint64_t)v; }

/* The values a checkpoint must agree on; returns how many. */
static int train_ckpt_fields(const train_state *st, train_ckpt_field *f)
{
    const sae_config *c = &st->sc;
    const train_config *t = &st->tc;
    int k = 0;
    assert(st && f);
    f[k++] = (train_ckpt_field){"sae.arch", ck_int(c->arch)};
    f[k++] = (train_ckpt_field){"sae.dim", ck_int(c->dim)};
    f[k++] = (train_ckpt_field){"sae.n_latents", ck_int(c->n_latents)};
    f[k++] = (train_ckpt_field){"sae.group_size", ck_int(c->group_size)};
    if (c->groups) /* only with a table, so checkpoints written before tables existed still restore */
        f[k++] = (train_ckpt_field){"sae.groups", sae_groups_hash(c->groups)};
    f[k++] = (train_ckpt_field){"sae.sparsity_coef", ck_f32bits(c->sparsity_coef)};
    f[k++] = (train_ckpt_field){"sae.orth_coef", ck_f32bits(c->orth_coef)};
    f[k++] = (train_ckpt_field){"sae.threshold", ck_f32bits(c->threshold)};
    f[k++] = (train_ckpt_field){"sae.k", ck_int(c->k)};
    f[k++] = (train_ckpt_field){"sae.bandwidth", ck_f32bits(c->bandwidth)};
    f[k++] = (train_ckpt_field){"sae.aux_k_coef", ck_f32bits(c->aux_k_coef)};
    f[k++] = (train_ckpt_field){"sae.aux_k", ck_int(c->aux_k)};
    f[k++] = (train_ckpt_field){"train.steps", ck_int(t->steps)};
    f[k++] = (train_ckpt_field){"train.batch_size", ck_int(t->batch_size)};
    f[k++] = (train_ckpt_field){"train.lr", ck_f32bits(t->lr)};
    f[k++] = (train_ckpt_field){"train.lr_warmup_steps", ck_int(t->lr_warmup_steps)};
    f[k++] = (train_ckpt_field){"train.lr_decay", ck_int(t->decay)};
    f[k++] = (train_ckpt_field){"train.sparsity_warmup_steps", ck_int(t->sparsity_warmup_steps)};
    f[k++] = (train_ckpt_field){"train.seed", t->seed};
    f[k++] = (train_ckpt_field){"train.checkpoint_every", ck_int(t->checkpoint_every)};
    f[k++] = (train_ckpt_field){"train.eval_every", ck_int(t->eval_every)};
    f[k++] = (train_ckpt_field){"train.eval_rows", ck_int(t->eval_rows)};
    f[k++] = (train_ckpt_field){"train.dead_window", ck_int(t->dead_window)};
    f[k++] = (train_ckpt_field){"train.adam_beta1", ck_f32bits(t->adam_beta1)};
    f[k++] = (train_ckpt_field){"train.adam_beta2", ck_f32bits(t->adam_beta2)};
    f[k++] = (train_ckpt_field){"train.adam_eps", ck_f32bits(t->adam_eps)};
    f[k++] = (train_ckpt_field){"train.grad_clip", ck_f32bits(t->grad_clip)};
    f[k++] = (train_ckpt_field){"train.normalize_input", ck_int(t->normalize_input)};
    f[k++] = (train_ckpt_field){"the dataset's row count", ck_int(st->src.n_rows)};
    if (t->resample_every > 0) /* only when on, so checkpoints written before it existed still restore */
        f[k++] = (train_ckpt_field){"train.resample_every", ck_int(t->resample_every)};
    if (t->dup_cos > 0.0f) /* likewise */
        f[k++] = (train_ckpt_field){"train.dup_cos", ck_f32bits(t->dup_cos)};
    assert(k <= TRAIN_CKPT_MAX_FIELDS); /* every caller's array holds that many */
    return k;
}

/* ---- little-endian writer and reader ---- */

static unsigned char *ck_put(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        *p++ = (unsigned char)(v >> (8 * i));
    return p;
}

static uint64_t ck_get(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static unsigned char *ck_put_floats(unsigned char *p, const float *a, size_t n)
{
    for (size_t k = 0; k < n; k++)
        p = ck_put(p, ck_f32bits(a[k]), 4);
    return p;
}

static const unsigned char *ck_get_floats(const unsigned char *p, float *a, size_t n)
{
    for (size_t k = 0; k < n; k++, p += 4) {
        uint32_t u = (uint32_t)ck_get(p, 4);
        memcpy(&a[k], &u, 4);
    }
    return p;
}

static uint64_t ck_fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t k = 0; k < n; k++)
        h = (h ^ p[k]) * UINT64_C(0x100000001b3);
    return h;
}

/* ---- public ---- */

static size_t ck_prefix_size(int n_fields) { return 8 + 4 + 4 + 8 * (size_t)n_fields + 8 + 8 + 8; }

size_t train_checkpoint_size(const train_state *st)
{
    train_ckpt_field f[TRAIN_CKPT_MAX_FIELDS];
    assert(st && train_state_ok(st));
    int nf = train_ckpt_fields(st, f);
    return ck_prefix_size(nf) + 3 * 4 * st->p.n_params + 4 * (size_t)st->sc.n_latents + 8;
}

void train_checkpoint_write(const train_state *st, void *buf)
{
    train_ckpt_field f[TRAIN_CKPT_MAX_FIELDS];
    assert(st && buf && train_state_ok(st));
    assert(st->step >= 0 && st->step <= st->tc.steps && isfinite(st->in_scale) && st->in_scale > 0.0f);
    int nf = train_ckpt_fields(st, f);
    unsigned char *p = buf;
    memcpy(p, train_ckpt_magic, 8);
    p = ck_put(p + 8, TRAIN_CKPT_VERSION, 4);
    p = ck_put(p, (uint64_t)nf, 4);
    for (int k = 0; k < nf; k++)
        p = ck_put(p, f[k].bits, 8);
    p = ck_put(p, (uint64_t)st->step, 8);
    p = ck_put(p, st->p.n_params, 8);
    p = ck_put_floats(p, &st->in_scale, 1);
    p = ck_put(p, 0, 4);
    p = ck_put_floats(p, st->p.buf, st->p.n_params);
    p = ck_put_floats(p, st->m, st->p.n_params);
    p = ck_put_floats(p, st->v, st->p.n_params);
    for (int i = 0; i < st->sc.n_latents; i++)
        p = ck_put(p, (uint32_t)st->last_fired[i], 4);
    ck_put(p, ck_fnv1a(buf, (size_t)(p - (unsigned char *)buf)), 8);
    assert((size_t)(p - (unsigned char *)buf) + 8 == train_checkpoint_size(st)); /* the size and the writer agree */
}

static int ck_fail(char *err, size_t errlen, const char *msg)
{
    assert(msg && (err || errlen == 0));
    snprintf(err, errlen, "%s", msg);
    return -1;
}

/* Validates the blob's frame and configuration; 0 or -1 with err. */
static int ck_check(const train_state *st, const unsigned char *b, size_t len, char *err, size_t errlen)
{
    train_ckpt_field f[TRAIN_CKPT_MAX_FIELDS];
    assert(st && (b || len == 0));
    int nf = train_ckpt_fields(st, f);
    if (len < 16 || memcmp(b, train_ckpt_magic, 8) != 0)
        return ck_fail(err, errlen, "not a saed checkpoint");
    if (ck_get(b + 8, 4) != TRAIN_CKPT_VERSION)
        return ck_fail(err, errlen, "checkpoint version not supported; restart the job from scratch");
    if (len != train_checkpoint_size(st) || ck_get(b + 12, 4) != (uint64_t)nf)
        return ck_fail(err, errlen, "checkpoint size does not match this configuration; restart the job from scratch");
    if (ck_get(b + len - 8, 8) != ck_fnv1a(b, len - 8))
        return ck_fail(err, errlen, "checkpoint is corrupt (checksum mismatch); restart the job from scratch");
    for (int k = 0; k < nf; k++)
        if (ck_get(b + 16 + 8 * (size_t)k, 8) != f[k].bits) {
            snprintf(err, errlen, "checkpoint was written with a different %s; restart the job from scratch",
                     f[k].name);
            return -1;
        }
    const unsigned char *p = b + 16 + 8 * (size_t)nf;
    uint64_t step = ck_get(p, 8);
    if (step > (uint64_t)st->tc.steps || ck_get(p + 8, 8) != st->p.n_params)
        return ck_fail(err, errlen, "checkpoint step or size is out of range; restart the job from scratch");
    float scale;
    ck_get_floats(p + 16, &scale, 1);
    if (!isfinite(scale) || !(scale > 0.0f) || (!st->tc.normalize_input && scale != 1.0f))
        return ck_fail(err, errlen, "checkpoint has an invalid input scale; restart the job from scratch");
    return 0;
}

int train_checkpoint_restore(train_state *st, const void *buf, size_t len, char *err, size_t errlen)
{
    const unsigned char *b = buf;
    assert(st && (buf || len == 0) && train_state_ok(st));
    if (ck_check(st, b, len, err, errlen) != 0)
        return -1;
    assert(len == train_checkpoint_size(st)); /* ck_check: the blob is this configuration's size */
    train_ckpt_field f[TRAIN_CKPT_MAX_FIELDS];
    const unsigned char *p = b + 16 + 8 * (size_t)train_ckpt_fields(st, f);
    st->step = (int)ck_get(p, 8);
    p += 16;
    p = ck_get_floats(p, &st->in_scale, 1);
    p += 4;
    p = ck_get_floats(p, st->p.buf, st->p.n_params);
    p = ck_get_floats(p, st->m, st->p.n_params);
    p = ck_get_floats(p, st->v, st->p.n_params);
    for (int i = 0; i < st->sc.n_latents; i++, p += 4)
        st->last_fired[i] = (int32_t)(uint32_t)ck_get(p, 4);
    assert(p + 8 == b + len); /* read up to the checksum, as written */
    st->have_last = 0;
    st->perm_epoch = -1;
    st->sst = -1.0; /* recomputed with the restored input scale */
    return 0;
}
