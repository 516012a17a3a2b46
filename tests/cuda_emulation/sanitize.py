"""Runs the emulation grid with an AddressSanitizer or UndefinedBehaviorSanitizer build of the emulated
kernels: `python -m cuda_emulation.sanitize asan|ubsan` from tests/, in a process started with the sanitizer's
runtime preloaded (LD_PRELOAD; tests/integration/test_cuda_emulation.py does this). The compiler runs without the preload.
"""

from __future__ import annotations

import os
import sys

os.environ.pop("LD_PRELOAD", None)  # this process has it; the compiler and ninja it starts do not need it

from . import build, checks, grid  # noqa: E402


def main(tool: str) -> int:
    m = build.build(tool)
    results = grid.run(
        {"cpu": (grid._cpu, "cpu"), "emulation": (lambda n: build.op(m, n), "cpu")},
        build.emulated_ops(m),
        configure=lambda sms: m.configure(sms, 0, 0),
    )
    bad = checks.failures(results)
    print("\n".join(bad))
    print(f"{tool}: {len(results)} comparisons, {len(bad)} outside tolerance")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
