"""The MLP VAEs of hvae_ext.models.vae (N-VAE and S-VAE): shapes, the ELBO's terms and the importance-sampled
log-likelihood bound on a few hundred MNIST images while the loss falls, argument errors, and stacked ensembles
that train each member exactly as alone."""

from __future__ import annotations

import pytest
import torch

from hvae_ext.models.vae import NVAE, SVAE


@pytest.fixture(autouse=True)
def _one_thread(restore_threads):
    torch.set_num_threads(1)


@pytest.mark.parametrize("model_cls,d", [(NVAE, 2), (NVAE, 10), (SVAE, 2), (SVAE, 10)])
def test_model_shapes_loss_falls_and_is_bound(model_cls, d, few_images):
    torch.manual_seed(0)
    model = model_cls.mlp(d)
    x = few_images
    q = model.posterior(x[:7])
    assert q.loc.shape == (7, d)
    assert model.decode(q.rsample()).shape == (7, 784)
    elbo, recon, kl = model.elbo(x[:7])
    assert elbo.shape == recon.shape == kl.shape == (7,)
    assert (kl >= -1e-5).all() and (recon <= 0).all()
    mean = model.latent_mean(x[:7])
    assert mean.shape == (7, d)
    if model_cls is SVAE:
        torch.testing.assert_close(mean.norm(dim=-1), torch.ones(7))
        assert (q.concentration >= model.kappa_floor).all()

    with torch.no_grad():
        before = model.loss(x).item()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(60):
        xb = x[(step % 3) * 100 : (step % 3 + 1) * 100]
        loss = model.loss(xb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        after = model.loss(x).item()
    assert after < before - 20, (before, after)  # ~543 nats at initialization

    torch.manual_seed(2)
    out = model.log_likelihood(x[:50], num_samples=500, chunk_rows=2000)
    for key in ("log_likelihood", "elbo", "recon", "kl", "elbo_mc"):
        assert out[key].shape == (50,) and torch.isfinite(out[key]).all()
    # logsumexp(log w) - log K >= mean(log w) for the same samples (Jensen), per image
    assert (out["log_likelihood"] >= out["elbo_mc"] - 1e-3).all()
    # and on average above the analytic-KL ELBO on the same images
    assert out["log_likelihood"].mean() >= out["elbo"].mean()
    assert out["log_likelihood"].mean() >= -after - 5
    # the Monte Carlo KL of the IS samples agrees with the closed form
    assert abs((out["recon"] - out["elbo_mc"]).mean() - out["kl"].mean()) < 0.5


def test_model_argument_errors():
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        SVAE.mlp(1)
    with pytest.raises(ValueError, match="latent_dim must be >= 1"):
        NVAE.mlp(0)
    with pytest.raises(ValueError, match="kappa_floor"):
        SVAE.mlp(3, kappa_floor=-1.0)
    with pytest.raises(ValueError, match="num_samples"):
        NVAE.mlp(2).log_likelihood(torch.zeros(1, 784), num_samples=0)


@pytest.mark.parametrize("model_cls,d", [(NVAE, 2), (SVAE, 3)])
def test_stacked_members_train_exactly_as_alone(model_cls, d):
    """stack_ensemble: member e's forward pass and its Adam updates are those of the model trained alone
    (deterministic parts: the posterior parameters and the decoder; the same z fed to both)."""
    from hvae_ext.models.vae import ensemble_member, stack_ensemble

    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(model_cls.mlp(d).double())
    stacked = stack_ensemble(models)
    assert stacked.members == 3
    x = torch.rand(3, 16, 784, dtype=torch.float64).bernoulli()
    z = torch.nn.functional.normalize(torch.randn(3, 16, d, dtype=torch.float64), dim=-1)
    opt_s = torch.optim.Adam(stacked.parameters(), lr=1e-2)
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in models]

    def loss(model, xx, zz):  # a loss through encoder and decoder, independent of sampling
        q = model.posterior(xx)
        return -(model.log_likelihood_given(xx, zz) - (q.loc - zz).square().sum(-1)).mean(-1).sum()

    for _ in range(3):
        opt_s.zero_grad()
        loss(stacked, x, z).backward()
        opt_s.step()
        for e, (m, o) in enumerate(zip(models, opts)):
            o.zero_grad()
            loss(m, x[e], z[e]).backward()
            o.step()
    for e, m in enumerate(models):
        member = ensemble_member(stacked, e)
        assert type(member) is type(m) and not hasattr(member, "members")
        for (name, a), (_, b) in zip(member.state_dict().items(), m.state_dict().items()):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)
    # rows shared by all members (validation) give every member's own output
    xs = x[0]
    torch.testing.assert_close(stacked.posterior(xs).loc[1], models[1].posterior(xs).loc)
    with pytest.raises(ValueError, match="EnsembleLinear with 3 members"):
        stacked.encoder(torch.zeros(2, 5, 784, dtype=torch.float64))
