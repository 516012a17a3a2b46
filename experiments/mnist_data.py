"""MNIST from the original idx files (LeCun et al., 1998), read with numpy and gzip: no download.

The four files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (gzipped or not) are looked for in
``DIR``, ``DIR/raw``, ``DIR/MNIST/raw`` and ``DIR/mnist/raw``, where ``DIR`` is the ``--data-root`` of the
experiment (or ``$HVAE_EXT_MNIST`` when it is not given). The idx format: a big-endian magic number
``0x0000TTNN`` (TT = 0x08 for unsigned bytes, NN = number of dimensions), NN big-endian int32 sizes, then
the data in C order.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
ENV_VAR = "HVAE_EXT_MNIST"


class MNISTUnavailableError(RuntimeError):
    """The MNIST idx files are not where they were looked for."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one idx file (``.gz`` or plain) into a numpy array of its dtype and shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an idx file (bad magic number {data[:4].hex()})")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    code, ndim = data[2], data[3]
    if code not in dtypes:
        raise ValueError(f"{path}: unknown idx data type 0x{code:02x}")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(dtypes[code])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - offset != expected:
        raise ValueError(
            f"{path}: header says shape {shape} ({expected} bytes) but the file has {len(data) - offset} bytes of data"
        )
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _candidates(root: Path) -> list[Path]:
    return [root, root / "raw", root / "MNIST" / "raw", root / "mnist" / "raw", root / "MNIST", root / "mnist"]


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def find_mnist_dir(root: str | os.PathLike | None) -> Path:
    """The folder holding all four idx files under ``root`` (or ``$HVAE_EXT_MNIST``); a clear error if none."""
    if root is None:
        root = os.environ.get(ENV_VAR)
        if not root:
            raise MNISTUnavailableError(
                f"no MNIST folder given: pass --data-root DIR, where DIR (or DIR/MNIST/raw) holds "
                f"{', '.join(s + '.gz' for s in FILES.values())} (or set ${ENV_VAR}); nothing is downloaded"
            )
    root = Path(root).expanduser()
    for folder in _candidates(root):
        if all(_find_file(folder, stem) is not None for stem in FILES.values()):
            return folder
    missing = [s for s in FILES.values() if not any(_find_file(c, s) for c in _candidates(root))]
    raise MNISTUnavailableError(
        f"MNIST idx files not found under {root} (looked in {', '.join(str(c) for c in _candidates(root))}; "
        f"missing: {', '.join(missing)}): pass --data-root DIR where DIR or DIR/MNIST/raw holds "
        f"the four files {', '.join(s + '.gz' for s in FILES.values())}; nothing is downloaded"
    )


def load_mnist(root: str | os.PathLike | None) -> dict[str, np.ndarray]:
    """``train_images`` (60000, 784) uint8, ``train_labels`` (60000,), ``test_images`` (10000, 784),
    ``test_labels`` (10000,), plus ``folder`` (where they were read from)."""
    folder = find_mnist_dir(root)
    out: dict = {}
    for key, stem in FILES.items():
        arr = read_idx(_find_file(folder, stem))
        if key.endswith("images"):
            if arr.ndim != 3:
                raise ValueError(f"{stem}: expected a 3-d image array, got shape {arr.shape}")
            arr = arr.reshape(arr.shape[0], -1)
        out[key] = arr
    for split in ("train", "test"):
        if len(out[f"{split}_images"]) != len(out[f"{split}_labels"]):
            raise ValueError(
                f"MNIST {split}: {len(out[f'{split}_images'])} images but {len(out[f'{split}_labels'])} labels"
            )
    out["folder"] = folder
    return out
