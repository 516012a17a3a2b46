"""Where the default path's time goes: ``VonMisesFisher(loc, kappa).rsample()`` forward and forward+backward with
torch's default argument validation, float32, N = 65536, d = 16, kappa = 10 (CPU), stage by stage, beside the
PyTorch Wood baseline run as the reference code's users run it (benchmarks/baselines.py).

    python scripts/profile_default_path.py [--threads 1 2] [--reps 40] [--out benchmarks/results/profile-default-path.md]

Each stage is timed on its own (median of --reps calls, interleaved rounds), then the whole call; the stages are:
construction (validated and not), the Philox key draw (torch.randint on the device), the sampler op, the rest of
rsample (the view and the dtype cast), the backward op, and autograd's own share of torch.autograd.grad (the whole
grad call minus the backward op).
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
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import baselines  # noqa: E402
from timing_cli import add_timer_argument, timer  # noqa: E402

from hvae_ext import VonMisesFisher  # noqa: E402
from hvae_ext.distributions._spherical import draw_seed  # noqa: E402

ops = torch.ops.hvae_ext
TIMER = time.perf_counter


def stages(n, d, kappa_value):
    g = torch.Generator().manual_seed(1234)
    loc = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=-1).requires_grad_(True)
    kappa = torch.full((n,), kappa_value).requires_grad_(True)
    cot = torch.randn(n, d, generator=g)
    loc_d, kappa_d = loc.detach(), kappa.detach()
    seed = draw_seed(loc.device, None)
    z0, omw0 = ops.vmf_sample(loc_d, kappa_d, seed, 1)
    q_off = VonMisesFisher(loc, kappa, validate_args=False)

    def fwd_bwd_default():
        z = VonMisesFisher(loc, kappa).rsample()
        return torch.autograd.grad(z, (loc, kappa), cot)

    def grad_only():
        z = q_off.rsample()
        return torch.autograd.grad(z, (loc, kappa), cot)

    def ref_fwd_bwd():
        z = baselines.wood_rsample_validated(loc, kappa)
        return torch.autograd.grad(z, (loc, kappa), cot)

    return {
        "construction, validated (default)": lambda: VonMisesFisher(loc, kappa),
        "construction, validate_args=False": lambda: VonMisesFisher(loc, kappa, validate_args=False),
        "  fused check of loc (op)": lambda: ops._vmf_check_unit_rows(loc_d, 1e-5),
        "  fused check of kappa (op)": lambda: ops._check_positive_finite(kappa_d),
        "key draw (torch.randint)": lambda: draw_seed(loc.device, None),
        "sampler op vmf_sample": lambda: ops.vmf_sample(loc_d, kappa_d, seed, 1),
        "rsample (key + op + autograd node + view)": lambda: q_off.rsample(),
        "backward op vmf_sample_backward": lambda: ops.vmf_sample_backward(cot, z0, omw0, loc_d, kappa_d),
        "rsample + autograd.grad (not validated)": grad_only,
        "forward, default: VonMisesFisher(loc, kappa).rsample()": lambda: VonMisesFisher(loc, kappa).rsample(),
        "forward+backward, default": fwd_bwd_default,
        "reference (PyTorch Wood, validated as its users run it): forward": lambda: baselines.wood_rsample_validated(
            loc, kappa
        ),
        "reference (PyTorch Wood, validated as its users run it): forward+backward": ref_fwd_bwd,
    }


def measure(fns, reps):
    times = {k: [] for k in fns}
    for f in fns.values():  # warm-up
        f()
    for _ in range(reps):
        for k, f in fns.items():  # interleaved rounds
            t0 = TIMER()
            f()
            times[k].append(TIMER() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def command_args(argv):
    """The arguments as the header shows them: without --out and its file."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--out":
            skip = True
        elif not a.startswith("--out="):
            out.append(a)
    return out


def op_table(n, d, kappa_value, calls=20, rows=12):
    """torch.profiler over ``calls`` default forward+backward calls: self CPU time per op, the largest first."""
    fns = stages(n, d, kappa_value)
    f = fns["forward+backward, default"]
    for _ in range(3):
        f()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            f()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    lines = [
        f"torch.profiler, {calls} calls of the default forward+backward: self CPU time per call of each op (the "
        f"{rows} largest), share of the total {total / calls / 1e3:.2f} ms per call.",
        "",
        "| op | calls per call | ms per call | share |",
        "|---|---:|---:|---:|",
    ]
    for e in events[:rows]:
        lines.append(
            f"| `{e.key}` | {e.count / calls:g} | {e.self_cpu_time_total / calls / 1e3:.3f} | "
            f"{100 * e.self_cpu_time_total / total:.1f} % |"
        )
    return lines + [""]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--n", type=int, default=65536)
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--kappa", type=float, default=10.0)
    ap.add_argument("--out", default=None)
    add_timer_argument(ap)
    args = ap.parse_args(argv)
    global TIMER
    TIMER = timer(args.timer)
    lines = [
        f"# The default path, stage by stage (CPU, float32, N = {args.n}, d = {args.d}, κ = {args.kappa:g})",
        "",
        "Written by `python scripts/profile_default_path.py "
        + " ".join(command_args(argv if argv is not None else sys.argv[1:]))
        + f"`; median of the interleaved rounds, milliseconds of `time.{args.timer}`. torch "
        + torch.__version__
        + f", {platform.processor() or platform.machine()}, {os.cpu_count()} cores.",
        "",
    ]
    for threads in args.threads:
        torch.set_num_threads(threads)
        fns = stages(args.n, args.d, args.kappa)
        med = measure(fns, args.reps)
        lines += [f"## {threads} thread(s)", "", "| stage | ms |", "|---|---:|"]
        for k, v in med.items():
            lines.append(f"| {k} | {v * 1e3:.3f} |")
        fb = med["forward+backward, default"]
        ref = med["reference (PyTorch Wood, validated as its users run it): forward+backward"]
        own = med["sampler op vmf_sample"] + med["backward op vmf_sample_backward"]
        lines += [
            "",
            f"* forward+backward, default: {fb * 1e3:.2f} ms; the two kernels alone {own * 1e3:.2f} ms "
            f"({100 * own / fb:.0f} %); the rest (construction with its checks, key draw, autograd) "
            f"{(fb - own) * 1e3:.2f} ms",
            f"* reference ÷ hvae_ext, forward+backward with default validation: **{ref / fb:.2f}×** "
            f"(kernels alone: {ref / own:.2f}×)",
            f"* validated ÷ not validated, forward: "
            f"{med['forward, default: VonMisesFisher(loc, kappa).rsample()'] / (med['construction, validate_args=False'] + med['rsample (key + op + autograd node + view)']):.3f}",
            "",
        ]
        lines += op_table(args.n, args.d, args.kappa)
    text = "\n".join(lines)
    print(text)
    if args.out:
        reading = ""  # the hand-written "## Reading" section of an existing file is kept (update it by hand)
        if os.path.exists(args.out):
            with open(args.out) as f:
                old = f.read()
            at = old.find("\n## Reading")
            reading = old[at:] if at >= 0 else ""
        with open(args.out, "w") as f:
            f.write(text + "\n" + reading)


if __name__ == "__main__":
    main()
