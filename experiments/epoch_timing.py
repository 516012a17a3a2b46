"""Epoch time of S-VGAE against N-VGAE, measured in one process with interleaved training steps.

    python -m experiments.epoch_timing --dataset Cora --steps 100 --out experiments/results/link_prediction/timing

Both models are built on the same split with the experiment's defaults; their training steps (the
experiment's own :func:`~experiments.training.vgae_train_step`: encode, sample, loss with fresh
negatives, backward, Adam step) alternate N, S, S, N, ... so that both see the same machine load. Each step
is followed by the epoch's validation pass (eval-mode encode, AUC/AP on the validation edges), timed apart,
so both the training step and the whole epoch are measured. Writes ``timing_<Dataset>.json`` with every
time, the medians and their ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from . import link_prediction as lp
from .common import library_versions, set_threads, synchronize, write_record
from .training import vgae_scores, vgae_train_step


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m experiments.epoch_timing", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="Cora")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--data-root", default=None)
    p.add_argument("--cache-root", default=None)
    p.add_argument("--no-download", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", default="experiments/results/link_prediction/timing")
    a = p.parse_args(argv)
    if a.steps < 1:
        p.error(f"--steps must be positive, got {a.steps}")
    if a.warmup < 0:
        p.error(f"--warmup must be >= 0, got {a.warmup}")
    if a.threads < 0:
        p.error(f"--threads must be >= 0, got {a.threads}")
    base = (
        ["--dataset", a.dataset, "--model", "n-vgae,s-vgae", "--latent-dim", str(a.latent_dim), "--device", a.device]
        + (["--data-root", a.data_root] if a.data_root else [])
        + (["--cache-root", a.cache_root] if a.cache_root else [])
        + (["--no-download"] if a.no_download else [])
    )
    parser = lp.build_parser()
    args = parser.parse_args(base)
    lp.validate_args(parser, args)
    args.threads = a.threads
    device = set_threads(args)
    _, *splits = lp.split_data(args.dataset, 0, args)
    train_data, val_data = splits[0].to(device), splits[1].to(device)
    models, opts, times, epoch_times = {}, {}, {}, {}
    for name in ("n-vgae", "s-vgae"):
        torch.manual_seed(0)
        models[name] = lp.build_model(name, train_data.num_features, args).to(device).train()
        opts[name] = torch.optim.Adam(models[name].parameters(), lr=args.lr)
        times[name] = []
        epoch_times[name] = []

    def step(name: str) -> tuple[float, float]:
        model, opt = models[name], opts[name]
        synchronize(device)
        t0 = time.perf_counter()
        vgae_train_step(model, opt, train_data, args.kl_weight, args.neg_ratio)
        synchronize(device)
        t1 = time.perf_counter()
        vgae_scores(model, train_data, val_data)
        synchronize(device)
        return t1 - t0, time.perf_counter() - t0

    for i in range(a.warmup + a.steps):
        order = ("n-vgae", "s-vgae") if i % 2 == 0 else ("s-vgae", "n-vgae")
        for name in order:
            t, te = step(name)
            if i >= a.warmup:
                times[name].append(t)
                epoch_times[name].append(te)
    mn, ms = statistics.median(times["n-vgae"]), statistics.median(times["s-vgae"])
    ratios = sorted(s / n for n, s in zip(times["n-vgae"], times["s-vgae"]))
    rec = {
        "dataset": args.dataset,
        "latent_dim": args.latent_dim,
        "steps": a.steps,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "versions": library_versions(*lp.VERSIONED_MODULES),
        "median_n_s": mn,
        "median_s_s": ms,
        "ratio_median": ms / mn,
        "median_of_pairwise_ratios": ratios[len(ratios) // 2],
        "mean_n_s": statistics.fmean(times["n-vgae"]),
        "mean_s_s": statistics.fmean(times["s-vgae"]),
        "median_epoch_n_s": statistics.median(epoch_times["n-vgae"]),
        "median_epoch_s_s": statistics.median(epoch_times["s-vgae"]),
        "times_n_s": times["n-vgae"],
        "times_s_s": times["s-vgae"],
        "epoch_times_n_s": epoch_times["n-vgae"],
        "epoch_times_s_s": epoch_times["s-vgae"],
    }
    rec["epoch_ratio_median"] = rec["median_epoch_s_s"] / rec["median_epoch_n_s"]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"timing_{args.dataset}.json"
    write_record(path, rec)  # relative paths, git commit, library hash
    print(
        f"{args.dataset}: N-VGAE step {1e3 * mn:.1f} ms, S-VGAE step {1e3 * ms:.1f} ms, S/N = {ms / mn:.2f}; "
        f"with validation: {1e3 * rec['median_epoch_n_s']:.1f} / {1e3 * rec['median_epoch_s_s']:.1f} ms, "
        f"S/N = {rec['epoch_ratio_median']:.2f} -> {path}"
    )
    return rec


if __name__ == "__main__":
    main()
