"""The KS table of docs/sampler.md is the file that ``python -m hvae_ext.demo`` writes (docs/figures/ks_table.md), and
that file is what the demo computes now for its fixed seed. The sampler's samples depend only on the seed
(not on the number of threads), so the comparison is exact."""

from __future__ import annotations

import json
import os
import re

import pytest

pytest.importorskip("scipy")

from hvae_ext import demo  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
        assert json.load(fh) == json.loads((tmp_path / "ks_table.json").read_text())
