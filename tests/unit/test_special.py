"""Special functions: autograd (gradcheck, gradgradcheck), broadcasting, dtype/device, NaN conventions,
torch.compile. Accuracy against mpmath lives in test_special_accuracy.py."""

import math

import pytest
import torch

from hvae_ext import special
from hvae_ext.testing import DEVICES


@pytest.mark.parametrize("d", [2, 3, 5, 16, 100])
def test_log_normalizer_gradcheck(d):
    kappa = torch.tensor([1e-3, 0.3, 2.0, 15.0, 300.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k: special.vmf_log_normalizer(k, d), (kappa,))
    assert torch.autograd.gradgradcheck(lambda k: special.vmf_log_normalizer(k, d), (kappa,))


@pytest.mark.parametrize("v", [0.0, 0.5, 1.0, 3.7, 40.0])
def test_log_bessel_iv_gradcheck(v):
    x = torch.tensor([1e-2, 0.7, 3.0, 25.0, 400.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: special.log_bessel_iv(v, t), (x,))
    assert torch.autograd.gradgradcheck(lambda t: special.log_bessel_iv(v, t), (x,))


@pytest.mark.parametrize("v", [0.5, 1.0, 8.0, 64.5])
def test_bessel_iv_ratio_gradcheck(v):
    x = torch.tensor([1e-2, 0.7, 3.0, 25.0, 400.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: special.bessel_iv_ratio(v, t), (x,))


def test_mean_resultant_gradcheck():
    kappa = torch.tensor([1e-3, 0.3, 2.0, 15.0, 300.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k: special.vmf_mean_resultant(k, 7), (kappa,))


def test_log_normalizer_gradient_is_its_derivative():
    """The kappa-gradient of log C_d (computed with A_d from the ratio branch of the kernels) against a
    fourth-order central difference of log C_d itself (the log I branch): the two are separate sums."""
    kappa = torch.logspace(-3, 5, 50, dtype=torch.float64, requires_grad=True)
    for d in (2, 3, 10, 70, 1000):
        (g,) = torch.autograd.grad(special.vmf_log_normalizer(kappa, d).sum(), kappa)
        k = kappa.detach()
        h = 1e-3 * k
        f = lambda t: special.vmf_log_normalizer(t, d)  # noqa: E731
        fd = (8 * (f(k + h) - f(k - h)) - (f(k + 2 * h) - f(k - 2 * h))) / (12 * h)
        # truncation ~h^4 f^(5) (1e-12 relative) and rounding ~eps |log C| / h
        tol = 1e-9 * g.abs() + 30 * 2.2e-16 * f(k).abs() / h
        assert ((g - fd).abs() <= tol).all(), (d, ((g - fd).abs() / tol).max())


def test_log_normalizer_at_zero_is_minus_log_sphere_area():
    for d in (2, 3, 4, 10, 1000, 100000):
        log_area = math.log(2) + d / 2 * math.log(math.pi) - math.lgamma(d / 2)
        out = special.vmf_log_normalizer(torch.tensor(0.0, dtype=torch.float64), d)
        assert out.item() == pytest.approx(-log_area, rel=1e-14, abs=1e-14)
        near = special.vmf_log_normalizer(torch.tensor(1e-8, dtype=torch.float64), d)
        assert near.item() == pytest.approx(-log_area, rel=1e-12, abs=1e-12)


def test_conventions_at_boundaries():
    x = torch.tensor([0.0], dtype=torch.float64)
    assert special.log_bessel_iv(0.0, x).item() == 0.0
    assert special.log_bessel_iv(1.5, x).item() == -math.inf
    assert special.bessel_iv_ratio(1.5, x).item() == 0.0
    assert special.vmf_mean_resultant(x, 5).item() == 0.0
    nan = torch.tensor([math.nan, -1.0], dtype=torch.float64)
    assert torch.isnan(special.log_bessel_iv(1.0, nan)).all()
    assert torch.isnan(special.vmf_log_normalizer(nan, 3)).all()
    assert torch.isnan(special.log_bessel_iv(-1.0, torch.tensor([1.0], dtype=torch.float64))).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_broadcasting_dtype_device(device, dtype):
    kappa = torch.rand(4, 1, dtype=dtype, device=device) * 10
    dim = torch.tensor([2, 3, 16], device=device)
    out = special.vmf_log_normalizer(kappa, dim)
    assert out.shape == (4, 3) and out.dtype == dtype and out.device.type == device
    ref = torch.stack([special.vmf_log_normalizer(kappa[:, 0], int(d)) for d in dim.tolist()], dim=-1)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    v = torch.tensor([0.5, 2.0], dtype=dtype, device=device)
    x = torch.rand(3, 1, dtype=dtype, device=device) * 5
    assert special.log_bessel_iv(v, x).shape == (3, 2)
    assert special.bessel_iv_ratio(v, x).dtype == dtype


def test_broadcast_gradient_reduces_to_operand_shape():
    kappa = torch.tensor([[0.5], [2.0]], dtype=torch.float64, requires_grad=True)
    out = special.vmf_log_normalizer(kappa, torch.tensor([3, 5, 9]))
    out.sum().backward()
    expected = -sum(special.vmf_mean_resultant(kappa.detach(), d) for d in (3, 5, 9))
    torch.testing.assert_close(kappa.grad, expected)


def test_dim_must_be_integer():
    with pytest.raises(TypeError, match="dim"):
        special.vmf_log_normalizer(torch.tensor([1.0]), 3.5)
    with pytest.raises(TypeError, match="dim"):
        special.vmf_log_normalizer(torch.tensor([1.0]), torch.tensor([3.0]))


def test_float32_matches_float64():
    kappa = torch.logspace(-8, 6, 200, dtype=torch.float64)
    for d in (2, 3, 50, 5000):
        lo = special.vmf_log_normalizer(kappa.float(), d).double()
        hi = special.vmf_log_normalizer(kappa.float().double(), d)
        assert ((lo - hi).abs() / hi.abs().clamp_min(1)).max() < 2e-7


def test_torch_compile_fullgraph():
    def f(k):
        return special.vmf_log_normalizer(k, 16).sum() + special.log_bessel_iv(2.5, k).sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    k = torch.linspace(0.1, 50, 20, dtype=torch.float64, requires_grad=True)
    out = compiled(k)
    (g,) = torch.autograd.grad(out, k)
    (g_ref,) = torch.autograd.grad(f(k), k)
    torch.testing.assert_close(out, f(k))
    torch.testing.assert_close(g, g_ref)


def test_public_namespace():
    names = {
        "log_bessel_iv",
        "bessel_iv_ratio",
        "vmf_log_normalizer",
        "vmf_mean_resultant",
        "vmf_entropy",
        "vmf_kl_vmf",
        "vmf_mean_resultant_inverse",
    }
    assert set(special.__all__) == names and all(callable(getattr(special, n)) for n in names)
