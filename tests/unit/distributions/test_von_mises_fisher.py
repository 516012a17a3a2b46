"""VonMisesFisher as a torch distribution: samples on the sphere, shapes, log_prob (normalisation on S^2,
scipy), moments, reproducibility under a seed (across thread counts), argument validation, devices. Its
entropy and KL divergences are tested in test_kl.py and test_entropy_kl_accuracy.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.distributions import kl_divergence

import hvae_ext
from hvae_ext import HypersphericalUniform, VonMisesFisher
from hvae_ext.testing import DEVICES, angle_from_loc, random_unit, w_law


def _norm_err(z: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(z.double(), dim=-1) - 1).abs().max().item()


# --- samples lie on the sphere ---------------------------------------------------------------------------


def _special_locs(d: int, dtype, device):
    e1 = torch.zeros(d, dtype=torch.float64)
    e1[0] = 1.0
    near = e1.clone()
    near[1] = 1e-9
    near = near / near.norm()
    near_minus = -near
    locs = {"e1": e1, "-e1": -e1, "e1+1e-9": near, "-e1+1e-9": near_minus, "random": random_unit(d, d)}
    return {k: v.to(dtype=dtype, device=device) for k, v in locs.items()}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
@pytest.mark.parametrize("d", [2, 3, 4, 5, 17, 256, 1000])
def test_samples_on_sphere(device, dtype, tol, d):
    for name, mu in _special_locs(d, dtype, device).items():
        for kappa in (1e-8, 1e-3, 1.0, 10.5, 1e3, 1e5, 1e9):
            n = 2000 if d <= 256 else 200
            z = VonMisesFisher(mu, torch.tensor(kappa, dtype=dtype, device=device)).sample((n,))
            assert z.dtype == dtype and z.device.type == device and z.shape == (n, d)
            assert bool(torch.isfinite(z).all()), (name, kappa)
            err = _norm_err(z)
            assert err <= tol, f"|z| - 1 = {err:.3g} at mu={name}, d={d}, kappa={kappa:g}, {dtype}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_samples_concentrate_at_loc(device, dtype):
    """kappa = 1e9: z = mu to ~sqrt(d / kappa), also at the poles mu = +-e1 (no sign flip)."""
    d = 8
    for name, mu in _special_locs(d, dtype, device).items():
        z = VonMisesFisher(mu, torch.tensor(1e9, dtype=dtype, device=device)).sample((500,))
        assert (z - mu).abs().max().item() < 1e-3, name


# --- shapes, expand, parameters --------------------------------------------------------------------------


def test_shapes_and_broadcasting():
    loc = torch.nn.functional.normalize(torch.randn(4, 3, 6, dtype=torch.float64), dim=-1)
    for conc in (
        torch.rand(4, 3, dtype=torch.float64) + 0.5,
        torch.rand(4, 3, 1, dtype=torch.float64) + 0.5,
        torch.tensor(2.0, dtype=torch.float64),
        2.0,
        torch.rand(3, dtype=torch.float64) + 0.5,
    ):
        q = VonMisesFisher(loc, conc)
        assert q.batch_shape == (4, 3) and q.event_shape == (6,) and q.dim == 6
        assert q.rsample().shape == (4, 3, 6)
        assert q.rsample((5, 2)).shape == (5, 2, 4, 3, 6)
        assert q.log_prob(q.sample((7,))).shape == (7, 4, 3)
        assert q.entropy().shape == (4, 3)
        assert q.mean.shape == (4, 3, 6) and q.variance.shape == (4, 3, 6)
        assert q.covariance_matrix.shape == (4, 3, 6, 6)
        assert kl_divergence(q, HypersphericalUniform(6, dtype=torch.float64)).shape == (4, 3)
    # a loc of one direction broadcast against a batch of concentrations
    q = VonMisesFisher(loc[0, 0], torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    assert q.batch_shape == (3,) and q.sample((2,)).shape == (2, 3, 6)
    e = q.expand((5, 3))
    assert e.batch_shape == (5, 3) and e.sample((2,)).shape == (2, 5, 3, 6)
    torch.testing.assert_close(e.entropy(), q.entropy().expand(5, 3))
    assert q.mode is q.loc or torch.equal(q.mode, q.loc)


def test_sample_has_no_grad_and_rsample_has():
    """sample() is cut from the graph; rsample() carries finite, non-zero gradients to both loc and kappa."""
    loc = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1).requires_grad_(True)
    k = torch.ones(3, requires_grad=True)
    q = VonMisesFisher(loc, k)
    assert not q.sample().requires_grad
    z = q.rsample((50,))
    (z * torch.arange(1.0, 5.0)).sum().backward()
    for g in (loc.grad, k.grad):
        assert g is not None and bool(torch.isfinite(g).all()) and bool((g != 0).all()), g


def test_empty_batch():
    q = VonMisesFisher(torch.zeros(0, 5), torch.ones(0))
    assert q.rsample((3,)).shape == (3, 0, 5)


def test_validation_errors():
    loc = torch.tensor([1.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        VonMisesFisher(torch.tensor([1.0, 1.0, 0.0]), 1.0, validate_args=True)
    with pytest.raises(ValueError):
        VonMisesFisher(loc, -1.0, validate_args=True)
    with pytest.raises(ValueError):
        VonMisesFisher(loc, float("nan"), validate_args=True)
    with pytest.raises(ValueError):
        VonMisesFisher(torch.tensor([1.0]), 1.0)  # d = 1
    with pytest.raises(ValueError):
        VonMisesFisher(torch.zeros(2, 3), torch.ones(5))  # batch shapes do not broadcast
    with pytest.raises(TypeError):
        VonMisesFisher(loc.long(), 1.0)  # (half precision is accepted: tests/unit/test_mixed_precision.py)
    with pytest.raises(TypeError):
        VonMisesFisher(loc, torch.tensor(1.0, dtype=torch.float64))  # dtype mismatch
    with pytest.raises(ValueError):
        HypersphericalUniform(1)
    with pytest.raises(ValueError):  # the dimensions of a KL must agree (ambient d everywhere)
        kl_divergence(VonMisesFisher(loc, 1.0), HypersphericalUniform(2))
    q = VonMisesFisher(loc, 1.0, validate_args=True)
    with pytest.raises(ValueError):
        q.log_prob(torch.tensor([2.0, 0.0, 0.0]))


# --- log_prob --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kappa", [1e-3, 0.5, 5.0, 50.0])
def test_log_prob_integrates_to_one_on_s2(kappa):
    """Gauss-Legendre in cos(theta) x trapezoid in phi, about the z axis, with a random mu."""
    mu = random_unit(3, 1)
    x, wts = np.polynomial.legendre.leggauss(400)
    phi = np.linspace(0, 2 * np.pi, 800, endpoint=False)
    ct, ph = np.meshgrid(x, phi, indexing="ij")
    st = np.sqrt(1 - ct**2)
    pts = torch.from_numpy(np.stack([st * np.cos(ph), st * np.sin(ph), ct], -1))
    lp = VonMisesFisher(mu, torch.tensor(kappa, dtype=torch.float64)).log_prob(pts).numpy()
    total = (np.exp(lp) * wts[:, None]).sum() * (2 * np.pi / len(phi))
    assert total == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("d", [2, 3, 4, 5, 10, 50, 100, 1000])
def test_log_prob_matches_scipy(d):
    mu = random_unit(d, 3 + d)
    rng = np.random.default_rng(d)
    checked = 0
    for kappa in (1e-4, 0.1, 1.0, 10.5, 100.0, 1e3, 1e4):
        q = VonMisesFisher(mu, torch.tensor(kappa, dtype=torch.float64))
        x = np.concatenate([q.sample((50,)).numpy(), stats.vonmises_fisher(mu.numpy(), 1.0).rvs(20, random_state=rng)])
        x /= np.linalg.norm(x, axis=-1, keepdims=True)
        with np.errstate(all="ignore"):
            ref = stats.vonmises_fisher(mu.numpy(), kappa).logpdf(x)
        ours = q.log_prob(torch.from_numpy(x)).numpy()
        assert np.isfinite(ours).all()
        ok = np.isfinite(ref)
        checked += ok.sum()
        np.testing.assert_allclose(ours[ok], ref[ok], rtol=1e-9, atol=1e-9, err_msg=f"d={d}, kappa={kappa}")
    assert checked > 0


def test_log_prob_float32_close_to_float64():
    mu = random_unit(20, 1)
    q64 = VonMisesFisher(mu, torch.tensor(30.0, dtype=torch.float64))
    x = q64.sample((100,))
    q32 = VonMisesFisher(mu.float(), torch.tensor(30.0))
    torch.testing.assert_close(q32.log_prob(x.float()).double(), q64.log_prob(x), rtol=1e-5, atol=1e-4)


# --- moments ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d,kappa", [(2, 0.1), (3, 1.0), (5, 2.0), (10, 10.5), (100, 20.0), (1000, 1e5)])
def test_mean_and_covariance(d, kappa):
    mu = random_unit(d, 8)
    q = VonMisesFisher(mu, torch.tensor(kappa, dtype=torch.float64))
    law = w_law(d, kappa)
    torch.testing.assert_close(q.mean, law.mean * mu, rtol=1e-8, atol=1e-12)
    cov = q.covariance_matrix
    P = torch.eye(d, dtype=torch.float64) - torch.outer(mu, mu)
    # Cov = Var[w] mu mu^T + E[1 - w^2] / (d - 1) P
    tangent = (1 - law.var - law.mean**2) / (d - 1)
    torch.testing.assert_close(cov, law.var * torch.outer(mu, mu) + tangent * P, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(q.variance, torch.diagonal(cov), rtol=1e-12, atol=1e-15)
    if d <= 10:  # against Monte Carlo as well
        z = q.sample((200_000,), generator=torch.Generator().manual_seed(d))
        emp = torch.cov(z.T)
        assert (emp - cov).abs().max().item() < 6 * math.sqrt(2 / 200_000)
        assert (z.mean(0) - q.mean).abs().max().item() < 6 / math.sqrt(200_000)


# --- reproducibility --------------------------------------------------------------------------------------


def test_manual_seed_and_generator_reproducible():
    loc = torch.nn.functional.normalize(torch.randn(8, 7), dim=-1)
    k = torch.rand(8) * 50
    q = VonMisesFisher(loc, k)
    torch.manual_seed(3)
    a = q.rsample((100,))
    torch.manual_seed(3)
    b = q.rsample((100,))
    assert torch.equal(a, b)
    c = q.rsample((100,))
    assert not torch.equal(a, c)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(q.sample((10,), generator=g1), q.sample((10,), generator=g2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_reproducible_across_thread_counts(restore_threads, dtype):
    """Each row has its own Philox stream keyed by (seed, row): the samples and the gradients are
    bitwise identical whatever the number of threads."""
    loc0 = torch.nn.functional.normalize(
        torch.randn(64, 33, dtype=dtype, generator=torch.Generator().manual_seed(0)), dim=-1
    )
    k0 = torch.logspace(-3, 5, 64, dtype=dtype)
    results = []
    for threads in (1, 2, 4):
        torch.set_num_threads(threads)
        loc, k = loc0.clone().requires_grad_(True), k0.clone().requires_grad_(True)
        z = VonMisesFisher(loc, k).rsample((300,), generator=torch.Generator().manual_seed(42))
        (z * torch.arange(33, dtype=dtype)).sum().backward()
        results.append((z.detach(), loc.grad, k.grad))
    for other in results[1:]:
        for x, y in zip(results[0], other):
            assert torch.equal(x, y)


@pytest.mark.parametrize("device", DEVICES)
def test_op_deterministic_given_seed(device):
    loc = torch.nn.functional.normalize(torch.randn(5, 9, dtype=torch.float64), dim=-1).to(device)
    k = torch.tensor([0.1, 1.0, 10.0, 100.0, 1e4], dtype=torch.float64, device=device)
    seed = torch.tensor([1234567], dtype=torch.int64, device=device)
    z1, w1 = torch.ops.hvae_ext.vmf_sample(loc, k, seed, 11)
    z2, w2 = torch.ops.hvae_ext.vmf_sample(loc, k, seed, 11)
    assert z1.shape == (55, 9) and w1.shape == (55,)
    assert torch.equal(z1, z2) and torch.equal(w1, w2)
    # one_minus_w agrees with the samples (row r uses parameter row r % B)
    w = (z1 * loc.repeat(11, 1)).sum(-1)
    torch.testing.assert_close(1 - w, w1, rtol=1e-9, atol=1e-12)
    z3, _ = torch.ops.hvae_ext.vmf_sample(loc, k, seed + 1, 11)
    assert not torch.equal(z1, z3)


# --- CUDA -----------------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_cuda_matches_cpu_in_distribution_and_keeps_device():
    d, kappa = 10, 10.5
    mu = random_unit(d, 4)
    q = VonMisesFisher(mu.cuda(), torch.tensor(kappa, dtype=torch.float64, device="cuda"))
    z = q.rsample((50_000,))
    assert z.is_cuda and z.dtype == torch.float64
    assert q.log_prob(z).is_cuda and q.entropy().is_cuda
    assert kl_divergence(q, HypersphericalUniform(d, dtype=torch.float64, device="cuda")).is_cuda
    _, theta = angle_from_loc(z.cpu(), mu)
    assert w_law(d, kappa).ks(theta).pvalue > 1e-4
    torch.cuda.manual_seed(1)
    a = q.sample((10,))
    torch.cuda.manual_seed(1)
    assert torch.equal(a, q.sample((10,)))
    with pytest.raises(ValueError):  # a CPU generator for CUDA samples
        q.sample((2,), generator=torch.Generator())
    # against the CPU kernels: rows draw from Philox streams keyed by (key, row) on both devices
    # (csrc/cuda/sample_cuda.cu), so one key gives the same samples up to rounding; a row may differ where a
    # rounding difference flips an acceptance test (rare)
    ops = torch.ops.hvae_ext
    for dim, dtype, tol in ((3, torch.float64, 1e-12), (10, torch.float64, 1e-10), (64, torch.float32, 1e-4)):
        loc = torch.nn.functional.normalize(
            torch.randn(16, dim, dtype=dtype, generator=torch.Generator().manual_seed(dim)), dim=-1
        )
        kap = torch.logspace(-2, 4, 16, dtype=dtype)
        key = torch.tensor([987654321], dtype=torch.int64)
        z_cpu, omw_cpu = ops.vmf_sample(loc, kap, key, 500)
        z_gpu, omw_gpu = ops.vmf_sample(loc.cuda(), kap.cuda(), key.cuda(), 500)
        same = (z_gpu.cpu() - z_cpu).abs().amax(-1) <= tol
        assert same.float().mean().item() >= 0.99, (dim, dtype, same.float().mean().item())
        torch.testing.assert_close(omw_gpu.cpu()[same], omw_cpu[same], rtol=1e3 * tol, atol=tol)
    # the elementwise kernels against the CPU ones
    kap = torch.logspace(-8, 12, 300, dtype=torch.float64)
    for fn in (hvae_ext.special.vmf_log_normalizer, hvae_ext.special.vmf_mean_resultant, hvae_ext.special.vmf_entropy):
        for dim in (2, 3, 10, 100, 5000):
            torch.testing.assert_close(fn(kap.cuda(), dim).cpu(), fn(kap, dim), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("d", [2, 3, 16, 70])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sample_rows_use_their_parameter_rows(d, dtype):
    """Sample row r of the kernel uses parameter row r % B, across the CPU kernel's tiles of rows (B = 7 does
    not divide a tile): at kappa = 1e6 every sample lies within ~sqrt(d / kappa) of its own mean direction,
    and rows with kappa = inf are exactly their mean direction."""
    g = torch.Generator().manual_seed(d)
    loc = torch.nn.functional.normalize(torch.randn(7, d, dtype=dtype, generator=g), dim=-1)
    kappa = torch.full((7,), 1e6, dtype=dtype)
    kappa[3] = float("inf")
    z = VonMisesFisher(loc, kappa, validate_args=False).rsample((301,))  # inf: the kernel's limit w = 1
    assert z.shape == (301, 7, d)
    cos = (z * loc).sum(-1)
    assert (1 - cos).max() < 50 * d / 1e6
    torch.testing.assert_close(z[:, 3], loc[3].expand(301, d), rtol=0, atol=4 * torch.finfo(dtype).eps)


def test_variance_and_covariance_are_differentiable_in_kappa():
    """Var and Cov use A_d'(kappa); their kappa-gradient goes through A_d'' (gradcheck, and the double
    backward of vmf_mean_resultant)."""
    loc = torch.nn.functional.normalize(
        torch.tensor([[0.3, -0.5, 0.8, 0.1], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64), dim=-1
    )
    kappa = torch.tensor([0.7, 25.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k: VonMisesFisher(loc, k).variance, (kappa,))
    assert torch.autograd.gradcheck(lambda k: VonMisesFisher(loc, k).covariance_matrix, (kappa,))
    assert torch.autograd.gradgradcheck(lambda k: VonMisesFisher(loc, k).mean, (kappa,))
