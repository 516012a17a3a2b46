r"""The Power Spherical distribution on :math:`S^{d-1} \subset R^d` (De Cao and Aziz 2020, arXiv 2006.04437).

Density with respect to the uniform surface measure: :math:`C_d(\kappa)\,(1 + \mu^\top z)^\kappa`. With
:math:`\alpha = (d-1)/2 + \kappa` and :math:`\beta = (d-1)/2`, :math:`t = \mu^\top z = 2B - 1` where
:math:`B \sim \mathrm{Beta}(\alpha, \beta)`, and

.. math::

    \log C_d(\kappa) = -\big[(\alpha + \beta) \log 2 + \beta \log \pi + \log\Gamma(\alpha) - \log\Gamma(\alpha + \beta)\big].

The closed forms below (normalizer, KL to the uniform, entropy, moments) are computed in float64 and written so that
they stay accurate where the textbook forms cancel: for :math:`\kappa` up to :math:`10^{12}` (differences of
:math:`\log\Gamma` and of :math:`\psi` at large arguments by their asymptotic series) and for :math:`\kappa \to 0`
(the KL by its Taylor series in :math:`\kappa`).
"""

from __future__ import annotations

import functools
import math

import torch
from torch.distributions import constraints

from .._ops import ops
from ._spherical import SphericalDistribution
from ._validation import (
    HALF_DTYPES,
    check_float_value,
    check_power_spherical_arguments,
)
from .constraints import unit_sphere

__all__ = ["PowerSpherical"]

# Arguments from which lgamma(z + s) - lgamma(z) and psi(z + s) - psi(z) use the asymptotic series (truncation
# below 1e-17 of the terms kept); below it, torch.lgamma / torch.digamma directly (absolute error ~ eps lgamma).
_ASYMPTOTIC_FROM = 100.0


def _lgamma_shift(z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    r""":math:`\log\Gamma(z + s) - \log\Gamma(z)` for :math:`z > 0, s \ge 0` (float64), without the cancellation of
    two large :math:`\log\Gamma` at large :math:`z`: Stirling's series of both, differenced term by term,
    :math:`(z - 1/2)\,\mathrm{log1p}(s/z) + s \log(z + s) - s + \sum_k \frac{B_{2k}}{2k(2k-1)}\,[(z+s)^{1-2k} - z^{1-2k}]`."""
    big = z >= _ASYMPTOTIC_FROM
    zb = torch.where(big, z, torch.full_like(z, _ASYMPTOTIC_FROM))
    w = zb + s
    iz, iw = 1.0 / zb, 1.0 / w
    series = (iw - iz) / 12.0 - (iw**3 - iz**3) / 360.0 + (iw**5 - iz**5) / 1260.0 - (iw**7 - iz**7) / 1680.0
    asym = (zb - 0.5) * torch.log1p(s / zb) + s * torch.log(w) - s + series
    zs = torch.where(big, torch.ones_like(z), z)
    direct = torch.lgamma(zs + s) - torch.lgamma(zs)
    return torch.where(big, asym, direct)


def _digamma_shift(z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    r""":math:`\psi(z + s) - \psi(z)` (float64), by the asymptotic series of :math:`\psi` differenced term by term at
    large :math:`z` (no cancellation of two large :math:`\log`)."""
    big = z >= _ASYMPTOTIC_FROM
    zb = torch.where(big, z, torch.full_like(z, _ASYMPTOTIC_FROM))
    w = zb + s
    iz2, iw2 = 1.0 / (zb * zb), 1.0 / (w * w)
    asym = (
        torch.log1p(s / zb)
        + 0.5 * s / (zb * w)
        - (iw2 - iz2) / 12.0
        + (iw2**2 - iz2**2) / 120.0
        - (iw2**3 - iz2**3) / 252.0
    )
    zs = torch.where(big, torch.ones_like(z), z)
    direct = torch.digamma(zs + s) - torch.digamma(zs)
    return torch.where(big, asym, direct)


def _log_sphere_area(d: int) -> float:
    return math.log(2.0) + 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d)


def log_normalizer(kappa: torch.Tensor, d: int) -> torch.Tensor:
    r""":math:`\log C_d(\kappa)` (float64 in, float64 out; differentiable)."""
    beta = 0.5 * (d - 1)
    alpha = kappa + beta
    return -(
        (alpha + beta) * math.log(2.0) + beta * math.log(math.pi) - _lgamma_shift(alpha, torch.full_like(alpha, beta))
    )


def _trigamma(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\psi'(x)` for :math:`x > 0` to ~2e-16 relative (``torch.polygamma(1, .)`` is accurate to ~5e-10 only):
    the recurrence over 40 steps, then the asymptotic series at :math:`y = x + 40` with ten Bernoulli terms."""
    s = torch.zeros_like(x)
    for k in range(_TRIGAMMA_SHIFT - 1, -1, -1):
        s = s + 1.0 / ((x + k) * (x + k))
    iy = 1.0 / (x + _TRIGAMMA_SHIFT)
    iy2 = iy * iy
    tail = torch.zeros_like(x)
    for b in reversed(_BERNOULLI_2K):  # sum_k B_2k / y^(2k+1)
        tail = (tail + b) * iy2
    return s + iy + 0.5 * iy2 + tail * iy


_TRIGAMMA_SHIFT = 40
_BERNOULLI_2K = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510, 43867 / 798, -174611 / 330)

# The KL's Taylor series at kappa = 0 for kappa < _KL_TAYLOR_RATIO * beta: its radius of convergence is beta (the pole
# of lgamma(kappa + beta) at kappa = -beta), so the terms fall by ~ kappa / beta <= 0.1; 15 terms.
_KL_TAYLOR_RATIO = 0.1
_KL_TAYLOR_TERMS = 15


def kl_uniform(kappa: torch.Tensor, d: int) -> torch.Tensor:
    r""":math:`KL(PS(\mu, \kappa) \| U(S^{d-1})) = \log C_d(\kappa) + \kappa E[\log(1 + t)] + \log|S^{d-1}|`
    (float64 in and out; differentiable). With :math:`E[\log(1+t)] = \log 2 + \psi(\alpha) - \psi(\alpha+\beta)` and
    Legendre's duplication formula, the constants cancel exactly and

    .. math::

        KL = [\log\Gamma(\kappa + 2\beta) - \log\Gamma(\kappa + \beta)] - [\log\Gamma(2\beta) - \log\Gamma(\beta)]
             - \kappa\,[\psi(\kappa + 2\beta) - \psi(\kappa + \beta)],

    which is :math:`O(\kappa^2)` at small :math:`\kappa`: there (:math:`\kappa < \beta / 10`) its Taylor series
    :math:`-\sum_{n=2}^{16} \frac{n-1}{n!} [\psi^{(n-1)}(2\beta) - \psi^{(n-1)}(\beta)]\,\kappa^n`, so the KL stays
    accurate (and non-negative) down to :math:`\kappa = 0`."""
    beta = 0.5 * (d - 1)
    b = torch.full_like(kappa, beta)
    zk = kappa + beta
    main = _lgamma_shift(zk, b) - (math.lgamma(2 * beta) - math.lgamma(beta)) - kappa * _digamma_shift(zk, b)
    small = kappa < _KL_TAYLOR_RATIO * beta
    ks = torch.where(small, kappa, torch.zeros_like(kappa))
    taylor = torch.zeros_like(kappa)
    k_pow = ks * ks
    for coefficient in _kl_taylor_coefficients(d):
        taylor = taylor - coefficient * k_pow
        k_pow = k_pow * ks
    return torch.where(small, taylor, main)


@functools.cache
def _kl_taylor_coefficients(d: int) -> tuple[float, ...]:
    r"""The coefficients :math:`rac{n-1}{n!} [\psi^{(n-1)}(2eta) - \psi^{(n-1)}(eta)]`, n = 2 .. 16, of the KL's
    Taylor series (they depend on d only: computed once per d, not per element)."""
    beta = 0.5 * (d - 1)
    b = torch.tensor(beta, dtype=torch.float64)
    two_beta = torch.tensor(2 * beta, dtype=torch.float64)
    out = []
    fact = 1.0
    for n in range(2, _KL_TAYLOR_TERMS + 2):
        fact *= n
        if n == 2:
            h = _trigamma(two_beta) - _trigamma(b)
        else:
            h = torch.polygamma(n - 1, two_beta) - torch.polygamma(n - 1, b)
        out.append((n - 1) / fact * float(h))
    return tuple(out)


class PowerSpherical(SphericalDistribution):
    r"""The Power Spherical distribution :math:`\mathrm{PS}(\mu, \kappa)` on the unit sphere
    :math:`S^{d-1} \subset R^d` (De Cao and Aziz 2020), with density :math:`C_d(\kappa) (1 + \mu^\top z)^\kappa` with
    respect to the uniform surface measure.

    Args:
        loc: mean direction :math:`\mu`, shape ``(..., d)``, unit norm along the last axis, ``d >= 2``.
        concentration: :math:`\kappa \ge 0` (:math:`\kappa = 0` is the uniform law), of the batch shape ``(...)``
            or ``(..., 1)``. A Python number is taken as a scalar of ``loc``'s dtype and device.
        validate_args: check the arguments (unit norm of ``loc``, finite non-negative ``concentration``) and the
            values passed to :meth:`log_prob`. Default: torch's global setting.

    The conventions are those of :class:`~hvae_ext.VonMisesFisher` (ambient dimension ``d``, batch shapes, mixed
    precision, ``generator=``). ``rsample`` runs one compiled kernel (CPU or CUDA, no rejection of whole samples, no
    host synchronisation): :math:`t = 2B - 1` with :math:`B = G_a / (G_a + G_b)` from two Gamma variates
    (Marsaglia and Tsang 2000), :math:`G_a \sim \Gamma(\alpha)`, :math:`G_b \sim \Gamma(\beta)`,
    :math:`\alpha = (d-1)/2 + \kappa`, :math:`\beta = (d-1)/2`, a uniform tangent direction, and the reflection of the
    vMF sampler that maps :math:`e_1` to :math:`\mu`. Gradients: ``loc`` through the reflection, ``concentration``
    through :math:`t` by implicit reparameterization of :math:`G_a` (Figurnov et al. 2018),
    :math:`dt/d\kappa = (1 - t)\, (dG_a/d\alpha) / (G_a + G_b)`, unbiased; :math:`dG_a/d\alpha` accurate to
    ~1e-12 relative (series and continued fraction of the incomplete gamma function, Temme's expansion for
    :math:`\alpha > 1000`).
    """

    arg_constraints = {"loc": unit_sphere, "concentration": constraints.nonnegative}
    support = unit_sphere
    has_rsample = True

    def __init__(self, loc, concentration, validate_args=None):
        self._init_parameters(
            loc, concentration, validate_args, lambda m, k, dtype, given: check_power_spherical_arguments(m, k, dtype)
        )

    def expand(self, batch_shape, _instance=None):
        return self._expand_into(self._get_checked_instance(PowerSpherical, _instance), batch_shape)

    def rsample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        z, _gammas, _kappa = self._run_sampler(ops.power_spherical_sample, sample_shape, generator)
        return z.to(self._sample_dtype)

    # --- closed forms (float64 inside, the parameters' dtype out) ---------------------------------------------
    def _f64(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.loc.dtype)

    def log_normalizer(self) -> torch.Tensor:
        r""":math:`\log C_d(\kappa)`."""
        return self._f64(log_normalizer(self.concentration.double(), self.dim))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        r""":math:`\log C_d(\kappa) + \kappa \log(1 + \mu^\top z)`, with :math:`1 + \mu^\top z = |\mu + z|^2 / 2`
        for unit vectors (full precision near :math:`z = -\mu`, where the density is 0: :math:`-\infty` exactly
        where :math:`z = -\mu` and :math:`\kappa > 0`; at :math:`\kappa = 0` the uniform density everywhere)."""
        if self._validate_args:
            check_float_value(value)
            if value.device != self.loc.device:
                raise ValueError(f"value is on {value.device} but the distribution is on {self.loc.device}")
            self._validate_sample(value)
        if value.dtype in HALF_DTYPES:
            value = value.to(self.loc.dtype)
        half_sq = 0.5 * (self.loc + value).square().sum(-1)
        log_c = self.log_normalizer()
        return log_c + torch.xlogy(self.concentration, half_sq)

    def entropy(self) -> torch.Tensor:
        r""":math:`H = \log|S^{d-1}| - KL(PS \| U)`."""
        kl = kl_uniform(self.concentration.double(), self.dim)
        return self._f64(_log_sphere_area(self.dim) - kl)

    def _moments(self):
        kappa = self.concentration.double()
        beta = 0.5 * (self.dim - 1)
        alpha = kappa + beta
        ab = alpha + beta
        mean_t = kappa / ab
        var_t = 4.0 * alpha * beta / (ab * ab * (ab + 1.0))
        # E[1 - t^2] / (d - 1) = 4 alpha beta / ((alpha + beta)(alpha + beta + 1)) / (2 beta)
        tangent = 2.0 * alpha / (ab * (ab + 1.0))
        return mean_t, var_t, tangent

    @property
    def mean(self) -> torch.Tensor:
        r""":math:`E[z] = E[t]\,\mu`, :math:`E[t] = (\alpha - \beta) / (\alpha + \beta) = \kappa / (d - 1 + \kappa)`."""
        mean_t, _, _ = self._moments()
        return self._f64(mean_t).unsqueeze(-1) * self.loc

    @property
    def mode(self) -> torch.Tensor:
        """``loc`` (for concentration 0, the uniform law, every point is a mode; ``loc`` is returned)."""
        return self.loc

    @property
    def covariance_matrix(self) -> torch.Tensor:
        r""":math:`\mathrm{Var}[t]\,\mu\mu^\top + \frac{E[1 - t^2]}{d - 1} (I - \mu\mu^\top)`."""
        _, var_t, tangent = self._moments()
        var_t, tangent = self._f64(var_t), self._f64(tangent)
        mu = self.loc
        outer = mu.unsqueeze(-1) * mu.unsqueeze(-2)
        eye = torch.eye(self.dim, dtype=mu.dtype, device=mu.device)
        return tangent[..., None, None] * (eye - outer) + var_t[..., None, None] * outer

    @property
    def variance(self) -> torch.Tensor:
        """The diagonal of :attr:`covariance_matrix`."""
        _, var_t, tangent = self._moments()
        mu2 = self.loc.square()
        return self._f64(tangent).unsqueeze(-1) * (1 - mu2) + self._f64(var_t).unsqueeze(-1) * mu2

    def __repr__(self) -> str:
        return f"PowerSpherical(loc: {tuple(self.loc.shape)}, concentration: {tuple(self.concentration.shape)})"
