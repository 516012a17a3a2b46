r"""The von Mises-Fisher distribution on :math:`S^{d-1} \subset R^d`."""

from __future__ import annotations

import os

import torch
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from .. import special
from .._ops import ops
from ._spherical import SphericalDistribution
from ._validation import HALF_DTYPES, check_float_value, check_sample_on_sphere, check_vmf_arguments
from .constraints import unit_sphere

__all__ = ["VonMisesFisher"]


def _sampler_checks_enabled() -> bool:
    return _SAMPLER_CHECKS or os.environ.get("HVAE_CHECK_SAMPLES", "") not in ("", "0")


_SAMPLER_CHECKS = False


def set_sampler_checks(enabled: bool) -> None:
    """Opt-in check of every ``rsample`` (also on with the environment variable ``HVAE_CHECK_SAMPLES=1``).

    The rejection loop of each sample row is bounded (``kMaxWoodRounds`` = 10,000 proposals, out of reach
    for valid input: the mean is below 3). A row that exhausts the bound raises in the CPU kernel, naming
    the row; the CUDA kernel cannot raise without a host synchronisation, so there the row's sample is NaN.
    With the checks on, ``rsample`` looks at the rows after each call (one synchronisation on CUDA) and
    raises a ``RuntimeError`` naming the first NaN row, its parameter row, ``kappa`` and ``d``. Skipped
    inside ``torch.compile``.
    """
    global _SAMPLER_CHECKS
    _SAMPLER_CHECKS = bool(enabled)


def check_sample_rows(one_minus_w: torch.Tensor, kappa: torch.Tensor, d: int) -> None:
    """Raises naming the first sample row whose rejection loop gave NaN (see :func:`set_sampler_checks`)."""
    bad = torch.isnan(one_minus_w)
    if one_minus_w.numel() and bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        b = kappa.shape[0]
        raise RuntimeError(
            f"vmf_sample: sample row {row} (parameter row {row % b}, kappa = {kappa[row % b].item()!r}, d = {d}) "
            f"is NaN: its rejection loop exhausted the bound of 10000 proposals or kappa is not finite; this "
            f"indicates invalid input, please report it"
        )


class VonMisesFisher(SphericalDistribution):
    r"""The von Mises-Fisher distribution :math:`\mathrm{vMF}(\mu, \kappa)` on the unit sphere
    :math:`S^{d-1} \subset R^d`, with density :math:`C_d(\kappa)\, e^{\kappa \mu^\top z}` with respect to the
    uniform surface measure.

    Args:
        loc: mean direction :math:`\mu`, shape ``(..., d)``, unit norm along the last axis, ``d >= 2``.
        concentration: :math:`\kappa > 0`, of the batch shape ``(...)``; a trailing singleton
            ``(..., 1)``, as the reference code of Davidson et al. (2018) uses, is accepted too.
            A Python number is taken as a scalar of ``loc``'s dtype and device.
        validate_args: check the arguments (unit norm of ``loc``, finite positive ``concentration``)
            and the values passed to :meth:`log_prob`. Default: torch's global setting.

    Validation: each argument is checked by one compiled pass over it (no temporaries, no autograd graph); the
    error names the argument, the rule and the first offending row. On CUDA the checks' results are read
    once per construction (and once per validated :meth:`log_prob`): one host synchronisation, which also
    prevents CUDA graph capture. ``validate_args=False`` (or, for every distribution,
    ``torch.distributions.Distribution.set_default_validate_args(False)``) skips the checks: that path has no host
    synchronisation and can be captured in a CUDA graph.

    Mixed precision: float16/bfloat16 parameters are accepted (also a mix with float32) and cast up:
    ``loc``, ``concentration``, ``log_prob``, ``entropy``, ``mean`` and KLs are float32 (float64 if
    either parameter is float64), ``rsample``/``sample`` return the dtype of the ``loc`` given (computed in
    float32 and rounded once). Under ``torch.autocast`` the compiled ops run in float32.

    ``rsample`` runs Wood's (1994) rejection sampler inside one compiled kernel (CPU or CUDA: no Python
    loop, no host synchronisation), with exact inversion for ``d = 3``. Its gradients are unbiased for every
    ``d``: ``loc`` through the reflection that maps :math:`e_1` to :math:`\mu`, ``concentration`` through
    :math:`w = \mu^\top z` by implicit reparameterization (Figurnov et al., 2018),
    :math:`\partial w / \partial \kappa = -\partial_\kappa F(w; \kappa) / p(w; \kappa)` with :math:`F` the CDF of
    :math:`w`. This is the exact pathwise gradient of the marginal of :math:`w`, so it needs no score-function
    correction (the :math:`g_{cor}` term of Naesseth et al., 2017) and adds no variance beyond the
    reparameterization term; see ``docs/gradients.md``.

    Product of spheres. ``k`` independent factors :math:`S^m \times \dots \times S^m` (Davidson et al., 2019:
    ``d = k m`` degrees of freedom in :math:`R^{d+k}`, each factor with its own :math:`\mu_i` and
    :math:`\kappa_i`) are torch's :class:`~torch.distributions.Independent` over a batch of ``k``::

        q = Independent(VonMisesFisher(loc, kappa), 1)   # loc (..., k, m+1), kappa (..., k)
        z = q.rsample()                                   # (..., k, m+1): all rows in one sampler call
        q.log_prob(z)                                     # (...): the sum over the factors
        prior = Independent(HypersphericalUniform(m + 1).expand((k,)), 1)
        kl_divergence(q, prior)                           # (...): the sum of the factor KLs

    ``z.flatten(-2)`` gives the factors side by side, shape ``(..., d + k)``. The S-VAE and S-VGAE of
    :mod:`hvae_ext.models` build this for ``spheres=k``.
    """

    arg_constraints = {"loc": unit_sphere, "concentration": constraints.positive}
    support = unit_sphere
    has_rsample = True

    def __init__(self, loc, concentration, validate_args=None):
        self._init_parameters(
            loc, concentration, validate_args, lambda m, k, dtype, given: check_vmf_arguments(m, k, dtype, given=given)
        )

    def expand(self, batch_shape, _instance=None):
        return self._expand_into(self._get_checked_instance(VonMisesFisher, _instance), batch_shape)

    def rsample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        z, one_minus_w, kappa = self._run_sampler(ops.vmf_sample, sample_shape, generator)
        if not torch.compiler.is_compiling() and _sampler_checks_enabled():
            check_sample_rows(one_minus_w, kappa, self.dim)
        return z.to(self._sample_dtype)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            check_float_value(value)
            if value.device != self.loc.device:
                raise ValueError(f"value is on {value.device} but the distribution is on {self.loc.device}")
            check_sample_on_sphere(self, value)
        if value.dtype in HALF_DTYPES:
            value = value.to(self.loc.dtype)
        return self._log_normalizer + self.concentration * (self.loc * value).sum(-1)

    def entropy(self) -> torch.Tensor:
        return special.vmf_entropy(self.concentration, self.dim)  # without cancellation at large kappa

    @lazy_property
    def _log_normalizer(self) -> torch.Tensor:
        return special.vmf_log_normalizer(self.concentration, self.dim)

    @lazy_property
    def _mean_resultant(self) -> torch.Tensor:
        return special.vmf_mean_resultant(self.concentration, self.dim)

    @property
    def mean(self) -> torch.Tensor:
        """:math:`E[z] = A_d(\\kappa)\\, \\mu`."""
        return self._mean_resultant.unsqueeze(-1) * self.loc

    @property
    def mode(self) -> torch.Tensor:
        return self.loc

    def _covariance_terms(self) -> tuple[torch.Tensor, torch.Tensor]:
        # Cov[z] = (A / kappa) (I - mu mu^T) + A' mu mu^T, with A' = Var[mu^T z] = 1 - A^2 - (d - 1) A / kappa
        a = self._mean_resultant
        kappa = self.concentration
        tangent = a / kappa
        dim = torch.full((), self.dim, dtype=torch.int64, device=kappa.device)  # no host-to-device copy
        radial = ops.vmf_mean_resultant_backward(torch.ones_like(kappa), kappa, dim)
        return tangent, radial

    @property
    def covariance_matrix(self) -> torch.Tensor:
        tangent, radial = self._covariance_terms()
        mu = self.loc
        outer = mu.unsqueeze(-1) * mu.unsqueeze(-2)
        eye = torch.eye(self.dim, dtype=mu.dtype, device=mu.device)
        return tangent[..., None, None] * (eye - outer) + radial[..., None, None] * outer

    @property
    def variance(self) -> torch.Tensor:
        tangent, radial = self._covariance_terms()
        mu2 = self.loc.square()
        return tangent.unsqueeze(-1) * (1 - mu2) + radial.unsqueeze(-1) * mu2

    @classmethod
    def fit(cls, x, weight=None, validate_args=None) -> VonMisesFisher:
        r"""The maximum-likelihood von Mises-Fisher distribution of points ``x``.

        Args:
            x: points on the sphere, shape ``(..., n, d)`` (``n >= 1`` points of dimension ``d >= 2``, unit
                norm along the last axis to 64 eps max(1, sqrt(d)), as ``loc``), float32 or float64.
            weight: optional non-negative finite weights of shape ``(..., n)`` (or broadcastable to it) with a
                positive sum over the ``n`` points of every batch element.
            validate_args: passed to the returned distribution.

        Returns a ``VonMisesFisher`` of batch shape ``(...)`` with
        :math:`\hat\mu = m / |m|` and :math:`\hat\kappa = A_d^{-1}(|m|)`, :math:`m = \sum_i w_i x_i / \sum_i w_i`
        (:func:`hvae_ext.special.vmf_mean_resultant_inverse`, accurate to ~1e-16 times the condition number).
        Differentiable with respect to ``x`` and ``weight``.

        Rules at the edges: a mean resultant length :math:`\bar r = |m|` above :math:`1 - \epsilon` of the dtype
        (all points equal, up to rounding: the data cannot resolve a larger concentration) is taken as
        :math:`1 - \epsilon`, giving :math:`\hat\kappa = A_d^{-1}(1 - \epsilon) \approx (d - 1) / (2 \epsilon)`,
        finite; :math:`m = 0` (e.g. two antipodal points) raises ``ValueError``, since the maximum-likelihood fit
        is then the uniform distribution (concentration 0), which this class does not allow. Points off the
        unit sphere, ``n < 1``, negative or non-finite weights and weights that sum to 0 raise ``ValueError``.
        """
        from .fit import fit_von_mises_fisher

        return fit_von_mises_fisher(x, weight, validate_args=validate_args)

    def __repr__(self) -> str:
        return f"VonMisesFisher(loc: {tuple(self.loc.shape)}, concentration: {tuple(self.concentration.shape)})"
