"""Figures of agreement between the emulated CUDA kernels and the CPU kernels, written to
docs/cuda_emulation.md (or --out).

    python scripts/cuda_emulation_report.py            # from the repository root; builds what it needs

For each variant of the emulation (tests/cuda_emulation: plain, fused multiply-adds, the device libm moved
within CUDA's ulp bounds: pseudo-random, all up, all down) it runs the comparison grid of
tests/cuda_emulation/grid.py and tabulates, per op output and dtype, the largest |emulated - CPU| and the
largest |emulated - CPU| / |CPU|, then runs each seeded fault of tests/cuda_emulation/checks.py and records how
the comparison fails.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

import torch  # noqa: E402
from cuda_emulation import build, checks, grid  # noqa: E402

VARIANTS = [  # (label, build variant, perturbation mode)
    ("plain", "plain", 0),
    ("fma", "fma", 0),
    ("libm random", "plain", 3),
    ("libm up", "plain", 1),
    ("libm down", "plain", 2),
]


def _backends(m):
    return {"cpu": (grid._cpu, "cpu"), "emulation": (lambda n: build.op(m, n), "cpu")}


def _fmt(x):
    return "0" if x == 0 else f"{x:.1e}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "docs" / "cuda_emulation.md"))
    args = ap.parse_args(argv)
    summaries, failures, timings = {}, {}, {}
    for label, variant, mode in VARIANTS:
        t = time.time()
        m = build.build(variant)
        t_build = time.time() - t
        t = time.time()
        m.configure(4, mode, 12345)
        res = grid.run(
            _backends(m), build.emulated_ops(m), configure=lambda s, m=m, mode=mode: m.configure(s, mode, 12345)
        )
        m.configure(4, 0, 0)
        summaries[label] = grid.summarize(res)
        failures[label] = checks.failures(res)
        timings[label] = (t_build, time.time() - t, len(res))
        print(f"{label}: {len(res)} comparisons, {len(failures[label])} outside tolerance", flush=True)
    fm = build.build("plain", patches=checks.fault_patches(), tag="faults", only=("sample_cuda",))
    fault_rows = []
    for number, what, path, _, _, (_kind, _detail) in checks.FAULTS:
        fm.configure(4, 0, 0, number)
        try:
            res = grid.run(_backends(fm), build.emulated_ops(fm), quick=True)
            bad = checks.failures(res)
            outcome = f"{len(bad)} comparisons outside tolerance, e.g. `{bad[0]}`" if bad else "NOT DETECTED"
        except RuntimeError as e:
            msg = str(e).splitlines()[0]
            outcome = f"error: `{msg[msg.find('cuda emulation') :][:300]}`"
        finally:
            fm.configure(4, 0, 0, 0)
        fault_rows.append((number, what, path, outcome))
        print(f"fault {number}: {outcome[:120]}", flush=True)

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "diff", "--quiet", "HEAD", "--", "csrc", "tests/cuda_emulation"], cwd=ROOT
    ).returncode
    gcc = subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    lines = [
        "# The CUDA kernels under host emulation",
        "",
        "<!-- written by `python scripts/cuda_emulation_report.py`; do not edit by hand -->",
        "",
        "No GPU is needed to run the CUDA half of hvae_ext: `tests/cuda_emulation` compiles `csrc/cuda/*.cu` for",
        "the host through a shim header (CUDA keywords, thread coordinates, intrinsics, the `c10/cuda` headers), with",
        "only the launch syntax `k<<<...>>>(...)` rewritten. The threads of a block run as fibers; every warp",
        "shuffle is a rendezvous that checks that all 32 lanes take part, none has exited, all are at the same call",
        "and the mask is full (a violation is an error). `csrc/math/*.h` take their device branches",
        "(`__CUDA_ARCH__` defined), with glibc standing in for CUDA's libm. The kernels register as the CPU kernels of",
        "an op namespace of their own, with hvae_ext's schemas, and `tests/integration/test_cuda_emulation.py` compares each",
        "with the CPU op on the same inputs and Philox seed.",
        "",
        "Variants: **plain** (no contraction of a*b+c), **fma** (`-mfma -ffp-contract=fast`: fused multiply-adds",
        "wherever the compiler finds them, as nvcc does by default), **libm random / up / down** (every device libm",
        "result moved by a pseudo-random number of ulps, or all up, or all down, by up to the function's maximum",
        "error in CUDA's table: 1 ulp for exp, expm1, log, log1p, logf; 2 for sin, cos, sincos, sincospi, asin,",
        "sinf, cosf; 4 for lgamma; sqrt is exact).",
        "",
        "Grid (`tests/cuda_emulation/grid.py`): elementwise ops over d in {2, 3, 4, 5, 8, 16, 31, 32, 33, 64, 65, 100,",
        "128, 257, 500, 1000, 10000} x kappa in {0, 1e-10, 1e-6, 1e-3, 0.1, 0.5, 1, 2, 5, 10, 30, 100, 1e3, 1e4, 1e6,",
        "1e8, 1e10, 1e12} (broadcast, non-contiguous, single-element `dim`, empty), and 1,357 random pairs; the",
        "sampler and its backward over d in {2, 3, 4, 5, 8, 16, 31, 32, 33, 64, 100, 257, 1000}, 12 concentrations",
        "from 0 to 1e12, 60 rows (a partial tile), contiguous, non-contiguous and expanded `loc`, empty batches,",
        "and 4,136 rows on one emulated multiprocessor (the grid-stride loop turns). The backward gets the CPU",
        "forward's samples. Relative figures are over nonzero references.",
        "",
        f"Measured at git {commit}{' + uncommitted changes' if dirty else ''}, {datetime.date.today().isoformat()},",
        f"torch {torch.__version__}, {gcc}, {platform.machine()}.",
        "",
        "## Agreement with the CPU ops: max |delta| / max relative",
        "",
    ]
    labels = [v[0] for v in VARIANTS]
    keys = sorted({k[1:] for s in summaries.values() for k in s})
    lines.append("| op | output | dtype | " + " | ".join(labels) + " |")
    lines.append("|---|---|---|" + "---|" * len(labels))
    for op, dtype, out in sorted(keys, key=lambda k: (k[0], k[2], k[1] != "float64")):
        cells = []
        for label in labels:
            v = summaries[label].get(("emulation-cpu", op, dtype, out))
            cells.append("" if v is None else f"{_fmt(v[0])} / {_fmt(v[1])}" + ("" if v[2] else " (NaN/inf differ)"))
        lines.append(f"| `{op}` | {out} | {dtype} | " + " | ".join(cells) + " |")
    lines += ["", "## Outside the tolerances of `tests/cuda_emulation/checks.py`", ""]
    for label in labels:
        bad = failures[label]
        lines.append(f"- **{label}**: {len(bad)} of {timings[label][2]} comparisons" + (":" if bad else ""))
        ops = sorted({b.split()[0] for b in bad})
        for op in ops:
            worst = [b for b in bad if b.split()[0] == op]
            lines.append(f"  - `{op}`: {len(worst)} case(s), e.g. {worst[0].split(' ', 1)[1]}")
    lines += [
        "",
        "## Seeded faults",
        "",
        "Each fault is compiled into one build (selected at run time; 0 is none) and must make the comparison",
        "fail:",
        "",
        "| # | fault | file | outcome |",
        "|---|---|---|---|",
    ]
    for number, what, path, outcome in fault_rows:
        lines.append(f"| {number} | {what} | csrc/{path} | {outcome.replace('|', chr(92) + '|')} |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines += [
        "",
        "## Time",
        "",
        f"Wall-clock seconds on this machine ({os.cpu_count()} cores, load average {load:.1f} at the end,",
        "shared with other jobs); a build is skipped when its sources are unchanged (0 s: loaded from",
        "`.cache/cuda_emulation`).",
        "",
        "| variant | build or load (s) | grid (s) | comparisons |",
        "|---|--:|--:|--:|",
    ]
    for label in labels:
        b, g, n = timings[label]
        lines.append(f"| {label} | {b:.1f} | {g:.1f} | {n} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
