"""ref_numpy — the NumPy benchmark peer of saed's trainer (`make bench`).

One training step of the relu group SAE, written densely with a hand-written
backward pass (vectorised, BLAS matmuls, no Python loops over rows or latents;
the group norms loop over the s positions within a group, each op over all
rows and groups):

  xc    = x - b_dec                  (B, d)
  pre   = xc @ W_enc + b_enc         (B, n)    W_enc (d, n), b_enc (n)
  z     = relu(pre)                  (B, n)
  gnorm = ||z[:, group g]||_2        (B, G)    G = n / s, contiguous groups of s
  x_hat = z @ W_dec + b_dec          (B, d)    W_dec (n, d) unit rows, b_dec (d)
  loss  = mean_b [ sum_d (x_hat - x)^2 + c sum_g gnorm ]
          + orth * sum_g sum_{i != j in g} relu(d_i . d_j)   (ordered pairs, not / B)

then, in saed's order: project each decoder row's gradient onto its row's
tangent space, Adam (beta1 0.9, beta2 0.999, eps 1e-8, bias-corrected), and
renormalise the decoder rows. float32 throughout; d gnorm/dz = 0 where gnorm
is 0 and relu'(0) = 0, as in include/sae.h. Adam's m and v are shaped like
the four parameters. Initialisation as saed's sae_params_init: W_dec random
unit rows, W_enc = min(1, d/n) W_dec^T, zero biases.

What is timed: only the training step (loss, gradients, projection, Adam,
renormalisation), each step on its own with time.perf_counter(). The circles
batches are generated with NumPy before timing (a pool of --pool-batches
float32 arrays (B, d), cycled), which favours this reference: saed's timed steps include
generating their rows. lr and the sparsity coefficient are constant (no
warm-up). loss_first is the loss of the very first (warm-up) step, loss_last
that of the last timed step.

Output: one line of key=value pairs on stdout; progress on stderr.
  --selftest: compares the hand-written gradients with torch autograd (float64)
  and with central finite differences of this loss, then exits (1 on failure).
"""
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_common as rc  # noqa: E402

if __name__ == "__main__":
    rc.set_thread_env()  # before numpy is imported

import numpy as np  # noqa: E402

ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8


# ---- loss and gradient ----

def orth_term(W_dec, s):
    """sum_g sum_{i != j in g} relu(d_i . d_j) and its gradient (n, d)."""
    n, d = W_dec.shape
    D = W_dec.reshape(n // s, s, d)                    # (G, s, d) decoder rows by group
    gram = D @ D.transpose(0, 2, 1)                    # (G, s, s) d_i . d_j
    off = ~np.eye(s, dtype=bool)                       # (s, s) i != j
    pos = (gram > 0) & off                             # (G, s, s)
    value = gram[pos].sum(dtype=np.float64)
    # each unordered pair appears twice (i,j) and (j,i): d/d d_i = 2 sum_{j: pos} d_j
    grad = 2.0 * (pos.astype(W_dec.dtype) @ D)         # (G, s, d)
    return value, grad.reshape(n, d)


def loss_and_grads(P, x, c, orth, s):
    """The loss (float) and a dict of gradients shaped like P, for a batch x (B, d)."""
    W_enc, b_enc, W_dec, b_dec = P["W_enc"], P["b_enc"], P["W_dec"], P["b_dec"]
    B = x.shape[0]
    # forward
    xc = x - b_dec                                     # (B, d)
    z = xc @ W_enc                                     # (B, n) pre, then z in place
    z += b_enc
    np.maximum(z, 0, out=z)                            # relu; z > 0 iff pre > 0
    # group norms: a loop over the s positions within a group (s is small),
    # each vectorised over all rows and groups; z[:, j::s] (B, G) is position j
    gnorm = np.sqrt(sum(z[:, j::s] * z[:, j::s] for j in range(s)))   # (B, G)
    r = z @ W_dec                                      # (B, d) x_hat - x
    r += b_dec
    r -= x
    sse = np.einsum("bd,bd->", r, r)
    loss = (float(sse) + c * float(gnorm.sum(dtype=np.float64))) / B
    # backward
    dx_hat = r * (2.0 / B)                             # (B, d) d loss/d x_hat
    dW_dec = z.T @ dx_hat                              # (n, d)
    dz = dx_hat @ W_dec.T                              # (B, n) d loss/d z
    # sparsity: (c/B) z / gnorm; where gnorm == 0 the group's z is 0, so its term is 0
    inv = (c / B) / np.where(gnorm > 0, gnorm, 1)     # (B, G)
    for j in range(s):
        dz[:, j::s] += z[:, j::s] * inv                # (B, G) strided views
    dz *= z > 0                                        # (B, n) now d loss/d pre
    db_enc = dz.sum(axis=0)                            # (n)
    dW_enc = xc.T @ dz                                 # (d, n)
    # b_dec enters x_hat directly and through xc: d/d b_dec = sum_b dx_hat - W_enc db_enc
    db_dec = dx_hat.sum(axis=0) - W_enc @ db_enc       # (d)
    if orth:
        ov, og = orth_term(W_dec, s)
        loss += orth * ov
        dW_dec += orth * og
    return float(loss), {"W_enc": dW_enc, "b_enc": db_enc, "W_dec": dW_dec, "b_dec": db_dec}


def loss_only(P, x, c, orth, s):
    """The same loss, forward only (for finite differences)."""
    B = x.shape[0]
    z = np.maximum((x - P["b_dec"]) @ P["W_enc"] + P["b_enc"], 0)   # (B, n)
    gnorm = np.linalg.norm(z.reshape(B, -1, s), axis=2)              # (B, G)
    r = z @ P["W_dec"] + P["b_dec"] - x                              # (B, d)
    loss = ((r * r).sum() + c * gnorm.sum()) / B
    return loss + orth * orth_term(P["W_dec"], s)[0] if orth else loss


# ---- the rest of the step ----

def project_decoder_grad(W_dec, g):
    """g_i -= (g_i . d_i / d_i . d_i) d_i for every row, in place. W_dec, g (n, d)."""
    dd = np.einsum("nd,nd->n", W_dec, W_dec)           # (n)
    gd = np.einsum("nd,nd->n", g, W_dec)               # (n)
    f = np.zeros_like(dd)
    np.divide(gd, dd, out=f, where=dd > 0)
    g -= f[:, None] * W_dec


def normalize_rows(W):
    """Every row of W (n, d) to unit norm, in place (zero rows left alone)."""
    norm = np.sqrt(np.einsum("nd,nd->n", W, W))        # (n)
    inv = np.ones_like(norm)
    np.divide(1.0, norm, out=inv, where=norm > 0)
    W *= inv[:, None]


class Adam:
    """Adam with bias correction, as saed's train_adam:
    m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)."""

    def __init__(self, P, lr, b1=ADAM_B1, b2=ADAM_B2, eps=ADAM_EPS):
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0
        self.m = {k: np.zeros_like(p) for k, p in P.items()}   # shapes of P
        self.v = {k: np.zeros_like(p) for k, p in P.items()}

    def step(self, P, grads):
        self.t += 1
        step_size = self.lr / (1.0 - self.b1 ** self.t)
        inv_sqrt_bc2 = 1.0 / math.sqrt(1.0 - self.b2 ** self.t)
        for k, p in P.items():
            g, m, v = grads[k], self.m[k], self.v[k]
            m *= self.b1
            m += (1.0 - self.b1) * g
            v *= self.b2
            v += (1.0 - self.b2) * (g * g)
            denom = np.sqrt(v)
            denom *= inv_sqrt_bc2
            denom += self.eps
            p -= step_size * (m / denom)


class Trainer:
    """Parameters P (dict of numpy arrays), Adam state and the step."""

    def __init__(self, P, lr, c, orth, s):
        self.P, self.c, self.orth, self.s = P, c, orth, s
        self.opt = Adam(P, lr)

    def step(self, x):
        """One training step on x (B, d); returns the loss before the update."""
        loss, grads = loss_and_grads(self.P, x, self.c, self.orth, self.s)
        project_decoder_grad(self.P["W_dec"], grads["W_dec"])
        self.opt.step(self.P, grads)
        normalize_rows(self.P["W_dec"])
        return loss


# ---- self-test ----

def selftest_params(rng, d, n, s, dtype=np.float64):
    """Random untied parameters with about half the pre-activations positive,
    some all-zero groups and some positive within-group overlaps."""
    W_dec = rng.standard_normal((n, d))
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
    P = {"W_enc": rng.standard_normal((d, n)) * 0.5,
         "b_enc": rng.standard_normal(n) * 0.3,
         "W_dec": W_dec,
         "b_dec": rng.standard_normal(d) * 0.1}
    P["b_enc"][:s] = -100.0                            # group 0 always off (gnorm 0)
    return {k: v.astype(dtype) for k, v in P.items()}


def max_diffs(a, b):
    """(max abs diff, max abs diff / max(|b|, tiny))."""
    diff = float(np.max(np.abs(a - b)))
    return diff, diff / max(float(np.max(np.abs(b))), 1e-300)


def selftest():
    import torch
    import ref_torch
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    ok = True
    for (d, n, s, B) in ((7, 12, 2, 6), (7, 12, 3, 6), (5, 8, 1, 4)):
        c, orth = 0.7, 0.3
        P = selftest_params(rng, d, n, s)
        x = rng.standard_normal((B, d))
        loss, g = loss_and_grads(P, x, c, orth, s)
        z = np.maximum((x - P["b_dec"]) @ P["W_enc"] + P["b_enc"], 0)
        n_orth = int(((orth_term(P["W_dec"], s)[1] != 0).any(axis=1)).sum())
        print(f"shape d={d} n={n} s={s} B={B}: {np.mean(z > 0):.0%} of z positive, "
              f"{int((np.linalg.norm(z.reshape(B, -1, s), axis=2) == 0).sum())} zero (row, group) norms, "
              f"{n_orth} decoder rows with an orth gradient, loss {loss:.10g}")
        # torch autograd of ref_torch's loss, float64
        T = {k: torch.tensor(v, requires_grad=True) for k, v in P.items()}
        tl = ref_torch.loss_fn(T, torch.tensor(x), c, orth, s)
        tl.backward()
        lerr = abs(float(tl) - loss) / abs(loss)
        print(f"  loss vs torch: rel diff {lerr:.2e}")
        ok &= lerr < 1e-12
        for k in P:
            a, r = max_diffs(g[k], T[k].grad.numpy())
            print(f"  {k:5s} vs torch autograd: max abs {a:.2e}, rel {r:.2e}")
            ok &= r < 1e-10
        # central finite differences of loss_only, a handful of entries per parameter
        h = 1e-6
        for k in P:
            worst = 0.0
            for idx in [tuple(rng.integers(0, m) for m in P[k].shape) for _ in range(6)]:
                keep = P[k][idx]
                P[k][idx] = keep + h
                lp = loss_only(P, x, c, orth, s)
                P[k][idx] = keep - h
                lm = loss_only(P, x, c, orth, s)
                P[k][idx] = keep
                fd = (lp - lm) / (2 * h)
                worst = max(worst, abs(fd - g[k][idx]) / max(abs(fd), 1e-3))
            print(f"  {k:5s} vs finite differences (6 entries): max rel {worst:.2e}")
            ok &= worst < 1e-6
    print("selftest: PASS" if ok else "selftest: FAIL")
    return 0 if ok else 1


# ---- main ----

def main():
    a = rc.parse_args("ref_numpy.py")
    if a.selftest:
        return selftest()
    rng = np.random.default_rng(a.seed)
    rc.log(f"ref_numpy: width {a.width}, group size {a.group_size}, batch {a.batch}, dim {a.dim}, "
           f"threads {a.threads}; generating {a.pool_batches} batches")
    pool = rc.circles_pool(rng, a.pool_batches, a.batch, a.dim, a.n_circles, a.p_active)
    tr = Trainer(rc.init_params(rng, a.dim, a.width), a.lr, a.sparsity, a.orth, a.group_size)
    times, l0, l1 = rc.run_timed(tr.step, pool, a.warmup, a.steps)
    rc.report("numpy", a, times, l0, l1, rc.blas_name())
    return 0


if __name__ == "__main__":
    sys.exit(main())
