r"""The uniform distribution on the sphere :math:`S^{d-1} \subset R^d`."""

from __future__ import annotations

import functools

import torch
from torch.distributions import Distribution

from .._ops import ops
from ._validation import check_dim, check_float_value, check_sample_on_sphere
from .constraints import unit_sphere

__all__ = ["HypersphericalUniform"]


@functools.cache
def log_sphere_area(d: int) -> float:
    """:math:`\\log |S^{d-1}| = \\log 2 + (d/2) \\log \\pi - \\log \\Gamma(d/2)`, from the library's one
    definition (csrc/math/bessel.h): :math:`\\log C_d(0) = -\\log |S^{d-1}|` (float64, once per d)."""
    zero = torch.zeros((), dtype=torch.float64)
    return -float(ops.vmf_log_normalizer(zero, torch.tensor(int(d), dtype=torch.int64)))


class HypersphericalUniform(Distribution):
    r"""Uniform distribution on the unit sphere :math:`S^{d-1} \subset R^d`, the prior of the S-VAE.

    Args:
        dim: the **ambient** dimension :math:`d \ge 2`; samples have shape ``(..., d)``. Note that the
            reference code of Davidson et al. (2018) counts the manifold dimension :math:`d - 1` instead
            (its ``HypersphericalUniform(z_dim - 1)`` is ``HypersphericalUniform(z_dim)`` here; the
            drop-in module :mod:`hvae_ext.compat` keeps the reference's convention).
        validate_args: check values passed to :meth:`log_prob`.
        dtype, device: of the samples and of :meth:`log_prob`/:meth:`entropy` (default: torch's defaults);
            for float16/bfloat16 the samples have that dtype and the rest is float32.
    """

    arg_constraints = {}
    support = unit_sphere
    has_rsample = False

    def __init__(self, dim: int, validate_args=None, *, dtype: torch.dtype | None = None, device=None):
        self._dim = check_dim(dim)
        self._dtype = dtype if dtype is not None else torch.get_default_dtype()
        if self._dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            raise TypeError(
                f"dtype must be torch.float32 or torch.float64 (or torch.float16/torch.bfloat16), got {self._dtype}"
            )
        # half precision (mixed precision training): samples in that dtype, densities and moments in float32
        self._value_dtype = torch.promote_types(self._dtype, torch.float32)
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        super().__init__(torch.Size(), torch.Size([self._dim]), validate_args=validate_args)

    @property
    def dim(self) -> int:
        """The ambient dimension d."""
        return self._dim

    @property
    def device(self) -> torch.device:
        return self._device

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(HypersphericalUniform, _instance)
        new._dim, new._dtype, new._device = self._dim, self._dtype, self._device
        new._value_dtype = self._value_dtype
        super(HypersphericalUniform, new).__init__(torch.Size(batch_shape), self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def sample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        x = torch.randn(shape, dtype=self._value_dtype, device=self._device, generator=generator)
        return (x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)).to(self._dtype)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            check_float_value(value)
            check_sample_on_sphere(self, value)
        dtype = torch.promote_types(value.dtype, torch.float32)
        return torch.full(value.shape[:-1], -log_sphere_area(self._dim), dtype=dtype, device=value.device)

    def entropy(self) -> torch.Tensor:
        return torch.full(self.batch_shape, log_sphere_area(self._dim), dtype=self._value_dtype, device=self._device)

    @property
    def mean(self) -> torch.Tensor:
        return torch.zeros(self.batch_shape + self.event_shape, dtype=self._value_dtype, device=self._device)

    @property
    def variance(self) -> torch.Tensor:
        return torch.full(
            self.batch_shape + self.event_shape, 1.0 / self._dim, dtype=self._value_dtype, device=self._device
        )

    def __repr__(self) -> str:
        return f"HypersphericalUniform(dim={self._dim})"
