"""The build: the fallback to the CPU kernels without a CUDA compiler, HVAE_WITH_CUDA,
the CUDA architecture list, the nvcc/torch CUDA version check, and the error a CPU-only build gives for
CUDA tensors.

The CMake tests run the configure step only (a few seconds each), with the CPU torch of this machine made
to look like a CUDA torch through the test-only variable HVAE_TEST_TORCH_CUDA, and CMAKE_CUDA_COMPILER
pointing to nothing where "no compiler" is wanted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hvae_ext  # noqa: F401
from hvae_ext import _ops

ROOT = Path(__file__).resolve().parents[2]
CMAKE = shutil.which("cmake")
needs_cmake = pytest.mark.skipif(CMAKE is None, reason="cmake is not installed")
NVCC = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)


def _configure(tmp_path, *defines, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("HVAE_WITH_CUDA", "HVAE_CUDA_ARCHITECTURES", "CUDACXX")}
    env.update(env_extra or {})
    cmd = [
        CMAKE,
        "-S",
        str(ROOT),
        "-B",
        str(tmp_path / "build"),
        f"-DPython_EXECUTABLE={sys.executable}",
        *[f"-D{d}" for d in defines],
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def _arch(mode, archs):
    r = subprocess.run(
        [CMAKE, f"-DARCHS={archs}", f"-DMODE={mode}", "-P", str(ROOT / "tests/cmake/arch_list.cmake")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(r"RESULT=(.*)", r.stdout + r.stderr)
    return r.returncode, (m.group(1).strip() if m else r.stdout + r.stderr)


@needs_cmake
def test_architecture_numbers_are_read_right():
    assert _arch("torch", "80;90a;100;120") == (0, "8.0;9.0a;10.0;12.0")  # not 1.00 / 1.20
    assert _arch("torch", "86-real;90-virtual;75") == (0, "8.6;9.0+PTX;7.5")
    assert _arch("torch", "100f;103a") == (0, "10.0f;10.3a")
    rc, out = _arch("torch", "9.0")
    assert rc != 0 and "cannot read the CUDA architecture '9.0'" in out


@needs_cmake
def test_default_architectures_are_sass_for_each_and_ptx_of_the_newest():
    assert _arch("default", "sm_90;sm_80;sm_100;sm_120;sm_80") == (0, "80-real;90-real;100-real;120-real;120-virtual")
    assert _arch("default", "90") == (0, "90-real;90-virtual")


@needs_cmake
def test_cuda_torch_without_compiler_falls_back_to_cpu_kernels(tmp_path):
    r = _configure(tmp_path, "HVAE_TEST_TORCH_CUDA=12.8", "CMAKE_CUDA_COMPILER=/nonexistent/nvcc")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "no working CUDA compiler (nvcc) was found: building the CPU kernels only" in re.sub(r"\s+", " ", out)
    assert "building the CPU kernels only (torch has CUDA 12.8)" in out
    cache = (tmp_path / "build/CMakeCache.txt").read_text()
    assert "HVAE_TEST_TORCH_CUDA" not in cache  # a one-configure override, never cached
    # torch's own CMake config (which would look for the CUDA toolkit of a CUDA torch) is not used
    assert "Torch_DIR" not in cache and "HVAE_torch_cpu_LIBRARY" in cache


@needs_cmake
@pytest.mark.parametrize("how", ["env", "cmake"])
def test_forcing_cuda_without_compiler_fails_with_a_clear_message(tmp_path, how):
    defines = ["HVAE_TEST_TORCH_CUDA=12.8", "CMAKE_CUDA_COMPILER=/nonexistent/nvcc"]
    env = None
    if how == "env":
        env = {"HVAE_WITH_CUDA": "1"}
    else:
        defines.append("HVAE_WITH_CUDA=ON")
    r = _configure(tmp_path, *defines, env_extra=env)
    out = re.sub(r"\s+", " ", r.stdout + r.stderr)
    assert r.returncode != 0
    assert "HVAE_WITH_CUDA=1 but no working CUDA compiler was found (CMAKE_CUDA_COMPILER = '/nonexistent/nvcc')" in out
    assert "HVAE_WITH_CUDA=0" in out  # says how to build without


@needs_cmake
@pytest.mark.skipif(torch.version.cuda is not None, reason="this torch has CUDA")
def test_forcing_cuda_with_a_cpu_torch_fails_with_a_clear_message(tmp_path):
    r = _configure(tmp_path, env_extra={"HVAE_WITH_CUDA": "1"})
    out = re.sub(r"\s+", " ", r.stdout + r.stderr)
    assert r.returncode != 0 and "has no CUDA (torch.version.cuda is None)" in out


@needs_cmake
def test_bad_hvae_with_cuda_value(tmp_path):
    r = _configure(tmp_path, env_extra={"HVAE_WITH_CUDA": "maybe"})
    assert r.returncode != 0 and "HVAE_WITH_CUDA must be 0, 1 or empty" in r.stdout + r.stderr


@needs_cmake
def test_cuda_off_builds_cpu_kernels(tmp_path):
    r = _configure(tmp_path, "HVAE_TEST_TORCH_CUDA=12.8", env_extra={"HVAE_WITH_CUDA": "0"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "building the CPU kernels only (torch has CUDA 12.8)" in r.stdout


@needs_cmake
@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")
def test_nvcc_major_version_must_match_torch_cuda(tmp_path):
    out = subprocess.run([NVCC, "--version"], capture_output=True, text=True).stdout
    major = int(re.search(r"release (\d+)\.", out).group(1))
    other = f"{major - 1}.8"
    r = _configure(tmp_path, f"HVAE_TEST_TORCH_CUDA={other}", f"CMAKE_CUDA_COMPILER={NVCC}")
    msg = re.sub(r"\s+", " ", r.stdout + r.stderr)
    assert r.returncode != 0, msg
    assert f"and torch's CUDA {other} differ in their major version" in msg


def test_cuda_tensor_on_a_cpu_only_build_says_how_to_rebuild():
    """A CPU-only build registers, for the CUDA dispatch key of every op, a kernel that raises naming
    HVAE_WITH_CUDA. Without a GPU, the CUDA kernel is reached by redispatching to the CUDA key."""
    if _ops.HAS_CUDA_KERNELS:
        pytest.skip("this build has the CUDA kernels")
    for name in _ops.OP_NAMES:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"hvae_ext::{name}", "CUDA"), name
    loc = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    cuda_keys = torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)
    with pytest.raises(
        RuntimeError,
        match=r"hvae_ext::vmf_sample got a CUDA tensor, but this build of hvae_ext "
        r"has no CUDA kernels.*HVAE_WITH_CUDA=1 pip install",
    ):
        torch.ops.hvae_ext.vmf_sample.default.redispatch(cuda_keys, loc, torch.ones(3), torch.tensor([1]), 1)
    with pytest.raises(RuntimeError, match=r"hvae_ext::vmf_log_normalizer got a CUDA tensor.*HVAE_WITH_CUDA"):
        torch.ops.hvae_ext.vmf_log_normalizer.default.redispatch(cuda_keys, torch.ones(3), torch.tensor(3))
    # the CPU kernels are untouched
    assert torch.isfinite(torch.ops.hvae_ext.vmf_log_normalizer(torch.ones(3), torch.tensor(3))).all()
