/* sae_gj — the private interface between sae_grad.c / sae.c and the two
 * architectures with their own parameters and loss terms: gated
 * (sae_gated.c) and jumprelu (sae_jumprelu.c). Private to core/.
 *
 * Such an arch replaces the generic activation + group-sparsity stages of
 * sae_loss_grad (encoder, decoder, reconstruction error and orth stay
 * shared). Its extras follow b_dec in the params layout (sae.h), so
 * sae_gj_extras() finds them in a params buffer or a gradient alike.
 * Contract of the shared stages the ops rely on: sae_backward zeroes the
 * gradient first, the decoder backward leaves d loss/d z (reconstruction
 * only) in w->dz, and the encoder backward *adds* colsum(d pre) to g.b_enc. */
#ifndef SAED_SAE_GJ_H
#define SAED_SAE_GJ_H
#include "sae.h"

typedef struct {
    /* From w->pre (B, n) (the encoder's pre-activations) and x (B, dim):
     * w->z (B, n), w->gnorm (B, n/s) = ||z_g|| (0 for closed groups), and
     * whatever the backward needs in w->arch_scratch. Returns the batch's sum
     * of the unweighted sparsity penalty; *extra gets the batch's sum of loss
     * terms that carry no coefficient (gated: the auxiliary reconstruction). */
    double (*forward)(const sae_params *p, const float *x, int B, sae_work *w, double *extra);
    /* w->dz (B, n): d loss/d z in, d loss/d pre out. Writes the extras'
     * gradients and any other part of grad (params layout) its own terms
     * reach besides the shared encoder backward. coef: sparsity coefficient. */
    void (*backward)(const sae_params *p, int B, float coef, sae_work *w, float *grad);
    /* Inference, in place: z (B, n) holds the pre-activations in, the
     * activations out (the same values forward gives); gnorm (B, n/s).
     * Returns 0 or -1 (out of memory). */
    int (*encode)(const sae_params *p, float *z, int B, float *gnorm);
} sae_gj_ops;

extern const sae_gj_ops sae_gated_ops, sae_jumprelu_ops;

/* The ops of c's arch, or NULL for archs that use the generic stages. */
static inline const sae_gj_ops *sae_gj_ops_for(const sae_config *c)
{
    return c->arch == SAE_GATED ? &sae_gated_ops : c->arch == SAE_JUMPRELU ? &sae_jumprelu_ops : NULL;
}

/* The arch extras of a buffer in the params layout (v: its views). */
static inline float *sae_gj_extras(const sae_config *c, const sae_view *v) { return v->b_dec + c->dim; }

size_t sae_gated_scratch_floats(const sae_config *c, int B);
size_t sae_jumprelu_scratch_floats(const sae_config *c, int B);

/* Floats of w->arch_scratch for B rows (0: none). */
static inline size_t sae_gj_scratch_floats(const sae_config *c, int B)
{
    return c->arch == SAE_GATED ? sae_gated_scratch_floats(c, B)
           : c->arch == SAE_JUMPRELU ? sae_jumprelu_scratch_floats(c, B) : 0;
}

/* jumprelu's initial threshold when sae.threshold is 0 (the paper's). */
#define SAE_JUMPRELU_THETA0 0.001f
void sae_jumprelu_init(sae_params *p);

/* Initial values of the extras after sae_params_init zeroed them. gated:
 * r_mag = b_mag = 0 (so W_mag = W_gate); jumprelu: theta = sae.threshold, or
 * SAE_JUMPRELU_THETA0 if that is 0. */
static inline void sae_gj_init_extras(sae_params *p)
{
    if (p->cfg.arch == SAE_JUMPRELU)
        sae_jumprelu_init(p);
}

#endif
