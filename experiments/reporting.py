"""Helpers shared by the experiment reports (:mod:`~experiments.report` for link prediction,
:mod:`~experiments.report_mnist`): reading the run files, mean ± std and its formatting, the
mean ± std panels of the plots, and writing ``report.md`` with the hand-written notes appended."""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path


def load_records(root: Path, accept: Callable[[object], bool], pattern: str = "*.json") -> list[dict]:
    """Every file matching ``pattern`` under ``root`` (recursively, sorted) holding JSON that ``accept``
    takes, with ``_path`` (the path relative to ``root``, for the report's text) and ``_file`` (the path, to
    find files written beside it) added; unreadable files are skipped."""
    records = []
    for path in sorted(Path(root).rglob(pattern)):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if accept(rec):
            rec["_path"] = str(path.relative_to(root))
            rec["_file"] = path
            records.append(rec)
    return records


def posterior(r) -> str:
    """The posterior family of a run file: "vmf" or "power-spherical" for the S-VAE / S-VGAE, "normal" for the
    N-VAE / N-VGAE; run files written before the family was an option lack it and are vMF (S-models) or Gaussian
    (N-models)."""
    return r.get("posterior", "vmf" if r["config"]["model"].startswith("s-") else "normal")


def default_family(r) -> bool:
    """Whether a run has its model's original posterior (vMF for the S-models, Gaussian for the N-models): the
    runs of every section but the Power Spherical one."""
    return posterior(r) in ("vmf", "normal")


def ambient_dim(r) -> int:
    """The size of z (run files before ``ambient_dim`` was recorded name it ``config.latent_dim``)."""
    return r.get("ambient_dim", r["config"]["latent_dim"])


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value; NaN, NaN for none)."""
    values = list(values)
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def format_mean_std(values: Iterable[float], digits: int, scale: float = 1.0, unicode_minus: bool = False) -> str:
    """``"m ± s"`` of ``scale * values`` with ``digits`` decimals (``—`` for no values); ``unicode_minus``
    writes minus signs as U+2212."""
    m, s = mean_std(scale * v for v in values)
    if math.isnan(m):
        return "—"
    text = f"{m:.{digits}f} ± {s:.{digits}f}"
    return text.replace("-", "−") if unicode_minus else text


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int) -> Path:
    """Writes ``fig`` to ``path`` and closes it."""
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def errorbar_means(ax, points: Iterable[tuple[float, list[float]]], color: str, label: str) -> None:
    """Mean ± std of each (x, values) with values (points without values are left out), as one errorbar
    line; nothing is drawn when no point has values."""
    xs, mus, sds = [], [], []
    for x, values in points:
        if values:
            mu, sd = mean_std(values)
            xs.append(x), mus.append(mu), sds.append(sd)
    if xs:
        ax.errorbar(xs, mus, yerr=sds, marker="o", capsize=3, color=color, label=label)


def log2_axis(ax, ticks) -> None:
    """A base-2 logarithmic x axis with ``ticks`` labelled by their values."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks])


def write_markdown(root: Path, md: list[str]) -> Path:
    """Writes ``root/report.md`` from the lines ``md``, with ``root/notes.md`` (hand-written) appended when
    present."""
    notes = root / "notes.md"
    if notes.is_file():
        md = md + ["", notes.read_text().rstrip()]
    path = root / "report.md"
    path.write_text("\n".join(md) + "\n")
    return path


def report_main(argv: list[str] | None, prog: str, description: str, write: Callable[[Path], Path]) -> None:
    """The command line of a report: one folder of run files, searched recursively; the outputs go there."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("dir", help="folder with the run JSON files (searched recursively); outputs go there")
    args = p.parse_args(argv)
    root = Path(args.dir)
    if not root.is_dir():
        p.error(f"{root} is not a folder")
    print(f"wrote {write(root)}")
