"""Fitting vMFs: the inverse mean resultant length A_d^{-1} against 50-digit mpmath roots, its backward
and opcheck; VonMisesFisher.fit (recovery of mu and kappa with statistical tolerances, the edge rules,
errors); mixtures (MixtureSameFamily with VonMisesFisher, fit_mixture's EM).

The references (tests/data/vmf_fit_reference.json, written by tests/reference/vmf_fit_reference.py) are the roots of
A_d(kappa) = r found by Newton's method at 50 digits on the defining integral of A_d, for
d in {2, 3, 5, 16, 128, 1000, 1e4, 1e5} x r in {1e-8, ..., 1 - 1e-10} and 40 seeded random points.
Criterion: |kappa - kappa*| / kappa* <= 1e-12 max(1, c) in float64 and 2e-6 max(1, c) in
float32, c = r / (kappa A_d'(kappa)) the condition number.

``python tests/unit/distributions/test_fit.py`` prints the measured worst errors (used by docs/fitting.md's script).
"""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from scipy import stats

import hvae_ext
from hvae_ext import VonMisesFisher, fit_mixture, special
from hvae_ext.testing import DEVICES

ops = torch.ops.hvae_ext
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TABLE_PATH = os.path.join(ROOT, "tests", "data", "vmf_fit_reference.json")
TOL = {torch.float64: 1e-12, torch.float32: 2e-6}
# dkappa/dr = 1/A_d'(kappa): A_d' from the Riccati formula cancels for kappa >> d (as every A_d' of the
# library); csrc/math/vmf_fit.h bounds the error by ~1e-8 (measured worst on the table: see main()).
GRAD_TOL = 1e-7


def _table():
    with open(TABLE_PATH) as fh:
        return json.load(fh)["points"]


def evaluate(dtype, device="cpu"):
    """Rows (r, d, kind, kappa, kappa_ref, cond, err/max(1,c), grad, grad_ref) for the reference table."""
    pts = [p for p in _table() if dtype == torch.float64 or not p["float64_only"]]
    r = torch.tensor([p["r"] for p in pts], dtype=dtype, device=device)
    d = torch.tensor([p["d"] for p in pts], dtype=torch.int64, device=device)
    r_req = r.clone().requires_grad_(True)
    kappa = special.vmf_mean_resultant_inverse(r_req, d)
    (grad,) = torch.autograd.grad(kappa.sum(), r_req)
    kappa = kappa.detach()
    rows = []
    for i, p in enumerate(pts):
        ref, cond, gref = float(p["kappa"]), float(p["cond"]), float(p["dkappa_dr"])
        k = float(kappa[i])
        err = abs(k - ref) / ref / max(1.0, cond) if ref > 0 else abs(k)
        rows.append((p["r"], p["d"], p["kind"], k, ref, cond, err, float(grad[i]), gref))
    return rows


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_inverse_against_mpmath_roots(dtype, device):
    rows = evaluate(dtype, device)
    assert len(rows) >= (140 if dtype == torch.float64 else 130)
    bad = [
        f"r={r!r} d={d}: kappa {k!r}, true {ref!r}, c={c:.3g}, error/max(1,c) {e:.3g}"
        for r, d, _, k, ref, c, e, _, _ in rows
        if not e <= TOL[dtype]
    ]
    assert not bad, "\n".join(bad)
    # the three regimes are all present: kappa << d, kappa ~ d and kappa >> d, r from 1e-8 to 1 - 1e-10
    ratios = [k / d for _, d, _, k, *_ in rows]
    assert min(ratios) < 1e-6 and max(ratios) > 1e6
    if dtype == torch.float64:
        assert min(r for r, *_ in rows) <= 1e-8 and max(r for r, *_ in rows) >= 1 - 1e-10


@pytest.mark.parametrize("device", DEVICES)
def test_inverse_backward_against_mpmath(device):
    rows = evaluate(torch.float64, device)
    bad = [
        f"r={r!r} d={d}: dkappa/dr {g!r}, true {gref!r}"
        for r, d, _, _, _, _, _, g, gref in rows
        if not abs(g - gref) <= GRAD_TOL * gref
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("device", DEVICES)
def test_inverse_round_trip_and_broadcasting(device):
    d = torch.tensor([2, 3, 10, 300, 4000, 100000], device=device)[:, None]
    r = torch.tensor([1e-6, 0.01, 0.2, 0.5, 0.8, 0.95, 0.999], dtype=torch.float64, device=device)
    kappa = special.vmf_mean_resultant_inverse(r, d)
    assert kappa.shape == (6, 7)
    back = special.vmf_mean_resultant(kappa, d)
    # A_d(kappa) = r to a few roundings (A_d's own error ~1e-16 plus kappa's rounding times d log A / d log kappa <= 1)
    torch.testing.assert_close(back, r.expand_as(back), rtol=1e-15, atol=0)
    # python scalars and float32
    assert special.vmf_mean_resultant_inverse(0.5, 3).dtype == torch.get_default_dtype()
    k32 = special.vmf_mean_resultant_inverse(r.float(), d)
    assert k32.dtype == torch.float32
    torch.testing.assert_close(k32.double(), kappa, rtol=2e-6 * 1e3, atol=0)


def test_inverse_special_values_and_errors():
    r = torch.tensor([0.0, -0.0, -1e-300, -0.5, 1.0, 1.5, math.inf, math.nan], dtype=torch.float64)
    out = special.vmf_mean_resultant_inverse(r, 5)
    assert out[0] == 0 and out[1] == 0
    assert torch.isnan(out[2:]).all()
    with pytest.raises(ValueError, match="dim must be >= 2"):
        special.vmf_mean_resultant_inverse(r, 1)
    # an integer tensor dim is data, as in the other special functions: out of domain gives NaN (no device read)
    out = special.vmf_mean_resultant_inverse(torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([3, 1]))
    assert out[0] > 0 and torch.isnan(out[1])
    with pytest.raises(TypeError, match="dim must be an int"):
        special.vmf_mean_resultant_inverse(r, 3.0)
    with pytest.raises(TypeError, match="r must be a float32 or float64"):
        special.vmf_mean_resultant_inverse(torch.tensor([1, 2]), 3)
    # tiny r: kappa ~ d r, no underflow to 0 before r does
    tiny = special.vmf_mean_resultant_inverse(torch.tensor([1e-300, 5e-324], dtype=torch.float64), 7)
    assert tiny[0] == pytest.approx(7e-300, rel=1e-15) and tiny[1] > 0


@pytest.mark.parametrize("device", DEVICES)
def test_inverse_opcheck_and_gradcheck(device):
    r = torch.tensor([1e-4, 0.3, 0.9, 0.999], dtype=torch.float64, device=device)
    dim = torch.tensor(7, device=device)
    op = ops.vmf_mean_resultant_inverse.default
    torch.library.opcheck(op, (r, dim))
    torch.library.opcheck(op, (r.clone().requires_grad_(True), dim))
    torch.library.opcheck(op, (r.float(), torch.tensor([3, 50, 7, 1000], device=device)))
    kappa = op(r, dim)
    torch.library.opcheck(ops.vmf_mean_resultant_inverse_backward.default, (torch.ones_like(r), kappa, r, dim))
    x = r.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: special.vmf_mean_resultant_inverse(t, dim), (x,))
    # at r = 0 the one-sided derivative is d
    z = torch.zeros(1, dtype=torch.float64, device=device, requires_grad=True)
    (g,) = torch.autograd.grad(special.vmf_mean_resultant_inverse(z, 7).sum(), z)
    assert g.item() == 7.0


# --------------------------------------------------------------------------------------------------
# VonMisesFisher.fit
# --------------------------------------------------------------------------------------------------


def _check_recovery(fit, mu, kappa, n, d):
    """Statistical check of a fit from n samples of vMF(mu, kappa) (tolerances from the sampling law).

    The sample mean m = mean of z has E[mu^T m] = A, Var[mu^T m] = A'/n (A = A_d(kappa), A' = Var[mu^T z]) and
    tangential part m_perp with n kappa |m_perp|^2 / A ~ chi^2_{d-1} (the tangential covariance of z is
    (A/kappa)(I - mu mu^T); the CLT at n >= 200). fit gives mu_hat = m/|m| and kappa_hat = A_d^{-1}(|m|), so
    we recover m = A_d(kappa_hat) mu_hat from the fit and test both parts at the 1e-6 level. Then kappa_hat
    against A_d^{-1} of the expected |m| ~ sqrt(A^2 + (d-1) A / (kappa n)) (the tangential part biases |m|
    upwards, which matters at d = 1e5 with n = 200), within 5 standard deviations sqrt(A'/n) / A' (delta
    method, dkappa/dr = 1/A').
    """
    a = special.vmf_mean_resultant(torch.tensor(kappa, dtype=torch.float64), d).item()
    a_prime = ops.vmf_mean_resultant_backward(
        torch.ones((), dtype=torch.float64), torch.tensor(kappa, dtype=torch.float64), torch.tensor(d)
    ).item()
    mu_hat = fit.loc.double()
    kappa_hat = fit.concentration.double()
    rbar = special.vmf_mean_resultant(kappa_hat, d).item()
    cos = float(mu_hat @ mu.double())
    m_par = rbar * cos
    m_perp2 = rbar * rbar * max(0.0, 1 - cos * cos)
    z_par = (m_par - a) / math.sqrt(a_prime / n)
    assert abs(z_par) < 5, (d, kappa, m_par, a, z_par)
    chi = n * kappa * m_perp2 / a
    assert stats.chi2.sf(chi, d - 1) > 1e-6 and stats.chi2.cdf(chi, d - 1) > 1e-6, (d, kappa, chi)
    # kappa: |m| = sqrt(m_par^2 + m_perp^2) has mean ~ sqrt(A^2 + (d-1) A / (kappa n)) and sd ~ sqrt(A'/n)
    r_expected = math.sqrt(a * a + (d - 1) * a / (kappa * n))
    k_expected = special.vmf_mean_resultant_inverse(torch.tensor(r_expected, dtype=torch.float64), d).item()
    sd_kappa = math.sqrt(a_prime / n) / a_prime  # delta method: dkappa/dr = 1/A'
    assert abs(kappa_hat.item() - k_expected) < 5 * sd_kappa, (d, kappa, kappa_hat.item(), k_expected, sd_kappa)
    return abs(kappa_hat.item() - kappa) / kappa, 1 - cos


@pytest.mark.parametrize(
    "d,kappa,n",
    [
        (3, 5.0, 100_000),
        (16, 50.0, 100_000),
        (1000, 2000.0, 10_000),
        (100_000, 3e5, 200),
        pytest.param(1000, 2000.0, 100_000, marks=pytest.mark.slow),
    ],
)
def test_fit_recovers_mu_and_kappa(d, kappa, n):
    g = torch.Generator().manual_seed(d + n)
    mu = torch.nn.functional.normalize(torch.randn(d, dtype=torch.float64, generator=g), dim=0)
    dtype = torch.float32 if d * n > 5e7 else torch.float64  # d=1000, n=1e5: 400 MB in float32
    q = VonMisesFisher(mu.to(dtype), torch.tensor(kappa, dtype=dtype))
    x = q.sample((n,), generator=g)
    fit = VonMisesFisher.fit(x)
    assert fit.batch_shape == () and fit.event_shape == (d,)
    rel_kappa, one_minus_cos = _check_recovery(fit, mu, kappa, n, d)
    assert rel_kappa < 0.05 and one_minus_cos < 1e-2


def test_fit_batched_with_weights():
    g = torch.Generator().manual_seed(3)
    x = torch.nn.functional.normalize(torch.randn(2, 3, 40, 5, dtype=torch.float64, generator=g), dim=-1)
    w = torch.rand(2, 3, 40, dtype=torch.float64, generator=g)
    fit = VonMisesFisher.fit(x, w)
    assert fit.batch_shape == (2, 3)
    m = (w[..., None] * x).sum(-2) / w.sum(-1, keepdim=True)
    torch.testing.assert_close(fit.loc, torch.nn.functional.normalize(m, dim=-1))
    torch.testing.assert_close(special.vmf_mean_resultant(fit.concentration, 5), m.norm(dim=-1), rtol=1e-14, atol=0)
    # integer weights = repeated points
    counts = torch.tensor([3, 1, 2, 5])
    pts = x[0, 0, :4]
    torch.testing.assert_close(
        VonMisesFisher.fit(pts, counts.double()).concentration,
        VonMisesFisher.fit(pts.repeat_interleave(counts, 0)).concentration,
    )
    # broadcast weights, differentiable in x
    xr = x[0, 0].clone().requires_grad_(True)
    VonMisesFisher.fit(xr, torch.ones(1, dtype=torch.float64)).concentration.backward()
    assert torch.isfinite(xr.grad).all()


def test_fit_edge_rules():
    # all points equal: rbar = 1 -> 1 - eps, the largest concentration the dtype resolves (finite, valid)
    for dtype in (torch.float64, torch.float32):
        p = torch.nn.functional.normalize(torch.tensor([1.0, 2.0, 2.0], dtype=dtype), dim=0)
        fit = VonMisesFisher.fit(p.expand(10, 3), validate_args=True)
        eps = torch.finfo(dtype).eps
        expected = special.vmf_mean_resultant_inverse(torch.tensor(1 - eps, dtype=dtype), 3)
        assert torch.isfinite(fit.concentration) and fit.concentration == expected
        assert fit.concentration.item() == pytest.approx(1 / eps, rel=1e-3)  # (d - 1) / (2 eps), d = 3
        assert torch.isfinite(fit.log_prob(p))
    # one point
    assert VonMisesFisher.fit(torch.tensor([[0.0, 1.0]], dtype=torch.float64)).concentration.item() > 1e15
    # antipodal points: m = 0, the MLE is the uniform distribution
    with pytest.raises(ValueError, match="mean of x is the zero vector"):
        VonMisesFisher.fit(torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64))


def test_fit_errors():
    x = torch.nn.functional.normalize(torch.randn(4, 6, 3, dtype=torch.float64), dim=-1)
    with pytest.raises(ValueError, match="x must have unit norm"):
        VonMisesFisher.fit(x * 1.01)
    with pytest.raises(ValueError, match="at least one point"):
        VonMisesFisher.fit(x[:, :0])
    with pytest.raises(ValueError, match="shape \\(..., n, d\\)"):
        VonMisesFisher.fit(x[0, 0])
    with pytest.raises(ValueError, match="d >= 2"):
        VonMisesFisher.fit(torch.ones(5, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="weight must have a positive sum.*batch index \\(2,\\)"):
        w = torch.ones(4, 6, dtype=torch.float64)
        w[2] = 0
        VonMisesFisher.fit(x, w)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        VonMisesFisher.fit(x, -torch.ones(4, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="weight must be finite"):
        VonMisesFisher.fit(x, torch.full((4, 6), math.nan, dtype=torch.float64))
    with pytest.raises(ValueError, match="weight must have shape"):
        VonMisesFisher.fit(x, torch.ones(4, 5, dtype=torch.float64))
    with pytest.raises(TypeError, match="x must be a float32 or float64 tensor"):
        VonMisesFisher.fit(x.to(torch.int64))


# --------------------------------------------------------------------------------------------------
# Mixtures
# --------------------------------------------------------------------------------------------------


def _mixture(dtype=torch.float64):
    g = torch.Generator().manual_seed(11)
    locs = torch.nn.functional.normalize(torch.randn(3, 5, dtype=dtype, generator=g), dim=-1)
    kappa = torch.tensor([20.0, 60.0, 8.0], dtype=dtype)
    probs = torch.tensor([0.2, 0.3, 0.5], dtype=dtype)
    comp = VonMisesFisher(locs, kappa, validate_args=True)
    return torch.distributions.MixtureSameFamily(torch.distributions.Categorical(probs=probs), comp, validate_args=True)


def test_mixture_same_family_log_prob_and_sample():
    mix = _mixture()
    comp = mix.component_distribution
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(7, 2, 5, dtype=torch.float64, generator=g), dim=-1)
    lp = mix.log_prob(x)
    assert lp.shape == (7, 2)
    manual = torch.logsumexp(mix.mixture_distribution.probs.log() + comp.log_prob(x.unsqueeze(-2)), dim=-1)
    torch.testing.assert_close(lp, manual)
    torch.manual_seed(1)
    s = mix.sample((20000,))
    assert s.shape == (20000, 5)
    torch.testing.assert_close(s.norm(dim=-1), torch.ones(20000, dtype=torch.float64))
    # nearest component frequencies match the mixing weights (components are well separated: kappa >= 8)
    post = torch.softmax(mix.mixture_distribution.probs.log() + comp.log_prob(s.unsqueeze(-2)), dim=-1)
    freq = post.mean(0)
    sd = (mix.mixture_distribution.probs * (1 - mix.mixture_distribution.probs) / 20000).sqrt()
    assert ((freq - mix.mixture_distribution.probs).abs() < 5 * sd).all(), freq
    # mean of the mixture = sum_j pi_j A_j mu_j
    torch.testing.assert_close(s.mean(0), mix.mean, atol=5 * (1 / 20000) ** 0.5, rtol=0)


def test_fit_mixture_monotone_and_recovers():
    mix = _mixture()
    torch.manual_seed(2)
    x = mix.sample((4000,))
    res = fit_mixture(x, 3, seed=0, tol=1e-12, max_iter=200)
    ll = res.log_likelihood
    assert ll.dtype == torch.float64 and len(ll) >= 3
    assert (torch.diff(ll) >= -1e-10 * ll.abs()[1:]).all(), torch.diff(ll).min()
    assert ll[-1] > ll[0]
    # the fitted components match the true ones up to relabeling
    true = mix.component_distribution
    got = res.mixture.component_distribution
    perm = (got.loc @ true.loc.T).argmax(-1)
    assert sorted(perm.tolist()) == [0, 1, 2]
    torch.testing.assert_close(got.concentration, true.concentration[perm], rtol=0.15, atol=0)
    torch.testing.assert_close(
        res.mixture.mixture_distribution.probs, mix.mixture_distribution.probs[perm], atol=0.03, rtol=0
    )
    # final log-likelihood equals the mixture's own log_prob sum; responsibilities are normalized
    torch.testing.assert_close(res.mixture.log_prob(x).sum().double(), ll[-1])
    torch.testing.assert_close(res.responsibilities.sum(-1), torch.ones(4000, dtype=torch.float64))
    # reproducible: the same seed gives the same fit, without touching the global RNG
    state = torch.get_rng_state()
    again = fit_mixture(x, 3, seed=0, tol=1e-12, max_iter=200)
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(again.log_likelihood, ll, rtol=0, atol=0)


def test_fit_mixture_weights_and_edge_cases():
    g = torch.Generator().manual_seed(5)
    x = torch.nn.functional.normalize(torch.randn(50, 4, dtype=torch.float64, generator=g), dim=-1)
    # k = n: one point per component, each capped at A^{-1}(1 - eps): finite
    res = fit_mixture(x[:4], 4, max_iter=3)
    assert torch.isfinite(res.mixture.component_distribution.concentration).all()
    assert torch.isfinite(res.log_likelihood).all()
    # weights: integer weights = repeated points (same seed, init_centers fixed)
    counts = torch.randint(1, 4, (50,), generator=g)
    centers = x[:2]
    a = fit_mixture(x, 2, weight=counts.double(), init_centers=centers, tol=0, max_iter=20)
    b = fit_mixture(x.repeat_interleave(counts, 0), 2, init_centers=centers, tol=0, max_iter=20)
    torch.testing.assert_close(a.log_likelihood, b.log_likelihood)
    # errors
    with pytest.raises(ValueError, match="k must be an int with 1 <= k <= n"):
        fit_mixture(x, 0)
    with pytest.raises(ValueError, match="k must be an int with 1 <= k <= n"):
        fit_mixture(x, 51)
    with pytest.raises(ValueError, match="shape \\(n, d\\)"):
        fit_mixture(x[None], 2)
    with pytest.raises(ValueError, match="init_centers must have shape"):
        fit_mixture(x, 2, init_centers=x[:3])
    assert hvae_ext.fit_mixture is fit_mixture


def main():
    """Worst measured errors on the reference table (printed as JSON; docs/fitting.md's script reads them)."""
    out = {}
    for dtype in (torch.float64, torch.float32):
        rows = evaluate(dtype)
        worst = max(rows, key=lambda t: t[6])
        out[str(dtype).replace("torch.", "")] = {
            "points": len(rows),
            "worst_error_over_max1c": worst[6],
            "at": {"r": worst[0], "d": worst[1]},
        }
    rows = evaluate(torch.float64)
    gw = max(rows, key=lambda t: abs(t[7] - t[8]) / t[8])
    out["dkappa_dr_float64"] = {"worst_relative_error": abs(gw[7] - gw[8]) / gw[8], "at": {"r": gw[0], "d": gw[1]}}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
