"""The benchmark grids, quick and full (see conftest.py). One :class:`Case` per benchmark."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

IMPLS = ("ours", "baseline", "power_spherical", "ours_ps")  # rsample implementations (ours_ps: hvae_ext.PowerSpherical)
MODES = ("fwd", "fwd+bwd")

FULL_N = (1024, 65536, 1048576)
FULL_D = (3, 16, 64, 256, 1024)
FULL_KAPPA = (1.0, 10.0, 100.0, 1e4)
FULL_DTYPES = ("float32", "float64")
NORM_D = (3, 16, 128, 1024)
NORM_N = 1_000_000  # kappa values per normalizer call (full mode)
Q_NORM_N = 262_144  # quick mode
PROPOSALS_N = 65536

# quick mode: the cells the targets are stated on
Q_N, Q_D, Q_KAPPA = 65536, 16, 10.0
Q_D_RANDN = (3, 16, 64, 256)
Q_GPU_N, Q_GPU_D = 1048576, 64

CPU_MAX_ELEMENTS = 2**30 - 1  # N * d at or above this (N = 1048576, d = 1024: 4 GiB in float32) is skipped on CPU

# bytes of working memory per input element, roughly, for the memory guard
_MEM_FACTOR = {
    ("ours", "fwd"): 3,
    ("ours", "fwd+bwd"): 6,
    ("ours_ps", "fwd"): 3,
    ("ours_ps", "fwd+bwd"): 6,
    ("randn", "fwd"): 1,
}
_MEM_FACTOR_DEFAULT = {"fwd": 10, "fwd+bwd": 20}  # the Python baselines keep several (N, d) intermediates


@dataclasses.dataclass(frozen=True)
class Case:
    kind: str  # rsample | randn | proposals | normalizer | validation
    impl: str
    mode: str
    device: str
    dtype: str
    n: int
    d: int
    kappa: float | None = None
    # rsample: the distribution built with torch's default argument validation (on), as users run it, instead
    # of validate_args=False
    validate: bool = False

    @property
    def id(self) -> str:
        k = "" if self.kappa is None else f"-k{self.kappa:g}"
        v = "-validated" if self.validate else ""
        return f"{self.device}-{self.dtype}-N{self.n}-d{self.d}{k}-{self.mode}-{self.impl}{v}"

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


def _available_bytes(device: str) -> int | None:
    if device == "cuda":
        if not torch.cuda.is_available():
            return None
        free, _ = torch.cuda.mem_get_info()
        return free
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _have_power_spherical() -> bool:
    from baselines import HAVE_POWER_SPHERICAL

    return HAVE_POWER_SPHERICAL


def _skip_reason(c: Case) -> str | None:
    if c.device == "cuda" and not torch.cuda.is_available():
        return "no CUDA device"
    if c.impl == "power_spherical" and not _have_power_spherical():
        return "power_spherical is not installed (pip install --no-deps power_spherical)"
    if c.kind in ("rsample", "randn", "validation"):
        elements = c.n * c.d
        if c.device == "cpu" and elements > CPU_MAX_ELEMENTS:
            return f"N*d = {elements} too large for a CPU run (skipped by design)"
        factor = _MEM_FACTOR.get((c.impl, c.mode), _MEM_FACTOR_DEFAULT[c.mode])
        need = elements * torch.empty((), dtype=c.torch_dtype).element_size() * factor
        avail = _available_bytes(c.device)
        if avail is not None and need > 0.7 * avail:
            return f"needs ~{need / 2**30:.1f} GiB, {avail / 2**30:.1f} GiB available on {c.device}"
    return None


def _param(c: Case):
    reason = _skip_reason(c)
    return pytest.param(c, id=c.id, marks=pytest.mark.skip(reason=reason)) if reason else pytest.param(c, id=c.id)


def _devices():
    # CUDA cells are always generated, and skipped where there is no CUDA device
    return ("cpu", "cuda")


def rsample_cases(mode: str) -> list[Case]:
    out = []
    if mode == "full":
        for dev, dt, n, d, k, impl, m in itertools.product(
            _devices(), FULL_DTYPES, FULL_N, FULL_D, FULL_KAPPA, IMPLS, MODES
        ):
            out.append(Case("rsample", impl, m, dev, dt, n, d, k))
        return out
    # every cell without validation and with torch's default validation (on), side by side
    for impl, m, v in itertools.product(IMPLS, MODES, (False, True)):  # CPU target cell: d = 16, kappa = 10
        out.append(Case("rsample", impl, m, "cpu", "float32", Q_N, Q_D, Q_KAPPA, v))
    for d, m, v in itertools.product(Q_D_RANDN, MODES, (False, True)):  # CPU: against randn for every d <= 256
        if d != Q_D:
            out.append(Case("rsample", "ours", m, "cpu", "float32", Q_N, d, Q_KAPPA, v))
    for impl, m, v in itertools.product(IMPLS, MODES, (False, True)):  # GPU target cell: N = 2^20, d = 64
        out.append(Case("rsample", impl, m, "cuda", "float32", Q_GPU_N, Q_GPU_D, Q_KAPPA, v))
    return out


def randn_cases(mode: str) -> list[Case]:
    if mode == "full":
        return [
            Case("randn", "randn", "fwd", dev, dt, n, d)
            for dev, dt, n, d in itertools.product(_devices(), FULL_DTYPES, FULL_N, FULL_D)
        ]
    out = [Case("randn", "randn", "fwd", "cpu", "float32", Q_N, d) for d in Q_D_RANDN]
    out.append(Case("randn", "randn", "fwd", "cuda", "float32", Q_GPU_N, Q_GPU_D))
    return out


def proposals_cases(mode: str) -> list[Case]:
    # cheap: the whole (d, kappa) grid in both modes, on CPU in float64
    return [
        Case("proposals", "baseline", "fwd", "cpu", "float64", PROPOSALS_N, d, k)
        for d, k in itertools.product(FULL_D, FULL_KAPPA)
    ]


def normalizer_cases(mode: str) -> list[Case]:
    out = []
    if mode == "full":
        for dev, dt, d in itertools.product(_devices(), FULL_DTYPES, NORM_D):
            for impl in ("ours", "scipy"):
                if impl == "scipy" and dev != "cpu":
                    continue
                out.append(Case("normalizer", impl, "fwd+bwd", dev, dt, NORM_N, d))
        return out
    for dt in FULL_DTYPES:
        for impl in ("ours", "scipy"):
            out.append(Case("normalizer", impl, "fwd+bwd", "cpu", dt, Q_NORM_N, 16))
    return out


def validation_cases(mode: str) -> list[Case]:
    """The cost of argument validation in interleaved rounds (test_validation_overhead), in both modes: the
    forward at every d of the validated rsample cells, on CPU (both laws at d = 16) and at the GPU target cell."""
    out = [Case("validation", "ours", "fwd", "cpu", "float32", Q_N, d, Q_KAPPA, True) for d in Q_D_RANDN]
    out.append(Case("validation", "ours_ps", "fwd", "cpu", "float32", Q_N, Q_D, Q_KAPPA, True))
    out.append(Case("validation", "ours", "fwd", "cuda", "float32", Q_GPU_N, Q_GPU_D, Q_KAPPA, True))
    return out


_BY_TEST = {
    "test_rsample": rsample_cases,
    "test_randn": randn_cases,
    "test_proposals": proposals_cases,
    "test_log_normalizer": normalizer_cases,
    "test_validation_overhead": validation_cases,
}


def cases_for(test_name: str, mode: str):
    return [_param(c) for c in _BY_TEST[test_name](mode)]
