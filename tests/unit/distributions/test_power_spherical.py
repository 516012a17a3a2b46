"""The Power Spherical distribution (De Cao and Aziz 2020): the implicit Gamma gradient of the kernel against mpmath,
the normalizer against its defining integral, KL and entropy against mpmath, log_prob at the antipode, moments,
shapes and dtypes, bad input, opcheck, torch.compile, and the drop-in module for the ``power_spherical`` package.
The statistical tests of the sampler (law of t, tangent uniformity, unbiased gradients) are in
test_power_spherical_statistics.py."""

from __future__ import annotations

import math

import mpmath as mp
import pytest
import torch
from torch.distributions import kl_divergence

from hvae_ext import HypersphericalUniform, PowerSpherical
from hvae_ext.distributions import power_spherical as ps_module
from hvae_ext.testing import DEVICES

ops = torch.ops.hvae_ext
GRID_D = [2, 3, 5, 16, 100, 1000]
GRID_KAPPA = [0.0, 0.1, 1.0, 10.0, 100.0, 1e4]


def _unit(b, d, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed * 1000 + b * 100 + d)
    return torch.nn.functional.normalize(torch.randn(b, d, dtype=torch.float64, generator=g), dim=-1).to(
        dtype=dtype, device=device
    )


# --- dG/dalpha of the kernel ----------------------------------------------------------------------------------


def _gamma_dshape_mpmath(a: float, x: float) -> float:
    """dx/da = -(dP(a, x)/da) / p(x; a) by mpmath (40 digits), P the regularized lower incomplete gamma function."""
    with mp.workdps(40):
        A, X = mp.mpf(a), mp.mpf(x)
        dP = mp.diff(lambda s: mp.gammainc(s, 0, X, regularized=True), A)
        log_p = (A - 1) * mp.log(X) - X - mp.loggamma(A)
        return float(-dP / mp.exp(log_p))


def _kernel_gamma_dshape(a_values, x_values, d=2):
    """dG_a/dalpha from power_spherical_sample_backward: with grad_z = loc, L = mu^T z = t, so dL/dt = 1 and
    grad_kappa = dt/dkappa = (2 G_b / S) dG_a/dalpha / S, S = G_a + G_b (here G_b = 1)."""
    n = len(a_values)
    beta = 0.5 * (d - 1)
    kappa = torch.tensor([a - beta for a in a_values], dtype=torch.float64)
    loc = torch.zeros(n, d, dtype=torch.float64)
    loc[:, 0] = 1.0
    z = loc.clone()
    ga = torch.tensor(x_values, dtype=torch.float64)
    gb = torch.ones(n, dtype=torch.float64)
    gammas = torch.stack([ga, gb], dim=1)
    _, grad_kappa = ops.power_spherical_sample_backward(loc.clone(), z, gammas, loc, kappa)
    s = ga + gb
    return (grad_kappa * s * s / (2 * gb)).tolist()


def test_gamma_shape_derivative_against_mpmath():
    """Series (x <= a + 1), continued fraction (x > a + 1) for a <= 1000 to 1e-11; Temme's expansion above to 1e-9."""
    points = []
    for a in [0.5, 0.7, 1.0, 1.5, 7.5, 17.5, 50.0, 100.0, 500.0, 999.5, 1000.5, 5000.0]:
        for q in [-5.0, -3.0, -1.0, -0.1, 0.0, 0.3, 1.0, 3.0, 6.0]:
            x = a + q * math.sqrt(a)
            points.append((a, x if x > 0 else a * math.exp(q)))
    got = _kernel_gamma_dshape([p[0] for p in points], [p[1] for p in points])
    for (a, x), g in zip(points, got):
        want = _gamma_dshape_mpmath(a, x)
        tol = 1e-11 if a <= 1000 else 1e-9
        assert abs(g - want) <= tol * abs(want), (a, x, g, want)


def _gamma_dshape_integral(a: float, x: float) -> float:
    """dx/da for large a by mpmath quadrature of the exact integral forms of -(dP/da) / p (x > a: the upper tail,
    x < a: the lower), which converge fast where the differentiated series does not:
    x > a:  int_0^inf (log(x + u) - psi(a)) (1 + u/x)^(a-1) e^-u du;
    x < a:  -int_0^x (log(x - u) - psi(a)) (1 - u/x)^(a-1) e^u du."""
    with mp.workdps(40):
        A, X = mp.mpf(a), mp.mpf(x)
        psi = mp.digamma(A)
        scale = 1 / abs(1 - (A - 1) / X)
        cuts = [scale * k for k in (0.5, 1, 2, 4, 8, 16, 32, 64)]
        if x > a:
            f = lambda u: (mp.log(X + u) - psi) * mp.exp((A - 1) * mp.log1p(u / X) - u)  # noqa: E731
            return float(mp.quad(f, [0] + cuts + [mp.inf]))
        f = lambda u: (mp.log(X - u) - psi) * mp.exp((A - 1) * mp.log1p(-u / X) + u)  # noqa: E731
        return float(-mp.quad(f, [0] + [c for c in cuts if c < X] + [X]))


def test_gamma_shape_derivative_huge_shape():
    """a up to 1e12 (kappa up to 1e12): Temme's expansion against the integral forms (its truncation error is
    O(a^-3): below 1e-9 from a = 1000, 1e-12 from a = 1e6)."""
    a_values, x_values = [], []
    for a in [1e4, 1e6, 1e9, 1e12]:
        for q in [-4.0, -1.0, 0.5, 2.0, 5.0]:
            a_values.append(a)
            x_values.append(a + q * math.sqrt(a))
    got = _kernel_gamma_dshape(a_values, x_values)
    for a, x, g in zip(a_values, x_values, got):
        want = _gamma_dshape_integral(a, x)
        assert abs(g - want) <= (1e-9 if a < 1e6 else 1e-12) * abs(want), (a, x, g, want)


# --- closed forms ---------------------------------------------------------------------------------------------


def _log_normalizer_integral(d: int, kappa: float) -> float:
    """-log of the defining integral |S^{d-2}| int_{-1}^{1} (1 + t)^kappa (1 - t^2)^{(d-3)/2} dt (surface measure),
    integrated in theta (t = cos theta) by mpmath around the mode."""
    with mp.workdps(30):
        k, m = mp.mpf(kappa), mp.mpf(d - 2)

        def log_f(th):  # (1 + cos)^k sin^(d-2), the Jacobian dt = sin dtheta included
            # 1 + cos = 2 cos^2(th / 2)
            return k * (mp.log(2) + 2 * mp.log(abs(mp.cos(th / 2)))) + (m * mp.log(abs(mp.sin(th))) if m > 0 else 0)

        # the mode of k log(1 + cos) + m log sin: tan(th/2) = ... ; scan a coarse grid for it
        grid = [mp.pi * (i + 0.5) / 2000 for i in range(2000)]
        mode = max(grid, key=log_f)
        peak = log_f(mode)
        pts = sorted({mp.mpf(0), mp.pi} | {mode * f for f in (0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5)} - {mp.mpf(0)})
        pts = [p for p in pts if 0 <= p <= mp.pi]
        integral = mp.quad(lambda th: mp.exp(log_f(th) - peak), pts)
        log_area = mp.log(2) + (d - 1) / mp.mpf(2) * mp.log(mp.pi) - mp.loggamma((d - 1) / mp.mpf(2))  # |S^{d-2}|
        return float(-(log_area + peak + mp.log(integral)))


@pytest.mark.parametrize("d", GRID_D)
@pytest.mark.parametrize("kappa", GRID_KAPPA)
def test_log_normalizer_against_defining_integral(d, kappa):
    got = float(PowerSpherical(_unit(1, d)[0], kappa).log_normalizer())
    want = _log_normalizer_integral(d, kappa)
    assert abs(got - want) <= 1e-11 * max(1.0, abs(want)), (got, want)


def test_log_normalizer_matches_paper_formula():
    """log C = -[(a + b) log 2 + b log pi + lgamma(a) - lgamma(a + b)] (De Cao and Aziz 2020, eq. 2), in mpmath."""
    for d in [2, 3, 16, 1000]:
        for kappa in [0.0, 0.3, 10.0, 1e6, 1e12]:
            with mp.workdps(40):
                b = mp.mpf(d - 1) / 2
                a = b + mp.mpf(kappa)
                want = -((a + b) * mp.log(2) + b * mp.log(mp.pi) + mp.loggamma(a) - mp.loggamma(a + b))
            got = float(PowerSpherical(_unit(1, d)[0], kappa).log_normalizer())
            assert abs(got - float(want)) <= 1e-13 * max(1.0, abs(float(want))), (d, kappa, got, float(want))


def _kl_mpmath(d: int, kappa: float):
    """KL(PS || U) = log C + kappa E[log(1 + t)] + log|S^{d-1}| with E[log(1+t)] = log 2 + psi(a) - psi(a + b)."""
    with mp.workdps(60):
        b = mp.mpf(d - 1) / 2
        k = mp.mpf(kappa)
        a = b + k
        log_c = -((a + b) * mp.log(2) + b * mp.log(mp.pi) + mp.loggamma(a) - mp.loggamma(a + b))
        e_log = mp.log(2) + mp.digamma(a) - mp.digamma(a + b)
        log_area = mp.log(2) + mp.mpf(d) / 2 * mp.log(mp.pi) - mp.loggamma(mp.mpf(d) / 2)
        return float(log_c + k * e_log + log_area), float(log_area)


@pytest.mark.parametrize("d", GRID_D)
def test_kl_and_entropy_against_mpmath(d):
    kappas = [0.0, 1e-8, 1e-4, 1e-3, 0.01, 0.3, 1.0, 10.0, 100.0, 1e4, 1e6, 1e9, 1e12]
    loc = _unit(len(kappas), d)
    kappa = torch.tensor(kappas, dtype=torch.float64)
    p = PowerSpherical(loc, kappa)
    kl = kl_divergence(p, HypersphericalUniform(d, dtype=torch.float64))
    ent = p.entropy()
    for i, k in enumerate(kappas):
        want, log_area = _kl_mpmath(d, k)
        assert kl[i].item() >= 0.0
        assert abs(kl[i].item() - want) <= 1e-12 * abs(want) + 1e-40, (d, k, kl[i].item(), want)
        assert abs(ent[i].item() - (log_area - want)) <= 1e-13 * max(1.0, abs(log_area)), (d, k)


def test_kl_gradient_matches_finite_differences():
    for d in [2, 16, 1000]:
        kappa = torch.tensor([1e-4, 0.5, 3.0, 2e3, 1e7], dtype=torch.float64, requires_grad=True)
        torch.autograd.gradcheck(lambda k: ps_module.kl_uniform(k, d), (kappa,))
        torch.autograd.gradcheck(lambda k: ps_module.log_normalizer(k, d), (kappa,))


@pytest.mark.parametrize("d", [2, 3, 16, 1000])
def test_log_prob_at_the_antipode(d):
    loc = _unit(3, d)
    kappa = torch.tensor([0.0, 0.5, 1e12], dtype=torch.float64)
    p = PowerSpherical(loc, kappa)
    lp = p.log_prob(-loc)
    assert lp[0].item() == pytest.approx(
        -HypersphericalUniform(d, dtype=torch.float64).entropy().item(), rel=1e-14
    )  # uniform
    assert lp[1].item() == -math.inf and lp[2].item() == -math.inf  # the density is 0 there
    # everywhere else finite, also next to the antipode and at the mode
    near = torch.nn.functional.normalize(-loc + 1e-9 * _unit(3, d, seed=1), dim=-1)
    for v in (near, loc, _unit(3, d, seed=2)):
        assert torch.isfinite(p.log_prob(v)).all()
    # against the definition in mpmath next to the antipode (1 + t ~ 1e-18: 1 + mu^T z would round to 0)
    with mp.workdps(40):
        t1 = mp.mpf(0.5) * mp.fsum((mp.mpf(a) + mp.mpf(b)) ** 2 for a, b in zip(loc[1].tolist(), near[1].tolist()))
        want = float(p.log_normalizer()[1]) + 0.5 * float(mp.log(t1))
    assert p.log_prob(near)[1].item() == pytest.approx(want, rel=1e-12)


def test_log_prob_float32_and_half():
    loc = _unit(2, 8, torch.float32)
    p = PowerSpherical(loc, torch.tensor([2.0, 50.0]))
    z = p.sample((4,))
    assert p.log_prob(z).dtype == torch.float32
    p64 = PowerSpherical(loc.double(), torch.tensor([2.0, 50.0], dtype=torch.float64), validate_args=False)
    torch.testing.assert_close(p.log_prob(z).double(), p64.log_prob(z.double()), rtol=1e-5, atol=1e-4)
    ph = PowerSpherical(loc.half(), torch.tensor([2.0, 50.0]).half())
    assert ph.sample((3,)).dtype == torch.float16 and ph.entropy().dtype == torch.float32


def test_moments():
    d = 7
    loc = _unit(3, d)
    kappa = torch.tensor([0.0, 2.0, 300.0], dtype=torch.float64)
    p = PowerSpherical(loc, kappa)
    mean_t = kappa / (d - 1 + kappa)
    torch.testing.assert_close(p.mean, mean_t[:, None] * loc)
    cov = p.covariance_matrix
    # trace E[z z^T] = 1 for unit vectors: trace(Cov) = 1 - |E z|^2
    torch.testing.assert_close(cov.diagonal(dim1=-2, dim2=-1).sum(-1), 1 - mean_t**2)
    torch.testing.assert_close(p.variance, cov.diagonal(dim1=-2, dim2=-1))
    # Var[t] = 4 Var[Beta(a, b)]
    a, b = (d - 1) / 2 + kappa, torch.full_like(kappa, (d - 1) / 2)
    var_t = 4 * a * b / ((a + b) ** 2 * (a + b + 1))
    torch.testing.assert_close(torch.einsum("bi,bij,bj->b", loc, cov, loc), var_t)
    assert torch.equal(p.mode, p.loc)
    # Monte Carlo: mean and covariance of 200000 samples within 5 standard errors
    n = 200_000
    z = p.sample((n,), generator=torch.Generator().manual_seed(3))
    se = (cov.diagonal(dim1=-2, dim2=-1) / n).sqrt()
    assert ((z.mean(0) - p.mean).abs() <= 5 * se + 1e-12).all()
    emp = torch.einsum("nbi,nbj->bij", z - p.mean, z - p.mean) / n
    assert (emp - cov).abs().max() < 5 * (2.0 / n) ** 0.5


# --- samples: shapes, dtypes, reproducibility -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_samples_shapes_norm_and_reproducibility(dtype):
    loc = _unit(6, 5, dtype).view(2, 3, 5)
    kappa = torch.tensor([[0.0], [1e12]], dtype=dtype).expand(2, 3)
    p = PowerSpherical(loc, kappa)
    assert p.batch_shape == (2, 3) and p.event_shape == (5,)
    z = p.rsample((4, 2), generator=torch.Generator().manual_seed(1))
    assert z.shape == (4, 2, 2, 3, 5) and z.dtype == dtype
    eps = torch.finfo(dtype).eps
    assert ((z.double().norm(dim=-1) - 1).abs() <= 8 * eps).all()
    torch.testing.assert_close(z, p.rsample((4, 2), generator=torch.Generator().manual_seed(1)), rtol=0, atol=0)
    # kappa = 1e12: at the mode to ~ (d / kappa)
    assert ((z[..., 1, :, :] - loc[1]).norm(dim=-1) < 1e-4).all()
    # trailing singleton concentration and a Python number
    assert PowerSpherical(loc, kappa.unsqueeze(-1)).batch_shape == (2, 3)
    assert PowerSpherical(loc, 3.0).concentration.shape == (2, 3)
    # expand
    e = PowerSpherical(loc[0, 0], 2.0).expand((4,))
    assert e.sample().shape == (4, 5)
    assert "PowerSpherical" in repr(p)


def test_threads_do_not_change_samples(restore_threads):
    p = PowerSpherical(_unit(300, 9), torch.linspace(0, 50, 300, dtype=torch.float64))
    torch.set_num_threads(1)
    a = p.sample((3,), generator=torch.Generator().manual_seed(5))
    torch.set_num_threads(2)
    b = p.sample((3,), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_tangent_stream_shared_with_von_mises_fisher():
    """Both samplers take the tangent direction from the same Philox stream: for one key, the tangent parts of a
    vMF and a Power Spherical sample of the same row are the same direction."""
    d = 6
    loc = _unit(5, d)
    seed = torch.tensor([987654321], dtype=torch.int64)
    z_ps, _ = ops.power_spherical_sample(loc, torch.full((5,), 3.0, dtype=torch.float64), seed, 2)
    z_vmf, _ = ops.vmf_sample(loc, torch.full((5,), 3.0, dtype=torch.float64), seed, 2)
    mu = loc.repeat(2, 1)

    def tangent(z):
        v = z - (z * mu).sum(-1, keepdim=True) * mu
        return torch.nn.functional.normalize(v, dim=-1)

    torch.testing.assert_close(tangent(z_ps), tangent(z_vmf), rtol=0, atol=1e-12)


# --- gradients --------------------------------------------------------------------------------------------------


def test_loc_gradient_is_the_reflection_derivative():
    """With the key fixed, z is a smooth function of loc (the reflection): gradcheck in float64."""
    loc = _unit(3, 6).requires_grad_(True)
    kappa = torch.tensor([0.0, 2.0, 40.0], dtype=torch.float64)

    def f(mu):
        return PowerSpherical(mu, kappa, validate_args=False).rsample((2,), generator=torch.Generator().manual_seed(7))

    torch.autograd.gradcheck(f, (loc,))


def test_kappa_gradient_matches_the_formula():
    """dL/dkappa = dL/dt (1 - t) dG_a/dalpha / (G_a + G_b), with dG_a/dalpha from mpmath at the drawn G_a."""
    d = 4
    loc = _unit(5, d)
    kappa = torch.tensor([0.0, 0.3, 5.0, 80.0, 2e3], dtype=torch.float64, requires_grad=True)
    seed = torch.tensor([42], dtype=torch.int64)
    z, gammas = ops.power_spherical_sample(loc, kappa, seed, 1)
    (z * loc).sum().backward()  # L = sum of t
    for i in range(5):
        ga, gb = gammas[i].tolist()
        alpha = (d - 1) / 2 + kappa[i].item()
        want = (2 * gb / (ga + gb)) * _gamma_dshape_mpmath(alpha, ga) / (ga + gb)
        assert kappa.grad[i].item() == pytest.approx(want, rel=1e-9)


# --- bad input ------------------------------------------------------------------------------------------------


def test_bad_input():
    loc = _unit(2, 3)
    with pytest.raises(ValueError, match="concentration must be >= 0"):
        PowerSpherical(loc, torch.tensor([1.0, -0.5], dtype=torch.float64), validate_args=True)
    with pytest.raises(ValueError, match=r"concentration must be >= 0 .*smallest value is -0\.5"):
        PowerSpherical(loc, torch.tensor([0.0, -0.5], dtype=torch.float64), validate_args=True)  # 0 then < 0
    PowerSpherical(loc, torch.tensor([0.0, -0.0], dtype=torch.float64), validate_args=True)  # 0: the uniform law
    with pytest.raises(ValueError, match="concentration must be finite and >= 0, but it contains NaN"):
        PowerSpherical(loc, torch.tensor([1.0, math.nan], dtype=torch.float64), validate_args=True)
    with pytest.raises(ValueError, match="concentration must be finite and >= 0, but it contains NaN"):
        PowerSpherical(loc, torch.tensor([-1.0, math.nan], dtype=torch.float64), validate_args=True)
    with pytest.raises(ValueError, match="loc must have unit norm"):  # loc's error first
        PowerSpherical(2 * loc, torch.tensor([-1.0, math.nan], dtype=torch.float64), validate_args=True)
    with pytest.raises(ValueError, match="concentration must be finite and >= 0, but it contains inf"):
        PowerSpherical(loc, torch.tensor([1.0, math.inf], dtype=torch.float64), validate_args=True)
    with pytest.raises(ValueError, match="loc must have unit norm"):
        PowerSpherical(2 * loc, 1.0, validate_args=True)
    with pytest.raises(ValueError, match="d >= 2"):
        PowerSpherical(torch.ones(3, 1, dtype=torch.float64), 1.0)
    with pytest.raises(TypeError, match="loc must be a float32, float64"):
        PowerSpherical(torch.ones(3, 2, dtype=torch.int64), 1.0)
    with pytest.raises(TypeError, match="concentration has dtype"):
        PowerSpherical(loc, torch.ones(2, dtype=torch.float32))
    with pytest.raises(ValueError, match="does not broadcast"):
        PowerSpherical(loc, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="to be within the support"):
        PowerSpherical(loc, 1.0, validate_args=True).log_prob(2 * loc)
    with pytest.raises(ValueError, match="dimensions differ"):
        kl_divergence(PowerSpherical(loc, 1.0), HypersphericalUniform(4))
    # the ops themselves never read out of bounds
    seed = torch.tensor([1], dtype=torch.int64)
    with pytest.raises(RuntimeError, match="power_spherical_sample: kappa must have shape"):
        ops.power_spherical_sample(loc, torch.ones(3, dtype=torch.float64), seed, 1)
    with pytest.raises(RuntimeError, match="power_spherical_sample: num_samples must be >= 0"):
        ops.power_spherical_sample(loc, torch.ones(2, dtype=torch.float64), seed, -1)
    z, g = ops.power_spherical_sample(loc, torch.ones(2, dtype=torch.float64), seed, 1)
    with pytest.raises(RuntimeError, match="gammas must be a float64 tensor"):
        ops.power_spherical_sample_backward(z, z, g.float(), loc, torch.ones(2, dtype=torch.float64))
    # unvalidated invalid concentration: NaN samples, never a crash or a hang
    zn, _ = ops.power_spherical_sample(loc, torch.tensor([-1.0, math.nan], dtype=torch.float64), seed, 2)
    assert torch.isnan(zn).all()


def test_empty_batch():
    p = PowerSpherical(torch.empty(0, 4, dtype=torch.float64), torch.empty(0, dtype=torch.float64))
    assert p.rsample((3,)).shape == (3, 0, 4)


# --- opcheck and torch.compile ----------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck_power_spherical_sample(device, dtype):
    loc = _unit(4, 5, dtype, device)
    kappa = torch.tensor([0.0, 2.0, 30.0, 1e3], dtype=dtype, device=device)
    seed = torch.tensor([12345], dtype=torch.int64, device=device)
    torch.library.opcheck(ops.power_spherical_sample.default, (loc, kappa, seed, 3))
    torch.library.opcheck(
        ops.power_spherical_sample.default,
        (loc.clone().requires_grad_(True), kappa.clone().requires_grad_(True), seed, 3),
    )
    z, gammas = ops.power_spherical_sample(loc, kappa, seed, 3)
    torch.library.opcheck(ops.power_spherical_sample_backward.default, (torch.randn_like(z), z, gammas, loc, kappa))


def test_torch_compile_fullgraph():
    loc = _unit(8, 6, torch.float32).requires_grad_(True)
    kappa = torch.linspace(0.0, 20.0, 8).requires_grad_(True)
    prior = HypersphericalUniform(6)

    def step(mu, k):
        q = PowerSpherical(mu, k, validate_args=False)
        z = q.rsample()
        return (z * torch.arange(6.0)).sum() + kl_divergence(q, prior).sum() + q.log_prob(z).sum()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    torch.manual_seed(11)
    out_c = compiled(loc, kappa)
    gc = torch.autograd.grad(out_c, (loc, kappa))
    torch.manual_seed(11)
    out_e = step(loc, kappa)
    ge = torch.autograd.grad(out_e, (loc, kappa))
    torch.testing.assert_close(out_c, out_e)
    for a, b in zip(gc, ge):
        torch.testing.assert_close(a, b)


# --- the drop-in module for the power_spherical package ------------------------------------------------------------


def _package_user_code(ps, loc, scale):
    """Code written against the power_spherical package's API (only the module ``ps`` differs)."""
    d = loc.shape[-1]
    q = ps.PowerSpherical(loc, scale)
    p = ps.HypersphericalUniform(d, device=loc.device, dtype=loc.dtype)
    z = q.rsample()
    kl = torch.distributions.kl_divergence(q, p)
    loss = -(z * loc).sum(-1).mean() + kl.mean()
    loss.backward()
    return {
        "z_shape": tuple(z.shape),
        "z_norm": z.detach().norm(dim=-1),
        "log_prob": q.log_prob(loc.detach()).detach(),
        "entropy": q.entropy().detach(),
        "log_normalizer": q.log_normalizer().detach(),
        "scale": q.scale.detach(),
        "uniform_sample_shape": tuple(p.rsample((3,)).shape),
        "uniform_entropy": p.entropy(),
        "kl": kl.detach(),
        "grads": (loc.grad is not None, scale.grad is not None),
    }


def test_code_written_for_the_package_runs_with_the_import_changed():
    from hvae_ext.compat import power_spherical as ours

    loc = _unit(5, 16, torch.float64).requires_grad_(True)
    scale = torch.tensor([0.5, 1.0, 10.0, 100.0, 1e3], dtype=torch.float64, requires_grad=True)
    got = _package_user_code(ours, loc, scale)
    assert got["z_shape"] == (5, 16) and got["uniform_sample_shape"] == (3, 16)
    assert ((got["z_norm"] - 1).abs() < 1e-14).all()
    assert got["grads"] == (True, True)
    assert torch.equal(got["scale"], scale.detach())
    assert (got["kl"] >= 0).all()
    try:
        import power_spherical as package
    except ImportError:
        pytest.skip("the power_spherical package is not installed: compared with hvae_ext's own closed forms only")
    loc2 = loc.detach().clone().requires_grad_(True)
    scale2 = scale.detach().clone().requires_grad_(True)
    want = _package_user_code(package, loc2, scale2)
    assert want["z_shape"] == got["z_shape"]
    for key in ("log_prob", "entropy", "log_normalizer"):
        torch.testing.assert_close(got[key], want[key], rtol=1e-12, atol=1e-12)
    # the package's KL uses a float32 uniform entropy: it agrees to float32 precision only
    torch.testing.assert_close(got["kl"], want["kl"].double(), rtol=0, atol=1e-5)


def test_compat_module_conventions():
    from hvae_ext.compat import PowerSpherical as CompatFromPackageRoot
    from hvae_ext.compat.power_spherical import HypersphericalUniform as U
    from hvae_ext.compat.power_spherical import MarginalTDistribution
    from hvae_ext.compat.power_spherical import PowerSpherical as C

    assert CompatFromPackageRoot is C
    loc = _unit(2, 5)
    scale = torch.tensor([1.0, 4.0], dtype=torch.float64)
    q = C(loc, scale)
    assert q.variance.shape == (2, 5, 5)  # the package's variance is the covariance matrix
    torch.testing.assert_close(q.stddev, q.covariance_matrix.sqrt(), equal_nan=True)
    assert q.expand((3, 2)).sample().shape == (3, 2, 5)
    u = U(torch.tensor(5))
    assert u.dim == 5 and u.rsample((2,)).shape == (2, 5) and "dim=5" in repr(u)
    t = MarginalTDistribution(5, scale)
    torch.testing.assert_close(t.mean, (q.mean * loc).sum(-1))
    torch.testing.assert_close(t.variance, torch.einsum("bi,bij,bj->b", loc, q.covariance_matrix, loc))
    assert torch.isfinite(t.entropy()).all() and t.rsample((3,)).shape == (3, 2)
