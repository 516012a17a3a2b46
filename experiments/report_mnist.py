"""Report of the MNIST N-VAE / S-VAE runs: ``python -m experiments.report DIR`` (or this module).

Reads every run JSON of :mod:`experiments.mnist` under DIR (recursively) and writes into DIR:

* ``report.md``: test log-likelihood (importance sampling, mean +- std over seeds) of N-VAE and S-VAE at
  each latent dimension beside Davidson et al. (2018), Table 1, whether the bar is met (within 1.5
  nats of the paper: S-VAE at d = 2, 5, 10, N-VAE at every d) and whether the crossover (S better at low d,
  N better at high d) shows; the test ELBO with its reconstruction and KL terms; epochs, early stopping
  and run times;
* ``ll_vs_dim.png``: test LL against d for both models, with the paper's numbers;
* ``latent_d2.png``, ``latent_d3.png``: the test set's latent means coloured by digit, N-VAE beside S-VAE
  (d = 2: a plain scatter for N, the circle for S; d = 3: a 3-d scatter for N, an equal-area Mollweide
  projection of the sphere for S), from the ``*_latent.npz`` files written next to the runs of d <= 3;
* when Power Spherical runs exist (``--posterior power-spherical``), a section that sets the S-VAE with the
  Power Spherical posterior beside the N-VAE and the vMF S-VAE of the same d, convention and seeds (test LL
  and ELBO, median time per epoch);
* when product-of-spheres runs exist (``--spheres k``, vMF, the paper's convention), a section with the layout
  sweep of ``product_sweep.sh`` (best validation ELBO per factor size m at d = 20; the chosen m) and, at
  d = 10, 20, 40, the N-VAE, the single-sphere S-VAE and the product S-VAE of the chosen layout (test LL and
  whether each run converged: early stopping or the 500-epoch maximum, not a time budget), and
  ``curves_products.png``: the sweep's and those runs' validation ELBO per epoch;
* ``dimensions.md`` (also a section of the report, and shown in README.md): at each d, the N-VAE, the single
  sphere and the product on seeds 0-2 beside Table 1, and which is ahead once every run of the row has ended.
* ``ll_across_dims.png``: the same as a figure, test LL against d and each S-VAE minus the N-VAE per seed.

A hand-written ``DIR/notes.md``, when present, is appended to the report. Runs with a ``--tag`` are kept out
of the tables (listed apart); vMF product runs (``spheres`` > 1) only enter the product section (the sweep's, tagged
``sweep100``, its layout table). Runs of another posterior family than the vMF one (``posterior``; a run file
without it is vMF, the N-VAE's is ``"normal"``) only enter the Power Spherical section.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path

from .reporting import (
    ambient_dim,
    default_family,
    errorbar_means,
    format_mean_std,
    load_records,
    log2_axis,
    mean_std,
    posterior,
    pyplot,
    report_main,
    save_figure,
    write_markdown,
)

# Davidson et al. (2018), Table 1: test log-likelihood (importance sampling), MNIST, higher is better.
PAPER_LL = {
    ("n-vae", 2): -135.73,
    ("s-vae", 2): -132.50,
    ("n-vae", 5): -110.21,
    ("s-vae", 5): -108.43,
    ("n-vae", 10): -93.84,
    ("s-vae", 10): -93.16,
    ("n-vae", 20): -88.90,
    ("s-vae", 20): -89.02,
    ("n-vae", 40): -88.93,
    ("s-vae", 40): -90.87,
}
# Table 1's ELBO terms (L[q], reconstruction, KL) where the paper lists them
PAPER_ELBO = {
    ("n-vae", 2): (-137.08, -129.84, 7.24),
    ("s-vae", 2): (-133.72, -126.43, 7.28),
    ("n-vae", 5): (-112.98, -100.16, 12.82),
    ("s-vae", 5): (-111.19, -97.84, 13.35),
    ("n-vae", 10): (-98.36, -78.93, 19.44),
    ("s-vae", 10): (-97.70, -77.03, 20.67),
}
TABLE_DIMS = (2, 5, 10, 20, 40)
MODEL_ORDER = ("n-vae", "s-vae")
MODEL_LABEL = {"n-vae": "N-VAE", "s-vae": "S-VAE"}
BAR_NATS = 1.5
# the bar, under the paper's convention: both models within 1.5 nats of Table 1 at d = 2, 5, 10
BAR_CELLS = {(m, d) for m in MODEL_ORDER for d in (2, 5, 10)}
CONVENTIONS = ("paper", "ambient")
MAX_EPOCHS = 500  # the protocol's maximum (converge.sh)
# a cell (or a comparison) with a run that did not end by the protocol (converged): marked, with this footnote
UNFINISHED = "†"
UNFINISHED_NOTE = (
    f"{UNFINISHED} at least one run of the cell ended neither by early stopping nor at {MAX_EPOCHS} epochs (it stopped on a "
    "training-time budget or a smaller epoch limit): that comparison is not between models trained to the end of "
    "the protocol."
)


def convention(rec) -> str:
    """'paper' (d = latent degrees of freedom: S-VAE on S^d in R^(d+1)) or 'ambient' (d = size of z for
    both). Run files written before the convention was recorded used the ambient one."""
    return rec.get("dim_convention", "ambient")


def _is_mnist_run(rec) -> bool:
    return isinstance(rec, dict) and rec.get("config", {}).get("experiment") == "mnist" and "test_ll" in rec


def load_runs(root: Path) -> list[dict]:
    return load_records(Path(root), _is_mnist_run)


def has_mnist_runs(root) -> bool:
    """Whether DIR holds MNIST run files (then ``report.py DIR`` writes this report)."""
    return bool(load_runs(Path(root)))


def fmt(values, digits: int = 2) -> str:
    """Nats, ``"m ± s"`` with ``digits`` decimals and typographic minus signs."""
    return format_mean_std(values, digits, unicode_minus=True)


def num(x: float, digits: int = 2, signed: bool = False) -> str:
    return f"{x:{'+' if signed else ''}.{digits}f}".replace("-", "−")


def group(runs, tagged: bool = False, dim_convention: str = "paper"):
    """Runs by (model, d) (plus the tag for tagged runs), d counted in the run's own convention; only the
    runs of ``dim_convention``, of one sphere (a run file without ``spheres`` has one) and of the models'
    original posteriors (vMF S-VAE, Gaussian N-VAE)."""
    groups = defaultdict(list)
    for r in runs:
        c = r["config"]
        if bool(c.get("tag")) != tagged or convention(r) != dim_convention or r.get("spheres", 1) != 1:
            continue
        if not default_family(r):
            continue
        key = (c["model"], c["latent_dim"]) + ((c["tag"],) if tagged else ())
        groups[key].append(r)
    for rs in groups.values():
        rs.sort(key=lambda r: r["config"]["seed"])
    return groups


def ll_table(groups, bar_cells=BAR_CELLS) -> tuple[list[str], dict]:
    lines = [
        "| d | N-VAE test LL | paper N-VAE | N − paper | S-VAE test LL | paper S-VAE | S − paper | "
        "S − N (ours) | S − N (paper) | seeds (N / S) |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|:--:|",
    ]
    summary = {}
    dims = sorted({d for _, d in groups} | set(TABLE_DIMS))
    for d in dims:
        if d not in TABLE_DIMS and not any((m, d) in groups for m in MODEL_ORDER):
            continue
        cells, means = [], {}
        for m in MODEL_ORDER:
            rs = groups.get((m, d), [])
            lls = [r["test_ll"] for r in rs]
            mu = mean_std(lls)[0]
            means[m] = mu
            paper = PAPER_LL.get((m, d))
            gap = mu - paper if paper is not None and lls else math.nan
            mark = ""
            if (m, d) in bar_cells and not math.isnan(gap):
                mark = " ✓" if abs(gap) <= BAR_NATS else " ✗"
            ended = all(converged(r) for r in rs)
            cells += [
                (fmt(lls) + ("" if ended else UNFINISHED)) if lls else "—",
                "—" if paper is None else num(paper),
                "—" if math.isnan(gap) else f"{num(gap)}{mark}",
            ]
            summary[(m, d)] = {
                "mean": mu,
                "gap": gap,
                "n": len(lls),
                "early": [r["stopped"].startswith("early") for r in rs],
                "best": [r["best_epoch"] for r in rs],
                "run": [r["epochs_run"] for r in rs],
                "ended": ended,
            }
        diff = means["s-vae"] - means["n-vae"]
        all_ended = _row_ended(summary, d)
        pn, ps = PAPER_LL.get(("n-vae", d)), PAPER_LL.get(("s-vae", d))
        pdiff = "—" if pn is None else num(ps - pn)
        counts = f"{len(groups.get(('n-vae', d), []))} / {len(groups.get(('s-vae', d), []))}"
        if d not in TABLE_DIMS:
            ks = sorted({r["is_samples"] for m in MODEL_ORDER for r in groups.get((m, d), [])})
            counts += f" (picture runs, IS with K = {'/'.join(map(str, ks))})"
        lines.append(
            f"| {d} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | {cells[4]} | {cells[5]} | "
            f"{'—' if math.isnan(diff) else num(diff) + UNFINISHED * (not all_ended)} | {pdiff} | {counts} |"
        )
    if any(not s["ended"] for s in summary.values() if s["n"]):
        lines += ["", UNFINISHED_NOTE]
    return lines, summary


def _row_ended(summary, d: int) -> bool:
    """Whether every run of both models at d ended by the protocol (the main table's † and the crossover)."""
    return all(summary[(m, d)]["ended"] for m in MODEL_ORDER)


def acceptance(summary) -> list[str]:
    out = []
    for m, dims in (("s-vae", (2, 5, 10)), ("n-vae", (2, 5, 10))):
        for d in dims:
            s = summary.get((m, d))
            if not s or s["n"] == 0:
                out.append(f"* {MODEL_LABEL[m]} d = {d}: no runs.")
                continue
            ok = abs(s["gap"]) <= BAR_NATS
            line = (
                f"* {MODEL_LABEL[m]} d = {d}: {num(s['mean'])} against {num(PAPER_LL[(m, d)])} "
                f"({num(s['gap'])} nats, {s['n']} seeds): {'within' if ok else 'not within'} {BAR_NATS} nats."
            )
            if not ok:  # the bar's alternative: converged curves (training table, curves figure)
                stops = ", ".join(f"{b} of {e}" for b, e in zip(s["best"], s["run"]))
                line += (
                    f" Converged: {sum(s['early'])} of {s['n']} runs ended by early stopping (best epoch of "
                    f"epochs run: {stops})" + ("." if all(s["early"]) else "; the others are not converged.")
                )
            out.append(line)
    s2, n2 = summary.get(("s-vae", 2), {}), summary.get(("n-vae", 2), {})
    if s2.get("n") and n2.get("n"):
        ahead = s2["mean"] > n2["mean"]
        out.append(
            f"* d = 2: S-VAE {'ahead of' if ahead else 'behind'} N-VAE by "
            f"{num(abs(s2['mean'] - n2['mean']))} nats (paper: S ahead by 3.23)."
        )
    both = [d for d in TABLE_DIMS if all(summary.get((m, d), {}).get("n") for m in MODEL_ORDER)]
    # the crossover is read from cells whose runs all ended by the protocol; the others are named
    unfinished = [d for d in both if not _row_ended(summary, d)]
    diffs = [(d, summary[("s-vae", d)]["mean"] - summary[("n-vae", d)]["mean"]) for d in both if d not in unfinished]
    if unfinished:
        out.append(
            f"* Left out of the crossover: d ∈ {{{', '.join(map(str, unfinished))}}} ({UNFINISHED}: not every run "
            "ended by the protocol yet)."
        )
    if diffs:
        s_wins = [d for d, x in diffs if x > 0]
        n_wins = [d for d, x in diffs if x < 0]
        crossover = bool(s_wins) and bool(n_wins) and max(s_wins) < min(n_wins)
        out.append(
            f"* Crossover: S-VAE better at d ∈ {{{', '.join(map(str, s_wins)) or '—'}}}, N-VAE better at "
            f"d ∈ {{{', '.join(map(str, n_wins)) or '—'}}} (paper: S at 2, 5, 10; N at 20, 40): "
            + ("shown (S wins below, N above)." if crossover else "not shown as in the paper.")
        )
    return out


def elbo_table(groups, with_paper: bool = True) -> list[str]:
    lines = [
        "| d | model | test LL | test ELBO | reconstruction E[log p(x|z)] | KL | LL − ELBO | best val ELBO |"
        + (" paper L[q] / RE / KL |" if with_paper else ""),
        "|--:|---|--:|--:|--:|--:|--:|--:|" + ("--:|" if with_paper else ""),
    ]
    for d in sorted({d for _, d in groups}):
        for m in MODEL_ORDER:
            rs = groups.get((m, d))
            if not rs:
                continue
            lines.append(
                f"| {d} | {MODEL_LABEL[m]} | {fmt(r['test_ll'] for r in rs)} | "
                f"{fmt(r['test_elbo'] for r in rs)} | {fmt(r['test_recon'] for r in rs)} | "
                f"{fmt(r['test_kl'] for r in rs)} | {fmt(r['test_ll'] - r['test_elbo'] for r in rs)} | "
                f"{fmt(r['best_val_elbo'] for r in rs)} |"
                + (
                    f" {' / '.join(num(v) for v in PAPER_ELBO[(m, d)]) if (m, d) in PAPER_ELBO else '—'} |"
                    if with_paper
                    else ""
                )
            )
    return lines


def training_table(groups) -> list[str]:
    lines = [
        "| d | model | z | training budget (min) | epochs run | best epoch | stopped by | under-trained | "
        "median epoch (s) | IS eval (s) | run total (s) | S-VAE median κ (val, last epoch) |",
        "|--:|---|---|:--:|:--:|:--:|---|:--:|--:|--:|--:|--:|",
    ]
    for d in sorted({d for _, d in groups}):
        for m in MODEL_ORDER:
            rs = groups.get((m, d))
            if not rs:
                continue
            eps = "/".join(str(r["epochs_run"]) for r in rs)
            budget = "/".join(f"{r['config']['time_budget']:g}" if r["config"].get("time_budget") else "—" for r in rs)
            best = "/".join(str(r["best_epoch"]) for r in rs)
            reasons = sorted({r["stopped"].split(":")[0] for r in rs})
            under = sum(
                bool(
                    r.get(
                        "under_trained", r["best_epoch"] > r["epochs_run"] - 5 and not r["stopped"].startswith("early")
                    )
                )
                for r in rs
            )
            a = ambient_dim(rs[0])
            space = f"R^{a}" if m == "n-vae" else f"S^{a - 1} ⊂ R^{a}"
            kappa = "—"
            if m == "s-vae":
                kappa = "/".join(f"{r['history']['val_kappa_median'][-1]:.0f}" for r in rs)
            lines.append(
                f"| {d} | {MODEL_LABEL[m]} | {space} | {budget} | {eps} | {best} | {', '.join(reasons)} | "
                f"{under}/{len(rs)} | "
                f"{statistics.median(r['median_epoch_time_s'] for r in rs):.1f} | "
                f"{statistics.median(r['is_time_s'] for r in rs):.0f} | "
                f"{statistics.median(r['total_time_s'] for r in rs):.0f} | {kappa} |"
            )
    return lines


def plot_ll(groups, out: Path) -> Path | None:
    dims = sorted({d for _, d in groups if d in TABLE_DIMS})
    if not dims:
        return None
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for m, color in zip(MODEL_ORDER, ("tab:blue", "tab:red")):
        errorbar_means(
            ax,
            [(d, [r["test_ll"] for r in groups.get((m, d), [])]) for d in dims],
            color,
            f"{MODEL_LABEL[m]} (ours, mean ± std over seeds)",
        )
    _plot_table1_ll(ax, "{model} (Davidson et al., Table 1)", alpha=0.7)
    log2_axis(ax, TABLE_DIMS)
    ax.set(
        xlabel="latent dimension d", ylabel="test log-likelihood (nats)", title="MNIST: importance-sampled test LL vs d"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    # the crossover: S - N per seed pair (same seed, same data order), mean +- std
    errorbar_means(ax2, [(d, _paired_differences(groups, d)) for d in dims], "k", "ours (per seed, mean ± std)")
    _plot_table1_gap(ax2, "Davidson et al., Table 1", color="0.5")
    ax2.axhline(0.0, color="0.7", lw=0.8)
    log2_axis(ax2, TABLE_DIMS)
    ax2.set(
        xlabel="latent dimension d", ylabel="LL(S-VAE) − LL(N-VAE) (nats)", title="S-VAE minus N-VAE (> 0: S better)"
    )
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out / "ll_vs_dim.png", 100)


def _per_seed_differences(a, b) -> list[float]:
    """Test LL of each run of a minus the run of b with the same seed (same data order); seeds only in a drop out."""
    by_seed = {r["config"]["seed"]: r["test_ll"] for r in b}
    return [r["test_ll"] - by_seed[r["config"]["seed"]] for r in a if r["config"]["seed"] in by_seed]


def _paired_differences(groups, d: int) -> list[float]:
    """Test LL of the S-VAE minus the N-VAE of the same seed (same data order), at d."""
    return _per_seed_differences(groups.get(("s-vae", d), []), groups.get(("n-vae", d), []))


def _latent(groups, model: str, d: int):
    import numpy as np

    for r in groups.get((model, d), []):
        name = r.get("latent_means_file")
        if name:
            f = r["_file"].parent / name
            if f.is_file():
                z = np.load(f)
                return z["means"].astype(np.float32), z["labels"], r
    return None


def plot_latents(groups, out: Path, prefix: str = "latent", max_points: int = 3000) -> list[Path]:
    """One figure per d with latent means: N-VAE beside S-VAE. The picture follows the size of z (2: a
    scatter, or the circle for the S-VAE; 3: a 3-d scatter, or a Mollweide map of S^2 for the S-VAE)."""
    paths = []
    for d in (2, 3):
        found = {m: _latent(groups, m, d) for m in MODEL_ORDER}
        if not any(found.values()):
            kept = out / f"{prefix}_d{d}.png"
            if kept.exists():  # drawn by an earlier report from latent files that are not committed: keep it
                paths.append(kept)
            continue
        plt = pyplot()
        fig = plt.figure(figsize=(11, 5))
        for i, m in enumerate(MODEL_ORDER):
            item = found[m]
            width = item[0].shape[1] if item is not None else 0
            projection = {("n-vae", 3): "3d", ("s-vae", 3): "mollweide"}.get((m, width))
            ax = fig.add_subplot(1, 2, i + 1, projection=projection)
            if item is None:
                ax.set_title(f"{MODEL_LABEL[m]}, d = {d}: no run")
                continue
            _draw_latent(ax, plt, m, *item, max_points)
        cmap = plt.get_cmap("tab10")
        handles = [plt.Line2D([], [], ls="", marker="o", color=cmap(k), label=str(k)) for k in range(10)]
        fig.legend(handles=handles, loc="center right", title="digit", fontsize=8)
        fig.tight_layout(rect=(0, 0, 0.93, 1))
        paths.append(save_figure(fig, out / f"{prefix}_d{d}.png", 80))
    return paths


def _draw_latent(ax, plt, m: str, z, labels, rec, max_points: int) -> None:
    import numpy as np

    cmap = plt.get_cmap("tab10")
    d = z.shape[1]
    sel = np.random.default_rng(0).permutation(len(z))[:max_points]
    z, labels = z[sel], labels[sel]
    colors = cmap(labels.astype(int) % 10)
    space = f"$R^{d}$" if m == "n-vae" else f"$S^{d - 1}$"
    title = (
        (f"{MODEL_LABEL[m]}, z in {space} (seed {rec['config']['seed']}, test LL {rec['test_ll']:.1f})")
        .replace("-", "−")
        .replace("N−VAE", "N-VAE")
        .replace("S−VAE", "S-VAE")
    )
    if d == 2 and m == "n-vae":
        ax.scatter(z[:, 0], z[:, 1], c=colors, s=2, alpha=0.6, linewidths=0)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set(xlabel="$\\mu_1$", ylabel="$\\mu_2$")
    elif d == 2:
        # points on the unit circle, spread radially by a random jitter (only to show the density)
        theta = np.arctan2(z[:, 1], z[:, 0])
        rad = 1.0 + 0.08 * np.random.default_rng(1).standard_normal(len(z))
        ax.scatter(rad * np.cos(theta), rad * np.sin(theta), c=colors, s=2, alpha=0.6, linewidths=0)
        ax.plot(np.cos(np.linspace(0, 2 * np.pi, 200)), np.sin(np.linspace(0, 2 * np.pi, 200)), color="0.5", lw=0.5)
        ax.set_aspect("equal")
        ax.set(xlim=(-1.35, 1.35), ylim=(-1.35, 1.35), xlabel="$\\mu_1$", ylabel="$\\mu_2$")
        title += "\nmean directions on $S^1$ (radial jitter for visibility)"
    elif m == "n-vae":
        ax.scatter(z[:, 0], z[:, 1], z[:, 2], c=colors, s=4, alpha=0.9, linewidths=0, depthshade=False)
        ax.set(xlabel="$\\mu_1$", ylabel="$\\mu_2$", zlabel="$\\mu_3$")
    else:
        zz = z / np.linalg.norm(z, axis=1, keepdims=True)
        lon = np.arctan2(zz[:, 1], zz[:, 0])
        lat = np.arcsin(np.clip(zz[:, 2], -1, 1))
        ax.scatter(lon, lat, c=colors, s=2.5, alpha=0.7, linewidths=0)
        ax.grid(alpha=0.3)
        ax.set_xticklabels([])
        title += "\nmean directions on $S^2$, Mollweide (equal-area) projection"
    ax.set_title(title, fontsize=9)


def plot_curves(groups, out: Path, name: str = "curves.png") -> Path | None:
    """Validation ELBO against the epoch, one panel per d, every run (N blue, S red), the best epoch marked:
    whether a run had converged or was still improving when it stopped."""
    dims = sorted({d for _, d in groups})
    if not dims:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(dims), figsize=(3.6 * len(dims), 3.4), squeeze=False)
    for ax, d in zip(axes[0], dims):
        for m, color in zip(MODEL_ORDER, ("tab:blue", "tab:red")):
            _draw_runs(ax, groups.get((m, d), []), color, MODEL_LABEL[m])
        _zoom(ax, [r for m in MODEL_ORDER for r in groups.get((m, d), [])])
        ax.set(title=f"d = {d}", xlabel="epoch", ylabel="validation ELBO (nats)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out / name, 90)


def _draw_runs(ax, rs, color: str, label: str) -> None:
    """Each run's validation ELBO per epoch and a dot at its best epoch; the label on the first run only."""
    for j, r in enumerate(rs):
        h = r["history"]
        ax.plot(h["epoch"], h["val_elbo"], color=color, lw=0.9, alpha=0.8, label=label if j == 0 else None)
        ax.plot([r["best_epoch"]], [r["best_val_elbo"]], marker="o", ms=3, color=color)


def _zoom(ax, rs) -> None:
    """y limits that show the runs' last two thirds and their best value (the first epochs are far below)."""
    lows = [min(t) for r in rs if (t := r["history"]["val_elbo"][len(r["history"]["val_elbo"]) // 3 :])]
    if lows:
        top = max(r["best_val_elbo"] for r in rs)
        ax.set_ylim(min(lows) - 1, top + 0.25 * (top - min(lows)) + 0.5)


def _plot_table1_ll(ax, label: str, alpha: float) -> None:
    """Table 1's test LL of both models against d, dashed; ``label`` formats ``{model}``."""
    for m, color in zip(MODEL_ORDER, ("tab:blue", "tab:red")):
        ax.plot(
            TABLE_DIMS,
            [PAPER_LL[(m, d)] for d in TABLE_DIMS],
            ls="--",
            marker="x",
            color=color,
            alpha=alpha,
            label=label.format(model=MODEL_LABEL[m]),
        )


def _plot_table1_gap(ax, label: str, color: str, alpha: float | None = None) -> None:
    """Table 1's S-VAE minus N-VAE test LL against d, dashed."""
    ax.plot(
        TABLE_DIMS,
        [PAPER_LL[("s-vae", d)] - PAPER_LL[("n-vae", d)] for d in TABLE_DIMS],
        ls="--",
        marker="x",
        color=color,
        alpha=alpha,
        label=label,
    )


def _protocol(runs) -> str:
    """The training options of a set of runs, as one sentence (values that differ are listed)."""

    def values(key, unset=(None,)):
        vals = sorted({r["config"].get(key) for r in runs if r["config"].get(key) not in unset}, key=str)
        return "/".join(f"{v:g}" if isinstance(v, float) else str(v) for v in vals) or "—"

    warm = values("warmup_epochs")
    return (
        f"Adam lr {values('lr')}, batch {values('batch_size')}, KL warm-up over "
        f"{warm if warm != '—' else '0'} epochs, at most {values('epochs')} epochs (training-time budget "
        f"{values('time_budget', unset=(None, 0, 0.0))} min where set), early stopping with patience {values('patience')} on the "
        f"validation ELBO (10,000 held-out training images)"
    )


def _section(md: list, runs, groups, out: Path, paper: bool) -> None:
    table, summary = ll_table(groups, bar_cells=BAR_CELLS if paper else set())
    ks = sorted({r["is_samples"] for rs in groups.values() for r in rs})
    n_test = sorted({r["num_test_images"] for rs in groups.values() for r in rs})
    md += [
        f"Test log-likelihood (nats, higher is better) estimated by importance sampling with "
        f"{'/'.join(map(str, ks))} posterior samples per image on the {'/'.join(map(str, n_test))} test images "
        f"(binarized once, the same for every run), at the epoch of best validation ELBO; mean ± std over "
        f"seeds. Paper: Davidson et al. (2018), Table 1."
        + (
            f" ✓ / ✗: within / not within {BAR_NATS} nats of the paper (the bar: both models at d = 2, 5, 10)."
            if paper
            else " No bar here: this is not the paper's comparison."
        ),
        "",
        f"Protocol: {_protocol(runs)}.",
        "",
    ]
    md += table
    if paper:
        md += ["", "### Acceptance", ""] + acceptance(summary)
        png = plot_ll(groups, out)
        if png:
            md += ["", f"![test LL vs latent dimension]({png.name})"]
    md += [
        "",
        "### ELBO terms (test set)",
        "",
        "Test ELBO = reconstruction term (Monte Carlo over the same importance samples) − KL (closed form); "
        "LL − ELBO is the gap that importance sampling closes.",
        "",
    ] + elbo_table(groups, with_paper=paper)
    md += [
        "",
        "### Training",
        "",
        "Per-seed values separated by /. Under-trained: not stopped by early stopping and the best "
        "validation epoch within the last tenth of the run (still improving when it stopped).",
        "",
    ]
    md += training_table(groups)
    curves = plot_curves(groups, out, "curves_paper.png" if paper else "curves_ambient.png")
    if curves:
        md += ["", "Validation ELBO per epoch (dots: best epoch):", "", f"![learning curves]({curves.name})"]
    # pictures of the paper-convention runs only (N on R^2 beside S on S^2; experiments/results/ stays small)
    pngs = plot_latents(groups, out) if paper else []
    if pngs:
        md += ["", "### Latent means of the test set", "", "One seed each."] + [
            "",
            *[f"![{p.stem}]({p.name})" for p in pngs],
        ]


def _s_space(rec) -> str:
    """Where the S-VAE's z lives: S^m in R^D, or k factors S^m."""
    a, k = ambient_dim(rec), rec.get("spheres", 1)
    return f"S^{a - 1} ⊂ R^{a}" if k == 1 else f"{k} × S^{a // k - 1} ⊂ R^{a}"


def _seconds(rs) -> str:
    return f"{statistics.median(r['median_epoch_time_s'] for r in rs):.1f}" if rs else "—"


def _same_cell(runs, model: str, conv: str, d: int, spheres: int, seeds: set) -> list[dict]:
    """The runs of ``model`` with its original posterior in one cell (convention, d, spheres) on ``seeds``."""
    return sorted(
        (
            r
            for r in runs
            if r["config"]["model"] == model
            and default_family(r)
            and convention(r) == conv
            and r["config"]["latent_dim"] == d
            and r.get("spheres", 1) == spheres
            and r["config"]["seed"] in seeds
        ),
        key=lambda r: r["config"]["seed"],
    )


def posterior_table(runs, family: str = "power-spherical") -> list[str]:
    """N-VAE, the vMF S-VAE and the S-VAE with the posterior ``family`` for every (convention, d, spheres) with
    untagged runs of that family, on the seeds of those runs: test LL and ELBO, the family's test LL minus the
    vMF one per seed (same seed, same data order), and the median time per epoch of each; [] without such runs."""
    untagged = [r for r in runs if not r["config"].get("tag")]
    other = defaultdict(list)
    for r in untagged:
        if r["config"]["model"] == "s-vae" and posterior(r) == family:
            other[(convention(r), r["config"]["latent_dim"], r.get("spheres", 1))].append(r)
    if not other:
        return []
    lines = [
        "| convention | d | z (S-VAE) | N-VAE test LL | vMF S-VAE test LL | PS S-VAE test LL | PS − vMF test LL "
        "(PS better) | N-VAE test ELBO | vMF S-VAE test ELBO | PS S-VAE test ELBO | epoch (s): N / vMF / PS |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    marked = False
    for conv, d, k in sorted(other, key=lambda key: (CONVENTIONS.index(key[0]), key[1], key[2])):
        ps = sorted(other[(conv, d, k)], key=lambda r: r["config"]["seed"])
        seeds = {r["config"]["seed"] for r in ps}

        n = _same_cell(untagged, "n-vae", conv, d, 1, seeds)
        vmf = _same_cell(untagged, "s-vae", conv, d, k, seeds)
        by_seed = {r["config"]["seed"]: r["test_ll"] for r in vmf}
        diffs = [r["test_ll"] - by_seed[r["config"]["seed"]] for r in ps if r["config"]["seed"] in by_seed]
        paired = "—"
        if diffs:
            mu, sd = mean_std(diffs)
            paired = f"{num(mu, signed=True)} ± {num(sd)} ({sum(x > 0 for x in diffs)}/{len(diffs)})"
        mark = [UNFINISHED if any(not converged(r) for r in rs) else "" for rs in (n, vmf, ps)]
        marked = marked or any(mark)
        if diffs and (mark[1] or mark[2]):
            paired += UNFINISHED
        ll = [f"{fmt(r['test_ll'] for r in rs)} ({len(rs)}){m}" if rs else "—" for rs, m in zip((n, vmf, ps), mark)]
        elbo = [f"{fmt(r['test_elbo'] for r in rs)} ({len(rs)}){m}" if rs else "—" for rs, m in zip((n, vmf, ps), mark)]
        lines.append(
            f"| {conv} | {d} | {_s_space(ps[0])} | {' | '.join(ll)} | {paired} | {' | '.join(elbo)} | "
            f"{_seconds(n)} / {_seconds(vmf)} / {_seconds(ps)} |"
        )
    if marked:
        lines += ["", UNFINISHED_NOTE]
    return lines


# ---------------------------------------------------------------- product of spheres (Davidson et al., 2019)
# The layout sweep (product_sweep.sh): S-VAE on k spheres S^m at d = PRODUCT_SWEEP_DOF degrees of freedom, one
# seed, PRODUCT_SWEEP_EPOCHS epochs, tagged PRODUCT_SWEEP_TAG; then PRODUCT_SEEDS at the chosen layout for every d
# of PRODUCT_DOF with converge.sh (untagged, to the end of the protocol).
PRODUCT_SWEEP_TAG = "sweep100"
PRODUCT_SWEEP_DOF = 20
PRODUCT_SWEEP_M = (1, 2, 4, 5, 10)  # m = 1: circles, the split of the 2019 authors' d = 20 run scripts
PRODUCT_SWEEP_SEED = 0
PRODUCT_SWEEP_EPOCHS = 100
PRODUCT_DOF = (10, 20, 40)
PRODUCT_SEEDS = (0, 1, 2)
PATIENCE = 50  # the protocol's early-stopping patience (epochs)


def ended_by_protocol(rec, max_epochs: int = MAX_EPOCHS) -> bool:
    """Whether a run ended as the protocol ends it (converge.sh and product_sweep.sh decide with this): by early
    stopping with a patience of at least PATIENCE epochs, or after ``max_epochs`` epochs, and not on a
    training-time budget. A call given a budget that early stopping ended first counts: the budget did not bind."""
    stopped = rec["stopped"]
    if stopped.startswith("early stopping"):
        return rec["config"].get("patience", PATIENCE) >= PATIENCE
    return not stopped.startswith("time budget") and rec["epochs_run"] >= max_epochs


def converged(rec) -> bool:
    """Whether a run ended by the protocol: early stopping or the 500-epoch maximum (:func:`ended_by_protocol`)."""
    return ended_by_protocol(rec, MAX_EPOCHS)


def _vmf_product(rec) -> bool:
    """A vMF S-VAE run on a product of k > 1 spheres under the paper's convention."""
    return (
        rec["config"]["model"] == "s-vae"
        and posterior(rec) == "vmf"
        and convention(rec) == "paper"
        and rec.get("spheres", 1) > 1
    )


def sweep_runs(runs) -> dict[int, dict]:
    """The layout sweep's run of each factor size m (m = d / k): vMF product runs tagged PRODUCT_SWEEP_TAG at
    d = PRODUCT_SWEEP_DOF, seed PRODUCT_SWEEP_SEED (the last by path where a layout has several files)."""
    found: dict[int, dict] = {}
    for r in sorted(runs, key=lambda r: r.get("_path", "")):
        c = r["config"]
        if (
            _vmf_product(r)
            and c.get("tag") == PRODUCT_SWEEP_TAG
            and c["latent_dim"] == PRODUCT_SWEEP_DOF
            and c["seed"] == PRODUCT_SWEEP_SEED
        ):
            found[PRODUCT_SWEEP_DOF // r["spheres"]] = r
    return found


def sweep_finished(rec) -> bool:
    """Whether a sweep run trained its PRODUCT_SWEEP_EPOCHS epochs or stopped early (:func:`ended_by_protocol`)."""
    return ended_by_protocol(rec, PRODUCT_SWEEP_EPOCHS)


def chosen_factor_size(runs) -> int | None:
    """The factor size m chosen on the layout sweep, or None until every m of PRODUCT_SWEEP_M has a finished
    sweep run. The rule: the highest best validation ELBO, rounded to 0.01 nats (the precision of the report);
    a tie goes to the larger m (fewer spheres, closer to the single sphere). Test scores play no part."""
    sweep = sweep_runs(runs)
    if any(m not in sweep or not sweep_finished(sweep[m]) for m in PRODUCT_SWEEP_M):
        return None
    return max(PRODUCT_SWEEP_M, key=lambda m: (round(sweep[m]["best_val_elbo"], 2), m))


def factor_size_at(m: int, d: int) -> int:
    """The factor size used at d for the size m chosen at PRODUCT_SWEEP_DOF: m itself where it divides d with
    k = d / m >= 2 spheres; otherwise the divisor m' < d of d nearest to m (a tie: the larger m'), so that the
    latent stays a product of at least two spheres."""
    if m < 1 or d < 2:
        raise ValueError(f"factor size m must be >= 1 and d >= 2, got m = {m}, d = {d}")
    if d % m == 0 and m < d:
        return m
    return min((c for c in range(1, d) if d % c == 0), key=lambda c: (abs(c - m), -c))


def product_cells(m: int) -> list[str]:
    """converge.sh cells ("model d seed spheres") of the product S-VAE for factor size m (chosen at
    PRODUCT_SWEEP_DOF): every d of PRODUCT_DOF, seeds PRODUCT_SEEDS."""
    cells = []
    for d in PRODUCT_DOF:
        k = d // factor_size_at(m, d)
        cells += [f"s-vae {d} {seed} {k}" for seed in PRODUCT_SEEDS]
    return cells


def _sweep_references(untagged) -> list[tuple[str, str, dict]]:
    """(label, colour, run) of the N-VAE and the single-sphere S-VAE at the sweep's d and seed, where they exist."""
    seed = {PRODUCT_SWEEP_SEED}
    found = []
    for model, label, color in (("n-vae", "N-VAE", "tab:blue"), ("s-vae", "S-VAE (S^d)", "tab:red")):
        rs = _same_cell(untagged, model, "paper", PRODUCT_SWEEP_DOF, 1, seed)
        if rs:
            found.append((label, color, rs[0]))
    return found


def _best_within(rec, epochs: int) -> float:
    """The best validation ELBO of a run over its first ``epochs`` epochs."""
    h = rec["history"]
    return max(v for e, v in zip(h["epoch"], h["val_elbo"]) if e <= epochs)


def _layout(d: int, k: int) -> str:
    return f"{k} × S^{d // k}"


def _ends(rs) -> str:
    """How each run ended, in seed order: early stopping / the 500-epoch maximum (converged), else its epochs."""

    def one(r) -> str:
        if converged(r):
            return f"early {r['epochs_run']}" if r["stopped"].startswith("early stopping") else f"max {r['epochs_run']}"
        return f"open {r['epochs_run']}"

    return f"{sum(map(converged, rs))}/{len(rs)}: " + ", ".join(one(r) for r in rs) if rs else "—"


def _mean_kls(*cells) -> str:
    """The mean test KL of each cell, "a / b / c" (— for an empty cell): where each model spends its nats."""
    return " / ".join(num(mean_std([r["test_kl"] for r in rs])[0]) if rs else "—" for rs in cells)


def _paired_ll(a, b) -> str:
    """a − b in test LL per seed (same seed: same data order), mean ± std (seeds where a is better)."""
    diffs = _per_seed_differences(a, b)
    if not diffs:
        return "—"
    mu, sd = mean_std(diffs)
    return f"{num(mu, signed=True)} ± {num(sd)} ({sum(x > 0 for x in diffs)}/{len(diffs)})"


def product_section(runs) -> list[str]:
    """The product-of-spheres section's lines: the layout sweep and, per d, the N-VAE, the single-sphere S-VAE
    and the product S-VAE at the chosen layout (test LL, how the runs ended); [] without vMF product runs."""
    if not any(_vmf_product(r) for r in runs):
        return []
    sweep = sweep_runs(runs)
    m = chosen_factor_size(runs)
    lines = [
        "",
        "## Product of spheres",
        "",
        "d latent degrees of freedom: N-VAE with z in R^d, the single-sphere S-VAE with z on S^d ⊂ R^(d+1) and "
        "the product S-VAE with z on k independent vMF factors S^m (k m = d, z in R^(d+k); Davidson et al., "
        "2019: each factor its own mean direction and concentration, a uniform prior on each; `--spheres k`).",
        "",
        "### Layout sweep (validation only)",
        "",
        f"At d = {PRODUCT_SWEEP_DOF}, m ∈ {{{', '.join(map(str, PRODUCT_SWEEP_M))}}} (k = d / m spheres), seed "
        f"{PRODUCT_SWEEP_SEED}, {PRODUCT_SWEEP_EPOCHS} epochs with the protocol's other settings "
        f"(`product_sweep.sh`, tag `{PRODUCT_SWEEP_TAG}`). Chosen: the highest best validation ELBO, rounded to "
        "0.01 nats, a tie going to the larger m (fewer spheres); only once every layout has finished its epochs. "
        "The test set plays no part in the choice. At another d the same m is used where it divides d with "
        "k ≥ 2, otherwise the divisor of d below d nearest to m (a tie: the larger).",
        "",
        "| m | k | layout | z in | best val ELBO | best epoch | epochs run | stopped by | chosen |",
        "|--:|--:|---|---|--:|--:|--:|---|:--:|",
    ]
    for mm in sorted(sweep):
        r = sweep[mm]
        k = r["spheres"]
        lines.append(
            f"| {mm} | {k} | {_layout(PRODUCT_SWEEP_DOF, k)} | R^{ambient_dim(r)} | {num(r['best_val_elbo'])} | "
            f"{r['best_epoch']} | {r['epochs_run']} | {r['stopped'].split(':')[0]} | {'✓' if mm == m else ''} |"
        )
    missing = [mm for mm in PRODUCT_SWEEP_M if mm not in sweep or not sweep_finished(sweep[mm])]
    if missing:
        lines += ["", f"No layout chosen yet: no finished sweep run for m = {', '.join(map(str, missing))}."]
    untagged = [r for r in runs if not r["config"].get("tag")]
    refs = _sweep_references(untagged)
    if refs:
        lines += [
            "",
            f"For reference (not part of the choice): the best validation ELBO in the first {PRODUCT_SWEEP_EPOCHS} "
            f"epochs of the seed-{PRODUCT_SWEEP_SEED} runs at d = {PRODUCT_SWEEP_DOF} of the main table: "
            + ", ".join(f"{label} {num(_best_within(r, PRODUCT_SWEEP_EPOCHS))}" for label, _, r in refs)
            + ".",
        ]
    seeds = set(PRODUCT_SEEDS)
    products = defaultdict(list)
    for r in untagged:
        if _vmf_product(r) and r["config"]["seed"] in seeds:
            products[(r["config"]["latent_dim"], r["spheres"])].append(r)
    rows = []  # (d, k, chosen)
    for d in PRODUCT_DOF:
        if m is not None:
            rows.append((d, d // factor_size_at(m, d), True))
    rows += [(d, k, False) for d, k in products if (d, k, True) not in rows]
    rows.sort(key=lambda row: (row[0], not row[2], -row[1]))
    lines += [
        "",
        "### Against the N-VAE and the single sphere",
        "",
        "Untagged runs on seeds " + ", ".join(map(str, PRODUCT_SEEDS)) + " (the same data order for the same "
        "seed), trained with `converge.sh`. Test LL (nats, importance sampling) mean ± std (number of seeds); "
        "product − S, product − N: the product's test LL minus the single sphere's or the N-VAE's, per seed, mean "
        "± std (seeds where the product is better). Test KL: the KL term of the test ELBO, mean over seeds, N / S "
        "/ product (nats). Ended: converged runs of all runs, then each run in seed order: early N (early "
        "stopping after N epochs) or max 500 (the maximum) are converged, open N is not (a time budget or an "
        "unfinished call). Paper: Davidson et al. (2018), Table 1 (single sphere).",
        "",
        "| d | layout | N-VAE test LL | N-VAE ended | S-VAE (S^d) test LL | S-VAE ended | product test LL | "
        "product ended | product − S | product − N | test KL: N / S / product | paper N-VAE | paper S-VAE |",
        "|--:|---|--:|---|--:|---|--:|---|--:|--:|--:|--:|--:|",
    ]
    if not rows:
        lines[-2:] = ["No product cells yet: they are trained once the sweep has chosen the layout."]
    notes = []
    for d, k, chosen in rows:
        n = _same_cell(untagged, "n-vae", "paper", d, 1, seeds)
        s = _same_cell(untagged, "s-vae", "paper", d, 1, seeds)
        p = sorted(products.get((d, k), []), key=lambda r: r["config"]["seed"])
        layout = _layout(d, k) + ("" if chosen else " (not the chosen layout)")
        cells = [f"{fmt(r['test_ll'] for r in rs)} ({len(rs)})" if rs else "—" for rs in (n, s, p)]
        paper = [PAPER_LL.get((model, d)) for model in MODEL_ORDER]
        lines.append(
            f"| {d} | {layout} | {cells[0]} | {_ends(n)} | {cells[1]} | {_ends(s)} | {cells[2]} | {_ends(p)} | "
            f"{_paired_ll(p, s)} | {_paired_ll(p, n)} | {_mean_kls(n, s, p)} | "
            f"{' | '.join('—' if x is None else num(x) for x in paper)} |"
        )
        for label, rs in (("N-VAE", n), ("S-VAE", s), (f"product {_layout(d, k)}", p)):
            c, n_seeds = sum(map(converged, rs)), len(PRODUCT_SEEDS)
            if c < n_seeds:
                files = f" ({len(rs)} run file{'s' * (len(rs) != 1)})" if len(rs) < n_seeds else ""
                notes.append(f"* d = {d}, {label}: {c} of {n_seeds} seeds converged{files}.")
    if notes:
        lines += ["", f"Cells with fewer than {len(PRODUCT_SEEDS)} converged seeds:", ""] + notes
    return lines


def plot_product_curves(runs, out: Path, name: str = "curves_products.png") -> Path | None:
    """Validation ELBO against the epoch: the layout sweep (one line per factor size m) and, at each d of
    PRODUCT_DOF, every seed of the N-VAE (blue), the single-sphere S-VAE (red) and the product S-VAE at the chosen
    layout (green), the best epoch marked; None without vMF product runs."""
    if not any(_vmf_product(r) for r in runs):
        return None
    sweep, m = sweep_runs(runs), chosen_factor_size(runs)
    untagged = [r for r in runs if not r["config"].get("tag")]
    plt = pyplot()
    fig, axes = plt.subplots(1, 1 + len(PRODUCT_DOF), figsize=(3.6 * (1 + len(PRODUCT_DOF)), 3.4), squeeze=False)
    ax = axes[0][0]
    colors = plt.get_cmap("viridis")
    for mm in sorted(sweep):
        r, i = sweep[mm], PRODUCT_SWEEP_M.index(mm) if mm in PRODUCT_SWEEP_M else 0
        ax.plot(
            r["history"]["epoch"],
            r["history"]["val_elbo"],
            lw=0.9,
            color=colors(i / max(1, len(PRODUCT_SWEEP_M) - 1)),
            label=f"m = {mm}{' (chosen)' if mm == m else ''}",
        )
    references = _sweep_references(untagged)
    for label, color, r in references:  # the single sphere and the N-VAE over the same epochs, for reference
        h = r["history"]
        n = sum(e <= PRODUCT_SWEEP_EPOCHS for e in h["epoch"])
        ax.plot(h["epoch"][:n], h["val_elbo"][:n], color=color, lw=0.8, ls="--", label=f"{label} (reference)")
    ax.set(title=f"layout sweep, d = {PRODUCT_SWEEP_DOF}", xlabel="epoch", ylabel="validation ELBO (nats)")
    _zoom(ax, list(sweep.values()))
    cells = _summary_cells(runs)
    for ax, d in zip(axes[0][1:], PRODUCT_DOF):
        for label, rs in cells[d]:
            _draw_runs(ax, rs, SUMMARY_COLORS[label.split(" ")[0]], label)
        ax.set(title=f"d = {d}", xlabel="epoch")
        _zoom(ax, [r for _, rs in cells[d] for r in rs])
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out / name, 90)


SUMMARY_FILE = "dimensions.md"  # the summary table, also shown in README.md
SUMMARY_COLORS = {"N-VAE": "tab:blue", "S-VAE": "tab:red", "product": "tab:green"}  # by the cell label's first word


def _cell_done(rs) -> bool:
    """Whether a cell has a run on every seed of PRODUCT_SEEDS and each ended by the protocol."""
    return len(rs) == len(PRODUCT_SEEDS) and all(map(converged, rs))


def _summary_cells(runs) -> dict[int, list[tuple[str, list[dict]]]]:
    """Per d of TABLE_DIMS, (label, runs on PRODUCT_SEEDS) of the N-VAE, the single-sphere S-VAE and, at d of
    PRODUCT_DOF once the sweep has chosen the layout, the product S-VAE at that layout (paper's convention)."""
    untagged = [r for r in runs if not r["config"].get("tag")]
    seeds, m = set(PRODUCT_SEEDS), chosen_factor_size(runs)
    out = {}
    for d in TABLE_DIMS:
        out[d] = [
            ("N-VAE", _same_cell(untagged, "n-vae", "paper", d, 1, seeds)),
            ("S-VAE", _same_cell(untagged, "s-vae", "paper", d, 1, seeds)),
        ]
        if d in PRODUCT_DOF and m is not None:
            k = d // factor_size_at(m, d)
            out[d].append((f"product {_layout(d, k)}", _same_cell(untagged, "s-vae", "paper", d, k, seeds)))
    return out


def plot_dimension_summary(runs, out: Path, name: str = "ll_across_dims.png") -> Path:
    """Test LL against d of the N-VAE, the single sphere and the product (mean ± std over seeds, open markers where
    not every seed has ended by the protocol) with Table 1's figures, and each S-VAE minus the N-VAE per seed."""
    labels = {"N-VAE": "N-VAE, R^d", "S-VAE": "S-VAE, S^d", "product": "product S-VAE, k × S^m (the chosen layout)"}
    lls, diffs = defaultdict(list), defaultdict(list)  # (model, every seed ended) -> [(d, values)]
    for d, cells in _summary_cells(runs).items():
        n_runs = cells[0][1]
        for label, rs in cells:
            if not rs:
                continue
            key, done = label.split(" ")[0], _cell_done(rs)
            lls[(key, done)].append((d, [r["test_ll"] for r in rs]))
            if key != "N-VAE":
                diffs[(key, done and all(map(converged, n_runs)))].append((d, _per_seed_differences(rs, n_runs)))
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for a, points, suffix in ((ax, lls, ""), (ax2, diffs, " − N-VAE")):
        for key, color in SUMMARY_COLORS.items():
            errorbar_means(a, points[(key, True)], color, labels[key] + suffix)
            for d, values in points[(key, False)]:  # open markers: not every seed ended yet
                if values:
                    a.plot([d], [statistics.mean(values)], marker="o", mfc="none", color=color, ls="none")
    _plot_table1_ll(ax, "{model}, Davidson et al. (2018)", alpha=0.6)
    _plot_table1_gap(ax2, "S-VAE − N-VAE, Davidson et al. (2018)", color="tab:red", alpha=0.6)
    ax2.axhline(0.0, color="0.7", lw=0.8)
    for a, ylabel in ((ax, "test log-likelihood (nats)"), (ax2, "minus the N-VAE, per seed (nats)")):
        log2_axis(a, TABLE_DIMS)
        a.set(xlabel="latent degrees of freedom d", ylabel=ylabel)
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    still_open = any(points[(key, False)] for points in (lls, diffs) for key in SUMMARY_COLORS)
    ax.set_title("MNIST test LL" + (" (open markers: not every seed ended yet)" if still_open else ""))
    ax2.set_title("S-VAE minus N-VAE (> 0: the sphere is better)")
    fig.tight_layout()
    return save_figure(fig, out / name, 100)


def dimension_summary(runs) -> list[str]:
    """The answer table across latent dimensions: at each d of TABLE_DIMS (the paper's convention), the N-VAE,
    the single-sphere S-VAE and (at d of PRODUCT_DOF, once the layout is chosen) the product S-VAE on seeds
    PRODUCT_SEEDS, and which is ahead. A model is ahead only when every cell of its row has all its seeds trained
    to the end of the protocol: the highest mean test LL, with its margin over the next and the seeds where it
    is better than the next (same seed, same data order)."""
    seeds, m = set(PRODUCT_SEEDS), chosen_factor_size(runs)
    lines = [
        "| d | N-VAE (R^d) | S-VAE (S^d) | product S-VAE (k × S^m) | ahead: margin over the next (seeds) | "
        "2018 paper: N / S |",
        "|--:|--:|--:|--:|---|--:|",
    ]
    marked = False
    for d, cells in _summary_cells(runs).items():
        product = "—"
        if d in PRODUCT_DOF and m is None:
            product = "layout open"
        done = [_cell_done(rs) for _, rs in cells]
        shown = []
        for (label, rs), ok in zip(cells, done):
            # One seed has no spread to show: its value alone, with the seed count beside it.
            text = (num(rs[0]["test_ll"]) if len(rs) == 1 else fmt(r["test_ll"] for r in rs)) if rs else "no run yet"
            notes = [label.split(" ", 1)[1]] if label.startswith("product") else []
            if rs and len(rs) < len(seeds):
                notes.append(f"{len(rs)} of {len(seeds)} seeds")
            text += f" ({', '.join(notes)})" if notes else ""
            shown.append(text + ("" if ok else UNFINISHED))
        marked = marked or not all(done)
        if len(cells) == 3:
            product = shown.pop()
        elif d in PRODUCT_DOF and m is None:
            marked = True
            product += UNFINISHED
        finished = [c for c, ok in zip(cells, done) if ok]
        ahead = "open"
        if len(finished) >= 2:
            ranked = sorted(finished, key=lambda c: -mean_std([r["test_ll"] for r in c[1]])[0])
            (best, b), (nxt, n) = ranked[0], ranked[1]
            by_seed = {r["config"]["seed"]: r["test_ll"] for r in n}
            diffs = [r["test_ll"] - by_seed[r["config"]["seed"]] for r in b]
            verdict = f"{best}: {num(statistics.mean(diffs), signed=True)} over {nxt} ({sum(x > 0 for x in diffs)}/{len(diffs)})"
            ahead = (
                verdict if len(finished) == len(cells) and not (d in PRODUCT_DOF and m is None) else f"open; {verdict}"
            )
        paper = " / ".join("—" if PAPER_LL.get((mm, d)) is None else num(PAPER_LL[(mm, d)]) for mm in MODEL_ORDER)
        lines.append(f"| {d} | {shown[0]} | {shown[1]} | {product} | {ahead} | {paper} |")
    lines += [
        "",
        f"Test log-likelihood (nats, 500 importance samples, higher is better), mean ± std over seeds "
        f"{', '.join(map(str, PRODUCT_SEEDS))}. Ahead: the best mean, its margin over the next and the seeds where it "
        "is better"
        + (
            f"; open while a run of the row is still training, followed by the verdict among the finished cells. "
            f"{UNFINISHED} not every seed trained to the end yet."
            if marked
            else "."
        ),
    ]
    return lines


def print_product_cells(root) -> int:
    """Prints the layout sweep under ``root`` (best validation ELBO per m), the chosen m, the layout at each d
    of PRODUCT_DOF and the converge.sh call that trains the product cells; 1 (nothing chosen) while a layout
    of the sweep has no finished run, else 0."""
    runs = load_runs(Path(root)) if Path(root).is_dir() else []
    sweep = sweep_runs(runs)
    print(
        f"layout sweep at d = {PRODUCT_SWEEP_DOF} (tag {PRODUCT_SWEEP_TAG}, seed {PRODUCT_SWEEP_SEED}), best validation ELBO:"
    )
    for m in PRODUCT_SWEEP_M:
        r = sweep.get(m)
        state = "no run file"
        if r is not None:
            state = f"{r['best_val_elbo']:.2f} at epoch {r['best_epoch']} of {r['epochs_run']}"
            state += "" if sweep_finished(r) else " (not finished)"
        print(f"  m = {m} (k = {PRODUCT_SWEEP_DOF // m}): {state}")
    m = chosen_factor_size(runs)
    if m is None:
        print("no layout chosen: every m of the sweep needs a finished run")
        return 1
    print(f"chosen m = {m} (highest best validation ELBO to 0.01 nats; a tie: the larger m)")
    for d in PRODUCT_DOF:
        md = factor_size_at(m, d)
        print(f"  d = {d}: {_layout(d, d // md)}" + ("" if md == m else f" (m = {m} does not give k >= 2 here)"))
    print(f'CELLS="{",".join(product_cells(m))}" bash experiments/results/mnist/converge.sh [MNIST_DIR]')
    return 0


def write_report(root) -> Path:
    root = Path(root)
    runs = load_runs(root)
    if not runs:
        raise SystemExit(f"error: no MNIST run JSON files under {root}")
    any_run = runs[0]
    v, dev = any_run["versions"], any_run["device"]
    total = sum(r["total_time_s"] for r in runs)
    md = [
        "# MNIST: N-VAE vs S-VAE across latent dimensions",
        "",
        f"Generated by `python -m experiments.report {root.as_posix()}` from {len(runs)} run files "
        f"(torch {v['torch']}, hvae_ext {v['hvae_ext']}, device {dev['device']}, {dev['torch_threads']} "
        f"thread(s) per run). Sum of all run times: {total / 3600:.2f} h.",
    ]
    for conv in CONVENTIONS:
        conv_runs = [
            r
            for r in runs
            if convention(r) == conv and not r["config"].get("tag") and default_family(r) and r.get("spheres", 1) == 1
        ]
        groups = group(runs, dim_convention=conv)
        if not groups:
            continue
        if conv == "paper":
            md += [
                "",
                "## The paper's convention: d latent degrees of freedom",
                "",
                "N-VAE with z in R^d against S-VAE with z on S^d ⊂ R^(d+1), as in Table 1 and the authors' "
                "example scripts (`z_dim + 1` for the vMF model).",
                "",
            ]
        else:
            md += [
                "",
                "## Equal ambient dimension (earlier sweep)",
                "",
                "N-VAE with z in R^d against S-VAE with z on S^(d−1) ⊂ R^d: the S-VAE has one degree of "
                "freedom fewer than the N-VAE and than the paper's S-VAE of the same d; kept as a second, "
                "labelled comparison.",
                "",
            ]
        _section(md, conv_runs, groups, root, paper=conv == "paper")
    product = product_section(runs)
    if product:
        curves = plot_product_curves(runs, root)
        if curves:
            product += [
                "",
                "Validation ELBO per epoch (dots: best epoch):",
                "",
                f"![product learning curves]({curves.name})",
            ]
    md += product
    summary = dimension_summary(runs)
    (root / SUMMARY_FILE).write_text("\n".join(summary) + "\n")
    png = plot_dimension_summary(runs, root)
    md += (
        [
            "",
            "## Across latent dimensions",
            "",
            f"The main table, the product section and Davidson et al. (2018) in one table (also in `{SUMMARY_FILE}`).",
            "",
        ]
        + summary
        + ["", f"![test LL across latent dimensions]({png.name})"]
    )
    pst = posterior_table(runs)
    if pst:
        md += [
            "",
            "## Power Spherical posterior",
            "",
            "The S-VAE with the Power Spherical posterior (De Cao and Aziz, 2020; `--posterior "
            "power-spherical`; PS in the table) beside the N-VAE and the S-VAE with the von Mises-Fisher "
            "posterior of the same d and convention (the same encoder, decoder, prior and training for both "
            "S-VAE). Test LL and ELBO (nats) mean ± std (number of seeds), on the seeds of the Power "
            "Spherical runs only (the same data order for the same seed); PS − vMF test LL per seed, mean ± "
            "std, with the number of seeds where Power Spherical is better. Epoch: the median over runs of "
            "each run's median training time per epoch; runs made at different times on a shared machine "
            "compare only roughly.",
            "",
        ] + pst
    tagged = {k: rs for conv in CONVENTIONS for k, rs in group(runs, tagged=True, dim_convention=conv).items()}
    if tagged:
        main_groups = group(runs, dim_convention="ambient")
        md += [
            "",
            "## Exploratory runs (tagged, equal-ambient convention)",
            "",
            "Main − tagged: the equal-ambient table's mean test LL for the same model and d minus the tagged "
            "runs' mean (positive: the table's runs are better).",
            "",
            "| tag | model | d | seeds | test LL | epochs | main − tagged |",
            "|---|---|--:|--:|--:|--:|--:|",
        ]
        for (m, d, tag), rs in sorted(tagged.items()):
            tagged_ll = [r["test_ll"] for r in rs]
            main_ll = [r["test_ll"] for r in main_groups.get((m, d), [])]
            diff = num(mean_std(main_ll)[0] - mean_std(tagged_ll)[0], signed=True) if main_ll else "—"
            md.append(
                f"| {tag} | {MODEL_LABEL[m]} | {d} | {len(rs)} | {fmt(tagged_ll)} | "
                f"{'/'.join(str(r['epochs_run']) for r in rs)} | {diff} |"
            )
    return write_markdown(root, md)


def main(argv: list[str] | None = None) -> None:
    report_main(
        argv,
        "python -m experiments.report_mnist",
        "Tables and plots from MNIST N-VAE / S-VAE run JSON files.",
        write_report,
    )


if __name__ == "__main__":
    main()
