// Operator schemas of hvae_ext (namespace hvae_ext). Kernels are registered per backend in
// csrc/cpu/*.cpp and csrc/cuda/*.cu; fake (meta) kernels and autograd are registered from Python
// (hvae_ext/_ops.py).
#include <Python.h>
#include <torch/library.h>

extern "C" {
// The extension is imported as the Python module hvae_ext._C only to load this library, whose static
// initialisers register the ops with the dispatcher.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(hvae_ext, m) {
  // Special functions: elementwise with broadcasting; computed in float64 whatever the dtype.
  m.def("log_bessel_iv(Tensor v, Tensor x) -> Tensor");
  m.def("log_bessel_iv_backward(Tensor grad, Tensor v, Tensor x) -> Tensor");
  m.def("bessel_iv_ratio(Tensor v, Tensor x) -> Tensor");
  m.def("bessel_iv_ratio_backward(Tensor grad, Tensor v, Tensor x) -> Tensor");
  m.def("vmf_log_normalizer(Tensor kappa, Tensor dim) -> Tensor");
  m.def("vmf_log_normalizer_backward(Tensor grad, Tensor kappa, Tensor dim) -> Tensor");
  m.def("vmf_mean_resultant(Tensor kappa, Tensor dim) -> Tensor");
  m.def("vmf_mean_resultant_backward(Tensor grad, Tensor kappa, Tensor dim) -> Tensor");
  m.def("vmf_mean_resultant_inverse(Tensor r, Tensor dim) -> Tensor");
  m.def("vmf_mean_resultant_inverse_backward(Tensor grad, Tensor kappa, Tensor r, Tensor dim) -> Tensor");
  m.def("vmf_kl_uniform(Tensor kappa, Tensor dim) -> Tensor");
  m.def("vmf_kl_uniform_backward(Tensor grad, Tensor kappa, Tensor dim) -> Tensor");
  // Entropy and KL(vMF || vMF), accurate at large kappa (backward composed in hvae_ext/_ops.py).
  m.def("vmf_entropy(Tensor kappa, Tensor dim) -> Tensor");
  m.def("vmf_kl_vmf(Tensor kappa_p, Tensor kappa_q, Tensor one_minus_cos, Tensor dim) -> Tensor");
  // The forward ops of autograd: (value, d value / d kappa) in one pass, the derivative kept for the backward.
  m.def("vmf_log_normalizer_and_grad(Tensor kappa, Tensor dim) -> (Tensor, Tensor)");
  m.def("vmf_kl_uniform_and_grad(Tensor kappa, Tensor dim) -> (Tensor, Tensor)");
  m.def("vmf_w_dkappa(Tensor one_minus_w, Tensor kappa, Tensor dim, Tensor mean_resultant) -> Tensor");
  // Sampler: loc (B, d), kappa (B,), seed int64 (1,). Row r of the (num_samples * B, d) output uses
  // parameter row r % B. Returns the samples and 1 - w per row (w = mu^T z, kept for the backward).
  m.def("vmf_sample(Tensor loc, Tensor kappa, Tensor seed, int num_samples) -> (Tensor, Tensor)");
  // Opt-in counter for the benchmarks (CPU): per sample row of vmf_sample with this seed, 1 - w (float64) and the
  // number of Wood proposals drawn (int32).
  m.def("vmf_sample_proposals(Tensor loc, Tensor kappa, Tensor seed, int num_samples) -> (Tensor, Tensor)");
  m.def(
      "vmf_sample_backward(Tensor grad_z, Tensor z, Tensor one_minus_w, Tensor loc, Tensor kappa) -> "
      "(Tensor, Tensor)");
}
