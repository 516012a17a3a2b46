"""No memory growth (on the CPU) over 10,000 repeated calls of rsample + backward.

The resident set size (psutil, or /proc/self/statm) is read after a warm-up of 1,000 calls, which lets
the allocator, autograd and the OpenMP pool reach their steady state, and again after 10,000 more calls;
the growth must stay below 4 MiB (a leak of one small tensor per call would be > 10 MiB). The measured
figure is written to experiments/results/reliability/memory_growth.txt when HVAE_RECORD=1.
"""

from __future__ import annotations

import gc
import os

import torch
from torch.distributions import kl_divergence

from hvae_ext import HypersphericalUniform, VonMisesFisher

WARMUP, CALLS, LIMIT_MIB = 1_000, 10_000, 4.0


def rss_bytes() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:  # pragma: no cover
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _step(loc_raw, k_raw, prior):
    q = VonMisesFisher(torch.nn.functional.normalize(loc_raw, dim=-1), torch.nn.functional.softplus(k_raw) + 1)
    z = q.rsample((2,))
    loss = z.sum() + q.log_prob(z).sum() + kl_divergence(q, prior).sum()
    loss.backward()


def test_no_memory_growth_over_10000_calls():
    loc_raw = torch.randn(8, 5, requires_grad=True)
    k_raw = torch.randn(8, requires_grad=True)
    prior = HypersphericalUniform(5)
    for _ in range(WARMUP):
        _step(loc_raw, k_raw, prior)
    gc.collect()
    before = rss_bytes()
    samples = []
    for i in range(CALLS):
        loc_raw.grad = None
        k_raw.grad = None
        _step(loc_raw, k_raw, prior)
        if i % 1000 == 999:
            samples.append(rss_bytes())
    gc.collect()
    after = rss_bytes()
    growth_mib = (after - before) / 2**20
    if os.environ.get("HVAE_RECORD"):
        path = os.path.join(
            os.path.dirname(__file__), "..", "..", "experiments", "results", "reliability", "memory_growth.txt"
        )
        with open(path, "w") as f:
            f.write(
                f"rsample((2,)) + log_prob + KL + backward, loc (8, 5) float32, {CALLS} calls after {WARMUP} warm-up\n"
            )
            f.write(
                f"RSS before: {before / 2**20:.2f} MiB, after: {after / 2**20:.2f} MiB, growth: {growth_mib:+.3f} MiB\n"
            )
            f.write("RSS every 1000 calls (MiB): " + " ".join(f"{s / 2**20:.2f}" for s in samples) + "\n")
    assert growth_mib < LIMIT_MIB, f"RSS grew by {growth_mib:.2f} MiB over {CALLS} calls: {samples}"
