"""Pieces shared by the experiment commands (link prediction, MNIST): their common arguments (``--seeds``,
``--out``, ``--device``, ...), the run record (configuration, versions, device, provenance without paths of
the machine) and its writing, and the device synchronization that makes wall-clock timings honest on CUDA."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from pathlib import Path

import torch

from hvae_ext.models._latent import POSTERIORS


def add_common_arguments(p: argparse.ArgumentParser, *, out: str, threads: int, tag_help: str) -> None:
    """``--out``, ``--tag``, ``--device``, ``--threads`` and ``--no-progress`` (``--seeds`` and ``--lr`` are
    added by each command where it fits its help)."""
    p.add_argument("--out", default=out, help="folder for the JSON files")
    p.add_argument("--tag", default="", help=tag_help)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=threads, help="torch.set_num_threads (0: leave as is)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def validate_common(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Checks ``--lr`` and ``--threads``, parses ``--seeds`` into ``args.seed_list`` and resolves
    ``--device auto``; errors name the argument (``p.error``: exit status 2)."""
    if not (args.lr > 0 and math.isfinite(args.lr)):
        p.error(f"--lr must be positive, got {args.lr}")
    if args.threads < 0:
        p.error(f"--threads must be >= 0, got {args.threads}")
    try:
        args.seed_list = parse_seeds(args.seeds)
    except ValueError as exc:
        p.error(f"--seeds: {exc}")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"


def parse_run_args(build_parser, validate_args, argv: list[str] | None) -> tuple[argparse.Namespace, torch.device]:
    """A command's arguments, parsed and checked (``validate_args(parser, args)``), with ``--threads``
    applied; returns them and the run's device."""
    parser = build_parser()
    args = parser.parse_args(argv)
    validate_args(parser, args)
    return args, set_threads(args)


#: The posterior families a command's ``--posterior`` takes: the models' names (the first, vmf, is the default).
POSTERIOR_CHOICES = tuple(POSTERIORS)
#: The part a posterior family adds to a run file's name (none for the default, von Mises-Fisher).
POSTERIOR_PARTS = {"vmf": "", "power-spherical": "ps"}
#: The posterior families as printed (the Gaussian is the posterior of the N-VAE and N-VGAE).
POSTERIOR_LABELS = {"vmf": "von Mises-Fisher", "power-spherical": "Power Spherical", "normal": "Gaussian"}


def run_stem(prefix: str, latent_dim: int, seed: int, tag: str = "", spheres: int = 1, posterior: str = "vmf") -> str:
    """The name of a run file without its suffix: ``PREFIX_dD[_kK][_ps][_TAG]_seedS`` (``_kK`` for a product of
    K > 1 spheres, ``_ps`` for the Power Spherical posterior; a von Mises-Fisher run has no posterior part)."""
    if posterior not in POSTERIOR_PARTS:
        raise ValueError(f"posterior must be one of {', '.join(POSTERIOR_PARTS)}, got {posterior!r}")
    tag_part = f"_{tag}" if tag else ""
    k_part = f"_k{spheres}" if spheres != 1 else ""
    ps_part = f"_{POSTERIOR_PARTS[posterior]}" if POSTERIOR_PARTS[posterior] else ""
    return f"{prefix}_d{latent_dim}{k_part}{ps_part}{tag_part}_seed{seed}"


def add_posterior_argument(p: argparse.ArgumentParser, model: str) -> None:
    """``--posterior {vmf,power-spherical}`` (default vmf): the posterior family of the spherical model
    ``model`` (s-vae or s-vgae)."""
    p.add_argument(
        "--posterior",
        default=POSTERIOR_CHOICES[0],
        choices=POSTERIOR_CHOICES,
        help=f"{model}: the posterior family, vmf (von Mises-Fisher, default) or power-spherical (Power "
        f"Spherical, De Cao and Aziz, 2020; same mean direction and concentration heads, same uniform prior)",
    )


def validate_latent_layout(
    p: argparse.ArgumentParser, args: argparse.Namespace, models: list[str], spherical: str
) -> None:
    """Checks ``--latent-dim``, ``--spheres`` and ``--posterior`` for a run of ``models``, where ``spherical``
    (s-vae, s-vgae) is the one model with a spherical latent: ``--latent-dim >= 1`` (>= 2 for the sphere under
    ``--dim-convention ambient``), ``--spheres`` a positive divisor of ``--latent-dim`` with factors of at least
    two coordinates, and ``--spheres``/``--posterior`` only where every model is the spherical one. Errors name
    the argument (``p.error``: exit status 2)."""
    ambient = args.dim_convention == "ambient"
    if args.latent_dim < 1:
        p.error(f"--latent-dim must be >= 1, got {args.latent_dim}")
    if spherical in models and ambient and args.latent_dim < 2:
        p.error(
            f"--latent-dim must be >= 2 for {spherical} with --dim-convention ambient (the sphere S^(d-1) lives in "
            f"R^d), got {args.latent_dim}"
        )
    if args.spheres < 1:
        p.error(f"--spheres must be a positive integer, got {args.spheres}")
    others = ", ".join(m for m in models if m != spherical)
    if args.spheres != 1 and others:
        p.error(
            f"--spheres applies to {spherical} only (a product of spheres), got --spheres {args.spheres} for {others}"
        )
    if args.posterior != POSTERIOR_CHOICES[0] and others:
        p.error(
            f"--posterior {args.posterior} applies to {spherical} only (the family of the spherical posterior), got "
            f"--posterior {args.posterior} for {others}"
        )
    if args.spheres > 1 and args.latent_dim % args.spheres:
        p.error(
            f"--spheres {args.spheres} must divide --latent-dim {args.latent_dim} (equal factors: "
            f"{'z of size k (m + 1)' if ambient else 'd = k m degrees of freedom'})"
        )
    if args.spheres > 1 and ambient and args.latent_dim // args.spheres < 2:
        p.error(
            f"--latent-dim / --spheres must be >= 2 with --dim-convention ambient (each factor S^m lives in "
            f"R^(m+1)), got {args.latent_dim} / {args.spheres}"
        )


def set_threads(args: argparse.Namespace) -> torch.device:
    """Applies ``--threads`` (0: torch's default) and returns the run's device."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    return torch.device(args.device)


def run_config(args: argparse.Namespace, drop: tuple[str, ...], argv: list[str] | None, **extra) -> dict:
    """The ``config`` of a run record: the parsed arguments without the derived ones in ``drop``, ``extra``
    and the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    config = {k: v for k, v in vars(args).items() if k not in drop}
    config.update(extra)
    config["argv"] = list(sys.argv[1:] if argv is None else argv)
    return config


def write_record(path: Path, record: dict) -> None:
    """Writes the run record atomically as JSON, with :func:`finalize_record`'s provenance and portable
    paths."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(finalize_record(record), indent=1))
    os.replace(tmp, path)


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"0,3,5"``, ``"2"`` or combinations such as ``"0-2,7"``."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            lo, hi = part.split("-", 1)
            lo_i, hi_i = int(lo), int(hi)
            if lo_i < 0 or hi_i < lo_i:
                raise ValueError(f"bad seed range {part!r}")
            seeds.extend(range(lo_i, hi_i + 1))
        else:
            s = int(part)
            if s < 0:
                raise ValueError(f"seeds must be >= 0, got {s}")
            seeds.append(s)
    if not seeds:
        raise ValueError("no seeds given")
    return seeds


def device_info(device: torch.device) -> dict:
    """What a run file records about where it ran."""
    info = {
        "device": str(device),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows: the machine that timings
    name."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def synchronize(device: torch.device) -> None:
    """Waits for the device's queued kernels, so that a timer read afterwards covers them (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- what a run file records about its provenance, without paths of the machine it ran on -----------------

_REPO_MARKERS = ("hvae_ext", "experiments", "results", "benchmarks", "tests", "docs", "scripts", "csrc")
_ABS_PATH = None  # compiled lazily (re)


def repo_root() -> str:
    """The source tree these experiments run from (the folder holding ``experiments/`` and ``hvae_ext/``)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def portable_path(path: str, root: str | None = None) -> str:
    """An absolute path as it may be committed: relative to the repository when it lies in it (``root``);
    ``<folder>/hvae_ext/...`` for a path into another checkout or an installed package (the folder above the
    first of hvae_ext/, experiments/results/, benchmarks/, ..., e.g. ``<site-packages>/hvae_ext/_C.so``), ``<data>/...`` for a
    path under a folder named ``data`` (the data root: MNIST, Planetoid), else ``<external>/`` + its last
    component. Relative paths are returned unchanged."""
    if not os.path.isabs(path):
        return path
    root = repo_root() if root is None else root
    norm = os.path.normpath(path)
    if norm == root or norm.startswith(root + os.sep):
        return os.path.relpath(norm, root)
    parts = norm.split(os.sep)
    for i, part in enumerate(parts):
        if part in _REPO_MARKERS and i > 1:
            return "/".join([f"<{parts[i - 1]}>"] + parts[i:])
    if "data" in parts[:-1] or parts[-1] == "data":
        i = len(parts) - 1 - parts[::-1].index("data")
        return "/".join(["<data>"] + parts[i + 1 :])
    return "<external>/" + parts[-1]


def portable(obj, root: str | None = None):
    """``obj`` (a run record: dicts, lists, strings, numbers) with every absolute path in its strings, also
    inside longer strings such as ``--data-root=/x/y``, replaced by :func:`portable_path`."""
    import re

    global _ABS_PATH
    if _ABS_PATH is None:
        # an absolute path of at least two components whose first starts with a letter (any top-level folder:
        # a CI checkout may live under /check or /builds), not preceded by a word character, a dot, a bracket,
        # a slash or a colon (so not "75/s", "(d-1)/2" or "https://host/x")
        _ABS_PATH = re.compile(r"(?<![\w.<>/:)\]-])/[A-Za-z_][\w.+~-]*(?:/[\w.+~-]+)+/?")
    if isinstance(obj, dict):
        return {k: portable(v, root) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v, root) for v in obj]
    if isinstance(obj, str) and "/" in obj:
        return _ABS_PATH.sub(lambda m: portable_path(m.group(0), root), obj)
    return obj


def git_commit(root: str | None = None) -> dict:
    """The commit of the source tree and whether it had uncommitted changes (None where git is unavailable)."""
    import subprocess

    root = repo_root() if root is None else root
    try:
        commit = subprocess.run(
            ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = (
            subprocess.run(
                ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
            != ""
        )
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def loaded_library() -> str | None:
    """The file of the compiled hvae_ext library loaded in this process (None if it cannot be told)."""
    from hvae_ext._ops import ops  # noqa: F401  (loads the library)

    libs = sorted(p for p in getattr(torch.ops, "loaded_libraries", ()) if "hvae_ext" in p)
    if not libs and getattr(sys.modules.get("hvae_ext._C"), "__file__", None):
        libs = [sys.modules["hvae_ext._C"].__file__]  # the installed package's extension module
    return libs[0] if libs else None


def library_sha256() -> str | None:
    """sha256 of the compiled hvae_ext library that is loaded in this process."""
    import hashlib

    lib = loaded_library()
    if lib is None:
        return None
    with open(lib, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def library_versions(*extra: str) -> dict:
    """The ``versions`` of a run record: Python, torch, numpy, hvae_ext (its package and compiled library
    files; made portable when written) and the modules named in ``extra`` (e.g. ``"torch_geometric"``)."""
    import importlib

    import numpy

    import hvae_ext

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "hvae_ext": hvae_ext.__version__,
        "hvae_ext_file": hvae_ext.__file__,
        "hvae_ext_library": loaded_library(),
    }
    for name in extra:
        versions[name] = importlib.import_module(name).__version__
    return versions


def finalize_record(record: dict) -> dict:
    """The run record as written: the source tree's git commit and the compiled library's hash added under
    ``provenance``, and every absolute path made portable (:func:`portable`)."""
    out = dict(record)
    out["provenance"] = {"git": git_commit(), "library_sha256": library_sha256()}
    return portable(out)
