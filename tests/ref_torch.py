#!/usr/bin/python3
"""ref_torch -- an independent PyTorch (float64, autograd) reference for the relu SAE.

Usage: ref_torch.py CASE_DIR [CASE_DIR ...]

Each CASE_DIR (written by tests/test_ref.c) holds config.txt ("key value" lines:
group_size, coef, orth_coef, threshold), the parameters W_enc (dim, n), b_enc (n),
W_dec (n, dim), b_dec (dim), the batch x (B, dim), and the C results: loss (),
z (B, n), x_hat (B, dim) and grad_<param> for every parameter, all as .npy.
The loss is recomputed here from the definition in include/sae.h:

  loss = mean_b [ sum_d (x_hat - x)^2 + coef * sum_g ||z_g|| ] + orth_coef * sum_g sum_{i!=j} relu(d_i.d_j)

with d||z_g||/dz_g = 0 at z_g = 0, and (threshold > 0) groups whose ||relu(pre)_g|| is
below the threshold zeroed by a constant mask. Every tensor must satisfy
    max|c - ref| <= ABS_TOL + REL_TOL * max|ref|
Prints one line per tensor and "case DIR: PASS|FAIL" per case; exits 1 if any case fails.
"""
import os
import sys

import numpy as np

try:
    import torch
except ImportError:
    print("ref_torch: cannot import torch; install Debian's python3-torch", flush=True)
    sys.exit(2)

ABS_TOL = 1e-5
REL_TOL = 1e-4
PARAMS = ["W_enc", "b_enc", "W_dec", "b_dec"]


def load(case, name):
    a = np.load(os.path.join(case, name + ".npy"))
    if a.dtype != np.dtype("<f4"):
        raise ValueError(f"{name}.npy has dtype {a.dtype}, expected <f4")
    return a


def read_config(case):
    cfg = {}
    with open(os.path.join(case, "config.txt")) as f:
        for line in f:
            key, value = line.split()
            cfg[key] = float(value)
    return cfg


def reference(cfg, p, x):
    """Loss, z, x_hat (float64) and the parameter gradients by autograd."""
    s = int(cfg["group_size"])
    n = p["b_enc"].shape[0]
    dim = p["b_dec"].shape[0]
    pre = (x - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
    a = torch.relu(pre).view(-1, n // s, s)
    sq = (a * a).sum(-1)
    safe = torch.where(sq > 0, sq, torch.ones_like(sq))
    norm = torch.where(sq > 0, torch.sqrt(safe), torch.zeros_like(sq))
    if cfg["threshold"] > 0:
        keep = (norm >= cfg["threshold"]).to(a.dtype).detach()
        a = a * keep.unsqueeze(-1)
        norm = norm * keep
    z = a.reshape(-1, n)
    x_hat = z @ p["W_dec"] + p["b_dec"]
    mse = ((x_hat - x) ** 2).sum(1).mean()
    sparsity = norm.sum(1).mean()
    D = p["W_dec"].view(n // s, s, dim)
    gram = D @ D.transpose(1, 2)
    off = 1.0 - torch.eye(s, dtype=gram.dtype)
    orth = torch.relu(gram * off).sum()
    loss = mse + cfg["coef"] * sparsity + cfg["orth_coef"] * orth
    loss.backward()
    out = {"loss": loss.detach(), "z": z.detach(), "x_hat": x_hat.detach()}
    for k in PARAMS:
        out["grad_" + k] = p[k].grad
    return out


def check_case(case):
    cfg = read_config(case)
    p = {k: torch.tensor(load(case, k), dtype=torch.float64, requires_grad=True) for k in PARAMS}
    x = torch.tensor(load(case, "x"), dtype=torch.float64)
    ref = reference(cfg, p, x)
    ok = True
    for name, r in ref.items():
        c = torch.tensor(load(case, name), dtype=torch.float64)
        if c.shape != r.shape:
            print(f"  {name:12s} shape {tuple(c.shape)} != reference {tuple(r.shape)}  FAIL")
            ok = False
            continue
        max_abs = (c - r).abs().max().item() if r.numel() else 0.0
        scale = r.abs().max().item() if r.numel() else 0.0
        tol = ABS_TOL + REL_TOL * scale
        good = max_abs <= tol
        ok &= good
        rel = max_abs / scale if scale > 0 else 0.0
        print(f"  {name:12s} max abs diff {max_abs:.3e}  max rel diff {rel:.3e}  (tol {tol:.1e})  "
              f"{'ok' if good else 'FAIL'}")
    print(f"case {case}: {'PASS' if ok else 'FAIL'}", flush=True)
    return ok


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    torch.set_grad_enabled(True)
    results = [check_case(case) for case in sys.argv[1:]]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
