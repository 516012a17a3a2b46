"""Solving A_d(kappa) = r (the maximum-likelihood concentration) for N values of r: hvae_ext's
``vmf_mean_resultant_inverse`` against scipy's ``vonmises_fisher.fit``, Banerjee et al.'s approximation and
Sra's Newton steps (benchmarks/fit_baselines.py). The report (docs/fitting.md) divides these times into
seconds per 1e6 values.

Cells: quick mode d = 16, N = 65536 (scipy: N = 64, one ``fit`` call per value); full mode d in {3, 128, 1000},
N = 1e6 (scipy: N = 256). r is uniform in [1e-3, 0.999] (kappa from ~d/1000 to ~500 d).
"""

from __future__ import annotations

import fit_baselines
import numpy as np
import pytest
import torch
from cases import Case
from harness import run_benchmark

IMPLS = ("ours", "ours_fwd_bwd", "banerjee", "sra", "scipy_fit")
R_RANGE = (1e-3, 0.999)


def _cases(mode: str):
    if mode == "full":
        grid = [(d, 1_000_000) for d in (3, 128, 1000)]
    else:
        grid = [(16, 65536)]
    out = []
    for d, n in grid:
        for impl in IMPLS:
            m = min(n, 64 if mode == "quick" else 256) if impl == "scipy_fit" else n
            out.append(Case("fit", impl, "fwd+bwd" if impl == "ours_fwd_bwd" else "fwd", "cpu", "float64", m, d))
    return out


def pytest_generate_tests(metafunc):  # noqa: D103 (pytest hook, module-level)
    if "fit_case" in metafunc.fixturenames:
        mode = metafunc.config.getoption("--bench-mode")
        metafunc.parametrize("fit_case", [pytest.param(c, id=c.id) for c in _cases(mode)])


def _r(n: int) -> np.ndarray:
    return np.random.default_rng(18).uniform(R_RANGE[0], R_RANGE[1], n)


def test_fit_inverse(benchmark, fit_case, bench_time):
    case = fit_case
    r_np, d = _r(case.n), case.d
    if case.impl in ("ours", "ours_fwd_bwd"):
        hvae_ext = pytest.importorskip("hvae_ext")
        r = torch.from_numpy(r_np)
        if case.impl == "ours":

            def body():
                return hvae_ext.special.vmf_mean_resultant_inverse(r, d)

        else:
            r = r.requires_grad_(True)
            ones = torch.ones_like(r)

            def body():
                k = hvae_ext.special.vmf_mean_resultant_inverse(r, d)
                return k, torch.autograd.grad(k, r, ones)

    elif case.impl == "banerjee":

        def body():
            return fit_baselines.banerjee(r_np, d)

    elif case.impl == "sra":

        def body():
            return fit_baselines.sra(r_np, d)

    elif case.impl == "scipy_fit":

        def body():
            return fit_baselines.scipy_fit_kappa(r_np, d)

    else:
        raise ValueError(case.impl)
    group = f"A_d^-1 {case.device} {case.dtype} d={d}"
    run_benchmark(benchmark, body, case, bench_time, group, r_range=f"uniform [{R_RANGE[0]:g}, {R_RANGE[1]:g}]")
