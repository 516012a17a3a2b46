"""MNIST VAE across latent dimensions, N-VAE against S-VAE (Davidson et al., 2018, Table 1).

    python -m hvae_ext.experiments.mnist --model s-vae --latent-dim 10 --seeds 0-2 \
        --data-root ../shared/data/MNIST/raw --out results/mnist/runs

Setup of the paper and its reference code: MLP encoder 784-256-128 and decoder d-128-256-784 (ReLU),
Bernoulli likelihood on dynamically binarized MNIST (a fresh binarization x ~ Bernoulli(pixel intensity)
every time an image is used for training), Adam (lr 1e-3), batch size 100. The last 10,000 of the 60,000
training images (a seeded permutation, the same for every seed) form a validation split, binarized once
(seeded); training stops when the validation ELBO has not improved for ``--patience`` epochs or after
``--epochs`` epochs, and the parameters of the best validation epoch are evaluated on the test set,
binarized once with a fixed seed (the same test set for every run). Test metrics: the importance-sampled
log-likelihood (Burda et al., 2016) with ``--is-samples`` (default 500) posterior samples per image, the
ELBO and its reconstruction and KL terms. One JSON file per run is written (atomically) to ``--out``,
plus, for d <= 3, a ``.npz`` with the test set's latent means and labels (for the report's pictures).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .common import device_info, finalize_record, parse_seeds, synchronize
from .mnist_data import ENV_VAR, MNISTUnavailableError, load_mnist

MODELS = ("n-vae", "s-vae")
NUM_VALIDATION = 10_000
SPLIT_SEED = 20180000  # permutation of the training images into train / validation (fixed)
VAL_BINARIZATION_SEED = 20180001
TEST_BINARIZATION_SEED = 20180002


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hvae_ext.experiments.mnist",
                                description="MLP VAE on binarized MNIST: N-VAE (Gaussian) vs S-VAE (vMF).")
    p.add_argument("--model", required=True, help=f"one of {', '.join(MODELS)}")
    p.add_argument("--latent-dim", type=int, required=True,
                   help="latent dimension d (for s-vae the ambient dimension of S^(d-1), d >= 2)")
    p.add_argument("--seeds", default="0", help="e.g. 0-2 or 0,1,2")
    p.add_argument("--data-root", default=None,
                   help=f"folder with the MNIST idx files (DIR, DIR/raw or DIR/MNIST/raw holding "
                        f"train-images-idx3-ubyte.gz, ...); default: ${ENV_VAR}")
    p.add_argument("--out", default="results/mnist/runs", help="folder for the JSON files")
    p.add_argument("--epochs", type=int, default=1000, help="maximum number of epochs")
    p.add_argument("--patience", type=int, default=10,
                   help="stop after this many epochs without a better validation ELBO")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", default="256,128", help="encoder widths (the decoder uses them reversed)")
    p.add_argument("--kappa-floor", type=float, default=1.0, help="s-vae: kappa = softplus(.) + floor")
    p.add_argument("--is-samples", type=int, default=500, help="importance samples per test image")
    p.add_argument("--test-images", type=int, default=0, help="evaluate on the first N test images (0: all)")
    p.add_argument("--train-images", type=int, default=0,
                   help="train on the first N images of the training split (0: all 50,000; for quick checks)")
    p.add_argument("--tag", default="", help="label for exploratory runs (kept apart in the report)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: leave as is)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return p


def validate_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    args.model = args.model.strip().lower()
    if args.model not in MODELS:
        p.error(f"unknown model {args.model!r}; choose one of {', '.join(MODELS)}")
    if args.latent_dim < 1:
        p.error(f"--latent-dim must be >= 1, got {args.latent_dim}")
    if args.model == "s-vae" and args.latent_dim < 2:
        p.error(f"--latent-dim must be >= 2 for s-vae (the sphere S^(d-1) lives in R^d), got {args.latent_dim}")
    if args.epochs < 1:
        p.error(f"--epochs must be a positive integer, got {args.epochs}")
    if args.patience < 1:
        p.error(f"--patience must be a positive integer, got {args.patience}")
    if args.batch_size < 1:
        p.error(f"--batch-size must be a positive integer, got {args.batch_size}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        p.error(f"--lr must be positive, got {args.lr}")
    if not args.kappa_floor >= 0:
        p.error(f"--kappa-floor must be >= 0, got {args.kappa_floor}")
    if args.is_samples < 1:
        p.error(f"--is-samples must be a positive integer, got {args.is_samples}")
    if args.test_images < 0 or args.train_images < 0:
        p.error("--test-images and --train-images must be >= 0 (0: all)")
    if args.threads < 0:
        p.error(f"--threads must be >= 0, got {args.threads}")
    try:
        args.hidden_widths = [int(h) for h in args.hidden.split(",") if h.strip()]
    except ValueError:
        p.error(f"--hidden must be a comma list of positive integers, got {args.hidden!r}")
    if not args.hidden_widths or min(args.hidden_widths) < 1:
        p.error(f"--hidden must be a comma list of positive integers, got {args.hidden!r}")
    try:
        args.seed_list = parse_seeds(args.seeds)
    except ValueError as exc:
        p.error(f"--seeds: {exc}")
    if args.data_root is None and not os.environ.get(ENV_VAR):
        p.error(f"--data-root is required (a folder holding the MNIST idx files "
                f"train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
                f"t10k-labels-idx1-ubyte.gz, directly or in MNIST/raw), or set ${ENV_VAR}")
    if args.data_root is not None and not Path(args.data_root).expanduser().is_dir():
        p.error(f"--data-root {args.data_root} is not a folder: pass the folder holding the MNIST idx files "
                f"(train-images-idx3-ubyte.gz, ...), directly or in MNIST/raw")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"


def library_versions() -> dict:
    import hvae_ext

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "hvae_ext": hvae_ext.__version__, "hvae_ext_file": hvae_ext.__file__,
            "hvae_ext_library": _loaded_library()}


def _loaded_library() -> dict | None:
    """Path, modification time and sha256 of the compiled library that was loaded (it may be rebuilt
    between runs)."""
    import hashlib

    try:
        for lib in torch.ops.loaded_libraries:
            if "hvae_ext" in lib:
                data = Path(lib).read_bytes()
                return {"path": lib, "sha256": hashlib.sha256(data).hexdigest(),
                        "mtime_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.path.getmtime(lib)))}
    except Exception:  # pragma: no cover
        pass
    try:
        from .. import _C  # installed package

        return {"path": _C.__file__}
    except ImportError:  # pragma: no cover
        return None




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
    return {"train": images[train_idx].to(device), "train_labels": labels[train_idx].to(device),
            "val": val.to(device), "test": test.to(device), "test_labels": test_labels.to(device)}


def build_model(args):
    from ..models.vae import NVAE, SVAE

    if args.model == "n-vae":
        return NVAE(args.latent_dim, hidden=args.hidden_widths)
    return SVAE(args.latent_dim, hidden=args.hidden_widths, kappa_floor=args.kappa_floor)


@torch.no_grad()
def evaluate_elbo(model, x: torch.Tensor, batch_size: int = 1000) -> dict:
    """Mean ELBO, reconstruction and KL over x (one posterior sample per image)."""
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64)
    for i in range(0, len(x), batch_size):
        elbo, recon, kl = model.elbo(x[i:i + batch_size])
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
        out = model.log_likelihood(x[i:i + batch_size], num_samples)
        for k in keys:
            per_image[k].append(out[k].double().cpu())
    cat = {k: torch.cat(v) for k, v in per_image.items()}
    ll = cat["log_likelihood"]
    bad = int((~torch.isfinite(ll)).sum())
    if bad:
        print(f"warning: the log-likelihood estimate is not finite for {bad} test images", file=sys.stderr)
    return {"nonfinite_test_images": bad, "test_ll": float(ll.mean()), "test_ll_sem": float(ll.std() / math.sqrt(len(ll))),
            "test_elbo": float(cat["elbo"].mean()), "test_recon": float(cat["recon"].mean()),
            "test_kl": float(cat["kl"].mean()), "test_elbo_mc": float(cat["elbo_mc"].mean()),
            "num_test_images": len(ll), "is_samples": num_samples}




def train_run(seed: int, data: dict, args, device: torch.device, progress: bool = True) -> dict:
    """Trains one model with early stopping on the validation ELBO; returns the run record (without
    configuration and versions) and the test latent means."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    model = build_model(args).to(device)
    # fused Adam (one kernel over all parameters; CPU and CUDA since torch 2.4): a fifth of the CPU step time
    # of the per-parameter loop at this model size, same update up to rounding
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, fused=device.type in ("cpu", "cuda"))
    gen = torch.Generator(device=device).manual_seed(seed)
    x_train = data["train"]
    n = len(x_train)
    history = {"epoch": [], "train_elbo": [], "train_recon": [], "train_kl": [], "val_elbo": [],
               "val_recon": [], "val_kl": [], "epoch_time_s": [], "val_time_s": []}
    if args.model == "s-vae":
        history["val_kappa_median"] = []
    best = {"val_elbo": -math.inf, "epoch": 0, "state": None}
    bar = tqdm(range(1, args.epochs + 1), desc=f"MNIST {args.model} d={args.latent_dim} seed {seed}",
               leave=False, disable=not progress, dynamic_ncols=True)
    t_run = time.perf_counter()
    stopped = "max epochs"
    for epoch in bar:
        synchronize(device)
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen, device=device)
        sums = torch.zeros(3, dtype=torch.float64)
        for i in range(0, n, args.batch_size):
            # dynamic binarization, x_j ~ Bernoulli(intensity_j): uniform < intensity is the same law and a
            # third of torch.bernoulli's time on CPU
            grey = x_train[perm[i:i + args.batch_size]]
            xb = (torch.rand(grey.shape, generator=gen, device=device, dtype=grey.dtype) < grey).to(grey.dtype)
            elbo, recon, kl = model.elbo(xb)
            loss = -elbo.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums += torch.stack([elbo.sum(), recon.sum(), kl.sum()]).detach().double().cpu()
        synchronize(device)
        t1 = time.perf_counter()
        val = evaluate_elbo(model, data["val"])
        t2 = time.perf_counter()
        tr = (sums / n).tolist()
        if not all(math.isfinite(v) for v in tr + [val["elbo"]]):
            raise FloatingPointError(f"MNIST {args.model} d={args.latent_dim} seed {seed}: non-finite ELBO "
                                     f"(train {tr[0]}, validation {val['elbo']}) at epoch {epoch}")
        for key, v in (("epoch", epoch), ("train_elbo", tr[0]), ("train_recon", tr[1]), ("train_kl", tr[2]),
                       ("val_elbo", val["elbo"]), ("val_recon", val["recon"]), ("val_kl", val["kl"]),
                       ("epoch_time_s", t1 - t0), ("val_time_s", t2 - t1)):
            history[key].append(v)
        if args.model == "s-vae":
            with torch.no_grad():
                kappa = model.posterior(data["val"][:1000]).concentration
            history["val_kappa_median"].append(float(kappa.median()))
        if val["elbo"] > best["val_elbo"]:
            best = {"val_elbo": val["elbo"], "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
        bar.set_postfix(train=f"{tr[0]:.2f}", val=f"{val['elbo']:.2f}", best=f"{best['val_elbo']:.2f}@{best['epoch']}")
        if epoch - best["epoch"] >= args.patience:
            stopped = f"early stopping: no better validation ELBO for {args.patience} epochs"
            break
    bar.close()
    train_time = time.perf_counter() - t_run
    model.load_state_dict(best["state"])
    model.eval()
    torch.manual_seed(10_000 + seed)
    t0 = time.perf_counter()
    test = evaluate_test(model, data["test"], args.is_samples)
    synchronize(device)
    is_time = time.perf_counter() - t0
    with torch.no_grad():
        means = torch.cat([model.latent_mean(data["test"][i:i + 1000]) for i in range(0, len(data["test"]), 1000)])
    epoch_times = sorted(history["epoch_time_s"])
    record = {**test, "best_epoch": best["epoch"], "best_val_elbo": best["val_elbo"],
              "epochs_run": len(history["epoch"]), "stopped": stopped,
              "median_epoch_time_s": epoch_times[len(epoch_times) // 2], "train_time_s": train_time,
              "is_time_s": is_time, "total_time_s": train_time + is_time,
              "num_train_images": n, "num_val_images": len(data["val"]), "history": history}
    return record, means.cpu().numpy()


def run_file_name(model: str, latent_dim: int, seed: int, tag: str = "") -> str:
    tag_part = f"_{tag}" if tag else ""
    return f"mnist_{model}_d{latent_dim}{tag_part}_seed{seed}"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate_args(parser, args)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
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
    for seed in args.seed_list:
        result, means = train_run(seed, data, args, device, progress=not args.no_progress)
        config = {k: v for k, v in vars(args).items() if k not in ("seed_list", "hidden_widths")}
        config.update(experiment="mnist", seed=seed, hidden=args.hidden_widths, data_folder=str(raw["folder"]),
                      split=f"{len(raw['train_images']) - NUM_VALIDATION} train / {NUM_VALIDATION} validation "
                            f"(seeded permutation {SPLIT_SEED}), test binarized with seed {TEST_BINARIZATION_SEED}",
                      binarization="dynamic (train), fixed (validation, test)",
                      argv=sys.argv if argv is None else argv)
        record = {"config": config, "versions": versions, "device": device_info(device), **result}
        stem = run_file_name(args.model, args.latent_dim, seed, args.tag)
        if args.latent_dim <= 3:
            npz = out / f"{stem}_latent.npz"
            tmp = out / f"{stem}_latent.tmp.npz"
            np.savez_compressed(tmp, means=means.astype(np.float16),
                                labels=data["test_labels"].cpu().numpy().astype(np.uint8))
            os.replace(tmp, npz)
            record["latent_means_file"] = npz.name
        path = out / f"{stem}.json"
        _write_atomic(path, json.dumps(finalize_record(record), indent=1))  # relative paths, commit, library hash
        records.append(record)
        print(f"MNIST {args.model} d={args.latent_dim} seed {seed}: test LL {result['test_ll']:.2f} "
              f"(IS {args.is_samples}), ELBO {result['test_elbo']:.2f} (recon {result['test_recon']:.2f}, "
              f"KL {result['test_kl']:.2f}); best val ELBO {result['best_val_elbo']:.2f} at epoch "
              f"{result['best_epoch']}/{result['epochs_run']}; median epoch {result['median_epoch_time_s']:.1f} s, "
              f"IS {result['is_time_s']:.0f} s -> {path}", flush=True)
    return records


if __name__ == "__main__":
    main()
