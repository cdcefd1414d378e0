/* fuzz_ckpt — train_checkpoint_restore on arbitrary blobs.
 *
 * Input: one mode byte, then the blob. The mode picks one of ten tiny
 * trainers (five archs x normalize_input off/on, circles data, dim 4) and
 * whether the harness rewrites the blob's trailing FNV-1a checksum so that
 * mutations reach the checks behind it. Checked: a refused blob leaves the
 * trainer untouched; an accepted one writes back byte for byte (but for the
 * reserved word after the input scale), and training on from it finishes or
 * fails with a message, never crashes. Each trainer is built once and reset
 * from its pristine checkpoint after every input (libFuzzer calls the target
 * many times in one process, hence the static state).
 * Seeds: SAED_FUZZ_CKPT_SEEDS=dir build-fuzz/fuzz_ckpt -runs=0 writes, for each
 * trainer, its step-0 checkpoint and the one after all its steps. */
#include "circles.h"
#include "fuzzutil.h"
#include "train.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CKPT_TRAINERS 10

typedef struct {
    circles *circ;
    data_source src;
    train_state *st;
    unsigned char *pristine; /* (size) its checkpoint at step 0 */
    size_t size;
} fuzz_trainer;

static fuzz_trainer fuzz_ckpt_trainers[FUZZ_CKPT_TRAINERS];

static void fuzz_ckpt_config(int which, sae_config *sc, train_config *tc)
{
    memset(sc, 0, sizeof *sc);
    sc->arch = (sae_arch)(which % SAE_N_ARCHS);
    sc->dim = 4;
    sc->n_latents = 8;
    sc->group_size = 2;
    sc->sparsity_coef = sc->arch == SAE_TOPK || sc->arch == SAE_BATCHTOPK ? 0.0f : 0.01f;
    sc->k = sc->arch == SAE_TOPK || sc->arch == SAE_BATCHTOPK ? 2 : 0;
    sc->bandwidth = sc->arch == SAE_JUMPRELU ? 0.001f : 0.0f;
    sc->aux_k_coef = sc->k ? 0.03125f : 0.0f;
    train_config_default(tc);
    tc->steps = 3;
    tc->batch_size = 8;
    tc->lr_warmup_steps = 1;
    tc->sparsity_warmup_steps = 1;
    tc->checkpoint_every = 2;
    tc->eval_every = 2;
    tc->eval_rows = 8;
    tc->dead_window = 1;
    tc->normalize_input = which >= 5;
}

static fuzz_trainer *fuzz_ckpt_trainer(int which)
{
    fuzz_trainer *t = &fuzz_ckpt_trainers[which];
    if (t->st)
        return t;
    sae_config sc;
    train_config tc;
    circles_params cp;
    char err[256];
    fuzz_ckpt_config(which, &sc, &tc);
    circles_params_default(&cp);
    cp.n_circles = 6;
    cp.dim = sc.dim;
    cp.p_active = 0.3;
    t->circ = circles_create(&cp);
    FUZZ_REQUIRE(t->circ != NULL);
    datasrc_from_circles(&t->src, t->circ);
    t->st = train_create(&sc, &tc, &t->src, err, sizeof err);
    FUZZ_REQUIRE(t->st != NULL);
    t->size = train_checkpoint_size(t->st);
    t->pristine = malloc(t->size);
    FUZZ_REQUIRE(t->pristine != NULL);
    train_checkpoint_write(t->st, t->pristine);
    return t;
}

/* FNV-1a 64 (the checkpoint's checksum) of p[0..n). */
static uint64_t fuzz_ckpt_fnv(const unsigned char *p, size_t n)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t k = 0; k < n; k++)
        h = (h ^ p[k]) * UINT64_C(0x100000001b3);
    return h;
}

/* Checks a blob the trainer accepted writes back unchanged, then trains on. */
static void fuzz_ckpt_accepted(fuzz_trainer *t, const unsigned char *blob, size_t len)
{
    unsigned char *back = malloc(t->size);
    FUZZ_REQUIRE(back != NULL && len == t->size);
    train_checkpoint_write(t->st, back);
    /* magic, version, n_fields, fields, step, n_params, scale; then the reserved word */
    size_t scale_end = 36 + 8 * (size_t)(blob[12] | blob[13] << 8 | blob[14] << 16 | (uint32_t)blob[15] << 24);
    FUZZ_REQUIRE(!memcmp(back, blob, scale_end));
    FUZZ_REQUIRE(!memcmp(back + scale_end + 4, blob + scale_end + 4, len - scale_end - 4 - 8));
    free(back);
    train_hooks h = {0};
    train_result r = train_run(t->st, &h);
    FUZZ_REQUIRE(r == TRAIN_DONE || (r == TRAIN_ERROR && train_error(t->st)[0] != '\0'));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    char err[256];
    if (len < 1)
        return 0;
    fuzz_trainer *t = fuzz_ckpt_trainer((data[0] >> 1) % FUZZ_CKPT_TRAINERS);
    unsigned char *blob = malloc(len - 1 ? len - 1 : 1); /* (len - 1) a copy, maybe re-checksummed */
    FUZZ_REQUIRE(blob != NULL);
    memcpy(blob, data + 1, len - 1);
    if ((data[0] & 1) && len - 1 >= 8) {
        uint64_t h = fuzz_ckpt_fnv(blob, len - 9);
        for (int i = 0; i < 8; i++)
            blob[len - 9 + (size_t)i] = (unsigned char)(h >> (8 * i));
    }
    if (train_checkpoint_restore(t->st, blob, len - 1, err, sizeof err) == 0) {
        fuzz_ckpt_accepted(t, blob, len - 1);
    } else {
        FUZZ_REQUIRE(err[0] != '\0');
        unsigned char *now = malloc(t->size); /* a refused blob changes nothing */
        FUZZ_REQUIRE(now != NULL);
        train_checkpoint_write(t->st, now);
        FUZZ_REQUIRE(!memcmp(now, t->pristine, t->size));
        free(now);
    }
    FUZZ_REQUIRE(train_checkpoint_restore(t->st, t->pristine, t->size, err, sizeof err) == 0);
    free(blob);
    return 0;
}

/* Writes mode byte + blob to dir/name. */
static void fuzz_ckpt_seed(const char *dir, const char *name, int which, const unsigned char *blob, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s%d.ckpt", dir, name, which);
    FILE *f = fopen(path, "wb");
    FUZZ_REQUIRE(f != NULL);
    unsigned char mode = (unsigned char)(which << 1);
    FUZZ_REQUIRE(fwrite(&mode, 1, 1, f) == 1 && fwrite(blob, 1, len, f) == len && fclose(f) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("SAED_FUZZ_CKPT_SEEDS");
    for (int which = 0; dir && which < FUZZ_CKPT_TRAINERS; which++) {
        char err[256];
        train_hooks h = {0};
        fuzz_trainer *t = fuzz_ckpt_trainer(which);
        unsigned char *done = malloc(t->size);
        FUZZ_REQUIRE(done != NULL && train_run(t->st, &h) == TRAIN_DONE);
        train_checkpoint_write(t->st, done);
        fuzz_ckpt_seed(dir, "start", which, t->pristine, t->size);
        fuzz_ckpt_seed(dir, "done", which, done, t->size);
        free(done);
        FUZZ_REQUIRE(train_checkpoint_restore(t->st, t->pristine, t->size, err, sizeof err) == 0);
    }
    return 0;
}
