"""ref_torch — the PyTorch benchmark peer of saed's trainer (`make bench`).

The same training step as ref_numpy.py (see its docstring and include/sae.h),
in PyTorch, torch.float32 on the CPU, with autograd for the gradient:

  xc    = x - b_dec                  (B, d)
  pre   = xc @ W_enc + b_enc         (B, n)    W_enc (d, n), b_enc (n)
  z     = relu(pre)                  (B, n)
  gnorm = ||z[:, group g]||_2        (B, G)    G = n / s, contiguous groups of s
  x_hat = z @ W_dec + b_dec          (B, d)    W_dec (n, d) unit rows, b_dec (d)
  loss  = mean_b [ sum_d (x_hat - x)^2 + c sum_g gnorm ]
          + orth * sum_g sum_{i != j in g} relu(d_i . d_j)   (ordered pairs, not / B)

loss.backward(), then under torch.no_grad(): project W_dec's gradient rows onto
their rows' tangent spaces, torch.optim.Adam (beta1 0.9, beta2 0.999, eps 1e-8;
its update is saed's train_adam; m and v shaped like the parameters),
renormalise the decoder rows. Initialisation as saed's: W_dec random unit
rows, W_enc = min(1, d/n) W_dec^T, zero biases.

What is timed: only the training step (zero_grad, forward, backward,
projection, Adam, renormalisation, loss.item()), each step on its own with
time.perf_counter(). The circles batches are generated with NumPy before
timing (a pool of --pool-batches float32 (B, d) batches, cycled, wrapped as tensors without a
copy), which favours this reference: saed's timed steps include generating
their rows. lr and the sparsity coefficient are constant (no warm-up).
loss_first is the loss of the very first (warm-up) step, loss_last that of the
last timed step. Threads: torch.set_num_threads(T), set_num_interop_threads(1),
and OPENBLAS/OMP/MKL_NUM_THREADS=T exported before torch is imported (torch's
matmuls go to the system BLAS).

Output: one line of key=value pairs on stdout; progress on stderr.
  --selftest: steps of this trainer against ref_numpy's from the same weights
  and batches (float64 and float32); all four parameters must agree.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_common as rc  # noqa: E402

if __name__ == "__main__":
    rc.set_thread_env()  # before torch (and numpy) are imported

import numpy as np  # noqa: E402
import torch  # noqa: E402

NAMES = ("W_enc", "b_enc", "W_dec", "b_dec")


def loss_fn(P, x, c, orth, s):
    """The loss (a 0-d tensor) of batch x (B, d); P a dict of leaf tensors."""
    W_enc, b_enc, W_dec, b_dec = P["W_enc"], P["b_enc"], P["W_dec"], P["b_dec"]
    B = x.shape[0]
    n, d = W_dec.shape
    z = torch.relu(torch.addmm(b_enc, x - b_dec, W_enc))           # (B, n)
    gnorm = torch.linalg.vector_norm(z.view(B, n // s, s), dim=2)  # (B, G); grad 0 at 0
    x_hat = torch.addmm(b_dec, z, W_dec)                           # (B, d)
    loss = ((x_hat - x) ** 2).sum() / B + c * gnorm.sum() / B
    if orth:
        D = W_dec.view(n // s, s, d)                               # (G, s, d)
        gram = D @ D.transpose(1, 2)                               # (G, s, s)
        off = ~torch.eye(s, dtype=torch.bool)                      # (s, s) i != j
        loss = loss + orth * torch.relu(gram[:, off]).sum()
    return loss


class Trainer:
    """Leaf tensors P, torch.optim.Adam and the step."""

    def __init__(self, P_np, lr, c, orth, s):
        """P_np: dict of numpy arrays (copied)."""
        self.P = {k: torch.tensor(P_np[k], requires_grad=True) for k in NAMES}
        self.c, self.orth, self.s = c, orth, s
        self.opt = torch.optim.Adam([self.P[k] for k in NAMES], lr=lr,
                                    betas=(0.9, 0.999), eps=1e-8)

    def step(self, x):
        """One training step on x (B, d) tensor; returns the loss before the update."""
        self.opt.zero_grad(set_to_none=True)
        loss = loss_fn(self.P, x, self.c, self.orth, self.s)
        loss.backward()
        W = self.P["W_dec"]                                        # (n, d)
        with torch.no_grad():
            g = W.grad                                             # (n, d)
            dd = (W * W).sum(dim=1)                                # (n)
            f = torch.where(dd > 0, (g * W).sum(dim=1) / dd, torch.zeros_like(dd))
            g -= f[:, None] * W
            self.opt.step()
            norm = W.norm(dim=1, keepdim=True)                     # (n, 1)
            W /= torch.where(norm > 0, norm, torch.ones_like(norm))
        return loss.item()

    def params_np(self):
        return {k: self.P[k].detach().numpy().copy() for k in NAMES}


# ---- self-test ----

def selftest():
    import ref_numpy
    torch.set_num_threads(1)
    rng = np.random.default_rng(2)
    ok = True
    d, n, s, B, steps = 7, 12, 2, 6, 3
    c, orth, lr = 0.7, 0.3, 0.01
    P0 = ref_numpy.selftest_params(rng, d, n, s)
    xs = [rng.standard_normal((B, d)) for _ in range(steps)]
    # (dtype, tolerance on max |param diff| / max |update|)
    for dtype, tol in ((np.float64, 1e-9), (np.float32, 1e-3)):
        P = {k: v.astype(dtype) for k, v in P0.items()}
        tn = ref_numpy.Trainer({k: v.copy() for k, v in P.items()}, lr, c, orth, s)
        tt = Trainer(P, lr, c, orth, s)
        print(f"{np.dtype(dtype).name}: d={d} n={n} s={s} B={B} c={c} orth={orth} lr={lr}, "
              f"tolerance max|diff| <= {tol:g} * max|update|")
        for t in range(steps):
            x = xs[t].astype(dtype)
            ln = tn.step(x)
            lt = tt.step(torch.from_numpy(x))
            Pt = tt.params_np()
            lrel = abs(ln - lt) / abs(ln)
            line = [f"  step {t + 1}: loss numpy {ln:.9g} torch {lt:.9g} (rel {lrel:.1e})"]
            ok &= lrel <= tol
            for k in NAMES:
                diff = float(np.max(np.abs(tn.P[k] - Pt[k])))
                upd = float(np.max(np.abs(tn.P[k] - P[k])))      # total change since start
                line.append(f"{k} {diff:.1e}/{upd:.1e}")
                ok &= diff <= tol * upd
            print("; ".join(line))
    print("selftest: PASS" if ok else "selftest: FAIL")
    return 0 if ok else 1


# ---- main ----

def main():
    a = rc.parse_args("ref_torch.py")
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    if a.selftest:
        return selftest()
    rng = np.random.default_rng(a.seed)
    rc.log(f"ref_torch {torch.__version__}: width {a.width}, group size {a.group_size}, "
           f"batch {a.batch}, dim {a.dim}, threads {torch.get_num_threads()}; "
           f"generating {a.pool_batches} batches")
    pool = [torch.from_numpy(x) for x in
            rc.circles_pool(rng, a.pool_batches, a.batch, a.dim, a.n_circles, a.p_active)]
    tr = Trainer(rc.init_params(rng, a.dim, a.width), a.lr, a.sparsity, a.orth, a.group_size)
    times, l0, l1 = rc.run_timed(tr.step, pool, a.warmup, a.steps)
    rc.report("torch", a, times, l0, l1, rc.blas_name())
    return 0


if __name__ == "__main__":
    sys.exit(main())
