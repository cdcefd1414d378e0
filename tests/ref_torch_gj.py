#!/usr/bin/python3
"""ref_torch_gj -- an independent PyTorch (float64, autograd) reference for the gated
and jumprelu SAEs (core/sae_gated.c, core/sae_jumprelu.c).

Usage: ref_torch_gj.py CASE_DIR [CASE_DIR ...]

Each CASE_DIR (written by tests/test_ref_gj.c) holds config.txt ("key value" lines: arch
(1 gated, 4 jumprelu), group_size, coef, orth_coef, bandwidth), the parameters W_enc (dim, n),
b_enc (n), W_dec (n, dim), b_dec (dim) and the extras (gated: r_mag (n), b_mag (n);
jumprelu: log_theta (n/s)), the batch x (B, dim), and the C results: loss (), z (B, n),
x_hat (B, dim) and grad_<param> for every parameter, all as .npy.

gated (Rajamanoharan et al. 2024), groups of s latents:
  pi_gate = (x - b_dec) W_enc + b_enc, pi_mag = (x - b_dec) (W_enc * exp(r_mag)) + b_mag,
  z_g = 1[||relu(pi_gate_g)|| > 0] relu(pi_mag_g),
  loss = mean_b [ ||x_hat - x||^2 + coef sum_g ||relu(pi_gate_g)|| + ||x - relu(pi_gate) W_dec' - b_dec'||^2 ]
         + orth_coef orth, with W_dec', b_dec' detached copies and the gate mask detached.
jumprelu (Rajamanoharan et al. 2024b), one threshold per group, theta = exp(log_theta):
  rho_g = ||relu(pre_g)|| if positive, else max(pre_g);  z_g = relu(pre_g) H(rho_g - theta_g),
  loss = mean_b [ ||x_hat - x||^2 + coef sum_g H(rho_g - theta_g) ] + orth_coef orth,
  with the paper's straight-through pseudo-derivatives (custom autograd Functions below):
  dH/dtheta = -(1/eps) K, dz_g/dtheta = -(theta/eps) K dir_g, K = 1[|rho - theta| < eps/2],
  dir_g = relu(pre_g)/rho_g (or the unit vector of the largest pre when none is positive),
  and no gradient to pre through the step.
For group_size 1 each case is also checked against the published, elementwise SAE
(the paper's pseudo-code for jumprelu), which the grouped form must reduce to exactly.
Every tensor must satisfy  max|c - ref| <= ABS_TOL + REL_TOL * max|ref|.
Prints one line per tensor and "case DIR: PASS|FAIL" per case; exits 1 if any case fails.
"""
import sys

from ref_common import compare_all, group_norm, load, load64, main, orth_penalty, read_config, torch, verdict

BASE = ["W_enc", "b_enc", "W_dec", "b_dec"]
EXTRAS = {1: ["r_mag", "b_mag"], 4: ["log_theta"]}
GATED, JUMPRELU = 1, 4


# ---- gated ----

def gated_grouped(cfg, p, x):
    s = int(cfg["group_size"])
    n = p["b_enc"].shape[0]
    xc = x - p["b_dec"]
    pi_gate = xc @ p["W_enc"] + p["b_enc"]
    pi_mag = xc @ (p["W_enc"] * torch.exp(p["r_mag"])) + p["b_mag"]
    u = torch.relu(pi_gate)
    gate_norm = group_norm(u.view(-1, n // s, s))
    gate_open = (gate_norm > 0).to(x.dtype).detach()
    z = (gate_open.unsqueeze(-1) * torch.relu(pi_mag).view(-1, n // s, s)).reshape(-1, n)
    x_aux = u @ p["W_dec"].detach() + p["b_dec"].detach()
    return z, gate_norm.sum(1).mean(), ((x - x_aux) ** 2).sum(1).mean()


def gated_elementwise(cfg, p, x):
    """The paper's gated SAE (group_size 1)."""
    xc = x - p["b_dec"]
    pi_gate = xc @ p["W_enc"] + p["b_enc"]
    pi_mag = xc @ (p["W_enc"] * torch.exp(p["r_mag"])) + p["b_mag"]
    z = (pi_gate > 0).to(x.dtype) * torch.relu(pi_mag)
    x_aux = torch.relu(pi_gate) @ p["W_dec"].detach() + p["b_dec"].detach()
    return z, torch.relu(pi_gate).sum(1).mean(), ((x - x_aux) ** 2).sum(1).mean()


# ---- jumprelu ----

def signed_rho(pre):
    """(B, G, s) -> rho (B, G), the index of each group's largest pre."""
    r = torch.clamp(pre, min=0)
    sq = (r * r).sum(-1)
    mx, arg = pre.max(-1)
    return torch.where(sq > 0, torch.sqrt(torch.where(sq > 0, sq, torch.ones_like(sq))), mx), arg


def open_direction(pre, rho, arg):
    r = torch.clamp(pre, min=0)
    onehot = torch.nn.functional.one_hot(arg, pre.shape[-1]).to(pre.dtype)
    return torch.where((rho > 0).unsqueeze(-1), r / torch.where(rho > 0, rho, torch.ones_like(rho)).unsqueeze(-1),
                       onehot)


class GroupJumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, theta, eps):
        rho, arg = signed_rho(pre)
        opened = rho > theta
        ctx.save_for_backward(pre, theta, rho, arg)
        ctx.eps = eps
        return torch.clamp(pre, min=0) * opened.unsqueeze(-1).to(pre.dtype)

    @staticmethod
    def backward(ctx, gz):
        pre, theta, rho, arg = ctx.saved_tensors
        eps = ctx.eps
        opened = (rho > theta).unsqueeze(-1).to(pre.dtype)
        gpre = gz * opened * (pre > 0).to(pre.dtype)
        K = ((rho - theta).abs() < eps / 2).to(pre.dtype)
        dot = (gz * open_direction(pre, rho, arg)).sum(-1)
        gtheta = (-(theta / eps) * K * dot).sum(0)
        return gpre, gtheta, None


class GroupStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, theta, eps):
        rho, _ = signed_rho(pre)
        ctx.save_for_backward(rho, theta)
        ctx.eps = eps
        return (rho > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, g):
        rho, theta = ctx.saved_tensors
        eps = ctx.eps
        K = ((rho - theta).abs() < eps / 2).to(g.dtype)
        return None, (-(1.0 / eps) * K * g).sum(0), None


def jumprelu_grouped(cfg, p, x):
    s = int(cfg["group_size"])
    n = p["b_enc"].shape[0]
    pre = ((x - p["b_dec"]) @ p["W_enc"] + p["b_enc"]).view(-1, n // s, s)
    theta = torch.exp(p["log_theta"])
    z = GroupJumpReLU.apply(pre, theta, cfg["bandwidth"]).reshape(-1, n)
    l0 = GroupStep.apply(pre, theta, cfg["bandwidth"]).sum(1).mean()
    return z, l0, None


def rectangle(u):
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class PaperJumpReLU(torch.autograd.Function):
    """The paper's pseudo-code, elementwise."""
    @staticmethod
    def forward(ctx, x, threshold, bandwidth):
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        return x * (x > threshold).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        x, threshold = ctx.saved_tensors
        bw = ctx.bandwidth
        x_grad = (x > threshold).to(x.dtype) * g
        t_grad = (-(threshold / bw) * rectangle((x - threshold) / bw) * g).sum(0)
        return x_grad, t_grad, None


class PaperStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, threshold, bandwidth):
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        return (x > threshold).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        x, threshold = ctx.saved_tensors
        bw = ctx.bandwidth
        return torch.zeros_like(x), (-(1.0 / bw) * rectangle((x - threshold) / bw) * g).sum(0), None


def jumprelu_elementwise(cfg, p, x):
    pre = (x - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
    theta = torch.exp(p["log_theta"])
    z = PaperJumpReLU.apply(pre, theta, cfg["bandwidth"])
    l0 = PaperStep.apply(pre, theta, cfg["bandwidth"]).sum(1).mean()
    return z, l0, None


# ---- checking ----

MODELS = {GATED: (gated_grouped, gated_elementwise), JUMPRELU: (jumprelu_grouped, jumprelu_elementwise)}


def reference(cfg, arrays, x, model):
    names = BASE + EXTRAS[int(cfg["arch"])]
    p = {k: torch.tensor(arrays[k], dtype=torch.float64, requires_grad=True) for k in names}
    z, sparsity, aux = model(cfg, p, x)
    x_hat = z @ p["W_dec"] + p["b_dec"]
    loss = ((x_hat - x) ** 2).sum(1).mean() + cfg["coef"] * sparsity
    loss = loss + cfg["orth_coef"] * orth_penalty(p["W_dec"], int(cfg["group_size"]))
    if aux is not None:
        loss = loss + aux
    loss.backward()
    out = {"loss": loss.detach(), "z": z.detach(), "x_hat": x_hat.detach()}
    for k in names:
        out["grad_" + k] = p[k].grad if p[k].grad is not None else torch.zeros_like(p[k])
    return out


def check_case(case):
    cfg = read_config(case)
    arch = int(cfg["arch"])
    arrays = {k: load(case, k) for k in BASE + EXTRAS[arch]}
    x = load64(case, "x")
    grouped, elementwise = MODELS[arch]
    ok = compare_all(case, reference(cfg, arrays, x, grouped), "grouped ")
    if int(cfg["group_size"]) == 1:
        ok &= compare_all(case, reference(cfg, arrays, x, elementwise), "paper   ")
    return verdict(case, ok)


if __name__ == "__main__":
    sys.exit(main(__doc__, check_case))
