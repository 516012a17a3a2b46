"""The cost of argument validation on the default path, measured in interleaved rounds: per round, one
``VonMisesFisher(loc, kappa).rsample()`` with torch's default validation and one with ``validate_args=False``
(alternating which goes first), float32, N = 65536, kappa = 10, CPU. On a machine shared with other jobs the
pytest-benchmark cells (run one after the other) drift with the load; interleaving exposes both variants to the
same load, and the median of the per-round ratios compares them.

    python scripts/validation_overhead.py [--threads 1 2] [--d 3 16 64 256] [--rounds 25] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from timing_cli import add_timer_argument, timer  # noqa: E402

from hvae_ext import VonMisesFisher  # noqa: E402

TIMER = time.perf_counter


def measure(d, n, kappa_value, rounds, backward):
    g = torch.Generator().manual_seed(1234)
    loc = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1).requires_grad_(backward)
    kappa = torch.full((n,), kappa_value).requires_grad_(backward)
    cot = torch.randn(n, d, generator=g)

    def run(flag):
        z = VonMisesFisher(loc, kappa, validate_args=flag).rsample()
        if backward:
            torch.autograd.grad(z, (loc, kappa), cot)

    on, off = [], []
    for f in (None, False):  # warm-up
        run(f)
    for r in range(rounds):
        order = (None, False) if r % 2 == 0 else (False, None)
        for f in order:
            t0 = TIMER()
            run(f)
            (on if f is None else off).append(TIMER() - t0)
    ratios = [a / b for a, b in zip(on, off)]
    return statistics.median(on), statistics.median(off), statistics.median(ratios)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--d", type=int, nargs="+", default=[3, 16, 64, 256])
    ap.add_argument("--n", type=int, default=65536)
    ap.add_argument("--kappa", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--backward", action="store_true", help="time forward+backward instead of the forward")
    ap.add_argument("--out", default=None)
    add_timer_argument(ap)
    args = ap.parse_args(argv)
    global TIMER
    TIMER = timer(args.timer)
    if not torch.distributions.Distribution._validate_args:
        raise SystemExit("torch's default validate_args is off in this process (python -O?)")
    what = "forward+backward" if args.backward else "forward"
    cmd = " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    try:
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    lines = [
        f"# Validated ÷ not validated, {what} (CPU, float32, N = {args.n}, κ = {args.kappa:g}), interleaved rounds",
        "",
        f"Written by `python scripts/validation_overhead.py {cmd}`: {args.rounds} rounds, each one call with "
        "torch's default validation and one with `validate_args=False` (alternating order), milliseconds of "
        f"`time.{args.timer}`; torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load average at the start {load}.",
        "",
        "| threads | d | median ms, validated | median ms, validate_args=False | median of the per-round ratios |",
        "|---:|---:|---:|---:|---:|",
    ]
    for threads in args.threads:
        torch.set_num_threads(threads)
        for d in args.d:
            on, off, ratio = measure(d, args.n, args.kappa, args.rounds, args.backward)
            lines.append(f"| {threads} | {d} | {on * 1e3:.3f} | {off * 1e3:.3f} | {ratio:.3f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
