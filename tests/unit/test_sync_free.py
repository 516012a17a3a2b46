"""No hidden host synchronisation on the training path.

A tensor built from a Python value on a CUDA device (``torch.tensor(dim, device=...)``) is a blocking
host-to-device copy, and ``.item()``/``bool(t)`` a device-to-host one: either synchronises the stream and
breaks CUDA-graph capture. Without a GPU the calls are recorded instead: a ``TorchFunctionMode`` records
the Python-level calls that build tensors from host data or read values back, and a ``TorchDispatchMode``
records the ATen ops that read a scalar (``_local_scalar_dense``) or copy across devices. The code runs on
the CPU and on the ``meta`` device (where a host value would need a cpu -> meta copy). On a GPU,
``scripts/gpu_check.py`` runs the same calls and a whole training step under
``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import pytest
import torch
from torch.distributions import kl_divergence
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import hvae_ext
from hvae_ext import HypersphericalUniform, VonMisesFisher, special

# Python-level calls that make a tensor from host data, or read device values back to the host.
_HOST_FUNCS = {
    "tensor",
    "as_tensor",
    "scalar_tensor",
    "from_numpy",
    "asarray",
    "item",
    "tolist",
    "numpy",
    "__bool__",
    "__int__",
    "__float__",
    "__index__",
    "nonzero",
    "cpu",
}


class _HostRecorder(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name in _HOST_FUNCS:
            self.calls.append(name)
        if name in ("to", "copy_"):
            for a in list(args[1:]) + list(kwargs.values()):
                if isinstance(a, (torch.device, str)) or (isinstance(a, torch.Tensor) and name == "copy_"):
                    dev = a.device if isinstance(a, torch.Tensor) else torch.device(a) if _is_device(a) else None
                    src = args[0].device if name == "to" else a.device
                    dst = dev if name == "to" else args[0].device
                    if dev is not None and src != dst:
                        self.calls.append(f"{name}({src} -> {dst})")
        return func(*args, **kwargs)


def _is_device(a) -> bool:
    if isinstance(a, torch.device):
        return True
    try:
        torch.device(a)
        return True
    except (RuntimeError, TypeError):
        return False


class _OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func)
        if "_local_scalar_dense" in name or "lift_fresh" in name or "scalar_tensor" in name:
            self.calls.append(name)
        if func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
            src = args[1] if func is torch.ops.aten.copy_.default else args[0]
            dst = args[0].device if func is torch.ops.aten.copy_.default else kwargs.get("device", src.device)
            if isinstance(src, torch.Tensor) and dst is not None and torch.device(dst) != src.device:
                self.calls.append(f"{name}({src.device} -> {dst})")
        return func(*args, **kwargs)


def _record(fn):
    with _HostRecorder() as host, _OpRecorder() as op:
        out = fn()
    return out, host.calls + op.calls


def _params(device, dtype=torch.float32, b=5, d=7, requires_grad=True):
    g = torch.Generator().manual_seed(0)
    loc = torch.nn.functional.normalize(torch.randn(b, d, generator=g, dtype=dtype), dim=-1).to(device)
    kappa = (torch.rand(b, generator=g, dtype=dtype) * 50 + 0.1).to(device)
    return loc.requires_grad_(requires_grad), kappa.requires_grad_(requires_grad)


DEVICES = ["cpu", "meta"]


@pytest.mark.parametrize("device", DEVICES)
def test_distribution_training_path_builds_nothing_from_host_values(device):
    loc, kappa = _params(device)

    def run():
        q = VonMisesFisher(loc, kappa, validate_args=False)
        q2 = VonMisesFisher(loc.flip(0), kappa.flip(0), validate_args=False)
        p = HypersphericalUniform(loc.shape[-1], validate_args=False, device=device)
        z = q.rsample((2,))
        kl_u = kl_divergence(q, p)
        kl_v = kl_divergence(q, q2)
        lp = q.log_prob(z)
        ent = q.entropy()
        props = [q.mean, q.variance, q.covariance_matrix, q.mode, q.stddev]
        loss = z.sum() + kl_u.sum() + kl_v.sum() + lp.sum() + ent.sum() + sum(t.sum() for t in props)
        loss.backward()
        return loss

    loss, calls = _record(run)
    assert calls == [], f"host synchronisations on the training path: {calls}"
    assert loss.device.type == device


@pytest.mark.parametrize("device", DEVICES)
def test_concentration_given_as_a_python_number_is_filled_on_the_device(device):
    loc, _ = _params(device, requires_grad=False)
    q, calls = _record(lambda: VonMisesFisher(loc, 3.5, validate_args=False))
    assert calls == [] and q.concentration.device.type == device


@pytest.mark.parametrize("device", DEVICES)
def test_special_functions_build_nothing_from_host_values(device):
    _, kappa = _params(device)
    x = kappa.detach().clone().requires_grad_(True)

    def run():
        outs = [
            special.log_bessel_iv(2.5, x),  # a Python order: filled on the device
            special.bessel_iv_ratio(1.5, x),
            special.log_bessel_iv(torch.full_like(x, 0.5), x),
            special.vmf_log_normalizer(x, 7),  # an int dimension
            special.vmf_mean_resultant(x, 7),
            special.vmf_log_normalizer(x, torch.full(x.shape, 5, dtype=torch.int64, device=device)),
        ]
        total = sum(o.sum() for o in outs)
        total.backward()
        return total

    total, calls = _record(run)
    assert calls == [], f"host synchronisations in the special functions: {calls}"
    assert total.device.type == device


def test_the_recorder_sees_what_it_is_meant_to_see():
    """The recorder sees a tensor built from a host value on the device (torch.tensor(dim, device=...), the
    synchronising call the tests above guard against) and a value read back with .item()."""
    _, calls = _record(lambda: torch.tensor(7, dtype=torch.int64, device="meta"))
    assert "tensor" in calls
    _, calls = _record(lambda: torch.ones(2).sum().item())
    assert "item" in calls and any("_local_scalar_dense" in c for c in calls)
    _, calls = _record(lambda: torch.ones(2).to("meta"))
    assert any("cpu -> meta" in c for c in calls)


def test_sampler_checks_are_opt_in_and_name_the_row():
    """The CUDA kernel returns NaN for a row that exhausts the rejection bound (it cannot raise without a
    synchronisation); hvae_ext.set_sampler_checks(True) makes rsample raise naming the row."""
    from hvae_ext.distributions.von_mises_fisher import check_sample_rows

    omw = torch.tensor([0.1, 0.2, float("nan"), 0.3])
    kappa = torch.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"sample row 2 \(parameter row 0, kappa = 1.0, d = 5\)"):
        check_sample_rows(omw, kappa, 5)
    check_sample_rows(omw[:2], kappa, 5)  # no NaN: nothing
    loc, k = _params("cpu", requires_grad=False)
    q = VonMisesFisher(loc, k, validate_args=False)
    hvae_ext.set_sampler_checks(True)
    try:
        assert torch.isfinite(q.rsample((3,))).all()
    finally:
        hvae_ext.set_sampler_checks(False)
    # off (the default): no check, so no synchronisation
    _, calls = _record(lambda: q.rsample())
    assert calls == []
