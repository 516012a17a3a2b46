"""Argument checks shared by the distributions: clear errors that name the argument and the rule."""

from __future__ import annotations

import numbers

import torch

SUPPORTED_DTYPES = (torch.float32, torch.float64)


def as_float_tensor(name: str, value, like: torch.Tensor | None = None) -> torch.Tensor:
    """Converts numbers to tensors (dtype and device of ``like``) and checks the dtype."""
    if isinstance(value, torch.Tensor):
        if value.dtype not in SUPPORTED_DTYPES:
            raise TypeError(
                f"{name} must be a float32 or float64 tensor, got dtype {value.dtype}"
                + (" (half precision is not supported: cast to float32)" if value.dtype in (torch.float16, torch.bfloat16) else "")
            )
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if like is not None:
            return torch.tensor(float(value), dtype=like.dtype, device=like.device)
        return torch.tensor(float(value), dtype=torch.get_default_dtype())
    raise TypeError(f"{name} must be a tensor or a real number, got {type(value).__name__}")


def check_dim(dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
        raise TypeError(f"dim must be an int (the ambient dimension d of S^(d-1) in R^d), got {type(dim).__name__}")
    dim = int(dim)
    if dim < 2:
        raise ValueError(f"dim must be >= 2 (the ambient dimension d of the sphere S^(d-1) in R^d), got {dim}")
    return dim


def check_finite(name: str, value: torch.Tensor) -> None:
    if value.numel() and not bool(torch.isfinite(value).all()):
        bad = "NaN" if bool(torch.isnan(value).any()) else "inf"
        raise ValueError(f"{name} must be finite, but it contains {bad}")
