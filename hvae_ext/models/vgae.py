"""Variational graph auto-encoders with Gaussian (N-VGAE) and hyperspherical (S-VGAE) latents.

Both models subclass torch_geometric's :class:`~torch_geometric.nn.models.VGAE`, so they keep its API:
``encode(x, edge_index)`` returns a sample ``z`` in training mode and the posterior's location in eval
mode, ``recon_loss(z, pos_edge_index, neg_edge_index=None)`` is the binary cross-entropy of the decoder on
positive edges and (sampled) negatives, ``kl_loss()`` the KL divergence of the last encoding's posterior
from the prior, averaged over nodes, and ``test(z, pos_edge_index, neg_edge_index)`` returns
``(auc, ap)``.

As torch_geometric's ``VGAE(encoder, decoder=None)``, both take the user's encoder module (a GCN, GAT,
GraphSAGE, ...); ``NVGAE.gcn`` and ``SVGAE.gcn`` build the two-layer GCN encoder of Kipf & Welling (2016).

* :class:`NVGAE` (Kipf & Welling, 2016): q(z|x) = N(mu, diag sigma^2), p(z) = N(0, I), inner-product
  decoder sigma(z_i^T z_j); the encoder returns (mu, log sigma).
* :class:`SVGAE` (Davidson et al., 2018): q(z|x) = vMF(mu, kappa) with mu = normalize(direction logits),
  kappa = softplus(concentration logits) + kappa_floor, p(z) = uniform on S^{D-1}, KL in closed form from
  :func:`torch.distributions.kl_divergence`; with ``spheres = k`` a product of k spheres. An inner product of
  unit vectors lies in [-1, 1], so the decoder is sigma(s * z_i^T z_j + b) with a learnable scale s > 0 and
  bias b (:class:`ScaledInnerProductDecoder`).

The module needs torch_geometric (``pip install torch_geometric``, or the ``experiments`` extra).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Independent, kl_divergence

try:
    from torch_geometric.nn import GCNConv
    from torch_geometric.nn.dense.linear import Linear
    from torch_geometric.nn.models import VGAE
    from torch_geometric.nn.models.autoencoder import MAX_LOGSTD
    from torch_geometric.utils import negative_sampling
except ImportError as exc:  # torch_geometric is an optional dependency (the ``experiments`` extra)
    raise ImportError(
        "hvae_ext's graph models (SVGAE, NVGAE, GCNEncoder, ScaledInnerProductDecoder) need torch_geometric: "
        "pip install torch_geometric (or pip install 'hvae_ext[experiments]')"
    ) from exc

from . import _latent
from ._latent import check_spheres, factor_size
from ._legacy import LegacySizes

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

    _transpose_of: tuple[Tensor, Tensor] | None = None

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

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int = 32,
        out_channels: int = 16,
        second_channels: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.conv1 = GCNConv(in_channels, hidden_channels)
        if type(self.conv1.lin) is Linear:  # same module and parameters, plus the CSR product
            self.conv1.lin.__class__ = _SparseInputLinear
        self.conv_loc = GCNConv(hidden_channels, out_channels)
        self.conv_second = GCNConv(hidden_channels, out_channels if second_channels is None else second_channels)
        self.dropout = dropout

    #: a dense CPU feature matrix with at most this fraction of nonzeros enters the first layer as CSR
    SPARSE_INPUT_DENSITY = 0.1

    def _sparse_input(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
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
            out = (
                _csr(crow, cols, values, x.shape),
                _csr(crow_t, rows[perm], values[perm], (x.size(1), x.size(0))),
                perm,
            )
        self._csr_cache = (x, x._version, out)
        return out

    def _input(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
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
        return (
            _csr(csr.crow_indices(), csr.col_indices(), values, csr.shape),
            _csr(csr_t.crow_indices(), csr_t.col_indices(), values[perm], csr_t.shape),
        )

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

    def recon_loss(self, z: Tensor, pos_edge_index: Tensor, neg_edge_index: Tensor | None = None) -> Tensor:
        pos_loss = -F.logsigmoid(_edge_logits(self.decoder, z, pos_edge_index)).mean()
        if neg_edge_index is None:
            neg_edge_index = negative_sampling(pos_edge_index, z.size(0))
        neg_loss = -F.logsigmoid(-_edge_logits(self.decoder, z, neg_edge_index)).mean()
        return pos_loss + neg_loss


class NVGAE(_StableReconLoss, VGAE, metaclass=LegacySizes):
    """Gaussian VGAE (Kipf & Welling, 2016): torch_geometric's ``VGAE`` with a numerically stable
    reconstruction loss.

    Args:
        encoder: a module whose ``forward(x, edge_index, ...)`` returns ``(mu, logstd)``, both of shape (N, D).
        decoder: defaults to the plain inner-product decoder of the paper.

    :meth:`gcn` builds the two-layer GCN encoder of the paper (32-16). The former spelling
    ``NVGAE(in_channels, ...)`` still builds it, with a ``DeprecationWarning`` that names ``NVGAE.gcn``.
    """

    legacy_builder = "gcn"
    legacy_first = "in_channels"

    def __init__(self, encoder: nn.Module, decoder: nn.Module | None = None):
        super().__init__(encoder, decoder)
        #: the size of z: set by :meth:`gcn`, else None (taken from the encoder's output)
        self.latent_dim: int | None = None

    @classmethod
    def gcn(
        cls,
        in_channels: int,
        hidden_channels: int = 32,
        latent_dim: int = 16,
        decoder: nn.Module | None = None,
        dropout: float = 0.0,
    ) -> NVGAE:
        """The two-layer GCN encoder of Kipf & Welling (2016) (:class:`GCNEncoder`: a shared GCN layer of
        width ``hidden_channels`` with ReLU, GCN heads of width ``latent_dim`` for mu and log sigma), with
        ``dropout`` on its input and hidden layer."""
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        model = cls(GCNEncoder(in_channels, hidden_channels, latent_dim, dropout=dropout), decoder)
        model.latent_dim = latent_dim
        return model

    def encode(self, *args, **kwargs) -> Tensor:
        """Returns z ~ N(mu, sigma^2) in training mode, mu in eval mode (torch_geometric's ``VGAE.encode``)."""
        out = self.encoder(*args, **kwargs)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(
                f"NVGAE: the encoder must return a pair (mu (N, D), logstd (N, D)), got {type(out).__name__}"
            )
        if out[0].shape != out[1].shape:
            raise ValueError(
                f"NVGAE: the encoder's mu and logstd must have the same shape (N, D), got "
                f"{tuple(out[0].shape)} and {tuple(out[1].shape)}"
            )
        self.__mu__, logstd = out
        self.__logstd__ = logstd.clamp(max=MAX_LOGSTD)
        return self.reparametrize(self.__mu__, self.__logstd__)


class SVGAE(_StableReconLoss, VGAE, metaclass=LegacySizes):
    r"""Hyperspherical VGAE (Davidson et al., 2018): vMF posterior, uniform prior on the sphere; with
    ``spheres = k > 1`` a product of k spheres (Davidson et al., 2019): k independent vMF factors per node,
    each with its own mu_i and kappa_i, and the uniform prior on each factor.

    Args:
        encoder: a module whose ``forward(x, edge_index, ...)`` returns ``(direction_logits,
            concentration_logits)`` of shapes (N, D) and (N, k), for one sphere also (N, 1) or (N,): mu = the
            direction logits normalized (per factor), kappa = softplus(concentration logits) + ``kappa_floor``.
            Any other shape of the concentration logits is a ``ValueError``.
        decoder: defaults to :class:`ScaledInnerProductDecoder` with initial scale ``decoder_scale / spheres``
            (10 for one sphere, the value chosen on the validation splits of Cora and CiteSeer;
            experiments/results/link_prediction/notes.md): the inner product of two products of k unit
            vectors lies in [-k, k], so the initial logits span [-decoder_scale, decoder_scale] for every k.
        spheres: k, the number of sphere factors: z in R^D is made of k unit vectors of size m + 1 = D / k
            (on :math:`S^m`), d = k m degrees of freedom. D must be a multiple of k with D / k >= 2 (else a
            ``ValueError``); k = 1 (default) is the single sphere :math:`S^{D-1}`.
        kappa_floor: kappa = softplus(.) + kappa_floor.
        decoder_scale, decoder_bias, learn_scale: of the default decoder.
        posterior: the posterior family: ``"vmf"`` (default, :class:`~hvae_ext.VonMisesFisher`) or
            ``"power-spherical"`` (:class:`~hvae_ext.PowerSpherical`, De Cao and Aziz, 2020), or the class itself;
            the same concentration head, uniform prior and closed-form KL.

    ``encode`` returns z (N, D), the k factors side by side; ``posterior()`` is the last encoding's
    :class:`~hvae_ext.VonMisesFisher`, or ``Independent(VonMisesFisher(loc (N, k, m+1), kappa (N, k)), 1)``.
    :meth:`gcn` builds the two-layer GCN encoder of the paper. The former spelling
    ``SVGAE(in_channels, ...)`` still builds it, with a ``DeprecationWarning`` that names ``SVGAE.gcn``.
    """

    legacy_builder = "gcn"
    legacy_first = "in_channels"

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module | None = None,
        *,
        spheres: int = 1,
        kappa_floor: float = 1.0,
        decoder_scale: float = 10.0,
        decoder_bias: float = 0.0,
        learn_scale: bool = True,
        posterior: str | _latent.PosteriorFamily = "vmf",
    ):
        spheres = check_spheres(spheres)
        if not kappa_floor >= 0:
            raise ValueError(f"kappa_floor must be >= 0, got {kappa_floor}")
        family = _latent.check_posterior(posterior)
        if decoder is None:
            if not decoder_scale > 0:
                raise ValueError(f"decoder_scale must be > 0, got {decoder_scale}")
            decoder = ScaledInnerProductDecoder(decoder_scale / spheres, decoder_bias, learn_scale=learn_scale)
        super().__init__(encoder, decoder)
        self.spheres = spheres
        self.kappa_floor = float(kappa_floor)
        #: the posterior's class: VonMisesFisher or PowerSpherical
        self.posterior_family: _latent.PosteriorFamily = family
        #: the size of z: set by :meth:`gcn`, else None (taken from the encoder's output)
        self.latent_dim: int | None = None
        self.__posterior__: _latent.Posterior | None = None

    @classmethod
    def gcn(
        cls,
        in_channels: int,
        hidden_channels: int = 32,
        latent_dim: int = 16,
        kappa_floor: float = 1.0,
        decoder: nn.Module | None = None,
        decoder_scale: float = 10.0,
        decoder_bias: float = 0.0,
        learn_scale: bool = True,
        dropout: float = 0.0,
        *,
        spheres: int = 1,
        posterior: str | _latent.PosteriorFamily = "vmf",
    ) -> SVGAE:
        """The two-layer GCN encoder of Kipf & Welling (2016) (:class:`GCNEncoder`: a shared GCN layer of
        width ``hidden_channels`` with ReLU, a GCN head of width ``latent_dim`` (D, the size of z) for the
        directions and one of width ``spheres`` for the concentrations), with ``dropout`` on its input and
        hidden layer."""
        if latent_dim < 2:
            raise ValueError(f"S-VGAE needs latent_dim >= 2 (a sphere S^(d-1) in R^d), got {latent_dim}")
        if kappa_floor < 0:
            raise ValueError(f"kappa_floor must be >= 0, got {kappa_floor}")
        factor_size(latent_dim, check_spheres(spheres), "SVGAE.gcn")
        encoder = GCNEncoder(in_channels, hidden_channels, latent_dim, second_channels=spheres, dropout=dropout)
        model = cls(
            encoder,
            decoder,
            spheres=spheres,
            kappa_floor=kappa_floor,
            decoder_scale=decoder_scale,
            decoder_bias=decoder_bias,
            learn_scale=learn_scale,
            posterior=posterior,
        )
        model.latent_dim = latent_dim
        return model

    def posterior(self, loc: Tensor | None = None, kappa: Tensor | None = None) -> _latent.Posterior:
        """q(z) of the last encoding, or of the given mean directions ``loc`` (N, D) (unit vectors, per
        factor, side by side) and concentrations ``kappa`` (N,) or (N, spheres)."""
        if loc is None and kappa is None and self.__posterior__ is not None:
            return self.__posterior__
        loc = self.__mu__ if loc is None else loc
        kappa = self.__kappa__ if kappa is None else kappa
        # loc is unit-norm and kappa >= kappa_floor by construction: skip the (costly) argument checks
        return _latent.posterior(loc, kappa, self.spheres, self.posterior_family)

    def encode(self, *args, **kwargs) -> Tensor:
        """Returns z ~ q(z) (N, D) in training mode, the mean direction(s) mu in eval mode."""
        out = self.encoder(*args, **kwargs)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise TypeError(
                f"SVGAE: the encoder must return a pair (direction logits (N, D), concentration "
                f"logits (N, spheres)), got {type(out).__name__}"
            )
        self.__mu__, self.__kappa__ = _latent.split(out[0], out[1], self.spheres, self.kappa_floor, "SVGAE")
        self.__posterior__ = None
        self.__posterior__ = self.posterior()
        if self.training:
            return _latent.sample(self.posterior(), self.spheres)
        return self.__mu__

    def kl_loss(self, mu: Tensor | None = None, kappa: Tensor | None = None) -> Tensor:
        """Mean over nodes of KL(q || uniform): for a product, the sum of the factors' KLs."""
        q = self.posterior(mu, kappa)
        loc = q.base_dist.loc if isinstance(q, Independent) else q.loc
        p = _latent.prior(_latent.latent_size(q), self.spheres, device=loc.device, dtype=loc.dtype)
        return kl_divergence(q, p).mean()
