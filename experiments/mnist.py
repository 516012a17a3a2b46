"""MNIST VAE across latent dimensions, N-VAE against S-VAE (Davidson et al., 2018, Table 1).

    python -m experiments.mnist --model s-vae --latent-dim 10 --seeds 0-2 \
        --data-root ../shared/data/MNIST/raw --out experiments/results/mnist/paper

Dimension convention. By default (``--dim-convention paper``) ``--latent-dim d`` counts latent degrees of
freedom as in the paper's Table 1 and the authors' example scripts: the N-VAE has z in R^d, the S-VAE z on
S^d in R^(d+1). ``--dim-convention ambient`` makes d the size of z for both (the S-VAE on S^(d-1), the
library's own convention: ``VonMisesFisher`` and ``HypersphericalUniform`` count the ambient dimension).
Each run file records both: ``latent_dim`` (the table's d) and ``ambient_dim`` (the size of z).

Product of spheres (Davidson et al., 2019): ``--spheres k`` splits the S-VAE's latent into k independent
vMF factors S^m x ... x S^m, each with its own mean direction and concentration and a uniform prior. Under the
paper's convention d = k m degrees of freedom (k must divide d) and the size of z is d + k; under the ambient
convention d is the size of z and k must divide it. The run file records ``spheres`` (1: a single sphere, the
default) and is named ``mnist_s-vae_d{d}_k{k}_seed{s}.json`` for k > 1.

Posterior. ``--posterior power-spherical`` gives the S-VAE the Power Spherical posterior (De Cao and Aziz,
2020) instead of the von Mises-Fisher one (``--posterior vmf``, the default): the same encoder heads, the
same uniform prior and the same protocol; the KL, the sampler and the importance-sampled likelihood follow
the family. It applies to the S-VAE only. The run file records ``posterior`` (``"vmf"`` or
``"power-spherical"`` for the S-VAE, ``"normal"`` for the N-VAE) and a Power Spherical run is named with
``_ps``: ``mnist_s-vae_d{d}[_k{k}]_ps_seed{s}.json``.

Protocol (the defaults; public reproductions of Table 1): MLP encoder 784-256-128 and decoder
ambient-128-256-784 (ReLU), Bernoulli likelihood on dynamically binarized MNIST (a fresh binarization
x ~ Bernoulli(pixel intensity) every time an image is used for training), Adam (lr 1e-3), batch size 64,
the KL term weighted by a factor rising linearly from 0 to 1 over the first ``--warmup-epochs`` (100) epochs
(per step), up to ``--epochs`` (500) epochs with early stopping on the validation ELBO (the full ELBO,
weight 1) after ``--patience`` (50) epochs without improvement. The last 10,000 of the 60,000
training images (a seeded permutation, the same for every seed) form a validation split, binarized once
(seeded); the parameters of the best validation epoch are evaluated on the test set,
binarized once with a fixed seed (the same test set for every run). Test metrics: the importance-sampled
log-likelihood (Burda et al., 2016) with ``--is-samples`` (default 500) posterior samples per image, the
ELBO and its reconstruction and KL terms. One JSON file per run is written (atomically) to ``--out``,
plus, for an ambient dimension <= 3, a ``.npz`` with the test set's latent means and labels (for the
report's pictures).

Several seeds train side by side as one batched model with ``--batch-seeds`` (``stack_ensemble``: one
batched matmul per layer, each seed its own data order, binarization and early stopping); measured on the
2-core CPU it gives no gain (``experiments/results/mnist/notes.md``), on a GPU it is what makes the full protocol
affordable (``scripts/mnist_gpu.sh``). ``--time-budget`` bounds the training time of a call (the run is then
evaluated at its best epoch and marked as stopped by the budget), and ``--checkpoint-dir`` keeps a
checkpoint per epoch from which ``--resume`` continues a stopped run.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .common import (
    POSTERIOR_LABELS,
    add_common_arguments,
    add_posterior_argument,
    device_info,
    library_versions,
    parse_run_args,
    run_config,
    run_stem,
    synchronize,
    validate_common,
    validate_latent_layout,
    write_record,
)
from .mnist_data import ENV_VAR, MNISTUnavailableError, load_mnist
from .training import vae_train_step

MODELS = ("n-vae", "s-vae")
DIM_CONVENTIONS = ("paper", "ambient")
NUM_VALIDATION = 10_000
SPLIT_SEED = 20180000  # permutation of the training images into train / validation (fixed)
VAL_BINARIZATION_SEED = 20180001
TEST_BINARIZATION_SEED = 20180002


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m experiments.mnist",
        description="MLP VAE on binarized MNIST: N-VAE (Gaussian) vs S-VAE (vMF or Power Spherical).",
    )
    p.add_argument("--model", required=True, help=f"one of {', '.join(MODELS)}")
    p.add_argument(
        "--latent-dim",
        type=int,
        required=True,
        help="latent dimension d; with --dim-convention paper (default) the degrees of freedom: "
        "n-vae on R^d, s-vae on S^d in R^(d+1); with ambient: the size of z for both",
    )
    p.add_argument(
        "--dim-convention",
        default="paper",
        choices=DIM_CONVENTIONS,
        help="paper: d = latent degrees of freedom (Table 1); ambient: d = size of z",
    )
    p.add_argument("--seeds", default="0", help="e.g. 0-2 or 0,1,2")
    p.add_argument(
        "--data-root",
        default=None,
        help=f"folder with the MNIST idx files (DIR, DIR/raw or DIR/MNIST/raw holding "
        f"train-images-idx3-ubyte.gz, ...); default: ${ENV_VAR}",
    )
    p.add_argument("--epochs", type=int, default=500, help="maximum number of epochs")
    p.add_argument(
        "--patience", type=int, default=50, help="stop after this many epochs without a better validation ELBO"
    )
    p.add_argument(
        "--warmup-epochs",
        type=float,
        default=100.0,
        help="the KL weight rises linearly from 0 to 1 over this many epochs (0: no warm-up)",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", default="256,128", help="encoder widths (the decoder uses them reversed)")
    p.add_argument("--kappa-floor", type=float, default=1.0, help="s-vae: kappa = softplus(.) + floor")
    p.add_argument(
        "--spheres",
        type=int,
        default=1,
        help="s-vae: the number k of sphere factors S^m x ... x S^m (k must divide d under the paper's "
        "convention, then z has size d + k; the size of z under the ambient one); 1: one sphere",
    )
    add_posterior_argument(p, "s-vae")
    p.add_argument("--is-samples", type=int, default=500, help="importance samples per test image")
    p.add_argument("--test-images", type=int, default=0, help="evaluate on the first N test images (0: all)")
    p.add_argument(
        "--train-images",
        type=int,
        default=0,
        help="train on the first N images of the training split (0: all 50,000; for quick checks)",
    )
    p.add_argument(
        "--batch-seeds",
        action="store_true",
        help="train all --seeds together as one batched model (one process, batched matmuls)",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=0.0,
        help="minutes of training after which the run stops and is evaluated (0: no limit)",
    )
    p.add_argument(
        "--checkpoint-dir", default=None, help="folder for a per-epoch checkpoint of each call (for --resume)"
    )
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    add_common_arguments(
        p,
        out="experiments/results/mnist/paper",
        threads=1,
        tag_help="label for exploratory runs (kept apart in the report)",
    )
    return p


def validate_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    args.model = args.model.strip().lower()
    if args.model not in MODELS:
        p.error(f"unknown model {args.model!r}; choose one of {', '.join(MODELS)}")
    validate_latent_layout(p, args, [args.model], "s-vae")
    args.ambient_dim = ambient_dim(args.model, args.latent_dim, args.dim_convention, args.spheres)
    if args.epochs < 1:
        p.error(f"--epochs must be a positive integer, got {args.epochs}")
    if args.patience < 1:
        p.error(f"--patience must be a positive integer, got {args.patience}")
    if args.batch_size < 1:
        p.error(f"--batch-size must be a positive integer, got {args.batch_size}")
    if not (args.warmup_epochs >= 0 and math.isfinite(args.warmup_epochs)):
        p.error(f"--warmup-epochs must be >= 0, got {args.warmup_epochs}")
    if not (args.time_budget >= 0 and math.isfinite(args.time_budget)):
        p.error(f"--time-budget must be >= 0 minutes, got {args.time_budget}")
    if args.resume and not args.checkpoint_dir:
        p.error("--resume needs --checkpoint-dir (the folder holding the checkpoint)")
    if not args.kappa_floor >= 0:
        p.error(f"--kappa-floor must be >= 0, got {args.kappa_floor}")
    if args.is_samples < 1:
        p.error(f"--is-samples must be a positive integer, got {args.is_samples}")
    if args.test_images < 0 or args.train_images < 0:
        p.error("--test-images and --train-images must be >= 0 (0: all)")
    try:
        args.hidden_widths = [int(h) for h in args.hidden.split(",") if h.strip()]
    except ValueError:
        p.error(f"--hidden must be a comma list of positive integers, got {args.hidden!r}")
    if not args.hidden_widths or min(args.hidden_widths) < 1:
        p.error(f"--hidden must be a comma list of positive integers, got {args.hidden!r}")
    validate_common(p, args)
    if args.data_root is None and not os.environ.get(ENV_VAR):
        p.error(
            f"--data-root is required (a folder holding the MNIST idx files "
            f"train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
            f"t10k-labels-idx1-ubyte.gz, directly or in MNIST/raw), or set ${ENV_VAR}"
        )
    if args.data_root is not None and not Path(args.data_root).expanduser().is_dir():
        p.error(
            f"--data-root {args.data_root} is not a folder: pass the folder holding the MNIST idx files "
            f"(train-images-idx3-ubyte.gz, ...), directly or in MNIST/raw"
        )


def prepare_data(data: dict, device: torch.device, train_images: int = 0, test_images: int = 0) -> dict:
    """Float intensities in [0, 1] for training (binarized per batch), fixed binarizations of the
    validation and test images."""
    images = torch.from_numpy(data["train_images"]).float().div_(255.0)
    labels = torch.from_numpy(data["train_labels"].astype(np.int64))
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(SPLIT_SEED))
    val_idx, train_idx = perm[:NUM_VALIDATION], perm[NUM_VALIDATION:]
    if train_images:
        train_idx = train_idx[:train_images]
    val = torch.bernoulli(images[val_idx], generator=torch.Generator().manual_seed(VAL_BINARIZATION_SEED))
    test_float = torch.from_numpy(data["test_images"]).float().div_(255.0)
    test = torch.bernoulli(test_float, generator=torch.Generator().manual_seed(TEST_BINARIZATION_SEED))
    test_labels = torch.from_numpy(data["test_labels"].astype(np.int64))
    if test_images:
        test, test_labels = test[:test_images], test_labels[:test_images]
    if train_images:
        val = val[: max(train_images // 5, 100)]
    return {
        "train": images[train_idx].to(device),
        "train_labels": labels[train_idx].to(device),
        "val": val.to(device),
        "test": test.to(device),
        "test_labels": test_labels.to(device),
    }


def ambient_dim(model: str, latent_dim: int, convention: str = "paper", spheres: int = 1) -> int:
    """The size of z: the S-VAE on S^d lives in R^(d+1) under the paper's convention, a product of k
    spheres S^m (k m = d) in R^(d+k)."""
    if convention not in DIM_CONVENTIONS:
        raise ValueError(f"convention must be one of {DIM_CONVENTIONS}, got {convention!r}")
    return latent_dim + spheres if (model == "s-vae" and convention == "paper") else latent_dim


def build_model(args):
    from hvae_ext.models.vae import NVAE, SVAE

    if args.model == "n-vae":
        return NVAE.mlp(args.ambient_dim, hidden=args.hidden_widths)
    return SVAE.mlp(
        args.ambient_dim,
        hidden=args.hidden_widths,
        kappa_floor=args.kappa_floor,
        spheres=getattr(args, "spheres", 1),
        posterior=getattr(args, "posterior", "vmf"),
    )


def posterior_of(args) -> str:
    """The posterior family of the run: ``--posterior`` for the S-VAE, ``"normal"`` for the N-VAE."""
    return getattr(args, "posterior", "vmf") if args.model == "s-vae" else "normal"


@torch.no_grad()
def evaluate_elbo(model, x: torch.Tensor, batch_size: int = 1000) -> dict:
    """Mean ELBO, reconstruction and KL over x (one posterior sample per image)."""
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64)
    for i in range(0, len(x), batch_size):
        elbo, recon, kl = model.elbo(x[i : i + batch_size])
        sums += torch.stack([elbo.sum(), recon.sum(), kl.sum()]).double().cpu()
    m = sums / len(x)
    return {"elbo": float(m[0]), "recon": float(m[1]), "kl": float(m[2])}


@torch.no_grad()
def evaluate_test(model, x: torch.Tensor, num_samples: int, batch_size: int = 100) -> dict:
    """Importance-sampled log-likelihood and ELBO terms, averaged over the test images."""
    model.eval()
    keys = ("log_likelihood", "elbo", "recon", "kl", "elbo_mc")
    per_image = {k: [] for k in keys}
    for i in range(0, len(x), batch_size):
        out = model.log_likelihood(x[i : i + batch_size], num_samples)
        for k in keys:
            per_image[k].append(out[k].double().cpu())
    cat = {k: torch.cat(v) for k, v in per_image.items()}
    ll = cat["log_likelihood"]
    bad = int((~torch.isfinite(ll)).sum())
    if bad:
        print(f"warning: the log-likelihood estimate is not finite for {bad} test images", file=sys.stderr)
    return {
        "nonfinite_test_images": bad,
        "test_ll": float(ll.mean()),
        "test_ll_sem": float(ll.std() / math.sqrt(len(ll))),
        "test_elbo": float(cat["elbo"].mean()),
        "test_recon": float(cat["recon"].mean()),
        "test_kl": float(cat["kl"].mean()),
        "test_elbo_mc": float(cat["elbo_mc"].mean()),
        "num_test_images": len(ll),
        "is_samples": num_samples,
    }


def kl_weight(step: int, steps_per_epoch: int, warmup_epochs: float) -> float:
    """Linear KL warm-up: 0 at the first step, 1 after ``warmup_epochs`` epochs (per step)."""
    if warmup_epochs <= 0:
        return 1.0
    return min(1.0, step / (warmup_epochs * steps_per_epoch))


class _Members:
    """The models of one call, trained side by side: a :func:`stack_ensemble` model (``--batch-seeds``)
    or a single plain model. ``elbo(x, kl_scale)`` always returns (E, B) tensors."""

    def __init__(self, seeds: list[int], args, device: torch.device, batched: bool):
        from hvae_ext.models.vae import stack_ensemble

        models = []
        for seed in seeds:
            torch.manual_seed(seed)  # member e starts exactly as a single run of its seed
            models.append(build_model(args))
        self.batched = batched
        self.model = (stack_ensemble(models) if batched else models[0]).to(device)

    def elbo(self, x: torch.Tensor, kl_scale: float = 1.0):
        """(training objective, ELBO, recon, KL), each (E, B)."""
        elbo, recon, kl = self.model.elbo(x)
        if not self.batched:
            elbo, recon, kl = elbo.unsqueeze(0), recon.unsqueeze(0), kl.unsqueeze(0)
        return recon - kl_scale * kl, elbo, recon, kl

    def member_state(self, e: int) -> dict:
        """A state dict of member e in the plain model's layout (a copy)."""
        from hvae_ext.models.vae import ensemble_member

        plain = ensemble_member(self.model, e) if self.batched else self.model
        return copy.deepcopy(plain.state_dict())


@torch.no_grad()
def _member_elbos(members: _Members, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Mean (ELBO, recon, KL) of each member over x: (E, 3), float64, one posterior sample per image."""
    members.model.eval()
    sums = 0
    for i in range(0, len(x), batch_size):
        _, elbo, recon, kl = members.elbo(x[i : i + batch_size])
        sums = sums + torch.stack([elbo.sum(-1), recon.sum(-1), kl.sum(-1)], dim=-1).double().cpu()
    return sums / len(x)


def _new_history(model: str) -> dict:
    keys = [
        "epoch",
        "train_elbo",
        "train_recon",
        "train_kl",
        "kl_weight",
        "val_elbo",
        "val_recon",
        "val_kl",
        "epoch_time_s",
        "val_time_s",
    ]
    if model == "s-vae":
        keys.append("val_kappa_median")
    return {k: [] for k in keys}


def _checkpoint_path(args, seeds: list[int]) -> Path | None:
    if not args.checkpoint_dir:
        return None
    stem = run_file_name(args.model, args.latent_dim, seeds[0], args.tag, args.spheres, posterior_of(args))
    return Path(args.checkpoint_dir) / f"{stem}_seeds{'-'.join(map(str, seeds))}.pt"


def _binarized_batch(x_train, perms, i, batch_size, gen):
    """Rows i .. i + batch_size of each member's permutation, dynamically binarized: (E, B, 784), one uniform
    draw for all members. x_j ~ Bernoulli(intensity_j) as uniform < intensity (the same law, a third of
    torch.bernoulli's CPU time)."""
    grey = x_train[perms[:, i : i + batch_size]]
    return (torch.rand(grey.shape, generator=gen, device=grey.device, dtype=grey.dtype) < grey).to(grey.dtype)


def _train_group(
    members: _Members, seeds: list[int], data: dict, args, device: torch.device, progress: bool
) -> list[dict]:
    """Trains the members of one call epoch by epoch (training, validation, early stopping per member,
    a checkpoint per epoch with ``--checkpoint-dir``); returns each member's history and best state."""
    from tqdm.auto import tqdm

    E, model = len(seeds), members.model
    # fused Adam (one kernel over all parameters): element-wise, so stacked members stay independent
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, fused=device.type in ("cpu", "cuda"))
    # member e's data order from its own seed; the binarization noise of all members from one stream (one
    # draw per step): a single run's own generator, for stacked members one seeded by the first seed
    gens = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    noise = gens[0] if E == 1 else torch.Generator(device=device).manual_seed(seeds[0] + 7_919)
    streams = gens if E == 1 else gens + [noise]
    n = len(data["train"])
    steps_per_epoch = math.ceil(n / args.batch_size)
    state = {
        "epoch": 0,
        "step": 0,
        "train_time_s": 0.0,
        "history": [_new_history(args.model) for _ in range(E)],
        "best": [{"val_elbo": -math.inf, "epoch": 0, "state": None} for _ in range(E)],
        "stopped": [None] * E,
    }
    ckpt = _checkpoint_path(args, seeds)
    if args.resume and ckpt is not None and ckpt.is_file():
        state = _load_checkpoint(ckpt, model, opt, streams, device)
    budget_s = args.time_budget * 60.0
    bar = tqdm(
        range(state["epoch"] + 1, args.epochs + 1),
        leave=False,
        disable=not progress,
        dynamic_ncols=True,
        desc=f"MNIST {args.model} d={args.latent_dim} seeds {','.join(map(str, seeds))}",
    )
    for epoch in bar:
        if all(s is not None for s in state["stopped"]):
            break
        if budget_s and state["train_time_s"] >= budget_s:
            state["stopped"] = [s or f"time budget: {args.time_budget:g} min of training" for s in state["stopped"]]
            break
        synchronize(device)
        t0 = time.perf_counter()
        sums, weight_sum = _train_epoch(members, opt, data["train"], gens, noise, state, steps_per_epoch, args)
        synchronize(device)
        t1 = time.perf_counter()
        val, kappa_medians = _validate(members, data["val"], args.model, E)
        t2 = time.perf_counter()
        state["train_time_s"] += t1 - t0
        state["epoch"] = epoch
        tr = (sums / n).cpu().tolist()
        for e in range(E):
            if state["stopped"][e] is None:
                _record_epoch(
                    state,
                    e,
                    epoch,
                    tr[e],
                    val[e].tolist(),
                    weight_sum / n,
                    (t1 - t0, t2 - t1),
                    kappa_medians[e] if kappa_medians else None,
                    members,
                    args,
                    seeds[e],
                )
        b = state["best"]
        bar.set_postfix(best=" ".join(f"{b[e]['val_elbo']:.2f}@{b[e]['epoch']}" for e in range(E)))
        if ckpt is not None:
            _save_checkpoint(ckpt, model, opt, state, streams, device)
    bar.close()
    return [
        {
            "history": state["history"][e],
            "best_epoch": state["best"][e]["epoch"],
            "best_val_elbo": state["best"][e]["val_elbo"],
            "best_state": state["best"][e]["state"],
            "epochs_run": len(state["history"][e]["epoch"]),
            "stopped": state["stopped"][e] or "max epochs",
            "train_time_s": state["train_time_s"],
            "steps_per_epoch": steps_per_epoch,
        }
        for e in range(E)
    ]


def _train_epoch(
    members: _Members, opt, x_train, gens, noise, state: dict, steps_per_epoch: int, args
) -> tuple[torch.Tensor, float]:
    """One pass over each member's own permutation of the training images; returns the sums of (ELBO,
    recon, KL) per member, (E, 3) on the device (no host sync per step), and the sum of the KL weights."""
    E, n, device = len(gens), len(x_train), x_train.device
    members.model.train()
    perms = torch.stack([torch.randperm(n, generator=g, device=device) for g in gens])  # (E, n)
    sums = torch.zeros(E, 3, dtype=torch.float64, device=device)
    weight_sum = 0.0
    for i in range(0, n, args.batch_size):
        beta = kl_weight(state["step"], steps_per_epoch, args.warmup_epochs)
        xb = _binarized_batch(x_train, perms, i, args.batch_size, noise)
        elbo, recon, kl = vae_train_step(members, opt, xb, beta)
        sums += torch.stack([elbo.sum(-1), recon.sum(-1), kl.sum(-1)], dim=-1).detach().double()
        weight_sum += beta * xb.shape[1]
        state["step"] += 1
    return sums, weight_sum


def _validate(members: _Members, x_val: torch.Tensor, model_name: str, E: int):
    """Each member's mean (ELBO, recon, KL) on the validation images, (E, 3), and for the S-VAE the median
    posterior concentration of each member on the first 1000 of them (over all factors of a product)."""
    val = _member_elbos(members, x_val)
    if model_name != "s-vae":
        return val, None
    with torch.no_grad():
        q = members.model.posterior(x_val[:1000])
        kappa = q.base_dist.concentration if isinstance(q, torch.distributions.Independent) else q.concentration
    return val, kappa.reshape(E, -1).median(-1).values.tolist()


def _load_checkpoint(ckpt: Path, model, opt, streams, device: torch.device) -> dict:
    """Restores the model, the optimizer and every random stream from ``ckpt``; returns the training state."""
    saved = torch.load(ckpt, map_location=device, weights_only=False)
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["optimizer"])
    for g, gs in zip(streams, saved["generators"]):
        g.set_state(gs)
    torch.set_rng_state(saved["torch_rng"])
    if saved.get("cuda_rng") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(saved["cuda_rng"], device)
    print(f"resumed {ckpt.name} at epoch {saved['state']['epoch']}", flush=True)
    return saved["state"]


def _save_checkpoint(ckpt: Path, model, opt, state: dict, streams, device: torch.device) -> None:
    """Writes (atomically) what :func:`_load_checkpoint` needs to continue after this epoch."""
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "state": state,
            "generators": [g.get_state() for g in streams],
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        },
        tmp,
    )
    os.replace(tmp, ckpt)


def _record_epoch(state, e, epoch, train, val, mean_weight, times, kappa_median, members, args, seed) -> None:
    """Appends member e's epoch to its history, keeps its best state, and decides early stopping."""
    if not all(math.isfinite(v) for v in train + [val[0]]):
        raise FloatingPointError(
            f"MNIST {args.model} d={args.latent_dim} seed {seed}: non-finite ELBO "
            f"(train {train[0]}, validation {val[0]}) at epoch {epoch}"
        )
    h = state["history"][e]
    for key, v in (
        ("epoch", epoch),
        ("train_elbo", train[0]),
        ("train_recon", train[1]),
        ("train_kl", train[2]),
        ("kl_weight", mean_weight),
        ("val_elbo", val[0]),
        ("val_recon", val[1]),
        ("val_kl", val[2]),
        ("epoch_time_s", times[0]),
        ("val_time_s", times[1]),
    ):
        h[key].append(v)
    if kappa_median is not None:
        h["val_kappa_median"].append(float(kappa_median))
    best = state["best"][e]
    if val[0] > best["val_elbo"]:
        state["best"][e] = {"val_elbo": val[0], "epoch": epoch, "state": members.member_state(e)}
    elif epoch - best["epoch"] >= args.patience:
        state["stopped"][e] = f"early stopping: no better validation ELBO for {args.patience} epochs"


def evaluate_run(trained: dict, seed: int, data: dict, args, device: torch.device):
    """Test metrics of a trained member at its best epoch; returns the run record (without configuration
    and versions) and the test latent means."""
    model = build_model(args).to(device)
    model.load_state_dict(trained["best_state"])
    model.eval()
    torch.manual_seed(10_000 + seed)
    t0 = time.perf_counter()
    test = evaluate_test(model, data["test"], args.is_samples)
    synchronize(device)
    is_time = time.perf_counter() - t0
    with torch.no_grad():
        means = torch.cat([model.latent_mean(data["test"][i : i + 1000]) for i in range(0, len(data["test"]), 1000)])
    history = trained["history"]
    epoch_times = sorted(history["epoch_time_s"])
    best_epoch, epochs_run = trained["best_epoch"], trained["epochs_run"]
    record = {
        **test,
        "best_epoch": best_epoch,
        "best_val_elbo": trained["best_val_elbo"],
        "epochs_run": epochs_run,
        "stopped": trained["stopped"],
        # still improving when it stopped: not stopped early, best epoch within the last tenth of the run
        "under_trained": (not trained["stopped"].startswith("early stopping"))
        and best_epoch > epochs_run - max(5, epochs_run // 10),
        "median_epoch_time_s": epoch_times[len(epoch_times) // 2] if epoch_times else float("nan"),
        "train_time_s": trained["train_time_s"],
        "is_time_s": is_time,
        "total_time_s": trained["train_time_s"] + is_time,
        "steps_per_epoch": trained["steps_per_epoch"],
        "num_train_images": len(data["train"]),
        "num_val_images": len(data["val"]),
        "history": history,
    }
    return record, means.cpu().numpy()


def run_file_name(
    model: str, latent_dim: int, seed: int, tag: str = "", spheres: int = 1, posterior: str = "vmf"
) -> str:
    """``mnist_MODEL_dD[_kK][_ps][_TAG]_seedS`` (``_kK`` for a product of K > 1 spheres, ``_ps`` for the Power
    Spherical posterior; ``posterior="normal"``, the N-VAE's, adds nothing)."""
    posterior = "vmf" if posterior == "normal" else posterior
    return run_stem(f"mnist_{model}", latent_dim, seed, tag, spheres, posterior)


def main(argv: list[str] | None = None) -> list[dict]:
    args, device = parse_run_args(build_parser, validate_args, argv)
    try:
        raw = load_mnist(args.data_root)
    except MNISTUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    data = prepare_data(raw, device, args.train_images, args.test_images)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    versions = library_versions()
    records = []
    m1 = args.ambient_dim // args.spheres
    ambient = (
        f"R^{args.ambient_dim}"
        if args.model == "n-vae"
        else f"S^{args.ambient_dim - 1} in R^{args.ambient_dim}"
        if args.spheres == 1
        else f"{args.spheres} factors S^{m1 - 1} in R^{args.ambient_dim}"
    )
    print(
        f"MNIST {args.model}: --latent-dim {args.latent_dim} under the {args.dim_convention} convention "
        f"-> z on {ambient}, {POSTERIOR_LABELS[posterior_of(args)]} posterior",
        flush=True,
    )
    # with --batch-seeds all seeds train together as one batched model; else one after the other, each
    # written as soon as it is evaluated
    groups = [args.seed_list] if args.batch_seeds and len(args.seed_list) > 1 else [[s] for s in args.seed_list]
    for group in groups:
        members = _Members(group, args, device, batched=len(group) > 1)
        trained = _train_group(members, group, data, args, device, progress=not args.no_progress)
        for seed, run in zip(group, trained):
            result, means = evaluate_run(run, seed, data, args, device)
            records.append(_write_run(result, means, seed, args, raw, data, versions, device, out, argv))
    return records


def _write_run(result, means, seed, args, raw, data, versions, device, out: Path, argv) -> dict:
    """Writes the run file (and, for an ambient dimension <= 3, the test latent means); returns the record."""
    config = run_config(
        args,
        ("seed_list", "hidden_widths"),
        argv,
        experiment="mnist",
        seed=seed,
        hidden=args.hidden_widths,
        data_folder=str(Path(raw["folder"]).resolve()),
        split=f"{len(raw['train_images']) - NUM_VALIDATION} train / {NUM_VALIDATION} validation "
        f"(seeded permutation {SPLIT_SEED}), test binarized with seed {TEST_BINARIZATION_SEED}",
        binarization="dynamic (train), fixed (validation, test)",
        kl_warmup="linear in the step, from 0 to 1 over warmup_epochs epochs",
        posterior=posterior_of(args),
    )
    record = {
        "config": config,
        "latent_dim": args.latent_dim,
        "ambient_dim": args.ambient_dim,
        "spheres": args.spheres,
        "posterior": posterior_of(args),
        "dim_convention": args.dim_convention,
        "versions": versions,
        "device": device_info(device),
        **result,
    }
    stem = run_file_name(args.model, args.latent_dim, seed, args.tag, args.spheres, posterior_of(args))
    if args.ambient_dim <= 3:
        npz = out / f"{stem}_latent.npz"
        tmp = out / f"{stem}_latent.tmp.npz"
        np.savez_compressed(
            tmp, means=means.astype(np.float16), labels=data["test_labels"].cpu().numpy().astype(np.uint8)
        )
        os.replace(tmp, npz)
        record["latent_means_file"] = npz.name
    path = out / f"{stem}.json"
    write_record(path, record)  # relative paths, git commit, library hash
    print(
        f"MNIST {args.model} d={args.latent_dim} (ambient {args.ambient_dim}"
        f"{', Power Spherical' if posterior_of(args) == 'power-spherical' else ''}) seed {seed}: test LL "
        f"{result['test_ll']:.2f} (IS {args.is_samples}), ELBO {result['test_elbo']:.2f} (recon "
        f"{result['test_recon']:.2f}, KL {result['test_kl']:.2f}); best val ELBO {result['best_val_elbo']:.2f} at "
        f"epoch {result['best_epoch']}/{result['epochs_run']} ({result['stopped']}); median epoch "
        f"{result['median_epoch_time_s']:.1f} s, IS {result['is_time_s']:.0f} s -> {path}",
        flush=True,
    )
    return record


if __name__ == "__main__":
    main()
