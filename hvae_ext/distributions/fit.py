r"""Fitting von Mises-Fisher distributions to unit vectors: the maximum-likelihood fit
(:meth:`VonMisesFisher.fit`) and mixtures by expectation-maximization (:func:`fit_mixture`).

The maximum-likelihood estimate for points :math:`x_1..x_n` on :math:`S^{d-1}` with weights :math:`w_i \ge 0`:
with :math:`m = \sum_i w_i x_i / \sum_i w_i` and :math:`\bar r = |m|`,

.. math:: \hat\mu = m / \bar r, \qquad \hat\kappa = A_d^{-1}(\bar r),

the root of :math:`A_d(\kappa) = \bar r`, solved to ~1e-16 relative times the condition number by
:func:`hvae_ext.special.vmf_mean_resultant_inverse`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .. import special
from ._validation import as_float_tensor, check_finite, check_unit_norm

__all__ = ["fit_von_mises_fisher", "fit_mixture", "MixtureFit", "max_fit_mean_resultant"]


def max_fit_mean_resultant(dtype: torch.dtype) -> float:
    r"""The largest mean resultant length a fit uses: :math:`1 - \epsilon` of the dtype.

    Points stored in a dtype are unit vectors only to about its machine epsilon, so a mean resultant
    length above :math:`1 - \epsilon` (all points equal, up to rounding) cannot be told apart from 1: the
    fit then takes :math:`\bar r = 1 - \epsilon`, whose concentration
    :math:`A_d^{-1}(1 - \epsilon) \approx (d - 1) / (2 \epsilon)` is the largest the data can resolve
    (finite, so the fitted distribution is valid).
    """
    return 1.0 - torch.finfo(dtype).eps


def _check_points(x) -> torch.Tensor:
    x = as_float_tensor("x", x)
    if x.dim() < 2:
        raise ValueError(f"x must have shape (..., n, d): n points of dimension d, got shape {tuple(x.shape)}")
    n, d = x.shape[-2], x.shape[-1]
    if d < 2:
        raise ValueError(f"x must have shape (..., n, d) with d >= 2 (points on S^(d-1) in R^d), got d = {d}")
    if n < 1:
        raise ValueError(f"x must hold at least one point (n >= 1 along dimension -2), got shape {tuple(x.shape)}")
    check_unit_norm("x", x)
    return x


def _check_weight(weight, x: torch.Tensor) -> torch.Tensor:
    weight = as_float_tensor("weight", weight, like=x)
    if weight.dtype != x.dtype or weight.device != x.device:
        weight = weight.to(dtype=x.dtype, device=x.device)
    try:
        weight = weight.expand(x.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"weight must have shape (..., n) = {tuple(x.shape[:-1])} (one weight per point of x, shape "
            f"{tuple(x.shape)}), or broadcast to it; got shape {tuple(weight.shape)}"
        ) from None
    check_finite("weight", weight)
    if weight.numel() and not bool((weight >= 0).all()):
        raise ValueError(f"weight must be >= 0, but its smallest value is {weight.min().item()!r}")
    total = weight.sum(-1)
    if total.numel() and not bool((total > 0).all()):
        idx = tuple(int(i) for i in (total <= 0).nonzero()[0]) if total.dim() else ()
        where = f" (batch index {idx})" if idx else ""
        raise ValueError(f"weight must have a positive sum over the n points, but it sums to 0{where}")
    return weight


def _mean_vector(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return x.mean(-2)
    total = weight.sum(-1, keepdim=True)
    return torch.einsum("...n,...nd->...d", weight, x) / total


def _loc_and_concentration(m: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mu, kappa, rbar) from the weighted mean vector m; rbar clamped to [0, 1 - eps]. mu is NaN where rbar = 0."""
    rbar = torch.linalg.vector_norm(m, dim=-1)
    loc = m / rbar.unsqueeze(-1)
    r = rbar.clamp(max=max_fit_mean_resultant(m.dtype))
    kappa = special.vmf_mean_resultant_inverse(r, d)
    return loc, kappa, rbar


def fit_von_mises_fisher(x, weight=None, validate_args=None):
    r"""The maximum-likelihood :class:`~hvae_ext.VonMisesFisher` of points ``x`` (see :meth:`VonMisesFisher.fit`)."""
    from .von_mises_fisher import VonMisesFisher

    x = _check_points(x)
    if weight is not None:
        weight = _check_weight(weight, x)
    m = _mean_vector(x, weight)
    loc, kappa, rbar = _loc_and_concentration(m, x.shape[-1])
    if rbar.numel() and not bool((rbar > 0).all()):
        raise ValueError(
            "the (weighted) mean of x is the zero vector, so the mean direction is undefined: the "
            "maximum-likelihood fit is the uniform distribution (hvae_ext.HypersphericalUniform), with "
            "concentration 0, which VonMisesFisher does not allow"
        )
    return VonMisesFisher(loc, kappa, validate_args=validate_args)


# --------------------------------------------------------------------------------------------------
# Mixtures
# --------------------------------------------------------------------------------------------------


class MixtureFit(NamedTuple):
    """The result of :func:`fit_mixture`."""

    mixture: torch.distributions.MixtureSameFamily
    """``MixtureSameFamily(Categorical(probs), VonMisesFisher(loc (k, d), concentration (k,)))``."""
    log_likelihood: torch.Tensor
    """float64 tensor (iterations,): the weighted log-likelihood :math:`\\sum_i w_i \\log p(x_i)` after each
    iteration's M-step (entry 0: the initialization). Non-decreasing (EM)."""
    responsibilities: torch.Tensor
    """(n, k) posterior component probabilities under the returned mixture."""
    converged: bool
    """whether the relative change of the log-likelihood fell below ``tol`` within ``max_iter`` iterations."""


def _kmeans_pp_centers(x: torch.Tensor, weight: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur and Vassilvitskii, 2007) with the cosine distance 1 - x^T c: the first
    center drawn with probability proportional to the weights, each next one proportional to w_i D_i^2,
    D_i the distance to the nearest center drawn so far."""
    n = x.shape[0]
    probs = weight.double().cpu()
    first = int(torch.multinomial(probs / probs.sum(), 1, generator=generator))
    centers = [first]
    dist = (1 - x @ x[first]).clamp(min=0)
    for _ in range(1, k):
        p = (weight * dist.square()).double().cpu()
        if not bool(p.sum() > 0):  # every point coincides with a center: take any point not yet taken
            rest = [i for i in range(n) if i not in centers]
            nxt = rest[int(torch.randint(len(rest), (1,), generator=generator))]
        else:
            nxt = int(torch.multinomial(p / p.sum(), 1, generator=generator))
        centers.append(nxt)
        dist = torch.minimum(dist, (1 - x @ x[nxt]).clamp(min=0))
    return x[centers]


def _log_joint(x, log_pi, loc, kappa):
    """(n, k): log pi_j + log vMF(x_i; mu_j, kappa_j)."""
    d = x.shape[-1]
    return log_pi + special.vmf_log_normalizer(kappa, d) + kappa * (x @ loc.T)


def _m_step(x, w, resp, loc_old, kappa_old):
    """Weighted fits per component; a component with (numerically) zero weight keeps its parameters and gets
    mixing weight 0 (no point is assigned to it, so the likelihood does not depend on them)."""
    rw = resp * w.unsqueeze(-1)  # (n, k)
    nk = rw.sum(0)  # (k,)
    pi = nk / nk.sum()
    m = (rw.T @ x) / nk.clamp(min=torch.finfo(x.dtype).tiny).unsqueeze(-1)  # (k, d)
    loc, kappa, rbar = _loc_and_concentration(m, x.shape[-1])
    dead = (nk <= 0) | ~(rbar > 0)
    if bool(dead.any()):
        loc = torch.where(dead.unsqueeze(-1), loc_old, loc)
        kappa = torch.where(dead, kappa_old, kappa)
        pi = torch.where(dead, torch.zeros_like(pi), pi)
        pi = pi / pi.sum()
    return pi, loc, kappa


def fit_mixture(
    x,
    k: int,
    weight=None,
    *,
    max_iter: int = 100,
    tol: float = 1e-8,
    seed: int = 0,
    init_centers: torch.Tensor | None = None,
) -> MixtureFit:
    r"""A mixture of ``k`` von Mises-Fisher distributions fitted to unit vectors by expectation-maximization
    (Banerjee, Dhillon, Ghosh and Sra, 2005: the soft-assignment algorithm moVMF).

    Args:
        x: points, shape ``(n, d)``, unit norm along the last axis (float32 or float64).
        k: the number of components, ``1 <= k <= n``.
        weight: optional non-negative weights of the points, shape ``(n,)``, with a positive sum.
        max_iter: the largest number of EM iterations.
        tol: stop when the log-likelihood changes by at most ``tol * |log-likelihood|`` in an iteration.
        seed: seeds the k-means++ initialization (a ``torch.Generator`` of its own: the global RNG is
            not touched), so that a call is reproducible.
        init_centers: optional ``(k, d)`` unit vectors to start from instead of the k-means++ seeding.

    Initialization: k-means++ seeding with the cosine distance picks ``k`` of the points as centers; every
    point is assigned to its nearest center and each component is fitted to its points
    (:meth:`VonMisesFisher.fit`), with mixing weights the assigned fractions. Each iteration then computes
    the responsibilities :math:`\gamma_{ij} \propto \pi_j\, \mathrm{vMF}(x_i; \mu_j, \kappa_j)` by
    log-sum-exp (E-step) and refits :math:`\pi_j = \sum_i w_i \gamma_{ij} / \sum_i w_i` and each component to the
    points weighted by :math:`w_i \gamma_{ij}` (M-step, exact maximum-likelihood
    :math:`\kappa_j = A_d^{-1}(\bar r_j)`), so the log-likelihood never decreases. A component whose mean
    resultant length reaches :math:`1 - \epsilon` (one point, or identical points) is capped at
    :math:`\kappa = A_d^{-1}(1 - \epsilon)` (see :meth:`VonMisesFisher.fit`), which bounds the likelihood;
    a component left with no weight keeps its parameters with mixing weight 0.

    Returns a :class:`MixtureFit` (mixture, per-iteration log-likelihood, responsibilities, converged).
    """
    from .von_mises_fisher import VonMisesFisher

    x = _check_points(x)
    if x.dim() != 2:
        raise ValueError(f"x must have shape (n, d) for fit_mixture, got shape {tuple(x.shape)}")
    n, d = x.shape
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be an int with 1 <= k <= n = {n} (the number of points), got {k!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 0:
        raise ValueError(f"max_iter must be an int >= 0, got {max_iter!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    w = torch.ones(n, dtype=x.dtype, device=x.device) if weight is None else _check_weight(weight, x)
    x = x.detach()
    w = w.detach()
    if init_centers is None:
        gen = torch.Generator().manual_seed(int(seed))
        centers = _kmeans_pp_centers(x, w, k, gen)
    else:
        centers = as_float_tensor("init_centers", init_centers).to(dtype=x.dtype, device=x.device)
        if centers.shape != (k, d):
            raise ValueError(f"init_centers must have shape (k, d) = {(k, d)}, got {tuple(centers.shape)}")
        check_unit_norm("init_centers", centers)
    # hard assignment to the nearest center, then one M-step
    resp = torch.nn.functional.one_hot((x @ centers.T).argmax(-1), k).to(x.dtype)
    kappa0 = torch.ones(k, dtype=x.dtype, device=x.device)
    pi, loc, kappa = _m_step(x, w, resp, centers, kappa0)
    lls = []
    converged = False
    for it in range(max_iter + 1):
        log_joint = _log_joint(x, pi.log(), loc, kappa)
        log_px = torch.logsumexp(log_joint, dim=-1)
        ll = float((w.double() * log_px.double()).sum())
        lls.append(ll)
        resp = torch.exp(log_joint - log_px.unsqueeze(-1))
        if it > 0 and abs(lls[-1] - lls[-2]) <= tol * abs(lls[-1]):
            converged = True
            break
        if it == max_iter:
            break
        pi, loc, kappa = _m_step(x, w, resp, loc, kappa)
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=pi), VonMisesFisher(loc, kappa, validate_args=False)
    )
    return MixtureFit(mixture, torch.tensor(lls, dtype=torch.float64), resp, converged)
