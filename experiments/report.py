"""Report of the link-prediction runs: ``python -m experiments.report DIR``.

Reads every run JSON under DIR (recursively) and every ``timing_*.json`` of
:mod:`experiments.epoch_timing`, and writes into DIR:

* ``report.md``: test AUC / AP (mean +- std over seeds) per dataset and model at latent dim 16 beside the
  published numbers, epoch times of S against N, the latent-dimension study, and the tuning runs
  (validation scores only: configurations were chosen on the validation split);
* ``curves_<Dataset>.png``: validation AUC and training loss per epoch, N against S, mean and +-1 std band;
* ``latent_dim.png``: test AUC against latent dimension for N and S;
* the product-of-spheres study (``products/``, ``run_products.sh``): N-VGAE against the single-sphere and the
  product S-VGAE at equal degrees of freedom, with the validation sweep that chose each product's layout;
* the Power Spherical posterior (``run_power_spherical.sh``): N-VGAE, the von Mises-Fisher S-VGAE and the Power
  Spherical S-VGAE side by side at each latent size where Power Spherical runs exist (test AUC / AP, and
  the median time per training step and per epoch from the interleaved timing files of
  ``run_ps_timing.sh``).

A hand-written ``DIR/notes.md``, when present, is appended to the report.

Runs with a ``--tag`` are tuning runs and are kept out of the main table and the latent study; runs on a
product of spheres (``spheres`` > 1; a run file without ``spheres`` is a single sphere) only enter the product
section. Runs of another posterior family than the von Mises-Fisher one (``posterior``; a run file without it
is vMF, the N-VGAE's is ``"normal"``) only enter the Power Spherical section.
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

# Test AUC / AP in % (mean over runs).
PAPER = {  # Davidson et al. (2018), Table 3
    ("Cora", "n-vgae"): (92.7, 93.2),
    ("CiteSeer", "n-vgae"): (90.3, 91.5),
    ("PubMed", "n-vgae"): (97.1, 97.1),
    ("Cora", "s-vgae"): (94.1, 94.1),
    ("CiteSeer", "s-vgae"): (94.7, 95.2),
    ("PubMed", "s-vgae"): (96.0, 96.0),
}
KIPF = {"Cora": (91.4, 92.6), "CiteSeer": (90.8, 92.0), "PubMed": (94.4, 94.7)}  # Kipf & Welling (2016)
DATASET_ORDER = ("Cora", "CiteSeer", "PubMed")
MODEL_ORDER = ("n-vgae", "s-vgae")
MODEL_LABEL = {"n-vgae": "N-VGAE", "s-vgae": "S-VGAE"}
MAIN_LATENT = 16
TUNING_KEYS = (
    "epochs",
    "lr",
    "kl_weight",
    "kappa_floor",
    "decoder_scale",
    "fixed_scale",
    "dropout",
    "normalize_features",
    "hidden_dim",
    "latent_dim",
)
S_ONLY_KEYS = ("kappa_floor", "decoder_scale", "fixed_scale")  # recorded for N-VGAE runs too, unused there


def target(dataset: str, model: str) -> tuple[float, float] | None:
    """The acceptance bar: S-VGAE >= paper S-VGAE - 1; N-VGAE >= Kipf & Welling's VGAE - 1 (AUC, AP in %)."""
    ref = PAPER.get((dataset, model)) if model == "s-vgae" else KIPF.get(dataset)
    return None if ref is None else (ref[0] - 1.0, ref[1] - 1.0)


def load_runs(root: Path) -> list[dict]:
    return load_records(root, lambda rec: isinstance(rec, dict) and "config" in rec and "test_auc" in rec)


def load_timings(root: Path) -> list[dict]:
    """The ``timing_*.json`` files of :mod:`experiments.epoch_timing`."""
    return load_records(root, lambda rec: isinstance(rec, dict), pattern="timing_*.json")


def timing_models(t: dict) -> tuple[str, ...]:
    """The models of a timing file (files written before ``--models`` lack the field: N-VGAE and vMF S-VGAE)."""
    return tuple(t.get("models", ("n-vgae", "s-vgae")))


def is_n_s_timing(t: dict) -> bool:
    """Whether a timing file is the N-VGAE against the vMF S-VGAE alone at size 16 (the epoch-time section)."""
    sizes = (t.get("latent_dim", MAIN_LATENT), t.get("n_latent_dim", t.get("latent_dim", MAIN_LATENT)))
    return timing_models(t) == ("n-vgae", "s-vgae") and sizes == (MAIN_LATENT, MAIN_LATENT)


def fmt(values: list[float]) -> str:
    """Scores in [0, 1] as percent, ``"m ± s"`` with one decimal."""
    return format_mean_std(values, digits=1, scale=100.0)


def _order(ds: str) -> int:
    return DATASET_ORDER.index(ds) if ds in DATASET_ORDER else len(DATASET_ORDER)


def spheres(r) -> int:
    """The number of sphere factors of an S-VGAE run (1: one sphere; run files before products lack it)."""
    return r.get("spheres", 1)


def dof(r) -> int:
    """Latent degrees of freedom per node: d for the N-VGAE on R^d, D - k for the S-VGAE on k spheres in R^D."""
    return ambient_dim(r) - spheres(r) if r["config"]["model"] == "s-vgae" else ambient_dim(r)


def group(runs, *, tagged: bool, family: str = "vmf"):
    """Runs of one sphere (or Gaussian) by (dataset, model, size of z) (plus the tag for tagged runs): the
    N-VGAE and the vMF S-VGAE (``family="vmf"``, the default), or the S-VGAE of another posterior family
    (``family="power-spherical"``)."""
    groups = defaultdict(list)
    for r in runs:
        c = r["config"]
        if bool(c.get("tag")) != tagged or spheres(r) != 1:
            continue
        if not (default_family(r) if family == "vmf" else posterior(r) == family):
            continue
        key = (c["dataset"], c["model"], ambient_dim(r)) + ((c["tag"],) if tagged else ())
        groups[key].append(r)
    return groups


def signature(r) -> tuple:
    """The run's training configuration apart from the seed and the latent dimension."""
    c = r["config"]
    return tuple((k, c.get(k)) for k in TUNING_KEYS if k != "latent_dim")


def drop_off_config(groups) -> tuple[dict, list[dict]]:
    """Keeps, per model, the untagged runs with the configuration of that model's latent-16 runs (the most
    common one among them); the others (left over from an older default, say) are returned apart so that
    the main table and the latent-dimension study never mix configurations."""
    main_sig = {}
    for (_ds, model, d), rs in groups.items():
        if d == MAIN_LATENT:
            main_sig.setdefault(model, []).extend(signature(r) for r in rs)
    main_sig = {m: max(set(sigs), key=sigs.count) for m, sigs in main_sig.items()}
    kept, off = {}, []
    for key, rs in groups.items():
        sig = main_sig.get(key[1])
        good = [r for r in rs if sig is None or signature(r) == sig]
        off += [r for r in rs if sig is not None and signature(r) != sig]
        if good:
            kept[key] = good
    return kept, off


def libraries(runs) -> list[str]:
    return sorted({str(r["versions"].get("hvae_ext_library")) for r in runs if r["versions"].get("hvae_ext_library")})


def has_nan(r) -> bool:
    vals = [r["test_auc"], r["test_ap"]] + r["history"]["loss"] + r["history"]["val_auc"]
    # history_nan_count: NaN values of the full history of a run file pruned by scripts/clean_results.py
    return r.get("history_nan_count", 0) > 0 or any(not math.isfinite(v) for v in vals)


def main_table(groups) -> tuple[list[str], list[tuple]]:
    lines = [
        "| Dataset | Model | seeds | test AUC (%) | test AP (%) | paper (Davidson et al.) AUC / AP | "
        "Kipf & Welling VGAE AUC / AP | bar (AUC / AP) | met | NaN runs |",
        "|---|---|---:|---:|---:|---:|---:|---:|:---:|---:|",
    ]
    summary = []
    keys = sorted((k for k in groups if k[2] == MAIN_LATENT), key=lambda k: (_order(k[0]), k[1]))
    for ds, model, _ in keys:
        rs = groups[(ds, model, MAIN_LATENT)]
        auc = [r["test_auc"] for r in rs]
        ap = [r["test_ap"] for r in rs]
        paper = PAPER.get((ds, model))
        kipf = KIPF.get(ds)
        bar = target(ds, model)
        m_auc, m_ap = 100 * statistics.fmean(auc), 100 * statistics.fmean(ap)
        met = "—" if bar is None else ("yes" if m_auc >= bar[0] and m_ap >= bar[1] else "no")
        nans = sum(has_nan(r) for r in rs)
        lines.append(
            f"| {ds} | {MODEL_LABEL.get(model, model)} | {len(rs)} | {fmt(auc)} | {fmt(ap)} | "
            f"{'—' if paper is None else f'{paper[0]:.1f} / {paper[1]:.1f}'} | "
            f"{'—' if kipf is None else f'{kipf[0]:.1f} / {kipf[1]:.1f}'} | "
            f"{'—' if bar is None else f'≥ {bar[0]:.1f} / ≥ {bar[1]:.1f}'} | {met} | {nans} |"
        )
        summary.append((ds, model, m_auc, m_ap, met))
    return lines, summary


def _pairwise(n: list[float], s: list[float]) -> str:
    if not n or len(n) != len(s):
        return "—"
    return f"{statistics.median(b / a for a, b in zip(n, s)):.2f}"


def timing_table(groups, timings) -> list[str]:
    lines = []
    rows = []
    for ds in sorted({k[0] for k in groups}, key=_order):
        n = groups.get((ds, "n-vgae", MAIN_LATENT), [])
        s = groups.get((ds, "s-vgae", MAIN_LATENT), [])
        if not n or not s:
            continue
        tn = statistics.median(r["median_train_time_s"] for r in n)
        ts = statistics.median(r["median_train_time_s"] for r in s)
        together = all(set(r["config"].get("models_in_process") or ()) >= {"n-vgae", "s-vgae"} for r in n + s)
        where = (
            ""
            if together
            else "; N and S ran in separate processes at different times, so the machine's load differs: "
            "not a comparison"
        )
        rows.append(
            f"| {ds} | runs (median over seeds of each run's median training step{where}) | {1e3 * tn:.1f} | "
            f"{1e3 * ts:.1f} | {ts / tn:.2f} | — |"
        )
    for t in sorted(filter(is_n_s_timing, timings), key=lambda t: (_order(t["dataset"]), t["_path"])):
        lib = t.get("versions", {}).get("hvae_ext_library")
        lib = f", library `{lib}`" if lib else ""
        where = f", `{t['_path']}`"
        rows.append(
            f"| {t['dataset']} | interleaved N/S training steps in one process ({t['steps']} each, "
            f"{t['device']}, {t['threads']} thread(s){lib}{where}) | {1e3 * t['median_n_s']:.1f} | "
            f"{1e3 * t['median_s_s']:.1f} | {t['ratio_median']:.2f} | "
            f"{_pairwise(t['times_n_s'], t['times_s_s'])} |"
        )
        if "median_epoch_n_s" in t:
            rows.append(
                f"| {t['dataset']} | same process, training step + validation pass | "
                f"{1e3 * t['median_epoch_n_s']:.1f} | {1e3 * t['median_epoch_s_s']:.1f} | "
                f"{t['epoch_ratio_median']:.2f} | "
                f"{_pairwise(t['epoch_times_n_s'], t['epoch_times_s_s'])} |"
            )
    if rows:
        lines = [
            "| Dataset | measurement | N-VGAE epoch (ms) | S-VGAE epoch (ms) | S / N (ratio of medians) "
            "| S / N (median of pairwise ratios) |",
            "|---|---|---:|---:|---:|---:|",
        ] + rows
    return lines


def _both_models_dims(groups) -> list[int]:
    """The sizes of z at which both models have runs (the single-sphere runs of the product study, S^d in
    R^(d+1) at d = 32 and 64, have no N-VGAE beside them at equal size)."""
    return sorted(d for d in {k[2] for k in groups} if {k[1] for k in groups if k[2] == d} >= set(MODEL_ORDER))


def latent_table(groups) -> list[str]:
    dims = _both_models_dims(groups)
    cols = [
        (ds, m)
        for ds in sorted({k[0] for k in groups}, key=_order)
        for m in MODEL_ORDER
        if any((ds, m, d) in groups for d in dims)
    ]
    if len(dims) < 2 or not cols:
        return []
    head = "| latent dim | " + " | ".join(f"{ds} {MODEL_LABEL[m]} AUC" for ds, m in cols) + " |"
    lines = [head, "|---:|" + "---:|" * len(cols)]
    for d in dims:
        cells = []
        for ds, m in cols:
            rs = groups.get((ds, m, d), [])
            cells.append(f"{fmt([r['test_auc'] for r in rs])} ({len(rs)})" if rs else "—")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return lines


PAPER_DIMS = (2, 3, 4, 8, 16, 32, 64)  # the latent-dimension study under the paper's convention
PAPER_SEEDS = range(5)


def _dof_groups(groups) -> dict:
    """Runs keyed by (dataset, model, degrees of freedom d): the N-VGAE's z in R^d, the S-VGAE's on S^d in
    R^(d+1) (run files record the size of z as ``latent_dim``); seeds 0-4 only, so every cell has the same
    seeds."""
    out = defaultdict(list)
    for (ds, m, ambient), rs in groups.items():
        dof = ambient - 1 if m == "s-vgae" else ambient
        if dof in PAPER_DIMS:
            out[(ds, m, dof)] += [r for r in rs if r["config"]["seed"] in PAPER_SEEDS]
    return out


def paper_latent_table(groups) -> list[str]:
    """Test AUC per dataset at equal degrees of freedom: N-VGAE on R^d beside S-VGAE on S^d in R^(d+1),
    with S − N (mean over seeds, and the number of seeds where S is better, same seed = same split)."""
    dof = _dof_groups(groups)
    datasets = sorted({k[0] for k in dof}, key=_order)
    if not datasets:
        return []
    head = "| d | " + " | ".join(f"{ds} N-VGAE (R^d) | {ds} S-VGAE (S^d) | {ds} S − N (S better)" for ds in datasets)
    lines = [head + " |", "|---:|" + "---:|---:|---:|" * len(datasets)]
    for d in PAPER_DIMS:
        cells = []
        for ds in datasets:
            n, sv = dof.get((ds, "n-vgae", d), []), dof.get((ds, "s-vgae", d), [])
            cells += [
                f"{fmt([r['test_auc'] for r in n])} ({len(n)})" if n else "—",
                f"{fmt([r['test_auc'] for r in sv])} ({len(sv)})" if sv else "—",
            ]
            by_seed = {r["config"]["seed"]: r["test_auc"] for r in n}
            diffs = [r["test_auc"] - by_seed[r["config"]["seed"]] for r in sv if r["config"]["seed"] in by_seed]
            if diffs:
                mu, sd = mean_std([100 * x for x in diffs])
                cells.append(f"{mu:+.1f} ± {sd:.1f} ({sum(x > 0 for x in diffs)}/{len(diffs)})".replace("-", "−"))
            else:
                cells.append("—")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return lines


def plot_paper_latent(groups, out: Path) -> Path | None:
    """Test AUC against the degrees of freedom d (N on R^d, S on S^d), one panel per dataset."""
    dof = _dof_groups(groups)
    datasets = sorted({k[0] for k in dof}, key=_order)
    if not datasets:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.8), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for m, color, label in (("n-vgae", "tab:blue", "N-VGAE, z in R^d"), ("s-vgae", "tab:red", "S-VGAE, z on S^d")):
            errorbar_means(ax, [(d, _auc_percent(dof.get((ds, m, d), []))) for d in PAPER_DIMS], color, label)
        log2_axis(ax, PAPER_DIMS)
        ax.set(xlabel="latent degrees of freedom d", ylabel="test AUC (%)", title=f"{ds}: equal degrees of freedom")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.tight_layout()
    return save_figure(fig, out / "latent_dim_paper.png", 110)


def tuning_table(tagged_groups, untagged_groups) -> list[str]:
    rows = []
    all_groups = dict(tagged_groups)
    for (ds, m, d), rs in untagged_groups.items():
        if d == MAIN_LATENT:
            all_groups[(ds, m, d, "(final default)")] = rs
    keys = sorted(all_groups, key=lambda k: (_order(k[0]), k[1], k[3]))
    for key in keys:
        rs = all_groups[key]
        c = rs[0]["config"]
        setting = ", ".join(f"{k}={c.get(k)}" for k in TUNING_KEYS if k in c)
        nan = sum(has_nan(r) for r in rs)
        rows.append(
            f"| {key[0]} | {MODEL_LABEL.get(key[1], key[1])} | {key[3]} | {setting} | {len(rs)} | "
            f"{fmt([r['best_val_auc'] for r in rs])} | {fmt([r['best_val_ap'] for r in rs])} | "
            f"{statistics.median(r['best_epoch'] for r in rs):.0f} | {nan} |"
        )
    if not tagged_groups:
        return []
    return [
        "| Dataset | Model | tag | configuration | seeds | best val AUC (%) | val AP (%) | best epoch (median) "
        "| NaN runs |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ] + rows


def _auc_percent(runs) -> list[float]:
    return [100 * r["test_auc"] for r in runs]


def plot_curves(groups, out: Path) -> list[Path]:
    import numpy as np

    plt = pyplot()

    paths = []
    for ds in sorted({k[0] for k in groups}, key=_order):
        models = [m for m in MODEL_ORDER if (ds, m, MAIN_LATENT) in groups]
        if not models:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for m, color in zip(models, ("tab:blue", "tab:red")):
            rs = groups[(ds, m, MAIN_LATENT)]
            n = min(len(r["history"]["epoch"]) for r in rs)
            ep = np.asarray(rs[0]["history"]["epoch"][:n])
            for ax, key, scale in ((axes[0], "val_auc", 100.0), (axes[1], "loss", 1.0)):
                arr = scale * np.asarray([r["history"][key][:n] for r in rs], dtype=float)
                mu, sd = arr.mean(0), arr.std(0)
                ax.plot(ep, mu, color=color, label=f"{MODEL_LABEL[m]} (mean of {len(rs)} seeds)")
                ax.fill_between(ep, mu - sd, mu + sd, color=color, alpha=0.2, linewidth=0)
        axes[0].set(xlabel="epoch", ylabel="validation AUC (%)", title=f"{ds}: validation AUC")
        axes[0].set_ylim(bottom=max(50.0, axes[0].get_ylim()[0]))
        axes[1].set(xlabel="epoch", ylabel="training loss (recon + KL / N)", title=f"{ds}: training loss")
        axes[0].legend(loc="lower right")
        axes[1].legend(loc="upper right")
        fig.tight_layout()
        paths.append(save_figure(fig, out / f"curves_{ds}.png", 110))
    return paths


def plot_latent(groups, out: Path) -> Path | None:
    dims = _both_models_dims(groups)
    if len(dims) < 2:
        return None
    datasets = [
        ds
        for ds in sorted({k[0] for k in groups}, key=_order)
        if sum((ds, m, d) in groups for m in MODEL_ORDER for d in dims) > 2
    ]
    if not datasets:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.8), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for m, color in zip(MODEL_ORDER, ("tab:blue", "tab:red")):
            errorbar_means(ax, [(d, _auc_percent(groups.get((ds, m, d), []))) for d in dims], color, MODEL_LABEL[m])
        log2_axis(ax, dims)
        ax.set(xlabel="ambient dimension d (size of z)", ylabel="test AUC (%)", title=f"{ds}: equal ambient dimension")
        ax.legend(loc="lower right")
    fig.tight_layout()
    return save_figure(fig, out / "latent_dim.png", 110)


PRODUCT_DOF = (16, 32, 64)  # the product-of-spheres study (run_products.sh)
PRODUCT_SWEEP_DOF = 16  # the validation sweep over the factor size m runs at this d ...
PRODUCT_SWEEP_SEEDS = (0, 1, 2)  # ... on these seeds; the chosen m is used at every d
PRODUCT_SEEDS = range(5)


def product_runs(runs) -> dict:
    """Untagged S-VGAE runs on k > 1 spheres by (dataset, degrees of freedom d, k)."""
    out = defaultdict(list)
    for r in runs:
        c = r["config"]
        if c["model"] == "s-vgae" and spheres(r) > 1 and not c.get("tag") and default_family(r):
            out[(c["dataset"], dof(r), spheres(r))].append(r)
    return out


def chosen_factor_size(runs) -> dict:
    """The factor size m chosen on validation for each dataset: among the product runs at d =
    ``PRODUCT_SWEEP_DOF`` on the sweep seeds, the m whose runs have the highest mean best-validation AUC (ties:
    the larger m, fewer spheres). Only layouts with every sweep seed take part; the test scores play no part."""
    best: dict = {}
    for (ds, d, k), rs in product_runs(runs).items():
        vals = [r["best_val_auc"] for r in rs if r["config"]["seed"] in PRODUCT_SWEEP_SEEDS]
        if d != PRODUCT_SWEEP_DOF or len(vals) < len(PRODUCT_SWEEP_SEEDS):
            continue
        score = (statistics.fmean(vals), d // k)
        if ds not in best or score > best[ds][0]:
            best[ds] = (score, d // k)
    return {ds: m for ds, (_, m) in best.items()}


def _cell(rs) -> str:
    return f"{fmt([r['test_auc'] for r in rs])} ({len(rs)})" if rs else "—"


def _paired(a, b) -> str:
    """a − b in test AUC points per seed (same seed = same split): mean ± std (seeds where a is better)."""
    by_seed = {r["config"]["seed"]: r["test_auc"] for r in b}
    diffs = [100 * (r["test_auc"] - by_seed[r["config"]["seed"]]) for r in a if r["config"]["seed"] in by_seed]
    if not diffs:
        return "—"
    mu, sd = mean_std(diffs)
    return f"{mu:+.1f} ± {sd:.1f} ({sum(x > 0 for x in diffs)}/{len(diffs)})".replace("-", "−")


def product_tables(runs, groups) -> list[str]:
    """N-VGAE (R^d) against the single-sphere S-VGAE (S^d) and the product S-VGAE (k spheres S^m, k m = d, the
    layout chosen on validation) at equal degrees of freedom, and the validation sweep behind the choice."""
    prods = product_runs(runs)
    if not prods:
        return []
    chosen_m = chosen_factor_size(runs)
    datasets = sorted({k[0] for k in prods}, key=_order)
    seeds = set(PRODUCT_SEEDS)
    lines = [
        "| Dataset | d | N-VGAE (R^d) | S-VGAE (S^d) | product S-VGAE | layout (k × S^m) | product − N "
        "(better) | product − S (better) |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for ds in datasets:
        for d in PRODUCT_DOF:
            n = [r for r in groups.get((ds, "n-vgae", d), []) if r["config"]["seed"] in seeds]
            sv = [r for r in groups.get((ds, "s-vgae", d + 1), []) if r["config"]["seed"] in seeds]
            k = d // chosen_m[ds] if ds in chosen_m else None
            pr = [r for r in prods.get((ds, d, k), []) if r["config"]["seed"] in seeds] if k else []
            layout = f"{k} × S^{d // k}" if k else "—"
            lines.append(
                f"| {ds} | {d} | {_cell(n)} | {_cell(sv)} | {_cell(pr)} | {layout} | {_paired(pr, n)} | "
                f"{_paired(pr, sv)} |"
            )
    sweep = [
        "| Dataset | d | layout (k × S^m) | seeds | best val AUC (%) | val AP (%) | test AUC (%) | chosen |",
        "|---|---:|---|---:|---:|---:|---:|:---:|",
    ]
    for ds, d, k in sorted(prods, key=lambda key: (_order(key[0]), key[1], -key[2])):
        rs = [r for r in prods[(ds, d, k)] if r["config"]["seed"] in PRODUCT_SWEEP_SEEDS]
        if d != PRODUCT_SWEEP_DOF or not rs:
            continue
        sweep.append(
            f"| {ds} | {d} | {k} × S^{d // k} | {len(rs)} | {fmt([r['best_val_auc'] for r in rs])} | "
            f"{fmt([r['best_val_ap'] for r in rs])} | {fmt([r['test_auc'] for r in rs])} | "
            f"{'✓' if chosen_m.get(ds) == d // k else ''} |"
        )
    note = (
        f"Validation sweep over the factor size m at d = {PRODUCT_SWEEP_DOF} (seeds "
        + ", ".join(map(str, PRODUCT_SWEEP_SEEDS))
        + "): per dataset the m with the highest mean best validation "
        "AUC is chosen and used at every d; the test AUC is shown for reference only."
    )
    return lines + ["", note, ""] + sweep


POSTERIOR_LABEL = {"vmf": "vMF", "power-spherical": "PS"}  # in table headers


PS_TIMING_MODELS = ("n-vgae", "s-vgae", "s-vgae-ps")  # the models of the Power Spherical section's timing files


def posterior_timing(timings, dataset: str, size: int, n_size: int) -> dict | None:
    """The interleaved timing file of the N-VGAE (size of z ``n_size``) and both S-VGAE (``size``) on
    ``dataset`` (the last by path where there are several), or None."""
    found = [
        t
        for t in timings
        if t["dataset"] == dataset
        and set(timing_models(t)) >= set(PS_TIMING_MODELS)
        and t.get("latent_dim") == size
        and t.get("n_latent_dim", t.get("latent_dim")) == n_size
    ]
    return max(found, key=lambda t: t["_path"]) if found else None


def _timing_cells(t: dict | None) -> list[str]:
    """Step and epoch medians (ms) N / vMF / PS, PS ÷ vMF (ratio of medians, median of per-round ratios), file."""
    if t is None:
        return ["—"] * 5
    ms = " / ".join(f"{1e3 * t[f'median_{k}_s']:.1f}" for k in ("n", "s", "ps"))
    epoch = " / ".join(f"{1e3 * t[f'median_epoch_{k}_s']:.1f}" for k in ("n", "s", "ps"))
    ratio = f"{t['ratio_ps_s_median']:.2f} / {t['epoch_ratio_ps_s_median']:.2f}"
    pairwise = f"{t['pairwise_ratio_ps_s']:.2f} / {t['epoch_pairwise_ratio_ps_s']:.2f}"
    return [ms, epoch, ratio, pairwise, f"`{t['_path']}`"]


def posterior_table(runs, groups, family: str = "power-spherical", timings=()) -> list[str]:
    """N-VGAE, the vMF S-VGAE and the S-VGAE with the posterior ``family`` at every size of z where runs of
    that family exist, on the seeds of those runs (same seed = same edge split): test AUC / AP, the family's
    AUC minus the vMF one per seed, and the three models' median time per training step and per epoch from
    the interleaved timing file of that dataset and size (``timings``; "—" where there is none). At the main
    table's size (16) the models are compared as there, at equal size of z (N on R^16, S on S^15); at another
    size D, as in the latent-dimension study, at equal degrees of freedom d = D − 1 (N on R^d, S on S^d ⊂
    R^(d+1))."""
    other, _ = drop_off_config(group(runs, tagged=False, family=family))
    if not other:
        return []
    label = POSTERIOR_LABEL.get(family, family)
    lines = [
        f"| Dataset | latent | N-VGAE AUC | N-VGAE AP | vMF S-VGAE AUC | vMF S-VGAE AP | {label} S-VGAE AUC | "
        f"{label} S-VGAE AP | {label} − vMF AUC ({label} better) | step (ms): N / vMF / {label} | "
        f"epoch (ms): N / vMF / {label} | {label} ÷ vMF, ratio of medians: step / epoch | {label} ÷ vMF, median "
        "of per-round ratios: step / epoch | timing file |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    keys = sorted(other, key=lambda k: (_order(k[0]), k[2] != MAIN_LATENT, k[2]))
    for ds, _, size in keys:
        ps = sorted(other[(ds, "s-vgae", size)], key=lambda r: r["config"]["seed"])
        seeds = {r["config"]["seed"] for r in ps}
        n_size = size if size == MAIN_LATENT else size - 1
        latent = (
            f"z of size {size} (R^{size} / S^{size - 1})"
            if size == MAIN_LATENT
            else f"d = {size - 1} (R^{size - 1} / S^{size - 1})"
        )
        n = [r for r in groups.get((ds, "n-vgae", n_size), []) if r["config"]["seed"] in seeds]
        vmf = [r for r in groups.get((ds, "s-vgae", size), []) if r["config"]["seed"] in seeds]
        cells = []
        for rs in (n, vmf, ps):
            cells += [_cell(rs), f"{fmt([r['test_ap'] for r in rs])} ({len(rs)})" if rs else "—"]
        cells.append(_paired(ps, vmf))
        cells += _timing_cells(posterior_timing(timings, ds, size, n_size))
        lines.append(f"| {ds} | {latent} | " + " | ".join(cells) + " |")
    return lines


def write_report(root: Path) -> Path:
    runs = load_runs(root)
    if not runs:
        raise SystemExit(f"error: no run JSON files under {root}")
    timings = load_timings(root)
    groups, off_config = drop_off_config(group(runs, tagged=False))
    tagged = group(runs, tagged=True)
    curves = plot_curves(groups, root)
    latent_png = plot_latent(groups, root)
    table, _ = main_table(groups)
    any_run = runs[0]
    v, dev = any_run["versions"], any_run["device"]
    md = [
        "# Link prediction: N-VGAE vs S-VGAE",
        "",
        f"Generated by `python -m experiments.report {Path(root).as_posix()}` from {len(runs)} run files "
        f"(torch {v['torch']}, torch_geometric {v['torch_geometric']}, hvae_ext {v['hvae_ext']}, "
        f"device {dev['device']}).",
        "",
    ]
    main_runs = [r for k, rs in groups.items() if k[2] == MAIN_LATENT for r in rs]
    if main_runs:
        md += ["Configuration of the main table and the latent-dimension study (read from the run files):", ""]
        for m in MODEL_ORDER:
            rs = [r for k, g in groups.items() if k[1] == m and k[2] == MAIN_LATENT for r in g]
            if rs:
                md.append(
                    f"* {MODEL_LABEL[m]}: "
                    + ", ".join(f"{k}={v}" for k, v in signature(rs[0]) if m == "s-vgae" or k not in S_ONLY_KEYS)
                )
        md += [
            "",
            "Compiled hvae_ext library of the main-table runs: "
            + (", ".join(f"`{x}`" for x in libraries(main_runs)) or "not recorded")
            + ".",
            "",
        ]
    if off_config:
        md += [
            f"{len(off_config)} untagged run file(s) with another configuration were left out of the tables: "
            + ", ".join(sorted(r["_path"] for r in off_config)[:10])
            + ("…" if len(off_config) > 10 else "")
            + ".",
            "",
        ]
    md += [
        "Test AUC / AP (%) at the epoch of best validation AUC, mean ± std over seeds (a different 85/5/10 edge "
        'split per seed), latent dimension 16. "bar" is the acceptance level: the paper\'s S-VGAE '
        "numbers − 1.0 for S-VGAE, Kipf & Welling's VGAE numbers − 1.0 for N-VGAE.",
        "",
    ]
    md += table
    tt = timing_table(groups, timings)
    if tt:
        md += [
            "",
            "## Epoch time",
            "",
            "Wall time (median) of one training step (encode, sample, loss, backward, "
            "Adam step; validation excluded unless said). The interleaved measurement alternates N and S steps "
            "in one process (N, S, S, N, ...), so both see the same machine load; the median of the ratios of adjacent "
            "N/S steps is the estimate that cancels load swings of a shared machine, the ratio of the two "
            "medians is shown beside it. The bar is S / N ≤ 1.25.",
            "",
        ] + tt
    if curves:
        md += ["", "## Training curves", ""] + [f"![{p.stem}]({p.name})" for p in curves]
    pt = paper_latent_table(groups)
    if pt:
        md += [
            "",
            "## Latent dimension at equal degrees of freedom (the paper's convention)",
            "",
            "N-VGAE with z in R^d beside S-VGAE with z on S^d ⊂ R^(d+1): the same number of latent degrees of "
            "freedom per node. Test AUC (%) mean ± std (number of seeds; seeds 0-4, the same edge split for "
            "the same seed); S − N per seed, mean ± std, with the number of seeds where S is better.",
            "",
        ] + pt
        paper_png = plot_paper_latent(groups, root)
        if paper_png:
            md += ["", f"![latent dimension, equal degrees of freedom]({paper_png.name})"]
    prt = product_tables(runs, groups)
    if prt:
        md += [
            "",
            "## Product of spheres at equal degrees of freedom",
            "",
            "d latent degrees of freedom per node: N-VGAE with z in R^d, the single-sphere S-VGAE with z on "
            "S^d ⊂ R^(d+1), and the product S-VGAE with z on k independent vMF factors S^m (k m = d, z in "
            "R^(d+k); Davidson et al., 2019: each factor its own mean direction and concentration, a uniform "
            "prior on each; `--spheres k`), each with its default protocol. Test AUC (%) mean ± std (number "
            "of seeds; seeds 0-4, the same edge split for the same seed); differences per seed, mean ± std, "
            "with the number of seeds where the product is better. The product's layout (k × S^m) was chosen "
            "per dataset and d on the validation split (sweep below); `run_products.sh` reproduces the "
            "section.",
            "",
        ] + prt
    pst = posterior_table(runs, groups, timings=timings)
    if pst:
        md += [
            "",
            "## Power Spherical posterior",
            "",
            "The S-VGAE with the Power Spherical posterior (De Cao and Aziz, 2020; `--posterior "
            "power-spherical`, `run_power_spherical.sh`; PS in the table) beside the N-VGAE and the S-VGAE with the von "
            "Mises-Fisher posterior, each with its default protocol (the same encoder, decoder, prior and "
            "training for both S-VGAE). Latent: at 16 the main table's equal size of z (N-VGAE on R^16, "
            "S-VGAE on S^15); d = 2, 4, 8 the latent-dimension study's equal degrees of freedom (N-VGAE on "
            "R^d, S-VGAE on S^d ⊂ R^(d+1)). Test AUC / AP (%) mean ± std (number of seeds), on the seeds of "
            "the Power Spherical runs only (the same edge split for the same seed); PS − vMF "
            "test AUC per seed, mean ± std, with the number of seeds where Power Spherical is better. Time: "
            "the median wall time of a training step and of a whole epoch (training step and validation "
            "pass) of the three models, measured in one process with their steps interleaved (`python -m "
            "experiments.epoch_timing`, `run_ps_timing.sh`: one step of each model per round, the order "
            "rotated every round, so that the three see the same machine load; one thread; the timing file "
            "in the last column, under this folder); PS ÷ vMF as the ratio of the two medians and as the "
            "median of the ratios of the PS and vMF steps of the same round. The run files' own times are "
            "not used: the three models' runs were made at different times on a shared machine.",
            "",
        ] + pst
    lt = latent_table(groups)
    if lt:
        md += [
            "",
            "## Latent dimension at equal ambient dimension",
            "",
            "Both models with z in R^d (the S-VGAE on S^(d−1), one degree of freedom fewer). Test AUC (%) mean "
            "± std (number of seeds).",
            "",
        ] + lt
        if latent_png:
            md += ["", f"![latent dimension]({latent_png.name})"]
    tu = tuning_table(tagged, groups)
    if tu:
        md += [
            "",
            "## Tuning (validation split only)",
            "",
            "Configurations tried (seed k gives the same split in every configuration; the seeds column "
            "counts them), with the best "
            'validation AUC/AP of each run; the test split played no part in the choice. "(final default)" '
            "rows are the main-table runs (10 seeds).",
            "",
        ] + tu
    return write_markdown(root, md)


def write_any_report(root: Path) -> Path:
    """The MNIST report when ``root`` holds MNIST N-VAE / S-VAE runs, else the link-prediction one."""
    from . import report_mnist

    return report_mnist.write_report(root) if report_mnist.has_mnist_runs(root) else write_report(root)


def main(argv: list[str] | None = None) -> None:
    report_main(
        argv,
        "python -m experiments.report",
        "Tables and plots from link-prediction (or MNIST) run JSON files.",
        write_any_report,
    )


if __name__ == "__main__":
    main()
