// The CUDA kernels' tangent draws and reflection of one sample row, their backward, and the launch grid, shared by
// the samplers of every law on the sphere whose samples are (w, sqrt(1 - w^2) v) rotated to mu (sample_cuda.cu:
// von Mises-Fisher; power_spherical_cuda.cu: Power Spherical). The formulas are those of math/householder.h, the
// normals those of the tangent stream of math/philox.h: the same numbers as the CPU kernels (cpu/sphere_rows.h).
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>

#include <algorithm>
#include <atomic>

#include "../math/householder.h"
#include "../math/philox.h"

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

// Rows with d <= kSmallD are finished by one lane each (no warp reductions, no idle lanes); wider rows by the
// whole warp, the row's coordinates split across the lanes.
constexpr int64_t kSmallD = 32;

// The tangent normals and reflection of row r (math/wood.h), coordinates lane0, lane0 + stride, ... of its
// d/2 normal pairs; reduce() sums a partial sum over the lanes that share the row.
template <typename scalar_t, typename Reduce>
__device__ __forceinline__ void reflect_row(uint64_t seed, int64_t r, double omw, const scalar_t* __restrict__ mu,
                                            scalar_t* __restrict__ zr, int64_t d, int lane0, int stride, bool first,
                                            Reduce reduce) {
  const int64_t num_pairs = d / 2;  // pairs of normals covering the d - 1 tangent coordinates
  PhiloxStream tangent(seed, static_cast<uint64_t>(r), math::kStreamTangent);
  double sq = 0.0, tail_dot = 0.0, n2_tail = 0.0;
  for (int64_t p = lane0; p < num_pairs; p += stride) {
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
  const math::HouseholderForward c =
      math::householder_forward(static_cast<double>(mu[0]), omw, reduce(sq), reduce(tail_dot), reduce(n2_tail));
  if (first) zr[0] = static_cast<scalar_t>(math::householder_z0(c, omw));
  for (int64_t p = lane0; p < num_pairs; p += stride) {  // the elements this lane wrote above
    const int64_t i = 1 + 2 * p;
    zr[i] = static_cast<scalar_t>(math::householder_zi(c, static_cast<double>(zr[i]), static_cast<double>(mu[i])));
    if (i + 1 < d)
      zr[i + 1] = static_cast<scalar_t>(
          math::householder_zi(c, static_cast<double>(zr[i + 1]), static_cast<double>(mu[i + 1])));
  }
}

struct NoReduce {
  __device__ double operator()(double v) const { return v; }
};
struct WarpReduce {
  __device__ double operator()(double v) const { return warp_sum(v); }
};

// The reflection's backward of row r (math/wood.h), coordinates lane0 + 1, lane0 + 1 + stride, ...; returns
// dL/dw on the lanes where `first` (coordinate 0 is theirs).
template <typename scalar_t, typename Reduce>
__device__ __forceinline__ double reflect_backward_row(const scalar_t* __restrict__ mu, const scalar_t* __restrict__ zr,
                                                       const scalar_t* __restrict__ gr, scalar_t* __restrict__ gmu,
                                                       double omw, int64_t d, int lane0, int stride, bool first,
                                                       Reduce reduce) {
  double n2 = 0.0, az = 0.0, ag = 0.0;
  for (int64_t i = 1 + lane0; i < d; i += stride) {
    const double m = static_cast<double>(mu[i]);
    n2 += m * m;
    az += m * static_cast<double>(zr[i]);
    ag += m * static_cast<double>(gr[i]);
  }
  const math::HouseholderBackward c =
      math::householder_backward(static_cast<double>(mu[0]), static_cast<double>(zr[0]), static_cast<double>(gr[0]),
                                 reduce(n2), reduce(az), reduce(ag));
  double tail_dot = 0.0, tail_sq = 0.0;
  for (int64_t i = 1 + lane0; i < d; i += stride) {
    double yi, gti, g_mu;
    math::householder_backward_elem<double>(c, static_cast<double>(mu[i]), static_cast<double>(zr[i]),
                                            static_cast<double>(gr[i]), &yi, &gti, &g_mu);
    tail_dot += gti * yi;
    tail_sq += yi * yi;
    gmu[i] = static_cast<scalar_t>(g_mu);
  }
  tail_dot = reduce(tail_dot);
  tail_sq = reduce(tail_sq);
  if (!first) return 0.0;
  double y0, gt0, g_mu0;
  math::householder_backward_elem<double>(c, c.a0, static_cast<double>(zr[0]), static_cast<double>(gr[0]), &y0, &gt0,
                                          &g_mu0);
  gmu[0] = static_cast<scalar_t>(g_mu0);
  return math::householder_dl_dw(gt0, tail_dot, tail_sq, omw);
}

// The number of multiprocessors of each device, queried once per device (not on every launch).
int multiprocessor_count(int device) {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cached[kMaxDevices] = {};
  if (device < 0 || device >= kMaxDevices) {
    int sms = 0;
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    return sms;
  }
  int sms = cached[device].load(std::memory_order_relaxed);
  if (sms == 0) {
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    cached[device].store(sms, std::memory_order_relaxed);
  }
  return sms;
}

int64_t grid_for(int64_t rows) {
  const int64_t tiles = (rows + kWarp - 1) / kWarp;
  const int64_t warps_per_block = kThreads / kWarp;
  const int64_t blocks = (tiles + warps_per_block - 1) / warps_per_block;
  const int sms = multiprocessor_count(c10::cuda::current_device());
  return std::max<int64_t>(1, std::min<int64_t>(blocks, static_cast<int64_t>(sms) * 16));
}

}  // namespace
}  // namespace hvae
