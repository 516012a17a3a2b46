"""Per-sample gradient std of d mean(w)/dkappa: hvae_ext (implicit) vs g_rep-only Wood with the exact b.

    python scripts/gradient_variance.py      # writes experiments/results/gradient_variance.md (the table of docs/gradients.md)

The second estimator is a Wood sampler in plain PyTorch with the cancellation-free exact b(kappa) and the gradient
through the accepted proposal only (g_rep, no g_cor). It is *not* the paper's reference code, which blends b with
a Taylor approximation for 10 < kappa < 11 (see scripts/gradient_table.py, which re-implements that one).
"""

import math
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from hvae_ext import VonMisesFisher
from hvae_ext.testing import w_law


def ours(d, kappa, n):
    mu = torch.zeros(d, dtype=torch.float64)
    mu[0] = 1
    k = torch.full((n,), kappa, dtype=torch.float64, requires_grad=True)
    z = VonMisesFisher(mu.expand(n, d), k).rsample(generator=torch.Generator().manual_seed(0))
    (z @ mu).sum().backward()
    return k.grad


def grep_wood(d, kappa, n):
    """Wood's sampler in PyTorch; gradient through b(kappa) at the accepted proposal only (g_rep, no g_cor)."""
    torch.manual_seed(0)
    k = torch.full((n,), kappa, dtype=torch.float64, requires_grad=True)
    dm1 = d - 1.0
    b = dm1 / (2 * k + torch.sqrt(4 * k * k + dm1 * dm1))
    x0 = (1 - b) / (1 + b)
    c = k * x0 + dm1 * torch.log(1 - x0 * x0)
    beta = torch.distributions.Beta(
        torch.tensor(dm1 / 2, dtype=torch.float64), torch.tensor(dm1 / 2, dtype=torch.float64)
    )
    w = torch.zeros(n, dtype=torch.float64)
    done = torch.zeros(n, dtype=torch.bool)
    while not bool(done.all()):
        eps = beta.sample((n,))
        wp = (1 - (1 + b) * eps) / (1 - (1 - b) * eps)
        u = torch.rand(n, dtype=torch.float64)
        acc = (k * wp + dm1 * torch.log(1 - x0 * wp) - c >= torch.log(u)) & ~done
        w = torch.where(acc, wp, w)
        done = done | acc
    w.sum().backward()
    return k.grad


rows = []
for d, kappa in [(3, 1.0), (5, 2.0), (10, 10.0), (50, 10.0), (100, 100.0), (16, 1000.0)]:
    n = 200_000
    ref = w_law(d, kappa).var
    g1 = ours(d, kappa, n)
    g2 = grep_wood(d, kappa, n) if d != 3 else None
    line = f"| {d} | {kappa:g} | {ref:.5g} | {g1.mean().item():.5g} | {g1.std().item():.4g} | {(g1.mean().item() - ref) / (g1.std().item() / math.sqrt(n)):+.2f} |"
    if g2 is not None:
        line += f" {g2.mean().item():.5g} | {g2.std().item():.4g} | {(g2.mean().item() - ref) / (g2.std().item() / math.sqrt(n)):+.1f} |"
    else:
        line += " n/a | n/a | n/a |"
    print(line, flush=True)
    rows.append(line)
header = [
    "| d | κ | dA/dκ (exact) | hvae_ext mean | hvae_ext std | z | g_rep-only mean | g_rep-only std | z |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
]
with open(os.path.join(ROOT, "results", "gradient_variance.md"), "w") as fh:
    fh.write("\n".join(header + rows) + "\n")
print("wrote experiments/results/gradient_variance.md")
