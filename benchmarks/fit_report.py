"""Writes docs/fitting.md and benchmarks/results/fitting.json: the accuracy of solvers of A_d(kappa) = r
against 50-digit mpmath roots, their speed, fits of samples at five (d, kappa) examples, and the Cora clustering.

Inputs (all committed, each with the command that makes it):
  tests/data/vmf_fit_reference.json         python tests/reference/vmf_fit_reference.py --jobs 2
  benchmarks/results/fit-cpu-1thread.json   python -m pytest benchmarks/test_bench_fit.py --benchmark-only \\
                                              --bench-mode full --bench-threads 1 --benchmark-timer time.process_time \\
                                              --benchmark-json=benchmarks/results/fit-cpu-1thread.json
  experiments/results/clustering/cora.json              python -m experiments.vmf_clustering --data-root DIR

Run: ``python benchmarks/fit_report.py`` (about a minute: it evaluates every solver on the reference points,
draws the samples of the examples and fits them).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import fit_baselines  # noqa: E402

import hvae_ext  # noqa: E402
from hvae_ext import VonMisesFisher, special  # noqa: E402

REF = os.path.join(ROOT, "tests", "data", "vmf_fit_reference.json")
BENCH = os.path.join(HERE, "results", "fit-cpu-1thread.json")
CORA = os.path.join(ROOT, "experiments", "results", "clustering", "cora.json")
OUT_JSON = os.path.join(HERE, "results", "fitting.json")
OUT_MD = os.path.join(ROOT, "docs", "fitting.md")

METHODS = {
    "ours": "hvae_ext `vmf_mean_resultant_inverse` (float64)",
    "ours32": "hvae_ext, float32",
    "scipy": "scipy 1.17 `vonmises_fisher.fit`",
    "banerjee": "Banerjee et al. (2005)",
    "sra": "Sra (2012): Banerjee + 2 Newton steps, A_d from scipy `ive`",
    "sra_exact": "Sra (2012) with A_d from hvae_ext",
}


def _solve(method: str, r: np.ndarray, d: np.ndarray) -> np.ndarray:
    if method in ("ours", "ours32"):
        dt = torch.float64 if method == "ours" else torch.float32
        return special.vmf_mean_resultant_inverse(torch.tensor(r, dtype=dt), torch.tensor(d)).double().numpy()
    out = np.empty(len(r))
    for i, (ri, di) in enumerate(zip(r, d)):
        if method == "scipy":
            out[i] = fit_baselines.scipy_fit_kappa(ri, di)[0]
        elif method == "banerjee":
            out[i] = fit_baselines.banerjee(ri, di)
        elif method == "sra":
            out[i] = fit_baselines.sra(np.array([ri]), int(di))[0]
        elif method == "sra_exact":
            out[i] = fit_baselines.sra_exact(np.array([ri]), int(di))[0]
    return out


def accuracy() -> dict:
    with open(REF) as fh:
        pts = json.load(fh)["points"]
    r = np.array([p["r"] for p in pts])
    d = np.array([p["d"] for p in pts])
    ref = np.array([float(p["kappa"]) for p in pts])
    cond = np.array([float(p["cond"]) for p in pts])
    f64_only = np.array([p["float64_only"] for p in pts])
    kinds = [p["kind"] for p in pts]
    res = {"points": [], "methods": list(METHODS)}
    errs = {}
    for m in METHODS:
        k = _solve(m, r, d)
        with np.errstate(all="ignore"):
            e = np.abs(k - ref) / ref
        e = np.where(np.isfinite(k), e, np.inf)
        if m == "ours32":
            e = np.where(f64_only, np.nan, e)
        errs[m] = e
    for i in range(len(pts)):
        res["points"].append(
            {
                "r": r[i],
                "d": int(d[i]),
                "kind": kinds[i],
                "kappa": ref[i],
                "cond": cond[i],
                **{f"rel_err_{m}": _num(errs[m][i]) for m in METHODS},
            }
        )
    res["summary"] = {}
    for m in METHODS:
        e = errs[m]
        valid = ~np.isnan(e)
        ec = e / np.maximum(1, cond)
        res["summary"][m] = {
            "points": int(valid.sum()),
            "failures": int(np.isinf(e[valid]).sum()),
            "max_rel_err": _num(np.nanmax(e)),
            "max_rel_err_over_max1c": _num(np.nanmax(ec)),
            "median_rel_err": _num(np.nanmedian(e)),
        }
    return res


def _num(x):
    x = float(x)
    return None if math.isnan(x) else ("inf" if math.isinf(x) else x)


def examples(seed: int = 0) -> list[dict]:
    """Five examples: 20000 samples of vMF(mu, kappa), fitted by scipy and by hvae_ext."""
    from scipy.stats import vonmises_fisher

    out = []
    for d, kappa in ((128, 5.0), (1024, 20.0), (1024, 50.0), (3, 5.0), (16, 100.0)):
        g = torch.Generator().manual_seed(seed + d)
        mu = torch.nn.functional.normalize(torch.randn(d, dtype=torch.float64, generator=g), dim=0)
        x = VonMisesFisher(mu, torch.tensor(kappa, dtype=torch.float64)).sample((20000,), generator=g)
        try:
            _, k_scipy = vonmises_fisher.fit(x.numpy())
        except Exception as exc:  # noqa: BLE001 - reported as it is
            k_scipy = f"raises {type(exc).__name__}"
        ours = VonMisesFisher.fit(x).concentration.item()
        rbar = x.mean(0).norm().item()
        a = special.vmf_mean_resultant(torch.tensor(kappa, dtype=torch.float64), d).item()
        # E|mean|^2 = A^2 + (A' + (d - 1) A / kappa) / n: the fit's expected value is A_d^{-1} of its root
        a_prime = 1 - a * a - (d - 1) * a / kappa
        r_exp = math.sqrt(a * a + (a_prime + (d - 1) * a / kappa) / 20000)
        k_exp = special.vmf_mean_resultant_inverse(torch.tensor(r_exp, dtype=torch.float64), d).item()
        sd = math.sqrt(a_prime / 20000) / a_prime
        out.append(
            {
                "d": d,
                "kappa": kappa,
                "n": 20000,
                "rbar": rbar,
                "A_d(kappa)": a,
                "scipy": k_scipy,
                "ours": ours,
                "expected_ours": k_exp,
                "sd": sd,
            }
        )
    return out


def speed() -> dict | None:
    if not os.path.exists(BENCH):
        return None
    with open(BENCH) as fh:
        data = json.load(fh)
    rows = {}
    for b in data["benchmarks"]:
        ei = b["extra_info"]
        if ei.get("kind") != "fit":
            continue
        rows[(ei["impl"], ei["d"])] = {"N": ei["N"], "s_per_1e6": 1e6 / ei["items_per_s_median"]}
    info = data.get("machine_info", {}).get("hvae_ext_bench", {})
    timer = data["benchmarks"][0]["options"].get("timer") if data.get("benchmarks") else None
    return {
        "timer": timer,
        "rows": [{"impl": k[0], "d": k[1], **v} for k, v in sorted(rows.items(), key=lambda t: (t[0][1], t[0][0]))],
        "machine": info.get("cpu_model"),
        "threads": info.get("torch_num_threads"),
        "mode": info.get("bench_mode"),
    }


def _fmt(x) -> str:
    if x is None:
        return "–"
    if x == "inf" or (isinstance(x, float) and math.isinf(x)):
        return "fails"
    if isinstance(x, str):
        return x
    if x == 0:
        return "0"
    return f"{x:.1e}"


def _heading(title: str) -> list[str]:
    return [f"## {title}", ""]


def _missing(path: str, command: str) -> str:
    """The line standing for a section whose input file is absent."""
    return f"({path} not present: run {command}.)"


def _intro_section() -> list[str]:
    """Title, provenance and what is measured."""
    L = []
    L.append("# Fitting a vMF from data: A_d^-1, maximum likelihood and mixtures")
    L.append("")
    L.append(
        "Generated by `python benchmarks/fit_report.py` (inputs and their commands in the script's docstring); "
        "numbers also in `benchmarks/results/fitting.json`. Do not edit by hand."
    )
    L.append("")
    L.append(
        "What is measured: `hvae_ext.special.vmf_mean_resultant_inverse(r, dim)` (kappa with A_d(kappa) = r; "
        "method and error analysis in `csrc/math/vmf_fit.h`), which `hvae_ext.VonMisesFisher.fit(x, weight)` "
        "(maximum likelihood: mu = m / |m|, kappa = A_d^-1(|m|), m the weighted mean of the points) and "
        "`hvae_ext.fit_mixture(x, k)` (EM for a mixture of vMFs) use. Tests: `tests/unit/distributions/test_fit.py`."
    )
    L.append("")
    return L


def _accuracy_section(acc: dict) -> list[str]:
    """Accuracy of A_d^-1 against the mpmath roots, per d and overall."""
    L = []
    L.append("## Accuracy of kappa = A_d^-1(r) against 50-digit mpmath roots")
    L.append("")
    pts = acc["points"]
    dims = sorted({p["d"] for p in pts if p["kind"] == "grid"})
    rs = sorted({p["r"] for p in pts if p["kind"] == "grid"})
    L.append(
        f"Grid: d in {{{', '.join(str(d) for d in dims)}}} x r in {{{', '.join(f'{r:.10g}' for r in rs)}}} "
        f"({len(dims) * len(rs)} points; r is rounded to float32 except 1 - 1e-10), plus "
        f"{sum(p['kind'] == 'random' for p in pts)} seeded random points (tests/reference/vmf_fit_reference.py). "
        'Relative error |kappa - kappa*| / kappa*; "fails" = NaN, inf or an exception. c = r / (kappa A_d\'(kappa)) '
        "is the condition number of the problem (about 1/(1 - r) when kappa >> d): an error in r of one "
        "rounding (1.1e-16) alone moves kappa by 1.1e-16 c."
    )
    L.append("")
    L.append(
        "Worst relative error divided by max(1, c) over the grid's r values, per d (the accuracy "
        "measure; raw relative errors per point are in benchmarks/results/fitting.json):"
    )
    L.append("")
    ms = ["ours", "scipy", "banerjee", "sra", "sra_exact"]
    L.append("| d | " + " | ".join(METHODS[m] for m in ms) + " |")
    L.append("|---|" + "---|" * len(ms))
    for d in dims:
        row = [p for p in pts if p["kind"] == "grid" and p["d"] == d]
        cells = []
        for m in ms:
            vals = [
                p[f"rel_err_{m}"]
                if not isinstance(p[f"rel_err_{m}"], float)
                else p[f"rel_err_{m}"] / max(1.0, p["cond"])
                for p in row
            ]
            nf = sum(v == "inf" for v in vals)
            fin = [v for v in vals if isinstance(v, float)]
            s = _fmt(max(fin)) if fin else "–"
            cells.append(s + (f" ({nf} fail)" if nf else ""))
        L.append(f"| {d} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("All points (grid and random), the worst error divided by max(1, c):")
    L.append("")
    L.append("| method | points | failures | max rel. error | max rel. error / max(1, c) | median rel. error |")
    L.append("|---|---|---|---|---|---|")
    for m, s in acc["summary"].items():
        L.append(
            f"| {METHODS[m]} | {s['points']} | {s['failures']} | {_fmt(s['max_rel_err'])} | "
            f"{_fmt(s['max_rel_err_over_max1c'])} | {_fmt(s['median_rel_err'])} |"
        )
    L.append("")
    L.append(
        "The target, 1e-12 max(1, c) in float64 and 2e-6 max(1, c) in float32, is asserted by "
        "tests/unit/distributions/test_fit.py on the same points."
    )
    L.append("")
    return L


def _examples_section(ex: list[dict]) -> list[str]:
    """Five examples: fits of 20,000 samples by scipy and hvae_ext."""
    L = []
    L.append("## Fits of 20,000 samples (five examples)")
    L.append("")
    L.append(
        "Samples of vMF(mu, kappa) from hvae_ext's sampler (seeded), fitted by `scipy.stats.vonmises_fisher.fit` "
        "and by `hvae_ext.VonMisesFisher.fit`. The sampling error of kappa-hat is of order "
        "sd = 1 / sqrt(n A_d'(kappa)), and the length of the sample mean is biased upwards by its d - 1 "
        "tangential coordinates when n is not large against d: E|mean|^2 = A_d^2 + (A_d' + (d - 1) A_d / kappa) / n, "
        'so the maximum-likelihood kappa-hat is expected near A_d^-1(sqrt(E|mean|^2)) (column "expected"); '
        "that is the estimator's statistics, not a numerical error."
    )
    L.append("")
    L.append("| d | kappa | mean resultant length | scipy kappa-hat | hvae_ext kappa-hat | expected (+- sd) |")
    L.append("|---|---|---|---|---|---|")
    for e in ex:
        sc = e["scipy"] if isinstance(e["scipy"], str) else f"{e['scipy']:.6g}"
        L.append(
            f"| {e['d']} | {e['kappa']:g} | {e['rbar']:.6f} | {sc} | {e['ours']:.6g} | "
            f"{e['expected_ours']:.4g} +- {e['sd']:.2g} |"
        )
    L.append("")
    return L


def _speed_section(sp: dict | None) -> list[str]:
    """Seconds per 1e6 values of each implementation (from the benchmark file)."""
    L = _heading("Speed per 1e6 values")
    if sp is None:
        return L + [_missing("benchmarks/results/fit-cpu-1thread.json", "the benchmark command above"), ""]
    L.append(
        f"`benchmarks/test_bench_fit.py` ({sp['mode']} mode), {sp['machine']}, {sp['threads']} thread(s), "
        f"timer `{sp['timer']}` (CPU time of the process: the 2-core machine was shared with training jobs), "
        "median of the rounds; r uniform in [1e-3, 0.999]. scipy's `fit` is one Python call per value on "
        "fewer values (N below), scaled to 1e6."
    )
    L.append("")
    names = {
        "ours": "hvae_ext forward",
        "ours_fwd_bwd": "hvae_ext forward + backward",
        "banerjee": "Banerjee",
        "sra": "Sra (2 Newton steps, scipy ive)",
        "scipy_fit": "scipy vonmises_fisher.fit",
    }
    ds = sorted({r["d"] for r in sp["rows"]})
    L.append("| implementation | " + " | ".join(f"d = {d}: s / 1e6 values" for d in ds) + " |")
    L.append("|---|" + "---|" * len(ds))
    for impl in names:
        cells = []
        for d in ds:
            row = [r for r in sp["rows"] if r["impl"] == impl and r["d"] == d]
            cells.append(f"{row[0]['s_per_1e6']:.3g} (N = {row[0]['N']})" if row else "–")
        L.append(f"| {names[impl]} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def _cora_section(cora: dict | None) -> list[str]:
    """Clustering Cora: a mixture of vMFs against spherical k-means."""
    L = _heading("Clustering Cora's normalized word features: mixture of vMFs against spherical k-means")
    if cora is None:
        return L + [_missing("experiments/results/clustering/cora.json", "the command above"), ""]
    c = cora["config"]
    # runs recorded before the research code left the package carry its old spelling; show today's
    command = (
        c["command"]
        .replace("python -m hvae_ext.experiments.", "python -m experiments.")
        .replace(" --out results/", " --out experiments/results/")
    )
    L.append(
        f"`{command}`: n = {c['n']} papers, d = {c['d']}, k = {c['k']}, seeds {c['seeds'][0]}-"
        f"{c['seeds'][-1]}; both methods start from the same k-means++ centers per seed; EM stops at a relative "
        f"log-likelihood change below {c['tol']:g} or {c['max_iter']} iterations. Agreement with the 7 "
        "paper classes by normalized mutual information (NMI) and adjusted Rand index (ARI)."
    )
    L.append("")
    L.append(
        "| method | NMI mean (min-max) | ARI mean (min-max) | iterations (mean) | s per run (mean; wall clock, 1 thread, shared machine) |"
    )
    L.append("|---|---|---|---|---|")
    for key, name in (("movmf", "mixture of vMFs (EM, `hvae_ext.fit_mixture`)"), ("spkmeans", "spherical k-means")):
        runs = cora[key]
        nmi = np.array([r["nmi"] for r in runs])
        ari = np.array([r["ari"] for r in runs])
        it = np.mean([r["iterations"] for r in runs])
        t = np.mean([r["seconds"] for r in runs])
        L.append(
            f"| {name} | {nmi.mean():.3f} ({nmi.min():.3f}-{nmi.max():.3f}) | {ari.mean():.3f} "
            f"({ari.min():.3f}-{ari.max():.3f}) | {it:.1f} | {t:.2f} |"
        )
    L.append("")
    steps = [r["min_log_likelihood_step"] for r in cora["movmf"]]
    best = max(cora["movmf"], key=lambda r: r["log_likelihood"][-1])
    L.append(
        f"EM's log-likelihood never decreased: the smallest change between iterations over all seeds is "
        f"{min(steps):.3g} nats. Best-likelihood seed {best['seed']}: NMI {best['nmi']:.3f}, "
        f"concentrations {', '.join(f'{k:.0f}' for k in sorted(best['concentration']))}."
    )
    L.append("")
    L.append("![Cora clustering](figures/cora_vmf_clustering.png)")
    L.append("")
    return L


def markdown(acc: dict, ex: list[dict], sp: dict | None, cora: dict | None) -> str:
    return "\n".join(
        _intro_section() + _accuracy_section(acc) + _examples_section(ex) + _speed_section(sp) + _cora_section(cora)
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    acc = accuracy()
    ex = examples()
    sp = speed()
    cora = None
    if os.path.exists(CORA):
        with open(CORA) as fh:
            cora = json.load(fh)
    os.makedirs(os.path.dirname(OUT_JSON), exist_ok=True)
    with open(OUT_JSON, "w") as fh:
        json.dump(
            {
                "accuracy": acc,
                "examples": ex,
                "speed": sp,
                "hvae_ext": hvae_ext.__version__,
                "scipy": __import__("scipy").__version__,
            },
            fh,
            indent=1,
        )
        fh.write("\n")
    with open(OUT_MD, "w") as fh:
        fh.write(markdown(acc, ex, sp, cora))
    print(f"wrote {OUT_JSON} and {OUT_MD}")


if __name__ == "__main__":
    main()
