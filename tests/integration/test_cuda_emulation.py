"""The CUDA kernels (csrc/cuda/*.cu) run under host emulation and compared with the CPU kernels.

tests/cuda_emulation builds the .cu files for the host (a shim header for the CUDA keywords, intrinsics and
the c10/cuda headers; the threads of a block as fibers; every warp shuffle a checked rendezvous of the 32
lanes; the device branches of csrc/math with glibc for CUDA's libm) and registers the kernels as the CPU
kernels of a separate op namespace. Every op that the .cu files register is compared with the CPU op on the
grid of tests/cuda_emulation/grid.py (d from 2 to 1000 (10^4 for the elementwise ops), kappa from 0 to 1e12,
float32 and float64, non-contiguous and expanded inputs, empty batches, partial tiles and blocks, the
grid-stride loop), in variants: no contraction, fused multiply-adds (as nvcc contracts by default), and every
libm result moved within CUDA's documented ulp bounds. A build with seeded faults shows that the comparison
fails when a lane index, a shuffle mask, a stride or a device-only math branch is broken.
The figures of agreement are in docs/cuda_emulation.md (scripts/cuda_emulation_report.py).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or shutil.which(os.environ.get("CXX", "c++")) is None,
    reason="the CUDA emulation needs Linux (ucontext) and a C++ compiler",
)

from cuda_emulation import build as emu_build  # noqa: E402
from cuda_emulation import checks, grid  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
_RESULTS = {}


def _load(variant="plain", **kw):
    try:
        return emu_build.build(variant, **kw)
    except Exception as e:  # a build failure is a test failure, with the compiler's message
        pytest.fail(f"building the CUDA emulation ({variant}) failed: {e}")


@pytest.fixture(scope="module")
def emu():
    t = time.time()
    m = _load("plain")
    print(f"plain emulation ready in {time.time() - t:.1f} s")
    return m


def _backends(m):
    return {"cpu": (grid._cpu, "cpu"), "emulation": (lambda n: emu_build.op(m, n), "cpu")}


def _run(m, ops=None, perturb=0, quick=False, dtypes=grid.DTYPES):
    ops = ops or emu_build.emulated_ops(m)
    m.configure(4, perturb, 12345)
    try:
        return grid.run(
            _backends(m), ops, dtypes=dtypes, quick=quick, configure=lambda sms: m.configure(sms, perturb, 12345)
        )
    finally:
        m.configure(4, 0, 0)


def test_every_cuda_op_is_emulated_and_has_cases(emu):
    ops = emu_build.emulated_ops(emu)
    expected = [n for n in emu_build.hvae_ext_op_names() if grid.base_name(n) not in grid.CPU_ONLY]
    missing, extra = sorted(set(expected) - set(ops)), sorted(set(ops) - set(expected))
    assert not missing, (
        f"hvae_ext ops without a CUDA kernel: {missing} (an op that is CPU-only by design belongs "
        "in CPU_ONLY of tests/cuda_emulation/grid.py)"
    )
    assert not extra, f"ops listed as CPU-only in tests/cuda_emulation/grid.py have a CUDA kernel: {extra}"
    for op in ops:  # every elementwise op's operands have a rule in the grid (a KeyError names a missing one)
        if grid.base_name(op) in grid.CHECK_OPS:
            assert sum(base == grid.base_name(op) for _, base, _, _ in grid.check_cases()) >= 5
        elif grid.base_name(op) not in grid.SAMPLER_OPS:
            assert len(list(grid.elementwise_cases(op))) >= 5


def test_launch_rewrite_keeps_lines_and_rejects_unknown_launches():
    src = "k<T><<<a(1), 256, 0,\n  s>>>(x, y);\nf<<<1, 32>>>();\n"
    out, n = emu_build.rewrite_launches(src)
    assert n == 2 and out.count("\n") == src.count("\n")
    assert '::hvae_emu::launch(::hvae_emu::LaunchConfig(a(1), 256, 0,\n  s).named("k<T>"), &k<T>, x, y);' in out
    assert 'LaunchConfig(1, 32).named("f"), &f);' in out
    with pytest.raises(RuntimeError, match="does not recognise"):
        emu_build.rewrite_launches("k<<<1, 2>>> ;")


@pytest.mark.parametrize("dtype", grid.DTYPES, ids=str)
def test_emulated_cuda_kernels_match_cpu(emu, dtype):
    t = time.time()
    before = emu.stats()
    results = _run(emu, dtypes=(dtype,))
    after = emu.stats()
    # the kernels ran emulated: launches, and warp shuffles of the wide-row paths
    assert after["launches"] > before["launches"] and after["collectives"] > before["collectives"]
    bad = checks.failures(results)
    print(f"{dtype}: {len(results)} comparisons in {time.time() - t:.1f} s")
    assert not bad, "\n".join(bad)


def test_emulated_cuda_kernels_match_cpu_with_perturbed_libm(emu):
    """Every device libm result moved by a pseudo-random number of ulps within CUDA's bound."""
    before = emu.stats()["perturbed"]
    results = _run(emu, perturb=3, quick=True)
    assert emu.stats()["perturbed"] > before
    bad = checks.failures(results)
    assert not bad, "\n".join(bad)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [1, 2], ids=["up", "down"])
def test_emulated_cuda_kernels_match_cpu_with_libm_at_its_bound(emu, mode):
    results = _run(emu, perturb=mode)
    bad = checks.failures(results)
    assert not bad, "\n".join(bad)


# With fused multiply-adds every op must still agree: the second derivatives once lost it (the cancellation of
# A' + kappa A'' depended on the rounding of each product) and are listed on their own to show that they do not.
_FMA_GROUPS = (
    "vmf_sample",
    "vmf_sample_backward",
    "power_spherical_sample",
    "power_spherical_sample_backward",
    "elementwise",
    "vmf_mean_resultant_second_derivative",
    "vmf_kl_uniform_second_derivative",
)


@pytest.fixture(scope="module")
def emu_fma():
    if not emu_build._has_fma():
        pytest.skip("no fused multiply-add on this CPU")
    return _load("fma")


@pytest.mark.parametrize("group", _FMA_GROUPS)
def test_emulated_cuda_kernels_match_cpu_with_fma(emu_fma, group):
    ops = emu_build.emulated_ops(emu_fma)
    if group == "elementwise":
        ops = [o for o in ops if grid.base_name(o) not in grid.SAMPLER_OPS and grid.base_name(o) not in _FMA_GROUPS]
    else:
        ops = [o for o in ops if grid.base_name(o) == group]
    assert ops
    bad = checks.failures(_run(emu_fma, ops=ops, quick=True))
    assert not bad, "\n".join(bad)


# ---- seeded faults --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def emu_faults():
    return _load("plain", patches=checks.fault_patches(), tag="faults", only=("sample_cuda",))


def _sampler_results(m, fault):
    m.configure(4, 0, 0, fault)
    try:
        return grid.run(_backends(m), emu_build.emulated_ops(m), quick=True)
    finally:
        m.configure(4, 0, 0, 0)


def test_fault_build_without_fault_agrees(emu_faults):
    assert sorted(emu_build.emulated_ops(emu_faults)) == sorted(  # the fault build holds sample_cuda.cu only
        n for n in emu_build.hvae_ext_op_names() if grid.base_name(n) in ("vmf_sample", "vmf_sample_backward")
    )
    bad = checks.failures(_sampler_results(emu_faults, 0))
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("fault", checks.FAULTS, ids=[f"fault{f[0]}" for f in checks.FAULTS])
def test_emulation_catches_seeded_fault(emu_faults, fault):
    number, what, _, _, _, (kind, detail) = fault
    if kind == "error":
        with pytest.raises(RuntimeError, match=detail):
            _sampler_results(emu_faults, number)
    else:
        bad = [b for b in checks.failures(_sampler_results(emu_faults, number)) if b.split()[0].lstrip("_") == detail]
        assert bad, f"the emulation did not notice: {what}"


# ---- sanitizers (slow) -----------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("tool", ["asan", "ubsan"])
def test_emulated_cuda_kernels_under_sanitizer(tool):
    lib = {"asan": "libasan.so", "ubsan": "libubsan.so"}[tool]
    path = subprocess.run(["gcc", f"-print-file-name={lib}"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(path):
        pytest.skip(f"no {lib}")
    cxx = subprocess.run(["gcc", "-print-file-name=libstdc++.so"], capture_output=True, text=True).stdout.strip()
    env = dict(
        os.environ,
        LD_PRELOAD=f"{path} {cxx}",
        ASAN_OPTIONS="detect_leaks=0",
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "cuda_emulation.sanitize", tool],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3000,
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert "ERROR: AddressSanitizer" not in proc.stderr and "runtime error:" not in proc.stderr, tail
    assert "comparisons, 0 outside tolerance" in proc.stdout, tail
