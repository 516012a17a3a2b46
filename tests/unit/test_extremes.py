"""No hang at the extremes of (d, kappa), and training stays finite when an
optimiser with a 10x learning rate drives kappa to its extremes.

The rejection loop of the sampler is bounded (kMaxWoodRounds proposals per sample, csrc/math/wood.h), and
Wood's envelope accepts with probability above 1/3 everywhere, so every finite kappa > 0 terminates
quickly. The grid runs in a child process under a wall-clock limit so that a hang fails the test instead
of blocking CI.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.distributions import kl_divergence

from hvae_ext import HypersphericalUniform, VonMisesFisher
from hvae_ext.testing import DEVICES

# The documented range of the guarantees (docs/reliability.md).
KAPPA_MIN_DOC, KAPPA_MAX_DOC = 1e-12, 1e12
D_MAX_DOC = 1_000_000

_GRID_SCRIPT = textwrap.dedent(
    r"""
    import json, sys, time, torch
    import hvae_ext
    from torch.distributions import kl_divergence
    from hvae_ext import VonMisesFisher, HypersphericalUniform
    torch.set_num_threads(1)
    device = sys.argv[1]
    cells = json.loads(sys.argv[2])
    out = []
    for d, kappa, dtype, n in cells:
        dtype = getattr(torch, dtype)
        g = torch.Generator().manual_seed(d)
        loc = torch.nn.functional.normalize(torch.randn(d, dtype=torch.float64, generator=g), dim=0)
        loc = loc.to(dtype=dtype, device=device).requires_grad_(True)
        k = torch.tensor(kappa, dtype=dtype, device=device, requires_grad=True)
        t = time.perf_counter()
        q = VonMisesFisher(loc, k, validate_args=True)
        z = q.rsample((n,))
        lin = torch.linspace(-1, 1, d, dtype=dtype, device=device)
        (z @ lin).sum().backward()
        stats = q.log_prob(z.detach()), q.entropy(), kl_divergence(q, HypersphericalUniform(d, dtype=dtype, device=device))
        if device == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        norm_err = (torch.linalg.vector_norm(z.detach().double(), dim=-1) - 1).abs().max().item()
        finite = all(bool(torch.isfinite(x).all()) for x in (z, loc.grad, k.grad) + tuple(stats))
        out.append([d, kappa, str(dtype), dt, norm_err, finite])
    print(json.dumps(out))
    """
)


def _cells():
    cells = []
    for dtype in ("float32", "float64"):
        tiny = 1e-45 if dtype == "float32" else 5e-324  # the smallest subnormal of the dtype
        for d in (2, 3, 4, 5, 64, 1000):
            for kappa in (tiny, 1e-300 if dtype == "float64" else 1e-40, KAPPA_MIN_DOC, 1.0, 1e6, KAPPA_MAX_DOC):
                cells.append([d, kappa, dtype, 64])
        for kappa in (KAPPA_MIN_DOC, 1.0, KAPPA_MAX_DOC):
            cells.append([D_MAX_DOC, kappa, dtype, 2])
    return cells


@pytest.mark.parametrize("device", DEVICES)
def test_no_hang_at_the_extremes(device):
    """kappa from the smallest subnormal through 1e-12 to 1e12 and d from 2 to 1e6, float32 and float64:
    every call terminates (in bounded time: the whole grid has 120 s in a child process), the samples are
    finite and on the sphere, and log_prob, entropy, KL and both gradients are finite."""
    cells = _cells()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-c", _GRID_SCRIPT, device, json.dumps(cells)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(rows) == len(cells)
    for d, kappa, dtype, dt, norm_err, finite in rows:
        assert finite, (d, kappa, dtype)
        tol = (1e-5 if "float32" in dtype else 1e-13) * max(1.0, math.sqrt(d) / 10)
        assert norm_err <= tol, (d, kappa, dtype, norm_err)
        # bounded time per cell: a few proposals per sample, never the 10^4 bound
        assert dt < 30.0, (d, kappa, dtype, dt)


@pytest.mark.parametrize("kappa", [5e-324, 1e-310, 1e-200])
def test_subnormal_kappa_is_uniform(kappa):
    """A subnormal kappa is > 0 and valid; its samples are uniform on the sphere (mean of w ~ 0)."""
    d, n = 4, 20_000
    mu = torch.nn.functional.normalize(torch.ones(d, dtype=torch.float64), dim=0)
    q = VonMisesFisher(mu, kappa, validate_args=True)
    z = q.sample((n,), generator=torch.Generator().manual_seed(1))
    w = z @ mu
    assert abs(w.mean().item()) < 5 / math.sqrt(d * n)  # Var[w] = 1/d under the uniform law
    torch.testing.assert_close(q.entropy(), HypersphericalUniform(d, dtype=torch.float64).entropy())
    assert kl_divergence(q, HypersphericalUniform(d, dtype=torch.float64)).item() == pytest.approx(0.0, abs=1e-300)


# --- huge kappa beyond the documented range: sampler and the large-kappa expansions of entropy and KL -----------


@pytest.mark.parametrize("kappa", [1e160, 1e300])
def test_sampler_huge_kappa(kappa):
    z = VonMisesFisher(torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64), kappa).rsample((4,))
    torch.testing.assert_close(z, torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64).expand(4, 4))


@pytest.mark.parametrize("kappa", [1e12, 1e14, 1e20])
@pytest.mark.parametrize("d", [2, 3, 10])
def test_entropy_and_kl_accurate_at_huge_kappa(d, kappa):
    # large-kappa asymptotics: entropy = (d-1)/2 (1 + log(2 pi / kappa)) + O(d^2 / kappa)
    ref = (d - 1) / 2 * (1 + math.log(2 * math.pi / kappa))
    q = VonMisesFisher(torch.eye(d, dtype=torch.float64)[0], kappa)
    u = HypersphericalUniform(d, dtype=torch.float64)
    assert q.entropy().item() == pytest.approx(ref, abs=1e-6)
    assert kl_divergence(q, u).item() == pytest.approx(u.entropy().item() - ref, abs=1e-6)


# --- training with kappa driven to its extremes (lr x10) -------------------------------------------------------

LOG_KAPPA_MIN, LOG_KAPPA_MAX = math.log(KAPPA_MIN_DOC), math.log(KAPPA_MAX_DOC)


def kappa_from_raw(raw: torch.Tensor) -> torch.Tensor:
    """The documented clamping rule (docs/reliability.md): kappa = exp(clamp(raw, log 1e-12, log 1e12)).
    Within [1e-12, 1e12] every value and gradient of hvae_ext is finite in float32 and float64."""
    return raw.clamp(LOG_KAPPA_MIN, LOG_KAPPA_MAX).exp()


def _train(push: float, dtype, train_mu=True, steps=120, lr=1.0, d=8, B=16, seed=0):
    """Fits vMF(mu, kappa) to data x by a single-sample ELBO, E_q[<z, x>] - KL(q || U) + log p(x), plus a term
    ``push * sum(raw)`` whose constant gradient keeps driving log kappa up (push < 0) or down (push > 0), as a
    diverging run would: the ELBO's own kappa-gradients vanish at both ends (Adam would stall). Adam with
    lr = 1.0 (10x the usual 0.1 for a log-parameter). Asserts every loss and every gradient is finite."""
    g = torch.Generator().manual_seed(seed)
    mu_raw = torch.randn(B, d, dtype=dtype, generator=g).requires_grad_(True)
    # with train_mu=False the data sit at the mean directions, so the likelihood itself asks for more kappa
    x = torch.nn.functional.normalize(mu_raw.detach() + train_mu * torch.randn(B, d, dtype=dtype, generator=g), dim=-1)
    k_raw = torch.zeros(B, dtype=dtype, requires_grad=True)
    opt = torch.optim.Adam([mu_raw, k_raw] if train_mu else [k_raw], lr=lr)
    prior = HypersphericalUniform(d, dtype=dtype)
    torch.manual_seed(seed)
    kappas = []
    for step in range(steps):
        opt.zero_grad()
        q = VonMisesFisher(torch.nn.functional.normalize(mu_raw, dim=-1), kappa_from_raw(k_raw), validate_args=True)
        z = q.rsample()
        elbo = (z * x).sum(-1) - kl_divergence(q, prior) + q.log_prob(x) + q.entropy()
        loss = -elbo.mean() + push * k_raw.sum()
        loss.backward()
        assert torch.isfinite(loss), (step, loss)
        assert torch.isfinite(mu_raw.grad).all() and torch.isfinite(k_raw.grad).all(), step
        if not train_mu:
            mu_raw.grad = None
        assert torch.isfinite(z).all() and torch.isfinite(elbo).all(), step
        opt.step()
        kappas.append(q.concentration.detach())
    return torch.stack(kappas)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_training_pushes_kappa_to_the_top_and_stays_finite(dtype):
    kappas = _train(push=-1.0, dtype=dtype, train_mu=False)
    # every row far up, and the run visits the top of the range (the single-sample ELBO is noisy)
    assert kappas[-1].min().item() >= 1e6 and kappas.max().item() >= 1e9, (kappas[-1].min(), kappas.max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_training_pushes_kappa_to_the_bottom_and_stays_finite(dtype):
    kappas = _train(push=1.0, dtype=dtype)
    assert kappas[-1].max().item() <= 1.01 * KAPPA_MIN_DOC


def test_training_with_unclamped_exp_stays_finite_in_float64():
    """Without the clamp, in float64, kappa = exp(raw) runs down to ~1e-60: samples, loss and gradients stay finite."""
    d, B = 5, 8
    k_raw = torch.zeros(B, dtype=torch.float64, requires_grad=True)
    mu = torch.nn.functional.normalize(torch.randn(B, d, dtype=torch.float64), dim=-1)
    opt = torch.optim.Adam([k_raw], lr=1.0)
    for _ in range(150):
        opt.zero_grad()
        q = VonMisesFisher(mu, k_raw.exp(), validate_args=True)
        z = q.rsample()
        loss = kl_divergence(q, HypersphericalUniform(d, dtype=torch.float64)).sum() + (z @ mu[0]).sum() + k_raw.sum()
        assert torch.isfinite(z).all()
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(k_raw.grad).all()
        opt.step()
    assert k_raw.exp().max().item() < 1e-20
