"""Fuzzing the fused argument checks against the Python rules they replaced (the harness of tests/unit/test_fuzz.py:
hypothesis, a few hundred examples by default, ``pytest -m slow`` for the large run).

Each example is a tensor of a random batch shape (empty ones included) and dimension d, in float32, float64,
float16 or bfloat16, contiguous, transposed, strided or expanded (stride 0), whose rows are unit vectors with a
few rows spoilt: a NaN, +inf or -inf entry, subnormal entries, a zero row, huge or tiny entries, a scale just
inside or outside the tolerance (1 +- tol f, f in 0.5, 0.875, 1.125, 1.5, 3), or a row (a, 0, ..., 0) whose |a| is one of the last
numbers of the dtype accepted or the first rejected, on both sides of 1. It is checked as ``loc`` is (half
precision cast to float32, the tolerance of the dtype given) and as a ``log_prob`` value is
(``constraints.unit_sphere``'s rule in the value's dtype); concentrations get NaN, +-inf, +-0, subnormals,
negative and huge values. The fused check must name the same first failing row, first row with a NaN and first
row with a NaN or an infinity as the Python rule: zero disagreements, including accept/reject.

    HVAE_FUZZ_VALIDATION_REPORT=experiments/results/reliability/fuzz-validation.md \\
        python -m pytest -m slow tests/unit/test_fuzz_validation.py -q      # >= 10,000 examples, writes the record
"""

from __future__ import annotations

import collections
import datetime
import math
import os
import platform

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hvae_ext.distributions._validation import support_tolerance, unit_norm_tolerance
from hvae_ext.distributions.constraints import unit_sphere
from hvae_ext.testing import DEVICE_NAMES as DEVICES

ops = torch.ops.hvae_ext
CI_EXAMPLES = int(os.environ.get("HVAE_FUZZ_CI_EXAMPLES", 300))
SLOW_EXAMPLES = max(10_000, int(os.environ.get("HVAE_FUZZ_VALIDATION_EXAMPLES", 10_000)))
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
HALF = (torch.float16, torch.bfloat16)
DIMS = (2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 257)
SPOILS = ("nan", "inf", "-inf", "subnormal", "zero", "huge", "tiny", "scale", "edge")


# --- the Python rules the fused checks replaced (the reference) --------------------------------------------


def _first(mask: torch.Tensor) -> int:
    idx = mask.nonzero()
    return int(idx[0, 0]) if idx.numel() else -1


def reference_rows(x: torch.Tensor, mode: str, dtype: torch.dtype) -> list[int]:
    """``loc``: the rule of the former check_unit_norm (finite; |vector_norm - 1| in x's dtype, compared in float64
    with unit_norm_tolerance(dtype, d)); ``value``: constraints.unit_sphere.check (unchanged), row by row."""
    d = x.shape[-1]
    flat = x.reshape(-1, d)
    if flat.shape[0] == 0:
        return [-1, -1, -1]
    finite = torch.isfinite(flat).all(-1)
    if mode == "loc":
        dev = (torch.linalg.vector_norm(flat, dim=-1) - 1).abs()
        ok = finite & (dev.double() <= unit_norm_tolerance(dtype, d))
    else:
        ok = unit_sphere.check(flat)
    return [_first(~ok), _first(torch.isnan(flat).any(-1)), _first(~finite)]


def reference_positive(x: torch.Tensor) -> list[int]:
    """The rule of the former check_concentration: finite and > 0."""
    flat = x.reshape(-1)
    return [_first(~(torch.isfinite(flat) & (flat > 0))), _first(torch.isnan(flat)), _first(~torch.isfinite(flat))]


# --- cases -------------------------------------------------------------------------------------------------


def _edge_values(dtype: torch.dtype, tol: float, in_dtype: bool) -> list[float]:
    """The last accepted and the first rejected |a| of the dtype on both sides of 1, and their neighbours."""
    out = []
    tol_t = torch.tensor(tol, dtype=torch.float64).to(dtype).double().item() if in_dtype else tol
    for sign in (1.0, -1.0):
        a = torch.tensor(1 + sign * tol, dtype=torch.float64).to(dtype)
        far = torch.tensor(1 + sign * (2 * tol + 4), dtype=dtype)  # beyond the edge, whatever the tolerance
        # the first value past the edge, going outward
        while abs(a.double().item() - 1) <= tol_t:
            a = torch.nextafter(a, far)
        while abs(a.double().item() - 1) > tol_t:
            a = torch.nextafter(a, torch.tensor(1.0, dtype=dtype))
        b = a
        for _ in range(3):  # 3 accepted values
            out.append(b.item())
            b = torch.nextafter(b, torch.tensor(1.0, dtype=dtype))
        b = a
        for _ in range(3):  # 3 rejected values
            b = torch.nextafter(b, far)
            out.append(b.item())
    return out


@st.composite
def row_cases(draw):
    dtype = draw(st.sampled_from(DTYPES))
    mode = draw(st.sampled_from(["loc", "value"]))
    d = draw(st.sampled_from(DIMS))
    batch = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
    layout = draw(st.sampled_from(["contiguous", "transposed", "strided", "expanded"]))
    spoils = draw(
        st.lists(st.tuples(st.sampled_from(SPOILS), st.integers(0, 10**6), st.integers(0, 10**6)), max_size=3)
    )
    return dtype, mode, d, batch, layout, spoils, draw(st.integers(0, 2**31 - 1)), draw(st.sampled_from(DEVICES))


def make_rows(dtype, mode, d, batch, layout, spoils, seed):
    g = torch.Generator().manual_seed(seed)
    shape = list(batch)
    if layout == "expanded" and shape:
        shape[0] = 1  # one row along the first batch dimension, expanded below
    x = torch.randn(*shape, d, dtype=torch.float64, generator=g)
    x = torch.nn.functional.normalize(x, dim=-1).to(dtype)
    # the tolerance the check applies, and the dtype its deviation is rounded to
    tol = unit_norm_tolerance(dtype, d) if mode == "loc" else support_tolerance(dtype, d)
    flat = x.view(-1, d)
    rows = flat.shape[0]
    tiny = torch.finfo(dtype).tiny
    for kind, r, j in spoils:
        if rows == 0:
            break
        r, j = r % rows, j % d
        if kind in ("nan", "inf", "-inf"):
            flat[r, j] = float(kind)
        elif kind == "subnormal":  # subnormal entries beside the others (the norm does not change)
            flat[r, j] = tiny / 4 * (1 + j % 3)
        elif kind == "zero":
            flat[r] = 0.0
        elif kind == "huge":
            flat[r, j] = torch.finfo(dtype).max / 2
        elif kind == "tiny":
            flat[r] = tiny * 2
        elif kind == "scale":  # inside or outside the tolerance, by a margin far above the rounding of the norm
            factors = (0.5, 1.5, 3.0) if dtype in HALF else (0.5, 0.875, 1.125, 1.5, 3.0)
            f = factors[j % len(factors)]
            sign = 1.0 if (j // len(factors)) % 2 == 0 else -1.0
            # from the row made unit again (a second scale of the same row must not compound to the edge)
            row = torch.nn.functional.normalize(flat[r].double(), dim=0)
            flat[r] = (row * (1 + sign * tol * f)).to(dtype)
        else:  # edge: (a, 0, ..., 0), norm |a| in any arithmetic
            check_dtype = torch.float32 if (mode == "loc" and dtype in HALF) else dtype
            vals = _edge_values(check_dtype, tol, in_dtype=mode == "value")
            a = torch.tensor(vals[j % len(vals)], dtype=check_dtype).to(dtype)
            flat[r] = 0.0
            flat[r, j] = a if (j % 2 == 0) else -a
    if layout == "expanded" and batch:
        x = x.expand(*batch, d)
    elif layout == "transposed" and len(batch) >= 1:
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
        if len(batch) >= 2:
            x = x.transpose(0, 1).contiguous().transpose(0, 1)
    elif layout == "strided":
        wide = torch.zeros(*x.shape[:-1], 2 * d, dtype=dtype)
        wide[..., 1::2] = x
        x = wide[..., 1::2]
    return x


def check_rows(case, stats):
    dtype, mode, d, batch, layout, spoils, seed, device = case
    x = make_rows(dtype, mode, d, batch, layout, spoils, seed)
    if mode == "loc":
        checked = x.float() if dtype in HALF else x  # VonMisesFisher casts half precision up, checks with dtype's tol
        tol = unit_norm_tolerance(dtype, d)
    else:
        checked = x
        tol = support_tolerance(dtype, d)
    want = reference_rows(checked.contiguous(), mode, dtype)
    got = ops._vmf_check_unit_rows(checked.to(device), tol).tolist()
    stats["cases"] += 1
    stats[f"rows {dtype} {mode}"] += 1
    stats["rows checked"] += checked.numel() // d
    stats["rejected" if want[0] >= 0 else "accepted"] += 1
    for kind, *_ in spoils:
        stats[f"spoil {kind}"] += 1
    if x.numel() == 0:
        stats["empty"] += 1
    if layout == "expanded" and batch:
        stats["expanded"] += 1
    if got != want:
        stats["disagreements"] += 1
    assert got == want, (dtype, mode, d, batch, layout, spoils, seed, device, got, want)


_POS_POOL = ("normal", "subnormal", "zero", "-zero", "negative", "nan", "inf", "-inf", "max", "tiny")


@st.composite
def positive_cases(draw):
    dtype = draw(st.sampled_from(DTYPES))
    n = draw(st.sampled_from([0, 1, 2, 5, 17, 100, 1000]))
    kinds = draw(st.lists(st.sampled_from(_POS_POOL), min_size=1, max_size=4))
    layout = draw(st.sampled_from(["contiguous", "strided", "expanded", "scalar"]))
    return dtype, n, kinds, layout, draw(st.integers(0, 2**31 - 1)), draw(st.sampled_from(DEVICES))


def make_positive(dtype, n, kinds, layout, seed):
    g = torch.Generator().manual_seed(seed)
    fi = torch.finfo(dtype)
    values = {
        "zero": 0.0,
        "-zero": -0.0,
        "nan": math.nan,
        "inf": math.inf,
        "-inf": -math.inf,
        "max": fi.max,
        "tiny": fi.tiny,
    }
    if layout == "scalar":
        n = 1
    x = torch.exp(torch.randn(max(n, 1), dtype=torch.float64, generator=g) * 5).to(dtype)[:n]
    for i, kind in enumerate(kinds):
        if n == 0:
            break
        pos = int(torch.randint(0, n, (1,), generator=g))
        if kind == "normal":
            continue
        if kind == "subnormal":
            x[pos] = fi.tiny / 8
        elif kind == "negative":
            x[pos] = -float(torch.rand((), generator=g)) * 10.0 ** (i - 2)
        else:
            x[pos] = values[kind]
    if layout == "scalar":
        return x.reshape(())
    if layout == "strided":
        wide = torch.ones(2 * n, dtype=dtype)
        wide[::2] = x
        return wide[::2]
    if layout == "expanded" and n:
        return x[:1].expand(n)
    return x


def check_positive(case, stats):
    dtype, n, kinds, layout, seed, device = case
    x = make_positive(dtype, n, kinds, layout, seed)
    want = reference_positive(x.contiguous())
    got = ops._check_positive_finite(x.to(device)).tolist()
    stats["cases"] += 1
    stats[f"concentration {dtype}"] += 1
    stats["rejected" if want[0] >= 0 else "accepted"] += 1
    if got != want:
        stats["disagreements"] += 1
    assert got == want, (dtype, n, kinds, layout, seed, device, got, want)


_CI = settings(
    max_examples=CI_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_CI
@given(row_cases())
def test_fuzz_unit_rows(case):
    check_rows(case, collections.Counter())


@_CI
@given(positive_cases())
def test_fuzz_positive_finite(case):
    check_positive(case, collections.Counter())


@pytest.mark.slow
def test_fuzz_checks_large():
    """At least 10,000 examples of rows and 2,000 of concentrations; writes the record when
    HVAE_FUZZ_VALIDATION_REPORT names a file."""
    stats = collections.Counter()
    slow_rows = settings(
        max_examples=SLOW_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    slow_pos = settings(slow_rows, max_examples=max(2000, SLOW_EXAMPLES // 5))
    given(row_cases())(slow_rows(lambda case: check_rows(case, stats)))()
    rows_cases = stats["cases"]
    given(positive_cases())(slow_pos(lambda case: check_positive(case, stats)))()
    assert stats["disagreements"] == 0
    assert rows_cases >= 10_000
    path = os.environ.get("HVAE_FUZZ_VALIDATION_REPORT")
    if path:
        _write_report(path, stats, rows_cases)


def _write_report(path, stats, rows_cases):
    lines = [
        "# Fuzzing the fused argument checks against the Python rules they replaced",
        "",
        "Written by",
        "",
        "    HVAE_FUZZ_VALIDATION_REPORT=experiments/results/reliability/fuzz-validation.md \\",
        "        python -m pytest -m slow tests/unit/test_fuzz_validation.py -q",
        "",
        f"on {platform.machine()} ({platform.processor() or 'cpu'}), torch {torch.__version__}, devices "
        f"{', '.join(DEVICES)}, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. "
        "hypothesis draws the examples (random seed per run); tests/unit/test_fuzz_validation.py describes them.",
        "",
        f"* examples: **{stats['cases']}** ({rows_cases} of rows, {stats['cases'] - rows_cases} of concentrations); "
        f"rows checked: {stats['rows checked']}",
        f"* rejected by the Python rule: {stats['rejected']}, accepted: {stats['accepted']}",
        f"* **disagreements: {stats['disagreements']}** (first failing row, first row with a NaN, first row with "
        "a NaN or an infinity, all three compared)",
        "",
        "| counter | examples |",
        "|---|---:|",
    ]
    skip = {"cases", "rows checked", "rejected", "accepted", "disagreements"}
    for key in sorted(k for k in stats if k not in skip):
        lines.append(f"| {key} | {stats[key]} |")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
