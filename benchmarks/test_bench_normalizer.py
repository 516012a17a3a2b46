"""vmf_log_normalizer forward+backward over 1e6 kappa values: hvae_ext against scipy's ``ive`` formula."""

from __future__ import annotations

import baselines
import numpy as np
import pytest
import torch
from harness import run_benchmark, synced

KAPPA_RANGE = (1e-2, 1e3)  # log-uniform


def _kappa(case) -> np.ndarray:
    rng = np.random.default_rng(7)
    lo, hi = np.log(KAPPA_RANGE[0]), np.log(KAPPA_RANGE[1])
    return np.exp(rng.uniform(lo, hi, case.n)).astype(case.dtype)


def test_log_normalizer(benchmark, case, bench_time):
    k_np = _kappa(case)
    d = case.d
    if case.impl == "ours":
        hvae_ext = pytest.importorskip("hvae_ext")
        kappa = torch.from_numpy(k_np).to(case.device).requires_grad_(True)
        ones = torch.ones_like(kappa)

        def body():
            out = hvae_ext.special.vmf_log_normalizer(kappa, d)
            return out, torch.autograd.grad(out, kappa, ones)

    elif case.impl == "scipy":

        def body():
            with np.errstate(all="ignore"):  # ive underflows to 0 for small kappa at large d: -inf, as scipy gives
                return baselines.scipy_log_normalizer_and_grad(k_np, d)

    else:
        raise ValueError(case.impl)
    group = f"vmf_log_normalizer fwd+bwd {case.device} {case.dtype} d={d} n={case.n}"
    run_benchmark(
        benchmark,
        synced(body, case.device),
        case,
        bench_time,
        group,
        kappa_range=f"log-uniform [{KAPPA_RANGE[0]:g}, {KAPPA_RANGE[1]:g}]",
    )
