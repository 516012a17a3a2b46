// Operator schemas of hvae_ext (namespace hvae_ext): the elementwise ops from the table in csrc/ops_table.h,
// the sampler's below. Kernels are registered per backend in csrc/cpu/*.cpp and csrc/cuda/*.cu; fake (meta)
// kernels and autograd are registered from Python (hvae_ext/_ops.py).
#include <Python.h>
#include <torch/library.h>

#include "ops_table.h"

extern "C" {
// The extension is imported as the Python module hvae_ext._C only to load this library, whose static
// initialisers register the ops with the dispatcher.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(hvae_ext, m) {
  // The elementwise special functions, their backwards, the entropy, the KLs and dw/dkappa: csrc/ops_table.h.
  hvae::define_elementwise(m);
  // Sampler: loc (B, d), kappa (B,), seed int64 (1,). Row r of the (num_samples * B, d) output uses
  // parameter row r % B. Returns the samples and 1 - w per row (w = mu^T z, kept for the backward).
  m.def("vmf_sample(Tensor loc, Tensor kappa, Tensor seed, int num_samples) -> (Tensor, Tensor)");
  // Opt-in counter for the benchmarks (CPU): per sample row of vmf_sample with this seed, 1 - w (float64) and the
  // number of Wood proposals drawn (int32).
  m.def("_vmf_sample_proposals(Tensor loc, Tensor kappa, Tensor seed, int num_samples) -> (Tensor, Tensor)");
  m.def(
      "vmf_sample_backward(Tensor grad_z, Tensor z, Tensor one_minus_w, Tensor loc, Tensor kappa) -> "
      "(Tensor, Tensor)");
  // Power Spherical sampler (math/power_spherical.h), laid out as vmf_sample: returns the samples and the two Gamma
  // variates (G_a, G_b) of each row's Beta draw, float64 of shape (num_samples * B, 2), kept for the backward.
  m.def("power_spherical_sample(Tensor loc, Tensor kappa, Tensor seed, int num_samples) -> (Tensor, Tensor)");
  m.def(
      "power_spherical_sample_backward(Tensor grad_z, Tensor z, Tensor gammas, Tensor loc, Tensor kappa) -> "
      "(Tensor, Tensor)");
  // The fused argument checks of the distributions (internal; csrc/math/checks.h has the rules, csrc/check_layout.h
  // the results): int64 (3,), the first row (element) that fails the rule, the first with a NaN, the first with a
  // NaN or an infinity, -1 for none. One read of x, any strides, float32/float64/float16/bfloat16, no autograd.
  // Rows of x (..., d) of unit norm: |norm - 1| <= tol, the norm and the deviation rounded to x's dtype.
  m.def("_vmf_check_unit_rows(Tensor x, float tol) -> Tensor");
  // Elements finite and > 0.
  m.def("_check_positive_finite(Tensor x) -> Tensor");
}
