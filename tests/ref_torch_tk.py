#!/usr/bin/python3
"""ref_torch_tk -- an independent PyTorch (float64, autograd) reference for the topk and
batchtopk SAEs (core/sae_topk.c; definitions in include/sae.h).

Usage: ref_torch_tk.py CASE_DIR [CASE_DIR ...]

Each CASE_DIR (written by tests/test_ref_tk.c) holds config.txt ("key value" lines: arch,
group_size, k, aux_k (already resolved), aux_k_coef, orth_coef, train), the parameters W_enc
(dim, n), b_enc (n), W_dec (n, dim), b_dec (dim), for batchtopk threshold (1), the batch x
(B, dim), the dead mask dead (n; 1 = dead, all 0 = no AuxK), and the C results: loss (),
z (B, n), x_hat (B, dim) and grad_<param> for every parameter, all as float32 .npy.

Recomputed here from the published definitions, with k counting groups:
  a = relu(pre), pre = (x - b_dec) W_enc + b_enc; rho_g = ||a_g||_2
  topk: per row the k groups of largest rho; batchtopk training: the k*B largest of the
  batch; batchtopk inference: rho >= threshold. group_size 1 takes the ordinary path,
  z = relu(TopK(pre)) with torch.topk on the pre-activations themselves.
  loss = mean_b ||x_hat - x||^2 + orth_coef * sum_g sum_{i!=j} relu(d_i.d_j)
         + aux_k_coef * mean_b ||e - e_hat||^2 (training, some group dead: all its latents),
  e = (x - x_hat) detached, e_hat = z_aux W_dec over the row's aux_k dead groups of largest rho.
The selections are constant masks (no gradient); the threshold gets no gradient (0).
Every tensor must satisfy  max|c - ref| <= ABS_TOL + REL_TOL * max|ref|.
Prints one line per tensor, "case DIR: PASS|FAIL" per case and a summary of the largest
gradient differences; exits 1 if any case fails.
"""
import sys

from ref_common import compare_all, load, load64, main, orth_penalty, read_config, torch, verdict

PARAMS = ["W_enc", "b_enc", "W_dec", "b_dec"]


def mask_from_topk(scores, kk):
    """A 0/1 mask (same shape) of the kk largest entries of each row of scores."""
    idx = scores.topk(kk, dim=1).indices
    return torch.zeros_like(scores).scatter(1, idx, 1.0)


def select_ordinary(cfg, pre, theta):
    """group_size 1: the ordinary TopK / BatchTopK SAE's latent mask, from pre itself."""
    B, n = pre.shape
    k = int(cfg["k"])
    if cfg["arch"] == "topk":
        return mask_from_topk(pre, k)
    if cfg["train"]:
        return mask_from_topk(pre.reshape(1, -1), k * B).reshape(B, n)
    return (torch.relu(pre) >= theta).to(pre.dtype)


def select_groups(cfg, rho, theta):
    """group_size > 1: the (B, G) group mask from the group norms rho."""
    B, G = rho.shape
    k = int(cfg["k"])
    if cfg["arch"] == "topk":
        return mask_from_topk(rho, k)
    if cfg["train"]:
        return mask_from_topk(rho.reshape(1, -1), k * B).reshape(B, G)
    return (rho >= theta).to(rho.dtype)


def auxk(cfg, pre, a, rho, dead, W_dec, e):
    """mean_b ||e - e_hat||^2 over the row's aux_k dead groups of largest rho."""
    s = int(cfg["group_size"])
    B, n = pre.shape
    G = n // s
    dead_g = dead.view(G, s).all(1)
    ka = min(int(cfg["aux_k"]), int(dead_g.sum()))
    if s == 1:
        scores = pre.masked_fill(~dead_g.unsqueeze(0), float("-inf"))
        za = torch.relu(pre) * mask_from_topk(scores, ka)
    else:
        scores = rho.masked_fill(~dead_g.unsqueeze(0), -1.0)
        za = (a * mask_from_topk(scores, ka).unsqueeze(-1)).reshape(B, n)
    e_hat = za @ W_dec
    return ((e - e_hat) ** 2).sum(1).mean()


def reference(cfg, p, x, dead, theta):
    """Loss, z, x_hat (float64) and the parameter gradients by autograd."""
    s = int(cfg["group_size"])
    n = p["b_enc"].shape[0]
    pre = (x - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
    B = pre.shape[0]
    a = torch.relu(pre).view(B, n // s, s)
    rho = a.detach().pow(2).sum(-1).sqrt()
    if s == 1:
        z = torch.relu(pre) * select_ordinary(cfg, pre.detach(), theta)
    else:
        z = (a * select_groups(cfg, rho, theta).unsqueeze(-1)).reshape(B, n)
    x_hat = z @ p["W_dec"] + p["b_dec"]
    loss = ((x_hat - x) ** 2).sum(1).mean() + cfg["orth_coef"] * orth_penalty(p["W_dec"], s)
    dead_any = dead.view(n // s, s).all(1).any()
    if cfg["train"] and cfg["aux_k_coef"] > 0 and dead_any:
        loss = loss + cfg["aux_k_coef"] * auxk(cfg, pre, a, rho, dead, p["W_dec"], (x - x_hat).detach())
    loss.backward()
    out = {"loss": loss.detach(), "z": z.detach(), "x_hat": x_hat.detach()}
    for k in PARAMS:
        out["grad_" + k] = p[k].grad
    if cfg["arch"] == "batchtopk":
        out["grad_threshold"] = torch.zeros(1, dtype=torch.float64)
    return out


WORST = [0.0, 0.0]  # the largest gradient differences over all cases: abs, relative to max|ref|


def check_case(case):
    cfg = read_config(case, text_keys=("arch",))
    p = {k: load64(case, k, grad=True) for k in PARAMS}
    dead = torch.tensor(load(case, "dead")) != 0
    theta = float(load(case, "threshold")[0]) if cfg["arch"] == "batchtopk" else 0.0
    ref = reference(cfg, p, load64(case, "x"), dead, theta)
    return verdict(case, compare_all(case, ref, worst=WORST))


def summary():
    print(f"all cases: largest gradient difference {WORST[0]:.3e} abs, {WORST[1]:.3e} relative to max|ref|")


if __name__ == "__main__":
    sys.exit(main(__doc__, check_case, summary))
