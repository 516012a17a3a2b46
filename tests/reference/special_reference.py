"""50-digit mpmath references for the special functions of hvae_ext, and the generator of the cached
table tests/data/special_reference.json that tests/unit/test_special_accuracy.py compares against.

mpmath.besseli stops converging when order and argument are both large (v ~ 5e4, x ~ 1e7), so the
references come from the defining integrals instead, all reduced to

    J_m(x) = int_0^pi exp(x cos t) sin^m t dt,          E_m(x) = int_0^pi cos t exp(x cos t) sin^m t dt / J_m(x),

which are smooth on [0, pi] (for m >= 0) and are integrated with mpmath.quad (tanh-sinh) at 50 digits,
with the integrand scaled by its maximum and the interval split around its peak t*:

    log I_v(x)     = v log(x/2) - log Gamma(v + 1/2) - log(pi)/2 + log J_{2v}(x)     (DLMF 10.32.2, v > -1/2)
    log C_d(kappa) = -log|S^{d-2}| - log J_{d-2}(kappa),   |S^{n-1}| = 2 pi^{n/2} / Gamma(n/2)
                     (the vMF density integrated over the sphere with w = mu.x = cos t)
    A_d(kappa)     = I_{d/2}(kappa) / I_{d/2-1}(kappa) = E_{d-2}(kappa)                (mean of w under vMF)
    R_v(x)         = I_v(x) / I_{v-1}(x) = E_{2v-2}(x) for v >= 1, and
    R_v(x)         = 1 / (2v/x + R_{v+1}(x)) for 1/2 <= v < 1                           (DLMF 10.29.1).

Run ``python tests/reference/special_reference.py`` to regenerate the table (about 8 minutes on one core), or
``python tests/reference/special_reference.py --check`` to cross-check the integrals against mpmath.besseli where
the latter converges.

Every input point is rounded to float32 before its reference is computed, so one reference value
serves both the float64 and the float32 accuracy tests (the float32 "true" value is the value at the
float32-rounded input, which is then exactly the float64 input).
"""

from __future__ import annotations

import json
import math
import os
import sys

import mpmath
import numpy as np

DPS = 50
TABLE_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "special_reference.json")

GRID_DIMS = [2, 3, 4, 5, 10, 16, 50, 100, 128, 256, 1000, 5000, 10000, 100000]
GRID_KAPPAS = [0.0, 1e-10, 1e-6, 1e-3, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e7]
SEED = 20240611


def f32(x: float) -> float:
    """x rounded to the nearest float32, as a Python float (exact)."""
    return float(np.float32(x))


# --------------------------------------------------------------------------------------------------
# The integrals
# --------------------------------------------------------------------------------------------------


def _peak(x, m):
    """t* in [0, pi] maximizing x cos t + m log sin t, and the curvature scale sigma there."""
    if m == 0:
        t = mpmath.mpf(0) if x > 0 else mpmath.pi / 2
    elif x == 0:
        t = mpmath.pi / 2
    else:
        # x sin^2 t = m cos t  ->  c = cos t* = 2x / (m + sqrt(m^2 + 4 x^2)) (no cancellation)
        c = 2 * x / (m + mpmath.sqrt(m * m + 4 * x * x))
        t = mpmath.acos(c)
    s = mpmath.sin(t)
    curv = x * mpmath.cos(t) + (m / (s * s) if m > 0 else 0)
    curv = max(curv, mpmath.mpf(1) / 10)
    return t, 1 / mpmath.sqrt(curv)


def _breakpoints(x, m):
    t, sigma = _peak(x, m)
    pts = {mpmath.mpf(0), +mpmath.pi, t}
    for j in (0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256):
        for sgn in (-1, 1):
            p = t + sgn * j * sigma
            if 0 < p < mpmath.pi:
                pts.add(p)
    return sorted(pts), t


def _log_integrand(x, m, t):
    if m == 0:
        return x * mpmath.cos(t)
    s = mpmath.sin(t)
    if s == 0:
        return mpmath.ninf
    return x * mpmath.cos(t) + m * mpmath.log(s)


def log_j_and_mean(x, m, mean=True):
    """(log J_m(x), E_m(x)) at mpmath precision DPS (computed with 15 guard digits)."""
    with mpmath.workdps(DPS + 15):
        x = mpmath.mpf(x)
        m = mpmath.mpf(m)
        pts, t = _breakpoints(x, m)
        log_peak = _log_integrand(x, m, t)
        c_peak = mpmath.cos(t)

        def g(u):
            lf = _log_integrand(x, m, u)
            return mpmath.exp(lf - log_peak) if lf != mpmath.ninf else mpmath.mpf(0)

        j, err = mpmath.quad(g, pts, error=True)
        _check_quadrature(err, j)
        out_log_j = log_peak + mpmath.log(j)
        if not mean:
            return +out_log_j, None
        # E[cos t] = cos t* + E[cos t - cos t*]; cos t - cos t* = -2 sin((t-t*)/2) sin((t+t*)/2)
        num, err = mpmath.quad(lambda u: -2 * mpmath.sin((u - t) / 2) * mpmath.sin((u + t) / 2) * g(u), pts, error=True)
        _check_quadrature(err, j)  # absolute error in the mean, relative to J
        return +out_log_j, +(c_peak + num / j)


def _check_quadrature(err, scale):
    """mpmath.quad's error estimate (observed ~1e-65 relative) must leave DPS digits."""
    if not err <= mpmath.mpf(10) ** (-DPS - 3) * abs(scale):
        raise ArithmeticError(f"quadrature error estimate {mpmath.nstr(err, 3)} for a scale {mpmath.nstr(scale, 3)}")


def log_sphere_area(n):
    """log |S^{n-1}| = log(2 pi^{n/2} / Gamma(n/2)), the area of the unit sphere in R^n."""
    n = mpmath.mpf(n)
    return mpmath.log(2) + n / 2 * mpmath.log(mpmath.pi) - mpmath.loggamma(n / 2)


def ref_vmf(kappa, d):
    """(log C_d(kappa), A_d(kappa)) as mpf."""
    with mpmath.workdps(DPS + 15):
        kappa = mpmath.mpf(kappa)
        d = mpmath.mpf(d)
        if kappa == 0:
            return -log_sphere_area(d), mpmath.mpf(0)
        log_j, mean = log_j_and_mean(kappa, d - 2)
        return -log_sphere_area(d - 1) - log_j, mean


def ref_log_iv(v, x):
    """log I_v(x) as mpf (v >= 0, x >= 0)."""
    with mpmath.workdps(DPS + 15):
        v = mpmath.mpf(v)
        x = mpmath.mpf(x)
        if x == 0:
            return mpmath.mpf(0) if v == 0 else mpmath.ninf
        log_j, _ = log_j_and_mean(x, 2 * v, mean=False)
        return v * mpmath.log(x / 2) - mpmath.loggamma(v + mpmath.mpf(1) / 2) - mpmath.log(mpmath.pi) / 2 + log_j


def ref_ratio(v, x):
    """R_v(x) = I_v(x) / I_{v-1}(x) as mpf (v >= 1/2, x >= 0)."""
    with mpmath.workdps(DPS + 15):
        v = mpmath.mpf(v)
        x = mpmath.mpf(x)
        if x == 0:
            return mpmath.mpf(0)
        if v < 1:
            return 1 / (2 * v / x + ref_ratio(v + 1, x))
        _, mean = log_j_and_mean(x, 2 * v - 2)
        return mean


# --------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------


def _loguniform(rng, lo, hi, n):
    return np.exp(rng.uniform(math.log(lo), math.log(hi), n))


def sample_points():
    """The fixed grid and the seeded random points, all float32-representable.

    Returns a dict kind -> list of (a, b, region) with kind in
    vmf (kappa, d), log_iv (v, x), ratio (v, x).
    """
    rng = np.random.default_rng(SEED)
    vmf = [(f32(k), d, "grid") for d in GRID_DIMS for k in GRID_KAPPAS]
    n_rand = 200
    ds = np.round(_loguniform(rng, 2, 100000, n_rand)).astype(int)
    ks = _loguniform(rng, 1e-10, 1e7, n_rand)
    ks[rng.uniform(size=n_rand) < 0.05] = 0.0
    vmf += [(f32(k), int(d), "random") for k, d in zip(ks, ds)]

    # log I_v at non-half-integer orders (v = d/2 - 1 is covered by vmf through log C_d).
    n_iv = 120
    vs = _loguniform(rng, 1e-3, 5e4, n_iv)
    vs[: n_iv // 6] = rng.uniform(0, 3, n_iv // 6)  # small orders, where the code uses other branches
    xs = _loguniform(rng, 1e-10, 1e7, n_iv)
    log_iv = [(f32(v), f32(x), "random") for v, x in zip(vs, xs)]
    grid_v = [0.0, 0.25, 0.5, 1.0, 2.7, 7.0, 19.3, 20.0, 33.3, 99.9, 1000.5, 49999.75]
    grid_x = [1e-8, 0.01, 1.0, 5.0, 30.0, 300.0, 1e5, 1e7]
    log_iv += [(f32(v), f32(x), "grid") for v in grid_v for x in grid_x]

    # ratio I_v / I_{v-1} for general v >= 1/2
    n_r = 100
    vs = 0.5 + _loguniform(rng, 1e-3, 5e4, n_r)
    vs[: n_r // 5] = rng.uniform(0.5, 3, n_r // 5)
    xs = _loguniform(rng, 1e-10, 1e7, n_r)
    ratio = [(f32(v), f32(x), "random") for v, x in zip(vs, xs)]
    grid_rv = [0.5, 0.75, 1.0, 1.5, 3.2, 8.0, 21.0, 64.5, 500.25]
    ratio += [(f32(v), f32(x), "grid") for v in grid_rv for x in grid_x]

    # Stratified points for the bands that log-uniform sampling rarely hits (the evaluation regions of
    # csrc/math/bessel.h): orders 8.5..31.5 with 48 - 3mu/4 < x < 0.64 mu^2 (region R, the recurrence
    # from order 32), large orders near x = 0.6627 v (where eta vanishes in Olver's expansion), and
    # large orders at x ~ v (region D).
    n_band = 30
    mus = rng.uniform(8.5, 31.5, n_band)
    lo, hi = 48.0 - 0.75 * mus, 0.64 * mus * mus
    xs = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    vmf += [(f32(x), int(round(2 * m + 2)), "band R") for m, x in zip(mus, xs)]
    mus = rng.uniform(8.5, 31.5, n_band)
    xs = np.exp(rng.uniform(np.log(48.0 - 0.75 * mus), np.log(0.64 * mus * mus)))
    log_iv += [(f32(m), f32(x), "band R") for m, x in zip(mus, xs)]
    mus = rng.uniform(8.5, 31.5, n_band)
    xs = np.exp(rng.uniform(np.log(48.0 - 0.75 * mus), np.log(0.64 * mus * mus)))
    ratio += [(f32(m + 1), f32(x), "band R") for m, x in zip(mus, xs)]
    vs = _loguniform(rng, 32, 5e4, 20)
    xs = vs * 0.6627434193491816 * (1 + rng.uniform(-0.2, 0.2, 20))
    log_iv += [(f32(v), f32(x), "band eta") for v, x in zip(vs, xs)]
    vs = _loguniform(rng, 33, 5e4, 20)
    xs = vs * _loguniform(rng, 0.01, 100, 20)
    ratio += [(f32(v), f32(x), "band D") for v, x in zip(vs, xs)]
    return {"vmf": vmf, "log_iv": log_iv, "ratio": ratio}


def _s(x) -> str:
    if x == mpmath.ninf:
        return "-inf"
    return mpmath.nstr(x, 45, min_fixed=-1, max_fixed=-1)


def build_table(verbose=True):
    pts = sample_points()
    out = {"dps": DPS, "seed": SEED, "vmf": [], "log_iv": [], "ratio": []}
    n_total = sum(len(v) for v in pts.values())
    done = 0
    for kappa, d, region in pts["vmf"]:
        lc, a = ref_vmf(kappa, d)
        out["vmf"].append({"kappa": kappa, "d": d, "region": region, "log_c": _s(lc), "a": _s(a)})
        done += 1
    if verbose:
        print(f"vmf: {done}/{n_total}", file=sys.stderr)
    for v, x, region in pts["log_iv"]:
        out["log_iv"].append({"v": v, "x": x, "region": region, "log_iv": _s(ref_log_iv(v, x))})
        done += 1
    if verbose:
        print(f"log_iv: {done}/{n_total}", file=sys.stderr)
    for v, x, region in pts["ratio"]:
        out["ratio"].append({"v": v, "x": x, "region": region, "ratio": _s(ref_ratio(v, x))})
        done += 1
    if verbose:
        print(f"ratio: {done}/{n_total}", file=sys.stderr)
    return out


def cross_check(verbose=True):
    """Compare the integral references with mpmath.besseli where the latter converges. Returns the
    worst relative differences (log I, ratio, log C_d)."""
    worst = [0.0, 0.0, 0.0]
    with mpmath.workdps(DPS + 15):
        for v in ["0", "0.5", "1", "2.7", "7", "19.3", "50", "120.5"]:
            for x in ["1e-8", "0.01", "1", "5", "30", "300", "3000"]:
                v_, x_ = mpmath.mpf(v), mpmath.mpf(x)
                direct = mpmath.log(mpmath.besseli(v_, x_))
                ours = ref_log_iv(v_, x_)
                worst[0] = max(worst[0], float(abs(ours - direct) / max(1, abs(direct))))
                if v_ >= mpmath.mpf("0.5"):
                    direct_r = mpmath.besseli(v_, x_) / mpmath.besseli(v_ - 1, x_)
                    worst[1] = max(worst[1], float(abs(ref_ratio(v_, x_) - direct_r) / direct_r))
                d = 2 * v_ + 2
                lc, a = ref_vmf(x_, d)
                direct_lc = (d / 2 - 1) * mpmath.log(x_) - d / 2 * mpmath.log(2 * mpmath.pi) - direct
                worst[2] = max(worst[2], float(abs(lc - direct_lc) / max(1, abs(direct_lc))))
                direct_a = mpmath.besseli(d / 2, x_) / mpmath.besseli(d / 2 - 1, x_)
                worst[1] = max(worst[1], float(abs(a - direct_a) / direct_a))
    if verbose:
        print("cross-check vs mpmath.besseli, worst rel. diff (log I, ratio/A, log C):", worst)
    return worst


if __name__ == "__main__":
    if "--check" in sys.argv:
        w = cross_check()
        assert max(w) < 1e-40, w
        sys.exit(0)
    table = build_table()
    os.makedirs(os.path.dirname(TABLE_PATH), exist_ok=True)
    with open(TABLE_PATH, "w") as fh:
        json.dump(table, fh, indent=0)
        fh.write("\n")
    print(f"wrote {TABLE_PATH}", file=sys.stderr)
