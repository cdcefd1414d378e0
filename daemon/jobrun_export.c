/* jobrun_export — a finished SAE's files: the four .npy arrays, the same
 * tensors as one sae.safetensors, and a SAELens-style cfg.json.
 *
 * Everything is written from a copy of the trained parameters with the
 * input scale folded in (sae_fold_input_scale: W_enc * s, W_dec / s,
 * b_dec / s), so the files, the encode endpoint and the analyses all work
 * on raw dataset rows. cfg.json therefore says normalize_activations
 * "none"; input_scale records what was folded (1 when normalisation was
 * off). safetensors data are the tensors back to back in sae_tensors()
 * order, written as the host's floats, which are little-endian; an arch
 * whose registry row has a SAELens threshold (jumprelu: exp(log_theta) of
 * each latent's group) adds it as the per-latent 'threshold' (n) after them
 * (log_theta stays, the exact trained state). The SAELens names come from
 * the row too (include/sae_arch.h). */
#include "jobrun_export.h"
#include "sae_arch.h"
#include "sae_groups.h"
#include "files.h"
#include "safetensors.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "sae.safetensors is written from host floats and needs a little-endian host"
#endif

/* A copy of the trained parameters with the input scale folded in. */
static int jobrun_export_folded(const train_state *ts, sae_params *out, char *err, size_t errlen)
{
    const sae_params *p = train_params(ts);
    if (sae_params_alloc(out, &p->cfg)) {
        snprintf(err, errlen, "out of memory exporting the SAE");
        return -1;
    }
    memcpy(out->buf, p->buf, p->n_params * sizeof(float));
    sae_fold_input_scale(out, train_input_scale(ts));
    return 0;
}

static int jobrun_export_npy(const char *dir, const sae_params *p, char *err, size_t errlen)
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
static int jobrun_export_saelens_threshold(const sae_params *p, sae_tensor *t, int *n, float **thr)
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

static int jobrun_export_safetensors(const char *dir, const sae_params *p, char *err, size_t errlen)
{
    static const char *const meta[] = { "format", "pt", NULL };
    sae_tensor t[SAE_MAX_TENSORS + 1];
    float *thr = NULL; /* (n) the per-latent threshold, for archs that have one */
    int n = sae_tensors(p, t, SAE_MAX_TENSORS);
    size_t hlen;
    int oom = n <= SAE_MAX_TENSORS ? jobrun_export_saelens_threshold(p, t, &n, &thr) : 0;
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

static json_t *jobrun_export_cfg(const sae_params *p, const json_t *spec, float scale, long long job, long long ds)
{
    const sae_config *c = &p->cfg;
    json_t *sae = json_object_get(spec, "sae"), *train = json_object_get(spec, "train");
    const sae_arch_def *a = sae_arch_of(c);
    int topk = a->saelens_topk;
    json_t *cfg = json_pack("{s:s,s:i,s:i,s:s,s:s,s:b,s:s,s:b,s:s}",
                            "architecture", a->saelens_arch, "d_in", c->dim, "d_sae", c->n_latents,
                            "dtype", "float32", "device", "cpu", "apply_b_dec_to_input", 1,
                            "normalize_activations", "none", "finetuning_scaling_factor", 0,
                            "activation_fn_str", topk ? "topk" : "relu");
    if (!cfg) return NULL;
    if (topk && c->k > 0) json_object_set_new(cfg, "activation_fn_kwargs", json_pack("{s:i}", "k", c->k));
    json_object_set_new(cfg, "saed_arch", json_string(sae_arch_name(c->arch)));
    json_object_set_new(cfg, "group_size", json_integer(c->group_size)); /* 0: groups of any size, listed */
    if (c->groups) json_object_set_new(cfg, "groups", sae_groups_to_json(c->groups));
    json_object_set_new(cfg, "k", c->k > 0 ? json_integer(c->k) : json_null());
    static const char *const copied[] = { "threshold", "sparsity_coef", "orth_coef" };
    for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++) {
        json_t *v = json_object_get(sae, copied[i]);
        json_object_set_new(cfg, copied[i], v ? json_deep_copy(v) : json_null());
    }
    json_object_set_new(cfg, "normalize_input", json_boolean(json_is_true(json_object_get(train, "normalize_input"))));
    json_object_set_new(cfg, "input_scale", json_real(scale));
    json_object_set_new(cfg, "saed_job", json_integer(job));
    json_object_set_new(cfg, "saed_dataset", json_integer(ds));
    return cfg;
}

static int jobrun_export_cfg_file(const char *dir, const sae_params *p, const json_t *spec, float scale,
                                  long long job, long long ds, char *err, size_t errlen)
{
    json_t *cfg = jobrun_export_cfg(p, spec, scale, job, ds);
    char *text = cfg ? json_dumps(cfg, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(cfg);
    if (!text) {
        snprintf(err, errlen, "out of memory writing cfg.json");
        return -1;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/cfg.json", dir);
    files_part part = { text, strlen(text) };
    int rc = files_write_atomic(path, &part, 1, err, errlen);
    free(text);
    return rc;
}

int jobrun_export_files(const char *dir, const train_state *ts, const json_t *spec, long long job_id,
                        long long dataset_id, char *err, size_t errlen)
{
    sae_params p;
    if (jobrun_export_folded(ts, &p, err, errlen)) return -1;
    int rc = jobrun_export_npy(dir, &p, err, errlen);
    if (!rc) rc = jobrun_export_safetensors(dir, &p, err, errlen);
    if (!rc) rc = jobrun_export_cfg_file(dir, &p, spec, train_input_scale(ts), job_id, dataset_id, err, errlen);
    sae_params_free(&p);
    return rc;
}
