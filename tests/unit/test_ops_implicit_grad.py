"""dw/dkappa of the vMF sampler (implicit reparameterization, csrc/math/implicit_grad.h) through the op
``torch.ops.hvae_ext._vmf_w_dkappa(one_minus_w, kappa, dim, mean_resultant)``.

* Against 40-digit mpmath references (tests/data/implicit_grad_reference.json, written by
  tests/reference/implicit_grad_reference.py): 780 points, d in {2, ..., 1e6} x kappa in {1e-12, ..., 1e12} x
  quantiles {1e-6, 0.01, 0.5, 0.99, 1 - 1e-6} of the law of w, relative error <= 1e-9 (measured: ~5e-12),
  with the exact A and with the library's A = vmf_mean_resultant(kappa, d) as the sampler passes it.
* Limits: kappa = 0, w = +-1, kappa = inf, large kappa; NaN propagation; finite and >= 0 everywhere,
  also for an inaccurate or NaN A and for kappa far beyond 1e12.
* Unbiasedness: E[dw/dkappa] = dA/dkappa = 1 - A^2 - (d-1) A / kappa, with w drawn by inverse CDF.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch

import hvae_ext  # noqa: F401  (registers torch.ops.hvae_ext)
from hvae_ext.testing import DEVICES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLE_PATH = os.path.join(ROOT, "tests", "data", "implicit_grad_reference.json")
RTOL = 1e-9


def _evaluate(omw, kappa, dim, a, device="cpu"):
    """The op, elementwise in float64 (inputs broadcast; dim as int64)."""
    f64 = dict(dtype=torch.float64, device=device)
    out = torch.ops.hvae_ext._vmf_w_dkappa(
        torch.as_tensor(np.asarray(omw, dtype=np.float64), **f64),
        torch.as_tensor(np.asarray(kappa, dtype=np.float64), **f64),
        # np.array copies: dim may be a read-only broadcast view, which torch.as_tensor warns about
        torch.as_tensor(np.array(dim, dtype=np.int64), dtype=torch.int64, device=device),
        torch.as_tensor(np.asarray(a, dtype=np.float64), **f64),
    )
    return np.atleast_1d(out.cpu().numpy())


def _library_a(kappa, dim):
    return (
        torch.ops.hvae_ext.vmf_mean_resultant(
            torch.tensor(np.asarray(kappa, dtype=np.float64)), torch.tensor(np.asarray(dim, dtype=np.int64))
        )
        .double()
        .numpy()
    )


def _table():
    with open(TABLE_PATH) as fh:
        pts = json.load(fh)["points"]
    cols = {k: np.array([p[k] for p in pts]) for k in ("d", "kappa", "q", "omw", "A")}
    cols["ref"] = np.array([float(p["dwdk_str"]) for p in pts])
    return cols


TABLE = _table()


def _report(err, label):
    i = int(np.nanargmax(err))
    t = TABLE
    return f"{label}: worst rel err {err[i]:.2e} at d={t['d'][i]:g} kappa={t['kappa'][i]:g} q={t['q'][i]:g} omw={t['omw'][i]!r}"


# --------------------------------------------------------------------------------------------------
# mpmath references
# --------------------------------------------------------------------------------------------------


def check_reference(evaluate=_evaluate, device="cpu", library_a=False):
    t = TABLE
    a = _library_a(t["kappa"], t["d"]) if library_a else t["A"]
    got = evaluate(t["omw"], t["kappa"], t["d"], a, device=device)
    assert np.all(np.isfinite(got)), "non-finite dw/dkappa"
    err = np.abs(got / t["ref"] - 1.0)
    assert err.max() <= RTOL, _report(err, "library A" if library_a else "exact A")
    return err


@pytest.mark.parametrize("device", DEVICES)
def test_reference_exact_a(device):
    check_reference(device=device)


def test_reference_library_a():
    """As the sampler calls it: A from the library's Bessel ratio (1 - A is used only where >= 1e-3)."""
    check_reference(library_a=True)


def test_reference_covers_grid():
    t = TABLE
    assert len(t["ref"]) >= 700
    assert set(np.unique(t["d"])) >= {2, 3, 4, 5, 10, 16, 50, 100, 256, 1000, 10000, 100000, 1000000}
    assert t["kappa"].min() <= 1e-12 and t["kappa"].max() >= 1e12
    assert np.all(t["ref"] > 0)


# --------------------------------------------------------------------------------------------------
# float32: the rule of the sampler's float32 backward (csrc/math/implicit_grad_lanes.h)
# --------------------------------------------------------------------------------------------------
RTOL_FLOAT32 = 1e-5


def _evaluate_f32(omw, kappa, dim, device="cpu"):
    """dw/dkappa as the sampler's float32 backward computes it (omw and kappa in float32, A_d(kappa) by the
    library in float64), read off vmf_sample_backward: with loc = e1 and grad_z = e1 the reflection is
    diag(1, -1, ..., -1) and dL/dw = 1, so grad_kappa is dw/dkappa itself. One parameter row per point."""
    omw = np.asarray(omw, dtype=np.float64)
    out = np.empty(omw.shape)
    dims = np.broadcast_to(np.asarray(dim), omw.shape)
    kappas = np.broadcast_to(np.asarray(kappa, dtype=np.float64), omw.shape)
    for d in np.unique(dims):
        sel = dims == d
        n, d = int(sel.sum()), int(d)
        f32 = dict(dtype=torch.float32, device=device)
        loc = torch.zeros(n, d, **f32)
        loc[:, 0] = 1.0
        om = torch.as_tensor(omw[sel]).to(**f32)
        z = torch.zeros(n, d, **f32)  # any z with a tangent part; w itself is read from one_minus_w
        z[:, 0] = 1.0 - om
        z[:, 1] = 1.0
        gk = torch.ops.hvae_ext.vmf_sample_backward(loc.clone(), z, om, loc, torch.as_tensor(kappas[sel]).to(**f32))[1]
        out[sel] = gk.cpu().double().numpy()
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("num_samples", [1, 3])
def test_backward_float64_is_the_op(device, num_samples):
    """The sampler's float64 backward, read off as in _evaluate_f32, is the op _vmf_w_dkappa with the library's
    A = vmf_mean_resultant(kappa, d) bit for bit: the backward's A (computed for many rows at once on the CPU,
    csrc/cpu/mean_resultant_rows.h) is the scalar function's, in every region of csrc/math/bessel.h, for one
    sample per parameter row (A in the tile loop) and several (A per parameter row beforehand)."""
    rng = np.random.default_rng(3)
    for d in (2, 3, 4, 16, 40, 64, 67, 300):
        kappa = np.concatenate(
            [[0.0, 1e-300, 1e-12, 13.0, 42.0, 48.0, 400.0, 1e7, math.inf], 10.0 ** rng.uniform(-4, 5, 200)]
        )
        f64 = dict(dtype=torch.float64, device=device)
        n = kappa.size
        loc = torch.zeros(n, d, **f64)
        loc[:, 0] = 1.0
        scale = np.minimum(1.0, (d - 1) / (2.0 * np.maximum(kappa, 1e-300)))
        omw = np.clip(scale * 10.0 ** rng.uniform(-2, 0.3, n), 1e-12, 1.999)
        om = torch.as_tensor(np.tile(omw, num_samples), **f64)
        z = torch.zeros(n * num_samples, d, **f64)
        z[:, 0] = 1.0 - om
        z[:, 1] = 1.0
        g = torch.zeros_like(z)
        g[:, 0] = 1.0
        gk = torch.ops.hvae_ext.vmf_sample_backward(g, z, om, loc, torch.as_tensor(kappa, **f64))[1].cpu().numpy()
        want = num_samples * _evaluate(omw, kappa, d, _library_a(kappa, d), device=device)
        np.testing.assert_array_equal(gk, want, err_msg=f"d={d}")


def _f32(x):
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(np.float64)


def _evaluate_rule(omw, kappa, dim, device="cpu"):
    """The float32 rule one sample at a time, as the CUDA backward runs it for float32 samples: the op
    _vmf_w_dkappa_float32_rule (float64 in and out), with the library's float64 A."""
    f64 = dict(dtype=torch.float64, device=device)
    dim = np.broadcast_to(np.asarray(dim), np.shape(omw))
    out = torch.ops.hvae_ext._vmf_w_dkappa_float32_rule(
        torch.as_tensor(np.asarray(omw, dtype=np.float64), **f64),
        torch.as_tensor(np.asarray(kappa, dtype=np.float64), **f64),
        torch.as_tensor(np.array(dim, dtype=np.int64), device=device),
        torch.as_tensor(_library_a(kappa, dim), **f64),
    )
    return out.cpu().numpy()


def check_float32_rule(omw, kappa, dim, device="cpu", evaluate=None):
    """The float32 result against the float64 rule at the same (float32-rounded) inputs (the float64 rule agrees
    with 40-digit mpmath to ~5e-12 on the reference table, above)."""
    omw, kappa = _f32(omw), _f32(kappa)
    dim = np.broadcast_to(np.asarray(dim), omw.shape)
    ref = _evaluate(omw, kappa, dim, _library_a(kappa, dim))
    got = (evaluate or _evaluate_f32)(omw, kappa, dim, device=device)
    keep = ref > 1e-30  # below float32's normal range the comparison is the rounding of the output itself
    err = np.abs(got[keep] / ref[keep] - 1.0)
    i = int(np.argmax(err))
    assert err[i] <= RTOL_FLOAT32, (
        f"float32 rule: rel err {err[i]:.2e} at d={dim[keep][i]} kappa={kappa[keep][i]!r} omw={omw[keep][i]!r}"
    )
    return err.max()


@pytest.mark.parametrize("device", DEVICES)
def test_float32_reference_points(device):
    """The 780 mpmath points (rounded to float32) through the float32 rule."""
    t = TABLE
    ok = (_f32(t["omw"]) > 0) & (_f32(t["omw"]) < 2) & (_f32(t["kappa"]) > 0)
    check_float32_rule(t["omw"][ok], t["kappa"][ok], t["d"][ok], device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_float32_dense_grid(device):
    """A dense random grid where the vectorized rule runs (d >= 4, the bulk of the law of w) and beyond it."""
    rng = np.random.default_rng(7)
    n = 40000
    d = rng.choice([2, 3, 4, 5, 8, 16, 33, 64, 66, 67, 100, 256, 1000, 10**4], n)
    kappa = 10.0 ** rng.uniform(-3, 6, n)
    scale = np.minimum(1.0, (d - 1) / (2.0 * kappa))  # the bulk of 1 - w
    omw = np.clip(scale * 10.0 ** rng.uniform(-3, 0.6, n), 1e-7, 2.0 - 1e-3)
    check_float32_rule(omw, kappa, d, device=device)


@pytest.mark.parametrize("device", DEVICES)
def test_float32_rule_one_sample(device):
    """The float32 rule run one sample at a time (math/implicit_grad_single.h: the CUDA backward's float32 path;
    the CPU runs the same pieces across lanes) on the mpmath points and the dense grid, against the float64 rule."""
    t = TABLE
    ok = (_f32(t["omw"]) > 0) & (_f32(t["omw"]) < 2) & (_f32(t["kappa"]) > 0)
    check_float32_rule(t["omw"][ok], t["kappa"][ok], t["d"][ok], device=device, evaluate=_evaluate_rule)
    rng = np.random.default_rng(11)
    n = 20000
    d = rng.choice([4, 5, 8, 16, 33, 64, 66, 67, 100, 1000], n)
    kappa = 10.0 ** rng.uniform(-3, 6, n)
    omw = np.clip(np.minimum(1.0, (d - 1) / (2.0 * kappa)) * 10.0 ** rng.uniform(-3, 0.6, n), 1e-7, 2.0 - 1e-3)
    check_float32_rule(omw, kappa, d, device=device, evaluate=_evaluate_rule)


def test_float32_rule_one_sample_is_the_lanes():
    """On the CPU, the rule one sample at a time and the rule across lanes (the float32 backward) agree to the
    float32 rounding of the backward's result: the same steps, up to fused multiply-adds."""
    rng = np.random.default_rng(5)
    n = 5000
    d = rng.choice([4, 16, 64, 100], n)
    kappa = _f32(10.0 ** rng.uniform(-1, 4, n))
    omw = _f32(np.clip(np.minimum(1.0, (d - 1) / (2.0 * kappa)) * 10.0 ** rng.uniform(-2, 0.3, n), 1e-6, 1.99))
    one = _evaluate_rule(omw, kappa, d)
    lanes = _evaluate_f32(omw, kappa, d)
    np.testing.assert_allclose(lanes, one, rtol=2e-7, atol=0)


# --------------------------------------------------------------------------------------------------
# Limits, special values, robustness
# --------------------------------------------------------------------------------------------------


def check_limits(evaluate=_evaluate):
    omw = np.array([1e-300, 1e-9, 0.3, 1.0, 1.7, 2.0 - 1e-12])
    for d in (2, 3, 4, 16, 1000):
        # kappa = 0: w is Beta-distributed, dw/dkappa = (1 - w^2) / (d - 1); and continuity at kappa -> 0
        lim = omw * (2.0 - omw) / (d - 1.0)
        np.testing.assert_allclose(evaluate(omw, 0.0, d, 0.0), lim, rtol=1e-14)
        a_small = 1e-10 / d  # A_d(kappa) = kappa / d + O(kappa^3)
        np.testing.assert_allclose(evaluate(omw, 1e-10, d, a_small), lim, rtol=1e-8)
        # w = +-1 exactly, and kappa = inf: 0
        assert np.all(evaluate([0.0, 2.0], 5.0, d, 0.5) == 0.0)
        assert evaluate(0.5, math.inf, d, 1.0)[0] == 0.0
    # kappa -> inf at a plausible w = 1 - G / kappa: dw/dkappa -> (1 - w) / kappa
    for d in (2, 3, 5, 16, 100):
        for kappa in (1e10, 1e12):
            omw = np.array([0.1, 1.0, 3.0, 10.0]) * (d - 1) / (2.0 * kappa)
            np.testing.assert_allclose(evaluate(omw, kappa, d, 1.0) * kappa / omw, 1.0, rtol=1e-6)
    # NaN in, NaN out; invalid kappa or d: NaN
    assert np.isnan(evaluate(np.nan, 1.0, 5, 0.5)[0])
    assert np.isnan(evaluate(0.5, np.nan, 5, 0.5)[0])
    assert np.isnan(evaluate(0.5, -1.0, 5, 0.5)[0])
    assert np.isnan(evaluate(0.5, 1.0, 1, 0.5)[0])


def test_limits():
    check_limits()


def check_finite_everywhere(evaluate=_evaluate, n=20000, seed=0):
    """Finite and >= 0 for any omw in [0, 2], kappa in [0, 1e300], d in [2, 1e6], and any A (NaN, wrong)."""
    rng = np.random.default_rng(seed)
    d = rng.choice([2, 3, 4, 5, 7, 16, 64, 65, 66, 67, 100, 1000, 10**4, 10**5, 10**6], n)
    kappa = 10.0 ** rng.uniform(-12, 300, n)
    kappa[: n // 3] = 10.0 ** rng.uniform(-12, 12, n // 3)
    omw = np.concatenate(
        [
            10.0 ** rng.uniform(-320, 0.3, n // 4),
            2.0 - 10.0 ** rng.uniform(-16, 0, n // 4),
            rng.uniform(0, 2, n - 2 * (n // 4)),
        ]
    )
    omw = np.clip(omw, 0.0, 2.0)
    a = _library_a(kappa, d)
    wrong = rng.uniform(size=n) < 0.3
    a[wrong] = rng.uniform(0, 1, wrong.sum())
    a[rng.uniform(size=n) < 0.1] = np.nan
    got = evaluate(omw, kappa, d, a)
    bad = ~(np.isfinite(got) & (got >= 0))
    assert not bad.any(), f"{bad.sum()} bad values, e.g. omw={omw[bad][0]!r} kappa={kappa[bad][0]!r} d={d[bad][0]}"


def test_finite_everywhere():
    check_finite_everywhere()


# --------------------------------------------------------------------------------------------------
# Unbiasedness of the implicit gradient: E[dw/dkappa] = dA/dkappa
# --------------------------------------------------------------------------------------------------


def _inverse_cdf_sampler(d, kappa, grid=400001):
    """omw = 1 - w as a function of u in (0, 1), by the cumulative trapezoid rule of the density of
    theta = acos(w), e^{kappa cos theta} sin^{d-2} theta, on a fine grid (numpy only)."""
    th = np.linspace(0.0, math.pi, grid)
    lg = kappa * np.cos(th)
    if d > 2:
        with np.errstate(divide="ignore"):
            lg = lg + (d - 2) * np.log(np.sin(th))
    dens = np.exp(lg - lg[np.isfinite(lg)].max())
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(th))])
    cdf /= cdf[-1]
    # P(W <= w) = P(Theta >= theta)
    return lambda u: 2.0 * np.sin(0.5 * np.interp(1.0 - u, cdf, th)) ** 2


def check_unbiased(evaluate=_evaluate, d=5, kappa=2.0, n=200000, seed=0):
    from scipy.special import ive

    a = float(ive(d / 2, kappa) / ive(d / 2 - 1, kappa))
    da = 1.0 - a * a - (d - 1) * a / kappa  # dA/dkappa; 0.147389 at d = 5, kappa = 2
    omw_of_u = _inverse_cdf_sampler(d, kappa)
    # Monte Carlo: w drawn by inverse CDF
    u = np.random.default_rng(seed).uniform(size=n)
    g = evaluate(omw_of_u(u), kappa, d, a)
    se = g.std() / math.sqrt(n)
    assert abs(g.mean() - da) <= 4.5 * se, (g.mean(), da, se)  # no floor: the bias must be below 4.5 standard errors
    # the same expectation by the midpoint rule in u (deterministic, much tighter)
    um = (np.arange(n) + 0.5) / n
    gm = evaluate(omw_of_u(um), kappa, d, a).mean()
    assert abs(gm / da - 1) <= 2e-4, (gm, da)
    return g.mean(), gm, da


@pytest.mark.parametrize("d,kappa", [(5, 2.0), (2, 0.7), (16, 10.0), (100, 40.0)])
def test_unbiased(d, kappa):
    check_unbiased(d=d, kappa=kappa)


if __name__ == "__main__":
    for lib in (False, True):
        e = check_reference(library_a=lib)
        print(_report(e, "library A" if lib else "exact A"))
    print("E[dw/dkappa], midpoint rule, dA/dkappa at d=5, kappa=2:", check_unbiased())
