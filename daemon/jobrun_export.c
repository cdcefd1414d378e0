/* jobrun_export — a finished SAE's files: the weights (the four .npy
 * arrays and sae.safetensors, written by artifacts_sae_write) and cfg.json
 * (saed's record of the SAE with SAELens-style keys; the folder SAELens
 * loads is GET /v1/saes/{id}/saelens.tar, built on request by api/saes_saelens.c).
 *
 * Everything is written from a copy of the trained parameters with the
 * input scale folded in (sae_fold_input_scale: W_enc * s, W_dec / s,
 * b_dec / s), so the files, the encode endpoint and the analyses all work
 * on raw dataset rows. cfg.json therefore says normalize_activations
 * "none"; input_scale records what was folded (1 when normalisation was
 * off). */
#include "jobrun_export.h"
#include "artifacts.h"
#include "sae_arch.h"
#include "sae_groups.h"
#include "files.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int rc = artifacts_sae_write(dir, &p, err, errlen);
    if (!rc) rc = jobrun_export_cfg_file(dir, &p, spec, train_input_scale(ts), job_id, dataset_id, err, errlen);
    sae_params_free(&p);
    return rc;
}
