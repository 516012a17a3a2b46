"""Argument validation with clear errors (a ValueError or TypeError that names the
argument and the rule) in VonMisesFisher, HypersphericalUniform, the KLs and the special-function
wrappers; TORCH_CHECKs (RuntimeError) in the ops; empty batches, non-contiguous and expanded inputs work
and give the same results as contiguous ones."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import kl_divergence

import hvae_ext
from hvae_ext import HypersphericalUniform, VonMisesFisher
from hvae_ext.testing import DEVICES, requires_cuda

ops = torch.ops.hvae_ext
NAN, INF = float("nan"), float("inf")


def unit(*shape, dtype=torch.float64, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, dtype=dtype, generator=g), dim=-1).to(device)


E1 = torch.tensor([1.0, 0.0, 0.0])


# --- VonMisesFisher: concentration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kappa, match",
    [
        (0.0, r"concentration must be > 0.*smallest value is 0\.0"),
        (-1.0, r"concentration must be > 0.*-1\.0"),
        (-0.0, r"concentration must be > 0"),
        (NAN, r"concentration must be finite and > 0, but it contains NaN"),
        (INF, r"concentration must be finite and > 0, but it contains inf"),
        (-INF, r"concentration must be finite and > 0, but it contains inf"),
    ],
)
@pytest.mark.parametrize("as_tensor", [False, True])
def test_concentration_rule(kappa, match, as_tensor):
    k = torch.tensor([2.0, kappa, 1.0]) if as_tensor else kappa
    loc = E1.expand(3, 3) if as_tensor else E1
    with pytest.raises(ValueError, match=match):
        VonMisesFisher(loc, k, validate_args=True)


def test_python_number_that_underflows_in_float32_is_named():
    """1e-310 > 0, but rounds to 0 in float32: the error says so (in float64 it just works)."""
    with pytest.raises(ValueError, match=r"1e-310 rounds to 0 in torch.float32.*1\.4013e-45"):
        VonMisesFisher(E1, 1e-310, validate_args=True)
    z = VonMisesFisher(E1.double(), 1e-310, validate_args=True).rsample((5,))
    assert torch.isfinite(z).all()


def test_no_validation_means_no_check():
    """validate_args=False skips the data-dependent checks (no host sync); out-of-domain values then give
    NaN, as in torch.special, never an exception or a hang."""
    z = VonMisesFisher(E1, -1.0, validate_args=False).rsample((4,))
    assert torch.isnan(z).all()
    z = VonMisesFisher(E1, NAN, validate_args=False).rsample((4,))
    assert torch.isnan(z).all()


def test_validation_follows_torch_global_default():
    old = torch.distributions.Distribution._validate_args
    try:
        torch.distributions.Distribution.set_default_validate_args(True)
        with pytest.raises(ValueError, match="concentration"):
            VonMisesFisher(E1, 0.0)
        torch.distributions.Distribution.set_default_validate_args(False)
        VonMisesFisher(E1, 0.0)  # no check
    finally:
        torch.distributions.Distribution.set_default_validate_args(old)


# --- VonMisesFisher: loc ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loc, match",
    [
        ([NAN, 0.0, 0.0], r"loc must be finite, but it contains NaN"),
        ([INF, 0.0, 0.0], r"loc must be finite, but it contains inf"),
        ([1.0, 1.0, 0.0], r"loc must have unit norm along its last axis.*norm 1\.414"),
        ([0.0, 0.0, 0.0], r"loc must have unit norm.*norm 0"),
        ([1.001, 0.0, 0.0], r"loc must have unit norm.*normalize\(loc, dim=-1\)"),
    ],
)
def test_loc_rule(loc, match):
    with pytest.raises(ValueError, match=match):
        VonMisesFisher(torch.tensor(loc), 1.0, validate_args=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("d", [2, 3, 100, 10_000])
def test_unit_norm_tolerance(dtype, d):
    """Tolerance 64 eps max(1, sqrt(d)): normalised vectors pass, a deviation of twice it fails."""
    tol = 64 * torch.finfo(dtype).eps * max(1.0, math.sqrt(d))
    loc = torch.nn.functional.normalize(torch.randn(16, d, dtype=dtype), dim=-1)
    VonMisesFisher(loc, 1.0, validate_args=True)
    with pytest.raises(ValueError, match="unit norm"):
        VonMisesFisher(loc * (1 + 2 * tol), 1.0, validate_args=True)


@pytest.mark.parametrize(
    "loc, match",
    [
        (torch.tensor(1.0), r"loc must have shape \(\.\.\., d\) with d >= 2, got a scalar"),
        (torch.tensor([1.0]), r"d >= 2, got d = 1"),
        (torch.zeros(4, 0), r"d >= 2, got d = 0"),
    ],
)
def test_dimension_rule(loc, match):
    with pytest.raises(ValueError, match=match):
        VonMisesFisher(loc, 1.0)


def test_shapes_that_do_not_broadcast():
    with pytest.raises(
        ValueError, match=r"concentration of shape \(5,\) does not broadcast with the batch shape \(2,\)"
    ):
        VonMisesFisher(unit(2, 3).float(), torch.ones(5))
    with pytest.raises(ValueError, match="does not broadcast"):
        VonMisesFisher(unit(2, 3).float(), torch.ones(3, 1))  # (..., 1) with the wrong batch
    # (..., 1) is the reference code's convention: accepted
    assert VonMisesFisher(unit(2, 3), torch.ones(2, 1, dtype=torch.float64)).batch_shape == (2,)


@pytest.mark.parametrize(
    "loc, kappa, exc, match",
    [
        # (float16 and bfloat16 are accepted: mixed precision, tests/unit/test_mixed_precision.py)
        (
            E1.long(),
            1.0,
            TypeError,
            r"loc must be a float32, float64, float16 or bfloat16 tensor, got dtype torch.int64",
        ),
        (E1.to(torch.complex64), 1.0, TypeError, r"loc must be a float32, float64, float16 or bfloat16 tensor"),
        (
            E1,
            torch.tensor(1),
            TypeError,
            r"concentration must be a float32, float64, float16 or bfloat16 tensor, got dtype torch.int64",
        ),
        (
            E1,
            torch.tensor(1.0, dtype=torch.float64),
            TypeError,
            r"concentration has dtype torch.float64 but loc has dtype torch.float32",
        ),
        ([1.0, 0.0], 1.0, TypeError, r"loc must be a tensor or a real number, got list"),
        (E1, [1.0], TypeError, r"concentration must be a tensor or a real number, got list"),
        (E1, True, TypeError, r"concentration must be a tensor or a real number, got bool"),
        (E1, "1", TypeError, r"concentration must be a tensor or a real number, got str"),
    ],
)
def test_dtype_rules(loc, kappa, exc, match):
    with pytest.raises(exc, match=match):
        VonMisesFisher(loc, kappa)


def test_python_numbers_take_loc_dtype():
    for dtype in (torch.float32, torch.float64):
        q = VonMisesFisher(E1.to(dtype), 2)  # an int is a real number too
        assert q.concentration.dtype == dtype and q.rsample().dtype == dtype


@requires_cuda
@pytest.mark.cuda
def test_devices_differ():
    with pytest.raises(ValueError, match=r"concentration is on cuda:0 but loc is on cpu"):
        VonMisesFisher(E1, torch.tensor(1.0, device="cuda"))
    q = VonMisesFisher(E1.cuda(), 1.0)
    with pytest.raises(ValueError, match="p is on cuda:0 but q is on cpu"):
        kl_divergence(q, VonMisesFisher(E1, 1.0))
    with pytest.raises(ValueError, match="value is on cpu but the distribution is on cuda"):
        VonMisesFisher(E1.cuda(), 1.0, validate_args=True).log_prob(E1)
    with pytest.raises(ValueError, match="generator is on cpu"):
        q.sample((2,), generator=torch.Generator())


# --- log_prob values --------------------------------------------------------------------------------------


def test_log_prob_value_rules():
    q = VonMisesFisher(E1, 1.0, validate_args=True)
    with pytest.raises(TypeError, match=r"value must be a float32, float64, float16 or bfloat16 tensor.*torch.int64"):
        q.log_prob(torch.tensor([1, 0, 0]))
    with pytest.raises(TypeError, match=r"value must be a float32, float64, float16 or bfloat16 tensor.*list"):
        q.log_prob([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="right-most size of value must match event_shape"):
        q.log_prob(torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="support"):
        q.log_prob(torch.tensor([2.0, 0.0, 0.0]))
    u = HypersphericalUniform(3, validate_args=True)
    with pytest.raises(TypeError, match="value must be a float32, float64, float16 or bfloat16 tensor"):
        u.log_prob(torch.tensor([1, 0, 0]))
    with pytest.raises(ValueError, match="support"):
        u.log_prob(torch.tensor([2.0, 0.0, 0.0]))


# --- HypersphericalUniform and KL -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(dim=1), ValueError, r"dim must be >= 2 .*got 1"),
        (dict(dim=0), ValueError, r"dim must be >= 2"),
        (dict(dim=-3), ValueError, r"dim must be >= 2"),
        (dict(dim=3.0), TypeError, r"dim must be an int .*got float"),
        (dict(dim=True), TypeError, r"dim must be an int .*got bool"),
        (dict(dim=torch.tensor(3)), TypeError, r"dim must be an int .*got Tensor"),
        (
            dict(dim=3, dtype=torch.complex64),
            TypeError,
            r"dtype must be torch.float32 or torch.float64.*got torch.complex64",
        ),
        (dict(dim=3, dtype=torch.int64), TypeError, r"dtype must be torch.float32 or torch.float64"),
    ],
)
def test_uniform_rules(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        HypersphericalUniform(**kwargs)


def test_kl_rules():
    with pytest.raises(
        ValueError, match=r"KL\(VonMisesFisher \|\| HypersphericalUniform\): the dimensions differ \(d = 3 and d = 4\)"
    ):
        kl_divergence(VonMisesFisher(E1, 1.0), HypersphericalUniform(4))
    with pytest.raises(ValueError, match=r"KL\(VonMisesFisher \|\| VonMisesFisher\): the dimensions differ"):
        kl_divergence(VonMisesFisher(E1, 1.0), VonMisesFisher(torch.tensor([1.0, 0.0]), 1.0))
    with pytest.raises(ValueError, match=r"batch shapes \(2,\) of p and \(3,\) of q do not broadcast"):
        kl_divergence(VonMisesFisher(unit(2, 3), 1.0), VonMisesFisher(unit(3, 3), 1.0))
    # broadcastable batches and mixed float dtypes are fine (torch promotion)
    kl = kl_divergence(VonMisesFisher(unit(2, 1, 3), 1.0), VonMisesFisher(unit(3, 3).float(), 2.0))
    assert kl.shape == (2, 3) and torch.isfinite(kl).all() and (kl >= -1e-12).all()


# --- special-function wrappers (torch.special conventions) ----------------------------------------------


def test_special_out_of_domain_is_nan_not_an_exception():
    sp = hvae_ext.special
    assert torch.isnan(sp.log_bessel_iv(-1.0, torch.tensor([1.0]))).all()
    assert torch.isnan(sp.log_bessel_iv(1.0, torch.tensor([-1.0]))).all()
    assert torch.isnan(sp.bessel_iv_ratio(1.0, torch.tensor([NAN]))).all()
    assert torch.isnan(sp.vmf_log_normalizer(torch.tensor([-1.0]), 3)).all()
    assert torch.isnan(sp.vmf_mean_resultant(torch.tensor([NAN]), 3)).all()
    assert torch.isnan(sp.vmf_log_normalizer(torch.tensor([1.0]), torch.tensor([1]))).all()  # d < 2


def test_special_wrong_type_of_dim_is_a_type_error():
    sp = hvae_ext.special
    for bad in (3.0, "3", None, torch.tensor(3.0)):
        with pytest.raises(TypeError, match="dim must be an int"):
            sp.vmf_log_normalizer(torch.tensor([1.0]), bad)
        with pytest.raises(TypeError, match="dim must be an int"):
            sp.vmf_mean_resultant(torch.tensor([1.0]), bad)


@pytest.mark.parametrize("name", ["vmf_log_normalizer", "vmf_mean_resultant", "vmf_entropy"])
@pytest.mark.parametrize("dim", [1, 0, -3])
def test_special_int_dim_below_two_is_a_value_error_naming_it(name, dim):
    """An int dim the function does not define (d < 2) is a ValueError naming the function, the argument and
    the rule; an integer *tensor* of dims is data and gives NaN there, as torch.special does."""
    fn = getattr(hvae_ext.special, name)
    with pytest.raises(ValueError, match=rf"{name}: dim must be >= 2 .*got dim = {dim}$"):
        fn(torch.tensor([1.0]), dim)
    assert torch.isnan(fn(torch.tensor([1.0]), torch.tensor([dim]))).all()
    assert torch.isfinite(fn(torch.tensor([1.0]), 2)).all()  # the smallest defined d


def test_special_kl_vmf_int_dim_below_two_is_a_value_error():
    with pytest.raises(ValueError, match=r"vmf_kl_vmf: dim must be >= 2 .*got dim = 1"):
        hvae_ext.special.vmf_kl_vmf(torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([0.0]), 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda sp: sp.vmf_log_normalizer(torch.tensor([1, 2]), 3),
        lambda sp: sp.vmf_mean_resultant(torch.tensor([1.0]).to(torch.complex64), 3),
        lambda sp: sp.log_bessel_iv(torch.tensor([1.0]), torch.tensor([1, 2])),
        lambda sp: sp.bessel_iv_ratio(torch.tensor([1.0]), torch.tensor([1.0]).to(torch.complex64)),
    ],
    ids=["int-kappa", "complex-kappa", "int-x", "complex-x"],
)
def test_special_wrong_dtype_is_rejected_with_the_rule(call):
    """Integer and complex tensors are rejected, naming the supported dtypes (float16/bfloat16 are accepted
    and computed in float32: tests/unit/test_mixed_precision.py). (A TypeError is the conventional
    exception; until hvae_ext/special.py checks dtypes in Python, the C++ TORCH_CHECK raises a RuntimeError.)"""
    with pytest.raises((TypeError, RuntimeError), match="float32 or float64"):
        call(hvae_ext.special)


# --- ops: TORCH_CHECKs ------------------------------------------------------------------------------------

S = torch.tensor([1], dtype=torch.int64)


@pytest.mark.parametrize(
    "args, match",
    [
        ((E1, torch.ones(1), S, 1), r"vmf_sample: loc must have shape \(B, d\)"),
        ((torch.ones(2, 1), torch.ones(2), S, 1), r"the dimension d = loc.size\(1\) must be >= 2, got 1"),
        ((torch.eye(3), torch.ones(2), S, 1), r"kappa must have shape \(B,\) = \(3,\), got \[2\]"),
        ((torch.eye(3), torch.ones(3, 1), S, 1), r"kappa must have shape \(B,\)"),
        ((torch.eye(3).long(), torch.ones(3), S, 1), r"loc must be float32 or float64, got Long"),
        ((torch.eye(3).half(), torch.ones(3).half(), S, 1), r"loc must be float32 or float64, got Half"),
        ((torch.eye(3), torch.ones(3).double(), S, 1), r"kappa dtype Double differs from loc dtype Float"),
        ((torch.eye(3), torch.ones(3), S.int(), 1), r"seed must be an int64 tensor with one element"),
        (
            (torch.eye(3), torch.ones(3), torch.ones(2, dtype=torch.int64), 1),
            r"seed must be an int64 tensor with one element",
        ),
        (
            (torch.eye(3), torch.ones(3), torch.ones(0, dtype=torch.int64), 1),
            r"seed must be an int64 tensor with one element",
        ),
        ((torch.eye(3), torch.ones(3), S, -1), r"num_samples must be >= 0, got -1"),
    ],
)
def test_op_vmf_sample_checks(args, match):
    with pytest.raises(RuntimeError, match=match):
        ops.vmf_sample(*args)


def test_op_vmf_sample_backward_checks():
    loc, k = torch.eye(3), torch.ones(3)
    z, omw = ops.vmf_sample(loc, k, S, 2)
    g = torch.ones_like(z)
    ops.vmf_sample_backward(g, z, omw, loc, k)  # valid
    bad = [
        ((g[:5], z[:5], omw[:5], loc, k), r"z must have shape \(S \* B, d\)"),
        ((g, z, omw[:3], loc, k), r"one_minus_w must have shape"),
        ((g, z, omw, torch.zeros(0, 3), torch.ones(0)), r"z must have shape"),
        ((g.reshape(-1), z, omw, loc, k), r"grad_z shape"),
        ((g.double(), z, omw, loc, k), r"dtypes differ"),
        ((g, z, omw, loc, k[:2]), r"kappa must have shape \(B,\)"),
        ((g, z, omw, loc[:, :1], k), r"loc must have shape \(B, d\), d >= 2"),
        ((g[:, :2], z[:, :2], omw, loc, k), r"z must have shape"),
    ]
    for args, match in bad:
        with pytest.raises(RuntimeError, match=match):
            ops.vmf_sample_backward(*args)


@requires_cuda
@pytest.mark.cuda
def test_op_device_checks():
    with pytest.raises(RuntimeError, match="kappa is on"):
        ops.vmf_sample(torch.eye(3).cuda(), torch.ones(3), S, 1)
    with pytest.raises(RuntimeError, match="seed is on"):
        ops.vmf_sample(torch.eye(3).cuda(), torch.ones(3).cuda(), S, 1)


# --- empty batches, non-contiguous and expanded inputs ---------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [(0,), (0, 4), (3, 0)])
def test_empty_batches_just_work(device, batch):
    loc = torch.zeros(*batch, 5, device=device, requires_grad=True)
    k = torch.ones(*batch, device=device, requires_grad=True)
    q = VonMisesFisher(loc, k, validate_args=True)
    z = q.rsample((3,))
    assert z.shape == (3, *batch, 5)
    (
        z.sum()
        + q.log_prob(z).sum()
        + q.entropy().sum()
        + kl_divergence(q, HypersphericalUniform(5, device=device)).sum()
    ).backward()
    assert loc.grad.shape == loc.shape and k.grad.shape == k.shape
    assert q.mean.shape == (*batch, 5) and q.variance.shape == (*batch, 5)
    assert kl_divergence(q, q).shape == batch
    assert VonMisesFisher(unit(5, device=device).float(), 1.0).rsample((0,)).shape == (0, 5)
    assert ops.vmf_sample(torch.zeros(0, 5, device=device), torch.ones(0, device=device), S.to(device), 4)[0].shape == (
        0,
        5,
    )


def _run(loc, kappa, seed=7, n=3):
    loc = loc.detach().requires_grad_(True)
    kappa = kappa.detach().requires_grad_(True)
    q = VonMisesFisher(loc, kappa, validate_args=True)
    z = q.rsample((n,), generator=torch.Generator(device=loc.device).manual_seed(seed))
    w = torch.linspace(-1, 1, loc.shape[-1], dtype=loc.dtype, device=loc.device)
    out = [
        z,
        q.log_prob(z),
        q.entropy(),
        kl_divergence(q, HypersphericalUniform(loc.shape[-1], dtype=loc.dtype, device=loc.device)),
    ]
    (z @ w).sum().backward()
    return [t.detach() for t in out] + [loc.grad, kappa.grad]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_non_contiguous_inputs_give_the_same_results(device, dtype):
    B, d = 6, 7
    loc_c = unit(B, d, dtype=dtype, seed=1, device=device)
    k_c = torch.logspace(-3, 4, B, dtype=dtype, device=device)
    ref = _run(loc_c, k_c)
    # transposed storage, strided (every other element), and a slice of a wider tensor
    loc_t = loc_c.t().contiguous().t()
    k_s = torch.stack([k_c, torch.zeros_like(k_c)], -1)[:, 0]
    wide = torch.zeros(B, 2 * d, dtype=dtype, device=device)
    wide[:, ::2] = loc_c
    for loc, k in ((loc_t, k_c), (loc_c, k_s), (wide[:, ::2], k_s)):
        assert not (loc.is_contiguous() and k.is_contiguous())
        got = _run(loc, k)
        for i, (a, b) in enumerate(zip(ref, got)):
            if i == 1:  # log_prob's dot product is torch's reduction, whose order follows the strides
                torch.testing.assert_close(a, b, rtol=8 * torch.finfo(dtype).eps, atol=0)
            else:  # the samples and the gradients (our kernels) are bitwise identical
                assert torch.equal(a, b), i


@pytest.mark.parametrize("device", DEVICES)
def test_expanded_inputs_give_the_same_results(device):
    """A stride-0 (expanded) loc/concentration gives exactly the samples and gradients of its
    materialised copy; the gradients accumulate into the unexpanded leaf."""
    d, B = 5, 4
    mu = unit(d, seed=3, device=device)
    k = torch.tensor(3.0, dtype=torch.float64, device=device)
    ref = _run(mu.expand(B, d).clone(), k.expand(B).clone())
    got = _run(mu.expand(B, d), k.expand(B))
    for a, b in zip(ref, got):
        assert torch.equal(a, b)
    # through the leaf itself: the gradient is the sum over the expanded rows
    mu_leaf = mu.clone().requires_grad_(True)
    k_leaf = k.clone().requires_grad_(True)
    q = VonMisesFisher(mu_leaf.expand(B, d), k_leaf.expand(B))
    z = q.rsample((3,), generator=torch.Generator(device=device).manual_seed(7))
    (z @ torch.linspace(-1, 1, d, dtype=torch.float64, device=device)).sum().backward()
    torch.testing.assert_close(mu_leaf.grad, ref[4].sum(0), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(k_leaf.grad, ref[5].sum(0), rtol=1e-12, atol=1e-12)
    # the op directly, with stride-0 inputs
    z1, w1 = ops.vmf_sample(mu.expand(B, d), k.expand(B), S.to(device), 2)
    z2, w2 = ops.vmf_sample(mu.expand(B, d).contiguous(), k.expand(B).contiguous(), S.to(device), 2)
    assert torch.equal(z1, z2) and torch.equal(w1, w2)
