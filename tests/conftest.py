"""pytest fixtures of the tests. Shared helpers (devices, the exact law of w, the statistical grid, the data
folder) live in :mod:`hvae_ext.testing`, which the tests import."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from hvae_ext.testing import data_root

SHARED_MNIST = data_root() / "MNIST" / "raw"


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder of the four MNIST idx files: ``$HVAE_EXT_MNIST``, else the shared data folder; the test is
    skipped when neither holds them."""
    from experiments.mnist_data import ENV_VAR, MNISTUnavailableError, find_mnist_dir

    for root in (os.environ.get(ENV_VAR), SHARED_MNIST):
        if root:
            try:
                return find_mnist_dir(root)
            except MNISTUnavailableError:
                pass
    pytest.skip(f"MNIST idx files not found (set ${ENV_VAR} or put train-images-idx3-ubyte.gz etc. in {SHARED_MNIST})")


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """The MNIST arrays (experiments.mnist_data.load_mnist)."""
    from experiments.mnist_data import load_mnist

    return load_mnist(mnist_dir)


@pytest.fixture(scope="session")
def few_images(mnist):
    """300 training images, binarized once (seeded)."""
    x = torch.from_numpy(mnist["train_images"][:300]).float() / 255.0
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(0))
