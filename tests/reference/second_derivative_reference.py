"""60-digit mpmath references for the derivatives of the mean resultant length A_d(kappa) that the first and the
double backward use, and the generator of the cached table tests/data/second_derivative_reference.json that
tests/unit/test_second_derivatives.py compares against.

With w = cos t the cosine to the mean direction, the vMF density of w is proportional to
exp(kappa w) (1 - w^2)^{(d-3)/2}, so A_d = E[w] and its kappa-derivatives are the cumulants of w:

    A_d'(kappa)  = E[(w - A)^2] = Var[w],        A_d''(kappa) = E[(w - A)^3],
    D(kappa)     = kappa A_d'(kappa)  (= d/dkappa KL(vMF || U)),      D'(kappa) = A_d' + kappa A_d''.

Each is one integral over t in [0, pi] of the integrand of tests/reference/special_reference.py (scaled by its maximum,
split around its peak t*, mpmath.quad at 60 + 15 digits), with w - A formed as (cos t - cos t*) - (A - cos t*)
and cos t - cos t* = -2 sin((t - t*)/2) sin((t + t*)/2): the central moments are integrals of small quantities,
so nothing cancels (the Riccati forms A' = 1 - A^2 - (d - 1) A / kappa and its derivative would lose up to 36
digits at kappa = 1e12). At kappa = 0: A' = 1/d, A'' = 0, D' = 1/d.

The points: the kappa grids of the first-derivative references (tests/reference/special_reference.py: d in [2, 1e5],
kappa in {0} u [1e-10, 1e7], and tests/reference/entropy_kl_reference.py: kappa in [0.1, 1e12]), a dense log grid of kappa
from 1e-8 to 1e12 for dimensions on both sides of the region boundaries of csrc/math/bessel.h, points around the
switch to the small-kappa series of csrc/math/vmf.h and around the zero of D', and four points where the direct
formulas failed (d = 64, kappa = 6.06e-6; d = 16, kappa = 1e-3; d = 257, kappa = 9.6e8; d = 16, kappa = 1e6).

Where mpmath.besseli is fast (all but large orders with kappa ~ d: 40 of the points), A comes from it at 140
digits instead and A', A'' from the Riccati equation, which loses at most ~40 of them on this grid; the
``"method"`` of each row says which. ``python tests/reference/second_derivative_reference.py --check`` compares the two
methods at points where both are fast (measured: A' to 4e-64, A'' to 5e-51; 1e-45 required).

Run ``python tests/reference/second_derivative_reference.py`` to regenerate the table (``-j N``: N processes).
"""

from __future__ import annotations

import json
import math
import os
import sys

import mpmath

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import entropy_kl_reference as ekr  # noqa: E402
import special_reference as sr  # noqa: E402

DPS = 60
TABLE_PATH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "second_derivative_reference.json"
)

DENSE_DIMS = [2, 3, 4, 5, 7, 10, 16, 33, 64, 65, 66, 67, 100, 257, 1000, 10000, 100000]
DENSE_KAPPAS = [10.0**e for e in range(-8, 13)]  # 1e-8 .. 1e12
ISSUE_POINTS = [(64, 6.06e-6), (16, 1e-3), (257, 9.6e8), (16, 1e6)]


def _switch_points():
    """kappa around the switch to the small-kappa series (kappa^2 = rho j^2, csrc/math/vmf.h), and around the
    maximum of D = kappa A' (the zero of D', near kappa ~ d/2 for large d, ~1.2 for d = 2)."""
    out = []
    for d in (2, 3, 5, 10, 16, 64, 66, 257, 1000, 100000):
        mu = d / 2 - 1
        j2 = max(4 * (mu + 1), mu * (mu + 2))  # a lower bound of j_{mu,1}^2 (the first zero of J_mu)
        for rho in (0.05, 0.1, 0.2, 0.3):
            for f in (0.97, 1.03):
                out.append((d, math.sqrt(rho * j2) * f))
    # the region boundaries of csrc/math/bessel.h: S | R | H for mu < 32, S | D for mu >= 32
    for d in (2, 5, 16, 21, 40, 63):
        mu = d / 2 - 1
        for edge in (max(20.0, 0.64 * mu * mu), 48.0 - 0.75 * mu):
            out += [(d, edge * 0.99), (d, edge * 1.01)]
    for d in (66, 100, 202, 1000, 1002, 100000):
        mu = d / 2 - 1
        c = 0.25 if mu >= 500 else 0.5 if mu >= 100 else 1.0
        edge = 2 * math.sqrt(c * (mu + 1))
        out += [(d, edge * 0.99), (d, edge * 1.01)]
    return out


def points():
    pts = set()
    for k, d, _ in sr.sample_points()["vmf"]:
        pts.add((int(d), float(k)))
    for d, k in ekr.points():
        pts.add((int(d), float(k)))
    for d in DENSE_DIMS:
        for k in DENSE_KAPPAS:
            pts.add((d, float(k)))
    for d, k in ISSUE_POINTS + _switch_points():
        pts.add((d, float(k)))
    return sorted(pts)


def by_besseli(kappa, d):
    """Whether mpmath.besseli is fast at (kappa, d) (it is not for large orders with kappa ~ d)."""
    return d <= 5000 or kappa * kappa <= d or kappa >= 1e4 * d


def moments_besseli(kappa, d):
    """(A, A', A'') from A = I_{d/2}(kappa) / I_{d/2-1}(kappa) (mpmath.besseli) at 140 digits and the Riccati
    equation A' = 1 - A^2 - (d - 1) A / kappa and its derivative A'' = -2 A A' - (d - 1) (A' / kappa - A / kappa^2),
    which lose at most ~40 digits on the grid (log10 of 4 kappa^3 / d at kappa = 1e12, of 1/kappa at 1e-10)."""
    with mpmath.workdps(140):
        x = mpmath.mpf(kappa)
        nu = mpmath.mpf(d) / 2
        a = mpmath.besseli(nu, x) / mpmath.besseli(nu - 1, x)
        a1 = 1 - a * a - (d - 1) * a / x
        a2 = -2 * a * a1 - (d - 1) * (a1 / x - a / (x * x))
        return +a, +a1, +a2


def moments(kappa, d):
    """(A, A', A'') = (E[w], E[(w - A)^2], E[(w - A)^3]) as mpf: from mpmath.besseli where that is fast, else
    from the integrals."""
    if kappa != 0 and by_besseli(kappa, d):
        return moments_besseli(kappa, d)
    return moments_integral(kappa, d)


def moments_integral(kappa, d):
    """(A, A', A'') = (E[w], E[(w - A)^2], E[(w - A)^3]) as mpf at DPS digits, from the integrals."""
    with mpmath.workdps(DPS + 15):
        x = mpmath.mpf(kappa)
        m = mpmath.mpf(d) - 2
        if x == 0:
            return mpmath.mpf(0), 1 / mpmath.mpf(d), mpmath.mpf(0)
        pts, t = sr._breakpoints(x, m)
        log_peak = sr._log_integrand(x, m, t)
        c_peak = mpmath.cos(t)

        cache = {}  # the four integrals share their quadrature nodes: g and cos u - cos t* once per node

        def gdc(u):
            if u not in cache:
                lf = sr._log_integrand(x, m, u)
                gu = mpmath.exp(lf - log_peak) if lf != mpmath.ninf else mpmath.mpf(0)
                cache[u] = (gu, -2 * mpmath.sin((u - t) / 2) * mpmath.sin((u + t) / 2))
            return cache[u]

        def g(u):
            return gdc(u)[0]

        def dc(u):  # cos u - cos t*
            return gdc(u)[1]

        # mpmath.quad's error estimates (differences between refinement levels, with a floor near the working
        # precision's epsilon, 1e-77, whatever the integrand's size) must leave DPS - 5 digits or be that floor
        tol = mpmath.mpf(10) ** (-DPS + 5)
        floor = mpmath.mpf(10) ** (-DPS - 12)
        j, err = mpmath.quad(g, pts, error=True)
        assert err <= max(tol * j, floor), (kappa, d, err)
        shift = mpmath.quad(lambda u: dc(u) * g(u), pts) / j  # A - cos t*
        a = c_peak + shift
        m2, err2 = mpmath.quad(lambda u: (dc(u) - shift) ** 2 * g(u), pts, error=True)
        m3, err3 = mpmath.quad(lambda u: (dc(u) - shift) ** 3 * g(u), pts, error=True)
        m2, m3 = m2 / j, m3 / j
        # the error estimates against the size of the integrands (|w - A|^k ~ m2^{k/2})
        assert err2 <= max(tol * abs(m2) * j, floor), (kappa, d, err2, m2)
        assert err3 <= max(tol * m2 ** mpmath.mpf(1.5) * j, floor), (kappa, d, err3, m3)
        return +a, +m2, +m3


def _row(p):
    d, kappa = p
    a, a1, a2 = moments(kappa, d)
    method = "exact" if kappa == 0 else "besseli" if by_besseli(kappa, d) else "integral"
    return {"d": d, "kappa": kappa, "method": method, "a": sr._s(a), "a1": sr._s(a1), "a2": sr._s(a2)}


def cross_check():
    """The two methods at points where both are fast: worst relative differences of A', A''."""
    worst = [mpmath.mpf(0), mpmath.mpf(0)]
    for d, kappa in ISSUE_POINTS + [(2, 1e-10), (3, 0.5), (5, 20.0), (66, 30.0), (100, 1e4), (1000, 1e6), (2, 1e12)]:
        b, q = moments_besseli(kappa, d), moments_integral(kappa, d)
        for i in (0, 1):
            worst[i] = max(worst[i], abs(b[i + 1] - q[i + 1]) / abs(q[i + 1]))
        print(d, kappa, [mpmath.nstr(w, 3) for w in worst], file=sys.stderr, flush=True)
    return worst


def build_table(jobs=1):
    pts = points()
    if jobs > 1:
        import multiprocessing

        with multiprocessing.Pool(jobs) as pool:
            rows = []
            for i, r in enumerate(pool.imap(_row, pts, chunksize=4)):
                rows.append(r)
                if i % 50 == 0:
                    print(f"{i + 1}/{len(pts)}", file=sys.stderr, flush=True)
    else:
        rows = []
        for i, p in enumerate(pts):
            rows.append(_row(p))
            if i % 50 == 0:
                print(f"{i + 1}/{len(pts)}", file=sys.stderr, flush=True)
    return {"dps": DPS, "points": rows}


if __name__ == "__main__":
    if "--check" in sys.argv:
        w = cross_check()
        assert max(w) < mpmath.mpf(10) ** -45, w
        sys.exit(0)
    jobs = int(sys.argv[sys.argv.index("-j") + 1]) if "-j" in sys.argv else 1
    table = build_table(jobs)
    with open(TABLE_PATH, "w") as fh:
        json.dump(table, fh, indent=0)
        fh.write("\n")
    print(f"wrote {os.path.relpath(TABLE_PATH)}", file=sys.stderr)
