"""Models built on hvae_ext's distributions: MLP VAEs for MNIST (``vae``) and graph auto-encoders
(``vgae``, needs the ``experiments`` extra: torch_geometric)."""

from .vae import MLP, NVAE, SVAE
from .vgae import NVGAE, SVGAE, GCNEncoder, ScaledInnerProductDecoder

__all__ = ["GCNEncoder", "ScaledInnerProductDecoder", "NVGAE", "SVGAE", "MLP", "NVAE", "SVAE"]
