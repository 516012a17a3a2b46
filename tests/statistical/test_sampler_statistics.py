"""Statistical tests of the vMF sampler on the (d, kappa) grid of hvae_ext.testing (FULL_GRID).

Per (d, kappa) cell, with a random mean direction mu:

* KS test of w = mu^T z (through theta = arccos w) against the exact CDF (hvae_ext.testing.WLaw, by quadrature);
* the sample mean of w against A_d(kappa) (z-score with the sample standard deviation);
* the tangent directions v = (z - w mu) / |z - w mu|: uniform on the sphere of mu's orthogonal complement,
  tested through their mean (n (d-1) |mean v|^2 ~ chi^2_{d-1}) and their second moment in k random
  tangent directions (E[v v^T] = (I - mu mu^T) / (d - 1)).

Every family is Bonferroni-corrected over the whole grid (90 cells, family-wise alpha = 1e-3), whichever
subset runs. The CI subset below runs by default; the other cells are marked ``slow``
(``pytest -m slow tests/statistical/test_sampler_statistics.py``). ``python tests/statistical/test_sampler_statistics.py --out FILE``
runs the full grid (this file's and the gradient z-scores of test_gradients.py) and writes the markdown table
committed as experiments/results/sampler_statistics.md.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from scipy import stats

from hvae_ext import VonMisesFisher
from hvae_ext.testing import (
    DEVICES,
    FAMILY_ALPHA,
    FULL_GRID,
    NUM_GRID_CELLS,
    angle_from_loc,
    cell_seed,
    grid_params,
    random_unit,
    sample_count,
    w_law,
)

CI_CELLS = [
    (2, 1e-3),
    (2, 100.0),
    (3, 1.0),
    (3, 1e5),
    (5, 10.0),
    (10, 10.5),
    (16, 0.1),
    (50, 20.0),
    (100, 1000.0),
    (256, 1e5),
    (1000, 1.0),
    (10000, 10.0),
]
P_MIN = FAMILY_ALPHA / NUM_GRID_CELLS  # Bonferroni threshold per cell and per statistic
CHUNK_NUMBERS = 2_000_000  # numbers per rsample call, so memory stays ~16 MB in float64


def cell_statistics(
    d: int,
    kappa: float,
    n: int | None = None,
    dtype=torch.float64,
    device="cpu",
    seed: int | None = None,
    k_dirs: int = 6,
) -> dict:
    """Draws n samples of vMF(mu, kappa) (random mu) in chunks and returns the statistics of one cell."""
    n = sample_count(d) if n is None else n
    seed = cell_seed(d, kappa) if seed is None else seed
    mu = random_unit(d, seed, dtype=torch.float64)
    law = w_law(d, kappa)
    # k orthonormal directions in the tangent space of mu
    k = min(k_dirs, d - 1)
    g = torch.Generator().manual_seed(seed + 1)
    basis = torch.randn(d, k, dtype=torch.float64, generator=g)
    basis = basis - mu[:, None] * (mu @ basis)[None, :]
    basis, _ = torch.linalg.qr(basis)

    dist = VonMisesFisher(mu.to(dtype=dtype, device=device), torch.tensor(kappa, dtype=dtype, device=device))
    gen = torch.Generator(device=device).manual_seed(seed + 2)
    thetas, omws, vsum = [], [], torch.zeros(d, dtype=torch.float64)
    prod_sum = torch.zeros(k, k, dtype=torch.float64)
    prod_sq = torch.zeros(k, k, dtype=torch.float64)
    chunk = max(1, CHUNK_NUMBERS // d)
    done = 0
    while done < n:
        m = min(chunk, n - done)
        z = dist.sample((m,), generator=gen).to(device="cpu", dtype=torch.float64)
        w, theta = angle_from_loc(z, mu)
        thetas.append(theta)
        omws.append(2 * torch.sin(theta / 2) ** 2)  # 1 - w without cancellation
        perp = z - w[:, None] * mu
        v = perp / torch.linalg.vector_norm(perp, dim=-1, keepdim=True)
        vsum += v.sum(0)
        c = v @ basis
        prods = c[:, :, None] * c[:, None, :]
        prod_sum += prods.sum(0)
        prod_sq += (prods * prods).sum(0)
        done += m
        del z, perp, v, prods
    theta = torch.cat(thetas)
    omw = torch.cat(omws)

    ks = law.ks(theta)
    # mean of w: z-score of mean(1 - w) against 1 - A (the same difference, more precise near w = 1)
    sd = omw.std().item()
    mean_err = omw.mean().item() - law.one_minus_mean
    mean_z = mean_err / (sd / math.sqrt(n)) if sd > 0 else (0.0 if mean_err == 0 else math.inf)
    mean_p = 2 * stats.norm.sf(abs(mean_z))
    # tangent mean: n (d - 1) |vbar|^2 ~ chi^2_{d-1}
    vbar = vsum / n
    chi2 = n * (d - 1) * float(vbar @ vbar)
    tan_mean_p = float(stats.chi2.sf(chi2, d - 1))
    # tangent second moment in the k directions: E[c c^T] = I / (d - 1)
    mom = prod_sum / n
    var = (prod_sq / n - mom * mom).clamp_min(0)
    expected = torch.eye(k, dtype=torch.float64) / (d - 1)
    iu = torch.triu_indices(k, k)
    diff = (mom - expected)[iu[0], iu[1]]
    se = (var / n).sqrt()[iu[0], iu[1]]
    if bool((se > 0).all()):
        zs = (diff / se).abs()
        tan_cov_p = min(1.0, float(2 * stats.norm.sf(zs.max().item())) * len(zs))
        tan_cov_z = zs.max().item()
    else:  # d = 2: v = +-t, so (t^T v)^2 = 1 exactly
        tan_cov_z = float(diff.abs().max())
        tan_cov_p = 1.0 if tan_cov_z < 1e-9 else 0.0
    return dict(
        d=d,
        kappa=kappa,
        n=n,
        ks_stat=float(ks.statistic),
        ks_p=float(ks.pvalue),
        mean_w=1 - omw.mean().item(),
        A=law.mean,
        mean_err=mean_err,
        mean_z=mean_z,
        mean_p=mean_p,
        tan_mean_p=tan_mean_p,
        tan_cov_z=tan_cov_z,
        tan_cov_p=tan_cov_p,
    )


def _check(s: dict, p_min: float = P_MIN) -> None:
    where = f"d={s['d']}, kappa={s['kappa']:g}, n={s['n']}"
    assert s["ks_p"] > p_min, f"KS of w rejects at {where}: D={s['ks_stat']:.3g}, p={s['ks_p']:.3g}"
    assert s["mean_p"] > p_min, (
        f"mean of w at {where}: {s['mean_w']!r} vs A={s['A']!r} (z={s['mean_z']:.2f}, p={s['mean_p']:.3g})"
    )
    assert s["tan_mean_p"] > p_min, f"tangent mean not zero at {where}: p={s['tan_mean_p']:.3g}"
    assert s["tan_cov_p"] > p_min, (
        f"tangent second moment != (I - mu mu^T)/(d-1) at {where}: max z={s['tan_cov_z']:.3g}"
    )


@pytest.mark.parametrize("d,kappa", grid_params(CI_CELLS))
def test_sampler_grid(d, kappa):
    _check(cell_statistics(d, kappa))


@pytest.mark.parametrize("d,kappa", [(3, 10.0), (10, 1e5), (100, 1.0)])
def test_sampler_float32(d, kappa):
    """float32 samples follow the same law (KS resolution 1/sqrt(n) is far above float32 rounding)."""
    _check(cell_statistics(d, kappa, n=50_000, dtype=torch.float32))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("d,kappa", [(2, 1.0), (3, 20.0), (5, 10.5), (64, 100.0), (1000, 1e5)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sampler_devices(device, d, kappa, dtype):
    if device == "cpu" and dtype == torch.float64:
        pytest.skip("covered by test_sampler_grid")
    if device == "cpu" and d not in (2, 64):
        pytest.skip("float32 on CPU: covered by test_sampler_float32")
    _check(cell_statistics(d, kappa, n=min(50_000, sample_count(d)), dtype=dtype, device=device))


def test_quadrature_reference():
    """The quadrature law of w agrees with closed forms: d = 3 CDF, and dA/dkappa at d = 5, kappa = 2."""
    law = w_law(3, 7.0)
    w = np.array([-0.5, 0.3, 0.9, 0.99])
    exact = np.expm1(7 * (w + 1)) / np.expm1(14.0)
    np.testing.assert_allclose(law.cdf_w(w), exact, atol=1e-8)
    assert w_law(5, 2.0).var == pytest.approx(0.147389, abs=5e-7)
    assert w_law(5, 2.0).mean == pytest.approx(0.3611066502067, rel=1e-10)


def test_per_row_parameters():
    """A batch with different (mu, kappa) per row: each row follows its own law (row r uses r % B)."""
    d = 5
    kappas = [0.5, 10.0, 300.0]
    mus = torch.stack([random_unit(d, 11 + i) for i in range(3)])
    dist = VonMisesFisher(mus, torch.tensor(kappas, dtype=torch.float64))
    z = dist.sample((30_000,), generator=torch.Generator().manual_seed(5))
    assert z.shape == (30_000, 3, d)
    for i, k in enumerate(kappas):
        _, theta = angle_from_loc(z[:, i], mus[i])
        p = w_law(d, k).ks(theta).pvalue
        assert p > 1e-4, (i, k, p)


def test_d3_azimuth_uniform():
    """d = 3: the azimuth of z around mu is uniform on [0, 2 pi)."""
    mu = random_unit(3, 3)
    z = VonMisesFisher(mu, torch.tensor(4.0, dtype=torch.float64)).sample(
        (50_000,), generator=torch.Generator().manual_seed(3)
    )
    e = torch.linalg.qr(torch.stack([mu, torch.randn(3, dtype=torch.float64), torch.randn(3, dtype=torch.float64)], 1))[
        0
    ]
    phi = torch.atan2(z @ e[:, 2], z @ e[:, 1]) % (2 * math.pi)
    assert stats.kstest(phi.numpy(), stats.uniform(0, 2 * math.pi).cdf).pvalue > 1e-4


# --- the full-grid table ---------------------------------------------------------------------------------


def _main(argv: list[str]) -> None:
    import argparse
    import os
    import platform
    import time

    parser = argparse.ArgumentParser(description="Full statistical grid of the vMF sampler as a markdown table")
    parser.add_argument("--out", default="experiments/results/sampler_statistics.md")
    parser.add_argument("--grad-n", type=int, default=1_000_000, help="samples per cell of the gradient test")
    parser.add_argument("--no-grad", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(__file__))
    from test_gradients import grad_sample_count, grad_statistics

    import hvae_ext

    rows = []
    t_all = time.time()
    for d, k in [(d, k) for d, k in FULL_GRID]:
        t0 = time.time()
        s = cell_statistics(d, k)
        if not args.no_grad:
            g = grad_statistics(d, k, n=grad_sample_count(d, args.grad_n))
            s.update(grad_n=g["n"], grad_mean=g["mean"], grad_ref=g["ref"], grad_se=g["se"], grad_z=g["z"])
        s["seconds"] = time.time() - t0
        rows.append(s)
        print(
            f"d={d:6d} kappa={k:<8g} ks_p={s['ks_p']:.3g} mean_z={s['mean_z']:+.2f} "
            f"tan_p={s['tan_mean_p']:.3g}/{s['tan_cov_p']:.3g} grad_z={s.get('grad_z', float('nan')):+.2f} "
            f"({s['seconds']:.1f}s)",
            flush=True,
        )

    fails = [
        r
        for r in rows
        if min(r["ks_p"], r["mean_p"], r["tan_mean_p"], r["tan_cov_p"]) <= P_MIN or abs(r.get("grad_z", 0.0)) > 4
    ]
    lines = [
        "# Sampler statistics: the full grid",
        "",
        f"Generated by `python tests/statistical/test_sampler_statistics.py --out {args.out}` "
        f"(hvae_ext {hvae_ext.__version__}, torch {torch.__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads, {time.time() - t_all:.0f} s in all), float64 on CPU, random mu per cell.",
        "",
        "* **n**: samples for the KS/mean/tangent tests (1e5, fewer where d is large: n d <= 2e7).",
        "* **KS p**: Kolmogorov-Smirnov test of w = mu^T z against its exact CDF (quadrature of "
        "exp(kappa w)(1 - w^2)^((d-3)/2)). Bonferroni threshold over the 90 cells at family-wise 1e-3: "
        f"p > {P_MIN:.2g}.",
        "* **mean(w) - A**: error of the sample mean of w against A_d(kappa); **z**: that error in standard errors.",
        "* **tangent p**: uniformity of the tangent direction: chi^2 test of its mean, and of its second moment "
        "(max z over 21 entries in 6 random tangent directions, Bonferroni).",
        "* **grad z**: (mean of the per-sample dw/dkappa - dA/dkappa) / standard error, from n_grad samples "
        "(1e6, fewer where d is large: n d <= 2e8); must be within +-4.",
        "",
        "| d | kappa | n | KS D | KS p | mean(w) - A | z | tangent mean p | tangent 2nd-moment p "
        "| n_grad | dA/dkappa | grad mean | grad z |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['d']} | {r['kappa']:g} | {r['n']} | {r['ks_stat']:.2e} | {r['ks_p']:.3g} | {r['mean_err']:+.2e} "
            f"| {r['mean_z']:+.2f} | {r['tan_mean_p']:.3g} | {r['tan_cov_p']:.3g} | {r.get('grad_n', '')} "
            f"| {r.get('grad_ref', float('nan')):.6g} | {r.get('grad_mean', float('nan')):.6g} "
            f"| {r.get('grad_z', float('nan')):+.2f} |"
        )
    lines += [
        "",
        f"Cells failing a threshold: {len(fails)}"
        + ("" if not fails else ": " + ", ".join(f"(d={r['d']}, kappa={r['kappa']:g})" for r in fails)),
        "",
    ]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {args.out}; failing cells: {len(fails)}")


if __name__ == "__main__":
    _main(sys.argv[1:])


@pytest.mark.parametrize("d", [2, 3, 5, 64])
def test_proposal_counter_replays_the_kernel(d):
    """_vmf_sample_proposals (the benchmarks' opt-in counter) draws what vmf_sample draws for the same key: the
    same 1 - w per sample row (to rounding: the CPU kernel's vectorized math against the scalar one), so its
    counts are the kernel's proposals; d = 3 inverts the CDF (one draw)."""
    ops = torch.ops.hvae_ext
    loc = torch.nn.functional.normalize(
        torch.randn(7, d, dtype=torch.float64, generator=torch.Generator().manual_seed(d)), dim=-1
    )
    kappa = torch.tensor([1e-3, 0.5, 2.0, 10.0, 100.0, 1e4, 1e8], dtype=torch.float64)
    seed = torch.tensor([4242], dtype=torch.int64)
    _, omw = ops.vmf_sample(loc, kappa, seed, 300)
    omw_c, count = ops._vmf_sample_proposals(loc, kappa, seed, 300)
    assert count.dtype == torch.int32 and count.shape == omw.shape
    torch.testing.assert_close(omw_c, omw, rtol=1e-12, atol=1e-300)
    if d == 3:
        assert bool((count == 1).all())
    else:
        assert int(count.min()) >= 1 and 1.0 <= count.double().mean().item() < 3.0
