r"""Special functions for the von Mises-Fisher distribution, as compiled CPU/CUDA kernels.

All functions broadcast their arguments, accept float32 and float64 (computing internally in float64
and rounding once; float16 and bfloat16 tensors are computed and returned in float32), keep the device of
their inputs, create no tensor from host values on the device (no hidden synchronisation), and are differentiable in their continuous
argument with hand-written backward kernels (twice differentiable for ``log_bessel_iv`` and
``vmf_log_normalizer``).

Like ``torch.special``, they do not raise for arguments outside their domain: they return NaN there
(for a negative order or argument, say) and propagate NaN inputs. Validation with clear errors is the
job of the distributions in :mod:`hvae_ext.distributions`.

Methods and references are documented in ``csrc/math/bessel.h`` and ``docs/special_functions.md``;
the measured accuracy against 50-digit mpmath references is in docs/sampler.md (the tables written by tests/unit/test_special_accuracy.py).
"""

from __future__ import annotations

import torch

from ._ops import ops, value_for_autograd

__all__ = [
    "log_bessel_iv",
    "bessel_iv_ratio",
    "vmf_log_normalizer",
    "vmf_mean_resultant",
    "vmf_entropy",
    "vmf_kl_vmf",
    "vmf_mean_resultant_inverse",
]


def _as_float_tensor(x, like: torch.Tensor | None = None, name: str = "argument") -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        if x.dtype in (torch.float16, torch.bfloat16):
            return x.float()  # mixed precision: computed (and returned) in float32
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{name} must be a float32 or float64 tensor (or float16/bfloat16), got dtype {x.dtype}")
        return x
    if like is not None:
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            # torch.full fills on the device; torch.as_tensor would copy from the host (a synchronisation)
            return torch.full((), x, dtype=like.dtype, device=like.device)
        return torch.as_tensor(x, dtype=like.dtype, device=like.device)
    return torch.as_tensor(x, dtype=torch.get_default_dtype())


def _as_dim_tensor(dim, like: torch.Tensor) -> torch.Tensor:
    if isinstance(dim, torch.Tensor):
        if dim.dtype.is_floating_point or dim.dtype.is_complex:
            raise TypeError(f"dim must be an integer tensor, got dtype {dim.dtype}")
        return dim.to(device=like.device, dtype=torch.int64)
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int or an integer tensor, got {type(dim).__name__}")
    return torch.full((), dim, dtype=torch.int64, device=like.device)  # no host-to-device copy


def _check_dim_value(dim, function: str) -> None:
    """A Python int ``dim`` below 2 is a ValueError naming the function (these functions define d >= 2: the
    sphere S^(d-1) in R^d); values of an integer tensor ``dim`` are data, and out of domain give NaN."""
    if isinstance(dim, int) and not isinstance(dim, bool) and dim < 2:
        raise ValueError(
            f"{function}: dim must be >= 2 (the ambient dimension d of the sphere S^(d-1) in R^d), got dim = {dim}"
        )


def _pair(v, x) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(x, torch.Tensor):
        x = _as_float_tensor(x, name="x")
        return _as_float_tensor(v, x, name="v"), x
    if isinstance(v, torch.Tensor):
        v = _as_float_tensor(v, name="v")
        return v, _as_float_tensor(x, v, name="x")
    x = _as_float_tensor(x, name="x")
    return _as_float_tensor(v, x, name="v"), x


def log_bessel_iv(v, x) -> torch.Tensor:
    r"""Logarithm of the modified Bessel function of the first kind, :math:`\log I_v(x)`.

    Args:
        v: order, :math:`v \ge 0` (tensor or number; broadcast against ``x``).
        x: argument, :math:`x \ge 0`.

    Returns :math:`\log I_v(x)`, finite wherever the true value is: it does not overflow for large
    ``x`` or large ``v`` and does not underflow to :math:`-\infty` for small ``x``. At ``x = 0`` it is
    ``0`` for ``v = 0`` and ``-inf`` for ``v > 0``. NaN for ``v < 0``, ``x < 0`` or NaN inputs.

    Differentiable in ``x``: :math:`\partial_x \log I_v(x) = I_{v+1}(x)/I_v(x) + v/x`
    (DLMF 10.29.2), computed by a dedicated backward kernel.
    """
    v, x = _pair(v, x)
    return ops.log_bessel_iv(v, x)


def bessel_iv_ratio(v, x) -> torch.Tensor:
    r"""Ratio :math:`I_v(x) / I_{v-1}(x)` of modified Bessel functions (TensorFlow Probability's convention).

    Args:
        v: order, :math:`v \ge 1/2`.
        x: argument, :math:`x \ge 0`.

    In :math:`[0, 1)`; ``0`` at ``x = 0``; NaN outside the domain. Differentiable in ``x``:
    :math:`\partial_x R_v = 1 - R_v^2 - (2v - 1) R_v / x` (from DLMF 10.29.1).
    """
    v, x = _pair(v, x)
    return ops.bessel_iv_ratio(v, x)


def vmf_log_normalizer(kappa, dim) -> torch.Tensor:
    r"""Log-normalizer :math:`\log C_d(\kappa)` of the von Mises-Fisher density on :math:`S^{d-1} \subset R^d`.

    .. math:: C_d(\kappa) = \frac{\kappa^{d/2-1}}{(2\pi)^{d/2} I_{d/2-1}(\kappa)},
              \qquad p(z) = C_d(\kappa)\, e^{\kappa \mu^\top z}.

    Args:
        kappa: concentration :math:`\kappa \ge 0` (float tensor).
        dim: the ambient dimension :math:`d \ge 2`: an int, or an integer tensor broadcastable with ``kappa``.

    Continuous at :math:`\kappa = 0`, where it equals :math:`-\log |S^{d-1}|`. NaN for
    :math:`\kappa < 0` or :math:`d < 2`. When ``kappa`` requires a gradient the forward kernel also
    computes :math:`\partial_\kappa \log C_d(\kappa) = -A_d(\kappa)` in the same pass, for the backward; the double backward uses
    :math:`A_d' = 1 - A_d^2 - (d - 1) A_d / \kappa`.
    """
    kappa = _as_float_tensor(kappa, name="kappa")
    _check_dim_value(dim, "vmf_log_normalizer")
    return value_for_autograd("vmf_log_normalizer", kappa, _as_dim_tensor(dim, kappa))


def vmf_mean_resultant(kappa, dim) -> torch.Tensor:
    r"""Mean resultant length :math:`A_d(\kappa) = I_{d/2}(\kappa) / I_{d/2-1}(\kappa) = E[\mu^\top z]`.

    Equal to :math:`-\partial_\kappa \log C_d(\kappa)`; ``0`` at :math:`\kappa = 0`; tends to 1 as
    :math:`\kappa \to \infty`. Differentiable in ``kappa`` with
    :math:`A_d' = 1 - A_d^2 - (d - 1) A_d / \kappa` (``1/d`` at ``kappa = 0``).
    """
    kappa = _as_float_tensor(kappa, name="kappa")
    _check_dim_value(dim, "vmf_mean_resultant")
    return ops.vmf_mean_resultant(kappa, _as_dim_tensor(dim, kappa))


def vmf_entropy(kappa, dim) -> torch.Tensor:
    r"""Entropy :math:`H = -\log C_d(\kappa) - \kappa A_d(\kappa)` of :math:`\mathrm{vMF}(\mu, \kappa)` on
    :math:`S^{d-1}` (with respect to the surface measure).

    At large :math:`\kappa` both terms are :math:`\sim\kappa` and cancel; the kernel sums
    :math:`-\log C_d(\kappa) - \kappa` and :math:`\kappa (1 - A_d(\kappa))` from the asymptotic expansions
    without forming :math:`\kappa` (``csrc/math/vmf.h``), so the result keeps a relative accuracy of
    :math:`10^{-12}` (relative to :math:`\max(1, |H|)`) up to :math:`\kappa = 10^{12}`. ``log |S^{d-1}|`` at
    :math:`\kappa = 0`; NaN for :math:`\kappa < 0`. Differentiable: :math:`dH/d\kappa = -\kappa A_d'(\kappa)`.
    Computed in float64 whatever the dtype.
    """
    kappa = _as_float_tensor(kappa, name="kappa")
    _check_dim_value(dim, "vmf_entropy")
    return ops.vmf_entropy(kappa, _as_dim_tensor(dim, kappa))


def vmf_kl_vmf(kappa_p, kappa_q, one_minus_cos, dim) -> torch.Tensor:
    r""":math:`KL(\mathrm{vMF}(\mu_p, \kappa_p) \| \mathrm{vMF}(\mu_q, \kappa_q))` from the concentrations and
    ``one_minus_cos`` :math:`= 1 - \mu_q^\top \mu_p` (pass :math:`\|\mu_p - \mu_q\|^2 / 2`, exact 0 for equal
    directions).

    .. math:: KL = \log C_d(\kappa_p) + \kappa_p A_d(\kappa_p) - \log C_d(\kappa_q) - \kappa_q A_d(\kappa_p) \mu_q^\top \mu_p,

    summed as :math:`(g_q - g_p) + (\kappa_q - \kappa_p)/\kappa_p \cdot \kappa_p (1 - A_p) + \kappa_q A_p (1 - \cos)`
    with :math:`g = -\log C_d - \kappa` (``csrc/math/vmf.h``), so that nothing of size :math:`\kappa` cancels.
    Differentiable in all three tensors.
    """
    kappa_p = _as_float_tensor(kappa_p, name="kappa_p")
    kappa_q = _as_float_tensor(kappa_q, kappa_p, name="kappa_q")
    one_minus_cos = _as_float_tensor(one_minus_cos, kappa_p, name="one_minus_cos")
    _check_dim_value(dim, "vmf_kl_vmf")
    return ops.vmf_kl_vmf(kappa_p, kappa_q, one_minus_cos, _as_dim_tensor(dim, kappa_p))


def vmf_mean_resultant_inverse(r, dim) -> torch.Tensor:
    r"""The inverse of the mean resultant length: :math:`\kappa` with :math:`A_d(\kappa) = r`.

    This is the maximum-likelihood concentration of a von Mises-Fisher fit whose sample mean vector has
    length :math:`\bar r` (:meth:`hvae_ext.VonMisesFisher.fit` calls it).

    Args:
        r: mean resultant length, :math:`0 \le r < 1` (float32 or float64 tensor, or a number).
        dim: the ambient dimension :math:`d \ge 2`: an int, or an integer tensor broadcastable with ``r``.

    Returns :math:`\kappa \ge 0`; ``0`` at ``r = 0``; NaN for ``r < 0``, ``r >= 1`` or NaN (as
    ``torch.special`` does outside a function's domain). A ``dim`` that is not an int or an integer
    tensor raises ``TypeError``; ``dim < 2`` raises ``ValueError``.

    Method: safeguarded Newton iteration on :math:`\kappa (A_d - r)(1 + r A_d) / (A_d (1 - r^2))`, a
    rescaling of :math:`A_d(\kappa) - r` with slope in :math:`[1, 1.4)` in every regime, bracketed by
    :math:`r (d-1) / (1-r^2) \le \kappa \le r d / (1-r^2)`, started from an Amos-type approximation (see
    ``csrc/math/vmf_fit.h``). Accuracy against 50-digit mpmath roots: relative error at most
    :math:`10^{-12} \max(1, c)` in float64 (:math:`2\cdot 10^{-6} \max(1, c)` in float32), with
    :math:`c = r / (\kappa A_d'(\kappa))` the condition number of the problem (about :math:`1/(1-r)` when
    :math:`\kappa \gg d`), for :math:`r` in :math:`[10^{-8}, 1 - 10^{-10}]` and :math:`d` in :math:`[2, 10^5]`
    (tests/unit/distributions/test_fit.py; measured errors in docs/fitting.md).

    Differentiable in ``r``: :math:`\partial\kappa/\partial r = 1/A_d'(\kappa)` by a hand-written backward
    kernel (``d`` at ``r = 0``).
    """
    r = _as_float_tensor(r, name="r")
    _check_dim_value(dim, "vmf_mean_resultant_inverse")  # no device read: an int dim is checked on the host
    return ops.vmf_mean_resultant_inverse(r, _as_dim_tensor(dim, r))
