"""pytest fixtures of the tests. Shared helpers (devices, the exact law of w, the statistical grid, the data
folder) live in :mod:`hvae_ext.testing`, which the tests import."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
