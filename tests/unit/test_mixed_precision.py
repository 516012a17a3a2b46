"""Mixed precision: float16/bfloat16 parameters and torch.autocast.

Half-precision parameters are cast up in the Python layer and computed by the float32 kernels; samples
come back in ``loc``'s dtype, ``log_prob``, entropy, KL and the moments in float32. Under ``torch.autocast``
the compiled ops run in float32 (``torch.library.register_autocast``).
"""

from __future__ import annotations

import pytest
import torch
from torch.distributions import kl_divergence

from hvae_ext import HypersphericalUniform, VonMisesFisher, special
from hvae_ext.models import SVAE

ops = torch.ops.hvae_ext
HALF = [torch.bfloat16, torch.float16]


def _params(b=6, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    loc = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=-1)
    kappa = torch.rand(b, generator=g) * 30 + 0.5
    return loc, kappa


@pytest.mark.parametrize("dtype", HALF)
def test_half_parameters_are_computed_in_float32(dtype):
    loc32, kappa32 = _params()
    loc, kappa = loc32.to(dtype), kappa32.to(dtype)
    q = VonMisesFisher(loc, kappa, validate_args=True)  # the unit norm is checked to the precision of dtype
    ref = VonMisesFisher(loc.float(), kappa.float(), validate_args=False)
    assert q.loc.dtype == q.concentration.dtype == torch.float32
    torch.manual_seed(1)
    z = q.rsample((4,))
    torch.manual_seed(1)
    z_ref = ref.rsample((4,))
    assert z.dtype == dtype  # samples in loc's dtype: computed in float32, rounded once
    torch.testing.assert_close(z, z_ref.to(dtype), rtol=0, atol=0)
    eps = torch.finfo(dtype).eps
    assert ((torch.linalg.vector_norm(z.float(), dim=-1) - 1).abs() <= 4 * eps).all()
    p = HypersphericalUniform(5)
    for got, want in [
        (q.log_prob(z), ref.log_prob(z.float())),
        (q.entropy(), ref.entropy()),
        (kl_divergence(q, p), kl_divergence(ref, p)),
        (q.mean, ref.mean),
    ]:
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want)


def test_mixed_half_and_float32_parameters():
    loc, kappa = _params()
    q = VonMisesFisher(loc.bfloat16(), kappa, validate_args=True)  # a Linear under autocast: bf16 loc
    assert q.rsample().dtype == torch.bfloat16 and q.entropy().dtype == torch.float32
    q = VonMisesFisher(loc, kappa.half(), validate_args=True)
    assert q.rsample().dtype == torch.float32
    q = VonMisesFisher(torch.nn.functional.normalize(loc.double(), dim=-1), kappa.half(), validate_args=True)
    assert q.loc.dtype == torch.float64 and q.rsample().dtype == torch.float64
    q = VonMisesFisher(loc.half(), 1e-8)  # a number: taken in float32 (it would round to 0 in float16)
    assert q.concentration.dtype == torch.float32 and q.concentration[0].item() == pytest.approx(1e-8)
    assert q.rsample().dtype == torch.float16
    with pytest.raises(ValueError, match="unit norm"):
        VonMisesFisher((2 * loc).bfloat16(), kappa, validate_args=True)


@pytest.mark.parametrize("dtype", HALF)
def test_gradients_flow_through_half_parameters(dtype):
    loc32, kappa32 = _params()
    loc = loc32.to(dtype).requires_grad_(True)
    kappa = kappa32.to(dtype).requires_grad_(True)
    q = VonMisesFisher(loc, kappa, validate_args=False)
    z = q.rsample((3,))
    loss = (z.float() * torch.arange(5.0)).sum() + kl_divergence(q, HypersphericalUniform(5)).sum()
    loss.backward()
    assert loc.grad.dtype == dtype and kappa.grad.dtype == dtype
    assert torch.isfinite(loc.grad.float()).all() and torch.isfinite(kappa.grad.float()).all()
    assert loc.grad.abs().sum() > 0 and kappa.grad.abs().sum() > 0


@pytest.mark.parametrize("dtype", HALF)
def test_special_functions_take_half_inputs_and_return_float32(dtype):
    x = torch.tensor([0.25, 1.5, 7.0, 40.0])
    xh = x.to(dtype)
    for fn, args, args_ref in [
        (special.log_bessel_iv, (2.5, xh), (2.5, xh.float())),
        (special.bessel_iv_ratio, (xh + 1, xh), ((xh + 1).float(), xh.float())),
        (special.vmf_log_normalizer, (xh, 6), (xh.float(), 6)),
        (special.vmf_mean_resultant, (xh, 6), (xh.float(), 6)),
    ]:
        got = fn(*args)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, fn(*args_ref), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", HALF)
def test_ops_run_in_float32_under_autocast(dtype):
    loc, kappa = _params()
    seed = torch.tensor([7], dtype=torch.int64)
    with torch.autocast("cpu", dtype=dtype):
        z, omw = ops.vmf_sample(loc.to(dtype), kappa.to(dtype), seed, 2)
        lc = ops.vmf_log_normalizer(kappa.to(dtype), torch.full((), 5, dtype=torch.int64))
        lb = ops.log_bessel_iv(kappa.to(dtype), kappa)
        z64, _ = ops.vmf_sample(loc.double(), kappa.double(), seed, 2)  # float64 stays float64
    assert z.dtype == omw.dtype == lc.dtype == lb.dtype == torch.float32
    assert z64.dtype == torch.float64
    z_ref, _ = ops.vmf_sample(loc.to(dtype).float(), kappa.to(dtype).float(), seed, 2)
    torch.testing.assert_close(z, z_ref, rtol=0, atol=0)


def _assert_every_parameter_has_a_finite_gradient(model):
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient reached {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient of {name}"
        assert p.grad.abs().sum() > 0, f"zero gradient of {name}"


@pytest.mark.parametrize("dtype", HALF)
def test_svae_training_step_under_autocast(dtype):
    torch.manual_seed(0)
    model = SVAE.mlp(latent_dim=5, hidden=(32, 16), data_dim=40)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = (torch.rand(16, 40) < 0.3).float()
    seen = {}
    orig = model.log_likelihood_given

    def spy(x_, z_):
        seen["z"] = z_
        return orig(x_, z_)

    model.log_likelihood_given = spy
    for _step in range(2):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=dtype):
            elbo, recon, kl = model.elbo(x)
            loss = -elbo.mean()
        assert torch.isfinite(loss) and loss.dtype == torch.float32
        assert kl.dtype == torch.float32 and torch.isfinite(kl).all() and (kl >= 0).all()
        z = seen["z"]
        tol = 4 * torch.finfo(z.dtype).eps
        assert ((torch.linalg.vector_norm(z.float(), dim=-1) - 1).abs() <= tol).all()
        loss.backward()
        _assert_every_parameter_has_a_finite_gradient(model)
        opt.step()


def test_svae_in_bfloat16_parameters():
    """A model cast to bfloat16 (no autocast): bfloat16 loc and kappa, bfloat16 samples for the decoder."""
    torch.manual_seed(0)
    model = SVAE.mlp(latent_dim=4, hidden=(16, 8), data_dim=20).to(torch.bfloat16)
    x = (torch.rand(8, 20) < 0.3).to(torch.bfloat16)
    loss = model.loss(x)
    assert torch.isfinite(loss)
    loss.backward()
    _assert_every_parameter_has_a_finite_gradient(model)


@pytest.mark.parametrize("dtype", HALF)
def test_svgae_training_step_under_autocast(dtype):
    pytest.importorskip("torch_geometric", reason="the S-VGAE needs torch_geometric (the 'experiments' extra)")
    from hvae_ext.models import SVGAE

    g = torch.Generator().manual_seed(0)
    n, f = 40, 12
    adj = torch.triu(torch.rand(n, n, generator=g) < 0.15, diagonal=1)
    edge_index = (adj | adj.t()).nonzero().t().contiguous()
    x = torch.rand(n, f, generator=g)
    torch.manual_seed(0)
    model = SVGAE.gcn(f, hidden_channels=16, latent_dim=6)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _step in range(2):
        model.train()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=dtype):
            z = model.encode(x, edge_index)
            loss = model.recon_loss(z, edge_index) + model.kl_loss() / n
        assert torch.isfinite(loss)
        tol = 4 * torch.finfo(z.dtype).eps
        assert ((torch.linalg.vector_norm(z.float(), dim=-1) - 1).abs() <= tol).all()
        loss.backward()
        _assert_every_parameter_has_a_finite_gradient(model)
        opt.step()
