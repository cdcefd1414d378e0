#!/usr/bin/python3
"""ref_torch_sub -- an independent PyTorch (float64, autograd) reference for the subspace SAE
(core/sae_subspace.c).

Usage: ref_torch_sub.py CASE_DIR [CASE_DIR ...]

Each CASE_DIR (written by tests/test_ref_sub.c) holds config.txt ("key value" lines:
group_size, k, threshold, sparsity_coef, aux_k (already resolved), aux_k_coef, orth_coef), the
parameters W_enc (dim, n), b_enc (n), W_dec (n, dim), b_dec (dim), the batch x (B, dim), the dead
mask dead (n; 1 = dead, all 0 = no AuxK), and the C results: loss (), z (B, n), x_hat (B, dim)
and grad_<param> for every parameter, all as float32 .npy.

Recomputed here from the definitions, training rules:
  pre = (x - b_dec) W_enc + b_enc; codes are signed: rho_g = ||pre_g||_2 (no ReLU)
  k > 0: z_g = pre_g on the k groups of largest rho in the row (a constant mask), 0 elsewhere
  k = 0: z_g = (1 - tau / rho_g)_+ pre_g, tau = threshold (block soft-thresholding),
         with penalty sparsity_coef * mean_b sum_g ||z_g||
  loss = mean_b ||x_hat - x||^2 [+ penalty] + orth_coef * sum_g sum_{i!=j} relu(d_i.d_j)
         + aux_k_coef * mean_b ||e - e_hat||^2 (some group dead: all its latents),
  e = (x - x_hat) detached, e_hat = pre W_dec over the row's aux_k dead groups of largest rho.
Every tensor must satisfy  max|c - ref| <= ABS_TOL + REL_TOL * max|ref|.
"""
import sys

from ref_common import compare_all, group_norm, load, load64, main, orth_penalty, read_config, torch, verdict

PARAMS = ["W_enc", "b_enc", "W_dec", "b_dec"]


def mask_from_topk(scores, kk):
    """A 0/1 mask (same shape) of the kk largest entries of each row of scores."""
    idx = scores.topk(kk, dim=1).indices
    return torch.zeros_like(scores).scatter(1, idx, 1.0)


def codes(cfg, pre3):
    """z (B, G, s) and the penalty's sum over the batch, from pre3 (B, G, s)."""
    rho = group_norm(pre3)
    k = int(cfg["k"])
    if k > 0:
        return pre3 * mask_from_topk(rho.detach(), k).unsqueeze(-1), torch.zeros((), dtype=pre3.dtype)
    tau = cfg["threshold"]
    safe = torch.where(rho > tau, rho, torch.ones_like(rho))
    f = torch.where(rho > tau, 1.0 - tau / safe, torch.zeros_like(rho))
    z = pre3 * f.unsqueeze(-1)
    return z, torch.relu(rho - tau).sum()


def auxk(cfg, pre3, dead, W_dec, e):
    """mean_b ||e - e_hat||^2 over the row's aux_k dead groups of largest rho (signed codes)."""
    B, G, s = pre3.shape
    dead_g = dead.view(G, s).all(1)
    ka = min(int(cfg["aux_k"]), int(dead_g.sum()))
    scores = group_norm(pre3.detach()).masked_fill(~dead_g.unsqueeze(0), -1.0)
    za = (pre3 * mask_from_topk(scores, ka).unsqueeze(-1)).reshape(B, G * s)
    return ((e - za @ W_dec) ** 2).sum(1).mean()


def reference(cfg, p, x, dead):
    s = int(cfg["group_size"])
    n = p["b_enc"].shape[0]
    pre = (x - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
    B = pre.shape[0]
    pre3 = pre.view(B, n // s, s)
    z3, penalty = codes(cfg, pre3)
    z = z3.reshape(B, n)
    x_hat = z @ p["W_dec"] + p["b_dec"]
    loss = ((x_hat - x) ** 2).sum(1).mean() + cfg["orth_coef"] * orth_penalty(p["W_dec"], s)
    if int(cfg["k"]) == 0:
        loss = loss + cfg["sparsity_coef"] * penalty / B
    if cfg["aux_k_coef"] > 0 and dead.view(n // s, s).all(1).any():
        loss = loss + cfg["aux_k_coef"] * auxk(cfg, pre3, dead, p["W_dec"], (x - x_hat).detach())
    loss.backward()
    out = {"loss": loss.detach(), "z": z.detach(), "x_hat": x_hat.detach()}
    for k in PARAMS:
        out["grad_" + k] = p[k].grad
    return out


WORST = [0.0, 0.0]


def check_case(case):
    cfg = read_config(case)
    p = {k: load64(case, k, grad=True) for k in PARAMS}
    dead = torch.tensor(load(case, "dead")) != 0
    ref = reference(cfg, p, load64(case, "x"), dead)
    return verdict(case, compare_all(case, ref, worst=WORST))


def summary():
    print(f"all cases: largest gradient difference {WORST[0]:.3e} abs, {WORST[1]:.3e} relative to max|ref|")


if __name__ == "__main__":
    sys.exit(main(__doc__, check_case, summary))
