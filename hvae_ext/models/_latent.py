r"""The hyperspherical latent of the S-VAE and S-VGAE: one sphere or a product of ``k`` equal spheres.

A latent of size ``D`` (the size of z) with ``spheres = k`` is the product :math:`S^m \times \dots \times S^m`
of ``k`` factors, each in :math:`R^{m+1}` with :math:`m + 1 = D / k`: ``d = k m`` degrees of freedom,
``D = d + k``. The posterior is ``Independent(VonMisesFisher(loc (..., k, m+1), kappa (..., k)), 1)`` (one
``VonMisesFisher`` for ``k = 1``), the prior uniform on every factor; z is handed to the decoder as the
concatenation of the factors, shape ``(..., D)``. The posterior family is the von Mises-Fisher distribution by
default, or the Power Spherical distribution (De Cao and Aziz, 2020), with the same mean direction, the same
concentration head and the same uniform prior. Shared by :mod:`.vae` and :mod:`.vgae`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Independent

from ..distributions import HypersphericalUniform, PowerSpherical, VonMisesFisher

Posterior = VonMisesFisher | PowerSpherical | Independent
PosteriorFamily = type[VonMisesFisher] | type[PowerSpherical]

#: The posterior families by name (the ``posterior`` argument of the models and the CLIs' ``--posterior``).
POSTERIORS: dict[str, PosteriorFamily] = {"vmf": VonMisesFisher, "power-spherical": PowerSpherical}


def check_posterior(posterior) -> PosteriorFamily:
    """The family named by ``posterior``: "vmf" or "power-spherical" ("power_spherical" too), or the class."""
    if posterior in (VonMisesFisher, PowerSpherical):
        return posterior
    if isinstance(posterior, str) and posterior.replace("_", "-") in POSTERIORS:
        return POSTERIORS[posterior.replace("_", "-")]
    raise ValueError(
        f"posterior must be 'vmf' (von Mises-Fisher), 'power-spherical' (Power Spherical), VonMisesFisher or "
        f"PowerSpherical, got {posterior!r}"
    )


def posterior_name(family: PosteriorFamily) -> str:
    """The name of a family in :data:`POSTERIORS`."""
    return next(name for name, cls in POSTERIORS.items() if cls is family)


def check_spheres(spheres: int) -> int:
    if isinstance(spheres, bool) or not isinstance(spheres, int) or spheres < 1:
        raise ValueError(f"spheres must be a positive integer (the number of sphere factors), got {spheres!r}")
    return spheres


def factor_size(latent_dim: int, spheres: int, who: str) -> int:
    """m + 1, the ambient size of each factor, for a latent of size ``latent_dim`` (the size of z)."""
    if latent_dim % spheres or latent_dim // spheres < 2:
        raise ValueError(
            f"{who}: the direction logits have size D = {latent_dim}, which must be a multiple of spheres = "
            f"{spheres} with D / spheres >= 2 (each factor S^m lives in R^(m+1), m + 1 = D / spheres); "
            f"with d degrees of freedom and k factors S^m (k m = d), k must divide d and D = d + k"
        )
    return latent_dim // spheres


def split(raw_loc: Tensor, raw_kappa: Tensor, spheres: int, kappa_floor: float, who: str) -> tuple[Tensor, Tensor]:
    """Mean directions and concentrations from the encoder's outputs.

    ``raw_loc`` (..., D) gives mu, normalized per factor and returned flat (..., D); ``raw_kappa`` must be
    (..., spheres), or for one sphere (..., 1) or (...): kappa = softplus(raw_kappa) + kappa_floor, shape (...)
    for one sphere, (..., spheres) for a product."""
    if not isinstance(raw_loc, Tensor) or not isinstance(raw_kappa, Tensor):
        raise TypeError(
            f"{who}: the encoder must return two tensors (direction logits, concentration logits), "
            f"got {type(raw_loc).__name__} and {type(raw_kappa).__name__}"
        )
    if raw_loc.dim() < 1:
        raise ValueError(f"{who}: the direction logits must have shape (N, D), got a scalar")
    batch = raw_loc.shape[:-1]
    m1 = factor_size(raw_loc.shape[-1], spheres, who)
    if spheres == 1:
        if raw_kappa.shape == batch + (1,):
            kappa = F.softplus(raw_kappa).squeeze(-1) + kappa_floor
        elif raw_kappa.shape == batch:
            kappa = F.softplus(raw_kappa) + kappa_floor
        else:
            raise ValueError(
                f"{who}: the concentration logits must have shape (N, 1) or (N,) for direction logits "
                f"of shape (N, D) = {tuple(raw_loc.shape)} (one sphere), got {tuple(raw_kappa.shape)}"
            )
        return F.normalize(raw_loc, dim=-1), kappa
    if raw_kappa.shape != batch + (spheres,):
        raise ValueError(
            f"{who}: the concentration logits must have shape (N, spheres) = "
            f"{tuple(batch + (spheres,))}, one per sphere factor, for direction logits of shape "
            f"{tuple(raw_loc.shape)} and spheres = {spheres}, got {tuple(raw_kappa.shape)}"
        )
    mu = F.normalize(raw_loc.unflatten(-1, (spheres, m1)), dim=-1).flatten(-2)
    return mu, F.softplus(raw_kappa) + kappa_floor


def posterior(mu: Tensor, kappa: Tensor, spheres: int, family: PosteriorFamily = VonMisesFisher) -> Posterior:
    """q(z) for flat unit directions ``mu`` (..., D) and ``kappa`` (...) or (..., spheres): a ``family`` (by
    default ``VonMisesFisher``) for one sphere, else ``Independent(family(mu (..., k, m+1), kappa (..., k)), 1)``.
    The arguments are valid by construction, so the checks are skipped."""
    if spheres == 1:
        return family(mu, kappa, validate_args=False)
    return Independent(family(unflatten(mu, spheres), kappa, validate_args=False), 1)


def prior(latent_dim: int, spheres: int, device=None, dtype=None) -> HypersphericalUniform | Independent:
    """The uniform distribution on the sphere (one factor) or on every factor of the product."""
    if spheres == 1:
        return HypersphericalUniform(latent_dim, validate_args=False, device=device, dtype=dtype)
    factor = HypersphericalUniform(latent_dim // spheres, validate_args=False, device=device, dtype=dtype)
    return Independent(factor.expand((spheres,)), 1)


def unflatten(z: Tensor, spheres: int) -> Tensor:
    """(..., D) -> (..., spheres, D / spheres); unchanged for one sphere."""
    return z if spheres == 1 else z.unflatten(-1, (spheres, z.shape[-1] // spheres))


def flatten(z: Tensor, spheres: int) -> Tensor:
    """(..., spheres, m + 1) -> (..., D): the factors side by side; unchanged for one sphere."""
    return z if spheres == 1 else z.flatten(-2)


def latent_size(q: Posterior) -> int:
    """D, the size of z, of a posterior built by :func:`posterior`."""
    return q.event_shape.numel()


def concentration(q: Posterior) -> Tensor:
    """kappa of a posterior built by :func:`posterior`: (...) or (..., spheres)."""
    return q.base_dist.concentration if isinstance(q, Independent) else q.concentration


def sample(q: Posterior, spheres: int, sample_shape=torch.Size(), reparameterized: bool = True) -> Tensor:
    """Flat samples (*sample_shape, ..., D)."""
    z = q.rsample(sample_shape) if reparameterized else q.sample(sample_shape)
    return flatten(z, spheres)
