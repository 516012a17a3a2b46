"""Demonstration of the von Mises-Fisher sampler: ``python -m hvae_ext.demo [--out DIR]``.

Writes into ``DIR`` (default ``docs/figures``):

* ``samples_s2.png``: samples of vMF(mu, kappa) on the sphere S^2 for several kappa (3D scatter);
* ``w_histograms.png``: histograms of w = mu^T z against its exact density
  p(w) proportional to exp(kappa w) (1 - w^2)^((d-3)/2) for several (d, kappa);
* ``ks_table.md`` and ``ks_table.json``: per (d, kappa) the sample mean of w beside A_d(kappa), and the
  Kolmogorov-Smirnov statistic and p-value of w against its exact CDF (computed by quadrature in
  theta = arccos w, independent of hvae_ext's Bessel functions); the table is also printed.

The samples depend only on the seed (the sampler gives the same samples for any number of threads), so the
table is reproducible exactly; tests/repository/test_demo_table.py checks that docs/sampler.md shows this file. Needs
matplotlib (for the pictures; ``--no-plots`` skips them) and scipy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np
import torch

from . import VonMisesFisher, special
from .testing import WLaw, angle_from_loc, random_unit

S2_KAPPAS = (1.0, 10.0, 50.0, 500.0)
HIST_CELLS = ((2, 1.0), (3, 10.0), (5, 2.0), (10, 50.0), (100, 20.0), (1000, 1000.0))


def _w_theta(z: torch.Tensor, mu: torch.Tensor):
    w, theta = angle_from_loc(z, mu)
    return w.numpy(), theta.numpy()


def plot_s2(out: str, n: int = 1500, seed: int = 0) -> str:
    import matplotlib.pyplot as plt

    mu = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64) / math.sqrt(3)
    fig = plt.figure(figsize=(4 * len(S2_KAPPAS), 4.2))
    u, v = np.mgrid[0 : 2 * np.pi : 40j, 0 : np.pi : 20j]
    for i, kappa in enumerate(S2_KAPPAS):
        ax = fig.add_subplot(1, len(S2_KAPPAS), i + 1, projection="3d")
        ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", linewidth=0.4)
        z = (
            VonMisesFisher(mu, torch.tensor(kappa, dtype=torch.float64))
            .sample((n,), generator=torch.Generator().manual_seed(seed + i))
            .numpy()
        )
        ax.scatter(z[:, 0], z[:, 1], z[:, 2], s=2, alpha=0.6, color="C0", depthshade=False)
        ax.quiver(0, 0, 0, *mu.tolist(), color="C3", linewidth=2, length=1.25)
        ax.set_title(f"$\\kappa = {kappa:g}$")
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=20, azim=30)
        ax.set_xticks([]), ax.set_yticks([]), ax.set_zticks([])
    fig.suptitle(r"vMF($\mu$, $\kappa$) on $S^2$, $\mu = (1,1,1)/\sqrt{3}$ (red), " + f"{n} samples each")
    fig.tight_layout()
    path = os.path.join(out, "samples_s2.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ks_cells(n: int = 100_000, seed: int = 1) -> list[dict]:
    """Per cell of HIST_CELLS: samples of w = mu^T z (random mu, float64, ``n`` samples; fewer for d > 100),
    the KS test of theta = arccos w against the exact law, the sample mean of w and A_d(kappa)."""
    from scipy import stats

    cells = []
    for d, kappa in HIST_CELLS:
        mu = random_unit(d, seed + d)
        m = n if d <= 100 else max(5000, 10_000_000 // d)
        z = VonMisesFisher(mu, torch.tensor(kappa, dtype=torch.float64)).sample(
            (m,), generator=torch.Generator().manual_seed(seed)
        )
        w, theta = _w_theta(z, mu)
        law = WLaw(d, kappa, points=20001)
        ks = stats.kstest(theta, law.cdf_theta)
        a_d = special.vmf_mean_resultant(torch.tensor(kappa, dtype=torch.float64), d).item()
        cells.append(
            dict(
                d=d,
                kappa=kappa,
                n=m,
                mean_w=float(w.mean()),
                a_d=a_d,
                D=float(ks.statistic),
                p=float(ks.pvalue),
                w=w,
                law=law,
            )
        )
    return cells


def format_ks_table(cells: list[dict], seed: int) -> str:
    """The markdown table of ks_table.md (and of docs/sampler.md)."""
    lines = [
        "| d | κ | samples | mean w | A_d(κ) | KS statistic | p-value |",
        "|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for c in cells:
        lines.append(
            f"| {c['d']} | {c['kappa']:g} | {c['n']} | {c['mean_w']:.5f} | {c['a_d']:.5f} | "
            f"{c['D']:.5f} | {c['p']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def write_ks_table(out: str, cells: list[dict], seed: int) -> tuple[str, str]:
    md = os.path.join(out, "ks_table.md")
    with open(md, "w") as fh:
        fh.write(format_ks_table(cells, seed))
    js = os.path.join(out, "ks_table.json")
    with open(js, "w") as fh:
        rows = [{k: v for k, v in c.items() if k not in ("w", "law")} for c in cells]
        json.dump(
            {"command": f"python -m hvae_ext.demo --seed {seed}", "sample_seed": seed + 1, "cells": rows}, fh, indent=1
        )
        fh.write("\n")
    return md, js


def plot_w_histograms(out: str, cells: list[dict]) -> str:
    import matplotlib.pyplot as plt

    cols = 3
    rows = math.ceil(len(cells) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows))
    for ax, c in zip(axes.ravel(), cells):
        d, kappa, w, law = c["d"], c["kappa"], c["w"], c["law"]
        lo, hi = np.quantile(w, [0.0005, 0.9995])
        pad = 0.05 * (hi - lo)
        lo, hi = max(-1.0, lo - pad), min(1.0, hi + pad)
        ax.hist(w, bins=80, range=(lo, hi), density=True, color="C0", alpha=0.55, label="samples")
        grid = np.linspace(lo, hi, 800)[1:-1] if hi >= 1.0 or lo <= -1.0 else np.linspace(lo, hi, 800)
        ax.plot(grid, law.pdf_w(grid), color="C3", lw=1.5, label="exact density")
        ax.set_title(f"d = {d}, $\\kappa$ = {kappa:g}  (KS p = {c['p']:.2f})", fontsize=10)
        ax.set_xlabel(r"$w = \mu^\top z$")
    axes.ravel()[0].legend(fontsize=8)
    for ax in axes.ravel()[len(cells) :]:
        ax.axis("off")
    fig.suptitle(r"$w = \mu^\top z$: histogram vs. exact density $\propto e^{\kappa w}(1-w^2)^{(d-3)/2}$")
    fig.tight_layout()
    path = os.path.join(out, "w_histograms.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hvae_ext.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join("docs", "figures"), help="output folder (default docs/figures)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plots", action="store_true", help="only the KS table (no matplotlib needed)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    cells = ks_cells(seed=args.seed + 1)
    written = list(write_ks_table(args.out, cells, args.seed))
    if not args.no_plots:
        import matplotlib

        matplotlib.use("Agg")
        written += [plot_s2(args.out, seed=args.seed), plot_w_histograms(args.out, cells)]
    for path in written:
        print(f"wrote {path}")
    print("KS test of w = mu^T z against its exact CDF (random mu, float64):")
    print(format_ks_table(cells, args.seed), end="")
    print(f"({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()
