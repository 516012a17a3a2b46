"""Each op of torch.ops.hvae_ext is registered from Python exactly once: one fake kernel, at most one autograd
formula, one autocast kernel per device and at most one CUDA fallback, all from the table
``hvae_ext._ops.REGISTRATIONS``; the table's generated (elementwise) fake kernels are those of the ops of
csrc/ops_table.h; internal ops carry the underscore prefix."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import torch

from hvae_ext import _ops


def _repository_root() -> Path:
    for folder in Path(__file__).resolve().parents:
        if (folder / "hvae_ext" / "_ops.py").is_file() and (folder / "csrc" / "ops_table.h").is_file():
            return folder
    raise AssertionError("the tests run from a source checkout (hvae_ext/ and csrc/ beside each other)")


ROOT = _repository_root()

# Imports hvae_ext with torch's two registration points wrapped: FakeImplHolder.register receives every fake
# kernel (torch.library.register_fake and its aliases), Library.impl every dispatcher kernel (autograd,
# autocast, CUDA fallback). Prints how often each hvae_ext op got each.
_SCRIPT = r"""
import json
from collections import Counter

import torch
import torch._library.fake_impl as fake_impl

fakes, impls = Counter(), Counter()
register_fake, impl = fake_impl.FakeImplHolder.register, torch.library.Library.impl


def counting_register_fake(self, func, *args, **kwargs):
    if self.qualname.startswith("hvae_ext::"):
        fakes[self.qualname.split("::", 1)[1]] += 1
    return register_fake(self, func, *args, **kwargs)


def counting_impl(self, op_name, fn, dispatch_key="", *args, **kwargs):
    name = op_name if isinstance(op_name, str) else op_name.name()
    if self.ns == "hvae_ext" or name.startswith("hvae_ext::"):
        impls[name.split("::", 1)[-1] + " " + dispatch_key] += 1
    return impl(self, op_name, fn, dispatch_key, *args, **kwargs)


fake_impl.FakeImplHolder.register = counting_register_fake
torch.library.Library.impl = counting_impl
import hvae_ext  # noqa: E402
from hvae_ext import _ops  # noqa: E402

print(json.dumps({"fakes": fakes, "impls": impls, "ops": _ops.OP_NAMES,
                  "autograd": [e.name for e in _ops.REGISTRATIONS if e.backward is not None]}))
"""


def _registrations_at_import() -> dict:
    run = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_each_op_gets_one_fake_kernel_and_at_most_one_kernel_per_dispatch_key():
    seen = _registrations_at_import()
    fakes, impls, ops = Counter(seen["fakes"]), Counter(seen["impls"]), seen["ops"]
    assert ops, "no hvae_ext op was found"
    assert set(fakes) <= set(ops), sorted(set(fakes) - set(ops))
    twice = {name: n for name, n in fakes.items() if n > 1}
    assert not twice, f"ops whose fake kernel is registered more than once: {twice}"
    without = sorted(set(ops) - set(fakes))
    assert not without, f"ops without a fake kernel: {without}"
    twice = {key: n for key, n in impls.items() if n > 1}
    assert not twice, f"(op, dispatch key) registered more than once: {twice}"
    # autograd exactly for the table's differentiable ops, autocast for every op
    autograd = sorted(key.split()[0] for key in impls if key.endswith(" Autograd"))
    assert autograd == sorted(seen["autograd"])
    assert {"vmf_sample", "log_bessel_iv", "vmf_kl_vmf", "vmf_entropy"} <= set(autograd)
    assert all(f"{name} AutocastCPU" in impls for name in ops)


def test_table_has_one_line_per_op_of_the_library():
    names = [entry.name for entry in _ops.REGISTRATIONS]
    assert len(names) == len(set(names)), sorted(n for n, c in Counter(names).items() if c > 1)
    assert sorted(names) == sorted(_ops.OP_NAMES)


def test_generated_fake_kernels_are_those_of_the_elementwise_op_table():
    """The table's ELEMENTWISE lines are the ops of csrc/ops_table.h, and only those ops: the generated and the
    hand-written fake kernels cover disjoint sets of ops."""
    text = (ROOT / "csrc" / "ops_table.h").read_text()
    macro = text[text.index("#define HVAE_ELEMENTWISE_OPS(X)") :]
    macro = macro[: macro.index("\n\n")]
    table = set(re.findall(r"^\s*X\((\w+),", macro, flags=re.M))
    assert len(table) >= 20, table
    generated = {e.name for e in _ops.REGISTRATIONS if e.fake is _ops.ELEMENTWISE}
    by_hand = {e.name for e in _ops.REGISTRATIONS if e.fake is not _ops.ELEMENTWISE}
    assert generated == table
    assert not generated & by_hand
    assert all(callable(e.fake) for e in _ops.REGISTRATIONS if e.name in by_hand)


def test_internal_ops_carry_an_underscore():
    """Public ops (no leading underscore, no ``_backward`` suffix) are the ones the library's public modules
    call; the rest is internal."""
    public = [n for n in _ops.OP_NAMES if not n.startswith("_") and not n.endswith("_backward")]
    sources = "\n".join(p.read_text() for p in (ROOT / "hvae_ext").rglob("*.py") if p.name != "_ops.py")
    unused = [n for n in public if not re.search(rf"\b{n}\b", sources)]
    assert not unused, f"ops without an underscore that no public module calls: {unused}"
    for name in (
        "_vmf_sample_proposals",
        "_vmf_w_dkappa",
        "_vmf_w_dkappa_float32_rule",
        "_vmf_log_normalizer_and_grad",
        "_vmf_kl_uniform_and_grad",
        "_vmf_mean_resultant_second_derivative",
        "_vmf_kl_uniform_second_derivative",
    ):
        assert hasattr(torch.ops.hvae_ext, name), name
        assert not hasattr(torch.ops.hvae_ext, name[1:]), name[1:]
