"""torch.compile of a whole S-VAE training step: forward, loss, backward and optimizer step.
Small and fast: one aot_eager compile (the fake kernels, autograd formulas and functionalisation
under AOTAutograd; torch's eager RNG, so it must match eager exactly) and one inductor compile (the
default backend: its own RNG draws the sampler's seed, so it must match eager in distribution)."""

from __future__ import annotations

import math

import torch

from hvae_ext import special
from hvae_ext.models import SVAE

D, DATA, B = 5, 24, 256


def _setup(seed=0):
    torch.manual_seed(seed)
    model = SVAE.mlp(latent_dim=D, hidden=(16, 8), data_dim=DATA)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(B, DATA, generator=g) < 0.3).float()

    def step(x):
        opt.zero_grad(set_to_none=True)
        q = model.posterior(x)
        z = q.rsample()
        loss = -(model.log_likelihood_given(x, z) - model._kl(q)).mean()
        loss.backward()
        opt.step()
        return loss.detach(), (q.loc * z).sum(-1).detach(), q.concentration.detach()

    return model, step, x


def _run(step, x, n, seed=1):
    torch.manual_seed(seed)
    return [step(x) for _ in range(n)]


def test_compiled_training_step_matches_eager_exactly_with_eager_rng():
    torch._dynamo.reset()
    model_e, step_e, x = _setup()
    model_c, step_c, _ = _setup()
    eager = _run(step_e, x, 3)
    compiled = _run(torch.compile(step_c, backend="aot_eager"), x, 3)
    for (le, we, _), (lc, wc, _) in zip(eager, compiled):
        torch.testing.assert_close(lc, le, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(wc, we, rtol=1e-5, atol=1e-5)
    for pe, pc in zip(model_e.parameters(), model_c.parameters()):
        torch.testing.assert_close(pc, pe, rtol=1e-4, atol=1e-5)


def test_compiled_training_step_with_inductor_matches_eager_in_distribution():
    torch._dynamo.reset()
    model, step, x = _setup()
    compiled = torch.compile(step)  # inductor
    out = _run(compiled, x, 3)
    losses = torch.stack([o[0] for o in out])
    assert torch.isfinite(losses).all() and losses[-1] < losses[0] + 1.0
    # fresh samples every call (the seed is drawn inside the graph, not baked in)
    assert not torch.equal(out[0][1], out[1][1])
    # E[w] = A_d(kappa) and Var[w] = A_d'(kappa), row by row: a z-score over the 3 * B samples
    w = torch.cat([o[1] for o in out]).double()
    kappa = torch.cat([o[2] for o in out]).double()
    a = special.vmf_mean_resultant(kappa, D)
    var = 1 - a * a - (D - 1) * a / kappa
    zscore = float((w - a).sum() / var.sum().sqrt())
    assert abs(zscore) < 5, zscore
    # and eager from the same start: losses of the same size (the first step's loss differs only by its sample)
    model_e, step_e, _ = _setup()
    le = _run(step_e, x, 1)[0][0]
    assert math.isclose(float(le), float(losses[0]), rel_tol=0.05)
