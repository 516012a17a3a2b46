"""Epoch time of the N-VGAE, the von Mises-Fisher S-VGAE and the Power Spherical S-VGAE, measured in one
process with interleaved training steps.

    python -m experiments.epoch_timing --dataset Cora --steps 100 --out experiments/results/link_prediction/timing

``--models`` picks the models (a comma list of ``n-vgae``, ``s-vgae`` (von Mises-Fisher posterior) and
``s-vgae-ps`` (Power Spherical posterior); default all three). They are built on the same split with the
experiment's defaults (``python -m experiments.link_prediction``: per-model dropout; the two S-VGAE differ in
the posterior family only). Their training steps (the experiment's own :func:`~experiments.training.vgae_train_step`:
encode, sample, loss with fresh negatives, backward, Adam step) run in rounds, one step of each model per
round, the order rotated by one every round (two models: N, S, S, N, ...; three: N, S, PS, then S, PS, N, then
PS, N, S, ...), so that every model sees the same machine load. Each step is followed by the epoch's validation
pass (eval-mode encode, AUC/AP on the validation edges), timed apart, so both the training step and the whole
epoch are measured.

``--latent-dim`` is the size of z of the S-VGAE (as ``--latent-dim`` of the experiment), ``--n-latent-dim`` that
of the N-VGAE (default: the same). Equal size of z: ``--latent-dim 16``; equal degrees of freedom d as in the
latent-dimension study (N-VGAE on R^d, S-VGAE on S^d in R^(d+1)): ``--latent-dim d+1 --n-latent-dim d``.

Writes ``timing_<Dataset>[_d<D>[_n<d>]][_<models>].json`` into ``--out`` (the suffixes only where the sizes or
the models differ from the N-VGAE against the vMF S-VGAE at size 16, whose file is ``timing_<Dataset>.json``)
with every time, the medians and their ratios: ``median_<m>_s``, ``median_epoch_<m>_s``, ``times_<m>_s``, ... for
m = n, s (vMF), ps; the S / N ratios under their earlier names (``ratio_median``, ``median_of_pairwise_ratios``,
``epoch_ratio_median``) and the Power Spherical ones against the vMF S-VGAE and the N-VGAE
(``ratio_ps_s_median``, ``pairwise_ratio_ps_s``, ``epoch_ratio_ps_s_median``, ``epoch_pairwise_ratio_ps_s``, and
``..._ps_n...`` likewise).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

from . import link_prediction as lp
from .common import library_versions, set_threads, synchronize, write_record
from .training import vgae_scores, vgae_train_step

# model name -> (the experiment's model, the posterior family of the S-VGAE, short key of the record fields)
MODELS = {
    "n-vgae": ("n-vgae", "vmf", "n"),
    "s-vgae": ("s-vgae", "vmf", "s"),
    "s-vgae-ps": ("s-vgae", "power-spherical", "ps"),
}
DEFAULT_MODELS = ("n-vgae", "s-vgae", "s-vgae-ps")
TWO_MODELS = ("n-vgae", "s-vgae")  # the N-VGAE against the vMF S-VGAE: the file and fields of the first version
MAIN_LATENT = 16
# (numerator, denominator) of the ratios recorded, with the suffix of their fields
RATIOS = (("s", "n", ""), ("ps", "s", "_ps_s"), ("ps", "n", "_ps_n"))


def parse_models(text: str) -> tuple[str, ...]:
    """``"n-vgae,s-vgae,s-vgae-ps"`` -> the model names in the given order; ValueError naming the rule."""
    models = tuple(m.strip().lower() for m in text.split(",") if m.strip())
    bad = [m for m in models if m not in MODELS]
    if bad:
        raise ValueError(f"unknown model(s) {', '.join(bad)}; choose from {', '.join(MODELS)}")
    if len(set(models)) != len(models):
        raise ValueError(f"each model at most once, got {text!r}")
    if len(models) < 2:
        raise ValueError(f"at least two models to interleave, got {text!r}")
    return models


def rotation(models: tuple[str, ...], i: int) -> tuple[str, ...]:
    """The order of round ``i``: the models rotated left by ``i`` (so each is first, second, ... equally often;
    for two models N, S / S, N)."""
    k = i % len(models)
    return models[k:] + models[:k]


def timing_file_name(dataset: str, models: tuple[str, ...], latent_dim: int, n_latent_dim: int) -> str:
    """``timing_<Dataset>.json`` for the N-VGAE against the vMF S-VGAE at size 16, else with ``_d<D>`` (the
    S-VGAE's size of z), ``_n<d>`` (the N-VGAE's, where it differs) and the models' keys (``_n-s-ps``)."""
    parts = [f"timing_{dataset}"]
    if (latent_dim, n_latent_dim) != (MAIN_LATENT, MAIN_LATENT):
        parts.append(f"d{latent_dim}")
        if n_latent_dim != latent_dim:
            parts.append(f"n{n_latent_dim}")
    if tuple(models) != TWO_MODELS:
        parts.append("-".join(MODELS[m][2] for m in models))
    return "_".join(parts) + ".json"


def _pairwise_median(num: list[float], den: list[float]) -> float:
    """The median of the ratios of the two models' times of the same round (the low middle value)."""
    ratios = sorted(a / b for a, b in zip(num, den))
    return ratios[len(ratios) // 2]


def summarize(times: dict[str, list[float]], epoch_times: dict[str, list[float]]) -> dict:
    """Medians, means and ratios of per-model step and epoch times (keys: model names)."""
    rec: dict = {}
    keys = {MODELS[m][2]: m for m in times}
    for key, m in keys.items():
        rec[f"median_{key}_s"] = statistics.median(times[m])
        rec[f"mean_{key}_s"] = statistics.fmean(times[m])
        rec[f"median_epoch_{key}_s"] = statistics.median(epoch_times[m])
    for num, den, suffix in RATIOS:
        if num not in keys or den not in keys:
            continue
        tn, td = times[keys[num]], times[keys[den]]
        en, ed = epoch_times[keys[num]], epoch_times[keys[den]]
        if suffix:
            rec[f"ratio{suffix}_median"] = rec[f"median_{num}_s"] / rec[f"median_{den}_s"]
            rec[f"pairwise_ratio{suffix}"] = _pairwise_median(tn, td)
            rec[f"epoch_ratio{suffix}_median"] = rec[f"median_epoch_{num}_s"] / rec[f"median_epoch_{den}_s"]
            rec[f"epoch_pairwise_ratio{suffix}"] = _pairwise_median(en, ed)
        else:  # S / N under the names of the two-model version
            rec["ratio_median"] = rec["median_s_s"] / rec["median_n_s"]
            rec["median_of_pairwise_ratios"] = _pairwise_median(tn, td)
            rec["epoch_ratio_median"] = rec["median_epoch_s_s"] / rec["median_epoch_n_s"]
    for key, m in keys.items():
        rec[f"times_{key}_s"] = times[m]
        rec[f"epoch_times_{key}_s"] = epoch_times[m]
    return rec


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m experiments.epoch_timing", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="Cora")
    p.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help=f"comma list of {', '.join(MODELS)} (s-vgae: von Mises-Fisher posterior, s-vgae-ps: Power "
        f"Spherical); default all three",
    )
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--latent-dim", type=int, default=MAIN_LATENT, help="size of z of the S-VGAE")
    p.add_argument("--n-latent-dim", type=int, default=None, help="size of z of the N-VGAE (default: --latent-dim)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--cache-root", default=None)
    p.add_argument("--no-download", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="experiments/results/link_prediction/timing")
    a = p.parse_args(argv)
    try:
        models = parse_models(a.models)
    except ValueError as e:
        p.error(f"--models: {e}")
    if a.steps < 1:
        p.error(f"--steps must be positive, got {a.steps}")
    if a.warmup < 0:
        p.error(f"--warmup must be >= 0, got {a.warmup}")
    if a.threads < 0:
        p.error(f"--threads must be >= 0, got {a.threads}")
    n_latent = a.latent_dim if a.n_latent_dim is None else a.n_latent_dim
    if n_latent < 1:
        p.error(f"--n-latent-dim must be >= 1, got {n_latent}")
    base = (
        ["--dataset", a.dataset, "--model", "n-vgae,s-vgae", "--latent-dim", str(a.latent_dim), "--device", a.device]
        + (["--data-root", a.data_root] if a.data_root else [])
        + (["--cache-root", a.cache_root] if a.cache_root else [])
        + (["--no-download"] if a.no_download else [])
    )
    parser = lp.build_parser()
    args = parser.parse_args(base)
    lp.validate_args(parser, args)  # the S-VGAE's --latent-dim >= 2, the dataset's name
    args.threads = a.threads
    device = set_threads(args)
    _, *splits = lp.split_data(args.dataset, 0, args)
    train_data, val_data = splits[0].to(device), splits[1].to(device)
    models_, opts, times, epoch_times, margs = {}, {}, {}, {}, {}
    for name in models:
        kind, family, _ = MODELS[name]
        margs[name] = copy.copy(args)
        margs[name].posterior = family
        if kind == "n-vgae":
            margs[name].latent_dim = n_latent
        torch.manual_seed(0)
        models_[name] = lp.build_model(kind, train_data.num_features, margs[name]).to(device).train()
        opts[name] = torch.optim.Adam(models_[name].parameters(), lr=args.lr)
        times[name] = []
        epoch_times[name] = []

    def step(name: str) -> tuple[float, float]:
        model, opt = models_[name], opts[name]
        synchronize(device)
        t0 = time.perf_counter()
        vgae_train_step(model, opt, train_data, args.kl_weight, args.neg_ratio)
        synchronize(device)
        t1 = time.perf_counter()
        vgae_scores(model, train_data, val_data)
        synchronize(device)
        return t1 - t0, time.perf_counter() - t0

    for i in range(a.warmup + a.steps):
        for name in rotation(models, i):
            t, te = step(name)
            if i >= a.warmup:
                times[name].append(t)
                epoch_times[name].append(te)
    rec = {
        "dataset": args.dataset,
        "models": list(models),
        "latent_dim": args.latent_dim,
        "n_latent_dim": n_latent,
        "ambient_dims": {m: (n_latent if MODELS[m][0] == "n-vgae" else args.latent_dim) for m in models},
        "dropout": {m: lp.model_dropout(MODELS[m][0], margs[m]) for m in models},
        "steps": a.steps,
        "warmup": a.warmup,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "argv": list(sys.argv[1:] if argv is None else argv),
        "versions": library_versions(*lp.VERSIONED_MODULES),
    }
    rec.update(summarize(times, epoch_times))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / timing_file_name(args.dataset, models, args.latent_dim, n_latent)
    write_record(path, rec)  # relative paths, git commit, library hash
    label = {"n": "N-VGAE", "s": "vMF S-VGAE", "ps": "PS S-VGAE"}
    keys = [MODELS[m][2] for m in models]
    steps_ms = ", ".join(f"{label[k]} {1e3 * rec[f'median_{k}_s']:.1f}" for k in keys)
    epochs_ms = " / ".join(f"{1e3 * rec[f'median_epoch_{k}_s']:.1f}" for k in keys)
    ratios = [
        f"{num.upper()}/{den.upper()} = {rec['ratio_median' if not sfx else f'ratio{sfx}_median']:.2f}"
        for num, den, sfx in RATIOS
        if num in keys and den in keys
    ]
    print(f"{args.dataset}: median step (ms) {steps_ms}; with validation {epochs_ms}; {', '.join(ratios)} -> {path}")
    return rec


if __name__ == "__main__":
    main()
