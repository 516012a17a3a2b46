"""N-VGAE and S-VGAE on a small synthetic graph with planted communities: the communities are learned, the S-VGAE posterior lies on the sphere, the N-VGAE follows PyG's VGAE conventions,
the scaled decoder, argument errors, input dropout and the sparse first layer."""

from __future__ import annotations

import math
import random

import pytest
import torch

pytest.importorskip("torch_geometric", reason="the models need torch_geometric (the 'experiments' extra)")
pytest.importorskip("sklearn", reason="GAE.test needs scikit-learn (the 'experiments' extra)")

import torch_geometric.transforms as T  # noqa: E402
from torch_geometric.data import Data  # noqa: E402
from torch_geometric.nn.models import VGAE  # noqa: E402

from hvae_ext import VonMisesFisher  # noqa: E402
from hvae_ext.models import NVGAE, SVGAE, GCNEncoder, ScaledInnerProductDecoder  # noqa: E402


def planted_partition(num_blocks=4, block_size=30, p_in=0.3, p_out=0.01, feat_dim=16, seed=0) -> Data:
    g = torch.Generator().manual_seed(seed)
    n = num_blocks * block_size
    block = torch.arange(n) // block_size
    same = block[:, None] == block[None, :]
    prob = torch.where(same, torch.tensor(p_in), torch.tensor(p_out))
    upper = torch.triu(torch.rand(n, n, generator=g) < prob, diagonal=1)
    adj = upper | upper.t()
    edge_index = adj.nonzero().t().contiguous()
    # features: a noisy community indicator plus noise dimensions
    x = torch.zeros(n, feat_dim)
    x[torch.arange(n), block] = 1.0
    x = x + 0.5 * torch.rand(n, feat_dim, generator=g)
    return Data(x=x, edge_index=edge_index, num_nodes=n)


def split(data: Data, seed: int = 0):
    torch.manual_seed(seed)
    transform = T.RandomLinkSplit(
        num_val=0.05, num_test=0.1, is_undirected=True, split_labels=True, add_negative_train_samples=False
    )
    return transform(data)


def train(model, train_data, epochs: int, lr: float = 0.01):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        z = model.encode(train_data.x, train_data.edge_index)
        loss = model.recon_loss(z, train_data.pos_edge_label_index) + model.kl_loss() / train_data.num_nodes
        loss.backward()
        opt.step()
        losses.append(loss.detach().item())
    return losses


@pytest.mark.parametrize("model_cls", [NVGAE, SVGAE], ids=["n-vgae", "s-vgae"])
def test_learns_planted_communities(model_cls):
    random.seed(0)  # torch_geometric's negative sampling draws from Python's random
    torch.manual_seed(0)
    data = planted_partition()
    train_data, _, test_data = split(data)
    model = model_cls.gcn(data.num_features, hidden_channels=32, latent_dim=8)
    assert isinstance(model, VGAE)  # the torch_geometric API
    losses = train(model, train_data, epochs=40)
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses
    model.eval()
    with torch.no_grad():
        z = model.encode(train_data.x, train_data.edge_index)
        auc, ap = model.test(z, test_data.pos_edge_label_index, test_data.neg_edge_label_index)
    assert auc > 0.75 and ap > 0.7, (auc, ap)


def test_svgae_posterior_on_sphere_and_kl():
    torch.manual_seed(0)
    data = planted_partition(num_blocks=2, block_size=10)
    model = SVGAE.gcn(data.num_features, 8, latent_dim=5, kappa_floor=2.0)
    model.train()
    z = model.encode(data.x, data.edge_index)
    assert z.shape == (data.num_nodes, 5)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(data.num_nodes), atol=1e-5, rtol=0)
    q = model.posterior()
    assert isinstance(q, VonMisesFisher)
    assert (model.__kappa__ >= 2.0).all()
    kl = model.kl_loss()
    assert kl.ndim == 0 and torch.isfinite(kl) and kl >= 0
    # gradients reach the direction and the concentration heads through rsample and the KL
    (model.recon_loss(z, data.edge_index) + kl).backward()
    for conv in (model.encoder.conv_loc, model.encoder.conv_second, model.encoder.conv1):
        grads = [p.grad for p in conv.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
    assert model.decoder.log_scale.grad is not None
    # eval mode: the mean direction
    model.eval()
    with torch.no_grad():
        z_eval = model.encode(data.x, data.edge_index)
    torch.testing.assert_close(z_eval, model.__mu__)


def test_nvgae_matches_pyg_vgae_conventions():
    torch.manual_seed(0)
    data = planted_partition(num_blocks=2, block_size=10)
    model = NVGAE.gcn(data.num_features, 8, latent_dim=4)
    model.eval()
    with torch.no_grad():
        z = model.encode(data.x, data.edge_index)
        # same loss as torch_geometric's recon_loss, given the same negatives
        neg = torch.randint(0, data.num_nodes, (2, 30))
        ours = model.recon_loss(z, data.edge_index, neg)
        theirs = VGAE.recon_loss(model, z, data.edge_index, neg)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(z, model.__mu__)


def test_scaled_decoder():
    dec = ScaledInnerProductDecoder(scale=3.0, bias=-1.0)
    z = torch.nn.functional.normalize(torch.randn(6, 4), dim=-1)
    ei = torch.tensor([[0, 1, 2], [3, 4, 5]])
    expected = torch.sigmoid(3.0 * (z[ei[0]] * z[ei[1]]).sum(-1) - 1.0)
    torch.testing.assert_close(dec(z, ei), expected)
    torch.testing.assert_close(dec.forward_all(z)[ei[0], ei[1]], expected)
    fixed = ScaledInnerProductDecoder(scale=3.0, learn_scale=False)
    assert "log_scale" not in dict(fixed.named_parameters())


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        SVGAE.gcn(8, latent_dim=1)
    with pytest.raises(ValueError, match="kappa_floor"):
        SVGAE.gcn(8, latent_dim=3, kappa_floor=-1.0)
    with pytest.raises(ValueError, match="latent_dim"):
        NVGAE.gcn(8, latent_dim=0)
    enc = GCNEncoder(8, 4, 3, second_channels=1)
    loc, second = enc(torch.randn(5, 8), torch.tensor([[0, 1], [1, 0]]))
    assert loc.shape == (5, 3) and second.shape == (5, 1)


def test_input_dropout_matches_dense_dropout_law():
    torch.manual_seed(0)
    enc = GCNEncoder(50, 4, 3, dropout=0.3).train()
    x = (torch.rand(400, 50) < 0.05).float() * 2.0
    outs = []
    for _ in range(200):
        out, out_t = enc._input(x)
        assert out.layout == torch.sparse_csr  # sparse bag-of-words features enter as CSR
        torch.testing.assert_close(out_t.to_dense(), out.to_dense().t())  # the same mask in x^T
        outs.append(out.to_dense())
    outs = torch.stack(outs)
    # zeros stay zero, kept entries are scaled by 1 / (1 - p), and about a fraction p is dropped
    assert (outs[:, x == 0] == 0).all()
    vals = outs[:, x != 0]
    assert torch.isin(vals, torch.tensor([0.0, 2.0 / 0.7])).all()
    assert abs(float((vals == 0).float().mean()) - 0.3) < 0.01
    enc.eval()
    torch.testing.assert_close(enc._input(x)[0].to_dense(), x)


def test_sparse_first_layer_matches_dense():
    """The CSR path gives the dense encoder's outputs and gradients; dense features and inputs that need a
    gradient stay dense; the CSR copy follows in-place changes of x."""
    torch.manual_seed(0)
    data = planted_partition(num_blocks=2, block_size=10)
    x = (torch.rand(data.num_nodes, 40) < 0.05).float()
    enc = GCNEncoder(40, 8, 3, dropout=0.0).train()
    assert enc._sparse_input(x) is not None
    loc, second = enc(x, data.edge_index)
    (loc.square().sum() + second.sum()).backward()
    grads = [p.grad.clone() for p in enc.parameters()]
    enc.zero_grad()
    xg = x.clone().requires_grad_(True)  # needs a gradient: the dense path
    assert enc._sparse_input(xg) is None
    loc_d, second_d = enc(xg, data.edge_index)
    (loc_d.square().sum() + second_d.sum()).backward()
    torch.testing.assert_close(loc, loc_d, rtol=1e-5, atol=1e-6)
    for g, p in zip(grads, enc.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-6)
    assert enc._sparse_input(data.x) is None  # dense features
    x[0, 0] = 7.0  # in place: the cached copy is rebuilt
    assert enc._sparse_input(x)[0].to_dense()[0, 0] == 7.0
    assert enc._sparse_input(x)[1].to_dense()[0, 0] == 7.0
