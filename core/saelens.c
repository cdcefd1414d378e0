/* saelens — the SAELens folder of an SAE, both ways (include/saelens.h).
 *
 * Export asks the arch's registry row for its exact SAELens equivalent
 * (saelens_exact) and writes saed's own tensors (sae_tensors: W_enc, b_enc
 * or gated's b_gate, W_dec, b_dec, gated's r_mag and b_mag, which SAELens
 * names the same) plus jumprelu's per-latent threshold; tensors saed keeps
 * for itself (jumprelu's log_theta, batchtopk's scalar threshold) are left
 * out, since SAELens's strict load refuses unknown keys.
 *
 * Import reads cfg.json with jansson, decides the SAELens architecture the
 * way SAELens's handle_config_defaulting does for configs before 6.0,
 * builds the saed config (group_size 1) and checks it with
 * sae_config_check, then reads each tensor SAELens's architecture has by
 * name straight into the parameter buffer: the saed tensor of the same
 * name (sae_tensors), except jumprelu's threshold, converted to log_theta.
 * A tensor SAELens's architecture does not have is refused, as SAELens's
 * own strict load_state_dict would. */
#include "saelens.h"
#include "safetensors.h"
#include "sae_arch.h"
#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "saelens reads and writes little-endian safetensors with host floats"
#endif

#define SAELENS_MAX_TENSORS (SAE_MAX_TENSORS + 1)

static const char *const saelens_model_keys[] = { "model_name", "hook_name", "hook_layer", "hook_head_index",
                                                  "context_size", "dataset_path", "prepend_bos",
                                                  "model_from_pretrained_kwargs", NULL };

/* ---- export ---- */

/* 0 when p has an exact SAELens equivalent, else 1 with msg. */
static int saelens_exportable(const sae_params *p, char *msg, size_t msglen)
{
    assert(p && msg);
    const sae_arch_def *a = sae_arch_of(&p->cfg);
    if (p->cfg.group_size != 1) { /* > 1, or 0: groups listed, of any size (include/sae_groups.h) */
        char groups[48];
        snprintf(groups, sizeof groups, p->cfg.groups ? "groups of any size" : "group_size %d", p->cfg.group_size);
        snprintf(msg, msglen, "this SAE has %s: SAELens applies its activation latent by latent and "
                 "cannot compute saed's group penalties or group codes, so no SAELens folder reproduces it; only "
                 "SAEs with group_size 1 export to SAELens (use the .npy weights for this one)", groups);
        return 1;
    }
    if (!a->saelens_exact) {
        snprintf(msg, msglen, "arch '%s' has no SAELens equivalent (SAELens has no signed group codes); use the "
                 ".npy weights", a->name);
        return 1;
    }
    return 0;
}

/* The safetensors bytes of t[0..n): header then data, one malloc'd buffer. */
static unsigned char *saelens_file(const sae_tensor *t, int n, size_t *len)
{
    assert(t && n >= 1 && len);
    static const char *const meta[] = { "format", "pt", NULL };
    size_t hlen, dlen = safetensors_data_bytes(t, n);
    unsigned char *hdr = safetensors_header(t, n, meta, &hlen);
    unsigned char *buf = hdr && dlen <= SIZE_MAX - hlen ? malloc(hlen + dlen) : NULL;
    if (buf) {
        memcpy(buf, hdr, hlen);
        size_t off = hlen;
        for (int i = 0; i < n; i++) {
            size_t b = safetensors_data_bytes(&t[i], 1);
            memcpy(buf + off, t[i].data, b);
            off += b;
        }
        *len = off;
    }
    free(hdr);
    return buf;
}

int saelens_weights(const sae_params *p, const char **arch, unsigned char **buf, size_t *len, char *msg,
                    size_t msglen)
{
    assert(p && p->buf && arch && buf && len);
    assert(msg && msglen > 0);
    *buf = NULL;
    if (saelens_exportable(p, msg, msglen)) return 1;
    int n = p->cfg.n_latents, nt, k = 4;
    sae_tensor t[SAELENS_MAX_TENSORS];
    float *thr = malloc((size_t)n * sizeof *thr); /* (n) jumprelu's threshold */
    if (!thr) return -1;
    nt = sae_tensors(p, t, SAE_MAX_TENSORS);
    assert(nt >= 4 && nt <= SAE_MAX_TENSORS);
    *arch = sae_arch_of(&p->cfg)->saelens_exact(p, thr);
    if (!strcmp(*arch, "gated")) k = nt; /* r_mag, b_mag: SAELens's names */
    if (!strcmp(*arch, "jumprelu")) t[k++] = (sae_tensor){ "threshold", thr, 1, { n, 0 } };
    *buf = saelens_file(t, k, len);
    free(thr);
    return *buf ? 0 : -1;
}

/* The model keys into meta (and top), from model or the placeholders; placeholders lists those filled so. */
static void saelens_model(json_t *meta, json_t *top, const json_t *model, json_t *placeholders)
{
    assert(meta && top && placeholders);
    for (int i = 0; saelens_model_keys[i]; i++) {
        const char *key = saelens_model_keys[i];
        json_t *v = model ? json_object_get(model, key) : NULL;
        if (!v) {
            v = !strcmp(key, "hook_layer") || !strcmp(key, "context_size") ? json_integer(0)
                : !strcmp(key, "hook_head_index") ? json_null()
                : !strcmp(key, "prepend_bos") ? json_true()
                : !strcmp(key, "model_from_pretrained_kwargs") ? json_object() : json_string("unknown");
            json_array_append_new(placeholders, json_string(key));
        } else {
            v = json_deep_copy(v);
        }
        json_object_set(top, key, v);
        json_object_set_new(meta, key, v);
    }
}

json_t *saelens_cfg(const sae_params *p, const char *arch, const json_t *model, const json_t *saed)
{
    assert(p && arch);
    assert(!model || json_is_object(model));
    json_t *cfg = json_pack("{s:i,s:i,s:s,s:s,s:s,s:b,s:s,s:s}", "d_in", p->cfg.dim, "d_sae", p->cfg.n_latents,
                            "architecture", arch, "dtype", "float32", "device", "cpu", "apply_b_dec_to_input", 1,
                            "normalize_activations", "none", "reshape_activations", "none");
    json_t *meta = json_pack("{s:s,s:s}", "sae_lens_version", SAELENS_FORMAT_VERSION, "sae_lens_training_version",
                             SAELENS_FORMAT_VERSION);
    json_t *own = saed ? json_deep_copy(saed) : json_object(), *ph = json_array();
    if (!cfg || !meta || !json_is_object(own) || !ph) {
        json_decref(cfg), json_decref(meta), json_decref(own), json_decref(ph);
        return NULL;
    }
    if (!strcmp(arch, "topk")) {
        json_object_set_new(cfg, "k", json_integer(p->cfg.k));
        json_object_set_new(cfg, "rescale_acts_by_decoder_norm", json_false());
    }
    /* SAELens 5 read these at the top level (and topk's k from activation_fn_kwargs) */
    json_object_set_new(cfg, "activation_fn_str", json_string(strcmp(arch, "topk") ? "relu" : "topk"));
    if (!strcmp(arch, "topk")) json_object_set_new(cfg, "activation_fn_kwargs", json_pack("{s:i}", "k", p->cfg.k));
    json_object_set_new(cfg, "finetuning_scaling_factor", json_false());
    saelens_model(meta, cfg, model, ph);
    json_object_set_new(own, "placeholders", ph);
    json_object_set_new(meta, "saed", own);
    json_object_set_new(cfg, "metadata", meta);
    return cfg;
}

unsigned char *saelens_sparsity(const double *density, int n, size_t *len)
{
    assert(density && n >= 1 && len);
    float *v = malloc((size_t)n * sizeof *v); /* (n) */
    if (!v) return NULL;
    for (int i = 0; i < n; i++) v[i] = (float)log10(density[i] + SAELENS_SPARSITY_EPS);
    sae_tensor t = { "sparsity", v, 1, { n, 0 } };
    unsigned char *buf = saelens_file(&t, 1, len);
    free(v);
    return buf;
}

/* ---- import ---- */

typedef struct {
    const char *arch;   /* SAELens's: "standard", "jumprelu", "topk", "gated" */
    sae_arch saed;      /* its saed arch */
    int d_in, d_sae, k;
    int b_dec_in;       /* apply_b_dec_to_input */
    int rescale;        /* topk's rescale_acts_by_decoder_norm */
} saelens_in;

static const struct { const char *saelens, *saed; const char *tensors[7]; } saelens_archs[] = {
    { "standard", "relu", { "W_enc", "b_enc", "W_dec", "b_dec", NULL } },
    { "jumprelu", "jumprelu", { "W_enc", "b_enc", "W_dec", "b_dec", "threshold", "log_threshold", NULL } },
    { "topk", "topk", { "W_enc", "b_enc", "W_dec", "b_dec", NULL } },
    { "gated", "gated", { "W_enc", "b_gate", "r_mag", "b_mag", "W_dec", "b_dec", NULL } },
};
#define SAELENS_N_ARCHS ((int)(sizeof saelens_archs / sizeof saelens_archs[0]))

static int saelens_arch_index(const char *name)
{
    assert(name);
    for (int i = 0; i < SAELENS_N_ARCHS; i++)
        if (!strcmp(saelens_archs[i].saelens, name)) return i;
    return -1;
}

static int saelens_int(const json_t *cfg, const char *key, int min, int *out, char *msg, size_t msglen)
{
    assert(cfg && key && out && msg);
    json_t *v = json_object_get(cfg, key);
    if (json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= INT32_MAX) {
        *out = (int)json_integer_value(v);
        return 0;
    }
    snprintf(msg, msglen, "cfg.json: '%s' must be an integer from %d to 2147483647", key, min);
    return -1;
}

/* The architecture SAELens would build: cfg's, or for configs before 6.0 standard or topk. */
static const char *saelens_cfg_arch(const json_t *cfg)
{
    assert(cfg);
    const char *arch = json_string_value(json_object_get(cfg, "architecture"));
    if (arch) return arch;
    const char *fn = json_string_value(json_object_get(cfg, "activation_fn_str"));
    if (!fn) fn = json_string_value(json_object_get(cfg, "activation_fn"));
    return fn && !strcmp(fn, "topk") ? "topk" : "standard";
}

/* k of a topk config: cfg.k, or activation_fn_kwargs.k (before 6.0). */
static int saelens_cfg_k(const json_t *cfg, saelens_in *in, char *msg, size_t msglen)
{
    assert(cfg && in && msg);
    json_t *kw = json_object_get(cfg, "activation_fn_kwargs");
    const json_t *from = json_object_get(cfg, "k") || !json_is_object(kw) ? cfg : kw;
    if (saelens_int(from, "k", 1, &in->k, msg, msglen)) return -1;
    if (in->k > in->d_sae) {
        snprintf(msg, msglen, "cfg.json: k (%d) is larger than d_sae (%d)", in->k, in->d_sae);
        return -1;
    }
    return 0;
}

/* The options saed reproduces; everything else is refused naming the key and what to do. */
static int saelens_cfg_options(const json_t *cfg, saelens_in *in, char *msg, size_t msglen)
{
    assert(cfg && in && msg);
    const char *dtype = json_string_value(json_object_get(cfg, "dtype"));
    const char *norm = json_string_value(json_object_get(cfg, "normalize_activations"));
    const char *reshape = json_string_value(json_object_get(cfg, "reshape_activations"));
    json_t *norm_v = json_object_get(cfg, "normalize_activations"), *b = json_object_get(cfg, "apply_b_dec_to_input");
    json_t *rs = json_object_get(cfg, "rescale_acts_by_decoder_norm");
    if (dtype && strcmp(dtype, "float32") && strcmp(dtype, "torch.float32"))
        return snprintf(msg, msglen, "cfg.json: dtype '%.40s': saed reads float32 weights; in SAELens, "
                        "sae.to(torch.float32) and save_model again", dtype), -1;
    if (norm_v && !json_is_false(norm_v) && (!norm || strcmp(norm, "none")))
        return snprintf(msg, msglen, "cfg.json: normalize_activations must be \"none\" (saed encodes raw rows); fold "
                        "the scaling into the weights first, e.g. sae.fold_activation_norm_scaling_factor(s)"), -1;
    if (reshape && strcmp(reshape, "none") && strcmp(reshape, "hook_z"))
        return snprintf(msg, msglen, "cfg.json: reshape_activations '%.40s' is not one SAELens has", reshape), -1;
    if ((b && !json_is_boolean(b)) || (rs && !json_is_boolean(rs)))
        return snprintf(msg, msglen, "cfg.json: apply_b_dec_to_input and rescale_acts_by_decoder_norm must be "
                        "true or false"), -1;
    in->b_dec_in = !b || json_is_true(b);
    in->rescale = json_is_true(rs);
    return 0;
}

static int saelens_cfg_read(const json_t *cfg, saelens_in *in, char *msg, size_t msglen)
{
    assert(cfg && in && msg);
    memset(in, 0, sizeof *in);
    in->arch = saelens_cfg_arch(cfg);
    int i = saelens_arch_index(in->arch);
    if (i < 0)
        return snprintf(msg, msglen, "cfg.json: architecture '%.60s' has no saed equivalent; saed imports standard, "
                        "jumprelu, topk and gated (SAELens saves batchtopk SAEs as jumprelu)", in->arch), -1;
    in->arch = saelens_archs[i].saelens;
    if (sae_arch_parse(saelens_archs[i].saed, &in->saed)) return snprintf(msg, msglen, "internal: no arch"), -1;
    if (saelens_int(cfg, "d_in", 1, &in->d_in, msg, msglen) || saelens_int(cfg, "d_sae", 1, &in->d_sae, msg, msglen))
        return -1;
    if (!strcmp(in->arch, "topk") && saelens_cfg_k(cfg, in, msg, msglen)) return -1;
    return saelens_cfg_options(cfg, in, msg, msglen);
}

/* The saed config of in, checked. */
static int saelens_config(const saelens_in *in, size_t max_bytes, sae_config *c, char *msg, size_t msglen)
{
    assert(in && c && msg);
    char field[64], why[400];
    sae_config_default(c);
    c->arch = in->saed, c->dim = in->d_in, c->n_latents = in->d_sae, c->group_size = 1;
    c->k = !strcmp(in->arch, "topk") ? in->k : 0;
    c->bandwidth = sae_config_default_bandwidth(c);
    if (sae_config_check(c, field, sizeof field, why, sizeof why))
        return snprintf(msg, msglen, "the SAE does not fit saed (%s): %s", field, why), -1;
    if ((double)sae_n_params(c) * sizeof(float) > (double)max_bytes)
        return snprintf(msg, msglen, "the SAE (d_in %d x d_sae %d) takes more memory than this daemon's limit of %zu "
                        "bytes; start saed with a larger --max-job-mb", in->d_in, in->d_sae, max_bytes), -1;
    return 0;
}

/* Each tensor in the file must be one the architecture has (SAELens's strict load). */
static int saelens_no_extra_tensors(const char *hdr, size_t hlen, int ai, char *msg, size_t msglen)
{
    assert(hdr && msg);
    json_t *h = json_loadb(hdr, hlen, 0, NULL);
    const char *key;
    json_t *v;
    int rc = json_is_object(h) ? 0 : -1;
    if (rc) snprintf(msg, msglen, "sae_weights.safetensors: its header is not a JSON object");
    json_object_foreach(h, key, v) {
        int known = !strcmp(key, "__metadata__");
        for (int i = 0; !known && saelens_archs[ai].tensors[i]; i++) known = !strcmp(key, saelens_archs[ai].tensors[i]);
        if (!known && !rc)
            rc = (snprintf(msg, msglen, "sae_weights.safetensors holds tensor '%.60s', which SAELens's %s architecture "
                           "does not have (SAELens's strict load refuses it too)", key, saelens_archs[ai].saelens), -1);
    }
    json_decref(h);
    return rc;
}

/* Tensor name of the file (header hdr, hlen bytes; file w, wlen bytes) into dst, which must have
 * shape (ndim, shape). 0; 1 when absent; -1 with msg. */
static int saelens_read(const unsigned char *w, size_t wlen, const char *hdr, size_t hlen, const char *name,
                        int ndim, const int64_t *shape, float *dst, char *msg, size_t msglen)
{
    assert(w && hdr && name && shape && dst && msg);
    safetensors_entry e;
    char why[300];
    int rc = safetensors_find(hdr, hlen, name, &e, why, sizeof why);
    if (rc == 1) return 1;
    if (rc) return snprintf(msg, msglen, "sae_weights.safetensors: %s", why), -1;
    if (e.ndim != ndim || e.shape[0] != shape[0] || (ndim == 2 && e.shape[1] != shape[1]))
        return snprintf(msg, msglen, "sae_weights.safetensors: tensor '%s' has shape (%lld%s%lld), cfg.json says "
                        "(%lld%s%lld)", name, (long long)e.shape[0], e.ndim == 2 ? ", " : "",
                        e.ndim == 2 ? (long long)e.shape[1] : 0LL, (long long)shape[0], ndim == 2 ? ", " : "",
                        ndim == 2 ? (long long)shape[1] : 0LL), -1;
    size_t base = 8 + hlen;
    if (e.end > wlen - base)
        return snprintf(msg, msglen, "sae_weights.safetensors: tensor '%s' runs past the end of the file "
                        "(truncated?)", name), -1;
    memcpy(dst, w + base + e.begin, (size_t)(e.end - e.begin));
    for (uint64_t i = 0; i < (e.end - e.begin) / 4; i++)
        if (!isfinite(dst[i]))
            return snprintf(msg, msglen, "sae_weights.safetensors: tensor '%s' holds NaN or infinity at %llu", name,
                            (unsigned long long)i), -1;
    return 0;
}

/* log theta whose expf is the float nearest t (t <= 0: -FLT_MAX, so that theta = 0). */
static float saelens_log_theta(float t)
{
    if (!(t > 0.0f)) return -FLT_MAX;
    float best = logf(t), c = best;
    for (int i = 0; i < 8; i++) c = nextafterf(c, -INFINITY);
    for (int i = 0; i < 17; i++, c = nextafterf(c, INFINITY))
        if (fabsf(expf(c) - t) < fabsf(expf(best) - t)) best = c;
    return best;
}

/* jumprelu: "threshold" (converted) or "log_threshold" (as it is) into log_theta (n). */
static int saelens_read_theta(const unsigned char *w, size_t wlen, const char *hdr, size_t hlen, float *log_theta,
                              int n, char *msg, size_t msglen)
{
    assert(w && hdr && log_theta && n >= 1 && msg);
    int64_t shape[2] = { n, 0 };
    int rc = saelens_read(w, wlen, hdr, hlen, "log_threshold", 1, shape, log_theta, msg, msglen);
    if (rc <= 0) return rc;
    rc = saelens_read(w, wlen, hdr, hlen, "threshold", 1, shape, log_theta, msg, msglen);
    if (rc == 1) return snprintf(msg, msglen, "sae_weights.safetensors has no tensor 'threshold', which SAELens's "
                                 "jumprelu architecture has"), -1;
    for (int i = 0; !rc && i < n; i++) log_theta[i] = saelens_log_theta(log_theta[i]);
    return rc;
}

/* Every tensor of the architecture into p (zeroed, in->saed's layout). */
static int saelens_read_all(const saelens_in *in, const unsigned char *w, size_t wlen, const char *hdr, size_t hlen,
                            sae_params *p, char *msg, size_t msglen)
{
    assert(in && w && hdr && p && msg);
    sae_tensor t[SAE_MAX_TENSORS];
    int nt = sae_tensors(p, t, SAE_MAX_TENSORS), ai = saelens_arch_index(in->arch);
    for (int i = 0; i < nt && i < SAE_MAX_TENSORS; i++) {
        int rc;
        if (!strcmp(t[i].name, "log_theta"))
            rc = saelens_read_theta(w, wlen, hdr, hlen, t[i].data, (int)t[i].shape[0], msg, msglen);
        else
            rc = saelens_read(w, wlen, hdr, hlen, t[i].name, t[i].ndim, t[i].shape, t[i].data, msg, msglen);
        if (rc == 1)
            rc = (snprintf(msg, msglen, "sae_weights.safetensors has no tensor '%s', which SAELens's %s architecture "
                           "has", t[i].name, in->arch), -1);
        if (rc) return -1;
    }
    return saelens_no_extra_tensors(hdr, hlen, ai, msg, msglen);
}

/* SAELens's options folded into saed's form: apply_b_dec_to_input false (the bias moves into b_enc, and
 * gated's b_mag), topk's rescale_acts_by_decoder_norm (decoder norms into the encoder). */
static void saelens_fold(const saelens_in *in, sae_params *p)
{
    assert(in && p);
    int d = p->cfg.dim, n = p->cfg.n_latents;
    sae_tensor t[SAE_MAX_TENSORS];
    int nt = sae_tensors(p, t, SAE_MAX_TENSORS);
    float *r_mag = NULL, *b_mag = NULL; /* gated's (n) */
    for (int i = 4; i < nt && i < SAE_MAX_TENSORS; i++) {
        if (!strcmp(t[i].name, "r_mag")) r_mag = t[i].data;
        if (!strcmp(t[i].name, "b_mag")) b_mag = t[i].data;
    }
    if (!r_mag) b_mag = NULL;
    for (int i = 0; i < n && !in->b_dec_in; i++) {
        double s = 0.0;
        for (int k = 0; k < d; k++) s += (double)p->v.W_enc[(size_t)k * n + i] * p->v.b_dec[k];
        p->v.b_enc[i] += (float)s;
        if (b_mag) b_mag[i] += (float)(exp((double)r_mag[i]) * s);
    }
    for (int i = 0; i < n && in->rescale; i++) {
        double s = 0.0;
        for (int k = 0; k < d; k++) s += (double)p->v.W_dec[(size_t)i * d + k] * p->v.W_dec[(size_t)i * d + k];
        float nrm = (float)sqrt(s) > 1e-8f ? (float)sqrt(s) : 1e-8f; /* SAELens's clamp */
        for (int k = 0; k < d; k++) p->v.W_enc[(size_t)k * n + i] *= nrm, p->v.W_dec[(size_t)i * d + k] /= nrm;
        p->v.b_enc[i] *= nrm;
    }
}

/* The safetensors header of w: its JSON (*hdr, *hlen). 0, or -1 with msg. */
static int saelens_header(const unsigned char *w, size_t wlen, const char **hdr, size_t *hlen, char *msg,
                          size_t msglen)
{
    assert(w && hdr && hlen && msg);
    uint64_t n;
    char why[200];
    if (wlen < 8) return snprintf(msg, msglen, "sae_weights.safetensors is shorter than 8 bytes"), -1;
    if (safetensors_json_len(w, &n, why, sizeof why))
        return snprintf(msg, msglen, "sae_weights.safetensors: %s", why), -1;
    if (n > wlen - 8) return snprintf(msg, msglen, "sae_weights.safetensors is shorter than its header says"), -1;
    *hdr = (const char *)w + 8;
    *hlen = (size_t)n;
    return 0;
}

int saelens_import(const char *cfg, size_t cfg_len, const unsigned char *w, size_t wlen, size_t max_bytes,
                   sae_params *p, json_t **saelens_info, char *msg, size_t msglen)
{
    assert(cfg && w && p && saelens_info);
    assert(msg && msglen > 0);
    saelens_in in;
    sae_config c;
    const char *hdr;
    size_t hlen;
    json_error_t je;
    memset(p, 0, sizeof *p);
    *saelens_info = NULL;
    json_t *j = cfg_len <= SAELENS_CFG_MAX ? json_loadb(cfg, cfg_len, JSON_REJECT_DUPLICATES, &je) : NULL;
    int rc = json_is_object(j) ? 0 : -1;
    if (rc) snprintf(msg, msglen, "cfg.json is not a JSON object%s%.200s", cfg_len > SAELENS_CFG_MAX ? " (over 1 MiB)"
                     : ": ", cfg_len > SAELENS_CFG_MAX ? "" : je.text);
    if (!rc) rc = saelens_cfg_read(j, &in, msg, msglen);
    if (!rc) rc = saelens_config(&in, max_bytes, &c, msg, msglen);
    if (!rc) rc = saelens_header(w, wlen, &hdr, &hlen, msg, msglen);
    if (!rc && sae_params_alloc(p, &c)) rc = -2;
    if (!rc) rc = saelens_read_all(&in, w, wlen, hdr, hlen, p, msg, msglen);
    if (!rc) saelens_fold(&in, p);
    if (!rc) {
        json_t *meta = json_object_get(j, "metadata");
        *saelens_info = json_pack("{s:s,s:O?}", "architecture", in.arch, "metadata", json_is_object(meta) ? meta : NULL);
        if (!*saelens_info) rc = -2;
    }
    if (rc == -2) snprintf(msg, msglen, "out of memory importing the SAE");
    if (rc) sae_params_free(p);
    json_decref(j);
    return rc;
}
