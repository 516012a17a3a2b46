"""Measures what training several seeds as one batched model (``--batch-seeds``) gains over training them
one after the other, with the MNIST experiment's own training step (``experiments.mnist``).

    python scripts/mnist_ensemble_timing.py [--members 1 3 5 10] [--steps 60] [--device cpu] \
        [--out experiments/results/mnist/ensemble_timing.json]

For each E, the time of one stacked step of E members is compared with E single-model steps; the two are
timed alternately, block by block, so that both see the same machine load, and the medians are reported.
The result (JSON with the machine named, and a markdown table beside it) is what experiments/results/mnist/notes.md
quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's Python layer

from experiments import mnist as mx
from experiments.common import cpu_model


def _step_fn(members, x_rows, args, gen):
    opt = torch.optim.Adam(members.model.parameters(), lr=1e-3, fused=x_rows.device.type in ("cpu", "cuda"))
    E = 1 if not members.batched else members.model.members
    perms = torch.stack([torch.randperm(len(x_rows), device=x_rows.device) for _ in range(E)])

    def step(i):
        xb = mx._binarized_batch(
            x_rows, perms, (i * args.batch_size) % (len(x_rows) - args.batch_size), args.batch_size, gen
        )
        objective = members.elbo(xb if members.batched else xb[0], 1.0)[0]
        loss = -objective.mean(-1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, nargs="+", default=[1, 3, 5, 10])
    p.add_argument("--steps", type=int, default=60, help="steps per timed block")
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="experiments/results/mnist/ensemble_timing.json")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    x_rows = torch.rand(4096, 784, device=device)  # grey levels; the step binarizes them as in training
    rows = []
    for model in ("n-vae", "s-vae"):
        latent = 10
        args = mx.build_parser().parse_args(["--model", model, "--latent-dim", str(latent)])
        args.hidden_widths, args.ambient_dim = [256, 128], mx.ambient_dim(model, latent)
        for E in a.members:
            gen = torch.Generator(device=device).manual_seed(0)
            stacked = _step_fn(mx._Members(list(range(E)), args, device, batched=E > 1), x_rows, args, gen)
            single = _step_fn(mx._Members([0], args, device, batched=False), x_rows, args, gen)
            for f in (stacked, single):
                for i in range(5):
                    f(i)
            sync()
            t_stacked, t_single = [], []
            for _ in range(a.blocks):
                for f, sink in ((stacked, t_stacked), (single, t_single)):
                    t0 = time.perf_counter()
                    for i in range(a.steps):
                        f(i)
                    sync()
                    sink.append((time.perf_counter() - t0) / a.steps)
            ms, m1 = statistics.median(t_stacked), statistics.median(t_single)
            rows.append(
                {
                    "model": model,
                    "latent_dim": latent,
                    "ambient_dim": args.ambient_dim,
                    "members": E,
                    "stacked_step_ms": 1e3 * ms,
                    "single_step_ms": 1e3 * m1,
                    "speedup": E * m1 / ms,
                }
            )
            print(
                f"{model} E={E}: stacked step {1e3 * ms:.2f} ms, {E} single steps {1e3 * E * m1:.2f} ms, "
                f"gain {E * m1 / ms:.2f}x",
                flush=True,
            )
    info = {
        "device": str(device),
        "threads": a.threads,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "batch_size": 64,
        "steps_per_block": a.steps,
        "blocks": a.blocks,
        "rows": rows,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "command": "python scripts/mnist_ensemble_timing.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(info, indent=1) + "\n")
    md = [
        f"Stacked (`--batch-seeds`) against sequential training steps, {info['gpu'] or info['cpu_model'] or 'CPU'}, "
        f"{a.threads} thread(s), torch {torch.__version__}, batch 64, median of {a.blocks} alternating blocks of "
        f"{a.steps} steps (`{info['command'].strip()}`):",
        "",
        "| model | E | stacked step (ms) | E single steps (ms) | gain |",
        "|---|--:|--:|--:|--:|",
    ]
    md += [
        f"| {r['model']} | {r['members']} | {r['stacked_step_ms']:.2f} | {r['members'] * r['single_step_ms']:.2f} | "
        f"{r['speedup']:.2f}× |"
        for r in rows
    ]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
