"""Shared pieces of the Python benchmark peers (ref_numpy.py, ref_torch.py).

Nothing here imports numpy at module level: the peers must set the BLAS
thread environment (set_thread_env) before numpy or torch is first imported.
Heavy imports are done inside the functions that need them.

Data: the circles benchmark. Circle i in R^dim has two random unit vectors
a_i, b_i (not orthogonalised). A row activates each circle independently with
probability p_active; an active circle draws theta ~ U[0, 2 pi), r ~ U[1, 1]
and adds r (a_i cos theta + b_i sin theta). A pool of a few batches is made
before any timing and the training loop cycles through it.
"""
import argparse
import os
import resource
import sys
import time

THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(prog, argv=None):
    p = argparse.ArgumentParser(prog=prog, description=sys.modules["__main__"].__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, help="n, the number of latents (required unless --selftest)")
    p.add_argument("--group-size", type=int, default=2, help="s, latents per group (n %% s == 0)")
    p.add_argument("--batch", type=int, default=4096, help="B, rows per step")
    p.add_argument("--dim", type=int, default=200, help="d, the input dimension")
    p.add_argument("--n-circles", type=int, default=1600)
    p.add_argument("--p-active", type=float, default=0.002)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sparsity", type=float, default=0.1, help="c, the group-norm penalty weight")
    p.add_argument("--orth", type=float, default=0.01, help="the within-group orthogonality weight")
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pool-batches", type=int, default=4, help="batches generated before timing")
    p.add_argument("--selftest", action="store_true", help="check the gradients / the step, then exit")
    a = p.parse_args(argv)
    if not a.selftest:
        if a.width is None or a.width < 1:
            p.error("--width N (N >= 1) is required")
        if a.group_size < 1 or a.width % a.group_size:
            p.error("--width must be a multiple of --group-size")
        if min(a.batch, a.dim, a.n_circles, a.steps, a.threads, a.pool_batches) < 1 or a.warmup < 0:
            p.error("batch, dim, n-circles, steps, threads, pool-batches must be >= 1, warmup >= 0")
    return a


def set_thread_env(argv=None):
    """Reads --threads T from argv (default 2) and exports it to the BLAS and
    OpenMP thread variables. Call before numpy or torch is imported. Returns T."""
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--threads", type=int, default=2)
    t = max(1, p.parse_known_args(argv)[0].threads)
    for k in THREAD_VARS:
        os.environ[k] = str(t)
    return t


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- data ----

def circles_pool(rng, n_batches, B, dim, n_circles, p_active, r_lo=1.0, r_hi=1.0):
    """n_batches float32 arrays (B, dim) of circles rows, from numpy Generator rng."""
    import numpy as np
    A = rng.standard_normal((n_circles, dim))          # (n_circles, dim) a_i
    Bv = rng.standard_normal((n_circles, dim))         # (n_circles, dim) b_i
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    Bv /= np.linalg.norm(Bv, axis=1, keepdims=True)
    pool = []
    for _ in range(n_batches):
        on = rng.random((B, n_circles)) < p_active     # (B, n_circles) active circles
        k = int(on.sum())
        theta = rng.uniform(0.0, 2.0 * np.pi, k)       # (k)
        r = rng.uniform(r_lo, r_hi, k)                 # (k)
        C = np.zeros((B, n_circles))                   # (B, n_circles) r cos theta
        S = np.zeros((B, n_circles))                   # (B, n_circles) r sin theta
        C[on] = r * np.cos(theta)
        S[on] = r * np.sin(theta)
        pool.append((C @ A + S @ Bv).astype(np.float32))  # (B, dim)
    return pool


def init_params(rng, dim, n, dtype="float32"):
    """saed's initialisation (sae_params_init): W_dec rows random unit vectors,
    W_enc = min(1, dim/n) W_dec^T (the scale keeps the first reconstruction
    near x/2 instead of n/(2 dim) x), zero biases. Returns a dict of numpy arrays."""
    import numpy as np
    W_dec = rng.standard_normal((n, dim))              # (n, dim)
    W_dec /= np.linalg.norm(W_dec, axis=1, keepdims=True)
    W_dec = W_dec.astype(dtype)
    return {
        "W_enc": np.ascontiguousarray(W_dec.T * min(1.0, dim / n), dtype=dtype),  # (dim, n)
        "b_enc": np.zeros(n, dtype),                   # (n)
        "W_dec": W_dec,                                # (n, dim)
        "b_dec": np.zeros(dim, dtype),                 # (dim)
    }


# ---- timing and report ----

def run_timed(step, pool, warmup, steps):
    """Runs warmup untimed steps then steps timed ones; step(x) -> loss (float).
    Returns (seconds per timed step, loss of the first step, loss of the last)."""
    losses, times = [], []
    t_start = time.perf_counter()
    for i in range(warmup + steps):
        x = pool[i % len(pool)]
        t0 = time.perf_counter()
        losses.append(step(x))
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
        log(f"  step {i + 1}/{warmup + steps}{' (warm-up)' if i < warmup else ''}: "
            f"{dt:.3f} s, loss {losses[-1]:.6g} ({time.perf_counter() - t_start:.0f} s)")
    return times, losses[0], losses[-1]


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def blas_name():
    """Best effort, one token: the BLAS actually mapped into this process (call
    after a matmul), e.g. openblas-pthread-0.3.21-SkylakeX."""
    import ctypes
    try:
        libs = sorted({ln.split()[-1] for ln in open("/proc/self/maps")
                       if "/" in ln and any(w in ln.lower() for w in ("blas", "mkl", "blis"))})
    except OSError:
        return "unknown"
    for path in libs:
        low = path.lower()
        if "openblas" in low:
            variant = next((v for v in ("openblas-pthread", "openblas-openmp", "openblas-serial")
                            if v in low), "openblas")
            try:
                f = ctypes.CDLL(path).openblas_get_config
                f.restype = ctypes.c_char_p
                words = f().decode().split()           # OpenBLAS 0.3.21 ... SkylakeX MAX_THREADS=64
                log(f"blas: {path}: {' '.join(words)}, {ctypes.CDLL(path).openblas_get_num_threads()} threads")
                core = next((w for w in reversed(words) if "=" not in w and w.isalnum()), "")
                return "-".join(x for x in (variant, words[1], core) if x)
            except (OSError, AttributeError, IndexError):
                return variant
    for path in libs:
        low = path.lower()
        if "mkl" in low:
            return "mkl"
        if "blis" in low:
            return "blis"
        if "/blas/libblas" in low:
            return "netlib-refblas"
    return "unknown"


def report(name, a, times, loss_first, loss_last, blas):
    """Prints the one stdout line bench/run.sh parses."""
    import numpy as np
    t = np.asarray(times, dtype=np.float64)            # (steps) seconds
    sps = a.batch / t                                  # (steps) samples/s
    fields = [
        name, f"width={a.width}", f"gs={a.group_size}", f"batch={a.batch}", f"dim={a.dim}",
        f"threads={a.threads}", f"steps={len(t)}",
        f"sps_median={np.median(sps):.1f}", f"sps_p10={np.percentile(sps, 10):.1f}",
        f"sps_p90={np.percentile(sps, 90):.1f}", f"step_s_median={np.median(t):.6g}",
        f"loss_first={loss_first:.6g}", f"loss_last={loss_last:.6g}",
        f"rss_mb={peak_rss_mb():.0f}", f"blas={blas}",
    ]
    print(" ".join(fields), flush=True)
