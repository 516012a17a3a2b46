"""Planetoid datasets for the link-prediction experiment, online or from offline raw files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

DATASETS = ("Cora", "CiteSeer", "PubMed")
_RAW_SUFFIXES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


class DatasetUnavailableError(RuntimeError):
    """The dataset is neither on disk nor downloadable."""


def default_data_root() -> Path:
    """``$HVAE_EXT_DATA`` (the data folder), else the cache folder (:func:`default_cache_root`)."""
    if os.environ.get("HVAE_EXT_DATA"):
        return Path(os.environ["HVAE_EXT_DATA"]).expanduser()
    return default_cache_root()


def default_cache_root() -> Path:
    """``$XDG_CACHE_HOME/hvae_ext/planetoid`` (``~/.cache/hvae_ext/planetoid``): the folder Planetoid writes
    into (raw copies, ``processed/``, downloads)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "hvae_ext" / "planetoid"


def raw_file_names(name: str) -> list[str]:
    return [f"ind.{name.lower()}.{suffix}" for suffix in _RAW_SUFFIXES]


def find_raw_dir(root: Path, name: str) -> Path | None:
    """A folder holding all raw Planetoid files of ``name`` under ``root`` (``root/name/raw``,
    ``root/planetoid/name/raw``, ``root/raw`` or ``root`` itself), or None."""
    files = raw_file_names(name)
    candidates = [
        root / name / "raw",
        root / "planetoid" / name / "raw",
        root / "raw",
        root,
        root / name.lower() / "raw",
        root / "planetoid" / name.lower() / "raw",
    ]
    for folder in candidates:
        if folder.is_dir() and all((folder / f).is_file() for f in files):
            return folder
    return None


def prepare_root(
    name: str, data_root: str | os.PathLike | None, cache_root: str | os.PathLike | None = None, download: bool = True
) -> Path:
    """Returns the cache folder to give Planetoid (``cache/name/raw`` present, or to be downloaded into).

    The data folder is only read: raw files found under ``data_root`` (or already in the cache) are copied to
    ``cache_root/name/raw`` (Planetoid writes ``processed/`` beside ``raw/``), so a read-only or shared data
    folder never receives ``processed/`` files. ``cache_root`` defaults to :func:`default_cache_root`.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    cache = Path(cache_root).expanduser() if cache_root is not None else default_cache_root()
    target = cache / name / "raw"
    raw = find_raw_dir(root, name) or find_raw_dir(cache, name)
    if raw is not None:
        if raw.resolve() != target.resolve():
            target.mkdir(parents=True, exist_ok=True)
            for f in raw_file_names(name):
                dst = target / f
                if not dst.is_file() or dst.stat().st_size != (raw / f).stat().st_size:
                    shutil.copyfile(raw / f, dst)
        return cache
    if not download:
        raise DatasetUnavailableError(_missing_message(name, root))
    return cache


def _missing_message(name: str, root: Path, cause: BaseException | None = None) -> str:
    why = f" (download failed: {type(cause).__name__}: {cause})" if cause is not None else ""
    return (
        f"dataset {name} not found under {root}{why}. Pass --data-root DIR where DIR/{name}/raw/ (or "
        f"DIR/planetoid/{name}/raw/) holds the Planetoid raw files {', '.join(raw_file_names(name))}, "
        f"or run once with network access to download them into the default cache {default_data_root()}."
    )


def load_planetoid(name: str, data_root=None, cache_root=None, download: bool = True, transform=None):
    """``torch_geometric.datasets.Planetoid(root, name, transform=transform)`` with offline support."""
    from torch_geometric.datasets import Planetoid

    root = prepare_root(name, data_root, cache_root, download=download)
    try:
        root.mkdir(parents=True, exist_ok=True)
        return Planetoid(str(root), name, transform=transform)
    except Exception as exc:  # network errors, partial downloads, unwritable roots
        if find_raw_dir(root, name) is None:
            raise DatasetUnavailableError(_missing_message(name, root, exc)) from exc
        raise
