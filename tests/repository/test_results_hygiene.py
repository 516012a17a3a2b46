"""The committed results are portable and small: no absolute path of a machine in experiments/results/ or
benchmarks/results/ (scripts/clean_results.py --check finds nothing to change), experiments/results/ under 5 MB, and
the path rewriting itself (experiments.common.portable)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from experiments.common import portable, portable_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ABS = re.compile(r"(?<![\w.<>/:-])/(?:work|home|root|tmp|usr|opt|mnt|scratch|Users)/[\w.+~-]+")


def _files(top):
    for d, _, fs in os.walk(os.path.join(ROOT, top)):
        for f in fs:
            yield os.path.join(d, f)


def test_results_have_no_absolute_paths():
    bad = []
    for top in (os.path.join("experiments", "results"), os.path.join("benchmarks", "results"), "docs"):
        for f in _files(top):
            if f.endswith((".json", ".md", ".txt", ".log")):  # not scripts: their "#!/usr/bin/env"
                with open(f, encoding="utf-8") as fh:
                    m = ABS.search(fh.read())
                if m:
                    bad.append((os.path.relpath(f, ROOT), m.group(0)))
    assert not bad, bad[:10]


def test_clean_results_finds_nothing_to_change():
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "clean_results.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_results_under_5_mb():
    size = sum(os.path.getsize(f) for f in _files(os.path.join("experiments", "results")))
    assert size < 5e6, size


def test_every_run_file_is_a_summary():
    """The size policy of experiments/results/README.md: one summary file per run, at most 40 KB (histories
    only as far as a report reads them; scripts/clean_results.py prunes the rest)."""
    big = [
        (f, os.path.getsize(f))
        for f in _files(os.path.join("experiments", "results"))
        if f.endswith(".json") and os.path.getsize(f) > 40_000
    ]
    assert not big, big


def test_portable_paths():
    root = "/x/checkout"
    assert portable_path("/x/checkout/results/a.json", root) == "results/a.json"
    assert portable_path("/work/main/hvae_ext/_C.so", root) == "<main>/hvae_ext/_C.so"
    assert portable_path("/usr/lib/python3/site-packages/hvae_ext/_C.so", root) == "<site-packages>/hvae_ext/_C.so"
    assert portable_path("/work/shared/data/MNIST/raw", root) == "<data>/MNIST/raw"
    assert portable_path("/opt/thing/lib.so", root) == "<external>/lib.so"
    assert portable_path("relative/path", root) == "relative/path"
    rec = {
        "argv": ["--data-root", "/work/shared/data/planetoid", "--out=/work/checkout/results/runs"],
        "text": "rate 75/s, (d-1)/2, https://github.com/a/b",
        "n": 3,
    }
    assert portable(rec, "/work/checkout") == {
        "argv": ["--data-root", "<data>/planetoid", "--out=results/runs"],
        "text": "rate 75/s, (d-1)/2, https://github.com/a/b",
        "n": 3,
    }
