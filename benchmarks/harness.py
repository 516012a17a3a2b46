"""Timing helpers shared by the benchmark modules."""

from __future__ import annotations

import math
import time

import torch


def synced(fn, device: str):
    """``fn`` followed by a device synchronization, so that a timer stopped on return covers the kernels."""
    if device == "cuda":

        def run():
            out = fn()
            torch.cuda.synchronize()
            return out

        return run
    return fn


# At most this many timed rounds per benchmark: enough that a cell of a millisecond fills its --bench-time (with a cap
# of 50 the cells of d = 3 were timed over 70 ms, and their medians moved by 10-20 % between identical cells on a
# shared 2-core machine).
MAX_ROUNDS = 1000


def run_benchmark(benchmark, fn, case, bench_time: float, group: str, min_rounds: int = 3, **extra):
    """Times ``fn`` (already synchronized) with ``benchmark.pedantic``.

    Two untimed calls: the first warms up (allocator, lazy initialization, CUDA context), the second calibrates
    the number of rounds to about ``bench_time`` seconds, between ``min_rounds`` and ``MAX_ROUNDS`` (2 for calls
    over 2 s). (Calibrating on the first call alone gave the sampler's first cell 3 rounds: its first call is slow.)
    """
    fn()
    t0 = time.perf_counter()
    fn()
    t = time.perf_counter() - t0
    rounds = max(min(2, min_rounds) if t > 2.0 else min_rounds, min(MAX_ROUNDS, math.ceil(bench_time / max(t, 1e-9))))
    benchmark.group = group
    benchmark.extra_info.update(
        kind=case.kind,
        impl=case.impl,
        mode=case.mode,
        device=case.device,
        dtype=case.dtype,
        N=case.n,
        d=case.d,
        kappa=case.kappa,
        items=case.n,
    )
    benchmark.extra_info.update(extra)
    result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None and stats.stats.min > 0:
        benchmark.extra_info["items_per_s_min"] = case.n / stats.stats.min
        benchmark.extra_info["items_per_s_median"] = case.n / stats.stats.median
    return result
