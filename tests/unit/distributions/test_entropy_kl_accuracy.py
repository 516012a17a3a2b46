"""Entropy, KL(vMF || uniform) and KL(vMF || vMF) in float64 against 50-digit mpmath references, for d from 2
to 1e5 and kappa from 0.1 to 1e12: |computed - true| / max(1, |true|) <= 1e-12.

At large kappa -log C_d and kappa A_d are both ~kappa and cancel (the direct formula loses kappa * 2e-16,
2e-4 at kappa = 1e12); csrc/math/vmf.h sums them from the asymptotic expansions instead. The references
(log C_d and A_d per point, tests/data/entropy_kl_reference.json, written by tests/reference/entropy_kl_reference.py)
are combined here at 50 digits. ``python tests/unit/distributions/test_entropy_kl_accuracy.py`` prints the worst errors.
"""

from __future__ import annotations

import json
import os

import mpmath
import pytest
import torch
from torch.distributions import kl_divergence

from hvae_ext import HypersphericalUniform, VonMisesFisher, special

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TABLE = os.path.join(ROOT, "tests", "data", "entropy_kl_reference.json")
TOL = 1e-12
ONE_MINUS_COS = [0.0, 1e-9, 1e-3, 0.5, 1.0, 2.0]

mpmath.mp.dps = 50


def _table():
    with open(TABLE) as fh:
        rows = json.load(fh)["points"]
    by_d = {}
    for r in rows:
        by_d.setdefault(r["d"], []).append((r["kappa"], mpmath.mpf(r["log_c"]), mpmath.mpf(r["a"])))
    return by_d


def _log_area(d):
    d = mpmath.mpf(d)
    return mpmath.log(2) + d / 2 * mpmath.log(mpmath.pi) - mpmath.loggamma(d / 2)


def _e1(d):
    e = torch.zeros(d, dtype=torch.float64)
    e[0] = 1.0
    return e


def _rel(got, ref):
    return abs(mpmath.mpf(got) - ref) / max(1, abs(ref))


def entropy_and_kl_uniform_errors():
    """(d, kappa, error of entropy, error of KL(vMF || U)) for every point of the table."""
    out = []
    for d, pts in _table().items():
        kappa = torch.tensor([k for k, _, _ in pts], dtype=torch.float64)
        h = special.vmf_entropy(kappa, d).tolist()
        q = VonMisesFisher(_e1(d).expand(len(pts), d), kappa)
        h_dist = q.entropy().tolist()
        kl = kl_divergence(q, HypersphericalUniform(d, dtype=torch.float64)).tolist()
        for i, (k, lc, a) in enumerate(pts):
            ref_h = -lc - k * a
            ref_kl = _log_area(d) - ref_h
            out.append((d, k, max(_rel(h[i], ref_h), _rel(h_dist[i], ref_h)), _rel(kl[i], ref_kl)))
    return out


def kl_vmf_errors():
    """(d, kappa_p, kappa_q, 1 - cos, error) for all pairs of table points of one d and each 1 - cos."""
    out = []
    for d, pts in _table().items():
        n = len(pts)
        kp = torch.tensor([k for k, _, _ in pts], dtype=torch.float64)
        for omc in ONE_MINUS_COS:
            # through the distribution: mu_p = e_1 and mu_q at angle theta with 1 - cos(theta) = omc; the
            # reference uses the 1 - cos that the two float64 unit vectors actually have, |mu_p - mu_q|^2 / 2
            cos = 1.0 - omc
            mu_q = torch.zeros(d, dtype=torch.float64)
            mu_q[0] = cos
            mu_q[1] = (omc * (2.0 - omc)) ** 0.5
            mu_q = mu_q / mu_q.norm()
            mu_p = _e1(d)
            omc_true = mpmath.mpf(0.5) * mpmath.fsum(
                (mpmath.mpf(float(x)) - mpmath.mpf(float(y))) ** 2 for x, y in zip(mu_p[:2], mu_q[:2])
            )
            omc_true = mpmath.mpf(float(omc_true))  # the float64 value the kernel gets
            kls = [special.vmf_kl_vmf(kp[:, None], kp[None, :], torch.tensor(float(omc_true), dtype=torch.float64), d)]
            if d <= 1000:  # and through the distributions (|mu_p - mu_q|^2 / 2 formed in hvae_ext/distributions/kl.py)
                p = VonMisesFisher(mu_p.expand(n, n, d), kp[:, None].expand(n, n))
                q = VonMisesFisher(mu_q.expand(n, n, d), kp[None, :].expand(n, n))
                kls.append(kl_divergence(p, q))
            for kl in kls:
                kl = kl.tolist()
                for i, (k1, lc1, a1) in enumerate(pts):
                    for j, (k2, lc2, _a2) in enumerate(pts):
                        ref = lc1 + k1 * a1 - lc2 - k2 * a1 * (1 - omc_true)
                        out.append((d, k1, k2, omc, _rel(kl[i][j], ref)))
    return out


@pytest.fixture(scope="module")
def ent_kl():
    return entropy_and_kl_uniform_errors()


def test_entropy_accurate_to_1e12_up_to_kappa_1e12(ent_kl):
    bad = [(d, k, float(e)) for d, k, e, _ in ent_kl if not e <= TOL]
    assert not bad, bad[:10]


def test_kl_uniform_accurate_to_1e12_up_to_kappa_1e12(ent_kl):
    bad = [(d, k, float(e)) for d, k, _, e in ent_kl if not e <= TOL]
    assert not bad, bad[:10]


def test_kl_vmf_accurate_to_1e12_up_to_kappa_1e12():
    errs = kl_vmf_errors()
    assert len(errs) > 1000
    bad = [(d, k1, k2, omc, float(e)) for d, k1, k2, omc, e in errs if not e <= TOL]
    assert not bad, bad[:10]


def test_the_table_reaches_the_documented_range():
    pts = [(d, k) for d, rows in _table().items() for k, _, _ in rows]
    assert max(k for _, k in pts) >= 1e12 and max(d for d, _ in pts) >= 1e5 and min(d for d, _ in pts) == 2


def derivative_errors():
    """(d, kappa, relative error of kappa A_d'(kappa) = -dH/dkappa = dKL(vMF || U)/dkappa) for every point."""
    out = []
    for d, pts in _table().items():
        kappa = torch.tensor([k for k, _, _ in pts], dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(special.vmf_entropy(kappa, d).sum(), kappa)
        a_prime = torch.ops.hvae_ext.vmf_mean_resultant_backward(
            torch.ones_like(kappa), kappa.detach(), torch.tensor(d)
        )
        for i, (k, _lc, a) in enumerate(pts):
            ref = k * (1 - a * a) - (d - 1) * a  # kappa A' = kappa Var[w] > 0
            err = max(abs(mpmath.mpf(-g[i].item()) - ref), abs(mpmath.mpf(k * a_prime[i].item()) - ref)) / ref
            out.append((d, k, err))
    return out


def test_entropy_gradient_and_mean_resultant_derivative_accurate_at_large_kappa():
    """kappa A' = kappa (1 - A^2) - (d - 1) A ~ (d - 1)/(2 kappa) at large kappa: the direct form cancels two
    terms of size d (relative error kappa * eps); the kernels sum it from 1 - A and kappa (1 - A) - (d - 1)/2."""
    errs = derivative_errors()
    bad = [(d, k, float(e)) for d, k, e in errs if not e <= 1e-10]
    assert not bad, bad[:10]


if __name__ == "__main__":
    # writes docs/entropy_kl_accuracy.md, which docs/sampler.md shows (tests/repository/test_docs_tables.py checks that)
    e = entropy_and_kl_uniform_errors()
    v = kl_vmf_errors()
    g = derivative_errors()
    rows = [
        ("entropy H", len(e), max(x[2] for x in e), "max(1, abs(value))"),
        ("KL(vMF ‖ U)", len(e), max(x[3] for x in e), "max(1, abs(value))"),
        ("KL(vMF ‖ vMF), all pairs of one d × 6 values of 1 − cos", len(v), max(x[4] for x in v), "max(1, abs(value))"),
        ("κ A_d′(κ) = −dH/dκ (gradients)", len(g), max(x[2] for x in g), "abs(value)"),
    ]
    lines = ["| quantity | points | worst error, float64 | relative to |", "|---|--:|--:|---|"]
    lines += [f"| {q} | {n} | {float(w):.1e} | {r} |" for q, n, w, r in rows]
    out = os.path.join(ROOT, "docs", "entropy_kl_accuracy.md")
    with open(out, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {os.path.relpath(out)}")
