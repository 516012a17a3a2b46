"""Models built on hvae_ext's distributions, in torch's and torch_geometric's idiom (the networks are
modules the models take): variational auto-encoders (``vae``: :class:`NVAE`, :class:`SVAE`) and graph
auto-encoders (``vgae``: :class:`NVGAE`, :class:`SVGAE`).

The graph models need torch_geometric (``pip install torch_geometric``, or the ``experiments`` extra); they
are imported on first use, so ``from hvae_ext.models import SVAE`` works without it."""

from __future__ import annotations

import importlib
from typing import Any

from .vae import MLP, NVAE, SVAE, MLPEncoder

_GRAPH = ("GCNEncoder", "ScaledInnerProductDecoder", "NVGAE", "SVGAE")

__all__ = ["MLP", "MLPEncoder", "NVAE", "SVAE", *_GRAPH]


def __getattr__(name: str) -> Any:
    if name in _GRAPH:  # torch_geometric is imported here, not with the package
        value = getattr(importlib.import_module(".vgae", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
