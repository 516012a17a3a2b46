// CUDA kernels of the vMF sampler: one launch, no host synchronisation.
//
// Layout: a warp owns a tile of 32 sample rows. Phase 1: lane l runs the (serial, divergent) rejection
// loop for row tile + l, so all 32 lanes do useful work. Phase 2: the whole warp walks the tile's rows one
// by one and splits each row's d - 1 tangent draws and its reflection across lanes, so reads of loc and
// writes of z are coalesced. Each row draws from Philox streams keyed by (seed, row) with random access to
// the k-th normal pair (PhiloxStream::seek_normal_pair) and to the blocks of each Wood round
// (math::sample_one_minus_w), so the CUDA and CPU kernels draw the same numbers.
// The seed is read from device memory (drawn by torch.randint on the device): CUDA-graph safe.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include "../sample_checks.h"
#include "../vmf_math.h"

namespace hvae {
namespace {

using math::PhiloxStream;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarp = 32;
constexpr int kThreads = 256;

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads) vmf_sample_kernel(
    const scalar_t* __restrict__ loc, const scalar_t* __restrict__ kappa, const int64_t* __restrict__ seed_ptr,
    int64_t B, int64_t rows, int64_t d, scalar_t* __restrict__ z, scalar_t* __restrict__ omw_out) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarp;
  const int64_t num_warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) / kWarp;
  const uint64_t seed = static_cast<uint64_t>(*seed_ptr);
  const double dd = static_cast<double>(d);
  const int64_t num_pairs = d / 2;  // pairs of normals covering the d - 1 tangent coordinates

  for (int64_t tile = warp * kWarp; tile < rows; tile += num_warps * kWarp) {
    // Phase 1: one rejection loop per lane. A row that exhausts the bound gets NaN (see README).
    double my_omw = 0.0;
    const int64_t my_row = tile + lane;
    if (my_row < rows) {
      int rounds = 0;
      my_omw = math::sample_one_minus_w(seed, static_cast<uint64_t>(my_row), static_cast<double>(kappa[my_row % B]),
                                        dd, &rounds);
      omw_out[my_row] = static_cast<scalar_t>(my_omw);
    }
    // Phase 2: the warp finishes the tile's rows together.
    const int64_t tile_rows = rows - tile < kWarp ? rows - tile : kWarp;
    for (int j = 0; j < tile_rows; ++j) {
      const double omw = __shfl_sync(kFullMask, my_omw, j);
      const int64_t r = tile + j;
      const scalar_t* mu = loc + (r % B) * d;
      scalar_t* zr = z + r * d;
      PhiloxStream tangent(seed, static_cast<uint64_t>(r), math::kStreamTangent);
      double sq = 0.0, tail_dot = 0.0, n2_tail = 0.0;
      for (int64_t p = lane; p < num_pairs; p += kWarp) {
        scalar_t n0, n1;
        tangent.seek_normal_pair(static_cast<uint64_t>(p), static_cast<scalar_t*>(nullptr));
        tangent.normal_pair(&n0, &n1);
        const int64_t i = 1 + 2 * p;
        const double m0 = static_cast<double>(mu[i]);
        zr[i] = n0;
        sq += static_cast<double>(n0) * n0;
        tail_dot += m0 * n0;
        n2_tail += m0 * m0;
        if (i + 1 < d) {
          const double m1 = static_cast<double>(mu[i + 1]);
          zr[i + 1] = n1;
          sq += static_cast<double>(n1) * n1;
          tail_dot += m1 * n1;
          n2_tail += m1 * m1;
        }
      }
      sq = warp_sum(sq);
      tail_dot = warp_sum(tail_dot);
      n2_tail = warp_sum(n2_tail);
      const double y0 = 1.0 - omw;
      const double scale = sq > 0.0 ? sqrt(omw * (2.0 - omw) / sq) : 0.0;
      const double mu0 = static_cast<double>(mu[0]);
      const double s = math::householder_sign(mu0);
      const double a0 = mu0 + s;
      const double n2 = a0 * a0 + n2_tail;
      const double coef = 2.0 * (a0 * y0 + scale * tail_dot) / n2;
      if (lane == 0) zr[0] = static_cast<scalar_t>(-s * (y0 - coef * a0));
      for (int64_t p = lane; p < num_pairs; p += kWarp) {  // the elements this lane wrote above
        const int64_t i = 1 + 2 * p;
        zr[i] = static_cast<scalar_t>(-s * (scale * static_cast<double>(zr[i]) - coef * static_cast<double>(mu[i])));
        if (i + 1 < d)
          zr[i + 1] = static_cast<scalar_t>(
              -s * (scale * static_cast<double>(zr[i + 1]) - coef * static_cast<double>(mu[i + 1])));
      }
    }
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kThreads) vmf_sample_backward_kernel(
    const scalar_t* __restrict__ g, const scalar_t* __restrict__ z, const scalar_t* __restrict__ omw_in,
    const scalar_t* __restrict__ loc, const scalar_t* __restrict__ kappa, int64_t B, int64_t rows, int64_t d,
    scalar_t* __restrict__ grad_mu_out, scalar_t* __restrict__ grad_kappa_out) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warp = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / kWarp;
  const int64_t num_warps = (static_cast<int64_t>(gridDim.x) * blockDim.x) / kWarp;
  const double dd = static_cast<double>(d);
  for (int64_t tile = warp * kWarp; tile < rows; tile += num_warps * kWarp) {
    // Phase 1: dw/dkappa for row tile + lane (scalar work, one row per lane).
    double my_dwdk = 0.0;
    const int64_t my_row = tile + lane;
    if (my_row < rows) {
      const double k = static_cast<double>(kappa[my_row % B]);
      my_dwdk = math::vmf_w_dkappa(static_cast<double>(omw_in[my_row]), k, dd, math::vmf_mean_resultant(k, dd));
    }
    const int64_t tile_rows = rows - tile < kWarp ? rows - tile : kWarp;
    for (int j = 0; j < tile_rows; ++j) {
      const double dwdk = __shfl_sync(kFullMask, my_dwdk, j);
      const int64_t r = tile + j;
      const scalar_t* mu = loc + (r % B) * d;
      const scalar_t* zr = z + r * d;
      const scalar_t* gr = g + r * d;
      scalar_t* gmu = grad_mu_out + r * d;
      const double mu0 = static_cast<double>(mu[0]);
      const double s = math::householder_sign(mu0);
      const double a0 = mu0 + s;
      double n2 = 0.0, az = 0.0, ag = 0.0;
      for (int64_t i = 1 + lane; i < d; i += kWarp) {
        const double m = static_cast<double>(mu[i]);
        n2 += m * m;
        az += m * static_cast<double>(zr[i]);
        ag += m * static_cast<double>(gr[i]);
      }
      n2 = warp_sum(n2) + a0 * a0;
      az = warp_sum(az) + a0 * static_cast<double>(zr[0]);
      ag = warp_sum(ag) + a0 * static_cast<double>(gr[0]);
      const double coef_z = 2.0 * az / n2, coef_g = 2.0 * ag / n2;
      const double c = s * az;
      const double gmu_a = -4.0 * s * ag * c / (n2 * n2);
      const double gmu_g = 2.0 * s * c / n2, gmu_y = 2.0 * s * ag / n2;
      double tail_dot = 0.0, tail_sq = 0.0;
      for (int64_t i = 1 + lane; i < d; i += kWarp) {
        const double m = static_cast<double>(mu[i]);
        const double yi = -s * (static_cast<double>(zr[i]) - coef_z * m);
        const double gti = -s * (static_cast<double>(gr[i]) - coef_g * m);
        tail_dot += gti * yi;
        tail_sq += yi * yi;
        gmu[i] = static_cast<scalar_t>(gmu_g * static_cast<double>(gr[i]) + gmu_y * yi + gmu_a * m);
      }
      tail_dot = warp_sum(tail_dot);
      tail_sq = warp_sum(tail_sq);
      if (lane == 0) {
        const double y0 = -s * (static_cast<double>(zr[0]) - coef_z * a0);
        const double gt0 = -s * (static_cast<double>(gr[0]) - coef_g * a0);
        gmu[0] = static_cast<scalar_t>(gmu_g * static_cast<double>(gr[0]) + gmu_y * y0 + gmu_a * a0);
        const double omw = static_cast<double>(omw_in[r]);
        const double w = 1.0 - omw, sin2 = omw * (2.0 - omw);
        double dl_dw = gt0;
        if (tail_sq > 0.0 && sin2 > 0.0) dl_dw -= w * tail_dot / sqrt(tail_sq * sin2);
        grad_kappa_out[r] = static_cast<scalar_t>(dl_dw * dwdk);
      }
    }
  }
}

int64_t grid_for(int64_t rows) {
  const int64_t tiles = (rows + kWarp - 1) / kWarp;
  const int64_t warps_per_block = kThreads / kWarp;
  const int64_t blocks = (tiles + warps_per_block - 1) / warps_per_block;
  int sms = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, c10::cuda::current_device()));
  return std::max<int64_t>(1, std::min<int64_t>(blocks, static_cast<int64_t>(sms) * 16));
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
  const int64_t num_samples = B == 0 ? 0 : rows / B;
  at::Tensor grad_loc = at::empty({rows, d}, loc.options());
  at::Tensor grad_kappa = at::empty({rows}, loc.options());
  if (rows > 0) {
    AT_DISPATCH_FLOATING_TYPES(loc.scalar_type(), "vmf_sample_backward_cuda", [&] {
      vmf_sample_backward_kernel<scalar_t><<<grid_for(rows), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          g.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(), omw.data_ptr<scalar_t>(), loc.data_ptr<scalar_t>(),
          kappa.data_ptr<scalar_t>(), B, rows, d, grad_loc.data_ptr<scalar_t>(), grad_kappa.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  }
  if (num_samples == 1) return {grad_loc, grad_kappa};
  return {grad_loc.view({num_samples, B, d}).sum(0), grad_kappa.view({num_samples, B}).sum(0)};
}

}  // namespace

TORCH_LIBRARY_IMPL(hvae_ext, CUDA, m) {
  m.impl("vmf_sample", &vmf_sample_cuda);
  m.impl("vmf_sample_backward", &vmf_sample_backward_cuda);
}

}  // namespace hvae
