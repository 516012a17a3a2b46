"""Builds the host emulation of the CUDA kernels (csrc/cuda/*.cu) as a torch extension.

The .cu files are compiled for the host through the shim header csrc/cuda_emu.h (next to this file). Their
text is used as it is, except that each kernel launch `k<<<grid, block, shmem, stream>>>(args)` is rewritten to
`::hvae_emu::launch(::hvae_emu::LaunchConfig(grid, block, shmem, stream).named("k"), &k, args)`: the build copies the
repository's csrc/ tree into its build folder, rewrites the launches there (and applies the optional `patches`,
which the fault-injection tests use), and compiles one translation unit per .cu file plus the emulation's
runtime. The kernels register as the CPU kernels of the op namespace `hvae_emu_<variant>`, whose schemas are
copied from hvae_ext's, so `torch.ops.hvae_emu_<variant>.<op>(...)` takes the arguments of
`torch.ops.hvae_ext.<op>(...)` and runs the CUDA kernel on CPU tensors.

Variants: "plain" (no floating-point contraction), "fma" (a*b+c contracted to fused multiply-adds, as nvcc does
by default), "asan" and "ubsan" (AddressSanitizer / UndefinedBehaviorSanitizer; their library can only be
loaded into a process started with the sanitizer runtime preloaded, see sanitize.py). The libm perturbation
is a run-time setting of every variant (`configure`).

Build folders: <repository>/.cache/cuda_emulation/<variant>-<hash of the flags and patches> (ignored by git),
or $HVAE_EMU_CACHE/<...>. A rebuild happens only when a source file changed.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EMU_CSRC = HERE / "csrc"

# kernel<template args><<<config>>>( ; the kernel name may be qualified, its template arguments hold no ';'
_LAUNCH = re.compile(r"(?P<kernel>[A-Za-z_][\w:]*(?:<[^;{}]*?>)?)\s*<<<(?P<cfg>[^;]*?)>>>\s*\((?P<empty>\s*\))?")

_LIBS: dict[str, object] = {}  # torch.library.Library objects holding the copied schemas (kept alive)
_MODULES: dict[str, object] = {}


def _has_fma() -> bool:
    if platform.machine() in ("aarch64", "arm64"):
        return True
    try:
        return " fma " in " " + Path("/proc/cpuinfo").read_text().replace("\n", " ") + " "
    except OSError:
        return False


def variant_flags(variant: str) -> tuple[list[str], list[str]]:
    """(compiler flags, linker flags) of a variant."""
    x86 = platform.machine() in ("x86_64", "AMD64", "i686")
    if variant == "plain":
        return ["-ffp-contract=off"], []
    if variant == "fma":
        if not _has_fma():
            raise RuntimeError("the fma variant needs a CPU with fused multiply-add")
        return (["-mfma"] if x86 else []) + ["-ffp-contract=fast"], []
    if variant == "asan":
        return ["-ffp-contract=off", "-fsanitize=address", "-fno-omit-frame-pointer"], ["-fsanitize=address"]
    if variant == "ubsan":
        return ["-ffp-contract=off", "-fsanitize=undefined", "-fno-sanitize=vptr", "-fno-omit-frame-pointer"], [
            "-fsanitize=undefined"
        ]
    raise ValueError(f"unknown variant {variant!r} (plain, fma, asan, ubsan)")


def rewrite_launches(text: str, name: str = "<source>") -> tuple[str, int]:
    """The .cu text with every `k<<<cfg>>>(` replaced by an emulated launch; line numbers are kept."""

    def repl(m: re.Match) -> str:
        kernel = m["kernel"]
        name = " ".join(kernel.split()).replace("\\", "").replace('"', "")
        head = f'::hvae_emu::launch(::hvae_emu::LaunchConfig({m["cfg"]}).named("{name}"), &{kernel}'
        return head + ")" if m["empty"] else head + ", "

    out, n = _LAUNCH.subn(repl, text)
    if "<<<" in out or ">>>" in out:
        raise RuntimeError(f"{name}: a kernel launch the emulation's rewrite does not recognise")
    return out, n


def _write_if_changed(path: Path, data: str) -> None:
    if path.exists() and path.read_text() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)


def cache_root() -> Path:
    return Path(os.environ.get("HVAE_EMU_CACHE") or ROOT / ".cache" / "cuda_emulation")


def prepare_sources(build_dir: Path, patches=(), only=None) -> list[Path]:
    """Copies csrc/ into build_dir/src/csrc (launches rewritten, patches applied); returns the wrapper TUs."""
    src_root = build_dir / "src"
    csrc = ROOT / "csrc"
    texts = {p.relative_to(csrc).as_posix(): p.read_text() for p in sorted(csrc.rglob("*")) if p.is_file()}
    for rel, old, new in patches:
        if rel not in texts:
            raise FileNotFoundError(f"patch: csrc/{rel} does not exist")
        count = texts[rel].count(old)
        if count != 1:
            raise RuntimeError(f"patch: {old!r} occurs {count} times in csrc/{rel} (must be once)")
        texts[rel] = texts[rel].replace(old, new)
    wrappers = []
    for rel, text in texts.items():
        if rel.endswith(".cu") and (only is None or Path(rel).stem in only):
            text, n = rewrite_launches(text, rel)
            if n == 0:
                raise RuntimeError(f"csrc/{rel}: no kernel launch found")
            # diagnostics and the collectives' error messages name the repository's file
            text = f'#line 1 "csrc/{rel}"\n' + text
            stem = re.sub(r"\W", "_", rel[:-3])
            wrapper = src_root / f"emu_{stem}.cpp"
            _write_if_changed(
                wrapper, f'// generated by tests/cuda_emulation/build.py\n#include "cuda_emu.h"\n#include "{rel}"\n'
            )
            wrappers.append(wrapper)
        _write_if_changed(src_root / "csrc" / rel, text)
    if not wrappers:
        raise RuntimeError("csrc/ has no .cu file")
    return wrappers


def hvae_ext_op_names() -> list[str]:
    """The ops hvae_ext defines (its compiled library loaded by importing hvae_ext)."""
    import hvae_ext  # noqa: F401  (registers the ops)

    return sorted(n.split("::", 1)[1] for n in torch._C._dispatch_get_all_op_names() if n.startswith("hvae_ext::"))


def _define_schemas(ns: str) -> None:
    if ns in _LIBS:
        return
    lib = torch.library.Library(ns, "DEF")
    for name in hvae_ext_op_names():
        schema = str(getattr(torch.ops.hvae_ext, name).default._schema)
        lib.define(schema.split("::", 1)[1])
    _LIBS[ns] = lib


def build(variant: str = "plain", patches=(), tag: str | None = None, only=None, verbose: bool = False):
    """Builds (if needed) and loads one emulation library; returns its Python module.

    The module's `op_namespace` names the torch.ops namespace of the emulated kernels; `configure` and
    `stats` control and count the emulated device (csrc/runtime.cpp). `only`: the stems of the .cu files to
    compile (default all); `tag` names a build with patches (the op namespace is hvae_emu_<tag or variant>).
    """
    cflags, ldflags = variant_flags(variant)
    key = hashlib.sha256(
        repr((variant, tuple(map(tuple, patches)), only and sorted(only), cflags, torch.__version__)).encode()
    ).hexdigest()[:10]
    name = f"hvae_emu_{tag or variant}"
    if name in _MODULES:
        return _MODULES[name]
    if not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise ValueError(f"bad emulation name {name!r}")
    build_dir = cache_root() / f"{tag or variant}-{key}"
    wrappers = prepare_sources(build_dir, patches, only)
    _define_schemas(name)
    from torch.utils import cpp_extension

    (build_dir / "build").mkdir(parents=True, exist_ok=True)
    module = cpp_extension.load(
        name=name,
        sources=[str(EMU_CSRC / "runtime.cpp")] + [str(w) for w in wrappers],
        extra_cflags=["-O2", f"-DHVAE_EMU_NS={name}", "-Wno-unknown-pragmas"] + cflags,
        extra_ldflags=ldflags,
        extra_include_paths=[str(EMU_CSRC / "shim"), str(EMU_CSRC), str(build_dir / "src" / "csrc")],
        build_directory=str(build_dir / "build"),
        verbose=verbose,
    )
    if module.op_namespace != name:
        raise RuntimeError(f"loaded {module.op_namespace}, expected {name}")
    dangling = [d for d in torch._C._dispatch_find_dangling_impls() if f"{name}::" in d]
    if dangling:
        raise RuntimeError("the CUDA kernels register ops that hvae_ext does not define:\n" + "\n".join(dangling))
    _MODULES[name] = module
    return module


def emulated_ops(module) -> list[str]:
    """The ops with an emulated CUDA kernel in this library (those the .cu files register)."""
    ns = module.op_namespace
    return [n for n in hvae_ext_op_names() if torch._C._dispatch_has_kernel_for_dispatch_key(f"{ns}::{n}", "CPU")]


def op(module, name: str):
    """torch.ops.<namespace>.<name> of the emulation library."""
    return getattr(getattr(torch.ops, module.op_namespace), name)
