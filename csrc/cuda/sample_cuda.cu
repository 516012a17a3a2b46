// CUDA kernels of the vMF sampler: one launch, no host synchronisation.
//
// Layout: a warp owns a tile of 32 sample rows. Phase 1: lane l runs the (serial, divergent) rejection
// loop for row tile + l, so all 32 lanes do useful work. Phase 2: for d <= 32 each lane also finishes its own
// row (no idle lanes, no warp reductions); for wider rows the whole warp walks the tile's rows one by one and
// splits each row's d - 1 tangent draws and its reflection across lanes, so reads of loc and writes of z are
// coalesced. The backward is laid out the same way, with A_d(kappa) computed once per parameter row first. Each row
// draws from Philox streams keyed by (seed, row) with random access to the k-th normal pair
// (PhiloxStream::seek_normal_pair) and to the blocks of each Wood round (math::sample_one_minus_w), so the CUDA and CPU
// kernels draw the same numbers. The seed is read from device memory (drawn by torch.randint on the device): CUDA-graph
// safe.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include <atomic>
#include <type_traits>

#include "../sample_checks.h"
#include "../vmf_math.h"
#include "sphere_rows.cuh"

namespace hvae {
namespace {

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    vmf_sample_kernel(const scalar_t* __restrict__ loc, const scalar_t* __restrict__ kappa,
                      const int64_t* __restrict__ seed_ptr, int64_t B, int64_t rows, int64_t d,
                      scalar_t* __restrict__ z, scalar_t* __restrict__ omw_out) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarp;
  const int64_t num_warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) / kWarp;
  const uint64_t seed = static_cast<uint64_t>(*seed_ptr);
  const double dd = static_cast<double>(d);

  for (int64_t tile = warp * kWarp; tile < rows; tile += num_warps * kWarp) {
    // Phase 1: one rejection loop per lane. A row that exhausts the bound gets NaN (see README).
    double my_omw = 0.0;
    const int64_t my_row = tile + lane;
    if (my_row < rows) {
      int rounds = 0;
      my_omw = math::sample_one_minus_w(seed, static_cast<uint64_t>(my_row), static_cast<double>(kappa[my_row % B]), dd,
                                        &rounds);
      omw_out[my_row] = static_cast<scalar_t>(my_omw);
    }
    // Phase 2: the tangent direction and the reflection.
    if (d <= kSmallD) {  // each lane its own row
      if (my_row < rows)
        reflect_row<scalar_t>(seed, my_row, my_omw, loc + (my_row % B) * d, z + my_row * d, d, 0, 1, true, NoReduce());
      continue;
    }
    const int64_t tile_rows = rows - tile < kWarp ? rows - tile : kWarp;
    for (int j = 0; j < tile_rows; ++j) {  // the warp finishes the tile's rows together
      const double omw = __shfl_sync(kFullMask, my_omw, j);
      const int64_t r = tile + j;
      reflect_row<scalar_t>(seed, r, omw, loc + (r % B) * d, z + r * d, d, lane, kWarp, lane == 0, WarpReduce());
    }
  }
}

// A_d(kappa) once per parameter row, for the backward's dw/dkappa.
template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    mean_resultant_kernel(const scalar_t* __restrict__ kappa, int64_t B, int64_t d, double* __restrict__ out) {
  for (int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; b < B;
       b += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    // float32 results: the `single` truncations, as on the CPU (sample_cpu.cpp, vmf_sample_backward_cpu)
    out[b] = math::vmf_mean_resultant(static_cast<double>(kappa[b]), static_cast<double>(d),
                                      std::is_same<scalar_t, float>::value);
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads)
    vmf_sample_backward_kernel(const scalar_t* __restrict__ g, const scalar_t* __restrict__ z,
                               const scalar_t* __restrict__ omw_in, const scalar_t* __restrict__ loc,
                               const scalar_t* __restrict__ kappa, const double* __restrict__ mean_resultant, int64_t B,
                               int64_t rows, int64_t d, scalar_t* __restrict__ grad_mu_out,
                               scalar_t* __restrict__ grad_kappa_out) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarp;
  const int64_t num_warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) / kWarp;
  const double dd = static_cast<double>(d);
  for (int64_t tile = warp * kWarp; tile < rows; tile += num_warps * kWarp) {
    // Phase 1: dw/dkappa for row tile + lane (scalar work, one row per lane).
    double my_dwdk = 0.0;
    const int64_t my_row = tile + lane;
    if (my_row < rows) {
      const int64_t b = my_row % B;
      // float32 samples: the float32 rule (math/implicit_grad_single.h), as the CPU's lanes
      const double omw_r = static_cast<double>(omw_in[my_row]), kappa_b = static_cast<double>(kappa[b]);
      my_dwdk = std::is_same<scalar_t, float>::value
                    ? math::vmf_w_dkappa_float32_rule(omw_r, kappa_b, dd, mean_resultant[b])
                    : math::vmf_w_dkappa(omw_r, kappa_b, dd, mean_resultant[b]);
    }
    if (d <= kSmallD) {  // each lane its own row
      if (my_row < rows) {
        const int64_t b = my_row % B;
        const double dl_dw =
            reflect_backward_row<scalar_t>(loc + b * d, z + my_row * d, g + my_row * d, grad_mu_out + my_row * d,
                                           static_cast<double>(omw_in[my_row]), d, 0, 1, true, NoReduce());
        grad_kappa_out[my_row] = static_cast<scalar_t>(dl_dw * my_dwdk);
      }
      continue;
    }
    const int64_t tile_rows = rows - tile < kWarp ? rows - tile : kWarp;
    for (int j = 0; j < tile_rows; ++j) {
      const double dwdk = __shfl_sync(kFullMask, my_dwdk, j);
      const int64_t r = tile + j;
      const double dl_dw =
          reflect_backward_row<scalar_t>(loc + (r % B) * d, z + r * d, g + r * d, grad_mu_out + r * d,
                                         static_cast<double>(omw_in[r]), d, lane, kWarp, lane == 0, WarpReduce());
      if (lane == 0) grad_kappa_out[r] = static_cast<scalar_t>(dl_dw * dwdk);
    }
  }
}

std::tuple<at::Tensor, at::Tensor> vmf_sample_cuda(const at::Tensor& loc_in, const at::Tensor& kappa_in,
                                                   const at::Tensor& seed, int64_t num_samples) {
  check_sample_args(loc_in, kappa_in, seed, num_samples);
  const c10::cuda::CUDAGuard guard(loc_in.device());
  const at::Tensor loc = loc_in.contiguous(), kappa = kappa_in.contiguous();
  const int64_t B = loc.size(0), d = loc.size(1), rows = num_samples * B;
  at::Tensor z = at::empty({rows, d}, loc.options());
  at::Tensor omw = at::empty({rows}, loc.options());
  if (rows == 0) return {z, omw};
  AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "vmf_sample_cuda", [&] {
    vmf_sample_kernel<scalar_t><<<grid_for(rows), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        loc.data_ptr<scalar_t>(), kappa.data_ptr<scalar_t>(), seed.data_ptr<int64_t>(), B, rows, d,
        z.data_ptr<scalar_t>(), omw.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {z, omw};
}

std::tuple<at::Tensor, at::Tensor> vmf_sample_backward_cuda(const at::Tensor& grad_z_in, const at::Tensor& z_in,
                                                            const at::Tensor& omw_in, const at::Tensor& loc_in,
                                                            const at::Tensor& kappa_in) {
  check_sample_backward_args(grad_z_in, z_in, omw_in, loc_in, kappa_in);
  const c10::cuda::CUDAGuard guard(loc_in.device());
  const at::Tensor g = grad_z_in.contiguous(), z = z_in.contiguous(), omw = omw_in.contiguous();
  const at::Tensor loc = loc_in.contiguous(), kappa = kappa_in.contiguous();
  const int64_t B = loc.size(0), d = loc.size(1), rows = z.size(0);
  at::Tensor grad_loc = at::empty({rows, d}, loc.options());
  at::Tensor grad_kappa = at::empty({rows}, loc.options());
  if (rows > 0) {
    // A_d(kappa) once per parameter row (float64 whatever the dtype: dw/dkappa uses w - A; float32 results with
    // the `single` truncations)
    at::Tensor mean_resultant = at::empty({B}, loc.options().dtype(at::kDouble));
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "vmf_sample_backward_cuda", [&] {
      const int64_t a_blocks = std::max<int64_t>(1, std::min<int64_t>((B + kThreads - 1) / kThreads, 65535));
      mean_resultant_kernel<scalar_t>
          <<<a_blocks, kThreads, 0, stream>>>(kappa.data_ptr<scalar_t>(), B, d, mean_resultant.data_ptr<double>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      vmf_sample_backward_kernel<scalar_t><<<grid_for(rows), kThreads, 0, stream>>>(
          g.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(), omw.data_ptr<scalar_t>(), loc.data_ptr<scalar_t>(),
          kappa.data_ptr<scalar_t>(), mean_resultant.data_ptr<double>(), B, rows, d, grad_loc.data_ptr<scalar_t>(),
          grad_kappa.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  return sum_over_samples(grad_loc, grad_kappa, B);
}

}  // namespace

TORCH_LIBRARY_IMPL(hvae_ext, CUDA, m) {
  m.impl("vmf_sample", &vmf_sample_cuda);
  m.impl("vmf_sample_backward", &vmf_sample_backward_cuda);
}

}  // namespace hvae
