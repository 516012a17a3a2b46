"""torch.library.opcheck of every op of torch.ops.hvae_ext, and torch.compile(fullgraph=True) of a step
that calls rsample."""

from __future__ import annotations

import pytest
import torch

import hvae_ext  # noqa: F401  (registers the ops)
from hvae_ext import HypersphericalUniform, VonMisesFisher
from hvae_ext.testing import DEVICES

ops = torch.ops.hvae_ext


def _unit(b, d, device, dtype=torch.float64):
    g = torch.Generator().manual_seed(b * 100 + d)
    return torch.nn.functional.normalize(torch.randn(b, d, dtype=dtype, generator=g), dim=-1).to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_opcheck_vmf_sample(device, dtype):
    loc = _unit(4, 5, device, dtype)
    kappa = torch.tensor([0.5, 2.0, 30.0, 1e3], dtype=dtype, device=device)
    seed = torch.tensor([12345], dtype=torch.int64, device=device)
    torch.library.opcheck(ops.vmf_sample.default, (loc, kappa, seed, 3))
    # with gradients: the autograd registration and the backward through aot_dispatch
    torch.library.opcheck(
        ops.vmf_sample.default, (loc.clone().requires_grad_(True), kappa.clone().requires_grad_(True), seed, 3)
    )
    z, omw = ops.vmf_sample(loc, kappa, seed, 3)
    grad = torch.randn_like(z)
    torch.library.opcheck(ops.vmf_sample_backward.default, (grad, z, omw, loc, kappa))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["log_bessel_iv", "bessel_iv_ratio"])
def test_opcheck_bessel(device, name):
    v = torch.tensor([0.5, 1.0, 3.5, 40.0], dtype=torch.float64, device=device)
    x = torch.tensor([0.3, 2.0, 17.0, 400.0], dtype=torch.float64, device=device)
    op = getattr(ops, name).default
    torch.library.opcheck(op, (v, x))
    torch.library.opcheck(op, (v, x.clone().requires_grad_(True)))
    torch.library.opcheck(op, (v[:, None], x[None, :]))  # broadcasting
    torch.library.opcheck(op, (v.float(), x.float()))
    torch.library.opcheck(getattr(ops, name + "_backward").default, (torch.ones_like(x), v, x))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["vmf_log_normalizer", "vmf_mean_resultant", "vmf_kl_uniform"])
def test_opcheck_vmf_special(device, name):
    kappa = torch.tensor([1e-3, 0.7, 10.5, 300.0], dtype=torch.float64, device=device)
    dim = torch.tensor(7, dtype=torch.int64, device=device)
    op = getattr(ops, name).default
    torch.library.opcheck(op, (kappa, dim))
    torch.library.opcheck(op, (kappa.clone().requires_grad_(True), dim))
    torch.library.opcheck(op, (kappa.float(), torch.tensor([3, 50, 7, 1000], device=device)))
    torch.library.opcheck(getattr(ops, name + "_backward").default, (torch.ones_like(kappa), kappa, dim))


def _step(mu_raw, k_raw, target):
    mu = torch.nn.functional.normalize(mu_raw, dim=-1)
    kappa = torch.nn.functional.softplus(k_raw) + 1
    q = VonMisesFisher(mu, kappa, validate_args=False)
    z = q.rsample()
    kl = torch.distributions.kl_divergence(q, HypersphericalUniform(mu.shape[-1], dtype=mu.dtype, device=mu.device))
    return ((z - target) ** 2).sum(-1).mean() + kl.mean()


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_fullgraph_rsample_step(device):
    torch._dynamo.reset()
    mu_raw = torch.randn(8, 5, device=device, requires_grad=True)
    k_raw = torch.randn(8, device=device, requires_grad=True)
    target = torch.randn(8, 5, device=device)
    compiled = torch.compile(_step, fullgraph=True)
    torch.manual_seed(0)
    loss_c = compiled(mu_raw, k_raw, target)
    loss_c.backward()
    gc = (mu_raw.grad.clone(), k_raw.grad.clone())
    mu_raw.grad = k_raw.grad = None
    torch.manual_seed(0)
    loss_e = _step(mu_raw, k_raw, target)
    loss_e.backward()
    # the same random stream: the seed is drawn by torch.randint inside the graph
    torch.testing.assert_close(loss_c, loss_e)
    torch.testing.assert_close(gc[0], mu_raw.grad)
    torch.testing.assert_close(gc[1], k_raw.grad)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["vmf_log_normalizer", "vmf_kl_uniform"])
def test_value_and_grad_ops(device, name):
    """The (value, derivative) forward ops used when kappa requires a gradient: opcheck, the same value as
    the plain op, the same derivative as the backward op, and first and second derivatives through autograd."""
    from hvae_ext._ops import value_for_autograd

    kappa = torch.tensor([1e-3, 0.5, 3.0, 40.0, 2e3], dtype=torch.float64, device=device)
    dim = torch.tensor(7, device=device)
    fused = getattr(ops, "_" + name + "_and_grad").default
    torch.library.opcheck(fused, (kappa, dim))
    torch.library.opcheck(fused, (kappa.clone().requires_grad_(True), dim))
    value, derivative = fused(kappa, dim)
    torch.testing.assert_close(value, getattr(ops, name)(kappa, dim), rtol=0, atol=0)
    expected = getattr(ops, name + "_backward")(torch.ones_like(kappa), kappa, dim)
    torch.testing.assert_close(derivative, expected, rtol=0, atol=0)
    k = kappa.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: value_for_autograd(name, t, dim), (k,))
    assert torch.autograd.gradgradcheck(lambda t: value_for_autograd(name, t, dim), (k,))
    with torch.no_grad():  # no gradient needed: the plain op
        torch.testing.assert_close(value_for_autograd(name, k, dim), value, rtol=0, atol=0)


@pytest.mark.parametrize("num_samples", [1, 3])
def test_fake_sample_backward_has_the_real_kernels_strides(num_samples):
    """The real kernels return contiguous gradients whatever loc's layout; the fake kernel must say the same
    (torch.compile asserts the strides)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    loc = _unit(4, 6, "cpu").t().contiguous().t()  # column-major: not contiguous
    assert not loc.is_contiguous()
    kappa = torch.tensor([0.5, 2.0, 30.0, 1e3], dtype=loc.dtype)
    seed = torch.tensor([3], dtype=torch.int64)
    z, omw = ops.vmf_sample(loc, kappa, seed, num_samples)
    args = (torch.ones_like(z), z, omw, loc, kappa)
    real = ops.vmf_sample_backward(*args)
    with FakeTensorMode() as mode:
        fake = ops.vmf_sample_backward(*(mode.from_tensor(t) for t in args))
    for r, f in zip(real, fake):
        assert r.shape == f.shape and r.stride() == f.stride() and r.dtype == f.dtype


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_entropy_and_kl_vmf(device):
    kappa = torch.tensor([1e-3, 0.7, 10.5, 300.0, 1e9], dtype=torch.float64, device=device)
    dim = torch.tensor(7, dtype=torch.int64, device=device)
    torch.library.opcheck(ops.vmf_entropy.default, (kappa, dim))
    torch.library.opcheck(ops.vmf_entropy.default, (kappa.clone().requires_grad_(True), dim))
    kq = torch.tensor([2.0, 0.3, 10.0, 1e4, 1e9], dtype=torch.float64, device=device)
    omc = torch.tensor([0.0, 0.5, 1e-6, 2.0, 0.1], dtype=torch.float64, device=device)
    torch.library.opcheck(ops.vmf_kl_vmf.default, (kappa, kq, omc, dim))
    args = tuple(t.clone().requires_grad_(True) for t in (kappa[:4], kq[:4], omc[:4]))
    torch.library.opcheck(ops.vmf_kl_vmf.default, args + (dim,))
    assert torch.autograd.gradcheck(lambda a, b, c: ops.vmf_kl_vmf(a, b, c, dim), args)
    assert torch.autograd.gradgradcheck(lambda a, b, c: ops.vmf_kl_vmf(a, b, c, dim), args)
    assert torch.autograd.gradgradcheck(lambda k: ops.vmf_entropy(k, dim), (args[0],))


def test_opcheck_sample_proposals():
    """The benchmarks' opt-in counter (CPU only)."""
    loc = _unit(3, 6, "cpu")
    kappa = torch.tensor([0.5, 20.0, 1e4], dtype=torch.float64)
    seed = torch.tensor([7], dtype=torch.int64)
    torch.library.opcheck(ops._vmf_sample_proposals.default, (loc, kappa, seed, 4))
