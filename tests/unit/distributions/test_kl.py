"""The entropy of VonMisesFisher and the KL divergences KL(vMF || uniform) and KL(vMF || vMF) registered with
torch.distributions.kl_divergence: against Monte Carlo, the small-kappa limit, and their gradients
(gradcheck). Their accuracy against mpmath references is in test_entropy_kl_accuracy.py."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import kl_divergence

from hvae_ext import HypersphericalUniform, VonMisesFisher
from hvae_ext.testing import random_unit


def _mc(values: torch.Tensor) -> tuple[float, float]:
    return values.mean().item(), values.std().item() / math.sqrt(values.numel())


@pytest.mark.parametrize("d,kappa", [(2, 0.5), (3, 4.0), (5, 2.0), (16, 30.0), (100, 1000.0), (1000, 10.0)])
def test_entropy_and_kl_uniform_against_monte_carlo(d, kappa):
    mu = random_unit(d, 5)
    q = VonMisesFisher(mu, torch.tensor(kappa, dtype=torch.float64))
    p = HypersphericalUniform(d, dtype=torch.float64)
    n = 100_000 if d <= 100 else 20_000
    z = q.sample((n,), generator=torch.Generator().manual_seed(1))
    lq = q.log_prob(z)
    m, se = _mc(-lq)
    assert abs(q.entropy().item() - m) <= 5 * se + 1e-12, (q.entropy().item(), m, se)
    kl = kl_divergence(q, p).item()
    m, se = _mc(lq - p.log_prob(z))
    assert abs(kl - m) <= 5 * se + 1e-12, (kl, m, se)
    assert kl >= 0
    # KL(q || U) = log|S^{d-1}| - H(q)
    torch.testing.assert_close(kl_divergence(q, p), p.entropy() - q.entropy(), rtol=1e-9, atol=1e-9)


def test_kl_uniform_small_kappa_is_accurate_and_nonnegative():
    """KL ~ kappa^2 / (2d) as kappa -> 0 (no cancellation to negative values)."""
    for d in (2, 3, 10, 1000):
        k = torch.tensor([1e-8, 1e-5, 1e-3], dtype=torch.float64)
        q = VonMisesFisher(random_unit(d, 0).expand(3, d), k)
        kl = kl_divergence(q, HypersphericalUniform(d, dtype=torch.float64))
        torch.testing.assert_close(kl, k**2 / (2 * d), rtol=1e-3, atol=0)


@pytest.mark.parametrize("d,k1,k2", [(3, 2.0, 5.0), (5, 10.0, 1.0), (50, 100.0, 30.0), (2, 0.3, 3.0)])
def test_kl_vmf_vmf_against_monte_carlo(d, k1, k2):
    mu1, mu2 = random_unit(d, 1), random_unit(d, 2)
    mu2 = torch.nn.functional.normalize(mu1 + 0.7 * mu2, dim=0)
    q = VonMisesFisher(mu1, torch.tensor(k1, dtype=torch.float64))
    p = VonMisesFisher(mu2, torch.tensor(k2, dtype=torch.float64))
    z = q.sample((200_000,), generator=torch.Generator().manual_seed(2))
    m, se = _mc(q.log_prob(z) - p.log_prob(z))
    kl = kl_divergence(q, p).item()
    assert abs(kl - m) <= 5 * se, (kl, m, se)
    assert kl >= 0
    assert kl_divergence(q, q).abs().item() < 1e-10


def test_kl_is_differentiable():
    loc = torch.nn.functional.normalize(torch.randn(4, 5, dtype=torch.float64), dim=-1).requires_grad_(True)
    k = (torch.rand(4, dtype=torch.float64) * 10 + 0.1).requires_grad_(True)
    p = VonMisesFisher(loc[0].detach().clone(), torch.tensor(3.0, dtype=torch.float64))
    assert torch.autograd.gradcheck(
        lambda k: kl_divergence(
            VonMisesFisher(loc.detach(), k, validate_args=False), HypersphericalUniform(5, dtype=torch.float64)
        ),
        (k,),
    )
    assert torch.autograd.gradcheck(
        lambda mu, k: kl_divergence(VonMisesFisher(mu, k, validate_args=False), p), (loc, k)
    )
    assert torch.autograd.gradcheck(lambda k: VonMisesFisher(loc.detach(), k, validate_args=False).entropy(), (k,))
