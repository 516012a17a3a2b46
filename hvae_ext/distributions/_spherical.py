"""What the distributions on the sphere S^{d-1} in R^d share: (loc (..., d), concentration (...)) parameters, the
sample dtype, ``expand``, ``dim``, ``sample``, and the call of a compiled sampler op (op(loc (B, d), kappa (B,),
seed, n) -> (z (n B, d), what its backward needs))."""

from __future__ import annotations

import torch
from torch.distributions import Distribution

from ._validation import HALF_DTYPES, as_float_tensor

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def draw_seed(device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """A 64-bit Philox key for one sampler call, drawn from torch's generator on ``device``.

    Drawing it with ``torch.randint`` on the sampling device keeps the key on that device: no host
    synchronisation on CUDA, and the draw advances the generator's Philox offset in a way that CUDA graph
    capture accounts for. ``torch.manual_seed`` (or ``generator=``) therefore makes samples reproducible.
    """
    if generator is not None and generator.device.type != torch.device(device).type:
        raise ValueError(f"generator is on {generator.device} but the samples are drawn on {device}")
    return torch.randint(_INT64_MIN, _INT64_MAX, (1,), dtype=torch.int64, device=device, generator=generator)


class SphericalDistribution(Distribution):
    """Base of :class:`~hvae_ext.VonMisesFisher` and :class:`~hvae_ext.PowerSpherical` (not for direct use)."""

    loc: torch.Tensor
    concentration: torch.Tensor
    _sample_dtype: torch.dtype

    def _init_parameters(self, loc, concentration, validate_args, check_arguments) -> None:
        """A subclass's ``__init__``: ``loc`` (..., d) and ``concentration`` (...) or (..., 1) converted (numbers
        to tensors), cast for mixed precision and broadcast to the batch shape; with validation (``validate_args``,
        else torch's default) ``check_arguments(loc, concentration, sample_dtype, given)`` checks their values
        (``given``: the Python number passed as the concentration, if one was)."""
        loc = as_float_tensor("loc", loc, allow_half=True)
        if loc.dim() < 1:
            raise ValueError("loc must have shape (..., d) with d >= 2, got a scalar")
        d = loc.shape[-1]
        if d < 2:
            raise ValueError(f"loc must have shape (..., d) with d >= 2, got d = {d}")
        given = concentration if not isinstance(concentration, torch.Tensor) else None
        # Mixed precision: float16/bfloat16 parameters are cast up and everything is computed in float32
        # (float64 if the other parameter is float64); samples come back in loc's dtype.
        sample_dtype = loc.dtype
        if loc.dtype in HALF_DTYPES and given is not None:
            loc = loc.float()  # a Python number is taken in float32, not rounded to half precision
        concentration = as_float_tensor("concentration", concentration, like=loc, allow_half=True)
        if concentration.device != loc.device:
            raise ValueError(f"concentration is on {concentration.device} but loc is on {loc.device}")
        if loc.dtype in HALF_DTYPES or concentration.dtype in HALF_DTYPES:
            compute = torch.float64 if torch.float64 in (loc.dtype, concentration.dtype) else torch.float32
            loc, concentration = loc.to(compute), concentration.to(compute)
        if concentration.dtype != loc.dtype:
            raise TypeError(f"concentration has dtype {concentration.dtype} but loc has dtype {loc.dtype}")
        if concentration.dim() == loc.dim() and concentration.shape[-1] == 1:
            concentration = concentration.squeeze(-1)  # the reference code's (..., 1)
        try:
            batch_shape = torch.broadcast_shapes(loc.shape[:-1], concentration.shape)
        except RuntimeError:
            raise ValueError(
                f"concentration of shape {tuple(concentration.shape)} does not broadcast with the batch shape "
                f"{tuple(loc.shape[:-1])} of loc (shape {tuple(loc.shape)}); concentration must have the batch "
                f"shape (...) or (..., 1)"
            ) from None
        validate = Distribution._validate_args if validate_args is None else bool(validate_args)
        if validate:
            # The law's own checks, with messages that name the argument and the rule, in place of torch's
            # generic arg_constraints messages (which then need not run a second time): two fused checks
            # (compiled ops reading each tensor once), their results read together (one host synchronisation).
            check_arguments(loc, concentration, sample_dtype, given)
        self.loc = loc.expand(batch_shape + (d,))
        self.concentration = concentration.expand(batch_shape)
        self._sample_dtype = sample_dtype
        super().__init__(batch_shape, torch.Size([d]), validate_args=False)
        self._validate_args = validate

    def _expand_into(self, new, batch_shape):
        """``expand`` of a subclass: ``new`` from ``self._get_checked_instance(<subclass>, _instance)``."""
        new._sample_dtype = self._sample_dtype
        batch_shape = torch.Size(batch_shape)
        new.loc = self.loc.expand(batch_shape + self.event_shape)
        new.concentration = self.concentration.expand(batch_shape)
        Distribution.__init__(new, batch_shape, self.event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def dim(self) -> int:
        """The ambient dimension d (samples lie on S^{d-1} in R^d)."""
        return self.event_shape[0]

    def _run_sampler(self, op, sample_shape, generator: torch.Generator | None):
        """(z of shape sample_shape + batch_shape + (d,), the op's second output, kappa (B,)): one kernel call
        for all rows, keyed by a seed drawn from ``generator`` (torch's default generator if None)."""
        sample_shape = torch.Size(sample_shape)
        shape = self._extended_shape(sample_shape)
        d = self.dim
        loc = self.loc.reshape(-1, d)
        kappa = self.concentration.reshape(-1)
        z, saved = op(loc, kappa, draw_seed(loc.device, generator), sample_shape.numel())
        return z.view(shape), saved, kappa

    def rsample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError  # each law calls its own sampler op through _run_sampler

    def sample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape, generator=generator)
