// Argument checks of the sampler ops, shared by the CPU and CUDA entry points, so that a direct call of
// torch.ops.hvae_ext.vmf_sample* can never read out of bounds.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>

namespace hvae {

inline void check_sample_args(const at::Tensor& loc, const at::Tensor& kappa, const at::Tensor& seed,
                              int64_t num_samples, const char* op = "vmf_sample") {
  TORCH_CHECK(loc.dim() == 2, op, ": loc must have shape (B, d), got ", loc.sizes());
  TORCH_CHECK(loc.size(1) >= 2, op, ": the dimension d = loc.size(1) must be >= 2, got ", loc.size(1));
  TORCH_CHECK(kappa.dim() == 1 && kappa.size(0) == loc.size(0), op, ": kappa must have shape (B,) = (", loc.size(0),
              ",), got ", kappa.sizes());
  TORCH_CHECK(loc.scalar_type() == at::kFloat || loc.scalar_type() == at::kDouble, op,
              ": loc must be float32 or float64, got ", loc.scalar_type());
  TORCH_CHECK(kappa.scalar_type() == loc.scalar_type(), op, ": kappa dtype ", kappa.scalar_type(),
              " differs from loc dtype ", loc.scalar_type());
  TORCH_CHECK(kappa.device() == loc.device(), op, ": kappa is on ", kappa.device(), " but loc is on ", loc.device());
  TORCH_CHECK(seed.scalar_type() == at::kLong && seed.numel() == 1, op,
              ": seed must be an int64 tensor with one element");
  TORCH_CHECK(seed.device() == loc.device(), op, ": seed is on ", seed.device(), " but loc is on ", loc.device());
  TORCH_CHECK(num_samples >= 0, op, ": num_samples must be >= 0, got ", num_samples);
}

inline void check_sample_backward_args(const at::Tensor& grad_z, const at::Tensor& z, const at::Tensor& omw,
                                       const at::Tensor& loc, const at::Tensor& kappa) {
  TORCH_CHECK(loc.dim() == 2 && loc.size(1) >= 2, "vmf_sample_backward: loc must have shape (B, d), d >= 2");
  const int64_t B = loc.size(0), d = loc.size(1);
  TORCH_CHECK(kappa.dim() == 1 && kappa.size(0) == B, "vmf_sample_backward: kappa must have shape (B,)");
  TORCH_CHECK(z.dim() == 2 && z.size(1) == d && (B == 0 ? z.size(0) == 0 : z.size(0) % B == 0),
              "vmf_sample_backward: z must have shape (S * B, d), got ", z.sizes());
  TORCH_CHECK(grad_z.sizes() == z.sizes(), "vmf_sample_backward: grad_z shape ", grad_z.sizes(),
              " differs from z shape ", z.sizes());
  TORCH_CHECK(omw.dim() == 1 && omw.size(0) == z.size(0), "vmf_sample_backward: one_minus_w must have shape (S * B,)");
  for (const at::Tensor* t : {&grad_z, &z, &omw, &kappa}) {
    TORCH_CHECK(t->scalar_type() == loc.scalar_type(), "vmf_sample_backward: dtypes differ");
    TORCH_CHECK(t->device() == loc.device(), "vmf_sample_backward: devices differ");
  }
}

// power_spherical_sample_backward: as vmf_sample_backward, with the (S * B, 2) float64 Gamma variates of the
// forward in place of 1 - w.
inline void check_power_spherical_backward_args(const at::Tensor& grad_z, const at::Tensor& z, const at::Tensor& gammas,
                                                const at::Tensor& loc, const at::Tensor& kappa) {
  constexpr const char* op = "power_spherical_sample_backward";
  TORCH_CHECK(loc.dim() == 2 && loc.size(1) >= 2, op, ": loc must have shape (B, d), d >= 2");
  TORCH_CHECK(loc.scalar_type() == at::kFloat || loc.scalar_type() == at::kDouble, op,
              ": loc must be float32 or float64, got ", loc.scalar_type());
  const int64_t B = loc.size(0), d = loc.size(1);
  TORCH_CHECK(kappa.dim() == 1 && kappa.size(0) == B, op, ": kappa must have shape (B,)");
  TORCH_CHECK(z.dim() == 2 && z.size(1) == d && (B == 0 ? z.size(0) == 0 : z.size(0) % B == 0), op,
              ": z must have shape (S * B, d), got ", z.sizes());
  TORCH_CHECK(grad_z.sizes() == z.sizes(), op, ": grad_z shape ", grad_z.sizes(), " differs from z shape ", z.sizes());
  TORCH_CHECK(
      gammas.dim() == 2 && gammas.size(0) == z.size(0) && gammas.size(1) == 2 && gammas.scalar_type() == at::kDouble,
      op, ": gammas must be a float64 tensor of shape (S * B, 2)");
  for (const at::Tensor* t : {&grad_z, &z, &kappa}) {
    TORCH_CHECK(t->scalar_type() == loc.scalar_type(), op, ": dtypes differ");
  }
  for (const at::Tensor* t : {&grad_z, &z, &gammas, &kappa}) {
    TORCH_CHECK(t->device() == loc.device(), op, ": devices differ");
  }
}

// The end of both devices' backward: per-sample gradients (rows = num_samples * B, row r of parameter row r % B)
// summed over the sample axis; with one sample per parameter row they are the result as they are.
inline std::tuple<at::Tensor, at::Tensor> sum_over_samples(const at::Tensor& grad_loc, const at::Tensor& grad_kappa,
                                                           int64_t B) {
  const int64_t rows = grad_kappa.size(0), num_samples = B == 0 ? 0 : rows / B;
  if (num_samples == 1) return {grad_loc, grad_kappa};
  return {grad_loc.view({num_samples, B, grad_loc.size(1)}).sum(0), grad_kappa.view({num_samples, B}).sum(0)};
}

}  // namespace hvae
