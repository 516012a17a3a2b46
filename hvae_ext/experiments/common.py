"""Pieces shared by the experiment commands (link prediction, MNIST): the ``--seeds`` syntax, the device
record of a run file, and the device synchronization that makes wall-clock timings honest on CUDA."""

from __future__ import annotations

import os
import platform

import torch


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"0,3,5"``, ``"2"`` or combinations such as ``"0-2,7"``."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            lo, hi = part.split("-", 1)
            lo_i, hi_i = int(lo), int(hi)
            if lo_i < 0 or hi_i < lo_i:
                raise ValueError(f"bad seed range {part!r}")
            seeds.extend(range(lo_i, hi_i + 1))
        else:
            s = int(part)
            if s < 0:
                raise ValueError(f"seeds must be >= 0, got {s}")
            seeds.append(s)
    if not seeds:
        raise ValueError("no seeds given")
    return seeds


def device_info(device: torch.device) -> dict:
    """What a run file records about where it ran."""
    info = {"device": str(device), "platform": platform.platform(), "processor": platform.processor(),
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def synchronize(device: torch.device) -> None:
    """Waits for the device's queued kernels, so that a timer read afterwards covers them (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
