"""The kappa-gradient table of docs/sampler.md: d/dkappa of the sample mean of w = mu^T z against the exact
dA_d/dkappa = 1 - A^2 - (d - 1) A / kappa, for hvae_ext's sampler and for a re-implementation of the paper's
reference code's estimator; also the reference sampler's mean of w at d = 100, kappa = 20.

    python scripts/gradient_table.py            # writes experiments/results/gradient_table.md and experiments/results/gradient_table.json

* hvae_ext: ``VonMisesFisher(mu, kappa).rsample()`` in float64, one sample per row with its own kappa leaf, so
  that each row's dw/dkappa (implicit reparameterization) is one term of the mean; z = (mean - exact) / se.
* "reference code (re-implemented)": the s-vae-pytorch package (Davidson et al. 2018,
  hyperspherical_vae/distributions/von_mises_fisher.py) is not installable here, so its estimator is
  re-implemented in plain torch, as that file does it: w by Wood's algorithm with Beta((d-1)/2, (d-1)/2)
  proposals (one per row and round), b = s b_app + (1 - s) b_true with b_app = (d - 1)/(4 kappa) and
  s = min(max(0, kappa - 10), 1) (its "smooth switch" for 10 < kappa < 11; torch's max/min split the
  gradient at ties, so at kappa = 10 half of d(b_app - b_true)/dkappa enters), acceptance by
  (d-1) log t - t + c > log u with t = 2ab / (1 - (1 - b) e); d = 3 by inversion; the gradient flows through
  the accepted proposal only (g_rep, no score-function correction g_cor); the tangent part and the Householder
  map u = (e1 - mu) / (|e1 - mu| + 1e-5) as there. float64 throughout.
* docs/gradients.md measures a third estimator, g_rep of a Wood sampler with the exact b (benchmarks/baselines.py),
  whose bias is smaller at kappa = 10 (no blend); it is not this one.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from hvae_ext import VonMisesFisher, special  # noqa: E402

CELLS = [(5, 2.0), (2, 1.0), (10, 10.0), (50, 10.0), (3, 1000.0), (16, 1e4), (100, 1e4), (1000, 50.0)]
SEED = 0
CHUNK_ELEMENTS = 20_000_000  # rows per chunk = this / d


def exact_da(d, kappa):
    a = special.vmf_mean_resultant(torch.tensor(kappa, dtype=torch.float64), d).item()
    return 1 - a * a - (d - 1) * a / kappa


def _unit(d, seed):
    x = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return x / x.norm()


def hvae_ext_grads(d, kappa, n, seed):
    mu = _unit(d, seed)
    gen = torch.Generator().manual_seed(seed)
    out = []
    rows = max(1, CHUNK_ELEMENTS // d)
    for start in range(0, n, rows):
        m = min(rows, n - start)
        k = torch.full((m,), kappa, dtype=torch.float64, requires_grad=True)
        z = VonMisesFisher(mu.expand(m, d), k).rsample(generator=gen)
        (g,) = torch.autograd.grad((z @ mu).sum(), k)
        out.append(g)
    return torch.cat(out)


def reference_rsample(loc, scale, gen):
    """One sample per row of loc (m, d), scale (m, 1), as the reference code's rsample (see the docstring)."""
    m, d = loc.shape
    if d == 3:
        u = torch.rand(m, 1, dtype=loc.dtype, generator=gen)
        w = 1 + torch.stack([torch.log(u), torch.log(1 - u) - 2 * scale], dim=0).logsumexp(0) / scale
    else:
        c = torch.sqrt(4 * scale**2 + (d - 1) ** 2)
        b_true = (-2 * scale + c) / (d - 1)
        b_app = (d - 1) / (4 * scale)
        s = torch.min(torch.max(torch.zeros(1, dtype=loc.dtype), scale - 10), torch.ones(1, dtype=loc.dtype))
        b = b_app * s + b_true * (1 - s)
        a = (d - 1 + 2 * scale + c) / 4
        cc = (4 * a * b) / (1 + b) - (d - 1) * math.log(d - 1)
        w = torch.zeros_like(b)
        todo = torch.ones(m, 1, dtype=torch.bool)
        half = torch.tensor((d - 1) / 2, dtype=torch.float64)
        beta = torch.distributions.Beta(half, half)
        while bool(todo.any()):
            # the Beta draw uses torch's global generator (torch.distributions takes none): seeded in main()
            e = beta.sample((m, 1))
            uu = torch.rand(m, 1, dtype=loc.dtype, generator=gen) * (1 - 2e-20) + 1e-20
            w_ = (1 - (1 + b) * e) / (1 - (1 - b) * e)
            t = (2 * a * b) / (1 - (1 - b) * e)
            acc = ((d - 1.0) * t.log() - t + cc) > torch.log(uu)
            take = todo & acc
            w = torch.where(take, w_, w)
            todo = todo & ~acc
    v = torch.randn(m, d, dtype=loc.dtype, generator=gen)[:, 1:]
    v = v / v.norm(dim=-1, keepdim=True)
    x = torch.cat((w, torch.sqrt(torch.clamp(1 - w**2, 1e-10)) * v), -1)
    e1 = torch.zeros(d, dtype=loc.dtype)
    e1[0] = 1
    u = e1 - loc
    u = u / (u.norm(dim=-1, keepdim=True) + 1e-5)
    return x - 2 * (x * u).sum(-1, keepdim=True) * u


def reference_grads_and_w(d, kappa, n, seed):
    mu = _unit(d, seed)
    gen = torch.Generator().manual_seed(seed)
    grads, ws = [], []
    rows = max(1, CHUNK_ELEMENTS // (4 * d))
    for start in range(0, n, rows):
        m = min(rows, n - start)
        k = torch.full((m, 1), kappa, dtype=torch.float64, requires_grad=True)
        z = reference_rsample(mu.expand(m, d), k, gen)
        w = z @ mu
        (g,) = torch.autograd.grad(w.sum(), k)
        grads.append(g.squeeze(-1))
        ws.append(w.detach())
    return torch.cat(grads), torch.cat(ws)


def _stats(g, exact):
    mean = g.mean().item()
    se = g.std().item() / math.sqrt(g.numel())
    return mean, se, (mean - exact) / se


def _git():
    try:
        return subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def main():
    torch.manual_seed(SEED)
    t0 = time.time()
    rows = []
    for i, (d, kappa) in enumerate(CELLS):
        exact = exact_da(d, kappa)
        n = 1_000_000 if d < 1000 else 200_000
        m, se, z = _stats(hvae_ext_grads(d, kappa, n, SEED + i), exact)
        n_ref = 200_000
        g_ref, _ = reference_grads_and_w(d, kappa, n_ref, SEED + i)
        rm, rse, rz = _stats(g_ref, exact)
        rows.append(
            dict(
                d=d,
                kappa=kappa,
                exact=exact,
                n=n,
                estimate=m,
                se=se,
                z=z,
                n_reference=n_ref,
                reference_estimate=rm,
                reference_se=rse,
                reference_z=rz,
                reference_bias_percent=100 * (rm - exact) / exact,
            )
        )
        print(
            f"d={d} kappa={kappa:g}: exact {exact:.6g}, hvae_ext {m:.6g} (z {z:+.2f}), reference {rm:.6g} "
            f"({100 * (rm - exact) / exact:+.1f} %, z {rz:+.1f})",
            flush=True,
        )
    # the reference sampler's law at d = 100, kappa = 20: mean of w = mu^T z against A_d
    d, kappa, n = 100, 20.0, 200_000
    _, w = reference_grads_and_w(d, kappa, n, SEED + 100)
    a = special.vmf_mean_resultant(torch.tensor(kappa, dtype=torch.float64), d).item()
    law = dict(
        d=d, kappa=kappa, n=n, reference_mean_w=w.mean().item(), reference_se=w.std().item() / math.sqrt(n), a_d=a
    )
    out = dict(
        command="python scripts/gradient_table.py",
        git=_git(),
        torch=torch.__version__,
        seed=SEED,
        cells=rows,
        reference_law=law,
        seconds=round(time.time() - t0, 1),
    )
    res = os.path.join(ROOT, "results")
    with open(os.path.join(res, "gradient_table.json"), "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")
    md = [
        "| d | κ | exact dA/dκ | hvae_ext estimate | z | reference code (re-implemented) | its bias | its z |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        md.append(
            f"| {r['d']} | {r['kappa']:g} | {r['exact']:.6g} | {r['estimate']:.6g} | {r['z']:+.2f} | "
            f"{r['reference_estimate']:.6g} | {r['reference_bias_percent']:+.1f} % | {r['reference_z']:+.1f} |"
        )
    md.append("")
    md.append(
        f"Reference sampler's law at d = {law['d']}, κ = {law['kappa']:g}: mean of w = μᵀz "
        f"{law['reference_mean_w']:.5f} ± {law['reference_se']:.5f} (n = {n}) against A_d = {law['a_d']:.5f}."
    )
    with open(os.path.join(res, "gradient_table.md"), "w") as fh:
        fh.write("\n".join(md) + "\n")
    print("wrote experiments/results/gradient_table.md and experiments/results/gradient_table.json")


if __name__ == "__main__":
    main()
