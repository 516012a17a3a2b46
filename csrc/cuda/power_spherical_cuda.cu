// CUDA kernels of the Power Spherical sampler (math/power_spherical.h): one launch, no host synchronisation, laid out
// as the vMF sampler (sample_cuda.cu): a warp owns a tile of 32 sample rows; phase 1, lane l draws the two Gamma
// variates of row tile + l (its own Philox streams); phase 2, the tangent direction and the reflection
// (sphere_rows.cuh: the same code and streams as the vMF sampler), one lane per row for d <= 32, else the whole warp
// per row. The backward: dt/dkappa per lane, then the reflection's backward. The CPU kernels draw the same numbers.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../math/power_spherical.h"
#include "../sample_checks.h"
#include "sphere_rows.cuh"

namespace hvae {
namespace {

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    power_spherical_sample_kernel(const scalar_t* __restrict__ loc, const scalar_t* __restrict__ kappa,
                                  const int64_t* __restrict__ seed_ptr, int64_t B, int64_t rows, int64_t d,
                                  scalar_t* __restrict__ z, double* __restrict__ gammas) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarp;
  const int64_t num_warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) / kWarp;
  const uint64_t seed = static_cast<uint64_t>(*seed_ptr);
  const double dd = static_cast<double>(d);
  const math::GammaShape shape_beta = math::gamma_shape(0.5 * (dd - 1.0));
  for (int64_t tile = warp * kWarp; tile < rows; tile += num_warps * kWarp) {
    double my_omt = 0.0;
    const int64_t my_row = tile + lane;
    if (my_row < rows) {
      my_omt =
          math::power_spherical_one_minus_t(seed, static_cast<uint64_t>(my_row), static_cast<double>(kappa[my_row % B]),
                                            dd, shape_beta, &gammas[2 * my_row], &gammas[2 * my_row + 1]);
    }
    if (d <= kSmallD) {
      if (my_row < rows)
        reflect_row<scalar_t>(seed, my_row, my_omt, loc + (my_row % B) * d, z + my_row * d, d, 0, 1, true, NoReduce());
      continue;
    }
    const int64_t tile_rows = rows - tile < kWarp ? rows - tile : kWarp;
    for (int j = 0; j < tile_rows; ++j) {
      const double omt = __shfl_sync(kFullMask, my_omt, j);
      const int64_t r = tile + j;
      reflect_row<scalar_t>(seed, r, omt, loc + (r % B) * d, z + r * d, d, lane, kWarp, lane == 0, WarpReduce());
    }
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    power_spherical_sample_backward_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ z,
                                           const double* __restrict__ gammas, const scalar_t* __restrict__ loc,
                                           const scalar_t* __restrict__ kappa, int64_t B, int64_t rows, int64_t d,
                                           scalar_t* __restrict__ grad_mu_out, scalar_t* __restrict__ grad_kappa_out) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarp;
  const int64_t num_warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) / kWarp;
  const double beta = 0.5 * (static_cast<double>(d) - 1.0);
  for (int64_t tile = warp * kWarp; tile < rows; tile += num_warps * kWarp) {
    double my_dtdk = 0.0, my_omt = 0.0;
    const int64_t my_row = tile + lane;
    if (my_row < rows) {
      const double ga = gammas[2 * my_row], gb = gammas[2 * my_row + 1];
      my_omt = 2.0 * gb / (ga + gb);
      my_dtdk = math::power_spherical_t_dkappa(
          ga, gb, math::gamma_sample_dshape(beta + static_cast<double>(kappa[my_row % B]), ga));
    }
    if (d <= kSmallD) {
      if (my_row < rows) {
        const int64_t b = my_row % B;
        const double dl_dt = reflect_backward_row<scalar_t>(
            loc + b * d, z + my_row * d, g + my_row * d, grad_mu_out + my_row * d, my_omt, d, 0, 1, true, NoReduce());
        grad_kappa_out[my_row] = static_cast<scalar_t>(dl_dt * my_dtdk);
      }
      continue;
    }
    const int64_t tile_rows = rows - tile < kWarp ? rows - tile : kWarp;
    for (int j = 0; j < tile_rows; ++j) {
      const double dtdk = __shfl_sync(kFullMask, my_dtdk, j);
      const double omt = __shfl_sync(kFullMask, my_omt, j);
      const int64_t r = tile + j;
      const double dl_dt = reflect_backward_row<scalar_t>(loc + (r % B) * d, z + r * d, g + r * d, grad_mu_out + r * d,
                                                          omt, d, lane, kWarp, lane == 0, WarpReduce());
      if (lane == 0) grad_kappa_out[r] = static_cast<scalar_t>(dl_dt * dtdk);
    }
  }
}

std::tuple<at::Tensor, at::Tensor> power_spherical_sample_cuda(const at::Tensor& loc_in, const at::Tensor& kappa_in,
                                                               const at::Tensor& seed, int64_t num_samples) {
  check_sample_args(loc_in, kappa_in, seed, num_samples, "power_spherical_sample");
  const c10::cuda::CUDAGuard guard(loc_in.device());
  const at::Tensor loc = loc_in.contiguous(), kappa = kappa_in.contiguous();
  const int64_t B = loc.size(0), d = loc.size(1), rows = num_samples * B;
  at::Tensor z = at::empty({rows, d}, loc.options());
  at::Tensor gammas = at::empty({rows, 2}, loc.options().dtype(at::kDouble));
  if (rows == 0) return {z, gammas};
  AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "power_spherical_sample_cuda", [&] {
    power_spherical_sample_kernel<scalar_t><<<grid_for(rows), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        loc.data_ptr<scalar_t>(), kappa.data_ptr<scalar_t>(), seed.data_ptr<int64_t>(), B, rows, d,
        z.data_ptr<scalar_t>(), gammas.data_ptr<double>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {z, gammas};
}

std::tuple<at::Tensor, at::Tensor> power_spherical_sample_backward_cuda(const at::Tensor& grad_z_in,
                                                                        const at::Tensor& z_in,
                                                                        const at::Tensor& gammas_in,
                                                                        const at::Tensor& loc_in,
                                                                        const at::Tensor& kappa_in) {
  check_power_spherical_backward_args(grad_z_in, z_in, gammas_in, loc_in, kappa_in);
  const c10::cuda::CUDAGuard guard(loc_in.device());
  const at::Tensor g = grad_z_in.contiguous(), z = z_in.contiguous(), gammas = gammas_in.contiguous();
  const at::Tensor loc = loc_in.contiguous(), kappa = kappa_in.contiguous();
  const int64_t B = loc.size(0), d = loc.size(1), rows = z.size(0);
  at::Tensor grad_loc = at::empty({rows, d}, loc.options());
  at::Tensor grad_kappa = at::empty({rows}, loc.options());
  if (rows > 0) {
    AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "power_spherical_sample_backward_cuda", [&] {
      power_spherical_sample_backward_kernel<scalar_t>
          <<<grid_for(rows), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
              g.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(), gammas.data_ptr<double>(), loc.data_ptr<scalar_t>(),
              kappa.data_ptr<scalar_t>(), B, rows, d, grad_loc.data_ptr<scalar_t>(), grad_kappa.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return sum_over_samples(grad_loc, grad_kappa, B);
}

}  // namespace

TORCH_LIBRARY_IMPL(hvae_ext, CUDA, m) {
  m.impl("power_spherical_sample", &power_spherical_sample_cuda);
  m.impl("power_spherical_sample_backward", &power_spherical_sample_backward_cuda);
}

}  // namespace hvae
