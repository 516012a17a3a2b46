"""Training the S-VAE with DistributedDataParallel (torch.distributed), on CPU processes or GPUs.

    python -m experiments.ddp_example --world-size 2 --steps 5          # 2 CPU processes (gloo)
    python -m experiments.ddp_example --world-size 2 --device cuda      # 2 GPUs (nccl)
    torchrun --nproc-per-node 2 -m experiments.ddp_example --torchrun   # under torchrun

Seeding (the documented convention): every rank seeds ``torch.manual_seed(seed)`` before building the
model, so the initial parameters agree (DDP also broadcasts rank 0's at construction); then each rank
reseeds with ``seed + 1000 * (rank + 1)`` so that the data shards and the vMF samples differ between
ranks (the sampler draws its Philox key from torch's generator of the sampling device). Gradients are
averaged by DDP's all-reduce, so the parameters stay identical on every rank after each optimizer step.

The data are synthetic binary "images" (no download). With ``--report PATH`` rank 0 writes a JSON report:
per step the loss of every rank, the largest parameter difference between ranks (all-gathered) and a
fingerprint of each rank's samples; ``tests/integration/test_ddp.py`` checks it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flat_params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def train(rank: int, world_size: int, args: argparse.Namespace, report: str | None = None) -> torch.nn.Module:
    """Trains ``args.steps`` steps on this rank and returns the DDP module (see :func:`_run_rank` for why
    the caller keeps it)."""
    from hvae_ext.models import SVAE

    if not args.torchrun:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ["MASTER_PORT"] = str(args.port)
    use_cuda = args.device == "cuda"
    backend = "nccl" if use_cuda else "gloo"
    if args.verbose:  # where a slow or stuck start is, when one happens
        print(f"rank {rank}: joining the process group ({backend})", flush=True)
    dist.init_process_group(backend, rank=rank, world_size=world_size, timeout=datetime.timedelta(seconds=args.timeout))
    if args.verbose:
        print(f"rank {rank}: process group up", flush=True)
    try:
        torch.set_num_threads(1)
        device = torch.device("cuda", rank % torch.cuda.device_count()) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(device)
        torch.manual_seed(args.seed)  # identical initial parameters on every rank
        model = SVAE.mlp(latent_dim=args.latent_dim, hidden=(64, 32), data_dim=args.data_dim).to(device)
        ddp = DDP(ELBOLoss(model), device_ids=[device.index] if use_cuda else None)
        opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
        torch.manual_seed(args.seed + 1000 * (rank + 1))  # different data and samples per rank
        steps = []
        for step in range(args.steps):
            x = (torch.rand(args.batch, args.data_dim, device=device) < 0.3).float()
            opt.zero_grad(set_to_none=True)
            loss = ddp(x)  # through DDP's forward, so that its backward hooks all-reduce the gradients
            loss.backward()
            opt.step()
            z = ddp.module.last_z
            flat = _flat_params(model)
            gathered = [torch.empty_like(flat) for _ in range(world_size)]
            dist.all_gather(gathered, flat)
            max_diff = max(float((g - gathered[0]).abs().max()) for g in gathered)
            fp = torch.stack([loss.detach(), z.detach().sum(), z.detach()[0, 0]]).double()
            fps = [torch.empty_like(fp) for _ in range(world_size)]
            dist.all_gather(fps, fp)
            steps.append(
                {
                    "step": step,
                    "max_param_diff_across_ranks": max_diff,
                    "loss_per_rank": [float(f[0]) for f in fps],
                    "sample_fingerprint_per_rank": [[float(f[1]), float(f[2])] for f in fps],
                }
            )
            if rank == 0 and args.verbose:
                print(
                    f"step {step}: losses {[round(float(f[0]), 3) for f in fps]}, "
                    f"max parameter difference across ranks {max_diff:.3g}",
                    flush=True,
                )
        if rank == 0 and report:
            with open(report, "w") as fh:
                json.dump({"world_size": world_size, "backend": backend, "steps": steps}, fh, indent=1)
        # every rank is done with the collectives before any tears the group down: without this barrier the
        # rank that hosts the store (0) could leave while the other is still in its last all_gather, and
        # gloo's teardown then waited forever (seen under load on 2 cores)
        dist.barrier()
        if args.verbose:
            print(f"rank {rank}: done", flush=True)
    finally:
        dist.destroy_process_group()
    return ddp


class ELBOLoss(torch.nn.Module):
    """The S-VAE's negative mean ELBO as a module's forward (DDP wraps a module and hooks its forward); the
    step's samples are kept in ``last_z``."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.last_z: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.model.posterior(x)
        z = q.rsample()
        self.last_z = z.detach()
        elbo = self.model.log_likelihood_given(x, z) - self.model._kl(q)
        return -elbo.mean()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world-size", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--data-dim", type=int, default=64)
    ap.add_argument("--latent-dim", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds a collective may wait before failing")
    ap.add_argument("--report", default=None, help="JSON report written by rank 0")
    ap.add_argument("--torchrun", action="store_true", help="launched by torchrun (RANK, WORLD_SIZE set)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.torchrun:
        _run_rank(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), args, args.report)
    args.port = free_port()
    torch.multiprocessing.spawn(_run_rank, args=(args.world_size, args, args.report), nprocs=args.world_size, join=True)


def _run_rank(rank: int, world_size: int, args: argparse.Namespace, report: str | None) -> None:
    """One rank (spawned here or launched by torchrun): trains, then leaves without running destructors.
    Freeing the DDP module frees its Reducer, the last owner of the gloo process group, whose destructor joins
    gloo's worker threads while this thread holds the GIL; a worker still destroying a finished all_gather's
    work needs the GIL to release that work's Python-owned tensors: a deadlock (native stack seen now and then
    at exit on a loaded 2-core machine: ~ProcessGroupGloo in std::thread::join on the main thread,
    gil_scoped_acquire in ~AsyncAllgatherWork on the worker; compare pytorch/pytorch#75097). The work is done
    and the group deregistered by then, so the module is kept alive and the process exits at once
    (os._exit) after flushing its output; errors raised by train() still propagate."""
    import sys

    keep = train(rank, world_size, args, report)  # noqa: F841  (kept alive until the process ends)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
