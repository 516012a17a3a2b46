"""Registration glue for the compiled ops of ``torch.ops.hvae_ext``.

The C++ library (``hvae_ext._C``) defines the schemas and the CPU/CUDA kernels. Here, as in
pytorch/extension-cpp, we register from Python

* fake (meta) kernels, so the ops trace under ``torch.compile`` and pass ``torch.library.opcheck``;
* autograd formulas, whose backward passes call the hand-written backward kernels;
* for every op, float32 under ``torch.autocast``, and on a build without CUDA kernels a CUDA kernel that says
  how to rebuild.

Layout: the kernels' pieces come first (fake kernels, then setup_context and backward functions), and
``REGISTRATIONS`` at the end is the table with one line per op of the library: its fake kernel (``ELEMENTWISE``
for the ops of the table in csrc/ops_table.h, whose fake kernels are made from their registered schemas, or a
hand-written one), its setup_context and its backward. ``_register`` registers one line; it is the only place
that registers anything, and it runs once per line, so no op is registered twice (the test suite wraps torch's
registration functions during the import and checks that each op gets one fake kernel and at most one kernel per
dispatch key).

Names: an op whose name starts with an underscore is internal, as in aten (``aten::_softmax``): it is a piece
of another op's gradient (``_vmf_mean_resultant_second_derivative``), a fast path the library chooses by itself
(``_vmf_log_normalizer_and_grad``) or an instrument for the tests and benchmarks (``_vmf_w_dkappa``,
``_vmf_sample_proposals``), and may change without notice. ``<op>_backward`` is, as in aten
(``aten::tanh_backward``), the backward kernel of ``<op>``, called by its autograd formula. The other ops are
the public ones, wrapped by ``hvae_ext.special`` and the distributions.

Nothing here validates arguments: the public wrappers (``hvae_ext.special``) follow ``torch.special``
conventions and the distributions validate.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys
from collections.abc import Callable
from typing import NamedTuple

import torch


def _load_library() -> None:
    """Loads the compiled library, whose static initialisers register the ops with the dispatcher.

    Normally it is the extension module ``hvae_ext._C`` of the installed package. When Python runs from a
    source checkout (``python -m hvae_ext.demo`` in the repository root), the checkout's ``hvae_ext/``
    folder, which has no compiled library, shadows the installed package: then the installed package's
    library is loaded from ``sys.path`` instead.
    """
    try:
        from . import _C  # noqa: F401

        return
    except ImportError:
        pass
    here = os.path.realpath(os.path.dirname(__file__))
    for entry in sys.path:
        folder = os.path.realpath(os.path.join(entry or os.getcwd(), "hvae_ext"))
        if folder == here:
            continue
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = os.path.join(folder, "_C" + suffix)
            if os.path.isfile(candidate):
                torch.ops.load_library(candidate)
                return
    raise ImportError(
        "hvae_ext: the compiled extension (hvae_ext/_C) was not found. Build and install the package with "
        "`pip install --no-build-isolation .` (torch must be installed first)."
    )


_load_library()
ops = torch.ops.hvae_ext

OP_NAMES = sorted(
    name.split("::", 1)[1] for name in torch._C._dispatch_get_all_op_names() if name.startswith("hvae_ext::")
)

#: Whether the compiled library has CUDA kernels (a build with a CUDA compiler and a CUDA torch).
HAS_CUDA_KERNELS = torch._C._dispatch_has_kernel_for_dispatch_key("hvae_ext::vmf_sample", "CUDA")


def no_cuda_kernels_message(op: str) -> str:
    return (
        f"hvae_ext::{op} got a CUDA tensor, but this build of hvae_ext has no CUDA kernels: it was built "
        f"without a working CUDA compiler or with HVAE_WITH_CUDA=0 (torch.version.cuda is "
        f"{torch.version.cuda}). Rebuild with the CUDA toolkit of the same major version on PATH (or "
        f"CUDACXX=/path/to/nvcc): HVAE_WITH_CUDA=1 pip install --no-build-isolation --force-reinstall "
        f"--no-deps <hvae_ext source folder>; or move the tensors to the CPU."
    )


def _no_cuda_kernel(op: str):
    def kernel(*args, **kwargs):
        raise RuntimeError(no_cuda_kernels_message(op))

    return kernel


def _broadcast_fake(*tensors: torch.Tensor, promote: tuple[bool, ...]) -> torch.Tensor:
    shape = torch.broadcast_shapes(*(t.shape for t in tensors))
    dtype = None
    for t, p in zip(tensors, promote):
        if p:
            dtype = t.dtype if dtype is None else torch.promote_types(dtype, t.dtype)
    return tensors[0].new_empty(shape, dtype=dtype)


def _sum_to(grad: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reduce a broadcast gradient back to the shape of the operand it belongs to."""
    if grad.shape == like.shape:
        return grad
    lead = grad.dim() - like.dim()
    dims = list(range(lead)) + [i + lead for i, n in enumerate(like.shape) if n == 1 and grad.shape[i + lead] != 1]
    return grad.sum(dim=dims, keepdim=True).reshape(like.shape) if dims else grad.reshape(like.shape)


# --- fake kernels -----------------------------------------------------------------------------------


def _elementwise_fake(name: str):
    """The fake kernel of an elementwise op of the table in csrc/ops_table.h, read back from its registered
    schema: every operand broadcasts, every operand but the integer `dim` takes part in the dtype (the table's
    promote flags), and the outputs are one tensor or (value, derivative) of that shape."""
    schema = getattr(ops, name).default._schema
    promote = tuple(arg.name != "dim" for arg in schema.arguments)
    outputs = len(schema.returns)

    def fake(*args):
        out = _broadcast_fake(*args, promote=promote)
        return out if outputs == 1 else (out,) + tuple(torch.empty_like(out) for _ in range(outputs - 1))

    return fake


def _vmf_sample_fake(loc, kappa, seed, num_samples):
    torch._check(loc.dim() == 2)
    rows = num_samples * loc.shape[0]
    return loc.new_empty(rows, loc.shape[1]), loc.new_empty(rows)


def _vmf_sample_proposals_fake(loc, kappa, seed, num_samples):
    rows = num_samples * loc.shape[0]
    return loc.new_empty(rows, dtype=torch.float64), loc.new_empty(rows, dtype=torch.int32)


def _sampler_backward_fake(grad_z, z, saved, loc, kappa):
    """Both samplers' backward ops: (grad_loc, grad_kappa) from (grad_z, z, the forward's saved output, loc,
    kappa); contiguous, like the real kernels' outputs (empty_like would keep a non-contiguous loc's strides)."""
    return loc.new_empty(loc.shape), kappa.new_empty(kappa.shape)


# --- autograd -----------------------------------------------------------------------------------------
# Each backward is a hand-written kernel (an op of its own). The backward ops are themselves
# differentiable where a closed form is cheap, so gradgradcheck holds for the special functions.


def _setup_vx(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _log_bessel_iv_bwd(ctx, grad):
    v, x = ctx.saved_tensors
    gx = ops.log_bessel_iv_backward(grad, v, x) if ctx.needs_input_grad[1] else None
    if ctx.needs_input_grad[0]:
        raise NotImplementedError("log_bessel_iv: the derivative with respect to the order v is not implemented")
    return None, _sum_to(gx, x) if gx is not None else None


def _log_bessel_iv_backward_bwd(ctx, grad):
    g, v, x = ctx.saved_tensors
    # d/dx [g (R_{v+1} + v/x)] = g (R'_{v+1} - v / x^2), R'_n = 1 - R_n^2 - (2n - 1) R_n / x
    dgrad = ops.log_bessel_iv_backward(grad, v, x)
    dx = g * ops.bessel_iv_ratio_backward(grad, v + 1, x) - g * grad * v / (x * x)
    return _sum_to(dgrad, g), None, _sum_to(dx, x)


def _bessel_iv_ratio_bwd(ctx, grad):
    v, x = ctx.saved_tensors
    if ctx.needs_input_grad[0]:
        raise NotImplementedError("bessel_iv_ratio: the derivative with respect to the order v is not implemented")
    return None, _sum_to(ops.bessel_iv_ratio_backward(grad, v, x), x)


def _vmf_log_normalizer_bwd(ctx, grad):
    kappa, dim = ctx.saved_tensors
    return _sum_to(ops.vmf_log_normalizer_backward(grad, kappa, dim), kappa), None


def _vmf_log_normalizer_backward_bwd(ctx, grad):
    g, kappa, dim = ctx.saved_tensors
    # d/dkappa (-g A) = -g A';  d/dg (-g A) = -A
    dg = ops.vmf_log_normalizer_backward(grad, kappa, dim)
    dk = -g * ops.vmf_mean_resultant_backward(grad, kappa, dim)
    return _sum_to(dg, g), _sum_to(dk, kappa), None


def _vmf_mean_resultant_bwd(ctx, grad):
    kappa, dim = ctx.saved_tensors
    return _sum_to(ops.vmf_mean_resultant_backward(grad, kappa, dim), kappa), None


def _vmf_mean_resultant_backward_bwd(ctx, grad):
    g, kappa, dim = ctx.saved_tensors
    # d/dkappa [g A'] = g A'' (csrc/math/vmf.h: vmf_mean_resultant_second_derivative)
    a_second = ops._vmf_mean_resultant_second_derivative(kappa, dim)
    dg = ops.vmf_mean_resultant_backward(grad, kappa, dim)
    return _sum_to(dg, g), _sum_to(grad * g * a_second, kappa), None


# kappa = A_d^{-1}(r): dkappa/dr = 1 / A_d'(kappa), by a kernel that reuses the solved kappa (no second solve).


def _vmf_mean_resultant_inverse_setup(ctx, inputs, output):
    r, dim = inputs
    ctx.save_for_backward(r, dim, output)


def _vmf_mean_resultant_inverse_bwd(ctx, grad):
    r, dim, kappa = ctx.saved_tensors
    return _sum_to(ops.vmf_mean_resultant_inverse_backward(grad, kappa, r, dim), r), None


def _vmf_kl_uniform_bwd(ctx, grad):
    kappa, dim = ctx.saved_tensors
    return _sum_to(ops.vmf_kl_uniform_backward(grad, kappa, dim), kappa), None


def _vmf_kl_uniform_backward_bwd(ctx, grad):
    g, kappa, dim = ctx.saved_tensors
    # D = kappa A' (the KL's derivative); D' from csrc/math/vmf.h (vmf_kl_uniform_second_derivative)
    d_prime = ops._vmf_kl_uniform_second_derivative(kappa, dim)
    dg = ops.vmf_kl_uniform_backward(grad, kappa, dim)
    return _sum_to(dg, g), _sum_to(grad * g * d_prime, kappa), None


# Entropy and KL(vMF || vMF) (csrc/math/vmf.h: accurate at large kappa). Their derivatives are composed of the
# differentiable ops above, so double backward works too:
#   dH/dkappa = -kappa A_d'(kappa);
#   KL = log C(kp) + kp A(kp) - log C(kq) - kq A(kp) (1 - omc):  dKL/dkp = A'(kp) (kp - kq (1 - omc)),
#   dKL/dkq = A(kq) - A(kp) (1 - omc),  dKL/domc = kq A(kp).


def _vmf_entropy_bwd(ctx, grad):
    kappa, dim = ctx.saved_tensors
    return _sum_to(-ops.vmf_kl_uniform_backward(grad, kappa, dim), kappa), None


def _vmf_kl_vmf_bwd(ctx, grad):
    kp, kq, omc, dim = ctx.saved_tensors
    needs = ctx.needs_input_grad
    ap = ops.vmf_mean_resultant(kp, dim)
    cos = 1 - omc
    g_p = _sum_to(ops.vmf_mean_resultant_backward(grad * (kp - kq * cos), kp, dim), kp) if needs[0] else None
    g_q = _sum_to(grad * (ops.vmf_mean_resultant(kq, dim) - ap * cos), kq) if needs[1] else None
    g_c = _sum_to(grad * kq * ap, omc) if needs[2] else None
    return g_p, g_q, g_c, None


# (value, derivative) ops: the forward computes both in one pass, so the backward is one multiplication. A
# double backward (create_graph=True, grad mode on inside the backward) goes through the differentiable
# backward op instead, since the saved derivative is not connected to kappa.


def _setup_value_and_grad(ctx, inputs, output):
    kappa, dim = inputs
    _value, derivative = output
    ctx.mark_non_differentiable(derivative)
    ctx.save_for_backward(kappa, dim, derivative)


def _value_and_grad_backward(backward_op):
    def backward(ctx, grad, _grad_derivative):
        kappa, dim, derivative = ctx.saved_tensors
        if grad is None:
            return None, None
        g = backward_op(grad, kappa, dim) if torch.is_grad_enabled() else grad * derivative
        return _sum_to(g, kappa), None

    return backward


def value_for_autograd(name: str, kappa: torch.Tensor, dim: torch.Tensor) -> torch.Tensor:
    """``ops.<name>(kappa, dim)``; through the internal (value, derivative) op ``_<name>_and_grad`` when a
    gradient with respect to ``kappa`` will be asked for, so that the backward need not evaluate Bessel
    functions again."""
    if kappa.requires_grad and torch.is_grad_enabled():
        return getattr(ops, "_" + name + "_and_grad")(kappa, dim)[0]
    return getattr(ops, name)(kappa, dim)


# The samplers (vmf_sample, power_spherical_sample) share one autograd form: op(loc, kappa, seed, n) returns the
# samples z and what its backward kernel needs (vMF: 1 - w per row; Power Spherical: the Gamma pair of each
# row's Beta draw), which is not differentiable; <op>_backward(grad_z, z, saved, loc, kappa) gives
# (grad_loc, grad_kappa).


def _sampler_setup(ctx, inputs, output):
    loc, kappa, _seed, _n = inputs
    z, saved = output
    ctx.mark_non_differentiable(saved)
    ctx.save_for_backward(z, saved, loc, kappa)


def _sampler_backward(backward_op):
    def backward(ctx, grad_z, _grad_saved):
        z, saved, loc, kappa = ctx.saved_tensors
        if grad_z is None:
            return None, None, None, None
        grad_loc, grad_kappa = backward_op(grad_z, z, saved, loc, kappa)
        return grad_loc, grad_kappa, None, None

    return backward


# --- Power Spherical sampler (csrc/math/power_spherical.h) ----------------------------------------------------
# power_spherical_sample returns the samples and the two Gamma variates (G_a, G_b) of each row's Beta draw (float64,
# (rows, 2)), which its backward kernel needs for dt/dkappa = (1 - t) dG_a/dalpha / (G_a + G_b).


def _power_spherical_sample_fake(loc, kappa, seed, num_samples):
    torch._check(loc.dim() == 2)
    rows = num_samples * loc.shape[0]
    return loc.new_empty(rows, loc.shape[1]), loc.new_empty(rows, 2, dtype=torch.float64)


# --- the fused argument checks (internal ops: csrc/math/checks.h, csrc/check_layout.h) ----------------------
# int64 (3,) on the input's device: the first failing row (element), the first with a NaN, the first with a NaN
# or an infinity, -1 for none. Not differentiable.


def _check_result_fake(x, *_):
    return x.new_empty(3, dtype=torch.int64)


# --- the registration table ---------------------------------------------------------------------------


class OpRegistration(NamedTuple):
    """What is registered from Python for one op: its fake kernel (``ELEMENTWISE``: made from the schema of an
    op of the table in csrc/ops_table.h) and, for a differentiable op, its autograd formula."""

    name: str
    fake: Callable | str
    setup_context: Callable | None = None
    backward: Callable | None = None


#: The fake-kernel column of an op of the table in csrc/ops_table.h: its fake kernel is made from its schema.
ELEMENTWISE = "elementwise: the fake kernel is made from the schema"

_E = ELEMENTWISE

#: One line per op of the library, in the order of csrc/ops_table.h, then the sampler's ops (csrc/ops.cpp).
REGISTRATIONS: tuple[OpRegistration, ...] = (
    OpRegistration("log_bessel_iv", _E, _setup_vx, _log_bessel_iv_bwd),
    OpRegistration("log_bessel_iv_backward", _E, _setup_vx, _log_bessel_iv_backward_bwd),
    OpRegistration("bessel_iv_ratio", _E, _setup_vx, _bessel_iv_ratio_bwd),
    OpRegistration("bessel_iv_ratio_backward", _E),
    OpRegistration("vmf_log_normalizer", _E, _setup_vx, _vmf_log_normalizer_bwd),
    OpRegistration("vmf_log_normalizer_backward", _E, _setup_vx, _vmf_log_normalizer_backward_bwd),
    OpRegistration("vmf_mean_resultant", _E, _setup_vx, _vmf_mean_resultant_bwd),
    OpRegistration("vmf_mean_resultant_backward", _E, _setup_vx, _vmf_mean_resultant_backward_bwd),
    OpRegistration(
        "vmf_mean_resultant_inverse", _E, _vmf_mean_resultant_inverse_setup, _vmf_mean_resultant_inverse_bwd
    ),
    OpRegistration("vmf_mean_resultant_inverse_backward", _E),
    OpRegistration("vmf_kl_uniform", _E, _setup_vx, _vmf_kl_uniform_bwd),
    OpRegistration("vmf_kl_uniform_backward", _E, _setup_vx, _vmf_kl_uniform_backward_bwd),
    OpRegistration("_vmf_mean_resultant_second_derivative", _E),
    OpRegistration("_vmf_kl_uniform_second_derivative", _E),
    OpRegistration("vmf_entropy", _E, _setup_vx, _vmf_entropy_bwd),
    OpRegistration("vmf_kl_vmf", _E, _setup_vx, _vmf_kl_vmf_bwd),
    OpRegistration(
        "_vmf_log_normalizer_and_grad",
        _E,
        _setup_value_and_grad,
        _value_and_grad_backward(ops.vmf_log_normalizer_backward),
    ),
    OpRegistration(
        "_vmf_kl_uniform_and_grad", _E, _setup_value_and_grad, _value_and_grad_backward(ops.vmf_kl_uniform_backward)
    ),
    OpRegistration("_vmf_w_dkappa", _E),
    OpRegistration("_vmf_w_dkappa_float32_rule", _E),
    OpRegistration("vmf_sample", _vmf_sample_fake, _sampler_setup, _sampler_backward(ops.vmf_sample_backward)),
    OpRegistration("_vmf_sample_proposals", _vmf_sample_proposals_fake),
    OpRegistration("vmf_sample_backward", _sampler_backward_fake),
    OpRegistration(
        "power_spherical_sample",
        _power_spherical_sample_fake,
        _sampler_setup,
        _sampler_backward(ops.power_spherical_sample_backward),
    ),
    OpRegistration("power_spherical_sample_backward", _sampler_backward_fake),
    OpRegistration("_vmf_check_unit_rows", _check_result_fake),
    OpRegistration("_check_positive_finite", _check_result_fake),
)


def _check_table() -> None:
    """The table and the compiled library name the same ops, each once (a stale build or an op added in csrc
    without its line here would otherwise leave an op without a fake kernel or autograd)."""
    names = [entry.name for entry in REGISTRATIONS]
    repeated = sorted({name for name in names if names.count(name) > 1})
    missing = sorted(set(OP_NAMES) - set(names))
    unknown = sorted(set(names) - set(OP_NAMES))
    if repeated or missing or unknown:
        raise ImportError(
            f"hvae_ext: the registration table of hvae_ext/_ops.py does not match the compiled library "
            f"(repeated in the table: {repeated}; ops of the library without a line: {missing}; lines for ops the "
            f"library lacks: {unknown}). Rebuild the package from this source (pip install --no-build-isolation "
            f"--force-reinstall --no-deps <hvae_ext source folder>) or complete the table."
        )


# The library object of the CUDA fallbacks and autocast kernels (kept alive for the life of the module).
_LIB = torch.library.Library("hvae_ext", "IMPL")


def _register(entry: OpRegistration) -> None:
    """Every registration of one op: its fake kernel, its autograd formula if it has one, float32 under autocast
    and, on a build without CUDA kernels, a CUDA kernel that says how to rebuild."""
    qualname = f"hvae_ext::{entry.name}"
    fake = _elementwise_fake(entry.name) if entry.fake is ELEMENTWISE else entry.fake
    assert callable(fake), f"{entry.name}: the fake column holds a kernel or ELEMENTWISE"
    torch.library.register_fake(qualname, fake)
    if entry.backward is not None:
        torch.library.register_autograd(qualname, entry.backward, setup_context=entry.setup_context)
    # A CPU-only build: a CUDA tensor would otherwise fail in the dispatcher with "Could not run
    # 'hvae_ext::...' with arguments from the 'CUDA' backend", which does not say how to fix it.
    if not HAS_CUDA_KERNELS and not torch._C._dispatch_has_kernel_for_dispatch_key(qualname, "CUDA"):
        _LIB.impl(entry.name, _no_cuda_kernel(entry.name), "CUDA")
    # Mixed precision: under torch.autocast every op runs in float32 (floating inputs of lower precision are
    # cast up; float64 stays float64), whatever the autocast dtype: the kernels compute in float32/float64 only.
    for device in ("cpu", "cuda"):
        if torch._C._is_autocast_available(device):
            torch.library.register_autocast(qualname, device, torch.float32, lib=_LIB)


_check_table()
for _entry in REGISTRATIONS:
    _register(_entry)
