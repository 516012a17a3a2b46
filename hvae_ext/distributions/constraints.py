"""Constraints for hyperspherical distributions."""

from __future__ import annotations

import torch
from torch.distributions import constraints


class _UnitSphere(constraints.Constraint):
    """Vectors of unit Euclidean norm along the last axis: the sphere :math:`S^{d-1} \\subset R^d`.

    The check allows a relative tolerance scaled to the dtype (``64 * eps``, about 7.6e-6 in float32 and
    1.4e-14 in float64), since normalised vectors carry rounding.
    """

    is_discrete = False
    event_dim = 1

    def check(self, value: torch.Tensor) -> torch.Tensor:
        eps = torch.finfo(value.dtype).eps if value.dtype.is_floating_point else 1e-6
        norm = torch.linalg.vector_norm(value, dim=-1)
        return (norm - 1).abs() <= 64 * eps * max(1.0, value.shape[-1] ** 0.5)

    def __repr__(self) -> str:
        return "UnitSphere()"


unit_sphere = _UnitSphere()
