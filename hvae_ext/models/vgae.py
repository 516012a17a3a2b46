"""Variational graph auto-encoders with Gaussian (N-VGAE) and hyperspherical (S-VGAE) latents.

Both models subclass torch_geometric's :class:`~torch_geometric.nn.models.VGAE`, so they keep its API:
``encode(x, edge_index)`` returns a sample ``z`` in training mode and the posterior's location in eval
mode, ``recon_loss(z, pos_edge_index, neg_edge_index=None)`` is the binary cross-entropy of the decoder on
positive edges and (sampled) negatives, ``kl_loss()`` the KL divergence of the last encoding's posterior
from the prior, averaged over nodes, and ``test(z, pos_edge_index, neg_edge_index)`` returns
``(auc, ap)``.

* :class:`NVGAE` (Kipf & Welling, 2016): q(z|x) = N(mu, diag sigma^2), p(z) = N(0, I), inner-product
  decoder sigma(z_i^T z_j).
* :class:`SVGAE` (Davidson et al., 2018): q(z|x) = vMF(mu, kappa) with mu = normalize(GCN_mu(x)),
  kappa = softplus(GCN_kappa(x)) + kappa_floor, p(z) = uniform on S^{d-1}, KL in closed form from
  :func:`torch.distributions.kl_divergence`. An inner product of unit vectors lies in [-1, 1], so the
  decoder is sigma(s * z_i^T z_j + b) with a learnable scale s > 0 and bias b
  (:class:`ScaledInnerProductDecoder`).
"""

from __future__ import annotations

import math
import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import kl_divergence
from torch_geometric.nn import GCNConv
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.nn.models import VGAE, InnerProductDecoder
from torch_geometric.utils import negative_sampling

from ..distributions import HypersphericalUniform, VonMisesFisher

__all__ = ["GCNEncoder", "ScaledInnerProductDecoder", "NVGAE", "SVGAE"]


class _CSRLinearFunction(torch.autograd.Function):
    """``x W^T`` for a CSR ``x`` that needs no gradient; the weight gradient ``(x^T g)^T`` uses a CSR copy
    of ``x^T`` given by the caller (autograd's own backward of a CSR product re-sorts ``x^T`` every step)."""

    @staticmethod
    def forward(ctx, weight: Tensor, x: Tensor, x_t: Tensor) -> Tensor:
        ctx.x_t = x_t
        return torch.sparse.mm(x, weight.t())

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad_weight = torch.sparse.mm(ctx.x_t, grad).t() if ctx.needs_input_grad[0] else None
        return grad_weight, None, None


class _SparseInputLinear(Linear):
    """torch_geometric's ``Linear`` (same parameters and initialisation) that multiplies a CSR input with
    :class:`_CSRLinearFunction` when the encoder has handed it that input's transpose."""

    _transpose_of: Optional[tuple[Tensor, Tensor]] = None

    def forward(self, x: Tensor) -> Tensor:
        pair = self._transpose_of
        if pair is not None and pair[0] is x:
            out = _CSRLinearFunction.apply(self.weight, x, pair[1])
            return out if self.bias is None else out + self.bias
        return super().forward(x)


def _csr(crow: Tensor, col: Tensor, values: Tensor, size) -> Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR tensor support is in beta"
        return torch.sparse_csr_tensor(crow, col, values, size)


class GCNEncoder(nn.Module):
    """Two-layer GCN encoder of Kipf & Welling (2016): a shared GCN layer (ReLU) and two GCN heads.

    ``forward(x, edge_index)`` returns ``(loc, second)`` of shapes ``(N, out_channels)`` and
    ``(N, second_channels)``; ``second`` is log sigma (N-VGAE, ``second_channels = out_channels``) or the
    unconstrained concentration (S-VGAE, ``second_channels = 1``).
    """

    def __init__(self, in_channels: int, hidden_channels: int = 32, out_channels: int = 16,
                 second_channels: Optional[int] = None, dropout: float = 0.0):
        super().__init__()
        self.conv1 = GCNConv(in_channels, hidden_channels)
        if type(self.conv1.lin) is Linear:  # same module and parameters, plus the CSR product
            self.conv1.lin.__class__ = _SparseInputLinear
        self.conv_loc = GCNConv(hidden_channels, out_channels)
        self.conv_second = GCNConv(hidden_channels, out_channels if second_channels is None else second_channels)
        self.dropout = dropout

    #: a dense CPU feature matrix with at most this fraction of nonzeros enters the first layer as CSR
    SPARSE_INPUT_DENSITY = 0.1

    def _sparse_input(self, x: Tensor) -> Optional[tuple[Tensor, Tensor, Tensor]]:
        """``(csr, csr_t, perm)`` for a mostly-zero dense CPU matrix ``x`` that needs no gradient
        (bag-of-words features: ~1% nonzeros), else None: ``csr`` is x in CSR form, ``csr_t`` is x^T in CSR
        form and ``csr_t.values() == csr.values()[perm]``. The first layer's product ``x W^T`` and its weight
        gradient then cost O(nnz) instead of O(N F), as in Kipf & Welling's code (sparse features). The
        result is cached for the very tensor object ``x`` (a reference is held, so its memory cannot be
        taken by another tensor) at its current version (an in-place change of ``x`` rebuilds it)."""
        if x.layout != torch.strided or x.dim() != 2 or x.device.type != "cpu" or x.requires_grad:
            return None
        cache = getattr(self, "_csr_cache", None)
        if cache is not None and cache[0] is x and cache[1] == x._version:
            return cache[2]
        out = None
        if x.numel() and int(torch.count_nonzero(x)) <= self.SPARSE_INPUT_DENSITY * x.numel():
            rows, cols = x.nonzero(as_tuple=True)
            values = x[rows, cols]
            crow = torch.ops.aten._convert_indices_from_coo_to_csr(rows, x.size(0))
            perm = torch.argsort(cols * x.size(0) + rows)  # (col, row) order: the CSR order of x^T
            crow_t = torch.ops.aten._convert_indices_from_coo_to_csr(cols[perm], x.size(1))
            out = (_csr(crow, cols, values, x.shape), _csr(crow_t, rows[perm], values[perm], (x.size(1), x.size(0))),
                   perm)
        self._csr_cache = (x, x._version, out)
        return out

    def _input(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """The first layer's input and, for a CSR input, its transpose: ``x`` (CSR when
        :meth:`_sparse_input` applies) with dropout in training.

        Dropout of a CSR matrix is drawn at its stored (nonzero) entries only: zeros stay zero either way, so
        the result has the law of ``F.dropout`` on the dense matrix."""
        sparse = self._sparse_input(x)
        if sparse is None:
            return (F.dropout(x, p=self.dropout, training=self.training) if self.dropout > 0 else x), None
        csr, csr_t, perm = sparse
        if not self.training or self.dropout == 0.0:
            return csr, csr_t
        values = csr.values()
        keep = torch.rand(values.shape, dtype=values.dtype, device=values.device) >= self.dropout
        values = torch.where(keep, values * (1.0 / (1.0 - self.dropout)), 0.0)
        return (_csr(csr.crow_indices(), csr.col_indices(), values, csr.shape),
                _csr(csr_t.crow_indices(), csr_t.col_indices(), values[perm], csr_t.shape))

    def _hidden_dropout(self, h: Tensor) -> Tensor:
        """``F.dropout(h)`` as a uniform-threshold mask (same law; cheaper than CPU ``bernoulli_``)."""
        if not self.training or self.dropout == 0.0:
            return h
        keep = torch.rand_like(h) >= self.dropout
        return h * keep.to(h.dtype).mul_(1.0 / (1.0 - self.dropout))

    def forward(self, x: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        x, x_t = self._input(x)
        lin = self.conv1.lin
        if x_t is not None and isinstance(lin, _SparseInputLinear):
            lin._transpose_of = (x, x_t)
        try:
            h = self.conv1(x, edge_index).relu()
        finally:
            if isinstance(lin, _SparseInputLinear):
                lin._transpose_of = None
        h = self._hidden_dropout(h)
        return self.conv_loc(h, edge_index), self.conv_second(h, edge_index)


class ScaledInnerProductDecoder(nn.Module):
    """Edge probability sigma(s * z_i^T z_j + b) with a learnable scale s = exp(log_scale) and bias b.

    Same call signature as :class:`torch_geometric.nn.models.InnerProductDecoder`; ``logits`` returns the
    pre-sigmoid values (used by the numerically stable losses).
    """

    def __init__(self, scale: float = 1.0, bias: float = 0.0, learn_scale: bool = True, learn_bias: bool = True):
        super().__init__()
        log_scale = torch.tensor(math.log(scale))
        bias_t = torch.tensor(float(bias))
        self.log_scale = nn.Parameter(log_scale) if learn_scale else nn.Buffer(log_scale)
        self.bias = nn.Parameter(bias_t) if learn_bias else nn.Buffer(bias_t)

    @property
    def scale(self) -> Tensor:
        return self.log_scale.exp()

    def logits(self, z: Tensor, edge_index: Tensor) -> Tensor:
        return self.scale * (z[edge_index[0]] * z[edge_index[1]]).sum(dim=-1) + self.bias

    def forward(self, z: Tensor, edge_index: Tensor, sigmoid: bool = True) -> Tensor:
        value = self.logits(z, edge_index)
        return torch.sigmoid(value) if sigmoid else value

    def forward_all(self, z: Tensor, sigmoid: bool = True) -> Tensor:
        adj = self.scale * (z @ z.t()) + self.bias
        return torch.sigmoid(adj) if sigmoid else adj


def _edge_logits(decoder: nn.Module, z: Tensor, edge_index: Tensor) -> Tensor:
    logits = getattr(decoder, "logits", None)
    if logits is not None:
        return logits(z, edge_index)
    return decoder(z, edge_index, sigmoid=False)  # InnerProductDecoder


class _StableReconLoss:
    """``recon_loss`` from logits with log-sigmoid (same value as torch_geometric's, without its 1e-15 clamp)."""

    decoder: nn.Module  # set by torch_geometric's GAE

    def recon_loss(self, z: Tensor, pos_edge_index: Tensor, neg_edge_index: Optional[Tensor] = None) -> Tensor:
        pos_loss = -F.logsigmoid(_edge_logits(self.decoder, z, pos_edge_index)).mean()
        if neg_edge_index is None:
            neg_edge_index = negative_sampling(pos_edge_index, z.size(0))
        neg_loss = -F.logsigmoid(-_edge_logits(self.decoder, z, neg_edge_index)).mean()
        return pos_loss + neg_loss


class NVGAE(_StableReconLoss, VGAE):
    """Gaussian VGAE (Kipf & Welling, 2016) with a two-layer GCN encoder.

    Args:
        in_channels: node feature dimension.
        hidden_channels, latent_dim: GCN widths (32, 16 as in the paper).
        decoder: defaults to the plain inner-product decoder of the paper.
    """

    def __init__(self, in_channels: int, hidden_channels: int = 32, latent_dim: int = 16,
                 decoder: Optional[nn.Module] = None, dropout: float = 0.0):
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        encoder = GCNEncoder(in_channels, hidden_channels, latent_dim, dropout=dropout)
        super().__init__(encoder, decoder if decoder is not None else InnerProductDecoder())
        self.latent_dim = latent_dim


class SVGAE(_StableReconLoss, VGAE):
    """Hyperspherical VGAE (Davidson et al., 2018): vMF posterior, uniform prior on S^{latent_dim - 1}.

    Args:
        in_channels: node feature dimension.
        hidden_channels, latent_dim: GCN widths; ``latent_dim`` is the ambient dimension d >= 2.
        kappa_floor: kappa = softplus(GCN_kappa(x)) + kappa_floor.
        decoder: defaults to :class:`ScaledInnerProductDecoder` with initial scale ``decoder_scale`` (10, the
            value chosen on the validation splits of Cora and CiteSeer; experiments/results/link_prediction/notes.md).
    """

    def __init__(self, in_channels: int, hidden_channels: int = 32, latent_dim: int = 16,
                 kappa_floor: float = 1.0, decoder: Optional[nn.Module] = None, decoder_scale: float = 10.0,
                 decoder_bias: float = 0.0, learn_scale: bool = True, dropout: float = 0.0):
        if latent_dim < 2:
            raise ValueError(f"S-VGAE needs latent_dim >= 2 (a sphere S^(d-1) in R^d), got {latent_dim}")
        if kappa_floor < 0:
            raise ValueError(f"kappa_floor must be >= 0, got {kappa_floor}")
        encoder = GCNEncoder(in_channels, hidden_channels, latent_dim, second_channels=1, dropout=dropout)
        if decoder is None:
            decoder = ScaledInnerProductDecoder(decoder_scale, decoder_bias, learn_scale=learn_scale)
        super().__init__(encoder, decoder)
        self.latent_dim = latent_dim
        self.kappa_floor = float(kappa_floor)
        self.__posterior__: Optional[VonMisesFisher] = None

    def posterior(self, loc: Optional[Tensor] = None, kappa: Optional[Tensor] = None) -> VonMisesFisher:
        if loc is None and kappa is None and self.__posterior__ is not None:
            return self.__posterior__
        loc = self.__mu__ if loc is None else loc
        kappa = self.__kappa__ if kappa is None else kappa
        # loc is unit-norm and kappa >= kappa_floor by construction: skip the (costly) argument checks
        return VonMisesFisher(loc, kappa, validate_args=False)

    def encode(self, *args, **kwargs) -> Tensor:
        """Returns z ~ vMF(mu, kappa) in training mode, the mean direction mu in eval mode."""
        raw_loc, raw_kappa = self.encoder(*args, **kwargs)
        self.__mu__ = F.normalize(raw_loc, dim=-1)
        self.__kappa__ = F.softplus(raw_kappa).squeeze(-1) + self.kappa_floor
        self.__posterior__ = None
        self.__posterior__ = self.posterior()
        if self.training:
            return self.posterior().rsample()
        return self.__mu__

    def kl_loss(self, mu: Optional[Tensor] = None, kappa: Optional[Tensor] = None) -> Tensor:
        """Mean over nodes of KL(vMF(mu, kappa) || uniform on the sphere)."""
        q = self.posterior(mu, kappa)
        p = HypersphericalUniform(self.latent_dim, device=q.loc.device, dtype=q.loc.dtype)
        return kl_divergence(q, p).mean()
