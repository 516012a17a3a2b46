"""Graph models built on hvae_ext's distributions (needs the ``experiments`` extra: torch_geometric)."""

from .vgae import NVGAE, SVGAE, GCNEncoder, ScaledInnerProductDecoder

__all__ = ["GCNEncoder", "ScaledInnerProductDecoder", "NVGAE", "SVGAE"]
