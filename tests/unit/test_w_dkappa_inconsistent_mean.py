"""dw/dkappa (``torch.ops.hvae_ext._vmf_w_dkappa``) with a mean resultant length A that contradicts kappa.

The op takes A = A_d(kappa) from its caller and uses it only where the one-sided integral with A is consistent
with kappa (csrc/math/implicit_grad.h, vmf_w_dkappa). An A that puts w at or above A while the mode t* of the
density of w lies above w by more than 25 in log-density (e.g. A = 0.3 at kappa = 1e20, where A_d = 1 - 5e-20)
is not used: the A-free form is, so the result is the one for A = NaN (finite, and the same on the host and the
device). Before, (1 - t*^2) / (1 - w^2) rounded the consistency test's log1p argument to -1, the test passed, and
the one-sided integral held e^{kappa (t* - w)}: 6e307 on the host (its exp clamps), inf on the device.
"""

from __future__ import annotations

import math

import pytest
import torch

import hvae_ext  # noqa: F401  (loads the ops)

ops = torch.ops.hvae_ext


def _w_dkappa(omw, kappa, d, a):
    t = lambda x: torch.tensor([x], dtype=torch.float64)  # noqa: E731
    return ops._vmf_w_dkappa(t(omw), t(kappa), t(d), t(a)).item()


@pytest.mark.parametrize("d", [4, 5, 16, 100, 1000])
@pytest.mark.parametrize("kappa", [1e20, 1e30, 1e300])
@pytest.mark.parametrize("omw", [1e-3, 0.1, 0.5, 0.9])
def test_an_a_far_below_a_d_is_not_used(d, kappa, omw):
    a_free = _w_dkappa(omw, kappa, d, math.nan)
    assert 0.0 <= a_free < math.inf
    w = 1.0 - omw
    for a in [x for x in (0.0, 0.3, 0.6, 0.8) if x < w]:  # A < w: w above the mean, far below the mode
        got = _w_dkappa(omw, kappa, d, a)
        assert got == a_free, (a, got, a_free)


def test_kappa_1e20_gives_the_large_kappa_limit():
    """At kappa = 1e20 and w = 1/2, dw/dkappa ~ (1 - w)/kappa (the kappa -> inf limit at fixed w)."""
    for d in (4, 5, 16, 100):
        got = _w_dkappa(0.5, 1e20, d, 0.3)
        assert abs(got - 0.5 / 1e20) <= 1e-6 * 0.5 / 1e20, (d, got)


def test_a_consistent_a_is_still_used():
    """The one-sided form with the library's A_d where 1 - A >= 1e-3 (unchanged): it agrees with the A-free form."""
    for d, kappa in ((5, 10.0), (16, 100.0), (100, 1000.0)):
        a = torch.ops.hvae_ext.vmf_mean_resultant(torch.tensor([kappa], dtype=torch.float64), torch.tensor([d])).item()
        for omw in (1e-3, 0.1, 0.5, 1.0):
            one_sided, a_free = _w_dkappa(omw, kappa, d, a), _w_dkappa(omw, kappa, d, math.nan)
            assert abs(one_sided - a_free) <= 1e-9 * a_free, (d, kappa, omw, one_sided, a_free)
