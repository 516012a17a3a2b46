"""Registration glue for the compiled ops of ``torch.ops.hvae_ext``.

The C++ library (``hvae_ext._C``) defines the schemas and the CPU/CUDA kernels. Here, as in
pytorch/extension-cpp, we register from Python

* fake (meta) kernels, so the ops trace under ``torch.compile`` and pass ``torch.library.opcheck``;
* autograd formulas, whose backward passes call the hand-written backward kernels.

Nothing here validates arguments: the public wrappers (``hvae_ext.special``) follow ``torch.special``
conventions and the distributions validate.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys

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


# A CPU-only build: a CUDA tensor would otherwise fail in the dispatcher with "Could not run
# 'hvae_ext::...' with arguments from the 'CUDA' backend", which does not say how to fix it.
_LIB = torch.library.Library("hvae_ext", "IMPL")
if not HAS_CUDA_KERNELS:
    for _name in OP_NAMES:
        if not torch._C._dispatch_has_kernel_for_dispatch_key(f"hvae_ext::{_name}", "CUDA"):
            _LIB.impl(_name, _no_cuda_kernel(_name), "CUDA")

# Mixed precision: under torch.autocast every op runs in float32 (floating inputs of lower precision are
# cast up; float64 stays float64), whatever the autocast dtype: the kernels compute in float32/float64 only.
for _name in OP_NAMES:
    for _device in ("cpu", "cuda"):
        if torch._C._is_autocast_available(_device):
            torch.library.register_autocast(f"hvae_ext::{_name}", _device, torch.float32, lib=_LIB)


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

# The elementwise ops of the table in csrc/ops_table.h, read back from their registered schemas: every operand
# broadcasts, every operand but the integer `dim` takes part in the dtype (the table's promote flags), and the
# outputs are one tensor or (value, derivative) of that shape.
def _elementwise_fake(name: str):
    schema = getattr(ops, name).default._schema
    promote = tuple(arg.name != "dim" for arg in schema.arguments)
    outputs = len(schema.returns)

    def fake(*args):
        out = _broadcast_fake(*args, promote=promote)
        return out if outputs == 1 else (out,) + tuple(torch.empty_like(out) for _ in range(outputs - 1))

    return fake


ELEMENTWISE_OPS = tuple(name for name in OP_NAMES if not name.startswith("vmf_sample"))
for _name in ELEMENTWISE_OPS:
    torch.library.register_fake(f"hvae_ext::{_name}", _elementwise_fake(_name))


@torch.library.register_fake("hvae_ext::vmf_sample")
def _(loc, kappa, seed, num_samples):
    torch._check(loc.dim() == 2)
    rows = num_samples * loc.shape[0]
    return loc.new_empty(rows, loc.shape[1]), loc.new_empty(rows)


@torch.library.register_fake("hvae_ext::vmf_sample_backward")
def _(grad_z, z, one_minus_w, loc, kappa):
    # contiguous, like the real kernels' outputs (empty_like would keep a non-contiguous loc's strides)
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


torch.library.register_autograd("hvae_ext::log_bessel_iv", _log_bessel_iv_bwd, setup_context=_setup_vx)
torch.library.register_autograd(
    "hvae_ext::log_bessel_iv_backward", _log_bessel_iv_backward_bwd, setup_context=_setup_vx
)
torch.library.register_autograd("hvae_ext::bessel_iv_ratio", _bessel_iv_ratio_bwd, setup_context=_setup_vx)
torch.library.register_autograd(
    "hvae_ext::vmf_log_normalizer", _vmf_log_normalizer_bwd, setup_context=_setup_vx
)
torch.library.register_autograd(
    "hvae_ext::vmf_log_normalizer_backward", _vmf_log_normalizer_backward_bwd, setup_context=_setup_vx
)
def _vmf_mean_resultant_backward_bwd(ctx, grad):
    g, kappa, dim = ctx.saved_tensors
    # d/dkappa [g A'] = g A'' (csrc/math/vmf.h: vmf_mean_resultant_second_derivative)
    a_second = ops.vmf_mean_resultant_second_derivative(kappa, dim)
    dg = ops.vmf_mean_resultant_backward(grad, kappa, dim)
    return _sum_to(dg, g), _sum_to(grad * g * a_second, kappa), None


torch.library.register_autograd(
    "hvae_ext::vmf_mean_resultant", _vmf_mean_resultant_bwd, setup_context=_setup_vx
)
torch.library.register_autograd(
    "hvae_ext::vmf_mean_resultant_backward", _vmf_mean_resultant_backward_bwd, setup_context=_setup_vx
)


# kappa = A_d^{-1}(r): dkappa/dr = 1 / A_d'(kappa), by a kernel that reuses the solved kappa (no second solve).


def _vmf_mean_resultant_inverse_setup(ctx, inputs, output):
    r, dim = inputs
    ctx.save_for_backward(r, dim, output)


def _vmf_mean_resultant_inverse_bwd(ctx, grad):
    r, dim, kappa = ctx.saved_tensors
    return _sum_to(ops.vmf_mean_resultant_inverse_backward(grad, kappa, r, dim), r), None


torch.library.register_autograd(
    "hvae_ext::vmf_mean_resultant_inverse", _vmf_mean_resultant_inverse_bwd,
    setup_context=_vmf_mean_resultant_inverse_setup,
)


def _vmf_kl_uniform_bwd(ctx, grad):
    kappa, dim = ctx.saved_tensors
    return _sum_to(ops.vmf_kl_uniform_backward(grad, kappa, dim), kappa), None


def _vmf_kl_uniform_backward_bwd(ctx, grad):
    g, kappa, dim = ctx.saved_tensors
    # D = kappa A' (the KL's derivative); D' from csrc/math/vmf.h (vmf_kl_uniform_second_derivative)
    d_prime = ops.vmf_kl_uniform_second_derivative(kappa, dim)
    dg = ops.vmf_kl_uniform_backward(grad, kappa, dim)
    return _sum_to(dg, g), _sum_to(grad * g * d_prime, kappa), None


torch.library.register_autograd("hvae_ext::vmf_kl_uniform", _vmf_kl_uniform_bwd, setup_context=_setup_vx)
torch.library.register_autograd(
    "hvae_ext::vmf_kl_uniform_backward", _vmf_kl_uniform_backward_bwd, setup_context=_setup_vx
)


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


torch.library.register_autograd(
    "hvae_ext::vmf_log_normalizer_and_grad",
    _value_and_grad_backward(ops.vmf_log_normalizer_backward),
    setup_context=_setup_value_and_grad,
)
torch.library.register_autograd(
    "hvae_ext::vmf_kl_uniform_and_grad",
    _value_and_grad_backward(ops.vmf_kl_uniform_backward),
    setup_context=_setup_value_and_grad,
)


def value_for_autograd(name: str, kappa: torch.Tensor, dim: torch.Tensor) -> torch.Tensor:
    """``ops.<name>(kappa, dim)``; through the (value, derivative) op ``<name>_and_grad`` when a gradient
    with respect to ``kappa`` will be asked for, so that the backward need not evaluate Bessel functions again."""
    if kappa.requires_grad and torch.is_grad_enabled():
        return getattr(ops, name + "_and_grad")(kappa, dim)[0]
    return getattr(ops, name)(kappa, dim)


def _vmf_sample_setup(ctx, inputs, output):
    loc, kappa, _seed, _n = inputs
    z, one_minus_w = output
    ctx.mark_non_differentiable(one_minus_w)
    ctx.save_for_backward(z, one_minus_w, loc, kappa)


def _vmf_sample_bwd(ctx, grad_z, _grad_one_minus_w):
    z, one_minus_w, loc, kappa = ctx.saved_tensors
    if grad_z is None:
        return None, None, None, None
    grad_loc, grad_kappa = ops.vmf_sample_backward(grad_z, z, one_minus_w, loc, kappa)
    return grad_loc, grad_kappa, None, None


torch.library.register_autograd("hvae_ext::vmf_sample", _vmf_sample_bwd, setup_context=_vmf_sample_setup)


# --- entropy and KL(vMF || vMF) (csrc/math/vmf.h: accurate at large kappa) ---------------------------------
# Their derivatives are composed of the differentiable ops above, so double backward works too:
#   dH/dkappa = -kappa A_d'(kappa);
#   KL = log C(kp) + kp A(kp) - log C(kq) - kq A(kp) (1 - omc):  dKL/dkp = A'(kp) (kp - kq (1 - omc)),
#   dKL/dkq = A(kq) - A(kp) (1 - omc),  dKL/domc = kq A(kp).


@torch.library.register_fake("hvae_ext::vmf_entropy")
def _(kappa, dim):
    return _broadcast_fake(kappa, dim, promote=(True, False))


@torch.library.register_fake("hvae_ext::vmf_kl_vmf")
def _(kappa_p, kappa_q, one_minus_cos, dim):
    return _broadcast_fake(kappa_p, kappa_q, one_minus_cos, dim, promote=(True, True, True, False))


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


torch.library.register_autograd("hvae_ext::vmf_entropy", _vmf_entropy_bwd, setup_context=_setup_vx)
torch.library.register_autograd("hvae_ext::vmf_kl_vmf", _vmf_kl_vmf_bwd, setup_context=_setup_vx)


@torch.library.register_fake("hvae_ext::vmf_sample_proposals")
def _(loc, kappa, seed, num_samples):
    rows = num_samples * loc.shape[0]
    return loc.new_empty(rows, dtype=torch.float64), loc.new_empty(rows, dtype=torch.int32)


# --- the fused argument checks (internal ops: csrc/math/checks.h, csrc/check_layout.h) -----------------------
# int64 (3,) on the input's device: the first failing row (element), the first with a NaN, the first with a NaN
# or an infinity, -1 for none. Not differentiable. Registered here with allow_override, since a loop above over
# every op's schema may already have given them a default fake.
def _check_result_fake(x, *_):
    return x.new_empty(3, dtype=torch.int64)


for _name in ("_vmf_check_unit_rows", "_check_positive_finite"):
    torch.library.register_fake(f"hvae_ext::{_name}", _check_result_fake, lib=_LIB, allow_override=True)
