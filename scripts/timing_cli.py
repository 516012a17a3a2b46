"""The clock option shared by the interleaved timing scripts (``profile_default_path.py``,
``validation_overhead.py``)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

TIMERS = ("perf_counter", "process_time")


def add_timer_argument(ap: argparse.ArgumentParser) -> None:
    """``--timer``: wall-clock ``perf_counter`` (default) or ``process_time``, the CPU seconds of this process and
    all its threads, which a machine shared with other jobs disturbs less."""
    ap.add_argument(
        "--timer",
        default="perf_counter",
        choices=TIMERS,
        help="process_time: CPU seconds of this process, all its threads (on a CPU shared with other jobs)",
    )


def timer(name: str) -> Callable[[], float]:
    """The ``time`` function named by ``--timer``."""
    if name not in TIMERS:
        raise ValueError(f"timer must be one of {', '.join(TIMERS)}, got {name!r}")
    return getattr(time, name)
