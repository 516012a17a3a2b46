"""DistributedDataParallel: the S-VAE trains for a few steps on 2 CPU processes (gloo),
through experiments/ddp_example.py, in a subprocess with a timeout (and a collective timeout
inside), so that a hang fails the test instead of stalling CI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo is not available"
)


def test_ddp_svae_two_cpu_processes(tmp_path):
    report = tmp_path / "ddp.json"
    cmd = [
        sys.executable,
        "-m",
        "experiments.ddp_example",
        "--world-size",
        "2",
        "--steps",
        "3",
        "--timeout",
        "60",
        "--report",
        str(report),
        "--verbose",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True, cwd=ROOT
    )
    try:
        out, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the spawned ranks too
        out, _ = proc.communicate()
        pytest.fail(f"DDP training hung (killed after 180 s):\n{out[-3000:]}")
    assert proc.returncode == 0, out[-3000:]
    rep = json.loads(report.read_text())
    assert rep["world_size"] == 2 and rep["backend"] == "gloo" and len(rep["steps"]) == 3
    for s in rep["steps"]:
        # DDP all-reduces the gradients: identical parameters on both ranks after every step
        assert s["max_param_diff_across_ranks"] == 0.0, s
        # ... while each rank has its own data and vMF samples (seed + 1000 (rank + 1))
        (a0, b0), (a1, b1) = s["sample_fingerprint_per_rank"]
        assert (a0, b0) != (a1, b1), s
        assert all(map(lambda v: v == v and abs(v) < 1e6, s["loss_per_rank"]))
    losses = [s["loss_per_rank"][0] for s in rep["steps"]]
    assert losses[0] != losses[-1]  # the parameters moved
