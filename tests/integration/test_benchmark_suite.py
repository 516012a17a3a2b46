"""The benchmark suite's quick mode runs end to end (CI runs it) and its report renders.

Timings are not asserted here (targets live in the committed benchmark results, not in timed tests); this
checks that every quick-mode cell runs, that the JSON holds the implementations the targets compare, and
that ``benchmarks/report.py`` turns it into the markdown table and the plot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quick_benchmarks_and_report(tmp_path):
    pytest.importorskip("pytest_benchmark")
    out = tmp_path / "quick.json"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        os.path.join(ROOT, "benchmarks"),
        "--benchmark-only",
        "-q",
        "-p",
        "no:cacheprovider",
        "--bench-time",
        "0.02",
        "--bench-threads",
        "1",
        f"--benchmark-json={out}",
    ]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads(out.read_text())
    cells = {(b["extra_info"]["kind"], b["extra_info"]["impl"], b["extra_info"]["mode"]) for b in data["benchmarks"]}
    for needed in [
        ("rsample", "ours", "fwd"),
        ("rsample", "ours", "fwd+bwd"),
        ("rsample", "baseline", "fwd"),
        ("rsample", "baseline", "fwd+bwd"),
        ("randn", "randn", "fwd"),
    ]:
        assert needed in cells, f"quick mode lacks the cell {needed}: {sorted(cells)}"
    assert any(kind == "normalizer" for kind, _, _ in cells)
    report_dir = tmp_path / "report"
    report_dir.mkdir()
    rep = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "report.py"), str(out), "--out", str(report_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rep.returncode == 0, rep.stdout[-3000:] + rep.stderr[-3000:]
    text = (report_dir / "README.md").read_text()
    assert "### Targets: speed against the baselines" in text and "PyTorch Wood" in text
    assert (report_dir / "throughput.png").stat().st_size > 1000
