"""The fused argument checks (torch.ops.hvae_ext._vmf_check_unit_rows and _check_positive_finite): one compiled
pass over each argument, whose result names the first failing row, the first row with a NaN and the first with
a NaN or an infinity (-1 for none). They give the decisions of the Python rules they replaced (kept here as the
reference), for any layout (non-contiguous, expanded, empty) and dtype (float32, float64, float16, bfloat16);
VonMisesFisher's construction and log_prob run them and nothing of size (N, d) besides.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hvae_ext import HypersphericalUniform, VonMisesFisher
from hvae_ext.distributions._validation import support_tolerance, unit_norm_tolerance
from hvae_ext.testing import DEVICES

ops = torch.ops.hvae_ext
NAN, INF = float("nan"), float("inf")
HALF = (torch.float16, torch.bfloat16)


# --- the Python rules the fused checks replaced -----------------------------------------------------------


def reference_unit_rows(x: torch.Tensor, tol: float, compare_in_dtype: bool = False) -> list[int]:
    """The unit-norm rule as the Python check computed it, row by row: finite, and |norm - 1| <= tol with the
    norm and the deviation in x's dtype (torch.linalg.vector_norm); ``compare_in_dtype``: the comparison in x's
    dtype, as constraints.unit_sphere does it (tol rounded to the dtype), else in float64."""
    d = x.shape[-1]
    flat = x.reshape(-1, d)
    if flat.shape[0] == 0 or d == 0:
        return [-1, -1, -1]
    dev = (torch.linalg.vector_norm(flat, dim=-1) - 1).abs()
    ok = dev <= tol if compare_in_dtype else dev.double() <= tol
    ok &= torch.isfinite(flat).all(-1)
    nan = torch.isnan(flat).any(-1)
    nonfinite = ~torch.isfinite(flat).all(-1)
    return [_first(~ok), _first(nan), _first(nonfinite)]


def reference_positive_finite(x: torch.Tensor) -> list[int]:
    flat = x.reshape(-1)
    return [_first(~(torch.isfinite(flat) & (flat > 0))), _first(torch.isnan(flat)), _first(~torch.isfinite(flat))]


def _first(mask: torch.Tensor) -> int:
    idx = mask.nonzero()
    return int(idx[0, 0]) if idx.numel() else -1


def unit(*shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, dtype=torch.float64, generator=g), dim=-1).to(dtype)


# --- the ops ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_unit_rows_names_the_first_rows(device):
    x = unit(8, 5).to(device)
    tol = unit_norm_tolerance(torch.float64, 5)
    assert ops._vmf_check_unit_rows(x, tol).tolist() == [-1, -1, -1]
    x[6] *= 2  # off the sphere
    x[5, 1] = INF
    x[7, 0] = NAN
    x[3] *= 1 + 4 * tol
    out = ops._vmf_check_unit_rows(x, tol)
    assert out.dtype == torch.int64 and out.device.type == device
    assert out.tolist() == [3, 7, 5]
    assert out.tolist() == reference_unit_rows(x.cpu(), tol)


@pytest.mark.parametrize("d", [3, 8, 16, 17, 64, 100])
def test_float32_screen_every_position(d):
    """float32 rows of d = 3 or d >= 8 go through a vectorized float32 screen 8 rows at a time on AVX2 CPUs (the
    float64 pass elsewhere): one bad row (just off the sphere, NaN, inf) at every position of 1-20 rows, contiguous
    and with a row stride, is named as the reference names it."""
    tol = unit_norm_tolerance(torch.float32, d)
    for n in range(1, 21):
        for stride in (d, d + 3) if d >= 8 else (d,):
            base = unit(n, stride, dtype=torch.float32, seed=n)[:, :d]
            base = base / torch.linalg.vector_norm(base.double(), dim=-1, keepdim=True).float()
            assert ops._vmf_check_unit_rows(base, tol).tolist() == reference_unit_rows(base, tol)
            for row in range(n):
                for spoil in ("scale", "nan", "inf"):
                    x = (
                        base.clone()
                        if stride == d
                        else torch.empty(n, stride).copy_(torch.nn.functional.pad(base, (0, stride - d)))[:, :d]
                    )
                    if spoil == "scale":
                        x[row] *= 1 + 2 * tol
                    else:
                        x[row, row % d] = NAN if spoil == "nan" else INF
                    expected = reference_unit_rows(x, tol)
                    assert expected[0] == row
                    assert ops._vmf_check_unit_rows(x, tol).tolist() == expected, (n, stride, row, spoil)


@pytest.mark.parametrize("device", DEVICES)
def test_positive_finite_names_the_first_elements(device):
    k = torch.tensor([1.0, 2.0, 5e-324, 3.0], dtype=torch.float64, device=device)
    assert ops._check_positive_finite(k).tolist() == [-1, -1, -1]  # a subnormal is > 0
    k = torch.tensor([1.0, -0.0, INF, 0.5, NAN, -1.0], device=device)
    assert ops._check_positive_finite(k).tolist() == [1, 4, 2] == reference_positive_finite(k.cpu())
    assert ops._check_positive_finite(torch.tensor(-INF, device=device)).tolist() == [0, -1, 0]


@pytest.mark.parametrize("device", DEVICES)
def test_layouts_read_in_place(device):
    """Transposed, strided, expanded (stride 0, in any batch dimension) and sliced inputs give the rows of their
    contiguous copies, numbered in row-major order of the full batch."""
    d = 7
    base = unit(4, 6, d, seed=1)
    base[2, 3] *= 1.5
    base[3, 1, 2] = NAN
    tol = unit_norm_tolerance(torch.float64, d)
    wide = torch.zeros(4, 6, 2 * d, dtype=torch.float64)
    wide[..., ::2] = base
    layouts = [
        base,
        base.transpose(0, 1),
        base.transpose(-1, -2).contiguous().transpose(-1, -2),
        wide[..., ::2],
        base[:, 2:3].expand(4, 5, d),  # stride 0 in the middle
        base[1:2].expand(3, 6, d),  # stride 0 outside
        base[3, 1].expand(2, 3, 4, d),  # only stride-0 dimensions
        base[:, None].expand(4, 3, 6, d),
        base[::2, 1::2],
        base.permute(1, 0, 2)[::2],
    ]
    for x in layouts:
        x = x.to(device)
        want = reference_unit_rows(x.cpu().contiguous(), tol)
        assert ops._vmf_check_unit_rows(x, tol).tolist() == want, (x.shape, x.stride())
        k = x[..., 0]
        assert ops._check_positive_finite(k).tolist() == reference_positive_finite(k.cpu().contiguous())


def test_many_unmergeable_dimensions():
    """More batch dimensions than the kernels' layout holds (after merging): a contiguous copy is checked."""
    x = unit(*([2] * 12), 3).permute(*range(11, -1, -1), 12)
    x[1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1] *= 3
    tol = unit_norm_tolerance(torch.float64, 3)
    assert ops._vmf_check_unit_rows(x, tol).tolist() == reference_unit_rows(x.contiguous(), tol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(0, 3), (4, 0, 3), (0,), (2, 0)])
def test_empty(device, shape):
    x = torch.zeros(shape, device=device)
    assert ops._check_positive_finite(x).tolist() == [-1, -1, -1]
    if len(shape) >= 1:
        assert ops._vmf_check_unit_rows(x, 1e-5).tolist() == [-1, -1, -1]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_dtypes(device, dtype):
    d = 16
    x = unit(64, d, dtype=dtype, seed=2)
    x[10] *= 8  # off the sphere even for the loose tolerance of bfloat16 values (64 eps sqrt(d) = 2)
    x[40, 3] = -INF
    for tol in (unit_norm_tolerance(dtype, d), support_tolerance(dtype, d)):
        got = ops._vmf_check_unit_rows(x.to(device), tol).tolist()
        assert got == reference_unit_rows(x, tol, compare_in_dtype=tol == support_tolerance(dtype, d))
        assert got[0] == 10 and got[2] == 40
    k = torch.tensor([3.0, 0.0, 1.0], dtype=dtype, device=device)
    assert ops._check_positive_finite(k).tolist() == [1, -1, -1]


def test_tolerance_edge_is_exact():
    """Rows (a, 0, ..., 0) have norm |a| in any arithmetic: the last three accepted and the first three rejected
    a on both sides of 1 are decided as the Python rule decides them, for loc (half precision cast to float32,
    compared in float64) and for log_prob values (compared in the value's dtype)."""
    from test_fuzz_validation import _edge_values

    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        for d in (2, 3, 16, 100):
            for mode in ("loc", "value"):
                check_dtype = torch.float32 if (mode == "loc" and dtype in HALF) else dtype
                tol = unit_norm_tolerance(dtype, d) if mode == "loc" else support_tolerance(dtype, d)
                if tol >= 0.5:
                    continue  # the loose tolerance of half-precision values: no edge below 1
                outcomes = set()
                for a in _edge_values(check_dtype, tol, in_dtype=mode == "value"):
                    x = torch.zeros(1, d, dtype=check_dtype)
                    x[0, 0] = a
                    ref = reference_unit_rows(x, tol, compare_in_dtype=mode == "value")
                    assert ops._vmf_check_unit_rows(x, tol).tolist() == ref, (dtype, d, mode, a)
                    outcomes.add(ref[0])
                assert outcomes == {-1, 0}  # both accepted and rejected rows


def test_op_rejects_other_dtypes():
    with pytest.raises(RuntimeError, match="float32, float64, float16 or bfloat16"):
        ops._vmf_check_unit_rows(torch.ones(2, 3, dtype=torch.int64), 1e-5)
    with pytest.raises(RuntimeError, match="float32, float64, float16 or bfloat16"):
        ops._check_positive_finite(torch.ones(2, dtype=torch.int32))
    with pytest.raises(RuntimeError, match="shape \\(\\.\\.\\., d\\)"):
        ops._vmf_check_unit_rows(torch.tensor(1.0), 1e-5)


def test_opcheck():
    x = unit(5, 4).float()
    torch.library.opcheck(ops._vmf_check_unit_rows.default, (x, 1e-5))
    torch.library.opcheck(ops._check_positive_finite.default, (torch.rand(5) + 0.5,))


# --- the distributions use them ---------------------------------------------------------------------------------


class _Ops(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func.overloadpacket.__name__))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("requires_grad", [False, True])
def test_construction_runs_the_fused_checks_and_nothing_of_size_n_d(requires_grad):
    """A validated construction runs the two fused checks, joins their (3,) results and reads them once: no norm,
    no comparison over (N, d), no autograd graph."""
    loc = unit(256, 16).float().requires_grad_(requires_grad)
    kappa = torch.full((256,), 10.0, requires_grad=requires_grad)
    with _Ops() as rec:
        VonMisesFisher(loc, kappa, validate_args=True)
    checks = [n for n in rec.names if n.startswith("_")]
    assert checks == ["_vmf_check_unit_rows", "_check_positive_finite"], rec.names
    assert not any("norm" in n or n in ("abs", "argmax", "isfinite", "gt", "le", "all") for n in rec.names), rec.names
    assert rec.names.count("_local_scalar_dense") == 0  # read with one tolist() of the joined result


def test_log_prob_runs_the_fused_check():
    q = VonMisesFisher(unit(3).float(), 2.0, validate_args=True)
    z = q.sample((100,))
    with _Ops() as rec:
        q.log_prob(z)
    assert "_vmf_check_unit_rows" in rec.names and "linalg_vector_norm" not in rec.names
    with _Ops() as rec:
        HypersphericalUniform(3, validate_args=True).log_prob(z)
    assert rec.names.count("_vmf_check_unit_rows") == 1


def test_messages_name_the_first_bad_row():
    loc = unit(6, 3).float()
    loc[2] *= 1.5
    loc[4] *= 3.0
    with pytest.raises(ValueError, match=r"loc must have unit norm along its last axis .*norm 1\.5"):
        VonMisesFisher(loc, 1.0, validate_args=True)
    loc[5, 1] = INF
    with pytest.raises(ValueError, match=r"loc must be finite, but it contains inf"):
        VonMisesFisher(loc, 1.0, validate_args=True)
    loc[0, 0] = NAN  # a NaN anywhere is named before an infinity
    with pytest.raises(ValueError, match=r"loc must be finite, but it contains NaN"):
        VonMisesFisher(loc, 1.0, validate_args=True)
    k = torch.tensor([1.0, -2.0, INF, -5.0])
    with pytest.raises(ValueError, match=r"concentration must be finite and > 0, but it contains inf"):
        VonMisesFisher(unit(4, 3), k.double(), validate_args=True)
    with pytest.raises(ValueError, match=r"smallest value is -5\.0"):
        VonMisesFisher(unit(4, 3), k[[0, 1, 3, 0]].double(), validate_args=True)


def test_log_prob_message_is_torchs():
    q = VonMisesFisher(unit(3).float(), 2.0, validate_args=True)
    bad = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    with pytest.raises(
        ValueError,
        match=r"Expected value argument \(Tensor of shape \(2, 3\)\) to be within the "
        r"support \(UnitSphere\(\)\) of the distribution VonMisesFisher",
    ):
        q.log_prob(bad)
    with pytest.raises(ValueError, match="Value is not broadcastable with batch_shape"):
        VonMisesFisher(unit(4, 3).float(), 2.0, validate_args=True).log_prob(unit(3, 3).float())
    # half-precision values: the constraint's tolerance, 64 eps of the value's dtype
    q.log_prob(unit(5, 3, dtype=torch.bfloat16))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_loc_is_checked_with_its_tolerance(dtype):
    loc = unit(8, 16, dtype=dtype)
    VonMisesFisher(loc, 3.0, validate_args=True)
    with pytest.raises(ValueError, match=rf"4 eps = .* for {dtype}, d = 16"):
        VonMisesFisher(loc * (1 + 8 * torch.finfo(dtype).eps), 3.0, validate_args=True)


def test_expanded_and_empty_arguments():
    mu = unit(5)
    VonMisesFisher(mu.expand(1000, 5), torch.tensor(2.0, dtype=torch.float64).expand(1000), validate_args=True)
    VonMisesFisher(torch.zeros(0, 5), torch.ones(0), validate_args=True)
    with pytest.raises(ValueError, match="unit norm"):
        VonMisesFisher((2 * mu).expand(7, 3, 5), 1.0, validate_args=True)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_one_synchronisation_per_construction():
    loc = unit(4096, 16).float().cuda()
    kappa = torch.full((4096,), 10.0, device="cuda")
    VonMisesFisher(loc, kappa, validate_args=True)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with pytest.warns(UserWarning, match="synchroniz") as rec:
            VonMisesFisher(loc, kappa, validate_args=True)
        assert len([w for w in rec if "synchroniz" in str(w.message)]) == 1
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.set_sync_debug_mode("error")
    try:
        VonMisesFisher(loc, kappa, validate_args=False).rsample()
    finally:
        torch.cuda.set_sync_debug_mode(0)
