#!/usr/bin/python3
"""ref_torch -- an independent PyTorch (float64, autograd) reference for the relu SAE.

Usage: ref_torch.py CASE_DIR [CASE_DIR ...]

Each CASE_DIR (written by tests/test_ref.c) holds config.txt ("key value" lines:
group_size (0: a group table, in group_of.npy, each latent's group), coef, orth_coef, threshold,
bandwidth), the parameters W_enc (dim, n), b_enc (n),
W_dec (n, dim), b_dec (dim), the batch x (B, dim), and the C results: loss (),
z (B, n), x_hat (B, dim) and grad_<param> for every parameter, all as .npy.
The loss is recomputed here from the definition in include/sae.h:

  loss = mean_b [ sum_d (x_hat - x)^2 + coef * sum_g ||z_g|| ] + orth_coef * sum_g sum_{i!=j} relu(d_i.d_j)

with d||z_g||/dz_g = 0 at z_g = 0, and (threshold > 0) z_g = H(rho_g - threshold) relu(pre_g),
rho_g = ||relu(pre_g)||, where the step H is a custom autograd Function whose backward is
JumpReLU's rectangle-kernel pseudo-derivative with respect to rho:
dH/drho = [|rho - threshold| < bandwidth/2] / bandwidth (rho > 0). Every tensor must satisfy
    max|c - ref| <= ABS_TOL + REL_TOL * max|ref|
Prints one line per tensor and "case DIR: PASS|FAIL" per case; exits 1 if any case fails.
"""
import os
import sys

import numpy as np
from ref_common import compare_all, load64, main, read_config, torch, verdict

PARAMS = ["W_enc", "b_enc", "W_dec", "b_dec"]


def group_norm_sq(sq):
    """sqrt of the groups' squared norms, with gradient 0 where a group is 0."""
    safe = torch.where(sq > 0, sq, torch.ones_like(sq))
    return torch.where(sq > 0, torch.sqrt(safe), torch.zeros_like(sq))


class Step(torch.autograd.Function):
    """H(rho - threshold) with the rectangle-kernel pseudo-derivative in rho."""

    @staticmethod
    def forward(ctx, rho, threshold, bandwidth):
        ctx.save_for_backward(rho)
        ctx.threshold, ctx.bandwidth = threshold, bandwidth
        return (rho >= threshold).to(rho.dtype)

    @staticmethod
    def backward(ctx, g):
        (rho,) = ctx.saved_tensors
        window = ((rho - ctx.threshold).abs() < ctx.bandwidth / 2) & (rho > 0)
        return g * window.to(rho.dtype) / ctx.bandwidth, None, None


def groups_of(cfg, case, n):
    """Each latent's group (n,) as int64: group_of.npy when the case has a group table, else i // s."""
    path = os.path.join(case, "group_of.npy")
    if int(cfg["group_size"]) == 0:
        return torch.from_numpy(np.load(path)).to(torch.int64)
    return torch.arange(n) // int(cfg["group_size"])


def reference(cfg, p, x, of):
    """Loss, z, x_hat (float64) and the parameter gradients by autograd; of (n,): latent -> group.
    Groups may have any sizes and members: a one-hot (n, G) membership matrix M gives each group's
    squared norm as relu(pre)^2 @ M, and a group's value back on its members as (.) @ M^T."""
    n = p["b_enc"].shape[0]
    M = torch.nn.functional.one_hot(of, int(of.max()) + 1).to(torch.float64)  # (n, G)
    pre = (x - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
    a = torch.relu(pre)  # (B, n)
    norm = group_norm_sq(a * a @ M)  # (B, G)
    if cfg["threshold"] > 0:
        keep = Step.apply(norm, cfg["threshold"], cfg["bandwidth"])
        a = a * (keep @ M.T)
        norm = norm * keep
    z = a
    x_hat = z @ p["W_dec"] + p["b_dec"]
    mse = ((x_hat - x) ** 2).sum(1).mean()
    sparsity = norm.sum(1).mean()
    gram = p["W_dec"] @ p["W_dec"].T  # (n, n)
    same = (M @ M.T) * (1.0 - torch.eye(n, dtype=gram.dtype))  # pairs i != j in one group
    loss = mse + cfg["coef"] * sparsity + cfg["orth_coef"] * torch.relu(gram * same).sum()
    loss.backward()
    out = {"loss": loss.detach(), "z": z.detach(), "x_hat": x_hat.detach()}
    for k in PARAMS:
        out["grad_" + k] = p[k].grad
    return out


def check_case(case):
    cfg = read_config(case)
    p = {k: load64(case, k, grad=True) for k in PARAMS}
    of = groups_of(cfg, case, p["b_enc"].shape[0])
    return verdict(case, compare_all(case, reference(cfg, p, load64(case, "x"), of)))


if __name__ == "__main__":
    sys.exit(main(__doc__, check_case))
