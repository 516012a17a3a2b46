"""The CPU kernels' hand-written AVX2 paths against their baseline paths (the ones a CPU without AVX2 runs).

``HVAE_DISABLE_AVX2=1`` makes the library take the baseline paths on an AVX2 machine (read once, when the library
first asks). Two processes, one with it and one without, compute the same vMF and Power Spherical samples and
gradients (float32 and float64, d from 2 to 64, small to large κ) and fused unit-norm checks. Samples and float32
gradients must agree bit for bit (integer Philox words, the same float operations in the same order, no fused
multiply-adds); float64 gradients may differ in the last bits, since the AVX2 backward contracts into fused
multiply-adds, so they are compared to 1e-13 relative. The check must name the same rows.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

SCRIPT = r"""
import sys, torch, hvae_ext
from hvae_ext import VonMisesFisher, PowerSpherical
out = {}
for law in (VonMisesFisher, PowerSpherical):
    for dt in (torch.float32, torch.float64):
        for d in (2, 3, 5, 16, 64):
            g = torch.Generator().manual_seed(d)
            n = 600
            loc = torch.nn.functional.normalize(torch.randn(n, d, dtype=torch.float64, generator=g), dim=-1)
            loc = loc.to(dt).requires_grad_(True)
            kappa = torch.tensor([0.1, 10.0, 1000.0], dtype=dt).repeat(n // 3).requires_grad_(True)
            cot = torch.randn(n, d, dtype=dt, generator=g)
            z = law(loc, kappa).rsample(generator=torch.Generator().manual_seed(7))
            grad_loc, grad_kappa = torch.autograd.grad(z, (loc, kappa), cot)
            out[(law.__name__, str(dt), d)] = (z.detach(), grad_loc, grad_kappa)
for d in (3, 16, 17):
    x = torch.nn.functional.normalize(torch.randn(40, d, generator=torch.Generator().manual_seed(d)), dim=-1)
    x[13] *= 1.001
    x[29, 0] = float("nan")
    out[("check", "torch.float32", d)] = (torch.ops.hvae_ext._vmf_check_unit_rows(x, 1e-4),)
torch.save(out, sys.argv[1])
"""


def _run(path: str, disable_avx2: bool) -> dict:
    env = dict(os.environ)
    env.pop("HVAE_DISABLE_AVX2", None)
    if disable_avx2:
        env["HVAE_DISABLE_AVX2"] = "1"
    subprocess.run([sys.executable, "-c", SCRIPT, path], env=env, check=True, timeout=300)
    return torch.load(path)


@pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
    reason="the CPU has no AVX2: only the baseline paths exist here",
)
def test_avx2_and_baseline_paths_agree(tmp_path):
    fast = _run(str(tmp_path / "avx2.pt"), disable_avx2=False)
    base = _run(str(tmp_path / "baseline.pt"), disable_avx2=True)
    assert fast.keys() == base.keys()
    # the switch took effect: the float64 backward differs in its last bits somewhere (fused multiply-adds on AVX2
    # only); if the AVX2 backward ever stops contracting, this needs another witness
    assert any(
        not torch.equal(outputs[1], base[key][1]) for key, outputs in fast.items() if key[1] == "torch.float64"
    ), "HVAE_DISABLE_AVX2=1 changed nothing: were the baseline paths taken?"
    for key, outputs in fast.items():
        law, dtype, d = key
        for i, (a, b) in enumerate(zip(outputs, base[key])):
            if dtype == "torch.float64" and i > 0:  # gradients in float64: fused multiply-adds on AVX2
                torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-14, msg=f"{key}, output {i}")
            else:
                assert torch.equal(a, b), f"{key}, output {i}: the AVX2 and baseline paths differ"
