"""pytest-benchmark configuration of the hvae_ext benchmark suite.

Modes (``--bench-mode``, or the environment variable ``HVAE_BENCH_MODE``; default ``quick``):

* ``quick`` -- the cells the speed targets are stated on; CI runs it (under two minutes on 2 CPU cores).
* ``full``  -- the whole grid: rsample forward and forward+backward for N in {1024, 65536, 1048576},
  d in {3, 16, 64, 256, 1024}, kappa in {1, 10, 100, 1e4}, float32 and float64, every implementation; the
  normalizer for d in {3, 16, 128, 1024}. Cells too large for the machine's memory are skipped (always on
  CPU: N = 1048576 with d = 1024, a 4 GiB float32 input before any intermediate).

Every timed function ends with ``torch.cuda.synchronize()`` on CUDA, so the timer stops after the kernels.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import cases  # noqa: E402  (benchmarks/cases.py: the grids)


def pytest_addoption(parser):
    group = parser.getgroup("hvae_ext benchmarks")
    group.addoption(
        "--bench-mode",
        choices=("quick", "full"),
        default=os.environ.get("HVAE_BENCH_MODE", "quick"),
        help="quick: the target cells only (CI, < 2 min on 2 cores); full: the whole grid. "
        "Default: $HVAE_BENCH_MODE or quick.",
    )
    group.addoption(
        "--bench-threads",
        type=int,
        default=int(os.environ["HVAE_BENCH_THREADS"]) if os.environ.get("HVAE_BENCH_THREADS") else None,
        help="torch.set_num_threads for the run (default: torch's default; $HVAE_BENCH_THREADS). On a CPU shared "
        "with other jobs, intra-op threads spin at every barrier and a 65536-element op can cost milliseconds: "
        "1 thread gives repeatable timings there.",
    )
    group.addoption(
        "--bench-time",
        type=float,
        default=None,
        help="seconds of timed calls to aim for per benchmark (default 0.3 quick, 1.0 full); "
        "each benchmark runs between 3 and 1000 rounds.",
    )


def pytest_configure(config):
    threads = config.getoption("--bench-threads", default=None)
    if threads:
        torch.set_num_threads(threads)


def bench_mode(config) -> str:
    return config.getoption("--bench-mode")


def pytest_generate_tests(metafunc):
    if "case" in metafunc.fixturenames:
        mode = bench_mode(metafunc.config)
        metafunc.parametrize("case", cases.cases_for(metafunc.function.__name__, mode))


@pytest.fixture
def bench_time(request) -> float:
    t = request.config.getoption("--bench-time")
    if t is None:
        t = 0.3 if bench_mode(request.config) == "quick" else 1.0
    return t


def _cpu_model() -> str:
    from experiments.common import cpu_model  # one definition for benchmarks and experiments

    return cpu_model()


def _hvae_ext_info() -> dict:
    try:
        import hvae_ext
        from experiments.common import portable_path  # no absolute paths of this machine in the record

        return {
            "hvae_ext_version": getattr(hvae_ext, "__version__", "?"),
            "hvae_ext_path": portable_path(os.path.dirname(hvae_ext.__file__)),
        }
    except Exception as exc:  # pragma: no cover - depends on the environment
        return {"hvae_ext_version": None, "hvae_ext_error": repr(exc)}


def pytest_benchmark_update_machine_info(config, machine_info):
    """Names the machine and device in the JSON, for benchmarks/report.py."""
    import numpy
    import scipy
    from baselines import HAVE_POWER_SPHERICAL

    info = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "numpy_version": numpy.__version__,
        "scipy_version": scipy.__version__,
        "bench_mode": bench_mode(config),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda_version": torch.version.cuda,
    }
    if HAVE_POWER_SPHERICAL:
        from importlib.metadata import version

        try:
            info["power_spherical_version"] = version("power_spherical")
        except Exception:
            info["power_spherical_version"] = "?"
    info.update(_hvae_ext_info())
    machine_info["hvae_ext_bench"] = info
