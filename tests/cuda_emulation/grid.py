"""The comparison grid of the CUDA emulation: every op that csrc/cuda registers, on the CPU (the CPU kernels),
the emulated CUDA kernels, and (scripts/gpu_check.py) a GPU, on the same inputs and the same Philox seed.

Cases:
  elementwise ops (arguments made from the schema's argument names, so a new op of the table is covered by
  its names): the grid of d in D_ELEMENTWISE x kappa in KAPPAS (306 elements: the last block of 256 threads
  partial) with the kappa-only operands broadcast (K, 1) and the d-only ones (1, D); the same values through
  non-contiguous views; a single-element `dim` (read with stride 0) with explicitly expanded operands; empty
  operands; 1357 random (kappa, d) pairs (kappa log-uniform in [1e-12, 1e12], d in [2, 1000]).
  the samplers (vmf_sample, power_spherical_sample) and their backwards: d in D_SAMPLER, 12 concentrations from 0 to 1e12, 5 samples per row (60
  rows: a full tile of 32 rows and a partial one); loc contiguous, non-contiguous, or one row expanded;
  empty batches (B = 0, num_samples = 0); 4,136 rows at d = 3 (more rows than a 1-multiprocessor grid's
  warps cover: the grid-stride loop turns). The backward is given the CPU forward's samples.
Outputs are compared element by element: NaN and infinity must sit at the same places, and the finite values
give max |delta| and max |delta| / |reference| (over nonzero references).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

KAPPAS = (0.0, 1e-10, 1e-6, 1e-3, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 100.0, 1e3, 1e4, 1e6, 1e8, 1e10, 1e12)
D_ELEMENTWISE = (2, 3, 4, 5, 8, 16, 31, 32, 33, 64, 65, 100, 128, 257, 500, 1000, 10000)
D_SAMPLER = (2, 3, 4, 5, 8, 16, 31, 32, 33, 64, 100, 257, 1000)
SAMPLER_KAPPAS = (0.0, 1e-6, 1e-2, 0.5, 1.0, 3.0, 10.0, 100.0, 1e3, 1e5, 1e8, 1e12)
SAMPLES = 5
GRID_STRIDE_ROWS = 4136  # > 16 blocks x 8 warps x 32 rows: grid_for's cap with one multiprocessor
# hvae_ext ops with no CUDA kernel by design (compared by base name, leading underscores removed)
CPU_ONLY = frozenset({"vmf_sample_proposals"})
# The samplers: forward op -> (its backward op, the forward's output names). Both backwards take
# (grad_z, z, <the forward's second output>, loc, kappa).
SAMPLERS = {
    "vmf_sample": ("vmf_sample_backward", ("z", "one_minus_w")),
    "power_spherical_sample": ("power_spherical_sample_backward", ("z", "gammas")),
}
SAMPLER_OPS = frozenset(SAMPLERS) | frozenset(bwd for bwd, _ in SAMPLERS.values())
# The fused argument checks (int64 (3,): first failing row, first NaN row, first NaN-or-inf row; -1 for none)
CHECK_OPS = frozenset({"vmf_check_unit_rows", "check_positive_finite"})
NON_ELEMENTWISE = SAMPLER_OPS | CHECK_OPS
DTYPES = (torch.float64, torch.float32)


def base_name(op: str) -> str:
    return op.lstrip("_")


@dataclass
class Result:
    op: str
    dtype: str
    case: str
    output: str
    numel: int
    max_abs: float
    max_rel: float
    nonfinite_ok: bool
    pair: str = "emulation-cpu"
    note: str = ""
    extra: dict = field(default_factory=dict)


def compare(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float, bool]:
    """(max |a - b|, max |a - b| / |b| over b != 0, whether NaN and inf sit at the same places) over finite b."""
    a = a.detach().to("cpu", torch.float64)
    b = b.detach().to("cpu", torch.float64)
    if a.shape != b.shape:
        return math.inf, math.inf, False
    if a.numel() == 0:
        return 0.0, 0.0, True
    fa, fb = torch.isfinite(a), torch.isfinite(b)
    ok = bool(torch.equal(fa, fb)) and bool(
        torch.equal(a[~fb].nan_to_num(0.0, 1.0, -1.0), b[~fb].nan_to_num(0.0, 1.0, -1.0))
    )
    both = fa & fb
    d = (a[both] - b[both]).abs()
    if d.numel() == 0:
        return 0.0, 0.0, ok
    ref = b[both].abs()
    nz = ref > 0
    rel = (d[nz] / ref[nz]).max().item() if bool(nz.any()) else 0.0
    if bool((~nz).any()):  # a zero reference: the difference itself
        rel = max(rel, d[~nz].max().item())
    return d.max().item(), rel, ok


# ---- inputs -------------------------------------------------------------------------------------------------
class Arg:
    """An operand: a contiguous base tensor and the view the op receives (rebuilt on each device)."""

    def __init__(self, base: torch.Tensor, view=None):
        self.base, self.view = base, view

    def on(self, device, dtype=None) -> torch.Tensor:
        t = self.base
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        t = t.to(device)
        return self.view(t) if self.view else t


def _cpu(name):
    """torch.ops.hvae_ext.<name>, also when the op is internal (a leading underscore) or no longer is."""
    for n in (name, "_" + name, name.lstrip("_")):
        if hasattr(torch.ops.hvae_ext, n):
            return getattr(torch.ops.hvae_ext, n)
    raise AttributeError(f"hvae_ext has no op {name}")


def _find(ops, base):
    """The name under which `ops` (a list of op names) has the op with this base name, or None."""
    for n in ops:
        if base_name(n) == base:
            return n
    return None


def _mean_resultant(kap, dd):
    return _cpu("vmf_mean_resultant")(kap, dd)


def _one_minus_w(kap, dd, seed=7):
    """1 - w drawn by the CPU sampler for each (kappa, d) pair: the operand's documented range."""
    out = torch.empty_like(kap)
    flat_k, flat_d, flat_o = kap.reshape(-1), dd.reshape(-1), out.view(-1)
    for d in torch.unique(flat_d).tolist():
        idx = (flat_d == d).nonzero().flatten()
        loc = torch.zeros(idx.numel(), int(d), dtype=torch.float64)
        loc[:, 0] = 1.0
        _, omw = _cpu("vmf_sample")(loc, flat_k[idx].contiguous(), torch.tensor([seed]), 1)
        flat_o[idx] = omw
    return out


def _operand_values(name: str, kap: torch.Tensor, dd: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """float64 values of the operand called `name` at the (kappa, d) pairs (equal shapes)."""
    if name in ("kappa", "x", "kappa_p"):
        return kap.clone()
    if name == "kappa_q":  # another concentration of the grid
        return torch.where(kap > 1.0, kap * 0.37, kap * 3.1 + 0.2)
    if name == "dim":
        return dd.clone()
    if name == "v":  # the order of the vMF's Bessel function
        return dd / 2 - 1
    if name == "grad":
        return torch.randn(kap.shape, generator=gen, dtype=torch.float64)
    if name in ("r", "mean_resultant"):
        return _mean_resultant(kap, dd)
    if name == "one_minus_w":
        return _one_minus_w(kap, dd)
    if name == "one_minus_cos":
        return 2.0 * torch.rand(kap.shape, generator=gen, dtype=torch.float64)
    raise KeyError(f"no rule for an operand named {name!r}: add one to tests/cuda_emulation/grid.py")


def _kappa_only(name):
    return name in ("kappa", "x", "kappa_p", "kappa_q")


def _dim_only(name):
    return name in ("dim", "v")


def elementwise_cases(op_name: str, seed: int = 0):
    """(case name, [Arg]) for an elementwise op, from its schema's argument names."""
    schema = _cpu(op_name).default._schema
    names = [a.name for a in schema.arguments]
    gen = torch.Generator().manual_seed(seed)
    K, D = len(KAPPAS), len(D_ELEMENTWISE)
    kap = torch.tensor(KAPPAS, dtype=torch.float64).view(K, 1).expand(K, D).contiguous()
    dd = torch.tensor(D_ELEMENTWISE, dtype=torch.float64).view(1, D).expand(K, D).contiguous()
    vals = {n: _operand_values(n, kap, dd, gen) for n in names}

    def as_dim(t):
        return t.to(torch.int64) if t is not None else t

    # grid: kappa-only operands (K, 1), d-only ones (1, D), the others (K, D)
    args = []
    for n in names:
        v = vals[n]
        if _kappa_only(n):
            v = v[:, :1].contiguous()
        elif _dim_only(n):
            v = v[:1, :].contiguous()
        args.append(Arg(as_dim(v) if n == "dim" else v))
    yield "grid", args
    # non-contiguous: transposed storage, or every other column of a wider tensor
    args = []
    for i, n in enumerate(names):
        v = vals[n]
        v = as_dim(v) if n == "dim" else v
        if i % 2 == 0:
            args.append(Arg(v.t().contiguous(), lambda t: t.t()))
        else:
            wide = torch.stack([v, torch.full_like(v, 7)], dim=-1).reshape(K, 2 * D)
            args.append(Arg(wide, lambda t: t[:, ::2]))
    yield "strided", args
    # a single-element dim (stride 0) and explicitly expanded kappa-only operands, at d = 3 and d = 257
    for d in (3, 257):
        kap1 = torch.tensor(KAPPAS, dtype=torch.float64)
        dd1 = torch.full_like(kap1, float(d))
        v1 = {n: _operand_values(n, kap1, dd1, gen) for n in names}
        args = []
        for n in names:
            if n == "dim":
                args.append(Arg(torch.tensor(d, dtype=torch.int64)))
            elif _kappa_only(n):
                args.append(Arg(v1[n].view(1, K), lambda t: t.expand(3, -1)))
            else:
                args.append(Arg(v1[n].view(1, K).expand(3, K).contiguous()))
        yield f"scalar_dim_{d}", args
    yield "empty", [Arg(torch.zeros(0, dtype=torch.int64 if n == "dim" else torch.float64)) for n in names]
    # random pairs
    n_rand = 5 * 256 + 77
    kr = torch.exp(torch.empty(n_rand, dtype=torch.float64).uniform_(math.log(1e-12), math.log(1e12), generator=gen))
    dr = torch.randint(2, 1001, (n_rand,), generator=gen).to(torch.float64)
    vr = {n: _operand_values(n, kr, dr, gen) for n in names}
    yield "random", [Arg(as_dim(vr[n]) if n == "dim" else vr[n]) for n in names]


def _unit_rows(B, d, gen):
    return torch.nn.functional.normalize(torch.randn(B, d, generator=gen, dtype=torch.float64), dim=-1)


def sampler_cases(quick: bool = False, seed: int = 0):
    """(case name, loc Arg, kappa Arg, num_samples, emulated multiprocessors)."""
    gen = torch.Generator().manual_seed(seed)
    kappas = torch.tensor(SAMPLER_KAPPAS, dtype=torch.float64)
    B = len(SAMPLER_KAPPAS)
    for i, d in enumerate(D_SAMPLER):
        loc = _unit_rows(B, d, gen)
        layout = ("contiguous", "strided", "expanded")[i % 3]
        if layout == "contiguous":
            yield f"d={d}", Arg(loc), Arg(kappas), SAMPLES, 4
        elif layout == "strided":
            wide = torch.stack([kappas, torch.full_like(kappas, -1.0)], dim=-1).reshape(-1)
            yield f"d={d} strided", Arg(loc.t().contiguous(), lambda t: t.t()), Arg(wide, lambda t: t[::2]), SAMPLES, 4
        else:
            yield f"d={d} expanded", Arg(loc[:1].clone(), lambda t, B=B: t.expand(B, -1)), Arg(kappas), SAMPLES, 4
    yield "empty batch", Arg(torch.zeros(0, 8, dtype=torch.float64)), Arg(torch.zeros(0, dtype=torch.float64)), 3, 4
    yield "no samples", Arg(_unit_rows(4, 40, gen)), Arg(kappas[:4].clone()), 0, 4
    if not quick:
        yield "grid-stride d=3", Arg(_unit_rows(2, 3, gen)), Arg(torch.tensor([5.0, 1e4])), GRID_STRIDE_ROWS // 2, 1


# ---- running ------------------------------------------------------------------------------------------------
def _outputs(x):
    return list(x) if isinstance(x, (tuple, list)) else [x]


def run(backends: dict, ops: list[str], dtypes=DTYPES, quick: bool = False, configure=None, reference="cpu"):
    """Compares every backend with the reference on every case.

    backends: name -> (function op_name -> callable, device). configure(multiprocessors) sets the emulated
    device before a sampler case. Returns a list of Result (pair "<backend>-<reference>"; with a "gpu" and an
    "emulation" backend also "gpu-emulation").
    """
    results = []
    pairs = [(b, reference) for b in backends if b != reference]
    if "gpu" in backends and "emulation" in backends:
        pairs.append(("gpu", "emulation"))
    for op in ops:
        b = base_name(op)
        if b in NON_ELEMENTWISE:
            continue
        for dtype in dtypes:
            for case, args in elementwise_cases(op):
                outs = {}
                for name, (get, device) in backends.items():
                    outs[name] = [o.cpu() for o in _outputs(get(op)(*[a.on(device, dtype) for a in args]))]
                for x, y in pairs:
                    for k, (ox, oy) in enumerate(zip(outs[x], outs[y])):
                        mabs, mrel, ok = compare(ox, oy)
                        results.append(
                            Result(
                                op,
                                str(dtype).replace("torch.", ""),
                                case,
                                f"out{k}",
                                oy.numel(),
                                mabs,
                                mrel,
                                ok and ox.dtype == oy.dtype,
                                f"{x}-{y}",
                            )
                        )
    results += _run_checks(backends, pairs, ops)
    for fwd_base, (bwd_base, fwd_labels) in SAMPLERS.items():
        results += _run_sampler(backends, pairs, ops, fwd_base, bwd_base, fwd_labels, dtypes, quick, configure)
    if configure:
        configure(4)
    return results


def check_cases(seed: int = 0):
    """(case name, op base name, tensor, extra arguments) for the fused argument checks: clean inputs, a bad
    row or element in the last partial block, NaN before inf, stride-0 rows, transposed storage, half dtypes,
    empty tensors."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.nn.functional.normalize(torch.randn(1000, 16, generator=gen, dtype=torch.float64), dim=-1)
    bad = rows.clone()
    bad[997] *= 1.01
    bad[998, 3] = float("inf")
    bad[999, 0] = float("nan")
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        name = str(dtype).replace("torch.", "")
        yield f"unit rows {name}", "vmf_check_unit_rows", rows.to(dtype), (1e-3 if dtype.itemsize < 4 else 1e-5,)
        yield f"bad rows {name}", "vmf_check_unit_rows", bad.to(dtype), (1e-3 if dtype.itemsize < 4 else 1e-5,)
    yield "rows transposed storage", "vmf_check_unit_rows", bad.t().contiguous().t(), (1e-5,)
    yield "rows expanded", "vmf_check_unit_rows", bad[997:998].expand(300, 16), (1e-5,)
    yield "rows empty", "vmf_check_unit_rows", torch.zeros(0, 16, dtype=torch.float64), (1e-5,)
    kappas = torch.exp(torch.empty(5000, dtype=torch.float64).uniform_(-20, 20, generator=gen))
    bad_k = kappas.clone()
    bad_k[4100] = 0.0
    bad_k[4200] = float("inf")
    bad_k[4300] = float("nan")
    for dtype in (torch.float64, torch.float32, torch.float16):
        name = str(dtype).replace("torch.", "")
        yield f"positive {name}", "check_positive_finite", kappas.clamp(1e-3, 6e4).to(dtype), ()
        yield f"bad positive {name}", "check_positive_finite", bad_k.to(dtype), ()
    yield "positive strided", "check_positive_finite", bad_k[::3], ()
    yield "positive expanded", "check_positive_finite", bad_k[4300:4301].expand(64), ()
    yield "positive empty", "check_positive_finite", torch.zeros(0, dtype=torch.float64), ()


def _run_checks(backends, pairs, ops):
    results = []
    for case, base, x, extra in check_cases():
        op = _find(ops, base)
        if op is None:
            continue
        outs = {name: get(op)(x.to(device), *extra).cpu() for name, (get, device) in backends.items()}
        for a, b in pairs:
            mabs, mrel, ok = compare(outs[a], outs[b])
            results.append(
                Result(
                    op,
                    str(x.dtype).replace("torch.", ""),
                    case,
                    "rows",
                    outs[b].numel(),
                    mabs,
                    mrel,
                    ok and outs[a].dtype == outs[b].dtype,
                    f"{a}-{b}",
                )
            )
    return results


def _run_sampler(backends, pairs, ops, fwd_base, bwd_base, fwd_labels, dtypes, quick, configure):
    """One sampler's forward and backward on the sampler cases; the backward is given the CPU forward's output."""
    results = []
    fwd = _find(ops, fwd_base)
    bwd = _find(ops, bwd_base)
    if fwd is None and bwd is None:
        return results
    cpu_fwd = _cpu(fwd or fwd_base)
    gen = torch.Generator().manual_seed(1)
    for dtype in dtypes:
        dname = str(dtype).replace("torch.", "")
        for case, loc_a, kap_a, S, sms in sampler_cases(quick):
            if configure:
                configure(sms)
            seed = torch.tensor([20260611 + S], dtype=torch.int64)
            loc_c, kap_c = loc_a.on("cpu", dtype), kap_a.on("cpu", dtype)
            z_ref, aux_ref = cpu_fwd(loc_c, kap_c, seed, S)
            g = torch.randn(z_ref.shape, generator=gen, dtype=torch.float64).to(dtype)
            outs_f, outs_b = {}, {}
            for name, (get, device) in backends.items():
                loc, kap = loc_a.on(device, dtype), kap_a.on(device, dtype)
                if fwd:
                    outs_f[name] = [o.cpu() for o in get(fwd)(loc, kap, seed.to(device), S)]
                if bwd:
                    outs_b[name] = [
                        o.cpu() for o in get(bwd)(g.to(device), z_ref.to(device), aux_ref.to(device), loc, kap)
                    ]
            for op, outs, labels in ((fwd, outs_f, fwd_labels), (bwd, outs_b, ("grad_loc", "grad_kappa"))):
                if not op:
                    continue
                for x, y in pairs:
                    for label, ox, oy in zip(labels, outs[x], outs[y]):
                        mabs, mrel, ok = compare(ox, oy)
                        results.append(
                            Result(
                                op, dname, case, label, oy.numel(), mabs, mrel, ok and ox.dtype == oy.dtype, f"{x}-{y}"
                            )
                        )
    return results


def summarize(results) -> dict:
    """(pair, op, dtype, output) -> (max |delta|, max relative, all NaN/inf patterns equal, elements compared)."""
    out = {}
    for r in results:
        key = (r.pair, r.op, r.dtype, r.output)
        a, rel, ok, n = out.get(key, (0.0, 0.0, True, 0))
        out[key] = (max(a, r.max_abs), max(rel, r.max_rel), ok and r.nonfinite_ok, n + r.numel)
    return out
