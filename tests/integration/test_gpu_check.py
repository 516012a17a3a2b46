"""scripts/gpu_check.sh cannot run without a GPU; here its shell syntax is checked and
its dry run (every Python stage on the CPU at small sizes, no build) runs end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts/gpu_check.sh"
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None or shutil.which("timeout") is None, reason="needs bash and timeout")


def test_gpu_check_shell_syntax():
    r = subprocess.run([BASH, "-n", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.access(SCRIPT, os.X_OK)


def test_gpu_check_dry_run_on_cpu(tmp_path):
    env = dict(os.environ, HVAE_GPU_OUT=str(tmp_path), PYTHON=sys.executable)
    r = subprocess.run([BASH, str(SCRIPT), "--dry-run"], capture_output=True, text=True, env=env, timeout=400, cwd=ROOT)
    summary = (tmp_path / "summary.txt").read_text()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:] + summary
    for stage in ("env", "info", "sync", "graph", "agree", "bench", "emulation"):
        assert f"{stage}: ok" in summary, summary
    sync = json.loads((tmp_path / "sync.json").read_text())
    assert set(sync["checks"]) >= {
        "rsample",
        "rsample_backward",
        "kl_vmf_uniform",
        "log_prob",
        "entropy",
        "svae_training_step",
    }
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert [row["d"] for row in bench["rows"]] == [3, 16, 64, 256]
    agree = json.loads((tmp_path / "agree.json").read_text())
    assert agree["ok"] and len(agree["special"]) == 8 and len(agree["samples"]) == 5
    emulation = json.loads((tmp_path / "emulation.json").read_text())
    assert emulation["ok"] and list(emulation["pairs"]) == ["emulation-cpu"] and emulation["comparisons"] > 100


def test_gpu_check_rejects_unknown_arguments():
    r = subprocess.run([BASH, str(SCRIPT), "--bogus"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "unknown argument --bogus" in r.stderr
