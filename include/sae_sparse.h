/* sae_sparse — the decoder and both gradients over the kept groups alone,
 * for the registry rows whose codes are sparse by construction (a
 * `group_backward` hook: topk, batchtopk, subspace): z is 0 outside the
 * groups the forward keeps (gnorm > 0), and so is d loss/d pre, but for the
 * residual's (AuxK's) own entries. Only the encoder's product stays dense.
 *
 * One pass (core/sae_loss.c drives it; the dense pass is the reference it
 * must equal, tests/test_sparse.c):
 *   collect   the entries (row, latent, z) of every kept group, row by row;
 *             more than SAE_SPARSE_FRAC of B*n: the caller runs dense instead
 *   decode    x_hat[b] = b_dec + sum over row b's entries of z d_i      (P rows)
 *   backward  dz_e = dx_hat[b] . d_i per entry, the row's group_backward per
 *             kept group (dz_g -> dpre_g); entries sorted by latent (counting
 *             sort); per latent: g.W_dec[i] = sum z dx_hat[b]             (P latents)
 *             g.b_dec = sum_b dx_hat[b]; orth; the residual records its
 *             (row, latent, dpre) entries here instead of into a dense dz;
 *             all entries by latent again: gencT[i] = sum dpre xc[b],
 *             colsum[i] = sum dpre                                         (P latents)
 *             g.W_enc[:, i] = gencT[i] for latents with entries, g.b_enc = colsum,
 *             g.b_dec -= W_enc colsum
 * Everything else in the gradient is 0 (the buffer is zeroed first). */
#ifndef SAED_SAE_SPARSE_H
#define SAED_SAE_SPARSE_H
#include "par.h"
#include "sae.h"

#define SAE_SPARSE_FRAC 0.0625 /* entries / (B n) above which a pass runs dense */

typedef struct sae_sparse sae_sparse;
struct sae_arch_def;

/* Buffers for passes of up to max_rows rows; NULL when out of memory. */
sae_sparse *sae_sparse_create(const sae_config *c, int max_rows);
void sae_sparse_free(sae_sparse *s);
size_t sae_sparse_bytes(const sae_config *c, int max_rows);

/* After the row's forward (w->z, w->gnorm for B rows): the kept groups' entries. 0, or -1 when they
 * are more than SAE_SPARSE_FRAC of B*n (nothing to undo: run the dense pass). */
int sae_sparse_collect(sae_sparse *s, const sae_config *c, const sae_work *w, int B);
/* x_hat (B, dim) = b_dec + the entries' z d_i, on pool. */
void sae_sparse_decode(const sae_sparse *s, const sae_params *p, par_pool *pool, int B, float *x_hat);
/* The gradient (grad: n_params, overwritten) once w->dx_hat holds d loss/d x_hat; x (B, dim) the rows.
 * Returns the residual's weighted sum over the batch (0 without one). */
double sae_sparse_backward(sae_sparse *s, const struct sae_arch_def *a, const sae_params *p, const float *x, int B,
                           const sae_pass *pass, sae_work *w, float *grad);

/* The residual's entry (row b, latent i, its d loss/d pre) while a sparse backward runs: 1 if it was
 * recorded (the caller adds nothing to w->dz), 0 outside one (s may be NULL). */
int sae_sparse_record(sae_sparse *s, int b, int i, float dpre);

#endif
