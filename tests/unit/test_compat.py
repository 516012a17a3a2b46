"""Code written for the S-VAE reference library (Davidson et al. 2018) runs unchanged with
``from hvae_ext.compat import VonMisesFisher, HypersphericalUniform``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hvae_ext.compat import HypersphericalUniform, VonMisesFisher


class ReferenceStyleModel(nn.Module):
    """The encoder / reparameterize / KL pattern of the reference code's examples, verbatim in spirit."""

    def __init__(self, h_dim=32, z_dim=5, x_dim=20):
        super().__init__()
        self.z_dim = z_dim
        self.enc = nn.Linear(x_dim, h_dim)
        self.fc_mean = nn.Linear(h_dim, z_dim)
        self.fc_var = nn.Linear(h_dim, 1)
        self.dec = nn.Linear(z_dim, x_dim)

    def encode(self, x):
        h = F.relu(self.enc(x))
        z_mean = self.fc_mean(h)
        z_mean = z_mean / z_mean.norm(dim=-1, keepdim=True)
        # the `+ 1` prevents collapsing behaviors
        z_var = F.softplus(self.fc_var(h)) + 1
        return z_mean, z_var

    def reparameterize(self, z_mean, z_var):
        q_z = VonMisesFisher(z_mean, z_var)
        p_z = HypersphericalUniform(self.z_dim - 1)
        return q_z, p_z

    def forward(self, x):
        z_mean, z_var = self.encode(x)
        q_z, p_z = self.reparameterize(z_mean, z_var)
        z = q_z.rsample()
        return (z_mean, z_var), (q_z, p_z), z, self.dec(z)


@pytest.mark.parametrize("z_dim", [3, 5, 10])
def test_reference_style_training_step(z_dim):
    torch.manual_seed(0)
    model = ReferenceStyleModel(z_dim=z_dim)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(16, 20)
    for _ in range(3):
        opt.zero_grad()
        (z_mean, z_var), (q_z, p_z), z, x_rec = model(x)
        assert z_var.shape == (16, 1) and q_z.scale.shape == (16, 1)
        assert z.shape == (16, z_dim)
        loss_recon = F.mse_loss(x_rec, x)
        loss_kl = torch.distributions.kl.kl_divergence(q_z, p_z).mean()
        assert loss_kl.item() >= 0
        loss = loss_recon + loss_kl
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        assert model.fc_var.weight.grad.abs().sum() > 0  # the concentration gets a gradient
        opt.step()
    # p_z is the uniform on S^(z_dim - 1) in R^z_dim
    assert p_z.sample((4,)).shape == (4, z_dim)


def test_compat_conventions():
    loc = torch.nn.functional.normalize(torch.randn(4, 6), dim=-1)
    scale = torch.rand(4, 1) + 0.5
    q = VonMisesFisher(loc, scale)
    assert q.batch_shape == (4,) and q.event_shape == (6,)
    assert torch.equal(q.scale, scale) and torch.equal(q.stddev, scale)
    assert q.rsample().shape == (4, 6) and q.rsample(torch.Size([3])).shape == (3, 4, 6)
    p = HypersphericalUniform(5, device="cpu")
    assert p.dim == 6
    kl = torch.distributions.kl_divergence(q, p)
    assert kl.shape == (4,)
    # KL(vMF || U(S^5)) for d = 6 in the ambient-d convention, from scipy's Bessel functions (independent of
    # hvae_ext's kernels): log C_d + kappa A_d + log |S^{d-1}|
    from scipy.special import gammaln, ive

    k, d = scale.squeeze(-1).double().numpy(), 6
    log_c = (d / 2 - 1) * np.log(k) - d / 2 * np.log(2 * np.pi) - (np.log(ive(d / 2 - 1, k)) + k)
    a = ive(d / 2, k) / ive(d / 2 - 1, k)
    log_area = np.log(2) + d / 2 * np.log(np.pi) - gammaln(d / 2)
    torch.testing.assert_close(kl.double(), torch.from_numpy(log_c + k * a + log_area), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        VonMisesFisher(loc, scale, k=2)
    with pytest.raises(ValueError):
        HypersphericalUniform(0)
    with pytest.raises(ValueError):  # a dimension mismatch (e.g. passing z_dim instead of z_dim - 1) is caught
        torch.distributions.kl_divergence(q, HypersphericalUniform(6))
