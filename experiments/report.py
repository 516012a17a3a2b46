"""Report of the link-prediction runs: ``python -m experiments.report DIR``.

Reads every run JSON under DIR (recursively) and every ``timing_*.json`` of
:mod:`experiments.epoch_timing`, and writes into DIR:

* ``report.md``: test AUC / AP (mean +- std over seeds) per dataset and model at latent dim 16 beside the
  published numbers, epoch times of S against N, the latent-dimension study, and the tuning runs
  (validation scores only: configurations were chosen on the validation split);
* ``curves_<Dataset>.png``: validation AUC and training loss per epoch, N against S, mean and +-1 std band;
* ``latent_dim.png``: test AUC against latent dimension for N and S.

A hand-written ``DIR/notes.md``, when present, is appended to the report.

Runs with a ``--tag`` are tuning runs and are kept out of the main table and the latent study.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path

from .reporting import (errorbar_means, format_mean_std, load_records, log2_axis, mean_std, pyplot, report_main,
                        save_figure, write_markdown)

# Test AUC / AP in % (mean over runs).
PAPER = {  # Davidson et al. (2018), Table 3
    ("Cora", "n-vgae"): (92.7, 93.2), ("CiteSeer", "n-vgae"): (90.3, 91.5), ("PubMed", "n-vgae"): (97.1, 97.1),
    ("Cora", "s-vgae"): (94.1, 94.1), ("CiteSeer", "s-vgae"): (94.7, 95.2), ("PubMed", "s-vgae"): (96.0, 96.0),
}
KIPF = {"Cora": (91.4, 92.6), "CiteSeer": (90.8, 92.0), "PubMed": (94.4, 94.7)}  # Kipf & Welling (2016)
DATASET_ORDER = ("Cora", "CiteSeer", "PubMed")
MODEL_ORDER = ("n-vgae", "s-vgae")
MODEL_LABEL = {"n-vgae": "N-VGAE", "s-vgae": "S-VGAE"}
MAIN_LATENT = 16
TUNING_KEYS = ("epochs", "lr", "kl_weight", "kappa_floor", "decoder_scale", "fixed_scale", "dropout",
               "normalize_features", "hidden_dim", "latent_dim")
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


def fmt(values: list[float]) -> str:
    """Scores in [0, 1] as percent, ``"m ± s"`` with one decimal."""
    return format_mean_std(values, digits=1, scale=100.0)


def _order(ds: str) -> int:
    return DATASET_ORDER.index(ds) if ds in DATASET_ORDER else len(DATASET_ORDER)


def group(runs, *, tagged: bool):
    groups = defaultdict(list)
    for r in runs:
        c = r["config"]
        if bool(c.get("tag")) != tagged:
            continue
        key = (c["dataset"], c["model"], c["latent_dim"]) + ((c["tag"],) if tagged else ())
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
    for (ds, model, d), rs in groups.items():
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
    return sorted({str(r["versions"].get("hvae_ext_library")) for r in runs
                   if r["versions"].get("hvae_ext_library")})


def has_nan(r) -> bool:
    vals = [r["test_auc"], r["test_ap"]] + r["history"]["loss"] + r["history"]["val_auc"]
    # history_nan_count: NaN values of the full history of a run file pruned by scripts/clean_results.py
    return r.get("history_nan_count", 0) > 0 or any(not math.isfinite(v) for v in vals)


def main_table(groups) -> tuple[list[str], list[tuple]]:
    lines = ["| Dataset | Model | seeds | test AUC (%) | test AP (%) | paper (Davidson et al.) AUC / AP | "
             "Kipf & Welling VGAE AUC / AP | bar (AUC / AP) | met | NaN runs |",
             "|---|---|---:|---:|---:|---:|---:|---:|:---:|---:|"]
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
        lines.append(f"| {ds} | {MODEL_LABEL.get(model, model)} | {len(rs)} | {fmt(auc)} | {fmt(ap)} | "
                     f"{'—' if paper is None else f'{paper[0]:.1f} / {paper[1]:.1f}'} | "
                     f"{'—' if kipf is None else f'{kipf[0]:.1f} / {kipf[1]:.1f}'} | "
                     f"{'—' if bar is None else f'≥ {bar[0]:.1f} / ≥ {bar[1]:.1f}'} | {met} | {nans} |")
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
        where = ("" if together else
                 "; N and S ran in separate processes at different times, so the machine's load differs: "
                 "not a comparison")
        rows.append(f"| {ds} | runs (median over seeds of each run's median training step{where}) | {1e3 * tn:.1f} | "
                    f"{1e3 * ts:.1f} | {ts / tn:.2f} | — |")
    for t in sorted(timings, key=lambda t: (_order(t["dataset"]), t["_path"])):
        lib = t.get("versions", {}).get("hvae_ext_library")
        lib = f", library `{lib}`" if lib else ""
        where = f", `{t['_path']}`"
        rows.append(f"| {t['dataset']} | interleaved N/S training steps in one process ({t['steps']} each, "
                    f"{t['device']}, {t['threads']} thread(s){lib}{where}) | {1e3 * t['median_n_s']:.1f} | "
                    f"{1e3 * t['median_s_s']:.1f} | {t['ratio_median']:.2f} | "
                    f"{_pairwise(t['times_n_s'], t['times_s_s'])} |")
        if "median_epoch_n_s" in t:
            rows.append(f"| {t['dataset']} | same process, training step + validation pass | "
                        f"{1e3 * t['median_epoch_n_s']:.1f} | {1e3 * t['median_epoch_s_s']:.1f} | "
                        f"{t['epoch_ratio_median']:.2f} | "
                        f"{_pairwise(t['epoch_times_n_s'], t['epoch_times_s_s'])} |")
    if rows:
        lines = ["| Dataset | measurement | N-VGAE epoch (ms) | S-VGAE epoch (ms) | S / N (ratio of medians) "
                 "| S / N (median of pairwise ratios) |", "|---|---|---:|---:|---:|---:|"] + rows
    return lines


def latent_table(groups) -> list[str]:
    dims = sorted({k[2] for k in groups})
    cols = [(ds, m) for ds in sorted({k[0] for k in groups}, key=_order) for m in MODEL_ORDER
            if any((ds, m, d) in groups for d in dims)]
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


PAPER_DIMS = (2, 3, 4, 8, 16)  # the latent-dimension study under the paper's convention
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
            cells += [f"{fmt([r['test_auc'] for r in n])} ({len(n)})" if n else "—",
                      f"{fmt([r['test_auc'] for r in sv])} ({len(sv)})" if sv else "—"]
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
        rows.append(f"| {key[0]} | {MODEL_LABEL.get(key[1], key[1])} | {key[3]} | {setting} | {len(rs)} | "
                    f"{fmt([r['best_val_auc'] for r in rs])} | {fmt([r['best_val_ap'] for r in rs])} | "
                    f"{statistics.median(r['best_epoch'] for r in rs):.0f} | {nan} |")
    if not tagged_groups:
        return []
    return ["| Dataset | Model | tag | configuration | seeds | best val AUC (%) | val AP (%) | best epoch (median) "
            "| NaN runs |", "|---|---|---|---|---:|---:|---:|---:|---:|"] + rows


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
    dims = sorted({k[2] for k in groups})
    if len(dims) < 2:
        return None
    datasets = [ds for ds in sorted({k[0] for k in groups}, key=_order)
                if sum((ds, m, d) in groups for m in MODEL_ORDER for d in dims) > 2]
    if not datasets:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.8), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for m, color in zip(MODEL_ORDER, ("tab:blue", "tab:red")):
            errorbar_means(ax, [(d, _auc_percent(groups.get((ds, m, d), []))) for d in dims], color, MODEL_LABEL[m])
        log2_axis(ax, dims)
        ax.set(xlabel="ambient dimension d (size of z)", ylabel="test AUC (%)",
               title=f"{ds}: equal ambient dimension")
        ax.legend(loc="lower right")
    fig.tight_layout()
    return save_figure(fig, out / "latent_dim.png", 110)


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
    md = ["# Link prediction: N-VGAE vs S-VGAE", "",
          f"Generated by `python -m experiments.report {Path(root).as_posix()}` from {len(runs)} run files "
          f"(torch {v['torch']}, torch_geometric {v['torch_geometric']}, hvae_ext {v['hvae_ext']}, "
          f"device {dev['device']}).", ""]
    main_runs = [r for k, rs in groups.items() if k[2] == MAIN_LATENT for r in rs]
    if main_runs:
        md += ["Configuration of the main table and the latent-dimension study (read from the run files):", ""]
        for m in MODEL_ORDER:
            rs = [r for k, g in groups.items() if k[1] == m and k[2] == MAIN_LATENT for r in g]
            if rs:
                md.append(f"* {MODEL_LABEL[m]}: " + ", ".join(f"{k}={v}" for k, v in signature(rs[0])
                                                          if m == "s-vgae" or k not in S_ONLY_KEYS))
        md += ["", "Compiled hvae_ext library of the main-table runs: "
               + (", ".join(f"`{x}`" for x in libraries(main_runs)) or "not recorded") + ".", ""]
    if off_config:
        md += [f"{len(off_config)} untagged run file(s) with another configuration were left out of the tables: "
               + ", ".join(sorted(r["_path"] for r in off_config)[:10]) + ("…" if len(off_config) > 10 else "")
               + ".", ""]
    md += ["Test AUC / AP (%) at the epoch of best validation AUC, mean ± std over seeds (a different 85/5/10 edge "
           "split per seed), latent dimension 16. \"bar\" is the acceptance level: the paper's S-VGAE "
           "numbers − 1.0 for S-VGAE, Kipf & Welling's VGAE numbers − 1.0 for N-VGAE.", ""]
    md += table
    tt = timing_table(groups, timings)
    if tt:
        md += ["", "## Epoch time", "", "Wall time (median) of one training step (encode, sample, loss, backward, "
               "Adam step; validation excluded unless said). The interleaved measurement alternates N and S steps "
               "in one process (N, S, S, N, ...), so both see the same machine load; the median of the ratios of adjacent "
               "N/S steps is the estimate that cancels load swings of a shared machine, the ratio of the two "
               "medians is shown beside it. The bar is S / N ≤ 1.25.", ""] + tt
    if curves:
        md += ["", "## Training curves", ""] + [f"![{p.stem}]({p.name})" for p in curves]
    pt = paper_latent_table(groups)
    if pt:
        md += ["", "## Latent dimension at equal degrees of freedom (the paper's convention)", "",
               "N-VGAE with z in R^d beside S-VGAE with z on S^d ⊂ R^(d+1): the same number of latent degrees of "
               "freedom per node. Test AUC (%) mean ± std (number of seeds; seeds 0-4, the same edge split for "
               "the same seed); S − N per seed, mean ± std, with the number of seeds where S is better.", ""] + pt
        paper_png = plot_paper_latent(groups, root)
        if paper_png:
            md += ["", f"![latent dimension, equal degrees of freedom]({paper_png.name})"]
    lt = latent_table(groups)
    if lt:
        md += ["", "## Latent dimension at equal ambient dimension", "",
               "Both models with z in R^d (the S-VGAE on S^(d−1), one degree of freedom fewer). Test AUC (%) mean "
               "± std (number of seeds).", ""] + lt
        if latent_png:
            md += ["", f"![latent dimension]({latent_png.name})"]
    tu = tuning_table(tagged, groups)
    if tu:
        md += ["", "## Tuning (validation split only)", "",
               "Configurations tried (seed k gives the same split in every configuration; the seeds column "
               "counts them), with the best "
               "validation AUC/AP of each run; the test split played no part in the choice. \"(final default)\" "
               "rows are the main-table runs (10 seeds).", ""] + tu
    return write_markdown(root, md)


def write_any_report(root: Path) -> Path:
    """The MNIST report when ``root`` holds MNIST N-VAE / S-VAE runs, else the link-prediction one."""
    from . import report_mnist

    return report_mnist.write_report(root) if report_mnist.has_mnist_runs(root) else write_report(root)


def main(argv: list[str] | None = None) -> None:
    report_main(argv, "python -m experiments.report",
                "Tables and plots from link-prediction (or MNIST) run JSON files.", write_any_report)


if __name__ == "__main__":
    main()
