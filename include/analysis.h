/* analysis — the numbers behind the `analyze` and `pca` jobs: pure functions,
 * no I/O, no threads of their own (BLAS may use its threads).
 *
 * Activations enter as sparse rows (CSR) built from dense batches of z: a
 * latent FIRES in a row when its activation is finite and non-zero (> 0 for
 * the ReLU architectures; subspace codes take either sign). Statistics of
 * an activation (mean, max, histogram, the pca job's "fires most") use its
 * magnitude |z|, which is z itself for the ReLU architectures. Inputs are float32; sums, norms
 * and small matrices are accumulated in double; the large products (decoder
 * cosines, decoder rows against circle planes) are sgemm in float (~1e-6).
 * No function keeps hidden state: a finished analysis_cooc, like any input,
 * may be read by several threads at once.
 *
 * Files: analysis_sparse.c (CSR, errors, top-K lists, percentiles),
 * analysis_eig.c (symmetric eigen-solver), analysis_stats.c (per-latent
 * statistics and histograms), analysis_jaccard.c (exact co-activation),
 * analysis_cosine.c (decoder neighbours), analysis_planes.c (group planes),
 * analysis_recovery.c (ground-truth circle recovery and circle FVE),
 * analysis_pca.c (PCA and the pca job's preparation), analysis_cluster.c
 * (the "train normally, then cluster" grouping baseline).
 *
 * Eigen-solver choice: this OpenBLAS ships no lapacke.h, so symmetric
 * eigenproblems (group Gram matrices s x s, PCA covariance or Gram matrices)
 * use a cyclic Jacobi solver in double (analysis_sym_eig). It is accurate to
 * ~1e-12 relative but costs ~10 sweeps of O(p^3) (measured on this 2-core
 * machine under load: p = 256 0.3 s, p = 512 ~4.5 s, p = 1000 ~70 s), so PCA refuses
 * eigenproblems larger than ANALYSIS_EIG_MAX. PCA of reconstructions from L
 * latents (analysis_pca_latents, the pca job's route) solves an L x L problem
 * whatever dim and the number of rows.
 *
 * Errors: functions return ANALYSIS_OK (0) or a negative ANALYSIS_E* code;
 * analysis_strerror() gives a message that says what to do.
 *
 * Preconditions: pointer arguments are non-NULL unless a comment allows NULL,
 * and output buffers do not overlap the inputs. The sizes and ids a function
 * checks come back as ANALYSIS_EINVAL; what it does not check (an index into
 * a finished structure, a shape that has to agree) is the caller's promise,
 * asserted at the top of the function (compiled out under NDEBUG). */
#ifndef SAED_ANALYSIS_H
#define SAED_ANALYSIS_H
#include <stddef.h>
#include <stdint.h>

enum {
    ANALYSIS_OK = 0,
    ANALYSIS_ENOMEM = -1,    /* allocation failed */
    ANALYSIS_EINVAL = -2,    /* a size, index or count out of range */
    ANALYSIS_ETOOBIG = -3,   /* eigenproblem larger than ANALYSIS_EIG_MAX */
    ANALYSIS_ECALLBACK = -4, /* the caller's encode callback failed */
};
const char *analysis_strerror(int code);

#define ANALYSIS_EIG_MAX 512       /* largest PCA eigenproblem: min(rows, dim), or L latents (~4 s) */
#define ANALYSIS_HIST_BINS 32      /* default activation histogram bins (a power of two) */
#define ANALYSIS_INPLANE_FRAC 0.99 /* the API's "belongs to a plane" threshold */
#define ANALYSIS_DUP_COS 0.99      /* default near-duplicate decoder cosine */

/* ---------------------------------------------------------------- sparse rows */

typedef struct {
    int n;             /* latents per row */
    int rows;          /* B */
    int64_t nnz;       /* firing entries */
    int64_t *row_ptr;  /* (rows + 1) row r is entries row_ptr[r] .. row_ptr[r+1]-1 */
    int32_t *idx;      /* (nnz) latent ids, increasing within a row */
    float *val;        /* (nnz) activations, all non-zero; may be NULL where only the pattern is used */
    int64_t cap_rows;  /* allocated rows (row_ptr holds cap_rows + 1) */
    int64_t cap_nnz;   /* allocated entries */
} analysis_csr;

/* A zeroed, empty CSR (no allocation). */
void analysis_csr_init(analysis_csr *c);
/* Rebuilds c from dense z (B, n), reusing c's buffers when they are large enough. */
int analysis_csr_from_dense(analysis_csr *c, const float *z, int B, int n);
void analysis_csr_free(analysis_csr *c);

/* A top-K list sorted by value descending, then index ascending (so ties are
 * deterministic). *len entries are held (0 <= *len <= K); inserts (j, v) if it
 * belongs. K < 1: nothing. */
void analysis_topk_push(int32_t *idx /* (K) */, float *val /* (K) */, int K, int *len, int32_t j, float v);

/* The q-quantile (0..1) of sorted v (n >= 1), linear interpolation between
 * order statistics at q (n - 1) (NumPy's default "linear" method). */
double analysis_quantile_sorted(const float *v, int n, double q);

/* Makes the largest-magnitude coordinate of v (dim >= 1) positive (the first one on
 * ties): the deterministic sign of singular vectors and PCA components.
 * Returns the sign applied (+1 or -1). */
int analysis_sign_fix(float *v, int dim);

/* ---------------------------------------------------------------- eigen-solver */

/* Eigen-decomposition of the symmetric a (p, p), p >= 1, by cyclic Jacobi rotations in
 * double, on a private copy: w (p) eigenvalues in descending order, v (p, p)
 * row k = unit eigenvector k (v = NULL: values only; w and v must not overlap,
 * either may be a itself). Signs are not fixed.
 * Returns ANALYSIS_OK or ANALYSIS_ENOMEM. */
int analysis_sym_eig(const double *a, int p, double *w, double *v);

/* ---------------------------------------------------------------- group offsets */

/* The group-level analyses take decoder rows laid out group by group, group g being rows
 * goff[g] .. goff[g+1]-1 (goff (G + 1)); analysis_offsets.c. */
int32_t *analysis_offsets_equal(int n, int s); /* (n/s + 1) g*s, malloc'd; NULL: out of memory */
int analysis_offsets_ok(const int32_t *goff, int G, int n); /* 1: 0 = goff[0] < goff[1] < ... < goff[G] = n */
int analysis_offsets_max(const int32_t *goff, int G);       /* the largest group's size */

/* ---------------------------------------------------------------- latent statistics */

/* One pass over batches. The histogram of latent i counts its firing
 * activations' magnitudes |z| in n_bins equal bins over [0, hi_i), hi_i = the smallest power of
 * two strictly greater than its max (2^(floor(log2 max) + 1)): when a larger
 * value arrives, hi doubles and adjacent bins merge. Because hi and n_bins are
 * powers of two, bin = floor(v n_bins / hi) is exact, so the counts equal a
 * two-pass histogram with those edges, whatever the batch order. */
typedef struct {
    int n;                /* latents */
    int group_size;       /* s; groups are latents g*s .. g*s+s-1 */
    int n_bins;           /* histogram bins, a power of two */
    int64_t rows;         /* rows seen */
    int64_t *count;       /* (n) rows where the latent fired */
    double *sum;          /* (n) sum of its activations */
    float *max;           /* (n) largest activation (0 if it never fired) */
    float *hist_hi;       /* (n) upper histogram edge hi_i (0 if it never fired) */
    int64_t *hist;        /* (n, n_bins) */
    int64_t *group_count; /* (n / s) rows where any member fired */
} analysis_stats;

typedef struct {
    double density;    /* count / rows */
    double mean_act;   /* sum / rows: mean over ALL rows (the API's mean_act) */
    double mean_fired; /* sum / count: mean over the rows where it fired (0 if none) */
    float max_act;     /* largest activation */
} analysis_latent_summary;

int analysis_stats_init(analysis_stats *s, int n, int group_size, int n_bins);
int analysis_stats_add(analysis_stats *s, const analysis_csr *z); /* z->val required */
/* Latent i (0 <= i < n) and group g (0 <= g < n / group_size) of an initialised s. */
void analysis_stats_latent(const analysis_stats *s, int i, analysis_latent_summary *out);
void analysis_stats_edges(const analysis_stats *s, int i, float *edges /* (n_bins + 1) */);
double analysis_stats_group_density(const analysis_stats *s, int g);
void analysis_stats_free(analysis_stats *s);

/* ---------------------------------------------------------------- Jaccard */

/* Exact co-activation without an n x n matrix: the firing pattern is kept
 * (row -> latents, then latent -> rows after finish, 4 bytes per entry each
 * way), and J(i, .) is counted for one latent at a time into an (n) counter by
 * walking the rows where i fires; a full sweep costs sum over rows of l0^2.
 * J(i,j) = |i and j| / |i or j|; 0 when neither fires (also J(i,i) for a dead
 * latent, else J(i,i) = 1). */
typedef struct {
    int n;              /* latents */
    int rows;           /* rows added */
    int64_t nnz;        /* firing entries */
    int64_t *row_ptr;   /* (rows + 1) */
    int32_t *idx;       /* (nnz) firing latents of each row, increasing */
    int64_t *count;     /* (n) rows where each latent fired */
    int64_t *col_ptr;   /* (n + 1) after finish: latent i's rows are col_rows[col_ptr[i] ..] */
    int32_t *col_rows;  /* (nnz) after finish, increasing within a latent */
    int64_t cap_rows, cap_nnz;
} analysis_cooc;

int analysis_cooc_init(analysis_cooc *c, int n);
/* Appends the pattern of z's rows (z->val is not used). */
int analysis_cooc_add(analysis_cooc *c, const analysis_csr *z);
/* Builds the latent -> rows index; call once after the last add. */
int analysis_cooc_finish(analysis_cooc *c);
void analysis_cooc_free(analysis_cooc *c);

/* J(i, j) after finish; 0 <= i, j < n. */
double analysis_jaccard_pair(const analysis_cooc *c, int i, int j);
/* The full row J(i, 0..n-1). */
int analysis_jaccard_row(const analysis_cooc *c, int i, float *row /* (n) */);
/* The matrix J(latents[a], latents[b]) for the /jaccard endpoint. */
int analysis_jaccard_matrix(const analysis_cooc *c, const int32_t *latents, int L, float *out /* (L, L) */);
/* Every latent's top-K neighbours by J (j != i, J > 0; slots past the last are
 * j = -1, J = 0), and, when group_j is non-NULL, each group's within-group
 * Jaccard: the mean of J over its s(s-1)/2 member pairs (0 when s = 1). */
int analysis_jaccard_neighbors(const analysis_cooc *c, int K, int group_size,
                               int32_t *nb_idx /* (n, K) */, float *nb_j /* (n, K) */,
                               float *group_j /* (n / group_size) or NULL */);

/* ---------------------------------------------------------------- decoder cosine */

/* Top-K neighbours of every decoder row by signed cosine (j != i), computed by
 * sgemm over blocks of rows (never n x n at once). A zero row has cosine 0
 * with everything. Near-duplicates: pairs i < j with cos > dup_cos, listed in
 * order of i then j; the first dup_cap are written to dups (NULL: none) and
 * *n_dups (if non-NULL) gets how many there are. */
int analysis_decoder_neighbors(const float *W_dec /* (n, dim) */, int n, int dim, int K, float dup_cos,
                               int32_t *nb_idx /* (n, K) */, float *nb_cos /* (n, K) */,
                               int32_t *dups /* (dup_cap, 2) */, int64_t dup_cap, int64_t *n_dups);
/* Largest cosine between two different members of each group (0 when s = 1). */
int analysis_group_max_cos(const float *W_dec /* (n, dim) */, int n, int dim, int group_size,
                           float *max_cos /* (n / group_size) */);
/* The same for groups of any size: rows goff[g] .. goff[g+1]-1 (analysis_offsets.c). */
int analysis_group_max_cos_groups(const float *W_dec /* (n, dim) */, int n, int dim, const int32_t *goff /* (G+1) */,
                                  int G, float *max_cos /* (G) */);
/* Cosine matrix of rows (m, dim), m, dim >= 1; out must not overlap rows. */
void analysis_cosine_matrix(const float *rows /* (m, dim) */, int m, int dim, float *out /* (m, m) */);

/* ---------------------------------------------------------------- group planes */

/* For a group's decoder rows (s, dim): singular values sv (s) descending, the
 * orthonormal basis (2, dim) of the top-2 right singular vectors (signs by
 * analysis_sign_fix), each member's coordinates (s, 2) in it and the member
 * cosine matrix (s, s). Returns the basis rows filled (0..2; a row past the
 * rank is zero) or an error. */
int analysis_group_plane(const float *rows /* (s, dim) */, int s, int dim, float *sv /* (s) */,
                         float *basis /* (2, dim) */, float *coords /* (s, 2) */, float *cos /* (s, s) */);
/* out = (x - b_dec) . basis^T; b_dec is subtracted first (NULL: nothing). B >= 0,
 * dim >= 1; out must not overlap x or basis. */
void analysis_plane_project(const float *basis /* (2, dim) */, const float *b_dec /* (dim) */,
                            const float *x /* (B, dim) */, int B, int dim, float *out /* (B, 2) */);

/* ---------------------------------------------------------------- circle recovery */

/* Orthonormalises each plane (a_i, b_i) by Gram-Schmidt in double; a
 * degenerate second vector becomes zero. q must not overlap planes (q0 is
 * written before b_i is read). */
void analysis_orthonormalize_planes(const float *planes /* (nc, 2, dim) */, int nc, int dim,
                                    float *q /* (nc, 2, dim) */);

/* Kept fraction of a decoder row d in a plane = ||proj(d)|| / ||d|| (a norm
 * ratio, not squared). A row belongs to its best plane when the fraction is
 * >= min_frac (ANALYSIS_INPLANE_FRAC). Rows with alive[i] == 0 (alive may be
 * NULL: all alive) are left out of the counts (their best circle is still
 * reported). */
typedef struct {
    int n, n_circles, group_size, max_k; /* group_size: 0 from analysis_recovery_run_groups */
    int n_groups;            /* G */
    int32_t *row_circle;     /* (n) circle whose plane keeps most of row i */
    float *row_frac;         /* (n) that kept fraction (0 for a zero row) */
    int32_t *circle_rows;    /* (n_circles) counted rows in each circle's plane */
    int64_t *per_plane_hist; /* (max_k + 1) circles with exactly k rows in their plane; last bin = max_k or more */
    int circles_found;       /* circles with >= 1 row in their plane */
    int circles_found_groups;/* circles with >= 1 group whose rows all lie in its plane (and are alive) */
    int rows_counted;        /* alive rows */
    int rows_inplane;        /* alive rows in their best plane */
    double inplane_frac;     /* rows_inplane / rows_counted (0 if none) */
    int32_t *group_circle;   /* (G) circle with the largest mean kept fraction over the members */
    float *group_fit;        /* (G) that mean */
} analysis_recovery;

int analysis_recovery_run(const float *W_dec /* (n, dim) */, int n, int dim, int group_size,
                          const float *planes /* (nc, 2, dim) */, int nc, const unsigned char *alive /* (n) */,
                          double min_frac, int max_k, analysis_recovery *out);
/* The same for groups of any size, rows goff[g] .. goff[g+1]-1 (goff (G + 1)). */
int analysis_recovery_run_groups(const float *W_dec /* (n, dim) */, int n, int dim, const int32_t *goff, int G,
                                 const float *planes /* (nc, 2, dim) */, int nc, const unsigned char *alive /* (n) */,
                                 double min_frac, int max_k, analysis_recovery *out);
void analysis_recovery_free(analysis_recovery *r);

/* ---------------------------------------------------------------- recovery by subspace */

#define ANALYSIS_SUBSPACE_CUT 0.9     /* a group holds a plane: both principal-angle cosines >= this */
#define ANALYSIS_SUBSPACE_CUT_99 0.99 /* the strict cut */

/* Each group of W_dec's rows (groups of s) scored as a subspace against the
 * orthonormal planes (analysis_orthonormalize_planes): the smaller cosine of
 * the principal angles between the group's span and its best plane
 * (analysis_subspace.c). hist[k] counts circles held by exactly k groups
 * (the last bin: k >= max_k). */
typedef struct {
    int n_groups, n_circles, max_k;
    int *group_circle;        /* (G) the best plane, or -1 */
    float *group_cos;         /* (G) its smaller principal-angle cosine (0 for a group of rank < 2) */
    int64_t *hist, *hist_99;  /* (max_k + 1) at the cuts 0.9 and 0.99 */
    int circles_one_group, circles_one_group_99; /* hist[1], hist_99[1] */
    int circles_held, circles_held_99;           /* circles with at least one group */
    int groups_holding, groups_holding_99;       /* groups that hold a circle (their sum over circles) */
} analysis_subspace;

int analysis_subspace_run(const float *W_dec /* (n, dim) */, int n, int dim, int s,
                          const float *planes /* (nc, 2, dim) orthonormal */, int nc, int max_k,
                          analysis_subspace *out);
/* The same for groups of any size, rows goff[g] .. goff[g+1]-1. */
int analysis_subspace_run_groups(const float *W_dec /* (n, dim) */, int n, int dim, const int32_t *goff /* (G+1) */,
                                 int G, const float *planes /* (nc, 2, dim) */, int nc, int max_k,
                                 analysis_subspace *out);
void analysis_subspace_free(analysis_subspace *r);

/* Cluster-then-retrain: the rows (m, dim) of a decoder grouped into planes (s must be 2;
 * analysis_subspace.c): planes proposed by each row and its neighbours by |cos| >= min_cos, taken by
 * how many rows they hold, each becoming a cluster once at least min_rows (3 .. 18) of its rows are
 * still free; up to cap clusters, most supported first, as orthonormal bases (the members' top two
 * principal directions) into bases (cap, 2, dim), their count in *n_out. ANALYSIS_OK,
 * ANALYSIS_EINVAL (s is not 2) or ANALYSIS_ENOMEM. */
int analysis_subspace_cluster(const float *rows, int m, int dim, int s, float min_cos, int min_rows, int cap,
                              float *bases, int *n_out);

/* Duplicate groups: pairs of the groups ids (m) (groups of s rows of W_dec, s <= ANALYSIS_DUP_MAX_S)
 * whose spans' largest principal-angle cosine is above cut (in (0, 1]), i.e. that share a direction;
 * (g, h) with g before h in ids, into pairs (cap, 2), all of them counted in *n_pairs (even past cap).
 * ANALYSIS_OK or ANALYSIS_ENOMEM. */
#define ANALYSIS_DUP_MAX_S 64
int analysis_subspace_duplicates(const float *W_dec /* (n, dim) */, int dim, int s, const int32_t *ids, int m,
                                 float cut, int32_t *pairs, int64_t cap, int64_t *n_pairs);

/* x (rows, dim), rows >= 1 -> x_hat (rows, dim); returns 0 or non-zero on failure. */
typedef int (*analysis_encode_fn)(void *ctx, const float *x, int rows, float *x_hat);
/* The encode callback for an SAE: ctx is a const sae_params * (include/sae.h). */
int analysis_sae_encode(void *ctx, const float *x, int rows, float *x_hat);

/* Circle i alone: x_t = a_i cos(2 pi t / T) + b_i sin(2 pi t / T), t < T (the
 * raw plane vectors, r = 1), through fn; fve[i] = 1 - SSE / SST with SST the
 * squared distance of the points from their mean. Circles are batched so one
 * call holds up to 4096 rows. */
int analysis_circle_fve(const float *planes /* (nc, 2, dim) */, int nc, int dim, int T,
                        analysis_encode_fn fn, void *ctx, float *fve /* (nc) */);
/* Median, 10th percentile (analysis_quantile_sorted) and a histogram of n_bins
 * equal bins over [0, 1] (below 0 counts in the first bin, >= 1 in the last). */
int analysis_fve_summary(const float *fve /* (nc) */, int nc, int n_bins, double *median, double *p10,
                         int64_t *hist /* (n_bins) */);

/* ---------------------------------------------------------------- PCA */

typedef struct {
    int m, dim, c;         /* rows, width, components */
    float *mean;           /* (dim) mean row */
    float *components;     /* (c, dim) orthonormal (a zero row past the rank), signs by analysis_sign_fix */
    double *variance;      /* (c) explained variance: eigenvalue / (m - 1) */
    double *ratio;         /* (c) variance / total_variance */
    double total_variance; /* sum over dims of the variance (ddof 1) */
    float *coords;         /* (m, c) (x - mean) . component */
} analysis_pca_result;

/* PCA of X (m, dim), m >= 2, 1 <= c <= min(m, dim), through the smaller of
 * the covariance (dim, dim) and Gram (m, m) matrices; ANALYSIS_ETOOBIG when
 * min(m, dim) > ANALYSIS_EIG_MAX. */
int analysis_pca(const float *X, int m, int dim, int c, analysis_pca_result *out);
void analysis_pca_free(analysis_pca_result *r);

/* The pca job: the L latents with the largest total activation over z's rows
 * (ties: lower id first; only latents that fired), written to out; returns how
 * many (<= L), score (may be NULL) gets each one's total. */
int analysis_top_latents(const analysis_csr *z, int L, int32_t *out /* (L) */, double *score /* (L) */);
/* x_hat = sum over the chosen latents of z_i d_i + b_dec, for each of z's rows
 * (x must not overlap W_dec). */
int analysis_reconstruct_latents(const analysis_csr *z, const int32_t *latents, int L,
                                 const float *W_dec /* (n, dim) */, const float *b_dec /* (dim) or NULL */,
                                 int dim, float *x /* (z->rows, dim) */);
/* The same PCA as analysis_pca on those reconstructions, solved exactly in the
 * span of the chosen decoder rows: an L x L problem (L <= ANALYSIS_EIG_MAX,
 * else ANALYSIS_ETOOBIG), any dim and number of rows. */
int analysis_pca_latents(const analysis_csr *z, const int32_t *latents, int L, const float *W_dec,
                         const float *b_dec, int dim, int c, analysis_pca_result *out);

/* ---------------------------------------------------------------- clustering baseline */

/* Groups the latents of an ordinary SAE into groups of s (n % s == 0) from
 * neighbour lists (n, K) (decoder cosine or Jaccard; j = -1 slots ignored):
 * the candidate pairs with similarity >= min_sim are taken in order of
 * similarity descending (ties: smaller i, then j) and a pair joins its two
 * clusters when the union has at most s members (Kruskal's algorithm with a
 * size cap; for s = 2 it is greedy maximum-weight matching). Full clusters
 * become groups ordered by smallest member; the rest, ordered by size
 * descending then smallest member, are laid out member by member (each sorted)
 * and cut into groups of s (so a leftover cluster may be split).
 * order (n): group g is order[g*s .. g*s+s-1]. */
int analysis_cluster_greedy(int n, int s, int K, const int32_t *nb_idx /* (n, K) */,
                            const float *nb_sim /* (n, K) */, float min_sim, int32_t *order /* (n) */);

#endif
