"""Link prediction with N-VGAE and S-VGAE on Planetoid citation graphs (Davidson et al., 2018, Table 3).

    python -m experiments.link_prediction --dataset Cora --model n-vgae,s-vgae --seeds 0-9 \
        --out experiments/results/link_prediction/runs

Setup of Kipf & Welling (2016), coded as torch_geometric's ``examples/autoencoder.py``: raw binary features,
edges split 85/5/10 (train/val/test) by ``RandomLinkSplit`` (a different split per seed), full-batch Adam,
GCN 32-16, loss = BCE on the training edges and as many freshly sampled negatives per epoch
+ (kl_weight / num_nodes) * KL (``--neg-ratio`` negatives per edge if asked). The defaults are the
configuration chosen on the validation split (experiments/results/link_prediction/notes.md): lr 0.005 for both; N-VGAE
600 epochs and dropout 0.5 on the GCN input and hidden layer, S-VGAE 400 epochs and dropout 0.2, its
decoder's initial scale 10 and kappa floor 1. The reported test AUC/AP are those of the epoch with the best
validation AUC. ``--model n-vgae,s-vgae`` runs both models per seed in one process (same split). One JSON
file per run is written to ``--out``, named by the size of z: ``{Dataset}_{model}_d{D}[_k{k}][_ps]_seed{s}.json``.

Posterior. ``--posterior power-spherical`` gives the S-VGAE the Power Spherical posterior (De Cao and Aziz,
2020) instead of the von Mises-Fisher one (``--posterior vmf``, the default): the same encoder heads (mean
direction, concentration), the same uniform prior and the same training protocol; only the family of q(z)
changes (its sampler, density and KL). It applies to the S-VGAE only (``--model s-vgae``). Each run file
records ``posterior``: ``"vmf"`` or ``"power-spherical"`` for the S-VGAE, ``"normal"`` for the N-VGAE; the
files of Power Spherical runs are named with ``_ps`` (``Cora_s-vgae_d16_ps_seed0.json``).

Latent size. ``--latent-dim`` is the size of z for both models by default (``--dim-convention ambient``: the
S-VGAE on S^(d-1)); with ``--dim-convention paper`` it counts degrees of freedom (the S-VGAE on S^d in
R^(d+1)). ``--spheres k`` makes the S-VGAE's latent a product of k spheres S^m x ... x S^m (Davidson et al.,
2019): k independent vMF factors per node, each with its own mean direction and concentration, a uniform
prior on each; d = k m degrees of freedom in R^(d+k). Each run file records ``latent_dim`` (as given),
``ambient_dim`` (the size of z), ``spheres`` and ``dim_convention``.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import torch

from .common import (
    POSTERIOR_LABELS,
    add_common_arguments,
    add_posterior_argument,
    device_info,
    library_versions,
    parse_run_args,
    parse_seeds,  # noqa: F401  (public here too)
    run_config,
    run_stem,
    synchronize,
    validate_common,
    validate_latent_layout,
    write_record,
)
from .data import DATASETS, DatasetUnavailableError, load_planetoid
from .training import vgae_scores, vgae_train_step

MODELS = ("n-vgae", "s-vgae")
DIM_CONVENTIONS = ("ambient", "paper")
# per-model defaults, chosen on the validation split (experiments/results/link_prediction/notes.md)
DEFAULT_DROPOUT = {"n-vgae": 0.5, "s-vgae": 0.2}
DEFAULT_EPOCHS = {"n-vgae": 600, "s-vgae": 400}
VERSIONED_MODULES = ("torch_geometric", "sklearn")  # recorded in each run file beside torch and hvae_ext


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.link_prediction",
        description="VGAE link prediction (N-VGAE vs S-VGAE) on Planetoid graphs.",
    )
    p.add_argument("--dataset", required=True, help=f"one of {', '.join(DATASETS)}")
    p.add_argument(
        "--model",
        default="s-vgae",
        help=f"one of {', '.join(MODELS)}, or a comma list (run in the same process per seed)",
    )
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--hidden-dim", type=int, default=32)
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"training epochs (default: {DEFAULT_EPOCHS['n-vgae']} for n-vgae, "
        f"{DEFAULT_EPOCHS['s-vgae']} for s-vgae, chosen on the validation split)",
    )
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--seeds", default="0", help="e.g. 0-9 or 0,1,2")
    p.add_argument("--kl-weight", type=float, default=1.0, help="KL is scaled by kl_weight / num_nodes")
    p.add_argument(
        "--neg-ratio",
        type=int,
        default=1,
        help="negatives sampled afresh per training edge and epoch (their BCE is averaged, so the "
        "loss is the same in expectation; more of them only lowers its variance)",
    )
    p.add_argument(
        "--dim-convention",
        default="ambient",
        choices=DIM_CONVENTIONS,
        help="ambient (default): --latent-dim is the size of z for both models; paper: the degrees of "
        "freedom (S-VGAE on S^d in R^(d+1), a product of k spheres in R^(d+k))",
    )
    p.add_argument(
        "--spheres",
        type=int,
        default=1,
        help="S-VGAE: the number k of sphere factors S^m x ... x S^m (k must divide --latent-dim); 1: one sphere",
    )
    add_posterior_argument(p, "S-VGAE")
    p.add_argument("--kappa-floor", type=float, default=1.0, help="S-VGAE: kappa = softplus(.) + floor")
    p.add_argument(
        "--decoder-scale",
        type=float,
        default=10.0,
        help="S-VGAE: initial scale s of the decoder sigma(s z_i^T z_j + b)",
    )
    p.add_argument("--fixed-scale", action="store_true", help="S-VGAE: do not learn the decoder scale")
    p.add_argument(
        "--dropout",
        type=float,
        default=None,
        help="dropout on the GCN input and hidden layer (default: "
        f"{DEFAULT_DROPOUT['n-vgae']} for n-vgae, {DEFAULT_DROPOUT['s-vgae']} for s-vgae, chosen "
        "on the validation split)",
    )
    p.add_argument(
        "--normalize-features",
        action="store_true",
        help="row-normalize the features (PyG's example); default: raw binary features as in Kipf & Welling",
    )
    p.add_argument(
        "--data-root",
        default=None,
        help="folder with Planetoid data (DIR/<Name>/raw/ind.* or DIR/planetoid/<Name>/raw/ind.*), only "
        "read; default: $HVAE_EXT_DATA, else the cache folder (downloaded into when online)",
    )
    p.add_argument(
        "--cache-root",
        default=None,
        help="writable folder the raw files are copied to and Planetoid writes processed/ into "
        "(default: $XDG_CACHE_HOME/hvae_ext/planetoid)",
    )
    p.add_argument("--no-download", action="store_true", help="never try to download")
    add_common_arguments(
        p,
        out="experiments/results/link_prediction/runs",
        threads=0,
        tag_help="label for tuning runs (kept apart in the report)",
    )
    return p


def validate_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    names = {d.lower(): d for d in DATASETS}
    if args.dataset.lower() not in names:
        p.error(f"unknown dataset {args.dataset!r}; choose one of {', '.join(DATASETS)}")
    args.dataset = names[args.dataset.lower()]
    models = [m.strip().lower() for m in args.model.split(",") if m.strip()]
    bad = [m for m in models if m not in MODELS]
    if not models or bad:
        p.error(f"unknown model {', '.join(bad) or repr(args.model)}; choose one of {', '.join(MODELS)}")
    args.models = list(dict.fromkeys(models))
    if args.epochs is not None and args.epochs < 1:
        p.error(f"--epochs must be a positive integer, got {args.epochs}")
    validate_latent_layout(p, args, args.models, "s-vgae")
    if args.hidden_dim < 1:
        p.error(f"--hidden-dim must be >= 1, got {args.hidden_dim}")
    if args.kl_weight < 0:
        p.error(f"--kl-weight must be >= 0, got {args.kl_weight}")
    if args.neg_ratio < 1:
        p.error(f"--neg-ratio must be a positive integer, got {args.neg_ratio}")
    if args.kappa_floor < 0:
        p.error(f"--kappa-floor must be >= 0, got {args.kappa_floor}")
    if not args.decoder_scale > 0:
        p.error(f"--decoder-scale must be > 0, got {args.decoder_scale}")
    if args.dropout is not None and not 0 <= args.dropout < 1:
        p.error(f"--dropout must be in [0, 1), got {args.dropout}")
    validate_common(p, args)


def split_data(dataset_name: str, seed: int, args) -> tuple:
    import torch_geometric.transforms as T

    transforms = [T.NormalizeFeatures()] if args.normalize_features else []
    transforms.append(
        T.RandomLinkSplit(
            num_val=0.05, num_test=0.1, is_undirected=True, split_labels=True, add_negative_train_samples=False
        )
    )
    dataset = load_planetoid(dataset_name, args.data_root, args.cache_root, download=not args.no_download)
    data = dataset[0]
    seed_everything(seed)
    train_data, val_data, test_data = T.Compose(transforms)(data)
    return dataset, train_data, val_data, test_data


def model_dropout(name: str, args) -> float:
    return DEFAULT_DROPOUT[name] if args.dropout is None else args.dropout


def model_epochs(name: str, args) -> int:
    return DEFAULT_EPOCHS[name] if args.epochs is None else args.epochs


def model_spheres(name: str, args) -> int:
    return getattr(args, "spheres", 1) if name == "s-vgae" else 1


def model_posterior(name: str, args) -> str:
    """The posterior family of a run: ``--posterior`` for the S-VGAE, ``"normal"`` for the N-VGAE."""
    return getattr(args, "posterior", "vmf") if name == "s-vgae" else "normal"


def model_ambient_dim(name: str, args) -> int:
    """The size of z: ``--latent-dim`` under the ambient convention; under the paper's, d for the N-VGAE and
    d + k for the S-VGAE (k spheres S^m, k m = d)."""
    if getattr(args, "dim_convention", "ambient") == "paper" and name == "s-vgae":
        return args.latent_dim + model_spheres(name, args)
    return args.latent_dim


def build_model(name: str, in_channels: int, args):
    from hvae_ext.models import NVGAE, SVGAE

    dropout = model_dropout(name, args)
    if name == "n-vgae":
        return NVGAE.gcn(in_channels, args.hidden_dim, args.latent_dim, dropout=dropout)
    return SVGAE.gcn(
        in_channels,
        args.hidden_dim,
        model_ambient_dim(name, args),
        kappa_floor=args.kappa_floor,
        decoder_scale=args.decoder_scale,
        learn_scale=not args.fixed_scale,
        dropout=dropout,
        spheres=model_spheres(name, args),
        posterior=model_posterior(name, args),
    )


def seed_everything(seed: int) -> None:
    """torch, numpy and Python's random (torch_geometric's negative sampling draws from the latter)."""
    import random

    import numpy

    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)


def train_run(model_name: str, seed: int, splits, args, device: torch.device, progress: bool = True) -> dict:
    """Trains one model on one split; returns the run record (without configuration and versions)."""
    train_data, val_data, test_data = (s.to(device) for s in splits)
    seed_everything(seed)
    model = build_model(model_name, train_data.num_features, args).to(device)
    t_run = time.perf_counter()
    history, best = _fit(model, model_name, seed, train_data, val_data, args, device, progress)
    total = time.perf_counter() - t_run
    model.load_state_dict(best["state"])
    test_auc, test_ap, z = vgae_scores(model, train_data, test_data)
    if not torch.isfinite(z).all():
        raise FloatingPointError(f"{args.dataset} {model_name} seed {seed}: non-finite embeddings")
    train_times = sorted(history["train_time_s"][1:] or history["train_time_s"])
    return {
        "test_auc": float(test_auc),
        "test_ap": float(test_ap),
        "best_epoch": best["epoch"],
        "best_val_auc": best["val_auc"],
        "best_val_ap": best["val_ap"],
        "median_train_time_s": train_times[len(train_times) // 2],
        "median_epoch_time_s": sorted(history["epoch_time_s"])[len(history["epoch_time_s"]) // 2],
        "total_time_s": total,
        "history": history,
        "num_nodes": int(train_data.num_nodes),
        "num_train_edges": int(train_data.pos_edge_label_index.size(1)),
        "num_val_edges": int(val_data.pos_edge_label_index.size(1)),
        "num_test_edges": int(test_data.pos_edge_label_index.size(1)),
    }


def _fit(
    model, model_name: str, seed: int, train_data, val_data, args, device: torch.device, progress: bool
) -> tuple[dict, dict]:
    """The epochs of one run (a training step, then the validation pass); returns the history and the best
    epoch by validation AUC (its scores and a copy of its parameters)."""
    from tqdm.auto import tqdm

    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    history = {
        "epoch": [],
        "loss": [],
        "recon_loss": [],
        "kl_loss": [],
        "val_auc": [],
        "val_ap": [],
        "train_time_s": [],
        "epoch_time_s": [],
    }
    if model_name == "s-vgae":
        history.update(kappa_mean=[], decoder_scale=[], decoder_bias=[])
    best = {"val_auc": -1.0, "epoch": 0, "state": None}
    bar = tqdm(
        range(1, model_epochs(model_name, args) + 1),
        desc=f"{args.dataset} {model_name} seed {seed}",
        leave=False,
        disable=not progress,
        dynamic_ncols=True,
    )
    for epoch in bar:
        synchronize(device)
        t0 = time.perf_counter()
        loss, recon, kl = vgae_train_step(model, opt, train_data, args.kl_weight, args.neg_ratio)
        synchronize(device)
        t1 = time.perf_counter()
        val_auc, val_ap, _ = vgae_scores(model, train_data, val_data)
        t2 = time.perf_counter()
        loss_v = float(loss.detach())
        if not math.isfinite(loss_v):
            raise FloatingPointError(f"{args.dataset} {model_name} seed {seed}: loss is {loss_v} at epoch {epoch}")
        for key, val in (
            ("epoch", epoch),
            ("loss", loss_v),
            ("recon_loss", float(recon.detach())),
            ("kl_loss", float(kl.detach())),
            ("val_auc", float(val_auc)),
            ("val_ap", float(val_ap)),
            ("train_time_s", t1 - t0),
            ("epoch_time_s", t2 - t0),
        ):
            history[key].append(val)
        if model_name == "s-vgae":
            history["kappa_mean"].append(float(model.__kappa__.detach().mean()))
            history["decoder_scale"].append(float(model.decoder.scale.detach()))
            history["decoder_bias"].append(float(model.decoder.bias.detach()))
        if val_auc > best["val_auc"]:
            best = {
                "val_auc": float(val_auc),
                "val_ap": float(val_ap),
                "epoch": epoch,
                "state": copy.deepcopy(model.state_dict()),
            }
        bar.set_postfix(loss=f"{loss_v:.3f}", val_auc=f"{val_auc:.3f}")
    bar.close()
    return history, best


def run_file_name(
    dataset: str, model: str, latent_dim: int, seed: int, tag: str = "", spheres: int = 1, posterior: str = "vmf"
) -> str:
    """``DATASET_MODEL_dD[_kK][_ps][_TAG]_seedS.json``, D the size of z (``_kK`` for a product of K > 1
    spheres, ``_ps`` for the Power Spherical posterior; ``posterior="normal"``, the N-VGAE's, adds nothing)."""
    posterior = "vmf" if posterior == "normal" else posterior
    return run_stem(f"{dataset}_{model}", latent_dim, seed, tag, spheres, posterior) + ".json"


def main(argv: list[str] | None = None) -> list[dict]:
    args, device = parse_run_args(build_parser, validate_args, argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    versions = library_versions(*VERSIONED_MODULES)
    records = []
    families = ", ".join(f"{m} ({POSTERIOR_LABELS[model_posterior(m, args)]} posterior)" for m in args.models)
    print(f"{args.dataset} link prediction: {families}, seeds {args.seeds} -> {out}", flush=True)
    for seed in args.seed_list:
        try:
            _, *splits = split_data(args.dataset, seed, args)
        except DatasetUnavailableError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        for model_name in args.models:
            result = train_run(model_name, seed, splits, args, device, progress=not args.no_progress)
            config = run_config(
                args,
                ("models", "seed_list"),
                argv,
                model=model_name,
                seed=seed,
                dropout=model_dropout(model_name, args),
                epochs=model_epochs(model_name, args),
                split="RandomLinkSplit 85/5/10",
                models_in_process=args.models,
                posterior=model_posterior(model_name, args),
            )
            ambient, spheres = model_ambient_dim(model_name, args), model_spheres(model_name, args)
            posterior = model_posterior(model_name, args)
            record = {
                "config": config,
                "latent_dim": args.latent_dim,
                "ambient_dim": ambient,
                "spheres": spheres,
                "posterior": posterior,
                "dim_convention": args.dim_convention,
                "versions": versions,
                "device": device_info(device),
                **result,
            }
            path = out / run_file_name(args.dataset, model_name, ambient, seed, args.tag, spheres, posterior)
            write_record(path, record)
            records.append(record)
            k_part = f" k={spheres}" if spheres != 1 else ""
            k_part += " Power Spherical" if posterior == "power-spherical" else ""
            print(
                f"{args.dataset} {model_name} D={ambient}{k_part} seed {seed}: test AUC {100 * result['test_auc']:.2f} "
                f"AP {100 * result['test_ap']:.2f} (best val AUC {100 * result['best_val_auc']:.2f} at epoch "
                f"{result['best_epoch']}), median epoch {1e3 * result['median_train_time_s']:.1f} ms -> {path}",
                flush=True,
            )
    return records


if __name__ == "__main__":
    main()
