/* sae_fast — the relu SAE's loss and gradient in blocks of latents, sparse
 * where the batch is sparse (design: include/sae_fast.h).
 *
 * One call (P: on the pool, split by thread index; thread t always owns the
 * same rows, par_range(B, 1, t, T), and so its rows' x_hat and dx):
 *   P rows: xc = x - b_dec, x_hat = b_dec
 *   for each block of latents [i0, i0 + l):
 *     P rows, R at a time: tile (R, l) = xc[rows] W_enc[:, block]     GEMM per tile
 *       then for each row of the tile: flag pre + b_enc > cut (a vectorised
 *       pass; cut 0, or with a threshold the bound below which a group cannot
 *       reach its window; a row with no flag is done), then 8 flags at a
 *       time, skipped while all zero: group norms,
 *       threshold, entries (row, latent, z, sparsity gradient) into the
 *       thread's segment; a thread that overflows stops the others
 *     sparse block: P rows: x_hat[r] += z d_i over the thread's new entries
 *     dense block (a thread overflowed): its entries are dropped;
 *       pre = xc W_enc[:, block] (B, l), P groups: z, gnorm;
 *       x_hat += z W_dec[block]                                       GEMMs
 *   P rows: dx = 2 (x_hat - x) / B, squared error
 *   gradient:
 *     dense blocks: pre again (GEMM), z again; gW_dec[block] = z^T dx,
 *       dz = dx W_dec[block]^T; P groups: dpre = [u > 0] (dz + s), colsum;
 *       gW_enc[:, block] = xc^T dpre                                  GEMMs
 *     sparse blocks: counting sort of the entries by latent; P latents:
 *       gW_dec[i] = sum z dx, gencT[i] = sum dpre xc, colsum[i] = sum dpre;
 *       P latent tiles: gW_enc[:, i] = gencT[i]
 *     orth term; g.b_enc = colsum; g.b_dec = sum dx - W_enc colsum
 *
 * An entry is a latent with u = pre + b_enc > 0 in a group the threshold
 * keeps, or in a zeroed group within the threshold's kernel window (z = 0:
 * only its jump term, core/sae_relu.c). Entries of window groups also keep u;
 * once dx is known a pass over them adds each group's jump term q_g/(eps
 * rho_g) u_i to their sparsity gradient (ent_s). A dense block computes the
 * same from its pre-activations. */
#include "sae_fast.h"
#include "par_gemm.h"
#include "sae_arch.h"
#include "sae_stage.h"
#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SAE_FAST_BLOCK_FLOATS (4u << 20) /* a block's pre-activations (B, L): at most 16 MiB */
#define SAE_FAST_MIN_BLOCK 64            /* latents per block at least (very large batches) */
#define SAE_FAST_TILE 32                 /* tile edge of the gencT transposition */
#define SAE_FAST_ENC_TILE (128u << 10)   /* a thread's encoder tile (R, L): at most 512 KiB, in L2 */
#define SAE_FAST_MIN_TILE_ROWS 16

/* What a thread's part of a pass adds up. */
typedef struct {
    double sse, sparsity;
    size_t active, groups;
    int overflow; /* the scan: more entries than the block may hold */
} sae_fast_sums;

struct sae_fast {
    sae_config c;
    par_pool *pool;          /* not owned; NULL: the caller's thread */
    int T;                   /* threads */
    int max_rows, L;         /* rows per call at most; latents per block */
    int n_blocks;
    double frac;             /* a thread's rows of a block may hold frac * rows * L entries */
    size_t seg_cap;          /* entries per thread segment */
    sae_path path;
    double gemm_s;           /* the last encode pass: thread 0's seconds in its products */
    atomic_int overflowed;   /* the encode pass: some thread overflowed, so the block runs dense */
    int timing;              /* 1: phases add their time to stats.seconds */
    sae_fast_stats stats;
    float *xc;               /* (max_rows, dim) x - b_dec */
    float *x_hat;            /* (max_rows, dim) reconstructions */
    float *dx;               /* (max_rows, dim) d loss/d x_hat */
    int R;                   /* rows per encoder tile */
    float *tile;             /* (T, R, L) each thread's encoder tile: xc W_enc for R rows of the block */
    float *pre;              /* (max_rows, L) a dense block's xc W_enc, without b_enc; dense backward: dpre */
    float *z;                /* (max_rows, L) a dense block's activations, then dz */
    float *gnorm;            /* (max_rows, L/s) a dense block's kept group norms; 0 if silent or zeroed */
    unsigned char *dense;    /* (n_blocks) 1 = the block ran dense in this call */
    int32_t *ent_row;        /* (T * seg_cap) batch row of each entry */
    int32_t *ent_i;          /* (T * seg_cap) its latent */
    float *ent_z;            /* (T * seg_cap) its activation (0 in a zeroed group) */
    float *ent_s;            /* (T * seg_cap) its sparsity gradient coef/B * z / ||z_g|| (0 if zeroed), and
                              * after sae_fast_jump_part the threshold's jump term */
    float *ent_u;            /* (T * seg_cap) its ReLU(pre) if its group is in the threshold's window, else 0 */
    size_t *seg_used;        /* (T) end of the entries in each thread's segment */
    size_t *seg_mark;        /* (T) ... before the current block */
    size_t *lat_ptr;         /* (n + 1) sorted entries of latent i: [lat_ptr[i], lat_ptr[i+1]) */
    int32_t *srt_row;        /* (T * seg_cap) the sorted entries' rows */
    float *srt_z, *srt_s;    /* (T * seg_cap) their z and sparsity gradient */
    float *gencT;            /* (n, dim) latent-major encoder gradient of the sparse entries */
    float *colsum;           /* (n) column sums of d loss/d pre */
    float *acc;              /* (T, 2 dim) per-thread accumulators of the latent pass */
    unsigned char *flag;     /* (T, L + 8) per-thread scan scratch: [pre + b_enc > cut] of one row */
    sae_fast_sums *part;     /* (T) per-thread sums of the current pass */
};

/* Everything a parallel region reads. */
typedef struct {
    sae_fast *f;
    const sae_params *p;
    const float *x;          /* (B, dim) the call's rows */
    int B;
    int i0, l;               /* the current block: latents [i0, i0 + l) */
    float sc;                /* coef / B */
    float thr;               /* the pass's threshold (0: none) */
    float cut;               /* the scan's cut (sae_fast_scan_cut), once per call */
    sae_view *g;             /* NULL: forward only */
    unsigned char *fired;    /* (n) or NULL */
    int forward;             /* the activation pass counts and marks (forward) or only recomputes */
} sae_fast_job;

/* Latents per block for c and max_rows (block 0), or block rounded up to the group size. */
static int sae_fast_block_size(const sae_config *c, int max_rows, int block)
{
    size_t L = block > 0 ? (size_t)block : SAE_FAST_BLOCK_FLOATS / (size_t)max_rows / 32 * 32;
    size_t s = (size_t)c->group_size, n = (size_t)c->n_latents;
    if (block <= 0 && L < SAE_FAST_MIN_BLOCK)
        L = SAE_FAST_MIN_BLOCK;
    L = (L + s - 1) / s * s;
    return (int)(L < n ? L : n);
}

/* Rows per encoder tile for blocks of L latents. */
static int sae_fast_tile_rows(int max_rows, int L)
{
    int R = (int)(SAE_FAST_ENC_TILE / (unsigned)L);
    R = R < SAE_FAST_MIN_TILE_ROWS ? SAE_FAST_MIN_TILE_ROWS : R;
    return R < max_rows ? R : max_rows;
}

/* Entries one thread's rows of one block may hold: frac of rows * L. */
static size_t sae_fast_limit_of(double frac, size_t rows, size_t L) { return (size_t)(frac * (double)rows * L); }

/* Entries per thread segment: every block at the limit for the largest share of rows. */
static size_t sae_fast_seg_cap_of(double frac, size_t n, size_t max_rows, size_t L, size_t T)
{
    size_t blocks = (n + L - 1) / L;
    return blocks * sae_fast_limit_of(frac, (max_rows + T - 1) / T, L) + 1;
}

size_t sae_fast_bytes(const sae_config *c, int max_rows, int threads)
{
    size_t n = (size_t)c->n_latents, d = (size_t)c->dim, B = (size_t)max_rows, T = (size_t)threads;
    size_t L = (size_t)sae_fast_block_size(c, max_rows, 0), s = (size_t)c->group_size;
    size_t seg = sae_fast_seg_cap_of(SAE_FAST_DENSE_ABOVE, n, B, L, T);
    size_t R = (size_t)sae_fast_tile_rows(max_rows, (int)L);
    size_t floats = 3 * B * d + 2 * B * L + B * (L / s) + n * d + n + T * 2 * d + T * R * L;
    return floats * sizeof(float) + (n + 1 + 2 * T) * sizeof(size_t) + T * seg * 8 * 4 +
           T * (sizeof(sae_fast_sums) + L + 8) + n / L + 1;
}

static int sae_fast_alloc_entries(sae_fast *f)
{
    free(f->ent_row), free(f->ent_i), free(f->ent_z), free(f->ent_s), free(f->ent_u);
    free(f->srt_row), free(f->srt_z), free(f->srt_s);
    f->seg_cap = sae_fast_seg_cap_of(f->frac, (size_t)f->c.n_latents, (size_t)f->max_rows, (size_t)f->L,
                                     (size_t)f->T);
    size_t all = f->seg_cap * (size_t)f->T;
    f->ent_row = malloc(all * sizeof(int32_t));
    f->ent_i = malloc(all * sizeof(int32_t));
    f->ent_z = malloc(all * sizeof(float));
    f->ent_s = malloc(all * sizeof(float));
    f->ent_u = malloc(all * sizeof(float));
    f->srt_row = malloc(all * sizeof(int32_t));
    f->srt_z = malloc(all * sizeof(float));
    f->srt_s = malloc(all * sizeof(float));
    return f->ent_row && f->ent_i && f->ent_z && f->ent_s && f->ent_u && f->srt_row && f->srt_z && f->srt_s ? 0 : -1;
}

sae_fast *sae_fast_create(const sae_config *c, int max_rows, int block, par_pool *pool)
{
    sae_fast *f = calloc(1, sizeof *f);
    if (!f || max_rows < 1)
        return free(f), NULL;
    f->c = *c;
    f->pool = pool;
    f->T = par_threads(pool);
    f->max_rows = max_rows;
    f->L = sae_fast_block_size(c, max_rows, block);
    f->n_blocks = (c->n_latents + f->L - 1) / f->L;
    f->frac = SAE_FAST_DENSE_ABOVE;
    f->timing = 1;
    size_t L = (size_t)f->L, n = (size_t)c->n_latents, d = (size_t)c->dim, B = (size_t)max_rows;
    size_t T = (size_t)f->T;
    f->xc = malloc(B * d * sizeof(float));
    f->x_hat = malloc(B * d * sizeof(float));
    f->dx = malloc(B * d * sizeof(float));
    f->R = sae_fast_tile_rows(max_rows, f->L);
    f->tile = malloc(T * (size_t)f->R * L * sizeof(float));
    f->pre = malloc(B * L * sizeof(float));
    f->z = malloc(B * L * sizeof(float));
    f->gnorm = malloc(B * (L / (size_t)c->group_size) * sizeof(float));
    f->dense = malloc((size_t)f->n_blocks);
    f->seg_used = malloc(T * sizeof(size_t));
    f->seg_mark = malloc(T * sizeof(size_t));
    f->lat_ptr = malloc((n + 1) * sizeof(size_t));
    f->gencT = malloc(n * d * sizeof(float));
    f->colsum = malloc(n * sizeof(float));
    f->acc = malloc(T * 2 * d * sizeof(float));
    f->flag = malloc(T * (L + 8));
    f->part = malloc(T * sizeof(sae_fast_sums));
    if (sae_fast_alloc_entries(f) != 0 || !f->xc || !f->x_hat || !f->dx || !f->tile || !f->pre || !f->z || !f->gnorm ||
        !f->dense || !f->seg_used || !f->seg_mark || !f->lat_ptr || !f->gencT || !f->colsum || !f->acc ||
        !f->flag || !f->part) {
        sae_fast_free(f);
        return NULL;
    }
    return f;
}

void sae_fast_free(sae_fast *f)
{
    if (!f)
        return;
    free(f->xc), free(f->x_hat), free(f->dx), free(f->tile), free(f->pre), free(f->z), free(f->gnorm), free(f->dense);
    free(f->seg_used), free(f->seg_mark), free(f->lat_ptr), free(f->gencT), free(f->colsum), free(f->acc);
    free(f->flag), free(f->part);
    free(f->ent_row), free(f->ent_i), free(f->ent_z), free(f->ent_s), free(f->ent_u);
    free(f->srt_row), free(f->srt_z), free(f->srt_s);
    free(f);
}

int sae_fast_set_path(sae_fast *f, sae_path path)
{
    double frac = path == SAE_PATH_SPARSE ? 1.0 : SAE_FAST_DENSE_ABOVE;
    f->path = path;
    if (frac == f->frac)
        return 0;
    f->frac = frac;
    return sae_fast_alloc_entries(f);
}

int sae_fast_set_tile_rows(sae_fast *f, int rows)
{
    if (rows < 1 || rows > f->R)
        return -1;
    f->R = rows;
    return 0;
}

sae_fast_stats sae_fast_get_stats(const sae_fast *f) { return f->stats; }
void sae_fast_set_timing(sae_fast *f, int on) { f->timing = on; }

const char *sae_fast_phase_name(sae_fast_phase ph)
{
    static const char *const names[SAE_FAST_N_PHASES] = {"gemm", "scan", "decode", "dense", "rows",
                                                         "sort", "latents", "transpose", "orth"};
    return (unsigned)ph < SAE_FAST_N_PHASES ? names[ph] : "?";
}

static double sae_fast_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Adds the time since *t0 to phase ph and restarts the clock. */
static void sae_fast_tick(sae_fast *f, sae_fast_phase ph, double *t0)
{
    double t = sae_fast_now();
    f->stats.seconds[ph] += f->timing ? t - *t0 : 0.0;
    *t0 = t;
}

/* ---- small kernels (dim-long rows; partial sums so the compiler vectorises) ---- */

/* 32 partial sums in 4 independent chains of 8: a 200-long dot is 7 FMAs deep per chain instead
 * of 25, so the latent pass is not bound by the FMA's latency. */
static float sae_fast_dot(const float *a, const float *b, int dim)
{
    float acc[4][8] = {{0}};
    int d = 0;
    for (; d + 32 <= dim; d += 32)
        for (int c = 0; c < 4; c++)
            for (int k = 0; k < 8; k++)
                acc[c][k] += a[d + 8 * c + k] * b[d + 8 * c + k];
    for (; d + 8 <= dim; d += 8)
        for (int k = 0; k < 8; k++)
            acc[0][k] += a[d + k] * b[d + k];
    float part[8];
    for (int k = 0; k < 8; k++)
        part[k] = (acc[0][k] + acc[1][k]) + (acc[2][k] + acc[3][k]);
    float sum = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    for (; d < dim; d++)
        sum += a[d] * b[d];
    return sum;
}

/* y (dim) += a * x (dim) */
static void sae_fast_axpy(float a, const float *restrict x, float *restrict y, int dim)
{
    for (int d = 0; d < dim; d++)
        y[d] += a * x[d];
}

/* y1 (dim) += a1 * x1 (dim) and y2 (dim) += a2 * x2 (dim) in one pass */
static void sae_fast_axpy2(float a1, const float *restrict x1, float *restrict y1, float a2,
                           const float *restrict x2, float *restrict y2, int dim)
{
    for (int d = 0; d < dim; d++) {
        y1[d] += a1 * x1[d];
        y2[d] += a2 * x2[d];
    }
}

/* flag (l) = [pre + b > cut] for one row of a block: one branch-free pass that vectorises.
 * Returns whether any flag is set (most rows of a block have none once the SAE is sparse). */
static int sae_fast_flags(const float *restrict pre, const float *restrict b, int l, float cut,
                          unsigned char *restrict flag)
{
    unsigned char any = 0;
    for (int k = 0; k < l; k++) {
        unsigned char v = pre[k] + b[k] > cut;
        flag[k] = v;
        any |= v;
    }
    return any;
}

/* The scan's cut: a group whose members are all <= cut is neither kept nor in the threshold's
 * window (its norm is at most sqrt(s) max_i u_i < threshold - bandwidth/2), so it has no entry.
 * 0 without a threshold; with one, most positive but small pre-activations are skipped by the
 * vectorised pass instead of one group at a time. */
static float sae_fast_scan_cut(const sae_config *c, float thr)
{
    float low = thr - 0.5f * c->bandwidth;
    return thr > 0.0f && low > 0.0f ? low / sqrtf((float)c->group_size) : 0.0f;
}

static sae_fast_sums sae_fast_total(const sae_fast *f)
{
    sae_fast_sums s = {0};
    for (int t = 0; t < f->T; t++) {
        s.sse += f->part[t].sse;
        s.sparsity += f->part[t].sparsity;
        s.active += f->part[t].active;
        s.groups += f->part[t].groups;
        s.overflow |= f->part[t].overflow;
    }
    return s;
}

static void sae_fast_add(sae_fast_sums *sum, const sae_fast_sums *s)
{
    sum->sse += s->sse;
    sum->sparsity += s->sparsity;
    sum->active += s->active;
    sum->groups += s->groups;
}

/* ---- rows (P rows) ---- */

static void sae_fast_prep_part(void *ctx, int t, int T)
{
    sae_fast_job *j = ctx;
    sae_fast *f = j->f;
    const float *b_dec = j->p->v.b_dec;
    size_t lo, hi, dim = (size_t)f->c.dim;
    par_range((size_t)j->B, 1, t, T, &lo, &hi);
    for (size_t r = lo; r < hi; r++) {
        for (size_t d = 0; d < dim; d++)
            f->xc[r * dim + d] = j->x[r * dim + d] - b_dec[d];
        memcpy(f->x_hat + r * dim, b_dec, dim * sizeof(float));
    }
}

static void sae_fast_error_part(void *ctx, int t, int T)
{
    sae_fast_job *j = ctx;
    sae_fast *f = j->f;
    size_t lo, hi, dim = (size_t)f->c.dim;
    float scale = 2.0f / (float)j->B;
    par_range((size_t)j->B, 1, t, T, &lo, &hi);
    double sse = 0.0;
    for (size_t k = lo * dim; k < hi * dim; k++) {
        float err = f->x_hat[k] - j->x[k];
        sse += (double)err * err;
        f->dx[k] = scale * err;
    }
    f->part[t] = (sae_fast_sums){.sse = sse};
}

/* ---- the sparse scan of a block (P rows) ---- */

/* Row r's group at latent g0 of the block: its entries at e; returns the count after them, or
 * lim + 1 if they do not fit under lim. pre, b (l) are the row's block and the block's b_enc. */
static size_t sae_fast_group_entries(sae_fast *f, const sae_fast_job *j, const float *pre, const float *b, int r,
                                     int g0, size_t e, size_t lim, sae_fast_sums *sum)
{
    int s = f->c.group_size;
    float norm2 = 0.0f;
    int pos = 0;
    for (int k = g0; k < g0 + s; k++) {
        float u = pre[k] + b[k];
        if (u > 0.0f)
            norm2 += u * u, pos++;
    }
    if (e + (size_t)pos > lim)
        return lim + 1;
    float norm = s == 1 ? pre[g0] + b[g0] : sqrtf(norm2);
    int kept = !(j->thr > 0.0f && norm < j->thr), window = sae_stage_in_window(j->thr, f->c.bandwidth, norm);
    if (!kept && !window)
        return e; /* no value, no gradient */
    for (int k = g0; k < g0 + s; k++) {
        float u = pre[k] + b[k];
        if (!(u > 0.0f))
            continue;
        f->ent_row[e] = r;
        f->ent_i[e] = j->i0 + k;
        f->ent_z[e] = kept ? u : 0.0f;
        f->ent_s[e] = kept ? j->sc * u / norm : 0.0f;
        f->ent_u[e] = window ? u : 0.0f;
        e++;
    }
    if (kept) {
        sum->sparsity += norm;
        sum->groups++;
        sum->active += (size_t)pos;
    }
    return e;
}

/* Row r of the block, pre (l) its xc W_enc: entries after e (> lim: overflowed). flag (l + 8) is
 * the thread's scratch. */
static size_t sae_fast_scan_row(sae_fast *f, const sae_fast_job *j, int r, const float *pre, size_t e, size_t lim,
                                unsigned char *flag, sae_fast_sums *sum)
{
    int l = j->l, s = f->c.group_size;
    const float *b = j->p->v.b_enc + j->i0; /* (l) */
    if (!sae_fast_flags(pre, b, l, j->cut, flag))
        return e;
    memset(flag + l, 0, 8);
    for (int w = 0; w < l; w += 8) {
        uint64_t word;
        memcpy(&word, flag + w, 8);
        if (!word)
            continue;
        for (int k = w; k < w + 8 && k < l && e <= lim; k++) {
            if (!flag[k])
                continue;
            int g0 = k - k % s;
            e = sae_fast_group_entries(f, j, pre, b, r, g0, e, lim, sum);
            memset(flag + g0, 0, (size_t)s); /* the group is done: its later members must not start it again */
        }
        if (e > lim)
            break;
    }
    return e;
}

/* The thread's rows of the block, R at a time: the encoder's product for the tile (one
 * single-threaded GEMM into the thread's tile, which stays in its core's cache), then the scan
 * of each of its rows. Thread 0 also times its products (stats: gemm, the rest is scan). */
static void sae_fast_encode_part(void *ctx, int t, int T)
{
    sae_fast_job *j = ctx;
    sae_fast *f = j->f;
    int n = f->c.n_latents, dim = f->c.dim, l = j->l;
    size_t lo, hi;
    par_range((size_t)j->B, 1, t, T, &lo, &hi);
    sae_fast_sums sum = {0};
    size_t e = f->seg_used[t], lim = e + sae_fast_limit_of(f->frac, hi - lo, (size_t)l);
    unsigned char *flag = f->flag + (size_t)t * (f->L + 8);
    float *tile = f->tile + (size_t)t * f->R * f->L; /* (R, l) */
    double gemm_s = 0.0;
    f->seg_mark[t] = e;
    for (size_t r0 = lo; r0 < hi && e <= lim && !atomic_load_explicit(&f->overflowed, memory_order_relaxed);
         r0 += (size_t)f->R) {
        int rows = hi - r0 < (size_t)f->R ? (int)(hi - r0) : f->R;
        double t0 = t == 0 && f->timing ? sae_fast_now() : 0.0;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, l, dim, 1.0f, f->xc + r0 * dim, dim,
                    j->p->v.W_enc + j->i0, n, 0.0f, tile, l);
        gemm_s += t == 0 && f->timing ? sae_fast_now() - t0 : 0.0;
        for (int r = 0; r < rows && e <= lim; r++)
            e = sae_fast_scan_row(f, j, (int)r0 + r, tile + (size_t)r * l, e, lim, flag, &sum);
    }
    sum.overflow = e > lim;
    if (sum.overflow) /* the others stop at their next tile: their work would be dropped */
        atomic_store_explicit(&f->overflowed, 1, memory_order_relaxed);
    f->seg_used[t] = sum.overflow ? f->seg_mark[t] : e;
    f->part[t] = sum;
    if (t == 0)
        f->gemm_s = gemm_s;
}

/* x_hat[r] += z d_i over the thread's entries of the block (its own rows), d_i in L2. */
static void sae_fast_decode_part(void *ctx, int t, int T)
{
    sae_fast_job *j = ctx;
    sae_fast *f = j->f;
    const float *W_dec = j->p->v.W_dec;
    int dim = f->c.dim;
    (void)T;
    for (size_t e = f->seg_mark[t]; e < f->seg_used[t]; e++)
        if (f->ent_z[e] > 0.0f)
            sae_fast_axpy(f->ent_z[e], W_dec + (size_t)f->ent_i[e] * dim, f->x_hat + (size_t)f->ent_row[e] * dim,
                          dim);
}

/* ---- dense blocks ---- */

/* pre (B, l) = xc W_enc[:, block] (a dense block). */
static void sae_fast_block_gemm(const sae_fast_job *j)
{
    sae_fast *f = j->f;
    int n = f->c.n_latents, dim = f->c.dim;
    par_sgemm(f->pool, 0, 0, j->B, j->l, dim, 1.0f, f->xc, dim, j->p->v.W_enc + j->i0, n, 0.0f, f->pre, j->l);
}

/* Group size 1: latents [k0, k1) of one row, in branch-free loops that vectorise. */
static void sae_fast_act_row_s1(const sae_fast_job *j, const float *restrict pre, const float *restrict b,
                                float *restrict z, float *restrict gn, size_t k0, size_t k1, sae_fast_sums *sum)
{
    float thr = j->thr, total = 0.0f;
    int active = 0;
    for (size_t k = k0; k < k1; k++) {
        float u = pre[k] + b[k];
        float v = u > 0.0f && !(u < thr) ? u : 0.0f; /* thr 0: every positive u is kept */
        z[k] = gn[k] = v;
        total += v;
        active += v > 0.0f;
    }
    if (j->forward && j->fired)
        for (size_t k = k0; k < k1; k++)
            j->fired[j->i0 + k] |= z[k] > 0.0f;
    sum->sparsity += total;
    sum->groups += (size_t)active;
    sum->active += (size_t)active;
}

/* z (B, l) and gnorm (B, l/s) for the thread's groups of the block; forward: sums and fired. */
static void sae_fast_act_part(void *ctx, int t, int T)
{
    sae_fast_job *j = ctx;
    sae_fast *f = j->f;
    int l = j->l, s = f->c.group_size, G = l / s;
    float thr = j->thr;
    const float *b = j->p->v.b_enc + j->i0; /* (l) */
    size_t g0, g1;
    par_range((size_t)G, 1, t, T, &g0, &g1);
    sae_fast_sums sum = {0};
    if (s == 1) {
        for (int r = 0; r < j->B; r++)
            sae_fast_act_row_s1(j, f->pre + (size_t)r * l, b, f->z + (size_t)r * l, f->gnorm + (size_t)r * G, g0,
                                g1, &sum);
        f->part[t] = sum;
        return;
    }
    for (int r = 0; r < j->B; r++) {
        const float *pre = f->pre + (size_t)r * l; /* (l) */
        float *z = f->z + (size_t)r * l;           /* (l) */
        float *gn = f->gnorm + (size_t)r * G;      /* (G) */
        for (size_t g = g0; g < g1; g++) {
            float norm2 = 0.0f;
            int pos = 0;
            for (size_t k = g * s; k < (g + 1) * s; k++) {
                float u = pre[k] + b[k];
                z[k] = u > 0.0f ? u : 0.0f;
                norm2 += z[k] * z[k];
                pos += u > 0.0f;
            }
            float norm = sqrtf(norm2);
            int kept = pos > 0 && !(thr > 0.0f && norm < thr);
            gn[g] = kept ? norm : 0.0f;
            for (size_t k = g * s; k < (g + 1) * s; k++) {
                z[k] = kept ? z[k] : 0.0f;
                if (j->forward && j->fired && z[k] > 0.0f)
                    j->fired[j->i0 + k] = 1;
            }
            if (kept) {
                sum.sparsity += norm;
                sum.groups++;
                sum.active += (size_t)pos;
            }
        }
    }
    f->part[t] = sum;
}

/* One row's groups [g0, g1) of a dense block: pre (l) holds xc W_enc, b (l) the block's b_enc, dz (l)
 * the reconstruction gradient, gn (l/s) the kept norms; pre becomes dpre (core/sae_relu.c: the exact
 * term for kept groups plus the threshold's jump term near it), added to colsum (l). */
static void sae_fast_dpre_groups(const sae_fast_job *j, float *pre, const float *b, const float *dz,
                                 const float *gn, size_t g0, size_t g1, float *colsum)
{
    const sae_config *c = &j->f->c;
    int s = c->group_size;
    for (size_t g = g0; g < g1; g++) {
        float rho2 = 0.0f, dot = 0.0f;
        for (size_t k = g * s; k < (g + 1) * s; k++) {
            float u = pre[k] + b[k];
            if (u > 0.0f)
                rho2 += u * u, dot += u * dz[k];
        }
        float jump = sae_stage_jump(j->thr, c->bandwidth, sqrtf(rho2), dot, j->sc);
        float f = gn[g] > 0.0f ? j->sc / gn[g] : 0.0f;
        for (size_t k = g * s; k < (g + 1) * s; k++) {
            float u = pre[k] + b[k], a = u > 0.0f ? u : 0.0f;
            float dpre = (gn[g] > 0.0f && u > 0.0f ? dz[k] + f * u : 0.0f) + jump * a;
            pre[k] = dpre;
            colsum[k] += dpre;
        }
    }
}

/* dpre into f->pre for the thread's groups, from dz (f->z) and the pre-activations still in
 * f->pre: [u > 0] (dz + sc u / ||z_g||), the norm term only for kept groups (gnorm > 0); colsum. */
static void sae_fast_dpre_part(void *ctx, int t, int T)
{
    sae_fast_job *j = ctx;
    sae_fast *f = j->f;
    int l = j->l, s = f->c.group_size, G = l / s;
    const float *b = j->p->v.b_enc + j->i0; /* (l) */
    float *colsum = f->colsum + j->i0;      /* (l) */
    size_t g0, g1;
    par_range((size_t)G, 1, t, T, &g0, &g1);
    for (int r = 0; r < j->B; r++) {
        float *restrict pre = f->pre + (size_t)r * l;        /* (l) */
        const float *restrict dz = f->z + (size_t)r * l;     /* (l) */
        const float *restrict gn = f->gnorm + (size_t)r * G; /* (G) */
        if (s == 1 && !(j->thr > 0.0f)) /* gn = z: the sparsity term is sc where kept */
            for (size_t k = g0; k < g1; k++) {
                float dpre = gn[k] > 0.0f ? dz[k] + j->sc : 0.0f;
                pre[k] = dpre;
                colsum[k] += dpre;
            }
        else
            sae_fast_dpre_groups(j, pre, b, dz, gn, g0, g1, colsum);
    }
}

/* A dense block's reconstruction: x_hat += z W_dec[block], after the activation pass. */
static void sae_fast_dense_forward(sae_fast_job *j)
{
    sae_fast *f = j->f;
    int dim = f->c.dim;
    j->forward = 1;
    par_run(f->pool, sae_fast_act_part, j);
    par_sgemm(f->pool, 0, 0, j->B, dim, j->l, 1.0f, f->z, j->l, j->p->v.W_dec + (size_t)j->i0 * dim, dim, 1.0f,
              f->x_hat, dim);
}

/* A dense block's gradient: its W_dec rows, W_enc columns and colsum entries, all written here.
 * pre, z and gnorm are recomputed unless they still hold this block (the forward's last). */
static void sae_fast_dense_backward(sae_fast_job *j, int warm)
{
    sae_fast *f = j->f;
    int n = f->c.n_latents, dim = f->c.dim, B = j->B, l = j->l;
    const float *W_dec = j->p->v.W_dec + (size_t)j->i0 * dim; /* (l, dim) */
    if (!warm) {
        sae_fast_block_gemm(j);
        j->forward = 0;
        par_run(f->pool, sae_fast_act_part, j);
    }
    par_sgemm(f->pool, 1, 0, l, dim, B, 1.0f, f->z, l, f->dx, dim, 0.0f, j->g->W_dec + (size_t)j->i0 * dim, dim);
    par_sgemm(f->pool, 0, 1, B, l, dim, 1.0f, f->dx, dim, W_dec, dim, 0.0f, f->z, l);
    par_run(f->pool, sae_fast_dpre_part, j);
    par_sgemm(f->pool, 1, 0, dim, l, B, 1.0f, f->xc, dim, f->pre, l, 0.0f, j->g->W_enc + j->i0, n);
}

/* ---- the latent-major backward of the sparse entries ---- */

/* The threshold's jump terms (core/sae_relu.c) of the thread's entries in window groups, added to
 * ent_s: a group's entries are consecutive in the segment (the scan emits them together). */
static void sae_fast_jump_part(void *ctx, int t, int T)
{
    sae_fast_job *j = ctx;
    sae_fast *f = j->f;
    int s = f->c.group_size, dim = f->c.dim;
    size_t e = (size_t)t * f->seg_cap, end = f->seg_used[t];
    (void)T;
    while (e < end) {
        if (!(f->ent_u[e] > 0.0f)) {
            e++;
            continue;
        }
        size_t e1 = e + 1;
        while (e1 < end && f->ent_row[e1] == f->ent_row[e] && f->ent_i[e1] / s == f->ent_i[e] / s)
            e1++;
        const float *dxr = f->dx + (size_t)f->ent_row[e] * dim; /* (dim) */
        float rho2 = 0.0f, dot = 0.0f;
        for (size_t k = e; k < e1; k++) {
            float u = f->ent_u[k];
            rho2 += u * u;
            dot += u * sae_fast_dot(dxr, j->p->v.W_dec + (size_t)f->ent_i[k] * dim, dim);
        }
        float jump = sae_stage_jump(j->thr, f->c.bandwidth, sqrtf(rho2), dot, j->sc);
        for (size_t k = e; k < e1; k++)
            f->ent_s[k] += jump * f->ent_u[k];
        e = e1;
    }
}

/* Counting sort of every segment's entries by latent into lat_ptr / srt_*. */
static void sae_fast_sort(sae_fast *f)
{
    size_t n = (size_t)f->c.n_latents, *ptr = f->lat_ptr;
    memset(ptr, 0, (n + 1) * sizeof(size_t));
    for (int t = 0; t < f->T; t++)
        for (size_t e = (size_t)t * f->seg_cap; e < f->seg_used[t]; e++)
            ptr[f->ent_i[e] + 1]++;
    for (size_t i = 0; i < n; i++)
        ptr[i + 1] += ptr[i];
    for (int t = 0; t < f->T; t++) /* ptr[i] walks to the end of latent i's run... */
        for (size_t e = (size_t)t * f->seg_cap; e < f->seg_used[t]; e++) {
            size_t k = ptr[f->ent_i[e]]++;
            f->srt_row[k] = f->ent_row[e];
            f->srt_z[k] = f->ent_z[e];
            f->srt_s[k] = f->ent_s[e];
        }
    for (size_t i = n; i > 0; i--) /* ...so shift it back to the start */
        ptr[i] = ptr[i - 1];
    ptr[0] = 0;
}

/* Latents [*lo, *hi) for thread t: contiguous, with about equal entries each. */
static void sae_fast_latent_range(const sae_fast *f, int t, int T, size_t *lo, size_t *hi)
{
    size_t n = (size_t)f->c.n_latents, total = f->lat_ptr[n];
    size_t bounds[2];
    for (int k = 0; k < 2; k++) {
        size_t target = total * (size_t)(t + k) / (size_t)T, a = 0, b = n;
        while (a < b) { /* the first latent whose run starts at or after target */
            size_t mid = (a + b) / 2;
            if (f->lat_ptr[mid] < target)
                a = mid + 1;
            else
                b = mid;
        }
        bounds[k] = t + k == T ? n : t + k == 0 ? 0 : a;
    }
    *lo = bounds[0], *hi = bounds[1];
}

/* Latent i's decoder gradient, encoder gradient row (into gencT), colsum and fired mark. */
static void sae_fast_latent(sae_fast_job *j, size_t i, float *acc_dec, float *acc_enc)
{
    sae_fast *f = j->f;
    int dim = f->c.dim, fired = 0;
    const float *d_i = j->p->v.W_dec + i * dim; /* (dim) */
    float cs = 0.0f;
    memset(acc_dec, 0, (size_t)dim * sizeof(float));
    memset(acc_enc, 0, (size_t)dim * sizeof(float));
    for (size_t e = f->lat_ptr[i]; e < f->lat_ptr[i + 1]; e++) {
        size_t r = (size_t)f->srt_row[e];
        const float *dxr = f->dx + r * dim, *xcr = f->xc + r * dim; /* (dim) each */
        if (e + 1 < f->lat_ptr[i + 1]) { /* the next entry's rows, all of them: in L3, not L1 */
            const float *dx1 = f->dx + (size_t)f->srt_row[e + 1] * dim, *xc1 = f->xc + (size_t)f->srt_row[e + 1] * dim;
            for (int d = 0; d < dim; d += 16) {
                __builtin_prefetch(dx1 + d);
                __builtin_prefetch(xc1 + d);
            }
        }
        float dpre = (f->srt_z[e] > 0.0f ? sae_fast_dot(dxr, d_i, dim) : 0.0f) + f->srt_s[e]; /* z 0: jump only */
        if (f->srt_z[e] > 0.0f) {
            sae_fast_axpy2(f->srt_z[e], dxr, acc_dec, dpre, xcr, acc_enc, dim);
            fired = 1;
        } else {
            sae_fast_axpy(dpre, xcr, acc_enc, dim);
        }
        cs += dpre;
    }
    memcpy(j->g->W_dec + i * dim, acc_dec, (size_t)dim * sizeof(float));
    memcpy(f->gencT + i * dim, acc_enc, (size_t)dim * sizeof(float));
    f->colsum[i] = cs;
    if (j->fired && fired)
        j->fired[i] = 1;
}

static void sae_fast_latents_part(void *ctx, int t, int T)
{
    sae_fast_job *j = ctx;
    sae_fast *f = j->f;
    int dim = f->c.dim;
    float *acc_dec = f->acc + (size_t)t * 2 * dim, *acc_enc = acc_dec + dim; /* (dim) each */
    size_t lo, hi;
    sae_fast_latent_range(f, t, T, &lo, &hi);
    for (size_t i = lo; i < hi; i++) {
        if (f->dense[i / f->L])
            continue; /* its gradient came from GEMMs */
        if (f->lat_ptr[i + 1] > f->lat_ptr[i])
            sae_fast_latent(j, i, acc_dec, acc_enc);
        else
            memset(j->g->W_dec + i * dim, 0, (size_t)dim * sizeof(float)), f->colsum[i] = 0.0f;
    }
}

/* gW_enc (dim, n) = gencT^T for the thread's tiles of latents in sparse blocks (0 for latents
 * without entries). */
static void sae_fast_transpose_part(void *ctx, int t, int T)
{
    enum { TL = SAE_FAST_TILE };
    sae_fast_job *j = ctx;
    sae_fast *f = j->f;
    size_t n = (size_t)f->c.n_latents, dim = (size_t)f->c.dim, i0, i1;
    float *gW = j->g->W_enc;
    par_range(n, TL, t, T, &i0, &i1);
    for (size_t a = i0; a < i1; a += TL)
        for (size_t d0 = 0; d0 < dim; d0 += TL)
            for (size_t d = d0; d < d0 + TL && d < dim; d++)
                for (size_t i = a; i < a + TL && i < i1; i++) {
                    if (f->dense[i / f->L])
                        continue;
                    gW[d * n + i] = f->lat_ptr[i + 1] > f->lat_ptr[i] ? f->gencT[i * dim + d] : 0.0f;
                }
}

/* ---- one call ---- */

/* The block [i0, i0 + l): encoder GEMM, scan, then its reconstruction (sparse or dense). */
static void sae_fast_block(sae_fast_job *j, int k, sae_fast_sums *sum)
{
    sae_fast *f = j->f;
    double t0 = sae_fast_now();
    int sparse = 0;
    if (f->path != SAE_PATH_DENSE) { /* forced sparse never overflows: frac = 1 */
        atomic_store(&f->overflowed, 0);
        par_run(f->pool, sae_fast_encode_part, j);
        sparse = !atomic_load(&f->overflowed);
        f->stats.seconds[SAE_FAST_T_GEMM] += f->timing ? f->gemm_s : 0.0;
        t0 += f->timing ? f->gemm_s : 0.0;
        sae_fast_tick(f, SAE_FAST_T_SCAN, &t0);
    }
    f->dense[k] = !sparse;
    if (sparse) {
        f->stats.sparse_blocks++;
        par_run(f->pool, sae_fast_decode_part, j);
        sae_fast_tick(f, SAE_FAST_T_DECODE, &t0);
    } else {
        f->stats.dense_blocks++;
        for (int t = 0; t < f->T; t++) /* threads that did not overflow drop the block's entries too */
            f->seg_used[t] = f->seg_mark[t];
        sae_fast_block_gemm(j);
        sae_fast_dense_forward(j);
        sae_fast_tick(f, SAE_FAST_T_DENSE, &t0);
    }
    sae_fast_sums s = sae_fast_total(f);
    sae_fast_add(sum, &s);
}

static void sae_fast_set_block(sae_fast_job *j, int k)
{
    j->i0 = k * j->f->L;
    j->l = j->f->c.n_latents - j->i0 < j->f->L ? j->f->c.n_latents - j->i0 : j->f->L;
}

/* Marks fired from the sparse entries (forward-only calls; with a gradient the latent pass does it). */
static void sae_fast_mark_fired(const sae_fast *f, unsigned char *fired)
{
    for (int t = 0; t < f->T; t++)
        for (size_t e = (size_t)t * f->seg_cap; e < f->seg_used[t]; e++)
            if (f->ent_z[e] > 0.0f)
                fired[f->ent_i[e]] = 1;
}

/* The gradient once dx is known; returns the orth term. */
static double sae_fast_backward(sae_fast_job *j)
{
    sae_fast *f = j->f;
    const sae_config *c = &f->c;
    int n = c->n_latents, dim = c->dim;
    double t0 = sae_fast_now();
    for (int k = f->n_blocks - 1; k >= 0; k--) /* the last block first: its buffers are still warm */
        if (f->dense[k]) {
            sae_fast_set_block(j, k);
            sae_fast_dense_backward(j, k == f->n_blocks - 1);
        }
    sae_fast_tick(f, SAE_FAST_T_DENSE, &t0);
    if (j->thr > 0.0f)
        par_run(f->pool, sae_fast_jump_part, j);
    sae_fast_sort(f);
    sae_fast_tick(f, SAE_FAST_T_SORT, &t0);
    par_run(f->pool, sae_fast_latents_part, j);
    sae_fast_tick(f, SAE_FAST_T_LATENTS, &t0);
    par_run(f->pool, sae_fast_transpose_part, j);
    sae_fast_tick(f, SAE_FAST_T_TRANSPOSE, &t0);
    double orth = c->orth_coef > 0.0f ? sae_stage_orth(c, j->p->v.W_dec, c->orth_coef, j->g->W_dec) : 0.0;
    sae_fast_tick(f, SAE_FAST_T_ORTH, &t0);
    memcpy(j->g->b_enc, f->colsum, (size_t)n * sizeof(float));
    memset(j->g->b_dec, 0, (size_t)dim * sizeof(float));
    for (int b = 0; b < j->B; b++)
        for (int d = 0; d < dim; d++)
            j->g->b_dec[d] += f->dx[(size_t)b * dim + d];
    cblas_sgemv(CblasRowMajor, CblasNoTrans, dim, n, -1.0f, j->p->v.W_enc, n, f->colsum, 1, 1.0f, j->g->b_dec, 1);
    sae_fast_tick(f, SAE_FAST_T_ROWS, &t0);
    return orth;
}

#ifndef NDEBUG
/* p's configuration is the one f was made for (threshold aside: the pass carries it). */
static int sae_fast_same_config(const sae_config *a, const sae_config *b)
{
    return a->arch == b->arch && a->dim == b->dim && a->n_latents == b->n_latents &&
           a->group_size == b->group_size && a->bandwidth == b->bandwidth && a->orth_coef == b->orth_coef;
}
#endif

double sae_fast_loss_grad(sae_fast *f, const sae_params *p, const float *x, int B, const sae_pass *pass,
                          float *grad, unsigned char *fired, sae_loss_terms *terms)
{
    const sae_config *c = &f->c;
    sae_view g;
    assert(B >= 1 && B <= f->max_rows && x && pass && p->buf);
    assert(sae_fast_same_config(c, &p->cfg) && sae_arch_of(c)->fast);
    assert(pass->threshold >= 0.0f && (!grad || grad != p->buf));
    sae_fast_job j = {.f = f, .p = p, .x = x, .B = B, .sc = pass->coef / (float)B, .thr = pass->threshold,
                      .cut = sae_fast_scan_cut(c, pass->threshold), .fired = fired};
    if (grad) {
        sae_views(c, grad, &g);
        j.g = &g;
        memset(f->colsum, 0, (size_t)c->n_latents * sizeof(float));
    }
    for (int t = 0; t < f->T; t++)
        f->seg_used[t] = (size_t)t * f->seg_cap;
    double t0 = sae_fast_now();
    par_run(f->pool, sae_fast_prep_part, &j);
    sae_fast_tick(f, SAE_FAST_T_ROWS, &t0);
    sae_fast_sums sum = {0};
    for (int k = 0; k < f->n_blocks; k++) {
        sae_fast_set_block(&j, k);
        sae_fast_block(&j, k, &sum);
    }
    t0 = sae_fast_now();
    par_run(f->pool, sae_fast_error_part, &j);
    sum.sse = sae_fast_total(f).sse;
    sae_fast_tick(f, SAE_FAST_T_ROWS, &t0);
    if (fired && !grad)
        sae_fast_mark_fired(f, fired);
    sae_loss_terms t = {0};
    t.orth = grad ? sae_fast_backward(&j)
                  : c->orth_coef > 0.0f ? sae_stage_orth(c, p->v.W_dec, c->orth_coef, NULL) : 0.0;
    f->stats.density = (double)sum.active / ((double)B * c->n_latents);
    t.mse = sum.sse / B;
    t.sparsity = sum.sparsity / B;
    t.loss = t.mse + (double)pass->coef * t.sparsity + (double)c->orth_coef * t.orth;
    t.l0 = (double)sum.active / B;
    t.l0_groups = (double)sum.groups / B;
    if (terms)
        *terms = t;
    return t.loss;
}
