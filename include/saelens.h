/* saelens — an SAE as the folder SAELens 6 loads (SAE.load_from_disk:
 * cfg.json, sae_weights.safetensors, sparsity.safetensors), and back.
 * Pure: bytes and JSON in memory, no I/O.
 *
 * Export: an SAE with group_size 1 whose arch has an exact SAELens
 * equivalent (its registry row's saelens_exact: relu -> standard, or
 * jumprelu at a threshold; batchtopk and jumprelu -> jumprelu with a
 * per-latent threshold; topk; gated). The weights are saed's exported ones,
 * input scale folded in, so SAELens encodes raw rows exactly as
 * POST /v1/saes/{id}/encode does, and normalize_activations is "none".
 * Tensors under SAELens's names and shapes: W_enc (d_in, d_sae), b_enc
 * (d_sae) (gated: b_gate, r_mag, b_mag), W_dec (d_sae, d_in), b_dec (d_in),
 * jumprelu's threshold (d_sae); all F32.
 *
 * Import: cfg.json and sae_weights.safetensors of architecture standard,
 * jumprelu, topk or gated (F32; pre-6 configs without "architecture" are
 * read as SAELens does: standard, or topk when activation_fn is topk) become
 * saed parameters of relu, jumprelu, topk or gated with group_size 1:
 * apply_b_dec_to_input false is folded into b_enc (b_enc + W_enc^T b_dec;
 * gated's b_gate and b_mag likewise), topk's rescale_acts_by_decoder_norm is
 * folded into the weights (SAELens's own fold), jumprelu's threshold t
 * becomes log_theta with exp(log_theta) the float nearest t (t <= 0:
 * -FLT_MAX, which opens exactly where ReLU does), a log_threshold tensor is
 * taken as log_theta as it is. Anything else is refused with a message that
 * says what to change. */
#ifndef SAED_SAELENS_H
#define SAED_SAELENS_H
#include <jansson.h>
#include <stddef.h>
#include "sae.h"

#define SAELENS_CFG_MAX (1u << 20)       /* largest cfg.json read */
#define SAELENS_SPARSITY_EPS 1e-10       /* sparsity = log10(density + eps), SAELens's convention */
#define SAELENS_FORMAT_VERSION "6.0.0"   /* metadata.sae_lens_version: the cfg.json format written */

/* ---- export ---- */

/* The SAELens architecture of p and its sae_weights.safetensors (malloc'd, *len bytes).
 * 0; 1 when p has no exact SAELens equivalent (msg says why: groups, subspace); -1 out of memory. */
int saelens_weights(const sae_params *p, const char **arch, unsigned char **buf, size_t *len, char *msg,
                    size_t msglen);
/* cfg.json as SAELens 6 reads it (a new object): d_in, d_sae, architecture, dtype float32, device cpu,
 * apply_b_dec_to_input true, normalize_activations none, reshape_activations none, topk's k; metadata
 * with sae_lens_version, the model keys (model_name, hook_name, hook_layer, hook_head_index,
 * context_size, dataset_path, prepend_bos, model_from_pretrained_kwargs) from model (an object, or NULL:
 * the placeholders "unknown", 0, null, dataset_path "unknown"; metadata.saed.placeholders lists
 * which were filled so) and saed's own object saed (copied) under metadata.saed. The model keys are
 * also written at the top level, where SAELens 5 read them (with activation_fn_str, and topk's
 * activation_fn_kwargs). NULL when out of memory. */
json_t *saelens_cfg(const sae_params *p, const char *arch, const json_t *model, const json_t *saed);
/* sparsity.safetensors: tensor "sparsity" (n) = log10(density[i] + SAELENS_SPARSITY_EPS), density the
 * fraction of rows where latent i fired. malloc'd, *len bytes; NULL when out of memory. */
unsigned char *saelens_sparsity(const double *density, int n, size_t *len);

/* ---- import ---- */

/* cfg (cfg_len bytes of JSON) and w (wlen bytes of safetensors) into *p (allocated here; free with
 * sae_params_free), whose cfg is the saed config (group_size 1), and *saelens_info (a new object
 * {"architecture", "metadata"}: what the folder said, for the SAE's record). max_bytes caps the
 * parameters' memory. 0; -1 with msg for a folder saed cannot take (a 422); -2 when out of memory. */
int saelens_import(const char *cfg, size_t cfg_len, const unsigned char *w, size_t wlen, size_t max_bytes,
                   sae_params *p, json_t **saelens_info, char *msg, size_t msglen);

#endif
