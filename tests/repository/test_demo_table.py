"""The KS table of docs/sampler.md is the file that ``python -m hvae_ext.demo`` writes (docs/figures/ks_table.md), and
that file is what the demo computes now for its fixed seed. The sampler's samples depend only on the seed
(not on the number of threads), so the markdown table is compared exactly. The JSON beside it keeps every float
to the last bit, and those last bits depend on the machine: glibc picks its exp/log implementation by CPU
(with or without FMA), so one KS statistic at d = 1000 differs by 3e-17 between an Intel and an AMD machine.
Its floats are therefore compared to 1e-12 relative, its integers and strings exactly."""

from __future__ import annotations

import json
import os
import re

import pytest

pytest.importorskip("scipy")

from hvae_ext import demo  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TABLE = os.path.join(ROOT, "docs", "figures", "ks_table.md")


def _page_table() -> str:
    with open(os.path.join(ROOT, "docs", "sampler.md"), encoding="utf-8") as fh:
        text = fh.read()
    m = re.search(r"<!-- ks-table: begin[^>]*-->\n(.*?)<!-- ks-table: end -->", text, re.S)
    assert m, "docs/sampler.md has no <!-- ks-table: begin --> ... <!-- ks-table: end --> block"
    return m.group(1)


def test_sampler_page_ks_table_is_the_committed_file():
    with open(TABLE) as fh:
        assert _page_table() == fh.read()


def test_committed_ks_table_is_what_the_demo_computes_now(tmp_path):
    demo.main(["--out", str(tmp_path), "--no-plots"])  # the default seed, as on the page
    with open(TABLE) as fh:
        committed = fh.read()
    assert (tmp_path / "ks_table.md").read_text() == committed
    with open(os.path.join(ROOT, "docs", "figures", "ks_table.json")) as fh:
        _assert_same_record(json.load(fh), json.loads((tmp_path / "ks_table.json").read_text()))


def _assert_same_record(committed, now, where="record"):
    """Equal structure, integers and strings; floats equal to 1e-12 relative (see the module docstring)."""
    assert type(committed) is type(now), where
    if isinstance(committed, dict):
        assert committed.keys() == now.keys(), where
        for k in committed:
            _assert_same_record(committed[k], now[k], f"{where}.{k}")
    elif isinstance(committed, list):
        assert len(committed) == len(now), where
        for i, (a, b) in enumerate(zip(committed, now)):
            _assert_same_record(a, b, f"{where}[{i}]")
    elif isinstance(committed, float):
        assert now == pytest.approx(committed, rel=1e-12, abs=0.0), where
    else:
        assert committed == now, where
