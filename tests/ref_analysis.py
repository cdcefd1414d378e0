"""ref_analysis -- NumPy reference for tests/test_analysis.c.

Usage: /usr/bin/python3 tests/ref_analysis.py DIR

DIR holds the C test's inputs and results as .npy files. Every quantity is
recomputed independently here (dense Jaccard, dense cosines, np.linalg.svd for
planes and PCA, QR for the circle planes, a NumPy ReLU SAE for circle FVE,
np.histogram / np.percentile) and compared; one line per quantity:
    CHECK name max_diff tol ok|FAIL
Exit status 1 when any quantity is beyond its tolerance.
"""
import os
import sys

import numpy as np

D = sys.argv[1]
failed = 0


def load(name):
    return np.load(os.path.join(D, name + ".npy"))


def check(name, diff, tol):
    global failed
    diff = float(diff)
    ok = diff <= tol
    failed += not ok
    print(f"CHECK {name} {diff:.3g} {tol:.3g} {'ok' if ok else 'FAIL'}")


def maxdiff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return np.inf
    return np.max(np.abs(a - b)) if a.size else 0.0


def mismatch(a, b):
    """0 if integer arrays are equal (same shape), else the number of differences (inf on shape)."""
    a, b = np.asarray(a), np.asarray(b)
    return np.inf if a.shape != b.shape else np.count_nonzero(a != b)


def sign_fix(v):
    """Largest-magnitude coordinate positive (first on ties), as analysis_sign_fix."""
    v = np.array(v, np.float64)
    for row in v.reshape(-1, v.shape[-1]):
        if row[np.argmax(np.abs(row.astype(np.float32)))] < 0:
            row *= -1
    return v


def topk(sim, k):
    """Per row: top-k j != i with sim > 0 ordered by (-sim, j); pads -1 / 0."""
    n = sim.shape[0]
    idx = np.full((n, k), -1, np.int64)
    val = np.zeros((n, k))
    for i in range(n):
        js = np.array([j for j in range(n) if j != i and sim[i, j] > 0], np.int64)
        if js.size:
            order = np.lexsort((js, -sim[i, js]))[:k]
            idx[i, : order.size] = js[order]
            val[i, : order.size] = sim[i, js[order]]
    return idx, val


# ------------------------------------------------------------------ statistics and Jaccard

def ref_stats_jaccard():
    z = load("z").astype(np.float64)
    fires = np.isfinite(z) & (z != 0)  # a code fires when non-zero (subspace codes take either sign)
    zf = np.where(fires, np.abs(z), 0.0)  # statistics of the magnitude
    n = z.shape[1]
    count = fires.sum(0)
    check("stats_count", mismatch(load("st_count"), count), 0)
    check("stats_sum", maxdiff(load("st_sum"), zf.sum(0)), 1e-9)
    check("stats_max", maxdiff(load("st_max"), zf.max(0)), 0)
    mx = zf.max(0)
    hi = np.where(mx > 0, np.ldexp(1.0, np.frexp(mx)[1]), 0.0)
    check("stats_hist_hi", maxdiff(load("st_hi"), hi), 0)
    hist = load("st_hist")
    nb = hist.shape[1]
    ref = np.zeros_like(hist)
    for i in range(n):
        if count[i]:
            ref[i] = np.histogram(zf[fires[:, i], i], bins=np.linspace(0, hi[i], nb + 1))[0]
    check("stats_hist", mismatch(hist, ref), 0)
    s = 4
    gd = fires.reshape(z.shape[0], n // s, s).any(2).mean(0)
    check("stats_group_density", maxdiff(load("st_group_density"), gd), 1e-12)

    f = fires.astype(np.int64)
    inter = f.T @ f
    union = count[:, None] + count[None, :] - inter
    J = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    check("jaccard_rows", maxdiff(load("jac_rows"), J), 1e-6)
    req = load("jac_req")
    check("jaccard_matrix", maxdiff(load("jac_matrix"), J[np.ix_(req, req)]), 1e-6)
    k = load("jac_nb_idx").shape[1]
    idx, val = topk(J, k)
    check("jaccard_topk_idx", mismatch(load("jac_nb_idx"), idx), 0)
    check("jaccard_topk_J", maxdiff(load("jac_nb_j"), val), 1e-6)
    G = n // s
    gj = [np.mean([J[g * s + a, g * s + b] for a in range(s) for b in range(a + 1, s)]) for g in range(G)]
    check("jaccard_group", maxdiff(load("jac_group"), gj), 1e-6)


# ------------------------------------------------------------------ decoder cosine and planes

def ref_cosine_planes():
    W = load("W").astype(np.float64)
    nrm = np.linalg.norm(W, axis=1)
    U = W / np.where(nrm > 0, nrm, 1)[:, None]
    C = U @ U.T
    k = load("cos_nb_idx").shape[1]
    n = W.shape[0]
    ci, cv = load("cos_nb_idx"), load("cos_nb_cos")
    ref_val = np.array([np.sort(np.delete(C[i], i))[::-1][:k] for i in range(n)])
    check("cos_topk_values", maxdiff(cv, ref_val), 1e-5)
    check("cos_topk_index_valid", maxdiff(cv, C[np.arange(n)[:, None], ci]), 1e-5)
    check("cos_topk_not_self", np.count_nonzero(ci == np.arange(n)[:, None]), 0)
    iu = np.triu_indices(n, 1)
    dup = {(int(a), int(b)) for a, b in zip(*iu) if C[a, b] > 0.99}
    got = {tuple(int(x) for x in p) for p in load("cos_dups").reshape(-1, 2)}
    check("cos_duplicates", len(dup ^ got) + (len(dup) == 0), 0)
    s = 4
    gm = [max(C[g * s + a, g * s + b] for a in range(s) for b in range(a + 1, s)) for g in range(n // s)]
    check("cos_group_max", maxdiff(load("cos_group_max"), gm), 1e-5)

    Dg = W[2 * s:3 * s]
    _, S, Vt = np.linalg.svd(Dg)
    basis = sign_fix(Vt[:2])
    check("plane_singular_values", maxdiff(load("pl_sv"), S), 1e-5)
    check("plane_basis", maxdiff(load("pl_basis"), basis), 1e-5)
    check("plane_coords", maxdiff(load("pl_coords"), Dg @ basis.T), 1e-5)
    Ug = U[2 * s:3 * s]
    check("plane_cosines", maxdiff(load("pl_cos"), Ug @ Ug.T), 1e-5)
    x, b = load("pl_x").astype(np.float64), load("pl_b").astype(np.float64)
    check("plane_projection", maxdiff(load("pl_proj"), (x - b) @ basis.T), 1e-4)


# ------------------------------------------------------------------ circle recovery and FVE

def ref_recovery():
    P = load("rec_planes").astype(np.float64)
    W = load("rec_W").astype(np.float64)
    alive = load("rec_alive").astype(bool)
    nc, n, s, max_k = P.shape[0], W.shape[0], 2, 4
    Q = np.stack([np.linalg.qr(P[i].T)[0] for i in range(nc)])  # (nc, dim, 2) orthonormal
    proj = np.einsum("nd,cdk->nck", W, Q)
    frac = np.linalg.norm(proj, axis=2) / np.linalg.norm(W, axis=1)[:, None]  # (n, nc)
    best = frac.argmax(1)
    bf = frac.max(1)
    check("rec_row_circle", mismatch(load("rec_row_circle"), best), 0)
    check("rec_row_frac", maxdiff(load("rec_row_frac"), bf), 1e-5)
    check("rec_threshold_margin", np.count_nonzero(np.abs(bf - 0.99) < 1e-4), 0)
    inpl = alive & (bf >= 0.99)
    rows = np.bincount(best[inpl], minlength=nc)
    check("rec_circle_rows", mismatch(load("rec_circle_rows"), rows), 0)
    check("rec_per_plane_hist", mismatch(load("rec_hist"), np.bincount(np.minimum(rows, max_k), minlength=max_k + 1)), 0)
    found_g = set()
    for g in range(n // s):
        m = np.arange(g * s, g * s + s)
        if inpl[m].all() and (best[m] == best[m[0]]).all():
            found_g.add(int(best[m[0]]))
    sc = load("rec_scalars")
    ref_sc = [np.count_nonzero(rows), len(found_g), inpl.sum() / alive.sum(), alive.sum()]
    check("rec_found_and_inplane", maxdiff(sc, ref_sc), 1e-12)
    gmean = frac.reshape(n // s, s, nc).mean(1)
    check("rec_group_circle", mismatch(load("rec_group_circle"), gmean.argmax(1)), 0)
    check("rec_group_fit", maxdiff(load("rec_group_fit"), gmean.max(1)), 1e-5)

    We, be = load("fve_W_enc").astype(np.float64), load("fve_b_enc").astype(np.float64)
    Wd, bd = load("fve_W_dec").astype(np.float64), load("fve_b_dec").astype(np.float64)
    T = 64
    th = 2 * np.pi * np.arange(T) / T
    fve = []
    for i in range(nc):
        x = np.cos(th)[:, None] * P[i, 0] + np.sin(th)[:, None] * P[i, 1]
        xh = np.maximum((x - bd) @ We + be, 0) @ Wd + bd
        fve.append(1 - ((xh - x) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    fve = np.array(fve)
    check("fve", maxdiff(load("fve"), fve), 1e-4)
    c_fve = load("fve").astype(np.float64)
    check("fve_median_p10", maxdiff(load("fve_summary"), np.percentile(c_fve, [50, 10])), 1e-9)
    hist = np.bincount(np.clip(np.floor(c_fve * 10), 0, 9).astype(int), minlength=10)
    check("fve_hist", mismatch(load("fve_hist"), hist), 0)
    check("fve_spread", 0 if fve.max() > 0.5 and fve.min() < 0.5 else 1, 0)


# ------------------------------------------------------------------ PCA

def ref_pca(tag, X, c, tol):
    X = np.asarray(X, np.float64)
    m = X.shape[0]
    mean = X.mean(0)
    _, S, Vt = np.linalg.svd(X - mean, full_matrices=False)
    var = S**2 / (m - 1)
    total = ((X - mean) ** 2).sum() / (m - 1)
    comp = sign_fix(Vt[:c])
    check(f"{tag}_mean", maxdiff(load(f"{tag}_mean"), mean), 1e-5)
    check(f"{tag}_variance", maxdiff(load(f"{tag}_var") / var[0], var[:c] / var[0]), 1e-6)
    check(f"{tag}_total_variance", abs(load(f"{tag}_total")[0] / total - 1), 1e-6)
    check(f"{tag}_ratio", maxdiff(load(f"{tag}_ratio"), var[:c] / total), 1e-6)
    check(f"{tag}_components", maxdiff(load(f"{tag}_comp"), comp), tol)
    check(f"{tag}_coords", maxdiff(load(f"{tag}_coords"), (X - mean) @ comp.T) / S[0], tol)


def ref_pca_all():
    ref_pca("pca1", load("pca1_X"), 4, 1e-5)
    ref_pca("pca2", load("pca2_X"), 3, 1e-5)
    z = load("z")[:50].astype(np.float64)
    z = np.where(np.isfinite(z) & (z != 0), z, 0.0)  # signed codes kept for the reconstruction
    W, b = load("W").astype(np.float64), load("pl_bdec").astype(np.float64)
    total = np.abs(z).sum(0)  # ranked by magnitude
    ids = np.arange(z.shape[1])
    order = [i for i in np.lexsort((ids, -total)) if total[i] > 0][:6]
    check("pca_top_latents", mismatch(load("pl_top"), order), 0)
    check("pca_top_scores", maxdiff(load("pl_score"), total[order]), 1e-9)
    X = z[:, order] @ W[order] + b
    check("pca_reconstruction", maxdiff(load("pl_recon"), X), 1e-5)
    ref_pca("pcal", X, 3, 1e-4)


def ref_eig():
    A, w, V = load("eig_a"), load("eig_w"), load("eig_v")
    for k in range(A.shape[0]):
        ref = np.linalg.eigvalsh(A[k])[::-1]
        scale = np.abs(ref).max()
        check(f"eig{k}_values", maxdiff(w[k], ref) / scale, 1e-12)
        check(f"eig{k}_residual", np.abs(A[k] @ V[k].T - V[k].T * w[k]).max() / scale, 1e-12)
        check(f"eig{k}_orthonormal", maxdiff(V[k] @ V[k].T, np.eye(A.shape[1])), 1e-12)


ref_eig()
ref_stats_jaccard()
ref_cosine_planes()
ref_recovery()
ref_pca_all()
print(f"ref_analysis: {failed} quantities beyond tolerance")
sys.exit(1 if failed else 0)
