"""The models in torch's and torch_geometric's idiom: they take the user's encoder (and decoder) modules, the
built-in GCN and MLP networks are named constructors, the former spelling still builds them (with a warning),
bad encoder outputs are clear errors, and hvae_ext.models imports without torch_geometric."""

from __future__ import annotations

import importlib.util
import math
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.distributions import Independent

from hvae_ext import HypersphericalUniform, PowerSpherical, VonMisesFisher
from hvae_ext.models import NVAE, SVAE
from hvae_ext.testing import data_root

REPO = Path(__file__).resolve().parents[3]


def _same_parameters(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# --- the VAEs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls, kwargs", [(SVAE, {"kappa_floor": 2.0}), (NVAE, {})], ids=["svae", "nvae"])
def test_former_spelling_warns_and_builds_the_mlp(cls, kwargs):
    torch.manual_seed(3)
    new = cls.mlp(4, (16, 8), 20, **kwargs)
    torch.manual_seed(3)
    with pytest.warns(DeprecationWarning, match=rf"{cls.__name__}\.mlp\(latent_dim, \.\.\.\)"):
        old = cls(4, (16, 8), 20, **kwargs)
    with pytest.warns(DeprecationWarning, match=rf"{cls.__name__}\.mlp"):
        cls(latent_dim=4, hidden=(16, 8), data_dim=20, **kwargs)
    assert type(old) is cls and old.latent_dim == 4 and old.hidden == (16, 8)
    _same_parameters(new, old)
    x = (torch.rand(5, 20, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    torch.manual_seed(0)
    a = new.elbo(x)
    torch.manual_seed(0)
    b = old.elbo(x)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


def test_mlp_state_dict_of_the_former_layout_loads():
    """Checkpoints written before the encoder became one module (keys encoder.*, enc_loc.*, enc_second.*)."""
    torch.manual_seed(0)
    model = SVAE.mlp(3, (8,), 10)
    renamed = {}
    for key, value in model.state_dict().items():
        key = key.replace("encoder.trunk.", "encoder.").replace("encoder.loc.", "enc_loc.")
        renamed[key.replace("encoder.second.", "enc_second.")] = value.clone()
    assert "enc_loc.weight" in renamed and "encoder.0.0.weight" in renamed
    torch.manual_seed(1)
    fresh = SVAE.mlp(3, (8,), 10)
    fresh.load_state_dict(renamed)  # strict
    _same_parameters(model, fresh)


class _ConvEncoder(nn.Module):
    """A user's encoder: a small CNN with a direction head and a concentration head of width ``k``."""

    def __init__(self, latent: int, k: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
        self.loc = nn.Linear(4 * 4 * 4, latent)
        self.kappa = nn.Linear(4 * 4 * 4, k)

    def forward(self, x):
        h = self.conv(x.view(-1, 1, 8, 8))
        return self.loc(h), self.kappa(h)


@pytest.mark.parametrize("spheres", [1, 2])
def test_svae_with_a_users_encoder_and_decoder(spheres):
    torch.manual_seed(0)
    decoder = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 64), nn.Identity())  # not the fast path
    model = SVAE(_ConvEncoder(6, spheres), decoder, spheres=spheres)
    x = (torch.rand(7, 64) < 0.3).float()
    loss = model.loss(x)
    loss.backward()
    assert math.isfinite(loss.item())
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    q = model.posterior(x)
    assert isinstance(q, VonMisesFisher if spheres == 1 else Independent)
    out = model.log_likelihood(x, num_samples=8)
    assert torch.isfinite(out["log_likelihood"]).all() and out["log_likelihood"].shape == (7,)
    assert model.latent_mean(x).shape == (7, 6)
    with pytest.raises(ValueError, match="pass latent_dim"):
        model.prior()
    assert model.prior(latent_dim=6).sample((4,)).shape[-1] == 6 // spheres


@pytest.mark.parametrize("spheres", [1, 2])
@pytest.mark.parametrize("posterior", ["power-spherical", "power_spherical", PowerSpherical])
def test_svae_power_spherical_posterior(spheres, posterior):
    """The Power Spherical posterior: its class (factor-wise for a product), its closed-form KL to the uniform
    prior as the model's KL, gradients to every parameter, and the importance-sampled likelihood."""
    torch.manual_seed(0)
    decoder = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 64))
    model = SVAE(_ConvEncoder(6, spheres), decoder, spheres=spheres, posterior=posterior)
    assert model.posterior_family is PowerSpherical
    x = (torch.rand(7, 64) < 0.3).float()
    q = model.posterior(x)
    factor = q.base_dist if spheres > 1 else q
    assert type(factor) is PowerSpherical
    assert q.event_shape == ((6,) if spheres == 1 else (2, 3))
    uniform = HypersphericalUniform(6 // spheres)
    kl_factors = torch.distributions.kl_divergence(factor, uniform)
    _, _, kl = model.elbo(x)
    torch.testing.assert_close(kl, kl_factors.sum(-1) if spheres > 1 else kl_factors)
    loss = model.loss(x)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    out = model.log_likelihood(x, num_samples=8)
    assert torch.isfinite(out["log_likelihood"]).all()


def test_svae_default_posterior_is_the_vmf_and_bad_names_are_clear_errors():
    assert SVAE.mlp(4, (8,), 10).posterior_family is VonMisesFisher
    assert SVAE.mlp(4, (8,), 10, posterior="vmf").posterior_family is VonMisesFisher
    with pytest.raises(ValueError, match="posterior must be 'vmf' .* got 'gaussian'"):
        SVAE.mlp(4, (8,), 10, posterior="gaussian")
    with pytest.raises(ValueError, match="posterior must be"):
        SVAE(nn.Linear(10, 4), nn.Linear(4, 10), posterior=torch.distributions.Normal)


def test_svae_posterior_option_leaves_the_vmf_run_unchanged():
    """The same seed gives the same parameters and the same loss with and without ``posterior="vmf"``."""
    torch.manual_seed(3)
    a = SVAE.mlp(5, (8,), 10)
    torch.manual_seed(3)
    b = SVAE.mlp(5, (8,), 10, posterior="vmf")
    _same_parameters(a, b)
    x = (torch.rand(4, 10) < 0.5).float()
    torch.manual_seed(4)
    la = a.loss(x)
    torch.manual_seed(4)
    assert torch.equal(la, b.loss(x))


def test_svae_concentration_shape_is_a_clear_error():
    torch.manual_seed(0)
    model = SVAE(_ConvEncoder(6, 3), nn.Linear(6, 64))  # three concentrations for one sphere
    with pytest.raises(ValueError, match=r"concentration logits must have shape \(N, 1\) or \(N,\)"):
        model.loss(torch.rand(2, 64))
    model = SVAE(_ConvEncoder(6, 1), nn.Linear(6, 64), spheres=2)  # one concentration for two spheres
    with pytest.raises(ValueError, match=r"concentration logits must have shape \(N, spheres\) = \(2, 2\)"):
        model.loss(torch.rand(2, 64))
    model = SVAE(_ConvEncoder(6, 4), nn.Linear(6, 64), spheres=4)  # 6 is no multiple of 4
    with pytest.raises(ValueError, match="multiple of spheres = 4"):
        model.loss(torch.rand(2, 64))
    model = SVAE(nn.Linear(64, 6), nn.Linear(6, 64))  # not a pair
    with pytest.raises(TypeError, match="must return a pair"):
        model.loss(torch.rand(2, 64))


def test_nvae_shapes_must_agree():
    class Enc(nn.Module):
        def forward(self, x):
            return x[:, :4], x[:, :3]

    with pytest.raises(ValueError, match="same shape"):
        NVAE(Enc(), nn.Linear(4, 10)).loss(torch.rand(2, 10))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_spheres_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="spheres must be a positive integer"):
        SVAE.mlp(4, (8,), 10, spheres=bad)


# --- the graph models -------------------------------------------------------------------------------------

HAVE_PYG = all(importlib.util.find_spec(m) is not None for m in ("torch_geometric", "sklearn"))
requires_pyg = pytest.mark.skipif(
    not HAVE_PYG, reason="the graph models need torch_geometric and scikit-learn (the 'experiments' extra)"
)
if HAVE_PYG:
    from torch_geometric.nn import GCNConv

    from hvae_ext.models import NVGAE, SVGAE


def _graph(n=30, f=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, f, generator=g)
    ei = torch.randint(0, n, (2, 4 * n), generator=g)
    return x, torch.cat([ei, ei.flip(0)], 1)


@requires_pyg
@pytest.mark.parametrize(
    "name, kwargs",
    [("SVGAE", {"kappa_floor": 2.0, "dropout": 0.2}), ("NVGAE", {"dropout": 0.2})],
    ids=["svgae", "nvgae"],
)
def test_former_graph_spelling_warns_and_builds_the_gcn(name, kwargs):
    cls = {"SVGAE": SVGAE, "NVGAE": NVGAE}[name]
    x, ei = _graph()
    torch.manual_seed(5)
    new = cls.gcn(x.size(1), 8, 6, **kwargs)
    torch.manual_seed(5)
    with pytest.warns(DeprecationWarning, match=rf"{cls.__name__}\.gcn\(in_channels, \.\.\.\)"):
        old = cls(x.size(1), 8, latent_dim=6, **kwargs)
    assert type(old) is cls and old.latent_dim == 6
    _same_parameters(new, old)
    torch.manual_seed(0)
    za = new.train().encode(x, ei)
    torch.manual_seed(0)
    zb = old.train().encode(x, ei)
    assert torch.equal(za, zb) and torch.equal(new.kl_loss(), old.kl_loss())


class _UserEncoder(nn.Module):
    """A GCN encoder as torch_geometric's examples write it, with a concentration head of ``k`` channels
    (or, with ``flat``, a (N,) concentration)."""

    def __init__(self, f, latent, k=1, flat=False):
        super().__init__()
        self.conv1 = GCNConv(f, 16)
        self.conv_mu = GCNConv(16, latent)
        self.conv_kappa = GCNConv(16, k)
        self.flat = flat

    def forward(self, x, edge_index):
        h = self.conv1(x, edge_index).relu()
        kappa = self.conv_kappa(h, edge_index)
        return self.conv_mu(h, edge_index), kappa.squeeze(-1) if self.flat else kappa


@requires_pyg
@pytest.mark.parametrize("k, flat", [(1, False), (1, True), (3, False)])
def test_svgae_takes_any_encoder(k, flat):
    x, ei = _graph()
    torch.manual_seed(0)
    model = SVGAE(_UserEncoder(x.size(1), 9, k, flat), spheres=k)
    assert model.latent_dim is None and model.decoder.scale.item() == pytest.approx(10.0 / k)
    z = model.train().encode(x, ei)
    assert z.shape == (30, 9)
    loss = model.recon_loss(z, ei) + model.kl_loss() / 30
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    kappa = model.posterior().base_dist.concentration if k > 1 else model.posterior().concentration
    assert kappa.shape == ((30, k) if k > 1 else (30,))
    zm = model.eval().encode(x, ei)
    norms = zm.unflatten(-1, (k, 9 // k)).norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))


@requires_pyg
@pytest.mark.parametrize("k", [1, 2])
def test_svgae_power_spherical_posterior(k):
    x, ei = _graph()
    torch.manual_seed(0)
    model = SVGAE(_UserEncoder(x.size(1), 8, k, False), spheres=k, posterior="power-spherical")
    z = model.train().encode(x, ei)
    q = model.posterior()
    factor = q.base_dist if k > 1 else q
    assert type(factor) is PowerSpherical and z.shape == (30, 8)
    kl = torch.distributions.kl_divergence(factor, HypersphericalUniform(8 // k))
    torch.testing.assert_close(model.kl_loss(), (kl.sum(-1) if k > 1 else kl).mean())
    (model.recon_loss(z, ei) + model.kl_loss() / 30).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert SVGAE.gcn(x.size(1), latent_dim=8, posterior=PowerSpherical).posterior_family is PowerSpherical
    with pytest.raises(ValueError, match="posterior must be"):
        SVGAE.gcn(x.size(1), latent_dim=8, posterior="normal")


@requires_pyg
@pytest.mark.parametrize(
    "k, latent, match",
    [
        (1, 8, r"concentration logits must have shape \(N, 1\) or \(N,\) .* got \(30, 2\)"),
        (2, 8, r"concentration logits must have shape \(N, spheres\) = \(30, 2\), .* got \(30, 3\)"),
        (3, 8, r"D = 8, which must be a multiple of spheres = 3"),
    ],
)
def test_svgae_bad_encoder_output_is_a_clear_error(k, latent, match):
    x, ei = _graph()
    bad_k = {1: 2, 2: 3, 3: 3}[k]
    model = SVGAE(_UserEncoder(x.size(1), latent, bad_k), spheres=k)
    with pytest.raises(ValueError, match=match):
        model.encode(x, ei)


@requires_pyg
def test_graph_constructors_check_their_arguments():
    with pytest.raises(ValueError, match="multiple of spheres = 3"):
        SVGAE.gcn(8, latent_dim=16, spheres=3)
    with pytest.raises(ValueError, match="spheres must be a positive integer"):
        SVGAE(_UserEncoder(8, 4), spheres=0)
    with pytest.raises(ValueError, match="kappa_floor"):
        SVGAE(_UserEncoder(8, 4), kappa_floor=-1.0)
    with pytest.raises(ValueError, match="same shape"):
        NVGAE(_UserEncoder(12, 4, k=2)).encode(*_graph())


# --- torch_geometric's examples/autoencoder.py flow with SVGAE(encoder) -----------------------------------


def _cora_raw() -> Path | None:
    root = data_root()
    for folder in (root / "planetoid" / "Cora" / "raw", root / "Cora" / "raw"):
        if (folder / "ind.cora.graph").is_file():
            return folder
    return None


class VariationalGCNEncoder(nn.Module):
    """torch_geometric's examples/autoencoder.py encoder, with a second one-channel head for kappa."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv1 = GCNConv(in_channels, 2 * out_channels)
        self.conv_mu = GCNConv(2 * out_channels, out_channels)
        self.conv_kappa = GCNConv(2 * out_channels, 1)

    def forward(self, x, edge_index):
        x = self.conv1(x, edge_index).relu()
        return self.conv_mu(x, edge_index), self.conv_kappa(x, edge_index)


@requires_pyg
@pytest.mark.skipif(_cora_raw() is None, reason=f"Planetoid raw files for Cora not found under {data_root()}")
def test_pyg_autoencoder_example_flow_on_cora(tmp_path):
    """torch_geometric's examples/autoencoder.py (variational, Cora) with ``SVGAE(encoder)`` in place of
    ``VGAE(encoder)``: its transform, encoder (plus a one-channel concentration head), loss and test, for a few
    epochs."""
    import torch_geometric.transforms as T
    from torch_geometric.datasets import Planetoid

    raw = tmp_path / "Planetoid" / "Cora" / "raw"  # Planetoid writes processed/ beside raw/: a copy
    shutil.copytree(_cora_raw(), raw)
    transform = T.Compose(
        [
            T.NormalizeFeatures(),
            T.RandomLinkSplit(
                num_val=0.05, num_test=0.1, is_undirected=True, split_labels=True, add_negative_train_samples=False
            ),
        ]
    )
    random.seed(0)
    torch.manual_seed(0)
    dataset = Planetoid(str(tmp_path / "Planetoid"), "Cora", transform=transform)
    train_data, val_data, test_data = dataset[0]
    model = SVGAE(VariationalGCNEncoder(dataset.num_features, 16))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    def train():
        model.train()
        optimizer.zero_grad()
        z = model.encode(train_data.x, train_data.edge_index)
        loss = model.recon_loss(z, train_data.pos_edge_label_index)
        loss = loss + (1 / train_data.num_nodes) * model.kl_loss()
        loss.backward()
        optimizer.step()
        return float(loss)

    @torch.no_grad()
    def test(data):
        model.eval()
        z = model.encode(data.x, data.edge_index)
        return model.test(z, data.pos_edge_label_index, data.neg_edge_label_index)

    losses = [train() for _ in range(30)]
    auc, ap = test(test_data)
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) < sum(losses[:5]), losses
    # a few epochs of the example (row-normalized features learn slowly): above chance on the test edges
    assert auc > 0.52 and ap > 0.52, (auc, ap)


# --- hvae_ext.models without torch_geometric -------------------------------------------------------------

_BLOCKED = """
import sys
sys.modules["torch_geometric"] = None  # import torch_geometric now raises ImportError
from hvae_ext.models import SVAE, NVAE, MLP
import hvae_ext.models as models
assert "SVAE" in dir(models)
for name in ("SVGAE", "NVGAE", "GCNEncoder"):
    try:
        getattr(models, name)
    except ImportError as exc:
        assert "pip install torch_geometric" in str(exc) and "experiments" in str(exc), exc
    else:
        raise AssertionError(name + " imported without torch_geometric")
try:
    from hvae_ext.models.vgae import SVGAE
except ImportError as exc:
    assert "pip install torch_geometric" in str(exc), exc
else:
    raise AssertionError("hvae_ext.models.vgae imported without torch_geometric")
model = SVAE.mlp(4, (8,), 10, spheres=2)
print("ok", float(model.loss(__import__("torch").rand(3, 10))) > 0)
"""


def test_models_import_without_torch_geometric():
    out = subprocess.run([sys.executable, "-c", _BLOCKED], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok True"
