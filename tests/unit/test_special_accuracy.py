"""Accuracy of the compiled special functions against 50-digit mpmath references.

The references (tests/data/special_reference.json, written by tests/reference/special_reference.py from the defining
integrals at 50 digits, stored with 45 significant digits) cover a fixed grid
d in {2, ..., 100000} x kappa in {0, 1e-10, ..., 1e7} and seeded random points (d log-uniform in
[2, 1e5], kappa in {0} u log-uniform [1e-10, 1e7]; general orders v in [0, 5e4] for log I_v and
[1/2, 5e4] for I_v/I_{v-1}). Every input is float32-representable, so the same reference is the true
value at the float32 inputs too.

Criterion: |computed - true| / max(1, |true|) <= 1e-12 in float64 and <= 2e-6 in float32
(float32 evaluates in float64 and rounds once), and finite wherever the true value is finite.

Also here: a denser check near the boundaries between the evaluation regions of csrc/math/bessel.h
against mpmath.besseli (which converges for these moderate orders and arguments), and the tabulated
-log|S^{d-1}| at kappa = 0.

``python tests/unit/test_special_accuracy.py`` prints the measured worst errors per region and writes them to
docs/special_accuracy.md (the table in docs/sampler.md and docs/special_functions.md).
"""

from __future__ import annotations

import json
import math
import os

import mpmath
import numpy as np
import pytest
import torch

from hvae_ext import special
from hvae_ext.testing import DEVICES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLE_PATH = os.path.join(ROOT, "tests", "data", "special_reference.json")

TOL = {torch.float64: 1e-12, torch.float32: 2e-6}
DTYPES = [torch.float64, torch.float32]


def _load_table():
    with open(TABLE_PATH) as fh:
        return json.load(fh)


TABLE = _load_table()


def _ref(s: str) -> float:
    return float(s)  # correctly rounded from the 45-digit decimal string


# --------------------------------------------------------------------------------------------------
# Regions (mirrors csrc/math/bessel.h; only used to report errors per region and to check coverage)
# --------------------------------------------------------------------------------------------------


def region(mu: float, x: float) -> str:
    """The evaluation region of bessel.h for the pair (log I_mu(x), I_{mu+1}(x)/I_mu(x))."""
    if x == 0:
        return "x = 0"
    if mu < 32:
        if x >= max(20.0, 0.64 * mu * mu):
            return "H (Hankel)"
        return "S (series)" if x <= 48.0 - 0.75 * mu else "R (recurrence)"
    c = 0.25 if mu >= 500 else 0.5 if mu >= 100 else 1.0
    return "S (series)" if 0.25 * x * x <= c * (mu + 1) else "D (Debye)"


# --------------------------------------------------------------------------------------------------
# Evaluation of the compiled functions on the table
# --------------------------------------------------------------------------------------------------


def _evaluate(dtype, device):
    """Rows (quantity, region, a, b, computed, reference) for every reference value."""
    rows = []
    vmf = TABLE["vmf"]
    kappa = torch.tensor([r["kappa"] for r in vmf], dtype=dtype, device=device)
    dim = torch.tensor([r["d"] for r in vmf], dtype=torch.int64, device=device)
    log_c = special.vmf_log_normalizer(kappa, dim).cpu().double().numpy()
    a = special.vmf_mean_resultant(kappa, dim).cpu().double().numpy()
    # log I_v at v = d/2 - 1 (half-integer orders), from the log C_d reference
    v_half = (dim.to(dtype) / 2 - 1).to(dtype)
    pos = kappa > 0
    log_iv_half = special.log_bessel_iv(v_half[pos], kappa[pos]).cpu().double().numpy()
    j = 0
    for i, r in enumerate(vmf):
        mu = r["d"] / 2 - 1
        reg = region(mu, r["kappa"])
        rows.append(("log C_d", reg, r["kappa"], r["d"], log_c[i], _ref(r["log_c"])))
        rows.append(("A_d", reg, r["kappa"], r["d"], a[i], _ref(r["a"])))
        if r["kappa"] > 0:
            with mpmath.workdps(60):
                ref = (
                    mu * mpmath.log(r["kappa"])
                    - mpmath.mpf(r["d"]) / 2 * mpmath.log(2 * mpmath.pi)
                    - mpmath.mpf(r["log_c"])
                )
            rows.append(("log I_v", reg, mu, r["kappa"], log_iv_half[j], float(ref)))
            j += 1

    iv = TABLE["log_iv"]
    v = torch.tensor([r["v"] for r in iv], dtype=dtype, device=device)
    x = torch.tensor([r["x"] for r in iv], dtype=dtype, device=device)
    out = special.log_bessel_iv(v, x).cpu().double().numpy()
    for i, r in enumerate(iv):
        rows.append(("log I_v", region(r["v"], r["x"]), r["v"], r["x"], out[i], _ref(r["log_iv"])))

    rt = TABLE["ratio"]
    v = torch.tensor([r["v"] for r in rt], dtype=dtype, device=device)
    x = torch.tensor([r["x"] for r in rt], dtype=dtype, device=device)
    out = special.bessel_iv_ratio(v, x).cpu().double().numpy()
    for i, r in enumerate(rt):
        rows.append(("I_v/I_v-1", region(r["v"] - 1, r["x"]), r["v"], r["x"], out[i], _ref(r["ratio"])))
    return rows


def _error(computed: float, ref: float) -> float:
    if math.isinf(ref):
        return 0.0 if computed == ref else math.inf
    if not math.isfinite(computed):
        return math.inf
    return abs(computed - ref) / max(1.0, abs(ref))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_against_mpmath_reference(dtype, device):
    rows = _evaluate(dtype, device)
    assert len(rows) > 1000
    bad = []
    for quantity, reg, p, q, computed, ref in rows:
        err = _error(computed, ref)
        if not err <= TOL[dtype]:
            bad.append(f"{quantity} at ({p!r}, {q!r}) [{reg}]: computed {computed!r}, true {ref!r}, error {err:.3g}")
    assert not bad, f"{len(bad)} values beyond {TOL[dtype]}:\n" + "\n".join(bad[:20])


def test_reference_covers_every_region():
    rows = _evaluate(torch.float64, "cpu")
    regions = {}
    for _, reg, *_ in rows:
        regions[reg] = regions.get(reg, 0) + 1
    for reg in ("S (series)", "H (Hankel)", "D (Debye)", "R (recurrence)", "x = 0"):
        assert regions.get(reg, 0) >= 3, regions


def test_ratios_are_relatively_accurate_when_tiny():
    """A_d ~ kappa/d and I_v/I_{v-1} ~ x/(2v) for small arguments: relative, not only absolute, accuracy."""
    rows = _evaluate(torch.float64, "cpu")
    worst = 0.0
    for quantity, _, _, _, computed, ref in rows:
        if quantity in ("A_d", "I_v/I_v-1") and ref > 0:
            worst = max(worst, abs(computed - ref) / ref)
    assert worst <= 1e-14


# --------------------------------------------------------------------------------------------------
# Region boundaries, against mpmath.besseli (fast at these moderate orders and arguments)
# --------------------------------------------------------------------------------------------------


def _boundary_points():
    rng = np.random.default_rng(7)
    mus = list(np.arange(0.0, 40.0, 1.5)) + list(rng.uniform(0.0, 40.0, 12))
    pts = []
    for mu in mus:
        edges = [max(20.0, 0.64 * mu * mu), 48.0 - 0.75 * mu, 2.0 * math.sqrt(mu + 1.0)]
        for e in edges:
            if 0 < e < 1e4:
                for f in (0.98, 0.9999, 1.0001, 1.02):
                    pts.append((float(np.float32(mu)), float(np.float32(e * f))))
    return pts


@pytest.mark.parametrize("device", DEVICES)
def test_region_boundaries_against_besseli(device):
    pts = _boundary_points()
    mu = torch.tensor([p[0] for p in pts], dtype=torch.float64, device=device)
    x = torch.tensor([p[1] for p in pts], dtype=torch.float64, device=device)
    log_iv = special.log_bessel_iv(mu, x).cpu().numpy()
    ratio = special.bessel_iv_ratio(mu + 1, x).cpu().numpy()
    bad = []
    with mpmath.workdps(30):
        for i, (m, xx) in enumerate(pts):
            i0 = mpmath.besseli(m, xx)
            ref_log, ref_ratio = float(mpmath.log(i0)), float(mpmath.besseli(m + 1, xx) / i0)
            e1 = abs(log_iv[i] - ref_log) / max(1.0, abs(ref_log))
            e2 = abs(ratio[i] - ref_ratio) / ref_ratio
            if not (e1 <= 1e-14 and e2 <= 1e-14):
                bad.append((m, xx, e1, e2))
    assert not bad, bad[:10]


def test_log_normalizer_at_zero_matches_sphere_area():
    """kappa = 0 gives -log|S^{d-1}| (lgamma in float64: a few ulp)."""
    dims = list(range(2, 300)) + [1000, 12345, 100000]
    out = special.vmf_log_normalizer(torch.zeros(len(dims), dtype=torch.float64), torch.tensor(dims)).numpy()
    for d, got in zip(dims, out):
        with mpmath.workdps(40):
            ref = float(mpmath.loggamma(mpmath.mpf(d) / 2) - mpmath.log(2) - mpmath.mpf(d) / 2 * mpmath.log(mpmath.pi))
        assert abs(got - ref) <= 1e-14 * max(1.0, abs(ref)), (d, got, ref)


def test_reference_table_reproduces():
    """A few stored references against the generator (guards the JSON against drift)."""
    import special_reference as sr

    rows = [r for r in TABLE["vmf"] if 0 < r["kappa"] <= 100 and r["d"] <= 1000]
    with mpmath.workdps(60):
        for r in rows[:: max(1, len(rows) // 3)][:3]:
            log_c, a = sr.ref_vmf(r["kappa"], r["d"])
            assert abs(log_c - mpmath.mpf(r["log_c"])) <= mpmath.mpf(10) ** -40 * max(1, abs(log_c))
            assert abs(a - mpmath.mpf(r["a"])) <= mpmath.mpf(10) ** -40


# --------------------------------------------------------------------------------------------------
# Report (docs/special_functions.md)
# --------------------------------------------------------------------------------------------------


def accuracy_table() -> str:
    lines = [
        "| quantity | region | points | worst error, float64 | worst error, float32 |",
        "|---|---|--:|--:|--:|",
    ]
    worst = {}
    for dtype in DTYPES:
        for quantity, reg, _p, _q, computed, ref in _evaluate(dtype, "cpu"):
            key = (quantity, reg)
            entry = worst.setdefault(key, {"n": 0, torch.float64: 0.0, torch.float32: 0.0})
            if dtype == torch.float64:
                entry["n"] += 1
            entry[dtype] = max(entry[dtype], _error(computed, ref))
    for (quantity, reg), e in sorted(worst.items()):
        lines.append(f"| {quantity} | {reg} | {e['n']} | {e[torch.float64]:.1e} | {e[torch.float32]:.1e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    # writes the table that docs/sampler.md and docs/special_functions.md show (tests/repository/test_docs_tables.py checks that
    # they show this file)
    out = os.path.join(ROOT, "docs", "special_accuracy.md")
    table = accuracy_table() + "\n"
    with open(out, "w") as fh:
        fh.write(table)
    print(table, end="")
    print(f"wrote {os.path.relpath(out)}")
