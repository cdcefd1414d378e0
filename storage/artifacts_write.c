/* artifacts_write — an SAE's weight files, as every SAE keeps them in its
 * directory, whether a train job made it (daemon/jobrun_export.c) or it was
 * imported (api/saes_import.c): decoder.npy (n, dim), encoder.npy (dim, n),
 * b_enc.npy (n), b_dec.npy (dim) as '<f4', and sae.safetensors with every
 * named tensor of sae_tensors() (the arch's extras are read back from it by
 * artifacts_sae_load), each written atomically. safetensors data are the
 * tensors back to back in sae_tensors() order, written as the host's
 * floats, which are little-endian; an arch whose registry row has a
 * per-latent SAELens threshold (jumprelu: exp(log_theta) of each latent's
 * group) adds it as 'threshold' (n) after them. */
#include "artifacts.h"
#include "files.h"
#include "safetensors.h"
#include "sae_arch.h"
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "sae.safetensors is written from host floats and needs a little-endian host"
#endif

static int artifacts_write_npy(const char *dir, const sae_params *p, char *err, size_t errlen)
{
    const sae_config *c = &p->cfg;
    char path[4200];
    const struct { const char *name; const float *data; long long shape[2]; int ndim; } arrays[] = {
        { "decoder.npy", p->v.W_dec, { c->n_latents, c->dim }, 2 },
        { "encoder.npy", p->v.W_enc, { c->dim, c->n_latents }, 2 },
        { "b_enc.npy", p->v.b_enc, { c->n_latents, 0 }, 1 },
        { "b_dec.npy", p->v.b_dec, { c->dim, 0 }, 1 },
    };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, arrays[i].name);
        if (files_write_npy_f32(path, arrays[i].data, arrays[i].shape, arrays[i].ndim, err, errlen)) return -1;
    }
    return 0;
}

/* SAELens's per-latent threshold (n), for an arch whose registry row has one, into t[*n] and a
 * malloc'd buffer *thr; nothing for other archs. 0, or -1 when out of memory. */
static int artifacts_write_threshold(const sae_params *p, sae_tensor *t, int *n, float **thr)
{
    const sae_arch_def *a = sae_arch_of(&p->cfg);
    int nl = p->cfg.n_latents;
    *thr = NULL;
    if (!a->saelens_threshold) return 0;
    if (!(*thr = malloc((size_t)nl * sizeof **thr))) return -1;
    a->saelens_threshold(p, *thr);
    t[(*n)++] = (sae_tensor){ "threshold", *thr, 1, { nl, 0 } };
    return 0;
}

static int artifacts_write_safetensors(const char *dir, const sae_params *p, char *err, size_t errlen)
{
    static const char *const meta[] = { "format", "pt", NULL };
    sae_tensor t[SAE_MAX_TENSORS + 1];
    float *thr = NULL; /* (n) the per-latent threshold, for archs that have one */
    int n = sae_tensors(p, t, SAE_MAX_TENSORS);
    size_t hlen;
    int oom = n <= SAE_MAX_TENSORS ? artifacts_write_threshold(p, t, &n, &thr) : 0;
    unsigned char *hdr = n <= SAE_MAX_TENSORS + 1 && !oom ? safetensors_header(t, n, meta, &hlen) : NULL;
    if (!hdr) {
        free(thr);
        snprintf(err, errlen, "cannot build the sae.safetensors header (%d tensors; out of memory?)", n);
        return -1;
    }
    files_part parts[SAE_MAX_TENSORS + 2] = { { hdr, hlen } };
    for (int i = 0; i < n; i++)
        parts[i + 1] = (files_part){ t[i].data, safetensors_data_bytes(&t[i], 1) };
    char path[4200];
    snprintf(path, sizeof path, "%s/sae.safetensors", dir);
    int rc = files_write_atomic(path, parts, n + 1, err, errlen);
    free(hdr);
    free(thr);
    return rc;
}

int artifacts_sae_write(const char *dir, const sae_params *p, char *err, size_t errlen)
{
    assert(dir && p && p->buf);
    assert(err);
    int rc = artifacts_write_npy(dir, p, err, errlen);
    if (!rc) rc = artifacts_write_safetensors(dir, p, err, errlen);
    return rc;
}
