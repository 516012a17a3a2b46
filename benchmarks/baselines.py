"""Baselines the benchmarks measure hvae_ext against, on the same machine and in the same run.

* :func:`wood_rsample` -- a clear pure-PyTorch implementation of Wood's (1994) vMF rejection sampler, written
  as a careful user would write it: vectorized rejection rounds in Python over the rows still rejected,
  Beta proposals from ``torch.distributions.Beta``, a Householder reflection, gradients by autograd through
  the accepted proposal (the reparameterization term ``g_rep`` only, as in the paper's reference code).
* :func:`expected_proposals` -- the exact mean number of proposals per accepted sample of Wood's envelope
  (the envelope hvae_ext's kernel uses too, see ``csrc/math/wood.h``), by quadrature.
* :func:`scipy_log_normalizer` / :func:`scipy_log_normalizer_grad` -- log C_d(kappa) and its derivative
  -A_d(kappa) from scipy's exponentially scaled Bessel function ``ive``.
* :func:`power_spherical_rsample` -- the ``power_spherical`` package (a different distribution with no
  rejection step), when installed.
* :func:`wood_rsample_validated`, :func:`power_spherical_rsample_validated` -- the same with the argument checks
  their users get with torch's default ``validate_args`` (on): the reference code's ``VonMisesFisher(loc, scale)``
  (s-vae-pytorch) checks ``loc`` real and ``scale`` positive through ``arg_constraints``, ``PowerSpherical``
  its own ``arg_constraints``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "wood_rsample",
    "expected_proposals",
    "scipy_log_normalizer",
    "scipy_log_normalizer_grad",
    "scipy_log_normalizer_and_grad",
    "power_spherical_rsample",
    "wood_rsample_validated",
    "power_spherical_rsample_validated",
    "HAVE_POWER_SPHERICAL",
]

try:  # optional peer; install with `pip install --no-deps power_spherical` (it must not pull another torch)
    from power_spherical import PowerSpherical

    HAVE_POWER_SPHERICAL = True
except ImportError:  # pragma: no cover - depends on the environment
    PowerSpherical = None
    HAVE_POWER_SPHERICAL = False


# --- pure-PyTorch Wood sampler ---------------------------------------------------------------------------


def wood_envelope(kappa: torch.Tensor, d: int):
    """b, x0 and c of Wood's envelope, with the cancellation-free form of b."""
    dm1 = d - 1.0
    b = dm1 / (2.0 * kappa + torch.sqrt(4.0 * kappa * kappa + dm1 * dm1))
    x0 = (1.0 - b) / (1.0 + b)
    c = kappa * x0 + dm1 * torch.log1p(-x0 * x0)
    return b, x0, c


def sample_w(kappa: torch.Tensor, d: int, generator: torch.Generator | None = None):
    """w = mu^T z for one sample per row of ``kappa`` (shape (N,)), by Wood's rejection algorithm.

    Returns ``(w, proposals)``: ``w`` differentiable in ``kappa`` through the accepted proposal, and the
    total number of proposals drawn (an int; the loop already synchronizes every round to know which rows
    are left, so reading it costs nothing extra).
    """
    n = kappa.shape[0]
    dm1 = d - 1.0
    b, x0, c = wood_envelope(kappa, d)
    half = torch.tensor(dm1 / 2.0, dtype=kappa.dtype, device=kappa.device)
    beta = torch.distributions.Beta(half, half, validate_args=False)
    w = torch.zeros_like(kappa)
    remaining = torch.arange(n, device=kappa.device)
    proposals = 0
    while remaining.numel() > 0:  # one vectorized round over the rows still rejected
        m = remaining.numel()
        proposals += m
        k, b_r, x0_r, c_r = kappa[remaining], b[remaining], x0[remaining], c[remaining]
        eps = beta.sample((m,))  # the Beta proposal does not depend on kappa: no gradient needed
        w_prop = (1.0 - (1.0 + b_r) * eps) / (1.0 - (1.0 - b_r) * eps)
        u = torch.rand(m, dtype=kappa.dtype, device=kappa.device, generator=generator)
        accept = k * w_prop + dm1 * torch.log1p(-x0_r * w_prop) - c_r >= torch.log(u)
        w = w.index_put((remaining[accept],), w_prop[accept])  # out of place: autograd flows into w_prop
        remaining = remaining[~accept]
    return w, proposals


def householder(z: torch.Tensor, loc: torch.Tensor) -> torch.Tensor:
    """Applies the reflection that maps e_1 to ``loc`` (rows of unit norm) to the rows of ``z``."""
    e1 = torch.zeros_like(loc)
    e1[:, 0] = 1.0
    u = e1 - loc
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # loc == e_1: u = 0, the reflection is skipped
    return z - 2.0 * (z * u).sum(-1, keepdim=True) * u


def wood_rsample(
    loc: torch.Tensor, kappa: torch.Tensor, generator: torch.Generator | None = None, return_proposals: bool = False
):
    """One vMF(loc[i], kappa[i]) sample per row: ``loc`` (N, d) of unit rows, ``kappa`` (N,) > 0.

    Differentiable in ``loc`` and ``kappa`` (kappa through w = mu^T z only; no g_cor correction term).
    """
    n, d = loc.shape
    w, proposals = sample_w(kappa, d, generator)
    v = torch.randn(n, d - 1, dtype=loc.dtype, device=loc.device, generator=generator)
    v = v / v.norm(dim=-1, keepdim=True)
    w1 = w.unsqueeze(-1)
    z = torch.cat([w1, torch.sqrt((1.0 - w1 * w1).clamp_min(0.0)) * v], dim=-1)
    z = householder(z, loc)
    return (z, proposals) if return_proposals else z


def expected_proposals(d: int, kappa: float) -> float:
    """Exact mean number of proposals per accepted sample of Wood's envelope, 1 / P(accept), by quadrature.

    P(accept) = E_eps[exp(kappa w + (d-1) log(1 - x0 w) - c)] with eps ~ Beta((d-1)/2, (d-1)/2). hvae_ext's
    kernel uses the same envelope for d != 3 and exact inversion (one proposal) for d = 3; the value returned
    here is Wood's, for every d.
    """
    from scipy import integrate, stats

    dm1 = d - 1.0
    b = dm1 / (2.0 * kappa + math.sqrt(4.0 * kappa * kappa + dm1 * dm1))
    x0 = (1.0 - b) / (1.0 + b)
    c = kappa * x0 + dm1 * math.log1p(-x0 * x0)
    a = dm1 / 2.0
    logpdf = stats.beta(a, a).logpdf

    def integrand(eps):
        w = (1.0 - (1.0 + b) * eps) / (1.0 - (1.0 - b) * eps)
        return math.exp(kappa * w + dm1 * math.log1p(-x0 * w) - c + logpdf(eps))

    # the Beta mass concentrates around 1/2 with width ~ 1/sqrt(d): give quad the bulk explicitly
    s = 0.5 / math.sqrt(d)
    pts = sorted({max(1e-12, 0.5 - 8 * s), 0.5, min(1 - 1e-12, 0.5 + 8 * s)})
    p, _ = integrate.quad(integrand, 0.0, 1.0, points=pts, limit=500, epsabs=0.0, epsrel=1e-10)
    return 1.0 / p


# --- scipy normalizer ------------------------------------------------------------------------------------


def scipy_log_normalizer(kappa: np.ndarray, d: int) -> np.ndarray:
    """log C_d(kappa) = (d/2-1) log kappa - (d/2) log 2 pi - (log ive(d/2-1, kappa) + kappa)."""
    from scipy.special import ive

    v = d / 2.0 - 1.0
    return v * np.log(kappa) - (d / 2.0) * math.log(2.0 * math.pi) - (np.log(ive(v, kappa)) + kappa)


def scipy_log_normalizer_grad(kappa: np.ndarray, d: int) -> np.ndarray:
    """d log C_d / d kappa = -A_d(kappa) = -ive(d/2, kappa) / ive(d/2-1, kappa)."""
    from scipy.special import ive

    return -ive(d / 2.0, kappa) / ive(d / 2.0 - 1.0, kappa)


def scipy_log_normalizer_and_grad(kappa: np.ndarray, d: int):
    """Both of the above from two ``ive`` calls (``ive(d/2-1)`` shared), as a careful user would compute them."""
    from scipy.special import ive

    v = d / 2.0 - 1.0
    i_v = ive(v, kappa)
    log_c = v * np.log(kappa) - (d / 2.0) * math.log(2.0 * math.pi) - (np.log(i_v) + kappa)
    return log_c, -ive(v + 1.0, kappa) / i_v


# --- power_spherical -------------------------------------------------------------------------------------


def power_spherical_rsample(loc: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """One PowerSpherical(loc[i], kappa[i]) sample per row (a different distribution: no rejection step)."""
    if not HAVE_POWER_SPHERICAL:
        raise RuntimeError("power_spherical is not installed")
    return PowerSpherical(loc, kappa, validate_args=False).rsample()


# --- as users run them: torch's default argument validation ---------------------------------------------


class ReferenceArguments(torch.distributions.Distribution):
    """The argument checks of the reference code's ``VonMisesFisher(loc, scale, validate_args=None)``
    (s-vae-pytorch, hyperspherical_vae/distributions/von_mises_fisher.py): ``arg_constraints`` ``loc`` real and
    ``scale`` positive, with batch shape ``loc.size()``, checked by ``Distribution.__init__`` when validation is on
    (torch's default)."""

    arg_constraints = {"loc": torch.distributions.constraints.real, "scale": torch.distributions.constraints.positive}

    def __init__(self, loc, scale, validate_args=None):
        self.loc, self.scale = loc, scale
        super().__init__(loc.size(), validate_args=validate_args)


def wood_rsample_validated(loc: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """:func:`wood_rsample` after the argument checks of the reference code's constructor (scale of shape
    (N, 1), as it takes it)."""
    ReferenceArguments(loc, kappa.unsqueeze(-1))
    return wood_rsample(loc, kappa)


def power_spherical_rsample_validated(loc: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """``PowerSpherical(loc, kappa).rsample()`` with torch's default ``validate_args``."""
    if not HAVE_POWER_SPHERICAL:
        raise RuntimeError("power_spherical is not installed")
    return PowerSpherical(loc, kappa).rsample()
