"""Statistical tests of the Power Spherical sampler on the grid d in {2, 3, 5, 16, 100, 1000} x
kappa in {0, 0.1, 1, 10, 100, 1e4}: the law of t = mu^T z against its exact Beta law (KS), the tangent direction's
uniformity and independence of t, and unbiased kappa- and mu-gradients (z-scores of the mean per-sample gradient
against the exact derivatives of E[t] = (alpha - beta) / (alpha + beta) = kappa / (d - 1 + kappa)).

Each family is Bonferroni-corrected over its grid at family level 1e-3. The cells with d = 1000 run under the
``slow`` marker (``pytest -m slow``), the others by default."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from hvae_ext import PowerSpherical
from hvae_ext.testing import random_unit

GRID_D = [2, 3, 5, 16, 100, 1000]
GRID_KAPPA = [0.0, 0.1, 1.0, 10.0, 100.0, 1e4]
FAMILY_ALPHA = 1e-3
CELL_ALPHA = FAMILY_ALPHA / (len(GRID_D) * len(GRID_KAPPA))
Z_LIMIT = float(stats.norm.isf(CELL_ALPHA / 2))  # two-sided z-score bound of one cell


def grid():
    return [
        pytest.param(d, k, id=f"d{d}-k{k:g}", marks=pytest.mark.slow if d >= 1000 else ())
        for d in GRID_D
        for k in GRID_KAPPA
    ]


def _seed(d, kappa, salt):
    return (1_000_003 * d + int(round(1000 * math.log10(kappa + 1e-3))) * 7919 + salt) % (2**31 - 1)


def _one_minus_t(z: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """1 - t = |z - mu|^2 / 2 for unit vectors: full precision near t = 1 (kappa = 1e4 puts t within ~1e-3 of 1)."""
    return 0.5 * (z - mu).square().sum(-1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("d,kappa", grid())
def test_law_of_t_is_beta(d, kappa, dtype):
    """(1 - t) / 2 = 1 - B ~ Beta(beta, alpha): KS test of 20000 samples."""
    n = 20_000
    mu = random_unit(d, _seed(d, kappa, 1), dtype=dtype)
    z = PowerSpherical(mu, torch.tensor(kappa, dtype=dtype)).sample(
        (n,), generator=torch.Generator().manual_seed(_seed(d, kappa, 2))
    )
    u = (_one_minus_t(z.double(), mu.double()) / 2).numpy()
    alpha, beta = (d - 1) / 2 + kappa, (d - 1) / 2
    p = stats.kstest(u, stats.beta(beta, alpha).cdf).pvalue
    assert p > CELL_ALPHA, (d, kappa, p)


@pytest.mark.parametrize(
    "d,kappa", [pytest.param(d, k, id=f"d{d}-k{k:g}") for d in [2, 3, 5, 16, 100] for k in [0.0, 1.0, 100.0]]
)
def test_tangent_direction_is_uniform_and_independent_of_t(d, kappa):
    """v = (z - t mu) / |z - t mu| in mu's orthogonal complement: its coordinate along a fixed tangent unit vector e
    has the law of a coordinate of a uniform point on S^{d-2} ((1 + v.e) / 2 ~ Beta((d-2)/2, (d-2)/2); d = 2: v.e = +-1
    with probability 1/2 each), on both halves of the samples split at the median of t."""
    n = 40_000
    mu = random_unit(d, _seed(d, kappa, 3))
    g = torch.Generator().manual_seed(_seed(d, kappa, 4))
    z = PowerSpherical(mu, torch.tensor(kappa, dtype=torch.float64)).sample((n,), generator=g)
    t = z @ mu
    v = torch.nn.functional.normalize(z - t.unsqueeze(-1) * mu, dim=-1)
    e = torch.randn(d, dtype=torch.float64, generator=g)
    e = torch.nn.functional.normalize(e - (e @ mu) * mu, dim=0)
    ve = (v @ e).numpy()
    low = t.numpy() <= np.median(t.numpy())
    alpha = CELL_ALPHA / 2  # two halves
    for part in (ve[low], ve[~low]):
        if d == 2:
            assert np.allclose(np.abs(part), 1.0)
            p = stats.binomtest(int((part > 0).sum()), len(part)).pvalue
        else:
            p = stats.kstest((1 + part) / 2, stats.beta((d - 2) / 2, (d - 2) / 2).cdf).pvalue
        assert p > alpha, (d, kappa, p)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("d,kappa", grid())
def test_kappa_gradient_is_unbiased(d, kappa, dtype):
    """Per-sample dt/dkappa (one parameter row per sample) against dE[t]/dkappa = (d - 1) / (d - 1 + kappa)^2."""
    n = 40_000 if d < 1000 else 10_000
    mu = random_unit(d, _seed(d, kappa, 5), dtype=dtype).expand(n, d)
    k = torch.full((n,), kappa, dtype=dtype, requires_grad=True)
    torch.manual_seed(_seed(d, kappa, 6))
    z = PowerSpherical(mu, k).rsample()
    t = (z * mu).sum(-1)
    t.sum().backward()
    g = k.grad.double()
    assert torch.isfinite(g).all()
    exact = (d - 1) / (d - 1 + kappa) ** 2
    se = g.std().item() / math.sqrt(n)
    zscore = (g.mean().item() - exact) / se
    # float32: the per-sample gradients are rounded to float32 (~1e-7 relative): a bias far below se
    assert abs(zscore) < Z_LIMIT, (d, kappa, g.mean().item(), exact, zscore)


@pytest.mark.parametrize("d,kappa", grid())
def test_loc_gradient_is_unbiased(d, kappa):
    """L = a^T z: the tangential part of dE[L]/dmu is E[t] (I - mu mu^T) a; z-score of delta^T grad_mu for a fixed
    tangent direction delta, with E = E[t] delta^T a."""
    n = 40_000 if d < 1000 else 10_000
    gen = torch.Generator().manual_seed(_seed(d, kappa, 7))
    mu0 = random_unit(d, _seed(d, kappa, 8))
    a = torch.randn(d, dtype=torch.float64, generator=gen)
    delta = torch.randn(d, dtype=torch.float64, generator=gen)
    delta = torch.nn.functional.normalize(delta - (delta @ mu0) * mu0, dim=0)
    mu = mu0.expand(n, d).clone().requires_grad_(True)
    z = PowerSpherical(mu, torch.tensor(kappa, dtype=torch.float64)).rsample(generator=gen)
    (z @ a).sum().backward()
    g = mu.grad @ delta
    exact = kappa / (d - 1 + kappa) * (delta @ a).item()
    se = g.std().item() / math.sqrt(n)
    zscore = (g.mean().item() - exact) / se
    assert abs(zscore) < Z_LIMIT, (d, kappa, g.mean().item(), exact, zscore)
