"""Tables that README.md and docs/*.md show between ``<!-- include: PATH ... -->`` and ``<!-- end include -->``
are the committed files that the named commands write (the KS table has its own test, test_demo_table.py)."""

from __future__ import annotations

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BLOCK = re.compile(r"<!-- include: (\S+)[^>]*-->\n(.*?)<!-- end include -->", re.S)
DOCS = ["README.md"] + [
    os.path.join("docs", f) for f in sorted(os.listdir(os.path.join(ROOT, "docs"))) if f.endswith(".md")
]


def _blocks():
    for doc in DOCS:
        with open(os.path.join(ROOT, doc), encoding="utf-8") as fh:
            for m in BLOCK.finditer(fh.read()):
                yield doc, m.group(1), m.group(2)


def test_there_are_included_tables():
    found = {path for _, path, _ in _blocks()}
    assert {
        "docs/special_accuracy.md",
        "docs/entropy_kl_accuracy.md",
        "docs/second_derivative_accuracy.md",
        "experiments/results/gradient_table.md",
    } <= found, found


@pytest.mark.parametrize("doc,path,text", list(_blocks()), ids=lambda x: str(x)[:40])
def test_included_table_is_the_file(doc, path, text):
    with open(os.path.join(ROOT, path), encoding="utf-8") as fh:
        assert text == fh.read(), f"{doc} shows an older {path}: rerun its command and paste the file"


def _first_table(text: str, header: str) -> str:
    """The table that starts at the line ``header`` and, where one follows it, its footnote paragraph."""
    start = text.index(header)
    end = text.find("\n\n", start)
    block_end = text.find("\n\n", end + 2) if text.startswith("†", end + 2) else end
    return text[start:block_end]


def test_mnist_page_shows_the_report_table():
    """docs/mnist.md shows the MNIST report's main table (paper convention) and its footnote as the report has
    them: rerun ``python -m experiments.report experiments/results/mnist`` and paste the table."""
    header = "| d | N-VAE test LL | paper N-VAE |"
    with open(os.path.join(ROOT, "experiments/results/mnist/report.md"), encoding="utf-8") as fh:
        report = _first_table(fh.read(), header)
    with open(os.path.join(ROOT, "docs/mnist.md"), encoding="utf-8") as fh:
        page = _first_table(fh.read(), header)
    assert page == report, "docs/mnist.md shows an older MNIST table: paste the report's"
