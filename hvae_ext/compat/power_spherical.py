"""Drop-in replacements for the classes of the ``power_spherical`` package (De Cao and Aziz 2020), with its
conventions, backed by hvae_ext's kernels. Code written for the package runs after changing its import to::

    from hvae_ext.compat.power_spherical import PowerSpherical, HypersphericalUniform, MarginalTDistribution

* ``PowerSpherical(loc, scale)``: ``scale`` is the concentration, of the batch shape ``(...)``; ``.scale`` returns it,
  ``log_normalizer()`` is a method, ``variance`` is the ``(..., d, d)`` covariance matrix (as in the package), and
  ``rsample(sample_shape)`` has shape ``sample_shape + batch_shape + (d,)``.
* ``HypersphericalUniform(dim, device="cpu", dtype=torch.float32)``: the uniform law on :math:`S^{dim-1} \\subset R^{dim}`
  (``dim`` is the ambient dimension, as in the package and in :class:`hvae_ext.HypersphericalUniform`), with
  ``rsample``.
* ``MarginalTDistribution(dim, scale)``: the law of :math:`t = \\mu^\\top z`, :math:`2\\,\\mathrm{Beta}(\\alpha, \\beta) - 1`.

``torch.distributions.kl_divergence(PowerSpherical, HypersphericalUniform)`` works as in the package, with hvae_ext's
closed form. Differences, all in the direction of the documented law: samples are on the sphere to rounding (the
package divides by ``|v| + 1e-7``), the reflection has no singular point at ``loc = e_1``, ``log_prob(-loc)`` is
``-inf`` (density 0) in every dimension, and the KL and entropy are accurate in float64 up to ``d = 1000`` and beyond.
``scale = 0`` (the uniform law) is accepted.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import constraints

from ..distributions import HypersphericalUniform as _HypersphericalUniform
from ..distributions import PowerSpherical as _PowerSpherical

__all__ = ["PowerSpherical", "HypersphericalUniform", "MarginalTDistribution"]


class PowerSpherical(_PowerSpherical):
    """``PowerSpherical(loc, scale, validate_args=None)`` of the ``power_spherical`` package."""

    def __init__(self, loc, scale, validate_args=None):
        super().__init__(loc, scale, validate_args=validate_args)

    @property
    def scale(self) -> torch.Tensor:
        return self.concentration

    @property
    def variance(self) -> torch.Tensor:
        """The covariance matrix, shape ``(..., d, d)``, as the package's ``variance``."""
        return self.covariance_matrix

    @property
    def stddev(self) -> torch.Tensor:
        return self.variance.sqrt()

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(PowerSpherical, _instance))


class HypersphericalUniform(_HypersphericalUniform):
    """``HypersphericalUniform(dim, device="cpu", dtype=torch.float32, validate_args=None)`` of the package: the
    uniform law on the unit sphere of ``R^dim``."""

    has_rsample = True

    def __init__(self, dim, device="cpu", dtype=torch.float32, validate_args=None):
        if isinstance(dim, torch.Tensor):
            dim = int(dim.item())
        super().__init__(dim, validate_args=validate_args, dtype=dtype, device=device)

    def rsample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample(sample_shape, generator=generator)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, self._get_checked_instance(HypersphericalUniform, _instance))

    def __repr__(self) -> str:
        return f"HypersphericalUniform(dim={self.dim}, device={self.device}, dtype={self._dtype})"


class MarginalTDistribution(torch.distributions.TransformedDistribution):
    """``MarginalTDistribution(dim, scale)`` of the package: :math:`t = 2 B - 1`, :math:`B \\sim \\mathrm{Beta}(
    (dim - 1)/2 + scale, (dim - 1)/2)`, the law of :math:`\\mu^\\top z` under ``PowerSpherical(loc, scale)``."""

    arg_constraints = {"scale": constraints.nonnegative}
    has_rsample = True

    def __init__(self, dim, scale, validate_args=None):
        self.dim = int(dim.item()) if isinstance(dim, torch.Tensor) else int(dim)
        self.scale = scale
        beta = (self.dim - 1) / 2
        super().__init__(
            torch.distributions.Beta(beta + scale, torch.full_like(scale, beta), validate_args=validate_args),
            torch.distributions.AffineTransform(loc=-1.0, scale=2.0),
            validate_args=validate_args,
        )

    def entropy(self) -> torch.Tensor:
        return self.base_dist.entropy() + math.log(2)

    @property
    def mean(self) -> torch.Tensor:
        return 2 * self.base_dist.mean - 1

    @property
    def variance(self) -> torch.Tensor:
        return 4 * self.base_dist.variance

    @property
    def stddev(self) -> torch.Tensor:
        return self.variance.sqrt()
