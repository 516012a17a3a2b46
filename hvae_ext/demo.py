"""The sampler shown to work: ``python -m hvae_ext.demo [--out DIR]``.

Writes two pictures and prints Kolmogorov-Smirnov tests of w = mu^T z against its exact law:

* ``samples_s2.png``: samples of vMF(mu, kappa) on S^2 for several kappa;
* ``w_histograms.png``: histograms of w = mu^T z against the exact density
  p(w) ∝ e^{kappa w} (1 - w^2)^{(d-3)/2} for several (d, kappa).
"""

from __future__ import annotations

import argparse
import math
import os

import numpy as np
import torch

from . import VonMisesFisher, special


def w_log_density(w: np.ndarray, kappa: float, d: int) -> np.ndarray:
    """Unnormalised log density of w = mu^T z, as log(p(w)) up to a constant."""
    return kappa * (w - 1.0) + 0.5 * (d - 3) * np.log1p(-w * w)


def w_cdf_on_grid(kappa: float, d: int, n: int = 200001) -> tuple[np.ndarray, np.ndarray]:
    """The CDF of w on a grid in theta = acos(w), where the density e^{kappa cos t} sin^{d-2} t is smooth."""
    theta = np.linspace(0.0, math.pi, n)
    log_f = kappa * (np.cos(theta) - 1.0) + (d - 2) * np.log(np.maximum(np.sin(theta), 1e-300))
    f = np.exp(log_f - log_f.max())
    # integrate from theta = pi (w = -1) upwards in w
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(theta))])
    cdf_theta = 1.0 - cum / cum[-1]  # P(W <= cos theta)
    return np.cos(theta)[::-1], cdf_theta[::-1]


def ks_statistic(samples: np.ndarray, kappa: float, d: int) -> tuple[float, float]:
    from scipy import stats

    grid, cdf = w_cdf_on_grid(kappa, d)
    result = stats.kstest(samples, lambda x: np.interp(x, grid, cdf))
    return float(result.statistic), float(result.pvalue)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join("docs", "figures"), help="folder for the PNGs (default: docs/figures)")
    parser.add_argument("--samples", type=int, default=100000, help="samples per KS test (default 1e5)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.samples < 10:
        parser.error("--samples must be at least 10")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(args.seed)

    # Samples on S^2.
    mu = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    kappas = [1.0, 10.0, 100.0, 1000.0]
    fig = plt.figure(figsize=(4 * len(kappas), 4))
    for i, kappa in enumerate(kappas):
        z = VonMisesFisher(mu, torch.tensor(kappa, dtype=torch.float64)).sample((2000,), generator=gen).numpy()
        ax = fig.add_subplot(1, len(kappas), i + 1, projection="3d")
        ax.scatter(z[:, 0], z[:, 1], z[:, 2], s=2, alpha=0.5, color="C%d" % i)
        ax.set_xlim(-1, 1), ax.set_ylim(-1, 1), ax.set_zlim(-1, 1)
        ax.set_box_aspect((1, 1, 1))
        ax.set_title(f"vMF on S², κ = {kappa:g}")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "samples_s2.png"), dpi=90)
    plt.close(fig)

    # w = mu^T z against its exact density, with KS tests.
    cells = [(2, 1.0), (3, 10.0), (5, 2.0), (10, 10.5), (16, 10.0), (100, 20.0), (256, 100.0), (1000, 1000.0)]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    print(f"{'d':>6} {'kappa':>8} {'mean w':>10} {'A_d(kappa)':>11} {'KS stat':>9} {'p-value':>8}")
    for ax, (d, kappa) in zip(axes.ravel(), cells):
        loc = torch.nn.functional.normalize(torch.randn(d, dtype=torch.float64, generator=gen), dim=0)
        q = VonMisesFisher(loc, torch.tensor(kappa, dtype=torch.float64))
        w = (q.sample((args.samples,), generator=gen) @ loc).numpy()
        a = special.vmf_mean_resultant(torch.tensor(kappa, dtype=torch.float64), d).item()
        stat, p = ks_statistic(w, kappa, d)
        print(f"{d:>6} {kappa:>8g} {w.mean():>10.5f} {a:>11.5f} {stat:>9.5f} {p:>8.3f}")
        lo, hi = np.quantile(w, [0.0005, 0.9995])
        ax.hist(w, bins=80, range=(lo, hi), density=True, alpha=0.6, label="samples")
        grid = np.linspace(lo, hi, 400)
        ref_grid = np.linspace(-1 + 1e-12, 1 - 1e-12, 400001)
        log_p = w_log_density(ref_grid, kappa, d)
        norm = np.trapezoid(np.exp(log_p - log_p.max()), ref_grid)
        ax.plot(grid, np.exp(w_log_density(grid, kappa, d) - log_p.max()) / norm, "k-", lw=1.2, label="exact density")
        ax.set_title(f"d = {d}, κ = {kappa:g}  (KS p = {p:.2f})")
        ax.set_xlabel("w = μᵀz")
    axes[0, 0].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "w_histograms.png"), dpi=90)
    plt.close(fig)
    print(f"wrote {os.path.join(args.out, 'samples_s2.png')} and {os.path.join(args.out, 'w_histograms.png')}")


if __name__ == "__main__":
    main()
