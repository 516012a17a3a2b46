"""Sphinx configuration of the hvae_ext documentation.

Build (from the repository root; CI runs both):

    python -m sphinx -W -b html docs docs/_build/html        # the site, warnings are errors
    python -m sphinx -W -b doctest docs docs/_build/doctest  # runs the pages' code examples

Why Sphinx with the furo theme rather than mkdocs-material: the API reference is generated from the
docstrings by autodoc, which reads the reST/Napoleon docstrings (Args:, math roles) of hvae_ext as they are
written and resolves cross-references into torch's own documentation through intersphinx; the doctest builder
runs the examples of every page, so the pages cannot drift from the code; myst-parser keeps the existing
Markdown pages of docs/ as they are. furo is a clean, readable theme with a light and a dark mode and no
configuration to maintain.
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)  # the checkout's hvae_ext (its compiled ops load as the package itself does)

import hvae_ext  # noqa: E402

project = "hvae_ext"
author = "hvae_ext contributors"
copyright = "2026, hvae_ext contributors"
release = version = hvae_ext.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
# Tables included by other pages (tests/repository/test_docs_tables.py checks the copies) and generated files.
exclude_patterns = [
    "_build",
    "special_accuracy.md",
    "entropy_kl_accuracy.md",
    "second_derivative_accuracy.md",
    "figures/*.md",
    "README.md",
]

myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = f"hvae_ext {release}"

# The doctest builder runs the pages' examples; the graph example needs torch_geometric (the experiments extra).
doctest_global_setup = """
import os
import torch
torch.manual_seed(0)
"""
