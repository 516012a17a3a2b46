"""mpmath references for the entropy and the KL divergences of the von Mises-Fisher distribution at large
kappa, and the generator of the cached table tests/data/entropy_kl_reference.json that
tests/unit/distributions/test_entropy_kl_accuracy.py compares against.

For every (kappa, d) of the grid below, log C_d(kappa) and A_d(kappa) = E[w] come from the integral form of
tests/reference/special_reference.py (50 digits, mpmath.quad split around the peak, integrand scaled by its maximum):

    log C_d(kappa) = -log|S^{d-2}| - log int_0^pi exp(kappa cos t) sin^{d-2} t dt,   A_d(kappa) = E[cos t].

The test forms entropy and KLs from these at 50 digits:

    H = -log C_d - kappa A_d,   KL(vMF || U) = log|S^{d-1}| - H,
    KL(vMF_p || vMF_q) = log C_d(k_p) + k_p A_d(k_p) - log C_d(k_q) - k_q A_d(k_p) (1 - omc),

where the cancellation of the two ~kappa terms costs at most 12 of the 50 digits at kappa = 1e12.

Run ``python tests/reference/entropy_kl_reference.py`` to regenerate the table (about 8 minutes on one core).
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import special_reference as sr  # noqa: E402

TABLE_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "entropy_kl_reference.json"
)

DIMS = [2, 3, 5, 10, 42, 64, 66, 100, 1000, 10000, 100000]
KAPPAS = [0.1, 1.0, 30.0, 100.0, 1e3, 1e4, 1e6, 1e8, 1e10, 1e12]
# neighbours of grid points (KL between nearly equal concentrations), region boundaries of csrc/math/vmf.h
# (z = kappa / (d/2 - 1) = 1 in region D; kappa^2/4 = 4d, where the 0F1 series stops) and kappa = 615
EXTRA = (
    [(d, k * 1.001) for d in (3, 100, 100000) for k in (1e3, 1e6, 1e12)]
    + [(100000, 4.99e4), (100000, 5.01e4), (1000, 499.0), (1000, 501.0)]
    + [(d, 4.04 * d**0.5) for d in (1000, 10000, 100000)]
    + [(64, 615.0), (66, 615.0), (10, 20.5)]
)


def points():
    return [(d, k) for d in DIMS for k in KAPPAS] + [(d, float(k)) for d, k in EXTRA]


def build_table():
    out = {"dps": sr.DPS, "points": []}
    for i, (d, kappa) in enumerate(points()):
        lc, a = sr.ref_vmf(kappa, d)
        out["points"].append({"d": d, "kappa": kappa, "log_c": sr._s(lc), "a": sr._s(a)})
        print(f"{i + 1}/{len(points())}", file=sys.stderr, flush=True)
    return out


if __name__ == "__main__":
    table = build_table()
    with open(TABLE_PATH, "w") as fh:
        json.dump(table, fh, indent=0)
        fh.write("\n")
    print(f"wrote {os.path.relpath(TABLE_PATH)}", file=sys.stderr)
