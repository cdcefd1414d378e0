"""ref_common -- what the PyTorch reference scripts (tests/ref_torch*.py) share.

Each reference reads case directories written by its C test (tests/reftest.c): config.txt
("key value" lines) and float32 .npy tensors, recomputes the case in float64 with autograd,
and compares every C tensor with its reference:
    max|c - ref| <= ABS_TOL + REL_TOL * max|ref|
printing one line per tensor and "case DIR: PASS|FAIL" per case (the C test reads these
verdicts); the exit status is 1 if any case fails, 2 on a usage or import error.
Imported by the scripts from their own directory (sys.path[0]).
"""
import os
import sys

import numpy as np

ABS_TOL = 1e-5
REL_TOL = 1e-4

try:
    import torch
except ImportError:
    print(f"{os.path.basename(sys.argv[0])}: cannot import torch; install Debian's python3-torch", flush=True)
    sys.exit(2)


def load(case, name):
    """CASE/NAME.npy, which must be float32."""
    a = np.load(os.path.join(case, name + ".npy"))
    if a.dtype != np.dtype("<f4"):
        raise ValueError(f"{name}.npy has dtype {a.dtype}, expected <f4")
    return a


def load64(case, name, grad=False):
    """CASE/NAME.npy as a float64 tensor."""
    return torch.tensor(load(case, name), dtype=torch.float64, requires_grad=grad)


def read_config(case, text_keys=()):
    """config.txt as {key: float}, or the string itself for keys in text_keys."""
    cfg = {}
    with open(os.path.join(case, "config.txt")) as f:
        for line in f:
            key, value = line.split()
            cfg[key] = value if key in text_keys else float(value)
    return cfg


def group_norm(a):
    """||a_g|| over the last axis, with gradient 0 where the group is 0."""
    sq = (a * a).sum(-1)
    safe = torch.where(sq > 0, sq, torch.ones_like(sq))
    return torch.where(sq > 0, torch.sqrt(safe), torch.zeros_like(sq))


def orth_penalty(W_dec, s):
    """sum_g sum_{i!=j in g} relu(d_i . d_j) for W_dec (n, dim) in groups of s rows."""
    n, dim = W_dec.shape
    D = W_dec.view(n // s, s, dim)
    gram = D @ D.transpose(1, 2)
    off = 1.0 - torch.eye(s, dtype=gram.dtype)
    return torch.relu(gram * off).sum()


def compare(name, c, r, label="", worst=None):
    """One tensor against its reference: prints its line, returns whether it is within tolerance.
    worst (a [abs, rel] list), if given, keeps the largest gradient differences."""
    if c.shape != r.shape:
        print(f"  {label}{name:14s} shape {tuple(c.shape)} != reference {tuple(r.shape)}  FAIL")
        return False
    max_abs = (c - r).abs().max().item() if r.numel() else 0.0
    scale = r.abs().max().item() if r.numel() else 0.0
    tol = ABS_TOL + REL_TOL * scale
    rel = max_abs / scale if scale > 0 else 0.0
    if worst is not None and name.startswith("grad_"):
        worst[0] = max(worst[0], max_abs)
        worst[1] = max(worst[1], rel)
    good = max_abs <= tol
    print(f"  {label}{name:14s} max abs diff {max_abs:.3e}  max rel diff {rel:.3e}  (tol {tol:.1e})  "
          f"{'ok' if good else 'FAIL'}")
    return good


def compare_all(case, ref, label="", worst=None):
    """Every tensor of ref ({name: tensor}) against CASE/name.npy."""
    ok = True
    for name, r in ref.items():
        ok &= compare(name, load64(case, name), r, label, worst)
    return ok


def verdict(case, ok):
    print(f"case {case}: {'PASS' if ok else 'FAIL'}", flush=True)
    return ok


def main(doc, check_case, summary=None):
    """Runs check_case(case) -> bool over the case directories in argv; summary() may print a last line."""
    if len(sys.argv) < 2:
        print(doc)
        return 2
    torch.set_grad_enabled(True)
    results = [check_case(case) for case in sys.argv[1:]]
    if summary:
        summary()
    return 0 if all(results) else 1
