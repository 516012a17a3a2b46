"""Property-based fuzzing with hypothesis.

Random batch shapes (including empty ones), dtypes, dimensions d, concentrations across the whole range
(smallest subnormal to 1e12, log-uniform, plus exact edge values), non-contiguous layouts and devices.
Every call either returns finite samples on the sphere with finite log_prob, entropy, KL (>= 0 up to
rounding) and finite gradients, or -- for invalid arguments -- raises a ValueError/TypeError naming the
argument.

The default run tries a few hundred examples (CI); ``pytest -m slow tests/unit/test_fuzz.py`` runs the large
one (HVAE_FUZZ_EXAMPLES, default 5000). The record of examples tried and failures found is in
experiments/results/reliability/fuzz.md.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.distributions import kl_divergence

from hvae_ext import HypersphericalUniform, VonMisesFisher
from hvae_ext.testing import DEVICE_NAMES as DEVICES  # a hypothesis strategy draws from plain names

KAPPA_MAX = 1e12  # the documented range; beyond it see test_extremes.py (known limitations)
CI_EXAMPLES = int(os.environ.get("HVAE_FUZZ_CI_EXAMPLES", 300))
SLOW_EXAMPLES = int(os.environ.get("HVAE_FUZZ_EXAMPLES", 5000))

TINY = {torch.float32: 1.401298464324817e-45, torch.float64: 5e-324}


@st.composite
def kappas(draw, dtype, n):
    """n concentrations: log-uniform from the smallest subnormal of the dtype to 1e12, mixed with edges."""
    lo = math.log10(TINY[dtype])
    edges = [TINY[dtype], 1e-310 if dtype == torch.float64 else 1e-40, 1e-12, 1e-6, 1.0, 10.0, 10.5, 1e6, KAPPA_MAX]
    one = st.one_of(st.sampled_from(edges), st.floats(lo, 12.0).map(lambda e: 10.0**e))
    vals = [draw(one) for _ in range(n)]
    t = torch.tensor(vals, dtype=torch.float64).to(dtype)
    return t.clamp(min=TINY[dtype], max=KAPPA_MAX)  # 10**e can round to 0 in float32


@st.composite
def cases(draw):
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    device = draw(st.sampled_from(DEVICES))
    d = draw(st.one_of(st.integers(2, 8), st.sampled_from([16, 33, 100, 513, 2000])))
    batch = tuple(draw(st.lists(st.integers(0, 4), max_size=2)))
    n = math.prod(batch)
    layout = draw(st.sampled_from(["contiguous", "transposed", "expanded", "kappa_trailing_1"]))
    sample_shape = tuple(draw(st.lists(st.integers(0, 3), max_size=1)))
    seed = draw(st.integers(0, 2**31 - 1))
    return dtype, device, d, batch, n, draw(kappas(dtype, max(n, 1))), layout, sample_shape, seed


def _make(dtype, device, d, batch, n, kappa, layout, seed):
    g = torch.Generator().manual_seed(seed)
    loc = torch.nn.functional.normalize(torch.randn(*batch, d, dtype=torch.float64, generator=g), dim=-1)
    loc = loc.to(dtype)
    kappa = kappa[:n].reshape(batch) if n else torch.ones(batch, dtype=dtype)
    if layout == "transposed" and len(batch) >= 1:
        loc = loc.transpose(-1, -2).contiguous().transpose(-1, -2)
    elif layout == "expanded" and len(batch) >= 1:
        loc = loc[..., :1, :].expand(*batch, d)
    elif layout == "kappa_trailing_1":
        kappa = kappa.unsqueeze(-1)
    return loc.to(device).requires_grad_(True), kappa.to(device).requires_grad_(True)


def check_case(dtype, device, d, batch, n, kappa, layout, sample_shape, seed):
    loc, k = _make(dtype, device, d, batch, n, kappa, layout, seed)
    q = VonMisesFisher(loc, k, validate_args=True)
    z = q.rsample(sample_shape, generator=torch.Generator(device=device).manual_seed(seed))
    assert z.shape == tuple(sample_shape) + tuple(batch) + (d,)
    assert z.dtype == dtype and z.device.type == device
    assert torch.isfinite(z).all(), "non-finite sample"
    if z.numel():
        tol = (2e-6 if dtype == torch.float32 else 4e-15) * max(1.0, math.sqrt(d))
        err = (torch.linalg.vector_norm(z.detach().double(), dim=-1) - 1).abs().max().item()
        assert err <= tol, f"sample off the sphere by {err}"
    lp = q.log_prob(z.detach())
    ent = q.entropy()
    kl = kl_divergence(q, HypersphericalUniform(d, dtype=dtype, device=device))
    for name, t in (("log_prob", lp), ("entropy", ent), ("kl", kl)):
        assert torch.isfinite(t).all(), f"non-finite {name}"
    if kl.numel():
        # KL >= 0; the kernel's absolute error grows like kappa * eps64 at huge kappa (docs/reliability.md)
        slack = 1e-6 + 1e-15 * q.concentration.detach().double()
        assert (kl.detach().double() >= -slack).all(), f"negative KL {kl.min().item()}"
    c = torch.linspace(-1, 1, d, dtype=dtype, device=device)
    # separate backward passes: a sum of several terms can overflow in float32 by itself
    for term in ((z * c).sum(), lp.sum(), kl.sum(), ent.sum()):
        loc.grad, k.grad = None, None
        if term.requires_grad:
            term.backward(retain_graph=True)
            for name, gr in (("loc", loc.grad), ("concentration", k.grad)):
                if gr is not None:
                    assert torch.isfinite(gr).all(), f"non-finite gradient of {name}"


@st.composite
def invalid_cases(draw):
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    d = draw(st.integers(2, 6))
    bad = draw(
        st.sampled_from(
            [
                "kappa_zero",
                "kappa_neg",
                "kappa_nan",
                "kappa_inf",
                "loc_nan",
                "loc_inf",
                "loc_scaled",
                "loc_int",
                "kappa_int",
                "d1",
                "broadcast",
                "dtype_mismatch",
            ]
        )
    )
    return dtype, d, bad, draw(st.floats(-1e30, -1e-30)), draw(st.floats(1.01, 1e6))


def check_invalid(dtype, d, bad, neg, scale):
    loc = torch.nn.functional.normalize(torch.randn(3, d, dtype=dtype), dim=-1)
    k = torch.ones(3, dtype=dtype)
    expect, word = ValueError, "concentration"
    if bad == "kappa_zero":
        k[1] = 0.0
    elif bad == "kappa_neg":
        k[1] = neg
    elif bad == "kappa_nan":
        k[2] = float("nan")
    elif bad == "kappa_inf":
        k[0] = float("inf")
    elif bad in ("loc_nan", "loc_inf"):
        loc[1, 0] = float("nan") if bad == "loc_nan" else float("-inf")
        word = "loc"
    elif bad == "loc_scaled":
        loc = loc * scale
        word = "unit norm"
    elif bad == "loc_int":  # (half precision is accepted: mixed precision)
        loc, expect, word = loc.long(), TypeError, "loc"
    elif bad == "kappa_int":
        k, expect = k.long(), TypeError
    elif bad == "d1":
        loc, word = loc[:, :1], "d >= 2"
    elif bad == "broadcast":
        k, word = torch.ones(4, dtype=dtype), "broadcast"
    elif bad == "dtype_mismatch":
        k, expect = k.to(torch.float64 if dtype == torch.float32 else torch.float32), TypeError
    with pytest.raises(expect, match=word):
        VonMisesFisher(loc, k, validate_args=True)


_CI = settings(
    max_examples=CI_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_SLOW = settings(
    max_examples=SLOW_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_CI
@given(cases())
def test_fuzz_valid_inputs(case):
    check_case(*case)


@_CI
@given(invalid_cases())
def test_fuzz_invalid_inputs_raise_clear_errors(case):
    check_invalid(*case)


@pytest.mark.slow
@_SLOW
@given(cases())
def test_fuzz_valid_inputs_large(case):
    check_case(*case)


@pytest.mark.slow
@_SLOW
@given(invalid_cases())
def test_fuzz_invalid_inputs_large(case):
    check_invalid(*case)
