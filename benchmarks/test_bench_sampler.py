"""rsample throughput: hvae_ext's vMF against the pure-PyTorch Wood sampler, power_spherical and randn(N, d); hvae_ext's
PowerSpherical against the power_spherical package and hvae_ext's vMF.

Run with ``pytest benchmarks/ --benchmark-only [--bench-mode quick|full]``; see benchmarks/README.md.
"""

from __future__ import annotations

import statistics
import time

import baselines
import pytest
import torch
from harness import run_benchmark, synced


def _inputs(case, requires_grad: bool):
    g = torch.Generator(device=case.device).manual_seed(1234)
    dt = case.torch_dtype
    loc = torch.randn(case.n, case.d, dtype=dt, device=case.device, generator=g)
    loc = torch.nn.functional.normalize(loc, dim=-1)
    kappa = torch.full((case.n,), case.kappa, dtype=dt, device=case.device)
    cot = torch.randn(case.n, case.d, dtype=dt, device=case.device, generator=g) if requires_grad else None
    if requires_grad:
        loc.requires_grad_(True)
        kappa.requires_grad_(True)
    return loc, kappa, cot


def _sampler(impl: str, validate: bool):
    """rsample(loc, kappa) -> (N, d) for one implementation; the distribution object is built inside the
    timed call, as user code does: with ``validate``, with torch's default ``validate_args`` (on: each
    implementation checks its arguments as its users get it), else with ``validate_args=False``."""
    if impl in ("ours", "ours_ps"):
        hvae_ext = pytest.importorskip("hvae_ext")
        law = hvae_ext.VonMisesFisher if impl == "ours" else hvae_ext.PowerSpherical
        flag = None if validate else False

        def rs(loc, kappa):
            return law(loc, kappa, validate_args=flag).rsample()

        return rs
    if impl == "baseline":
        return baselines.wood_rsample_validated if validate else baselines.wood_rsample
    if impl == "power_spherical":
        return baselines.power_spherical_rsample_validated if validate else baselines.power_spherical_rsample
    raise ValueError(impl)


def _check_no_sync(fn) -> bool:
    """Whether ``fn`` runs without a host synchronization (``torch.cuda.set_sync_debug_mode("error")``)."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        fn()
        ok = True
    except RuntimeError:  # the sync debug mode raises on the first synchronizing call
        ok = False
    finally:
        torch.cuda.set_sync_debug_mode(0)
        torch.cuda.synchronize()
    return ok


def test_rsample(benchmark, case, bench_time):
    if case.validate and not torch.distributions.Distribution._validate_args:
        pytest.skip("torch's default validate_args is off in this process (python -O?)")
    rs = _sampler(case.impl, case.validate)
    bwd = case.mode == "fwd+bwd"
    loc, kappa, cot = _inputs(case, bwd)
    if bwd:

        def body():
            z = rs(loc, kappa)
            return torch.autograd.grad(z, (loc, kappa), cot)

    else:

        def body():
            return rs(loc, kappa)

    extra = {"validate": case.validate}
    if case.device == "cuda" and case.impl in ("ours", "ours_ps") and not case.validate:
        extra["no_host_sync"] = _check_no_sync(body)
    fn = synced(body, case.device)
    group = f"rsample {case.device} {case.dtype} N={case.n} d={case.d} kappa={case.kappa:g} {case.mode}"
    if case.validate:
        group += " validated"
    run_benchmark(benchmark, fn, case, bench_time, group, **extra)


def test_validation_overhead(benchmark, case, bench_time):
    """The forward with torch's default validation (on) against ``validate_args=False``, in interleaved rounds.

    The validated and unvalidated test_rsample cells run one after the other, so a load that drifts between them
    (on a shared machine, tens of percent) shows up in their ratio. Here each round times one call of each,
    alternating which goes first, with the benchmark's timer (``--benchmark-timer``); the cell's own statistics
    are those of the pair, and ``extra_info`` holds the median time of each and the median of the per-round
    ratios, which the report compares with the target."""
    if not torch.distributions.Distribution._validate_args:
        pytest.skip("torch's default validate_args is off in this process (python -O?)")
    loc, kappa, _ = _inputs(case, False)
    calls = {v: synced(lambda s=_sampler(case.impl, v): s(loc, kappa), case.device) for v in (True, False)}
    timer = getattr(benchmark, "_timer", time.perf_counter)  # pytest-benchmark's --benchmark-timer
    times: dict[bool, list[float]] = {True: [], False: []}
    validated_first = [True]

    def pair():
        order = (True, False) if validated_first[0] else (False, True)
        validated_first[0] = not validated_first[0]
        for v in order:
            t0 = timer()
            calls[v]()
            times[v].append(timer() - t0)

    group = f"validation {case.device} {case.dtype} N={case.n} d={case.d} kappa={case.kappa:g} {case.impl} fwd"
    run_benchmark(benchmark, pair, case, 2 * bench_time, group)
    on, off = times[True][2:], times[False][2:]  # the rounds timed by the benchmark (run_benchmark calls twice first)
    benchmark.extra_info.update(
        validated_median=statistics.median(on),
        unvalidated_median=statistics.median(off),
        ratio_median=statistics.median(a / b for a, b in zip(on, off)),
        pairs=len(on),
    )


def test_randn(benchmark, case, bench_time):
    """torch.randn(N, d): the tangent direction alone, the floor for any vMF sampler."""
    dt = case.torch_dtype

    def body():
        return torch.randn(case.n, case.d, dtype=dt, device=case.device)

    fn = synced(body, case.device)
    run_benchmark(benchmark, fn, case, bench_time, f"randn {case.device} {case.dtype} N={case.n} d={case.d}")


def count_proposals(d: int, kappa: float, n: int, seed: int = 12345) -> float:
    """Mean number of proposals hvae_ext's sampler draws per sample: n samples of one parameter row, counted by
    torch.ops.hvae_ext._vmf_sample_proposals (the same Philox streams as vmf_sample with this key)."""
    import hvae_ext  # noqa: F401  (loads the compiled ops)

    loc = torch.zeros(1, d, dtype=torch.float64)
    loc[0, 0] = 1.0
    kappa_t = torch.tensor([kappa], dtype=torch.float64)
    _, count = torch.ops.hvae_ext._vmf_sample_proposals(loc, kappa_t, torch.tensor([seed]), n)
    return count.double().mean().item()


def test_proposals(benchmark, case, bench_time):
    """Mean proposals per accepted sample of Wood's envelope, per (d, kappa): counted for hvae_ext's sampler
    (the opt-in counter op _vmf_sample_proposals, which replays the kernel's draws for one key: N samples),
    counted by the pure-PyTorch baseline (float64, every timed call counted), and exact by quadrature
    (baselines.expected_proposals). The time is that of the baseline's w-only rejection loop."""
    g = torch.Generator().manual_seed(99)
    kappa = torch.full((case.n,), case.kappa, dtype=case.torch_dtype)
    counts = []

    def fn():
        _, p = baselines.sample_w(kappa, case.d, generator=g)
        counts.append(p)

    group = "proposals (baseline sample_w, cpu float64)"
    run_benchmark(
        benchmark,
        fn,
        case,
        0.0,
        group,
        min_rounds=2,
        proposals_exact=baselines.expected_proposals(case.d, case.kappa),
        proposals_ours=count_proposals(case.d, case.kappa, case.n),
    )
    benchmark.extra_info["proposals_empirical"] = sum(counts) / (len(counts) * case.n)
    benchmark.extra_info["proposals_samples"] = len(counts) * case.n
    benchmark.extra_info["proposals_counted"] = True  # proposals_ours counted, not computed
