"""Demonstration of the von Mises-Fisher sampler: ``python -m hvae_ext.demo [--out DIR]``.

Writes two PNGs (matplotlib, Agg backend) into ``DIR`` (default ``docs/figures``):

* ``samples_s2.png``: samples of vMF(mu, kappa) on the sphere S^2 for several kappa (3D scatter);
* ``w_histograms.png``: histograms of w = mu^T z against its exact density
  p(w) proportional to exp(kappa w) (1 - w^2)^((d-3)/2) for several (d, kappa),

and prints, per (d, kappa), the Kolmogorov-Smirnov statistic and p-value of w against its exact CDF (computed by
quadrature in theta = arccos w, independent of hvae_ext's Bessel functions). Needs matplotlib and scipy.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch

from . import VonMisesFisher

S2_KAPPAS = (1.0, 10.0, 50.0, 500.0)
HIST_CELLS = ((2, 1.0), (3, 10.0), (5, 2.0), (10, 50.0), (100, 20.0), (1000, 1000.0))


class _ExactW:
    """The law of w = cos(theta): density of theta proportional to exp(kappa cos theta) sin(theta)^(d-2)."""

    def __init__(self, d: int, kappa: float, points: int = 20001):
        from scipy.integrate import cumulative_simpson

        m = d - 2.0
        mode = 0.0 if m == 0 else math.acos(min(1.0, 2 * kappa / (m + math.sqrt(m * m + 4 * kappa * kappa))))
        s = math.sin(mode)
        curv = kappa * math.cos(mode) + (m / (s * s) if s > 0 else 0.0)
        width = 1 / math.sqrt(curv) if curv > 0 else math.pi
        th = np.linspace(max(0.0, mode - 60 * width), min(math.pi, mode + 60 * width), points)
        with np.errstate(divide="ignore"):
            logf = -2 * kappa * np.sin(th / 2) ** 2 + (m * np.log(np.sin(th)) if m > 0 else 0.0)
        f = np.exp(logf - logf.max())
        cdf = cumulative_simpson(f, x=th, initial=0.0)
        self.theta, self.pdf_theta, self.cdf = th, f / cdf[-1], cdf / cdf[-1]

    def cdf_theta(self, theta):
        return np.interp(theta, self.theta, self.cdf, left=0.0, right=1.0)

    def pdf_w(self, w):
        th = np.arccos(np.clip(w, -1, 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(np.sin(th) > 0, np.interp(th, self.theta, self.pdf_theta, 0, 0) / np.sin(th), 0.0)


def _random_unit(d: int, seed: int) -> torch.Tensor:
    x = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return x / x.norm()


def _w_theta(z: torch.Tensor, mu: torch.Tensor):
    w = z @ mu
    theta = torch.atan2(torch.linalg.vector_norm(z - w[:, None] * mu, dim=-1), w)
    return w.numpy(), theta.numpy()


def plot_s2(out: str, n: int = 1500, seed: int = 0) -> str:
    import matplotlib.pyplot as plt

    mu = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64) / math.sqrt(3)
    fig = plt.figure(figsize=(4 * len(S2_KAPPAS), 4.2))
    u, v = np.mgrid[0 : 2 * np.pi : 40j, 0 : np.pi : 20j]
    for i, kappa in enumerate(S2_KAPPAS):
        ax = fig.add_subplot(1, len(S2_KAPPAS), i + 1, projection="3d")
        ax.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="0.85", linewidth=0.4)
        z = VonMisesFisher(mu, torch.tensor(kappa, dtype=torch.float64)).sample(
            (n,), generator=torch.Generator().manual_seed(seed + i)).numpy()
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


def plot_w_histograms(out: str, n: int = 100_000, seed: int = 1) -> tuple[str, list[dict]]:
    import matplotlib.pyplot as plt
    from scipy import stats

    cols = 3
    rows = math.ceil(len(HIST_CELLS) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.4 * rows))
    report = []
    for ax, (d, kappa) in zip(axes.ravel(), HIST_CELLS):
        mu = _random_unit(d, seed + d)
        m = n if d <= 100 else max(5000, 10_000_000 // d)
        z = VonMisesFisher(mu, torch.tensor(kappa, dtype=torch.float64)).sample(
            (m,), generator=torch.Generator().manual_seed(seed))
        w, theta = _w_theta(z, mu)
        law = _ExactW(d, kappa)
        ks = stats.kstest(theta, law.cdf_theta)
        report.append(dict(d=d, kappa=kappa, n=m, D=float(ks.statistic), p=float(ks.pvalue)))
        lo, hi = np.quantile(w, [0.0005, 0.9995])
        pad = 0.05 * (hi - lo)
        lo, hi = max(-1.0, lo - pad), min(1.0, hi + pad)
        ax.hist(w, bins=80, range=(lo, hi), density=True, color="C0", alpha=0.55, label="samples")
        grid = np.linspace(lo, hi, 800)[1:-1] if hi >= 1.0 or lo <= -1.0 else np.linspace(lo, hi, 800)
        ax.plot(grid, law.pdf_w(grid), color="C3", lw=1.5, label="exact density")
        ax.set_title(f"d = {d}, $\\kappa$ = {kappa:g}  (KS p = {ks.pvalue:.2f})", fontsize=10)
        ax.set_xlabel(r"$w = \mu^\top z$")
    axes.ravel()[0].legend(fontsize=8)
    for ax in axes.ravel()[len(HIST_CELLS):]:
        ax.axis("off")
    fig.suptitle(r"$w = \mu^\top z$: histogram vs. exact density $\propto e^{\kappa w}(1-w^2)^{(d-3)/2}$")
    fig.tight_layout()
    path = os.path.join(out, "w_histograms.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path, report


def main(argv=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    parser = argparse.ArgumentParser(prog="python -m hvae_ext.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join("docs", "figures"), help="output folder (default docs/figures)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    p1 = plot_s2(args.out, seed=args.seed)
    p2, report = plot_w_histograms(args.out, seed=args.seed + 1)
    print(f"wrote {p1}\nwrote {p2}")
    print("KS test of w = mu^T z against its exact CDF:")
    print(f"  {'d':>5} {'kappa':>8} {'n':>7} {'KS D':>9} {'p-value':>8}")
    for r in report:
        print(f"  {r['d']:>5} {r['kappa']:>8g} {r['n']:>7} {r['D']:>9.2e} {r['p']:>8.3f}")
    print(f"({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()
