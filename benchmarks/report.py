"""Turns pytest-benchmark JSON files of this suite into markdown tables and a throughput plot.

    python benchmarks/report.py benchmarks/results/*.json [--out benchmarks/results] [--stat min|median]

Writes ``<out>/README.md`` (per JSON file, i.e. per run on one machine: the machine and device, the speed
targets with PASS/FAIL, the cost of argument validation (validated beside validate_args=False), throughput tables
with ratios against the pure-PyTorch baseline, torch.randn(N, d) and
power_spherical, the proposals per accepted sample, the normalizer against scipy) and ``<out>/throughput.png``
(samples/s against d, one panel per kappa, one row per run and device). Ratios are only ever taken inside one
JSON file: every figure is a ratio measured side by side on one machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os

IMPL_LABEL = {
    "ours": "hvae_ext",
    "baseline": "PyTorch Wood",
    "power_spherical": "power_spherical",
    "randn": "randn(N, d)",
    "ours_ps": "hvae_ext PowerSpherical",
}


# --- loading ---------------------------------------------------------------------------------------------


class Run:
    def __init__(self, path: str, stat: str):
        with open(path) as f:
            data = json.load(f)
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        self.machine = data.get("machine_info", {})
        self.info = self.machine.get("hvae_ext_bench", {})
        self.datetime = data.get("datetime", "")
        self.recs = []
        for b in data.get("benchmarks", []):
            e = dict(b.get("extra_info", {}))
            if "kind" not in e:
                continue
            t = b["stats"][stat]
            e["time"] = t
            e["time_median"] = b["stats"]["median"]
            if e["kind"] == "rsample":
                e.setdefault("validate", False)  # runs before the validated cells timed validate_args=False only
            e["rate"] = e["items"] / t if t > 0 else float("nan")
            e["rounds"] = b["stats"]["rounds"]
            self.recs.append(e)

    def find(self, **kw):
        if kw.get("kind") == "rsample":
            kw.setdefault("validate", False)  # tables and targets without the word: validate_args=False
        for r in self.recs:
            if all(r.get(k) == v for k, v in kw.items()):
                return r
        return None

    def rate(self, **kw):
        r = self.find(**kw)
        return None if r is None else r["rate"]

    def label(self) -> str:
        i = self.info
        cpu = (
            f"{i.get('cpu_model', self.machine.get('cpu', {}).get('brand_raw', '?'))}, {i.get('cpu_count', '?')} cores"
        )
        dev = i.get("cuda_device") or "no CUDA device"
        return (
            f"{cpu}, {i.get('torch_num_threads', '?')} torch thread(s); GPU: {dev}; "
            f"torch {i.get('torch_version', '?')}, hvae_ext {i.get('hvae_ext_version', '?')}, "
            f"{i.get('bench_mode', '?')} mode, {self.datetime[:19]}"
        )


# --- formatting --------------------------------------------------------------------------------------------


def fmt_rate(x):
    if x is None or not math.isfinite(x):
        return "–"
    for scale, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.3g}{suf}"
    return f"{x:.3g}"


def fmt_ratio(x):
    return "–" if x is None or not math.isfinite(x) else f"{x:.3g}×"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def md_table(header, rows, align=None):
    align = align or ["---:"] * len(header)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def kstr(k):
    return f"{k:g}"


# --- tables --------------------------------------------------------------------------------------------


def rsample_table(run: Run, device: str, dtype: str, n: int, kappas=None):
    ds = sorted(
        {
            r["d"]
            for r in run.recs
            if r["kind"] == "rsample" and r["device"] == device and r["dtype"] == dtype and r["N"] == n
        }
    )
    ks = sorted(
        {
            r["kappa"]
            for r in run.recs
            if r["kind"] == "rsample" and r["device"] == device and r["dtype"] == dtype and r["N"] == n
        }
    )
    if kappas is not None:
        ks = [k for k in ks if k in kappas]
    header = [
        "d",
        "κ",
        "randn",
        "hvae_ext fwd",
        "hvae_ext fwd+bwd",
        "Wood (PyTorch) fwd",
        "Wood (PyTorch) fwd+bwd",
        "power_sph. fwd",
        "power_sph. fwd+bwd",
        "fwd ÷ Wood",
        "fwd+bwd ÷ Wood",
        "fwd ÷ power_sph.",
        "fwd+bwd ÷ power_sph.",
        "time fwd / time randn",
    ]
    rows = []
    for d in ds:
        for k in ks:
            q = dict(device=device, dtype=dtype, N=n, d=d)
            rr = run.rate(kind="randn", **q)
            v = {
                (i, m): run.rate(kind="rsample", impl=i, mode=m, kappa=k, **q)
                for i in ("ours", "baseline", "power_spherical")
                for m in ("fwd", "fwd+bwd")
            }
            if all(x is None for x in v.values()):
                continue
            rows.append(
                [
                    d,
                    kstr(k),
                    fmt_rate(rr),
                    fmt_rate(v["ours", "fwd"]),
                    fmt_rate(v["ours", "fwd+bwd"]),
                    fmt_rate(v["baseline", "fwd"]),
                    fmt_rate(v["baseline", "fwd+bwd"]),
                    fmt_rate(v["power_spherical", "fwd"]),
                    fmt_rate(v["power_spherical", "fwd+bwd"]),
                    fmt_ratio(ratio(v["ours", "fwd"], v["baseline", "fwd"])),
                    fmt_ratio(ratio(v["ours", "fwd+bwd"], v["baseline", "fwd+bwd"])),
                    fmt_ratio(ratio(v["ours", "fwd"], v["power_spherical", "fwd"])),
                    fmt_ratio(ratio(v["ours", "fwd+bwd"], v["power_spherical", "fwd+bwd"])),
                    fmt_ratio(ratio(rr, v["ours", "fwd"])),
                ]
            )
    if not rows:
        return None
    # drop columns that are empty in every row
    keep = [j for j in range(len(header)) if j < 2 or any(row[j] != "–" for row in rows)]
    return md_table([header[j] for j in keep], [[row[j] for j in keep] for row in rows])


def power_spherical_table(run: Run, device: str, dtype: str, n: int):
    """hvae_ext's PowerSpherical against the power_spherical package and hvae_ext's vMF, per (d, kappa)."""
    recs = [
        r
        for r in run.recs
        if r["kind"] == "rsample"
        and r["impl"] == "ours_ps"
        and r["device"] == device
        and r["dtype"] == dtype
        and r["N"] == n
    ]
    if not recs:
        return None
    header = [
        "d",
        "κ",
        "PowerSpherical fwd",
        "PowerSpherical fwd+bwd",
        "power_sph. fwd",
        "power_sph. fwd+bwd",
        "vMF fwd",
        "vMF fwd+bwd",
        "fwd ÷ power_sph.",
        "fwd+bwd ÷ power_sph.",
        "fwd ÷ vMF",
        "fwd+bwd ÷ vMF",
    ]
    rows = []
    for d, k in sorted({(r["d"], r["kappa"]) for r in recs}):
        q = dict(kind="rsample", device=device, dtype=dtype, N=n, d=d, kappa=k)
        v = {(i, m): run.rate(impl=i, mode=m, **q) for i in ("ours_ps", "power_spherical", "ours") for m in MODES_}
        rows.append(
            [
                d,
                kstr(k),
                fmt_rate(v["ours_ps", "fwd"]),
                fmt_rate(v["ours_ps", "fwd+bwd"]),
                fmt_rate(v["power_spherical", "fwd"]),
                fmt_rate(v["power_spherical", "fwd+bwd"]),
                fmt_rate(v["ours", "fwd"]),
                fmt_rate(v["ours", "fwd+bwd"]),
                fmt_ratio(ratio(v["ours_ps", "fwd"], v["power_spherical", "fwd"])),
                fmt_ratio(ratio(v["ours_ps", "fwd+bwd"], v["power_spherical", "fwd+bwd"])),
                fmt_ratio(ratio(v["ours_ps", "fwd"], v["ours", "fwd"])),
                fmt_ratio(ratio(v["ours_ps", "fwd+bwd"], v["ours", "fwd+bwd"])),
            ]
        )
    return md_table(header, rows)


MODES_ = ("fwd", "fwd+bwd")


def targets_power_spherical(run: Run):
    """hvae_ext's PowerSpherical against the power_spherical package (CPU, the quick-mode cell)."""
    rows = []
    cpu = dict(kind="rsample", device="cpu", dtype="float32", N=65536, d=16, kappa=10.0)
    for m, lim in (("fwd", None), ("fwd+bwd", 5.0)):
        val = ratio(run.rate(impl="ours_ps", mode=m, **cpu), run.rate(impl="power_spherical", mode=m, **cpu))
        if val is None:
            rows.append([f"CPU d=16 κ=10 N=65536 {m}: PowerSpherical ÷ power_spherical", "–", "not measured"])
        elif lim is None:
            rows.append([f"CPU d=16 κ=10 N=65536 {m}: PowerSpherical ÷ power_spherical", fmt_ratio(val), "(no target)"])
        else:
            rows.append(
                [
                    f"CPU d=16 κ=10 N=65536 {m}: PowerSpherical ≥ {lim:g}× power_spherical",
                    fmt_ratio(val),
                    "PASS" if val >= lim else "FAIL",
                ]
            )
    return md_table(["target", "measured", "result"], rows, ["---", "---:", "---"])


def proposals_table(run: Run):
    recs = [r for r in run.recs if r["kind"] == "proposals"]
    if not recs:
        return None
    ds = sorted({r["d"] for r in recs})
    ks = sorted({r["kappa"] for r in recs})
    rows = []
    for d in ds:
        row = [d]
        for k in ks:
            r = run.find(kind="proposals", d=d, kappa=k)
            if r is None:
                row.append("–")
                continue
            cell = f"{r['proposals_exact']:.4f} ({r['proposals_empirical']:.4f})"
            if r.get("proposals_counted"):
                cell += f"; hvae_ext {r['proposals_ours']:.4f}"
            elif d == 3:
                cell += "; hvae_ext 1"
            row.append(cell)
        rows.append(row)
    return md_table(["d"] + [f"κ = {kstr(k)}" for k in ks], rows)


def normalizer_table(run: Run):
    recs = [r for r in run.recs if r["kind"] == "normalizer"]
    if not recs:
        return None
    keys = sorted({(r["device"], r["dtype"], r["d"], r["N"]) for r in recs})
    rows = []
    for dev, dt, d, n in keys:
        ours = run.rate(kind="normalizer", impl="ours", device=dev, dtype=dt, d=d, N=n)
        sc = run.rate(kind="normalizer", impl="scipy", device="cpu", dtype=dt, d=d, N=n)
        if dev == "cuda" and ours is None:
            continue
        rows.append([dev, dt, d, n, fmt_rate(ours), fmt_rate(sc), fmt_ratio(ratio(ours, sc))])
    return md_table(
        ["device", "dtype", "d", "κ values", "hvae_ext (κ/s)", "scipy ive (κ/s, CPU)", "hvae_ext ÷ scipy"],
        rows,
        ["---", "---", "---:", "---:", "---:", "---:", "---:"],
    )


CELL_COLUMNS = ("device", "dtype", "N", "d", "κ", "implementation")  # the columns naming an rsample cell


def validation_table(run: Run):
    """rsample with torch's default argument validation (on) beside validate_args=False, per cell: median times."""
    keys = sorted(
        {
            (r["device"], r["dtype"], r["N"], r["d"], r["kappa"], r["impl"], r["mode"])
            for r in run.recs
            if r["kind"] == "rsample" and r.get("validate")
        }
    )
    rows = []
    for dev, dt, n, d, k, impl, m in keys:
        q = dict(kind="rsample", device=dev, dtype=dt, N=n, d=d, kappa=k, impl=impl, mode=m)
        on, off = run.find(validate=True, **q), run.find(validate=False, **q)
        if on is None or off is None:
            continue
        rows.append(
            [
                dev,
                dt,
                n,
                d,
                kstr(k),
                IMPL_LABEL[impl],
                m,
                f"{off['time_median'] * 1e3:.3g}",
                f"{on['time_median'] * 1e3:.3g}",
                fmt_ratio(ratio(on["time_median"], off["time_median"])),
            ]
        )
    if not rows:
        return None
    return md_table(
        [
            *CELL_COLUMNS,
            "mode",
            "ms, validate_args=False",
            "ms, validated (default)",
            "validated ÷ not",
        ],
        rows,
        ["---", "---", "---:", "---:", "---:", "---", "---", "---:", "---:", "---:"],
    )


def interleaved_validation_table(run: Run):
    """test_validation_overhead: validated and unvalidated forward timed in interleaved rounds."""
    recs = sorted(
        (r for r in run.recs if r["kind"] == "validation"), key=lambda r: (r["device"], r["impl"] != "ours", r["d"])
    )
    if not recs:
        return None
    rows = [
        [
            r["device"],
            r["dtype"],
            r["N"],
            r["d"],
            kstr(r["kappa"]),
            IMPL_LABEL[r["impl"]],
            r["pairs"],
            f"{r['unvalidated_median'] * 1e3:.3g}",
            f"{r['validated_median'] * 1e3:.3g}",
            fmt_ratio(r["ratio_median"]),
        ]
        for r in recs
    ]
    return md_table(
        [
            *CELL_COLUMNS,
            "rounds",
            "median ms, validate_args=False",
            "median ms, validated (default)",
            "median of per-round ratios",
        ],
        rows,
        ["---", "---", "---:", "---:", "---:", "---", "---:", "---:", "---:", "---:"],
    )


def targets_validation(run: Run):
    """Argument validation at almost no cost, and the default path against the reference code (medians)."""
    rows = []

    def add(name, value, ok_fn):
        if value is None:
            rows.append([name, "–", "not measured"])
        else:
            rows.append([name, fmt_ratio(value), "PASS" if ok_fn(value) else "FAIL"])

    def med(**kw):
        r = run.find(kind="rsample", **kw)
        return None if r is None else r["time_median"]

    interleaved = {
        r["d"]: r for r in run.recs if r["kind"] == "validation" and r["impl"] == "ours" and r["device"] == "cpu"
    }
    for d in sorted(
        {r["d"] for r in run.recs if r["kind"] == "rsample" and r.get("validate") and r["device"] == "cpu"}
        | set(interleaved)
    ):
        q = dict(impl="ours", mode="fwd", device="cpu", dtype="float32", N=65536, d=d, kappa=10.0)
        if d in interleaved:  # robust to a load that drifts between the cells: judged on the interleaved rounds
            name, value = "median of interleaved per-round ratios", interleaved[d]["ratio_median"]
        else:
            name, value = "ratio of the cells' medians", ratio(med(validate=True, **q), med(validate=False, **q))
        add(f"CPU d={d} κ=10 N=65536 fwd: validated ≤ 1.10× validate_args=False ({name})", value, lambda x: x <= 1.10)
    cpu = dict(device="cpu", dtype="float32", N=65536, d=16, kappa=10.0, validate=True)
    for m in ("fwd", "fwd+bwd"):
        add(
            f"CPU d=16 κ=10 N=65536 {m}, default validation on both sides: hvae_ext ≥ 10× PyTorch Wood",
            ratio(med(impl="baseline", mode=m, **cpu), med(impl="ours", mode=m, **cpu)),
            lambda x: x >= 10,
        )
    return md_table(["target", "measured (medians)", "result"], rows, ["---", "---:", "---"])


# --- targets ---------------------------------------------------------------------------------------------


def targets(run: Run):
    rows = []

    def add(name, value, ok_fn, shown):
        if value is None:
            gpu = name.startswith("GPU")
            rows.append(
                [name, "–", "not yet measured on a GPU (`bash scripts/gpu_check.sh`)" if gpu else "not measured"]
            )
        else:
            rows.append([name, shown(value), "PASS" if ok_fn(value) else "FAIL"])

    cpu = dict(device="cpu", dtype="float32", N=65536, d=16, kappa=10.0)
    for m in ("fwd", "fwd+bwd"):
        ours = run.rate(kind="rsample", impl="ours", mode=m, **cpu)
        add(
            f"CPU d=16 κ=10 N=65536 {m}: hvae_ext ≥ 10× PyTorch Wood",
            ratio(ours, run.rate(kind="rsample", impl="baseline", mode=m, **cpu)),
            lambda x: x >= 10,
            fmt_ratio,
        )
        add(
            f"CPU d=16 κ=10 N=65536 {m}: hvae_ext faster than power_spherical",
            ratio(ours, run.rate(kind="rsample", impl="power_spherical", mode=m, **cpu)),
            lambda x: x > 1,
            fmt_ratio,
        )
    for d in sorted(
        {
            r["d"]
            for r in run.recs
            if r["kind"] == "rsample" and r["device"] == "cpu" and r["dtype"] == "float32" and r["d"] <= 256
        }
    ):
        q = dict(device="cpu", dtype="float32", N=65536, d=d)
        add(
            f"CPU d={d} κ=10 N=65536 fwd: time ≤ 3× randn(N, d)",
            ratio(run.rate(kind="randn", **q), run.rate(kind="rsample", impl="ours", mode="fwd", kappa=10.0, **q)),
            lambda x: x <= 3,
            fmt_ratio,
        )
    gq = dict(device="cuda", dtype="float32", N=1048576, d=64)
    for m, lim in (("fwd", 2), ("fwd+bwd", 4)):
        r = run.find(kind="rsample", impl="ours", mode=m, kappa=10.0, **gq)
        add(
            f"GPU d=64 κ=10 N=2^20 {m}: time ≤ {lim}× randn(N, d)",
            ratio(run.rate(kind="randn", **gq), None if r is None else r["rate"]),
            lambda x, lim=lim: x <= lim,
            fmt_ratio,
        )
        add(
            f"GPU d=64 κ=10 N=2^20 {m}: no host synchronization (sync debug mode 'error')",
            None if r is None else r.get("no_host_sync"),
            lambda x: bool(x),
            lambda x: "none" if x else "synchronizes",
        )
    for dt in ("float32",):
        nq = dict(kind="normalizer", device="cpu", dtype=dt, d=16)
        ours = [r for r in run.recs if all(r.get(k) == v for k, v in nq.items()) and r["impl"] == "ours"]
        val = None
        if ours:
            val = ratio(ours[0]["rate"], run.rate(impl="scipy", N=ours[0]["N"], **nq))
        add(f"CPU vmf_log_normalizer fwd+bwd d=16 {dt}: ≥ 10× scipy ive per element", val, lambda x: x >= 10, fmt_ratio)
    return md_table(["target", "measured", "result"], rows, ["---", "---:", "---"])


def targets_cost(run: Run):
    """The backward at the cost of the forward, the forward at the cost of drawing the normals."""
    rows = []

    def add(name, value, limit):
        if value is None:
            rows.append([name, "–", "not measured"])
        else:
            rows.append([name, fmt_ratio(value), "PASS" if value <= limit else "FAIL"])

    q16 = dict(device="cpu", dtype="float32", N=65536, d=16)
    fwd16 = run.rate(kind="rsample", impl="ours", mode="fwd", kappa=10.0, **q16)
    both16 = run.rate(kind="rsample", impl="ours", mode="fwd+bwd", kappa=10.0, **q16)
    add("CPU d=16 κ=10 N=65536: time fwd+bwd ≤ 2× time fwd", ratio(fwd16, both16), 2.0)
    add("CPU d=16 κ=10 N=65536: time fwd ≤ 1.3× randn(N, d)", ratio(run.rate(kind="randn", **q16), fwd16), 1.3)
    q3 = dict(device="cpu", dtype="float32", N=65536, d=3)
    add(
        "CPU d=3 κ=10 N=65536: time fwd ≤ 2× randn(N, d)",
        ratio(run.rate(kind="randn", **q3), run.rate(kind="rsample", impl="ours", mode="fwd", kappa=10.0, **q3)),
        2.0,
    )
    return md_table(["target", "measured", "result"], rows, ["---", "---:", "---"])


# --- plot ------------------------------------------------------------------------------------------------


def plot(runs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []  # (run, device, N)
    for run in runs:
        for dev in ("cpu", "cuda"):
            ns = sorted(
                {r["N"] for r in run.recs if r["kind"] == "rsample" and r["device"] == dev and r["dtype"] == "float32"}
            )
            if ns:
                n = 65536 if (dev == "cpu" and 65536 in ns) else max(ns)
                panels.append((run, dev, n))
    if not panels:
        return False
    kappas = sorted({r["kappa"] for run, _, _ in panels for r in run.recs if r["kind"] == "rsample"})
    fig, axes = plt.subplots(len(panels), len(kappas), figsize=(4.2 * len(kappas), 3.6 * len(panels)), squeeze=False)
    styles = {"ours": "C0", "baseline": "C1", "power_spherical": "C2"}
    for i, (run, dev, n) in enumerate(panels):
        q = dict(device=dev, dtype="float32", N=n)
        rd = sorted(
            (r["d"], r["rate"]) for r in run.recs if r["kind"] == "randn" and all(r.get(k) == v for k, v in q.items())
        )
        for j, k in enumerate(kappas):
            ax = axes[i][j]
            if rd:
                ax.plot(*zip(*rd), "k:", marker=".", label="randn(N, d)")
            for impl, color in styles.items():
                for m, ls, mk in (("fwd", "-", "o"), ("fwd+bwd", "--", "s")):
                    pts = sorted(
                        (r["d"], r["rate"])
                        for r in run.recs
                        if r["kind"] == "rsample"
                        and r["impl"] == impl
                        and r["mode"] == m
                        and r["kappa"] == k
                        and all(r.get(kk) == v for kk, v in q.items())
                    )
                    if pts:
                        ax.plot(
                            *zip(*pts),
                            ls,
                            color=color,
                            marker=mk,
                            ms=4,
                            mfc="none" if m == "fwd+bwd" else color,
                            label=f"{IMPL_LABEL[impl]} {m}",
                        )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("d")
            ax.set_ylabel("samples / s")
            dev_name = run.info.get("cuda_device") if dev == "cuda" else run.info.get("cpu_model", "CPU")
            ax.set_title(
                f"{run.name}\n{dev_name} ({dev}), {run.info.get('torch_num_threads', '?')} threads, N={n}, κ={kstr(k)}",
                fontsize=8,
            )
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=6)
    fig.suptitle("vMF rsample throughput (float32)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --- main ------------------------------------------------------------------------------------------------


def report(runs, stat: str, png_name: str | None) -> str:
    out = ["# hvae_ext benchmark results", ""]
    out.append(
        f"Generated by `python benchmarks/report.py` from {', '.join('`' + os.path.basename(r.path) + '`' for r in runs)}. "
        f"Throughput is items per second from the **{stat}** time over the rounds of each benchmark "
        "(samples/s for rsample and randn, κ values/s for the normalizer); every ratio is between "
        'implementations measured side by side in the same run. "fwd ÷ Wood" is hvae_ext\'s throughput over '
        "the pure-PyTorch Wood sampler's (benchmarks/baselines.py); \"time fwd / time randn\" is hvae_ext's rsample "
        "time over that of `torch.randn(N, d)` on the same device."
    )
    out.append("")
    if png_name:
        out += [f"![throughput against d]({png_name})", ""]
    for run in runs:
        out += [f"## {run.name}", "", f"Machine: {run.label()}", ""]
        out += ["### Targets: speed against the baselines", "", targets(run), ""]
        out += ["### Targets: backward against forward, forward against randn", "", targets_cost(run), ""]
        if any(r.get("validate") or r["kind"] == "validation" for r in run.recs):
            out += ["### Targets: argument validation on the default path", "", targets_validation(run), ""]
            out += [
                "### rsample with argument validation",
                "",
                "Each implementation built inside the timed call with torch's default `validate_args` (on), as its "
                "users run it, beside `validate_args=False`; median times. hvae_ext checks `loc` (unit rows) and κ "
                "with one fused compiled pass each; the PyTorch Wood baseline gets the checks of the reference "
                "code's constructor (`loc` real, `scale` positive: torch's `arg_constraints`); power_spherical its "
                "own `arg_constraints`.",
                "",
                validation_table(run),
                "",
            ]
        t = interleaved_validation_table(run)
        if t:
            out += [
                "### Argument validation in interleaved rounds",
                "",
                "`test_validation_overhead`: each round times one forward with torch's default validation and one "
                "with `validate_args=False` (alternating which goes first) with the run's timer, so that a load "
                "drifting between the separate cells above does not enter the comparison; the validation targets "
                "are judged on the median of the per-round ratios.",
                "",
                t,
                "",
            ]
        cells = sorted({(r["device"], r["dtype"], r["N"]) for r in run.recs if r["kind"] == "rsample"})
        for dev, dt, n in cells:
            t = rsample_table(run, dev, dt, n)
            if t:
                out += [f"### rsample, {dev}, {dt}, N = {n} (samples/s)", "", t, ""]
        if any(r["impl"] == "ours_ps" for r in run.recs):
            out += ["### Targets: Power Spherical", "", targets_power_spherical(run), ""]
            for dev, dt, n in cells:
                t = power_spherical_table(run, dev, dt, n)
                if t:
                    out += [f"### PowerSpherical rsample, {dev}, {dt}, N = {n} (samples/s)", "", t, ""]
        t = normalizer_table(run)
        if t:
            out += ["### vmf_log_normalizer forward+backward", "", t, ""]
        t = proposals_table(run)
        if t:
            out += [
                "### Mean proposals per accepted sample (Wood's envelope)",
                "",
                "Exact value by quadrature (`baselines.expected_proposals`), in parentheses the count of the "
                "pure-PyTorch baseline in this run (float64), then hvae_ext's count: the proposals its sampler "
                "draws for N samples of one key, counted by the opt-in op `_vmf_sample_proposals` (runs recorded "
                "before that op existed show no hvae_ext count; d = 3 inverts the CDF, one draw per sample).",
                "",
                t,
                "",
            ]
    return "\n".join(out)


def headline(run: Run) -> str | None:
    """The headline table of docs/benchmarks.md: CPU float32 N = 65536, kappa = 10."""
    return rsample_table(run, "cpu", "float32", 65536, kappas=[10.0])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    ap.add_argument("--stat", default="min", choices=("min", "median", "mean"))
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    runs = [Run(p, args.stat) for p in args.json]
    os.makedirs(args.out, exist_ok=True)
    png = None
    if not args.no_plot and plot(runs, os.path.join(args.out, "throughput.png")):
        png = "throughput.png"
    text = report(runs, args.stat, png)
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
