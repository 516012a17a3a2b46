"""HypersphericalUniform: samples on the sphere with mean zero, the constant log_prob and the entropy
log|S^{d-1}|, and the vMF's limit as kappa -> 0."""

from __future__ import annotations

import math

import pytest
import torch

from hvae_ext import HypersphericalUniform, VonMisesFisher
from hvae_ext.testing import random_unit


def _norm_err(z: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(z.double(), dim=-1) - 1).abs().max().item()


def test_hyperspherical_uniform():
    for d in (2, 3, 10, 1000):
        u = HypersphericalUniform(d, dtype=torch.float64)
        z = u.sample((5000,))
        assert z.shape == (5000, d) and _norm_err(z) < 1e-12
        log_area = math.log(2) + d / 2 * math.log(math.pi) - math.lgamma(d / 2)
        assert u.entropy().item() == pytest.approx(log_area, rel=1e-12)
        assert u.log_prob(z).shape == (5000,)
        torch.testing.assert_close(u.log_prob(z), torch.full((5000,), -log_area, dtype=torch.float64))
        # each coordinate of the sample mean has standard error 1 / sqrt(d n) (Var z_i = 1/d); the max over d
        # coordinates exceeds 6 of them with probability < d * 2e-9
        assert (z.mean(0).abs().max().item()) < 6 / math.sqrt(5000 * d)
    # the vMF tends to the uniform as kappa -> 0
    d = 4
    q = VonMisesFisher(random_unit(d, 0), torch.tensor(1e-12, dtype=torch.float64))
    z = HypersphericalUniform(d, dtype=torch.float64).sample((10,))
    torch.testing.assert_close(q.log_prob(z), HypersphericalUniform(d, dtype=torch.float64).log_prob(z))
