"""CUDA-only checks of the build and the training path (run by `pytest -m cuda` in scripts/gpu_check.sh; skipped without a GPU):
the build has its CUDA kernels, the ops' own device messages, the opt-in check of the CUDA sampler's rows,
no synchronisation in a training step (set_sync_debug_mode("error")), and CUDA-graph capture of rsample
with its backward."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import kl_divergence

import hvae_ext
from hvae_ext import HypersphericalUniform, VonMisesFisher, _ops, special
from hvae_ext.testing import capture_rsample_graph, requires_cuda, svae_train_step

pytestmark = [requires_cuda, pytest.mark.cuda]
ops = torch.ops.hvae_ext


def _params(n=64, d=8, device="cuda"):
    loc = torch.nn.functional.normalize(torch.randn(n, d, device=device), dim=-1)
    return loc, torch.rand(n, device=device) * 20 + 0.5


def test_the_build_has_cuda_kernels():
    assert _ops.HAS_CUDA_KERNELS, "this hvae_ext was built without CUDA kernels (HVAE_WITH_CUDA=1 to force them)"


def test_device_mismatch_gives_the_ops_own_message():
    x = torch.ones(3, device="cuda")
    with pytest.raises(RuntimeError, match="log_bessel_iv: all operands must be on one device"):
        ops.log_bessel_iv(torch.ones(3), x)  # a CPU first operand, a CUDA second one
    with pytest.raises(RuntimeError, match="vmf_log_normalizer: all operands must be on one device"):
        ops.vmf_log_normalizer(torch.ones(3), torch.tensor(3, device="cuda"))
    loc, kappa = _params()
    with pytest.raises(RuntimeError, match="vmf_sample: kappa is on cpu but loc is on cuda"):
        ops.vmf_sample(loc, kappa.cpu(), torch.tensor([1], device="cuda"), 1)


def test_sampler_row_check_on_cuda():
    loc, kappa = _params()
    q = VonMisesFisher(loc, kappa, validate_args=False)
    hvae_ext.set_sampler_checks(True)
    try:
        assert torch.isfinite(q.rsample((2,))).all()
        bad = VonMisesFisher(loc[:2], torch.tensor([1.0, float("nan")], device="cuda"), validate_args=False)
        with pytest.raises(RuntimeError, match=r"sample row 1 \(parameter row 1"):
            bad.rsample()
    finally:
        hvae_ext.set_sampler_checks(False)


def test_training_path_does_not_synchronise():
    from hvae_ext.models import SVAE

    loc, kappa = _params()
    loc.requires_grad_(True)
    kappa.requires_grad_(True)
    torch.manual_seed(0)
    model = SVAE.mlp(latent_dim=8, hidden=(64, 32), data_dim=100).cuda()
    step = svae_train_step(model, (torch.rand(32, 100, device="cuda") < 0.3).float())
    step()  # lazy state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        q = VonMisesFisher(loc, kappa, validate_args=False)
        z = q.rsample((2,))
        total = z.sum() + kl_divergence(q, HypersphericalUniform(8, device="cuda")).sum()
        total = total + q.log_prob(z.detach()).sum() + q.entropy().sum() + q.variance.sum()
        total = total + special.log_bessel_iv(2.5, kappa).sum() + special.vmf_log_normalizer(kappa, 8).sum()
        total.backward()
        step()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()


def test_cuda_graph_capture_of_rsample_and_backward():
    loc, kappa = _params(1024, 16)
    loc.requires_grad_(True)
    kappa.requires_grad_(True)
    graph, z = capture_rsample_graph(loc, kappa, torch.randn(1024, 16, device="cuda"))
    graph.replay()
    first = z.clone()
    graph.replay()
    torch.cuda.synchronize()
    assert not torch.equal(first, z), "a replay must draw a new seed"
    assert torch.isfinite(z).all() and torch.isfinite(loc.grad).all() and torch.isfinite(kappa.grad).all()
    assert float((torch.linalg.vector_norm(z, dim=-1) - 1).abs().max()) < 1e-5
