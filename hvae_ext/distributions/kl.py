r"""Closed-form KL divergences, registered with ``torch.distributions.kl_divergence``.

* :math:`KL(\mathrm{vMF}(\mu, \kappa) \| U(S^{d-1})) = \log C_d(\kappa) + \kappa A_d(\kappa) + \log |S^{d-1}|`
  (Davidson et al. 2018, eq. 11), computed by one kernel that switches to
  :math:`\kappa A_d - \log {}_0F_1(; d/2; \kappa^2/4)` where the first form would cancel (small
  :math:`\kappa^2/d`), so it stays accurate (and non-negative) down to :math:`\kappa \to 0`.
* :math:`KL(\mathrm{vMF}(\mu_1, \kappa_1) \| \mathrm{vMF}(\mu_2, \kappa_2)) = \log C_d(\kappa_1) + \kappa_1 A_d(\kappa_1)
  - \log C_d(\kappa_2) - \kappa_2 A_d(\kappa_1) \mu_2^\top \mu_1`, by one kernel (``special.vmf_kl_vmf``)
  that sums it without cancelling terms of size :math:`\kappa` (accurate up to :math:`\kappa = 10^{12}`).
* :math:`KL(\mathrm{PS}(\mu, \kappa) \| U(S^{d-1}))` in closed form with :math:`\log\Gamma` and :math:`\psi`
  (:func:`hvae_ext.distributions.power_spherical.kl_uniform`: no cancellation at small or large :math:`\kappa`).
"""

from __future__ import annotations

import torch
from torch.distributions import register_kl

from .. import special
from .._ops import value_for_autograd
from .hyperspherical_uniform import HypersphericalUniform
from .power_spherical import PowerSpherical
from .power_spherical import kl_uniform as _ps_kl_uniform
from .von_mises_fisher import VonMisesFisher


def _check_same_dim(p_dim: int, q_dim: int, what: str) -> None:
    if p_dim != q_dim:
        raise ValueError(
            f"{what}: the dimensions differ (d = {p_dim} and d = {q_dim}); hvae_ext counts the ambient "
            f"dimension d everywhere (HypersphericalUniform(dim=d) for vMF on S^(d-1) in R^d), while the "
            f"reference code's HypersphericalUniform(z_dim - 1) counts d - 1: use hvae_ext.compat for that"
        )


@register_kl(VonMisesFisher, HypersphericalUniform)
def _kl_vmf_uniform(p: VonMisesFisher, q: HypersphericalUniform) -> torch.Tensor:
    _check_same_dim(p.dim, q.dim, "KL(VonMisesFisher || HypersphericalUniform)")
    kappa = p.concentration
    dim = torch.full((), p.dim, dtype=torch.int64, device=kappa.device)  # filled on the device: no sync
    return value_for_autograd("vmf_kl_uniform", kappa, dim)


@register_kl(VonMisesFisher, VonMisesFisher)
def _kl_vmf_vmf(p: VonMisesFisher, q: VonMisesFisher) -> torch.Tensor:
    _check_same_dim(p.dim, q.dim, "KL(VonMisesFisher || VonMisesFisher)")
    if p.loc.device != q.loc.device:
        raise ValueError(f"KL(VonMisesFisher || VonMisesFisher): p is on {p.loc.device} but q is on {q.loc.device}")
    try:
        torch.broadcast_shapes(p.batch_shape, q.batch_shape)
    except RuntimeError:
        raise ValueError(
            f"KL(VonMisesFisher || VonMisesFisher): the batch shapes {tuple(p.batch_shape)} of p and "
            f"{tuple(q.batch_shape)} of q do not broadcast"
        ) from None
    # 1 - mu_q^T mu_p as |mu_p - mu_q|^2 / 2: exactly 0 for equal directions (no kappa_q * eps residue)
    one_minus_cos = 0.5 * (p.loc - q.loc).square().sum(-1)
    return special.vmf_kl_vmf(p.concentration, q.concentration, one_minus_cos, p.dim)


@register_kl(PowerSpherical, HypersphericalUniform)
def _kl_power_spherical_uniform(p: PowerSpherical, q: HypersphericalUniform) -> torch.Tensor:
    _check_same_dim(p.dim, q.dim, "KL(PowerSpherical || HypersphericalUniform)")
    return _ps_kl_uniform(p.concentration.double(), p.dim).to(p.concentration.dtype)
