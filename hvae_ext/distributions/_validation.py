"""Argument checks shared by the distributions: clear errors that name the argument and the rule."""

from __future__ import annotations

import numbers

import torch

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


def check_concentration(value: torch.Tensor, given=None) -> None:
    """concentration must be finite and > 0 (``given``: the Python number the user passed, if any)."""
    if value.numel() == 0:
        return
    if not bool(torch.isfinite(value).all()):
        bad = "NaN" if bool(torch.isnan(value).any()) else "inf"
        raise ValueError(f"concentration must be finite and > 0, but it contains {bad}")
    if not bool((value > 0).all()):
        if given is not None and given > 0:
            raise ValueError(
                f"concentration must be > 0, but the number {given!r} rounds to 0 in {value.dtype} "
                f"(the dtype of loc), whose smallest positive value is "
                f"{torch.nextafter(torch.zeros((), dtype=value.dtype), torch.ones((), dtype=value.dtype)).item():g}; "
                f"use a float64 loc or a larger concentration"
            )
        raise ValueError(
            f"concentration must be > 0 (finite and strictly positive), but its smallest value is "
            f"{value.min().item()!r}"
        )


def unit_norm_tolerance(dtype: torch.dtype, d: int) -> float:
    """The tolerance of the unit-norm check: 64 eps max(1, sqrt(d)) (see constraints.unit_sphere); 4 eps
    for float16/bfloat16 (checked in float32: rounding a unit vector to half precision moves its norm by at
    most eps/2, and 64 eps would be 0.5 in bfloat16)."""
    if dtype in HALF_DTYPES:
        return 4 * torch.finfo(dtype).eps
    return 64 * torch.finfo(dtype).eps * max(1.0, d**0.5)


def check_unit_norm(name: str, value: torch.Tensor, dtype: torch.dtype | None = None) -> None:
    """``value`` must be finite and of unit Euclidean norm along its last axis (to the precision of
    ``dtype``, by default ``value``'s: the dtype it was given in, for a half-precision tensor cast up)."""
    if value.numel() == 0:
        return
    check_finite(name, value)
    d = value.shape[-1]
    dtype = value.dtype if dtype is None else dtype
    tol = unit_norm_tolerance(dtype, d)
    norms = torch.linalg.vector_norm(value, dim=-1).reshape(-1)
    dev = (norms - 1).abs()
    i = int(dev.argmax())
    if not dev[i].item() <= tol:
        raise ValueError(
            f"{name} must have unit norm along its last axis (| |{name}| - 1 | <= "
            f"{'4 eps' if dtype in HALF_DTYPES else '64 eps max(1, sqrt(d))'} = "
            f"{tol:.3g} for {dtype}, d = {d}), but a row has norm {norms[i].item():.17g}; normalise it, "
            f"e.g. torch.nn.functional.normalize({name}, dim=-1)"
        )


def check_nonnegative_concentration(value: torch.Tensor) -> None:
    """concentration of a law that allows 0 (the Power Spherical: 0 is the uniform law): finite and >= 0."""
    if value.numel() == 0:
        return
    if not bool(torch.isfinite(value).all()):
        bad = "NaN" if bool(torch.isnan(value).any()) else "inf"
        raise ValueError(f"concentration must be finite and >= 0, but it contains {bad}")
    if not bool((value >= 0).all()):
        raise ValueError(
            f"concentration must be >= 0 (finite and non-negative; 0 is the uniform law), but its smallest value "
            f"is {value.min().item()!r}"
        )
