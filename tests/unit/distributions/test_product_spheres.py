"""A product of spheres S^m x ... x S^m as torch's Independent over k von Mises-Fisher factors: its KL is the
sum of the factor KLs, each factor's samples follow that factor's law, gradients reach every mu_i and kappa_i,
and the S-VAE / S-VGAE built on it."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Independent, kl_divergence

from hvae_ext import HypersphericalUniform, VonMisesFisher
from hvae_ext.models import SVAE
from hvae_ext.testing import angle_from_loc, random_unit, w_law


def _product(b: int, k: int, m1: int, kappas, seed: int = 0, requires_grad: bool = False):
    loc = torch.stack([torch.stack([random_unit(m1, 100 * seed + 10 * i + j) for j in range(k)]) for i in range(b)])
    kappa = torch.tensor(kappas, dtype=torch.float64).expand(b, k).clone()
    if requires_grad:
        loc.requires_grad_(True)
        kappa.requires_grad_(True)
    return loc, kappa


@pytest.mark.parametrize("k, m1", [(2, 3), (4, 5), (8, 2)])
def test_kl_of_the_product_is_the_sum_of_the_factor_kls(k, m1):
    kappas = [0.3 * 4**j for j in range(k)]
    loc, kappa = _product(3, k, m1, kappas)
    q = Independent(VonMisesFisher(loc, kappa), 1)
    prior = Independent(HypersphericalUniform(m1, dtype=torch.float64).expand((k,)), 1)
    kl = kl_divergence(q, prior)
    assert kl.shape == (3,)
    factors = torch.stack(
        [kl_divergence(VonMisesFisher(loc[:, j], kappa[:, j]), HypersphericalUniform(m1)) for j in range(k)], dim=-1
    )
    torch.testing.assert_close(kl, factors.sum(-1), rtol=1e-14, atol=0)
    # and the Monte Carlo check: E_q[log q - log p] over the product
    z = q.sample((20_000,))
    mc = (q.log_prob(z) - prior.log_prob(z)).mean(0)
    torch.testing.assert_close(mc, kl, rtol=0.05, atol=0.02)


@pytest.mark.parametrize("m1", [3, 6])
def test_factorwise_law_of_samples(m1):
    """KS per factor of the angle of w_i = mu_i^T z_i against the exact law of w for (m + 1, kappa_i); one
    sampler call draws all factors."""
    k, n = 4, 20_000
    kappas = [0.5, 3.0, 20.0, 150.0]
    loc, kappa = _product(1, k, m1, kappas, seed=m1)
    q = Independent(VonMisesFisher(loc, kappa), 1)
    torch.manual_seed(1234 + m1)
    z = q.sample((n,))  # (n, 1, k, m1)
    assert z.shape == (n, 1, k, m1)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(n, 1, k, dtype=z.dtype))
    ws = []
    for j in range(k):
        w, theta = angle_from_loc(z[:, 0, j], loc[0, j])
        assert w_law(m1, kappas[j]).ks(theta).pvalue > 1e-4, (j, kappas[j])
        ws.append(w)
    # independent factors: the w_i are uncorrelated (|r| < 5 / sqrt(n))
    corr = torch.corrcoef(torch.stack(ws))
    off = corr[~torch.eye(k, dtype=torch.bool)]
    assert off.abs().max() < 5 / math.sqrt(n), corr


def test_gradients_reach_every_factor():
    k, m1 = 3, 4
    loc, kappa = _product(2, k, m1, [1.0, 10.0, 100.0], requires_grad=True)
    q = Independent(VonMisesFisher(loc, kappa), 1)
    target = torch.stack([random_unit(k * m1, 99 + i) for i in range(2)])
    torch.manual_seed(0)
    z = q.rsample((64,)).flatten(-2)  # (64, 2, k m1): the factors side by side
    prior = Independent(HypersphericalUniform(m1, dtype=torch.float64).expand((k,)), 1)
    loss = -(z * target).sum(-1).mean() + kl_divergence(q, prior).sum()
    loss.backward()
    assert torch.isfinite(kappa.grad).all() and (kappa.grad != 0).all(), kappa.grad
    assert torch.isfinite(loc.grad).all() and (loc.grad.norm(dim=-1) > 0).all(), loc.grad
    # the KL part of the gradient is factor-wise: d KL / d kappa_i is the factor's own
    kappa_i = kappa.detach()[0, 1].clone().requires_grad_(True)
    kl_i = kl_divergence(VonMisesFisher(loc.detach()[0, 1], kappa_i), HypersphericalUniform(m1))
    (g_i,) = torch.autograd.grad(kl_i, kappa_i)
    kappa2 = kappa.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(kl_divergence(Independent(VonMisesFisher(loc.detach(), kappa2), 1), prior).sum(), kappa2)
    torch.testing.assert_close(g[0, 1], g_i)


def test_svae_product_latent():
    torch.manual_seed(0)
    model = SVAE.mlp(12, (16,), 20, spheres=4)  # 4 factors S^2 in R^3: 8 degrees of freedom
    x = (torch.rand(6, 20) < 0.4).float()
    q = model.posterior(x)
    assert (
        isinstance(q, Independent) and q.base_dist.loc.shape == (6, 4, 3) and q.base_dist.concentration.shape == (6, 4)
    )
    assert (q.base_dist.concentration >= model.kappa_floor).all()
    mean = model.latent_mean(x)
    torch.testing.assert_close(mean.view(6, 4, 3).norm(dim=-1), torch.ones(6, 4))
    elbo, recon, kl = model.elbo(x)
    assert elbo.shape == kl.shape == (6,) and (kl > 0).all()
    prior = model.prior()
    torch.testing.assert_close(kl, kl_divergence(q, prior))
    (-elbo.mean()).backward()
    head = model.encoder.second.weight.grad  # one row per factor's concentration
    assert head.shape == (4, 16) and (head.norm(dim=-1) > 0).all()
    ll = model.log_likelihood(x, num_samples=50)
    assert torch.isfinite(ll["log_likelihood"]).all()
    assert (ll["log_likelihood"] >= ll["elbo"] - 5).all()


def test_svae_product_layout_errors():
    with pytest.raises(ValueError, match="multiple of spheres = 4"):
        SVAE.mlp(10, (8,), 20, spheres=4)
    with pytest.raises(ValueError, match="D / spheres >= 2"):
        SVAE.mlp(4, (8,), 20, spheres=4)  # factors of size 1: S^0 is no sphere


def test_one_sphere_is_the_default_model():
    torch.manual_seed(0)
    a = SVAE.mlp(5, (8,), 20)
    torch.manual_seed(0)
    b = SVAE.mlp(5, (8,), 20, spheres=1)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert isinstance(a.posterior(torch.rand(3, 20)), VonMisesFisher)


def test_svgae_product_latent():
    pytest.importorskip("torch_geometric", reason="the graph models need torch_geometric")
    from hvae_ext.models import SVGAE

    torch.manual_seed(0)
    x = torch.rand(25, 10)
    ei = torch.randint(0, 25, (2, 80))
    model = SVGAE.gcn(10, 8, latent_dim=15, spheres=5)  # 5 factors S^2: 10 degrees of freedom
    z = model.train().encode(x, ei)
    assert z.shape == (25, 15)
    torch.testing.assert_close(z.view(25, 5, 3).norm(dim=-1), torch.ones(25, 5))
    q = model.posterior()
    prior = Independent(HypersphericalUniform(3).expand((5,)), 1)
    torch.testing.assert_close(model.kl_loss(), kl_divergence(q, prior).mean())
    (model.recon_loss(z, ei) + model.kl_loss()).backward()
    head = model.encoder.conv_second.lin.weight.grad
    assert head.shape == (5, 8) and (head.norm(dim=-1) > 0).all()


# --- the experiment commands: --spheres -------------------------------------------------------------------


def _mnist_args(*extra):
    from experiments import mnist as mx

    p = mx.build_parser()
    args = p.parse_args(["--model", "s-vae", "--latent-dim", "20", "--data-root", ".", *extra])
    mx.validate_args(p, args)
    return args


def test_mnist_cli_spheres():
    from experiments import mnist as mx

    args = _mnist_args("--spheres", "4")
    assert (args.spheres, args.ambient_dim) == (4, 24)  # 4 factors S^5: 20 degrees of freedom in R^24
    assert mx.run_file_name("s-vae", 20, 0, "", 4) == "mnist_s-vae_d20_k4_seed0"  # converge.sh's name
    assert mx.run_file_name("s-vae", 20, 0) == "mnist_s-vae_d20_seed0"
    assert _mnist_args().ambient_dim == 21 and _mnist_args().spheres == 1
    assert _mnist_args("--spheres", "5", "--dim-convention", "ambient").ambient_dim == 20
    model = mx.build_model(args)
    assert model.spheres == 4 and model.latent_dim == 24
    for bad in (["--spheres", "3"], ["--spheres", "0"], ["--spheres", "20", "--dim-convention", "ambient"]):
        with pytest.raises(SystemExit):
            _mnist_args(*bad)
    with pytest.raises(SystemExit):
        p = mx.build_parser()
        mx.validate_args(
            p, p.parse_args(["--model", "n-vae", "--latent-dim", "4", "--spheres", "2", "--data-root", "."])
        )


def test_mnist_cli_spheres_messages(capsys):
    for bad, msg in (
        (["--spheres", "3"], "--spheres 3 must divide --latent-dim 20"),
        (["--spheres", "20", "--dim-convention", "ambient"], "--latent-dim / --spheres must be >= 2"),
    ):
        with pytest.raises(SystemExit):
            _mnist_args(*bad)
        assert msg in capsys.readouterr().err


def test_link_prediction_cli_spheres(capsys):
    pytest.importorskip("torch_geometric", reason="the experiment needs torch_geometric")
    from experiments import link_prediction as lp

    p = lp.build_parser()
    args = p.parse_args(
        ["--dataset", "Cora", "--model", "s-vgae", "--latent-dim", "16", "--spheres", "4", "--dim-convention", "paper"]
    )
    lp.validate_args(p, args)
    assert lp.model_ambient_dim("s-vgae", args) == 20 and lp.model_spheres("s-vgae", args) == 4
    assert lp.run_file_name("Cora", "s-vgae", 20, 0, "", 4) == "Cora_s-vgae_d20_k4_seed0.json"
    model = lp.build_model("s-vgae", 50, args)
    assert model.spheres == 4 and model.latent_dim == 20
    default = p.parse_args(["--dataset", "Cora", "--model", "n-vgae,s-vgae"])
    lp.validate_args(p, default)
    assert (default.spheres, default.dim_convention, lp.model_ambient_dim("s-vgae", default)) == (1, "ambient", 16)
    for bad, msg in (
        (["--model", "s-vgae", "--spheres", "3"], "--spheres 3 must divide --latent-dim 16"),
        (["--model", "n-vgae,s-vgae", "--spheres", "2"], "--spheres applies to s-vgae only"),
    ):
        with pytest.raises(SystemExit):
            lp.validate_args(p, p.parse_args(["--dataset", "Cora", *bad]))
        assert msg in capsys.readouterr().err


def test_reports_read_run_files_without_spheres():
    from experiments import report

    old = {"config": {"model": "s-vgae", "latent_dim": 17, "dataset": "Cora", "seed": 0}}
    new = {
        "config": {"model": "s-vgae", "latent_dim": 16, "dataset": "Cora", "seed": 0, "dim_convention": "paper"},
        "ambient_dim": 20,
        "spheres": 4,
    }
    assert (report.spheres(old), report.ambient_dim(old), report.dof(old)) == (1, 17, 16)
    assert (report.spheres(new), report.ambient_dim(new), report.dof(new)) == (4, 20, 16)
    assert not report.group([new], tagged=False)  # products stay out of the single-sphere tables
    assert list(report.product_runs([new])) == [("Cora", 16, 4)]
