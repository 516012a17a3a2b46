r"""Variational auto-encoders with Gaussian (N-VAE) and hyperspherical (S-VAE) latents and a Bernoulli
likelihood, in torch's idiom: the models take their encoder and decoder as modules.

* :class:`NVAE`: q(z|x) = N(mu, diag sigma^2) with sigma = softplus(.) (as in the reference code),
  p(z) = N(0, I) on R^D.
* :class:`SVAE`: q(z|x) = vMF(mu, kappa) with mu = normalize(.) and kappa = softplus(.) + kappa_floor,
  p(z) = uniform on S^{D-1} (D is the ambient dimension, the size of z), KL in closed form
  (Davidson et al., eq. 11) from :func:`torch.distributions.kl_divergence`; with ``spheres = k`` a product
  of k spheres S^m (D = k (m + 1)), each factor with its own mu_i and kappa_i and a uniform prior.

``NVAE.mlp`` and ``SVAE.mlp`` build the setup of Davidson et al. (2018), Section 5.2 and their reference
code (``s-vae-pytorch``, ``examples/mnist.py``): encoder 784-256-128 (ReLU), decoder D-128-256-784 (ReLU),
Bernoulli likelihood on the pixels (logits from the decoder). The former spelling ``SVAE(latent_dim, ...)``
still builds it, with a ``DeprecationWarning`` that names ``SVAE.mlp``.

Both expose ``elbo(x)`` (per-example ELBO with its reconstruction and KL terms), ``loss(x)`` (the negative
mean ELBO to minimise), ``log_likelihood(x, num_samples)``, the importance-sampled estimate (Burda et al.,
2016)

.. math:: \log p(x) \approx \operatorname{logsumexp}_k [\log p(x|z_k) + \log p(z_k) - \log q(z_k|x)] - \log K,
   \quad z_k \sim q(z|x),

a lower bound in expectation that tightens to log p(x) as K grows and is at least the ELBO in expectation,
and ``latent_mean(x)`` (the posterior location: mu, on the sphere(s) for the S-VAE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, Normal, kl_divergence

from . import _latent
from ._latent import check_spheres, factor_size
from ._legacy import LegacySizes

__all__ = ["MLP", "MLPEncoder", "EnsembleLinear", "NVAE", "SVAE", "MNIST_DIM", "stack_ensemble", "ensemble_member"]

MNIST_DIM = 784


class EnsembleLinear(nn.Module):
    """``members`` independent affine maps applied side by side: input (E, ..., in) or (..., in) (shared by
    every member), output (E, ..., out). Member e has ``weight[e]`` of shape (out, in) and ``bias[e]``,
    exactly an :class:`torch.nn.Linear`'s, so members can be copied in and out (:meth:`from_linears`,
    :meth:`member`). Training E models this way is one batched matmul per layer instead of E small ones;
    element-wise optimizers (SGD, Adam) update each member exactly as they would update it alone."""

    def __init__(self, members: int, in_features: int, out_features: int):
        super().__init__()
        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        self.members, self.in_features, self.out_features = int(members), int(in_features), int(out_features)
        self.weight = nn.Parameter(torch.empty(members, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(members, out_features))
        for e in range(members):  # nn.Linear's initialization, member by member
            layer = nn.Linear(in_features, out_features)
            with torch.no_grad():
                self.weight[e].copy_(layer.weight)
                self.bias[e].copy_(layer.bias)

    @classmethod
    def from_linears(cls, layers: Sequence[nn.Linear]) -> EnsembleLinear:
        out = cls.__new__(cls)
        nn.Module.__init__(out)
        out.members, out.in_features, out.out_features = len(layers), layers[0].in_features, layers[0].out_features
        out.weight = nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]).clone())
        out.bias = nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]).clone())
        return out

    def member(self, e: int) -> nn.Linear:
        layer = nn.Linear(self.in_features, self.out_features, device=self.weight.device, dtype=self.weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(self.weight[e])
            layer.bias.copy_(self.bias[e])
        return layer

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        if x.dim() >= 3 and shape[0] == self.members:  # (E, ..., in): each member its own rows
            flat = x.reshape(self.members, -1, self.in_features)
            y = torch.baddbmm(self.bias.unsqueeze(1), flat, self.weight.transpose(1, 2))
            return y.reshape(*shape[:-1], self.out_features)
        if x.dim() == 2:  # (B, in): the same rows for every member
            flat = x.unsqueeze(0).expand(self.members, -1, -1)
            y = torch.baddbmm(self.bias.unsqueeze(1), flat, self.weight.transpose(1, 2))
            return y
        raise ValueError(
            f"EnsembleLinear with {self.members} members takes (B, {self.in_features}) rows shared "
            f"by all members or ({self.members}, ..., {self.in_features}), got {tuple(shape)}"
        )

    def extra_repr(self) -> str:
        return f"members={self.members}, in_features={self.in_features}, out_features={self.out_features}"


class MLP(nn.Sequential):
    """Linear layers of the given widths with ReLU between them (none after the last); with ``members``
    set, :class:`EnsembleLinear` layers (an ensemble of independent MLPs, leading dimension E)."""

    def __init__(self, widths: Sequence[int], members: int | None = None):
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b) if members is None else EnsembleLinear(members, a, b))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        super().__init__(*layers)


def _replace_linears(module: nn.Module, make) -> None:
    """Replaces, in place, every nn.Linear / EnsembleLinear child (recursively) by ``make(name_path, child)``."""

    def visit(mod: nn.Module, prefix: str) -> None:
        for name, child in list(mod.named_children()):
            path = f"{prefix}{name}"
            if isinstance(child, (nn.Linear, EnsembleLinear)):
                setattr(mod, name, make(path, child))
            else:
                visit(child, path + ".")

    visit(module, "")


def stack_ensemble(models: Sequence[nn.Module]) -> nn.Module:
    """One model that runs ``models`` (same class and sizes, e.g. one per seed) side by side: every Linear
    becomes an :class:`EnsembleLinear` holding the members' weights, so a forward pass takes inputs
    (B, ...) shared by all members or (E, B, ...) and returns outputs with a leading member dimension E.
    For the MLP VAEs here, ``elbo(x)`` then returns (E, B) tensors and ``-elbo(x)[0].mean(-1).sum()``
    trains the E members independently with one optimizer (element-wise updates such as Adam's keep
    them independent). :func:`ensemble_member` takes member e back out as a plain model."""
    if not models:
        raise ValueError("stack_ensemble needs at least one model")
    import copy

    first = models[0]
    others = [dict(m.named_modules()) for m in models]
    stacked = copy.deepcopy(first)
    _replace_linears(stacked, lambda path, _: EnsembleLinear.from_linears([mods[path] for mods in others]))
    stacked_any: Any = stacked  # the attribute is the model's own, not one of nn.Module's declared ones
    stacked_any.members = len(models)
    return stacked


def ensemble_member(stacked: nn.Module, e: int) -> nn.Module:
    """Member ``e`` of a :func:`stack_ensemble` model as a plain model (a copy)."""
    import copy

    plain = copy.deepcopy(stacked)
    _replace_linears(plain, lambda _, layer: layer.member(e))
    if hasattr(plain, "members"):
        del plain.members
    return plain


class MLPEncoder(nn.Module):
    """The MLP encoder of Davidson et al. (2018): a trunk of linear layers of the widths ``(data_dim,
    *hidden)`` with ReLU after each, and two linear heads. ``forward(x)`` returns ``(loc, second)`` of
    shapes ``(B, loc_dim)`` and ``(B, second_dim)``: the Gaussian mean and scale logits (N-VAE), or the
    direction and concentration logits (S-VAE: ``second_dim`` = the number of sphere factors)."""

    def __init__(self, data_dim: int, hidden: Sequence[int], loc_dim: int, second_dim: int):
        super().__init__()
        self.trunk = nn.Sequential(MLP((data_dim, *hidden)), nn.ReLU())
        self.loc = nn.Linear(hidden[-1], loc_dim)
        self.second = nn.Linear(hidden[-1], second_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(x)
        return self.loc(h), self.second(h)


def _former_mlp_keys(module, state_dict, prefix) -> None:
    """Renames, before loading, the keys of models saved before the encoder became one module
    (``encoder.*``, ``enc_loc.*``, ``enc_second.*`` -> ``encoder.trunk.*``, ``encoder.loc.*``,
    ``encoder.second.*``), so their checkpoints load unchanged (same parameters in the same order)."""
    if f"{prefix}enc_loc.weight" not in state_dict or not isinstance(module.encoder, MLPEncoder):
        return
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix) :]
        for old, new in (
            ("encoder.", "encoder.trunk."),
            ("enc_loc.", "encoder.loc."),
            ("enc_second.", "encoder.second."),
        ):
            if rest.startswith(old):
                state_dict[prefix + new + rest[len(old) :]] = state_dict.pop(key)
                break


def _check_mlp_sizes(latent_dim: int, hidden: Sequence[int]) -> None:
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
    if not hidden or any(h < 1 for h in hidden):
        raise ValueError(f"hidden widths must be positive, got {tuple(hidden)}")


def _pair(out, who: str, what: str) -> tuple[Tensor, Tensor]:
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"{who}: the encoder must return a pair ({what}), got {type(out).__name__}")
    return out[0], out[1]


class _VAE(nn.Module, metaclass=LegacySizes):
    """Shared parts: ELBO, importance-sampled log-likelihood, the Bernoulli likelihood of the decoder's logits.

    ``encoder(x)`` returns the posterior's two parameter tensors, ``decoder(z)`` Bernoulli logits
    ``(..., data_dim)`` for latents ``z`` of shape ``(..., D)``."""

    legacy_builder = "mlp"
    legacy_first = "latent_dim"
    # set by the named constructor :meth:`mlp` (the MLP's sizes)
    data_dim: int
    hidden: tuple[int, ...]

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        #: the size of z: set by the named constructor (:meth:`mlp`), else None (taken from the encoder's output)
        self.latent_dim: int | None = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        _former_mlp_keys(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # to be defined by subclasses
    def _posterior(self, loc: Tensor, second: Tensor) -> Distribution:
        raise NotImplementedError

    def _kl(self, q: Distribution) -> Tensor:
        raise NotImplementedError

    def _prior_log_prob(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def _posterior_log_prob(self, q: Distribution, z: Tensor) -> Tensor:
        raise NotImplementedError

    def _location(self, loc: Tensor, second: Tensor) -> Tensor:
        return loc

    def _sample(self, q: Distribution, sample_shape=torch.Size(), reparameterized: bool = True) -> Tensor:
        return q.rsample(sample_shape) if reparameterized else q.sample(sample_shape)

    def _encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return _pair(self.encoder(x), type(self).__name__, self._encoder_outputs)

    _encoder_outputs = "two tensors"

    # shared API
    def posterior(self, x: Tensor) -> Distribution:
        """q(z|x) for a batch x of shape (B, data_dim) with values in [0, 1]."""
        return self._posterior(*self._encode(x))

    def latent_mean(self, x: Tensor) -> Tensor:
        """The posterior location (B, D): mu of the Gaussian, the mean direction(s) mu of the vMF (one unit
        vector per sphere factor, side by side)."""
        return self._location(*self._encode(x))

    def decode(self, z: Tensor) -> Tensor:
        """Bernoulli logits (..., data_dim) of p(x|z)."""
        return self.decoder(z)

    def log_likelihood_given(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) summed over pixels; z of shape (..., B, D), x of shape (B, data_dim)."""
        logits = self.decode(z)
        return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)

    def _log_likelihood_given_fast(self, x: Tensor, z: Tensor) -> Tensor:
        """Same value as :meth:`log_likelihood_given` with a third less work (used without gradients) for
        a decoder that is a stack of layers ending in a linear one: log p(x|z) = sum_j x_j l_j - softplus(l_j),
        where sum_j x_j l_j = h^T (W^T x) + b^T x for the last layer l = W h + b, so only the softplus needs
        every logit. Other decoders: :meth:`log_likelihood_given`."""
        layers = list(self.decoder) if isinstance(self.decoder, nn.Sequential) else []
        if not layers or not isinstance(layers[-1], (nn.Linear, EnsembleLinear)) or layers[-1].bias is None:
            return self.log_likelihood_given(x, z)
        h = z
        for layer in layers[:-1]:
            h = layer(h)
        last = cast(nn.Linear, layers[-1])
        x_dot_logits = (h * (x @ last.weight)).sum(-1) + x @ last.bias
        return x_dot_logits - F.softplus(F.linear(h, last.weight, last.bias)).sum(-1)

    def elbo(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(elbo, recon, kl) per example, shape (B,): one reparameterized sample, analytic KL."""
        q = self.posterior(x)
        z = self._sample(q)
        recon = self.log_likelihood_given(x, z)
        kl = self._kl(q)
        return recon - kl, recon, kl

    def loss(self, x: Tensor) -> Tensor:
        """Negative mean ELBO of the batch (nats per image)."""
        return -self.elbo(x)[0].mean()

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, num_samples: int = 500, chunk_rows: int = 5_000) -> dict[str, Tensor]:
        """Importance-sampled log p(x) with the posterior as proposal (K = ``num_samples`` per image).

        Samples are drawn ``max(1, chunk_rows // B)`` at a time so that the decoder never holds more than
        about ``chunk_rows`` rows (seed with ``torch.manual_seed`` for reproducible estimates). Returns
        per-example tensors (B,): ``log_likelihood`` (the IS estimate), ``elbo`` (the Monte Carlo
        reconstruction term over the same K samples minus the analytic KL), ``recon``, ``kl`` and
        ``elbo_mc`` (the mean of the K log-weights, the ELBO with a Monte Carlo KL).
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        q = self.posterior(x)
        b = x.shape[0]
        per = max(1, min(num_samples, chunk_rows // max(b, 1)))
        lse_chunks = []
        recon_sum = torch.zeros(b, dtype=x.dtype, device=x.device)
        log_w_sum = torch.zeros_like(recon_sum)
        done = 0
        while done < num_samples:
            k = min(per, num_samples - done)
            z = self._sample(q, (k,), reparameterized=False)  # (k, B, D)
            log_px_z = self._log_likelihood_given_fast(x, z)  # (k, B)
            log_w = log_px_z + self._prior_log_prob(z) - self._posterior_log_prob(q, z)
            lse_chunks.append(torch.logsumexp(log_w, dim=0))
            recon_sum += log_px_z.sum(0)
            log_w_sum += log_w.sum(0)
            done += k
        ll = torch.logsumexp(torch.stack(lse_chunks), dim=0) - math.log(num_samples)
        recon = recon_sum / num_samples
        kl = self._kl(q)
        return {"log_likelihood": ll, "elbo": recon - kl, "recon": recon, "kl": kl, "elbo_mc": log_w_sum / num_samples}


class NVAE(_VAE):
    """Gaussian VAE (Kingma & Welling, 2014): q(z|x) = N(mu, diag softplus(.)^2), p(z) = N(0, I).

    Args:
        encoder: a module whose ``forward(x)`` returns ``(loc, scale_logits)``, both of shape ``(B, D)``; the
            posterior scale is ``softplus(scale_logits) + min_scale`` (as in the reference code).
        decoder: a module mapping z ``(..., B, D)`` to Bernoulli logits ``(..., B, data_dim)``.
        min_scale: added to the softplus of the scale (keeps log q finite).

    :meth:`mlp` builds the MLPs of Davidson et al. (2018).
    """

    _encoder_outputs = "loc (B, D), scale logits (B, D)"

    def __init__(self, encoder: nn.Module, decoder: nn.Module, *, min_scale: float = 1e-5):
        super().__init__(encoder, decoder)
        self.min_scale = float(min_scale)

    @classmethod
    def mlp(
        cls, latent_dim: int, hidden: Sequence[int] = (256, 128), data_dim: int = MNIST_DIM, min_scale: float = 1e-5
    ) -> NVAE:
        """The MLP N-VAE of Davidson et al. (2018): encoder ``data_dim``-``hidden`` (ReLU) with two linear
        heads of width ``latent_dim``, decoder ``latent_dim``-``reversed(hidden)``-``data_dim`` (ReLU
        between layers)."""
        _check_mlp_sizes(latent_dim, hidden)
        hidden = tuple(hidden)
        model = cls(
            MLPEncoder(data_dim, hidden, latent_dim, latent_dim),
            MLP((latent_dim, *reversed(hidden), data_dim)),
            min_scale=min_scale,
        )
        model.latent_dim, model.data_dim, model.hidden = int(latent_dim), int(data_dim), hidden
        return model

    def _posterior(self, loc, second):
        if loc.shape != second.shape:
            raise ValueError(
                f"NVAE: the encoder's loc and scale logits must have the same shape (B, D), got "
                f"{tuple(loc.shape)} and {tuple(second.shape)}"
            )
        return Normal(loc, F.softplus(second) + self.min_scale, validate_args=False)

    def prior(self, device=None, dtype=None, latent_dim: int | None = None) -> Normal:
        """N(0, I) on R^D (``latent_dim`` defaults to the model's, known for :meth:`mlp` models)."""
        d = self.latent_dim if latent_dim is None else latent_dim
        if d is None:
            raise ValueError(
                "NVAE.prior: pass latent_dim (the size of z); it is known only for models built by NVAE.mlp"
            )
        zero = torch.zeros(d, device=device, dtype=dtype)
        return Normal(zero, torch.ones_like(zero), validate_args=False)

    def _kl(self, q):
        # KL(N(mu, s^2) || N(0, 1)) summed over dimensions
        return (0.5 * (q.loc.square() + q.scale.square() - 1.0) - q.scale.log()).sum(-1)

    def _prior_log_prob(self, z):
        return -0.5 * z.square().sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)

    def _posterior_log_prob(self, q, z):
        return q.log_prob(z).sum(-1)


class SVAE(_VAE):
    r"""Hyperspherical VAE (Davidson et al., 2018): q(z|x) = vMF(mu, kappa), p(z) = uniform on the sphere;
    with ``spheres = k > 1`` a product of k spheres (Davidson et al., 2019): k independent vMF factors, each
    with its own mu_i and kappa_i, and the uniform prior on each factor.

    Args:
        encoder: a module whose ``forward(x)`` returns ``(direction_logits, concentration_logits)`` of shapes
            ``(B, D)`` and ``(B, k)`` (for one sphere also ``(B, 1)`` or ``(B,)``); mu = the direction logits
            normalized (per factor), kappa = softplus(concentration logits) + ``kappa_floor``.
        decoder: a module mapping z ``(..., B, D)`` to Bernoulli logits ``(..., B, data_dim)``; for a product,
            z is the k factors side by side.
        spheres: k, the number of sphere factors: z in R^D is made of k unit vectors of size m + 1 = D / k
            (on :math:`S^m`), d = k m degrees of freedom. D must be a multiple of k with D / k >= 2 (else a
            ``ValueError``); k = 1 (default) is the single sphere :math:`S^{D-1}`.
        kappa_floor: added to the softplus of the concentration (1 in the reference code).
        posterior: the posterior family: ``"vmf"`` (default, :class:`~hvae_ext.VonMisesFisher`) or
            ``"power-spherical"`` (:class:`~hvae_ext.PowerSpherical`, De Cao and Aziz, 2020: density
            proportional to (1 + mu^T z)^kappa, sampled without a rejection step), or the class itself. The
            concentration head, the uniform prior and the closed-form KL are the same for both.

    The posterior is a ``VonMisesFisher`` (or ``PowerSpherical``) for one sphere, else
    ``Independent(VonMisesFisher(loc (B, k, m+1), kappa (B, k)), 1)``. :meth:`mlp` builds the MLPs of
    Davidson et al. (2018).
    """

    _encoder_outputs = "direction logits (B, D), concentration logits (B, spheres)"

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        *,
        spheres: int = 1,
        kappa_floor: float = 1.0,
        posterior: str | _latent.PosteriorFamily = "vmf",
    ):
        spheres = check_spheres(spheres)
        if not kappa_floor >= 0:
            raise ValueError(f"kappa_floor must be >= 0, got {kappa_floor}")
        family = _latent.check_posterior(posterior)
        super().__init__(encoder, decoder)
        self.spheres = spheres
        self.kappa_floor = float(kappa_floor)
        #: the posterior's class: VonMisesFisher or PowerSpherical
        self.posterior_family: _latent.PosteriorFamily = family

    @classmethod
    def mlp(
        cls,
        latent_dim: int,
        hidden: Sequence[int] = (256, 128),
        data_dim: int = MNIST_DIM,
        kappa_floor: float = 1.0,
        *,
        spheres: int = 1,
        posterior: str | _latent.PosteriorFamily = "vmf",
    ) -> SVAE:
        """The MLP S-VAE of Davidson et al. (2018): encoder ``data_dim``-``hidden`` (ReLU) with a direction
        head of width ``latent_dim`` (D, the size of z) and a concentration head of width ``spheres``, decoder
        ``latent_dim``-``reversed(hidden)``-``data_dim`` (ReLU between layers)."""
        if latent_dim < 2:
            raise ValueError(f"S-VAE needs latent_dim >= 2 (a sphere S^(d-1) in R^d), got {latent_dim}")
        if not kappa_floor >= 0:
            raise ValueError(f"kappa_floor must be >= 0, got {kappa_floor}")
        factor_size(latent_dim, check_spheres(spheres), "SVAE.mlp")
        _check_mlp_sizes(latent_dim, hidden)
        hidden = tuple(hidden)
        model = cls(
            MLPEncoder(data_dim, hidden, latent_dim, spheres),
            MLP((latent_dim, *reversed(hidden), data_dim)),
            spheres=spheres,
            kappa_floor=kappa_floor,
            posterior=posterior,
        )
        model.latent_dim, model.data_dim, model.hidden = int(latent_dim), int(data_dim), hidden
        return model

    def _posterior(self, loc, second):
        mu, kappa = _latent.split(loc, second, self.spheres, self.kappa_floor, type(self).__name__)
        return _latent.posterior(mu, kappa, self.spheres, self.posterior_family)

    def _location(self, loc, second):
        return _latent.split(loc, second, self.spheres, self.kappa_floor, type(self).__name__)[0]

    def _sample(self, q, sample_shape=torch.Size(), reparameterized: bool = True):
        return _latent.sample(q, self.spheres, sample_shape, reparameterized)

    def prior(self, device=None, dtype=None, latent_dim: int | None = None) -> Distribution:
        """The uniform distribution on the sphere, or on every factor of the product (``latent_dim`` D, the
        size of z, defaults to the model's, known for :meth:`mlp` models)."""
        d = self.latent_dim if latent_dim is None else latent_dim
        if d is None:
            raise ValueError(
                "SVAE.prior: pass latent_dim (the size of z); it is known only for models built by SVAE.mlp"
            )
        factor_size(d, self.spheres, "SVAE.prior")
        # no support check in log_prob: the value is a constant, and the check (on by default in torch)
        # costs time on every importance sample
        return _latent.prior(d, self.spheres, device=device, dtype=dtype)

    def _kl(self, q):
        loc = q.base_dist.loc if self.spheres > 1 else q.loc
        return kl_divergence(q, _latent.prior(_latent.latent_size(q), self.spheres, loc.device, loc.dtype))

    def _prior_log_prob(self, z):
        return _latent.prior(z.shape[-1], self.spheres, z.device, z.dtype).log_prob(_latent.unflatten(z, self.spheres))

    def _posterior_log_prob(self, q, z):
        return q.log_prob(_latent.unflatten(z, self.spheres))
