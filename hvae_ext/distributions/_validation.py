"""Argument checks shared by the distributions: clear errors that name the argument and the rule."""

from __future__ import annotations

import functools
import numbers

import torch
from torch.distributions import Distribution

from .._ops import ops

SUPPORTED_DTYPES = (torch.float32, torch.float64)
#: Accepted for parameters and values (mixed precision), computed in float32.
HALF_DTYPES = (torch.float16, torch.bfloat16)


def as_float_tensor(name: str, value, like: torch.Tensor | None = None, allow_half: bool = False) -> torch.Tensor:
    """Converts numbers to tensors (dtype and device of ``like``) and checks the dtype."""
    if isinstance(value, torch.Tensor):
        if value.dtype not in SUPPORTED_DTYPES and not (allow_half and value.dtype in HALF_DTYPES):
            raise TypeError(
                f"{name} must be a float32, float64, float16 or bfloat16 tensor, got dtype {value.dtype}"
                if allow_half
                else f"{name} must be a float32 or float64 tensor, got dtype {value.dtype}"
            )
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if like is not None:
            # filled on the device: torch.tensor would copy from the host (a stream synchronisation)
            return torch.full((), float(value), dtype=like.dtype, device=like.device)
        return torch.tensor(float(value), dtype=torch.get_default_dtype())
    raise TypeError(f"{name} must be a tensor or a real number, got {type(value).__name__}")


def check_dim(dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an int (the ambient dimension d of S^(d-1) in R^d), got {type(dim).__name__}")
    dim = int(dim)
    if dim < 2:
        raise ValueError(f"dim must be >= 2 (the ambient dimension d of the sphere S^(d-1) in R^d), got {dim}")
    return dim


def check_float_value(value) -> None:
    """The ``value`` of a ``log_prob`` (with validation): a floating tensor (float32, float64, float16, bfloat16)."""
    if not isinstance(value, torch.Tensor) or value.dtype not in SUPPORTED_DTYPES + HALF_DTYPES:
        raise TypeError(
            "value must be a float32, float64, float16 or bfloat16 tensor of shape (..., d), got "
            + (f"dtype {value.dtype}" if isinstance(value, torch.Tensor) else type(value).__name__)
        )


def check_finite(name: str, value: torch.Tensor) -> None:
    if value.numel() and not bool(torch.isfinite(value).all()):
        bad = "NaN" if bool(torch.isnan(value).any()) else "inf"
        raise ValueError(f"{name} must be finite, but it contains {bad}")


# The fused checks (compiled ops, csrc/math/checks.h): one read of the tensor, no temporaries, no autograd graph.
# Each returns int64 (3,) on the tensor's device: the first row (element) that fails the rule, the first with a
# NaN, the first with a NaN or an infinity; -1 for none. Reading the result is the one host synchronisation of a
# validated call on CUDA; the messages are built from it (and, on the error path only, from the tensor).


def _no_autocast(op, value: torch.Tensor, *args) -> torch.Tensor:
    # The rules round to the input's dtype: the input as given, not cast to float32 by autocast (the ops of
    # this library are registered for autocast as a whole).
    if torch.is_autocast_enabled(value.device.type):
        with torch.autocast(value.device.type, enabled=False):
            return op(value.detach(), *args)
    return op(value.detach(), *args)


def positive_finite_result(value: torch.Tensor) -> torch.Tensor:
    """The fused check of ``concentration``: finite and > 0 (no synchronisation: the result stays on the device)."""
    return _no_autocast(ops._check_positive_finite, value)


def unit_norm_result(value: torch.Tensor, tol: float) -> torch.Tensor:
    """The fused check of rows of unit norm: finite, and |norm - 1| <= ``tol`` with the norm and the deviation
    rounded to ``value``'s dtype (no synchronisation: the result stays on the device)."""
    return _no_autocast(ops._vmf_check_unit_rows, value, float(tol))


def raise_concentration(value: torch.Tensor, first: list[int], given=None) -> None:
    """Raises the concentration error that ``first`` (the fused check's result, read) names, if any."""
    if first[0] < 0:
        return
    if first[2] >= 0:
        bad = "NaN" if first[1] >= 0 else "inf"
        raise ValueError(f"concentration must be finite and > 0, but it contains {bad}")
    if given is not None and given > 0:
        raise ValueError(
            f"concentration must be > 0, but the number {given!r} rounds to 0 in {value.dtype} "
            f"(the dtype of loc), whose smallest positive value is "
            f"{torch.nextafter(torch.zeros((), dtype=value.dtype), torch.ones((), dtype=value.dtype)).item():g}; "
            f"use a float64 loc or a larger concentration"
        )
    raise ValueError(
        f"concentration must be > 0 (finite and strictly positive), but its smallest value is "
        f"{value.detach().min().item()!r}"
    )


def unit_norm_tolerance(dtype: torch.dtype, d: int) -> float:
    """The tolerance of the unit-norm check: 64 eps max(1, sqrt(d)) (see constraints.unit_sphere); 4 eps
    for float16/bfloat16 (checked in float32: rounding a unit vector to half precision moves its norm by at
    most eps/2, and 64 eps would be 0.5 in bfloat16)."""
    if dtype in HALF_DTYPES:
        return 4 * torch.finfo(dtype).eps
    return 64 * torch.finfo(dtype).eps * max(1.0, d**0.5)


def raise_unit_norm(name: str, value: torch.Tensor, first: list[int], dtype: torch.dtype | None = None) -> None:
    """Raises the error that ``first`` (the fused unit-norm check's result, read) names, if any: non-finite
    entries anywhere, else the norm of the first row off the sphere."""
    if first[0] < 0:
        return
    if first[2] >= 0:
        bad = "NaN" if first[1] >= 0 else "inf"
        raise ValueError(f"{name} must be finite, but it contains {bad}")
    d = value.shape[-1]
    dtype = value.dtype if dtype is None else dtype
    tol = unit_norm_tolerance(dtype, d)
    norm = torch.linalg.vector_norm(value.detach().reshape(-1, d)[first[0]])
    raise ValueError(
        f"{name} must have unit norm along its last axis (| |{name}| - 1 | <= "
        f"{'4 eps' if dtype in HALF_DTYPES else '64 eps max(1, sqrt(d))'} = "
        f"{tol:.3g} for {dtype}, d = {d}), but a row has norm {norm.item():.17g}; normalise it, "
        f"e.g. torch.nn.functional.normalize({name}, dim=-1)"
    )


def check_unit_norm(name: str, value: torch.Tensor, dtype: torch.dtype | None = None) -> None:
    """``value`` must be finite and of unit Euclidean norm along its last axis (to the precision of
    ``dtype``, by default ``value``'s: the dtype it was given in, for a half-precision tensor cast up).
    The error names the first row off the sphere (row-major order)."""
    if value.numel() == 0:
        return
    tol = unit_norm_tolerance(value.dtype if dtype is None else dtype, value.shape[-1])
    raise_unit_norm(name, value, unit_norm_result(value, tol).tolist(), dtype)


def _check_loc_and_concentration(loc: torch.Tensor, concentration: torch.Tensor, dtype: torch.dtype, raise_rule):
    """Both fused checks, their results read together (one host synchronisation on CUDA), then the errors of
    ``loc`` before those of ``concentration`` (``raise_rule(first)``: the concentration's errors from its
    check's result, read)."""
    if loc.numel() == 0:
        if concentration.numel():
            raise_rule(positive_finite_result(concentration).tolist())
        return
    tol = unit_norm_tolerance(dtype, loc.shape[-1])
    result = unit_norm_result(loc, tol)
    if concentration.numel():
        result = torch.cat((result, positive_finite_result(concentration)))
    first = result.tolist()
    raise_unit_norm("loc", loc, first[:3], dtype)
    if len(first) > 3:
        raise_rule(first[3:])


def check_vmf_arguments(loc: torch.Tensor, concentration: torch.Tensor, dtype: torch.dtype, given=None) -> None:
    """The checks of ``VonMisesFisher(loc, concentration)``: unit rows, concentration finite and > 0."""
    _check_loc_and_concentration(
        loc, concentration, dtype, lambda first: raise_concentration(concentration, first, given)
    )


def check_power_spherical_arguments(loc: torch.Tensor, concentration: torch.Tensor, dtype: torch.dtype) -> None:
    """The checks of ``PowerSpherical(loc, concentration)``: unit rows, concentration finite and >= 0."""
    _check_loc_and_concentration(loc, concentration, dtype, lambda first: raise_nonnegative(concentration, first))


@functools.cache
def support_tolerance(dtype: torch.dtype, d: int) -> float:
    """The tolerance of ``constraints.unit_sphere`` (64 eps max(1, sqrt(d)) of the value's dtype), rounded to
    that dtype, in which the constraint compares."""
    tol = 64 * torch.finfo(dtype).eps * max(1.0, d**0.5)
    return float(torch.tensor(tol, dtype=torch.float64).to(dtype))


def check_sample_on_sphere(dist: Distribution, value: torch.Tensor) -> None:
    """``Distribution._validate_sample`` for a distribution whose support is ``unit_sphere``, with the support
    test done by the fused check (the same rule as ``unit_sphere.check``; the messages are torch's)."""
    event_dim_start = len(value.size()) - len(dist._event_shape)
    if value.size()[event_dim_start:] != dist._event_shape:
        raise ValueError(f"The right-most size of value must match event_shape: {value.size()} vs {dist._event_shape}.")
    actual_shape = value.size()
    expected_shape = dist._batch_shape + dist._event_shape
    for i, j in zip(reversed(actual_shape), reversed(expected_shape)):
        if i != 1 and j != 1 and i != j:
            raise ValueError(
                f"Value is not broadcastable with batch_shape+event_shape: {actual_shape} vs {expected_shape}."
            )
    if value.numel() == 0:
        return
    first = int(unit_norm_result(value, support_tolerance(value.dtype, value.shape[-1]))[0])
    if first >= 0:
        raise ValueError(
            "Expected value argument "
            f"({type(value).__name__} of shape {tuple(value.shape)}) "
            f"to be within the support ({repr(dist.support)}) "
            f"of the distribution {repr(dist)}, "
            f"but found invalid values:\n{value}"
        )


def raise_nonnegative(value: torch.Tensor, first: list[int]) -> None:
    """Raises the error of a concentration that must be finite and >= 0 (0 is allowed: the Power Spherical's
    uniform law) from ``first``, the result of the fused check of finite and > 0, read. Only a zero or a negative
    entry fails that rule without failing this one, so only then is the tensor read again (for a negative)."""
    if first[0] < 0:
        return
    if first[2] >= 0:
        bad = "NaN" if first[1] >= 0 else "inf"
        raise ValueError(f"concentration must be finite and >= 0, but it contains {bad}")
    if bool((value.detach() < 0).any()):
        raise ValueError(
            f"concentration must be >= 0 (finite and non-negative; 0 is the uniform law), but its smallest value "
            f"is {value.detach().min().item()!r}"
        )
