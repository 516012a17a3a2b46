"""The README is a front page: its quick start runs as written (its ```python blocks, in order, in one namespace;
the graph example needs torch_geometric, the ``experiments`` extra), and it stays small and shows .ci/run's commands."""

from __future__ import annotations

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _blocks() -> list[str]:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        return re.findall(r"```python\n(.*?)```", fh.read(), re.S)


def test_readme_has_the_quick_start():
    text = "\n".join(_blocks())
    for name in ("VonMisesFisher", "SVAE", "SVGAE", "fit_mixture"):
        assert name in text, f"README's quick start no longer shows {name}"


def test_readme_quick_start_runs():
    pytest.importorskip("torch_geometric")
    import torch

    torch.manual_seed(0)
    namespace: dict = {}
    for block in _blocks():
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["kl"].shape == (128,)
    assert torch.isfinite(namespace["raw_mu"].grad).all() and torch.isfinite(namespace["raw_kappa"].grad).all()
    assert torch.isfinite(namespace["loss"]) and 0.0 <= float(namespace["auc"]) <= 1.0
    assert namespace["fitted"].loc.shape == (16,)


def test_readme_is_a_front_page_with_the_ci_commands():
    """README.md stays at most 12 KB and shows verbatim the install and test commands that .ci/run runs."""
    with open(os.path.join(ROOT, "README.md"), "rb") as fh:
        readme = fh.read()
    assert len(readme) <= 12 * 1024, f"README.md is {len(readme)} bytes; move details to docs/"
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as fh:
        ci = [
            line.strip()
            for line in fh
            if line.startswith("python -m pip install") or line.startswith("python -m pytest")
        ]
    assert len(ci) == 2, ci
    for line in ci:
        assert line in readme.decode("utf-8"), f"README.md does not show .ci/run's command: {line}"
