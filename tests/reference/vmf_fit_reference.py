"""50-digit mpmath roots of A_d(kappa) = r, the references of tests/unit/distributions/test_fit.py and of the accuracy
table of docs/fitting.md, cached in tests/data/vmf_fit_reference.json.

A_d(kappa) = E[w] under vMF comes from the integral of tests/reference/special_reference.py (mpmath.quad split
around the peak of the integrand and scaled by its maximum; mpmath.besseli does not converge when order
and argument are both large). The root is found independently of the compiled solver:

1. a start from the inverse of A ~ kappa / (alpha + sqrt(kappa^2 + beta^2)), alpha = (d-1)/2,
   beta^2 = (d^2-1)/4 (within 2% of the root);
2. Newton's method in u = log kappa on logit A_d(e^u) - logit r at 15 digits, until the step is below
   1e-10 (logit A is close to linear in log kappa both for kappa << d and kappa >> d);
3. Newton's method on A_d(kappa) - r at 50 digits (A_d' = 1 - A_d^2 - (d-1) A_d / kappa, exact at this
   precision) until the relative step is below 1e-45; the last step's size is stored as `step`.

Also stored: the condition number c = r / (kappa A_d'(kappa)) and dkappa/dr = 1 / A_d'(kappa).

Every r is a float32 value (so one reference serves the float64 and the float32 tests), except
r = 1 - 1e-10, which rounds to 1 in float32 (marked float64_only).

Run ``python tests/reference/vmf_fit_reference.py`` to regenerate (about 15 minutes on one core; ``--jobs 2`` splits
the points over two processes).
"""

from __future__ import annotations

import json
import math
import os
import sys

import mpmath
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import special_reference as sr  # noqa: E402

TABLE_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "vmf_fit_reference.json")
SEED = 20260318
GRID_DIMS = [2, 3, 5, 16, 128, 1000, 10000, 100000]
GRID_R = [1e-8, 1e-4, 1e-2, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.999, 1 - 1e-5, 1 - 1e-7, 1 - 1e-10]
N_RANDOM = 40


def _mean_resultant(kappa, d, dps):
    old = sr.DPS
    sr.DPS = dps
    try:
        return sr.ref_vmf(kappa, d)[1]
    finally:
        sr.DPS = old


def root(r: float, d: int):
    """(kappa, c, dkappa/dr, last relative Newton step) as mpf, kappa the root of A_d(kappa) = r."""
    with mpmath.workdps(sr.DPS + 15):
        r_ = mpmath.mpf(r)
        if r_ == 0:
            return mpmath.mpf(0), mpmath.mpf(1), mpmath.mpf(d), mpmath.mpf(0)
        alpha = mpmath.mpf(d - 1) / 2
        beta2 = mpmath.mpf(d * d - 1) / 4
        one_m = 1 - r_ * r_
        kappa = r_ * (alpha + mpmath.sqrt(r_ * r_ * alpha * alpha + one_m * beta2)) / one_m
        target = mpmath.log(r_ / (1 - r_))
        for _ in range(40):
            a = _mean_resultant(kappa, d, 15)
            ap = 1 - a * a - (d - 1) * a / kappa
            g = mpmath.log(a / (1 - a)) - target
            slope = kappa * ap / (a * (1 - a))  # d logit(A) / d log kappa
            du = -g / slope
            kappa = kappa * mpmath.exp(du)
            if abs(du) < 1e-10:
                break
        else:
            raise ArithmeticError(f"low-precision Newton did not converge at r={r}, d={d}")
        for _ in range(10):
            a = _mean_resultant(kappa, d, sr.DPS)
            ap = 1 - a * a - (d - 1) * a / kappa
            step = (a - r_) / ap
            kappa -= step
            rel = abs(step / kappa)
            if rel < mpmath.mpf(10) ** -45:
                break
        else:
            raise ArithmeticError(f"Newton did not converge at r={r}, d={d}")
        a = _mean_resultant(kappa, d, sr.DPS)
        ap = 1 - a * a - (d - 1) * a / kappa
        return kappa, r_ / (kappa * ap), 1 / ap, rel


def sample_points():
    """(r, d, kind, float64_only) for the grid and the seeded random points."""
    pts = []
    for d in GRID_DIMS:
        for r in GRID_R:
            r32 = float(np.float32(r))
            float64_only = r32 >= 1.0  # 1 - 1e-10 rounds to 1 in float32
            pts.append((r if float64_only else r32, d, "grid", float64_only))
    rng = np.random.default_rng(SEED)
    ds = np.round(np.exp(rng.uniform(math.log(2), math.log(1e5), N_RANDOM))).astype(int)
    # half of the points log-uniform in r in [1e-8, 0.5], half log-uniform in 1 - r in [1e-7, 0.5]
    u = np.exp(rng.uniform(math.log(1e-8), math.log(0.5), N_RANDOM))
    rs = np.where(np.arange(N_RANDOM) % 2 == 0, u, 1 - np.exp(rng.uniform(math.log(1e-7), math.log(0.5), N_RANDOM)))
    for r, d in zip(rs, ds):
        pts.append((float(np.float32(r)), int(d), "random", False))
    return pts


def _s(x) -> str:
    return mpmath.nstr(x, 45, min_fixed=-1, max_fixed=-1)


def _compute(points):
    out = []
    for r, d, kind, f64 in points:
        kappa, c, dkdr, step = root(r, d)
        out.append(
            {
                "r": r,
                "d": d,
                "kind": kind,
                "float64_only": f64,
                "kappa": _s(kappa),
                "cond": _s(c),
                "dkappa_dr": _s(dkdr),
                "step": mpmath.nstr(step, 3),
            }
        )
        print(f"r={r!r} d={d} kappa={mpmath.nstr(kappa, 12)}", file=sys.stderr, flush=True)
    return out


def build_table(jobs: int = 1):
    pts = sample_points()
    if jobs > 1:
        from multiprocessing import Pool

        chunks = [pts[i::jobs] for i in range(jobs)]
        with Pool(jobs) as pool:
            parts = pool.map(_compute, chunks)
        rows = [None] * len(pts)
        for i, part in enumerate(parts):
            rows[i::jobs] = part
    else:
        rows = _compute(pts)
    return {"dps": sr.DPS, "seed": SEED, "points": rows}


if __name__ == "__main__":
    jobs = int(sys.argv[sys.argv.index("--jobs") + 1]) if "--jobs" in sys.argv else 1
    table = build_table(jobs)
    os.makedirs(os.path.dirname(TABLE_PATH), exist_ok=True)
    with open(TABLE_PATH, "w") as fh:
        json.dump(table, fh, indent=0)
        fh.write("\n")
    print(f"wrote {TABLE_PATH}", file=sys.stderr)
