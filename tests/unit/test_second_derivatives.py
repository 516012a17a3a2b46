"""The derivatives of the mean resultant length that the first and the double backward use, in float64 against
60-digit mpmath references, for d from 2 to 1e5 and kappa from 0 to 1e12:

    A_d'   (vmf_mean_resultant_backward, and bessel_iv_ratio_backward R_v' at v = d/2: A_d = R_{d/2}),
    D      = kappa A_d' (vmf_kl_uniform_backward),
    A_d''  (_vmf_mean_resultant_second_derivative, the double backward of A_d, of log C_d and of KL(vMF || vMF)),
    D'     = A_d' + kappa A_d'' (_vmf_kl_uniform_second_derivative, the double backward of KL(vMF || U) and of H).

Criterion: |computed - true| <= 1e-10 |true|, except for D', which changes sign once (at the maximum of
D = kappa Var[w], kappa ~ 1.3 at d = 2, ~ d/2 at large d): there the error is taken relative to
max(|D'|, A_d'), A_d' being the size of each of the two terms of D' = A_d' + kappa A_d'' (an absolute floor at
the scale of the terms; away from the zero A_d' <= 2.5 |D'| or so, and at small and large kappa A_d' ~ |D'|).
A_d'' < 0 for every kappa > 0 on the grid (checked), so it is held to 1e-10 relative everywhere.

The references (tests/data/second_derivative_reference.json, written by tests/reference/second_derivative_reference.py)
hold A, A' = E[(w - A)^2] and A'' = E[(w - A)^3] per point, as integrals at 60 digits. They include the four
points where the direct forms failed: A'' at d = 64, kappa = 6.06e-6 (wrong sign) and d = 16, kappa = 1e-3
(2.8e-6), D' at d = 257, kappa = 9.6e8 (47 %) and d = 16, kappa = 1e6 (7e-7).

``python tests/unit/test_second_derivatives.py`` writes docs/second_derivative_accuracy.md (shown in docs/sampler.md).
"""

from __future__ import annotations

import json
import os

import mpmath
import pytest
import torch

import hvae_ext  # noqa: F401  (loads the ops)
from hvae_ext import special

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLE = os.path.join(ROOT, "tests", "data", "second_derivative_reference.json")
TOL = 1e-10
ISSUE_POINTS = [(64, 6.06e-6), (16, 1e-3), (257, 9.6e8), (16, 1e6)]
ops = torch.ops.hvae_ext

mpmath.mp.dps = 60


def _rows():
    with open(TABLE) as fh:
        rows = json.load(fh)["points"]
    return [(r["d"], r["kappa"], mpmath.mpf(r["a"]), mpmath.mpf(r["a1"]), mpmath.mpf(r["a2"])) for r in rows]


ROWS = _rows()


def _evaluate():
    """Per point: d, kappa and the errors of A', D, A'', D', R'_{d/2} (bessel_iv_ratio_backward)."""
    d = torch.tensor([r[0] for r in ROWS], dtype=torch.float64)
    k = torch.tensor([r[1] for r in ROWS], dtype=torch.float64)
    one = torch.ones_like(k)
    a1 = ops.vmf_mean_resultant_backward(one, k, d).tolist()
    dd = ops.vmf_kl_uniform_backward(one, k, d).tolist()
    a2 = ops._vmf_mean_resultant_second_derivative(k, d).tolist()
    dp = ops._vmf_kl_uniform_second_derivative(k, d).tolist()
    r1 = ops.bessel_iv_ratio_backward(one, d / 2, k).tolist()
    out = []
    for i, (dim, kappa, _a, ref_a1, ref_a2) in enumerate(ROWS):
        ref_d = kappa * ref_a1
        ref_dp = ref_a1 + kappa * ref_a2
        rel = lambda got, ref, scale=None: abs(mpmath.mpf(got) - ref) / (scale if scale is not None else abs(ref))  # noqa: E731
        out.append(
            {
                "d": dim,
                "kappa": kappa,
                "a1": rel(a1[i], ref_a1),
                "D": rel(dd[i], ref_d) if kappa > 0 else abs(mpmath.mpf(dd[i])),
                "a2": rel(a2[i], ref_a2) if kappa > 0 else abs(mpmath.mpf(a2[i])),
                "dp": rel(dp[i], ref_dp, max(abs(ref_dp), ref_a1)),
                "dp_rel": rel(dp[i], ref_dp),
                "r1": rel(r1[i], ref_a1),
            }
        )
    return out


@pytest.fixture(scope="module")
def errors():
    return _evaluate()


def test_the_table_covers_the_grid_and_the_failed_points():
    pts = {(d, k) for d, k, *_ in ROWS}
    assert min(d for d, _ in pts) == 2 and max(d for d, _ in pts) == 100000
    assert min(k for _, k in pts) == 0.0 and max(k for _, k in pts) >= 1e12
    for p in ISSUE_POINTS:
        assert p in pts, p
    assert len(pts) > 800
    # A'' < 0 on the whole grid (so its relative error is meaningful everywhere); D' changes sign
    assert all(a2 < 0 for _, k, _, _, a2 in ROWS if k > 0)
    assert any(a1 + k * a2 < 0 for _, k, _, a1, a2 in ROWS) and any(a1 + k * a2 > 0 for _, k, _, a1, a2 in ROWS)


def test_the_integral_references_agree_with_the_riccati_equation():
    """The rows computed from the integrals (A' = Var[w] directly) against A' = 1 - A^2 - (d - 1) A / kappa from their
    A, where that form keeps enough digits (kappa <= 1e5). (The other rows take A' from that equation.)"""
    with open(TABLE) as fh:
        methods = [r["method"] for r in json.load(fh)["points"]]
    checked = 0
    for (d, k, a, a1, _), method in zip(ROWS, methods):
        if method == "integral" and 0 < k <= 1e5:
            ric = 1 - a * a - (d - 1) * a / mpmath.mpf(k)
            assert abs(ric - a1) <= mpmath.mpf(10) ** -30 * a1, (d, k)
            checked += 1
    assert checked >= 20


def _bad(errs, key):
    return [(e["d"], e["kappa"], float(e[key])) for e in errs if not e[key] <= TOL]


def test_mean_resultant_second_derivative_accurate(errors):
    bad = _bad(errors, "a2")
    assert not bad, bad[:10]


def test_kl_uniform_second_derivative_accurate(errors):
    bad = _bad(errors, "dp")
    assert not bad, bad[:10]


def test_first_derivatives_accurate(errors):
    """A', D = kappa A' and R_v' at v = d/2 (the first backward, also used by the double backward: R_{v+1}' in
    that of log I_v) on the same grid."""
    for key in ("a1", "D", "r1"):
        bad = _bad(errors, key)
        assert not bad, (key, bad[:10])


def test_the_failed_points(errors):
    by = {(e["d"], e["kappa"]): e for e in errors}
    for p in ISSUE_POINTS:
        e = by[p]
        assert e["a2"] <= TOL and e["dp_rel"] <= TOL, (p, e)


def test_double_backward_uses_them():
    """torch.autograd.grad twice gives A'' and D' at the failed points (through the registered formulas)."""
    for d, kappa in ISSUE_POINTS:
        ref = {(r[0], r[1]): r for r in ROWS}[(d, kappa)]
        _, _, _, a1, a2 = ref
        k = torch.tensor([kappa], dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(special.vmf_mean_resultant(k, d).sum(), k, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), k)
        assert abs(mpmath.mpf(h.item()) - a2) <= TOL * abs(a2), (d, kappa, h.item())
        k = torch.tensor([kappa], dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(ops.vmf_kl_uniform(k, torch.tensor(d)).sum(), k, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), k)
        dp = a1 + kappa * a2
        assert abs(mpmath.mpf(h.item()) - dp) <= TOL * abs(dp), (d, kappa, h.item())


def _region(d, kappa):
    """The regime of csrc/math/vmf.h's second derivatives (for the report)."""
    mu = d / 2 - 1
    if kappa == 0:
        return "κ = 0"
    if kappa * kappa <= 0.1 * max(4 * (mu + 1), mu * (mu + 2)):
        return "T (Taylor series in κ)"
    if mu >= 32:
        return "D (Olver, differentiated)"
    if kappa >= max(20.0, 0.64 * mu * mu):
        return "H (Hankel, differentiated)"
    return "C (cumulants of the power series)"


def accuracy_table(errs) -> str:
    """Second derivatives per regime of csrc/math/vmf.h; first derivatives over all points."""
    second = [
        ("A_d″ (double backward of A_d, log C_d, KL(vMF ‖ vMF))", "a2", "abs(value)"),
        ("D′ = A_d′ + κA_d″ (double backward of KL(vMF ‖ U), entropy)", "dp", "max(abs(value), A_d′)"),
    ]
    first = [
        ("A_d′ (backward of A_d, log C_d)", "a1"),
        ("κA_d′ (backward of KL(vMF ‖ U), entropy)", "D"),
        ("R_v′ at v = d/2 (backward of I_v/I_v−1; in the double backward of log I_v)", "r1"),
    ]
    lines = ["| quantity | regime | points | worst error, float64 | relative to |", "|---|---|--:|--:|---|"]
    for name, key, rel in second:
        worst = {}
        for e in errs:
            reg = _region(e["d"], e["kappa"])
            n, w = worst.get(reg, (0, 0.0))
            worst[reg] = (n + 1, max(w, float(e[key])))
        for reg in sorted(worst):
            n, w = worst[reg]
            lines.append(f"| {name} | {reg} | {n} | {w:.1e} | {rel} |")
    for name, key in first:
        lines.append(f"| {name} | all | {len(errs)} | {max(float(e[key]) for e in errs):.1e} | abs(value) |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    errs = _evaluate()
    table = accuracy_table(errs)
    out = os.path.join(ROOT, "docs", "second_derivative_accuracy.md")
    with open(out, "w") as fh:
        fh.write(table)
    print(table, end="")
    print(f"wrote {os.path.relpath(out)}")
