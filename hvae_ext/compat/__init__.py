"""Drop-in replacements for the classes of the S-VAE reference code (Davidson et al. 2018,
``hyperspherical_vae.distributions``), with its conventions, backed by hvae_ext's kernels.

Code written for the reference library runs unchanged after changing its import to::

    from hvae_ext.compat import VonMisesFisher, HypersphericalUniform

* ``VonMisesFisher(loc, scale)``: ``scale`` is the concentration, of shape ``(..., 1)``; ``.scale`` returns it.
* ``HypersphericalUniform(dim, device=...)``: ``dim`` is the *manifold* dimension ``d - 1`` (the sphere
  S^dim in R^(dim+1)), as in the reference code.

``torch.distributions.kl_divergence`` works between them as before, with hvae_ext's closed forms.

The ``power_spherical`` package (De Cao and Aziz 2020) has its own drop-in module,
:mod:`hvae_ext.compat.power_spherical` (``PowerSpherical(loc, scale)``, its ``HypersphericalUniform(dim)`` counting
the ambient dimension, ``MarginalTDistribution``); ``PowerSpherical`` is also importable from here.
"""

from __future__ import annotations

import torch

from ..distributions import HypersphericalUniform as _HypersphericalUniform
from ..distributions import VonMisesFisher as _VonMisesFisher
from .power_spherical import PowerSpherical

__all__ = ["VonMisesFisher", "HypersphericalUniform", "PowerSpherical"]


class VonMisesFisher(_VonMisesFisher):
    """``VonMisesFisher(loc, scale, validate_args=None, k=1)`` of the reference code."""

    def __init__(self, loc, scale, validate_args=None, k: int = 1):
        if k != 1:
            raise ValueError(
                "k (the reference code's number of rejection proposals per round) must be 1: "
                "hvae_ext's sampler needs no such setting"
            )
        super().__init__(loc, scale, validate_args=validate_args)

    @property
    def scale(self) -> torch.Tensor:
        return self.concentration.unsqueeze(-1)

    @property
    def stddev(self) -> torch.Tensor:
        return self.scale


class HypersphericalUniform(_HypersphericalUniform):
    """``HypersphericalUniform(dim, validate_args=None, device="cpu")`` of the reference code: ``dim`` = d - 1."""

    def __init__(self, dim: int, validate_args=None, device="cpu"):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(
                f"dim (the manifold dimension d - 1 in the reference convention) must be an int >= 1, got {dim!r}"
            )
        super().__init__(dim + 1, validate_args=validate_args, device=device)
