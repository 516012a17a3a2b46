"""Agreement criteria of the CUDA emulation against the CPU ops, and the seeded faults it must catch.

An element agrees when |emulated - cpu| <= rtol * |cpu| + atol, NaN and infinity at the same places. The
emulated kernels run the device branches of csrc/math (CUDA's libm, here glibc) where the CPU kernels run
the host's branches (polynomial elementary functions in the sampler), so agreement is to rounding, not bits.
"""

from __future__ import annotations

import math

from .grid import base_name

# (rtol, atol) by (op base name, output) or op base name, per dtype; DEFAULT otherwise
DEFAULT = {"float64": (1e-11, 1e-14), "float32": (3e-7, 1e-12)}
TOLERANCES = {
    # 1 - w and the samples: unit vectors, compared absolutely
    ("vmf_sample", "z"): {"float64": (0.0, 1e-12), "float32": (0.0, 2e-6)},
    ("vmf_sample", "one_minus_w"): {"float64": (1e-12, 0.0), "float32": (3e-7, 0.0)},
    ("vmf_sample_backward", "grad_loc"): {"float64": (0.0, 1e-12), "float32": (0.0, 4e-6)},
    # dL/dkappa = dL/dw * dw/dkappa: at kappa = 1e12 both factors are formed by cancellation (values ~1e-18)
    ("vmf_sample_backward", "grad_kappa"): {"float64": (1e-8, 1e-16), "float32": (3e-7, 1e-12)},
    # the Power Spherical sampler: the same unit vectors and reflection backward; the Gamma pair in float64
    ("power_spherical_sample", "z"): {"float64": (0.0, 1e-12), "float32": (0.0, 2e-6)},
    ("power_spherical_sample", "gammas"): {"float64": (1e-12, 0.0), "float32": (1e-6, 0.0)},
    ("power_spherical_sample_backward", "grad_loc"): {"float64": (0.0, 1e-12), "float32": (0.0, 4e-6)},
    ("power_spherical_sample_backward", "grad_kappa"): {"float64": (1e-8, 1e-16), "float32": (3e-7, 1e-12)},
    # the fused argument checks return row indices: exact
    "vmf_check_unit_rows": {d: (0.0, 0.0) for d in ("float64", "float32", "float16", "bfloat16")},
    "check_positive_finite": {d: (0.0, 0.0) for d in ("float64", "float32", "float16", "bfloat16")},
    # A_d^{-1}(r) near r = 1 amplifies the rounding of its Newton steps by 1 / (1 - r) (kappa up to 1e12)
    "vmf_mean_resultant_inverse": {"float64": (1e-7, 1e-14), "float32": (3e-7, 1e-12)},
    "vmf_mean_resultant_inverse_backward": {"float64": (1e-7, 1e-14), "float32": (3e-7, 1e-12)},
}


def tolerance(op: str, output: str, dtype: str) -> tuple[float, float]:
    b = base_name(op)
    for key in ((b, output), b):
        if key in TOLERANCES:
            return TOLERANCES[key][dtype]
    return DEFAULT[dtype]


def failures(results, pair: str = "emulation-cpu") -> list[str]:
    """The results outside their tolerance, as readable lines (uses the per-element maxima: |delta| against
    rtol * |ref| + atol is checked with max |delta| <= atol or max relative <= rtol)."""
    out = []
    for r in results:
        if r.pair != pair:
            continue
        rtol, atol = tolerance(r.op, r.output, r.dtype)
        ok = r.nonfinite_ok and (
            r.max_abs <= atol or r.max_rel <= rtol or (math.isfinite(r.max_abs) and r.max_abs == 0)
        )
        if not ok:
            out.append(
                f"{r.op} {r.dtype} {r.case} {r.output}: max |delta| {r.max_abs:.3g}, max relative {r.max_rel:.3g}"
                f" (rtol {rtol:g}, atol {atol:g}){'' if r.nonfinite_ok else ', NaN/inf pattern or dtype differs'}"
            )
    return out


# The seeded faults (fault-injection build): (number, what is broken, file under csrc/, original text, patched
# text, how the emulation must react: "mismatch" in the named op or "error" matching the text).
FAULTS = [
    (
        1,
        "lane index: the forward kernel's lane = (threadIdx.x + 1) % 32",
        "cuda/sample_cuda.cu",
        "scalar_t* __restrict__ omw_out) {\n  const int lane = threadIdx.x % kWarp;",
        "scalar_t* __restrict__ omw_out) {\n  const int lane = (threadIdx.x + (::hvae_emu::fault_is(1) ? 1 : 0)) % kWarp;",
        ("mismatch", "vmf_sample"),
    ),
    (
        2,
        "shuffle mask: warp_sum's __shfl_xor_sync with lane 31 left out of the mask",
        "cuda/sphere_rows.cuh",
        "v += __shfl_xor_sync(kFullMask, v, offset);",
        "v += __shfl_xor_sync(::hvae_emu::fault_is(2) ? 0x7fffffffu : kFullMask, v, offset);",
        ("error", "not the full mask"),
    ),
    (
        3,
        "stride: the backward's lanes step by 16 coordinates instead of 32",
        "cuda/sample_cuda.cu",
        "static_cast<double>(omw_in[r]), d, lane, kWarp, lane == 0",
        "static_cast<double>(omw_in[r]), d, lane, ::hvae_emu::fault_is(3) ? kWarp / 2 : kWarp, lane == 0",
        ("mismatch", "vmf_sample_backward"),
    ),
    (
        4,
        "device-only math branch: Philox's __umulhi (the __CUDA_ARCH__ branch of mulhilo32) off by one bit",
        "math/philox.h",
        "*hi = __umulhi(a, b);",
        "*hi = __umulhi(a, b) ^ (::hvae_emu::fault_is(4) ? 1u : 0u);",
        ("mismatch", "vmf_sample"),
    ),
    (
        5,
        "divergent shuffle: the lanes past the last row of a partial tile skip the forward's __shfl_sync",
        "cuda/sample_cuda.cu",
        "const double omw = __shfl_sync(kFullMask, my_omw, j);",
        "const double omw = ::hvae_emu::fault_is(5) && my_row >= rows ? my_omw : __shfl_sync(kFullMask, my_omw, j);",
        ("error", "sample_cuda.cu"),
    ),
]


def fault_patches():
    return [(path, old, new) for _, _, path, old, new, _ in FAULTS]
