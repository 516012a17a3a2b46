"""Unbiasedness of rsample's gradients (implicit reparameterization; see docs/gradients.md).

* kappa: the mean over samples of the per-sample dw/dkappa estimates dA/dkappa = Var[w]
  = 1 - A^2 - (d - 1) A / kappa (0.147389 at d = 5, kappa = 2), within 4 standard errors computed from the
  per-sample contributions (loc expanded to (n, d), kappa an (n,) leaf, so kappa.grad holds one dw/dkappa
  per sample), with n >= 1e6 (fewer where d is large, n d <= 2e8, to keep time and memory bounded).
  CI runs a subset; the whole grid is marked ``slow``.
* loc: the tangent projection of the gradient of E[v^T z] is A (I - mu mu^T) v, also at mu = +-e1.
* per sample: dw/dkappa equals -dF/dkappa / p(w) exactly, checked against the d = 3 closed form and the
  quadrature of hvae_ext.testing for other d.

``HVAE_TEST_GRAD_N`` overrides n (for a quick development run; the committed default is 1e6).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import cumulative_simpson

from hvae_ext import VonMisesFisher
from hvae_ext.testing import DEVICES, angle_from_loc, cell_seed, env_int, grid_params, random_unit, w_law

GRAD_N = env_int("HVAE_TEST_GRAD_N", 1_000_000)
CI_GRAD_CELLS = [(5, 2.0), (10, 10.0), (50, 10.0), (3, 1000.0), (2, 1.0)]
CHUNK_NUMBERS = 4_000_000


def grad_sample_count(d: int, n: int = GRAD_N, budget: int = 200_000_000) -> int:
    return int(min(n, max(20_000, budget // d)))


def per_sample_dw_dkappa(mu: torch.Tensor, kappa: float, n: int, generator=None) -> torch.Tensor:
    """n per-sample values of dw/dkappa (kappa.grad of sum(mu^T z) with kappa an (n,) leaf)."""
    d = mu.shape[-1]
    k = torch.full((n,), kappa, dtype=mu.dtype, device=mu.device, requires_grad=True)
    z = VonMisesFisher(mu.expand(n, d), k).rsample(generator=generator)
    (z @ mu).sum().backward()
    return k.grad


def grad_statistics(
    d: int, kappa: float, n: int | None = None, dtype=torch.float64, device="cpu", seed: int | None = None
) -> dict:
    n = grad_sample_count(d) if n is None else n
    seed = cell_seed(d, kappa, salt=17) if seed is None else seed
    mu = random_unit(d, seed, dtype=dtype, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    total, total_sq, done = 0.0, 0.0, 0
    chunk = max(1, CHUNK_NUMBERS // d)
    while done < n:
        m = min(chunk, n - done)
        g = per_sample_dw_dkappa(mu, kappa, m, generator=gen).double()
        assert bool(torch.isfinite(g).all()), f"non-finite dw/dkappa at d={d}, kappa={kappa}"
        total += g.sum().item()
        total_sq += (g * g).sum().item()
        done += m
    mean = total / n
    std = math.sqrt(max(total_sq / n - mean * mean, 0.0) * n / (n - 1))
    se = std / math.sqrt(n)
    ref = w_law(d, kappa).var  # dA/dkappa = Var[w]
    z = (mean - ref) / se if se > 0 else (0.0 if mean == ref else math.inf)
    return dict(d=d, kappa=kappa, n=n, mean=mean, std=std, se=se, ref=ref, z=z)


@pytest.mark.parametrize(
    "d,kappa",
    [pytest.param(d, k, id=f"d{d}-k{k:g}") for d, k in CI_GRAD_CELLS]
    + [p for p in grid_params([]) if tuple(p.values) not in CI_GRAD_CELLS],
)
def test_kappa_gradient_unbiased(d, kappa):
    s = grad_statistics(d, kappa)
    assert abs(s["z"]) <= 4, (
        f"d mean(w)/dkappa at d={d}, kappa={kappa:g}: {s['mean']:.7g} +- {s['se']:.2g} (n={s['n']}) "
        f"vs dA/dkappa={s['ref']:.7g}: z={s['z']:.2f}"
    )


def test_kappa_gradient_reference_value():
    """A fixed reference point: dA/dkappa = Var[w] at d = 5, kappa = 2 is 0.147389."""
    assert w_law(5, 2.0).var == pytest.approx(0.147389, abs=5e-7)
    s = grad_statistics(5, 2.0)
    assert abs(s["mean"] - 0.147389) <= 4 * s["se"] + 5e-7, s


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kappa_gradient_devices(device, dtype):
    if device == "cpu" and dtype == torch.float64:
        pytest.skip("covered by test_kappa_gradient_unbiased")
    for d, kappa in [(5, 2.0), (16, 100.0)]:
        s = grad_statistics(d, kappa, n=min(GRAD_N, 200_000), dtype=dtype, device=device)
        assert abs(s["z"]) <= 4.5, s


def test_kappa_gradient_nonlinear_loss():
    """E[w^2] = 1 - (d - 1) A / kappa, so d/dkappa E[w^2] = -(d - 1)(A' / kappa - A / kappa^2)."""
    d, kappa, n = 10, 5.0, min(GRAD_N, 200_000)
    mu = random_unit(d, 9)
    k = torch.full((n,), kappa, dtype=torch.float64, requires_grad=True)
    z = VonMisesFisher(mu.expand(n, d), k).rsample(generator=torch.Generator().manual_seed(9))
    ((z @ mu) ** 2).sum().backward()
    g = k.grad
    law = w_law(d, kappa)
    ref = -(d - 1) * (law.var / kappa - law.mean / kappa**2)
    se = g.std().item() / math.sqrt(n)
    assert abs(g.mean().item() - ref) <= 4 * se, (g.mean().item(), ref, se)


def _exact_dw_dkappa(d: int, kappa: float, theta: np.ndarray) -> np.ndarray:
    """-dF/dkappa / p(w) at w = cos(theta), by quadrature: with G(t) = int_0^t (cos s - A) p_theta(s) ds,
    dw/dkappa = G(theta) sin(theta) / p_theta(theta)."""
    law = w_law(d, kappa)
    th = law.theta
    integrand = ((1 - law.mean) - 2 * np.sin(th / 2) ** 2) * law.pdf
    G = cumulative_simpson(integrand, x=th, initial=0.0)
    # G(lo) = 0 is exact up to the (negligible) mass below the grid
    return np.interp(theta, th, G) * np.sin(theta) / np.interp(theta, th, law.pdf)


@pytest.mark.parametrize("kappa", [1e-3, 0.5, 3.0, 40.0, 1e4])
def test_dw_dkappa_d3_closed_form(kappa):
    """d = 3 samples by inversion, w = 1 + log(u + (1 - u) e^{-2 kappa}) / kappa: the implicit gradient must
    equal the derivative at fixed u, dw/dkappa = (1 - w)/kappa - 2 expm1(kappa (1 - w)) / (kappa expm1(2 kappa))."""
    n = 2000
    mu = random_unit(3, 4)
    k = torch.full((n,), kappa, dtype=torch.float64, requires_grad=True)
    z = VonMisesFisher(mu.expand(n, 3), k).rsample(generator=torch.Generator().manual_seed(4))
    (z @ mu).sum().backward()
    _, theta = angle_from_loc(z.detach(), mu)
    omw = 2 * torch.sin(theta / 2) ** 2
    if 2 * kappa > 700:
        second = 2 * torch.exp(kappa * omw - 2 * kappa) / kappa
    else:
        second = 2 * torch.expm1(kappa * omw) / (kappa * math.expm1(2 * kappa))
    exact = omw / kappa - second
    torch.testing.assert_close(k.grad, exact, rtol=1e-6, atol=1e-9 / kappa)


@pytest.mark.parametrize("d,kappa", [(2, 1.0), (5, 2.0), (10, 10.5), (50, 100.0), (1000, 1000.0)])
def test_dw_dkappa_matches_implicit_formula(d, kappa):
    """Per sample, dw/dkappa = -dF(w; kappa)/dkappa / p(w; kappa), F and p from the quadrature."""
    n = 500
    mu = random_unit(d, 6)
    k = torch.full((n,), kappa, dtype=torch.float64, requires_grad=True)
    z = VonMisesFisher(mu.expand(n, d), k).rsample(generator=torch.Generator().manual_seed(6))
    (z @ mu).sum().backward()
    _, theta = angle_from_loc(z.detach(), mu)
    exact = _exact_dw_dkappa(d, kappa, theta.numpy())
    # compare where the quadrature itself is reliable (density not vanishingly small)
    law = w_law(d, kappa)
    ok = np.interp(theta.numpy(), law.theta, law.pdf) > 1e-6 * law.pdf.max()
    np.testing.assert_allclose(k.grad.numpy()[ok], exact[ok], rtol=2e-5, atol=1e-8 * abs(exact).max())


def _loc_gradient_check(mu: torch.Tensor, kappa: float, n: int, seed: int, device="cpu") -> None:
    d = mu.shape[-1]
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(d, dtype=torch.float64, generator=g).to(device=device, dtype=mu.dtype)
    loc = mu.expand(n, d).clone().requires_grad_(True)
    kap = torch.tensor(kappa, dtype=mu.dtype, device=device)
    z = VonMisesFisher(loc, kap).rsample(generator=torch.Generator(device=device).manual_seed(seed))
    (z @ v).sum().backward()
    P = torch.eye(d, dtype=torch.float64) - torch.outer(mu.double().cpu(), mu.double().cpu())
    proj = loc.grad.double().cpu() @ P  # per-sample tangent gradients
    A = w_law(d, kappa).mean
    ref = A * (P @ v.double().cpu())
    mean = proj.mean(0)
    se = proj.std(0) / math.sqrt(n)
    zs = ((mean - ref) / se.clamp_min(1e-300))[se > 0]
    assert bool(torch.isfinite(loc.grad).all())
    # Bonferroni over d coordinates: |z| <= 4 + a little for d coordinates
    bound = 4.0 + 0.15 * math.log(d)
    assert zs.abs().max().item() <= bound, (d, kappa, zs.abs().max().item(), mean[:5], ref[:5])
    # where se = 0 the coordinate is deterministic and must match
    torch.testing.assert_close(mean[se == 0], ref[se == 0], atol=1e-9, rtol=0)


@pytest.mark.parametrize("d,kappa", [(2, 1.0), (3, 1.0), (5, 2.0), (10, 10.0), (50, 10.0), (16, 1000.0)])
def test_loc_gradient_unbiased(d, kappa):
    _loc_gradient_check(random_unit(d, 21 + d), kappa, min(GRAD_N, 200_000), seed=d)


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("offset", [0.0, 1e-9])
def test_loc_gradient_at_pole(sign, offset):
    """mu = +-e1 (the reference code's singular point) and mu 1e-9 away from it."""
    d = 6
    mu = torch.zeros(d, dtype=torch.float64)
    mu[0] = sign
    mu[1] = offset
    mu = mu / mu.norm()
    _loc_gradient_check(mu, 5.0, min(GRAD_N, 100_000), seed=7)


@pytest.mark.parametrize("device", DEVICES)
def test_gradients_finite_at_extremes(device):
    """No NaN/inf in either gradient for tiny and huge kappa, d from 2 to 1000, float32 and float64."""
    for dtype in (torch.float32, torch.float64):
        for d in (2, 3, 7, 1000):
            for kappa in (1e-6, 1e-3, 1.0, 1e3, 1e6):
                loc = random_unit(d, d, dtype=dtype, device=device).expand(64, d).clone().requires_grad_(True)
                k = torch.full((64,), kappa, dtype=dtype, device=device, requires_grad=True)
                z = VonMisesFisher(loc, k).rsample()
                (z * torch.linspace(-1, 1, d, dtype=dtype, device=device)).sum().backward()
                assert bool(torch.isfinite(loc.grad).all()), (dtype, d, kappa)
                assert bool(torch.isfinite(k.grad).all()), (dtype, d, kappa)


def test_gradient_sums_over_sample_shape():
    """With sample_shape=(n,) and scalar parameters, the gradient is the sum of the per-sample gradients."""
    d, kappa, n = 7, 3.0, 1000
    mu = random_unit(d, 2)
    k_scalar = torch.tensor(kappa, dtype=torch.float64, requires_grad=True)
    loc_scalar = mu.clone().requires_grad_(True)
    seed = torch.Generator().manual_seed(123)
    z1 = VonMisesFisher(loc_scalar, k_scalar).rsample((n,), generator=seed)
    v = torch.linspace(-1, 2, d, dtype=torch.float64)
    (z1 @ v).sum().backward()
    # the same random numbers through the batched path: row r of (n * 1) uses the same Philox stream (seed, r)
    k_batch = torch.full((n,), kappa, dtype=torch.float64, requires_grad=True)
    loc_batch = mu.expand(n, d).clone().requires_grad_(True)
    z2 = VonMisesFisher(loc_batch, k_batch).rsample(generator=torch.Generator().manual_seed(123))
    torch.testing.assert_close(z1, z2, rtol=0, atol=0)
    (z2 @ v).sum().backward()
    torch.testing.assert_close(k_scalar.grad, k_batch.grad.sum(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(loc_scalar.grad, loc_batch.grad.sum(0), rtol=1e-10, atol=1e-10)
